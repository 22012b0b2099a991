/* Per-worker request metrics and the Prometheus renderer (sinew/metrics.h).
 *
 * Threads: each store has one writer (its worker) and any number of
 * readers (the admin thread rendering). The series table is append-only:
 * the writer fills slot n completely, then publishes n + 1 with a release
 * store; a reader loads the count with acquire and reads only slots below
 * it, so it never sees a half-built series. Label strings and the hash of
 * a published slot never change until sn_metrics_free. Counters are
 * written only by the owning worker, as a relaxed load plus a relaxed
 * store (no read-modify-write is needed with a single writer, and it
 * avoids a locked instruction per bucket); readers use relaxed loads, so
 * a value is never torn, though a scrape may see one counter of a request
 * updated and another not yet.
 *
 * Lookup: callers pass mostly the same few pointers per route, so a small
 * direct-mapped cache keyed by the label *pointers* names a candidate
 * series, which is then verified by content (pointers alone prove nothing:
 * a caller may reuse a buffer). On a miss the label strings are hashed into
 * an open-addressing index owned by the writer. Either way nothing is
 * allocated unless the label set is new. */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/common.h"
#include "sinew/json.h"
#include "sinew/metrics.h"
#include "sinew/out.h"

#define DEFAULT_MAX_SERIES 2048
#define MAX_MAX_SERIES (1u << 20)

/* Longer label values are cut to this many bytes (memory per series is
 * bounded, and a peer-supplied value cannot make a huge series). */
#define LABEL_VALUE_MAX 256

/* String labels, in render order, with response_code (an int) between
 * request_protocol and grpc_response_status. */
enum {
	L_REPORTER,
	L_SOURCE_WORKLOAD,
	L_SOURCE_WORKLOAD_NAMESPACE,
	L_SOURCE_PRINCIPAL,
	L_SOURCE_APP,
	L_SOURCE_VERSION,
	L_SOURCE_CLUSTER,
	L_DESTINATION_WORKLOAD,
	L_DESTINATION_WORKLOAD_NAMESPACE,
	L_DESTINATION_PRINCIPAL,
	L_DESTINATION_APP,
	L_DESTINATION_VERSION,
	L_DESTINATION_SERVICE,
	L_DESTINATION_SERVICE_NAME,
	L_DESTINATION_SERVICE_NAMESPACE,
	L_DESTINATION_CLUSTER,
	L_REQUEST_PROTOCOL,
	/* response_code renders here */
	L_GRPC_RESPONSE_STATUS,
	L_RESPONSE_FLAGS,
	L_CONNECTION_SECURITY_POLICY,
	N_STR_LABELS,
};
#define RESPONSE_CODE_POS (L_REQUEST_PROTOCOL + 1)   /* position of response_code among all labels */
#define N_LABELS (N_STR_LABELS + 1)

static const char *const label_names[N_LABELS] = {
	"reporter",
	"source_workload",
	"source_workload_namespace",
	"source_principal",
	"source_app",
	"source_version",
	"source_cluster",
	"destination_workload",
	"destination_workload_namespace",
	"destination_principal",
	"destination_app",
	"destination_version",
	"destination_service",
	"destination_service_name",
	"destination_service_namespace",
	"destination_cluster",
	"request_protocol",
	"response_code",
	"grpc_response_status",
	"response_flags",
	"connection_security_policy",
};

/* The overflow series renders response_code="overflow". */
#define CODE_OVERFLOW INT_MIN
/* A TCP connections series (sn_metrics_record_tcp): rendered as Istio's
 * tcp families, without response_code and grpc_response_status. */
#define CODE_TCP (INT_MIN + 1)

/* Istio's duration buckets, in milliseconds; kept in microseconds so that
 * observations, bounds and the sum are exact integers. */
static const uint64_t dur_bounds_us[] = {
	500, 1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
	300000000, 600000000, 1800000000, 3600000000,
};
static const char *const dur_le[] = {
	"0.5", "1", "5", "10", "25", "50", "100", "250", "500",
	"1000", "2500", "5000", "10000", "30000", "60000",
	"300000", "600000", "1800000", "3600000",
};
#define N_DUR SN_ARRAY_LEN(dur_bounds_us)

/* Byte buckets: powers of ten, 1 to 1e9. */
static const uint64_t byte_bounds[] = {
	1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000,
};
static const char *const byte_le[] = {
	"1", "10", "100", "1000", "10000", "100000", "1000000", "10000000",
	"100000000", "1000000000",
};
#define N_BYTES SN_ARRAY_LEN(byte_bounds)

/* Per-bucket (not cumulative) counts; the last slot is +Inf. The renderer
 * accumulates, so its buckets are monotonic and _count equals +Inf even
 * when it reads while the worker writes. requests_total is _count too. */
struct histo_bytes {
	uint64_t bucket[N_BYTES + 1];
	uint64_t sum;
};

struct series {
	uint64_t hash;
	int response_code;
	uint32_t len[N_STR_LABELS];
	const char *val[N_STR_LABELS];   /* into strings, or static */
	char *strings;                   /* one block for all values; owned */
	/* Written by the worker only (relaxed), read by the renderer. */
	uint64_t dur[N_DUR + 1];
	uint64_t dur_sum_us;
	struct histo_bytes req;
	struct histo_bytes resp;
	/* CODE_TCP series only */
	uint64_t tcp_opened, tcp_closed, tcp_sent, tcp_received;
};

struct index_slot {
	uint32_t idx;   /* series index + 1; 0 = empty */
	uint32_t tag;   /* high half of the hash, to skip most mismatches */
};

#define PTR_CACHE_SIZE 64   /* power of two */

/* Route series (sn_metrics_record_route): labels in this order, [DEFAULT]
 * with the first three empty. */
enum { R_VS_NS, R_VS, R_ROUTE, R_SVC, R_SVC_NAME, R_SVC_NS, N_ROUTE_LABELS };

static const char *const route_label_names[N_ROUTE_LABELS] = {
	"virtual_service_namespace", "virtual_service", "route",
	"destination_service", "destination_service_name", "destination_service_namespace",
};

/* Published and read as struct series is; ok counts the successes. */
struct route_series {
	uint64_t hash;
	uint32_t len[N_ROUTE_LABELS];
	const char *val[N_ROUTE_LABELS];   /* into strings */
	char *strings;                     /* owned */
	uint64_t dur[N_DUR + 1];
	uint64_t dur_sum_us;
	uint64_t ok;
};

struct sn_metrics {
	struct series *series;       /* max_series slots */
	uint32_t ptr_cache[PTR_CACHE_SIZE];   /* writer only: series index + 1 */
	size_t max_series;
	size_t n_series;             /* published: release store, acquire load */
	struct index_slot *index;    /* writer only */
	size_t index_mask;
	struct series overflow;      /* all labels "overflow" */
	uint64_t overflow_total;     /* records that went to overflow */
	uint64_t counters[SN_CTR__COUNT];   /* gauges wrap; read as int64 */
	struct route_series *routes; /* SN_METRICS_MAX_ROUTE_SERIES slots */
	size_t n_routes;             /* published as n_series is */
	struct index_slot *route_index;   /* writer only */
	size_t route_index_mask;
	struct route_cache {         /* writer only: by the labels' pointers */
		uint32_t series;     /* route series index + 1; 0: empty */
		uint64_t gen;        /* the snapshot the pointers were seen in (sn_route_labels.gen) */
		const char *ptr[N_ROUTE_LABELS];
	} route_cache[PTR_CACHE_SIZE];
	uint64_t route_overflow_total;   /* requests of route series the table had no room for */
};

