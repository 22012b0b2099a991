/* One-shot calls the proxy makes on its own behalf, on a connection of
 * their own to an endpoint picked from a cluster by its balancer, in
 * mutual TLS when any request to that endpoint would be, each handed to
 * its callback once, with a time limit. Two kinds share the connection's
 * life (pick, connect, TLS, timer, the worker's list):
 *   HTTP/1.1  a request already written out (the caller's bytes say
 *             Connection: close); the answer is read to the end of the
 *             connection, at most max_response bytes kept (the rest read
 *             and dropped). Users: the mirror's copies (filter_mirror.c),
 *             external authorization over HTTP (filter_extauthz.c).
 *   gRPC      one unary call over HTTP/2 with prior knowledge (h2c, or h2
 *             inside the mesh's mTLS), on the tree's one HTTP/2 client
 *             codec (src/http/h2_client.c); the response's status, DATA
 *             (at most max_response: more resets the stream and ends the
 *             call as failed) and grpc-status. User: external
 *             authorization over gRPC.
 * One connection per call: no pooling yet (docs/security.md). At most
 * ONESHOT_MAX_INFLIGHT calls per worker. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sinew/h2.h"
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
	/* gRPC: the HTTP/2 session; out holds one batch of its bytes at a time */
	struct sn_h2c *h2;
	sn_oneshot_grpc_cb gcb;
	size_t out_cap;
	int status, grpc_status;
	unsigned h2_closed : 1;      /* the stream is gone: the call is over */
	unsigned h2_ended : 1;       /* ... and the response was whole */
	unsigned h2_truncated : 1;   /* the response was longer than max_in */
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
	sn_h2c_free(o->h2);   /* never from inside its own callbacks (h2_io) */
	o->h2 = NULL;
	sn_loop_reclaim(&w->loop, &o->reclaim, reclaim_oneshot);
	if (call && o->gcb != NULL) {
		struct sn_oneshot_grpc_answer a = { o->status, o->grpc_status, in, in_len, o->h2_truncated };
		o->gcb(o->user, how, &a);          /* o is not touched after this */
	} else if (call) {
		o->cb(o->user, how, in, in_len);   /* o is not touched after this */
	} else {
		free(in);
	}
}

/* Writes what is left of o->out: 1 when all of it is out, 0 when the
 * socket would block, -1 when the call ended (failed). */
static int flush_out(struct sn_oneshot *o)
{
	while (o->out_off < o->out_len) {
		ssize_t n = sn_xprt_write(&o->x, o->out + o->out_off, o->out_len - o->out_off);
		if (n == SN_EAGAIN)
			return 0;
		if (n < 0) {
			oneshot_end(o, SN_ONESHOT_FAILED, 1);
			return -1;
		}
		o->out_off += (size_t)n;
	}
	return 1;
}

/* ---- gRPC over HTTP/2 ---------------------------------------------------- */

/* grpc-status among fields (a trailers-only answer carries it in its
 * head). -1 when absent or not a number. */
static int grpc_status_of(const struct sn_http_field *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!sn_str_eq_cstr(f[i].name, "grpc-status"))
			continue;
		int v = 0;
		if (f[i].value.len == 0 || f[i].value.len > 3)
			return -1;
		for (size_t k = 0; k < f[i].value.len; k++) {
			if (f[i].value.p[k] < '0' || f[i].value.p[k] > '9')
				return -1;
			v = v * 10 + (f[i].value.p[k] - '0');
		}
		return v;
	}
	return -1;
}

static void g_on_response(void *arg, struct sn_h2c_stream *st, const struct sn_http_head *h)
{
	struct sn_oneshot *o = arg;
	(void)st;
	o->status = h->status;
	o->grpc_status = grpc_status_of(h->fields, h->n_fields);
}

static void g_on_data(void *arg, struct sn_h2c_stream *st, const void *p, size_t n)
{
	struct sn_oneshot *o = arg;
	if (o->h2_truncated)
		return;
	if (n > o->max_in - o->in_len) {
		o->h2_truncated = 1;
		sn_h2c_reset(o->h2, st, 0x8 /* CANCEL */);
		return;
	}
	memcpy(o->in + o->in_len, p, n);
	o->in_len += n;
	sn_h2c_consumed(o->h2, st, n);
}

static void g_on_end(void *arg, struct sn_h2c_stream *st, const struct sn_http_field *trailers, size_t n)
{
	struct sn_oneshot *o = arg;
	(void)st;
	if (n > 0)
		o->grpc_status = grpc_status_of(trailers, n);
	o->h2_ended = !o->h2_truncated;
}

static void g_on_close(void *arg, struct sn_h2c_stream *st, uint32_t error)
{
	struct sn_oneshot *o = arg;
	(void)st;
	o->h2_closed = 1;
	if (error != 0)
		o->h2_ended = 0;
}

static void g_on_writable(void *arg, struct sn_h2c_stream *st)
{
	(void)arg, (void)st;   /* the whole message is queued at once */
}

/* Drives the session: its bytes out (one batch at a time, kept in o->out
 * until written, since nghttp2's pointer dies with the next call), the
 * server's in, until the socket would block or the stream is over. */
