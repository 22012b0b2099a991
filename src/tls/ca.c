/* The mesh CA: a root (self-signed, or the user's), optionally an
 * intermediate that does the issuing, and X.509-SVID issuance from CSRs.
 *
 * The CA decides everything in a leaf but its public key: the SPIFFE ID
 * comes from the identity it was asked to sign (which the caller derived
 * from an authenticated join token or an existing SVID), never from the
 * CSR, whose subject and extensions are ignored.
 *
 * A CA created here with an intermediate forgets the root's key once the
 * intermediate is signed: the online CA holds only the issuing key, and
 * rotating the default hierarchy means a new root and a new intermediate,
 * trusted alongside the old root until every leaf has been renewed
 * (docs/internals/identity.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "sinew/identity.h"
#include "tls_internal.h"

struct sn_ca {
	char td[SN_TRUST_DOMAIN_MAX + 1];
	STACK_OF(X509) *chain;       /* issuer first … root last */
	EVP_PKEY *key;               /* the issuer's */
};

const EVP_MD *sn_sign_md(EVP_PKEY *key)
{
	if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448"))
		return NULL;
	return EVP_sha256();
}

int sn_x509_add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return SN_EINVAL;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : SN_ENOMEM;
}

int sn_x509_random_serial(X509 *cert)
{
	uint8_t b[16];
	BIGNUM *bn = NULL;
	int rc = SN_ENOMEM;

	do {
		if (RAND_bytes(b, sizeof(b)) != 1)
			return SN_EIO;
	} while (b[0] == 0 && memcmp(b, b + 1, sizeof(b) - 1) == 0);
	/* A BIGNUM is a magnitude: the DER INTEGER stays positive, 17
	 * octets at most, within RFC 5280's 20. */
	bn = BN_bin2bn(b, sizeof(b), NULL);
	if (bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL)
		rc = 0;
	BN_free(bn);
	return rc;
}

int sn_pem_append(BIO *bio, X509 *cert)
{
	return PEM_write_bio_X509(bio, cert) == 1 ? 0 : SN_ENOMEM;
}

int sn_cert_sha256(X509 *cert, uint8_t out[32])
{
	unsigned int n = 0;

	if (X509_digest(cert, EVP_sha256(), out, &n) != 1 || n != 32)
		return SN_EINVAL;
	return 0;
}

static int set_validity(X509 *x, time_t nb, time_t na)
{
	if (ASN1_TIME_set(X509_getm_notBefore(x), nb) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), na) == NULL)
		return SN_ENOMEM;
	return 0;
}

/* Subject of a CA certificate: O=sinew, OU=<td> (if it fits), CN=<role>
 * <random hex>. The random part keeps an old and a new root apart by name
 * as well as by key identifier, for tools and people during rotation. */
static X509_NAME *ca_name(const char *role, const char *td)
{
	X509_NAME *n = X509_NAME_new();
	uint8_t r[4];
	char cn[64];

	if (n == NULL || RAND_bytes(r, sizeof(r)) != 1)
		goto fail;
	snprintf(cn, sizeof(cn), "sinew %s %02x%02x%02x%02x", role, r[0], r[1], r[2], r[3]);
	if (!X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"sinew", -1, -1, 0))
		goto fail;
	if (strlen(td) <= 64 &&
	    !X509_NAME_add_entry_by_txt(n, "OU", MBSTRING_ASC, (const unsigned char *)td, -1, -1, 0))
		goto fail;
	if (!X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0))
		goto fail;
	return n;
fail:
	X509_NAME_free(n);
	return NULL;
}

/* A CA certificate for key, signed by issuer/issuer_key (self-signed if
 * issuer is NULL). */
static X509 *make_ca_cert(const char *role, const char *td, EVP_PKEY *key, X509 *issuer,
			  EVP_PKEY *issuer_key, time_t nb, time_t na, int pathlen0)
{
	X509 *x = X509_new();
	X509_NAME *name = ca_name(role, td);

	if (x == NULL || name == NULL)
		goto fail;
	if (!X509_set_version(x, X509_VERSION_3) || sn_x509_random_serial(x) != 0 ||
	    !X509_set_subject_name(x, name) ||
	    !X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name) ||
	    !X509_set_pubkey(x, key) || set_validity(x, nb, na) != 0)
		goto fail;
	if (sn_x509_add_ext(x, issuer, NID_basic_constraints,
			    pathlen0 ? "critical,CA:TRUE,pathlen:0" : "critical,CA:TRUE") != 0 ||
	    sn_x509_add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign") != 0 ||
	    sn_x509_add_ext(x, issuer, NID_subject_key_identifier, "hash") != 0 ||
	    sn_x509_add_ext(x, issuer, NID_authority_key_identifier, "keyid:always") != 0)
		goto fail;
	if (X509_sign(x, issuer_key != NULL ? issuer_key : key, sn_sign_md(issuer_key != NULL ? issuer_key : key)) <= 0)
		goto fail;
	X509_NAME_free(name);
	return x;
