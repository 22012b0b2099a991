/* HTTP/2 to endpoints: one connection per endpoint carries many requests
 * at once (an app that speaks HTTP/2 or gRPC, or the peer proxy over
 * mutual TLS with ALPN sinew/h2), on the client codec
 * (src/http/h2_client.c).
 *
 * Each attempt of an exchange gets a stream, wrapped in a struct
 * sn_uconn shell so the exchange drives it as it drives an HTTP/1.1
 * connection: `connected` once the stream is open, request body through
 * sn__h2u_write, and the response body arriving in u->in, framed as the
 * client needs it -- raw up to a Content-Length or the stream's end, or in
 * chunks (trailers in the last one) for an HTTP/1.1 client. The head comes
 * structured (sn__h2u_head), never as text.
 *
 * Windows are given back to the server only when the exchange passed the
 * bytes on (sn__h2u_consumed): a slow client slows the stream, not the
 * proxy's memory. Per-connection work runs from h2u_run, never inside the
 * codec's callbacks. */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sinew/h2.h"
#include "sinew/log.h"
#include "exchange.h"

#define H2U_MAX_BODY (SN_H2S_DEFAULT_STREAM_WINDOW + SN_BUF_DEFAULT_SIZE)

/* An HTTP/2 connection to one endpoint. */
struct sn_h2u {
	struct sn_h2u *next;              /* the host's list */
	struct sn_io io;
	struct sn_xprt x;
	struct sn_worker *w;
	struct sn_host *host;
	struct sn_h2c *codec;
	struct sn_buf in, out;
	struct sn_timer timer;            /* connect (and handshake) timeout, then idle */
	char *tls_id;
	uint32_t idle_timeout_ms;
	struct sn_h2u_stream *streams;    /* every attempt on it */
	struct sn_h2u_stream *run, **run_tail;
	unsigned connected : 1;
	unsigned handshaking : 1;
	unsigned ready : 1;               /* streams may open */
	unsigned can_read : 1, can_write : 1, eof : 1, hup : 1;
	unsigned dead : 1;                /* closed: no new streams; freed once it has none */
	unsigned running : 1;
	struct sn_task task;
	struct sn_task reclaim;
};

/* One attempt's stream. u first: the exchange holds &s->u. */
struct sn_h2u_stream {
	struct sn_uconn u;
	struct sn_h2u *conn;
	struct sn_h2u_stream *next, **pprev;   /* the connection's streams */
	struct sn_h2u_stream *next_run;
	struct sn_h2c_stream *st;         /* NULL before it opens and after it closed */
	const struct sn_http_head *req;   /* the exchange's, until the stream opens */
	int req_end;
	int te_trailers;
	int frame_chunks;                 /* the client wants chunks for a body of unknown length */
	int head_request;
	struct sn_http_head head;         /* the response head, copied: the codec's views go with its stream */
	unsigned have_head : 1;
	char *head_buf;
	struct sn_http_field *head_fields;
	enum sn_h1_body_kind kind;
	uint64_t cl;
	uint64_t received, credited;
	uint64_t framing;                 /* chunk framing added to u->in */
	uint64_t consumed;                /* bytes of u->in (data and framing) passed on */
	char *trailer_buf;                /* trailers, copied (sn__h2u_trailers) */
	struct sn_http_field *trailers;
	size_t n_trailers;
	uint32_t error;                   /* the reset's code */
	unsigned ended : 1;               /* the response is complete */
	unsigned reset : 1;               /* ended by a reset or the connection's end */
	unsigned queued : 1;
	unsigned released : 1;            /* the exchange let go: freed once the codec is done */
};

static void h2u_run(struct sn_h2u *h);

/* ---- the run list and the connection's task -------------------------------- */

static void enqueue(struct sn_h2u_stream *s)
{
	struct sn_h2u *h = s->conn;
	if (s->queued || s->released || h == NULL)
		return;
	s->queued = 1;
	s->next_run = NULL;
	*h->run_tail = s;
	h->run_tail = &s->next_run;
}

static void on_task(struct sn_loop *loop, struct sn_task *t)
{
	struct sn_h2u *h = sn_container_of(t, struct sn_h2u, task);
	(void)loop;
	h2u_run(h);
}

static void kick(struct sn_h2u *h)
{
	if (!h->running)
		sn_loop_defer(&h->w->loop, &h->task, on_task);
}

