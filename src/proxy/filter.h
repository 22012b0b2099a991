#ifndef SINEW_FILTER_H
#define SINEW_FILTER_H

/* The filter chain: what a feature that touches requests plugs into,
 * without editing the exchange (docs/internals/proxy.md, "Filters").
 *
 * A filter is a table of hooks, each optional:
 *
 *   request_head  the request's head is complete and routed (outbound:
 *                 route, destination, cluster known; inbound: the app's
 *                 cluster). Returns SN_FILTER_NEXT to go on,
 *                 SN_FILTER_ANSWERED after answering the request itself
 *                 (sn_fx_answer), or SN_FILTER_PAUSED after sn_fx_pause:
 *                 the chain stops and calls this hook again when the pause
 *                 ends (the filter tells the calls apart by its state word).
 *   done          the exchange is over and this is what it was (once per
 *                 exchange, just before the last bytes of the response
 *                 leave, so that a client that reads its answer and then
 *                 scrapes /metrics sees the request counted).
 *
 * Filters run in the order of their chain (filter.c) for the directions
 * they name. Each has one 64-bit state word per exchange, zero at the
 * start (sn_fx_state): enough for a flag or a pointer to more (freed in
 * done). Filters see the exchange only through the sn_fx_* calls below;
 * they run on the exchange's worker thread and must not block.
 *
 * Next on this seam (issues "Traffic management, complete", "Security,
 * complete"): mirroring, redirects, CORS, rate limits, tracing, external
 * authorization -- each one file. */

#include "exchange.h"
#include "trace.h"

enum sn_filter_verdict {
	SN_FILTER_NEXT = 0,     /* go on with the next filter */
	SN_FILTER_ANSWERED,     /* the filter answered (sn_fx_answer): the chain ends */
	SN_FILTER_PAUSED,       /* sn_fx_pause was called: this hook runs again after it */
};

#define SN_FILTER_OUTBOUND 0x1u
#define SN_FILTER_INBOUND 0x2u

/* What an exchange was, for done hooks. Views valid for the call. */
struct sn_fx_summary {
	enum sn_direction dir;
	const struct sn_h1_request *req;   /* the request as the proxy read it */
	const char *protocol;              /* "HTTP/1.0", "HTTP/1.1", "HTTP/2" */
	int grpc;                          /* a gRPC call */
	const char *grpc_status;           /* NULL: none known */
	int status;                        /* the status sent to the client, 0 if none */
	const char *flags;                 /* "-" or the sinew-error reason */
	const struct sn_cluster *cluster;
	const struct sn_endpoint *ep;      /* the last attempt's endpoint */
	const struct sn_http_route *route;
	uint32_t attempts;
	struct sn_str request_id;
	uint64_t request_bytes, response_bytes;   /* bodies */
	int64_t start_wall_us;
	double duration_ms;
	double upstream_ms;                /* < 0: no upstream response head */
	int secure;                        /* inbound over mutual TLS */
	const char *peer;                  /* "ip:port" */
	const char *peer_id;               /* mTLS: the client's SPIFFE ID, or NULL */
};

struct sn_filter {
	const char *name;
	unsigned dirs;                     /* SN_FILTER_OUTBOUND | SN_FILTER_INBOUND */
	enum sn_filter_verdict (*request_head)(struct sn_exchange *ex);
	void (*done)(struct sn_exchange *ex, const struct sn_fx_summary *s);
};

/* The chain (filter.c): the filters in order, NULL-terminated. */
extern const struct sn_filter *const sn_filter_chain[];
#define SN_FILTER_MAX 12               /* state words per exchange: at least the chain's length */

/* The filters of today. */
extern const struct sn_filter sn_filter_jwt;         /* filter_jwt.c: RequestAuthentication, inbound */
extern const struct sn_filter sn_filter_authz;       /* filter_authz.c: AuthorizationPolicy, inbound */
extern const struct sn_filter sn_filter_ratelimit;   /* filter_ratelimit.c: Linkerd Server and rate limit, inbound */
/* filter_extauthz.c: a CUSTOM policy's provider asked, for filter_authz.c.
 * start: SN_FILTER_PAUSED while it is asked, ANSWERED when it denied at
 * once, NEXT when allowed at once (failOpen); verdict, once resumed: NEXT
 * when allowed, else ANSWERED; done: the call's memory, from the done hook.
 * The state word is authz's. */
enum sn_filter_verdict sn__extauthz_start(struct sn_exchange *ex, uint64_t *st, const char *provider,
					  const char *policy);
enum sn_filter_verdict sn__extauthz_verdict(struct sn_exchange *ex, uint64_t *st);
void sn__extauthz_done(uint64_t *st);
extern const struct sn_filter sn_filter_fault;       /* filter_fault.c: fault injection, outbound */
extern const struct sn_filter sn_filter_headers;     /* filter_headers.c: header operations and rewrite, outbound */
extern const struct sn_filter sn_filter_cors;        /* filter_cors.c: corsPolicy, outbound */
extern const struct sn_filter sn_filter_mirror;      /* filter_mirror.c: mirror / mirrors, outbound */
extern const struct sn_filter sn_filter_telemetry;   /* filter_telemetry.c: metrics and access log */
extern const struct sn_filter sn_filter_trace;       /* filter_trace.c: trace context and spans */
extern const struct sn_filter sn_filter_tap;         /* filter_tap.c: sinew tap's events */

/* ---- what a filter may ask of its exchange (exchange.c) ---------------- */

