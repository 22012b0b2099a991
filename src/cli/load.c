/* sinew load: an open-loop HTTP/1.1 and HTTP/2 load generator (fortio
 * load, wrk2, h2load).
 *
 * Request i is due at t0 + i / qps, whatever happened before it: that is
 * what makes the loop open. A due request goes to a free keep-alive
 * connection; when every connection is busy it waits in a bounded queue
 * (FIFO; when full, the oldest is dropped and counted). Each response is
 * timed twice: from the request's scheduled send time (the latency a user
 * arriving at that moment would see, corrected for coordinated omission,
 * Gil Tene) and from the moment its first byte was written (service time).
 *
 * One thread, the project's event loop (epoll ET). The pacer is a timerfd
 * armed at the next due time with nanosecond resolution (the loop's wheel
 * ticks in milliseconds, too coarse for sub-millisecond spacing); request
 * and connect timeouts and the progress line use the wheel.
 *
 * The rate's denominator (elapsed) is the scheduling window (duration, or
 * requests / qps) or, if later, the last completion; with --qps 0 it is t0
 * to the last completion.
 *
 * With --h2 N (prior knowledge, the client codec of src/http/h2_client.c)
 * each connection carries N streams: the scheduler hands requests to
 * "slots" -- N per connection, each a struct conn whose `sess` is the
 * shared connection -- exactly as it hands them to HTTP/1.1 connections. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "sinew/cli.h"
#include "sinew/h1.h"
#include "sinew/h2.h"
#include "sinew/loop.h"
#include "load.h"

#define RBUF_SIZE 16384          /* a response head must fit */
#define MAX_RESPONSE_HEADERS 64
#define RECONNECT_BACKOFF_MS 50
#define HIST_HIGHEST_NS (3600ull * 1000000000ull)   /* one hour */
#define WARMUP_MAX_MS 2000       /* connecting before t0 */

enum conn_state {
	CONN_CLOSED,
	CONN_BACKOFF,      /* waiting to reconnect */
	CONN_CONNECTING,
	CONN_IDLE,         /* connected, in the free list */
	CONN_BUSY,         /* one request in flight */
};

struct run;
struct conn;

/* --h2: one HTTP/2 connection, carrying the requests of its slots. */
struct h2sess {
	struct sn_io io;
	struct sn_timer timer;      /* connect timeout; reconnect backoff */
	struct sn_task task;        /* deferred reconnect; deferred flush */
	struct run *run;
	enum conn_state state;      /* CLOSED, BACKOFF, CONNECTING, IDLE (ready) */
	struct sn_h2c *codec;
	struct conn *slots;         /* n_slots of run->conns */
	unsigned n_slots;
	struct sn_buf out;          /* the codec's frames, gathered; what the socket did not take */
};

struct conn {
	struct sn_io io;
	struct sn_timer timer;      /* request or connect timeout; reconnect backoff */
	struct sn_task task;        /* deferred reconnect */
	struct run *run;
	enum conn_state state;
	struct conn *next_idle;
	size_t wpos;                /* request bytes written */
	uint64_t sched_ns;
	uint64_t sent_ns;
	int head_done;
	int keep_alive;
	int status;
	enum sn_h1_body_kind body;
	uint64_t body_left;
	struct sn_h1_chunked chunked;
	size_t rlen;
	char *rbuf;                 /* RBUF_SIZE, owned */
	struct h2sess *sess;        /* --h2: this is a slot of sess, not a socket */
	struct sn_h2c_stream *st;   /* --h2: the request in flight */
	size_t body_sent;           /* --h2: request body bytes queued */
};

struct run {
	struct sn_loop loop;
	struct sn_buf_pool pool;    /* HTTP/2 sessions' output */
	const struct sn_load_opts *o;
	struct sn_load_result *r;
	struct conn *conns;
	struct conn *idle_head;     /* free connections, FIFO: spreads requests */
	struct conn **idle_tail;
	char *req;                  /* the request, built once */
	size_t req_len;
	struct sn_str method;
	int tfd;                    /* pacer timerfd */
	struct sn_io pacer_io;
	uint64_t armed_at;
	int sfd;                    /* signalfd: SIGINT, SIGTERM */
	struct sn_io signal_io;
	struct sn_task pump_task;
	struct h2sess *sessions;    /* --h2: o->connections of them */
	unsigned n_conns;           /* request slots: connections, or connections x streams */
	struct sn_http_head h2head; /* --h2: the request, built once */
	struct sn_http_field h2fields[SN_LOAD_MAX_HEADERS + 1];
	struct sn_timer progress_timer;
	struct sn_timer drain_timer;
	int started;
	int sched_done;
	int tty;
	double interval_ns;
	uint64_t t0;
	uint64_t end_ns;            /* end of the scheduling window (0: none) */
	uint64_t window_end;        /* when scheduling actually ended */
	uint64_t next_seq;          /* next request to become due */
	uint64_t dispatch_seq;      /* oldest due request not yet sent */
	uint64_t inflight;
	uint64_t last_done_ns;
	uint64_t connected;         /* connections currently usable */
	uint64_t progress_last_done;
	uint64_t progress_last_ns;
};

static void pump_now(struct run *run);
static void conn_connect(struct conn *c);

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *sn_load_err_str(enum sn_load_err e)
{
	switch (e) {
	case SN_LOAD_ERR_CONNECT: return "connect";
	case SN_LOAD_ERR_TIMEOUT: return "timeout";
	case SN_LOAD_ERR_RESET: return "reset";
	case SN_LOAD_ERR_PROTOCOL: return "protocol";
	case SN_LOAD_ERR_OVERFLOW: return "overflow";
	case SN_LOAD_ERR_UNSENT: return "unsent";
	case SN_LOAD_ERR_STATUS: return "status";
	case SN_LOAD_ERR_COUNT: break;
	}
	return "?";
}

uint64_t sn_load_errors_total(const struct sn_load_result *r)
{
	uint64_t n = 0;
	for (int i = 0; i < SN_LOAD_ERR_COUNT; i++)
		n += r->errors[i];
	return n;
}

static uint64_t sched_at(const struct run *run, uint64_t seq)
{
	return run->t0 + (uint64_t)((double)seq * run->interval_ns);
}

/* ---- connections ------------------------------------------------------ */

static void idle_push(struct run *run, struct conn *c)
{
	c->state = CONN_IDLE;
	c->next_idle = NULL;
	*run->idle_tail = c;
	run->idle_tail = &c->next_idle;
}

static struct conn *idle_pop(struct run *run)
{
	struct conn *c = run->idle_head;
	if (c == NULL)
		return NULL;
	run->idle_head = c->next_idle;
	if (run->idle_head == NULL)
		run->idle_tail = &run->idle_head;
	c->next_idle = NULL;
	return c;
}

