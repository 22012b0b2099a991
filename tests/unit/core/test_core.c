/* Unit tests for the core: timer wheel, loop phases, buffers, arena. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "sinew/arena.h"
#include "sinew/json.h"
#include "sinew/buf.h"
#include "sinew/loop.h"
#include "sinew/query.h"

static int fired_n;

/* Every timer fires exactly at its tick, across level boundaries. */
static void test_wheel_exact_expiry(void **state)
{
	struct sn_timerwheel w;
	static const uint64_t delays[] = { 1, 2, 63, 64, 65, 127, 128, 4095, 4096, 4097, 70000, 300000 };
	struct sn_timer timers[SN_ARRAY_LEN(delays)];

	sn_timerwheel_init(&w, 1000);
	memset(timers, 0, sizeof(timers));
	for (size_t i = 0; i < SN_ARRAY_LEN(delays); i++)
		sn_timerwheel_link(&w, &timers[i], 1000 + delays[i]);
	assert_int_equal(w.count, SN_ARRAY_LEN(delays));
	fired_n = 0;
	for (uint64_t now = 1001; now <= 1000 + 300000; now += 7) {
		struct sn_timer *exp = NULL;
		sn_timerwheel_advance(&w, now, &exp);
		while (exp != NULL) {
			struct sn_timer *t = exp;
			sn_timerwheel_unlink(&w, t);
			/* Fired no earlier than due and at most one step late. */
			assert_true(t->expire_at <= now);
			assert_true(now - t->expire_at < 7);
			fired_n++;
		}
	}
	assert_int_equal(fired_n, SN_ARRAY_LEN(delays));
	assert_int_equal(w.count, 0);
}

static void test_wheel_unlink_and_next(void **state)
{
	struct sn_timerwheel w;
	struct sn_timer a = { 0 }, b = { 0 };

	sn_timerwheel_init(&w, 0);
	assert_int_equal(sn_timerwheel_next_in(&w), -1);
	sn_timerwheel_link(&w, &a, 10);
	sn_timerwheel_link(&w, &b, 5000);
	assert_int_equal(sn_timerwheel_next_in(&w), 10);
	sn_timerwheel_unlink(&w, &a);
	assert_false(sn_timer_is_linked(&a));
	/* Only a far timer: wake no later than the next cascade. */
	int64_t n = sn_timerwheel_next_in(&w);
	assert_true(n > 0 && n <= 64);
	sn_timerwheel_unlink(&w, &b);
	assert_int_equal(w.count, 0);
}

/* A timer callback may cancel another timer that is due in the same tick. */
static struct sn_timer cancel_a, cancel_b;
static int cancel_fired;
static void cancel_other(struct sn_loop *loop, struct sn_timer *t)
{
	cancel_fired++;
	sn_timer_stop(loop, t == &cancel_a ? &cancel_b : &cancel_a);
}

static void test_loop_timer_cancel_in_callback(void **state)
{
	struct sn_loop loop;
	assert_int_equal(sn_loop_init(&loop), 0);
	sn_timer_start(&loop, &cancel_a, 5, cancel_other);
	sn_timer_start(&loop, &cancel_b, 5, cancel_other);
	uint64_t t0 = sn_clock_ms();
	while (loop.wheel.count > 0 && sn_clock_ms() - t0 < 1000)
		sn_loop_run_once(&loop, 50);
	assert_int_equal(cancel_fired, 1);
	sn_loop_dispose(&loop);
}

static int order[8];
static int order_n;
static struct sn_task t_defer, t_reclaim, t_post;
static void on_defer(struct sn_loop *l, struct sn_task *t) { order[order_n++] = 4; }
static void on_reclaim(struct sn_loop *l, struct sn_task *t) { order[order_n++] = 6; }
static void on_post(struct sn_loop *l, struct sn_task *t)
{
	order[order_n++] = 3;
	sn_loop_reclaim(l, &t_reclaim, on_reclaim);
	sn_loop_defer(l, &t_defer, on_defer);
}
static void *poster(void *arg)
{
	sn_loop_post(arg, &t_post, on_post);
	return NULL;
}

