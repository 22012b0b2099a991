#ifndef SINEW_QUERY_H
#define SINEW_QUERY_H

/* A URL's query string (src/core/query.c): the one reader of
 * "a=1&b=x%20y" for sinewd's API and the CLI. */

#include <stddef.h>

#include "sinew/common.h"

/* Percent-decodes s (%XX, and '+' as a space, as forms write it) into
 * out (size bytes, NUL-terminated). 0, or -1 when an escape is bad or
 * decodes to a NUL, or it does not fit. */
int sn_url_decode(struct sn_str s, char *out, size_t size);

/* s percent-encoded into buf (size bytes, NUL-terminated, cut before an
 * escape that would not fit): every byte outside RFC 3986's unreserved
 * set, and '/' unless keep_slash (a query value keeps it; a path segment
 * must not). */
void sn_url_escape(const char *s, int keep_slash, char *buf, size_t size);

/* Finds key in q (the query, without its '?') and decodes its value
 * (%XX and '+' as a space) into out (size bytes, NUL-terminated).
 * Returns 1 if found ("key" alone is found and empty), 0 if absent, -1
 * when its value is malformed (a bad or NUL escape) or does not fit. */
int sn_query_get(struct sn_str q, const char *key, char *out, size_t size);

#endif
