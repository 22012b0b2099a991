/* External authorization: what a CUSTOM AuthorizationPolicy's provider
 * (the mesh config's extensionProviders, envoyExtAuthzHttp or
 * envoyExtAuthzGrpc) says about a request, asked by the authz filter
 * (filter_authz.c) before its DENY and ALLOW policies are judged, as
 * Envoy's ext_authz filter does for Istio.
 *
 * envoyExtAuthzGrpc is Envoy's gRPC protocol: a CheckRequest (source and
 * destination peers, the request's id, method, every header, path, host,
 * scheme, size, protocol, and its body when includeRequestBodyInCheck
 * asks) to /envoy.service.auth.v3.Authorization/Check over HTTP/2 on a
 * connection of its own (oneshot.c; messages in ext_authz_grpc.c). A
 * CheckResponse whose status code is 0 allows, with ok_response's headers
 * set (appended when append is true) or removed on the request and
 * response_headers_to_add on the response; any other code denies with
 * denied_response's status (403 when none), headers and body. A call that
 * fails (no answer, HTTP status other than 200, grpc-status other than 0,
 * a message that is not a CheckResponse) is an error, as below.
 *
 * envoyExtAuthzHttp is Envoy's HTTP protocol: the request's method, pathPrefix +
 * path, Host, and only the fields includeRequestHeadersInCheck names (with
 * includeAdditionalHeadersInCheck added), its body when
 * includeRequestBodyInCheck asks, on a connection of its own to an
 * endpoint of the provider's service (oneshot.c: mutual TLS when the
 * authorizer has a sidecar). The answer:
 *   200          allowed: headersToUpstreamOnAllow go on the request,
 *                headersToDownstreamOnAllow on the response, and the
 *                request goes on to the DENY and ALLOW policies;
 *   5xx, none    an error: denied with statusOnError (default 403,
 *                sinew-error ext_authz_error), or allowed with failOpen;
 *   other        denied: its status, body and headersToDownstreamOnDeny
 *                (every field of the answer when none is named) relayed,
 *                sinew-error ext_authz_denied.
 * Nothing is cached: every request is asked (Istio's). A provider that is
 * not defined, or whose service is unknown, denies (403
 * ext_authz_unavailable; fail closed). Counted in sinew_ext_authz_total. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/log.h"
#include "ext_authz_grpc.h"
#include "filter.h"

#define XA_MAX_ANSWER (64u << 10)    /* the authorizer's answer, head and body */
#define XA_MAX_FIELDS 64
#define XA_MAX_OPS 16                /* header ops carried from an allowing answer */
#define XA_ST_BODY_WAITED 1ull       /* low bit of the state word */

enum xa_phase { XA_RUNNING = 0, XA_ANSWERED, XA_FAILED };

struct xa_call {
	struct sn_exchange *ex;
	const struct sn_ext_authz *p;
	const char *policy;
	struct sn_oneshot *os;
	enum xa_phase phase;
	enum sn_oneshot_end how;
	char *resp;                  /* the answer (oneshot's) */
	size_t resp_len;
	struct sn_h1_response head;
	struct sn_h1_header fields[XA_MAX_FIELDS];
	const char *body;
	size_t body_len;
	/* an allowing answer's header ops, alive as long as the exchange */
	struct sn_header_op up[XA_MAX_OPS], down[XA_MAX_OPS];
	struct sn_header_ops up_ops, down_ops;
	char *strs;                  /* NUL-terminated copies for the ops */
	/* gRPC: the call's answer, and the CheckResponse read from it */
	struct sn_oneshot_grpc_answer ga;
	struct sn_xa_answer *xa;
	struct sn_header_op g_set[SN_XA_MAX_HEADERS], g_add[SN_XA_MAX_HEADERS], g_rm[SN_XA_MAX_HEADERS];
	struct sn_header_op g_down[SN_XA_MAX_HEADERS];
};

