/* The client side of an HTTP/2 connection on nghttp2 (sinew/h2.h): the
 * proxy's connection to an HTTP/2 upstream (an app, or the peer proxy
 * over mutual TLS), many requests at once.
 *
 * Like the server codec (h2_server.c): nghttp2 frames and checks, this
 * file bounds what a server sends us (response heads under the header-list
 * size we announce, bodies within windows the owner gives back with
 * sn_h2c_consumed), queues request bytes per stream with a bound, and
 * reports each response as a head, body chunks and trailers in the
 * codec-neutral model. Interim (1xx) heads are skipped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "sinew/h2.h"
#include "h2_common.h"

struct sn_h2c_stream {
	struct sn_h2c_stream *next, **pprev;   /* the connection's list */
	struct sn_h2c *c;
	int32_t id;
	void *user;
	struct sn__h2_collector resp, tr;
	struct sn_http_field *fields;   /* the head's regular fields, views into resp.buf */
	struct sn_http_head head;
	unsigned head_done : 1;      /* on_response was called */
	unsigned bad : 1;            /* over a bound: reset, no more callbacks but on_close */
	struct sn__h2_outq out;      /* queued request body; out.end: sn_h2c_end (or no body) */
};

struct sn_h2c {
	struct sn__h2_why why;       /* first: nghttp2's error callback writes here */
	nghttp2_session *s;
	struct sn_h2c_limits lim;
	struct sn_h2c_cbs cbs;
	void *arg;
	struct sn_h2c_stream *streams;
	size_t n_streams;
	const char *err;
	unsigned goaway : 1;         /* the server said GOAWAY: no new streams */
};

static void stream_free(struct sn_h2c_stream *st)
{
	*st->pprev = st->next;
	if (st->next != NULL)
		st->next->pprev = st->pprev;
	st->c->n_streams--;
	sn__h2_collector_free(&st->resp);
	sn__h2_collector_free(&st->tr);
	free(st->fields);
	sn__h2_outq_free(&st->out);
	free(st);
}

static struct sn_h2c_stream *stream_of(struct sn_h2c *c, int32_t id)
{
	return nghttp2_session_get_stream_user_data(c->s, id);
}

/* The response head from st->resp: :status, the rest in order. */
static int build_head(struct sn_h2c_stream *st)
{
	struct sn__h2_collector *col = &st->resp;
	struct sn_http_head *h = &st->head;

	free(st->fields);
	st->fields = calloc(col->n ? col->n : 1, sizeof(*st->fields));
	if (st->fields == NULL)
		return -1;
	memset(h, 0, sizeof(*h));
	h->content_length = -1;
	for (size_t i = 0; i < col->n; i++) {
		struct sn_str name = sn__h2_col_name(col, i);
		struct sn_str value = sn__h2_col_value(col, i);
		if (name.len > 0 && name.p[0] == ':') {
			if (sn_str_eq_cstr(name, ":status") && value.len == 3 && value.p[0] >= '1' && value.p[0] <= '9')
				h->status = (value.p[0] - '0') * 100 + (value.p[1] - '0') * 10 + (value.p[2] - '0');
			continue;
		}
		if (sn_str_eq_cstr(name, "content-length"))
			h->content_length = sn__h2_parse_cl(value);
		st->fields[h->n_fields++] = (struct sn_http_field){ name, value };
	}
	h->fields = st->fields;
	return h->status >= 100 ? 0 : -1;
}

