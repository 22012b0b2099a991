/* Fuzzes the HTTP/2 client codec (src/http/h2_client.c) with a server's
 * byte stream: three requests are opened first (a GET, a POST with a
 * body, a gRPC-style call asking for trailers), then the input is fed in
 * pieces whose sizes its first byte picks, as the server's answer. The
 * owner passes response bytes on at once and ends request bodies when
 * the codec has room. Checks: every head delivered has a final status
 * (200..999), data and the end come only after a head, nothing is
 * accepted after the codec ended the connection, and nothing leaks
 * (LeakSanitizer). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/h2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

struct app {
	struct sn_h2c *c;
	int heads[8];
};

static int slot(struct sn_h2c_stream *st)
{
	return (int)(uintptr_t)sn_h2c_user(st) & 7;
}

static void on_response(void *arg, struct sn_h2c_stream *st, const struct sn_http_head *h)
{
	struct app *a = arg;
	CHECK(h->status >= 200 && h->status <= 999);
	a->heads[slot(st)]++;
}

static void on_data(void *arg, struct sn_h2c_stream *st, const void *p, size_t n)
{
	struct app *a = arg;
	(void)p;
	CHECK(a->heads[slot(st)] > 0);
	sn_h2c_consumed(a->c, st, n);
}

static void on_end(void *arg, struct sn_h2c_stream *st, const struct sn_http_field *t, size_t n)
{
	struct app *a = arg;
	CHECK(a->heads[slot(st)] > 0);
	for (size_t i = 0; i < n; i++)
		CHECK(t[i].name.len > 0);
}

static void on_writable(void *arg, struct sn_h2c_stream *st)
{
	(void)arg;
	(void)st;
}

static void on_close(void *arg, struct sn_h2c_stream *st, uint32_t error)
{
	(void)arg;
	(void)st;
	(void)error;
}

static const struct sn_h2c_cbs cbs = { on_response, on_data, on_end, on_writable, on_close };

static void drain(struct sn_h2c *c)
{
	const uint8_t *p;
	for (int i = 0; i < 1000 && sn_h2c_send_buf(c, &p) > 0; i++)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct app a = { 0 };
	struct sn_h2c_limits lim = { .max_header_list = 8192, .max_out = 8192 };
	static const char body[3000];
	static const struct sn_http_field f[] = { { SN_STR_LIT("content-type"), SN_STR_LIT("application/grpc") } };
	struct sn_http_head get = { .method = SN_STR_LIT("GET"), .authority = SN_STR_LIT("a:80"),
				    .path = SN_STR_LIT("/x"), .content_length = -1 };
	struct sn_http_head post = get, call = get;
	struct sn_h2c_stream *st[3];

	if (size == 0)
		return 0;
	size_t step = (size_t)(data[0] % 32) + 1;
	data++;
	size--;
	post.method = SN_STR_LIT("POST");
	call.method = SN_STR_LIT("POST");
	call.fields = f;
	call.n_fields = 1;
	CHECK(sn_h2c_new(&lim, &cbs, &a, &a.c) == 0);
	CHECK(sn_h2c_request(a.c, &get, 0, 1, (void *)(uintptr_t)1, &st[0]) == 0);
	CHECK(sn_h2c_request(a.c, &post, 0, 0, (void *)(uintptr_t)2, &st[1]) == 0);
	CHECK(sn_h2c_request(a.c, &call, 1, 0, (void *)(uintptr_t)3, &st[2]) == 0);
	CHECK(sn_h2c_write(a.c, st[1], body, sizeof(body)) > 0);
	CHECK(sn_h2c_end(a.c, st[1]) == 0);
	CHECK(sn_h2c_write(a.c, st[2], body, 5) == 5);
	CHECK(sn_h2c_end(a.c, st[2]) == 0);
	drain(a.c);
	int ended = 0;
	for (size_t off = 0; off < size && !ended; off += step) {
		size_t n = size - off < step ? size - off : step;
		ended = sn_h2c_recv(a.c, data + off, n) != 0;
		drain(a.c);
		CHECK(sn_h2c_streams(a.c) <= 3);
	}
	if (ended)
		CHECK(sn_h2c_error(a.c)[0] != '\0');
	drain(a.c);
	sn_h2c_free(a.c);
	return 0;
}
