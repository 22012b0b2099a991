/* Opaque TCP and protocol detection for captured traffic (DESIGN.md §6;
 * issue 6 item 2; docs/internals/proxy.md "Opaque TCP").
 *
 * Outbound (the pod's REDIRECT to --outbound, original destination from
 * SO_ORIGINAL_DST):
 *   - a destination port in --opaque-ports (the server-first ports 25,
 *     587, 3306, 4444, 5432, 6379, 9300, 11211 by default), or a Service
 *     port named or declared tcp/tls/https/mongo/mysql/redis, is TCP at once;
 *   - otherwise the first bytes are sniffed (MSG_PEEK, nothing consumed)
 *     for up to 1 s: an HTTP/1 method and a space is HTTP (the normal
 *     exchange path); anything else, or silence (a server-first protocol),
 *     is TCP;
 *   - TCP goes to the Service whose VIP the client dialled (the pod's
 *     hosts file maps VIPs to NAME.NS.svc.cluster.local; --services-hosts),
 *     to one of its endpoints, in mutual TLS with ALPN sinew/tcp when the
 *     endpoint's proxy holds an identity (or the DestinationRule says
 *     ISTIO_MUTUAL); a destination that is no Service's VIP is connected
 *     to as is (Istio's passthrough).
 * Inbound: a TLS connection that negotiated sinew/tcp is relayed to the
 * app's port on loopback.
 *
 * The relay: two sockets (either may carry TLS), a bounded buffer each way,
 * half-close passed on (FIN, or close_notify over TLS), an idle timeout.
 * Edge-triggered: every event runs both directions until nothing moves. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sinew/client_hello.h"
#include "sinew/log.h"
#include "sinew/tls_stream.h"
#include "proxy.h"

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80   /* linux/netfilter_ipv4.h */
#endif

#define RELAY_BUF 16384
#define SNIFF_MS 1000
#define SNIFF_BYTES 8
#define TCP_IDLE_MS (60u * 60 * 1000)   /* Istio's TCP idle timeout: 1 h */
#define DISCOVERY_WAIT_MS 1000
#define DISCOVERY_STEP_MS 50
#define SNI_WAIT_MS 5000   /* for the rest of a ClientHello */

/* ---- VIP -> service, from the pod's hosts file ---------------------------- */

static pthread_mutex_t vip_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sn_vip *vips;
static size_t n_vips;
static struct timespec vip_mtime;
static off_t vip_size = -1;

/* One line of f, its '\n' consumed, into line (NUL-terminated; a NUL in
 * the line ends it early, as in any C string). Returns 1, 0 at the end of
 * the file, or -1 for a line longer than size - 1 bytes: consumed whole
 * and not stored, so that no piece of it reads as a line of its own. */
static int read_line(FILE *f, char *line, size_t size)
{
	size_t n = 0;
	int c;

	for (;;) {
		c = getc(f);
		if (c == EOF || c == '\n')
			break;
		if (n + 1 < size)
			line[n] = (char)c;
		n++;
	}
	if (c == EOF && n == 0)
		return 0;
	if (n >= size)
		return -1;
	line[n] = '\0';
	return 1;
}

struct sn_vip *sn_tcp_vips_read(FILE *f, size_t *n_out)
{
	size_t n = 0, cap = 64;   /* grown as needed: a pod sees a few services, not 4096 */
	struct sn_vip *v = malloc(cap * sizeof(*v));
	char line[1024];

	*n_out = 0;
	if (v == NULL)
		return NULL;
	while (n < SN_TCP_VIPS_MAX) {
		int r = read_line(f, line, sizeof(line));
		if (r == 0)
			break;
		if (r < 0)
			continue;
		line[strcspn(line, "#")] = '\0';   /* hosts(5): '#' to the end of the line is a comment */
		char *save = NULL, *ip = strtok_r(line, " \t\r", &save);
		struct in_addr a;
		if (ip == NULL || inet_pton(AF_INET, ip, &a) != 1)
			continue;
		for (char *name = strtok_r(NULL, " \t\r", &save); name; name = strtok_r(NULL, " \t\r", &save)) {
			size_t l = strlen(name), dl = strlen(sn_cluster_domain());
			if (l > dl + 5 && l < sizeof(v[n].fqdn) && !strcmp(name + l - dl, sn_cluster_domain()) &&
			    !memcmp(name + l - dl - 5, ".svc.", 5)) {
				if (n == cap) {
					struct sn_vip *bigger = realloc(v, 2 * cap * sizeof(*v));
					if (bigger == NULL) {
						free(v);
						return NULL;
					}
					v = bigger;
					cap *= 2;
				}
				v[n].addr = a.s_addr;
				memcpy(v[n].fqdn, name, l + 1);
				n++;
				break;
			}
		}
	}
	*n_out = n;
	return v;
}

static void vip_reload(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0 || (st.st_size == vip_size && st.st_mtim.tv_sec == vip_mtime.tv_sec &&
				     st.st_mtim.tv_nsec == vip_mtime.tv_nsec))
		return;
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return;
	size_t n;
	struct sn_vip *v = sn_tcp_vips_read(f, &n);
	fclose(f);
	if (v == NULL)
		return;
	free(vips);
	vips = v;
	n_vips = n;
	vip_mtime = st.st_mtim;
	vip_size = st.st_size;
}