fail:
	X509_NAME_free(name);
	X509_free(x);
	return NULL;
}

void sn_ca_free(struct sn_ca *ca)
{
	if (ca == NULL)
		return;
	sk_X509_pop_free(ca->chain, X509_free);
	EVP_PKEY_free(ca->key);
	free(ca);
}

static struct sn_ca *ca_alloc(const char *td)
{
	struct sn_ca *ca = calloc(1, sizeof(*ca));

	if (ca == NULL)
		return NULL;
	snprintf(ca->td, sizeof(ca->td), "%s", td);
	ca->chain = sk_X509_new_null();
	if (ca->chain == NULL) {
		free(ca);
		return NULL;
	}
	return ca;
}

int sn_ca_create(const struct sn_ca_params *p, struct sn_ca **out, struct sn_id_error *err)
{
	static const struct sn_ca_params defaults = { 0 };
	const char *td;
	time_t now;
	uint32_t root_ttl, int_ttl;
	EVP_PKEY *root_key = NULL, *int_key = NULL;
	X509 *root = NULL, *inter = NULL;
	struct sn_ca *ca = NULL;

	if (p == NULL)
		p = &defaults;
	td = p->trust_domain != NULL ? p->trust_domain : SN_ID_DEFAULT_TRUST_DOMAIN;
	if (sn_trust_domain_check(td, err) != 0)
		return SN_EINVAL;
	now = sn_id_now(p->now);
	root_ttl = p->root_ttl ? p->root_ttl : SN_CA_DEFAULT_ROOT_TTL;
	int_ttl = p->intermediate_ttl ? p->intermediate_ttl : SN_CA_DEFAULT_INTERMEDIATE_TTL;
	if (int_ttl > root_ttl)
		int_ttl = root_ttl;

	ca = ca_alloc(td);
	root_key = EVP_EC_gen("P-256");
	if (ca == NULL || root_key == NULL)
		goto nomem;
	root = make_ca_cert("root", td, root_key, NULL, NULL, now - SN_SVID_BACKDATE,
			    now + (time_t)root_ttl, 0);
	if (root == NULL)
		goto crypto;
	if (p->intermediate) {
		int_key = EVP_EC_gen("P-256");
		if (int_key == NULL)
			goto nomem;
		inter = make_ca_cert("intermediate", td, int_key, root, root_key,
				     now - SN_SVID_BACKDATE, now + (time_t)int_ttl, 1);
		if (inter == NULL)
			goto crypto;
		if (!sk_X509_push(ca->chain, inter))
			goto nomem;
		inter = NULL;
		ca->key = int_key;
		int_key = NULL;
		EVP_PKEY_free(root_key);
	} else {
		ca->key = root_key;
	}
	root_key = NULL;
	if (!sk_X509_push(ca->chain, root))
		goto nomem;
	*out = ca;
	sn_id_ok(err);
	return 0;
crypto:
	ERR_clear_error();
	sn_ca_free(ca);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(int_key);
	X509_free(root);
	X509_free(inter);
	return sn_id_fail(err, SN_EINVAL, SN_ID_E_CRYPTO, "could not create the CA certificates (OpenSSL failed)");
nomem:
	sn_ca_free(ca);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(int_key);
	X509_free(root);
	X509_free(inter);
	return sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory creating the CA");
}

