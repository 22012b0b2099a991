/* The CA's check of a CSR's key: a P-256 key that spells out its curve
 * parameters instead of naming the curve is refused. OpenSSL reports such
 * a key's group as prime256v1, so it used to be signed, and the leaf
 * (which copies the key's encoding) then failed verification at every
 * peer: "Certificate public key has explicit ECC parameters". Found by
 * fuzz/fuzz_control_csr.c (corpus crash-explicit-ec-params.bin). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "sinew/identity.h"

#define TD "cluster.local"

/* A PEM CSR for key, signed by it, as a proxy would send. */
static char *csr_pem(EVP_PKEY *key)
{
	char *pem = NULL;
	size_t len = 0;

	assert_int_equal(sn_workload_csr_pem(key, NULL, &pem, &len), 0);
	return pem;
}

static void sign_and_verify(struct sn_ca *ca, const char *csr, int want_ok)
{
	struct sn_svid_params p = { .ns = "default", .sa = "reviews" };
	struct sn_svid_verify_opts vo = { 0 };
	struct sn_trust_bundle *tb = NULL;
	struct sn_id_error err;
	char *chain = NULL;
	size_t len = 0;
	int rc = sn_ca_sign_csr(ca, csr, strlen(csr), &p, &chain, &len, &err);

	if (!want_ok) {
		assert_int_equal(rc, SN_EINVAL);
		assert_int_equal(err.code, SN_ID_E_CSR_KEY);
		assert_string_equal(err.msg,
				    "CSR key spells out its curve parameters; send a P-256 key in named-curve form");
		assert_null(chain);
		return;
	}
	if (rc != 0)
		fail_msg("sn_ca_sign_csr: %s", err.msg);
	/* Whatever the CA signs, its own trust bundle accepts. */
	assert_int_equal(sn_trust_bundle_new(TD, &tb), 0);
	assert_int_equal(sn_trust_bundle_add(tb, sn_ca_root(ca)), 0);
	vo.bundle = tb;
	if (sn_svid_verify_pem(&vo, chain, len, NULL, &err) != 0)
		fail_msg("issued leaf does not verify: %s", err.msg);
	sn_trust_bundle_free(tb);
	free(chain);
}

static void test_explicit_params_refused(void **state)
{
	struct sn_ca_params cp = { .trust_domain = TD };
	struct sn_ca *ca = NULL;
	EVP_PKEY *k = EVP_EC_gen("P-256");
	char *named, *explicit;

	(void)state;
	assert_non_null(k);
	assert_int_equal(sn_ca_create(&cp, &ca, NULL), 0);
	named = csr_pem(k);
	assert_int_equal(EVP_PKEY_set_utf8_string_param(k, OSSL_PKEY_PARAM_EC_ENCODING,
							OSSL_PKEY_EC_ENCODING_EXPLICIT), 1);
	explicit = csr_pem(k);
	/* The same key, two spellings. */
	assert_string_not_equal(named, explicit);
	sign_and_verify(ca, named, 1);
	sign_and_verify(ca, explicit, 0);
	free(named);
	free(explicit);
	EVP_PKEY_free(k);
	sn_ca_free(ca);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_explicit_params_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
