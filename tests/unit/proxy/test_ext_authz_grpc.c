/* Envoy's gRPC external authorization messages (src/proxy/ext_authz_grpc.c):
 * the protobuf writer's nesting and minimal lengths, the reader's bounds,
 * a CheckRequest read back field by field, and CheckResponses that allow,
 * deny, and must be refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/ext_authz_grpc.h"

/* The first field numbered num in a message, or a zeroed field. */
static struct sn_pb_field field(const uint8_t *p, size_t n, uint32_t num)
{
	struct sn_pbr r;
	struct sn_pb_field f;
	sn_pbr_init(&r, p, n);
	while (sn_pbr_next(&r, &f) == 1)
		if (f.num == num)
			return f;
	memset(&f, 0, sizeof(f));
	return f;
}

static void assert_view(struct sn_pb_field f, const char *want)
{
	assert_int_equal(f.wire, SN_PB_LEN);
	assert_int_equal(f.n, strlen(want));
	assert_memory_equal(f.p, want, f.n);
}

static void test_writer_nests_with_minimal_lengths(void **state)
{
	uint8_t buf[512], big[200];
	struct sn_pbw w;
	(void)state;
	memset(big, 'x', sizeof(big));
	sn_pbw_init(&w, buf, sizeof(buf));
	sn_pbw_begin(&w, 1);
	sn_pbw_begin(&w, 2);
	sn_pbw_bytes(&w, 3, big, sizeof(big), 0);   /* 200 bytes: a two-byte length */
	sn_pbw_end(&w);
	sn_pbw_varint(&w, 4, 300);
	sn_pbw_end(&w);
	assert_false(w.overflow);
	/* 0a d1 01 | 12 cb 01 | 1a c8 01 + 200 | 20 ac 02 */
	assert_int_equal(w.len, 3 + 3 + 3 + 200 + 3);
	static const uint8_t head[] = { 0x0a, 0xd1, 0x01, 0x12, 0xcb, 0x01, 0x1a, 0xc8, 0x01 };
	assert_memory_equal(buf, head, sizeof(head));
	struct sn_pb_field outer = field(buf, w.len, 1);
	struct sn_pb_field inner = field(outer.p, outer.n, 2);
	assert_int_equal(field(inner.p, inner.n, 3).n, 200);
	assert_int_equal(field(outer.p, outer.n, 4).v, 300);

	/* Past its capacity the writer stops and says so. */
	sn_pbw_init(&w, buf, 100);
	sn_pbw_begin(&w, 1);
	sn_pbw_bytes(&w, 3, big, sizeof(big), 0);
	sn_pbw_end(&w);
	assert_true(w.overflow);
}

