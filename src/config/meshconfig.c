/* The mesh config: ConfigMap istio-system/istio, its data.mesh holding
 * Istio's MeshConfig as YAML text, exactly where an Istio user keeps it.
 * Sinew reads extensionProviders (the external authorizers of CUSTOM
 * AuthorizationPolicies: envoyExtAuthzHttp and envoyExtAuthzGrpc); every
 * other MeshConfig field is warned as not implemented, never dropped in
 * silence. Any other ConfigMap is not Sinew's and loads with a warning
 * (resource.c). docs/security.md, "External authorization". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

#define MAX_PROVIDERS 64
#define MAX_PATTERNS 64
#define EXT_AUTHZ_DEFAULT_TIMEOUT_MS 600000u   /* Istio's default */

struct mesh_parse {
	struct cfg_ctx *outer;
	struct cfg_mesh *m;
	int seen;
};

/* A list of header-name patterns ("x-*", "*-id", exact), lower-cased. */
static void get_patterns(struct cfg_ctx *c, const struct yn *v, struct sn_authz_str **out, size_t *n_out)
{
	char **s = NULL;
	size_t n = 0;
	if (cfg_get_str_list(c, v, CFG_MAX_NAME, &s, &n, NULL) != 0 || n == 0)
		return;
	if (n > MAX_PATTERNS) {
		cfg_err(c, v, "%zu header patterns; at most %d", n, MAX_PATTERNS);
		return;
	}
	*out = sn_arena_new_array(c->a, struct sn_authz_str, n);
	if (*out == NULL) {
		cfg_err(c, v, "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		sn_ascii_lower(s[i]);
		sn_authz_str_compile(s[i], &(*out)[i]);
	}
	*n_out = n;
}

static void parse_body_opts(struct cfg_ctx *c, const struct yn *v, struct sn_ext_authz *p)
{
	if (cfg_want_map(c, v) != 0)
		return;
	p->with_body = 1;
	p->max_body = 4096;   /* a bound Sinew chooses when none is given */
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		size_t pl = cfg_path_push(c, ".%s", k);
		uint64_t u;
		if (!strcmp(k, "maxRequestBytes")) {
			if (cfg_get_uint(c, v->items[i], 1, 1u << 20, &u) == 0)
				p->max_body = (uint32_t)u;
		} else if (!strcmp(k, "allowPartialMessage")) {
			cfg_get_bool(c, v->items[i], &p->body_partial);
		} else if (!strcmp(k, "packAsBytes")) {
			/* Envoy's: only the gRPC check has a string and a bytes body */
			if (cfg_get_bool(c, v->items[i], &p->pack_as_bytes) == 0 && p->proto != SN_EXT_AUTHZ_GRPC)
				cfg_warn(c, v->keys[i], "packAsBytes only changes the gRPC check "
					 "(envoyExtAuthzGrpc); an HTTP check sends the body as it is");
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
}

/* A provider's service and port, the fields every kind has: 1 when k is
 * one of them (read into p; the node kept for provider_target_required). */
static int provider_target(struct cfg_ctx *c, const char *k, const struct yn *x, struct sn_ext_authz *p,
			   const struct yn **svc, const struct yn **port)
{
	uint64_t u;
	if (!strcmp(k, "service")) {
		*svc = x;
		cfg_get_str(c, x, CFG_MAX_NAME + 64, &p->service);
		return 1;
	}
	if (!strcmp(k, "port")) {
		*port = x;
		if (cfg_get_uint(c, x, 1, 65535, &u) == 0)
			p->port = (uint16_t)u;
		return 1;
	}
	return 0;
}

/* Both are required: errors naming what each is for this kind. */
static void provider_target_required(struct cfg_ctx *c, const struct yn *v, const struct yn *svc,
				     const struct yn *port, const char *host_is, const char *port_is)
{
	if (cfg_missing(svc, YN_SCALAR)) {
		size_t pl = cfg_path_push(c, ".service");
		cfg_err(c, svc ? svc : v, "service is required: %s (a Service or ServiceEntry)", host_is);
		cfg_path_pop(c, pl);
	}
	if (port == NULL) {
		size_t pl = cfg_path_push(c, ".port");
		cfg_err(c, v, "port is required: %s", port_is);
		cfg_path_pop(c, pl);
	}
}

/* envoyExtAuthzHttp / envoyExtAuthzGrpc: one provider's settings. */
static void parse_ext_authz(struct cfg_ctx *c, const struct yn *key, const struct yn *v, struct sn_ext_authz *p)
{
	int grpc = !strcmp(key->s, "envoyExtAuthzGrpc");
	const struct yn *svc = NULL, *port = NULL;

	p->proto = grpc ? SN_EXT_AUTHZ_GRPC : SN_EXT_AUTHZ_HTTP;
	p->timeout_ms = EXT_AUTHZ_DEFAULT_TIMEOUT_MS;
	p->status_on_error = 403;
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (provider_target(c, k, x, p, &svc, &port)) {
			/* taken */
		} else if (!strcmp(k, "timeout")) {
			uint32_t ms;
			if (cfg_get_duration(c, x, &ms) == 0) {
				if (ms == 0)
					cfg_err(c, x, "timeout must be more than 0");
				else
					p->timeout_ms = ms;
			}
		} else if (!strcmp(k, "failOpen")) {
			cfg_get_bool(c, x, &p->fail_open);
		} else if (!strcmp(k, "statusOnError")) {
			/* a string in Istio's proto ("403"); a number is taken too */
			char *st = NULL;
			if (cfg_get_str(c, x, 8, &st) == 0) {
				char *end;
				long code = strtol(st, &end, 10);
				if (*end != '\0' || code < 200 || code > 599)
					cfg_err(c, x, "statusOnError \"%s\" is not an HTTP status (200-599)", st);
				else
					p->status_on_error = (int)code;
			}
		} else if (!strcmp(k, "includeRequestBodyInCheck")) {
			parse_body_opts(c, x, p);
		} else if (!grpc && !strcmp(k, "pathPrefix")) {
			if (cfg_get_str(c, x, CFG_MAX_STR, &p->path_prefix) == 0 && p->path_prefix[0] != '/')
				cfg_err(c, x, "pathPrefix must start with '/'");
		} else if (!grpc && (!strcmp(k, "includeRequestHeadersInCheck") || !strcmp(k, "includeHeadersInCheck"))) {
			if (!strcmp(k, "includeHeadersInCheck"))
				cfg_warn(c, v->keys[i], "includeHeadersInCheck is deprecated in Istio; read as "
					 "includeRequestHeadersInCheck");
			get_patterns(c, x, &p->include_headers, &p->n_include_headers);
		} else if (!grpc && !strcmp(k, "includeAdditionalHeadersInCheck")) {
			struct sn_labels l = { 0 };
			if (cfg_get_labels(c, x, &l) == 0 && l.n > 0) {
				p->additional = sn_arena_new_array(c->a, struct sn_header_op, l.n);
				if (p->additional == NULL) {
					cfg_err(c, x, "out of memory");
				} else {
					for (size_t j = 0; j < l.n; j++) {
						p->additional[j].name = l.v[j].key;
						p->additional[j].value = l.v[j].value;
						for (char *q = l.v[j].key; *q; q++)
							if (*q >= 'A' && *q <= 'Z')
								*q = (char)(*q - 'A' + 'a');
					}
					p->n_additional = l.n;
				}
			}
		} else if (!grpc && !strcmp(k, "headersToUpstreamOnAllow")) {
			get_patterns(c, x, &p->to_upstream_on_allow, &p->n_to_upstream_on_allow);
		} else if (!grpc && !strcmp(k, "headersToDownstreamOnAllow")) {
			get_patterns(c, x, &p->to_downstream_on_allow, &p->n_to_downstream_on_allow);
		} else if (!grpc && !strcmp(k, "headersToDownstreamOnDeny")) {
			get_patterns(c, x, &p->to_downstream_on_deny, &p->n_to_downstream_on_deny);
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	provider_target_required(c, v, svc, port, "the authorizer's host, e.g. ext-authz.foo.svc.cluster.local",
				 "the authorizer's service port");
}

/* zipkin / opentelemetry: a tracer spans are POSTed to, as JSON: Zipkin
 * v2 to /api/v2/spans, OTLP to http.path. Istio's opentelemetry without
 * http speaks OTLP over gRPC (protobuf), which Sinew does not write: an
 * error, so that a user sees why no span arrives. */
static void parse_tracer(struct cfg_ctx *c, const struct yn *key, const struct yn *v, struct sn_ext_authz *p)
{
	int otlp = !strcmp(key->s, "opentelemetry");
	const struct yn *svc = NULL, *port = NULL, *http = NULL;
	uint64_t u;

	p->proto = otlp ? SN_EXT_TRACE_OTLP : SN_EXT_TRACE_ZIPKIN;
	p->timeout_ms = 10000;
	p->max_tag_length = 256;
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (provider_target(c, k, x, p, &svc, &port)) {
			/* taken */
		} else if (!strcmp(k, "maxTagLength")) {
			if (cfg_get_uint(c, x, 1, 65536, &u) == 0)
				p->max_tag_length = (uint32_t)u;
		} else if (!otlp && !strcmp(k, "enable64bitTraceId")) {
			int b = 0;
			if (cfg_get_bool(c, x, &b) == 0 && b)
				cfg_warn(c, v->keys[i], "enable64bitTraceId: Sinew makes 128-bit trace IDs; a 64-bit "
					 "one from a client is kept as it is");
		} else if (otlp && !strcmp(k, "http")) {
			http = x;
			if (cfg_want_map(c, x) == 0) {
				for (size_t j = 0; j < x->n; j++) {
					const char *hk = x->keys[j]->s;
					size_t pl2 = cfg_path_push(c, ".%s", hk);
					if (!strcmp(hk, "path")) {
						if (cfg_get_str(c, x->items[j], CFG_MAX_STR, &p->path_prefix) == 0 &&
						    p->path_prefix[0] != '/')
							cfg_err(c, x->items[j], "path must start with '/', e.g. /v1/traces");
					} else if (!strcmp(hk, "timeout")) {
						uint32_t ms;
						if (cfg_get_duration(c, x->items[j], &ms) == 0 && ms > 0)
							p->timeout_ms = ms;
					} else {
						cfg_warn_unimplemented(c, x->keys[j], hk);
					}
					cfg_path_pop(c, pl2);
				}
			}
		} else {
			cfg_warn_unimplemented(c, v->keys[i], k);
		}
		cfg_path_pop(c, pl);
	}
	provider_target_required(c, v, svc, port, "the tracer's host, e.g. zipkin.istio-system.svc.cluster.local",
				 "the tracer's service port (Zipkin 9411, OTLP/HTTP 4318)");
	if (otlp && http == NULL)
		cfg_err(c, key, "opentelemetry without http: exports OTLP over gRPC, which Sinew does not "
			"speak; add http: {path: /v1/traces} and point port at the collector's OTLP/HTTP port (4318)");
	if (p->path_prefix == NULL)
		p->path_prefix = sn_arena_strdup(c->a, otlp ? "/v1/traces" : "/api/v2/spans");
}

static void parse_provider(struct cfg_ctx *c, const struct yn *v, struct sn_ext_authz *p)
{
	const struct yn *impl = NULL;
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "name")) {
			cfg_get_str(c, v->items[i], CFG_MAX_NAME, &p->name);
		} else if (!strcmp(k, "envoyExtAuthzHttp") || !strcmp(k, "envoyExtAuthzGrpc")) {
			if (impl != NULL)
				cfg_err(c, v->keys[i], "a provider has one kind; %s is given already", impl->s);
			else
				parse_ext_authz(c, v->keys[i], v->items[i], p);
			impl = v->keys[i];
		} else if (!strcmp(k, "zipkin") || !strcmp(k, "opentelemetry")) {
			if (impl != NULL)
				cfg_err(c, v->keys[i], "a provider has one kind; %s is given already", impl->s);
			else
				parse_tracer(c, v->keys[i], v->items[i], p);
			impl = v->keys[i];
		} else if (!strcmp(k, "envoyOtelAls") ||
			   !strcmp(k, "envoyFileAccessLog") || !strcmp(k, "envoyHttpAls") || !strcmp(k, "envoyTcpAls") ||
			   !strcmp(k, "prometheus") || !strcmp(k, "stackdriver") || !strcmp(k, "datadog") ||
			   !strcmp(k, "lightstep") || !strcmp(k, "skywalking") || !strcmp(k, "sds")) {
			cfg_warn_unimplemented(c, v->keys[i], "this provider kind (Sinew's providers: envoyExtAuthzHttp, "
					       "envoyExtAuthzGrpc, zipkin, opentelemetry)");
			impl = v->keys[i];
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (p->name == NULL || p->name[0] == '\0') {
		size_t pl = cfg_path_push(c, ".name");
		cfg_err(c, v, "name is required: what CUSTOM policies and Telemetry resources give as provider.name");
		cfg_path_pop(c, pl);
	}
	if (impl == NULL)
		cfg_err(c, v, "a provider needs its kind: envoyExtAuthzHttp, envoyExtAuthzGrpc, zipkin or opentelemetry");
}

/* defaultProviders: the tracers spans go to when no Telemetry names one. */
static void parse_default_providers(struct cfg_ctx *c, const struct yn *v, struct cfg_mesh *m)
{
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "tracing"))
			cfg_get_str_list(c, v->items[i], CFG_MAX_NAME, &m->default_tracers, &m->n_default_tracers, NULL);
		else
			cfg_warn_unimplemented(c, v->keys[i], k);
		cfg_path_pop(c, pl);
	}
}

