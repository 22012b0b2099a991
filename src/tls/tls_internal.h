#ifndef SINEW_TLS_INTERNAL_H
#define SINEW_TLS_INTERNAL_H

/* Helpers shared by the files of src/tls/; not a public interface. */

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "sinew/identity.h"

/* Sets err (may be NULL) to code and a formatted message; returns rc so
 * that a failure path reads "return id_fail(err, SN_EINVAL, ...)". */
int sn_id_fail(struct sn_id_error *err, int rc, enum sn_id_err code,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Clears err to SN_ID_OK. */
void sn_id_ok(struct sn_id_error *err);

/* now, or the wall clock if now is 0. */
time_t sn_id_now(time_t now);

/* Formats an ASN1_TIME as "2024-05-01T12:00:00Z" (or "?"). */
void sn_asn1_time_str(const ASN1_TIME *t, char *out, size_t cap);
void sn_time_str(time_t t, char *out, size_t cap);

/* ASN1_TIME -> time_t; returns 0 or SN_EINVAL. */
int sn_asn1_time_to_time(const ASN1_TIME *t, time_t *out);

/* Whether c may appear in a trust domain / a SPIFFE path segment. */
int sn_spiffe_td_char(int c);
int sn_spiffe_path_char(int c);

/* Writes what a memory BIO holds into a malloc'd NUL-terminated buffer. */
int sn_bio_to_str(BIO *bio, char **out, size_t *len);

/* sn_b64url_encode, sn_b64url_decode: include/sinew/identity.h. */



/* Sets err from a failed X509_verify_cert: expired, not yet valid,
 * untrusted (naming td) or another chain error. Returns SN_EINVAL. */
int sn_verify_fail(X509_STORE_CTX *ctx, const char *td, struct sn_id_error *err);

/* Adds extension nid from an openssl.cnf-style value ("critical,CA:FALSE"),
 * with issuer as the AKI source (the cert itself if NULL). Returns 0 or
 * SN_ENOMEM/SN_EINVAL. */
int sn_x509_add_ext(X509 *cert, X509 *issuer, int nid, const char *value);

/* Sets a random 128-bit, non-zero, positive serial. */
int sn_x509_random_serial(X509 *cert);

/* The digest for signing with key: SHA-256, or none for EdDSA keys. */
const EVP_MD *sn_sign_md(EVP_PKEY *key);

/* Appends the PEM of cert to bio; 0 or SN_ENOMEM. */
int sn_pem_append(BIO *bio, X509 *cert);
#endif
