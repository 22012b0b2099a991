/* The HTTP/2 client codec (src/http/h2_client.c) against a real HTTP/2
 * server: nghttp2's server session, in memory, bytes shuttled both ways
 * (the mirror image of test_h2_server.c). Requests from the codec-neutral
 * model as the server sees them, responses as the owner hears them (head,
 * body, trailers, interim heads skipped), request bodies with the
 * per-stream queue bound, response bodies with windows as backpressure,
 * the server's concurrent-stream limit, GOAWAY, RST_STREAM, the
 * header-list bound, and a server that does not speak HTTP/2. */
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

#define MAX_ST 64

static void pattern(char *buf, size_t off, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)('a' + (off + i) % 26);
}

static void append(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *dst, size_t cap, const char *fmt, ...)
{
	size_t len = strlen(dst);
	va_list ap;
	assert_true(len < cap);
	va_start(ap, fmt);
	vsnprintf(dst + len, cap - len, fmt, ap);
	va_end(ap);
}

/* ---- the server: nghttp2's own, recording what it receives ---- */

struct srec {
	char head[2048];          /* "name: value\n" for each field of the request head */
	int got_head;
	int ended;                /* END_STREAM seen */
	char body[16384];
	size_t body_n;
	int body_ok;              /* matches pattern() so far */
	size_t unconsumed;        /* bytes not given back yet (no_auto_window_update) */
	int closed;
	uint32_t close_error;
	/* the response body this stream sends */
	const char *resp;         /* NULL: pattern() */
	size_t resp_len, resp_off;
	const nghttp2_nv *tr;     /* trailers after the body */
	size_t n_tr;
};

struct server {
	nghttp2_session *s;
	struct srec r[MAX_ST + 1];   /* by stream id / 2 */
	int requests;
	int manual_window;           /* created with no_auto_window_update */
	int consume;                 /* manual_window: give bytes back at once */
	uint32_t rst_on_request;     /* RST_STREAM with this code when a head arrives */
};

static struct srec *srec_of(struct server *sv, int32_t id)
{
	assert_true(id > 0 && id / 2 <= MAX_ST);
	return &sv->r[id / 2];
}

static int s_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t nl,
		       const uint8_t *value, size_t vl, uint8_t flags, void *user)
{
	struct srec *r = srec_of(user, f->hd.stream_id);
	(void)s;
	(void)flags;
	append(r->head, sizeof(r->head), "%.*s: %.*s\n", (int)nl, (const char *)name, (int)vl, (const char *)value);
	return 0;
}

static int s_on_frame(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
	struct server *sv = user;
	if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
		return 0;
	struct srec *r = srec_of(sv, f->hd.stream_id);
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
		r->got_head = 1;
		sv->requests++;
		if (sv->rst_on_request)
			assert_int_equal(nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id,
								   sv->rst_on_request), 0);
	}
	if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
		r->ended = 1;
	return 0;
}

static int s_on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
	struct server *sv = user;
	struct srec *r = srec_of(sv, id);
	char expect[16384];
	(void)flags;
	if (r->body_n + len <= sizeof(r->body))
		memcpy(r->body + r->body_n, data, len);
	assert_true(len <= sizeof(expect));
	pattern(expect, r->body_n, len);
	if (memcmp(expect, data, len) != 0)
		r->body_ok = 0;
	r->body_n += len;
	if (sv->manual_window) {
		r->unconsumed += len;
		if (sv->consume) {
			assert_int_equal(nghttp2_session_consume(s, id, r->unconsumed), 0);
			r->unconsumed = 0;
		}
	}
	return 0;
}

static int s_on_close(nghttp2_session *s, int32_t id, uint32_t error, void *user)
{
	struct srec *r = srec_of(user, id);
	(void)s;
	r->closed = 1;
	r->close_error = error;
	return 0;
}

/* The response body: srec.resp (or the pattern), then trailers if any. */
static ssize_t s_read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
			   nghttp2_data_source *src, void *user)
{
	struct srec *r = src->ptr;
	size_t n = SN_MIN(length, r->resp_len - r->resp_off);
	(void)user;
	if (r->resp != NULL)
		memcpy(buf, r->resp + r->resp_off, n);
	else
		pattern((char *)buf, r->resp_off, n);
	r->resp_off += n;
	if (r->resp_off == r->resp_len) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		if (r->n_tr > 0) {
			*flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
			if (nghttp2_submit_trailer(s, id, r->tr, r->n_tr) != 0)
				return NGHTTP2_ERR_CALLBACK_FAILURE;
		}
	}
	return (ssize_t)n;
}

/* Literal name and value; NVS: a value known at run time. */
#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE }
#define NVS(n, v) { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }

