/* The client's HTTP/2 connection: a downstream connection (downstream.c)
 * whose first bytes were the HTTP/2 preface becomes one of these. The
 * codec (src/http/h2_server.c) turns its bytes into streams; each stream
 * with a complete head gets its own exchange (exchange.c), which routes,
 * retries and records it exactly as it does an HTTP/1.1 request, and
 * answers through the sn__h2d_* calls below instead of writing bytes.
 *
 * Order of work (h2d_run): read everything the socket has and feed it to
 * the codec; start the streams whose heads arrived and move the others
 * on; write what the codec has while the socket takes it. Nothing runs
 * inside the codec's callbacks except bookkeeping: exchanges start and
 * move from the run list, after the codec returned.
 *
 * Request bodies stay within the codec's windows: bytes are given back to
 * the client only when the exchange sent them upstream
 * (sn__h2d_consumed). Towards an HTTP/1.1 upstream a body of unknown
 * length is framed in chunks as it arrives; a body complete before its
 * exchange starts goes with a Content-Length instead, unless it ended with
 * trailer fields: they go in the last chunk (a Content-Length body
 * carries none, so a request with one loses them, as RFC 9110 lets a
 * proxy do).
 *
 * An extended CONNECT for WebSocket (RFC 8441) goes to its exchange as
 * the HTTP/1.1 handshake h2_tunnel.c makes of it; on the endpoint's 101
 * the stream becomes that file's tunnel: its DATA, room and end go there
 * instead of to an exchange. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/h2.h"
#include "sinew/log.h"
#include "exchange.h"

#define CHUNK_OVERHEAD 32   /* "%zx\r\n" ... "\r\n", and the last chunk */

struct sn_h2d_stream {
	struct sn_h2d_stream *next, **pprev;   /* the connection's streams */
	struct sn_dconn *c;
	struct sn_h2s_stream *st;
	struct sn_exchange *ex;
	struct sn_h2t *tunnel;            /* an extended CONNECT's (h2_tunnel.c); NULL for other requests */
	struct sn_h2d_stream *next_run;   /* the connection's run list */
	const struct sn_http_head *head;  /* the codec's, valid until on_close */
	struct sn_buf body;               /* request body not yet sent upstream */
	uint64_t received;                /* body bytes from the client */
	uint64_t credited;                /* body bytes given back to its windows */
	uint64_t framing;                 /* chunk framing added to s->body */
	uint64_t consumed;                /* bytes of s->body (data and framing) passed on */
	char *trailers;                   /* the request's trailer fields as HTTP/1.1 lines ("n: v\r\n"...) */
	size_t trailers_len;
	unsigned ended : 1;               /* the request is complete */
	unsigned started : 1;             /* the exchange has the head */
	unsigned chunked : 1;             /* body bytes are framed in chunks as they arrive */
	unsigned queued : 1;              /* on the run list */
	unsigned out_ended : 1;           /* the response is complete in the codec */
	unsigned closing : 1;             /* the codec is closing the stream */
};

struct sn_h2d {
	struct sn_h2s *s;
	struct sn_h2d_stream *streams;    /* every stream with a head */
	struct sn_h2d_stream *run;        /* streams to start or move on, FIFO */
	struct sn_h2d_stream **run_tail;
	unsigned running : 1;             /* inside h2d_run */
	unsigned going : 1;               /* GOAWAY submitted */
};

static void h2d_run(struct sn_dconn *c);

/* ---- the run list ------------------------------------------------------- */

static void enqueue(struct sn_h2d *h, struct sn_h2d_stream *s)
{
	if (s->queued || s->closing)
		return;
	s->queued = 1;
	s->next_run = NULL;
	*h->run_tail = s;
	h->run_tail = &s->next_run;
}

static void unqueue(struct sn_h2d *h, struct sn_h2d_stream *s)
{
	struct sn_h2d_stream **pp = &h->run;

	if (!s->queued)
		return;
	while (*pp != NULL && *pp != s)
		pp = &(*pp)->next_run;
	if (*pp == s) {
		*pp = s->next_run;
		if (h->run_tail == &s->next_run)
			h->run_tail = pp;
	}
	s->queued = 0;
}

