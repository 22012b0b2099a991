/* VirtualService: hosts, http[] rules (matches, routes, faults, retries,
 * rewrites, header operations, direct responses). Shapes and values are
 * checked here; references (hosts, subsets, ports) at translation. */
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

int cfg_vs_host_ok(const char *h)
{
	size_t n = strlen(h);
	if (n == 0 || n > CFG_MAX_NAME)
		return 0;
	if (!strcmp(h, "*"))
		return 1;
	if (h[0] == '*') {
		if (h[1] != '.')
			return 0;
		h += 2;
	}
	for (; *h; h++) {
		char c = *h;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
			return 0;
	}
	return 1;
}

/* map name -> StringMatch */
static int parse_kv_matches(struct cfg_ctx *c, const struct yn *v, int lower_names, struct sn_kv_match **out,
			    size_t *n_out)
{
	int r = cfg_want_map(c, v);
	if (r != 0)
		return r;
	if (v->n > CFG_MAX_KV) {
		cfg_err(c, v, "%zu entries, more than the limit of %d", v->n, CFG_MAX_KV);
		return -1;
	}
	struct sn_kv_match *kv = sn_arena_new_array(c->a, struct sn_kv_match, v->n ? v->n : 1);
	if (kv == NULL)
		return -1;
	size_t n = 0;
	int bad = 0;
	for (size_t i = 0; i < v->n; i++) {
		size_t pl = cfg_path_push(c, ".%s", v->keys[i]->s);
		if (v->keys[i]->len == 0 || v->keys[i]->len > 256) {
			cfg_err(c, v->keys[i], "a name must be 1 to 256 characters");
			bad = 1;
		} else if (cfg_parse_string_match(c, v->items[i], 1, &kv[n].m) == 0) {
			kv[n].name = sn_arena_strdup(c->a, v->keys[i]->s);
			if (lower_names)
				sn_ascii_lower(kv[n].name);
			n++;
		} else {
			bad = 1;
		}
		cfg_path_pop(c, pl);
	}
	*out = kv;
	*n_out = n;
	return bad ? -1 : 0;
}

static void parse_match(struct cfg_ctx *c, const struct yn *v, struct cfg_match *cm)
{
	int ignore_case = 0;
	uint64_t x;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x_node = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "name")) {
			cfg_get_str(c, x_node, CFG_MAX_NAME, &cm->m.name);
		} else if (!strcmp(k, "uri")) {
			cfg_parse_string_match(c, x_node, 0, &cm->m.uri);
		} else if (!strcmp(k, "scheme")) {
			cfg_parse_string_match(c, x_node, 0, &cm->m.scheme);
		} else if (!strcmp(k, "method")) {
			cfg_parse_string_match(c, x_node, 0, &cm->m.method);
		} else if (!strcmp(k, "authority")) {
			cfg_parse_string_match(c, x_node, 0, &cm->m.authority);
		} else if (!strcmp(k, "headers")) {
			parse_kv_matches(c, x_node, 1, &cm->m.headers, &cm->m.n_headers);
		} else if (!strcmp(k, "withoutHeaders")) {
			parse_kv_matches(c, x_node, 1, &cm->m.without_headers, &cm->m.n_without_headers);
		} else if (!strcmp(k, "queryParams")) {
			parse_kv_matches(c, x_node, 0, &cm->m.query_params, &cm->m.n_query_params);
		} else if (!strcmp(k, "ignoreUriCase")) {
			cfg_get_bool(c, x_node, &ignore_case);
		} else if (!strcmp(k, "port")) {
			if (cfg_get_uint(c, x_node, 1, 65535, &x) == 0)
				cm->m.port = (uint16_t)x;
		} else if (!strcmp(k, "sourceLabels")) {
			if (cfg_get_labels(c, x_node, &cm->source_labels) == 0)
				cm->has_source_labels = 1;
		} else if (!strcmp(k, "sourceNamespace")) {
			cfg_get_str(c, x_node, 63, &cm->source_namespace);
		} else if (!strcmp(k, "gateways")) {
			cfg_get_str_list(c, x_node, CFG_MAX_NAME, &cm->gateways, &cm->n_gateways, NULL);
		} else if (!strcmp(k, "statPrefix")) {
			cfg_warn_unimplemented(c, v->keys[i], "statPrefix");
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	cm->m.uri.ignore_case = ignore_case;
}

static int parse_header_kv(struct cfg_ctx *c, const struct yn *v, struct sn_header_op **out, size_t *n_out)
{
	int r = cfg_want_map(c, v);
	if (r != 0)
		return r;
	if (v->n > CFG_MAX_KV) {
		cfg_err(c, v, "%zu headers, more than the limit of %d", v->n, CFG_MAX_KV);
		return -1;
	}
	struct sn_header_op *ops = sn_arena_new_array(c->a, struct sn_header_op, v->n ? v->n : 1);
	if (ops == NULL)
		return -1;
	size_t n = 0;
	for (size_t i = 0; i < v->n; i++) {
		size_t pl = cfg_path_push(c, ".%s", v->keys[i]->s);
		char *val = NULL;
		if (v->keys[i]->len == 0 || v->keys[i]->len > 256)
			cfg_err(c, v->keys[i], "a header name must be 1 to 256 characters");
		else if (cfg_get_str(c, v->items[i], CFG_MAX_STR, &val) >= 0) {
			ops[n].name = sn_arena_strdup(c->a, v->keys[i]->s);
			sn_ascii_lower(ops[n].name);
			ops[n++].value = val ? val : sn_arena_strdup(c->a, "");
		}
		cfg_path_pop(c, pl);
	}
	*out = ops;
	*n_out = n;
	return 0;
}