/* The Service FQDN whose VIP is addr, into out; 0 if none. */
static int vip_lookup(const char *path, uint32_t addr, char *out, size_t size)
{
	int found = 0;
	if (path == NULL)
		return 0;
	pthread_mutex_lock(&vip_lock);
	vip_reload(path);
	for (size_t i = 0; i < n_vips && !found; i++) {
		if (vips[i].addr == addr) {
			snprintf(out, size, "%s", vips[i].fqdn);
			found = 1;
		}
	}
	pthread_mutex_unlock(&vip_lock);
	return found;
}

/* ---- the relay ------------------------------------------------------------- */

struct side {
	struct sn_xprt x;   /* plain, or mTLS between proxies (ALPN sinew/tcp) */
	struct sn_io io;
	int eof;          /* read side done */
	int shut;         /* we passed the peer's EOF on (FIN / close_notify sent) */
	int connecting;
};

struct sn_tcp {
	struct sn_worker *w;
	struct side d, u;           /* downstream (client side), upstream */
	unsigned char *d2u, *u2d;
	size_t d2u_off, d2u_len, u2d_off, u2d_len;
	size_t d2u_cap, u2d_cap;    /* RELAY_BUF, or more for a tunnel's first bytes */
	struct sn_timer timer;
	int closing;
	uint64_t id;
	char what[600];             /* for logs: "10.96.0.3:6379 -> ratings… 10.88.0.4:6379" */
	/* outbound, waiting for discovery */
	struct sockaddr_in orig;
	char fqdn[254];
	uint64_t waited_ms;
	/* the ClientHello's server name (TLS to a host known by name only,
	 * or a host with tls routes): peeked before the upstream is chosen */
	char sni[256];
	unsigned client_spoke : 1;  /* sniffed: the client sends first, a peek cannot stall */
	unsigned sni_wait : 1;      /* waiting for the rest of the ClientHello */
	unsigned sni_done : 1;
	unsigned metered : 1;       /* counted in Istio's tcp metrics (ml) */
	/* the connection's series: labels borrowed from ml_snap (held) and the
	 * proxy, the principal from ml_id (owned); bytes not yet recorded */
	struct sn_metric_labels ml;
	struct sn_snapshot *ml_snap;
	char *ml_id;
	char ml_dest[INET_ADDRSTRLEN + 6];   /* passthrough: "IP:PORT" */
	uint64_t rx, tx;            /* from the client, to the client */
	uint64_t ml_flushed_ms;
	struct sn_task reclaim;
};

static void relay_pump(struct sn_tcp *t);
static void on_tcp_timer(struct sn_loop *loop, struct sn_timer *tm);

#define METER_FLUSH_MS 5000u   /* a long connection's bytes show this often (Istio: 15 s) */

static void reclaim_tcp(struct sn_loop *loop, struct sn_task *task)
{
	struct sn_tcp *t = sn_container_of(task, struct sn_tcp, reclaim);
	if (t->ml_snap != NULL)
		sn_snapshot_unref(t->ml_snap);
	free(t->ml_id);
	free(t->d2u);
	free(t->u2d);
	free(t);
}

static void side_close(struct sn_worker *w, struct side *s)
{
	if (s->x.fd < 0)
		return;
	sn_io_stop(&w->loop, &s->io);
	sn_xprt_close(&s->x, !s->eof);
}

static void tcp_close(struct sn_tcp *t, const char *why)
{
	if (t->closing)
		return;
	t->closing = 1;
	if (t->metered)
		sn_metrics_record_tcp(t->w->metrics, &t->ml, 0, 1, t->tx, t->rx);
	if (why != NULL)
		sn_log(SN_LOG_DEBUG, "tcp=%llu %s: closed: %s", (unsigned long long)t->id, t->what, why);
	sn_timer_stop(&t->w->loop, &t->timer);
	side_close(t->w, &t->d);
	side_close(t->w, &t->u);
	sn_loop_reclaim(&t->w->loop, &t->reclaim, reclaim_tcp);
}

/* Counts t in Istio's tcp metrics from now on, with labels ml (its
 * strings borrowed from the worker's snapshot, held until t goes, or
 * the proxy; id copied). */
static void tcp_meter(struct sn_tcp *t, const struct sn_metric_labels *ml, const char *id)
{
	t->ml = *ml;
	t->ml.request_protocol = "tcp";
	t->ml.response_flags = "-";
	if (id != NULL && (t->ml_id = strdup(id)) != NULL) {
		if (t->ml.destination_principal == id)
			t->ml.destination_principal = t->ml_id;
		if (t->ml.source_principal == id)
			t->ml.source_principal = t->ml_id;
	} else if (id != NULL) {
		/* no memory for the principal: unknown rather than dangling */
		if (t->ml.destination_principal == id)
			t->ml.destination_principal = NULL;
		if (t->ml.source_principal == id)
			t->ml.source_principal = NULL;
	}
	if (t->w->snap != NULL && t->ml_snap == NULL) {
		t->ml_snap = t->w->snap;
		sn_snapshot_ref(t->ml_snap);
	}
	t->metered = 1;
	t->ml_flushed_ms = sn_loop_now(&t->w->loop);
	sn_metrics_record_tcp(t->w->metrics, &t->ml, 1, 0, 0, 0);
}

