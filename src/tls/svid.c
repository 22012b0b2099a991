/* X.509-SVID validation (SPIFFE X.509-SVID standard §4 and §5): RFC 5280
 * path validation by OpenSSL to a root of the trust bundle, then the
 * rules a leaf SVID must meet, each failure with its own code and a
 * sentence that says what was wrong. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "sinew/identity.h"
#include "tls_internal.h"

#define VERIFY_DEPTH 8

static const char *depth_name(int depth)
{
	return depth == 0 ? "leaf" : "CA certificate";
}

int sn_verify_fail(X509_STORE_CTX *ctx, const char *td, struct sn_id_error *err)
{
	int e = X509_STORE_CTX_get_error(ctx);
	int depth = X509_STORE_CTX_get_error_depth(ctx);
	X509 *cur = X509_STORE_CTX_get_current_cert(ctx);
	char t[32];

	switch (e) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		sn_asn1_time_str(cur != NULL ? X509_get0_notAfter(cur) : NULL, t, sizeof(t));
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_EXPIRED, "certificate expired at %s (%s, depth %d)",
				  t, depth_name(depth), depth);
	case X509_V_ERR_CERT_NOT_YET_VALID:
		sn_asn1_time_str(cur != NULL ? X509_get0_notBefore(cur) : NULL, t, sizeof(t));
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_NOT_YET_VALID,
				  "certificate is not valid until %s (%s, depth %d)", t, depth_name(depth), depth);
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_UNTRUSTED:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_UNTRUSTED,
				  "chain does not lead to a trusted root of trust domain %s (%s at depth %d)",
				  td, X509_verify_cert_error_string(e), depth);
	default:
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_CHAIN, "certificate chain is invalid at depth %d: %s",
				  depth, X509_verify_cert_error_string(e));
	}
}

/* Runs OpenSSL's path validation of leaf against store. Returns 1 valid,
 * 0 invalid (err set), or SN_ENOMEM. */
static int verify_path(X509_STORE *store, X509 *leaf, STACK_OF(X509) *inter, time_t now,
		       enum sn_svid_purpose purpose, const char *td, struct sn_id_error *err)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509_VERIFY_PARAM *param;
	int ok, p;

	if (ctx == NULL || !X509_STORE_CTX_init(ctx, store, leaf, inter)) {
		X509_STORE_CTX_free(ctx);
		return sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory verifying a certificate");
	}
	param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_time(param, sn_id_now(now));
	X509_VERIFY_PARAM_set_depth(param, VERIFY_DEPTH);
	p = purpose == SN_SVID_PURPOSE_SERVER ? X509_PURPOSE_SSL_SERVER :
	    purpose == SN_SVID_PURPOSE_CLIENT ? X509_PURPOSE_SSL_CLIENT : X509_PURPOSE_ANY;
	X509_STORE_CTX_set_purpose(ctx, p);
	ok = X509_verify_cert(ctx);
	if (ok != 1)
		sn_verify_fail(ctx, td, err);
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	return ok == 1;
}

static int count_uri_sans(X509 *leaf, const GENERAL_NAME **uri, struct sn_id_error *err,
			  GENERAL_NAMES **gens_out)
{
	int crit = -1, n = 0;
	GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);

	*gens_out = gens;
	if (gens == NULL) {
		ERR_clear_error();
		if (crit == -2)
			return sn_id_fail(err, -1, SN_ID_E_LEAF_EXTENSIONS,
					  "leaf has two subjectAltName extensions; an X.509-SVID has one");
		if (crit >= 0)
			return sn_id_fail(err, -1, SN_ID_E_LEAF_EXTENSIONS,
					  "leaf subjectAltName extension does not decode");
		return 0;
	}
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type == GEN_URI) {
			if (n == 0)
				*uri = g;
			n++;
		}
	}
	return n;
}

