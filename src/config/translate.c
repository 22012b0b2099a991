/* Translation: from loaded resources to the immutable snapshot one proxy
 * runs. Resolves short host names in the right namespace, destinations to
 * clusters (service, port, subset), merges DestinationRule policies the way
 * Istio does, selects endpoints by labels, and builds one vhost per
 * (host, port).
 *
 * Everything the snapshot holds is copied into its own arena: the config
 * set may be freed while proxies still run the snapshot. */
#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

struct tr_svc {
	const struct sn_resource *res;
	const struct cfg_service *cs;    /* a ServiceEntry's: se->svc */
	const struct cfg_service_entry *se; /* NULL for a Service */
	char *fqdn;                      /* a ServiceEntry's host, resolved */
};

struct tr_dr {
	const struct sn_resource *res;
	const struct cfg_dr *dr;
	char *host;                  /* resolved */
};

struct tr_vs_host {
	char *host;                  /* resolved */
	const struct sn_resource *res;
	const struct cfg_vs *vs;
};

struct tr {
	const struct sn_config_set *set;
	const struct sn_proxy_identity *id;
	struct sn_diags *d;
	struct cfg_snapshot *cs;
	struct sn_snapshot *s;
	struct sn_arena *a;          /* the snapshot's */
	struct sn_arena tmp;         /* translation scratch */
	const char *ns;
	size_t errors;
	size_t diag_start;           /* first diagnostic of this translation */
	int oom;

	struct tr_svc *svcs;
	size_t n_svcs, cap_svcs;     /* a ServiceEntry brings one per host */
	struct tr_dr *drs;
	size_t n_drs;
	struct tr_vs_host *vsh;
	size_t n_vsh;

	struct sn_cluster *clusters; /* malloc'd while building */
	size_t n_clusters, cap_clusters;
	struct sn_vhost *vhosts;
	size_t n_vhosts, cap_vhosts;
	const struct sn_resource *gw_cur;  /* building routes for this Gateway; NULL: for the mesh */
};

static char *sdup(struct tr *t, const char *s)
{
	if (s == NULL)
		return NULL;
	char *p = sn_arena_strdup(t->a, s);
	if (p == NULL)
		t->oom = 1;
	return p;
}

static void tr_diag(struct tr *t, enum sn_diag_severity sev, const struct sn_resource *r, struct cfg_loc loc,
		    const char *field, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void tr_diag(struct tr *t, enum sn_diag_severity sev, const struct sn_resource *r, struct cfg_loc loc,
		    const char *field, const char *fmt, ...)
{
	char msg[900], name[320];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(name, sizeof(name), "%s/%s", r->namespace_, r->name);
	if (sev == SN_DIAG_ERROR)
		t->errors++;
	/* A rule is built once per port of its host: say each thing once. */
	for (size_t i = t->diag_start; i < t->d->n; i++) {
		const struct sn_diag *g = &t->d->v[i];
		if (g->line == (loc.line ? loc.line : r->line) && !strcmp(g->message, msg) &&
		    !strcmp(g->file, r->file) && ((g->field == NULL) == (field == NULL)) &&
		    (field == NULL || !strcmp(g->field, field)))
			return;
	}
	sn_diags_add(t->d, sev, r->file, loc.line ? loc.line : r->line, loc.line ? loc.col : 1,
		     sn_resource_kind_str(r->kind), name, field, "%s", msg);
}

/* ---- names ---------------------------------------------------------- */

static struct tr_svc *find_svc(struct tr *t, const char *fqdn)
{
	for (size_t i = 0; i < t->n_svcs; i++)
		if (!strcmp(t->svcs[i].fqdn, fqdn))
			return &t->svcs[i];
	return NULL;
}

/* What a host in a resource of namespace ns names (sn_host_candidates):
 * the first candidate that is a Service or ServiceEntry host, else the
 * name to report. */
static char *resolve_host(struct tr *t, const char *host, const char *ns)
{
	char cand[2][SN_HOST_CAND_MAX];
	size_t fb;
	size_t n = sn_host_candidates(host, strlen(host), ns, cand, &fb);
	if (n == 0)
		return sn_arena_strdup(&t->tmp, host);
	for (size_t i = 0; i < n; i++)
		if (find_svc(t, cand[i]) != NULL)
			return sn_arena_strdup(&t->tmp, cand[i]);
	return sn_arena_strdup(&t->tmp, cand[fb]);
}

/* A ServiceEntry host is never qualified (Istio): "localhost" stays
 * localhost. Lower-cased, a trailing dot dropped. */
static char *entry_host(struct tr *t, const char *host)
{
	char *h = sn_arena_strdup(&t->tmp, host);
	if (h == NULL)
		return NULL;
	size_t n = strlen(h);
	if (n > 1 && h[n - 1] == '.')
		h[n - 1] = '\0';
	sn_ascii_lower(h);
	return h;
}

static int wildcard_match(const char *pattern, const char *host)
{
	if (!strcmp(pattern, "*"))
		return 1;
	if (pattern[0] != '*')
		return 0;
	size_t pl = strlen(pattern + 1), hl = strlen(host);
	return hl > pl && !strcmp(host + hl - pl, pattern + 1);
}

static const struct tr_dr *find_dr(struct tr *t, const char *fqdn)
{
	const struct tr_dr *best = NULL;
	size_t best_len = 0;
	for (size_t i = 0; i < t->n_drs; i++) {
		if (!strcmp(t->drs[i].host, fqdn))
			return &t->drs[i];
		if (wildcard_match(t->drs[i].host, fqdn) && strlen(t->drs[i].host) > best_len) {
			best = &t->drs[i];
			best_len = strlen(t->drs[i].host);
		}
	}
	return best;
}

/* ---- clusters ------------------------------------------------------- */

static void apply_pool(struct sn_cluster *c, const struct cfg_policy *p)
{
	c->connect_timeout_ms = p->connect_timeout_ms ? p->connect_timeout_ms : 1000;
	c->max_connections = p->max_connections;
	c->max_pending = p->max_pending;
	c->max_requests_per_conn = p->max_requests_per_conn;
	c->idle_timeout_ms = p->idle_timeout_ms ? p->idle_timeout_ms : 60000;
	/* UPGRADE: HTTP/2 to endpoints of an HTTP/1.1 port too (Istio's
	 * h2UpgradePolicy; a port declared http2/grpc is HTTP/2 anyway). */
	if (p->h2_upgrade == 1)
		c->http2 = 1;
}

/* Appends one endpoint at ip:port (ip validated at load). */
/* "region/zone/subzone" of a WorkloadEntry's locality field, else of the
 * topology labels (Kubernetes' and Istio's); NULL when no region is known. */
static char *locality_of(struct tr *t, const char *field, const struct sn_labels *labels)
{
	if (field != NULL && field[0] != '\0')
		return sdup(t, field);
	const char *r = sn_labels_get(labels, "topology.kubernetes.io/region");
	const char *z = sn_labels_get(labels, "topology.kubernetes.io/zone");
	const char *s = sn_labels_get(labels, "topology.istio.io/subzone");
	if (r == NULL)
		return NULL;
	return sn_arena_printf(t->a, "%s/%s/%s", r, z ? z : "", s ? s : "");
}

static void add_endpoint(struct tr *t, struct sn_cluster *cl, const char *ip, uint16_t port, const char *workload,
			 const struct sn_labels *labels, const char *service_account, uint32_t weight,
			 const char *locality)
{
	/* loaded resources hold every required value (cfg_require) */
	assert(ip != NULL && ip[0] != '\0' && workload != NULL);
	struct sn_endpoint *e = &cl->endpoints[cl->n_endpoints];
	memset(e, 0, sizeof(*e));
	struct sockaddr_in *a4 = (struct sockaddr_in *)&e->addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&e->addr;
	if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		e->addr_len = sizeof(*a4);
		e->address = sn_arena_printf(t->a, "%s:%u", ip, port);
	} else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		e->addr_len = sizeof(*a6);
		e->address = sn_arena_printf(t->a, "[%s]:%u", ip, port);
	} else {
		return; /* validated at load */
	}
	e->workload = sdup(t, workload);
	e->version = sdup(t, sn_labels_get(labels, "version"));
	e->service_account = sdup(t, service_account ? service_account : "default");
	if (sn_labels_arena_dup(t->a, &e->labels, labels) != 0)
		t->oom = 1;
	e->weight = weight ? weight : 1;
	e->locality = locality_of(t, locality, labels);
	if (e->address == NULL)
		t->oom = 1;
	cl->n_endpoints++;
}

/* The port an endpoint listens on for service port sp: its ports map
 * entry of the same name, else targetPort, else the port itself. */
static uint16_t endpoint_port(const struct cfg_svc_port *sp, const struct cfg_workload *w)
{
	uint16_t port = sp->target_port ? sp->target_port : sp->port;
	for (size_t i = 0; sp->name && i < w->n_ports; i++)
		if (!strcmp(w->ports[i].name, sp->name))
			port = w->ports[i].port;
	return port;
}

/* A ServiceEntry's endpoints (its workloadSelector goes the Service way):
 * the listed ones with an address known without DNS, or for DNS with no
 * endpoints the host itself when it is an IP literal or "localhost". */
#define SN_DNS_ADDRS_MAX 16

/* A DNS name's addresses from the proxy's resolver (none: not resolved
 * yet, or no resolver). DNS_ROUND_ROBIN takes the first only (Envoy's
 * LOGICAL_DNS); DNS all of them (STRICT_DNS). */
static size_t dns_addrs(struct tr *t, const struct cfg_service_entry *se, const char *name,
			char out[SN_DNS_ADDRS_MAX][48])
{
	if (t->id == NULL || t->id->dns_lookup == NULL || name == NULL)
		return 0;
	size_t n = t->id->dns_lookup(t->id->dns_ctx, name, out, SN_DNS_ADDRS_MAX);
	return se->resolution == CFG_SE_DNS_ROUND_ROBIN ? SN_MIN(n, (size_t)1) : n;
}

static void add_se_endpoints(struct tr *t, struct sn_cluster *cl, const struct tr_svc *sv, const struct cfg_svc_port *sp,
			     const struct sn_labels *subset_labels)
{
	const struct cfg_service_entry *se = sv->se;
	static const struct sn_labels no_labels;
	char addrs[SN_DNS_ADDRS_MAX][48];
	int dns = se->resolution == CFG_SE_DNS || se->resolution == CFG_SE_DNS_ROUND_ROBIN;
	if (se->resolution == CFG_SE_NONE)
		return; /* original destination: needs capture */
	if (se->n_endpoints == 0) {
		/* the host itself is the endpoint: an IP, or a name to resolve */
		const char *ip = cfg_literal_ip(sv->fqdn);
		if (se->resolution == CFG_SE_STATIC || !sn_labels_match(subset_labels, &no_labels))
			return;
		size_t n = ip != NULL ? 1 : dns_addrs(t, se, sv->fqdn, addrs);
		if (n == 0)
			return;
		cl->endpoints = sn_arena_new_array(t->a, struct sn_endpoint, n);
		if (cl->endpoints == NULL) {
			t->oom = 1;
			return;
		}
		for (size_t k = 0; k < n; k++)
			add_endpoint(t, cl, ip != NULL ? ip : addrs[k], sp->target_port ? sp->target_port : sp->port,
				     sv->res->name, &no_labels, NULL, 1, NULL);
		return;
	}
	cl->endpoints = sn_arena_new_array(t->a, struct sn_endpoint, se->n_endpoints * (dns ? SN_DNS_ADDRS_MAX : 1));
	if (cl->endpoints == NULL) {
		t->oom = 1;
		return;
	}
	for (size_t i = 0; i < se->n_endpoints; i++) {
		const struct cfg_se_endpoint *ep = &se->endpoints[i];
		if (!sn_labels_match(subset_labels, &ep->w.labels))
			continue;
		if (ep->ip != NULL) {
			add_endpoint(t, cl, ep->ip, endpoint_port(sp, &ep->w), sv->res->name, &ep->w.labels,
				     ep->w.service_account, ep->w.weight, ep->w.locality);
			continue;
		}
		size_t n = dns ? dns_addrs(t, se, ep->w.address, addrs) : 0;
		for (size_t k = 0; k < n; k++)
			add_endpoint(t, cl, addrs[k], endpoint_port(sp, &ep->w), sv->res->name, &ep->w.labels,
				     ep->w.service_account, ep->w.weight, ep->w.locality);
	}
}

static void add_endpoints(struct tr *t, struct sn_cluster *cl, const struct tr_svc *sv, const struct cfg_svc_port *sp,
			  const struct sn_labels *subset_labels)
{
	const struct cfg_service *cs = sv->cs;
	size_t n = 0;
	if (sv->se != NULL && (!cs->has_selector || sv->se->resolution == CFG_SE_NONE)) {
		add_se_endpoints(t, cl, sv, sp, subset_labels);
		return;
	}
	if (!cs->has_selector || cs->selector.n == 0)
		return;
	/* Sized by the endpoints that match, not by every WorkloadEntry of
	 * the namespace: sinewd's admission translates the whole store, where
	 * each of thousands of registered proxies is an entry and a Service
	 * has many clusters (a subset each). */
	for (int fill = 0; fill < 2; fill++) {
		for (const struct sn_resource *r = t->set->head; r; r = r->next) {
			if (r->kind != SN_KIND_WORKLOAD_ENTRY || strcmp(r->namespace_, sv->res->namespace_) != 0)
				continue;
			const struct cfg_workload *w = r->spec;
			if (!sn_labels_match(&cs->selector, &w->labels) || !sn_labels_match(subset_labels, &w->labels))
				continue;
			if (!fill)
				n++;
			else
				add_endpoint(t, cl, w->address, endpoint_port(sp, w), r->name, &w->labels,
					     w->service_account, w->weight, w->locality);
		}
		if (fill || n == 0)
			return;
		cl->endpoints = sn_arena_new_array(t->a, struct sn_endpoint, n);
		if (cl->endpoints == NULL) {
			t->oom = 1;
			return;
		}
	}
}

