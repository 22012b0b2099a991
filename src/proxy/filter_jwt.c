/* RequestAuthentication on the inbound path (docs/security.md), as a
 * filter that runs before AuthorizationPolicy: a JWT in a request is
 * checked against the jwtRules that select this workload, Istio's way.
 *
 * - Where a token is looked for: each rule's fromHeaders (name and
 *   prefix), fromParams and fromCookies; a rule with none of them uses
 *   Istio's defaults, "Authorization: Bearer ..." and ?access_token=.
 * - No token: the request goes on without a request principal (Istio:
 *   "a request without a token is accepted"; an AuthorizationPolicy
 *   decides). A token: it must be a JWS (header.payload.signature) whose
 *   iss names a rule, signed (RS256/384/512, PS256/384/512, ES256/384,
 *   EdDSA) by a key of that rule's JWKS (by kid when it has one), within
 *   exp/nbf (60 s of clock skew, Envoy's default), and with an aud among
 *   the rule's audiences when it lists some. Anything else is answered
 *   401 with `www-authenticate: Bearer realm=..., error="invalid_token"`
 *   and sinew-error jwt_invalid, saying why. A rule whose keys are behind
 *   a jwksUri (not fetched yet) refuses its tokens: fail closed.
 * - A valid token gives the request its principal "iss/sub" and claims
 *   for AuthorizationPolicy (requestPrincipals, request.auth.*), and is
 *   removed from the request unless forwardOriginalToken.
 *
 * Keys are built once per worker and snapshot (the cache is dropped when
 * the worker takes a new snapshot), and so is a table of tokens verified
 * already (TOK_CACHE_SLOTS, by hash, the whole token compared): a token
 * seen again within its exp is not verified again. */
#include <libfyaml.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sinew/identity.h"
#include "sinew/json.h"
#include "sinew/log.h"
#include "filter.h"

/* A longer token is refused (issue 13: oversize > 8 KiB -> 401); the
 * request head allows far more (64 KiB, docs/security.md). */
#define MAX_TOKEN (8u << 10)
#define CLOCK_SKEW_S 60
/* Verified tokens kept per worker (direct-mapped by hash), each at most
 * TOK_CACHE_MAX bytes: a client reuses its token, and a signature is
 * checked once instead of per request (bench cell J1). */
#define TOK_CACHE_SLOTS 128
/* A token of a jwksUri issuer whose keys are not here (or not its kid)
 * waits for them at most JWT_WAIT_STEPS x JWT_WAIT_STEP_MS, then fails. */
#define JWT_WAIT_STEPS 20
#define JWT_WAIT_STEP_MS 50
#define TOK_CACHE_MAX 4096

/* ---- keys ------------------------------------------------------------- */

struct jwt_auth;

struct tok_entry {
	uint64_t hash;
	char *tok;                   /* a copy, compared whole on a hit */
	size_t len;
	const struct sn_jwt_rule *rule;
	size_t ri;                   /* the rule's index */
	uint64_t keys_version;       /* a jwksUri rule: the set it was verified with */
	struct jwt_auth *a;          /* shared with the exchanges using it (refs) */
};

/* A jwksUri rule's keys, as fetched (jwks.c), by version. */
struct uri_keys {
	uint64_t version;
	struct sn_arena arena;       /* the JWKs */
	struct sn_jwt_key *jwk;
	EVP_PKEY **pk;
	size_t n;
};

struct jwt_cache {
	const struct sn_snapshot *snap;   /* compared, never read: it may be gone when the cache is dropped */
	EVP_PKEY ***keys;            /* [rule][key]; NULL: unusable */
	size_t *n_keys;              /* [rule] */
	struct uri_keys *uk;         /* [rule] */
	size_t n_rules;
	struct tok_entry toks[TOK_CACHE_SLOTS];
};

static void auth_release(struct jwt_auth *a);

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pk = NULL;
	if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pk = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pk;
}

