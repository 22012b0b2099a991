/* WebSocket over HTTP/2 (RFC 8441): an extended CONNECT on a client's
 * HTTP/2 stream (:method CONNECT, :protocol websocket) becomes, towards
 * the endpoint, the HTTP/1.1 handshake of RFC 6455, and on the endpoint's
 * 101 the stream and the endpoint's connection relay bytes until both
 * sides end.
 *
 * Before the 101 the request is an ordinary exchange (exchange.c): the
 * head it routes on is made here -- GET, Upgrade: websocket, a fresh
 * Sec-WebSocket-Key, Sec-WebSocket-Version -- so the route lookup,
 * AuthorizationPolicy, faults, retries and the records treat it as they
 * treat an HTTP/1.1 WebSocket handshake (Envoy does the same
 * translation). The endpoint's 101 must carry the Sec-WebSocket-Accept of
 * our key (a server that did not take part in the handshake answers 502);
 * the client gets 200 with the 101's fields, as RFC 8441 5 says, and the
 * exchange is recorded with that 200 and ends. Any other answer is passed
 * on as it is, and there is no tunnel.
 *
 * The relay is bounded by the codec's own backpressure, both ways:
 *   - client -> endpoint: DATA lands in the stream's body buffer
 *     (h2_downstream.c), and its window goes back to the client only as
 *     the endpoint's socket takes the bytes (sn__h2d_consumed); so at most
 *     a stream window (256 KiB) waits here, however slow the endpoint;
 *   - endpoint -> client: one RELAY_BUF read buffer, refilled only once
 *     the stream's send queue (64 KiB, SN_H2S_DEFAULT_MAX_OUT) took all of
 *     it; when the queue is full the socket is not read until the codec's
 *     on_writable, and the client's window paces the queue.
 * The client's END_STREAM is a FIN to the endpoint once its bytes are
 * out (half-close); the endpoint's FIN is END_STREAM once its bytes are
 * queued; an endpoint's error resets the stream (CONNECT_ERROR, RFC 9113
 * 8.5), a client's RST_STREAM closes the endpoint's connection, and an
 * idle tunnel ends after TUNNEL_IDLE_MS (as the HTTP/1.1 tunnels of
 * tcp.c). The stream counts against the connection's concurrent streams
 * like any other.
 *
 * Not yet: extended CONNECT towards an endpoint spoken to in HTTP/2 (the
 * exchange answers 501), and :protocol values other than websocket. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "sinew/log.h"
#include "exchange_int.h"

#define RELAY_BUF 16384
#define TUNNEL_IDLE_MS (60u * 60 * 1000)   /* tcp.c's relay: Istio's TCP idle timeout, 1 h */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"   /* RFC 6455 1.3 */
#define WS_KEY_LEN 24                                    /* base64 of 16 bytes */
#define WS_ACCEPT_LEN 28                                 /* base64 of a SHA-1 */
#define H2_CANCEL 0x8
#define H2_CONNECT_ERROR 0xa

struct sn_h2t {
	struct sn_worker *w;
	struct sn_h2d_stream *s;       /* NULL once the stream is gone */
	/* before the 101: the head the exchange routes on (views into the
	 * codec's head, these fields and key) */
	struct sn_http_head head;
	struct sn_http_field *fields;
	char key[WS_KEY_LEN + 1];
	/* relaying */
	struct sn_io io;
	struct sn_xprt x;              /* the endpoint's connection, plain or mTLS */
	struct sn_timer timer;         /* idle */
	unsigned char *u2d;            /* from the endpoint, not yet in the stream's queue */
	size_t u2d_cap, u2d_off, u2d_len;
	uint64_t rx, tx;               /* bytes from the client, to the client */
	unsigned active : 1;           /* the 101 came: bytes move */
	unsigned up_eof : 1;           /* the endpoint's FIN */
	unsigned up_shut : 1;          /* the client's END_STREAM passed on as our FIN */
	unsigned out_ended : 1;        /* END_STREAM queued */
	unsigned failed : 1;           /* reset, waiting for the stream to go */
	char what[400];                /* for logs */
	struct sn_task reclaim;
};

/* ---- the handshake ---------------------------------------------------------- */

int sn__h2t_websocket(const struct sn_http_head *h)
{
	return sn_str_eq_cstr(h->method, "CONNECT") && sn_str_ieq_cstr(h->protocol, "websocket");
}