static const struct {
	const char *name;
	const char *help;
	int gauge;
} counter_info[SN_CTR__COUNT] = {
	[SN_CTR_DOWNSTREAM_CX_TOTAL] = { "sinew_downstream_connections_total",
		"Downstream connections accepted.", 0 },
	[SN_CTR_DOWNSTREAM_CX_ACTIVE] = { "sinew_downstream_connections_active",
		"Downstream connections open now.", 1 },
	[SN_CTR_UPSTREAM_CX_TOTAL] = { "sinew_upstream_connections_total",
		"Upstream connections opened.", 0 },
	[SN_CTR_UPSTREAM_CX_ACTIVE] = { "sinew_upstream_connections_active",
		"Upstream connections open now.", 1 },
	[SN_CTR_UPSTREAM_CX_CONNECT_FAIL] = { "sinew_upstream_connect_failures_total",
		"Upstream connection attempts that failed.", 0 },
	[SN_CTR_UPSTREAM_RQ_RETRY] = { "sinew_upstream_retries_total",
		"Upstream request retries.", 0 },
	[SN_CTR_UPSTREAM_RQ_RETRY_BUDGET_EXHAUSTED] = { "sinew_upstream_retry_budget_exhausted_total",
		"Retries not made because the retry budget was spent.", 0 },
	[SN_CTR_UPSTREAM_CX_REUSED] = { "sinew_upstream_connection_reuses_total",
		"Requests sent on an already open upstream connection.", 0 },
	[SN_CTR_DOWNSTREAM_RQ_REJECTED] = { "sinew_downstream_requests_rejected_total",
		"Downstream requests rejected (malformed or over a limit).", 0 },
	[SN_CTR_OVERFLOW] = { "sinew_overflow_total",
		"Requests refused because a connection pool or pending queue was full.", 0 },
	[SN_CTR_UPSTREAM_RQ_PENDING] = { "sinew_upstream_pending_requests_total",
		"Requests that waited for an upstream connection (the endpoint was at its connection limit).", 0 },
	[SN_CTR_OUTLIER_EJECTIONS] = { "sinew_outlier_ejections_total",
		"Endpoints taken out of their cluster's pool by outlier detection.", 0 },
	[SN_CTR_OUTLIER_EJECTED_ACTIVE] = { "sinew_outlier_ejected_endpoints",
		"Endpoints out of their cluster's pool now (outlier detection; per worker, summed).", 1 },
	[SN_CTR_MIRROR_SENT] = { "sinew_mirror_requests_total",
		"Copies of requests sent to a mirror destination (VirtualService mirror, mirrors).", 0 },
	[SN_CTR_MIRROR_ANSWERED] = { "sinew_mirror_answered_total",
		"Mirrored copies the mirror answered (the answer is dropped).", 0 },
	[SN_CTR_MIRROR_FAILED] = { "sinew_mirror_failed_total",
		"Mirrored copies that failed: connect, TLS, or no answer in time.", 0 },
	[SN_CTR_JWT_VALID] = { "sinew_jwt_valid_total",
		"Inbound requests with a JWT that RequestAuthentication accepted.", 0 },
	[SN_CTR_JWT_INVALID] = { "sinew_jwt_invalid_total",
		"Inbound requests refused 401 jwt_invalid: a JWT that RequestAuthentication could not accept.", 0 },
	[SN_CTR_MIRROR_SKIPPED] = { "sinew_mirror_skipped_total",
		"Requests not mirrored: body still streaming or too large, HTTP/2 mirror, no endpoint, limits.", 0 },
	[SN_CTR_AUTHZ_ALLOW] = { "sinew_authz_allow_total",
		"Inbound requests allowed by AuthorizationPolicy evaluation.", 0 },
	[SN_CTR_RATE_LIMITED] = { "sinew_rate_limited_total",
		"Inbound requests refused 429 rate_limited by an HTTPLocalRateLimitPolicy.", 0 },
	[SN_CTR_TRACE_SPANS] = { "sinew_trace_spans_total",
		"Sampled spans recorded for export (to sinewd and the configured tracers).", 0 },
	[SN_CTR_TRACE_SPANS_DROPPED] = { "sinew_trace_spans_dropped_total",
		"Spans dropped: batch full, tracer busy, control link full (export never holds a request).", 0 },
	[SN_CTR_TRACE_EXPORTS_FAILED] = { "sinew_trace_exports_failed_total",
		"Span batches a tracer did not take (no connection, no 2xx answer in time).", 0 },
	[SN_CTR_BLOCKED_EGRESS] = { "sinew_blocked_egress_total",
		"Requests and connections to hosts outside the registry refused (outboundTrafficPolicy REGISTRY_ONLY).", 0 },
	[SN_CTR_PASSTHROUGH] = { "sinew_passthrough_total",
		"Captured connections to destinations outside the registry sent on to their original destination "
		"(outboundTrafficPolicy ALLOW_ANY): opaque TCP, and HTTP for a host no Service declares.", 0 },
	[SN_CTR_AUTHZ_DENY] = { "sinew_authz_deny_total",
		"Inbound requests denied by AuthorizationPolicy (403, rbac_denied).", 0 },
	[SN_CTR_TCP_OUTBOUND_CX] = { "sinew_tcp_outbound_connections_total",
		"Captured outbound connections proxied as opaque TCP.", 0 },
	[SN_CTR_TCP_OUTBOUND_MTLS_CX] = { "sinew_tcp_outbound_mtls_connections_total",
		"Opaque TCP connections carried over mutual TLS to the destination's proxy.", 0 },
	[SN_CTR_TCP_INBOUND_MTLS_CX] = { "sinew_tcp_inbound_mtls_connections_total",
		"Inbound mutual TLS connections carrying opaque TCP (ALPN sinew/tcp) to the app.", 0 },
	[SN_CTR_SNIFF_TIMEOUT] = { "sinew_protocol_detection_timeouts_total",
		"Captured connections whose client sent nothing within 1 s: taken as server-first TCP.", 0 },
	[SN_CTR_TUNNEL_CX] = { "sinew_upgraded_connections_total",
		"HTTP/1.1 connections that switched protocols (101: WebSocket, Upgrade) and became a byte relay.", 0 },
	[SN_CTR_DOWNSTREAM_CX_HTTP2] = { "sinew_downstream_http2_connections_total",
		"Client connections that spoke HTTP/2 (prior knowledge, or the preface after TLS).", 0 },
#define EXT_AUTHZ_HELP "External authorization checks (CUSTOM AuthorizationPolicy) by result."
	[SN_CTR_EXT_AUTHZ_ALLOWED] = { "sinew_ext_authz_total", EXT_AUTHZ_HELP, 0 },
	[SN_CTR_EXT_AUTHZ_DENIED] = { "sinew_ext_authz_total", EXT_AUTHZ_HELP, 0 },
	[SN_CTR_EXT_AUTHZ_ERROR] = { "sinew_ext_authz_total", EXT_AUTHZ_HELP, 0 },
	[SN_CTR_EXT_AUTHZ_FAILED_OPEN] = { "sinew_ext_authz_total", EXT_AUTHZ_HELP, 0 },
};

/* A family's members are consecutive in counter_info, each with its labels. */
static const char *const counter_labels[SN_CTR__COUNT] = {
	[SN_CTR_EXT_AUTHZ_ALLOWED] = "result=\"allowed\"",
	[SN_CTR_EXT_AUTHZ_DENIED] = "result=\"denied\"",
	[SN_CTR_EXT_AUTHZ_ERROR] = "result=\"error\"",
	[SN_CTR_EXT_AUTHZ_FAILED_OPEN] = "result=\"failed_open\"",
};

static inline uint64_t load_relaxed(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* Single writer: a plain add published as one relaxed store. */
static inline void bump(uint64_t *p, uint64_t delta)
{
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + delta, __ATOMIC_RELAXED);
}