static EVP_PKEY *jwk_key(const struct sn_jwt_key *k)
{
	uint8_t a[1024], b[1024];
	long al, bl;
	EVP_PKEY *pk = NULL;

	if (!strcmp(k->kty, "RSA")) {
		al = sn_b64url_decode(k->n, strlen(k->n), a, sizeof(a));
		bl = sn_b64url_decode(k->e, strlen(k->e), b, sizeof(b));
		BIGNUM *n = al > 0 ? BN_bin2bn(a, (int)al, NULL) : NULL;
		BIGNUM *e = bl > 0 ? BN_bin2bn(b, (int)bl, NULL) : NULL;
		OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
		if (n && e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
		    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
			pk = from_params("RSA", bld);
		OSSL_PARAM_BLD_free(bld);
		BN_free(n);
		BN_free(e);
	} else if (!strcmp(k->kty, "EC")) {
		size_t fl = !strcmp(k->crv, "P-256") ? 32 : 48;
		unsigned char pub[1 + 2 * 48];
		al = sn_b64url_decode(k->x, strlen(k->x), a, sizeof(a));
		bl = sn_b64url_decode(k->y, strlen(k->y), b, sizeof(b));
		if (al > 0 && bl > 0 && (size_t)al <= fl && (size_t)bl <= fl) {
			memset(pub, 0, sizeof(pub));
			pub[0] = 0x04;
			memcpy(pub + 1 + fl - (size_t)al, a, (size_t)al);
			memcpy(pub + 1 + 2 * fl - (size_t)bl, b, (size_t)bl);
			OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
			if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
								   fl == 32 ? "prime256v1" : "secp384r1", 0) &&
			    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * fl))
				pk = from_params("EC", bld);
			OSSL_PARAM_BLD_free(bld);
		}
	} else if (!strcmp(k->kty, "OKP")) {
		al = sn_b64url_decode(k->x, strlen(k->x), a, sizeof(a));
		if (al == 32)
			pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, a, 32);
	}
	return pk;
}

static void uri_keys_clear(struct uri_keys *u)
{
	for (size_t k = 0; k < u->n; k++)
		EVP_PKEY_free(u->pk[k]);
	free(u->pk);
	sn_arena_free(&u->arena);
	u->pk = NULL;
	u->jwk = NULL;
	u->n = 0;
}

static void forget_tokens(struct jwt_cache *c)
{
	for (size_t i = 0; i < TOK_CACHE_SLOTS; i++) {
		free(c->toks[i].tok);
		if (c->toks[i].a != NULL)
			auth_release(c->toks[i].a);
		memset(&c->toks[i], 0, sizeof(c->toks[i]));
	}
}

static void cache_free(struct jwt_cache *c)
{
	for (size_t r = 0; c && r < c->n_rules; r++) {
		for (size_t k = 0; c->keys[r] && k < c->n_keys[r]; k++)
			EVP_PKEY_free(c->keys[r][k]);
		free(c->keys[r]);
		if (c->uk != NULL)
			uri_keys_clear(&c->uk[r]);
	}
	if (c != NULL) {
		free(c->uk);
		free(c->keys);
		free(c->n_keys);
		forget_tokens(c);
	}
	free(c);
}

void sn_jwt_cache_drop(struct sn_worker *w)
{
	cache_free(w->jwt_cache);
	w->jwt_cache = NULL;
}

static struct jwt_cache *cache_for(struct sn_worker *w, const struct sn_snapshot *s)
{
	struct jwt_cache *c = w->jwt_cache;
	if (c != NULL && c->snap == s)
		return c;
	sn_jwt_cache_drop(w);
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->snap = s;
	c->keys = calloc(s->n_jwt_rules, sizeof(*c->keys));
	c->n_keys = calloc(s->n_jwt_rules, sizeof(*c->n_keys));
	c->uk = calloc(s->n_jwt_rules, sizeof(*c->uk));
	if (c->keys == NULL || c->n_keys == NULL || c->uk == NULL) {
		cache_free(c);
		return NULL;
	}
	c->n_rules = s->n_jwt_rules;
	for (size_t r = 0; r < s->n_jwt_rules; r++) {
		const struct sn_jwt_rule *rule = &s->jwt_rules[r];
		c->keys[r] = calloc(rule->n_keys ? rule->n_keys : 1, sizeof(EVP_PKEY *));
		c->n_keys[r] = c->keys[r] ? rule->n_keys : 0;
		for (size_t k = 0; c->keys[r] && k < rule->n_keys; k++)
			if ((c->keys[r][k] = jwk_key(&rule->keys[k])) == NULL)
				sn_log(SN_LOG_WARN, "jwt: %s: key %zu (kid %s) of issuer %s is not usable", rule->origin, k,
				       rule->keys[k].kid ? rule->keys[k].kid : "-", rule->issuer);
	}
	w->jwt_cache = c;
	return c;
}

