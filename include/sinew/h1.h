#ifndef SINEW_H1_H
#define SINEW_H1_H

/* HTTP/1.1 message parsing and writing (RFC 9110, RFC 9112).
 *
 * The parser is strict, allocation-free and restartable: call it again with
 * the same buffer plus newly read bytes until it stops returning
 * SN_H1_INCOMPLETE. Everything it returns points into the caller's buffer.
 * Anything that could let two parties disagree about where a message ends
 * (request smuggling) is refused, never "repaired".
 *
 * Return convention (picohttpparser): bytes consumed by the head (> 0),
 * SN_H1_INCOMPLETE (-2) for "need more", SN_H1_ERROR (-1) for malformed, in
 * which case the result's err_status (400, 414, 431, 501, 505, or 502 for a
 * bad upstream response) and err_reason (a short static string naming what
 * was wrong, e.g. "content-length with transfer-encoding") are set.
 * A request may also get 417 (an Expect other than 100-continue). The rules
 * are in docs/internals/http1.md. */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sinew/common.h"

#define SN_H1_INCOMPLETE (-2)
#define SN_H1_ERROR (-1)

/* Defaults for struct sn_h1_limits. */
#define SN_H1_DEFAULT_MAX_REQUEST_LINE 8192   /* past it: 414 */
#define SN_H1_DEFAULT_MAX_HEAD_BYTES 65536    /* whole head; past it: 431 */
#define SN_H1_DEFAULT_MAX_HEADERS 100         /* past it: 431 */

struct sn_h1_limits {
	size_t max_request_line; /* request line incl. CRLF (status line for responses) */
	size_t max_head_bytes;   /* start line + all fields + final CRLF */
	size_t max_headers;      /* number of fields */
};

struct sn_h1_header {
	struct sn_str name;  /* as sent (case preserved), validated as a token */
	struct sn_str value; /* leading/trailing OWS stripped */
};

enum sn_h1_body_kind {
	SN_H1_BODY_NONE = 0,    /* no body (no CL/TE on a request; HEAD/1xx/204/304 responses) */
	SN_H1_BODY_LENGTH,      /* content_length bytes follow */
	SN_H1_BODY_CHUNKED,     /* Transfer-Encoding: chunked */
	SN_H1_BODY_UNTIL_CLOSE, /* responses only: read until the peer closes */
};

struct sn_h1_request {
	struct sn_str method;
	struct sn_str target;     /* request-target exactly as sent */
	struct sn_str path;       /* origin-form path and query ("/a?b"); "*" for OPTIONS * */
	struct sn_str authority;  /* from an absolute-form target, else from Host; may be empty for HTTP/1.0 */
	int minor_version;        /* 0 or 1 */
	struct sn_h1_header *headers;  /* caller's array, filled */
	size_t num_headers;
	enum sn_h1_body_kind body;
	uint64_t content_length;  /* valid when body == SN_H1_BODY_LENGTH */
	unsigned keep_alive : 1;       /* after this exchange, per version and Connection */
	unsigned expect_continue : 1;  /* Expect: 100-continue (HTTP/1.1 only) */
	unsigned absolute_form : 1;    /* target was absolute-form (proxy request) */
	unsigned upgrade : 1;          /* Connection: upgrade with an Upgrade header */
	/* Absolute-form with a query and an empty path ("http://a?x=1"): path
	 * holds "?x=1" and the origin-form is "/" followed by it; the caller
	 * that forwards it writes the "/" (the views stay in its buffer). */
	unsigned path_slash : 1;
	int err_status;
	const char *err_reason;
};

struct sn_h1_response {
	int minor_version;
	int status;
	struct sn_str reason;
	struct sn_h1_header *headers;
	size_t num_headers;
	enum sn_h1_body_kind body;
	uint64_t content_length;
	unsigned keep_alive : 1;
	int err_status;
	const char *err_reason;
};

/* Parses a request head from buf[0..len). hdrs has room for max_hdrs
 * entries (at least lim->max_headers to get 431 rather than an overflow).
 * lim may be NULL for the defaults. Returns head length, SN_H1_INCOMPLETE
 * (only while the bytes seen are still within the limits) or SN_H1_ERROR
 * with req->err_status/err_reason set. */
int sn_h1_parse_request(const char *buf, size_t len, struct sn_h1_request *req,
			struct sn_h1_header *hdrs, size_t max_hdrs,
			const struct sn_h1_limits *lim);

/* The same parse, its bytes moved: buf[0..len) now lives at to. Copies
 * req->headers into hdrs (room for req->num_headers) and moves every view
 * that pointed into buf, so a head parsed once in a connection's buffer
 * can be kept in a copy without parsing it again. */
void sn_h1_request_move(struct sn_h1_request *req, const char *buf, size_t len, const char *to,
			struct sn_h1_header *hdrs);

/* Parses a response head. request_method is the method of the request it
 * answers (HEAD and CONNECT change the body rules). A 1xx response other
 * than 101 is parsed as such (body NONE); the caller skips it and parses
 * again. Errors set err_status 502. */
int sn_h1_parse_response(const char *buf, size_t len, struct sn_h1_response *res,
			 struct sn_h1_header *hdrs, size_t max_hdrs,
			 const struct sn_h1_limits *lim, struct sn_str request_method);

