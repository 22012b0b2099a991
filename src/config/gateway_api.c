/* The Gateway API (gateway.networking.k8s.io): Gateway, HTTPRoute,
 * GRPCRoute, TCPRoute, TLSRoute and ReferenceGrant.
 *
 * Each loads into the shape Istio's resources load into, as Istio itself
 * converts them: a Gateway into a cfg_gateway (its listeners as servers)
 * that a gateway proxy of its namespace labelled
 * gateway.networking.k8s.io/gateway-name: NAME serves, and an HTTPRoute
 * into a cfg_vs whose http[] holds one entry per match of each rule, so
 * that translation can order the matches of every route bound to one host
 * by the Gateway API's precedence (translate.c) and build each with the
 * VirtualService's code. An HTTPRoute binds by parentRefs: to a Gateway's
 * listeners, or (GAMMA) to a Service, where it routes the mesh's calls to
 * that Service the way a VirtualService for it would. A GRPCRoute is an
 * HTTPRoute whose matches are gRPC methods (paths /SERVICE/METHOD); a
 * TCPRoute loads as a VirtualService's tcp[] (for listeners of protocol
 * TCP, or TLS that terminates), a TLSRoute as its tls[] (its hostnames the
 * server names; for TLS listeners that pass TLS through). A backendRef to
 * another namespace needs a
 * ReferenceGrant there, checked when translating (translate.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

/* Gateway API limits (the CRDs' maxItems) */
#define GWAPI_MAX_RULES 16
#define GWAPI_MAX_REFS 32        /* parentRefs, backendRefs */
#define GWAPI_MAX_FILTERS 16
#define GWAPI_MAX_LISTENERS 64

static int str_is(const char *s, const char *w)
{
	return s != NULL && !strcmp(s, w);
}

/* The namespace of the resource being loaded (c->name is "ns/name"). */
static void resource_ns(const struct cfg_ctx *c, char *out, size_t size)
{
	const char *slash = c->name ? strchr(c->name, '/') : NULL;
	snprintf(out, size, "%.*s", slash ? (int)(slash - c->name) : 7, slash ? c->name : "default");
}

int cfg_parent_names_gateway(const struct cfg_parent_ref *p, const char *route_ns, const char *gw_ns,
			     const char *gw_name)
{
	return !p->service && p->name != NULL && !strcmp(p->ns ? p->ns : route_ns, gw_ns) &&
	       !strcmp(p->name, gw_name);
}

/* group: "" (core) or the Gateway API's; kind: what this ref may name. */
static int group_is(const char *group, const char *want)
{
	return group == NULL ? want[0] == '\0' || !strcmp(want, "gateway.networking.k8s.io")
			     : !strcmp(group, want) || (want[0] == '\0' && !strcmp(group, "core"));
}

/* ---- HTTPRoute: parentRefs ------------------------------------------- */

static void parse_parent(struct cfg_ctx *c, const struct yn *v, struct cfg_parent_ref *p, int *ok)
{
	char *group = NULL, *kind = NULL;
	uint64_t x;
	*ok = 0;
	p->loc = cfg_loc_of(v);
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *y = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "group"))
			cfg_get_str(c, y, CFG_MAX_NAME, &group);
		else if (!strcmp(k, "kind"))
			cfg_get_str(c, y, 64, &kind);
		else if (!strcmp(k, "namespace"))
			cfg_get_str(c, y, 63, &p->ns);
		else if (!strcmp(k, "name"))
			cfg_get_str(c, y, CFG_MAX_NAME, &p->name);
		else if (!strcmp(k, "sectionName"))
			cfg_get_str(c, y, CFG_MAX_NAME, &p->section);
		else if (!strcmp(k, "port")) {
			if (cfg_get_uint(c, y, 1, 65535, &x) == 0)
				p->port = (uint16_t)x;
		} else
			cfg_warn_unknown(c, v->keys[i]);
		cfg_path_pop(c, pl);
	}
	if (cfg_require(c, v, "name", YN_SCALAR, "the Gateway (or Service) this route attaches to") == NULL)
		return;
	if (kind == NULL || !strcmp(kind, "Gateway")) {
		if (group != NULL && group[0] && !group_is(group, "gateway.networking.k8s.io")) {
			cfg_warn(c, v, "parentRef group \"%.64s\" with kind Gateway is not the Gateway API's; this parent "
				 "is ignored", group);
			return;
		}
		*ok = 1;
	} else if (!strcmp(kind, "Service") && (group == NULL || group_is(group, ""))) {
		p->service = 1;
		if (p->section != NULL)
			cfg_warn(c, v, "sectionName on a Service parent is not implemented; the route applies to "
				 "every port of %s (set port to limit it)", p->name);
		*ok = 1;
	} else {
		cfg_warn(c, v, "parentRef kind \"%.64s\" (group \"%.64s\") is not implemented; this parent is "
			 "ignored (Sinew attaches HTTPRoutes to Gateways and, for the mesh, to Services)", kind,
			 group ? group : "");
	}
}

/* ---- HTTPRoute: matches ------------------------------------------------ */

static int regex_ok(struct cfg_ctx *c, const struct yn *at, const char *src)
{
	regex_t *re = NULL;
	char err[128];
	if (strlen(src) > CFG_MAX_REGEX) {
		cfg_err(c, at, "a regular expression longer than %d bytes", CFG_MAX_REGEX);
		return 0;
	}
	if (cfg_regex_compile(src, 0, &re, err, sizeof(err)) != 0) {
		cfg_err(c, at, "regular expression \"%.64s\" does not compile: %s", src, err);
		return 0;
	}
	regfree(re);
	free(re);
	return 1;
}

/* path: {type: Exact | PathPrefix (default) | RegularExpression, value (default "/")} */
static void parse_path(struct cfg_ctx *c, const struct yn *v, struct sn_str_match *m)
{
	char *type = NULL, *value = NULL;
	const struct yn *vat = v;
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "type"))
			cfg_get_str(c, v->items[i], 32, &type);
		else if (!strcmp(k, "value")) {
			vat = v->items[i];
			cfg_get_str(c, v->items[i], 1024, &value);
		} else
			cfg_warn_unknown(c, v->keys[i]);
		cfg_path_pop(c, pl);
	}
	if (value == NULL)
		value = sn_arena_strdup(c->a, "/");
	if (value == NULL)
		return;
	size_t pl = cfg_path_push(c, ".value");
	if (type == NULL || !strcmp(type, "PathPrefix") || !strcmp(type, "Exact")) {
		if (value[0] != '/') {
			cfg_err(c, vat, "path \"%.64s\" must start with /", value);
		} else if (type != NULL && !strcmp(type, "Exact")) {
			m->kind = SN_MATCH_EXACT;
			m->value = value;
		} else {
			size_t n = strlen(value);
			while (n > 1 && value[n - 1] == '/')
				value[--n] = '\0';   /* "/foo/" takes /foo too: segments */
			m->kind = SN_MATCH_PATH_PREFIX;
			m->value = value;
		}
	} else if (!strcmp(type, "RegularExpression")) {
		if (regex_ok(c, vat, value)) {
			m->kind = SN_MATCH_REGEX;
			m->value = value;
		}
	} else {
		cfg_err(c, vat, "path type \"%.32s\": use Exact, PathPrefix or RegularExpression", type);
	}
	cfg_path_pop(c, pl);
}

/* headers / queryParams: [{type: Exact (default) | RegularExpression, name, value}] */
static void parse_kv_list(struct cfg_ctx *c, const struct yn *v, int lower, struct sn_kv_match **out, size_t *n_out)
{
	if (cfg_want_seq(c, v, CFG_MAX_KV) != 0 || v->n == 0)
		return;
	struct sn_kv_match *kv = sn_arena_new_array(c->a, struct sn_kv_match, v->n);
	if (kv == NULL)
		return;
	size_t n = 0;
	for (size_t j = 0; j < v->n; j++) {
		const struct yn *e = v->items[j];
		size_t ql = cfg_path_push(c, "[%zu]", j);
		char *type = NULL, *name = NULL, *value = NULL;
		const struct yn *vat = e;
		if (cfg_want_map(c, e) == 0) {
			for (size_t i = 0; i < e->n; i++) {
				const char *k = e->keys[i]->s;
				size_t pl = cfg_path_push(c, ".%s", k);
				if (!strcmp(k, "type"))
					cfg_get_str(c, e->items[i], 32, &type);
				else if (!strcmp(k, "name"))
					cfg_get_str(c, e->items[i], 256, &name);
				else if (!strcmp(k, "value")) {
					vat = e->items[i];
					cfg_get_str(c, e->items[i], CFG_MAX_STR, &value);
				} else
					cfg_warn_unknown(c, e->keys[i]);
				cfg_path_pop(c, pl);
			}
			if (cfg_require(c, e, "name", YN_SCALAR, "the name to match") != NULL &&
			    cfg_require(c, e, "value", YN_SCALAR, "the value to match") != NULL) {
				if (lower)
					sn_ascii_lower(name);
				kv[n].name = name;
				kv[n].m.value = value;
				if (type == NULL || !strcmp(type, "Exact")) {
					kv[n++].m.kind = SN_MATCH_EXACT;
				} else if (!strcmp(type, "RegularExpression")) {
					if (regex_ok(c, vat, value))
						kv[n++].m.kind = SN_MATCH_REGEX;
				} else {
					cfg_err(c, e, "match type \"%.32s\": use Exact or RegularExpression", type);
				}
			}
		}
		cfg_path_pop(c, ql);
	}
	*out = kv;
	*n_out = n;
}

