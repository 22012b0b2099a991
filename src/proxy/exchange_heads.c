/* The heads an exchange writes (exchange_int.h): the upstream request
 * head, in HTTP/1.1 text re-sent unchanged on retries or as HTTP/2 fields,
 * with the rule's rewrite (rewrite.uri replaces the prefix a prefix match
 * matched, else the whole path; docs/decisions.md), hop-by-hop fields
 * dropped, Host set from the authority and the filters' header operations;
 * and the client's response head, HTTP/1.1 or an HTTP/2 stream's. Split
 * from exchange.c, which runs the exchange. */
#include <stdio.h>
#include <stdlib.h>
#include <regex.h>
#include <string.h>

#include "exchange_int.h"

static int header_listed(const struct sn_header_op *ops, size_t n, struct sn_str name)
{
	for (size_t i = 0; i < n; i++)
		if (sn_str_ieq_cstr(name, ops[i].name))
			return 1;
	return 0;
}

/* Whether one of the filters' header operations sets or removes name
 * (the original field is then not forwarded). */
static int header_overridden(const struct sn_header_ops *const *ops, unsigned n, struct sn_str name)
{
	for (unsigned i = 0; i < n; i++)
		if (header_listed(ops[i]->set, ops[i]->n_set, name) || header_listed(ops[i]->remove, ops[i]->n_remove, name))
			return 1;
	return 0;
}

/* Bytes "name: value\r\n" lines take, to size a head before writing it. */
static size_t headers_bytes(const struct sn_h1_header *h, size_t n)
{
	size_t b = 0;
	for (size_t i = 0; i < n; i++)
		b += h[i].name.len + h[i].value.len + 4;
	return b;
}

static size_t ops_bytes(const struct sn_header_ops *ops)
{
	size_t b = 0;
	if (ops == NULL)
		return 0;
	for (size_t i = 0; i < ops->n_set; i++)
		b += strlen(ops->set[i].name) + strlen(ops->set[i].value) + 4;
	for (size_t i = 0; i < ops->n_add; i++)
		b += strlen(ops->add[i].name) + strlen(ops->add[i].value) + 4;
	return b;
}

static void write_ops(struct sn_h1_writer *wr, const struct sn_header_ops *ops)
{
	if (ops == NULL)
		return;
	for (size_t i = 0; i < ops->n_set; i++)
		sn_h1w_header_cstr(wr, ops->set[i].name, ops->set[i].value);
	for (size_t i = 0; i < ops->n_add; i++)
		sn_h1w_header_cstr(wr, ops->add[i].name, ops->add[i].value);
}

/* Appends ops' set and add fields to f[n..]: the new count. */
static size_t ops_fields(const struct sn_header_ops *ops, struct sn_http_field *f, size_t n)
{
	if (ops == NULL)
		return n;
	for (size_t i = 0; i < ops->n_set; i++)
		f[n++] = (struct sn_http_field){ sn_str_make(ops->set[i].name, strlen(ops->set[i].name)),
						 sn_str_make(ops->set[i].value, strlen(ops->set[i].value)) };
	for (size_t i = 0; i < ops->n_add; i++)
		f[n++] = (struct sn_http_field){ sn_str_make(ops->add[i].name, strlen(ops->add[i].name)),
						 sn_str_make(ops->add[i].value, strlen(ops->add[i].value)) };
	return n;
}

static size_t ops_count(const struct sn_header_ops *ops)
{
	return ops != NULL ? ops->n_set + ops->n_add : 0;
}

/* Whether the trace context replaces this field (sn_fx_trace_send). */
static int trace_replaces(const struct sn_exchange *ex, struct sn_str name)
{
	/* traceparent, b3, x-b3-*: a look at the first byte spares the rest */
	char c = name.len ? (char)(name.p[0] | 0x20) : 0;
	if (ex->n_trace_fields == 0 || (c != 't' && c != 'x' && c != 'b'))
		return 0;
	for (unsigned i = 0; i < ex->n_trace_fields; i++)
		if (sn_str_ieq_cstr(name, ex->trace_fields[i].name))
			return 1;
	return 0;
}

