/* Fuzzes the proxy's admin port (src/proxy/admin.c): sn_admin_respond on
 * a request head as the admin connection holds it (at most 8 KiB), against
 * a real proxy object built once: one worker's metrics store with series,
 * a snapshot translated from inline YAML, server and client TLS contexts
 * with a CA-issued chain. The input's first byte picks the proxy's state
 * (ready, draining, snapshot, TLS, Istio metric names); the rest is what
 * the client sent. Checks, not only that nothing crashes or leaks:
 * - the result is INCOMPLETE or ERROR with *out untouched, or a head
 *   length in (0, len] with a response;
 * - the response is "HTTP/1.1 NNN Reason", content-type, a content-length
 *   equal to the body's (no body for HEAD), connection: close;
 * - the status is the one the route and method call for: 405 for a
 *   method other than GET/HEAD, 404 for an unknown path, /ready 503 unless
 *   ready and not draining; the query never changes the route;
 * - /config_dump and /identity bodies are valid JSON; /identity never
 *   shows a private key; /metrics lines are comments or samples. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "proxy/proxy.h"
#include "sinew/identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ADMIN_HEAD_MAX 8192   /* admin.c: what a connection buffers */

#include "fuzz_check.h"

/* Names and values with quotes, backslashes, control characters and
 * UTF-8, so the dump's escaping is exercised. */
static const char config_yaml[] =
	"apiVersion: v1\n"
	"kind: Service\n"
	"metadata: {name: reviews, namespace: default, labels: {app: reviews}}\n"
	"spec:\n"
	"  selector: {app: reviews}\n"
	"  ports:\n"
	"  - {name: http, port: 9080, targetPort: 9080}\n"
	"  - {name: tcp-db, port: 5432, appProtocol: tcp}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: WorkloadEntry\n"
	"metadata: {name: reviews-v1, namespace: default}\n"
	"spec: {address: 127.0.0.1, labels: {app: reviews, version: v1}, serviceAccount: reviews}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: DestinationRule\n"
	"metadata: {name: reviews, namespace: default}\n"
	"spec:\n"
	"  host: reviews\n"
	"  subsets:\n"
	"  - {name: v1, labels: {version: v1}}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\n"
	"kind: VirtualService\n"
	"metadata: {name: reviews, namespace: default}\n"
	"spec:\n"
	"  hosts: [reviews]\n"
	"  http:\n"
	"  - name: \"q\\\"uote\\\\back\\tslash \\u00e9\\u2603\"\n"
	"    match:\n"
	"    - headers: {end-user: {exact: \"ja\\\"son\\u0001\"}}\n"
	"      uri: {prefix: \"/api\\\\x\"}\n"
	"    route:\n"
	"    - destination: {host: reviews, subset: v1}\n"
	"  - route:\n"
	"    - destination: {host: reviews}\n";

static struct sn_proxy proxy;
static struct sn_snapshot *snapshot;
static struct sn_tls_ctx *tls_server, *tls_client;

static struct sn_tls_ctx *make_ctx(enum sn_tls_role role, EVP_PKEY *key, const char *chain,
				   const struct sn_trust_bundle *b)
{
	struct sn_tls_ctx_opts o = { .role = role, .require_client_cert = 1 };
	struct sn_tls_identity t = { .key = key, .chain_pem = chain, .chain_len = strlen(chain), .bundle = b };
	struct sn_tls_ctx *ctx = NULL;
	struct sn_id_error err;

	CHECK(sn_tls_ctx_new(&o, &t, &ctx, &err) == 0);
	return ctx;
}

