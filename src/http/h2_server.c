/* The server side of an HTTP/2 connection on nghttp2 (sinew/h2.h).
 *
 * nghttp2 does the framing, HPACK, flow-control bookkeeping and the
 * message checks of RFC 9113 8 (pseudo-headers, lower-case names, no
 * connection-specific fields, content-length against DATA) and, since our
 * SETTINGS enable it, of RFC 8441's extended CONNECT (:protocol, its
 * value in head.protocol, for WebSocket over HTTP/2); this file
 * bounds what it keeps per stream, turns heads into struct sn_http_head,
 * queues response bytes per stream with a bound, and adds the flood
 * checks nghttp2 leaves to its user. Windows are given back by the owner
 * (sn_h2s_consumed), never automatically: a client can't have more request
 * body in flight than the windows allow, whatever the upstream's pace.
 *
 * How it was shaped: h2o lib/http2/connection.c (its own frames, not
 * nghttp2) and curl lib/http2.c (nghttp2 on a caller's loop). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "sinew/h2.h"
#include "h2_common.h"

struct sn_h2s_stream {
	struct sn_h2s_stream *next, **pprev;   /* the connection's list */
	struct sn_h2s *c;
	int32_t id;
	void *user;
	struct sn__h2_collector req, tr;
	struct sn_http_field *fields;   /* the head's regular fields, views into req.buf */
	struct sn_http_head head;
	unsigned head_done : 1;      /* on_request was called */
	unsigned refused : 1;        /* over a limit, or the owner said no: no callbacks */
	unsigned responded : 1;
	struct sn__h2_outq out;      /* queued response body; out.end: sn_h2s_end was called */
	nghttp2_nv *trailers;        /* copies, sent after the body */
	size_t n_trailers;
	char *trailer_buf;
};

struct sn_h2s {
	struct sn__h2_why why;       /* first: nghttp2's error callback writes here */
	nghttp2_session *s;
	struct sn_h2s_limits lim;
	struct sn_h2s_cbs cbs;
	void *arg;
	struct sn_h2s_stream *streams;   /* every stream we allocated (nghttp2 frees its own without telling) */
	size_t n_streams;
	uint32_t empty_data;         /* empty DATA frames in a row */
	const char *err;
	unsigned goaway_in : 1;      /* the client sent GOAWAY */
	unsigned goaway_out : 1;     /* we submitted a graceful GOAWAY */
};

/* The request head from st->req: pseudo-headers into their members, the
 * rest, in order, into st->fields. Returns 0 or -1 (out of memory). */
static int build_head(struct sn_h2s_stream *st)
{
	struct sn__h2_collector *col = &st->req;
	struct sn_http_head *h = &st->head;

	st->fields = calloc(col->n ? col->n : 1, sizeof(*st->fields));
	if (st->fields == NULL)
		return -1;
	memset(h, 0, sizeof(*h));
	h->content_length = -1;
	for (size_t i = 0; i < col->n; i++) {
		struct sn_str name = sn__h2_col_name(col, i);
		struct sn_str value = sn__h2_col_value(col, i);
		if (name.len > 0 && name.p[0] == ':') {
			if (sn_str_eq_cstr(name, ":method"))
				h->method = value;
			else if (sn_str_eq_cstr(name, ":scheme"))
				h->scheme = value;
			else if (sn_str_eq_cstr(name, ":authority"))
				h->authority = value;
			else if (sn_str_eq_cstr(name, ":path"))
				h->path = value;
			else if (sn_str_eq_cstr(name, ":protocol"))
				h->protocol = value;
			continue;
		}
		if (sn_str_eq_cstr(name, "content-length"))
			h->content_length = sn__h2_parse_cl(value);
		if (sn_str_eq_cstr(name, "host") && h->authority.len == 0)
			h->authority = value;
		st->fields[h->n_fields++] = (struct sn_http_field){ name, value };
	}
	h->fields = st->fields;
	return 0;
}

/* ---- streams ---------------------------------------------------------------- */

