#ifndef SINEW_H2_H
#define SINEW_H2_H

/* The server side of one HTTP/2 connection (src/http/h2_server.c):
 * nghttp2 driven from our loop, without sockets. The owner feeds it the
 * bytes its transport read (sn_h2s_recv), writes what it has to send
 * (sn_h2s_send_buf), and hears about each request through callbacks in
 * the codec-neutral model of sinew/http.h; it answers through
 * sn_h2s_respond / sn_h2s_write / sn_h2s_end.
 *
 * Bounded everything a client controls: concurrent streams, the size and
 * count of a head's fields, receive windows (given back only when the
 * owner says it passed the bytes on: sn_h2s_consumed, which is the
 * backpressure), the response bytes queued per stream, and the floods
 * known to hurt HTTP/2 servers -- rapid reset (CVE-2023-44487),
 * CONTINUATION (CVE-2024-27316), SETTINGS/PING acknowledgements, empty
 * DATA frames -- each of which ends the connection with GOAWAY.
 *
 * Not thread-safe: a connection belongs to one worker. Callbacks run from
 * inside sn_h2s_recv and sn_h2s_send_buf; they may call the answering
 * functions, but must not free the connection. */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sinew/buf.h"
#include "sinew/http.h"

/* What one gather (sn_h2s_gather, sn_h2c_gather) collects before a write. */
#define SN_H2_GATHER SN_BUF_DEFAULT_SIZE

#define SN_H2S_DEFAULT_MAX_STREAMS 100
#define SN_H2S_DEFAULT_MAX_HEADER_LIST (64u << 10)   /* bytes, counted as HPACK does (+32 per field) */
#define SN_H2S_DEFAULT_MAX_FIELDS 100
#define SN_H2S_DEFAULT_STREAM_WINDOW (256u << 10)
#define SN_H2S_DEFAULT_CONN_WINDOW (1u << 20)
#define SN_H2S_DEFAULT_MAX_OUT (64u << 10)          /* response bytes queued per stream */
#define SN_H2S_MAX_EMPTY_DATA 100                     /* empty DATA frames in a row */

struct sn_h2s;
struct sn_h2s_stream;

/* A zero field means its default. */
struct sn_h2s_limits {
	uint32_t max_streams;        /* SETTINGS_MAX_CONCURRENT_STREAMS */
	uint32_t max_header_list;    /* SETTINGS_MAX_HEADER_LIST_SIZE, enforced */
	uint32_t max_fields;
	uint32_t stream_window;      /* SETTINGS_INITIAL_WINDOW_SIZE */
	uint32_t conn_window;
	size_t max_out;
};

struct sn_h2s_cbs {
	/* A request's head is complete (HEADERS and its CONTINUATIONs).
	 * Views live until on_close. Return 0, or non-zero to refuse the
	 * stream (RST_STREAM REFUSED_STREAM). */
	int (*on_request)(void *arg, struct sn_h2s_stream *st, const struct sn_http_head *h);
	/* Request body bytes (borrowed for the call). They count against the
	 * windows until sn_h2s_consumed. Return 0, or non-zero to reset the
	 * stream. */
	int (*on_data)(void *arg, struct sn_h2s_stream *st, const void *p, size_t n);
	/* The request is complete; trailers (n may be 0) borrowed for the
	 * call. */
	void (*on_end)(void *arg, struct sn_h2s_stream *st, const struct sn_http_field *trailers, size_t n);
	/* The stream's response queue has room again after SN_EAGAIN. */
	void (*on_writable)(void *arg, struct sn_h2s_stream *st);
	/* The stream is gone: answered and closed (error 0), or reset by
	 * either side (an HTTP/2 error code). st is freed after the call. */
	void (*on_close)(void *arg, struct sn_h2s_stream *st, uint32_t error);
};

/* A connection whose client preface has not been read yet. Our SETTINGS
 * are queued at once. lim may be NULL. Returns 0 or SN_ENOMEM. */
