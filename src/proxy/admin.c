/* The admin port (15020 by convention): /metrics, /ready, /live,
 * /config_dump, /identity. Served on the main thread's loop by the small
 * HTTP server (src/http/server.c), one request per connection, so a slow
 * scrape never touches a worker. Bounded: request heads up to 8 KiB (bodies
 * are not read), 64 concurrent admin connections, 5 s per connection. A
 * malformed or oversized request is closed without an answer. */
#include <errno.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>

#include "sinew/json.h"
#include "sinew/log.h"
#include "proxy.h"

#define ADMIN_MAX_CONNS 64
#define ADMIN_HEAD_MAX 8192
#define ADMIN_REQUEST_LINE_MAX 4096
#define ADMIN_TIMEOUT_MS 5000

/* ---- identity: GET /identity and the certificate-expiry gauge ---- */

/* A Prometheus label value: \\, \" and \n escaped (text format 0.0.4). */
static void prom_str(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\n') {
			fputs("\\n", f);
			continue;
		}
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		fputc(*s, f);
	}
}

/* The ctx the inbound listener serves, or NULL without mTLS. It may be
 * installed after start-up (certificates from sinewd), hence the acquire
 * load; it is freed only after the admin port has stopped. */
static struct sn_tls_ctx *served_ctx(struct sn_proxy *p)
{
	return __atomic_load_n(&p->tls_server, __ATOMIC_ACQUIRE);
}

static void json_cert(FILE *f, const struct sn_tls_ctx_info *in, const struct sn_tls_cert_info *c)
{
	int root = c->kind == SN_TLS_CERT_ROOT;

	fprintf(f, "{\"kind\":\"%s\",\"subject\":", sn_tls_cert_kind_str(c->kind));
	sn_json_fput_cstr(f, c->subject);
	if (!root) {
		fputs(",\"issuer\":", f);
		sn_json_fput_cstr(f, c->issuer);
		fprintf(f, ",\"serial\":\"%s\",\"not_before\":%" PRId64, c->serial, c->not_before);
	}
	fprintf(f, ",\"not_after\":%" PRId64 ",\"sha256\":\"%s\"", c->not_after, c->sha256);
	if (!root) {
		fputs(",\"pem\":", f);
		if (c->pem_len > 0)
			sn_json_fput_str(f, in->chain_pem + c->pem_off, c->pem_len);
		else
			fputs("null", f);
	}
	fputc('}', f);
}

/* GET /identity: the SPIFFE ID, chain and roots the inbound side serves
 * (docs/observability.md). Certificates only, never the key. Returns the
 * HTTP status. */
static int render_identity(struct sn_proxy *p, FILE *f)
{
	struct sn_tls_ctx *ctx = served_ctx(p);
	struct sn_tls_ctx_info *in;

	if (ctx == NULL) {
		fputs("{\"mtls\":false}\n", f);
		return 200;
	}
	in = malloc(sizeof(*in));
	if (in == NULL || sn_tls_ctx_describe(ctx, SN_TLS_INFO_PEM, in) != 0) {
		free(in);
		fputs("{\"error\":\"out of memory describing the identity; try again\"}\n", f);
		return 503;
	}
	fputs("{\"mtls\":true,\"spiffe_id\":", f);
	sn_json_fput_cstr(f, in->spiffe_id);
	fputs(",\"trust_domain\":", f);
	sn_json_fput_cstr(f, in->trust_domain);
	fprintf(f, ",\"generation\":%" PRIu64 ",\"chain\":[", in->generation);
	for (size_t i = 0; i < in->n_chain; i++) {
		if (i)
			fputc(',', f);
		json_cert(f, in, &in->chain[i]);
	}
	fputs("],\"roots\":[", f);
	for (size_t i = 0; i < in->n_roots; i++) {
		if (i)
			fputc(',', f);
		json_cert(f, in, &in->roots[i]);
	}
	fputc(']', f);
	/* Past the description's bounds (8 certificates each): say so. */
	if (in->chain_total > in->n_chain || in->roots_total > in->n_roots)
		fprintf(f, ",\"chain_total\":%zu,\"roots_total\":%zu", in->chain_total, in->roots_total);
	fputs("}\n", f);
	free(in);
	return 200;
}

#define EXPIRY_SERIES_MAX (2 * (SN_TLS_INFO_CHAIN_MAX + SN_TLS_INFO_ROOTS_MAX))

struct expiry_seen {
	enum sn_tls_cert_kind kind;
	char sha[17];
};

/* One series, unless this certificate (kind and fingerprint) was printed
 * already: the server and client contexts hold the same identity. */
static void expiry_series(FILE *f, const char *spiffe_id, const struct sn_tls_cert_info *c,
			  struct expiry_seen *seen, size_t *n_seen)
{
	char sha[17];

