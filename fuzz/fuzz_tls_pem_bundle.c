/* Fuzzes the readers of PEM certificates that come from a peer or a file:
 * the trust bundle a proxy gets from sinewd (sn_trust_bundle_add_pem),
 * the chain it gets back from the CA and serves (sn_tls_ctx_new, then
 * sn_tls_ctx_describe for /identity), the chain a proxy presents to renew
 * (sn_svid_verify_pem), the user's CA file (sn_ca_load_pem), and under
 * them all sn_pem_read_certs and the leaf rules (sn_svid_check_leaf).
 *
 * An input holding "-----BEGIN" is PEM text as is; any other input is
 * DER, certificates back to back, wrapped here into PEM blocks so that the
 * fuzzer mutates the ASN.1 rather than the base64.
 *
 * Invariants checked, not only the absence of crashes or leaks:
 * - a failed sn_trust_bundle_add_pem adds nothing; a successful one adds
 *   only CA certificates, and the bundle's PEM reads back to the same
 *   roots;
 * - an accepted leaf names a valid SPIFFE ID of the trust domain, with a
 *   path, and cannot act as a CA;
 * - a chain that sn_svid_verify_pem accepts also chains to the root and
 *   passes the leaf rules;
 * - a served chain described by sn_tls_ctx_describe reads back;
 * - every refusal has a code and a message.
 * The fixed root, intermediate and leaf keys below are test material,
 * made with openssl for this target (EC P-256, valid 2026-12-06 to 2109+);
 * the seed chains in fuzz/corpus/tls_pem_bundle/ are signed by them. The
 * time is fixed: runs are deterministic. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "sinew/identity.h"
#include "sinew/tls_stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

#define TD "cluster.local"
#define NOW ((time_t)1900000000)   /* 2030-03-17: inside every seed's validity but one */
#define WEB_ID "spiffe://cluster.local/ns/default/sa/web"

static const char root_pem[] =
	"-----BEGIN CERTIFICATE-----\n"
	"MIIBfDCCASGgAwIBAgIBATAKBggqhkjOPQQDAjAkMQ4wDAYDVQQKDAVzaW5ldzES\n"
	"MBAGA1UEAwwJZnV6eiByb290MCAXDTI2MTIwNjE4MDcxNFoYDzIxMjYxMTEyMTgw\n"
	"NzE0WjAkMQ4wDAYDVQQKDAVzaW5ldzESMBAGA1UEAwwJZnV6eiByb290MFkwEwYH\n"
	"KoZIzj0CAQYIKoZIzj0DAQcDQgAEpmk0+WODa35YmHtHG9xrGvXEZIAFVWG8B3/B\n"
	"oRFBRN+3A5l211t5snHl9f3JWn5TTmWEK8v9Wc/urb1scPJ2uaNCMEAwDwYDVR0T\n"
	"AQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwHQYDVR0OBBYEFH2NOhgWT3+Xs1E+\n"
	"ooWlWxQwCbKKMAoGCCqGSM49BAMCA0kAMEYCIQD76OxAH8CDMSmc77XWXMvKqQ1Y\n"
	"1vYiMV7T8srAtrHSbgIhAKfE671Q5N7N6c5j2W/xgWJ5K8CWL8xrefhEua23SQlY\n"
	"-----END CERTIFICATE-----\n";