/* A GRPCRoute match: method {type: Exact (default) | RegularExpression,
 * service, method} as a path match on /SERVICE/METHOD, and headers. */
static void parse_grpc_match(struct cfg_ctx *c, const struct yn *v, struct cfg_match *cm)
{
	cm->m.uri.kind = SN_MATCH_PATH_PREFIX;   /* no method: every call */
	cm->m.uri.value = sn_arena_strdup(c->a, "/");
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *y = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "headers")) {
			parse_kv_list(c, y, 1, &cm->m.headers, &cm->m.n_headers);
		} else if (!strcmp(k, "method")) {
			char *type = NULL, *svc = NULL, *method = NULL;
			if (cfg_want_map(c, y) == 0) {
				for (size_t j = 0; j < y->n; j++) {
					const char *mk = y->keys[j]->s;
					size_t ql = cfg_path_push(c, ".%s", mk);
					if (!strcmp(mk, "type"))
						cfg_get_str(c, y->items[j], 32, &type);
					else if (!strcmp(mk, "service"))
						cfg_get_str(c, y->items[j], 1024, &svc);
					else if (!strcmp(mk, "method"))
						cfg_get_str(c, y->items[j], 1024, &method);
					else
						cfg_warn_unknown(c, y->keys[j]);
					cfg_path_pop(c, ql);
				}
			}
			int regex = type != NULL && !strcmp(type, "RegularExpression");
			if (type != NULL && !regex && strcmp(type, "Exact") != 0) {
				cfg_err(c, y, "method type \"%.32s\": use Exact or RegularExpression", type);
			} else if (svc == NULL && method == NULL) {
				cfg_err(c, y, "a method match needs service, method, or both (e.g. service: "
					"helloworld.Greeter, method: SayHello)");
			} else if (!regex && ((svc && strpbrk(svc, "/ ")) || (method && strpbrk(method, "/ ")))) {
				cfg_err(c, y, "service and method are names without '/' or spaces (e.g. service: "
					"helloworld.Greeter, method: SayHello)");
			} else if (regex) {
				/* each part a regex of its own, anchored within its segment */
				char *re = sn_arena_printf(c->a, "/(%s)/(%s)", svc ? svc : "[^/]+", method ? method : "[^/]+");
				if (re != NULL && regex_ok(c, y, re)) {
					cm->m.uri.kind = SN_MATCH_REGEX;
					cm->m.uri.value = re;
				}
			} else if (svc != NULL && method != NULL) {
				cm->m.uri.kind = SN_MATCH_EXACT;
				cm->m.uri.value = sn_arena_printf(c->a, "/%s/%s", svc, method);
			} else if (svc != NULL) {
				cm->m.uri.kind = SN_MATCH_PATH_PREFIX;
				cm->m.uri.value = sn_arena_printf(c->a, "/%s", svc);
			} else {
				char *re = sn_arena_printf(c->a, "/[^/]+/%s", method);
				for (const char *q = method; re != NULL && *q; q++)
					if (strchr(".^$*+?()[]{}|\\", *q) != NULL) {
						re = NULL;   /* a method name is plain: letters, digits, '_' */
						cfg_err(c, y, "method \"%.64s\" is not a plain name (for a pattern, type: "
							"RegularExpression)", method);
						break;
					}
				if (re != NULL) {
					cm->m.uri.kind = SN_MATCH_REGEX;
					cm->m.uri.value = re;
				}
			}
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
}

static void parse_match(struct cfg_ctx *c, const struct yn *v, struct cfg_match *cm)
{
	/* no path: the default, PathPrefix "/" */
	cm->m.uri.kind = SN_MATCH_PATH_PREFIX;
	cm->m.uri.value = sn_arena_strdup(c->a, "/");
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *y = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "path")) {
			memset(&cm->m.uri, 0, sizeof(cm->m.uri));
			parse_path(c, y, &cm->m.uri);
		} else if (!strcmp(k, "headers")) {
			parse_kv_list(c, y, 1, &cm->m.headers, &cm->m.n_headers);
		} else if (!strcmp(k, "queryParams")) {
			parse_kv_list(c, y, 0, &cm->m.query_params, &cm->m.n_query_params);
		} else if (!strcmp(k, "method")) {
			static const char *const methods[] = { "GET", "HEAD", "POST", "PUT", "DELETE",
							       "CONNECT", "OPTIONS", "TRACE", "PATCH" };
			char *m = NULL;
			if (cfg_get_str(c, y, 16, &m) == 0) {
				int known = 0;
				for (size_t j = 0; j < SN_ARRAY_LEN(methods); j++)
					known |= !strcmp(m, methods[j]);
				if (!known) {
					cfg_err(c, y, "method \"%.16s\": use GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, "
						"TRACE or PATCH", m);
				} else {
					cm->m.method.kind = SN_MATCH_EXACT;
					cm->m.method.value = m;
				}
			}
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
}

/* ---- HTTPRoute: filters ------------------------------------------------ */

/* [{name, value}] */
static int parse_header_values(struct cfg_ctx *c, const struct yn *v, struct sn_header_op **out, size_t *n_out)
{
	int r = cfg_want_seq(c, v, CFG_MAX_KV);
	if (r != 0 || v->n == 0)
		return r;
	struct sn_header_op *ops = sn_arena_new_array(c->a, struct sn_header_op, v->n);
	if (ops == NULL)
		return -1;
	size_t n = 0;
	for (size_t j = 0; j < v->n; j++) {
		const struct yn *e = v->items[j];
		size_t ql = cfg_path_push(c, "[%zu]", j);
		char *name = NULL, *value = NULL;
		if (cfg_want_map(c, e) == 0) {
			for (size_t i = 0; i < e->n; i++) {
				const char *k = e->keys[i]->s;
				size_t pl = cfg_path_push(c, ".%s", k);
				if (!strcmp(k, "name"))
					cfg_get_str(c, e->items[i], 256, &name);
				else if (!strcmp(k, "value"))
					cfg_get_str(c, e->items[i], CFG_MAX_STR, &value);
				else
					cfg_warn_unknown(c, e->keys[i]);
				cfg_path_pop(c, pl);
			}
			if (cfg_require(c, e, "name", YN_SCALAR, "the header's name") != NULL) {
				sn_ascii_lower(name);
				ops[n].name = name;
				ops[n++].value = value ? value : sn_arena_strdup(c->a, "");
			}
		}
		cfg_path_pop(c, ql);
	}
	*out = ops;
	*n_out = n;
	return 0;
}

/* requestHeaderModifier / responseHeaderModifier: {set, add, remove} */
static void parse_header_modifier(struct cfg_ctx *c, const struct yn *v, struct sn_header_ops *ops)
{
	cfg_parse_header_ops(c, v, ops, parse_header_values);
}

/* path: {type: ReplaceFullPath | ReplacePrefixMatch, replaceFullPath | replacePrefixMatch}.
 * Returns the new path (NULL on error); *full: 1 for ReplaceFullPath. */
static char *parse_path_modifier(struct cfg_ctx *c, const struct yn *v, int *full)
{
	char *type = NULL, *full_p = NULL, *prefix_p = NULL;
	if (cfg_want_map(c, v) != 0)
		return NULL;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "type"))
			cfg_get_str(c, v->items[i], 32, &type);
		else if (!strcmp(k, "replaceFullPath"))
			cfg_get_str(c, v->items[i], 1024, &full_p);
		else if (!strcmp(k, "replacePrefixMatch"))
			cfg_get_str(c, v->items[i], 1024, &prefix_p);
		else
			cfg_warn_unknown(c, v->keys[i]);
		cfg_path_pop(c, pl);
	}
	char *out = NULL;
	if (str_is(type, "ReplaceFullPath") && full_p != NULL) {
		*full = 1;
		out = full_p;
	} else if (str_is(type, "ReplacePrefixMatch") && prefix_p != NULL) {
		*full = 0;
		out = prefix_p;
	} else {
		cfg_err(c, v, "path needs type ReplaceFullPath with replaceFullPath, or type ReplacePrefixMatch with "
			"replacePrefixMatch");
		return NULL;
	}
	if (out[0] != '/' && out[0] != '\0') {
		cfg_err(c, v, "the new path \"%.64s\" must start with /", out);
		return NULL;
	}
	return out;
}

