#ifndef SINEW_CONFIG_H
#define SINEW_CONFIG_H

/* Configuration: Kubernetes-style resources (Service, WorkloadEntry, Istio
 * VirtualService, DestinationRule and ServiceEntry) loaded from YAML, validated, and
 * translated into an immutable snapshot that a proxy runs.
 *
 * The same code serves sinew-proxy's file mode and sinewd's admission
 * ("same-code admission", DESIGN.md §3): what validates here translates
 * for every proxy.
 *
 * Flow:
 *   sn_config_set_init(&set);
 *   sn_config_load_file(&set, path, &diags);        // parse + validate shape
 *   sn_config_translate(&set, &identity, &diags, &snap);  // resolve refs
 *   ... sn_snapshot_ref / sn_snapshot_unref ...
 */

#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "sinew/arena.h"
#include "sinew/common.h"

/* ---- diagnostics ---------------------------------------------------- */

enum sn_diag_severity {
	SN_DIAG_ERROR = 0,   /* the resource (in file mode: the file) is refused */
	SN_DIAG_WARNING = 1, /* accepted; e.g. a field Sinew does not implement yet */
};

/* One message about one place in one file. Strings are owned by the
 * sn_diags that holds it. */
struct sn_diag {
	enum sn_diag_severity severity;
	char *file;   /* path as given, or "-" */
	int line;     /* 1-based; 0 if unknown */
	int column;   /* 1-based; 0 if unknown */
	char *kind;   /* resource kind, may be NULL (e.g. YAML syntax error) */
	char *name;   /* "namespace/name", may be NULL */
	char *field;  /* "spec.http[0].route[1].destination.subset", may be NULL */
	char *message;/* what is wrong and what to do */
};

struct sn_diags {
	struct sn_diag *v;
	size_t n;
	size_t cap;
	size_t errors;
	size_t warnings;
};

void sn_diags_init(struct sn_diags *d);
void sn_diags_free(struct sn_diags *d);
/* Appends a message; copies every string. */
void sn_diags_add(struct sn_diags *d, enum sn_diag_severity sev, const char *file, int line,
		  int column, const char *kind, const char *name, const char *field,
		  const char *fmt, ...) __attribute__((format(printf, 9, 10)));
/* "FILE:LINE:COL: error: KIND NS/NAME: FIELD: MESSAGE" into buf. */
void sn_diag_format(const struct sn_diag *d, char *buf, size_t size);
/* Writes every diagnostic, one per line, to f. */
void sn_diags_print(const struct sn_diags *d, FILE *f);

/* ---- resources as loaded -------------------------------------------- */

enum sn_resource_kind {
	SN_KIND_SERVICE = 0,
	SN_KIND_WORKLOAD_ENTRY,
	SN_KIND_VIRTUAL_SERVICE,
	SN_KIND_DESTINATION_RULE,
	SN_KIND_AUTHORIZATION_POLICY,   /* (added) security.istio.io; docs/security.md */
	SN_KIND_PEER_AUTHENTICATION,    /* (added) security.istio.io */
	SN_KIND_SERVICE_ENTRY,          /* (added) networking.istio.io; docs/configuration.md */
	SN_KIND_REQUEST_AUTHENTICATION, /* (added) security.istio.io; docs/security.md (JWT) */
	SN_KIND_CONFIG_MAP,             /* (added) v1 ConfigMap istio-system/istio: the mesh config
					 * (extensionProviders); docs/security.md */
	SN_KIND_SERVER,                 /* (added) policy.linkerd.io Server: a workload port (ratelimit.c) */
	SN_KIND_RATE_LIMIT,             /* (added) policy.linkerd.io HTTPLocalRateLimitPolicy */
	SN_KIND_TELEMETRY,              /* (added) telemetry.istio.io Telemetry: tracing (telemetry.c) */
	SN_KIND_GATEWAY,                /* (added) networking.istio.io Gateway: a gateway proxy's
					 * listeners (gateway.c) */
	SN_KIND_HTTP_ROUTE,             /* (added) gateway.networking.k8s.io HTTPRoute (gateway_api.c) */
	SN_KIND_K8S_GATEWAY,            /* (added) gateway.networking.k8s.io Gateway: named
					 * "Gateway.gateway.networking.k8s.io" (kubectl's kind.group)
					 * apart from Istio's Gateway (gateway_api.c) */
	SN_KIND_GRPC_ROUTE,             /* (added) gateway.networking.k8s.io GRPCRoute (gateway_api.c) */
	SN_KIND_TCP_ROUTE,              /* (added) gateway.networking.k8s.io TCPRoute */
	SN_KIND_TLS_ROUTE,              /* (added) gateway.networking.k8s.io TLSRoute */
	SN_KIND_REFERENCE_GRANT,        /* (added) gateway.networking.k8s.io ReferenceGrant */
	SN_KIND__COUNT,
};

/* The Gateway API's route kinds: loaded as a cfg_vs (gateway_api.c). */
static inline int sn_kind_is_gwapi_route(int k)
{
	return k == SN_KIND_HTTP_ROUTE || k == SN_KIND_GRPC_ROUTE || k == SN_KIND_TCP_ROUTE ||
	       k == SN_KIND_TLS_ROUTE;
}

const char *sn_resource_kind_str(enum sn_resource_kind k);
/* The kind a document's kind and apiVersion name (kind as written, or as
 * sn_resource_kind_str gives it), or -1. */
int sn_kind_of(const char *kind, const char *api_version);

struct sn_label {
	char *key;
	char *value;
};

struct sn_labels {
	struct sn_label *v;
	size_t n;
};

/* True if every label in selector is present with the same value in set. */
int sn_labels_match(const struct sn_labels *selector, const struct sn_labels *set);
/* Value of key in set, or NULL. */
const char *sn_labels_get(const struct sn_labels *set, const char *key);
/* A copy of src in dst: on the heap (free with sn_labels_free; on
 * SN_ENOMEM, what was copied is freed too), or in arena a (sn_arena.h;
 * -1 without memory). */
int sn_labels_dup(struct sn_labels *dst, const struct sn_labels *src);
void sn_labels_free(struct sn_labels *l);
struct sn_arena;
int sn_labels_arena_dup(struct sn_arena *a, struct sn_labels *dst, const struct sn_labels *src);

/* A loaded resource. Its typed body is private to the config library; the
 * fields here are what every consumer (status, get, dump) needs. The YAML
 * text of the document is kept so sinewd can store and return it. */
struct sn_resource {
	enum sn_resource_kind kind;
	char *api_version;
	char *name;
	char *namespace_;   /* "default" when absent */
	char *file;
	int line;           /* line of the document's first key */
	void *spec;         /* typed, private to src/config */
	int invalid;        /* had errors: kept only in a set with keep_invalid (analysis) */
	struct sn_resource *next;
	/* (added for sinewd) The resource's own YAML text, in the set's arena:
	 * lines text_line.. of file, columns as there (what preceded the
	 * resource on its first line, "--- " or "- ", is blanked). Loading it
	 * again with sn_config_load_text_at(.., text_line, ..) reports the same
	 * file:line:column. NULL only if memory ran out. */
	char *text;
	size_t text_len;
	int text_line;
};

