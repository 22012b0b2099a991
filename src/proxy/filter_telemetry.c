/* Metrics (Istio's standard labels, docs/observability.md) and the JSON
 * access log, from each exchange's summary. */
#include <stdio.h>
#include <string.h>

#include "filter.h"

/* The workload's app label, as Istio reads app/version from the pod's
 * labels; a proxy started without one is its service. */
static const char *own_app(const struct sn_proxy *p)
{
	const char *app = sn_labels_get(&p->labels, "app");
	return app != NULL ? app : p->opt.service;
}

/* The outbound request's route series (docs/observability.md, "Route
 * metrics"): its VirtualService route, or [DEFAULT] when none matched. */
static void record_route(struct sn_exchange *ex, struct sn_worker *w, const struct sn_fx_summary *s)
{
	const struct sn_cluster *cl = s->cluster;
	const struct sn_http_route *rt = s->route;
	struct sn_route_labels rl;
	int success = s->status >= 1 && s->status <= 499 &&
		      (!s->grpc || s->grpc_status == NULL || strcmp(s->grpc_status, "0") == 0);

	memset(&rl, 0, sizeof(rl));
	if (rt != NULL && rt->vs_name != NULL) {
		rl.virtual_service_namespace = rt->vs_namespace;
		rl.virtual_service = rt->vs_name;
		rl.route = rt->name;
	}
	if (cl != NULL) {
		rl.destination_service = cl->service;
		rl.destination_service_name = cl->service_name;
		rl.destination_service_namespace = cl->namespace_;
	} else if (w->snap != NULL && s->req != NULL) {
		/* no cluster picked (no rule matched, a direct response or
		 * redirect): the service the host names, if any */
		uint16_t port;
		const struct sn_vhost *vh = sn_snapshot_find_vhost(w->snap, s->req->authority, &port);
		const struct sn_service *sv = vh != NULL ? sn_snapshot_find_service(w->snap, vh->host) : NULL;
		if (sv != NULL) {
			rl.destination_service = sv->fqdn;
			rl.destination_service_name = sv->name;
			rl.destination_service_namespace = sv->namespace_;
		} else if (vh != NULL) {
			rl.destination_service = vh->host;
		}
	}
	/* the labels are the exchange's snapshot's strings (or static) */
	const struct sn_snapshot *snap = sn_fx_snapshot(ex);
	rl.gen = snap != NULL && snap == w->snap ? snap->version : 0;
	sn_metrics_record_route(w->metrics, &rl, success, s->duration_ms);
}

void sn_metric_labels_outbound(struct sn_metric_labels *l, const struct sn_proxy *p, const struct sn_cluster *cl,
			       const struct sn_endpoint *ep, const char *upstream_id)
{
	memset(l, 0, sizeof(*l));
	l->connection_security_policy = "unknown";
	l->reporter = "source";
	l->source_workload = p->workload;
	l->source_workload_namespace = p->identity.namespace_;
	l->source_principal = upstream_id != NULL ? p->principal : NULL;
	l->source_app = own_app(p);
	l->source_version = sn_labels_get(&p->labels, "version");
	l->source_cluster = SN_METRICS_CLUSTER_ID;
	if (cl != NULL) {
		l->destination_service = cl->service;
		l->destination_service_name = cl->service_name;
		l->destination_service_namespace = cl->namespace_;
	}
	if (ep != NULL) {
		l->destination_workload = ep->workload;
		l->destination_workload_namespace = cl ? cl->namespace_ : NULL;
		l->destination_principal = upstream_id;
		/* The endpoint's own labels (its WorkloadEntry's), as Istio
		 * takes the destination pod's: a workload without an app label
		 * is "unknown", whatever its service is called. */
		l->destination_app = sn_labels_get(&ep->labels, "app");
		l->destination_version = ep->version;
		/* Endpoints come from this mesh's registry: its cluster. */
		l->destination_cluster = SN_METRICS_CLUSTER_ID;
	}
}