static void h2_io(struct sn_oneshot *o)
{
	char b[16384];
	for (;;) {
		for (;;) {
			if (o->out_off == o->out_len) {
				const uint8_t *p;
				ssize_t n = sn_h2c_send_buf(o->h2, &p);
				if (n < 0) {
					oneshot_end(o, SN_ONESHOT_FAILED, 1);
					return;
				}
				if (n == 0)
					break;
				if ((size_t)n > o->out_cap) {
					char *nb = realloc(o->out, (size_t)n);
					if (nb == NULL) {
						oneshot_end(o, SN_ONESHOT_FAILED, 1);
						return;
					}
					o->out = nb;
					o->out_cap = (size_t)n;
				}
				memcpy(o->out, p, (size_t)n);
				o->out_len = (size_t)n;
				o->out_off = 0;
			}
			int r = flush_out(o);
			if (r < 0)
				return;
			if (r == 0)
				break;
		}
		ssize_t n = sn_xprt_read(&o->x, b, sizeof(b));
		if (n == SN_EAGAIN)
			return;
		if (n <= 0 || sn_h2c_recv(o->h2, b, (size_t)n) != 0 || o->h2_closed) {
			oneshot_end(o, o->h2_closed && o->h2_ended ? SN_ONESHOT_ANSWERED : SN_ONESHOT_FAILED, 1);
			return;
		}
	}
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
	if (o->h2 != NULL) {
		h2_io(o);
		return;
	}
	if (flush_out(o) < 0)
		return;
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

/* The connection of a call: an endpoint of cl, a socket connecting to it,
 * the timer, TLS when the endpoint's requests use it. out (taken) is what
 * the call sends first. NULL with *why when it cannot start. */
static struct sn_oneshot *oneshot_open(struct sn_worker *w, const struct sn_cluster *cl, char *out, size_t out_len,
				       size_t max_response, uint32_t timeout_ms, void *user, const char **why)
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
	if (mtls == 0 && (cl->tls_mode == SN_CLUSTER_TLS_SIMPLE || cl->tls_mode == SN_CLUSTER_TLS_MUTUAL)) {
		*why = "its DestinationRule asks for TLS origination, which the proxy's own calls do not make";
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
	o->out_cap = out_len;
	o->in = in;
	o->max_in = max_response;
	o->user = user;
	o->grpc_status = -1;
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

struct sn_oneshot *sn_oneshot_start(struct sn_worker *w, const struct sn_cluster *cl, char *out, size_t out_len,
				    size_t max_response, uint32_t timeout_ms, sn_oneshot_cb cb, void *user,
				    const char **why)
{
	struct sn_oneshot *o = oneshot_open(w, cl, out, out_len, max_response, timeout_ms, user, why);
	if (o != NULL)
		o->cb = cb;
	return o;
}

struct sn_oneshot *sn_oneshot_grpc_start(struct sn_worker *w, const struct sn_cluster *cl, const char *authority,
					 const char *path, char *msg, size_t msg_len, size_t max_response,
					 uint32_t timeout_ms, sn_oneshot_grpc_cb cb, void *user, const char **why)
{
	static const struct sn_h2c_cbs cbs = { g_on_response, g_on_data, g_on_end, g_on_writable, g_on_close };
	/* The answer's DATA within one window: nothing to give back mid-call. */
	struct sn_h2c_limits lim = {
		.max_header_list = 16u << 10,
		.max_fields = 32,
		.stream_window = (uint32_t)SN_MIN(max_response + 1024, (size_t)(1u << 30)),
		.conn_window = (uint32_t)SN_MIN(max_response + 1024, (size_t)(1u << 30)),
		.max_out = msg_len ? msg_len : 1,
	};
	const struct sn_http_field fields[] = { { SN_STR_LIT("content-type"), SN_STR_LIT("application/grpc") } };
	struct sn_http_head h = { .method = SN_STR_LIT("POST"), .scheme = SN_STR_LIT("http"),
				  .authority = sn_str_make(authority, strlen(authority)),
				  .path = sn_str_make(path, strlen(path)), .fields = fields,
				  .n_fields = SN_ARRAY_LEN(fields), .content_length = -1 };
	struct sn_h2c_stream *st;

	if (max_response == 0) {
		*why = "no room for an answer";
		free(msg);
		return NULL;
	}
	struct sn_oneshot *o = oneshot_open(w, cl, NULL, 0, max_response, timeout_ms, user, why);
	if (o == NULL) {
		free(msg);
		return NULL;
	}
	o->gcb = cb;
	/* The request is queued as the connection starts: its bytes go as
	 * soon as it is up (the socket's first writable event). */
	if (sn_h2c_new(&lim, &cbs, o, &o->h2) != 0 || sn_h2c_request(o->h2, &h, 1, 0, NULL, &st) != 0 ||
	    sn_h2c_write(o->h2, st, msg, msg_len) != (ssize_t)msg_len || sn_h2c_end(o->h2, st) != 0) {
		*why = "out of memory for the HTTP/2 session";
		free(msg);
		oneshot_end(o, SN_ONESHOT_FAILED, 0);
		return NULL;
	}
	free(msg);
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