/* Phases run in the documented order; posting from another thread wakes. */
static void test_loop_phase_order(void **state)
{
	struct sn_loop loop;
	pthread_t th;

	assert_int_equal(sn_loop_init(&loop), 0);
	pthread_create(&th, NULL, poster, &loop);
	pthread_join(th, NULL);
	for (int i = 0; i < 3 && order_n < 3; i++)
		sn_loop_run_once(&loop, 1000);
	assert_int_equal(order_n, 3);
	assert_int_equal(order[0], 3);
	assert_int_equal(order[1], 4);
	assert_int_equal(order[2], 6);
	sn_loop_dispose(&loop);
}

static void test_buf_pool(void **state)
{
	struct sn_buf_pool pool;
	struct sn_buf b = { 0 };

	sn_buf_pool_init(&pool, 1024, 4);
	assert_int_equal(sn_buf_reserve(&pool, &b, 100, 8192), 0);
	assert_int_equal(b.cap, 1024);
	memset(b.base, 'x', 1000);
	b.end = 1000;
	sn_buf_consume(&b, 10);
	/* Compaction makes room without growing. */
	assert_int_equal(sn_buf_reserve(&pool, &b, 30, 8192), 0);
	assert_int_equal(b.cap, 1024);
	assert_int_equal(sn_buf_len(&b), 990);
	/* Growth keeps content, bounded by max_cap. */
	assert_int_equal(sn_buf_reserve(&pool, &b, 3000, 8192), 0);
	assert_true(b.cap >= 3990);
	assert_int_equal(sn_buf_data(&b)[989], 'x');
	assert_int_equal(sn_buf_reserve(&pool, &b, 9000, 8192), SN_ELIMIT);
	sn_buf_release(&pool, &b);
	assert_null(b.base);
	assert_int_equal(pool.in_use, 0);
	/* Standard buffers are recycled. */
	assert_int_equal(sn_buf_reserve(&pool, &b, 1, 8192), 0);
	char *first = b.base;
	sn_buf_release(&pool, &b);
	assert_int_equal(pool.cached, 1);
	assert_int_equal(sn_buf_reserve(&pool, &b, 1, 8192), 0);
	assert_ptr_equal(b.base, first);
	sn_buf_release(&pool, &b);
	sn_buf_pool_dispose(&pool);
}

static void test_arena(void **state)
{
	struct sn_arena a;
	sn_arena_init(&a, 256);
	char *s = sn_arena_strdup(&a, "reviews");
	assert_string_equal(s, "reviews");
	char *big = sn_arena_alloc(&a, 10000);
	assert_non_null(big);
	assert_int_equal(((uintptr_t)big) & 15, 0);
	char *p = sn_arena_printf(&a, "%s.%s.svc.cluster.local", "reviews", "default");
	assert_string_equal(p, "reviews.default.svc.cluster.local");
	sn_arena_free(&a);
}

/* Cleanups run once, the last added first, before the blocks go; the
 * arena is reusable after. */
static char cleanup_order[8];
static size_t n_cleanups;

static void note_cleanup(void *arg)
{
	const char *tag = arg;
	assert_true(n_cleanups < sizeof(cleanup_order) - 1);
	cleanup_order[n_cleanups++] = tag[0];
	cleanup_order[n_cleanups] = '\0';
}

static void test_arena_cleanups(void **state)
{
	struct sn_arena a;
	(void)state;
	sn_arena_init(&a, 64);
	char *owned = sn_arena_strdup(&a, "a");
	assert_int_equal(sn_arena_on_free(&a, note_cleanup, owned), 0);
	assert_int_equal(sn_arena_on_free(&a, note_cleanup, "b"), 0);
	(void)sn_arena_alloc(&a, 1000);   /* a block of its own between them */
	assert_int_equal(sn_arena_on_free(&a, note_cleanup, "c"), 0);
	n_cleanups = 0;
	sn_arena_free(&a);
	assert_string_equal(cleanup_order, "cba");
	sn_arena_free(&a);
	assert_int_equal(n_cleanups, 3);
	sn_arena_init(&a, 64);
	assert_int_equal(sn_arena_on_free(&a, note_cleanup, "d"), 0);
	sn_arena_free(&a);
	assert_string_equal(cleanup_order, "cbad");
}