static void stream_free(struct sn_h2s_stream *st)
{
	*st->pprev = st->next;
	if (st->next != NULL)
		st->next->pprev = st->pprev;
	st->c->n_streams--;
	sn__h2_collector_free(&st->req);
	sn__h2_collector_free(&st->tr);
	free(st->fields);
	sn__h2_outq_free(&st->out);
	free(st->trailers);
	free(st->trailer_buf);
	free(st);
}

static struct sn_h2s_stream *stream_of(struct sn_h2s *c, int32_t id)
{
	return nghttp2_session_get_stream_user_data(c->s, id);
}

/* Ends the connection: GOAWAY with code, and why for the logs. */
static void terminate(struct sn_h2s *c, uint32_t code, const char *why)
{
	if (c->err == NULL)
		c->err = why;
	nghttp2_session_terminate_session(c->s, code);
}

/* ---- nghttp2 callbacks ------------------------------------------------------ */

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
	struct sn_h2s *c = user;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct sn_h2s_stream *st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	st->c = c;
	st->id = frame->hd.stream_id;
	if (nghttp2_session_set_stream_user_data(s, st->id, st) != 0) {
		free(st);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	st->next = c->streams;
	if (st->next != NULL)
		st->next->pprev = &st->next;
	c->streams = st;
	st->pprev = &c->streams;
	c->n_streams++;
	return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t nl,
		     const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
	struct sn_h2s *c = user;
	struct sn_h2s_stream *st = stream_of(c, frame->hd.stream_id);

	(void)s;
	(void)flags;
	if (st == NULL || st->refused)
		return 0;
	struct sn__h2_collector *col = frame->headers.cat == NGHTTP2_HCAT_REQUEST ? &st->req : &st->tr;
	if (sn__h2_collect(col, c->lim.max_header_list, c->lim.max_fields, name, nl, value, vl) != 0) {
		/* Over the header-list size or field count we announced: the
		 * stream is reset (nghttp2 sends RST_STREAM). */
		st->refused = 1;
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
	struct sn_h2s *c = user;
	struct sn_h2s_stream *st;
	int end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;

	if (frame->hd.type == NGHTTP2_DATA) {
		/* Empty DATA frames cost us a wake-up each and carry nothing
		 * (an attack on servers, CVE-2019-9518): a run of them ends
		 * the connection. */
		if (frame->hd.length == 0 && !end) {
			if (++c->empty_data > SN_H2S_MAX_EMPTY_DATA) {
				terminate(c, NGHTTP2_ENHANCE_YOUR_CALM, "flood of empty DATA frames");
				return 0;
			}
		} else {
			c->empty_data = 0;
		}
	}
	if (frame->hd.type == NGHTTP2_GOAWAY)
		c->goaway_in = 1;
	if (frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	st = stream_of(c, frame->hd.stream_id);
	if (st == NULL || st->refused)
		return 0;
	if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
		if (build_head(st) != 0) {
			st->refused = 1;
			nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
			return 0;
		}
		st->head_done = 1;
		if (c->cbs.on_request(c->arg, st, &st->head) != 0) {
			st->refused = 1;
			nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
			return 0;
		}
		if (end)
			c->cbs.on_end(c->arg, st, NULL, 0);
		return 0;
	}
	if (frame->hd.type == NGHTTP2_HEADERS) {
		/* Trailers (nghttp2 requires END_STREAM on them). */
		struct sn__h2_collector *col = &st->tr;
		struct sn_http_field tf[SN_H2S_DEFAULT_MAX_FIELDS + 5];
		size_t n = 0;
		for (size_t i = 0; i < col->n && n < SN_ARRAY_LEN(tf); i++)
			tf[n++] = (struct sn_http_field){ sn__h2_col_name(col, i),
							  sn__h2_col_value(col, i) };
		c->cbs.on_end(c->arg, st, tf, n);
		sn__h2_collector_free(col);
		return 0;
	}
	if (end)
		c->cbs.on_end(c->arg, st, NULL, 0);
	return 0;
}

/* nghttp2 ends a connection on its own (rapid reset, a stream over the
 * acknowledged limit, a frame it refuses) with a GOAWAY carrying an error:
 * when it goes out, say why. */
static int on_frame_send(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
	struct sn_h2s *c = user;
	(void)s;
	if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR && c->err == NULL)
		c->err = c->why.msg[0] ? c->why.msg : "the client broke the protocol or a limit";
	return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
	struct sn_h2s *c = user;
	struct sn_h2s_stream *st = stream_of(c, id);

	(void)flags;
	if (st == NULL || st->refused || !st->head_done) {
		nghttp2_session_consume(s, id, len);   /* nobody takes it: give the window back */
		return 0;
	}
	if (c->cbs.on_data(c->arg, st, data, len) != 0) {
		st->refused = 1;
		nghttp2_session_consume(s, id, len);
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
	}
	return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t error, void *user)
{
	struct sn_h2s *c = user;
	struct sn_h2s_stream *st = stream_of(c, id);

	if (st == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(s, id, NULL);
	if (st->head_done && c->cbs.on_close != NULL)
		c->cbs.on_close(c->arg, st, error);
	stream_free(st);
	return 0;
}

/* The data provider: response body from the stream's queue. */
static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
			 nghttp2_data_source *source, void *user)
{
	struct sn_h2s *c = user;
	struct sn_h2s_stream *st = source->ptr;
	int writable;

	(void)id;
	ssize_t n = sn__h2_outq_read(&st->out, c->lim.max_out, buf, length, flags, &writable);
	if (n >= 0 && (*flags & NGHTTP2_DATA_FLAG_EOF) && st->n_trailers > 0) {
		*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
		if (nghttp2_submit_trailer(s, st->id, st->trailers, st->n_trailers) != 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (writable && c->cbs.on_writable != NULL)
		c->cbs.on_writable(c->arg, st);
	return n;
}

/* ---- the connection --------------------------------------------------------- */

int sn_h2s_new(const struct sn_h2s_limits *lim, const struct sn_h2s_cbs *cbs, void *arg, struct sn_h2s **out)
{
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_option *opt = NULL;
	struct sn_h2s *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return SN_ENOMEM;
	if (lim != NULL)
		c->lim = *lim;
	if (!c->lim.max_streams)
		c->lim.max_streams = SN_H2S_DEFAULT_MAX_STREAMS;
	sn__h2_limit_defaults(&c->lim.max_header_list, &c->lim.max_fields, &c->lim.stream_window,
			      &c->lim.conn_window, &c->lim.max_out);
	c->cbs = *cbs;
	c->arg = arg;
	if (sn__h2_prepare(&cb, &opt) != 0)
		goto fail;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	if (nghttp2_session_server_new2(&c->s, cb, c, opt) != 0)
		goto fail;
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	cb = NULL;
	opt = NULL;
	if (sn__h2_settings(c->s, c->lim.max_streams, c->lim.stream_window, c->lim.max_header_list,
			    c->lim.conn_window) != 0)
		goto fail;
	*out = c;
	return 0;

fail:
	if (cb != NULL)
		nghttp2_session_callbacks_del(cb);
	if (opt != NULL)
		nghttp2_option_del(opt);
	sn_h2s_free(c);
	return SN_ENOMEM;
}

void sn_h2s_free(struct sn_h2s *c)
{
	if (c == NULL)
		return;
	if (c->s != NULL)
		nghttp2_session_del(c->s);   /* no callbacks */
	/* Streams still open, and any nghttp2 dropped without closing them
	 * (a head refused before the stream opened): freed without callbacks. */
	while (c->streams != NULL)
		stream_free(c->streams);
	free(c);
}

int sn_h2s_recv(struct sn_h2s *c, const void *p, size_t n)
{
	ssize_t r = nghttp2_session_mem_recv(c->s, p, n);
	if (r < 0) {
		/* Fatal for the connection (bad preface, flood, protocol
		 * error): make sure a GOAWAY says so. */
		terminate(c, r == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR,
			  nghttp2_strerror((int)r));
		return SN_EINVAL;
	}
	return c->err != NULL ? SN_EINVAL : 0;
}

int sn_h2s_gather(struct sn_h2s *c, struct sn_buf_pool *pool, struct sn_buf *out)
{
	return sn__h2_gather(c->s, &c->err, pool, out);
}

ssize_t sn_h2s_send_buf(struct sn_h2s *c, const uint8_t **p)
{
	ssize_t n = nghttp2_session_mem_send(c->s, p);
	if (n < 0) {
		if (c->err == NULL)
			c->err = nghttp2_strerror((int)n);
		return SN_ENOMEM;
	}
	return n;
}

int sn_h2s_alive(const struct sn_h2s *c)
{
	return nghttp2_session_want_read(c->s) || nghttp2_session_want_write(c->s);
}

const char *sn_h2s_error(const struct sn_h2s *c)
{
	return c->err != NULL ? c->err : "";
}

size_t sn_h2s_streams(const struct sn_h2s *c)
{
	return c->n_streams;
}

/* ---- answering -------------------------------------------------------------- */

int sn_h2s_respond(struct sn_h2s *c, struct sn_h2s_stream *st, const struct sn_http_head *h, int end)
{
	char status[4];
	nghttp2_nv *nv;
	char *names;

	if (st->responded || st->refused || h->status < 100 || h->status > 999)
		return SN_EINVAL;
	ssize_t n = sn__h2_to_nv(h->fields, h->n_fields, 1, 0, &nv, &names);
	if (n < 0)
		return SN_ENOMEM;
	snprintf(status, sizeof(status), "%03d", h->status);
	nv[0] = (nghttp2_nv){ (uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE };
	nghttp2_data_provider dp = { .source.ptr = st, .read_callback = read_body };
	st->out.end = end ? 1 : 0;
	int r = nghttp2_submit_response(c->s, st->id, nv, (size_t)n, end ? NULL : &dp);   /* copies nv */
	free(nv);
	free(names);
	if (r != 0)
		return r == NGHTTP2_ERR_NOMEM ? SN_ENOMEM : SN_EINVAL;
	st->responded = 1;
	return 0;
}

ssize_t sn_h2s_write(struct sn_h2s *c, struct sn_h2s_stream *st, const void *p, size_t n)
{
	if (!st->responded || st->out.end || st->refused)
		return SN_EINVAL;
	ssize_t r = sn__h2_outq_write(&st->out, c->lim.max_out, p, n);
	if (r > 0)
		sn__h2_outq_resume(&st->out, c->s, st->id);
	return r;
}

int sn_h2s_end(struct sn_h2s *c, struct sn_h2s_stream *st, const struct sn_http_field *trailers, size_t n)
{
	if (!st->responded || st->out.end || st->refused)
		return SN_EINVAL;
	if (n > 0) {
		ssize_t k = sn__h2_to_nv(trailers, n, 0, 1, &st->trailers, &st->trailer_buf);
		if (k < 0)
			return SN_ENOMEM;
		st->n_trailers = (size_t)k;
	}
	st->out.end = 1;
	sn__h2_outq_resume(&st->out, c->s, st->id);
	return 0;
}

void sn_h2s_reset(struct sn_h2s *c, struct sn_h2s_stream *st, uint32_t error)
{
	nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, st->id, error);
}

void sn_h2s_consumed(struct sn_h2s *c, struct sn_h2s_stream *st, size_t n)
{
	nghttp2_session_consume(c->s, st->id, n);
}

void sn_h2s_consumed_conn(struct sn_h2s *c, size_t n)
{
	nghttp2_session_consume_connection(c->s, n);
}

void sn_h2s_goaway(struct sn_h2s *c)
{
	c->goaway_out = 1;
	nghttp2_submit_goaway(c->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->s),
			      NGHTTP2_NO_ERROR, NULL, 0);
}

void sn_h2s_set_user(struct sn_h2s_stream *st, void *user)
{
	st->user = user;
}

void *sn_h2s_user(const struct sn_h2s_stream *st)
{
	return st->user;
}

int32_t sn_h2s_stream_id(const struct sn_h2s_stream *st)
{
	return st->id;
}
