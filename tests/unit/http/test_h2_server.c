/* The HTTP/2 server codec (src/http/h2_server.c) against a real HTTP/2
 * client: nghttp2's client session, in memory, bytes shuttled both ways.
 * Requests in the codec-neutral model, bodies both ways with flow control
 * as backpressure, the per-stream response bound, trailers, many streams,
 * and the limits: concurrent streams, the header-list size, floods of
 * empty DATA frames and of resets, a client that does not speak HTTP/2;
 * extended CONNECT (RFC 8441) announced and taken. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <nghttp2/nghttp2.h>

#include "sinew/h2.h"

#define MAX_ST 4096

/* ---- the server application: records what the codec delivers ---- */

struct req_rec {
	char method[16], path[256], authority[64], scheme[8], ua[64], protocol[16];
	int64_t content_length;
	size_t body;
	int ended;
	char trailer[64];
	int closed;
	uint32_t close_error;
	struct sn_h2s_stream *st;
};

struct app {
	struct sn_h2s *c;
	struct req_rec rec[MAX_ST + 1];   /* by stream id / 2 */
	int requests;
	int auto_answer;                  /* answer at on_end: 200, body "ok <path>", trailer */
	int consume;                      /* give windows back at once */
	size_t big;                       /* auto_answer with a body this large (pattern) */
	size_t big_sent[MAX_ST + 1];
	int writable_calls;
	int refuse;                       /* on_request returns non-zero */
};

static struct req_rec *rec_of(struct app *a, struct sn_h2s_stream *st)
{
	int32_t id = sn_h2s_stream_id(st);
	assert_true(id > 0 && id / 2 <= MAX_ST);
	return &a->rec[id / 2];
}

static void copy(char *dst, size_t cap, struct sn_str s)
{
	snprintf(dst, cap, "%.*s", (int)s.len, s.p);
}

static int on_request(void *arg, struct sn_h2s_stream *st, const struct sn_http_head *h)
{
	struct app *a = arg;
	struct req_rec *r = rec_of(a, st);
	r->st = st;
	copy(r->method, sizeof(r->method), h->method);
	copy(r->path, sizeof(r->path), h->path);
	copy(r->authority, sizeof(r->authority), h->authority);
	copy(r->scheme, sizeof(r->scheme), h->scheme);
	copy(r->protocol, sizeof(r->protocol), h->protocol);
	for (size_t i = 0; i < h->n_fields; i++)
		if (sn_str_eq_cstr(h->fields[i].name, "user-agent"))
			copy(r->ua, sizeof(r->ua), h->fields[i].value);
	r->content_length = h->content_length;
	a->requests++;
	return a->refuse;
}

static int on_data(void *arg, struct sn_h2s_stream *st, const void *p, size_t n)
{
	struct app *a = arg;
	(void)p;
	rec_of(a, st)->body += n;
	if (a->consume)
		sn_h2s_consumed(a->c, st, n);
	return 0;
}

static void pattern(char *buf, size_t off, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)('a' + (off + i) % 26);
}

static void feed_big(struct app *a, struct sn_h2s_stream *st)
{
	int32_t id = sn_h2s_stream_id(st);
	char chunk[16384];
	while (a->big_sent[id / 2] < a->big) {
		size_t n = SN_MIN(sizeof(chunk), a->big - a->big_sent[id / 2]);
		pattern(chunk, a->big_sent[id / 2], n);
		ssize_t w = sn_h2s_write(a->c, st, chunk, n);
		if (w == SN_EAGAIN)
			return;
		assert_true(w > 0);
		a->big_sent[id / 2] += (size_t)w;
	}
	static const struct sn_http_field tr[] = { { SN_STR_LIT("grpc-status"), SN_STR_LIT("0") } };
	assert_int_equal(sn_h2s_end(a->c, st, tr, 1), 0);
}

