#ifndef SINEW_EXCHANGE_H
#define SINEW_EXCHANGE_H

/* The request path's objects, shared by its three files: downstream.c
 * (the client's HTTP/1.1 connection: reading, head parsing, writing,
 * closing), exchange.c (one request: route, attempt, retry, record) and
 * upstream.c (pooled connections to endpoints). Names with `sn__` cross
 * these files only. */

#include "sinew/http.h"
#include "proxy.h"

#define SN_MAX_HEADERS_ARRAY (SN_H1_DEFAULT_MAX_HEADERS + 1)

/* A client's connection (downstream.c): HTTP/1.1 with one exchange at a
 * time, or, once its first bytes are the HTTP/2 preface (or TLS chose h2),
 * HTTP/2 with an exchange per stream (h2_downstream.c, through c->h2). */
struct sn_dconn {
	struct sn_dconn *next;       /* first member: the worker's list link */
	struct sn_dconn **pprev;
	struct sn_io io;
	struct sn_xprt x;            /* the client's socket, plain or mTLS */
	struct sn_worker *w;
	enum sn_direction dir;
	uint64_t id;
	char peer[64];
	struct sn_buf in;            /* bytes from the client */
	struct sn_buf out;           /* response head (or local response) for the client */
	struct sn_timer timer;       /* idle or request-header timeout */
	struct sn_exchange *ex;      /* HTTP/1.1: the request in progress */
	struct sn_h2d *h2;           /* HTTP/2 (h2_downstream.c): the codec and its streams; NULL for HTTP/1.1 */
	unsigned can_read : 1;
	unsigned can_write : 1;
	unsigned eof : 1;
	unsigned closing : 1;
	unsigned draining : 1;
	unsigned header_timer : 1;   /* the timer is the request-header timeout */
	unsigned hup : 1;            /* epoll reported hang-up: read until EOF */
	unsigned lingering : 1;      /* closed our side; dropping late input */
	unsigned detecting : 1;      /* inbound with mTLS: first byte not seen yet */
	unsigned handshaking : 1;    /* the transport's handshake is not done yet */
	unsigned spoke_h1 : 1;       /* an HTTP/1.1 request came: no HTTP/2 preface now */
	unsigned mesh_h2 : 1;        /* inbound mTLS with ALPN sinew/h2: the app speaks HTTP/2 */
	unsigned gw_tls : 1;         /* a gateway's HTTPS port: the client's scheme is https */
	unsigned gw_mesh : 1;        /* ...with tls.mode ISTIO_MUTUAL: a mesh client's mTLS */
	const char *peer_id;         /* mTLS: the client's SPIFFE ID (borrowed from x) */
	uint16_t app_port;           /* inbound with capture: the original destination port */
	uint16_t gw_port;            /* accepted on this gateway port (--gateway); 0: not a gateway's */
	size_t lingered;
	size_t scanned;              /* bytes of c->in already seen to hold no complete line */
	struct sn_task resume;
	struct sn_task reclaim;
};

static inline const struct sn_h1_limits *sn__limits(const struct sn_worker *w)
{
	return &w->proxy->opt.limits;
}

/* How far a connection's input buffer may grow: a whole head and a bit. */
static inline size_t sn__in_cap(const struct sn_worker *w)
{
	return SN_MAX(sn__limits(w)->max_head_bytes + 1024, (size_t)SN_BUF_DEFAULT_SIZE);
}

/* downstream.c, for the exchange */
/* Reads what's available into c->in: bytes, 0 if nothing (EAGAIN or the
 * buffer full), -1 on EOF or error (c->eof set). */
ssize_t sn__dconn_read(struct sn_dconn *c);
/* Writes c->out, then up to extra_len bytes of extra: returns the bytes of
 * extra written, or -1 when the client is gone. After EAGAIN the same
 * bytes are offered again (they still head c->out and extra), as TLS
 * requires. */
ssize_t sn__dconn_write(struct sn_dconn *c, const char *extra, size_t extra_len);
/* Parses and starts the next request if a complete head is buffered. */
void sn__dconn_process(struct sn_dconn *c);
/* Idle (on) or busy: the idle timeout runs only while nothing is in flight. */
void sn__dconn_idle_timer(struct sn_dconn *c, int on);
/* Closes a connection with nothing in flight (idle, drained, or gone). */
void sn__dconn_close(struct sn_dconn *c);
/* Closes after a response while the client may still be sending
 * (lingering: our side shut, late input read and dropped for a while). */
void sn__dconn_close_linger(struct sn_dconn *c);

