/* HTTP/1.1 head parser, chunked-body scanner and header helpers.
 *
 * Strict RFC 9112: anything that could make two parties disagree about
 * where a message ends is refused. The rules, statuses and limits are
 * written down in docs/internals/http1.md.
 *
 * The parser keeps no state between calls: every call re-reads the head
 * from the start of the buffer in one linear pass. Errors are decided left
 * to right at the earliest byte that makes them certain, so a prefix of an
 * input yields either SN_H1_INCOMPLETE or the same error as the whole (the
 * fuzz targets check this). */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "sinew/h1.h"

/* Character classes. */
#define C_TCHAR 0x01 /* token character (RFC 9110 5.6.2) */
#define C_VCHAR 0x02 /* field-vchar / SP / HTAB (RFC 9110 5.5), incl. obs-text */
#define C_TARGET 0x04 /* allowed in a request-target */
#define C_HOST 0x08 /* allowed in a reg-name host (stricter than RFC 3986) */
#define C_HEX 0x10

/* tchar: ALPHA DIGIT !#$%&'*+-.^_`|~. VCHAR: 0x21-0x7e, obs-text 0x80-0xff,
 * SP, HTAB. TARGET: visible ASCII except '#' (a fragment is never part of a
 * request-target; non-ASCII must be percent-encoded). HOST: ALPHA DIGIT
 * - . _ ~. The unit test recomputes this table from these definitions. */
static const unsigned char cclass[256] = {
	/* 00 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 10 */ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	/* 20 */ 0x02, 0x07, 0x06, 0x03, 0x07, 0x07, 0x07, 0x07, 0x06, 0x06, 0x07, 0x07, 0x06, 0x0f, 0x0f, 0x06,
	/* 30 */ 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x06, 0x06, 0x06, 0x06, 0x06, 0x06,
	/* 40 */ 0x06, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
	/* 50 */ 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x06, 0x06, 0x06, 0x07, 0x0f,
	/* 60 */ 0x07, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
	/* 70 */ 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x06, 0x07, 0x06, 0x0f, 0x00,
	/* 80 */ 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
	/* 90 */ 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
	/* a0 */ 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
	/* b0 */ 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
	/* c0 */ 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
	/* d0 */ 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
	/* e0 */ 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
	/* f0 */ 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
};

#define IS(c, m) ((cclass[(unsigned char)(c)] & (m)) != 0)

static int is_ws(int c)
{
	return c == ' ' || c == '\t';
}

/* Shared state of one head parse. */
struct head {
	const char *buf;
	size_t len;
	size_t max_line;
	size_t max_head;
	size_t max_fields;
	struct sn_h1_header *hdrs;
	size_t n;
	int bad; /* status for malformed input: 400 (requests) or 502 (responses) */
	int cl_count;    /* Content-Length fields seen (all valid, all equal) */
	uint64_t cl;     /* their value */
	int err_status;
	const char *err_reason;
};

static int fail(struct head *h, int status, const char *reason)
{
	h->err_status = status;
	h->err_reason = reason;
	return SN_H1_ERROR;
}

static void limits_resolve(struct head *h, const struct sn_h1_limits *lim, size_t max_hdrs)
{
	h->max_line = SN_H1_DEFAULT_MAX_REQUEST_LINE;
	h->max_head = SN_H1_DEFAULT_MAX_HEAD_BYTES;
	h->max_fields = SN_H1_DEFAULT_MAX_HEADERS;
	if (lim != NULL) {
		/* A zero field means "the default". */
		if (lim->max_request_line)
			h->max_line = lim->max_request_line;
		if (lim->max_head_bytes)
			h->max_head = lim->max_head_bytes;
		if (lim->max_headers)
			h->max_fields = lim->max_headers;
	}
	/* The head length is returned as an int. */
	if (h->max_head > INT_MAX)
		h->max_head = INT_MAX;
	if (h->max_fields > max_hdrs)
		h->max_fields = max_hdrs;
}

/* Scanning stops at max_head bytes: a head that has not ended there is 431
 * whatever follows, so later bytes are not looked at. */
static int incomplete(struct head *h, int too_long_status)
{
	if (h->len >= h->max_head)
		return fail(h, too_long_status, "header section too large");
	return SN_H1_INCOMPLETE;
}

/* Skips field-value bytes from pos; returns the first other byte's offset
 * (or end). Values are most of a head, so eight bytes are tested at a time:
 * a word without bytes below 0x20 and without 0x7f is all VCHAR/obs-text. */
static size_t skip_vchar(const char *b, size_t pos, size_t end)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;

	while (end - pos >= 8) {
		uint64_t x, del;

		memcpy(&x, b + pos, 8);
		del = x ^ (ones * 0x7f);
		if (((x - ones * 0x20) & ~x & highs) != 0 || ((del - ones) & ~del & highs) != 0)
			break;
		pos += 8;
	}
	while (pos < end && IS(b[pos], C_VCHAR))
		pos++;
	return pos;
}

static int parse_content_length(struct sn_str v, uint64_t *out);

/* A Content-Length line that can never be accepted is refused as soon as
 * its line is complete, not when the head ends: an invalid or overflowing
 * value, and in a request any second one (in a response, only one that
 * differs). The head-end checks then see the same. Returns 1 (h failed)
 * or 0. */