/* ---- hashing and lookup (writer side) ---- */

static inline uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v;
	h *= 0x9E3779B97F4A7C15ull;
	return h ^ (h >> 29);
}

static uint64_t hash_values(const char *const *val, const uint32_t *len, size_t n_values)
{
	uint64_t h = 0x243F6A8885A308D3ull;

	for (size_t k = 0; k < n_values; k++) {
		const char *p = val[k];
		size_t n = len[k];
		uint64_t w;

		for (; n >= 8; n -= 8, p += 8) {
			memcpy(&w, p, 8);
			h = mix(h, w);
		}
		w = 0;
		memcpy(&w, p, n);
		/* The length keeps ("ab","c") apart from ("a","bc"). */
		h = mix(h, w ^ ((uint64_t)len[k] << 56));
	}
	return h;
}

static uint64_t hash_labels(const char *const *val, const uint32_t *len, int code)
{
	uint64_t h = mix(hash_values(val, len, N_STR_LABELS), (uint64_t)(uint32_t)code);
	return h ^ (h >> 32);
}

static int series_equal(const struct series *s, uint64_t hash, const char *const *val,
			const uint32_t *len, int code)
{
	if (s->hash != hash || s->response_code != code)
		return 0;
	for (size_t k = 0; k < N_STR_LABELS; k++)
		if (s->len[k] != len[k] || memcmp(s->val[k], val[k], len[k]) != 0)
			return 0;
	return 1;
}

static void labels_to_array(const struct sn_metric_labels *l, const char **val)
{
	val[L_REPORTER] = l->reporter;
	val[L_SOURCE_WORKLOAD] = l->source_workload;
	val[L_SOURCE_WORKLOAD_NAMESPACE] = l->source_workload_namespace;
	val[L_SOURCE_PRINCIPAL] = l->source_principal;
	val[L_SOURCE_APP] = l->source_app;
	val[L_SOURCE_VERSION] = l->source_version;
	val[L_SOURCE_CLUSTER] = l->source_cluster;
	val[L_DESTINATION_WORKLOAD] = l->destination_workload;
	val[L_DESTINATION_WORKLOAD_NAMESPACE] = l->destination_workload_namespace;
	val[L_DESTINATION_PRINCIPAL] = l->destination_principal;
	val[L_DESTINATION_APP] = l->destination_app;
	val[L_DESTINATION_VERSION] = l->destination_version;
	val[L_DESTINATION_SERVICE] = l->destination_service;
	val[L_DESTINATION_SERVICE_NAME] = l->destination_service_name;
	val[L_DESTINATION_SERVICE_NAMESPACE] = l->destination_service_namespace;
	val[L_DESTINATION_CLUSTER] = l->destination_cluster;
	val[L_REQUEST_PROTOCOL] = l->request_protocol;
	val[L_GRPC_RESPONSE_STATUS] = l->grpc_response_status;
	val[L_RESPONSE_FLAGS] = l->response_flags;
	val[L_CONNECTION_SECURITY_POLICY] = l->connection_security_policy;
	/* NULL and "unknown" render the same, so they are one series. */
	for (size_t k = 0; k < N_STR_LABELS; k++)
		if (!val[k])
			val[k] = "unknown";
}

/* The n label values copied into one allocation (returned; NULL without
 * memory): out_val[k] points at value k, NUL-terminated, out_len[k] its
 * length. */
static char *copy_labels(const char *const *val, const uint32_t *len, size_t n, const char **out_val,
			 uint32_t *out_len)
{
	size_t total = 0;
	for (size_t k = 0; k < n; k++)
		total += len[k] + 1;
	char *strings = malloc(total), *p = strings;
	if (strings == NULL)
		return NULL;
	for (size_t k = 0; k < n; k++) {
		memcpy(p, val[k], len[k]);
		p[len[k]] = '\0';
		out_val[k] = p;
		out_len[k] = len[k];
		p += len[k] + 1;
	}
	return strings;
}

/* Builds the series in slot n_series and publishes it. Returns NULL when
 * the table is full or the copy cannot be allocated. */
static struct series *series_add(struct sn_metrics *m, uint64_t hash, const char *const *val,
				 const uint32_t *len, int code)
{
	size_t n = m->n_series;   /* only this thread writes it */
	struct series *s;

	if (n >= m->max_series)
		return NULL;
	s = &m->series[n];
	if ((s->strings = copy_labels(val, len, N_STR_LABELS, s->val, s->len)) == NULL)
		return NULL;
	s->hash = hash;
	s->response_code = code;
	__atomic_store_n(&m->n_series, n + 1, __ATOMIC_RELEASE);
	return s;
}

static struct series *series_find_or_add(struct sn_metrics *m, const char *const *val,
					 const uint32_t *len, int code)
{
	uint64_t hash = hash_labels(val, len, code);
	uint32_t tag = (uint32_t)(hash >> 32);
	size_t i = (size_t)hash & m->index_mask;
	struct series *s;

	for (;; i = (i + 1) & m->index_mask) {
		struct index_slot *slot = &m->index[i];

		if (slot->idx == 0)
			break;
		if (slot->tag == tag) {
			s = &m->series[slot->idx - 1];
			if (series_equal(s, hash, val, len, code))
				return s;
		}
	}
	/* The index has at least twice as many slots as the table, so the
	 * probe above always ends at an empty slot. */
	s = series_add(m, hash, val, len, code);
	if (!s)
		return NULL;
	m->index[i].idx = (uint32_t)(s - m->series) + 1;
	m->index[i].tag = tag;
	return s;
}

/* ---- recording ---- */

static size_t dur_bucket(uint64_t us)
{
	size_t i = 0;

	while (i < N_DUR && us > dur_bounds_us[i])
		i++;
	return i;
}

static void observe_bytes(struct histo_bytes *h, uint64_t v)
{
	size_t i = 0;

	while (i < N_BYTES && v > byte_bounds[i])
		i++;
	bump(&h->bucket[i], 1);
	bump(&h->sum, v);
}

static uint64_t ms_to_us(double ms)
{
	/* NaN and negatives count as 0; absurd values are capped. */
	if (!(ms > 0))
		return 0;
	if (ms > 1e15)
		return (uint64_t)1e18;
	return (uint64_t)(ms * 1000.0 + 0.5);
}

static size_t ptr_cache_slot(const char *const *val, int code)
{
	uint64_t h = (uint64_t)(uint32_t)code;

	for (size_t k = 0; k < N_STR_LABELS; k++)
		h = mix(h, (uintptr_t)val[k]);
	return (size_t)(h >> 40) & (PTR_CACHE_SIZE - 1);
}

/* True if s holds exactly these NUL-terminated values. strncmp, not
 * memcmp: it stops at the caller's NUL, so a shorter value is never read
 * past its end; and there is no strlen. */
static int series_holds(const struct series *s, const char *const *val, int code)
{
	if (s->response_code != code)
		return 0;
	for (size_t k = 0; k < N_STR_LABELS; k++)
		if (strncmp(s->val[k], val[k], s->len[k]) != 0 || val[k][s->len[k]] != '\0')
			return 0;
	return 1;
}

