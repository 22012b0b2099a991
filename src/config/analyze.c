/* Analysis, istioctl-analyze style: stable codes for problems that are
 * legal one resource at a time but wrong together (a route to a host or
 * subset nobody defines, a rule hidden behind a catch-all, two
 * VirtualServices for one host, a subset with no endpoints...). The codes
 * are documented in docs/api.md and never reused for something else.
 *
 * It reads the config library's typed resource bodies: analysis is about
 * the same model the proxy runs, not a second parser. sinewd's store and
 * registry are put into a set by src/control/analyze.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_internal.h"

struct code {
	const char *code;
	const char *type;
	enum sn_analysis_level level;
};

static const struct code C_INVALID = { "SN0001", "InvalidConfig", SN_ANALYSIS_ERROR };
static const struct code C_NOT_IMPL = { "SN0002", "NotImplemented", SN_ANALYSIS_INFO };
static const struct code C_UNKNOWN_FIELD = { "SN0003", "UnknownField", SN_ANALYSIS_WARNING };
static const struct code C_HOST_NOT_FOUND = { "SN0101", "ReferencedResourceNotFound", SN_ANALYSIS_ERROR };
static const struct code C_SUBSET_NOT_FOUND = { "SN0102", "ReferencedSubsetNotFound", SN_ANALYSIS_ERROR };
static const struct code C_UNREACHABLE = { "SN0103", "VirtualServiceUnreachableRule", SN_ANALYSIS_WARNING };
static const struct code C_CONFLICT_VS = { "SN0104", "ConflictingVirtualServiceHosts", SN_ANALYSIS_ERROR };
static const struct code C_WEIGHTS = { "SN0105", "RouteWeightsInvalid", SN_ANALYSIS_ERROR };
static const struct code C_SUBSET_EMPTY = { "SN0106", "DestinationRuleSubsetNoEndpoints", SN_ANALYSIS_WARNING };
static const struct code C_SVC_EMPTY = { "SN0107", "ServiceSelectsNoWorkloads", SN_ANALYSIS_WARNING };
static const struct code C_DR_HOST = { "SN0108", "DestinationRuleHostNotFound", SN_ANALYSIS_WARNING };
static const struct code C_DR_DUP = { "SN0109", "MultipleDestinationRulesForHost", SN_ANALYSIS_WARNING };
static const struct code C_UNENFORCEABLE = { "SN0110", "SecurityPolicyUnenforceable", SN_ANALYSIS_ERROR };
static const struct code C_RL_TARGET = { "SN0111", "RateLimitServerNotFound", SN_ANALYSIS_WARNING };
static const struct code C_GATEWAY = { "SN0112", "GatewayNotFound", SN_ANALYSIS_ERROR };
static const struct code C_REF_GRANT = { "SN0113", "ReferenceNotPermitted", SN_ANALYSIS_ERROR };
static const struct code C_ROUTE_KIND = { "SN0114", "RouteKindNotAllowed", SN_ANALYSIS_WARNING };

const char *sn_analysis_level_str(enum sn_analysis_level l)
{
	switch (l) {
	case SN_ANALYSIS_ERROR:
		return "Error";
	case SN_ANALYSIS_WARNING:
		return "Warning";
	case SN_ANALYSIS_INFO:
		return "Info";
	}
	return "Unknown";
}

void sn_analysis_free(struct sn_analysis *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->v[i].resource);
		free(a->v[i].file);
		free(a->v[i].field);
		free(a->v[i].message);
	}
	free(a->v);
	memset(a, 0, sizeof(*a));
}

struct an {
	struct sn_analysis *out;
	const struct sn_config_set *set;
	struct sn_arena tmp;
	int oom;
};

static void emit(struct an *an, const struct code *c, const struct sn_resource *r, const char *resource_text,
		 const char *file, int line, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 8, 9)));

static void emit(struct an *an, const struct code *c, const struct sn_resource *r, const char *resource_text,
		 const char *file, int line, const char *field, const char *fmt, ...)
{
	struct sn_analysis *a = an->out;
	char msg[1200], res[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r != NULL)
		snprintf(res, sizeof(res), "%s %s/%s", sn_resource_kind_str(r->kind), r->namespace_, r->name);
	else
		snprintf(res, sizeof(res), "%s", resource_text ? resource_text : "");
	for (size_t i = 0; i < a->n; i++) /* once per identical finding */
		if (a->v[i].code == c->code && !strcmp(a->v[i].message, msg) && a->v[i].line == line)
			return;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		struct sn_analysis_msg *v = realloc(a->v, cap * sizeof(*v));
		if (v == NULL) {
			an->oom = 1;
			return;
		}
		a->v = v;
		a->cap = cap;
	}
	struct sn_analysis_msg *m = &a->v[a->n];
	memset(m, 0, sizeof(*m));
	m->code = c->code;
	m->type = c->type;
	m->level = c->level;
	m->resource = res[0] ? strdup(res) : NULL;
	m->file = file ? strdup(file) : NULL;
	m->line = line;
	m->field = field ? strdup(field) : NULL;
	m->message = strdup(msg);
	if (m->message == NULL) {
		an->oom = 1;
		free(m->resource);
		free(m->file);
		free(m->field);
		return;
	}
	a->n++;
	if (c->level == SN_ANALYSIS_ERROR)
		a->errors++;
	else if (c->level == SN_ANALYSIS_WARNING)
		a->warnings++;
	else
		a->infos++;
}

