/* Route selection: Istio's HTTPRoute semantics. Rules are tried in order
 * and the first whose match list holds wins; within one HTTPMatchRequest
 * every condition must hold, and any one of a rule's matches is enough. */
#include "proxy.h"

/* Does any occurrence of header name satisfy m? */
static int header_matches(const struct sn_route_request *r, const struct sn_kv_match *km)
{
	struct sn_str name = sn_str_make(km->name, strlen(km->name));
	for (size_t i = 0; i < r->n_headers; i++) {
		if (!sn_str_ieq(r->headers[i].name, name))
			continue;
		if (km->m.kind == SN_MATCH_PRESENT || sn_str_match_test(&km->m, r->headers[i].value))
			return 1;
	}
	/* Istio matches a few pseudo-headers by name too. */
	if (km->name[0] == ':' && strcmp(km->name, ":authority") == 0)
		return km->m.kind == SN_MATCH_PRESENT || sn_str_match_test(&km->m, r->authority);
	return 0;
}

static int query_matches(const struct sn_route_request *r, const struct sn_kv_match *km)
{
	size_t nlen = strlen(km->name);
	if (r->query.len == 0)
		return 0;
	const char *p = r->query.p;
	const char *end = r->query.p + r->query.len;

	while (p != NULL && p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *stop = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(stop - p));
		const char *kend = eq ? eq : stop;
		if ((size_t)(kend - p) == nlen && memcmp(p, km->name, nlen) == 0) {
			struct sn_str v = eq ? sn_str_make(eq + 1, (size_t)(stop - eq - 1)) : SN_STR_NULL;
			if (km->m.kind == SN_MATCH_PRESENT || sn_str_match_test(&km->m, v))
				return 1;
		}
		p = amp ? amp + 1 : NULL;
	}
	return 0;
}

static int match_holds(const struct sn_route_match *m, const struct sn_route_request *r)
{
	if (m->port != 0 && m->port != r->port)
		return 0;
	if (m->uri.kind != SN_MATCH_ANY && !sn_str_match_test(&m->uri, r->path))
		return 0;
	if (m->method.kind != SN_MATCH_ANY && !sn_str_match_test(&m->method, r->method))
		return 0;
	if (m->authority.kind != SN_MATCH_ANY && !sn_str_match_test(&m->authority, r->authority))
		return 0;
	if (m->scheme.kind != SN_MATCH_ANY &&
	    !sn_str_match_test(&m->scheme, r->scheme.len ? r->scheme : SN_STR_LIT("http")))
		return 0;
	for (size_t i = 0; i < m->n_headers; i++)
		if (!header_matches(r, &m->headers[i]))
			return 0;
	for (size_t i = 0; i < m->n_without_headers; i++)
		if (header_matches(r, &m->without_headers[i]))
			return 0;
	for (size_t i = 0; i < m->n_query_params; i++)
		if (!query_matches(r, &m->query_params[i]))
			return 0;
	return 1;
}

const struct sn_http_route *sn_router_match(const struct sn_vhost *vh, const struct sn_route_request *r,
					    const struct sn_route_match **hit)
{
	for (size_t i = 0; i < vh->n_routes; i++) {
		const struct sn_http_route *route = &vh->routes[i];
		if (route->n_matches == 0) {
			*hit = NULL;
			return route;
		}
		for (size_t j = 0; j < route->n_matches; j++)
			if (match_holds(&route->matches[j], r)) {
				*hit = &route->matches[j];
				return route;
			}
	}
	*hit = NULL;
	return NULL;
}

const struct sn_route_dest *sn_route_pick_weighted(const struct sn_route_dest *d, size_t n, uint32_t total,
						   uint64_t rnd)
{
	if (n == 0)
		return NULL;
	if (n == 1 || total == 0)
		return &d[0];
	uint64_t x = rnd % total;
	for (size_t i = 0; i < n; i++) {
		if (x < d[i].weight)
			return &d[i];
		x -= d[i].weight;
	}
	return &d[n - 1];
}

const struct sn_route_dest *sn_router_pick_dest(const struct sn_http_route *route, uint64_t rnd)
{
	return sn_route_pick_weighted(route->dests, route->n_dests, route->total_weight, rnd);
}
