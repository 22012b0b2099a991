/* Unit tests for join tokens: round trip, tampering, wrong secret,
 * expiry, malformed claims under a valid MAC, and what the proxy may read
 * without the secret. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sinew/identity.h"
#include "sinew/join_token.h"

static uint8_t secret[32];

static void claims(struct sn_join_token *t, int64_t exp)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->trust_domain, sizeof(t->trust_domain), "cluster.local");
	snprintf(t->ns, sizeof(t->ns), "default");
	snprintf(t->sa, sizeof(t->sa), "reviews");
	t->expires_at = exp;
	for (size_t i = 0; i < sizeof(t->root_sha256); i++)
		t->root_sha256[i] = (uint8_t)(i * 7 + 1);
}

static void test_round_trip(void **state)
{
	struct sn_join_token t, got, other;
	struct sn_id_error err;
	char *tok = NULL, *tok2 = NULL, nh[33];
	size_t len = 0, len2 = 0;
	static const uint8_t zero[16];

	assert_int_equal(sn_join_token_secret_generate(secret, sizeof(secret)), 0);
	claims(&t, 2000000000);
	assert_int_equal(sn_join_token_create(&t, secret, sizeof(secret), &tok, &len), 0);
	assert_int_equal(strlen(tok), len);
	assert_memory_equal(tok, "sn1.", 4);
	assert_true(len < SN_JOIN_TOKEN_MAX);
	assert_memory_not_equal(t.nonce, zero, sizeof(zero));
	/* URL- and shell-safe: base64url and the two dots only. */
	for (size_t i = 0; i < len; i++)
		assert_true(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.", tok[i]) != NULL);

	assert_int_equal(sn_join_token_verify(tok, len, secret, sizeof(secret), 1900000000, &got, &err), 0);
	assert_string_equal(got.trust_domain, "cluster.local");
	assert_string_equal(got.ns, "default");
	assert_string_equal(got.sa, "reviews");
	assert_int_equal(got.expires_at, 2000000000);
	assert_memory_equal(got.nonce, t.nonce, 16);
	assert_memory_equal(got.root_sha256, t.root_sha256, 32);
	sn_join_token_nonce_hex(&got, nh);
	assert_int_equal(strlen(nh), 32);

	/* The proxy's read, without the secret. */
	assert_int_equal(sn_join_token_parse(tok, len, &got, &err), 0);
	assert_memory_equal(got.root_sha256, t.root_sha256, 32);

	/* Each token has its own nonce. */
	claims(&other, 2000000000);
	assert_int_equal(sn_join_token_create(&other, secret, sizeof(secret), &tok2, &len2), 0);
	assert_memory_not_equal(other.nonce, t.nonce, 16);
	assert_string_not_equal(tok, tok2);
	free(tok);
	free(tok2);
}

static void test_tamper_secret_expiry(void **state)
{
	struct sn_join_token t, got;
	struct sn_id_error err;
	uint8_t wrong[32];
	char *tok = NULL;
	size_t len = 0;

	claims(&t, 2000000000);
	assert_int_equal(sn_join_token_create(&t, secret, sizeof(secret), &tok, &len), 0);

	/* Every single-character change is refused, wherever it falls. */
	for (size_t i = 0; i < len; i++) {
		char *m = strdup(tok);
		m[i] = m[i] == 'A' ? 'B' : 'A';
		int rc = sn_join_token_verify(m, len, secret, sizeof(secret), 1900000000, &got, &err);
		if (rc == 0)
			fail_msg("tampered byte %zu accepted", i);
		assert_true(err.code == SN_ID_E_TOKEN_MAC || err.code == SN_ID_E_TOKEN_MALFORMED);
		free(m);
	}
	/* Changing the claims (a sneaky service-account swap) is a MAC failure. */
	{
		char *m = strdup(tok);
		m[10] ^= 1;
		assert_int_equal(sn_join_token_verify(m, len, secret, sizeof(secret), 1900000000, &got, &err), SN_EINVAL);
		assert_int_equal(err.code, SN_ID_E_TOKEN_MAC);
		assert_non_null(strstr(err.msg, "tampered with, or minted under another secret"));
		free(m);
	}
	memcpy(wrong, secret, sizeof(wrong));
	wrong[31] ^= 0x80;
	assert_int_equal(sn_join_token_verify(tok, len, wrong, sizeof(wrong), 1900000000, &got, &err), SN_EINVAL);
	assert_int_equal(err.code, SN_ID_E_TOKEN_MAC);
	/* Truncated. */
	assert_int_equal(sn_join_token_verify(tok, len - 1, secret, sizeof(secret), 1900000000, &got, &err), SN_EINVAL);
	assert_int_equal(sn_join_token_verify(tok, 10, secret, sizeof(secret), 1900000000, &got, &err), SN_EINVAL);
	assert_int_equal(err.code, SN_ID_E_TOKEN_MALFORMED);
	/* Expired: at and after exp. */
	assert_int_equal(sn_join_token_verify(tok, len, secret, sizeof(secret), 2000000000, &got, &err), SN_EINVAL);
	assert_int_equal(err.code, SN_ID_E_TOKEN_EXPIRED);
	assert_string_equal(err.msg, "join token expired at 2033-05-18T03:33:20Z");
	/* Short secrets are refused on both sides. */
	assert_int_equal(sn_join_token_verify(tok, len, secret, 16, 1900000000, &got, &err), SN_EINVAL);
	free(tok);
	claims(&t, 2000000000);
	assert_int_equal(sn_join_token_create(&t, secret, 31, &tok, &len), SN_EINVAL);
	/* An identity that is no SPIFFE ID cannot be minted. */
	claims(&t, 2000000000);
	snprintf(t.sa, sizeof(t.sa), "a/b");
	assert_int_equal(sn_join_token_create(&t, secret, sizeof(secret), &tok, &len), SN_EINVAL);
	claims(&t, 0);
	assert_int_equal(sn_join_token_create(&t, secret, sizeof(secret), &tok, &len), SN_EINVAL);
}