/* ---- the model, as the proxy resolves it ---------------------------- */

static const struct sn_resource *find_service(struct an *an, const char *fqdn)
{
	for (const struct sn_resource *r = an->set->head; r; r = r->next) {
		if (r->kind != SN_KIND_SERVICE)
			continue;
		char buf[600];
		snprintf(buf, sizeof(buf), "%s.%s.svc.%s", r->name, r->namespace_, sn_cluster_domain());
		if (!strcasecmp(buf, fqdn))
			return r;
	}
	return NULL;
}

static int is_entry_host(struct an *an, const char *host);

/* As translation resolves a host of a resource in ns (sn_host_candidates):
 * the first candidate that is a Service or a ServiceEntry host, else the
 * name to report. */
static const char *resolve(struct an *an, const char *host, const char *ns)
{
	char cand[2][SN_HOST_CAND_MAX];
	size_t fb;
	size_t n = sn_host_candidates(host, strlen(host), ns, cand, &fb);
	size_t pick = fb;
	if (n == 0)
		return host;
	for (size_t i = 0; i < n; i++)
		if (find_service(an, cand[i]) != NULL || is_entry_host(an, cand[i])) {
			pick = i;
			break;
		}
	char *out = sn_arena_strdup(&an->tmp, cand[pick]);
	if (out == NULL) {
		an->oom = 1;
		return host;
	}
	return out;
}

/* Is host (lower-case) one of a ServiceEntry's hosts, as written? */
static int is_entry_host(struct an *an, const char *host)
{
	for (const struct sn_resource *r = an->set->head; r; r = r->next) {
		if (r->kind != SN_KIND_SERVICE_ENTRY)
			continue;
		const struct cfg_service_entry *se = r->spec;
		for (size_t i = 0; i < se->n_hosts; i++) {
			size_t n = strlen(se->hosts[i]);
			if (n > 1 && se->hosts[i][n - 1] == '.')
				n--;
			if (strlen(host) == n && !strncasecmp(se->hosts[i], host, n))
				return 1;
		}
	}
	return 0;
}

/* Is fqdn a host of a ServiceEntry (its hosts as written)? */
static int is_service_entry_host(struct an *an, const char *fqdn)
{
	for (const struct sn_resource *r = an->set->head; r; r = r->next) {
		if (r->kind != SN_KIND_SERVICE_ENTRY)
			continue;
		const struct cfg_service_entry *se = r->spec;
		for (size_t i = 0; i < se->n_hosts; i++)
			if (!strcasecmp(se->hosts[i], fqdn))   /* never qualified */
				return 1;
	}
	return 0;
}

