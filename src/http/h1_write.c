/* HTTP/1.1 head writer, chunk-size lines and reason phrases.
 *
 * A writer never writes past its buffer: an append that does not fit sets
 * `overflow`, writes nothing, and every later call is a no-op. An append
 * whose bytes would break the message framing (CR, LF, NUL or another CTL
 * in a name or value, a space in a request-target, a name that is not a
 * token) is refused the same way, so a caller that checks `overflow` before
 * sending can never emit a split or smuggled head. */
#include "sinew/h1.h"

static int writable(struct sn_h1_writer *w, size_t n)
{
	if (w->overflow)
		return 0;
	if (w->len > w->cap || n > w->cap - w->len) {
		w->overflow = 1;
		return 0;
	}
	return 1;
}

static void put(struct sn_h1_writer *w, const void *p, size_t n)
{
	if (n > 0)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static int valid_target(struct sn_str s)
{
	if (s.len == 0)
		return 0;
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.p[i];

		if (c <= 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

static void refuse(struct sn_h1_writer *w)
{
	w->overflow = 1;
}

void sn_h1w_raw(struct sn_h1_writer *w, const void *p, size_t n)
{
	if (writable(w, n))
		put(w, p, n);
}

void sn_h1w_request_line(struct sn_h1_writer *w, struct sn_str method, struct sn_str target)
{
	static const char ver[] = " HTTP/1.1\r\n";

	if (!sn_h1_is_token(method) || !valid_target(target)) {
		refuse(w);
		return;
	}
	if (method.len > SIZE_MAX / 2 || target.len > SIZE_MAX / 2 ||
	    !writable(w, method.len + 1 + target.len + sizeof(ver) - 1))
		return;
	put(w, method.p, method.len);
	put(w, " ", 1);
	put(w, target.p, target.len);
	put(w, ver, sizeof(ver) - 1);
}

void sn_h1w_status_line(struct sn_h1_writer *w, int status, const char *reason)
{
	char line[16] = "HTTP/1.1 000 ";
	struct sn_str r;

	if (status < 100 || status > 999) {
		refuse(w);
		return;
	}
	if (reason == NULL)
		reason = sn_h1_reason_phrase(status);
	r = sn_str_make(reason, strlen(reason));
	if (!sn_h1_is_field_value(r)) {
		refuse(w);
		return;
	}
	line[9] = (char)('0' + status / 100);
	line[10] = (char)('0' + status / 10 % 10);
	line[11] = (char)('0' + status % 10);
	if (r.len > SIZE_MAX / 2 || !writable(w, 13 + r.len + 2))
		return;
	put(w, line, 13);
	put(w, r.p, r.len);
	put(w, "\r\n", 2);
}

void sn_h1w_header(struct sn_h1_writer *w, struct sn_str name, struct sn_str value)
{
	if (!sn_h1_is_token(name) || !sn_h1_is_field_value(value)) {
		refuse(w);
		return;
	}
	if (name.len > SIZE_MAX / 4 || value.len > SIZE_MAX / 4 ||
	    !writable(w, name.len + 2 + value.len + 2))
		return;
	put(w, name.p, name.len);
	put(w, ": ", 2);
	put(w, value.p, value.len);
	put(w, "\r\n", 2);
}

void sn_h1w_header_valid(struct sn_h1_writer *w, struct sn_str name, struct sn_str value)
{
	if (name.len > SIZE_MAX / 4 || value.len > SIZE_MAX / 4 || !writable(w, name.len + 2 + value.len + 2))
		return;
	put(w, name.p, name.len);
	put(w, ": ", 2);
	put(w, value.p, value.len);
	put(w, "\r\n", 2);
}

void sn_h1w_header_cstr(struct sn_h1_writer *w, const char *name, const char *value)
{
	sn_h1w_header(w, sn_str_make(name, strlen(name)), sn_str_make(value, strlen(value)));
}

void sn_h1w_header_u64(struct sn_h1_writer *w, const char *name, uint64_t value)
{
	char digits[20];
	size_t i = sizeof(digits);

	do {
		digits[--i] = (char)('0' + value % 10);
		value /= 10;
	} while (value != 0);
	sn_h1w_header(w, sn_str_make(name, strlen(name)),
		      sn_str_make(digits + i, sizeof(digits) - i));
}

void sn_h1w_end(struct sn_h1_writer *w)
{
	sn_h1w_raw(w, "\r\n", 2);
}

size_t sn_h1_chunk_header(char *out, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char tmp[16];
	size_t n = 0, i;

	do {
		tmp[n++] = hex[len & 0xf];
		len >>= 4;
	} while (len != 0);
	for (i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	out[n++] = '\r';
	out[n++] = '\n';
	return n;
}

struct reason {
	int status;
	const char *phrase;
};

/* RFC 9110 section 15, plus 429 and 431 (RFC 6585). */
static const struct reason reasons[] = {
	{ 100, "Continue" },
	{ 101, "Switching Protocols" },
	{ 103, "Early Hints" },
	{ 200, "OK" },
	{ 201, "Created" },
	{ 202, "Accepted" },
	{ 203, "Non-Authoritative Information" },
	{ 204, "No Content" },
	{ 205, "Reset Content" },
	{ 206, "Partial Content" },
	{ 300, "Multiple Choices" },
	{ 301, "Moved Permanently" },
	{ 302, "Found" },
	{ 303, "See Other" },
	{ 304, "Not Modified" },
	{ 305, "Use Proxy" },
	{ 307, "Temporary Redirect" },
	{ 308, "Permanent Redirect" },
	{ 400, "Bad Request" },
	{ 401, "Unauthorized" },
	{ 402, "Payment Required" },
	{ 403, "Forbidden" },
	{ 404, "Not Found" },
	{ 405, "Method Not Allowed" },
	{ 406, "Not Acceptable" },
	{ 407, "Proxy Authentication Required" },
	{ 408, "Request Timeout" },
	{ 409, "Conflict" },
	{ 410, "Gone" },
	{ 411, "Length Required" },
	{ 412, "Precondition Failed" },
	{ 413, "Content Too Large" },
	{ 414, "URI Too Long" },
	{ 415, "Unsupported Media Type" },
	{ 416, "Range Not Satisfiable" },
	{ 417, "Expectation Failed" },
	{ 421, "Misdirected Request" },
	{ 422, "Unprocessable Content" },
	{ 426, "Upgrade Required" },
	{ 428, "Precondition Required" },
	{ 429, "Too Many Requests" },
	{ 431, "Request Header Fields Too Large" },
	{ 451, "Unavailable For Legal Reasons" },
	{ 500, "Internal Server Error" },
	{ 501, "Not Implemented" },
	{ 502, "Bad Gateway" },
	{ 503, "Service Unavailable" },
	{ 504, "Gateway Timeout" },
	{ 505, "HTTP Version Not Supported" },
	{ 511, "Network Authentication Required" },
};

const char *sn_h1_reason_phrase(int status)
{
	for (size_t i = 0; i < SN_ARRAY_LEN(reasons); i++)
		if (reasons[i].status == status)
			return reasons[i].phrase;
	return "Unknown";
}