/* A set of resources, e.g. one file or sinewd's whole store. Owns its
 * resources (in its arena). */
struct sn_config_set {
	struct sn_arena arena;
	struct sn_resource *head;
	struct sn_resource **tail;
	size_t count;
	/* Keep resources that had errors too, marked invalid (as parsed as
	 * far as it went), so that an analysis can check the rest of them;
	 * never for a set that is translated as is. */
	int keep_invalid;
};

void sn_config_set_init(struct sn_config_set *set);
void sn_config_set_free(struct sn_config_set *set);

/* Parses multi-document YAML from a file (or from text with a display
 * name) and appends every well-formed resource to set. Each problem is a
 * diagnostic with file:line and field; unknown fields are warnings. A
 * document with an error is not appended; others are. Returns 0 if no
 * error was added, SN_EINVAL otherwise (SN_EIO if the file can't be read). */
int sn_config_load_file(struct sn_config_set *set, const char *path, struct sn_diags *d);
int sn_config_load_text(struct sn_config_set *set, const char *display_name, const char *text,
			size_t len, struct sn_diags *d);
/* (added for sinewd) Same, for text that is lines first_line.. of the file
 * display_name: diagnostics and resource lines count from first_line. */
int sn_config_load_text_at(struct sn_config_set *set, const char *display_name, const char *text,
			   size_t len, int first_line, struct sn_diags *d);

/* (added) Kind by a name a person types: singular, plural or short name,
 * any case ("VirtualService", "virtualservices", "vs"; "dr", "svc", "we").
 * Returns the kind, or -1 if unknown. */
int sn_kind_lookup(const char *name);
/* (added) Lower-case plural of a kind ("virtualservices"), for URLs and messages. */
const char *sn_kind_plural(enum sn_resource_kind k);
/* (added) Short name of a kind ("vs", "dr", "svc", "we"). */
const char *sn_kind_short(enum sn_resource_kind k);

/* ---- the snapshot a proxy runs -------------------------------------- */

/* Who the proxy is: the translation is per proxy (sourceLabels, the
 * namespace short names resolve in). Borrowed. */
struct sn_proxy_identity {
	const char *service;          /* e.g. "productpage"; may be NULL */
	const char *namespace_;       /* default "default" */
	const struct sn_labels *labels;
	const char *service_account;  /* default "default" */
	const char *workload;         /* workload name; default service or "unknown" */
	const char *trust_domain;     /* default "cluster.local" */
	/* Names of ServiceEntries with resolution DNS (src/proxy/dns.c):
	 * translation asks, and a name not resolved yet gives no endpoint
	 * (and is queued for resolution). Fills out with IP literals; returns
	 * how many. Thread-safe. NULL: no resolver (sinewd): no endpoint. */
	size_t (*dns_lookup)(void *ctx, const char *name, char out[][48], size_t max);
	void *dns_ctx;
	int gateway;                  /* 1: a gateway proxy (sinew-proxy --gateway): it gets the
				       * listeners of the Gateways that select its labels;
				       * SN_GATEWAY_ANY: of every Gateway (admission and analysis
				       * check what any gateway would run) */
};

#define SN_GATEWAY_ANY 2

/* ---- host names (src/config/hostname.c) ---------------------------------- */

#define SN_HOST_NAME_MAX 253           /* a DNS name */
#define SN_CLUSTER_DOMAIN_MAX 100
#define SN_HOST_CAND_MAX 448           /* a name, ".NS.svc." and the cluster domain */

/* The cluster domain short names complete with ("cluster.local" unless
 * set): set once at start (sinew-proxy and sinewd --cluster-domain),
 * before any configuration is loaded. 0, or SN_EINVAL for what is not a
 * DNS name. */
int sn_cluster_domain_set(const char *domain);
const char *sn_cluster_domain(void);

/* What host (hl bytes; a trailing dot ignored) may stand for, most
 * specific first, lower-cased into out, as a client in namespace ns (NULL:
 * "default") has it resolved: "reviews" is reviews.NS.svc.DOMAIN, then
 * reviews as written (a ServiceEntry host); "reviews.other" is
 * reviews.other.svc.DOMAIN, then itself; "x.svc" is x.svc.DOMAIN, then
 * itself; a wildcard or a name of three labels or more is only itself.
 * Returns how many (1 or 2; 0 for an empty or over-long name). The first
 * that names something wins; when none does, out[*fallback] is the name
 * to report (the qualified one, but for "a.b", which stays a.b). */
size_t sn_host_candidates(const char *host, size_t hl, const char *ns, char out[2][SN_HOST_CAND_MAX],
			  size_t *fallback);

enum sn_str_match_kind {
	SN_MATCH_ANY = 0,   /* not set: matches everything */
	SN_MATCH_EXACT,
	SN_MATCH_PREFIX,
	SN_MATCH_REGEX,     /* whole-value match (RE2 semantics approximated by POSIX ERE) */
	SN_MATCH_PRESENT,   /* header/query present with any value ("{}" in Istio) */
	SN_MATCH_PATH_PREFIX, /* the Gateway API's PathPrefix: value (no trailing '/') is the
			       * path or its leading whole segments ("/a" takes /a, /a/b, not /ab) */
};

struct sn_str_match {
	enum sn_str_match_kind kind;
	char *value;        /* exact/prefix text; regex source */
	regex_t *re;        /* compiled, anchored; REGEX only */
	int ignore_case;
};

/* Returns 1 if s matches m. */
int sn_str_match_test(const struct sn_str_match *m, struct sn_str s);

struct sn_kv_match {
	char *name;         /* header names lowercase */
	struct sn_str_match m;
};

/* One HTTPMatchRequest: every condition set must hold. */
struct sn_route_match {
	char *name;
	struct sn_str_match uri;        /* on the path without the query */
	struct sn_str_match method;
	struct sn_str_match authority;  /* host[:port] as sent */
	struct sn_str_match scheme;
	struct sn_kv_match *headers;
	size_t n_headers;
	struct sn_kv_match *without_headers;
	size_t n_without_headers;
	struct sn_kv_match *query_params;
	size_t n_query_params;
	uint16_t port;                  /* 0: any */
};

struct sn_header_op {
	char *name;   /* lowercase */
	char *value;  /* NULL for remove */
};

/* Istio's Headers.HeaderOperations: set replaces, add appends, remove drops. */
struct sn_header_ops {
	struct sn_header_op *set;
	size_t n_set;
	struct sn_header_op *add;
	size_t n_add;
	struct sn_header_op *remove;
	size_t n_remove;
};

struct sn_route_dest {
	uint32_t cluster;        /* index into snapshot->clusters */
	uint32_t weight;         /* Istio semantics; a lone destination gets 100 */
	struct sn_header_ops request_ops;
	struct sn_header_ops response_ops;
};

