/* The live views from a real Prometheus (include/sinew/cli_prom.h): a
 * Prometheus that scrapes every proxy through sinewd's HTTP service
 * discovery (GET /api/v1/prometheus/targets) holds the proxies' request
 * metrics, and `sinew stat` / `sinew edges --prometheus URL` compute
 * from them the rows sinewd's live stats would give, in the same JSON
 * (docs/api.md "Stats"), so the table and `-o json` are the same.
 *
 * The PromQL does the arithmetic over time -- rate() over the window,
 * success by response_code and grpc_response_status -- grouped by the
 * labels sinewd keys its store by (reporter, both workloads, service,
 * principals, connection_security_policy); the grouping into rows is
 * then done here with sinewd's rules (src/control/stats.c), because one
 * row merges series of different reporters: a workload's own proxies'
 * inbound series, else its clients', plus what its clients' proxies
 * answered themselves (a fault abort). Percentiles are therefore
 * histogram_quantile's interpolation applied here to the row's merged
 * bucket rates (sum by le, then the same arithmetic Prometheus does).
 *
 * Proxies are the targets sinewd's SD gives (label sinew_proxy, with
 * namespace and service): `up` now is "connected", `up` in the window
 * "seen", and sinew_downstream_connections_active their TCP_CONN. A
 * client's proxy names a registered destination proxy "proxy-<id>";
 * the targets' sinew_proxy label maps it to that proxy's workload, as
 * sinewd does. */
#include <errno.h>
#include <inttypes.h>
#include <libfyaml.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sinew/cli.h"
#include "sinew/cli_prom.h"
#include "sinew/common.h"
#include "sinew/config.h"
#include "sinew/out.h"
#include "sinew/query.h"
#include "sinew/stats_json.h"

#define HINT "check --prometheus (or $SINEW_PROMETHEUS), or leave it out to read sinewd's live stats"
#define REG_PREFIX "proxy-"          /* registry.c's WorkloadEntry name of a registered proxy */
#define UNKNOWN "unknown"
#define MAX_LE 64                    /* distinct histogram bounds kept */
#define PARAM_MAX 512

/* The labels a request series is grouped by: what sinewd keys by. */
#define KEY_LABELS                                                                                            \
	"reporter,source_workload,source_workload_namespace,source_principal,destination_workload,"           \
	"destination_workload_namespace,destination_principal,destination_service_name,"                     \
	"destination_service_namespace,connection_security_policy"
enum { L_REP, L_SRC_WL, L_SRC_NS, L_SRC_PR, L_DST_WL, L_DST_NS, L_DST_PR, L_SVC, L_SVC_NS, L_SEC, N_KEY };
static const char *const key_labels[N_KEY] = {
	"reporter", "source_workload", "source_workload_namespace", "source_principal",
	"destination_workload", "destination_workload_namespace", "destination_principal",
	"destination_service_name", "destination_service_namespace", "connection_security_policy",
};
#define BUCKET_LABELS                                                                                         \
	"reporter,destination_workload,destination_workload_namespace,destination_service_name,"              \
	"destination_service_namespace,le"
/* Linkerd's success, as sinewd counts it: a response code from 1 to 499
 * and a gRPC status of OK or none. */
#define OK_MATCH "response_code=~\"[1-9]|[1-9][0-9]|[1-4][0-9][0-9]\",grpc_response_status=~\"|unknown|0\""

/* ---- the client ----------------------------------------------------------- */

/* Where this thread's errors go: stderr ("sinew: ..."), or a buffer
 * (sn_cli_prom_capture: sinewd answering its API from Prometheus). */
static __thread struct sn_out *prom_errors;

static void prom_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void prom_say(const char *fmt, ...)
{
	char msg[3000];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	size_t n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		msg[--n] = '\0';
	if (prom_errors == NULL) {
		fprintf(stderr, "sinew: %s\n", msg);
		return;
	}
	if (prom_errors->len > 0)
		sn_out_cstr(prom_errors, "; ");
	sn_out_cstr(prom_errors, msg);
}

void sn_cli_prom_capture(struct sn_out *errors)
{
	prom_errors = errors;
}

const char *sn_cli_prometheus(const char *flag)
{
	if (flag != NULL && flag[0])
		return flag;
	const char *env = getenv("SINEW_PROMETHEUS");
	return env != NULL && env[0] ? env : NULL;
}

int sn_cli_prom_open(const char *url, struct sn_cli_prom *p)
{
	char err[600];
	struct sn_http_url u;
	struct timespec ts;

	memset(p, 0, sizeof(*p));
	p->names = "sinew";
	if (strncmp(url, "http://", 7) != 0) {
		prom_say("--prometheus %.300s: want an http:// URL, e.g. http://127.0.0.1:9090%s\n", url,
			strncmp(url, "https://", 8) == 0 ? " (https is not supported yet)" : "");
		return -1;
	}
	const char *slash = strchr(url + 7, '/');
	size_t blen = slash ? (size_t)(slash - url) : strlen(url);
	const char *prefix = slash ? slash : "";
	size_t plen = strlen(prefix);
	while (plen > 0 && prefix[plen - 1] == '/')
		plen--;
	if (blen >= sizeof(p->base) || plen >= sizeof(p->prefix) || strcspn(url, "?# \t\r\n") != strlen(url)) {
		prom_say("--prometheus %.300s: want http://HOST:PORT[/PATH], e.g. http://127.0.0.1:9090\n",
			url);
		return -1;
	}
	for (size_t i = 0; i < plen; i++) {
		unsigned char c = (unsigned char)prefix[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("/-._~%", c))) {
			prom_say("--prometheus %.300s: the path has a character a URL path cannot hold\n",
				url);
			return -1;
		}
	}
	memcpy(p->base, url, blen);
	memcpy(p->prefix, prefix, plen);
	if (sn_http_url_parse(p->base, &u, err, sizeof(err)) != 0) {
		prom_say("--prometheus %s\n", err);
		return -1;
	}
	snprintf(p->text, sizeof(p->text), "%s%s", u.text, p->prefix);
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(p->time, sizeof(p->time), "%lld.%03ld", (long long)ts.tv_sec, ts.tv_nsec / 1000000);
	return 0;
}

void sn_cli_prom_vector_free(struct sn_cli_prom_vector *v)
{
	sn_cli_json_free(v->doc);
	free(v->body);
	free(v->v);
	memset(v, 0, sizeof(*v));
}