/* Headers the proxy manages itself on either side. */
/* At a gateway (the mesh's edge, as Envoy with use_remote_address) the
 * client's x-forwarded-proto is replaced by the scheme it used. */
static int gateway_sets(const struct sn_exchange *ex, struct sn_str name)
{
	return ex->c->gw_port != 0 && sn_str_ieq_cstr(name, "x-forwarded-proto");
}

static struct sn_str forwarded_proto(const struct sn_exchange *ex)
{
	return ex->c->gw_tls ? SN_STR_LIT("https") : SN_STR_LIT("http");
}

static int is_managed(struct sn_str name)
{
	return sn_str_ieq_cstr(name, "connection") || sn_str_ieq_cstr(name, "keep-alive") ||
	       sn_str_ieq_cstr(name, "proxy-connection") || sn_str_ieq_cstr(name, "te") ||
	       sn_str_ieq_cstr(name, "trailer") || sn_str_ieq_cstr(name, "transfer-encoding") ||
	       sn_str_ieq_cstr(name, "upgrade") || sn_str_ieq_cstr(name, "expect") ||
	       sn_str_ieq_cstr(name, "host");
}


/* ---- building the upstream request head -------------------------------- */

/* The path a rewrite.uri makes, into out (at most cap bytes): as Istio
 * does, the uri replaces the prefix the rule matched on (the match that
 * held), or, after an exact, regex or no uri match, the whole path; the
 * Gateway API's ReplacePrefixMatch replaces whole segments (a PathPrefix
 * match: "/foo" -> "/xyz" makes /foo/bar /xyz/bar, and "/" makes it /bar)
 * and ReplaceFullPath (rewrite_full) the whole path. The query stays.
 * Returns the length, or -1 when it does not fit. */
/* rewrite.uriRegexRewrite: every non-overlapping match of the route's
 * pattern in the path (not the query) replaced by its substitution, \N
 * the match's group N, as Envoy's regex_rewrite. Returns the length, or
 * -1 when it does not fit. */
static int regex_rewritten_path(const struct sn_http_route *rt, struct sn_str path, char *out, size_t cap)
{
	const char *q = memchr(path.p, '?', path.len);
	size_t plen = q ? (size_t)(q - path.p) : path.len, o = 0, at = 0;
	regmatch_t m[10];
	char subject[4096];   /* the path NUL-terminated: regexec reads C strings */
#define PUT(src, n)                                     \
	do {                                            \
		if (o + (n) >= cap)                     \
			return -1;                      \
		memcpy(out + o, (src), (n));            \
		o += (n);                               \
	} while (0)
	if (plen >= sizeof(subject) || memchr(path.p, '\0', plen) != NULL)
		return -1;
	memcpy(subject, path.p, plen);
	subject[plen] = '\0';
	while (at <= plen) {
		if (regexec(rt->rewrite_re, subject + at, SN_ARRAY_LEN(m), m, at ? REG_NOTBOL : 0) != 0)
			break;
		size_t so = at + (size_t)m[0].rm_so, eo = at + (size_t)m[0].rm_eo;
		PUT(subject + at, so - at);
		for (const char *s = rt->rewrite_uri; *s; s++) {
			if (s[0] == '\\' && s[1] >= '0' && s[1] <= '9') {
				const regmatch_t *g = &m[rt->rewrite_groups[s[1] - '0']];
				if (g->rm_so >= 0)
					PUT(subject + at + g->rm_so, (size_t)(g->rm_eo - g->rm_so));
				s++;
			} else {
				if (s[0] == '\\' && s[1] == '\\')
					s++;
				PUT(s, 1);
			}
		}
		if (eo == so) {
			/* an empty match: the next byte goes through as it is */
			if (eo >= plen) {
				at = plen;
				break;
			}
			PUT(subject + eo, 1);
			at = eo + 1;
		} else {
			at = eo;
		}
	}
	if (at < path.len)
		PUT(path.p + at, path.len - at);   /* what no match took, and the query */
#undef PUT
	return (int)o;
}

