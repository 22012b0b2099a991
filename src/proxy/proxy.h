#ifndef SINEW_PROXY_INTERNAL_H
#define SINEW_PROXY_INTERNAL_H

/* sinew-proxy internals: the process (server.c), its workers (worker.c),
 * downstream connections and the request exchange (exchange.c), upstream
 * connections and pools (upstream.c), load balancing (lb.c), routing
 * (router.c) and the admin server (admin.c).
 *
 * Threads: the main thread runs a loop for signals, reloads and the admin
 * port. Each worker thread runs its own loop with its own listeners
 * (SO_REUSEPORT), connections, upstream pools, buffers and metrics. The only
 * shared object is the config snapshot, handed to workers by sn_loop_post
 * and refcounted atomically. */

#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>

#include "sinew/accesslog.h"
#include "sinew/buf.h"
#include "sinew/config.h"
#include "sinew/h1.h"
#include "sinew/http_server.h"
#include "sinew/loop.h"
#include "sinew/metrics.h"
#include "sinew/tls_stream.h"

#define SN_ORIGIN_KEY_MAX 1900
#define SN_ORIGIN_SANS_MAX 16

struct sn_proxy;
struct sn_dns;
struct sn_worker;
struct sn_dconn;
struct sn_uconn;
struct sn_exchange;
struct sn_h2u;

/* ALPN on the mesh link (DESIGN.md §2): a server takes all three; a
 * client's context offers the first two (HTTP/1.1, opaque TCP), and an
 * HTTP/2 connection asks for sinew/h2 alone. */
#define SN_MESH_ALPN_CLIENT 2
#define SN_MESH_ALPN_SERVER 3
extern const char *const sn__mesh_alpn[SN_MESH_ALPN_SERVER];
struct sn_cp;

/* Addresses one --control-plane list may name (sinewd replicas). */
#define SN_CP_MAX_REPLICAS 8

enum sn_direction {
	SN_DIR_OUTBOUND = 0,
	SN_DIR_INBOUND = 1,
};

struct sn_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[64];   /* "127.0.0.1:15001" */
};

/* Parses "HOST:PORT" or "[V6]:PORT" (HOST numeric). Returns 0 or SN_EINVAL. */
int sn_addr_parse(const char *s, struct sn_addr *out);
/* Parses a comma-separated list of at most max addresses, each as
 * sn_addr_parse takes it (port 0 and repeats refused), into out[0..*n).
 * Returns 0, or SN_EINVAL with err naming the entry (1-based) and what
 * is wrong. */
int sn_addr_list_parse(const char *s, struct sn_addr *out, size_t max, size_t *n, char *err, size_t err_size);
/* Formats a socket address as "ip:port" into buf. */
void sn_addr_format(const struct sockaddr *sa, char *buf, size_t size);

struct sn_proxy_options {
	const char *config_path;
	int have_outbound, have_inbound, have_admin, have_control_plane;
	struct sn_addr outbound, inbound, app, admin;
	/* --control-plane A,B,...: sinewd replicas, tried in this order and
	 * then round robin (discovery.c) */
	struct sn_addr control_plane[SN_CP_MAX_REPLICAS];
	size_t n_control_plane;
	const char *service;
	const char *namespace_;
	const char *labels_text;
	const char *service_account;
	const char *access_log_path;
	int workers;
	uint32_t drain_ms;
	uint32_t request_header_timeout_ms;
	uint32_t idle_timeout_ms;
	uint32_t max_connections;        /* downstream, per worker */
	int istio_metric_names;
	uint32_t discovery_idle_ms;      /* control-plane mode: drop a subscription unused this long */
	uint32_t stats_interval_ms;      /* control-plane mode: a stats message this often (0: 10 s) */
	const char *token;               /* --token / SINEW_TOKEN: a join token (a secret) */
	struct sn_addr capture_probe;    /* --capture-probe: answer `sinew run`'s rule check */
	int have_capture_probe;
	const char *pod_name;            /* --pod NAME (sinew run), for the probe's answer */
	struct sn_addr advertise;        /* --advertise: where other proxies reach our inbound */
	int have_advertise;
	uint16_t opaque_ports[32];       /* --opaque-ports: captured ports proxied as TCP */
	size_t n_opaque_ports;
	const char *services_hosts;      /* --services-hosts: VIP -> NAME.NS.svc.cluster.local */
	const char *tls_cert;            /* mTLS (file mode): leaf + chain PEM */
	const char *tls_key;
	const char *tls_bundle;          /* trust roots PEM */
	const char *trust_domain;        /* default cluster.local */
	double trace_sampling;           /* --trace-sampling: percent of new traces sampled (default 1) */
	int gateway;                     /* --gateway: listeners from the Gateways that select us */
	struct sn_addr gateway_address;  /* --gateway-address (port 0), default 0.0.0.0 */
	int have_gateway_address;
	const char *credentials_dir;     /* --credentials-dir: Gateway credentialName NAME is DIR/NAME/tls.crt... */
	uint32_t dns_refresh_ms;         /* --dns-refresh: ServiceEntry DNS names resolved again (0: 5 s) */
	struct sn_h1_limits limits;
};

