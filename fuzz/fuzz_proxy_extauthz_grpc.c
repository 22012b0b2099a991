/* Fuzzes the gRPC external authorization messages (src/proxy/ext_authz_grpc.c).
 * The input is what an authorizer answers: the body of a gRPC response
 * (a 5-byte frame and a CheckResponse). A decoded answer must hold only
 * views inside the input, within the header bounds, with header keys that
 * are HTTP tokens and values free of CR, LF and NUL; a rejected one must
 * say why. Then the same bytes, cut into a request's parts, are written as
 * a CheckRequest, which must come back out of the protobuf reader whole
 * (every field of every level read, nothing past the frame). The seed
 * corpus has an OK answer with headers up and down, a denial with status,
 * headers and body, a gRPC-level error shape, and truncated and oversized
 * length varints. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/ext_authz_grpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static int inside(struct sn_str s, const uint8_t *data, size_t size)
{
	return s.len == 0 || ((const uint8_t *)s.p >= data && (const uint8_t *)s.p + s.len <= data + size);
}

static int clean_value(struct sn_str s)
{
	for (size_t i = 0; i < s.len; i++)
		if (s.p[i] == '\r' || s.p[i] == '\n' || s.p[i] == '\0')
			return 0;
	return 1;
}

static void check_headers(const struct sn_xa_header *h, size_t n, const uint8_t *data, size_t size)
{
	CHECK(n <= SN_XA_MAX_HEADERS);
	for (size_t i = 0; i < n; i++) {
		CHECK(h[i].key.len > 0 && inside(h[i].key, data, size) && inside(h[i].value, data, size));
		CHECK(memchr(h[i].key.p, ':', h[i].key.len) == NULL && clean_value(h[i].key));
		CHECK(clean_value(h[i].value));
	}
}

/* The messages of a CheckRequest, and which field of each holds which. */
enum kind { K_CHECK, K_ATTRS, K_PEER, K_REQUEST, K_HTTP, K_ADDRESS, K_SOCKET, K_ENTRY, K_NONE };

static enum kind child(enum kind k, uint32_t num)
{
	switch (k) {
	case K_CHECK: return num == 1 ? K_ATTRS : K_NONE;
	case K_ATTRS: return num == 1 || num == 2 ? K_PEER : num == 4 ? K_REQUEST : K_NONE;
	case K_PEER: return num == 1 ? K_ADDRESS : K_NONE;
	case K_REQUEST: return num == 2 ? K_HTTP : K_NONE;
	case K_HTTP: return num == 3 ? K_ENTRY : K_NONE;
	case K_ADDRESS: return num == 1 ? K_SOCKET : K_NONE;
	default: return K_NONE;
	}
}

/* Reads every field of a message and of the messages inside it. Returns
 * the number of fields read, or -1. */
static long walk(const uint8_t *p, size_t n, enum kind k)
{
	struct sn_pbr r;
	struct sn_pb_field f;
	long count = 0;
	int rc;
	sn_pbr_init(&r, p, n);
	while ((rc = sn_pbr_next(&r, &f)) == 1) {
		count++;
		enum kind c = child(k, f.num);
		if (c != K_NONE) {
			long more = f.wire == SN_PB_LEN ? walk(f.p, f.n, c) : -1;
			if (more < 0)
				return -1;
			count += more;
		}
	}
	return rc == 0 ? count : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct sn_xa_answer a;
	const char *why = NULL;

	if (sn_xa_answer_read(data, size, &a, &why) == 0) {
		CHECK(why == NULL);
		check_headers(a.headers, a.n_headers, data, size);
		check_headers(a.response, a.n_response, data, size);
		CHECK(a.n_remove <= SN_XA_MAX_HEADERS);
		for (size_t i = 0; i < a.n_remove; i++)
			CHECK(a.remove[i].len > 0 && inside(a.remove[i], data, size));
		CHECK(inside(a.denied_body, data, size) && inside(a.message, data, size));
		CHECK(a.denied_status >= 0 && a.denied_status <= 999);
	} else {
		CHECK(why != NULL && why[0] != '\0');
	}

	/* The same bytes as a request's parts: eighths of the input. */
	struct sn_http_field hf[4];
	struct sn_xa_check c = { 0 };
	size_t e = size / 8;
	const char *s = (const char *)data;
	c.source.address = sn_str_make(s, e);
	c.source.port = size;
	c.source.principal = sn_str_make(s + e, e);
	c.method = sn_str_make(s + 2 * e, e);
	c.path = sn_str_make(s + 3 * e, e);
	c.host = sn_str_make(s + 4 * e, e);
	for (size_t i = 0; i < 4; i++)
		hf[i] = (struct sn_http_field){ sn_str_make(s + (5 + i % 2) * e, e), sn_str_make(s + 7 * e, e) };
	c.headers = hf;
	c.n_headers = 4;
	c.size = size % 3 ? (int64_t)size : -1;
	c.body = s;
	c.body_len = size;
	c.pack_as_bytes = size & 1;
	size_t cap = sn_xa_check_size(&c);
	uint8_t *buf = malloc(cap);
	if (buf == NULL)
		return 0;
	size_t n = sn_xa_check_write(&c, buf, cap);
	CHECK(n >= 5 && n <= cap);
	uint32_t len = (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 | buf[4];
	CHECK(buf[0] == 0 && len == n - 5);
	CHECK(walk(buf + 5, len, K_CHECK) > 0);
	/* Too small a buffer is refused, never overrun. */
	CHECK(sn_xa_check_write(&c, buf, n - 1) == 0);
	free(buf);
	return 0;
}