void cfg_parse_header_remove(struct cfg_ctx *c, const struct yn *v, struct sn_header_ops *ops)
{
	char **names = NULL;
	size_t n = 0;
	if (cfg_get_str_list(c, v, 256, &names, &n, NULL) != 0 || n == 0)
		return;
	if (n > CFG_MAX_KV) {
		cfg_err(c, v, "more than %d headers", CFG_MAX_KV);
		return;
	}
	ops->remove = sn_arena_new_array(c->a, struct sn_header_op, n);
	if (ops->remove == NULL)
		return;
	for (size_t j = 0; j < n; j++) {
		sn_ascii_lower(names[j]);
		ops->remove[j].name = names[j];
	}
	ops->n_remove = n;
}

void cfg_parse_header_ops(struct cfg_ctx *c, const struct yn *v, struct sn_header_ops *ops,
			  int (*values)(struct cfg_ctx *, const struct yn *, struct sn_header_op **, size_t *))
{
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "set")) {
			values(c, v->items[i], &ops->set, &ops->n_set);
		} else if (!strcmp(k, "add")) {
			values(c, v->items[i], &ops->add, &ops->n_add);
		} else if (!strcmp(k, "remove")) {
			cfg_parse_header_remove(c, v->items[i], ops);
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
}

static void parse_header_ops(struct cfg_ctx *c, const struct yn *v, struct sn_header_ops *ops)
{
	cfg_parse_header_ops(c, v, ops, parse_header_kv);
}

static void parse_headers(struct cfg_ctx *c, const struct yn *v, struct sn_header_ops *req, struct sn_header_ops *resp)
{
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "request"))
			parse_header_ops(c, v->items[i], req);
		else if (!strcmp(k, "response"))
			parse_header_ops(c, v->items[i], resp);
		else
			cfg_warn_unknown(c, v->keys[i]);
		cfg_path_pop(c, pl);
	}
}

static void parse_destination(struct cfg_ctx *c, const struct yn *v, struct cfg_dest *d)
{
	uint64_t x;
	d->path = cfg_path_dup(c, NULL);
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x_node = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "host")) {
			if (cfg_get_str(c, x_node, CFG_MAX_NAME, &d->host) == 0) {
				sn_ascii_lower(d->host);
				size_t n = strlen(d->host);
				if (n && d->host[n - 1] == '.')
					d->host[n - 1] = '\0';
				d->host_loc = cfg_loc_of(x_node);
				if (!cfg_vs_host_ok(d->host) || d->host[0] == '*') {
					cfg_err(c, x_node, "\"%.64s\" is not a valid destination host; write a "
						"service name like \"reviews\" or \"reviews.default.svc.cluster.local\"",
						d->host);
					d->host = NULL;
				}
			}
		} else if (!strcmp(k, "subset")) {
			if (cfg_get_str(c, x_node, CFG_MAX_NAME, &d->subset) == 0)
				d->subset_loc = cfg_loc_of(x_node);
		} else if (!strcmp(k, "port")) {
			if (cfg_want_map(c, x_node) == 0) {
				for (size_t j = 0; j < x_node->n; j++) {
					size_t ql = cfg_path_push(c, ".%s", x_node->keys[j]->s);
					if (!strcmp(x_node->keys[j]->s, "number")) {
						if (cfg_get_uint(c, x_node->items[j], 1, 65535, &x) == 0)
							d->port = (uint16_t)x;
					} else {
						cfg_warn_unknown(c, x_node->keys[j]);
					}
					cfg_path_pop(c, ql);
				}
			}
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	cfg_require(c, v, "host", YN_SCALAR, "the Service to route to");
}

static void parse_route(struct cfg_ctx *c, const struct yn *v, struct cfg_dest *d)
{
	uint64_t x;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x_node = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "destination")) {
			if (cfg_want_map(c, x_node) == 0)
				parse_destination(c, x_node, d);
		} else if (!strcmp(k, "weight")) {
			if (cfg_get_uint(c, x_node, 0, 100, &x) == 0) {
				d->has_weight = 1;
				d->weight = (uint32_t)x;
			}
		} else if (!strcmp(k, "headers")) {
			parse_headers(c, x_node, &d->req, &d->resp);
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	cfg_require(c, v, "destination", YN_MAP, "where the route sends requests (destination.host)");
}

static void parse_percentage(struct cfg_ctx *c, const struct yn *v, double *out)
{
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		size_t pl = cfg_path_push(c, ".%s", v->keys[i]->s);
		if (!strcmp(v->keys[i]->s, "value"))
			cfg_get_double(c, v->items[i], 0, 100, out);
		else
			cfg_warn_unknown(c, v->keys[i]);
		cfg_path_pop(c, pl);
	}
}