/* defaultConfig (ProxyConfig): tracing.sampling only. */
static void parse_default_config(struct cfg_ctx *c, const struct yn *v, struct cfg_mesh *m)
{
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "tracing") && cfg_want_map(c, x) == 0) {
			for (size_t j = 0; j < x->n; j++) {
				size_t pl2 = cfg_path_push(c, ".%s", x->keys[j]->s);
				if (!strcmp(x->keys[j]->s, "sampling"))
					cfg_get_double(c, x->items[j], 0, 100, &m->sampling);
				else
					cfg_warn_unimplemented(c, x->keys[j], x->keys[j]->s);
				cfg_path_pop(c, pl2);
			}
		} else if (strcmp(k, "tracing") != 0) {
			cfg_warn_unimplemented(c, v->keys[i], k);
		}
		cfg_path_pop(c, pl);
	}
}

/* outboundTrafficPolicy.mode: ALLOW_ANY (Istio's default) or
 * REGISTRY_ONLY: traffic to what no Service or ServiceEntry declares is
 * refused (502 blocked_egress; opaque TCP closed). */
static void parse_outbound_policy(struct cfg_ctx *c, const struct yn *v, struct cfg_mesh *m)
{
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		size_t pl = cfg_path_push(c, ".%s", k);
		char *mode = NULL;
		if (!strcmp(k, "mode")) {
			if (cfg_get_str(c, v->items[i], 32, &mode) == 0) {
				if (!strcmp(mode, "REGISTRY_ONLY")) {
					m->registry_only = 1;
					m->registry_only_line = v->items[i]->line;
				} else if (strcmp(mode, "ALLOW_ANY") != 0) {
					cfg_err(c, v->items[i], "unknown mode \"%.32s\"; use ALLOW_ANY or REGISTRY_ONLY", mode);
				}
			}
		} else if (!strcmp(k, "egressProxy")) {
			cfg_warn_unimplemented(c, v->keys[i], "egressProxy");
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
}

static void on_mesh_doc(void *user, struct yn *root, struct sn_arena *tmp)
{
	struct mesh_parse *mp = user;
	struct cfg_ctx *c = mp->outer;
	(void)tmp;
	if (mp->seen++) {
		cfg_err(c, root, "data.mesh holds more than one YAML document");
		return;
	}
	if (cfg_want_map(c, root) != 0)
		return;
	for (size_t i = 0; i < root->n; i++) {
		const char *k = root->keys[i]->s;
		const struct yn *v = root->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "extensionProviders")) {
			if (cfg_want_seq(c, v, MAX_PROVIDERS) == 0) {
				mp->m->providers = sn_arena_new_array(c->a, struct sn_ext_authz, v->n ? v->n : 1);
				if (mp->m->providers == NULL) {
					cfg_err(c, v, "out of memory");
				} else {
					for (size_t j = 0; j < v->n; j++) {
						size_t pl2 = cfg_path_push(c, "[%zu]", j);
						struct sn_ext_authz *p = &mp->m->providers[mp->m->n_providers];
						size_t before = c->errors;
						parse_provider(c, v->items[j], p);
						for (size_t q = 0; q < mp->m->n_providers && p->name; q++)
							if (!strcmp(mp->m->providers[q].name, p->name))
								cfg_err(c, v->items[j], "provider \"%s\" is defined twice",
									p->name);
						p->origin = sn_arena_printf(c->a,
							"extensionProviders[%zu] (ConfigMap %s, %s:%d)", j,
							c->name ? c->name : "?", c->file, v->items[j]->line);
						/* one bad provider never hides the rest */
						if (c->errors == before && p->service != NULL && p->origin != NULL)
							mp->m->n_providers++;
						else
							memset(p, 0, sizeof(*p));
						cfg_path_pop(c, pl2);
					}
				}
			}
		} else if (!strcmp(k, "enableTracing")) {
			cfg_get_bool(c, v, &mp->m->enable_tracing);
		} else if (!strcmp(k, "defaultProviders")) {
			parse_default_providers(c, v, mp->m);
		} else if (!strcmp(k, "defaultConfig")) {
			parse_default_config(c, v, mp->m);
		} else if (!strcmp(k, "outboundTrafficPolicy")) {
			parse_outbound_policy(c, v, mp->m);
		} else {
			cfg_warn(c, root->keys[i], "MeshConfig field %s is not implemented by Sinew; ignored "
				 "(Sinew reads extensionProviders, defaultProviders.tracing, enableTracing, "
				 "defaultConfig.tracing.sampling and outboundTrafficPolicy from the mesh config)", k);
		}
		cfg_path_pop(c, pl);
	}
}