/* Index of the cluster for (service, port, subset), created on first use. */
/* A Service port's protocol, Istio's way: appProtocol, else the name's
 * prefix ("grpc-api" is grpc), else "auto" (detected). */
static const char *port_protocol(const struct cfg_svc_port *sp)
{
	static const char *const known[] = { "http", "http2", "https", "grpc", "grpc-web",
					     "tcp", "tls", "mongo", "mysql", "redis" };
	const char *proto = "auto";

	if (sp->app_protocol)
		return sp->app_protocol;
	for (size_t k = 0; sp->name && k < SN_ARRAY_LEN(known); k++) {
		size_t kl = strlen(known[k]);
		if (!strncmp(sp->name, known[k], kl) && (sp->name[kl] == '\0' || sp->name[kl] == '-'))
			proto = known[k];
	}
	return proto;
}

/* Endpoints of this protocol are spoken to in HTTP/2 (Istio: http2, grpc,
 * grpc-web; Kubernetes' kubernetes.io/h2c). */
static int protocol_is_h2(const char *p)
{
	return !strcmp(p, "http2") || !strcmp(p, "grpc") || !strcmp(p, "grpc-web") || !strcmp(p, "kubernetes.io/h2c");
}

/* Component k (0 region, 1 zone, 2 subzone) of "r/z/s" into out. */
static void loc_part(const char *loc, int k, char *out, size_t size)
{
	out[0] = '\0';
	for (int i = 0; loc != NULL && i < k; i++) {
		loc = strchr(loc, '/');
		if (loc != NULL)
			loc++;
	}
	if (loc != NULL)
		snprintf(out, size, "%.*s", (int)strcspn(loc, "/"), loc);
}

/* A distribute pattern ("us-west/zone1/\*", "us-west/\*", "\*") holds loc. */
static int loc_match(const char *pattern, const char *loc)
{
	char p[128], l[128];
	for (int k = 0; k < 3; k++) {
		loc_part(pattern, k, p, sizeof(p));
		if (!strcmp(p, "*") || (p[0] == '\0' && k > 0))
			return 1;
		loc_part(loc, k, l, sizeof(l));
		if (strcmp(p, l) != 0)
			return 0;
	}
	return 1;
}

/* Locality-aware balancing (Istio's localityLbSetting): each endpoint's
 * priority against the proxy's own locality (its topology labels), or
 * its share under distribute. lb.c sends traffic to the first priority
 * with healthy endpoints, spilling over as Envoy does. */
static void apply_locality(struct tr *t, struct sn_cluster *c, const struct cfg_locality *loc)
{
	static const struct sn_labels none;
	const struct sn_labels *pl = t->id != NULL && t->id->labels != NULL ? t->id->labels : &none;
	char *mine = locality_of(t, NULL, pl);
	uint8_t used[256] = { 0 };

	if (loc != NULL && loc->n_failover_priority > 0) {
		/* failoverPriority: the more leading labels an endpoint shares
		 * with the proxy, the earlier */
		for (size_t i = 0; i < c->n_endpoints; i++) {
			struct sn_endpoint *e = &c->endpoints[i];
			size_t k = 0;
			while (k < loc->n_failover_priority) {
				const char *a = sn_labels_get(pl, loc->failover_priority[k]);
				const char *b = sn_labels_get(&e->labels, loc->failover_priority[k]);
				if (a == NULL || b == NULL || strcmp(a, b) != 0)
					break;
				k++;
			}
			e->priority = (uint8_t)SN_MIN(loc->n_failover_priority - k, (size_t)200);
		}
	} else if (mine == NULL) {
		return;   /* the proxy's own locality is unknown: plain balancing */
	} else if (loc != NULL && loc->n_distribute > 0) {
		const struct cfg_locality_dist *d = NULL;
		for (size_t i = 0; i < loc->n_distribute && d == NULL; i++)
			if (loc_match(loc->distribute[i].from, mine))
				d = &loc->distribute[i];
		if (d == NULL)
			return;
		/* a rule that leaves no endpoint gets none excluded (as if absent) */
		int any = 0;
		for (size_t i = 0; i < c->n_endpoints && !any; i++)
			for (size_t k = 0; k < d->n_to && !any; k++)
				any = c->endpoints[i].locality != NULL && d->weights[k] > 0 &&
				      loc_match(d->to[k], c->endpoints[i].locality);
		if (!any)
			return;
		for (size_t i = 0; i < c->n_endpoints; i++) {
			struct sn_endpoint *e = &c->endpoints[i];
			uint32_t share = 0;
			int found = 0;
			for (size_t k = 0; k < d->n_to && !found; k++)
				if (e->locality != NULL && loc_match(d->to[k], e->locality)) {
					share = d->weights[k];
					found = 1;
				}
			/* the share of a locality is split among its endpoints by
			 * their own weights: weight x share */
			e->weight = e->weight * share;
			e->priority = share ? 0 : SN_PRIORITY_NONE;
		}
		c->locality_lb = 1;
		c->locality_shares = 1;
		c->n_priorities = 1;
		return;
	} else {
		char mr[128], mz[128], ms[128], er[128], ez[128], es[128];
		loc_part(mine, 0, mr, sizeof(mr));
		loc_part(mine, 1, mz, sizeof(mz));
		loc_part(mine, 2, ms, sizeof(ms));
		const char *failover_to = NULL;
		for (size_t i = 0; loc != NULL && i < loc->n_failover; i++)
			if (!strcmp(loc->failover_from[i], mr))
				failover_to = loc->failover_to[i];
		for (size_t i = 0; i < c->n_endpoints; i++) {
			struct sn_endpoint *e = &c->endpoints[i];
			loc_part(e->locality, 0, er, sizeof(er));
			loc_part(e->locality, 1, ez, sizeof(ez));
			loc_part(e->locality, 2, es, sizeof(es));
			if (e->locality != NULL && !strcmp(er, mr) && !strcmp(ez, mz) && !strcmp(es, ms))
				e->priority = 0;
			else if (e->locality != NULL && !strcmp(er, mr) && !strcmp(ez, mz))
				e->priority = 1;
			else if (e->locality != NULL && !strcmp(er, mr))
				e->priority = 2;
			else if (failover_to == NULL || (e->locality != NULL && !strcmp(er, failover_to)))
				e->priority = 3;
			else
				e->priority = 4;
		}
	}
	/* levels as ranks 0..n-1 */
	for (size_t i = 0; i < c->n_endpoints; i++)
		used[c->endpoints[i].priority] = 1;
	uint8_t rank[256];
	unsigned n = 0;
	for (unsigned p = 0; p < 255; p++)
		rank[p] = used[p] ? (uint8_t)n++ : 0;
	for (size_t i = 0; i < c->n_endpoints; i++)
		c->endpoints[i].priority = rank[c->endpoints[i].priority];
	c->locality_lb = n > 1;
	c->n_priorities = (uint8_t)n;
}

static void merge_one(struct sn_cluster *c, const struct cfg_policy *p)
{
	if (p->has_lb) {
		c->lb = p->lb;
		c->hash = p->hash;
	}
	if (p->warmup_ms) {
		c->warmup_ms = p->warmup_ms;
		c->warmup_min_pct = p->warmup_min_pct;
		c->warmup_aggression = p->warmup_aggression;
	}
	if (p->has_pool)
		apply_pool(c, p);
	if (p->outlier.enabled)
		c->outlier = p->outlier;
	if (p->has_tls) {
		c->tls_mode = p->tls_mode;
		c->origin = p->origin;
		c->tls_set = 1;
	}
}

/* A policy, then its portLevelSettings for port. */
static void merge_policy(struct sn_cluster *c, const struct cfg_policy *p, uint16_t port)
{
	merge_one(c, p);
	for (size_t i = 0; i < p->n_ports; i++)
		if (p->ports[i].port == port)
			merge_one(c, &p->ports[i].p);
}

static long get_cluster(struct tr *t, const struct tr_svc *sv, size_t port_idx, const struct cfg_subset *subset,
			const struct tr_dr *dr)
{
	const struct cfg_svc_port *sp = &sv->cs->ports[port_idx];
	for (size_t i = 0; i < t->n_clusters; i++) {
		struct sn_cluster *c = &t->clusters[i];
		if (c->port == sp->port && !strcmp(c->service, sv->fqdn) &&
		    ((subset == NULL && c->subset == NULL) ||
		     (subset != NULL && c->subset != NULL && !strcmp(c->subset, subset->name))))
			return (long)i;
	}
	if (t->n_clusters == t->cap_clusters) {
		size_t cap = t->cap_clusters ? t->cap_clusters * 2 : 16;
		struct sn_cluster *nc = realloc(t->clusters, cap * sizeof(*nc));
		if (nc == NULL) {
			t->oom = 1;
			return -1;
		}
		t->clusters = nc;
		t->cap_clusters = cap;
	}
	struct sn_cluster *c = &t->clusters[t->n_clusters];
	memset(c, 0, sizeof(*c));
	c->name = sn_arena_printf(t->a, "outbound|%u|%s|%s", sp->port, subset ? subset->name : "", sv->fqdn);
	c->service = sdup(t, sv->fqdn);
	c->service_name = sdup(t, sv->se ? sv->fqdn : sv->res->name);
	c->namespace_ = sdup(t, sv->res->namespace_);
	c->port = sp->port;
	c->http2 = protocol_is_h2(port_protocol(sp));
	c->subset = subset ? sdup(t, subset->name) : NULL;
	c->lb = SN_LB_P2C_EWMA;
	static const struct cfg_policy none;
	apply_pool(c, &none);
	if (dr != NULL) {
		/* Istio's merge: the rule's policy, its settings for this port,
		 * the subset's, the subset's for this port -- each
		 * loadBalancer / connectionPool / outlierDetection / tls given
		 * replacing the one before as a whole. */
		merge_policy(c, &dr->dr->policy, sp->port);
		if (subset != NULL)
			merge_policy(c, &subset->policy, sp->port);
	}
	/* the policies' strings live in the set's arena: the snapshot's own */
	c->origin.ca_file = sdup(t, c->origin.ca_file);
	c->origin.cert_file = sdup(t, c->origin.cert_file);
	c->origin.key_file = sdup(t, c->origin.key_file);
	c->origin.credential = sdup(t, c->origin.credential);
	c->origin.sni = sdup(t, c->origin.sni);
	if (c->origin.n_sans) {
		char **sans = sn_arena_new_array(t->a, char *, c->origin.n_sans);
		for (size_t i = 0; sans != NULL && i < c->origin.n_sans; i++)
			sans[i] = sdup(t, c->origin.sans[i]);
		if (sans == NULL)
			t->oom = 1;
		c->origin.sans = sans;
	}
	c->hash.name = sdup(t, c->hash.name);
	c->hash.cookie_path = sdup(t, c->hash.cookie_path);
	if (c->name == NULL)
		t->oom = 1;
	add_endpoints(t, c, sv, sp, subset ? &subset->labels : NULL);
	/* locality: with outlierDetection only, as Istio (it needs ejection
	 * to fail over); a subset's localityLbSetting replaces the rule's */
	const struct cfg_locality *loc = subset != NULL && subset->policy.locality.set ? &subset->policy.locality
					 : dr != NULL ? &dr->dr->policy.locality : NULL;
	if (c->outlier.enabled && !(loc != NULL && loc->disabled))
		apply_locality(t, c, loc);
	for (size_t i = 0; i < c->n_endpoints; i++) {
		if (c->endpoints[i].priority == SN_PRIORITY_NONE)
			continue;
		c->weight_total += c->endpoints[i].weight;
		if (c->endpoints[i].weight != c->endpoints[0].weight)
			c->weighted = 1;
	}
	return (long)t->n_clusters++;
}

/* Room for one more compiled regex in the snapshot's list (freed with
 * it). Returns -1 out of memory. */
static int regex_keep(struct tr *t)
{
	if (t->cs->n_regexes == t->cs->cap_regexes) {
		size_t cap = t->cs->cap_regexes ? t->cs->cap_regexes * 2 : 8;
		regex_t **nr = realloc(t->cs->regexes, cap * sizeof(*nr));
		if (nr == NULL) {
			t->oom = 1;
			return -1;
		}
		t->cs->regexes = nr;
		t->cs->cap_regexes = cap;
	}
	return 0;
}

/* ---- routes --------------------------------------------------------- */

static int copy_str_match(struct tr *t, const struct sn_str_match *in, struct sn_str_match *out)
{
	*out = *in;
	out->re = NULL;
	out->value = sdup(t, in->value);
	if (in->kind != SN_MATCH_REGEX)
		return 0;
	if (regex_keep(t) != 0)
		return -1;
	char err[128];
	if (cfg_regex_compile(in->value, in->ignore_case, &out->re, err, sizeof(err)) != 0) {
		t->oom = 1; /* validated at load: only memory can fail here */
		return -1;
	}
	t->cs->regexes[t->cs->n_regexes++] = out->re;
	return 0;
}

static void copy_kv(struct tr *t, const struct sn_kv_match *in, size_t n, struct sn_kv_match **out, size_t *n_out)
{
	*out = NULL;
	*n_out = 0;
	if (n == 0)
		return;
	*out = sn_arena_new_array(t->a, struct sn_kv_match, n);
	if (*out == NULL) {
		t->oom = 1;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		(*out)[i].name = sdup(t, in[i].name);
		copy_str_match(t, &in[i].m, &(*out)[i].m);
	}
	*n_out = n;
}