/* mirrors[]: {destination, percentage} (Istio 1.22's HTTPMirrorPolicy). */
static void parse_mirrors(struct cfg_ctx *c, const struct yn *v, struct cfg_http *h)
{
	if (cfg_want_seq(c, v, CFG_MAX_MATCHES) != 0)
		return;
	h->mirrors = sn_arena_new_array(c->a, struct cfg_dest, v->n ? v->n : 1);
	if (h->mirrors == NULL)
		return;
	for (size_t j = 0; j < v->n; j++) {
		const struct yn *m = v->items[j];
		size_t ql = cfg_path_push(c, "[%zu]", j);
		if (cfg_want_map(c, m) == 0) {
			struct cfg_dest *d = &h->mirrors[h->n_mirrors++];
			d->mirror_pct = 100;
			for (size_t i = 0; i < m->n; i++) {
				size_t pl = cfg_path_push(c, ".%s", m->keys[i]->s);
				if (!strcmp(m->keys[i]->s, "destination")) {
					if (cfg_want_map(c, m->items[i]) == 0)
						parse_destination(c, m->items[i], d);
				} else if (!strcmp(m->keys[i]->s, "percentage")) {
					parse_percentage(c, m->items[i], &d->mirror_pct);
				} else {
					cfg_warn_unknown(c, m->keys[i]);
				}
				cfg_path_pop(c, pl);
			}
			cfg_require(c, m, "destination", YN_MAP, "where the copies go (destination.host)");
		}
		cfg_path_pop(c, ql);
	}
}

/* A gRPC status by name (Istio writes "UNAVAILABLE") or number; -1 if
 * neither. */
static int grpc_status_code(const char *s)
{
	static const char *const names[] = { "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
					     "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
					     "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
					     "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED" };
	for (int i = 0; i < (int)SN_ARRAY_LEN(names); i++)
		if (!strcmp(s, names[i]))
			return i;
	if (s[0] >= '0' && s[0] <= '9' && (s[1] == '\0' || (s[1] >= '0' && s[1] <= '9' && s[2] == '\0'))) {
		int n = s[1] ? (s[0] - '0') * 10 + (s[1] - '0') : s[0] - '0';   /* one or two digits */
		return n <= 16 ? n : -1;
	}
	return -1;
}

static void parse_fault(struct cfg_ctx *c, const struct yn *v, struct sn_fault *f)
{
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *part = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		int is_delay = !strcmp(k, "delay");
		if (!is_delay && strcmp(k, "abort") != 0) {
			cfg_warn_unknown(c, v->keys[i]);
			cfg_path_pop(c, pl);
			continue;
		}
		if (cfg_want_map(c, part) != 0) {
			cfg_path_pop(c, pl);
			continue;
		}
		int has_pct = 0, has_what = 0;
		double pct = 0;
		uint64_t x;
		for (size_t j = 0; j < part->n; j++) {
			const char *pk = part->keys[j]->s;
			size_t ql = cfg_path_push(c, ".%s", pk);
			if (!strcmp(pk, "percentage")) {
				parse_percentage(c, part->items[j], &pct);
				has_pct = 1;
			} else if (!strcmp(pk, "percent")) {
				if (cfg_get_uint(c, part->items[j], 0, 100, &x) == 0) {
					pct = (double)x;
					has_pct = 1;
				}
			} else if (is_delay && !strcmp(pk, "fixedDelay")) {
				if (cfg_get_duration(c, part->items[j], &f->delay_ms) == 0)
					has_what = 1;
			} else if (is_delay && !strcmp(pk, "exponentialDelay")) {
				cfg_warn_unimplemented(c, part->keys[j], "exponentialDelay");
			} else if (!is_delay && !strcmp(pk, "httpStatus")) {
				if (cfg_get_uint(c, part->items[j], 200, 599, &x) == 0) {
					f->abort_status = (int)x;
					has_what = 1;
				}
			} else if (!is_delay && !strcmp(pk, "grpcStatus")) {
				char *name = NULL;
				if (cfg_get_str(c, part->items[j], 32, &name) == 0) {
					int code = grpc_status_code(name);
					if (code < 0)
						cfg_err(c, part->items[j], "grpcStatus \"%s\" is not a gRPC status: use a name "
							"such as UNAVAILABLE or a code from 0 to 16", name);
					else {
						f->abort_grpc = code + 1;
						has_what = 1;
					}
				}
			} else if (!is_delay && !strcmp(pk, "http2Error")) {
				cfg_warn_unimplemented(c, part->keys[j], pk);
			} else {
				cfg_warn_unknown(c, part->keys[j]);
			}
			cfg_path_pop(c, ql);
		}
		if (!is_delay && f->abort_status && f->abort_grpc)
			cfg_err(c, part, "abort sets both httpStatus and grpcStatus; set one");
		if (!has_what && c->errors == 0)
			cfg_warn(c, part, "%s has no %s; this fault does nothing", k,
				 is_delay ? "fixedDelay" : "httpStatus or grpcStatus");
		if (has_what && !has_pct)
			cfg_warn(c, part, "percentage is not set: as in Istio, the fault applies to no request; "
				 "set percentage.value (0-100)");
		if (is_delay)
			f->delay_percent = pct;
		else
			f->abort_percent = pct;
		cfg_path_pop(c, pl);
	}
}

struct retry_token {
	const char *name;
	uint32_t bit;
};