struct cfg_mesh *cfg_parse_config_map(struct cfg_ctx *c, const struct yn *data, const char *src, size_t src_len)
{
	struct cfg_mesh *m = sn_arena_new(c->a, struct cfg_mesh);
	if (m == NULL)
		return NULL;
	m->enable_tracing = 1;
	m->sampling = -1;
	if (data == NULL || cfg_want_map(c, data) != 0)
		return m;
	for (size_t i = 0; i < data->n; i++) {
		const char *k = data->keys[i]->s;
		const struct yn *v = data->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "mesh")) {
			char *text = NULL;
			if (cfg_get_str(c, v, CFG_MAX_SCALAR, &text) == 0) {
				/* Positions inside the text: a block scalar ("mesh: |")
				 * starts on the line after its indicator. */
				int block = v->start < src_len && (src[v->start] == '|' || src[v->start] == '>');
				struct mesh_parse mp = { c, m, 0 };
				c->errors += cfg_yaml_parse_at(c->file, text, strlen(text),
							       block ? v->line : v->line - 1, c->d, on_mesh_doc, &mp);
			}
		} else if (!strcmp(k, "meshNetworks") || !strcmp(k, "values")) {
			cfg_warn_unimplemented(c, data->keys[i], k);
		} else {
			cfg_warn_unknown(c, data->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	return m;
}

static int copy_patterns(struct sn_arena *a, const struct sn_authz_str *in, size_t n, struct sn_authz_str **out)
{
	*out = NULL;
	if (n == 0)
		return 0;
	*out = sn_arena_new_array(a, struct sn_authz_str, n);
	if (*out == NULL)
		return SN_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char *raw = sn_arena_strdup(a, in[i].raw);
		if (raw == NULL)
			return SN_ENOMEM;
		sn_authz_str_compile(raw, &(*out)[i]);
	}
	return 0;
}