/* Per endpoint address, per worker: load-balancing state and the pool of
 * idle upstream connections. Lives as long as the worker, so it survives
 * snapshot swaps. */
struct sn_host {
	char key[64];                    /* "ip:port" */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	double ewma_ms;                  /* peak-EWMA latency */
	uint64_t ewma_stamp_us;
	uint32_t active;                 /* requests in flight */
	uint32_t n_conns;                /* open connections (busy + idle) */
	struct sn_uconn *idle;           /* LIFO of idle keep-alive connections */
	uint32_t n_idle;
	struct sn_h2u *h2;               /* HTTP/2 connections, each carrying many requests */
	/* Requests waiting for a connection: the host was at its connection
	 * limit (exchange.c; DestinationRule http1MaxPendingRequests). */
	struct sn_exchange *pending;     /* FIFO */
	struct sn_exchange **pending_tail;
	uint32_t n_pending;
	uint32_t freed;                  /* connections freed since the last wake-up pass */
	struct sn_host *next_wake;       /* in the worker's wake list */
	unsigned on_wake_list : 1;
	uint64_t added_ms;               /* when this worker first saw the endpoint (warmup) */
};

/* An endpoint's outlier detection state (outlier.c). */
struct sn_outlier_host {
	uint32_t c5xx, cgw, clocal;      /* failures in a row, by kind */
	uint32_t times;                  /* ejections so far: the next one's multiplier */
	uint64_t ejected_until_ms;       /* 0: in the pool */
	uint64_t back_since_ms;          /* when the last ejection ended */
};

/* Per cluster index of the worker's current snapshot. */
struct sn_cluster_state {
	uint32_t rr_next;
	struct sn_host **hosts;          /* one per endpoint, same order */
	struct sn_outlier_host *od;      /* one per endpoint when the cluster has outlierDetection */
	struct point *ring;              /* consistentHash ringHash (lb_hash.c) */
	size_t ring_n;
	uint32_t *maglev;                /* consistentHash maglev: endpoint per slot */
	size_t maglev_n;
	int64_t *wrr;                    /* weighted round robin: each endpoint's current weight */
	uint32_t n_ejected;
	uint64_t next_expiry_ms;         /* the earliest ejection to end */
};

struct sn_listener {
	struct sn_io io;
	int fd;
	enum sn_direction dir;
	struct sn_worker *worker;
	uint16_t gw_port;                /* a gateway listener's port (worker.c); 0: not one */
};

/* Token bucket for retries: 10 per second plus 20 % of requests. */
struct sn_retry_budget {
	double tokens;
	uint64_t stamp_ms;
};

struct sn_worker {
	struct sn_proxy *proxy;
	int id;
	pthread_t thread;
	struct sn_loop loop;
	struct sn_snapshot *snap;        /* this worker's reference */
	struct sn_cluster_state *cstate; /* snap->n_clusters entries */
	struct sn_cluster inbound_cluster;
	struct sn_endpoint inbound_endpoint;
	struct sn_cluster_state inbound_state;
	struct sn_host *inbound_host;
	/* Captured pods serving several ports: one inbound cluster per
	 * further app port, made on first use (worker.c). */
	struct sn_inbound_port {
		uint16_t port;
		char address[24];
		struct sn_cluster cluster;
		struct sn_endpoint endpoint;
		struct sn_cluster_state state;
		struct sn_host *host;
	} inbound_ports[8];
	size_t n_inbound_ports;
	/* exchange.c's inbound_app_h2: the app port's declared protocol as of
	 * one snapshot (1 HTTP/2, 0 HTTP/1.1, -1 not declared). */
	const struct sn_snapshot *app_proto_snap;
	uint16_t app_proto_port;
	int app_proto;
	struct sn_metrics *metrics;
	struct sn_buf_pool pool;
	struct sn_listener listeners[2];
	int n_listeners;
	struct sn_listener gw_listeners[SN_GW_LISTENERS_MAX];   /* --gateway: fd -1 when free */
	/* host table: open addressing by key */
	struct sn_host **hosts;
	size_t hosts_cap, n_hosts;
	/* connections, for drain */
	struct sn_dconn *conns;
	size_t n_conns;
	struct sn_exchange *free_exchanges;
	size_t n_free_exchanges;
	struct sn_exchange *parked;      /* waiting for discovery */
	struct sn_host *wake_hosts;      /* hosts whose pending requests may go on (exchange.c) */
	struct sn_oneshot *oneshots;     /* the proxy's own calls in flight (oneshot.c) */
	struct jwt_cache *jwt_cache;     /* RequestAuthentication keys of w->snap (filter_jwt.c) */
	struct sn_trace_out *trace_out;  /* spans waiting for export (trace.c) */
	uint32_t n_oneshots;
	struct sn_task wake_task;
	int wake_scheduled;
	unsigned char *vhost_used;       /* per vhost of snap: routed since the last sweep */
	uint64_t rng;
	struct sn_retry_budget budget;
	int draining;
	struct sn_task drain_task;
	struct sn_task stop_task;
	uint64_t next_conn_id;
	struct sn_h1_header scratch_hdrs[SN_H1_DEFAULT_MAX_HEADERS + 1];
};