static const struct retry_token retry_tokens[] = {
	{ "5xx", SN_RETRY_5XX },
	{ "gateway-error", SN_RETRY_GATEWAY_ERROR },
	{ "connect-failure", SN_RETRY_CONNECT_FAILURE },
	{ "refused-stream", SN_RETRY_REFUSED_STREAM },
	{ "reset", SN_RETRY_RESET },
	{ "retriable-status-codes", SN_RETRY_RETRIABLE_CODES },
	{ "cancelled", SN_RETRY_GRPC_CANCELLED },
	{ "deadline-exceeded", SN_RETRY_GRPC_DEADLINE_EXCEEDED },
	{ "internal", SN_RETRY_GRPC_INTERNAL },
	{ "resource-exhausted", SN_RETRY_GRPC_RESOURCE_EXHAUSTED },
	{ "unavailable", SN_RETRY_GRPC_UNAVAILABLE },
};

static void parse_retry_on(struct cfg_ctx *c, const struct yn *v, const char *s, struct sn_retry_policy *r)
{
	uint16_t codes[32];
	size_t n_codes = 0;
	r->retry_on = 0;
	const char *p = s;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		while (len && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len) {
			int found = 0, numeric = len <= 3;
			for (size_t i = 0; i < len; i++)
				if (p[i] < '0' || p[i] > '9')
					numeric = 0;
			for (size_t i = 0; i < SN_ARRAY_LEN(retry_tokens); i++)
				if (strlen(retry_tokens[i].name) == len && !memcmp(retry_tokens[i].name, p, len)) {
					r->retry_on |= retry_tokens[i].bit;
					found = 1;
				}
			if (numeric) {
				int code = 0;
				for (size_t i = 0; i < len; i++)
					code = code * 10 + (p[i] - '0');
				if (code < 100 || code > 599) {
					cfg_err(c, v, "retryOn status code %d is not an HTTP status (100-599)", code);
				} else if (n_codes < SN_ARRAY_LEN(codes)) {
					codes[n_codes++] = (uint16_t)code;
					r->retry_on |= SN_RETRY_RETRIABLE_CODES;
				}
				found = 1;
			}
			if (!found)
				cfg_warn(c, v, "retryOn condition \"%.*s\" is not implemented by Sinew; ignored "
					 "(implemented: 5xx, gateway-error, connect-failure, refused-stream, reset, "
					 "retriable-status-codes, status codes like 503, and the gRPC cancelled, "
					 "deadline-exceeded, internal, resource-exhausted, unavailable)", (int)SN_MIN(len, 64), p);
		}
		if (e == NULL)
			break;
		p = e + 1;
	}
	if (n_codes) {
		r->status_codes = sn_arena_new_array(c->a, uint16_t, n_codes);
		if (r->status_codes) {
			memcpy(r->status_codes, codes, n_codes * sizeof(codes[0]));
			r->n_status_codes = n_codes;
		}
	}
}

static void parse_retries(struct cfg_ctx *c, const struct yn *v, struct sn_retry_policy *r)
{
	if (cfg_want_map(c, v) != 0)
		return;
	uint64_t x;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x_node = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "attempts")) {
			if (cfg_get_uint(c, x_node, 0, 10, &x) == 0)
				r->attempts = (uint32_t)x;
		} else if (!strcmp(k, "perTryTimeout")) {
			cfg_get_duration(c, x_node, &r->per_try_timeout_ms);
		} else if (!strcmp(k, "retryOn")) {
			char *s = NULL;
			if (cfg_get_str(c, x_node, 512, &s) == 0)
				parse_retry_on(c, x_node, s, r);
		} else if (!strcmp(k, "retryRemoteLocalities") || !strcmp(k, "retryIgnorePreviousHosts") ||
			   !strcmp(k, "backoff")) {
			cfg_warn_unimplemented(c, v->keys[i], k);
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
}

static void parse_rewrite(struct cfg_ctx *c, const struct yn *v, struct cfg_http *h)
{
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "uri")) {
			if (cfg_get_str(c, v->items[i], CFG_MAX_STR, &h->rewrite_uri) == 0 && h->rewrite_uri[0] != '/' &&
			    h->rewrite_uri[0] != '\0')
				cfg_warn(c, v->items[i], "a rewritten path normally starts with '/'");
		} else if (!strcmp(k, "authority")) {
			cfg_get_str(c, v->items[i], CFG_MAX_NAME + 6, &h->rewrite_authority);
		} else if (!strcmp(k, "uriRegexRewrite")) {
			const struct yn *r = v->items[i];
			if (cfg_want_map(c, r) == 0) {
				for (size_t j = 0; j < r->n; j++) {
					const char *rk = r->keys[j]->s;
					size_t ql = cfg_path_push(c, ".%s", rk);
					if (!strcmp(rk, "match"))
						cfg_get_str(c, r->items[j], CFG_MAX_REGEX, &h->rewrite_regex);
					else if (!strcmp(rk, "rewrite"))
						cfg_get_str(c, r->items[j], CFG_MAX_STR, &h->rewrite_sub);
					else
						cfg_warn_unknown(c, r->keys[j]);
					cfg_path_pop(c, ql);
				}
				cfg_require(c, r, "match", YN_SCALAR, "the pattern (RE2), e.g. \"^/service/([^/]+)(/.*)$\"");
				cfg_require(c, r, "rewrite", YN_SCALAR, "what each match becomes, e.g. \"\\\\2/instance/\\\\1\"");
				if (h->rewrite_regex != NULL && h->rewrite_sub != NULL) {
					regex_t *re = NULL;
					unsigned char groups[10];
					char err[160];
					if (cfg_regex_compile_rewrite(h->rewrite_regex, h->rewrite_sub, &re, groups, err,
								      sizeof(err)) != 0) {
						cfg_err(c, r, "%s", err);
						h->rewrite_regex = NULL;
					} else {
						regfree(re);
						free(re);
					}
				}
			}
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (h->rewrite_uri != NULL && h->rewrite_regex != NULL)
		cfg_err(c, v, "rewrite takes uri or uriRegexRewrite, not both");
}

