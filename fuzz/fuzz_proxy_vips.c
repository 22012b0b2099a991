/* Fuzzes the one file sinew-proxy reads besides its config: the pod's
 * hosts file (--services-hosts, default /etc/hosts), from which
 * sn_tcp_vips_read (src/proxy/tcp.c) maps Service VIPs to
 * NAME.NS.svc.cluster.local for opaque TCP. The input is the file. The
 * result must equal a plain model of hosts(5) as the proxy reads it:
 * - lines end at '\n'; a line longer than 1023 bytes is skipped whole
 *   (never cut, so no tail of it reads as a line of its own);
 * - a NUL ends the line's text (C strings), and so does '#': the rest is
 *   a comment;
 * - fields are separated by spaces, tabs and CRs; the first is an IPv4
 *   address (inet_pton), the entry's name is the first later field of
 *   19..253 bytes ending in ".svc.cluster.local";
 * - at most SN_TCP_VIPS_MAX entries, in file order.
 * The file goes in through fmemopen: the parser's real FILE path, no fd. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LINE_MAX_BYTES 1023
#define SUFFIX ".svc.cluster.local"

#include "fuzz_check.h"

static int blank(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* One line of the model: 1 and *out filled if it maps a VIP. */
static int model_line(const uint8_t *p, size_t len, struct sn_vip *out)
{
	char field[LINE_MAX_BYTES + 1];
	size_t i = 0, nf = 0;
	struct in_addr a;

	if (len > LINE_MAX_BYTES)
		return 0;
	for (size_t k = 0; k < len; k++) {
		if (p[k] == '\0' || p[k] == '#') {
			len = k;
			break;
		}
	}
	while (i < len) {
		while (i < len && blank(p[i]))
			i++;
		size_t start = i;
		while (i < len && !blank(p[i]))
			i++;
		size_t l = i - start;
		if (l == 0)
			break;
		memcpy(field, p + start, l);
		field[l] = '\0';
		if (nf++ == 0) {
			if (inet_pton(AF_INET, field, &a) != 1)
				return 0;
			continue;
		}
		if (l > strlen(SUFFIX) && l < sizeof(out->fqdn) && !strcmp(field + l - strlen(SUFFIX), SUFFIX)) {
			out->addr = a.s_addr;
			memcpy(out->fqdn, field, l + 1);
			return 1;
		}
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1 << 20)
		return 0;
	/* Exact-size copy: fmemopen wants a writable buffer, ASan the size. */
	char *buf = malloc(size ? size : 1);
	CHECK(buf != NULL);
	if (size)
		memcpy(buf, data, size);
	FILE *f = fmemopen(buf, size, "r");
	if (f == NULL) {
		CHECK(size == 0);   /* older glibc refuses an empty buffer */
		free(buf);
		return 0;
	}
	size_t n = (size_t)-1;
	struct sn_vip *v = sn_tcp_vips_read(f, &n);
	fclose(f);
	CHECK(v != NULL && n <= SN_TCP_VIPS_MAX);

	size_t m = 0, off = 0;
	while (off < size && m < SN_TCP_VIPS_MAX) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t len = nl ? (size_t)(nl - (data + off)) : size - off;
		struct sn_vip want;
		if (model_line(data + off, len, &want)) {
			CHECK(m < n);
			CHECK(v[m].addr == want.addr);
			CHECK(memchr(v[m].fqdn, '\0', sizeof(v[m].fqdn)) != NULL);
			CHECK(strcmp(v[m].fqdn, want.fqdn) == 0);
			m++;
		}
		off += len + 1;
	}
	CHECK(m == n);
	free(v);
	free(buf);
	return 0;
}