void sn_metric_labels_inbound(struct sn_metric_labels *l, const struct sn_proxy *p, const char *peer_id, int secure)
{
	memset(l, 0, sizeof(*l));
	l->connection_security_policy = secure ? "mutual_tls" : "none";
	l->reporter = "destination";
	l->destination_workload = p->workload;
	l->destination_workload_namespace = p->identity.namespace_;
	l->destination_principal = secure ? p->principal : NULL;
	l->destination_app = own_app(p);
	l->destination_version = sn_labels_get(&p->labels, "version");
	l->destination_service = p->own_service_fqdn[0] ? p->own_service_fqdn : NULL;
	l->destination_service_name = p->opt.service;
	l->destination_service_namespace = p->identity.namespace_;
	l->destination_cluster = SN_METRICS_CLUSTER_ID;
	l->source_principal = peer_id;
	/* A client with a certificate of this mesh's trust is a workload of
	 * this (single-cluster) mesh; anyone else may be from anywhere. */
	l->source_cluster = peer_id != NULL ? SN_METRICS_CLUSTER_ID : NULL;
}

static void telemetry_done(struct sn_exchange *ex, const struct sn_fx_summary *s)
{
	struct sn_worker *w = sn_fx_worker(ex);
	struct sn_proxy *p = w->proxy;
	const struct sn_cluster *cl = s->cluster;
	struct sn_metric_labels l;
	char upstream_id[256];

	/* Principals are Istio's: known only where mutual TLS proved them. A
	 * proxy without a certificate, or a request that went in plaintext,
	 * has proven no identity, its own included; NULL renders "unknown". */
	if (s->dir == SN_DIR_OUTBOUND) {
		/* Over mutual TLS the endpoint had to present the SPIFFE ID
		 * sn_upstream_mtls names (the handshake checks it), and we
		 * presented ours; an upstream response head means that
		 * handshake succeeded. A connect or handshake failure proved
		 * nothing. */
		int mtls = cl != NULL && s->ep != NULL && s->upstream_ms >= 0 &&
			   sn_upstream_mtls(w, cl, s->ep, upstream_id, sizeof(upstream_id)) == 1;
		sn_metric_labels_outbound(&l, p, cl, s->ep, mtls ? upstream_id : NULL);
	} else {
		sn_metric_labels_inbound(&l, p, s->peer_id, s->secure);
	}
	l.request_protocol = s->grpc ? "grpc" : "http";
	l.grpc_response_status = s->grpc ? s->grpc_status : NULL;
	l.response_code = s->status;
	l.response_flags = s->flags;
	sn_metrics_record_request(w->metrics, &l, s->duration_ms, s->request_bytes, s->response_bytes);
	if (s->dir == SN_DIR_OUTBOUND)
		record_route(ex, w, s);

	if (p->access_log != NULL) {
		const struct sn_h1_request *rq = s->req;
		struct sn_access_entry e;
		char upstream[64];
		int ua = sn_h1_find_header(rq->headers, rq->num_headers, SN_STR_LIT("user-agent"), 0);
		int xff = sn_h1_find_header(rq->headers, rq->num_headers, SN_STR_LIT("x-forwarded-for"), 0);

		memset(&e, 0, sizeof(e));
		e.start_unix_us = s->start_wall_us;
		e.direction = s->dir == SN_DIR_OUTBOUND ? "outbound" : "inbound";
		e.method = rq->method;
		e.path = rq->path;
		e.authority = rq->authority;
		e.protocol = s->protocol;
		e.grpc_status = s->grpc_status;
		e.response_code = s->status;
		e.response_flags = s->flags;
		e.bytes_received = s->request_bytes;
		e.bytes_sent = s->response_bytes;
		e.duration_ms = s->duration_ms;
		e.upstream_service_time_ms = s->upstream_ms;
		e.upstream_cluster = cl ? cl->name : NULL;
		if (s->ep != NULL) {
			snprintf(upstream, sizeof(upstream), "%s", s->ep->address ? s->ep->address : "");
			e.upstream_host = upstream;
		}
		e.route_name = s->route ? s->route->name : NULL;
		e.attempts = s->attempts;
		e.request_id = s->request_id;
		if (ua >= 0)
			e.user_agent = rq->headers[ua].value;
		if (xff >= 0)
			e.forwarded_for = rq->headers[xff].value;
		e.downstream_remote = s->peer;
		e.source_workload = s->dir == SN_DIR_OUTBOUND ? p->workload : NULL;
		e.destination_service = l.destination_service;
		sn_access_log_write(p->access_log, &e);
	}
}

const struct sn_filter sn_filter_telemetry = {
	.name = "telemetry",
	.dirs = SN_FILTER_OUTBOUND | SN_FILTER_INBOUND,
	.done = telemetry_done,
};