static void jwks_err(void *user, const char *msg)
{
	sn_log(SN_LOG_WARN, "jwt: jwksUri %s: %s", (const char *)user, msg);
}

/* A jwksUri rule's keys: the newest set fetched, built once per version
 * (a new set forgets the tokens verified with the old one). */
static struct uri_keys *uri_keys(struct jwt_cache *c, size_t ri, const struct sn_jwt_rule *rule, char *err,
				 size_t errlen)
{
	struct uri_keys *u = &c->uk[ri];
	char *text = NULL;
	size_t len = 0;
	uint64_t v = sn_jwks_get(rule->jwks_uri, u->version, &text, &len, err, errlen);
	if (text == NULL)
		return u;
	uri_keys_clear(u);
	sn_arena_init(&u->arena, 0);
	sn_jwks_parse(&u->arena, text, len, &u->jwk, &u->n, jwks_err, rule->jwks_uri);
	free(text);
	u->pk = calloc(u->n ? u->n : 1, sizeof(*u->pk));
	if (u->pk == NULL)
		u->n = 0;
	for (size_t k = 0; k < u->n; k++)
		u->pk[k] = jwk_key(&u->jwk[k]);
	u->version = v;
	forget_tokens(c);
	return u;
}

/* ---- signatures ------------------------------------------------------- */

static int verify(EVP_PKEY *pk, const char *alg, const unsigned char *data, size_t dlen, const unsigned char *sig,
		  size_t slen)
{
	const EVP_MD *md = NULL;
	const char *type = NULL;
	int pss = 0;
	size_t ec = 0;

	if (!strcmp(alg, "RS256") || !strcmp(alg, "PS256") || !strcmp(alg, "ES256"))
		md = EVP_sha256();
	else if (!strcmp(alg, "RS384") || !strcmp(alg, "PS384") || !strcmp(alg, "ES384"))
		md = EVP_sha384();
	else if (!strcmp(alg, "RS512") || !strcmp(alg, "PS512"))
		md = EVP_sha512();
	if (alg[0] == 'R' || alg[0] == 'P')
		type = "RSA", pss = alg[0] == 'P';
	else if (alg[0] == 'E' && alg[1] == 'S')
		type = "EC", ec = alg[2] == '2' ? 32 : 48;
	else if (!strcmp(alg, "EdDSA"))
		type = "ED25519";
	if (type == NULL || (md == NULL && strcmp(type, "ED25519") != 0) || !EVP_PKEY_is_a(pk, type))
		return 0;
	unsigned char der[160];
	if (ec) {
		/* JWS carries r||s; OpenSSL wants DER. */
		if (slen != 2 * ec || (size_t)EVP_PKEY_get_bits(pk) != ec * 8)
			return 0;
		ECDSA_SIG *es = ECDSA_SIG_new();
		BIGNUM *r = BN_bin2bn(sig, (int)ec, NULL), *s = BN_bin2bn(sig + ec, (int)ec, NULL);
		if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
			ECDSA_SIG_free(es);
			BN_free(r);
			BN_free(s);
			return 0;
		}
		unsigned char *p = der;
		int n = i2d_ECDSA_SIG(es, NULL) <= (int)sizeof(der) ? i2d_ECDSA_SIG(es, &p) : -1;
		ECDSA_SIG_free(es);
		if (n <= 0)
			return 0;
		sig = der;
		slen = (size_t)n;
	}
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pc = NULL;
	int ok = mc != NULL && EVP_DigestVerifyInit(mc, &pc, md, NULL, pk) == 1 &&
		 (!pss || (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) == 1 &&
			   EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) == 1)) &&
		 EVP_DigestVerify(mc, sig, slen, data, dlen) == 1;
	EVP_MD_CTX_free(mc);
	return ok;
}