static int rewritten_path(const struct sn_exchange *ex, struct sn_str path, char *out, size_t cap)
{
	if (ex->route != NULL && ex->route->rewrite_re != NULL)
		return regex_rewritten_path(ex->route, path, out, cap);
	const char *q = memchr(path.p, '?', path.len);
	size_t plen = q ? (size_t)(q - path.p) : path.len, cut = plen;
	const struct sn_route_match *m = ex->route_match;
	const char *rw = ex->rw_uri;
	size_t rwl = strlen(rw);
	int segments = 0;
	if (ex->route != NULL && ex->route->rewrite_full) {
		cut = plen;
	} else if (m != NULL && m->uri.value != NULL && m->uri.kind == SN_MATCH_PREFIX) {
		cut = SN_MIN(strlen(m->uri.value), plen);
	} else if (m != NULL && m->uri.value != NULL && m->uri.kind == SN_MATCH_PATH_PREFIX) {
		cut = SN_MIN(strlen(m->uri.value), plen);
		if (cut == 1)
			cut = 0;   /* "/" matched no segment: the whole path follows */
		while (rwl > 0 && rw[rwl - 1] == '/')
			rwl--;
		segments = 1;
	}
	size_t rest = path.len - cut;
	/* a segment rewrite to "" of "/foo": the path is "/" */
	int slash = segments && rwl == 0 && (rest == 0 || path.p[cut] != '/');
	if (rwl + (size_t)slash + rest >= cap)
		return -1;
	memcpy(out, rw, rwl);
	if (slash)
		out[rwl] = '/';
	memcpy(out + rwl + (size_t)slash, path.p + cut, rest);
	return (int)(rwl + (size_t)slash + rest);
}