/* A list of strings joined by ", " (allowMethods, allowHeaders...). */
static char *joined(struct cfg_ctx *c, const struct yn *v)
{
	char buf[2048];
	size_t n = 0;
	if (cfg_want_seq(c, v, 64) != 0)
		return NULL;
	buf[0] = '\0';
	for (size_t i = 0; i < v->n; i++) {
		char *s = NULL;
		size_t pl = cfg_path_push(c, "[%zu]", i);
		if (cfg_get_str(c, v->items[i], 256, &s) == 0) {
			for (const char *q = s; *q; q++)
				if ((unsigned char)*q < 0x20 || *q == ',') {
					cfg_err(c, v->items[i], "\"%.64s\" cannot go in a header list", s);
					s = NULL;
					break;
				}
			if (s != NULL)
				n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? ", " : "", s);
		}
		cfg_path_pop(c, pl);
		if (n >= sizeof(buf) - 1)
			break;
	}
	return n ? sn_arena_strdup(c->a, buf) : NULL;
}

/* corsPolicy: allowOrigins (StringMatch), the deprecated allowOrigin
 * (exact strings), allowMethods, allowHeaders, exposeHeaders, maxAge,
 * allowCredentials, unmatchedPreflights. */
static void parse_cors(struct cfg_ctx *c, const struct yn *v, struct cfg_http *h)
{
	if (cfg_want_map(c, v) != 0)
		return;
	struct sn_cors *o = sn_arena_new(c->a, struct sn_cors);
	if (o == NULL)
		return;
	o->origins = sn_arena_new_array(c->a, struct sn_str_match, 64);
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *y = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if ((!strcmp(k, "allowOrigins") || !strcmp(k, "allowOrigin")) && o->origins != NULL) {
			if (cfg_want_seq(c, y, 64) == 0)
				for (size_t j = 0; j < y->n && o->n_origins < 64; j++) {
					size_t ql = cfg_path_push(c, "[%zu]", j);
					struct sn_str_match *m = &o->origins[o->n_origins];
					char *s = NULL;
					if (k[11] == 's') {
						if (cfg_parse_string_match(c, y->items[j], 0, m) == 0)
							o->n_origins++;
					} else if (cfg_get_str(c, y->items[j], 256, &s) == 0) {
						*m = (struct sn_str_match){ .kind = SN_MATCH_EXACT, .value = s };
						o->n_origins++;
					}
					cfg_path_pop(c, ql);
				}
		} else if (!strcmp(k, "allowMethods")) {
			o->methods = joined(c, y);
		} else if (!strcmp(k, "allowHeaders")) {
			o->headers = joined(c, y);
		} else if (!strcmp(k, "exposeHeaders")) {
			o->expose = joined(c, y);
		} else if (!strcmp(k, "maxAge")) {
			uint32_t ms = 0;
			if (cfg_get_duration(c, y, &ms) == 0) {
				char buf[16];
				snprintf(buf, sizeof(buf), "%u", ms / 1000);
				o->max_age = sn_arena_strdup(c->a, buf);
			}
		} else if (!strcmp(k, "allowCredentials")) {
			cfg_get_bool(c, y, &o->credentials);
		} else if (!strcmp(k, "unmatchedPreflights")) {
			char *s = NULL;
			if (cfg_get_str(c, y, 32, &s) == 0) {
				if (!strcmp(s, "IGNORE"))
					o->ignore_unmatched = 1;
				else if (strcmp(s, "FORWARD") && strcmp(s, "UNSPECIFIED"))
					cfg_err(c, y, "unmatchedPreflights \"%.32s\": use FORWARD or IGNORE", s);
			}
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	h->cors = o;
}

/* redirect: uri, authority, port or derivePort, scheme, redirectCode. */
static void parse_redirect(struct cfg_ctx *c, const struct yn *v, struct sn_redirect *r)
{
	uint64_t x;
	const struct yn *port = NULL, *derive = NULL;
	if (cfg_want_map(c, v) != 0)
		return;
	r->code = 301;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *y = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "uri")) {
			if (cfg_get_str(c, y, CFG_MAX_STR, &r->uri) == 0 && r->uri[0] != '/')
				cfg_err(c, y, "uri \"%.64s\" must start with /", r->uri);
		} else if (!strcmp(k, "authority")) {
			cfg_get_str(c, y, CFG_MAX_NAME + 6, &r->authority);
		} else if (!strcmp(k, "scheme")) {
			if (cfg_get_str(c, y, 32, &r->scheme) == 0 && strcmp(r->scheme, "http") && strcmp(r->scheme, "https"))
				cfg_err(c, y, "scheme \"%.32s\": use http or https", r->scheme);
		} else if (!strcmp(k, "port")) {
			port = y;
			if (cfg_get_uint(c, y, 1, 65535, &x) == 0)
				r->port = (uint16_t)x;
		} else if (!strcmp(k, "derivePort")) {
			char *d = NULL;
			derive = y;
			if (cfg_get_str(c, y, 32, &d) == 0) {
				if (!strcmp(d, "FROM_PROTOCOL_DEFAULT"))
					r->derive_port = 1;
				else if (!strcmp(d, "FROM_REQUEST_PORT"))
					r->derive_port = 2;
				else
					cfg_err(c, y, "derivePort \"%.32s\": use FROM_PROTOCOL_DEFAULT or FROM_REQUEST_PORT", d);
			}
		} else if (!strcmp(k, "redirectCode")) {
			if (cfg_get_uint(c, y, 300, 399, &x) == 0) {
				if (x != 301 && x != 302 && x != 303 && x != 307 && x != 308)
					cfg_err(c, y, "redirectCode %u: use 301, 302, 303, 307 or 308", (unsigned)x);
				r->code = (int)x;
			}
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (port != NULL && derive != NULL)
		cfg_err(c, derive, "port and derivePort are both set; use one");
}

