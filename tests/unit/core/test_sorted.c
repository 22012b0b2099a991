/* Unit tests for sinew/sorted.h: the binary search against a linear one
 * on every position of arrays of every small size (duplicates included),
 * and the string map against a plain list under random operations. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sinew/common.h"
#include "sinew/sorted.h"

static int cmp_int(const void *key, const void *elem)
{
	int a = *(const int *)key, b = *(const int *)elem;
	return (a > b) - (a < b);
}

static void test_lower_bound_matches_linear(void **state)
{
	int v[12];
	(void)state;
	for (size_t n = 0; n <= SN_ARRAY_LEN(v); n++) {
		for (size_t i = 0; i < n; i++)
			v[i] = (int)(i / 2) * 2;   /* 0 0 2 2 4 4 ...: duplicates and gaps */
		for (int key = -1; key <= (int)n + 1; key++) {
			size_t want = 0;
			while (want < n && v[want] < key)
				want++;
			int found = -1;
			size_t got = sn_lower_bound(v, n, sizeof(*v), &key, cmp_int, &found);
			assert_int_equal(got, want);
			assert_int_equal(found, want < n && v[want] == key);
			assert_int_equal(sn_lower_bound(v, n, sizeof(*v), &key, cmp_int, NULL), want);
		}
	}
}

static void test_strmap_against_list(void **state)
{
	struct sn_strmap m = { 0 };
	char keys[40][8];
	int present[40] = { 0 }, value[40] = { 0 };
	uint32_t x = 7;   /* xorshift: the same operations every run */
	(void)state;
	for (int i = 0; i < 40; i++)
		snprintf(keys[i], sizeof(keys[i]), "k%02d", (i * 17) % 40);
	for (int step = 0; step < 4000; step++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		int i = (int)(x % 40);
		char val[16];
		if ((x >> 8) % 3 == 0) {
			sn_strmap_del(&m, keys[i]);
			present[i] = 0;
		} else {
			value[i] = step;
			snprintf(val, sizeof(val), "%d", step);
			assert_int_equal(sn_strmap_put(&m, keys[i], val), 0);
			present[i] = 1;
		}
		size_t n = 0;
		for (int k = 0; k < 40; k++) {
			struct sn_strmap_kv *kv = sn_strmap_get(&m, keys[k]);
			assert_int_equal(kv != NULL, present[k]);
			if (kv != NULL) {
				snprintf(val, sizeof(val), "%d", value[k]);
				assert_string_equal(kv->value, val);
				n++;
			}
		}
		assert_int_equal(m.n, n);
		for (size_t k = 1; k < m.n; k++)
			assert_true(strcmp(m.v[k - 1].key, m.v[k].key) < 0);
	}
	assert_int_equal(sn_strmap_put(&m, "null", NULL), 0);
	assert_string_equal(sn_strmap_get(&m, "null")->value, "");
	sn_strmap_free(&m);
	assert_int_equal(m.n, 0);
	assert_null(sn_strmap_get(&m, "null"));
	sn_strmap_del(&m, "absent");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lower_bound_matches_linear),
		cmocka_unit_test(test_strmap_against_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