int sn__ex_build_upstream_head(struct sn_exchange *ex)
{
	struct sn_worker *w = ex->w;
	const struct sn_h1_request *rq = &ex->req;
	size_t want = 256 + (rq->path.len + rq->authority.len) * 2;
	struct sn_h1_writer wr;
	struct sn_str path = rq->path;
	struct sn_str host = rq->authority;
	char pathbuf[4096];

	want += headers_bytes(rq->headers, rq->num_headers) + SN_TRACE_FIELDS_BYTES + 128;
	for (unsigned i = 0; i < ex->n_req_ops; i++)
		want += ops_bytes(ex->req_ops[i]);
	if (ex->rw_authority != NULL)
		host = sn_str_make(ex->rw_authority, strlen(ex->rw_authority));
	if (ex->rw_uri != NULL) {
		int n = rewritten_path(ex, rq->path, pathbuf, sizeof(pathbuf));
		if (n < 0)
			return SN_ELIMIT;
		path = sn_str_make(pathbuf, (size_t)n);
	}
	/* A separate buffer: growing the one that holds the request head would
	 * move the bytes the parsed views point at. */
	if (sn_buf_reserve(&w->pool, &ex->up, want, SN_MAX(want, sn__limits(w)->max_head_bytes * 3)) != 0)
		return SN_ENOMEM;
	sn_h1w_init(&wr, ex->up.base, ex->up.cap);
	/* A proxy sends its own version (RFC 9110 2.5), whatever the client's;
	 * a chunked answer to an HTTP/1.0 client loses its framing on the way
	 * back (pump_response). */
	sn_h1w_request_line(&wr, rq->method, path);
	sn_h1w_header(&wr, SN_STR_LIT("host"), host);
	for (size_t i = 0; i < rq->num_headers; i++) {
		struct sn_str name = rq->headers[i].name;
		if (is_managed(name) || sn_h1_is_hop_by_hop(name, rq->headers, rq->num_headers))
			continue;
		if (header_overridden(ex->req_ops, ex->n_req_ops, name) || trace_replaces(ex, name) ||
		    gateway_sets(ex, name))
			continue;
		/* HTTP/1.1 fields were checked as the head was parsed; an HTTP/2
		 * stream's by nghttp2's rules, which are not HTTP/1.1's */
		if (ex->s == NULL)
			sn_h1w_header_valid(&wr, name, rq->headers[i].value);
		else
			sn_h1w_header(&wr, name, rq->headers[i].value);
	}
	for (unsigned i = 0; i < ex->n_trace_fields; i++)   /* hex and dashes, made here */
		if (ex->trace_fields[i].value != NULL)
			sn_h1w_header_valid(&wr, sn_str_make(ex->trace_fields[i].name, strlen(ex->trace_fields[i].name)),
					    sn_str_make(ex->trace_fields[i].value, ex->trace_fields[i].len));
	if (rq->body == SN_H1_BODY_CHUNKED)
		sn_h1w_header_cstr(&wr, "transfer-encoding", "chunked");
	/* Upgrade (WebSocket and the like) is hop-by-hop, so it is forwarded
	 * on purpose: Istio allows upgrades by default, and dropping it would
	 * turn the client's handshake into a plain request the app answers
	 * 200. Not h2c: a cleartext HTTP/2 upgrade is between us and the
	 * client, and not a request with a body (its framing would be lost). */
	int up = rq->upgrade ? sn_h1_find_header(rq->headers, rq->num_headers, SN_STR_LIT("upgrade"), 0) : -1;
	ex->upgrade = up >= 0 && rq->body == SN_H1_BODY_NONE &&
		      !sn_str_ieq_cstr(rq->headers[up].value, "h2c");
	if (ex->upgrade) {
		sn_h1w_header_cstr(&wr, "connection", "upgrade");
		sn_h1w_header(&wr, SN_STR_LIT("upgrade"), rq->headers[up].value);
	}
	if (ex->rid.p == ex->request_id)
		sn_h1w_header(&wr, SN_STR_LIT("x-request-id"), ex->rid);
	if (ex->c->gw_port != 0)
		sn_h1w_header(&wr, SN_STR_LIT("x-forwarded-proto"), forwarded_proto(ex));
	for (unsigned i = 0; i < ex->n_req_ops; i++)
		write_ops(&wr, ex->req_ops[i]);
	sn_h1w_end(&wr);
	if (wr.overflow)
		return SN_ELIMIT;
	ex->up_len = wr.len;
	ex->up.end = wr.len;
	return 0;
}

/* The request head for an HTTP/2 endpoint: the same fields an HTTP/1.1
 * one gets, as a field list (the codec writes :authority from Host and
 * leaves connection-specific fields out). Kept for retries. */