static void parse_direct(struct cfg_ctx *c, const struct yn *v, struct cfg_http *h)
{
	if (cfg_want_map(c, v) != 0)
		return;
	uint64_t x;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x_node = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "status")) {
			if (cfg_get_uint(c, x_node, 200, 599, &x) == 0)
				h->direct_status = (int)x;
		} else if (!strcmp(k, "body")) {
			if (cfg_want_map(c, x_node) == 0) {
				for (size_t j = 0; j < x_node->n; j++) {
					const char *bk = x_node->keys[j]->s;
					size_t ql = cfg_path_push(c, ".%s", bk);
					if (!strcmp(bk, "string"))
						cfg_get_str(c, x_node->items[j], CFG_MAX_BODY, &h->direct_body);
					else if (!strcmp(bk, "bytes"))
						cfg_warn_unimplemented(c, x_node->keys[j], "body.bytes (use body.string)");
					else
						cfg_warn_unknown(c, x_node->keys[j]);
					cfg_path_pop(c, ql);
				}
			}
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	cfg_require(c, v, "status", YN_SCALAR, "the HTTP status to answer (200-599)");
}

/* Weights: a lone destination gets 100; several must sum to 100 (Istio's
 * validation). */
static void check_weights(struct cfg_ctx *c, const struct yn *route, struct cfg_dest *d, size_t n)
{
	if (n == 1 && (!d[0].has_weight || d[0].weight == 0)) {
		d[0].weight = 100;
	} else if (n >= 1) {
		uint32_t sum = 0;
		for (size_t i = 0; i < n; i++)
			sum += d[i].weight;
		if (sum != 100) {
			size_t pl = cfg_path_push(c, ".route");
			cfg_err(c, route, "weights sum to %u, want 100; give every destination a weight so they add up to 100",
				sum);
			cfg_path_pop(c, pl);
		}
	}
}

