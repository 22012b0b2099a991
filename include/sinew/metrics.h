#ifndef SINEW_METRICS_H
#define SINEW_METRICS_H

/* Request metrics with Istio's standard labels (DESIGN.md §7).
 *
 * Each worker thread owns one struct sn_metrics and records into it without
 * locks; the admin thread renders all of them at once, summing series with
 * equal labels. Series live in a fixed-capacity, append-only table (bounded
 * cardinality): once full, new label sets are counted under one overflow
 * series whose labels are all "overflow", and
 * sinew_metrics_series_overflow_total says how often. Counters are relaxed
 * atomics so a scrape never sees a torn value. */

#include <stdint.h>
#include <stdio.h>

/* What source_cluster and destination_cluster say: in Istio these name the
 * Kubernetes cluster a workload runs in (its CLUSTER_ID), not an Envoy
 * cluster. A Sinew mesh is one cluster and has no setting to name it, so
 * it reports Istio's default id: Istio's dashboards and Kiali, written for
 * a single-cluster mesh, then match. (The Envoy-style "outbound|9080||..."
 * cluster is the access log's upstream_cluster.) */
#define SN_METRICS_CLUSTER_ID "Kubernetes"

/* Label values for one request. Borrowed; the store copies what it keeps.
 * NULL means "unknown". */
struct sn_metric_labels {
	const char *reporter;                        /* "source" (outbound) or "destination" (inbound) */
	const char *source_workload;
	const char *source_workload_namespace;
	const char *source_principal;
	const char *source_app;
	const char *source_version;
	const char *source_cluster;                  /* SN_METRICS_CLUSTER_ID or unknown */
	const char *destination_workload;
	const char *destination_workload_namespace;
	const char *destination_principal;
	const char *destination_app;
	const char *destination_version;
	const char *destination_service;             /* FQDN */
	const char *destination_service_name;
	const char *destination_service_namespace;
	const char *destination_cluster;             /* SN_METRICS_CLUSTER_ID or unknown */
	const char *request_protocol;                /* "http" */
	int response_code;                           /* 0 if none was sent */
	const char *grpc_response_status;
	const char *response_flags;                  /* "-" or the sinew-error reason */
	const char *connection_security_policy;      /* "none", "mutual_tls", "unknown" */
};

/* Process-wide counters and gauges that are not per request. Each worker
 * adds to its own copy; gauges are summed too (e.g. active connections). */