static void on_task(struct sn_loop *loop, struct sn_task *t)
{
	struct sn_dconn *c = sn_container_of(t, struct sn_dconn, resume);
	(void)loop;
	if (!c->closing && c->h2 != NULL)
		h2d_run(c);
}

/* Something for the connection to do (bytes to write, a stream to move
 * on): from the deferred phase unless h2d_run is on it already. */
static void kick(struct sn_dconn *c)
{
	if (c->h2 != NULL && !c->h2->running)
		sn_loop_defer(&c->w->loop, &c->resume, on_task);
}

/* ---- request bodies ----------------------------------------------------- */

/* Appends to s->body, framed as a chunk when the body goes chunked.
 * Returns 0 or -1 (out of memory, or past the bound the windows imply). */
static int body_add(struct sn_h2d_stream *s, const void *p, size_t n)
{
	struct sn_worker *w = s->c->w;
	size_t max = SN_H2S_DEFAULT_STREAM_WINDOW + SN_BUF_DEFAULT_SIZE;
	char line[24];
	int ll = 0;

	if (s->chunked)
		ll = snprintf(line, sizeof(line), "%zx\r\n", n);
	if (sn_buf_reserve(&w->pool, &s->body, n + (size_t)ll + 2, max) != 0)
		return -1;
	if (ll > 0)
		sn_buf_append(&s->body, line, (size_t)ll);
	sn_buf_append(&s->body, p, n);
	if (s->chunked) {
		sn_buf_append(&s->body, "\r\n", 2);
		s->framing += (uint64_t)ll + 2;
	}
	return 0;
}

/* The last chunk: "0", the request's trailer fields, the empty line. */
static int last_chunk(struct sn_h2d_stream *s)
{
	struct sn_worker *w = s->c->w;
	size_t n = 5 + s->trailers_len;
	if (sn_buf_reserve(&w->pool, &s->body, n, SN_H2S_DEFAULT_STREAM_WINDOW + SN_BUF_DEFAULT_SIZE + n) != 0)
		return -1;
	sn_buf_append(&s->body, "0\r\n", 3);
	if (s->trailers_len)
		sn_buf_append(&s->body, s->trailers, s->trailers_len);
	sn_buf_append(&s->body, "\r\n", 2);
	s->framing += n;
	return 0;
}

/* Keeps the request's trailer fields for an HTTP/1.1 endpoint's last
 * chunk (RFC 9112 7.1.2), less those a trailer must not carry (framing,
 * routing, connection-specific: RFC 9110 6.5.1). Returns -1 on ENOMEM. */
static int keep_trailers(struct sn_h2d_stream *s, const struct sn_http_field *f, size_t n)
{
	/* besides the hop-by-hop fields (sn_h1_is_hop_by_hop) */
	static const char *const banned[] = { "content-length", "host", "content-type", "content-encoding",
					      "content-range", "authorization", "cookie", "set-cookie", "expect",
					      "max-forwards", "cache-control" };
	size_t len = 0;
	for (size_t i = 0; i < n; i++)
		len += f[i].name.len + f[i].value.len + 4;
	if (len == 0)
		return 0;
	char *out = malloc(len);
	if (out == NULL)
		return -1;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int skip = f[i].name.len == 0 || f[i].name.p[0] == ':' || sn_h1_is_hop_by_hop(f[i].name, NULL, 0);
		for (size_t b = 0; b < SN_ARRAY_LEN(banned) && !skip; b++)
			skip = sn_str_ieq_cstr(f[i].name, banned[b]);
		if (skip)
			continue;
		memcpy(out + o, f[i].name.p, f[i].name.len);
		o += f[i].name.len;
		memcpy(out + o, ": ", 2);
		o += 2;
		memcpy(out + o, f[i].value.p, f[i].value.len);
		o += f[i].value.len;
		memcpy(out + o, "\r\n", 2);
		o += 2;
	}
	free(s->trailers);
	s->trailers = o ? out : NULL;
	s->trailers_len = o;
	if (o == 0)
		free(out);
	return 0;
}

