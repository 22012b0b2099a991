/* The blocking HTTP/1.1 client (include/sinew/http_client.h): one
 * request per connection, bounded in time and size, responses parsed with
 * the project's own parser. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "sinew/common.h"
#include "sinew/fork_gate.h"
#include "sinew/h1.h"
#include "sinew/http_client.h"
#include "sinew/loop.h"

#ifndef SINEW_VERSION
#define SINEW_VERSION "0.1.0-dev"
#endif

#define HEAD_MAX 65536
#define REQ_HEAD_MAX 16384
#define MAX_HEADERS 100

/* strerror with a lower-case first letter, to sit inside a sentence. */
static void reason(int e, char *buf, size_t size)
{
	snprintf(buf, size, "%s", e == ETIMEDOUT ? "timed out" : strerror(e));
	if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
		buf[0] = (char)(buf[0] - 'A' + 'a');
}

int sn_http_url_parse(const char *s, struct sn_http_url *u, char *err, size_t err_size)
{
	memset(u, 0, sizeof(*u));
	if (strncmp(s, "https://", 8) == 0) {
		snprintf(err, err_size, "%s: https is not supported yet (sinewd's API is plain HTTP on loopback)", s);
		return SN_EINVAL;
	}
	if (strncmp(s, "http://", 7) != 0) {
		snprintf(err, err_size, "%s: want an http:// URL, e.g. http://127.0.0.1:15080", s);
		return SN_EINVAL;
	}
	const char *a = s + 7;
	const char *end = a + strcspn(a, "/?#");
	if (*end != '\0' && strcmp(end, "/") != 0) {
		snprintf(err, err_size, "%s: want scheme, host and port only, e.g. http://127.0.0.1:15080", s);
		return SN_EINVAL;
	}
	const char *host = a, *host_end, *port = NULL;
	if (*a == '[') {
		const char *rb = memchr(a, ']', (size_t)(end - a));
		if (rb == NULL)
			goto bad;
		host = a + 1;
		host_end = rb;
		if (rb + 1 < end) {
			if (rb[1] != ':')
				goto bad;
			port = rb + 2;
		}
	} else {
		const char *colon = memchr(a, ':', (size_t)(end - a));
		host_end = colon ? colon : end;
		port = colon ? colon + 1 : NULL;
	}
	size_t hl = (size_t)(host_end - host);
	if (hl == 0 || hl >= sizeof(u->host))
		goto bad;
	memcpy(u->host, host, hl);
	if (port != NULL) {
		size_t pl = (size_t)(end - port);
		if (pl == 0 || pl >= sizeof(u->port))
			goto bad;
		memcpy(u->port, port, pl);
		for (size_t i = 0; i < pl; i++)
			if (u->port[i] < '0' || u->port[i] > '9')
				goto bad;
		long p = strtol(u->port, NULL, 10);
		if (p <= 0 || p > 65535)
			goto bad;
	} else {
		snprintf(u->port, sizeof(u->port), "80");
	}
	snprintf(u->authority, sizeof(u->authority), "%.*s", (int)(end - a), a);
	snprintf(u->text, sizeof(u->text), "http://%s", u->authority);
	return 0;
bad:
	snprintf(err, err_size, "%s: not a valid URL; want http://HOST:PORT, e.g. http://127.0.0.1:15080", s);
	return SN_EINVAL;
}

void sn_http_response_free(struct sn_http_response *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* Waits for events on fd until deadline. Returns 0 or -1 with errno
 * (ETIMEDOUT). */
static int wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - (long long)sn_clock_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		struct pollfd pfd = { .fd = fd, .events = events };
		sn_fork_gate_pause();   /* a helper thread lets a fork happen only here */
		int n = poll(&pfd, 1, (int)SN_MIN(left, 1000000LL));
		int e = errno;
		sn_fork_gate_resume();
		errno = e;
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

static int connect_to(const struct sn_http_url *u, const struct sn_http_request *rq, long long deadline,
		      int *err_out)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(u->host, u->port, &hints, &res);
	if (rc != 0) {
		*err_out = rc;   /* negative: a getaddrinfo code (EAI_*) */
		return -1;
	}
	int last = ECONNREFUSED;
	int ct = rq->connect_timeout_ms > 0 ? rq->connect_timeout_ms : SN_HTTP_CLIENT_CONNECT_TIMEOUT_MS;
	long long connect_deadline = SN_MIN(deadline, (long long)sn_clock_ms() + ct);
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		int fd = rq->open_socket != NULL
				 ? rq->open_socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK, ai->ai_protocol,
						   rq->socket_arg)
				 : socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			last = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			freeaddrinfo(res);
			return fd;
		}
		if (errno == EINPROGRESS) {
			if (wait_fd(fd, POLLOUT, connect_deadline) == 0) {
				int soerr = 0;
				socklen_t sl = sizeof(soerr);
				if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0) {
					freeaddrinfo(res);
					return fd;
				}
				last = soerr ? soerr : errno;
			} else {
				last = errno;
			}
		} else {
			last = errno;
		}
		close(fd);
	}
	freeaddrinfo(res);
	*err_out = last;
	return -1;
}