const char *sn_cli_prom_label(const struct sn_cli_prom_sample *s, const char *name, const char *def)
{
	const char *v = sn_cli_json_str(s->metric, name);
	return v != NULL && v[0] ? v : def;
}

/* A one-line excerpt of a body for a message: printable ASCII, cut. */
static void excerpt(const char *body, size_t len, char *buf, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 4 < size; i++) {
		unsigned char c = (unsigned char)body[i];
		buf[o++] = c >= 0x20 && c < 0x7f ? (char)c : ' ';
	}
	if (o + 4 >= size && len > o) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
}

int sn_cli_prom_query(const struct sn_cli_prom *p, const char *promql, struct sn_cli_prom_vector *out)
{
	struct sn_http_response r;
	struct sn_out path = { 0 };
	char err[800], ex[240];
	size_t ql = strlen(promql);
	char *esc = malloc(3 * ql + 1);
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (esc == NULL) {
		prom_say("out of memory\n");
		return -1;
	}
	/* every byte but the unreserved ones percent-encoded: '+', '&', '=',
	 * '{', '"', '~' and '|' mean something in a query string */
	sn_cli_url_escape(promql, esc, 3 * ql + 1);
	sn_out_printf(&path, "%s/api/v1/query?query=%s&time=%s", p->prefix, esc, p->time);
	free(esc);
	if (path.failed) {
		prom_say("out of memory\n");
		sn_out_free(&path);
		return -1;
	}
	if (sn_cli_http(p->base, "GET", path.p, NULL, NULL, 0, SN_CLI_TIMEOUT_MS, "Prometheus", HINT, &r, err,
			sizeof(err)) != 0) {
		prom_say("%s\n", err);
		sn_out_free(&path);
		return -1;
	}
	sn_out_free(&path);
	struct fy_document *doc = sn_cli_json_parse(r.body, r.len);
	struct fy_node *root = sn_cli_json_root(doc);
	const char *status = sn_cli_json_str(root, "status");
	const char *etype = sn_cli_json_str(root, "errorType");
	/* Prometheus's answers: "success", or "error" with an errorType */
	if (status == NULL || (strcmp(status, "success") != 0 && (strcmp(status, "error") != 0 || etype == NULL))) {
		excerpt(r.body, r.len, ex, sizeof(ex));
		if (r.status == 503)
			prom_say("Prometheus at %s is not ready (503: %s); try again once it has started\n",
				p->text, ex);
		else
			prom_say("%s does not answer as Prometheus's HTTP API (GET %s/api/v1/query: %d %s); "
					"--prometheus wants Prometheus's base URL, e.g. http://127.0.0.1:9090\n",
				p->text, p->prefix, r.status, ex);
		goto done;
	}
	if (strcmp(status, "success") != 0) {
		const char *type = etype;
		const char *msg = sn_cli_json_str_or(root, "error", "(no message)");
		prom_say("Prometheus at %s refused a query (%d %s: %.500s)%s; the query was: %.2000s\n",
			p->text, r.status, type, msg,
			!strcmp(type, "timeout") || !strcmp(type, "execution")
				? "; a shorter --window or a narrower view asks it for less"
				: "",
			promql);
		goto done;
	}
	struct fy_node *data = sn_cli_json_get(root, "data");
	const char *type = sn_cli_json_str(data, "resultType");
	struct fy_node *result = sn_cli_json_get(data, "result");
	if (type == NULL || strcmp(type, "vector") != 0 || (result != NULL && !fy_node_is_sequence(result))) {
		prom_say("Prometheus at %s answered a %s, not an instant vector, for: %.2000s\n", p->text,
			type ? type : "malformed result", promql);
		goto done;
	}
	size_t n = sn_cli_json_len(result);
	if (n > SN_CLI_PROM_MAX_SERIES) {
		prom_say("Prometheus at %s answered %zu series, more than the %d this client reads, "
				"for: %.2000s\n", p->text, n, SN_CLI_PROM_MAX_SERIES, promql);
		goto done;
	}
	out->v = calloc(n ? n : 1, sizeof(*out->v));
	if (out->v == NULL) {
		prom_say("out of memory\n");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		struct fy_node *it = sn_cli_json_at(result, i);
		struct fy_node *value = sn_cli_json_get(it, "value");
		struct fy_node *v = sn_cli_json_len(value) == 2 ? sn_cli_json_at(value, 1) : NULL;
		const char *s = v != NULL && fy_node_is_scalar(v) ? fy_node_get_scalar0(v) : NULL;
		if (s == NULL) {
			prom_say("Prometheus at %s answered a sample without a value, for: %.2000s\n",
				p->text, promql);
			goto done;
		}
		out->v[out->n].metric = sn_cli_json_get(it, "metric");
		out->v[out->n].value = strtod(s, NULL);
		out->n++;
	}
	out->doc = doc;
	out->body = r.body;
	doc = NULL;
	r.body = NULL;
	rc = 0;
done:
	if (rc != 0) {
		free(out->v);
		memset(out, 0, sizeof(*out));
	}
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
	return rc;
}

int sn_cli_prom_detect(struct sn_cli_prom *p)
{
	struct sn_cli_prom_vector v;
	int sinew = 0, istio = 0;

	if (sn_cli_prom_query(p, "count by (__name__) ({__name__=~\"sinew_requests_total|istio_requests_total\"})",
			      &v) != 0)
		return -1;
	for (size_t i = 0; i < v.n; i++) {
		const char *name = sn_cli_prom_label(&v.v[i], "__name__", "");
		sinew |= !strcmp(name, "sinew_requests_total");
		istio |= !strcmp(name, "istio_requests_total");
	}
	sn_cli_prom_vector_free(&v);
	p->names = !sinew && istio ? "istio" : "sinew";
	return 0;
}

/* ---- a small string index ------------------------------------------------- */

/* Keys are borrowed (they live as long as the index's user needs them);
 * an entry names an item by its position. */
struct ix_slot {
	const char *key;
	size_t item;
};

struct ix {
	struct ix_slot *v;
	size_t cap, n;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h ^ (h >> 29);
}

