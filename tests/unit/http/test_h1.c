/* Unit tests for the HTTP/1.1 parser, chunked scanner and writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sinew/h1.h"

#define MAX_HDRS 100

static struct sn_h1_header hdrs[MAX_HDRS];

/* Parses from an exact-size heap copy so ASan catches over-reads. */
static int preq_n(const char *s, size_t n, struct sn_h1_request *req, const struct sn_h1_limits *lim)
{
	char *b = malloc(n ? n : 1);
	int r;

	assert_non_null(b);
	memcpy(b, s, n);
	r = sn_h1_parse_request(b, n, req, hdrs, MAX_HDRS, lim);
	free(b);
	return r;
}

static int preq(const char *s, struct sn_h1_request *req)
{
	return sn_h1_parse_request(s, strlen(s), req, hdrs, MAX_HDRS, NULL);
}

static int pres(const char *s, struct sn_h1_response *res, const char *method)
{
	return sn_h1_parse_response(s, strlen(s), res, hdrs, MAX_HDRS, NULL,
				    sn_str_make(method, strlen(method)));
}

static void assert_str(struct sn_str s, const char *want)
{
	char got[512];
	size_t n = SN_MIN(s.len, sizeof(got) - 1);

	memcpy(got, s.p ? s.p : "", s.p ? n : 0);
	got[s.p ? n : 0] = '\0';
	assert_string_equal(got, want);
	assert_int_equal(s.len, strlen(want));
}

/* Literal with its length, so embedded NULs count. */
#define BAD(n, m, st) { n, m, sizeof(m) - 1, st }
#define CHK(n, m, consumed, done, body) { n, m, sizeof(m) - 1, consumed, done, body }

struct bad_case {
	const char *name;
	const char *msg;
	size_t len; /* 0: strlen(msg) */
	int status;
};

/* Every prefix must give INCOMPLETE or the same error: the error is
 * decided as soon as the bytes make it certain, never retracted. */
static void check_prefixes_request(const char *msg, size_t len, int full_r,
				   const struct sn_h1_request *full, const struct sn_h1_limits *lim)
{
	for (size_t n = 0; n < len; n++) {
		struct sn_h1_request req;
		int r = preq_n(msg, n, &req, lim);

		if (r == SN_H1_INCOMPLETE)
			continue;
		if (full_r > 0) {
			if ((size_t)full_r > n)
				fail_msg("prefix %zu of a %d-byte head returned %d", n, full_r, r);
			assert_int_equal(r, full_r);
		} else {
			assert_int_equal(r, full_r);
			assert_int_equal(req.err_status, full->err_status);
			assert_string_equal(req.err_reason, full->err_reason);
		}
	}
}

static void run_bad_requests(const struct bad_case *cases, size_t n, const struct sn_h1_limits *lim)
{
	for (size_t i = 0; i < n; i++) {
		struct sn_h1_request req;
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].msg);
		int r = preq_n(cases[i].msg, len, &req, lim);

		print_message("request case: %s\n", cases[i].name);
		assert_int_equal(r, SN_H1_ERROR);
		assert_int_equal(req.err_status, cases[i].status);
		assert_non_null(req.err_reason);
		check_prefixes_request(cases[i].msg, len, r, &req, lim);
	}
}

/* Requests. */

static void test_request_simple(void **state)
{
	struct sn_h1_request req;
	const char *m = "GET /reviews/1?x=y HTTP/1.1\r\nHost: reviews:9080\r\nUser-Agent: curl/8\r\n"
			"Accept:*/*\r\nX-Empty:\r\nX-Ws: \t a b \t\r\n\r\n";
	int r = preq(m, &req);

	assert_int_equal(r, (int)strlen(m));
	assert_str(req.method, "GET");
	assert_str(req.target, "/reviews/1?x=y");
	assert_str(req.path, "/reviews/1?x=y");
	assert_str(req.authority, "reviews:9080");
	assert_int_equal(req.minor_version, 1);
	assert_int_equal(req.num_headers, 5);
	assert_ptr_equal(req.headers, hdrs);
	assert_str(req.headers[0].name, "Host");
	assert_str(req.headers[2].name, "Accept");
	assert_str(req.headers[2].value, "*/*");
	assert_str(req.headers[3].value, "");
	assert_str(req.headers[4].value, "a b");
	assert_int_equal(req.body, SN_H1_BODY_NONE);
	assert_int_equal(req.keep_alive, 1);
	assert_int_equal(req.expect_continue, 0);
	assert_int_equal(req.absolute_form, 0);
	assert_int_equal(req.upgrade, 0);
	assert_int_equal(req.err_status, 0);
}