/* A connection: a socket, and the TLS session on it when there is one. */
struct conn {
	int fd;
	SSL *ssl;
	char tls_err[120];   /* why the TLS session failed, when it did */
};

/* What an SSL_* call that did not finish wants: 0 after waiting for it
 * (retry), -1 with errno (EIO for a TLS failure). */
static int tls_wait(struct conn *c, int r, long long deadline)
{
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline);
	unsigned long q = ERR_peek_last_error();
	if (e == SSL_ERROR_SSL && q != 0 && ERR_reason_error_string(q) != NULL)
		snprintf(c->tls_err, sizeof(c->tls_err), "TLS: %s", ERR_reason_error_string(q));
	ERR_clear_error();
	if (e != SSL_ERROR_SYSCALL || errno == 0)
		errno = EIO;
	return -1;
}

static int send_all(struct conn *c, const char *p, size_t n, long long deadline)
{
	while (n > 0) {
		if (c->ssl != NULL) {
			size_t w = 0;
			int r = SSL_write_ex(c->ssl, p, n, &w);
			if (r == 1) {
				p += w;
				n -= w;
			} else if (tls_wait(c, r, deadline) != 0) {
				return -1;
			}
			continue;
		}
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(c->fd, POLLOUT, deadline) != 0)
				return -1;
			continue;
		}
		return -1;
	}
	return 0;
}

/* Reads what is available (waiting until deadline) into buf[*len..cap).
 * Returns bytes read, 0 at EOF, -1 with errno. */
static ssize_t recv_some(struct conn *c, char *buf, size_t cap, size_t *len, long long deadline)
{
	for (;;) {
		if (c->ssl != NULL) {
			size_t got = 0;
			int r = SSL_read_ex(c->ssl, buf + *len, cap - *len, &got);
			if (r == 1) {
				*len += got;
				return (ssize_t)got;
			}
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_ZERO_RETURN)
				return 0;   /* close_notify */
			if (tls_wait(c, r, deadline) != 0)
				return -1;
			continue;
		}
		ssize_t r = recv(c->fd, buf + *len, cap - *len, 0);
		if (r >= 0) {
			*len += (size_t)r;
			return r;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		if (wait_fd(c->fd, POLLIN, deadline) != 0)
			return -1;
	}
}

/* TLS on c->fd with ctx, the server checked against host (a name, or an
 * IP address). 0, or -1 with why in err. */
static int tls_start(struct conn *c, SSL_CTX *ctx, const char *host, long long deadline, char *err, size_t err_size)
{
	struct in6_addr a6;
	struct in_addr a4;
	int is_ip = inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 ||
	    (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host) != 1
		   : (SSL_set_tlsext_host_name(c->ssl, host) != 1 || SSL_set1_host(c->ssl, host) != 1))) {
		snprintf(err, err_size, "cannot set up TLS (out of memory?)");
		return -1;
	}
	for (;;) {
		int r = SSL_connect(c->ssl);
		if (r == 1)
			return 0;
		int e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if (wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline) != 0) {
				snprintf(err, err_size, "TLS handshake timed out");
				return -1;
			}
			continue;
		}
		long v = SSL_get_verify_result(c->ssl);
		unsigned long q = ERR_peek_last_error();
		if (v != X509_V_OK)
			snprintf(err, err_size, "TLS: the server's certificate does not verify: %s",
				 X509_verify_cert_error_string(v));
		else
			snprintf(err, err_size, "TLS handshake failed: %s",
				 q ? ERR_reason_error_string(q) ? ERR_reason_error_string(q) : "error"
				   : "the server closed the connection (does it want a client certificate?)");
		ERR_clear_error();
		return -1;
	}
}

