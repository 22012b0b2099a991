/* Fuzzes sn_h1_parse_response. The first input byte picks the method of
 * the request being answered (GET, HEAD, CONNECT, POST); the rest is the
 * response. Checks: result range, every error is 502 with a reason, views
 * inside the head, the head ends in CRLFCRLF without bare CR/LF, the body
 * kind follows RFC 9112 6.3, and prefixes parse to INCOMPLETE or the same
 * result. Runs with default and tiny limits. */
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
	CHECK(s.p >= base && s.p <= base + n && s.len <= (size_t)(base + n - s.p));
}

static int count_header(const struct sn_h1_response *res, const char *name)
{
	int c = 0, i = -1;

	while ((i = sn_h1_find_header(res->headers, res->num_headers,
				      sn_str_make(name, strlen(name)), i + 1)) >= 0)
		c++;
	return c;
}

static void check_ok(const char *buf, int r, const struct sn_h1_response *res, struct sn_str method)
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
	CHECK(res->status >= 100 && res->status <= 599);
	CHECK(res->minor_version == 0 || res->minor_version == 1);
	check_view(res->reason, buf, n);
	for (size_t i = 0; i < res->num_headers; i++) {
		CHECK(res->headers[i].name.len > 0);
		check_view(res->headers[i].name, buf, n);
		check_view(res->headers[i].value, buf, n);
	}
	int cl = count_header(res, "content-length");
	int te = count_header(res, "transfer-encoding");
	CHECK(!(cl && te));
	if (te)
		CHECK(res->minor_version == 1);
	int no_body = res->status < 200 || res->status == 204 || res->status == 304 ||
		      sn_str_eq_cstr(method, "HEAD") ||
		      (sn_str_eq_cstr(method, "CONNECT") && res->status < 300);
	if (no_body)
		CHECK(res->body == SN_H1_BODY_NONE);
	else if (te)
		CHECK(res->body == SN_H1_BODY_CHUNKED || res->body == SN_H1_BODY_UNTIL_CLOSE);
	else if (cl)
		CHECK(res->body == SN_H1_BODY_LENGTH);
	else
		CHECK(res->body == SN_H1_BODY_UNTIL_CLOSE);
	if (res->body == SN_H1_BODY_UNTIL_CLOSE)
		CHECK(!res->keep_alive);
}

static int parse_copy(const uint8_t *data, size_t n, struct sn_h1_response *res,
		      struct sn_h1_header *hdrs, const struct sn_h1_limits *lim, struct sn_str method)
{
	char *b = malloc(n ? n : 1);
	int r;

	CHECK(b != NULL);
	if (n)
		memcpy(b, data, n);
	r = sn_h1_parse_response(b, n, res, hdrs, MAX_HDRS, lim, method);
	CHECK(r == SN_H1_INCOMPLETE || r == SN_H1_ERROR || (r > 0 && (size_t)r <= n));
	if (r > 0)
		check_ok(b, r, res, method);
	if (r == SN_H1_ERROR)
		CHECK(res->err_status == 502 && res->err_reason != NULL);
	free(b);
	return r;
}

static void run(const uint8_t *data, size_t size, const struct sn_h1_limits *lim, struct sn_str method)
{
	struct sn_h1_header hdrs[MAX_HDRS];
	struct sn_h1_response res, pres;
	int r = parse_copy(data, size, &res, hdrs, lim, method);
	size_t step = size <= 300 ? 1 : size / 97 + 1;

	for (size_t n = 0; n <= size; n += step) {
		int pr = parse_copy(data, n, &pres, hdrs, lim, method);

		if (r > 0)
			CHECK((size_t)r <= n ? pr == r : pr == SN_H1_INCOMPLETE);
		else if (r == SN_H1_INCOMPLETE)
			CHECK(pr == SN_H1_INCOMPLETE);
		else
			CHECK(pr == SN_H1_INCOMPLETE ||
			      (pr == SN_H1_ERROR && strcmp(pres.err_reason, res.err_reason) == 0));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct sn_h1_limits tiny = { 32, 100, 3 };
	static const char *const methods[] = { "GET", "HEAD", "CONNECT", "POST" };
	struct sn_str m;

	if (size < 1 || size > 100000)
		return 0;
	m = sn_str_make(methods[data[0] & 3], strlen(methods[data[0] & 3]));
	run(data + 1, size - 1, NULL, m);
	run(data + 1, size - 1, &tiny, m);
	return 0;
}
