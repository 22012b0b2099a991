/* A worker thread: its loop, listeners, snapshot reference, host table,
 * buffer pool and metrics store. Nothing here is touched by another
 * thread except through sn_loop_post. */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "sinew/log.h"
#include "exchange.h"
#include "trace.h"

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80   /* linux/netfilter_ipv4.h */
#endif

#define HOSTS_MAX 65536
#define BUF_POOL_CACHE 256

struct snapshot_msg {
	struct sn_task task;
	struct sn_snapshot *snap;
};

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t sn_worker_random(struct sn_worker *w)
{
	return splitmix(&w->rng);
}

static uint64_t hash_key(const char *k)
{
	uint64_t h = 1469598103934665603ull;
	for (; *k; k++)
		h = (h ^ (unsigned char)*k) * 1099511628211ull;
	return h;
}

static int hosts_insert(struct sn_host **tab, size_t cap, struct sn_host *h)
{
	size_t i = hash_key(h->key) & (cap - 1);
	while (tab[i] != NULL)
		i = (i + 1) & (cap - 1);
	tab[i] = h;
	return 0;
}

struct sn_host *sn_worker_host(struct sn_worker *w, const struct sockaddr *addr, socklen_t len)
{
	char key[64];
	sn_addr_format(addr, key, sizeof(key));

	if (w->hosts_cap > 0) {
		size_t i = hash_key(key) & (w->hosts_cap - 1);
		while (w->hosts[i] != NULL) {
			if (strcmp(w->hosts[i]->key, key) == 0)
				return w->hosts[i];
			i = (i + 1) & (w->hosts_cap - 1);
		}
	}
	if (w->n_hosts >= HOSTS_MAX)
		return NULL;
	if ((w->n_hosts + 1) * 2 > w->hosts_cap) {
		size_t ncap = w->hosts_cap ? w->hosts_cap * 2 : 64;
		struct sn_host **n = calloc(ncap, sizeof(*n));
		if (n == NULL)
			return NULL;
		for (size_t i = 0; i < w->hosts_cap; i++)
			if (w->hosts[i] != NULL)
				hosts_insert(n, ncap, w->hosts[i]);
		free(w->hosts);
		w->hosts = n;
		w->hosts_cap = ncap;
	}
	struct sn_host *h = calloc(1, sizeof(*h));
	if (h == NULL)
		return NULL;
	snprintf(h->key, sizeof(h->key), "%s", key);
	h->added_ms = sn_loop_now(&w->loop);   /* warmup (lb.c) counts from here */
	memcpy(&h->addr, addr, len);
	h->addr_len = len;
	hosts_insert(w->hosts, w->hosts_cap, h);
	w->n_hosts++;
	return h;
}

int sn_worker_retry_allowed(struct sn_worker *w)
{
	uint64_t now = sn_loop_now(&w->loop);
	struct sn_retry_budget *b = &w->budget;
	/* Refill 10 tokens per second, bucket bounded at 100. */
	if (now > b->stamp_ms) {
		b->tokens += (double)(now - b->stamp_ms) * 10.0 / 1000.0;
		b->stamp_ms = now;
	}
	if (b->tokens > 100.0)
		b->tokens = 100.0;
	if (b->tokens < 1.0)
		return 0;
	b->tokens -= 1.0;
	return 1;
}

void sn_worker_retry_deposit(struct sn_worker *w)
{
	w->budget.tokens += 0.2;
	if (w->budget.tokens > 100.0)
		w->budget.tokens = 100.0;
}

static void release_cluster_state(struct sn_worker *w)
{
	if (w->cstate == NULL)
		return;
	for (size_t i = 0; i < w->snap->n_clusters; i++) {
		sn_outlier_release(w, &w->cstate[i]);
		sn_lb_hash_free(&w->cstate[i]);
		free(w->cstate[i].hosts);
	}
	free(w->cstate);
	w->cstate = NULL;
}