/* retryOn bits */
#define SN_RETRY_5XX (1u << 0)
#define SN_RETRY_GATEWAY_ERROR (1u << 1)   /* 502, 503, 504 */
#define SN_RETRY_CONNECT_FAILURE (1u << 2)
#define SN_RETRY_REFUSED_STREAM (1u << 3)
#define SN_RETRY_RESET (1u << 4)
#define SN_RETRY_RETRIABLE_CODES (1u << 5)
/* gRPC status codes (Istio/Envoy retryOn names), read from a trailers-only
 * response's grpc-status */
#define SN_RETRY_GRPC_CANCELLED (1u << 6)            /* 1 */
#define SN_RETRY_GRPC_DEADLINE_EXCEEDED (1u << 7)    /* 4 */
#define SN_RETRY_GRPC_INTERNAL (1u << 8)             /* 13 */
#define SN_RETRY_GRPC_RESOURCE_EXHAUSTED (1u << 9)   /* 8 */
#define SN_RETRY_GRPC_UNAVAILABLE (1u << 10)         /* 14 */

struct sn_retry_policy {
	uint32_t attempts;           /* retries after the first try; Istio default 2 */
	uint32_t per_try_timeout_ms; /* 0: none */
	uint32_t retry_on;           /* SN_RETRY_* */
	uint16_t *status_codes;      /* retriable-status-codes */
	size_t n_status_codes;
};

struct sn_fault {
	uint32_t delay_ms;           /* 0: no delay fault */
	double delay_percent;        /* 0..100 */
	int abort_status;            /* 0: no abort fault */
	int abort_grpc;              /* abort.grpcStatus + 1 (0..16 as 1..17); 0: none */
	double abort_percent;
};

/* VirtualService http[].corsPolicy (src/proxy/filter_cors.c). */
struct sn_cors {
	struct sn_str_match *origins;   /* allowOrigins (and the deprecated allowOrigin, exact) */
	size_t n_origins;
	char *methods;               /* allowMethods joined by ", "; NULL: none */
	char *headers;               /* allowHeaders joined */
	char *expose;                /* exposeHeaders joined */
	char *max_age;               /* maxAge in seconds, as text; NULL: none */
	int credentials;             /* allowCredentials */
	int ignore_unmatched;        /* unmatchedPreflights: IGNORE (default FORWARD) */
};

/* VirtualService http[].redirect (Istio's HTTPRedirect). */
struct sn_redirect {
	int code;                    /* 0: no redirect; else redirectCode (default 301) */
	char *uri;                   /* replaces the whole path; NULL: kept */
	char *authority;             /* replaces the host; NULL: kept */
	char *scheme;                /* NULL: the request's */
	uint16_t port;               /* 0: not given */
	int derive_port;             /* 1 FROM_PROTOCOL_DEFAULT, 2 FROM_REQUEST_PORT, 0 not given */
};

/* Where a rule's requests are mirrored (VirtualService mirror, mirrors). */
struct sn_route_mirror {
	uint32_t cluster;            /* index into the snapshot's clusters */
	double percent;              /* of the rule's requests, 0-100 */
};

struct sn_http_route {
	char *name;                  /* http[].name or "VSNAME.http[i]" */
	char *origin;                /* "VirtualService ns/name, file:line" */
	char *vs_namespace, *vs_name;  /* its VirtualService (route metrics); NULL: a Service's default route */
	struct sn_route_match *matches;  /* any one must match; none = match all */
	size_t n_matches;
	struct sn_route_dest *dests;
	size_t n_dests;
	uint32_t total_weight;
	uint32_t timeout_ms;         /* 0: none (DESIGN.md §6) */
	struct sn_retry_policy retry;
	struct sn_fault fault;
	struct sn_header_ops request_ops;
	struct sn_header_ops response_ops;
	char *rewrite_uri;           /* replaces the matched prefix (or whole path for exact); NULL: none */
	int rewrite_full;            /* rewrite_uri replaces the whole path (HTTPRoute ReplaceFullPath) */
	/* rewrite.uriRegexRewrite: every match of rewrite_re in the path
	 * becomes rewrite_uri, its \N the source's group N (regmatch_t index
	 * rewrite_groups[N]); NULL: none */
	regex_t *rewrite_re;
	unsigned char rewrite_groups[10];
	char *rewrite_authority;     /* NULL: none */
	int direct_status;           /* directResponse.status; 0: none */
	char *direct_body;
	struct sn_redirect redirect; /* code != 0: the rule answers with a redirect */
	struct sn_cors *cors;        /* corsPolicy; NULL: none */
	struct sn_route_mirror *mirrors;   /* mirror / mirrors: copies sent, answers dropped */
	size_t n_mirrors;
};

/* A virtual host: the routes for requests whose authority names host. */
struct sn_sni_route;

struct sn_vhost {
	char *host;                  /* FQDN ("reviews.default.svc.cluster.local") or "*.suffix" */
	uint16_t port;               /* 0: every port of the host */
	struct sn_http_route *routes;
	size_t n_routes;
	/* a VirtualService's tcp[] route for this host and port (its sni is
	 * "*"): where a sidecar sends opaque TCP for it; NULL: the Service */
	struct sn_sni_route *tcp_route;
	/* its tls[] routes: TLS by the ClientHello's server name */
	struct sn_sni_route *tls_routes;
	size_t n_tls_routes;
};

enum sn_lb_policy {
	SN_LB_P2C_EWMA = 0,          /* default (DESIGN.md §6) */
	SN_LB_ROUND_ROBIN,
	SN_LB_LEAST_REQUEST,
	SN_LB_RANDOM,
	SN_LB_RING_HASH,             /* consistentHash (ringHash, the default) */
	SN_LB_MAGLEV,                /* consistentHash.maglev */
};

const char *sn_lb_policy_str(enum sn_lb_policy p);

/* DestinationRule loadBalancer.consistentHash: what a request is hashed
 * on (src/proxy/lb_hash.c). */
enum sn_hash_on {
	SN_HASH_HEADER = 1,          /* httpHeaderName */
	SN_HASH_COOKIE,              /* httpCookie {name, path, ttl} */
	SN_HASH_SOURCE_IP,           /* useSourceIp */
	SN_HASH_QUERY,               /* httpQueryParameterName */
};

struct sn_hash_policy {
	enum sn_hash_on on;          /* 0: no consistentHash */
	char *name;                  /* header (lower case), cookie or query parameter */
	char *cookie_path;           /* NULL: none */
	uint32_t cookie_ttl_s;       /* > 0: the proxy makes the cookie when the request has none */
	uint32_t ring_size;          /* ringHash minimumRingSize (default 1024) */
	uint32_t table_size;         /* maglev tableSize (default 65537, a prime) */
};

/* DestinationRule trafficPolicy.tls.mode. */
enum sn_cluster_tls {
	SN_CLUSTER_TLS_DISABLE = 0,
	SN_CLUSTER_TLS_SIMPLE,
	SN_CLUSTER_TLS_MUTUAL,
	SN_CLUSTER_TLS_ISTIO_MUTUAL,  /* mesh mTLS with SPIFFE identities */
};

