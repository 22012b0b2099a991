/* VirtualService corsPolicy, outbound, as a filter (Envoy's CORS filter,
 * as Istio configures it):
 * - a preflight (OPTIONS with Origin and Access-Control-Request-Method)
 *   from an allowed origin is answered by the proxy, 200 with the
 *   Access-Control-Allow-* fields, and never reaches the app; from another
 *   origin it goes to the app (unmatchedPreflights FORWARD, the default)
 *   or is answered without them (IGNORE);
 * - any other request from an allowed origin gets, on its response,
 *   Access-Control-Allow-Origin (the origin itself), Allow-Credentials and
 *   Expose-Headers as the policy says.
 * A request without Origin is not CORS and is left alone. */
#include <stdlib.h>
#include <string.h>

#include "filter.h"

/* The response fields for an actual (not preflight) request, per exchange:
 * the header ops point into it; freed by the done hook. */
struct cors_resp {
	struct sn_header_ops ops;
	struct sn_header_op set[3];
	char origin[512];
};

static const char *header(const struct sn_h1_request *rq, const char *name, struct sn_str *out)
{
	int i = sn_h1_find_header(rq->headers, rq->num_headers, sn_str_make(name, strlen(name)), 0);
	if (i < 0)
		return NULL;
	*out = rq->headers[i].value;
	return name;
}

static int origin_allowed(const struct sn_cors *p, struct sn_str origin)
{
	for (size_t i = 0; i < p->n_origins; i++)
		if (sn_str_match_test(&p->origins[i], origin))
			return 1;
	return 0;
}

static enum sn_filter_verdict cors_request(struct sn_exchange *ex)
{
	const struct sn_http_route *r = sn_fx_route(ex);
	const struct sn_h1_request *rq = sn_fx_request(ex);
	struct sn_str origin, acrm;

	if (r == NULL || r->cors == NULL || !header(rq, "origin", &origin) || origin.len == 0 || origin.len >= 512)
		return SN_FILTER_NEXT;
	const struct sn_cors *p = r->cors;
	int allowed = origin_allowed(p, origin);
	int preflight = sn_str_eq_cstr(rq->method, "OPTIONS") && header(rq, "access-control-request-method", &acrm);
	if (preflight) {
		if (!allowed && !p->ignore_unmatched)
			return SN_FILTER_NEXT;   /* FORWARD: the app decides */
		char o[512];
		memcpy(o, origin.p, origin.len);
		o[origin.len] = '\0';
		if (allowed) {
			sn_fx_answer_header(ex, "access-control-allow-origin", o);
			if (p->methods)
				sn_fx_answer_header(ex, "access-control-allow-methods", p->methods);
			if (p->headers)
				sn_fx_answer_header(ex, "access-control-allow-headers", p->headers);
			if (p->max_age)
				sn_fx_answer_header(ex, "access-control-max-age", p->max_age);
			if (p->credentials)
				sn_fx_answer_header(ex, "access-control-allow-credentials", "true");
			if (p->expose)
				sn_fx_answer_header(ex, "access-control-expose-headers", p->expose);
		}
		sn_fx_answer(ex, 200, "cors_preflight", "%s", "");
		return SN_FILTER_ANSWERED;
	}
	if (!allowed)
		return SN_FILTER_NEXT;
	struct cors_resp *cr = calloc(1, sizeof(*cr));
	if (cr == NULL)
		return SN_FILTER_NEXT;
	memcpy(cr->origin, origin.p, origin.len);
	cr->set[cr->ops.n_set++] = (struct sn_header_op){ "access-control-allow-origin", cr->origin };
	if (p->credentials)
		cr->set[cr->ops.n_set++] = (struct sn_header_op){ "access-control-allow-credentials", "true" };
	if (p->expose)
		cr->set[cr->ops.n_set++] = (struct sn_header_op){ "access-control-expose-headers", p->expose };
	cr->ops.set = cr->set;
	*sn_fx_state(ex) = (uint64_t)(uintptr_t)cr;
	sn_fx_header_ops(ex, NULL, &cr->ops);
	return SN_FILTER_NEXT;
}

static void cors_done(struct sn_exchange *ex, const struct sn_fx_summary *s)
{
	(void)s;
	free((void *)(uintptr_t)*sn_fx_state(ex));
	*sn_fx_state(ex) = 0;
}

const struct sn_filter sn_filter_cors = {
	.name = "cors",
	.dirs = SN_FILTER_OUTBOUND,
	.request_head = cors_request,
	.done = cors_done,
};