/* The body of a whole response read to the end of its connection: b[0..n)
 * is what followed the head. By Content-Length, chunked (decoded in place,
 * trailers dropped), or all of it. 0 with *len_out, or -1 when it is cut
 * short or malformed. */
int sn_h1_response_body(const struct sn_h1_response *res, char *b, size_t n, size_t *len_out);

/* Incremental chunked-body scanner. It validates the framing and reports
 * how many input bytes belong to the body, so a proxy can forward the bytes
 * verbatim without decoding. Bounded: chunk-size lines (with extensions)
 * and trailers have fixed limits. */
struct sn_h1_chunked {
	int state;
	uint64_t remaining;   /* data bytes left in the current chunk */
	size_t line_len;      /* bytes seen of the current size line or trailer */
	size_t trailer_bytes; /* total trailer bytes seen */
	uint64_t body_bytes;  /* decoded data bytes so far */
};

void sn_h1_chunked_init(struct sn_h1_chunked *c);

/* Scans buf[0..len). Returns the number of bytes consumed (all of them, or
 * fewer when the body ends inside buf: what follows is the next message),
 * or -1 if malformed. *done is set to 1 once the last chunk, trailers and
 * final CRLF have been consumed. */
ssize_t sn_h1_chunked_scan(struct sn_h1_chunked *c, const char *buf, size_t len, int *done);

/* As sn_h1_chunked_scan, for a relay that removes the framing (an HTTP/1.0
 * client can't take chunked): consumes either framing only (*data 0: drop
 * the bytes) or data only (*data is the count, all of the bytes returned:
 * forward them), never both. Returns bytes consumed or -1. */
ssize_t sn_h1_chunked_next(struct sn_h1_chunked *c, const char *buf, size_t len, size_t *data, int *done);

/* RFC 9110 grammar, the one owner for every writer and reader of fields:
 * a token (field names, methods; 1*tchar), and a field value's bytes
 * (HTAB, SP, VCHAR, obs-text: no CR, LF, NUL or other controls). */
int sn_h1_is_token(struct sn_str s);
int sn_h1_is_field_value(struct sn_str s);

/* Finds a header by name (case-insensitive). Returns its index or -1. */
int sn_h1_find_header(const struct sn_h1_header *hdrs, size_t n, struct sn_str name, int from);
/* The value of query parameter name in path ("/p?a=1&b"): a view into
 * path; "" (non-NULL) for a parameter without '='; a NULL view if absent. */
struct sn_str sn_http_query_param(struct sn_str path, const char *name);
/* The value of cookie name in the request's Cookie fields; a NULL view
 * if absent. */
struct sn_str sn_http_cookie(const struct sn_h1_header *hdrs, size_t n, const char *name);

/* True if name is hop-by-hop (Connection, Keep-Alive, Proxy-Connection,
 * TE, Trailer, Transfer-Encoding, Upgrade, Proxy-Authenticate,
 * Proxy-Authorization is NOT hop-by-hop for us) or listed in the message's
 * Connection header. Content-Length and Host are never hop-by-hop, even
 * when listed: dropping them while forwarding the body would smuggle. */
int sn_h1_is_hop_by_hop(struct sn_str name, const struct sn_h1_header *hdrs, size_t n);

/* Writing. A writer appends to a caller-owned buffer and never overflows:
 * once it runs out of room `overflow` is set and later calls do nothing.
 * An append that would break the framing (CR, LF or another CTL in a value
 * or reason, a name or method that is not a token, a space in a target) is
 * refused the same way: check `overflow` before sending. */
struct sn_h1_writer {
	char *buf;
	size_t cap;
	size_t len;
	int overflow;
};

static inline void sn_h1w_init(struct sn_h1_writer *w, char *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = 0;
}

/* "METHOD target HTTP/1.1\r\n" */
void sn_h1w_request_line(struct sn_h1_writer *w, struct sn_str method, struct sn_str target);
/* "HTTP/1.1 status reason\r\n"; reason NULL → the standard phrase. */
void sn_h1w_status_line(struct sn_h1_writer *w, int status, const char *reason);
/* "name: value\r\n" */
void sn_h1w_header(struct sn_h1_writer *w, struct sn_str name, struct sn_str value);
void sn_h1w_header_cstr(struct sn_h1_writer *w, const char *name, const char *value);
/* The same for a field already proven valid -- parsed by this file's
 * parser (sn_h1_parse_request/_response checked name and value), or made
 * by the proxy from hex and digits -- without checking it again: the
 * head is validated once, where it is read. Anything else goes through
 * sn_h1w_header. */
void sn_h1w_header_valid(struct sn_h1_writer *w, struct sn_str name, struct sn_str value);
void sn_h1w_header_u64(struct sn_h1_writer *w, const char *name, uint64_t value);
/* Final "\r\n". */
void sn_h1w_end(struct sn_h1_writer *w);
void sn_h1w_raw(struct sn_h1_writer *w, const void *p, size_t n);

/* Writes a chunk-size line ("%zx\r\n") for a chunk of len bytes into out
 * (at least 20 bytes). Returns its length. The chunk's data must be followed
 * by "\r\n"; the last chunk is "0\r\n\r\n". */
size_t sn_h1_chunk_header(char *out, size_t len);

/* The standard reason phrase for a status ("Not Found"), or "Unknown". */
const char *sn_h1_reason_phrase(int status);

#endif