static int patterns_hold(const struct sn_authz_str *pat, size_t n, struct sn_str name)
{
	for (size_t i = 0; i < n; i++)
		if (sn_authz_str_match(&pat[i], name, 1))
			return 1;
	return 0;
}

/* The check request: HTTP/1.1, Connection: close. NULL on ENOMEM. */
static char *build_check(struct sn_exchange *ex, const struct sn_ext_authz *p, const char *body, size_t body_len,
			 size_t *len_out)
{
	const struct sn_h1_request *rq = sn_fx_request(ex);
	size_t prefix = p->path_prefix ? strlen(p->path_prefix) : 0;
	size_t want = rq->method.len + prefix + rq->path.len + rq->authority.len + body_len + 256;
	for (size_t i = 0; i < rq->num_headers; i++)
		want += rq->headers[i].name.len + rq->headers[i].value.len + 4;
	for (size_t i = 0; i < p->n_additional; i++)
		want += strlen(p->additional[i].name) + strlen(p->additional[i].value) + 4;
	char *buf = malloc(want);
	char *target = malloc(prefix + rq->path.len + 1);
	if (buf == NULL || target == NULL) {
		free(buf);
		free(target);
		return NULL;
	}
	/* pathPrefix "/check" and path "/a?b": "/check/a?b" (Envoy's). */
	if (prefix > 1 && p->path_prefix[prefix - 1] == '/' && rq->path.len && rq->path.p[0] == '/')
		prefix--;
	memcpy(target, p->path_prefix ? p->path_prefix : "", prefix);
	memcpy(target + prefix, rq->path.p, rq->path.len);
	struct sn_h1_writer wr;
	sn_h1w_init(&wr, buf, want);
	sn_h1w_request_line(&wr, rq->method, sn_str_make(target, prefix + rq->path.len));
	sn_h1w_header(&wr, SN_STR_LIT("host"), rq->authority);
	for (size_t i = 0; i < rq->num_headers; i++) {
		struct sn_str name = rq->headers[i].name;
		if (sn_h1_is_hop_by_hop(name, rq->headers, rq->num_headers) || sn_str_ieq_cstr(name, "host") ||
		    sn_str_ieq_cstr(name, "content-length") || sn_str_ieq_cstr(name, "transfer-encoding") ||
		    !patterns_hold(p->include_headers, p->n_include_headers, name))
			continue;
		sn_h1w_header(&wr, name, rq->headers[i].value);
	}
	for (size_t i = 0; i < p->n_additional; i++)
		sn_h1w_header_cstr(&wr, p->additional[i].name, p->additional[i].value);
	sn_h1w_header_u64(&wr, "content-length", body_len);
	sn_h1w_header_cstr(&wr, "connection", "close");
	sn_h1w_end(&wr);
	sn_h1w_raw(&wr, body, body_len);
	free(target);
	if (wr.overflow) {
		free(buf);
		return NULL;
	}
	*len_out = wr.len;
	return buf;
}

static void xa_answered(void *user, enum sn_oneshot_end how, char *resp, size_t len)
{
	struct xa_call *xc = user;
	xc->os = NULL;
	xc->how = how;
	xc->resp = resp;
	xc->resp_len = len;
	xc->phase = how == SN_ONESHOT_ANSWERED ? XA_ANSWERED : XA_FAILED;
	if (xc->phase == XA_ANSWERED) {
		int hl = sn_h1_parse_response(resp, len, &xc->head, xc->fields, XA_MAX_FIELDS, NULL,
					      sn_fx_request(xc->ex)->method);
		if (hl < 0 || sn_h1_response_body(&xc->head, resp + hl, len - (size_t)hl, &xc->body_len) != 0)
			xc->phase = XA_FAILED;
		else
			xc->body = resp + hl;
	}
	if (xc->ex != NULL)
		sn_fx_resume(xc->ex);   /* the last thing: xc may be gone after */
}