static void idle_remove(struct run *run, struct conn *c)
{
	for (struct conn **pp = &run->idle_head; *pp != NULL; pp = &(*pp)->next_idle) {
		if (*pp == c) {
			*pp = c->next_idle;
			if (*pp == NULL)
				run->idle_tail = pp;
			c->next_idle = NULL;
			return;
		}
	}
}

static void on_pump_task(struct sn_loop *loop, struct sn_task *task)
{
	pump_now(sn_container_of(task, struct run, pump_task));
}

/* Sends what became sendable once this iteration's I/O is handled: one
 * pass for all the responses that arrived together. */
static void defer_pump(struct run *run)
{
	sn_loop_defer(&run->loop, &run->pump_task, on_pump_task);
}

static void on_reconnect_task(struct sn_loop *loop, struct sn_task *task)
{
	conn_connect(sn_container_of(task, struct conn, task));
}

static void on_conn_timer(struct sn_loop *loop, struct sn_timer *t);

/* Closes c's socket. A busy connection's request fails with err; then the
 * connection reconnects (after a backoff when the connect itself failed).
 * The reconnect is deferred past this iteration's I/O callbacks so that no
 * stale event for the old socket reaches the new one. */
static void slot_fail(struct conn *c, int err);
static void sess_connect(struct h2sess *s);

static void conn_close(struct conn *c, int err)
{
	struct run *run = c->run;
	int was_usable = c->state == CONN_IDLE || c->state == CONN_BUSY;

	if (c->sess != NULL) {
		slot_fail(c, err);   /* the stream goes; the connection stays */
		return;
	}
	if (c->state == CONN_IDLE)
		idle_remove(run, c);
	if (c->state == CONN_BUSY) {
		run->inflight--;
		defer_pump(run);
	}
	if (was_usable)
		run->connected--;
	if (err >= 0)
		run->r->errors[err]++;
	sn_timer_stop(&run->loop, &c->timer);
	if (c->io.fd >= 0) {
		sn_io_stop(&run->loop, &c->io);
		close(c->io.fd);
		c->io.fd = -1;
	}
	c->rlen = 0;
	if (run->sched_done && run->dispatch_seq == run->next_seq) {
		/* Nothing more to send: stay closed. */
		c->state = CONN_CLOSED;
		return;
	}
	if (err == SN_LOAD_ERR_CONNECT) {
		c->state = CONN_BACKOFF;
		sn_timer_start(&run->loop, &c->timer, RECONNECT_BACKOFF_MS, on_conn_timer);
	} else {
		c->state = CONN_CLOSED;
		sn_loop_defer(&run->loop, &c->task, on_reconnect_task);
	}
}

static void conn_usable(struct conn *c)
{
	struct run *run = c->run;

	run->connected++;
	run->r->connects++;
	idle_push(run, c);
	if (run->started)
		pump_now(run);
}

static void on_conn_timer(struct sn_loop *loop, struct sn_timer *t)
{
	struct conn *c = sn_container_of(t, struct conn, timer);

	switch (c->state) {
	case CONN_BACKOFF:
		conn_connect(c);
		break;
	case CONN_CONNECTING:
		conn_close(c, SN_LOAD_ERR_CONNECT);
		break;
	case CONN_BUSY:
		conn_close(c, SN_LOAD_ERR_TIMEOUT);
		break;
	default:
		break;
	}
}

