/* Fuzzes the join token reader, sinewd's first contact with a new proxy:
 * sn_join_token_parse and sn_join_token_verify run before anything is
 * authenticated. A random input never gets past the MAC, so the target
 * also signs what it is given with its own fixed secret to reach the
 * claims parser behind the MAC check:
 * - input starting "sn1.": checked as sent, then re-signed (its claims
 *   part, with a fresh MAC);
 * - any other input: taken as the plain claims text, base64url-encoded
 *   and signed into a token.
 * Invariants checked, not only the absence of crashes:
 * - verify accepts only what parse accepts, with the same claims, and
 *   under a valid MAC exactly what parse accepts and has not expired;
 * - a token that parses is in canonical form: its claims text is exactly
 *   what sn_join_token_create would write for those claims, and its
 *   base64url is the one spelling of it (independent encoder here);
 * - the identity named is a valid SPIFFE ID;
 * - a refusal has an expected code and a message;
 * - a MAC under another secret never verifies.
 * Time and secret are fixed, so runs are deterministic. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sinew/identity.h"
#include "sinew/join_token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

/* The seeds in fuzz/corpus/tls_join_token/ were minted under this secret,
 * with exp 2000000000 (valid at NOW) or 1800000000 (expired). */
static const uint8_t secret[SN_JOIN_TOKEN_SECRET_MIN] = "sinew-fuzz-join-token-secret-32b";
static const uint8_t other_secret[SN_JOIN_TOKEN_SECRET_MIN] = "sinew-fuzz-join-token-secret-32c";

#define NOW ((time_t)1900000000)
#define TOK_CAP (2 * SN_JOIN_TOKEN_MAX + 64)

/* base64url without padding, restated so that the canonical-form check
 * does not trust the encoder under test. */
static size_t b64url(const uint8_t *in, size_t n, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = a[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[o++] = a[(acc << (6 - bits)) & 63];
	out[o] = '\0';
	return o;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Appends "." and the MAC of tok[0..len) under key; returns the new length. */
static size_t sign(char *tok, size_t len, const uint8_t *key)
{
	uint8_t m[32];
	unsigned int ml = 0;

	CHECK(HMAC(EVP_sha256(), key, SN_JOIN_TOKEN_SECRET_MIN, (const unsigned char *)tok, len, m, &ml) != NULL);
	CHECK(ml == sizeof(m));
	tok[len++] = '.';
	return len + b64url(m, ml, tok + len);
}

static int malformed_or(const struct sn_id_error *err, enum sn_id_err also)
{
	return err->code == SN_ID_E_TOKEN_MALFORMED || err->code == also;
}

/* The claims as sn_join_token_create writes them. */
static int canonical_claims(const struct sn_join_token *t, char *out, size_t cap)
{
	char nh[33], rh[65];

	hex(t->nonce, sizeof(t->nonce), nh);
	hex(t->root_sha256, sizeof(t->root_sha256), rh);
	return snprintf(out, cap, "td=%s;ns=%s;sa=%s;exp=%lld;nonce=%s;root=%s", t->trust_domain, t->ns, t->sa,
			(long long)t->expires_at, nh, rh);
}

static void check_parsed(const struct sn_join_token *t, const char *tok, size_t len)
{
	char claims[1024], want[TOK_CAP];
	struct sn_spiffe_id id;
	const char *dot;
	int n;

	CHECK(t->expires_at > 0);
	CHECK(strlen(t->trust_domain) <= SN_TRUST_DOMAIN_MAX);
	CHECK(strlen(t->ns) <= SN_JOIN_TOKEN_NS_MAX && strlen(t->sa) <= SN_JOIN_TOKEN_SA_MAX);
	CHECK(sn_spiffe_id_from_workload(t->trust_domain, t->ns, t->sa, &id, NULL) == 0);
	n = canonical_claims(t, claims, sizeof(claims));
	CHECK(n > 0 && (size_t)n < sizeof(claims));
	memcpy(want, "sn1.", 4);
	b64url((const uint8_t *)claims, (size_t)n, want + 4);
	dot = memchr(tok + 4, '.', len - 4);
	CHECK(dot != NULL);
	CHECK((size_t)(dot - tok) == strlen(want) && memcmp(tok, want, (size_t)(dot - tok)) == 0);
}

/* Parse and verify agree on tok; returns verify's result. */
static int check_token(const char *tok, size_t len, int mac_valid)
{
	struct sn_join_token p, v;
	struct sn_id_error pe, ve;
	int rp = sn_join_token_parse(tok, len, &p, &pe);
	int rv = sn_join_token_verify(tok, len, secret, sizeof(secret), NOW, &v, &ve);

	if (rp == 0) {
		CHECK(pe.code == SN_ID_OK);
		check_parsed(&p, tok, len);
	} else {
		CHECK(rp == SN_EINVAL && pe.code == SN_ID_E_TOKEN_MALFORMED);
		CHECK(pe.msg[0] != '\0' && strnlen(pe.msg, sizeof(pe.msg)) < sizeof(pe.msg));
	}
	if (rv == 0) {
		CHECK(ve.code == SN_ID_OK && rp == 0);
		CHECK(memcmp(&p, &v, sizeof(p)) == 0);
		CHECK(v.expires_at > NOW);
	} else {
		CHECK(rv == SN_EINVAL);
		CHECK(malformed_or(&ve, SN_ID_E_TOKEN_MAC) || ve.code == SN_ID_E_TOKEN_EXPIRED);
		CHECK(ve.msg[0] != '\0' && strnlen(ve.msg, sizeof(ve.msg)) < sizeof(ve.msg));
		if (ve.code == SN_ID_E_TOKEN_EXPIRED)
			CHECK(rp == 0 && p.expires_at <= NOW);
	}
	if (mac_valid)
		CHECK((rv == 0) == (rp == 0 && p.expires_at > NOW));
	/* The same token under another server's secret. */
	rv = sn_join_token_verify(tok, len, other_secret, sizeof(other_secret), NOW, &v, &ve);
	CHECK(rv == SN_EINVAL && malformed_or(&ve, SN_ID_E_TOKEN_MAC));
	return rv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *tok;
	const uint8_t *claims = data;
	size_t n = size, len;

	/* Exact-size copy: a read past the token is an ASan report. */
	tok = calloc(1, size ? size : 1);
	CHECK(tok != NULL);
	if (size > 0)
		memcpy(tok, data, size);
	check_token(tok, size, 0);
	free(tok);

	if (size >= 4 && memcmp(data, "sn1.", 4) == 0) {
		const uint8_t *dot = memchr(data + 4, '.', size - 4);
		claims = data + 4;
		n = dot != NULL ? (size_t)(dot - claims) : size - 4;
		/* Claims already in base64url (or not: split must say so). */
		tok = malloc(4 + n + 48);
		CHECK(tok != NULL);
		memcpy(tok, data, 4 + n);
		len = sign(tok, 4 + n, secret);
		check_token(tok, len, memchr(tok + 4, '.', n) == NULL);
		free(tok);
		return 0;
	}
	if (n > SN_JOIN_TOKEN_MAX)
		return 0;
	/* Plain claims text: encode and sign it as sinewd would. */
	tok = malloc(4 + (n + 2) / 3 * 4 + 1 + 48);
	CHECK(tok != NULL);
	memcpy(tok, "sn1.", 4);
	len = 4 + b64url(claims, n, tok + 4);
	len = sign(tok, len, secret);
	check_token(tok, len, 1);
	free(tok);
	return 0;
}
