#ifndef SINEW_H2_COMMON_H
#define SINEW_H2_COMMON_H

/* What the HTTP/2 server and client codecs (h2_server.c, h2_client.c)
 * share: collecting a head's fields under the bounds we announced, and
 * turning the model's fields into nghttp2's name/value pairs. Private to
 * src/http. */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <nghttp2/nghttp2.h>

#include "sinew/http.h"

/* Names and values of one head (or its trailers) as they arrive, bounded
 * by the header-list size and the field count. Offsets, not pointers: the
 * buffer grows. */
struct sn__h2_field_off {
	uint32_t name, name_len, value, value_len;
};

struct sn__h2_collector {
	char *buf;
	size_t len, cap;
	struct sn__h2_field_off *f;
	size_t n, cap_f;
	size_t list;                 /* HPACK's count: name + value + 32 per field */
};

/* Grows *p (of *cap elements of elem bytes) to hold want, at most max.
 * Returns 0 or -1. */
int sn__h2_grow(void **p, size_t *cap, size_t want, size_t elem, size_t max);

/* Adds one field. Returns 0, or -1 over max_list (HPACK's count) or
 * max_fields (+5 pseudo-headers), or out of memory. */
int sn__h2_collect(struct sn__h2_collector *col, size_t max_list, size_t max_fields, const uint8_t *name,
		   size_t nl, const uint8_t *value, size_t vl);

static inline struct sn_str sn__h2_col_name(const struct sn__h2_collector *col, size_t i)
{
	return sn_str_make(col->buf + col->f[i].name, col->f[i].name_len);
}

static inline struct sn_str sn__h2_col_value(const struct sn__h2_collector *col, size_t i)
{
	return sn_str_make(col->buf + col->f[i].value, col->f[i].value_len);
}

void sn__h2_collector_free(struct sn__h2_collector *col);

/* sn_h2s_gather and sn_h2c_gather on their session; *err keeps nghttp2's
 * first error. */
int sn__h2_gather(nghttp2_session *s, const char **err, struct sn_buf_pool *pool, struct sn_buf *out);

/* A stream's outbound body, queued for nghttp2's data provider: bounded
 * by max bytes; `end` once the owner said the body is complete. */
struct sn__h2_outq {
	char *buf;
	size_t off, len, cap;
	unsigned end : 1;            /* no more bytes after these */
	unsigned deferred : 1;       /* the data provider waits for bytes */
	unsigned want_writable : 1;  /* the owner was told SN_EAGAIN */
};

/* Queues up to n bytes (copied): bytes taken, SN_EAGAIN when full
 * (want_writable set), or SN_ENOMEM. */
ssize_t sn__h2_outq_write(struct sn__h2_outq *q, size_t max, const void *p, size_t n);

/* nghttp2's data provider body: copies up to length bytes into buf and
 * sets NGHTTP2_DATA_FLAG_EOF at the end. Returns the count, or
 * NGHTTP2_ERR_DEFERRED when empty and not ended. *writable is set when
 * the owner, told SN_EAGAIN, may write again (the queue is half empty). */
ssize_t sn__h2_outq_read(struct sn__h2_outq *q, size_t max, uint8_t *buf, size_t length, uint32_t *flags,
			 int *writable);

/* Wakes the stream's data provider if it waits (after a write or the end). */
void sn__h2_outq_resume(struct sn__h2_outq *q, nghttp2_session *s, int32_t id);

void sn__h2_outq_free(struct sn__h2_outq *q);

/* Fills the zero fields of a codec's limits with their defaults
 * (SN_H2S_DEFAULT_*, sinew/h2.h); max_fields is also capped there. */
void sn__h2_limit_defaults(uint32_t *max_header_list, uint32_t *max_fields, uint32_t *stream_window,
			   uint32_t *conn_window, size_t *max_out);

/* What both sides take: windows given back by the owner (no automatic
 * WINDOW_UPDATE), the flood bounds (each ends the connection with
 * GOAWAY), nghttp2's error messages kept (sn__h2_on_error). *cb and *opt
 * are the caller's to add to and delete. Returns 0 or -1. */
int sn__h2_prepare(nghttp2_session_callbacks **cb, nghttp2_option **opt);

/* Our SETTINGS (max_streams 0: not sent; a server's also say
 * ENABLE_CONNECT_PROTOCOL, RFC 8441) and the connection's receive window.
 * Returns 0 or -1. */
int sn__h2_settings(nghttp2_session *s, uint32_t max_streams, uint32_t stream_window, uint32_t max_header_list,
		    uint32_t conn_window);

/* nghttp2's messages about what it refused, the last one kept (for the
 * log line of a connection nghttp2 ends on its own). */
struct sn__h2_why {
	char msg[160];
};
/* An nghttp2_error_callback2 for a user pointer whose first member is a
 * struct sn__h2_why. */
int sn__h2_on_error(nghttp2_session *s, int code, const char *msg, size_t len, void *user);

/* Content-Length as nghttp2 already checked it (digits only); -1 if absent
 * or not a number. */
int64_t sn__h2_parse_cl(struct sn_str v);

/* Fields an HTTP/2 message must not carry (RFC 9113 8.2.2). */
int sn__h2_connection_specific(struct sn_str name);

/* Copies fields into nghttp2 name/value pairs with lower-case names, after
 * `first` leading entries the caller fills, leaving out pseudo-headers and
 * connection-specific fields. *buf holds the names, and the values too when
 * copy_values (trailers are sent later than the caller's values live).
 * Returns the count, or -1 (out of memory). */
ssize_t sn__h2_to_nv(const struct sn_http_field *f, size_t n, size_t first, int copy_values, nghttp2_nv **nv,
		     char **buf);

#endif
