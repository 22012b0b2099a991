/* Join tokens (include/sinew/join_token.h has the format).
 *
 * The MAC covers the claims exactly as sent ("sn1." + their base64url),
 * so nothing is canonicalised before checking; base64url decoding is
 * canonical too, so a token has one spelling. The MAC is checked before
 * the claims are parsed, and with a constant-time compare. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "sinew/join_token.h"
#include "tls_internal.h"

#define PREFIX "sn1."
#define PREFIX_LEN 4
#define MAC_LEN 32
#define CLAIMS_MAX 700

int sn_join_token_secret_generate(uint8_t *secret, size_t len)
{
	if (RAND_bytes(secret, (int)len) != 1) {
		ERR_clear_error();
		return SN_EIO;
	}
	return 0;
}

void sn_join_token_nonce_hex(const struct sn_join_token *t, char out[33])
{
	sn_hex(t->nonce, sizeof(t->nonce), out);
}

static int check_identity(const char *td, const char *ns, const char *sa, struct sn_id_error *err)
{
	struct sn_spiffe_id id;

	if (strlen(ns) > SN_JOIN_TOKEN_NS_MAX || strlen(sa) > SN_JOIN_TOKEN_SA_MAX)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_TOKEN_MALFORMED,
				  "namespace (at most %d bytes) or service account (%d) too long",
				  SN_JOIN_TOKEN_NS_MAX, SN_JOIN_TOKEN_SA_MAX);
	return sn_spiffe_id_from_workload(td, ns, sa, &id, err);
}

static int mac(const uint8_t *secret, size_t secret_len, const char *msg, size_t n, uint8_t out[MAC_LEN])
{
	unsigned int len = 0;

	if (HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)msg, n, out, &len) == NULL ||
	    len != MAC_LEN) {
		ERR_clear_error();
		return SN_ENOMEM;
	}
	return 0;
}

int sn_join_token_create(struct sn_join_token *t, const uint8_t *secret, size_t secret_len, char **out,
			 size_t *out_len)
{
	char claims[CLAIMS_MAX], nh[33], rh[65];
	char *tok;
	uint8_t m[MAC_LEN];
	size_t o;
	int n;

	if (secret == NULL || secret_len < SN_JOIN_TOKEN_SECRET_MIN || secret_len > INT32_MAX ||
	    t->expires_at <= 0 || check_identity(t->trust_domain, t->ns, t->sa, NULL) != 0)
		return SN_EINVAL;
	if (RAND_bytes(t->nonce, sizeof(t->nonce)) != 1) {
		ERR_clear_error();
		return SN_EIO;
	}
	sn_hex(t->nonce, sizeof(t->nonce), nh);
	sn_hex(t->root_sha256, sizeof(t->root_sha256), rh);
	n = snprintf(claims, sizeof(claims), "td=%s;ns=%s;sa=%s;exp=%lld;nonce=%s;root=%s", t->trust_domain,
		     t->ns, t->sa, (long long)t->expires_at, nh, rh);
	if (n < 0 || (size_t)n >= sizeof(claims))
		return SN_EINVAL;
	tok = malloc(PREFIX_LEN + ((size_t)n + 2) / 3 * 4 + 1 + (MAC_LEN + 2) / 3 * 4 + 1);
	if (tok == NULL)
		return SN_ENOMEM;
	memcpy(tok, PREFIX, PREFIX_LEN);
	o = PREFIX_LEN + sn_b64url_encode((const uint8_t *)claims, (size_t)n, tok + PREFIX_LEN);
	if (mac(secret, secret_len, tok, o, m) != 0) {
		free(tok);
		return SN_ENOMEM;
	}
	tok[o++] = '.';
	o += sn_b64url_encode(m, sizeof(m), tok + o);
	OPENSSL_cleanse(m, sizeof(m));
	*out = tok;
	if (out_len != NULL)
		*out_len = o;
	return 0;
}

/* Reads "key=" then a value up to ';' or the end into dst (cap bytes with
 * the NUL). Advances *p. Returns 0 or -1. */
static int field(const char **p, const char *end, const char *key, char *dst, size_t cap)
{
	size_t kl = strlen(key), n = 0;
	const char *s = *p;

	if ((size_t)(end - s) < kl + 1 || memcmp(s, key, kl) != 0 || s[kl] != '=')
		return -1;
	s += kl + 1;
	while (s + n < end && s[n] != ';')
		n++;
	if (n == 0 || n >= cap || memchr(s, '\0', n) != NULL)
		return -1;
	memcpy(dst, s, n);
	dst[n] = '\0';
	s += n;
	if (s < end)
		s++;  /* the ';' */
	*p = s;
	return 0;
}

