/* The exchange: one request from the client's connection (downstream.c)
 * to an endpoint's (upstream.c) and back -- route, fault, authorize,
 * attempt, retry, relay, record.
 *
 * Bodies are never buffered whole: bytes move from
 * the reading side's buffer straight to the other socket, and a side is
 * only read when its buffer has been drained (pull-based backpressure).
 * The request head is copied into the exchange so the connection's buffer
 * can be reused for the body; the upstream head is written once and
 * re-sent as is on a retry.
 *
 * Every response the proxy makes itself carries `sinew-error: REASON`
 * (docs/errors.md), the same reason that goes to the access log and the
 * response_flags metric label. */
#include <assert.h>
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "sinew/log.h"
#include "exchange_int.h"
#include "filter.h"
#include "tap.h"

#define MAX_FREE_EXCHANGES 64
#define MAX_TRANSPARENT_RETRIES 3   /* stale pooled connections */
#define CONTINUE_LINE "HTTP/1.1 100 Continue\r\n\r\n"
#define DISCOVERY_WAIT_MS 1000
#define HEAD_HOLD_MS 1   /* a response head waits this long for its first body bytes */
#define DEFAULT_MAX_PENDING 1024   /* requests waiting for a connection per endpoint (Envoy's default) */

#define ST(x) (1u << SN_EX_STATE_##x)
/* The states each state may move to. DONE is reachable from all: a
 * client that goes away ends an exchange wherever it is. */
static const unsigned ex_next[SN_EX_STATE__COUNT] = {
	[SN_EX_STATE_ROUTING] = ST(ROUTING) | ST(PARKED) | ST(DELAYED) | ST(ATTEMPT) | ST(LOCAL) | ST(DONE),
	[SN_EX_STATE_PARKED] = ST(ROUTING) | ST(LOCAL) | ST(DONE),
	[SN_EX_STATE_DELAYED] = ST(DELAYED) | ST(ATTEMPT) | ST(LOCAL) | ST(DONE),
	[SN_EX_STATE_ATTEMPT] = ST(ATTEMPT) | ST(RELAYING) | ST(LOCAL) | ST(DONE),
	/* LOCAL: an upstream that closed after a head none of which left */
	[SN_EX_STATE_RELAYING] = ST(LOCAL) | ST(DONE),
	[SN_EX_STATE_LOCAL] = ST(DONE),
	[SN_EX_STATE_DONE] = 0,
};
#undef ST

static const char *ex_state_str(enum sn_ex_state st)
{
	static const char *const names[SN_EX_STATE__COUNT] = {
		[SN_EX_STATE_ROUTING] = "routing", [SN_EX_STATE_PARKED] = "parked",
		[SN_EX_STATE_DELAYED] = "delayed", [SN_EX_STATE_ATTEMPT] = "attempt",
		[SN_EX_STATE_RELAYING] = "relaying", [SN_EX_STATE_LOCAL] = "local",
		[SN_EX_STATE_DONE] = "done",
	};
	return (unsigned)st < SN_EX_STATE__COUNT ? names[st] : "?";
}

/* Moves ex to `to`. A change ex_next does not list is a bug: it stops a
 * debug build, and is logged (and made anyway) in a release build. */
static void ex_set_state(struct sn_exchange *ex, enum sn_ex_state to)
{
	if ((unsigned)ex->state >= SN_EX_STATE__COUNT || !(ex_next[ex->state] & (1u << to))) {
		sn_log(SN_LOG_ERROR, "conn=%llu exchange: %s -> %s is not a transition; please report",
		       (unsigned long long)(ex->c ? ex->c->id : 0), ex_state_str(ex->state), ex_state_str(to));
		assert(!"exchange state transition");
	}
	ex->state = to;
}

static void ex_progress(struct sn_exchange *ex);
static void ex_finish(struct sn_exchange *ex);
static void ex_abort(struct sn_exchange *ex, const char *flag);
static void ex_attempt(struct sn_exchange *ex);
static void ex_tunnel(struct sn_exchange *ex);
static void ex_local(struct sn_exchange *ex, int status, const char *flag, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void ex_vlocal(struct sn_exchange *ex, int status, const char *flag, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));
static void ex_local_raw(struct sn_exchange *ex, int status, const char *flag, const char *body, size_t n);
static void ex_dispatch(struct sn_exchange *ex);
static void ex_connect(struct sn_exchange *ex);



/* ---- exchange allocation ---------------------------------------------- */

static struct sn_exchange *ex_alloc(struct sn_worker *w)
{
	struct sn_exchange *ex = w->free_exchanges;
	if (ex != NULL) {
		w->free_exchanges = ex->next_free;
		w->n_free_exchanges--;
	} else {
		ex = malloc(sizeof(*ex));
		if (ex == NULL)
			return NULL;
	}
	/* Zero the bookkeeping, not the two header arrays (6 KiB). */
	memset(ex, 0, offsetof(struct sn_exchange, req_hdrs));
	memset(&ex->resp, 0, sizeof(ex->resp));
	memset((char *)ex + offsetof(struct sn_exchange, route), 0,
	       sizeof(*ex) - offsetof(struct sn_exchange, route));
	ex->w = w;
	return ex;
}

static void ex_release(struct sn_worker *w, struct sn_exchange *ex)
{
	if (SN_UNLIKELY(ex->tap_cap != NULL)) {
		free(ex->tap_cap);
		ex->tap_cap = NULL;
	}
	if (w->n_free_exchanges < MAX_FREE_EXCHANGES) {
		ex->next_free = w->free_exchanges;
		w->free_exchanges = ex;
		w->n_free_exchanges++;
	} else {
		free(ex);
	}
}

void sn_exchange_free_cache(struct sn_worker *w)
{
	while (w->free_exchanges != NULL) {
		struct sn_exchange *ex = w->free_exchanges;
		w->free_exchanges = ex->next_free;
		free(ex);
	}
	w->n_free_exchanges = 0;
}

/* ---- helpers ---------------------------------------------------------- */
/* A random RFC 4122 version 4 UUID, formatted by hand (snprintf was 2 %
 * of the proxy's CPU in the benchmark profile). */
static void make_request_id(struct sn_worker *w, char out[40])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t a = sn_worker_random(w), b = sn_worker_random(w);
	unsigned char bytes[16];
	size_t o = 0;

	memcpy(bytes, &a, 8);
	memcpy(bytes + 8, &b, 8);
	bytes[6] = (unsigned char)((bytes[6] & 0x0f) | 0x40);
	bytes[8] = (unsigned char)((bytes[8] & 0x3f) | 0x80);
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[bytes[i] >> 4];
		out[o++] = hex[bytes[i] & 15];
	}
	out[o] = '\0';
}

static double elapsed_ms(uint64_t since_us)
{
	return (double)(sn_clock_us() - since_us) / 1000.0;
}

static int64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- the client's side: one HTTP/1.1 connection, or an HTTP/2 stream --- */

/* Request body bytes not yet sent upstream: the connection's input
 * (HTTP/1.1, framed as the client sent it) or the stream's body (HTTP/2,
 * framed as ex->req.body says). */
static struct sn_buf *ex_in(struct sn_exchange *ex)
{
	return ex->s != NULL ? sn__h2d_body(ex->s) : &ex->c->in;
}

/* n body bytes went upstream. */
static void ex_in_consume(struct sn_exchange *ex, size_t n)
{
	sn_buf_consume(ex_in(ex), n);
	if (ex->s != NULL)
		sn__h2d_consumed(ex->s, n);
}

/* Response bytes waiting in the client connection's own buffer (an
 * HTTP/1.1 head or local response); an HTTP/2 stream's go to its codec. */
static size_t ds_queued(const struct sn_exchange *ex)
{
	return ex->s != NULL ? 0 : sn_buf_len(&ex->c->out);
}

static int ds_can_write(const struct sn_exchange *ex)
{
	return ex->s != NULL || ex->c->can_write;
}

/* Response body bytes to the client: taken (>= 0; 0 when it can take
 * none now) or -1 when it is gone. HTTP/1.1 writes c->out first. */
static ssize_t ds_write(struct sn_exchange *ex, const char *p, size_t n)
{
	if (ex->s != NULL)
		return n > 0 ? sn__h2d_write(ex->s, p, n) : 0;
	return sn__dconn_write(ex->c, p, n);
}

/* ---- gRPC (the protocol's rules in grpc.c) ------------------------------- */

/* The call's grpc-status, once known: a trailers-only head's, or the
 * trailers' (HTTP/2 endpoint). */
static void grpc_note_status(struct sn_exchange *ex)
{
	struct sn_str v = { NULL, 0 };

	/* The head and trailers are the attempt's: read them before it goes. */
	if (!ex->grpc || ex->grpc_status[0] || ex->state != SN_EX_STATE_RELAYING || ex->u == NULL)
		return;
	if (!sn__field(ex->resp.headers, ex->resp.num_headers, "grpc-status", &v) && ex->u != NULL &&
	    ex->u->h2 != NULL) {
		size_t n;
		const struct sn_http_field *tr = sn__h2u_trailers(ex->u, &n);
		for (size_t i = 0; i < n; i++)
			if (sn_str_ieq_cstr(tr[i].name, "grpc-status"))
				v = tr[i].value;
	}
	if (sn__grpc_code(v) >= 0)
		snprintf(ex->grpc_status, sizeof(ex->grpc_status), "%.*s", (int)v.len, v.p);
}

/* ---- finishing: metrics, access log, reuse ---------------------------- */

static void ex_stop_timers(struct sn_exchange *ex)
{
	struct sn_loop *loop = &ex->w->loop;
	sn_timer_stop(loop, &ex->route_timer);
	sn_timer_stop(loop, &ex->try_timer);
	sn_timer_stop(loop, &ex->delay_timer);
}

/* Out of its host's queue of requests waiting for a connection. */
static void unpend(struct sn_exchange *ex)
{
	struct sn_host *h = ex->host;
	if (ex->pprev_pending == NULL)
		return;
	*ex->pprev_pending = ex->next_pending;
	if (ex->next_pending != NULL)
		ex->next_pending->pprev_pending = ex->pprev_pending;
	else
		h->pending_tail = ex->pprev_pending;
	h->n_pending--;
	ex->next_pending = NULL;
	ex->pprev_pending = NULL;
}

static void ex_drop_host(struct sn_exchange *ex)
{
	unpend(ex);
	if (ex->host != NULL) {
		ex->host->active--;
		ex->host = NULL;
	}
}

static void unpark(struct sn_exchange *ex)
{
	if (ex->pprev_parked == NULL)
		return;
	*ex->pprev_parked = ex->next_parked;
	if (ex->next_parked != NULL)
		ex->next_parked->pprev_parked = ex->pprev_parked;
	ex->next_parked = NULL;
	ex->pprev_parked = NULL;
}

/* The exchange is over as far as the client will know: the filters'
 * done hooks (metrics, the access log) see its summary, once. It runs
 * just before the last bytes of the response are written, so that a
 * client that reads its response and then scrapes /metrics sees the
 * request counted. resp_bytes: the response body size as it will be. */
static void ex_record(struct sn_exchange *ex, uint64_t resp_bytes)
{
	struct sn_dconn *c = ex->c;
	struct sn_fx_summary sum;

	if (ex->recorded)
		return;
	ex->recorded = 1;
	grpc_note_status(ex);
	memset(&sum, 0, sizeof(sum));
	sum.dir = c->dir;
	sum.req = &ex->req;
	sum.protocol = ex->s != NULL ? "HTTP/2" : ex->req.minor_version == 0 ? "HTTP/1.0" : "HTTP/1.1";
	sum.grpc = ex->grpc;
	sum.grpc_status = ex->grpc_status[0] ? ex->grpc_status : NULL;
	sum.status = ex->status;
	sum.flags = ex->flags ? ex->flags : "-";
	sum.cluster = ex->cluster;
	sum.ep = ex->ep;
	sum.route = ex->route;
	sum.attempts = ex->attempts;
	sum.request_id = ex->rid;
	sum.request_bytes = ex->req_body_bytes;
	sum.response_bytes = resp_bytes;
	sum.start_wall_us = ex->start_wall_us;
	sum.duration_ms = elapsed_ms(ex->start_us);
	sum.upstream_ms = ex->state == SN_EX_STATE_RELAYING ? ex->upstream_ms : -1.0;
	sum.secure = sn_xprt_has(&c->x, SN_XPRT_SECURE);
	sum.peer = c->peer;
	sum.peer_id = c->peer_id;
	unsigned dir = c->dir == SN_DIR_OUTBOUND ? SN_FILTER_OUTBOUND : SN_FILTER_INBOUND;
	for (unsigned i = 0; sn_filter_chain[i] != NULL; i++) {
		const struct sn_filter *f = sn_filter_chain[i];
		if ((f->dirs & dir) && f->done != NULL) {
			ex->filter_at = i;
			f->done(ex, &sum);
		}
	}
}

