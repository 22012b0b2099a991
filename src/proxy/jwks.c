/* jwksUri: the JSON Web Key Sets of RequestAuthentication rules that name
 * their keys by URI, fetched by the proxy (docs/security.md).
 *
 * One thread of the proxy's own fetches them (blocking, with time limits,
 * so no worker ever waits on the network): each URI of a snapshot a worker
 * takes is registered (sn_jwks_watch), fetched at once, again every
 * --jwks-refresh (default 20 min, Istio's), and sooner when a worker meets
 * a key id it does not know (sn_jwks_refresh; at most once per
 * JWKS_MIN_REFETCH_MS per URI). A failed fetch is retried after 1 s,
 * keeping the last good set. Workers read the text by version
 * (sn_jwks_get) and build their keys from it; until a set is here, tokens
 * of that issuer wait briefly and are then refused (filter_jwt.c): fail
 * closed. http:// and https:// (the system's trust store, host name
 * verified); answers over JWKS_MAX_BODY are refused. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sinew/h1.h"
#include "sinew/log.h"
#include "proxy.h"

#define JWKS_MAX_URIS 64
#define JWKS_MAX_URI 1024
#define JWKS_MAX_BODY (256u << 10)
#define JWKS_IO_TIMEOUT_MS 3000
#define JWKS_RETRY_MS 1000
#define JWKS_MIN_REFETCH_MS 1000

struct jwks_src {
	char uri[JWKS_MAX_URI];
	char *text;                  /* the last good set */
	size_t len;
	uint64_t version;            /* bumped when the text changes */
	int64_t next_ms;             /* when to fetch next */
	int64_t last_try_ms;
	char err[256];               /* the last failure, "" after a success */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int started;
	uint32_t refresh_ms;
	struct jwks_src src[JWKS_MAX_URIS];
	size_t n;
} g = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .refresh_ms = 20u * 60 * 1000 };

static int64_t now_ms(void)
{
	return (int64_t)sn_clock_ms();
}

/* ---- one fetch (the fetcher thread) ----------------------------------- */

struct url {
	int tls;
	char host[256];
	char port[8];
	const char *path;
};

static int parse_url(const char *u, struct url *out, char *err, size_t errlen)
{
	const char *rest;
	if (!strncmp(u, "https://", 8)) {
		out->tls = 1;
		rest = u + 8;
		snprintf(out->port, sizeof(out->port), "443");
	} else if (!strncmp(u, "http://", 7)) {
		out->tls = 0;
		rest = u + 7;
		snprintf(out->port, sizeof(out->port), "80");
	} else {
		snprintf(err, errlen, "not an http:// or https:// URI");
		return -1;
	}
	const char *slash = strchr(rest, '/');
	size_t hl = slash ? (size_t)(slash - rest) : strlen(rest);
	out->path = slash ? slash : "/";
	const char *colon = memchr(rest, ':', hl);
	if (rest[0] == '[') {
		snprintf(err, errlen, "IPv6 literals are not supported in jwksUri");
		return -1;
	}
	size_t name_len = colon ? (size_t)(colon - rest) : hl;
	if (name_len == 0 || name_len >= sizeof(out->host)) {
		snprintf(err, errlen, "no host");
		return -1;
	}
	memcpy(out->host, rest, name_len);
	out->host[name_len] = '\0';
	if (colon != NULL) {
		size_t pl = hl - name_len - 1;
		if (pl == 0 || pl >= sizeof(out->port)) {
			snprintf(err, errlen, "bad port");
			return -1;
		}
		memcpy(out->port, colon + 1, pl);
		out->port[pl] = '\0';
	}
	return 0;
}

static int dial(const struct url *u, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	int rc = getaddrinfo(u->host, u->port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve %.100s: %.100s", u->host, gai_strerror(rc));
		return -1;
	}
	int fd = -1;
	for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
			snprintf(err, errlen, "connect to %.100s:%.7s: %.100s", u->host, u->port, strerror(errno));
			close(fd);
			fd = -1;
			continue;
		}
		struct pollfd pf = { fd, POLLOUT, 0 };
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (poll(&pf, 1, JWKS_IO_TIMEOUT_MS) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 ||
		    soerr != 0) {
			snprintf(err, errlen, "connect to %.100s:%.7s: %.100s", u->host, u->port,
				 soerr ? strerror(soerr) : "timed out");
			close(fd);
			fd = -1;
			continue;
		}
		/* blocking from here, each read and write bounded */
		struct timeval tv = { JWKS_IO_TIMEOUT_MS / 1000, (JWKS_IO_TIMEOUT_MS % 1000) * 1000 };
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	freeaddrinfo(res);
	return fd;
}

