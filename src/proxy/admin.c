/* The admin port (15020 by convention): /metrics, /ready, /live,
 * /config_dump, /identity. Served on the main thread's loop, one request
 * per connection, so a slow scrape never touches a worker. Bounded: request
 * heads up to 8 KiB, 64 concurrent admin connections, 5 s per connection. */
#include <errno.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "sinew/json.h"
#include "sinew/log.h"
#include "proxy.h"

#define ADMIN_MAX_CONNS 64
#define ADMIN_HEAD_MAX 8192
#define ADMIN_TIMEOUT_MS 5000

struct admin_conn {
	struct sn_io io;
	int fd;
	struct sn_proxy *p;
	char in[ADMIN_HEAD_MAX];
	size_t in_len;
	char *out;
	size_t out_len, out_off;
	int responded;
	struct sn_timer timer;
	struct sn_task reclaim;
};

static int admin_conns;

static void reclaim_admin(struct sn_loop *loop, struct sn_task *t)
{
	struct admin_conn *a = sn_container_of(t, struct admin_conn, reclaim);
	free(a->out);
	free(a);
}

static void admin_close(struct admin_conn *a)
{
	if (a->fd < 0)
		return;
	sn_timer_stop(&a->p->loop, &a->timer);
	sn_io_stop(&a->p->loop, &a->io);
	close(a->fd);
	a->fd = -1;
	admin_conns--;
	sn_loop_reclaim(&a->p->loop, &a->reclaim, reclaim_admin);
}

static void on_admin_timeout(struct sn_loop *loop, struct sn_timer *t)
{
	admin_close(sn_container_of(t, struct admin_conn, timer));
}

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

/* The response to METHOD PATH into *out (malloc'd; NULL, *out_len 0 when
 * memory ran out). */
static void render(struct sn_proxy *p, struct sn_str method, struct sn_str path, char **out, size_t *out_len)
{
	char *body = NULL;
	size_t body_len = 0;
	FILE *f = open_memstream(&body, &body_len);
	int status = 200;
	const char *ctype = "text/plain; charset=utf-8";
	const char *q = memchr(path.p, '?', path.len);
	struct sn_str route = q ? sn_str_make(path.p, (size_t)(q - path.p)) : path;

	*out = NULL;
	*out_len = 0;
	if (f == NULL)
		return;
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
		ctype = SN_ADMIN_METRICS_TYPE;
		render_metrics(p, f);
	} else if (sn_str_eq_cstr(route, "/config_dump")) {
		ctype = "application/json";
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
		ctype = "application/json";
		status = render_identity(p, f);
	} else {
		status = 404;
		fprintf(f, "admin: unknown path; try /metrics, /ready, /live, /config_dump, /identity\n");
	}
	fclose(f);

	char head[256];
	int hl = snprintf(head, sizeof(head),
			  "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\nconnection: close\r\n\r\n",
			  status, sn_h1_reason_phrase(status), ctype, body_len);
	int is_head = sn_str_eq_cstr(method, "HEAD");
	size_t n = (size_t)hl + (is_head ? 0 : body_len);
	*out = malloc(n);
	if (*out != NULL) {
		memcpy(*out, head, (size_t)hl);
		if (!is_head)
			memcpy(*out + hl, body, body_len);
		*out_len = n;
	}
	free(body);
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
	struct sn_h1_header hdrs[64];
	struct sn_h1_limits lim = { 4096, ADMIN_HEAD_MAX, 64 };
	int n = sn_h1_parse_request(req, len, &r, hdrs, SN_ARRAY_LEN(hdrs), &lim);

	if (n > 0)
		render(p, r.method, r.path, out, out_len);
	return n;
}

static void admin_flush(struct admin_conn *a)
{
	while (a->out_off < a->out_len) {
		ssize_t n = write(a->fd, a->out + a->out_off, a->out_len - a->out_off);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR)
				continue;
			break;
		}
		a->out_off += (size_t)n;
	}
	admin_close(a);
}

static void on_admin_io(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct admin_conn *a = sn_container_of(io, struct admin_conn, io);

	if (a->responded) {
		admin_flush(a);
		return;
	}
	for (;;) {
		if (a->in_len == sizeof(a->in)) {
			admin_close(a);
			return;
		}
		ssize_t n = read(a->fd, a->in + a->in_len, sizeof(a->in) - a->in_len);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			admin_close(a);
			return;
		}
		a->in_len += (size_t)n;
	}
	int r = sn_admin_respond(a->p, a->in, a->in_len, &a->out, &a->out_len);
	if (r == SN_H1_INCOMPLETE)
		return;
	if (r < 0) {
		admin_close(a);
		return;
	}
	a->responded = 1;
	admin_flush(a);
}

static void on_admin_accept(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct sn_proxy *p = sn_container_of(io, struct sn_proxy, admin_io);

	for (;;) {
		int fd = accept4(p->admin_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (admin_conns >= ADMIN_MAX_CONNS) {
			close(fd);
			continue;
		}
		struct admin_conn *a = calloc(1, sizeof(*a));
		if (a == NULL) {
			close(fd);
			continue;
		}
		a->fd = fd;
		a->p = p;
		admin_conns++;
		if (sn_io_start(loop, &a->io, fd, on_admin_io) != 0) {
			close(fd);
			admin_conns--;
			free(a);
			continue;
		}
		sn_timer_start(loop, &a->timer, ADMIN_TIMEOUT_MS, on_admin_timeout);
	}
}

int sn_admin_start(struct sn_proxy *p)
{
	int one = 1;
	const struct sn_addr *addr = &p->opt.admin;

	p->admin_fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->admin_fd < 0)
		return SN_EIO;
	setsockopt(p->admin_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(p->admin_fd, (const struct sockaddr *)&addr->ss, addr->len) != 0 || listen(p->admin_fd, 64) != 0) {
		sn_log(SN_LOG_ERROR, "cannot listen on %s (--admin): %s; pick a free port", addr->text, strerror(errno));
		close(p->admin_fd);
		p->admin_fd = -1;
		return SN_EIO;
	}
	return sn_io_start(&p->loop, &p->admin_io, p->admin_fd, on_admin_accept);
}

void sn_admin_stop(struct sn_proxy *p)
{
	if (p->admin_fd < 0)
		return;
	sn_io_stop(&p->loop, &p->admin_io);
	close(p->admin_fd);
	p->admin_fd = -1;
}
