/* The control link's transport: one HTTP/2 stream of NDJSON messages over
 * nghttp2, driven by our loop with nghttp2's memory I/O (mem_recv and
 * mem_send), so the socket stays ours (non-blocking, edge-triggered).
 *
 * Outgoing messages go to a bounded queue that the stream's data provider
 * drains; when the queue is empty the provider defers and sn_xds_send
 * resumes it. Incoming DATA is split into lines, each bounded. Nothing is
 * freed inside an nghttp2 callback: close marks the link and a deferred
 * task runs on_close and frees it afterwards. */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/ioctl.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "sinew/log.h"
#include "sinew/tls_stream.h"
#include "sinew/xds.h"

#define WINDOW (4u << 20)
#define LINE_KEEP (16u << 10)   /* an incoming line buffer larger is freed after its message */

struct bytes {
	char *p;
	size_t off, len, cap;
};

struct sn_xds_conn {
	struct sn_loop *loop;
	struct sn_io io;
	int fd;
	int server;
	nghttp2_session *h2;
	int32_t stream_id;
	const struct sn_xds_ops *ops;
	void *arg;
	char authority[128];
	char peer[64];
	struct bytes out;      /* produced by nghttp2, not yet written */
	struct bytes q;        /* queued messages for our stream */
	struct bytes line;     /* incoming partial line */
	int connected;
	int opened;
	int deferred;          /* the data provider is waiting for messages */
	int status;            /* client: response :status */
	int path_ok;           /* server: request :path matched */
	int closing;
	const char *why;
	/* TLS (docs/internals/control-protocol.md, "Security"): a server
	 * that may also take plaintext looks at the first byte. */
	struct sn_tls_ctx *tls_ctx;
	struct sn_xprt x;      /* the socket: plain until TLS is set up on it */
	char *expected_id;
	int detecting;         /* server: TLS or plaintext not known yet */
	int allow_plaintext;
	int tls_done;          /* handshake complete (or plaintext) */
	int secure;            /* the link is TLS (kept after close, for on_close) */
	uint64_t pongs;        /* PINGs of ours the peer answered (sn_xds_pings_answered) */
	char why_buf[320];
	struct sn_task close_task;
	struct sn_task reclaim_task;
};

static int bytes_reserve(struct bytes *b, size_t want, size_t max)
{
	if (b->off > 0 && b->off == b->len) {
		b->off = b->len = 0;
	}
	if (b->cap - b->len >= want)
		return 0;
	if (b->off > 0) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->cap - b->len >= want)
			return 0;
	}
	size_t need = b->len + want;
	if (need > max)
		return SN_ELIMIT;
	size_t ncap = b->cap ? b->cap : 4096;
	while (ncap < need)
		ncap *= 2;
	char *n = realloc(b->p, ncap);
	if (n == NULL)
		return SN_ENOMEM;
	b->p = n;
	b->cap = ncap;
	return 0;
}