int sn_svid_check_leaf(X509 *leaf, const char *td, struct sn_spiffe_id *out, struct sn_id_error *err)
{
	struct sn_spiffe_id id;
	GENERAL_NAMES *gens = NULL;
	const GENERAL_NAME *uri = NULL;
	uint32_t flags = X509_get_extension_flags(leaf);
	uint32_t ku;
	struct sn_str got;
	int n, rc = SN_EINVAL;

	if (flags & EXFLAG_INVALID) {
		rc = sn_id_fail(err, SN_EINVAL, SN_ID_E_LEAF_EXTENSIONS,
				"leaf has malformed or duplicate extensions");
		goto out;
	}
	n = count_uri_sans(leaf, &uri, err, &gens);
	if (n < 0)
		goto out;
	if (n != 1) {
		if (n == 0)
			sn_id_fail(err, SN_EINVAL, SN_ID_E_URI_SAN_COUNT,
				   "leaf has no URI SAN; an X.509-SVID has exactly one");
		else
			sn_id_fail(err, SN_EINVAL, SN_ID_E_URI_SAN_COUNT,
				   "leaf has %d URI SANs; an X.509-SVID has exactly one", n);
		goto out;
	}
	{
		const ASN1_IA5STRING *s = uri->d.uniformResourceIdentifier;
		if (sn_spiffe_id_parse((const char *)ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s),
				       &id, err) != 0) {
			char why[sizeof(err->msg)];
			if (err != NULL) {
				snprintf(why, sizeof(why), "%s", err->msg);
				sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID, "leaf URI SAN: %s", why);
			}
			goto out;
		}
	}
	if (id.path_off == id.len) {
		sn_id_fail(err, SN_EINVAL, SN_ID_E_BAD_SPIFFE_ID,
			   "leaf SPIFFE ID %s has no path: it names a trust domain, not a workload", id.uri);
		goto out;
	}
	got = sn_spiffe_id_trust_domain(&id);
	if (td != NULL && !sn_str_eq_cstr(got, td)) {
		sn_id_fail(err, SN_EINVAL, SN_ID_E_TRUST_DOMAIN,
			   "leaf SPIFFE ID %s is of trust domain %.*s, not %s", id.uri, (int)got.len, got.p, td);
		goto out;
	}
	if (flags & EXFLAG_CA) {
		sn_id_fail(err, SN_EINVAL, SN_ID_E_LEAF_CA,
			   "leaf has basicConstraints CA:TRUE; an X.509-SVID leaf must be CA:FALSE");
		goto out;
	}
	if (!(flags & EXFLAG_KUSAGE)) {
		sn_id_fail(err, SN_EINVAL, SN_ID_E_LEAF_KEY_USAGE,
			   "leaf has no keyUsage extension; an X.509-SVID leaf needs digitalSignature");
		goto out;
	}
	ku = X509_get_key_usage(leaf);
	if (ku & KU_KEY_CERT_SIGN) {
		sn_id_fail(err, SN_EINVAL, SN_ID_E_LEAF_KEY_USAGE,
			   "leaf has keyUsage keyCertSign; an X.509-SVID leaf may not");
		goto out;
	}
	if (ku & KU_CRL_SIGN) {
		sn_id_fail(err, SN_EINVAL, SN_ID_E_LEAF_KEY_USAGE,
			   "leaf has keyUsage cRLSign; an X.509-SVID leaf may not");
		goto out;
	}
	if (!(ku & KU_DIGITAL_SIGNATURE)) {
		sn_id_fail(err, SN_EINVAL, SN_ID_E_LEAF_KEY_USAGE,
			   "leaf keyUsage lacks digitalSignature; an X.509-SVID leaf needs it");
		goto out;
	}
	/* Anything else that would let OpenSSL treat it as a CA (a v1
	 * self-signed certificate, say). */
	if (X509_check_ca(leaf) != 0) {
		sn_id_fail(err, SN_EINVAL, SN_ID_E_LEAF_CA, "leaf could act as a CA; an X.509-SVID leaf may not");
		goto out;
	}
	if (out != NULL)
		*out = id;
	sn_id_ok(err);
	rc = 0;
out:
	GENERAL_NAMES_free(gens);
	return rc;
}

int sn_svid_verify(const struct sn_svid_verify_opts *opts, X509 *leaf, STACK_OF(X509) *inter,
		   struct sn_spiffe_id *out, struct sn_id_error *err)
{
	struct sn_spiffe_id id;
	const char *td;
	X509_STORE *store;
	int ok;

	if (opts == NULL || opts->bundle == NULL || leaf == NULL)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_CHAIN, "no trust bundle or no certificate to verify");
	td = opts->trust_domain != NULL ? opts->trust_domain : sn_trust_bundle_trust_domain(opts->bundle);
	if (sn_trust_bundle_count(opts->bundle) == 0)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_UNTRUSTED,
				  "chain does not lead to a trusted root of trust domain %s (the bundle is empty)",
				  sn_trust_bundle_trust_domain(opts->bundle));
	store = sn_trust_bundle_store(opts->bundle);
	if (store == NULL)
		return sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory verifying a certificate");
	ok = verify_path(store, leaf, inter, opts->now, opts->purpose,
			 sn_trust_bundle_trust_domain(opts->bundle), err);
	X509_STORE_free(store);
	if (ok != 1)
		return ok < 0 ? ok : SN_EINVAL;
	if (sn_svid_check_leaf(leaf, td, &id, err) != 0)
		return SN_EINVAL;
	if (opts->allowed_ids != NULL) {
		size_t i;
		for (i = 0; i < opts->n_allowed; i++)
			if (opts->allowed_ids[i] != NULL && strcmp(opts->allowed_ids[i], id.uri) == 0)
				break;
		if (i == opts->n_allowed)
			return sn_id_fail(err, SN_EINVAL, SN_ID_E_ID_NOT_ALLOWED,
					  "peer is %s, which is not an identity expected here", id.uri);
	}
	if (out != NULL)
		*out = id;
	sn_id_ok(err);
	return 0;
}

int sn_svid_verify_pem(const struct sn_svid_verify_opts *opts, const char *pem, size_t len,
		       struct sn_spiffe_id *id, struct sn_id_error *err)
{
	STACK_OF(X509) *certs = NULL;
	X509 *leaf;
	int rc = sn_pem_read_certs(pem, len, &certs);

	if (rc != 0)
		return sn_id_fail(err, rc, rc == SN_ENOMEM ? SN_ID_E_NOMEM : SN_ID_E_MALFORMED,
				  "certificate chain holds no readable PEM certificate");
	leaf = sk_X509_shift(certs);
	rc = sn_svid_verify(opts, leaf, certs, id, err);
	X509_free(leaf);
	sk_X509_pop_free(certs, X509_free);
	return rc;
}

int sn_svid_chains_to(X509 *leaf, STACK_OF(X509) *inter, X509 *root, time_t now)
{
	X509_STORE *store = X509_STORE_new();
	int ok;

	if (store == NULL || !X509_STORE_add_cert(store, root)) {
		X509_STORE_free(store);
		ERR_clear_error();
		return SN_ENOMEM;
	}
	ok = verify_path(store, leaf, inter, now, SN_SVID_PURPOSE_ANY, "", NULL);
	X509_STORE_free(store);
	return ok;
}