static void on_end(void *arg, struct sn_h2s_stream *st, const struct sn_http_field *t, size_t n)
{
	struct app *a = arg;
	struct req_rec *r = rec_of(a, st);
	r->ended = 1;
	if (n > 0)
		snprintf(r->trailer, sizeof(r->trailer), "%.*s=%.*s", (int)t[0].name.len, t[0].name.p,
			 (int)t[0].value.len, t[0].value.p);
	if (!a->auto_answer)
		return;
	static const struct sn_http_field f[] = { { SN_STR_LIT("Content-Type"), SN_STR_LIT("text/plain") },
						  { SN_STR_LIT("Connection"), SN_STR_LIT("keep-alive") } };
	struct sn_http_head h = { .status = 200, .fields = f, .n_fields = 2, .content_length = -1 };
	assert_int_equal(sn_h2s_respond(a->c, st, &h, 0), 0);
	if (a->big) {
		feed_big(a, st);
		return;
	}
	char body[300];
	int len = snprintf(body, sizeof(body), "ok %s", r->path);
	assert_int_equal(sn_h2s_write(a->c, st, body, (size_t)len), len);
	static const struct sn_http_field tr[] = { { SN_STR_LIT("grpc-status"), SN_STR_LIT("0") } };
	assert_int_equal(sn_h2s_end(a->c, st, tr, 1), 0);
}

static void on_writable(void *arg, struct sn_h2s_stream *st)
{
	struct app *a = arg;
	a->writable_calls++;
	feed_big(a, st);
}

static void on_close(void *arg, struct sn_h2s_stream *st, uint32_t error)
{
	struct req_rec *r = rec_of(arg, st);
	r->closed = 1;
	r->close_error = error;
}

static const struct sn_h2s_cbs cbs = { on_request, on_data, on_end, on_writable, on_close };

/* ---- the client: nghttp2's own ---- */

struct resp_rec {
	int status;
	size_t body;
	int body_ok;           /* matched the pattern or "ok <path>" so far */
	char text[300];
	char trailer[64];
	char bad_header[64];   /* a connection-specific field that came through */
	int closed;
	uint32_t error;
};

struct client {
	nghttp2_session *s;
	struct resp_rec r[MAX_ST + 1];
	uint32_t goaway_error;
	int goaway;
	/* request body source */
	size_t body_len, body_sent;
	int empty_frames;      /* send this many empty DATA frames first */
};

static int c_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		       const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
	struct client *cl = user;
	struct resp_rec *r = &cl->r[f->hd.stream_id / 2];
	(void)s;
	(void)flags;
	if (nl == 7 && !memcmp(name, ":status", 7))
		r->status = atoi((const char *)value);
	else if (f->headers.cat == NGHTTP2_HCAT_HEADERS)
		snprintf(r->trailer, sizeof(r->trailer), "%.*s=%.*s", (int)nl, name, (int)vl, value);
	else if (nl == 10 && !memcmp(name, "connection", 10))
		snprintf(r->bad_header, sizeof(r->bad_header), "connection");
	return 0;
}

static int c_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
	struct client *cl = user;
	struct resp_rec *r = &cl->r[id / 2];
	(void)s;
	(void)flags;
	if (r->body + len < sizeof(r->text))
		memcpy(r->text + r->body, data, len);
	char expect[16384];
	if (len <= sizeof(expect)) {
		pattern(expect, r->body, len);
		if (memcmp(expect, data, len) != 0)
			r->body_ok = 0;
	}
	r->body += len;
	return 0;
}

static int c_on_close(nghttp2_session *s, int32_t id, uint32_t error, void *user)
{
	struct client *cl = user;
	(void)s;
	cl->r[id / 2].closed = 1;
	cl->r[id / 2].error = error;
	return 0;
}

static int c_on_frame(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
	struct client *cl = user;
	(void)s;
	if (f->hd.type == NGHTTP2_GOAWAY) {
		cl->goaway = 1;
		cl->goaway_error = f->goaway.error_code;
	}
	return 0;
}

