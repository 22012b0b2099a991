/* gRPC's rules as the proxy applies them (src/proxy/grpc.c): which
 * requests are gRPC calls, grpc-status and grpc-timeout parsing, the
 * status of a proxy-made answer, and the retryOn conditions. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "proxy/exchange.h"

static struct sn_h1_request req(struct sn_h1_header *h, size_t n)
{
	struct sn_h1_request r;
	memset(&r, 0, sizeof(r));
	r.headers = h;
	r.num_headers = n;
	return r;
}

#define H(n, v) { SN_STR_LIT(n), SN_STR_LIT(v) }

static void test_request_is_grpc(void **state)
{
	(void)state;
	static const struct { const char *ct; int grpc; } cases[] = {
		{ "application/grpc", 1 }, { "application/grpc+proto", 1 }, { "Application/GRPC+json", 1 },
		{ "application/grpc;charset=utf-8", 1 }, { "application/grpc-web", 0 }, { "application/grpcx", 0 },
		{ "application/json", 0 }, { "application/grp", 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sn_h1_header h[] = { H("user-agent", "x"), { SN_STR_LIT("Content-Type"),
			sn_str_make(cases[i].ct, strlen(cases[i].ct)) } };
		struct sn_h1_request r = req(h, 2);
		assert_int_equal(sn__grpc_request(&r), cases[i].grpc);
	}
	struct sn_h1_request none = req(NULL, 0);
	assert_int_equal(sn__grpc_request(&none), 0);
}

static void test_status_and_timeout(void **state)
{
	(void)state;
	assert_int_equal(sn__grpc_code(SN_STR_LIT("0")), 0);
	assert_int_equal(sn__grpc_code(SN_STR_LIT("14")), 14);
	assert_int_equal(sn__grpc_code(SN_STR_LIT("")), -1);
	assert_int_equal(sn__grpc_code(SN_STR_LIT("1a")), -1);
	assert_int_equal(sn__grpc_code(SN_STR_LIT("123")), -1);
	static const struct { const char *v; int64_t ms; } t[] = {
		{ "1H", 3600000 }, { "2M", 120000 }, { "3S", 3000 }, { "250m", 250 }, { "1500u", 2 },
		{ "1n", 1 }, { "0m", 0 }, { "99999999S", 99999999000LL }, { "123456789S", -1 }, { "5", -1 },
		{ "5x", -1 }, { "S", -1 }, { "-5S", -1 },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct sn_h1_header h[] = { { SN_STR_LIT("grpc-timeout"), sn_str_make(t[i].v, strlen(t[i].v)) } };
		struct sn_h1_request r = req(h, 1);
		assert_int_equal(sn__grpc_timeout_ms(&r), t[i].ms);
	}
}

static void test_answers_and_retries(void **state)
{
	(void)state;
	assert_int_equal(sn__grpc_code_for(404, "no_route"), 12);
	assert_int_equal(sn__grpc_code_for(403, "rbac_denied"), 7);
	assert_int_equal(sn__grpc_code_for(401, "jwt_invalid"), 16);
	assert_int_equal(sn__grpc_code_for(503, "no_healthy_upstream"), 14);
	assert_int_equal(sn__grpc_code_for(504, "upstream_timeout"), 4);
	assert_int_equal(sn__grpc_code_for(400, "bad_request"), 13);
	assert_int_equal(sn__grpc_code_for(418, "direct_response"), 2);
	uint32_t on = SN_RETRY_GRPC_UNAVAILABLE | SN_RETRY_GRPC_CANCELLED;
	assert_true(sn__grpc_retry_on(on, 14));
	assert_true(sn__grpc_retry_on(on, 1));
	assert_false(sn__grpc_retry_on(on, 4));
	assert_false(sn__grpc_retry_on(on, 0));
	assert_false(sn__grpc_retry_on(SN_RETRY_5XX, 14));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_is_grpc),
		cmocka_unit_test(test_status_and_timeout),
		cmocka_unit_test(test_answers_and_retries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
