/* Tracing, as a filter: each request's trace context is read (or a trace
 * started, sampled at the proxy's rate) and sent upstream with this hop's
 * span as parent; when the exchange is done, a sampled one is a span --
 * a client span outbound, a server span inbound -- with Istio's span tags
 * (trace.c exports it). Both directions, first in the chain: a request
 * another filter answers is still a span of its trace.
 *
 * The rate: the Telemetry resource's randomSamplingPercentage, else the
 * mesh config's defaultConfig.tracing.sampling, else --trace-sampling
 * (default 1 %, Istio's). A decision that came with the request (W3C
 * flags, B3 sampled) is kept. enableTracing: false in the mesh config
 * turns all of it off: the client's fields then pass as they came. */
#include <stdio.h>
#include <string.h>

#include "sinew/json.h"
#include "filter.h"

#define MAX_ATTRS (24 + 32)

static uint64_t worker_rnd(void *w)
{
	return sn_worker_random(w);
}

static double sampling(const struct sn_worker *w)
{
	const struct sn_snapshot *s = w->snap;
	return s != NULL && s->tracing.sampling >= 0 ? s->tracing.sampling : w->proxy->opt.trace_sampling;
}

static int disabled(const struct sn_worker *w)
{
	return w->snap != NULL && w->snap->tracing.disabled;
}

static void begin(struct sn_exchange *ex)
{
	struct sn_worker *w = sn_fx_worker(ex);
	const struct sn_h1_request *rq = sn_fx_request(ex);
	struct sn_trace_in in;
	sn_trace_parse(rq->headers, rq->num_headers, &in);
	sn_trace_begin(&in, sampling(w), worker_rnd, w, sn_fx_trace(ex));
}

static enum sn_filter_verdict trace_head(struct sn_exchange *ex)
{
	if (disabled(sn_fx_worker(ex)))
		return SN_FILTER_NEXT;
	begin(ex);
	sn_fx_trace_send(ex);
	return SN_FILTER_NEXT;
}

static struct sn_str cstr(const char *s)
{
	return s != NULL ? sn_str_make(s, strlen(s)) : sn_str_make("", 0);
}

/* The port an inbound request came to, as a client named it: the one a
 * capturing pod's client dialled, else the workload's service port (its
 * first, when it has several: a non-capturing inbound listener cannot
 * tell them apart), else the authority's; 0 when none says. */
static unsigned inbound_port(struct sn_exchange *ex, const struct sn_worker *w)
{
	const struct sn_proxy *p = w->proxy;
	const struct sn_service *sv = w->snap != NULL && p->own_service_fqdn[0]
					      ? sn_snapshot_find_service(w->snap, p->own_service_fqdn)
					      : NULL;
	if (sn_fx_app_port(ex))
		return sn_fx_app_port(ex);
	if (sv != NULL && sv->n_ports > 0)
		return sv->ports[0].port;
	/* a proxy that never called its own service holds no Service of it
	 * (lazy discovery): the port the client wrote in the authority */
	struct sn_str a = sn_fx_request(ex)->authority;
	const char *colon = a.len && a.p[a.len - 1] != ']' ? memrchr(a.p, ':', a.len) : NULL;
	unsigned port = 0;
	for (const char *q = colon ? colon + 1 : a.p + a.len; q < a.p + a.len && *q >= '0' && *q <= '9' && port < 65536; q++)
		port = port * 10 + (unsigned)(*q - '0');
	return port < 65536 ? port : 0;
}

/* v in decimal, in buf. */
static struct sn_str number(char *buf, size_t size, uint64_t v)
{
	struct sn_json_out j;
	sn_json_out_init(&j, buf, size);
	sn_json_out_u64(&j, v);
	return sn_str_make(buf, j.len);
}

