/* Bounded JSON output and string escaping (see sinew/json.h): the one
 * escaping rule of the tree (strict UTF-8), for every JSON writer. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sinew/common.h"
#include "sinew/json.h"

/* U+FFFD REPLACEMENT CHARACTER, for bytes that are not valid UTF-8. */
static const char replacement[] = "\xEF\xBF\xBD";

void sn_json_out_init(struct sn_json_out *o, char *buf, size_t cap)
{
	o->buf = buf;
	o->len = 0;
	o->cap = cap;
}

int sn_json_out_raw(struct sn_json_out *o, const char *s, size_t n)
{
	if (n > o->cap - o->len)
		return SN_ELIMIT;
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	return 0;
}

/* Writes v's digits backwards ending just before end; returns the first. */
static char *u64_digits(uint64_t v, char *end)
{
	char *p = end;

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return p;
}

int sn_json_out_u64(struct sn_json_out *o, uint64_t v)
{
	char tmp[24];
	char *p = u64_digits(v, tmp + sizeof(tmp));

	return sn_json_out_raw(o, p, (size_t)(tmp + sizeof(tmp) - p));
}

int sn_json_out_i64(struct sn_json_out *o, int64_t v)
{
	char tmp[24];
	/* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
	uint64_t mag = v < 0 ? -(uint64_t)v : (uint64_t)v;
	char *p = u64_digits(mag, tmp + sizeof(tmp));

	if (v < 0)
		*--p = '-';
	return sn_json_out_raw(o, p, (size_t)(tmp + sizeof(tmp) - p));
}

int sn_json_out_fixed3(struct sn_json_out *o, int64_t v)
{
	char tmp[32];
	uint64_t mag = v < 0 ? -(uint64_t)v : (uint64_t)v;
	char *end = tmp + sizeof(tmp);
	char *p = end;
	uint64_t frac = mag % 1000;

	*--p = (char)('0' + frac % 10);
	*--p = (char)('0' + frac / 10 % 10);
	*--p = (char)('0' + frac / 100);
	*--p = '.';
	p = u64_digits(mag / 1000, p);
	if (v < 0)
		*--p = '-';
	return sn_json_out_raw(o, p, (size_t)(end - p));
}

size_t sn_utf8_seq_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	unsigned char lo = 0x80, hi = 0xBF;
	size_t len;

	if (c < 0x80)
		return 1;
	/* Unicode Table 3-7 (well-formed UTF-8 byte sequences). */
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		if (c == 0xE0)
			lo = 0xA0;   /* no overlong forms */
		else if (c == 0xED)
			hi = 0x9F;   /* no UTF-16 surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;   /* nothing above U+10FFFF */
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return len;
}

int sn_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		size_t l = sn_utf8_seq_len(p + i, n - i);
		if (l == 0)
			return 0;
		i += l;
	}
	return 1;
}

size_t sn_json_escape(char *dst, size_t cap, const char *s, size_t n, size_t *consumed)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *in = (const unsigned char *)s;
	size_t i = 0, w = 0;

	while (i < n) {
		unsigned char c = in[i];
		char esc[6];
		const char *out;
		size_t out_len, in_len;

		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			/* The common case: a run of plain printable ASCII, copied
			 * at once. */
			size_t r = i + 1;
			while (r < n && in[r] >= 0x20 && in[r] < 0x80 && in[r] != '"' && in[r] != '\\')
				r++;
			size_t k = SN_MIN(r - i, cap - w);
			memcpy(dst + w, in + i, k);
			w += k;
			i += k;
			if (i < r)
				break;   /* out of room */
			continue;
		}
		in_len = 1;
		out = esc;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			out_len = 2;
		} else if (c < 0x20) {
			const char *short_esc = NULL;

			switch (c) {
			case '\b': short_esc = "\\b"; break;
			case '\f': short_esc = "\\f"; break;
			case '\n': short_esc = "\\n"; break;
			case '\r': short_esc = "\\r"; break;
			case '\t': short_esc = "\\t"; break;
			default: break;
			}
			if (short_esc) {
				out = short_esc;
				out_len = 2;
			} else {
				memcpy(esc, "\\u00", 4);
				esc[4] = hex[c >> 4];
				esc[5] = hex[c & 0xF];
				out_len = 6;
			}
		} else {
			in_len = sn_utf8_seq_len(in + i, n - i);
			if (in_len) {
				out = (const char *)in + i;
				out_len = in_len;
			} else {
				/* One replacement per invalid byte, then resync. */
				in_len = 1;
				out = replacement;
				out_len = 3;
			}
		}
		if (out_len > cap - w)
			break;
		memcpy(dst + w, out, out_len);
		w += out_len;
		i += in_len;
	}
	if (consumed)
		*consumed = i;
	return w;
}

int sn_json_out_str(struct sn_json_out *o, const char *s, size_t n, size_t max)
{
	size_t room = SN_MIN(max, o->cap - o->len);
	size_t used, w;
	char *dst;

	if (room < 2 + SN_JSON_TRUNCATED_LEN) {
		/* Short values may still fit whole; anything else cannot. */
		if (room < 2)
			return SN_ELIMIT;
		w = sn_json_escape(o->buf + o->len + 1, room - 2, s, n, &used);
		if (used < n)
			return SN_ELIMIT;
		o->buf[o->len] = '"';
		o->buf[o->len + 1 + w] = '"';
		o->len += w + 2;
		return 0;
	}
	dst = o->buf + o->len;
	dst[0] = '"';
	w = sn_json_escape(dst + 1, room - 2, s, n, &used);
	if (used < n) {
		/* Redo with room for the marker; shorter output is a prefix. */
		w = sn_json_escape(dst + 1, room - 2 - SN_JSON_TRUNCATED_LEN, s, n, &used);
		memcpy(dst + 1 + w, SN_JSON_TRUNCATED, SN_JSON_TRUNCATED_LEN);
		w += SN_JSON_TRUNCATED_LEN;
	}
	dst[1 + w] = '"';
	o->len += w + 2;
	return used < n;
}

void sn_json_fput_str(FILE *f, const char *s, size_t n)
{
	char buf[512];
	fputc('"', f);
	while (n > 0) {
		size_t used = 0, w = sn_json_escape(buf, sizeof(buf), s, n, &used);
		fwrite(buf, 1, w, f);
		s += used;
		n -= used;
	}
	fputc('"', f);
}

void sn_json_fput_cstr(FILE *f, const char *s)
{
	if (s == NULL)
		fputs("null", f);
	else
		sn_json_fput_str(f, s, strlen(s));
}