static void test_request_bodies(void **state)
{
	struct sn_h1_request req;

	assert_true(preq("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n", &req) > 0);
	assert_int_equal(req.body, SN_H1_BODY_LENGTH);
	assert_int_equal(req.content_length, 42);
	assert_true(preq("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &req) > 0);
	assert_int_equal(req.body, SN_H1_BODY_LENGTH);
	assert_int_equal(req.content_length, 0);
	assert_true(preq("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n", &req) > 0);
	assert_int_equal(req.content_length, 7);
	assert_true(preq("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n", &req) > 0);
	assert_int_equal(req.content_length, INT64_MAX);
	assert_true(preq("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", &req) > 0);
	assert_int_equal(req.body, SN_H1_BODY_CHUNKED);
	assert_true(preq("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding:  ChUnKeD \t\r\n\r\n", &req) > 0);
	assert_int_equal(req.body, SN_H1_BODY_CHUNKED);
	assert_true(preq("POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\n", &req) > 0);
	assert_int_equal(req.body, SN_H1_BODY_LENGTH);
	assert_int_equal(req.authority.len, 0);
}

static const struct bad_case bad_requests[] = {
	/* Framing ambiguities. */
	BAD("cl+te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
	BAD("te+cl", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400),
	BAD("te+cl with bad te", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n", 400),
	BAD("dup cl equal", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
	BAD("dup cl differ", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n", 400),
	BAD("cl list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400),
	BAD("cl list nospace", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5\r\n\r\n", 400),
	BAD("cl empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400),
	BAD("cl minus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
	BAD("cl plus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400),
	BAD("cl hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400),
	BAD("cl alpha", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", 400),
	BAD("cl trailing garbage", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n", 400),
	BAD("cl inner space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400),
	BAD("cl 2^63", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", 400),
	BAD("cl 2^64", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", 400),
	BAD("cl huge", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
	BAD("te in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
	/* Line structure. */
	BAD("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),
	BAD("obs-fold tab", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400),
	BAD("ws before first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
	BAD("bare cr in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
	BAD("bare cr terminator", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
	BAD("bare cr in request line", "GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("cr cr lf", "GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", 400),
	BAD("bare cr end", "GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400),
	BAD("bare lf request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
	BAD("bare lf field", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400),
	BAD("bare lf end", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
	BAD("lf only", "GET / HTTP/1.1\n\n", 400),
	BAD("ws before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
	BAD("tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400),
	BAD("cl ws before colon", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", 400),
	BAD("empty name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", 400),
	BAD("no colon", "GET / HTTP/1.1\r\nHost: a\r\nfoo\r\n\r\n", 400),
	BAD("bad name char", "GET / HTTP/1.1\r\nHost: a\r\nX@Y: 1\r\n\r\n", 400),
	BAD("name with slash", "GET / HTTP/1.1\r\nHost: a\r\nX/Y: 1\r\n\r\n", 400),
	BAD("name with nul", "GET / HTTP/1.1\r\nHost: a\r\nX\0Y: 1\r\n\r\n", 400),
	BAD("name obs-text", "GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: 1\r\n\r\n", 400),
	BAD("value nul", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400),
	BAD("value ctl", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\x62\r\n\r\n", 400),
	BAD("value del", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400),
	BAD("value vt", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x0b\r\n\r\n", 400),
	/* Host. */
	BAD("missing host", "GET / HTTP/1.1\r\nX: a\r\n\r\n", 400),
	BAD("missing host absolute", "GET http://a/ HTTP/1.1\r\n\r\n", 400),
	BAD("two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
	BAD("two hosts 1.0", "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400),
	BAD("host empty", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),
	BAD("host space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
	BAD("host list", "GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", 400),
	BAD("host bad percent", "GET / HTTP/1.1\r\nHost: a%4\r\n\r\n", 400),
	BAD("host percent non-hex", "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400),
	BAD("host userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
	BAD("host slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
	BAD("host empty port", "GET / HTTP/1.1\r\nHost: a:\r\n\r\n", 400),
	BAD("host big port", "GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n", 400),
	BAD("host long port", "GET / HTTP/1.1\r\nHost: a:000080\r\n\r\n", 400),
	BAD("host bad port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400),
	BAD("host two colons", "GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", 400),
	BAD("host bad ipv6", "GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n", 400),
	BAD("host open ipv6", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
	BAD("host only port", "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 400),
	BAD("host bad with absolute", "GET http://a/ HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
	/* Request line. */
	BAD("bad method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("method with nul", "G\0T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("tab separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("double space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("no version", "GET /\r\nHost: a\r\n\r\n", 400),
	BAD("target ctl", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target del", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target obs-text", "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target fragment", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target tab", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("target space", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("version lowercase", "GET / http/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("version no dot", "GET / HTTP/11\r\nHost: a\r\n\r\n", 400),
	BAD("version 3 digits", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400),
	BAD("version trailing space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
	BAD("http/0.9 style", "GET /\r\n\r\n", 400),
	BAD("two leading crlf", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("leading lf", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("leading cr", "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("leading space", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	/* Target forms. */
	BAD("https absolute", "GET https://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("ftp absolute", "GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("http no slashes", "GET http:a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("absolute empty authority", "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("absolute userinfo", "GET http://u:p@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("absolute bad port", "GET http://a:x/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("asterisk for GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("asterisk with more", "OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	BAD("authority form for GET", "GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
	/* Connection. */
	BAD("connection not token", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close; x\r\n\r\n", 400),
	/* 505. */
	BAD("http/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
	BAD("http/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
	BAD("http/0.9", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
	BAD("http/3.0", "GET / HTTP/3.0\r\n", 505),
	/* 501. */
	BAD("te gzip chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
	BAD("te chunked identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 501),
	BAD("te identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501),
	BAD("te xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501),
	BAD("te chunkedx", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n", 501),
	BAD("te chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 501),
	BAD("te trailing comma", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n", 501),
	BAD("te quoted", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", 501),
	BAD("te empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", 501),
	BAD("te repeated", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
	BAD("te repeated mixed", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
	BAD("connect", "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501),
	/* 417. */
	BAD("expect other", "POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417),
	BAD("expect list", "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, x\r\n\r\n", 417),
	BAD("expect empty", "POST / HTTP/1.1\r\nHost: a\r\nExpect:\r\n\r\n", 417),
	BAD("expect other 1.0", "POST / HTTP/1.0\r\nExpect: x\r\n\r\n", 417),
};

static void test_request_refusals(void **state)
{
	run_bad_requests(bad_requests, SN_ARRAY_LEN(bad_requests), NULL);
}

/* Every byte value in a field name, a field value and a target: accepted
 * exactly when the RFC's grammar (as narrowed by the doc) allows it. */
static void test_request_byte_classes(void **state)
{
	for (int c = 0; c < 256; c++) {
		char m[128];
		struct sn_h1_request req;
		int tchar = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
		int vchar = (c >= 0x21 && c <= 0x7e) || c >= 0x80 || c == ' ' || c == '\t';
		int target = c >= 0x21 && c <= 0x7e && c != '#';
		int n, r;

		print_message("byte 0x%02x\n", c);
		n = snprintf(m, sizeof(m), "GET / HTTP/1.1\r\nHost: a\r\nX%cY: 1\r\n\r\n", c);
		m[27] = (char)c;
		r = preq_n(m, (size_t)n, &req, NULL);
		assert_int_equal(r > 0, tchar || c == ':');
		n = snprintf(m, sizeof(m), "GET / HTTP/1.1\r\nHost: a\r\nX: a%cb\r\n\r\n", c);
		m[28] = (char)c;
		r = preq_n(m, (size_t)n, &req, NULL);
		assert_int_equal(r > 0, vchar);
		n = snprintf(m, sizeof(m), "GET /a%cb HTTP/1.1\r\nHost: a\r\n\r\n", c);
		m[6] = (char)c;
		r = preq_n(m, (size_t)n, &req, NULL);
		assert_int_equal(r > 0, target);
		n = snprintf(m, sizeof(m), "G%cT / HTTP/1.1\r\nHost: a\r\n\r\n", c);
		m[1] = (char)c;
		r = preq_n(m, (size_t)n, &req, NULL);
		assert_int_equal(r > 0, tchar);
	}
}

/* Long values are scanned a word at a time: a bad byte at any offset of
 * any word must still be found, and good high bytes must not stop it. */
static void test_request_value_scan_offsets(void **state)
{
	static const unsigned char bad[] = { 0x00, 0x01, 0x0a, 0x0d, 0x1f, 0x7f };
	static const unsigned char good[] = { 0x20, 0x09, 0x7e, 0x80, 0xa0, 0xff, 0x21 };
	const char *pre = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
	size_t plen = strlen(pre);
	char m[128];

	for (size_t vlen = 1; vlen < 40; vlen++) {
		for (size_t at = 0; at < vlen; at++) {
			struct sn_h1_request req;
			size_t n;

			memcpy(m, pre, plen);
			memset(m + plen, 'v', vlen);
			memcpy(m + plen + vlen, "v\r\n\r\n", 5);
			n = plen + vlen + 5;
			for (size_t i = 0; i < sizeof(bad); i++) {
				m[plen + at] = (char)bad[i];
				assert_int_equal(preq_n(m, n, &req, NULL), SN_H1_ERROR);
			}
			for (size_t i = 0; i < sizeof(good); i++) {
				m[plen + at] = (char)good[i];
				assert_int_equal(preq_n(m, n, &req, NULL), (int)n);
				assert_int_equal(req.headers[1].value.len, vlen + 1 - (at == 0 && (good[i] == 0x20 || good[i] == 0x09)));
			}
		}
	}
}

static void test_request_leading_crlf(void **state)
{
	struct sn_h1_request req;
	const char *m = "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";

	assert_int_equal(preq(m, &req), (int)strlen(m));
	assert_str(req.method, "GET");
	assert_int_equal(preq("\r", &req), SN_H1_INCOMPLETE);
	assert_int_equal(preq("\r\n", &req), SN_H1_INCOMPLETE);
}

static void test_request_absolute_form(void **state)
{
	struct sn_h1_request req;

	assert_true(preq("GET http://reviews:9080/path?x HTTP/1.1\r\nHost: other:1\r\n\r\n", &req) > 0);
	assert_int_equal(req.absolute_form, 1);
	assert_str(req.target, "http://reviews:9080/path?x");
	assert_str(req.authority, "reviews:9080");
	assert_str(req.path, "/path?x");

	assert_true(preq("GET HTTP://Reviews HTTP/1.1\r\nHost: x\r\n\r\n", &req) > 0);
	assert_int_equal(req.absolute_form, 1);
	assert_str(req.authority, "Reviews");
	assert_str(req.path, "/");

	assert_true(preq("GET http://[::1]:8080/ HTTP/1.0\r\n\r\n", &req) > 0);
	assert_str(req.authority, "[::1]:8080");
	assert_str(req.path, "/");

	assert_true(preq("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &req) > 0);
	assert_str(req.path, "*");
	assert_str(req.authority, "a");
	assert_int_equal(req.absolute_form, 0);

	assert_true(preq("GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n", &req) > 0);
	assert_str(req.authority, "[2001:db8::1]");
	assert_true(preq("GET / HTTP/1.1\r\nHost: my-svc.ns_1.svc~x:65535\r\n\r\n", &req) > 0);

	/* An empty path with a query: origin-form "/?x=1" (RFC 9112 3.2.1),
	 * the query as path and a flag for the "/". */
	assert_true(preq("GET http://host?x=1 HTTP/1.1\r\nHost: host\r\n\r\n", &req) > 0);
	assert_int_equal(req.absolute_form, 1);
	assert_int_equal(req.path_slash, 1);
	assert_str(req.authority, "host");
	assert_str(req.path, "?x=1");
	assert_true(preq("GET http://host/?x=1 HTTP/1.1\r\nHost: host\r\n\r\n", &req) > 0);
	assert_int_equal(req.path_slash, 0);
	assert_str(req.path, "/?x=1");

	/* reg-names with sub-delims and percent-encoding are valid. */
	assert_true(preq("GET / HTTP/1.1\r\nHost: 0.0.0.0=5000\r\n\r\n", &req) > 0);
	assert_str(req.authority, "0.0.0.0=5000");
	assert_true(preq("GET / HTTP/1.1\r\nHost: a!$&'()*+;=b:80\r\n\r\n", &req) > 0);
	assert_true(preq("GET / HTTP/1.1\r\nHost: caf%C3%A9\r\n\r\n", &req) > 0);
	assert_true(preq("GET http://0.0.0.0=5000/x HTTP/1.1\r\nHost: y\r\n\r\n", &req) > 0);
	assert_str(req.authority, "0.0.0.0=5000");
}

/* A Content-Length that can never be accepted is refused as soon as its
 * line ends, not when the head does: a client can't hold the proxy with
 * a head that never ends after one. */
static void test_request_content_length_early(void **state)
{
	struct sn_h1_request req;
	static const char *const heads[] = {
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\nX-Slow: ",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\nX",
		"POST / HTTP/1.1\r\nContent-Length: 1x\r\n",
	};
	static const char *const reasons[] = { "duplicate content-length", "invalid content-length",
					      "invalid content-length" };

	for (size_t i = 0; i < SN_ARRAY_LEN(heads); i++) {
		assert_int_equal(preq(heads[i], &req), SN_H1_ERROR);
		assert_int_equal(req.err_status, 400);
		assert_string_equal(req.err_reason, reasons[i]);
	}
	/* Still incomplete until the line ends. */
	assert_int_equal(preq("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x", &req), SN_H1_INCOMPLETE);
}

static void test_request_keep_alive(void **state)
{
	static const struct {
		const char *msg;
		int keep_alive;
	} cases[] = {
		{ "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: x-foo\r\nConnection: ,close,\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", 1 },
		{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", 1 },
		{ "GET / HTTP/1.0\r\n\r\n", 0 },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 1 },
		{ "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1 },
		{ "GET / HTTP/1.0\r\nConnection: te, keep-alive\r\n\r\n", 1 },
		{ "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0 },
		{ "GET / HTTP/1.0\r\nKeep-Alive: timeout=5\r\n\r\n", 0 },
	};

	for (size_t i = 0; i < SN_ARRAY_LEN(cases); i++) {
		struct sn_h1_request req;

		print_message("case %zu: %s", i, cases[i].msg);
		assert_int_equal(preq(cases[i].msg, &req), (int)strlen(cases[i].msg));
		assert_int_equal(req.keep_alive, cases[i].keep_alive);
	}
}

static void test_request_expect_upgrade(void **state)
{
	struct sn_h1_request req;

	assert_true(preq("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n", &req) > 0);
	assert_int_equal(req.expect_continue, 1);
	/* RFC 9110 10.1.1: ignored in HTTP/1.0. */
	assert_true(preq("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", &req) > 0);
	assert_int_equal(req.expect_continue, 0);
	assert_true(preq("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", &req) > 0);
	assert_int_equal(req.upgrade, 1);
	assert_true(preq("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", &req) > 0);
	assert_int_equal(req.upgrade, 0);
	assert_true(preq("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", &req) > 0);
	assert_int_equal(req.upgrade, 0);
	assert_true(preq("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", &req) > 0);
	assert_int_equal(req.upgrade, 0);
}

static void test_request_pipelined(void **state)
{
	const char *a = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n";
	const char *b = "POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n";
	char buf[256];
	struct sn_h1_request req;
	int r;

	snprintf(buf, sizeof(buf), "%s%sabc%s", a, b, a);
	r = preq(buf, &req);
	assert_int_equal(r, (int)strlen(a));
	assert_str(req.path, "/one");
	r = preq(buf + strlen(a), &req);
	assert_int_equal(r, (int)strlen(b));
	assert_str(req.path, "/two");
	assert_int_equal(req.content_length, 3);
	r = preq(buf + strlen(a) + strlen(b) + 3, &req);
	assert_int_equal(r, (int)strlen(a));
	/* A second head that is only partly there does not change the first. */
	assert_int_equal(preq_n(buf, strlen(a) + 5, &req, NULL), (int)strlen(a));
}

static int req_equal(const struct sn_h1_request *x, const struct sn_h1_request *y)
{
	if (!sn_str_eq(x->method, y->method) || !sn_str_eq(x->target, y->target) ||
	    !sn_str_eq(x->path, y->path) || !sn_str_eq(x->authority, y->authority) ||
	    x->minor_version != y->minor_version || x->num_headers != y->num_headers ||
	    x->body != y->body || x->content_length != y->content_length ||
	    x->keep_alive != y->keep_alive || x->expect_continue != y->expect_continue ||
	    x->absolute_form != y->absolute_form || x->upgrade != y->upgrade)
		return 0;
	return 1;
}

/* The caller's pattern: same buffer, one more byte each call. */
static void test_request_byte_at_a_time(void **state)
{
	static const char *const msgs[] = {
		"GET /reviews/1 HTTP/1.1\r\nHost: reviews:9080\r\nUser-Agent: x\r\nAccept: */*\r\n\r\n",
		"\r\nPOST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
		"GET http://a:1/x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
		"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789",
	};
	char buf[512];

	for (size_t i = 0; i < SN_ARRAY_LEN(msgs); i++) {
		struct sn_h1_request one, inc;
		struct sn_h1_header h2[MAX_HDRS];
		size_t len = strlen(msgs[i]);
		int full, r = SN_H1_INCOMPLETE;
		size_t n;

		memcpy(buf, msgs[i], len);
		full = sn_h1_parse_request(buf, len, &one, hdrs, MAX_HDRS, NULL);
		assert_true(full > 0);
		for (n = 0; n <= len; n++) {
			r = sn_h1_parse_request(buf, n, &inc, h2, MAX_HDRS, NULL);
			if (r != SN_H1_INCOMPLETE)
				break;
		}
		assert_int_equal(r, full);
		assert_int_equal(n, (size_t)full);
		assert_true(req_equal(&one, &inc));
		for (size_t k = 0; k < one.num_headers; k++) {
			assert_true(sn_str_eq(one.headers[k].name, inc.headers[k].name));
			assert_true(sn_str_eq(one.headers[k].value, inc.headers[k].value));
		}
	}
	/* And for every refusal: no prefix gives a different answer (this
	 * is also checked inside run_bad_requests). */
}

/* Limits. */

static char *repeat(char *p, int c, size_t n)
{
	memset(p, c, n);
	return p + n;
}

static void test_request_limits_line(void **state)
{
	const struct sn_h1_limits lim = { 64, 1024, 10 };
	struct sn_h1_request req;
	char buf[2048], *p;
	size_t line;

	/* Request line of exactly 64 bytes with CRLF: accepted. */
	p = buf;
	memcpy(p, "GET /", 5);
	p = repeat(p + 5, 'a', 64 - 5 - 11);
	memcpy(p, " HTTP/1.1\r\n", 11);
	p += 11;
	line = (size_t)(p - buf);
	assert_int_equal(line, 64);
	memcpy(p, "Host: a\r\n\r\n", 11);
	assert_int_equal(preq_n(buf, line + 11, &req, &lim), (int)line + 11);

	/* 65 bytes: 414, and already once 64 bytes without LF are in. */
	p = buf;
	memcpy(p, "GET /", 5);
	p = repeat(p + 5, 'a', 65 - 5 - 11);
	memcpy(p, " HTTP/1.1\r\nHost: a\r\n\r\n", 22);
	assert_int_equal(preq_n(buf, 65 + 11, &req, &lim), SN_H1_ERROR);
	assert_int_equal(req.err_status, 414);
	assert_int_equal(preq_n(buf, 63, &req, &lim), SN_H1_INCOMPLETE);
	assert_int_equal(preq_n(buf, 64, &req, &lim), SN_H1_ERROR);
	assert_int_equal(req.err_status, 414);

	/* Default limit: a long target without an end. */
	static char big[SN_H1_DEFAULT_MAX_REQUEST_LINE + 16];
	memcpy(big, "GET /", 5);
	memset(big + 5, 'x', sizeof(big) - 5);
	assert_int_equal(preq_n(big, SN_H1_DEFAULT_MAX_REQUEST_LINE - 1, &req, NULL), SN_H1_INCOMPLETE);
	assert_int_equal(preq_n(big, SN_H1_DEFAULT_MAX_REQUEST_LINE, &req, NULL), SN_H1_ERROR);
	assert_int_equal(req.err_status, 414);
	/* An invalid byte before the limit is still a 400. */
	big[100] = '\x01';
	assert_int_equal(preq_n(big, sizeof(big), &req, NULL), SN_H1_ERROR);
	assert_int_equal(req.err_status, 400);
}

static void test_request_limits_head(void **state)
{
	const struct sn_h1_limits lim = { 64, 200, 10 };
	struct sn_h1_request req;
	char buf[1024], *p;
	size_t n;

	/* Head of exactly 200 bytes: accepted; 201: 431. */
	p = buf;
	memcpy(p, "GET / HTTP/1.1\r\nHost: a\r\nX: ", 28);
	n = 200 - 28 - 4;
	p = repeat(p + 28, 'v', n);
	memcpy(p, "\r\n\r\n", 4);
	assert_int_equal(preq_n(buf, 200, &req, &lim), 200);
	p = buf + 28;
	p = repeat(p, 'v', n + 1);
	memcpy(p, "\r\n\r\n", 4);
	assert_int_equal(preq_n(buf, 201, &req, &lim), SN_H1_ERROR);
	assert_int_equal(req.err_status, 431);
	assert_int_equal(preq_n(buf, 199, &req, &lim), SN_H1_INCOMPLETE);
	assert_int_equal(preq_n(buf, 200, &req, &lim), SN_H1_ERROR);
	assert_int_equal(req.err_status, 431);

	/* A head limit smaller than the request line limit: 431 first. */
	const struct sn_h1_limits lim2 = { 1000, 50, 10 };
	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "GET /", 5);
	assert_int_equal(preq_n(buf, 50, &req, &lim2), SN_H1_ERROR);
	assert_int_equal(req.err_status, 431);
	assert_int_equal(preq_n(buf, 49, &req, &lim2), SN_H1_INCOMPLETE);

	/* Default: many small headers past 64 KiB (each under the count). */
	static char big[SN_H1_DEFAULT_MAX_HEAD_BYTES + 100];
	const struct sn_h1_limits lim3 = { 0, 0, 10000 };
	struct sn_h1_header many[10000];
	p = big;
	memcpy(p, "GET / HTTP/1.1\r\nHost: a\r\n", 25);
	p += 25;
	while (p + 20 < big + sizeof(big)) {
		memcpy(p, "X-Long: 0123456789\r\n", 20);
		p += 20;
	}
	assert_int_equal(sn_h1_parse_request(big, (size_t)(p - big), &req, many, 10000, &lim3), SN_H1_ERROR);
	assert_int_equal(req.err_status, 431);
}

static void test_request_limits_count(void **state)
{
	const struct sn_h1_limits lim = { 0, 0, 5 };
	struct sn_h1_request req;
	const char *five = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
	const char *six = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n";

	assert_int_equal(preq_n(five, strlen(five), &req, &lim), (int)strlen(five));
	assert_int_equal(req.num_headers, 5);
	assert_int_equal(preq_n(six, strlen(six), &req, &lim), SN_H1_ERROR);
	assert_int_equal(req.err_status, 431);
	/* Known as soon as the sixth field starts. */
	assert_int_equal(preq_n(six, strlen(five) - 2, &req, &lim), SN_H1_INCOMPLETE);
	assert_int_equal(preq_n(six, strlen(five) - 1, &req, &lim), SN_H1_ERROR);
	assert_int_equal(req.err_status, 431);
	assert_int_equal(preq_n(six, (size_t)(strstr(six, "E:") - six) + 1, &req, &lim), SN_H1_ERROR);
	assert_int_equal(req.err_status, 431);

	/* Default count: 100 fields pass, 101 do not. */
	char buf[4096], *p = buf;
	p += snprintf(p, sizeof(buf) - (size_t)(p - buf), "GET / HTTP/1.1\r\n");
	for (int i = 0; i < SN_H1_DEFAULT_MAX_HEADERS; i++)
		p += snprintf(p, sizeof(buf) - (size_t)(p - buf), "%s: %d\r\n", i == 0 ? "Host" : "X", i);
	memcpy(p, "\r\n", 2);
	assert_int_equal(preq_n(buf, (size_t)(p + 2 - buf), &req, NULL), (int)(p + 2 - buf));
	p += snprintf(p, sizeof(buf) - (size_t)(p - buf), "Y: 1\r\n\r\n");
	assert_int_equal(preq_n(buf, (size_t)(p - buf), &req, NULL), SN_H1_ERROR);
	assert_int_equal(req.err_status, 431);

	/* A caller array smaller than the limit: 431, never an overflow. */
	struct sn_h1_header two[2];
	assert_int_equal(sn_h1_parse_request(five, strlen(five), &req, two, 2, NULL), SN_H1_ERROR);
	assert_int_equal(req.err_status, 431);
}

/* Responses. */

static void test_response_basic(void **state)
{
	struct sn_h1_response res;
	const char *m = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer: x\r\n\r\nhello world!";

	assert_int_equal(pres(m, &res, "GET"), (int)(strlen(m) - 12));
	assert_int_equal(res.status, 200);
	assert_int_equal(res.minor_version, 1);
	assert_str(res.reason, "OK");
	assert_int_equal(res.num_headers, 2);
	assert_int_equal(res.body, SN_H1_BODY_LENGTH);
	assert_int_equal(res.content_length, 12);
	assert_int_equal(res.keep_alive, 1);

	assert_true(pres("HTTP/1.1 404 Not  Found \xff\r\nContent-Length: 0\r\n\r\n", &res, "GET") > 0);
	assert_int_equal(res.status, 404);
	assert_int_equal(res.reason.len, 12);
	assert_true(pres("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", &res, "GET") > 0);
	assert_int_equal(res.reason.len, 0);
	assert_true(pres("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", &res, "GET") > 0);
	assert_int_equal(res.reason.len, 0);
}

static void test_response_body_rules(void **state)
{
	static const struct {
		const char *msg;
		const char *method;
		enum sn_h1_body_kind body;
		int keep_alive;
	} cases[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", SN_H1_BODY_LENGTH, 1 },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", "GET", SN_H1_BODY_LENGTH, 1 },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", SN_H1_BODY_CHUNKED, 1 },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n", "GET", SN_H1_BODY_CHUNKED, 1 },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", SN_H1_BODY_CHUNKED, 1 },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "GET", SN_H1_BODY_UNTIL_CLOSE, 0 },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET", SN_H1_BODY_UNTIL_CLOSE, 0 },
		{ "HTTP/1.1 200 OK\r\n\r\n", "GET", SN_H1_BODY_UNTIL_CLOSE, 0 },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", SN_H1_BODY_NONE, 1 },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "HEAD", SN_H1_BODY_NONE, 1 },
		{ "HTTP/1.1 200 OK\r\n\r\n", "HEAD", SN_H1_BODY_NONE, 1 },
		{ "HTTP/1.1 100 Continue\r\n\r\n", "POST", SN_H1_BODY_NONE, 1 },
		{ "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", "GET", SN_H1_BODY_NONE, 1 },
		{ "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", "GET", SN_H1_BODY_NONE, 1 },
		{ "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", "GET", SN_H1_BODY_NONE, 1 },
		{ "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", "GET", SN_H1_BODY_NONE, 1 },
		{ "HTTP/1.1 200 Connection Established\r\n\r\n", "CONNECT", SN_H1_BODY_NONE, 1 },
		{ "HTTP/1.1 407 Auth\r\nContent-Length: 3\r\n\r\n", "CONNECT", SN_H1_BODY_LENGTH, 1 },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", "GET", SN_H1_BODY_LENGTH, 0 },
		{ "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", SN_H1_BODY_LENGTH, 0 },
		{ "HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n", "GET", SN_H1_BODY_LENGTH, 1 },
		{ "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", "GET", SN_H1_BODY_UNTIL_CLOSE, 0 },
	};

	for (size_t i = 0; i < SN_ARRAY_LEN(cases); i++) {
		struct sn_h1_response res;

		print_message("case %zu (%s): %s", i, cases[i].method, cases[i].msg);
		assert_int_equal(pres(cases[i].msg, &res, cases[i].method), (int)strlen(cases[i].msg));
		assert_int_equal(res.body, cases[i].body);
		assert_int_equal(res.keep_alive, cases[i].keep_alive);
		if (res.body == SN_H1_BODY_LENGTH)
			assert_int_equal(res.content_length, 5 - 2 * (strstr(cases[i].msg, "407") != NULL));
	}
}

static const struct bad_case bad_responses[] = {
	BAD("cl+te", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 502),
	BAD("cl+te on 204", "HTTP/1.1 204 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 502),
	BAD("cl differ", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 502),
	BAD("cl list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", 502),
	BAD("cl bad", "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", 502),
	BAD("cl overflow", "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\n", 502),
	BAD("te 1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 502),
	BAD("te chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 502),
	BAD("te empty element", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,,chunked\r\n\r\n", 502),
	BAD("te trailing comma", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n", 502),
	BAD("te params", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip;q=1, chunked\r\n\r\n", 502),
	BAD("te empty", "HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n", 502),
	BAD("status 099", "HTTP/1.1 099 X\r\n\r\n", 502),
	BAD("status 600", "HTTP/1.1 600 X\r\n\r\n", 502),
	BAD("status 2 digits", "HTTP/1.1 20 X\r\n\r\n", 502),
	BAD("status 4 digits", "HTTP/1.1 2000 X\r\n\r\n", 502),
	BAD("status letters", "HTTP/1.1 2xx X\r\n\r\n", 502),
	BAD("status sign", "HTTP/1.1 +20 X\r\n\r\n", 502),
	BAD("version 2", "HTTP/2.0 200 OK\r\n\r\n", 502),
	BAD("version 1.2", "HTTP/1.2 200 OK\r\n\r\n", 502),
	BAD("version lowercase", "http/1.1 200 OK\r\n\r\n", 502),
	BAD("no space", "HTTP/1.1200 OK\r\n\r\n", 502),
	BAD("two spaces", "HTTP/1.1  200 OK\r\n\r\n", 502),
	BAD("reason ctl", "HTTP/1.1 200 O\x01K\r\n\r\n", 502),
	BAD("reason nul", "HTTP/1.1 200 O\0K\r\n\r\n", 502),
	BAD("bare lf status", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", 502),
	BAD("bare lf field", "HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n", 502),
	BAD("bare cr", "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", 502),
	BAD("obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", 502),
	BAD("ws before colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", 502),
	BAD("bad name", "HTTP/1.1 200 OK\r\nX(: 0\r\n\r\n", 502),
	BAD("value ctl", "HTTP/1.1 200 OK\r\nX: \x1b\r\n\r\n", 502),
	BAD("connection bad", "HTTP/1.1 200 OK\r\nConnection: a b\r\n\r\n", 502),
	BAD("leading crlf", "\r\nHTTP/1.1 200 OK\r\n\r\n", 502),
};

static void test_response_refusals(void **state)
{
	for (size_t i = 0; i < SN_ARRAY_LEN(bad_responses); i++) {
		struct sn_h1_response res, pr;
		const char *m = bad_responses[i].msg;
		size_t len = bad_responses[i].len ? bad_responses[i].len : strlen(m);
		char *b = malloc(len);
		int r;

		print_message("response case: %s\n", bad_responses[i].name);
		memcpy(b, m, len);
		r = sn_h1_parse_response(b, len, &res, hdrs, MAX_HDRS, NULL, SN_STR_LIT("GET"));
		assert_int_equal(r, SN_H1_ERROR);
		assert_int_equal(res.err_status, bad_responses[i].status);
		for (size_t n = 0; n < len; n++) {
			int pr_r = sn_h1_parse_response(b, n, &pr, hdrs, MAX_HDRS, NULL, SN_STR_LIT("GET"));
			if (pr_r != SN_H1_INCOMPLETE) {
				assert_int_equal(pr_r, SN_H1_ERROR);
				assert_string_equal(pr.err_reason, res.err_reason);
			}
		}
		free(b);
	}
}

static void test_response_limits_and_1xx(void **state)
{
	const struct sn_h1_limits lim = { 32, 100, 2 };
	struct sn_h1_response res;
	char buf[256];
	int r;

	memset(buf, 'a', sizeof(buf));
	memcpy(buf, "HTTP/1.1 200 ", 13);
	assert_int_equal(sn_h1_parse_response(buf, 31, &res, hdrs, MAX_HDRS, &lim, SN_STR_LIT("GET")), SN_H1_INCOMPLETE);
	assert_int_equal(sn_h1_parse_response(buf, 32, &res, hdrs, MAX_HDRS, &lim, SN_STR_LIT("GET")), SN_H1_ERROR);
	assert_int_equal(res.err_status, 502);
	const char *three = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
	assert_int_equal(sn_h1_parse_response(three, strlen(three), &res, hdrs, MAX_HDRS, &lim, SN_STR_LIT("GET")), SN_H1_ERROR);
	assert_int_equal(res.err_status, 502);

	/* 100 Continue then the final response in one buffer. */
	const char *m = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
	r = pres(m, &res, "POST");
	assert_int_equal(r, 25);
	assert_int_equal(res.status, 100);
	assert_int_equal(res.body, SN_H1_BODY_NONE);
	assert_int_equal(pres(m + r, &res, "POST"), (int)strlen(m) - 25);
	assert_int_equal(res.status, 201);
	assert_int_equal(res.body, SN_H1_BODY_LENGTH);
}

static void test_response_byte_at_a_time(void **state)
{
	const char *m = "HTTP/1.1 200 OK\r\nDate: x\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n";
	size_t len = strlen(m);
	struct sn_h1_response one, inc;
	int full = pres(m, &one, "GET"), r = SN_H1_INCOMPLETE;
	size_t n;

	assert_int_equal(full, (int)len);
	for (n = 0; n <= len; n++) {
		r = sn_h1_parse_response(m, n, &inc, hdrs, MAX_HDRS, NULL, SN_STR_LIT("GET"));
		if (r != SN_H1_INCOMPLETE)
			break;
	}
	assert_int_equal(r, full);
	assert_int_equal(n, len);
	assert_int_equal(inc.status, one.status);
	assert_int_equal(inc.body, SN_H1_BODY_CHUNKED);
	assert_int_equal(inc.keep_alive, one.keep_alive);
	assert_int_equal(inc.num_headers, one.num_headers);
}

/* Chunked scanner. */

struct chunk_case {
	const char *name;
	const char *msg;
	size_t len;      /* 0: strlen */
	ssize_t consumed; /* -1: error */
	int done;
	uint64_t body;
};

static ssize_t scan_pieces(const char *msg, size_t len, size_t piece, int *done, uint64_t *body)
{
	struct sn_h1_chunked c;
	size_t off = 0;
	ssize_t total = 0;

	sn_h1_chunked_init(&c);
	*done = 0;
	while (off < len) {
		size_t n = SN_MIN(piece, len - off);
		char *b = malloc(n);
		ssize_t r;

		memcpy(b, msg + off, n);
		r = sn_h1_chunked_scan(&c, b, n, done);
		free(b);
		if (r < 0)
			return -1;
		total += r;
		off += (size_t)r;
		if (*done)
			break;
		assert_int_equal((size_t)r, n);
	}
	*body = c.body_bytes;
	return total;
}

static char long_ext[5000];
static char long_trailers[9000];

static const struct chunk_case chunk_cases[] = {
	CHK("simple", "5\r\nhello\r\n0\r\n\r\n", 15, 1, 5),
	CHK("two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 26, 1, 11),
	CHK("only last", "0\r\n\r\n", 5, 1, 0),
	CHK("hex upper", "A\r\n0123456789\r\n0\r\n\r\n", 20, 1, 10),
	CHK("hex lower", "a\r\n0123456789\r\n0\r\n\r\n", 20, 1, 10),
	CHK("leading zeros", "0005\r\nhello\r\n000\r\n\r\n", 20, 1, 5),
	CHK("16 digits", "0000000000000005\r\nhello\r\n0\r\n\r\n", 30, 1, 5),
	CHK("next message", "5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 15, 1, 5),
	CHK("extensions", "5;a=b;c=\"q \\\"x\\\\\";d\r\nhello\r\n0;last\r\n\r\n", 38, 1, 5),
	CHK("ext bws", "5 ; a = b\t;c\r\nhello\r\n0\r\n\r\n", 26, 1, 5),
	CHK("ext obs-text", "5;a=\"\xe9\"\r\nhello\r\n0\r\n\r\n", 21, 1, 5),
	CHK("trailers", "5\r\nhello\r\n0\r\nX-T: 1\r\nY:\r\nZ: a b\xff\r\n\r\n", 36, 1, 5),
	CHK("incomplete data", "5\r\nhel", 6, 0, 3),
	CHK("incomplete size", "5", 1, 0, 0),
	CHK("incomplete trailer", "0\r\nX: 1\r\n", 9, 0, 0),
	CHK("huge size, incomplete", "ffffffffffffffff\r\nab", 20, 0, 2),
	CHK("17 digits", "00000000000000005\r\nhello\r\n0\r\n\r\n", -1, 0, 0),
	CHK("sign", "-5\r\nhello\r\n0\r\n\r\n", -1, 0, 0),
	CHK("plus", "+5\r\nhello\r\n0\r\n\r\n", -1, 0, 0),
	CHK("0x", "0x5\r\nhello\r\n0\r\n\r\n", -1, 0, 0),
	CHK("empty size", "\r\nhello\r\n0\r\n\r\n", -1, 0, 0),
	CHK("leading space", " 5\r\nhello\r\n0\r\n\r\n", -1, 0, 0),
	CHK("trailing space", "5 \r\nhello\r\n0\r\n\r\n", -1, 0, 0),
	CHK("bare lf size", "5\nhello\r\n0\r\n\r\n", -1, 0, 0),
	CHK("bare cr size", "5\rhello\r\n0\r\n\r\n", -1, 0, 0),
	CHK("data too long", "5\r\nhelloX\r\n0\r\n\r\n", -1, 0, 0),
	CHK("data lf only", "5\r\nhello\n0\r\n\r\n", -1, 0, 0),
	CHK("data no crlf", "5\r\nhello0\r\n\r\n", -1, 0, 0),
	CHK("ext empty", "5;\r\nhello\r\n0\r\n\r\n", -1, 0, 0),
	CHK("ext no name", "5;=x\r\nhello\r\n0\r\n\r\n", -1, 0, 0),
	CHK("ext no value", "5;a=\r\nhello\r\n0\r\n\r\n", -1, 0, 0),
	CHK("ext two names", "5;a b\r\nhello\r\n0\r\n\r\n", -1, 0, 0),
	CHK("ext bad char", "5;a@\r\nhello\r\n0\r\n\r\n", -1, 0, 0),
	CHK("ext unterminated quote", "5;a=\"x\r\nhello\r\n0\r\n\r\n", -1, 0, 0),
	CHK("ext quote then junk", "5;a=\"x\"y\r\nhello\r\n0\r\n\r\n", -1, 0, 0),
	CHK("ext ctl", "5;a=b\x01\r\nhello\r\n0\r\n\r\n", -1, 0, 0),
	CHK("ext lf", "5;a\nhello\r\n0\r\n\r\n", -1, 0, 0),
	CHK("final bare lf", "0\r\n\n", -1, 0, 0),
	CHK("final cr cr", "0\r\n\r\r", -1, 0, 0),
	CHK("trailer obs-fold", "0\r\nX: a\r\n b\r\n\r\n", -1, 0, 0),
	CHK("trailer no colon", "0\r\nX\r\n\r\n", -1, 0, 0),
	CHK("trailer ws colon", "0\r\nX : a\r\n\r\n", -1, 0, 0),
	CHK("trailer empty name", "0\r\n: a\r\n\r\n", -1, 0, 0),
	CHK("trailer nul", "0\r\nX: a\0\r\n\r\n", -1, 0, 0),
	CHK("trailer bare lf", "0\r\nX: a\n\r\n", -1, 0, 0),
	CHK("trailer bare cr", "0\r\nX: a\rb\r\n\r\n", -1, 0, 0),
	CHK("nul size", "\0\r\n", -1, 0, 0),
	{ "long ext", long_ext, 0, -1, 0, 0 },
	{ "long trailers", long_trailers, 0, -1, 0, 0 },
};

static void fill_long_cases(void)
{
	char *p = long_ext;

	*p++ = '1';
	*p++ = ';';
	*p++ = 'a';
	*p++ = '=';
	memset(p, 'b', 4096);
	p += 4096;
	memcpy(p, "\r\nx\r\n0\r\n\r\n", 11);

	p = long_trailers;
	memcpy(p, "0\r\n", 3);
	p += 3;
	for (int i = 0; i < 410; i++) {
		memcpy(p, "X-Trailer: 0123456789\r\n", 21);
		p += 21;
	}
	memcpy(p, "\r\n", 3);
}

static void test_chunked_cases(void **state)
{
	fill_long_cases();
	for (size_t i = 0; i < SN_ARRAY_LEN(chunk_cases); i++) {
		const struct chunk_case *k = &chunk_cases[i];
		size_t len = k->len ? k->len : strlen(k->msg);
		int done, done1;
		uint64_t body, body1;
		ssize_t r, r1;

		print_message("chunked case: %s\n", k->name);
		r = scan_pieces(k->msg, len, len, &done, &body);
		assert_int_equal(r, k->consumed);
		if (r >= 0) {
			assert_int_equal(done, k->done);
			assert_int_equal(body, k->body);
		}
		/* One byte at a time gives the same answer. */
		r1 = scan_pieces(k->msg, len, 1, &done1, &body1);
		assert_int_equal(r1, r);
		if (r >= 0) {
			assert_int_equal(done1, done);
			assert_int_equal(body1, body);
		}
		/* Every two-piece split too. */
		for (size_t cut = 1; cut < len && len < 200; cut++) {
			struct sn_h1_chunked c;
			int d = 0;
			ssize_t a, b = 0;

			sn_h1_chunked_init(&c);
			a = sn_h1_chunked_scan(&c, k->msg, cut, &d);
			if (a >= 0 && !d)
				b = sn_h1_chunked_scan(&c, k->msg + cut, len - cut, &d);
			if (r < 0) {
				assert_true(a < 0 || b < 0);
			} else {
				assert_true(a >= 0 && b >= 0);
				assert_int_equal(a + b, r);
				assert_int_equal(d, done);
				assert_int_equal(c.body_bytes, body);
			}
		}
	}
}

/* sn_h1_chunked_next: framing and data never in one step; the data
 * stitched together is the decoded body, whatever the split. */
static void test_chunked_next(void **state)
{
	static const char body[] = "5;ext=\"q\"\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n"
				   "0\r\nx-trailer: 1\r\n\r\nNEXT";
	const size_t len = sizeof(body) - 1;

	for (size_t step = 1; step <= len; step++) {
		struct sn_h1_chunked c;
		char out[64];
		size_t got = 0, pos = 0;
		int done = 0;

		sn_h1_chunked_init(&c);
		while (!done && pos < len) {
			size_t avail = SN_MIN(step, len - pos), data;
			ssize_t r = sn_h1_chunked_next(&c, body + pos, avail, &data, &done);
			assert_true(r >= 0);
			if (data > 0) {
				assert_int_equal((size_t)r, data);
				memcpy(out + got, body + pos, data);
				got += data;
			}
			pos += (size_t)r;
			if (r == 0)
				assert_true(done);
		}
		assert_true(done);
		assert_int_equal(got, 31);
		assert_memory_equal(out, "helloabcdefghijklmnopqrstuvwxyz", 31);
		assert_string_equal(body + pos, "NEXT");
	}
	struct sn_h1_chunked c;
	size_t data;
	int done;
	sn_h1_chunked_init(&c);
	assert_int_equal(sn_h1_chunked_next(&c, "zz\r\n", 4, &data, &done), -1);
}

static void test_chunked_limits(void **state)
{
	struct sn_h1_chunked c;
	char line[4200];
	int done;

	/* A size line of exactly 4096 bytes (with CRLF) is fine. */
	memset(line, 'a', sizeof(line));
	memcpy(line, "1;a=", 4);
	memcpy(line + 4094, "\r\n", 2);
	sn_h1_chunked_init(&c);
	assert_int_equal(sn_h1_chunked_scan(&c, line, 4096, &done), 4096);
	assert_int_equal(c.remaining, 1);
	/* 4097: refused. */
	memset(line, 'a', sizeof(line));
	memcpy(line, "1;a=", 4);
	memcpy(line + 4095, "\r\n", 2);
	sn_h1_chunked_init(&c);
	assert_int_equal(sn_h1_chunked_scan(&c, line, 4097, &done), -1);
	/* Errors are sticky. */
	assert_int_equal(sn_h1_chunked_scan(&c, "0\r\n\r\n", 5, &done), -1);

	/* Trailers: 8192 bytes in total (after the last-chunk line, final
	 * CRLF included) are fine, 8193 are not. */
	static char t[8300];
	for (size_t extra = 0; extra < 2; extra++) {
		size_t k = 8192 - 7 + extra, n = 0;

		memcpy(t, "0\r\nX: ", 6);
		n = 6;
		memset(t + n, 'v', k);
		n += k;
		memcpy(t + n, "\r\n\r\n", 4);
		n += 4;
		assert_int_equal(n, 3 + 8192 + extra);
		sn_h1_chunked_init(&c);
		assert_int_equal(sn_h1_chunked_scan(&c, t, n, &done), extra ? -1 : (ssize_t)n);
		assert_int_equal(done, !extra);
	}

	/* After done, nothing more is consumed. */
	sn_h1_chunked_init(&c);
	assert_int_equal(sn_h1_chunked_scan(&c, "0\r\n\r\nxyz", 8, &done), 5);
	assert_int_equal(done, 1);
	assert_int_equal(sn_h1_chunked_scan(&c, "xyz", 3, &done), 0);
	assert_int_equal(done, 1);
	/* Empty input is not an error. */
	sn_h1_chunked_init(&c);
	assert_int_equal(sn_h1_chunked_scan(&c, "", 0, &done), 0);
	assert_int_equal(done, 0);
}

/* Headers helpers. */

static void test_find_header(void **state)
{
	struct sn_h1_header h[] = {
		{ SN_STR_LIT("Host"), SN_STR_LIT("a") },
		{ SN_STR_LIT("X-Foo"), SN_STR_LIT("1") },
		{ SN_STR_LIT("x-foo"), SN_STR_LIT("2") },
		{ SN_STR_LIT("X-Foobar"), SN_STR_LIT("3") },
	};

	assert_int_equal(sn_h1_find_header(h, 4, SN_STR_LIT("host"), 0), 0);
	assert_int_equal(sn_h1_find_header(h, 4, SN_STR_LIT("X-FOO"), 0), 1);
	assert_int_equal(sn_h1_find_header(h, 4, SN_STR_LIT("X-FOO"), 2), 2);
	assert_int_equal(sn_h1_find_header(h, 4, SN_STR_LIT("X-FOO"), 3), -1);
	assert_int_equal(sn_h1_find_header(h, 4, SN_STR_LIT("x-fo"), 0), -1);
	assert_int_equal(sn_h1_find_header(h, 4, SN_STR_LIT("x-foobar"), 0), 3);
	assert_int_equal(sn_h1_find_header(h, 4, SN_STR_LIT("host"), 9), -1);
	assert_int_equal(sn_h1_find_header(h, 0, SN_STR_LIT("host"), 0), -1);
	assert_int_equal(sn_h1_find_header(h, 4, SN_STR_LIT("host"), -3), 0);
}

static void test_hop_by_hop(void **state)
{
	struct sn_h1_header h[] = {
		{ SN_STR_LIT("Connection"), SN_STR_LIT("keep-alive, X-Secret ,,") },
		{ SN_STR_LIT("connection"), SN_STR_LIT("x-other, Content-Length, host") },
	};
	static const char *const yes[] = {
		"Connection", "keep-alive", "Proxy-Connection", "TE", "Trailer",
		"Transfer-Encoding", "UPGRADE", "Proxy-Authenticate", "x-secret", "X-Other",
	};
	static const char *const no[] = {
		"Proxy-Authorization", "Content-Length", "Host", "X-Secre", "Content-Type", "T", "",
	};

	for (size_t i = 0; i < SN_ARRAY_LEN(yes); i++) {
		print_message("%s\n", yes[i]);
		assert_int_equal(sn_h1_is_hop_by_hop(sn_str_make(yes[i], strlen(yes[i])), h, 2), 1);
	}
	for (size_t i = 0; i < SN_ARRAY_LEN(no); i++) {
		print_message("%s\n", no[i]);
		assert_int_equal(sn_h1_is_hop_by_hop(sn_str_make(no[i], strlen(no[i])), h, 2), 0);
	}
	assert_int_equal(sn_h1_is_hop_by_hop(SN_STR_LIT("x-secret"), h, 0), 0);
}

/* Writer. */

static void test_writer_head(void **state)
{
	char buf[256];
	struct sn_h1_writer w;
	const char *want = "GET /a?b HTTP/1.1\r\nHost: reviews:9080\r\nContent-Length: 18446744073709551615\r\n"
			   "X-Zero: 0\r\nX-Empty: \r\n\r\n";

	sn_h1w_init(&w, buf, sizeof(buf));
	sn_h1w_request_line(&w, SN_STR_LIT("GET"), SN_STR_LIT("/a?b"));
	sn_h1w_header(&w, SN_STR_LIT("Host"), SN_STR_LIT("reviews:9080"));
	sn_h1w_header_u64(&w, "Content-Length", UINT64_MAX);
	sn_h1w_header_u64(&w, "X-Zero", 0);
	sn_h1w_header_cstr(&w, "X-Empty", "");
	sn_h1w_end(&w);
	assert_int_equal(w.overflow, 0);
	assert_int_equal(w.len, strlen(want));
	buf[w.len] = '\0';
	assert_string_equal(buf, want);

	/* What the writer makes, the parser takes back. */
	struct sn_h1_request req;
	assert_int_equal(sn_h1_parse_request(buf, w.len, &req, hdrs, MAX_HDRS, NULL), SN_H1_ERROR);
	assert_int_equal(req.err_status, 400); /* 2^64-1 is over the CL limit */

	sn_h1w_init(&w, buf, sizeof(buf));
	sn_h1w_status_line(&w, 404, NULL);
	sn_h1w_status_line(&w, 299, NULL);
	sn_h1w_status_line(&w, 503, "Busy Now");
	sn_h1w_raw(&w, "xyz", 3);
	assert_int_equal(w.overflow, 0);
	buf[w.len] = '\0';
	assert_string_equal(buf, "HTTP/1.1 404 Not Found\r\nHTTP/1.1 299 Unknown\r\nHTTP/1.1 503 Busy Now\r\nxyz");
}

static void test_writer_overflow(void **state)
{
	char buf[64];
	struct sn_h1_writer w;
	const char *line = "HTTP/1.1 200 OK\r\n"; /* 17 bytes */

	/* Exactly fits. */
	memset(buf, '#', sizeof(buf));
	sn_h1w_init(&w, buf, 17);
	sn_h1w_status_line(&w, 200, NULL);
	assert_int_equal(w.overflow, 0);
	assert_int_equal(w.len, 17);
	assert_memory_equal(buf, line, 17);
	assert_int_equal(buf[17], '#');
	/* One more byte does not, and nothing is written. */
	sn_h1w_raw(&w, "x", 1);
	assert_int_equal(w.overflow, 1);
	assert_int_equal(w.len, 17);
	assert_int_equal(buf[17], '#');
	/* Later calls do nothing even if they would fit. */
	sn_h1w_raw(&w, "", 0);
	assert_int_equal(w.len, 17);

	/* One byte short. */
	memset(buf, '#', sizeof(buf));
	sn_h1w_init(&w, buf, 16);
	sn_h1w_status_line(&w, 200, NULL);
	assert_int_equal(w.overflow, 1);
	assert_int_equal(w.len, 0);
	assert_int_equal(buf[0], '#');
	sn_h1w_end(&w);
	sn_h1w_header_cstr(&w, "a", "b");
	assert_int_equal(w.len, 0);

	/* Each kind of append, one byte short. */
	for (size_t cap = 0; cap < 12; cap++) {
		sn_h1w_init(&w, buf, cap);
		sn_h1w_header_cstr(&w, "Name", "val"); /* 11 bytes */
		assert_int_equal(w.overflow, cap < 11);
		assert_int_equal(w.len, cap < 11 ? 0 : 11);
		sn_h1w_init(&w, buf, cap);
		sn_h1w_request_line(&w, SN_STR_LIT("GET"), SN_STR_LIT("/")); /* 16 bytes */
		assert_int_equal(w.overflow, 1);
		sn_h1w_init(&w, buf, cap);
		sn_h1w_header_u64(&w, "CL", 12345678); /* 14 bytes */
		assert_int_equal(w.overflow, 1);
	}
	sn_h1w_init(&w, NULL, 0);
	sn_h1w_end(&w);
	assert_int_equal(w.overflow, 1);
}

static void test_writer_refuses_injection(void **state)
{
	char buf[256];
	struct sn_h1_writer w;
	static const struct {
		const char *name, *value;
	} bad[] = {
		{ "X", "a\r\nInjected: 1" }, { "X", "a\nb" }, { "X", "a\rb" },
		{ "X: y", "a" }, { "X Y", "a" }, { "", "a" }, { "X\r\n", "a" }, { "X", "\x7f" },
	};

	for (size_t i = 0; i < SN_ARRAY_LEN(bad); i++) {
		sn_h1w_init(&w, buf, sizeof(buf));
		sn_h1w_header_cstr(&w, bad[i].name, bad[i].value);
		assert_int_equal(w.overflow, 1);
		assert_int_equal(w.len, 0);
	}
	sn_h1w_init(&w, buf, sizeof(buf));
	sn_h1w_header(&w, SN_STR_LIT("X"), sn_str_make("a\0b", 3));
	assert_int_equal(w.overflow, 1);
	sn_h1w_init(&w, buf, sizeof(buf));
	sn_h1w_header_cstr(&w, "X", "tab\there \xc3\xa9");
	assert_int_equal(w.overflow, 0);
	sn_h1w_init(&w, buf, sizeof(buf));
	sn_h1w_request_line(&w, SN_STR_LIT("GET"), SN_STR_LIT("/a b"));
	assert_int_equal(w.overflow, 1);
	sn_h1w_init(&w, buf, sizeof(buf));
	sn_h1w_request_line(&w, SN_STR_LIT("G T"), SN_STR_LIT("/"));
	assert_int_equal(w.overflow, 1);
	sn_h1w_init(&w, buf, sizeof(buf));
	sn_h1w_request_line(&w, SN_STR_LIT("GET"), SN_STR_LIT(""));
	assert_int_equal(w.overflow, 1);
	sn_h1w_init(&w, buf, sizeof(buf));
	sn_h1w_status_line(&w, 200, "OK\r\nX: y");
	assert_int_equal(w.overflow, 1);
	sn_h1w_init(&w, buf, sizeof(buf));
	sn_h1w_status_line(&w, 99, NULL);
	assert_int_equal(w.overflow, 1);
	sn_h1w_init(&w, buf, sizeof(buf));
	sn_h1w_status_line(&w, 1000, NULL);
	assert_int_equal(w.overflow, 1);
}

static void test_chunk_header_and_reasons(void **state)
{
	char out[20];
	size_t n;

	n = sn_h1_chunk_header(out, 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "0\r\n", 3);
	n = sn_h1_chunk_header(out, 255);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "ff\r\n", 4);
	n = sn_h1_chunk_header(out, 4096);
	assert_memory_equal(out, "1000\r\n", n);
	n = sn_h1_chunk_header(out, SIZE_MAX);
	assert_int_equal(n, 2 * sizeof(size_t) + 2);
	assert_memory_equal(out, "ffffffffffffffff\r\n", n);

	/* The writer's chunk headers are what the scanner accepts. */
	struct sn_h1_chunked c;
	int done;
	sn_h1_chunked_init(&c);
	n = sn_h1_chunk_header(out, 3);
	assert_int_equal(sn_h1_chunked_scan(&c, out, n, &done), (ssize_t)n);
	assert_int_equal(sn_h1_chunked_scan(&c, "abc\r\n0\r\n\r\n", 10, &done), 10);
	assert_int_equal(done, 1);
	assert_int_equal(c.body_bytes, 3);

	assert_string_equal(sn_h1_reason_phrase(200), "OK");
	assert_string_equal(sn_h1_reason_phrase(404), "Not Found");
	assert_string_equal(sn_h1_reason_phrase(431), "Request Header Fields Too Large");
	assert_string_equal(sn_h1_reason_phrase(502), "Bad Gateway");
	assert_string_equal(sn_h1_reason_phrase(505), "HTTP Version Not Supported");
	assert_string_equal(sn_h1_reason_phrase(417), "Expectation Failed");
	assert_string_equal(sn_h1_reason_phrase(414), "URI Too Long");
	assert_string_equal(sn_h1_reason_phrase(999), "Unknown");
	assert_string_equal(sn_h1_reason_phrase(-1), "Unknown");
}

/* A head parsed once and moved with its bytes reads as a parse of the
 * copy (sn_h1_request_move: the proxy keeps the head it parsed in the
 * connection's buffer). */
static void test_request_move(void **state)
{
	(void)state;
	static const char *heads[] = {
		"GET /a?b=1 HTTP/1.1\r\nHost: x.test:80\r\nX-A: 1\r\nCookie: c=d\r\n\r\n",
		"POST http://y.test:81/p HTTP/1.1\r\nHost: y.test:81\r\nContent-Length: 3\r\n\r\n",
		"GET http://z.test?q=1 HTTP/1.1\r\nHost: z.test\r\n\r\n",
		"OPTIONS * HTTP/1.0\r\n\r\n",
	};
	for (size_t k = 0; k < SN_ARRAY_LEN(heads); k++) {
		char a[512], b[512];
		struct sn_h1_request r1, r2;
		struct sn_h1_header h1[16], h2[16], moved[16];
		size_t n = strlen(heads[k]);
		memcpy(a, heads[k], n);
		memcpy(b, heads[k], n);
		int l1 = sn_h1_parse_request(a, n, &r1, h1, 16, NULL);
		int l2 = sn_h1_parse_request(b, n, &r2, h2, 16, NULL);
		assert_int_equal(l1, (int)n);
		assert_int_equal(l2, (int)n);
		memset(a, 'x', sizeof(a));   /* the old bytes are gone */
		sn_h1_request_move(&r1, a, n, b, moved);
		assert_ptr_equal(r1.method.p, r2.method.p);
		assert_ptr_equal(r1.target.p, r2.target.p);
		assert_ptr_equal(r1.path.p, r2.path.p);
		assert_int_equal(r1.path.len, r2.path.len);
		assert_ptr_equal(r1.authority.p, r2.authority.p);
		assert_int_equal(r1.authority.len, r2.authority.len);
		assert_ptr_equal(r1.headers, moved);
		assert_int_equal(r1.num_headers, r2.num_headers);
		for (size_t i = 0; i < r1.num_headers; i++) {
			assert_ptr_equal(moved[i].name.p, h2[i].name.p);
			assert_ptr_equal(moved[i].value.p, h2[i].value.p);
			assert_int_equal(moved[i].value.len, h2[i].value.len);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_simple),
		cmocka_unit_test(test_request_bodies),
		cmocka_unit_test(test_request_refusals),
		cmocka_unit_test(test_request_byte_classes),
		cmocka_unit_test(test_request_value_scan_offsets),
		cmocka_unit_test(test_request_leading_crlf),
		cmocka_unit_test(test_request_absolute_form),
		cmocka_unit_test(test_request_move),
		cmocka_unit_test(test_request_content_length_early),
		cmocka_unit_test(test_request_keep_alive),
		cmocka_unit_test(test_request_expect_upgrade),
		cmocka_unit_test(test_request_pipelined),
		cmocka_unit_test(test_request_byte_at_a_time),
		cmocka_unit_test(test_request_limits_line),
		cmocka_unit_test(test_request_limits_head),
		cmocka_unit_test(test_request_limits_count),
		cmocka_unit_test(test_response_basic),
		cmocka_unit_test(test_response_body_rules),
		cmocka_unit_test(test_response_refusals),
		cmocka_unit_test(test_response_limits_and_1xx),
		cmocka_unit_test(test_response_byte_at_a_time),
		cmocka_unit_test(test_chunked_cases),
		cmocka_unit_test(test_chunked_limits),
		cmocka_unit_test(test_find_header),
		cmocka_unit_test(test_hop_by_hop),
		cmocka_unit_test(test_writer_head),
		cmocka_unit_test(test_writer_overflow),
		cmocka_unit_test(test_writer_refuses_injection),
		cmocka_unit_test(test_chunk_header_and_reasons),
		cmocka_unit_test(test_chunked_next),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