static void copy_ops_list(struct tr *t, const struct sn_header_op *in, size_t n, struct sn_header_op **out,
			  size_t *n_out)
{
	*out = NULL;
	*n_out = 0;
	if (n == 0)
		return;
	*out = sn_arena_new_array(t->a, struct sn_header_op, n);
	if (*out == NULL) {
		t->oom = 1;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		(*out)[i].name = sdup(t, in[i].name);
		(*out)[i].value = sdup(t, in[i].value);
	}
	*n_out = n;
}

static void copy_ops(struct tr *t, const struct sn_header_ops *in, struct sn_header_ops *out)
{
	copy_ops_list(t, in->set, in->n_set, &out->set, &out->n_set);
	copy_ops_list(t, in->add, in->n_add, &out->add, &out->n_add);
	copy_ops_list(t, in->remove, in->n_remove, &out->remove, &out->n_remove);
}

static int gateways_include_mesh(const struct cfg_match *m)
{
	if (m->n_gateways == 0)
		return 1;
	for (size_t i = 0; i < m->n_gateways; i++)
		if (!strcmp(m->gateways[i], "mesh"))
			return 1;
	return 0;
}

/* A match's gateways (when set) replace the VirtualService's: does the
 * match apply where routes are being built (the mesh, or t->gw_cur)? */
static int match_applies(const struct tr *t, const struct sn_resource *vs, const struct cfg_match *m)
{
	if (t->gw_cur == NULL)
		return gateways_include_mesh(m);
	for (size_t i = 0; i < m->n_gateways; i++)
		if (cfg_gateway_ref_names(m->gateways[i], vs->namespace_, t->gw_cur->namespace_, t->gw_cur->name))
			return 1;
	return m->n_gateways == 0;
}

static void ports_list(const struct tr_svc *sv, char *buf, size_t size)
{
	size_t off = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < sv->cs->n_ports && off + 8 < size; i++)
		off += (size_t)snprintf(buf + off, size - off, "%s%u", i ? ", " : "", sv->cs->ports[i].port);
}

/* Cluster for one destination (a Service or a ServiceEntry host); -1 on
 * error (reported if report). */
static long resolve_dest(struct tr *t, const struct sn_resource *r, const struct cfg_dest *d,
			 const struct tr_svc *vh_svc, uint16_t vh_port, int report)
{
	char field[600];
	/* a Gateway API route's backendRef says name and port */
	const char *host_f = sn_kind_is_gwapi_route(r->kind) ? "name" : "host";
	const char *port_f = sn_kind_is_gwapi_route(r->kind) ? "port" : "port.number";
	assert(d->host != NULL);  /* required at load: a route without one was refused */
	if (d->host == NULL)
		return -1; /* refused at load; defensive */
	if (d->ref_ns != NULL &&
	    !cfg_reference_granted(t->set->head, r->kind, r->namespace_, d->ref_ns, "Service", d->host)) {
		/* the Gateway API's rule: no grant there, no reference */
		snprintf(field, sizeof(field), "%s.namespace", d->path);
		if (report)
			tr_diag(t, SN_DIAG_WARNING, r, d->host_loc, field,
				"backendRef to Service %s in namespace %s is not allowed: no ReferenceGrant in %s lets "
				"%ss of namespace %s refer to it (%s; add one with from: [{group: "
				"gateway.networking.k8s.io, kind: %s, namespace: %s}], to: [{group: \"\", kind: Service}])",
				d->host, d->ref_ns, d->ref_ns, sn_resource_kind_str(r->kind), r->namespace_,
				r->kind == SN_KIND_TCP_ROUTE || r->kind == SN_KIND_TLS_ROUTE
					? "connections are not sent to this backend"
					: "requests for this backend answer 500",
				sn_resource_kind_str(r->kind), r->namespace_);
		return -1;
	}
	char *fqdn = resolve_host(t, d->host, d->ref_ns != NULL ? d->ref_ns : r->namespace_);
	if (fqdn == NULL) {
		t->oom = 1;
		return -1;
	}
	struct tr_svc *sv = find_svc(t, fqdn);
	if (sv == NULL) {
		snprintf(field, sizeof(field), "%s.%s", d->path, host_f);
		if (report)
			tr_diag(t, SN_DIAG_ERROR, r, d->host_loc, field,
				"destination host \"%s\" (%s) is not a known Service nor a ServiceEntry host; define a "
				"Service named \"%s\" in namespace %s, a ServiceEntry with this host, or fix the host",
				d->host, fqdn, d->host, r->namespace_);
		return -1;
	}
	size_t pi = (size_t)-1;
	if (d->port) {
		for (size_t i = 0; i < sv->cs->n_ports; i++)
			if (sv->cs->ports[i].port == d->port)
				pi = i;
		if (pi == (size_t)-1) {
			char pl[200];
			ports_list(sv, pl, sizeof(pl));
			snprintf(field, sizeof(field), "%s.%s", d->path, port_f);
			if (report)
				tr_diag(t, SN_DIAG_ERROR, r, d->host_loc, field,
					"port %u is not a port of Service %s (its ports: %s); use one of them",
					d->port, sv->fqdn, pl[0] ? pl : "none");
			return -1;
		}
	} else if (sv->cs->n_ports == 0) {
		snprintf(field, sizeof(field), "%s.%s", d->path, host_f);
		if (report)
			tr_diag(t, SN_DIAG_ERROR, r, d->host_loc, field,
				"Service %s has no ports; add spec.ports to the Service", sv->fqdn);
		return -1;
	} else if (sv->cs->n_ports == 1) {
		pi = 0;
	} else {
		/* Several ports: follow the port the request came on when the
		 * destination is the vhost's own service (Istio's behaviour). */
		for (size_t i = 0; vh_port && i < sv->cs->n_ports; i++)
			if (sv->cs->ports[i].port == vh_port && (sv == vh_svc || vh_svc == NULL))
				pi = i;
		if (pi == (size_t)-1 && sv != vh_svc) {
			for (size_t i = 0; vh_port && i < sv->cs->n_ports; i++)
				if (sv->cs->ports[i].port == vh_port)
					pi = i;
		}
		if (pi == (size_t)-1) {
			char pl[200];
			ports_list(sv, pl, sizeof(pl));
			snprintf(field, sizeof(field), "%s.port", d->path);
			if (report)
				tr_diag(t, SN_DIAG_ERROR, r, d->host_loc, field,
					"Service %s has several ports (%s); set destination.port.number", sv->fqdn, pl);
			return -1;
		}
	}
	const struct tr_dr *dr = find_dr(t, sv->fqdn);
	const struct cfg_subset *subset = NULL;
	if (d->subset != NULL) {
		for (size_t i = 0; dr && i < dr->dr->n_subsets; i++)
			if (!strcmp(dr->dr->subsets[i].name, d->subset))
				subset = &dr->dr->subsets[i];
		if (subset == NULL) {
			snprintf(field, sizeof(field), "%s.subset", d->path);
			if (report)
				tr_diag(t, SN_DIAG_ERROR, r, d->subset_loc, field,
					"subset \"%s\" is not defined by any DestinationRule for %s; define it in a "
					"DestinationRule's subsets or fix the name", d->subset, sv->fqdn);
			return -1;
		}
	}
	return get_cluster(t, sv, pi, subset, dr);
}

/* Appends rule i of VirtualService (or HTTPRoute) r to vh->routes, which
 * has room. vh_svc/vh_port: the Service and port this vhost is for
 * (NULL/0 for hosts that are not Services). */
static void build_rule(struct tr *t, struct sn_vhost *vh, const struct sn_resource *r, const struct cfg_vs *vs,
		       size_t i, const struct tr_svc *vh_svc, uint16_t vh_port, int report)
{
	const struct sn_labels *proxy_labels = t->id ? t->id->labels : NULL;
	static const struct sn_labels no_labels;
	if (proxy_labels == NULL)
		proxy_labels = &no_labels;

	{
		const struct cfg_http *h = &vs->http[i];
		struct sn_http_route *rt = &vh->routes[vh->n_routes];
		memset(rt, 0, sizeof(*rt));

		/* Matches that cannot apply to this proxy are dropped; a rule
		 * whose matches are all dropped never matches. */
		size_t keep = 0;
		if (h->n_matches) {
			rt->matches = sn_arena_new_array(t->a, struct sn_route_match, h->n_matches);
			if (rt->matches == NULL) {
				t->oom = 1;
				return;
			}
		}
		for (size_t j = 0; j < h->n_matches; j++) {
			const struct cfg_match *cm = &h->matches[j];
			if (!match_applies(t, r, cm))
				continue;
			if (cm->has_source_labels && !sn_labels_match(&cm->source_labels, proxy_labels))
				continue;
			if (cm->source_namespace && strcmp(cm->source_namespace, t->ns) != 0)
				continue;
			if (cm->m.port && vh_port && cm->m.port != vh_port)
				continue;
			struct sn_route_match *m = &rt->matches[keep++];
			m->name = sdup(t, cm->m.name);
			copy_str_match(t, &cm->m.uri, &m->uri);
			copy_str_match(t, &cm->m.method, &m->method);
			copy_str_match(t, &cm->m.authority, &m->authority);
			copy_str_match(t, &cm->m.scheme, &m->scheme);
			copy_kv(t, cm->m.headers, cm->m.n_headers, &m->headers, &m->n_headers);
			copy_kv(t, cm->m.without_headers, cm->m.n_without_headers, &m->without_headers,
				&m->n_without_headers);
			copy_kv(t, cm->m.query_params, cm->m.n_query_params, &m->query_params, &m->n_query_params);
			m->port = cm->m.port;
		}
		if (h->n_matches && keep == 0)
			return;
		rt->n_matches = keep;

		if (h->n_dests) {
			rt->dests = sn_arena_new_array(t->a, struct sn_route_dest, h->n_dests);
			if (rt->dests == NULL) {
				t->oom = 1;
				return;
			}
		}
		for (size_t j = 0; j < h->n_dests; j++) {
			long ci = resolve_dest(t, r, &h->dests[j], vh_svc, vh_port, report);
			if (ci < 0)
				continue;
			struct sn_route_dest *d = &rt->dests[rt->n_dests++];
			d->cluster = (uint32_t)ci;
			d->weight = h->dests[j].weight;
			rt->total_weight += d->weight;
			copy_ops(t, &h->dests[j].req, &d->request_ops);
			copy_ops(t, &h->dests[j].resp, &d->response_ops);
		}
		rt->name = h->name ? sdup(t, h->name) : sn_arena_printf(t->a, "%s.http[%zu]", r->name, i);
		rt->origin = sn_arena_printf(t->a, "%s %s/%s, %s:%d", sn_resource_kind_str(r->kind), r->namespace_,
					     r->name, r->file, h->loc.line);
		rt->vs_namespace = sdup(t, r->namespace_);
		rt->vs_name = sdup(t, r->name);
		rt->timeout_ms = h->timeout_ms;
		rt->retry = h->retry;
		if (h->retry.n_status_codes) {
			rt->retry.status_codes = sn_arena_new_array(t->a, uint16_t, h->retry.n_status_codes);
			if (rt->retry.status_codes == NULL)
				t->oom = 1;
			else
				memcpy(rt->retry.status_codes, h->retry.status_codes,
				       h->retry.n_status_codes * sizeof(uint16_t));
		}
		rt->fault = h->fault;
		copy_ops(t, &h->req, &rt->request_ops);
		copy_ops(t, &h->resp, &rt->response_ops);
		rt->rewrite_uri = sdup(t, h->rewrite_uri);
		if (h->rewrite_regex != NULL && h->rewrite_sub != NULL && regex_keep(t) == 0) {
			char err[160];
			if (cfg_regex_compile_rewrite(h->rewrite_regex, h->rewrite_sub, &rt->rewrite_re, rt->rewrite_groups,
						      err, sizeof(err)) != 0) {
				t->oom = 1;   /* validated at load: only memory can fail here */
				return;
			}
			t->cs->regexes[t->cs->n_regexes++] = rt->rewrite_re;
			rt->rewrite_uri = sdup(t, h->rewrite_sub);
		}
		rt->rewrite_full = h->rewrite_full;
		rt->rewrite_authority = sdup(t, h->rewrite_authority);
		rt->direct_status = h->direct_status;
		rt->direct_body = sdup(t, h->direct_body);
		if (h->cors != NULL && (rt->cors = sn_arena_new(t->a, struct sn_cors)) != NULL) {
			const struct sn_cors *in = h->cors;
			rt->cors->origins = sn_arena_new_array(t->a, struct sn_str_match, in->n_origins ? in->n_origins : 1);
			for (size_t j = 0; rt->cors->origins && j < in->n_origins; j++)
				copy_str_match(t, &in->origins[j], &rt->cors->origins[rt->cors->n_origins++]);
			rt->cors->methods = sdup(t, in->methods);
			rt->cors->headers = sdup(t, in->headers);
			rt->cors->expose = sdup(t, in->expose);
			rt->cors->max_age = sdup(t, in->max_age);
			rt->cors->credentials = in->credentials;
			rt->cors->ignore_unmatched = in->ignore_unmatched;
		} else if (h->cors != NULL) {
			t->oom = 1;
		}
		if (h->has_redirect) {
			rt->redirect = h->redirect;
			rt->redirect.uri = sdup(t, h->redirect.uri);
			rt->redirect.authority = sdup(t, h->redirect.authority);
			rt->redirect.scheme = sdup(t, h->redirect.scheme);
		}
		if (h->n_mirrors) {
			rt->mirrors = sn_arena_new_array(t->a, struct sn_route_mirror, h->n_mirrors);
			if (rt->mirrors == NULL) {
				t->oom = 1;
				return;
			}
		}
		for (size_t j = 0; j < h->n_mirrors; j++) {
			long ci = resolve_dest(t, r, &h->mirrors[j], vh_svc, vh_port, report);
			if (ci < 0)
				continue;
			rt->mirrors[rt->n_mirrors].cluster = (uint32_t)ci;
			rt->mirrors[rt->n_mirrors++].percent = h->mirrors[j].mirror_pct;
		}
		/* an HTTPRoute rule none of whose backends resolves answers 500 */
		if (vs->gateway_api && h->n_dests && rt->n_dests == 0)
			rt->direct_status = 500;
		vh->n_routes++;
	}
}

