/* The gateway's ports that carry bytes, not HTTP.
 *
 * TLS passthrough (a Gateway server with tls.mode PASSTHROUGH): the first
 * bytes of each connection are peeked, not read, until the ClientHello's
 * server name is known (src/tls/client_hello.c); the route for that name
 * (a VirtualService's tls[], translate.c) picks a destination, and the
 * connection goes there as opaque TCP (tcp.c), the client's TLS untouched
 * end to end -- inside mTLS to a meshed workload, as Istio's gateway does.
 * A connection that sends no ClientHello within PEEK_MS, something else
 * than one, or a name no route takes is closed and logged.
 *
 * TCP (a server of protocol TCP): the port's one tcp[] route picks a
 * destination per connection, at once. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sinew/client_hello.h"
#include "sinew/log.h"
#include "proxy.h"

#define PEEK_MS 5000   /* Envoy's listener filters wait 15 s; a ClientHello is the first thing sent */

struct sni_peek {
	struct sn_worker *w;
	int fd;
	uint16_t port;
	int done;
	struct sn_io io;
	struct sn_timer timer;
	struct sn_task reclaim;
	char peer[64];
};

static void reclaim_peek(struct sn_loop *loop, struct sn_task *task)
{
	(void)loop;
	free(sn_container_of(task, struct sni_peek, reclaim));
}

/* Ends the peek; the fd is closed unless it was handed on. */
static void peek_end(struct sni_peek *p, int close_fd)
{
	if (p->done)
		return;
	p->done = 1;
	sn_timer_stop(&p->w->loop, &p->timer);
	sn_io_stop(&p->w->loop, &p->io);
	if (close_fd)
		close(p->fd);
	sn_loop_reclaim(&p->w->loop, &p->reclaim, reclaim_peek);
}

static void route(struct sni_peek *p, const char *sni)
{
	struct sn_worker *w = p->w;
	const struct sn_gw_listener *gl = sn_snapshot_find_gw_listener(w->snap, p->port);
	const struct sn_sni_route *r = gl != NULL && gl->passthrough ? sn_snapshot_find_sni_route(gl, sni) : NULL;
	if (r == NULL || r->n_dests == 0 || r->total_weight == 0) {
		sn_log(SN_LOG_INFO, "gateway: port %u: %s asked for server name %s, which no tls route of a "
		       "VirtualService bound there takes%s; closing", p->port, p->peer, sni ? sni : "(none)",
		       r != NULL ? " (its destinations are unknown)" : "");
		peek_end(p, 1);
		return;
	}
	const struct sn_route_dest *d = sn_route_pick_weighted(r->dests, r->n_dests, r->total_weight,
							       sn_worker_random(w));
	char from[400];
	snprintf(from, sizeof(from), "gateway port %u %s sni %s", p->port, p->peer, sni ? sni : "(none)");
	int fd = p->fd;
	peek_end(p, 0);
	sn_tcp_to_cluster(w, fd, &w->snap->clusters[d->cluster], from);
}

static void on_peek_io(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	(void)loop;
	(void)events;
	struct sni_peek *p = sn_container_of(io, struct sni_peek, io);
	unsigned char b[SN_CLIENT_HELLO_MAX];
	char name[256];

	if (p->done)
		return;
	ssize_t n = recv(p->fd, b, sizeof(b), MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		peek_end(p, 1);   /* gone before its ClientHello */
		return;
	}
	int r = sn_client_hello_sni(b, (size_t)n, name, sizeof(name));
	if (r == SN_EAGAIN)
		return;   /* the rest of the record comes with the next bytes */
	if (r == SN_EINVAL) {
		sn_log(SN_LOG_INFO, "gateway: port %u: %s sent something other than a TLS ClientHello (a port with "
		       "tls.mode PASSTHROUGH takes TLS); closing", p->port, p->peer);
		peek_end(p, 1);
		return;
	}
	route(p, r == 1 ? name : NULL);
}

static void on_peek_timer(struct sn_loop *loop, struct sn_timer *tm)
{
	(void)loop;
	struct sni_peek *p = sn_container_of(tm, struct sni_peek, timer);
	sn_log(SN_LOG_INFO, "gateway: port %u: %s sent no ClientHello within %d ms; closing", p->port, p->peer,
	       PEEK_MS);
	peek_end(p, 1);
}

void sn_gw_passthrough_accept(struct sn_worker *w, int fd, uint16_t port, const struct sockaddr *peer,
			      socklen_t peer_len)
{
	struct sni_peek *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		close(fd);
		return;
	}
	p->w = w;
	p->fd = fd;
	p->port = port;
	(void)peer_len;
	sn_addr_format(peer, p->peer, sizeof(p->peer));
	if (sn_io_start(&w->loop, &p->io, fd, on_peek_io) != 0) {
		close(fd);
		free(p);
		return;
	}
	sn_timer_start(&w->loop, &p->timer, PEEK_MS, on_peek_timer);
}

const struct sn_cluster *sn_gw_tcp_pick(struct sn_worker *w, const struct sn_gw_listener *gl, const char *who)
{
	const struct sn_sni_route *r = gl->tcp_route;
	if (r == NULL || r->n_dests == 0 || r->total_weight == 0) {
		sn_log(SN_LOG_INFO, "gateway: port %u: %s: no tcp route of a VirtualService bound there takes this "
		       "port%s; closing", gl->port, who, r != NULL ? " (its destinations are unknown)" : "");
		return NULL;
	}
	const struct sn_route_dest *d = sn_route_pick_weighted(r->dests, r->n_dests, r->total_weight,
							       sn_worker_random(w));
	return &w->snap->clusters[d->cluster];
}

void sn_gw_tcp_accept(struct sn_worker *w, int fd, const struct sn_gw_listener *gl, const struct sockaddr *peer,
		      socklen_t peer_len)
{
	char from[128];
	char who[64];
	(void)peer_len;
	sn_addr_format(peer, who, sizeof(who));
	const struct sn_cluster *cl = sn_gw_tcp_pick(w, gl, who);
	if (cl == NULL) {
		close(fd);
		return;
	}
	snprintf(from, sizeof(from), "gateway port %u %s", gl->port, who);
	sn_tcp_to_cluster(w, fd, cl, from);
}
