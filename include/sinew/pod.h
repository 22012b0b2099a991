#ifndef SINEW_POD_H
#define SINEW_POD_H

/* Pods for `sinew run` (src/pod/): a network namespace per workload,
 * attached by a veth pair to a bridge in a namespace Sinew owns (the
 * mesh network, which has no uplink: the host's interfaces, routes and
 * rules are never touched), iptables capture rules in the pod as Istio's
 * init container installs them, the checks that those rules work (fail
 * closed, DESIGN.md §6), per-pod /etc/hosts, and the state directory
 * that records every pod so that `sinew down` removes all of it, also
 * after a crash. docs/internals/pods.md describes the whole.
 *
 * Functions return 0 or a negative SN_E* code; those that take err fill
 * it with one line saying what failed and what to do. None is
 * thread-safe with respect to the same state directory except through
 * sn_pod_state_lock. Most need root (CAP_NET_ADMIN and CAP_SYS_ADMIN). */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Names and well-known ports (DESIGN.md §8). */
#define SN_POD_MESH_NETNS "sn-mesh"        /* default mesh namespace */
#define SN_POD_BRIDGE "snbr0"              /* the bridge inside it */
#define SN_POD_DEFAULT_CIDR "10.88.0.0/16" /* pod range; its first host is the gateway */
#define SN_POD_VIP_NET 0x0a600000u         /* 10.96.0.0/16: service VIPs (host order); no pod range overlaps it */
#define SN_POD_PORT_OUTBOUND 15001         /* outbound capture */
#define SN_POD_PORT_INBOUND 15006          /* inbound capture */
#define SN_POD_PORT_ADMIN 15020            /* proxy admin: /ready, /metrics */
#define SN_POD_PORT_HEALTH 15021           /* kept out of capture like Istio's */
#define SN_POD_PORT_CONTROL 15012          /* sinewd's mesh port on the gateway */
#define SN_POD_PORT_PROBE 15999            /* capture probe destination port */
#define SN_POD_PROXY_UID 1337              /* the proxy's uid and gid (numeric) */
#define SN_POD_PROBE_OK "sinew-capture-ok" /* the proxy's probe answer: "sinew-capture-ok POD\n" */

#define SN_POD_NAME_MAX 80     /* pod and netns names, NUL included */
#define SN_POD_IFNAME_MAX 16   /* IFNAMSIZ */
#define SN_POD_FIELD_MAX 256   /* service, labels, ports ... in a record */

/* ---- addresses (pure; src/pod/addr.c) ----------------------------------- */

/* An IPv4 range; addresses in host byte order. */
struct sn_pod_cidr {
	uint32_t net;
	unsigned prefix;   /* 8..28 */
};

/* Parses "10.88.0.0/16". The host part must be zero and the prefix 8..28
 * (room for the gateway, the probe address and pods). Returns 0 or
 * SN_EINVAL with why in err. */
int sn_pod_cidr_parse(const char *s, struct sn_pod_cidr *out, char *err, size_t err_size);
/* The gateway (first host: the bridge's address in the mesh namespace). */
uint32_t sn_pod_cidr_gateway(const struct sn_pod_cidr *c);
/* The capture probe address (last host; never given to a pod). */
uint32_t sn_pod_cidr_probe(const struct sn_pod_cidr *c);
/* The lowest host address of c that is not the gateway, the probe address
 * or in used[0..n_used). Returns 0 with *out set, or SN_ELIMIT when the
 * range is full. */
int sn_pod_addr_pick(const struct sn_pod_cidr *c, const uint32_t *used, size_t n_used, uint32_t *out);
/* Dotted quad of a host-order address into buf (16 bytes suffice). */
void sn_pod_addr_str(uint32_t addr, char *buf, size_t size);
/* Parses a dotted quad into a host-order address. Returns 0 or SN_EINVAL. */
int sn_pod_addr_parse(const char *s, uint32_t *out);
/* "10.88.0.0/16" for c. */
void sn_pod_cidr_str(const struct sn_pod_cidr *c, char *buf, size_t size);

