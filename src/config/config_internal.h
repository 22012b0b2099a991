#ifndef SINEW_CONFIG_INTERNAL_H
#define SINEW_CONFIG_INTERNAL_H

/* Private to src/config: the YAML tree with positions, the loading
 * context that turns problems into diagnostics, and the typed bodies of
 * loaded resources (sn_resource.spec). */

#include <stdarg.h>
#include <stdint.h>

#include "sinew/config.h"

/* ---- bounds: absurd input is refused with an error, never a crash ---- */

#define CFG_MAX_INPUT (16u << 20)        /* bytes of YAML per load */
#define CFG_MAX_DOCS 10000               /* documents per load */
#define CFG_MAX_RESOURCES 20000          /* resources per set */
#define CFG_MAX_NODES 200000             /* YAML nodes per document */
#define CFG_MAX_DEPTH 64                 /* YAML nesting */
#define CFG_MAX_MAP_KEYS 1024            /* keys per mapping */
#define CFG_MAX_SCALAR (1u << 20)        /* bytes per scalar */
#define CFG_MAX_STR 4096                 /* bytes of an ordinary string field */
#define CFG_MAX_NAME 253                 /* names and hosts (DNS-1123) */
#define CFG_MAX_BODY (64u << 10)         /* directResponse body */
#define CFG_MAX_REGEX 1024               /* bytes of a regex */
#define CFG_MAX_LIST 1024                /* items in a list field (hosts, routes, ports...) */
#define CFG_MAX_MATCHES 64               /* match[] per rule; dests per rule */
#define CFG_MAX_KV 64                    /* headers/queryParams per match, header ops */

/* ---- YAML tree ------------------------------------------------------ */

enum yn_type { YN_NULL = 0, YN_SCALAR, YN_SEQ, YN_MAP };

struct yn {
	enum yn_type type;
	int line, col;       /* 1-based */
	int plain;           /* scalar written without quotes (so 80 is a number) */
	size_t start, end;   /* byte span in the input (added: sinewd keeps each resource's text) */
	char *s;             /* scalar text, NUL-terminated */
	size_t len;
	struct yn **keys;    /* mapping keys (scalars) */
	struct yn **items;   /* sequence items, or mapping values */
	size_t n;
};

/* One document's worth of loading: where diagnostics go and what they name.
 * path is the dotted field path of the node being read. */
struct cfg_ctx {
	struct sn_diags *d;
	struct sn_arena *a;          /* owns what is kept (the set's arena) */
	const char *file;
	const char *kind;            /* NULL until known */
	const char *name;            /* "ns/name", NULL until known */
	size_t errors;               /* errors added for this document */
	size_t unknown;              /* unknown fields warned (cfg_warn_unknown) */
	char path[512];
	size_t path_len;
};

struct cfg_loc {
	int line, col;
};

static inline struct cfg_loc cfg_loc_of(const struct yn *n)
{
	struct cfg_loc l = { n ? n->line : 0, n ? n->col : 0 };
	return l;
}

/* yaml.c: parse a whole stream; calls on_doc for each non-empty document
 * root (tree memory is freed after the callback). YAML syntax errors become
 * diagnostics. Returns the number of errors added. */
typedef void (*cfg_doc_cb)(void *user, struct yn *root, struct sn_arena *tmp);
size_t cfg_yaml_parse(const char *file, const char *text, size_t len, struct sn_diags *d,
		      cfg_doc_cb on_doc, void *user);
/* Same, for text that starts at line line_base + 1 of file (added). */
size_t cfg_yaml_parse_at(const char *file, const char *text, size_t len, int line_base, struct sn_diags *d,
			 cfg_doc_cb on_doc, void *user);

const char *yn_type_str(const struct yn *n);
/* Value of key in a mapping, or NULL. */
struct yn *yn_get(const struct yn *map, const char *key);