/* An endpoint whose proxy holds a mesh identity (set by sinewd's
 * registry; Istio's own label): auto mTLS uses it. */
#define SN_TLS_MODE_LABEL "security.istio.io/tlsMode"

struct sn_endpoint {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char *address;               /* "10.0.0.5:9080", for logs and dumps */
	char *workload;              /* WorkloadEntry name */
	char *version;               /* labels["version"] or NULL */
	char *service_account;
	struct sn_labels labels;
	uint32_t weight;             /* 1 unless WorkloadEntry.weight (times a distribute share) */
	char *locality;              /* "region/zone/subzone" (WorkloadEntry locality, else its
				      * topology labels); NULL: unknown */
	uint8_t priority;            /* locality level, 0 first (cluster locality_lb);
				      * SN_PRIORITY_NONE: never picked (distribute gives it 0 %) */
};

#define SN_PRIORITY_NONE 255

/* DestinationRule trafficPolicy.outlierDetection (Istio's fields and
 * defaults, Envoy's meaning): src/proxy/outlier.c. */
struct sn_outlier_policy {
	int enabled;                 /* the rule has outlierDetection */
	uint32_t consecutive_5xx;    /* 0: off; default 5 */
	uint32_t consecutive_gateway;/* 502/503/504 in a row; 0 (default): off */
	uint32_t consecutive_local;  /* connect failures, resets, timeouts; with split_local only */
	int split_local;             /* splitExternalLocalOriginErrors */
	uint32_t interval_ms;        /* default 10 s */
	uint32_t base_ejection_ms;   /* default 30 s; times the ejections so far */
	uint32_t max_ejection_pct;   /* default 10; at least one endpoint may always go */
	uint32_t min_health_pct;     /* default 0: below it, ejections are ignored */
};

/* TLS the proxy originates to a cluster's endpoints (DestinationRule
 * tls.mode SIMPLE or MUTUAL; Istio's egress TLS origination). Files are
 * PEM; credentialName is looked up by the proxy (--credentials-dir). */
struct sn_origin_tls {
	char *ca_file;               /* caCertificates; NULL: the system's roots */
	char *cert_file, *key_file;  /* clientCertificate, privateKey (MUTUAL) */
	char *credential;            /* credentialName: NAME/tls.crt, tls.key, ca.crt */
	char *sni;                   /* NULL: the service's host */
	char **sans;                 /* subjectAltNames: names the server's certificate may have */
	size_t n_sans;
	int insecure;                /* insecureSkipVerify */
};

struct sn_cluster {
	char *name;                  /* Istio style: "outbound|9080|v1|reviews.default.svc.cluster.local" */
	char *service;               /* FQDN */
	char *service_name;          /* "reviews" */
	char *namespace_;
	uint16_t port;               /* service port */
	char *subset;                /* NULL: whole service */
	enum sn_lb_policy lb;
	uint32_t connect_timeout_ms; /* default 1000 */
	uint32_t max_connections;    /* connectionPool.tcp.maxConnections; 0: default bound */
	uint32_t max_pending;        /* connectionPool.http.http1MaxPendingRequests; 0: default */
	uint32_t max_requests_per_conn; /* 0: unlimited */
	uint32_t idle_timeout_ms;    /* connectionPool.http.idleTimeout; default 60000 */
	enum sn_cluster_tls tls_mode; /* trafficPolicy.tls.mode (subset's wins) */
	int tls_set;                 /* a DestinationRule set tls.mode; else auto mTLS by endpoint label */
	struct sn_origin_tls origin; /* tls_mode SIMPLE or MUTUAL */
	int origin_slot;             /* the proxy's client context for origin: 1 + its slot, 0 none;
				      * written by the proxy (origin_tls.c) before it publishes the
				      * snapshot, read-only after */
	uint32_t warmup_ms;          /* loadBalancer.warmupDurationSecs / warmup.duration; 0: none */
	uint32_t warmup_min_pct;     /* warmup.minimumPercent (default 10) */
	double warmup_aggression;    /* warmup.aggression (default 1.0) */
	int locality_lb;             /* endpoints have locality priorities (lb.c picks by level) */
	int locality_shares;         /* distribute: weights are the localities' shares (picked by
				      * weight alone, so the shares hold) */
	uint8_t n_priorities;
	int http2;                   /* endpoints speak HTTP/2: the port is http2, grpc or grpc-web */
	struct sn_outlier_policy outlier;
	struct sn_hash_policy hash;  /* lb RING_HASH or MAGLEV */
	struct sn_endpoint *endpoints;
	size_t n_endpoints;
	uint64_t weight_total;       /* of the endpoints' weights */
	int weighted;                /* the endpoints' weights differ (WorkloadEntry weight) */
};

/* A Service as the registry knows it, for name resolution and defaults. */
struct sn_service_port {
	char *name;
	uint16_t port;
	uint16_t target_port;
	char *protocol;              /* appProtocol or from the name ("http", "grpc", "tcp"...) */
	uint32_t default_cluster;    /* index of the subset-less cluster for this port */
};

/* A Service, or one host of a ServiceEntry (added): its fqdn is the host
 * as written (resolved like a VirtualService host), its clusters and
 * vhosts are built exactly like a Service's. */
struct sn_service {
	char *name;                  /* Service name; a ServiceEntry's host */
	char *namespace_;
	char *fqdn;
	struct sn_service_port *ports;
	size_t n_ports;
	char *service_entry;         /* "ns/name" of the ServiceEntry; NULL for a Service */
	char *resolution;            /* ServiceEntry: "NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN" */
	int mesh_internal;           /* ServiceEntry: location MESH_INTERNAL */
	char **addresses;            /* ServiceEntry: spec.addresses (VIPs/CIDRs, not captured yet) */
	size_t n_addresses;
};

/* ---- security policy (added; docs/security.md) ----------------------- */

/* RequestAuthentication (src/config/reqauthn.c; checked by the proxy's
 * filter_jwt.c): one jwtRules[] entry. A JWK's fields are kept as the
 * JWKS wrote them (base64url), validated at load. */
struct sn_jwt_key {
	char *kty;                   /* "RSA", "EC", "OKP" */
	char *kid;                   /* NULL: none */
	char *alg;                   /* NULL: any the key type allows */
	char *crv;                   /* EC: "P-256", "P-384"; OKP: "Ed25519" */
	char *n, *e;                 /* RSA */
	char *x, *y;                 /* EC (x, y), OKP (x) */
};

struct sn_jwt_from {
	char *name;                  /* header name, lower case */
	char *prefix;                /* e.g. "Bearer "; "" for none */
};