/* Workload entries a Service (and optionally a subset) selects, as the
 * proxy builds endpoints: same namespace, selector and subset labels. */
static size_t count_endpoints(struct an *an, const struct sn_resource *svc, const struct sn_labels *subset)
{
	const struct cfg_service *cs = svc->spec;
	size_t n = 0;
	if (!cs->has_selector || cs->selector.n == 0)
		return 0;
	for (const struct sn_resource *r = an->set->head; r; r = r->next) {
		if (r->kind != SN_KIND_WORKLOAD_ENTRY || strcmp(r->namespace_, svc->namespace_) != 0)
			continue;
		const struct cfg_workload *w = r->spec;
		if (sn_labels_match(&cs->selector, &w->labels) && sn_labels_match(subset, &w->labels))
			n++;
	}
	return n;
}

/* The first DestinationRule for a Service host (what the proxy uses). */
static const struct sn_resource *find_dr(struct an *an, const char *fqdn)
{
	for (const struct sn_resource *r = an->set->head; r; r = r->next) {
		if (r->kind != SN_KIND_DESTINATION_RULE)
			continue;
		const struct cfg_dr *dr = r->spec;
		if (!strcmp(resolve(an, dr->host, r->namespace_), fqdn))
			return r;
	}
	return NULL;
}

/* ---- checks ---------------------------------------------------------- */

static void check_destinations(struct an *an, const struct sn_resource *r)
{
	const struct cfg_vs *vs = r->spec;
	for (size_t i = 0; i < vs->n_http + vs->n_tls + vs->n_tcp; i++) {
		/* http[]'s route destinations, then mirrors, and tls[]'s and tcp[]'s: all must exist */
		static const struct cfg_http none;
		const struct cfg_http *h = i < vs->n_http ? &vs->http[i] : &none;
		const struct cfg_tls_route *tr = i < vs->n_http		   ? NULL
						 : i < vs->n_http + vs->n_tls ? &vs->tls[i - vs->n_http]
									     : &vs->tcp[i - vs->n_http - vs->n_tls];
		size_t n = tr ? tr->n_dests : h->n_dests + h->n_mirrors;
		for (size_t j = 0; j < n; j++) {
			const struct cfg_dest *d = tr ? &tr->dests[j]
					       : j < h->n_dests ? &h->dests[j] : &h->mirrors[j - h->n_dests];
			char field[600];
			if (d->host == NULL)
				continue;
			if (d->ref_ns != NULL && !cfg_reference_granted(an->set->head, r->kind, r->namespace_, d->ref_ns,
									"Service", d->host)) {
				snprintf(field, sizeof(field), "%s.namespace", d->path);
				emit(an, &C_REF_GRANT, r, NULL, r->file, d->host_loc.line, field,
				     "backendRef to Service %s/%s is not permitted: no ReferenceGrant in namespace %s lets "
				     "%ss of %s refer to it; %s (apply one there with from: [{group: "
				     "gateway.networking.k8s.io, kind: %s, namespace: %s}], to: [{group: \"\", kind: "
				     "Service}])", d->ref_ns, d->host, d->ref_ns, sn_resource_kind_str(r->kind), r->namespace_,
				     r->kind == SN_KIND_TCP_ROUTE || r->kind == SN_KIND_TLS_ROUTE
					     ? "connections are not sent to it"
					     : "requests for it answer 500",
				     sn_resource_kind_str(r->kind), r->namespace_);
				continue;
			}
			const char *fqdn = resolve(an, d->host, d->ref_ns ? d->ref_ns : r->namespace_);
			const struct sn_resource *svc = find_service(an, fqdn);
			if (svc == NULL) {
				if (is_service_entry_host(an, fqdn))
					continue;
				snprintf(field, sizeof(field), "%s.%s", d->path, sn_kind_is_gwapi_route(r->kind) ? "name" : "host");
				emit(an, &C_HOST_NOT_FOUND, r, NULL, r->file, d->host_loc.line, field,
				     "destination host \"%s\" (%s) is not a known Service; apply a Service named "
				     "\"%s\" in namespace %s, or fix the host",
				     d->host, fqdn, d->host, r->namespace_);
				continue;
			}
			if (d->subset == NULL)
				continue;
			const struct sn_resource *drr = find_dr(an, fqdn);
			const struct cfg_dr *dr = drr ? drr->spec : NULL;
			int found = 0;
			for (size_t k = 0; dr && k < dr->n_subsets; k++)
				if (!strcmp(dr->subsets[k].name, d->subset))
					found = 1;
			if (!found) {
				snprintf(field, sizeof(field), "%s.subset", d->path);
				if (drr != NULL)
					emit(an, &C_SUBSET_NOT_FOUND, r, NULL, r->file, d->subset_loc.line, field,
					     "subset \"%s\" of %s is not defined by DestinationRule %s/%s (%s:%d); add it "
					     "to its subsets or fix the name",
					     d->subset, fqdn, drr->namespace_, drr->name, drr->file, drr->line);
				else
					emit(an, &C_SUBSET_NOT_FOUND, r, NULL, r->file, d->subset_loc.line, field,
					     "subset \"%s\" of %s is not defined: no DestinationRule has host %s; apply "
					     "one that defines the subset",
					     d->subset, fqdn, fqdn);
			}
		}
	}
}