/* ---- capture rules (src/pod/capture.c) ---------------------------------- */

struct sn_pod_capture {
	unsigned proxy_uid;        /* its TCP is never captured (SN_POD_PROXY_UID) */
	unsigned inbound_port;     /* REDIRECT target for inbound (15006) */
	unsigned outbound_port;    /* REDIRECT target for outbound (15001) */
	const unsigned *inbound_exclude;  /* inbound destination ports left alone */
	size_t n_inbound_exclude;
	const unsigned *outbound_exclude; /* outbound destination ports left alone */
	size_t n_outbound_exclude;
};

/* The defaults: uid 1337, 15006/15001, inbound 15020 and 15021 and
 * outbound 15020 and 15021 excluded. Static storage. */
const struct sn_pod_capture *sn_pod_capture_default(void);

/* Renders c as one iptables-restore script for the nat table (chains
 * SINEW_INBOUND, SINEW_IN_REDIRECT, SINEW_OUTPUT, SINEW_REDIRECT), applied
 * at once by iptables-restore. Returns its length (NUL written) or
 * SN_ELIMIT when size is too small. */
int sn_pod_capture_script(const struct sn_pod_capture *c, char *buf, size_t size);
/* Applies sn_pod_capture_script(c) inside netns with iptables-restore
 * (replacing the namespace's nat table: one atomic apply). */
int sn_pod_capture_install(const char *netns, const struct sn_pod_capture *c, char *err, size_t err_size);
/* 1 when `iptables-save -t nat` inside netns shows every rule of
 * sn_pod_capture_script(c), 0 when not (err names the first one missing),
 * negative when it cannot be read. */
int sn_pod_capture_present(const char *netns, const struct sn_pod_capture *c, char *err, size_t err_size);
/* The functional probe, run as the caller (root, not the proxy's uid):
 * connects from inside netns to probe_addr:SN_POD_PORT_PROBE, where
 * nothing listens. With the rules in place the connection reaches the
 * proxy's outbound listener, which answers "sinew-capture-ok POD\n" for
 * this original destination. Returns 1 when that line came back naming
 * pod, 0 when not (err says what happened), negative on local errors. */
int sn_pod_capture_probe(const char *netns, uint32_t probe_addr, const char *pod, int timeout_ms, char *err,
			 size_t err_size);

/* ---- namespaces and processes (src/pod/netns.c) ------------------------- */

/* A socket of (domain, type, proto) created inside the named network
 * namespace (/run/netns/NAME) by a short-lived thread that setns()es
 * there, so the caller's own namespace is untouched; the socket keeps
 * the namespace for its life (bind/connect happen there). netns NULL:
 * the caller's namespace. Returns the fd (close-on-exec) or a negative
 * SN_E* code with errno set. Safe to call from any thread. */
int sn_pod_socket_in_netns(const char *netns, int domain, int type, int proto);
/* What `ip netns exec NETNS` does before exec, for a child process:
 * setns into /run/netns/NETNS, a private mount namespace, /sys remounted
 * for that namespace, and each file of /etc/netns/NETNS bind-mounted over
 * the one of the same name in /etc. Call only in a child after fork. */
int sn_pod_enter(const char *netns, char *err, size_t err_size);
/* 1 if /run/netns/NAME exists. */
int sn_pod_netns_exists(const char *netns);
/* Runs argv (argv[0] looked up in /usr/sbin, /sbin, /usr/bin, /bin, then
 * PATH), input (may be NULL) on its stdin, stdout and stderr into out
 * (bounded, NUL-terminated; may be NULL). Returns the exit status (0..255),
 * 256 + signal when killed, or a negative SN_E* code when it could not be
 * run. */
int sn_pod_exec(char *const argv[], const char *input, size_t input_len, char *out, size_t out_size);
/* The process start time (field 22 of /proc/PID/stat, clock ticks since
 * boot) or 0 when pid does not exist. A pid with another start time than
 * recorded is another process. */