struct sn_jwt_rule {
	char *origin;                /* "RequestAuthentication ns/name, file:line" */
	char *issuer;
	char **audiences;            /* none: any */
	size_t n_audiences;
	struct sn_jwt_key *keys;
	size_t n_keys;
	char *jwks_uri;              /* not fetched yet: such a rule's tokens fail (fail closed) */
	struct sn_jwt_from *headers; /* where tokens are looked for; none of the three: */
	size_t n_headers;            /* Authorization: Bearer and ?access_token= (Istio) */
	char **params;
	size_t n_params;
	char **cookies;
	size_t n_cookies;
	int forward;                 /* forwardOriginalToken: keep it in the request */
	struct sn_header_ops strip;  /* without forward: the token's headers, removed */
	char *payload_header;        /* outputPayloadToHeader (lower case); NULL: none */
	struct sn_header_op *claim_headers;   /* outputClaimToHeaders: name = header, value = claim */
	size_t n_claim_headers;
};


/* One extensionProviders[] entry of the mesh config (ConfigMap
 * istio-system/istio, data.mesh, as Istio's MeshConfig): an external
 * authorizer, envoyExtAuthzHttp or envoyExtAuthzGrpc, for CUSTOM
 * AuthorizationPolicies (the proxy's filter_extauthz.c); or a tracer,
 * zipkin or opentelemetry (OTLP over HTTP, JSON), that spans are exported
 * to (the proxy's trace.c). src/config/meshconfig.c.
 * Header names are lower case; patterns as AuthorizationPolicy's strings
 * ("x-*", "*-id", exact). */
enum sn_ext_authz_proto { SN_EXT_AUTHZ_HTTP = 0, SN_EXT_AUTHZ_GRPC, SN_EXT_TRACE_ZIPKIN, SN_EXT_TRACE_OTLP };
#define SN_EXT_IS_TRACER(p) ((p)->proto == SN_EXT_TRACE_ZIPKIN || (p)->proto == SN_EXT_TRACE_OTLP)

struct sn_ext_authz {
	char *name;
	char *origin;                /* "extensionProviders[N] (ConfigMap istio-system/istio, file:line)" */
	enum sn_ext_authz_proto proto;
	char *service;               /* [NS/]HOST as written */
	uint16_t port;
	uint32_t timeout_ms;         /* default 600 s, as Istio's */
	int fail_open;               /* failOpen: an error allows (default: denies) */
	int status_on_error;         /* statusOnError: default 403 */
	char *path_prefix;           /* HTTP: pathPrefix, before the request's path; a tracer: the
				      * path spans are POSTed to (/api/v2/spans, /v1/traces) */
	uint32_t max_tag_length;     /* zipkin: maxTagLength (default 256); OTLP: 256 too */
	struct sn_authz_str *include_headers;      /* includeRequestHeadersInCheck (patterns) */
	size_t n_include_headers;
	struct sn_header_op *additional;   /* includeAdditionalHeadersInCheck */
	size_t n_additional;
	struct sn_authz_str *to_upstream_on_allow;       /* headersToUpstreamOnAllow (patterns) */
	size_t n_to_upstream_on_allow;
	struct sn_authz_str *to_downstream_on_allow;     /* headersToDownstreamOnAllow */
	size_t n_to_downstream_on_allow;
	struct sn_authz_str *to_downstream_on_deny;      /* headersToDownstreamOnDeny */
	size_t n_to_downstream_on_deny;
	uint32_t max_body;           /* includeRequestBodyInCheck.maxRequestBytes; 0: no body */
	int body_partial;            /* allowPartialMessage */
	int with_body;               /* includeRequestBodyInCheck given */
	int pack_as_bytes;           /* gRPC: packAsBytes, the body in raw_body (bytes), not body (string) */
	/* translation: the cluster of service:port in the snapshot, or
	 * UINT32_MAX when it names no known service port (requests its
	 * policies select are then denied, fail closed) */
	uint32_t cluster;
};

/* A JSON Web Key Set's keys (RFC 7517), each checked for its type, curve
 * and fields, into a (inline jwks at load; a jwksUri's when fetched): the
 * usable ones in *keys_out / *n_out, each problem told to on_err (naming
 * the key). Returns the number of problems. */
struct sn_arena;
size_t sn_jwks_parse(struct sn_arena *a, const char *text, size_t len, struct sn_jwt_key **keys_out, size_t *n_out,
		     void (*on_err)(void *user, const char *msg), void *user);

/* Policies in this namespace apply mesh-wide (Istio's default root namespace). */
#define SN_MESH_ROOT_NAMESPACE "istio-system"

enum sn_authz_action {
	SN_AUTHZ_ALLOW = 0,
	SN_AUTHZ_DENY,
	SN_AUTHZ_AUDIT,
	SN_AUTHZ_CUSTOM,             /* external authorization by provider (filter_extauthz.c) */
};

const char *sn_authz_action_str(enum sn_authz_action a);

struct sn_authz_str;
/* One string pattern of a policy ("abc" exact, "abc*", "*abc", "*"): s
 * must outlive out. And its match against v (icase: ASCII case ignored). */
void sn_authz_str_compile(const char *s, struct sn_authz_str *out);
int sn_authz_str_match(const struct sn_authz_str *m, struct sn_str v, int icase);

/* Istio's string match for authorization fields: "abc" exact, "abc*"
 * prefix, "*abc" suffix, "*" present (non-empty). */
enum sn_authz_str_kind {
	SN_AUTHZ_STR_EXACT = 0,
	SN_AUTHZ_STR_PREFIX,
	SN_AUTHZ_STR_SUFFIX,
	SN_AUTHZ_STR_PRESENT,
};

struct sn_authz_str {
	enum sn_authz_str_kind kind;
	char *value;                 /* the text to compare, without the '*' (not NUL-terminated for PREFIX) */
	size_t len;
	char *raw;                   /* as written in the policy */
};

/* One attribute's values and notValues: holds when (no values, or one
 * matches) and no notValue matches. */
struct sn_authz_strs {
	struct sn_authz_str *v;
	size_t n;
	struct sn_authz_str *not_v;
	size_t n_not;
	int icase;                   /* hosts: case-insensitive */
};

struct sn_authz_cidr {
	int family;                  /* AF_INET or AF_INET6 */
	uint8_t bits;                /* prefix length */
	uint8_t addr[16];            /* network order, host bits zero */
	char *raw;
};

struct sn_authz_cidrs {
	struct sn_authz_cidr *v;
	size_t n;
	struct sn_authz_cidr *not_v;
	size_t n_not;
};

struct sn_authz_ports {
	uint16_t *v;
	size_t n;
	uint16_t *not_v;
	size_t n_not;
};

/* Attributes a `when` condition (or a source field) reads. */
enum sn_authz_attr {
	SN_AUTHZ_ATTR_HEADER = 0,        /* request.headers[NAME] */
	SN_AUTHZ_ATTR_SOURCE_IP,         /* source.ip (CIDR values) */
	SN_AUTHZ_ATTR_REMOTE_IP,         /* remote.ip: the peer address (no trusted proxies) */
	SN_AUTHZ_ATTR_SOURCE_NAMESPACE,  /* source.namespace */
	SN_AUTHZ_ATTR_SOURCE_PRINCIPAL,  /* source.principal */
	SN_AUTHZ_ATTR_DESTINATION_PORT,  /* destination.port (port values) */
	SN_AUTHZ_ATTR_ABSENT,            /* an attribute no request carries: evaluated as empty */
	SN_AUTHZ_ATTR_REQ_PRINCIPAL,     /* request.auth.principal: the JWT's "iss/sub" */
	SN_AUTHZ_ATTR_REQ_CLAIM,         /* request.auth.claims[a][b], .audiences (aud), .presenter (azp):
					  * the path in `header`, names joined by '\x1f' */
};

