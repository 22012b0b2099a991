/* sinewd's HTTP/JSON API (docs/api.md): apply, get, delete, analyze,
 * proxies, the CA (tokens, certificates), traces (and OTLP/HTTP JSON span
 * export, POST /v1/traces), live stats (stats, edges, routes), version, ready, live,
 * and the dashboard's files (GET /, /ui/NAME: dashboard.c). Served on the loop thread by the small
 * HTTP server (src/http/server.c), one request per connection (the response
 * says connection: close). Bounded: heads up to 16 KiB, bodies up to 8 MiB
 * (Content-Length only), SN_API_MAX_CONNS connections, 30 s per connection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <libfyaml.h>

#include "sinew/control.h"
#include "sinew/h1.h"
#include "sinew/http_client.h"
#include "sinew/http_server.h"
#include "sinew/log.h"
#include "sinew/query.h"
#include "traces.h"
#include "stats.h"

#define API_HEAD_MAX 16384
#define API_TIMEOUT_MS 30000
#define API_MAX_PARAM 256
#define API_APPLY_ATTEMPTS 16    /* decide + store again after an etcd conflict */

/* One request being answered: the API, the server's connection (valid
 * for the handler's call) and its id for log lines. */
struct api_conn {
	struct sn_api *api;
	struct sn_hsrv_conn *hc;
	uint64_t id;
};

/* ---- answers --------------------------------------------------------- */

/* A JSON response (body taken and freed), closing the connection. */
static void respond(struct api_conn *c, int status, struct sn_out *body)
{
	if (body->failed) {
		sn_out_free(body);
		status = 500;
		sn_out_cstr(body, "{\"error\":\"sinewd ran out of memory rendering the response; retry with a "
				  "narrower query\"}");
	}
	sn_out_raw(body, "\n", 1);
	sn_hsrv_respond(c->hc, status, "application/json", "", body->p, body->len);
	sn_out_free(body);
}

