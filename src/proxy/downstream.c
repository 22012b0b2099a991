/* The client's side of the request path: one HTTP/1.1 connection, as
 * accepted on the outbound or inbound listener. It reads through its
 * transport (plain, or mutual TLS told apart by the first byte on the
 * inbound side), parses request heads with the strict parser, hands each
 * complete head to an exchange (exchange.c) and closes politely.
 *
 * One exchange at a time per connection: a pipelined request waits in the
 * connection's input buffer until the response before it is complete
 * ("safe pipelining"). An idle keep-alive connection holds no buffer. */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sinew/log.h"
#include "exchange.h"

#define LINGER_MS 2000
#define LINGER_MAX_BYTES (64u << 20)

static void on_dconn_timer(struct sn_loop *loop, struct sn_timer *t);

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

/* ---- I/O ----------------------------------------------------------------- */

ssize_t sn__dconn_read(struct sn_dconn *c)
{
	unsigned clear;

	if (!c->can_read || c->eof)
		return c->eof ? -1 : 0;
	ssize_t n = sn_xprt_read_buf(&c->x, &c->w->pool, &c->in, sn__in_cap(c->w), c->hup, &clear);
	if (clear & SN_XPRT_WANT_READ)
		c->can_read = 0;
	if (clear & SN_XPRT_WANT_WRITE)
		c->can_write = 0;
	if (n < 0)
		c->eof = 1;
	return n;
}

ssize_t sn__dconn_write(struct sn_dconn *c, const char *extra, size_t extra_len)
{
	struct iovec iov[2];
	int n = 0;
	size_t head = sn_buf_len(&c->out);
	unsigned clear;

	if (!c->can_write)
		return 0;
	if (head)
		iov[n++] = (struct iovec){ sn_buf_data(&c->out), head };
	if (extra_len)
		iov[n++] = (struct iovec){ (void *)extra, extra_len };
	if (n == 0)
		return 0;
	ssize_t done = sn_xprt_send(&c->x, iov, n, &clear);
	if (clear & SN_XPRT_WANT_WRITE)
		c->can_write = 0;
	if (clear & SN_XPRT_WANT_READ)
		c->can_read = 0;
	if (done < 0)
		return -1;
	if ((size_t)done <= head) {
		sn_buf_consume(&c->out, (size_t)done);
		return 0;
	}
	sn_buf_consume(&c->out, head);
	if (sn_buf_len(&c->out) == 0)
		sn_buf_release(&c->w->pool, &c->out);
	return (ssize_t)((size_t)done - head);
}

/* ---- downstream connection lifecycle ------------------------------------ */

static void reclaim_dconn(struct sn_loop *loop, struct sn_task *t)
{
	struct sn_dconn *c = sn_container_of(t, struct sn_dconn, reclaim);
	struct sn_worker *w = c->w;
	free(c);
	sn_worker_conn_closed(w);
}

/* Frees the connection now. */
static void dconn_destroy(struct sn_dconn *c)
{
	struct sn_worker *w = c->w;

	sn_timer_stop(&w->loop, &c->timer);
	sn_io_stop(&w->loop, &c->io);
	c->peer_id = NULL;
	sn_xprt_close(&c->x, !c->handshaking && !c->eof && !c->lingering);
	sn_buf_release(&w->pool, &c->in);
	sn_buf_release(&w->pool, &c->out);
	*c->pprev = c->next;
	if (c->next != NULL)
		c->next->pprev = c->pprev;
	w->n_conns--;
	sn_metrics_add(w->metrics, SN_CTR_DOWNSTREAM_CX_ACTIVE, -1);
	sn_loop_reclaim(&w->loop, &c->reclaim, reclaim_dconn);
}

/* Reads and drops what the client still sends after we closed our side.
 * Returns 1 when the lingering is over. */