struct sn_authz_condition {
	enum sn_authz_attr attr;
	char *key;                   /* as written: "request.headers[x-user]" */
	char *header;                /* lowercase header name (HEADER only) */
	struct sn_authz_strs strs;   /* HEADER, NAMESPACE, PRINCIPAL, ABSENT */
	struct sn_authz_cidrs cidrs; /* SOURCE_IP, REMOTE_IP */
	struct sn_authz_ports ports; /* DESTINATION_PORT */
};

/* Rule.from[].source: every field set must hold. */
struct sn_authz_source {
	struct sn_authz_strs principals;          /* "cluster.local/ns/NS/sa/SA" */
	struct sn_authz_strs request_principals;  /* the JWT's "iss/sub" (RequestAuthentication) */
	struct sn_authz_strs namespaces;
	struct sn_authz_cidrs ip_blocks;
	struct sn_authz_cidrs remote_ip_blocks;
};

/* Rule.to[].operation: every field set must hold. */
struct sn_authz_operation {
	struct sn_authz_strs hosts;               /* case-insensitive, authority as sent */
	struct sn_authz_ports ports;
	struct sn_authz_strs methods;
	struct sn_authz_strs paths;               /* normalized path, no query */
};

/* A rule matches when one source (or none given), one operation (or none
 * given) and every condition hold. An empty rule matches everything. */
struct sn_authz_rule {
	struct sn_authz_source *from;
	size_t n_from;
	struct sn_authz_operation *to;
	size_t n_to;
	struct sn_authz_condition *when;
	size_t n_when;
};

/* An AuthorizationPolicy that applies to this proxy, compiled. A policy
 * with no rules matches nothing (an ALLOW one still makes the workload
 * default-deny). */
struct sn_authz_policy {
	char *name;                  /* "ns/name" */
	char *origin;                /* "AuthorizationPolicy ns/name, file:line" */
	enum sn_authz_action action;
	char *provider;              /* CUSTOM: provider.name */
	struct sn_authz_rule *rules;
	size_t n_rules;
	int unenforceable;           /* fields Sinew does not know: it denies every request (fail closed) */
};

enum sn_mtls_mode {
	SN_MTLS_UNSET = 0,           /* inherit; at the top: PERMISSIVE */
	SN_MTLS_DISABLE,
	SN_MTLS_PERMISSIVE,
	SN_MTLS_STRICT,
};

const char *sn_mtls_mode_str(enum sn_mtls_mode m);

struct sn_mtls_port {
	uint16_t port;               /* workload (target) port */
	enum sn_mtls_mode mode;      /* effective, never UNSET */
	char *origin;                /* the PeerAuthentication that set it */
};

/* The effective PeerAuthentication for this proxy's inbound: workload
 * (selector) over namespace over mesh (root namespace), then per port. */
struct sn_peer_auth {
	enum sn_mtls_mode mode;      /* effective, never UNSET */
	char *origin;                /* "PeerAuthentication ns/name" or "default" */
	struct sn_mtls_port *ports;
	size_t n_ports;
	/* a PeerAuthentication that applies has fields Sinew does not know:
	 * "ns/name", and every inbound request is denied (fail closed) */
	char *unenforceable;
};

/* Effective mode for an inbound port. */
enum sn_mtls_mode sn_peer_auth_mode(const struct sn_peer_auth *pa, uint16_t port);

/* Immutable once built; shared by every worker thread and freed when the
 * last reference goes. */
/* Linkerd's Server (policy.linkerd.io) on this proxy's workload, with its
 * accessPolicy and the HTTPLocalRateLimitPolicy that targets it
 * (src/config/ratelimit.c, src/proxy/filter_ratelimit.c). */
enum sn_server_access {
	SN_ACCESS_DENY = 0,          /* Linkerd's default */
	SN_ACCESS_ALL_UNAUTHENTICATED,
	SN_ACCESS_ALL_AUTHENTICATED,
	SN_ACCESS_CLUSTER_UNAUTHENTICATED,
	SN_ACCESS_CLUSTER_AUTHENTICATED,
};

const char *sn_server_access_str(enum sn_server_access a);

struct sn_rl_override {
	uint32_t rps;
	char **clients;              /* "ns/sa" of ServiceAccounts */
	size_t n_clients;
};

struct sn_server {
	char *name;                  /* "ns/name" */
	char *origin;                /* "Server ns/name, file:line" */
	uint16_t port;               /* the workload's port */
	enum sn_server_access access;
	char *unenforceable;         /* fields Sinew does not know: every request denied */
	/* HTTPLocalRateLimitPolicy: 0 when none */
	char *rl_name;               /* "ns/name" of the policy, NULL when none */
	char *rl_origin;             /* "HTTPLocalRateLimitPolicy ns/name, file:line" */
	uint32_t rl_total, rl_identity;
	struct sn_rl_override *rl_overrides;
	size_t n_rl_overrides;
};

/* Tracing for one proxy (translate.c): the mesh config's enableTracing,
 * defaultProviders.tracing and defaultConfig.tracing.sampling, overridden
 * by the Telemetry resources that select the proxy (root namespace, then
 * its namespace, then a selector on its labels; each sets what it names).
 * The proxy's trace.c and filter_trace.c. */
struct sn_trace_tag {
	char *name;
	enum { SN_TRACE_TAG_LITERAL, SN_TRACE_TAG_HEADER } kind;
	char *value;                 /* literal (environment: read at translation); header: its name, lower case */
	char *default_value;         /* header absent: this, or NULL for no tag */
};

struct sn_tracing {
	int disabled;                /* enableTracing: false: no context made, no span */
	double sampling;             /* percent of new traces sampled; < 0: the proxy's --trace-sampling */
	int no_reporting;            /* disableSpanReporting: contexts go on, spans are not sent */
	uint32_t *providers;         /* indexes into ext_authz of the tracers spans go to */
	size_t n_providers;
	struct sn_trace_tag *tags;   /* customTags */
	size_t n_tags;
	char *origin;                /* "Telemetry ns/name" that decided, or NULL */
};

/* A port a gateway proxy listens on: the Istio Gateway servers that
 * select the proxy, merged by port, with the VirtualServices bound to them
 * (spec.gateways) whose hosts meet the servers' hosts. */
/* A TLS passthrough route at a gateway (a VirtualService's tls[]): the
 * connections whose ClientHello names sni go to dests as they are. */
struct sn_sni_route {
	char *sni;                   /* a name, "*.suffix" or "*" */
	char *origin;                /* "VirtualService ns/name spec.tls[i], file:line" */
	struct sn_route_dest *dests;
	size_t n_dests;
	uint32_t total_weight;
};

