/* Fuzzes the certificate signing requests sinewd receives from proxies,
 * through the real issuing path: sn_ca_service_issue_for (what
 * mesh_ca_on_csr and the token path call once the caller is known: read
 * the PEM CSR, check its key is an EC P-256 point, verify its
 * self-signature, sign a leaf), and sn_ca_sign_csr of src/tls, which also
 * takes DER.
 *
 * An input holding "-----BEGIN" is PEM text as is; any other input is
 * the DER of a request, wrapped here into a CERTIFICATE REQUEST block so
 * that the fuzzer mutates the ASN.1 rather than the base64.
 *
 * Invariants checked, not only the absence of crashes or leaks:
 * - a refused CSR is the client's fault: status 400 and a message;
 * - an issued leaf holds the CSR's own P-256 key and the identity asked
 *   for (never anything from the CSR), has the fixed validity, and
 *   verifies to the CA's bundle through its chain as an X.509-SVID;
 * - for DER input both readers accept exactly the same requests, and for
 *   PEM the src/tls reader accepts whatever sinewd's accepts.
 * The CA (in a temporary directory, removed at exit) and the clock are
 * made once and fixed; runs repeat, up to random serials and ECDSA
 * signatures. */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "sinew/control.h"
#include "sinew/identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

#define TD "cluster.local"
#define NS "default"
#define SA "web"
#define WEB_ID "spiffe://" TD "/ns/" NS "/sa/" SA
#define NOW ((time_t)1900000000)

static char dir[] = "/tmp/sinew-fuzz-csr-XXXXXX";
static struct sn_ca_service *service;     /* generated, with an intermediate */
static struct sn_trust_bundle *service_roots;
static struct sn_ca *plain_ca;            /* sn_ca_create: a lone root */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void teardown(void)
{
	sn_trust_bundle_free(service_roots);
	sn_ca_service_free(service);
	sn_ca_free(plain_ca);
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
	struct sn_ca_service_opts o = { .data_dir = dir, .no_sync = 1, .now = NOW, .intermediate = 1 };
	struct sn_ca_params cp = { .trust_domain = TD, .now = NOW };
	const char *bundle;
	char err[512];

	if (service != NULL)
		return;
	CHECK(mkdtemp(dir) != NULL);
	CHECK(sn_ca_service_open(&o, &service, err, sizeof(err)) == 0);
	bundle = sn_ca_service_bundle_pem(service);
	CHECK(sn_trust_bundle_new(TD, &service_roots) == 0);
	CHECK(sn_trust_bundle_add_pem(service_roots, bundle, strlen(bundle), NULL) == 0);
	CHECK(sn_ca_create(&cp, &plain_ca, NULL) == 0);
	atexit(teardown);
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

	if (has_begin(data, size) || size == 0) {
		out = malloc(size ? size : 1);
		CHECK(out != NULL);
		if (size > 0)
			memcpy(out, data, size);
		*len = size;
		return out;
	}
	bio = BIO_new(BIO_s_mem());
	CHECK(bio != NULL);
	CHECK(PEM_write_bio(bio, PEM_STRING_X509_REQ, "", data, (long)size) > 0);
	n = BIO_get_mem_data(bio, &p);
	CHECK(n > 0);
	out = malloc((size_t)n);
	CHECK(out != NULL);
	memcpy(out, p, (size_t)n);
	BIO_free(bio);
	*len = (size_t)n;
	return out;
}

/* The request's key, read independently of the code under test. */
static EVP_PKEY *csr_key(const char *pem, size_t len)
{
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	X509_REQ *req;
	EVP_PKEY *k = NULL;

	CHECK(bio != NULL);
	req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (req != NULL) {
		k = X509_REQ_get_pubkey(req);
		X509_REQ_free(req);
	}
	ERR_clear_error();
	return k;
}

static void check_leaf_key(X509 *leaf, EVP_PKEY *want)
{
	char group[64] = "";
	size_t gl = 0;
	EVP_PKEY *k = X509_get0_pubkey(leaf);

	CHECK(k != NULL && EVP_PKEY_is_a(k, "EC"));
	CHECK(EVP_PKEY_get_group_name(k, group, sizeof(group), &gl) == 1 && strcmp(group, "prime256v1") == 0);
	CHECK(want == NULL || EVP_PKEY_eq(k, want) == 1);
}

