/* VirtualService mirror / mirrors (traffic shadowing), outbound, as a
 * filter: a copy of each request a rule routes goes to the mirror
 * destinations (mirrorPercentage of them; mirrors[] each with its own
 * percentage), with "-shadow" appended to the authority's host, as Istio
 * does. Fire and forget: the copy has its own connection (Connection:
 * close, mutual TLS like any request to that endpoint), its answer is read
 * and dropped, and nothing of it reaches the client or holds the primary
 * request, which has gone on before the copy is even connected.
 *
 * What is copied: the request as the client sent it (method, path,
 * fields but the hop-by-hop ones) and its body: a Content-Length body of
 * at most MIRROR_MAX_BODY (and what the client connection's buffer holds)
 * is waited for, at most MIRROR_BODY_WAIT_MS, before the request goes on,
 * as Envoy buffers for shadowing; a chunked or larger body is not
 * mirrored (counted as skipped). Copies go in HTTP/1.1 (oneshot.c): a
 * mirror whose port speaks HTTP/2 gets none (skipped). Each ends within
 * the rule's timeout, or MIRROR_TIMEOUT_MS without one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/log.h"
#include "filter.h"

#define MIRROR_MAX_BODY (64u << 10)
#define MIRROR_BODY_WAIT_MS 1000
#define MIRROR_TIMEOUT_MS 10000

static void copy_answered(void *user, enum sn_oneshot_end how, char *resp, size_t len)
{
	struct sn_worker *w = user;
	/* Only that an answer came (its status line) counts; it is dropped. */
	int ok = how == SN_ONESHOT_ANSWERED && len >= 12 && !memcmp(resp, "HTTP/1.", 7);
	sn_metrics_add(w->metrics, ok ? SN_CTR_MIRROR_ANSWERED : SN_CTR_MIRROR_FAILED, 1);
	free(resp);
}