/* One route of bytes (a tls[] or tcp[] route) for server name sni into
 * out: its destinations' clusters and weights. Returns -1 out of memory. */
static int l4_route(struct tr *t, struct sn_sni_route *out, const struct sn_resource *r,
		    const struct cfg_tls_route *tr, const char *sni, const struct tr_svc *vh_svc, uint16_t vh_port)
{
	memset(out, 0, sizeof(*out));
	out->sni = sdup(t, sni);
	out->origin = sn_arena_printf(t->a, "%s %s/%s %s, %s:%d", sn_resource_kind_str(r->kind), r->namespace_,
				      r->name, tr->path, r->file, tr->loc.line);
	out->dests = sn_arena_new_array(t->a, struct sn_route_dest, tr->n_dests ? tr->n_dests : 1);
	if (out->dests == NULL || out->origin == NULL) {
		t->oom = 1;
		return -1;
	}
	for (size_t d = 0; d < tr->n_dests; d++) {
		long ci = resolve_dest(t, r, &tr->dests[d], vh_svc, vh_port, 1);
		if (ci < 0)
			continue;
		out->dests[out->n_dests].cluster = (uint32_t)ci;
		out->dests[out->n_dests].weight = tr->dests[d].weight;
		out->total_weight += tr->dests[d].weight;
		out->n_dests++;
	}
	return 0;
}

/* A tcp[] or tls[] match for sidecars at port: the mesh's (gateways
 * absent or naming mesh) and the port's (or any). */
static int l4_match_for_mesh(const struct cfg_tls_match *tm, uint16_t port)
{
	int mesh = tm->n_gateways == 0;
	for (size_t k = 0; k < tm->n_gateways; k++)
		mesh |= !strcmp(tm->gateways[k], "mesh");
	return mesh && (tm->port == 0 || tm->port == port);
}

/* A VirtualService's tcp[] and tls[] routes for sidecars at vh's port:
 * the first tcp[] route that applies (Istio: first match wins) into
 * vh->tcp_route; each sniHost of the tls[] routes that apply, the first
 * naming it winning it, into vh->tls_routes. */
static void build_l4_routes(struct tr *t, struct sn_vhost *vh, const struct sn_resource *r, const struct cfg_vs *vs,
			    const struct tr_svc *vh_svc, uint16_t vh_port)
{
	for (size_t i = 0; i < vs->n_tcp && vh->tcp_route == NULL; i++) {
		const struct cfg_tls_route *tr = &vs->tcp[i];
		int hit = tr->n_matches == 0;
		for (size_t m = 0; m < tr->n_matches && !hit; m++)
			hit = l4_match_for_mesh(&tr->matches[m], vh_port);
		if (!hit)
			continue;
		struct sn_sni_route *out = sn_arena_new(t->a, struct sn_sni_route);
		if (out == NULL || l4_route(t, out, r, tr, "*", vh_svc, vh_port) != 0) {
			t->oom = 1;
			return;
		}
		vh->tcp_route = out;
	}
	size_t n = 0;
	for (size_t i = 0; i < vs->n_tls; i++)
		for (size_t m = 0; m < vs->tls[i].n_matches; m++)
			n += vs->tls[i].matches[m].n_sni;
	if (n == 0)
		return;
	vh->tls_routes = sn_arena_new_array(t->a, struct sn_sni_route, n);
	if (vh->tls_routes == NULL) {
		t->oom = 1;
		return;
	}
	for (size_t i = 0; i < vs->n_tls && !t->oom; i++) {
		const struct cfg_tls_route *tr = &vs->tls[i];
		for (size_t m = 0; m < tr->n_matches; m++) {
			const struct cfg_tls_match *tm = &tr->matches[m];
			if (!l4_match_for_mesh(tm, vh_port))
				continue;
			for (size_t k = 0; k < tm->n_sni; k++) {
				int dup = 0;
				for (size_t j = 0; j < vh->n_tls_routes && !dup; j++)
					dup = !strcmp(vh->tls_routes[j].sni, tm->sni_hosts[k]);
				if (!dup && l4_route(t, &vh->tls_routes[vh->n_tls_routes], r, tr, tm->sni_hosts[k], vh_svc,
						     vh_port) == 0)
					vh->n_tls_routes++;
			}
		}
	}
}

/* Builds vh->routes from a VirtualService. */
static void build_vs_routes(struct tr *t, struct sn_vhost *vh, const struct sn_resource *r, const struct cfg_vs *vs,
			    const struct tr_svc *vh_svc, uint16_t vh_port, int report)
{
	vh->routes = sn_arena_new_array(t->a, struct sn_http_route, vs->n_http ? vs->n_http : 1);
	if (vh->routes == NULL) {
		t->oom = 1;
		return;
	}
	for (size_t i = 0; i < vs->n_http && !t->oom; i++)
		build_rule(t, vh, r, vs, i, vh_svc, vh_port, report);
}

/* ---- the Gateway API's HTTPRoutes (added) ------------------------------ */

/* One match of one HTTPRoute rule (http[i]), bound where routes are built. */
struct tr_rule {
	const struct sn_resource *r;
	const struct cfg_vs *vs;
	size_t i;
};

struct tr_rules {
	struct tr_rule *v;
	size_t n, cap;
};

static void rules_add(struct tr *t, struct tr_rules *rs, const struct sn_resource *r, const struct cfg_vs *vs)
{
	if (rs->n + vs->n_http > rs->cap) {
		size_t cap = SN_MAX(rs->cap * 2, rs->n + vs->n_http + 8);
		struct tr_rule *nv = realloc(rs->v, cap * sizeof(*nv));
		if (nv == NULL) {
			t->oom = 1;
			return;
		}
		rs->v = nv;
		rs->cap = cap;
	}
	for (size_t i = 0; i < vs->n_http; i++)
		rs->v[rs->n++] = (struct tr_rule){ r, vs, i };
}

static int uri_rank(const struct sn_str_match *m)
{
	switch (m->kind) {
	case SN_MATCH_EXACT: return 3;
	case SN_MATCH_PREFIX:
	case SN_MATCH_PATH_PREFIX: return 2;
	case SN_MATCH_REGEX: return 1;
	default: return 0;
	}
}

/* The Gateway API's precedence among the matches of every route bound to
 * one host: an exact path, then the longest prefix, then a method, more
 * header matches, more query matches; then (instead of the oldest route,
 * a time Sinew's files do not carry) namespace/name, then order. */
static int rule_cmp(const void *a, const void *b)
{
	const struct tr_rule *x = a, *y = b;
	const struct sn_route_match *mx = &x->vs->http[x->i].matches[0].m, *my = &y->vs->http[y->i].matches[0].m;
	int rx = uri_rank(&mx->uri), ry = uri_rank(&my->uri);
	if (rx != ry)
		return ry - rx;
	size_t lx = mx->uri.value ? strlen(mx->uri.value) : 0, ly = my->uri.value ? strlen(my->uri.value) : 0;
	if (lx != ly)
		return lx < ly ? 1 : -1;
	if ((mx->method.kind != SN_MATCH_ANY) != (my->method.kind != SN_MATCH_ANY))
		return mx->method.kind != SN_MATCH_ANY ? -1 : 1;
	if (mx->n_headers != my->n_headers)
		return mx->n_headers < my->n_headers ? 1 : -1;
	if (mx->n_query_params != my->n_query_params)
		return mx->n_query_params < my->n_query_params ? 1 : -1;
	int c = strcmp(x->r->namespace_, y->r->namespace_);
	if (c == 0)
		c = strcmp(x->r->name, y->r->name);
	if (c == 0)
		c = x->i < y->i ? -1 : x->i > y->i;
	return c;
}

/* Builds vh->routes from the rules of every HTTPRoute bound to it, in
 * precedence order; frees rs. */
static void build_route_rules(struct tr *t, struct sn_vhost *vh, struct tr_rules *rs, const struct tr_svc *vh_svc,
			      uint16_t vh_port, int report)
{
	if (rs->n > 1)
		qsort(rs->v, rs->n, sizeof(*rs->v), rule_cmp);
	vh->routes = sn_arena_new_array(t->a, struct sn_http_route, rs->n ? rs->n : 1);
	if (vh->routes == NULL)
		t->oom = 1;
	for (size_t k = 0; k < rs->n && !t->oom; k++)
		build_rule(t, vh, rs->v[k].r, rs->v[k].vs, rs->v[k].i, vh_svc, vh_port, report);
	free(rs->v);
	memset(rs, 0, sizeof(*rs));
}

/* GAMMA: the HTTPRoutes whose parentRefs name Service sv (at port, or at
 * every port), into rs. */
static void mesh_route_rules(struct tr *t, const struct tr_svc *sv, uint16_t port, struct tr_rules *rs)
{
	for (const struct sn_resource *r = t->set->head; r && !t->oom; r = r->next) {
		if ((r->kind != SN_KIND_HTTP_ROUTE && r->kind != SN_KIND_GRPC_ROUTE) || r->invalid)
			continue;
		const struct cfg_vs *vs = r->spec;
		for (size_t p = 0; p < vs->n_parents; p++) {
			const struct cfg_parent_ref *pr = &vs->parents[p];
			if (!pr->service || (pr->port && pr->port != port))
				continue;
			char *fq = resolve_host(t, pr->name, pr->ns ? pr->ns : r->namespace_);
			if (fq == NULL) {
				t->oom = 1;
				return;
			}
			if (!strcmp(fq, sv->fqdn)) {
				rules_add(t, rs, r, vs);
				break;
			}
		}
	}
}

static struct sn_vhost *new_vhost(struct tr *t, const char *host, uint16_t port)
{
	if (t->n_vhosts == t->cap_vhosts) {
		size_t cap = t->cap_vhosts ? t->cap_vhosts * 2 : 16;
		struct sn_vhost *nv = realloc(t->vhosts, cap * sizeof(*nv));
		if (nv == NULL) {
			t->oom = 1;
			return NULL;
		}
		t->vhosts = nv;
		t->cap_vhosts = cap;
	}
	struct sn_vhost *vh = &t->vhosts[t->n_vhosts++];
	memset(vh, 0, sizeof(*vh));
	vh->host = sdup(t, host);
	vh->port = port;
	return vh;
}

static const struct tr_vs_host *find_vs_for(struct tr *t, const char *host)
{
	for (size_t i = 0; i < t->n_vsh; i++)
		if (!strcmp(t->vsh[i].host, host))
			return &t->vsh[i];
	return NULL;
}

/* ---- the whole translation ------------------------------------------ */

static int collect(struct tr *t)
{
	size_t n = t->set->count ? t->set->count : 1;
	t->svcs = sn_arena_new_array(&t->tmp, struct tr_svc, n);
	t->cap_svcs = n;
	t->drs = sn_arena_new_array(&t->tmp, struct tr_dr, n);
	if (t->svcs == NULL || t->drs == NULL)
		return -1;

	for (const struct sn_resource *r = t->set->head; r; r = r->next) {
		if (r->kind != SN_KIND_SERVICE)
			continue;
		char *fqdn = sn_arena_printf(&t->tmp, "%s.%s.svc.%s", r->name, r->namespace_, sn_cluster_domain());
		if (fqdn == NULL)
			return -1;
		sn_ascii_lower(fqdn);
		if (find_svc(t, fqdn) != NULL) {
			tr_diag(t, SN_DIAG_WARNING, r, (struct cfg_loc){ 0, 0 }, "metadata.name",
				"another Service %s/%s came first; this one is ignored", r->namespace_, r->name);
			continue;
		}
		t->svcs[t->n_svcs].res = r;
		t->svcs[t->n_svcs].cs = r->spec;
		t->svcs[t->n_svcs++].fqdn = fqdn;
	}
	/* ServiceEntry hosts, after every Service: a Service wins its host. */
	for (const struct sn_resource *r = t->set->head; r; r = r->next) {
		if (r->kind != SN_KIND_SERVICE_ENTRY)
			continue;
		const struct cfg_service_entry *se = r->spec;
		for (size_t i = 0; i < se->n_hosts; i++) {
			assert(se->hosts[i] != NULL);
			char *fqdn = entry_host(t, se->hosts[i]);
			if (fqdn == NULL)
				return -1;
			const struct tr_svc *prev = find_svc(t, fqdn);
			if (prev != NULL) {
				char field[64];
				snprintf(field, sizeof(field), "spec.hosts[%zu]", i);
				if (prev->se == NULL)
					tr_diag(t, SN_DIAG_WARNING, r, se->host_locs[i], field,
						"Service %s/%s also defines host %s; the Service wins and this "
						"ServiceEntry is ignored for that host", prev->res->namespace_,
						prev->res->name, fqdn);
				else if (prev->res != r)
					tr_diag(t, SN_DIAG_WARNING, r, se->host_locs[i], field,
						"ServiceEntry %s/%s (%s:%d) also defines host %s and comes first; this one "
						"is ignored for that host (merge them into one)", prev->res->namespace_,
						prev->res->name, prev->res->file, prev->res->line, fqdn);
				continue;
			}
			if (t->n_svcs == t->cap_svcs) {
				size_t cap = t->cap_svcs * 2;
				struct tr_svc *nv = sn_arena_new_array(&t->tmp, struct tr_svc, cap);
				if (nv == NULL)
					return -1;
				memcpy(nv, t->svcs, t->n_svcs * sizeof(*nv));
				t->svcs = nv;
				t->cap_svcs = cap;
			}
			t->svcs[t->n_svcs].res = r;
			t->svcs[t->n_svcs].cs = &se->svc;
			t->svcs[t->n_svcs].se = se;
			t->svcs[t->n_svcs++].fqdn = fqdn;
		}
	}
	for (const struct sn_resource *r = t->set->head; r; r = r->next) {
		if (r->kind != SN_KIND_DESTINATION_RULE)
			continue;
		const struct cfg_dr *dr = r->spec;
		assert(dr->host != NULL);
		char *host = resolve_host(t, dr->host, r->namespace_);
		if (host == NULL)
			return -1;
		int dup = 0;
		for (size_t i = 0; i < t->n_drs; i++)
			if (!strcmp(t->drs[i].host, host)) {
				tr_diag(t, SN_DIAG_WARNING, r, dr->host_loc, "spec.host",
					"DestinationRule %s/%s for %s came first; this one is ignored",
					t->drs[i].res->namespace_, t->drs[i].res->name, host);
				dup = 1;
			}
		if (dup)
			continue;
		t->drs[t->n_drs].res = r;
		t->drs[t->n_drs].dr = dr;
		t->drs[t->n_drs++].host = host;
	}
	size_t nh = 0;
	for (const struct sn_resource *r = t->set->head; r; r = r->next)
		if (r->kind == SN_KIND_VIRTUAL_SERVICE)
			nh += ((const struct cfg_vs *)r->spec)->n_hosts;
	t->vsh = sn_arena_new_array(&t->tmp, struct tr_vs_host, nh ? nh : 1);
	if (t->vsh == NULL)
		return -1;
	for (const struct sn_resource *r = t->set->head; r; r = r->next) {
		if (r->kind != SN_KIND_VIRTUAL_SERVICE)
			continue;
		const struct cfg_vs *vs = r->spec;
		if (!vs->for_mesh)
			continue;
		for (size_t i = 0; i < vs->n_hosts; i++) {
			assert(vs->hosts[i] != NULL);
			char *host = resolve_host(t, vs->hosts[i], r->namespace_);
			if (host == NULL)
				return -1;
			const struct tr_vs_host *prev = find_vs_for(t, host);
			if (prev != NULL) {
				if (prev->res != r) {
					char field[64];
					snprintf(field, sizeof(field), "spec.hosts[%zu]", i);
					tr_diag(t, SN_DIAG_WARNING, r, vs->host_locs[i], field,
						"VirtualService %s/%s (%s:%d) also routes %s and comes first; for "
						"sidecars this one is ignored for that host (merge them into one)",
						prev->res->namespace_, prev->res->name, prev->res->file, prev->res->line,
						host);
				}
				continue;
			}
			t->vsh[t->n_vsh].host = host;
			t->vsh[t->n_vsh].res = r;
			t->vsh[t->n_vsh++].vs = vs;
		}
	}
	return 0;
}