struct sn_buf *sn__h2d_body(struct sn_h2d_stream *s)
{
	return &s->body;
}

void sn__h2d_consumed(struct sn_h2d_stream *s, size_t n)
{
	/* Windows take data bytes only: count the framing as passed on first,
	 * so what is given back never runs ahead of the data that left (it
	 * catches up by the end). */
	s->consumed += n;
	uint64_t data = s->consumed > s->framing ? s->consumed - s->framing : 0;
	uint64_t give = data > s->credited ? SN_MIN(data, s->received) - s->credited : 0;

	if (give == 0 || s->closing || s->c->h2 == NULL || data <= s->credited)
		return;
	s->credited += give;
	sn_h2s_consumed(s->c->h2->s, s->st, (size_t)give);
	kick(s->c);
}

int sn__h2d_body_state(const struct sn_h2d_stream *s)
{
	return s->closing ? -1 : s->ended;
}

int sn__h2d_frame_chunks(struct sn_h2d_stream *s)
{
	struct sn_worker *w = s->c->w;

	if (s->chunked)
		return 0;
	s->chunked = 1;
	if (sn_buf_len(&s->body) > 0) {
		/* The bytes already here are the first chunk. */
		struct sn_buf raw = s->body;
		memset(&s->body, 0, sizeof(s->body));
		int r = body_add(s, sn_buf_data(&raw), sn_buf_len(&raw));
		sn_buf_release(&w->pool, &raw);
		if (r != 0)
			return -1;
	}
	if (s->ended)
		return last_chunk(s);
	return 0;
}

/* ---- answering (for the exchange) ----------------------------------------- */

int sn__h2d_respond(struct sn_h2d_stream *s, const struct sn_http_head *h, int end)
{
	if (s->closing || s->c->h2 == NULL || sn_h2s_respond(s->c->h2->s, s->st, h, end) != 0)
		return -1;
	if (end)
		s->out_ended = 1;
	kick(s->c);
	return 0;
}

ssize_t sn__h2d_write(struct sn_h2d_stream *s, const void *p, size_t n)
{
	if (s->closing || s->c->h2 == NULL)
		return -1;
	ssize_t r = sn_h2s_write(s->c->h2->s, s->st, p, n);
	if (r == SN_EAGAIN)
		return 0;   /* on_writable follows */
	if (r < 0)
		return -1;
	kick(s->c);
	return r;
}

int sn__h2d_end(struct sn_h2d_stream *s, const struct sn_http_field *trailers, size_t n)
{
	if (s->out_ended)
		return 0;
	if (s->closing || s->c->h2 == NULL || sn_h2s_end(s->c->h2->s, s->st, trailers, n) != 0)
		return -1;
	s->out_ended = 1;
	kick(s->c);
	return 0;
}

void sn__h2d_ex_done(struct sn_h2d_stream *s)
{
	struct sn_dconn *c = s->c;

	s->ex = NULL;
	if (s->closing || c->h2 == NULL)
		return;
	if (sn__h2t_active(s->tunnel)) {
		/* The stream lives on as a tunnel: the bytes either side sent
		 * early move on its first run. */
		enqueue(c->h2, s);
		kick(c);
		return;
	}
	/* A response cut short: the client must not take it for complete. */
	if (!s->out_ended)
		sn_h2s_reset(c->h2->s, s->st, 2 /* INTERNAL_ERROR */);
	/* A request body the exchange no longer wants is given back as it
	 * comes (on_data), so the client can finish sending. */
	if (sn_buf_len(&s->body) > 0) {
		sn__h2d_consumed(s, sn_buf_len(&s->body));
		sn_buf_release(&c->w->pool, &s->body);
	}
	kick(c);
}

struct sn_h2t *sn__h2d_tunnel(const struct sn_h2d_stream *s)
{
	return s->tunnel;
}

int32_t sn__h2d_stream_id(const struct sn_h2d_stream *s)
{
	return sn_h2s_stream_id(s->st);
}

