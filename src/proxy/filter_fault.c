/* Fault injection (VirtualService http[].fault), outbound: a delay of
 * fixedDelay for `percentage` of requests, then an abort with httpStatus
 * (or grpcStatus: the gRPC status for a gRPC call, its HTTP equivalent for
 * other requests) for its own percentage -- both rolled when the request
 * is routed, the abort answered after the delay, as Envoy's fault filter
 * does. */
#include "filter.h"

#define ROLLED 1u          /* state: the dice were cast */
#define DELAYED 2u         /* state: the delay ran */

static int roll(struct sn_worker *w, double percent)
{
	if (percent >= 100.0)
		return 1;
	if (percent <= 0.0)
		return 0;
	return (double)(sn_worker_random(w) % 1000000) < percent * 10000.0;
}

static enum sn_filter_verdict fault_request(struct sn_exchange *ex)
{
	const struct sn_http_route *r = sn_fx_route(ex);
	uint64_t *st = sn_fx_state(ex);

	if (r == NULL || (!r->fault.abort_status && !r->fault.abort_grpc && !r->fault.delay_ms))
		return SN_FILTER_NEXT;
	if (!(*st & ROLLED)) {
		struct sn_worker *w = sn_fx_worker(ex);
		*st |= ROLLED;
		if ((r->fault.abort_status || r->fault.abort_grpc) && roll(w, r->fault.abort_percent))
			*st |= (uint64_t)r->fault.abort_status << 8 | (uint64_t)r->fault.abort_grpc << 24;
		if (r->fault.delay_ms && roll(w, r->fault.delay_percent)) {
			*st |= DELAYED;
			sn_fx_pause(ex, r->fault.delay_ms);
			return SN_FILTER_PAUSED;
		}
	}
	int grpc = (int)(*st >> 24 & 0xff);
	if (grpc) {
		sn_fx_answer_grpc(ex, grpc - 1, "fault_abort", "sinew: fault injected by route %s",
				  r->name ? r->name : "");
		return SN_FILTER_ANSWERED;
	}
	int status = (int)(*st >> 8 & 0xffff);
	if (status) {
		sn_fx_answer(ex, status, "fault_abort", "sinew: fault injected by route %s", r->name ? r->name : "");
		return SN_FILTER_ANSWERED;
	}
	return SN_FILTER_NEXT;
}

const struct sn_filter sn_filter_fault = {
	.name = "fault",
	.dirs = SN_FILTER_OUTBOUND,
	.request_head = fault_request,
};