int sn_h2s_new(const struct sn_h2s_limits *lim, const struct sn_h2s_cbs *cbs, void *arg, struct sn_h2s **out);

/* Frees the connection and its streams, without callbacks. */
void sn_h2s_free(struct sn_h2s *c);

/* Takes n bytes read from the client. Returns 0, or SN_EINVAL when the
 * connection must end (a protocol error or a flood: a GOAWAY saying why
 * is queued; send it, then close). */
int sn_h2s_recv(struct sn_h2s *c, const void *p, size_t n);

/* The next bytes to send: returns their count with *p set (valid until
 * the next call on c), 0 when there is nothing to send now, or SN_ENOMEM. */
ssize_t sn_h2s_send_buf(struct sn_h2s *c, const uint8_t **p);
/* Appends the bytes to send to out (storage from pool) until out holds at
 * least SN_H2_GATHER bytes or there are none: nghttp2 hands out one frame
 * per call, and a write per frame would cost a system call each (a
 * response is HEADERS, DATA and trailers). 0 or SN_ENOMEM. */
int sn_h2s_gather(struct sn_h2s *c, struct sn_buf_pool *pool, struct sn_buf *out);

/* 1 while the connection has something to do; 0 once both sides are done
 * with it (GOAWAY sent or received and no stream left): close it. */
int sn_h2s_alive(const struct sn_h2s *c);

/* Why the connection ended, or "" (for logs). */
const char *sn_h2s_error(const struct sn_h2s *c);

/* Answers st with h (status and fields; pseudo-headers other than the
 * status are ignored). end: no body follows. Returns 0, SN_EINVAL (the
 * stream is gone or already answered) or SN_ENOMEM. */
int sn_h2s_respond(struct sn_h2s *c, struct sn_h2s_stream *st, const struct sn_http_head *h, int end);

/* Queues response body bytes (copied), at most the per-stream bound.
 * Returns bytes taken (> 0), SN_EAGAIN when the queue is full (on_writable
 * follows), or SN_EINVAL. */
ssize_t sn_h2s_write(struct sn_h2s *c, struct sn_h2s_stream *st, const void *p, size_t n);

/* Ends the response after what is queued, with trailers if n > 0 (copied).
 * Returns 0, SN_EINVAL or SN_ENOMEM. */
int sn_h2s_end(struct sn_h2s *c, struct sn_h2s_stream *st, const struct sn_http_field *trailers, size_t n);

/* Resets st (RST_STREAM with an HTTP/2 error code). on_close follows. */
void sn_h2s_reset(struct sn_h2s *c, struct sn_h2s_stream *st, uint32_t error);

/* n bytes of st's request body were passed on: the client may send as
 * many more. */
void sn_h2s_consumed(struct sn_h2s *c, struct sn_h2s_stream *st, size_t n);
/* The same for a stream already closed: only the connection's window. */
void sn_h2s_consumed_conn(struct sn_h2s *c, size_t n);

/* Graceful end: GOAWAY with the last stream taken; streams in flight
 * finish. */
void sn_h2s_goaway(struct sn_h2s *c);

void sn_h2s_set_user(struct sn_h2s_stream *st, void *user);
void *sn_h2s_user(const struct sn_h2s_stream *st);
int32_t sn_h2s_stream_id(const struct sn_h2s_stream *st);

/* How many streams are open (for metrics and tests). */
size_t sn_h2s_streams(const struct sn_h2s *c);

/* ---- the client side (src/http/h2_client.c) ------------------------------ *
 *
 * One connection to an HTTP/2 server, many requests on it; driven the same
 * way (sn_h2c_recv, sn_h2c_send_buf), bounded the same way: response heads
 * within the header-list size and field count we announce (a stream over
 * them is reset), bodies within windows given back by sn_h2c_consumed,
 * request bytes queued per stream up to max_out. */

struct sn_h2c;
struct sn_h2c_stream;

struct sn_h2c_limits {
	uint32_t max_header_list;
	uint32_t max_fields;
	uint32_t stream_window;
	uint32_t conn_window;
	size_t max_out;
};

