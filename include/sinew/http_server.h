#ifndef SINEW_HTTP_SERVER_H
#define SINEW_HTTP_SERVER_H

/* A small HTTP/1.1 server on a loop, for the ports that people, the CLI
 * and scrapers talk to: sinewd's API and dashboard (src/control/api.c) and
 * the proxy's admin port (src/proxy/admin.c). Never the data path
 * (src/proxy/downstream.c): one request per connection, answered whole
 * with "connection: close"; no keep-alive, no pipelining (bytes after the
 * request are ignored), no chunked request bodies. Bounded: open
 * connections, the request head, the body (by Content-Length) and each
 * connection's lifetime (docs/internals/http1.md "The small server").
 *
 * The request handler runs on the loop thread and answers before it
 * returns: sn_hsrv_respond, or sn_hsrv_handover to give the socket to a
 * module that answers later (a tap's stream, a relayed scrape). A handler
 * that does neither has the connection closed without an answer. */

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sinew/common.h"
#include "sinew/h1.h"
#include "sinew/loop.h"

#define SN_HSRV_MAX_HEADERS 64   /* header fields of one request; past it: 431 */

struct sn_hsrv_conn;

/* A parsed request. Every pointer is borrowed from the connection and
 * valid only during the handler's call. */
struct sn_hsrv_req {
	struct sn_str method;
	struct sn_str path;          /* the target's path, without the query */
	struct sn_str query;         /* after '?', SN_STR_NULL when there is none */
	const char *body;            /* Content-Length bytes; body_len 0 when none (or not read) */
	size_t body_len;
	const struct sn_h1_header *headers;
	size_t n_headers;
};

/* One request to answer; data is sn_hsrv_opts.data. */
typedef void (*sn_hsrv_request_cb)(void *data, struct sn_hsrv_conn *c, const struct sn_hsrv_req *r);
/* An error to answer (status and a one-line reason, borrowed): a request
 * the server refused (400, 411, 413, 431, 503) or a handover refused. The
 * callback answers with sn_hsrv_respond; if it does not, the connection
 * closes. */
typedef void (*sn_hsrv_error_cb)(void *data, struct sn_hsrv_conn *c, int status, const char *msg);
/* Takes fd, a connection whose request was read, and answers on it later:
 * returns 0 (fd is the taker's now), or an HTTP status with why (NUL-
 * terminated, at most size bytes) and fd left alone. */
typedef int (*sn_hsrv_take_cb)(int fd, const void *arg, char *why, size_t size);

struct sn_hsrv_opts {
	const char *name;            /* names the server in log lines: "api", "admin" */
	size_t request_line_max;     /* sn_h1_limits.max_request_line; past it: 414 */
	size_t head_max;             /* the whole head; past it: 431 */
	/* Content-Length bodies up to this (413 past it, 411 for chunked,
	 * 100-continue answered). 0: bodies are not read; the handler sees
	 * the head alone, whatever framing it announced. */
	size_t body_max;
	const char *body_hint;       /* ends a 413's reason ("split the apply"); may be NULL */
	int max_conns;               /* past it a new connection is closed at once */
	uint32_t timeout_ms;         /* a connection's whole life, request to answer sent */
	int backlog;                 /* listen(2) */
	sn_hsrv_request_cb on_request;
	sn_hsrv_error_cb on_error;   /* NULL: an error closes without an answer */
	void *data;
};

/* Embed it in the owner. The fields are the server's: read conns (tests,
 * fuzzers) and fd (the bound address), write none. */
struct sn_hsrv {
	struct sn_hsrv_opts opt;
	struct sn_loop *loop;        /* NULL when not serving */
	int fd;                      /* the listening socket */
	struct sn_io io;
	int conns;                   /* open now (handed-over ones are not counted) */
	uint64_t next_conn_id;
	struct sn_hsrv_conn *conn_list;
};

/* Listens on addr (borrowed; any family, AF_UNIX included; SO_REUSEADDR)
 * and serves on loop with opt (copied; its strings and data borrowed for
 * the server's life). Returns 0, or SN_EIO with errno set (the caller
 * says what it was listening for). */
int sn_hsrv_start(struct sn_hsrv *s, struct sn_loop *loop, const struct sockaddr *addr, socklen_t addr_len,
		  const struct sn_hsrv_opts *opt);
/* Stops listening and closes every open connection, answered or not.
 * Their memory is freed in the loop's next reclaim phase: run the loop
 * once more before disposing of it. Safe on a server never started (zeroed)
 * and twice; not from one of this server's callbacks. */
void sn_hsrv_stop(struct sn_hsrv *s);

/* The value of the field name (case-insensitive; the last one when
 * repeated), or SN_STR_NULL when absent. */
struct sn_str sn_hsrv_header(const struct sn_hsrv_req *r, const char *name);
/* The connection's id (1, 2, ... per server), for log lines. */
uint64_t sn_hsrv_conn_id(const struct sn_hsrv_conn *c);

/* Answers: status, content_type, extra header lines (each ending in CRLF;
 * "" or NULL for none), content-length and "connection: close", then body (copied;
 * left out when the request was HEAD). The connection closes once it is
 * written. A second call replaces the first. Out of memory: the
 * connection closes without an answer. From the handlers only. */
void sn_hsrv_respond(struct sn_hsrv_conn *c, int status, const char *content_type, const char *extra,
		     const void *body, size_t len);
/* Gives the socket to take (called at once with arg). Taken: the server
 * lets go of it (never closes it) and forgets the connection. Refused:
 * the server keeps it and answers the status with why through on_error.
 * From the request handler only; c is not to be used after it. */
void sn_hsrv_handover(struct sn_hsrv_conn *c, sn_hsrv_take_cb take, const void *arg);

/* The bytes sn_hsrv_respond sends, into *out (malloc'd, the caller's) and
 * *out_len; without the body when head_only. For callers that answer
 * without a connection (sn_admin_respond, its fuzzer). 0 or SN_ENOMEM
 * (*out NULL, *out_len 0). */
int sn_hsrv_format(int status, const char *content_type, const char *extra, const void *body, size_t len,
		   int head_only, char **out, size_t *out_len);

#endif
