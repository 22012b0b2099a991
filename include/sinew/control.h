#ifndef SINEW_CONTROL_H
#define SINEW_CONTROL_H

/* sinewd, the control plane: the resource store, same-code admission,
 * analysis and the HTTP/JSON API (docs/api.md, docs/internals/store.md).
 *
 * Everything here runs on sinewd's one loop thread; nothing is locked.
 *
 *   sn_store_open(&st, dir, &report);        // load what is on disk
 *   sn_admit_apply(&st, "f.yaml", text, len, &res);   // validate + persist
 *   sn_api_start(&api, &loop, &st, &addr);   // serve /api/v1
 */

#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "sinew/config.h"
#include "sinew/http_server.h"
#include "sinew/loop.h"
#include "sinew/out.h"

/* ---- bounds ---------------------------------------------------------- */

#define SN_STORE_MAX_RESOURCE_BYTES (1u << 20)   /* one resource's YAML */
#define SN_STORE_MAX_RESOURCES 100000u
#define SN_API_MAX_BODY (8u << 20)
#define SN_API_MAX_CONNS 256
#define SN_API_ADMIT_MAX_NAMESPACES 16           /* identities translated per admission */

/* ---- the store ------------------------------------------------------- */

/* One stored resource. Every string is owned by the entry. */
struct sn_stored {
	enum sn_resource_kind kind;
	char *api_version;
	char *namespace_;
	char *name;
	char *source;               /* file name it was applied from (diagnostics) */
	int line;                   /* line of text's first line in source */
	char *text;                 /* the resource's YAML, as applied */
	size_t text_len;
	uint64_t resource_version;  /* store revision of its last change */
	uint64_t generation;        /* 1 when created, +1 per change of its text */
	/* Status, recomputed (not persisted) after every change to the store:
	 * formatted diagnostics ("FILE:LINE:COL: warning: ..."). */
	int accepted;               /* no error when translated with the rest */
	char **warnings;
	size_t n_warnings;
	char **errors;
	size_t n_errors;
};

/* Where resources are kept: a directory of files (store.c, the default)
 * or an etcd cluster shared by sinewd replicas (store_etcd.c). Either
 * way the store below is the loop thread's in-memory index of them. */
struct sn_store_ops;
struct sn_etcd;

struct sn_store {
	char *dir;                  /* data directory (CA, keys; resources too unless etcd) */
	uint64_t revision;          /* persisted, never goes back (with etcd: its revision) */
	struct sn_stored **v;       /* sorted by kind, namespace, name */
	size_t n;
	size_t cap;
	int no_sync;                /* tests only: skip fsync (never in sinewd) */
	const struct sn_store_ops *ops;
	struct sn_etcd *etcd;       /* the etcd backend's state; NULL for a directory */
	char where[320];            /* for messages: the directory, or "etcd at URL,..." */
	char error[400];            /* why the last write failed, when the backend knows */
};

/* Opens (creating if needed) the store in dir and loads every resource.
 * A file that cannot be read, fails its checksum or does not load is
 * skipped and reported in report (warnings with its path); that is never
 * fatal. Stale temp files from a crash are removed. Returns 0, or SN_EIO
 * if dir cannot be created or read (errno set). */
int sn_store_open(struct sn_store *st, const char *dir, struct sn_diags *report);

/* Opens a store whose resources live in etcd (docs/internals/store.md,
 * "etcd"): url is "etcd://HOST:PORT[,HOST:PORT...]" (etcd's v3 JSON
 * gateway; HTTPS when tls->ca_file is set, tls may be NULL); dir still holds what is this replica's own (its
 * CA files unless given, keys). Loads every resource as the directory
 * store does (bad ones reported, skipped). Returns 0, SN_EINVAL (a bad
 * URL) or SN_EIO (no member answered), with why in err. */
/* TLS to etcd's members, as etcdctl's --cacert, --cert and --key: with
 * ca_file set every call is HTTPS, the member's certificate checked
 * against it (and its address or name); cert_file and key_file, when set,
 * are the client certificate etcd's --client-cert-auth asks for. */
struct sn_etcd_tls {
	const char *ca_file;
	const char *cert_file;
	const char *key_file;
};

int sn_store_open_etcd(struct sn_store *st, const char *dir, const char *url, const struct sn_etcd_tls *tls,
		       struct sn_diags *report, char *err, size_t err_size);