void sn_metrics_record_request(struct sn_metrics *m, const struct sn_metric_labels *l,
			       double duration_ms, uint64_t request_bytes, uint64_t response_bytes)
{
	const char *val[N_STR_LABELS];
	uint32_t len[N_STR_LABELS];
	int code = l->response_code > 0 ? l->response_code : 0;
	uint64_t us = ms_to_us(duration_ms);
	size_t slot;
	uint32_t cached;
	struct series *s = NULL;

	labels_to_array(l, val);
	slot = ptr_cache_slot(val, code);
	cached = m->ptr_cache[slot];
	if (cached && series_holds(&m->series[cached - 1], val, code)) {
		s = &m->series[cached - 1];
	} else {
		for (size_t k = 0; k < N_STR_LABELS; k++)
			len[k] = (uint32_t)strnlen(val[k], LABEL_VALUE_MAX);
		s = series_find_or_add(m, val, len, code);
		if (s)
			m->ptr_cache[slot] = (uint32_t)(s - m->series) + 1;
	}
	if (SN_UNLIKELY(!s)) {
		s = &m->overflow;
		bump(&m->overflow_total, 1);
	}
	bump(&s->dur[dur_bucket(us)], 1);
	bump(&s->dur_sum_us, us);
	observe_bytes(&s->req, request_bytes);
	observe_bytes(&s->resp, response_bytes);
}

void sn_metrics_record_tcp(struct sn_metrics *m, const struct sn_metric_labels *l, unsigned opened, unsigned closed,
			   uint64_t sent, uint64_t received)
{
	const char *val[N_STR_LABELS];
	uint32_t len[N_STR_LABELS];
	struct series *s;

	labels_to_array(l, val);
	val[L_REQUEST_PROTOCOL] = "tcp";
	val[L_GRPC_RESPONSE_STATUS] = "";
	size_t slot = ptr_cache_slot(val, CODE_TCP);
	uint32_t cached = m->ptr_cache[slot];
	if (cached && series_holds(&m->series[cached - 1], val, CODE_TCP)) {
		s = &m->series[cached - 1];
	} else {
		for (size_t k = 0; k < N_STR_LABELS; k++)
			len[k] = (uint32_t)strnlen(val[k], LABEL_VALUE_MAX);
		s = series_find_or_add(m, val, len, CODE_TCP);
		if (s)
			m->ptr_cache[slot] = (uint32_t)(s - m->series) + 1;
	}
	if (SN_UNLIKELY(!s)) {
		bump(&m->overflow_total, 1);   /* no room: counted, not rendered as a request */
		return;
	}
	bump(&s->tcp_opened, opened);
	bump(&s->tcp_closed, closed);
	bump(&s->tcp_sent, sent);
	bump(&s->tcp_received, received);
}

/* ---- route series (writer side) ---- */

static void route_labels_to_array(const struct sn_route_labels *l, const char **val)
{
	val[R_VS_NS] = l->virtual_service_namespace;
	val[R_VS] = l->virtual_service;
	val[R_ROUTE] = l->route;
	val[R_SVC] = l->destination_service;
	val[R_SVC_NAME] = l->destination_service_name;
	val[R_SVC_NS] = l->destination_service_namespace;
	/* [DEFAULT]: no VirtualService, no route name (an empty label) */
	for (size_t k = R_VS_NS; k <= R_ROUTE; k++)
		if (!val[k])
			val[k] = "";
	for (size_t k = R_SVC; k < N_ROUTE_LABELS; k++)
		if (!val[k])
			val[k] = "unknown";
}

static int route_equal(const struct route_series *s, uint64_t hash, const char *const *val, const uint32_t *len)
{
	if (s->hash != hash)
		return 0;
	for (size_t k = 0; k < N_ROUTE_LABELS; k++)
		if (s->len[k] != len[k] || memcmp(s->val[k], val[k], len[k]) != 0)
			return 0;
	return 1;
}

/* As series_holds: NUL-terminated values, no strlen. */
static int route_holds(const struct route_series *s, const char *const *val)
{
	for (size_t k = 0; k < N_ROUTE_LABELS; k++)
		if (strncmp(s->val[k], val[k], s->len[k]) != 0 || val[k][s->len[k]] != '\0')
			return 0;
	return 1;
}

static struct route_series *route_find_or_add(struct sn_metrics *m, const char *const *val, const uint32_t *len)
{
	uint64_t hash = hash_values(val, len, N_ROUTE_LABELS);
	uint32_t tag = (uint32_t)(hash >> 32);
	size_t i = (size_t)hash & m->route_index_mask, n = m->n_routes;
	struct route_series *s;

	for (;; i = (i + 1) & m->route_index_mask) {
		struct index_slot *slot = &m->route_index[i];

		if (slot->idx == 0)
			break;
		if (slot->tag == tag && route_equal(&m->routes[slot->idx - 1], hash, val, len))
			return &m->routes[slot->idx - 1];
	}
	if (n >= SN_METRICS_MAX_ROUTE_SERIES)
		return NULL;
	s = &m->routes[n];
	if ((s->strings = copy_labels(val, len, N_ROUTE_LABELS, s->val, s->len)) == NULL)
		return NULL;
	s->hash = hash;
	__atomic_store_n(&m->n_routes, n + 1, __ATOMIC_RELEASE);
	m->route_index[i].idx = (uint32_t)n + 1;
	m->route_index[i].tag = tag;
	return s;
}

void sn_metrics_record_route(struct sn_metrics *m, const struct sn_route_labels *l, int success,
			     double duration_ms)
{
	const char *val[N_ROUTE_LABELS];
	uint32_t len[N_ROUTE_LABELS];
	uint64_t us = ms_to_us(duration_ms), h = 0;
	struct route_series *s;
	size_t slot;

	route_labels_to_array(l, val);
	/* the route's and the service's strings live in the snapshot: a few
	 * distinct pointers per route. Seen in the same snapshot (l->gen, which
	 * is never reused while it lives), the same pointers are the same
	 * strings; else they are verified by content, as for requests. */
	for (size_t k = R_ROUTE; k < N_ROUTE_LABELS; k++)
		h = mix(h, (uintptr_t)val[k]);
	slot = (size_t)(h >> 40) & (PTR_CACHE_SIZE - 1);
	struct route_cache *c = &m->route_cache[slot];
	if (c->series && l->gen != 0 && c->gen == l->gen && memcmp(c->ptr, val, sizeof(val)) == 0) {
		s = &m->routes[c->series - 1];
	} else {
		if (c->series && route_holds(&m->routes[c->series - 1], val)) {
			s = &m->routes[c->series - 1];
		} else {
			for (size_t k = 0; k < N_ROUTE_LABELS; k++)
				len[k] = (uint32_t)strnlen(val[k], LABEL_VALUE_MAX);
			s = route_find_or_add(m, val, len);
			if (SN_UNLIKELY(!s)) {
				bump(&m->route_overflow_total, 1);
				return;
			}
			c->series = (uint32_t)(s - m->routes) + 1;
		}
		c->gen = l->gen;
		memcpy(c->ptr, val, sizeof(val));
	}
	bump(&s->dur[dur_bucket(us)], 1);
	bump(&s->dur_sum_us, us);
	if (success)
		bump(&s->ok, 1);
}

void sn_metrics_add(struct sn_metrics *m, enum sn_counter c, int64_t delta)
{
	if ((unsigned)c >= SN_CTR__COUNT)
		return;
	bump(&m->counters[c], (uint64_t)delta);
}

/* ---- lifetime ---- */

struct sn_metrics *sn_metrics_new(size_t max_series)
{
	static const char overflow[] = "overflow";
	struct sn_metrics *m;
	size_t index_size = 1;

	if (max_series == 0)
		max_series = DEFAULT_MAX_SERIES;
	if (max_series > MAX_MAX_SERIES)
		max_series = MAX_MAX_SERIES;
	while (index_size < 2 * max_series)
		index_size <<= 1;