struct sn_proxy {
	struct sn_proxy_options opt;
	struct sn_labels labels;
	struct sn_proxy_identity identity;
	char workload[128];
	char principal[256];
	char own_service_fqdn[256];
	struct sn_loop loop;
	struct sn_worker *workers;
	int n_workers;
	pthread_mutex_t snap_lock;       /* guards snap for the admin thread */
	/* Endpoints outlier detection took out, for the admin port (workers
	 * write under outlier_lock; an entry is current until its wall-clock
	 * end): cluster name, address. */
	pthread_mutex_t outlier_lock;
	struct sn_outlier_mark {
		char cluster[200];
		char address[64];
		int64_t until_wall_ms;
	} outlier_marks[128];
	size_t n_outlier_marks;
	struct sn_snapshot *snap;
	uint64_t version;
	struct sn_metrics_process proc;
	struct sn_access_log *access_log;
	int ready;
	int draining;
	int workers_running;             /* workers whose loop has not returned */
	/* main-loop plumbing */
	int sigfd;
	struct sn_io sig_io;
	int inofd;
	struct sn_io ino_io;
	struct sn_timer reload_timer;
	struct sn_timer drain_timer;
	struct sn_timer exit_check_timer;
	struct sn_hsrv admin;            /* the admin port's server (admin.c) */
	int exit_code;
	struct sn_cp *cp;                /* control-plane mode; NULL in file mode */
	struct sn_taps *taps;            /* control-plane mode: taps sinewd asked for (tap.h) */
	int cp_synced;                   /* first push applied (atomic; read by workers) */
	/* mTLS (--tls-cert...): NULL when plaintext only. Shared by workers. */
	struct sn_trust_bundle *bundle;
	struct sn_tls_ctx *tls_server;   /* inbound: requires a client certificate */
	struct sn_tls_ctx *tls_client;   /* outbound: ISTIO_MUTUAL clusters */
	struct sn_ident *ident;          /* --token: identity from sinewd (identity.c) */
	uint64_t plaintext_mtls_warned;  /* ISTIO_MUTUAL clusters warned about (identity.c) */
	/* --gateway: the TLS contexts of HTTPS ports (gateway_tls.c). Made
	 * and updated by the main thread before a snapshot is posted; a
	 * context lives as long as the proxy (streams hold it), a slot is
	 * reused for another port by updating its context. */
	struct sn_gw_tls {
		uint16_t port;               /* atomic */
		int ok;                      /* atomic: ctx holds this port's certificate */
		struct sn_tls_ctx *ctx;
	} gw_tls[SN_GW_LISTENERS_MAX];
	/* TLS origination (origin_tls.c): client contexts by their files,
	 * append-only (n_origin_tls is atomic), made by the main thread. */
	struct sn_origin_slot {
		char key[SN_ORIGIN_KEY_MAX];
		int ok;                      /* atomic: the files loaded */
		struct sn_tls_ctx *ctx;
	} origin_tls[64];
	size_t n_origin_tls;
	struct sn_dns *dns;              /* dns.c: ServiceEntry names, resolved on a thread */
};

/* dns.c: the resolver thread; sn_dns_start sets identity.dns_lookup. */
int sn_dns_start(struct sn_proxy *p);
void sn_dns_stop(struct sn_proxy *p);
/* A configuration was published: forget the names its translation did
 * not ask for (a refused one changes nothing). Main thread. */
