/* Upstream connections: non-blocking connect with a timeout, a LIFO idle
 * pool per endpoint with keep-alive reuse, and an idle timeout. An idle
 * connection stays registered with epoll so a close by the server is seen
 * at once and the connection is dropped rather than handed to a request. */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sinew/log.h"
#include "exchange.h"

#define DEFAULT_MAX_CONNS_PER_HOST 1024

static void reclaim_uconn(struct sn_loop *loop, struct sn_task *t)
{
	struct sn_uconn *u = sn_container_of(t, struct sn_uconn, reclaim);
	free(u);
}

static void idle_unlink(struct sn_uconn *u)
{
	struct sn_uconn **pp = &u->host->idle;
	while (*pp != NULL) {
		if (*pp == u) {
			*pp = u->next_idle;
			u->host->n_idle--;
			break;
		}
		pp = &(*pp)->next_idle;
	}
	u->next_idle = NULL;
	u->idle = 0;
}

void sn_uconn_destroy(struct sn_worker *w, struct sn_uconn *u)
{
	if (u->idle)
		idle_unlink(u);
	sn_timer_stop(&w->loop, &u->timer);
	sn_io_stop(&w->loop, &u->io);
	free(u->tls_id);
	u->tls_id = NULL;
	if (u->x.fd >= 0) {
		sn_xprt_close(&u->x, !u->handshaking && !u->eof);   /* TLS: close_notify, best effort */
		u->host->n_conns--;
		sn_metrics_add(w->metrics, SN_CTR_UPSTREAM_CX_ACTIVE, -1);
		sn__host_freed(w, u->host);
	}
	sn_buf_release(&w->pool, &u->in);
	u->ex = NULL;
	sn_loop_reclaim(&w->loop, &u->reclaim, reclaim_uconn);
}

void sn_uconn_detach(struct sn_worker *w, struct sn_uconn *u, struct sn_xprt *out)
{
	*out = u->x;
	sn_io_stop(&w->loop, &u->io);
	if (u->x.fd >= 0) {
		u->host->n_conns--;
		sn_metrics_add(w->metrics, SN_CTR_UPSTREAM_CX_ACTIVE, -1);
		sn__host_freed(w, u->host);
	}
	sn_xprt_init(&u->x, -1);
}

static void on_idle_timeout(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_uconn *u = sn_container_of(t, struct sn_uconn, timer);
	sn_uconn_destroy(u->w, u);
}

static void on_connect_timeout(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_uconn *u = sn_container_of(t, struct sn_uconn, timer);
	if (u->ex != NULL)
		sn_exchange_on_connect_timeout(u->ex);
	else
		sn_uconn_destroy(u->w, u);
}

static void on_io(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct sn_uconn *u = sn_container_of(io, struct sn_uconn, io);

	if (events & SN_IO_WRITE)
		u->can_write = 1;
	if (events & SN_IO_READ)
		u->can_read = 1;
	if (events & SN_IO_HUP)
		u->hup = 1;
	if (sn_xprt_has(&u->x, SN_XPRT_CROSSED_READINESS) && (events & (SN_IO_READ | SN_IO_WRITE))) {
		/* A TLS read may wait for writability and a write for
		 * readability: any readiness retries both. */
		u->can_read = 1;
		u->can_write = 1;
	}
	if (u->ex != NULL) {
		sn_exchange_on_upstream(u->ex, events);
		return;
	}
	if (u->idle && (events & (SN_IO_READ | SN_IO_HUP))) {
		/* Data or EOF on an idle connection: the server closed it or
		 * broke the protocol. Either way it can't be reused. */
		char b[1];
		ssize_t n = recv(u->x.fd, b, sizeof(b), MSG_PEEK);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) || n > 0)
			sn_uconn_destroy(u->w, u);
		else
			u->can_read = 0;
	}
}

int sn_upstream_mtls(struct sn_worker *w, const struct sn_cluster *cl, const struct sn_endpoint *ep, char *id,
		     size_t size)
{
	const char *label = sn_labels_get(&ep->labels, SN_TLS_MODE_LABEL);
	int mtls = cl->tls_mode == SN_CLUSTER_TLS_ISTIO_MUTUAL ||
		   (!cl->tls_set && label != NULL && strcmp(label, "istio") == 0);
	struct sn_tls_ctx *tc = __atomic_load_n(&w->proxy->tls_client, __ATOMIC_ACQUIRE);
	if (!mtls)
		return 0;
	if (tc == NULL)
		return w->proxy->opt.token != NULL ? SN_EAGAIN : 0;
	/* The identity the registry gives the endpoint (DESIGN.md §5). */
	snprintf(id, size, "spiffe://%s/ns/%s/sa/%s", w->proxy->opt.trust_domain,
		 cl->namespace_ ? cl->namespace_ : "default",
		 ep->service_account && ep->service_account[0] ? ep->service_account : "default");
	return 1;
}

