/* The growable output buffer (sinew/out.h), with JSON string escaping.
 * Responses can be large (GET of the whole store), so the buffer grows;
 * what a peer controls is bounded before anything is rendered. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/json.h"
#include "sinew/out.h"

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

char *sn_out_reserve(struct sn_out *o, size_t n)
{
	return reserve(o, n) == 0 ? o->p + o->len : NULL;
}

void sn_out_commit(struct sn_out *o, size_t k)
{
	o->len += k;
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

/* Escaped by the tree's one rule (sinew/json.h), straight into the
 * buffer, a slice at a time (at most 6 bytes out per byte in). */
void sn_out_json_str(struct sn_out *o, const char *s, size_t n)
{
	sn_out_raw(o, "\"", 1);
	while (n > 0 && !o->failed) {
		/* the escaper stops before what does not fit, never inside a
		 * sequence: room for a slice of output, all of the input */
		size_t room = SN_MIN(n, (size_t)4096) * 6, used = 0;
		if (reserve(o, room) != 0)
			return;
		o->len += sn_json_escape(o->p + o->len, room, s, n, &used);
		s += used;
		n -= used;
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
