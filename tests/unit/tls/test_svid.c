/* Unit tests for the CA and X.509-SVID validation. Every negative case of
 * the SPIFFE X.509-SVID standard is a real certificate made with OpenSSL
 * and signed by a trusted CA, so that only the rule under test fails:
 * two URI SANs, CA:TRUE, keyCertSign, a foreign trust domain, expired,
 * not yet valid, a chain to an untrusted root. Then rotation, CSR checks
 * and the CA's PEM round trip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "sinew/identity.h"

#define TD "cluster.local"
#define REVIEWS "spiffe://cluster.local/ns/default/sa/reviews"

/* --- helpers --- */

static struct sn_ca *new_ca(int intermediate)
{
	struct sn_ca_params p = { .trust_domain = TD, .intermediate = intermediate };
	struct sn_ca *ca = NULL;
	struct sn_id_error err;

	if (sn_ca_create(&p, &ca, &err) != 0)
		fail_msg("sn_ca_create: %s", err.msg);
	return ca;
}

static struct sn_trust_bundle *bundle_of(struct sn_ca *a, struct sn_ca *b)
{
	struct sn_trust_bundle *tb = NULL;

	assert_int_equal(sn_trust_bundle_new(TD, &tb), 0);
	if (a != NULL)
		assert_int_equal(sn_trust_bundle_add(tb, sn_ca_root(a)), 0);
	if (b != NULL)
		assert_int_equal(sn_trust_bundle_add(tb, sn_ca_root(b)), 0);
	return tb;
}

static char *csr_for(EVP_PKEY *key, const char *id)
{
	char *pem = NULL;
	size_t len = 0;

	assert_int_equal(sn_workload_csr_pem(key, id, &pem, &len), 0);
	assert_int_equal(strlen(pem), len);
	return pem;
}

/* Issues a real SVID through the CA for default/reviews; returns the
 * chain PEM (caller frees). */
static char *issue(struct sn_ca *ca, const char *ns, const char *sa, time_t now, uint32_t ttl)
{
	EVP_PKEY *key = NULL;
	struct sn_svid_params p = { .ns = ns, .sa = sa, .now = now, .ttl = ttl };
	struct sn_id_error err;
	char *csr, *chain = NULL;
	size_t len = 0;

	assert_int_equal(sn_workload_key_generate(&key), 0);
	csr = csr_for(key, NULL);
	if (sn_ca_sign_csr(ca, csr, strlen(csr), &p, &chain, &len, &err) != 0)
		fail_msg("sign: %s", err.msg);
	assert_int_equal(strlen(chain), len);
	free(csr);
	EVP_PKEY_free(key);
	return chain;
}

static X509 *first_cert(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

	BIO_free(b);
	assert_non_null(x);
	return x;
}

/* What a forged leaf looks like; NULL fields are left out. */
struct forge {
	const char *san;     /* e.g. "URI:spiffe://a/b,URI:spiffe://a/c" */
	const char *bc;
	const char *ku;
	const char *eku;
	long nb_off, na_off; /* seconds from now */
	const char *cn;      /* subject CN; empty subject if NULL */
};

static const struct forge good_forge = {
	.san = "critical,URI:" REVIEWS,
	.bc = "critical,CA:FALSE",
	.ku = "critical,digitalSignature",
	.eku = "serverAuth,clientAuth",
	.nb_off = -60,
	.na_off = 3600,
};

static void add_ext(X509 *x, X509 *issuer, int nid, const char *v)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	if (v == NULL)
		return;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, v);
	assert_non_null(e);
	assert_int_equal(X509_add_ext(x, e, -1), 1);
	X509_EXTENSION_free(e);
}

/* A leaf built by hand and signed by ca's issuing key, bypassing every
 * rule the CA itself enforces. */
static X509 *forge_leaf_key(struct sn_ca *ca, const struct forge *f, EVP_PKEY *key)
{
	X509 *issuer = sn_ca_issuer(ca);
	X509 *x = X509_new();
	time_t now = time(NULL);

	X509_set_version(x, X509_VERSION_3);
	if (f->cn != NULL)
		X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
					   (const unsigned char *)f->cn, -1, -1, 0);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
	X509_set_issuer_name(x, X509_get_subject_name(issuer));
	X509_set_pubkey(x, key);
	ASN1_TIME_set(X509_getm_notBefore(x), now + f->nb_off);
	ASN1_TIME_set(X509_getm_notAfter(x), now + f->na_off);
	add_ext(x, issuer, NID_basic_constraints, f->bc);
	add_ext(x, issuer, NID_key_usage, f->ku);
	add_ext(x, issuer, NID_ext_key_usage, f->eku);
	add_ext(x, issuer, NID_authority_key_identifier, "keyid:always");
	add_ext(x, issuer, NID_subject_alt_name, f->san);
	assert_true(X509_sign(x, sn_ca_issuer_key(ca), EVP_sha256()) > 0);
	return x;
}