static void parse_redirect(struct cfg_ctx *c, const struct yn *v, struct cfg_http *h)
{
	uint64_t x;
	struct sn_redirect *r = &h->redirect;
	if (cfg_want_map(c, v) != 0)
		return;
	h->has_redirect = 1;
	r->code = 302;   /* the Gateway API's default */
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *y = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "scheme")) {
			if (cfg_get_str(c, y, 32, &r->scheme) == 0 && strcmp(r->scheme, "http") && strcmp(r->scheme, "https"))
				cfg_err(c, y, "scheme \"%.32s\": use http or https", r->scheme);
		} else if (!strcmp(k, "hostname")) {
			cfg_get_str(c, y, CFG_MAX_NAME, &r->authority);
		} else if (!strcmp(k, "port")) {
			if (cfg_get_uint(c, y, 1, 65535, &x) == 0)
				r->port = (uint16_t)x;
		} else if (!strcmp(k, "statusCode")) {
			if (cfg_get_uint(c, y, 300, 399, &x) == 0) {
				if (x != 301 && x != 302 && x != 303 && x != 307 && x != 308)
					cfg_err(c, y, "statusCode %u: use 301, 302, 303, 307 or 308", (unsigned)x);
				r->code = (int)x;
			}
		} else if (!strcmp(k, "path")) {
			int full = 0;
			char *p = parse_path_modifier(c, y, &full);
			if (p != NULL && full)
				r->uri = p;
			else if (p != NULL)
				cfg_warn(c, y, "a redirect's ReplacePrefixMatch is not implemented; the redirect keeps "
					 "the request's path (use ReplaceFullPath)");
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	/* no port: the scheme's own when the scheme is set (the Gateway API's rule) */
	if (r->port == 0 && r->scheme != NULL)
		r->derive_port = 1;
}

/* backendRef (also requestMirror.backendRef): a Service of the route's
 * namespace and its port. Returns 0 if usable (d filled), -1 if not
 * (warned or an error). */
static int parse_backend(struct cfg_ctx *c, const struct yn *v, const char *route_ns, struct cfg_dest *d,
			 struct cfg_http *h_for_filters, int weighted)
{
	char *group = NULL, *kind = NULL, *name = NULL, *ns = NULL;
	const struct yn *name_at = v, *filters = NULL;
	uint64_t x;
	d->path = cfg_path_dup(c, NULL);
	d->weight = 1;
	d->has_weight = 1;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *y = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "group")) {
			cfg_get_str(c, y, CFG_MAX_NAME, &group);
		} else if (!strcmp(k, "kind")) {
			cfg_get_str(c, y, 64, &kind);
		} else if (!strcmp(k, "name")) {
			name_at = y;
			cfg_get_str(c, y, CFG_MAX_NAME, &name);
		} else if (!strcmp(k, "namespace")) {
			cfg_get_str(c, y, 63, &ns);
		} else if (!strcmp(k, "port")) {
			if (cfg_get_uint(c, y, 1, 65535, &x) == 0)
				d->port = (uint16_t)x;
		} else if (!strcmp(k, "weight") && weighted) {
			if (cfg_get_uint(c, y, 0, 1000000, &x) == 0)
				d->weight = (uint32_t)x;
		} else if (!strcmp(k, "filters") && h_for_filters != NULL) {
			filters = y;
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (cfg_require(c, v, "name", YN_SCALAR, "the Service to send to") == NULL || name == NULL)
		return -1;
	if ((kind != NULL && strcmp(kind, "Service")) || (group != NULL && !group_is(group, ""))) {
		cfg_warn(c, v, "backendRef kind \"%.64s\" (group \"%.64s\") is not implemented (Sinew sends to "
			 "Services); requests for this backend answer 500", kind ? kind : "Service", group ? group : "");
		return -1;
	}
	if (ns != NULL && strcmp(ns, route_ns) != 0)
		d->ref_ns = ns;   /* allowed only by a ReferenceGrant there (translate.c) */
	if (d->port == 0) {
		cfg_err(c, v, "port is required for a Service backendRef (the Service's port, e.g. 9080)");
		return -1;
	}
	sn_ascii_lower(name);
	if (!cfg_vs_host_ok(name) || name[0] == '*') {
		cfg_err(c, name_at, "\"%.64s\" is not a Service name", name);
		return -1;
	}
	d->host = name;
	d->host_loc = cfg_loc_of(name_at);
	if (filters != NULL && cfg_want_seq(c, filters, GWAPI_MAX_FILTERS) == 0) {
		size_t pl = cfg_path_push(c, ".filters");
		for (size_t j = 0; j < filters->n; j++) {
			const struct yn *f = filters->items[j];
			size_t ql = cfg_path_push(c, "[%zu]", j);
			const struct yn *t = f->type == YN_MAP ? yn_get(f, "type") : NULL;
			const char *type = t && t->type == YN_SCALAR ? t->s : "";
			if (!strcmp(type, "RequestHeaderModifier"))
				parse_header_modifier(c, yn_get(f, "requestHeaderModifier"), &d->req);
			else if (!strcmp(type, "ResponseHeaderModifier"))
				parse_header_modifier(c, yn_get(f, "responseHeaderModifier"), &d->resp);
			else
				cfg_warn(c, f, "a backendRef's filter of type \"%.64s\" is not implemented (header "
					 "modifiers are); ignored", type);
			cfg_path_pop(c, ql);
		}
		cfg_path_pop(c, pl);
	}
	return 0;
}

static void parse_mirror(struct cfg_ctx *c, const struct yn *v, const char *route_ns, struct cfg_http *h,
			 size_t cap)
{
	if (cfg_want_map(c, v) != 0 || h->n_mirrors == cap)
		return;
	struct cfg_dest *d = &h->mirrors[h->n_mirrors];
	memset(d, 0, sizeof(*d));
	d->mirror_pct = 100;
	const struct yn *ref = NULL;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *y = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "backendRef")) {
			ref = y;
		} else if (!strcmp(k, "percent")) {
			uint64_t x;
			if (cfg_get_uint(c, y, 0, 100, &x) == 0)
				d->mirror_pct = (double)x;
		} else if (!strcmp(k, "fraction")) {
			uint64_t num = 0, den = 100;
			const struct yn *nn = yn_get(y, "numerator"), *dn = yn_get(y, "denominator");
			if (cfg_want_map(c, y) == 0 && cfg_require(c, y, "numerator", YN_SCALAR, "the share mirrored") &&
			    cfg_get_uint(c, nn, 0, 1000000, &num) == 0 && (dn == NULL || cfg_get_uint(c, dn, 1, 1000000, &den) == 0)) {
				if (num > den)
					cfg_err(c, y, "numerator %llu is more than denominator %llu", (unsigned long long)num,
						(unsigned long long)den);
				else
					d->mirror_pct = 100.0 * (double)num / (double)den;
			}
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (cfg_require(c, v, "backendRef", YN_MAP, "where the copies go") == NULL)
		return;
	size_t pl = cfg_path_push(c, ".backendRef");
	double pct = d->mirror_pct;
	if (cfg_want_map(c, ref) == 0 && parse_backend(c, ref, route_ns, d, NULL, 0) == 0) {
		d->mirror_pct = pct;
		h->n_mirrors++;
	}
	cfg_path_pop(c, pl);
}