static void on_resume(struct sn_loop *loop, struct sn_task *t)
{
	struct sn_dconn *c = sn_container_of(t, struct sn_dconn, resume);
	if (!c->closing)
		sn__dconn_process(c);
}

static void ex_finish(struct sn_exchange *ex)
{
	struct sn_dconn *c = ex->c;
	struct sn_worker *w = ex->w;
	int keep = ex->req.keep_alive && !ex->close_after && ex->req_done && !c->draining &&
		   !w->draining && !c->eof;
	int req_done = ex->req_done;
	int local = ex->state == SN_EX_STATE_LOCAL;

	ex_stop_timers(ex);
	unpark(ex);
	grpc_note_status(ex);
	if (ex->u != NULL) {
		int reusable = ex->state == SN_EX_STATE_RELAYING && ex->resp.keep_alive && !ex->resp_until_close &&
			       ex->req_sent && ex->resp_classified_done && ex->resp_pending == 0;
		sn_uconn_release(w, ex->u, reusable);
		ex->u = NULL;
	}
	ex_drop_host(ex);
	ex_record(ex, ex->resp_body_bytes);
	if (ex->held)
		ex_in_consume(ex, ex->req.content_length);
	if (ex->snap != NULL)
		sn_snapshot_unref(ex->snap);
	sn_buf_release(&w->pool, &ex->head);
	sn_buf_release(&w->pool, &ex->up);
	free(ex->up_fields);
	ex->up_fields = NULL;
	ex_set_state(ex, SN_EX_STATE_DONE);
	if (ex->s != NULL) {
		/* HTTP/2: the stream (reset if its response is cut short);
		 * the connection goes on with its other streams. */
		struct sn_h2d_stream *s = ex->s;
		ex_release(w, ex);
		sn__h2d_ex_done(s);
		return;
	}
	c->ex = NULL;
	ex_release(w, ex);
	if (!keep) {
		/* Unread input (a refused body, a malformed request) must not
		 * turn into an RST that destroys the response we just sent. */
		int unread = !req_done || local;
		if (unread)
			sn__dconn_close_linger(c);
		else
			sn__dconn_close(c);
		return;
	}
	if (sn_buf_len(&c->in) == 0)
		sn_buf_release(&w->pool, &c->in);
	/* Next (pipelined) request: from the deferred phase, not from inside
	 * this callback chain. */
	sn_loop_defer(&w->loop, &c->resume, on_resume);
}

/* Aborts the exchange and the client connection (the response has started
 * and can't be replaced by an error). */
static void ex_abort(struct sn_exchange *ex, const char *flag)
{
	if (ex->flags == NULL)
		ex->flags = flag;
	ex->close_after = 1;
	grpc_note_status(ex);
	if (ex->u != NULL) {
		sn_uconn_release(ex->w, ex->u, 0);
		ex->u = NULL;
	}
	ex_finish(ex);
}

/* ---- local responses -------------------------------------------------- */

/* A proxy-made answer to a gRPC call: trailers-only (HTTP 200, grpc-status
 * and grpc-message, percent-encoded), with sinew-error as for any answer
 * of ours. */
static void ex_local_grpc(struct sn_exchange *ex, const char *body, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	char msg[3 * 1024];
	size_t m = 0;
	struct sn_http_field f[6];
	size_t nf = 0;
	int code = ex->grpc_answer ? ex->grpc_answer - 1 : sn__grpc_code_for(ex->status, ex->flags);

	while (n > 0 && body[n - 1] == '\n')
		n--;
	for (size_t i = 0; i < n && m + 3 < sizeof(msg); i++) {
		unsigned char b = (unsigned char)body[i];
		if (b >= 0x20 && b <= 0x7e && b != '%') {
			msg[m++] = (char)b;
		} else {
			msg[m++] = '%';
			msg[m++] = hex[b >> 4];
			msg[m++] = hex[b & 15];
		}
	}
	snprintf(ex->grpc_status, sizeof(ex->grpc_status), "%d", code);
	f[nf++] = (struct sn_http_field){ SN_STR_LIT("content-type"), SN_STR_LIT("application/grpc") };
	f[nf++] = (struct sn_http_field){ SN_STR_LIT("grpc-status"), sn_str_make(ex->grpc_status, strlen(ex->grpc_status)) };
	f[nf++] = (struct sn_http_field){ SN_STR_LIT("grpc-message"), sn_str_make(msg, m) };
	f[nf++] = (struct sn_http_field){ SN_STR_LIT("sinew-error"), sn_str_make(ex->flags, strlen(ex->flags)) };
	if (ex->rid.len)
		f[nf++] = (struct sn_http_field){ SN_STR_LIT("x-request-id"), ex->rid };
	ex->status = 200;
	struct sn_http_head h = { .status = 200, .fields = f, .n_fields = nf, .content_length = -1 };
	ex_record(ex, 0);
	ex->resp_head_sent = 1;
	ex->resp_classified_done = 1;
	ex->resp_pending = 0;
	if (sn__h2d_respond(ex->s, &h, 1) != 0)
		ex->close_after = 1;
	ex_finish(ex);
}

/* ex_local for an HTTP/2 stream: the whole answer goes to the codec at
 * once, and the exchange is over. */
static void ex_local_stream(struct sn_exchange *ex, const char *body, size_t n)
{
	struct sn_http_field f[4 + SN_FX_MAX_ANSWER_HEADERS];
	size_t nf = 0;
	char len[24];
	int head = ex->req.method.len == 4 && memcmp(ex->req.method.p, "HEAD", 4) == 0;

	if (ex->grpc) {
		ex_local_grpc(ex, body, n);
		return;
	}
	snprintf(len, sizeof(len), "%zu", n);
	f[nf++] = (struct sn_http_field){ SN_STR_LIT("sinew-error"), sn_str_make(ex->flags, strlen(ex->flags)) };
	const char *ctype = ex->answer_ctype ? ex->answer_ctype : "text/plain; charset=utf-8";
	ex->answer_ctype = NULL;
	f[nf++] = (struct sn_http_field){ SN_STR_LIT("content-type"), sn_str_make(ctype, strlen(ctype)) };
	f[nf++] = (struct sn_http_field){ SN_STR_LIT("content-length"), sn_str_make(len, strlen(len)) };
	if (ex->rid.len)
		f[nf++] = (struct sn_http_field){ SN_STR_LIT("x-request-id"), ex->rid };
	for (unsigned i = 0; i < ex->n_answer_hdr; i++)
		f[nf++] = (struct sn_http_field){ sn_str_make(ex->answer_hdr[i][0], strlen(ex->answer_hdr[i][0])),
						  sn_str_make(ex->answer_hdr[i][1], strlen(ex->answer_hdr[i][1])) };
	ex->n_answer_hdr = 0;
	struct sn_http_head h = { .status = ex->status, .fields = f, .n_fields = nf, .content_length = (int64_t)n };
	ex_record(ex, head ? 0 : n);   /* the body we send is the response body */
	ex->resp_head_sent = 1;
	ex->resp_classified_done = 1;
	ex->resp_pending = 0;
	if (sn__h2d_respond(ex->s, &h, head) != 0 ||
	    (!head && (sn__h2d_write(ex->s, body, n) != (ssize_t)n || sn__h2d_end(ex->s, NULL, 0) != 0)))
		ex->close_after = 1;
	sn_log(SN_LOG_DEBUG, "conn=%llu stream local response %d %s", (unsigned long long)ex->c->id, ex->status,
	       ex->flags);
	ex_finish(ex);
}

static void ex_local(struct sn_exchange *ex, int status, const char *flag, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ex_vlocal(ex, status, flag, fmt, ap);
	va_end(ap);
}

static void ex_vlocal(struct sn_exchange *ex, int status, const char *flag, const char *fmt, va_list ap)
{
	struct sn_worker *w = ex->w;
	char body[1024];
	int n;

	if (ex->resp_head_sent) {
		ex_abort(ex, flag);
		return;
	}
	ex_stop_timers(ex);
	if (ex->u != NULL) {
		sn_uconn_release(w, ex->u, 0);
		ex->u = NULL;
	}
	ex_drop_host(ex);
	n = vsnprintf(body, sizeof(body) - 1, fmt, ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(body) - 2)
		n = (int)sizeof(body) - 2;
	body[n++] = '\n';
	ex_local_raw(ex, status, flag, body, (size_t)n);
}

/* The local answer's head and body (ex_vlocal's text, or a filter's
 * own body with ex->answer_ctype). */
static void ex_local_raw(struct sn_exchange *ex, int status, const char *flag, const char *body, size_t n)
{
	struct sn_dconn *c = ex->c;
	struct sn_worker *w = ex->w;
	const char *ctype = ex->answer_ctype ? ex->answer_ctype : "text/plain; charset=utf-8";

	ex_set_state(ex, SN_EX_STATE_LOCAL);
	ex->status = status;
	ex->flags = flag;
	if (ex->s != NULL) {
		ex_local_stream(ex, body, n);
		return;
	}
	/* The rest of an unread request body would be taken for the next
	 * request: close instead. */
	if (!ex->req_done || status == 400 || status == 408 || status == 414 || status == 431 ||
	    status == 501 || status == 505)
		ex->close_after = 1;
	sn_buf_release(&w->pool, &c->out);
	if (sn_buf_reserve(&w->pool, &c->out, 512 + SN_FX_MAX_ANSWER_HEADERS * 256 + n, 4096) != 0) {
		ex_abort(ex, flag);
		return;
	}
	struct sn_h1_writer wr;
	sn_h1w_init(&wr, c->out.base + c->out.end, sn_buf_room(&c->out));
	sn_h1w_status_line(&wr, status, NULL);
	sn_h1w_header_cstr(&wr, "sinew-error", flag);
	sn_h1w_header_cstr(&wr, "content-type", ctype);
	ex->answer_ctype = NULL;
	sn_h1w_header_u64(&wr, "content-length", (uint64_t)n);
	if (ex->close_after || !ex->req.keep_alive || w->draining)
		sn_h1w_header_cstr(&wr, "connection", "close");
	else if (ex->req.minor_version == 0)
		sn_h1w_header_cstr(&wr, "connection", "keep-alive");
	if (ex->rid.len)
		sn_h1w_header(&wr, SN_STR_LIT("x-request-id"), ex->rid);
	for (unsigned i = 0; i < ex->n_answer_hdr; i++)
		sn_h1w_header_cstr(&wr, ex->answer_hdr[i][0], ex->answer_hdr[i][1]);
	ex->n_answer_hdr = 0;
	sn_h1w_end(&wr);
	int head = ex->req.method.len == 4 && memcmp(ex->req.method.p, "HEAD", 4) == 0;
	if (!head)
		sn_h1w_raw(&wr, body, n);
	if (wr.overflow) {
		ex_abort(ex, flag);
		return;
	}
	c->out.end += wr.len;
	ex_record(ex, head ? 0 : n);   /* the body we send is the response body */
	ex->resp_head_sent = 1;
	ex->resp_classified_done = 1;
	ex->resp_pending = 0;
	sn_log(SN_LOG_DEBUG, "conn=%llu local response %d %s", (unsigned long long)c->id, status, flag);
	ex_progress(ex);
}

/* ---- retries ---------------------------------------------------------- */

static int replayable(const struct sn_exchange *ex)
{
	return !ex->streamed && !ex->resp_head_sent;
}

static int policy_allows(const struct sn_retry_policy *rp, enum sn_attempt_failure f, int status)
{
	uint32_t on = rp->retry_on;
	if (status != 0) {
		if ((on & SN_RETRY_5XX) && status >= 500)
			return 1;
		if ((on & SN_RETRY_GATEWAY_ERROR) && (status == 502 || status == 503 || status == 504))
			return 1;
		if (on & SN_RETRY_RETRIABLE_CODES)
			for (size_t i = 0; i < rp->n_status_codes; i++)
				if (rp->status_codes[i] == status)
					return 1;
		return 0;
	}
	switch (f) {
	case SN_FAIL_CONNECT:
		return (on & (SN_RETRY_CONNECT_FAILURE | SN_RETRY_5XX | SN_RETRY_GATEWAY_ERROR)) != 0;
	case SN_FAIL_RESET:
		return (on & (SN_RETRY_RESET | SN_RETRY_5XX | SN_RETRY_GATEWAY_ERROR)) != 0;
	case SN_FAIL_TIMEOUT:
		return (on & (SN_RETRY_5XX | SN_RETRY_GATEWAY_ERROR | SN_RETRY_RESET)) != 0;
	case SN_FAIL_PROTOCOL:
		return (on & SN_RETRY_5XX) != 0;
	case SN_FAIL_GRPC:
		return 1;   /* accept_head checked the policy */
	}
	return 0;
}

