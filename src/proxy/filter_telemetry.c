/* Metrics (Istio's standard labels, docs/observability.md) and the JSON
 * access log, from each exchange's summary. */
#include <stdio.h>
#include <string.h>

#include "filter.h"

static void telemetry_done(struct sn_exchange *ex, const struct sn_fx_summary *s)
{
	struct sn_worker *w = sn_fx_worker(ex);
	struct sn_proxy *p = w->proxy;
	const struct sn_cluster *cl = s->cluster;
	struct sn_metric_labels l;

	memset(&l, 0, sizeof(l));
	l.request_protocol = s->grpc ? "grpc" : "http";
	l.grpc_response_status = s->grpc ? s->grpc_status : NULL;
	l.response_code = s->status;
	l.response_flags = s->flags;
	l.connection_security_policy = s->dir != SN_DIR_INBOUND ? "unknown" : s->secure ? "mutual_tls" : "none";
	if (s->dir == SN_DIR_OUTBOUND) {
		l.reporter = "source";
		l.source_workload = p->workload;
		l.source_workload_namespace = p->identity.namespace_;
		l.source_principal = p->principal;
		l.source_app = p->opt.service;
		l.source_version = sn_labels_get(&p->labels, "version");
		if (cl != NULL) {
			l.destination_service = cl->service;
			l.destination_service_name = cl->service_name;
			l.destination_service_namespace = cl->namespace_;
			l.destination_cluster = cl->name;
			l.destination_app = cl->service_name;
		}
		if (s->ep != NULL) {
			l.destination_workload = s->ep->workload;
			l.destination_workload_namespace = cl ? cl->namespace_ : NULL;
			l.destination_version = s->ep->version;
		}
	} else {
		l.reporter = "destination";
		l.destination_workload = p->workload;
		l.destination_workload_namespace = p->identity.namespace_;
		l.destination_principal = p->principal;
		l.destination_app = p->opt.service;
		l.destination_version = sn_labels_get(&p->labels, "version");
		l.destination_service = p->own_service_fqdn[0] ? p->own_service_fqdn : NULL;
		l.destination_service_name = p->opt.service;
		l.destination_service_namespace = p->identity.namespace_;
		l.destination_cluster = "inbound|app";
		l.source_principal = s->peer_id;
	}
	sn_metrics_record_request(w->metrics, &l, s->duration_ms, s->request_bytes, s->response_bytes);

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
