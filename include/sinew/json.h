#ifndef SINEW_JSON_H
#define SINEW_JSON_H

/* Bounded JSON output: a writer over a caller-owned buffer that never
 * writes past its end, and a string escaper that never splits an escape
 * or a UTF-8 sequence, so a truncated value is still a valid JSON string.
 *
 * Strings are treated as UTF-8: valid sequences are copied as they are,
 * each byte that is not part of a valid sequence (stray continuation byte,
 * overlong form, surrogate, > U+10FFFF, cut-off sequence) becomes U+FFFD
 * (written as the three bytes EF BF BD). '"' and '\\' are escaped, control
 * characters below 0x20 become \b \f \n \r \t or \u00XX. Nothing else is
 * escaped. The one rule for every JSON the tree writes: the access log,
 * /config_dump, the admin and control APIs, the CLI's reports. */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sinew/common.h"

/* Appended inside a string value that was cut short. */
#define SN_JSON_TRUNCATED "...[truncated]"
#define SN_JSON_TRUNCATED_LEN (sizeof(SN_JSON_TRUNCATED) - 1)

struct sn_json_out {
	char *buf;    /* borrowed */
	size_t len;   /* bytes written so far */
	size_t cap;   /* never written past */
};

/* Starts writing at buf (borrowed, cap bytes). Nothing is NUL-terminated. */
void sn_json_out_init(struct sn_json_out *o, char *buf, size_t cap);

/* Appends n bytes verbatim (punctuation, keys known to need no escaping).
 * All or nothing: returns 0, or SN_ELIMIT and writes nothing. */
int sn_json_out_raw(struct sn_json_out *o, const char *s, size_t n);

/* Appends a decimal integer. All or nothing: 0 or SN_ELIMIT. */
int sn_json_out_u64(struct sn_json_out *o, uint64_t v);
int sn_json_out_i64(struct sn_json_out *o, int64_t v);

/* Appends v / 1000 with exactly three decimals ("12.345"), without going
 * through printf's locale-dependent decimal point. 0 or SN_ELIMIT. */
int sn_json_out_fixed3(struct sn_json_out *o, int64_t v);

/* Appends s (n bytes, may contain NULs) as a quoted, escaped JSON string
 * taking at most max bytes including the quotes. If it does not fit, as
 * much as fits is kept, followed by SN_JSON_TRUNCATED. Returns 0, 1 if
 * truncated, or SN_ELIMIT (nothing written) when not even the quotes and
 * the marker fit in min(max, space left). */
int sn_json_out_str(struct sn_json_out *o, const char *s, size_t n, size_t max);

/* Writes the escaped form of s (n bytes, no quotes) into dst, stopping
 * before the first escape or UTF-8 sequence that would not fit in cap.
 * Returns bytes written; *consumed (may be NULL) gets input bytes used. */
size_t sn_json_escape(char *dst, size_t cap, const char *s, size_t n, size_t *consumed);

/* s (n bytes) as a quoted JSON string on f, escaped as above. The cstr
 * form writes null for NULL. */
void sn_json_fput_str(FILE *f, const char *s, size_t n);
void sn_json_fput_cstr(FILE *f, const char *s);

/* Length of the valid UTF-8 sequence at p (1 to 4), or 0 if the byte at p
 * does not start one that is complete within n bytes. n must be > 0. */
size_t sn_utf8_seq_len(const unsigned char *p, size_t n);

/* Whether s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or
 * code points past U+10FFFF). */
int sn_utf8_valid(const char *s, size_t n);

#endif
