/* Calls to a dependency: one GET on a new connection ("Connection:
 * close", as python-requests without a session does), directly to
 * NAME:PORT or, when http_proxy is set, to the proxy with an absolute-form
 * target. One deadline covers resolving, connecting, sending and reading,
 * which is what the fault-injection task observes. Responses are parsed
 * by sinew/h1.h; chunked bodies are decoded; sizes are bounded. */

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bookinfo.h"

#define RAW_MAX (BK_MAX_RESPONSE + BK_MAX_HEAD + 4096)

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int copy_str(char *dst, size_t cap, const char *s, size_t n)
{
	if (n >= cap)
		return -1;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

/* "HOST[:PORT]" or "[V6]:PORT" into host and port. */
static int split_host_port(const char *s, size_t n, char *host, size_t hcap, char *port,
			   size_t pcap, const char *def_port)
{
	const char *colon = NULL;
	if (n > 0 && s[0] == '[') {
		const char *rb = memchr(s, ']', n);
		if (rb == NULL)
			return -1;
		if (copy_str(host, hcap, s + 1, (size_t)(rb - s - 1)) != 0)
			return -1;
		if (rb + 1 < s + n) {
			if (rb[1] != ':')
				return -1;
			colon = rb + 1;
		}
	} else {
		colon = memrchr(s, ':', n);
		if (copy_str(host, hcap, s, colon ? (size_t)(colon - s) : n) != 0)
			return -1;
	}
	if (host[0] == '\0')
		return -1;
	if (colon == NULL)
		return copy_str(port, pcap, def_port, strlen(def_port));
	size_t plen = (size_t)(s + n - colon - 1);
	long v = bk_parse_id(sn_str_make(colon + 1, plen));
	if (v <= 0 || v > 65535)
		return -1;
	return copy_str(port, pcap, colon + 1, plen);
}

int bk_proxy_from_env(struct bk_proxy *proxy, char *err, size_t errlen)
{
	memset(proxy, 0, sizeof(*proxy));
	const char *v = getenv("http_proxy");
	if (v == NULL || *v == '\0')
		v = getenv("HTTP_PROXY");
	const char *np = getenv("no_proxy");
	if (np == NULL || *np == '\0')
		np = getenv("NO_PROXY");
	if (np && copy_str(proxy->no_proxy, sizeof(proxy->no_proxy), np, strlen(np)) != 0) {
		snprintf(err, errlen, "no_proxy is too long");
		return -1;
	}
	if (v == NULL || *v == '\0')
		return 0;
	const char *s = v;
	const char *sep = strstr(s, "://");
	if (sep) {
		if (!((size_t)(sep - s) == 4 && strncasecmp(s, "http", 4) == 0)) {
			snprintf(err, errlen, "http_proxy=%s: only http:// proxies are supported", v);
			return -1;
		}
		s = sep + 3;
	}
	size_t n = strcspn(s, "/");
	if (memchr(s, '@', n)) {
		snprintf(err, errlen, "http_proxy: proxy credentials are not supported");
		return -1;
	}
	if (split_host_port(s, n, proxy->host, sizeof(proxy->host), proxy->port,
			    sizeof(proxy->port), "80") != 0) {
		snprintf(err, errlen, "http_proxy=%s: expected http://HOST:PORT", v);
		return -1;
	}
	proxy->enabled = 1;
	return 0;
}

/* no_proxy: a comma-separated list of names; an entry matches the name
 * itself and its subdomains; "*" matches everything. */
static int bypass_proxy(const struct bk_proxy *proxy, const char *host)
{
	const char *p = proxy->no_proxy;
	size_t hl = strlen(host);
	while (*p) {
		while (*p == ',' || *p == ' ')
			p++;
		size_t n = strcspn(p, ", ");
		const char *e = p;
		size_t el = n;
		if (el == 1 && e[0] == '*')
			return 1;
		if (el > 0 && e[0] == '.') {
			e++;
			el--;
		}
		if (el > 0 && (sn_str_ieq(sn_str_make(host, hl), sn_str_make(e, el)) ||
			       (hl > el && host[hl - el - 1] == '.' &&
				sn_str_ieq(sn_str_make(host + hl - el, el), sn_str_make(e, el)))))
			return 1;
		p += n;
	}
	return 0;
}

/* Connects to host:port before deadline. Returns a non-blocking socket,
 * registered with conn, or -1 with err set. */
static int connect_to(struct bk_conn *conn, const char *host, const char *port, int64_t deadline,
		      char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	int fd = -1;
	int last = ECONNREFUSED;
	for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			last = errno;
			continue;
		}
		bk_conn_set_upstream(conn, fd);
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			int64_t left = deadline - now_ms();
			struct pollfd p = { .fd = fd, .events = POLLOUT };
			int r = left > 0 ? poll(&p, 1, (int)left) : 0;
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			if (r == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
				break;
			last = r == 0 ? ETIMEDOUT : (soerr ? soerr : errno);
		} else {
			last = errno;
		}
		bk_conn_set_upstream(conn, -1);
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0)
		snprintf(err, errlen, "connect %s:%s: %s", host, port, strerror(last));
	return fd;
}

