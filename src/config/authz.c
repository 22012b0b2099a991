/* AuthorizationPolicy: loading (Istio's fields and validation), the
 * compiled form a snapshot carries, and the evaluation the inbound path
 * runs (docs/security.md).
 *
 * Semantics are Istio's (istio/api security/v1 authorization_policy.proto):
 * CUSTOM (the provider decides: the proxy's filter_extauthz.c asks it, then
 * judges again with custom_allowed), then DENY, then
 * ALLOW; with any ALLOW policy on the workload a
 * request no ALLOW policy matches is denied; AUDIT only marks. A policy
 * without rules matches nothing; an empty rule matches everything. Strings
 * match exact, "prefix*", "*suffix" or "*" (present, i.e. non-empty). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "config_internal.h"
#include "sinew/h1.h"

#define AUTHZ_MAX_PATH 8192          /* longer paths are not judged: see check_path */
#define AUTHZ_MAX_HEADER_JOIN 8192   /* repeated headers joined with ',' (Envoy) */

const char *sn_authz_action_str(enum sn_authz_action a)
{
	switch (a) {
	case SN_AUTHZ_ALLOW:
		return "ALLOW";
	case SN_AUTHZ_DENY:
		return "DENY";
	case SN_AUTHZ_AUDIT:
		return "AUDIT";
	case SN_AUTHZ_CUSTOM:
		return "CUSTOM";
	}
	return "unknown";
}

/* ---- loading ---------------------------------------------------------- */

void sn_authz_str_compile(const char *s, struct sn_authz_str *out)
{
	size_t n = strlen(s);
	out->raw = (char *)s;
	if (n == 1 && s[0] == '*') {
		out->kind = SN_AUTHZ_STR_PRESENT;
		out->value = (char *)s + 1;
		out->len = 0;
	} else if (s[0] == '*') {
		out->kind = SN_AUTHZ_STR_SUFFIX;
		out->value = (char *)s + 1;
		out->len = n - 1;
	} else if (n > 0 && s[n - 1] == '*') {
		out->kind = SN_AUTHZ_STR_PREFIX;
		out->value = (char *)s;
		out->len = n - 1;
	} else {
		out->kind = SN_AUTHZ_STR_EXACT;
		out->value = (char *)s;
		out->len = n;
	}
}

/* What a list item must be. */
enum item_kind { ITEM_STR, ITEM_PATH, ITEM_METHOD, ITEM_CIDR, ITEM_PORT };

static int parse_cidr(const char *s, struct sn_authz_cidr *out)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	size_t al = slash ? (size_t)(slash - s) : strlen(s);
	if (al == 0 || al >= sizeof(buf))
		return -1;
	memcpy(buf, s, al);
	buf[al] = '\0';
	memset(out, 0, sizeof(*out));
	int max;
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		return -1;
	}
	int bits = max;
	if (slash != NULL) {
		const char *p = slash + 1;
		if (*p == '\0' || strlen(p) > 3)
			return -1;
		bits = 0;
		for (; *p; p++) {
			if (*p < '0' || *p > '9')
				return -1;
			bits = bits * 10 + (*p - '0');
		}
		if (bits > max)
			return -1;
	}
	out->bits = (uint8_t)bits;
	/* Host bits are ignored, as Envoy's CidrRange does. */
	for (int i = bits; i < max; i++)
		out->addr[i / 8] &= (uint8_t)~(0x80u >> (i % 8));
	out->raw = (char *)s;
	return 0;
}