/* The item of key, or -1. */
static long ix_find(const struct ix *ix, const char *key)
{
	if (ix->cap == 0)
		return -1;
	for (size_t i = hash_str(key) & (ix->cap - 1); ix->v[i].key != NULL; i = (i + 1) & (ix->cap - 1))
		if (!strcmp(ix->v[i].key, key))
			return (long)ix->v[i].item;
	return -1;
}

static int ix_put(struct ix *ix, const char *key, size_t item)
{
	if (2 * (ix->n + 1) > ix->cap) {
		size_t ncap = ix->cap ? 2 * ix->cap : 64;
		struct ix_slot *nv = calloc(ncap, sizeof(*nv));
		if (nv == NULL)
			return -1;
		for (size_t i = 0; i < ix->cap; i++) {
			if (ix->v[i].key == NULL)
				continue;
			size_t j = hash_str(ix->v[i].key) & (ncap - 1);
			while (nv[j].key != NULL)
				j = (j + 1) & (ncap - 1);
			nv[j] = ix->v[i];
		}
		free(ix->v);
		ix->v = nv;
		ix->cap = ncap;
	}
	size_t j = hash_str(key) & (ix->cap - 1);
	while (ix->v[j].key != NULL)
		j = (j + 1) & (ix->cap - 1);
	ix->v[j].key = key;
	ix->v[j].item = item;
	ix->n++;
	return 0;
}

/* "a" US "b" [US "c" ...], malloc'd: label values joined for an index. */
static char *join(const char *const *parts, size_t n)
{
	struct sn_out o = { 0 };
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			sn_out_raw(&o, "\x1f", 1);
		sn_out_cstr(&o, parts[i]);
	}
	sn_out_raw(&o, "", 1);
	if (o.failed) {
		sn_out_free(&o);
		return NULL;
	}
	return o.p;
}

/* ---- what the views are computed from ------------------------------------- */

/* Requests of a window (counts: rate x seconds), summed. dur holds the
 * cumulative bucket counts by bound (index into struct data's les). */
struct tally {
	double requests, ok, reached, mtls;
	double dur[MAX_LE];
};

static void tally_add(struct tally *t, const struct tally *x)
{
	t->requests += x->requests;
	t->ok += x->ok;
	t->reached += x->reached;
	t->mtls += x->mtls;
	for (int b = 0; b < MAX_LE; b++)
		t->dur[b] += x->dur[b];
}

struct proxy {
	const char *id, *ns, *workload, *service;
	int connected;
	double tcp;
};

struct row {
	const char *ns, *name;
	char *key;
	struct tally in, out, unrouted;
	unsigned connected, seen;
	double tcp;
	int pseudo;
};

struct rows {
	struct row *v;
	size_t n, cap;
	struct ix ix;
	int failed;
};

struct data {
	struct sn_cli_prom prom;
	double seconds;
	char range[32];                      /* "[60s]" */
	struct sn_cli_prom_vector now, seen, tcp, total, ok, buckets;
	struct proxy *proxies;
	size_t n_proxies;
	struct ix proxy_ix;                  /* by id */
	struct ix workload_ix;               /* "ns US workload" of every proxy (items unused) */
	char **workload_keys;
	double les[MAX_LE];
	size_t n_les;
};

static void data_free(struct data *d)
{
	sn_cli_prom_vector_free(&d->now);
	sn_cli_prom_vector_free(&d->seen);
	sn_cli_prom_vector_free(&d->tcp);
	sn_cli_prom_vector_free(&d->total);
	sn_cli_prom_vector_free(&d->ok);
	sn_cli_prom_vector_free(&d->buckets);
	free(d->proxies);
	free(d->proxy_ix.v);
	free(d->workload_ix.v);
	for (size_t i = 0; d->workload_keys != NULL && i < d->n_proxies; i++)
		free(d->workload_keys[i]);
	free(d->workload_keys);
}