static X509 *forge_leaf(struct sn_ca *ca, const struct forge *f)
{
	EVP_PKEY *key = NULL;
	X509 *x;

	assert_int_equal(sn_workload_key_generate(&key), 0);
	x = forge_leaf_key(ca, f, key);
	EVP_PKEY_free(key);
	return x;
}

/* Verifies leaf against bundle; asserts the outcome and message. */
static void expect(struct sn_trust_bundle *tb, X509 *leaf, STACK_OF(X509) *inter, enum sn_id_err code,
		   const char *msg_part)
{
	struct sn_svid_verify_opts o = { .bundle = tb };
	struct sn_spiffe_id id;
	struct sn_id_error err;
	int rc = sn_svid_verify(&o, leaf, inter, &id, &err);

	if (code == SN_ID_OK) {
		if (rc != 0)
			fail_msg("expected success, got %s: %s", sn_id_err_str(err.code), err.msg);
		return;
	}
	if (rc != SN_EINVAL || err.code != code || strstr(err.msg, msg_part) == NULL)
		fail_msg("expected %s \"%s\", got rc %d %s \"%s\"", sn_id_err_str(code), msg_part, rc,
			 sn_id_err_str(err.code), err.msg);
}

/* --- tests --- */

static void test_issue_then_validate(void **state)
{
	struct sn_ca *ca = new_ca(0);
	struct sn_trust_bundle *tb = bundle_of(ca, NULL);
	time_t now = time(NULL);
	char *chain = issue(ca, "default", "reviews", 0, 0);
	struct sn_svid_verify_opts o = { .bundle = tb };
	struct sn_spiffe_id id;
	struct sn_id_error err;
	X509 *leaf = first_cert(chain);
	int crit = -1;

	if (sn_svid_verify_pem(&o, chain, strlen(chain), &id, &err) != 0)
		fail_msg("%s", err.msg);
	assert_string_equal(id.uri, REVIEWS);

	/* The leaf is what the standard and the issue ask for. */
	GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
	assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
	assert_int_equal(sk_GENERAL_NAME_value(gens, 0)->type, GEN_URI);
	assert_int_equal(crit, 1);
	GENERAL_NAMES_free(gens);
	assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(leaf)), 0);
	BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(leaf, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_int_equal(crit, 1);
	assert_false(bc->ca);
	BASIC_CONSTRAINTS_free(bc);
	ASN1_BIT_STRING *ku = X509_get_ext_d2i(leaf, NID_key_usage, &crit, NULL);
	assert_int_equal(crit, 1);
	ASN1_BIT_STRING_free(ku);
	assert_int_equal(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER | XKU_SSL_CLIENT);
	assert_non_null(X509_get0_authority_key_id(leaf));
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf),
					       X509_get0_subject_key_id(sn_ca_root(ca))), 0);
	EVP_PKEY *pk = X509_get0_pubkey(leaf);
	assert_true(EVP_PKEY_is_a(pk, "EC"));
	assert_int_equal(EVP_PKEY_get_bits(pk), 256);
	/* Serial: random, positive, more than 64 bits of it. */
	BIGNUM *sn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
	assert_true(BN_num_bits(sn) > 64 && BN_num_bits(sn) <= 128 && !BN_is_negative(sn));
	BN_free(sn);
	/* Validity: back-dated a minute, 24 h. */
	int day, sec;
	ASN1_TIME_diff(&day, &sec, X509_get0_notBefore(leaf), X509_get0_notAfter(leaf));
	assert_int_equal(day * 86400 + sec, 86400 + 60);
	time_t nb_expect = now - 60;
	assert_true(X509_cmp_time(X509_get0_notBefore(leaf), &(time_t){ nb_expect + 5 }) < 0);
	assert_true(X509_cmp_time(X509_get0_notBefore(leaf), &(time_t){ nb_expect - 5 }) > 0);
	/* The proxy's leaf-only check agrees. */
	assert_int_equal(sn_svid_check_leaf(leaf, TD, &id, &err), 0);
	assert_int_equal(sn_svid_check_leaf(leaf, "example.org", &id, &err), SN_EINVAL);

	X509_free(leaf);
	free(chain);
	sn_trust_bundle_free(tb);
	sn_ca_free(ca);
}

static void test_intermediate_chain(void **state)
{
	struct sn_ca *ca = new_ca(1);
	struct sn_trust_bundle *tb = bundle_of(ca, NULL);
	char *chain = issue(ca, "shop", "cart", 0, 0);
	struct sn_svid_verify_opts o = { .bundle = tb };
	struct sn_spiffe_id id;
	struct sn_id_error err;
	STACK_OF(X509) *certs = NULL;

	assert_ptr_not_equal(sn_ca_issuer(ca), sn_ca_root(ca));
	assert_int_equal(sn_pem_read_certs(chain, strlen(chain), &certs), 0);
	assert_int_equal(sk_X509_num(certs), 2);  /* leaf + intermediate, no root */
	if (sn_svid_verify_pem(&o, chain, strlen(chain), &id, &err) != 0)
		fail_msg("%s", err.msg);
	assert_string_equal(id.uri, "spiffe://cluster.local/ns/shop/sa/cart");
	/* Without its intermediate the leaf leads nowhere. */
	expect(tb, sk_X509_value(certs, 0), NULL, SN_ID_E_UNTRUSTED,
	       "chain does not lead to a trusted root of trust domain cluster.local");
	/* The intermediate carries pathlen 0 and cannot be a leaf. */
	expect(tb, sk_X509_value(certs, 1), NULL, SN_ID_E_URI_SAN_COUNT, "leaf has no URI SAN");
	sk_X509_pop_free(certs, X509_free);
	free(chain);
	sn_trust_bundle_free(tb);
	sn_ca_free(ca);
}