static void build(struct tr *t)
{
	/* Services: a default cluster per port and a vhost per port. */
	t->s->services = sn_arena_new_array(t->a, struct sn_service, t->n_svcs ? t->n_svcs : 1);
	if (t->s->services == NULL) {
		t->oom = 1;
		return;
	}
	for (size_t i = 0; i < t->n_svcs; i++) {
		const struct tr_svc *sv = &t->svcs[i];
		struct sn_service *out = &t->s->services[t->s->n_services++];
		out->name = sdup(t, sv->se ? sv->fqdn : sv->res->name);
		out->namespace_ = sdup(t, sv->res->namespace_);
		out->fqdn = sdup(t, sv->fqdn);
		if (sv->se != NULL) {
			out->service_entry = sn_arena_printf(t->a, "%s/%s", sv->res->namespace_, sv->res->name);
			out->resolution = sdup(t, cfg_se_resolution_str(sv->se->resolution));
			out->mesh_internal = sv->se->mesh_internal;
			if (sv->se->n_addresses) {
				out->addresses = sn_arena_new_array(t->a, char *, sv->se->n_addresses);
				if (out->addresses == NULL) {
					t->oom = 1;
					return;
				}
				for (size_t k = 0; k < sv->se->n_addresses; k++)
					out->addresses[k] = sdup(t, sv->se->addresses[k]);
				out->n_addresses = sv->se->n_addresses;
			}
			if (out->service_entry == NULL)
				t->oom = 1;
		}
		out->ports = sn_arena_new_array(t->a, struct sn_service_port, sv->cs->n_ports ? sv->cs->n_ports : 1);
		if (out->ports == NULL) {
			t->oom = 1;
			return;
		}
		const struct tr_dr *dr = find_dr(t, sv->fqdn);
		for (size_t p = 0; p < sv->cs->n_ports; p++) {
			const struct cfg_svc_port *sp = &sv->cs->ports[p];
			struct sn_service_port *op = &out->ports[out->n_ports++];
			op->name = sdup(t, sp->name);
			op->port = sp->port;
			op->target_port = sp->target_port ? sp->target_port : sp->port;
			op->protocol = sdup(t, port_protocol(sp));
			long ci = get_cluster(t, sv, p, NULL, dr);
			if (ci < 0)
				return;
			op->default_cluster = (uint32_t)ci;
		}
	}

	/* vhosts for Services: the VirtualService's rules, else a catch-all. */
	for (size_t i = 0; i < t->n_svcs; i++) {
		const struct tr_svc *sv = &t->svcs[i];
		const struct tr_vs_host *vsh = find_vs_for(t, sv->fqdn);
		for (size_t p = 0; p < sv->cs->n_ports; p++) {
			uint16_t port = sv->cs->ports[p].port;
			struct tr_rules rs = { 0 };
			mesh_route_rules(t, sv, port, &rs);
			struct sn_vhost *vh = new_vhost(t, sv->fqdn, port);
			if (vh == NULL) {
				free(rs.v);
				return;
			}
			if (vsh != NULL) {
				if (rs.n)
					tr_diag(t, SN_DIAG_WARNING, rs.v[0].r, (struct cfg_loc){ 0, 0 }, "spec.parentRefs",
						"VirtualService %s/%s (%s:%d) also routes %s; the VirtualService wins and "
						"this HTTPRoute is ignored there (use one or the other)",
						vsh->res->namespace_, vsh->res->name, vsh->res->file, vsh->res->line,
						sv->fqdn);
				free(rs.v);
				build_vs_routes(t, vh, vsh->res, vsh->vs, sv, port, 1);
				build_l4_routes(t, vh, vsh->res, vsh->vs, sv, port);
				continue;
			}
			if (rs.n) {
				build_route_rules(t, vh, &rs, sv, port, 1);
				continue;
			}
			vh->routes = sn_arena_new(t->a, struct sn_http_route);
			struct sn_route_dest *d = sn_arena_new(t->a, struct sn_route_dest);
			if (vh->routes == NULL || d == NULL) {
				t->oom = 1;
				return;
			}
			d->cluster = t->s->services[i].ports[p].default_cluster;
			d->weight = 100;
			vh->routes[0].name = sdup(t, "default");
			vh->routes[0].origin = sn_arena_printf(t->a, "%s %s/%s, %s:%d", sn_resource_kind_str(sv->res->kind),
							       sv->res->namespace_, sv->res->name, sv->res->file,
							       sv->res->line);
			vh->routes[0].dests = d;
			vh->routes[0].n_dests = 1;
			vh->routes[0].total_weight = 100;
			vh->routes[0].retry.attempts = 2;
			vh->routes[0].retry.retry_on = SN_RETRY_CONNECT_FAILURE | SN_RETRY_REFUSED_STREAM;
			vh->n_routes = 1;
		}
	}

	/* vhosts for VirtualService hosts that are not Services (wildcards,
	 * external names): every port. */
	for (size_t i = 0; i < t->n_vsh; i++) {
		const struct tr_vs_host *vsh = &t->vsh[i];
		if (find_svc(t, vsh->host) != NULL)
			continue;
		struct sn_vhost *vh = new_vhost(t, vsh->host, 0);
		if (vh == NULL)
			return;
		build_vs_routes(t, vh, vsh->res, vsh->vs, NULL, 0, 1);
	}
}

/* ---- gateways (added): a gateway proxy's listeners -------------------- */

struct tr_gwl {
	struct sn_gw_listener l;
	const struct sn_resource **vs_of;    /* the VirtualService of each vhost */
	struct sn_vhost *vh;                 /* malloc'd while building */
	size_t n, cap;
	struct sn_sni_route *sni;            /* passthrough: malloc'd while building */
	size_t n_sni, cap_sni;
	struct sn_gw_cert *certs;            /* HTTPS: each server host's certificate */
	size_t n_certs, cap_certs;
	int other_certs;                     /* a server with another certificate than the first's */
};

/* The hosts both patterns admit when one holds the other: the narrower. */
static const char *host_meet(const char *a, const char *b)
{
	if (!strcmp(a, b) || wildcard_match(b, a))
		return a;
	if (wildcard_match(a, b))
		return b;
	return NULL;
}

static struct sn_vhost *gwl_vhost(struct tr *t, struct tr_gwl *g, const char *host, const struct sn_resource *vs)
{
	for (size_t i = 0; i < g->n; i++)
		if (!strcmp(g->vh[i].host, host)) {
			/* (every Gateway at once merges ports of gateways that may
			 * never share a proxy: no warning then) */
			if (g->vs_of[i] != vs && t->id->gateway != SN_GATEWAY_ANY)
				tr_diag(t, SN_DIAG_WARNING, vs, (struct cfg_loc){ 0, 0 }, "spec.hosts",
					"%s %s/%s (%s:%d) also routes %s on gateway port %u and comes first; "
					"this one is ignored there (merge them into one)",
					sn_resource_kind_str(g->vs_of[i]->kind), g->vs_of[i]->namespace_,
					g->vs_of[i]->name, g->vs_of[i]->file, g->vs_of[i]->line, host, g->l.port);
			return NULL;
		}
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 8;
		struct sn_vhost *nv = realloc(g->vh, cap * sizeof(*nv));
		const struct sn_resource **no = nv ? realloc(g->vs_of, cap * sizeof(*no)) : NULL;
		if (nv != NULL)
			g->vh = nv;
		if (no == NULL) {
			t->oom = 1;
			return NULL;
		}
		g->vs_of = no;
		g->cap = cap;
	}
	struct sn_vhost *vh = &g->vh[g->n];
	memset(vh, 0, sizeof(*vh));
	vh->host = sdup(t, host);
	g->vs_of[g->n++] = vs;
	return vh;
}

/* 1 if VirtualService r names Gateway gw in spec.gateways. */
static int vs_bound_to(const struct sn_resource *r, const struct sn_resource *gw)
{
	const struct cfg_vs *vs = r->spec;
	for (size_t i = 0; i < vs->n_gateways; i++)
		if (cfg_gateway_ref_names(vs->gateways[i], r->namespace_, gw->namespace_, gw->name))
			return 1;
	return 0;
}

/* The VirtualServices bound to server s of Gateway gw, into listener g. */
static void gateway_routes(struct tr *t, const struct sn_resource *gw, const struct cfg_gw_server *s,
			   struct tr_gwl *g)
{
	for (const struct sn_resource *r = t->set->head; r && !t->oom; r = r->next) {
		if (r->kind != SN_KIND_VIRTUAL_SERVICE || r->invalid)
			continue;
		const struct cfg_vs *vs = r->spec;
		if (!vs_bound_to(r, gw))
			continue;
		t->gw_cur = gw;
		for (size_t h = 0; h < vs->n_hosts && !t->oom; h++) {
			char *host = resolve_host(t, vs->hosts[h], r->namespace_);
			if (host == NULL) {
				t->oom = 1;
				break;
			}
			for (size_t k = 0; k < s->n_hosts; k++) {
				const struct cfg_gw_host *sh = &s->hosts[k];
				/* "ns/host": that namespace's VirtualServices only; "./host": the Gateway's */
				if (sh->ns != NULL && strcmp(!strcmp(sh->ns, ".") ? gw->namespace_ : sh->ns, r->namespace_))
					continue;
				const char *meet = host_meet(host, sh->host);
				if (meet == NULL)
					continue;
				struct sn_vhost *vh = gwl_vhost(t, g, meet, r);
				if (vh != NULL)
					build_vs_routes(t, vh, r, vs, find_svc(t, meet), 0, 1);
				break;
			}
		}
		t->gw_cur = NULL;
	}
}

/* Whether route r (a Gateway API kind) attaches to listener s of the
 * Gateway API's Gateway gw: a parentRef names the Gateway (and the
 * listener, or its port, when given), the listener takes r's kind, and
 * r's namespace (allowedRoutes from: Same, ".", or All, NULL). */
static int gwapi_attached(const struct sn_resource *r, const struct sn_resource *gw, const struct cfg_gw_server *s)
{
	if (r->invalid || s->n_hosts == 0 || !(s->route_kinds & (1u << r->kind)))
		return 0;
	const struct cfg_vs *vs = r->spec;
	int bound = 0;
	for (size_t p = 0; p < vs->n_parents && !bound; p++) {
		const struct cfg_parent_ref *pr = &vs->parents[p];
		bound = cfg_parent_names_gateway(pr, r->namespace_, gw->namespace_, gw->name) &&
			(pr->section == NULL || (s->name != NULL && !strcmp(pr->section, s->name))) &&
			(pr->port == 0 || pr->port == s->port);
	}
	return bound && (s->hosts[0].ns == NULL || !strcmp(r->namespace_, gw->namespace_));
}

/* The HTTPRoutes (and GRPCRoutes) attached to listener s of the Gateway API's Gateway gw,
 * into g: per host where a route's hostnames (every host when it has
 * none) meet the listener's hostname, the rules of every such route in
 * precedence order. */