static int parse_port(const char *s, uint16_t *out)
{
	unsigned long v = 0;
	size_t n = strlen(s);
	if (n == 0 || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

/* Reads a list field into one side (values or notValues) of strs, cidrs
 * or ports, per kind. Every item is validated; an empty string is an
 * error, as in Istio. Returns 0 or -1 (errors added). */
static int parse_list(struct cfg_ctx *c, const struct yn *v, enum item_kind kind, void *out_v, size_t *out_n)
{
	if (cfg_want_seq(c, v, CFG_MAX_LIST) != 0)
		return -1;
	size_t n = v->n ? v->n : 1;
	void *arr = NULL;
	if (kind == ITEM_CIDR)
		arr = sn_arena_new_array(c->a, struct sn_authz_cidr, n);
	else if (kind == ITEM_PORT)
		arr = sn_arena_new_array(c->a, uint16_t, n);
	else
		arr = sn_arena_new_array(c->a, struct sn_authz_str, n);
	if (arr == NULL) {
		cfg_err(c, v, "out of memory");
		return -1;
	}
	size_t k = 0;
	int bad = 0;
	for (size_t i = 0; i < v->n; i++) {
		const struct yn *x = v->items[i];
		size_t pl = cfg_path_push(c, "[%zu]", i);
		char *s = NULL;
		int g = cfg_get_str(c, x, CFG_MAX_STR, &s);
		if (g != 0) {
			if (g == 1)
				cfg_err(c, x, "empty value; remove it or write a value");
			bad = 1;
		} else if (s[0] == '\0') {
			cfg_err(c, x, "empty value; remove it, or write \"*\" to match any non-empty value");
			bad = 1;
		} else if (kind == ITEM_CIDR) {
			if (parse_cidr(s, &((struct sn_authz_cidr *)arr)[k]) != 0) {
				cfg_err(c, x, "\"%.64s\" is not an IP address or CIDR block (e.g. \"10.0.0.0/8\", "
					"\"203.0.113.4\", \"2001:db8::/32\")", s);
				bad = 1;
			} else {
				k++;
			}
		} else if (kind == ITEM_PORT) {
			if (parse_port(s, &((uint16_t *)arr)[k]) != 0) {
				cfg_err(c, x, "\"%.64s\" is not a port number (1-65535)", s);
				bad = 1;
			} else {
				k++;
			}
		} else {
			if (kind == ITEM_PATH && (strstr(s, "{*}") || strstr(s, "{**}"))) {
				cfg_err(c, x, "path templates ({*}, {**}) are not implemented by Sinew yet; write "
					"\"prefix*\" or \"*suffix\" instead");
				bad = 1;
			} else {
				size_t sl = strlen(s);
				if (sl > 2 && memchr(s + 1, '*', sl - 2) != NULL)
					cfg_warn(c, x, "'*' only has a meaning at the start or the end of a value; "
						 "\"%.64s\" is matched with that '*' as a literal character", s);
				sn_authz_str_compile(s, &((struct sn_authz_str *)arr)[k++]);
			}
		}
		cfg_path_pop(c, pl);
	}
	if (kind == ITEM_CIDR)
		*(struct sn_authz_cidr **)out_v = arr;
	else if (kind == ITEM_PORT)
		*(uint16_t **)out_v = arr;
	else
		*(struct sn_authz_str **)out_v = arr;
	*out_n = k;
	return bad ? -1 : 0;
}

/* Source and Operation fields: name, kind, and where the positive and
 * negative lists go (offsets into the struct). */
struct field_spec {
	const char *name;
	const char *not_name;
	enum item_kind kind;
	size_t off;                  /* offset of the sn_authz_strs/cidrs/ports */
	int warn;                    /* unused */
};

static const struct field_spec source_fields[] = {
	{ "principals", "notPrincipals", ITEM_STR, offsetof(struct sn_authz_source, principals), 0 },
	{ "requestPrincipals", "notRequestPrincipals", ITEM_STR,
	  offsetof(struct sn_authz_source, request_principals), 1 },
	{ "namespaces", "notNamespaces", ITEM_STR, offsetof(struct sn_authz_source, namespaces), 0 },
	{ "ipBlocks", "notIpBlocks", ITEM_CIDR, offsetof(struct sn_authz_source, ip_blocks), 0 },
	{ "remoteIpBlocks", "notRemoteIpBlocks", ITEM_CIDR, offsetof(struct sn_authz_source, remote_ip_blocks), 0 },
};

static const struct field_spec operation_fields[] = {
	{ "hosts", "notHosts", ITEM_STR, offsetof(struct sn_authz_operation, hosts), 0 },
	{ "ports", "notPorts", ITEM_PORT, offsetof(struct sn_authz_operation, ports), 0 },
	{ "methods", "notMethods", ITEM_METHOD, offsetof(struct sn_authz_operation, methods), 0 },
	{ "paths", "notPaths", ITEM_PATH, offsetof(struct sn_authz_operation, paths), 0 },
};

static int parse_field(struct cfg_ctx *c, const struct yn *key, const struct yn *v, const struct field_spec *f,
		       int negative, void *base)
{
	char *p = (char *)base + f->off;
	if (f->kind == ITEM_CIDR) {
		struct sn_authz_cidrs *x = (struct sn_authz_cidrs *)p;
		return negative ? parse_list(c, v, f->kind, &x->not_v, &x->n_not) : parse_list(c, v, f->kind, &x->v, &x->n);
	}
	if (f->kind == ITEM_PORT) {
		struct sn_authz_ports *x = (struct sn_authz_ports *)p;
		return negative ? parse_list(c, v, f->kind, &x->not_v, &x->n_not) : parse_list(c, v, f->kind, &x->v, &x->n);
	}
	struct sn_authz_strs *x = (struct sn_authz_strs *)p;
	if (!strcmp(f->name, "hosts"))
		x->icase = 1;
	return negative ? parse_list(c, v, f->kind, &x->not_v, &x->n_not) : parse_list(c, v, f->kind, &x->v, &x->n);
}

/* Parses a Source or Operation mapping. Returns the number of fields set. */
static size_t parse_fields(struct cfg_ctx *c, const struct yn *v, const struct field_spec *spec, size_t n_spec,
			   void *base)
{
	size_t set = 0;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		size_t pl = cfg_path_push(c, ".%s", k);
		int found = 0;
		for (size_t j = 0; j < n_spec && !found; j++) {
			int neg = !strcmp(k, spec[j].not_name);
			if (neg || !strcmp(k, spec[j].name)) {
				found = 1;
				if (v->items[i]->type != YN_NULL) {
					parse_field(c, v->keys[i], v->items[i], &spec[j], neg, base);
					set++;
				}
			}
		}
		if (!found)
			cfg_warn_unknown(c, v->keys[i]);
		cfg_path_pop(c, pl);
	}
	return set;
}

static void parse_from(struct cfg_ctx *c, const struct yn *v, struct sn_authz_rule *r)
{
	if (cfg_want_seq(c, v, CFG_MAX_LIST) != 0)
		return;
	r->from = sn_arena_new_array(c->a, struct sn_authz_source, v->n ? v->n : 1);
	if (r->from == NULL) {
		cfg_err(c, v, "out of memory");
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		const struct yn *f = v->items[i];
		size_t pl = cfg_path_push(c, "[%zu]", i);
		if (cfg_want_map(c, f) == 0) {
			const struct yn *src = NULL;
			for (size_t j = 0; j < f->n; j++) {
				if (!strcmp(f->keys[j]->s, "source")) {
					src = f->items[j];
				} else {
					size_t ql = cfg_path_push(c, ".%s", f->keys[j]->s);
					cfg_warn_unknown(c, f->keys[j]);
					cfg_path_pop(c, ql);
				}
			}
			size_t ql = cfg_path_push(c, ".source");
			int w = cfg_want_map(c, src);
			if (w == 1 || (w == 0 && src->n == 0))
				cfg_err(c, src ? src : f, "source must not be empty; give at least one of principals, "
					"namespaces, ipBlocks... (or remove this from entry)");
			else if (w == 0 && parse_fields(c, src, source_fields, SN_ARRAY_LEN(source_fields),
						       &r->from[r->n_from]) == 0)
				cfg_err(c, src, "source sets no field Sinew knows; give principals, namespaces, "
					"ipBlocks... (or remove this from entry)");
			else if (w == 0)
				r->n_from++;
			cfg_path_pop(c, ql);
		}
		cfg_path_pop(c, pl);
	}
}

static void parse_to(struct cfg_ctx *c, const struct yn *v, struct sn_authz_rule *r)
{
	if (cfg_want_seq(c, v, CFG_MAX_LIST) != 0)
		return;
	r->to = sn_arena_new_array(c->a, struct sn_authz_operation, v->n ? v->n : 1);
	if (r->to == NULL) {
		cfg_err(c, v, "out of memory");
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		const struct yn *t = v->items[i];
		size_t pl = cfg_path_push(c, "[%zu]", i);
		if (cfg_want_map(c, t) == 0) {
			const struct yn *op = NULL;
			for (size_t j = 0; j < t->n; j++) {
				if (!strcmp(t->keys[j]->s, "operation")) {
					op = t->items[j];
				} else {
					size_t ql = cfg_path_push(c, ".%s", t->keys[j]->s);
					cfg_warn_unknown(c, t->keys[j]);
					cfg_path_pop(c, ql);
				}
			}
			size_t ql = cfg_path_push(c, ".operation");
			int w = cfg_want_map(c, op);
			if (w == 1 || (w == 0 && op->n == 0))
				cfg_err(c, op ? op : t, "operation must not be empty; give at least one of hosts, ports, "
					"methods, paths (or remove this to entry)");
			else if (w == 0 && parse_fields(c, op, operation_fields, SN_ARRAY_LEN(operation_fields),
						       &r->to[r->n_to]) == 0)
				cfg_err(c, op, "operation sets no field Sinew knows; give hosts, ports, methods or "
					"paths (or remove this to entry)");
			else if (w == 0)
				r->n_to++;
			cfg_path_pop(c, ql);
		}
		cfg_path_pop(c, pl);
	}
}

/* Attributes of Istio's condition list (istio.io/docs/reference/config/
 * security/conditions/) that Sinew can't see yet: a condition on them
 * never holds. */
static int parse_condition_key(struct cfg_ctx *c, const struct yn *at, const char *key, struct sn_authz_condition *w)
{
	w->key = (char *)key;
	if (!strncmp(key, "request.headers[", 16)) {
		size_t n = strlen(key);
		if (n < 18 || key[n - 1] != ']') {
			cfg_err(c, at, "\"%.64s\": write request.headers[NAME], e.g. request.headers[x-user]", key);
			return -1;
		}
		w->header = sn_arena_strndup(c->a, key + 16, n - 17);
		if (w->header == NULL)
			return -1;
		sn_ascii_lower(w->header);
		w->attr = SN_AUTHZ_ATTR_HEADER;
		return 0;
	}
	if (!strcmp(key, "source.ip")) {
		w->attr = SN_AUTHZ_ATTR_SOURCE_IP;
	} else if (!strcmp(key, "remote.ip")) {
		w->attr = SN_AUTHZ_ATTR_REMOTE_IP;
	} else if (!strcmp(key, "source.namespace")) {
		w->attr = SN_AUTHZ_ATTR_SOURCE_NAMESPACE;
	} else if (!strcmp(key, "source.principal")) {
		w->attr = SN_AUTHZ_ATTR_SOURCE_PRINCIPAL;
	} else if (!strcmp(key, "destination.port")) {
		w->attr = SN_AUTHZ_ATTR_DESTINATION_PORT;
	} else if (!strcmp(key, "request.auth.principal")) {
		w->attr = SN_AUTHZ_ATTR_REQ_PRINCIPAL;
	} else if (!strcmp(key, "request.auth.audiences") || !strcmp(key, "request.auth.presenter")) {
		w->attr = SN_AUTHZ_ATTR_REQ_CLAIM;
		w->header = key[13] == 'a' ? "aud" : "azp";
	} else if (!strncmp(key, "request.auth.claims[", 20)) {
		/* claims[a] or claims[a][b]...: the names, joined by 0x1f */
		size_t n = strlen(key);
		char *path = sn_arena_strndup(c->a, key + 20, n > 20 ? n - 20 : 0);
		size_t pl = path ? strlen(path) : 0;
		if (path == NULL || pl < 2 || path[pl - 1] != ']' || strstr(path, "[]") || path[0] == ']') {
			cfg_err(c, at, "\"%.64s\": write request.auth.claims[NAME], or [NAME][NAME] for a nested claim",
				key);
			return -1;
		}
		path[pl - 1] = '\0';
		for (char *p = strstr(path, "]["); p != NULL; p = strstr(p, "][")) {
			p[0] = '\x1f';
			memmove(p + 1, p + 2, strlen(p + 2) + 1);
		}
		if (strchr(path, '[') || strchr(path, ']')) {
			cfg_err(c, at, "\"%.64s\": write request.auth.claims[NAME], or [NAME][NAME] for a nested claim",
				key);
			return -1;
		}
		w->attr = SN_AUTHZ_ATTR_REQ_CLAIM;
		w->header = path;
	} else if (!strcmp(key, "destination.ip") || !strcmp(key, "connection.sni") ||
		   !strncmp(key, "experimental.envoy.filters.", 27)) {
		cfg_err(c, at, "condition key %s is not implemented by Sinew yet; remove this condition "
			"(judging without it would change what the policy allows or denies)", key);
		return -1;
	} else {
		cfg_err(c, at, "unknown condition key \"%.64s\"; Sinew knows request.headers[NAME], source.ip, "
			"remote.ip, source.namespace, source.principal, destination.port, request.auth.*", key);
		return -1;
	}
	return 0;
}

static void parse_when(struct cfg_ctx *c, const struct yn *v, struct sn_authz_rule *r)
{
	if (cfg_want_seq(c, v, CFG_MAX_LIST) != 0)
		return;
	r->when = sn_arena_new_array(c->a, struct sn_authz_condition, v->n ? v->n : 1);
	if (r->when == NULL) {
		cfg_err(c, v, "out of memory");
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		const struct yn *x = v->items[i];
		size_t pl = cfg_path_push(c, "[%zu]", i);
		if (cfg_want_map(c, x) != 0) {
			cfg_path_pop(c, pl);
			continue;
		}
		struct sn_authz_condition *w = &r->when[r->n_when];
		const struct yn *key = yn_get(x, "key"), *values = NULL, *not_values = NULL;
		for (size_t j = 0; j < x->n; j++) {
			const char *k = x->keys[j]->s;
			if (!strcmp(k, "values")) {
				values = x->items[j];
			} else if (!strcmp(k, "notValues")) {
				not_values = x->items[j];
			} else if (strcmp(k, "key") != 0) {
				size_t ql = cfg_path_push(c, ".%s", k);
				cfg_warn_unknown(c, x->keys[j]);
				cfg_path_pop(c, ql);
			}
		}
		char *ks = NULL;
		int ok = 0;
		if (cfg_require(c, x, "key", YN_SCALAR, "the attribute to test, e.g. key: request.headers[x-user]")) {
			size_t ql = cfg_path_push(c, ".key");
			if (cfg_get_str(c, key, CFG_MAX_STR, &ks) == 0)
				ok = parse_condition_key(c, key, ks, w) == 0;
			cfg_path_pop(c, ql);
		}
		if ((values == NULL || values->type == YN_NULL) && (not_values == NULL || not_values->type == YN_NULL)) {
			cfg_err(c, x, "at least one of values or notValues must be set");
			ok = 0;
		}
		enum item_kind kind = ITEM_STR;
		if (w->attr == SN_AUTHZ_ATTR_SOURCE_IP || w->attr == SN_AUTHZ_ATTR_REMOTE_IP)
			kind = ITEM_CIDR;
		else if (w->attr == SN_AUTHZ_ATTR_DESTINATION_PORT)
			kind = ITEM_PORT;
		for (int neg = 0; ok && neg < 2; neg++) {
			const struct yn *lv = neg ? not_values : values;
			if (lv == NULL || lv->type == YN_NULL)
				continue;
			size_t rl = cfg_path_push(c, neg ? ".notValues" : ".values");
			int rc;
			if (kind == ITEM_CIDR)
				rc = neg ? parse_list(c, lv, kind, &w->cidrs.not_v, &w->cidrs.n_not)
					 : parse_list(c, lv, kind, &w->cidrs.v, &w->cidrs.n);
			else if (kind == ITEM_PORT)
				rc = neg ? parse_list(c, lv, kind, &w->ports.not_v, &w->ports.n_not)
					 : parse_list(c, lv, kind, &w->ports.v, &w->ports.n);
			else
				rc = neg ? parse_list(c, lv, kind, &w->strs.not_v, &w->strs.n_not)
					 : parse_list(c, lv, kind, &w->strs.v, &w->strs.n);
			if (rc != 0)
				ok = 0;
			cfg_path_pop(c, rl);
		}
		if (ok)
			r->n_when++;
		cfg_path_pop(c, pl);
	}
}

static void parse_rules(struct cfg_ctx *c, const struct yn *v, struct cfg_authz *az)
{
	if (cfg_want_seq(c, v, CFG_MAX_LIST) != 0)
		return;
	az->rules = sn_arena_new_array(c->a, struct sn_authz_rule, v->n ? v->n : 1);
	if (az->rules == NULL) {
		cfg_err(c, v, "out of memory");
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		const struct yn *x = v->items[i];
		size_t pl = cfg_path_push(c, "[%zu]", i);
		struct sn_authz_rule *r = &az->rules[az->n_rules];
		int w = cfg_want_map(c, x);
		if (w < 0) {
			cfg_path_pop(c, pl);
			continue;
		}
		/* "- {}" (or a null item) is the empty rule: it matches everything. */
		for (size_t j = 0; w == 0 && j < x->n; j++) {
			const char *k = x->keys[j]->s;
			size_t ql = cfg_path_push(c, ".%s", k);
			if (!strcmp(k, "from"))
				parse_from(c, x->items[j], r);
			else if (!strcmp(k, "to"))
				parse_to(c, x->items[j], r);
			else if (!strcmp(k, "when"))
				parse_when(c, x->items[j], r);
			else
				cfg_warn_unknown(c, x->keys[j]);
			cfg_path_pop(c, ql);
		}
		az->n_rules++;
		cfg_path_pop(c, pl);
	}
}

void cfg_parse_selector(struct cfg_ctx *c, const struct yn *v, struct sn_labels *out, int *has)
{
	if (cfg_want_map(c, v) != 0)
		return;
	*has = 1;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "matchLabels"))
			cfg_get_labels(c, v->items[i], out);
		else
			cfg_warn_unknown(c, v->keys[i]);
		cfg_path_pop(c, pl);
	}
}