static void test_negative_cases(void **state)
{
	struct sn_ca *ca = new_ca(0), *other = new_ca(0);
	struct sn_trust_bundle *tb = bundle_of(ca, NULL);
	struct forge f;
	X509 *x;
	char *chain;

	/* The forge itself makes valid SVIDs: only the changed rule fails below. */
	x = forge_leaf(ca, &good_forge);
	expect(tb, x, NULL, SN_ID_OK, NULL);
	X509_free(x);

	f = good_forge;
	f.san = "URI:" REVIEWS ",URI:spiffe://cluster.local/ns/default/sa/ratings";
	x = forge_leaf(ca, &f);
	expect(tb, x, NULL, SN_ID_E_URI_SAN_COUNT, "leaf has 2 URI SANs; an X.509-SVID has exactly one");
	X509_free(x);

	f = good_forge;
	f.san = "DNS:reviews.default.svc";
	x = forge_leaf(ca, &f);
	expect(tb, x, NULL, SN_ID_E_URI_SAN_COUNT, "leaf has no URI SAN; an X.509-SVID has exactly one");
	X509_free(x);

	f = good_forge;
	f.bc = "critical,CA:TRUE";
	x = forge_leaf(ca, &f);
	expect(tb, x, NULL, SN_ID_E_LEAF_CA, "leaf has basicConstraints CA:TRUE");
	X509_free(x);

	f = good_forge;
	f.ku = "critical,digitalSignature,keyCertSign";
	x = forge_leaf(ca, &f);
	expect(tb, x, NULL, SN_ID_E_LEAF_KEY_USAGE, "leaf has keyUsage keyCertSign; an X.509-SVID leaf may not");
	X509_free(x);

	f = good_forge;
	f.ku = "critical,digitalSignature,cRLSign";
	x = forge_leaf(ca, &f);
	expect(tb, x, NULL, SN_ID_E_LEAF_KEY_USAGE, "cRLSign");
	X509_free(x);

	f = good_forge;
	f.ku = "critical,keyAgreement";
	x = forge_leaf(ca, &f);
	expect(tb, x, NULL, SN_ID_E_LEAF_KEY_USAGE, "lacks digitalSignature");
	X509_free(x);

	f = good_forge;
	f.ku = NULL;
	x = forge_leaf(ca, &f);
	expect(tb, x, NULL, SN_ID_E_LEAF_KEY_USAGE, "no keyUsage");
	X509_free(x);

	/* A foreign trust domain, signed by our own (trusted) CA. */
	f = good_forge;
	f.san = "critical,URI:spiffe://evil.example/ns/default/sa/reviews";
	x = forge_leaf(ca, &f);
	expect(tb, x, NULL, SN_ID_E_TRUST_DOMAIN,
	       "leaf SPIFFE ID spiffe://evil.example/ns/default/sa/reviews is of trust domain evil.example, not cluster.local");
	X509_free(x);

	/* A URI SAN that is no valid SPIFFE ID; an ID without a path. */
	f = good_forge;
	f.san = "critical,URI:spiffe://cluster.local/ns/../sa/admin";
	x = forge_leaf(ca, &f);
	expect(tb, x, NULL, SN_ID_E_BAD_SPIFFE_ID, "leaf URI SAN: SPIFFE ID path has a dot segment");
	X509_free(x);
	f.san = "critical,URI:spiffe://cluster.local";
	x = forge_leaf(ca, &f);
	expect(tb, x, NULL, SN_ID_E_BAD_SPIFFE_ID, "has no path");
	X509_free(x);
	f.san = "critical,URI:https://cluster.local/ns/a/sa/b";
	x = forge_leaf(ca, &f);
	expect(tb, x, NULL, SN_ID_E_BAD_SPIFFE_ID, "scheme is \"https\"");
	X509_free(x);

	/* Expired and not yet valid, issued through the CA's own path. */
	time_t now = time(NULL);
	chain = issue(ca, "default", "reviews", now - 3 * 86400, 3600);
	x = first_cert(chain);
	expect(tb, x, NULL, SN_ID_E_EXPIRED, "certificate expired at ");
	expect(tb, x, NULL, SN_ID_E_EXPIRED, "(leaf, depth 0)");
	X509_free(x);
	free(chain);
	chain = issue(ca, "default", "reviews", now + 2 * 86400, 0);
	x = first_cert(chain);
	expect(tb, x, NULL, SN_ID_E_NOT_YET_VALID, "certificate is not valid until ");
	X509_free(x);
	free(chain);
	/* The exact time is named. */
	{
		struct sn_svid_verify_opts o = { .bundle = tb, .now = 1700000000 + 7200 };
		struct sn_id_error err;
		struct sn_ca_params p = { .trust_domain = TD, .now = 1700000000 - 100 };
		struct sn_ca *old = NULL;
		struct sn_trust_bundle *otb;
		assert_int_equal(sn_ca_create(&p, &old, &err), 0);
		otb = bundle_of(old, NULL);
		o.bundle = otb;
		chain = issue(old, "default", "reviews", 1700000000, 3600);
		assert_int_equal(sn_svid_verify_pem(&o, chain, strlen(chain), NULL, &err), SN_EINVAL);
		assert_string_equal(err.msg, "certificate expired at 2023-11-14T23:13:20Z (leaf, depth 0)");
		free(chain);
		sn_trust_bundle_free(otb);
		sn_ca_free(old);
	}

	/* A chain to an untrusted root (another CA of the same trust domain). */
	chain = issue(other, "default", "reviews", 0, 0);
	x = first_cert(chain);
	expect(tb, x, NULL, SN_ID_E_UNTRUSTED, "chain does not lead to a trusted root of trust domain cluster.local");
	X509_free(x);
	free(chain);
	/* ... even when the attacker sends its root along as an "intermediate". */
	{
		STACK_OF(X509) *inter = sk_X509_new_null();
		chain = issue(other, "default", "reviews", 0, 0);
		x = first_cert(chain);
		sk_X509_push(inter, sn_ca_root(other));
		expect(tb, x, inter, SN_ID_E_UNTRUSTED, "chain does not lead to a trusted root");
		sk_X509_free(inter);
		X509_free(x);
		free(chain);
	}

	/* A leaf cannot act as a CA: a certificate signed with a valid SVID's
	 * key does not verify, even with the SVID sent along. */
	{
		EVP_PKEY *k = NULL, *k2 = NULL;
		struct forge mf = good_forge;
		struct sn_svid_verify_opts o = { .bundle = tb };
		struct sn_id_error err;
		STACK_OF(X509) *inter = sk_X509_new_null();
		X509 *mid;
		mf.cn = "reviews";  /* named, so the forged child can name its issuer */
		assert_int_equal(sn_workload_key_generate(&k), 0);
		assert_int_equal(sn_workload_key_generate(&k2), 0);
		mid = forge_leaf_key(ca, &mf, k);
		expect(tb, mid, NULL, SN_ID_OK, NULL);
		x = X509_new();
		X509_set_version(x, X509_VERSION_3);
		ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
		X509_set_issuer_name(x, X509_get_subject_name(mid));
		X509_set_pubkey(x, k2);
		ASN1_TIME_set(X509_getm_notBefore(x), now - 60);
		ASN1_TIME_set(X509_getm_notAfter(x), now + 3600);
		add_ext(x, mid, NID_basic_constraints, good_forge.bc);
		add_ext(x, mid, NID_key_usage, good_forge.ku);
		add_ext(x, mid, NID_subject_alt_name, "critical,URI:spiffe://cluster.local/ns/kube-system/sa/admin");
		assert_true(X509_sign(x, k, EVP_sha256()) > 0);
		sk_X509_push(inter, mid);
		assert_int_equal(sn_svid_verify(&o, x, inter, NULL, &err), SN_EINVAL);
		expect(tb, x, inter, SN_ID_E_CHAIN, "invalid CA certificate");
		sk_X509_free(inter);
		X509_free(x);
		X509_free(mid);
		EVP_PKEY_free(k);
		EVP_PKEY_free(k2);
	}

	sn_trust_bundle_free(tb);
	sn_ca_free(other);
	sn_ca_free(ca);
}