static const char root_key[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgF5ktFy/Xgaq8Pvz0\n"
	"uI/EqooL8cl9+HgjH3VMzLC2c9mhRANCAASmaTT5Y4NrfliYe0cb3Gsa9cRkgAVV\n"
	"YbwHf8GhEUFE37cDmXbXW3myceX1/claflNOZYQry/1Zz+6tvWxw8na5\n"
	"-----END PRIVATE KEY-----\n";

static const char inter_key[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgUZR7XSuvvOOpzj+m\n"
	"+83tXPlgErignOZ50JukvPffnuChRANCAATpSb/ZB5EgXqpYrVk06r0RJnx3ZuMo\n"
	"9oVn6GLhhYya+QNtVMRWe5oj0NBM7rFwlVFO4fUeASpf9xwYh4dDR3Gt\n"
	"-----END PRIVATE KEY-----\n";

/* The key of every seed leaf (spiffe://cluster.local/ns/default/sa/web). */
static const char leaf_key[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgLmFzYyPYajBT0cDP\n"
	"C+GfaPlgHN+BVVe7mXcs5zOsw1ShRANCAATO0KvUOobQSSDbBr1KhBLSnq+8yr4M\n"
	"ic+BiI8g2adXZbOSnLjG9/xnpilK7mQayULec2l3YB9jWgqTGc2STCGR\n"
	"-----END PRIVATE KEY-----\n";

/* Made once, never changed: the roots a proxy or sinewd trusts, and the
 * keys parsed (OpenSSL 3.0 takes milliseconds to decode a PEM key). */
static struct sn_trust_bundle *trusted;
static X509 *root;
static EVP_PKEY *k_root, *k_inter, *k_leaf;

static EVP_PKEY *read_key(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k;

	CHECK(bio != NULL);
	k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	CHECK(k != NULL);
	BIO_free(bio);
	return k;
}

static void setup(void)
{
	STACK_OF(X509) *s = NULL;

	if (trusted != NULL)
		return;
	CHECK(sn_trust_bundle_new(TD, &trusted) == 0);
	CHECK(sn_trust_bundle_add_pem(trusted, root_pem, sizeof(root_pem) - 1, NULL) == 0);
	CHECK(sn_pem_read_certs(root_pem, sizeof(root_pem) - 1, &s) == 0);
	root = sk_X509_pop(s);
	sk_X509_free(s);
	k_root = read_key(root_key);
	k_inter = read_key(inter_key);
	k_leaf = read_key(leaf_key);
}

static int matches(X509 *x, EVP_PKEY *k)
{
	int ok = X509_check_private_key(x, k) == 1;

	ERR_clear_error();
	return ok;
}

static int has_begin(const uint8_t *d, size_t n)
{
	return n >= 10 && memmem(d, n, "-----BEGIN", 10) != NULL;
}

/* The input as PEM text in an exact-size buffer (ASan sees overreads). */
static char *to_pem(const uint8_t *data, size_t size, size_t *len)
{
	BIO *bio;
	char *p, *out;
	long n;

	if (has_begin(data, size)) {
		out = malloc(size ? size : 1);
		CHECK(out != NULL);
		if (size > 0)
			memcpy(out, data, size);
		*len = size;
		return out;
	}
	bio = BIO_new(BIO_s_mem());
	CHECK(bio != NULL);
	for (const uint8_t *d = data; d < data + size;) {
		const unsigned char *q = d;
		X509 *x = d2i_X509(NULL, &q, (long)(data + size - d));
		size_t used = x != NULL ? (size_t)(q - d) : (size_t)(data + size - d);
		X509_free(x);
		CHECK(PEM_write_bio(bio, "CERTIFICATE", "", d, (long)used) > 0);
		d += used;
	}
	ERR_clear_error();
	n = BIO_get_mem_data(bio, &p);
	CHECK(n >= 0);
	out = malloc(n ? (size_t)n : 1);
	CHECK(out != NULL);
	if (n > 0)
		memcpy(out, p, (size_t)n);
	BIO_free(bio);
	*len = (size_t)n;
	return out;
}

static void check_err(int rc, const struct sn_id_error *e)
{
	CHECK(rc < 0);
	CHECK(e->code != SN_ID_OK && e->msg[0] != '\0' && strnlen(e->msg, sizeof(e->msg)) < sizeof(e->msg));
}

static void check_leaf(X509 *x)
{
	struct sn_spiffe_id id, again;
	struct sn_id_error e;
	int rc = sn_svid_check_leaf(x, TD, &id, &e);

	if (rc == 0) {
		struct sn_str td = sn_spiffe_id_trust_domain(&id);
		CHECK(e.code == SN_ID_OK);
		CHECK(sn_spiffe_id_parse(id.uri, id.len, &again, NULL) == 0);
		CHECK(sn_str_eq_cstr(td, TD) && id.path_off < id.len);
		CHECK(X509_check_ca(x) == 0);
	} else {
		check_err(rc, &e);
	}
	/* No error struct, no trust domain: the TLS verify callback's way. */
	CHECK((sn_svid_check_leaf(x, NULL, NULL, NULL) == 0) >= (rc == 0));
}

static void check_bundle(const char *pem, size_t len, int preload)
{
	struct sn_trust_bundle *b = NULL, *again = NULL;
	struct sn_id_error e;
	size_t before;
	char *out = NULL;
	size_t out_len = 0;
	int rc;

	CHECK(sn_trust_bundle_new(TD, &b) == 0);
	if (preload)
		CHECK(sn_trust_bundle_add(b, root) == 0);
	before = sn_trust_bundle_count(b);
	rc = sn_trust_bundle_add_pem(b, pem, len, &e);
	if (rc != 0) {
		check_err(rc, &e);
		CHECK(sn_trust_bundle_count(b) == before);
		goto out;
	}
	CHECK(e.code == SN_ID_OK);
	CHECK(sn_trust_bundle_count(b) >= before && sn_trust_bundle_count(b) >= 1);
	/* basicConstraints CA:TRUE is what the bundle asks; keyUsage is not
	 * checked there (a root without keyCertSign is taken, then signs
	 * nothing: OpenSSL refuses it as an issuer). */
	for (size_t i = 0; i < sn_trust_bundle_count(b); i++)
		CHECK(X509_get_extension_flags(sn_trust_bundle_get(b, i)) & EXFLAG_CA);
	/* What sinewd sends reads back to the same roots. */
	CHECK(sn_trust_bundle_pem(b, &out, &out_len) == 0);
	CHECK(sn_trust_bundle_new(TD, &again) == 0);
	CHECK(sn_trust_bundle_add_pem(again, out, out_len, NULL) == 0);
	CHECK(sn_trust_bundle_count(again) == sn_trust_bundle_count(b));
	for (size_t i = 0; i < sn_trust_bundle_count(b); i++)
		CHECK(X509_cmp(sn_trust_bundle_get(b, i), sn_trust_bundle_get(again, i)) == 0);
	X509_STORE *st = sn_trust_bundle_store(b);
	CHECK(st != NULL);
	X509_STORE_free(st);
out:
	free(out);
	sn_trust_bundle_free(again);
	sn_trust_bundle_free(b);
}

/* What sn_svid_verify_pem accepted: certs is the same text, read. */
static void check_verified(STACK_OF(X509) *certs, const struct sn_spiffe_id *id)
{
	STACK_OF(X509) *rest;
	struct sn_spiffe_id leaf_id;
	X509 *leaf;

	CHECK(certs != NULL);
	rest = sk_X509_dup(certs);
	CHECK(rest != NULL);
	leaf = sk_X509_shift(rest);
	CHECK(sn_svid_check_leaf(leaf, TD, &leaf_id, NULL) == 0);
	CHECK(strcmp(leaf_id.uri, id->uri) == 0);
	CHECK(sn_svid_chains_to(leaf, rest, root, NOW) == 1);
	sk_X509_free(rest);
}

static void check_verify(const char *pem, size_t len, STACK_OF(X509) *certs)
{
	static const char *const allowed[] = { WEB_ID };
	struct sn_svid_verify_opts o = { .bundle = trusted, .purpose = SN_SVID_PURPOSE_CLIENT, .now = NOW };
	struct sn_spiffe_id id;
	struct sn_id_error e;
	int rc = sn_svid_verify_pem(&o, pem, len, &id, &e);

	if (rc == 0)
		check_verified(certs, &id);
	else
		check_err(rc, &e);
	o.purpose = SN_SVID_PURPOSE_SERVER;
	o.allowed_ids = allowed;
	o.n_allowed = 1;
	rc = sn_svid_verify_pem(&o, pem, len, &id, &e);
	if (rc == 0) {
		CHECK(strcmp(id.uri, WEB_ID) == 0);
		check_verified(certs, &id);
	} else {
		check_err(rc, &e);
	}
}

static void check_ca_load(const char *pem, size_t len, const char *key)
{
	struct sn_ca *ca = NULL;
	struct sn_id_error e;
	int rc = sn_ca_load_pem(pem, len, key, strlen(key), TD, NOW, &ca, &e);

	if (rc != 0) {
		check_err(rc, &e);
		return;
	}
	CHECK(X509_check_ca(sn_ca_issuer(ca)) != 0);
	CHECK(X509_check_issued(sn_ca_root(ca), sn_ca_root(ca)) == X509_V_OK);
	sn_ca_free(ca);
}

/* The proxy serving the chain it was given, and describing it. */
static void check_served(const char *pem, size_t len, X509 *first)
{
	struct sn_spiffe_id first_id;
	const struct sn_spiffe_id *leaf_id = &first_id;
	static struct sn_tls_ctx_info info;
	struct sn_tls_ctx_opts o = { .role = SN_TLS_SERVER };
	struct sn_tls_identity id = { .key = k_leaf, .chain_pem = pem, .chain_len = len, .bundle = trusted };
	struct sn_tls_ctx *ctx = NULL;
	STACK_OF(X509) *back = NULL;
	struct sn_id_error e;
	int rc = sn_tls_ctx_new(&o, &id, &ctx, &e);

	if (rc != 0) {
		check_err(rc, &e);
		return;
	}
	/* Served: the leaf passed the leaf rules, and is what is described. */
	CHECK(sn_svid_check_leaf(first, TD, &first_id, NULL) == 0);
	CHECK(sn_tls_ctx_describe(ctx, SN_TLS_INFO_PEM, &info) == 0);
	CHECK(info.has_cert && info.n_chain >= 1 && info.n_chain <= info.chain_total);
	CHECK(info.n_chain <= SN_TLS_INFO_CHAIN_MAX && info.n_roots == 1);
	CHECK(strcmp(info.spiffe_id, leaf_id->uri) == 0 && strcmp(info.trust_domain, TD) == 0);
	CHECK(info.chain_pem_len < sizeof(info.chain_pem) && info.chain_pem[info.chain_pem_len] == '\0');
	CHECK(sn_pem_read_certs(info.chain_pem, info.chain_pem_len, &back) == 0);
	CHECK((size_t)sk_X509_num(back) <= info.n_chain);
	sk_X509_pop_free(back, X509_free);
	sn_tls_ctx_free(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	STACK_OF(X509) *certs = NULL;
	size_t len = 0;
	char *pem;
	int rc;

	setup();
	pem = to_pem(data, size, &len);
	rc = sn_pem_read_certs(pem, len, &certs);
	CHECK(rc == 0 || rc == SN_EINVAL);
	if (rc == 0) {
		CHECK(sk_X509_num(certs) >= 1);
		for (int i = 0; i < sk_X509_num(certs); i++)
			check_leaf(sk_X509_value(certs, i));
	}
	check_bundle(pem, len, 0);
	check_bundle(pem, len, 1);
	check_verify(pem, len, certs);
	if (rc == 0) {
		/* Loading a CA or a served identity costs milliseconds (key
		 * decoding, SSL_CTX_new): done when the key fits the first
		 * certificate, and for one input in 16 (by length, so that a
		 * run is repeatable) to reach the refusals. */
		X509 *first = sk_X509_value(certs, 0);
		int sample = size % 16 == 0;
		if (matches(first, k_inter) || sample)
			check_ca_load(pem, len, inter_key);
		else if (matches(first, k_root))
			check_ca_load(pem, len, root_key);
		if (matches(first, k_leaf) || sample)
			check_served(pem, len, first);
	}
	sk_X509_pop_free(certs, X509_free);
	free(pem);
	return 0;
}