unsigned long long sn_pod_proc_start(pid_t pid);
/* 1 when pid exists with that start time (0: any) and is not a zombie. */
int sn_pod_proc_alive(pid_t pid, unsigned long long start);
/* Up to max pids of processes whose network namespace is netns (as
 * `ip netns pids`). Returns the count (may exceed max) or negative. */
int sn_pod_netns_pids(const char *netns, pid_t *pids, size_t max);

/* ---- state (src/pod/state.c) -------------------------------------------- */

/* A pod's record: DIR/NAME.pod, lines "key=value", replaced atomically
 * (written to DIR/.NAME.pod.tmp, then renamed). Written before anything
 * is created, updated as things are, removed last. */
struct sn_pod_proc {
	pid_t pid;                  /* 0: none */
	unsigned long long start;   /* sn_pod_proc_start when recorded */
};

enum sn_pod_state {
	SN_POD_STATE_CREATING,   /* record written; namespace and links being made */
	SN_POD_STATE_STARTING,   /* proxy started, waiting for readiness */
	SN_POD_STATE_RUNNING,    /* the app runs */
	SN_POD_STATE_STOPPING,   /* being removed */
};

struct sn_pod {
	char name[SN_POD_NAME_MAX];        /* also the netns name: sn-SERVICE-RANDOM */
	char netns[SN_POD_NAME_MAX];       /* "" with --no-capture (no namespace) */
	char mesh_netns[SN_POD_NAME_MAX];
	char veth_mesh[SN_POD_IFNAME_MAX]; /* end in the mesh namespace, on the bridge */
	char veth_pod[SN_POD_IFNAME_MAX];  /* end in the pod: "eth0" */
	char address[16];                  /* "10.88.0.2"; "127.0.0.1" with --no-capture */
	char admin[64];                    /* proxy admin ADDR:PORT, as seen from the pod */
	char service[SN_POD_FIELD_MAX];
	char namespace_[SN_POD_FIELD_MAX];
	char service_account[SN_POD_FIELD_MAX];
	char labels[SN_POD_FIELD_MAX];     /* "k=v,k=v" */
	char ports[SN_POD_FIELD_MAX];      /* "9080/http,9090" */
	int capture;                       /* 1: netns and capture rules (none for a gateway) */
	int gateway;                       /* sinew gateway run: the proxy is the workload, no capture rules */
	enum sn_pod_state state;
	struct sn_pod_proc supervisor;     /* the `sinew run` process */
	struct sn_pod_proc proxy;
	struct sn_pod_proc app;
	long long created;                 /* unix seconds */
};

/* The mesh network's record: DIR/mesh, written before the namespace is
 * created, removed after it is deleted. */
struct sn_pod_mesh {
	char netns[SN_POD_NAME_MAX];
	char bridge[SN_POD_IFNAME_MAX];
	struct sn_pod_cidr cidr;
};

const char *sn_pod_state_str(enum sn_pod_state s);

/* The pod state directory inside a data directory (`sinew up`'s):
 * DATA_DIR/pods. Returns 0 or SN_EINVAL when it does not fit. */
int sn_pod_state_dir(const char *data_dir, char *buf, size_t size);
/* Creates DIR (0700) if needed. */
int sn_pod_state_dir_make(const char *dir, char *err, size_t err_size);
/* Takes an exclusive lock on DIR/.lock (blocking); returns the fd to pass
 * to sn_pod_state_unlock, or negative. Serialises name and address
 * choice, mesh creation and `sinew down`. */
int sn_pod_state_lock(const char *dir, char *err, size_t err_size);
void sn_pod_state_unlock(int fd);

/* Renders p as record text into buf. Returns the length or SN_ELIMIT. */
int sn_pod_record_render(const struct sn_pod *p, char *buf, size_t size);
/* Parses record text; unknown keys are ignored, a missing key leaves the
 * field zero. Returns 0, or SN_EINVAL when there is no name= line. */
