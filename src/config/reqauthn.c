/* RequestAuthentication (security.istio.io/v1): loading with Istio's
 * fields, the JWKS checked at load (each key's type, curve and fields),
 * and the copy into a snapshot. Tokens are checked by the proxy
 * (src/proxy/filter_jwt.c; docs/security.md).
 *
 * A rule with only a jwksUri gets its keys from the proxy's fetcher
 * (src/proxy/jwks.c); until they are here its tokens are refused (401),
 * never accepted -- a policy Sinew cannot enforce denies what it covers. */
#include <libfyaml.h>
#include <stdio.h>
#include <string.h>

#include "config_internal.h"

#define MAX_JWKS_TEXT (256u << 10)
#define MAX_KEYS 64
#define MAX_LOCATIONS 16

static char *fy_str(struct sn_arena *a, struct fy_node *map, const char *key)
{
	struct fy_node *n = map ? fy_node_mapping_lookup_by_string(map, key, FY_NT) : NULL;
	size_t len;
	const char *s = n && fy_node_is_scalar(n) ? fy_node_get_scalar(n, &len) : NULL;
	return s ? sn_arena_strndup(a, s, len) : NULL;
}

static int b64url_ok(const char *s, size_t min, size_t max)
{
	size_t n = s ? strlen(s) : 0;
	if (n < min || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		      ch == '_'))
			return 0;
	}
	return 1;
}

size_t sn_jwks_parse(struct sn_arena *a, const char *text, size_t len, struct sn_jwt_key **keys_out, size_t *n_out,
		     void (*on_err)(void *user, const char *msg), void *user)
{
	char msg[160];
	*keys_out = NULL;
	*n_out = 0;
	if (len > MAX_JWKS_TEXT) {
		snprintf(msg, sizeof(msg), "jwks is %zu bytes; at most %u", len, MAX_JWKS_TEXT);
		on_err(user, msg);
		return 1;
	}
	struct fy_document *doc = sn_json_parse(text, len);
	struct fy_node *root = doc ? fy_document_root(doc) : NULL;
	struct fy_node *keys = root && fy_node_is_mapping(root) ? fy_node_mapping_lookup_by_string(root, "keys", FY_NT)
								 : NULL;
	if (keys == NULL || !fy_node_is_sequence(keys)) {
		on_err(user, "jwks is not a JSON Web Key Set: want {\"keys\": [...]} (RFC 7517)");
		fy_document_destroy(doc);
		return 1;
	}
	int n = fy_node_sequence_item_count(keys);
	if (n <= 0 || n > MAX_KEYS) {
		snprintf(msg, sizeof(msg), "jwks has %d keys; want 1 to %d", n, MAX_KEYS);
		on_err(user, msg);
		fy_document_destroy(doc);
		return 1;
	}
	struct sn_jwt_key *out = sn_arena_new_array(a, struct sn_jwt_key, (size_t)n);
	if (out == NULL) {
		on_err(user, "out of memory");
		fy_document_destroy(doc);
		return 1;
	}
	size_t errors = 0, kept = 0;
	for (int i = 0; i < n; i++) {
		struct fy_node *k = fy_node_sequence_get_by_index(keys, i);
		struct sn_jwt_key *o = &out[kept];
		const char *why = NULL;
		memset(o, 0, sizeof(*o));
		if (k == NULL || !fy_node_is_mapping(k)) {
			why = "is not a JSON object";
		} else {
			o->kty = fy_str(a, k, "kty");
			o->kid = fy_str(a, k, "kid");
			o->alg = fy_str(a, k, "alg");
			o->crv = fy_str(a, k, "crv");
			o->n = fy_str(a, k, "n");
			o->e = fy_str(a, k, "e");
			o->x = fy_str(a, k, "x");
			o->y = fy_str(a, k, "y");
			if (o->kty == NULL)
				why = "has no kty";
			else if (!strcmp(o->kty, "RSA"))
				why = !b64url_ok(o->n, 16, 2048) || !b64url_ok(o->e, 1, 16) ? "needs n and e (base64url)" : NULL;
			else if (!strcmp(o->kty, "EC"))
				why = o->crv == NULL || (strcmp(o->crv, "P-256") && strcmp(o->crv, "P-384"))
					      ? "needs crv P-256 or P-384"
				      : !b64url_ok(o->x, 8, 128) || !b64url_ok(o->y, 8, 128) ? "needs x and y (base64url)"
											       : NULL;
			else if (!strcmp(o->kty, "OKP"))
				why = o->crv == NULL || strcmp(o->crv, "Ed25519") ? "needs crv Ed25519"
				      : !b64url_ok(o->x, 8, 128)              ? "needs x (base64url)"
									     : NULL;
			else
				why = "has a kty other than RSA, EC or OKP";
		}
		if (why != NULL) {
			snprintf(msg, sizeof(msg), "jwks key %d %s", i, why);
			on_err(user, msg);
			errors++;
			continue;
		}
		kept++;
	}
	fy_document_destroy(doc);
	*keys_out = out;
	*n_out = kept;
	return errors;
}

