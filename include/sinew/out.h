#ifndef SINEW_OUT_H
#define SINEW_OUT_H

/* The tree's growable string builder (src/core/out.c): sinewd's API
 * responses, the CLI's output, the proxy's control messages. JSON strings
 * go through the one escaping rule (sinew/json.h). */

#include <stddef.h>

/* Growable output used for JSON responses. All-or-nothing appends;
 * after a failed allocation `failed` is set and further appends do
 * nothing. */
struct sn_out {
	char *p;
	size_t len;
	size_t cap;
	int failed;
};

void sn_out_raw(struct sn_out *o, const char *s, size_t n);
void sn_out_cstr(struct sn_out *o, const char *s);
void sn_out_printf(struct sn_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s (n bytes) as a quoted JSON string; invalid UTF-8 becomes U+FFFD. */
void sn_out_json_str(struct sn_out *o, const char *s, size_t n);
void sn_out_json_cstr(struct sn_out *o, const char *s);   /* NULL -> null */
void sn_out_free(struct sn_out *o);
/* Room for n more bytes at the end, for a bounded writer to fill: a
 * pointer to it, or NULL (failed set) when it cannot grow. Then
 * sn_out_commit(o, k) appends the k bytes written there (k <= n). */
char *sn_out_reserve(struct sn_out *o, size_t n);
void sn_out_commit(struct sn_out *o, size_t k);

#endif
