#ifndef SINEW_CONTROL_MESH_INTERNAL_H
#define SINEW_CONTROL_MESH_INTERNAL_H

/* Private to sinewd's push side (mesh.c, registry.c, push.c): the view of
 * every resource proxies may get (the store plus registered workloads),
 * the connected proxies and what each holds. Wire format:
 * docs/internals/control-protocol.md. Loop thread only. */

#include <openssl/evp.h>

#include "sinew/control.h"
#include "sinew/sorted.h"
#include "sinew/xds.h"

#define MESH_LEASE_MS 10000
#define MESH_LEASE_CHECK_MS 1000
#define MESH_MAX_SUBS 4096
#define MESH_MAX_HAVE 100000
#define MESH_MAX_ID 200
#define MESH_MAX_NACK_ERRORS 64
#define MESH_MAX_TEXT 2048           /* one NACK error text kept */
#define MESH_REG_PREFIX "proxy-"
#define MESH_BACKLOG 4096            /* listen(2): a mesh's proxies reconnecting at once (the kernel caps
				      * it at net.core.somaxconn) */

/* One resource of the view. Owns its strings and its parsed form; kept
 * across rebuilds while its resourceVersion does not change. */
struct view_res {
	char *key;                   /* "Kind/namespace/name" */
	char *rv;
	enum sn_resource_kind kind;
	char *ns, *name;
	char *api_version;
	char *source;
	int line;
	char *text;
	size_t text_len;
	struct sn_config_set set;    /* the resource, parsed (set.head may be NULL) */
	struct sn_mesh_proxy *reg;   /* registered by this proxy, or NULL */
	/* derived per view: */
	char *fqdn;                  /* Service: name.ns.svc.cluster.local (lower case) */
	size_t *deps;                /* Service: WEs, DRs, VSs it needs; VS: destination Services */
	size_t n_deps;
	char **hosts;                /* VS, ServiceEntry: hosts resolved in its namespace; DR: [host] */
	size_t n_hosts;
	uint32_t mark;               /* closure epoch */
	int taken;                   /* moved to the next view during a rebuild */
	int fresh;                   /* parsed for this view (new, or a new resourceVersion) */
	unsigned order;              /* while building: the earlier of two entries for a key wins */
	uint64_t sig;                /* digest of rv, derived hosts and deps (with their rvs):
				      * a change here is a change for whoever holds it */
};

struct view {
	struct view_res **v;         /* sorted by key */
	size_t n;
	uint64_t revision;           /* store revision it was built at */
	struct host_ref *by_host;    /* exact (resolved) VS and ServiceEntry hosts, Service FQDNs, sorted */
	size_t n_by_host;
	size_t *wild_vs;             /* VirtualServices and ServiceEntries with a wildcard host */
	size_t n_wild_vs;
	size_t *roots;               /* what may reach a proxy other than by its hosts (root_for) */
	size_t n_roots;
	size_t n_services;           /* Services (parsed): registrations render from them */
	uint32_t epoch;
};

struct host_ref {
	const char *host;
	size_t res;
};

struct sub {
	char *host;                  /* as the proxy wrote it */
	int answered;                /* named in a `subscribed` of a push sent */
};

struct nack_error {
	char *resource;              /* "Kind/ns/name" as the proxy named it */
	char *text;
};

/* One connected proxy. */
struct sn_mesh_proxy {
	struct sn_mesh *mesh;
	struct sn_arena pool;        /* lives with the link: the hello's strings and labels, the link's
				      * identity; its cleanup frees the tables below (link_tables_free) */
	struct sn_xds_conn *conn;
	uint64_t serial;             /* connection number, for logs */
	char peer[64];
	int hello;
	int gone;                    /* connection closed; freed in reclaim */
	int capture;                 /* node.capture: a pod taking every port at its address */
	int gateway;                 /* node.gateway: a gateway proxy (push.c sends it Gateways) */
	char *id, *service, *ns, *sa, *inbound, *admin, *version;
	char *workload;              /* node.workload (service-version), else its service, else "unknown" */
	char *pod;                   /* node.pod: the `sinew run` pod it runs in, or NULL */
	struct sn_labels labels;     /* as the node sent them */
	uint64_t connected_at;       /* wall clock, seconds */
	uint64_t last_heard_ms;      /* loop time */

