/* Trust bundles: the roots of one trust domain. During a root rotation a
 * bundle holds the old and the new root, so leaves from either verify;
 * the old one is removed once every workload holds a leaf from the new. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "sinew/identity.h"
#include "tls_internal.h"

#define BUNDLE_MAX_ROOTS 16  /* a rotation needs 2; more is a mistake */

struct sn_trust_bundle {
	char td[SN_TRUST_DOMAIN_MAX + 1];
	STACK_OF(X509) *roots;
};

int sn_pem_read_certs(const char *pem, size_t len, STACK_OF(X509) **out)
{
	STACK_OF(X509) *s;
	BIO *bio;
	int rc = 0;

	if (len > INT32_MAX)
		return SN_EINVAL;
	s = sk_X509_new_null();
	bio = BIO_new_mem_buf(pem, (int)len);
	if (s == NULL || bio == NULL) {
		rc = SN_ENOMEM;
		goto out;
	}
	for (;;) {
		X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
		if (x == NULL)
			break;
		if (!sk_X509_push(s, x)) {
			X509_free(x);
			rc = SN_ENOMEM;
			goto out;
		}
	}
	/* The loop ends at the end of input (PEM_R_NO_START_LINE) or at a
	 * block that does not decode: only the former is fine. */
	unsigned long e = ERR_peek_last_error();
	if (sk_X509_num(s) == 0 ||
	    (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)))
		rc = SN_EINVAL;
out:
	ERR_clear_error();
	BIO_free(bio);
	if (rc != 0)
		sk_X509_pop_free(s, X509_free);
	else
		*out = s;
	return rc;
}

int sn_trust_bundle_new(const char *td, struct sn_trust_bundle **out)
{
	struct sn_trust_bundle *b;

	if (sn_trust_domain_check(td, NULL) != 0)
		return SN_EINVAL;
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return SN_ENOMEM;
	snprintf(b->td, sizeof(b->td), "%s", td);
	b->roots = sk_X509_new_null();
	if (b->roots == NULL) {
		free(b);
		return SN_ENOMEM;
	}
	*out = b;
	return 0;
}

void sn_trust_bundle_free(struct sn_trust_bundle *b)
{
	if (b == NULL)
		return;
	sk_X509_pop_free(b->roots, X509_free);
	free(b);
}

static int find(const struct sn_trust_bundle *b, const uint8_t sha[32])
{
	uint8_t d[32];

	for (int i = 0; i < sk_X509_num(b->roots); i++)
		if (sn_cert_sha256(sk_X509_value(b->roots, i), d) == 0 && memcmp(d, sha, 32) == 0)
			return i;
	return -1;
}

int sn_trust_bundle_add(struct sn_trust_bundle *b, X509 *root)
{
	uint8_t d[32];

	if (!(X509_get_extension_flags(root) & EXFLAG_CA) || sn_cert_sha256(root, d) != 0)
		return SN_EINVAL;
	if (find(b, d) >= 0)
		return 0;
	if (sk_X509_num(b->roots) >= BUNDLE_MAX_ROOTS)
		return SN_ELIMIT;
	if (!X509_up_ref(root))
		return SN_ENOMEM;
	if (!sk_X509_push(b->roots, root)) {
		X509_free(root);
		return SN_ENOMEM;
	}
	return 0;
}

int sn_trust_bundle_add_pem(struct sn_trust_bundle *b, const char *pem, size_t len,
			    struct sn_id_error *err)
{
	STACK_OF(X509) *s = NULL;
	int rc = sn_pem_read_certs(pem, len, &s);
	int before = sk_X509_num(b->roots);

	if (rc != 0)
		return sn_id_fail(err, rc, rc == SN_ENOMEM ? SN_ID_E_NOMEM : SN_ID_E_MALFORMED,
				  "trust bundle holds no readable PEM certificate");
	for (int i = 0; i < sk_X509_num(s); i++) {
		if (!(X509_get_extension_flags(sk_X509_value(s, i)) & EXFLAG_CA)) {
			rc = sn_id_fail(err, SN_EINVAL, SN_ID_E_CA,
					"trust bundle certificate %d is not a CA (basicConstraints CA:TRUE)",
					i + 1);
			break;
		}
		rc = sn_trust_bundle_add(b, sk_X509_value(s, i));
		if (rc != 0) {
			sn_id_fail(err, rc, rc == SN_ENOMEM ? SN_ID_E_NOMEM : SN_ID_E_CA,
				   "could not add trust bundle certificate %d", i + 1);
			break;
		}
	}
	if (rc != 0)
		while (sk_X509_num(b->roots) > before)
			X509_free(sk_X509_pop(b->roots));
	else
		sn_id_ok(err);
	sk_X509_pop_free(s, X509_free);
	return rc;
}

int sn_trust_bundle_remove(struct sn_trust_bundle *b, const uint8_t sha256[32])
{
	int i = find(b, sha256);

	if (i < 0)
		return SN_ENOTFOUND;
	X509_free(sk_X509_delete(b->roots, i));
	return 0;
}

size_t sn_trust_bundle_count(const struct sn_trust_bundle *b)
{
	return (size_t)sk_X509_num(b->roots);
}

X509 *sn_trust_bundle_get(const struct sn_trust_bundle *b, size_t i)
{
	if (i >= (size_t)sk_X509_num(b->roots))
		return NULL;
	return sk_X509_value(b->roots, (int)i);
}

const char *sn_trust_bundle_trust_domain(const struct sn_trust_bundle *b)
{
	return b->td;
}

int sn_trust_bundle_pem(const struct sn_trust_bundle *b, char **pem, size_t *len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int rc = SN_ENOMEM;

	if (bio == NULL)
		return SN_ENOMEM;
	for (int i = 0; i < sk_X509_num(b->roots); i++)
		if (sn_pem_append(bio, sk_X509_value(b->roots, i)) != 0)
			goto out;
	rc = sn_bio_to_str(bio, pem, len);
out:
	BIO_free(bio);
	return rc;
}

X509_STORE *sn_trust_bundle_store(const struct sn_trust_bundle *b)
{
	X509_STORE *st = X509_STORE_new();

	if (st == NULL)
		return NULL;
	for (int i = 0; i < sk_X509_num(b->roots); i++) {
		if (!X509_STORE_add_cert(st, sk_X509_value(b->roots, i))) {
			X509_STORE_free(st);
			ERR_clear_error();
			return NULL;
		}
	}
	return st;
}
