#ifndef SINEW_EXCHANGE_INT_H
#define SINEW_EXCHANGE_INT_H

/* One exchange's state, private to the files that make up the exchange:
 * exchange.c (route, attempt, retry, relay, record), exchange_heads.c
 * (the heads it writes: upstream requests in HTTP/1.1 and HTTP/2, and the
 * client's response head) and h2_tunnel.c (an HTTP/2 stream's WebSocket
 * handshake, taken over on the 101). Everyone else sees struct
 * sn_exchange only through exchange.h and filter.h. */

#include "exchange.h"
#include "filter.h"

/* Where an exchange is; ex_set_state() asserts every change against
 * ex_next below. The request body's progress (req_*) runs alongside
 * ATTEMPT and RELAYING: a server may answer before it has read it all. */
enum sn_ex_state {
	SN_EX_STATE_ROUTING = 0,     /* head taken: route, authorize, fault (a new exchange) */
	SN_EX_STATE_PARKED,          /* waiting for the control plane to resolve the host */
	SN_EX_STATE_DELAYED,         /* a filter holds the request (a fault delay) */
	SN_EX_STATE_ATTEMPT,         /* upstream: connecting, sending, waiting for the head */
	SN_EX_STATE_RELAYING,        /* response head accepted: relaying the body */
	SN_EX_STATE_LOCAL,           /* the proxy answers itself */
	SN_EX_STATE_DONE,            /* recorded and released */
	SN_EX_STATE__COUNT,
};