static void sync_gw_listeners(struct sn_worker *w, const struct sn_snapshot *s);

/* Adopts a snapshot: builds per-cluster state (host pointers are looked up
 * once here, not per request), then drops the old reference. In-flight
 * exchanges hold their own reference to the snapshot they started on. */
static int adopt(struct sn_worker *w, struct sn_snapshot *s)
{
	struct sn_cluster_state *cs = calloc(s->n_clusters ? s->n_clusters : 1, sizeof(*cs));
	if (cs == NULL)
		return SN_ENOMEM;
	for (size_t i = 0; i < s->n_clusters; i++) {
		const struct sn_cluster *c = &s->clusters[i];
		cs[i].hosts = calloc(c->n_endpoints ? c->n_endpoints : 1, sizeof(struct sn_host *));
		if (cs[i].hosts == NULL)
			goto fail;
		for (size_t j = 0; j < c->n_endpoints; j++)
			cs[i].hosts[j] = sn_worker_host(w, (const struct sockaddr *)&c->endpoints[j].addr,
							c->endpoints[j].addr_len);
		if (sn_lb_hash_build(c, &cs[i]) != 0)
			goto fail;
		if (c->weighted && c->lb == SN_LB_ROUND_ROBIN &&
		    (cs[i].wrr = calloc(c->n_endpoints, sizeof(*cs[i].wrr))) == NULL)
			goto fail;
		if (c->outlier.enabled) {
			cs[i].od = calloc(c->n_endpoints ? c->n_endpoints : 1, sizeof(*cs[i].od));
			if (cs[i].od == NULL)
				goto fail;
			sn_outlier_carry(w, c, &cs[i], w->snap, w->cstate);
		}
	}
	unsigned char *used = calloc(s->n_vhosts ? s->n_vhosts : 1, 1);
	if (used == NULL)
		goto fail;
	/* Carry usage over by host name, so a config change between two
	 * sweeps does not make a busy destination look idle. */
	if (w->snap != NULL && w->vhost_used != NULL)
		for (size_t i = 0; i < w->snap->n_vhosts; i++)
			for (size_t j = 0; w->vhost_used[i] && j < s->n_vhosts; j++)
				if (strcmp(w->snap->vhosts[i].host, s->vhosts[j].host) == 0)
					used[j] = 1;
	free(w->vhost_used);
	w->vhost_used = used;
	if (w->snap != NULL) {
		release_cluster_state(w);
		sn_snapshot_unref(w->snap);
	}
	w->snap = s;
	w->cstate = cs;
	w->app_proto_snap = NULL;   /* exchange.c looks the app's protocol up again */
	sn_jwt_cache_drop(w);       /* keys are built again for the new snapshot */
	sn_jwks_watch(s);           /* and the jwksUri sets it needs are fetched */
	sync_gw_listeners(w, s);
	return 0;

fail:
	for (size_t i = 0; i < s->n_clusters; i++) {
		sn_outlier_release(w, &cs[i]);
		sn_lb_hash_free(&cs[i]);
		free(cs[i].hosts);
	}
	free(cs);
	return SN_ENOMEM;
}