void sn_dns_published(struct sn_proxy *p);
size_t sn_dns_lookup(void *ctx, const char *name, char out[][48], size_t max);
/* Translates the configuration held again (file mode: reads the file;
 * control-plane mode: the resources held) and publishes it if it changed
 * anything; why goes to the log. Main thread. */
void sn_proxy_retranslate(struct sn_proxy *p, const char *why);
/* discovery.c: the same for control-plane mode. */
void sn_cp_retranslate(struct sn_proxy *p);

/* origin_tls.c: loads the client contexts of s's clusters with tls.mode
 * SIMPLE or MUTUAL (main thread, before s is posted). */
void sn_origin_tls_sync(struct sn_proxy *p, struct sn_snapshot *s);
/* 1 and the pool key in id ("tls:SLOT:SNI") when connections to c's
 * endpoints originate TLS; 0 when they do not; SN_EINVAL when they
 * should but the context is not usable (fail the request). */
int sn_upstream_origin(struct sn_worker *w, const struct sn_cluster *c, char *id, size_t size);
/* Turns x into the TLS client of id (sn_upstream_origin's), offering h2
 * or http/1.1 by ALPN. 0, or an error with x still plain. */
int sn_upstream_origin_start(struct sn_worker *w, const struct sn_cluster *c, const char *id, int h2,
			     struct sn_xprt *x);   /* id: sn_upstream_origin's, for the caller's pool only */

/* gateway_tls.c: (re)loads the certificates of s's HTTPS gateway ports
 * into p->gw_tls; a port whose files do not load is logged and stays
 * closed (fail closed). Main thread, before s is posted. */
void sn_gw_tls_sync(struct sn_proxy *p, const struct sn_snapshot *s);
/* credentialName NAME's files in --credentials-dir (default
 * /etc/sinew/credentials): NAME/tls.crt, NAME/tls.key, and NAME/ca.crt,
 * else NAME-cacert/ca.crt (has_ca: one of them is readable). Shared by the
 * gateway's servers and TLS origination (gateway_tls.c). */
struct sn_credential_files {
	char cert[600], key[600], ca[600];
	int has_ca;
};
void sn_credential_files(const struct sn_proxy *p, const char *name, struct sn_credential_files *f);
/* 0 if every non-NULL file of files[0..n) can be read, else -1 and a
 * sentence naming the first that cannot into err. */
int sn_files_readable(const char *const *files, size_t n, char *err, size_t size);
#define SN_GW_CERTS_MAX 32   /* certificates chosen by server name, per HTTPS gateway port */
/* The TLS context of HTTPS gateway port, or NULL (plain text, or its
 * certificate did not load). Any thread. */
struct sn_tls_ctx *sn_gw_tls_get(struct sn_proxy *p, uint16_t port);
/* The server context of HTTPS gateway listener l: its files' (as
 * sn_gw_tls_get), or for ISTIO_MUTUAL the mesh's; NULL: not ready. */
struct sn_tls_ctx *sn_gw_listener_tls(struct sn_proxy *p, const struct sn_gw_listener *l);

/* filter_telemetry.c: Istio's standard labels of this proxy's traffic
 * into l (zeroed first; the request's own fields -- protocol, code, flags
 * -- are the caller's): an outbound call to endpoint ep of cl (either may
 * be NULL), upstream_id the SPIFFE ID mutual TLS proved (NULL: none); an
 * inbound call from peer_id (NULL: none proved), secure when it came in
 * mutual TLS. The strings are borrowed from p, cl and ep. */
void sn_metric_labels_outbound(struct sn_metric_labels *l, const struct sn_proxy *p, const struct sn_cluster *cl,
			       const struct sn_endpoint *ep, const char *upstream_id);
void sn_metric_labels_inbound(struct sn_metric_labels *l, const struct sn_proxy *p, const char *peer_id, int secure);

/* tcp.c: opaque TCP and protocol detection for captured traffic. Returns
 * 1 when it took fd (a captured outbound connection), 0 to go on as HTTP. */
int sn_tcp_outbound_accept(struct sn_worker *w, int fd, const struct sockaddr *peer, socklen_t peer_len);
/* Takes x, a peer proxy's mTLS transport (ALPN sinew/tcp), and relays it
 * to the app's port. */
void sn_tcp_inbound(struct sn_worker *w, struct sn_xprt *x, const char *peer_id, uint16_t port);
/* Takes the client's transport d and the upstream's u of an HTTP exchange
 * that switched protocols (101: WebSocket, any Upgrade) and relays bytes
 * both ways, with half-close, until both ends are done or idle for the TCP
 * idle timeout. to_up / to_down: bytes one side already sent that the other
 * has not had yet (copied). Both transports are closed on failure. */