/* GET uri: the body of a 200 (malloc'd) or NULL with err. */
static char *fetch(const char *uri, size_t *len_out, char *err, size_t errlen)
{
	struct url u;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	char *buf = NULL, *body = NULL;
	size_t len = 0, cap = JWKS_MAX_BODY + 16384;
	int fd = -1;

	if (parse_url(uri, &u, err, errlen) != 0 || (fd = dial(&u, err, errlen)) < 0)
		return NULL;
	if (u.tls) {
		ctx = SSL_CTX_new(TLS_client_method());
		ssl = ctx ? SSL_new(ctx) : NULL;
		if (ssl == NULL || SSL_CTX_set_default_verify_paths(ctx) != 1) {
			snprintf(err, errlen, "TLS: out of memory");
			goto out;
		}
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
		SSL_set_tlsext_host_name(ssl, u.host);
		SSL_set1_host(ssl, u.host);
		SSL_set_fd(ssl, fd);
		if (SSL_connect(ssl) != 1) {
			unsigned long e = ERR_get_error();
			snprintf(err, errlen, "TLS with %.100s: %.100s", u.host,
				 e ? ERR_reason_error_string(e) : "handshake failed");
			goto out;
		}
	}
	char req[JWKS_MAX_URI + 512];
	int rl = snprintf(req, sizeof(req),
			  "GET %s HTTP/1.1\r\nhost: %s\r\naccept: application/json\r\nuser-agent: sinew-proxy\r\n"
			  "connection: close\r\n\r\n", u.path, u.host);
	if (rl < 0 || (size_t)rl >= sizeof(req) ||
	    (ssl ? SSL_write(ssl, req, rl) != rl : write(fd, req, (size_t)rl) != rl)) {
		snprintf(err, errlen, "could not send the request");
		goto out;
	}
	buf = malloc(cap);
	if (buf == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (;;) {
		if (len == cap) {
			snprintf(err, errlen, "the answer is larger than %u bytes", JWKS_MAX_BODY);
			goto out;
		}
		ssize_t n = ssl ? SSL_read(ssl, buf + len, (int)(cap - len)) : read(fd, buf + len, cap - len);
		if (n > 0) {
			len += (size_t)n;
			continue;
		}
		if (n == 0 || ssl != NULL)
			break;   /* the end (a TLS read error ends it too; the parse below judges) */
		snprintf(err, errlen, "reading the answer: %s", errno == EAGAIN ? "timed out" : strerror(errno));
		goto out;
	}
	struct sn_h1_response res;
	struct sn_h1_header hdrs[64];
	int hl = sn_h1_parse_response(buf, len, &res, hdrs, 64, NULL, SN_STR_LIT("GET"));
	size_t bl = 0;
	if (hl < 0 || sn_h1_response_body(&res, buf + hl, len - (size_t)hl, &bl) != 0) {
		snprintf(err, errlen, "the answer is not a whole HTTP response");
		goto out;
	}
	if (res.status != 200) {
		snprintf(err, errlen, "answered %d", res.status);
		goto out;
	}
	if (bl > JWKS_MAX_BODY) {
		snprintf(err, errlen, "the set is larger than %u bytes", JWKS_MAX_BODY);
		goto out;
	}
	body = malloc(bl + 1);
	if (body == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	memcpy(body, buf + hl, bl);
	body[bl] = '\0';
	*len_out = bl;
out:
	if (ssl != NULL)
		SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	free(buf);
	return body;
}

/* ---- the fetcher thread ----------------------------------------------- */

static void *fetcher(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&g.lock);
	for (;;) {
		int64_t now = now_ms(), wake = now + 60000;
		struct jwks_src *due = NULL;
		for (size_t i = 0; i < g.n; i++) {
			if (g.src[i].next_ms <= now && due == NULL)
				due = &g.src[i];
			else if (g.src[i].next_ms < wake)
				wake = g.src[i].next_ms;
		}
		if (due == NULL) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			int64_t wait = wake - now;
			ts.tv_sec += wait / 1000;
			ts.tv_nsec += (wait % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&g.cond, &g.lock, &ts);
			continue;
		}
		char uri[JWKS_MAX_URI], err[256] = "";
		snprintf(uri, sizeof(uri), "%s", due->uri);
		due->last_try_ms = now;
		due->next_ms = now + JWKS_RETRY_MS;   /* until this fetch says otherwise */
		pthread_mutex_unlock(&g.lock);
		size_t len = 0;
		char *text = fetch(uri, &len, err, sizeof(err));
		pthread_mutex_lock(&g.lock);
		/* the slot may have been given to another URI meanwhile: find it again */
		struct jwks_src *src = NULL;
		for (size_t i = 0; i < g.n; i++)
			if (!strcmp(g.src[i].uri, uri))
				src = &g.src[i];
		if (src == NULL) {
			free(text);
			continue;
		}
		if (text == NULL) {
			if (strcmp(src->err, err) != 0)
				sn_log(SN_LOG_WARN, "jwt: jwksUri %s: %s; retrying (tokens of its issuer are refused until "
				       "its keys are here)", uri, err);
			snprintf(src->err, sizeof(src->err), "%s", err);
			src->next_ms = now_ms() + JWKS_RETRY_MS;
			continue;
		}
		src->err[0] = '\0';
		src->next_ms = now_ms() + g.refresh_ms;
		if (src->text != NULL && src->len == len && !memcmp(src->text, text, len)) {
			free(text);
			continue;
		}
		free(src->text);
		src->text = text;
		src->len = len;
		src->version++;
		sn_log(SN_LOG_INFO, "jwt: jwksUri %s: key set %llu fetched (%zu bytes)", uri,
		       (unsigned long long)src->version, len);
	}
	return NULL;
}