static void test_allowed_ids_and_purpose(void **state)
{
	struct sn_ca *ca = new_ca(0);
	struct sn_trust_bundle *tb = bundle_of(ca, NULL);
	char *chain = issue(ca, "default", "reviews", 0, 0);
	const char *want_ratings[] = { "spiffe://cluster.local/ns/default/sa/ratings" };
	const char *want_both[] = { "spiffe://cluster.local/ns/default/sa/ratings", REVIEWS };
	struct sn_svid_verify_opts o = { .bundle = tb, .allowed_ids = want_ratings, .n_allowed = 1 };
	struct sn_id_error err;
	struct forge f;
	X509 *x;

	/* Holding reviews' certificate does not pass as ratings. */
	assert_int_equal(sn_svid_verify_pem(&o, chain, strlen(chain), NULL, &err), SN_EINVAL);
	assert_int_equal(err.code, SN_ID_E_ID_NOT_ALLOWED);
	assert_string_equal(err.msg, "peer is " REVIEWS ", which is not an identity expected here");
	o.allowed_ids = want_both;
	o.n_allowed = 2;
	assert_int_equal(sn_svid_verify_pem(&o, chain, strlen(chain), NULL, &err), 0);
	/* A wrong expected trust domain. */
	o.allowed_ids = NULL;
	o.trust_domain = "example.org";
	assert_int_equal(sn_svid_verify_pem(&o, chain, strlen(chain), NULL, &err), SN_EINVAL);
	assert_int_equal(err.code, SN_ID_E_TRUST_DOMAIN);

	/* A server-only leaf is refused as a client. */
	f = good_forge;
	f.eku = "serverAuth";
	x = forge_leaf(ca, &f);
	o.trust_domain = NULL;
	o.purpose = SN_SVID_PURPOSE_SERVER;
	assert_int_equal(sn_svid_verify(&o, x, NULL, NULL, &err), 0);
	o.purpose = SN_SVID_PURPOSE_CLIENT;
	assert_int_equal(sn_svid_verify(&o, x, NULL, NULL, &err), SN_EINVAL);
	assert_int_equal(err.code, SN_ID_E_CHAIN);
	assert_non_null(strstr(err.msg, "purpose"));
	X509_free(x);
	free(chain);
	sn_trust_bundle_free(tb);
	sn_ca_free(ca);
}