/* Default for a route without a VirtualService or an inbound request:
 * connection-level failures only (DESIGN.md §6). */
static const struct sn_retry_policy default_retry = {
	.attempts = 2,
	.retry_on = SN_RETRY_CONNECT_FAILURE | SN_RETRY_REFUSED_STREAM,
};

static const struct sn_retry_policy *retry_policy(const struct sn_exchange *ex)
{
	return ex->route != NULL ? &ex->route->retry : &default_retry;
}

/* Resets per-attempt state so the request can be sent again. */
static void ex_reset_attempt(struct sn_exchange *ex)
{
	struct sn_loop *loop = &ex->w->loop;
	sn_timer_stop(loop, &ex->try_timer);
	ex->up_written = 0;
	ex->held_sent = 0;
	ex->req_sent = 0;
	ex_drop_host(ex);
}

/* An attempt failed before any response reached the client. Retries if
 * policy, replayability and the budget allow; else answers with an error. */
/* Outlier detection hears how the attempt on ex->ep went: a response
 * status, or 0 for a failure of local origin. */
static void ex_outlier(struct sn_exchange *ex, int status)
{
	const struct sn_cluster *cl = ex->cluster;
	if (!cl->outlier.enabled || ex->ep == NULL || ex->ep < cl->endpoints || ex->ep >= cl->endpoints + cl->n_endpoints)
		return;
	sn_outlier_report(ex->w, cl, sn_worker_cluster_state(ex->w, cl), (size_t)(ex->ep - cl->endpoints), status);
}

static void ex_attempt_failed(struct sn_exchange *ex, enum sn_attempt_failure f, int status)
{
	struct sn_worker *w = ex->w;
	const struct sn_retry_policy *rp = retry_policy(ex);
	int was_reused = ex->u != NULL && ex->u->reused;
	int got_bytes = ex->u != NULL && sn_buf_len(&ex->u->in) > 0;

	/* A stale pooled connection is not the endpoint's failure. */
	if (f == SN_FAIL_PROTOCOL)
		ex_outlier(ex, 502);
	else if (f != SN_FAIL_GRPC && !(f == SN_FAIL_RESET && was_reused && !got_bytes))
		ex_outlier(ex, 0);

	if (f == SN_FAIL_CONNECT) {
		sn_metrics_add(w->metrics, SN_CTR_UPSTREAM_CX_CONNECT_FAIL, 1);
		if (ex->host != NULL)
			sn_lb_observe(ex->host, elapsed_ms(ex->try_start_us), 1);
	}
	if (ex->u != NULL) {
		sn_uconn_release(w, ex->u, 0);
		ex->u = NULL;
	}
	ex->prev_host = ex->host;
	/* A pooled connection the server had already closed: not the
	 * endpoint's fault, and not a retry in the policy's sense. */
	if (f == SN_FAIL_RESET && was_reused && !got_bytes && replayable(ex) &&
	    ex->transparent_retries < MAX_TRANSPARENT_RETRIES) {
		ex->transparent_retries++;
		ex->attempts--;
		ex->force_new = ex->transparent_retries == MAX_TRANSPARENT_RETRIES;
		ex_reset_attempt(ex);
		ex_attempt(ex);
		return;
	}
	if (replayable(ex) && ex->attempts <= rp->attempts && policy_allows(rp, f, status)) {
		if (sn_worker_retry_allowed(w)) {
			sn_metrics_add(w->metrics, SN_CTR_UPSTREAM_RQ_RETRY, 1);
			sn_log(SN_LOG_DEBUG, "conn=%llu retry %u after %s", (unsigned long long)ex->c->id,
			       ex->attempts, status ? "status" : "failure");
			ex_reset_attempt(ex);
			ex_attempt(ex);
			return;
		}
		sn_metrics_add(w->metrics, SN_CTR_UPSTREAM_RQ_RETRY_BUDGET_EXHAUSTED, 1);
	}
	const char *addr = ex->ep && ex->ep->address ? ex->ep->address : "?";
	const char *cname = ex->cluster ? ex->cluster->name : "?";
	switch (f) {
	case SN_FAIL_CONNECT:
		if (ex->conn_err[0]) {
			ex_local(ex, 503, "upstream_connect_failure",
				 "sinew: could not connect to %s (cluster %s) after %u attempt(s): %s", addr, cname,
				 ex->attempts, ex->conn_err);
			break;
		}
		ex_local(ex, 503, "upstream_connect_failure",
			 "sinew: could not connect to %s (cluster %s) after %u attempt(s); is the service listening there?",
			 addr, cname, ex->attempts);
		break;
	case SN_FAIL_TIMEOUT:
		ex_local(ex, 504, "upstream_timeout",
			 "sinew: %s (cluster %s) did not answer within the per-try timeout", addr, cname);
		break;
	case SN_FAIL_PROTOCOL:
		ex_local(ex, 502, "upstream_protocol_error",
			 "sinew: %s (cluster %s) sent a malformed HTTP/1.1 response head", addr, cname);
		break;
	case SN_FAIL_GRPC:
		ex_local(ex, 503, "upstream_retries_exhausted",
			 "sinew: %s (cluster %s) kept answering a gRPC status the route retries on; retry budget spent",
			 addr, cname);
		break;
	case SN_FAIL_RESET:
	default:
		ex_local(ex, 502, "upstream_reset",
			 "sinew: %s (cluster %s) closed the connection before a complete response", addr, cname);
		break;
	}
}

/* ---- timers ----------------------------------------------------------- */

static void on_route_timeout(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_exchange *ex = sn_container_of(t, struct sn_exchange, route_timer);
	if (ex->resp_head_sent) {
		ex_abort(ex, "upstream_timeout");
		return;
	}
	ex_local(ex, 504, "upstream_timeout", "sinew: no response from %s within the %s",
		 ex->cluster ? ex->cluster->name : "upstream",
		 ex->grpc_deadline ? "call's grpc-timeout" : "route timeout");
}

static void on_try_timeout(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_exchange *ex = sn_container_of(t, struct sn_exchange, try_timer);
	if (ex->state == SN_EX_STATE_RELAYING)
		return;
	ex_attempt_failed(ex, SN_FAIL_TIMEOUT, 0);
}

void sn_exchange_on_connect_timeout(struct sn_exchange *ex)
{
	ex_attempt_failed(ex, SN_FAIL_CONNECT, 0);
}

/* ---- dispatch ---------------------------------------------------------- */

/* The request's consistentHash key. An httpCookie with a ttl that the
 * request does not carry is made here, as Envoy does: a random value
 * hashed now and set on the response, so the client's next requests
 * carry it and land on the same endpoint. */
static int hash_key(struct sn_exchange *ex, uint64_t *key)
{
	const struct sn_hash_policy *h = &ex->cluster->hash;
	if (sn_lb_hash_key(h, &ex->req, ex->c->peer, key))
		return 1;
	if (h->on != SN_HASH_COOKIE || h->cookie_ttl_s == 0)
		return 0;
	if (ex->set_cookie[0] == '\0') {
		char v[17];
		snprintf(v, sizeof(v), "%016llx", (unsigned long long)sn_worker_random(ex->w));
		snprintf(ex->set_cookie, sizeof(ex->set_cookie), "%s=%s; Max-Age=%u%s%s; HttpOnly", h->name, v,
			 h->cookie_ttl_s, h->cookie_path ? "; Path=" : "", h->cookie_path ? h->cookie_path : "");
	}
	const char *v = strchr(ex->set_cookie, '=') + 1;
	*key = sn_hash64(v, 16, 0);
	return 1;
}

static void ex_attempt(struct sn_exchange *ex)
{
	struct sn_worker *w = ex->w;
	const struct sn_cluster *cl = ex->cluster;
	struct sn_cluster_state *cs = sn_worker_cluster_state(w, cl);
	int idx = -1;

	ex_set_state(ex, SN_EX_STATE_ATTEMPT);
	if (cl->n_endpoints == 0) {
		const struct sn_service *svc = ex->snap && cl->service ? sn_snapshot_find_service(ex->snap, cl->service)
								     : NULL;
		if (svc != NULL && svc->service_entry != NULL)
			ex_local(ex, 503, "no_healthy_upstream",
				 "sinew: cluster %s has no endpoints: ServiceEntry %s (resolution %s) lists none Sinew "
				 "can reach; list spec.endpoints by address (an IP, or localhost), or, for resolution DNS "
				 "without endpoints, use a host that is an IP or localhost (DNS names are not resolved "
				 "yet)", cl->name, svc->service_entry, svc->resolution ? svc->resolution : "?");
		else
			ex_local(ex, 503, "no_healthy_upstream",
				 "sinew: cluster %s has no endpoints; register a WorkloadEntry whose labels match the "
				 "Service %s selector", cl->name, cl->service_name ? cl->service_name : "");
		return;
	}
	uint64_t key;
	if (cs != NULL && (cs->ring != NULL || cs->maglev != NULL) && hash_key(ex, &key)) {
		idx = sn_lb_hash_pick(w, cl, cs, key);   /* the same endpoint for the same key, retries too */
	} else {
		for (int tries = 0; tries < 3; tries++) {
			idx = cs != NULL ? sn_lb_pick(w, cl, cs) : (int)(sn_worker_random(w) % cl->n_endpoints);
			struct sn_host *h = cs != NULL ? cs->hosts[idx] : NULL;
			/* Prefer a different endpoint than the one that just failed. */
			if (h == NULL || h != ex->prev_host || cl->n_endpoints == 1)
				break;
		}
	}
	ex->ep = &cl->endpoints[idx];
	struct sn_host *host = cs != NULL ? cs->hosts[idx] : NULL;
	if (host == NULL)
		host = sn_worker_host(w, (const struct sockaddr *)&ex->ep->addr, ex->ep->addr_len);
	if (host == NULL) {
		ex_local(ex, 503, "overflow", "sinew: too many distinct upstream endpoints");
		return;
	}
	ex->host = host;
	host->active++;
	ex->attempts++;
	ex_connect(ex);
}

/* The attempt's connection to ex->host: a pooled or new one, or, at the
 * host's connection limit, a place in its queue (DestinationRule
 * http1MaxPendingRequests, default 1024, as Envoy's): the request waits
 * for a connection to close or go idle, its route timeout running. Past
 * the queue: 503 overflow. */
static void ex_connect(struct sn_exchange *ex)
{
	struct sn_worker *w = ex->w;
	const struct sn_cluster *cl = ex->cluster;
	struct sn_host *host = ex->host;
	struct sn_uconn *u = NULL;

	ex->conn_err[0] = '\0';
	ex->try_start_us = sn_clock_us();
	char tls_id[SN_SPIFFE_ID_MAX];
	int mtls = sn_upstream_mtls(w, cl, ex->ep, tls_id, sizeof(tls_id));
	if (mtls == SN_EAGAIN) {
		ex_local(ex, 503, "no_identity", "sinew: this proxy has no certificate from sinewd yet; mutual TLS "
			 "to %s is not possible", ex->ep->address);
		return;
	}
	int origin = mtls == 0 ? sn_upstream_origin(w, cl, tls_id, sizeof(tls_id)) : 0;
	if (origin < 0) {
		ex_local(ex, 503, "tls_unavailable", "sinew: the TLS settings of %s (DestinationRule tls.mode %s) did "
			 "not load; see the proxy's log", cl->name, cl->tls_mode == SN_CLUSTER_TLS_MUTUAL ? "MUTUAL" : "SIMPLE");
		return;
	}
	const char *want_id = mtls == 1 || origin == 1 ? tls_id : NULL;
	int r;
	if (ex->up_h2) {
		struct sn_h2u_request rq = {
			.head = &ex->up_head,
			.end = ex->req.body == SN_H1_BODY_NONE ||
			       (ex->req.body == SN_H1_BODY_LENGTH && ex->req.content_length == 0),
			.te_trailers = ex->up_te,
			.frame_chunks = ex->s == NULL && ex->req.minor_version == 1,
		};
		r = sn__h2u_acquire(w, host, cl, ex, want_id, &rq, &u);
	} else {
		r = sn_uconn_acquire(w, host, cl, ex, ex->force_new, want_id, &u);
	}
	if (r == SN_ELIMIT) {
		uint32_t max_pending = cl->max_pending ? cl->max_pending : DEFAULT_MAX_PENDING;
		if (host->n_pending < max_pending) {
			if (host->pending_tail == NULL)
				host->pending_tail = &host->pending;
			ex->next_pending = NULL;
			ex->pprev_pending = host->pending_tail;
			*host->pending_tail = ex;
			host->pending_tail = &ex->next_pending;
			host->n_pending++;
			sn_metrics_add(w->metrics, SN_CTR_UPSTREAM_RQ_PENDING, 1);
			return;
		}
		sn_metrics_add(w->metrics, SN_CTR_OVERFLOW, 1);
		ex_local(ex, 503, "overflow",
			 "sinew: connection limit reached for %s (cluster %s) and %u requests already wait for a "
			 "connection; raise connectionPool.tcp.maxConnections or http1MaxPendingRequests",
			 ex->ep->address, cl->name, host->n_pending);
		return;
	}
	if (r != 0) {
		ex_attempt_failed(ex, SN_FAIL_CONNECT, 0);
		return;
	}
	ex->u = u;
	if (ex->route != NULL && ex->route->retry.per_try_timeout_ms)
		sn_timer_start(&w->loop, &ex->try_timer, ex->route->retry.per_try_timeout_ms, on_try_timeout);
	ex_progress(ex);
}

