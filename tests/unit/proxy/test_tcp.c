/* Unit tests for opaque TCP's two parsers (src/proxy/tcp.c): protocol
 * detection on a captured connection's first bytes, and the VIP map read
 * from the pod's hosts file. Each case here is a bug fuzz_proxy_detect or
 * fuzz_proxy_vips found (fuzz/corpus/proxy_{detect,vips}/crash-*.bin). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "proxy/proxy.h"

static int sniff(const char *s)
{
	return sn_tcp_looks_http((const unsigned char *)s, strlen(s));
}

/* A method is 1 to 7 capitals: an 8-letter word is not HTTP however many
 * bytes were peeked (it was, given 9 or more). */
static void test_sniff(void **state)
{
	assert_int_equal(sniff(""), -1);
	assert_int_equal(sniff("GE"), -1);
	assert_int_equal(sniff("GET "), 1);
	assert_int_equal(sniff("CONNECT "), 1);
	assert_int_equal(sniff("PRI * HTTP/2.0"), 1);
	assert_int_equal(sniff("get / HTTP/1.1"), 0);
	assert_int_equal(sniff(" GET"), 0);
	assert_int_equal(sniff("\x16\x03\x01"), 0);
	assert_int_equal(sniff("ABCDEFG"), -1);
	assert_int_equal(sniff("ABCDEFGH"), 0);
	assert_int_equal(sniff("ABCDEFGH "), 0);
	assert_int_equal(sniff("PROPFIND /dav/ HTTP/1.1"), 0);
}

static struct sn_vip *read_vips(const char *text, size_t len, size_t *n)
{
	char *buf = malloc(len);
	assert_non_null(buf);
	memcpy(buf, text, len);
	FILE *f = fmemopen(buf, len, "r");
	assert_non_null(f);
	struct sn_vip *v = sn_tcp_vips_read(f, n);
	fclose(f);
	free(buf);
	assert_non_null(v);
	return v;
}

static void assert_vip(const struct sn_vip *v, const char *addr, const char *fqdn)
{
	char a[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &v->addr, a, sizeof(a));
	assert_string_equal(a, addr);
	assert_string_equal(v->fqdn, fqdn);
}

/* The file as `sinew run` writes it (sn_pod_hosts_render). */
static void test_vips_pod_hosts(void **state)
{
	static const char t[] = "# Written by sinew for this pod; rewritten in place when services change.\n"
				"127.0.0.1\tlocalhost\n"
				"::1\tlocalhost ip6-localhost ip6-loopback\n"
				"10.96.0.2\treviews reviews.default reviews.default.svc.cluster.local\r\n"
				"10.96.0.3\tratings ratings.default ratings.default.svc.cluster.local";
	size_t n;
	struct sn_vip *v = read_vips(t, sizeof(t) - 1, &n);
	assert_int_equal(n, 2);
	assert_vip(&v[0], "10.96.0.2", "reviews.default.svc.cluster.local");
	assert_vip(&v[1], "10.96.0.3", "ratings.default.svc.cluster.local");
	free(v);
}

/* hosts(5): '#' to the end of the line is a comment, wherever it starts;
 * a name after it mapped the VIP before. */
static void test_vips_comment(void **state)
{
	static const char t[] = "10.96.0.11 # old: stale.default.svc.cluster.local\n"
				"10.96.0.12 #stale.default.svc.cluster.local\n"
				"10.96.0.13 ok.default.svc.cluster.local # trailing\n"
				"#10.96.0.14 hidden.default.svc.cluster.local\n";
	size_t n;
	struct sn_vip *v = read_vips(t, sizeof(t) - 1, &n);
	assert_int_equal(n, 1);
	assert_vip(&v[0], "10.96.0.13", "ok.default.svc.cluster.local");
	free(v);
}

/* A line longer than the reader's 1023 bytes is skipped whole: its tail
 * was read as a line of its own, mapping a VIP that is a mere alias. */
static void test_vips_long_line(void **state)
{
	char t[2048];
	size_t len = 0;
	len += (size_t)snprintf(t + len, sizeof(t) - len, "10.96.0.20 ");
	memset(t + len, 'x', 1011);
	len += 1011;
	len += (size_t)snprintf(t + len, sizeof(t) - len,
				" 10.96.0.21 split.ns.svc.cluster.local\n10.96.0.22 next.ns.svc.cluster.local\n");
	size_t n;
	struct sn_vip *v = read_vips(t, len, &n);
	assert_int_equal(n, 1);
	assert_vip(&v[0], "10.96.0.22", "next.ns.svc.cluster.local");
	free(v);
}

/* At most SN_TCP_VIPS_MAX entries, the array grown past its first 64. */
static void test_vips_bound(void **state)
{
	size_t cap = (SN_TCP_VIPS_MAX + 10) * 40, len = 0, n;
	char *t = malloc(cap);
	assert_non_null(t);
	for (unsigned i = 0; i < SN_TCP_VIPS_MAX + 10; i++)
		len += (size_t)snprintf(t + len, cap - len, "10.96.%u.%u s%u.ns.svc.cluster.local\n", i / 250,
					i % 250 + 1, i);
	struct sn_vip *v = read_vips(t, len, &n);
	free(t);
	assert_int_equal(n, SN_TCP_VIPS_MAX);
	assert_vip(&v[64], "10.96.0.65", "s64.ns.svc.cluster.local");
	assert_vip(&v[SN_TCP_VIPS_MAX - 1], "10.96.16.96", "s4095.ns.svc.cluster.local");
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sniff),
		cmocka_unit_test(test_vips_pod_hosts),
		cmocka_unit_test(test_vips_comment),
		cmocka_unit_test(test_vips_long_line),
		cmocka_unit_test(test_vips_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