/* Passes the other side's EOF on: a FIN, or over TLS close_notify and
 * FIN -- which may have to wait for the handshake to finish or for room
 * in the socket; the pump calls this again until it is out. */
static void side_shut(struct side *s)
{
	if (s->shut || s->x.fd < 0)
		return;
	if (sn_xprt_shutdown(&s->x) != SN_EAGAIN)
		s->shut = 1;   /* sent, or the stream failed: nothing more to send */
}

/* One direction: read from `from` into buf while there is room, write to
 * `to` while there are bytes. Returns 1 if anything moved, 0 if not, -1
 * on error. */
static int move(struct side *from, struct side *to, unsigned char *buf, size_t cap, size_t *off, size_t *len,
		uint64_t *count)
{
	int moved = 0;
	for (;;) {
		int step = 0;
		if (*len == 0)
			*off = 0;   /* all written: the whole buffer is room again */
		if (!from->eof && *off + *len < cap) {
			ssize_t n = sn_xprt_read(&from->x, buf + *off + *len, cap - *off - *len);
			if (n > 0) {
				*len += (size_t)n;
				*count += (uint64_t)n;
				step = 1;
			} else if (n == SN_ECLOSED) {
				from->eof = 1;
				step = 1;
			} else if (n != SN_EAGAIN) {
				return -1;
			}
		}
		if (*len > 0 && !to->connecting) {
			ssize_t n = sn_xprt_write(&to->x, buf + *off, *len);
			if (n > 0) {
				*off += (size_t)n;
				*len -= (size_t)n;
				step = 1;
			} else if (n != SN_EAGAIN) {
				return -1;
			}
		}
		if (from->eof && *len == 0 && !to->connecting)
			side_shut(to);
		if (!step)
			return moved;
		moved = 1;
	}
}

static void relay_pump(struct sn_tcp *t)
{
	if (t->closing || t->u.x.fd < 0)
		return;   /* the upstream is not chosen yet (discovery): its connect runs this again */
	if (t->u.connecting) {
		int err = 0;
		socklen_t l = sizeof(err);
		if (getsockopt(t->u.x.fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0 || (err != 0 && err != EINPROGRESS)) {
			sn_metrics_add(t->w->metrics, SN_CTR_UPSTREAM_CX_CONNECT_FAIL, 1);
			sn_log(SN_LOG_INFO, "tcp=%llu %s: connect failed: %s", (unsigned long long)t->id, t->what,
			       strerror(err ? err : errno));
			tcp_close(t, NULL);
			return;
		}
		if (err == EINPROGRESS)
			return;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		if (getpeername(t->u.x.fd, (struct sockaddr *)&ss, &sl) != 0)
			return;   /* not connected yet */
		t->u.connecting = 0;
		sn_timer_start(&t->w->loop, &t->timer, TCP_IDLE_MS, on_tcp_timer);
	}
	int a = move(&t->d, &t->u, t->d2u, t->d2u_cap, &t->d2u_off, &t->d2u_len, &t->rx);
	int b = a < 0 ? 0 : move(&t->u, &t->d, t->u2d, t->u2d_cap, &t->u2d_off, &t->u2d_len, &t->tx);
	if (a < 0 || b < 0) {
		const char *e = sn_xprt_error(&t->d.x);
		if (e[0] == '\0')
			e = sn_xprt_error(&t->u.x);
		sn_log(SN_LOG_INFO, "tcp=%llu %s: %s", (unsigned long long)t->id, t->what, e[0] ? e : "I/O error");
		tcp_close(t, NULL);
		return;
	}
	if (a || b)
		sn_timer_start(&t->w->loop, &t->timer, TCP_IDLE_MS, on_tcp_timer);
	if (t->metered && (t->rx | t->tx) && sn_loop_now(&t->w->loop) - t->ml_flushed_ms >= METER_FLUSH_MS) {
		sn_metrics_record_tcp(t->w->metrics, &t->ml, 0, 0, t->tx, t->rx);
		t->rx = t->tx = 0;
		t->ml_flushed_ms = sn_loop_now(&t->w->loop);
	}
	if (t->d.eof && t->u.eof && t->d2u_len == 0 && t->u2d_len == 0)
		tcp_close(t, "both sides done");
}

static void outbound_route(struct sn_tcp *t);

static void on_d_io(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct sn_tcp *t = sn_container_of(io, struct sn_tcp, d.io);
	if (t->sni_wait) {
		outbound_route(t);   /* more of the ClientHello */
		return;
	}
	relay_pump(t);
}

static void on_u_io(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct sn_tcp *t = sn_container_of(io, struct sn_tcp, u.io);
	relay_pump(t);
}

static void on_tcp_timer(struct sn_loop *loop, struct sn_timer *tm)
{
	struct sn_tcp *t = sn_container_of(tm, struct sn_tcp, timer);
	tcp_close(t, t->u.connecting ? "connect timeout" : "idle timeout");
}

/* Takes d, the client's transport (closed on failure). The buffers hold
 * RELAY_BUF, or the first bytes a tunnel starts with when they are more. */
static struct sn_tcp *tcp_new(struct sn_worker *w, struct sn_xprt *d, size_t d2u_cap, size_t u2d_cap)
{
	struct sn_tcp *t = calloc(1, sizeof(*t));
	if (t != NULL) {
		t->d2u_cap = SN_MAX(d2u_cap, (size_t)RELAY_BUF);
		t->u2d_cap = SN_MAX(u2d_cap, (size_t)RELAY_BUF);
		t->d2u = malloc(t->d2u_cap);
		t->u2d = malloc(t->u2d_cap);
	}
	if (t == NULL || t->d2u == NULL || t->u2d == NULL || sn_io_start(&w->loop, &t->d.io, d->fd, on_d_io) != 0) {
		if (t != NULL) {
			free(t->d2u);
			free(t->u2d);
		}
		free(t);
		sn_xprt_close(d, 0);
		return NULL;
	}
	t->w = w;
	t->id = ++w->next_conn_id;
	t->d.x = *d;
	sn_xprt_init(&t->u.x, -1);
	return t;
}

/* Connects t's upstream to addr, in mTLS (ALPN sinew/tcp) when want_id. */
static int tcp_connect(struct sn_tcp *t, const struct sockaddr *addr, socklen_t len, const char *want_id,
		       uint32_t timeout_ms)
{
	struct sn_worker *w = t->w;
	int one = 1;
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, addr, len) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	sn_xprt_init(&t->u.x, fd);
	t->u.connecting = 1;
	if (want_id != NULL) {
		const char *ids[1] = { want_id };
		struct sn_tls_conn_opts co = { .expected_ids = ids, .n_expected = 1, .alpn = SN_TLS_ALPN_TCP };
		if (sn_xprt_tls(&t->u.x, __atomic_load_n(&w->proxy->tls_client, __ATOMIC_ACQUIRE), &co) != 0)
			return -1;
	}
	if (sn_io_start(&w->loop, &t->u.io, fd, on_u_io) != 0)
		return -1;
	sn_timer_start(&w->loop, &t->timer, timeout_ms ? timeout_ms : 1000, on_tcp_timer);
	return 0;
}