/* Sec-WebSocket-Accept for key: base64(SHA-1(key GUID)), into out (at
 * least WS_ACCEPT_LEN + 1 bytes). 0, or -1 if OpenSSL failed. */
static int ws_accept(const char *key, char *out)
{
	char in[WS_KEY_LEN + sizeof(WS_GUID)];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	int n = snprintf(in, sizeof(in), "%s%s", key, WS_GUID);

	if (n < 0 || (size_t)n >= sizeof(in) || !EVP_Digest(in, (size_t)n, md, &mdlen, EVP_sha1(), NULL) ||
	    mdlen != 20)
		return -1;
	EVP_EncodeBlock((unsigned char *)out, md, 20);
	return 0;
}

/* A fresh key for one handshake (RFC 6455 4.1: 16 random bytes). The
 * worker's generator stands in if OpenSSL's has nothing to give. */
static void ws_key(struct sn_worker *w, char *out)
{
	unsigned char nonce[16];

	if (RAND_bytes(nonce, sizeof(nonce)) != 1) {
		uint64_t a = sn_worker_random(w), b = sn_worker_random(w);
		memcpy(nonce, &a, 8);
		memcpy(nonce + 8, &b, 8);
	}
	EVP_EncodeBlock((unsigned char *)out, nonce, sizeof(nonce));
}

struct sn_h2t *sn__h2t_new(struct sn_worker *w, struct sn_h2d_stream *s, const struct sn_http_head *h,
			   const struct sn_http_head **out)
{
	struct sn_h2t *t = calloc(1, sizeof(*t));
	size_t n = 0;
	int version = 0;

	if (t == NULL || (t->fields = malloc((h->n_fields + 3) * sizeof(*t->fields))) == NULL) {
		free(t);
		return NULL;
	}
	t->w = w;
	t->s = s;
	sn_xprt_init(&t->x, -1);
	ws_key(w, t->key);
	for (size_t i = 0; i < h->n_fields; i++) {
		struct sn_str name = h->fields[i].name;
		/* The key and its answer are the proxy's, hop by hop (an
		 * HTTP/2 client sends neither: RFC 8441 5); a length would
		 * have the endpoint wait for a body that is the tunnel's. */
		if (sn_str_eq_cstr(name, "sec-websocket-key") || sn_str_eq_cstr(name, "sec-websocket-accept") ||
		    sn_str_eq_cstr(name, "content-length"))
			continue;
		version |= sn_str_eq_cstr(name, "sec-websocket-version");
		t->fields[n++] = h->fields[i];
	}
	t->fields[n++] = (struct sn_http_field){ SN_STR_LIT("upgrade"), SN_STR_LIT("websocket") };
	t->fields[n++] = (struct sn_http_field){ SN_STR_LIT("sec-websocket-key"), sn_str_make(t->key, WS_KEY_LEN) };
	if (!version)
		t->fields[n++] = (struct sn_http_field){ SN_STR_LIT("sec-websocket-version"), SN_STR_LIT("13") };
	/* GET for routing and upstream; :protocol says it is an upgrade. */
	t->head = *h;
	t->head.method = SN_STR_LIT("GET");
	t->head.fields = t->fields;
	t->head.n_fields = n;
	t->head.content_length = -1;
	*out = &t->head;
	return t;
}

/* ---- the relay ----------------------------------------------------------------- */

static void up_close(struct sn_h2t *t)
{
	if (t->x.fd < 0)
		return;
	sn_io_stop(&t->w->loop, &t->io);
	sn_xprt_close(&t->x, !t->up_eof && !t->failed);
	sn_timer_stop(&t->w->loop, &t->timer);
}

/* The tunnel can't go on: the endpoint's connection closes now, the
 * stream is reset with code and goes (sn__h2t_free) when the codec says. */
static void tunnel_fail(struct sn_h2t *t, uint32_t code, const char *why)
{
	if (t->failed)
		return;
	t->failed = 1;
	sn_log(code == H2_CONNECT_ERROR ? SN_LOG_INFO : SN_LOG_DEBUG, "%s: %s (%llu bytes up, %llu down)", t->what,
	       why, (unsigned long long)t->rx, (unsigned long long)t->tx);
	up_close(t);
	if (t->s != NULL)
		sn__h2d_reset(t->s, code);
}

static void on_idle(struct sn_loop *loop, struct sn_timer *tm)
{
	struct sn_h2t *t = sn_container_of(tm, struct sn_h2t, timer);
	(void)loop;
	tunnel_fail(t, H2_CANCEL, "idle timeout");
}