static void gateway_api_routes(struct tr *t, const struct sn_resource *gw, const struct cfg_gw_server *s,
			       struct tr_gwl *g)
{
	struct gh {
		const char *host;
		const struct sn_resource *first;
		struct tr_rules rs;
	} *hv = NULL;
	size_t nh = 0, caph = 0;
	if (s->n_hosts == 0)
		return;
	const struct cfg_gw_host *lh = &s->hosts[0];
	for (const struct sn_resource *r = t->set->head; r && !t->oom; r = r->next) {
		if ((r->kind != SN_KIND_HTTP_ROUTE && r->kind != SN_KIND_GRPC_ROUTE) || !gwapi_attached(r, gw, s))
			continue;
		const struct cfg_vs *vs = r->spec;
		for (size_t k = 0; k < (vs->n_hosts ? vs->n_hosts : 1) && !t->oom; k++) {
			const char *meet = host_meet(vs->n_hosts ? vs->hosts[k] : "*", lh->host);
			if (meet == NULL)
				continue;
			size_t j = 0;
			while (j < nh && strcmp(hv[j].host, meet) != 0)
				j++;
			if (j == nh) {
				if (nh == caph) {
					size_t cap = caph ? caph * 2 : 4;
					struct gh *nv = realloc(hv, cap * sizeof(*nv));
					if (nv == NULL) {
						t->oom = 1;
						break;
					}
					hv = nv;
					caph = cap;
				}
				hv[nh++] = (struct gh){ meet, r, { 0 } };
			}
			rules_add(t, &hv[j].rs, r, vs);
		}
	}
	t->gw_cur = gw;
	for (size_t j = 0; j < nh; j++) {
		struct sn_vhost *vh = t->oom ? NULL : gwl_vhost(t, g, hv[j].host, hv[j].first);
		if (vh != NULL)
			build_route_rules(t, vh, &hv[j].rs, find_svc(t, hv[j].host), 0, 1);
		free(hv[j].rs.v);
	}
	t->gw_cur = NULL;
	free(hv);
}

/* The tls[] routes of the VirtualServices bound to passthrough server s
 * of Gateway gw, into g: one route per server name where a match's
 * sniHosts meet the server's hosts, the first VirtualService to name it
 * winning it. */
/* Whether r routes bytes at server s of Gateway gw: -1 not a route of the
 * kind that binds there (a VirtualService to Istio's Gateway, the Gateway
 * API's gwapi_kind to its own), else whether r is bound to it (a
 * VirtualService match's gateways may still bind it when 0). */
static int l4_bound(const struct sn_resource *r, const struct sn_resource *gw, const struct cfg_gw_server *s,
		    enum sn_resource_kind gwapi_kind)
{
	const struct cfg_gateway *g = gw->spec;
	if (r->invalid || r->kind != (g->gateway_api ? gwapi_kind : SN_KIND_VIRTUAL_SERVICE))
		return -1;
	return g->gateway_api ? gwapi_attached(r, gw, s) : vs_bound_to(r, gw);
}

static void gateway_tls_routes(struct tr *t, const struct sn_resource *gw, const struct cfg_gw_server *s,
			       struct tr_gwl *g)
{
	for (const struct sn_resource *r = t->set->head; r && !t->oom; r = r->next) {
		int bound = l4_bound(r, gw, s, SN_KIND_TLS_ROUTE);
		if (bound < 0)
			continue;
		const struct cfg_vs *vs = r->spec;
		for (size_t i = 0; i < vs->n_tls && !t->oom; i++) {
			const struct cfg_tls_route *tr = &vs->tls[i];
			for (size_t m = 0; m < tr->n_matches; m++) {
				const struct cfg_tls_match *tm = &tr->matches[m];
				int here = tm->n_gateways == 0 ? bound : 0;
				for (size_t k = 0; k < tm->n_gateways && !here; k++)
					here = cfg_gateway_ref_names(tm->gateways[k], r->namespace_, gw->namespace_, gw->name);
				if (!here || (tm->port && tm->port != s->port))
					continue;
				for (size_t n = 0; n < tm->n_sni && !t->oom; n++) {
					const char *meet = NULL;
					for (size_t h = 0; h < s->n_hosts && meet == NULL; h++) {
						const struct cfg_gw_host *sh = &s->hosts[h];
						if (sh->ns != NULL &&
						    strcmp(!strcmp(sh->ns, ".") ? gw->namespace_ : sh->ns, r->namespace_))
							continue;
						meet = host_meet(tm->sni_hosts[n], sh->host);
					}
					if (meet == NULL)
						continue;
					int dup = 0;
					for (size_t k = 0; k < g->n_sni && !dup; k++)
						dup = !strcmp(g->sni[k].sni, meet);
					if (dup) {
						if (t->id->gateway != SN_GATEWAY_ANY)
							tr_diag(t, SN_DIAG_WARNING, r, tr->loc, tr->path,
								"server name %s on gateway port %u is routed by an earlier tls "
								"route; this one is ignored there", meet, s->port);
						continue;
					}
					if (g->n_sni == g->cap_sni) {
						size_t cap = g->cap_sni ? g->cap_sni * 2 : 4;
						struct sn_sni_route *nv = realloc(g->sni, cap * sizeof(*nv));
						if (nv == NULL) {
							t->oom = 1;
							return;
						}
						g->sni = nv;
						g->cap_sni = cap;
					}
					if (l4_route(t, &g->sni[g->n_sni], r, tr, meet, NULL, 0) != 0)
						return;
					g->n_sni++;
				}
			}
		}
	}
}

/* The tcp[] route of the VirtualServices bound to TCP server s of
 * Gateway gw, into g: the first that applies at its port (Istio: the
 * first match wins) takes every connection. */
static void gateway_tcp_route(struct tr *t, const struct sn_resource *gw, const struct cfg_gw_server *s,
			      struct tr_gwl *g)
{
	for (const struct sn_resource *r = t->set->head; r && !t->oom; r = r->next) {
		int bound = l4_bound(r, gw, s, SN_KIND_TCP_ROUTE);
		if (bound < 0)
			continue;
		const struct cfg_vs *vs = r->spec;
		/* a TCPRoute has no hosts: attached is enough */
		int hosts_meet = r->kind == SN_KIND_TCP_ROUTE;
		for (size_t h = 0; h < s->n_hosts && !hosts_meet; h++) {
			const struct cfg_gw_host *sh = &s->hosts[h];
			if (sh->ns != NULL && strcmp(!strcmp(sh->ns, ".") ? gw->namespace_ : sh->ns, r->namespace_))
				continue;
			for (size_t k = 0; k < vs->n_hosts && !hosts_meet; k++)
				hosts_meet = host_meet(vs->hosts[k], sh->host) != NULL;
		}
		if (!hosts_meet)
			continue;
		for (size_t i = 0; i < vs->n_tcp && !t->oom; i++) {
			const struct cfg_tls_route *tr = &vs->tcp[i];
			int hit = tr->n_matches == 0 && bound;
			for (size_t m = 0; m < tr->n_matches && !hit; m++) {
				const struct cfg_tls_match *tm = &tr->matches[m];
				int here = tm->n_gateways == 0 ? bound : 0;
				for (size_t k = 0; k < tm->n_gateways && !here; k++)
					here = cfg_gateway_ref_names(tm->gateways[k], r->namespace_, gw->namespace_, gw->name);
				hit = here && (tm->port == 0 || tm->port == s->port);
			}
			if (!hit)
				continue;
			if (g->l.tcp_route != NULL) {
				if (t->id->gateway != SN_GATEWAY_ANY)
					tr_diag(t, SN_DIAG_WARNING, r, tr->loc, tr->path,
						"gateway port %u is routed by an earlier tcp route (%s); this one is "
						"ignored there", s->port, g->l.tcp_route->origin);
				return;
			}
			struct sn_sni_route *out = sn_arena_new(t->a, struct sn_sni_route);
			if (out == NULL) {
				t->oom = 1;
				return;
			}
			if (l4_route(t, out, r, tr, "*", NULL, 0) != 0)
				return;
			g->l.tcp_route = out;
		}
	}
}

static int same_str(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && !strcmp(a, b));
}

/* An HTTPS server's certificate, for each of its hosts (a server host
 * already given keeps its first): the listener's own (files NULL) or,
 * for a server with other files, its own, chosen by SNI. Returns 1 on
 * out of memory. */
static int gw_certs_add(struct tr *t, struct tr_gwl *g, const struct cfg_gw_server *s)
{
	int own = same_str(g->l.cert_file, s->cert_file) && same_str(g->l.key_file, s->key_file) &&
		  same_str(g->l.ca_file, s->ca_file) && same_str(g->l.credential, s->credential);
	if (!own)
		g->other_certs = 1;
	for (size_t h = 0; h < s->n_hosts; h++) {
		int dup = 0;
		for (size_t k = 0; k < g->n_certs && !dup; k++)
			dup = !strcmp(g->certs[k].host, s->hosts[h].host);
		if (dup)
			continue;
		if (g->n_certs == g->cap_certs) {
			size_t cap = g->cap_certs ? g->cap_certs * 2 : 4;
			struct sn_gw_cert *nv = realloc(g->certs, cap * sizeof(*nv));
			if (nv == NULL) {
				t->oom = 1;
				return 1;
			}
			g->certs = nv;
			g->cap_certs = cap;
		}
		struct sn_gw_cert *c = &g->certs[g->n_certs++];
		memset(c, 0, sizeof(*c));
		c->host = sdup(t, s->hosts[h].host);
		if (!own) {
			c->cert_file = sdup(t, s->cert_file);
			c->key_file = sdup(t, s->key_file);
			c->ca_file = sdup(t, s->ca_file);
			c->credential = sdup(t, s->credential);
		}
	}
	return 0;
}

static int gwl_cmp(const void *a, const void *b)
{
	const struct tr_gwl *x = a, *y = b;
	return (int)x->l.port - (int)y->l.port;
}

static void build_gateways(struct tr *t)
{
	if (t->id == NULL || !t->id->gateway)
		return;
	t->s->gateway = 1;
	static const struct sn_labels no_labels;
	const struct sn_labels *labels = t->id->labels ? t->id->labels : &no_labels;
	struct tr_gwl gl[SN_GW_LISTENERS_MAX];
	size_t ngl = 0;

	memset(gl, 0, sizeof(gl));
	for (const struct sn_resource *r = t->set->head; r && !t->oom; r = r->next) {
		if ((r->kind != SN_KIND_GATEWAY && r->kind != SN_KIND_K8S_GATEWAY) || r->invalid)
			continue;
		const struct cfg_gateway *gw = r->spec;
		if (t->id->gateway != SN_GATEWAY_ANY && !sn_labels_match(&gw->selector, labels))
			continue;
		/* the Gateway API's: served by gateway proxies of its namespace */
		if (gw->gateway_api && t->id->gateway != SN_GATEWAY_ANY && strcmp(r->namespace_, t->ns) != 0)
			continue;
		const char *servers = gw->gateway_api ? "listeners" : "servers";
		for (size_t i = 0; i < gw->n_servers && !t->oom; i++) {
			const struct cfg_gw_server *s = &gw->servers[i];
			if (!s->served)
				continue;
			struct tr_gwl *g = NULL;
			for (size_t k = 0; k < ngl && g == NULL; k++)
				if (gl[k].l.port == s->port)
					g = &gl[k];
			if (g == NULL && ngl == SN_ARRAY_LEN(gl)) {
				char field[64];
				snprintf(field, sizeof(field), "spec.%s[%zu].port", servers, i);
				tr_diag(t, SN_DIAG_WARNING, r, s->loc, field,
					"a gateway proxy listens on at most %d ports; port %u is not opened",
					SN_GW_LISTENERS_MAX, s->port);
				continue;
			}
			int tls = s->passthrough || (strcmp(s->protocol, "HTTPS") && strcmp(s->protocol, "TLS")) ? 0
				  : !strcmp(s->tls_mode, "MUTUAL")       ? 2
				  : !strcmp(s->tls_mode, "ISTIO_MUTUAL") ? 3
									 : 1;
			if (g != NULL && (g->l.passthrough != s->passthrough || g->l.tcp != s->tcp)) {
				char field[64];
				snprintf(field, sizeof(field), "spec.%s[%zu]", servers, i);
				tr_diag(t, SN_DIAG_WARNING, r, s->loc, field,
					"port %u is already %s; a port either passes TLS through (tls.mode PASSTHROUGH), "
					"relays TCP or serves HTTP, so this server is not opened", s->port,
					g->l.passthrough ? "a TLS passthrough port" : g->l.tcp ? "a TCP port" : "an HTTP port");
				continue;
			}
			if (g != NULL && g->l.tls != tls) {
				char field[64];
				snprintf(field, sizeof(field), "spec.%s[%zu]", servers, i);
				tr_diag(t, SN_DIAG_WARNING, r, s->loc, field,
					"port %u is already %s (%s); the servers of one port share plain text, "
					"tls.mode SIMPLE or tls.mode MUTUAL, so this server is not opened", s->port,
					!g->l.tls ? "plain text" : g->l.tls == 2 ? "HTTPS MUTUAL"
					: g->l.tls == 3			  ? "HTTPS ISTIO_MUTUAL"
									  : "HTTPS SIMPLE",
					g->l.origin);
				continue;
			}
			if (g == NULL) {
				g = &gl[ngl++];
				g->l.port = s->port;
				g->l.protocol = sdup(t, s->protocol);
				g->l.origin = sn_arena_printf(t->a, "%s %s/%s %s[%zu], %s:%d", sn_resource_kind_str(r->kind),
							      r->namespace_, r->name, servers, i, r->file, s->loc.line);
				g->l.tls = tls;
				g->l.cert_file = sdup(t, s->cert_file);
				g->l.key_file = sdup(t, s->key_file);
				g->l.ca_file = sdup(t, s->ca_file);
				g->l.credential = sdup(t, s->credential);
				g->l.passthrough = s->passthrough;
				g->l.tcp = s->tcp;
			}
			if ((tls == 1 || tls == 2) && gw_certs_add(t, g, s))
				continue;
			if (s->https_redirect)
				g->l.https_redirect = 1;
			if (s->passthrough)
				gateway_tls_routes(t, r, s, g);
			else if (s->tcp)
				gateway_tcp_route(t, r, s, g);
			else if (gw->gateway_api)
				gateway_api_routes(t, r, s, g);
			else
				gateway_routes(t, r, s, g);
		}
	}
	qsort(gl, ngl, sizeof(gl[0]), gwl_cmp);
	t->s->gw_listeners = sn_arena_new_array(t->a, struct sn_gw_listener, ngl ? ngl : 1);
	if (t->s->gw_listeners == NULL)
		t->oom = 1;
	for (size_t k = 0; k < ngl; k++) {
		struct tr_gwl *g = &gl[k];
		if (!t->oom && g->n) {
			g->l.vhosts = sn_arena_new_array(t->a, struct sn_vhost, g->n);
			if (g->l.vhosts == NULL)
				t->oom = 1;
			else
				memcpy(g->l.vhosts, g->vh, g->n * sizeof(*g->vh));
			g->l.n_vhosts = g->n;
		}
		if (!t->oom && g->n_sni) {
			g->l.sni_routes = sn_arena_new_array(t->a, struct sn_sni_route, g->n_sni);
			if (g->l.sni_routes == NULL)
				t->oom = 1;
			else
				memcpy(g->l.sni_routes, g->sni, g->n_sni * sizeof(*g->sni));
			g->l.n_sni_routes = g->n_sni;
		}
		free(g->sni);
		if (!t->oom && g->other_certs && g->n_certs) {
			g->l.certs = sn_arena_new_array(t->a, struct sn_gw_cert, g->n_certs);
			if (g->l.certs == NULL)
				t->oom = 1;
			else
				memcpy(g->l.certs, g->certs, g->n_certs * sizeof(*g->certs));
			g->l.n_certs = g->n_certs;
		}
		free(g->certs);
		if (!t->oom)
			t->s->gw_listeners[t->s->n_gw_listeners++] = g->l;
		free(g->vh);
		free(g->vs_of);
	}
}