/* Requests waiting for a connection go on, one per connection freed, in
 * the order they came; a deferred pass, never inside the caller that
 * freed the connection (it may be an exchange ending). */
static void on_wake(struct sn_loop *loop, struct sn_task *t)
{
	struct sn_worker *w = sn_container_of(t, struct sn_worker, wake_task);
	(void)loop;
	w->wake_scheduled = 0;
	while (w->wake_hosts != NULL) {
		struct sn_host *h = w->wake_hosts;
		w->wake_hosts = h->next_wake;
		h->on_wake_list = 0;
		uint32_t n = h->freed;
		h->freed = 0;
		while (n-- > 0 && h->pending != NULL) {
			struct sn_exchange *ex = h->pending;
			unpend(ex);
			if (ex->state == SN_EX_STATE_ATTEMPT && ex->u == NULL)
				ex_connect(ex);
		}
	}
}

void sn__host_freed(struct sn_worker *w, struct sn_host *host)
{
	if (host->pending == NULL)
		return;
	host->freed++;
	if (!host->on_wake_list) {
		host->on_wake_list = 1;
		host->next_wake = w->wake_hosts;
		w->wake_hosts = host;
	}
	if (!w->wake_scheduled) {
		w->wake_scheduled = 1;
		sn_loop_defer(&w->loop, &w->wake_task, on_wake);
	}
}

/* Inbound: is the app spoken to in HTTP/2? As its own Service's port
 * declares (http2, grpc, grpc-web: yes; http or any other: no) -- the
 * port whose target is the app's, or the Service's only port (file mode,
 * where the app's port comes from a WorkloadEntry); a port not declared
 * gets what the client chose (Envoy's USE_DOWNSTREAM_PROTOCOL, which
 * Istio gives the ports it sniffs): HTTP/2 from a peer proxy (ALPN
 * sinew/h2) or a plaintext h2c client. */
static int inbound_app_h2(const struct sn_exchange *ex)
{
	struct sn_worker *w = ex->w;
	const struct sn_proxy *p = w->proxy;
	const struct sn_snapshot *s = w->snap;   /* inbound exchanges hold none */
	uint16_t port = ex->c->app_port;
	if (port == 0 && p->opt.app.ss.ss_family == AF_INET)
		port = ntohs(((const struct sockaddr_in *)&p->opt.app.ss)->sin_port);
	if (s == NULL || s != w->app_proto_snap || port != w->app_proto_port) {
		/* Once per snapshot and port, not per request (the worker
		 * forgets it when its snapshot changes). */
		const struct sn_service_port *sp = NULL;
		const struct sn_service *svc = s && p->own_service_fqdn[0] ?
						       sn_snapshot_find_service(s, p->own_service_fqdn) : NULL;
		for (size_t i = 0; svc != NULL && sp == NULL && i < svc->n_ports; i++)
			if ((svc->ports[i].target_port ? svc->ports[i].target_port : svc->ports[i].port) == port)
				sp = &svc->ports[i];
		if (sp == NULL && svc != NULL && svc->n_ports == 1)
			sp = &svc->ports[0];
		w->app_proto = -1;
		if (sp != NULL && sp->protocol != NULL && strcmp(sp->protocol, "auto") != 0 &&
		    sp->default_cluster < s->n_clusters)
			w->app_proto = s->clusters[sp->default_cluster].http2;
		w->app_proto_snap = s;
		w->app_proto_port = port;
	}
	return w->app_proto >= 0 ? w->app_proto : ex->c->mesh_h2 || ex->c->h2 != NULL;
}

static void ex_dispatch(struct sn_exchange *ex)
{
	struct sn_worker *w = ex->w;

	/* HTTP/2 to the endpoint when its port says so (http2, grpc,
	 * grpc-web); inbound, as inbound_app_h2 says. */
	ex->up_h2 = ex->c->dir == SN_DIR_INBOUND ? inbound_app_h2(ex) : ex->cluster->http2;
	if (ex->up_h2 && ex->s != NULL && ex->req.upgrade) {   /* extended CONNECT onwards: docs/internals/http2.md */
		ex_local(ex, 501, "not_implemented", "sinew: WebSocket over HTTP/2 to %s, spoken to in HTTP/2, is not "
			 "supported yet", ex->cluster->name);
		return;
	}
	if ((ex->up_h2 ? sn__ex_build_upstream_h2(ex) : sn__ex_build_upstream_head(ex)) != 0) {
		ex_local(ex, 431, "header_too_large", "sinew: request head too large to forward");
		return;
	}
	if (ex->req.body == SN_H1_BODY_NONE) {
		ex->req_done = 1;
		ex->req_classified_done = 1;
	} else if (ex->req.body == SN_H1_BODY_LENGTH) {
		ex->req_remaining = ex->req.content_length;
		if (ex->req.content_length <= sn_buf_len(ex_in(ex))) {
			/* The whole body is here: send it without consuming so a
			 * retry can send it again. */
			ex->held = 1;
			ex->req_done = 1;
			ex->req_classified_done = 1;
			ex->req_body_bytes = ex->req.content_length;
		}
	} else if (ex->s != NULL) {
		/* HTTP/2 client, length unknown: data as it comes to an HTTP/2
		 * endpoint, chunks to an HTTP/1.1 one. */
		sn_h1_chunked_init(&ex->req_chunked);
		if (ex->up_h2)
			ex->req_raw = 1;
		else if (sn__h2d_frame_chunks(ex->s) != 0) {
			ex_local(ex, 503, "overflow", "sinew: out of memory");
			return;
		}
	} else {
		sn_h1_chunked_init(&ex->req_chunked);
		ex->req_dechunk = ex->up_h2;
		/* Validate the framing that came with the head before anything
		 * goes upstream: a malformed chunked body must never reach the
		 * backend, not even as a head followed by a reset. */
		struct sn_h1_chunked probe = ex->req_chunked;
		int done = 0;
		struct sn_buf *in = ex_in(ex);
		if (sn_buf_len(in) > 0 && sn_h1_chunked_scan(&probe, sn_buf_data(in), sn_buf_len(in), &done) < 0) {
			ex_local(ex, 400, "bad_request", "sinew: malformed chunked request body");
			return;
		}
	}
	/* The route's timeout; a gRPC call's own deadline (grpc-timeout) when
	 * it is sooner. */
	int64_t timeout = ex->route != NULL ? ex->route->timeout_ms : 0;
	int64_t gt = ex->grpc ? sn__grpc_timeout_ms(&ex->req) : -1;
	if (gt >= 0 && (timeout == 0 || gt < timeout)) {
		timeout = gt > 0 ? gt : 1;
		ex->grpc_deadline = 1;
	}
	if (timeout > 0)
		sn_timer_start(&w->loop, &ex->route_timer, (uint64_t)timeout, on_route_timeout);
	ex_attempt(ex);
}

/* ---- the filter chain (filter.h) -------------------------------------- */

/* Runs the request_head hooks from the current filter on; when every one
 * said go on, the request goes upstream. */
static void ex_filters(struct sn_exchange *ex)
{
	unsigned dir = ex->c->dir == SN_DIR_OUTBOUND ? SN_FILTER_OUTBOUND : SN_FILTER_INBOUND;

	for (; sn_filter_chain[ex->filter_at] != NULL; ex->filter_at++) {
		const struct sn_filter *f = sn_filter_chain[ex->filter_at];
		if (!(f->dirs & dir) || f->request_head == NULL)
			continue;
		enum sn_filter_verdict v = f->request_head(ex);
		if (v != SN_FILTER_NEXT)
			return;   /* answered, or paused: sn_fx_pause resumes here */
	}
	ex_dispatch(ex);
}

static void on_filter_pause(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_exchange *ex = sn_container_of(t, struct sn_exchange, delay_timer);
	(void)loop;
	ex->wait_body = 0;   /* a wait for the body ran out: the hook sees it still incomplete */
	ex_filters(ex);
}

struct sn_worker *sn_fx_worker(const struct sn_exchange *ex)
{
	return ex->w;
}

const struct sn_h1_request *sn_fx_request(const struct sn_exchange *ex)
{
	return &ex->req;
}

const struct sn_http_route *sn_fx_route(const struct sn_exchange *ex)
{
	return ex->route;
}

const char *sn_fx_peer(const struct sn_exchange *ex)
{
	return ex->c->peer;
}

const char *sn_fx_peer_id(const struct sn_exchange *ex)
{
	return ex->c->peer_id;
}

void sn_fx_answer_header(struct sn_exchange *ex, const char *name, const char *value)
{
	if (ex->n_answer_hdr < SN_FX_MAX_ANSWER_HEADERS) {
		ex->answer_hdr[ex->n_answer_hdr][0] = name;
		ex->answer_hdr[ex->n_answer_hdr++][1] = value;
	}
}

void sn_fx_set_request_auth(struct sn_exchange *ex, struct sn_str principal, const struct sn_jwt_claims *claims)
{
	ex->jwt_principal = principal;
	ex->jwt_claims = claims;
}

void sn_fx_request_auth(const struct sn_exchange *ex, struct sn_str *principal, const struct sn_jwt_claims **claims)
{
	*principal = ex->jwt_principal;
	*claims = ex->jwt_claims;
}

const struct sn_snapshot *sn_fx_snapshot(const struct sn_exchange *ex)
{
	return ex->snap;
}

struct sn_trace_ctx *sn_fx_trace(struct sn_exchange *ex)
{
	return &ex->trace;
}

void sn_fx_trace_send(struct sn_exchange *ex)
{
	ex->n_trace_fields = ex->trace.active ? (unsigned)sn_trace_fields(&ex->trace, ex->trace_buf, ex->trace_fields) : 0;
}

struct sn_str sn_fx_request_id(const struct sn_exchange *ex)
{
	return ex->rid;
}

enum sn_direction sn_fx_direction(const struct sn_exchange *ex)
{
	return ex->c->dir;
}

struct sn_tap_capture *sn_fx_tap_capture(struct sn_exchange *ex)
{
	if (ex->tap_cap == NULL)
		ex->tap_cap = calloc(1, sizeof(*ex->tap_cap));
	return ex->tap_cap;
}

const struct sn_tap_capture *sn_fx_tap_captured(const struct sn_exchange *ex)
{
	return ex->tap_cap;
}

int sn_fx_request_body(struct sn_exchange *ex, const char **p, size_t *n)
{
	*p = NULL;
	*n = 0;
	if (ex->req.body == SN_H1_BODY_NONE)
		return 1;
	struct sn_buf *in = ex_in(ex);
	if (ex->req.body != SN_H1_BODY_LENGTH || in == NULL || ex->req.content_length > sn_buf_len(in))
		return 0;
	*p = sn_buf_data(in);
	*n = (size_t)ex->req.content_length;
	return 1;
}

const char *sn_fx_protocol(const struct sn_exchange *ex)
{
	return ex->s != NULL ? "HTTP/2" : ex->req.minor_version == 0 ? "HTTP/1.0" : "HTTP/1.1";
}

void sn_fx_local(const struct sn_exchange *ex, char *buf, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	buf[0] = '\0';
	if (ex->c->x.fd >= 0 && getsockname(ex->c->x.fd, (struct sockaddr *)&ss, &len) == 0)
		sn_addr_format((const struct sockaddr *)&ss, buf, size);
}

uint16_t sn_fx_app_port(const struct sn_exchange *ex)
{
	return ex->c->app_port;
}

uint64_t sn_fx_conn_id(const struct sn_exchange *ex)
{
	return ex->c->id;
}

uint64_t *sn_fx_state(struct sn_exchange *ex)
{
	return &ex->fstate[ex->filter_at < SN_FILTER_MAX ? ex->filter_at : SN_FILTER_MAX - 1];
}

void sn_fx_answer(struct sn_exchange *ex, int status, const char *flag, const char *fmt, ...)
{
	va_list ap;

	/* A request without a body keeps its connection. */
	if (ex->req.body == SN_H1_BODY_NONE) {
		ex->req_done = 1;
		ex->req_classified_done = 1;
	}
	va_start(ap, fmt);
	ex_vlocal(ex, status, flag, fmt, ap);
	va_end(ap);
}

