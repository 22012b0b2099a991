/* Fuzzes the chunked-body scanner. Checks:
 * - all-at-once, byte-at-a-time and input-derived split points give the
 *   same result (consumed bytes, done, error, decoded byte count);
 * - consumed <= size, and while not done every byte is consumed;
 * - a body reported done is re-checked by an independent, non-incremental
 *   reader written here: same end offset, same data byte count, every line
 *   CRLF-terminated;
 * - after done, the scanner consumes nothing more. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

struct outcome {
	ssize_t consumed; /* total, or -1 */
	int done;
	uint64_t body_bytes;
};

/* Feeds data in pieces ending at the offsets chosen by `cut`. */
static struct outcome feed(const uint8_t *data, size_t size, size_t (*cut)(const uint8_t *, size_t, size_t))
{
	struct sn_h1_chunked c;
	struct outcome o = { 0, 0, 0 };
	size_t off = 0;

	sn_h1_chunked_init(&c);
	while (off < size) {
		size_t n = cut(data, size, off);
		int done = 0;
		/* Exact-size copy: ASan catches reads past the piece. */
		char *piece = malloc(n);
		ssize_t r;

		CHECK(piece != NULL);
		memcpy(piece, data + off, n);
		r = sn_h1_chunked_scan(&c, piece, n, &done);
		free(piece);
		if (r < 0) {
			o.consumed = -1;
			return o;
		}
		CHECK((size_t)r <= n);
		o.consumed += r;
		off += (size_t)r;
		if (done) {
			o.done = 1;
			int again = 0;
			CHECK(sn_h1_chunked_scan(&c, "0\r\n\r\n", 5, &again) == 0 && again == 1);
			break;
		}
		CHECK((size_t)r == n);
	}
	o.body_bytes = c.body_bytes;
	return o;
}

static size_t cut_all(const uint8_t *d, size_t size, size_t off)
{
	return size - off;
}

static size_t cut_one(const uint8_t *d, size_t size, size_t off)
{
	return 1;
}

static size_t cut_data(const uint8_t *d, size_t size, size_t off)
{
	size_t n = (size_t)(d[off] % 7) + 1;
	return n < size - off ? n : size - off;
}

/* The independent reader: only for bodies the scanner accepted. */
static void verify_done(const uint8_t *d, size_t end, uint64_t body)
{
	size_t p = 0;
	uint64_t total = 0;

	for (;;) {
		uint64_t sz = 0;
		size_t digits = 0;

		while (p < end && ((d[p] >= '0' && d[p] <= '9') || ((d[p] | 0x20) >= 'a' && (d[p] | 0x20) <= 'f'))) {
			int v = d[p] <= '9' ? d[p] - '0' : (d[p] | 0x20) - 'a' + 10;
			sz = sz * 16 + (uint64_t)v;
			digits++;
			p++;
		}
		CHECK(digits >= 1 && digits <= 16);
		while (p < end && d[p] != '\r') {
			CHECK(d[p] != '\n');
			p++;
		}
		CHECK(p + 1 < end && d[p + 1] == '\n');
		p += 2;
		if (sz == 0)
			break;
		CHECK(sz <= end - p);
		p += (size_t)sz;
		total += sz;
		CHECK(p + 1 < end && d[p] == '\r' && d[p + 1] == '\n');
		p += 2;
	}
	/* Trailer lines, then the empty line. */
	for (;;) {
		CHECK(p + 1 < end);
		if (d[p] == '\r') {
			CHECK(d[p + 1] == '\n');
			p += 2;
			break;
		}
		CHECK(d[p] != ' ' && d[p] != '\t' && d[p] != ':');
		int colon = 0;
		while (p < end && d[p] != '\r') {
			CHECK(d[p] != '\n' && d[p] != '\0');
			colon |= d[p] == ':';
			p++;
		}
		CHECK(colon && p + 1 < end && d[p + 1] == '\n');
		p += 2;
	}
	CHECK(p == end);
	CHECK(total == body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome a, b, c;

	if (size > 200000)
		return 0;
	a = feed(data, size, cut_all);
	b = feed(data, size, cut_one);
	c = feed(data, size, cut_data);
	CHECK(a.consumed == b.consumed && a.done == b.done);
	CHECK(a.consumed == c.consumed && a.done == c.done);
	if (a.consumed >= 0) {
		CHECK((size_t)a.consumed <= size);
		CHECK(a.body_bytes == b.body_bytes && a.body_bytes == c.body_bytes);
		if (!a.done)
			CHECK((size_t)a.consumed == size);
		else
			verify_done(data, (size_t)a.consumed, a.body_bytes);
	}
	return 0;
}