struct sn_cluster *sn_worker_inbound_cluster(struct sn_worker *w, uint16_t port)
{
	const struct sockaddr_storage *app = &w->proxy->opt.app.ss;
	if (port == 0 || app->ss_family != AF_INET || ntohs(((const struct sockaddr_in *)app)->sin_port) == port)
		return &w->inbound_cluster;
	for (size_t i = 0; i < w->n_inbound_ports; i++)
		if (w->inbound_ports[i].port == port)
			return &w->inbound_ports[i].cluster;
	if (w->n_inbound_ports == SN_ARRAY_LEN(w->inbound_ports))
		return NULL;   /* never another port's app */
	struct sn_inbound_port *ip = &w->inbound_ports[w->n_inbound_ports];
	struct sockaddr_in *sa = (struct sockaddr_in *)&ip->endpoint.addr;
	memset(ip, 0, sizeof(*ip));
	ip->port = port;
	sa->sin_family = AF_INET;
	sa->sin_port = htons(port);
	sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ip->endpoint.addr_len = sizeof(*sa);
	snprintf(ip->address, sizeof(ip->address), "127.0.0.1:%u", port);
	ip->endpoint.address = ip->address;
	ip->endpoint.workload = w->inbound_endpoint.workload;
	ip->endpoint.weight = 1;
	ip->cluster = w->inbound_cluster;
	ip->cluster.endpoints = &ip->endpoint;
	ip->cluster.n_endpoints = 1;
	ip->host = sn_worker_host(w, (struct sockaddr *)sa, ip->endpoint.addr_len);
	if (ip->host == NULL)
		return NULL;
	ip->state.hosts = &ip->host;
	w->n_inbound_ports++;
	return &ip->cluster;
}

struct sn_cluster_state *sn_worker_cluster_state(struct sn_worker *w, const struct sn_cluster *c)
{
	if (c == &w->inbound_cluster)
		return &w->inbound_state;
	for (size_t i = 0; i < w->n_inbound_ports; i++)
		if (c == &w->inbound_ports[i].cluster)
			return &w->inbound_ports[i].state;
	/* The exchange may run on an older snapshot than the worker's; only
	 * the worker's current snapshot has state. */
	if (w->snap != NULL && c >= w->snap->clusters && c < w->snap->clusters + w->snap->n_clusters)
		return &w->cstate[c - w->snap->clusters];
	return NULL;
}

static void on_snapshot_msg(struct sn_loop *loop, struct sn_task *t)
{
	struct snapshot_msg *m = sn_container_of(t, struct snapshot_msg, task);
	struct sn_worker *w = sn_container_of(loop, struct sn_worker, loop);

	if (adopt(w, m->snap) != 0) {
		sn_log(SN_LOG_ERROR, "worker %d: out of memory adopting config version %llu; keeping the old one",
		       w->id, (unsigned long long)m->snap->version);
		sn_snapshot_unref(m->snap);
	} else {
		sn_log(SN_LOG_DEBUG, "worker %d: now on config version %llu", w->id,
		       (unsigned long long)m->snap->version);
	}
	free(m);
	sn_exchange_retry_parked(w);
}

void sn_worker_post_snapshot(struct sn_worker *w, struct sn_snapshot *s)
{
	struct snapshot_msg *m = calloc(1, sizeof(*m));
	if (m == NULL) {
		sn_snapshot_unref(s);
		return;
	}
	m->snap = s;
	sn_loop_post(&w->loop, &m->task, on_snapshot_msg);
}

/* Transparent capture (sinew run; DESIGN.md §6 "capture: fail closed"):
 * a connection whose original destination (before the pod's REDIRECT
 * rule) is the probe address was sent by `sinew run` to check that the
 * rules are in place; it gets one line and is closed. Returns 1 if fd was
 * such a probe. */