/* ---- security (added): AuthorizationPolicy, PeerAuthentication ------- */

/* Istio's scope: a policy applies to workloads of its namespace, or of
 * every namespace from the root namespace; a selector narrows it to
 * workloads with its labels. */
static int policy_selects(struct tr *t, const struct sn_resource *r, int has_selector, const struct sn_labels *sel)
{
	static const struct sn_labels no_labels;
	const struct sn_labels *labels = t->id && t->id->labels ? t->id->labels : &no_labels;
	if (strcmp(r->namespace_, t->ns) != 0 && strcmp(r->namespace_, SN_MESH_ROOT_NAMESPACE) != 0)
		return 0;
	return !has_selector || sn_labels_match(sel, labels);
}

static void build_authz(struct tr *t)
{
	size_t n = 0;
	for (const struct sn_resource *r = t->set->head; r; r = r->next)
		if (r->kind == SN_KIND_AUTHORIZATION_POLICY)
			n++;
	if (n == 0)
		return;
	t->s->authz = sn_arena_new_array(t->a, struct sn_authz_policy, n);
	if (t->s->authz == NULL) {
		t->oom = 1;
		return;
	}
	for (const struct sn_resource *r = t->set->head; r; r = r->next) {
		if (r->kind != SN_KIND_AUTHORIZATION_POLICY)
			continue;
		const struct cfg_authz *az = r->spec;
		if (az->ignored || !policy_selects(t, r, az->has_selector, &az->selector))
			continue;
		struct sn_authz_policy *p = &t->s->authz[t->s->n_authz];
		p->name = sn_arena_printf(t->a, "%s/%s", r->namespace_, r->name);
		p->origin = sn_arena_printf(t->a, "AuthorizationPolicy %s/%s, %s:%d", r->namespace_, r->name,
					    r->file, r->line);
		p->action = az->action;
		p->provider = az->provider ? sn_arena_strdup(t->a, az->provider) : NULL;
		p->n_rules = az->n_rules;
		p->unenforceable = az->unenforceable;
		if (p->name == NULL || p->origin == NULL || (az->provider != NULL && p->provider == NULL) ||
		    cfg_authz_copy_rules(t->a, az->rules, az->n_rules, &p->rules) != 0) {
			t->oom = 1;
			return;
		}
		t->s->n_authz++;
		if (p->action == SN_AUTHZ_ALLOW)
			t->s->n_authz_allow++;
	}
}

/* The RequestAuthentications that select this proxy (its namespace's and
 * the mesh root's, by selector, as for AuthorizationPolicy): their rules,
 * in file order. */
static void build_jwt_rules(struct tr *t)
{
	size_t n = 0;
	for (const struct sn_resource *r = t->set->head; r; r = r->next) {
		if (r->kind != SN_KIND_REQUEST_AUTHENTICATION)
			continue;
		const struct cfg_reqauthn *ra = r->spec;
		n += ra->n_rules;
		if (ra->unenforceable && !ra->ignored && t->s->jwt_unenforceable == NULL &&
		    policy_selects(t, r, ra->has_selector, &ra->selector))
			t->s->jwt_unenforceable = sn_arena_printf(t->a, "%s/%s", r->namespace_, r->name);
	}
	if (n == 0)
		return;
	t->s->jwt_rules = sn_arena_new_array(t->a, struct sn_jwt_rule, n);
	if (t->s->jwt_rules == NULL) {
		t->oom = 1;
		return;
	}
	for (const struct sn_resource *r = t->set->head; r; r = r->next) {
		if (r->kind != SN_KIND_REQUEST_AUTHENTICATION)
			continue;
		const struct cfg_reqauthn *ra = r->spec;
		if (ra->ignored || !policy_selects(t, r, ra->has_selector, &ra->selector))
			continue;
		char origin[600];
		snprintf(origin, sizeof(origin), "RequestAuthentication %s/%s, %s:%d", r->namespace_, r->name, r->file,
			 r->line);
		for (size_t i = 0; i < ra->n_rules; i++)
			if (cfg_jwt_rule_copy(t->a, &ra->rules[i], origin, &t->s->jwt_rules[t->s->n_jwt_rules++]) != 0)
				t->oom = 1;
	}
}

/* Linkerd's Servers of this workload (its namespace, podSelector on its
 * labels), a named port resolved through its own WorkloadEntry, each with
 * the first HTTPLocalRateLimitPolicy that targets it (Linkerd allows one;
 * another is warned). */
static void build_servers(struct tr *t)
{
	static const struct sn_labels no_labels;
	const struct sn_labels *labels = t->id && t->id->labels ? t->id->labels : &no_labels;
	size_t n = 0;
	for (const struct sn_resource *r = t->set->head; r; r = r->next)
		if (r->kind == SN_KIND_SERVER)
			n++;
	if (n == 0)
		return;
	t->s->servers = sn_arena_new_array(t->a, struct sn_server, n);
	if (t->s->servers == NULL) {
		t->oom = 1;
		return;
	}
	/* the workload's own WorkloadEntry: by name, else the first of its
	 * namespace whose labels are the proxy's (file mode names a proxy
	 * after its service) */
	const struct cfg_workload *self = NULL, *like = NULL;
	for (const struct sn_resource *r = t->set->head; r; r = r->next) {
		const struct cfg_workload *we = r->spec;
		if (r->kind != SN_KIND_WORKLOAD_ENTRY || r->invalid || we == NULL || strcmp(r->namespace_, t->ns))
			continue;
		if (t->id && t->id->workload && !strcmp(r->name, t->id->workload))
			self = we;
		else if (like == NULL && labels->n > 0 && sn_labels_match(labels, &we->labels))
			like = we;
	}
	if (self == NULL)
		self = like;
	for (const struct sn_resource *r = t->set->head; r; r = r->next) {
		const struct cfg_server *cs = r->spec;
		if (r->kind != SN_KIND_SERVER || r->invalid || cs == NULL || strcmp(r->namespace_, t->ns) != 0 ||
		    !sn_labels_match(&cs->selector, labels))
			continue;
		struct sn_server *sv = &t->s->servers[t->s->n_servers];
		memset(sv, 0, sizeof(*sv));
		sv->name = sn_arena_printf(t->a, "%s/%s", r->namespace_, r->name);
		sv->origin = sn_arena_printf(t->a, "Server %s/%s, %s:%d", r->namespace_, r->name, r->file, r->line);
		sv->port = cs->port;
		sv->access = cs->access;
		if (cs->unenforceable)
			sv->unenforceable = sv->name;
		for (size_t i = 0; cs->port_name != NULL && self != NULL && i < self->n_ports; i++)
			if (!strcmp(self->ports[i].name, cs->port_name))
				sv->port = self->ports[i].port;
		if (cs->port_name != NULL && sv->port == 0) {
			tr_diag(t, SN_DIAG_WARNING, r, (struct cfg_loc){ 0, 0 }, "spec.port",
				"port \"%s\" is not a port name of this workload's WorkloadEntry (%s): the Server selects "
				"no port here", cs->port_name, t->id && t->id->workload ? t->id->workload : "none");
			continue;
		}
		for (const struct sn_resource *q = t->set->head; q; q = q->next) {
			const struct cfg_rate_limit *rl = q->spec;
			if (q->kind != SN_KIND_RATE_LIMIT || q->invalid || rl == NULL || rl->server == NULL ||
			    strcmp(q->namespace_, r->namespace_) || strcmp(rl->server, r->name))
				continue;
			if (sv->rl_name != NULL) {
				tr_diag(t, SN_DIAG_WARNING, q, (struct cfg_loc){ 0, 0 }, "spec.targetRef",
					"Server %s already has HTTPLocalRateLimitPolicy %s (a Server takes one, as in "
					"Linkerd); this one is ignored", sv->name, sv->rl_name);
				continue;
			}
			sv->rl_name = sn_arena_printf(t->a, "%s/%s", q->namespace_, q->name);
			sv->rl_origin = sn_arena_printf(t->a, "HTTPLocalRateLimitPolicy %s/%s, %s:%d", q->namespace_, q->name,
							q->file, q->line);
			if (sv->rl_name == NULL || sv->rl_origin == NULL) {
				t->oom = 1;
				return;
			}
			sv->rl_total = rl->total;
			sv->rl_identity = rl->identity;
			if (rl->n_overrides > 0) {
				sv->rl_overrides = sn_arena_new_array(t->a, struct sn_rl_override, rl->n_overrides);
				if (sv->rl_overrides == NULL) {
					t->oom = 1;
					return;
				}
			}
			for (size_t i = 0; i < rl->n_overrides; i++) {
				const struct sn_rl_override *o = &rl->overrides[i];
				struct sn_rl_override *d = &sv->rl_overrides[sv->n_rl_overrides++];
				d->rps = o->rps;
				d->clients = o->n_clients ? sn_arena_new_array(t->a, char *, o->n_clients) : NULL;
				for (size_t k = 0; d->clients != NULL && k < o->n_clients; k++)
					if ((d->clients[d->n_clients++] = sn_arena_strdup(t->a, o->clients[k])) == NULL)
						t->oom = 1;
				if (o->n_clients && d->clients == NULL)
					t->oom = 1;
			}
			if (t->oom)
				return;
		}
		if (sv->name == NULL || sv->origin == NULL) {
			t->oom = 1;
			return;
		}
		t->s->n_servers++;
	}
}

/* The mesh config's extension providers (ConfigMap istio-system/istio),
 * each resolved to its service port's cluster; and every CUSTOM policy of
 * this proxy checked against them: a provider that is not defined, or
 * names no known service port, denies what its policies select (the
 * proxy's filter_extauthz.c), said here. */