/* Called on the loop thread after changes made by another replica (or
 * found on a resync) are in the index. */
typedef void (*sn_store_changed_cb)(struct sn_store *st, void *arg);

/* etcd only (a no-op returning 0 for a directory): watches etcd from a
 * thread of its own and applies every change to the index on loop's
 * thread, then calls cb. Returns 0 or SN_ENOMEM / SN_EIO. */
int sn_store_watch_start(struct sn_store *st, struct sn_loop *loop, sn_store_changed_cb cb, void *arg);
/* Stops the watch (joins its thread); changes still on their way are
 * dropped. Call before the loop and what cb uses go away. */
void sn_store_watch_stop(struct sn_store *st);
void sn_store_close(struct sn_store *st);

/* ---- registered workloads shared between replicas (etcd only) --------- */

/* A WorkloadEntry another sinewd replica generated for one of its proxies
 * (src/control/registry.c): under /sinew/registry/ in etcd, on that
 * replica's lease, so it goes when the replica does (10 s). */
struct sn_shared_reg {
	char *ns, *name;
	char *rv;                   /* "reg-..." as the owner rendered it */
	char *text;
	size_t text_len;
	uint64_t mod_revision;
};

/* The other replicas' registrations, sorted by namespace and name; none
 * with a directory store. Valid until the loop next runs the watch. */
size_t sn_store_shared_regs(const struct sn_store *st, const struct sn_shared_reg **out);

/* Publishes one of this replica's registrations (text NULL: withdraws it;
 * a withdrawal never removes what another replica wrote since). A no-op
 * returning 0 with a directory store. Returns 0 or SN_EIO (logged). */
int sn_store_publish_reg(struct sn_store *st, const char *ns, const char *name, const char *rv, const char *text);

/* ---- the replicas of a shared store (etcd only) ------------------------- */

/* A sinewd replica as it announced itself in etcd (/sinew/replicas/ID, on
 * its lease: gone within 10 s of its death). */
struct sn_store_replica {
	char *id;
	char *api;                  /* its HTTP API, ADDR:PORT */
	char *mesh;                 /* where its proxies connect */
	int self;                   /* this replica */
};

/* Announces this replica (a no-op returning 0 with a directory store),
 * and reads the others. After sn_store_watch_start. */
int sn_store_announce(struct sn_store *st, const char *api, const char *mesh);
/* Every replica announced, this one included; none with a directory
 * store. Valid until the loop next runs the watch. */
size_t sn_store_replicas(const struct sn_store *st, const struct sn_store_replica **out);

/* ---- what the CA shares between replicas (etcd only) -------------------- */

/* The join-token secret every replica uses: made once (the first replica
 * to start draws it), read by the others. SN_EINVAL with a directory
 * store (each keeps its own); 0 or SN_EIO with why in err. */
int sn_store_token_secret(struct sn_store *st, uint8_t out[32], char *err, size_t err_size);

/* Spends a join token's nonce for every replica until `until` (an etcd
 * key on a lease that long): 0 spent now, 1 spent before, -1 on error. A
 * sn_ca_service_opts.spend (arg: the store). */
int sn_store_spend_nonce(void *store, const char *nonce_hex, time_t until, char *err, size_t err_size);

/* Finds a resource; NULL if absent. The pointer is valid until the next
 * change to the store. */
struct sn_stored *sn_store_get(const struct sn_store *st, enum sn_resource_kind kind, const char *ns,
			       const char *name);

/* One resource to write. Strings are copied. */
struct sn_store_put {
	enum sn_resource_kind kind;
	const char *api_version, *ns, *name;
	const char *source;         /* file it came from (diagnostics) */
	int line;
	const char *text;
	size_t text_len;
};

/* At most this many resources go into one etcd transaction. */
#define SN_STORE_TXN_MAX 64

/* Creates or replaces resources, durably: once it returns 0 they survive
 * a crash. out[i] (out may be NULL) gets each entry. In etcd a batch of
 * up to SN_STORE_TXN_MAX resources (and 1 MiB) is one transaction, and
 * each write is conditional on the version this store last saw: when
 * another replica changed one of them since, nothing of that transaction
 * is stored, the index is brought up to date, and SN_ECONFLICT is
 * returned (decide again, then retry). Otherwise returns 0, SN_ELIMIT
 * (too large, too many), SN_EINVAL (a name that can't be stored) or
 * SN_EIO (why in st->error). */