	m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->max_series = max_series;
	/* calloc of a large table maps zero pages lazily: unused slots cost
	 * address space, not memory. */
	m->series = calloc(max_series, sizeof(*m->series));
	if (!m->series)
		goto fail;
	m->index = calloc(index_size, sizeof(*m->index));
	if (!m->index)
		goto fail;
	m->index_mask = index_size - 1;
	m->routes = calloc(SN_METRICS_MAX_ROUTE_SERIES, sizeof(*m->routes));
	m->route_index = calloc(2 * SN_METRICS_MAX_ROUTE_SERIES, sizeof(*m->route_index));
	if (!m->routes || !m->route_index)
		goto fail;
	_Static_assert((SN_METRICS_MAX_ROUTE_SERIES & (SN_METRICS_MAX_ROUTE_SERIES - 1)) == 0,
		       "the route index is a power of two");
	m->route_index_mask = 2 * SN_METRICS_MAX_ROUTE_SERIES - 1;
	for (size_t k = 0; k < N_STR_LABELS; k++) {
		m->overflow.val[k] = overflow;
		m->overflow.len[k] = sizeof(overflow) - 1;
	}
	m->overflow.response_code = CODE_OVERFLOW;
	m->overflow.hash = hash_labels(m->overflow.val, m->overflow.len, CODE_OVERFLOW);
	return m;

fail:
	free(m->routes);
	free(m->route_index);
	free(m->index);
	free(m->series);
	free(m);
	return NULL;
}

void sn_metrics_free(struct sn_metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_series; i++)
		free(m->series[i].strings);
	for (size_t i = 0; i < m->n_routes; i++)
		free(m->routes[i].strings);
	free(m->routes);
	free(m->route_index);
	free(m->index);
	free(m->series);
	free(m);
}

/* ---- rendering (any thread) ---- */

/* Sums of one label set over all stores, read once per scrape. */
struct agg {
	const struct series *labels;   /* the first store's copy */
	char *text;                    /* escaped label pairs, no braces */
	uint64_t dur[N_DUR + 1];
	uint64_t dur_sum_us;
	struct histo_bytes req;
	struct histo_bytes resp;
	uint64_t tcp_opened, tcp_closed, tcp_sent, tcp_received;
};

struct merge {
	struct agg *aggs;   /* in order of first appearance */
	size_t n, cap;
	size_t *index;      /* agg index + 1; 0 = empty */
	size_t index_mask;
};

static uint64_t snapshot_sum(const uint64_t *b, size_t n)
{
	uint64_t t = 0;

	for (size_t i = 0; i < n; i++)
		t += load_relaxed(&b[i]);
	return t;
}

static void add_histo(struct histo_bytes *dst, const struct histo_bytes *src)
{
	for (size_t i = 0; i <= N_BYTES; i++)
		dst->bucket[i] += load_relaxed(&src->bucket[i]);
	dst->sum += load_relaxed(&src->sum);
}

static void merge_series(struct merge *mg, const struct series *s)
{
	size_t i = (size_t)s->hash & mg->index_mask;
	struct agg *a = NULL;

	for (;; i = (i + 1) & mg->index_mask) {
		if (mg->index[i] == 0)
			break;
		a = &mg->aggs[mg->index[i] - 1];
		if (series_equal(a->labels, s->hash, s->val, s->len, s->response_code))
			break;
		a = NULL;
	}
	if (!a) {
		if (mg->n == mg->cap)
			return;   /* cannot happen: cap counts every series */
		a = &mg->aggs[mg->n++];
		a->labels = s;
		mg->index[i] = mg->n;
	}
	for (size_t b = 0; b <= N_DUR; b++)
		a->dur[b] += load_relaxed(&s->dur[b]);
	a->dur_sum_us += load_relaxed(&s->dur_sum_us);
	add_histo(&a->req, &s->req);
	add_histo(&a->resp, &s->resp);
	a->tcp_opened += load_relaxed(&s->tcp_opened);
	a->tcp_closed += load_relaxed(&s->tcp_closed);
	a->tcp_sent += load_relaxed(&s->tcp_sent);
	a->tcp_received += load_relaxed(&s->tcp_received);
}

/* Appends a label value escaped per the text format (\\, \", \n), with
 * invalid UTF-8 bytes replaced by U+FFFD so the exposition stays valid. */
static char *escape_label_value(char *p, const char *v, size_t n)
{
	const unsigned char *in = (const unsigned char *)v;
	size_t i = 0;

	while (i < n) {
		unsigned char c = in[i];
		size_t l;

		if (c == '\\' || c == '"') {
			*p++ = '\\';
			*p++ = (char)c;
			i++;
		} else if (c == '\n') {
			*p++ = '\\';
			*p++ = 'n';
			i++;
		} else if (c < 0x80) {
			*p++ = (char)c;
			i++;
		} else if ((l = sn_utf8_seq_len(in + i, n - i)) != 0) {
			memcpy(p, in + i, l);
			p += l;
			i += l;
		} else {
			memcpy(p, "\xEF\xBF\xBD", 3);
			p += 3;
			i++;
		}
	}
	return p;
}

static char *label_text(const struct series *s)
{
	size_t cap = 1;
	char *text, *p;

	for (size_t k = 0; k < N_LABELS; k++)
		cap += strlen(label_names[k]) + 4;
	for (size_t k = 0; k < N_STR_LABELS; k++)
		cap += 3 * (size_t)s->len[k];   /* worst case: every byte escaped */
	cap += 16;                              /* response_code */
	text = malloc(cap);
	if (!text)
		return NULL;
	p = text;
	int tcp = s->response_code == CODE_TCP;
	for (size_t pos = 0, k = 0; pos < N_LABELS; pos++) {
		size_t nl = strlen(label_names[pos]);

		/* Istio's tcp metrics carry neither */
		if (tcp && pos == RESPONSE_CODE_POS)
			continue;
		if (tcp && k == L_GRPC_RESPONSE_STATUS) {
			k++;
			continue;
		}
		if (p != text)
			*p++ = ',';
		memcpy(p, label_names[pos], nl);
		p += nl;
		*p++ = '=';
		*p++ = '"';
		if (pos == RESPONSE_CODE_POS) {
			if (s->response_code == CODE_OVERFLOW)
				p += snprintf(p, 16, "overflow");
			else
				p += snprintf(p, 16, "%d", s->response_code);
		} else {
			p = escape_label_value(p, s->val[k], s->len[k]);
			k++;
		}
		*p++ = '"';
	}
	*p = '\0';
	return text;
}

static void render_histogram_rows(FILE *f, const char *name, const char *labels,
				  const uint64_t *bucket, const char *const *le, size_t n,
				  uint64_t sum_int, int sum_is_us)
{
	uint64_t cum = 0;

	for (size_t i = 0; i < n; i++) {
		cum += bucket[i];
		fprintf(f, "%s_bucket{%s,le=\"%s\"} %" PRIu64 "\n", name, labels, le[i], cum);
	}
	cum += bucket[n];
	fprintf(f, "%s_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n", name, labels, cum);
	if (sum_is_us)
		fprintf(f, "%s_sum{%s} %" PRIu64 ".%03" PRIu64 "\n", name, labels,
			sum_int / 1000, sum_int % 1000);
	else
		fprintf(f, "%s_sum{%s} %" PRIu64 "\n", name, labels, sum_int);
	fprintf(f, "%s_count{%s} %" PRIu64 "\n", name, labels, cum);
}