static int cl_line_bad(struct head *h)
{
	static const char cl[] = "content-length";
	const struct sn_h1_header *f = &h->hdrs[h->n];
	uint64_t n;

	for (size_t i = 0; i < sizeof(cl) - 1; i++)
		if ((f->name.p[i] | 0x20) != cl[i])   /* '-' | 0x20 is '-' */
			return 0;
	if (parse_content_length(f->value, &n) != 0) {
		fail(h, h->bad, "invalid content-length");
		return 1;
	}
	if (h->cl_count > 0 && h->bad == 400) {
		fail(h, 400, "duplicate content-length");
		return 1;
	}
	if (h->cl_count > 0 && n != h->cl) {
		fail(h, h->bad, "conflicting content-length");
		return 1;
	}
	h->cl = n;
	h->cl_count++;
	return 0;
}

/* Parses field lines from pos up to and including the empty line. Returns
 * the head length, SN_H1_INCOMPLETE or SN_H1_ERROR. */
static int parse_fields(struct head *h, size_t pos, int too_large)
{
	const char *b = h->buf;
	size_t end = SN_MIN(h->len, h->max_head);

	for (;;) {
		size_t name, name_len, vstart, vend;

		if (pos >= end)
			return incomplete(h, too_large);
		if (b[pos] == '\r') {
			if (pos + 1 >= end)
				return incomplete(h, too_large);
			if (b[pos + 1] != '\n')
				return fail(h, h->bad, "bare CR");
			return (int)(pos + 2);
		}
		if (b[pos] == '\n')
			return fail(h, h->bad, "bare LF line terminator");
		if (is_ws(b[pos]))
			return fail(h, h->bad, "obsolete line folding");
		if (h->n >= h->max_fields)
			return fail(h, too_large, "too many header fields");

		name = pos;
		while (pos < end && IS(b[pos], C_TCHAR))
			pos++;
		if (pos >= end)
			return incomplete(h, too_large);
		if (b[pos] != ':') {
			if (is_ws(b[pos]))
				return fail(h, h->bad, "whitespace before colon");
			if (b[pos] == '\r' || b[pos] == '\n')
				return fail(h, h->bad, "header line without colon");
			return fail(h, h->bad, "invalid header name");
		}
		if (pos == name)
			return fail(h, h->bad, "empty header name");
		name_len = pos - name;
		pos++;
		while (pos < end && is_ws(b[pos]))
			pos++;
		vstart = pos;
		pos = skip_vchar(b, pos, end);
		if (pos >= end)
			return incomplete(h, too_large);
		if (b[pos] != '\r') {
			if (b[pos] == '\n')
				return fail(h, h->bad, "bare LF line terminator");
			return fail(h, h->bad, "invalid byte in header value");
		}
		if (pos + 1 >= end)
			return incomplete(h, too_large);
		if (b[pos + 1] != '\n')
			return fail(h, h->bad, "bare CR");
		vend = pos;
		while (vend > vstart && is_ws(b[vend - 1]))
			vend--;
		h->hdrs[h->n].name = sn_str_make(b + name, name_len);
		h->hdrs[h->n].value = sn_str_make(b + vstart, vend - vstart);
		if (name_len == 14 && (b[name] | 0x20) == 'c' && cl_line_bad(h))
			return SN_H1_ERROR;
		h->n++;
		pos += 2;
	}
}

/* "HTTP/" DIGIT "." DIGIT, matched as far as the bytes go. Returns 1 when
 * all 8 bytes matched, 0 when the input ended first, -1 on a mismatch. */
static int match_version(const char *p, size_t avail)
{
	static const char pat[] = "HTTP/d.d";

	for (size_t i = 0; i < 8; i++) {
		if (i >= avail)
			return 0;
		if (pat[i] == 'd' ? !(p[i] >= '0' && p[i] <= '9') : p[i] != pat[i])
			return -1;
	}
	return 1;
}

/* authority = host [ ":" port ] (RFC 3986 3.2.2, without userinfo, which
 * RFC 9110 4.2.4 forbids); host is an IP-literal, or a reg-name: letters,
 * digits, '-', '.', '_', '~', sub-delims ("0.0.0.0=5000" is a valid name)
 * and %HH -- except ',', which is what two Host fields folded into one
 * look like (RFC 9110 5.3), an ambiguity a routing key must not have; the
 * port, if the colon is there, is 1-5 digits up to 65535. */
static int is_sub_delim(char c)
{
	switch (c) {
	case '!': case '$': case '&': case '\'': case '(': case ')':
	case '*': case '+': case ';': case '=':
		return 1;
	default:
		return 0;
	}
}