static void check_issued(const struct sn_ca_issued *is, const char *pem, size_t len)
{
	const char *chain = sn_ca_service_chain_pem(service);
	struct sn_svid_verify_opts vo = { .bundle = service_roots, .purpose = SN_SVID_PURPOSE_CLIENT, .now = NOW };
	size_t cl = strlen(is->certificate), hl = strlen(chain);
	STACK_OF(X509) *certs = NULL;
	struct sn_spiffe_id id;
	struct sn_id_error e;
	EVP_PKEY *want;
	char *full;

	CHECK(is->certificate != NULL && is->spiffe_id != NULL);
	CHECK(strcmp(is->spiffe_id, WEB_ID) == 0);
	CHECK(is->not_before == NOW - SN_SVID_BACKDATE && is->not_after == NOW + SN_SVID_DEFAULT_TTL);
	CHECK(is->serial[0] != '\0');
	full = malloc(cl + hl + 1);
	CHECK(full != NULL);
	memcpy(full, is->certificate, cl);
	memcpy(full + cl, chain, hl + 1);
	CHECK(sn_svid_verify_pem(&vo, full, cl + hl, &id, &e) == 0);
	CHECK(strcmp(id.uri, WEB_ID) == 0);
	CHECK(sn_pem_read_certs(is->certificate, cl, &certs) == 0 && sk_X509_num(certs) == 1);
	want = csr_key(pem, len);
	CHECK(want != NULL);
	check_leaf_key(sk_X509_value(certs, 0), want);
	EVP_PKEY_free(want);
	sk_X509_pop_free(certs, X509_free);
	free(full);
}

/* sn_ca_sign_csr on the raw input; returns its result. */
static int check_sign_csr(const uint8_t *data, size_t size, const char *pem, size_t len, int der)
{
	struct sn_svid_params p = { .ns = NS, .sa = SA, .now = NOW };
	STACK_OF(X509) *certs = NULL;
	struct sn_spiffe_id id;
	struct sn_id_error e;
	char *chain = NULL, *in;
	size_t chain_len = 0;
	int rc;

	in = malloc(size ? size : 1);
	CHECK(in != NULL);
	if (size > 0)
		memcpy(in, data, size);
	rc = sn_ca_sign_csr(plain_ca, in, size, &p, &chain, &chain_len, &e);
	free(in);
	if (rc != 0) {
		CHECK(rc == SN_EINVAL && e.msg[0] != '\0');
		CHECK(e.code == SN_ID_E_MALFORMED || e.code == SN_ID_E_CSR_KEY || e.code == SN_ID_E_CSR_SIGNATURE);
		return rc;
	}
	CHECK(e.code == SN_ID_OK && chain != NULL && chain_len == strlen(chain));
	CHECK(sn_pem_read_certs(chain, chain_len, &certs) == 0 && sk_X509_num(certs) == 1);
	CHECK(sn_svid_check_leaf(sk_X509_value(certs, 0), TD, &id, NULL) == 0);
	CHECK(strcmp(id.uri, WEB_ID) == 0);
	CHECK(sn_svid_chains_to(sk_X509_value(certs, 0), NULL, sn_ca_root(plain_ca), NOW) == 1);
	if (!der) {
		EVP_PKEY *want = csr_key(pem, len);
		check_leaf_key(sk_X509_value(certs, 0), want);
		EVP_PKEY_free(want);
	} else {
		check_leaf_key(sk_X509_value(certs, 0), NULL);
	}
	sk_X509_pop_free(certs, X509_free);
	free(chain);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sn_ca_issued is;
	struct sn_ca_refusal why;
	int der = !has_begin(data, size);
	size_t len = 0;
	char *pem;
	int rc, rc2;

	setup();
	pem = to_pem(data, size, &len);
	memset(&why, 0, sizeof(why));
	rc = sn_ca_service_issue_for(service, NS, SA, pem, len, NOW, &is, &why);
	if (rc == 0) {
		check_issued(&is, pem, len);
		sn_ca_issued_free(&is);
	} else {
		CHECK(rc == SN_EINVAL && why.status == 400);
		CHECK(why.msg[0] != '\0' && strnlen(why.msg, sizeof(why.msg)) < sizeof(why.msg));
	}
	rc2 = check_sign_csr(data, size, pem, len, der);
	if (der)
		CHECK((rc == 0) == (rc2 == 0));
	else if (rc == 0)
		CHECK(rc2 == 0);
	free(pem);
	return 0;
}