int sn_fx_header_ops(struct sn_exchange *ex, const struct sn_header_ops *request, const struct sn_header_ops *response)
{
	int empty_req = request == NULL || (!request->n_set && !request->n_add && !request->n_remove);
	int empty_resp = response == NULL || (!response->n_set && !response->n_add && !response->n_remove);

	if ((!empty_req && ex->n_req_ops == SN_FX_MAX_OPS) || (!empty_resp && ex->n_resp_ops == SN_FX_MAX_OPS))
		return SN_ELIMIT;
	if (!empty_req)
		ex->req_ops[ex->n_req_ops++] = request;
	if (!empty_resp)
		ex->resp_ops[ex->n_resp_ops++] = response;
	return 0;
}

void sn_fx_rewrite(struct sn_exchange *ex, const char *authority, const char *uri)
{
	if (authority != NULL)
		ex->rw_authority = authority;
	if (uri != NULL)
		ex->rw_uri = uri;
}

const struct sn_route_dest *sn_fx_destination(const struct sn_exchange *ex)
{
	return ex->dest;
}

void sn_fx_answer_grpc(struct sn_exchange *ex, int grpc_status, const char *flag, const char *fmt, ...)
{
	va_list ap;

	if (ex->req.body == SN_H1_BODY_NONE) {
		ex->req_done = 1;
		ex->req_classified_done = 1;
	}
	ex->grpc_answer = grpc_status + 1;
	va_start(ap, fmt);
	ex_vlocal(ex, sn__grpc_http_status(grpc_status), flag, fmt, ap);
	va_end(ap);
}

void sn_fx_pause(struct sn_exchange *ex, uint32_t ms)
{
	ex_set_state(ex, SN_EX_STATE_DELAYED);
	sn_timer_start(&ex->w->loop, &ex->delay_timer, ms, on_filter_pause);
}

void sn_fx_resume(struct sn_exchange *ex)
{
	if (ex->state != SN_EX_STATE_DELAYED || ex->wait_body)
		return;
	sn_timer_stop(&ex->w->loop, &ex->delay_timer);
	ex_filters(ex);
}

void sn_fx_answer_body(struct sn_exchange *ex, int status, const char *flag, const char *ctype, const char *body,
		       size_t n)
{
	if (ex->req.body == SN_H1_BODY_NONE) {
		ex->req_done = 1;
		ex->req_classified_done = 1;
	}
	if (ex->resp_head_sent) {
		ex_abort(ex, flag);
		return;
	}
	ex_stop_timers(ex);
	if (ex->u != NULL) {
		sn_uconn_release(ex->w, ex->u, 0);
		ex->u = NULL;
	}
	ex_drop_host(ex);
	ex->answer_ctype = ctype;
	ex_local_raw(ex, status, flag, body, n);
}

static int body_complete(struct sn_exchange *ex)
{
	struct sn_buf *in = ex_in(ex);
	return ex->req.body == SN_H1_BODY_NONE ||
	       (ex->req.body == SN_H1_BODY_LENGTH && in != NULL && ex->req.content_length <= sn_buf_len(in));
}

int sn_fx_wait_body(struct sn_exchange *ex, size_t max, uint32_t ms)
{
	if (body_complete(ex))
		return 1;
	/* Only a Content-Length body that fits the buffer it arrives in. */
	if (ex->req.body != SN_H1_BODY_LENGTH || ex->req.content_length > max ||
	    (ex->s == NULL && ex->req.content_length > sn__in_cap(ex->w)))
		return -1;
	ex->wait_body = 1;
	sn_fx_pause(ex, ms);
	return 0;
}

/* Body bytes came while a filter waits for all of them: its hook runs
 * again once they are all here. */
static void ex_body_progress(struct sn_exchange *ex)
{
	if (ex->s == NULL)
		(void)sn__dconn_read(ex->c);
	if (!body_complete(ex))
		return;
	ex->wait_body = 0;
	sn_timer_stop(&ex->w->loop, &ex->delay_timer);
	ex_filters(ex);
}

static void ex_route(struct sn_exchange *ex);

/* A rule's redirect (Istio's HTTPRedirect, Envoy's meaning): Location is
 * SCHEME://HOST[:PORT]PATH[?QUERY] -- the scheme, host and path from the
 * rule where it gives them, else the request's; the port as given, or
 * the request's (FROM_REQUEST_PORT), or none (FROM_PROTOCOL_DEFAULT); the
 * request's query unless the rule's uri has one of its own. */
static void ex_redirect(struct sn_exchange *ex, const struct sn_redirect *r)
{
	const struct sn_h1_request *rq = &ex->req;
	struct sn_str auth = r->authority ? sn_str_make(r->authority, strlen(r->authority)) : rq->authority;
	const char *colon = auth.len && auth.p[0] != '[' ? memchr(auth.p, ':', auth.len) : NULL;
	size_t hl = colon ? (size_t)(colon - auth.p) : auth.len;
	char port[8] = "";
	const char *rcolon = rq->authority.len ? memchr(rq->authority.p, ':', rq->authority.len) : NULL;
	if (r->port)
		snprintf(port, sizeof(port), ":%u", r->port);
	else if (r->derive_port == 2 && rcolon != NULL)
		snprintf(port, sizeof(port), ":%.*s",
			 (int)SN_MIN((size_t)5, rq->authority.len - (size_t)(rcolon + 1 - rq->authority.p)), rcolon + 1);
	else if (r->derive_port == 2)
		snprintf(port, sizeof(port), ":80");
	else if (r->derive_port == 0 && colon != NULL)
		snprintf(port, sizeof(port), ":%.*s", (int)SN_MIN((size_t)5, auth.len - hl - 1), colon + 1);
	const char *q = memchr(rq->path.p, '?', rq->path.len);
	size_t pl = q ? (size_t)(q - rq->path.p) : rq->path.len;
	int keep_query = q != NULL && (r->uri == NULL || strchr(r->uri, '?') == NULL);
	char location[2048];
	int n = snprintf(location, sizeof(location), "%s://%.*s%s%s%.*s",
			 r->scheme ? r->scheme : ex->c->gw_tls ? "https" : "http", (int)hl, auth.p,
			 port, r->uri ? r->uri : "", r->uri ? 0 : (int)pl, rq->path.p);
	if (n > 0 && keep_query && (size_t)n < sizeof(location))
		snprintf(location + n, sizeof(location) - (size_t)n, "%.*s", (int)(rq->path.len - pl), q);
	if (n < 0 || (size_t)n >= sizeof(location)) {
		ex_local(ex, 414, "uri_too_long", "sinew: the redirect's location is too long");
		return;
	}
	sn_fx_answer_header(ex, "location", location);
	ex_local(ex, r->code, "redirect", "%s", location);
}

static void on_discovery_timeout(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_exchange *ex = sn_container_of(t, struct sn_exchange, delay_timer);
	unpark(ex);
	ex_local(ex, 404, "no_route",
		 "sinew: the control plane did not resolve host \"%.*s\" within %d ms; is sinewd reachable?",
		 (int)SN_MIN(ex->req.authority.len, 256), ex->req.authority.p, DISCOVERY_WAIT_MS);
}

/* Control-plane mode: a host this proxy has never asked about. Subscribe
 * and park the request until a snapshot that knows it arrives (or the
 * wait runs out). Returns 1 if parked. */
static int park_for_discovery(struct sn_exchange *ex)
{
	struct sn_worker *w = ex->w;
	struct sn_str a = ex->req.authority;
	char host[256];
	size_t n = 0;
	uint64_t now = sn_loop_now(&w->loop);

	/* host without the port, lowercase; an IPv6 literal keeps brackets */
	if (a.len > 0 && a.p[0] == '[') {
		const char *rb = memchr(a.p, ']', a.len);
		n = rb ? (size_t)(rb - a.p) + 1 : a.len;
	} else {
		const char *colon = memchr(a.p, ':', a.len);
		n = colon ? (size_t)(colon - a.p) : a.len;
	}
	if (n == 0 || n >= sizeof(host))
		return 0;
	for (size_t i = 0; i < n; i++)
		host[i] = (char)sn_tolower_ascii((unsigned char)a.p[i]);
	host[n] = '\0';
	if (n > 1 && host[n - 1] == '.')
		host[--n] = '\0';
	struct sn_str h = sn_str_make(host, n);
	int known = sn_cp_host_known(w->proxy, h);
	if (known == 1)
		return 0;
	if (ex->park_deadline_ms == 0)
		ex->park_deadline_ms = now + DISCOVERY_WAIT_MS;
	else if (now >= ex->park_deadline_ms)
		return 0;
	if (known == 0)
		sn_cp_subscribe(w->proxy, h);
	ex->next_parked = w->parked;
	if (ex->next_parked != NULL)
		ex->next_parked->pprev_parked = &ex->next_parked;
	w->parked = ex;
	ex->pprev_parked = &w->parked;
	ex_set_state(ex, SN_EX_STATE_PARKED);
	sn_timer_start(&w->loop, &ex->delay_timer, ex->park_deadline_ms - now, on_discovery_timeout);
	return 1;
}

void sn_exchange_retry_parked(struct sn_worker *w)
{
	struct sn_exchange *list = w->parked;

	/* Detach the whole list first: re-routing may park again. */
	w->parked = NULL;
	if (list != NULL)
		list->pprev_parked = &list;
	while (list != NULL) {
		struct sn_exchange *ex = list;
		unpark(ex);
		sn_timer_stop(&w->loop, &ex->delay_timer);
		if (ex->snap != w->snap) {
			if (ex->snap != NULL)
				sn_snapshot_unref(ex->snap);
			ex->snap = w->snap;
			if (ex->snap != NULL)
				sn_snapshot_ref(ex->snap);
		}
		ex_set_state(ex, SN_EX_STATE_ROUTING);
		ex_route(ex);
	}
}

/* outboundTrafficPolicy ALLOW_ANY (Istio's default), for a request whose
 * host the mesh does not know on a captured HTTP/1 connection to an
 * address outside the mesh: the connection goes on to its original
 * destination as opaque TCP, this request's bytes first, as Istio's
 * PassthroughCluster. Returns 1 if it took the connection. */
static int ex_passthrough(struct sn_exchange *ex)
{
	struct sn_dconn *c = ex->c;
	struct sn_worker *w = ex->w;
	struct sockaddr_in orig;
	struct sn_xprt dx;
	char what[600], ip[INET_ADDRSTRLEN];

	if (ex->s != NULL || c->dir != SN_DIR_OUTBOUND || c->gw_port != 0 ||
	    sn_tcp_passthrough_dest(w, c->x.fd, &orig) != 0)
		return 0;
	inet_ntop(AF_INET, &orig.sin_addr, ip, sizeof(ip));
	snprintf(what, sizeof(what), "conn=%llu %s host %.*s -> %s:%u (passthrough)", (unsigned long long)c->id,
		 c->peer, (int)SN_MIN(ex->req.authority.len, 256), ex->req.authority.p, ip, ntohs(orig.sin_port));
	struct iovec to_up[2] = { { sn_buf_data(&ex->head), ex->head_len },
				  { sn_buf_data(&c->in), sn_buf_len(&c->in) } };
	ex->recorded = 1;   /* no HTTP answer of ours: the relay logs it, sinew_passthrough_total counts it */
	ex->held = 0;
	sn_io_stop(&w->loop, &c->io);
	dx = c->x;
	sn_xprt_init(&c->x, -1);
	c->peer_id = NULL;
	if (sn_tcp_passthrough(w, &dx, &orig, to_up, 2, what) != 0)
		sn_log(SN_LOG_INFO, "%s: cannot start the relay", what);
	sn_buf_consume(&c->in, sn_buf_len(&c->in));
	ex->close_after = 1;
	ex->req_done = 1;
	ex->resp_classified_done = 1;
	ex_finish(ex);
	return 1;
}