/* Field path stack: push returns the length to pop back to. */
size_t cfg_path_push(struct cfg_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cfg_path_pop(struct cfg_ctx *c, size_t len);
/* Path with one more segment, copied into the arena (for translation-time errors). */
char *cfg_path_dup(struct cfg_ctx *c, const char *suffix);

void cfg_err(struct cfg_ctx *c, const struct yn *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void cfg_warn(struct cfg_ctx *c, const struct yn *at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Warnings for a key Sinew does not read: known-but-not-implemented vs unknown. */
void cfg_warn_unimplemented(struct cfg_ctx *c, const struct yn *key, const char *what);
void cfg_warn_unknown(struct cfg_ctx *c, const struct yn *key);
/* A security policy with an unknown field since unknown0 (c->unknown
 * then) cannot be enforced as written: warns that what it selects is
 * denied (fail closed; docs/security.md) and returns 1, else 0. */
int cfg_security_unenforceable(struct cfg_ctx *c, const struct yn *at, size_t unknown0, const char *denial);

/* The one rule for values a resource cannot do without: a value is missing
 * when absent, null, an empty string, or an empty list/mapping where want
 * is that collection type (a value of another type is present, and its
 * getter reports the type; want YN_NULL: an empty collection is present). cfg_require reports a missing key of map as
 * an error at map.key ("KEY is required: WHAT") and returns NULL, else
 * the value node. Every kind checks its required fields with it. */
int cfg_missing(const struct yn *v, enum yn_type want);
const struct yn *cfg_require(struct cfg_ctx *c, const struct yn *map, const char *key, enum yn_type want,
			     const char *what);

/* Typed getters. Each reads node v at the current path (the caller pushed
 * the field name). Null means "absent": they return 1 and leave *out.
 * Wrong type or out of range: an error naming what was expected, return -1.
 * Success: 0. */
int cfg_get_str(struct cfg_ctx *c, const struct yn *v, size_t max, char **out);
int cfg_get_uint(struct cfg_ctx *c, const struct yn *v, uint64_t min, uint64_t max, uint64_t *out);
int cfg_get_double(struct cfg_ctx *c, const struct yn *v, double min, double max, double *out);
int cfg_get_bool(struct cfg_ctx *c, const struct yn *v, int *out);
int cfg_get_duration(struct cfg_ctx *c, const struct yn *v, uint32_t *ms_out);
/* Type checks only: 0 if v has the type, 1 if null, -1 (error added) otherwise. */
int cfg_want_map(struct cfg_ctx *c, const struct yn *v);
int cfg_want_seq(struct cfg_ctx *c, const struct yn *v, size_t max_items);
/* map<string,string> (labels, selectors, header ops). */
int cfg_get_labels(struct cfg_ctx *c, const struct yn *v, struct sn_labels *out);
/* sequence of strings. */
int cfg_get_str_list(struct cfg_ctx *c, const struct yn *v, size_t max_len, char ***out, size_t *n_out,
		     struct cfg_loc **locs_out);

/* ---- typed resource bodies ------------------------------------------ */

struct cfg_svc_port {
	char *name;
	uint16_t port;
	uint16_t target_port;        /* 0: same as port */
	char *protocol;              /* TCP */
	char *app_protocol;
};

struct cfg_service {
	struct sn_labels labels;     /* metadata.labels */
	struct sn_labels selector;
	int has_selector;
	struct cfg_svc_port *ports;
	size_t n_ports;
};

struct cfg_named_port {
	char *name;
	uint16_t port;
	struct cfg_loc loc;          /* of the name */
};

struct cfg_workload {
	struct sn_labels labels;     /* spec.labels, else metadata.labels */
	char *address;
	struct cfg_loc address_loc;
	struct cfg_named_port *ports;
	size_t n_ports;
	char *service_account;
	uint32_t weight;
	char *locality;              /* "region/zone/subzone"; NULL: from the topology labels */
};

/* A match as loaded; string matches have no compiled regex yet. */
struct cfg_match {
	struct sn_route_match m;
	struct sn_labels source_labels;
	int has_source_labels;
	char *source_namespace;
	char **gateways;
	size_t n_gateways;
};

struct cfg_dest {
	char *host;
	struct cfg_loc host_loc;
	char *subset;
	struct cfg_loc subset_loc;
	uint16_t port;               /* 0: not given */
	int has_weight;
	uint32_t weight;
	char *path;                  /* "spec.http[0].route[1].destination" */
	struct sn_header_ops req, resp;
	double mirror_pct;           /* mirrors[]: percentage.value (default 100) */
	char *ref_ns;                /* a Gateway API backendRef to another namespace: the Service
				      * is host there, if a ReferenceGrant of ref_ns allows it */
};

struct cfg_http {
	char *name;
	char *path;                  /* "spec.http[0]" */
	struct cfg_loc loc;
	struct cfg_match *matches;
	size_t n_matches;
	struct cfg_dest *dests;
	size_t n_dests;
	uint32_t timeout_ms;
	struct sn_retry_policy retry;
	struct sn_fault fault;
	struct sn_header_ops req, resp;
	char *rewrite_uri;
	char *rewrite_regex, *rewrite_sub;   /* rewrite.uriRegexRewrite: match, rewrite */
	char *rewrite_authority;
	int direct_status;
	char *direct_body;
	int has_redirect;
	struct sn_redirect redirect;
	struct sn_cors *cors;
	struct cfg_dest *mirrors;    /* mirror (one) or mirrors[] */
	size_t n_mirrors;
	int rewrite_full;            /* (HTTPRoute) rewrite_uri replaces the whole path */
	int no_backend;              /* (HTTPRoute) no backendRef can be used: answers 500 */
};

/* (HTTPRoute) a parentRef: a Gateway API Gateway, or a Service (GAMMA:
 * the mesh's calls to it). */
struct cfg_parent_ref {
	int service;                 /* kind Service; else kind Gateway */
	char *ns;                    /* NULL: the route's */
	char *name;
	char *section;               /* sectionName: a listener's name; NULL: any */
	uint16_t port;               /* 0: any */
	struct cfg_loc loc;
};

/* A VirtualService's tls[] route (TLS passed through at a gateway, by
 * the ClientHello's server name) or tcp[] route (a sidecar's opaque TCP,
 * by port; no sniHosts). */
struct cfg_tls_match {
	char **sni_hosts;            /* lower case; "*.suffix" allowed */
	size_t n_sni;
	uint16_t port;               /* 0: any */
	char **gateways;             /* replaces the VirtualService's for this match */
	size_t n_gateways;
};

struct cfg_tls_route {
	char *path;                  /* "spec.tls[0]" */
	struct cfg_loc loc;
	struct cfg_tls_match *matches;
	size_t n_matches;
	struct cfg_dest *dests;
	size_t n_dests;
};

struct cfg_vs {
	char **hosts;
	struct cfg_loc *host_locs;
	size_t n_hosts;
	int for_mesh;                /* gateways absent or includes "mesh" */
	char **gateways;             /* spec.gateways as written ("mesh", "name", "ns/name") */
	struct cfg_loc *gateway_locs;
	size_t n_gateways;
	struct cfg_http *http;
	size_t n_http;
	struct cfg_tls_route *tls;
	size_t n_tls;
	struct cfg_tls_route *tcp;
	size_t n_tcp;
	/* (HTTPRoute, converted by gateway_api.c: hosts are its hostnames,
	 * for_mesh is 0, each http[] is one match of one rule) */
	int gateway_api;
	struct cfg_parent_ref *parents;
	size_t n_parents;
};

/* TrafficPolicy fields Sinew implements, with "set" flags for Istio's
 * merge (a subset's loadBalancer / connectionPool replace the rule's). */
/* loadBalancer.localityLbSetting (Istio's; translate.c gives each
 * endpoint its priority and weight). */
struct cfg_locality_dist {
	char *from;                  /* "region/zone/subzone", '*' allowed */
	char **to;                   /* localities */
	uint32_t *weights;           /* percent, summing to 100 */
	size_t n_to;
};

struct cfg_locality {
	int set;                     /* localityLbSetting given */
	int disabled;                /* enabled: false */
	struct cfg_locality_dist *distribute;
	size_t n_distribute;
	char **failover_from, **failover_to;   /* regions */
	size_t n_failover;
	char **failover_priority;    /* labels, most significant first */
	size_t n_failover_priority;
};

struct cfg_port_policy;

struct cfg_policy {
	/* portLevelSettings (the rule's or a subset's): a port's fields
	 * replace these for that port, as Istio merges them */
	struct cfg_port_policy *ports;
	size_t n_ports;
	struct cfg_locality locality;
	uint32_t warmup_ms;                 /* 0: none */
	uint32_t warmup_min_pct;
	double warmup_aggression;
	int has_lb;
	enum sn_lb_policy lb;
	int has_pool;
	uint32_t connect_timeout_ms;
	uint32_t max_connections;
	uint32_t max_pending;
	uint32_t max_requests_per_conn;
	uint32_t idle_timeout_ms;
	int h2_upgrade;              /* connectionPool.http.h2UpgradePolicy: 1 UPGRADE, -1 DO_NOT_UPGRADE, 0 DEFAULT */
	int has_tls;
	enum sn_cluster_tls tls_mode;
	struct sn_origin_tls origin;        /* SIMPLE, MUTUAL */
	struct sn_outlier_policy outlier;   /* enabled: the policy has outlierDetection */
	struct sn_hash_policy hash;         /* with lb RING_HASH / MAGLEV */
};

struct cfg_port_policy {
	uint16_t port;               /* the Service port */
	struct cfg_policy p;         /* its own ports: none */
};

struct cfg_subset {
	char *name;
	struct cfg_loc loc;
	struct sn_labels labels;
	struct cfg_policy policy;
};

struct cfg_dr {
	char *host;
	struct cfg_loc host_loc;
	struct cfg_policy policy;
	struct cfg_subset *subsets;
	size_t n_subsets;
};

/* ServiceEntry as loaded (serviceentry.c). */
enum cfg_se_resolution {
	CFG_SE_NONE = 0,             /* Istio's default */
	CFG_SE_STATIC,
	CFG_SE_DNS,
	CFG_SE_DNS_ROUND_ROBIN,
};

const char *cfg_se_resolution_str(enum cfg_se_resolution r);

struct cfg_se_endpoint {
	struct cfg_workload w;       /* address as written: an IP or (DNS) a host name */
	char *ip;                    /* what to connect to: the IP literal, 127.0.0.1 for
				      * "localhost"; NULL: needs DNS (not implemented) */
};

struct cfg_service_entry {
	/* ports and workloadSelector in a Service's shape, so translation
	 * builds each host like a Service: ports[].app_protocol is the Istio
	 * protocol in lower case; selector is workloadSelector.labels. */
	struct cfg_service svc;
	char **hosts;                /* lower case, no trailing dot, as written otherwise */
	struct cfg_loc *host_locs;
	size_t n_hosts;
	char **addresses;            /* VIPs and CIDRs, validated */
	size_t n_addresses;
	int mesh_internal;           /* location MESH_INTERNAL */
	enum cfg_se_resolution resolution;
	struct cfg_se_endpoint *endpoints;
	size_t n_endpoints;
};

/* The address to connect to for a name without DNS: name itself if it is
 * an IP literal, "127.0.0.1" for "localhost", else NULL. */
const char *cfg_literal_ip(const char *name);

/* AuthorizationPolicy as loaded (authz.c): rules already compiled, in the
 * set's arena; translation copies the policies that select a proxy. */
struct cfg_authz {
	int has_selector;
	struct sn_labels selector;
	int ignored;                 /* targetRef: never applies to a sidecar */
	int unenforceable;           /* a field Sinew does not know: denies what it selects */
	enum sn_authz_action action;
	char *provider;              /* CUSTOM: provider.name */
	struct sn_authz_rule *rules;
	size_t n_rules;
};

/* The mesh config (meshconfig.c). */
struct cfg_mesh {
	struct sn_ext_authz *providers;
	size_t n_providers;
	int enable_tracing;          /* enableTracing (default true) */
	char **default_tracers;      /* defaultProviders.tracing */
	size_t n_default_tracers;
	double sampling;             /* defaultConfig.tracing.sampling; < 0: not given */
	int registry_only;           /* outboundTrafficPolicy.mode REGISTRY_ONLY (default ALLOW_ANY) */
	int registry_only_line;
};

/* Telemetry (telemetry.c): its first tracing entry. */
struct cfg_telemetry {
	int has_selector;
	struct sn_labels selector;
	int ignored;                 /* targetRef(s): a Gateway's, never a sidecar's */
	int has_tracing;
	char **providers;            /* providers[].name; NULL: not given */
	size_t n_providers;
	int providers_set;
	double sampling;             /* randomSamplingPercentage; < 0: not given */
	int no_reporting;            /* disableSpanReporting; -1: not given */
	struct sn_trace_tag *tags;   /* customTags; NULL: not given */
	size_t n_tags;
	int tags_set;
};
void *cfg_parse_telemetry(struct cfg_ctx *c, const struct yn *spec);

/* RequestAuthentication as loaded (reqauthn.c): its rules are the
 * snapshot's form already (strings in the config arena). */
struct cfg_reqauthn {
	int has_selector;
	struct sn_labels selector;
	int ignored;                 /* targetRef: a Gateway's, never a sidecar's */
	int unenforceable;           /* a field Sinew does not know: refuses its workloads' requests */
	struct sn_jwt_rule *rules;
	size_t n_rules;
};

/* PeerAuthentication as loaded (peerauth.c). */
struct cfg_peer_auth {
	int unenforceable;           /* a field Sinew does not know: denies its workloads' requests */
	int has_selector;
	struct sn_labels selector;
	enum sn_mtls_mode mode;      /* UNSET: inherit */
	struct sn_mtls_port *ports;  /* portLevelMtls; origin unset */
	size_t n_ports;
};

/* Kind parsers (service.c, virtualservice.c, destinationrule.c): read spec
 * into a typed body allocated in c->a. Return NULL only on allocation
 * failure; problems are diagnostics counted in c->errors. */
struct cfg_service *cfg_parse_service(struct cfg_ctx *c, const struct yn *spec, const struct sn_labels *meta_labels);
struct cfg_workload *cfg_parse_workload(struct cfg_ctx *c, const struct yn *spec, const struct sn_labels *meta_labels);
/* The body of cfg_parse_workload into w (also a ServiceEntry's
 * endpoints[i]); names_ok: the address may be a host name. meta_labels
 * may be NULL. Returns 0, or -1 on allocation failure. */
int cfg_parse_workload_body(struct cfg_ctx *c, const struct yn *spec, const struct sn_labels *meta_labels,
			    int names_ok, struct cfg_workload *w);
struct cfg_service_entry *cfg_parse_service_entry(struct cfg_ctx *c, const struct yn *spec);
struct cfg_vs *cfg_parse_virtual_service(struct cfg_ctx *c, const struct yn *spec);

/* gateway.c: Istio's Gateway */
struct cfg_gw_host {
	char *ns;                    /* VirtualServices of this namespace only ("." the Gateway's); NULL: any */
	char *host;                  /* "*", "*.suffix" or a name; lower case */
};

struct cfg_gw_server {
	char *name;
	uint16_t port;
	char *protocol;              /* upper case */
	char *port_name;
	struct cfg_gw_host *hosts;
	size_t n_hosts;
	struct cfg_loc loc;
	int https_redirect;
	int has_tls_settings;        /* TLS fields Sinew does not use on this server (warned) */
	const struct yn *tls_at;     /* at load only */
	const struct yn *mode_at;    /* at load only */
	char *tls_mode;              /* tls.mode as written, upper case; NULL: none */
	char *cert_file, *key_file, *ca_file;   /* serverCertificate, privateKey, caCertificates */
	char *credential;            /* credentialName */
	int tls_unenforceable;       /* MUTUAL with checks Sinew does not make (subjectAltNames...) */
	int served;                  /* a protocol Sinew's gateways serve (else warned, not opened) */
	int passthrough;             /* TLS or HTTPS with tls.mode PASSTHROUGH: routed by SNI */
	int tcp;                     /* TCP (or MONGO, MYSQL, REDIS): opaque bytes, tcp[] routes */
	unsigned route_kinds;        /* a Gateway API listener: the route kinds that attach
				      * (1u << SN_KIND_...) */
};

/* The Gateway API's ReferenceGrant: routes (or Gateways) of other
 * namespaces may name the Services (or Secrets) of its own. */
struct cfg_grant_from {
	int kind;                    /* SN_KIND_HTTP_ROUTE..., SN_KIND_K8S_GATEWAY */
	char *ns;
};

struct cfg_grant_to {
	char *kind;                  /* "Service" or "Secret" */
	char *name;                  /* NULL: any */
};

struct cfg_reference_grant {
	struct cfg_grant_from *from;
	size_t n_from;
	struct cfg_grant_to *to;
	size_t n_to;
};

struct cfg_gateway {
	struct sn_labels selector;
	int has_selector;
	struct cfg_gw_server *servers;
	size_t n_servers;
	/* (the Gateway API's Gateway, gateway_api.c) listeners as servers;
	 * served by gateway proxies of its namespace labelled
	 * gateway.networking.k8s.io/gateway-name: NAME (the selector);
	 * HTTPRoutes bind to it, VirtualServices do not */
	int gateway_api;
};

struct cfg_gateway *cfg_parse_gateway(struct cfg_ctx *c, const struct yn *spec);
/* gateway_api.c: the Gateway API's Gateway and HTTPRoute (name: the
 * resource's own name). */
struct cfg_gateway *cfg_parse_k8s_gateway(struct cfg_ctx *c, const struct yn *spec, const char *name);
/* An HTTPRoute, or with grpc a GRPCRoute (its method matches as paths). */
struct cfg_vs *cfg_parse_http_route(struct cfg_ctx *c, const struct yn *spec, const char *name, int grpc);
/* A TCPRoute (tcp[]), or with tls a TLSRoute (tls[], its hostnames the
 * server names). */
struct cfg_vs *cfg_parse_l4_route(struct cfg_ctx *c, const struct yn *spec, const char *name, int tls);
struct cfg_reference_grant *cfg_parse_reference_grant(struct cfg_ctx *c, const struct yn *spec);
/* Whether a ReferenceGrant of set in namespace to_ns lets a resource of
 * from_kind in from_ns name the to_kind ("Service", "Secret") called
 * name there. */
int cfg_reference_granted(const struct sn_resource *set_head, int from_kind, const char *from_ns, const char *to_ns,
			  const char *to_kind, const char *name);
/* 1 if parent ref p of an HTTPRoute of namespace route_ns names the
 * Gateway API Gateway gw_ns/gw_name. */
int cfg_parent_names_gateway(const struct cfg_parent_ref *p, const char *route_ns, const char *gw_ns,
			     const char *gw_name);
/* The label a gateway proxy carries to serve a Gateway API Gateway (Istio's). */
#define CFG_GATEWAY_NAME_LABEL "gateway.networking.k8s.io/gateway-name"
/* virtualservice.c: a host as VirtualServices write it ("*", "*.suffix", a name). */
int cfg_vs_host_ok(const char *h);
/* headers.remove (a list of names, lower-cased) into ops. */
void cfg_parse_header_remove(struct cfg_ctx *c, const struct yn *v, struct sn_header_ops *ops);
/* {set, add, remove} into ops, set's and add's values read by values (a
 * VirtualService's map, an HTTPRoute's list of {name, value}). */
void cfg_parse_header_ops(struct cfg_ctx *c, const struct yn *v, struct sn_header_ops *ops,
			  int (*values)(struct cfg_ctx *, const struct yn *, struct sn_header_op **, size_t *));
/* 1 if ref, a name in the spec.gateways of a VirtualService of namespace
 * vs_ns ("name" or "ns/name"), names Gateway gw_ns/gw_name. */
int cfg_gateway_ref_names(const char *ref, const char *vs_ns, const char *gw_ns, const char *gw_name);
struct cfg_dr *cfg_parse_destination_rule(struct cfg_ctx *c, const struct yn *spec);
struct cfg_authz *cfg_parse_authorization_policy(struct cfg_ctx *c, const struct yn *spec);
struct cfg_peer_auth *cfg_parse_peer_authentication(struct cfg_ctx *c, const struct yn *spec);
struct cfg_reqauthn *cfg_parse_request_authentication(struct cfg_ctx *c, const struct yn *spec);
/* Linkerd's Server and HTTPLocalRateLimitPolicy as loaded (ratelimit.c). */
struct cfg_server {
	int has_selector;
	struct sn_labels selector;   /* podSelector.matchLabels */
	uint16_t port;               /* 0: by name */
	char *port_name;
	enum sn_server_access access;
	int unenforceable;
};
struct cfg_rate_limit {
	char *server;                /* targetRef.name: a Server of the same namespace */
	uint32_t total, identity;    /* requestsPerSecond; 0: none */
	struct sn_rl_override *overrides;
	size_t n_overrides;
};
struct cfg_server *cfg_parse_server(struct cfg_ctx *c, const struct yn *spec);
struct cfg_rate_limit *cfg_parse_rate_limit(struct cfg_ctx *c, const struct yn *spec, const char *ns);
/* ConfigMap istio-system/istio (meshconfig.c): data, and the loaded text
 * data's positions point into (for where data.mesh's own text starts). */
struct cfg_mesh *cfg_parse_config_map(struct cfg_ctx *c, const struct yn *data, const char *src, size_t src_len);
/* A deep copy of a provider into a snapshot's arena (cluster unresolved). */
int cfg_ext_authz_copy(struct sn_arena *a, const struct sn_ext_authz *in, struct sn_ext_authz *out);
/* selector: {matchLabels} of a security policy (authz.c). */
void cfg_parse_selector(struct cfg_ctx *c, const struct yn *v, struct sn_labels *out, int *has);
/* A deep copy of a loaded jwtRule into a snapshot's arena. 0 or SN_ENOMEM. */
int cfg_jwt_rule_copy(struct sn_arena *a, const struct sn_jwt_rule *in, const char *origin, struct sn_jwt_rule *out);

/* authz.c: deep copy of a compiled policy's rules into arena a (the
 * snapshot's). Returns 0 or -1 (out of memory). */
int cfg_authz_copy_rules(struct sn_arena *a, const struct sn_authz_rule *in, size_t n, struct sn_authz_rule **out);

/* match.c */
/* Reads an Istio StringMatch {exact|prefix|regex}; "{}" gives PRESENT when
 * allow_present. Validates regexes (compiles and frees). */
int cfg_parse_string_match(struct cfg_ctx *c, const struct yn *v, int allow_present, struct sn_str_match *out);
/* Compiles m->value into m->re (anchored, extended, icase if set). Returns
 * 0, or SN_EINVAL with a message in err. re is malloc'd: free with
 * regfree + free. */
int cfg_regex_compile(const char *src, int icase, regex_t **out, char *err, size_t errlen);
/* A rewrite's pattern (VirtualService rewrite.uriRegexRewrite.match),
 * unanchored with submatches, and its substitution sub checked (\0 to \9
 * of groups the pattern has, and \\): groups[k] is the regmatch_t index of the
 * source's group k (groups[0] = 0, the whole match). */
int cfg_regex_compile_rewrite(const char *src, const char *sub, regex_t **out, unsigned char groups[10], char *err,
			      size_t errlen);

/* The snapshot as allocated: the public part plus what unref must
 * release besides the arena (compiled regexes). */
struct cfg_snapshot {
	struct sn_snapshot pub;
	regex_t **regexes;
	size_t n_regexes;
	size_t cap_regexes;
};


#endif