static void conn_close(struct conn *c)
{
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* Removes the chunked framing from buf[from..*len) in place (the decoded
 * bytes stay at from), with c carried across reads. 0, or -1 when the
 * framing is malformed. */
static int unchunk(struct sn_h1_chunked *c, char *buf, size_t *len, size_t from, int *done)
{
	size_t in = from, out = from;
	while (in < *len && !*done) {
		size_t data = 0;
		ssize_t k = sn_h1_chunked_next(c, buf + in, *len - in, &data, done);
		if (k < 0)
			return -1;
		if (data > 0) {
			memmove(buf + out, buf + in, data);
			out += data;
		}
		in += (size_t)k;
	}
	*len = out;   /* anything after the last chunk is not ours */
	return 0;
}

/* Feeds the complete lines of buf[0..*len) to on_line and keeps the rest
 * at the front. 1 when on_line asked to stop, 0 to read on. */
static int feed_lines(char *buf, size_t *len, sn_http_line_cb on_line, void *arg)
{
	size_t off = 0;
	int stop = 0;
	for (;;) {
		char *nl = memchr(buf + off, '\n', *len - off);
		if (nl == NULL)
			break;
		size_t n = (size_t)(nl - (buf + off));
		*nl = '\0';
		if (n > 0 && on_line(buf + off, n, arg) != 0) {
			stop = 1;
			off = (size_t)(nl - buf) + 1;
			break;
		}
		off = (size_t)(nl - buf) + 1;
	}
	memmove(buf, buf + off, *len - off);
	*len -= off;
	return stop;
}

int sn_http_exchange(const char *base, const struct sn_http_request *rq, struct sn_http_response *out, char *err,
		     size_t err_size)
{
	const char *method = rq->method, *path = rq->path, *content_type = rq->content_type, *body = rq->body;
	const char *who = rq->who ? rq->who : "the server", *hint = rq->hint, *authorization = rq->authorization;
	size_t body_len = rq->body_len;
	int timeout_ms = rq->timeout_ms;
	sn_http_line_cb on_line = rq->on_line;
	void *arg = rq->line_arg;
	struct sn_http_url u;
	char why[200];
	char *buf = NULL;
	struct conn c = { -1, NULL, "" };
	long long deadline = (long long)sn_clock_ms() + (timeout_ms > 0 ? timeout_ms : SN_HTTP_CLIENT_TIMEOUT_MS);

	memset(out, 0, sizeof(*out));
	if (sn_http_url_parse(base, &u, err, err_size) != 0)
		return -1;
	if (rq->tls_ctx != NULL)
		snprintf(u.text, sizeof(u.text), "https://%s", u.authority);

	char head[REQ_HEAD_MAX];
	struct sn_h1_writer w;
	sn_h1w_init(&w, head, sizeof(head));
	sn_h1w_request_line(&w, sn_str_make(method, strlen(method)), sn_str_make(path, strlen(path)));
	sn_h1w_header_cstr(&w, "host", u.authority);
	sn_h1w_header_cstr(&w, "user-agent", "sinew/" SINEW_VERSION);
	sn_h1w_header_cstr(&w, "accept", "application/json");
	sn_h1w_header_cstr(&w, "connection", "close");
	if (authorization != NULL)
		sn_h1w_header_cstr(&w, "authorization", authorization);
	if (body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
		if (content_type != NULL)
			sn_h1w_header_cstr(&w, "content-type", content_type);
		sn_h1w_header_u64(&w, "content-length", body_len);
	}
	sn_h1w_end(&w);
	if (w.overflow) {
		snprintf(err, err_size, "the request to %s %s is too long or has a character a URL cannot hold", who,
			 u.text);
		return -1;
	}

	int cerr = 0;
	c.fd = connect_to(&u, rq, deadline, &cerr);
	if (c.fd < 0) {
		if (cerr < 0)
			snprintf(why, sizeof(why), "%s", gai_strerror(cerr));
		else
			reason(cerr, why, sizeof(why));
		snprintf(err, err_size, "cannot reach %s at %s (%s)%s%s", who, u.text, why, hint ? "; " : "",
			 hint ? hint : "");
		return -1;
	}
	if (rq->tls_ctx != NULL && tls_start(&c, rq->tls_ctx, u.host, deadline, why, sizeof(why)) != 0) {
		snprintf(err, err_size, "cannot reach %s at %s (%s)%s%s", who, u.text, why, hint ? "; " : "",
			 hint ? hint : "");
		goto fail;
	}
	if (send_all(&c, head, w.len, deadline) != 0 || (body_len && send_all(&c, body, body_len, deadline) != 0))
		goto io_fail;

	size_t cap = 16384, len = 0;
	buf = malloc(cap + 1);
	if (buf == NULL)
		goto oom;
	struct sn_h1_header hdrs[MAX_HEADERS];
	struct sn_h1_response res;
	int hl;
	for (;;) {
		memset(&res, 0, sizeof(res));
		hl = sn_h1_parse_response(buf, len, &res, hdrs, MAX_HEADERS, NULL, sn_str_make(method, strlen(method)));
		if (hl > 0 && res.status >= 100 && res.status < 200 && res.status != 101) {
			memmove(buf, buf + hl, len - (size_t)hl);   /* skip 1xx */
			len -= (size_t)hl;
			continue;
		}
		if (hl > 0)
			break;
		if (hl == SN_H1_ERROR) {
			snprintf(err, err_size, "%s at %s sent a malformed response (%s)", who, u.text,
				 res.err_reason ? res.err_reason : "bad head");
			goto fail;
		}
		if (len == cap) {
			if (cap >= HEAD_MAX) {
				snprintf(err, err_size, "%s at %s sent a response head over %d bytes", who, u.text, HEAD_MAX);
				goto fail;
			}
			cap *= 2;
			char *nb = realloc(buf, cap + 1);
			if (nb == NULL)
				goto oom;
			buf = nb;
		}
		ssize_t r = recv_some(&c, buf, cap, &len, deadline);
		if (r < 0)
			goto io_fail;
		if (r == 0) {
			snprintf(err, err_size, "%s at %s closed the connection before answering", who, u.text);
			goto fail;
		}
	}

	/* the body */
	size_t have = len - (size_t)hl;
	memmove(buf, buf + hl, have);
	len = have;
	size_t want = SIZE_MAX;
	if (res.body == SN_H1_BODY_NONE)
		want = 0;
	else if (res.body == SN_H1_BODY_LENGTH)
		want = (size_t)res.content_length;
	if (want != SIZE_MAX && want > SN_HTTP_CLIENT_MAX_RESPONSE) {
		snprintf(err, err_size, "%s at %s answered with %zu bytes, more than the %u this client reads", who,
			 u.text, want, SN_HTTP_CLIENT_MAX_RESPONSE);
		goto fail;
	}
	/* A stream of lines (a tap): each complete line as it comes, until
	 * the server ends it or on_line says stop. */
	int streaming = on_line != NULL && res.status == 200;
	struct sn_h1_chunked ck;
	int chunked = res.body == SN_H1_BODY_CHUNKED, ck_done = 0;
	if (chunked) {
		sn_h1_chunked_init(&ck);
		if (unchunk(&ck, buf, &len, 0, &ck_done) != 0)
			goto bad_chunks;
	}
	if (streaming && feed_lines(buf, &len, on_line, arg))
		want = len;
	while (len < want && !ck_done) {
		if (streaming && len == cap && cap >= SN_HTTP_CLIENT_MAX_RESPONSE) {
			snprintf(err, err_size, "%s at %s sent a line longer than %u bytes", who, u.text,
				 SN_HTTP_CLIENT_MAX_RESPONSE);
			goto fail;
		}
		if (len == cap) {
			if (cap >= SN_HTTP_CLIENT_MAX_RESPONSE) {
				snprintf(err, err_size, "%s at %s answered with more than the %u bytes this client reads",
					 who, u.text, SN_HTTP_CLIENT_MAX_RESPONSE);
				goto fail;
			}
			size_t ncap = want != SIZE_MAX ? want : SN_MIN((size_t)SN_HTTP_CLIENT_MAX_RESPONSE, cap * 2);
			char *nb = realloc(buf, ncap + 1);
			if (nb == NULL)
				goto oom;
			buf = nb;
			cap = ncap;
		}
		size_t before = len;
		ssize_t r = recv_some(&c, buf, cap, &len, deadline);
		if (r < 0)
			goto io_fail;
		if (chunked && r > 0 && unchunk(&ck, buf, &len, before, &ck_done) != 0)
			goto bad_chunks;
		if (streaming && r > 0 && feed_lines(buf, &len, on_line, arg))
			break;
		if (r == 0) {
			if (chunked) {
				snprintf(err, err_size, "%s at %s closed the connection inside a chunked body", who, u.text);
				goto fail;
			}
			if (want == SIZE_MAX)
				break;
			snprintf(err, err_size, "%s at %s closed the connection after %zu of %zu body bytes", who, u.text,
				 len, want);
			goto fail;
		}
	}
	if (want != SIZE_MAX && len > want)
		len = want;
	buf[len] = '\0';
	conn_close(&c);
	out->status = res.status;
	out->body = buf;
	out->len = len;
	return 0;

bad_chunks:
	snprintf(err, err_size, "%s at %s sent a malformed chunked body", who, u.text);
	goto fail;
io_fail:
	if (c.tls_err[0])
		snprintf(why, sizeof(why), "%s", c.tls_err);
	else
		reason(errno, why, sizeof(why));
	snprintf(err, err_size, "talking to %s at %s: %s%s", who, u.text, why,
		 errno == ETIMEDOUT ? " (is it overloaded or stuck?)" : "");
	goto fail;
oom:
	snprintf(err, err_size, "out of memory reading the answer of %s at %s", who, u.text);
fail:
	free(buf);
	conn_close(&c);
	return -1;
}
