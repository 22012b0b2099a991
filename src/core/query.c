/* A URL's query string (sinew/query.h). */
#include <string.h>

#include "sinew/query.h"

int sn_url_decode(struct sn_str s, char *out, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; i < s.len; i++) {
		char ch = s.p[i];
		if (ch == '%') {
			if (i + 2 >= s.len)
				return -1;
			int h = sn_hex_value((unsigned char)s.p[i + 1]), l = sn_hex_value((unsigned char)s.p[i + 2]);
			if (h < 0 || l < 0 || (h == 0 && l == 0))
				return -1;
			ch = (char)(h * 16 + l);
			i += 2;
		} else if (ch == '+') {
			ch = ' ';
		}
		if (o + 1 >= size)
			return -1;
		out[o++] = ch;
	}
	out[o] = '\0';
	return 0;
}

void sn_url_escape(const char *s, int keep_slash, char *buf, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	if (size == 0)
		return;
	for (; *s && o + 4 <= size; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		    c == '_' || c == '.' || c == '~' || (c == '/' && keep_slash)) {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '%';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	buf[o] = '\0';
}

int sn_query_get(struct sn_str q, const char *key, char *out, size_t size)
{
	size_t kl = strlen(key);
	size_t i = 0;
	while (i < q.len) {
		const char *amp = memchr(q.p + i, '&', q.len - i);
		size_t end = amp ? (size_t)(amp - q.p) : q.len;
		struct sn_str part = sn_str_make(q.p + i, end - i);
		if (part.len >= kl && !memcmp(part.p, key, kl) && (part.len == kl || part.p[kl] == '=')) {
			struct sn_str v = part.len == kl ? SN_STR_LIT("") : sn_str_make(part.p + kl + 1, part.len - kl - 1);
			return sn_url_decode(v, out, size) == 0 ? 1 : -1;
		}
		i = end + 1;
	}
	return 0;
}