/* ---- the request's token ---------------------------------------------- */

static int prefix_ieq(struct sn_str v, const char *prefix)
{
	size_t n = strlen(prefix);
	return v.len >= n && sn_str_ieq(sn_str_make(v.p, n), sn_str_make(prefix, n));
}

/* The first token of the request where rule looks for one. */
static struct sn_str find_token(const struct sn_h1_request *rq, const struct sn_jwt_rule *rule)
{
	static const struct sn_jwt_from def_header = { "authorization", "Bearer " };
	static char *const def_params[] = { "access_token" };
	int defaults = rule->n_headers == 0 && rule->n_params == 0 && rule->n_cookies == 0;
	const struct sn_jwt_from *hs = defaults ? &def_header : rule->headers;
	size_t nh = defaults ? 1 : rule->n_headers;
	char *const *ps = defaults ? def_params : rule->params;
	size_t np = defaults ? 1 : rule->n_params;

	for (size_t i = 0; i < nh; i++)
		for (size_t j = 0; j < rq->num_headers; j++)
			if (sn_str_ieq_cstr(rq->headers[j].name, hs[i].name) && prefix_ieq(rq->headers[j].value, hs[i].prefix)) {
				size_t pl = strlen(hs[i].prefix);
				return sn_str_make(rq->headers[j].value.p + pl, rq->headers[j].value.len - pl);
			}
	for (size_t i = 0; i < np; i++) {
		struct sn_str v = sn_http_query_param(rq->path, ps[i]);
		if (v.len)
			return v;
	}
	for (size_t i = 0; i < rule->n_cookies; i++) {
		struct sn_str v = sn_http_cookie(rq->headers, rq->num_headers, rule->cookies[i]);
		if (v.len)
			return v;
	}
	return sn_str_make(NULL, 0);
}

/* ---- claims ----------------------------------------------------------- */

struct jwt_auth {
	struct sn_jwt_claims claims;   /* first: what AuthorizationPolicy sees */
	struct fy_document *doc;       /* the payload */
	unsigned refs;                 /* exchanges and the token cache */
	long long exp;                 /* 0: none */
	char principal[600];
	/* outputPayloadToHeader, outputClaimToHeaders: set on the request */
	struct sn_header_ops out;
	struct sn_header_op set[9];
	char values[9][1024];
};

/* A header value may not carry control bytes (a forged field). */
static int value_ok(struct sn_str v)
{
	for (size_t i = 0; i < v.len; i++)
		if ((unsigned char)v.p[i] < 0x20 || v.p[i] == 0x7f)
			return 0;
	return 1;
}

/* The headers a rule asks for from a valid token: its payload segment
 * (base64url, as sent) and claims of type string, number or bool (a.b
 * for a nested one); a claim absent or of another type gives no header. */
static void output_headers(struct jwt_auth *a, const struct sn_jwt_rule *rule, struct sn_str payload)
{
	size_t n = 0;
	if (rule->payload_header && payload.len < sizeof(a->values[0])) {
		memcpy(a->values[n], payload.p, payload.len);
		a->values[n][payload.len] = '\0';
		a->set[n] = (struct sn_header_op){ rule->payload_header, a->values[n] };
		n++;
	}
	for (size_t i = 0; i < rule->n_claim_headers && n < SN_ARRAY_LEN(a->set); i++) {
		char path[256];
		const char *parts[8];
		size_t depth = 0;
		snprintf(path, sizeof(path), "%s", rule->claim_headers[i].value);
		for (char *p = path, *dot; depth < SN_ARRAY_LEN(parts); p = dot + 1) {
			parts[depth++] = p;
			if ((dot = strchr(p, '.')) == NULL)
				break;
			*dot = '\0';
		}
		struct fy_node *node = fy_document_root(a->doc);
		for (size_t k = 0; k < depth && node != NULL; k++)
			node = node && fy_node_is_mapping(node) ? fy_node_mapping_lookup_by_string(node, parts[k], FY_NT) : NULL;
		size_t len;
		const char *s = node && fy_node_is_scalar(node) ? fy_node_get_scalar(node, &len) : NULL;
		if (s == NULL || len >= sizeof(a->values[0]) || !value_ok(sn_str_make(s, len)))
			continue;
		memcpy(a->values[n], s, len);
		a->values[n][len] = '\0';
		a->set[n] = (struct sn_header_op){ rule->claim_headers[i].name, a->values[n] };
		n++;
	}
	a->out.set = a->set;
	a->out.n_set = n;
}