struct jwks_err {
	struct cfg_ctx *c;
	const struct yn *at;
};

static void jwks_cfg_err(void *user, const char *msg)
{
	struct jwks_err *e = user;
	cfg_err(e->c, e->at, "%s", msg);
}

/* The inline JWKS: {"keys": [JWK...]}. Errors name the key. */
static void parse_jwks(struct cfg_ctx *c, const struct yn *at, const char *text, struct sn_jwt_rule *r)
{
	struct jwks_err e = { c, at };
	sn_jwks_parse(c->a, text, strlen(text), &r->keys, &r->n_keys, jwks_cfg_err, &e);
}

/* A list of strings (fromParams, fromCookies, audiences). */
static void parse_strs(struct cfg_ctx *c, const struct yn *v, char ***out, size_t *n)
{
	if (cfg_want_seq(c, v, MAX_LOCATIONS) != 0)
		return;
	*out = sn_arena_new_array(c->a, char *, v->n ? v->n : 1);
	if (*out == NULL)
		return;
	for (size_t i = 0; i < v->n; i++) {
		size_t pl = cfg_path_push(c, "[%zu]", i);
		char *s = NULL;
		if (cfg_get_str(c, v->items[i], CFG_MAX_NAME, &s) == 0 && s[0])
			(*out)[(*n)++] = s;
		cfg_path_pop(c, pl);
	}
}

static void parse_from_headers(struct cfg_ctx *c, const struct yn *v, struct sn_jwt_rule *r)
{
	if (cfg_want_seq(c, v, MAX_LOCATIONS) != 0)
		return;
	r->headers = sn_arena_new_array(c->a, struct sn_jwt_from, v->n ? v->n : 1);
	if (r->headers == NULL)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const struct yn *h = v->items[i];
		size_t pl = cfg_path_push(c, "[%zu]", i);
		struct sn_jwt_from *o = &r->headers[r->n_headers];
		if (cfg_want_map(c, h) == 0) {
			for (size_t j = 0; j < h->n; j++) {
				size_t ql = cfg_path_push(c, ".%s", h->keys[j]->s);
				if (!strcmp(h->keys[j]->s, "name")) {
					if (cfg_get_str(c, h->items[j], CFG_MAX_NAME, &o->name) == 0)
						sn_ascii_lower(o->name);
				} else if (!strcmp(h->keys[j]->s, "prefix")) {
					cfg_get_str(c, h->items[j], CFG_MAX_NAME, &o->prefix);
				} else {
					cfg_warn_unknown(c, h->keys[j]);
				}
				cfg_path_pop(c, ql);
			}
			if (cfg_require(c, h, "name", YN_SCALAR, "the header that carries the token") != NULL &&
			    o->name != NULL) {
				if (o->prefix == NULL)
					o->prefix = "";
				r->n_headers++;
			}
		}
		cfg_path_pop(c, pl);
	}
}

/* outputClaimToHeaders: [{header, claim}] */
static void parse_claim_headers(struct cfg_ctx *c, const struct yn *v, struct sn_jwt_rule *r)
{
	if (cfg_want_seq(c, v, 8) != 0)
		return;
	r->claim_headers = sn_arena_new_array(c->a, struct sn_header_op, v->n ? v->n : 1);
	for (size_t i = 0; r->claim_headers && i < v->n; i++) {
		const struct yn *h = v->items[i];
		size_t pl = cfg_path_push(c, "[%zu]", i);
		struct sn_header_op *o = &r->claim_headers[r->n_claim_headers];
		if (cfg_want_map(c, h) == 0) {
			for (size_t j = 0; j < h->n; j++) {
				size_t ql = cfg_path_push(c, ".%s", h->keys[j]->s);
				if (!strcmp(h->keys[j]->s, "header")) {
					if (cfg_get_str(c, h->items[j], CFG_MAX_NAME, &o->name) == 0)
						sn_ascii_lower(o->name);
				} else if (!strcmp(h->keys[j]->s, "claim")) {
					cfg_get_str(c, h->items[j], CFG_MAX_NAME, &o->value);
				} else {
					cfg_warn_unknown(c, h->keys[j]);
				}
				cfg_path_pop(c, ql);
			}
			if (cfg_require(c, h, "header", YN_SCALAR, "the header to write the claim to") != NULL &&
			    cfg_require(c, h, "claim", YN_SCALAR, "the claim to copy (a.b for a nested one)") != NULL &&
			    o->name && o->value)
				r->n_claim_headers++;
		}
		cfg_path_pop(c, pl);
	}
}