static void xa_grpc_answered(void *user, enum sn_oneshot_end how, struct sn_oneshot_grpc_answer *a)
{
	struct xa_call *xc = user;
	xc->os = NULL;
	xc->how = how;
	xc->ga = *a;                 /* the body is ours now, freed with the call */
	xc->phase = how == SN_ONESHOT_ANSWERED ? XA_ANSWERED : XA_FAILED;
	if (xc->ex != NULL)
		sn_fx_resume(xc->ex);   /* the last thing: xc may be gone after */
}

/* "ip:port" or "[ip6]:port" into the peer's address and port. */
static void split_addr(const char *s, struct sn_xa_peer *peer)
{
	const char *colon = strrchr(s, ':');
	if (colon == NULL || s[0] == '\0' || !strcmp(s, "unix"))
		return;
	const char *a = s, *e = colon;
	if (a[0] == '[' && e > a && e[-1] == ']') {
		a++;
		e--;
	}
	peer->address = sn_str_make(a, (size_t)(e - a));
	peer->port = (uint32_t)strtoul(colon + 1, NULL, 10) & 0xffff;
}

/* The gRPC check: a framed CheckRequest (malloc'd, its length in
 * *len_out), or NULL out of memory. */
static char *build_grpc_check(struct sn_exchange *ex, const struct sn_ext_authz *p, const char *body, size_t body_len,
			      int with_body, size_t *len_out)
{
	const struct sn_h1_request *rq = sn_fx_request(ex);
	struct sn_http_field f[SN_MAX_HEADERS_ARRAY];
	struct sn_xa_check c = { 0 };
	char local[64];
	size_t n = 0;

	split_addr(sn_fx_peer(ex), &c.source);
	if (sn_fx_peer_id(ex) != NULL)
		c.source.principal = sn_str_make(sn_fx_peer_id(ex), strlen(sn_fx_peer_id(ex)));
	sn_fx_local(ex, local, sizeof(local));
	split_addr(local, &c.destination);
	if (sn_fx_app_port(ex))   /* captured: the port the client dialled, as Envoy's original destination */
		c.destination.port = sn_fx_app_port(ex);
	c.id = sn_fx_request_id(ex);
	c.method = rq->method;
	c.path = rq->path;
	c.host = rq->authority;
	c.scheme = SN_STR_LIT("http");
	c.protocol = sn_str_make(sn_fx_protocol(ex), strlen(sn_fx_protocol(ex)));
	/* Every field but Host (it is :authority in the map, as in Envoy's). */
	for (size_t i = 0; i < rq->num_headers && n < SN_ARRAY_LEN(f); i++) {
		if (sn_str_ieq_cstr(rq->headers[i].name, "host"))
			continue;
		f[n++] = (struct sn_http_field){ rq->headers[i].name, rq->headers[i].value };
	}
	c.headers = f;
	c.n_headers = n;
	c.size = rq->body == SN_H1_BODY_NONE ? 0 : rq->body == SN_H1_BODY_LENGTH ? (int64_t)rq->content_length : -1;
	if (with_body) {
		c.body = body != NULL ? body : "";
		c.body_len = body_len;
		c.pack_as_bytes = p->pack_as_bytes;
	}
	size_t cap = sn_xa_check_size(&c);
	uint8_t *buf = malloc(cap);
	if (buf == NULL)
		return NULL;
	*len_out = sn_xa_check_write(&c, buf, cap);
	if (*len_out == 0) {
		free(buf);
		return NULL;
	}
	return (char *)buf;
}

static struct xa_call *xa_of(uint64_t st)
{
	return (struct xa_call *)(uintptr_t)(st & ~7ull);
}

/* The answer's fields that patterns name, as set operations, each a
 * NUL-terminated copy in xc->strs. Returns how many. */
