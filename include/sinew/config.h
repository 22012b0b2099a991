#ifndef SINEW_CONFIG_H
#define SINEW_CONFIG_H

/* Configuration: Kubernetes-style resources (Service, WorkloadEntry, Istio
 * VirtualService and DestinationRule) loaded from YAML, validated, and
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
	SN_KIND__COUNT,
};

const char *sn_resource_kind_str(enum sn_resource_kind k);

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
	void *priv;         /* private to src/config (added): hosts declared by
			     * kinds not implemented yet (ServiceEntry), so routes
			     * to them warn instead of failing */
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
};

enum sn_str_match_kind {
	SN_MATCH_ANY = 0,   /* not set: matches everything */
	SN_MATCH_EXACT,
	SN_MATCH_PREFIX,
	SN_MATCH_REGEX,     /* whole-value match (RE2 semantics approximated by POSIX ERE) */
	SN_MATCH_PRESENT,   /* header/query present with any value ("{}" in Istio) */
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
	double abort_percent;
};

struct sn_http_route {
	char *name;                  /* http[].name or "VSNAME.http[i]" */
	char *origin;                /* "VirtualService ns/name, file:line" */
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
	char *rewrite_authority;     /* NULL: none */
	int direct_status;           /* directResponse.status; 0: none */
	char *direct_body;
};

/* A virtual host: the routes for requests whose authority names host. */
struct sn_vhost {
	char *host;                  /* FQDN ("reviews.default.svc.cluster.local") or "*.suffix" */
	uint16_t port;               /* 0: every port of the host */
	struct sn_http_route *routes;
	size_t n_routes;
};

enum sn_lb_policy {
	SN_LB_P2C_EWMA = 0,          /* default (DESIGN.md §6) */
	SN_LB_ROUND_ROBIN,
	SN_LB_LEAST_REQUEST,
	SN_LB_RANDOM,
};

const char *sn_lb_policy_str(enum sn_lb_policy p);

struct sn_endpoint {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char *address;               /* "10.0.0.5:9080", for logs and dumps */
	char *workload;              /* WorkloadEntry name */
	char *version;               /* labels["version"] or NULL */
	char *service_account;
	struct sn_labels labels;
	uint32_t weight;             /* 1 unless WorkloadEntry.weight */
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
	struct sn_endpoint *endpoints;
	size_t n_endpoints;
};

/* A Service as the registry knows it, for name resolution and defaults. */
struct sn_service_port {
	char *name;
	uint16_t port;
	uint16_t target_port;
	char *protocol;              /* appProtocol or from the name ("http", "grpc", "tcp"...) */
	uint32_t default_cluster;    /* index of the subset-less cluster for this port */
};

struct sn_service {
	char *name;
	char *namespace_;
	char *fqdn;
	struct sn_service_port *ports;
	size_t n_ports;
};

/* Immutable once built; shared by every worker thread and freed when the
 * last reference goes. */
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
};

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

/* Finds the Service by FQDN; NULL if none. */
const struct sn_service *sn_snapshot_find_service(const struct sn_snapshot *s, const char *fqdn);

/* Writes the snapshot as JSON (for /config_dump): version, source,
 * services, clusters with endpoints, vhosts with routes. */
void sn_snapshot_dump_json(const struct sn_snapshot *s, FILE *f);

/* Parses an Istio/protobuf duration ("1s", "0.5s", "100ms", "2m", "1h",
 * "1.5s") into milliseconds. Returns 0 or SN_EINVAL. */
int sn_parse_duration_ms(const char *s, uint32_t *ms_out);

#endif