/* spec.gateways (and a match's gateways) name Gateways that exist:
 * otherwise the rule routes nowhere (Istio's IST0101). */
static int find_gateway_named(struct an *an, const char *ns, const char *name)
{
	for (const struct sn_resource *g = an->set->head; g; g = g->next)
		if (g->kind == SN_KIND_GATEWAY && !strcmp(g->namespace_, ns) && !strcmp(g->name, name))
			return 1;
	return 0;
}

static void check_gateway_ref(struct an *an, const struct sn_resource *r, const char *ref, int line,
			      const char *field)
{
	if (!strcmp(ref, "mesh"))
		return;
	for (const struct sn_resource *g = an->set->head; g; g = g->next)
		if (g->kind == SN_KIND_GATEWAY && cfg_gateway_ref_names(ref, r->namespace_, g->namespace_, g->name))
			return;
	const char *slash = strchr(ref, '/');
	emit(an, &C_GATEWAY, r, NULL, r->file, line, field,
	     "gateway \"%s\" is not a Gateway (looked for %s%s%s); apply it, or fix the name (NAME for a Gateway "
	     "of namespace %s, NAMESPACE/NAME otherwise)", ref, slash ? "" : r->namespace_, slash ? "" : "/", ref,
	     r->namespace_);
}

static void check_gateways(struct an *an, const struct sn_resource *r)
{
	const struct cfg_vs *vs = r->spec;
	char field[96];
	for (size_t i = 0; i < vs->n_gateways; i++) {
		snprintf(field, sizeof(field), "spec.gateways[%zu]", i);
		check_gateway_ref(an, r, vs->gateways[i], vs->gateway_locs ? vs->gateway_locs[i].line : r->line, field);
	}
	for (size_t i = 0; i < vs->n_http; i++)
		for (size_t j = 0; j < vs->http[i].n_matches; j++) {
			const struct cfg_match *m = &vs->http[i].matches[j];
			snprintf(field, sizeof(field), "spec.http[%zu].match[%zu].gateways", i, j);
			for (size_t k = 0; k < m->n_gateways; k++)
				check_gateway_ref(an, r, m->gateways[k], vs->http[i].loc.line, field);
		}
}