static void server_init(struct server *sv, const nghttp2_settings_entry *iv, size_t n_iv, int manual_window)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	memset(sv, 0, sizeof(*sv));
	for (size_t i = 0; i <= MAX_ST; i++)
		sv->r[i].body_ok = 1;
	sv->manual_window = manual_window;
	assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_on_header_callback(cb, s_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, s_on_frame);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, s_on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, s_on_close);
	assert_int_equal(nghttp2_option_new(&opt), 0);
	if (manual_window)
		nghttp2_option_set_no_auto_window_update(opt, 1);
	assert_int_equal(nghttp2_session_server_new2(&sv->s, cb, sv, opt), 0);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	assert_int_equal(nghttp2_submit_settings(sv->s, NGHTTP2_FLAG_NONE, iv, n_iv), 0);
}

/* Answers stream id: :status, the fields, then body (NULL with len > 0:
 * the pattern; len 0 and no trailers: END_STREAM on the HEADERS) and
 * trailers. */
static void respond(struct server *sv, int32_t id, const char *status, const nghttp2_nv *f, size_t n_f,
		    const char *body, size_t len, const nghttp2_nv *tr, size_t n_tr)
{
	struct srec *r = srec_of(sv, id);
	nghttp2_nv nv[16] = { NVS(":status", status) };
	assert_true(n_f < SN_ARRAY_LEN(nv));
	for (size_t i = 0; i < n_f; i++)
		nv[1 + i] = f[i];
	r->resp = body;
	r->resp_len = len;
	r->resp_off = 0;
	r->tr = tr;
	r->n_tr = n_tr;
	nghttp2_data_provider dp = { .source.ptr = r, .read_callback = s_read_body };
	assert_int_equal(nghttp2_submit_response(sv->s, id, nv, 1 + n_f, len > 0 || n_tr > 0 ? &dp : NULL), 0);
}

/* ---- the owner of the client codec: records what the codec delivers ---- */

struct crec {
	char events[64];          /* R response, D data, E end, C close, W writable */
	int responses;
	int status;
	int64_t content_length;
	char fields[1024];        /* "name=value;" of the final head */
	char body[4096];
	size_t body_n;
	int body_ok;              /* matches pattern() so far */
	int ends;
	size_t n_trailers;
	char trailers[256];       /* "name=value;" */
	int closed;
	uint32_t error;
	void *user_at_close;
};

struct client {
	struct sn_h2c *c;
	struct crec r[MAX_ST + 1];   /* by stream id / 2 */
	int consume;                 /* give body bytes back at once */
	int writable_calls;
	int closes;
};

static struct crec *crec_of(struct client *cl, struct sn_h2c_stream *st)
{
	int32_t id = sn_h2c_stream_id(st);
	assert_true(id > 0 && (id & 1) && id / 2 <= MAX_ST);
	return &cl->r[id / 2];
}

static void event(struct crec *r, char e)
{
	append(r->events, sizeof(r->events), "%c", e);
}

static void on_response(void *arg, struct sn_h2c_stream *st, const struct sn_http_head *h)
{
	struct crec *r = crec_of(arg, st);
	event(r, 'R');
	r->responses++;
	r->status = h->status;
	r->content_length = h->content_length;
	for (size_t i = 0; i < h->n_fields; i++)
		append(r->fields, sizeof(r->fields), "%.*s=%.*s;", (int)h->fields[i].name.len, h->fields[i].name.p,
		       (int)h->fields[i].value.len, h->fields[i].value.p);
}

static void on_data(void *arg, struct sn_h2c_stream *st, const void *p, size_t n)
{
	struct client *cl = arg;
	struct crec *r = crec_of(cl, st);
	char expect[16384];
	if (r->events[0] == '\0' || r->events[strlen(r->events) - 1] != 'D')
		event(r, 'D');
	if (r->body_n + n <= sizeof(r->body))
		memcpy(r->body + r->body_n, p, n);
	assert_true(n <= sizeof(expect));
	pattern(expect, r->body_n, n);
	if (memcmp(expect, p, n) != 0)
		r->body_ok = 0;
	r->body_n += n;
	if (cl->consume)
		sn_h2c_consumed(cl->c, st, n);
}

static void on_end(void *arg, struct sn_h2c_stream *st, const struct sn_http_field *t, size_t n)
{
	struct crec *r = crec_of(arg, st);
	event(r, 'E');
	r->ends++;
	r->n_trailers = n;
	for (size_t i = 0; i < n; i++)
		append(r->trailers, sizeof(r->trailers), "%.*s=%.*s;", (int)t[i].name.len, t[i].name.p,
		       (int)t[i].value.len, t[i].value.p);
}

static void on_writable(void *arg, struct sn_h2c_stream *st)
{
	struct client *cl = arg;
	event(crec_of(cl, st), 'W');
	cl->writable_calls++;
}

static void on_close(void *arg, struct sn_h2c_stream *st, uint32_t error)
{
	struct client *cl = arg;
	struct crec *r = crec_of(cl, st);
	event(r, 'C');
	r->closed++;
	r->error = error;
	r->user_at_close = sn_h2c_user(st);
	cl->closes++;
}