	snprintf(sha, sizeof(sha), "%.16s", c->sha256);
	for (size_t i = 0; i < *n_seen; i++)
		if (seen[i].kind == c->kind && !strcmp(seen[i].sha, sha))
			return;
	if (*n_seen == EXPIRY_SERIES_MAX)
		return;
	seen[*n_seen].kind = c->kind;
	memcpy(seen[*n_seen].sha, sha, sizeof(sha));
	(*n_seen)++;
	fprintf(f, "sinew_certificate_expiry_timestamp_seconds{kind=\"%s\"", sn_tls_cert_kind_str(c->kind));
	if (c->kind == SN_TLS_CERT_LEAF && spiffe_id[0]) {
		fputs(",spiffe_id=\"", f);
		prom_str(f, spiffe_id);
		fputc('"', f);
	}
	fprintf(f, ",sha256=\"%s\"} %" PRId64 "\n", sha, c->not_after);
}

/* sinew_certificate_expiry_timestamp_seconds: one series per certificate
 * the proxy holds now (the chain it presents and the roots it trusts, in
 * its server and client contexts), read at scrape time so that it follows
 * renewals and rotations. */
static void render_cert_expiry(struct sn_proxy *p, FILE *f)
{
	struct sn_tls_ctx *ctxs[2] = { served_ctx(p), __atomic_load_n(&p->tls_client, __ATOMIC_ACQUIRE) };
	struct expiry_seen seen[EXPIRY_SERIES_MAX];
	size_t n_seen = 0;
	struct sn_tls_ctx_info *in;

	fputs("# HELP sinew_certificate_expiry_timestamp_seconds Unix time at which a certificate the proxy "
	      "holds expires (notAfter).\n"
	      "# TYPE sinew_certificate_expiry_timestamp_seconds gauge\n", f);
	if (ctxs[0] == NULL && ctxs[1] == NULL)
		return;
	in = malloc(sizeof(*in));
	if (in == NULL)
		return;   /* the family stays, without samples, until the next scrape */
	for (size_t k = 0; k < SN_ARRAY_LEN(ctxs); k++) {
		if (ctxs[k] == NULL || (k == 1 && ctxs[1] == ctxs[0]))
			continue;
		if (sn_tls_ctx_describe(ctxs[k], 0, in) != 0)
			continue;
		for (size_t i = 0; i < in->n_chain; i++)
			expiry_series(f, in->spiffe_id, &in->chain[i], seen, &n_seen);
		for (size_t i = 0; i < in->n_roots; i++)
			expiry_series(f, in->spiffe_id, &in->roots[i], seen, &n_seen);
	}
	free(in);
}

/* GET /metrics: the request metrics of every worker, the proxy's own
 * values and its certificates' expiry (also sinewd's scrape relay,
 * sn_admin_metrics_text). */
static void render_metrics(struct sn_proxy *p, FILE *f)
{
	struct sn_metrics *stores[256];
	size_t n = 0;
	for (int i = 0; i < p->n_workers && n < SN_ARRAY_LEN(stores); i++)
		stores[n++] = p->workers[i].metrics;
	sn_metrics_render(stores, n, &p->proc, p->opt.istio_metric_names, f);
	render_cert_expiry(p, f);
}

/* The answer to METHOD ROUTE (the path without its query): its body into
 * *body (malloc'd, the caller's) and its content type into *ctype. Returns
 * the status, or -1 when memory ran out (nothing to free). */