void sn__h2d_reset(struct sn_h2d_stream *s, uint32_t error)
{
	if (s->closing || s->c->h2 == NULL)
		return;
	sn_h2s_reset(s->c->h2->s, s->st, error);
	kick(s->c);
}

/* ---- codec callbacks (bookkeeping only) ------------------------------------ */

static void stream_free(struct sn_dconn *c, struct sn_h2d_stream *s)
{
	*s->pprev = s->next;
	if (s->next != NULL)
		s->next->pprev = s->pprev;
	sn__h2t_free(s->tunnel);
	sn_buf_release(&c->w->pool, &s->body);
	free(s->trailers);
	free(s);
}

static int on_request(void *arg, struct sn_h2s_stream *st, const struct sn_http_head *head)
{
	struct sn_dconn *c = arg;
	struct sn_h2d_stream *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return -1;   /* refused */
	s->c = c;
	s->st = st;
	s->head = head;
	s->next = c->h2->streams;
	if (s->next != NULL)
		s->next->pprev = &s->next;
	c->h2->streams = s;
	s->pprev = &c->h2->streams;
	sn_h2s_set_user(st, s);
	enqueue(c->h2, s);
	return 0;
}

static int on_data(void *arg, struct sn_h2s_stream *st, const void *p, size_t n)
{
	struct sn_dconn *c = arg;
	struct sn_h2d_stream *s = sn_h2s_user(st);

	if (s == NULL)
		return -1;
	s->received += n;
	if (s->started && s->ex == NULL && !sn__h2t_active(s->tunnel)) {
		sn__h2d_consumed(s, n);   /* nobody wants it any more: dropped */
		return 0;
	}
	if (body_add(s, p, n) != 0)
		return -1;   /* the stream is reset */
	if (s->started)
		enqueue(c->h2, s);
	return 0;
}

static void on_end(void *arg, struct sn_h2s_stream *st, const struct sn_http_field *trailers, size_t n)
{
	struct sn_dconn *c = arg;
	struct sn_h2d_stream *s = sn_h2s_user(st);

	if (s == NULL)
		return;
	s->ended = 1;
	/* trailers: in the last chunk to an HTTP/1.1 endpoint (not to an
	 * HTTP/2 one, whose request ends with its last DATA) */
	if ((n > 0 && keep_trailers(s, trailers, n) != 0) || (s->chunked && s->ex != NULL && last_chunk(s) != 0))
		sn_h2s_reset(c->h2->s, st, 2 /* INTERNAL_ERROR */);
	if (s->started)
		enqueue(c->h2, s);
}

static void on_writable(void *arg, struct sn_h2s_stream *st)
{
	struct sn_dconn *c = arg;
	struct sn_h2d_stream *s = sn_h2s_user(st);

	if (s != NULL && (s->ex != NULL || sn__h2t_active(s->tunnel)))
		enqueue(c->h2, s);
}

static void on_close(void *arg, struct sn_h2s_stream *st, uint32_t error)
{
	struct sn_dconn *c = arg;
	struct sn_h2d_stream *s = sn_h2s_user(st);

	if (s == NULL)
		return;
	s->closing = 1;
	unqueue(c->h2, s);
	/* Body bytes never passed on hold the connection's window: back. */
	if (s->received > s->credited)
		sn_h2s_consumed_conn(c->h2->s, (size_t)(s->received - s->credited));
	s->credited = s->received;
	if (s->ex != NULL) {
		sn_log(SN_LOG_DEBUG, "conn=%llu stream %d closed by the client (error %u)", (unsigned long long)c->id,
		       (int)sn_h2s_stream_id(st), (unsigned)error);
		sn__ex_on_downstream_close(s->ex);   /* ends it: sn__h2d_ex_done clears s->ex */
	}
	stream_free(c, s);
}

static const struct sn_h2s_cbs h2d_cbs = {
	.on_request = on_request,
	.on_data = on_data,
	.on_end = on_end,
	.on_writable = on_writable,
	.on_close = on_close,
};

/* ---- streams: starting and moving on ------------------------------------------ */

/* The head is complete: choose how the body travels, and start the
 * exchange. */