/* An HTTPRoute's parentRefs name a Gateway API Gateway (and one of its
 * listeners, by sectionName) or a Service that exist. */
static void check_parents(struct an *an, const struct sn_resource *r)
{
	const struct cfg_vs *vs = r->spec;
	char field[96];
	for (size_t i = 0; i < vs->n_parents; i++) {
		const struct cfg_parent_ref *p = &vs->parents[i];
		const char *ns = p->ns ? p->ns : r->namespace_;
		snprintf(field, sizeof(field), "spec.parentRefs[%zu]", i);
		if (p->service) {
			if (find_service(an, resolve(an, p->name, ns)) == NULL)
				emit(an, &C_HOST_NOT_FOUND, r, NULL, r->file, p->loc.line, field,
				     "parent Service %s/%s does not exist; apply it, or fix the name", ns, p->name);
			continue;
		}
		const struct sn_resource *gw = NULL;
		for (const struct sn_resource *g = an->set->head; g && gw == NULL; g = g->next)
			if (g->kind == SN_KIND_K8S_GATEWAY && cfg_parent_names_gateway(p, r->namespace_, g->namespace_, g->name))
				gw = g;
		if (gw == NULL) {
			emit(an, &C_GATEWAY, r, NULL, r->file, p->loc.line, field,
			     "parent Gateway %s/%s (gateway.networking.k8s.io) does not exist; apply it, or fix the name%s",
			     ns, p->name, find_gateway_named(an, ns, p->name) ? " (an Istio Gateway of that name exists: "
										"HTTPRoutes attach to the Gateway API's Gateways, "
										"VirtualServices to Istio's)" : "");
			continue;
		}
		const struct cfg_gateway *g = gw->spec;
		int found = p->section == NULL && p->port == 0, takes = 0;
		for (size_t k = 0; k < g->n_servers; k++) {
			const struct cfg_gw_server *sv = &g->servers[k];
			if ((p->section == NULL || (sv->name && !strcmp(sv->name, p->section))) &&
			    (p->port == 0 || sv->port == p->port)) {
				found = 1;
				takes |= (sv->route_kinds & (1u << r->kind)) != 0;
			}
		}
		if (!found)
			emit(an, &C_GATEWAY, r, NULL, r->file, p->loc.line, field,
			     "Gateway %s/%s has no listener %s%s%s%u; the route attaches to nothing there",
			     ns, p->name, p->section ? "named " : "", p->section ? p->section : "",
			     p->section && p->port ? " on port " : p->port ? "on port " : "", p->port);
		else if (!takes && g->n_servers > 0)
			emit(an, &C_ROUTE_KIND, r, NULL, r->file, p->loc.line, field,
			     "no listener of Gateway %s/%s%s%s takes a %s (their protocols and allowedRoutes.kinds say "
			     "which kinds attach: HTTP and HTTPS take HTTPRoute and GRPCRoute, TLS Passthrough TLSRoute, "
			     "TLS Terminate and TCP TCPRoute); the route attaches to nothing there", ns, p->name,
			     p->section ? " named " : "", p->section ? p->section : "", sn_resource_kind_str(r->kind));
	}
}

static int str_match_all(const struct sn_str_match *m)
{
	return m->kind == SN_MATCH_ANY ||
	       (m->kind == SN_MATCH_PREFIX && m->value != NULL && !strcmp(m->value, "/"));
}

/* A match that every request to the host satisfies. */
static int match_is_catch_all(const struct cfg_match *m)
{
	return str_match_all(&m->m.uri) && m->m.method.kind == SN_MATCH_ANY &&
	       m->m.authority.kind == SN_MATCH_ANY && m->m.scheme.kind == SN_MATCH_ANY && m->m.n_headers == 0 &&
	       m->m.n_without_headers == 0 && m->m.n_query_params == 0 && m->m.port == 0 &&
	       !m->has_source_labels && m->source_namespace == NULL && m->n_gateways == 0;
}