static void write_some(struct conn *c)
{
	struct run *run = c->run;

	while (c->wpos < run->req_len) {
		ssize_t n = send(c->io.fd, run->req + c->wpos, run->req_len - c->wpos, MSG_NOSIGNAL);
		if (n > 0) {
			c->wpos += (size_t)n;
			run->r->bytes_sent += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;   /* EPOLLOUT will tell */
		conn_close(c, SN_LOAD_ERR_RESET);
		return;
	}
}

/* The response is complete; extra is how many bytes followed it (a server
 * that answers what was not asked is broken). */
static void complete(struct conn *c, size_t extra)
{
	struct run *run = c->run;
	struct sn_load_result *r = run->r;
	uint64_t done = now_ns();

	if (extra > 0) {
		conn_close(c, SN_LOAD_ERR_PROTOCOL);
		return;
	}
	sn_hist_record(&r->latency, done - c->sched_ns);
	sn_hist_record(&r->service, done - c->sent_ns);
	r->completed++;
	if (c->status >= 100 && c->status < 600)
		r->status[c->status]++;
	else
		r->status_other++;
	if (c->status >= 400)
		r->errors[SN_LOAD_ERR_STATUS]++;
	run->last_done_ns = done;
	run->inflight--;
	sn_timer_stop(&run->loop, &c->timer);
	c->rlen = 0;
	c->head_done = 0;
	if (c->keep_alive) {
		idle_push(run, c);
		defer_pump(run);
		return;
	}
	/* Connection: close (or HTTP/1.0): reconnect, as a browser would. */
	c->state = CONN_IDLE;
	idle_push(run, c);
	conn_close(c, -1);
	defer_pump(run);
}

/* Consumes n body bytes at p. Returns 1 if the connection is done with
 * this read (response complete or connection closed). */
static int body_bytes(struct conn *c, const char *p, size_t n)
{
	switch (c->body) {
	case SN_H1_BODY_NONE:
		complete(c, n);
		return 1;
	case SN_H1_BODY_LENGTH:
		if (n >= c->body_left) {
			size_t extra = n - (size_t)c->body_left;
			c->body_left = 0;
			complete(c, extra);
			return 1;
		}
		c->body_left -= n;
		return 0;
	case SN_H1_BODY_CHUNKED: {
		int done = 0;
		ssize_t used = sn_h1_chunked_scan(&c->chunked, p, n, &done);
		if (used < 0) {
			conn_close(c, SN_LOAD_ERR_PROTOCOL);
			return 1;
		}
		if (done) {
			complete(c, n - (size_t)used);
			return 1;
		}
		return 0;
	}
	case SN_H1_BODY_UNTIL_CLOSE:
		return 0;
	}
	return 0;
}

/* Parses what c->rbuf holds of the head. Returns 1 if the connection is
 * done with this read. */
static int head_bytes(struct conn *c)
{
	struct sn_h1_header hdrs[MAX_RESPONSE_HEADERS];
	struct sn_h1_response res;

	for (;;) {
		int rc = sn_h1_parse_response(c->rbuf, c->rlen, &res, hdrs, MAX_RESPONSE_HEADERS,
					      NULL, c->run->method);
		if (rc == SN_H1_INCOMPLETE) {
			if (c->rlen == RBUF_SIZE) {
				conn_close(c, SN_LOAD_ERR_PROTOCOL);
				return 1;
			}
			return 0;
		}
		if (rc < 0) {
			conn_close(c, SN_LOAD_ERR_PROTOCOL);
			return 1;
		}
		if (res.status >= 100 && res.status < 200 && res.status != 101) {
			/* 100 Continue and friends: skip, the real answer follows. */
			memmove(c->rbuf, c->rbuf + rc, c->rlen - (size_t)rc);
			c->rlen -= (size_t)rc;
			continue;
		}
		c->head_done = 1;
		c->status = res.status;
		c->keep_alive = res.keep_alive;
		c->body = res.body;
		c->body_left = res.content_length;
		if (res.body == SN_H1_BODY_CHUNKED)
			sn_h1_chunked_init(&c->chunked);
		if (res.body == SN_H1_BODY_LENGTH && res.content_length == 0)
			c->body = SN_H1_BODY_NONE;
		return body_bytes(c, c->rbuf + rc, c->rlen - (size_t)rc);
	}
}

static void on_eof(struct conn *c)
{
	if (c->state == CONN_BUSY && c->head_done && c->body == SN_H1_BODY_UNTIL_CLOSE) {
		c->keep_alive = 0;
		complete(c, 0);
		return;
	}
	if (c->state == CONN_BUSY) {
		conn_close(c, SN_LOAD_ERR_RESET);
		return;
	}
	conn_close(c, -1);   /* an idle keep-alive connection closed: not an error */
}

static void read_some(struct conn *c)
{
	struct run *run = c->run;

	for (;;) {
		ssize_t n;
		if (!c->head_done)
			n = recv(c->io.fd, c->rbuf + c->rlen, RBUF_SIZE - c->rlen, 0);
		else
			n = recv(c->io.fd, c->rbuf, RBUF_SIZE, 0);   /* body: counted, dropped */
		if (n > 0) {
			run->r->bytes_received += (uint64_t)n;
			if (c->state != CONN_BUSY) {
				conn_close(c, SN_LOAD_ERR_PROTOCOL);   /* nothing was asked */
				return;
			}
			int finished;
			if (!c->head_done) {
				c->rlen += (size_t)n;
				finished = head_bytes(c);
			} else {
				finished = body_bytes(c, c->rbuf, (size_t)n);
			}
			/* Done with this exchange: stop reading. Edge-triggered epoll
			 * reports the next bytes to arrive, so no EAGAIN read is due. */
			if (finished)
				return;
			continue;
		}
		if (n == 0) {
			on_eof(c);
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		conn_close(c, c->state == CONN_BUSY ? SN_LOAD_ERR_RESET : -1);
		return;
	}
}

static void on_conn_io(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct conn *c = sn_container_of(io, struct conn, io);

	switch (c->state) {
	case CONN_CONNECTING: {
		int err = 0;
		socklen_t len = sizeof(err);
		if (!(events & (SN_IO_WRITE | SN_IO_HUP)))
			return;
		if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err != 0) {
			conn_close(c, SN_LOAD_ERR_CONNECT);
			return;
		}
		sn_timer_stop(loop, &c->timer);
		conn_usable(c);
		return;
	}
	case CONN_BUSY:
		if ((events & SN_IO_WRITE) && c->wpos < c->run->req_len) {
			write_some(c);
			if (c->state != CONN_BUSY)
				return;
		}
		if (events & SN_IO_READ)
			read_some(c);
		return;
	case CONN_IDLE:
		if (events & SN_IO_READ)
			read_some(c);
		return;
	default:
		return;
	}
}

/* A non-blocking TCP socket to the target with TCP_NODELAY, its connect
 * begun. Returns the fd, -2 when connect failed at once (fd in *fd, to
 * close), or -1 when no socket could be made. */
static int open_target(const struct sn_load_opts *o, int *fd)
{
	int one = 1;

	*fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (*fd < 0)
		return -1;
	setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(*fd, (const struct sockaddr *)&o->addr, o->addrlen) != 0 && errno != EINPROGRESS)
		return -2;
	return *fd;
}

static void conn_connect(struct conn *c)
{
	struct run *run = c->run;
	const struct sn_load_opts *o = run->o;
	int fd;

	if (c->sess != NULL) {
		if (c->sess->state == CONN_CLOSED)
			sess_connect(c->sess);
		return;
	}
	if (run->sched_done && run->dispatch_seq == run->next_seq) {
		c->state = CONN_CLOSED;
		return;
	}
	int r = open_target(o, &fd);
	if (r == -1) {
		fprintf(stderr, "sinew load: socket: %s\n", strerror(errno));
		c->state = CONN_BACKOFF;
		run->r->errors[SN_LOAD_ERR_CONNECT]++;
		sn_timer_start(&run->loop, &c->timer, RECONNECT_BACKOFF_MS, on_conn_timer);
		return;
	}
	c->io.fd = fd;
	c->state = CONN_CONNECTING;
	c->rlen = 0;
	c->head_done = 0;
	if (r == -2) {
		conn_close(c, SN_LOAD_ERR_CONNECT);
		return;
	}
	if (sn_io_start(&run->loop, &c->io, fd, on_conn_io) != 0) {
		conn_close(c, SN_LOAD_ERR_CONNECT);
		return;
	}
	sn_timer_start(&run->loop, &c->timer, o->timeout_ns / 1000000u, on_conn_timer);
}

/* ---- HTTP/2 (--h2) ------------------------------------------------------ */

static void sess_kick(struct h2sess *s);

/* Writes what the codec has; keeps what the socket does not take. Returns
 * 0, or -1 when the connection failed. */