static void parse_filters(struct cfg_ctx *c, const struct yn *v, const char *route_ns, struct cfg_http *h,
			  const struct yn **rewrite_prefix_at, int grpc)
{
	if (cfg_want_seq(c, v, GWAPI_MAX_FILTERS) != 0 || v->n == 0)
		return;
	h->mirrors = sn_arena_new_array(c->a, struct cfg_dest, v->n);
	if (h->mirrors == NULL)
		return;
	for (size_t j = 0; j < v->n; j++) {
		const struct yn *f = v->items[j];
		size_t ql = cfg_path_push(c, "[%zu]", j);
		if (cfg_want_map(c, f) != 0) {
			cfg_path_pop(c, ql);
			continue;
		}
		char *type = NULL;
		const struct yn *tn = yn_get(f, "type");
		if (cfg_require(c, f, "type", YN_SCALAR, "RequestHeaderModifier, ResponseHeaderModifier, "
				"RequestRedirect, URLRewrite or RequestMirror") != NULL) {
			size_t pl = cfg_path_push(c, ".type");
			cfg_get_str(c, tn, 64, &type);
			cfg_path_pop(c, pl);
		}
		static const struct { const char *type, *field; } kinds[] = {
			{ "RequestHeaderModifier", "requestHeaderModifier" },
			{ "ResponseHeaderModifier", "responseHeaderModifier" },
			{ "RequestRedirect", "requestRedirect" },
			{ "URLRewrite", "urlRewrite" },
			{ "RequestMirror", "requestMirror" },
			{ "CORS", "cors" },
			{ "ExtensionRef", "extensionRef" },
		};
		for (size_t i = 0; i < f->n; i++) {
			const char *k = f->keys[i]->s;
			int known = !strcmp(k, "type");
			for (size_t t = 0; t < SN_ARRAY_LEN(kinds) && !known; t++)
				known = !strcmp(k, kinds[t].field);
			if (!known) {
				size_t pl = cfg_path_push(c, ".%s", k);
				cfg_warn_unknown(c, f->keys[i]);
				cfg_path_pop(c, pl);
			}
		}
		const char *field = NULL;
		for (size_t t = 0; type != NULL && t < SN_ARRAY_LEN(kinds); t++)
			if (!strcmp(type, kinds[t].type))
				field = kinds[t].field;
		const struct yn *body = field ? yn_get(f, field) : NULL;
		if (type == NULL) {
			/* reported */
		} else if (field == NULL) {
			cfg_err(c, tn, "unknown filter type \"%.64s\"; use RequestHeaderModifier, ResponseHeaderModifier, "
				"RequestRedirect, URLRewrite or RequestMirror", type);
		} else if (grpc && (!strcmp(type, "RequestRedirect") || !strcmp(type, "URLRewrite") ||
				    !strcmp(type, "CORS"))) {
			cfg_err(c, tn, "filter type %s is not valid in a GRPCRoute (RequestHeaderModifier, "
				"ResponseHeaderModifier and RequestMirror are)", type);
		} else if (!strcmp(type, "CORS") || !strcmp(type, "ExtensionRef")) {
			cfg_warn(c, tn, "filter type %s is not implemented by Sinew; ignored (a VirtualService's "
				 "corsPolicy is)", type);
		} else if (body == NULL) {
			cfg_err(c, f, "filter type %s needs its settings in %s", type, field);
		} else {
			size_t pl = cfg_path_push(c, ".%s", field);
			if (!strcmp(type, "RequestHeaderModifier")) {
				parse_header_modifier(c, body, &h->req);
			} else if (!strcmp(type, "ResponseHeaderModifier")) {
				parse_header_modifier(c, body, &h->resp);
			} else if (!strcmp(type, "RequestRedirect")) {
				parse_redirect(c, body, h);
			} else if (!strcmp(type, "URLRewrite")) {
				if (cfg_want_map(c, body) == 0) {
					for (size_t i = 0; i < body->n; i++) {
						const char *k = body->keys[i]->s;
						size_t rl = cfg_path_push(c, ".%s", k);
						if (!strcmp(k, "hostname")) {
							cfg_get_str(c, body->items[i], CFG_MAX_NAME, &h->rewrite_authority);
						} else if (!strcmp(k, "path")) {
							int full = 0;
							h->rewrite_uri = parse_path_modifier(c, body->items[i], &full);
							h->rewrite_full = full;
							if (h->rewrite_uri != NULL && !full)
								*rewrite_prefix_at = body->items[i];
						} else {
							cfg_warn_unknown(c, body->keys[i]);
						}
						cfg_path_pop(c, rl);
					}
				}
			} else if (!strcmp(type, "RequestMirror")) {
				parse_mirror(c, body, route_ns, h, v->n);
			}
			cfg_path_pop(c, pl);
		}
		cfg_path_pop(c, ql);
	}
}

/* ---- HTTPRoute: rules -------------------------------------------------- */

/* One rule into h (everything but its matches) and its matches. */
static void parse_rule(struct cfg_ctx *c, const struct yn *v, const char *route_ns, const char *route_name,
		       size_t index, struct cfg_http *h, struct cfg_match **matches, size_t *n_matches, int grpc)
{
	const struct yn *backends = NULL, *rewrite_prefix_at = NULL;
	h->path = cfg_path_dup(c, NULL);
	h->loc = cfg_loc_of(v);
	h->retry.attempts = 2;   /* Istio's default retries, as for a VirtualService */
	h->retry.retry_on = SN_RETRY_CONNECT_FAILURE | SN_RETRY_REFUSED_STREAM;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *y = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "name")) {
			cfg_get_str(c, y, CFG_MAX_NAME, &h->name);
		} else if (!strcmp(k, "matches")) {
			if (cfg_want_seq(c, y, CFG_MAX_MATCHES) == 0 && y->n > 0) {
				*matches = sn_arena_new_array(c->a, struct cfg_match, y->n);
				for (size_t j = 0; *matches != NULL && j < y->n; j++) {
					size_t ql = cfg_path_push(c, "[%zu]", j);
					struct cfg_match *cm = &(*matches)[(*n_matches)++];
					if (y->items[j]->type == YN_NULL) {
						cm->m.uri.kind = SN_MATCH_PATH_PREFIX;
						cm->m.uri.value = sn_arena_strdup(c->a, "/");
					} else if (cfg_want_map(c, y->items[j]) == 0) {
						if (grpc)
							parse_grpc_match(c, y->items[j], cm);
						else
							parse_match(c, y->items[j], cm);
					}
					cfg_path_pop(c, ql);
				}
			}
		} else if (!strcmp(k, "filters")) {
			parse_filters(c, y, route_ns, h, &rewrite_prefix_at, grpc);
		} else if (!strcmp(k, "backendRefs")) {
			backends = y;
			if (cfg_want_seq(c, y, GWAPI_MAX_REFS) == 0 && y->n > 0) {
				h->dests = sn_arena_new_array(c->a, struct cfg_dest, y->n);
				for (size_t j = 0; h->dests != NULL && j < y->n; j++) {
					size_t ql = cfg_path_push(c, "[%zu]", j);
					if (cfg_want_map(c, y->items[j]) == 0) {
						struct cfg_dest *d = &h->dests[h->n_dests];
						if (parse_backend(c, y->items[j], route_ns, d, h, 1) == 0 && d->weight > 0)
							h->n_dests++;
						else
							memset(d, 0, sizeof(*d));
					}
					cfg_path_pop(c, ql);
				}
			}
		} else if (grpc && (!strcmp(k, "timeouts") || !strcmp(k, "retry"))) {
			cfg_warn(c, v->keys[i], "%s is not a field of a GRPCRoute rule (an HTTPRoute's); ignored (a "
				 "VirtualService for the Service sets timeouts and retries of gRPC calls)", k);
		} else if (!strcmp(k, "timeouts")) {
			if (cfg_want_map(c, y) == 0) {
				for (size_t j = 0; j < y->n; j++) {
					const char *tk = y->keys[j]->s;
					size_t ql = cfg_path_push(c, ".%s", tk);
					if (!strcmp(tk, "request"))
						cfg_get_duration(c, y->items[j], &h->timeout_ms);
					else if (!strcmp(tk, "backendRequest"))
						cfg_get_duration(c, y->items[j], &h->retry.per_try_timeout_ms);
					else
						cfg_warn_unknown(c, y->keys[j]);
					cfg_path_pop(c, ql);
				}
			}
		} else if (!strcmp(k, "retry")) {
			/* GEP-1731: {codes, attempts, backoff} */
			if (cfg_want_map(c, y) == 0) {
				for (size_t j = 0; j < y->n; j++) {
					const char *rk = y->keys[j]->s;
					const struct yn *ry = y->items[j];
					size_t ql = cfg_path_push(c, ".%s", rk);
					uint64_t x;
					if (!strcmp(rk, "attempts")) {
						if (cfg_get_uint(c, ry, 0, 10, &x) == 0)
							h->retry.attempts = (uint32_t)x;
					} else if (!strcmp(rk, "codes")) {
						if (cfg_want_seq(c, ry, 64) == 0 && ry->n > 0 &&
						    (h->retry.status_codes = sn_arena_new_array(c->a, uint16_t, ry->n)) != NULL) {
							for (size_t q = 0; q < ry->n; q++)
								if (cfg_get_uint(c, ry->items[q], 400, 599, &x) == 0)
									h->retry.status_codes[h->retry.n_status_codes++] = (uint16_t)x;
							h->retry.retry_on |= SN_RETRY_RETRIABLE_CODES;
						}
					} else if (!strcmp(rk, "backoff")) {
						cfg_warn_unimplemented(c, y->keys[j], "retry.backoff (Sinew's retries back off "
								       "as Envoy's default: 25 ms base, jittered)");
					} else {
						cfg_warn_unknown(c, y->keys[j]);
					}
					cfg_path_pop(c, ql);
				}
			}
		} else if (!strcmp(k, "sessionPersistence")) {
			cfg_warn_unimplemented(c, v->keys[i], "sessionPersistence (a DestinationRule's consistentHash "
					       "with httpCookie gives sticky sessions)");
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (h->name == NULL)
		h->name = sn_arena_printf(c->a, "%s.rules[%zu]", route_name, index);
	if (h->has_redirect && backends != NULL && backends->type == YN_SEQ && backends->n > 0) {
		cfg_warn(c, backends, "a rule with a RequestRedirect filter answers with the redirect; its backendRefs "
			 "are not used");
		h->n_dests = 0;
	}
	if (h->has_redirect && h->rewrite_uri != NULL)
		cfg_err(c, v, "RequestRedirect and URLRewrite cannot both be set on a rule");
	/* Weights: as written (default 1), relative; 0 takes no requests.
	 * No usable backend: the rule answers 500 (the Gateway API's rule). */
	if (!h->has_redirect && h->n_dests == 0) {
		h->no_backend = 1;
		h->direct_status = 500;
	}
	if (rewrite_prefix_at != NULL) {
		for (size_t j = 0; j < *n_matches; j++)
			if ((*matches)[j].m.uri.kind != SN_MATCH_PATH_PREFIX) {
				cfg_err(c, rewrite_prefix_at, "ReplacePrefixMatch needs every match of the rule to be a "
					"PathPrefix path match");
				break;
			}
	}
}