static int unhex(const char *s, uint8_t *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return -1;
	for (size_t i = 0; i < 2 * n; i++) {
		int c = (unsigned char)s[i], v;
		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else
			return -1;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return 0;
}

static int parse_claims(const char *c, size_t n, struct sn_join_token *t, struct sn_id_error *err)
{
	const char *p = c, *end = c + n;
	char exp[24], nh[40], rh[72];
	int64_t e = 0;

	memset(t, 0, sizeof(*t));
	if (field(&p, end, "td", t->trust_domain, sizeof(t->trust_domain)) != 0 ||
	    field(&p, end, "ns", t->ns, sizeof(t->ns)) != 0 || field(&p, end, "sa", t->sa, sizeof(t->sa)) != 0 ||
	    field(&p, end, "exp", exp, sizeof(exp)) != 0 || field(&p, end, "nonce", nh, sizeof(nh)) != 0 ||
	    field(&p, end, "root", rh, sizeof(rh)) != 0 || p != end || end[-1] == ';')
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_TOKEN_MALFORMED,
				  "join token claims are not td=;ns=;sa=;exp=;nonce=;root= in that order");
	if (strlen(exp) > 18 || exp[0] == '0')
		goto bad_exp;
	for (const char *q = exp; *q != '\0'; q++) {
		if (*q < '0' || *q > '9')
			goto bad_exp;
		e = e * 10 + (*q - '0');
	}
	t->expires_at = e;
	if (unhex(nh, t->nonce, sizeof(t->nonce)) != 0 || unhex(rh, t->root_sha256, sizeof(t->root_sha256)) != 0)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_TOKEN_MALFORMED,
				  "join token nonce or root fingerprint is not lower-case hex of the right length");
	if (check_identity(t->trust_domain, t->ns, t->sa, err) != 0) {
		if (err != NULL)
			err->code = SN_ID_E_TOKEN_MALFORMED;
		return SN_EINVAL;
	}
	return 0;
bad_exp:
	return sn_id_fail(err, SN_EINVAL, SN_ID_E_TOKEN_MALFORMED, "join token expiry is not a positive number");
}

/* Splits tok into the signed part [0, dot) and the MAC text after it. */
static int split(const char *tok, size_t len, size_t *dot, struct sn_id_error *err)
{
	const char *d;

	if (tok == NULL || len > SN_JOIN_TOKEN_MAX)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_TOKEN_MALFORMED, "join token is longer than %d bytes",
				  SN_JOIN_TOKEN_MAX);
	if (len < PREFIX_LEN || memcmp(tok, PREFIX, PREFIX_LEN) != 0)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_TOKEN_MALFORMED,
				  "not a join token (it must start with \"sn1.\")");
	d = memchr(tok + PREFIX_LEN, '.', len - PREFIX_LEN);
	if (d == NULL || memchr(d + 1, '.', len - (size_t)(d + 1 - tok)) != NULL)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_TOKEN_MALFORMED,
				  "join token must have three dot-separated parts");
	*dot = (size_t)(d - tok);
	return 0;
}

static int decode_claims(const char *tok, size_t dot, struct sn_join_token *out, struct sn_id_error *err)
{
	uint8_t c[CLAIMS_MAX];
	long n = sn_b64url_decode(tok + PREFIX_LEN, dot - PREFIX_LEN, c, sizeof(c));

	if (n <= 0)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_TOKEN_MALFORMED, "join token claims are not base64url");
	return parse_claims((const char *)c, (size_t)n, out, err);
}

int sn_join_token_parse(const char *tok, size_t len, struct sn_join_token *out, struct sn_id_error *err)
{
	size_t dot = 0;

	if (split(tok, len, &dot, err) != 0 || decode_claims(tok, dot, out, err) != 0)
		return SN_EINVAL;
	sn_id_ok(err);
	return 0;
}

int sn_join_token_verify(const char *tok, size_t len, const uint8_t *secret, size_t secret_len, time_t now,
			 struct sn_join_token *out, struct sn_id_error *err)
{
	uint8_t want[MAC_LEN], got[MAC_LEN + 3];
	struct sn_join_token t;
	size_t dot = 0;
	int rc = SN_EINVAL;

	if (secret == NULL || secret_len < SN_JOIN_TOKEN_SECRET_MIN || secret_len > INT32_MAX)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_TOKEN_MAC, "join token secret is missing or too short");
	if (split(tok, len, &dot, err) != 0)
		return SN_EINVAL;
	if (sn_b64url_decode(tok + dot + 1, len - dot - 1, got, sizeof(got)) != MAC_LEN)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_TOKEN_MALFORMED, "join token MAC is not 32 bytes of base64url");
	if (mac(secret, secret_len, tok, dot, want) != 0)
		return sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory checking a join token");
	if (CRYPTO_memcmp(want, got, MAC_LEN) != 0) {
		sn_id_fail(err, SN_EINVAL, SN_ID_E_TOKEN_MAC,
			   "join token does not verify: tampered with, or minted under another secret");
		goto out;
	}
	if (decode_claims(tok, dot, &t, err) != 0)
		goto out;
	if ((int64_t)sn_id_now(now) >= t.expires_at) {
		char ts[32];
		sn_time_str((time_t)t.expires_at, ts, sizeof(ts));
		sn_id_fail(err, SN_EINVAL, SN_ID_E_TOKEN_EXPIRED, "join token expired at %s", ts);
		goto out;
	}
	*out = t;
	sn_id_ok(err);
	rc = 0;
out:
	OPENSSL_cleanse(want, sizeof(want));
	return rc;
}