/* provider: {name: NAME} of a CUSTOM policy (Istio's ExtensionProvider). */
static void parse_provider(struct cfg_ctx *c, const struct yn *v, struct cfg_authz *az)
{
	if (v->type != YN_MAP) {
		cfg_err(c, v, "provider must be a map: {name: NAME}");
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		size_t pl = cfg_path_push(c, ".%s", v->keys[i]->s);
		if (!strcmp(v->keys[i]->s, "name"))
			cfg_get_str(c, v->items[i], 253, &az->provider);
		else
			cfg_warn_unknown(c, v->keys[i]);
		cfg_path_pop(c, pl);
	}
	if (az->provider == NULL || az->provider[0] == '\0')
		cfg_err(c, v, "provider needs a name (the extension provider that decides)");
}

struct cfg_authz *cfg_parse_authorization_policy(struct cfg_ctx *c, const struct yn *spec)
{
	struct cfg_authz *az = sn_arena_new(c->a, struct cfg_authz);
	size_t unknown0 = c->unknown;
	if (az == NULL)
		return NULL;
	const struct yn *provider = NULL, *action_node = NULL, *target = NULL, *selector = NULL;
	int custom = 0;
	for (size_t i = 0; i < spec->n; i++) {
		const char *k = spec->keys[i]->s;
		const struct yn *v = spec->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "selector")) {
			selector = spec->keys[i];
			cfg_parse_selector(c, v, &az->selector, &az->has_selector);
		} else if (!strcmp(k, "action")) {
			char *a = NULL;
			action_node = v;
			if (cfg_get_str(c, v, 32, &a) == 0) {
				if (!strcmp(a, "ALLOW"))
					az->action = SN_AUTHZ_ALLOW;
				else if (!strcmp(a, "DENY"))
					az->action = SN_AUTHZ_DENY;
				else if (!strcmp(a, "AUDIT"))
					az->action = SN_AUTHZ_AUDIT;
				else if (!strcmp(a, "CUSTOM"))
					custom = 1, az->action = SN_AUTHZ_CUSTOM;
				else
					cfg_err(c, v, "unknown action \"%.32s\"; use ALLOW, DENY, AUDIT or CUSTOM", a);
			}
		} else if (!strcmp(k, "rules")) {
			parse_rules(c, v, az);
		} else if (!strcmp(k, "provider")) {
			provider = spec->keys[i];
			parse_provider(c, v, az);
		} else if (!strcmp(k, "targetRef") || !strcmp(k, "targetRefs")) {
			if (v->type != YN_NULL)
				target = spec->keys[i];
		} else {
			cfg_warn_unknown(c, spec->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (provider != NULL && !custom) {
		size_t pl = cfg_path_push(c, ".provider");
		cfg_err(c, provider, "provider must be used only with action: CUSTOM");
		cfg_path_pop(c, pl);
	}
	if (target != NULL && selector != NULL) {
		size_t pl = cfg_path_push(c, ".%s", target->s);
		cfg_err(c, target, "at most one of selector and %s can be set", target->s);
		cfg_path_pop(c, pl);
	}
	if (custom && az->provider == NULL && provider == NULL) {
		size_t pl = cfg_path_push(c, ".provider");
		cfg_err(c, action_node, "action CUSTOM needs provider: {name: NAME}, the extension provider "
			"that decides");
		cfg_path_pop(c, pl);
	}
	if (target != NULL) {
		size_t pl = cfg_path_push(c, ".%s", target->s);
		cfg_warn(c, target, "%s (policies attached to a Gateway) is not implemented by Sinew yet; this "
			 "policy is ignored (it never applies to sidecars)", target->s);
		cfg_path_pop(c, pl);
		az->ignored = 1;
	} else {
		az->unenforceable = cfg_security_unenforceable(c, spec, unknown0,
			"every request to the workloads it selects is denied, 403 policy_unenforceable");
	}
	return az;
}

/* ---- copy into a snapshot ------------------------------------------- */

static int copy_strs(struct sn_arena *a, struct sn_authz_strs *s)
{
	struct sn_authz_str *lists[2] = { s->v, s->not_v };
	size_t ns[2] = { s->n, s->n_not };
	for (int k = 0; k < 2; k++) {
		if (ns[k] == 0)
			continue;
		struct sn_authz_str *o = sn_arena_new_array(a, struct sn_authz_str, ns[k]);
		if (o == NULL)
			return -1;
		for (size_t i = 0; i < ns[k]; i++) {
			char *raw = sn_arena_strdup(a, lists[k][i].raw);
			if (raw == NULL)
				return -1;
			sn_authz_str_compile(raw, &o[i]);
		}
		if (k == 0)
			s->v = o;
		else
			s->not_v = o;
	}
	return 0;
}

static int copy_cidrs(struct sn_arena *a, struct sn_authz_cidrs *s)
{
	struct sn_authz_cidr *lists[2] = { s->v, s->not_v };
	size_t ns[2] = { s->n, s->n_not };
	for (int k = 0; k < 2; k++) {
		if (ns[k] == 0)
			continue;
		struct sn_authz_cidr *o = sn_arena_new_array(a, struct sn_authz_cidr, ns[k]);
		if (o == NULL)
			return -1;
		for (size_t i = 0; i < ns[k]; i++) {
			o[i] = lists[k][i];
			if ((o[i].raw = sn_arena_strdup(a, lists[k][i].raw)) == NULL)
				return -1;
		}
		if (k == 0)
			s->v = o;
		else
			s->not_v = o;
	}
	return 0;
}

static int copy_ports(struct sn_arena *a, struct sn_authz_ports *s)
{
	uint16_t *lists[2] = { s->v, s->not_v };
	size_t ns[2] = { s->n, s->n_not };
	for (int k = 0; k < 2; k++) {
		if (ns[k] == 0)
			continue;
		uint16_t *o = sn_arena_new_array(a, uint16_t, ns[k]);
		if (o == NULL)
			return -1;
		memcpy(o, lists[k], ns[k] * sizeof(*o));
		if (k == 0)
			s->v = o;
		else
			s->not_v = o;
	}
	return 0;
}

int cfg_authz_copy_rules(struct sn_arena *a, const struct sn_authz_rule *in, size_t n, struct sn_authz_rule **out)
{
	*out = sn_arena_new_array(a, struct sn_authz_rule, n ? n : 1);
	if (*out == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct sn_authz_rule *r = &(*out)[i];
		*r = in[i];
		r->from = sn_arena_new_array(a, struct sn_authz_source, r->n_from ? r->n_from : 1);
		r->to = sn_arena_new_array(a, struct sn_authz_operation, r->n_to ? r->n_to : 1);
		r->when = sn_arena_new_array(a, struct sn_authz_condition, r->n_when ? r->n_when : 1);
		if (r->from == NULL || r->to == NULL || r->when == NULL)
			return -1;
		for (size_t j = 0; j < r->n_from; j++) {
			struct sn_authz_source *s = &r->from[j];
			*s = in[i].from[j];
			if (copy_strs(a, &s->principals) || copy_strs(a, &s->request_principals) ||
			    copy_strs(a, &s->namespaces) || copy_cidrs(a, &s->ip_blocks) ||
			    copy_cidrs(a, &s->remote_ip_blocks))
				return -1;
		}
		for (size_t j = 0; j < r->n_to; j++) {
			struct sn_authz_operation *o = &r->to[j];
			*o = in[i].to[j];
			if (copy_strs(a, &o->hosts) || copy_ports(a, &o->ports) || copy_strs(a, &o->methods) ||
			    copy_strs(a, &o->paths))
				return -1;
		}
		for (size_t j = 0; j < r->n_when; j++) {
			struct sn_authz_condition *w = &r->when[j];
			*w = in[i].when[j];
			w->key = sn_arena_strdup(a, in[i].when[j].key);
			w->header = in[i].when[j].header ? sn_arena_strdup(a, in[i].when[j].header) : NULL;
			if (w->key == NULL || (in[i].when[j].header && w->header == NULL) || copy_strs(a, &w->strs) ||
			    copy_cidrs(a, &w->cidrs) || copy_ports(a, &w->ports))
				return -1;
		}
	}
	return 0;
}

/* ---- evaluation ------------------------------------------------------- */

/* What a request is judged on after normalization. */
struct eval {
	const struct sn_authz_request *r;
	struct sn_str path;
	int have_ip;
	int family;
	uint8_t ip[16];
	enum sn_authz_action action;  /* of the policy being evaluated */
};

static int bytes_eq(const char *a, const char *b, size_t n, int icase)
{
	if (n == 0)
		return 1;
	return icase ? sn_str_ieq(sn_str_make(a, n), sn_str_make(b, n)) : memcmp(a, b, n) == 0;
}

int sn_authz_str_match(const struct sn_authz_str *m, struct sn_str v, int icase)
{
	const char *p = v.p ? v.p : "";
	switch (m->kind) {
	case SN_AUTHZ_STR_PRESENT:
		return v.len > 0;
	case SN_AUTHZ_STR_EXACT:
		return v.len == m->len && bytes_eq(p, m->value, m->len, icase);
	case SN_AUTHZ_STR_PREFIX:
		return v.len >= m->len && bytes_eq(p, m->value, m->len, icase);
	case SN_AUTHZ_STR_SUFFIX:
		return v.len >= m->len && bytes_eq(p + v.len - m->len, m->value, m->len, icase);
	}
	return 0;
}

static int strs_hold(const struct sn_authz_strs *s, struct sn_str v)
{
	int any = s->n == 0;
	for (size_t i = 0; !any && i < s->n; i++)
		any = sn_authz_str_match(&s->v[i], v, s->icase);
	if (!any)
		return 0;
	for (size_t i = 0; i < s->n_not; i++)
		if (sn_authz_str_match(&s->not_v[i], v, s->icase))
			return 0;
	return 1;
}

static int cidr_match(const struct sn_authz_cidr *c, const struct eval *e)
{
	if (!e->have_ip || c->family != e->family)
		return 0;
	int full = c->bits / 8, rest = c->bits % 8;
	if (memcmp(c->addr, e->ip, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	uint8_t mask = (uint8_t)(0xffu << (8 - rest));
	return (e->ip[full] & mask) == c->addr[full];
}

static int cidrs_hold(const struct sn_authz_cidrs *s, const struct eval *e)
{
	int any = s->n == 0;
	for (size_t i = 0; !any && i < s->n; i++)
		any = cidr_match(&s->v[i], e);
	if (!any)
		return 0;
	for (size_t i = 0; i < s->n_not; i++)
		if (cidr_match(&s->not_v[i], e))
			return 0;
	return 1;
}

static int ports_hold(const struct sn_authz_ports *s, uint16_t port)
{
	int any = s->n == 0;
	for (size_t i = 0; !any && i < s->n; i++)
		any = s->v[i] == port;
	if (!any)
		return 0;
	for (size_t i = 0; i < s->n_not; i++)
		if (s->not_v[i] == port)
			return 0;
	return 1;
}

/* A condition that can't be judged holds in a policy whose match denies
 * (DENY, CUSTOM) and not in one whose match allows: fail closed. */
static int denying(const struct eval *e)
{
	return e->action == SN_AUTHZ_DENY || e->action == SN_AUTHZ_CUSTOM;
}

/* request.headers[NAME]: repeated headers are joined with ',' as Envoy
 * does. A joined value too long to judge fails closed: the condition
 * holds in a DENY policy and not in an ALLOW one. */
static int header_holds(const struct sn_authz_condition *w, const struct eval *e)
{
	const struct sn_authz_request *r = e->r;
	char join[AUTHZ_MAX_HEADER_JOIN];
	struct sn_str v = { "", 0 };
	size_t jl = 0, found = 0;
	struct sn_str name = sn_str_make(w->header, strlen(w->header));

	for (size_t i = 0; i < r->n_headers; i++) {
		if (!sn_str_ieq(r->headers[i].name, name))
			continue;
		struct sn_str hv = r->headers[i].value;
		if (found == 0) {
			v = hv;
		} else {
			if (found == 1) {
				if (v.len > sizeof(join))
					return denying(e);
				memcpy(join, v.p, v.len);
				jl = v.len;
			}
			if (jl + 1 + hv.len > sizeof(join))
				return denying(e);
			join[jl++] = ',';
			memcpy(join + jl, hv.p, hv.len);
			jl += hv.len;
			v = sn_str_make(join, jl);
		}
		found++;
	}
	return strs_hold(&w->strs, v);
}

/* request.auth.claims[...]: holds when any value of the claim (each
 * string of a list) matches; a request without a valid JWT has none. */
static int claim_holds(const struct sn_authz_condition *w, const struct eval *e)
{
	static const struct sn_str empty = { "", 0 };
	const char *path[8];
	char buf[256];
	size_t depth = 0;
	struct sn_str vals[32];

	if (e->r->claims == NULL)
		return strs_hold(&w->strs, empty);
	snprintf(buf, sizeof(buf), "%s", w->header);
	for (char *p = buf, *q; depth < SN_ARRAY_LEN(path); p = q + 1) {
		path[depth++] = p;
		if ((q = strchr(p, '\x1f')) == NULL)
			break;
		*q = '\0';
	}
	size_t n = e->r->claims->get(e->r->claims, path, depth, vals, SN_ARRAY_LEN(vals));
	if (n == 0)
		return strs_hold(&w->strs, empty);
	for (size_t i = 0; i < n; i++)
		if (strs_hold(&w->strs, vals[i]))
			return 1;
	return 0;
}

static int condition_holds(const struct sn_authz_condition *w, const struct eval *e)
{
	static const struct sn_str empty = { "", 0 };
	switch (w->attr) {
	case SN_AUTHZ_ATTR_HEADER:
		return header_holds(w, e);
	case SN_AUTHZ_ATTR_SOURCE_IP:
	case SN_AUTHZ_ATTR_REMOTE_IP:
		return cidrs_hold(&w->cidrs, e);
	case SN_AUTHZ_ATTR_SOURCE_NAMESPACE:
		return strs_hold(&w->strs, e->r->source_namespace);
	case SN_AUTHZ_ATTR_SOURCE_PRINCIPAL:
		return strs_hold(&w->strs, e->r->principal);
	case SN_AUTHZ_ATTR_DESTINATION_PORT:
		return ports_hold(&w->ports, e->r->port);
	case SN_AUTHZ_ATTR_ABSENT:
		return strs_hold(&w->strs, empty);
	case SN_AUTHZ_ATTR_REQ_PRINCIPAL:
		return strs_hold(&w->strs, e->r->request_principal);
	case SN_AUTHZ_ATTR_REQ_CLAIM:
		return claim_holds(w, e);
	}
	return 0;
}

static int source_holds(const struct sn_authz_source *s, const struct eval *e)
{
	return strs_hold(&s->principals, e->r->principal) &&
	       strs_hold(&s->request_principals, e->r->request_principal) &&
	       strs_hold(&s->namespaces, e->r->source_namespace) && cidrs_hold(&s->ip_blocks, e) &&
	       cidrs_hold(&s->remote_ip_blocks, e);
}

static int operation_holds(const struct sn_authz_operation *o, const struct eval *e)
{
	return strs_hold(&o->hosts, e->r->host) && ports_hold(&o->ports, e->r->port) &&
	       strs_hold(&o->methods, e->r->method) && strs_hold(&o->paths, e->path);
}

static int rule_matches(const struct sn_authz_rule *r, const struct eval *e)
{
	int ok = r->n_from == 0;
	for (size_t i = 0; !ok && i < r->n_from; i++)
		ok = source_holds(&r->from[i], e);
	if (!ok)
		return 0;
	ok = r->n_to == 0;
	for (size_t i = 0; !ok && i < r->n_to; i++)
		ok = operation_holds(&r->to[i], e);
	if (!ok)
		return 0;
	for (size_t i = 0; i < r->n_when; i++)
		if (!condition_holds(&r->when[i], e))
			return 0;
	return 1;
}

static int policy_matches(const struct sn_authz_policy *p, struct eval *e)
{
	e->action = p->action;
	for (size_t i = 0; i < p->n_rules; i++)
		if (rule_matches(&p->rules[i], e))
			return 1;
	return 0;
}

static int unreserved(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '.' || c == '_' || c == '~';
}

/* The path as Istio's default (BASE) normalization leaves it: the query
 * cut, '\' as '/', percent-encoded unreserved characters decoded (others
 * with upper-case hex), dot segments removed (RFC 3986 5.2.4). Writes
 * into out (size cap); returns the length, or -1 if it does not fit. */
static long normalize_path(struct sn_str in, char *out, size_t cap)
{
	char tmp[AUTHZ_MAX_PATH];
	size_t n = 0;
	const char *q = in.len ? memchr(in.p, '?', in.len) : NULL;
	size_t len = q ? (size_t)(q - in.p) : in.len;
	if (len > sizeof(tmp) || len > cap)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char ch = in.p[i];
		if (ch == '%' && i + 2 < len) {
			int hi = sn_hex_value((unsigned char)in.p[i + 1]);
			int lo = sn_hex_value((unsigned char)in.p[i + 2]);
			if (hi >= 0 && lo >= 0) {
				int v = hi * 16 + lo;
				if (unreserved(v)) {
					tmp[n++] = (char)v;
				} else {
					static const char hex[] = "0123456789ABCDEF";
					tmp[n++] = '%';
					tmp[n++] = hex[hi];
					tmp[n++] = hex[lo];
				}
				i += 2;
				continue;
			}
		}
		tmp[n++] = ch == '\\' ? '/' : ch;
	}
	/* Remove dot segments: tmp[i..n) is the input buffer, out[0..o) the
	 * output buffer. */
	size_t i = 0, o = 0;
	while (i < n) {
		size_t rem = n - i;
		const char *s = tmp + i;
		if (rem >= 3 && !memcmp(s, "../", 3)) {
			i += 3;
		} else if (rem >= 2 && !memcmp(s, "./", 2)) {
			i += 2;
		} else if (rem >= 3 && !memcmp(s, "/./", 3)) {
			i += 2;
		} else if (rem == 2 && !memcmp(s, "/.", 2)) {
			tmp[i + 1] = '/';
			i += 1;
		} else if (rem >= 4 && !memcmp(s, "/../", 4)) {
			i += 3;
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
		} else if (rem == 3 && !memcmp(s, "/..", 3)) {
			i += 2;
			tmp[i] = '/';
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
		} else if ((rem == 1 && s[0] == '.') || (rem == 2 && !memcmp(s, "..", 2))) {
			i = n;
		} else {
			size_t j = i + 1;
			while (j < n && tmp[j] != '/')
				j++;
			if (o + (j - i) > cap)
				return -1;
			memcpy(out + o, tmp + i, j - i);
			o += j - i;
			i = j;
		}
	}
	return (long)o;
}

void sn_authz_check(const struct sn_snapshot *s, const struct sn_authz_request *r, struct sn_authz_result *out)
{
	memset(out, 0, sizeof(*out));
	out->decision = SN_AUTHZ_DECISION_ALLOW;
	out->reason = "rbac_denied";
	if (s != NULL && s->peer_auth.unenforceable != NULL) {
		/* fail closed: a policy Sinew cannot read whole denies */
		out->decision = SN_AUTHZ_DECISION_DENY;
		out->policy = s->peer_auth.unenforceable;
		out->reason = "policy_unenforceable";
		return;
	}
	if (s == NULL || s->n_authz == 0) {
		out->policy = "no policy";
		return;
	}
	for (size_t i = 0; i < s->n_authz; i++) {
		if (s->authz[i].unenforceable) {
			out->decision = SN_AUTHZ_DECISION_DENY;
			out->policy = s->authz[i].name;
			out->reason = "policy_unenforceable";
			return;
		}
	}
	struct eval e;
	char path[AUTHZ_MAX_PATH];
	memset(&e, 0, sizeof(e));
	e.r = r;
	long pl = normalize_path(r->path, path, sizeof(path));
	if (pl < 0) {
		/* Only with limits above the default request line (8 KiB). */
		out->decision = SN_AUTHZ_DECISION_DENY;
		out->policy = "path too long to judge";
		return;
	}
	e.path = sn_str_make(path, (size_t)pl);
	if (r->source != NULL && r->source->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)r->source;
		e.have_ip = 1;
		e.family = AF_INET;
		memcpy(e.ip, &a->sin_addr, 4);
	} else if (r->source != NULL && r->source->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)r->source;
		e.have_ip = 1;
		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			e.family = AF_INET;
			memcpy(e.ip, a->sin6_addr.s6_addr + 12, 4);
		} else {
			e.family = AF_INET6;
			memcpy(e.ip, &a->sin6_addr, 16);
		}
	}

	for (size_t i = 0; i < s->n_authz; i++) {
		const struct sn_authz_policy *p = &s->authz[i];
		if (p->action == SN_AUTHZ_AUDIT && !out->audited && policy_matches(p, &e)) {
			out->audited = 1;
			out->audit_policy = p->name;
		}
	}
	for (size_t i = 0; i < s->n_authz; i++) {
		const struct sn_authz_policy *p = &s->authz[i];
		if (p->action == SN_AUTHZ_CUSTOM && !r->custom_allowed && policy_matches(p, &e)) {
			out->decision = SN_AUTHZ_DECISION_DENY;
			out->policy = p->name;
			out->reason = "ext_authz_unavailable";
			out->provider = p->provider;
			return;
		}
	}
	for (size_t i = 0; i < s->n_authz; i++) {
		const struct sn_authz_policy *p = &s->authz[i];
		if (p->action == SN_AUTHZ_DENY && policy_matches(p, &e)) {
			out->decision = SN_AUTHZ_DECISION_DENY;
			out->policy = p->name;
			return;
		}
	}
	if (s->n_authz_allow == 0) {
		out->policy = "no ALLOW policy";
		return;
	}
	for (size_t i = 0; i < s->n_authz; i++) {
		const struct sn_authz_policy *p = &s->authz[i];
		if (p->action == SN_AUTHZ_ALLOW && policy_matches(p, &e)) {
			out->policy = p->name;
			return;
		}
	}
	out->decision = SN_AUTHZ_DECISION_DENY;
	out->policy = "default deny: no ALLOW policy matched";
}
