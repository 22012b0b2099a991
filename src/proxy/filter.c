/* The filter chain's order (filter.h). Tracing first: a request any
 * filter answers is still a span of its trace. Tap next: a request any
 * filter answers is still seen, with its trace id. RequestAuthentication (an
 * invalid token is 401 before anything; a valid one is what
 * AuthorizationPolicy's requestPrincipals see), then authorization: a
 * request a policy denies is never delayed or aborted by a fault. Linkerd's
 * Server and rate limit after it: a denied request takes no token. CORS
 * before faults: a preflight is the proxy's to answer. Header operations
 * after the fault (an aborted request goes nowhere), and so the mirror (an
 * aborted request is not copied). Telemetry last: its done hook sees what
 * the others decided. */
#include "filter.h"

const struct sn_filter *const sn_filter_chain[] = {
	&sn_filter_trace,
	&sn_filter_tap,
	&sn_filter_jwt,
	&sn_filter_authz,
	&sn_filter_ratelimit,
	&sn_filter_cors,
	&sn_filter_fault,
	&sn_filter_headers,
	&sn_filter_mirror,
	&sn_filter_telemetry,
	NULL,
};

/* Each filter has its own state word (sn_fx_state). */
_Static_assert(SN_ARRAY_LEN(sn_filter_chain) - 1 <= SN_FILTER_MAX, "SN_FILTER_MAX is below the chain's length");