static const struct sn_h2c_cbs cbs = { on_response, on_data, on_end, on_writable, on_close };

static void client_init(struct client *cl, const struct sn_h2c_limits *lim)
{
	memset(cl, 0, sizeof(*cl));
	for (size_t i = 0; i <= MAX_ST; i++)
		cl->r[i].body_ok = 1;
	cl->consume = 1;
	assert_int_equal(sn_h2c_new(lim, &cbs, cl, &cl->c), 0);
}

/* Moves bytes both ways until neither side has more. Returns the codec's
 * last sn_h2c_recv result. */
static int pump(struct client *cl, struct server *sv)
{
	int rc = 0;
	for (int round = 0; round < 100000; round++) {
		int moved = 0;
		const uint8_t *p;
		ssize_t n;
		while ((n = sn_h2c_send_buf(cl->c, &p)) > 0) {
			moved = 1;
			assert_int_equal(nghttp2_session_mem_recv(sv->s, p, (size_t)n), n);
		}
		assert_int_equal(n, 0);
		while ((n = nghttp2_session_mem_send(sv->s, &p)) > 0) {
			moved = 1;
			int r = sn_h2c_recv(cl->c, p, (size_t)n);
			if (rc == 0)
				rc = r;
		}
		assert_int_equal(n, 0);
		if (!moved)
			return rc;
	}
	fail_msg("pump did not settle");
	return rc;
}

static const struct sn_http_field ua_field[] = { { SN_STR_LIT("User-Agent"), SN_STR_LIT("test/1") } };

static struct sn_h2c_stream *request(struct client *cl, const char *method, const char *path,
				     const struct sn_http_field *f, size_t n_f, int te, int end)
{
	struct sn_http_head h = {
		.method = sn_str_make(method, strlen(method)),
		.authority = SN_STR_LIT("reviews:9080"),
		.path = sn_str_make(path, strlen(path)),
		.fields = f,
		.n_fields = n_f,
		.content_length = -1,
	};
	struct sn_h2c_stream *st = NULL;
	assert_int_equal(sn_h2c_request(cl->c, &h, te, end, NULL, &st), 0);
	assert_non_null(st);
	return st;
}

static void setup(struct client *cl, struct server *sv, const struct sn_h2c_limits *lim,
		  const nghttp2_settings_entry *iv, size_t n_iv, int manual_window)
{
	client_init(cl, lim);
	server_init(sv, iv, n_iv, manual_window);
}

static void teardown(struct client *cl, struct server *sv)
{
	sn_h2c_free(cl->c);
	nghttp2_session_del(sv->s);
}

/* ---- tests ---- */

/* A GET as the server sees it, and its answer as the owner hears it. */
static void test_get(void **state)
{
	(void)state;
	static struct client cl;
	static struct server sv;
	static int tag;
	setup(&cl, &sv, NULL, NULL, 0, 0);
	assert_int_equal(sn_h2c_can_open(cl.c), 1);
	struct sn_h2c_stream *st = request(&cl, "GET", "/reviews/1?x=1", ua_field, 1, 0, 1);
	assert_int_equal(sn_h2c_stream_id(st), 1);
	assert_null(sn_h2c_user(st));
	sn_h2c_set_user(st, &tag);
	assert_ptr_equal(sn_h2c_user(st), &tag);
	assert_int_equal(sn_h2c_streams(cl.c), 1);
	assert_int_equal(pump(&cl, &sv), 0);

	struct srec *s = &sv.r[0];
	assert_int_equal(sv.requests, 1);
	assert_string_equal(s->head, ":method: GET\n"
				     ":scheme: http\n"
				     ":authority: reviews:9080\n"
				     ":path: /reviews/1?x=1\n"
				     "user-agent: test/1\n");
	assert_true(s->ended);          /* END_STREAM on the HEADERS: no body */
	assert_int_equal(s->body_n, 0);

	static const nghttp2_nv f[] = { NV("content-length", "11"), NV("content-type", "text/plain"),
					NV("x-served-by", "peer") };
	respond(&sv, 1, "200", f, 3, "hello world", 11, NULL, 0);
	assert_int_equal(pump(&cl, &sv), 0);

	struct crec *r = &cl.r[0];
	assert_string_equal(r->events, "RDEC");
	assert_int_equal(r->responses, 1);
	assert_int_equal(r->status, 200);
	assert_int_equal(r->content_length, 11);
	assert_string_equal(r->fields, "content-length=11;content-type=text/plain;x-served-by=peer;");
	assert_int_equal(r->body_n, 11);
	assert_memory_equal(r->body, "hello world", 11);
	assert_int_equal(r->ends, 1);
	assert_int_equal(r->n_trailers, 0);
	assert_int_equal(r->closed, 1);
	assert_int_equal(r->error, 0);
	assert_ptr_equal(r->user_at_close, &tag);
	assert_int_equal(sn_h2c_streams(cl.c), 0);
	assert_true(sn_h2c_alive(cl.c));
	assert_int_equal(sn_h2c_can_open(cl.c), 1);
	assert_string_equal(sn_h2c_error(cl.c), "");
	assert_true(sv.r[0].closed);
	assert_int_equal(sv.r[0].close_error, 0);
	teardown(&cl, &sv);
}