static void test_rotation(void **state)
{
	struct sn_ca *old = new_ca(0), *newer = new_ca(1);
	struct sn_trust_bundle *both = bundle_of(old, newer), *only_new = bundle_of(newer, NULL);
	char *old_chain = issue(old, "default", "reviews", 0, 0);
	char *new_chain = issue(newer, "default", "reviews", 0, 0);
	X509 *old_leaf = first_cert(old_chain);
	STACK_OF(X509) *new_certs = NULL;
	uint8_t d[32];
	char *pem = NULL;
	size_t len = 0;
	struct sn_trust_bundle *copy = NULL;

	assert_int_equal(sn_pem_read_certs(new_chain, strlen(new_chain), &new_certs), 0);
	X509 *new_leaf = sk_X509_shift(new_certs);
	expect(both, old_leaf, NULL, SN_ID_OK, NULL);
	expect(both, new_leaf, new_certs, SN_ID_OK, NULL);
	expect(only_new, old_leaf, NULL, SN_ID_E_UNTRUSTED, "chain does not lead to a trusted root");
	expect(only_new, new_leaf, new_certs, SN_ID_OK, NULL);

	assert_int_equal(sn_svid_chains_to(old_leaf, NULL, sn_ca_root(old), 0), 1);
	assert_int_equal(sn_svid_chains_to(old_leaf, NULL, sn_ca_root(newer), 0), 0);
	assert_int_equal(sn_svid_chains_to(new_leaf, new_certs, sn_ca_root(newer), 0), 1);
	assert_int_equal(sn_svid_chains_to(new_leaf, NULL, sn_ca_root(newer), 0), 0);

	/* The bundle travels as PEM; a duplicate root is not added twice. */
	assert_int_equal(sn_trust_bundle_count(both), 2);
	assert_int_equal(sn_trust_bundle_add(both, sn_ca_root(old)), 0);
	assert_int_equal(sn_trust_bundle_count(both), 2);
	assert_int_equal(sn_trust_bundle_pem(both, &pem, &len), 0);
	assert_int_equal(sn_trust_bundle_new(TD, &copy), 0);
	assert_int_equal(sn_trust_bundle_add_pem(copy, pem, len, NULL), 0);
	assert_int_equal(sn_trust_bundle_count(copy), 2);
	expect(copy, old_leaf, NULL, SN_ID_OK, NULL);
	/* End of the rotation: the old root goes, and so do its leaves. */
	assert_int_equal(sn_cert_sha256(sn_ca_root(old), d), 0);
	assert_int_equal(sn_trust_bundle_remove(copy, d), 0);
	assert_int_equal(sn_trust_bundle_remove(copy, d), SN_ENOTFOUND);
	assert_int_equal(sn_trust_bundle_count(copy), 1);
	expect(copy, old_leaf, NULL, SN_ID_E_UNTRUSTED, "trust domain cluster.local");
	expect(copy, new_leaf, new_certs, SN_ID_OK, NULL);
	/* A leaf is no root, and an empty bundle trusts nothing. */
	assert_int_equal(sn_trust_bundle_add(copy, old_leaf), SN_EINVAL);
	assert_int_equal(sn_trust_bundle_add_pem(copy, old_chain, strlen(old_chain), NULL), SN_EINVAL);
	assert_int_equal(sn_trust_bundle_count(copy), 1);
	sn_trust_bundle_free(copy);
	assert_int_equal(sn_trust_bundle_new(TD, &copy), 0);
	expect(copy, old_leaf, NULL, SN_ID_E_UNTRUSTED, "the bundle is empty");
	X509_STORE *st = sn_trust_bundle_store(both);
	assert_non_null(st);
	X509_STORE_free(st);

	sn_trust_bundle_free(copy);
	free(pem);
	X509_free(new_leaf);
	X509_free(old_leaf);
	sk_X509_pop_free(new_certs, X509_free);
	free(old_chain);
	free(new_chain);
	sn_trust_bundle_free(both);
	sn_trust_bundle_free(only_new);
	sn_ca_free(old);
	sn_ca_free(newer);
}

