/* The exchange's state machine (src/proxy/exchange.c, included to reach
 * its static table): the lifecycles the request path takes are allowed,
 * the shortcuts it must never take are not, every state has a name. Each
 * integration test also runs every real transition through ex_set_state's
 * assertion (the sanitized build keeps asserts). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "proxy/exchange.c"

static int allowed(enum sn_ex_state from, enum sn_ex_state to)
{
	return (ex_next[from] & (1u << to)) != 0;
}

/* Walks a lifecycle through ex_set_state (which asserts each step). */
static void walk(const enum sn_ex_state *path, size_t n)
{
	struct sn_exchange ex;
	memset(&ex, 0, sizeof(ex));
	assert_int_equal(ex.state, SN_EX_STATE_ROUTING);   /* what ex_alloc's zeroing gives */
	for (size_t i = 0; i < n; i++) {
		assert_true(allowed(ex.state, path[i]));
		ex_set_state(&ex, path[i]);
		assert_int_equal(ex.state, path[i]);
	}
}

static void test_lifecycles(void **state)
{
	(void)state;
	/* an ordinary request, and one retried twice */
	static const enum sn_ex_state ok[] = { SN_EX_STATE_ATTEMPT, SN_EX_STATE_RELAYING, SN_EX_STATE_DONE };
	static const enum sn_ex_state retried[] = { SN_EX_STATE_ATTEMPT, SN_EX_STATE_ATTEMPT, SN_EX_STATE_ATTEMPT,
						    SN_EX_STATE_RELAYING, SN_EX_STATE_DONE };
	/* a fault delay then an abort; a delay then the upstream */
	static const enum sn_ex_state fault[] = { SN_EX_STATE_DELAYED, SN_EX_STATE_LOCAL, SN_EX_STATE_DONE };
	static const enum sn_ex_state delayed[] = { SN_EX_STATE_DELAYED, SN_EX_STATE_ATTEMPT, SN_EX_STATE_RELAYING,
						    SN_EX_STATE_DONE };
	/* parked for discovery, resolved, routed */
	static const enum sn_ex_state parked[] = { SN_EX_STATE_PARKED, SN_EX_STATE_ROUTING, SN_EX_STATE_ATTEMPT,
						   SN_EX_STATE_RELAYING, SN_EX_STATE_DONE };
	/* no route / denied / bad request; retries spent (502, 503) */
	static const enum sn_ex_state refused[] = { SN_EX_STATE_LOCAL, SN_EX_STATE_DONE };
	static const enum sn_ex_state failed[] = { SN_EX_STATE_ATTEMPT, SN_EX_STATE_LOCAL, SN_EX_STATE_DONE };
	/* head then close, nothing sent yet: 502 after all */
	static const enum sn_ex_state head_close[] = { SN_EX_STATE_ATTEMPT, SN_EX_STATE_RELAYING, SN_EX_STATE_LOCAL,
						       SN_EX_STATE_DONE };
	/* the client left while routing / parked / delayed / attempting */
	static const enum sn_ex_state gone[] = { SN_EX_STATE_DONE };

	walk(ok, SN_ARRAY_LEN(ok));
	walk(retried, SN_ARRAY_LEN(retried));
	walk(fault, SN_ARRAY_LEN(fault));
	walk(delayed, SN_ARRAY_LEN(delayed));
	walk(parked, SN_ARRAY_LEN(parked));
	walk(refused, SN_ARRAY_LEN(refused));
	walk(failed, SN_ARRAY_LEN(failed));
	walk(head_close, SN_ARRAY_LEN(head_close));
	walk(gone, SN_ARRAY_LEN(gone));
}

static void test_forbidden(void **state)
{
	(void)state;
	/* A response head is only ever accepted from an attempt. */
	for (int s = 0; s < SN_EX_STATE__COUNT; s++)
		if (s != SN_EX_STATE_ATTEMPT && s != SN_EX_STATE_RELAYING)
			assert_false(allowed((enum sn_ex_state)s, SN_EX_STATE_RELAYING));
	assert_false(allowed(SN_EX_STATE_RELAYING, SN_EX_STATE_RELAYING));
	/* Once the proxy answers itself, nothing goes upstream again. */
	assert_false(allowed(SN_EX_STATE_LOCAL, SN_EX_STATE_ATTEMPT));
	assert_false(allowed(SN_EX_STATE_LOCAL, SN_EX_STATE_LOCAL));
	/* A relayed response is never retried. */
	assert_false(allowed(SN_EX_STATE_RELAYING, SN_EX_STATE_ATTEMPT));
	/* Done is done; every state can end there. */
	for (int s = 0; s < SN_EX_STATE__COUNT; s++) {
		assert_false(allowed(SN_EX_STATE_DONE, (enum sn_ex_state)s));
		if (s != SN_EX_STATE_DONE)
			assert_true(allowed((enum sn_ex_state)s, SN_EX_STATE_DONE));
	}
}

static void test_names(void **state)
{
	(void)state;
	for (int s = 0; s < SN_EX_STATE__COUNT; s++) {
		const char *n = ex_state_str((enum sn_ex_state)s);
		assert_non_null(n);
		assert_string_not_equal(n, "?");
		for (int t = 0; t < s; t++)
			assert_string_not_equal(n, ex_state_str((enum sn_ex_state)t));
	}
	assert_string_equal(ex_state_str(SN_EX_STATE__COUNT), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lifecycles),
		cmocka_unit_test(test_forbidden),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