int sn_tcp_tunnel(struct sn_worker *w, struct sn_xprt *d, struct sn_xprt *u, const struct iovec *to_up, int n_up,
		  const struct iovec *to_down, int n_down, const char *what);
/* Takes fd and relays it, as opaque TCP, to an endpoint of cl (mTLS to a
 * meshed one); from names the client in logs. fd is closed on failure. */
int sn_tcp_to_cluster(struct sn_worker *w, int fd, const struct sn_cluster *cl, const char *from);
/* The same for a client's transport x whose TLS the gateway terminated
 * (taken; closed on failure). */
int sn_tcp_xprt_to_cluster(struct sn_worker *w, struct sn_xprt *x, const struct sn_cluster *cl, const char *from);
/* gateway_sni.c: a connection to a TLS passthrough port of a gateway
 * (tls.mode PASSTHROUGH): routed by its ClientHello's server name. Takes fd. */
void sn_gw_passthrough_accept(struct sn_worker *w, int fd, uint16_t port, const struct sockaddr *peer,
			      socklen_t peer_len);
/* A connection to a TCP port of a gateway: relayed where the port's tcp
 * route says (a weighted pick per connection). Takes fd. */
void sn_gw_tcp_accept(struct sn_worker *w, int fd, const struct sn_gw_listener *gl, const struct sockaddr *peer,
		      socklen_t peer_len);
/* The cluster a connection to TCP port gl goes to (its route's weighted
 * pick), or NULL (logged, naming who): none. */
const struct sn_cluster *sn_gw_tcp_pick(struct sn_worker *w, const struct sn_gw_listener *gl, const char *who);
/* ALLOW_ANY's passthrough for HTTP: 0 and the original destination in
 * *orig when fd is a captured outbound connection to an address that is
 * not the mesh's (no Service VIP, no ServiceEntry address), else
 * SN_ENOTFOUND. */
int sn_tcp_passthrough_dest(struct sn_worker *w, int fd, struct sockaddr_in *orig);
/* Takes d and relays it to orig as opaque TCP, to_up sent first (the
 * bytes of the client already read). d is closed on failure. */
int sn_tcp_passthrough(struct sn_worker *w, struct sn_xprt *d, const struct sockaddr_in *orig,
		       const struct iovec *to_up, int n_up, const char *what);
/* Protocol detection on the first bytes b[0..n) of a captured outbound
 * connection (peeked, not consumed): 1 HTTP/1 ("METHOD " with METHOD
 * [A-Z]{1,7}), 0 anything else, -1 not known until more bytes arrive. */
int sn_tcp_looks_http(const unsigned char *b, size_t n);

#define SN_TCP_VIPS_MAX 4096

/* A Service's virtual IP, from the pod's hosts file (--services-hosts). */
struct sn_vip {
	uint32_t addr;        /* network order */
	char fqdn[254];       /* NAME.NS.svc.cluster.local */
};

/* Reads a hosts file from f: for each IPv4 line, its first name ending in
 * .svc.cluster.local; at most SN_TCP_VIPS_MAX. '#' starts a comment; a
 * line over 1023 bytes is skipped whole. Returns an array for the caller
 * to free, its length in *n, or NULL when memory ran out. */
struct sn_vip *sn_tcp_vips_read(FILE *f, size_t *n);

/* identity.c: the identity from sinewd (--token) */
struct sn_xds_tls;
struct fy_node;
int sn_ident_init(struct sn_proxy *p);
void sn_ident_stop(struct sn_proxy *p);   /* before the loop goes */
void sn_ident_free(struct sn_proxy *p);
int sn_ident_ready(const struct sn_proxy *p);
const char *sn_ident_error(const struct sn_proxy *p);
void sn_ident_set_error(struct sn_proxy *p, const char *why);
/* TLS for the next control link; returns 1 if it is a bootstrap link. */
int sn_ident_cp_tls(struct sn_proxy *p, struct sn_xds_tls *out);
int sn_ident_on_open(struct sn_proxy *p);
int sn_ident_on_message(struct sn_proxy *p, const char *type, size_t tlen, struct fy_node *root, int bootstrap);
void sn_ident_render(const struct sn_proxy *p, FILE *f);
/* Warns, once per change, about DestinationRules that ask ISTIO_MUTUAL of a
 * proxy without an identity (it connects in plaintext); silent for one
 * holding an identity. Main loop, at each new snapshot. */