/* A certificate of an HTTPS gateway port for one server host (chosen by
 * the ClientHello's server name); files all NULL: the listener's own. */
struct sn_gw_cert {
	char *host;                  /* a server host: a name, "*.suffix" or "*" */
	char *cert_file, *key_file, *ca_file;
	char *credential;
};

struct sn_gw_listener {
	uint16_t port;               /* servers[].port.number */
	char *protocol;              /* servers[].port.protocol, upper case: HTTP, HTTP2 or GRPC */
	char *origin;                /* "Gateway ns/name servers[i], file:line" (the first) */
	struct sn_vhost *vhosts;     /* hosts as the servers and VirtualServices meet; "*" matches any */
	size_t n_vhosts;
	int https_redirect;          /* tls.httpsRedirect: every request answered 301 to https:// */
	/* HTTPS servers (tls.mode SIMPLE or MUTUAL): the proxy terminates TLS
	 * with these files; credentialName is looked up by the proxy in its
	 * --credentials-dir (NAME/tls.crt, tls.key, ca.crt). */
	int tls;                     /* 0 plain text, 1 SIMPLE, 2 MUTUAL, 3 ISTIO_MUTUAL (the
				      * proxy's mesh certificate; mesh clients only) */
	char *cert_file, *key_file, *ca_file;   /* the first server's: the default */
	char *credential;
	/* several servers with other certificates on the port: each server
	 * host's (empty when the port has one certificate) */
	struct sn_gw_cert *certs;
	size_t n_certs;
	/* tls.mode PASSTHROUGH: no HTTP; each connection goes, TLS and all,
	 * where the route for its ClientHello's server name says */
	int passthrough;
	struct sn_sni_route *sni_routes;
	size_t n_sni_routes;
	/* protocol TCP: no HTTP; each connection goes, as opaque bytes, where
	 * the first tcp[] route of a VirtualService bound there says (NULL:
	 * none, the connection is closed) */
	int tcp;
	struct sn_sni_route *tcp_route;
};

#define SN_GW_LISTENERS_MAX 32

struct sn_snapshot {
	long refs;                   /* atomic; use sn_snapshot_ref/unref */
	uint64_t version;            /* set by the caller (reload counter) */
	char *source;                /* file path or "sinewd" */
	char *identity_namespace;    /* namespace short names resolve in */
	struct sn_service *services;
	size_t n_services;
	struct sn_cluster *clusters;
	size_t n_clusters;
	struct sn_vhost *vhosts;     /* one per host named by a VirtualService or a Service */
	size_t n_vhosts;
	struct sn_arena arena;       /* owns everything above */
	/* (added) Security: AuthorizationPolicies that select this proxy
	 * (its namespace and root namespace, selector on its labels), in
	 * load order; the effective PeerAuthentication. In the arena too. */
	struct sn_authz_policy *authz;
	size_t n_authz;
	size_t n_authz_allow;        /* ALLOW policies among them: >0 means default deny */
	struct sn_peer_auth peer_auth;
	struct sn_jwt_rule *jwt_rules;   /* the RequestAuthentications that select this proxy */
	size_t n_jwt_rules;
	char *jwt_unenforceable;     /* one of them has fields Sinew does not know: "ns/name"; every
				      * request is refused 401 (fail closed) */
	struct sn_ext_authz *ext_authz;  /* the mesh config's extensionProviders */
	size_t n_ext_authz;
	struct sn_server *servers;   /* Linkerd Servers that select this workload */
	size_t n_servers;
	struct sn_tracing tracing;   /* Telemetry and the mesh config's tracing, for this proxy */
	char *registry_only;         /* the mesh config's outboundTrafficPolicy REGISTRY_ONLY ("ConfigMap
				      * istio-system/istio, FILE:LINE"); NULL: ALLOW_ANY */
	int gateway;                 /* translated for a gateway proxy */
	struct sn_gw_listener *gw_listeners;  /* gateway proxies only; sorted by port */
	size_t n_gw_listeners;
};

/* The extension provider named name, or NULL. */
const struct sn_ext_authz *sn_snapshot_find_ext_authz(const struct sn_snapshot *s, const char *name);

/* Resolves references (subsets, hosts, ports), builds clusters and
 * per-host route tables for one proxy. Errors (unknown subset or host,
 * bad port...) are diagnostics with the resource's file:line and field.
 * Returns 0 and sets *out (refs = 1) when no error was found; SN_EINVAL
 * otherwise, with *out NULL. */
int sn_config_translate(const struct sn_config_set *set, const struct sn_proxy_identity *id,
			struct sn_diags *d, struct sn_snapshot **out);

/* Convenience for file mode: load + translate. */
int sn_config_build_from_file(const char *path, const struct sn_proxy_identity *id,
			      struct sn_diags *d, struct sn_snapshot **out);

void sn_snapshot_ref(struct sn_snapshot *s);
void sn_snapshot_unref(struct sn_snapshot *s);

/* Finds the vhost for an authority as a client wrote it: "reviews",
 * "reviews:9080", "reviews.default", "reviews.default.svc.cluster.local:9080",
 * "10.0.0.5:9080" is not a vhost (NULL). Short names resolve in the
 * snapshot's identity namespace. *port_out gets the port (from the
 * authority, else the service's only/first port, else 80). Exact hosts win
 * over wildcards, longer wildcards over shorter. NULL if none. */
const struct sn_vhost *sn_snapshot_find_vhost(const struct sn_snapshot *s, struct sn_str authority,
					       uint16_t *port_out);

/* The gateway listener on port, or NULL. */
const struct sn_gw_listener *sn_snapshot_find_gw_listener(const struct sn_snapshot *s, uint16_t port);
/* The vhost of gateway listener l for an authority, by the rules of
 * sn_snapshot_find_vhost (short names in the snapshot's namespace). */
/* The route of routes[0..n) for server name sni (lower case; NULL or ""
 * when the client sent none): the route for that name, else the one whose
 * "*.suffix" holds it with the longest suffix, else "*"; NULL if none. */
const struct sn_sni_route *sn_sni_route_find(const struct sn_sni_route *routes, size_t n, const char *sni);
/* sn_sni_route_find over a gateway listener's passthrough routes. */
const struct sn_sni_route *sn_snapshot_find_sni_route(const struct sn_gw_listener *l, const char *sni);
const struct sn_vhost *sn_snapshot_find_gw_vhost(const struct sn_snapshot *s, const struct sn_gw_listener *l,
						  struct sn_str authority);

/* Finds the Service by FQDN; NULL if none. */
const struct sn_service *sn_snapshot_find_service(const struct sn_snapshot *s, const char *fqdn);

/* Writes the snapshot as JSON (for /config_dump): version, source,
 * services, clusters with endpoints, vhosts with routes. */
void sn_snapshot_dump_json(const struct sn_snapshot *s, FILE *f);

/* ---- authorization (added; src/config/authz.c) ---------------------- */

struct sn_h1_header;