/* A request body written in pieces and ended separately. */
static void test_post_body(void **state)
{
	(void)state;
	static struct client cl;
	static struct server sv;
	setup(&cl, &sv, NULL, NULL, 0, 0);
	static const struct sn_http_field f[] = { { SN_STR_LIT("Content-Type"), SN_STR_LIT("text/plain") } };
	struct sn_h2c_stream *st = request(&cl, "POST", "/upload", f, 1, 0, 0);
	assert_int_equal(pump(&cl, &sv), 0);
	struct srec *s = &sv.r[0];
	assert_true(s->got_head);
	assert_string_equal(s->head, ":method: POST\n:scheme: http\n:authority: reviews:9080\n:path: /upload\n"
				     "content-type: text/plain\n");
	assert_false(s->ended);

	assert_int_equal(sn_h2c_write(cl.c, st, "hello ", 6), 6);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_int_equal(s->body_n, 6);
	assert_false(s->ended);
	assert_int_equal(sn_h2c_write(cl.c, st, "wor", 3), 3);
	assert_int_equal(sn_h2c_write(cl.c, st, "ld", 2), 2);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_false(s->ended);
	assert_int_equal(sn_h2c_end(cl.c, st), 0);
	assert_int_equal(sn_h2c_write(cl.c, st, "x", 1), SN_EINVAL);   /* after the end */
	assert_int_equal(pump(&cl, &sv), 0);
	assert_int_equal(s->body_n, 11);
	assert_memory_equal(s->body, "hello world", 11);
	assert_true(s->ended);

	respond(&sv, 1, "204", NULL, 0, NULL, 0, NULL, 0);
	assert_int_equal(pump(&cl, &sv), 0);
	struct crec *r = &cl.r[0];
	assert_string_equal(r->events, "REC");
	assert_int_equal(r->status, 204);
	assert_int_equal(r->content_length, -1);
	assert_string_equal(r->fields, "");
	assert_int_equal(r->error, 0);
	assert_int_equal(sn_h2c_streams(cl.c), 0);
	teardown(&cl, &sv);
}

/* te_trailers adds "te: trailers"; connection-specific fields (and a TE of
 * the owner's) never go out; names go out lower-case. The server here
 * does not check messages, so it records whatever would come. */
static void test_te_and_connection_fields(void **state)
{
	(void)state;
	static struct client cl;
	static struct server sv;
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;
	client_init(&cl, NULL);
	memset(&sv, 0, sizeof(sv));
	assert_int_equal(nghttp2_session_callbacks_new(&cb), 0);
	nghttp2_session_callbacks_set_on_header_callback(cb, s_on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, s_on_frame);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, s_on_close);
	assert_int_equal(nghttp2_option_new(&opt), 0);
	nghttp2_option_set_no_http_messaging(opt, 1);
	assert_int_equal(nghttp2_session_server_new2(&sv.s, cb, &sv, opt), 0);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	assert_int_equal(nghttp2_submit_settings(sv.s, NGHTTP2_FLAG_NONE, NULL, 0), 0);

	static const struct sn_http_field f[] = {
		{ SN_STR_LIT("Connection"), SN_STR_LIT("keep-alive, Upgrade") },
		{ SN_STR_LIT("Keep-Alive"), SN_STR_LIT("timeout=5") },
		{ SN_STR_LIT("Content-Type"), SN_STR_LIT("application/grpc") },
		{ SN_STR_LIT("Transfer-Encoding"), SN_STR_LIT("chunked") },
		{ SN_STR_LIT("Upgrade"), SN_STR_LIT("h2c") },
		{ SN_STR_LIT("Proxy-Connection"), SN_STR_LIT("close") },
		{ SN_STR_LIT("TE"), SN_STR_LIT("gzip") },
		{ SN_STR_LIT("X-Request-Id"), SN_STR_LIT("abc") },
	};
	struct sn_http_head h = {
		.method = SN_STR_LIT("POST"),
		.scheme = SN_STR_LIT("https"),
		.authority = SN_STR_LIT("greeter:50051"),
		.path = SN_STR_LIT("/helloworld.Greeter/SayHello"),
		.fields = f,
		.n_fields = SN_ARRAY_LEN(f),
		.content_length = -1,
	};
	struct sn_h2c_stream *st = NULL;
	assert_int_equal(sn_h2c_request(cl.c, &h, 1, 1, NULL, &st), 0);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_string_equal(sv.r[0].head, ":method: POST\n"
					  ":scheme: https\n"
					  ":authority: greeter:50051\n"
					  ":path: /helloworld.Greeter/SayHello\n"
					  "te: trailers\n"
					  "content-type: application/grpc\n"
					  "x-request-id: abc\n");
	assert_true(sv.r[0].ended);

	/* Without te_trailers: no te at all (the owner's TE is dropped too). */
	assert_int_equal(sn_h2c_request(cl.c, &h, 0, 1, NULL, &st), 0);
	assert_int_equal(sn_h2c_stream_id(st), 3);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_string_equal(sv.r[1].head, ":method: POST\n"
					  ":scheme: https\n"
					  ":authority: greeter:50051\n"
					  ":path: /helloworld.Greeter/SayHello\n"
					  "content-type: application/grpc\n"
					  "x-request-id: abc\n");
	teardown(&cl, &sv);
}

