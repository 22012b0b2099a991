#ifndef SINEW_HTTP_CLIENT_H
#define SINEW_HTTP_CLIENT_H

/* A blocking HTTP/1.1 client: one request per connection (connection:
 * close), bounded in time (a connect timeout and a deadline for the whole
 * exchange, both with poll) and in size (heads up to 64 KiB, bodies up to
 * SN_HTTP_CLIENT_MAX_RESPONSE). Responses are parsed with the project's
 * own parser (sinew/h1.h). Used by the CLI (sinewd's API, proxies' admin
 * ports, Prometheus) and by sinewd's etcd store; never on a proxy's
 * request path, which is non-blocking (src/proxy). Every wait is a fork
 * gate pause (sinew/fork_gate.h), so a helper thread that entered the gate
 * lets a fork happen while it waits here. */

#include <stddef.h>

#define SN_HTTP_CLIENT_MAX_RESPONSE (64u << 20)   /* bytes of one response body */
#define SN_HTTP_CLIENT_CONNECT_TIMEOUT_MS 3000
#define SN_HTTP_CLIENT_TIMEOUT_MS 30000           /* whole exchange, when not given */

/* An http:// base URL: "http://127.0.0.1:15080", "http://[::1]:15080/". */
struct sn_http_url {
	char host[256];     /* without brackets */
	char port[8];
	char authority[272];/* host[:port] as for a Host header */
	char text[300];     /* normalized "http://authority", for messages */
};

/* Parses an http:// URL with an empty path (or "/"). Returns 0, or
 * SN_EINVAL with why in err. */
int sn_http_url_parse(const char *s, struct sn_http_url *u, char *err, size_t err_size);

struct sn_http_response {
	int status;
	char *body;         /* malloc'd, NUL-terminated (not counted in len) */
	size_t len;
};

void sn_http_response_free(struct sn_http_response *r);

/* Gets each line of a streamed answer (without its newline; empty lines
 * skipped); nonzero stops the stream. */
typedef int (*sn_http_line_cb)(const char *line, size_t len, void *arg);

struct sn_http_request {
	const char *method;         /* "GET", "POST", ... */
	const char *path;           /* origin-form target */
	const char *content_type;   /* NULL: none */
	const char *body;           /* NULL with body_len 0: none */
	size_t body_len;
	const char *authorization;  /* NULL: none */
	int timeout_ms;             /* whole exchange; 0: SN_HTTP_CLIENT_TIMEOUT_MS */
	int connect_timeout_ms;     /* 0: SN_HTTP_CLIENT_CONNECT_TIMEOUT_MS */
	const char *who;            /* names the peer in messages ("sinewd") */
	const char *hint;           /* what to do when it cannot be reached; may be NULL */
	/* On a 200 answer, each line as it comes, until the server ends the
	 * stream or on_line returns nonzero; *out then holds what is left. */
	sn_http_line_cb on_line;
	void *line_arg;
	/* Makes the socket (non-blocking); NULL: socket(2). The CLI uses it
	 * to connect inside a pod's network namespace. */
	int (*open_socket)(int family, int type, int protocol, void *arg);
	void *socket_arg;
	/* TLS: an SSL_CTX * (OpenSSL) that verifies the server, NULL for plain
	 * HTTP; the URL's host (a name or an IP address) must be in the
	 * server's certificate. A client certificate is the context's. TLS
	 * writes cannot ask for MSG_NOSIGNAL: the process ignores SIGPIPE. */
	void *tls_ctx;
};

/* One exchange with base (an http:// URL). Returns 0 with *out filled
 * (any status), or -1 with a one-line message in err ("cannot reach
 * sinewd at http://127.0.0.1:15080 (connection refused); start it with
 * `sinew up`"). */
int sn_http_exchange(const char *base, const struct sn_http_request *rq, struct sn_http_response *out, char *err,
		     size_t err_size);

#endif