static const struct sn_cluster *find_cluster(const struct sn_snapshot *s, const char *fqdn, uint16_t port)
{
	char name[320];
	snprintf(name, sizeof(name), "outbound|%u||%s", port, fqdn);
	for (size_t i = 0; s != NULL && i < s->n_clusters; i++)
		if (!strcmp(s->clusters[i].name, name))
			return &s->clusters[i];
	return NULL;
}

static void tcp_to_cluster(struct sn_tcp *t, const struct sn_cluster *cl, const char *from, const char *name);

/* A ServiceEntry whose addresses (an IP or a CIDR) hold ip and whose
 * ports hold port: its host into out. Captured traffic to a ServiceEntry's
 * address goes to its endpoints (and is declared, for REGISTRY_ONLY). */
static int entry_lookup(const struct sn_snapshot *s, uint32_t ip_be, uint16_t port, char *out, size_t size)
{
	uint32_t ip = ntohl(ip_be);
	for (size_t i = 0; s != NULL && i < s->n_services; i++) {
		const struct sn_service *svc = &s->services[i];
		int port_ok = 0;
		for (size_t k = 0; k < svc->n_ports && !port_ok; k++)
			port_ok = svc->ports[k].port == port;
		for (size_t k = 0; port_ok && k < svc->n_addresses; k++) {
			char a[64];
			snprintf(a, sizeof(a), "%s", svc->addresses[k]);
			char *slash = strchr(a, '/');
			long bits = 32;
			if (slash != NULL) {
				*slash = '\0';
				bits = strtol(slash + 1, NULL, 10);
			}
			struct in_addr net;
			if (inet_pton(AF_INET, a, &net) != 1 || bits < 0 || bits > 32)
				continue;
			uint32_t mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
			if ((ip & mask) == (ntohl(net.s_addr) & mask)) {
				snprintf(out, size, "%s", svc->fqdn);
				return 1;
			}
		}
	}
	return 0;
}

/* Peeks at the client's first bytes for a ClientHello's server name.
 * Returns 1 when decided (t->sni set, or empty: not TLS, no name, the
 * client went quiet for SNI_WAIT_MS), 0 to wait for more bytes. */
static void on_sni_timer(struct sn_loop *loop, struct sn_timer *tm);

static int peek_sni(struct sn_tcp *t)
{
	unsigned char b[SN_CLIENT_HELLO_MAX];
	if (t->sni_done)
		return 1;
	ssize_t n = recv(t->d.x.fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);
	int again = n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
	if (n < 0)
		n = 0;
	int r = n > 0 ? sn_client_hello_sni(b, (size_t)n, t->sni, sizeof(t->sni)) : SN_EAGAIN;
	/* more to come: nothing yet, or part of a record; decided at the end
	 * of the stream (0 bytes, not again) or of the buffer */
	if (r == SN_EAGAIN && (again || (n > 0 && (size_t)n < sizeof(b)))) {
		if (!t->sni_wait) {
			t->sni_wait = 1;
			sn_timer_start(&t->w->loop, &t->timer, SNI_WAIT_MS, on_sni_timer);
		}
		return 0;
	}
	if (r != 1)
		t->sni[0] = '\0';
	if (t->sni_wait)
		sn_timer_stop(&t->w->loop, &t->timer);
	t->sni_wait = 0;
	t->sni_done = 1;
	return 1;
}