/* Trailers after a body reach on_end; a trailers-only answer (one HEADERS
 * with END_STREAM) is a head and an end, no data. */
static void test_trailers(void **state)
{
	(void)state;
	static struct client cl;
	static struct server sv;
	setup(&cl, &sv, NULL, NULL, 0, 0);
	request(&cl, "POST", "/helloworld.Greeter/SayHello", NULL, 0, 1, 1);
	request(&cl, "POST", "/helloworld.Greeter/SayHello", NULL, 0, 1, 1);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_int_equal(sv.requests, 2);

	static const nghttp2_nv f[] = { NV("content-type", "application/grpc") };
	static const nghttp2_nv tr[] = { NV("grpc-status", "0"), NV("grpc-message", "all good") };
	respond(&sv, 1, "200", f, 1, "\0\0\0\0\3abc", 8, tr, 2);
	static const nghttp2_nv only[] = { NV("content-type", "application/grpc"), NV("grpc-status", "14"),
					   NV("grpc-message", "unavailable") };
	respond(&sv, 3, "200", only, 3, NULL, 0, NULL, 0);
	assert_int_equal(pump(&cl, &sv), 0);

	struct crec *r = &cl.r[0];
	assert_string_equal(r->events, "RDEC");
	assert_int_equal(r->status, 200);
	assert_string_equal(r->fields, "content-type=application/grpc;");
	assert_int_equal(r->body_n, 8);
	assert_memory_equal(r->body, "\0\0\0\0\3abc", 8);
	assert_int_equal(r->ends, 1);
	assert_int_equal(r->n_trailers, 2);
	assert_string_equal(r->trailers, "grpc-status=0;grpc-message=all good;");
	assert_int_equal(r->error, 0);

	r = &cl.r[1];
	assert_string_equal(r->events, "REC");
	assert_int_equal(r->responses, 1);
	assert_int_equal(r->status, 200);
	assert_string_equal(r->fields, "content-type=application/grpc;grpc-status=14;grpc-message=unavailable;");
	assert_int_equal(r->body_n, 0);
	assert_int_equal(r->ends, 1);
	assert_int_equal(r->n_trailers, 0);
	assert_int_equal(r->error, 0);
	assert_int_equal(sn_h2c_streams(cl.c), 0);
	teardown(&cl, &sv);
}

/* Interim heads (100, 103) are skipped, their fields forgotten: one
 * on_response, the final one. */
static void test_interim(void **state)
{
	(void)state;
	static struct client cl;
	static struct server sv;
	setup(&cl, &sv, NULL, NULL, 0, 0);
	static const struct sn_http_field f[] = { { SN_STR_LIT("Expect"), SN_STR_LIT("100-continue") } };
	struct sn_h2c_stream *st = request(&cl, "PUT", "/doc", f, 1, 0, 0);
	assert_int_equal(pump(&cl, &sv), 0);
	static const nghttp2_nv c100[] = { NV(":status", "100") };
	static const nghttp2_nv e103[] = { NV(":status", "103"), NV("link", "</style.css>; rel=preload") };
	assert_int_equal(nghttp2_submit_headers(sv.s, NGHTTP2_FLAG_NONE, 1, NULL, c100, 1, NULL), 0);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_string_equal(cl.r[0].events, "");   /* nothing for the owner yet */
	assert_int_equal(sn_h2c_write(cl.c, st, "body", 4), 4);
	assert_int_equal(sn_h2c_end(cl.c, st), 0);
	assert_int_equal(nghttp2_submit_headers(sv.s, NGHTTP2_FLAG_NONE, 1, NULL, e103, 2, NULL), 0);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_int_equal(sv.r[0].body_n, 4);
	assert_true(sv.r[0].ended);
	static const nghttp2_nv fin[] = { NV("x-final", "1") };
	respond(&sv, 1, "200", fin, 1, "done", 4, NULL, 0);
	assert_int_equal(pump(&cl, &sv), 0);

	struct crec *r = &cl.r[0];
	assert_string_equal(r->events, "RDEC");
	assert_int_equal(r->responses, 1);
	assert_int_equal(r->status, 200);
	assert_string_equal(r->fields, "x-final=1;");
	assert_int_equal(r->body_n, 4);
	assert_memory_equal(r->body, "done", 4);
	assert_int_equal(r->error, 0);
	teardown(&cl, &sv);
}