static int linger_drain(struct sn_dconn *c)
{
	char sink[4096];

	for (int i = 0; i < 64; i++) {
		ssize_t n = read(c->x.fd, sink, sizeof(sink));   /* raw: dropped unread, TLS or not */
		if (n > 0) {
			c->lingered += (size_t)n;
			if (c->lingered > LINGER_MAX_BYTES)
				return 1;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		return 1;  /* EOF or error */
	}
	return 0;
}

/* Closes the connection politely: after the last response, shut down our
 * side and keep reading (and dropping) for a moment, so that input the
 * client sent after it -- the rest of a body we refused -- does not make
 * the kernel answer with an RST that destroys the response in flight
 * (nginx's lingering close). */
static void close_common(struct sn_dconn *c, int linger);

/* Closes a connection with nothing in flight (idle, drained, or gone). */
void sn__dconn_close(struct sn_dconn *c)
{
	close_common(c, 0);
}

/* Closes after a response when the client may still be sending. */
void sn__dconn_close_linger(struct sn_dconn *c)
{
	close_common(c, 1);
}

static void close_common(struct sn_dconn *c, int linger)
{
	struct sn_worker *w = c->w;

	if (c->closing)
		return;
	c->closing = 1;
	if (c->ex != NULL)
		sn__ex_on_downstream_close(c->ex);   /* re-enters dconn_close, which returns at once */
	if (c->h2 != NULL)
		sn__h2d_close(c);                    /* ends every stream's exchange */
	sn_buf_release(&w->pool, &c->in);
	sn_buf_release(&w->pool, &c->out);
	/* Lingering starts with our end of the stream (TLS: close_notify,
	 * then FIN); if that can't go out now, close at once. */
	if (!linger || c->eof || c->handshaking || sn_xprt_shutdown(&c->x) != 0 || linger_drain(c)) {
		dconn_destroy(c);
		return;
	}
	c->lingering = 1;
	sn_timer_start(&w->loop, &c->timer, LINGER_MS, on_dconn_timer);
}

static void on_dconn_timer(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_dconn *c = sn_container_of(t, struct sn_dconn, timer);

	if (c->lingering) {
		dconn_destroy(c);
		return;
	}
	if (c->h2 != NULL) {
		sn__h2d_on_timer(c);
		return;
	}
	if (c->ex != NULL)
		return;
	if (c->header_timer && sn_buf_len(&c->in) > 0) {
		/* A slow client holding a half-sent head. */
		struct sn_exchange *ex = sn__ex_new(c);
		if (ex == NULL) {
			sn__dconn_close(c);
			return;
		}
		sn_metrics_add(c->w->metrics, SN_CTR_DOWNSTREAM_RQ_REJECTED, 1);
		sn__ex_refuse(ex, NULL, 408, "request_header_timeout");
		return;
	}
	sn__dconn_close(c);
}

static const char *error_flag(int status)
{
	switch (status) {
	case 414:
		return "uri_too_long";
	case 431:
		return "header_too_large";
	case 501:
		return "not_implemented";
	case 505:
		return "http_version_not_supported";
	case 417:
		return "expectation_failed";
	default:
		return "bad_request";
	}
}

/* Parses and starts the next request, if a complete head is buffered. */
void sn__dconn_process(struct sn_dconn *c)
{
	struct sn_worker *w = c->w;

	if (c->h2 != NULL) {
		if (!c->closing)
			sn__h2d_on_io(c, 0);
		return;
	}
	while (!c->closing && c->ex == NULL) {
		if (c->draining && sn_buf_len(&c->in) == 0) {
			sn__dconn_close(c);
			return;
		}
		int r = SN_H1_INCOMPLETE;
		struct sn_h1_request req;
		size_t len = sn_buf_len(&c->in);
		/* The parser starts over on each call; parse again only when a
		 * new line has arrived (or the head limit is reached), so a
		 * client trickling one byte at a time costs O(lines x size),
		 * not O(size^2). */
		int fresh_line = len > c->scanned &&
				 memchr(sn_buf_data(&c->in) + c->scanned, '\n', len - c->scanned) != NULL;
		/* HTTP/2 with prior knowledge: the connection's first bytes
		 * are the client preface (RFC 9113 3.3). */
		int h2 = !c->spoke_h1 && len > 0 &&
			 memcmp(sn_buf_data(&c->in), H2_PREFACE, SN_MIN(len, sizeof(H2_PREFACE) - 1)) == 0;
		if (h2 && len >= sizeof(H2_PREFACE) - 1) {
			sn__h2d_start(c);
			return;
		}
		if (len > 0 && !h2 && (fresh_line || len >= sn__limits(w)->max_head_bytes))
			r = sn_h1_parse_request(sn_buf_data(&c->in), sn_buf_len(&c->in), &req, w->scratch_hdrs,
						SN_MAX_HEADERS_ARRAY, sn__limits(w));
		if (r == SN_H1_INCOMPLETE) {
			c->scanned = len;
			ssize_t n = sn__dconn_read(c);
			if (n > 0)
				continue;
			if (n < 0) {
				sn__dconn_close(c);  /* EOF between or inside requests */
				return;
			}
			/* Wait: idle timeout between requests, header timeout
			 * from a request's first byte. */
			if (sn_buf_len(&c->in) == 0) {
				sn_buf_release(&w->pool, &c->in);
				if (c->header_timer || !sn_timer_is_linked(&c->timer)) {
					c->header_timer = 0;
					sn_timer_start(&w->loop, &c->timer, w->proxy->opt.idle_timeout_ms, on_dconn_timer);
				}
			} else if (!c->header_timer) {
				c->header_timer = 1;
				sn_timer_start(&w->loop, &c->timer, w->proxy->opt.request_header_timeout_ms,
					       on_dconn_timer);
			}
			return;
		}
		sn_timer_stop(&w->loop, &c->timer);
		c->header_timer = 0;
		c->scanned = 0;

		struct sn_exchange *ex = sn__ex_new(c);
		if (ex == NULL) {
			sn__dconn_close(c);
			return;
		}
		c->spoke_h1 = 1;
		if (r == SN_H1_ERROR) {
			sn_metrics_add(w->metrics, SN_CTR_DOWNSTREAM_RQ_REJECTED, 1);
			sn__ex_refuse(ex, &req, req.err_status ? req.err_status : 400, error_flag(req.err_status));
			return;
		}
		sn__ex_start(ex, (size_t)r, &req);
		return;
	}
}

/* Opaque TCP from a peer proxy is judged like a request, on what a TCP
 * connection offers (Istio's rule: HTTP-only conditions never match it):
 * fail closed before the first config, AuthorizationPolicy on principal,
 * namespace, source address and port; and never a relay to the proxy's own
 * ports (a peer dialling podIP:15001 must not borrow this workload's
 * outbound). Returns 1 to go on. */
static int tcp_allowed(struct sn_dconn *c, uint16_t port)
{
	struct sn_worker *w = c->w;
	const struct sn_snapshot *s = w->snap;
	static const uint16_t own[] = { 15000, 15001, 15006, 15020, 15021 };

	for (size_t i = 0; i < SN_ARRAY_LEN(own); i++) {
		if (port == own[i] || port == 0) {
			sn_log(SN_LOG_INFO, "conn=%llu tcp from %s: refused: port %u is the proxy's own",
			       (unsigned long long)c->id, c->peer, port);
			return 0;
		}
	}
	if (w->proxy->cp != NULL && !__atomic_load_n(&w->proxy->cp_synced, __ATOMIC_ACQUIRE))
		return 0;
	const struct sn_server *sv = sn__server_for_port(s, port);
	if (s == NULL || (s->n_authz == 0 && s->peer_auth.unenforceable == NULL && sv == NULL))
		return 1;
	struct sn_authz_request ar;
	struct sn_authz_result res;
	struct sn_addr peer;
	memset(&ar, 0, sizeof(ar));
	sn__authz_peer(&ar, c->peer, c->peer_id, &peer);
	ar.port = port;
	sn_authz_check(s, &ar, &res);
	const char *no = sv != NULL && res.decision == SN_AUTHZ_DECISION_ALLOW ? sn__server_refusal(sv, &ar) : NULL;
	if (no != NULL) {
		sn_metrics_add(w->metrics, SN_CTR_AUTHZ_DENY, 1);
		sn_log(SN_LOG_INFO, "conn=%llu tcp from %s to port %u: denied by Server %s: %s", (unsigned long long)c->id,
		       c->peer, port, sv->name, no);
		return 0;
	}
	if (res.decision == SN_AUTHZ_DECISION_ALLOW) {
		sn_metrics_add(w->metrics, SN_CTR_AUTHZ_ALLOW, 1);
		return 1;
	}
	sn_metrics_add(w->metrics, SN_CTR_AUTHZ_DENY, 1);
	sn_log(SN_LOG_INFO, "conn=%llu tcp from %s (%s) to port %u: denied by AuthorizationPolicy",
	       (unsigned long long)c->id, c->peer, c->peer_id ? c->peer_id : "no identity", port);
	return 0;
}

/* Inbound with mTLS configured (DESIGN.md §2): tells TLS from plaintext
 * by the first byte, then runs the server handshake. Returns 0 when the
 * connection is ready for HTTP/1.1, 1 to wait (or when it was closed). */
static int dconn_secure(struct sn_dconn *c)
{
	struct sn_worker *w = c->w;

	if (c->detecting) {
		unsigned char b;
		ssize_t n = recv(c->x.fd, &b, 1, MSG_PEEK);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			c->can_read = 0;
			return 1;
		}
		if (n <= 0) {
			sn__dconn_close(c);
			return 1;
		}
		c->detecting = 0;
		if (b != 0x16 && (b < 'A' || b > 'Z')) {
			/* Neither a TLS record nor an HTTP/1 method (an SSLv2
			 * hello starts 0x80): refused now, not after the header
			 * timeout. */
			sn_metrics_add(w->metrics, SN_CTR_DOWNSTREAM_RQ_REJECTED, 1);
			sn_log(SN_LOG_INFO, "conn=%llu from %s: refused: first byte 0x%02x is neither TLS nor HTTP/1",
			       (unsigned long long)c->id, c->peer, b);
			sn__dconn_close(c);
			return 1;
		}
		if (b != 0x16) {
			const struct sn_snapshot *s = w->snap;
			const struct sockaddr_storage *app = &w->proxy->opt.app.ss;
			uint16_t port = 0;
			if (app->ss_family == AF_INET)
				port = ntohs(((const struct sockaddr_in *)app)->sin_port);
			else if (app->ss_family == AF_INET6)
				port = ntohs(((const struct sockaddr_in6 *)app)->sin6_port);
			if (s != NULL && sn_peer_auth_mode(&s->peer_auth, port) == SN_MTLS_STRICT) {
				sn_metrics_add(w->metrics, SN_CTR_DOWNSTREAM_RQ_REJECTED, 1);
				sn_log(SN_LOG_INFO, "conn=%llu from %s: plaintext refused: PeerAuthentication STRICT for "
				       "port %u (%s)", (unsigned long long)c->id, c->peer, port,
				       s->peer_auth.origin ? s->peer_auth.origin : "default");
				sn__dconn_close(c);
				return 1;
			}
			return 0;
		}
		if (sn_xprt_tls(&c->x, __atomic_load_n(&w->proxy->tls_server, __ATOMIC_ACQUIRE), NULL) != 0) {
			sn__dconn_close(c);
			return 1;
		}
		c->handshaking = 1;
	}
	int r = sn_xprt_handshake(&c->x);
	if (r == SN_EAGAIN) {
		unsigned want = sn_xprt_want(&c->x);
		if (want & SN_XPRT_WANT_READ)
			c->can_read = 0;
		if (want & SN_XPRT_WANT_WRITE)
			c->can_write = 0;
		return 1;
	}
	if (r != 0) {
		sn_log(SN_LOG_INFO, "conn=%llu %s %s", (unsigned long long)c->id, c->gw_port ? "gateway" : "inbound",
		       sn_xprt_error(&c->x));
		c->eof = 1;  /* no close_notify on a failed stream */
		sn__dconn_close(c);
		return 1;
	}
	c->handshaking = 0;
	const struct sn_gw_listener *gl = c->gw_port ? sn_snapshot_find_gw_listener(w->snap, c->gw_port) : NULL;
	if (gl != NULL && gl->tcp) {
		/* TLS terminated at a TCP port: the bytes go where its tcp
		 * route says (Istio's TLS server with SIMPLE or MUTUAL, or
		 * ISTIO_MUTUAL for the mesh's opaque TCP) */
		char who[160];
		snprintf(who, sizeof(who), "%s (TLS)", c->peer);
		const struct sn_cluster *cl = sn_gw_tcp_pick(w, gl, who);
		if (cl == NULL) {
			sn__dconn_close(c);
			return 1;
		}
		char from[200];
		snprintf(from, sizeof(from), "gateway port %u %s", gl->port, who);
		struct sn_xprt x = c->x;   /* handed to the relay */
		sn_io_stop(&w->loop, &c->io);
		sn_xprt_init(&c->x, -1);
		sn__dconn_close(c);
		sn_tcp_xprt_to_cluster(w, &x, cl, from);
		return 1;
	}
	if (c->gw_port != 0 && c->gw_mesh) {
		/* ISTIO_MUTUAL: a mesh client (its SPIFFE identity checked in
		 * the handshake) speaking HTTP; opaque TCP has no route here */
		c->peer_id = sn_xprt_peer_id(&c->x);
		if (sn_str_eq_cstr(sn_xprt_alpn(&c->x), SN_TLS_ALPN_TCP)) {
			sn_log(SN_LOG_INFO, "conn=%llu gateway port %u: %s asked for opaque TCP (%s), which a gateway's "
			       "ISTIO_MUTUAL port does not take; closing", (unsigned long long)c->id, c->gw_port, c->peer,
			       c->peer_id ? c->peer_id : "?");
			sn__dconn_close(c);
			return 1;
		}
	}
	if (c->gw_port != 0) {
		/* a gateway's client: no mesh protocols (ALPN h2 or none: the
		 * preface tells HTTP/2, as in plain text) */
		c->can_read = 1;   /* OpenSSL may already hold the first request */
		c->can_write = 1;
		return 0;
	}
	c->peer_id = sn_xprt_peer_id(&c->x);
	struct sn_str alpn = sn_xprt_alpn(&c->x);
	if (sn_str_eq_cstr(alpn, SN_TLS_ALPN_TCP)) {
		/* Opaque TCP from a peer proxy (tcp.c): the app's port is the
		 * original destination's (capture), else --app's. */
		struct sockaddr_in orig;
		socklen_t ol = sizeof(orig);
		const struct sockaddr_storage *app = &w->proxy->opt.app.ss;
		uint16_t port = app->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)app)->sin_port) : 0;
		if (getsockopt(c->x.fd, SOL_IP, 80 /* SO_ORIGINAL_DST */, &orig, &ol) == 0 && orig.sin_family == AF_INET &&
		    ntohs(orig.sin_port) != 0 && w->proxy->opt.have_capture_probe)
			port = ntohs(orig.sin_port);
		char peer_id[SN_SPIFFE_ID_MAX + 1];
		snprintf(peer_id, sizeof(peer_id), "%s", c->peer_id ? c->peer_id : "?");
		if (!tcp_allowed(c, port)) {
			sn__dconn_close(c);
			return 1;
		}
		struct sn_xprt x = c->x;   /* handed to the relay */
		sn_io_stop(&w->loop, &c->io);
		sn_xprt_init(&c->x, -1);
		c->peer_id = NULL;
		sn__dconn_close(c);
		sn_tcp_inbound(w, &x, peer_id, port);
		return 1;
	}
	/* The peer proxy speaks HTTP/2 to us because the app does (its
	 * Service port says so): the request goes on to the app in HTTP/2. */
	c->mesh_h2 = sn_str_eq_cstr(alpn, SN_TLS_ALPN_H2);
	c->can_read = 1;   /* OpenSSL may already hold the first request */
	c->can_write = 1;
	sn_log(SN_LOG_DEBUG, "conn=%llu mTLS from %s (%s)", (unsigned long long)c->id, c->peer,
	       c->peer_id ? c->peer_id : "no certificate");
	return 0;
}