static int sess_flush(struct h2sess *s)
{
	struct sn_buf_pool *pool = &s->run->pool;

	for (;;) {
		/* Frames gathered: one send carries many, as the proxy's do. */
		if (sn_h2c_gather(s->codec, pool, &s->out) != 0)
			return -1;
		if (sn_buf_len(&s->out) == 0) {
			sn_buf_release(pool, &s->out);
			return 0;
		}
		ssize_t n = send(s->io.fd, sn_buf_data(&s->out), sn_buf_len(&s->out), MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		s->run->r->bytes_sent += (uint64_t)n;
		sn_buf_consume(&s->out, (size_t)n);
		if (sn_buf_len(&s->out) > 0)
			return 0;
	}
}

/* A slot's request ends without a response (reset, timeout, the
 * connection gone): counted, and the slot is free again if its connection
 * lives. */
static void slot_fail(struct conn *c, int err)
{
	struct run *run = c->run;
	struct h2sess *s = c->sess;

	sn_timer_stop(&run->loop, &c->timer);
	if (c->st != NULL) {
		sn_h2c_set_user(c->st, NULL);
		if (s->codec != NULL)
			sn_h2c_reset(s->codec, c->st, 8 /* CANCEL */);
		c->st = NULL;
		sess_kick(s);
	}
	if (c->state == CONN_BUSY) {
		run->inflight--;
		defer_pump(run);
	}
	if (err >= 0)
		run->r->errors[err]++;
	if (c->state == CONN_BUSY && s->state == CONN_IDLE)
		idle_push(run, c);
}

static void slot_body(struct conn *c)
{
	const struct sn_load_opts *o = c->run->o;
	while (c->st != NULL && c->body_sent < o->body_size) {
		ssize_t n = sn_h2c_write(c->sess->codec, c->st, c->run->req + (c->run->req_len - o->body_size) +
					 c->body_sent, o->body_size - c->body_sent);
		if (n <= 0)
			return;   /* SN_EAGAIN: on_writable */
		c->body_sent += (size_t)n;
	}
	if (c->st != NULL && c->body_sent == o->body_size)
		sn_h2c_end(c->sess->codec, c->st);
}

static void slot_send(struct run *run, struct conn *c)
{
	struct h2sess *s = c->sess;
	int end = run->o->body_size == 0;

	c->status = 0;
	c->body_sent = 0;
	if (sn_h2c_request(s->codec, &run->h2head, 0, end, c, &c->st) != 0) {
		c->st = NULL;
		slot_fail(c, SN_LOAD_ERR_RESET);
		return;
	}
	if (!end)
		slot_body(c);
	sess_kick(s);
}

static void on_h2_response(void *arg, struct sn_h2c_stream *st, const struct sn_http_head *h)
{
	struct conn *c = sn_h2c_user(st);
	(void)arg;
	if (c != NULL)
		c->status = h->status;
}

static void on_h2_data(void *arg, struct sn_h2c_stream *st, const void *p, size_t n)
{
	struct h2sess *s = arg;
	(void)p;
	sn_h2c_consumed(s->codec, st, n);
}

static void on_h2_end(void *arg, struct sn_h2c_stream *st, const struct sn_http_field *t, size_t n)
{
	struct conn *c = sn_h2c_user(st);
	(void)arg;
	(void)t;
	(void)n;
	if (c == NULL || c->state != CONN_BUSY)
		return;
	sn_h2c_set_user(st, NULL);
	c->st = NULL;
	c->keep_alive = 1;
	complete(c, 0);
}

static void on_h2_writable(void *arg, struct sn_h2c_stream *st)
{
	struct conn *c = sn_h2c_user(st);
	(void)arg;
	if (c != NULL)
		slot_body(c);
}

static void on_h2_close(void *arg, struct sn_h2c_stream *st, uint32_t error)
{
	struct conn *c = sn_h2c_user(st);
	(void)arg;
	(void)error;
	if (c == NULL)
		return;
	c->st = NULL;
	if (c->state == CONN_BUSY)
		slot_fail(c, SN_LOAD_ERR_RESET);
}

static const struct sn_h2c_cbs h2_cbs = { on_h2_response, on_h2_data, on_h2_end, on_h2_writable, on_h2_close };

static void on_sess_timer(struct sn_loop *loop, struct sn_timer *t);

/* The connection is gone: every request on it fails; it reconnects. */
static void sess_close(struct h2sess *s, int err)
{
	struct run *run = s->run;
	int was_ready = s->state == CONN_IDLE;

	sn_timer_stop(&run->loop, &s->timer);
	if (s->io.fd >= 0) {
		sn_io_stop(&run->loop, &s->io);
		close(s->io.fd);
		s->io.fd = -1;
	}
	sn_h2c_free(s->codec);   /* no callbacks */
	s->codec = NULL;
	sn_buf_release(&run->pool, &s->out);
	s->state = CONN_CLOSED;
	for (unsigned i = 0; i < s->n_slots; i++) {
		struct conn *c = &s->slots[i];
		c->st = NULL;
		if (c->state == CONN_IDLE)
			idle_remove(run, c);
		if (c->state == CONN_BUSY)
			slot_fail(c, SN_LOAD_ERR_RESET);
		if (was_ready)
			run->connected--;
		c->state = CONN_CLOSED;
	}
	if (err >= 0 && err != SN_LOAD_ERR_RESET)
		run->r->errors[err]++;
	if (run->sched_done && run->dispatch_seq == run->next_seq)
		return;
	s->state = CONN_BACKOFF;
	sn_timer_start(&run->loop, &s->timer, RECONNECT_BACKOFF_MS, on_sess_timer);
}

static void sess_run(struct h2sess *s)
{
	char buf[16384];

	for (;;) {
		ssize_t n = recv(s->io.fd, buf, sizeof(buf), 0);
		if (n > 0) {
			s->run->r->bytes_received += (uint64_t)n;   /* on the wire, as for HTTP/1.1 */
			if (sn_h2c_recv(s->codec, buf, (size_t)n) != 0) {
				sess_close(s, SN_LOAD_ERR_PROTOCOL);
				return;
			}
			if (s->codec == NULL)
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		sess_close(s, SN_LOAD_ERR_RESET);
		return;
	}
	if (sess_flush(s) != 0 || !sn_h2c_alive(s->codec))
		sess_close(s, SN_LOAD_ERR_RESET);
}

static void on_sess_task(struct sn_loop *loop, struct sn_task *t)
{
	struct h2sess *s = sn_container_of(t, struct h2sess, task);
	(void)loop;
	if (s->state == CONN_CLOSED)
		sess_connect(s);
	else if (s->state == CONN_IDLE && sess_flush(s) != 0)
		sess_close(s, SN_LOAD_ERR_RESET);
}

static void sess_kick(struct h2sess *s)
{
	if (s->state == CONN_IDLE)
		sn_loop_defer(&s->run->loop, &s->task, on_sess_task);
}

static void on_sess_io(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct h2sess *s = sn_container_of(io, struct h2sess, io);
	struct run *run = s->run;

	if (s->state == CONN_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);
		if (!(events & (SN_IO_WRITE | SN_IO_HUP)))
			return;
		if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
			sess_close(s, SN_LOAD_ERR_CONNECT);
			return;
		}
		sn_timer_stop(loop, &s->timer);
		s->state = CONN_IDLE;
		for (unsigned i = 0; i < s->n_slots; i++)
			conn_usable(&s->slots[i]);
		run->r->connects -= s->n_slots - 1;   /* one connection, many slots */
		if (sess_flush(s) != 0)
			sess_close(s, SN_LOAD_ERR_RESET);
		return;
	}
	if (s->state == CONN_IDLE)
		sess_run(s);
}

