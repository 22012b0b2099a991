/* Regexes are RE2 (Istio's syntax), compiled by glibc as POSIX ERE after
 * rewriting: what is accepted, and the repetitions that are bounded as RE2
 * bounds them (a short pattern once made regcomp take gigabytes). */
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config/config_internal.h"

static int compiles(const char *src, char *err, size_t errlen)
{
	regex_t *re = NULL;
	int rc = cfg_regex_compile(src, 0, &re, err, errlen);
	if (rc == 0) {
		regfree(re);
		free(re);
	}
	return rc == 0;
}

static void test_accepted(void **state)
{
	(void)state;
	static const char *const ok[] = {
		"^(.*?;)?(user=\\d+)(;.*)?$", "/api/v[0-9]+/.*", "(?i)abc", "(?:ab)+c",
		"[0-9]{1,3}(\\.[0-9]{1,3}){3}", "a{2,5}?", "x|y|z", "[]a]+", "a\\++", "a+?b*?c??",
		"([0-9a-f]{1,4}:){7}[0-9a-f]{1,4}", "a{1000}",
	};
	char err[256];
	for (size_t i = 0; i < SN_ARRAY_LEN(ok); i++)
		if (!compiles(ok[i], err, sizeof(err)))
			fail_msg("%s refused: %s", ok[i], err);
}

static void test_repetition_bounded(void **state)
{
	(void)state;
	char colon_plus[100] = ":";
	memset(colon_plus + 1, '+', 80);
	const char *const bad[] = {
		"a++", "a*{2}", "a+*", colon_plus, "a{1001}", "(a{100}){100}", "*a", "(|+)",
		"(((a{30}){30}){30})", "x{0,}+",
	};
	char err[256];
	for (size_t i = 0; i < SN_ARRAY_LEN(bad); i++) {
		err[0] = '\0';
		if (compiles(bad[i], err, sizeof(err)))
			fail_msg("%s accepted", bad[i]);
		assert_true(err[0] != '\0');
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_repetition_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