static void trace_done(struct sn_exchange *ex, const struct sn_fx_summary *s)
{
	struct sn_worker *w = sn_fx_worker(ex);
	struct sn_proxy *p = w->proxy;
	struct sn_trace_ctx *t = sn_fx_trace(ex);
	const struct sn_h1_request *rq = s->req;
	const struct sn_cluster *cl = s->cluster;
	int inbound = s->dir == SN_DIR_INBOUND;

	if (disabled(w))
		return;
	if (!t->active)
		begin(ex);   /* answered before the chain ran (no route, ...) */
	if (!t->sampled || !sn_trace_exporting(w))
		return;

	/* Envoy's operation name: the destination's host and port, then a
	 * wildcard path. Built by hand: this runs for every sampled request. */
	char name[320], url[512], status[8], req_size[24], resp_size[24], attempts[12];
	struct sn_json_out nb, ub;
	const struct sn_tracing *tc = w->snap != NULL ? &w->snap->tracing : NULL;
	uint32_t max_tag = 256;
	for (size_t i = 0; tc != NULL && i < tc->n_providers; i++)
		max_tag = SN_MIN(max_tag, w->snap->ext_authz[tc->providers[i]].max_tag_length);
	sn_json_out_init(&nb, name, sizeof(name));
	if (inbound || cl != NULL) {
		const char *host = !inbound ? cl->service
			: p->own_service_fqdn[0] ? p->own_service_fqdn : p->opt.service ? p->opt.service : "inbound";
		sn_json_out_raw(&nb, host, SN_MIN(strlen(host), (size_t)253));
		sn_json_out_raw(&nb, ":", 1);
		sn_json_out_u64(&nb, inbound ? inbound_port(ex, w) : cl->port);
	} else {
		sn_json_out_raw(&nb, rq->authority.p, SN_MIN(rq->authority.len, (size_t)253));
	}
	sn_json_out_raw(&nb, "/*", 2);
	sn_json_out_init(&ub, url, sizeof(url));
	sn_json_out_raw(&ub, "http://", 7);
	sn_json_out_raw(&ub, rq->authority.p, SN_MIN(rq->authority.len, (size_t)255));
	sn_json_out_raw(&ub, rq->path.p, SN_MIN(rq->path.len, (size_t)255));
	struct sn_str st = number(status, sizeof(status), (uint64_t)s->status);
	struct sn_str rqs = number(req_size, sizeof(req_size), s->request_bytes);
	struct sn_str rss = number(resp_size, sizeof(resp_size), s->response_bytes);
	struct sn_str att = number(attempts, sizeof(attempts), s->attempts);
	/* the peer's address without its port */
	struct sn_str peer = cstr(s->peer);
	const char *colon = peer.len && peer.p[0] != '[' ? memrchr(peer.p, ':', peer.len) : NULL;
	if (colon != NULL)
		peer.len = (size_t)(colon - peer.p);

	struct sn_trace_attr a[MAX_ATTRS];
	size_t n = 0;
#define ATTR(k, v) (a[n++] = (struct sn_trace_attr){ "" k, sizeof(k) - 1, (v) })   /* a literal key */
	ATTR("http.method", rq->method);
	ATTR("http.url", sn_str_make(url, SN_MIN(ub.len, (size_t)max_tag)));
	ATTR("http.protocol", cstr(s->protocol));
	ATTR("http.status_code", st);
	ATTR("response_flags", cstr(s->flags));
	ATTR("request_size", rqs);
	ATTR("response_size", rss);
	ATTR("guid:x-request-id", s->request_id);
	ATTR("peer.address", peer);
	if (cl != NULL) {
		ATTR("upstream_cluster", cstr(cl->name));
		ATTR("upstream_cluster.name", cstr(cl->name));
	}
	if (s->ep != NULL && s->ep->address != NULL)
		ATTR("upstream_address", cstr(s->ep->address));
	if (s->attempts > 1)
		ATTR("sinew.attempts", att);
	if (s->grpc && s->grpc_status != NULL)
		ATTR("grpc.status_code", cstr(s->grpc_status));
	int ua = sn_h1_find_header(rq->headers, rq->num_headers, SN_STR_LIT("user-agent"), 0);
	if (ua >= 0)
		ATTR("user_agent", sn_str_make(rq->headers[ua].value.p, SN_MIN(rq->headers[ua].value.len, max_tag)));
	if (inbound && s->peer_id != NULL)
		ATTR("sinew.peer_principal", cstr(s->peer_id));
	int error = s->status == 0 || s->status >= 500;
	if (error)
		ATTR("error", cstr("true"));
	for (size_t i = 0; tc != NULL && i < tc->n_tags && n < MAX_ATTRS; i++) {
		const struct sn_trace_tag *tg = &tc->tags[i];
		struct sn_str v = { NULL, 0 };
		if (tg->kind == SN_TRACE_TAG_LITERAL) {
			if (tg->value != NULL)
				v = cstr(tg->value);
		} else {
			int h = sn_h1_find_header(rq->headers, rq->num_headers, cstr(tg->value), 0);
			if (h >= 0)
				v = sn_str_make(rq->headers[h].value.p, SN_MIN(rq->headers[h].value.len, max_tag));
			else if (tg->default_value != NULL)
				v = cstr(tg->default_value);
		}
		if (v.p != NULL && tg->name != NULL)
			a[n++] = (struct sn_trace_attr){ tg->name, strlen(tg->name), v };
	}
#undef ATTR
	int64_t end = s->start_wall_us + (int64_t)(s->duration_ms * 1000.0);
	struct sn_trace_span sp = {
		.name = sn_str_make(name, nb.len), .server = inbound, .start_us = s->start_wall_us,
		.end_us = end > s->start_wall_us ? end : s->start_wall_us + 1, .attrs = a, .n_attrs = n,
		.error = error, .message = s->flags && strcmp(s->flags, "-") ? s->flags : NULL,
	};
	sn_trace_record(w, t, &sp);
}

const struct sn_filter sn_filter_trace = {
	.name = "trace",
	.dirs = SN_FILTER_OUTBOUND | SN_FILTER_INBOUND,
	.request_head = trace_head,
	.done = trace_done,
};