static size_t fields_to_ops(struct xa_call *xc, const struct sn_authz_str *pat, size_t n_pat, int all,
			    struct sn_header_op *ops, size_t max, char **cursor)
{
	size_t n = 0;
	for (size_t i = 0; i < xc->head.num_headers && n < max; i++) {
		const struct sn_h1_header *f = &xc->fields[i];
		if (!(all ? !sn_str_ieq_cstr(f->name, "content-length") && !sn_str_ieq_cstr(f->name, "content-type") &&
				     !sn_str_ieq_cstr(f->name, "connection") && !sn_str_ieq_cstr(f->name, "transfer-encoding") &&
				     !sn_str_ieq_cstr(f->name, "date") && !sn_str_ieq_cstr(f->name, "server") &&
				     !sn_str_ieq_cstr(f->name, "host") && !sn_str_ieq_cstr(f->name, "keep-alive")
			  : patterns_hold(pat, n_pat, f->name)))
			continue;
		char *name = *cursor;
		for (size_t k = 0; k < f->name.len; k++)
			name[k] = (char)sn_tolower_ascii((unsigned char)f->name.p[k]);
		name[f->name.len] = '\0';
		char *value = name + f->name.len + 1;
		memcpy(value, f->value.p, f->value.len);
		value[f->value.len] = '\0';
		*cursor = value + f->value.len + 1;
		ops[n].name = name;
		ops[n].value = value;
		n++;
	}
	return n;
}

static void count(struct sn_exchange *ex, enum sn_counter c)
{
	sn_metrics_add(sn_fx_worker(ex)->metrics, c, 1);
}

/* An error (no answer, a 5xx, a malformed one): statusOnError, or on with
 * failOpen. */
static enum sn_filter_verdict xa_error(struct sn_exchange *ex, const struct sn_ext_authz *p, const char *policy,
				       const char *what)
{
	sn_log(SN_LOG_INFO, "conn=%llu ext_authz: provider %s (%s:%u), policy %s: %s; %s",
	       (unsigned long long)sn_fx_conn_id(ex), p->name, p->service, p->port, policy, what,
	       p->fail_open ? "allowed (failOpen)" : "denied");
	if (p->fail_open) {
		count(ex, SN_CTR_EXT_AUTHZ_FAILED_OPEN);
		return SN_FILTER_NEXT;
	}
	count(ex, SN_CTR_EXT_AUTHZ_ERROR);
	sn_fx_answer(ex, p->status_on_error, "ext_authz_error",
		     "external authorization failed: provider %s (%s:%u) %s; policy %s denies (fail closed; "
		     "failOpen would allow)", p->name, p->service, p->port, what, policy);
	return SN_FILTER_ANSWERED;
}