/* The authority with "-shadow" after its host (Envoy's rule). */
static size_t shadow_authority(struct sn_str a, char *out, size_t size)
{
	const char *colon = a.len && a.p[0] != '[' ? memchr(a.p, ':', a.len) : NULL;
	size_t hl = colon ? (size_t)(colon - a.p) : a.len;
	int n = snprintf(out, size, "%.*s-shadow%.*s", (int)hl, a.p, (int)(a.len - hl), a.p + hl);
	return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/* Builds the copy's bytes: HTTP/1.1 head and body. NULL if it can't. */
static char *build_copy(struct sn_exchange *ex, const char *body, size_t body_len, size_t *len_out)
{
	const struct sn_h1_request *rq = sn_fx_request(ex);
	char auth[300];
	struct sn_str rid = sn_fx_request_id(ex);
	size_t want = rq->method.len + rq->path.len + sizeof(auth) + rid.len + body_len + 256;
	for (size_t i = 0; i < rq->num_headers; i++)
		want += rq->headers[i].name.len + rq->headers[i].value.len + 4;
	size_t al = shadow_authority(rq->authority, auth, sizeof(auth));
	char *buf = malloc(want);
	if (buf == NULL || al == 0) {
		free(buf);
		return NULL;
	}
	struct sn_h1_writer wr;
	sn_h1w_init(&wr, buf, want);
	sn_h1w_request_line(&wr, rq->method, rq->path);
	sn_h1w_header(&wr, SN_STR_LIT("host"), sn_str_make(auth, al));
	for (size_t i = 0; i < rq->num_headers; i++) {
		struct sn_str name = rq->headers[i].name;
		if (sn_h1_is_hop_by_hop(name, rq->headers, rq->num_headers) || sn_str_ieq_cstr(name, "host") ||
		    sn_str_ieq_cstr(name, "content-length") || sn_str_ieq_cstr(name, "transfer-encoding") ||
		    sn_str_ieq_cstr(name, "x-request-id"))
			continue;
		sn_h1w_header(&wr, name, rq->headers[i].value);
	}
	if (rid.len)
		sn_h1w_header(&wr, SN_STR_LIT("x-request-id"), rid);
	if (body_len || rq->body == SN_H1_BODY_LENGTH)
		sn_h1w_header_u64(&wr, "content-length", body_len);
	sn_h1w_header_cstr(&wr, "connection", "close");
	sn_h1w_end(&wr);
	sn_h1w_raw(&wr, body, body_len);
	if (wr.overflow) {
		free(buf);
		return NULL;
	}
	*len_out = wr.len;
	return buf;
}

static void send_copy(struct sn_exchange *ex, const struct sn_cluster *cl, const char *body, size_t body_len)
{
	struct sn_worker *w = sn_fx_worker(ex);
	const char *why;
	size_t len;

	if (cl->n_endpoints == 0 || cl->http2) {
		sn_metrics_add(w->metrics, SN_CTR_MIRROR_SKIPPED, 1);
		return;
	}
	char *out = build_copy(ex, body, body_len, &len);
	if (out == NULL) {
		sn_metrics_add(w->metrics, SN_CTR_MIRROR_FAILED, 1);
		return;
	}
	const struct sn_http_route *r = sn_fx_route(ex);
	if (sn_oneshot_start(w, cl, out, len, 16, r && r->timeout_ms ? r->timeout_ms : MIRROR_TIMEOUT_MS,
			     copy_answered, w, &why) == NULL) {
		sn_log(SN_LOG_DEBUG, "mirror to %s not sent: %s", cl->name, why);
		sn_metrics_add(w->metrics, SN_CTR_MIRROR_SKIPPED, 1);
		return;
	}
	sn_metrics_add(w->metrics, SN_CTR_MIRROR_SENT, 1);
}

/* The filter's state word: which mirrors this request goes to (bit i for
 * mirrors[i], chosen once), and whether that was decided and whether it
 * waited for the body already. */
#define ST_DECIDED (1ull << 62)
#define ST_WAITED (1ull << 63)

static enum sn_filter_verdict mirror_request(struct sn_exchange *ex)
{
	const struct sn_http_route *r = sn_fx_route(ex);
	const struct sn_snapshot *s = sn_fx_snapshot(ex);
	struct sn_worker *w = sn_fx_worker(ex);
	uint64_t *st = sn_fx_state(ex);
	const char *body;
	size_t body_len;

	if (r == NULL || r->n_mirrors == 0 || s == NULL)
		return SN_FILTER_NEXT;
	if (!(*st & ST_DECIDED)) {
		*st |= ST_DECIDED;
		for (size_t i = 0; i < r->n_mirrors && i < 32; i++)
			if (r->mirrors[i].cluster < s->n_clusters &&
			    (double)(sn_worker_random(w) % 1000000) / 10000.0 < r->mirrors[i].percent)
				*st |= 1ull << i;
	}
	if ((*st & 0xffffffffu) == 0)
		return SN_FILTER_NEXT;
	/* The copy carries the body: wait for all of it, as Envoy buffers
	 * for shadowing, but once only and not for long. */
	int whole = sn_fx_wait_body(ex, MIRROR_MAX_BODY, MIRROR_BODY_WAIT_MS);
	if (whole == 0 && !(*st & ST_WAITED)) {
		*st |= ST_WAITED;
		return SN_FILTER_PAUSED;
	}
	if (whole != 1 || !sn_fx_request_body(ex, &body, &body_len)) {
		for (size_t i = 0; i < 32; i++)
			if (*st & (1ull << i))
				sn_metrics_add(w->metrics, SN_CTR_MIRROR_SKIPPED, 1);
		*st &= ~0xffffffffull;
		return SN_FILTER_NEXT;
	}
	for (size_t i = 0; i < r->n_mirrors && i < 32; i++)
		if (*st & (1ull << i))
			send_copy(ex, &s->clusters[r->mirrors[i].cluster], body, body_len);
	*st &= ~0xffffffffull;
	return SN_FILTER_NEXT;
}

const struct sn_filter sn_filter_mirror = {
	.name = "mirror",
	.dirs = SN_FILTER_OUTBOUND,
	.request_head = mirror_request,
};