static void bytes_free(struct bytes *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void *sn_xds_arg(const struct sn_xds_conn *c)
{
	return c->arg;
}

const char *sn_xds_peer(const struct sn_xds_conn *c)
{
	return c->peer;
}

size_t sn_xds_queued(const struct sn_xds_conn *c)
{
	return (c->q.len - c->q.off) + (c->out.len - c->out.off);
}

static void reclaim_conn(struct sn_loop *loop, struct sn_task *t)
{
	struct sn_xds_conn *c = sn_container_of(t, struct sn_xds_conn, reclaim_task);
	if (c->h2 != NULL)
		nghttp2_session_del(c->h2);
	free(c->expected_id);
	bytes_free(&c->out);
	bytes_free(&c->q);
	bytes_free(&c->line);
	free(c);
}

static void run_close(struct sn_loop *loop, struct sn_task *t)
{
	struct sn_xds_conn *c = sn_container_of(t, struct sn_xds_conn, close_task);
	if (c->ops->on_close != NULL)
		c->ops->on_close(c, c->why);
	sn_loop_reclaim(loop, &c->reclaim_task, reclaim_conn);
}

void sn_xds_close(struct sn_xds_conn *c, const char *why)
{
	if (c->closing)
		return;
	c->closing = 1;
	c->why = why;
	sn_io_stop(c->loop, &c->io);
	sn_xprt_close(&c->x, c->tls_done);   /* TLS: close_notify, best effort */
	sn_loop_defer(c->loop, &c->close_task, run_close);
}

/* Closes with the transport's sentence (TLS names the peer and why), or
 * plain when it has none. */
static void xprt_failed(struct sn_xds_conn *c, const char *plain)
{
	const char *e = sn_xprt_error(&c->x);
	snprintf(c->why_buf, sizeof(c->why_buf), "%s", e[0] ? e : sn_xprt_has(&c->x, SN_XPRT_SECURE) ? "TLS failed" : plain);
	sn_xds_close(c, c->why_buf);
}

/* Server: TLS or plaintext, from the first byte (a TLS record starts with
 * 0x16, an HTTP/2 preface with 'P'). Returns 1 decided, 0 wait, -1 closed. */
static int detect(struct sn_xds_conn *c)
{
	unsigned char b;
	ssize_t n = recv(c->x.fd, &b, 1, MSG_PEEK);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	if (n <= 0) {
		sn_xds_close(c, n == 0 ? "peer closed the connection" : "read failed");
		return -1;
	}
	c->detecting = 0;
	if (b == 0x16) {
		if (sn_xprt_tls(&c->x, c->tls_ctx, NULL) != 0) {
			sn_xds_close(c, "out of memory");
			return -1;
		}
		c->secure = 1;
		return 1;
	}
	if (!c->allow_plaintext) {
		sn_xds_close(c, "plaintext refused: the mesh port takes mutual TLS only (sinewd --mesh-plaintext "
				"allows plaintext proxies)");
		return -1;
	}
	c->tls_done = 1;
	return 1;
}

/* Runs the handshake. Returns 1 done, 0 wait, -1 closed. */
static int handshake(struct sn_xds_conn *c)
{
	int r = sn_xprt_handshake(&c->x);
	if (r == SN_EAGAIN)
		return 0;
	if (r < 0) {
		xprt_failed(c, "TLS failed");
		return -1;
	}
	c->tls_done = 1;
	if (c->ops->on_secure != NULL && c->ops->on_secure(c) != 0) {
		if (!c->closing)
			sn_xds_close(c, "refused after the TLS handshake");
		return -1;
	}
	return 1;
}

/* Hands nghttp2's output to the socket. Returns 0 or -1 (closed). */
static int flush(struct sn_xds_conn *c)
{
	if (c->closing || !c->connected || !c->tls_done)
		return c->closing ? -1 : 0;
	for (;;) {
		while (c->out.off < c->out.len) {
			/* A retry offers the same bytes again (tls.md). */
			ssize_t n = sn_xprt_write(&c->x, c->out.p + c->out.off, c->out.len - c->out.off);
			if (n == SN_EAGAIN)
				return 0;
			if (n < 0) {
				xprt_failed(c, "write failed");
				return -1;
			}
			c->out.off += (size_t)n;
		}
		c->out.off = c->out.len = 0;
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(c->h2, &data);
		if (n < 0) {
			sn_xds_close(c, "http/2 send error");
			return -1;
		}
		if (n == 0) {
			/* all written: an idle link keeps no buffer (sinewd holds
			 * thousands of links, idle most of the time) */
			bytes_free(&c->out);
			break;
		}
		if (bytes_reserve(&c->out, (size_t)n, SN_XDS_MAX_QUEUE) != 0) {
			sn_xds_close(c, "out of memory");
			return -1;
		}
		memcpy(c->out.p + c->out.len, data, (size_t)n);
		c->out.len += (size_t)n;
	}
	if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2)) {
		sn_xds_close(c, "http/2 session ended");
		return -1;
	}
	return 0;
}