static void sess_connect(struct h2sess *s)
{
	struct run *run = s->run;
	const struct sn_load_opts *o = run->o;
	int fd = -1;

	if (run->sched_done && run->dispatch_seq == run->next_seq)
		return;
	int r = sn_h2c_new(NULL, &h2_cbs, s, &s->codec) == 0 ? open_target(o, &fd) : -1;
	if (r == -1) {
		sn_h2c_free(s->codec);
		s->codec = NULL;
		s->state = CONN_BACKOFF;
		run->r->errors[SN_LOAD_ERR_CONNECT]++;
		sn_timer_start(&run->loop, &s->timer, RECONNECT_BACKOFF_MS, on_sess_timer);
		return;
	}
	s->io.fd = fd;
	s->state = CONN_CONNECTING;
	for (unsigned i = 0; i < s->n_slots; i++)
		s->slots[i].state = CONN_CONNECTING;
	if (r == -2 || sn_io_start(&run->loop, &s->io, fd, on_sess_io) != 0) {
		sess_close(s, SN_LOAD_ERR_CONNECT);
		return;
	}
	sn_timer_start(&run->loop, &s->timer, o->timeout_ns / 1000000u, on_sess_timer);
}

static void on_sess_timer(struct sn_loop *loop, struct sn_timer *t)
{
	struct h2sess *s = sn_container_of(t, struct h2sess, timer);
	(void)loop;
	if (s->state == CONN_BACKOFF) {
		s->state = CONN_CLOSED;
		sess_connect(s);
	} else if (s->state == CONN_CONNECTING) {
		sess_close(s, SN_LOAD_ERR_CONNECT);
	}
}

/* ---- scheduling -------------------------------------------------------- */

static void slot_send(struct run *run, struct conn *c);

static void send_request(struct run *run, struct conn *c, uint64_t sched)
{
	c->state = CONN_BUSY;
	c->sched_ns = sched;
	c->sent_ns = now_ns();
	c->wpos = 0;
	c->rlen = 0;
	c->head_done = 0;
	run->inflight++;
	run->r->sent++;
	sn_hist_record(&run->r->send_lag, c->sent_ns > sched ? c->sent_ns - sched : 0);
	sn_timer_start(&run->loop, &c->timer, run->o->timeout_ns / 1000000u, on_conn_timer);
	if (c->sess != NULL)
		slot_send(run, c);
	else
		write_some(c);
}