/* Client -> endpoint: the stream's body while the socket takes it, then
 * the client's end as a FIN. 1 if anything moved, 0 if not, -1 on error. */
static int move_up(struct sn_h2t *t)
{
	struct sn_buf *b = sn__h2d_body(t->s);
	int moved = 0;

	while (sn_buf_len(b) > 0) {
		ssize_t n = sn_xprt_write(&t->x, sn_buf_data(b), sn_buf_len(b));
		if (n == SN_EAGAIN)
			return moved;   /* EPOLLOUT brings us back */
		if (n <= 0)
			return -1;
		sn_buf_consume(b, (size_t)n);
		t->rx += (uint64_t)n;
		sn__h2d_consumed(t->s, (size_t)n);   /* the client may send as much again */
		moved = 1;
	}
	/* Drained: a pool-sized buffer goes back (an idle tunnel holds none
	 * this way); one that grew under a slow endpoint is kept -- within
	 * the window's bound -- rather than freed and grown again for every
	 * batch of DATA. */
	if (b->cap <= t->w->pool.size)
		sn_buf_release(&t->w->pool, b);
	if (!t->up_shut && sn__h2d_body_state(t->s) == 1) {
		/* TLS may have to wait to send close_notify: again on the next event. */
		if (sn_xprt_shutdown(&t->x) != SN_EAGAIN) {
			t->up_shut = 1;
			moved = 1;
		}
	}
	return moved;
}

/* Endpoint -> client: the read buffer into the stream's queue; the socket
 * is read only when the queue took all of it. 1 if anything moved, 0 if
 * not, -1 on the endpoint's error, -2 when the stream is gone. */
static int move_down(struct sn_h2t *t)
{
	int moved = 0;

	while (!t->out_ended) {
		if (t->u2d_len > 0) {
			ssize_t n = sn__h2d_write(t->s, t->u2d + t->u2d_off, t->u2d_len);
			if (n < 0)
				return -2;
			if (n == 0)
				return moved;   /* the queue is full: on_writable brings us back */
			t->u2d_off += (size_t)n;
			t->u2d_len -= (size_t)n;
			t->tx += (uint64_t)n;
			moved = 1;
			continue;
		}
		t->u2d_off = 0;
		if (t->up_eof) {
			/* A client that ended too closes the stream with our
			 * END_STREAM, and the stream's buffer with it: its last
			 * bytes go to the endpoint first. */
			if (sn__h2d_body_state(t->s) == 1 && !t->up_shut)
				return moved;
			if (sn__h2d_end(t->s, NULL, 0) != 0)
				return -2;
			t->out_ended = 1;
			return 1;
		}
		ssize_t n = sn_xprt_read(&t->x, t->u2d, t->u2d_cap);
		if (n > 0) {
			t->u2d_len = (size_t)n;
			moved = 1;
		} else if (n == SN_ECLOSED) {
			t->up_eof = 1;
			moved = 1;
		} else if (n == SN_EAGAIN) {
			return moved;
		} else {
			return -1;
		}
	}
	return moved;
}

/* Both directions until nothing moves (edge-triggered: a side is left
 * only at EAGAIN or when the other side has no room). */
static void pump(struct sn_h2t *t)
{
	int moved = 0;

	if (!t->active || t->failed || t->s == NULL || t->x.fd < 0)
		return;
	for (;;) {
		int a = move_up(t);
		int b = a < 0 ? 0 : move_down(t);
		if (a < 0 || b == -1) {
			const char *e = sn_xprt_error(&t->x);
			tunnel_fail(t, H2_CONNECT_ERROR, e[0] ? e : "the endpoint's connection failed");
			return;
		}
		if (b == -2) {
			up_close(t);   /* the stream is closing: sn__h2t_free follows */
			return;
		}
		if (!a && !b)
			break;
		moved = 1;
	}
	if (moved)
		sn_timer_start(&t->w->loop, &t->timer, TUNNEL_IDLE_MS, on_idle);
}

static void on_io(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct sn_h2t *t = sn_container_of(io, struct sn_h2t, io);
	(void)loop;
	(void)events;   /* TLS may read on writability and write on readability: both ways, always */
	pump(t);
}

/* Fields of the 101 that have no place in the 200: the accept answered
 * our key, not the client's, and a tunnel's 2xx has no length. The rest
 * (sec-websocket-protocol, -extensions, cookies...) go to the client; the
 * connection-specific ones are dropped by the head builder. */
