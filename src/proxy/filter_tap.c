/* Tap, as a filter (tap.h): when sinewd has asked for taps, a request that
 * may match one keeps a capture -- its response's fields and, for a tap
 * with bodies, the first SN_TAP_MAX_BODY bytes each way -- and when the
 * exchange is done, every tap it matches gets an event. Both directions,
 * second in the chain (after tracing, for the trace id): a request a later
 * filter answers (denied, aborted, rate limited) is still seen. With no tap
 * in force, each hook is one relaxed atomic load. */
#include <string.h>

#include "filter.h"
#include "tap.h"

static enum sn_filter_verdict tap_request_head(struct sn_exchange *ex)
{
	struct sn_proxy *p = sn_fx_worker(ex)->proxy;
	const char *body;
	size_t n;
	int bodies;

	if (!sn_tap_active(p->taps))
		return SN_FILTER_NEXT;
	const struct sn_h1_request *req = sn_fx_request(ex);
	unsigned dir = sn_fx_direction(ex) == SN_DIR_OUTBOUND ? SN_FILTER_OUTBOUND : SN_FILTER_INBOUND;
	if (!sn__tap_prematch(p, dir, req, &bodies))
		return SN_FILTER_NEXT;
	struct sn_tap_capture *cap = sn_fx_tap_capture(ex);
	if (cap == NULL || !bodies)
		return SN_FILTER_NEXT;
	cap->bodies = 1;
	if (sn_fx_request_body(ex, &body, &n)) {
		/* here with the head; else taken as it streams (exchange.c) */
		sn__tap_capture_body(cap, 0, body, n);
		cap->req_body_whole = 1;
	}
	return SN_FILTER_NEXT;
}

static void tap_done(struct sn_exchange *ex, const struct sn_fx_summary *s)
{
	struct sn_proxy *p = sn_fx_worker(ex)->proxy;

	if (sn_tap_active(p->taps))
		sn__tap_record(ex, s, sn_fx_tap_captured(ex));
}

const struct sn_filter sn_filter_tap = {
	.name = "tap",
	.dirs = SN_FILTER_OUTBOUND | SN_FILTER_INBOUND,
	.request_head = tap_request_head,
	.done = tap_done,
};