/* Response bodies within the windows the owner gives back: a 200 KB body
 * over a 16 KB stream window comes 16 KB at a time. */
static void test_response_backpressure(void **state)
{
	(void)state;
	static struct client cl;
	static struct server sv;
	const size_t total = 200u << 10;
	struct sn_h2c_limits lim = { .stream_window = 16384 };
	setup(&cl, &sv, &lim, NULL, 0, 0);
	cl.consume = 0;
	struct sn_h2c_stream *st = request(&cl, "GET", "/big", NULL, 0, 0, 1);
	assert_int_equal(pump(&cl, &sv), 0);
	static const nghttp2_nv f[] = { NV("content-length", "204800") };
	respond(&sv, 1, "200", f, 1, NULL, total, NULL, 0);
	assert_int_equal(pump(&cl, &sv), 0);
	struct crec *r = &cl.r[0];
	assert_int_equal(r->status, 200);
	assert_int_equal(r->content_length, (int64_t)total);
	assert_int_equal(r->body_n, 16384);
	/* Nothing more until the owner passes the bytes on. */
	assert_int_equal(pump(&cl, &sv), 0);
	assert_int_equal(r->body_n, 16384);
	sn_h2c_consumed(cl.c, st, 16384);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_int_equal(r->body_n, 32768);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_int_equal(r->body_n, 32768);
	/* Passed on: the rest follows (given back at once from now on). */
	cl.consume = 1;
	sn_h2c_consumed(cl.c, st, 16384);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_int_equal(r->body_n, total);
	assert_true(r->body_ok);
	assert_string_equal(r->events, "RDEC");
	assert_int_equal(r->error, 0);
	teardown(&cl, &sv);
}

/* The request queue is bounded by max_out: SN_EAGAIN once it is full and
 * the server's window is spent; on_writable when it drains. */
static void test_request_queue_bound(void **state)
{
	(void)state;
	static struct client cl;
	static struct server sv;
	static char buf[8192];
	struct sn_h2c_limits lim = { .max_out = 4096 };
	nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 4096 } };
	setup(&cl, &sv, &lim, iv, 1, 1);
	assert_int_equal(pump(&cl, &sv), 0);   /* the client learns the 4 KB window */
	struct sn_h2c_stream *st = request(&cl, "POST", "/up", NULL, 0, 0, 0);
	assert_int_equal(pump(&cl, &sv), 0);
	struct srec *s = &sv.r[0];
	assert_true(s->got_head);

	pattern(buf, 0, sizeof(buf));
	assert_int_equal(sn_h2c_write(cl.c, st, buf, 6000), 4096);   /* up to the bound */
	assert_int_equal(pump(&cl, &sv), 0);
	assert_int_equal(s->body_n, 4096);                           /* the window's worth */
	assert_int_equal(sn_h2c_write(cl.c, st, buf + 4096, 4096), 4096);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_int_equal(s->body_n, 4096);                           /* window spent */
	assert_int_equal(sn_h2c_write(cl.c, st, buf + 8192 - 1, 1), SN_EAGAIN);
	assert_int_equal(cl.writable_calls, 0);

	/* The server reads: WINDOW_UPDATE, the queue drains, on_writable. */
	assert_int_equal(nghttp2_session_consume(sv.s, 1, s->unconsumed), 0);
	s->unconsumed = 0;
	assert_int_equal(pump(&cl, &sv), 0);
	assert_int_equal(s->body_n, 8192);
	assert_int_equal(cl.writable_calls, 1);
	assert_string_equal(cl.r[0].events, "W");

	/* The rest, and the end. */
	char tail[100];
	pattern(tail, 8192, sizeof(tail));
	assert_int_equal(sn_h2c_write(cl.c, st, tail, sizeof(tail)), (ssize_t)sizeof(tail));
	assert_int_equal(sn_h2c_end(cl.c, st), 0);
	sv.consume = 1;
	assert_int_equal(nghttp2_session_consume(sv.s, 1, s->unconsumed), 0);
	s->unconsumed = 0;
	assert_int_equal(pump(&cl, &sv), 0);
	assert_int_equal(s->body_n, 8192 + sizeof(tail));
	assert_true(s->body_ok);
	assert_true(s->ended);
	respond(&sv, 1, "200", NULL, 0, NULL, 0, NULL, 0);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_string_equal(cl.r[0].events, "WREC");
	assert_int_equal(cl.r[0].error, 0);
	teardown(&cl, &sv);
}