/* Chooses route, destination and cluster for an outbound request. */
static void ex_route(struct sn_exchange *ex)
{
	struct sn_worker *w = ex->w;
	const struct sn_h1_request *rq = &ex->req;
	struct sn_route_request rr;
	uint16_t port = 0;

	if (ex->snap == NULL) {
		ex_local(ex, 503, "no_route", "sinew: no configuration loaded yet");
		return;
	}
	if (rq->authority.len == 0) {
		ex_local(ex, 400, "bad_request", "sinew: the request names no host (no Host header or absolute URI)");
		return;
	}
	const struct sn_vhost *vh;
	if (ex->c->gw_port != 0) {
		/* a gateway's port: the VirtualServices bound to its servers */
		const struct sn_gw_listener *gl = sn_snapshot_find_gw_listener(ex->snap, ex->c->gw_port);
		if (gl == NULL) {
			ex_local(ex, 404, "no_route", "sinew: no Gateway server selects port %u now (config version %llu)",
				 ex->c->gw_port, (unsigned long long)ex->snap->version);
			return;
		}
		if (gl->https_redirect) {
			static const struct sn_redirect to_https = { .code = 301, .scheme = "https", .derive_port = 1 };
			ex_redirect(ex, &to_https);
			return;
		}
		vh = sn_snapshot_find_gw_vhost(ex->snap, gl, rq->authority);
		port = gl->port;
		if (vh == NULL) {
			ex_local(ex, 404, "no_route",
				 "sinew: no VirtualService bound to the Gateway on port %u routes host \"%.*s\" (%s; config "
				 "version %llu)", gl->port, (int)SN_MIN(rq->authority.len, 256), rq->authority.p, gl->origin,
				 (unsigned long long)ex->snap->version);
			return;
		}
	} else {
		vh = sn_snapshot_find_vhost(ex->snap, rq->authority, &port);
	}
	if (vh == NULL && w->proxy->cp != NULL && park_for_discovery(ex))
		return;
	if (vh == NULL && ex->snap->registry_only != NULL) {
		sn_metrics_add(w->metrics, SN_CTR_BLOCKED_EGRESS, 1);
		ex_local(ex, 502, "blocked_egress",
			 "sinew: host \"%.*s\" is outside the mesh's registry (no Service or ServiceEntry declares it) and "
			 "outboundTrafficPolicy is REGISTRY_ONLY (%s); add a ServiceEntry for it",
			 (int)SN_MIN(rq->authority.len, 256), rq->authority.p, ex->snap->registry_only);
		return;
	}
	if (vh == NULL && ex_passthrough(ex))
		return;
	if (vh == NULL) {
		ex_local(ex, 404, "no_route",
			 "sinew: no route for host \"%.*s\": no Service or VirtualService host matches it (config version %llu)",
			 (int)SN_MIN(rq->authority.len, 256), rq->authority.p, (unsigned long long)ex->snap->version);
		return;
	}
	ex->port = port;
	if (w->vhost_used != NULL && ex->snap == w->snap && ex->c->gw_port == 0)
		w->vhost_used[vh - ex->snap->vhosts] = 1;
	memset(&rr, 0, sizeof(rr));
	rr.method = rq->method;
	rr.authority = rq->authority;
	if (ex->c->gw_tls)
		rr.scheme = SN_STR_LIT("https");
	rr.port = port;
	rr.headers = rq->headers;
	rr.n_headers = rq->num_headers;
	const char *q = memchr(rq->path.p, '?', rq->path.len);
	if (q != NULL) {
		rr.path = sn_str_make(rq->path.p, (size_t)(q - rq->path.p));
		rr.query = sn_str_make(q + 1, rq->path.len - rr.path.len - 1);
	} else {
		rr.path = rq->path;
	}
	ex->route = sn_router_match(vh, &rr, &ex->route_match);
	if (ex->route == NULL) {
		ex_local(ex, 404, "no_route", "sinew: no rule for host %s matched %.*s %.*s", vh->host,
			 (int)rq->method.len, rq->method.p, (int)SN_MIN(rr.path.len, 512), rr.path.p);
		return;
	}
	if (ex->route->direct_status) {
		ex_local(ex, ex->route->direct_status, "direct_response", "%s",
			 ex->route->direct_body ? ex->route->direct_body : "");
		return;
	}
	if (ex->route->redirect.code) {
		ex_redirect(ex, &ex->route->redirect);
		return;
	}
	ex->dest = sn_router_pick_dest(ex->route, sn_worker_random(w));
	if (ex->dest == NULL) {
		ex_local(ex, 503, "no_route", "sinew: route %s has no destination", ex->route->name);
		return;
	}
	ex->cluster = &ex->snap->clusters[ex->dest->cluster];
	sn_worker_retry_deposit(w);
	ex_filters(ex);
}

/* ---- moving bytes ------------------------------------------------------ */

/* Writes to upstream. Returns bytes (> 0), or -1 with errno (EAGAIN:
 * can_write was cleared). After EAGAIN the caller offers the same bytes
 * again, as TLS requires. */
static ssize_t uconn_send(struct sn_uconn *u, const void *p, size_t len)
{
	struct iovec iov = { (void *)p, len };
	unsigned clear;

	if (u->h2 != NULL) {
		ssize_t n = sn__h2u_write(u, p, len);
		errno = n < 0 ? EIO : EAGAIN;
		return n > 0 ? n : -1;
	}
	ssize_t n = sn_xprt_send(&u->x, &iov, 1, &clear);

	if (clear & SN_XPRT_WANT_WRITE)
		u->can_write = 0;
	if (clear & SN_XPRT_WANT_READ)
		u->can_read = 0;
	if (n < 0) {
		errno = EIO;
		return -1;
	}
	if (n == 0) {
		errno = EAGAIN;
		return -1;
	}
	return n;
}

/* Writes p[*sent..len) upstream while the socket takes it, advancing
 * *sent. Returns 0 (done or would block) or -1 when the attempt failed
 * (already handled: the request is replayable, so it may be retried). */
static int send_replayable(struct sn_exchange *ex, const char *p, size_t len, size_t *sent)
{
	struct sn_uconn *u = ex->u;

	while (u->can_write && *sent < len) {
		ssize_t n = uconn_send(u, p + *sent, len - *sent);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			ex_attempt_failed(ex, SN_FAIL_RESET, 0);
			return -1;
		}
		*sent += (size_t)n;
	}
	return 0;
}

/* The whole request went upstream (HTTP/2: the stream's END_STREAM). */
static void ex_req_sent(struct sn_exchange *ex)
{
	ex->req_sent = 1;
	if (ex->u != NULL && ex->u->h2 != NULL)
		sn__h2u_end(ex->u);
}

/* Sends request head and body upstream as far as the sockets allow.
 * Returns 0, or -1 when the attempt failed (already handled). */
static int pump_request(struct sn_exchange *ex)
{
	struct sn_dconn *c = ex->c;
	struct sn_uconn *u = ex->u;
	struct sn_buf *in = ex_in(ex);

	/* The head, then a body that arrived with it, are replayable: they
	 * stay in their buffers and a retry sends them again from 0. */
	if (send_replayable(ex, ex->up.base, ex->up_len, &ex->up_written) < 0)
		return -1;
	if (ex->up_written < ex->up_len)
		return 0;
	if (ex->held) {
		if (send_replayable(ex, sn_buf_data(in), ex->req.content_length, &ex->held_sent) < 0)
			return -1;
		if (ex->held_sent == ex->req.content_length)
			ex_req_sent(ex);
		return 0;
	}
	if (ex->req.body == SN_H1_BODY_NONE) {
		ex_req_sent(ex);
		return 0;
	}

	/* Streaming body: tell a waiting client to go on. */
	if (ex->req.expect_continue && !ex->continue_sent && !ex->resp_head_sent) {
		ex->continue_sent = 1;
		if (sn_buf_reserve(&c->w->pool, &c->out, sizeof(CONTINUE_LINE), 4096) == 0)
			sn_buf_append(&c->out, CONTINUE_LINE, sizeof(CONTINUE_LINE) - 1);
		if (sn__dconn_write(c, NULL, 0) < 0) {
			ex_abort(ex, "downstream_disconnect");
			return -1;
		}
	}
	for (;;) {
		if (ex->req_pending == 0 && !ex->req_classified_done) {
			size_t avail = sn_buf_len(in);
			if (avail == 0) {
				if (ex->s != NULL && ex->req_raw && sn__h2d_body_state(ex->s) == 1) {
					ex->req_classified_done = 1;
					continue;
				}
				if (ex->s != NULL)
					return 0;   /* the stream's on_data moves us on */
				ssize_t r = sn__dconn_read(c);
				if (r < 0) {
					ex_abort(ex, "downstream_disconnect");
					return -1;
				}
				if (r == 0)
					return 0;
				continue;
			}
			if (ex->req_raw) {
				ex->req_pending = avail;
			} else if (ex->req.body == SN_H1_BODY_LENGTH) {
				size_t take = (size_t)SN_MIN((uint64_t)avail, ex->req_remaining);
				ex->req_pending = take;
				ex->req_remaining -= take;
				if (ex->req_remaining == 0)
					ex->req_classified_done = 1;
			} else if (ex->req_dechunk) {
				int done = 0;
				size_t data;
				ssize_t take = sn_h1_chunked_next(&ex->req_chunked, sn_buf_data(in), avail, &data, &done);
				if (take < 0) {
					ex_local(ex, 400, "bad_request", "sinew: malformed chunked request body");
					return -1;
				}
				if (done)
					ex->req_classified_done = 1;
				if (data == 0) {
					ex_in_consume(ex, (size_t)take);   /* framing: dropped */
					continue;
				}
				ex->req_pending = data;
			} else {
				int done = 0;
				ssize_t take = sn_h1_chunked_scan(&ex->req_chunked, sn_buf_data(in), avail, &done);
				if (take < 0) {
					ex_local(ex, 400, "bad_request", "sinew: malformed chunked request body");
					return -1;
				}
				ex->req_pending = (size_t)take;
				if (done)
					ex->req_classified_done = 1;
			}
			if (SN_UNLIKELY(ex->tap_cap != NULL))   /* each body byte is classified once */
				sn__tap_capture_body(ex->tap_cap, 0, sn_buf_data(in), ex->req_pending);
		}
		if (ex->req_pending == 0) {
			if (ex->req_classified_done) {
				ex->req_done = 1;
				ex_req_sent(ex);
			}
			return 0;
		}
		if (!u->can_write)
			return 0;
		ssize_t n = uconn_send(u, sn_buf_data(in), ex->req_pending);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			/* Some body is gone: no replay, so no retry. */
			ex_local(ex, 502, "upstream_reset", "sinew: %s closed the connection while receiving the request body",
				 ex->ep ? ex->ep->address : "upstream");
			return -1;
		}
		ex->streamed = 1;
		ex->req_body_bytes += (uint64_t)n;
		ex->req_pending -= (size_t)n;
		ex_in_consume(ex, (size_t)n);
	}
}

/* Reads from upstream into u->in. Returns bytes, 0 for nothing now, -1 EOF/error. */
static ssize_t uconn_read(struct sn_uconn *u)
{
	unsigned clear;

	if (u->h2 != NULL)
		return sn__h2u_read(u);   /* the stream put its bytes in u->in */
	if (!u->can_read)
		return u->eof ? -1 : 0;
	ssize_t n = sn_xprt_read_buf(&u->x, &u->w->pool, &u->in, sn__in_cap(u->w), u->hup, &clear);
	if (clear & SN_XPRT_WANT_READ)
		u->can_read = 0;
	if (clear & SN_XPRT_WANT_WRITE)
		u->can_write = 0;
	if (n < 0)
		u->eof = 1;
	return n;
}

/* n response bytes of u->in were passed on (HTTP/2: the server may send
 * as many more). */
static void ex_uconsume(struct sn_exchange *ex, size_t n)
{
	sn_buf_consume(&ex->u->in, n);
	if (ex->u->h2 != NULL)
		sn__h2u_consumed(ex->u, n);
}

static int accept_head(struct sn_exchange *ex);

/* An HTTP/2 endpoint's head, structured already: into ex->resp. */
static int read_response_head_h2(struct sn_exchange *ex)
{
	struct sn_uconn *u = ex->u;
	enum sn_h1_body_kind kind;
	uint64_t cl;
	const struct sn_http_head *h = sn__h2u_head(u, &kind, &cl);
	size_t n = 0;

	if (h == NULL) {
		if (u->eof || sn__h2u_reset(u)) {
			ex_attempt_failed(ex, SN_FAIL_RESET, 0);
			return -1;
		}
		return 0;
	}
	memset(&ex->resp, 0, sizeof(ex->resp));
	ex->resp.minor_version = 1;
	ex->resp.status = h->status;
	ex->resp.keep_alive = 1;
	ex->resp.headers = ex->resp_hdrs;
	for (size_t i = 0; i < h->n_fields && n < SN_MAX_HEADERS_ARRAY; i++)
		ex->resp_hdrs[n++] = (struct sn_h1_header){ h->fields[i].name, h->fields[i].value };
	ex->resp.num_headers = n;
	ex->resp.body = kind;
	ex->resp.content_length = cl;
	return accept_head(ex);
}

/* Reads the response head; returns 1 when it is done, 0 to wait, -1 if the
 * exchange was ended. */