	struct sub *subs;
	size_t n_subs;
	int keep_have;               /* no subscribe yet since a hello with `have` */

	struct sn_strmap held;       /* acked: what the proxy runs (key -> resourceVersion) */
	struct sn_strmap inflight_set; /* the push in flight: added/changed */
	char **inflight_removed;
	size_t n_inflight_removed;
	int inflight;
	uint64_t nonce;              /* last nonce sent */
	uint64_t inflight_revision;
	uint64_t acked_revision;
	uint64_t synced_revision;    /* found up to date at this store revision */
	int dirty;                   /* recompute after what is in flight */
	int force;                   /* send even an empty delta (after hello) */
	uint64_t sent_ms;            /* when the push in flight was sent */

	int nacked;                  /* the last answer was a nack */
	struct nack_error *nack;
	size_t n_nack;
	uint64_t pushes, acks, nacks;
	uint64_t recomputes;         /* relevant set computed (a change concerned it, or its own did) */
	uint64_t last_ack_latency_ms;

	/* registry (registry.c): set when the hello has `inbound` */
	int registered;
	char *reg_name;              /* "proxy-<id>" */
	char *reg_text;
	char *reg_rv;
	char *reg_error;             /* why the registration was refused */
	uint64_t reg_svc_gen;        /* the mesh's svc_gen reg_text was rendered at */
	char reg_address[64];
	uint16_t reg_port;
	struct sn_labels reg_labels; /* node labels plus app=<service> when absent */

	/* identity (mesh_ca.c) */
	int bootstrap;               /* TLS without a client certificate */
	char *peer_id, *peer_ns, *peer_sa;  /* the link's mTLS identity */
	uint64_t bundle_sent, bundle_acked;
	char issued_serial[41];
	uint64_t issued_gen;         /* issuer generation of what we issued last */
	uint64_t leaf_gen;           /* … once the proxy acked it (0: unknown) */
	uint64_t renew_sent_gen;

	/* spans messages (traces.c): spans stored, spans dropped by the
	 * store's bounds, messages refused as malformed */
	uint64_t spans_stored, spans_dropped, span_batches_refused;

	/* stats messages (stats.c): its record there (by node id, across
	 * links), messages taken and refused as malformed */
	struct sn_stats_proxy *stats_rec;
	uint64_t stats_messages, stats_refused;

	struct sn_task reclaim;
	struct sn_mesh_proxy *next, **pprev;
};

struct sn_tls_ctx;
struct fy_node;

/* A proxy a rotation waits for, connected or not (mesh_ca.c). */
struct ca_member {
	char *id;
	uint64_t bundle_acked;
	uint64_t leaf_gen;
};

struct sn_mesh {
	const char *replica;         /* sn_mesh_opts.replica */
	/* identity (mesh_ca.c) */
	struct sn_ca_service *ca;
	struct sn_tls_ctx *tls;      /* the mesh port's server context */
	int allow_plaintext;
	int no_auto_rotate;
	uint32_t renew_spread_ms;
	uint32_t phase_timeout_ms;
	EVP_PKEY *self_key;
	int64_t self_renew_at;
	uint64_t self_gen, self_bundle;
	uint64_t phase_since_ms;
	uint64_t hold_until_ms;      /* after a restart mid-rotation: let proxies reconnect first */
	struct ca_member *members;   /* the rotation's roster: every mTLS proxy seen since it began */
	size_t n_members, cap_members;
	uint64_t issued;
	struct sn_timer ca_timer;