int sn_xds_send(struct sn_xds_conn *c, const char *msg, size_t len)
{
	if (c->closing)
		return SN_ECLOSED;
	if (len > SN_XDS_MAX_MESSAGE || memchr(msg, '\n', len) != NULL)
		return SN_EINVAL;
	if (sn_xds_queued(c) + len + 1 > SN_XDS_MAX_QUEUE)
		return SN_ELIMIT;
	if (bytes_reserve(&c->q, len + 1, SN_XDS_MAX_QUEUE) != 0)
		return SN_ELIMIT;
	memcpy(c->q.p + c->q.len, msg, len);
	c->q.p[c->q.len + len] = '\n';
	c->q.len += len + 1;
	if (c->deferred && c->stream_id > 0) {
		c->deferred = 0;
		nghttp2_session_resume_data(c->h2, c->stream_id);
	}
	flush(c);
	return 0;
}

static ssize_t read_queue(nghttp2_session *s, int32_t stream_id, uint8_t *buf, size_t length,
			  uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct sn_xds_conn *c = user;
	size_t avail = c->q.len - c->q.off;

	if (avail == 0) {
		c->deferred = 1;
		return NGHTTP2_ERR_DEFERRED;
	}
	size_t n = SN_MIN(avail, length);
	memcpy(buf, c->q.p + c->q.off, n);
	c->q.off += n;
	if (c->q.off == c->q.len)
		bytes_free(&c->q);   /* drained: idle links keep no queue */
	return (ssize_t)n;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t stream_id, const uint8_t *data,
			 size_t len, void *user)
{
	struct sn_xds_conn *c = user;

	if (stream_id != c->stream_id || c->closing)
		return 0;
	while (len > 0 && !c->closing) {
		const uint8_t *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;
		if (c->line.len + take > SN_XDS_MAX_MESSAGE) {
			sn_xds_close(c, "message over the 8 MiB limit");
			return 0;
		}
		if (nl != NULL && c->line.len == 0) {
			/* Whole line in this chunk: no copy. */
			c->ops->on_message(c, (const char *)data, take);
		} else {
			if (bytes_reserve(&c->line, take, SN_XDS_MAX_MESSAGE) != 0) {
				sn_xds_close(c, "out of memory");
				return 0;
			}
			memcpy(c->line.p + c->line.len, data, take);
			c->line.len += take;
			if (nl != NULL) {
				c->ops->on_message(c, c->line.p, c->line.len);
				c->line.len = 0;
				/* A large line (a stats or spans message every few
				 * seconds) does not keep its buffer: a thousand idle
				 * links would hold a thousand of them. */
				if (c->line.cap > LINE_KEEP)
					bytes_free(&c->line);
			}
		}
		if (nl == NULL)
			break;
		data += take + 1;
		len -= take + 1;
	}
	/* We consume at once: give the window back. */
	return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
		     const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
	struct sn_xds_conn *c = user;

	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	if (c->server) {
		if (namelen == 5 && memcmp(name, ":path", 5) == 0 && valuelen == strlen(SN_XDS_PATH) &&
		    memcmp(value, SN_XDS_PATH, valuelen) == 0)
			c->path_ok = 1;
	} else if (namelen == 7 && memcmp(name, ":status", 7) == 0 && valuelen == 3) {
		c->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
	}
	return 0;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
	struct sn_xds_conn *c = user;
	if (c->server && frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
	    c->stream_id == 0)
		c->stream_id = frame->hd.stream_id;
	return 0;
}