static int valid_authority(struct sn_str a)
{
	size_t i = 0;

	if (a.len == 0)
		return 0;
	if (a.p[0] == '[') {
		int colons = 0;

		for (i = 1; i < a.len && a.p[i] != ']'; i++) {
			if (a.p[i] == ':')
				colons++;
			else if (!IS(a.p[i], C_HEX) && a.p[i] != '.')
				return 0;
		}
		if (i >= a.len || colons < 2)
			return 0;
		i++;
	} else {
		for (; i < a.len; i++) {
			if (IS(a.p[i], C_HOST) || is_sub_delim(a.p[i]))
				continue;
			if (a.p[i] != '%')
				break;
			if (a.len - i < 3 || !IS(a.p[i + 1], C_HEX) || !IS(a.p[i + 2], C_HEX))
				return 0;
			i += 2;
		}
		if (i == 0)
			return 0;
	}
	if (i == a.len)
		return 1;
	if (a.p[i] != ':')
		return 0;
	i++;
	if (i == a.len || a.len - i > 5)
		return 0;
	unsigned port = 0;
	for (; i < a.len; i++) {
		if (!(a.p[i] >= '0' && a.p[i] <= '9'))
			return 0;
		port = port * 10 + (unsigned)(a.p[i] - '0');
	}
	return port <= 65535;
}