static struct fy_node *get(struct fy_node *map, const char *key)
{
	return map && fy_node_is_mapping(map) ? fy_node_mapping_lookup_by_string(map, key, FY_NT) : NULL;
}

static struct sn_str scalar(struct fy_node *n)
{
	size_t len = 0;
	const char *s = n && fy_node_is_scalar(n) ? fy_node_get_scalar(n, &len) : NULL;
	return sn_str_make(s, s ? len : 0);
}

static size_t claims_get(const struct sn_jwt_claims *c, const char *const *path, size_t depth, struct sn_str *out,
			 size_t max)
{
	const struct jwt_auth *a = (const struct jwt_auth *)c;
	struct fy_node *n = fy_document_root(a->doc);
	size_t k = 0;
	for (size_t i = 0; i < depth && n != NULL; i++)
		n = get(n, path[i]);
	if (n == NULL || max == 0)
		return 0;
	if (fy_node_is_scalar(n)) {
		out[k++] = scalar(n);
		return k;
	}
	if (fy_node_is_sequence(n)) {
		void *it = NULL;
		struct fy_node *e;
		while (k < max && (e = fy_node_sequence_iterate(n, &it)) != NULL)
			if (fy_node_is_scalar(e))
				out[k++] = scalar(e);
	}
	return k;
}

/* A JSON number claim (exp, nbf); 0 if absent, -1 if not a number. */
static long long num_claim(struct fy_node *root, const char *key)
{
	struct sn_str v = scalar(get(root, key));
	char buf[32];
	if (get(root, key) == NULL)
		return 0;
	if (v.len == 0 || v.len >= sizeof(buf))
		return -1;
	memcpy(buf, v.p, v.len);
	buf[v.len] = '\0';
	char *end;
	double d = strtod(buf, &end);
	return *end == '\0' && d > 0 ? (long long)d : -1;
}

/* ---- the filter ------------------------------------------------------- */

/* Checks tok; NULL if valid (*out set), else why not. */
/* check() asks the filter to hold the request a moment: the keys behind
 * a jwksUri are on their way. */
static const char JWT_WAIT[] = "waiting for the issuer's keys (jwksUri)";

