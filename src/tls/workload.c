/* The workload's side of issuance: its key (generated here, never sent),
 * the CSR that carries only the public half, and when to renew. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "sinew/identity.h"
#include "tls_internal.h"

int sn_workload_key_generate(EVP_PKEY **out)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	if (k == NULL) {
		ERR_clear_error();
		return SN_ENOMEM;
	}
	*out = k;
	return 0;
}

int sn_workload_csr_pem(EVP_PKEY *key, const char *id, char **pem, size_t *len)
{
	X509_REQ *req = X509_REQ_new();
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext = NULL;
	BIO *bio = NULL;
	int rc = SN_ENOMEM;

	if (req == NULL || !X509_REQ_set_version(req, 0) || !X509_REQ_set_pubkey(req, key))
		goto out;
	if (id != NULL) {
		char val[SN_SPIFFE_ID_MAX + 8];
		if (sn_spiffe_id_parse(id, strlen(id), NULL, NULL) != 0) {
			rc = SN_EINVAL;
			goto out;
		}
		snprintf(val, sizeof(val), "URI:%s", id);
		exts = sk_X509_EXTENSION_new_null();
		ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, val);
		if (exts == NULL || ext == NULL || !sk_X509_EXTENSION_push(exts, ext))
			goto out;
		ext = NULL;
		if (!X509_REQ_add_extensions(req, exts))
			goto out;
	}
	if (X509_REQ_sign(req, key, sn_sign_md(key)) <= 0) {
		rc = SN_EINVAL;
		goto out;
	}
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || !PEM_write_bio_X509_REQ(bio, req))
		goto out;
	rc = sn_bio_to_str(bio, pem, len);
out:
	ERR_clear_error();
	BIO_free(bio);
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	return rc;
}

time_t sn_svid_renew_at(time_t not_before, time_t not_after, uint32_t rnd)
{
	int64_t life = (int64_t)not_after - (int64_t)not_before;
	int64_t span, at;

	if (life <= 0)
		return not_before;
	span = life / 10;
	at = (int64_t)not_before + life / 2;
	if (span > 0)
		at += (int64_t)(rnd % (uint64_t)(2 * span + 1)) - span;
	return (time_t)SN_MAX(at, (int64_t)not_before);
}

time_t sn_svid_renew_at_cert(X509 *cert)
{
	time_t nb, na;
	uint32_t rnd = 0;

	if (sn_asn1_time_to_time(X509_get0_notBefore(cert), &nb) != 0 ||
	    sn_asn1_time_to_time(X509_get0_notAfter(cert), &na) != 0)
		return (time_t)-1;
	if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1) {
		ERR_clear_error();
		rnd = (uint32_t)(uintptr_t)cert ^ (uint32_t)nb;
	}
	return sn_svid_renew_at(nb, na, rnd);
}