/* ---- streams ------------------------------------------------------------------ */

static void stream_unlink(struct sn_h2u_stream *s)
{
	struct sn_h2u *h = s->conn;

	if (h == NULL)
		return;
	if (s->queued) {
		struct sn_h2u_stream **pp = &h->run;
		while (*pp != NULL && *pp != s)
			pp = &(*pp)->next_run;
		if (*pp == s) {
			*pp = s->next_run;
			if (h->run_tail == &s->next_run)
				h->run_tail = pp;
		}
		s->queued = 0;
	}
	*s->pprev = s->next;
	if (s->next != NULL)
		s->next->pprev = s->pprev;
	s->conn = NULL;
}

static void stream_free(struct sn_h2u_stream *s)
{
	struct sn_worker *w = s->u.w;
	stream_unlink(s);
	if (s->u.host != NULL)
		sn__host_freed(w, s->u.host);   /* a stream's room on its connection */
	sn_buf_release(&w->pool, &s->u.in);
	free(s->trailer_buf);
	free(s->trailers);
	free(s->head_buf);
	free(s->head_fields);
	free(s);
}

/* The stream ended badly (reset, or its connection went): the exchange
 * hears it as an EOF. */
static void stream_fail(struct sn_h2u_stream *s, uint32_t error)
{
	s->reset = 1;
	s->error = error;
	s->u.eof = 1;
	s->u.can_read = 1;
	s->u.can_write = 1;
	s->st = NULL;
	enqueue(s);
}

/* Appends response body bytes to u->in, framed as a chunk when chunks. */
static int body_add(struct sn_h2u_stream *s, const void *p, size_t n)
{
	struct sn_worker *w = s->u.w;
	char line[24];
	int ll = 0;

	if (s->kind == SN_H1_BODY_CHUNKED)
		ll = snprintf(line, sizeof(line), "%zx\r\n", n);
	if (sn_buf_reserve(&w->pool, &s->u.in, n + (size_t)ll + 2, H2U_MAX_BODY) != 0)
		return -1;
	if (ll > 0)
		sn_buf_append(&s->u.in, line, (size_t)ll);
	sn_buf_append(&s->u.in, p, n);
	if (s->kind == SN_H1_BODY_CHUNKED) {
		sn_buf_append(&s->u.in, "\r\n", 2);
		s->framing += (uint64_t)ll + 2;
	}
	return 0;
}

/* Copies n fields into *fields and *buf (one allocation each). Returns 0
 * or -1. */
static int copy_fields(const struct sn_http_field *f, size_t n, struct sn_http_field **fields, char **buf)
{
	size_t bytes = 0;

	for (size_t i = 0; i < n; i++)
		bytes += f[i].name.len + f[i].value.len;
	*fields = calloc(n ? n : 1, sizeof(**fields));
	*buf = malloc(bytes ? bytes : 1);
	if (*fields == NULL || *buf == NULL) {
		free(*fields);
		free(*buf);
		*fields = NULL;
		*buf = NULL;
		return -1;
	}
	char *q = *buf;
	for (size_t i = 0; i < n; i++) {
		memcpy(q, f[i].name.p, f[i].name.len);
		struct sn_str name = sn_str_make(q, f[i].name.len);
		q += f[i].name.len;
		memcpy(q, f[i].value.p, f[i].value.len);
		(*fields)[i] = (struct sn_http_field){ name, sn_str_make(q, f[i].value.len) };
		q += f[i].value.len;
	}
	return 0;
}

/* ---- codec callbacks ------------------------------------------------------------ */

static void on_response(void *arg, struct sn_h2c_stream *st, const struct sn_http_head *h)
{
	struct sn_h2u_stream *s = sn_h2c_user(st);

	if (s == NULL)
		return;
	if (copy_fields(h->fields, h->n_fields, &s->head_fields, &s->head_buf) != 0) {
		sn_h2c_reset(((struct sn_h2u *)arg)->codec, st, 2 /* INTERNAL_ERROR */);
		return;
	}
	s->head = *h;
	s->head.fields = s->head_fields;
	s->have_head = 1;
	if (s->head_request || h->status == 204 || h->status == 304) {
		s->kind = SN_H1_BODY_NONE;
	} else if (h->content_length >= 0) {
		s->kind = h->content_length == 0 ? SN_H1_BODY_NONE : SN_H1_BODY_LENGTH;
		s->cl = (uint64_t)h->content_length;
	} else {
		s->kind = s->frame_chunks ? SN_H1_BODY_CHUNKED : SN_H1_BODY_UNTIL_CLOSE;
	}
	s->u.can_read = 1;
	enqueue(s);
}

