/* The small HTTP/1.1 server of sinewd's API and the proxy's admin port
 * (sinew/http_server.h): accept under a connection bound, read one request
 * (head, then a Content-Length body), hand it to the owner, write the
 * answer, close. Not the proxy's data path; see downstream.c for that. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sinew/http_server.h"
#include "sinew/log.h"

struct sn_hsrv_conn {
	struct sn_io io;
	int fd;                      /* -1 once closed (or handed over) */
	struct sn_hsrv *srv;
	char *in;
	size_t in_len, in_cap;
	size_t head_len;             /* 0 until the head is parsed */
	size_t body_len;
	char *out;
	size_t out_len, out_off;
	unsigned responded : 1;
	unsigned head_only : 1;      /* a HEAD request: answers carry no body */
	unsigned sent_continue : 1;
	unsigned fd_taken : 1;       /* handed over: not ours to close */
	uint64_t id;
	struct sn_hsrv_conn *next, **pprev;   /* srv->conn_list, for stop */
	struct sn_timer timer;
	struct sn_task reclaim;
};

static void on_io(struct sn_loop *loop, struct sn_io *io, unsigned events);

static void reclaim_conn(struct sn_loop *loop, struct sn_task *t)
{
	struct sn_hsrv_conn *c = sn_container_of(t, struct sn_hsrv_conn, reclaim);
	free(c->in);
	free(c->out);
	free(c);
}

static void conn_close(struct sn_hsrv_conn *c)
{
	struct sn_hsrv *s = c->srv;

	if (c->fd < 0)
		return;
	sn_timer_stop(s->loop, &c->timer);
	if (!c->fd_taken) {
		sn_io_stop(s->loop, &c->io);
		close(c->fd);
	}
	c->fd = -1;
	s->conns--;
	if (c->next != NULL)
		c->next->pprev = c->pprev;
	*c->pprev = c->next;
	sn_loop_reclaim(s->loop, &c->reclaim, reclaim_conn);
}

static void on_timeout(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_hsrv_conn *c = sn_container_of(t, struct sn_hsrv_conn, timer);
	sn_log(SN_LOG_DEBUG, "%s conn=%llu: timed out after %u ms; closing", c->srv->opt.name,
	       (unsigned long long)c->id, (unsigned)c->srv->opt.timeout_ms);
	conn_close(c);
}

/* A refusal: the owner's error answer, or a close when it has none. */
static void fail(struct sn_hsrv_conn *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fail(struct sn_hsrv_conn *c, int status, const char *fmt, ...)
{
	const struct sn_hsrv_opts *o = &c->srv->opt;
	char msg[512];
	va_list ap;

	if (o->on_error == NULL) {
		conn_close(c);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o->on_error(o->data, c, status, msg);
	if (!c->responded)
		conn_close(c);
}

/* Both servers' heads, byte for byte as before the two shared this file. */
#define HEAD_FMT "HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %zu\r\n%sconnection: close\r\n\r\n"

int sn_hsrv_format(int status, const char *content_type, const char *extra, const void *body, size_t len,
		   int head_only, char **out, size_t *out_len)
{
	const char *reason = sn_h1_reason_phrase(status);
	int hl;

	if (extra == NULL)
		extra = "";
	hl = snprintf(NULL, 0, HEAD_FMT, status, reason, content_type, len, extra);
	size_t n;

	*out = NULL;
	*out_len = 0;
	if (hl < 0)
		return SN_ENOMEM;
	n = (size_t)hl + (head_only ? 0 : len);
	/* +1: snprintf's NUL, overwritten by the body */
	*out = malloc(n + 1);
	if (*out == NULL)
		return SN_ENOMEM;
	snprintf(*out, (size_t)hl + 1, HEAD_FMT, status, reason, content_type, len, extra);
	if (!head_only && len > 0)
		memcpy(*out + hl, body, len);
	*out_len = n;
	return 0;
}

void sn_hsrv_respond(struct sn_hsrv_conn *c, int status, const char *content_type, const char *extra,
		     const void *body, size_t len)
{
	free(c->out);
	/* out of memory leaves nothing to write: flush closes */
	sn_hsrv_format(status, content_type, extra, body, len, c->head_only, &c->out, &c->out_len);
	c->out_off = 0;
	c->responded = 1;
}

static void flush(struct sn_hsrv_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR)
				continue;
			break;
		}
		c->out_off += (size_t)n;
	}
	conn_close(c);
}