static int capture_probe(struct sn_worker *w, int fd)
{
	const struct sn_addr *probe = &w->proxy->opt.capture_probe;
	struct sockaddr_in orig;
	socklen_t ol = sizeof(orig);

	if (probe->ss.ss_family != AF_INET || getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &orig, &ol) != 0)
		return 0;
	const struct sockaddr_in *want = (const struct sockaddr_in *)&probe->ss;
	if (orig.sin_addr.s_addr != want->sin_addr.s_addr || orig.sin_port != want->sin_port)
		return 0;
	char line[128];
	int n = snprintf(line, sizeof(line), "sinew-capture-ok %s\n",
			 w->proxy->opt.pod_name ? w->proxy->opt.pod_name : w->proxy->workload);
	if (send(fd, line, (size_t)SN_MIN(n, (int)sizeof(line) - 1), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		sn_log(SN_LOG_DEBUG, "capture probe: %s", strerror(errno));
	close(fd);
	return 1;
}

static void on_accept(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct sn_listener *l = sn_container_of(io, struct sn_listener, io);
	struct sn_worker *w = l->worker;

	/* Edge-triggered: accept until EAGAIN. The kernel's backlog bounds it. */
	for (;;) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		int fd = accept4(l->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				sn_log(SN_LOG_WARN, "listener %s: accept: %s",
				       l->dir == SN_DIR_OUTBOUND ? "outbound" : "inbound", strerror(errno));
			return;
		}
		if (w->draining || w->n_conns >= w->proxy->opt.max_connections) {
			sn_metrics_add(w->metrics, SN_CTR_OVERFLOW, 1);
			close(fd);
			continue;
		}
		if (l->dir == SN_DIR_OUTBOUND && w->proxy->opt.have_capture_probe &&
		    (capture_probe(w, fd) || sn_tcp_outbound_accept(w, fd, (struct sockaddr *)&peer, plen)))
			continue;
		if (l->gw_port != 0) {
			const struct sn_gw_listener *gl = sn_snapshot_find_gw_listener(w->snap, l->gw_port);
			if (gl != NULL && gl->passthrough) {
				sn_gw_passthrough_accept(w, fd, l->gw_port, (struct sockaddr *)&peer, plen);
				continue;
			}
			if (gl != NULL && gl->tcp && !gl->tls) {   /* (TLS first: downstream.c hands it on) */
				sn_gw_tcp_accept(w, fd, gl, (struct sockaddr *)&peer, plen);
				continue;
			}
		}
		sn_dconn_accept(w, fd, l->dir, l->gw_port, (struct sockaddr *)&peer, plen);
	}
}

