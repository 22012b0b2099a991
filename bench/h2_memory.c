/* Heap bytes of the HTTP/2 server codec (docs/internals/http2.md): an idle
 * connection after the preface and SETTINGS, and each open stream (head
 * received, not answered) beyond that. glibc's mallinfo2; not a timing.
 *   gcc -O2 -Iinclude bench/h2_memory.c build/release/libsinew_http.a \
 *       build/release/libsinew_core.a -lnghttp2 -o /tmp/h2_memory && /tmp/h2_memory */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "sinew/h2.h"

static int on_request(void *a, struct sn_h2s_stream *s, const struct sn_http_head *h)
{
	(void)a, (void)s, (void)h;
	return 0;
}

static int on_data(void *a, struct sn_h2s_stream *s, const void *p, size_t n)
{
	(void)a, (void)s, (void)p, (void)n;
	return 0;
}

static void on_end(void *a, struct sn_h2s_stream *s, const struct sn_http_field *t, size_t n)
{
	(void)a, (void)s, (void)t, (void)n;
}

static const struct sn_h2s_cbs cbs = { on_request, on_data, on_end, NULL, NULL };

/* Heap growth of one server connection taking `streams` requests. */
static size_t server_bytes(int streams)
{
	static uint8_t wire[1 << 20];
	nghttp2_session_callbacks *cb;
	nghttp2_session *cl;
	struct sn_h2s *c;
	const uint8_t *p;
	ssize_t n;
	size_t len = 0;
	nghttp2_nv nv[] = {
		{ (uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0 },
		{ (uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0 },
		{ (uint8_t *)":authority", (uint8_t *)"reviews.default.svc.cluster.local:9080", 10, 38, 0 },
		{ (uint8_t *)":path", (uint8_t *)"/reviews.Reviews/Get", 5, 20, 0 },
		{ (uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, 0 },
		{ (uint8_t *)"te", (uint8_t *)"trailers", 2, 8, 0 },
	};

	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_client_new(&cl, cb, NULL);
	nghttp2_session_callbacks_del(cb);
	nghttp2_submit_settings(cl, NGHTTP2_FLAG_NONE, NULL, 0);
	for (int i = 0; i < streams; i++)
		nghttp2_submit_request(cl, NULL, nv, SN_ARRAY_LEN(nv), NULL, NULL);
	while ((n = nghttp2_session_mem_send(cl, &p)) > 0 && len + (size_t)n <= sizeof(wire)) {
		memcpy(wire + len, p, (size_t)n);
		len += (size_t)n;
	}
	struct mallinfo2 before = mallinfo2();
	sn_h2s_new(NULL, &cbs, NULL, &c);
	sn_h2s_recv(c, wire, len);
	while (sn_h2s_send_buf(c, &p) > 0)
		;
	struct mallinfo2 after = mallinfo2();
	sn_h2s_free(c);
	nghttp2_session_del(cl);
	return after.uordblks - before.uordblks;
}

int main(void)
{
	size_t idle = server_bytes(0), many = server_bytes(91), one = server_bytes(1);
	printf("idle HTTP/2 server connection: %zu bytes\n", idle);
	printf("each open stream beyond it:    %zu bytes\n", (many - one) / 90);
	return 0;
}
