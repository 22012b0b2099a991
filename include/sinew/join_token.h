#ifndef SINEW_JOIN_TOKEN_H
#define SINEW_JOIN_TOKEN_H

/* Join tokens: how a new proxy proves to sinewd which identity it may ask
 * for (DESIGN.md §5, issue 5 item 2), and how it recognises sinewd.
 *
 *   sn1.<base64url(claims)>.<base64url(HMAC-SHA256(secret, "sn1." + claims_b64))>
 *   claims = "td=<trust domain>;ns=<ns>;sa=<sa>;exp=<unix s>;nonce=<32 hex>;root=<64 hex>"
 *
 * The claims name the identity the CA will sign, an expiry, a random
 * single-use nonce and the SHA-256 of the CA root's DER. Only sinewd holds
 * the secret and can verify the MAC; the proxy reads the claims without it
 * (sn_join_token_parse) to pin the root it will accept from sinewd. Spent
 * nonces are sinewd's to remember (until exp). A token is a bearer
 * secret: never log it; log its nonce if you must name it. */

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "sinew/identity.h"

#define SN_JOIN_TOKEN_MAX 1024        /* bytes of the text form, bound on input */
#define SN_JOIN_TOKEN_SECRET_MIN 32   /* bytes of server secret */
#define SN_JOIN_TOKEN_NS_MAX 63
#define SN_JOIN_TOKEN_SA_MAX 253

struct sn_join_token {
	char trust_domain[SN_TRUST_DOMAIN_MAX + 1];
	char ns[SN_JOIN_TOKEN_NS_MAX + 1];
	char sa[SN_JOIN_TOKEN_SA_MAX + 1];
	int64_t expires_at;          /* unix seconds */
	uint8_t nonce[16];
	uint8_t root_sha256[32];
};

/* Fills secret with random bytes (a new server secret). Returns 0 or
 * SN_EIO if the system's random source failed. */
int sn_join_token_secret_generate(uint8_t *secret, size_t len);

/* Mints a token for t's identity, expiry and root pin; draws a fresh nonce
 * into t->nonce. The identity must form a valid SPIFFE ID. *out is a
 * malloc'd NUL-terminated string, the caller's (a secret). secret is
 * borrowed, at least SN_JOIN_TOKEN_SECRET_MIN bytes. Returns 0, SN_EINVAL,
 * SN_EIO or SN_ENOMEM. */
int sn_join_token_create(struct sn_join_token *t, const uint8_t *secret,
			 size_t secret_len, char **out, size_t *out_len);

/* Reads a token's claims WITHOUT authenticating them: for the proxy, which
 * has no secret, to learn the root pin and identity. Never authorise
 * anything on these alone. Returns 0 or SN_EINVAL with err set. */
int sn_join_token_parse(const char *tok, size_t len, struct sn_join_token *out,
			struct sn_id_error *err);

/* sinewd's check: the MAC under secret (constant-time compare), then the
 * claims, then expiry against now (0: the wall clock). On success fills
 * *out; the caller must then refuse a nonce it has seen before.
 * Returns 0 or SN_EINVAL with err set (TOKEN_MALFORMED, TOKEN_MAC,
 * TOKEN_EXPIRED). */
int sn_join_token_verify(const char *tok, size_t len, const uint8_t *secret,
			 size_t secret_len, time_t now, struct sn_join_token *out,
			 struct sn_id_error *err);

/* The nonce as 32 lower-case hex digits and a NUL: the key under which
 * sinewd records a spent token, and a safe name for it in logs. */
void sn_join_token_nonce_hex(const struct sn_join_token *t, char out[33]);

#endif
