/* One-shot HTTP/1.1 calls the proxy makes on its own behalf: a request
 * already written out, on a connection of its own (the caller's bytes say
 * Connection: close), to an endpoint picked from a cluster by its balancer,
 * in mutual TLS when any request to that endpoint would be. The answer is
 * read to the end of the connection, at most max_response bytes kept (the
 * rest read and dropped), and handed to the callback once, with the time
 * limit. Users: the mirror's copies (filter_mirror.c) and external
 * authorization checks (extauthz.c). At most ONESHOT_MAX_INFLIGHT per
 * worker. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sinew/log.h"
#include "sinew/tls_stream.h"
#include "proxy.h"

#define ONESHOT_MAX_INFLIGHT 1024

struct sn_oneshot {
	struct sn_io io;
	struct sn_oneshot *next, **pprev;   /* the worker's calls in flight */
	struct sn_xprt x;
	struct sn_timer timer;
	struct sn_worker *w;
	char *out;
	size_t out_len, out_off;
	char *in;                   /* the answer, up to max_in bytes */
	size_t in_len, max_in;
	sn_oneshot_cb cb;
	void *user;
	unsigned handshaking : 1;
	unsigned ended : 1;
	unsigned failed : 1;        /* TLS could not start: ends at the next turn */
	struct sn_task reclaim;
};

static void reclaim_oneshot(struct sn_loop *loop, struct sn_task *t)
{
	(void)loop;
	free(sn_container_of(t, struct sn_oneshot, reclaim));
}

/* Ends the call: the callback (unless cancelled) gets the answer. */
static void oneshot_end(struct sn_oneshot *o, enum sn_oneshot_end how, int call)
{
	struct sn_worker *w = o->w;
	if (o->ended)
		return;
	o->ended = 1;
	sn_timer_stop(&w->loop, &o->timer);
	sn_io_stop(&w->loop, &o->io);
	sn_xprt_close(&o->x, 0);
	free(o->out);
	o->out = NULL;
	*o->pprev = o->next;
	if (o->next != NULL)
		o->next->pprev = o->pprev;
	w->n_oneshots--;
	char *in = o->in;
	size_t in_len = o->in_len;
	o->in = NULL;
	sn_loop_reclaim(&w->loop, &o->reclaim, reclaim_oneshot);
	if (call)
		o->cb(o->user, how, in, in_len);   /* o is not touched after this */
	else
		free(in);
}

static void oneshot_io(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct sn_oneshot *o = sn_container_of(io, struct sn_oneshot, io);
	char b[4096];
	(void)loop, (void)events;

	if (o->handshaking) {
		int r = sn_xprt_handshake(&o->x);
		if (r == SN_EAGAIN)
			return;
		if (r < 0) {
			oneshot_end(o, SN_ONESHOT_FAILED, 1);
			return;
		}
		o->handshaking = 0;
	}
	while (o->out_off < o->out_len) {
		ssize_t n = sn_xprt_write(&o->x, o->out + o->out_off, o->out_len - o->out_off);
		if (n == SN_EAGAIN)
			break;
		if (n < 0) {
			oneshot_end(o, SN_ONESHOT_FAILED, 1);
			return;
		}
		o->out_off += (size_t)n;
	}
	for (;;) {
		size_t room = o->max_in - o->in_len;
		ssize_t n = sn_xprt_read(&o->x, room ? o->in + o->in_len : b, room ? room : sizeof(b));
		if (n > 0) {
			if (room)
				o->in_len += (size_t)n;
			continue;
		}
		if (n == SN_EAGAIN)
			return;
		/* The end (Connection: close), or an error. */
		oneshot_end(o, n == SN_ECLOSED && o->in_len > 0 ? SN_ONESHOT_ANSWERED : SN_ONESHOT_FAILED, 1);
		return;
	}
}

static void oneshot_timeout(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_oneshot *o = sn_container_of(t, struct sn_oneshot, timer);
	(void)loop;
	oneshot_end(o, o->failed ? SN_ONESHOT_FAILED : SN_ONESHOT_TIMEOUT, 1);
}

struct sn_oneshot *sn_oneshot_start(struct sn_worker *w, const struct sn_cluster *cl, char *out, size_t out_len,
				    size_t max_response, uint32_t timeout_ms, sn_oneshot_cb cb, void *user,
				    const char **why)
{
	struct sn_cluster_state *cs = sn_worker_cluster_state(w, cl);
	char id[SN_SPIFFE_ID_MAX];

	*why = NULL;
	if (cl->n_endpoints == 0) {
		*why = "no endpoint";
	} else if (w->n_oneshots >= ONESHOT_MAX_INFLIGHT) {
		*why = "too many calls in flight";
	}
	if (*why != NULL) {
		free(out);
		return NULL;
	}
	int idx = cs != NULL ? sn_lb_pick(w, cl, cs) : (int)(sn_worker_random(w) % cl->n_endpoints);
	const struct sn_endpoint *ep = &cl->endpoints[idx];
	int mtls = sn_upstream_mtls(w, cl, ep, id, sizeof(id));
	if (mtls < 0) {
		*why = "no certificate yet for mutual TLS";
		free(out);
		return NULL;
	}
	struct sn_oneshot *o = calloc(1, sizeof(*o));
	char *in = max_response ? malloc(max_response) : NULL;
	int fd = o != NULL && (in != NULL || max_response == 0)
			 ? socket(ep->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
			 : -1;
	if (fd < 0) {
		*why = o == NULL || (in == NULL && max_response) ? "out of memory" : "no socket";
		free(o);
		free(in);
		free(out);
		return NULL;
	}
	o->w = w;
	o->out = out;
	o->out_len = out_len;
	o->in = in;
	o->max_in = max_response;
	o->cb = cb;
	o->user = user;
	sn_xprt_init(&o->x, fd);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((connect(fd, (const struct sockaddr *)&ep->addr, ep->addr_len) != 0 && errno != EINPROGRESS) ||
	    sn_io_start(&w->loop, &o->io, fd, oneshot_io) != 0) {
		*why = "connect failed";
		sn_xprt_close(&o->x, 0);
		free(o->in);
		free(o->out);
		free(o);
		return NULL;
	}
	o->next = w->oneshots;
	if (o->next != NULL)
		o->next->pprev = &o->next;
	o->pprev = &w->oneshots;
	w->oneshots = o;
	w->n_oneshots++;
	sn_timer_start(&w->loop, &o->timer, timeout_ms, oneshot_timeout);
	if (mtls == 1) {
		const char *ids[1] = { id };
		struct sn_tls_conn_opts co = { .expected_ids = ids, .n_expected = 1 };
		struct sn_tls_ctx *tc = __atomic_load_n(&w->proxy->tls_client, __ATOMIC_ACQUIRE);
		if (sn_xprt_tls(&o->x, tc, &co) != 0) {
			/* ended in a later turn of the loop, so the caller sees a
			 * call started and its callback once, never re-entered */
			o->failed = 1;
			sn_timer_start(&w->loop, &o->timer, 0, oneshot_timeout);
			return o;
		}
		o->handshaking = 1;
	}
	return o;
}

void sn_oneshot_cancel(struct sn_oneshot *o)
{
	oneshot_end(o, SN_ONESHOT_FAILED, 0);
}

void sn_oneshot_close_all(struct sn_worker *w)
{
	while (w->oneshots != NULL)
		oneshot_end(w->oneshots, SN_ONESHOT_FAILED, 1);
}