static void parse_parents(struct cfg_ctx *c, const struct yn *v, struct cfg_vs *vs)
{
	if (cfg_want_seq(c, v, GWAPI_MAX_REFS) != 0 || v->n == 0)
		return;
	vs->parents = sn_arena_new_array(c->a, struct cfg_parent_ref, v->n);
	for (size_t j = 0; vs->parents != NULL && j < v->n; j++) {
		size_t ql = cfg_path_push(c, "[%zu]", j);
		int ok = 0;
		if (cfg_want_map(c, v->items[j]) == 0)
			parse_parent(c, v->items[j], &vs->parents[vs->n_parents], &ok);
		if (ok)
			vs->n_parents++;
		else
			memset(&vs->parents[vs->n_parents], 0, sizeof(vs->parents[0]));
		cfg_path_pop(c, ql);
	}
}

struct cfg_vs *cfg_parse_http_route(struct cfg_ctx *c, const struct yn *spec, const char *name, int grpc)
{
	struct cfg_vs *vs = sn_arena_new(c->a, struct cfg_vs);
	char route_ns[64];
	if (vs == NULL)
		return NULL;
	resource_ns(c, route_ns, sizeof(route_ns));
	vs->gateway_api = 1;
	vs->for_mesh = 0;
	const struct yn *rules = NULL;
	for (size_t i = 0; i < spec->n; i++) {
		const char *k = spec->keys[i]->s;
		const struct yn *v = spec->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "parentRefs")) {
			parse_parents(c, v, vs);
		} else if (!strcmp(k, "hostnames")) {
			if (cfg_get_str_list(c, v, CFG_MAX_NAME, &vs->hosts, &vs->n_hosts, &vs->host_locs) == 0) {
				for (size_t j = 0; j < vs->n_hosts; j++) {
					sn_ascii_lower(vs->hosts[j]);
					if (!cfg_vs_host_ok(vs->hosts[j]) || !strcmp(vs->hosts[j], "*") ||
					    strchr(vs->hosts[j], '_') != NULL) {
						size_t ql = cfg_path_push(c, "[%zu]", j);
						struct yn at = { .line = vs->host_locs[j].line, .col = vs->host_locs[j].col };
						cfg_err(c, &at, "\"%.64s\" is not a hostname; write a name like "
							"\"bookinfo.example.com\" or \"*.example.com\" (no port, no IP)",
							vs->hosts[j]);
						cfg_path_pop(c, ql);
					}
				}
			}
		} else if (!strcmp(k, "rules")) {
			rules = v;
		} else {
			cfg_warn_unknown(c, spec->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (vs->n_parents == 0) {
		size_t pl = cfg_path_push(c, ".parentRefs");
		cfg_warn(c, spec, "this %s attaches to no Gateway and no Service (parentRefs); it routes nothing",
			 grpc ? "GRPCRoute" : "HTTPRoute");
		cfg_path_pop(c, pl);
	}
	size_t pl = cfg_path_push(c, ".rules");
	size_t n_rules = 0;
	if (rules != NULL && cfg_want_seq(c, rules, GWAPI_MAX_RULES) == 0)
		n_rules = rules->n;
	struct cfg_http *base = sn_arena_new_array(c->a, struct cfg_http, n_rules ? n_rules : 1);
	struct cfg_match **ms = sn_arena_new_array(c->a, struct cfg_match *, n_rules ? n_rules : 1);
	size_t *nms = sn_arena_new_array(c->a, size_t, n_rules ? n_rules : 1);
	char *is_rule = sn_arena_new_array(c->a, char, n_rules ? n_rules : 1);
	if (base == NULL || ms == NULL || nms == NULL || is_rule == NULL) {
		cfg_path_pop(c, pl);
		return NULL;
	}
	size_t total = 0;
	for (size_t j = 0; j < n_rules; j++) {
		size_t ql = cfg_path_push(c, "[%zu]", j);
		is_rule[j] = cfg_want_map(c, rules->items[j]) == 0;
		if (is_rule[j]) {
			parse_rule(c, rules->items[j], route_ns, name, j, &base[j], &ms[j], &nms[j], grpc);
			total += nms[j] ? nms[j] : 1;
		}
		cfg_path_pop(c, ql);
	}
	cfg_path_pop(c, pl);
	if (rules == NULL) {
		/* no rules: the Gateway API's default, PathPrefix "/" with no
		 * backend, which answers 500 */
		n_rules = total = 1;
		is_rule[0] = 1;
		base[0].path = sn_arena_strdup(c->a, "spec");
		base[0].loc = cfg_loc_of(spec);
		base[0].name = sn_arena_printf(c->a, "%s.rules[0]", name);
		base[0].no_backend = 1;
		base[0].direct_status = 500;
	}
	/* one http[] entry per match: the Gateway API orders matches, not rules */
	vs->http = sn_arena_new_array(c->a, struct cfg_http, total ? total : 1);
	struct cfg_match *dflt = sn_arena_new(c->a, struct cfg_match);
	if (vs->http == NULL || dflt == NULL)
		return NULL;
	dflt->m.uri.kind = SN_MATCH_PATH_PREFIX;
	dflt->m.uri.value = sn_arena_strdup(c->a, "/");
	for (size_t j = 0; j < n_rules; j++) {
		if (!is_rule[j])
			continue;
		size_t n = nms[j] ? nms[j] : 1;
		for (size_t k = 0; k < n; k++) {
			struct cfg_http *h = &vs->http[vs->n_http++];
			*h = base[j];
			h->matches = nms[j] ? &ms[j][k] : dflt;
			h->n_matches = 1;
		}
	}
	return vs;
}

/* ---- TCPRoute, TLSRoute ---------------------------------------------------- */

/* One rule's backendRefs into out (its destinations, weights relative). */
static void parse_l4_rule(struct cfg_ctx *c, const struct yn *v, const char *route_ns, struct cfg_tls_route *out)
{
	out->path = cfg_path_dup(c, NULL);
	out->loc = cfg_loc_of(v);
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *y = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "backendRefs")) {
			if (cfg_want_seq(c, y, GWAPI_MAX_REFS) == 0 && y->n > 0 &&
			    (out->dests = sn_arena_new_array(c->a, struct cfg_dest, y->n)) != NULL) {
				for (size_t j = 0; j < y->n; j++) {
					size_t ql = cfg_path_push(c, "[%zu]", j);
					struct cfg_dest *d = &out->dests[out->n_dests];
					if (cfg_want_map(c, y->items[j]) == 0 &&
					    parse_backend(c, y->items[j], route_ns, d, NULL, 1) == 0 && d->weight > 0)
						out->n_dests++;
					else
						memset(d, 0, sizeof(*d));
					cfg_path_pop(c, ql);
				}
			}
		} else if (strcmp(k, "name") != 0) {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
}

