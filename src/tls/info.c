/* What a TLS context serves: its SPIFFE ID, the certificate chain it
 * presents and the roots it trusts, read from the current SSL_CTX
 * generation (a reference taken under the ctx's lock, so a concurrent
 * sn_tls_ctx_update is seen whole or not at all). For the proxy's
 * /identity, the certificate-expiry gauge and `sinew identity`. Only
 * certificates are read: the private key is never touched. */
#include <stdio.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "sinew/identity.h"
#include "sinew/tls_stream.h"
#include "tls_internal.h"

const char *sn_tls_cert_kind_str(enum sn_tls_cert_kind k)
{
	switch (k) {
	case SN_TLS_CERT_LEAF: return "leaf";
	case SN_TLS_CERT_INTERMEDIATE: return "intermediate";
	case SN_TLS_CERT_ROOT: return "root";
	}
	return "?";
}

static void hex(const unsigned char *p, size_t n, int upper, char *out)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* As i2a_ASN1_INTEGER (what `openssl x509 -serial` prints): the content
 * octets in upper-case hex, "-" first if negative, "00" for none. */
static void serial_str(const ASN1_INTEGER *s, char *out, size_t cap)
{
	const unsigned char *p = s != NULL ? ASN1_STRING_get0_data(s) : NULL;
	int len = s != NULL ? ASN1_STRING_length(s) : 0;
	size_t n = len > 0 ? (size_t)len : 0;
	size_t o = 0;

	if (cap < 4)
		return;
	if (s != NULL && ASN1_STRING_type(s) == V_ASN1_NEG_INTEGER)
		out[o++] = '-';
	if (p == NULL || n == 0) {
		snprintf(out + o, cap - o, "00");
		return;
	}
	if (n > (cap - o - 1) / 2)
		n = (cap - o - 1) / 2;   /* RFC 5280 allows 20 octets; cut a longer one */
	hex(p, n, 1, out + o);
}

static void name_str(const X509_NAME *name, char *out, size_t cap)
{
	/* X509_NAME_oneline escapes non-ASCII as \xXX and stops at cap. */
	if (name == NULL || X509_NAME_oneline(name, out, (int)cap) == NULL)
		out[0] = '\0';
}

static int64_t time_of(const ASN1_TIME *t)
{
	time_t v;

	return sn_asn1_time_to_time(t, &v) == 0 ? (int64_t)v : 0;
}

static void cert_info(X509 *c, enum sn_tls_cert_kind kind, struct sn_tls_cert_info *ci)
{
	uint8_t fp[32];

	memset(ci, 0, sizeof(*ci));
	ci->kind = kind;
	name_str(X509_get_subject_name(c), ci->subject, sizeof(ci->subject));
	name_str(X509_get_issuer_name(c), ci->issuer, sizeof(ci->issuer));
	serial_str(X509_get0_serialNumber(c), ci->serial, sizeof(ci->serial));
	ci->not_before = time_of(X509_get0_notBefore(c));
	ci->not_after = time_of(X509_get0_notAfter(c));
	if (sn_cert_sha256(c, fp) == 0)
		hex(fp, sizeof(fp), 0, ci->sha256);
}

/* Appends c's PEM to out->chain_pem if it fits whole. Returns 0, 1 if
 * it did not fit, or SN_ENOMEM. */
static int add_pem(struct sn_tls_ctx_info *out, X509 *c, struct sn_tls_cert_info *ci)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long n;

	if (b == NULL || PEM_write_bio_X509(b, c) != 1) {
		BIO_free(b);
		return SN_ENOMEM;
	}
	n = BIO_get_mem_data(b, &data);
	if (n <= 0) {
		BIO_free(b);
		return SN_ENOMEM;
	}
	if ((size_t)n < sizeof(out->chain_pem) - out->chain_pem_len) {
		memcpy(out->chain_pem + out->chain_pem_len, data, (size_t)n);
		ci->pem_off = out->chain_pem_len;
		ci->pem_len = (size_t)n;
		out->chain_pem_len += (size_t)n;
		out->chain_pem[out->chain_pem_len] = '\0';
		n = 0;
	}
	BIO_free(b);
	return n > 0;
}

static int describe_chain(SSL_CTX *c, unsigned flags, struct sn_tls_ctx_info *out)
{
	X509 *leaf = SSL_CTX_get0_certificate(c);
	STACK_OF(X509) *rest = NULL;
	struct sn_spiffe_id id;
	int rc = 0;

	if (leaf == NULL)
		return 0;
	out->has_cert = 1;
	/* The leaf passed these rules when the generation was built. */
	if (sn_svid_check_leaf(leaf, out->trust_domain, &id, NULL) == 0)
		snprintf(out->spiffe_id, sizeof(out->spiffe_id), "%s", id.uri);
	if (!SSL_CTX_get0_chain_certs(c, &rest))
		rest = NULL;
	out->chain_total = 1 + (size_t)(rest != NULL ? sk_X509_num(rest) : 0);
	for (size_t i = 0; i < out->chain_total && i < SN_TLS_INFO_CHAIN_MAX && rc == 0; i++) {
		X509 *x = i == 0 ? leaf : sk_X509_value(rest, (int)i - 1);
		struct sn_tls_cert_info *ci = &out->chain[out->n_chain++];
		cert_info(x, i == 0 ? SN_TLS_CERT_LEAF : SN_TLS_CERT_INTERMEDIATE, ci);
		if (flags & SN_TLS_INFO_PEM) {
			rc = add_pem(out, x, ci);
			if (rc == 1) {   /* the PEM stops at the last whole certificate */
				flags &= ~SN_TLS_INFO_PEM;
				rc = 0;
			}
		}
	}
	return rc;
}

static int describe_roots(SSL_CTX *c, struct sn_tls_ctx_info *out)
{
	X509_STORE *store = NULL;
	STACK_OF(X509) *all;

	if (!SSL_CTX_get0_verify_cert_store(c, &store) || store == NULL)
		store = SSL_CTX_get_cert_store(c);
	if (store == NULL)
		return 0;
	all = X509_STORE_get1_all_certs(store);   /* takes the store's lock */
	if (all == NULL)
		return SN_ENOMEM;
	out->roots_total = (size_t)sk_X509_num(all);
	for (size_t i = 0; i < out->roots_total && i < SN_TLS_INFO_ROOTS_MAX; i++)
		cert_info(sk_X509_value(all, (int)i), SN_TLS_CERT_ROOT, &out->roots[out->n_roots++]);
	sk_X509_pop_free(all, X509_free);
	return 0;
}

int sn_tls_ctx_describe(struct sn_tls_ctx *ctx, unsigned flags, struct sn_tls_ctx_info *out)
{
	SSL_CTX *c;
	int rc;

	memset(out, 0, sizeof(*out));
	c = sn_tls_ctx_current(ctx, &out->generation, out->trust_domain);
	if (c == NULL)
		return SN_ENOMEM;
	/* c is this generation's and immutable now; the lock is not needed
	 * to read it, only the reference that keeps it alive. */
	rc = describe_chain(c, flags, out);
	if (rc == 0)
		rc = describe_roots(c, out);
	SSL_CTX_free(c);
	ERR_clear_error();
	if (rc != 0)
		memset(out, 0, sizeof(*out));
	return rc;
}