struct sn_snapshot;
void sn_ident_check_snapshot(struct sn_proxy *p, const struct sn_snapshot *s);

/* server.c */
int sn_proxy_run(struct sn_proxy_options *opt);
/* Makes s (takes the caller's reference) the active snapshot: numbers it,
 * hands it to every worker. Main thread only. */
void sn_proxy_publish(struct sn_proxy *p, struct sn_snapshot *s);
/* Hands the active snapshot to the workers again, so that requests parked
 * waiting for discovery look again. Main thread only. */
void sn_proxy_republish(struct sn_proxy *p);
/* Called by a worker (posted to the main loop) when its loop exits. */
void sn_proxy_worker_exited(struct sn_proxy *p);

/* worker.c */
int sn_worker_init(struct sn_worker *w, struct sn_proxy *p, int id);
int sn_worker_start(struct sn_worker *w);
/* Posts a new snapshot to the worker; takes one reference. Any thread. */
void sn_worker_post_snapshot(struct sn_worker *w, struct sn_snapshot *s);
/* Posts a drain request. Any thread. */
void sn_worker_post_drain(struct sn_worker *w);
/* Posts a stop request (drain deadline passed). Any thread. */
void sn_worker_post_stop(struct sn_worker *w);
void sn_worker_dispose(struct sn_worker *w);
/* The inbound cluster for the app's port (0 or --app's: the main one);
 * NULL when no more ports can be tracked. */
struct sn_cluster *sn_worker_inbound_cluster(struct sn_worker *w, uint16_t port);
/* Looks up or creates the host for an endpoint. NULL on ENOMEM or when
 * the table's bound is reached. */
struct sn_host *sn_worker_host(struct sn_worker *w, const struct sockaddr *addr, socklen_t len);
uint64_t sn_worker_random(struct sn_worker *w);
/* True if a retry may be spent; takes the token. */
int sn_worker_retry_allowed(struct sn_worker *w);
void sn_worker_retry_deposit(struct sn_worker *w);
/* A downstream connection closed; the worker may now finish draining. */
void sn_worker_conn_closed(struct sn_worker *w);
/* Cluster state for cluster index i in the worker's snapshot. */
struct sn_cluster_state *sn_worker_cluster_state(struct sn_worker *w, const struct sn_cluster *c);

/* exchange.c: downstream connections and the request/response exchange. */
void sn_dconn_accept(struct sn_worker *w, int fd, enum sn_direction dir, uint16_t gw_port,
		     const struct sockaddr *peer, socklen_t peer_len);
/* Starts draining a connection: close now if idle, else after the
 * current response. */
void sn_dconn_drain(struct sn_dconn *c);
/* Closes a connection at once (drain deadline). */
void sn_dconn_abort(struct sn_dconn *c);
void sn_exchange_free_cache(struct sn_worker *w);
/* Closes and frees an upstream connection (idle or not). */
void sn_uconn_destroy(struct sn_worker *w, struct sn_uconn *u);

/* upstream.c */
/* Whether endpoint ep of cl is spoken to in mutual TLS (DESIGN.md §5): a
 * DestinationRule's ISTIO_MUTUAL, or, without a tls setting, an endpoint
 * labelled as holding a mesh identity (auto mTLS). 1 with id (size bytes)
 * set to the SPIFFE ID the endpoint must present; 0: plaintext (also when
 * this proxy has no identity and no way to get one); SN_EAGAIN: mutual
 * TLS is due but the certificate from sinewd has not come yet. */
int sn_upstream_mtls(struct sn_worker *w, const struct sn_cluster *cl, const struct sn_endpoint *ep, char *id,
		     size_t size);

/* filter_jwt.c: forgets the keys built for the worker's snapshot (it changes). */
void sn_jwt_cache_drop(struct sn_worker *w);
/* Checks one token against s's RequestAuthentication rules: NULL if valid
 * (*principal "iss/sub", valid until the next call on this thread), else
 * why not. What the filter does per request; for the fuzz target. */
const char *sn_jwt_check_token(struct sn_worker *w, const struct sn_snapshot *s, struct sn_str tok,
			       struct sn_str *principal);
/* jwks.c: the key sets behind jwksUri, fetched by a thread of their own.
 * watch registers the URIs of a snapshot (any thread); get returns the
 * URI's version (0: none yet) and, when it is not have, a malloc'd copy of
 * the set's text, with what went wrong last in err ("" if nothing);
 * refresh asks for a fetch soon (a key id nobody knew). */