/* Istio's TCP families (istio_tcp_*), from the CODE_TCP series. */
static void render_tcp_families(FILE *f, const struct merge *mg, const char *prefix)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} fam[] = {
		{ "tcp_connections_opened_total", "TCP connections opened, by source and destination.",
		  offsetof(struct agg, tcp_opened) },
		{ "tcp_connections_closed_total", "TCP connections closed, by source and destination.",
		  offsetof(struct agg, tcp_closed) },
		{ "tcp_sent_bytes_total", "Bytes sent to the client on TCP connections (the response side).",
		  offsetof(struct agg, tcp_sent) },
		{ "tcp_received_bytes_total", "Bytes received from the client on TCP connections (the request side).",
		  offsetof(struct agg, tcp_received) },
	};
	for (size_t k = 0; k < SN_ARRAY_LEN(fam); k++) {
		fprintf(f, "# HELP %s_%s %s\n# TYPE %s_%s counter\n", prefix, fam[k].name, fam[k].help, prefix,
			fam[k].name);
		for (size_t i = 0; i < mg->n; i++) {
			const struct agg *a = &mg->aggs[i];
			if (a->text && a->labels->response_code == CODE_TCP)
				fprintf(f, "%s_%s{%s} %" PRIu64 "\n", prefix, fam[k].name, a->text,
					*(const uint64_t *)(const void *)((const char *)a + fam[k].off));
		}
	}
}

static void render_request_families(FILE *f, const struct merge *mg, const char *prefix)
{
	char name[64];

	snprintf(name, sizeof(name), "%s_requests_total", prefix);
	fprintf(f, "# HELP %s Requests completed, by source and destination.\n", name);
	fprintf(f, "# TYPE %s counter\n", name);
	for (size_t i = 0; i < mg->n; i++) {
		const struct agg *a = &mg->aggs[i];

		if (a->text && a->labels->response_code != CODE_TCP)
			fprintf(f, "%s{%s} %" PRIu64 "\n", name, a->text,
				snapshot_sum(a->dur, N_DUR + 1));
	}

	snprintf(name, sizeof(name), "%s_request_duration_milliseconds", prefix);
	fprintf(f, "# HELP %s Request duration in milliseconds.\n", name);
	fprintf(f, "# TYPE %s histogram\n", name);
	for (size_t i = 0; i < mg->n; i++) {
		const struct agg *a = &mg->aggs[i];

		if (a->text && a->labels->response_code != CODE_TCP)
			render_histogram_rows(f, name, a->text, a->dur, dur_le, N_DUR,
					      a->dur_sum_us, 1);
	}

	snprintf(name, sizeof(name), "%s_request_bytes", prefix);
	fprintf(f, "# HELP %s Request body size in bytes.\n", name);
	fprintf(f, "# TYPE %s histogram\n", name);
	for (size_t i = 0; i < mg->n; i++) {
		const struct agg *a = &mg->aggs[i];

		if (a->text && a->labels->response_code != CODE_TCP)
			render_histogram_rows(f, name, a->text, a->req.bucket, byte_le, N_BYTES,
					      a->req.sum, 0);
	}

	snprintf(name, sizeof(name), "%s_response_bytes", prefix);
	fprintf(f, "# HELP %s Response body size in bytes.\n", name);
	fprintf(f, "# TYPE %s histogram\n", name);
	for (size_t i = 0; i < mg->n; i++) {
		const struct agg *a = &mg->aggs[i];

		if (a->text && a->labels->response_code != CODE_TCP)
			render_histogram_rows(f, name, a->text, a->resp.bucket, byte_le, N_BYTES,
					      a->resp.sum, 0);
	}
}

/* ---- route series, summed over stores (any thread) ---- */

struct route_agg {
	const struct route_series *labels;   /* the first store's copy */
	char *text;                          /* escaped label pairs, no braces */
	uint64_t dur[N_DUR + 1];
	uint64_t dur_sum_us;
	uint64_t ok;
};

struct route_merge {
	struct route_agg *aggs;   /* in order of first appearance */
	size_t n;
	size_t *index;            /* agg index + 1; 0 = empty */
	size_t index_mask;
	uint64_t overflow_total;
};

/* Sums every store's published route series by labels. Returns 0, or -1
 * without memory (rm empty). */
static int route_merge_all(struct sn_metrics *const *stores, size_t n_stores, struct route_merge *rm)
{
	size_t total = 0, index_size = 1, *count;

	memset(rm, 0, sizeof(*rm));
	count = calloc(n_stores + 1, sizeof(*count));
	if (!count)
		return -1;
	for (size_t s = 0; s < n_stores; s++) {
		count[s] = stores[s] ? __atomic_load_n(&stores[s]->n_routes, __ATOMIC_ACQUIRE) : 0;
		total += count[s];
		if (stores[s])
			rm->overflow_total += load_relaxed(&stores[s]->route_overflow_total);
	}
	while (index_size < 2 * total)
		index_size <<= 1;
	rm->aggs = total ? calloc(total, sizeof(*rm->aggs)) : NULL;
	rm->index = calloc(index_size, sizeof(*rm->index));
	rm->index_mask = index_size - 1;
	if ((total && !rm->aggs) || !rm->index) {
		free(rm->aggs);
		free(rm->index);
		free(count);
		memset(rm, 0, sizeof(*rm));
		return -1;
	}
	for (size_t st = 0; st < n_stores; st++) {
		for (size_t j = 0; j < count[st]; j++) {
			const struct route_series *r = &stores[st]->routes[j];
			size_t i = (size_t)r->hash & rm->index_mask;
			struct route_agg *a = NULL;

			for (; rm->index[i] != 0; i = (i + 1) & rm->index_mask) {
				a = &rm->aggs[rm->index[i] - 1];
				if (route_equal(a->labels, r->hash, r->val, r->len))
					break;
				a = NULL;
			}
			if (!a) {
				a = &rm->aggs[rm->n++];
				a->labels = r;
				rm->index[i] = rm->n;
			}
			for (size_t b = 0; b <= N_DUR; b++)
				a->dur[b] += load_relaxed(&r->dur[b]);
			a->dur_sum_us += load_relaxed(&r->dur_sum_us);
			a->ok += load_relaxed(&r->ok);
		}
	}
	free(count);
	return 0;
}

static void route_merge_free(struct route_merge *rm)
{
	for (size_t i = 0; i < rm->n; i++)
		free(rm->aggs[i].text);
	free(rm->aggs);
	free(rm->index);
}

static char *route_label_text(const struct route_series *r)
{
	size_t cap = 1;
	char *text, *p;

	for (size_t k = 0; k < N_ROUTE_LABELS; k++)
		cap += strlen(route_label_names[k]) + 4 + 3 * (size_t)r->len[k];
	text = malloc(cap);
	if (!text)
		return NULL;
	p = text;
	for (size_t k = 0; k < N_ROUTE_LABELS; k++) {
		size_t nl = strlen(route_label_names[k]);

		if (k)
			*p++ = ',';
		memcpy(p, route_label_names[k], nl);
		p += nl;
		*p++ = '=';
		*p++ = '"';
		p = escape_label_value(p, r->val[k], r->len[k]);
		*p++ = '"';
	}
	*p = '\0';
	return text;
}

