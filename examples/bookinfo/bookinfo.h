#ifndef BOOKINFO_H
#define BOOKINFO_H

/* Bookinfo, the demo application of Istio's tasks, written in C: one binary
 * that runs as any of its four services (details, ratings, reviews v1/v2/v3,
 * productpage). Each service is a small thread-per-connection HTTP/1.1
 * server; the services call each other by name, either directly or through
 * an HTTP proxy named by http_proxy (absolute-form requests), so the same
 * binary runs behind `sinew-proxy --outbound` or under transparent capture.
 *
 * Behaviour follows Istio's samples/bookinfo and the API in its
 * swagger.yaml; docs are in README.md beside this file. */

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "sinew/common.h"
#include "sinew/h1.h"

#define BK_MAX_HEAD 16384          /* request head; past it: 431 */
#define BK_MAX_BODY 8192           /* request body (the login form); past it: 413 */
#define BK_MAX_CONNS 256           /* concurrent connections; past it: 503 */
#define BK_MAX_REQUESTS_PER_CONN 1000
/* Keep-alive idle: longer than the sidecar's upstream pool keeps a
 * connection (60 s), so that the pool, the client, closes first. */
#define BK_IDLE_TIMEOUT_MS 75000
#define BK_READ_TIMEOUT_MS 10000   /* rest of a head or body once it started */
#define BK_WRITE_TIMEOUT_MS 10000
#define BK_MAX_RESPONSE (256 * 1024)  /* a body we build or fetch */
#define BK_MAX_FORWARD 24          /* headers forwarded to a dependency */
#define BK_NAME_MAX 256

enum bk_role {
	BK_ROLE_DETAILS,
	BK_ROLE_RATINGS,
	BK_ROLE_REVIEWS,
	BK_ROLE_PRODUCTPAGE,
};

/* A dependency: the service name and port the application asks for. */
struct bk_service {
	char host[BK_NAME_MAX];
	char port[8];
};

/* Where requests really go: the proxy from http_proxy, if any. */
struct bk_proxy {
	int enabled;
	char host[BK_NAME_MAX];
	char port[8];
	char no_proxy[1024];       /* comma-separated host suffixes, "*" for all */
};

struct bk_app {
	enum bk_role role;
	char version[16];          /* v1, v2, v3 */
	char name[48];             /* "reviews-v2": logs */
	char podname[BK_NAME_MAX]; /* $HOSTNAME or gethostname() */
	char clustername[BK_NAME_MAX];
	int ratings_enabled;       /* reviews v2/v3 */
	const char *star_color;    /* "black" (v2) or "red" (v3) */
	int ratings_timeout_ms;    /* reviews → ratings: 10 s (v2), 2.5 s (v3) */
	struct bk_service details, reviews, ratings;
	struct bk_proxy proxy;
	volatile sig_atomic_t *stopping;
};

/* A growable byte buffer that refuses to grow past max. */
struct bk_buf {
	char *p;
	size_t len;
	size_t cap;
	size_t max;
	int overflow;              /* an append did not fit: the content is cut */
};

struct bk_conn;

/* One request as a handler sees it; everything points into the
 * connection's buffer and lives until the handler returns. */
struct bk_request {
	struct sn_h1_request h1;
	struct sn_str path;        /* without the query */
	struct sn_str query;       /* after '?', may be empty */
	struct sn_str body;
	struct bk_conn *conn;      /* for bk_http_get's cancellation */
};

struct bk_response {
	int status;
	const char *content_type;
	char headers[1024];        /* extra header lines, each ending in CRLF */
	size_t headers_len;
	struct bk_buf body;
};

typedef void (*bk_handler_cb)(struct bk_app *app, const struct bk_request *req,
			      struct bk_response *res);

/* A header to send upstream; borrowed strings. */
struct bk_header {
	struct sn_str name;
	struct sn_str value;
};

/* What a call to a dependency gave: status 0 when there was no response
 * (connect failure, timeout, malformed); err then says why. */
struct bk_fetch {
	int status;
	struct bk_buf body;        /* decoded body (chunked framing removed) */
	char err[600];
};

/* server.c */