static const char *check(struct sn_worker *w, const struct sn_snapshot *s, struct sn_str tok, const struct sn_jwt_rule **rule_out,
			 struct jwt_auth **out, int can_wait)
{
	uint8_t buf[3][MAX_TOKEN];   /* on the worker's stack: 24 KiB */
	if (tok.len > MAX_TOKEN)
		return "the token is longer than 8 KiB";
	const char *d1 = memchr(tok.p, '.', tok.len);
	const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(tok.p + tok.len - d1 - 1)) : NULL;
	if (d1 == NULL || d2 == NULL || memchr(d2 + 1, '.', (size_t)(tok.p + tok.len - d2 - 1)))
		return "the token is not a JWS (header.payload.signature)";
	long hl = sn_b64url_decode(tok.p, (size_t)(d1 - tok.p), buf[0], sizeof(buf[0]));
	long pl = sn_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), buf[1], sizeof(buf[1]));
	long sl = sn_b64url_decode(d2 + 1, (size_t)(tok.p + tok.len - d2 - 1), buf[2], sizeof(buf[2]));
	if (hl <= 0 || pl <= 0 || sl <= 0)
		return "the token is not base64url";
	if (!sn_utf8_valid((const char *)buf[0], (size_t)hl) || !sn_utf8_valid((const char *)buf[1], (size_t)pl))
		return "the token's header or payload is not UTF-8 JSON";
	struct fy_document *hd = sn_json_parse((const char *)buf[0], (size_t)hl);
	struct fy_document *pd = sn_json_parse((const char *)buf[1], (size_t)pl);
	struct fy_node *h = hd ? fy_document_root(hd) : NULL, *p = pd ? fy_document_root(pd) : NULL;
	const char *why = NULL;
	char alg[16] = "", kid[256] = "", iss[512] = "";
	struct sn_str v;

	if (h == NULL || p == NULL || !fy_node_is_mapping(h) || !fy_node_is_mapping(p)) {
		why = "the token's header or payload is not a JSON object";
		goto out;
	}
	v = scalar(get(h, "alg"));
	snprintf(alg, sizeof(alg), "%.*s", (int)v.len, v.p ? v.p : "");
	v = scalar(get(h, "kid"));
	snprintf(kid, sizeof(kid), "%.*s", (int)v.len, v.p ? v.p : "");
	v = scalar(get(p, "iss"));
	snprintf(iss, sizeof(iss), "%.*s", (int)v.len, v.p ? v.p : "");
	const struct sn_jwt_rule *rule = NULL;
	size_t ri = 0;
	for (size_t i = 0; i < s->n_jwt_rules && rule == NULL; i++)
		if (!strcmp(s->jwt_rules[i].issuer, iss))
			rule = &s->jwt_rules[i], ri = i;
	if (rule == NULL) {
		why = "its issuer is not one a RequestAuthentication accepts";
		goto out;
	}
	*rule_out = rule;
	struct jwt_cache *c = cache_for(w, s);
	EVP_PKEY **pks = c != NULL ? c->keys[ri] : NULL;
	const struct sn_jwt_key *jwks = rule->keys;
	size_t n_keys = rule->n_keys;
	char ferr[256] = "";
	if (c != NULL && rule->n_keys == 0 && rule->jwks_uri != NULL) {
		struct uri_keys *u = uri_keys(c, ri, rule, ferr, sizeof(ferr));
		pks = u->pk;
		jwks = u->jwk;
		n_keys = u->n;
		int known = 0;
		for (size_t k = 0; k < n_keys && !known; k++)
			known = !kid[0] || (jwks[k].kid != NULL && !strcmp(kid, jwks[k].kid));
		if (!known && can_wait) {
			/* none yet, or a key id of a set newer than ours */
			sn_jwks_refresh(rule->jwks_uri);
			why = JWT_WAIT;
			goto out;
		}
		if (n_keys == 0) {
			static __thread char msg[400];
			snprintf(msg, sizeof(msg), "the issuer's keys (jwksUri %s) could not be fetched: %s",
				 rule->jwks_uri, ferr[0] ? ferr : "not fetched yet");
			why = msg;
			goto out;
		}
	}
	int ok = 0, tried = 0;
	for (size_t k = 0; pks != NULL && k < n_keys && !ok; k++) {
		const struct sn_jwt_key *key = &jwks[k];
		if (pks[k] == NULL || (kid[0] && key->kid && strcmp(kid, key->kid)) || (key->alg && strcmp(key->alg, alg)))
			continue;
		tried++;
		ok = verify(pks[k], alg, (const unsigned char *)tok.p, (size_t)(d2 - tok.p), buf[2], (size_t)sl);
	}
	if (!tried) {
		static __thread char msg[400];
		snprintf(msg, sizeof(msg), "no key of the issuer's matches its kid \"%.64s\" and alg %s", kid[0] ? kid : "(none)", alg);
		why = msg;
		goto out;
	}
	if (!ok) {
		why = "its signature does not verify with the issuer's keys";
		goto out;
	}
	long long now = (long long)time(NULL);
	long long exp = num_claim(p, "exp"), nbf = num_claim(p, "nbf");
	if (exp < 0 || nbf < 0) {
		why = "exp or nbf is not a number";
		goto out;
	}
	if (exp && now > exp + CLOCK_SKEW_S) {
		why = "it has expired (exp)";
		goto out;
	}
	if (nbf && now + CLOCK_SKEW_S < nbf) {
		why = "it is not valid yet (nbf)";
		goto out;
	}
	if (rule->n_audiences) {
		struct sn_str auds[16];
		const char *path[1] = { "aud" };
		struct jwt_auth probe = { .claims = { claims_get }, .doc = pd };
		size_t na = claims_get(&probe.claims, path, 1, auds, SN_ARRAY_LEN(auds));
		int found = 0;
		for (size_t i = 0; i < na && !found; i++)
			for (size_t j = 0; j < rule->n_audiences && !found; j++)
				found = sn_str_eq_cstr(auds[i], rule->audiences[j]);
		if (!found) {
			why = "its audience (aud) is not one the rule accepts";
			goto out;
		}
	}
	struct jwt_auth *a = calloc(1, sizeof(*a));
	if (a == NULL) {
		why = "out of memory";
		goto out;
	}
	a->claims.get = claims_get;
	a->doc = pd;
	a->refs = 1;
	a->exp = exp;
	pd = NULL;
	v = scalar(get(fy_document_root(a->doc), "sub"));
	snprintf(a->principal, sizeof(a->principal), "%s/%.*s", iss, (int)v.len, v.p ? v.p : "");
	output_headers(a, rule, sn_str_make(d1 + 1, (size_t)(d2 - d1 - 1)));
	*out = a;