int sn_pod_record_parse(const char *text, size_t len, struct sn_pod *p);
int sn_pod_record_write(const char *dir, const struct sn_pod *p, char *err, size_t err_size);
/* Reads DIR/NAME.pod. Returns 0, SN_ENOTFOUND, or SN_EINVAL (then p->name
 * is still set from NAME so the pod can be removed). */
int sn_pod_record_read(const char *dir, const char *name, struct sn_pod *p);
/* Removes DIR/NAME.pod and its temp file. */
void sn_pod_record_remove(const char *dir, const char *name);
/* Every pod named in DIR: records, and temp files of records never
 * renamed (a crash while writing the first one). *out is malloc'd (free
 * it); a record that does not parse yields an entry with only the name
 * (its netns is the name). Sorted by name. Returns 0 or negative. */
int sn_pod_record_list(const char *dir, struct sn_pod **out, size_t *n);

int sn_pod_mesh_read(const char *dir, struct sn_pod_mesh *m);   /* 0 or SN_ENOTFOUND / SN_EINVAL */
int sn_pod_mesh_write(const char *dir, const struct sn_pod_mesh *m, char *err, size_t err_size);
void sn_pod_mesh_forget(const char *dir);

/* ---- hosts (src/pod/hosts.c) -------------------------------------------- */

/* One line of a pod's /etc/hosts: address and name; with ns set also
 * NAME.NS and NAME.NS.svc.cluster.local (a Service's VIP). */
struct sn_pod_host {
	const char *address;
	const char *name;
	const char *ns;   /* may be NULL */
};

/* The hosts text: localhost lines, then one line per entry. Returns the
 * length or SN_ELIMIT. */
int sn_pod_hosts_render(const struct sn_pod_host *entries, size_t n, char *buf, size_t size);
/* Writes /etc/netns/POD/hosts (and resolv.conf, once: no name server; the
 * pod resolves through its hosts file) so processes started in the pod
 * see them as /etc/hosts and /etc/resolv.conf. Rewrites the file in place
 * (truncate and write, never rename: running processes see it through a
 * bind mount of the file). Callable any time, e.g. when VIPs change. */
int sn_pod_hosts_write(const char *pod, const struct sn_pod_host *entries, size_t n, char *err,
		       size_t err_size);
/* Removes /etc/netns/POD (and /etc/netns when left empty). */
void sn_pod_hosts_remove(const char *pod);

/* ---- the mesh network and pods (src/pod/pod.c) ------------------------- */

/* Makes sure the mesh namespace and its bridge exist with the gateway
 * address and are up. Records m in DIR first. Refuses when the namespace
 * exists but DIR does not record it (another data directory's mesh).
 * Call with the state lock held. */
int sn_pod_mesh_ensure(const char *dir, const struct sn_pod_mesh *m, char *err, size_t err_size);
/* Deletes the mesh namespace (and with it the bridge and any veth ends
 * left) and forgets it. Idempotent. Sets *removed when something was. */
int sn_pod_mesh_remove(const char *dir, int *removed, char *err, size_t err_size);

/* A new pod name "sn-SERVICE-xxxxxx" (random hex) used by no record and no
 * namespace. */
int sn_pod_name_new(const char *dir, const char *service, char *buf, size_t size);
/* The addresses of every recorded pod (live or crashed: a crashed pod's
 * address is reclaimed only when its record is removed). *out malloc'd. */
int sn_pod_used_addrs(const char *dir, uint32_t **out, size_t *n);

/* Creates p's namespace (p->name), the veth pair (p->veth_mesh on the
 * mesh bridge, p->veth_pod renamed eth0 in the pod) with p->address, lo
 * up, the default route via the gateway, and IPv6 off on eth0 (capture is
 * IPv4); for a gateway pod, every port open to unprivileged users (its
 * proxy, uid 1337, listens on its Gateways' ports, 80 included). The caller has written p's record first, so that a failure or a
 * crash half way leaves nothing `sinew down` does not know of. */