enum sn_filter_verdict sn__extauthz_start(struct sn_exchange *ex, uint64_t *st, const char *provider,
					  const char *policy)
{
	struct sn_worker *w = sn_fx_worker(ex);
	const struct sn_snapshot *s = w->snap;
	const struct sn_ext_authz *p = sn_snapshot_find_ext_authz(s, provider);
	const char *body = NULL, *why = NULL;
	size_t body_len = 0, len;

	if (p == NULL || SN_EXT_IS_TRACER(p) || p->cluster >= s->n_clusters) {
		count(ex, SN_CTR_EXT_AUTHZ_ERROR);
		sn_fx_answer(ex, 403, "ext_authz_unavailable",
			     "external authorization: provider %s %s, so what policy %s selects is denied (fail closed)",
			     provider,
			     p == NULL ? "is not defined in the mesh config (ConfigMap istio-system/istio, "
					 "extensionProviders)"
				       : "names a service port Sinew does not know",
			     policy);
		return SN_FILTER_ANSWERED;
	}
	if (p->with_body) {
		int whole = sn_fx_wait_body(ex, p->max_body, p->timeout_ms);
		if (whole == 0 && !(*st & XA_ST_BODY_WAITED)) {
			*st |= XA_ST_BODY_WAITED;
			return SN_FILTER_PAUSED;
		}
		if (whole == 1)
			sn_fx_request_body(ex, &body, &body_len);
		if (whole == 1 && body_len > p->max_body && p->body_partial)
			body_len = p->max_body;   /* Envoy's: the first maxRequestBytes */
		else if ((whole != 1 || body_len > p->max_body) && !p->body_partial) {
			count(ex, SN_CTR_EXT_AUTHZ_ERROR);
			sn_fx_answer(ex, 413, "ext_authz_error",
				     "external authorization: the request body is not whole here within "
				     "maxRequestBytes (%u) of provider %s, and allowPartialMessage is off", p->max_body,
				     p->name);
			return SN_FILTER_ANSWERED;
		}
	}
	struct xa_call *xc = calloc(1, sizeof(*xc));
	int grpc = p->proto == SN_EXT_AUTHZ_GRPC;
	char *out = xc == NULL ? NULL
		    : grpc     ? build_grpc_check(ex, p, body, body_len, p->with_body, &len)
			       : build_check(ex, p, body, body_len, &len);
	if (out == NULL) {
		free(xc);
		return xa_error(ex, p, policy, "could not be asked (out of memory)");
	}
	xc->ex = ex;
	xc->p = p;
	xc->policy = policy;
	if (grpc) {
		/* :authority is the service's host, without the "NS/" prefix */
		const char *host = strchr(p->service, '/') ? strchr(p->service, '/') + 1 : p->service;
		xc->os = sn_oneshot_grpc_start(w, &s->clusters[p->cluster], host, SN_XA_GRPC_PATH, out, len,
					       XA_MAX_ANSWER, p->timeout_ms, xa_grpc_answered, xc, &why);
	} else {
		xc->os = sn_oneshot_start(w, &s->clusters[p->cluster], out, len, XA_MAX_ANSWER, p->timeout_ms,
					  xa_answered, xc, &why);
	}
	if (xc->os == NULL) {
		free(xc);
		char what[128];
		snprintf(what, sizeof(what), "could not be asked (%s)", why);
		return xa_error(ex, p, policy, what);
	}
	*st = (uint64_t)(uintptr_t)xc | (*st & 7);
	/* The call's own time limit ends it first; this is a backstop. */
	sn_fx_pause(ex, p->timeout_ms < UINT32_MAX - 1000 ? p->timeout_ms + 1000 : UINT32_MAX);
	return SN_FILTER_PAUSED;
}

/* A NUL-terminated copy of s at *cursor (lower case when lower). */
static char *copy_str(struct sn_str s, int lower, char **cursor)
{
	char *out = *cursor;
	for (size_t k = 0; k < s.len; k++)
		out[k] = lower ? (char)sn_tolower_ascii((unsigned char)s.p[k]) : s.p[k];
	out[s.len] = '\0';
	*cursor = out + s.len + 1;
	return out;
}

/* Fields an authorizer may not set on a message the proxy frames. */
static int framing_field(struct sn_str name)
{
	return sn_str_ieq_cstr(name, "content-length") || sn_str_ieq_cstr(name, "transfer-encoding") ||
	       sn_str_ieq_cstr(name, "connection") || sn_str_ieq_cstr(name, "keep-alive") ||
	       sn_str_ieq_cstr(name, "upgrade") || sn_str_ieq_cstr(name, "te") || sn_str_ieq_cstr(name, "host");
}

/* The gRPC call answered (HTTP and gRPC wise): its CheckResponse says. */
static enum sn_filter_verdict grpc_verdict(struct sn_exchange *ex, struct xa_call *xc)
{
	const struct sn_ext_authz *p = xc->p;
	const struct sn_oneshot_grpc_answer *ga = &xc->ga;
	const char *why;
	char what[160];