static void arm_pacer(struct run *run, uint64_t at)
{
	struct itimerspec its;

	if (at == run->armed_at)
		return;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)(at / 1000000000u);
	its.it_value.tv_nsec = (long)(at % 1000000000u);
	if (timerfd_settime(run->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		run->armed_at = at;
}

static void on_drain_timer(struct sn_loop *loop, struct sn_timer *t)
{
	struct run *run = sn_container_of(t, struct run, drain_timer);

	/* Whatever is still queued never found a connection. In-flight
	 * requests have had their full timeout and fail on their own timers,
	 * which come first. */
	run->r->errors[SN_LOAD_ERR_UNSENT] += run->next_seq - run->dispatch_seq;
	run->dispatch_seq = run->next_seq;
	for (unsigned i = 0; i < run->n_conns; i++) {
		struct conn *c = &run->conns[i];
		if (c->state == CONN_BUSY)
			conn_close(c, SN_LOAD_ERR_TIMEOUT);
	}
	sn_loop_stop(loop);
}

static void end_scheduling(struct run *run, uint64_t now)
{
	if (run->sched_done)
		return;
	run->sched_done = 1;
	run->window_end = now;
	sn_timer_start(&run->loop, &run->drain_timer, run->o->timeout_ns / 1000000u + 1000, on_drain_timer);
}

static void maybe_finish(struct run *run)
{
	if (run->sched_done && run->dispatch_seq == run->next_seq && run->inflight == 0) {
		/* Close what is idle so the peer sees a clean end. */
		for (unsigned i = 0; i < run->n_conns; i++) {
			struct conn *c = &run->conns[i];
			if (c->state == CONN_IDLE)
				conn_close(c, -1);
		}
		sn_loop_stop(&run->loop);
	}
}

static void pump_now(struct run *run)
{
	const struct sn_load_opts *o = run->o;
	struct sn_load_result *r = run->r;
	uint64_t now = now_ns();
	struct conn *c;

	if (!run->started)
		return;
	if (o->qps > 0) {
		while (!run->sched_done) {
			uint64_t t;
			if (o->requests && run->next_seq >= o->requests) {
				end_scheduling(run, sched_at(run, o->requests));
				break;
			}
			t = sched_at(run, run->next_seq);
			if (run->end_ns && t >= run->end_ns) {
				end_scheduling(run, run->end_ns);
				break;
			}
			if (t > now)
				break;
			run->next_seq++;
			r->scheduled++;
		}
		uint64_t backlog = run->next_seq - run->dispatch_seq;
		if (backlog > o->max_queue) {
			uint64_t drop = backlog - o->max_queue;
			run->dispatch_seq += drop;
			r->errors[SN_LOAD_ERR_OVERFLOW] += drop;
			backlog = o->max_queue;
		}
		if (backlog > r->max_backlog)
			r->max_backlog = backlog;
		while (run->dispatch_seq < run->next_seq && (c = idle_pop(run)) != NULL) {
			send_request(run, c, sched_at(run, run->dispatch_seq));
			run->dispatch_seq++;
		}
		if (!run->sched_done)
			arm_pacer(run, sched_at(run, run->next_seq));
	} else {
		while (!run->sched_done && run->idle_head != NULL) {
			if ((o->requests && run->next_seq >= o->requests) ||
			    (run->end_ns && now >= run->end_ns)) {
				end_scheduling(run, o->requests && run->next_seq >= o->requests ? now : run->end_ns);
				break;
			}
			c = idle_pop(run);
			run->next_seq++;
			run->dispatch_seq++;
			r->scheduled++;
			send_request(run, c, now);
			now = now_ns();
		}
		if (!run->sched_done && run->end_ns)
			arm_pacer(run, run->end_ns);   /* to notice the end when all are busy */
	}
	maybe_finish(run);
}

static void on_pacer(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct run *run = sn_container_of(io, struct run, pacer_io);
	uint64_t expirations;

	while (read(io->fd, &expirations, sizeof(expirations)) > 0)
		;
	run->armed_at = 0;
	pump_now(run);
}

static void on_signal(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct run *run = sn_container_of(io, struct run, signal_io);
	struct signalfd_siginfo si;
	int got = 0;

	while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		got = 1;
	if (!got)
		return;
	if (run->r->interrupted) {
		sn_loop_stop(loop);   /* second ^C: stop at once */
		return;
	}
	run->r->interrupted = 1;
	if (!run->started) {
		sn_loop_stop(loop);
		return;
	}
	/* Stop scheduling; what is queued is dropped, what is in flight may
	 * finish (bounded by the drain timer). */
	end_scheduling(run, now_ns());
	run->r->errors[SN_LOAD_ERR_UNSENT] += run->next_seq - run->dispatch_seq;
	run->dispatch_seq = run->next_seq;
	maybe_finish(run);
}

static void progress_line(struct run *run, int final)
{
	struct sn_load_result *r = run->r;
	uint64_t now = now_ns();
	double secs = (double)(now - run->t0) / 1e9;
	double dt = (double)(now - run->progress_last_ns) / 1e9;
	double rate = dt > 0 ? (double)(r->completed - run->progress_last_done) / dt : 0;

	run->progress_last_ns = now;
	run->progress_last_done = r->completed;
	fprintf(stderr, "\r\033[K%6.1fs  %8.1f req/s  done %-9llu errors %-6llu queue %-6llu p99 %.3f ms%s",
		secs, rate, (unsigned long long)r->completed,
		(unsigned long long)sn_load_errors_total(r),
		(unsigned long long)(run->next_seq - run->dispatch_seq),
		(double)sn_hist_percentile(&r->latency, 99.0) / 1e6, final ? "\n" : "");
	fflush(stderr);
}

static void on_progress(struct sn_loop *loop, struct sn_timer *t)
{
	struct run *run = sn_container_of(t, struct run, progress_timer);

	progress_line(run, 0);
	sn_timer_start(loop, t, 1000, on_progress);
}

/* ---- the run ----------------------------------------------------------- */

static int build_request(struct run *run)
{
	const struct sn_load_opts *o = run->o;
	size_t head_cap = 1024 + strlen(o->path) + strlen(o->host);
	int have_host = 0;
	struct sn_h1_writer w;

	for (size_t i = 0; i < o->num_headers; i++) {
		head_cap += strlen(o->headers[i]) + 4;
		if (strncasecmp(o->headers[i], "host:", 5) == 0)
			have_host = 1;
	}
	run->req = malloc(head_cap + o->body_size);
	if (run->req == NULL)
		return SN_ENOMEM;
	sn_h1w_init(&w, run->req, head_cap);
	sn_h1w_request_line(&w, sn_str_make(o->method, strlen(o->method)), sn_str_make(o->path, strlen(o->path)));
	if (!have_host)
		sn_h1w_header_cstr(&w, "Host", o->host);
	sn_h1w_header_cstr(&w, "User-Agent", "sinew-load/" SINEW_VERSION);
	for (size_t i = 0; i < o->num_headers; i++) {
		const char *h = o->headers[i];
		const char *colon = strchr(h, ':');
		const char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		sn_h1w_header(&w, sn_str_make(h, (size_t)(colon - h)), sn_str_make(v, strlen(v)));
	}
	if (o->body_size > 0 || strcmp(o->method, "POST") == 0 || strcmp(o->method, "PUT") == 0)
		sn_h1w_header_u64(&w, "Content-Length", o->body_size);
	sn_h1w_end(&w);
	if (w.overflow)
		return SN_EINVAL;
	memset(run->req + w.len, 'x', o->body_size);
	run->req_len = w.len + o->body_size;
	run->method = sn_str_make(o->method, strlen(o->method));
	/* --h2: the same request as fields (Host as :authority). */
	size_t n = 0;
	struct sn_str authority = sn_str_make(o->host, strlen(o->host));
	for (size_t i = 0; i < o->num_headers; i++) {
		const char *h = o->headers[i];
		const char *colon = strchr(h, ':');
		const char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		if ((size_t)(colon - h) == 4 && strncasecmp(h, "host", 4) == 0) {
			authority = sn_str_make(v, strlen(v));
			continue;
		}
		run->h2fields[n++] = (struct sn_http_field){ sn_str_make(h, (size_t)(colon - h)), sn_str_make(v, strlen(v)) };
	}
	run->h2fields[n++] = (struct sn_http_field){ SN_STR_LIT("user-agent"), SN_STR_LIT("sinew-load/" SINEW_VERSION) };
	run->h2head = (struct sn_http_head){ .method = run->method, .scheme = SN_STR_LIT("http"), .authority = authority,
					     .path = sn_str_make(o->path, strlen(o->path)), .fields = run->h2fields,
					     .n_fields = n, .content_length = -1 };
	return 0;
}

static int run_load(const struct sn_load_opts *o, struct sn_load_result *r)
{
	struct run run;
	sigset_t sigs;
	int rc = 1;

	memset(&run, 0, sizeof(run));
	run.o = o;
	run.r = r;
	run.tfd = -1;
	run.sfd = -1;
	run.idle_tail = &run.idle_head;
	run.tty = !o->quiet && isatty(STDERR_FILENO);
	if (sn_hist_init(&r->latency, HIST_HIGHEST_NS) != 0 || sn_hist_init(&r->service, HIST_HIGHEST_NS) != 0 ||
	    sn_hist_init(&r->send_lag, HIST_HIGHEST_NS) != 0) {
		fprintf(stderr, "sinew load: out of memory\n");
		return 1;
	}
	if (build_request(&run) != 0) {
		fprintf(stderr, "sinew load: request head too large\n");
		goto out;
	}
	/* Wake-ups within microseconds of the due time, not the default 50 µs
	 * slack: the pacer's lateness is part of what is measured. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	sn_buf_pool_init(&run.pool, SN_BUF_DEFAULT_SIZE, 64);
	if (sn_loop_init(&run.loop) != 0) {
		fprintf(stderr, "sinew load: event loop: %s\n", strerror(errno));
		goto out;
	}
	run.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	run.sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	if (run.tfd < 0 || run.sfd < 0 || sn_io_start(&run.loop, &run.pacer_io, run.tfd, on_pacer) != 0 ||
	    sn_io_start(&run.loop, &run.signal_io, run.sfd, on_signal) != 0) {
		fprintf(stderr, "sinew load: timerfd/signalfd: %s\n", strerror(errno));
		goto out_loop;
	}
	run.pump_task.cb = on_pump_task;
	/* A request slot per connection; with --h2, N per connection. */
	run.n_conns = o->h2_streams > 0 ? o->connections * o->h2_streams : o->connections;
	run.conns = calloc(run.n_conns, sizeof(*run.conns));
	if (run.conns == NULL)
		goto out_loop;
	for (unsigned i = 0; i < run.n_conns; i++) {
		struct conn *c = &run.conns[i];
		c->run = &run;
		c->io.fd = -1;
		c->rbuf = malloc(RBUF_SIZE);
		if (c->rbuf == NULL) {
			fprintf(stderr, "sinew load: out of memory\n");
			goto out_conns;
		}
	}
	if (o->h2_streams > 0) {
		/* --h2: `connections` sessions of h2_streams slots each. */
		unsigned n_sess = o->connections;
		run.sessions = calloc(n_sess, sizeof(*run.sessions));
		if (run.sessions == NULL)
			goto out_conns;
		for (unsigned i = 0; i < n_sess; i++) {
			struct h2sess *s = &run.sessions[i];
			s->run = &run;
			s->io.fd = -1;
			s->slots = &run.conns[i * o->h2_streams];
			s->n_slots = o->h2_streams;
			for (unsigned k = 0; k < s->n_slots; k++)
				s->slots[k].sess = s;
		}
	}
	if (o->qps > 0)
		run.interval_ns = 1e9 / o->qps;

	/* Warm-up: connect everything before t0, so that the first requests
	 * do not pay for connection setup. Bounded: a target that does not
	 * answer still gets its run (and its connect errors). */
	for (unsigned i = 0; i < run.n_conns; i++)
		conn_connect(&run.conns[i]);
	uint64_t warm_until = sn_clock_ms() + WARMUP_MAX_MS;
	while (run.connected < run.n_conns && sn_clock_ms() < warm_until && !r->interrupted)
		sn_loop_run_once(&run.loop, 10);
	if (r->interrupted)
		goto report;

	run.t0 = now_ns();
	run.progress_last_ns = run.t0;
	if (o->duration_ns)
		run.end_ns = run.t0 + o->duration_ns;
	run.started = 1;
	if (run.tty)
		sn_timer_start(&run.loop, &run.progress_timer, 1000, on_progress);
	pump_now(&run);
	if (!run.loop.stop)
		sn_loop_run(&run.loop);
	if (run.tty)
		progress_line(&run, 1);

report:
	for (unsigned i = 0; run.sessions != NULL && i < o->connections; i++) {
		struct h2sess *s = &run.sessions[i];
		sn_timer_stop(&run.loop, &s->timer);
		if (s->io.fd >= 0) {
			sn_io_stop(&run.loop, &s->io);
			close(s->io.fd);
			s->io.fd = -1;
		}
		sn_h2c_free(s->codec);
		s->codec = NULL;
		sn_buf_release(&run.pool, &s->out);
	}
	for (unsigned i = 0; i < run.n_conns; i++) {
		struct conn *c = &run.conns[i];
		sn_timer_stop(&run.loop, &c->timer);
		if (c->io.fd >= 0) {
			sn_io_stop(&run.loop, &c->io);
			close(c->io.fd);
			c->io.fd = -1;
		}
	}
	{
		uint64_t end = run.window_end;
		if (o->qps <= 0 || run.last_done_ns > end)
			end = run.last_done_ns;
		if (r->interrupted && run.last_done_ns > end)
			end = run.last_done_ns;
		r->elapsed_ns = run.started && end > run.t0 ? end - run.t0 : 0;
	}
	rc = 0;
out_conns:
	for (unsigned i = 0; i < run.n_conns; i++)
		free(run.conns[i].rbuf);
	free(run.conns);
	free(run.sessions);
out_loop:
	if (run.tfd >= 0) {
		sn_io_stop(&run.loop, &run.pacer_io);
		close(run.tfd);
	}
	if (run.sfd >= 0) {
		sn_io_stop(&run.loop, &run.signal_io);
		close(run.sfd);
	}
	sn_loop_dispose(&run.loop);
out:
	sn_buf_pool_dispose(&run.pool);
	free(run.req);
	return rc;
}

/* ---- options ----------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew load [options] URL\n"
		"\n"
		"Sends HTTP/1.1 (or, with --h2, HTTP/2) requests to URL (http://host[:port][/path]) at a fixed rate over\n"
		"keep-alive connections (open loop: a request is due at its time whether or not\n"
		"earlier ones have been answered) and reports the latency from each request's\n"
		"scheduled send time (corrected for coordinated omission) and the service time\n"
		"from its actual send.\n"
		"\n"
		"  -q, --qps N             requests per second over all connections (default 100;\n"
		"                          0: as fast as the connections go, closed loop)\n"
		"  -c, --connections N     keep-alive connections, one request in flight each (default 16)\n"
		"      --h2 N              HTTP/2 with prior knowledge (h2c), N requests in flight on each\n"
		"                          connection (h2load's -m)\n"
		"  -d, --duration D        how long to send: 500ms, 3s, 1m (default 5s unless --requests)\n"
		"  -n, --requests N        how many requests to send (with --duration: whichever ends first)\n"
		"  -m, --method M          request method (default GET, or POST with --body-size)\n"
		"  -H, --header 'N: V'     add a request header (repeatable; a Host header replaces the URL's)\n"
		"  -b, --body-size N       send a body of N bytes (up to 64 MiB)\n"
		"  -t, --timeout D         per request and per connect (default 5s)\n"
		"      --queue N           requests that may wait for a free connection (default: one\n"
		"                          second's worth, at least 1000); past it the oldest is dropped\n"
		"      --json              print the result as JSON\n"
		"      --quiet             no progress line (it only appears on a terminal anyway)\n"
		"  -h, --help\n"
		"\n"
		"Errors are counted by kind: connect, timeout, reset (closed mid-exchange), protocol\n"
		"(malformed response), overflow (queue full), unsent (queued at the end), status (>= 400).\n"
		"Exit status: 0 when every request got a response below 400, 1 otherwise, 2 on a usage error.\n");
}

/* "3s", "500ms", "1m", "2h", "1.5s", "250us"; a bare number is seconds. */
static int parse_duration_ns(const char *s, uint64_t *out)
{
	char *end;
	double v, mul;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno != 0 || !(v >= 0))
		return -1;
	if (*end == '\0' || strcmp(end, "s") == 0)
		mul = 1e9;
	else if (strcmp(end, "ms") == 0)
		mul = 1e6;
	else if (strcmp(end, "us") == 0)
		mul = 1e3;
	else if (strcmp(end, "m") == 0)
		mul = 60e9;
	else if (strcmp(end, "h") == 0)
		mul = 3600e9;
	else
		return -1;
	if (v * mul > 1e18)
		return -1;
	*out = (uint64_t)(v * mul);
	return 0;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s == '\0' || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0' || errno != 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

static int valid_header(const char *h)
{
	const char *colon = strchr(h, ':');

	return colon != NULL && sn_h1_is_token(sn_str_make(h, (size_t)(colon - h))) &&
	       sn_h1_is_field_value(sn_str_make(colon + 1, strlen(colon + 1)));
}

/* Splits http://host[:port][/path] and resolves host. */
static int parse_url(struct sn_load_opts *o, const char *url)
{
	char host[256];
	const char *p, *hs, *he, *port = "80";
	char portbuf[8];
	struct addrinfo hints, *ai = NULL;
	int rc;

	if (strncmp(url, "http://", 7) != 0) {
		fprintf(stderr, "sinew load: %s: want an http:// URL (https and HTTP/2 are not supported yet)\n", url);
		return -1;
	}
	p = url + 7;
	const char *slash = strchr(p, '/');
	size_t authlen = slash != NULL ? (size_t)(slash - p) : strlen(p);
	o->path = slash != NULL ? slash : "/";
	if (authlen == 0 || authlen >= sizeof(o->host)) {
		fprintf(stderr, "sinew load: %s: missing or overlong host\n", url);
		return -1;
	}
	memcpy(o->host, p, authlen);
	o->host[authlen] = '\0';
	hs = o->host;
	if (*hs == '[') {
		he = strchr(hs, ']');
		if (he == NULL) {
			fprintf(stderr, "sinew load: %s: unterminated [IPv6] host\n", url);
			return -1;
		}
		hs++;
		if (he[1] == ':')
			port = he + 2;
		else if (he[1] != '\0')
			goto bad;
	} else {
		he = strchr(hs, ':');
		if (he != NULL)
			port = he + 1;
		else
			he = hs + strlen(hs);
	}
	if ((size_t)(he - hs) >= sizeof(host) || he == hs)
		goto bad;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	uint64_t pn;
	if (parse_u64(port, 65535, &pn) != 0 || pn == 0)
		goto bad;
	snprintf(portbuf, sizeof(portbuf), "%u", (unsigned)pn);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, portbuf, &hints, &ai);
	if (rc != 0 || ai == NULL) {
		fprintf(stderr, "sinew load: %s: cannot resolve %s: %s\n", url, host, gai_strerror(rc));
		return -1;
	}
	memcpy(&o->addr, ai->ai_addr, ai->ai_addrlen);
	o->addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	o->url = url;
	return 0;
bad:
	fprintf(stderr, "sinew load: %s: want http://host[:port][/path]\n", url);
	return -1;
}