/* Once per process; lives until exit (still reachable, not a leak). */
static void setup(void)
{
	struct sn_proxy *p = &proxy;
	static struct sn_labels labels;
	struct sn_config_set set;
	struct sn_diags d;

	p->opt.namespace_ = "default";
	p->opt.service_account = "productpage";
	p->opt.trust_domain = "cluster.local";
	pthread_mutex_init(&p->snap_lock, NULL);
	p->n_workers = 1;
	p->workers = calloc(1, sizeof(*p->workers));
	CHECK(p->workers != NULL);
	p->workers[0].proxy = p;
	p->workers[0].metrics = sn_metrics_new(4);
	CHECK(p->workers[0].metrics != NULL);
	/* Series with labels that need escaping, and an overflow. */
	static const char *const names[] = { "reviews", "rat\"ings\\", "details\nv2", "x", "y", "z" };
	for (size_t i = 0; i < SN_ARRAY_LEN(names); i++) {
		struct sn_metric_labels l = { .reporter = "source", .destination_service_name = names[i],
					      .destination_service = "reviews.default.svc.cluster.local",
					      .request_protocol = "http", .response_code = 200 + (int)i,
					      .response_flags = "-", .connection_security_policy = "unknown" };
		sn_metrics_record_request(p->workers[0].metrics, &l, 1.5 * (double)i, 10, 100);
	}
	sn_metrics_add(p->workers[0].metrics, SN_CTR_SNIFF_TIMEOUT, 3);
	p->proc.config_version = 7;
	p->proc.config_reloads_ok = 1;

	p->identity.namespace_ = "default";
	p->identity.service = "productpage";
	p->identity.labels = &labels;
	p->identity.service_account = "productpage";
	p->identity.workload = "productpage";
	p->identity.trust_domain = "cluster.local";
	sn_config_set_init(&set);
	sn_diags_init(&d);
	CHECK(sn_config_load_text(&set, "fuzz.yaml", config_yaml, sizeof(config_yaml) - 1, &d) == 0);
	CHECK(sn_config_translate(&set, &p->identity, &d, &snapshot) == 0);
	sn_diags_free(&d);
	sn_config_set_free(&set);
	snapshot->version = 7;

	struct sn_ca_params cp = { .trust_domain = "cluster.local", .intermediate = 1 };
	struct sn_svid_params sp = { .ns = "default", .sa = "productpage" };
	struct sn_trust_bundle *b = NULL;
	struct sn_ca *ca = NULL;
	struct sn_id_error err;
	EVP_PKEY *key = NULL;
	char *csr = NULL, *chain = NULL;
	size_t len = 0;
	CHECK(sn_ca_create(&cp, &ca, &err) == 0);
	CHECK(sn_workload_key_generate(&key) == 0);
	CHECK(sn_workload_csr_pem(key, NULL, &csr, &len) == 0);
	CHECK(sn_ca_sign_csr(ca, csr, len, &sp, &chain, &len, &err) == 0);
	CHECK(sn_trust_bundle_new("cluster.local", &b) == 0);
	CHECK(sn_trust_bundle_add(b, sn_ca_root(ca)) == 0);
	tls_server = make_ctx(SN_TLS_SERVER, key, chain, b);
	tls_client = make_ctx(SN_TLS_CLIENT, key, chain, b);
	/* The contexts hold their own references. */
	sn_trust_bundle_free(b);
	free(chain);
	free(csr);
	EVP_PKEY_free(key);
	sn_ca_free(ca);
}

/* ---- a small JSON validator (RFC 8259 grammar, no semantics) ---- */

static size_t ws(const char *s, size_t n, size_t i)
{
	while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t'))
		i++;
	return i;
}

/* Index past the value at i, or (size_t)-1. */
static size_t json_value(const char *s, size_t n, size_t i, int depth)
{
	const size_t bad = (size_t)-1;

	if (depth > 64 || (i = ws(s, n, i)) >= n)
		return bad;
	if (s[i] == '"') {
		for (i++; i < n && s[i] != '"'; i++) {
			if ((unsigned char)s[i] < 0x20)
				return bad;
			if (s[i] == '\\') {
				if (++i >= n)
					return bad;
				if (s[i] == 'u') {
					for (int k = 0; k < 4; k++)
						if (++i >= n || !((s[i] >= '0' && s[i] <= '9') ||
								  (s[i] >= 'a' && s[i] <= 'f') ||
								  (s[i] >= 'A' && s[i] <= 'F')))
							return bad;
				} else if (!strchr("\"\\/bfnrt", s[i])) {
					return bad;
				}
			}
		}
		return i < n ? i + 1 : bad;
	}
	if (s[i] == '{' || s[i] == '[') {
		char close = s[i] == '{' ? '}' : ']';
		int obj = s[i] == '{';
		i = ws(s, n, i + 1);
		if (i < n && s[i] == close)
			return i + 1;
		for (;;) {
			if (obj) {
				i = ws(s, n, i);
				if (i >= n || s[i] != '"' || (i = json_value(s, n, i, depth + 1)) == bad)
					return bad;
				i = ws(s, n, i);
				if (i >= n || s[i] != ':')
					return bad;
				i++;
			}
			if ((i = json_value(s, n, i, depth + 1)) == bad)
				return bad;
			i = ws(s, n, i);
			if (i < n && s[i] == ',') {
				i++;
				continue;
			}
			return i < n && s[i] == close ? i + 1 : bad;
		}
	}
	if (n - i >= 4 && (!memcmp(s + i, "true", 4) || !memcmp(s + i, "null", 4)))
		return i + 4;
	if (n - i >= 5 && !memcmp(s + i, "false", 5))
		return i + 5;
	size_t start = i;
	if (i < n && s[i] == '-')
		i++;
	while (i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == 'e' || s[i] == 'E' ||
			 s[i] == '+' || s[i] == '-'))
		i++;
	return i > start && s[i - 1] >= '0' && s[i - 1] <= '9' ? i : bad;
}

static void check_json(const char *s, size_t n)
{
	size_t i = json_value(s, n, 0, 0);
	CHECK(i != (size_t)-1);
	CHECK(ws(s, n, i) == n);
}

static void check_metrics(const char *s, size_t n)
{
	size_t off = 0;
	CHECK(n > 0 && s[n - 1] == '\n');
	while (off < n) {
		const char *nl = memchr(s + off, '\n', n - off);
		size_t len = (size_t)(nl - (s + off));
		CHECK(len > 0);
		if (s[off] != '#') {
			/* name{labels} value: a name, then a space before the value. */
			CHECK((s[off] >= 'a' && s[off] <= 'z') || s[off] == '_');
			CHECK(memchr(s + off, ' ', len) != NULL);
			CHECK(memchr(s + off, '\r', len) == NULL);
		}
		off += len + 1;
	}
}