static void parse_rule(struct cfg_ctx *c, const struct yn *v, struct sn_jwt_rule *r)
{
	const struct yn *jwks_node = NULL;
	char *jwks = NULL;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "issuer")) {
			cfg_get_str(c, x, CFG_MAX_STR, &r->issuer);
		} else if (!strcmp(k, "audiences")) {
			parse_strs(c, x, &r->audiences, &r->n_audiences);
		} else if (!strcmp(k, "jwksUri")) {
			cfg_get_str(c, x, CFG_MAX_STR, &r->jwks_uri);
		} else if (!strcmp(k, "jwks")) {
			jwks_node = x;
			if (cfg_get_str(c, x, MAX_JWKS_TEXT, &jwks) == 0)
				parse_jwks(c, x, jwks, r);
		} else if (!strcmp(k, "fromHeaders")) {
			parse_from_headers(c, x, r);
		} else if (!strcmp(k, "fromParams")) {
			parse_strs(c, x, &r->params, &r->n_params);
		} else if (!strcmp(k, "fromCookies")) {
			parse_strs(c, x, &r->cookies, &r->n_cookies);
		} else if (!strcmp(k, "forwardOriginalToken")) {
			cfg_get_bool(c, x, &r->forward);
		} else if (!strcmp(k, "outputPayloadToHeader")) {
			if (cfg_get_str(c, x, CFG_MAX_NAME, &r->payload_header) == 0)
				sn_ascii_lower(r->payload_header);
		} else if (!strcmp(k, "outputClaimToHeaders")) {
			parse_claim_headers(c, x, r);
		} else if (!strcmp(k, "timeout")) {
			cfg_warn_unimplemented(c, v->keys[i], k);
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	cfg_require(c, v, "issuer", YN_SCALAR, "the iss of the tokens this rule accepts");
	if (jwks_node == NULL && r->jwks_uri != NULL && strncmp(r->jwks_uri, "http://", 7) != 0 &&
	    strncmp(r->jwks_uri, "https://", 8) != 0)
		cfg_err(c, v, "jwksUri \"%.200s\" is not an http:// or https:// URI", r->jwks_uri);
	else if (jwks_node == NULL && r->jwks_uri == NULL)
		cfg_err(c, v, "a jwtRule needs jwks (inline JSON Web Key Set) or jwksUri to check signatures");
}