out:
	fy_document_destroy(hd);
	fy_document_destroy(pd);
	return why;
}

static void auth_release(struct jwt_auth *a)
{
	if (--a->refs > 0)
		return;
	fy_document_destroy(a->doc);
	free(a);
}

/* A token verified before, still within its exp: its principal and
 * claims again, without the signature's cost. */
static struct jwt_auth *cached(struct sn_worker *w, const struct sn_snapshot *s, struct sn_str tok, uint64_t h,
			       const struct sn_jwt_rule **rule)
{
	struct jwt_cache *c = cache_for(w, s);
	struct tok_entry *e = c ? &c->toks[h % TOK_CACHE_SLOTS] : NULL;
	if (e == NULL || e->a == NULL || e->hash != h || e->len != tok.len || memcmp(e->tok, tok.p, tok.len) != 0)
		return NULL;
	/* a jwksUri rule's set changed since: verified again (a rotation
	 * that removed the key ends the token) */
	char ferr[8];
	if (e->rule->jwks_uri != NULL && e->rule->n_keys == 0 &&
	    uri_keys(c, e->ri, e->rule, ferr, sizeof(ferr))->version != e->keys_version)
		return NULL;   /* uri_keys forgot the tokens already */
	if (e->a->exp && (long long)time(NULL) > e->a->exp + CLOCK_SKEW_S) {
		free(e->tok);
		auth_release(e->a);
		memset(e, 0, sizeof(*e));
		return NULL;
	}
	*rule = e->rule;
	e->a->refs++;
	return e->a;
}

static void remember(struct sn_worker *w, const struct sn_snapshot *s, struct sn_str tok, uint64_t h,
		     const struct sn_jwt_rule *rule, struct jwt_auth *a)
{
	struct jwt_cache *c = cache_for(w, s);
	if (c == NULL || tok.len > TOK_CACHE_MAX)
		return;
	char *copy = malloc(tok.len);
	if (copy == NULL)
		return;
	memcpy(copy, tok.p, tok.len);
	struct tok_entry *e = &c->toks[h % TOK_CACHE_SLOTS];
	free(e->tok);
	if (e->a != NULL)
		auth_release(e->a);
	e->hash = h;
	e->tok = copy;
	e->len = tok.len;
	e->rule = rule;
	e->ri = (size_t)(rule - s->jwt_rules);
	e->keys_version = c->uk[e->ri].version;
	e->a = a;
	a->refs++;
}

const char *sn_jwt_check_token(struct sn_worker *w, const struct sn_snapshot *s, struct sn_str tok,
			       struct sn_str *principal)
{
	static __thread char buf[600];
	const struct sn_jwt_rule *rule = NULL;
	struct jwt_auth *a = NULL;
	const char *why = check(w, s, tok, &rule, &a, 0);
	*principal = sn_str_make(NULL, 0);
	if (a != NULL) {
		snprintf(buf, sizeof(buf), "%s", a->principal);
		*principal = sn_str_make(buf, strlen(buf));
		fy_document_destroy(a->doc);
		free(a);
	}
	return why;
}

