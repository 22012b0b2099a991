/* The load generator's log-linear histogram: exact below 2048, within
 * 0.1 % above, percentiles by rank, bounded memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sinew/common.h"
#include "sinew/hist.h"

static void test_exact_low_values(void **state)
{
	struct sn_hist h;

	(void)state;
	assert_int_equal(sn_hist_init(&h, 3600ull * 1000000000ull), 0);
	for (uint64_t v = 0; v < SN_HIST_SUB_BUCKETS; v++) {
		size_t i = sn_hist_index(&h, v);
		assert_int_equal(sn_hist_lowest_at(&h, i), v);
		assert_int_equal(sn_hist_highest_at(&h, i), v);
	}
	/* About 270 KiB for an hour in nanoseconds. */
	assert_true(h.counts_len * sizeof(uint64_t) < 300 * 1024);
	sn_hist_dispose(&h);
}

static void test_relative_error_bounded(void **state)
{
	struct sn_hist h;
	uint64_t v;

	(void)state;
	assert_int_equal(sn_hist_init(&h, 3600ull * 1000000000ull), 0);
	for (v = SN_HIST_SUB_BUCKETS; v < 3600ull * 1000000000ull; v = v * 1.37 + 11) {
		size_t i = sn_hist_index(&h, v);
		uint64_t lo = sn_hist_lowest_at(&h, i), hi = sn_hist_highest_at(&h, i);
		assert_true(lo <= v && v <= hi);
		/* width / value ≤ 1/1024 */
		assert_true((hi - lo + 1) * 1024 <= lo);
		assert_true(i < h.counts_len);
	}
	/* Neighbouring counters tile the range without gaps. */
	for (size_t i = 1; i < h.counts_len; i++)
		assert_int_equal(sn_hist_lowest_at(&h, i), sn_hist_highest_at(&h, i - 1) + 1);
	sn_hist_dispose(&h);
}

static void test_percentiles(void **state)
{
	struct sn_hist h;

	(void)state;
	assert_int_equal(sn_hist_init(&h, 1000000000ull), 0);
	assert_int_equal(sn_hist_percentile(&h, 50), 0);
	for (uint64_t v = 1; v <= 1000; v++)
		sn_hist_record(&h, v);
	assert_int_equal(h.total, 1000);
	assert_int_equal(sn_hist_percentile(&h, 50), 500);
	assert_int_equal(sn_hist_percentile(&h, 90), 900);
	assert_int_equal(sn_hist_percentile(&h, 99), 990);
	assert_int_equal(sn_hist_percentile(&h, 99.9), 999);
	assert_int_equal(sn_hist_percentile(&h, 100), 1000);
	assert_int_equal(h.min, 1);
	assert_int_equal(h.max, 1000);
	assert_true(sn_hist_mean(&h) > 500.49 && sn_hist_mean(&h) < 500.51);

	/* One outlier among many: p99 ignores it, max keeps it exactly. */
	sn_hist_reset(&h);
	for (int i = 0; i < 999; i++)
		sn_hist_record(&h, 100000);
	sn_hist_record(&h, 123456789);
	uint64_t p99 = sn_hist_percentile(&h, 99);
	assert_true(p99 >= 100000 && p99 <= 100000 + 100000 / 1024);
	assert_int_equal(sn_hist_percentile(&h, 100), 123456789);
	uint64_t p9999 = sn_hist_percentile(&h, 99.99);
	assert_true(p9999 >= 123456789 - 123456789 / 1024 && p9999 <= 123456789);

	/* Above the highest trackable value: clamped and counted. */
	sn_hist_record(&h, 5000000000ull);
	assert_int_equal(h.clamped, 1);
	assert_int_equal(h.max, 1000000000ull);
	sn_hist_dispose(&h);
}

static void test_add(void **state)
{
	struct sn_hist a, b, c;

	(void)state;
	assert_int_equal(sn_hist_init(&a, 1000000ull), 0);
	assert_int_equal(sn_hist_init(&b, 1000000ull), 0);
	assert_int_equal(sn_hist_init(&c, 2000000000ull), 0);
	sn_hist_record(&a, 10);
	sn_hist_record(&b, 30000);
	assert_int_equal(sn_hist_add(&a, &b), 0);
	assert_int_equal(a.total, 2);
	assert_int_equal(a.min, 10);
	assert_int_equal(a.max, 30000);
	assert_int_equal(sn_hist_add(&a, &c), SN_EINVAL);
	sn_hist_dispose(&a);
	sn_hist_dispose(&b);
	sn_hist_dispose(&c);
	assert_int_equal(sn_hist_init(&c, 10), SN_EINVAL);
	sn_hist_dispose(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exact_low_values),
		cmocka_unit_test(test_relative_error_bounded),
		cmocka_unit_test(test_percentiles),
		cmocka_unit_test(test_add),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