static void check_unreachable(struct an *an, const struct sn_resource *r)
{
	const struct cfg_vs *vs = r->spec;
	for (size_t i = 0; i + 1 < vs->n_http; i++) {
		const struct cfg_http *h = &vs->http[i];
		int all = h->n_matches == 0;
		for (size_t k = 0; k < h->n_matches && !all; k++)
			all = match_is_catch_all(&h->matches[k]);
		if (!all)
			continue;
		const struct cfg_http *next = &vs->http[i + 1];
		emit(an, &C_UNREACHABLE, r, NULL, r->file, next->loc.line, next->path,
		     "%s and every rule after it are never used: %s (line %d) matches every request first; "
		     "move the catch-all rule last",
		     next->path, h->path, h->loc.line);
		break;
	}
}

static void check_vs_conflicts(struct an *an)
{
	for (const struct sn_resource *r = an->set->head; r; r = r->next) {
		if (r->kind != SN_KIND_VIRTUAL_SERVICE || !((const struct cfg_vs *)r->spec)->for_mesh)
			continue;
		const struct cfg_vs *vs = r->spec;
		for (size_t i = 0; i < vs->n_hosts; i++) {
			const char *h = resolve(an, vs->hosts[i], r->namespace_);
			const struct sn_resource *first = NULL;
			for (const struct sn_resource *p = an->set->head; p && p != r && first == NULL; p = p->next) {
				if (p->kind != SN_KIND_VIRTUAL_SERVICE)
					continue;
				const struct cfg_vs *pv = p->spec;
				for (size_t k = 0; pv->for_mesh && k < pv->n_hosts && first == NULL; k++)
					if (!strcmp(resolve(an, pv->hosts[k], p->namespace_), h))
						first = p;
			}
			if (first == NULL)
				continue;
			char field[64];
			snprintf(field, sizeof(field), "spec.hosts[%zu]", i);
			emit(an, &C_CONFLICT_VS, r, NULL, r->file, vs->host_locs[i].line, field,
			     "VirtualServices %s/%s (%s:%d) and %s/%s both route host %s for sidecars; only the first "
			     "is used: merge them into one VirtualService or delete one",
			     first->namespace_, first->name, first->file, first->line, r->namespace_, r->name, h);
		}
	}
}

static void check_destination_rules(struct an *an, const struct sn_resource *r)
{
	const struct cfg_dr *dr = r->spec;
	const char *fqdn = resolve(an, dr->host, r->namespace_);
	const struct sn_resource *svc = find_service(an, fqdn);
	if (svc == NULL) {
		if (!is_service_entry_host(an, fqdn) && dr->host[0] != '*')
			emit(an, &C_DR_HOST, r, NULL, r->file, dr->host_loc.line, "spec.host",
			     "host \"%s\" (%s) is not a known Service, so this DestinationRule applies to nothing; "
			     "apply the Service or fix the host",
			     dr->host, fqdn);
		return;
	}
	const struct sn_resource *first = find_dr(an, fqdn);
	if (first != NULL && first != r) {
		emit(an, &C_DR_DUP, r, NULL, r->file, dr->host_loc.line, "spec.host",
		     "DestinationRule %s/%s (%s:%d) is also for %s and comes first, so this one is ignored; merge "
		     "them into one",
		     first->namespace_, first->name, first->file, first->line, fqdn);
		return;
	}
	if (count_endpoints(an, svc, NULL) == 0)
		return; /* SN0107 says it once for the Service */
	for (size_t i = 0; i < dr->n_subsets; i++) {
		const struct cfg_subset *s = &dr->subsets[i];
		if (count_endpoints(an, svc, &s->labels) > 0)
			continue;
		char field[64], labels[400];
		size_t off = 0;
		labels[0] = '\0';
		for (size_t k = 0; k < s->labels.n && off + 2 < sizeof(labels); k++)
			off += (size_t)snprintf(labels + off, sizeof(labels) - off, "%s%s=%s", k ? "," : "",
						s->labels.v[k].key, s->labels.v[k].value);
		snprintf(field, sizeof(field), "spec.subsets[%zu]", i);
		emit(an, &C_SUBSET_EMPTY, r, NULL, r->file, s->loc.line, field,
		     "subset \"%s\" (labels %s) selects no WorkloadEntry of Service %s/%s, so routes to it fail "
		     "with 503; apply a WorkloadEntry with those labels or fix the labels",
		     s->name, off ? labels : "none", svc->namespace_, svc->name);
	}
}