/* h2_downstream.c, for downstream.c: c's input (c->in) starts with the
 * HTTP/2 client preface, or TLS negotiated HTTP/2: c becomes an HTTP/2
 * connection. */
void sn__h2d_start(struct sn_dconn *c);
/* Readiness on an HTTP/2 connection. */
void sn__h2d_on_io(struct sn_dconn *c, unsigned events);
/* The idle timer of an HTTP/2 connection fired. */
void sn__h2d_on_timer(struct sn_dconn *c);
/* Graceful end (GOAWAY): streams in flight finish, then the connection closes. */
void sn__h2d_drain(struct sn_dconn *c);
/* The connection is closing: every stream's exchange ends, the codec is freed. */
void sn__h2d_close(struct sn_dconn *c);

/* h2_downstream.c, for the exchange of one HTTP/2 stream */
struct sn_h2d_stream;
/* The stream's request body as the exchange reads it: framed the way
 * ex->req.body says (raw bytes for LENGTH, chunks for CHUNKED). */
struct sn_buf *sn__h2d_body(struct sn_h2d_stream *s);
/* n bytes of the body were sent upstream: the client may send more. */
void sn__h2d_consumed(struct sn_h2d_stream *s, size_t n);
/* The request body is complete, or the stream is gone (-1). */
int sn__h2d_body_state(const struct sn_h2d_stream *s);
/* The response head (status, fields); end: no body follows. 0 or -1. */
int sn__h2d_respond(struct sn_h2d_stream *s, const struct sn_http_head *h, int end);
/* Response body bytes: returns bytes taken, 0 when the stream's queue is
 * full (the exchange hears again when it drains), -1 if the stream is gone. */
ssize_t sn__h2d_write(struct sn_h2d_stream *s, const void *p, size_t n);
/* The response is complete, with trailers if n > 0 (copied). 0 or -1. */
int sn__h2d_end(struct sn_h2d_stream *s, const struct sn_http_field *trailers, size_t n);
/* The exchange goes to an HTTP/1.1 endpoint with a body of unknown
 * length: from now on the stream's body is framed in chunks. 0 or -1. */
int sn__h2d_frame_chunks(struct sn_h2d_stream *s);
/* The exchange is over; the stream is reset unless its response was
 * complete (and, if the client is still sending, told to stop) or it
 * became a tunnel (h2_tunnel.c). */
void sn__h2d_ex_done(struct sn_h2d_stream *s);
/* For h2_tunnel.c: the stream's tunnel (NULL unless it is an extended
 * CONNECT), its ID (for logs), and a reset with an HTTP/2 error code
 * (on_close, then sn__h2t_free, follow from the codec). */
struct sn_h2t *sn__h2d_tunnel(const struct sn_h2d_stream *s);
int32_t sn__h2d_stream_id(const struct sn_h2d_stream *s);
void sn__h2d_reset(struct sn_h2d_stream *s, uint32_t error);

/* h2_tunnel.c: WebSocket over HTTP/2 (RFC 8441) to an HTTP/1.1 endpoint. */
struct sn_h2t;
/* Whether h is an extended CONNECT for WebSocket (:method CONNECT,
 * :protocol websocket). */
int sn__h2t_websocket(const struct sn_http_head *h);
/* The tunnel-to-be of stream s, whose head h asked for WebSocket; *out is
 * the head the exchange routes and sends instead (GET, Upgrade: websocket,
 * a fresh Sec-WebSocket-Key, Sec-WebSocket-Version; :protocol kept), owned
 * by the tunnel, valid until sn__h2t_free. NULL on ENOMEM. */
struct sn_h2t *sn__h2t_new(struct sn_worker *w, struct sn_h2d_stream *s, const struct sn_http_head *h,
			   const struct sn_http_head **out);
/* exchange.c, on the endpoint's 101 for a stream (ex->s): checks its
 * Sec-WebSocket-Accept, answers the stream 200 and takes ex->u for the
 * relay. NULL when done (ex->status is 200: record and finish the
 * exchange); else why not, with ex->u untouched: the exchange answers 502. */
const char *sn__h2t_open(struct sn_exchange *ex);
/* Whether t relays bytes (the 101 came). */
int sn__h2t_active(const struct sn_h2t *t);
/* h2_downstream.c: the stream's body, room in its queue or end moved. */
void sn__h2t_on_stream(struct sn_h2t *t);
/* The stream is gone (answered and closed, reset, or its connection
 * ends): the endpoint's connection closes and t is freed. t may be NULL.
 * Never calls into the codec. */
void sn__h2t_free(struct sn_h2t *t);