int sn_store_put_many(struct sn_store *st, const struct sn_store_put *v, size_t n, struct sn_stored **out);

/* sn_store_put_many of one resource. */
int sn_store_put(struct sn_store *st, enum sn_resource_kind kind, const char *api_version, const char *ns,
		 const char *name, const char *source, int line, const char *text, size_t text_len,
		 struct sn_stored **out);

/* Writes st->revision to DIR/revision (durably). Puts do not need it to
 * be crash-safe (each file carries its resourceVersion); it keeps the
 * revision from going back when the newest file is later lost or
 * skipped. etcd keeps its own. Returns 0 or SN_EIO. */
int sn_store_save_revision(struct sn_store *st);

/* Deletes a resource durably. Returns 0, SN_ENOTFOUND, SN_ECONFLICT (etcd:
 * another replica changed it since; the index now has its version) or
 * SN_EIO. */
int sn_store_delete(struct sn_store *st, enum sn_resource_kind kind, const char *ns, const char *name);

/* Replaces e's status with what d says about it (kind and ns/name). */
void sn_stored_set_status(struct sn_stored *e, const struct sn_diags *d);

/* ---- admission ------------------------------------------------------- */

enum sn_apply_result {
	SN_APPLY_CREATED = 0,
	SN_APPLY_CONFIGURED,
	SN_APPLY_UNCHANGED,
	SN_APPLY_REFUSED,
	SN_APPLY_IGNORED,           /* a kind Sinew does not implement yet: not stored */
};

const char *sn_apply_result_str(enum sn_apply_result r);

/* What happened to one document (one resource) of an apply. */
struct sn_apply_item {
	char *kind;                 /* "" if the document had none */
	char *namespace_;
	char *name;
	enum sn_apply_result result;
	uint64_t resource_version;  /* 0 when refused or ignored */
	int line;                   /* where the document starts in the source (0: unknown) */
	size_t seq;                 /* order found; items are sorted by line, then seq */
	struct sn_diags diags;      /* this resource's own messages */
};

struct sn_apply_report {
	struct sn_apply_item *v;
	size_t n;
	size_t refused;
};

void sn_apply_report_free(struct sn_apply_report *r);

/* Same-code admission: loads text (multi-document YAML named source),
 * translates the store plus the new resources with the proxy's
 * translation, refuses each resource that has an error of its own (alone:
 * the others are re-translated without it) and persists the rest. Updates
 * every resource's status. Returns 0 (see out->refused), or SN_EIO/SN_ENOMEM
 * when the store could not be written (the items say which). */
int sn_admit_apply(struct sn_store *st, const char *source, const char *text, size_t len,
		   struct sn_apply_report *out);

/* The same, with the deciding half (parse, validate, translate: the config
 * code that untrusted input reaches) in a child process with limits
 * (src/control/admit_isolate.c): if it dies, sinewd stays up, the
 * resources that make it die are refused with internal_error and the others
 * are admitted. What sinewd's API uses. */
int sn_admit_apply_isolated(struct sn_store *st, const char *source, const char *text, size_t len,
			    struct sn_apply_report *out);

/* Deletes a resource and recomputes every status. Returns 0, SN_ENOTFOUND
 * or SN_EIO. */
int sn_admit_delete(struct sn_store *st, enum sn_resource_kind kind, const char *ns, const char *name);

/* Recomputes every resource's status from a translation of the whole
 * store (on start and after changes). */
void sn_admit_refresh_status(struct sn_store *st);

/* ---- analysis (the checks: sn_config_analyze, sinew/config.h) -------- */

/* Analyzes a set of resources given as YAML texts: store (may be NULL),
 * the n_registered WorkloadEntries connected proxies registered (texts,
 * source "sinewd-registry"; they are endpoints as stored ones are), plus
 * body (may be NULL, named body_source). Messages are sorted by code,
 * then resource. Returns 0 or SN_ENOMEM. */
int sn_analyze(const struct sn_store *st, const char *const *registered, size_t n_registered,
	       const char *body_source, const char *body, size_t body_len, struct sn_analysis *out);