void sn_hsrv_handover(struct sn_hsrv_conn *c, sn_hsrv_take_cb take, const void *arg)
{
	struct sn_loop *loop = c->srv->loop;
	char why[512] = "";

	/* The taker watches the socket from now on; the server takes it back
	 * only to answer a refusal. */
	sn_io_stop(loop, &c->io);
	int st = take(c->fd, arg, why, sizeof(why));
	if (st == 0) {
		c->fd_taken = 1;
		conn_close(c);
		return;
	}
	if (sn_io_start(loop, &c->io, c->fd, on_io) != 0) {
		conn_close(c);
		return;
	}
	fail(c, st, "%s", why);
}

struct sn_str sn_hsrv_header(const struct sn_hsrv_req *r, const char *name)
{
	struct sn_str v = SN_STR_NULL;

	for (size_t i = 0; i < r->n_headers; i++)
		if (sn_str_ieq_cstr(r->headers[i].name, name))
			v = r->headers[i].value;
	return v;
}

uint64_t sn_hsrv_conn_id(const struct sn_hsrv_conn *c)
{
	return c->id;
}

/* ---- reading --------------------------------------------------------- */

static int grow_in(struct sn_hsrv_conn *c, size_t want)
{
	if (want <= c->in_cap)
		return 0;
	char *p = realloc(c->in, want);
	if (p == NULL)
		return -1;
	c->in = p;
	c->in_cap = want;
	return 0;
}

/* "8 MiB", "64 KiB" or "1000 bytes", for a 413's reason. */
static void size_text(size_t n, char *buf, size_t size)
{
	if (n >= (1u << 20) && n % (1u << 20) == 0)
		snprintf(buf, size, "%zu MiB", n >> 20);
	else if (n >= 1024 && n % 1024 == 0)
		snprintf(buf, size, "%zu KiB", n >> 10);
	else
		snprintf(buf, size, "%zu bytes", n);
}

/* Parses the head once it is complete and decides about the body. Returns
 * 1 with *r filled (views into c->in and hdrs) when the request is all in,
 * 0 to read more, -1 when it was refused (answered or closed). */
static int progress(struct sn_hsrv_conn *c, struct sn_hsrv_req *r, struct sn_h1_header *hdrs)
{
	const struct sn_hsrv_opts *o = &c->srv->opt;
	struct sn_h1_limits lim = { o->request_line_max, o->head_max, SN_HSRV_MAX_HEADERS };
	struct sn_h1_request req;
	int hl = sn_h1_parse_request(c->in, c->in_len, &req, hdrs, SN_HSRV_MAX_HEADERS, &lim);

	if (hl == SN_H1_INCOMPLETE) {
		if (c->in_len < o->head_max)
			return 0;
		fail(c, 431, "request head larger than %zu bytes", o->head_max);
		return -1;
	}
	if (hl < 0) {
		fail(c, req.err_status ? req.err_status : 400, "malformed request: %s",
		     req.err_reason ? req.err_reason : "bad HTTP/1.1");
		return -1;
	}
	if (c->head_len == 0 && o->body_max > 0) {
		if (req.body == SN_H1_BODY_CHUNKED) {
			fail(c, 411, "chunked request bodies are not accepted; send Content-Length");
			return -1;
		}
		if (req.body == SN_H1_BODY_LENGTH && req.content_length > o->body_max) {
			char lim_text[32];
			size_text(o->body_max, lim_text, sizeof(lim_text));
			fail(c, 413, "request body is %llu bytes, more than the %s limit%s%s",
			     (unsigned long long)req.content_length, lim_text, o->body_hint ? "; " : "",
			     o->body_hint ? o->body_hint : "");
			return -1;
		}
		c->body_len = req.body == SN_H1_BODY_LENGTH ? (size_t)req.content_length : 0;
		/* Moves c->in only when the body is not all in yet (the buffer
		 * held head_max + 1), so the views stay good for a return of 1. */
		if (grow_in(c, (size_t)hl + c->body_len + 1) != 0) {
			fail(c, 503, "out of memory for a %zu-byte request; retry later", c->body_len);
			return -1;
		}
		if (req.expect_continue && c->in_len < (size_t)hl + c->body_len && !c->sent_continue) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
			c->sent_continue = 1;
			/* the first bytes on an idle socket: a short write is a broken peer */
			if (write(c->fd, cont, sizeof(cont) - 1) != (ssize_t)(sizeof(cont) - 1)) {
				conn_close(c);
				return -1;
			}
		}
	}
	c->head_len = (size_t)hl;
	if (c->in_len < c->head_len + c->body_len)
		return 0;
	const char *qm = memchr(req.path.p, '?', req.path.len);
	r->method = req.method;
	r->path = qm ? sn_str_make(req.path.p, (size_t)(qm - req.path.p)) : req.path;
	r->query = qm ? sn_str_make(qm + 1, req.path.len - (size_t)(qm - req.path.p) - 1) : SN_STR_NULL;
	r->body = c->in + c->head_len;
	r->body_len = c->body_len;
	r->headers = hdrs;
	r->n_headers = SN_MIN(req.num_headers, (size_t)SN_HSRV_MAX_HEADERS);
	return 1;
}