static void start_stream(struct sn_dconn *c, struct sn_h2d_stream *s)
{
	const struct sn_http_head *head = s->head;
	enum sn_h1_body_kind body;
	uint64_t cl = 0;

	s->started = 1;
	if (sn__h2t_websocket(s->head)) {
		/* RFC 8441: routed and sent as the HTTP/1.1 handshake, without
		 * a body -- the stream's DATA waits for the tunnel. */
		s->tunnel = sn__h2t_new(c->w, s, s->head, &head);
		if (s->tunnel == NULL) {
			sn_h2s_reset(c->h2->s, s->st, 7 /* REFUSED_STREAM */);
			return;
		}
		body = SN_H1_BODY_NONE;
	} else if (s->head->content_length >= 0) {
		body = s->head->content_length == 0 && s->ended ? SN_H1_BODY_NONE : SN_H1_BODY_LENGTH;
		cl = (uint64_t)s->head->content_length;
	} else if (s->ended && s->trailers != NULL) {
		/* only chunks carry trailers to an HTTP/1.1 endpoint */
		body = SN_H1_BODY_CHUNKED;
	} else if (s->ended) {
		/* The whole body is here (or there is none): its length is known. */
		body = s->received == 0 ? SN_H1_BODY_NONE : SN_H1_BODY_LENGTH;
		cl = s->received;
	} else {
		/* Still coming, length unknown: raw to an HTTP/2 endpoint, in
		 * chunks to an HTTP/1.1 one (sn__h2d_frame_chunks). */
		body = SN_H1_BODY_CHUNKED;
	}
	struct sn_exchange *ex = sn__ex_new_stream(c, s);
	if (ex == NULL) {
		sn_h2s_reset(c->h2->s, s->st, 7 /* REFUSED_STREAM */);
		return;
	}
	s->ex = ex;
	sn__ex_start_stream(ex, head, body, cl);
}

static void run_streams(struct sn_dconn *c)
{
	struct sn_h2d *h = c->h2;
	struct sn_h2d_stream *s;

	while (c->h2 == h && !c->closing && (s = h->run) != NULL) {
		h->run = s->next_run;
		if (h->run == NULL)
			h->run_tail = &h->run;
		s->queued = 0;
		if (!s->started)
			start_stream(c, s);
		else if (s->ex != NULL)
			sn__ex_on_stream(s->ex);
		else if (s->tunnel != NULL)
			sn__h2t_on_stream(s->tunnel);
	}
}

/* ---- the connection's I/O -------------------------------------------------- */

/* Writes what the codec has while the socket takes it, its frames
 * gathered in c->out so that one write carries many; what the socket does
 * not take waits there (and the codec is not asked for more until it
 * went). Returns 0, or -1 when the client is gone. */
static int h2d_flush(struct sn_dconn *c)
{
	for (;;) {
		if (sn_h2s_gather(c->h2->s, &c->w->pool, &c->out) != 0)
			return -1;
		if (sn_buf_len(&c->out) == 0) {
			sn_buf_release(&c->w->pool, &c->out);
			return 0;
		}
		if (!c->can_write)
			return 0;
		if (sn__dconn_write(c, NULL, 0) < 0)
			return -1;
		if (sn_buf_len(&c->out) > 0)
			return 0;
	}
}

static void h2d_close(struct sn_dconn *c, const char *why)
{
	if (why != NULL && why[0])
		sn_log(SN_LOG_INFO, "conn=%llu from %s: HTTP/2 connection ended: %s", (unsigned long long)c->id,
		       c->peer, why);
	sn__dconn_close(c);
}

