/* The services' HTTP/1.1 server: one thread per connection, at most
 * BK_MAX_CONNS of them, blocking I/O under poll() deadlines. Requests are
 * parsed by Sinew's own strict parser (sinew/h1.h). Keep-alive follows the
 * request (HTTP/1.1 default, Connection: close, HTTP/1.0 keep-alive);
 * pipelined requests are answered in order. Every response carries a
 * Content-Length. A demo server: simple, bounded and never blocked forever
 * by one client. */

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "bookinfo.h"

enum { SLOT_FREE, SLOT_RUNNING, SLOT_DONE };

#define DRAIN_MS 12000  /* past it, sockets of unfinished requests are shut down */

struct bk_server;

struct bk_conn {
	struct bk_server *srv;
	pthread_t tid;
	int state;          /* SLOT_*, under srv->mu */
	int fd;             /* client socket; closed under srv->mu */
	int upstream_fd;    /* socket of a call in progress, or -1 */
	unsigned long id;
	char peer[64];
};

struct bk_server {
	struct bk_app *app;
	bk_handler_cb handler;
	pthread_mutex_t mu;
	int force;          /* shut sockets down as they are registered */
	struct bk_conn conns[BK_MAX_CONNS];
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void bk_conn_set_upstream(struct bk_conn *conn, int fd)
{
	if (conn == NULL)
		return;
	pthread_mutex_lock(&conn->srv->mu);
	conn->upstream_fd = fd;
	if (fd >= 0 && conn->srv->force)
		shutdown(fd, SHUT_RDWR);
	pthread_mutex_unlock(&conn->srv->mu);
}

struct sn_str bk_request_header(const struct bk_request *req, const char *name)
{
	int i = sn_h1_find_header(req->h1.headers, req->h1.num_headers,
				  sn_str_make(name, strlen(name)), 0);
	if (i < 0)
		return SN_STR_NULL;
	return req->h1.headers[i].value;
}

void bk_response_header(struct bk_response *res, const char *name, const char *value)
{
	struct sn_h1_writer w;
	sn_h1w_init(&w, res->headers + res->headers_len, sizeof(res->headers) - res->headers_len);
	sn_h1w_header_cstr(&w, name, value);
	if (!w.overflow)
		res->headers_len += w.len;
}

/* Reads into buf. Before the first byte of a request (idle) the wait is
 * cut short when the server stops. Returns bytes read, 0 on EOF, timeout,
 * stop or error. */
static ssize_t read_some(struct bk_conn *c, char *buf, size_t cap, int idle)
{
	int64_t deadline = now_ms() + (idle ? BK_IDLE_TIMEOUT_MS : BK_READ_TIMEOUT_MS);
	for (;;) {
		if (idle && *c->srv->app->stopping)
			return 0;
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int r = poll(&p, 1, (int)SN_MIN(left, 250));
		if (r < 0 && errno != EINTR)
			return 0;
		if (r <= 0)
			continue;
		ssize_t n = recv(c->fd, buf, cap, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		return n < 0 ? 0 : n;
	}
}

static int write_all(int fd, struct iovec *iov, int iovcnt)
{
	int64_t deadline = now_ms() + BK_WRITE_TIMEOUT_MS;
	while (iovcnt > 0) {
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
		ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -1;
			int64_t left = deadline - now_ms();
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			if (left <= 0 || poll(&p, 1, (int)left) <= 0)
				return -1;
			continue;
		}
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

static void log_request(struct bk_conn *c, const struct bk_request *req, int status,
			size_t bytes, int64_t elapsed)
{
	struct timespec ts;
	struct tm tm;
	char when[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	struct sn_str user = req ? bk_request_header(req, "end-user") : SN_STR_NULL;
	struct sn_str rid = req ? bk_request_header(req, "x-request-id") : SN_STR_NULL;
	struct sn_str m = req ? req->h1.method : SN_STR_LIT("-");
	struct sn_str t = req ? req->h1.target : SN_STR_LIT("-");
	fprintf(stderr, "%s.%03ldZ %s conn=%lu %s \"%.*s %.*s\" %d %zu %lldms%s%.*s%s%.*s\n", when,
		ts.tv_nsec / 1000000, c->srv->app->name, c->id, c->peer, (int)SN_MIN(m.len, 16), m.p,
		(int)SN_MIN(t.len, 512), t.p, status, bytes, (long long)elapsed,
		user.p ? " end-user=" : "", (int)SN_MIN(user.len, 64), user.p ? user.p : "",
		rid.p ? " x-request-id=" : "", (int)SN_MIN(rid.len, 64), rid.p ? rid.p : "");
}

/* A response the server makes itself (malformed request, limits); the
 * connection is closed after it. */
static void send_error(struct bk_conn *c, int status, const char *reason)
{
	char head[512], body[256];
	struct sn_h1_writer w;
	int blen = snprintf(body, sizeof(body), "{\"error\": \"%s\"}\n",
			    reason ? reason : sn_h1_reason_phrase(status));
	if (blen < 0 || (size_t)blen >= sizeof(body))
		blen = 0;
	sn_h1w_init(&w, head, sizeof(head));
	sn_h1w_status_line(&w, status, NULL);
	sn_h1w_header_cstr(&w, "Content-Type", "application/json");
	sn_h1w_header_u64(&w, "Content-Length", (uint64_t)blen);
	sn_h1w_header_cstr(&w, "Connection", "close");
	sn_h1w_end(&w);
	if (w.overflow)
		return;
	struct iovec iov[2] = { { head, w.len }, { body, (size_t)blen } };
	write_all(c->fd, iov, 2);
	log_request(c, NULL, status, (size_t)blen, 0);
}

static int is_method(struct sn_str m, const char *name)
{
	return sn_str_eq_cstr(m, name);
}

/* Writes res for req. keep says whether the connection stays open.
 * Returns 0 or -1 when the client is gone. */
static int send_response(struct bk_conn *c, const struct bk_request *req,
			 struct bk_response *res, int keep)
{
	char head[2048];
	struct sn_h1_writer w;
	sn_h1w_init(&w, head, sizeof(head));
	sn_h1w_status_line(&w, res->status, NULL);
	if (res->content_type)
		sn_h1w_header_cstr(&w, "Content-Type", res->content_type);
	sn_h1w_header_u64(&w, "Content-Length", res->body.len);
	sn_h1w_raw(&w, res->headers, res->headers_len);
	if (!keep)
		sn_h1w_header_cstr(&w, "Connection", "close");
	else if (req->h1.minor_version == 0)
		sn_h1w_header_cstr(&w, "Connection", "keep-alive");
	sn_h1w_end(&w);
	if (w.overflow)
		return -1;
	struct iovec iov[2] = { { head, w.len }, { res->body.p, res->body.len } };
	int n = is_method(req->h1.method, "HEAD") || res->body.len == 0 ? 1 : 2;
	return write_all(c->fd, iov, n);
}

/* Serves one connection until it closes, errs, times out or the server
 * stops. */
static void serve_conn(struct bk_conn *c)
{
	const size_t cap = BK_MAX_HEAD + BK_MAX_BODY;
	char *buf = malloc(cap);
	size_t have = 0;
	int served = 0;
	const struct sn_h1_limits lim = {
		.max_request_line = SN_H1_DEFAULT_MAX_REQUEST_LINE,
		.max_head_bytes = BK_MAX_HEAD,
		.max_headers = SN_H1_DEFAULT_MAX_HEADERS,
	};
	if (buf == NULL)
		return;
	for (;;) {
		struct sn_h1_header hdrs[SN_H1_DEFAULT_MAX_HEADERS];
		struct bk_request req;
		int head_len = SN_H1_INCOMPLETE;
		memset(&req, 0, sizeof(req));
		req.conn = c;
		for (;;) {
			if (have > 0) {
				head_len = sn_h1_parse_request(buf, have, &req.h1, hdrs,
							       SN_ARRAY_LEN(hdrs), &lim);
				if (head_len != SN_H1_INCOMPLETE)
					break;
			}
			ssize_t n = read_some(c, buf + have, cap - have, have == 0);
			if (n <= 0)
				goto out;
			have += (size_t)n;
		}
		int64_t t0 = now_ms();
		if (head_len < 0) {
			send_error(c, req.h1.err_status ? req.h1.err_status : 400, req.h1.err_reason);
			goto out;
		}
		if (req.h1.upgrade || is_method(req.h1.method, "CONNECT")) {
			send_error(c, 501, "upgrade and CONNECT are not supported");
			goto out;
		}
		size_t body_len = 0;
		if (req.h1.body == SN_H1_BODY_CHUNKED) {
			send_error(c, 411, "a request body needs a Content-Length");
			goto out;
		}
		if (req.h1.body == SN_H1_BODY_LENGTH) {
			if (req.h1.content_length > BK_MAX_BODY) {
				send_error(c, 413, "request body too large");
				goto out;
			}
			body_len = (size_t)req.h1.content_length;
		}
		if (body_len > 0 && have < (size_t)head_len + body_len && req.h1.expect_continue) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
			struct iovec iov = { (void *)cont, sizeof(cont) - 1 };
			if (write_all(c->fd, &iov, 1) != 0)
				goto out;
		}
		while (have < (size_t)head_len + body_len) {
			ssize_t n = read_some(c, buf + have, cap - have, 0);
			if (n <= 0)
				goto out;
			have += (size_t)n;
		}
		req.body = sn_str_make(buf + head_len, body_len);
		const char *q = memchr(req.h1.path.p, '?', req.h1.path.len);
		if (q) {
			req.path = sn_str_make(req.h1.path.p, (size_t)(q - req.h1.path.p));
			req.query = sn_str_make(q + 1, req.h1.path.len - req.path.len - 1);
		} else {
			req.path = req.h1.path;
		}

		struct bk_response res;
		memset(&res, 0, sizeof(res));
		res.status = 500;
		bk_buf_init(&res.body, BK_MAX_RESPONSE);
		c->srv->handler(c->srv->app, &req, &res);
		if (res.body.overflow) {
			res.body.overflow = 0;
			bk_json_reply(&res, 500, "{\"error\": \"response too large\"}");
		}
		served++;
		int keep = req.h1.keep_alive && served < BK_MAX_REQUESTS_PER_CONN &&
			   !*c->srv->app->stopping;
		int rc = send_response(c, &req, &res, keep);
		log_request(c, &req, res.status, res.body.len, now_ms() - t0);
		bk_buf_free(&res.body);
		if (rc != 0 || !keep)
			goto out;
		size_t used = (size_t)head_len + body_len;
		memmove(buf, buf + used, have - used);
		have -= used;
	}
out:
	free(buf);
}

static void *conn_main(void *arg)
{
	struct bk_conn *c = arg;
	serve_conn(c);
	pthread_mutex_lock(&c->srv->mu);
	close(c->fd);
	c->fd = -1;
	c->state = SLOT_DONE;
	pthread_mutex_unlock(&c->srv->mu);
	return NULL;
}

/* Joins finished connection threads; returns how many still run. */
static int reap(struct bk_server *srv)
{
	int running = 0;
	for (int i = 0; i < BK_MAX_CONNS; i++) {
		struct bk_conn *c = &srv->conns[i];
		pthread_mutex_lock(&srv->mu);
		int st = c->state;
		pthread_mutex_unlock(&srv->mu);
		if (st == SLOT_DONE) {
			pthread_join(c->tid, NULL);
			pthread_mutex_lock(&srv->mu);
			c->state = SLOT_FREE;
			pthread_mutex_unlock(&srv->mu);
		} else if (st == SLOT_RUNNING) {
			running++;
		}
	}
	return running;
}

static void peer_name(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		port = ntohs(a->sin_port);
		snprintf(out, cap, "%s:%d", host, port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		port = ntohs(a->sin6_port);
		snprintf(out, cap, "[%s]:%d", host, port);
	} else {
		snprintf(out, cap, "local");
	}
}

static void refuse_busy(int fd)
{
	static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
				   "Content-Length: 28\r\nConnection: close\r\n\r\n{\"error\": \"server is busy\"}\n";
	ssize_t n = send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)n;
	close(fd);
}

int bk_serve(struct bk_app *app, int listen_fd, bk_handler_cb handler)
{
	struct bk_server *srv = calloc(1, sizeof(*srv));
	unsigned long next_id = 1;
	pthread_attr_t attr;
	if (srv == NULL) {
		close(listen_fd);
		return SN_ENOMEM;
	}
	srv->app = app;
	srv->handler = handler;
	pthread_mutex_init(&srv->mu, NULL);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 1024 * 1024);
	while (!*app->stopping) {
		struct pollfd p = { .fd = listen_fd, .events = POLLIN };
		int r = poll(&p, 1, 250);
		reap(srv);
		if (r <= 0)
			continue;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				fprintf(stderr, "%s: accept: %s; pausing\n", app->name, strerror(errno));
				poll(NULL, 0, 100);
			}
			continue;
		}
		struct bk_conn *c = NULL;
		pthread_mutex_lock(&srv->mu);
		for (int i = 0; i < BK_MAX_CONNS && c == NULL; i++)
			if (srv->conns[i].state == SLOT_FREE)
				c = &srv->conns[i];
		pthread_mutex_unlock(&srv->mu);
		if (c == NULL) {
			refuse_busy(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->srv = srv;
		c->fd = fd;
		c->upstream_fd = -1;
		c->id = next_id++;
		peer_name(&ss, c->peer, sizeof(c->peer));
		pthread_mutex_lock(&srv->mu);
		c->state = SLOT_RUNNING;
		pthread_mutex_unlock(&srv->mu);
		if (pthread_create(&c->tid, &attr, conn_main, c) != 0) {
			pthread_mutex_lock(&srv->mu);
			c->state = SLOT_FREE;
			pthread_mutex_unlock(&srv->mu);
			refuse_busy(fd);
		}
	}
	close(listen_fd);

	/* Drain: idle connections close within 250 ms; a request in progress
	 * finishes, bounded by its calls' timeouts, or is cut at DRAIN_MS. */
	int64_t deadline = now_ms() + DRAIN_MS;
	while (reap(srv) > 0) {
		if (now_ms() > deadline && !srv->force) {
			pthread_mutex_lock(&srv->mu);
			srv->force = 1;
			for (int i = 0; i < BK_MAX_CONNS; i++) {
				struct bk_conn *c = &srv->conns[i];
				if (c->state != SLOT_RUNNING)
					continue;
				if (c->fd >= 0)
					shutdown(c->fd, SHUT_RDWR);
				if (c->upstream_fd >= 0)
					shutdown(c->upstream_fd, SHUT_RDWR);
			}
			pthread_mutex_unlock(&srv->mu);
		}
		poll(NULL, 0, 50);
	}
	pthread_attr_destroy(&attr);
	pthread_mutex_destroy(&srv->mu);
	free(srv);
	return 0;
}

int bk_listen(const char *spec, char *err, size_t errlen)
{
	char host[BK_NAME_MAX] = "0.0.0.0";
	const char *port = spec;
	const char *colon = strrchr(spec, ':');
	if (colon) {
		const char *h = spec;
		size_t hl = (size_t)(colon - spec);
		if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
			h++;
			hl -= 2;
		}
		if (hl == 0 || hl >= sizeof(host)) {
			snprintf(err, errlen, "--listen %s: expected ADDR:PORT", spec);
			return -1;
		}
		memcpy(host, h, hl);
		host[hl] = '\0';
		port = colon + 1;
	}
	if (bk_parse_id(sn_str_make(port, strlen(port))) < 0 ||
	    bk_parse_id(sn_str_make(port, strlen(port))) > 65535) {
		snprintf(err, errlen, "--listen %s: bad port", spec);
		return -1;
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "--listen %s: %s (give a numeric address)", spec,
			 gai_strerror(rc));
		return -1;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 512) != 0) {
		snprintf(err, errlen, "--listen %s: %s", spec, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	return fd;
}
