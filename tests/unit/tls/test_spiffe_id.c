/* Unit tests for SPIFFE ID parsing (SPIFFE-ID §2): a table of valid and
 * malformed IDs, each refusal with the message a user would read. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "sinew/identity.h"

static void test_valid_ids(void **state)
{
	static const struct {
		const char *s, *td, *path;
	} ok[] = {
		{ "spiffe://cluster.local/ns/default/sa/reviews", "cluster.local", "/ns/default/sa/reviews" },
		{ "spiffe://cluster.local", "cluster.local", "" },
		{ "spiffe://example.org/a", "example.org", "/a" },
		{ "spiffe://td-1_x.example/Path.With_Caps-9/..a/a..", "td-1_x.example", "/Path.With_Caps-9/..a/a.." },
		{ "spiffe://a/b/.../c", "a", "/b/.../c" },
	};
	for (size_t i = 0; i < SN_ARRAY_LEN(ok); i++) {
		struct sn_spiffe_id id;
		struct sn_id_error err;
		int rc = sn_spiffe_id_parse(ok[i].s, strlen(ok[i].s), &id, &err);
		if (rc != 0)
			fail_msg("%s: %s", ok[i].s, err.msg);
		assert_string_equal(id.uri, ok[i].s);
		assert_true(sn_str_eq_cstr(sn_spiffe_id_trust_domain(&id), ok[i].td));
		assert_true(sn_str_eq_cstr(sn_spiffe_id_path(&id), ok[i].path));
	}
}

static void test_malformed_ids(void **state)
{
	char longid[2100], longtd[300];
	static const struct {
		const char *s, *msg;
	} bad[] = {
		{ "", "SPIFFE ID is empty" },
		{ "cluster.local/ns/a/sa/b", "must start with \"spiffe://\"" },
		{ "https://cluster.local/a", "scheme is \"https\"; it must be \"spiffe\"" },
		{ "SPIFFE://cluster.local/a", "scheme must be lower-case" },
		{ "spiffe:/cluster.local/a", "must start with \"spiffe://\"" },
		{ "spiffe://", "empty trust domain" },
		{ "spiffe:///ns/a", "empty trust domain" },
		{ "spiffe://Cluster.local/a", "trust domain has upper-case 'C'" },
		{ "spiffe://user@cluster.local/a", "userinfo" },
		{ "spiffe://cluster.local:8443/a", "has a port" },
		{ "spiffe://cluster.local?x=1", "has a query" },
		{ "spiffe://cluster.local/a?x=1", "has a query" },
		{ "spiffe://cluster.local/a#frag", "has a fragment" },
		{ "spiffe://cluster.local/a%2Fb", "percent-encoding" },
		{ "spiffe://cluster.local/", "empty segment" },
		{ "spiffe://cluster.local/ns/a/sa/", "empty segment" },
		{ "spiffe://cluster.local//a", "empty segment" },
		{ "spiffe://cluster.local/./a", "dot segment (\".\")" },
		{ "spiffe://cluster.local/a/..", "dot segment (\"..\")" },
		{ "spiffe://cluster.local/a b", "has \\x20 at byte 24: a path segment allows only" },
		{ "spiffe://clus ter/a", "the trust domain allows only" },
		{ "spiffe://cluster.local/ümlaut", "\\xc3" },
	};
	for (size_t i = 0; i < SN_ARRAY_LEN(bad); i++) {
		struct sn_id_error err;
		int rc = sn_spiffe_id_parse(bad[i].s, strlen(bad[i].s), NULL, &err);
		if (rc != SN_EINVAL || err.code != SN_ID_E_BAD_SPIFFE_ID || strstr(err.msg, bad[i].msg) == NULL)
			fail_msg("\"%s\": rc %d code %s msg \"%s\", want \"%s\"", bad[i].s, rc,
				 sn_id_err_str(err.code), err.msg, bad[i].msg);
	}

	/* NUL inside, length bounds. */
	struct sn_id_error err;
	assert_int_equal(sn_spiffe_id_parse("spiffe://a/b\0c", 14, NULL, &err), SN_EINVAL);
	assert_non_null(strstr(err.msg, "\\x00"));
	memcpy(longid, "spiffe://a/", 11);
	memset(longid + 11, 'x', sizeof(longid) - 11);
	assert_int_equal(sn_spiffe_id_parse(longid, 2048, NULL, &err), 0);
	assert_int_equal(sn_spiffe_id_parse(longid, 2049, NULL, &err), SN_EINVAL);
	assert_non_null(strstr(err.msg, "2049 bytes; at most 2048"));
	memcpy(longtd, "spiffe://", 9);
	memset(longtd + 9, 'a', sizeof(longtd) - 9);
	assert_int_equal(sn_spiffe_id_parse(longtd, 9 + 255, NULL, &err), 0);
	assert_int_equal(sn_spiffe_id_parse(longtd, 9 + 256, NULL, &err), SN_EINVAL);
	assert_non_null(strstr(err.msg, "trust domain is 256 bytes"));
}

static void test_workload_ids(void **state)
{
	struct sn_spiffe_id id;
	struct sn_id_error err;
	struct sn_str ns, sa;

	assert_int_equal(sn_spiffe_id_from_workload("cluster.local", "default", "reviews", &id, &err), 0);
	assert_string_equal(id.uri, "spiffe://cluster.local/ns/default/sa/reviews");
	assert_int_equal(sn_spiffe_id_workload(&id, &ns, &sa), 0);
	assert_true(sn_str_eq_cstr(ns, "default") && sn_str_eq_cstr(sa, "reviews"));

	assert_int_equal(sn_spiffe_id_from_workload("cluster.local", "default", "a/b", &id, &err), SN_EINVAL);
	assert_non_null(strstr(err.msg, "service account has '/'"));
	assert_int_equal(sn_spiffe_id_from_workload("cluster.local", "..", "x", &id, &err), SN_EINVAL);
	assert_int_equal(sn_spiffe_id_from_workload("cluster.local", "", "x", &id, &err), SN_EINVAL);
	assert_non_null(strstr(err.msg, "namespace is empty"));
	assert_int_equal(sn_spiffe_id_from_workload("Cluster", "a", "x", &id, &err), SN_EINVAL);
	assert_int_equal(sn_spiffe_id_from_workload(NULL, "a", "x", &id, &err), SN_EINVAL);

	static const char *const not_workload[] = {
		"spiffe://td", "spiffe://td/ns/a", "spiffe://td/ns/a/sa", "spiffe://td/ns/a/sa/b/c",
		"spiffe://td/sa/a/ns/b", "spiffe://td/nsx/a/sa/b",
	};
	for (size_t i = 0; i < SN_ARRAY_LEN(not_workload); i++) {
		assert_int_equal(sn_spiffe_id_parse(not_workload[i], strlen(not_workload[i]), &id, NULL), 0);
		assert_int_equal(sn_spiffe_id_workload(&id, &ns, &sa), SN_ENOTFOUND);
	}
	assert_string_equal(sn_id_err_str(SN_ID_E_UNTRUSTED), "untrusted");
	assert_string_equal(sn_id_err_str((enum sn_id_err)999), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_ids),
		cmocka_unit_test(test_malformed_ids),
		cmocka_unit_test(test_workload_ids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