/* ---- the mesh: proxies, registry, push --------------------------------
 * (src/control/mesh.c, registry.c, push.c; docs/internals/control-protocol.md)
 * Proxies connect to --mesh over the control link (include/sinew/xds.h);
 * sinewd registers the workload of each proxy that has an inbound
 * listener, answers lazy subscriptions and pushes deltas on every change
 * of the store or the registry. */

#define SN_MESH_MAX_PROXIES 10000

struct sn_mesh;
struct sn_mesh_proxy;
struct sn_out;

/* Listens on addr (borrowed) for proxies and serves them on loop. *out
 * gets the mesh (free with sn_mesh_stop). Returns 0, SN_ENOMEM or SN_EIO
 * (errno set). */
struct sn_ca_service;
struct sn_traces;
struct sn_stats;
struct sn_mesh_opts {
	/* The CA: the mesh port speaks TLS with its own certificate, issues
	 * certificates to proxies and pushes the trust bundle. NULL:
	 * plaintext only (tests of the push protocol). */
	struct sn_ca_service *ca;
	int allow_plaintext;        /* also serve plaintext proxies (sinewd --mesh-plaintext) */
	int no_auto_rotate;         /* tests: no rotation when the CA nears expiry */
	uint32_t renew_spread_ms;   /* a rotation's renewals spread over this (0: 5 s) */
	uint32_t phase_timeout_ms;  /* a rotation phase waits this long for a silent proxy (0: 10 min) */
	struct sn_traces *traces;   /* where `spans` messages go (borrowed); NULL: they are dropped */
	struct sn_stats *stats;     /* where `stats` messages go (borrowed); NULL: they are dropped */
	const char *replica;        /* this sinewd's --mesh address, each proxy's "replica" in the
				     * API (borrowed); NULL: not said */
};
/* opts may be NULL (no CA). */
int sn_mesh_start(struct sn_mesh **out, struct sn_loop *loop, struct sn_store *st, const struct sockaddr *addr,
		  socklen_t addr_len, const struct sn_mesh_opts *opts);
/* A second listener, bound (not yet listening) by the caller: sinewd
 * --pod-mesh binds one inside the pods' network namespace. */
int sn_mesh_add_listener(struct sn_mesh *m, int fd);
/* `sinew ca rotate`: starts a rotation (sn_ca_service_rotate_begin) and
 * drives it through its phases. Returns 0 or SN_E* with err set. */
int sn_mesh_ca_rotate(struct sn_mesh *m, const char *why, char *err, size_t err_size);
/* Closes the listener and every proxy link (their close callbacks run in
 * the loop's next deferred phase: run it once, then sn_mesh_free). NULL
 * is fine. */
void sn_mesh_stop(struct sn_mesh *m);
void sn_mesh_free(struct sn_mesh *m);
/* The store changed (apply, delete): every proxy gets what changed for
 * it, from the loop's deferred phase. NULL is fine. */
void sn_mesh_store_changed(struct sn_mesh *m);
/* Tap (src/control/tap.c, docs/api.md "Tap"): which proxies, and what of
 * their requests. Empty strings select everything. */
struct sn_tap_query {
	char ns[64], workload[254], pod[81], proxy[201];
	char direction[16];         /* "inbound", "outbound", "" both */
	char method[24], path[256], authority[256];
	char status[8];             /* "503", "5xx", "" */
	char redact[512];           /* header names, comma-separated, redacted beyond the four always redacted */
	int bodies;
	uint64_t max_events;        /* 0: no limit */
	uint32_t duration_ms;       /* 0: 10 minutes; at most an hour */
};
/* Whether a request's authorization field (SN_STR_NULL when absent)
 * carries the tap token: 0, or 401/403/503 with why. */
int sn_mesh_tap_authorize(struct sn_mesh *m, struct sn_str authorization, char *why, size_t size);
/* Starts a tap session on fd, a client connection whose request was read
 * (its response is the stream): 0 (fd taken), or an HTTP status with err
 * (fd left to the caller). */
int sn_mesh_tap_start(struct sn_mesh *m, int fd, const struct sn_tap_query *q, char *err, size_t size);
/* GET /api/v1/proxies/ID/metrics (src/control/scrape.c): the proxy's
 * /metrics text, asked over its control link, answered on fd (a client
 * connection whose request was read): 0 (fd taken), or an HTTP status with
 * err (fd left to the caller). */