/* The sinew_route_* families (docs/observability.md, "Route metrics"). */
static void render_route_families(FILE *f, struct sn_metrics *const *stores, size_t n_stores)
{
	struct route_merge rm;

	if (route_merge_all(stores, n_stores, &rm) != 0) {
		fprintf(f, "# sinew: out of memory rendering route metrics\n");
		return;
	}
	for (size_t i = 0; i < rm.n; i++)
		rm.aggs[i].text = route_label_text(rm.aggs[i].labels);   /* NULL: row skipped */

	fprintf(f, "# HELP sinew_route_requests_total Outbound requests by VirtualService route and destination "
		   "service (virtual_service=\"\": no route of a VirtualService matched).\n"
		   "# TYPE sinew_route_requests_total counter\n");
	for (size_t i = 0; i < rm.n; i++)
		if (rm.aggs[i].text)
			fprintf(f, "sinew_route_requests_total{%s} %" PRIu64 "\n", rm.aggs[i].text,
				snapshot_sum(rm.aggs[i].dur, N_DUR + 1));
	fprintf(f, "# HELP sinew_route_responses_total Outbound requests by route and classification "
		   "(success: a response 1xx-4xx, gRPC OK; failure: the rest, no response included).\n"
		   "# TYPE sinew_route_responses_total counter\n");
	for (size_t i = 0; i < rm.n; i++) {
		const struct route_agg *a = &rm.aggs[i];
		uint64_t all = snapshot_sum(a->dur, N_DUR + 1), ok = SN_MIN(a->ok, all);

		if (!a->text)
			continue;
		fprintf(f, "sinew_route_responses_total{%s,classification=\"success\"} %" PRIu64 "\n", a->text, ok);
		fprintf(f, "sinew_route_responses_total{%s,classification=\"failure\"} %" PRIu64 "\n", a->text,
			all - ok);
	}
	fprintf(f, "# HELP sinew_route_request_duration_milliseconds Outbound request duration by route, in "
		   "milliseconds.\n"
		   "# TYPE sinew_route_request_duration_milliseconds histogram\n");
	for (size_t i = 0; i < rm.n; i++)
		if (rm.aggs[i].text)
			render_histogram_rows(f, "sinew_route_request_duration_milliseconds", rm.aggs[i].text,
					      rm.aggs[i].dur, dur_le, N_DUR, rm.aggs[i].dur_sum_us, 1);
	fprintf(f, "# HELP sinew_route_series Route label sets held, over all workers.\n"
		   "# TYPE sinew_route_series gauge\n"
		   "sinew_route_series %zu\n", rm.n);
	fprintf(f, "# HELP sinew_route_series_overflow_total Requests not recorded by route because the route "
		   "series table was full.\n"
		   "# TYPE sinew_route_series_overflow_total counter\n"
		   "sinew_route_series_overflow_total %" PRIu64 "\n", rm.overflow_total);
	route_merge_free(&rm);
}

static void render_scalar(FILE *f, const char *name, const char *type, const char *help,
			  const char *value)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, type, name, value);
}

static void render_process(FILE *f, const struct sn_metrics_process *proc)
{
	char v[48];
	double t = proc->config_last_reload_seconds;
	int64_t t_ms;

	snprintf(v, sizeof(v), "%" PRIu64, proc->config_version);
	render_scalar(f, "sinew_config_version", "gauge",
		      "Version of the configuration in use.", v);

	fprintf(f, "# HELP sinew_config_reloads_total Configuration loads, by result.\n"
		   "# TYPE sinew_config_reloads_total counter\n"
		   "sinew_config_reloads_total{result=\"success\"} %" PRIu64 "\n"
		   "sinew_config_reloads_total{result=\"failure\"} %" PRIu64 "\n",
		proc->config_reloads_ok, proc->config_reloads_failed);

	/* Integer formatting: printf's %f follows LC_NUMERIC. */
	t_ms = (isfinite(t) && t > 0 && t < 1e15) ? (int64_t)(t * 1000.0 + 0.5) : 0;
	snprintf(v, sizeof(v), "%" PRId64 ".%03" PRId64, t_ms / 1000, t_ms % 1000);
	render_scalar(f, "sinew_config_last_reload_success_timestamp_seconds", "gauge",
		      "Unix time of the last successful configuration load.", v);

	render_scalar(f, "sinew_draining", "gauge",
		      "1 while the proxy drains before shutting down, else 0.",
		      proc->draining ? "1" : "0");
}

void sn_metrics_render(struct sn_metrics *const *stores, size_t n_stores,
		       const struct sn_metrics_process *proc, int istio_names, FILE *f)
{
	struct merge mg = { 0 };
	size_t counts[64], *count = counts;
	size_t total = 0, index_size = 1;
	uint64_t ctr[SN_CTR__COUNT] = { 0 };
	uint64_t overflow_total = 0, n_series = 0;

	/* Acquire each store's count once: the series below it are complete. */
	if (n_stores > SN_ARRAY_LEN(counts)) {
		count = calloc(n_stores, sizeof(*count));
		if (!count)
			n_stores = 0;
	}
	for (size_t s = 0; s < n_stores; s++) {
		count[s] = stores[s] ? __atomic_load_n(&stores[s]->n_series, __ATOMIC_ACQUIRE) : 0;
		total += count[s] + 1;   /* + its overflow series */
	}
	while (index_size < 2 * total)
		index_size <<= 1;
	mg.cap = total;
	mg.aggs = total ? calloc(total, sizeof(*mg.aggs)) : NULL;
	mg.index = total ? calloc(index_size, sizeof(*mg.index)) : NULL;
	mg.index_mask = index_size - 1;
	if (total && (!mg.aggs || !mg.index)) {
		fprintf(f, "# sinew: out of memory rendering request metrics\n");
		mg.cap = 0;
	}

	for (size_t s = 0; s < n_stores && mg.cap; s++) {
		const struct sn_metrics *m = stores[s];

		if (!m)
			continue;
		for (size_t i = 0; i < count[s]; i++)
			merge_series(&mg, &m->series[i]);
		if (snapshot_sum(m->overflow.dur, N_DUR + 1))
			merge_series(&mg, &m->overflow);
	}
	for (size_t s = 0; s < n_stores; s++) {
		const struct sn_metrics *m = stores[s];

		if (!m)
			continue;
		for (size_t c = 0; c < SN_CTR__COUNT; c++)
			ctr[c] += load_relaxed(&m->counters[c]);
		overflow_total += load_relaxed(&m->overflow_total);
		n_series += count[s];
	}
	for (size_t i = 0; i < mg.n; i++)
		mg.aggs[i].text = label_text(mg.aggs[i].labels);   /* NULL: row skipped */

	render_request_families(f, &mg, "sinew");
	render_tcp_families(f, &mg, "sinew");
	if (istio_names) {
		render_request_families(f, &mg, "istio");
		render_tcp_families(f, &mg, "istio");
	}
	render_route_families(f, stores, n_stores);

	for (size_t c = 0; c < SN_CTR__COUNT; c++) {
		if (c == 0 || strcmp(counter_info[c].name, counter_info[c - 1].name) != 0)
			fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", counter_info[c].name,
				counter_info[c].help, counter_info[c].name,
				counter_info[c].gauge ? "gauge" : "counter");
		const char *l = counter_labels[c];
		if (counter_info[c].gauge)
			fprintf(f, "%s%s%s%s %" PRId64 "\n", counter_info[c].name, l ? "{" : "", l ? l : "",
				l ? "}" : "", (int64_t)ctr[c]);
		else
			fprintf(f, "%s%s%s%s %" PRIu64 "\n", counter_info[c].name, l ? "{" : "", l ? l : "",
				l ? "}" : "", ctr[c]);
	}
	fprintf(f, "# HELP sinew_metrics_series Request label sets held, over all workers.\n"
		   "# TYPE sinew_metrics_series gauge\n"
		   "sinew_metrics_series %" PRIu64 "\n", n_series);
	fprintf(f, "# HELP sinew_metrics_series_overflow_total Requests recorded under the "
		   "overflow series because the series table was full.\n"
		   "# TYPE sinew_metrics_series_overflow_total counter\n"
		   "sinew_metrics_series_overflow_total %" PRIu64 "\n", overflow_total);
	if (proc)
		render_process(f, proc);

	for (size_t i = 0; i < mg.n; i++)
		free(mg.aggs[i].text);
	free(mg.aggs);
	free(mg.index);
	if (count != counts)
		free(count);
}

/* ---- the control link's stats message (any thread) ---- */

/* sinewd's names for the label fields, in label order: the message keeps
 * every label, so two series never read as one there. */