enum sn_counter {
	SN_CTR_DOWNSTREAM_CX_TOTAL = 0,   /* sinew_downstream_connections_total */
	SN_CTR_DOWNSTREAM_CX_ACTIVE,      /* gauge sinew_downstream_connections_active */
	SN_CTR_UPSTREAM_CX_TOTAL,         /* sinew_upstream_connections_total */
	SN_CTR_UPSTREAM_CX_ACTIVE,        /* gauge sinew_upstream_connections_active */
	SN_CTR_UPSTREAM_CX_CONNECT_FAIL,  /* sinew_upstream_connect_failures_total */
	SN_CTR_UPSTREAM_RQ_RETRY,         /* sinew_upstream_retries_total */
	SN_CTR_UPSTREAM_RQ_RETRY_BUDGET_EXHAUSTED, /* sinew_upstream_retry_budget_exhausted_total */
	SN_CTR_UPSTREAM_CX_REUSED,        /* sinew_upstream_connection_reuses_total */
	SN_CTR_DOWNSTREAM_RQ_REJECTED,    /* sinew_downstream_requests_rejected_total (bad request, limits) */
	SN_CTR_OVERFLOW,                  /* sinew_overflow_total (pool or pending limits) */
	SN_CTR_UPSTREAM_RQ_PENDING,       /* sinew_upstream_pending_requests_total (waited for a connection) */
	SN_CTR_OUTLIER_EJECTIONS,         /* sinew_outlier_ejections_total */
	SN_CTR_OUTLIER_EJECTED_ACTIVE,    /* sinew_outlier_ejected_endpoints (gauge) */
	SN_CTR_MIRROR_SENT,               /* sinew_mirror_requests_total (copies sent) */
	SN_CTR_MIRROR_ANSWERED,           /* sinew_mirror_answered_total */
	SN_CTR_MIRROR_FAILED,             /* sinew_mirror_failed_total (connect, TLS, timeout) */
	SN_CTR_MIRROR_SKIPPED,            /* sinew_mirror_skipped_total (body streaming, HTTP/2, limits) */
	SN_CTR_JWT_VALID,                 /* sinew_jwt_valid_total (RequestAuthentication) */
	SN_CTR_JWT_INVALID,               /* sinew_jwt_invalid_total (401 jwt_invalid) */
	SN_CTR_AUTHZ_ALLOW,               /* sinew_authz_allow_total (inbound requests AuthorizationPolicy let through) */
	SN_CTR_AUTHZ_DENY,                /* sinew_authz_deny_total (inbound requests denied: 403 rbac_denied) */
	SN_CTR_TCP_OUTBOUND_CX,           /* sinew_tcp_outbound_connections_total (opaque TCP, capture) */
	SN_CTR_TCP_OUTBOUND_MTLS_CX,      /* sinew_tcp_outbound_mtls_connections_total */
	SN_CTR_TCP_INBOUND_MTLS_CX,       /* sinew_tcp_inbound_mtls_connections_total */
	SN_CTR_SNIFF_TIMEOUT,             /* sinew_protocol_detection_timeouts_total */
	SN_CTR_TUNNEL_CX,                 /* sinew_upgraded_connections_total (101: WebSocket, Upgrade) */
	SN_CTR_DOWNSTREAM_CX_HTTP2,       /* sinew_downstream_http2_connections_total */
	SN_CTR_EXT_AUTHZ_ALLOWED,         /* sinew_ext_authz_total{result="allowed"} (CUSTOM policies) */
	SN_CTR_EXT_AUTHZ_DENIED,          /* ...{result="denied"}: the authorizer said no */
	SN_CTR_EXT_AUTHZ_ERROR,           /* ...{result="error"}: no answer, denied (statusOnError) */
	SN_CTR_EXT_AUTHZ_FAILED_OPEN,     /* ...{result="failed_open"}: no answer, allowed (failOpen) */
	SN_CTR_RATE_LIMITED,              /* sinew_rate_limited_total (429 rate_limited, HTTPLocalRateLimitPolicy) */
	SN_CTR_TRACE_SPANS,               /* sinew_trace_spans_total (sampled spans recorded) */
	SN_CTR_TRACE_SPANS_DROPPED,       /* sinew_trace_spans_dropped_total (batch full, tracer busy, link full) */
	SN_CTR_TRACE_EXPORTS_FAILED,      /* sinew_trace_exports_failed_total (a tracer did not answer 2xx) */
	SN_CTR_BLOCKED_EGRESS,            /* sinew_blocked_egress_total (outboundTrafficPolicy REGISTRY_ONLY) */
	SN_CTR_PASSTHROUGH,               /* sinew_passthrough_total (ALLOW_ANY: to the original destination) */
	SN_CTR__COUNT,
};

struct sn_metrics;

/* Creates a worker's store with room for max_series label sets (0: 2048).
 * Returns NULL on ENOMEM. */
struct sn_metrics *sn_metrics_new(size_t max_series);
void sn_metrics_free(struct sn_metrics *m);

/* Records one finished request. Worker thread only (one writer per store). */
void sn_metrics_record_request(struct sn_metrics *m, const struct sn_metric_labels *l,
			       double duration_ms, uint64_t request_bytes, uint64_t response_bytes);

/* Records TCP connection events in the series of labels l (its
 * request_protocol taken as "tcp", response_code and grpc_response_status
 * not used): connections opened and closed, bytes sent to the client and
 * received from it since the last call. Rendered as Istio's
 * tcp_connections_opened_total, _closed_total, tcp_sent_bytes_total and
 * tcp_received_bytes_total. Writer thread only, as record_request. */
