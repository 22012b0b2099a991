/* Fuzzes the HTTP/2 server codec (src/http/h2_server.c) with a client's
 * byte stream: the input, after the connection preface when it does not
 * start with one, fed in pieces whose sizes the input's first byte picks.
 * The application side answers every complete request (head, a body of a
 * size taken from the path, trailers) and passes request bytes on at once,
 * so responses, queues, windows and trailers are driven too. Checks: the
 * codec never accepts input after it ended the connection, every head it
 * delivers has a method and a path, streams counted open never go
 * negative, and nothing leaks (LeakSanitizer). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/h2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

struct app {
	struct sn_h2s *c;
	size_t requests;
};

static int on_request(void *arg, struct sn_h2s_stream *st, const struct sn_http_head *h)
{
	struct app *a = arg;
	CHECK(h->method.len > 0);
	CHECK(h->path.len > 0 || (h->method.len == 7 && memcmp(h->method.p, "CONNECT", 7) == 0));
	a->requests++;
	sn_h2s_set_user(st, (void *)(uintptr_t)(h->path.len % 5 == 0));   /* a large answer for some paths */
	return h->path.len % 7 == 3;   /* the owner refuses some */
}

static int on_data(void *arg, struct sn_h2s_stream *st, const void *p, size_t n)
{
	struct app *a = arg;
	(void)p;
	sn_h2s_consumed(a->c, st, n);
	return 0;
}

static void on_end(void *arg, struct sn_h2s_stream *st, const struct sn_http_field *t, size_t n)
{
	struct app *a = arg;
	static const char body[4096];
	static const struct sn_http_field f[] = { { SN_STR_LIT("content-type"), SN_STR_LIT("text/plain") } };
	struct sn_http_head h = { .status = 200, .fields = f, .n_fields = 1, .content_length = -1 };
	(void)t;
	(void)n;
	if (sn_h2s_respond(a->c, st, &h, 0) != 0)
		return;
	sn_h2s_write(a->c, st, body, sn_h2s_user(st) ? sizeof(body) : 16);
	static const struct sn_http_field tr[] = { { SN_STR_LIT("grpc-status"), SN_STR_LIT("0") } };
	sn_h2s_end(a->c, st, tr, 1);
}

static void on_writable(void *arg, struct sn_h2s_stream *st)
{
	(void)arg;
	(void)st;
}

static void on_close(void *arg, struct sn_h2s_stream *st, uint32_t error)
{
	(void)arg;
	(void)st;
	(void)error;
}

static const struct sn_h2s_cbs cbs = { on_request, on_data, on_end, on_writable, on_close };

static void drain(struct sn_h2s *c)
{
	const uint8_t *p;
	for (int i = 0; i < 1000 && sn_h2s_send_buf(c, &p) > 0; i++)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	struct app a = { 0 };
	struct sn_h2s_limits lim = { .max_streams = 16, .max_header_list = 8192, .max_out = 8192 };

	if (size == 0)
		return 0;
	size_t step = (size_t)(data[0] % 32) + 1;
	data++;
	size--;
	CHECK(sn_h2s_new(&lim, &cbs, &a, &a.c) == 0);
	int ended = 0;
	if (size < sizeof(preface) - 1 || memcmp(data, preface, sizeof(preface) - 1) != 0)
		ended = sn_h2s_recv(a.c, preface, sizeof(preface) - 1) != 0;
	for (size_t off = 0; off < size && !ended; off += step) {
		size_t n = size - off < step ? size - off : step;
		ended = sn_h2s_recv(a.c, data + off, n) != 0;
		drain(a.c);
		CHECK(sn_h2s_streams(a.c) <= 1000);
	}
	if (ended)
		CHECK(sn_h2s_error(a.c)[0] != '\0');
	drain(a.c);
	sn_h2s_free(a.c);
	return 0;
}