int cfg_ext_authz_copy(struct sn_arena *a, const struct sn_ext_authz *in, struct sn_ext_authz *out)
{
	*out = *in;
	out->name = sn_arena_strdup(a, in->name);
	out->origin = sn_arena_strdup(a, in->origin);
	out->service = sn_arena_strdup(a, in->service);
	out->path_prefix = in->path_prefix ? sn_arena_strdup(a, in->path_prefix) : NULL;
	if (out->name == NULL || out->origin == NULL || out->service == NULL ||
	    (in->path_prefix != NULL && out->path_prefix == NULL))
		return SN_ENOMEM;
	if (in->n_additional) {
		out->additional = sn_arena_new_array(a, struct sn_header_op, in->n_additional);
		if (out->additional == NULL)
			return SN_ENOMEM;
		for (size_t i = 0; i < in->n_additional; i++) {
			out->additional[i].name = sn_arena_strdup(a, in->additional[i].name);
			out->additional[i].value = sn_arena_strdup(a, in->additional[i].value);
			if (out->additional[i].name == NULL || out->additional[i].value == NULL)
				return SN_ENOMEM;
		}
	}
	if (copy_patterns(a, in->include_headers, in->n_include_headers, &out->include_headers) != 0 ||
	    copy_patterns(a, in->to_upstream_on_allow, in->n_to_upstream_on_allow, &out->to_upstream_on_allow) != 0 ||
	    copy_patterns(a, in->to_downstream_on_allow, in->n_to_downstream_on_allow, &out->to_downstream_on_allow) != 0 ||
	    copy_patterns(a, in->to_downstream_on_deny, in->n_to_downstream_on_deny, &out->to_downstream_on_deny) != 0)
		return SN_ENOMEM;
	out->cluster = UINT32_MAX;
	return 0;
}

const struct sn_ext_authz *sn_snapshot_find_ext_authz(const struct sn_snapshot *s, const char *name)
{
	if (s == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < s->n_ext_authz; i++)
		if (!strcmp(s->ext_authz[i].name, name))
			return &s->ext_authz[i];
	return NULL;
}