/* ---- nghttp2 callbacks ------------------------------------------------------ */

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t nl,
		     const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
	struct sn_h2c *c = user;
	struct sn_h2c_stream *st = stream_of(c, frame->hd.stream_id);

	(void)flags;
	if (st == NULL || st->bad || frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	struct sn__h2_collector *col = frame->headers.cat == NGHTTP2_HCAT_HEADERS && st->head_done ? &st->tr : &st->resp;
	if (sn__h2_collect(col, c->lim.max_header_list, c->lim.max_fields, name, nl, value, vl) != 0) {
		st->bad = 1;
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
	struct sn_h2c *c = user;
	int end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;

	if (frame->hd.type == NGHTTP2_GOAWAY) {
		c->goaway = 1;
		return 0;
	}
	if (frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	struct sn_h2c_stream *st = stream_of(c, frame->hd.stream_id);
	if (st == NULL || st->bad)
		return 0;
	if (frame->hd.type == NGHTTP2_HEADERS && !st->head_done) {
		if (build_head(st) != 0) {
			st->bad = 1;
			nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
			return 0;
		}
		if (st->head.status < 200) {
			/* Interim: forget it, the final head follows. */
			sn__h2_collector_free(&st->resp);
			return 0;
		}
		st->head_done = 1;
		c->cbs.on_response(c->arg, st, &st->head);
		if (end && !st->bad)
			c->cbs.on_end(c->arg, st, NULL, 0);
		return 0;
	}
	if (frame->hd.type == NGHTTP2_HEADERS) {
		/* Trailers (END_STREAM on them, nghttp2 checks). */
		struct sn__h2_collector *col = &st->tr;
		struct sn_http_field tf[SN_H2S_DEFAULT_MAX_FIELDS + 5];
		size_t n = 0;
		for (size_t i = 0; i < col->n && n < SN_ARRAY_LEN(tf); i++)
			tf[n++] = (struct sn_http_field){ sn__h2_col_name(col, i), sn__h2_col_value(col, i) };
		c->cbs.on_end(c->arg, st, tf, n);
		sn__h2_collector_free(col);
		return 0;
	}
	if (end && st->head_done)
		c->cbs.on_end(c->arg, st, NULL, 0);
	return 0;
}

/* nghttp2 ends a session on its own (not HTTP/2, a frame it refuses)
 * with a GOAWAY carrying an error: when it goes out, say why. */
static int on_frame_send(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
	struct sn_h2c *c = user;
	(void)s;
	if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR && c->err == NULL)
		c->err = c->why.msg[0] ? c->why.msg : "the server broke the HTTP/2 protocol";
	return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
	struct sn_h2c *c = user;
	struct sn_h2c_stream *st = stream_of(c, id);

	(void)flags;
	if (st == NULL || st->bad || !st->head_done) {
		nghttp2_session_consume(s, id, len);
		return 0;
	}
	c->cbs.on_data(c->arg, st, data, len);
	return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t error, void *user)
{
	struct sn_h2c *c = user;
	struct sn_h2c_stream *st = stream_of(c, id);

	if (st == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(s, id, NULL);
	c->cbs.on_close(c->arg, st, error);
	stream_free(st);
	return 0;
}

/* The data provider: request body from the stream's queue. */
static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
			 nghttp2_data_source *source, void *user)
{
	struct sn_h2c *c = user;
	struct sn_h2c_stream *st = source->ptr;
	int writable;

	(void)s;
	(void)id;
	ssize_t n = sn__h2_outq_read(&st->out, c->lim.max_out, buf, length, flags, &writable);
	if (writable && c->cbs.on_writable != NULL)
		c->cbs.on_writable(c->arg, st);
	return n;
}

/* ---- the connection --------------------------------------------------------- */

int sn_h2c_new(const struct sn_h2c_limits *lim, const struct sn_h2c_cbs *cbs, void *arg, struct sn_h2c **out)
{
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_option *opt = NULL;
	struct sn_h2c *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return SN_ENOMEM;
	if (lim != NULL)
		c->lim = *lim;
	sn__h2_limit_defaults(&c->lim.max_header_list, &c->lim.max_fields, &c->lim.stream_window,
			      &c->lim.conn_window, &c->lim.max_out);
	c->cbs = *cbs;
	c->arg = arg;
	if (sn__h2_prepare(&cb, &opt) != 0)
		goto fail;
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
	if (nghttp2_session_client_new2(&c->s, cb, c, opt) != 0)
		goto fail;
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	cb = NULL;
	opt = NULL;
	if (sn__h2_settings(c->s, 0, c->lim.stream_window, c->lim.max_header_list, c->lim.conn_window) != 0)
		goto fail;
	*out = c;
	return 0;

fail:
	if (cb != NULL)
		nghttp2_session_callbacks_del(cb);
	if (opt != NULL)
		nghttp2_option_del(opt);
	sn_h2c_free(c);
	return SN_ENOMEM;
}

void sn_h2c_free(struct sn_h2c *c)
{
	if (c == NULL)
		return;
	if (c->s != NULL)
		nghttp2_session_del(c->s);
	while (c->streams != NULL)
		stream_free(c->streams);
	free(c);
}

int sn_h2c_recv(struct sn_h2c *c, const void *p, size_t n)
{
	ssize_t r = nghttp2_session_mem_recv(c->s, p, n);
	if (r < 0) {
		if (c->err == NULL)
			c->err = nghttp2_strerror((int)r);
		nghttp2_session_terminate_session(c->s, r == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM
										 : NGHTTP2_PROTOCOL_ERROR);
		return SN_EINVAL;
	}
	return c->err != NULL ? SN_EINVAL : 0;
}

int sn_h2c_gather(struct sn_h2c *c, struct sn_buf_pool *pool, struct sn_buf *out)
{
	return sn__h2_gather(c->s, &c->err, pool, out);
}

ssize_t sn_h2c_send_buf(struct sn_h2c *c, const uint8_t **p)
{
	ssize_t n = nghttp2_session_mem_send(c->s, p);
	if (n < 0) {
		if (c->err == NULL)
			c->err = nghttp2_strerror((int)n);
		return SN_ENOMEM;
	}
	return n;
}

int sn_h2c_alive(const struct sn_h2c *c)
{
	return nghttp2_session_want_read(c->s) || nghttp2_session_want_write(c->s);
}

const char *sn_h2c_error(const struct sn_h2c *c)
{
	return c->err != NULL ? c->err : "";
}

int sn_h2c_can_open(const struct sn_h2c *c)
{
	/* nghttp2 knows a session it is ending (its GOAWAY not yet sent). */
	if (c->goaway || c->err != NULL || !nghttp2_session_want_read(c->s) ||
	    !nghttp2_session_check_request_allowed(c->s))
		return 0;
	uint32_t max = nghttp2_session_get_remote_settings(c->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
	return c->n_streams < max && nghttp2_session_get_next_stream_id(c->s) < (1u << 30);
}

size_t sn_h2c_streams(const struct sn_h2c *c)
{
	return c->n_streams;
}

/* ---- requests ----------------------------------------------------------------- */

int sn_h2c_request(struct sn_h2c *c, const struct sn_http_head *h, int te_trailers, int end, void *user,
		   struct sn_h2c_stream **out)
{
	nghttp2_nv *nv;
	char *names;
	size_t first = 4 + (te_trailers ? 1 : 0);

	if (!sn_h2c_can_open(c))
		return SN_ELIMIT;
	struct sn_h2c_stream *st = calloc(1, sizeof(*st));
	if (st == NULL)
		return SN_ENOMEM;
	ssize_t n = sn__h2_to_nv(h->fields, h->n_fields, first, 0, &nv, &names);
	if (n < 0) {
		free(st);
		return SN_ENOMEM;
	}
#define NV(i, nm, v) nv[i] = (nghttp2_nv){ (uint8_t *)(nm), (uint8_t *)(v).p, sizeof(nm) - 1, (v).len, NGHTTP2_NV_FLAG_NONE }
	NV(0, ":method", h->method);
	NV(1, ":scheme", h->scheme.len ? h->scheme : SN_STR_LIT("http"));
	NV(2, ":authority", h->authority);
	NV(3, ":path", h->path);
	if (te_trailers)
		NV(4, "te", SN_STR_LIT("trailers"));
#undef NV
	st->c = c;
	st->user = user;
	st->out.end = end ? 1 : 0;
	nghttp2_data_provider dp = { .source.ptr = st, .read_callback = read_body };
	int32_t id = nghttp2_submit_request(c->s, NULL, nv, (size_t)n, end ? NULL : &dp, st);   /* copies nv */
	free(nv);
	free(names);
	if (id < 0) {
		free(st);
		return id == NGHTTP2_ERR_NOMEM ? SN_ENOMEM : SN_ELIMIT;
	}
	st->id = id;
	st->next = c->streams;
	if (st->next != NULL)
		st->next->pprev = &st->next;
	c->streams = st;
	st->pprev = &c->streams;
	c->n_streams++;
	*out = st;
	return 0;
}

ssize_t sn_h2c_write(struct sn_h2c *c, struct sn_h2c_stream *st, const void *p, size_t n)
{
	if (st->out.end || st->bad)
		return SN_EINVAL;
	ssize_t r = sn__h2_outq_write(&st->out, c->lim.max_out, p, n);
	if (r > 0)
		sn__h2_outq_resume(&st->out, c->s, st->id);
	return r;
}

int sn_h2c_end(struct sn_h2c *c, struct sn_h2c_stream *st)
{
	if (st->out.end)
		return 0;
	st->out.end = 1;
	sn__h2_outq_resume(&st->out, c->s, st->id);
	return 0;
}

void sn_h2c_reset(struct sn_h2c *c, struct sn_h2c_stream *st, uint32_t error)
{
	st->bad = 1;
	nghttp2_submit_rst_stream(c->s, NGHTTP2_FLAG_NONE, st->id, error);
}

void sn_h2c_consumed(struct sn_h2c *c, struct sn_h2c_stream *st, size_t n)
{
	nghttp2_session_consume(c->s, st->id, n);
}

void sn_h2c_consumed_conn(struct sn_h2c *c, size_t n)
{
	nghttp2_session_consume_connection(c->s, n);
}

void sn_h2c_set_user(struct sn_h2c_stream *st, void *user)
{
	st->user = user;
}

void *sn_h2c_user(const struct sn_h2c_stream *st)
{
	return st->user;
}

int32_t sn_h2c_stream_id(const struct sn_h2c_stream *st)
{
	return st->id;
}