static char *csr_with_key(EVP_PKEY *key)
{
	X509_REQ *req = X509_REQ_new();
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	X509_REQ_set_version(req, 0);
	X509_REQ_set_pubkey(req, key);
	assert_true(X509_REQ_sign(req, key, EVP_PKEY_is_a(key, "ED25519") ? NULL : EVP_sha256()) > 0);
	PEM_write_bio_X509_REQ(b, req);
	n = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t)n);
	BIO_free(b);
	X509_REQ_free(req);
	return out;
}

static void test_csr_checks(void **state)
{
	struct sn_ca *ca = new_ca(0);
	struct sn_svid_params p = { .ns = "default", .sa = "reviews" };
	struct sn_id_error err;
	char *csr, *chain = NULL;
	size_t len;
	EVP_PKEY *k;

	/* Wrong key types. */
	k = EVP_RSA_gen(2048);
	csr = csr_with_key(k);
	assert_int_equal(sn_ca_sign_csr(ca, csr, strlen(csr), &p, &chain, &len, &err), SN_EINVAL);
	assert_int_equal(err.code, SN_ID_E_CSR_KEY);
	assert_string_equal(err.msg, "CSR key is RSA; the mesh issues only for ECDSA P-256 keys");
	free(csr);
	EVP_PKEY_free(k);
	k = EVP_EC_gen("P-384");
	csr = csr_with_key(k);
	assert_int_equal(sn_ca_sign_csr(ca, csr, strlen(csr), &p, &chain, &len, &err), SN_EINVAL);
	assert_int_equal(err.code, SN_ID_E_CSR_KEY);
	assert_string_equal(err.msg, "CSR key is on curve secp384r1; the mesh issues only for P-256");
	free(csr);
	EVP_PKEY_free(k);
	k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	csr = csr_with_key(k);
	assert_int_equal(sn_ca_sign_csr(ca, csr, strlen(csr), &p, &chain, &len, &err), SN_EINVAL);
	assert_int_equal(err.code, SN_ID_E_CSR_KEY);
	free(csr);
	EVP_PKEY_free(k);

	/* A CSR whose signature does not verify: its last byte (inside the
	 * ECDSA signature's s) flipped. */
	{
		EVP_PKEY *a = NULL;
		X509_REQ *req = X509_REQ_new();
		unsigned char *der = NULL;
		int n;
		assert_int_equal(sn_workload_key_generate(&a), 0);
		X509_REQ_set_version(req, 0);
		X509_REQ_set_pubkey(req, a);
		assert_true(X509_REQ_sign(req, a, EVP_sha256()) > 0);
		n = i2d_X509_REQ(req, &der);
		assert_true(n > 0);
		der[n - 1] ^= 0x01;
		assert_int_equal(sn_ca_sign_csr(ca, (const char *)der, (size_t)n, &p, &chain, &len, &err), SN_EINVAL);
		assert_int_equal(err.code, SN_ID_E_CSR_SIGNATURE);
		assert_string_equal(err.msg, "CSR signature does not verify with its own key");
		OPENSSL_free(der);
		X509_REQ_free(req);
		EVP_PKEY_free(a);
	}

	/* Garbage, and an identity that is no SPIFFE ID. */
	assert_int_equal(sn_ca_sign_csr(ca, "hello", 5, &p, &chain, &len, &err), SN_EINVAL);
	assert_int_equal(err.code, SN_ID_E_MALFORMED);
	assert_int_equal(sn_workload_key_generate(&k), 0);
	csr = csr_for(k, NULL);
	struct sn_svid_params bad = { .ns = "default", .sa = "../admin" };
	assert_int_equal(sn_ca_sign_csr(ca, csr, strlen(csr), &bad, &chain, &len, &err), SN_EINVAL);
	assert_int_equal(err.code, SN_ID_E_BAD_SPIFFE_ID);
	free(csr);

	/* The CSR asks for admin (URI SAN, DNS SAN, CN): the CA ignores it and
	 * puts the identity it was asked to sign, and nothing else. */
	{
		X509_REQ *req = X509_REQ_new();
		X509_NAME *nm = X509_NAME_new();
		STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
		BIO *bio = BIO_new(BIO_s_mem());
		char *data;
		long n;
		X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"admin", -1, -1, 0);
		X509_REQ_set_version(req, 0);
		X509_REQ_set_subject_name(req, nm);
		X509_REQ_set_pubkey(req, k);
		sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name,
			"URI:spiffe://cluster.local/ns/kube-system/sa/admin,DNS:admin.example"));
		sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints, "critical,CA:TRUE"));
		X509_REQ_add_extensions(req, exts);
		assert_true(X509_REQ_sign(req, k, EVP_sha256()) > 0);
		PEM_write_bio_X509_REQ(bio, req);
		n = BIO_get_mem_data(bio, &data);
		if (sn_ca_sign_csr(ca, data, (size_t)n, &p, &chain, &len, &err) != 0)
			fail_msg("%s", err.msg);
		X509 *leaf = first_cert(chain);
		struct sn_spiffe_id id;
		assert_int_equal(sn_svid_check_leaf(leaf, TD, &id, &err), 0);
		assert_string_equal(id.uri, REVIEWS);
		GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
		assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
		GENERAL_NAMES_free(gens);
		assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(leaf)), 0);
		assert_false(X509_get_extension_flags(leaf) & EXFLAG_CA);
		/* ... and the public key is the CSR's. */
		assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(leaf), k), 1);
		X509_free(leaf);
		free(chain);
		BIO_free(bio);
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
		X509_NAME_free(nm);
		X509_REQ_free(req);
	}
	EVP_PKEY_free(k);
	sn_ca_free(ca);
}