static int send_all(int fd, const char *p, size_t n, int64_t deadline)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		int64_t left = deadline - now_ms();
		struct pollfd pf = { .fd = fd, .events = POLLOUT };
		if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
			return -1;
	}
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = sn_tolower_ascii(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes a chunked body that sn_h1_chunked_scan has already validated. */
static int dechunk(const char *p, size_t n, struct bk_buf *out)
{
	size_t i = 0;
	for (;;) {
		uint64_t size = 0;
		int digits = 0;
		while (i < n && hexval((unsigned char)p[i]) >= 0) {
			if (++digits > 15)
				return -1;
			size = size * 16 + (uint64_t)hexval((unsigned char)p[i++]);
		}
		if (digits == 0)
			return -1;
		while (i < n && p[i] != '\n')
			i++;
		if (i++ >= n)
			return -1;
		if (size == 0)
			return 0;
		if (size > n - i)
			return -1;
		bk_buf_add(out, p + i, (size_t)size);
		i += (size_t)size;
		if (i < n && p[i] == '\r')
			i++;
		if (i >= n || p[i] != '\n')
			return -1;
		i++;
	}
}

void bk_fetch_dispose(struct bk_fetch *f)
{
	bk_buf_free(&f->body);
}

void bk_http_get(const struct bk_app *app, struct bk_conn *conn, const struct bk_service *svc,
		 const char *path, const struct bk_header *hdrs, size_t nhdrs, int timeout_ms,
		 struct bk_fetch *out)
{
	int64_t deadline = now_ms() + timeout_ms;
	const int via_proxy = app->proxy.enabled && !bypass_proxy(&app->proxy, svc->host);
	const char *chost = via_proxy ? app->proxy.host : svc->host;
	const char *cport = via_proxy ? app->proxy.port : svc->port;
	char authority[BK_NAME_MAX + 16], target[BK_NAME_MAX + 600], head[BK_MAX_HEAD];
	struct bk_buf raw;
	struct sn_h1_writer w;
	int fd = -1;

	memset(out, 0, sizeof(*out));
	bk_buf_init(&out->body, BK_MAX_RESPONSE);
	bk_buf_init(&raw, RAW_MAX);
	if (strchr(svc->host, ':'))
		snprintf(authority, sizeof(authority), "[%s]:%s", svc->host, svc->port);
	else
		snprintf(authority, sizeof(authority), "%s:%s", svc->host, svc->port);
	int tl = via_proxy ? snprintf(target, sizeof(target), "http://%s%s", authority, path)
			   : snprintf(target, sizeof(target), "%s", path);
	if (tl < 0 || (size_t)tl >= sizeof(target)) {
		snprintf(out->err, sizeof(out->err), "request target too long");
		goto done;
	}
	sn_h1w_init(&w, head, sizeof(head));
	sn_h1w_request_line(&w, SN_STR_LIT("GET"), sn_str_make(target, (size_t)tl));
	sn_h1w_header_cstr(&w, "Host", authority);
	int have_ua = 0;
	for (size_t i = 0; i < nhdrs; i++) {
		sn_h1w_header(&w, hdrs[i].name, hdrs[i].value);
		have_ua |= sn_str_ieq_cstr(hdrs[i].name, "user-agent");
	}
	if (!have_ua)
		sn_h1w_header_cstr(&w, "User-Agent", "bookinfo-c/1.0");
	sn_h1w_header_cstr(&w, "Accept", "application/json");
	sn_h1w_header_cstr(&w, "Connection", "close");
	sn_h1w_end(&w);
	if (w.overflow) {
		snprintf(out->err, sizeof(out->err), "request head too large");
		goto done;
	}

	fd = connect_to(conn, chost, cport, deadline, out->err, sizeof(out->err));
	if (fd < 0)
		goto done;
	if (send_all(fd, head, w.len, deadline) != 0) {
		snprintf(out->err, sizeof(out->err), "send to %s:%s: %s", chost, cport,
			 errno ? strerror(errno) : "timed out");
		goto done;
	}

	struct sn_h1_header rh[SN_H1_DEFAULT_MAX_HEADERS];
	struct sn_h1_response res;
	struct sn_h1_chunked ck;
	size_t head_len = 0, scanned = 0;
	int complete = 0, eof = 0;
	sn_h1_chunked_init(&ck);
	memset(&res, 0, sizeof(res));
	while (!complete) {
		char tmp[16384];
		int64_t left = deadline - now_ms();
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (left <= 0) {
			snprintf(out->err, sizeof(out->err), "timed out after %d ms", timeout_ms);
			goto done;
		}
		int r = poll(&pf, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			snprintf(out->err, sizeof(out->err), "read from %s:%s: %s", chost, cport,
				 strerror(errno));
			goto done;
		}
		if (n == 0)
			eof = 1;
		bk_buf_add(&raw, tmp, (size_t)n);
		if (raw.overflow) {
			snprintf(out->err, sizeof(out->err), "response too large");
			goto done;
		}
		while (head_len == 0 && raw.len > 0) {
			int rc = sn_h1_parse_response(raw.p, raw.len, &res, rh, SN_ARRAY_LEN(rh), NULL,
						      SN_STR_LIT("GET"));
			if (rc == SN_H1_INCOMPLETE)
				break;
			if (rc < 0) {
				snprintf(out->err, sizeof(out->err), "malformed response: %s",
					 res.err_reason ? res.err_reason : "?");
				goto done;
			}
			if (res.status >= 100 && res.status < 200) {
				memmove(raw.p, raw.p + rc, raw.len - (size_t)rc);
				raw.len -= (size_t)rc;
				continue;
			}
			head_len = (size_t)rc;
			scanned = head_len;
		}
		if (head_len > 0) {
			switch (res.body) {
			case SN_H1_BODY_NONE:
				complete = 1;
				break;
			case SN_H1_BODY_LENGTH:
				if (res.content_length > BK_MAX_RESPONSE) {
					snprintf(out->err, sizeof(out->err), "response too large");
					goto done;
				}
				complete = raw.len - head_len >= res.content_length;
				break;
			case SN_H1_BODY_CHUNKED: {
				int fin = 0;
				ssize_t used = sn_h1_chunked_scan(&ck, raw.p + scanned, raw.len - scanned,
								  &fin);
				if (used < 0) {
					snprintf(out->err, sizeof(out->err), "malformed chunked body");
					goto done;
				}
				scanned += (size_t)used;
				complete = fin;
				break;
			}
			case SN_H1_BODY_UNTIL_CLOSE:
				complete = eof;
				break;
			}
		}
		if (eof && !complete) {
			snprintf(out->err, sizeof(out->err), "%s:%s closed the connection mid-response",
				 chost, cport);
			goto done;
		}
	}
	if (res.body == SN_H1_BODY_LENGTH)
		bk_buf_add(&out->body, raw.p + head_len, (size_t)res.content_length);
	else if (res.body == SN_H1_BODY_UNTIL_CLOSE)
		bk_buf_add(&out->body, raw.p + head_len, raw.len - head_len);
	else if (res.body == SN_H1_BODY_CHUNKED &&
		 dechunk(raw.p + head_len, scanned - head_len, &out->body) != 0) {
		snprintf(out->err, sizeof(out->err), "malformed chunked body");
		goto done;
	}
	if (out->body.overflow) {
		snprintf(out->err, sizeof(out->err), "response too large");
		goto done;
	}
	out->status = res.status;
done:
	if (fd >= 0) {
		bk_conn_set_upstream(conn, -1);
		close(fd);
	}
	bk_buf_free(&raw);
	if (out->status == 0)
		out->body.len = 0;
}