static void respond_error(struct api_conn *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void respond_error(struct api_conn *c, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct sn_out o = { 0 };
	sn_out_cstr(&o, "{\"error\":");
	sn_out_json_cstr(&o, msg);
	sn_out_printf(&o, ",\"status\":%d}", status);
	respond(c, status, &o);
}

/* ---- query strings --------------------------------------------------- */


/* ---- rendering ------------------------------------------------------- */

static void out_diag(struct sn_out *o, const struct sn_diag *g)
{
	char text[1600];
	sn_diag_format(g, text, sizeof(text));
	sn_out_printf(o, "{\"severity\":\"%s\",\"file\":", g->severity == SN_DIAG_ERROR ? "error" : "warning");
	sn_out_json_cstr(o, g->file);
	sn_out_printf(o, ",\"line\":%d,\"column\":%d,\"field\":", g->line, g->column);
	sn_out_json_cstr(o, g->field);
	sn_out_cstr(o, ",\"message\":");
	sn_out_json_cstr(o, g->message);
	sn_out_cstr(o, ",\"text\":");
	sn_out_json_cstr(o, text);
	sn_out_cstr(o, "}");
}

static void out_strv(struct sn_out *o, char **v, size_t n)
{
	sn_out_cstr(o, "[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			sn_out_cstr(o, ",");
		sn_out_json_cstr(o, v[i]);
	}
	sn_out_cstr(o, "]");
}

static void out_resource(struct sn_out *o, const struct sn_stored *e, struct sn_mesh *mesh)
{
	char rv[32];
	snprintf(rv, sizeof(rv), "%llu", (unsigned long long)e->resource_version);
	sn_out_cstr(o, "{\"kind\":");
	sn_out_json_cstr(o, sn_resource_kind_str(e->kind));
	sn_out_cstr(o, ",\"apiVersion\":");
	sn_out_json_cstr(o, e->api_version);
	sn_out_cstr(o, ",\"namespace\":");
	sn_out_json_cstr(o, e->namespace_);
	sn_out_cstr(o, ",\"name\":");
	sn_out_json_cstr(o, e->name);
	sn_out_printf(o, ",\"resourceVersion\":\"%llu\",\"generation\":%llu,\"source\":",
		      (unsigned long long)e->resource_version, (unsigned long long)e->generation);
	sn_out_json_cstr(o, e->source);
	sn_out_printf(o, ",\"line\":%d,\"yaml\":", e->line);
	sn_out_json_str(o, e->text, e->text_len);
	sn_out_printf(o, ",\"status\":{\"accepted\":%s,\"warnings\":", e->accepted ? "true" : "false");
	out_strv(o, e->warnings, e->n_warnings);
	sn_out_cstr(o, ",\"errors\":");
	out_strv(o, e->errors, e->n_errors);
	sn_mesh_render_resource_status(mesh, o, e->kind, e->namespace_, e->name, rv);
	sn_out_cstr(o, "}}");
}

static const char *kinds_help(void)
{
	return "known kinds: service (services, svc), workloadentry (workloadentries, we), virtualservice "
	       "(virtualservices, vs), destinationrule (destinationrules, dr), serviceentry (serviceentries, se), "
	       "authorizationpolicy (authorizationpolicies, ap), peerauthentication (peerauthentications, pa)";
}

/* ---- handlers -------------------------------------------------------- */

/* ?all=1 */
static int want_all(const struct sn_hsrv_req *r)
{
	char v[8];
	return sn_query_get(r->query, "all", v, sizeof(v)) > 0 && (!strcmp(v, "1") || !strcmp(v, "true"));
}

/* The other replicas' proxies (etcd: every replica announces its API),
 * appended to the array in o: what `istioctl proxy-status` shows across
 * istiod pods. Each is asked with a short timeout, on the loop (an
 * operator's command, not a hot path); one that does not answer is
 * logged and left out. */
static void add_other_replicas(const struct sn_api *api, struct sn_out *o)
{
	const struct sn_store_replica *v;
	size_t n = sn_store_replicas(api->store, &v);
	for (size_t i = 0; i < n && !o->failed; i++) {
		char base[160], err[400];
		struct sn_http_response r;
		if (v[i].self || (size_t)snprintf(base, sizeof(base), "http://%s", v[i].api) >= sizeof(base))
			continue;
		struct sn_http_request rq = { .method = "GET", .path = "/api/v1/proxies", .timeout_ms = 2000,
					      .connect_timeout_ms = 500, .who = "sinewd replica" };
		int got = sn_http_exchange(base, &rq, &r, err, sizeof(err)) == 0;
		while (got && r.len > 0 && (r.body[r.len - 1] == '\n' || r.body[r.len - 1] == ' '))
			r.len--;
		if (!got || r.status != 200 || r.len < 2 || r.body[0] != '[' || r.body[r.len - 1] != ']') {
			sn_log(SN_LOG_WARN, "api: proxies of replica %s (%s) left out: %s", v[i].id, v[i].api,
			       got ? "not a list" : err);
			sn_http_response_free(&r);
			continue;
		}
		/* both are arrays of objects that sinewd wrote: join them */
		if (r.len > 2 && o->len >= 2 && o->p[o->len - 1] == ']') {
			o->len--;
			sn_out_cstr(o, o->len > 1 ? "," : "");
			sn_out_raw(o, r.body + 1, r.len - 1);
		}
		sn_http_response_free(&r);
	}
}

static void render_replicas(const struct sn_api *api, struct sn_out *o)
{
	const struct sn_store_replica *v;
	size_t n = sn_store_replicas(api->store, &v);
	sn_out_cstr(o, "{\"store\":");
	sn_out_json_cstr(o, api->store->where);
	sn_out_cstr(o, ",\"replicas\":[");
	if (n == 0) {
		/* one sinewd, no shared store: itself */
		sn_out_cstr(o, "{\"id\":null,\"api\":");
		sn_out_json_cstr(o, api->api_addr);
		sn_out_cstr(o, ",\"mesh\":");
		sn_out_json_cstr(o, api->mesh_addr);
		sn_out_cstr(o, ",\"self\":true}");
	}
	for (size_t i = 0; i < n; i++) {
		sn_out_cstr(o, i ? ",{\"id\":" : "{\"id\":");
		sn_out_json_cstr(o, v[i].id);
		sn_out_cstr(o, ",\"api\":");
		sn_out_json_cstr(o, v[i].api);
		sn_out_cstr(o, ",\"mesh\":");
		sn_out_json_cstr(o, v[i].mesh);
		sn_out_printf(o, ",\"self\":%s}", v[i].self ? "true" : "false");
	}
	sn_out_cstr(o, "]}");
}

/* Between attempts after a conflict with another replica: a random pause
 * of up to 1, 2, 4 ... 32 ms, so that two replicas writing the same
 * resource in step stop colliding. It holds the loop, as the etcd call
 * itself does. */
static void conflict_pause(int attempt)
{
	static uint64_t rng = 0x9e3779b97f4a7c15ull;
	rng ^= sn_clock_ms();
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	unsigned max_us = 1000u << (attempt < 6 ? attempt - 1 : 5);
	usleep((useconds_t)((rng >> 33) % max_us));
}

static void handle_apply(struct api_conn *c, const struct sn_hsrv_req *r)
{
	char source[API_MAX_PARAM];
	int q = sn_query_get(r->query, "source", source, sizeof(source));
	if (q < 0) {
		respond_error(c, 400, "query parameter source is malformed or longer than %d bytes; pass the file "
				      "name, percent-encoded", API_MAX_PARAM - 1);
		return;
	}
	if (q == 0)
		snprintf(source, sizeof(source), "-");
	struct sn_apply_report rep;
	uint64_t rev_before = c->api->store->revision;
	/* A conflict (another replica wrote one of these resources since this
	 * one last saw it) stored nothing and refreshed the index: decide
	 * again against the newer versions. */
	int rc;
	for (int attempt = 1;; attempt++) {
		rc = c->api->admit_in_process ? sn_admit_apply(c->api->store, source, r->body, r->body_len, &rep)
					      : sn_admit_apply_isolated(c->api->store, source, r->body, r->body_len, &rep);
		if (rc != SN_ECONFLICT || attempt == API_APPLY_ATTEMPTS)
			break;
		sn_log(SN_LOG_DEBUG, "api conn=%llu: apply conflicted with another replica's write; deciding again",
		       (unsigned long long)c->id);
		sn_apply_report_free(&rep);
		conflict_pause(attempt);
	}
	if (c->api->store->revision != rev_before)
		sn_mesh_store_changed(c->api->mesh);
	struct sn_out o = { 0 };
	sn_out_cstr(&o, "[");
	for (size_t i = 0; i < rep.n; i++) {
		const struct sn_apply_item *it = &rep.v[i];
		if (i)
			sn_out_cstr(&o, ",");
		sn_out_cstr(&o, "{\"kind\":");
		sn_out_json_cstr(&o, it->kind);
		sn_out_cstr(&o, ",\"namespace\":");
		sn_out_json_cstr(&o, it->namespace_);
		sn_out_cstr(&o, ",\"name\":");
		sn_out_json_cstr(&o, it->name);
		sn_out_printf(&o, ",\"result\":\"%s\",\"resourceVersion\":\"%llu\",\"line\":%d,\"diagnostics\":[",
			      sn_apply_result_str(it->result), (unsigned long long)it->resource_version, it->line);
		for (size_t k = 0; k < it->diags.n; k++) {
			if (k)
				sn_out_cstr(&o, ",");
			out_diag(&o, &it->diags.v[k]);
		}
		sn_out_cstr(&o, "]}");
	}
	sn_out_cstr(&o, "]");
	size_t refused = rep.refused;
	sn_log(SN_LOG_INFO, "api conn=%llu: apply source=%s: %zu resources, %zu refused, revision %llu",
	       (unsigned long long)c->id, source, rep.n, refused, (unsigned long long)c->api->store->revision);
	sn_apply_report_free(&rep);
	respond(c, rc == SN_EIO ? 500 : refused ? 422 : 200, &o);
}

/* KIND from a person: 0 with *kind set, or an error response. */
static int parse_kind(struct api_conn *c, const char *s, int *kind)
{
	*kind = sn_kind_lookup(s);
	if (*kind < 0) {
		respond_error(c, 400, "unknown kind \"%.64s\"; %s", s, kinds_help());
		return -1;
	}
	return 0;
}

static void handle_list(struct api_conn *c, const struct sn_hsrv_req *r)
{
	char kind_s[API_MAX_PARAM], ns[API_MAX_PARAM], name[API_MAX_PARAM];
	int hk = sn_query_get(r->query, "kind", kind_s, sizeof(kind_s));
	int hn = sn_query_get(r->query, "namespace", ns, sizeof(ns));
	int hm = sn_query_get(r->query, "name", name, sizeof(name));
	int kind = -1;
	if (hk < 0 || hn < 0 || hm < 0) {
		respond_error(c, 400, "a query parameter is malformed or longer than %d bytes", API_MAX_PARAM - 1);
		return;
	}
	if (hk > 0 && kind_s[0] && parse_kind(c, kind_s, &kind) != 0)
		return;
	const struct sn_store *st = c->api->store;
	struct sn_out o = { 0 };
	struct sn_mesh_proxy **reg = NULL;
	size_t n_reg = 0, ri = 0;
	if (kind < 0 || kind == SN_KIND_WORKLOAD_ENTRY)
		n_reg = sn_mesh_registered(c->api->mesh, &reg);
	sn_out_cstr(&o, "[");
	size_t n = 0;
	for (size_t i = 0; i <= st->n; i++) {
		const struct sn_stored *e = i < st->n ? st->v[i] : NULL;
		/* registered WorkloadEntries, merged in (kind, namespace, name) order */
		while (ri < n_reg && (e == NULL || e->kind > SN_KIND_WORKLOAD_ENTRY ||
				      (e->kind == SN_KIND_WORKLOAD_ENTRY &&
				       (strcmp(sn_mesh_registered_ns(reg[ri]), e->namespace_) < 0 ||
					(!strcmp(sn_mesh_registered_ns(reg[ri]), e->namespace_) &&
					 strcmp(sn_mesh_registered_name(reg[ri]), e->name) < 0))))) {
			const struct sn_mesh_proxy *p = reg[ri++];
			if ((hn > 0 && ns[0] && strcmp(ns, sn_mesh_registered_ns(p))) ||
			    (hm > 0 && name[0] && strcmp(name, sn_mesh_registered_name(p))))
				continue;
			if (n++)
				sn_out_cstr(&o, ",");
			sn_mesh_render_registered(c->api->mesh, p, &o);
		}
		if (e == NULL)
			break;
		if ((kind >= 0 && (int)e->kind != kind) || (hn > 0 && ns[0] && strcmp(ns, e->namespace_)) ||
		    (hm > 0 && name[0] && strcmp(name, e->name)))
			continue;
		if (n++)
			sn_out_cstr(&o, ",");
		out_resource(&o, e, c->api->mesh);
	}
	free(reg);
	sn_out_cstr(&o, "]");
	respond(c, 200, &o);
}

/* /api/v1/resources/KIND/NS/NAME: splits and decodes the three parts. */
static int split_path(struct sn_str rest, char *kind, char *ns, char *name, size_t size)
{
	char *dst[3] = { kind, ns, name };
	size_t i = 0;
	for (int part = 0; part < 3; part++) {
		const char *slash = memchr(rest.p + i, '/', rest.len - i);
		size_t end = part < 2 ? (slash ? (size_t)(slash - rest.p) : rest.len) : rest.len;
		if (part < 2 && slash == NULL)
			return -1;
		if (end == i || sn_url_decode(sn_str_make(rest.p + i, end - i), dst[part], size) != 0 ||
		    strchr(dst[part], '/') != NULL)
			return -1;
		i = end + 1;
	}
	return 0;
}

/* What exists of kind in ns, for a 404 that helps. */
static void existing_names(const struct sn_store *st, int kind, const char *ns, char *buf, size_t size)
{
	size_t off = 0, shown = 0, total = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < st->n; i++) {
		const struct sn_stored *e = st->v[i];
		if ((int)e->kind != kind || strcmp(e->namespace_, ns))
			continue;
		total++;
		if (shown < 10 && off + 70 < size) {
			off += (size_t)snprintf(buf + off, size - off, "%s%.60s", shown ? ", " : "", e->name);
			shown++;
		}
	}
	if (total > shown && off + 30 < size)
		snprintf(buf + off, size - off, " and %zu more", total - shown);
}