static void on_dconn_io(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct sn_dconn *c = sn_container_of(io, struct sn_dconn, io);

	if (events & SN_IO_WRITE)
		c->can_write = 1;
	if (events & SN_IO_READ)
		c->can_read = 1;
	if (events & SN_IO_HUP)
		c->hup = 1;
	if (sn_xprt_has(&c->x, SN_XPRT_CROSSED_READINESS) && (events & (SN_IO_READ | SN_IO_WRITE))) {
		/* A TLS read may wait for writability and a write for
		 * readability: any readiness retries both. */
		c->can_read = 1;
		c->can_write = 1;
	}
	if (c->lingering) {
		if (linger_drain(c))
			dconn_destroy(c);
		return;
	}
	if ((c->detecting || c->handshaking) && dconn_secure(c) != 0)
		return;
	if (c->h2 != NULL) {
		sn__h2d_on_io(c, events);
		return;
	}
	if (c->ex != NULL) {
		sn__ex_on_downstream(c->ex, events);
		return;
	}
	sn__dconn_process(c);
}

void sn_dconn_accept(struct sn_worker *w, int fd, enum sn_direction dir, uint16_t gw_port,
		     const struct sockaddr *peer, socklen_t peer_len)
{
	struct sn_dconn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (c == NULL) {
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	sn_xprt_init(&c->x, fd);
	c->w = w;
	c->dir = dir;
	c->gw_port = gw_port;
	c->id = ++w->next_conn_id;
	sn_addr_format(peer, c->peer, sizeof(c->peer));
	c->next = w->conns;
	if (c->next != NULL)
		c->next->pprev = &c->next;
	w->conns = c;
	c->pprev = &w->conns;
	w->n_conns++;
	sn_metrics_add(w->metrics, SN_CTR_DOWNSTREAM_CX_TOTAL, 1);
	sn_metrics_add(w->metrics, SN_CTR_DOWNSTREAM_CX_ACTIVE, 1);
	if (sn_io_start(&w->loop, &c->io, fd, on_dconn_io) != 0) {
		sn__dconn_close(c);
		return;
	}
	c->can_read = 1;
	c->can_write = 1;
	if (dir == SN_DIR_INBOUND && w->proxy->opt.have_capture_probe) {
		/* Captured: the app's port is the one the client dialled. */
		struct sockaddr_in orig;
		socklen_t ol = sizeof(orig);
		if (getsockopt(fd, SOL_IP, 80 /* SO_ORIGINAL_DST */, &orig, &ol) == 0 && orig.sin_family == AF_INET)
			c->app_port = ntohs(orig.sin_port);
	}
	if (gw_port != 0) {
		/* an HTTPS gateway port: the client's TLS, then HTTP/1.1 or
		 * HTTP/2 as ALPN says (the preface tells, as in plain text) */
		const struct sn_gw_listener *gl = sn_snapshot_find_gw_listener(w->snap, gw_port);
		if (gl != NULL && gl->tls) {
			/* ISTIO_MUTUAL: the mesh's server context (the proxy's SVID) */
			struct sn_tls_ctx *ctx = sn_gw_listener_tls(w->proxy, gl);
			if (ctx == NULL && gl->tls == 3)
				sn_log(SN_LOG_INFO, "conn=%llu from %s: gateway port %u (ISTIO_MUTUAL): refused: this proxy "
				       "has no mesh certificate yet", (unsigned long long)c->id, c->peer, gw_port);
			if (ctx == NULL || sn_xprt_tls(&c->x, ctx, NULL) != 0) {
				sn__dconn_close(c);
				return;
			}
			c->handshaking = 1;
			c->gw_tls = 1;
			c->gw_mesh = gl->tls == 3;
			c->header_timer = 1;
			sn_timer_start(&w->loop, &c->timer, w->proxy->opt.request_header_timeout_ms, on_dconn_timer);
			return;
		}
	}
	if (dir == SN_DIR_INBOUND && w->proxy->opt.token != NULL &&
	    __atomic_load_n(&w->proxy->tls_server, __ATOMIC_ACQUIRE) == NULL) {
		/* Fail closed: no certificate from sinewd yet. */
		sn_log(SN_LOG_INFO, "conn=%llu from %s: refused: this proxy has no certificate yet",
		       (unsigned long long)c->id, c->peer);
		sn__dconn_close(c);
		return;
	}
	if (dir == SN_DIR_INBOUND && __atomic_load_n(&w->proxy->tls_server, __ATOMIC_ACQUIRE) != NULL) {
		/* Bounded wait for the first byte and the handshake. */
		c->detecting = 1;
		c->header_timer = 1;
		sn_timer_start(&w->loop, &c->timer, w->proxy->opt.request_header_timeout_ms, on_dconn_timer);
		return;
	}
	sn_timer_start(&w->loop, &c->timer, w->proxy->opt.idle_timeout_ms, on_dconn_timer);
}

void sn__dconn_idle_timer(struct sn_dconn *c, int on)
{
	struct sn_worker *w = c->w;

	if (!on)
		sn_timer_stop(&w->loop, &c->timer);
	else if (!sn_timer_is_linked(&c->timer))
		sn_timer_start(&w->loop, &c->timer, w->proxy->opt.idle_timeout_ms, on_dconn_timer);
}

void sn_dconn_drain(struct sn_dconn *c)
{
	c->draining = 1;
	if (c->h2 != NULL) {
		sn__h2d_drain(c);
		return;
	}
	if (c->ex == NULL && sn_buf_len(&c->in) == 0)
		sn__dconn_close(c);
}

void sn_dconn_abort(struct sn_dconn *c)
{
	if (!c->closing)
		sn__dconn_close(c);
	if (c->lingering) {
		c->lingering = 0;
		dconn_destroy(c);
	}
}
