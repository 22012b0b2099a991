/* A growable output buffer for API responses, with JSON string escaping.
 * Responses can be large (GET of the whole store), so the buffer grows;
 * what a peer controls is bounded before anything is rendered. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/control.h"

static int reserve(struct sn_out *o, size_t n)
{
	if (o->failed)
		return -1;
	if (o->len + n + 1 <= o->cap)
		return 0;
	size_t cap = o->cap ? o->cap : 4096;
	while (cap < o->len + n + 1)
		cap *= 2;
	char *p = realloc(o->p, cap);
	if (p == NULL) {
		o->failed = 1;
		return -1;
	}
	o->p = p;
	o->cap = cap;
	return 0;
}

void sn_out_raw(struct sn_out *o, const char *s, size_t n)
{
	if (reserve(o, n) != 0)
		return;
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

void sn_out_cstr(struct sn_out *o, const char *s)
{
	sn_out_raw(o, s, strlen(s));
}

void sn_out_printf(struct sn_out *o, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(buf)) {
		sn_out_raw(o, buf, (size_t)n);
		return;
	}
	if (reserve(o, (size_t)n) != 0)
		return;
	va_start(ap, fmt);
	vsnprintf(o->p + o->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	o->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at p, 0 if none. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t k;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		k = 1;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		k = 2;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		k = 3;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (k >= n)
		return 0;
	for (size_t i = 1; i <= k; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return k + 1;
}

void sn_out_json_str(struct sn_out *o, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	if (reserve(o, n + 2) != 0)
		return;
	sn_out_raw(o, "\"", 1);
	size_t i = 0;
	while (i < n && !o->failed) {
		size_t run = i;
		while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
			run++;
		if (run > i) {
			sn_out_raw(o, s + i, run - i);
			i = run;
			continue;
		}
		unsigned char c = p[i];
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			sn_out_raw(o, esc, 2);
			i++;
		} else if (c < 0x20) {
			const char *named = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
			if (named != NULL) {
				sn_out_raw(o, named, 2);
			} else {
				snprintf(esc, sizeof(esc), "\\u%04x", c);
				sn_out_raw(o, esc, 6);
			}
			i++;
		} else {
			size_t k = utf8_len(p + i, n - i);
			if (k == 0) {
				sn_out_raw(o, "\xef\xbf\xbd", 3);
				i++;
			} else {
				sn_out_raw(o, s + i, k);
				i += k;
			}
		}
	}
	sn_out_raw(o, "\"", 1);
}

void sn_out_json_cstr(struct sn_out *o, const char *s)
{
	if (s == NULL)
		sn_out_raw(o, "null", 4);
	else
		sn_out_json_str(o, s, strlen(s));
}

void sn_out_free(struct sn_out *o)
{
	free(o->p);
	memset(o, 0, sizeof(*o));
}