struct cfg_reqauthn *cfg_parse_request_authentication(struct cfg_ctx *c, const struct yn *spec)
{
	struct cfg_reqauthn *ra = sn_arena_new(c->a, struct cfg_reqauthn);
	size_t unknown0 = c->unknown;
	if (ra == NULL)
		return NULL;
	for (size_t i = 0; i < spec->n; i++) {
		const char *k = spec->keys[i]->s;
		const struct yn *v = spec->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "selector")) {
			cfg_parse_selector(c, v, &ra->selector, &ra->has_selector);
		} else if (!strcmp(k, "jwtRules")) {
			if (cfg_want_seq(c, v, MAX_LOCATIONS) == 0) {
				ra->rules = sn_arena_new_array(c->a, struct sn_jwt_rule, v->n ? v->n : 1);
				for (size_t j = 0; ra->rules != NULL && j < v->n; j++) {
					size_t ql = cfg_path_push(c, "[%zu]", j);
					if (cfg_want_map(c, v->items[j]) == 0)
						parse_rule(c, v->items[j], &ra->rules[ra->n_rules++]);
					cfg_path_pop(c, ql);
				}
			}
		} else if (!strcmp(k, "targetRef") || !strcmp(k, "targetRefs")) {
			if (v->type != YN_NULL) {
				cfg_warn(c, spec->keys[i], "%s (policies attached to a Gateway) is not implemented by "
					 "Sinew yet; this policy is ignored (it never applies to sidecars)", k);
				ra->ignored = 1;
			}
		} else {
			cfg_warn_unknown(c, spec->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (!ra->ignored)
		ra->unenforceable = cfg_security_unenforceable(c, spec, unknown0,
			"every request to the workloads it selects is refused, 401 policy_unenforceable");
	return ra;
}

/* ---- copy into a snapshot ------------------------------------------- */

static char *adup(struct sn_arena *a, const char *s, int *oom)
{
	char *d = s ? sn_arena_strdup(a, s) : NULL;
	if (s && d == NULL)
		*oom = 1;
	return d;
}

static char **dup_strs(struct sn_arena *a, char *const *in, size_t n, int *oom)
{
	if (n == 0)
		return NULL;
	char **o = sn_arena_new_array(a, char *, n);
	if (o == NULL) {
		*oom = 1;
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		o[i] = adup(a, in[i], oom);
	return o;
}

int cfg_jwt_rule_copy(struct sn_arena *a, const struct sn_jwt_rule *in, const char *origin, struct sn_jwt_rule *out)
{
	int oom = 0;
	memset(out, 0, sizeof(*out));
	out->origin = adup(a, origin, &oom);
	out->issuer = adup(a, in->issuer, &oom);
	out->jwks_uri = adup(a, in->jwks_uri, &oom);
	out->forward = in->forward;
	out->payload_header = adup(a, in->payload_header, &oom);
	if (in->n_claim_headers) {
		out->claim_headers = sn_arena_new_array(a, struct sn_header_op, in->n_claim_headers);
		oom |= out->claim_headers == NULL;
		for (size_t i = 0; out->claim_headers && i < in->n_claim_headers; i++) {
			out->claim_headers[i].name = adup(a, in->claim_headers[i].name, &oom);
			out->claim_headers[i].value = adup(a, in->claim_headers[i].value, &oom);
		}
		out->n_claim_headers = in->n_claim_headers;
	}
	out->audiences = dup_strs(a, in->audiences, in->n_audiences, &oom);
	out->n_audiences = in->n_audiences;
	out->params = dup_strs(a, in->params, in->n_params, &oom);
	out->n_params = in->n_params;
	out->cookies = dup_strs(a, in->cookies, in->n_cookies, &oom);
	out->n_cookies = in->n_cookies;
	if (in->n_headers) {
		out->headers = sn_arena_new_array(a, struct sn_jwt_from, in->n_headers);
		oom |= out->headers == NULL;
		for (size_t i = 0; out->headers && i < in->n_headers; i++) {
			out->headers[i].name = adup(a, in->headers[i].name, &oom);
			out->headers[i].prefix = adup(a, in->headers[i].prefix, &oom);
		}
		out->n_headers = in->n_headers;
	}
	/* The headers a valid token is removed from (Istio's default: the
	 * Authorization header), unless forwardOriginalToken. */
	size_t nh = in->n_headers ? in->n_headers : (in->n_params || in->n_cookies ? 0 : 1);
	if (nh) {
		out->strip.remove = sn_arena_new_array(a, struct sn_header_op, nh);
		oom |= out->strip.remove == NULL;
		for (size_t i = 0; out->strip.remove && i < nh; i++) {
			out->strip.remove[i].name = adup(a, in->n_headers ? in->headers[i].name : "authorization", &oom);
			out->strip.n_remove++;
		}
	}
	if (in->n_keys) {
		out->keys = sn_arena_new_array(a, struct sn_jwt_key, in->n_keys);
		oom |= out->keys == NULL;
		for (size_t i = 0; out->keys && i < in->n_keys; i++) {
			const struct sn_jwt_key *k = &in->keys[i];
			struct sn_jwt_key *o = &out->keys[i];
			o->kty = adup(a, k->kty, &oom);
			o->kid = adup(a, k->kid, &oom);
			o->alg = adup(a, k->alg, &oom);
			o->crv = adup(a, k->crv, &oom);
			o->n = adup(a, k->n, &oom);
			o->e = adup(a, k->e, &oom);
			o->x = adup(a, k->x, &oom);
			o->y = adup(a, k->y, &oom);
		}
		out->n_keys = in->n_keys;
	}
	return oom ? SN_ENOMEM : 0;
}