/* exchange.c, for the downstream connection */
/* A new exchange on c (c->ex), its clock started; NULL on ENOMEM. */
struct sn_exchange *sn__ex_new(struct sn_dconn *c);
/* Starts ex on the complete head of hlen bytes at the front of c->in,
 * parsed as req (views into c->in): copies it, routes (outbound) or
 * authorizes (inbound), dispatches. */
void sn__ex_start(struct sn_exchange *ex, size_t hlen, const struct sn_h1_request *req);
/* An exchange for HTTP/2 stream s on c (c->ex untouched); NULL on ENOMEM. */
struct sn_exchange *sn__ex_new_stream(struct sn_dconn *c, struct sn_h2d_stream *s);
/* Starts a stream's exchange on its head (views live as long as the
 * stream). body: SN_H1_BODY_NONE, _LENGTH (content_length bytes) or
 * _CHUNKED (the stream frames the body in chunks for HTTP/1.1). */
void sn__ex_start_stream(struct sn_exchange *ex, const struct sn_http_head *h, enum sn_h1_body_kind body,
			 uint64_t content_length);
/* The stream's body or its room to answer moved: the exchange goes on. */
void sn__ex_on_stream(struct sn_exchange *ex);
/* Answers a head that can't be served: req with its parse error, or NULL
 * for a head that did not arrive in time (408). */
void sn__ex_refuse(struct sn_exchange *ex, const struct sn_h1_request *req, int status, const char *flag);
/* The client's connection had events (SN_IO_*) while ex runs. */
void sn__ex_on_downstream(struct sn_exchange *ex, unsigned events);
/* The client's connection is closing under ex: ends it
 * (downstream_disconnect unless already decided). */
void sn__ex_on_downstream_close(struct sn_exchange *ex);

/* An upstream HTTP/1.1 connection to one endpoint. Busy (ex != NULL) or
 * idle in its host's LIFO pool, watched for EOF while idle. */
struct sn_uconn {
	struct sn_io io;
	struct sn_xprt x;            /* plain, or mTLS (ISTIO_MUTUAL) */
	struct sn_worker *w;
	struct sn_host *host;
	struct sn_uconn *next_idle;
	struct sn_exchange *ex;
	struct sn_buf in;
	struct sn_timer timer;       /* connect timeout, then idle timeout */
	uint32_t requests;           /* served on this connection */
	uint32_t max_requests;       /* 0: unlimited */
	uint32_t idle_timeout_ms;
	unsigned connected : 1;
	unsigned reused : 1;         /* this attempt reuses a pooled connection */
	unsigned can_write : 1;
	unsigned can_read : 1;
	unsigned eof : 1;
	unsigned idle : 1;
	unsigned hup : 1;            /* epoll reported hang-up/error: read until EOF */
	unsigned handshaking : 1;    /* the transport's handshake is not done yet */
	char *tls_id;                /* the server ID expected (pool key with host); NULL: plaintext */
	struct sn_h2u_stream *h2;    /* HTTP/2: this is one attempt's stream on a shared connection
				      * (h2_upstream.c), not a connection of its own */
	struct sn_task reclaim;
};

enum sn_attempt_failure {
	SN_FAIL_CONNECT = 1,
	SN_FAIL_RESET,        /* connection closed or errored before a response head */
	SN_FAIL_TIMEOUT,      /* per-try timeout */
	SN_FAIL_PROTOCOL,     /* malformed response head */
	SN_FAIL_GRPC,         /* a trailers-only gRPC answer whose grpc-status the route retries on */
};

/* exchange.c, for upstream.c and h2_upstream.c: a connection to host
 * closed or went idle, or a stream on one ended; a request waiting for a
 * connection to host may go on (in a deferred pass, never inside the
 * caller). */
void sn__host_freed(struct sn_worker *w, struct sn_host *host);

/* upstream.c */
/* Gets an idle pooled connection to host or opens a new one (non-blocking
 * connect with the cluster's connect timeout). force_new skips the pool.
 * tls_id: for mTLS, the SPIFFE ID the endpoint must present (a pooled
 * connection is reused only for the same expectation); NULL: plaintext.
 * Returns 0, SN_ELIMIT when the host's connection bound is reached, or
 * SN_EIO when the socket can't even be created. */
int sn_uconn_acquire(struct sn_worker *w, struct sn_host *host, const struct sn_cluster *c,
		     struct sn_exchange *ex, int force_new, const char *tls_id, struct sn_uconn **out);
/* Detaches u from its exchange. reusable: back to the idle pool;
 * otherwise closed. */
void sn_uconn_release(struct sn_worker *w, struct sn_uconn *u, int reusable);
/* Hands out u's transport (the exchange switched protocols: the socket now
 * belongs to a tunnel). u keeps its buffers until sn_uconn_destroy, which
 * the caller does next. */
