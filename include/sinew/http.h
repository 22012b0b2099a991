#ifndef SINEW_HTTP_H
#define SINEW_HTTP_H

/* The request/response model that codecs speak (DESIGN.md §9; the issue
 * "The request path, rebuilt on codecs"): a head -- pseudo-header values,
 * the regular fields in order, the framing the codec read -- then body
 * chunks and, at the end, trailers. HTTP/1 (sinew/h1.h) and HTTP/2
 * (sinew/h2.h) turn bytes into it and back. Views are borrowed from the
 * codec that made them, valid for the duration of the callback that
 * delivers them unless the codec's header says longer. */

#include <stddef.h>
#include <stdint.h>

#include "sinew/common.h"

/* One field. Names are lower-case when they come from HTTP/2 (the
 * protocol requires it); HTTP/1's keep their case, compare with
 * sn_str_ieq. */
struct sn_http_field {
	struct sn_str name;
	struct sn_str value;
};

struct sn_http_head {
	/* requests */
	struct sn_str method;
	struct sn_str scheme;       /* "http", "https"; empty from HTTP/1 origin-form */
	struct sn_str authority;    /* :authority, or Host */
	struct sn_str path;         /* origin-form path and query; "*" for OPTIONS * */
	struct sn_str protocol;     /* :protocol of an extended CONNECT (RFC 8441), else empty */
	/* responses */
	int status;
	/* both */
	const struct sn_http_field *fields;
	size_t n_fields;
	int64_t content_length;     /* -1: not given */
};

#endif