static void handle_one(struct api_conn *c, const struct sn_hsrv_req *r, struct sn_str rest, int del)
{
	char kind_s[API_MAX_PARAM], ns[API_MAX_PARAM], name[API_MAX_PARAM], have[900];
	int kind;
	if (split_path(rest, kind_s, ns, name, sizeof(kind_s)) != 0) {
		respond_error(c, 400, "want /api/v1/resources/KIND/NAMESPACE/NAME, e.g. "
				      "/api/v1/resources/virtualservices/default/reviews");
		return;
	}
	if (parse_kind(c, kind_s, &kind) != 0)
		return;
	struct sn_store *st = c->api->store;
	const char *kname = sn_resource_kind_str((enum sn_resource_kind)kind);
	struct sn_stored *e = sn_store_get(st, (enum sn_resource_kind)kind, ns, name);
	if (e == NULL && kind == SN_KIND_WORKLOAD_ENTRY) {
		struct sn_mesh_proxy **reg = NULL;
		size_t n_reg = sn_mesh_registered(c->api->mesh, &reg);
		for (size_t i = 0; i < n_reg; i++) {
			if (strcmp(sn_mesh_registered_ns(reg[i]), ns) || strcmp(sn_mesh_registered_name(reg[i]), name))
				continue;
			struct sn_out o = { 0 };
			if (del) {
				free(reg);
				respond_error(c, 409, "WorkloadEntry %s/%s is registered by a connected proxy, not stored; "
						      "it leaves when that proxy disconnects (stop the workload)", ns, name);
				return;
			}
			sn_mesh_render_registered(c->api->mesh, reg[i], &o);
			free(reg);
			respond(c, 200, &o);
			return;
		}
		free(reg);
	}
	if (e == NULL) {
		existing_names(st, kind, ns, have, sizeof(have));
		if (have[0])
			respond_error(c, 404, "%s %s/%s not found; %s in namespace %s: %s", kname, ns, name,
				      sn_kind_plural((enum sn_resource_kind)kind), ns, have);
		else
			respond_error(c, 404, "%s %s/%s not found; there are no %s in namespace %s", kname, ns, name,
				      sn_kind_plural((enum sn_resource_kind)kind), ns);
		return;
	}
	struct sn_out o = { 0 };
	if (!del) {
		out_resource(&o, e, c->api->mesh);
		respond(c, 200, &o);
		return;
	}
	int rc;
	for (int attempt = 1;; attempt++) {
		rc = sn_admit_delete(st, (enum sn_resource_kind)kind, ns, name);
		if (rc != SN_ECONFLICT || attempt == API_APPLY_ATTEMPTS)
			break;
		conflict_pause(attempt);
	}
	if (rc == SN_ENOTFOUND) {
		respond_error(c, 404, "%s %s/%s not found (another sinewd replica deleted it just now)", kname, ns, name);
		sn_mesh_store_changed(c->api->mesh);
		return;
	}
	if (rc != 0) {
		respond_error(c, rc == SN_ECONFLICT ? 409 : 500,
			      "could not delete %s %s/%s from the store (%s): %s; see sinewd's log, then retry", kname,
			      ns, name, st->where,
			      rc == SN_ECONFLICT ? "other sinewd replicas kept changing it"
			      : st->error[0]	 ? st->error
						 : strerror(errno));
		return;
	}
	sn_log(SN_LOG_INFO, "api conn=%llu: deleted %s %s/%s, revision %llu", (unsigned long long)c->id, kname, ns,
	       name, (unsigned long long)st->revision);
	sn_mesh_store_changed(c->api->mesh);
	sn_out_cstr(&o, "{\"result\":\"deleted\",\"kind\":");
	sn_out_json_cstr(&o, kname);
	sn_out_cstr(&o, ",\"namespace\":");
	sn_out_json_cstr(&o, ns);
	sn_out_cstr(&o, ",\"name\":");
	sn_out_json_cstr(&o, name);
	sn_out_printf(&o, ",\"revision\":\"%llu\"}", (unsigned long long)st->revision);
	respond(c, 200, &o);
}

static void handle_analyze(struct api_conn *c, const struct sn_hsrv_req *r)
{
	char source[API_MAX_PARAM], only[16];
	int q = sn_query_get(r->query, "source", source, sizeof(source));
	int qo = sn_query_get(r->query, "only", only, sizeof(only));
	if (q < 0 || qo < 0) {
		respond_error(c, 400, "a query parameter is malformed or too long");
		return;
	}
	if (q == 0)
		snprintf(source, sizeof(source), "-");
	int body_only = qo > 0 && (!strcmp(only, "1") || !strcmp(only, "true"));
	if (body_only && r->body_len == 0) {
		respond_error(c, 400, "only=1 analyzes the request body alone, and the body is empty; send YAML or "
				      "drop only=1 to analyze the store");
		return;
	}
	struct sn_analysis an;
	struct sn_mesh_proxy **reg = NULL;
	size_t n_reg = body_only || c->api->mesh == NULL ? 0 : sn_mesh_registered(c->api->mesh, &reg);
	const char **texts = n_reg ? calloc(n_reg, sizeof(*texts)) : NULL;
	for (size_t i = 0; texts != NULL && i < n_reg; i++)
		texts[i] = sn_mesh_registered_text(reg[i]);
	int rc = sn_analyze(body_only ? NULL : c->api->store, texts, texts ? n_reg : 0, source,
			    r->body_len ? r->body : NULL, r->body_len, &an);
	free(texts);
	free(reg);
	struct sn_out o = { 0 };
	sn_out_printf(&o, "{\"errors\":%zu,\"warnings\":%zu,\"infos\":%zu,\"messages\":[", an.errors, an.warnings,
		      an.infos);
	for (size_t i = 0; i < an.n; i++) {
		const struct sn_analysis_msg *m = &an.v[i];
		if (i)
			sn_out_cstr(&o, ",");
		sn_out_printf(&o, "{\"code\":\"%s\",\"type\":\"%s\",\"level\":\"%s\",\"resource\":", m->code, m->type,
			      sn_analysis_level_str(m->level));
		sn_out_json_cstr(&o, m->resource);
		sn_out_cstr(&o, ",\"file\":");
		sn_out_json_cstr(&o, m->file);
		sn_out_printf(&o, ",\"line\":%d,\"field\":", m->line);
		sn_out_json_cstr(&o, m->field);
		sn_out_cstr(&o, ",\"message\":");
		sn_out_json_cstr(&o, m->message);
		char text[2400];
		sn_analysis_msg_text(m, text, sizeof(text));
		sn_out_cstr(&o, ",\"text\":");
		sn_out_json_cstr(&o, text);
		sn_out_cstr(&o, "}");
	}
	sn_out_cstr(&o, "]}");
	sn_analysis_free(&an);
	if (rc != 0) {
		sn_out_free(&o);
		respond_error(c, 500, "sinewd ran out of memory analyzing; analyze fewer resources at once");
		return;
	}
	respond(c, 200, &o);
}