static ssize_t c_read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
			   nghttp2_data_source *src, void *user)
{
	struct client *cl = user;
	(void)s;
	(void)id;
	(void)src;
	if (cl->empty_frames > 0) {
		cl->empty_frames--;
		return 0;
	}
	size_t n = SN_MIN(length, cl->body_len - cl->body_sent);
	pattern((char *)buf, cl->body_sent, n);
	cl->body_sent += n;
	if (cl->body_sent == cl->body_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static void client_init(struct client *cl)
{
	nghttp2_session_callbacks *cb;
	memset(cl, 0, sizeof(*cl));
	for (size_t i = 0; i <= MAX_ST; i++)
		cl->r[i].body_ok = 1;
	assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_on_header_callback(cb, c_on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_on_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, c_on_frame);
	assert_int_equal(nghttp2_session_client_new(&cl->s, cb, cl), 0);
	nghttp2_session_callbacks_del(cb);
	nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20 } };
	nghttp2_submit_settings(cl->s, NGHTTP2_FLAG_NONE, iv, 1);
	nghttp2_session_set_local_window_size(cl->s, NGHTTP2_FLAG_NONE, 0, 1 << 24);
}

static int32_t get(struct client *cl, const char *path, const char *extra_name, const char *extra_value)
{
	nghttp2_nv nv[] = {
		{ (uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0 },
		{ (uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0 },
		{ (uint8_t *)":authority", (uint8_t *)"reviews:9080", 10, 12, 0 },
		{ (uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0 },
		{ (uint8_t *)"user-agent", (uint8_t *)"test/1", 10, 6, 0 },
		{ (uint8_t *)extra_name, (uint8_t *)extra_value, extra_name ? strlen(extra_name) : 0,
		  extra_value ? strlen(extra_value) : 0, 0 },
	};
	int32_t id = nghttp2_submit_request(cl->s, NULL, nv, extra_name ? 6 : 5, NULL, NULL);
	assert_true(id > 0);
	return id;
}

static int32_t post(struct client *cl, const char *path, size_t len)
{
	char cl_s[24];
	snprintf(cl_s, sizeof(cl_s), "%zu", len);
	nghttp2_nv nv[] = {
		{ (uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0 },
		{ (uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0 },
		{ (uint8_t *)":authority", (uint8_t *)"reviews", 10, 7, 0 },
		{ (uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0 },
		{ (uint8_t *)"content-length", (uint8_t *)cl_s, 14, strlen(cl_s), 0 },
	};
	nghttp2_data_provider dp = { .read_callback = c_read_body };
	cl->body_len = len;
	int32_t id = nghttp2_submit_request(cl->s, NULL, nv, 5, &dp, NULL);
	assert_true(id > 0);
	return id;
}

/* Moves bytes both ways until neither side has more. Returns the server's
 * last sn_h2s_recv result (0, or SN_EINVAL once it ended the connection). */
static int pump(struct client *cl, struct app *a)
{
	int rc = 0;
	for (int round = 0; round < 100000; round++) {
		int moved = 0;
		const uint8_t *p;
		ssize_t n;
		while ((n = nghttp2_session_mem_send(cl->s, &p)) > 0) {
			moved = 1;
			if (rc == 0)
				rc = sn_h2s_recv(a->c, p, (size_t)n);
		}
		while ((n = sn_h2s_send_buf(a->c, &p)) > 0) {
			moved = 1;
			nghttp2_session_mem_recv(cl->s, p, (size_t)n);
		}
		if (!moved)
			return rc;
	}
	fail_msg("pump did not settle");
	return rc;
}

static void setup(struct app *a, struct client *cl, const struct sn_h2s_limits *lim)
{
	memset(a, 0, sizeof(*a));
	a->auto_answer = 1;
	a->consume = 1;
	assert_int_equal(sn_h2s_new(lim, &cbs, a, &a->c), 0);
	client_init(cl);
}

static void teardown(struct app *a, struct client *cl)
{
	nghttp2_session_del(cl->s);
	sn_h2s_free(a->c);
}

/* ---- tests ---- */

static void test_get(void **state)
{
	(void)state;
	static struct app a;
	static struct client cl;
	setup(&a, &cl, NULL);
	int32_t id = get(&cl, "/reviews/1?x=1", NULL, NULL);
	assert_int_equal(pump(&cl, &a), 0);
	struct req_rec *r = &a.rec[id / 2];
	assert_string_equal(r->method, "GET");
	assert_string_equal(r->path, "/reviews/1?x=1");
	assert_string_equal(r->authority, "reviews:9080");
	assert_string_equal(r->scheme, "http");
	assert_string_equal(r->ua, "test/1");
	assert_int_equal(r->content_length, -1);
	assert_true(r->ended && r->closed);
	assert_int_equal(r->close_error, 0);
	struct resp_rec *rr = &cl.r[id / 2];
	assert_int_equal(rr->status, 200);
	assert_int_equal(rr->body, strlen("ok /reviews/1?x=1"));
	assert_memory_equal(rr->text, "ok /reviews/1?x=1", rr->body);
	assert_string_equal(rr->trailer, "grpc-status=0");
	assert_string_equal(rr->bad_header, "");   /* Connection never goes out on HTTP/2 */
	assert_int_equal(sn_h2s_streams(a.c), 0);
	assert_true(sn_h2s_alive(a.c));
	teardown(&a, &cl);
}

/* Windows go back only when the owner says: a client can't have more
 * request body in flight than the windows, however fast it sends. */
static void test_post_backpressure(void **state)
{
	(void)state;
	static struct app a;
	static struct client cl;
	const size_t total = 3u << 20;
	setup(&a, &cl, NULL);
	a.consume = 0;
	int32_t id = post(&cl, "/upload", total);
	pump(&cl, &a);
	struct req_rec *r = &a.rec[id / 2];
	assert_int_equal(r->content_length, (int64_t)total);
	assert_true(r->body > 0);
	assert_true(r->body <= SN_H2S_DEFAULT_STREAM_WINDOW);
	assert_false(r->ended);
	/* Nothing more comes until the owner passes the bytes on. */
	size_t held = r->body;
	pump(&cl, &a);
	assert_int_equal(r->body, held);
	/* Passed on: the rest follows (given back at once from now on). */
	sn_h2s_consumed(a.c, r->st, held);
	a.consume = 1;
	pump(&cl, &a);
	assert_true(r->ended);
	assert_int_equal(r->body, total);
	assert_int_equal(cl.r[id / 2].status, 200);
	teardown(&a, &cl);
}

/* Fifty streams at once, each with a body four times the per-stream
 * queue: SN_EAGAIN, on_writable, and every byte in order. */
static void test_many_streams_bounded_queue(void **state)
{
	(void)state;
	static struct app a;
	static struct client cl;
	setup(&a, &cl, NULL);
	a.big = 4 * SN_H2S_DEFAULT_MAX_OUT + 123;
	int32_t ids[50];
	for (int i = 0; i < 50; i++) {
		char path[32];
		snprintf(path, sizeof(path), "/s/%d", i);
		ids[i] = get(&cl, path, NULL, NULL);
	}
	assert_int_equal(pump(&cl, &a), 0);
	assert_int_equal(a.requests, 50);
	assert_true(a.writable_calls >= 50);
	for (int i = 0; i < 50; i++) {
		struct resp_rec *rr = &cl.r[ids[i] / 2];
		assert_int_equal(rr->status, 200);
		assert_int_equal(rr->body, a.big);
		assert_true(rr->body_ok);
		assert_string_equal(rr->trailer, "grpc-status=0");
		assert_int_equal(rr->error, 0);
	}
	assert_int_equal(sn_h2s_streams(a.c), 0);
	teardown(&a, &cl);
}

/* SETTINGS_MAX_CONCURRENT_STREAMS reaches the client: a compliant one
 * holds the streams over the limit itself (refusing a client that does
 * not comply is nghttp2's, and is for the attack tests with crafted
 * frames). */
static void test_max_streams(void **state)
{
	(void)state;
	static struct app a;
	static struct client cl;
	struct sn_h2s_limits lim = { .max_streams = 4 };
	setup(&a, &cl, &lim);
	a.auto_answer = 0;   /* hold them open */
	pump(&cl, &a);       /* the client learns the limit */
	for (int i = 0; i < 10; i++)
		get(&cl, "/x", NULL, NULL);
	pump(&cl, &a);
	assert_int_equal(a.requests, 4);   /* the client queues the rest itself */
	assert_int_equal(sn_h2s_streams(a.c), 4);
	teardown(&a, &cl);
}

/* A head over the header-list size is refused before the application
 * sees it; the connection goes on. */
static void test_header_list_limit(void **state)
{
	(void)state;
	static struct app a;
	static struct client cl;
	struct sn_h2s_limits lim = { .max_header_list = 4096 };
	static char big[6000];
	setup(&a, &cl, &lim);
	memset(big, 'v', sizeof(big) - 1);
	int32_t bad = get(&cl, "/big", "x-big", big);
	int32_t good = get(&cl, "/small", NULL, NULL);
	assert_int_equal(pump(&cl, &a), 0);
	assert_int_equal(a.requests, 1);
	assert_true(cl.r[bad / 2].closed);
	assert_int_not_equal(cl.r[bad / 2].error, 0);
	assert_int_equal(cl.r[bad / 2].status, 0);
	assert_int_equal(cl.r[good / 2].status, 200);
	teardown(&a, &cl);
}

static void test_refused_by_owner(void **state)
{
	(void)state;
	static struct app a;
	static struct client cl;
	setup(&a, &cl, NULL);
	a.refuse = 1;
	int32_t id = get(&cl, "/no", NULL, NULL);
	pump(&cl, &a);
	assert_int_equal(cl.r[id / 2].error, NGHTTP2_REFUSED_STREAM);
	teardown(&a, &cl);
}

/* Empty DATA frames in a row end the connection (ENHANCE_YOUR_CALM). */
static void test_empty_data_flood(void **state)
{
	(void)state;
	static struct app a;
	static struct client cl;
	setup(&a, &cl, NULL);
	cl.empty_frames = SN_H2S_MAX_EMPTY_DATA + 50;
	post(&cl, "/flood", 10);
	assert_int_equal(pump(&cl, &a), SN_EINVAL);
	assert_true(cl.goaway);
	assert_int_equal(cl.goaway_error, NGHTTP2_ENHANCE_YOUR_CALM);
	assert_string_equal(sn_h2s_error(a.c), "flood of empty DATA frames");
	teardown(&a, &cl);
}

/* Rapid reset (CVE-2023-44487): open and cancel streams faster than the
 * token bucket allows: GOAWAY, and no stream left behind. */
static void test_rapid_reset(void **state)
{
	(void)state;
	static struct app a;
	static struct client cl;
	setup(&a, &cl, NULL);
	a.auto_answer = 0;
	pump(&cl, &a);
	int rc = 0;
	for (int i = 0; i < 1500 && !cl.goaway; i++) {
		int32_t id = get(&cl, "/r", NULL, NULL);
		const uint8_t *p;
		ssize_t n;
		while ((n = nghttp2_session_mem_send(cl.s, &p)) > 0)   /* HEADERS out */
			rc = sn_h2s_recv(a.c, p, (size_t)n);
		nghttp2_submit_rst_stream(cl.s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
		rc = pump(&cl, &a);
	}
	assert_true(cl.goaway);
	assert_int_not_equal(cl.goaway_error, NGHTTP2_NO_ERROR);
	(void)rc;
	assert_true(sn_h2s_streams(a.c) <= 1);
	teardown(&a, &cl);
}

/* Not HTTP/2 at all: the connection ends with a GOAWAY to send. */
static void test_not_http2(void **state)
{
	(void)state;
	static struct app a;
	static struct client cl;
	setup(&a, &cl, NULL);
	const char *h1 = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
	assert_int_equal(sn_h2s_recv(a.c, h1, strlen(h1)), SN_EINVAL);
	assert_string_not_equal(sn_h2s_error(a.c), "");
	const uint8_t *p;
	assert_true(sn_h2s_send_buf(a.c, &p) > 0);
	teardown(&a, &cl);
}

/* Graceful: GOAWAY, the stream in flight finishes, then nothing is left. */
static void test_goaway_drain(void **state)
{
	(void)state;
	static struct app a;
	static struct client cl;
	setup(&a, &cl, NULL);
	a.auto_answer = 0;
	int32_t id = get(&cl, "/slow", NULL, NULL);
	pump(&cl, &a);
	sn_h2s_goaway(a.c);
	pump(&cl, &a);
	assert_true(cl.goaway);
	assert_int_equal(cl.goaway_error, NGHTTP2_NO_ERROR);
	struct req_rec *r = &a.rec[id / 2];
	struct sn_http_head h = { .status = 204, .content_length = -1 };
	assert_int_equal(sn_h2s_respond(a.c, r->st, &h, 1), 0);
	pump(&cl, &a);
	assert_int_equal(cl.r[id / 2].status, 204);
	assert_true(r->closed);
	teardown(&a, &cl);
}

/* RFC 8441: our SETTINGS say ENABLE_CONNECT_PROTOCOL, so an extended
 * CONNECT comes through with its :protocol and stays open both ways; a
 * :protocol on any other method is still refused by nghttp2. */
static void test_extended_connect(void **state)
{
	(void)state;
	static struct app a;
	static struct client cl;
	setup(&a, &cl, NULL);
	a.auto_answer = 0;
	pump(&cl, &a);
	assert_int_equal(nghttp2_session_get_remote_settings(cl.s, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL), 1);
	nghttp2_nv nv[] = {
		{ (uint8_t *)":method", (uint8_t *)"CONNECT", 7, 7, 0 },
		{ (uint8_t *)":protocol", (uint8_t *)"websocket", 9, 9, 0 },
		{ (uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0 },
		{ (uint8_t *)":authority", (uint8_t *)"reviews:9080", 10, 12, 0 },
		{ (uint8_t *)":path", (uint8_t *)"/chat", 5, 5, 0 },
		{ (uint8_t *)"sec-websocket-version", (uint8_t *)"13", 21, 2, 0 },
	};
	nghttp2_data_provider dp = { .read_callback = c_read_body };
	cl.body_len = 5;   /* DATA on the tunnel's stream, not ended by us below */
	int32_t id = nghttp2_submit_request(cl.s, NULL, nv, SN_ARRAY_LEN(nv), &dp, NULL);
	assert_true(id > 0);
	assert_int_equal(pump(&cl, &a), 0);
	struct req_rec *r = &a.rec[id / 2];
	assert_string_equal(r->method, "CONNECT");
	assert_string_equal(r->protocol, "websocket");
	assert_string_equal(r->path, "/chat");
	assert_string_equal(r->scheme, "http");
	assert_int_equal(r->body, 5);
	struct sn_http_head h = { .status = 200, .content_length = -1 };
	assert_int_equal(sn_h2s_respond(a.c, r->st, &h, 0), 0);
	assert_int_equal(sn_h2s_write(a.c, r->st, "frame", 5), 5);
	pump(&cl, &a);
	assert_int_equal(cl.r[id / 2].status, 200);
	assert_int_equal(cl.r[id / 2].body, 5);
	assert_false(cl.r[id / 2].closed);
	/* :protocol with GET: malformed (RFC 8441 4), reset before the owner sees it */
	nv[0] = (nghttp2_nv){ (uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0 };
	int32_t bad = nghttp2_submit_request(cl.s, NULL, nv, SN_ARRAY_LEN(nv), NULL, NULL);
	assert_true(bad > 0);
	pump(&cl, &a);
	assert_string_equal(a.rec[bad / 2].method, "");
	assert_true(cl.r[bad / 2].closed);
	assert_int_equal(cl.r[bad / 2].error, NGHTTP2_PROTOCOL_ERROR);
	teardown(&a, &cl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_post_backpressure),
		cmocka_unit_test(test_many_streams_bounded_queue),
		cmocka_unit_test(test_max_streams),
		cmocka_unit_test(test_header_list_limit),
		cmocka_unit_test(test_refused_by_owner),
		cmocka_unit_test(test_empty_data_flood),
		cmocka_unit_test(test_rapid_reset),
		cmocka_unit_test(test_not_http2),
		cmocka_unit_test(test_goaway_drain),
		cmocka_unit_test(test_extended_connect),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