static void test_ca_pem_round_trip(void **state)
{
	for (int inter = 0; inter <= 1; inter++) {
		struct sn_ca *ca = new_ca(inter), *loaded = NULL, *other = new_ca(0);
		struct sn_trust_bundle *tb = bundle_of(ca, NULL);
		struct sn_id_error err;
		char *cert = NULL, *key = NULL, *okey = NULL, *ocert = NULL, *chain;
		size_t clen, klen, oklen, oclen;

		assert_int_equal(sn_ca_write_pem(ca, &cert, &clen, &key, &klen), 0);
		assert_non_null(strstr(key, "-----BEGIN PRIVATE KEY-----"));
		if (sn_ca_load_pem(cert, clen, key, klen, TD, 0, &loaded, &err) != 0)
			fail_msg("load: %s", err.msg);
		assert_int_equal(X509_cmp(sn_ca_root(loaded), sn_ca_root(ca)), 0);
		assert_int_equal(X509_cmp(sn_ca_issuer(loaded), sn_ca_issuer(ca)), 0);
		assert_string_equal(sn_ca_trust_domain(loaded), TD);
		chain = issue(loaded, "default", "reviews", 0, 0);
		struct sn_svid_verify_opts o = { .bundle = tb };
		if (sn_svid_verify_pem(&o, chain, strlen(chain), NULL, &err) != 0)
			fail_msg("verify: %s", err.msg);
		free(chain);
		sn_ca_free(loaded);

		/* A key that is not the issuer's. */
		assert_int_equal(sn_ca_write_pem(other, &ocert, &oclen, &okey, &oklen), 0);
		assert_int_equal(sn_ca_load_pem(cert, clen, okey, oklen, TD, 0, &loaded, &err), SN_EINVAL);
		assert_int_equal(err.code, SN_ID_E_CA);
		assert_non_null(strstr(err.msg, "does not match"));
		/* Garbage and a missing root. */
		assert_int_equal(sn_ca_load_pem("junk", 4, key, klen, TD, 0, &loaded, &err), SN_EINVAL);
		assert_int_equal(err.code, SN_ID_E_MALFORMED);
		assert_int_equal(sn_ca_load_pem(cert, clen, "junk", 4, TD, 0, &loaded, &err), SN_EINVAL);
		assert_int_equal(err.code, SN_ID_E_MALFORMED);
		if (inter) {
			/* Only the intermediate, without its root. */
			char *end = strstr(cert, "-----END CERTIFICATE-----");
			size_t first = (size_t)(end - cert) + strlen("-----END CERTIFICATE-----\n");
			assert_int_equal(sn_ca_load_pem(cert, first, key, klen, TD, 0, &loaded, &err), SN_EINVAL);
			assert_int_equal(err.code, SN_ID_E_CA);
			assert_non_null(strstr(err.msg, "not a self-signed root"));
			/* Intermediate + a foreign root: no path. */
			char both[8192];
			snprintf(both, sizeof(both), "%.*s%s", (int)first, cert, ocert);
			assert_int_equal(sn_ca_load_pem(both, strlen(both), key, klen, TD, 0, &loaded, &err), SN_EINVAL);
			assert_int_equal(err.code, SN_ID_E_CA);
		}
		/* Expired by the time it is loaded. */
		assert_int_equal(sn_ca_load_pem(cert, clen, key, klen, TD, time(NULL) + 400L * 86400, &loaded, &err),
				 SN_EINVAL);
		assert_int_equal(err.code, SN_ID_E_EXPIRED);
		/* A leaf is not a CA. */
		{
			EVP_PKEY *lk = NULL;
			struct sn_svid_params p = { .ns = "a", .sa = "b" };
			assert_int_equal(sn_workload_key_generate(&lk), 0);
			char *csr = csr_for(lk, NULL);
			char *lchain = NULL, *lkey = NULL;
			size_t lcl = 0;
			BIO *kb = BIO_new(BIO_s_mem());
			struct sn_ca *self = new_ca(0);
			assert_int_equal(sn_ca_sign_csr(self, csr, strlen(csr), &p, &lchain, &lcl, &err), 0);
			PEM_write_bio_PrivateKey(kb, lk, NULL, NULL, 0, NULL, NULL);
			long kl = BIO_get_mem_data(kb, &lkey);
			char both[8192];
			char *scert = NULL, *skey = NULL;
			size_t scl, skl;
			assert_int_equal(sn_ca_write_pem(self, &scert, &scl, &skey, &skl), 0);
			snprintf(both, sizeof(both), "%s%s", lchain, scert);
			assert_int_equal(sn_ca_load_pem(both, strlen(both), lkey, (size_t)kl, TD, 0, &loaded, &err),
					 SN_EINVAL);
			assert_int_equal(err.code, SN_ID_E_CA);
			assert_non_null(strstr(err.msg, "not a CA allowed to sign"));
			free(scert);
			free(skey);
			BIO_free(kb);
			free(lchain);
			free(csr);
			EVP_PKEY_free(lk);
			sn_ca_free(self);
		}
		free(cert);
		free(key);
		free(ocert);
		free(okey);
		sn_trust_bundle_free(tb);
		sn_ca_free(other);
		sn_ca_free(ca);
	}
}