static void h2d_run(struct sn_dconn *c)
{
	struct sn_h2d *h = c->h2;
	struct sn_worker *w = c->w;

	h->running = 1;
	for (int round = 0; round < 8; round++) {
		int fed = 0;
		/* Edge-triggered: read until the socket has no more. The
		 * codec's windows bound the body bytes, its flood checks the
		 * rest. */
		while (c->can_read && !c->eof) {
			ssize_t n = sn__dconn_read(c);
			if (n <= 0 && sn_buf_len(&c->in) == 0)
				break;
			int r = sn_h2s_recv(h->s, sn_buf_data(&c->in), sn_buf_len(&c->in));
			sn_buf_consume(&c->in, sn_buf_len(&c->in));
			fed = 1;
			if (r != 0) {
				/* Protocol error or flood: the GOAWAY saying why
				 * goes out if the socket takes it, then the end. */
				run_streams(c);
				if (c->h2 == h)
					(void)h2d_flush(c);
				h->running = 0;
				h2d_close(c, sn_h2s_error(h->s));
				return;
			}
			if (n <= 0)
				break;
		}
		sn_buf_release(&w->pool, &c->in);
		run_streams(c);
		if (c->closing || c->h2 != h)
			return;
		if (h2d_flush(c) != 0) {
			h->running = 0;
			c->eof = 1;
			h2d_close(c, NULL);
			return;
		}
		/* Writing may have made room in streams' queues (on_writable). */
		if (h->run == NULL && !fed)
			break;
		if (h->run == NULL && !(c->can_read && !c->eof))
			break;
	}
	h->running = 0;
	if (h->run != NULL)
		kick(c);   /* more to do: later, after the other connections had a turn */
	if (c->eof && sn_buf_len(&c->out) == 0) {
		h2d_close(c, NULL);   /* the client went away: its streams end with it */
		return;
	}
	if (!sn_h2s_alive(h->s) && sn_buf_len(&c->out) == 0) {
		h2d_close(c, sn_h2s_error(h->s));
		return;
	}
	/* Idle: no stream open, wait for one (or the idle timeout). */
	sn__dconn_idle_timer(c, sn_h2s_streams(h->s) == 0);
}

/* ---- entry points for downstream.c ----------------------------------------- */

void sn__h2d_start(struct sn_dconn *c)
{
	struct sn_h2d *h = calloc(1, sizeof(*h));
	struct sn_h2s_limits lim = { 0 };

	if (h == NULL || sn_h2s_new(&lim, &h2d_cbs, c, &h->s) != 0) {
		free(h);
		sn__dconn_close(c);
		return;
	}
	h->run_tail = &h->run;
	c->h2 = h;
	c->header_timer = 0;
	sn_timer_stop(&c->w->loop, &c->timer);
	sn_metrics_add(c->w->metrics, SN_CTR_DOWNSTREAM_CX_HTTP2, 1);
	sn_log(SN_LOG_DEBUG, "conn=%llu from %s: HTTP/2", (unsigned long long)c->id, c->peer);
	/* The preface and whatever followed it are in c->in already. */
	c->can_read = 1;
	if (c->draining)
		sn__h2d_drain(c);
	h2d_run(c);
}

void sn__h2d_on_io(struct sn_dconn *c, unsigned events)
{
	(void)events;
	if (c->h2->running)
		return;
	h2d_run(c);
}

void sn__h2d_on_timer(struct sn_dconn *c)
{
	struct sn_h2d *h = c->h2;

	if (sn_h2s_streams(h->s) > 0)
		return;
	/* Idle too long: say so (GOAWAY), then close. */
	sn__h2d_drain(c);
	if (c->h2 == h && !c->closing) {
		(void)h2d_flush(c);
		h2d_close(c, NULL);
	}
}

void sn__h2d_drain(struct sn_dconn *c)
{
	struct sn_h2d *h = c->h2;

	if (h->going)
		return;
	h->going = 1;
	sn_h2s_goaway(h->s);
	kick(c);
}

void sn__h2d_close(struct sn_dconn *c)
{
	struct sn_h2d *h = c->h2;

	if (h == NULL)
		return;
	/* Every stream still running ends (downstream_disconnect); the
	 * codec then goes without further callbacks. */
	h->running = 1;
	h->run = NULL;
	h->run_tail = &h->run;
	while (h->streams != NULL) {
		struct sn_h2d_stream *s = h->streams;
		s->closing = 1;
		s->queued = 0;
		if (s->ex != NULL)
			sn__ex_on_downstream_close(s->ex);
		stream_free(c, s);
	}
	c->h2 = NULL;
	sn_h2s_free(h->s);
	free(h);
}