int sn_mesh_scrape_start(struct sn_mesh *m, int fd, const char *proxy_id, char *err, size_t size);
/* GET /api/v1/proxies: a JSON array, one object per connected proxy. */
void sn_mesh_render_proxies(struct sn_mesh *m, struct sn_out *o);
/* Every connected proxy's admin address as Prometheus HTTP SD target
 * groups (prom_sd.c; GET /api/v1/prometheus/targets). */
void sn_mesh_render_prom_sd(struct sn_mesh *m, const char *api_addr, struct sn_out *o);
/* Appends `,"proxies":{...}` for the resource kind ns/name (its
 * resourceVersion rv) to a status object being written. NULL m writes
 * nothing. */
void sn_mesh_render_resource_status(struct sn_mesh *m, struct sn_out *o, enum sn_resource_kind kind,
				    const char *ns, const char *name, const char *rv);
/* Registered WorkloadEntries, sorted by namespace and name: *out gets a
 * malloc'd array (the caller frees the array, not the proxies; valid until
 * the loop runs again). Returns how many. */
size_t sn_mesh_registered(struct sn_mesh *m, struct sn_mesh_proxy ***out);
const char *sn_mesh_registered_ns(const struct sn_mesh_proxy *p);
const char *sn_mesh_registered_name(const struct sn_mesh_proxy *p);
/* Its WorkloadEntry as YAML. */
const char *sn_mesh_registered_text(const struct sn_mesh_proxy *p);
/* One registered WorkloadEntry as a GET /api/v1/resources element. */
void sn_mesh_render_registered(struct sn_mesh *m, const struct sn_mesh_proxy *p, struct sn_out *o);

/* ---- the CA (src/control/ca.c; docs/internals/identity.md) ------------
 * sinewd's certificate authority: its root (generated in DATA_DIR/ca or
 * the user's --ca-cert/--ca-key), the join-token secret, the spent-token
 * record, and issuance of X.509-SVIDs against a join token or, for
 * renewal, the caller's current SVID plus a proof of its key. Keys and
 * tokens are never logged; token nonces are. */

#define SN_CA_TOKEN_TTL_DEFAULT 3600u            /* seconds */
#define SN_CA_TOKEN_TTL_MAX (24u * 3600u)
#define SN_CA_MAX_SPENT 100000u                  /* unexpired spent tokens remembered */
#define SN_CA_SPENT_GRACE 300                    /* s a spent nonce outlives its token (clock steps) */
#define SN_CA_MAX_CERT_PEM (64u << 10)           /* bytes of a certificate chain in a request */
#define SN_CA_MAX_CSR_PEM (16u << 10)
/* What a renewal signature covers: this string, its NUL, then the CSR's DER
 * (domain separation: the workload key also signs TLS handshakes). */
#define SN_CA_RENEW_CONTEXT "sinew SVID renewal v1"

struct sn_ca_service;

struct sn_ca_service_opts {
	const char *data_dir;       /* the CA lives in DATA_DIR/ca (created 0700) */
	const char *trust_domain;   /* NULL: cluster.local */
	const char *cert_file;      /* user CA: issuer … root PEM; NULL: generate/load in DATA_DIR/ca */
	const char *key_file;       /* the issuer's key (PEM); with cert_file */
	int no_sync;                /* tests only: skip fsync */
	time_t now;                 /* 0: the wall clock */
	uint32_t root_ttl;          /* generated roots, seconds; 0: 1 year */
	int intermediate;           /* generated CAs issue from an intermediate */
	uint32_t leaf_ttl;          /* seconds; 0: 24 h */
	/* Several replicas (etcd): the join-token secret they share (32
	 * bytes; NULL: DATA_DIR/ca/token.key), and where a token's nonce is
	 * spent so that it is spent for every replica: spend returns 0 when
	 * it was free and is now spent until `until`, 1 when it was spent
	 * already, -1 with why in err (NULL: DATA_DIR/ca/used-nonces). */
	const uint8_t *token_secret;
	int (*spend)(void *arg, const char *nonce_hex, time_t until, char *err, size_t err_size);
	void *spend_arg;
};

/* Root rotation (docs/internals/identity.md, "Root rotation"). */
enum sn_ca_phase {
	SN_CA_STABLE,               /* one root */
	SN_CA_DISTRIBUTING,         /* next root trusted everywhere first; old issuer still signs */
	SN_CA_MIGRATING,            /* new issuer signs; old roots trusted until every leaf moved */
};

