/* Fuzzes protocol detection on a captured outbound connection
 * (sn_tcp_looks_http, src/proxy/tcp.c): the first bytes the client sends,
 * peeked SNIFF_BYTES (8) at a time as they arrive. Checks, for every
 * prefix of the input and for every way it can arrive:
 * - the answer is 1, 0 or -1, and equals a plain model of the rule
 *   "METHOD SP, METHOD [A-Z]{1,7}": HTTP iff 1..7 capital letters and a
 *   space lead; unknown only while every byte so far is a capital letter
 *   and there are fewer than 8;
 * - once decided it never changes as more bytes arrive (a peek sees a
 *   longer prefix of the same stream), so the event-driven sniff and the
 *   1 s timer's last look agree;
 * - only the first 8 bytes matter: the proxy never peeks further.
 * The inbound listener's first-byte check (TLS 0x16 / [A-Z] / refused,
 * exchange.c dconn_secure) is one byte: 256 cases, a unit test's job. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SNIFF_BYTES 8   /* tcp.c: what on_sniff_io peeks */

#include "fuzz_check.h"

static int model(const uint8_t *b, size_t n)
{
	size_t caps = 0;

	while (caps < n && b[caps] >= 'A' && b[caps] <= 'Z')
		caps++;
	if (caps == n && n < 8)
		return -1;   /* all capitals so far: a method may still come */
	return caps >= 1 && caps <= 7 && caps < n && b[caps] == ' ';
}

/* The function on an exact-size copy, so ASan sees any read past n. */
static int sniff(const uint8_t *data, size_t n)
{
	unsigned char *b = malloc(n ? n : 1);
	int r;

	CHECK(b != NULL);
	if (n)
		memcpy(b, data, n);
	r = sn_tcp_looks_http(b, n);
	free(b);
	CHECK(r == -1 || r == 0 || r == 1);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t limit = size < 64 ? size : 64;
	int decided = -1;

	/* Every prefix, as successive peeks would see it. */
	for (size_t n = 0; n <= limit; n++) {
		int r = sniff(data, n);
		CHECK(r == model(data, n));
		if (decided != -1)
			CHECK(r == decided);
		if (r != -1 && decided == -1)
			decided = r;
		if (n >= SNIFF_BYTES)
			CHECK(r != -1 && r == sniff(data, SNIFF_BYTES));
	}

	/* Arrival in pieces: the split points come from the input's tail,
	 * the bytes from its head; each event peeks what has arrived, at
	 * most 8 bytes, as on_sniff_io does, and stops at the first answer. */
	if (size >= 2) {
		size_t half = size / 2, got = 0, k = half;
		int r = -1;
		while (r == -1 && got < half && k < size) {
			got += 1 + data[k++] % 4;
			if (got > half)
				got = half;
			r = sniff(data, got < SNIFF_BYTES ? got : SNIFF_BYTES);
		}
		if (r != -1)
			CHECK(r == model(data, half < SNIFF_BYTES ? half : SNIFF_BYTES));
		/* The timer's last look: HTTP only if the peek says so. */
		int t = sniff(data, half < SNIFF_BYTES ? half : SNIFF_BYTES) == 1;
		if (r != -1)
			CHECK(t == r);
	}
	return 0;
}