static void test_reader_bounds(void **state)
{
	static const uint8_t cut_varint[] = { 0x08, 0xff, 0xff };
	static const uint8_t long_len[] = { 0x0a, 0x05, 'a' };
	static const uint8_t eleven[] = { 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
	static const uint8_t group[] = { 0x0b };
	static const uint8_t zero_field[] = { 0x00, 0x01 };
	const uint8_t *bad[] = { cut_varint, long_len, eleven, group, zero_field };
	size_t len[] = { sizeof(cut_varint), sizeof(long_len), sizeof(eleven), sizeof(group), sizeof(zero_field) };
	struct sn_pbr r;
	struct sn_pb_field f;
	(void)state;
	for (size_t i = 0; i < SN_ARRAY_LEN(bad); i++) {
		sn_pbr_init(&r, bad[i], len[i]);
		assert_int_equal(sn_pbr_next(&r, &f), -1);
	}
}

static void test_check_request_fields(void **state)
{
	static const struct sn_http_field h[] = {
		{ SN_STR_LIT("X-Team"), SN_STR_LIT("a") },
		{ SN_STR_LIT("accept"), SN_STR_LIT("*/*") },
		{ SN_STR_LIT("x-team"), SN_STR_LIT("b") },
	};
	struct sn_xa_check c = {
		.source = { SN_STR_LIT("10.0.0.1"), 4242, SN_STR_LIT("spiffe://cluster.local/ns/a/sa/b") },
		.destination = { SN_STR_LIT("10.0.0.2"), 9080, SN_STR_NULL },
		.id = SN_STR_LIT("rid"), .method = SN_STR_LIT("POST"), .path = SN_STR_LIT("/p?q"),
		.host = SN_STR_LIT("reviews"), .scheme = SN_STR_LIT("http"), .protocol = SN_STR_LIT("HTTP/1.1"),
		.headers = h, .n_headers = 3, .size = 4, .body = "\x00\x01\xfe\xff", .body_len = 4, .pack_as_bytes = 1,
	};
	uint8_t buf[1024];
	(void)state;
	size_t n = sn_xa_check_write(&c, buf, sizeof(buf));
	assert_true(n > 5 && n <= sn_xa_check_size(&c));
	assert_int_equal(buf[0], 0);
	assert_int_equal(((size_t)buf[3] << 8 | buf[4]), n - 5);
	struct sn_pb_field attrs = field(buf + 5, n - 5, 1);
	struct sn_pb_field src = field(attrs.p, attrs.n, 1);
	struct sn_pb_field sock = field(field(src.p, src.n, 1).p, field(src.p, src.n, 1).n, 1);
	assert_view(field(sock.p, sock.n, 2), "10.0.0.1");
	assert_int_equal(field(sock.p, sock.n, 3).v, 4242);
	assert_view(field(src.p, src.n, 4), "spiffe://cluster.local/ns/a/sa/b");
	struct sn_pb_field rq = field(attrs.p, attrs.n, 4);
	struct sn_pb_field http = field(rq.p, rq.n, 2);
	assert_view(field(http.p, http.n, 1), "rid");
	assert_view(field(http.p, http.n, 2), "POST");
	assert_view(field(http.p, http.n, 4), "/p?q");
	assert_view(field(http.p, http.n, 5), "reviews");
	assert_int_equal(field(http.p, http.n, 9).v, 4);
	assert_view(field(http.p, http.n, 10), "HTTP/1.1");
	assert_int_equal(field(http.p, http.n, 11).n, 0);   /* packAsBytes: raw_body only */
	assert_int_equal(field(http.p, http.n, 12).n, 4);
	/* The map: pseudo-headers first, then one entry per name, lower
	 * case, repeats joined. */
	struct sn_pbr r;
	struct sn_pb_field f;
	int found = 0, entries = 0;
	sn_pbr_init(&r, http.p, http.n);
	while (sn_pbr_next(&r, &f) == 1) {
		if (f.num != 3)
			continue;
		entries++;
		struct sn_pb_field k = field(f.p, f.n, 1), v = field(f.p, f.n, 2);
		if (k.n == 6 && !memcmp(k.p, "x-team", 6)) {
			assert_view(v, "a,b");
			found++;
		}
	}
	assert_int_equal(found, 1);
	assert_int_equal(entries, 3 + 2);
	/* Too small a buffer: refused. */
	assert_int_equal(sn_xa_check_write(&c, buf, n - 1), 0);
}

/* A gRPC frame around msg. */
static size_t frame(uint8_t *out, const uint8_t *msg, size_t n)
{
	out[0] = 0;
	out[1] = out[2] = out[3] = 0;
	out[4] = (uint8_t)n;
	memcpy(out + 5, msg, n);
	return n + 5;
}

static void test_answers(void **state)
{
	/* status {}, ok_response { headers [{header {x-u: al}}, {header {x-a: 1}, append {true}}],
	 * headers_to_remove ["authorization"], response_headers_to_add [{header {x-r: ok}}] } */
	static const uint8_t ok[] = {
		0x0a, 0x00, 0x1a, 0x39,
		0x12, 0x0b, 0x0a, 0x09, 0x0a, 0x03, 'x', '-', 'u', 0x12, 0x02, 'a', 'l',
		0x12, 0x0e, 0x0a, 0x08, 0x0a, 0x03, 'x', '-', 'a', 0x12, 0x01, '1', 0x12, 0x02, 0x08, 0x01,
		0x2a, 0x0d, 'a', 'u', 't', 'h', 'o', 'r', 'i', 'z', 'a', 't', 'i', 'o', 'n',
		0x32, 0x0b, 0x0a, 0x09, 0x0a, 0x03, 'x', '-', 'r', 0x12, 0x02, 'o', 'k',
	};
	/* status {code 7}, denied_response { status {code 418}, headers [{header {x-d: no}}], body "tea" } */
	static const uint8_t denied[] = {
		0x0a, 0x02, 0x08, 0x07, 0x12, 0x17,
		0x0a, 0x03, 0x08, 0xa2, 0x03,
		0x12, 0x0b, 0x0a, 0x09, 0x0a, 0x03, 'x', '-', 'd', 0x12, 0x02, 'n', 'o',
		0x1a, 0x03, 't', 'e', 'a',
	};
	/* ok_response { headers [{header {x-e: "a\r\nb"}}] }: refused */
	static const uint8_t crlf[] = {
		0x1a, 0x0f, 0x12, 0x0d, 0x0a, 0x0b, 0x0a, 0x03, 'x', '-', 'e', 0x12, 0x04, 'a', '\r', '\n', 'b',
	};
	uint8_t b[128];
	struct sn_xa_answer a;
	const char *why;
	(void)state;

	assert_int_equal(sn_xa_answer_read(b, frame(b, ok, sizeof(ok)), &a, &why), 0);
	assert_int_equal(a.code, 0);
	assert_int_equal(a.n_headers, 2);
	assert_true(sn_str_eq_cstr(a.headers[0].key, "x-u") && sn_str_eq_cstr(a.headers[0].value, "al"));
	assert_false(a.headers[0].append);
	assert_true(a.headers[1].append);
	assert_int_equal(a.n_remove, 1);
	assert_true(sn_str_eq_cstr(a.remove[0], "authorization"));
	assert_int_equal(a.n_response, 1);
	assert_true(sn_str_eq_cstr(a.response[0].value, "ok"));

	assert_int_equal(sn_xa_answer_read(b, frame(b, denied, sizeof(denied)), &a, &why), 0);
	assert_int_equal(a.code, 7);
	assert_int_equal(a.denied_status, 418);
	assert_true(sn_str_eq_cstr(a.denied_body, "tea"));
	assert_int_equal(a.n_headers, 1);

	assert_int_equal(sn_xa_answer_read(b, frame(b, crlf, sizeof(crlf)), &a, &why), -1);
	assert_string_equal(why, "a header value with control characters");
	size_t n = frame(b, ok, sizeof(ok));
	assert_int_equal(sn_xa_answer_read(b, n - 1, &a, &why), -1);   /* cut short */
	b[0] = 1;
	assert_int_equal(sn_xa_answer_read(b, n, &a, &why), -1);       /* compressed */
	assert_int_equal(sn_xa_answer_read(b, 3, &a, &why), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writer_nests_with_minimal_lengths),
		cmocka_unit_test(test_reader_bounds),
		cmocka_unit_test(test_check_request_fields),
		cmocka_unit_test(test_answers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