/* An HTTPLocalRateLimitPolicy limits nothing when its Server is not there. */
static void check_rate_limit(struct an *an, const struct sn_resource *r)
{
	const struct cfg_rate_limit *rl = r->spec;
	if (rl == NULL || rl->server == NULL)
		return;
	for (const struct sn_resource *q = an->set->head; q; q = q->next)
		if (q->kind == SN_KIND_SERVER && !strcmp(q->namespace_, r->namespace_) && !strcmp(q->name, rl->server))
			return;
	emit(an, &C_RL_TARGET, r, NULL, r->file, r->line, "spec.targetRef",
	     "HTTPLocalRateLimitPolicy %s/%s targets Server %s, which is not in namespace %s, so it limits nothing; "
	     "apply the Server (policy.linkerd.io/v1beta3) or fix targetRef.name", r->namespace_, r->name, rl->server,
	     r->namespace_);
}

static void check_service(struct an *an, const struct sn_resource *r)
{
	const struct cfg_service *cs = r->spec;
	if (count_endpoints(an, r, NULL) > 0)
		return;
	emit(an, &C_SVC_EMPTY, r, NULL, r->file, r->line, cs->has_selector ? "spec.selector" : "spec",
	     cs->has_selector ? "Service %s/%s selects no WorkloadEntry in namespace %s, so requests to it fail "
				"with 503; apply WorkloadEntries whose labels match spec.selector"
			      : "Service %s/%s has no selector, so it has no endpoints in namespace %s; add "
				"spec.selector",
	     r->namespace_, r->name, r->namespace_);
}

void sn_analysis_msg_text(const struct sn_analysis_msg *m, char *text, size_t size)
{
	char where[700];
	if (m->file && m->line)
		snprintf(where, sizeof(where), "%s%s%s:%d", m->resource ? m->resource : "", m->resource ? " " : "",
			 m->file, m->line);
	else
		snprintf(where, sizeof(where), "%s", m->resource ? m->resource : "-");
	snprintf(text, size, "%s [%s] (%s) %s%s%s", sn_analysis_level_str(m->level), m->code, where,
		 m->field && m->field[0] ? m->field : "", m->field && m->field[0] ? ": " : "", m->message);
}

/* Load diagnostics become messages; a few have their own codes. */
static void from_diags(struct an *an, const struct sn_diags *d, int translation)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct sn_diag *g = &d->v[i];
		const struct code *c;
		if (translation) {
			/* what the checks above say better */
			if (strstr(g->message, "is not a known Service") || strstr(g->message, "subset \"") ||
			    strstr(g->message, "came first") || strstr(g->message, "comes first"))
				continue;
		}
		if (g->severity == SN_DIAG_ERROR)
			c = strstr(g->message, "weights sum to") ? &C_WEIGHTS : &C_INVALID;
		else if (strstr(g->message, "unknown field"))
			c = &C_UNKNOWN_FIELD;
		else if (strstr(g->message, "cannot be enforced as written"))
			c = &C_UNENFORCEABLE;   /* it loads, and denies all it covers */
		else
			c = &C_NOT_IMPL;
		char res[600] = "";
		if (g->kind && g->name)
			snprintf(res, sizeof(res), "%s %s", g->kind, g->name);
		else if (g->kind)
			snprintf(res, sizeof(res), "%s", g->kind);
		emit(an, c, NULL, res, g->file, g->line, g->field, "%s", g->message);
	}
}