static void parse_http(struct cfg_ctx *c, const struct yn *v, struct cfg_http *h)
{
	const struct yn *route = NULL, *direct = NULL, *redirect = NULL, *mirror = NULL, *mirrors = NULL;
	struct cfg_dest *mirror_dest = NULL;
	double mirror_pct = 100;   /* Istio: absent, all the traffic is mirrored */
	h->path = cfg_path_dup(c, NULL);
	h->loc = cfg_loc_of(v);
	h->retry.attempts = 2;
	h->retry.retry_on = SN_RETRY_CONNECT_FAILURE | SN_RETRY_REFUSED_STREAM;

	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "name")) {
			cfg_get_str(c, x, CFG_MAX_NAME, &h->name);
		} else if (!strcmp(k, "match")) {
			if (cfg_want_seq(c, x, CFG_MAX_MATCHES) == 0) {
				h->matches = sn_arena_new_array(c->a, struct cfg_match, x->n ? x->n : 1);
				if (h->matches == NULL)
					return;
				for (size_t j = 0; j < x->n; j++) {
					size_t ql = cfg_path_push(c, "[%zu]", j);
					if (cfg_want_map(c, x->items[j]) == 0)
						parse_match(c, x->items[j], &h->matches[h->n_matches++]);
					else if (x->items[j]->type == YN_NULL)
						h->n_matches++; /* "- {}"-like: matches everything */
					cfg_path_pop(c, ql);
				}
			}
		} else if (!strcmp(k, "route")) {
			route = x;
			if (cfg_want_seq(c, x, CFG_MAX_MATCHES) == 0) {
				h->dests = sn_arena_new_array(c->a, struct cfg_dest, x->n ? x->n : 1);
				if (h->dests == NULL)
					return;
				for (size_t j = 0; j < x->n; j++) {
					size_t ql = cfg_path_push(c, "[%zu]", j);
					if (cfg_want_map(c, x->items[j]) == 0)
						parse_route(c, x->items[j], &h->dests[h->n_dests++]);
					cfg_path_pop(c, ql);
				}
			}
		} else if (!strcmp(k, "redirect")) {
			redirect = x;
			h->has_redirect = 1;
			parse_redirect(c, x, &h->redirect);
		} else if (!strcmp(k, "rewrite")) {
			parse_rewrite(c, x, h);
		} else if (!strcmp(k, "timeout")) {
			cfg_get_duration(c, x, &h->timeout_ms);
		} else if (!strcmp(k, "retries")) {
			parse_retries(c, x, &h->retry);
		} else if (!strcmp(k, "fault")) {
			parse_fault(c, x, &h->fault);
		} else if (!strcmp(k, "headers")) {
			parse_headers(c, x, &h->req, &h->resp);
		} else if (!strcmp(k, "directResponse")) {
			direct = x;
			parse_direct(c, x, h);
		} else if (!strcmp(k, "mirror")) {
			mirror = x;
			if (cfg_want_map(c, x) == 0) {
				mirror_dest = sn_arena_new(c->a, struct cfg_dest);
				if (mirror_dest != NULL)
					parse_destination(c, x, mirror_dest);
			}
		} else if (!strcmp(k, "mirrorPercentage")) {
			parse_percentage(c, x, &mirror_pct);
		} else if (!strcmp(k, "mirrorPercent") || !strcmp(k, "mirror_percent")) {
			uint64_t pct;
			if (cfg_get_uint(c, x, 0, 100, &pct) == 0)
				mirror_pct = (double)pct;   /* deprecated: mirrorPercentage */
		} else if (!strcmp(k, "mirrors")) {
			mirrors = x;
			parse_mirrors(c, x, h);
		} else if (!strcmp(k, "corsPolicy")) {
			parse_cors(c, x, h);
		} else if (!strcmp(k, "delegate")) {
			cfg_warn_unimplemented(c, v->keys[i], k);
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}

	if (mirror != NULL && mirrors != NULL) {
		size_t pl = cfg_path_push(c, ".mirrors");
		cfg_err(c, mirrors, "mirror and mirrors are both set; use one (mirrors takes a list)");
		cfg_path_pop(c, pl);
	} else if (mirror_dest != NULL && mirror_dest->host != NULL) {
		mirror_dest->mirror_pct = mirror_pct;
		h->mirrors = mirror_dest;
		h->n_mirrors = 1;
	}
	int actions = (route != NULL) + (direct != NULL) + (redirect != NULL);
	if (actions == 0)
		cfg_err(c, v, "a rule needs one of route, redirect or directResponse");
	else if (actions > 1)
		cfg_err(c, v, "set only one of route, redirect or directResponse");
	if (route != NULL && route->type == YN_SEQ && route->n == 0) {
		size_t pl = cfg_path_push(c, ".route");
		cfg_err(c, route, "route has no destinations; add at least one");
		cfg_path_pop(c, pl);
	}

	check_weights(c, route, h->dests, h->n_dests);
}

/* tls[].match[]: {sniHosts (required), port, gateways}; tcp[].match[]:
 * {port, gateways} (tls 0). */
static void parse_tls_match(struct cfg_ctx *c, const struct yn *v, struct cfg_tls_match *m, int tls)
{
	uint64_t x;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *y = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "sniHosts") && tls) {
			struct cfg_loc *locs = NULL;
			if (cfg_get_str_list(c, y, CFG_MAX_NAME, &m->sni_hosts, &m->n_sni, &locs) == 0) {
				for (size_t j = 0; j < m->n_sni; j++) {
					sn_ascii_lower(m->sni_hosts[j]);
					if (!cfg_vs_host_ok(m->sni_hosts[j])) {
						size_t ql = cfg_path_push(c, "[%zu]", j);
						struct yn at = { .line = locs[j].line, .col = locs[j].col };
						cfg_err(c, &at, "\"%.64s\" is not a server name; write a name like "
							"\"bookinfo.example.com\", \"*.example.com\" or \"*\"", m->sni_hosts[j]);
						cfg_path_pop(c, ql);
					}
				}
			}
		} else if (!strcmp(k, "port")) {
			if (cfg_get_uint(c, y, 1, 65535, &x) == 0)
				m->port = (uint16_t)x;
		} else if (!strcmp(k, "gateways")) {
			cfg_get_str_list(c, y, CFG_MAX_NAME, &m->gateways, &m->n_gateways, NULL);
		} else if (!strcmp(k, "destinationSubnets") || !strcmp(k, "sourceLabels") ||
			   !strcmp(k, "sourceNamespace")) {
			cfg_warn_unimplemented(c, v->keys[i], k);
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (tls)
		cfg_require(c, v, "sniHosts", YN_SEQ, "the server names this route takes, e.g. [bookinfo.example.com]");
}