static void build_ext_authz(struct tr *t)
{
	const struct sn_resource *mr = NULL;
	for (const struct sn_resource *r = t->set->head; r; r = r->next)
		if (r->kind == SN_KIND_CONFIG_MAP && !r->invalid && mr == NULL)
			mr = r;
	const struct cfg_mesh *m = mr ? mr->spec : NULL;
	if (m != NULL && m->registry_only)
		t->s->registry_only = sn_arena_printf(t->a, "ConfigMap %s/%s, %s:%d", mr->namespace_, mr->name, mr->file,
						      m->registry_only_line);
	if (m != NULL && m->n_providers > 0) {
		t->s->ext_authz = sn_arena_new_array(t->a, struct sn_ext_authz, m->n_providers);
		if (t->s->ext_authz == NULL) {
			t->oom = 1;
			return;
		}
	}
	for (size_t i = 0; m != NULL && i < m->n_providers; i++) {
		struct sn_ext_authz *p = &t->s->ext_authz[t->s->n_ext_authz];
		if (cfg_ext_authz_copy(t->a, &m->providers[i], p) != 0) {
			t->oom = 1;
			return;
		}
		t->s->n_ext_authz++;
		/* "[NS/]HOST": the namespace only picks among same-named hosts */
		const char *host = p->service, *slash = strchr(p->service, '/');
		char ns[CFG_MAX_NAME + 1];
		snprintf(ns, sizeof(ns), "%s", mr->namespace_);
		if (slash != NULL) {
			snprintf(ns, sizeof(ns), "%.*s", (int)SN_MIN((size_t)(slash - host), (size_t)CFG_MAX_NAME), host);
			host = slash + 1;
		}
		char *fqdn = resolve_host(t, host, ns);
		const struct sn_service *sv = fqdn ? sn_snapshot_find_service(t->s, fqdn) : NULL;
		for (size_t k = 0; sv != NULL && k < sv->n_ports; k++)
			if (sv->ports[k].port == p->port)
				p->cluster = sv->ports[k].default_cluster;
	}
	for (size_t i = 0; i < t->s->n_authz; i++) {
		const struct sn_authz_policy *ap = &t->s->authz[i];
		if (ap->action != SN_AUTHZ_CUSTOM || ap->provider == NULL)
			continue;
		const struct sn_ext_authz *p = sn_snapshot_find_ext_authz(t->s, ap->provider);
		const struct sn_resource *pr = NULL;
		for (const struct sn_resource *r = t->set->head; r; r = r->next) {
			char nm[600];
			snprintf(nm, sizeof(nm), "%s/%s", r->namespace_, r->name);
			if (r->kind == SN_KIND_AUTHORIZATION_POLICY && !strcmp(nm, ap->name))
				pr = r;
		}
		if (pr == NULL)
			continue;
		if (p == NULL)
			tr_diag(t, SN_DIAG_WARNING, pr, (struct cfg_loc){ 0, 0 }, "spec.provider.name",
				"provider \"%s\" is not defined in the mesh config (ConfigMap %s/istio, data.mesh "
				"extensionProviders): the requests this policy selects are denied, 403 "
				"ext_authz_unavailable (fail closed)", ap->provider, SN_MESH_ROOT_NAMESPACE);
		else if (SN_EXT_IS_TRACER(p))
			tr_diag(t, SN_DIAG_WARNING, pr, (struct cfg_loc){ 0, 0 }, "spec.provider.name",
				"provider \"%s\" is a tracer, not an authorizer (envoyExtAuthzHttp or envoyExtAuthzGrpc): "
				"the requests this policy selects are denied, 403 ext_authz_unavailable (fail closed)",
				ap->provider);
		else if (p->cluster == UINT32_MAX)
			tr_diag(t, SN_DIAG_WARNING, pr, (struct cfg_loc){ 0, 0 }, "spec.provider.name",
				"provider \"%s\" names service %s port %u, which is no known Service or ServiceEntry "
				"port (write the host in full, e.g. NAME.NAMESPACE.svc.cluster.local): the requests "
				"this policy selects are denied, 403 ext_authz_unavailable (fail closed)", ap->provider,
				p->service, p->port);
	}
}

/* This proxy's tracing: the mesh config's defaults, then the Telemetry
 * resources that select it, least specific first (root namespace, its
 * namespace, a selector on its labels), each setting what it names; at
 * one level the first in load order. Tracers resolve to the mesh
 * config's extensionProviders; a name that is none is warned (spans still
 * go to sinewd). */
static void build_tracing(struct tr *t)
{
	struct sn_tracing *tr = &t->s->tracing;
	const struct sn_resource *mr = NULL, *lvl[3] = { NULL, NULL, NULL };
	char *const *names = NULL;
	size_t n_names = 0;

	tr->sampling = -1;
	for (const struct sn_resource *r = t->set->head; r; r = r->next) {
		if (r->kind == SN_KIND_CONFIG_MAP && !r->invalid && mr == NULL)
			mr = r;
		if (r->kind != SN_KIND_TELEMETRY || r->invalid)
			continue;
		const struct cfg_telemetry *te = r->spec;
		if (te->ignored || !te->has_tracing || !policy_selects(t, r, te->has_selector, &te->selector))
			continue;
		int level = te->has_selector ? 2 : strcmp(r->namespace_, t->ns) == 0 &&
						   strcmp(t->ns, SN_MESH_ROOT_NAMESPACE) != 0 ? 1 : 0;
		if (level == 0 && strcmp(r->namespace_, SN_MESH_ROOT_NAMESPACE) != 0)
			continue;
		if (lvl[level] == NULL)
			lvl[level] = r;
	}
	const struct cfg_mesh *m = mr ? mr->spec : NULL;
	if (m != NULL) {
		tr->disabled = !m->enable_tracing;
		tr->sampling = m->sampling;
		names = m->default_tracers;
		n_names = m->n_default_tracers;
	}
	for (int i = 0; i < 3; i++) {
		const struct sn_resource *r = lvl[i];
		if (r == NULL)
			continue;
		const struct cfg_telemetry *te = r->spec;
		tr->origin = sn_arena_printf(t->a, "Telemetry %s/%s", r->namespace_, r->name);
		if (te->sampling >= 0)
			tr->sampling = te->sampling;
		if (te->no_reporting >= 0)
			tr->no_reporting = te->no_reporting;
		if (te->providers_set) {
			names = te->providers;
			n_names = te->n_providers;
		}
		if (te->tags_set) {
			tr->tags = te->tags;   /* copied below */
			tr->n_tags = te->n_tags;
		}
	}
	if (tr->n_tags) {
		struct sn_trace_tag *in = tr->tags;
		tr->tags = sn_arena_new_array(t->a, struct sn_trace_tag, tr->n_tags);
		for (size_t i = 0; tr->tags != NULL && i < tr->n_tags; i++) {
			tr->tags[i] = in[i];
			tr->tags[i].name = in[i].name ? sdup(t, in[i].name) : NULL;
			tr->tags[i].value = in[i].value ? sdup(t, in[i].value) : NULL;
			tr->tags[i].default_value = in[i].default_value ? sdup(t, in[i].default_value) : NULL;
		}
		if (tr->tags == NULL)
			t->oom = 1;
	}
	if (n_names == 0)
		return;
	tr->providers = sn_arena_new_array(t->a, uint32_t, n_names);
	if (tr->providers == NULL) {
		t->oom = 1;
		return;
	}
	for (size_t i = 0; i < n_names; i++) {
		const struct sn_ext_authz *p = sn_snapshot_find_ext_authz(t->s, names[i]);
		const struct sn_resource *who = lvl[2] ? lvl[2] : lvl[1] ? lvl[1] : lvl[0] ? lvl[0] : mr;
		if (p == NULL || !SN_EXT_IS_TRACER(p) || p->cluster == UINT32_MAX) {
			if (who != NULL)
				tr_diag(t, SN_DIAG_WARNING, who, (struct cfg_loc){ 0, 0 },
					who == mr ? "data.mesh.defaultProviders.tracing" : "spec.tracing[0].providers",
					p == NULL ? "tracing provider \"%s\" is not defined in the mesh config (ConfigMap "
						    "%s/istio, data.mesh extensionProviders); spans go to sinewd only"
					: !SN_EXT_IS_TRACER(p) ? "provider \"%s\" is not a tracer (zipkin or opentelemetry); "
								"spans go to sinewd only%.0s"
					: "tracing provider \"%s\" names no known Service or ServiceEntry port "
					  "(write the host in full, e.g. NAME.NAMESPACE.svc.cluster.local); spans go to "
					  "sinewd only%.0s", names[i], SN_MESH_ROOT_NAMESPACE);
			continue;
		}
		tr->providers[tr->n_providers++] = (uint32_t)(p - t->s->ext_authz);
	}
}

static void build_peer_auth(struct tr *t)
{
	const struct sn_resource *mesh = NULL, *nsp = NULL, *wl = NULL;
	struct sn_peer_auth *out = &t->s->peer_auth;

	for (const struct sn_resource *r = t->set->head; r; r = r->next) {
		if (r->kind != SN_KIND_PEER_AUTHENTICATION)
			continue;
		const struct cfg_peer_auth *pa = r->spec;
		int workload = pa->has_selector && pa->selector.n > 0;
		const struct sn_resource **slot = NULL;
		if (workload && policy_selects(t, r, 1, &pa->selector))
			slot = &wl;
		else if (!workload && !strcmp(r->namespace_, t->ns) && strcmp(t->ns, SN_MESH_ROOT_NAMESPACE) != 0)
			slot = &nsp;
		else if (!workload && !strcmp(r->namespace_, SN_MESH_ROOT_NAMESPACE))
			slot = &mesh;
		if (slot == NULL)
			continue;
		if (*slot != NULL) {
			/* Istio keeps the oldest; in a file, the first. */
			tr_diag(t, SN_DIAG_WARNING, r, (struct cfg_loc){ 0, 0 }, "metadata.name",
				"PeerAuthentication %s/%s also applies to this workload at the same level and comes "
				"first; this one is ignored for it", (*slot)->namespace_, (*slot)->name);
			continue;
		}
		*slot = r;
	}
	out->mode = SN_MTLS_PERMISSIVE;
	out->origin = sdup(t, "default");
	const struct sn_resource *levels[3] = { mesh, nsp, wl };
	for (int i = 0; i < 3; i++) {
		const struct cfg_peer_auth *pa = levels[i] ? levels[i]->spec : NULL;
		if (pa != NULL && pa->unenforceable && out->unenforceable == NULL)
			out->unenforceable = sn_arena_printf(t->a, "%s/%s", levels[i]->namespace_, levels[i]->name);
		if (pa == NULL || pa->mode == SN_MTLS_UNSET)
			continue;
		out->mode = pa->mode;
		out->origin = sn_arena_printf(t->a, "PeerAuthentication %s/%s", levels[i]->namespace_, levels[i]->name);
	}
	const struct cfg_peer_auth *pw = wl ? wl->spec : NULL;
	if (pw == NULL || pw->n_ports == 0)
		return;
	out->ports = sn_arena_new_array(t->a, struct sn_mtls_port, pw->n_ports);
	char *origin = sn_arena_printf(t->a, "PeerAuthentication %s/%s", wl->namespace_, wl->name);
	if (out->ports == NULL || origin == NULL) {
		t->oom = 1;
		return;
	}
	for (size_t i = 0; i < pw->n_ports; i++) {
		struct sn_mtls_port *pp = &out->ports[out->n_ports++];
		pp->port = pw->ports[i].port;
		/* UNSET on a port inherits the workload's effective mode. */
		pp->mode = pw->ports[i].mode == SN_MTLS_UNSET ? out->mode : pw->ports[i].mode;
		pp->origin = pw->ports[i].mode == SN_MTLS_UNSET ? out->origin : origin;
	}
}

int sn_config_translate(const struct sn_config_set *set, const struct sn_proxy_identity *id,
			struct sn_diags *d, struct sn_snapshot **out)
{
	struct tr t;
	memset(&t, 0, sizeof(t));
	*out = NULL;
	t.set = set;
	t.id = id;
	t.d = d;
	t.ns = id && id->namespace_ ? id->namespace_ : "default";
	t.diag_start = d->n;
	sn_arena_init(&t.tmp, 0);

	t.cs = calloc(1, sizeof(*t.cs));
	if (t.cs == NULL) {
		sn_arena_free(&t.tmp);
		return SN_ENOMEM;
	}
	t.s = &t.cs->pub;
	sn_arena_init(&t.s->arena, 0);
	t.a = &t.s->arena;
	t.s->refs = 1;
	t.s->identity_namespace = sdup(&t, t.ns);
	t.s->source = sdup(&t, set->head && set->head->file ? set->head->file : "-");

#ifdef SN_TEST_HOOKS
	/* Fault injection (test builds only): translating a set that holds
	 * the resource NS/NAME named by SINEW_FAULT_CRASH_RESOURCE crashes, as
	 * a bug that input reaches would (the WorkloadEntry whose null address
	 * reached inet_pton did); tests check that sinewd contains it. */
	const char *crash = getenv("SINEW_FAULT_CRASH_RESOURCE");
	for (const struct sn_resource *r = set->head; crash != NULL && r != NULL; r = r->next) {
		char nsname[600];
		snprintf(nsname, sizeof(nsname), "%s/%s", r->namespace_, r->name);
		if (!strcmp(crash, nsname)) {
			volatile int *nowhere = NULL;
			*nowhere = 1;
		}
	}
#endif
	if (collect(&t) < 0)
		t.oom = 1;
	else
		build(&t);
	if (!t.oom)
		build_authz(&t);
	if (!t.oom)
		build_peer_auth(&t);
	if (!t.oom)
		build_jwt_rules(&t);
	if (!t.oom)
		build_ext_authz(&t);
	if (!t.oom)
		build_servers(&t);
	if (!t.oom)
		build_tracing(&t);
	if (!t.oom)
		build_gateways(&t);

	if (!t.oom) {
		t.s->clusters = sn_arena_new_array(t.a, struct sn_cluster, t.n_clusters ? t.n_clusters : 1);
		t.s->vhosts = sn_arena_new_array(t.a, struct sn_vhost, t.n_vhosts ? t.n_vhosts : 1);
		if (t.s->clusters == NULL || t.s->vhosts == NULL) {
			t.oom = 1;
		} else {
			if (t.n_clusters)
				memcpy(t.s->clusters, t.clusters, t.n_clusters * sizeof(*t.clusters));
			if (t.n_vhosts)
				memcpy(t.s->vhosts, t.vhosts, t.n_vhosts * sizeof(*t.vhosts));
			t.s->n_clusters = t.n_clusters;
			t.s->n_vhosts = t.n_vhosts;
		}
	}
	free(t.clusters);
	free(t.vhosts);
	sn_arena_free(&t.tmp);
	if (t.oom)
		sn_diags_add(d, SN_DIAG_ERROR, t.s->source ? t.s->source : "-", 0, 0, NULL, NULL, NULL,
			     "out of memory while translating the configuration");
	if (t.oom || t.errors) {
		sn_snapshot_unref(t.s);
		return t.oom ? SN_ENOMEM : SN_EINVAL;
	}
	*out = t.s;
	return 0;
}

int sn_config_build_from_file(const char *path, const struct sn_proxy_identity *id,
			      struct sn_diags *d, struct sn_snapshot **out)
{
	struct sn_config_set set;
	*out = NULL;
	sn_config_set_init(&set);
	int rc = sn_config_load_file(&set, path, d);
	if (rc == 0)
		rc = sn_config_translate(&set, id, d, out);
	sn_config_set_free(&set);
	return rc;
}