static void on_data(void *arg, struct sn_h2c_stream *st, const void *p, size_t n)
{
	struct sn_h2u *h = arg;
	struct sn_h2u_stream *s = sn_h2c_user(st);

	if (s == NULL || s->released) {
		sn_h2c_consumed(h->codec, st, n);
		return;
	}
	s->received += n;
	if (body_add(s, p, n) != 0) {
		sn_h2c_reset(h->codec, st, 2 /* INTERNAL_ERROR */);
		return;
	}
	s->u.can_read = 1;
	enqueue(s);
}

/* Trailers: kept for an HTTP/2 client; in the last chunk for an HTTP/1.1
 * one. */
static void on_end(void *arg, struct sn_h2c_stream *st, const struct sn_http_field *tr, size_t n)
{
	struct sn_h2u_stream *s = sn_h2c_user(st);
	size_t bytes = 0;

	(void)arg;
	if (s == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		bytes += tr[i].name.len + tr[i].value.len + 4;
	if (n > 0 && s->trailers == NULL && copy_fields(tr, n, &s->trailers, &s->trailer_buf) == 0)
		s->n_trailers = n;
	if (s->kind == SN_H1_BODY_CHUNKED) {
		struct sn_worker *w = s->u.w;
		if (sn_buf_reserve(&w->pool, &s->u.in, bytes + 8, H2U_MAX_BODY + bytes + 8) == 0) {
			size_t before = sn_buf_len(&s->u.in);
			sn_buf_append(&s->u.in, "0\r\n", 3);
			for (size_t i = 0; i < s->n_trailers; i++) {
				sn_buf_append(&s->u.in, s->trailers[i].name.p, s->trailers[i].name.len);
				sn_buf_append(&s->u.in, ": ", 2);
				sn_buf_append(&s->u.in, s->trailers[i].value.p, s->trailers[i].value.len);
				sn_buf_append(&s->u.in, "\r\n", 2);
			}
			sn_buf_append(&s->u.in, "\r\n", 2);
			s->framing += sn_buf_len(&s->u.in) - before;
		}
	}
	s->ended = 1;
	s->u.can_read = 1;
	enqueue(s);
}

static void on_writable(void *arg, struct sn_h2c_stream *st)
{
	struct sn_h2u_stream *s = sn_h2c_user(st);
	(void)arg;
	if (s != NULL) {
		s->u.can_write = 1;
		enqueue(s);
	}
}

static void on_close(void *arg, struct sn_h2c_stream *st, uint32_t error)
{
	struct sn_h2u_stream *s = sn_h2c_user(st);

	(void)arg;
	if (s == NULL)
		return;
	s->st = NULL;
	if (s->released) {
		stream_free(s);
		return;
	}
	if (!s->ended)
		stream_fail(s, error ? error : 2);
	else
		s->u.eof = 1;   /* read what's buffered, then the end */
}

static const struct sn_h2c_cbs h2u_cbs = {
	.on_response = on_response,
	.on_data = on_data,
	.on_end = on_end,
	.on_writable = on_writable,
	.on_close = on_close,
};

/* ---- the connection ------------------------------------------------------------ */

static void reclaim_h2u(struct sn_loop *loop, struct sn_task *t)
{
	struct sn_h2u *h = sn_container_of(t, struct sn_h2u, reclaim);
	(void)loop;
	free(h);
}

/* Ends the connection: every stream still with an exchange fails (the
 * exchange sees a reset), the rest go. */
static void h2u_close(struct sn_h2u *h, const char *why)
{
	struct sn_worker *w = h->w;

	if (h->dead)
		return;
	if (why != NULL && why[0])
		sn_log(SN_LOG_INFO, "upstream %s: HTTP/2 connection ended: %s", h->host->key, why);
	h->dead = 1;
	h->ready = 0;
	/* out of the host's list: no new streams */
	for (struct sn_h2u **pp = &h->host->h2; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	}
	sn_timer_stop(&w->loop, &h->timer);
	sn_io_stop(&w->loop, &h->io);
	if (h->x.fd >= 0) {
		sn_xprt_close(&h->x, !h->handshaking && !h->eof);
		sn_xprt_init(&h->x, -1);
		h->host->n_conns--;
		sn_metrics_add(w->metrics, SN_CTR_UPSTREAM_CX_ACTIVE, -1);
		sn__host_freed(w, h->host);
	}
	sn_buf_release(&w->pool, &h->in);
	sn_buf_release(&w->pool, &h->out);
	sn_h2c_free(h->codec);   /* no callbacks */
	h->codec = NULL;
	free(h->tls_id);
	h->tls_id = NULL;
	/* Streams: the released ones go now; the others fail, and go when
	 * their exchanges release them. */
	struct sn_h2u_stream *s = h->streams;
	while (s != NULL) {
		struct sn_h2u_stream *next = s->next;
		s->st = NULL;
		if (s->released) {
			stream_free(s);
		} else {
			if (!s->u.connected) {
				/* never opened: a connect failure, which its exchange
				 * must hear (it retries or answers 503) */
				s->u.eof = 1;
				s->u.can_read = 1;
				s->u.can_write = 1;
				enqueue(s);
			} else if (!s->ended)
				stream_fail(s, 2);
			else
				s->u.eof = 1;
		}
		s = next;
	}
	/* Exchanges hear it from the run list; the connection goes once the
	 * last stream is released (sn__h2u_release). */
	h2u_run(h);
}

static void maybe_free(struct sn_h2u *h)
{
	if (h->dead && h->streams == NULL && !h->running)
		sn_loop_reclaim(&h->w->loop, &h->reclaim, reclaim_h2u);
}

static void on_timer(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_h2u *h = sn_container_of(t, struct sn_h2u, timer);
	(void)loop;
	if (!h->ready) {
		h2u_close(h, "connect timeout");
		maybe_free(h);
		return;
	}
	if (h->streams == NULL) {
		h2u_close(h, NULL);   /* idle */
		maybe_free(h);
	}
}

/* Connect, then the TLS handshake if any. Returns 1 when ready, 0 to wait,
 * -1 on failure (closed). */
static int h2u_connect(struct sn_h2u *h)
{
	if (!h->connected) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (h->eof || (!h->can_write && !h->can_read))
			return h->eof ? -1 : 0;
		if (getsockopt(h->x.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
			return -1;
		if (!h->can_write)
			return 0;
		h->connected = 1;
	}
	if (h->handshaking) {
		int r = sn_xprt_handshake(&h->x);
		if (r == SN_EAGAIN) {
			unsigned want = sn_xprt_want(&h->x);
			if (want & SN_XPRT_WANT_READ)
				h->can_read = 0;
			if (want & SN_XPRT_WANT_WRITE)
				h->can_write = 0;
			return 0;
		}
		if (r != 0) {
			sn_log(SN_LOG_INFO, "upstream %s: %s", h->host->key, sn_xprt_error(&h->x));
			return -1;
		}
		if (!sn_str_eq_cstr(sn_xprt_alpn(&h->x), SN_TLS_ALPN_H2)) {
			sn_log(SN_LOG_INFO, "upstream %s: the peer proxy did not agree to HTTP/2 (ALPN %s)", h->host->key,
			       SN_TLS_ALPN_H2);
			return -1;
		}
		h->handshaking = 0;
		h->can_read = 1;
		h->can_write = 1;
	}
	h->ready = 1;
	sn_timer_stop(&h->w->loop, &h->timer);
	return 1;
}

/* Opens the streams of attempts that waited for the connection. */
static void open_waiting(struct sn_h2u *h)
{
	for (struct sn_h2u_stream *s = h->streams; s != NULL; s = s->next) {
		if (s->u.connected || s->released || s->u.eof)
			continue;
		int r = sn_h2c_request(h->codec, s->req, s->te_trailers, s->req_end, s, &s->st);
		if (r == SN_ELIMIT)
			break;   /* the server's stream limit: the rest wait for a stream to close */
		if (r != 0) {
			s->u.eof = 1;
		} else {
			s->u.connected = 1;
			s->u.can_write = 1;
		}
		s->req = NULL;
		enqueue(s);
	}
}

static int h2u_flush(struct sn_h2u *h)
{
	struct sn_worker *w = h->w;

	for (;;) {
		/* Frames gathered: one write carries many. */
		if (sn_h2c_gather(h->codec, &w->pool, &h->out) != 0)
			return -1;
		if (sn_buf_len(&h->out) == 0) {
			sn_buf_release(&w->pool, &h->out);
			return 0;
		}
		if (!h->can_write)
			return 0;
		struct iovec iov = { sn_buf_data(&h->out), sn_buf_len(&h->out) };
		unsigned clear;
		ssize_t k = sn_xprt_send(&h->x, &iov, 1, &clear);
		if (clear & SN_XPRT_WANT_WRITE)
			h->can_write = 0;
		if (clear & SN_XPRT_WANT_READ)
			h->can_read = 0;
		if (k < 0)
			return -1;
		sn_buf_consume(&h->out, (size_t)k);
		if (sn_buf_len(&h->out) > 0)
			return 0;
	}
}

static void run_streams(struct sn_h2u *h)
{
	struct sn_h2u_stream *s;

	while ((s = h->run) != NULL) {
		h->run = s->next_run;
		if (h->run == NULL)
			h->run_tail = &h->run;
		s->queued = 0;
		if (s->u.ex != NULL)
			sn_exchange_on_upstream(s->u.ex, SN_IO_READ | SN_IO_WRITE);
	}
}

static void h2u_run(struct sn_h2u *h)
{
	struct sn_worker *w = h->w;

	if (h->running)
		return;
	h->running = 1;
	if (!h->dead && !h->ready) {
		int r = h2u_connect(h);
		if (r < 0) {
			h->running = 0;
			h2u_close(h, "connect failed");
			maybe_free(h);
			return;
		}
	}
	for (int round = 0; round < 8 && !h->dead && h->ready; round++) {
		int fed = 0;
		while (h->can_read && !h->eof) {
			unsigned clear;
			ssize_t n = sn_xprt_read_buf(&h->x, &w->pool, &h->in, sn__in_cap(w), h->hup, &clear);
			if (clear & SN_XPRT_WANT_READ)
				h->can_read = 0;
			if (clear & SN_XPRT_WANT_WRITE)
				h->can_write = 0;
			if (n < 0)
				h->eof = 1;
			if (sn_buf_len(&h->in) > 0) {
				int r = sn_h2c_recv(h->codec, sn_buf_data(&h->in), sn_buf_len(&h->in));
				sn_buf_consume(&h->in, sn_buf_len(&h->in));
				fed = 1;
				if (r != 0) {
					(void)h2u_flush(h);
					h->running = 0;
					h2u_close(h, sn_h2c_error(h->codec));
					maybe_free(h);
					return;
				}
			}
			if (n <= 0)
				break;
		}
		sn_buf_release(&w->pool, &h->in);
		open_waiting(h);
		if (h2u_flush(h) != 0) {
			h->eof = 1;
			break;
		}
		run_streams(h);
		if (h->dead)
			break;
		if (h2u_flush(h) != 0) {
			h->eof = 1;
			break;
		}
		if (!fed && h->run == NULL)
			break;
	}
	run_streams(h);
	/* What those streams queued -- window credits for bytes that reached
	 * clients, resets -- goes out now: a kick while running is dropped,
	 * and nothing else would wake this connection (a download stalled at
	 * one stream window once, on a loaded machine). */
	if (!h->dead && h->ready && h2u_flush(h) != 0)
		h->eof = 1;
	h->running = 0;
	if (!h->dead && (h->eof || (h->ready && !sn_h2c_alive(h->codec) && sn_buf_len(&h->out) == 0))) {
		h2u_close(h, h->eof ? NULL : sn_h2c_error(h->codec));
		maybe_free(h);
		return;
	}
	if (h->dead) {
		maybe_free(h);
		return;
	}
	if (h->run != NULL)
		kick(h);
	if (h->ready && h->streams == NULL && !sn_timer_is_linked(&h->timer))
		sn_timer_start(&w->loop, &h->timer, h->idle_timeout_ms, on_timer);
	else if (h->ready && h->streams != NULL)
		sn_timer_stop(&w->loop, &h->timer);
}

static void on_io(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct sn_h2u *h = sn_container_of(io, struct sn_h2u, io);

	(void)loop;
	if (events & SN_IO_WRITE)
		h->can_write = 1;
	if (events & SN_IO_READ)
		h->can_read = 1;
	if (events & SN_IO_HUP)
		h->hup = 1;
	if (sn_xprt_has(&h->x, SN_XPRT_CROSSED_READINESS) && (events & (SN_IO_READ | SN_IO_WRITE))) {
		h->can_read = 1;
		h->can_write = 1;
	}
	h2u_run(h);
}

static struct sn_h2u *h2u_new(struct sn_worker *w, struct sn_host *host, const struct sn_cluster *c,
			      const char *tls_id)
{
	struct sn_h2u *h = calloc(1, sizeof(*h));
	int fd = -1, one = 1;

	if (h == NULL)
		return NULL;
	h->w = w;
	h->host = host;
	h->run_tail = &h->run;
	h->idle_timeout_ms = c->idle_timeout_ms ? c->idle_timeout_ms : 60000;
	sn_xprt_init(&h->x, -1);
	if (sn_h2c_new(NULL, &h2u_cbs, h, &h->codec) != 0)
		goto fail;
	fd = socket(host->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	sn_xprt_init(&h->x, fd);
	if (connect(fd, (struct sockaddr *)&host->addr, host->addr_len) != 0 && errno != EINPROGRESS)
		h->eof = 1;
	if (tls_id != NULL) {
		const char *ids[1] = { tls_id };
		struct sn_tls_conn_opts co = { .expected_ids = ids, .n_expected = 1, .session_key = host->key,
					       .alpn = SN_TLS_ALPN_H2 };
		h->tls_id = strdup(tls_id);
		if (h->tls_id == NULL ||
		    (!strncmp(tls_id, "tls:", 4) ? sn_upstream_origin_start(w, c, tls_id, 1, &h->x)
						 : sn_xprt_tls(&h->x, __atomic_load_n(&w->proxy->tls_client,
										      __ATOMIC_ACQUIRE), &co)) != 0)
			h->eof = 1;
		else
			h->handshaking = 1;
	}
	if (sn_io_start(&w->loop, &h->io, fd, on_io) != 0)
		goto fail;
	host->n_conns++;
	sn_metrics_add(w->metrics, SN_CTR_UPSTREAM_CX_TOTAL, 1);
	sn_metrics_add(w->metrics, SN_CTR_UPSTREAM_CX_ACTIVE, 1);
	h->can_write = 1;
	h->next = host->h2;
	host->h2 = h;
	sn_timer_start(&w->loop, &h->timer, c->connect_timeout_ms ? c->connect_timeout_ms : 1000, on_timer);
	return h;

fail:
	if (fd >= 0)
		sn_xprt_close(&h->x, 0);
	sn_h2c_free(h->codec);
	free(h->tls_id);
	free(h);
	return NULL;
}

/* ---- for the exchange ------------------------------------------------------------ */

int sn__h2u_acquire(struct sn_worker *w, struct sn_host *host, const struct sn_cluster *c, struct sn_exchange *ex,
		    const char *tls_id, const struct sn_h2u_request *rq, struct sn_uconn **out)
{
	struct sn_h2u *h;
	uint32_t max = c->max_connections ? c->max_connections : 1024;

	for (h = host->h2; h != NULL; h = h->next) {
		if (h->dead || (tls_id == NULL) != (h->tls_id == NULL) || (tls_id && strcmp(tls_id, h->tls_id)))
			continue;
		if (!h->ready || sn_h2c_can_open(h->codec))
			break;
	}
	int fresh = h == NULL;
	if (h == NULL) {
		if (host->n_conns >= max)
			return SN_ELIMIT;
		h = h2u_new(w, host, c, tls_id);
		if (h == NULL)
			return SN_EIO;
	}
	struct sn_h2u_stream *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return SN_ENOMEM;
	s->u.w = w;
	s->u.host = host;
	s->u.ex = ex;
	s->u.h2 = s;
	s->u.reused = !fresh;
	sn_xprt_init(&s->u.x, -1);
	s->conn = h;
	s->req = rq->head;
	s->req_end = rq->end;
	s->te_trailers = rq->te_trailers;
	s->frame_chunks = rq->frame_chunks;
	s->head_request = sn_str_eq_cstr(rq->head->method, "HEAD");
	s->next = h->streams;
	if (s->next != NULL)
		s->next->pprev = &s->next;
	h->streams = s;
	s->pprev = &h->streams;
	if (fresh)
		sn_log(SN_LOG_DEBUG, "upstream %s: new HTTP/2 connection%s", host->key, tls_id ? " (mTLS)" : "");
	else
		sn_metrics_add(w->metrics, SN_CTR_UPSTREAM_CX_REUSED, 1);
	kick(h);   /* opens the stream when the connection is ready */
	*out = &s->u;
	return 0;
}

ssize_t sn__h2u_write(struct sn_uconn *u, const void *p, size_t n)
{
	struct sn_h2u_stream *s = u->h2;

	if (s->st == NULL || s->conn == NULL)
		return -1;
	ssize_t r = sn_h2c_write(s->conn->codec, s->st, p, n);
	if (r == SN_EAGAIN) {
		u->can_write = 0;
		return 0;
	}
	if (r < 0)
		return -1;
	kick(s->conn);
	return r;
}

void sn__h2u_end(struct sn_uconn *u)
{
	struct sn_h2u_stream *s = u->h2;

	if (s->st != NULL && s->conn != NULL) {
		sn_h2c_end(s->conn->codec, s->st);
		kick(s->conn);
	}
}

const struct sn_http_head *sn__h2u_head(struct sn_uconn *u, enum sn_h1_body_kind *kind, uint64_t *cl)
{
	struct sn_h2u_stream *s = u->h2;
	*kind = s->kind;
	*cl = s->cl;
	if (s->reset || !s->have_head)
		return NULL;
	/* Trailers-only (a gRPC error): nothing follows the head. */
	if (s->ended && s->received == 0 && s->n_trailers == 0)
		*kind = SN_H1_BODY_NONE;
	return &s->head;
}

int sn__h2u_reset(const struct sn_uconn *u)
{
	return u->h2->reset;
}

ssize_t sn__h2u_read(struct sn_uconn *u)
{
	struct sn_h2u_stream *s = u->h2;
	if (sn_buf_len(&u->in) > 0)
		return 0;
	return s->ended || s->reset || u->eof ? -1 : 0;
}

void sn__h2u_consumed(struct sn_uconn *u, size_t n)
{
	struct sn_h2u_stream *s = u->h2;
	/* Windows take data bytes only: the framing counts as passed on
	 * first, so what is given back never runs ahead of the data. */
	s->consumed += n;
	uint64_t data = s->consumed > s->framing ? s->consumed - s->framing : 0;
	uint64_t give = data > s->credited ? SN_MIN(data, s->received) - s->credited : 0;

	if (give == 0 || s->conn == NULL || s->conn->codec == NULL)
		return;
	s->credited += give;
	/* A stream closed already still holds its bytes against the
	 * connection's window. */
	if (s->st != NULL)
		sn_h2c_consumed(s->conn->codec, s->st, (size_t)give);
	else
		sn_h2c_consumed_conn(s->conn->codec, (size_t)give);
	kick(s->conn);
}

const struct sn_http_field *sn__h2u_trailers(const struct sn_uconn *u, size_t *n)
{
	*n = u->h2->n_trailers;
	return u->h2->trailers;
}

void sn__h2u_release(struct sn_uconn *u)
{
	struct sn_h2u_stream *s = u->h2;
	struct sn_h2u *h = s->conn;

	/* Bytes nobody will pass on go back to the connection's window. */
	if (s->received > s->credited && h != NULL && h->codec != NULL) {
		if (s->st != NULL)
			sn_h2c_consumed(h->codec, s->st, (size_t)(s->received - s->credited));
		else
			sn_h2c_consumed_conn(h->codec, (size_t)(s->received - s->credited));
		s->credited = s->received;
	}
	u->ex = NULL;
	s->released = 1;
	s->req = NULL;
	if (h == NULL || h->dead || s->st == NULL) {
		stream_free(s);
		if (h != NULL)
			maybe_free(h);
		return;
	}
	/* Still open: cancelled (the response was cut short, or the request
	 * body was not all sent); freed when the codec closes it. */
	sn_h2c_reset(h->codec, s->st, 8 /* CANCEL */);
	kick(h);
}

void sn__h2u_close_all(struct sn_worker *w, struct sn_host *host)
{
	(void)w;
	while (host->h2 != NULL) {
		struct sn_h2u *h = host->h2;
		h2u_close(h, NULL);
		maybe_free(h);
	}
}