void sn_jwks_set_refresh(uint32_t ms)
{
	pthread_mutex_lock(&g.lock);
	g.refresh_ms = ms ? ms : 1;
	pthread_mutex_unlock(&g.lock);
}

void sn_jwks_watch(const struct sn_snapshot *s)
{
	int added = 0;
	if (s == NULL)
		return;
	pthread_mutex_lock(&g.lock);
	for (size_t r = 0; r < s->n_jwt_rules; r++) {
		const char *uri = s->jwt_rules[r].jwks_uri;
		if (uri == NULL || s->jwt_rules[r].n_keys > 0 || strlen(uri) >= JWKS_MAX_URI)
			continue;
		size_t i = 0;
		while (i < g.n && strcmp(g.src[i].uri, uri) != 0)
			i++;
		if (i < g.n)
			continue;
		if (g.n == JWKS_MAX_URIS) {
			sn_log(SN_LOG_WARN, "jwt: more than %d jwksUri; %s is not fetched (its tokens are refused)",
			       JWKS_MAX_URIS, uri);
			continue;
		}
		struct jwks_src *src = &g.src[g.n++];
		memset(src, 0, sizeof(*src));
		snprintf(src->uri, sizeof(src->uri), "%s", uri);
		src->next_ms = 0;
		added = 1;
	}
	if (added && !g.started) {
		pthread_t th;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &at, fetcher, NULL) == 0)
			g.started = 1;
		else
			sn_log(SN_LOG_ERROR, "jwt: cannot start the jwksUri fetcher: %s", strerror(errno));
		pthread_attr_destroy(&at);
	}
	if (added)
		pthread_cond_signal(&g.cond);
	pthread_mutex_unlock(&g.lock);
}

uint64_t sn_jwks_get(const char *uri, uint64_t have, char **text, size_t *len, char *err, size_t errlen)
{
	uint64_t v = 0;
	*text = NULL;
	pthread_mutex_lock(&g.lock);
	for (size_t i = 0; i < g.n; i++) {
		struct jwks_src *src = &g.src[i];
		if (strcmp(src->uri, uri) != 0)
			continue;
		v = src->version;
		snprintf(err, errlen, "%s", src->err[0] ? src->err : src->text ? "" : "not fetched yet");
		if (v != have && src->text != NULL && (*text = malloc(src->len + 1)) != NULL) {
			memcpy(*text, src->text, src->len + 1);
			*len = src->len;
		}
		break;
	}
	pthread_mutex_unlock(&g.lock);
	return v;
}

void sn_jwks_refresh(const char *uri)
{
	pthread_mutex_lock(&g.lock);
	for (size_t i = 0; i < g.n; i++) {
		struct jwks_src *src = &g.src[i];
		if (strcmp(src->uri, uri) != 0)
			continue;
		int64_t soonest = src->last_try_ms + JWKS_MIN_REFETCH_MS;
		if (src->next_ms > soonest) {
			src->next_ms = soonest;
			pthread_cond_signal(&g.cond);
		}
	}
	pthread_mutex_unlock(&g.lock);
}