static int query(struct data *d, struct sn_cli_prom_vector *v, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int query(struct data *d, struct sn_cli_prom_vector *v, const char *fmt, ...)
{
	struct sn_out q = { 0 };
	va_list ap;
	char *p;

	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	p = n >= 0 ? sn_out_reserve(&q, (size_t)n + 1) : NULL;
	if (p == NULL) {
		prom_say("out of memory\n");
		sn_out_free(&q);
		return -1;
	}
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	int rc = sn_cli_prom_query(&d->prom, p, v);
	sn_out_free(&q);
	return rc;
}

/* The proxies: targets of sinewd's SD with `up` in the window (seen) or
 * now (connected), and their open downstream connections. */
static int load_proxies(struct data *d, int with_tcp)
{
	if (query(d, &d->now, "max by (sinew_proxy, namespace, service, workload) (up{sinew_proxy!=\"\"})") != 0 ||
	    query(d, &d->seen, "max by (sinew_proxy, namespace, service, workload) (max_over_time(up{sinew_proxy!=\"\"}%s))",
		  d->range) != 0)
		return -1;
	if (with_tcp && query(d, &d->tcp, "sum by (sinew_proxy) "
					   "(sinew_downstream_connections_active{sinew_proxy!=\"\"})") != 0)
		return -1;
	size_t cap = d->now.n + d->seen.n;
	d->proxies = calloc(cap ? cap : 1, sizeof(*d->proxies));
	d->workload_keys = calloc(cap ? cap : 1, sizeof(*d->workload_keys));
	if (d->proxies == NULL || d->workload_keys == NULL)
		goto oom;
	for (int pass = 0; pass < 2; pass++) {
		const struct sn_cli_prom_vector *v = pass == 0 ? &d->now : &d->seen;
		for (size_t i = 0; i < v->n; i++) {
			const char *id = sn_cli_prom_label(&v->v[i], "sinew_proxy", NULL);
			if (id == NULL)
				continue;
			long at = ix_find(&d->proxy_ix, id);
			if (at >= 0)
				continue;
			struct proxy *px = &d->proxies[d->n_proxies];
			px->id = id;
			px->ns = sn_cli_prom_label(&v->v[i], "namespace", "default");
			/* the proxy's workload (service-version); a sinewd that
			 * predates the label: its service, as it named workloads */
			px->service = sn_cli_prom_label(&v->v[i], "service", UNKNOWN);
			px->workload = sn_cli_prom_label(&v->v[i], "workload", px->service);
			px->connected = pass == 0;
			const char *parts[] = { px->ns, px->workload };
			d->workload_keys[d->n_proxies] = join(parts, 2);
			if (d->workload_keys[d->n_proxies] == NULL || ix_put(&d->proxy_ix, id, d->n_proxies) != 0)
				goto oom;
			if (ix_find(&d->workload_ix, d->workload_keys[d->n_proxies]) < 0 &&
			    ix_put(&d->workload_ix, d->workload_keys[d->n_proxies], d->n_proxies) != 0)
				goto oom;
			d->n_proxies++;
		}
	}
	for (size_t i = 0; i < d->tcp.n; i++) {
		long at = ix_find(&d->proxy_ix, sn_cli_prom_label(&d->tcp.v[i], "sinew_proxy", ""));
		if (at >= 0 && isfinite(d->tcp.v[i].value))
			d->proxies[at].tcp += d->tcp.v[i].value;
	}
	return 0;
oom:
	prom_say("out of memory\n");
	return -1;
}

/* The destination workload a series names: a client's proxy names a
 * registered proxy "proxy-<id>", which is that proxy's workload. */
static void dst_workload(const struct data *d, const char *rep, const char **ns, const char **wl)
{
	if (strcmp(rep, "source") != 0 || strncmp(*wl, REG_PREFIX, sizeof(REG_PREFIX) - 1) != 0 ||
	    (*wl)[sizeof(REG_PREFIX) - 1] == '\0')
		return;
	long at = ix_find(&d->proxy_ix, *wl + sizeof(REG_PREFIX) - 1);
	if (at >= 0) {
		*ns = d->proxies[at].ns;
		*wl = d->proxies[at].workload;
	}
}

/* The request series of the window, grouped as sinewd keys them: the
 * total rate and (stat) the successful rate, and (stat) the duration
 * buckets. */
static int load_requests(struct data *d, int with_ok)
{
	const char *n = d->prom.names;
	if (query(d, &d->total, "sum by (" KEY_LABELS ") (rate(%s_requests_total%s))", n, d->range) != 0)
		return -1;
	if (!with_ok)
		return 0;
	if (query(d, &d->ok, "sum by (" KEY_LABELS ") (rate(%s_requests_total{" OK_MATCH "}%s))", n, d->range) != 0 ||
	    query(d, &d->buckets, "sum by (" BUCKET_LABELS ") (rate(%s_request_duration_milliseconds_bucket%s))", n,
		  d->range) != 0)
		return -1;
	return 0;
}

static void key_values(const struct sn_cli_prom_sample *s, const char **v)
{
	for (int k = 0; k < N_KEY; k++)
		v[k] = sn_cli_prom_label(s, key_labels[k], UNKNOWN);
}

/* A request series' security, as sinewd reads it: the destination's
 * policy label, or on a client's side both principals proven. */
static int is_mtls(const char *const *v)
{
	if (!strcmp(v[L_SEC], "mutual_tls"))
		return 1;
	return !strcmp(v[L_REP], "source") && strcmp(v[L_SRC_PR], UNKNOWN) != 0 && strcmp(v[L_DST_PR], UNKNOWN) != 0;
}

/* ---- rows (sinew stat) ------------------------------------------------------ */

static struct row *row_get(struct rows *rs, const char *ns, const char *name)
{
	const char *parts[] = { ns, name };
	char *key = join(parts, 2);
	if (key == NULL) {
		rs->failed = 1;
		return NULL;
	}
	long at = ix_find(&rs->ix, key);
	if (at >= 0) {
		free(key);
		return &rs->v[at];
	}
	if (rs->n == rs->cap) {
		size_t ncap = rs->cap ? 2 * rs->cap : 32;
		struct row *nv = realloc(rs->v, ncap * sizeof(*nv));
		if (nv == NULL) {
			free(key);
			rs->failed = 1;
			return NULL;
		}
		rs->v = nv;
		rs->cap = ncap;
	}
	struct row *r = &rs->v[rs->n];
	memset(r, 0, sizeof(*r));
	r->ns = ns;
	r->name = name;
	r->key = key;
	if (ix_put(&rs->ix, key, rs->n) != 0) {
		free(key);
		rs->failed = 1;
		return NULL;
	}
	rs->n++;
	return r;
}

static void rows_free(struct rows *rs)
{
	for (size_t i = 0; i < rs->n; i++)
		free(rs->v[i].key);
	free(rs->v);
	free(rs->ix.v);
}

/* As sinewd's service_workload (src/control/stats.c): the one workload
 * whose proxies serve service ns/name, else the service's name. */
static const char *service_workload(const struct data *d, const char *ns, const char *name)
{
	const char *found = NULL;
	for (size_t i = 0; i < d->n_proxies; i++) {
		const struct proxy *px = &d->proxies[i];
		if (strcmp(px->ns, ns) != 0 || strcmp(px->service, name) != 0)
			continue;
		if (found != NULL && strcmp(found, px->workload) != 0)
			return name;
		found = px->workload;
	}
	return found != NULL ? found : name;
}

/* The row of a series and which of its tallies it feeds (sinewd's
 * build_rows): clients' proxies' unrouted requests go to the service's
 * workload (service_workload); else the service (svc view) or the
 * destination workload. */
static struct tally *series_tally(const struct data *d, struct rows *rs, int by_service, const char *rep,
				  const char *dst_ns, const char *dst_wl, const char *svc_ns, const char *svc,
				  int *unrouted)
{
	int source = !strcmp(rep, "source");
	if (!source && strcmp(rep, "destination") != 0)
		return NULL;   /* the overflow series: nothing to file it under */
	*unrouted = source && !strcmp(dst_wl, UNKNOWN);
	const char *ns = dst_ns, *name = dst_wl;
	dst_workload(d, rep, &ns, &name);
	if (*unrouted || by_service) {
		ns = svc_ns;
		name = by_service ? svc : service_workload(d, svc_ns, svc);
	}
	struct row *r = row_get(rs, ns, name);
	if (r == NULL)
		return NULL;
	return !source ? &r->in : *unrouted ? &r->unrouted : &r->out;
}

static size_t le_index(struct data *d, const char *le)
{
	double v = strtod(le, NULL);
	for (size_t i = 0; i < d->n_les; i++)
		if (d->les[i] == v)
			return i;
	if (d->n_les == MAX_LE)
		return MAX_LE;
	d->les[d->n_les] = v;
	return d->n_les++;
}

static void build_rows(struct data *d, struct rows *rs, int by_service)
{
	for (size_t i = 0; i < d->n_proxies; i++) {
		const struct proxy *px = &d->proxies[i];
		struct row *r = row_get(rs, px->ns, by_service ? px->service : px->workload);
		if (r == NULL)
			return;
		r->seen++;
		if (px->connected) {
			r->connected++;
			r->tcp += px->tcp;
		}
	}
	struct ix ok_ix = { 0 };
	char **ok_keys = calloc(d->ok.n ? d->ok.n : 1, sizeof(*ok_keys));
	if (ok_keys == NULL) {
		rs->failed = 1;
		return;
	}
	for (size_t i = 0; i < d->ok.n; i++) {
		const char *v[N_KEY];
		key_values(&d->ok.v[i], v);
		ok_keys[i] = join(v, N_KEY);
		if (ok_keys[i] == NULL || ix_put(&ok_ix, ok_keys[i], i) != 0) {
			rs->failed = 1;
			goto done;
		}
	}
	for (size_t i = 0; i < d->total.n; i++) {
		const struct sn_cli_prom_sample *s = &d->total.v[i];
		const char *v[N_KEY];
		int unrouted;
		if (!isfinite(s->value) || s->value <= 0)
			continue;
		key_values(s, v);
		struct tally *t = series_tally(d, rs, by_service, v[L_REP], v[L_DST_NS], v[L_DST_WL], v[L_SVC_NS],
					       v[L_SVC], &unrouted);
		if (rs->failed)
			goto done;
		if (t == NULL)
			continue;
		char *key = join(v, N_KEY);
		if (key == NULL) {
			rs->failed = 1;
			goto done;
		}
		long at = ix_find(&ok_ix, key);
		free(key);
		double requests = s->value * d->seconds;
		double ok = at >= 0 && isfinite(d->ok.v[at].value) ? d->ok.v[at].value * d->seconds : 0;
		t->requests += requests;
		t->ok += SN_MIN(ok, requests);
		if (!unrouted) {
			t->reached += requests;
			if (is_mtls(v))
				t->mtls += requests;
		}
	}
	for (size_t i = 0; i < d->buckets.n; i++) {
		const struct sn_cli_prom_sample *s = &d->buckets.v[i];
		int unrouted;
		if (!isfinite(s->value) || s->value <= 0)
			continue;
		size_t b = le_index(d, sn_cli_prom_label(s, "le", "+Inf"));
		if (b == MAX_LE)
			continue;
		struct tally *t = series_tally(
			d, rs, by_service, sn_cli_prom_label(s, "reporter", UNKNOWN),
			sn_cli_prom_label(s, "destination_workload_namespace", UNKNOWN),
			sn_cli_prom_label(s, "destination_workload", UNKNOWN),
			sn_cli_prom_label(s, "destination_service_namespace", UNKNOWN),
			sn_cli_prom_label(s, "destination_service_name", UNKNOWN), &unrouted);
		if (rs->failed)
			goto done;
		if (t != NULL)
			t->dur[b] += s->value * d->seconds;
	}
	/* A workload view cannot name the workload of an unrouted request
	 * without a proxy of that name: it counts in its namespace only. */
	for (size_t i = 0; !by_service && i < rs->n; i++) {
		struct row *r = &rs->v[i];
		if (r->seen == 0 && r->in.requests <= 0 && r->out.requests <= 0)
			r->pseudo = 1;
	}
done:
	for (size_t i = 0; i < d->ok.n; i++)
		free(ok_keys[i]);
	free(ok_keys);
	free(ok_ix.v);
}

/* What a row shows: its proxies' inbound view when it has proxies. */
static void row_total(const struct row *r, struct tally *t)
{
	*t = r->seen > 0 || r->in.requests > 0 ? r->in : r->out;
	tally_add(t, &r->unrouted);
}

/* histogram_quantile over cumulative bucket counts by bound (the bounds
 * as they came, in any order): sn_quantile_cumulative, as sinewd's. */
static double quantile(const struct data *d, const double *cum, double q)
{
	size_t order[MAX_LE], n = 0;
	for (size_t i = 0; i < d->n_les; i++) {
		size_t j = n++;
		while (j > 0 && d->les[order[j - 1]] > d->les[i]) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	double le[MAX_LE], c[MAX_LE];
	for (size_t i = 0; i < n; i++) {
		le[i] = d->les[order[i]];
		c[i] = cum[order[i]];
	}
	return sn_quantile_cumulative(le, c, n, q);
}


static uint64_t count_of(double v)
{
	return isfinite(v) && v > 0 ? (uint64_t)(v + 0.5) : 0;
}

static void out_row(struct sn_out *o, const struct data *d, const char *ns, const char *name, const struct tally *t,
		    unsigned connected, unsigned seen, double tcp, const char *reported_by)
{
	uint64_t requests = count_of(t->requests);
	const struct sn_stats_row_json r = {
		.ns = ns, .name = name, .connected = connected, .seen = seen,
		/* a window whose requests round to none shows none, as sinewd's would */
		.success = requests > 0 ? SN_MIN(t->ok / t->requests, 1.0) : NAN,
		.requests = requests, .rps = t->requests > 0 ? t->requests / d->seconds : 0,
		.p50 = quantile(d, t->dur, 0.5), .p95 = quantile(d, t->dur, 0.95), .p99 = quantile(d, t->dur, 0.99),
		.tcp = (int64_t)count_of(tcp),
		.mtls_share = t->reached > 0 ? SN_MIN(t->mtls / t->reached, 1.0) : NAN,
		.reported_by = reported_by,
	};
	sn_stats_json_row(o, &r);
}

static int cmp_row(const void *a, const void *b)
{
	const struct row *x = *(const struct row *const *)a, *y = *(const struct row *const *)b;
	int c = strcmp(x->ns, y->ns);
	return c ? c : strcmp(x->name, y->name);
}

/* The rows as pointers sorted by namespace and name; NULL without memory. */
static const struct row **sorted(const struct rows *rs)
{
	const struct row **v = malloc((rs->n ? rs->n : 1) * sizeof(*v));
	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < rs->n; i++)
		v[i] = &rs->v[i];
	if (rs->n > 0)
		qsort(v, rs->n, sizeof(*v), cmp_row);
	return v;
}

enum resource { RES_DEPLOY, RES_SVC, RES_NS };

static int render_stat(struct data *d, enum resource res, const char *ns, const char *name, struct sn_out *o)
{
	struct rows rs = { 0 }, nss = { 0 };
	const struct row **v = NULL;
	size_t shown = 0;
	int rc = -1;

	if (load_proxies(d, 1) != 0 || load_requests(d, 1) != 0)
		return -1;
	build_rows(d, &rs, res == RES_SVC);
	if (rs.failed)
		goto oom;
	sn_out_cstr(o, "[");
	if (res == RES_NS) {
		/* namespaces: their workloads summed (each with its fallback) */
		for (size_t i = 0; i < rs.n; i++) {
			const struct row *r = &rs.v[i];
			struct row *n = row_get(&nss, r->ns, r->ns);
			struct tally t;
			if (n == NULL)
				goto oom;
			row_total(r, &t);
			tally_add(&n->in, &t);
			n->connected += r->connected;
			n->seen += SN_MAX(r->connected, r->seen);
			n->tcp += r->tcp;
		}
		if ((v = sorted(&nss)) == NULL)
			goto oom;
		for (size_t i = 0; i < nss.n; i++) {
			const struct row *r = v[i];
			if ((ns != NULL && strcmp(r->ns, ns) != 0) || (name != NULL && strcmp(r->ns, name) != 0))
				continue;
			if (shown++)
				sn_out_cstr(o, ",");
			out_row(o, d, r->ns, r->ns, &r->in, r->connected, r->seen, r->tcp, "destination");
		}
	} else {
		if ((v = sorted(&rs)) == NULL)
			goto oom;
		for (size_t i = 0; i < rs.n; i++) {
			const struct row *r = v[i];
			struct tally t;
			if (r->pseudo || (ns != NULL && strcmp(r->ns, ns) != 0) ||
			    (name != NULL && strcmp(r->name, name) != 0))
				continue;
			row_total(r, &t);
			if (shown++)
				sn_out_cstr(o, ",");
			out_row(o, d, r->ns, r->name, &t, r->connected, r->seen, r->tcp,
				r->seen > 0 || r->in.requests > 0 ? "destination" : "source");
		}
	}
	sn_out_cstr(o, "]\n");
	rc = 0;
	goto done;
oom:
	prom_say("out of memory\n");
done:
	free(v);
	rows_free(&rs);
	rows_free(&nss);
	return rc;
}

/* ---- edges (sinew edges) ---------------------------------------------------- */

struct edge {
	const char *src_ns, *src, *dst_ns, *dst;
	char *key;
	double requests, reached, mtls;
	const char *client_id, *server_id;
	double client_at, server_at;         /* rate of the series each identity came from */
};

static int cmp_edge(const void *a, const void *b)
{
	const struct edge *x = *(const struct edge *const *)a, *y = *(const struct edge *const *)b;
	int c = strcmp(x->src_ns, y->src_ns);
	if (c == 0)
		c = strcmp(x->src, y->src);
	if (c == 0)
		c = strcmp(x->dst_ns, y->dst_ns);
	return c ? c : strcmp(x->dst, y->dst);
}

static int render_edges(struct data *d, const char *ns, struct sn_out *o)
{
	struct edge *es = NULL, **v = NULL;
	struct ix ix = { 0 };
	size_t n = 0, cap = 0;
	int rc = -1;

	if (load_proxies(d, 0) != 0 || load_requests(d, 0) != 0)
		return -1;
	/* From the clients' proxies: they know both ends (and the server's
	 * identity, proven by the handshake). */
	for (size_t i = 0; i < d->total.n; i++) {
		const struct sn_cli_prom_sample *s = &d->total.v[i];
		const char *kv[N_KEY];
		if (!isfinite(s->value) || s->value <= 0)
			continue;
		key_values(s, kv);
		if (strcmp(kv[L_REP], "source") != 0)
			continue;
		int unrouted = !strcmp(kv[L_DST_WL], UNKNOWN);
		const char *dns = kv[L_DST_NS], *dst = kv[L_DST_WL];
		dst_workload(d, kv[L_REP], &dns, &dst);
		if (unrouted) {
			/* answered by the client's proxy: the service's workload, if it has proxies */
			const char *wl = service_workload(d, kv[L_SVC_NS], kv[L_SVC]);
			const char *parts[] = { kv[L_SVC_NS], wl };
			char *wk = join(parts, 2);
			if (wk == NULL)
				goto oom;
			long at = ix_find(&d->workload_ix, wk);
			free(wk);
			if (at < 0)
				continue;
			dns = kv[L_SVC_NS];
			dst = wl;
		}
		if (ns != NULL && strcmp(kv[L_SRC_NS], ns) != 0 && strcmp(dns, ns) != 0)
			continue;
		const char *parts[] = { kv[L_SRC_NS], kv[L_SRC_WL], dns, dst };
		char *key = join(parts, 4);
		if (key == NULL)
			goto oom;
		long at = ix_find(&ix, key);
		struct edge *e;
		if (at >= 0) {
			free(key);
			e = &es[at];
		} else {
			if (n == cap) {
				size_t ncap = cap ? 2 * cap : 32;
				struct edge *ne = realloc(es, ncap * sizeof(*ne));
				if (ne == NULL) {
					free(key);
					goto oom;
				}
				es = ne;
				cap = ncap;
			}
			e = &es[n];
			memset(e, 0, sizeof(*e));
			e->src_ns = kv[L_SRC_NS];
			e->src = kv[L_SRC_WL];
			e->dst_ns = dns;
			e->dst = dst;
			e->key = key;
			if (ix_put(&ix, key, n) != 0) {
				free(key);
				goto oom;
			}
			n++;
		}
		double requests = s->value * d->seconds;
		e->requests += requests;
		if (!unrouted) {
			e->reached += requests;
			if (is_mtls(kv))
				e->mtls += requests;
		}
		/* the identities of the busiest series that proved them */
		if (strcmp(kv[L_SRC_PR], UNKNOWN) != 0 && s->value > e->client_at) {
			e->client_id = kv[L_SRC_PR];
			e->client_at = s->value;
		}
		if (strcmp(kv[L_DST_PR], UNKNOWN) != 0 && s->value > e->server_at) {
			e->server_id = kv[L_DST_PR];
			e->server_at = s->value;
		}
	}
	v = malloc((n ? n : 1) * sizeof(*v));
	if (v == NULL)
		goto oom;
	for (size_t i = 0; i < n; i++)
		v[i] = &es[i];
	if (n > 0)
		qsort(v, n, sizeof(*v), cmp_edge);
	sn_out_cstr(o, "[");
	for (size_t i = 0; i < n; i++) {
		const struct edge *e = v[i];
		if (i > 0)
			sn_out_cstr(o, ",");
		const struct sn_stats_edge_json ej = {
			.src_ns = e->src_ns, .src = e->src, .dst_ns = e->dst_ns, .dst = e->dst,
			.client_id = e->client_id, .server_id = e->server_id,
			/* secured: every request that reached the destination went over mutual TLS */
			.mtls = e->reached > 0 && e->mtls >= e->reached,
			.requests = count_of(e->requests), .rps = e->requests / d->seconds,
		};
		sn_stats_json_edge(o, &ej);
	}
	sn_out_cstr(o, "]\n");
	rc = 0;
	goto done;
oom:
	prom_say("out of memory\n");
done:
	for (size_t i = 0; i < n; i++)
		free(es[i].key);
	free(es);
	free(v);
	free(ix.v);
	return rc;
}

/* ---- routes ---------------------------------------------------------------- */

/* The route series' labels, as sinewd keys them; by client, also the
 * scrape target's namespace and workload (sinewd's SD labels). */
#define ROUTE_LABELS "virtual_service_namespace,virtual_service,route,destination_service," \
		     "destination_service_name,destination_service_namespace"
enum { RL_VS_NS, RL_VS, RL_ROUTE, RL_SVC, RL_SVC_NAME, RL_SVC_NS, RL_CLIENT_NS, RL_CLIENT, N_RL };
static const char *const route_labels[N_RL] = {
	"virtual_service_namespace", "virtual_service", "route", "destination_service",
	"destination_service_name", "destination_service_namespace", "namespace", "workload",
};

struct route_row {
	const char *v[N_RL];
	char *key;
	struct tally t;
};

static int cmp_route_row(const void *a, const void *b)
{
	static const int order[] = { RL_CLIENT_NS, RL_CLIENT, RL_SVC_NS, RL_SVC_NAME, RL_SVC };
	const struct route_row *x = a, *y = b;
	int c = 0;
	for (size_t i = 0; c == 0 && i < SN_ARRAY_LEN(order); i++)
		c = strcmp(x->v[order[i]], y->v[order[i]]);
	/* [DEFAULT] last, as sinewd sorts them */
	if (c == 0 && (x->v[RL_VS][0] == '\0') != (y->v[RL_VS][0] == '\0'))
		return x->v[RL_VS][0] == '\0' ? 1 : -1;
	if (c == 0 && (c = strcmp(x->v[RL_VS_NS], y->v[RL_VS_NS])) == 0 && (c = strcmp(x->v[RL_VS], y->v[RL_VS])) == 0)
		c = strcmp(x->v[RL_ROUTE], y->v[RL_ROUTE]);
	return c;
}

/* GET /api/v1/routes from sinew_route_* (docs/observability.md, "Route
 * metrics"), rows as sinewd's: by service (its requests from every
 * client) or by client workload. */
static int render_routes(struct data *d, int by_client, const char *ns, const char *name, struct sn_out *o)
{
	struct sn_cli_prom_vector total = { 0 }, ok = { 0 }, buckets = { 0 };
	struct route_row *rows = NULL;
	struct ix ix = { 0 };
	size_t n = 0, nl = by_client ? N_RL : RL_CLIENT_NS;
	const char *extra = by_client ? ",namespace,workload" : "";
	int rc = -1;

	if (query(d, &total, "sum by (" ROUTE_LABELS "%s) (rate(sinew_route_requests_total%s))", extra, d->range) != 0 ||
	    query(d, &ok, "sum by (" ROUTE_LABELS "%s) (rate(sinew_route_responses_total{classification=\"success\"}%s))",
		  extra, d->range) != 0 ||
	    query(d, &buckets, "sum by (" ROUTE_LABELS "%s,le) (rate(sinew_route_request_duration_milliseconds_bucket%s))",
		  extra, d->range) != 0)
		goto done;
	rows = calloc(total.n ? total.n : 1, sizeof(*rows));
	if (rows == NULL)
		goto oom;
	for (int pass = 0; pass < 3; pass++) {
		const struct sn_cli_prom_vector *v = pass == 0 ? &total : pass == 1 ? &ok : &buckets;
		for (size_t i = 0; i < v->n; i++) {
			const struct sn_cli_prom_sample *smp = &v->v[i];
			const char *vals[N_RL];
			if (!isfinite(smp->value) || smp->value <= 0)
				continue;
			for (size_t k = 0; k < N_RL; k++)
				vals[k] = k < nl ? sn_cli_prom_label(smp, route_labels[k], "") : "";
			const char *fns = by_client ? vals[RL_CLIENT_NS] : vals[RL_SVC_NS];
			const char *fname = by_client ? vals[RL_CLIENT] : vals[RL_SVC_NAME];
			if ((ns != NULL && strcmp(fns, ns) != 0) || (name != NULL && strcmp(fname, name) != 0))
				continue;
			char *key = join(vals, nl);
			if (key == NULL)
				goto oom;
			long at = ix_find(&ix, key);
			if (at < 0 && pass > 0) {
				free(key);   /* no requests in the window: no row */
				continue;
			}
			if (at < 0) {
				at = (long)n;
				rows[n].key = key;
				memcpy(rows[n].v, vals, sizeof(vals));
				if (ix_put(&ix, rows[n].key, n) != 0)
					goto oom;
				n++;
			} else {
				free(key);
			}
			struct tally *t = &rows[at].t;
			double x = smp->value * d->seconds;
			if (pass == 0) {
				t->requests += x;
			} else if (pass == 1) {
				t->ok += x;
			} else {
				size_t b = le_index(d, sn_cli_prom_label(smp, "le", "+Inf"));
				if (b < MAX_LE)
					t->dur[b] += x;
			}
		}
	}
	/* (the index is done with: it points at the rows as they were) */
	qsort(rows, n, sizeof(*rows), cmp_route_row);
	sn_out_cstr(o, "[");
	for (size_t i = 0; i < n; i++) {
		const struct route_row *r = &rows[i];
		uint64_t requests = count_of(r->t.requests);
		const struct sn_stats_route_json j = {
			.route = r->v[RL_ROUTE], .vs_ns = r->v[RL_VS_NS], .vs = r->v[RL_VS],
			.svc_ns = r->v[RL_SVC_NS], .svc_name = r->v[RL_SVC_NAME], .svc_host = r->v[RL_SVC],
			.client_ns = by_client ? r->v[RL_CLIENT_NS] : NULL, .client = by_client ? r->v[RL_CLIENT] : NULL,
			.success = requests > 0 ? SN_MIN(r->t.ok / r->t.requests, 1.0) : NAN,
			.requests = requests, .rps = r->t.requests / d->seconds,
			.p50 = quantile(d, r->t.dur, 0.5), .p95 = quantile(d, r->t.dur, 0.95),
			.p99 = quantile(d, r->t.dur, 0.99),
		};
		if (i > 0)
			sn_out_cstr(o, ",");
		sn_stats_json_route(o, &j);
	}
	sn_out_cstr(o, "]\n");
	rc = 0;
	goto done;
oom:
	prom_say("out of memory\n");
done:
	for (size_t i = 0; i < n; i++)
		free(rows[i].key);
	free(rows);
	free(ix.v);
	sn_cli_prom_vector_free(&total);
	sn_cli_prom_vector_free(&ok);
	sn_cli_prom_vector_free(&buckets);
	return rc;
}

/* ---- sinewd's API paths ------------------------------------------------------ */


/* A parameter of the path's query (q: after the '?', or NULL). */
static int param(const char *q, const char *name, char *buf, size_t size)
{
	return q != NULL ? sn_query_get(sn_str_make(q, strlen(q)), name, buf, size) : 0;
}

int sn_cli_prom_api_get(const char *url, const char *path, int json, struct sn_http_response *r)
{
	struct data d;
	struct sn_out o = { 0 };
	char resource[32] = "", ns[PARAM_MAX] = "", name[PARAM_MAX] = "", window[32] = "1m";
	uint32_t window_ms = 0;
	int rc;

	memset(r, 0, sizeof(*r));
	memset(&d, 0, sizeof(d));
	const char *q = strchr(path, '?');
	size_t plen = q ? (size_t)(q++ - path) : strlen(path);
	int stat = plen == strlen("/api/v1/stats") && !strncmp(path, "/api/v1/stats", plen);
	int edges = plen == strlen("/api/v1/edges") && !strncmp(path, "/api/v1/edges", plen);
	int routes = plen == strlen("/api/v1/routes") && !strncmp(path, "/api/v1/routes", plen);
	if (!stat && !edges && !routes) {
		prom_say("%.*s cannot be read from Prometheus yet; leave --prometheus out\n", (int)plen,
			path);
		return 1;
	}
	if (param(q, "resource", resource, sizeof(resource)) < 0 || param(q, "namespace", ns, sizeof(ns)) < 0 ||
	    param(q, "name", name, sizeof(name)) < 0 || param(q, "window", window, sizeof(window)) < 0) {
		prom_say("a parameter of %s is too long\n", path);
		return 1;
	}
	enum resource res = RES_DEPLOY;
	if (routes) {
		/* routes: of a service (default) or of a client workload */
		res = RES_SVC;
		if (resource[0] && strcmp(resource, "svc") && strcmp(resource, "service") && strcmp(resource, "services")) {
			if (strcmp(resource, "deploy") && strcmp(resource, "deployment") && strcmp(resource, "deployments") &&
			    strcmp(resource, "workload") && strcmp(resource, "workloads")) {
				prom_say("resource \"%s\" is not one of svc, deploy\n", resource);
				return 1;
			}
			res = RES_DEPLOY;
		}
	} else if (stat) {
		if (!strcmp(resource, "svc") || !strcmp(resource, "service") || !strcmp(resource, "services"))
			res = RES_SVC;
		else if (!strcmp(resource, "ns") || !strcmp(resource, "namespace") || !strcmp(resource, "namespaces"))
			res = RES_NS;
		else if (strcmp(resource, "deploy") && strcmp(resource, "deployment") && strcmp(resource, "deployments") &&
			 strcmp(resource, "workload") && strcmp(resource, "workloads")) {
			prom_say("resource \"%s\" is not one of deploy, svc, ns\n", resource);
			return 1;
		}
	}
	if (sn_parse_duration_ms(window, &window_ms) != 0 || window_ms < SN_CLI_PROM_WINDOW_MIN_MS ||
	    window_ms > SN_CLI_PROM_WINDOW_MAX_MS) {
		prom_say("window \"%.20s\" is not a duration from 10s to 720h (e.g. 30s, 1m, 15m; "
				"default 1m); Prometheus needs two scrapes in it\n", window);
		return 1;
	}
	d.seconds = window_ms / 1000.0;
	if (window_ms % 1000 == 0)
		snprintf(d.range, sizeof(d.range), "[%us]", window_ms / 1000);
	else
		snprintf(d.range, sizeof(d.range), "[%ums]", window_ms);
	if (sn_cli_prom_open(url, &d.prom) != 0 || sn_cli_prom_detect(&d.prom) != 0) {
		data_free(&d);
		return 1;
	}
	rc = stat     ? render_stat(&d, res, ns[0] ? ns : NULL, name[0] ? name : NULL, &o)
	     : routes ? render_routes(&d, res == RES_DEPLOY, ns[0] ? ns : NULL, name[0] ? name : NULL, &o)
		      : render_edges(&d, ns[0] ? ns : NULL, &o);
	data_free(&d);
	if (rc == 0 && o.failed) {
		prom_say("out of memory\n");
		rc = -1;
	}
	if (rc != 0) {
		sn_out_free(&o);
		return 1;
	}
	if (json) {
		fwrite(o.p, 1, o.len, stdout);
		sn_out_free(&o);
		return 2;
	}
	r->status = 200;
	r->body = o.p;
	r->len = o.len;
	/* NUL-terminated, as sn_cli_http's bodies are */
	if (sn_out_reserve(&o, 1) == NULL) {
		sn_out_free(&o);
		memset(r, 0, sizeof(*r));
		prom_say("out of memory\n");
		return 1;
	}
	r->body = o.p;
	r->body[r->len] = '\0';
	return 0;
}