/* Why a CA request was refused: the HTTP status to answer (400, 401, 500,
 * 503) and a sentence that never holds a key or a token. */
struct sn_ca_refusal {
	int status;
	char msg[512];
};

/* A certificate just issued; strings malloc'd, freed by sn_ca_issued_free. */
struct sn_ca_issued {
	char *certificate;          /* the leaf, PEM */
	char *spiffe_id;
	char serial[41];            /* hex */
	time_t not_before, not_after;
};

/* Opens the CA: loads the user's files, or DATA_DIR/ca/{root.pem,
 * issuer.pem, key.pem}, or creates a self-signed root there (root.pem is
 * written last: it marks a complete CA); loads or creates token.key and
 * the spent-token record. *out is the caller's (sn_ca_service_free).
 * Returns 0, or a negative SN_E* with a sentence in err. Not for
 * callbacks (file I/O, fsync). */
int sn_ca_service_open(const struct sn_ca_service_opts *o, struct sn_ca_service **out, char *err, size_t err_size);
void sn_ca_service_free(struct sn_ca_service *s);

/* Parses a token lifetime: "90s", "30m", "1h", "1h30m", or plain seconds.
 * Returns 0 with *out in [1, SN_CA_TOKEN_TTL_MAX], or SN_EINVAL. */
int sn_ca_parse_ttl(const char *s, uint32_t *out);

/* Mints a join token for ns/sa valid for ttl seconds. *token (a secret,
 * malloc'd, the caller's) and *nonce_hex (safe to log). Returns 0, or a
 * negative SN_E* with why (400 for a bad identity). */
int sn_ca_service_mint(struct sn_ca_service *s, const char *ns, const char *sa, uint32_t ttl, time_t now,
		       char **token, char nonce_hex[33], time_t *expires_at, struct sn_ca_refusal *why);

/* Signs csr_pem for the identity token names, once: checks the MAC,
 * expiry, trust domain and root pin, refuses a spent nonce, signs, then
 * records the nonce durably before returning 0 (nothing is issued
 * otherwise). A bad CSR (400) does not spend the token. nonce_hex (may be
 * NULL) gets the token's nonce when it verified. */
int sn_ca_service_issue(struct sn_ca_service *s, const char *token, size_t token_len, const char *csr_pem,
			size_t csr_len, time_t now, struct sn_ca_issued *out, char nonce_hex[33],
			struct sn_ca_refusal *why);

/* Renewal: signs csr_pem for the identity of cert_pem (the caller's
 * current leaf, then any intermediates) if that leaf is a valid SVID of
 * this CA's bundle now and sig (base64 DER ECDSA-SHA256 made with the
 * leaf's key over SN_CA_RENEW_CONTEXT, NUL, CSR DER) verifies. want_id
 * (may be NULL) must then equal the leaf's SPIFFE ID. */
int sn_ca_service_renew(struct sn_ca_service *s, const char *cert_pem, size_t cert_len, const char *csr_pem,
			size_t csr_len, const char *sig_b64, size_t sig_len, const char *want_id, time_t now,
			struct sn_ca_issued *out, struct sn_ca_refusal *why);

void sn_ca_issued_free(struct sn_ca_issued *c);

/* Borrowed PEM texts, valid until sn_ca_service_free: the intermediates
 * between leaves and the root ("" without), and the trust bundle. */
const char *sn_ca_service_chain_pem(const struct sn_ca_service *s);
const char *sn_ca_service_bundle_pem(const struct sn_ca_service *s);
/* The issuing CA's root, PEM. */
const char *sn_ca_service_root_pem(const struct sn_ca_service *s);
const char *sn_ca_service_trust_domain(const struct sn_ca_service *s);
/* The current root's SHA-256 (the token pin) as 64 hex digits and a NUL. */
void sn_ca_service_root_sha256_hex(const struct sn_ca_service *s, char out[65]);

enum sn_ca_phase sn_ca_service_phase(const struct sn_ca_service *s);
const char *sn_ca_phase_str(enum sn_ca_phase p);
/* Bumped whenever the trust bundle changes (proxies are sent it again). */
uint64_t sn_ca_service_bundle_version(const struct sn_ca_service *s);
/* Bumped when a new issuer takes over: a leaf signed at an older
 * generation chains to a root on its way out. */
