/* VirtualService header operations (http[].headers.request/response:
 * set, add, remove -- the rule's, then its destination's) and rewrite
 * (http[].rewrite.authority, .uri), outbound. The exchange applies them
 * when it writes the heads: set and remove replace a field of the same
 * name, add appends. */
#include "filter.h"

static enum sn_filter_verdict headers_request(struct sn_exchange *ex)
{
	const struct sn_http_route *r = sn_fx_route(ex);
	const struct sn_route_dest *d = sn_fx_destination(ex);

	if (r == NULL)
		return SN_FILTER_NEXT;
	sn_fx_header_ops(ex, &r->request_ops, &r->response_ops);
	if (d != NULL)
		sn_fx_header_ops(ex, &d->request_ops, &d->response_ops);
	sn_fx_rewrite(ex, r->rewrite_authority, r->rewrite_uri);
	return SN_FILTER_NEXT;
}

const struct sn_filter sn_filter_headers = {
	.name = "headers",
	.dirs = SN_FILTER_OUTBOUND,
	.request_head = headers_request,
};