static void submit_response(struct sn_xds_conn *c)
{
	nghttp2_data_provider prd;
	const nghttp2_nv hdrs[] = {
		{ (uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"content-type", (uint8_t *)"application/x-ndjson", 12, 20, NGHTTP2_NV_FLAG_NONE },
	};
	prd.source.ptr = c;
	prd.read_callback = read_queue;
	nghttp2_submit_response(c->h2, c->stream_id, hdrs, SN_ARRAY_LEN(hdrs), &prd);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
	struct sn_xds_conn *c = user;

	if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK))
		c->pongs++;
	if (frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != c->stream_id || c->opened)
		return 0;
	if (c->server) {
		if (!c->path_ok) {
			const nghttp2_nv h404[] = { { (uint8_t *)":status", (uint8_t *)"404", 7, 3, NGHTTP2_NV_FLAG_NONE } };
			nghttp2_submit_response(c->h2, c->stream_id, h404, 1, NULL);
			c->stream_id = 0;
			return 0;
		}
		submit_response(c);
	} else if (c->status != 200) {
		sn_log(SN_LOG_WARN, "control link %s: stream answered with status %d", c->peer, c->status);
		sn_xds_close(c, "control plane refused the stream");
		return 0;
	}
	c->opened = 1;
	if (c->ops->on_open != NULL)
		c->ops->on_open(c);
	return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id, uint32_t error_code, void *user)
{
	struct sn_xds_conn *c = user;
	if (stream_id == c->stream_id)
		sn_xds_close(c, error_code ? "stream reset" : "stream ended");
	return 0;
}

static void on_io(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct sn_xds_conn *c = sn_container_of(io, struct sn_xds_conn, io);
	uint8_t buf[16384];

	if (c->closing)
		return;
	if (!c->connected) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (!(events & (SN_IO_WRITE | SN_IO_HUP)))
			return;
		if (getsockopt(c->x.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
			/* the errno says which: refused, unreachable, timed out */
			snprintf(c->why_buf, sizeof(c->why_buf), "connect failed: %s",
				 err != 0 ? strerror(err) : "cannot read the socket's error");
			sn_xds_close(c, c->why_buf);
			return;
		}
		c->connected = 1;
		if (c->tls_ctx != NULL) {
			if (sn_xprt_tls(&c->x, c->tls_ctx, &(struct sn_tls_conn_opts){
				    .expected_ids = c->expected_id ? (const char *const *)&c->expected_id : NULL,
				    .n_expected = c->expected_id ? 1 : 0 }) != 0) {
				sn_xds_close(c, "cannot set up TLS (out of memory or a bad expected ID)");
				return;
			}
			c->secure = 1;
		}
	}
	if (c->detecting && detect(c) <= 0)
		return;
	if (!c->tls_done) {
		if (handshake(c) <= 0)
			return;
	}
	/* TLS may hold decrypted bytes whatever the event said; a plain
	 * socket is read on readiness only. Until SN_EAGAIN (edge-triggered). */
	if (sn_xprt_has(&c->x, SN_XPRT_CROSSED_READINESS) || (events & (SN_IO_READ | SN_IO_HUP))) {
		for (;;) {
			ssize_t n = sn_xprt_read(&c->x, buf, sizeof(buf));
			if (n > 0) {
				ssize_t r = nghttp2_session_mem_recv(c->h2, buf, (size_t)n);
				if (r < 0) {
					sn_xds_close(c, "http/2 protocol error");
					return;
				}
				if (c->closing)
					return;
				continue;
			}
			if (n == SN_EAGAIN)
				break;
			if (n == SN_ECLOSED) {
				sn_xds_close(c, "peer closed the connection");
				return;
			}
			xprt_failed(c, "read failed");
			return;
		}
	}
	flush(c);
}

static struct sn_xds_conn *conn_new(struct sn_loop *loop, int fd, int server, const struct sn_xds_tls *tls,
				    const struct sn_xds_ops *ops, void *arg)
{
	nghttp2_session_callbacks *cbs;
	struct sn_xds_conn *c = calloc(1, sizeof(*c));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int one = 1;

	if (c == NULL) {
		close(fd);
		return NULL;
	}
	c->loop = loop;
	sn_xprt_init(&c->x, fd);
	c->server = server;
	c->ops = ops;
	c->arg = arg;
	c->tls_done = 1;
	if (tls != NULL && tls->ctx != NULL) {
		c->tls_ctx = tls->ctx;
		c->tls_done = 0;
		c->detecting = server;
		c->allow_plaintext = tls->allow_plaintext;
		if (tls->expected_id != NULL && (c->expected_id = strdup(tls->expected_id)) == NULL) {
			close(fd);
			free(c);
			return NULL;
		}
	}
	snprintf(c->peer, sizeof(c->peer), "?");
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		char ip[INET_ADDRSTRLEN];
		if (ss.ss_family == AF_INET) {
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
			snprintf(c->peer, sizeof(c->peer), "%s:%u", ip, ntohs(((struct sockaddr_in *)&ss)->sin_port));
		}
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (nghttp2_session_callbacks_new(&cbs) != 0)
		goto fail;
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	int r = server ? nghttp2_session_server_new(&c->h2, cbs, c) : nghttp2_session_client_new(&c->h2, cbs, c);
	nghttp2_session_callbacks_del(cbs);
	if (r != 0)
		goto fail;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 4 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, WINDOW },
	};
	nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, SN_ARRAY_LEN(iv));
	nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, (int32_t)WINDOW * 2);
	if (sn_io_start(loop, &c->io, fd, on_io) != 0)
		goto fail;
	return c;