	struct sn_loop *loop;
	struct sn_store *store;
	struct sn_traces *traces;    /* where spans messages go; may be NULL */
	struct sn_stats *stats;      /* where stats messages go; may be NULL */
	struct mesh_tap *tap;        /* tap sessions and the tap token (tap.c) */
	struct scrape *scrapes;      /* scrapes relayed, awaiting their proxy (scrape.c) */
	unsigned n_scrapes;
	uint64_t next_scrape;
	int fd;
	struct sn_io io;
	int pod_fd;                  /* second listener: the pods' network (sinewd --pod-mesh) */
	struct sn_io pod_io;
	struct sn_mesh_proxy *proxies;
	size_t n_proxies;
	uint64_t serial;
	struct view view;
	int view_stale;              /* store or registry changed since the view was built */
	uint64_t svc_gen;            /* moves when the view's Services change (registrations render from them) */
	struct sn_task push_task;    /* deferred recompute */
	struct sn_timer lease_timer;
	struct sn_timer grace_timer;
	uint64_t started_ms;
	uint64_t grace_until_ms;     /* before this, keys of registered entries a
				      * proxy holds are not removed (a restarted
				      * sinewd waits for proxies to re-register) */
	int grace_over;
	struct sn_strmap seen_regs;  /* registered during the grace: not waited for */
	struct sn_strmap published;  /* registrations shared with other replicas (etcd): key -> rv */
	uint64_t pushes, acks, nacks;
};

/* ---- view and push (push.c) ---- */
/* Rebuilds the view from the store and the registry when stale. */
int mesh_view_refresh(struct sn_mesh *m);
void mesh_view_free(struct view *v);
const struct view_res *mesh_view_find(const struct view *v, const char *key);
/* The store or the registry changed: the view is rebuilt, and the proxies
 * it changes for are recomputed (scheduled). */
void mesh_changed(struct sn_mesh *m);
/* Marks every proxy dirty and schedules a recompute. */
void mesh_changed_all(struct sn_mesh *m);
/* Schedules a recompute of dirty proxies (deferred task). */
void mesh_schedule(struct sn_mesh *m);
/* Computes and sends this proxy's delta if nothing is in flight. */
void mesh_push(struct sn_mesh *m, struct sn_mesh_proxy *px);

/* ---- registry (registry.c) ---- */
/* From the hello's node: validates and prepares the registration (text
 * is generated at view build). Returns 0 or an error text (static). */
const char *registry_prepare(struct sn_mesh_proxy *px);
/* Regenerates px's WorkloadEntry from the Services of view (store part),
 * revalidating when its text changes. */
void registry_render(struct sn_mesh *m, struct sn_mesh_proxy *px, const struct view_res *const *svcs,
		     size_t n_svcs);
void registry_clear(struct sn_mesh_proxy *px);
void registry_start(struct sn_mesh *m);
void registry_stop(struct sn_mesh *m);

/* ---- helpers (mesh.c) ---- */

/* ---- tap (tap.c) ---- */
struct mesh_tap;
/* The token (DATA_DIR/tap.token, made when missing); 0 or SN_ENOMEM. */
int mesh_tap_start(struct sn_mesh *m);
/* Ends every session (untap sent) and frees it all. */
void mesh_tap_stop(struct sn_mesh *m);
/* A "tapEvent" message from px: relayed to its session. */
void mesh_tap_on_event(struct sn_mesh *m, struct sn_mesh_proxy *px, struct fy_node *root, const char *msg,
		       size_t len);
/* px said hello: tapped by the sessions it matches. */
void mesh_tap_hello(struct sn_mesh *m, struct sn_mesh_proxy *px);

/* ---- scrape relay (scrape.c) ---- */
struct scrape;
/* A "scrapeResult" message from px: the answer to its scrape. */
void mesh_scrape_on_result(struct sn_mesh *m, struct sn_mesh_proxy *px, struct fy_node *root);
/* Closes every scrape still waiting. */
void mesh_scrape_stop(struct sn_mesh *m);

/* mesh_ca.c */
int mesh_ca_start(struct sn_mesh *m, const struct sn_mesh_opts *o);
void mesh_ca_stop(struct sn_mesh *m);
void mesh_ca_free(struct sn_mesh *m);
int mesh_ca_on_secure(struct sn_mesh_proxy *px);
const char *mesh_ca_check_hello(struct sn_mesh *m, struct sn_mesh_proxy *px);
void mesh_ca_after_hello(struct sn_mesh *m, struct sn_mesh_proxy *px);
void mesh_ca_on_csr(struct sn_mesh *m, struct sn_mesh_proxy *px, struct fy_node *root);
void mesh_ca_on_ack(struct sn_mesh *m, struct sn_mesh_proxy *px, struct fy_node *root);
void mesh_ca_progress(struct sn_mesh *m);
void mesh_ca_render_proxy(const struct sn_mesh *m, const struct sn_mesh_proxy *px, struct sn_out *o);

#endif