struct sn_h2c_cbs {
	/* The final response head (interim 1xx heads are skipped). Views
	 * live until on_close. */
	void (*on_response)(void *arg, struct sn_h2c_stream *st, const struct sn_http_head *h);
	/* Response body bytes, borrowed for the call; they count against the
	 * windows until sn_h2c_consumed. */
	void (*on_data)(void *arg, struct sn_h2c_stream *st, const void *p, size_t n);
	/* The response is complete; trailers (n may be 0) borrowed. */
	void (*on_end)(void *arg, struct sn_h2c_stream *st, const struct sn_http_field *trailers, size_t n);
	/* The stream's request queue has room again after SN_EAGAIN. */
	void (*on_writable)(void *arg, struct sn_h2c_stream *st);
	/* The stream is gone (error 0: both sides ended; else the HTTP/2
	 * error code of a reset, ours or the server's). st is freed after. */
	void (*on_close)(void *arg, struct sn_h2c_stream *st, uint32_t error);
};

/* A connection whose preface and SETTINGS are queued. lim may be NULL. */
int sn_h2c_new(const struct sn_h2c_limits *lim, const struct sn_h2c_cbs *cbs, void *arg, struct sn_h2c **out);
/* Frees the connection and its streams, without callbacks. */
void sn_h2c_free(struct sn_h2c *c);
/* Takes n bytes from the server: 0, or SN_EINVAL when the connection must
 * end. nghttp2 may also end it on its own (bytes that are not HTTP/2, a
 * frame it refuses): sn_h2c_can_open is 0 at once, and once its GOAWAY
 * went out (sn_h2c_send_buf) sn_h2c_error says why and sn_h2c_alive is 0. */
int sn_h2c_recv(struct sn_h2c *c, const void *p, size_t n);
ssize_t sn_h2c_send_buf(struct sn_h2c *c, const uint8_t **p);
/* As sn_h2s_gather. */
int sn_h2c_gather(struct sn_h2c *c, struct sn_buf_pool *pool, struct sn_buf *out);
int sn_h2c_alive(const struct sn_h2c *c);
const char *sn_h2c_error(const struct sn_h2c *c);
/* 1 when a new request may start now: under the server's concurrent
 * stream limit, no GOAWAY, stream IDs left. */
int sn_h2c_can_open(const struct sn_h2c *c);
size_t sn_h2c_streams(const struct sn_h2c *c);

/* Starts a request: h's method, scheme (empty: "http"), authority, path
 * and fields (connection-specific ones left out); te_trailers adds
 * "te: trailers" (gRPC). end: no body follows. Returns 0, SN_ELIMIT (no
 * stream may open now) or SN_ENOMEM. */
int sn_h2c_request(struct sn_h2c *c, const struct sn_http_head *h, int te_trailers, int end, void *user,
		   struct sn_h2c_stream **out);
/* Queues request body bytes (copied): bytes taken, SN_EAGAIN when full
 * (on_writable follows), or SN_EINVAL. */
ssize_t sn_h2c_write(struct sn_h2c *c, struct sn_h2c_stream *st, const void *p, size_t n);
/* The request body is complete. */
int sn_h2c_end(struct sn_h2c *c, struct sn_h2c_stream *st);
/* Resets st (RST_STREAM); on_close follows. */
void sn_h2c_reset(struct sn_h2c *c, struct sn_h2c_stream *st, uint32_t error);
/* n response body bytes were passed on: the server may send as many more. */
void sn_h2c_consumed(struct sn_h2c *c, struct sn_h2c_stream *st, size_t n);
/* The same for a stream already closed: only the connection's window. */
void sn_h2c_consumed_conn(struct sn_h2c *c, size_t n);
void sn_h2c_set_user(struct sn_h2c_stream *st, void *user);
void *sn_h2c_user(const struct sn_h2c_stream *st);
int32_t sn_h2c_stream_id(const struct sn_h2c_stream *st);

#endif