void sn_metrics_record_tcp(struct sn_metrics *m, const struct sn_metric_labels *l, unsigned opened, unsigned closed,
			   uint64_t sent, uint64_t received);

/* Labels of one outbound request's route series (docs/observability.md,
 * "Route metrics"). Borrowed, NUL-terminated; the store copies what it
 * keeps. virtual_service_namespace, virtual_service and route all NULL:
 * the request matched no VirtualService route (`[DEFAULT]`). A NULL
 * destination field is "unknown". */
struct sn_route_labels {
	const char *virtual_service_namespace;
	const char *virtual_service;
	const char *route;                           /* http[].name, or "VSNAME.http[i]" */
	const char *destination_service;             /* FQDN */
	const char *destination_service_name;
	const char *destination_service_namespace;
	/* The snapshot the strings live in (its version), or 0: the same
	 * generation and the same pointers are the same series without
	 * comparing the strings. A generation is never reused, and strings
	 * given with one must not change while it lives (a buffer rewritten
	 * between calls goes with 0). */
	uint64_t gen;
};

/* Route series a worker's store holds at most; requests of a route past
 * it are counted in sinew_route_series_overflow_total only. */
#define SN_METRICS_MAX_ROUTE_SERIES 1024

/* Records one finished request in its route series: success is Linkerd's
 * classification (1xx-4xx, gRPC OK). Allocates only for a new label set.
 * Worker thread only. */
void sn_metrics_record_route(struct sn_metrics *m, const struct sn_route_labels *l, int success,
			     double duration_ms);

/* Adds delta (may be negative for gauges) to a counter. Worker thread only. */
void sn_metrics_add(struct sn_metrics *m, enum sn_counter c, int64_t delta);

/* Process-level values the renderer prints once (not per worker). */
struct sn_metrics_process {
	uint64_t config_version;
	uint64_t config_reloads_ok;
	uint64_t config_reloads_failed;
	double config_last_reload_seconds;  /* unix time of the last successful load */
	int draining;
};

/* Renders every store in Prometheus text format (version 0.0.4) to f,
 * summing equal series across stores. Safe to call from another thread
 * while workers record. istio_names: also emit istio_requests_total,
 * istio_request_duration_milliseconds, istio_request_bytes and
 * istio_response_bytes with the same labels. */
void sn_metrics_render(struct sn_metrics *const *stores, size_t n_stores,
		       const struct sn_metrics_process *proc, int istio_names, FILE *f);

/* What sn_metrics_json wrote. */
struct sn_metrics_json_info {
	uint64_t requests;   /* the written series' counts summed: unchanged, nothing new */
	size_t series;       /* series written */
	size_t left_out;     /* series not written: they would have passed max_bytes */
	uint64_t route_requests;    /* the written route series' counts summed */
	size_t route_series;        /* route series written ("routes") */
	size_t routes_left_out;     /* route series not written: past max_bytes */
};

struct sn_out;
/* Appends the members `"durationBucketsMs":[0.5,...],"requests":[...],
 * "routes":[...]` of the control link's stats message
 * (docs/internals/control-protocol.md):
 * every store's series, summed by labels as sn_metrics_render sums them,
 * each with its cumulative count and duration buckets (per bucket, the
 * last +Inf), then the route series likewise (with their successes). The
 * overflow series is not written. A series that would take o past
 * max_bytes is left out, with every one after it. Safe from another
 * thread while workers record. Returns 0, or SN_ENOMEM (o may be partial;
 * o->failed tells). */
int sn_metrics_json(struct sn_metrics *const *stores, size_t n_stores, size_t max_bytes, struct sn_out *o,
		    struct sn_metrics_json_info *info);

/* A counter or gauge summed over every store. Any thread. */
int64_t sn_metrics_counter_sum(struct sn_metrics *const *stores, size_t n_stores, enum sn_counter c);

#endif