/* ---- the CA: tokens and certificates -------------------------------- */

/* Parses the body as a JSON object whose members are all among known
 * (NULL-terminated). Returns the document, or NULL after responding 400. */
static struct fy_document *json_object(struct api_conn *c, const struct sn_hsrv_req *r, const char *const *known,
				       struct fy_node **root)
{
	struct fy_document *doc = r->body_len ? sn_json_parse(r->body, r->body_len) : NULL;
	*root = doc ? fy_document_root(doc) : NULL;
	if (*root == NULL || !fy_node_is_mapping(*root)) {
		if (doc)
			fy_document_destroy(doc);
		respond_error(c, 400, "want a JSON object body; see docs/api.md");
		return NULL;
	}
	void *iter = NULL;
	struct fy_node_pair *pair;
	while ((pair = fy_node_mapping_iterate(*root, &iter)) != NULL) {
		size_t kl = 0;
		struct fy_node *k = fy_node_pair_key(pair);
		const char *ks = k && fy_node_is_scalar(k) ? fy_node_get_scalar(k, &kl) : NULL;
		int ok = 0;
		for (size_t i = 0; ks != NULL && known[i] != NULL; i++)
			ok |= strlen(known[i]) == kl && !memcmp(known[i], ks, kl);
		if (!ok) {
			char list[256];
			size_t off = 0;
			for (size_t i = 0; known[i] != NULL && off + 40 < sizeof(list); i++)
				off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "", known[i]);
			respond_error(c, 400, "unknown field \"%.*s\"; known fields: %s", (int)SN_MIN(kl, 64),
				      ks ? ks : "?", list);
			fy_document_destroy(doc);
			return NULL;
		}
	}
	return doc;
}

/* A string member as a NUL-terminated string owned by the document:
 * 1 found, 0 absent or null, -1 after responding 400. */
static int json_string(struct api_conn *c, struct fy_node *root, const char *key, const char **out, size_t *len)
{
	struct fy_node *n = fy_node_mapping_lookup_by_string(root, key, FY_NT);
	*out = NULL;
	*len = 0;
	if (n == NULL || (fy_node_is_scalar(n) && fy_node_get_style(n) == FYNS_PLAIN &&
			  fy_node_get_scalar_length(n) == 4 && !memcmp(fy_node_get_scalar(n, len), "null", 4))) {
		*len = 0;
		return 0;
	}
	const char *s = fy_node_is_scalar(n) ? fy_node_get_scalar0(n) : NULL;
	if (s == NULL || strlen(s) != fy_node_get_scalar_length(n)) {
		respond_error(c, 400, "field %s must be a string", key);
		return -1;
	}
	*out = s;
	*len = strlen(s);
	return 1;
}