void sn_uconn_detach(struct sn_worker *w, struct sn_uconn *u, struct sn_xprt *out);

/* h2_upstream.c: HTTP/2 to an endpoint, an attempt per stream. */
struct sn_h2u_request {
	const struct sn_http_head *head;   /* the exchange's, valid for the attempt */
	int end;                           /* no request body */
	int te_trailers;                   /* "te: trailers" (gRPC) */
	int frame_chunks;                  /* an HTTP/1.1 client: a body of unknown length in chunks */
};
/* A stream for ex on a connection to host (opened, or reused while it has
 * room for one more stream): a uconn shell with u->h2 set. Returns 0,
 * SN_ELIMIT or SN_EIO/SN_ENOMEM. */
int sn__h2u_acquire(struct sn_worker *w, struct sn_host *host, const struct sn_cluster *c, struct sn_exchange *ex,
		    const char *tls_id, const struct sn_h2u_request *rq, struct sn_uconn **out);
/* Request body bytes: taken (0: the stream's queue is full, u->can_write
 * cleared until it drains), or -1 when the stream is gone. */
ssize_t sn__h2u_write(struct sn_uconn *u, const void *p, size_t n);
void sn__h2u_end(struct sn_uconn *u);
/* The response head once it came (NULL before, or after a reset), with how
 * its body arrives in u->in. */
const struct sn_http_head *sn__h2u_head(struct sn_uconn *u, enum sn_h1_body_kind *kind, uint64_t *cl);
/* The stream ended with a reset (or its connection's end). */
int sn__h2u_reset(const struct sn_uconn *u);
/* 0 while the response goes on, -1 once u->in is empty and it ended. */
ssize_t sn__h2u_read(struct sn_uconn *u);
/* n bytes of u->in were passed on. */
void sn__h2u_consumed(struct sn_uconn *u, size_t n);
/* The response's trailers (HTTP/2 clients get them as trailers). */
const struct sn_http_field *sn__h2u_trailers(const struct sn_uconn *u, size_t *n);
/* The attempt is over: the stream is cancelled unless complete; u goes. */
void sn__h2u_release(struct sn_uconn *u);
/* Worker shutdown: every HTTP/2 connection to host closes. */
void sn__h2u_close_all(struct sn_worker *w, struct sn_host *host);

/* filter_authz.c, also for opaque TCP (downstream.c): who the client is,
 * for AuthorizationPolicy -- principal and namespace from its SPIFFE ID
 * (NULL over plaintext), the source address (parsed into storage). */
void sn__authz_peer(struct sn_authz_request *ar, const char *peer, const char *peer_id, struct sn_addr *storage);
/* The workload port an inbound request is for (the app port). */
uint16_t sn__inbound_port(struct sn_exchange *ex);
/* Linkerd's Server for a workload port, or NULL; why its accessPolicy
 * refuses a client (NULL: it lets it in). filter_ratelimit.c. */
const struct sn_server *sn__server_for_port(const struct sn_snapshot *s, uint16_t port);
const char *sn__server_refusal(const struct sn_server *sv, const struct sn_authz_request *ar);

/* grpc.c */
/* Whether the head has a field name (case-insensitive); its value in *value. */
int sn__field(const struct sn_h1_header *h, size_t n, const char *name, struct sn_str *value);
/* A gRPC call: content-type application/grpc, +proto, +json... */
int sn__grpc_request(const struct sn_h1_request *rq);
/* A grpc-status value (a decimal code), or -1. */
int sn__grpc_code(struct sn_str v);
/* The grpc-timeout field in ms, rounded up; -1 if absent or malformed. */
int64_t sn__grpc_timeout_ms(const struct sn_h1_request *rq);
/* The gRPC status of an answer the proxy makes (Envoy's mapping; a
 * timeout is DEADLINE_EXCEEDED). */
int sn__grpc_code_for(int status, const char *flag);
/* The HTTP status for a gRPC status, for a request that is not a gRPC
 * call (Envoy's mapping: UNAVAILABLE 503, DEADLINE_EXCEEDED 504, ...). */
int sn__grpc_http_status(int code);
/* Whether retry_on (SN_RETRY_*) names the gRPC status code. */
int sn__grpc_retry_on(uint32_t retry_on, int code);

/* exchange.c: upstream events for the exchange that owns u. */
void sn_exchange_on_upstream(struct sn_exchange *ex, unsigned events);
void sn_exchange_on_connect_timeout(struct sn_exchange *ex);

#endif