static void on_sni_timer(struct sn_loop *loop, struct sn_timer *tm)
{
	(void)loop;
	struct sn_tcp *t = sn_container_of(tm, struct sn_tcp, timer);
	t->sni_wait = 0;
	t->sni_done = 1;   /* no name in time: routed as without one */
	t->sni[0] = '\0';
	outbound_route(t);
}

/* A Service or ServiceEntry port of this number speaks TLS (tls, https):
 * its captured connections carry a ClientHello, which may name a host
 * the mesh knows by name only (a ServiceEntry without addresses). */
static int port_declared_tls(const struct sn_snapshot *s, uint16_t port)
{
	for (size_t i = 0; s != NULL && i < s->n_services; i++)
		for (size_t k = 0; k < s->services[i].n_ports; k++) {
			const struct sn_service_port *sp = &s->services[i].ports[k];
			if (sp->port == port && sp->protocol != NULL &&
			    (!strcmp(sp->protocol, "tls") || !strcmp(sp->protocol, "https")))
				return 1;
		}
	return 0;
}

static void on_discovery_wait(struct sn_loop *loop, struct sn_timer *tm)
{
	struct sn_tcp *t = sn_container_of(tm, struct sn_tcp, timer);
	t->waited_ms += DISCOVERY_STEP_MS;
	outbound_route(t);
}

/* Istio's labels for a connection to an address outside the registry:
 * destination_service_name PassthroughCluster, the service its address. */
static void meter_passthrough(struct sn_tcp *t)
{
	struct sn_metric_labels ml;
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &t->orig.sin_addr, ip, sizeof(ip));
	snprintf(t->ml_dest, sizeof(t->ml_dest), "%s:%u", ip, ntohs(t->orig.sin_port));
	sn_metric_labels_outbound(&ml, t->w->proxy, NULL, NULL, NULL);
	ml.destination_service = t->ml_dest;
	ml.destination_service_name = "PassthroughCluster";
	tcp_meter(t, &ml, NULL);
}

/* Picks the upstream: the VIP's Service (cluster outbound|PORT||FQDN), or
 * the original destination itself. */
static void outbound_route(struct sn_tcp *t)
{
	struct sn_worker *w = t->w;
	uint16_t port = ntohs(t->orig.sin_port);
	char ip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &t->orig.sin_addr, ip, sizeof(ip));

	if (t->fqdn[0] == '\0')
		entry_lookup(w->snap, t->orig.sin_addr.s_addr, port, t->fqdn, sizeof(t->fqdn));
	/* An address the mesh does not know, TLS on it: the ClientHello's
	 * server name may be a host it knows (Istio's listeners match TLS by
	 * SNI). Only where the client speaks first: a peek must not stall a
	 * server-first protocol. */
	if (t->fqdn[0] == '\0' && (t->client_spoke || port_declared_tls(w->snap, port))) {
		if (!peek_sni(t))
			return;
		struct sn_str h = sn_str_make(t->sni, strlen(t->sni));
		if (t->sni[0] && find_cluster(w->snap, t->sni, port) != NULL) {
			snprintf(t->fqdn, sizeof(t->fqdn), "%s", t->sni);
		} else if (t->sni[0] && w->proxy->cp != NULL && t->waited_ms < DISCOVERY_WAIT_MS &&
			   sn_cp_host_known(w->proxy, h) != 1) {
			if (t->waited_ms == 0 && sn_cp_host_known(w->proxy, h) == 0)
				sn_cp_subscribe(w->proxy, h);
			sn_timer_start(&w->loop, &t->timer, DISCOVERY_STEP_MS, on_discovery_wait);
			return;
		}
	}
	if (t->fqdn[0] == '\0' && w->snap != NULL && w->snap->registry_only != NULL) {
		sn_log(SN_LOG_INFO, "tcp=%llu to %s:%u: blocked: no Service or ServiceEntry declares it and the mesh's "
		       "outboundTrafficPolicy is REGISTRY_ONLY (%s)", (unsigned long long)t->id, ip, port,
		       w->snap->registry_only);
		sn_metrics_add(w->metrics, SN_CTR_BLOCKED_EGRESS, 1);
		tcp_close(t, NULL);
		return;
	}
	if (t->fqdn[0] == '\0') {
		snprintf(t->what, sizeof(t->what), "%s:%u (passthrough)", ip, port);
		sn_metrics_add(w->metrics, SN_CTR_PASSTHROUGH, 1);
		meter_passthrough(t);
		if (tcp_connect(t, (struct sockaddr *)&t->orig, sizeof(t->orig), NULL, 1000) != 0)
			tcp_close(t, "cannot connect");
		return;
	}
	const struct sn_cluster *cl = find_cluster(w->snap, t->fqdn, port);
	/* a VirtualService's tcp route for the Service and port: its weighted
	 * destinations (Istio's TCP traffic shifting) */
	char auth[300];
	uint16_t vport = 0;
	int al = snprintf(auth, sizeof(auth), "%s:%u", t->fqdn, port);
	const struct sn_vhost *vh = w->snap != NULL && al > 0 && (size_t)al < sizeof(auth)
					    ? sn_snapshot_find_vhost(w->snap, sn_str_make(auth, (size_t)al), &vport)
					    : NULL;
	/* tls routes: by the ClientHello's server name (a name no route
	 * takes: the Service) */
	if (vh != NULL && vh->n_tls_routes > 0) {
		if (!peek_sni(t))
			return;
		const struct sn_sni_route *r = sn_sni_route_find(vh->tls_routes, vh->n_tls_routes,
								 t->sni[0] ? t->sni : NULL);
		if (r != NULL && r->n_dests > 0 && r->total_weight > 0)
			cl = &w->snap->clusters[sn_route_pick_weighted(r->dests, r->n_dests, r->total_weight,
								       sn_worker_random(w))->cluster];
	} else if (vh != NULL && vh->tcp_route != NULL && vh->tcp_route->n_dests > 0 &&
		   vh->tcp_route->total_weight > 0) {
		const struct sn_sni_route *r = vh->tcp_route;
		cl = &w->snap->clusters[sn_route_pick_weighted(r->dests, r->n_dests, r->total_weight,
							       sn_worker_random(w))->cluster];
	}
	if (cl == NULL || cl->n_endpoints == 0) {
		struct sn_str h = sn_str_make(t->fqdn, strlen(t->fqdn));   /* discovery is per host */
		if (w->proxy->cp != NULL && t->waited_ms < DISCOVERY_WAIT_MS) {
			if (t->waited_ms == 0 && !sn_cp_host_known(w->proxy, h))
				sn_cp_subscribe(w->proxy, h);
			sn_timer_start(&w->loop, &t->timer, DISCOVERY_STEP_MS, on_discovery_wait);
			return;
		}
		sn_log(SN_LOG_INFO, "tcp=%llu to %s:%u (%s): no endpoint for that service and port; closing",
		       (unsigned long long)t->id, ip, port, t->fqdn);
		tcp_close(t, NULL);
		return;
	}
	char from[64];
	snprintf(from, sizeof(from), "%s:%u", ip, port);
	tcp_to_cluster(t, cl, from, t->fqdn);
}