static void handle_tokens(struct api_conn *c, const struct sn_hsrv_req *r)
{
	static const char *const known[] = { "namespace", "serviceAccount", "ttl", NULL };
	struct sn_ca_service *ca = c->api->ca;
	struct fy_node *root;
	const char *ns, *sa, *ttl_s;
	size_t nl, sl, tl;
	uint32_t ttl = SN_CA_TOKEN_TTL_DEFAULT;
	struct sn_ca_refusal why;
	char nonce[33], exp[32], *token = NULL;
	time_t expires;

	struct fy_document *doc = json_object(c, r, known, &root);
	if (doc == NULL)
		return;
	int hn = json_string(c, root, "namespace", &ns, &nl);
	int hs = hn < 0 ? -1 : json_string(c, root, "serviceAccount", &sa, &sl);
	int ht = hs < 0 ? -1 : json_string(c, root, "ttl", &ttl_s, &tl);
	if (ht < 0)
		goto out;
	if (hs == 0 || sl == 0) {
		respond_error(c, 400, "serviceAccount is required: the identity the token lets a proxy ask for "
				      "(spiffe://%s/ns/NS/sa/SERVICE_ACCOUNT)", sn_ca_service_trust_domain(ca));
		goto out;
	}
	if (hn == 0 || nl == 0)
		ns = "default";
	if (ht > 0 && sn_ca_parse_ttl(ttl_s, &ttl) != 0) {
		respond_error(c, 400, "ttl \"%.32s\" is not a duration between 1s and 24h (e.g. \"90s\", \"30m\", "
				      "\"1h\")", ttl_s);
		goto out;
	}
	if (sn_ca_service_mint(ca, ns, sa, ttl, 0, &token, nonce, &expires, &why) != 0) {
		respond_error(c, why.status, "%s", why.msg);
		goto out;
	}
	struct sn_out o = { 0 };
	char tstr[32];
	struct tm tm;
	if (gmtime_r(&expires, &tm) == NULL || strftime(tstr, sizeof(tstr), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(tstr, sizeof(tstr), "?");
	snprintf(exp, sizeof(exp), "%s", tstr);
	sn_out_cstr(&o, "{\"token\":");
	sn_out_json_cstr(&o, token);
	sn_out_printf(&o, ",\"nonce\":\"%s\",\"spiffeId\":", nonce);
	sn_out_cstr(&o, "\"spiffe://");
	sn_out_cstr(&o, sn_ca_service_trust_domain(ca));
	sn_out_cstr(&o, "/ns/");
	sn_out_cstr(&o, ns);
	sn_out_cstr(&o, "/sa/");
	sn_out_cstr(&o, sa);
	sn_out_printf(&o, "\",\"expiresAt\":\"%s\"}", exp);
	sn_log(SN_LOG_INFO, "api conn=%llu: token minted nonce=%s for ns=%s sa=%s, expires %s",
	       (unsigned long long)c->id, nonce, ns, sa, exp);
	free(token);   /* NUL-terminated; it was copied into o */
	token = NULL;
	respond(c, 200, &o);
out:
	free(token);
	fy_document_destroy(doc);
}

static void handle_certificates(struct api_conn *c, const struct sn_hsrv_req *r)
{
	static const char *const known[] = { "token", "csr", "certificate", "signature", "spiffeId", NULL };
	struct sn_ca_service *ca = c->api->ca;
	struct fy_node *root;
	const char *tok, *csr, *cert, *sig, *want;
	size_t tokl, csrl, certl, sigl, wantl;
	struct sn_ca_issued is;
	struct sn_ca_refusal why;
	char nonce[33] = "", nb[32], na[32];
	int rc;

	struct fy_document *doc = json_object(c, r, known, &root);
	if (doc == NULL)
		return;
	if (json_string(c, root, "token", &tok, &tokl) < 0 || json_string(c, root, "csr", &csr, &csrl) < 0 ||
	    json_string(c, root, "certificate", &cert, &certl) < 0 ||
	    json_string(c, root, "signature", &sig, &sigl) < 0 || json_string(c, root, "spiffeId", &want, &wantl) < 0)
		goto out;
	if ((tok != NULL) == (cert != NULL)) {
		respond_error(c, 400, "send either token (first certificate) or certificate and signature (renewal), "
				      "with csr; see docs/api.md");
		goto out;
	}
	if (tok != NULL)
		rc = sn_ca_service_issue(ca, tok, tokl, csr, csrl, 0, &is, nonce, &why);
	else
		rc = sn_ca_service_renew(ca, cert, certl, csr, csrl, sig, sigl, want, 0, &is, &why);
	if (rc != 0) {
		sn_log(SN_LOG_INFO, "api conn=%llu: certificate refused (%d, %s%s%s): %s", (unsigned long long)c->id,
		       why.status, tok ? "join token" : "renewal", nonce[0] ? " nonce=" : "", nonce, why.msg);
		respond_error(c, why.status, "%s", why.msg);
		goto out;
	}
	struct tm tm;
	if (gmtime_r(&is.not_before, &tm) == NULL || strftime(nb, sizeof(nb), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(nb, sizeof(nb), "?");
	if (gmtime_r(&is.not_after, &tm) == NULL || strftime(na, sizeof(na), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(na, sizeof(na), "?");
	struct sn_out o = { 0 };
	sn_out_cstr(&o, "{\"certificate\":");
	sn_out_json_cstr(&o, is.certificate);
	sn_out_cstr(&o, ",\"chain\":");
	sn_out_json_cstr(&o, sn_ca_service_chain_pem(ca));
	sn_out_cstr(&o, ",\"bundle\":");
	sn_out_json_cstr(&o, sn_ca_service_bundle_pem(ca));
	sn_out_cstr(&o, ",\"spiffeId\":");
	sn_out_json_cstr(&o, is.spiffe_id);
	sn_out_printf(&o, ",\"serial\":\"%s\",\"notBefore\":\"%s\",\"notAfter\":\"%s\",\"notAfterUnix\":%lld}",
		      is.serial, nb, na, (long long)is.not_after);
	sn_log(SN_LOG_INFO, "api conn=%llu: issued %s serial=%s notAfter=%s (%s%s)", (unsigned long long)c->id,
	       is.spiffe_id, is.serial, na, tok ? "join token nonce=" : "renewal", nonce);
	sn_ca_issued_free(&is);
	respond(c, 200, &o);
out:
	fy_document_destroy(doc);
}

static void handle_ca(struct api_conn *c)
{
	struct sn_out o = { 0 };
	sn_ca_service_render(c->api->ca, &o, 0);
	respond(c, 200, &o);
}

/* ---- traces ---------------------------------------------------------- */

/* An error for an OTLP exporter: the API's {"error","status"} plus what
 * OTLP/HTTP answers in JSON, a google.rpc.Status ("code", "message"). */
static void respond_otlp_error(struct api_conn *c, int status, int grpc_code, const char *msg)
{
	struct sn_out o = { 0 };
	sn_out_cstr(&o, "{\"error\":");
	sn_out_json_cstr(&o, msg);
	sn_out_printf(&o, ",\"status\":%d,\"code\":%d,\"message\":", status, grpc_code);
	sn_out_json_cstr(&o, msg);
	sn_out_cstr(&o, "}");
	respond(c, status, &o);
}

/* Whether a content-type's media type (parameters aside) is want. */
static int media_type_is(struct sn_str v, const char *want)
{
	const char *semi = memchr(v.p, ';', v.len);
	size_t n = semi != NULL ? (size_t)(semi - v.p) : v.len;
	while (n > 0 && (v.p[n - 1] == ' ' || v.p[n - 1] == '\t'))
		n--;
	return sn_str_ieq(sn_str_make(v.p, n), sn_str_make(want, strlen(want)));
}

/* POST /v1/traces: OTLP/HTTP, JSON encoding. Same access as the rest of
 * the API (loopback, docs/api.md). */
static void handle_otlp_traces(struct api_conn *c, const struct sn_hsrv_req *r)
{
	struct sn_str ctype = sn_hsrv_header(r, "content-type"), cenc = sn_hsrv_header(r, "content-encoding");
	struct sn_traces_result res;
	char msg[600];

	if (ctype.p != NULL && !media_type_is(ctype, "application/json")) {
		if (media_type_is(ctype, "application/x-protobuf") || media_type_is(ctype, "application/protobuf"))
			respond_otlp_error(c, 415, 3, "sinewd takes OTLP/HTTP in its JSON encoding only (content-type: "
						      "application/json), not protobuf; set the exporter's protocol to "
						      "http/json (OTEL_EXPORTER_OTLP_PROTOCOL=http/json)");
		else {
			snprintf(msg, sizeof(msg), "content-type %.*s is not taken; send an OTLP "
				 "ExportTraceServiceRequest as JSON with content-type: application/json",
				 (int)SN_MIN(ctype.len, 100), ctype.p);
			respond_otlp_error(c, 415, 3, msg);
		}
		return;
	}
	if (cenc.p != NULL && cenc.len > 0 && !sn_str_ieq_cstr(cenc, "identity")) {
		snprintf(msg, sizeof(msg), "content-encoding %.*s is not taken; send the JSON uncompressed (the "
			 "exporter's compression: none)", (int)SN_MIN(cenc.len, 40), cenc.p);
		respond_otlp_error(c, 415, 3, msg);
		return;
	}
	int rc = sn_traces_ingest_json(c->api->traces, r->body, r->body_len, &res);
	if (rc != 0) {
		sn_log(SN_LOG_DEBUG, "api conn=%llu: /v1/traces: refused a batch: %s", (unsigned long long)c->id,
		       res.error);
		/* out of memory may pass: OTLP exporters retry a 503 */
		respond_otlp_error(c, rc == SN_ENOMEM ? 503 : 400, rc == SN_ENOMEM ? 14 : 3, res.error);
		return;
	}
	sn_log(SN_LOG_DEBUG, "api conn=%llu: /v1/traces: %zu spans stored, %zu already held, %zu dropped",
	       (unsigned long long)c->id, res.accepted, res.duplicates, res.dropped);
	struct sn_out o = { 0 };
	if (res.dropped > 0) {
		snprintf(msg, sizeof(msg), "%zu span%s dropped: %s", res.dropped, res.dropped == 1 ? "" : "s",
			 res.dropped_why);
		sn_out_printf(&o, "{\"partialSuccess\":{\"rejectedSpans\":%zu,\"errorMessage\":", res.dropped);
		sn_out_json_cstr(&o, msg);
		sn_out_cstr(&o, "}}");
	} else {
		sn_out_cstr(&o, "{}");
	}
	respond(c, 200, &o);
}

/* "12", "12.5": milliseconds to nanoseconds. Returns 0 or -1. */
static int parse_ms(const char *s, uint64_t *ns)
{
	uint64_t ms = 0, frac = 0, scale = 1000000;
	size_t i = 0;
	if (s[0] == '\0')
		return -1;
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		if (ms > 1000000000000ull)   /* past 30 years */
			return -1;
		ms = ms * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == 0)
		return -1;
	if (s[i] == '.') {
		size_t d = ++i;
		for (; s[i] >= '0' && s[i] <= '9'; i++) {
			if (scale > 1) {
				scale /= 10;
				frac += (uint64_t)(s[i] - '0') * scale;
			}
		}
		if (i == d)
			return -1;
	}
	if (s[i] != '\0')
		return -1;
	*ns = ms * 1000000 + frac;
	return 0;
}

static void handle_traces_list(struct api_conn *c, const struct sn_hsrv_req *r)
{
	char service[API_MAX_PARAM], limit_s[32], min_s[32], err_s[16];
	int hs = sn_query_get(r->query, "service", service, sizeof(service));
	int hl = sn_query_get(r->query, "limit", limit_s, sizeof(limit_s));
	int hm = sn_query_get(r->query, "minDurationMs", min_s, sizeof(min_s));
	int he = sn_query_get(r->query, "error", err_s, sizeof(err_s));
	struct sn_traces_query q = { .limit = SN_TRACES_DEFAULT_LIST, .error = -1 };

	if (hs < 0 || hl < 0 || hm < 0 || he < 0) {
		respond_error(c, 400, "a query parameter is malformed or too long (service: %d bytes at most)",
			      API_MAX_PARAM - 1);
		return;
	}
	if (hs > 0 && service[0])
		q.service = service;
	if (hl > 0) {
		char *end;
		unsigned long v = strtoul(limit_s, &end, 10);
		if (limit_s[0] < '0' || limit_s[0] > '9' || *end != '\0' || v < 1 || v > SN_TRACES_MAX_LIST) {
			respond_error(c, 400, "limit \"%.20s\" is not a number from 1 to %u (default %u)", limit_s,
				      SN_TRACES_MAX_LIST, SN_TRACES_DEFAULT_LIST);
			return;
		}
		q.limit = v;
	}
	if (hm > 0 && parse_ms(min_s, &q.min_duration_ns) != 0) {
		respond_error(c, 400, "minDurationMs \"%.20s\" is not a duration in milliseconds (e.g. 250 or 0.5)",
			      min_s);
		return;
	}
	if (he > 0) {
		if (!strcmp(err_s, "true") || !strcmp(err_s, "1"))
			q.error = 1;
		else if (!strcmp(err_s, "false") || !strcmp(err_s, "0"))
			q.error = 0;
		else if (err_s[0] != '\0') {
			respond_error(c, 400, "error \"%.10s\" is not true or false", err_s);
			return;
		}
	}
	struct sn_out o = { 0 };
	sn_traces_render_list(c->api->traces, &q, &o);
	respond(c, 200, &o);
}

static void handle_trace_one(struct api_conn *c, struct sn_str rest)
{
	uint8_t id[16];
	if (sn_traces_parse_id(rest.p, rest.len, id) != 0) {
		respond_error(c, 400, "trace id \"%.*s\" is not 32 hex digits (not all zero); e.g. "
				      "/api/v1/traces/5b8efff798038103d269b633813fc60c", (int)SN_MIN(rest.len, 64), rest.p);
		return;
	}
	struct sn_out o = { 0 };
	if (sn_traces_render_trace(c->api->traces, id, &o) != 0) {
		sn_out_free(&o);
		respond_error(c, 404, "trace %.32s is not held: sinewd keeps the most recent %zu traces in memory, so it "
				      "may have been evicted or not arrived yet; list what is held with GET /api/v1/traces",
			      rest.p, (size_t)SN_TRACES_MAX_TRACES);
		return;
	}
	respond(c, 200, &o);
}

/* GET /api/v1/stats?resource=R[&namespace=NS][&name=N][&window=D],
 * GET /api/v1/edges[?namespace=NS][&window=D] (edges 1) and
 * GET /api/v1/routes[?resource=svc|deploy][&namespace=NS][&name=N][&window=D]
 * (edges 2) (docs/api.md "Stats"). */
static void handle_stats(struct api_conn *c, const struct sn_hsrv_req *r, int edges)
{
	char resource[32] = "", ns[API_MAX_PARAM] = "", name[API_MAX_PARAM] = "", window[32] = "";
	int hr = sn_query_get(r->query, "resource", resource, sizeof(resource));
	int hn = sn_query_get(r->query, "namespace", ns, sizeof(ns));
	int hm = sn_query_get(r->query, "name", name, sizeof(name));
	int hw = sn_query_get(r->query, "window", window, sizeof(window));
	struct sn_stats_query q = { .window_ms = SN_STATS_WINDOW_DEFAULT_MS };
	struct sn_out o = { 0 };

	if (hr < 0 || hn < 0 || hm < 0 || hw < 0) {
		respond_error(c, 400, "a query parameter is malformed or too long (namespace and name: %d bytes at most)",
			      API_MAX_PARAM - 1);
		return;
	}
	if (hw > 0 && window[0] != '\0' &&
	    (sn_parse_duration_ms(window, &q.window_ms) != 0 || q.window_ms < SN_STATS_WINDOW_MIN_MS ||
	     q.window_ms > SN_STATS_WINDOW_MAX_MS)) {
		respond_error(c, 400, "window \"%.20s\" is not a duration from 10s to 1h (e.g. 30s, 1m, 15m; default 1m)",
			      window);
		return;
	}
	if (edges == 1) {
		sn_stats_render_edges(c->api->stats, ns[0] ? ns : NULL, q.window_ms, sn_loop_now(c->api->loop), &o);
		respond(c, 200, &o);
		return;
	}
	if (edges == 2) {
		/* routes: of a service (default) or of a client workload */
		q.resource = SN_STATS_SERVICE;
		if (hr > 0 && (sn_stats_parse_resource(resource, &q.resource) != 0 || q.resource == SN_STATS_NAMESPACE)) {
			respond_error(c, 400, "resource \"%.20s\" is not one of service (svc) or deployment (deploy); "
					      "e.g. /api/v1/routes?resource=svc&namespace=default&name=reviews", resource);
			return;
		}
		q.namespace_ = ns[0] ? ns : NULL;
		q.name = name[0] ? name : NULL;
		sn_stats_render_routes(c->api->stats, &q, sn_loop_now(c->api->loop), &o);
		respond(c, 200, &o);
		return;
	}
	if (hr <= 0 || sn_stats_parse_resource(resource, &q.resource) != 0) {
		respond_error(c, 400, "resource \"%.20s\" is not one of deployment (deploy), service (svc) or namespace "
				      "(ns); e.g. /api/v1/stats?resource=deploy&namespace=default", resource);
		return;
	}
	q.namespace_ = ns[0] ? ns : NULL;
	q.name = name[0] ? name : NULL;
	sn_stats_render_stat(c->api->stats, &q, sn_loop_now(c->api->loop), &o);
	respond(c, 200, &o);
}

/* The answer is another module's to write, later (a tap's stream, a
 * relayed scrape): start takes the connection's socket and returns 0, or
 * an HTTP status with why, and the API answers the error itself. */
typedef int (*handover_fn)(struct sn_mesh *m, int fd, const void *arg, char *why, size_t size);

struct handover_to {
	handover_fn start;
	struct sn_mesh *mesh;
	const void *arg;
};

static int take_socket(int fd, const void *arg, char *why, size_t size)
{
	const struct handover_to *to = arg;
	return to->start(to->mesh, fd, to->arg, why, size);
}

/* The server lets go of the socket when start takes it, and answers a
 * refusal through on_error (respond_error). */
static void handover(struct api_conn *c, handover_fn start, const void *arg)
{
	struct handover_to to = { start, c->api->mesh, arg };
	sn_hsrv_handover(c->hc, take_socket, &to);
}

static int tap_start(struct sn_mesh *m, int fd, const void *arg, char *why, size_t size)
{
	return sn_mesh_tap_start(m, fd, arg, why, size);
}

struct stats_from {
	const struct sn_api *api;
	const char *path;
};

static int stats_from_start(struct sn_mesh *m, int fd, const void *arg, char *why, size_t size)
{
	const struct stats_from *sf = arg;
	(void)m;
	return sf->api->stats_from(fd, sf->path, why, size);
}

static int scrape_start(struct sn_mesh *m, int fd, const void *arg, char *why, size_t size)
{
	return sn_mesh_scrape_start(m, fd, arg, why, size);
}

/* GET /api/v1/proxies/ID/metrics (docs/api.md): the proxy's /metrics,
 * relayed over its control link (scrape.c). */
static void handle_proxy_metrics(struct api_conn *c, struct sn_str id)
{
	char idz[256];   /* a proxy id is at most 200 bytes (the hello's bound) */
	if (sn_url_decode(id, idz, sizeof(idz)) != 0 || idz[0] == '\0' || strchr(idz, '/') != NULL) {
		respond_error(c, 400, "proxy id \"%.*s\" is malformed or too long; see GET /api/v1/proxies",
			      (int)SN_MIN(id.len, 200), id.p);
		return;
	}
	handover(c, scrape_start, idz);
}

/* GET /api/v1/tap?... (docs/api.md "Tap"): the connection becomes a tap
 * session's stream (src/control/tap.c), once the tap token is shown. */
static void handle_tap(struct api_conn *c, const struct sn_hsrv_req *r)
{
	struct sn_tap_query q;
	char why[512], dur[32] = "", max[32] = "", bodies[8] = "";
	int bad = 0, st;

	memset(&q, 0, sizeof(q));
	if ((st = sn_mesh_tap_authorize(c->api->mesh, sn_hsrv_header(r, "authorization"), why, sizeof(why))) != 0) {
		respond_error(c, st, "%s", why);
		return;
	}
	bad |= sn_query_get(r->query, "namespace", q.ns, sizeof(q.ns)) < 0;
	bad |= sn_query_get(r->query, "workload", q.workload, sizeof(q.workload)) < 0;
	bad |= sn_query_get(r->query, "pod", q.pod, sizeof(q.pod)) < 0;
	bad |= sn_query_get(r->query, "proxy", q.proxy, sizeof(q.proxy)) < 0;
	bad |= sn_query_get(r->query, "direction", q.direction, sizeof(q.direction)) < 0;
	bad |= sn_query_get(r->query, "method", q.method, sizeof(q.method)) < 0;
	bad |= sn_query_get(r->query, "path", q.path, sizeof(q.path)) < 0;
	bad |= sn_query_get(r->query, "authority", q.authority, sizeof(q.authority)) < 0;
	bad |= sn_query_get(r->query, "status", q.status, sizeof(q.status)) < 0;
	bad |= sn_query_get(r->query, "redact", q.redact, sizeof(q.redact)) < 0;
	bad |= sn_query_get(r->query, "bodies", bodies, sizeof(bodies)) < 0;
	bad |= sn_query_get(r->query, "max", max, sizeof(max)) < 0;
	bad |= sn_query_get(r->query, "duration", dur, sizeof(dur)) < 0;
	if (bad) {
		respond_error(c, 400, "a query parameter is malformed or too long; see docs/api.md \"Tap\"");
		return;
	}
	if (q.direction[0] && strcmp(q.direction, "inbound") && strcmp(q.direction, "outbound")) {
		respond_error(c, 400, "direction \"%.20s\" is not inbound or outbound", q.direction);
		return;
	}
	int lo, hi;
	if (sn_status_range(q.status, &lo, &hi) != 0) {
		respond_error(c, 400, "status \"%.20s\" is not a status code (503) or class (5xx)", q.status);
		return;
	}
	q.bodies = !strcmp(bodies, "1") || !strcmp(bodies, "true");
	if (max[0]) {
		char *end;
		q.max_events = strtoull(max, &end, 10);
		if (*end != '\0' || max[0] == '-') {
			respond_error(c, 400, "max \"%.20s\" is not a count of events", max);
			return;
		}
	}
	if (dur[0] && (sn_parse_duration_ms(dur, &q.duration_ms) != 0 || q.duration_ms < 1000 ||
		       q.duration_ms > 3600000)) {
		respond_error(c, 400, "duration \"%.20s\" is not from 1s to 1h (e.g. 30s, 5m)", dur);
		return;
	}
	handover(c, tap_start, &q);
}

static void handle_version(struct api_conn *c)
{
	const struct sn_api *api = c->api;
	struct sn_out o = { 0 };
	sn_out_cstr(&o, "{\"version\":\"" SINEWD_VERSION "\",\"api\":\"v1\",\"revision\":");
	sn_out_printf(&o, "\"%llu\",\"resources\":%zu,\"dataDir\":", (unsigned long long)api->store->revision,
		      api->store->n);
	sn_out_json_cstr(&o, api->store->dir);
	sn_out_cstr(&o, ",\"store\":");
	sn_out_json_cstr(&o, api->store->where);
	sn_out_cstr(&o, ",\"mesh\":");
	sn_out_json_cstr(&o, api->mesh_addr);
	sn_out_printf(&o, ",\"uptimeSeconds\":%llu}",
		      (unsigned long long)((sn_loop_now(api->loop) - api->started_ms) / 1000));
	respond(c, 200, &o);
}

/* GET / and /ui/NAME: the dashboard's embedded files (dashboard.c). */
static void handle_dashboard(struct api_conn *c, const struct sn_hsrv_req *r, int get)
{
	struct sn_dashboard_file f;
	char names[512];

	if (!get) {
		respond_error(c, 405, "method %.*s is not allowed on %.*s: the dashboard's files are GET only",
			      (int)SN_MIN(r->method.len, 16), r->method.p, (int)SN_MIN(r->path.len, 200), r->path.p);
	} else if (sn_dashboard_find(r->path.p, r->path.len, &f) == 0) {
		sn_hsrv_respond(c->hc, 200, f.content_type, SN_DASHBOARD_HEADERS, f.data, f.len);
	} else {
		sn_dashboard_list(names, sizeof(names));
		respond_error(c, 404, "no dashboard file %.*s; the dashboard is / and its files are %s",
			      (int)SN_MIN(r->path.len, 200), r->path.p, names);
	}
}

static void route(struct api_conn *c, const struct sn_hsrv_req *r)
{
	static const struct sn_str one_prefix = SN_STR_LIT("/api/v1/resources/");
	static const struct sn_str trace_prefix = SN_STR_LIT("/api/v1/traces/");
	static const struct sn_str proxies_prefix = SN_STR_LIT("/api/v1/proxies/");
	static const struct sn_str metrics_suffix = SN_STR_LIT("/metrics");
	int is_trace_one = r->path.len > trace_prefix.len && !memcmp(r->path.p, trace_prefix.p, trace_prefix.len);
	int is_trace_list = sn_str_eq_cstr(r->path, "/api/v1/traces");
	int is_otlp = sn_str_eq_cstr(r->path, "/v1/traces");   /* OTLP/HTTP's own path */
	int is_stats = sn_str_eq_cstr(r->path, "/api/v1/stats"), is_edges = sn_str_eq_cstr(r->path, "/api/v1/edges");
	int get = sn_str_eq_cstr(r->method, "GET"), post = sn_str_eq_cstr(r->method, "POST");
	int del = sn_str_eq_cstr(r->method, "DELETE");
	struct sn_out o = { 0 };

	if (sn_str_eq_cstr(r->path, "/live") && get) {
		sn_out_cstr(&o, "{\"status\":\"live\"}");
		respond(c, 200, &o);
	} else if (sn_str_eq_cstr(r->path, "/ready") && get) {
		sn_out_printf(&o, "{\"status\":\"ready\",\"revision\":\"%llu\"}",
			      (unsigned long long)c->api->store->revision);
		respond(c, 200, &o);
	} else if (sn_str_eq_cstr(r->path, "/api/v1/version") && get) {
		handle_version(c);
	} else if (sn_str_eq_cstr(r->path, "/api/v1/apply") && post) {
		handle_apply(c, r);
	} else if (sn_str_eq_cstr(r->path, "/api/v1/analyze") && post) {
		handle_analyze(c, r);
	} else if (sn_str_eq_cstr(r->path, "/api/v1/resources") && get) {
		handle_list(c, r);
	} else if (sn_str_eq_cstr(r->path, "/api/v1/proxies") && get) {
		sn_mesh_render_proxies(c->api->mesh, &o);
		if (want_all(r))
			add_other_replicas(c->api, &o);
		respond(c, 200, &o);
	} else if (sn_str_eq_cstr(r->path, "/api/v1/replicas") && get) {
		render_replicas(c->api, &o);
		respond(c, 200, &o);
	} else if (sn_str_eq_cstr(r->path, "/api/v1/prometheus/targets") && get) {
		sn_mesh_render_prom_sd(c->api->mesh, c->api->api_addr, &o);
		respond(c, 200, &o);
	} else if (sn_str_eq_cstr(r->path, "/api/v1/ca/rotate") && post) {
		char err[512] = "";
		int rc;
		if (c->api->ca == NULL || c->api->mesh == NULL) {
			respond_error(c, 503, "sinewd runs without a CA");
		} else if ((rc = sn_mesh_ca_rotate(c->api->mesh, "asked through the API", err, sizeof(err))) != 0) {
			/* refused (under way, user CA): 409; could not write or sign: 500 */
			respond_error(c, rc == SN_ELIMIT || rc == SN_EINVAL ? 409 : 500, "%s", err);
		} else {
			handle_ca(c);
		}
	} else if ((sn_str_eq_cstr(r->path, "/api/v1/ca") && get) ||
		   ((sn_str_eq_cstr(r->path, "/api/v1/tokens") || sn_str_eq_cstr(r->path, "/api/v1/certificates")) &&
		    post)) {
		if (c->api->ca == NULL)
			respond_error(c, 503, "sinewd runs without a CA");
		else if (get)
			handle_ca(c);
		else if (sn_str_eq_cstr(r->path, "/api/v1/tokens"))
			handle_tokens(c, r);
		else
			handle_certificates(c, r);
	} else if (r->path.len > one_prefix.len && !memcmp(r->path.p, one_prefix.p, one_prefix.len) &&
		   (get || del)) {
		handle_one(c, r, sn_str_make(r->path.p + one_prefix.len, r->path.len - one_prefix.len), del);
	} else if ((is_otlp && post) || ((is_trace_list || is_trace_one) && get)) {
		if (c->api->traces == NULL)
			respond_error(c, 503, "sinewd runs without a trace store");
		else if (post)
			handle_otlp_traces(c, r);
		else if (is_trace_one)
			handle_trace_one(c, sn_str_make(r->path.p + trace_prefix.len, r->path.len - trace_prefix.len));
		else
			handle_traces_list(c, r);
	} else if (sn_str_eq_cstr(r->path, "/api/v1/tap") && get) {
		handle_tap(c, r);
	} else if (get && r->path.len > proxies_prefix.len + metrics_suffix.len &&
		   !memcmp(r->path.p, proxies_prefix.p, proxies_prefix.len) &&
		   !memcmp(r->path.p + r->path.len - metrics_suffix.len, metrics_suffix.p, metrics_suffix.len)) {
		handle_proxy_metrics(c, sn_str_make(r->path.p + proxies_prefix.len,
						    r->path.len - proxies_prefix.len - metrics_suffix.len));
	} else if ((is_stats || is_edges || sn_str_eq_cstr(r->path, "/api/v1/routes")) && get &&
		   c->api->stats_from != NULL) {
		/* sinewd --prometheus: answered from Prometheus, on a thread */
		char path[2048];
		int n = snprintf(path, sizeof(path), "%.*s%s%.*s", (int)r->path.len, r->path.p, r->query.p ? "?" : "",
				 (int)r->query.len, r->query.p ? r->query.p : "");
		struct stats_from sf = { c->api, path };
		if (n < 0 || (size_t)n >= sizeof(path))
			respond_error(c, 414, "the query is too long");
		else
			handover(c, stats_from_start, &sf);
	} else if ((is_stats || is_edges || sn_str_eq_cstr(r->path, "/api/v1/routes")) && get) {
		if (c->api->stats == NULL)
			respond_error(c, 503, "sinewd runs without live stats");
		else
			handle_stats(c, r, is_edges ? 1 : is_stats ? 0 : 2);
	} else if (sn_dashboard_owns(r->path.p, r->path.len)) {
		handle_dashboard(c, r, get);
	} else if (is_otlp || is_trace_list || is_trace_one || is_stats || is_edges || sn_str_eq_cstr(r->path, "/api/v1/tap") ||
		   sn_str_eq_cstr(r->path, "/api/v1/routes") ||
		   sn_str_eq_cstr(r->path, "/api/v1/apply") ||
		   sn_str_eq_cstr(r->path, "/api/v1/analyze") || sn_str_eq_cstr(r->path, "/api/v1/resources") || sn_str_eq_cstr(r->path, "/live") ||
		   sn_str_eq_cstr(r->path, "/api/v1/proxies") || sn_str_eq_cstr(r->path, "/api/v1/ca") ||
		   sn_str_eq_cstr(r->path, "/api/v1/prometheus/targets") ||
		   sn_str_eq_cstr(r->path, "/api/v1/ca/rotate") || sn_str_eq_cstr(r->path, "/api/v1/tokens") || sn_str_eq_cstr(r->path, "/api/v1/certificates") ||
		   sn_str_eq_cstr(r->path, "/ready") || sn_str_eq_cstr(r->path, "/api/v1/version") ||
		   (r->path.len > one_prefix.len && !memcmp(r->path.p, one_prefix.p, one_prefix.len))) {
		respond_error(c, 405, "method %.*s is not allowed on %.*s; see docs/api.md", (int)SN_MIN(r->method.len, 16),
			      r->method.p, (int)SN_MIN(r->path.len, 200), r->path.p);
	} else {
		respond_error(c, 404, "no such endpoint %.*s; try /api/v1/resources, /api/v1/apply, /api/v1/analyze, "
				      "/api/v1/proxies, /api/v1/ca, /api/v1/ca/rotate, /api/v1/tokens, /api/v1/certificates, /api/v1/traces, "
				      "/v1/traces (OTLP), /api/v1/stats, /api/v1/edges, /api/v1/routes, /api/v1/tap, /api/v1/prometheus/targets, /api/v1/version, /ready, /live, "
				      "or the dashboard at /", (int)SN_MIN(r->path.len, 200), r->path.p);
	}
}

/* ---- serving --------------------------------------------------------- */

static void on_request(void *data, struct sn_hsrv_conn *hc, const struct sn_hsrv_req *r)
{
	struct api_conn c = { data, hc, sn_hsrv_conn_id(hc) };
	route(&c, r);
}

/* What the server refused (a malformed or too large request, a refused
 * handover), in the API's JSON error shape. */
static void on_error(void *data, struct sn_hsrv_conn *hc, int status, const char *msg)
{
	struct api_conn c = { data, hc, sn_hsrv_conn_id(hc) };
	respond_error(&c, status, "%s", msg);
}

int sn_api_start(struct sn_api *api, struct sn_loop *loop, struct sn_store *st, const struct sockaddr *addr,
		 socklen_t addr_len)
{
	struct sn_hsrv_opts opt = {
		.name = "api",
		.request_line_max = 8192,
		.head_max = API_HEAD_MAX,
		.body_max = SN_API_MAX_BODY,
		.body_hint = "split the apply",
		.max_conns = SN_API_MAX_CONNS,
		.timeout_ms = API_TIMEOUT_MS,
		.backlog = 128,
		.on_request = on_request,
		.on_error = on_error,
		.data = api,
	};
	api->loop = loop;
	api->store = st;
	api->started_ms = sn_loop_now(loop);
	return sn_hsrv_start(&api->srv, loop, addr, addr_len, &opt);
}

void sn_api_stop(struct sn_api *api)
{
	sn_hsrv_stop(&api->srv);
}