static void b64url(const uint8_t *in, size_t n, char *out)
{
	char tmp[2048];
	int m = EVP_EncodeBlock((unsigned char *)tmp, in, (int)n);
	size_t o = 0;

	for (int i = 0; i < m; i++) {
		char c = tmp[i];
		if (c == '=')
			break;
		out[o++] = c == '+' ? '-' : c == '/' ? '_' : c;
	}
	out[o] = '\0';
}

/* A token with a valid MAC over the given claims text. */
static void mint_raw(const char *claims_txt, char *out)
{
	uint8_t m[32];
	unsigned int ml = 0;

	size_t n;

	memcpy(out, "sn1.", 4);
	b64url((const uint8_t *)claims_txt, strlen(claims_txt), out + 4);
	n = strlen(out);
	HMAC(EVP_sha256(), secret, sizeof(secret), (const unsigned char *)out, n, m, &ml);
	out[n] = '.';
	b64url(m, ml, out + n + 1);
}

static void test_malformed_claims_under_valid_mac(void **state)
{
	static const char zeros32[] = "00000000000000000000000000000000";
	static const char zeros64[] = "0000000000000000000000000000000000000000000000000000000000000000";
	char good[512], tok[1024];
	struct sn_join_token got;
	struct sn_id_error err;
	const char *bad[] = {
		"td=cluster.local;ns=default;sa=reviews;exp=2000000000;nonce=%s;root=%s;",
		"ns=default;td=cluster.local;sa=reviews;exp=2000000000;nonce=%s;root=%s",
		"td=cluster.local;ns=default;sa=re/views;exp=2000000000;nonce=%s;root=%s",
		"td=Cluster.local;ns=default;sa=reviews;exp=2000000000;nonce=%s;root=%s",
		"td=cluster.local;ns=default;sa=reviews;exp=-5;nonce=%s;root=%s",
		"td=cluster.local;ns=default;sa=reviews;exp=02000000000;nonce=%s;root=%s",
		"td=cluster.local;ns=default;sa=reviews;exp=2000000000;nonce=%sA;root=%s",
		"td=cluster.local;ns=default;sa=reviews;exp=2000000000;nonce=%s;root=%s0",
		"td=cluster.local;ns=;sa=reviews;exp=2000000000;nonce=%s;root=%s",
	};

	snprintf(good, sizeof(good), "td=cluster.local;ns=default;sa=reviews;exp=2000000000;nonce=%s;root=%s",
		 zeros32, zeros64);
	mint_raw(good, tok);
	assert_int_equal(sn_join_token_verify(tok, strlen(tok), secret, sizeof(secret), 1, &got, &err), 0);
	for (size_t i = 0; i < SN_ARRAY_LEN(bad); i++) {
		char c[512];
		snprintf(c, sizeof(c), bad[i], zeros32, zeros64);
		mint_raw(c, tok);
		int rc = sn_join_token_verify(tok, strlen(tok), secret, sizeof(secret), 1, &got, &err);
		if (rc == 0 || err.code != SN_ID_E_TOKEN_MALFORMED)
			fail_msg("claims \"%s\": rc %d code %s", c, rc, sn_id_err_str(err.code));
	}
	/* Non-canonical base64url (padding, stray bits) is malformed. */
	assert_int_equal(sn_join_token_parse("sn1.YQ==.x", 10, &got, &err), SN_EINVAL);
	assert_int_equal(sn_join_token_parse("sn1.YR.x", 8, &got, &err), SN_EINVAL);
	assert_int_equal(sn_join_token_parse("sn1.a.b.c", 9, &got, &err), SN_EINVAL);
	assert_int_equal(sn_join_token_parse("xx1.a.b", 7, &got, &err), SN_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_tamper_secret_expiry),
		cmocka_unit_test(test_malformed_claims_under_valid_mac),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