static void dispatch(struct sn_hsrv_conn *c, const struct sn_hsrv_req *r)
{
	const struct sn_hsrv_opts *o = &c->srv->opt;

	c->head_only = sn_str_eq_cstr(r->method, "HEAD");
	o->on_request(o->data, c, r);
	if (c->fd >= 0 && !c->responded) {
		/* the handler could not render an answer (memory): close */
		sn_log(SN_LOG_DEBUG, "%s conn=%llu: no answer to %.*s %.*s; closing", o->name,
		       (unsigned long long)c->id, (int)SN_MIN(r->method.len, 16), r->method.p,
		       (int)SN_MIN(r->path.len, 200), r->path.p);
		conn_close(c);
	}
}

static void on_io(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct sn_hsrv_conn *c = sn_container_of(io, struct sn_hsrv_conn, io);
	struct sn_h1_header hdrs[SN_HSRV_MAX_HEADERS];
	struct sn_hsrv_req r;

	if (c->responded) {
		flush(c);
		return;
	}
	for (;;) {
		size_t want = c->head_len ? c->head_len + c->body_len : c->srv->opt.head_max;
		if (c->in_len >= want) {
			/* more than the request: pipelining is not supported; the
			 * extra bytes are ignored (connection: close) */
			break;
		}
		if (grow_in(c, want + 1) != 0) {
			conn_close(c);
			return;
		}
		ssize_t n = read(c->fd, c->in + c->in_len, want - c->in_len);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			conn_close(c);
			return;
		}
		c->in_len += (size_t)n;
		int p = progress(c, &r, hdrs);
		if (c->fd < 0)
			return;
		if (p < 0)
			break;
		if (p > 0) {
			dispatch(c, &r);
			if (c->fd < 0)
				return;
			break;
		}
	}
	if (c->responded)
		flush(c);
}

/* ---- accepting ------------------------------------------------------- */

static void on_accept(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct sn_hsrv *s = sn_container_of(io, struct sn_hsrv, io);

	for (;;) {
		int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				sn_log(SN_LOG_WARN, "%s: accept: %s", s->opt.name, strerror(errno));
			return;
		}
		if (s->conns >= s->opt.max_conns) {
			sn_log(SN_LOG_WARN, "%s: %d connections open, the limit; refusing one", s->opt.name,
			       s->opt.max_conns);
			close(fd);
			continue;
		}
		struct sn_hsrv_conn *c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->srv = s;
		c->id = ++s->next_conn_id;
		if (sn_io_start(loop, &c->io, fd, on_io) != 0) {
			close(fd);
			free(c);
			continue;
		}
		s->conns++;
		c->next = s->conn_list;
		if (c->next != NULL)
			c->next->pprev = &c->next;
		c->pprev = &s->conn_list;
		s->conn_list = c;
		sn_timer_start(loop, &c->timer, s->opt.timeout_ms, on_timeout);
	}
}

int sn_hsrv_start(struct sn_hsrv *s, struct sn_loop *loop, const struct sockaddr *addr, socklen_t addr_len,
		  const struct sn_hsrv_opts *opt)
{
	int one = 1, e;

	memset(s, 0, sizeof(*s));
	s->opt = *opt;
	s->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return SN_EIO;
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s->fd, addr, addr_len) != 0 || listen(s->fd, opt->backlog) != 0 ||
	    sn_io_start(loop, &s->io, s->fd, on_accept) != 0)
		goto fail;
	s->loop = loop;
	return 0;
fail:
	e = errno;
	close(s->fd);
	s->fd = -1;
	errno = e;
	return SN_EIO;
}

void sn_hsrv_stop(struct sn_hsrv *s)
{
	if (s->loop == NULL)
		return;
	sn_io_stop(s->loop, &s->io);
	close(s->fd);
	s->fd = -1;
	while (s->conn_list != NULL)
		conn_close(s->conn_list);
	s->loop = NULL;
}