int sn__ex_build_upstream_h2(struct sn_exchange *ex)
{
	struct sn_worker *w = ex->w;
	const struct sn_h1_request *rq = &ex->req;
	struct sn_str path = rq->path;
	struct sn_str host = rq->authority;
	size_t n = 0, nops = 0;

	if (ex->rw_authority != NULL)
		host = sn_str_make(ex->rw_authority, strlen(ex->rw_authority));
	if (ex->rw_uri != NULL) {
		char pathbuf[4096];
		int np = rewritten_path(ex, rq->path, pathbuf, sizeof(pathbuf));
		if (np < 0)
			return SN_ELIMIT;
		if (sn_buf_reserve(&w->pool, &ex->up, (size_t)np, SN_MAX((size_t)np, (size_t)SN_BUF_DEFAULT_SIZE)) != 0)
			return SN_ENOMEM;
		sn_buf_append(&ex->up, pathbuf, (size_t)np);
		path = sn_str_make(sn_buf_data(&ex->up), sn_buf_len(&ex->up));
	}
	for (unsigned i = 0; i < ex->n_req_ops; i++)
		nops += ops_count(ex->req_ops[i]);
	ex->up_fields = malloc((rq->num_headers + nops + 2 + ex->n_trace_fields) * sizeof(*ex->up_fields));
	if (ex->up_fields == NULL)
		return SN_ENOMEM;
	for (size_t i = 0; i < rq->num_headers; i++) {
		struct sn_str name = rq->headers[i].name;
		if (sn_str_ieq_cstr(name, "te") && sn_str_ieq_cstr(rq->headers[i].value, "trailers"))
			ex->up_te = 1;
		if (is_managed(name) || sn_h1_is_hop_by_hop(name, rq->headers, rq->num_headers) ||
		    header_overridden(ex->req_ops, ex->n_req_ops, name) || trace_replaces(ex, name) ||
		    gateway_sets(ex, name))
			continue;
		ex->up_fields[n++] = (struct sn_http_field){ name, rq->headers[i].value };
	}
	for (unsigned i = 0; i < ex->n_trace_fields; i++)
		if (ex->trace_fields[i].value != NULL)
			ex->up_fields[n++] = (struct sn_http_field){
				sn_str_make(ex->trace_fields[i].name, strlen(ex->trace_fields[i].name)),
				sn_str_make(ex->trace_fields[i].value, ex->trace_fields[i].len) };
	if (ex->rid.p == ex->request_id)
		ex->up_fields[n++] = (struct sn_http_field){ SN_STR_LIT("x-request-id"), ex->rid };
	if (ex->c->gw_port != 0)
		ex->up_fields[n++] = (struct sn_http_field){ SN_STR_LIT("x-forwarded-proto"), forwarded_proto(ex) };
	for (unsigned i = 0; i < ex->n_req_ops; i++)
		n = ops_fields(ex->req_ops[i], ex->up_fields, n);
	ex->up_head = (struct sn_http_head){ .method = rq->method, .scheme = SN_STR_LIT("http"), .authority = host,
					     .path = path, .fields = ex->up_fields, .n_fields = n,
					     .content_length = -1 };
	ex->up_len = 0;   /* the head goes with the stream, not as bytes */
	return 0;
}

/* The upstream's response head as an HTTP/2 stream's: the same fields an
 * HTTP/1.1 client gets (the codec drops the connection-specific ones),
 * chunked bodies unframed. */
static int stream_head(struct sn_exchange *ex)
{
	const struct sn_h1_response *rs = &ex->resp;
	size_t max = rs->num_headers + 1;   /* + a Set-Cookie of consistentHash */
	for (unsigned k = 0; k < ex->n_resp_ops; k++)
		max += ops_count(ex->resp_ops[k]);
	struct sn_http_field *f = malloc(max * sizeof(*f));
	size_t n = 0;

	if (f == NULL)
		return SN_ENOMEM;
	for (size_t i = 0; i < rs->num_headers; i++) {
		struct sn_str name = rs->headers[i].name;
		if (is_managed(name) || sn_h1_is_hop_by_hop(name, rs->headers, rs->num_headers) ||
		    header_overridden(ex->resp_ops, ex->n_resp_ops, name))
			continue;
		f[n++] = (struct sn_http_field){ name, rs->headers[i].value };
	}
	for (unsigned k = 0; k < ex->n_resp_ops; k++)
		n = ops_fields(ex->resp_ops[k], f, n);
	if (ex->set_cookie[0])
		f[n++] = (struct sn_http_field){ SN_STR_LIT("set-cookie"), sn_str_make(ex->set_cookie, strlen(ex->set_cookie)) };
	if (rs->body == SN_H1_BODY_CHUNKED)
		ex->resp_dechunk = 1;
	struct sn_http_head h = { .status = rs->status, .fields = f, .n_fields = n, .content_length = -1 };
	int r = sn__h2d_respond(ex->s, &h, rs->body == SN_H1_BODY_NONE);
	free(f);
	ex->resp_head_out = 0;
	return r == 0 ? 0 : SN_EIO;
}

