#ifndef SINEW_COMMON_H
#define SINEW_COMMON_H

/* Shared basics: error codes, small macros, string views. */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Functions return 0 on success or a negative SN_E* code. "Try again" is
 * distinct from failure (libuv's convention). */
#define SN_OK 0
#define SN_EAGAIN -11   /* would block; retry when ready */
#define SN_ENOMEM -12   /* allocation failed: fail this request, not the process */
#define SN_EINVAL -22   /* bad argument or malformed input */
#define SN_ELIMIT -7    /* a configured bound was hit */
#define SN_EIO -5       /* system call failed; errno holds why */
#define SN_ECLOSED -32  /* peer closed */
#define SN_ETIMEDOUT -110
#define SN_ENOTFOUND -2
#define SN_ECONFLICT -16 /* changed by someone else since it was read: read again, retry */

#define SN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SN_MAX(a, b) ((a) > (b) ? (a) : (b))
#define SN_LIKELY(x) __builtin_expect(!!(x), 1)
#define SN_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define sn_container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

/* A borrowed, not necessarily NUL-terminated, byte string. */
struct sn_str {
	const char *p;
	size_t len;
};

#define SN_STR_LIT(s) ((struct sn_str){ (s), sizeof(s) - 1 })
#define SN_STR_NULL ((struct sn_str){ NULL, 0 })

static inline struct sn_str sn_str_make(const char *p, size_t len)
{
	struct sn_str s = { p, len };
	return s;
}

static inline int sn_str_eq(struct sn_str a, struct sn_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static inline int sn_str_eq_cstr(struct sn_str a, const char *b)
{
	return sn_str_eq(a, sn_str_make(b, strlen(b)));
}

static inline int sn_tolower_ascii(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* A hex digit's value, either case; -1 for anything else. */
static inline int sn_hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = sn_tolower_ascii(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* An HTTP status filter: "503" (one code) or "5xx" (a class), 100 to 599,
 * into [*lo, *hi]; "" is any (0, 0). 0, or -1 for anything else. */
static inline int sn_status_range(const char *s, int *lo, int *hi)
{
	*lo = *hi = 0;
	if (s[0] == '\0')
		return 0;
	if (s[0] < '1' || s[0] > '5' || s[1] == '\0' || s[2] == '\0' || s[3] != '\0')
		return -1;
	if (sn_tolower_ascii(s[1]) == 'x' && sn_tolower_ascii(s[2]) == 'x') {
		*lo = (s[0] - '0') * 100;
		*hi = *lo + 99;
		return 0;
	}
	if (s[1] < '0' || s[1] > '9' || s[2] < '0' || s[2] > '9')
		return -1;
	*lo = *hi = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	return 0;
}

/* n bytes from the 2n hex digits at s, either case: 0, or -1 when one is
 * not a hex digit (out is then partly written). */
static inline int sn_hex_decode(const char *s, size_t n, uint8_t *out)
{
	for (size_t i = 0; i < n; i++) {
		int hi = sn_hex_value((unsigned char)s[2 * i]), lo = sn_hex_value((unsigned char)s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* Lower-cases s in place (ASCII; header and host names); NULL is none. */
static inline void sn_ascii_lower(char *s)
{
	for (; s != NULL && *s; s++)
		*s = (char)sn_tolower_ascii((unsigned char)*s);
}

/* ASCII case-insensitive equality (header names, host names). */
static inline int sn_str_ieq(struct sn_str a, struct sn_str b)
{
	if (a.len != b.len)
		return 0;
	for (size_t i = 0; i < a.len; i++)
		if (sn_tolower_ascii((unsigned char)a.p[i]) != sn_tolower_ascii((unsigned char)b.p[i]))
			return 0;
	return 1;
}

static inline int sn_str_ieq_cstr(struct sn_str a, const char *b)
{
	return sn_str_ieq(a, sn_str_make(b, strlen(b)));
}

#endif