static void strip_101(struct sn_h1_response *rs)
{
	size_t n = 0;
	for (size_t i = 0; i < rs->num_headers; i++) {
		struct sn_str name = rs->headers[i].name;
		if (sn_str_ieq_cstr(name, "sec-websocket-accept") || sn_str_ieq_cstr(name, "content-length"))
			continue;
		rs->headers[n++] = rs->headers[i];
	}
	rs->num_headers = n;
}

const char *sn__h2t_open(struct sn_exchange *ex)
{
	struct sn_worker *w = ex->w;
	struct sn_uconn *u = ex->u;
	struct sn_h2t *t = ex->s != NULL ? sn__h2d_tunnel(ex->s) : NULL;
	char want[WS_ACCEPT_LEN + 4];
	struct sn_str got;

	if (t == NULL || u == NULL || u->h2 != NULL || t->active)
		return "the endpoint switched protocols for a stream that asked for no WebSocket";
	if (ws_accept(t->key, want) != 0)
		return "cannot compute the WebSocket accept key";
	if (!sn__field(ex->resp.headers, ex->resp.num_headers, "sec-websocket-accept", &got) ||
	    !sn_str_eq_cstr(got, want))
		return "the endpoint's 101 has no Sec-WebSocket-Accept matching the key sent: not a WebSocket server";
	size_t early = sn_buf_len(&u->in);   /* the endpoint's first frames, behind its 101 */
	t->u2d_cap = SN_MAX(early, (size_t)RELAY_BUF);
	t->u2d = malloc(t->u2d_cap);
	if (t->u2d == NULL)
		return "out of memory for the tunnel";
	strip_101(&ex->resp);
	ex->resp.status = 200;
	ex->resp.body = SN_H1_BODY_UNTIL_CLOSE;   /* not the end of the stream */
	if (sn__ex_build_downstream_head(ex) != 0) {
		free(t->u2d);
		t->u2d = NULL;
		return "cannot answer the client's stream";
	}
	ex->status = 200;
	ex->resp_head_sent = 1;
	ex->resp_classified_done = 1;
	memcpy(t->u2d, sn_buf_data(&u->in), early);
	t->u2d_len = early;
	snprintf(t->what, sizeof(t->what), "conn=%llu %s stream %d websocket %.*s -> %s",
		 (unsigned long long)ex->c->id, ex->c->peer, (int)sn__h2d_stream_id(ex->s),
		 (int)SN_MIN(ex->req.path.len, 200), ex->req.path.p,
		 ex->ep && ex->ep->address ? ex->ep->address : "?");
	ex->u = NULL;
	sn_uconn_detach(w, u, &t->x);
	sn_uconn_destroy(w, u);
	t->active = 1;
	sn_metrics_add(w->metrics, SN_CTR_TUNNEL_CX, 1);
	sn_log(SN_LOG_DEBUG, "%s: tunnel open", t->what);
	if (sn_io_start(&w->loop, &t->io, t->x.fd, on_io) != 0) {
		tunnel_fail(t, H2_CONNECT_ERROR, "cannot watch the endpoint's connection");
		return NULL;   /* the 200 is out: the reset tells the client */
	}
	sn_timer_start(&w->loop, &t->timer, TUNNEL_IDLE_MS, on_idle);
	/* The first bytes either way (the endpoint's behind its 101, and what
	 * TLS may hold; the client's early DATA) move when the stream runs
	 * next (sn__h2d_ex_done queues it). */
	return NULL;
}

int sn__h2t_active(const struct sn_h2t *t)
{
	return t != NULL && t->active;
}

void sn__h2t_on_stream(struct sn_h2t *t)
{
	pump(t);
}

static void reclaim_tunnel(struct sn_loop *loop, struct sn_task *task)
{
	struct sn_h2t *t = sn_container_of(task, struct sn_h2t, reclaim);
	(void)loop;
	free(t->u2d);
	free(t);
}

void sn__h2t_free(struct sn_h2t *t)
{
	if (t == NULL)
		return;
	if (t->active && !t->failed)
		sn_log(SN_LOG_DEBUG, "%s: closed (%llu bytes up, %llu down)", t->what, (unsigned long long)t->rx,
		       (unsigned long long)t->tx);
	t->s = NULL;
	up_close(t);
	sn_timer_stop(&t->w->loop, &t->timer);
	free(t->fields);
	t->fields = NULL;
	/* Its io may still be in this iteration's epoll batch: freed after. */
	sn_loop_reclaim(&t->w->loop, &t->reclaim, reclaim_tunnel);
}