/* Builds the client's response head from the upstream one into c->out. */
int sn__ex_build_downstream_head(struct sn_exchange *ex)
{
	struct sn_dconn *c = ex->c;
	struct sn_worker *w = ex->w;
	const struct sn_h1_response *rs = &ex->resp;
	size_t want = 256 + rs->reason.len + sizeof(ex->set_cookie);
	struct sn_h1_writer wr;
	int closing;

	if (ex->s != NULL)
		return stream_head(ex);
	want += headers_bytes(rs->headers, rs->num_headers);
	for (unsigned i = 0; i < ex->n_resp_ops; i++)
		want += ops_bytes(ex->resp_ops[i]);
	/* A close-delimited body can only end by closing; so does draining.
	 * A 101 is followed by the new protocol, never by a close. */
	closing = ex->resp_until_close || !ex->req.keep_alive || ex->close_after || w->draining || c->draining;
	if (ex->req.minor_version == 0 && rs->body == SN_H1_BODY_CHUNKED)
		closing = 1;
	if (rs->status == 101)
		closing = 0;
	if (closing)
		ex->close_after = 1;
	if (sn_buf_reserve(&w->pool, &c->out, want, SN_MAX(want, sn__limits(w)->max_head_bytes * 2)) != 0)
		return SN_ENOMEM;
	sn_h1w_init(&wr, c->out.base + c->out.end, sn_buf_room(&c->out));
	char reason[128];
	snprintf(reason, sizeof(reason), "%.*s", (int)SN_MIN(rs->reason.len, 100), rs->reason.p);
	sn_h1w_status_line(&wr, rs->status, reason[0] ? reason : NULL);
	for (size_t i = 0; i < rs->num_headers; i++) {
		struct sn_str name = rs->headers[i].name;
		if (is_managed(name) || sn_h1_is_hop_by_hop(name, rs->headers, rs->num_headers))
			continue;
		if (header_overridden(ex->resp_ops, ex->n_resp_ops, name))
			continue;
		if (ex->up_h2)   /* nghttp2's rules, not HTTP/1.1's: checked here */
			sn_h1w_header(&wr, name, rs->headers[i].value);
		else             /* checked as sn_h1_parse_response read it */
			sn_h1w_header_valid(&wr, name, rs->headers[i].value);
	}
	if (rs->body == SN_H1_BODY_CHUNKED && ex->req.minor_version == 0)
		ex->resp_dechunk = 1;   /* close-delimited for the 1.0 client */
	else if (rs->body == SN_H1_BODY_CHUNKED)
		sn_h1w_header_cstr(&wr, "transfer-encoding", "chunked");
	for (unsigned i = 0; i < ex->n_resp_ops; i++)
		write_ops(&wr, ex->resp_ops[i]);
	if (ex->set_cookie[0])
		sn_h1w_header_cstr(&wr, "set-cookie", ex->set_cookie);
	int up = rs->status == 101 ? sn_h1_find_header(rs->headers, rs->num_headers, SN_STR_LIT("upgrade"), 0) : -1;
	if (up >= 0) {
		sn_h1w_header_cstr(&wr, "connection", "upgrade");
		sn_h1w_header(&wr, SN_STR_LIT("upgrade"), rs->headers[up].value);
	} else if (closing) {
		sn_h1w_header_cstr(&wr, "connection", "close");
	} else if (ex->req.minor_version == 0) {
		sn_h1w_header_cstr(&wr, "connection", "keep-alive");
	}
	sn_h1w_end(&wr);
	if (wr.overflow)
		return SN_ELIMIT;
	ex->resp_head_out = sn_buf_len(&c->out) == 0 ? wr.len : 0;
	c->out.end += wr.len;
	return 0;
}