/* Never prompt for a passphrase: an encrypted key is refused instead. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

int sn_ca_load_pem(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
		   const char *trust_domain, time_t now, struct sn_ca **out, struct sn_id_error *err)
{
	STACK_OF(X509) *certs = NULL, *untrusted = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *vctx = NULL;
	EVP_PKEY *key = NULL;
	BIO *bio = NULL;
	struct sn_ca *ca = NULL;
	X509 *issuer, *root;
	const char *td = trust_domain != NULL ? trust_domain : SN_ID_DEFAULT_TRUST_DOMAIN;
	int rc, n;

	if (sn_trust_domain_check(td, err) != 0)
		return SN_EINVAL;
	rc = sn_pem_read_certs(cert_pem, cert_len, &certs);
	if (rc != 0)
		return sn_id_fail(err, rc, rc == SN_ENOMEM ? SN_ID_E_NOMEM : SN_ID_E_MALFORMED,
				  "CA certificate file holds no PEM certificate");
	n = sk_X509_num(certs);
	issuer = sk_X509_value(certs, 0);
	root = sk_X509_value(certs, n - 1);
	if (key_len > INT32_MAX || (bio = BIO_new_mem_buf(key_pem, (int)key_len)) == NULL) {
		rc = sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory loading the CA");
		goto out;
	}
	key = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
	if (key == NULL) {
		rc = sn_id_fail(err, SN_EINVAL, SN_ID_E_MALFORMED,
				"CA key file holds no unencrypted PEM private key");
		goto out;
	}
	if (X509_check_issued(root, root) != X509_V_OK ||
	    X509_verify(root, X509_get0_pubkey(root)) != 1) {
		rc = sn_id_fail(err, SN_EINVAL, SN_ID_E_CA,
				"the last certificate of the CA file is not a self-signed root; "
				"append the root after the intermediate(s)");
		goto out;
	}
	if (!(X509_get_extension_flags(issuer) & EXFLAG_CA) ||
	    ((X509_get_extension_flags(issuer) & EXFLAG_KUSAGE) &&
	     !(X509_get_key_usage(issuer) & KU_KEY_CERT_SIGN))) {
		rc = sn_id_fail(err, SN_EINVAL, SN_ID_E_CA,
				"the first certificate of the CA file is not a CA allowed to sign "
				"certificates (needs basicConstraints CA:TRUE and keyUsage keyCertSign)");
		goto out;
	}
	if (X509_check_private_key(issuer, key) != 1) {
		rc = sn_id_fail(err, SN_EINVAL, SN_ID_E_CA,
				"the CA key does not match the first certificate of the CA file");
		goto out;
	}
	/* The issuer must chain to the root now, through the middle ones. */
	store = X509_STORE_new();
	untrusted = sk_X509_new_null();
	vctx = X509_STORE_CTX_new();
	if (store == NULL || untrusted == NULL || vctx == NULL || !X509_STORE_add_cert(store, root)) {
		rc = sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory loading the CA");
		goto out;
	}
	for (int i = 1; i < n - 1; i++)
		if (!sk_X509_push(untrusted, sk_X509_value(certs, i))) {
			rc = sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory loading the CA");
			goto out;
		}
	if (!X509_STORE_CTX_init(vctx, store, issuer, untrusted)) {
		rc = sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory loading the CA");
		goto out;
	}
	X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(vctx), sn_id_now(now));
	if (X509_verify_cert(vctx) != 1) {
		struct sn_id_error e;
		sn_verify_fail(vctx, td, &e);
		rc = sn_id_fail(err, SN_EINVAL, e.code == SN_ID_E_EXPIRED || e.code == SN_ID_E_NOT_YET_VALID ?
					      e.code : SN_ID_E_CA,
				"CA certificate file: %s", e.msg);
		goto out;
	}
	ca = ca_alloc(td);
	if (ca == NULL) {
		rc = sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory loading the CA");
		goto out;
	}
	sk_X509_pop_free(ca->chain, X509_free);
	ca->chain = certs;
	certs = NULL;
	ca->key = key;
	key = NULL;
	*out = ca;
	sn_id_ok(err);
	rc = 0;
out:
	ERR_clear_error();
	X509_STORE_CTX_free(vctx);
	sk_X509_free(untrusted);
	X509_STORE_free(store);
	EVP_PKEY_free(key);
	BIO_free(bio);
	sk_X509_pop_free(certs, X509_free);
	return rc;
}