int sn_cli_load(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "qps", required_argument, NULL, 'q' },
		{ "connections", required_argument, NULL, 'c' },
		{ "duration", required_argument, NULL, 'd' },
		{ "requests", required_argument, NULL, 'n' },
		{ "method", required_argument, NULL, 'm' },
		{ "header", required_argument, NULL, 'H' },
		{ "body-size", required_argument, NULL, 'b' },
		{ "timeout", required_argument, NULL, 't' },
		{ "queue", required_argument, NULL, 'Q' },
		{ "json", no_argument, NULL, 'J' },
		{ "quiet", no_argument, NULL, 'S' },
		{ "h2", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sn_load_opts o;
	struct sn_load_result *r;
	uint64_t v;
	int opt, have_queue = 0, rc;
	char *end;

	memset(&o, 0, sizeof(o));
	o.qps = 100;
	o.connections = 16;
	o.timeout_ns = 5000000000ull;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":q:c:d:n:m:H:b:t:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'q':
			errno = 0;
			o.qps = strtod(optarg, &end);
			if (end == optarg || *end != '\0' || errno != 0 || !(o.qps >= 0) || o.qps > 1e7) {
				fprintf(stderr, "sinew load: --qps %s: want a rate from 0 to 10000000\n", optarg);
				return 2;
			}
			break;
		case 'c':
			if (parse_u64(optarg, SN_LOAD_MAX_CONNECTIONS, &v) != 0 || v == 0) {
				fprintf(stderr, "sinew load: --connections %s: want 1 to %u\n", optarg, SN_LOAD_MAX_CONNECTIONS);
				return 2;
			}
			o.connections = (unsigned)v;
			break;
		case 'd':
			if (parse_duration_ns(optarg, &o.duration_ns) != 0 || o.duration_ns == 0) {
				fprintf(stderr, "sinew load: --duration %s: not a duration; write e.g. 3s, 500ms, 1m\n", optarg);
				return 2;
			}
			break;
		case 'n':
			if (parse_u64(optarg, UINT64_MAX >> 8, &o.requests) != 0 || o.requests == 0) {
				fprintf(stderr, "sinew load: --requests %s: want a positive whole number\n", optarg);
				return 2;
			}
			break;
		case 'm':
			if (!sn_h1_is_token(sn_str_make(optarg, strlen(optarg)))) {
				fprintf(stderr, "sinew load: --method %s: not a method token\n", optarg);
				return 2;
			}
			o.method = optarg;
			break;
		case 'H':
			if (!valid_header(optarg)) {
				fprintf(stderr, "sinew load: -H '%s': want 'name: value' with a token name and no control characters\n", optarg);
				return 2;
			}
			if (o.num_headers == SN_LOAD_MAX_HEADERS) {
				fprintf(stderr, "sinew load: at most %d -H headers\n", SN_LOAD_MAX_HEADERS);
				return 2;
			}
			o.headers[o.num_headers++] = optarg;
			break;
		case 'b':
			if (parse_u64(optarg, SN_LOAD_MAX_BODY, &v) != 0) {
				fprintf(stderr, "sinew load: --body-size %s: want 0 to %u bytes\n", optarg, SN_LOAD_MAX_BODY);
				return 2;
			}
			o.body_size = (size_t)v;
			break;
		case 't':
			if (parse_duration_ns(optarg, &o.timeout_ns) != 0 || o.timeout_ns < 1000000u) {
				fprintf(stderr, "sinew load: --timeout %s: not a duration of at least 1ms\n", optarg);
				return 2;
			}
			break;
		case 'Q':
			if (parse_u64(optarg, 100000000, &o.max_queue) != 0) {
				fprintf(stderr, "sinew load: --queue %s: want 0 to 100000000\n", optarg);
				return 2;
			}
			have_queue = 1;
			break;
		case 'T': {
			uint64_t streams;
			if (parse_u64(optarg, 1000, &streams) != 0 || streams == 0) {
				fprintf(stderr, "sinew load: --h2 %s: want 1 to 1000 streams per connection\n", optarg);
				return 2;
			}
			o.h2_streams = (unsigned)streams;
			break;
		}
		case 'J':
			o.json = 1;
			break;
		case 'S':
			o.quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			fprintf(stderr, "sinew load: %s needs a value\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "sinew load: unknown option %s; `sinew load --help` lists them\n", argv[optind - 1]);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	if (o.method == NULL)
		o.method = o.body_size > 0 ? "POST" : "GET";
	if (o.duration_ns == 0 && o.requests == 0)
		o.duration_ns = 5000000000ull;
	if (!have_queue)
		o.max_queue = o.qps > 1000 ? (uint64_t)o.qps : 1000;
	if (parse_url(&o, argv[optind]) != 0)
		return 2;

	/* Each connection is a descriptor; ask for what the hard limit allows. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)o.connections + 64) {
		rl.rlim_cur = SN_MIN(rl.rlim_max, (rlim_t)o.connections + 64);
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return 1;
	rc = run_load(&o, r);
	if (rc == 0) {
		if (o.json)
			sn_load_report_json(stdout, &o, r);
		else
			sn_load_report_text(stdout, &o, r);
		rc = (sn_load_errors_total(r) > 0 || r->completed == 0) ? 1 : 0;
	}
	sn_hist_dispose(&r->latency);
	sn_hist_dispose(&r->service);
	sn_hist_dispose(&r->send_lag);
	free(r);
	return rc;
}
