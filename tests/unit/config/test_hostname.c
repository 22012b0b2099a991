/* The one short-name rule (src/config/hostname.c): what a host stands
 * for, in which order, with the cluster domain, and which name is
 * reported when none exists. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "sinew/config.h"

static void expect(const char *host, const char *ns, size_t want_n, const char *c0, const char *c1, size_t want_fb)
{
	char cand[2][SN_HOST_CAND_MAX];
	size_t fb = 99;
	size_t n = sn_host_candidates(host, strlen(host), ns, cand, &fb);
	assert_int_equal(n, want_n);
	if (n >= 1)
		assert_string_equal(cand[0], c0);
	if (n >= 2)
		assert_string_equal(cand[1], c1);
	if (n >= 1)
		assert_int_equal(fb, want_fb);
}

static void test_candidates(void **state)
{
	(void)state;
	expect("reviews", "prod", 2, "reviews.prod.svc.cluster.local", "reviews", 0);
	expect("Reviews.", NULL, 2, "reviews.default.svc.cluster.local", "reviews", 0);
	expect("localhost", "default", 2, "localhost.default.svc.cluster.local", "localhost", 0);
	expect("reviews.other", "prod", 2, "reviews.other.svc.cluster.local", "reviews.other", 1);
	expect("example.com", "prod", 2, "example.com.svc.cluster.local", "example.com", 1);
	expect("reviews.other.svc", "prod", 2, "reviews.other.svc.cluster.local", "reviews.other.svc", 0);
	expect("reviews.default.svc.cluster.local", "prod", 1, "reviews.default.svc.cluster.local", NULL, 0);
	expect("api.internal.example", "prod", 1, "api.internal.example", NULL, 0);
	expect("*.example.com", "prod", 1, "*.example.com", NULL, 0);
	expect("", "prod", 0, NULL, NULL, 0);
	char longname[300];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	expect(longname, "prod", 0, NULL, NULL, 0);
}

static void test_cluster_domain(void **state)
{
	(void)state;
	assert_string_equal(sn_cluster_domain(), "cluster.local");
	assert_int_equal(sn_cluster_domain_set("Corp.Internal"), 0);
	assert_string_equal(sn_cluster_domain(), "corp.internal");
	expect("reviews", "prod", 2, "reviews.prod.svc.corp.internal", "reviews", 0);
	expect("reviews.other.svc", NULL, 2, "reviews.other.svc.corp.internal", "reviews.other.svc", 0);
	const char *bad[] = { "", ".x", "x.", "a..b", "a b", "a/b" };
	for (size_t i = 0; i < SN_ARRAY_LEN(bad); i++)
		assert_int_equal(sn_cluster_domain_set(bad[i]), SN_EINVAL);
	assert_int_equal(sn_cluster_domain_set(NULL), SN_EINVAL);
	assert_string_equal(sn_cluster_domain(), "corp.internal");   /* unchanged by refusals */
	assert_int_equal(sn_cluster_domain_set("cluster.local"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_candidates),
		cmocka_unit_test(test_cluster_domain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