/* Connects t to an endpoint of cl (which has some): in mTLS (ALPN
 * sinew/tcp) when the endpoint's proxy holds an identity, never in plain
 * text where a DestinationRule asked for TLS. from and name: for logs. */
static void tcp_to_cluster(struct sn_tcp *t, const struct sn_cluster *cl, const char *from, const char *name)
{
	struct sn_worker *w = t->w;
	const struct sn_endpoint *ep = &cl->endpoints[(size_t)(sn_worker_random(w) % cl->n_endpoints)];
	char want[SN_SPIFFE_ID_MAX];
	int mtls = sn_upstream_mtls(w, cl, ep, want, sizeof(want));
	if (mtls == SN_EAGAIN) {
		sn_log(SN_LOG_INFO, "tcp=%llu to %s: no certificate yet; closing", (unsigned long long)t->id, name);
		tcp_close(t, NULL);
		return;
	}
	if (mtls == 0 && (cl->tls_mode == SN_CLUSTER_TLS_SIMPLE || cl->tls_mode == SN_CLUSTER_TLS_MUTUAL)) {
		/* never plaintext where a DestinationRule asked for TLS */
		sn_log(SN_LOG_INFO, "tcp=%llu to %s: TLS origination (tls.mode %s) is not implemented for opaque TCP; "
		       "closing", (unsigned long long)t->id, name,
		       cl->tls_mode == SN_CLUSTER_TLS_MUTUAL ? "MUTUAL" : "SIMPLE");
		tcp_close(t, NULL);
		return;
	}
	snprintf(t->what, sizeof(t->what), "%s -> %s %s%s", from, name, ep->address, mtls == 1 ? " (mTLS)" : "");
	sn_metrics_add(w->metrics, SN_CTR_TCP_OUTBOUND_CX, 1);
	if (mtls == 1)
		sn_metrics_add(w->metrics, SN_CTR_TCP_OUTBOUND_MTLS_CX, 1);
	struct sn_metric_labels ml;
	sn_metric_labels_outbound(&ml, w->proxy, cl, ep, mtls == 1 ? want : NULL);
	tcp_meter(t, &ml, mtls == 1 ? want : NULL);
	if (tcp_connect(t, (const struct sockaddr *)&ep->addr, ep->addr_len, mtls == 1 ? want : NULL,
			cl->connect_timeout_ms) != 0)
		tcp_close(t, "cannot connect");
}

static void tcp_outbound(struct sn_worker *w, int fd, const struct sockaddr_in *orig, int client_spoke)
{
	struct sn_xprt d;
	sn_xprt_init(&d, fd);
	struct sn_tcp *t = tcp_new(w, &d, 0, 0);
	if (t == NULL)
		return;
	t->orig = *orig;
	t->client_spoke = client_spoke != 0;
	vip_lookup(w->proxy->opt.services_hosts, orig->sin_addr.s_addr, t->fqdn, sizeof(t->fqdn));
	outbound_route(t);
}