static int render(struct sn_proxy *p, struct sn_str method, struct sn_str route, char **body, size_t *body_len,
		  const char **ctype)
{
	int status = 200;
	FILE *f;

	*body = NULL;
	*body_len = 0;
	*ctype = "text/plain; charset=utf-8";
	f = open_memstream(body, body_len);
	if (f == NULL)
		return -1;
	if (!sn_str_eq_cstr(method, "GET") && !sn_str_eq_cstr(method, "HEAD")) {
		status = 405;
		fprintf(f, "admin: only GET and HEAD\n");
	} else if (sn_str_eq_cstr(route, "/ready")) {
		if (p->ready && !p->draining) {
			fprintf(f, "ready: config version %llu\n", (unsigned long long)p->version);
		} else {
			status = 503;
			const char *ierr = sn_ident_error(p);
			fprintf(f, "not ready: %s%s%s\n",
				p->draining ? "draining"
				: !sn_ident_ready(p) ? "waiting for a certificate from sinewd"
						       : "starting",
				ierr ? ": " : "", ierr ? ierr : "");
		}
	} else if (sn_str_eq_cstr(route, "/live") || sn_str_eq_cstr(route, "/healthz")) {
		fprintf(f, "live\n");
	} else if (sn_str_eq_cstr(route, "/metrics") || sn_str_eq_cstr(route, "/stats/prometheus")) {
		*ctype = SN_ADMIN_METRICS_TYPE;
		render_metrics(p, f);
	} else if (sn_str_eq_cstr(route, "/config_dump")) {
		*ctype = "application/json";
		pthread_mutex_lock(&p->snap_lock);
		struct sn_snapshot *s = p->snap;
		if (s != NULL)
			sn_snapshot_ref(s);
		pthread_mutex_unlock(&p->snap_lock);
		if (s != NULL) {
			/* the snapshot's dump, and what outlier detection took out */
			char *dump = NULL;
			size_t dl = 0;
			FILE *df = open_memstream(&dump, &dl);
			if (df != NULL) {
				sn_snapshot_dump_json(s, df);
				fclose(df);
			}
			while (dump != NULL && dl > 0 && (dump[dl - 1] == '\n' || dump[dl - 1] == ' '))
				dl--;
			if (dump != NULL && dl > 1 && dump[dl - 1] == '}') {
				fwrite(dump, 1, dl - 1, f);
				fputs(",\"outlier_ejections\":", f);
				sn_outlier_dump_json(p, f);
				sn_cp_dump_json(p, f);
				fputc('}', f);
			} else {
				fprintf(f, "{\"version\":0");
				sn_cp_dump_json(p, f);
				fputc('}', f);
			}
			free(dump);
			sn_snapshot_unref(s);
		} else {
			fprintf(f, "{\"version\":0");
			sn_cp_dump_json(p, f);
			fputc('}', f);
		}
		fputc('\n', f);
	} else if (sn_str_eq_cstr(route, "/identity")) {
		*ctype = "application/json";
		status = render_identity(p, f);
	} else {
		status = 404;
		fprintf(f, "admin: unknown path; try /metrics, /ready, /live, /config_dump, /identity\n");
	}
	if (fclose(f) != 0) {
		free(*body);
		*body = NULL;
		*body_len = 0;
		return -1;
	}
	return status;
}

int sn_admin_metrics_text(struct sn_proxy *p, char **out, size_t *len)
{
	FILE *f = open_memstream(out, len);
	if (f == NULL)
		return SN_ENOMEM;
	render_metrics(p, f);
	if (fclose(f) != 0) {
		free(*out);
		*out = NULL;
		return SN_ENOMEM;
	}
	return 0;
}

int sn_admin_respond(struct sn_proxy *p, const char *req, size_t len, char **out, size_t *out_len)
{
	struct sn_h1_request r;
	struct sn_h1_header hdrs[SN_HSRV_MAX_HEADERS];
	struct sn_h1_limits lim = { ADMIN_REQUEST_LINE_MAX, ADMIN_HEAD_MAX, SN_HSRV_MAX_HEADERS };
	int n = sn_h1_parse_request(req, len, &r, hdrs, SN_ARRAY_LEN(hdrs), &lim);
	const char *q, *ctype;
	char *body;
	size_t body_len;
	int status;

	if (n <= 0)
		return n;
	q = memchr(r.path.p, '?', r.path.len);
	status = render(p, r.method, q ? sn_str_make(r.path.p, (size_t)(q - r.path.p)) : r.path, &body, &body_len,
			&ctype);
	*out = NULL;
	*out_len = 0;
	if (status > 0)
		sn_hsrv_format(status, ctype, "", body, body_len, sn_str_eq_cstr(r.method, "HEAD"), out, out_len);
	free(body);
	return n;
}

/* The server read the head (bodies are not read); HEAD's body is left out
 * there. Out of memory: no answer, and the server closes. */
static void on_admin_request(void *data, struct sn_hsrv_conn *c, const struct sn_hsrv_req *r)
{
	const char *ctype;
	char *body;
	size_t body_len;
	int status = render(data, r->method, r->path, &body, &body_len, &ctype);

	if (status > 0)
		sn_hsrv_respond(c, status, ctype, "", body, body_len);
	free(body);
}

int sn_admin_start(struct sn_proxy *p)
{
	/* No on_error: a request the server refuses is closed unanswered, as
	 * the admin port always did (scrapers and probes send good heads). */
	struct sn_hsrv_opts opt = {
		.name = "admin",
		.request_line_max = ADMIN_REQUEST_LINE_MAX,
		.head_max = ADMIN_HEAD_MAX,
		.body_max = 0,
		.max_conns = ADMIN_MAX_CONNS,
		.timeout_ms = ADMIN_TIMEOUT_MS,
		.backlog = 64,
		.on_request = on_admin_request,
		.data = p,
	};
	const struct sn_addr *addr = &p->opt.admin;

	if (sn_hsrv_start(&p->admin, &p->loop, (const struct sockaddr *)&addr->ss, addr->len, &opt) != 0) {
		sn_log(SN_LOG_ERROR, "cannot listen on %s (--admin): %s; pick a free port", addr->text,
		       strerror(errno));
		return SN_EIO;
	}
	return 0;
}

void sn_admin_stop(struct sn_proxy *p)
{
	sn_hsrv_stop(&p->admin);
}
