/* Fuzzes sn_h1_parse_request and checks its invariants, not only that it
 * does not crash:
 * - the result is a head length in (0, size], INCOMPLETE, or an error with
 *   one of the documented statuses and a reason;
 * - every returned view lies inside the head;
 * - an accepted head ends in CRLFCRLF, has no bare CR, bare LF or NUL, and
 *   its framing is unambiguous (one CL at most, never CL with TE, TE only on
 *   HTTP/1.1 and only "chunked", one Host, present for HTTP/1.1);
 * - every prefix parses to INCOMPLETE or to the same error (or, past the
 *   head, to the same head);
 * - pipelined heads after the first obey the same rules.
 * Everything runs twice: default limits and tiny ones (to reach 414/431). */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HDRS 100

#include "fuzz_check.h"

static void check_view(struct sn_str s, const char *base, size_t n)
{
	if (s.len == 0)
		return;
	CHECK(s.p != NULL);
	CHECK(s.p >= base && s.p <= base + n && s.len <= (size_t)(base + n - s.p));
}

static int count_header(const struct sn_h1_request *req, const char *name)
{
	int c = 0, i = -1;

	while ((i = sn_h1_find_header(req->headers, req->num_headers,
				      sn_str_make(name, strlen(name)), i + 1)) >= 0)
		c++;
	return c;
}

static void check_ok(const char *buf, int r, const struct sn_h1_request *req)
{
	size_t n = (size_t)r;

	CHECK(n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0);
	for (size_t i = 0; i < n; i++) {
		CHECK(buf[i] != '\0');
		if (buf[i] == '\n')
			CHECK(i > 0 && buf[i - 1] == '\r');
		if (buf[i] == '\r')
			CHECK(i + 1 < n && buf[i + 1] == '\n');
	}
	CHECK(req->err_status == 0);
	CHECK(req->minor_version == 0 || req->minor_version == 1);
	CHECK(req->method.len > 0 && req->target.len > 0 && req->path.len > 0);
	check_view(req->method, buf, n);
	check_view(req->target, buf, n);
	check_view(req->path, buf, n);
	check_view(req->authority, buf, n);
	CHECK(req->num_headers <= MAX_HDRS);
	for (size_t i = 0; i < req->num_headers; i++) {
		CHECK(req->headers[i].name.len > 0);
		check_view(req->headers[i].name, buf, n);
		check_view(req->headers[i].value, buf, n);
		for (size_t j = 0; j < req->headers[i].value.len; j++)
			CHECK(req->headers[i].value.p[j] != '\r' && req->headers[i].value.p[j] != '\n');
	}
	/* origin-form; "*"; or an absolute-form query whose "/" the caller
	 * writes (path_slash). */
	CHECK(req->path.p[0] == '/' || (req->path.len == 1 && req->path.p[0] == '*') ||
	      (req->path_slash && req->absolute_form && req->path.p[0] == '?'));
	CHECK(!req->path_slash || req->path.p[0] == '?');

	int cl = count_header(req, "content-length");
	int te = count_header(req, "transfer-encoding");
	int host = count_header(req, "host");
	CHECK(cl <= 1 && te <= 1 && !(cl && te) && host <= 1);
	if (req->minor_version == 1)
		CHECK(host == 1);
	if (te) {
		CHECK(req->minor_version == 1);
		CHECK(req->body == SN_H1_BODY_CHUNKED);
		int i = sn_h1_find_header(req->headers, req->num_headers,
					  SN_STR_LIT("Transfer-Encoding"), 0);
		CHECK(sn_str_ieq_cstr(req->headers[i].value, "chunked"));
	} else if (cl) {
		CHECK(req->body == SN_H1_BODY_LENGTH);
		int i = sn_h1_find_header(req->headers, req->num_headers,
					  SN_STR_LIT("content-length"), 0);
		struct sn_str v = req->headers[i].value;
		uint64_t x = 0;
		CHECK(v.len > 0);
		for (size_t j = 0; j < v.len; j++) {
			CHECK(v.p[j] >= '0' && v.p[j] <= '9');
			x = x * 10 + (uint64_t)(v.p[j] - '0');
		}
		CHECK(x == req->content_length && x <= (uint64_t)INT64_MAX);
	} else {
		CHECK(req->body == SN_H1_BODY_NONE);
	}
	CHECK(!(req->expect_continue && req->minor_version == 0));
	CHECK(!(req->upgrade && req->minor_version == 0));
	if (!req->absolute_form && host)
		CHECK(req->authority.len > 0);
}

static int parse_copy(const uint8_t *data, size_t n, struct sn_h1_request *req,
		      struct sn_h1_header *hdrs, const struct sn_h1_limits *lim)
{
	/* Exact-size copy so ASan sees any read past the prefix. */
	char *b = calloc(1, n ? n : 1);
	int r;

	CHECK(b != NULL);
	if (n)
		memcpy(b, data, n);
	r = sn_h1_parse_request(b, n, req, hdrs, MAX_HDRS, lim);
	if (r > 0)
		check_ok(b, r, req);
	free(b);
	return r;
}

static void check_prefix(const uint8_t *data, size_t n, int full, const struct sn_h1_request *fr,
			 const struct sn_h1_limits *lim)
{
	struct sn_h1_header hdrs[MAX_HDRS];
	struct sn_h1_request req;
	int r = parse_copy(data, n, &req, hdrs, lim);

	if (full > 0) {
		if ((size_t)full <= n)
			CHECK(r == full);
		else
			CHECK(r == SN_H1_INCOMPLETE);
	} else if (full == SN_H1_INCOMPLETE) {
		CHECK(r == SN_H1_INCOMPLETE);
	} else {
		CHECK(r == SN_H1_INCOMPLETE || (r == SN_H1_ERROR && req.err_status == fr->err_status &&
						 strcmp(req.err_reason, fr->err_reason) == 0));
	}
}

static void run(const uint8_t *data, size_t size, const struct sn_h1_limits *lim)
{
	struct sn_h1_header hdrs[MAX_HDRS];
	struct sn_h1_request req;
	int r = parse_copy(data, size, &req, hdrs, lim);

	CHECK(r == SN_H1_INCOMPLETE || r == SN_H1_ERROR || (r > 0 && (size_t)r <= size));
	if (r == SN_H1_ERROR) {
		int s = req.err_status;
		CHECK(s == 400 || s == 414 || s == 431 || s == 501 || s == 505 || s == 417);
		CHECK(req.err_reason != NULL && req.err_reason[0] != '\0');
	}

	/* Prefixes: all of them for small inputs, a spread otherwise. */
	size_t step = size <= 300 ? 1 : size / 97 + 1;
	for (size_t n = 0; n < size; n += step)
		check_prefix(data, n, r, &req, lim);
	if (size > 0)
		check_prefix(data, size - 1, r, &req, lim);
	if (r > 4) {
		check_prefix(data, (size_t)r - 1, r, &req, lim);
		check_prefix(data, (size_t)r, r, &req, lim);
	}

	/* Pipelining: parse what follows the head as the next request. */
	size_t off = 0;
	for (int k = 0; k < 8 && r > 0; k++) {
		off += (size_t)r;
		if (off >= size)
			break;
		r = parse_copy(data + off, size - off, &req, hdrs, lim);
		CHECK(r < 0 || (size_t)r <= size - off);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct sn_h1_limits tiny = { 40, 120, 3 };

	if (size > 100000)
		return 0;
	run(data, size, NULL);
	run(data, size, &tiny);
	return 0;
}