void sn_tcp_inbound(struct sn_worker *w, struct sn_xprt *x, const char *peer_id, uint16_t port)
{
	struct sn_tcp *t = tcp_new(w, x, 0, 0);
	struct sockaddr_in app = { .sin_family = AF_INET, .sin_port = htons(port) };

	if (t == NULL)
		return;
	app.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	snprintf(t->what, sizeof(t->what), "inbound from %s -> 127.0.0.1:%u", peer_id ? peer_id : "?", port);
	sn_metrics_add(w->metrics, SN_CTR_TCP_INBOUND_MTLS_CX, 1);
	const char *id = peer_id != NULL && strcmp(peer_id, "?") != 0 ? peer_id : NULL;
	struct sn_metric_labels ml;
	sn_metric_labels_inbound(&ml, w->proxy, id, 1);
	tcp_meter(t, &ml, id);
	if (tcp_connect(t, (struct sockaddr *)&app, sizeof(app), NULL, 1000) != 0) {
		tcp_close(t, "cannot connect to the app");
		return;
	}
	relay_pump(t);   /* TLS may already hold the client's first bytes */
}

static size_t iov_total(const struct iovec *iov, int n)
{
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	return total;
}

static void iov_copy(unsigned char *dst, const struct iovec *iov, int n)
{
	for (int i = 0; i < n; i++) {
		memcpy(dst, iov[i].iov_base, iov[i].iov_len);
		dst += iov[i].iov_len;
	}
}

int sn_tcp_tunnel(struct sn_worker *w, struct sn_xprt *d, struct sn_xprt *u, const struct iovec *to_up, int n_up,
		  const struct iovec *to_down, int n_down, const char *what)
{
	size_t up = iov_total(to_up, n_up), down = iov_total(to_down, n_down);
	struct sn_tcp *t = tcp_new(w, d, up, down);

	if (t == NULL) {
		sn_xprt_close(u, 0);
		return SN_ENOMEM;
	}
	t->u.x = *u;
	if (sn_io_start(&w->loop, &t->u.io, u->fd, on_u_io) != 0) {
		tcp_close(t, "cannot watch the upstream");
		return SN_EIO;
	}
	iov_copy(t->d2u, to_up, n_up);
	t->d2u_len = up;
	iov_copy(t->u2d, to_down, n_down);
	t->u2d_len = down;
	snprintf(t->what, sizeof(t->what), "%s", what);
	sn_metrics_add(w->metrics, SN_CTR_TUNNEL_CX, 1);
	sn_timer_start(&w->loop, &t->timer, TCP_IDLE_MS, on_tcp_timer);
	relay_pump(t);   /* TLS may already hold bytes, and the first ones wait */
	return 0;
}

int sn_tcp_to_cluster(struct sn_worker *w, int fd, const struct sn_cluster *cl, const char *from)
{
	struct sn_xprt d;
	sn_xprt_init(&d, fd);
	return sn_tcp_xprt_to_cluster(w, &d, cl, from);
}

int sn_tcp_xprt_to_cluster(struct sn_worker *w, struct sn_xprt *d, const struct sn_cluster *cl, const char *from)
{
	struct sn_tcp *t = tcp_new(w, d, 0, 0);
	if (t == NULL)
		return SN_ENOMEM;
	if (cl->n_endpoints == 0) {
		sn_log(SN_LOG_INFO, "tcp=%llu %s -> %s: no endpoint; closing", (unsigned long long)t->id, from,
		       cl->service);
		tcp_close(t, NULL);
		return SN_ENOTFOUND;
	}
	tcp_to_cluster(t, cl, from, cl->service);
	return 0;
}

int sn_tcp_passthrough_dest(struct sn_worker *w, int fd, struct sockaddr_in *orig)
{
	socklen_t ol = sizeof(*orig);
	char fqdn[254];
	if (!w->proxy->opt.have_capture_probe || getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, orig, &ol) != 0 ||
	    orig->sin_family != AF_INET)
		return SN_ENOTFOUND;
	/* a Service's VIP or a ServiceEntry's address is the mesh's to route */
	if (vip_lookup(w->proxy->opt.services_hosts, orig->sin_addr.s_addr, fqdn, sizeof(fqdn)) ||
	    entry_lookup(w->snap, orig->sin_addr.s_addr, ntohs(orig->sin_port), fqdn, sizeof(fqdn)))
		return SN_ENOTFOUND;
	return 0;
}

int sn_tcp_passthrough(struct sn_worker *w, struct sn_xprt *d, const struct sockaddr_in *orig,
		       const struct iovec *to_up, int n_up, const char *what)
{
	size_t up = iov_total(to_up, n_up);
	struct sn_tcp *t = tcp_new(w, d, up, 0);
	if (t == NULL)
		return SN_ENOMEM;
	iov_copy(t->d2u, to_up, n_up);
	t->d2u_len = up;
	t->orig = *orig;
	snprintf(t->what, sizeof(t->what), "%s", what);
	sn_metrics_add(w->metrics, SN_CTR_PASSTHROUGH, 1);
	meter_passthrough(t);
	if (tcp_connect(t, (const struct sockaddr *)orig, sizeof(*orig), NULL, 1000) != 0) {
		tcp_close(t, "cannot connect");
		return SN_EIO;
	}
	return 0;
}

/* ---- protocol detection ---------------------------------------------------- */

struct sniff {
	struct sn_worker *w;
	int fd;
	struct sn_io io;
	struct sn_timer timer;
	struct sockaddr_storage peer;
	socklen_t peer_len;
	struct sockaddr_in orig;
	int done;
	int spoke;                  /* the client sent bytes before the decision */
	struct sn_task reclaim;
};