uint64_t sn_ca_service_issuer_gen(const struct sn_ca_service *s);
/* The issuing CA's expiry: min(issuer, root) notAfter; *not_before (may
 * be NULL) the issuer's notBefore. */
time_t sn_ca_service_issuer_not_after(const struct sn_ca_service *s, time_t *not_before);
/* stable -> distributing: a new CA (root, and intermediate if configured)
 * written to DATA_DIR/ca/next and added to the bundle. Refused for a
 * user-provided CA (SN_EINVAL) or during a rotation (SN_ELIMIT). */
int sn_ca_service_rotate_begin(struct sn_ca_service *s, time_t now, char *err, size_t err_size);
/* distributing -> migrating: the next CA becomes the issuer; the old
 * root stays in the bundle (DATA_DIR/ca/previous.pem). */
int sn_ca_service_rotate_switch(struct sn_ca_service *s, char *err, size_t err_size);
/* migrating -> stable: old roots leave the bundle. */
int sn_ca_service_rotate_finish(struct sn_ca_service *s, char *err, size_t err_size);

/* The cross-certificate of a switch (docs/internals/identity.md, "Tokens
 * across a root switch"): the current root certified by the previous
 * root's key, then the previous root, PEM; "" when there is none. Join
 * tokens pinning the previous root are honoured while it is held. */
const char *sn_ca_service_cross_pem(const struct sn_ca_service *s);
/* Drops the cross-certificate once past its notAfter (and its file).
 * Returns 1 if it dropped one (the mesh port's chain must change), else 0. */
int sn_ca_service_expire_cross(struct sn_ca_service *s, time_t now);
/* Signs csr_pem for ns/sa: for a caller that authenticated the holder
 * itself (a proxy's mTLS peer identity, or sinewd's own identity). */
int sn_ca_service_issue_for(struct sn_ca_service *s, const char *ns, const char *sa, const char *csr_pem,
			    size_t csr_len, time_t now, struct sn_ca_issued *out, struct sn_ca_refusal *why);

/* GET /api/v1/ca: trust domain, roots (PEM, SHA-256, dates), issuer. */
void sn_ca_service_render(const struct sn_ca_service *s, struct sn_out *o, time_t now);

/* Spent tokens remembered now (tests, diagnostics). */
size_t sn_ca_service_spent_count(const struct sn_ca_service *s);

/* ---- traces (src/control/traces.c; docs/api.md "Traces") -------------
 * Recent traces, kept in memory so they are visible with nothing else
 * installed: proxies send their spans over the control link (a `spans`
 * message) and OTLP exporters to POST /v1/traces on the API port; both go
 * into one store, which the API lists and shows. Bounded: oldest traces
 * (first seen) leave to make room. Reading in and rendering out:
 * src/control/traces.h. */

#define SN_TRACES_MAX_TRACES 2000u
#define SN_TRACES_MAX_SPANS 1000u                /* per trace; more are dropped and counted */
#define SN_TRACES_MAX_BYTES (64u << 20)          /* the whole store; a trace at most 1/8 of it */
#define SN_TRACES_MAX_ATTRS 64u                  /* per span, per resource; more are dropped */
#define SN_TRACES_MAX_KEY 256u                   /* an attribute key longer is dropped */
#define SN_TRACES_MAX_VALUE 1024u                /* strings, names, messages: truncated to this */

struct sn_traces;

/* Bounds of a store; 0 takes the SN_TRACES_MAX_* default (tests and the
 * fuzz target use small ones). */
struct sn_traces_limits {
	size_t traces;
	size_t spans_per_trace;
	size_t bytes;
};

/* Makes an empty store; lim may be NULL. Returns it, or NULL (no memory).
 * Free with sn_traces_free (NULL is fine). */
struct sn_traces *sn_traces_new(const struct sn_traces_limits *lim);
void sn_traces_free(struct sn_traces *t);

/* ---- live stats (src/control/stats.c; docs/api.md "Stats") ----------
 * The request counts every proxy sends over its control link (a `stats`
 * message), kept as a time series in memory for `sinew stat` and `sinew
 * edges`: the last hour, per (reporter, source workload, destination
 * workload, destination service, mTLS), in slots of --stats-resolution.
 * Bounded: past the bounds the key updated longest ago goes first.
 * Reading in and rendering out: src/control/stats.h. */