static struct sn_str route_of(struct sn_str path)
{
	const char *q = memchr(path.p, '?', path.len);
	return q ? sn_str_make(path.p, (size_t)(q - path.p)) : path;
}

static int expected_status(const struct sn_proxy *p, struct sn_str method, struct sn_str path)
{
	struct sn_str r = route_of(path);

	if (!sn_str_eq_cstr(method, "GET") && !sn_str_eq_cstr(method, "HEAD"))
		return 405;
	if (sn_str_eq_cstr(r, "/ready"))
		return p->ready && !p->draining ? 200 : 503;
	if (sn_str_eq_cstr(r, "/live") || sn_str_eq_cstr(r, "/healthz") || sn_str_eq_cstr(r, "/metrics") ||
	    sn_str_eq_cstr(r, "/stats/prometheus") || sn_str_eq_cstr(r, "/config_dump") ||
	    sn_str_eq_cstr(r, "/identity"))
		return 200;
	return 404;
}

static void check_response(const struct sn_proxy *p, const char *out, size_t out_len, struct sn_str method,
			   struct sn_str path)
{
	const char *end = memmem(out, out_len, "\r\n\r\n", 4);
	CHECK(end != NULL);
	size_t head_len = (size_t)(end - out) + 4;
	char head[512];
	CHECK(head_len < sizeof(head));
	memcpy(head, out, head_len);
	head[head_len] = '\0';

	int status = expected_status(p, method, path);
	char want[32];
	snprintf(want, sizeof(want), "HTTP/1.1 %d ", status);
	CHECK(strncmp(head, want, strlen(want)) == 0);
	CHECK(strstr(head, "\r\nconnection: close\r\n") != NULL);
	CHECK(strstr(head, "\r\ncontent-type: ") != NULL);
	const char *cl = strstr(head, "\r\ncontent-length: ");
	CHECK(cl != NULL);
	char *e = NULL;
	unsigned long long body_len = strtoull(cl + 18, &e, 10);
	CHECK(e != NULL && e[0] == '\r');

	if (sn_str_eq_cstr(method, "HEAD")) {
		CHECK(out_len == head_len);
		return;
	}
	CHECK(out_len - head_len == body_len);
	const char *body = out + head_len;
	size_t n = (size_t)body_len;
	struct sn_str r = route_of(path);
	if (status == 200 && (sn_str_eq_cstr(r, "/config_dump") || sn_str_eq_cstr(r, "/identity"))) {
		check_json(body, n);
		CHECK(memmem(body, n, "PRIVATE KEY", 11) == NULL);
	}
	if (status == 200 && (sn_str_eq_cstr(r, "/metrics") || sn_str_eq_cstr(r, "/stats/prometheus")))
		check_metrics(body, n);
	if (status == 200 && (sn_str_eq_cstr(r, "/live") || sn_str_eq_cstr(r, "/healthz")))
		CHECK(n == 5 && !memcmp(body, "live\n", 5));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct sn_proxy *p = &proxy;

	if (!ready) {
		setup();
		ready = 1;
	}
	if (size < 1)
		return 0;
	uint8_t state = data[0];
	data++;
	size--;
	if (size > ADMIN_HEAD_MAX)
		size = ADMIN_HEAD_MAX;

	p->ready = state & 1;
	p->draining = (state >> 1) & 1;
	p->snap = (state & 4) ? snapshot : NULL;
	p->tls_server = (state & 8) ? tls_server : NULL;
	p->tls_client = (state & 16) ? tls_client : (state & 32) ? p->tls_server : NULL;
	p->opt.istio_metric_names = (state >> 6) & 1;
	p->version = state;

	/* Exact-size copy so ASan sees any read past the request. */
	char *req = malloc(size ? size : 1);
	CHECK(req != NULL);
	if (size)
		memcpy(req, data, size);
	char *out = (char *)&state;   /* sentinel: must stay untouched unless answered */
	size_t out_len = 12345;
	int r = sn_admin_respond(p, req, size, &out, &out_len);

	CHECK(r == SN_H1_INCOMPLETE || r == SN_H1_ERROR || (r > 0 && (size_t)r <= size));
	if (r <= 0) {
		CHECK(out == (char *)&state && out_len == 12345);
	} else {
		/* The same parse the admin port does, for the method and path. */
		struct sn_h1_request hr;
		struct sn_h1_header hdrs[64];
		struct sn_h1_limits lim = { 4096, ADMIN_HEAD_MAX, 64 };
		CHECK(sn_h1_parse_request(req, size, &hr, hdrs, SN_ARRAY_LEN(hdrs), &lim) == r);
		CHECK(out != NULL && out_len > 0);
		check_response(p, out, out_len, hr.method, hr.path);
		free(out);
	}
	free(req);
	return 0;
}