/* The same resource twice in a body: the later one wins, as if the
 * documents were applied one after another. */
static void drop_earlier_duplicates(struct sn_config_set *set, struct sn_resource **from)
{
	struct sn_resource **pp = from;
	while (*pp != NULL) {
		struct sn_resource *r = *pp;
		int later = 0;
		for (const struct sn_resource *q = r->next; q && !later; q = q->next)
			later = q->kind == r->kind && !strcmp(q->namespace_, r->namespace_) && !strcmp(q->name, r->name);
		if (later) {
			*pp = r->next;
			set->count--;
			if (set->tail == &r->next)
				set->tail = pp;
			continue;
		}
		pp = &r->next;
	}
}

static int cmp_msg(const void *a, const void *b)
{
	const struct sn_analysis_msg *x = a, *y = b;
	int c = strcmp(x->code, y->code);
	if (c)
		return c;
	c = strcmp(x->resource ? x->resource : "", y->resource ? y->resource : "");
	if (c)
		return c;
	c = strcmp(x->file ? x->file : "", y->file ? y->file : "");
	return c ? c : (x->line > y->line) - (x->line < y->line);
}

int sn_config_analyze(struct sn_config_set *set, struct sn_resource **body_start, const struct sn_diags *load,
		      struct sn_analysis *out)
{
	struct sn_diags td;
	struct an an;

	memset(out, 0, sizeof(*out));
	memset(&an, 0, sizeof(an));
	an.out = out;
	an.set = set;
	sn_arena_init(&an.tmp, 0);
	sn_diags_init(&td);
	if (body_start != NULL)
		drop_earlier_duplicates(set, body_start);
	from_diags(&an, load, 0);

	/* A resource with a load error (already reported): only its
	 * destinations are checked too, so that one error hides no other;
	 * then it leaves the set, which the other checks and the
	 * translation see whole. */
	for (struct sn_resource **pp = &set->head; *pp != NULL;) {
		struct sn_resource *r = *pp;
		if (!r->invalid) {
			pp = &r->next;
			continue;
		}
		if (r->kind == SN_KIND_VIRTUAL_SERVICE || sn_kind_is_gwapi_route(r->kind))
			check_destinations(&an, r);
		*pp = r->next;
		set->count--;
		if (set->tail == &r->next)
			set->tail = pp;
	}
	for (const struct sn_resource *r = set->head; r; r = r->next) {
		switch (r->kind) {
		case SN_KIND_VIRTUAL_SERVICE:
			check_destinations(&an, r);
			check_unreachable(&an, r);
			check_gateways(&an, r);
			break;
		case SN_KIND_HTTP_ROUTE:
		case SN_KIND_GRPC_ROUTE:
		case SN_KIND_TCP_ROUTE:
		case SN_KIND_TLS_ROUTE:
			check_destinations(&an, r);
			check_parents(&an, r);
			break;
		case SN_KIND_DESTINATION_RULE:
			check_destination_rules(&an, r);
			break;
		case SN_KIND_SERVICE:
			check_service(&an, r);
			break;
		case SN_KIND_RATE_LIMIT:
			check_rate_limit(&an, r);
			break;
		default:
			break;
		}
	}
	check_vs_conflicts(&an);

	/* What else translation refuses (ports, ...), as the proxy would. */
	struct sn_proxy_identity id = { .namespace_ = "default", .workload = "sinewd-analyze",
					.gateway = SN_GATEWAY_ANY };
	struct sn_snapshot *snap = NULL;
	if (set->count > 0) {
		sn_config_translate(set, &id, &td, &snap);
		if (snap != NULL)
			sn_snapshot_unref(snap);
		from_diags(&an, &td, 1);
	}

	if (out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), cmp_msg);
	sn_diags_free(&td);
	sn_arena_free(&an.tmp);
	return an.oom ? SN_ENOMEM : 0;
}