/* Serves app on listen_fd with handler until *app->stopping is set, then
 * lets requests in progress finish (bounded by the call timeouts) and
 * returns. Takes listen_fd. Returns 0 or SN_EIO. */
int bk_serve(struct bk_app *app, int listen_fd, bk_handler_cb handler);

/* Opens a listening socket on "ADDR:PORT", "[V6]:PORT" or "PORT". Returns
 * the fd or -1 with a message in err. */
int bk_listen(const char *spec, char *err, size_t errlen);

/* Appends "Name: value\r\n" to res's extra headers (dropped if it would
 * not fit or holds CR/LF). */
void bk_response_header(struct bk_response *res, const char *name, const char *value);

/* The first header named name in req, or SN_STR_NULL. */
struct sn_str bk_request_header(const struct bk_request *req, const char *name);

/* client.c */

/* GET http://svc->host:svc->port/path with the given headers, directly or
 * through app's proxy, with one deadline for the whole exchange. Fills out
 * (call bk_fetch_dispose after). Cancelled (status 0) when the server
 * stops. */
void bk_http_get(const struct bk_app *app, struct bk_conn *conn, const struct bk_service *svc,
		 const char *path, const struct bk_header *hdrs, size_t nhdrs, int timeout_ms,
		 struct bk_fetch *out);
void bk_fetch_dispose(struct bk_fetch *f);

/* Parses http_proxy / no_proxy (lower case first, then upper case) into
 * app->proxy. Returns 0, or -1 with a message in err for a value that is
 * not http://HOST:PORT. */
int bk_proxy_from_env(struct bk_proxy *proxy, char *err, size_t errlen);

/* server.c, for client.c: the upstream socket of a connection, so that a
 * stopping server can shut it down. fd -1 clears it. */
void bk_conn_set_upstream(struct bk_conn *conn, int fd);

/* util.c */

void bk_buf_init(struct bk_buf *b, size_t max);
void bk_buf_free(struct bk_buf *b);
void bk_buf_add(struct bk_buf *b, const char *s, size_t n);
void bk_buf_adds(struct bk_buf *b, const char *s);
void bk_buf_addf(struct bk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s HTML-escaped (& < > " '). */
void bk_buf_add_html(struct bk_buf *b, const char *s, size_t n);
/* s as a quoted JSON string. */
void bk_buf_add_json_str(struct bk_buf *b, const char *s, size_t n);

/* A product id: a decimal number of at most 9 digits. Returns it, or -1. */
long bk_parse_id(struct sn_str s);

/* Looks up key in an application/x-www-form-urlencoded string and
 * decodes it into out (cap bytes, NUL-terminated). Returns the decoded
 * length, or -1 if absent or too long. */
long bk_form_value(struct sn_str form, const char *key, char *out, size_t cap);

/* The value of cookie name in a Cookie header, percent-decoded into out.
 * Returns the length, or -1. */
long bk_cookie_value(struct sn_str cookie, const char *name, char *out, size_t cap);

/* Percent-encodes s for a cookie value into out. Returns the length, or
 * -1 if it does not fit. */
long bk_cookie_encode(const char *s, char *out, size_t cap);

/* A user name we accept: 1 to 64 bytes of printable ASCII. */
int bk_user_valid(const char *s, size_t n);

/* services.c: details, ratings and reviews. productpage.c: productpage. */
void bk_details_handle(struct bk_app *app, const struct bk_request *req, struct bk_response *res);
void bk_ratings_handle(struct bk_app *app, const struct bk_request *req, struct bk_response *res);
void bk_reviews_handle(struct bk_app *app, const struct bk_request *req, struct bk_response *res);
void bk_productpage_handle(struct bk_app *app, const struct bk_request *req,
			   struct bk_response *res);

/* The headers Istio's services propagate (trace context, end-user,
 * user-agent, cookie, authorization…), copied from req into out (room for
 * BK_MAX_FORWARD). skip_end_user leaves end-user out. Returns the count. */
size_t bk_forward_headers(const struct bk_request *req, struct bk_header *out,
			  int skip_end_user);

/* Sets a JSON response: status and body (a complete JSON text). */
void bk_json_reply(struct bk_response *res, int status, const char *json);

#endif