int sn_pod_create(const struct sn_pod_mesh *m, const struct sn_pod *p, char *err, size_t err_size);

/* Removes a pod: SIGTERM to its recorded processes (supervisor, app,
 * proxy; each only if its start time matches) and to every process in its
 * namespace, SIGKILL after grace_ms, then the namespace (which takes the
 * veth pair and the rules with it), /etc/netns/NAME, and the record last.
 * Idempotent; works from a record that only has a name. */
int sn_pod_remove(const char *dir, const struct sn_pod *p, int grace_ms, char *err, size_t err_size);

/* `sinew down`: under the state lock, removes every pod recorded in DIR
 * (sn_pod_remove), their log files, then the mesh network. Prints one
 * line per thing removed on out. Idempotent; a DIR that does not exist is
 * nothing to do. Returns 0, or negative with err set (a pod could not be
 * removed: the mesh is kept too). */
int sn_pod_down(const char *dir, int grace_ms, FILE *out, char *err, size_t err_size);

/* ---- simulated hosts (src/pod/host.c) ----------------------------------- */

/* A "host" of a mesh spread over machines, simulated on this one: a
 * network namespace sn-h-NAME with its own bridge and pod range, joined to
 * the mesh namespace by a routed veth link (a /30 in 169.254.77.0/24). The
 * mesh namespace is the hub: it routes each host's range over that host's
 * link, and every host routes the rest through it, so pods on any two
 * hosts reach each other and sinewd's gateway address. Records are
 * DIR/NAME.host. docs/internals/pods.md, "Hosts". */
#define SN_POD_HOST_MAX 32        /* hosts per data directory */
#define SN_POD_HOST_NAME_MAX 10   /* "snh-NAME" is the link's end in the mesh: IFNAMSIZ */

struct sn_pod_hostnet {
	char name[SN_POD_HOST_NAME_MAX + 1];
	unsigned index;                   /* 1..SN_POD_HOST_MAX: its link, its default range */
	struct sn_pod_mesh net;           /* its namespace, bridge and pod range */
};

/* Reads DIR/NAME.host. 0, SN_ENOTFOUND or SN_EINVAL. */
int sn_pod_host_read(const char *dir, const char *name, struct sn_pod_hostnet *h);
/* Every host recorded in DIR, sorted by name; *out malloc'd. */
int sn_pod_host_list(const char *dir, struct sn_pod_hostnet **out, size_t *n);
/* Makes host NAME beside the mesh network m (which must exist), or checks
 * the one recorded: its range is cidr, or by default the index-th block
 * of m's size after m's (10.89.0.0/16 for the first with the default
 * 10.88.0.0/16). Records it first. Call with the state lock held. */
int sn_pod_host_ensure(const char *dir, const struct sn_pod_mesh *m, const char *name, const char *cidr,
		       struct sn_pod_hostnet *out, char *err, size_t err_size);
/* The network pod p is on: the mesh network's record, or that of the
 * host whose namespace p->mesh_netns names. 0 or SN_ENOTFOUND. */
int sn_pod_network_of(const char *dir, const struct sn_pod *p, struct sn_pod_mesh *out);
/* Removes every host's namespace (its bridge and link go with it) and
 * record; one line per host on out. Call with the state lock held. */
int sn_pod_hosts_down(const char *dir, FILE *out, char *err, size_t err_size);

/* ---- talking to a pod's proxy (src/pod/probe.c) ------------------------- */

/* GET path from ADDR:PORT (IPv4) through a socket made in netns (NULL: here).
 * *status gets the HTTP status, body (bounded, NUL-terminated) the body.
 * Returns 0 or negative with err set. */
int sn_pod_http_get(const char *netns, const char *addr_port, const char *path, int timeout_ms, int *status,
		    char *body, size_t body_size, char *err, size_t err_size);

#endif