static int listen_on(const struct sn_addr *a)
{
	int one = 1;
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0 || listen(fd, 1024) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int add_listener(struct sn_worker *w, const struct sn_addr *a, enum sn_direction dir)
{
	struct sn_listener *l = &w->listeners[w->n_listeners];
	l->fd = listen_on(a);
	if (l->fd < 0) {
		sn_log(SN_LOG_ERROR, "cannot listen on %s (%s): %s; pick a free port or stop what holds it",
		       a->text, dir == SN_DIR_OUTBOUND ? "--outbound" : "--inbound", strerror(errno));
		return SN_EIO;
	}
	l->dir = dir;
	l->worker = w;
	if (sn_io_start(&w->loop, &l->io, l->fd, on_accept) != 0) {
		close(l->fd);
		return SN_EIO;
	}
	w->n_listeners++;
	return 0;
}

static void close_gw_listener(struct sn_worker *w, struct sn_listener *l)
{
	if (l->fd < 0)
		return;
	sn_io_stop(&w->loop, &l->io);
	close(l->fd);
	l->fd = -1;
	l->gw_port = 0;
}

static void close_listeners(struct sn_worker *w)
{
	for (int i = 0; i < w->n_listeners; i++) {
		sn_io_stop(&w->loop, &w->listeners[i].io);
		close(w->listeners[i].fd);
	}
	w->n_listeners = 0;
	for (size_t i = 0; i < SN_ARRAY_LEN(w->gw_listeners); i++)
		close_gw_listener(w, &w->gw_listeners[i]);
}

/* --gateway: listen on the ports of s's gateway listeners and no others.
 * A port that cannot be opened is logged and tried again with the next
 * snapshot; connections accepted on a port that goes away finish. */
static void sync_gw_listeners(struct sn_worker *w, const struct sn_snapshot *s)
{
	if (!w->proxy->opt.gateway || w->draining)
		return;
	for (size_t i = 0; i < SN_ARRAY_LEN(w->gw_listeners); i++) {
		struct sn_listener *l = &w->gw_listeners[i];
		const struct sn_gw_listener *gl = l->fd >= 0 ? sn_snapshot_find_gw_listener(s, l->gw_port) : NULL;
		if (l->fd >= 0 && (gl == NULL || (gl->tls && sn_gw_listener_tls(w->proxy, gl) == NULL))) {
			if (w->id == 0)
				sn_log(SN_LOG_INFO, "gateway: port %u closed (%s)", l->gw_port,
				       gl == NULL ? "no Gateway server selects it now" : "its certificate did not load");
			close_gw_listener(w, l);
		}
	}
	for (size_t k = 0; s != NULL && k < s->n_gw_listeners; k++) {
		uint16_t port = s->gw_listeners[k].port;
		if (s->gw_listeners[k].tls && sn_gw_listener_tls(w->proxy, &s->gw_listeners[k]) == NULL)
			continue;   /* fail closed: gateway_tls.c said why */
		struct sn_listener *free_slot = NULL;
		int open = 0;
		for (size_t i = 0; i < SN_ARRAY_LEN(w->gw_listeners); i++) {
			struct sn_listener *l = &w->gw_listeners[i];
			if (l->fd >= 0 && l->gw_port == port)
				open = 1;
			else if (l->fd < 0 && free_slot == NULL)
				free_slot = l;
		}
		if (open || free_slot == NULL)
			continue;
		struct sn_addr a = w->proxy->opt.gateway_address;
		if (a.ss.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&a.ss)->sin6_port = htons(port);
		else
			((struct sockaddr_in *)&a.ss)->sin_port = htons(port);
		sn_addr_format((struct sockaddr *)&a.ss, a.text, sizeof(a.text));
		int fd = listen_on(&a);
		if (fd < 0) {
			sn_log(SN_LOG_ERROR, "gateway: cannot listen on %s (%s): %s; free the port or change the "
			       "Gateway's server port", a.text, s->gw_listeners[k].origin, strerror(errno));
			continue;
		}
		free_slot->fd = fd;
		free_slot->dir = SN_DIR_OUTBOUND;
		free_slot->worker = w;
		free_slot->gw_port = port;
		if (sn_io_start(&w->loop, &free_slot->io, fd, on_accept) != 0) {
			close(fd);
			free_slot->fd = -1;
			free_slot->gw_port = 0;
			continue;
		}
		if (w->id == 0)
			sn_log(SN_LOG_INFO, "gateway: listening on %s (%s)", a.text, s->gw_listeners[k].origin);
	}
}

int sn_worker_init(struct sn_worker *w, struct sn_proxy *p, int id)
{
	memset(w, 0, sizeof(*w));
	w->proxy = p;
	w->id = id;
	w->rng = sn_clock_us() ^ ((uint64_t)id << 32) ^ (uint64_t)getpid();
	w->budget.tokens = 10.0;
	if (sn_loop_init(&w->loop) != 0)
		return SN_EIO;
	w->budget.stamp_ms = sn_loop_now(&w->loop);
	for (size_t i = 0; i < SN_ARRAY_LEN(w->gw_listeners); i++)
		w->gw_listeners[i].fd = -1;
	sn_buf_pool_init(&w->pool, SN_BUF_DEFAULT_SIZE, BUF_POOL_CACHE);
	w->metrics = sn_metrics_new(0);
	if (w->metrics == NULL)
		return SN_ENOMEM;
	if (p->opt.have_outbound && add_listener(w, &p->opt.outbound, SN_DIR_OUTBOUND) != 0)
		return SN_EIO;
	if (p->opt.have_inbound) {
		if (add_listener(w, &p->opt.inbound, SN_DIR_INBOUND) != 0)
			return SN_EIO;
		/* Inbound has one destination: the local app. */
		struct sn_endpoint *e = &w->inbound_endpoint;
		memcpy(&e->addr, &p->opt.app.ss, p->opt.app.len);
		e->addr_len = p->opt.app.len;
		e->address = p->opt.app.text;
		e->workload = p->workload;
		e->weight = 1;
		struct sn_cluster *c = &w->inbound_cluster;
		c->name = "inbound|app";
		c->service = p->own_service_fqdn[0] ? p->own_service_fqdn : NULL;
		c->service_name = (char *)p->opt.service;
		c->namespace_ = (char *)p->identity.namespace_;
		c->lb = SN_LB_ROUND_ROBIN;
		c->connect_timeout_ms = 1000;
		c->idle_timeout_ms = 60000;
		c->endpoints = e;
		c->n_endpoints = 1;
		w->inbound_host = sn_worker_host(w, (struct sockaddr *)&e->addr, e->addr_len);
		w->inbound_state.hosts = &w->inbound_host;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct sn_worker *w = arg;
	char name[16];

	snprintf(name, sizeof(name), "sinew-w%d", w->id);
	pthread_setname_np(pthread_self(), name);
	sn_loop_run(&w->loop);
	close_listeners(w);
	sn_proxy_worker_exited(w->proxy);
	return NULL;
}

int sn_worker_start(struct sn_worker *w)
{
	if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
		return SN_EIO;
	return 0;
}

static void maybe_finish_drain(struct sn_worker *w)
{
	if (w->draining && w->n_conns == 0)
		sn_loop_stop(&w->loop);
}

void sn_worker_conn_closed(struct sn_worker *w)
{
	maybe_finish_drain(w);
}

static void on_drain(struct sn_loop *loop, struct sn_task *t)
{
	struct sn_worker *w = sn_container_of(t, struct sn_worker, drain_task);
	struct sn_dconn *c, *next;

	w->draining = 1;
	close_listeners(w);
	for (c = w->conns; c != NULL; c = next) {
		next = *(struct sn_dconn **)c;  /* first member is the list link */
		sn_dconn_drain(c);
	}
	maybe_finish_drain(w);
}

void sn_worker_post_drain(struct sn_worker *w)
{
	sn_loop_post(&w->loop, &w->drain_task, on_drain);
}

static void on_stop(struct sn_loop *loop, struct sn_task *t)
{
	struct sn_worker *w = sn_container_of(t, struct sn_worker, stop_task);
	struct sn_dconn *c, *next;

	w->draining = 1;
	close_listeners(w);
	for (c = w->conns; c != NULL; c = next) {
		next = *(struct sn_dconn **)c;
		sn_dconn_abort(c);
	}
	sn_loop_stop(&w->loop);
}

void sn_worker_post_stop(struct sn_worker *w)
{
	sn_loop_post(&w->loop, &w->stop_task, on_stop);
}

void sn_worker_dispose(struct sn_worker *w)
{
	close_listeners(w);
	sn_oneshot_close_all(w);
	/* Spans not yet sent are dropped here: the main loop that would send
	 * them to sinewd is ending too (and nothing may post to it now). */
	sn_trace_out_free(w);
	/* The worker thread has exited; its loop is ours now. Close pooled
	 * connections, then run one iteration so the reclaim phase frees them
	 * and anything closed by on_stop. */
	for (size_t i = 0; i < w->hosts_cap; i++) {
		struct sn_host *h = w->hosts ? w->hosts[i] : NULL;
		while (h != NULL && h->idle != NULL)
			sn_uconn_destroy(w, h->idle);
		if (h != NULL)
			sn__h2u_close_all(w, h);
	}
	sn_loop_run_once(&w->loop, 0);
	for (size_t i = 0; i < w->hosts_cap; i++)
		if (w->hosts != NULL)
			free(w->hosts[i]);
	free(w->hosts);
	if (w->snap != NULL) {
		release_cluster_state(w);
		sn_snapshot_unref(w->snap);
		w->snap = NULL;
	}
	sn_exchange_free_cache(w);
	sn_jwt_cache_drop(w);
	free(w->vhost_used);
	sn_buf_pool_dispose(&w->pool);
	sn_loop_dispose(&w->loop);
	/* metrics are freed by the proxy after the last scrape */
}
