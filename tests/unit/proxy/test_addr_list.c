/* Unit tests for sn_addr_list_parse (src/proxy/server.c): sinew-proxy's
 * --control-plane A,B,... list of sinewd replicas. Each entry is what
 * sn_addr_parse takes; the error names the entry and what is wrong. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/proxy.h"

struct parsed {
	struct sn_addr v[SN_CP_MAX_REPLICAS];
	size_t n;
	char err[200];
	int rc;
};

static struct parsed parse(const char *s)
{
	struct parsed p;
	memset(&p, 0, sizeof(p));
	p.rc = sn_addr_list_parse(s, p.v, SN_CP_MAX_REPLICAS, &p.n, p.err, sizeof(p.err));
	return p;
}

static void test_one_and_several(void **state)
{
	struct parsed p = parse("127.0.0.1:15012");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.n, 1);
	assert_string_equal(p.v[0].text, "127.0.0.1:15012");

	p = parse("10.0.0.1:15012,[::1]:15013,localhost:15014");
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.n, 3);
	assert_string_equal(p.v[0].text, "10.0.0.1:15012");
	assert_string_equal(p.v[1].text, "[::1]:15013");
	assert_string_equal(p.v[2].text, "127.0.0.1:15014");
}

/* Eight is the limit; a ninth is refused, not dropped. */
static void test_bound(void **state)
{
	char list[256] = "";
	size_t off = 0;
	for (int i = 0; i < SN_CP_MAX_REPLICAS; i++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s127.0.0.1:%d", i ? "," : "", 15000 + i);
	struct parsed p = parse(list);
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.n, SN_CP_MAX_REPLICAS);
	assert_string_equal(p.v[SN_CP_MAX_REPLICAS - 1].text, "127.0.0.1:15007");

	snprintf(list + off, sizeof(list) - off, ",127.0.0.1:16000");
	p = parse(list);
	assert_int_equal(p.rc, SN_EINVAL);
	assert_string_equal(p.err, "more than 8 addresses");
}

static void test_errors_name_the_entry(void **state)
{
	static const struct { const char *in, *err; } cases[] = {
		{ "", "entry 1 is empty: want IP:PORT[,IP:PORT...]" },
		{ "127.0.0.1:1,", "entry 2 is empty: want IP:PORT[,IP:PORT...]" },
		{ ",127.0.0.1:1", "entry 1 is empty: want IP:PORT[,IP:PORT...]" },
		{ "127.0.0.1:1,nonsense", "entry 2 (\"nonsense\"): want IP:PORT, e.g. 127.0.0.1:15012 or [::1]:15012" },
		{ "127.0.0.1:1, 127.0.0.1:2", "entry 2 (\" 127.0.0.1:2\"): want IP:PORT, e.g. 127.0.0.1:15012 or [::1]:15012" },
		{ "127.0.0.1:0", "entry 1 (\"127.0.0.1:0\"): want IP:PORT, e.g. 127.0.0.1:15012 or [::1]:15012" },
		{ "127.0.0.1:65536", "entry 1 (\"127.0.0.1:65536\"): want IP:PORT, e.g. 127.0.0.1:15012 or [::1]:15012" },
		{ "127.0.0.1:1,127.0.0.1:2,127.0.0.1:1", "entry 3 (127.0.0.1:1) repeats entry 1" },
		{ "localhost:5,127.0.0.1:5", "entry 2 (127.0.0.1:5) repeats entry 1" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct parsed p = parse(cases[i].in);
		if (p.rc != SN_EINVAL || strcmp(p.err, cases[i].err) != 0)
			fail_msg("\"%s\": got %d \"%s\", want \"%s\"", cases[i].in, p.rc, p.err, cases[i].err);
	}
	/* a long entry is cut in the message, not copied whole */
	char longer[400];
	memset(longer, 'x', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	struct parsed p = parse(longer);
	assert_int_equal(p.rc, SN_EINVAL);
	assert_non_null(strstr(p.err, "entry 1 (\"xxxxxxxx"));
	assert_null(strstr(p.err, longer + sizeof(longer) - 1 - 65));   /* 65 x's: cut at 64 */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_and_several),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_errors_name_the_entry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