/* Content-Length = 1*DIGIT, at most 2^63 - 1. */
static int parse_content_length(struct sn_str v, uint64_t *out)
{
	uint64_t n = 0;

	if (v.len == 0)
		return -1;
	for (size_t i = 0; i < v.len; i++) {
		unsigned d;

		if (!(v.p[i] >= '0' && v.p[i] <= '9'))
			return -1;
		d = (unsigned)(v.p[i] - '0');
		if (n > ((uint64_t)INT64_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	*out = n;
	return 0;
}

/* Iterates the elements of a comma-separated list, trimming OWS. Returns 1
 * with *elem set (possibly empty), 0 at the end. */
static int list_next(struct sn_str v, size_t *pos, struct sn_str *elem)
{
	size_t i = *pos, s, e;

	if (i > v.len)
		return 0;
	while (i < v.len && is_ws(v.p[i]))
		i++;
	s = i;
	while (i < v.len && v.p[i] != ',')
		i++;
	e = i;
	while (e > s && is_ws(v.p[e - 1]))
		e--;
	*elem = sn_str_make(v.p + s, e - s);
	*pos = i + 1;
	return 1;
}

/* A view into [from, from + len) moved to the same place under to; others
 * (empty ones, static strings) stay. Compares addresses as integers: the
 * view may point anywhere. */
static void move_view(struct sn_str *v, uintptr_t from, size_t len, const char *to)
{
	uintptr_t p = (uintptr_t)v->p;
	if (v->p != NULL && p >= from && p - from <= len && v->len <= len - (p - from))
		v->p = to + (p - from);
}

void sn_h1_request_move(struct sn_h1_request *req, const char *buf, size_t len, const char *to,
			struct sn_h1_header *hdrs)
{
	uintptr_t from = (uintptr_t)buf;
	move_view(&req->method, from, len, to);
	move_view(&req->target, from, len, to);
	move_view(&req->path, from, len, to);
	move_view(&req->authority, from, len, to);
	for (size_t i = 0; i < req->num_headers; i++) {
		hdrs[i] = req->headers[i];
		move_view(&hdrs[i].name, from, len, to);
		move_view(&hdrs[i].value, from, len, to);
	}
	req->headers = hdrs;
}

int sn_h1_is_token(struct sn_str s)
{
	if (s.len == 0)
		return 0;
	for (size_t i = 0; i < s.len; i++)
		if (!IS(s.p[i], C_TCHAR))
			return 0;
	return 1;
}

int sn_h1_is_field_value(struct sn_str s)
{
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.p[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 0;
	}
	return 1;
}

#define CONN_CLOSE 0x1
#define CONN_KEEP_ALIVE 0x2
#define CONN_UPGRADE 0x4

/* Connection = #connection-option (tokens). Empty list elements are
 * allowed (RFC 9110 5.6.1); anything else that is not a token is refused. */
static int parse_connection(struct sn_str v, int *flags)
{
	size_t pos = 0;
	struct sn_str e;

	while (list_next(v, &pos, &e)) {
		if (e.len == 0)
			continue;
		if (!sn_h1_is_token(e))
			return -1;
		if (sn_str_ieq_cstr(e, "close"))
			*flags |= CONN_CLOSE;
		else if (sn_str_ieq_cstr(e, "keep-alive"))
			*flags |= CONN_KEEP_ALIVE;
		else if (sn_str_ieq_cstr(e, "upgrade"))
			*flags |= CONN_UPGRADE;
	}
	return 0;
}

/* Framing-related fields of a head, gathered in one pass. */
struct fields {
	int host_count;
	struct sn_str host;
	int cl_count;
	uint64_t cl;
	int te_count;
	struct sn_str te;
	int conn;
	int conn_bad;
	int expect_continue;
	int expect_bad;
	int upgrade_present;
};

static void gather(const struct head *h, struct fields *f)
{
	memset(f, 0, sizeof(*f));
	f->cl_count = h->cl_count;
	f->cl = h->cl;
	for (size_t i = 0; i < h->n; i++) {
		struct sn_str name = h->hdrs[i].name, value = h->hdrs[i].value;

		if (sn_str_ieq_cstr(name, "host")) {
			if (f->host_count++ == 0)
				f->host = value;
		} else if (name.len == 14 && (name.p[0] | 0x20) == 'c') {
			continue;   /* content-length: checked line by line (cl_line_bad) */
		} else if (sn_str_ieq_cstr(name, "transfer-encoding")) {
			if (f->te_count++ == 0)
				f->te = value;
		} else if (sn_str_ieq_cstr(name, "connection")) {
			if (parse_connection(value, &f->conn) != 0)
				f->conn_bad = 1;
		} else if (sn_str_ieq_cstr(name, "expect")) {
			if (sn_str_ieq_cstr(value, "100-continue"))
				f->expect_continue = 1;
			else
				f->expect_bad = 1;
		} else if (sn_str_ieq_cstr(name, "upgrade")) {
			f->upgrade_present = 1;
		}
	}
}

/* Parses the request line from pos. On success *line_end is the offset just
 * after its CRLF and the request's method/target/minor_version are set. */
static int parse_request_line(struct head *h, size_t pos, struct sn_h1_request *req,
			      size_t *line_end)
{
	const char *b = h->buf;
	size_t start = pos, end, t, cap;
	int v, cap_status;

	/* The line must end within max_line bytes (CRLF included) and within
	 * the head limit; whichever comes first decides 414 or 431. Bytes past
	 * it are not looked at. */
	if (h->max_line <= h->max_head && start + h->max_line <= h->max_head) {
		cap = start + h->max_line;
		cap_status = 414;
	} else {
		cap = h->max_head;
		cap_status = 431;
	}
	end = SN_MAX(SN_MIN(h->len, cap), start);

#define LINE_INCOMPLETE()                                                      \
	do {                                                                   \
		if (h->len >= cap)                                             \
			return fail(h, cap_status, cap_status == 414           \
				    ? "request line too long"                  \
				    : "header section too large");             \
		return SN_H1_INCOMPLETE;                                       \
	} while (0)

	while (pos < end && IS(b[pos], C_TCHAR))
		pos++;
	if (pos >= end)
		LINE_INCOMPLETE();
	if (b[pos] != ' ' || pos == start)
		return fail(h, 400, "invalid method");
	req->method = sn_str_make(b + start, pos - start);
	pos++;

	t = pos;
	while (pos < end && IS(b[pos], C_TARGET))
		pos++;
	if (pos >= end)
		LINE_INCOMPLETE();
	if (b[pos] != ' ' || pos == t)
		return fail(h, 400, "invalid request-target");
	req->target = sn_str_make(b + t, pos - t);
	pos++;

	v = match_version(b + pos, end - pos);
	if (v < 0)
		return fail(h, 400, "invalid HTTP version");
	if (v == 0)
		LINE_INCOMPLETE();
	pos += 8;
	if (pos >= end)
		LINE_INCOMPLETE();
	if (b[pos] != '\r')
		return fail(h, 400, b[pos] == '\n' ? "bare LF line terminator" : "invalid HTTP version");
	if (pos + 1 >= end)
		LINE_INCOMPLETE();
	if (b[pos + 1] != '\n')
		return fail(h, 400, "bare CR");
#undef LINE_INCOMPLETE
	if (b[pos - 3] != '1' || (b[pos - 1] != '0' && b[pos - 1] != '1'))
		return fail(h, 505, "unsupported HTTP version");
	req->minor_version = b[pos - 1] - '0';
	*line_end = pos + 2;
	return 0;
}

/* Classifies the request-target (RFC 9112 3.2) and sets path, authority
 * (for absolute-form) and absolute_form. */
static int parse_target(struct head *h, struct sn_h1_request *req)
{
	struct sn_str t = req->target;
	static const char scheme[] = "http://";
	size_t i;

	if (sn_str_eq_cstr(req->method, "CONNECT"))
		return fail(h, 501, "CONNECT not supported");
	if (t.p[0] == '/') {
		req->path = t;
		return 0;
	}
	if (t.p[0] == '*') {
		if (t.len != 1 || !sn_str_eq_cstr(req->method, "OPTIONS"))
			return fail(h, 400, "asterisk-form is only for OPTIONS");
		req->path = t;
		return 0;
	}
	if (t.len < sizeof(scheme) - 1 ||
	    !sn_str_ieq(sn_str_make(t.p, sizeof(scheme) - 1), SN_STR_LIT("http://")))
		return fail(h, 400, "unsupported request-target form or scheme");
	for (i = sizeof(scheme) - 1; i < t.len && t.p[i] != '/' && t.p[i] != '?'; i++)
		;
	req->authority = sn_str_make(t.p + sizeof(scheme) - 1, i - (sizeof(scheme) - 1));
	if (!valid_authority(req->authority))
		return fail(h, 400, "invalid authority in request-target");
	if (i == t.len) {
		/* Empty path means "/". Point at the first '/' of "http://" so
		 * that every view stays inside the caller's buffer. */
		req->path = sn_str_make(t.p + 5, 1);
	} else if (t.p[i] == '?') {
		/* The origin-form is "/?q", which is not a substring of the
		 * input: the query, and a flag for the "/" (RFC 9112 3.2.1). */
		req->path = sn_str_make(t.p + i, t.len - i);
		req->path_slash = 1;
	} else {
		req->path = sn_str_make(t.p + i, t.len - i);
	}
	req->absolute_form = 1;
	return 0;
}

int sn_h1_parse_request(const char *buf, size_t len, struct sn_h1_request *req,
			struct sn_h1_header *hdrs, size_t max_hdrs,
			const struct sn_h1_limits *lim)
{
	struct head h = { .buf = buf, .len = len, .hdrs = hdrs, .bad = 400 };
	struct fields f;
	size_t pos = 0, line_end;
	int r;

	memset(req, 0, sizeof(*req));
	req->headers = hdrs;
	limits_resolve(&h, lim, max_hdrs);

	/* One empty line before the request line is ignored (RFC 9112 2.2):
	 * some old clients send a CRLF after a POST body. */
	if (len > 0 && buf[0] == '\r') {
		if (len < 2) {
			r = incomplete(&h, 431);
			goto out;
		}
		if (buf[1] != '\n') {
			r = fail(&h, 400, "bare CR");
			goto out;
		}
		pos = 2;
	}
	if (pos < len && buf[pos] == '\n') {
		r = fail(&h, 400, "bare LF line terminator");
		goto out;
	}
	r = parse_request_line(&h, pos, req, &line_end);
	if (r != 0)
		goto out;
	r = parse_target(&h, req);
	if (r != 0)
		goto out;
	r = parse_fields(&h, line_end, 431);
	if (r < 0)
		goto out;
	req->num_headers = h.n;

	gather(&h, &f);
	if (f.host_count > 1) {
		r = fail(&h, 400, "more than one host");
	} else if (f.host_count == 0 && req->minor_version == 1) {
		r = fail(&h, 400, "missing host");
	} else if (f.host_count == 1 && !valid_authority(f.host)) {
		r = fail(&h, 400, "invalid host");
	} else if (f.te_count > 0 && req->minor_version == 0) {
		r = fail(&h, 400, "transfer-encoding in HTTP/1.0");
	} else if (f.te_count > 0 && f.cl_count > 0) {
		r = fail(&h, 400, "content-length with transfer-encoding");
	} else if (f.te_count > 1) {
		r = fail(&h, 501, "repeated transfer-encoding");
	} else if (f.te_count == 1 && !sn_str_ieq_cstr(f.te, "chunked")) {
		r = fail(&h, 501, "transfer-encoding other than chunked");
	} else if (f.conn_bad) {
		r = fail(&h, 400, "invalid connection header");
	} else if (f.expect_bad) {
		r = fail(&h, 417, "unsupported expectation");
	}
	if (r < 0)
		goto out;

	if (!req->absolute_form)
		req->authority = f.host_count ? f.host : SN_STR_NULL;
	if (f.te_count) {
		req->body = SN_H1_BODY_CHUNKED;
	} else if (f.cl_count) {
		req->body = SN_H1_BODY_LENGTH;
		req->content_length = f.cl;
	}
	if (req->minor_version == 1) {
		req->keep_alive = !(f.conn & CONN_CLOSE);
		/* A 1.0 server must ignore 100-continue (RFC 9110 10.1.1) and
		 * Upgrade (RFC 9110 7.8). */
		req->expect_continue = f.expect_continue;
		req->upgrade = (f.conn & CONN_UPGRADE) && f.upgrade_present;
	} else {
		req->keep_alive = (f.conn & CONN_KEEP_ALIVE) && !(f.conn & CONN_CLOSE);
	}
out:
	if (r < 0 && r != SN_H1_INCOMPLETE) {
		/* Only the error is meaningful; drop half-filled views. */
		int st = h.err_status;
		const char *why = h.err_reason;

		memset(req, 0, sizeof(*req));
		req->headers = hdrs;
		req->err_status = st;
		req->err_reason = why;
	}
	return r;
}

/* Transfer-Encoding of a response, all fields taken as one list. Sets
 * *chunked when chunked is the final coding (otherwise the body runs until
 * close, RFC 9112 6.3). Returns -1 for an empty element, an element that is
 * not a bare token (no parameters), or chunked applied twice. */
static int parse_response_te(const struct head *h, int *chunked)
{
	int seen_chunked = 0, last_chunked = 0;

	for (size_t i = 0; i < h->n; i++) {
		size_t pos = 0;
		struct sn_str e;

		if (!sn_str_ieq_cstr(h->hdrs[i].name, "transfer-encoding"))
			continue;
		while (list_next(h->hdrs[i].value, &pos, &e)) {
			if (!sn_h1_is_token(e))
				return -1;
			last_chunked = sn_str_ieq_cstr(e, "chunked");
			if (last_chunked && seen_chunked++)
				return -1;
		}
	}
	*chunked = last_chunked;
	return 0;
}

int sn_h1_parse_response(const char *buf, size_t len, struct sn_h1_response *res,
			 struct sn_h1_header *hdrs, size_t max_hdrs,
			 const struct sn_h1_limits *lim, struct sn_str request_method)
{
	struct head h = { .buf = buf, .len = len, .hdrs = hdrs, .bad = 502 };
	struct fields f;
	size_t pos, end, rs;
	int r, v, chunked = 0;

	memset(res, 0, sizeof(*res));
	res->headers = hdrs;
	limits_resolve(&h, lim, max_hdrs);

	end = SN_MIN(len, SN_MIN(h.max_line, h.max_head));
#define LINE_INCOMPLETE()                                                      \
	do {                                                                   \
		r = (len >= h.max_line || len >= h.max_head)                   \
			    ? fail(&h, 502, "status line too long")            \
			    : SN_H1_INCOMPLETE;                                \
		goto out;                                                      \
	} while (0)

	v = match_version(buf, end);
	if (v < 0) {
		r = fail(&h, 502, "invalid HTTP version");
		goto out;
	}
	if (v == 0)
		LINE_INCOMPLETE();
	/* status-line = HTTP-version SP 3DIGIT SP [ reason ]; the second SP
	 * is commonly omitted when there is no reason, and that is harmless. */
	for (pos = 8; pos < 12; pos++) {
		if (pos >= end)
			LINE_INCOMPLETE();
		if (pos == 8 ? buf[pos] != ' ' : !(buf[pos] >= '0' && buf[pos] <= '9')) {
			r = fail(&h, 502, "invalid status line");
			goto out;
		}
	}
	if (pos >= end)
		LINE_INCOMPLETE();
	if (buf[pos] == ' ')
		pos++;
	else if (buf[pos] != '\r') {
		r = fail(&h, 502, "invalid status line");
		goto out;
	}
	rs = pos;
	while (pos < end && IS(buf[pos], C_VCHAR))
		pos++;
	if (pos >= end)
		LINE_INCOMPLETE();
	if (buf[pos] != '\r') {
		r = fail(&h, 502, buf[pos] == '\n' ? "bare LF line terminator" : "invalid byte in reason phrase");
		goto out;
	}
	if (pos + 1 >= end)
		LINE_INCOMPLETE();
	if (buf[pos + 1] != '\n') {
		r = fail(&h, 502, "bare CR");
		goto out;
	}
#undef LINE_INCOMPLETE
	if (buf[5] != '1' || (buf[7] != '0' && buf[7] != '1')) {
		r = fail(&h, 502, "unsupported HTTP version");
		goto out;
	}
	res->minor_version = buf[7] - '0';
	res->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	if (res->status < 100 || res->status > 599) {
		r = fail(&h, 502, "invalid status code");
		goto out;
	}
	res->reason = sn_str_make(buf + rs, pos - rs);

	r = parse_fields(&h, pos + 2, 502);
	if (r < 0)
		goto out;
	res->num_headers = h.n;

	gather(&h, &f);
	if (f.te_count > 0 && res->minor_version == 0) {
		/* RFC 9112 6.1: treat the framing as faulty. */
		r = fail(&h, 502, "transfer-encoding in HTTP/1.0 response");
	} else if (f.te_count > 0 && f.cl_count > 0) {
		r = fail(&h, 502, "content-length with transfer-encoding");
	} else if (f.te_count > 0 && parse_response_te(&h, &chunked) != 0) {
		r = fail(&h, 502, "invalid transfer-encoding");
	} else if (f.conn_bad) {
		r = fail(&h, 502, "invalid connection header");
	}
	if (r < 0)
		goto out;

	if (res->status < 200 || res->status == 204 || res->status == 304 ||
	    sn_str_eq_cstr(request_method, "HEAD")) {
		res->body = SN_H1_BODY_NONE;
	} else if (sn_str_eq_cstr(request_method, "CONNECT") && res->status < 300) {
		res->body = SN_H1_BODY_NONE;
	} else if (f.te_count) {
		res->body = chunked ? SN_H1_BODY_CHUNKED : SN_H1_BODY_UNTIL_CLOSE;
	} else if (f.cl_count) {
		res->body = SN_H1_BODY_LENGTH;
		res->content_length = f.cl;
	} else {
		res->body = SN_H1_BODY_UNTIL_CLOSE;
	}
	if (res->minor_version == 1)
		res->keep_alive = !(f.conn & CONN_CLOSE);
	else
		res->keep_alive = (f.conn & CONN_KEEP_ALIVE) && !(f.conn & CONN_CLOSE);
	if (res->body == SN_H1_BODY_UNTIL_CLOSE)
		res->keep_alive = 0;
out:
	if (r < 0 && r != SN_H1_INCOMPLETE) {
		int st = h.err_status;
		const char *why = h.err_reason;

		memset(res, 0, sizeof(*res));
		res->headers = hdrs;
		res->err_status = st;
		res->err_reason = why;
	}
	return r;
}

/* Chunked scanner. */

#define SN_H1_CHUNK_LINE_MAX 4096   /* chunk-size line with extensions and CRLF */
#define SN_H1_TRAILERS_MAX 8192     /* everything after the last-chunk line */
#define SN_H1_CHUNK_SIZE_DIGITS 16

enum {
	CS_SIZE_START = 0, /* sn_h1_chunked_init sets this */
	CS_SIZE,
	CS_SIZE_WS,
	CS_EXT_NAME_START,
	CS_EXT_NAME,
	CS_EXT_NAME_WS,
	CS_EXT_VAL_START,
	CS_EXT_VAL_TOKEN,
	CS_EXT_VAL_QUOTED,
	CS_EXT_VAL_QESC,
	CS_EXT_AFTER_VAL,
	CS_SIZE_LF,
	CS_DATA,
	CS_DATA_CR,
	CS_DATA_LF,
	CS_TRAILER_START,
	CS_TRAILER_NAME,
	CS_TRAILER_VALUE,
	CS_TRAILER_LF,
	CS_END_LF,
	CS_DONE,
	CS_ERROR,
};

void sn_h1_chunked_init(struct sn_h1_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CS_SIZE_START;
}

/* The size line ended (CRLF seen): a zero size is the last chunk. */
static int chunk_line_done(struct sn_h1_chunked *c)
{
	if (c->remaining == 0)
		return CS_TRAILER_START;
	if (c->body_bytes + c->remaining < c->body_bytes)
		return CS_ERROR;
	return CS_DATA;
}

/* After BWS in a chunk extension: ';' starts another, CR ends the line. */
static int ext_sep(int ch, int ws_state)
{
	if (is_ws(ch))
		return ws_state;
	if (ch == ';')
		return CS_EXT_NAME_START;
	if (ch == '\r')
		return CS_SIZE_LF;
	return CS_ERROR;
}

ssize_t sn_h1_chunked_scan(struct sn_h1_chunked *c, const char *buf, size_t len, int *done)
{
	size_t i = 0;
	int s = c->state;

	*done = 0;
	if (s == CS_DONE) {
		*done = 1;
		return 0;
	}
	while (i < len && s != CS_ERROR) {
		int ch = (unsigned char)buf[i];

		if (s == CS_DATA) {
			size_t n = len - i;

			if ((uint64_t)n > c->remaining)
				n = (size_t)c->remaining;
			c->remaining -= n;
			c->body_bytes += n;
			i += n;
			if (c->remaining == 0)
				s = CS_DATA_CR;
			continue;
		}
		i++;
		if (s <= CS_SIZE_LF) {
			if (++c->line_len > SN_H1_CHUNK_LINE_MAX) {
				s = CS_ERROR;
				break;
			}
		} else if (s >= CS_TRAILER_START && s <= CS_END_LF) {
			if (++c->trailer_bytes > SN_H1_TRAILERS_MAX) {
				s = CS_ERROR;
				break;
			}
		}
		switch (s) {
		case CS_SIZE_START:
			if (!IS(ch, C_HEX)) {
				s = CS_ERROR;
				break;
			}
			c->remaining = (uint64_t)sn_hex_value(ch);
			s = CS_SIZE;
			break;
		case CS_SIZE:
			if (IS(ch, C_HEX)) {
				if (c->line_len > SN_H1_CHUNK_SIZE_DIGITS) {
					s = CS_ERROR;
					break;
				}
				c->remaining = (c->remaining << 4) | (uint64_t)sn_hex_value(ch);
			} else {
				s = ext_sep(ch, CS_SIZE_WS);
			}
			break;
		case CS_SIZE_WS:
			/* Whitespace after the size is only allowed before ';'. */
			if (is_ws(ch))
				break;
			s = ch == ';' ? CS_EXT_NAME_START : CS_ERROR;
			break;
		case CS_EXT_NAME_START:
			if (is_ws(ch))
				break;
			s = IS(ch, C_TCHAR) ? CS_EXT_NAME : CS_ERROR;
			break;
		case CS_EXT_NAME:
			if (IS(ch, C_TCHAR))
				break;
			if (ch == '=')
				s = CS_EXT_VAL_START;
			else
				s = ext_sep(ch, CS_EXT_NAME_WS);
			break;
		case CS_EXT_NAME_WS:
			s = ch == '=' ? CS_EXT_VAL_START : ext_sep(ch, CS_EXT_NAME_WS);
			break;
		case CS_EXT_VAL_START:
			if (is_ws(ch))
				break;
			if (ch == '"')
				s = CS_EXT_VAL_QUOTED;
			else
				s = IS(ch, C_TCHAR) ? CS_EXT_VAL_TOKEN : CS_ERROR;
			break;
		case CS_EXT_VAL_TOKEN:
			if (!IS(ch, C_TCHAR))
				s = ext_sep(ch, CS_EXT_AFTER_VAL);
			break;
		case CS_EXT_VAL_QUOTED:
			/* qdtext = HTAB / SP / VCHAR except '"' and '\' / obs-text */
			if (ch == '"')
				s = CS_EXT_AFTER_VAL;
			else if (ch == '\\')
				s = CS_EXT_VAL_QESC;
			else if (!IS(ch, C_VCHAR))
				s = CS_ERROR;
			break;
		case CS_EXT_VAL_QESC:
			s = IS(ch, C_VCHAR) ? CS_EXT_VAL_QUOTED : CS_ERROR;
			break;
		case CS_EXT_AFTER_VAL:
			s = ext_sep(ch, CS_EXT_AFTER_VAL);
			break;
		case CS_SIZE_LF:
			if (ch != '\n') {
				s = CS_ERROR;
				break;
			}
			c->line_len = 0;
			s = chunk_line_done(c);
			break;
		case CS_DATA_CR:
			s = ch == '\r' ? CS_DATA_LF : CS_ERROR;
			break;
		case CS_DATA_LF:
			s = ch == '\n' ? CS_SIZE_START : CS_ERROR;
			break;
		case CS_TRAILER_START:
			if (ch == '\r')
				s = CS_END_LF;
			else
				s = IS(ch, C_TCHAR) ? CS_TRAILER_NAME : CS_ERROR;
			break;
		case CS_TRAILER_NAME:
			if (ch == ':')
				s = CS_TRAILER_VALUE;
			else if (!IS(ch, C_TCHAR))
				s = CS_ERROR;
			break;
		case CS_TRAILER_VALUE:
			if (ch == '\r')
				s = CS_TRAILER_LF;
			else if (!IS(ch, C_VCHAR))
				s = CS_ERROR;
			break;
		case CS_TRAILER_LF:
			s = ch == '\n' ? CS_TRAILER_START : CS_ERROR;
			break;
		case CS_END_LF:
			s = ch == '\n' ? CS_DONE : CS_ERROR;
			break;
		default:
			s = CS_ERROR;
			break;
		}
		if (s == CS_DONE)
			break;
	}
	c->state = s;
	if (s == CS_ERROR)
		return -1;
	if (s == CS_DONE)
		*done = 1;
	return (ssize_t)i;
}

ssize_t sn_h1_chunked_next(struct sn_h1_chunked *c, const char *buf, size_t len, size_t *data, int *done)
{
	size_t i = 0;

	*data = 0;
	*done = 0;
	if (c->state == CS_DATA) {
		size_t n = (uint64_t)len > c->remaining ? (size_t)c->remaining : len;
		ssize_t r = sn_h1_chunked_scan(c, buf, n, done);
		*data = (size_t)r;
		return r;
	}
	/* Framing, a byte at a time up to the next data byte: a size line
	 * and its CRLFs are a few bytes per chunk. */
	while (i < len && c->state != CS_DATA && !*done) {
		ssize_t r = sn_h1_chunked_scan(c, buf + i, 1, done);
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		i++;
	}
	return (ssize_t)i;
}

/* Header helpers. */

int sn_h1_find_header(const struct sn_h1_header *hdrs, size_t n, struct sn_str name, int from)
{
	if (from < 0)
		from = 0;
	for (size_t i = (size_t)from; i < n && i <= INT_MAX; i++)
		if (sn_str_ieq(hdrs[i].name, name))
			return (int)i;
	return -1;
}

int sn_h1_is_hop_by_hop(struct sn_str name, const struct sn_h1_header *hdrs, size_t n)
{
	static const char *const std[] = {
		"connection", "keep-alive", "proxy-connection", "te",
		"trailer", "transfer-encoding", "upgrade", "proxy-authenticate",
	};

	for (size_t i = 0; i < SN_ARRAY_LEN(std); i++)
		if (sn_str_ieq_cstr(name, std[i]))
			return 1;
	/* A Connection header may nominate more fields, but never the ones
	 * that carry framing or routing: dropping Content-Length while the
	 * body is forwarded would turn the body into a second request. */
	if (sn_str_ieq_cstr(name, "content-length") || sn_str_ieq_cstr(name, "host"))
		return 0;
	for (size_t i = 0; i < n; i++) {
		size_t pos = 0;
		struct sn_str e;

		if (!sn_str_ieq_cstr(hdrs[i].name, "connection"))
			continue;
		while (list_next(hdrs[i].value, &pos, &e))
			if (e.len > 0 && sn_str_ieq(e, name))
				return 1;
	}
	return 0;
}

struct sn_str sn_http_query_param(struct sn_str path, const char *name)
{
	const char *q = path.p ? memchr(path.p, '?', path.len) : NULL;
	size_t nl = strlen(name);
	while (q != NULL) {
		const char *p = q + 1, *end = path.p + path.len;
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		if ((size_t)(stop - p) >= nl && !memcmp(p, name, nl) && (p + nl == stop || p[nl] == '='))
			return p + nl == stop ? sn_str_make(p + nl, 0)
					      : sn_str_make(p + nl + 1, (size_t)(stop - p - nl - 1));
		q = amp;
	}
	return sn_str_make(NULL, 0);
}

struct sn_str sn_http_cookie(const struct sn_h1_header *hdrs, size_t n, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < n; i++) {
		if (!sn_str_ieq(hdrs[i].name, sn_str_make("cookie", 6)))
			continue;
		const char *p = hdrs[i].value.p, *end = p + hdrs[i].value.len;
		while (p < end) {
			while (p < end && (*p == ' ' || *p == ';'))
				p++;
			const char *semi = memchr(p, ';', (size_t)(end - p));
			const char *stop = semi ? semi : end;
			if ((size_t)(stop - p) > nl && p[nl] == '=' && !memcmp(p, name, nl))
				return sn_str_make(p + nl + 1, (size_t)(stop - p - nl - 1));
			p = stop;
		}
	}
	return sn_str_make(NULL, 0);
}

int sn_h1_response_body(const struct sn_h1_response *res, char *b, size_t n, size_t *len_out)
{
	if (res->body == SN_H1_BODY_NONE) {
		*len_out = 0;
		return 0;
	}
	if (res->body == SN_H1_BODY_LENGTH) {
		if (res->content_length > n)
			return -1;
		*len_out = (size_t)res->content_length;
		return 0;
	}
	if (res->body != SN_H1_BODY_CHUNKED) {
		*len_out = n;   /* to the end of the connection */
		return 0;
	}
	struct sn_h1_chunked ck;
	size_t in = 0, out = 0;
	int done = 0;
	sn_h1_chunked_init(&ck);
	while (!done && in < n) {
		size_t data = 0;
		ssize_t k = sn_h1_chunked_next(&ck, b + in, n - in, &data, &done);
		if (k <= 0)
			return -1;
		memmove(b + out, b + in + (size_t)k - data, data);   /* framing or data, never both */
		out += data;
		in += (size_t)k;
	}
	if (!done)
		return -1;
	*len_out = out;
	return 0;
}