static void test_ca_params_and_leaf_clamp(void **state)
{
	struct sn_ca_params p = { .trust_domain = "example.org", .root_ttl = 7200 };
	struct sn_ca *ca = NULL;
	struct sn_id_error err;
	char *chain;
	X509 *leaf;
	int day, sec;

	assert_int_equal(sn_ca_create(&p, &ca, &err), 0);
	ASN1_TIME_diff(&day, &sec, X509_get0_notBefore(sn_ca_root(ca)), X509_get0_notAfter(sn_ca_root(ca)));
	assert_int_equal(day * 86400 + sec, 7200 + 60);
	assert_true(X509_get_extension_flags(sn_ca_root(ca)) & EXFLAG_CA);
	assert_int_equal(X509_get_key_usage(sn_ca_root(ca)), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	assert_non_null(X509_get0_subject_key_id(sn_ca_root(ca)));
	assert_non_null(X509_get0_authority_key_id(sn_ca_root(ca)));
	/* A 24 h leaf from a 2 h root ends with the root. */
	chain = issue(ca, "default", "reviews", 0, 0);
	leaf = first_cert(chain);
	assert_int_equal(ASN1_TIME_compare(X509_get0_notAfter(leaf), X509_get0_notAfter(sn_ca_root(ca))), 0);
	X509_free(leaf);
	free(chain);
	sn_ca_free(ca);

	p.trust_domain = "Bad.Domain";
	assert_int_equal(sn_ca_create(&p, &ca, &err), SN_EINVAL);
	assert_int_equal(err.code, SN_ID_E_BAD_SPIFFE_ID);
	/* Defaults: cluster.local, a year. */
	assert_int_equal(sn_ca_create(NULL, &ca, &err), 0);
	assert_string_equal(sn_ca_trust_domain(ca), "cluster.local");
	sn_ca_free(ca);
}

static void test_renew_at(void **state)
{
	const time_t nb = 1000000, na = nb + 86400;
	time_t lo = na, hi = nb;

	/* Half-life, moved by at most ±10 % of the lifetime. */
	for (uint32_t r = 0; r < 200000; r += 7) {
		time_t t = sn_svid_renew_at(nb, na, r * 2654435761u);
		lo = t < lo ? t : lo;
		hi = t > hi ? t : hi;
	}
	assert_true(lo >= nb + 86400 * 4 / 10 && lo < nb + 86400 * 42 / 100);
	assert_true(hi <= nb + 86400 * 6 / 10 && hi > nb + 86400 * 58 / 100);
	assert_int_equal(sn_svid_renew_at(nb, na, 8640), nb + 43200);  /* rnd == span: no move */
	assert_int_equal(sn_svid_renew_at(nb, nb, 5), nb);
	assert_int_equal(sn_svid_renew_at(nb, nb - 10, 5), nb);
	assert_int_equal(sn_svid_renew_at(nb, nb + 5, 12345), nb + 2);

	/* On a real leaf. */
	struct sn_ca *ca = new_ca(0);
	char *chain = issue(ca, "default", "reviews", 0, 0);
	X509 *leaf = first_cert(chain);
	time_t now = time(NULL), at = sn_svid_renew_at_cert(leaf);
	assert_true(at >= now - 60 + (86400 + 60) * 4 / 10 - 5);
	assert_true(at <= now - 60 + (86400 + 60) * 6 / 10 + 5);
	X509_free(leaf);
	free(chain);
	sn_ca_free(ca);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_issue_then_validate),
		cmocka_unit_test(test_intermediate_chain),
		cmocka_unit_test(test_negative_cases),
		cmocka_unit_test(test_allowed_ids_and_purpose),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_csr_checks),
		cmocka_unit_test(test_ca_pem_round_trip),
		cmocka_unit_test(test_ca_params_and_leaf_clamp),
		cmocka_unit_test(test_renew_at),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