void sn_jwks_watch(const struct sn_snapshot *s);
uint64_t sn_jwks_get(const char *uri, uint64_t have, char **text, size_t *len, char *err, size_t errlen);
void sn_jwks_refresh(const char *uri);
void sn_jwks_set_refresh(uint32_t ms);

/* oneshot.c: one-shot HTTP/1.1 calls of the proxy's own (mirrored copies,
 * external authorization): out (malloc'd, taken) is the whole request,
 * sent to an endpoint of cl (mutual TLS as its requests); the answer, up
 * to max_response bytes (the rest dropped), goes to cb once, at the end of
 * the connection, a failure or timeout_ms: resp is malloc'd and cb's to
 * free (NULL when nothing was kept). NULL when the call cannot start
 * (*why says why; cb is never called). Worker thread only. */
enum sn_oneshot_end { SN_ONESHOT_ANSWERED = 0, SN_ONESHOT_FAILED, SN_ONESHOT_TIMEOUT };
typedef void (*sn_oneshot_cb)(void *user, enum sn_oneshot_end how, char *resp, size_t len);
struct sn_oneshot;
struct sn_oneshot *sn_oneshot_start(struct sn_worker *w, const struct sn_cluster *cl, char *out, size_t out_len,
				    size_t max_response, uint32_t timeout_ms, sn_oneshot_cb cb, void *user,
				    const char **why);
/* One unary gRPC call over HTTP/2 (prior knowledge; mutual TLS as cl's
 * requests): POST path to authority, msg (malloc'd, taken) as the whole
 * request body, content-type application/grpc, te: trailers. cb gets,
 * once, the answer's :status, grpc-status (its trailers, or a
 * trailers-only head; -1 when none) and DATA (malloc'd, cb's to free; at
 * most max_response bytes: more ends the call SN_ONESHOT_FAILED with
 * truncated set). SN_ONESHOT_ANSWERED only for a stream that ended whole.
 * NULL when the call cannot start (*why says why; cb is never called). */
struct sn_oneshot_grpc_answer {
	int status;
	int grpc_status;
	char *body;
	size_t body_len;
	int truncated;
};
typedef void (*sn_oneshot_grpc_cb)(void *user, enum sn_oneshot_end how, struct sn_oneshot_grpc_answer *a);
struct sn_oneshot *sn_oneshot_grpc_start(struct sn_worker *w, const struct sn_cluster *cl, const char *authority,
					 const char *path, char *msg, size_t msg_len, size_t max_response,
					 uint32_t timeout_ms, sn_oneshot_grpc_cb cb, void *user, const char **why);
/* Ends a call without calling cb (its owner is going away). */
void sn_oneshot_cancel(struct sn_oneshot *o);
/* Ends the worker's calls in flight (at exit). */
void sn_oneshot_close_all(struct sn_worker *w);

/* outlier.c (DestinationRule outlierDetection) */
/* The endpoints out of their pool now, as JSON ("[{...}]") for the admin port. */
void sn_outlier_dump_json(struct sn_proxy *p, FILE *f);
/* An attempt on endpoint i of c ended: its response status, or 0 for a
 * failure of local origin (connect failure, reset, timeout). */
void sn_outlier_report(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs, size_t i,
		       int status);
/* 1 when some of c's endpoints are out of the pool and the rest are
 * healthy enough (minHealthPercent) for that to count. */
int sn_outlier_active(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs);
/* idx, or, if it is out of the pool, one in it, at random. */
int sn_outlier_pick_in(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs, int idx);
/* Is endpoint i out of the pool? */
int sn_outlier_ejected(const struct sn_cluster_state *cs, size_t i);
/* A new snapshot's state for c takes over what old_cs (for old) knew of
 * the same cluster's endpoints. */
void sn_outlier_carry(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs,
		      const struct sn_snapshot *old, const struct sn_cluster_state *old_cs);
void sn_outlier_release(struct sn_worker *w, struct sn_cluster_state *cs);

/* lb_hash.c (consistentHash) */
uint64_t sn_hash64(const void *p, size_t n, uint64_t seed);
/* Builds cs's ring or Maglev table for c (lb RING_HASH or MAGLEV). 0 or SN_ENOMEM. */
int sn_lb_hash_build(const struct sn_cluster *c, struct sn_cluster_state *cs);
/* Frees cs's balancer tables (ring, Maglev, weighted round robin). */
void sn_lb_hash_free(struct sn_cluster_state *cs);
/* The request's key by c's hash policy: 1 with *key set, 0 if it has none. */
int sn_lb_hash_key(const struct sn_hash_policy *h, const struct sn_h1_request *rq, const char *peer, uint64_t *key);
/* The endpoint for key (skipping those outlier detection took out). */
int sn_lb_hash_pick(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs, uint64_t key);