int sn_ca_write_pem(const struct sn_ca *ca, char **cert_pem, size_t *cert_len, char **key_pem,
		    size_t *key_len)
{
	BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
	char *c = NULL;
	int rc = SN_ENOMEM;

	if (cb == NULL || kb == NULL)
		goto out;
	for (int i = 0; i < sk_X509_num(ca->chain); i++)
		if (sn_pem_append(cb, sk_X509_value(ca->chain, i)) != 0)
			goto out;
	if (!PEM_write_bio_PrivateKey(kb, ca->key, NULL, NULL, 0, NULL, NULL))
		goto out;
	if (sn_bio_to_str(cb, &c, cert_len) != 0)
		goto out;
	if (sn_bio_to_str(kb, key_pem, key_len) != 0) {
		free(c);
		goto out;
	}
	*cert_pem = c;
	rc = 0;
out:
	BIO_free(cb);
	/* The key's PEM went through this BIO's buffer: wipe it. */
	if (kb != NULL) {
		char *d;
		long n = BIO_get_mem_data(kb, &d);
		if (n > 0)
			OPENSSL_cleanse(d, (size_t)n);
		BIO_free(kb);
	}
	return rc;
}

X509 *sn_ca_root(const struct sn_ca *ca)
{
	return sk_X509_value(ca->chain, sk_X509_num(ca->chain) - 1);
}

X509 *sn_ca_issuer(const struct sn_ca *ca)
{
	return sk_X509_value(ca->chain, 0);
}

const char *sn_ca_trust_domain(const struct sn_ca *ca)
{
	return ca->td;
}

EVP_PKEY *sn_ca_issuer_key(const struct sn_ca *ca)
{
	return ca->key;
}

/* Only EC P-256 keys, in named-curve form, and only points on the curve. */
static int check_csr_key(EVP_PKEY *pk, struct sn_id_error *err)
{
	char group[64] = "", enc[32] = "";
	size_t glen = 0, elen = 0;
	EVP_PKEY_CTX *pctx;
	int ok;

	if (pk == NULL)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_CSR_KEY, "CSR has no readable public key");
	if (!EVP_PKEY_is_a(pk, "EC"))
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_CSR_KEY,
				  "CSR key is %s; the mesh issues only for ECDSA P-256 keys",
				  EVP_PKEY_get0_type_name(pk) ? EVP_PKEY_get0_type_name(pk) : "of an unknown type");
	if (!EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen) ||
	    strcmp(group, "prime256v1") != 0)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_CSR_KEY,
				  "CSR key is on curve %s; the mesh issues only for P-256",
				  group[0] ? group : "(unknown)");
	/* OpenSSL names P-256 even when the key spells out its parameters,
	 * but X.509 allows only the named form (RFC 5480 §2.1.1), and a leaf
	 * copying such a key fails verification at every peer. */
	if (!EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_EC_ENCODING, enc, sizeof(enc), &elen) ||
	    strcmp(enc, OSSL_PKEY_EC_ENCODING_GROUP) != 0)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_CSR_KEY,
				  "CSR key spells out its curve parameters; send a P-256 key in named-curve form");
	pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
	if (pctx == NULL)
		return sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory checking the CSR");
	ok = EVP_PKEY_public_check(pctx);
	EVP_PKEY_CTX_free(pctx);
	if (ok != 1)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_CSR_KEY, "CSR public key is not a valid P-256 point");
	return 0;
}

static int add_uri_san(X509 *x, const char *uri, size_t len)
{
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
	int rc = SN_ENOMEM;

	if (gens == NULL || gn == NULL || ia5 == NULL || !ASN1_STRING_set(ia5, uri, (int)len))
		goto out;
	GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
	ia5 = NULL;
	if (!sk_GENERAL_NAME_push(gens, gn))
		goto out;
	gn = NULL;
	/* Critical: the subject is empty, so the SAN is the whole identity
	 * (RFC 5280 §4.2.1.6). */
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 1, X509V3_ADD_DEFAULT) == 1)
		rc = 0;
out:
	ASN1_IA5STRING_free(ia5);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	return rc;
}

int sn_ca_sign_req(struct sn_ca *ca, X509_REQ *req, const struct sn_svid_params *p, X509 **leaf,
		   struct sn_id_error *err)
{
	struct sn_spiffe_id id;
	X509 *issuer = sn_ca_issuer(ca);
	EVP_PKEY *pk = X509_REQ_get0_pubkey(req);
	X509 *x = NULL;
	time_t now, nb, na, issuer_na;
	uint32_t ttl;
	int rc;