static const char *const json_names[N_LABELS] = {
	"reporter",
	"sourceWorkload",
	"sourceNamespace",
	"sourcePrincipal",
	"sourceApp",
	"sourceVersion",
	"sourceCluster",
	"destinationWorkload",
	"destinationNamespace",
	"destinationPrincipal",
	"destinationApp",
	"destinationVersion",
	"destinationService",
	"destinationServiceName",
	"destinationServiceNamespace",
	"destinationCluster",
	"protocol",
	"responseCode",
	"grpcStatus",
	"responseFlags",
	"connectionSecurityPolicy",
};

/* One series as a JSON object. */
static void json_series(struct sn_out *o, const struct agg *a)
{
	const struct series *s = a->labels;
	uint64_t count = 0;

	for (size_t pos = 0, k = 0; pos < N_LABELS; pos++) {
		sn_out_cstr(o, pos ? ",\"" : "{\"");
		sn_out_cstr(o, json_names[pos]);
		sn_out_cstr(o, "\":");
		if (pos == RESPONSE_CODE_POS) {
			sn_out_printf(o, "%d", s->response_code);
			continue;
		}
		/* The store keeps an unknown gRPC status as "unknown" (a
		 * label must have a value); the message says null. */
		if (k == L_GRPC_RESPONSE_STATUS && s->len[k] == 7 && !memcmp(s->val[k], "unknown", 7))
			sn_out_cstr(o, "null");
		else
			sn_out_json_str(o, s->val[k], s->len[k]);
		k++;
	}
	for (size_t b = 0; b <= N_DUR; b++)
		count += a->dur[b];
	sn_out_printf(o, ",\"count\":%" PRIu64 ",\"durationBuckets\":[", count);
	for (size_t b = 0; b <= N_DUR; b++)
		sn_out_printf(o, b ? ",%" PRIu64 : "%" PRIu64, a->dur[b]);
	sn_out_printf(o, "],\"durationSumMs\":%" PRIu64 ".%03" PRIu64 "}", a->dur_sum_us / 1000,
		      a->dur_sum_us % 1000);
}

/* One route series as a JSON object: [DEFAULT] has null VirtualService
 * and route. */
static void json_route(struct sn_out *o, const struct route_agg *a)
{
	static const char *const names[N_ROUTE_LABELS] = {
		"virtualServiceNamespace", "virtualService", "route",
		"destinationService", "destinationServiceName", "destinationServiceNamespace",
	};
	const struct route_series *r = a->labels;
	uint64_t count = 0;

	for (size_t k = 0; k < N_ROUTE_LABELS; k++) {
		sn_out_cstr(o, k ? ",\"" : "{\"");
		sn_out_cstr(o, names[k]);
		sn_out_cstr(o, "\":");
		/* [DEFAULT]: no VirtualService (a route named "" keeps its "") */
		if (k <= R_ROUTE && r->len[R_VS] == 0)
			sn_out_cstr(o, "null");
		else
			sn_out_json_str(o, r->val[k], r->len[k]);
	}
	for (size_t b = 0; b <= N_DUR; b++)
		count += a->dur[b];
	sn_out_printf(o, ",\"count\":%" PRIu64 ",\"successes\":%" PRIu64 ",\"durationBuckets\":[", count,
		      SN_MIN(a->ok, count));
	for (size_t b = 0; b <= N_DUR; b++)
		sn_out_printf(o, b ? ",%" PRIu64 : "%" PRIu64, a->dur[b]);
	sn_out_cstr(o, "]}");
}

/* What follows the requests' last series when there are no routes. */
#define ROUTES_TAIL (sizeof("],\"routes\":[]") - 1)

/* Appends `,"routes":[...]`, each series whole, while o stays under
 * max_bytes. Returns 0 or SN_ENOMEM. */
static int json_routes(struct sn_metrics *const *stores, size_t n_stores, size_t max_bytes, struct sn_out *o,
		       struct sn_metrics_json_info *info)
{
	struct route_merge rm;

	if (route_merge_all(stores, n_stores, &rm) != 0)
		return SN_ENOMEM;
	sn_out_cstr(o, ",\"routes\":[");
	for (size_t i = 0; i < rm.n && !o->failed; i++) {
		size_t mark = o->len;
		if (info->route_series)
			sn_out_raw(o, ",", 1);
		json_route(o, &rm.aggs[i]);
		/* room for the closing bracket too */
		if (o->len + 1 > max_bytes) {
			o->len = mark;
			if (o->p != NULL)
				o->p[mark] = '\0';
			info->routes_left_out = rm.n - i;
			break;
		}
		info->route_series++;
		info->route_requests += snapshot_sum(rm.aggs[i].dur, N_DUR + 1);
	}
	sn_out_cstr(o, "]");
	route_merge_free(&rm);
	return 0;
}

int sn_metrics_json(struct sn_metrics *const *stores, size_t n_stores, size_t max_bytes, struct sn_out *o,
		    struct sn_metrics_json_info *info)
{
	struct merge mg = { 0 };
	size_t total = 0, index_size = 1;
	int rc = 0;

	memset(info, 0, sizeof(*info));
	sn_out_cstr(o, "\"durationBucketsMs\":[");
	for (size_t i = 0; i < N_DUR; i++)
		sn_out_printf(o, i ? ",%s" : "%s", dur_le[i]);
	sn_out_cstr(o, "],\"requests\":[");

	/* As sn_metrics_render: each store's count acquired once, then the
	 * series below it merged by labels. The overflow series is left
	 * out: its labels say nothing sinewd could file it under. */
	size_t *count = calloc(n_stores + 1, sizeof(*count));
	if (count == NULL)
		goto oom;
	for (size_t s = 0; s < n_stores; s++) {
		count[s] = stores[s] ? __atomic_load_n(&stores[s]->n_series, __ATOMIC_ACQUIRE) : 0;
		total += count[s];
	}
	while (index_size < 2 * total)
		index_size <<= 1;
	mg.cap = total;
	mg.aggs = total ? calloc(total, sizeof(*mg.aggs)) : NULL;
	mg.index = total ? calloc(index_size, sizeof(*mg.index)) : NULL;
	mg.index_mask = index_size - 1;
	if (total && (!mg.aggs || !mg.index))
		goto oom;
	for (size_t s = 0; s < n_stores; s++)
		for (size_t i = 0; stores[s] != NULL && i < count[s]; i++)
			merge_series(&mg, &stores[s]->series[i]);

	for (size_t i = 0; i < mg.n && !o->failed; i++) {
		size_t mark = o->len;
		if (mg.aggs[i].labels->response_code == CODE_TCP)
			continue;   /* sinewd's views count requests */
		if (info->series)
			sn_out_raw(o, ",", 1);
		json_series(o, &mg.aggs[i]);
		/* Past the bound the series is taken back out: what is sent
		 * stays whole, and the rest wait for a smaller table. (Room
		 * is left for the routes member's brackets.) */
		if (o->len + ROUTES_TAIL > max_bytes) {
			o->len = mark;
			if (o->p != NULL)
				o->p[mark] = '\0';
			info->left_out = mg.n - i;
			break;
		}
		info->series++;
		info->requests += snapshot_sum(mg.aggs[i].dur, N_DUR + 1);
	}
	sn_out_cstr(o, "]");
	if (json_routes(stores, n_stores, max_bytes, o, info) != 0)
		goto oom;
	goto out;
oom:
	rc = SN_ENOMEM;
out:
	if (o->failed)
		rc = SN_ENOMEM;
	free(mg.aggs);
	free(mg.index);
	free(count);
	return rc;
}

int64_t sn_metrics_counter_sum(struct sn_metrics *const *stores, size_t n_stores, enum sn_counter c)
{
	uint64_t sum = 0;

	if ((unsigned)c >= SN_CTR__COUNT)
		return 0;
	for (size_t s = 0; s < n_stores; s++)
		if (stores[s] != NULL)
			sum += load_relaxed(&stores[s]->counters[c]);
	return (int64_t)sum;
}