/* The one JSON string writer (sinew/json.h) on a FILE: escapes, strict
 * UTF-8 (a bad byte becomes U+FFFD), a sequence longer than one chunk of
 * its buffer kept whole, NULL as null. */
static void test_json_fput(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	sn_json_fput_str(f, "a\"b\\c\n\x01\x7f\xff\xe2\x82\xac", 12);
	fputc(' ', f);
	sn_json_fput_cstr(f, NULL);
	fputc(' ', f);
	char big[2000];
	for (size_t i = 0; i + 3 <= sizeof(big); i += 3)
		memcpy(big + i, "\xe2\x82\xac", 3);   /* 666 euro signs: chunks end mid-way */
	sn_json_fput_str(f, big, 1998);
	fclose(f);
	const char *want = "\"a\\\"b\\\\c\\n\\u0001\x7f\xef\xbf\xbd\xe2\x82\xac\" null \"";
	assert_memory_equal(buf, want, strlen(want));
	assert_int_equal(len, strlen(want) + 1998 + 1);
	assert_memory_equal(buf + strlen(want), big, 1998);   /* no sequence was cut */
	free(buf);
}

/* The one query reader (sinewd's API, the CLI's views from Prometheus). */
static void test_query(void **state)
{
	char buf[16];
	(void)state;
	struct sn_str q = SN_STR_LIT("names=x&name=a%2Fb+c&flag&e=");
	assert_int_equal(sn_query_get(q, "name", buf, sizeof(buf)), 1);
	assert_string_equal(buf, "a/b c");
	assert_int_equal(sn_query_get(q, "flag", buf, sizeof(buf)), 1);
	assert_string_equal(buf, "");
	assert_int_equal(sn_query_get(q, "e", buf, sizeof(buf)), 1);
	assert_string_equal(buf, "");
	assert_int_equal(sn_query_get(q, "nam", buf, sizeof(buf)), 0);
	assert_int_equal(sn_query_get(SN_STR_LIT("a=%zz"), "a", buf, sizeof(buf)), -1);
	assert_int_equal(sn_query_get(SN_STR_LIT("a=%4"), "a", buf, sizeof(buf)), -1);
	assert_int_equal(sn_query_get(SN_STR_LIT("a=%00"), "a", buf, sizeof(buf)), -1);      /* no NUL */
	assert_int_equal(sn_query_get(SN_STR_LIT("a=0123456789abcdef"), "a", buf, sizeof(buf)), -1);   /* too long */
	assert_int_equal(sn_query_get(SN_STR_NULL, "a", buf, sizeof(buf)), 0);
}

/* "503" and "5xx" (tap's --status). */
static void test_status_range(void **state)
{
	int lo, hi;
	(void)state;
	assert_int_equal(sn_status_range("503", &lo, &hi), 0);
	assert_true(lo == 503 && hi == 503);
	assert_int_equal(sn_status_range("5XX", &lo, &hi), 0);
	assert_true(lo == 500 && hi == 599);
	assert_int_equal(sn_status_range("", &lo, &hi), 0);
	assert_true(lo == 0 && hi == 0);
	assert_int_equal(sn_status_range("600", &lo, &hi), -1);
	assert_int_equal(sn_status_range("50", &lo, &hi), -1);
	assert_int_equal(sn_status_range("5031", &lo, &hi), -1);
	assert_int_equal(sn_status_range("5x0", &lo, &hi), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wheel_exact_expiry),
		cmocka_unit_test(test_wheel_unlink_and_next),
		cmocka_unit_test(test_loop_timer_cancel_in_callback),
		cmocka_unit_test(test_loop_phase_order),
		cmocka_unit_test(test_buf_pool),
		cmocka_unit_test(test_arena),
		cmocka_unit_test(test_arena_cleanups),
		cmocka_unit_test(test_json_fput),
		cmocka_unit_test(test_query),
		cmocka_unit_test(test_status_range),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