static void reclaim_sniff(struct sn_loop *loop, struct sn_task *task)
{
	free(sn_container_of(task, struct sniff, reclaim));
}

int sn_tcp_looks_http(const unsigned char *b, size_t n)
{
	size_t i = 0;
	while (i < n && i < 8 && b[i] >= 'A' && b[i] <= 'Z')
		i++;
	if (i >= 8)
		return 0;   /* too long for a method, however many bytes follow */
	if (i < n)
		return i > 0 && b[i] == ' ' ? 1 : 0;
	return -1;
}

static void sniff_decide(struct sniff *s, int http)
{
	struct sn_worker *w = s->w;
	if (s->done)
		return;
	s->done = 1;
	sn_timer_stop(&w->loop, &s->timer);
	sn_io_stop(&w->loop, &s->io);
	if (http)
		sn_dconn_accept(w, s->fd, SN_DIR_OUTBOUND, 0, (struct sockaddr *)&s->peer, s->peer_len);
	else
		tcp_outbound(w, s->fd, &s->orig, s->spoke);
	sn_loop_reclaim(&w->loop, &s->reclaim, reclaim_sniff);
}

static void on_sniff_io(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct sniff *s = sn_container_of(io, struct sniff, io);
	unsigned char b[SNIFF_BYTES];
	ssize_t n = recv(s->fd, b, sizeof(b), MSG_PEEK);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		/* gone before a byte: nothing to proxy */
		if (!s->done) {
			s->done = 1;
			sn_timer_stop(&s->w->loop, &s->timer);
			sn_io_stop(&s->w->loop, &s->io);
			close(s->fd);
			sn_loop_reclaim(&s->w->loop, &s->reclaim, reclaim_sniff);
		}
		return;
	}
	int h = sn_tcp_looks_http(b, (size_t)n);
	s->spoke = 1;
	if (h >= 0)
		sniff_decide(s, h);
}

static void on_sniff_timer(struct sn_loop *loop, struct sn_timer *tm)
{
	struct sniff *s = sn_container_of(tm, struct sniff, timer);
	unsigned char b[SNIFF_BYTES];
	ssize_t n = recv(s->fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);
	if (n <= 0)
		sn_metrics_add(s->w->metrics, SN_CTR_SNIFF_TIMEOUT, 1);
	s->spoke = n > 0;
	sniff_decide(s, n > 0 && sn_tcp_looks_http(b, (size_t)n) == 1);
}

static int port_opaque(const struct sn_proxy_options *o, uint16_t port)
{
	for (size_t i = 0; i < o->n_opaque_ports; i++)
		if (o->opaque_ports[i] == port)
			return 1;
	return 0;
}

/* A Service port named or declared (appProtocol) as a TCP protocol, as
 * Istio reads them: tcp, tls, https (TLS the proxy does not hold the key
 * of), mongo, mysql, redis. Known only once the
 * Service is in the snapshot; otherwise sniffing decides. */
static int declared_opaque(struct sn_worker *w, const struct sockaddr_in *orig)
{
	static const char *const opaque[] = { "tcp", "tls", "https", "mongo", "mysql", "redis" };
	char fqdn[254];

	if (!vip_lookup(w->proxy->opt.services_hosts, orig->sin_addr.s_addr, fqdn, sizeof(fqdn)) &&
	    !entry_lookup(w->snap, orig->sin_addr.s_addr, ntohs(orig->sin_port), fqdn, sizeof(fqdn)))
		return 0;
	const struct sn_service *svc = sn_snapshot_find_service(w->snap, fqdn);
	for (size_t i = 0; svc != NULL && i < svc->n_ports; i++) {
		if (svc->ports[i].port != ntohs(orig->sin_port) || svc->ports[i].protocol == NULL)
			continue;
		for (size_t k = 0; k < SN_ARRAY_LEN(opaque); k++)
			if (!strcmp(svc->ports[i].protocol, opaque[k]))
				return 1;
	}
	return 0;
}

int sn_tcp_outbound_accept(struct sn_worker *w, int fd, const struct sockaddr *peer, socklen_t peer_len)
{
	struct sockaddr_in orig;
	socklen_t ol = sizeof(orig);

	if (!w->proxy->opt.have_capture_probe || getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &orig, &ol) != 0 ||
	    orig.sin_family != AF_INET)
		return 0;   /* not captured: HTTP as always */
	if (port_opaque(&w->proxy->opt, ntohs(orig.sin_port)) || declared_opaque(w, &orig)) {
		tcp_outbound(w, fd, &orig, 0);
		return 1;
	}
	struct sniff *s = calloc(1, sizeof(*s));
	if (s == NULL || sn_io_start(&w->loop, &s->io, fd, on_sniff_io) != 0) {
		free(s);
		close(fd);
		return 1;
	}
	s->w = w;
	s->fd = fd;
	s->orig = orig;
	memcpy(&s->peer, peer, SN_MIN((size_t)peer_len, sizeof(s->peer)));
	s->peer_len = peer_len;
	sn_timer_start(&w->loop, &s->timer, SNIFF_MS, on_sniff_timer);
	return 1;
}