/* 401 with the bearer challenge (RFC 6750) and the reason. */
static enum sn_filter_verdict refuse(struct sn_exchange *ex, const char *reason, const char *why, const char *origin)
{
	struct sn_worker *w = sn_fx_worker(ex);
	const struct sn_h1_request *rq = sn_fx_request(ex);
	char realm[300], challenge[400];
	snprintf(realm, sizeof(realm), "http://%.*s%.*s", (int)SN_MIN(rq->authority.len, 128),
		 rq->authority.p ? rq->authority.p : "", (int)SN_MIN(rq->path.len, 128), rq->path.p);
	char *q = strchr(realm, '?');
	if (q != NULL)
		*q = '\0';
	snprintf(challenge, sizeof(challenge), "Bearer realm=\"%s\", error=\"invalid_token\"", realm);
	sn_metrics_add(w->metrics, SN_CTR_JWT_INVALID, 1);
	sn_fx_answer_header(ex, "www-authenticate", challenge);
	sn_fx_answer(ex, 401, reason, "Jwt verification fails: %s (sinew: %s)", why, origin);
	return SN_FILTER_ANSWERED;
}

static enum sn_filter_verdict jwt_request(struct sn_exchange *ex)
{
	struct sn_worker *w = sn_fx_worker(ex);
	const struct sn_snapshot *s = w->snap;
	const struct sn_h1_request *rq = sn_fx_request(ex);
	struct sn_str tok = { NULL, 0 };

	if (s == NULL || (s->n_jwt_rules == 0 && s->jwt_unenforceable == NULL))
		return SN_FILTER_NEXT;
	if (s->jwt_unenforceable != NULL)   /* fail closed (docs/security.md) */
		return refuse(ex, "policy_unenforceable", "the RequestAuthentication has fields Sinew does not know, "
			      "so it cannot be enforced as written and refuses every request it covers; `sinew analyze` "
			      "names them", s->jwt_unenforceable);
	for (size_t i = 0; i < s->n_jwt_rules && tok.len == 0; i++)
		tok = find_token(rq, &s->jwt_rules[i]);
	if (tok.len == 0)
		return SN_FILTER_NEXT;   /* no token: authorization decides */
	const struct sn_jwt_rule *rule = NULL;
	uint64_t h = sn_hash64(tok.p, tok.len, 0x6a7774u);
	struct jwt_auth *a = cached(w, s, tok, h, &rule);
	const char *why = NULL;
	uint64_t *st = sn_fx_state(ex);
	if (a == NULL && (why = check(w, s, tok, &rule, &a, *st < JWT_WAIT_STEPS)) == NULL)
		remember(w, s, tok, h, rule, a);
	if (why == JWT_WAIT) {
		/* the state word counts the waits until a token is valid */
		(*st)++;
		sn_fx_pause(ex, JWT_WAIT_STEP_MS);
		return SN_FILTER_PAUSED;
	}
	if (why != NULL)
		return refuse(ex, "jwt_invalid", why, rule ? rule->origin : "no RequestAuthentication for its issuer");
	sn_metrics_add(w->metrics, SN_CTR_JWT_VALID, 1);
	*sn_fx_state(ex) = (uint64_t)(uintptr_t)a;
	sn_fx_set_request_auth(ex, sn_str_make(a->principal, strlen(a->principal)), &a->claims);
	if (!rule->forward)
		sn_fx_header_ops(ex, &rule->strip, NULL);
	sn_fx_header_ops(ex, &a->out, NULL);
	return SN_FILTER_NEXT;
}

static void jwt_done(struct sn_exchange *ex, const struct sn_fx_summary *s)
{
	struct jwt_auth *a = (struct jwt_auth *)(uintptr_t)*sn_fx_state(ex);
	(void)s;
	if (*sn_fx_state(ex) <= JWT_WAIT_STEPS)
		return;   /* no token, or waits counted */
	auth_release(a);
	*sn_fx_state(ex) = 0;
}

const struct sn_filter sn_filter_jwt = {
	.name = "jwt",
	.dirs = SN_FILTER_INBOUND,
	.request_head = jwt_request,
	.done = jwt_done,
};