#define SN_STATS_RETENTION_MS 3600000u
#define SN_STATS_RESOLUTION_DEFAULT_MS 10000u
#define SN_STATS_MAX_KEYS 20000u                  /* aggregation keys */
#define SN_STATS_MAX_SLOTS (1u << 20)             /* time slots over every key, 96 bytes each */
#define SN_STATS_MAX_PROXIES 20000u               /* proxy records: connected, or within the hour */
#define SN_STATS_MAX_BASELINES 400000u            /* series remembered over every proxy, 96 bytes each */
#define SN_STATS_MAX_SERIES 65536u                /* series in one message */

struct sn_stats;

/* Bounds of a store; 0 takes the default above (tests and the fuzz target
 * use small ones). resolution_ms: 1 s to 10 min. */
struct sn_stats_limits {
	uint32_t resolution_ms;
	size_t keys;
	size_t slots;
	size_t proxies;
	size_t baselines;
};

/* Makes an empty store; lim may be NULL. Returns it, or NULL (no memory).
 * Free with sn_stats_free (NULL is fine). */
struct sn_stats *sn_stats_new(const struct sn_stats_limits *lim);
void sn_stats_free(struct sn_stats *s);

/* ---- the HTTP API ---------------------------------------------------- */

struct sn_api {
	struct sn_loop *loop;
	struct sn_store *store;
	struct sn_hsrv srv;         /* the HTTP server (src/http/server.c); srv.conns: open connections */
	const char *mesh_addr;      /* recorded for /api/v1/version */
	const char *api_addr;       /* "host:port" it listens on: the scrape relay's targets in the SD */
	/* sinewd --prometheus: GET /api/v1/stats, /edges and /routes answered
	 * elsewhere (src/sinewd/prom_views.c): takes fd, a client connection
	 * whose request (path with its query) was read, and returns 0, or an
	 * HTTP status with err (fd left to the API). NULL: the built-in store. */
	int (*stats_from)(int fd, const char *path, char *err, size_t size);
	struct sn_mesh *mesh;       /* may be NULL: no proxies, no push */
	struct sn_ca_service *ca;   /* may be NULL: the CA endpoints answer 503 */
	struct sn_traces *traces;   /* may be NULL: the trace endpoints answer 503 */
	struct sn_stats *stats;     /* may be NULL: /api/v1/stats and /api/v1/edges answer 503 */
	uint64_t started_ms;
	int admit_in_process;       /* fuzzing only: admission in this process, so the
				     * fuzzer sees it (sinewd always isolates it) */
};

/* Listens on addr (borrowed, loopback in this slice) and serves requests
 * on loop. Returns 0 or SN_EIO (errno set). */
int sn_api_start(struct sn_api *api, struct sn_loop *loop, struct sn_store *st,
		 const struct sockaddr *addr, socklen_t addr_len);
void sn_api_stop(struct sn_api *api);

/* ---- the dashboard (src/control/dashboard.c; web/dashboard/) --------- */

/* Headers every dashboard response carries: the browser may load nothing
 * from anywhere but sinewd, and the page is never framed. */
#define SN_DASHBOARD_HEADERS                                                                           \
	"content-security-policy: default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "      \
	"form-action 'none'\r\n"                                                                      \
	"x-content-type-options: nosniff\r\nx-frame-options: DENY\r\nreferrer-policy: no-referrer\r\n" \
	"cache-control: no-cache\r\n"

/* One file of the dashboard, embedded into sinewd at build time. */
struct sn_dashboard_file {
	const char *name;           /* "index.html", "app.js" */
	const char *content_type;   /* "text/html; charset=utf-8" ... */
	const unsigned char *data;  /* static; NUL after the last byte */
	size_t len;
};

/* The file served at route (the request path without its query): "/"
 * and "/index.html" are the page, "/ui/NAME" its files. Fills *out (its
 * pointers are static) and returns 0, or SN_ENOTFOUND (the API answers
 * 404). */
int sn_dashboard_find(const char *route, size_t len, struct sn_dashboard_file *out);
/* Whether route is the dashboard's ("/", "/index.html" or under "/ui/"),
 * known file or not: the API answers 404/405 for it, not "no endpoint". */
int sn_dashboard_owns(const char *route, size_t len);
/* The embedded file names, comma-separated, into buf (for a 404). */
void sn_dashboard_list(char *buf, size_t size);


#define SINEWD_VERSION "0.1.0-dev"

#endif