struct sn_exchange {
	struct sn_exchange *next_free;
	struct sn_dconn *c;          /* the client's connection */
	struct sn_h2d_stream *s;     /* HTTP/2: the stream it answers; NULL: HTTP/1.1, c's one exchange */
	struct sn_worker *w;
	struct sn_snapshot *snap;
	struct sn_buf head;          /* copy of the request head: req's views point here */
	struct sn_buf up;            /* the upstream request head, re-sent on retries (HTTP/2: the path) */
	size_t up_len, up_written;
	int up_h2;                   /* the endpoint speaks HTTP/2: a stream per attempt */
	int up_te;                   /* HTTP/2 upstream: "te: trailers" (gRPC) */
	struct sn_http_head up_head; /* HTTP/2 upstream: the request head, kept for retries */
	struct sn_http_field *up_fields;
	struct sn_h1_request req;
	struct sn_h1_header req_hdrs[SN_MAX_HEADERS_ARRAY];
	struct sn_h1_response resp;
	struct sn_h1_header resp_hdrs[SN_MAX_HEADERS_ARRAY];
	/* sn_fx_trace_send: the trace context's fields, replacing the
	 * client's (valid while n_trace_fields; not zeroed per exchange) */
	char trace_buf[SN_TRACE_FIELDS_BYTES];
	struct sn_trace_field trace_fields[SN_TRACE_MAX_FIELDS];
	size_t head_len;             /* the request head as read, at the front of head (HTTP/1) */
	const struct sn_http_route *route;
	const struct sn_route_match *route_match;   /* the match of route that held; NULL: none */
	const struct sn_route_dest *dest;
	const struct sn_cluster *cluster;
	const struct sn_endpoint *ep;
	struct sn_host *host;        /* holds one `active` while set */
	struct sn_host *prev_host;
	struct sn_uconn *u;
	uint16_t port;
	/* request body */
	int held;                    /* body fully in c->in: sent without consuming (replayable) */
	int req_raw;                 /* HTTP/2 both sides, length unknown: data until the stream's end */
	int req_dechunk;             /* HTTP/1.1 chunked body to HTTP/2: framing dropped */
	uint64_t req_remaining;      /* LENGTH: bytes not yet classified */
	struct sn_h1_chunked req_chunked;
	size_t req_pending;          /* classified body bytes at the front of c->in, not yet written */
	uint64_t req_body_bytes;     /* body bytes sent upstream (streaming) or held */
	int req_classified_done;     /* every body byte has been classified */
	int req_done;                /* request fully received from the client */
	int req_sent;                /* request fully written upstream in this attempt */
	size_t held_sent;
	int streamed;                /* a streamed body byte left c->in: no replay */
	int continue_sent;
	/* response */
	int resp_head_sent;          /* first byte of the head reached the client's buffer */
	size_t resp_head_out;        /* the head's bytes in c->out while none of it went out; 0 after */
	uint64_t resp_remaining;
	struct sn_h1_chunked resp_chunked;
	size_t resp_pending;
	int resp_classified_done;
	uint64_t resp_body_bytes;
	int resp_until_close;
	int resp_dechunk;            /* chunked upstream, HTTP/1.0 client: framing removed */
	int upgrade;                 /* Upgrade forwarded: a 101 turns the exchange into a tunnel */
	int grpc;                    /* content-type application/grpc*: statuses in grpc-status */
	char grpc_status[8];         /* the call's grpc-status as relayed or made; "" unknown */
	int grpc_deadline;           /* the route timer runs to the call's grpc-timeout */
	int grpc_answer;             /* a filter's gRPC status for the proxy's answer + 1; 0: mapped */
	int wait_body;               /* a filter waits for the whole request body (sn_fx_wait_body) */
	const char *answer_hdr[SN_FX_MAX_ANSWER_HEADERS][2];   /* sn_fx_answer_header: fields for the next local answer */
	unsigned n_answer_hdr;
	const char *answer_ctype;    /* sn_fx_answer_body: the body's type (else text/plain) */
	char set_cookie[320];        /* consistentHash httpCookie made here: its Set-Cookie; "" none */
	struct sn_str jwt_principal; /* RequestAuthentication: "iss/sub" of a valid token */
	const struct sn_jwt_claims *jwt_claims;
	enum sn_ex_state state;      /* only through ex_set_state() */
	int recorded;                /* metrics and access log written */
	int status;
	const char *flags;           /* response_flags / sinew-error reason; NULL: "-" */
	int close_after;
	uint32_t attempts;
	uint32_t transparent_retries;
	int force_new;
	struct sn_timer route_timer;
	struct sn_timer try_timer;
	struct sn_timer delay_timer;
	uint64_t fstate[SN_FILTER_MAX];   /* each filter's state word (filter.h) */
	/* What filters asked of the heads (sn_fx_header_ops, sn_fx_rewrite):
	 * config strings, alive as long as the exchange's snapshot. */
	const struct sn_header_ops *req_ops[SN_FX_MAX_OPS], *resp_ops[SN_FX_MAX_OPS];
	unsigned n_req_ops, n_resp_ops;
	const char *rw_authority, *rw_uri;
	unsigned filter_at;          /* the chain's filter whose request_head runs (or ran) */
	struct sn_trace_ctx trace;   /* filter_trace.c's (sn_fx_trace) */
	struct sn_tap_capture *tap_cap;   /* filter_tap.c's (sn_fx_tap_capture); freed at release */
	unsigned n_trace_fields;
	int64_t start_wall_us;
	uint64_t start_us;
	uint64_t try_start_us;
	double upstream_ms;
	char request_id[40];
	struct sn_str rid;
	char cl_value[24];           /* HTTP/2: a Content-Length the proxy wrote for a complete body */
	/* waiting for a connection: its host was at its limit */
	struct sn_exchange *next_pending;
	struct sn_exchange **pprev_pending;
	/* waiting for discovery (control-plane mode) */
	struct sn_exchange *next_parked;
	struct sn_exchange **pprev_parked;
	uint64_t park_deadline_ms;
	char conn_err[512];          /* last TLS handshake failure with upstream, for the 503 */
};

/* exchange_heads.c */
/* The upstream request head: HTTP/1.1 text into ex->up (re-sent as is on
 * retries), or HTTP/2 fields in ex->up_head; Host/:authority and the path
 * after the rule's rewrite, hop-by-hop fields dropped, x-request-id and
 * the filters' header operations applied. 0, SN_ENOMEM, or SN_ELIMIT (too
 * large to forward). */
int sn__ex_build_upstream_head(struct sn_exchange *ex);
int sn__ex_build_upstream_h2(struct sn_exchange *ex);
/* The client's response head from ex->resp into c->out (HTTP/1.1) or the
 * stream (HTTP/2), with the response header operations. 0 or an error. */
int sn__ex_build_downstream_head(struct sn_exchange *ex);

#endif