/* The server's SETTINGS_MAX_CONCURRENT_STREAMS bounds sn_h2c_can_open. */
static void test_max_concurrent_streams(void **state)
{
	(void)state;
	static struct client cl;
	static struct server sv;
	nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 2 } };
	setup(&cl, &sv, NULL, iv, 1, 0);
	assert_int_equal(pump(&cl, &sv), 0);   /* SETTINGS both ways, and their ACKs */
	assert_int_equal(sn_h2c_can_open(cl.c), 1);
	assert_int_equal(sn_h2c_streams(cl.c), 0);
	request(&cl, "GET", "/a", NULL, 0, 0, 1);
	assert_int_equal(sn_h2c_streams(cl.c), 1);
	assert_int_equal(sn_h2c_can_open(cl.c), 1);
	request(&cl, "GET", "/b", NULL, 0, 0, 1);
	assert_int_equal(sn_h2c_streams(cl.c), 2);
	assert_int_equal(sn_h2c_can_open(cl.c), 0);

	struct sn_http_head h = { .method = SN_STR_LIT("GET"), .authority = SN_STR_LIT("a"),
				  .path = SN_STR_LIT("/c"), .content_length = -1 };
	struct sn_h2c_stream *st = NULL;
	assert_int_equal(sn_h2c_request(cl.c, &h, 0, 1, NULL, &st), SN_ELIMIT);
	assert_null(st);
	assert_int_equal(sn_h2c_streams(cl.c), 2);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_int_equal(sv.requests, 2);
	assert_int_equal(sn_h2c_can_open(cl.c), 0);

	respond(&sv, 3, "204", NULL, 0, NULL, 0, NULL, 0);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_string_equal(cl.r[1].events, "REC");
	assert_int_equal(sn_h2c_streams(cl.c), 1);
	assert_int_equal(sn_h2c_can_open(cl.c), 1);
	st = request(&cl, "GET", "/c", NULL, 0, 0, 1);
	assert_int_equal(sn_h2c_stream_id(st), 5);
	assert_int_equal(sn_h2c_can_open(cl.c), 0);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_int_equal(sv.requests, 3);
	assert_true(sv.r[2].got_head);
	teardown(&cl, &sv);
}

/* GOAWAY: no new streams; those above last_stream_id are closed (refused,
 * so they may be retried); the connection ends once the rest finish. */
static void test_goaway(void **state)
{
	(void)state;
	static struct client cl;
	static struct server sv;
	setup(&cl, &sv, NULL, NULL, 0, 0);
	request(&cl, "GET", "/1", NULL, 0, 0, 1);
	request(&cl, "GET", "/3", NULL, 0, 0, 1);
	request(&cl, "GET", "/5", NULL, 0, 0, 1);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_int_equal(sv.requests, 3);
	assert_int_equal(nghttp2_submit_goaway(sv.s, NGHTTP2_FLAG_NONE, 1, NGHTTP2_NO_ERROR, NULL, 0), 0);
	assert_int_equal(pump(&cl, &sv), 0);

	assert_int_equal(sn_h2c_can_open(cl.c), 0);
	struct sn_http_head h = { .method = SN_STR_LIT("GET"), .authority = SN_STR_LIT("a"),
				  .path = SN_STR_LIT("/7"), .content_length = -1 };
	struct sn_h2c_stream *st = NULL;
	assert_int_equal(sn_h2c_request(cl.c, &h, 0, 1, NULL, &st), SN_ELIMIT);
	assert_string_equal(cl.r[1].events, "C");
	assert_int_equal(cl.r[1].error, NGHTTP2_REFUSED_STREAM);
	assert_string_equal(cl.r[2].events, "C");
	assert_int_equal(cl.r[2].error, NGHTTP2_REFUSED_STREAM);
	assert_string_equal(cl.r[0].events, "");   /* stream 1 goes on */
	assert_int_equal(sn_h2c_streams(cl.c), 1);
	assert_int_equal(sn_h2c_alive(cl.c), 1);

	respond(&sv, 1, "200", NULL, 0, "last", 4, NULL, 0);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_string_equal(cl.r[0].events, "RDEC");
	assert_int_equal(cl.r[0].error, 0);
	assert_int_equal(sn_h2c_streams(cl.c), 0);
	assert_int_equal(sn_h2c_alive(cl.c), 0);
	assert_int_equal(sn_h2c_can_open(cl.c), 0);
	teardown(&cl, &sv);
}

/* RST_STREAM from the server: on_close with its code, nothing else; the
 * connection goes on. */
static void test_server_reset(void **state)
{
	(void)state;
	static struct client cl;
	static struct server sv;
	setup(&cl, &sv, NULL, NULL, 0, 0);
	sv.rst_on_request = NGHTTP2_REFUSED_STREAM;
	request(&cl, "GET", "/no", NULL, 0, 0, 1);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_int_equal(sv.requests, 1);
	assert_string_equal(cl.r[0].events, "C");
	assert_int_equal(cl.r[0].responses, 0);
	assert_int_equal(cl.r[0].error, NGHTTP2_REFUSED_STREAM);
	assert_int_equal(sn_h2c_streams(cl.c), 0);
	assert_int_equal(sn_h2c_can_open(cl.c), 1);
	assert_true(sn_h2c_alive(cl.c));
	assert_string_equal(sn_h2c_error(cl.c), "");
	teardown(&cl, &sv);
}