int sn_uconn_acquire(struct sn_worker *w, struct sn_host *host, const struct sn_cluster *c,
		     struct sn_exchange *ex, int force_new, const char *tls_id, struct sn_uconn **out)
{
	struct sn_uconn *u;
	uint32_t max = c->max_connections ? c->max_connections : DEFAULT_MAX_CONNS_PER_HOST;

	u = host->idle;
	while (u != NULL && (tls_id == NULL ? u->tls_id != NULL : u->tls_id == NULL || strcmp(u->tls_id, tls_id) != 0))
		u = u->next_idle;
	if (!force_new && u != NULL) {
		idle_unlink(u);
		sn_timer_stop(&w->loop, &u->timer);
		u->ex = ex;
		u->reused = 1;
		sn_metrics_add(w->metrics, SN_CTR_UPSTREAM_CX_REUSED, 1);
		*out = u;
		return 0;
	}
	if (host->n_conns >= max)
		return SN_ELIMIT;
	u = calloc(1, sizeof(*u));
	if (u == NULL)
		return SN_ENOMEM;
	int fd = socket(host->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		free(u);
		return SN_EIO;
	}
	sn_xprt_init(&u->x, fd);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	u->w = w;
	u->host = host;
	u->ex = ex;
	u->max_requests = c->max_requests_per_conn;
	u->idle_timeout_ms = c->idle_timeout_ms ? c->idle_timeout_ms : 60000;
	host->n_conns++;
	sn_metrics_add(w->metrics, SN_CTR_UPSTREAM_CX_TOTAL, 1);
	sn_metrics_add(w->metrics, SN_CTR_UPSTREAM_CX_ACTIVE, 1);
	if (connect(fd, (struct sockaddr *)&host->addr, host->addr_len) != 0 && errno != EINPROGRESS) {
		/* Immediate failure (e.g. refused on loopback): report through
		 * the normal path so retries apply. */
		u->eof = 1;
	}
	if (tls_id != NULL) {
		const char *ids[1] = { tls_id };
		struct sn_tls_conn_opts co = { .expected_ids = ids, .n_expected = 1, .session_key = host->key };
		u->tls_id = strdup(tls_id);
		if (u->tls_id == NULL ||
		    (!strncmp(tls_id, "tls:", 4) ? sn_upstream_origin_start(w, c, tls_id, 0, &u->x)
						 : sn_xprt_tls(&u->x, __atomic_load_n(&w->proxy->tls_client,
										      __ATOMIC_ACQUIRE), &co)) != 0) {
			free(u->tls_id);
			u->tls_id = NULL;
			u->eof = 1;  /* fails the attempt as a connect failure */
		} else {
			u->handshaking = 1;
		}
	}
	if (sn_io_start(&w->loop, &u->io, fd, on_io) != 0) {
		sn_xprt_close(&u->x, 0);
		free(u->tls_id);
		host->n_conns--;
		sn_metrics_add(w->metrics, SN_CTR_UPSTREAM_CX_ACTIVE, -1);
		free(u);
		return SN_EIO;
	}
	sn_timer_start(&w->loop, &u->timer, c->connect_timeout_ms ? c->connect_timeout_ms : 1000,
		       on_connect_timeout);
	*out = u;
	return 0;
}

void sn_uconn_release(struct sn_worker *w, struct sn_uconn *u, int reusable)
{
	if (u->h2 != NULL) {
		sn__h2u_release(u);   /* a stream; its connection goes on */
		return;
	}
	u->ex = NULL;
	u->requests++;
	if (!reusable || w->draining || u->eof || sn_buf_len(&u->in) != 0 ||
	    (u->max_requests && u->requests >= u->max_requests)) {
		sn_uconn_destroy(w, u);
		return;
	}
	sn_buf_release(&w->pool, &u->in);
	u->reused = 0;
	u->idle = 1;
	u->next_idle = u->host->idle;
	u->host->idle = u;
	u->host->n_idle++;
	sn_timer_start(&w->loop, &u->timer, u->idle_timeout_ms, on_idle_timeout);
	sn__host_freed(w, u->host);
}
