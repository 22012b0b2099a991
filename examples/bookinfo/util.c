/* Small helpers: a bounded growable buffer, HTML and JSON escaping, form
 * and cookie decoding. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bookinfo.h"
#include "sinew/json.h"

void bk_buf_init(struct bk_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void bk_buf_free(struct bk_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* Room for n more bytes plus a NUL. */
static int reserve(struct bk_buf *b, size_t n)
{
	if (b->overflow)
		return -1;
	if (n > b->max || b->len > b->max - n) {
		b->overflow = 1;
		return -1;
	}
	size_t want = b->len + n + 1;
	if (want <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 1024;
	while (cap < want)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (p == NULL) {
		b->overflow = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void bk_buf_add(struct bk_buf *b, const char *s, size_t n)
{
	if (reserve(b, n) != 0)
		return;
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void bk_buf_adds(struct bk_buf *b, const char *s)
{
	bk_buf_add(b, s, strlen(s));
}

void bk_buf_addf(struct bk_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || reserve(b, (size_t)n) != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void bk_buf_add_html(struct bk_buf *b, const char *s, size_t n)
{
	size_t from = 0;
	for (size_t i = 0; i < n; i++) {
		const char *rep = NULL;
		switch (s[i]) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&#39;"; break;
		default: continue;
		}
		bk_buf_add(b, s + from, i - from);
		bk_buf_adds(b, rep);
		from = i + 1;
	}
	bk_buf_add(b, s + from, n - from);
}

void bk_buf_add_json_str(struct bk_buf *b, const char *s, size_t n)
{
	char tmp[512];
	bk_buf_add(b, "\"", 1);
	while (n > 0) {
		size_t used = 0;
		size_t w = sn_json_escape(tmp, sizeof(tmp), s, n, &used);
		if (used == 0)
			break;
		bk_buf_add(b, tmp, w);
		s += used;
		n -= used;
	}
	bk_buf_add(b, "\"", 1);
}

long bk_parse_id(struct sn_str s)
{
	if (s.len == 0 || s.len > 9)
		return -1;
	long v = 0;
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return -1;
		v = v * 10 + (s.p[i] - '0');
	}
	return v;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = sn_tolower_ascii(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decodes (and '+' → ' ' when plus) s into out. */
static long pct_decode(const char *s, size_t n, int plus, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
		    hexval((unsigned char)s[i + 2]) >= 0) {
			c = hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]);
			i += 2;
		} else if (c == '+' && plus) {
			c = ' ';
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (long)o;
}

long bk_form_value(struct sn_str form, const char *key, char *out, size_t cap)
{
	size_t klen = strlen(key);
	size_t i = 0;
	while (i < form.len) {
		size_t end = i;
		while (end < form.len && form.p[end] != '&')
			end++;
		const char *eq = memchr(form.p + i, '=', end - i);
		size_t nlen = eq ? (size_t)(eq - (form.p + i)) : end - i;
		if (nlen == klen && memcmp(form.p + i, key, klen) == 0) {
			const char *v = eq ? eq + 1 : form.p + end;
			return pct_decode(v, (size_t)(form.p + end - v), 1, out, cap);
		}
		i = end + 1;
	}
	return -1;
}

long bk_cookie_value(struct sn_str cookie, const char *name, char *out, size_t cap)
{
	size_t nlen = strlen(name);
	size_t i = 0;
	while (i < cookie.len) {
		while (i < cookie.len && (cookie.p[i] == ' ' || cookie.p[i] == '\t'))
			i++;
		size_t end = i;
		while (end < cookie.len && cookie.p[end] != ';')
			end++;
		if (end - i > nlen && memcmp(cookie.p + i, name, nlen) == 0 &&
		    cookie.p[i + nlen] == '=') {
			const char *v = cookie.p + i + nlen + 1;
			size_t vlen = (size_t)(cookie.p + end - v);
			if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
				v++;
				vlen -= 2;
			}
			return pct_decode(v, vlen, 0, out, cap);
		}
		i = end + 1;
	}
	return -1;
}

long bk_cookie_encode(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '@';
		if (o + (plain ? 1 : 3) >= cap)
			return -1;
		if (plain) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return (long)o;
}

int bk_user_valid(const char *s, size_t n)
{
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

/* Istio's list (productpage.py's getForwardHeaders, reviews' headers
 * to propagate): trace context in every format Istio's tracers use,
 * then the application's own end-user, user-agent and session headers. */
static const char *const forward_names[] = {
	"x-request-id", "x-ot-span-context", "x-datadog-trace-id", "x-datadog-parent-id",
	"x-datadog-sampling-priority", "traceparent", "tracestate", "x-cloud-trace-context",
	"grpc-trace-bin", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled",
	"x-b3-flags", "b3", "sw8", "end-user", "user-agent", "cookie", "authorization", "jwt",
};

size_t bk_forward_headers(const struct bk_request *req, struct bk_header *out, int skip_end_user)
{
	size_t n = 0;
	for (size_t i = 0; i < SN_ARRAY_LEN(forward_names) && n < BK_MAX_FORWARD; i++) {
		if (skip_end_user && strcmp(forward_names[i], "end-user") == 0)
			continue;
		struct sn_str v = bk_request_header(req, forward_names[i]);
		if (v.p == NULL)
			continue;
		out[n].name = sn_str_make(forward_names[i], strlen(forward_names[i]));
		out[n].value = v;
		n++;
	}
	return n;
}

void bk_json_reply(struct bk_response *res, int status, const char *json)
{
	res->status = status;
	res->content_type = "application/json";
	res->body.len = 0;
	bk_buf_adds(&res->body, json);
}