static int read_response_head(struct sn_exchange *ex)
{
	struct sn_uconn *u = ex->u;
	struct sn_worker *w = ex->w;

	if (u->h2 != NULL)
		return read_response_head_h2(ex);
	for (;;) {
		int r = SN_H1_INCOMPLETE;
		if (sn_buf_len(&u->in) > 0)
			r = sn_h1_parse_response(sn_buf_data(&u->in), sn_buf_len(&u->in), &ex->resp, ex->resp_hdrs,
						 SN_MAX_HEADERS_ARRAY, sn__limits(w), ex->req.method);
		if (r == SN_H1_ERROR) {
			sn_log(SN_LOG_DEBUG, "conn=%llu bad response from %s: %s", (unsigned long long)ex->c->id,
			       ex->ep ? ex->ep->address : "?", ex->resp.err_reason ? ex->resp.err_reason : "");
			ex_attempt_failed(ex, SN_FAIL_PROTOCOL, 0);
			return -1;
		}
		if (r > 0) {
			if (ex->resp.status >= 100 && ex->resp.status < 200 && ex->resp.status != 101) {
				sn_buf_consume(&u->in, (size_t)r);
				continue;  /* interim response: we answered Expect ourselves */
			}
			if (ex->resp.status == 101 && !ex->upgrade) {
				ex_attempt_failed(ex, SN_FAIL_PROTOCOL, 0);   /* switched without being asked */
				return -1;
			}
			sn_buf_consume(&u->in, (size_t)r);
			return accept_head(ex);
		}
		/* incomplete */
		ssize_t n = uconn_read(u);
		if (n > 0)
			continue;
		if (n == 0)
			return 0;
		/* EOF before a complete head */
		ex_attempt_failed(ex, sn_buf_len(&u->in) ? SN_FAIL_PROTOCOL : SN_FAIL_RESET, 0);
		return -1;
	}
}

/* A complete response head is in ex->resp: retry on its status, or
 * accept it (the body's framing, the client's head). Returns 1 when
 * accepted, -1 if the exchange moved on (a retry, a local answer, a
 * tunnel). */
static int accept_head(struct sn_exchange *ex)
{
	struct sn_worker *w = ex->w;

	ex_outlier(ex, ex->resp.status);

	/* Retry on status before anything reaches the client. */
	const struct sn_retry_policy *rp = retry_policy(ex);
	if (ex->req_sent && replayable(ex) && ex->attempts <= rp->attempts &&
	    policy_allows(rp, 0, ex->resp.status)) {
		if (ex->host)
			sn_lb_observe(ex->host, elapsed_ms(ex->try_start_us), 1);
		ex_attempt_failed(ex, (enum sn_attempt_failure)0, ex->resp.status);
		return -1;
	}
	/* gRPC: a trailers-only answer whose grpc-status the route retries on
	 * (retryOn: unavailable, ...). */
	struct sn_str gs;
	if (ex->grpc && ex->req_sent && replayable(ex) && ex->attempts <= rp->attempts &&
	    sn__field(ex->resp.headers, ex->resp.num_headers, "grpc-status", &gs) &&
	    sn__grpc_retry_on(rp->retry_on, sn__grpc_code(gs))) {
		if (ex->host)
			sn_lb_observe(ex->host, elapsed_ms(ex->try_start_us), 1);
		ex_attempt_failed(ex, SN_FAIL_GRPC, 0);
		return -1;
	}
	ex_set_state(ex, SN_EX_STATE_RELAYING);
	ex->status = ex->resp.status;
	if (SN_UNLIKELY(ex->tap_cap != NULL))
		sn__tap_capture_head(ex->tap_cap, &ex->resp);   /* the fields' views die with u->in */
	ex->upstream_ms = elapsed_ms(ex->try_start_us);
	sn_timer_stop(&w->loop, &ex->try_timer);
	if (ex->host)
		sn_lb_observe(ex->host, ex->upstream_ms, ex->resp.status >= 500);
	switch (ex->resp.body) {
	case SN_H1_BODY_NONE:
		ex->resp_classified_done = 1;
		break;
	case SN_H1_BODY_LENGTH:
		ex->resp_remaining = ex->resp.content_length;
		if (ex->resp_remaining == 0)
			ex->resp_classified_done = 1;
		break;
	case SN_H1_BODY_CHUNKED:
		sn_h1_chunked_init(&ex->resp_chunked);
		break;
	case SN_H1_BODY_UNTIL_CLOSE:
		ex->resp_until_close = 1;
		break;
	}
	if (ex->resp.status == 101 && ex->s != NULL) {   /* RFC 8441: the stream's tunnel answers 200 */
		const char *why = sn__h2t_open(ex);
		if (why != NULL)
			ex_local(ex, 502, "upstream_protocol_error", "sinew: %s", why);
		else
			ex_finish(ex);
		return -1;
	}
	if (sn__ex_build_downstream_head(ex) != 0) {
		ex_local(ex, 502, "upstream_protocol_error", "sinew: upstream response head too large");
		return -1;
	}
	ex->resp_head_sent = 1;
	if (ex->resp.status == 101) {
		ex_tunnel(ex);
		return -1;
	}
	return 1;
}

/* HEAD_HOLD_MS passed and no body byte came: the head goes out alone. The
 * try timer is free once the head is accepted. */
static void on_head_hold(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_exchange *ex = sn_container_of(t, struct sn_exchange, try_timer);
	struct sn_dconn *c = ex->c;

	if (ex->state != SN_EX_STATE_RELAYING || ex->resp_head_out == 0)
		return;
	if (c->can_write && sn__dconn_write(c, NULL, 0) < 0) {
		ex_abort(ex, "downstream_disconnect");
		return;
	}
	if (sn_buf_len(&c->out) != ex->resp_head_out)
		ex->resp_head_out = 0;
}

/* Forwards the response body. Returns 1 when complete, 0 to wait, -1 if
 * the exchange was ended. */
static int pump_response(struct sn_exchange *ex)
{
	struct sn_dconn *c = ex->c;
	struct sn_uconn *u = ex->u;

	for (;;) {
		if (ex->resp_pending == 0 && !ex->resp_classified_done) {
			size_t avail = sn_buf_len(&u->in);
			if (avail == 0) {
				ssize_t r = uconn_read(u);
				if (r < 0) {
					/* The end of a close-delimited body -- or of an
					 * HTTP/2 stream, unless it was reset. */
					if (ex->resp_until_close && !(u->h2 != NULL && sn__h2u_reset(u))) {
						ex->resp_classified_done = 1;
						continue;
					}
					if (ex->resp_head_out != 0 && ds_queued(ex) == ex->resp_head_out) {
						/* Nothing reached the client yet: it
						 * gets a 502, not a bare close. */
						ex->resp_head_sent = 0;
						ex_local(ex, 502, "upstream_reset",
							 "sinew: upstream closed the connection after the response head, "
							 "before its body");
						return -1;
					}
					ex_abort(ex, "upstream_reset");
					return -1;
				}
				if (r == 0) {
					/* Nothing more from upstream now. A head none
					 * of which left waits a moment for its first
					 * body bytes, to leave with them in one write;
					 * then alone (a stream's or a long poll's head
					 * is not held for its body). */
					if (ex->resp_head_out != 0 && ds_queued(ex) == ex->resp_head_out) {
						if (!sn_timer_is_linked(&ex->try_timer))
							sn_timer_start(&ex->w->loop, &ex->try_timer, HEAD_HOLD_MS,
								       on_head_hold);
						break;
					}
					if (ds_queued(ex) > 0 && c->can_write && sn__dconn_write(c, NULL, 0) < 0) {
						ex_abort(ex, "downstream_disconnect");
						return -1;
					}
					if (ds_queued(ex) != ex->resp_head_out)
						ex->resp_head_out = 0;
					break;
				}
				continue;
			}
			if (ex->resp.body == SN_H1_BODY_LENGTH) {
				size_t take = (size_t)SN_MIN((uint64_t)avail, ex->resp_remaining);
				ex->resp_pending = take;
				ex->resp_remaining -= take;
				if (ex->resp_remaining == 0)
					ex->resp_classified_done = 1;
			} else if (ex->resp_dechunk) {
				int done = 0;
				size_t data;
				ssize_t take = sn_h1_chunked_next(&ex->resp_chunked, sn_buf_data(&u->in), avail, &data,
								  &done);
				if (take < 0) {
					ex_abort(ex, "upstream_protocol_error");
					return -1;
				}
				if (done)
					ex->resp_classified_done = 1;
				if (data == 0) {
					ex_uconsume(ex, (size_t)take);   /* framing: dropped */
					continue;
				}
				ex->resp_pending = data;
			} else if (ex->resp.body == SN_H1_BODY_CHUNKED) {
				int done = 0;
				ssize_t take = sn_h1_chunked_scan(&ex->resp_chunked, sn_buf_data(&u->in), avail, &done);
				if (take < 0) {
					ex_abort(ex, "upstream_protocol_error");
					return -1;
				}
				ex->resp_pending = (size_t)take;
				if (done)
					ex->resp_classified_done = 1;
			} else {
				ex->resp_pending = avail;
			}
			if (SN_UNLIKELY(ex->tap_cap != NULL))   /* each body byte is classified once */
				sn__tap_capture_body(ex->tap_cap, 1, sn_buf_data(&u->in), ex->resp_pending);
		}
		if (ex->resp_pending == 0 && ds_queued(ex) == 0)
			break;
		if (!ds_can_write(ex))
			return 0;
		if (ex->resp_classified_done && !ex->recorded)
			ex_record(ex, ex->resp_body_bytes + ex->resp_pending);
		ssize_t n = ds_write(ex, sn_buf_data(&u->in), ex->resp_pending);
		if (n < 0) {
			ex_abort(ex, "downstream_disconnect");
			return -1;
		}
		ex->resp_head_out = 0;
		if (n > 0) {
			ex->resp_body_bytes += (uint64_t)n;
			ex->resp_pending -= (size_t)n;
			ex_uconsume(ex, (size_t)n);
		}
		if (ex->s != NULL ? n == 0 : !c->can_write && (ex->resp_pending > 0 || ds_queued(ex) > 0))
			return 0;
	}
	if (ex->resp_classified_done && ex->resp_pending == 0 && ds_queued(ex) == 0)
		return 1;
	return 0;
}

/* The upstream switched protocols (101: WebSocket, any Upgrade): the
 * exchange ends here, recorded with its 101, and both transports go to the
 * byte relay (tcp.c) with what each side already sent -- the 101 head and
 * the server's first bytes one way, the client's early bytes the other. */
static void ex_tunnel(struct sn_exchange *ex)
{
	struct sn_dconn *c = ex->c;
	struct sn_worker *w = ex->w;
	struct sn_uconn *u = ex->u;
	struct sn_xprt dx, ux;
	char what[600];

	snprintf(what, sizeof(what), "conn=%llu %s upgrade %.*s -> %s", (unsigned long long)c->id, c->peer,
		 (int)SN_MIN(ex->req.path.len, 200), ex->req.path.p, ex->ep && ex->ep->address ? ex->ep->address : "?");
	struct iovec to_up[1] = { { sn_buf_data(&c->in), sn_buf_len(&c->in) } };
	struct iovec to_down[2] = { { sn_buf_data(&c->out), sn_buf_len(&c->out) },
				    { sn_buf_data(&u->in), sn_buf_len(&u->in) } };
	ex->resp_classified_done = 1;
	ex_record(ex, 0);   /* while the client's transport (its identity) is still c's */
	ex->u = NULL;
	sn_uconn_detach(w, u, &ux);
	sn_io_stop(&w->loop, &c->io);
	dx = c->x;
	sn_xprt_init(&c->x, -1);
	c->peer_id = NULL;
	/* The relay copies the bytes before the buffers go. */
	if (sn_tcp_tunnel(w, &dx, &ux, to_up, 1, to_down, 2, what) != 0)
		sn_log(SN_LOG_INFO, "%s: cannot start the relay", what);
	sn_uconn_destroy(w, u);
	sn_buf_consume(&c->in, sn_buf_len(&c->in));
	sn_buf_release(&w->pool, &c->out);
	ex->close_after = 1;
	ex->resp_classified_done = 1;
	ex_finish(ex);
}