struct cfg_vs *cfg_parse_l4_route(struct cfg_ctx *c, const struct yn *spec, const char *name, int tls)
{
	struct cfg_vs *vs = sn_arena_new(c->a, struct cfg_vs);
	struct cfg_tls_route *r = sn_arena_new(c->a, struct cfg_tls_route);
	struct cfg_tls_match *m = sn_arena_new(c->a, struct cfg_tls_match);
	const char *kind = tls ? "TLSRoute" : "TCPRoute";
	char route_ns[64];
	(void)name;
	if (vs == NULL || r == NULL || m == NULL)
		return NULL;
	resource_ns(c, route_ns, sizeof(route_ns));
	vs->gateway_api = 1;
	const struct yn *rules = NULL;
	char **hosts = NULL;
	size_t n_hosts = 0;
	for (size_t i = 0; i < spec->n; i++) {
		const char *k = spec->keys[i]->s;
		const struct yn *v = spec->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "parentRefs")) {
			parse_parents(c, v, vs);
		} else if (!strcmp(k, "hostnames") && tls) {
			struct cfg_loc *locs = NULL;
			if (cfg_get_str_list(c, v, CFG_MAX_NAME, &hosts, &n_hosts, &locs) == 0) {
				for (size_t j = 0; j < n_hosts; j++) {
					sn_ascii_lower(hosts[j]);
					if (!cfg_vs_host_ok(hosts[j]) || !strcmp(hosts[j], "*")) {
						size_t ql = cfg_path_push(c, "[%zu]", j);
						struct yn at = { .line = locs[j].line, .col = locs[j].col };
						cfg_err(c, &at, "\"%.64s\" is not a server name; write a name like "
							"\"db.example.com\" or \"*.example.com\"", hosts[j]);
						cfg_path_pop(c, ql);
					}
				}
			}
		} else if (!strcmp(k, "rules")) {
			rules = v;
		} else {
			cfg_warn_unknown(c, spec->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	/* Gateways only: a Service parent (GAMMA for TCP) is not routed */
	size_t kept = 0;
	for (size_t j = 0; j < vs->n_parents; j++) {
		if (vs->parents[j].service) {
			struct yn at = { .line = vs->parents[j].loc.line, .col = vs->parents[j].loc.col };
			size_t pl = cfg_path_push(c, ".parentRefs[%zu]", j);
			cfg_warn(c, &at, "a %s attached to a Service is not implemented (a VirtualService's %s[] routes "
				 "the mesh's connections); this parent is ignored", kind, tls ? "tls" : "tcp");
			cfg_path_pop(c, pl);
			continue;
		}
		vs->parents[kept++] = vs->parents[j];
	}
	vs->n_parents = kept;
	if (vs->n_parents == 0) {
		size_t pl = cfg_path_push(c, ".parentRefs");
		cfg_warn(c, spec, "this %s attaches to no Gateway (parentRefs); it routes nothing", kind);
		cfg_path_pop(c, pl);
	}
	size_t pl = cfg_path_push(c, ".rules");
	if (cfg_require(c, spec, "rules", YN_SEQ, "the backends, e.g. [{backendRefs: [{name: tcp-echo, port: 9000}]}]")
	    != NULL && cfg_want_seq(c, rules, GWAPI_MAX_RULES) == 0 && rules->n > 0) {
		/* one rule: the Gateway API gives a TCPRoute or TLSRoute rule no
		 * match, so a second could never be picked */
		if (rules->n > 1) {
			size_t ql = cfg_path_push(c, "[1]");
			cfg_warn(c, rules->items[1], "a %s takes its first rule; the other %zu are ignored (rules have no "
				 "matches to tell them apart)", kind, rules->n - 1);
			cfg_path_pop(c, ql);
		}
		size_t ql = cfg_path_push(c, "[0]");
		if (cfg_want_map(c, rules->items[0]) == 0)
			parse_l4_rule(c, rules->items[0], route_ns, r);
		cfg_path_pop(c, ql);
	}
	cfg_path_pop(c, pl);
	if (r->path == NULL) {
		r->path = sn_arena_strdup(c->a, "spec.rules");
		r->loc = cfg_loc_of(spec);
	}
	if (tls) {
		static char star[] = "*";
		static char *any[] = { star };
		m->sni_hosts = n_hosts ? hosts : any;   /* no hostnames: every name the listener takes */
		m->n_sni = n_hosts ? n_hosts : 1;
		r->matches = m;
		r->n_matches = 1;
		vs->tls = r;
		vs->n_tls = 1;
	} else {
		vs->tcp = r;
		vs->n_tcp = 1;
	}
	return vs;
}

/* ---- ReferenceGrant ---------------------------------------------------- */

struct cfg_reference_grant *cfg_parse_reference_grant(struct cfg_ctx *c, const struct yn *spec)
{
	struct cfg_reference_grant *g = sn_arena_new(c->a, struct cfg_reference_grant);
	if (g == NULL)
		return NULL;
	for (size_t i = 0; i < spec->n; i++) {
		const char *k = spec->keys[i]->s;
		const struct yn *v = spec->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		int from = !strcmp(k, "from");
		if ((from || !strcmp(k, "to")) && cfg_want_seq(c, v, 16) == 0 && v->n > 0) {
			if (from && (g->from = sn_arena_new_array(c->a, struct cfg_grant_from, v->n)) == NULL)
				return NULL;
			if (!from && (g->to = sn_arena_new_array(c->a, struct cfg_grant_to, v->n)) == NULL)
				return NULL;
			for (size_t j = 0; j < v->n; j++) {
				const struct yn *e = v->items[j];
				size_t ql = cfg_path_push(c, "[%zu]", j);
				char *group = NULL, *kind = NULL, *ns = NULL, *name = NULL;
				if (cfg_want_map(c, e) == 0) {
					for (size_t q = 0; q < e->n; q++) {
						const char *ek = e->keys[q]->s;
						size_t el = cfg_path_push(c, ".%s", ek);
						if (!strcmp(ek, "group"))
							cfg_get_str(c, e->items[q], CFG_MAX_NAME, &group);
						else if (!strcmp(ek, "kind"))
							cfg_get_str(c, e->items[q], 64, &kind);
						else if (!strcmp(ek, "namespace") && from)
							cfg_get_str(c, e->items[q], 63, &ns);
						else if (!strcmp(ek, "name") && !from)
							cfg_get_str(c, e->items[q], CFG_MAX_NAME, &name);
						else
							cfg_warn_unknown(c, e->keys[q]);
						cfg_path_pop(c, el);
					}
					if (yn_get(e, "group") == NULL)   /* "" (core) is a value, so no cfg_require */
						cfg_err(c, e, "group is required: %s", from ? "gateway.networking.k8s.io"
											    : "\"\" (core, for a Service)");
					else if (group == NULL)
						group = sn_arena_strdup(c->a, "");
					cfg_require(c, e, "kind", YN_SCALAR, from ? "HTTPRoute, GRPCRoute, TCPRoute, TLSRoute or Gateway"
										 : "Service or Secret");
					if (from)
						cfg_require(c, e, "namespace", YN_SCALAR, "the namespace the references come from");
				}
				if (from && kind != NULL && ns != NULL && group != NULL) {
					int fk = sn_kind_of(kind, "gateway.networking.k8s.io/v1");
					if (!group_is(group, "gateway.networking.k8s.io") ||
					    (!sn_kind_is_gwapi_route(fk) && fk != SN_KIND_K8S_GATEWAY))
						cfg_warn(c, e, "from %s (group \"%.64s\") names nothing that refers across "
							 "namespaces in Sinew (HTTPRoute, GRPCRoute, TCPRoute, TLSRoute, Gateway); "
							 "this entry grants nothing", kind, group);
					else
						g->from[g->n_from++] = (struct cfg_grant_from){ fk, ns };
				} else if (!from && kind != NULL && group != NULL) {
					if (!group_is(group, "") || (strcmp(kind, "Service") && strcmp(kind, "Secret")))
						cfg_warn(c, e, "to %s (group \"%.64s\") is nothing a route or Gateway refers "
							 "to in Sinew (Service, Secret); this entry grants nothing", kind, group);
					else
						g->to[g->n_to++] = (struct cfg_grant_to){ kind, name };
				}
				cfg_path_pop(c, ql);
			}
		} else if (!from && strcmp(k, "to") != 0) {
			cfg_warn_unknown(c, spec->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	cfg_require(c, spec, "from", YN_SEQ, "who may refer here, e.g. [{group: gateway.networking.k8s.io, "
		    "kind: HTTPRoute, namespace: frontend}]");
	cfg_require(c, spec, "to", YN_SEQ, "what they may name, e.g. [{group: \"\", kind: Service}]");
	return g;
}

int cfg_reference_granted(const struct sn_resource *head, int from_kind, const char *from_ns, const char *to_ns,
			  const char *to_kind, const char *name)
{
	for (const struct sn_resource *r = head; r != NULL; r = r->next) {
		if (r->kind != SN_KIND_REFERENCE_GRANT || r->invalid || strcmp(r->namespace_, to_ns) != 0)
			continue;
		const struct cfg_reference_grant *g = r->spec;
		int from = 0, to = 0;
		for (size_t i = 0; i < g->n_from && !from; i++)
			from = g->from[i].kind == from_kind && !strcmp(g->from[i].ns, from_ns);
		for (size_t i = 0; i < g->n_to && !to; i++)
			to = !strcmp(g->to[i].kind, to_kind) && (g->to[i].name == NULL || !strcmp(g->to[i].name, name));
		if (from && to)
			return 1;
	}
	return 0;
}

/* ---- Gateway ----------------------------------------------------------- */

static void parse_listener_tls(struct cfg_ctx *c, const struct yn *v, const char *gw_ns, struct cfg_gw_server *s,
			       int *tls_ok)
{
	char *mode = NULL;
	*tls_ok = 0;
	if (cfg_want_map(c, v) != 0)
		return;
	const struct yn *refs = NULL;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *y = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "mode")) {
			cfg_get_str(c, y, 32, &mode);
		} else if (!strcmp(k, "certificateRefs")) {
			refs = y;
		} else if (!strcmp(k, "options")) {
			cfg_warn_unimplemented(c, v->keys[i], "tls.options (Sinew's gateways take TLS 1.2 with ECDHE and "
					       "AEAD ciphers, and TLS 1.3)");
		} else if (!strcmp(k, "frontendValidation")) {
			s->tls_unenforceable = 1;
			cfg_warn(c, v->keys[i], "frontendValidation (client certificates) is not implemented for Gateway "
				 "API listeners; this listener is not opened (fail closed: it would admit clients the "
				 "check refuses)");
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (mode != NULL && strcmp(mode, "Terminate") != 0) {
		size_t pl = cfg_path_push(c, ".mode");
		if (!strcmp(mode, "Passthrough"))
			cfg_warn(c, v, "tls.mode Passthrough takes protocol TLS (with TLSRoutes), not HTTPS; this "
				 "listener (port %u) is not opened", s->port);
		else
			cfg_err(c, v, "tls.mode \"%.32s\": use Terminate or Passthrough", mode);
		cfg_path_pop(c, pl);
		return;
	}
	size_t pl = cfg_path_push(c, ".certificateRefs");
	if (refs == NULL || cfg_want_seq(c, refs, 64) != 0 || refs->n == 0) {
		cfg_err(c, v, "a%s %s listener needs tls.certificateRefs: [{name: SECRET}] (the files of "
			"--credentials-dir/SECRET)", str_is(s->protocol, "TLS") ? "" : "n", s->protocol);
	} else {
		const struct yn *r0 = refs->items[0];
		size_t ql = cfg_path_push(c, "[0]");
		const struct yn *kind = yn_get(r0, "kind"), *ns = yn_get(r0, "namespace"), *group = yn_get(r0, "group");
		char *name = NULL;
		if (cfg_want_map(c, r0) == 0 &&
		    cfg_require(c, r0, "name", YN_SCALAR, "the Secret's name: a directory of --credentials-dir")) {
			size_t nl = cfg_path_push(c, ".name");
			cfg_get_str(c, yn_get(r0, "name"), CFG_MAX_NAME, &name);
			cfg_path_pop(c, nl);
		}
		if (name == NULL) {
			/* reported */
		} else if ((kind && kind->type == YN_SCALAR && strcmp(kind->s, "Secret")) ||
			   (group && group->type == YN_SCALAR && group->s[0] && strcmp(group->s, "core"))) {
			cfg_warn(c, r0, "certificateRefs of kind other than Secret are not implemented; this listener "
				 "(port %u) is not opened", s->port);
		} else if (ns && ns->type == YN_SCALAR && strcmp(ns->s, gw_ns)) {
			cfg_warn(c, r0, "a certificate of namespace %s is not served (a Secret is the files of "
				 "--credentials-dir/NAME, one namespace's; a ReferenceGrant cannot change that); this "
				 "listener (port %u) is not opened", ns->s, s->port);
		} else if (name[0] == '.' || strchr(name, '/') != NULL) {
			cfg_err(c, r0, "certificate name \"%.64s\" must be a plain name (a directory of the proxy's "
				"--credentials-dir)", name);
		} else {
			s->credential = name;
			s->tls_mode = sn_arena_strdup(c->a, "SIMPLE");
			*tls_ok = !s->tls_unenforceable;
		}
		cfg_path_pop(c, ql);
		if (refs->n > 1)
			cfg_warn(c, refs, "one certificate per listener is served (the first); choosing one by SNI is "
				 "not implemented yet");
	}
	cfg_path_pop(c, pl);
}

#define KIND_BIT(k) (1u << (k))

/* The route kinds a listener of protocol takes by default. */
static unsigned default_route_kinds(const char *protocol)
{
	if (str_is(protocol, "HTTP") || str_is(protocol, "HTTPS"))
		return KIND_BIT(SN_KIND_HTTP_ROUTE) | KIND_BIT(SN_KIND_GRPC_ROUTE);
	if (str_is(protocol, "TLS"))   /* TLSRoute when passed through, TCPRoute when terminated */
		return KIND_BIT(SN_KIND_TLS_ROUTE) | KIND_BIT(SN_KIND_TCP_ROUTE);
	if (str_is(protocol, "TCP"))
		return KIND_BIT(SN_KIND_TCP_ROUTE);
	return 0;
}

static void parse_allowed_routes(struct cfg_ctx *c, const struct yn *v, struct cfg_gw_host *h, unsigned *kinds)
{
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *y = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "namespaces")) {
			const struct yn *from = cfg_want_map(c, y) == 0 ? yn_get(y, "from") : NULL;
			char *f = NULL;
			for (size_t j = 0; y->type == YN_MAP && j < y->n; j++)
				if (strcmp(y->keys[j]->s, "from") && strcmp(y->keys[j]->s, "selector")) {
					size_t ql = cfg_path_push(c, ".%s", y->keys[j]->s);
					cfg_warn_unknown(c, y->keys[j]);
					cfg_path_pop(c, ql);
				}
			size_t ql = cfg_path_push(c, ".from");
			if (from != NULL && cfg_get_str(c, from, 16, &f) == 0) {
				if (!strcmp(f, "All"))
					h->ns = NULL;
				else if (!strcmp(f, "Selector"))
					cfg_warn(c, from, "from: Selector is not implemented; only routes of the Gateway's own "
						 "namespace attach (as from: Same)");
				else if (strcmp(f, "Same") != 0)
					cfg_err(c, from, "from \"%.16s\": use Same, All or Selector", f);
			}
			cfg_path_pop(c, ql);
		} else if (!strcmp(k, "kinds")) {
			if (cfg_want_seq(c, y, 8) == 0) {
				unsigned want = 0, fit = *kinds;
				for (size_t j = 0; j < y->n; j++) {
					const struct yn *kn = y->items[j]->type == YN_MAP ? yn_get(y->items[j], "kind") : NULL;
					int rk = kn != NULL && kn->type == YN_SCALAR
							 ? sn_kind_of(kn->s, "gateway.networking.k8s.io/v1") : -1;
					size_t ql = cfg_path_push(c, "[%zu].kind", j);
					if (!sn_kind_is_gwapi_route(rk) || !(fit & KIND_BIT(rk)))
						cfg_warn(c, y->items[j], "kind %s cannot attach to this listener (its protocol "
							 "takes %s); ignored", kn && kn->type == YN_SCALAR ? kn->s : "?",
							 fit & KIND_BIT(SN_KIND_HTTP_ROUTE) ? "HTTPRoute and GRPCRoute"
							 : fit & KIND_BIT(SN_KIND_TLS_ROUTE) ? "TLSRoute"
							 : fit & KIND_BIT(SN_KIND_TCP_ROUTE) ? "TCPRoute" : "nothing Sinew serves");
					else
						want |= KIND_BIT(rk);
					cfg_path_pop(c, ql);
				}
				*kinds = want;
				if (want == 0)
					cfg_warn(c, y, "this listener takes no route kind Sinew implements; no route "
						 "attaches to it");
			}
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
}

static void parse_listener(struct cfg_ctx *c, const struct yn *v, const char *gw_ns, struct cfg_gw_server *s)
{
	uint64_t x;
	const struct yn *tls = NULL, *allowed = NULL;
	char *hostname = NULL;
	const struct yn *host_at = v;
	s->loc = cfg_loc_of(v);
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *y = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "name")) {
			cfg_get_str(c, y, CFG_MAX_NAME, &s->name);
		} else if (!strcmp(k, "hostname")) {
			host_at = y;
			if (cfg_get_str(c, y, CFG_MAX_NAME, &hostname) == 0) {
				sn_ascii_lower(hostname);
				if (!cfg_vs_host_ok(hostname) || !strcmp(hostname, "*")) {
					cfg_err(c, y, "\"%.64s\" is not a hostname; write \"bookinfo.example.com\" or "
						"\"*.example.com\" (omit it for every host)", hostname);
					hostname = NULL;
				}
			}
		} else if (!strcmp(k, "port")) {
			if (cfg_get_uint(c, y, 1, 65535, &x) == 0)
				s->port = (uint16_t)x;
		} else if (!strcmp(k, "protocol")) {
			cfg_get_str(c, y, 64, &s->protocol);
		} else if (!strcmp(k, "tls")) {
			tls = y;
		} else if (!strcmp(k, "allowedRoutes")) {
			allowed = y;
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	cfg_require(c, v, "name", YN_SCALAR, "the listener's name (what a route's sectionName names)");
	cfg_require(c, v, "port", YN_SCALAR, "the port the gateway listens on, e.g. 80");
	cfg_require(c, v, "protocol", YN_SCALAR, "HTTP, HTTPS, TLS or TCP");
	(void)host_at;
	struct cfg_gw_host *h = sn_arena_new(c->a, struct cfg_gw_host);
	if (h == NULL)
		return;
	h->ns = sn_arena_strdup(c->a, ".");   /* from: Same, the default */
	h->host = hostname ? hostname : sn_arena_strdup(c->a, "*");
	s->route_kinds = default_route_kinds(s->protocol);
	if (allowed != NULL) {
		size_t pl = cfg_path_push(c, ".allowedRoutes");
		parse_allowed_routes(c, allowed, h, &s->route_kinds);
		cfg_path_pop(c, pl);
	}
	s->hosts = h;
	s->n_hosts = 1;
	if (s->protocol == NULL || s->port == 0)
		return;
	if (!strcmp(s->protocol, "TCP")) {
		if (tls != NULL) {
			size_t pl = cfg_path_push(c, ".tls");
			cfg_warn(c, tls, "tls on a TCP listener is not used (its bytes go through as they come)");
			cfg_path_pop(c, pl);
		}
		if (hostname != NULL) {
			size_t pl = cfg_path_push(c, ".hostname");
			cfg_warn(c, host_at, "hostname on a TCP listener is not used (TCP carries no name)");
			cfg_path_pop(c, pl);
			h->host = sn_arena_strdup(c->a, "*");
		}
		s->tcp = 1;
		s->served = 1;
		return;
	}
	if (!strcmp(s->protocol, "TLS")) {
		/* Passthrough: routed by the ClientHello's server name
		 * (TLSRoutes); Terminate, the default: TLS ends here and the
		 * bytes go where a TCPRoute says */
		const struct yn *mode = tls != NULL && tls->type == YN_MAP ? yn_get(tls, "mode") : NULL;
		if (mode == NULL || (mode->type == YN_SCALAR && !strcmp(mode->s, "Terminate"))) {
			int ok = 0;
			size_t pl = cfg_path_push(c, ".tls");
			if (tls == NULL)
				cfg_err(c, v, "a TLS listener needs tls: {mode: Passthrough} or {certificateRefs: "
					"[{name: SECRET}]} (Terminate)");
			else
				parse_listener_tls(c, tls, gw_ns, s, &ok);
			cfg_path_pop(c, pl);
			s->route_kinds &= KIND_BIT(SN_KIND_TCP_ROUTE);
			s->tcp = 1;
			s->served = ok;
			return;
		}
		s->route_kinds &= KIND_BIT(SN_KIND_TLS_ROUTE);
		size_t pl = cfg_path_push(c, ".tls.mode");
		if (mode->type != YN_SCALAR || strcmp(mode->s, "Passthrough") != 0) {
			cfg_err(c, mode, "tls.mode: use Terminate or Passthrough");
		} else {
			for (size_t i = 0; i < tls->n; i++)
				if (strcmp(tls->keys[i]->s, "mode") != 0) {
					size_t ql = cfg_path_push(c, ".%s", tls->keys[i]->s);
					cfg_warn(c, tls->keys[i], "tls.%s is not used with Passthrough (the gateway does "
						 "not terminate TLS there)", tls->keys[i]->s);
					cfg_path_pop(c, ql);
				}
			s->passthrough = 1;
			s->served = 1;
		}
		cfg_path_pop(c, pl);
		return;
	}
	if (!strcmp(s->protocol, "HTTPS")) {
		int ok = 0;
		size_t pl = cfg_path_push(c, ".tls");
		if (tls == NULL)
			cfg_err(c, v, "an HTTPS listener needs tls: {certificateRefs: [{name: SECRET}]}");
		else
			parse_listener_tls(c, tls, gw_ns, s, &ok);
		cfg_path_pop(c, pl);
		s->served = ok;
		return;
	}
	if (strcmp(s->protocol, "HTTP") != 0) {
		size_t pl = cfg_path_push(c, ".protocol");
		cfg_warn(c, v, "protocol %s is not served by Sinew's gateways yet; this listener (port %u) is not opened "
			 "(HTTP, HTTPS, TLS and TCP are)", s->protocol, s->port);
		cfg_path_pop(c, pl);
		return;
	}
	if (tls != NULL) {
		size_t pl = cfg_path_push(c, ".tls");
		cfg_warn(c, tls, "tls on an HTTP listener is not used; to terminate TLS, make it protocol HTTPS");
		cfg_path_pop(c, pl);
	}
	s->served = 1;
}

struct cfg_gateway *cfg_parse_k8s_gateway(struct cfg_ctx *c, const struct yn *spec, const char *name)
{
	struct cfg_gateway *g = sn_arena_new(c->a, struct cfg_gateway);
	char gw_ns[64];
	if (g == NULL)
		return NULL;
	resource_ns(c, gw_ns, sizeof(gw_ns));
	g->gateway_api = 1;
	g->has_selector = 1;
	g->selector.v = sn_arena_new(c->a, struct sn_label);
	if (g->selector.v == NULL)
		return NULL;
	g->selector.v[0].key = sn_arena_strdup(c->a, CFG_GATEWAY_NAME_LABEL);
	g->selector.v[0].value = sn_arena_strdup(c->a, name);
	g->selector.n = 1;
	char *cls = NULL;
	const struct yn *cls_at = NULL;
	for (size_t i = 0; i < spec->n; i++) {
		const char *k = spec->keys[i]->s;
		const struct yn *v = spec->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "gatewayClassName")) {
			cls_at = v;
			cfg_get_str(c, v, CFG_MAX_NAME, &cls);
		} else if (!strcmp(k, "listeners")) {
			if (cfg_want_seq(c, v, GWAPI_MAX_LISTENERS) == 0) {
				g->servers = sn_arena_new_array(c->a, struct cfg_gw_server, v->n ? v->n : 1);
				if (g->servers == NULL)
					return NULL;
				for (size_t j = 0; j < v->n; j++) {
					size_t ql = cfg_path_push(c, "[%zu]", j);
					if (cfg_want_map(c, v->items[j]) == 0)
						parse_listener(c, v->items[j], gw_ns, &g->servers[g->n_servers++]);
					cfg_path_pop(c, ql);
				}
				for (size_t a = 0; a < g->n_servers; a++)
					for (size_t b = a + 1; b < g->n_servers; b++)
						if (g->servers[a].name && g->servers[b].name &&
						    !strcmp(g->servers[a].name, g->servers[b].name)) {
							size_t ql = cfg_path_push(c, "[%zu].name", b);
							cfg_err(c, v->items[b], "listener name \"%.64s\" is used twice; names "
								"must be unique", g->servers[b].name);
							cfg_path_pop(c, ql);
						}
			}
		} else if (!strcmp(k, "addresses")) {
			cfg_warn_unimplemented(c, spec->keys[i], "addresses (the gateway proxy listens on its own "
					       "address; sinew-proxy --gateway-address)");
		} else if (!strcmp(k, "infrastructure") || !strcmp(k, "backendTLS")) {
			cfg_warn_unimplemented(c, spec->keys[i], k);
		} else {
			cfg_warn_unknown(c, spec->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	cfg_require(c, spec, "gatewayClassName", YN_SCALAR, "the class: istio (or sinew)");
	cfg_require(c, spec, "listeners", YN_SEQ, "list the ports, e.g. [{name: http, port: 80, protocol: HTTP}]");
	if (cls != NULL && strcmp(cls, "istio") != 0 && strcmp(cls, "sinew") != 0) {
		size_t pl = cfg_path_push(c, ".gatewayClassName");
		cfg_warn(c, cls_at, "gatewayClassName \"%.64s\" is not served by Sinew (istio and sinew are); this "
			 "Gateway is ignored", cls);
		cfg_path_pop(c, pl);
		g->n_servers = 0;
	}
	return g;
}