/* lb.c */
/* Picks an endpoint index of cluster c for a new request, or -1 if it has
 * none, among those in the pool (outlier detection). The worker's state
 * for c is cs. */
int sn_lb_pick(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs);
/* Feeds a finished request's latency into the host's peak-EWMA. */
void sn_lb_observe(struct sn_host *h, double latency_ms, int failed);

/* router.c */
/* Request view the router matches on. */
struct sn_route_request {
	struct sn_str method;
	struct sn_str path;           /* path only, without the query */
	struct sn_str query;          /* after '?', may be empty */
	struct sn_str authority;
	struct sn_str scheme;         /* "https" at a gateway's HTTPS port; empty: "http" */
	uint16_t port;
	const struct sn_h1_header *headers;
	size_t n_headers;
};

/* First route of vh whose matches hold, or NULL. */
/* The first rule of vh whose match list holds for r (or that has none);
 * *hit: the match that held (NULL for a rule without matches), which
 * decides what a rewrite.uri replaces. NULL: no rule. */
const struct sn_http_route *sn_router_match(const struct sn_vhost *vh, const struct sn_route_request *r,
					    const struct sn_route_match **hit);
/* One of n destinations by weight (total their sum; 0: the first), rnd random. */
const struct sn_route_dest *sn_route_pick_weighted(const struct sn_route_dest *d, size_t n, uint32_t total,
						   uint64_t rnd);
/* Chooses a destination of a route by weight. */
const struct sn_route_dest *sn_router_pick_dest(const struct sn_http_route *route, uint64_t rnd);

/* discovery.c: control-plane mode (docs/internals/control-protocol.md). */
int sn_cp_start(struct sn_proxy *p);
void sn_cp_stop(struct sn_proxy *p);
void sn_cp_free(struct sn_proxy *p);
/* For a host (as the app wrote it, without port, lowercase): 1 if sinewd
 * answered its subscription (or in file mode), -1 if one is pending, 0 if
 * never asked. Any thread. */
int sn_cp_host_known(struct sn_proxy *p, struct sn_str host);
/* Asks the main thread to subscribe to host. Any thread. */
void sn_cp_subscribe(struct sn_proxy *p, struct sn_str host);
/* The store revision this proxy runs, or NULL. Main thread. */
const char *sn_cp_revision(struct sn_proxy *p);
/* Sends one message on the control link if it is open. */
int sn_cp_send_raw(struct sn_proxy *p, const char *msg, size_t len);
/* A telemetry message ("spans", "tapEvent"; msg malloc'd, taken) from any
 * thread: sent by the main loop if the link is up and not backed up, else
 * dropped. 0 if it was queued to the main loop. */
int sn_cp_send_telemetry(struct sn_proxy *p, char *msg, size_t len);
int sn_cp_is_open(struct sn_proxy *p);
/* Closes the link and reconnects at once, to the same replica. */
void sn_cp_reconnect(struct sn_proxy *p, const char *why);
/* Writes ,"control_plane":{...} for /config_dump: the replica in use, whether
 * the link is up, the list and the store revision run. Nothing in file mode.
 * Main thread. */
void sn_cp_dump_json(struct sn_proxy *p, FILE *f);

/* Re-routes requests parked waiting for discovery (after a new snapshot). */
void sn_exchange_retry_parked(struct sn_worker *w);

/* admin.c */
int sn_admin_start(struct sn_proxy *p);
/* Answers one admin request as the admin port does, without a connection
 * (fuzz/fuzz_proxy_admin.c): parses the head in req[0..len) with the
 * port's limits and renders the whole response (no body for HEAD) into
 * *out, for the caller to free (NULL and *out_len 0 when memory ran out:
 * close). Returns the head's
 * length, SN_H1_INCOMPLETE (*out untouched), or SN_H1_ERROR (malformed:
 * close without an answer). Main thread: reads the snapshot under snap_lock. */
int sn_admin_respond(struct sn_proxy *p, const char *req, size_t len, char **out, size_t *out_len);
void sn_admin_stop(struct sn_proxy *p);
/* GET /metrics's text (malloc'd into *out), for sinewd's scrape relay of
 * a proxy Prometheus cannot reach (a pod's). 0 or SN_ENOMEM. Any thread. */
#define SN_ADMIN_METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"
int sn_admin_metrics_text(struct sn_proxy *p, char **out, size_t *len);

#endif