/* What a request is judged on. Views are borrowed for the call. */
struct sn_authz_request {
	struct sn_str principal;          /* peer identity "TD/ns/NS/sa/SA" (no spiffe://);
					   * empty for plaintext */
	struct sn_str source_namespace;   /* from the identity; empty for plaintext */
	const struct sockaddr *source;    /* peer address; NULL if unknown */
	uint16_t port;                    /* destination (workload) port */
	struct sn_str host;               /* authority as sent */
	struct sn_str method;
	struct sn_str path;               /* path, with or without the query (it is cut) */
	const struct sn_h1_header *headers;
	size_t n_headers;
	/* RequestAuthentication: the request's valid JWT, or none */
	struct sn_str request_principal;  /* "iss/sub"; empty without one */
	const struct sn_jwt_claims *claims;   /* NULL without one */
	/* The external authorizer of the CUSTOM policy that matched has
	 * allowed the request: judge the DENY and ALLOW policies only. */
	int custom_allowed;
};

/* A valid JWT's claims, as AuthorizationPolicy reads them (the proxy's
 * filter_jwt.c). get: the values at path (depth names; a string, or each
 * string of a list), up to max into out; returns how many. */
struct sn_jwt_claims {
	size_t (*get)(const struct sn_jwt_claims *c, const char *const *path, size_t depth, struct sn_str *out,
		      size_t max);
};

enum sn_authz_decision {
	SN_AUTHZ_DECISION_ALLOW = 0,
	SN_AUTHZ_DECISION_DENY,
};

struct sn_authz_result {
	enum sn_authz_decision decision;
	/* Who decided: "ns/name" of the DENY or ALLOW policy that matched,
	 * "default deny: no ALLOW policy matched", or "no policy" /
	 * "no ALLOW policy" for an allow without a match. Static or owned by
	 * the snapshot. */
	const char *policy;
	/* A denial's sinew-error: "rbac_denied", or "ext_authz_unavailable"
	 * for a CUSTOM policy's (its authorizer is not implemented: the
	 * request is denied as an unreachable authorizer's would be). */
	const char *reason;
	const char *provider;             /* CUSTOM denial: the provider's name */
	const char *audit_policy;         /* first matching AUDIT policy, or NULL */
	int audited;
};

/* Istio's evaluation: DENY (any match denies), then ALLOW (when the
 * workload has one, only a match allows), else allow; AUDIT only marks.
 * The path is judged in normal form (RFC 3986 dot segments removed,
 * unreserved characters decoded, '\' as '/'), as Istio's default BASE
 * normalization does. Pure; any thread. s may be NULL (allow). */
void sn_authz_check(const struct sn_snapshot *s, const struct sn_authz_request *r,
		    struct sn_authz_result *out);

/* Parses an Istio/protobuf duration ("1s", "0.5s", "100ms", "2m", "1h",
 * "1.5s") into milliseconds. Returns 0 or SN_EINVAL. */
int sn_parse_duration_ms(const char *s, uint32_t *ms_out);

/* JSON text (control messages, API bodies) as a libfyaml document, or NULL
 * if it does not parse; nothing is printed (src/config/json_read.c). Free
 * with fy_document_destroy. */
struct fy_document;
struct fy_document *sn_json_parse(const char *text, size_t len);

/* ---- what other modules read of loaded resources (src/config/service.c) --
 * The typed bodies (sn_resource.spec) are the config library's own; these
 * are the questions sinewd and the CLI ask of them. */

/* The selector of a Service, or a ServiceEntry's workloadSelector; NULL
 * when it selects no workload (none, or empty). */
const struct sn_labels *sn_service_selector(const struct sn_resource *r);

struct sn_port_info {
	const char *name;            /* NULL: unnamed */
	uint16_t port;
	uint16_t target_port;        /* 0: the port itself */
};
/* A loaded Service's i-th port in out. Returns 0, or -1 past the last. */
int sn_service_port_at(const struct sn_resource *r, size_t i, struct sn_port_info *out);

struct sn_workload_info {
	const struct sn_labels *labels;
	const char *address;
	const char *service_account; /* NULL: default */
};
/* A WorkloadEntry's labels, address and service account (borrowed from
 * r). Returns 0, or -1 when r is not a loaded WorkloadEntry. */
int sn_workload_of(const struct sn_resource *r, struct sn_workload_info *out);

/* What a resource names (src/config/refs.c), for sinewd's push: which
 * proxies need a resource follows from these. */
enum sn_ref_type {
	SN_REF_HOST,         /* a host it configures, to resolve in ns: a VirtualService's mesh
			      * hosts, a route's parent Service, a DestinationRule's host */
	SN_REF_ENTRY_HOST,   /* a ServiceEntry's host (as written; never qualified) */
	SN_REF_DEST,         /* a host it sends traffic to, to resolve in ns: route destinations
			      * and mirrors, the mesh config's external authorizers */
};
typedef void (*sn_ref_fn)(void *user, enum sn_ref_type type, const char *host, const char *ns);
/* Calls fn for each host r names, in order. */
void sn_resource_refs(const struct sn_resource *r, sn_ref_fn fn, void *user);
/* A VirtualService bound to a gateway (not only "mesh"), or a Gateway API
 * route attached to a Gateway. */
int sn_resource_for_gateways(const struct sn_resource *r);
/* A ServiceEntry with addresses (captured traffic reaches it by address). */
int sn_service_entry_has_addresses(const struct sn_resource *r);

/* ---- analysis (src/config/analyze.c) --------------------------------- */

enum sn_analysis_level {
	SN_ANALYSIS_ERROR = 0,
	SN_ANALYSIS_WARNING,
	SN_ANALYSIS_INFO,
};

const char *sn_analysis_level_str(enum sn_analysis_level l);
struct sn_analysis_msg;
/* One message as one line, istioctl's shape plus the field:
 * "Error [SN0101] (VirtualService ns/x f.yaml:12) spec.http[0].route: message". */
void sn_analysis_msg_text(const struct sn_analysis_msg *m, char *text, size_t size);

/* One istioctl-analyze-style message. Strings owned by the list. */
struct sn_analysis_msg {
	const char *code;           /* "SN0101", static */
	const char *type;           /* "ReferencedResourceNotFound", static */
	enum sn_analysis_level level;
	char *resource;             /* "VirtualService default/reviews" or NULL */
	char *file;                 /* NULL if unknown */
	int line;
	char *field;                /* may be NULL */
	char *message;
};

struct sn_analysis {
	struct sn_analysis_msg *v;
	size_t n;
	size_t cap;
	size_t errors, warnings, infos;
};

void sn_analysis_free(struct sn_analysis *a);

/* Analyzes set, loaded with keep_invalid set (load: the diagnostics of
 * loading it): istioctl-analyze-style messages for problems legal one
 * resource at a time but wrong together, and what translation refuses.
 * Resources from *body_start on (NULL: none) replace earlier ones of the
 * same kind and name. Resources with load errors leave the set. Messages
 * are sorted by code, then resource. Returns 0 or SN_ENOMEM. */
int sn_config_analyze(struct sn_config_set *set, struct sn_resource **body_start, const struct sn_diags *load,
		      struct sn_analysis *out);

#endif