static void ex_progress(struct sn_exchange *ex)
{
	struct sn_dconn *c = ex->c;

	if (ex->state == SN_EX_STATE_LOCAL) {
		if (ex->s != NULL) {
			ex_finish(ex);   /* the codec has the whole answer */
			return;
		}
		if (sn__dconn_write(c, NULL, 0) < 0) {
			ex->close_after = 1;
			ex_finish(ex);
			return;
		}
		if (sn_buf_len(&c->out) == 0)
			ex_finish(ex);
		return;
	}
	struct sn_uconn *u = ex->u;
	if (u == NULL)
		return;   /* fault delay pending */

	if (u->h2 != NULL && !u->connected) {
		/* HTTP/2: the stream opens once its connection is ready. */
		if (u->eof)
			ex_attempt_failed(ex, SN_FAIL_CONNECT, 0);
		return;
	}
	if (!u->connected) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (u->eof) {
			ex_attempt_failed(ex, SN_FAIL_CONNECT, 0);
			return;
		}
		if (!u->can_write && !u->can_read)
			return;
		if (getsockopt(u->x.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
			ex_attempt_failed(ex, SN_FAIL_CONNECT, 0);
			return;
		}
		if (!u->can_write)
			return;
		u->connected = 1;
		if (!u->handshaking)
			sn_timer_stop(&ex->w->loop, &u->timer);
	}
	if (u->handshaking) {
		/* mTLS: the handshake counts as connecting (its timeout and,
		 * on failure, upstream_connect_failure). */
		int r = sn_xprt_handshake(&u->x);
		if (r == SN_EAGAIN) {
			unsigned want = sn_xprt_want(&u->x);
			if (want & SN_XPRT_WANT_READ)
				u->can_read = 0;
			if (want & SN_XPRT_WANT_WRITE)
				u->can_write = 0;
			return;
		}
		if (r != 0) {
			snprintf(ex->conn_err, sizeof(ex->conn_err), "%s", sn_xprt_error(&u->x));
			sn_log(SN_LOG_INFO, "conn=%llu upstream %s", (unsigned long long)ex->c->id, ex->conn_err);
			ex_attempt_failed(ex, SN_FAIL_CONNECT, 0);
			return;
		}
		u->handshaking = 0;
		u->can_read = 1;
		u->can_write = 1;
		sn_timer_stop(&ex->w->loop, &u->timer);
	}
	if (!ex->req_sent && pump_request(ex) < 0)
		return;
	if (ex->state == SN_EX_STATE_ATTEMPT) {
		int r = read_response_head(ex);
		if (r <= 0)
			return;
	}
	int done = pump_response(ex);
	if (done < 0)
		return;
	if (done == 1) {
		size_t ntr = 0;
		const struct sn_http_field *tr = ex->u != NULL && ex->u->h2 != NULL ? sn__h2u_trailers(ex->u, &ntr) : NULL;
		if (ex->s != NULL && sn__h2d_end(ex->s, tr, ntr) != 0) {
			ex_abort(ex, "downstream_disconnect");
			return;
		}
		if (!ex->req_done) {
			/* The server answered before reading the whole request
			 * body: neither connection can be reused. */
			ex->close_after = 1;
		}
		ex_finish(ex);
		return;
	}
	/* Keep the request body flowing while the response streams. */
	if (!ex->req_sent && ex->u != NULL)
		pump_request(ex);
}

void sn_exchange_on_upstream(struct sn_exchange *ex, unsigned events)
{
	if (events & SN_IO_HUP) {
		/* Read what's left; uconn_read will see the EOF. */
		ex->u->can_read = 1;
	}
	ex_progress(ex);
}

/* ---- entry points for the downstream connection (downstream.c) --------- */

void sn__ex_on_downstream(struct sn_exchange *ex, unsigned events)
{
	/* A client that goes away while we wait for upstream: detect it only
	 * when we would read anyway (half-close after a complete request is
	 * allowed). */
	if ((events & SN_IO_HUP) && !ex->req_done && ex->state != SN_EX_STATE_LOCAL) {
		ssize_t n = sn__dconn_read(ex->c);
		if (n < 0 && sn_buf_len(&ex->c->in) == 0) {
			ex_abort(ex, "downstream_disconnect");
			return;
		}
	} else if ((events & SN_IO_HUP) && ex->state != SN_EX_STATE_LOCAL && ex->c->x.fd >= 0) {
		/* The request is complete: an EOF is a half-close and the
		 * answer still goes out, but a reset means nobody will read it
		 * (the upstream request, or its wait for a connection, ends). */
		char b;
		if (recv(ex->c->x.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR) {
			ex_abort(ex, "downstream_disconnect");
			return;
		}
	}
	if (ex->wait_body && ex->state == SN_EX_STATE_DELAYED) {
		ex_body_progress(ex);
		return;
	}
	if (ex->u == NULL && ex->state != SN_EX_STATE_LOCAL)
		return;   /* parked, or waiting on a fault delay; a closed client ends it */
	ex_progress(ex);
}

void sn__ex_on_downstream_close(struct sn_exchange *ex)
{
	ex->close_after = 1;
	if (ex->flags == NULL && ex->state != SN_EX_STATE_LOCAL)
		ex->flags = "downstream_disconnect";
	ex_finish(ex);
}

struct sn_exchange *sn__ex_new(struct sn_dconn *c)
{
	struct sn_exchange *ex = ex_alloc(c->w);
	if (ex == NULL)
		return NULL;
	ex->c = c;
	ex->start_us = sn_clock_us();
	ex->start_wall_us = wall_us();
	c->ex = ex;
	return ex;
}

void sn__ex_refuse(struct sn_exchange *ex, const struct sn_h1_request *req, int status, const char *flag)
{
	ex->req.keep_alive = 0;
	if (req == NULL) {
		ex_local(ex, status, flag, "sinew: the request head did not arrive within %u ms",
			 ex->w->proxy->opt.request_header_timeout_ms);
		return;
	}
	ex->req.method = req->method;
	ex_local(ex, status, flag, "sinew: malformed request: %s", req->err_reason ? req->err_reason : "invalid HTTP/1.1");
}

static void ex_begin(struct sn_exchange *ex);

void sn__ex_start(struct sn_exchange *ex, size_t hlen, const struct sn_h1_request *req)
{
	struct sn_dconn *c = ex->c;
	struct sn_worker *w = ex->w;

	/* Copy the head so c->in can carry the body; behind it, the
	 * origin-form path when the target had none to point at. */
	size_t extra = req->path_slash ? req->path.len + 1 : 0;
	if (sn_buf_reserve(&w->pool, &ex->head, hlen + extra,
			   SN_MAX(hlen + extra, sn__limits(w)->max_head_bytes * 3)) != 0) {
		ex->req.keep_alive = 0;
		ex_local(ex, 503, "overflow", "sinew: out of memory");
		return;
	}
	/* parsed once, in c->in: the views move with the bytes (reserved
	 * above, so the append does not move the copy) */
	const char *src = sn_buf_data(&c->in);
	sn_buf_append(&ex->head, src, hlen);
	ex->head_len = hlen;
	ex->req = *req;
	sn_h1_request_move(&ex->req, src, hlen, ex->head.base + ex->head.end - hlen, ex->req_hdrs);
	sn_buf_consume(&c->in, hlen);
	if (ex->req.path_slash) {
		/* "http://a?x=1" is "/?x=1" (RFC 9112 3.2.1). */
		char *p = ex->head.base + ex->head.end;
		p[0] = '/';
		memcpy(p + 1, ex->req.path.p, ex->req.path.len);
		ex->head.end += extra;
		ex->req.path = sn_str_make(p, extra);
		ex->req.path_slash = 0;
	}
	ex_begin(ex);
}

/* The request is in ex->req, whichever protocol brought it: its ID, then
 * route (outbound) or authorize (inbound), and dispatch. */
static void ex_begin(struct sn_exchange *ex)
{
	struct sn_dconn *c = ex->c;
	struct sn_worker *w = ex->w;
	ex->grpc = ex->s != NULL && sn__grpc_request(&ex->req);
	int rid = sn_h1_find_header(ex->req.headers, ex->req.num_headers, SN_STR_LIT("x-request-id"), 0);
	if (rid >= 0 && ex->req.headers[rid].value.len > 0) {
		ex->rid = ex->req.headers[rid].value;
	} else {
		make_request_id(w, ex->request_id);
		ex->rid = sn_str_make(ex->request_id, strlen(ex->request_id));
	}
	if (c->draining || w->draining)
		ex->req.keep_alive = 0;
	if (c->dir == SN_DIR_INBOUND) {
		ex->cluster = sn_worker_inbound_cluster(w, c->app_port);
		/* Fail closed: in control-plane mode, the workload's
		 * policies are unknown until the first sync. */
		if (ex->cluster == NULL)
			ex_local(ex, 503, "overflow", "sinew: this pod's app serves more ports than the proxy tracks "
				 "(%zu); port %u is not served", SN_ARRAY_LEN(w->inbound_ports) + 1, c->app_port);
		else if (w->proxy->cp != NULL && !__atomic_load_n(&w->proxy->cp_synced, __ATOMIC_ACQUIRE))
			ex_local(ex, 503, "no_config",
				 "sinew: this proxy has no configuration from the control plane yet, so its "
				 "authorization policies are unknown; retry when it is ready");
		else
			ex_filters(ex);
	} else {
		ex->snap = w->snap;
		if (ex->snap != NULL)
			sn_snapshot_ref(ex->snap);
		ex_route(ex);
	}
}

/* ---- entry points for HTTP/2 streams (h2_downstream.c) ------------------ */

struct sn_exchange *sn__ex_new_stream(struct sn_dconn *c, struct sn_h2d_stream *s)
{
	struct sn_exchange *ex = ex_alloc(c->w);
	if (ex == NULL)
		return NULL;
	ex->c = c;
	ex->s = s;
	ex->start_us = sn_clock_us();
	ex->start_wall_us = wall_us();
	return ex;
}

void sn__ex_start_stream(struct sn_exchange *ex, const struct sn_http_head *h, enum sn_h1_body_kind body,
			 uint64_t content_length)
{
	struct sn_h1_request *rq = &ex->req;
	size_t n = 0;

	/* The head in the HTTP/1.1 request model the exchange routes on; the
	 * views stay the codec's, valid as long as the stream. */
	rq->method = h->method;
	rq->target = h->path;
	rq->path = h->path;
	rq->authority = h->authority;
	rq->minor_version = 1;
	rq->keep_alive = 1;
	rq->upgrade = h->protocol.len > 0;   /* h2_tunnel.c made a WebSocket CONNECT a GET to upgrade */
	rq->headers = ex->req_hdrs;
	size_t cookies = 0, cookie_bytes = 0;
	for (size_t i = 0; i < h->n_fields; i++) {
		if (sn_str_eq_cstr(h->fields[i].name, "cookie")) {
			cookies++;
			cookie_bytes += h->fields[i].value.len + 2;
		}
	}
	for (size_t i = 0; i < h->n_fields && n < SN_MAX_HEADERS_ARRAY - 1; i++) {
		if (cookies > 1 && sn_str_eq_cstr(h->fields[i].name, "cookie"))
			continue;
		ex->req_hdrs[n++] = (struct sn_h1_header){ h->fields[i].name, h->fields[i].value };
	}
	if (cookies > 1 && n < SN_MAX_HEADERS_ARRAY - 1 &&
	    sn_buf_reserve(&ex->w->pool, &ex->head, cookie_bytes, SN_MAX(cookie_bytes, (size_t)SN_BUF_DEFAULT_SIZE)) == 0) {
		/* HTTP/2 splits cookies into fields; HTTP/1.1 wants one line,
		 * joined with "; " (RFC 9113 8.2.3). */
		for (size_t i = 0; i < h->n_fields; i++) {
			if (!sn_str_eq_cstr(h->fields[i].name, "cookie"))
				continue;
			if (sn_buf_len(&ex->head) > 0)
				sn_buf_append(&ex->head, "; ", 2);
			sn_buf_append(&ex->head, h->fields[i].value.p, h->fields[i].value.len);
		}
		ex->req_hdrs[n++] = (struct sn_h1_header){ SN_STR_LIT("cookie"),
							   sn_str_make(sn_buf_data(&ex->head), sn_buf_len(&ex->head)) };
	}
	if (body == SN_H1_BODY_LENGTH && h->content_length < 0) {
		/* A body that was complete before the exchange started: sent
		 * with its length rather than in chunks. */
		snprintf(ex->cl_value, sizeof(ex->cl_value), "%llu", (unsigned long long)content_length);
		ex->req_hdrs[n++] = (struct sn_h1_header){ SN_STR_LIT("content-length"),
							   sn_str_make(ex->cl_value, strlen(ex->cl_value)) };
	}
	rq->num_headers = n;
	rq->body = body;
	rq->content_length = content_length;
	if (sn_str_eq_cstr(h->method, "CONNECT")) {
		ex->req_done = body == SN_H1_BODY_NONE;
		/* No forward proxy: 501 as for HTTP/1.1, the method is what is not
		 * implemented (Envoy's 404 blames the host; docs/internals/http2.md). */
		ex_local(ex, 501, "not_implemented", "sinew: CONNECT over HTTP/2 is not supported, only extended "
			 "CONNECT with :protocol websocket (RFC 8441)");
		return;
	}
	ex_begin(ex);
}

void sn__ex_on_stream(struct sn_exchange *ex)
{
	if (ex->wait_body && ex->state == SN_EX_STATE_DELAYED) {
		ex_body_progress(ex);
		return;
	}
	if (ex->u == NULL && ex->state != SN_EX_STATE_LOCAL)
		return;   /* routing, parked or delayed: body bytes wait */
	ex_progress(ex);
}