	if (ga->status != 200) {
		snprintf(what, sizeof(what), "answered HTTP %d, not a gRPC answer", ga->status);
		return xa_error(ex, p, xc->policy, what);
	}
	if (ga->grpc_status != 0) {
		if (ga->grpc_status < 0)
			snprintf(what, sizeof(what), "answered without a grpc-status");
		else
			snprintf(what, sizeof(what), "answered gRPC status %d", ga->grpc_status);
		return xa_error(ex, p, xc->policy, what);
	}
	xc->xa = malloc(sizeof(*xc->xa));
	/* Copies of every key and value at most (each fits in the body). */
	xc->strs = malloc(2 * ga->body_len + 2 * 4 * SN_XA_MAX_HEADERS + 256);
	if (xc->xa == NULL || xc->strs == NULL)
		return xa_error(ex, p, xc->policy, "answered, and Sinew ran out of memory");
	struct sn_xa_answer *a = xc->xa;
	if (sn_xa_answer_read(ga->body, ga->body_len, a, &why) != 0) {
		snprintf(what, sizeof(what), "answered with a malformed CheckResponse (%s)", why);
		return xa_error(ex, p, xc->policy, what);
	}
	char *cur = xc->strs;
	if (a->code == 0) {
		count(ex, SN_CTR_EXT_AUTHZ_ALLOWED);
		struct sn_header_ops *up = &xc->up_ops, *down = &xc->down_ops;
		up->set = xc->g_set;
		up->add = xc->g_add;
		up->remove = xc->g_rm;
		down->add = xc->g_down;
		for (size_t i = 0; i < a->n_headers; i++) {
			if (framing_field(a->headers[i].key))
				continue;
			struct sn_header_op *op = a->headers[i].append ? &up->add[up->n_add++] : &up->set[up->n_set++];
			op->name = copy_str(a->headers[i].key, 1, &cur);
			op->value = copy_str(a->headers[i].value, 0, &cur);
		}
		for (size_t i = 0; i < a->n_remove; i++) {
			if (framing_field(a->remove[i]))   /* Envoy's: Host may not be removed */
				continue;
			up->remove[up->n_remove].name = copy_str(a->remove[i], 1, &cur);
			up->remove[up->n_remove++].value = NULL;
		}
		for (size_t i = 0; i < a->n_response; i++) {
			if (framing_field(a->response[i].key))
				continue;
			down->add[down->n_add].name = copy_str(a->response[i].key, 1, &cur);
			down->add[down->n_add++].value = copy_str(a->response[i].value, 0, &cur);
		}
		if (sn_fx_header_ops(ex, up, down) != 0)
			sn_log(SN_LOG_WARN, "ext_authz: provider %s: header operations past the limit dropped", p->name);
		return SN_FILTER_NEXT;
	}
	count(ex, SN_CTR_EXT_AUTHZ_DENIED);
	const char *ctype = "text/plain; charset=utf-8";
	size_t sent = 0;
	for (size_t i = 0; i < a->n_headers; i++) {
		struct sn_str k = a->headers[i].key;
		if (sn_str_ieq_cstr(k, "content-type")) {
			ctype = copy_str(a->headers[i].value, 0, &cur);
			continue;
		}
		if (framing_field(k) || sn_str_ieq_cstr(k, "sinew-error") || sent == SN_FX_MAX_ANSWER_HEADERS)
			continue;
		const char *name = copy_str(k, 1, &cur);
		sn_fx_answer_header(ex, name, copy_str(a->headers[i].value, 0, &cur));
		sent++;
	}
	int status = a->denied_status >= 200 && a->denied_status <= 599 ? a->denied_status : 403;
	sn_log(SN_LOG_INFO, "conn=%llu ext_authz: provider %s denied (gRPC code %d, %d), policy %s",
	       (unsigned long long)sn_fx_conn_id(ex), p->name, (int)a->code, status, xc->policy);
	sn_fx_answer_body(ex, status, "ext_authz_denied", ctype, a->denied_body.p, a->denied_body.len);
	return SN_FILTER_ANSWERED;
}