/* tls[]: {match (required), route}; tcp[] (tls 0): {match, route}. */
static void parse_tls_route(struct cfg_ctx *c, const struct yn *v, struct cfg_tls_route *r, int tls)
{
	const struct yn *route = NULL;
	r->path = cfg_path_dup(c, NULL);
	r->loc = cfg_loc_of(v);
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *y = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "match")) {
			if (cfg_want_seq(c, y, CFG_MAX_MATCHES) == 0 && y->n > 0 &&
			    (r->matches = sn_arena_new_array(c->a, struct cfg_tls_match, y->n)) != NULL) {
				for (size_t j = 0; j < y->n; j++) {
					size_t ql = cfg_path_push(c, "[%zu]", j);
					if (cfg_want_map(c, y->items[j]) == 0)
						parse_tls_match(c, y->items[j], &r->matches[r->n_matches++], tls);
					cfg_path_pop(c, ql);
				}
			}
		} else if (!strcmp(k, "route")) {
			route = y;
			if (cfg_want_seq(c, y, CFG_MAX_MATCHES) == 0 && y->n > 0 &&
			    (r->dests = sn_arena_new_array(c->a, struct cfg_dest, y->n)) != NULL) {
				for (size_t j = 0; j < y->n; j++) {
					size_t ql = cfg_path_push(c, "[%zu]", j);
					if (cfg_want_map(c, y->items[j]) == 0)
						parse_route(c, y->items[j], &r->dests[r->n_dests++]);
					cfg_path_pop(c, ql);
				}
			}
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (tls)
		cfg_require(c, v, "match", YN_SEQ, "the server names it takes: [{sniHosts: [NAME]}]");
	cfg_require(c, v, "route", YN_SEQ, "where the connections go: [{destination: {host: NAME, port: {number: N}}}]");
	check_weights(c, route, r->dests, r->n_dests);
}

struct cfg_vs *cfg_parse_virtual_service(struct cfg_ctx *c, const struct yn *spec)
{
	struct cfg_vs *vs = sn_arena_new(c->a, struct cfg_vs);
	if (vs == NULL)
		return NULL;
	vs->for_mesh = 1;
	for (size_t i = 0; i < spec->n; i++) {
		const char *k = spec->keys[i]->s;
		const struct yn *v = spec->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "hosts")) {
			if (cfg_get_str_list(c, v, CFG_MAX_NAME, &vs->hosts, &vs->n_hosts, &vs->host_locs) == 0) {
				for (size_t j = 0; j < vs->n_hosts; j++) {
					char *h = vs->hosts[j];
					sn_ascii_lower(h);
					size_t n = strlen(h);
					if (n > 1 && h[n - 1] == '.')
						h[n - 1] = '\0';
					if (!cfg_vs_host_ok(h)) {
						size_t ql = cfg_path_push(c, "[%zu]", j);
						struct yn at = { .line = vs->host_locs[j].line, .col = vs->host_locs[j].col };
						cfg_err(c, &at, "\"%.64s\" is not a valid host; write a name like "
							"\"reviews\", \"reviews.default.svc.cluster.local\" or \"*.example.com\" "
							"(no port, no scheme)", h);
						cfg_path_pop(c, ql);
					}
				}
			}
		} else if (!strcmp(k, "gateways")) {
			char **gw = NULL;
			struct cfg_loc *locs = NULL;
			size_t n = 0;
			if (cfg_get_str_list(c, v, CFG_MAX_NAME, &gw, &n, &locs) == 0 && n > 0) {
				int mesh = 0;
				for (size_t j = 0; j < n; j++)
					if (!strcmp(gw[j], "mesh"))
						mesh = 1;
				/* bound to gateways only: the gateways' proxies route it
				 * (translate.c), sidecars do not */
				vs->for_mesh = mesh;
				vs->gateways = gw;
				vs->gateway_locs = locs;
				vs->n_gateways = n;
			}
		} else if (!strcmp(k, "http")) {
			if (cfg_want_seq(c, v, CFG_MAX_LIST) == 0) {
				vs->http = sn_arena_new_array(c->a, struct cfg_http, v->n ? v->n : 1);
				if (vs->http == NULL)
					return NULL;
				for (size_t j = 0; j < v->n; j++) {
					size_t ql = cfg_path_push(c, "[%zu]", j);
					if (cfg_want_map(c, v->items[j]) == 0)
						parse_http(c, v->items[j], &vs->http[vs->n_http++]);
					cfg_path_pop(c, ql);
				}
			}
		} else if (!strcmp(k, "tls") || !strcmp(k, "tcp")) {
			int tls = !strcmp(k, "tls");
			struct cfg_tls_route **out = tls ? &vs->tls : &vs->tcp;
			size_t *n_out = tls ? &vs->n_tls : &vs->n_tcp;
			if (cfg_want_seq(c, v, CFG_MAX_LIST) == 0 && v->n > 0) {
				*out = sn_arena_new_array(c->a, struct cfg_tls_route, v->n);
				if (*out == NULL)
					return NULL;
				for (size_t j = 0; j < v->n; j++) {
					size_t ql = cfg_path_push(c, "[%zu]", j);
					if (cfg_want_map(c, v->items[j]) == 0)
						parse_tls_route(c, v->items[j], &(*out)[(*n_out)++], tls);
					cfg_path_pop(c, ql);
				}
			}
		} else if (!strcmp(k, "exportTo")) {
			cfg_warn_unimplemented(c, spec->keys[i], "exportTo (every VirtualService is visible to every proxy)");
		} else {
			cfg_warn_unknown(c, spec->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	cfg_require(c, spec, "hosts", YN_SEQ, "list the hosts this VirtualService routes, e.g. [reviews]");
	return vs;
}