	rc = check_csr_key(pk, err);
	if (rc != 0)
		goto out;
	if (X509_REQ_verify(req, pk) != 1) {
		rc = sn_id_fail(err, SN_EINVAL, SN_ID_E_CSR_SIGNATURE,
				"CSR signature does not verify with its own key");
		goto out;
	}
	if (sn_spiffe_id_from_workload(ca->td, p->ns, p->sa, &id, err) != 0) {
		rc = SN_EINVAL;
		goto out;
	}
	now = sn_id_now(p->now);
	ttl = p->ttl ? p->ttl : SN_SVID_DEFAULT_TTL;
	nb = now - SN_SVID_BACKDATE;
	na = now + (time_t)ttl;
	/* A leaf outliving its issuer would fail then anyway; say so now. */
	if (sn_asn1_time_to_time(X509_get0_notAfter(issuer), &issuer_na) == 0 && na > issuer_na)
		na = issuer_na;
	if (na <= now) {
		char t[32];
		sn_asn1_time_str(X509_get0_notAfter(issuer), t, sizeof(t));
		rc = sn_id_fail(err, SN_EINVAL, SN_ID_E_EXPIRED, "CA certificate expired at %s", t);
		goto out;
	}
	x = X509_new();
	if (x == NULL || !X509_set_version(x, X509_VERSION_3))
		goto nomem;
	rc = sn_x509_random_serial(x);
	if (rc != 0)
		goto crypto;
	if (!X509_set_issuer_name(x, X509_get_subject_name(issuer)) || !X509_set_pubkey(x, pk) ||
	    set_validity(x, nb, na) != 0)
		goto nomem;
	if (sn_x509_add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
	    sn_x509_add_ext(x, issuer, NID_key_usage, "critical,digitalSignature") != 0 ||
	    sn_x509_add_ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth") != 0 ||
	    sn_x509_add_ext(x, issuer, NID_subject_key_identifier, "hash") != 0 ||
	    /* A user's CA may lack an SKI; then name it by issuer and serial. */
	    sn_x509_add_ext(x, issuer, NID_authority_key_identifier,
			    X509_get0_subject_key_id(issuer) != NULL ? "keyid:always" : "issuer:always") != 0 ||
	    add_uri_san(x, id.uri, id.len) != 0)
		goto crypto;
	if (X509_sign(x, ca->key, sn_sign_md(ca->key)) <= 0)
		goto crypto;
	*leaf = x;
	sn_id_ok(err);
	return 0;
crypto:
	X509_free(x);
	ERR_clear_error();
	return sn_id_fail(err, SN_EINVAL, SN_ID_E_CRYPTO, "could not build or sign the certificate (OpenSSL failed)");
nomem:
	X509_free(x);
	return sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory signing a certificate");
out:
	ERR_clear_error();
	return rc;
}

/* PEM if it looks like PEM, else DER. */
static X509_REQ *read_req(const char *s, size_t len)
{
	X509_REQ *req = NULL;

	if (len > INT32_MAX)
		return NULL;
	if (len >= 11 && memmem(s, len, "-----BEGIN ", 11) != NULL) {
		BIO *bio = BIO_new_mem_buf(s, (int)len);
		if (bio != NULL)
			req = PEM_read_bio_X509_REQ(bio, NULL, no_password, NULL);
		BIO_free(bio);
	} else {
		const unsigned char *p = (const unsigned char *)s;
		req = d2i_X509_REQ(NULL, &p, (long)len);
		if (req != NULL && p != (const unsigned char *)s + len) {
			X509_REQ_free(req);
			req = NULL;
		}
	}
	return req;
}

int sn_ca_sign_csr(struct sn_ca *ca, const char *reqs, size_t len, const struct sn_svid_params *p,
		   char **chain_pem, size_t *chain_len, struct sn_id_error *err)
{
	X509_REQ *req = read_req(reqs, len);
	X509 *leaf = NULL;
	BIO *bio = NULL;
	int rc;

	if (req == NULL) {
		ERR_clear_error();
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_MALFORMED, "not a PEM or DER certificate request");
	}
	rc = sn_ca_sign_req(ca, req, p, &leaf, err);
	if (rc != 0)
		goto out;
	bio = BIO_new(BIO_s_mem());
	rc = SN_ENOMEM;
	if (bio == NULL || sn_pem_append(bio, leaf) != 0)
		goto nomem;
	for (int i = 0; i < sk_X509_num(ca->chain) - 1; i++)
		if (sn_pem_append(bio, sk_X509_value(ca->chain, i)) != 0)
			goto nomem;
	if (sn_bio_to_str(bio, chain_pem, chain_len) != 0)
		goto nomem;
	rc = 0;
	goto out;
nomem:
	sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory signing a certificate");
out:
	BIO_free(bio);
	X509_free(leaf);
	X509_REQ_free(req);
	return rc;
}