enum sn_filter_verdict sn__extauthz_verdict(struct sn_exchange *ex, uint64_t *st)
{
	struct xa_call *xc = xa_of(*st);
	if (xc == NULL)
		return SN_FILTER_NEXT;
	const struct sn_ext_authz *p = xc->p;
	if (xc->phase == XA_RUNNING) {
		/* the backstop ran out before the call's own limit */
		sn_oneshot_cancel(xc->os);
		xc->os = NULL;
		xc->phase = XA_FAILED;
		xc->how = SN_ONESHOT_TIMEOUT;
	}
	if (xc->phase == XA_FAILED) {
		char what[96];
		snprintf(what, sizeof(what), "%s",
			 xc->how == SN_ONESHOT_TIMEOUT ? "did not answer within its timeout"
			 : xc->how == SN_ONESHOT_ANSWERED ? "answered with a malformed response"
			 : xc->ga.truncated ? "answered with more than 64 KiB"
					    : "could not be reached");
		return xa_error(ex, p, xc->policy, what);
	}
	if (p->proto == SN_EXT_AUTHZ_GRPC)
		return grpc_verdict(ex, xc);
	int status = xc->head.status;
	if (status >= 500) {
		char what[64];
		snprintf(what, sizeof(what), "answered %d", status);
		return xa_error(ex, p, xc->policy, what);
	}
	/* Copies of the fields that go on: room for all of them at most. */
	xc->strs = malloc(2 * xc->resp_len + 4 * XA_MAX_FIELDS + 256);
	if (xc->strs == NULL)
		return xa_error(ex, p, xc->policy, "answered, and Sinew ran out of memory");
	char *cur = xc->strs;
	if (status == 200) {
		count(ex, SN_CTR_EXT_AUTHZ_ALLOWED);
		xc->up_ops.set = xc->up;
		xc->up_ops.n_set = fields_to_ops(xc, p->to_upstream_on_allow, p->n_to_upstream_on_allow, 0, xc->up,
						 XA_MAX_OPS, &cur);
		xc->down_ops.add = xc->down;
		xc->down_ops.n_add = fields_to_ops(xc, p->to_downstream_on_allow, p->n_to_downstream_on_allow, 0,
						   xc->down, XA_MAX_OPS, &cur);
		if (sn_fx_header_ops(ex, &xc->up_ops, &xc->down_ops) != 0)
			sn_log(SN_LOG_WARN, "ext_authz: provider %s: header operations past the limit dropped", p->name);
		return SN_FILTER_NEXT;
	}
	count(ex, SN_CTR_EXT_AUTHZ_DENIED);
	size_t n = fields_to_ops(xc, p->to_downstream_on_deny, p->n_to_downstream_on_deny,
				 p->n_to_downstream_on_deny == 0, xc->down, SN_FX_MAX_ANSWER_HEADERS, &cur);
	for (size_t i = 0; i < n; i++)
		sn_fx_answer_header(ex, xc->down[i].name, xc->down[i].value);
	const char *ctype = "text/plain; charset=utf-8";
	int ct = sn_h1_find_header(xc->fields, xc->head.num_headers, SN_STR_LIT("content-type"), 0);
	if (ct >= 0 && xc->fields[ct].value.len < 200) {
		char *c = cur;
		memcpy(c, xc->fields[ct].value.p, xc->fields[ct].value.len);
		c[xc->fields[ct].value.len] = '\0';
		ctype = c;
	}
	sn_log(SN_LOG_INFO, "conn=%llu ext_authz: provider %s denied (%d), policy %s",
	       (unsigned long long)sn_fx_conn_id(ex), p->name, status, xc->policy);
	sn_fx_answer_body(ex, status >= 200 ? status : 403, "ext_authz_denied", ctype, xc->body, xc->body_len);
	return SN_FILTER_ANSWERED;
}

void sn__extauthz_done(uint64_t *st)
{
	struct xa_call *xc = xa_of(*st);
	if (xc == NULL)
		return;
	if (xc->os != NULL)
		sn_oneshot_cancel(xc->os);
	free(xc->resp);
	free(xc->strs);
	free(xc->ga.body);
	free(xc->xa);
	free(xc);
	*st = 0;
}