/* A response head over max_header_list: the stream is reset before the
 * owner sees a head; the connection (and its HPACK state) goes on. */
static void test_header_list_limit(void **state)
{
	(void)state;
	static struct client cl;
	static struct server sv;
	static char big[4097];
	struct sn_h2c_limits lim = { .max_header_list = 1024 };
	setup(&cl, &sv, &lim, NULL, 0, 0);
	memset(big, 'v', sizeof(big) - 1);
	request(&cl, "GET", "/big", NULL, 0, 0, 1);
	assert_int_equal(pump(&cl, &sv), 0);
	nghttp2_nv f[] = { NVS("x-big", big) };
	respond(&sv, 1, "200", f, 1, "body", 4, NULL, 0);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_string_equal(cl.r[0].events, "C");
	assert_int_equal(cl.r[0].responses, 0);
	assert_int_equal(cl.r[0].error, NGHTTP2_INTERNAL_ERROR);
	assert_int_equal(sn_h2c_streams(cl.c), 0);

	/* The next stream is fine. */
	request(&cl, "GET", "/small", NULL, 0, 0, 1);
	assert_int_equal(pump(&cl, &sv), 0);
	static const nghttp2_nv g[] = { NV("x-small", "s") };
	respond(&sv, 3, "200", g, 1, "ok", 2, NULL, 0);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_string_equal(cl.r[1].events, "RDEC");
	assert_string_equal(cl.r[1].fields, "x-small=s;");
	assert_int_equal(cl.r[1].error, 0);
	assert_string_equal(sn_h2c_error(cl.c), "");
	teardown(&cl, &sv);
}

/* A server that does not speak HTTP/2 (its first bytes are not a SETTINGS
 * frame): the connection ends, with a reason and a GOAWAY to send. */
static void test_not_http2(void **state)
{
	(void)state;
	static struct client cl;
	const char *h1 = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
	client_init(&cl, NULL);
	request(&cl, "GET", "/", NULL, 0, 0, 1);
	const uint8_t *p;
	assert_true(sn_h2c_send_buf(cl.c, &p) > 0);   /* preface, SETTINGS, HEADERS */
	int r = sn_h2c_recv(cl.c, h1, strlen(h1));
	assert_true(r == 0 || r == SN_EINVAL);
	assert_int_equal(sn_h2c_can_open(cl.c), 0);   /* at once: no new stream on it */
	/* What is left to send ends with the GOAWAY: a frame of type 7. */
	ssize_t n;
	int goaway = 0;
	while ((n = sn_h2c_send_buf(cl.c, &p)) > 0) {
		for (ssize_t off = 0; off + 9 <= n; off += 9 + ((p[off] << 16) | (p[off + 1] << 8) | p[off + 2]))
			goaway |= p[off + 3] == NGHTTP2_GOAWAY;
	}
	assert_true(goaway);
	assert_string_not_equal(sn_h2c_error(cl.c), "");   /* once the GOAWAY went out */
	assert_int_equal(sn_h2c_alive(cl.c), 0);
	sn_h2c_free(cl.c);
}

/* The same mid-connection: after a proper SETTINGS exchange the server
 * sends bytes that are no HTTP/2 frame. */
static void test_garbage_mid_connection(void **state)
{
	(void)state;
	static struct client cl;
	static struct server sv;
	const char *junk = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
	setup(&cl, &sv, NULL, NULL, 0, 0);
	request(&cl, "GET", "/", NULL, 0, 0, 1);
	assert_int_equal(pump(&cl, &sv), 0);
	assert_int_equal(sv.requests, 1);
	int r = sn_h2c_recv(cl.c, junk, strlen(junk));
	assert_true(r == 0 || r == SN_EINVAL);
	assert_int_equal(sn_h2c_can_open(cl.c), 0);
	const uint8_t *p;
	while (sn_h2c_send_buf(cl.c, &p) > 0)
		;
	assert_string_not_equal(sn_h2c_error(cl.c), "");
	assert_int_equal(sn_h2c_alive(cl.c), 0);
	teardown(&cl, &sv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_post_body),
		cmocka_unit_test(test_te_and_connection_fields),
		cmocka_unit_test(test_trailers),
		cmocka_unit_test(test_interim),
		cmocka_unit_test(test_response_backpressure),
		cmocka_unit_test(test_request_queue_bound),
		cmocka_unit_test(test_max_concurrent_streams),
		cmocka_unit_test(test_goaway),
		cmocka_unit_test(test_server_reset),
		cmocka_unit_test(test_header_list_limit),
		cmocka_unit_test(test_not_http2),
		cmocka_unit_test(test_garbage_mid_connection),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
