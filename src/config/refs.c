/* What a loaded resource names, for sinewd's push (src/control/push.c):
 * which proxies need it follows from the hosts it configures and the hosts
 * it sends traffic to. The typed bodies stay private to the config library;
 * this is the one place that reads them for that question. */
#include <stdio.h>
#include <string.h>

#include "config_internal.h"

static void route_refs(const struct sn_resource *r, const struct cfg_vs *vs, sn_ref_fn fn, void *user)
{
	/* bound to gateways only: no host for sidecars, but its
	 * destinations for the gateway proxies */
	for (size_t k = 0; vs->for_mesh && k < vs->n_hosts; k++)
		fn(user, SN_REF_HOST, vs->hosts[k], r->namespace_);
	/* an HTTPRoute's hosts for sidecars: the Services it is attached to */
	for (size_t k = 0; vs->gateway_api && k < vs->n_parents; k++)
		if (vs->parents[k].service)
			fn(user, SN_REF_HOST, vs->parents[k].name, vs->parents[k].ns ? vs->parents[k].ns : r->namespace_);
	/* destinations and mirrors */
	for (size_t h = 0; h < vs->n_http; h++) {
		const struct cfg_http *ht = &vs->http[h];
		for (size_t d = 0; d < ht->n_dests + ht->n_mirrors; d++) {
			const struct cfg_dest *cd = d < ht->n_dests ? &ht->dests[d] : &ht->mirrors[d - ht->n_dests];
			if (cd->host != NULL)
				fn(user, SN_REF_DEST, cd->host, cd->ref_ns ? cd->ref_ns : r->namespace_);
		}
	}
	/* and tls[] (a gateway's passthrough) and tcp[] routes */
	for (size_t h = 0; h < vs->n_tls + vs->n_tcp; h++) {
		const struct cfg_tls_route *tr = h < vs->n_tls ? &vs->tls[h] : &vs->tcp[h - vs->n_tls];
		for (size_t d = 0; d < tr->n_dests; d++)
			if (tr->dests[d].host != NULL)
				fn(user, SN_REF_DEST, tr->dests[d].host,
				   tr->dests[d].ref_ns ? tr->dests[d].ref_ns : r->namespace_);
	}
}

void sn_resource_refs(const struct sn_resource *r, sn_ref_fn fn, void *user)
{
	if (r == NULL || r->spec == NULL)
		return;
	if (r->kind == SN_KIND_VIRTUAL_SERVICE || sn_kind_is_gwapi_route(r->kind)) {
		route_refs(r, r->spec, fn, user);
	} else if (r->kind == SN_KIND_DESTINATION_RULE) {
		const struct cfg_dr *dr = r->spec;
		if (dr->host != NULL)
			fn(user, SN_REF_HOST, dr->host, r->namespace_);
	} else if (r->kind == SN_KIND_SERVICE_ENTRY) {
		const struct cfg_service_entry *se = r->spec;
		for (size_t k = 0; k < se->n_hosts; k++)
			fn(user, SN_REF_ENTRY_HOST, se->hosts[k], r->namespace_);
	} else if (r->kind == SN_KIND_CONFIG_MAP) {
		/* the mesh config brings its authorizers' services ("ns/name"
		 * or a name in the mesh config's namespace) */
		const struct cfg_mesh *m = r->spec;
		for (size_t k = 0; k < m->n_providers; k++) {
			const char *svc = m->providers[k].service, *slash = strchr(svc, '/');
			char ns[256];
			snprintf(ns, sizeof(ns), "%.*s", slash ? (int)(slash - svc) : (int)strlen(r->namespace_),
				 slash ? svc : r->namespace_);
			fn(user, SN_REF_DEST, slash ? slash + 1 : svc, ns);
		}
	}
}

int sn_resource_for_gateways(const struct sn_resource *r)
{
	if (r == NULL || r->spec == NULL)
		return 0;
	if (r->kind == SN_KIND_VIRTUAL_SERVICE) {
		const struct cfg_vs *vs = r->spec;
		for (size_t k = 0; k < vs->n_gateways; k++)
			if (strcmp(vs->gateways[k], "mesh") != 0)
				return 1;
	} else if (sn_kind_is_gwapi_route(r->kind)) {
		const struct cfg_vs *vs = r->spec;
		for (size_t k = 0; k < vs->n_parents; k++)
			if (!vs->parents[k].service)
				return 1;
	}
	return 0;
}

int sn_service_entry_has_addresses(const struct sn_resource *r)
{
	return r != NULL && r->spec != NULL && r->kind == SN_KIND_SERVICE_ENTRY &&
	       ((const struct cfg_service_entry *)r->spec)->n_addresses > 0;
}