fail:
	if (c->h2 != NULL)
		nghttp2_session_del(c->h2);
	free(c->expected_id);
	close(fd);
	free(c);
	return NULL;
}

struct sn_xds_conn *sn_xds_client(struct sn_loop *loop, int fd, const char *authority,
				  const struct sn_xds_tls *tls, const struct sn_xds_ops *ops, void *arg)
{
	struct sn_xds_conn *c = conn_new(loop, fd, 0, tls, ops, arg);
	nghttp2_data_provider prd;

	if (c == NULL)
		return NULL;
	snprintf(c->authority, sizeof(c->authority), "%s", authority);
	const nghttp2_nv hdrs[] = {
		{ (uint8_t *)":method", (uint8_t *)"POST", 7, 4, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":scheme", (uint8_t *)(c->tls_ctx ? "https" : "http"), 7, c->tls_ctx ? 5 : 4,
		  NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":authority", (uint8_t *)c->authority, 10, strlen(c->authority), NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)":path", (uint8_t *)SN_XDS_PATH, 5, strlen(SN_XDS_PATH), NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"content-type", (uint8_t *)"application/x-ndjson", 12, 20, NGHTTP2_NV_FLAG_NONE },
	};
	prd.source.ptr = c;
	prd.read_callback = read_queue;
	c->stream_id = nghttp2_submit_request(c->h2, NULL, hdrs, SN_ARRAY_LEN(hdrs), &prd, c);
	if (c->stream_id < 0) {
		sn_xds_close(c, "cannot open the stream");
		return c;
	}
	return c;
}

struct sn_xds_conn *sn_xds_server(struct sn_loop *loop, int fd, const struct sn_xds_tls *tls,
				  const struct sn_xds_ops *ops, void *arg)
{
	struct sn_xds_conn *c = conn_new(loop, fd, 1, tls, ops, arg);
	if (c != NULL) {
		c->connected = 1;
		flush(c);
	}
	return c;
}

const char *sn_xds_peer_id(const struct sn_xds_conn *c)
{
	return c->tls_done ? sn_xprt_peer_id(&c->x) : NULL;
}

int64_t sn_xds_peer_not_after(const struct sn_xds_conn *c)
{
	SSL *ssl = c->tls_done && c->secure && c->x.layer != NULL ? sn_tls_stream_ssl(c->x.layer) : NULL;
	X509 *cert = ssl != NULL ? SSL_get0_peer_certificate(ssl) : NULL;
	struct tm tm;

	if (cert == NULL || ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

int sn_xds_has_unread(const struct sn_xds_conn *c)
{
	int n = 0;
	return c->x.fd >= 0 && ioctl(c->x.fd, FIONREAD, &n) == 0 && n > 0;
}

int sn_xds_secure(const struct sn_xds_conn *c)
{
	return c->secure;
}

int sn_xds_ping(struct sn_xds_conn *c)
{
	if (c->closing)
		return SN_ECLOSED;
	if (nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL) != 0)
		return SN_ENOMEM;
	return flush(c) == 0 ? 0 : SN_ECLOSED;
}

uint64_t sn_xds_pings_answered(const struct sn_xds_conn *c)
{
	return c->pongs;
}