struct sn_worker *sn_fx_worker(const struct sn_exchange *ex);
const struct sn_h1_request *sn_fx_request(const struct sn_exchange *ex);
enum sn_direction sn_fx_direction(const struct sn_exchange *ex);
const struct sn_http_route *sn_fx_route(const struct sn_exchange *ex);
/* The client: "ip:port", its SPIFFE ID over mutual TLS (else NULL), and
 * the app port it dialled (inbound with capture; 0 otherwise). */
const char *sn_fx_peer(const struct sn_exchange *ex);
const char *sn_fx_peer_id(const struct sn_exchange *ex);
uint16_t sn_fx_app_port(const struct sn_exchange *ex);
/* "HTTP/1.0", "HTTP/1.1" or "HTTP/2": how the client sent the request. */
const char *sn_fx_protocol(const struct sn_exchange *ex);
/* The address the client connected to ("ip:port", as sn_fx_peer), or ""
 * when the socket cannot say. */
void sn_fx_local(const struct sn_exchange *ex, char *buf, size_t size);
uint64_t sn_fx_conn_id(const struct sn_exchange *ex);
const struct sn_route_dest *sn_fx_destination(const struct sn_exchange *ex);
/* The snapshot the exchange routes on (its clusters); NULL inbound. */
const struct sn_snapshot *sn_fx_snapshot(const struct sn_exchange *ex);
/* The x-request-id the request goes upstream with. */
struct sn_str sn_fx_request_id(const struct sn_exchange *ex);
/* 1 with the whole request body when all of it is here already (none,
 * or a Content-Length body read with the head), 0 while it streams. */
int sn_fx_request_body(struct sn_exchange *ex, const char **p, size_t *n);
/* The calling filter's state word for this exchange. */
uint64_t *sn_fx_state(struct sn_exchange *ex);
/* Answers the request with status and a one-line text (sinew-error: flag;
 * a gRPC status for a gRPC call, docs/errors.md). The hook then returns
 * SN_FILTER_ANSWERED. */
void sn_fx_answer(struct sn_exchange *ex, int status, const char *flag, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* As sn_fx_answer, with a gRPC status: a gRPC call gets it (trailers-only),
 * any other request its HTTP equivalent (UNAVAILABLE 503, ...). */
void sn_fx_answer_grpc(struct sn_exchange *ex, int grpc_status, const char *flag, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Holds the request ms milliseconds; then the same hook runs again. The
 * hook then returns SN_FILTER_PAUSED. */
void sn_fx_pause(struct sn_exchange *ex, uint32_t ms);
/* Ends a pause early (what the filter waited for has come): the hook runs
 * again now, from within this call. Nothing if ex is not paused. */
void sn_fx_resume(struct sn_exchange *ex);
/* As sn_fx_answer with a body of the filter's own (copied): the status,
 * its content type, and any sn_fx_answer_header fields. */
void sn_fx_answer_body(struct sn_exchange *ex, int status, const char *flag, const char *ctype, const char *body,
		       size_t n);
/* Header operations (set, add, remove) for the request going upstream and
 * the response coming back, applied in the order filters add them; the
 * ops must live as long as the exchange's snapshot (config). Returns 0,
 * or SN_ELIMIT past SN_FX_MAX_OPS each way. */
#define SN_FX_MAX_OPS 4
int sn_fx_header_ops(struct sn_exchange *ex, const struct sn_header_ops *request, const struct sn_header_ops *response);
/* The next sn_fx_answer carries one more response field (both strings
 * valid until that call; at most SN_FX_MAX_ANSWER_HEADERS). */
#define SN_FX_MAX_ANSWER_HEADERS 8
void sn_fx_answer_header(struct sn_exchange *ex, const char *name, const char *value);
/* The request's valid JWT (RequestAuthentication), for AuthorizationPolicy:
 * "iss/sub" and its claims, both alive until the exchange's done hooks. */
void sn_fx_set_request_auth(struct sn_exchange *ex, struct sn_str principal, const struct sn_jwt_claims *claims);
void sn_fx_request_auth(const struct sn_exchange *ex, struct sn_str *principal, const struct sn_jwt_claims **claims);
/* Holds the request until its whole body is here (at most ms): 1 when it
 * is already (the hook goes on), 0 when the hook must return
 * SN_FILTER_PAUSED (it runs again once the body is complete or ms passed),
 * -1 when it will never be whole here (streamed, chunked, or more than max
 * bytes or the buffer it arrives in). Envoy buffers so for shadowing. */
int sn_fx_wait_body(struct sn_exchange *ex, size_t max, uint32_t ms);
/* The authority and the path (the query is kept) the request goes upstream
 * with; NULL leaves one as it is. Strings as long-lived as the ops. */
void sn_fx_rewrite(struct sn_exchange *ex, const char *authority, const char *uri);
/* The exchange's trace context (filter_trace.c fills it; zero, inactive,
 * until then). */
struct sn_trace_ctx *sn_fx_trace(struct sn_exchange *ex);
/* The request goes upstream with the context's fields (traceparent,
 * x-b3-*, b3) in place of the client's. */
void sn_fx_trace_send(struct sn_exchange *ex);
/* Tap (tap.h): from now on the exchange keeps its response's fields and
 * (bodies set in the capture) the first bytes of its body, for the done
 * hooks; freed with the exchange. NULL when out of memory. */
struct sn_tap_capture *sn_fx_tap_capture(struct sn_exchange *ex);
const struct sn_tap_capture *sn_fx_tap_captured(const struct sn_exchange *ex);

#endif
