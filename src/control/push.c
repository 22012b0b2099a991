/* Push: what each proxy needs, and only what changed.
 *
 * The view is every resource a proxy may get: the store plus the
 * WorkloadEntries of registered proxies, each parsed once (by the config
 * library, like the proxy will) and kept while its resourceVersion holds.
 * From it, a proxy's relevant set is a closure over its subscriptions:
 * a host brings the Service it resolves to (the proxy's namespace, the
 * rules of sn_snapshot_find_vhost) and the VirtualServices naming it; a
 * Service brings the WorkloadEntries it selects, its DestinationRules and
 * the VirtualServices for its host (the proxy builds a vhost for every
 * Service it holds, so those must be complete); a VirtualService brings
 * the Services it routes to. A ServiceEntry is a Service for each of its
 * hosts, and its workloadSelector a Service's selector. The delta against what the proxy acked is
 * sent when nothing is in flight; changes meanwhile coalesce.
 *
 * Cost per change: the view is rebuilt (sorting, not scanning per pair:
 * O(resources log resources)), re-parsing only changed resources; then
 * each proxy is checked against what changed (a few lookups in what it
 * holds), and only the proxies it concerns are recomputed, each
 * O(relevant set). What a resource names is the config library's answer
 * (sn_resource_refs); its typed bodies stay private to it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/log.h"
#include "mesh_internal.h"

/* ---- view entries ---------------------------------------------------- */

static void res_free(struct view_res *r)
{
	if (r == NULL)
		return;
	free(r->key);
	free(r->rv);
	free(r->ns);
	free(r->name);
	free(r->api_version);
	free(r->source);
	free(r->text);
	sn_config_set_free(&r->set);
	free(r->fqdn);
	free(r->deps);
	for (size_t i = 0; i < r->n_hosts; i++)
		free(r->hosts[i]);
	free(r->hosts);
	free(r);
}

static void res_clear_derived(struct view_res *r)
{
	free(r->fqdn);
	r->fqdn = NULL;
	free(r->deps);
	r->deps = NULL;
	r->n_deps = 0;
	for (size_t i = 0; i < r->n_hosts; i++)
		free(r->hosts[i]);
	free(r->hosts);
	r->hosts = NULL;
	r->n_hosts = 0;
	r->mark = 0;
}

void mesh_view_free(struct view *v)
{
	for (size_t i = 0; i < v->n; i++)
		res_free(v->v[i]);
	free(v->v);
	free(v->by_host);
	free(v->wild_vs);
	free(v->roots);
	memset(v, 0, sizeof(*v));
}

static char *make_key(enum sn_resource_kind kind, const char *ns, const char *name)
{
	size_t n = strlen(sn_resource_kind_str(kind)) + strlen(ns) + strlen(name) + 3;
	char *k = malloc(n);
	if (k != NULL)
		snprintf(k, n, "%s/%s/%s", sn_resource_kind_str(kind), ns, name);
	return k;
}

/* A new entry: copies the strings and parses the text (the way the
 * proxy will: source and first line). */
static struct view_res *res_new(enum sn_resource_kind kind, const char *api_version, const char *ns,
				const char *name, const char *rv, const char *source, int line, const char *text,
				size_t text_len)
{
	struct view_res *r = calloc(1, sizeof(*r));
	struct sn_diags d;

	if (r == NULL)
		return NULL;
	sn_config_set_init(&r->set);
	sn_arena_init(&r->set.arena, 1024);   /* most are one small resource: a registered proxy's entry */
	r->kind = kind;
	r->key = make_key(kind, ns, name);
	r->rv = strdup(rv);
	r->ns = strdup(ns);
	r->name = strdup(name);
	r->api_version = strdup(api_version ? api_version : "");
	r->source = strdup(source ? source : "-");
	r->line = line;
	r->text = malloc(text_len + 1);
	if (r->key == NULL || r->rv == NULL || r->ns == NULL || r->name == NULL || r->api_version == NULL ||
	    r->source == NULL || r->text == NULL) {
		res_free(r);
		return NULL;
	}
	memcpy(r->text, text, text_len);
	r->text[text_len] = '\0';
	r->text_len = text_len;
	sn_diags_init(&d);
	sn_config_load_text_at(&r->set, r->source, r->text, r->text_len, line, &d);
	sn_diags_free(&d);
	if (r->set.head != NULL && (r->set.head->kind != kind || r->set.head->next != NULL)) {
		/* Not what the store says it is: never relevant to anyone. */
		sn_config_set_free(&r->set);
		sn_config_set_init(&r->set);
	}
	return r;
}

static int cmp_key_res(const void *key, const void *elem)
{
	return strcmp(key, (*(const struct view_res *const *)elem)->key);
}

static ssize_t view_index(const struct view *v, const char *key)
{
	int found;
	size_t i = sn_lower_bound(v->v, v->n, sizeof(*v->v), key, cmp_key_res, &found);
	return found ? (ssize_t)i : -1;
}

const struct view_res *mesh_view_find(const struct view *v, const char *key)
{
	ssize_t i = view_index(v, key);
	return i >= 0 ? v->v[i] : NULL;
}

/* Takes the entry for key at rv out of old (NULL if absent, changed or
 * taken already). Taken entries stay in place (old stays searchable) and
 * are not freed with old. */
static struct view_res *take_old(struct view *old, const char *key, const char *rv)
{
	ssize_t i = view_index(old, key);
	if (i < 0 || old->v[i]->taken || strcmp(old->v[i]->rv, rv) != 0)
		return NULL;
	old->v[i]->taken = 1;
	return old->v[i];
}

/* ---- deriving the indexes ------------------------------------------- */

static char *xprintf(const char *fmt, const char *a, const char *b)
{
	size_t n = strlen(fmt) + strlen(a) + (b ? strlen(b) : 0) + 1;
	char *s = malloc(n);
	if (s != NULL)
		snprintf(s, n, fmt, a, b ? b : "");
	return s;
}

static int cmp_host_ref(const void *a, const void *b)
{
	const struct host_ref *x = a, *y = b;
	int c = strcmp(x->host, y->host);
	if (c != 0)
		return c;
	return (x->res > y->res) - (x->res < y->res);
}

/* First index in refs (sorted) whose host is host; n if none. */
static int cmp_key_host_ref(const void *key, const void *elem)
{
	return strcmp(key, ((const struct host_ref *)elem)->host);
}

static size_t host_lower_bound(const struct host_ref *refs, size_t n, const char *host)
{
	return sn_lower_bound(refs, n, sizeof(*refs), host, cmp_key_host_ref, NULL);
}

static ssize_t find_service(const struct host_ref *svcs, size_t n, const char *fqdn)
{
	size_t i = host_lower_bound(svcs, n, fqdn);
	return i < n && !strcmp(svcs[i].host, fqdn) ? (ssize_t)svcs[i].res : -1;
}

/* What host in namespace ns names, as translation resolves it
 * (sn_host_candidates): the first candidate that is a Service or
 * ServiceEntry host in svcs, else the name to report. Allocated. */
static char *resolve(const char *host, const char *ns, const struct host_ref *svcs, size_t n_svcs)
{
	char cand[2][SN_HOST_CAND_MAX];
	size_t fb;
	size_t n = sn_host_candidates(host, strlen(host), ns, cand, &fb);
	if (n == 0) {
		char *out = strdup(host);
		if (out != NULL)
			sn_ascii_lower(out);
		return out;
	}
	for (size_t i = 0; i < n; i++)
		if (find_service(svcs, n_svcs, cand[i]) >= 0)
			return strdup(cand[i]);
	return strdup(cand[fb]);
}

/* A ServiceEntry host as written (never qualified), lower-cased, a
 * trailing dot dropped. Allocated. */
static char *entry_host(const char *host)
{
	char *out = strdup(host);
	if (out == NULL)
		return NULL;
	size_t n = strlen(out);
	if (n > 1 && out[n - 1] == '.')
		out[n - 1] = '\0';
	sn_ascii_lower(out);
	return out;
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

/* The candidate names a proxy in ns tries for host (the snapshot's
 * sn_snapshot_find_vhost), most specific first. Returns how many. */
static int candidates(const char *host, const char *ns, char cand[2][SN_HOST_CAND_MAX])
{
	size_t fb;
	return (int)sn_host_candidates(host, strlen(host), ns, cand, &fb);
}

static int push_dep(struct view_res *r, size_t dep)
{
	size_t *nd = realloc(r->deps, (r->n_deps + 1) * sizeof(*nd));
	if (nd == NULL)
		return -1;
	r->deps = nd;
	r->deps[r->n_deps++] = dep;
	return 0;
}

static int push_host(struct view_res *r, char *h)
{
	if (h == NULL)
		return -1;
	char **nh = realloc(r->hosts, (r->n_hosts + 1) * sizeof(*nh));
	if (nh == NULL) {
		free(h);
		return -1;
	}
	r->hosts = nh;
	r->hosts[r->n_hosts++] = h;
	return 0;
}

/* ---- what reaches a proxy other than by the hosts it calls ----------- */

/* Security policies are about the proxy's own workload, not about what it
 * calls: every AuthorizationPolicy and PeerAuthentication of its namespace
 * and of the mesh root namespace goes to it, and its translation keeps
 * those whose selector picks its labels (Telemetry too); Linkerd's Servers
 * and their rate limits: namespaced, no root. The mesh config
 * (istio-system/istio) is every proxy's, with the services of its external
 * authorizers and tracers; so are ReferenceGrants (what routes may name
 * across namespaces) and a ServiceEntry with addresses, which captured
 * traffic reaches by address rather than by a host the proxy would
 * subscribe to. A gateway proxy gets every Gateway (its translation keeps
 * those whose selector picks its labels), every VirtualService bound to a
 * gateway and every Gateway API route attached to a Gateway, which bring
 * the Services they route to. */
static int root_for(const struct sn_mesh_proxy *px, const struct view_res *r)
{
	switch (r->kind) {
	case SN_KIND_AUTHORIZATION_POLICY:
	case SN_KIND_PEER_AUTHENTICATION:
	case SN_KIND_REQUEST_AUTHENTICATION:
	case SN_KIND_TELEMETRY:
		return !strcmp(r->ns, px->ns) || !strcmp(r->ns, SN_MESH_ROOT_NAMESPACE);
	case SN_KIND_SERVER:
	case SN_KIND_RATE_LIMIT:
		return !strcmp(r->ns, px->ns);
	case SN_KIND_CONFIG_MAP:
	case SN_KIND_REFERENCE_GRANT:
		return 1;
	case SN_KIND_SERVICE_ENTRY:
		return sn_service_entry_has_addresses(r->set.head);
	case SN_KIND_GATEWAY:
	case SN_KIND_K8S_GATEWAY:
		return px->gateway;
	default:
		return px->gateway && (r->kind == SN_KIND_VIRTUAL_SERVICE || sn_kind_is_gwapi_route(r->kind)) &&
		       sn_resource_for_gateways(r->set.head);
	}
}

/* Whether root_for can hold for some proxy: derive lists these. */
static int may_be_root(const struct view_res *r)
{
	static const struct sn_mesh_proxy gw = { .gateway = 1 };
	if (r->kind == SN_KIND_AUTHORIZATION_POLICY || r->kind == SN_KIND_PEER_AUTHENTICATION ||
	    r->kind == SN_KIND_REQUEST_AUTHENTICATION || r->kind == SN_KIND_TELEMETRY || r->kind == SN_KIND_SERVER ||
	    r->kind == SN_KIND_RATE_LIMIT)
		return 1;
	return root_for(&gw, r);
}

/* One label of one WorkloadEntry, for finding what a selector picks. */
struct we_label {
	const char *ns, *key, *value;
	size_t res;
};

static int cmp_we_label(const void *a, const void *b)
{
	const struct we_label *x = a, *y = b;
	int c = strcmp(x->ns, y->ns);
	if (c == 0)
		c = strcmp(x->key, y->key);
	if (c == 0)
		c = strcmp(x->value, y->value);
	return c;
}

static int cmp_we_label_res(const void *a, const void *b)
{
	int c = cmp_we_label(a, b);
	const struct we_label *x = a, *y = b;
	return c != 0 ? c : (x->res > y->res) - (x->res < y->res);
}

static size_t we_label_lower_bound(const struct we_label *v, size_t n, const struct we_label *want)
{
	return sn_lower_bound(v, n, sizeof(*v), want, cmp_we_label, NULL);
}

/* Every label of every parsed WorkloadEntry of the view, sorted by
 * (namespace, key, value, entry): an entry's dependants stay in view
 * order. NULL without memory. */
static struct we_label *we_label_index(const struct view *v, size_t *n)
{
	struct sn_workload_info w;
	size_t cap = 0;
	*n = 0;
	for (size_t i = 0; i < v->n; i++)
		if (sn_workload_of(v->v[i]->set.head, &w) == 0)
			cap += w.labels->n;
	struct we_label *wl = calloc(cap + 1, sizeof(*wl));
	if (wl == NULL)
		return NULL;
	for (size_t i = 0; i < v->n; i++) {
		if (sn_workload_of(v->v[i]->set.head, &w) != 0)
			continue;
		for (size_t k = 0; k < w.labels->n; k++)
			wl[(*n)++] = (struct we_label){ v->v[i]->ns, w.labels->v[k].key, w.labels->v[k].value, i };
	}
	qsort(wl, *n, sizeof(*wl), cmp_we_label_res);
	return wl;
}

/* Deriving hosts and dependencies from what each resource names
 * (sn_resource_refs), in three passes over the view. */
enum refs_pass {
	REFS_COUNT,          /* ServiceEntry hosts, to size the host list */
	REFS_ENTRY_HOSTS,    /* ServiceEntry hosts: looked up like Service FQDNs (the exact
			      * ones) or like wildcard VirtualService hosts */
	REFS_RESOLVE,        /* the rest, resolved against Services and ServiceEntries */
};

struct derive_refs {
	enum refs_pass pass;
	struct view_res *r;
	size_t i;                    /* r's index */
	struct host_ref *svcs;       /* REFS_ENTRY_HOSTS appends to it */
	size_t n_svcs;
	size_t count;
	int oom;
};

static void on_ref(void *user, enum sn_ref_type type, const char *host, const char *ns)
{
	struct derive_refs *x = user;
	struct view_res *r = x->r;

	switch (x->pass) {
	case REFS_COUNT:
		x->count += type == SN_REF_ENTRY_HOST;
		return;
	case REFS_ENTRY_HOSTS:
		if (type != SN_REF_ENTRY_HOST)
			return;
		if (push_host(r, entry_host(host)) != 0) {
			x->oom = 1;
			return;
		}
		if (r->hosts[r->n_hosts - 1][0] != '*') {
			x->svcs[x->n_svcs].host = r->hosts[r->n_hosts - 1];
			x->svcs[x->n_svcs++].res = x->i;
		}
		return;
	case REFS_RESOLVE:
		if (type == SN_REF_HOST) {
			x->oom |= push_host(r, resolve(host, ns, x->svcs, x->n_svcs)) != 0;
		} else if (type == SN_REF_DEST) {
			char *fq = resolve(host, ns, x->svcs, x->n_svcs);
			ssize_t s = fq ? find_service(x->svcs, x->n_svcs, fq) : -1;
			free(fq);
			if (s >= 0)
				x->oom |= push_dep(r, (size_t)s) != 0;
		}
		return;
	}
}

static int derive(struct view *v)
{
	struct host_ref *svcs = NULL;
	size_t n_svcs = 0, n_refs = 0, n_wild = 0;
	int oom = 0;

	free(v->by_host);
	free(v->wild_vs);
	v->by_host = NULL;
	v->wild_vs = NULL;
	v->n_by_host = v->n_wild_vs = 0;
	struct derive_refs x = { .pass = REFS_COUNT };
	for (size_t i = 0; i < v->n; i++)
		if (v->v[i]->kind == SN_KIND_SERVICE_ENTRY)
			sn_resource_refs(v->v[i]->set.head, on_ref, &x);
	size_t n_se_hosts = x.count;
	svcs = calloc(v->n + n_se_hosts + 1, sizeof(*svcs));
	if (svcs == NULL)
		return SN_ENOMEM;
	for (size_t i = 0; i < v->n; i++) {
		struct view_res *r = v->v[i];
		res_clear_derived(r);
		if (r->kind != SN_KIND_SERVICE || r->set.head == NULL)
			continue;
		r->fqdn = xprintf("%s.%s.svc.", r->name, r->ns);
		if (r->fqdn != NULL) {
			char *full = xprintf("%s%s", r->fqdn, sn_cluster_domain());
			free(r->fqdn);
			r->fqdn = full;
		}
		if (r->fqdn == NULL) {
			oom = 1;
			continue;
		}
		sn_ascii_lower(r->fqdn);
		svcs[n_svcs].host = r->fqdn;
		svcs[n_svcs++].res = i;
	}
	qsort(svcs, n_svcs, sizeof(*svcs), cmp_host_ref);

	/* ServiceEntry hosts (as written, never qualified) are looked up
	 * like Service FQDNs; wildcard ones like wildcard VS hosts. */
	x = (struct derive_refs){ .pass = REFS_ENTRY_HOSTS, .svcs = svcs, .n_svcs = n_svcs };
	for (size_t i = 0; i < v->n; i++) {
		if (v->v[i]->kind != SN_KIND_SERVICE_ENTRY)
			continue;
		x.r = v->v[i];
		x.i = i;
		sn_resource_refs(x.r->set.head, on_ref, &x);
	}
	n_svcs = x.n_svcs;
	oom |= x.oom;
	qsort(svcs, n_svcs, sizeof(*svcs), cmp_host_ref);

	/* hosts of VirtualServices, routes and DestinationRules, resolved;
	 * the Services they (and the mesh config) send traffic to */
	size_t cap_refs = n_svcs;
	x = (struct derive_refs){ .pass = REFS_RESOLVE, .svcs = svcs, .n_svcs = n_svcs };
	for (size_t i = 0; i < v->n; i++) {
		struct view_res *r = v->v[i];
		if (r->kind == SN_KIND_SERVICE_ENTRY)
			continue;
		x.r = r;
		sn_resource_refs(r->set.head, on_ref, &x);
		if (r->kind == SN_KIND_VIRTUAL_SERVICE || sn_kind_is_gwapi_route(r->kind))
			cap_refs += r->n_hosts;
	}
	oom |= x.oom;
	v->by_host = calloc(cap_refs + 1, sizeof(*v->by_host));
	v->wild_vs = calloc(v->n + 1, sizeof(*v->wild_vs));
	if (v->by_host == NULL || v->wild_vs == NULL) {
		free(svcs);
		return SN_ENOMEM;
	}
	memcpy(v->by_host, svcs, n_svcs * sizeof(*svcs));
	n_refs = n_svcs;
	for (size_t i = 0; i < v->n; i++) {
		struct view_res *r = v->v[i];
		if (r->kind != SN_KIND_VIRTUAL_SERVICE && r->kind != SN_KIND_SERVICE_ENTRY &&
		    r->kind != SN_KIND_HTTP_ROUTE && r->kind != SN_KIND_GRPC_ROUTE)
			continue;
		int wild = 0;
		for (size_t k = 0; k < r->n_hosts; k++) {
			if (r->hosts[k][0] == '*') {
				wild = 1;
				continue;
			}
			if (r->kind == SN_KIND_SERVICE_ENTRY)
				continue; /* a ServiceEntry's are in svcs */
			v->by_host[n_refs].host = r->hosts[k];
			v->by_host[n_refs++].res = i;
		}
		if (wild)
			v->wild_vs[n_wild++] = i;
	}
	qsort(v->by_host, n_refs, sizeof(*v->by_host), cmp_host_ref);
	v->n_by_host = n_refs;
	v->n_wild_vs = n_wild;

	/* what each Service (or ServiceEntry) needs: the WorkloadEntries its
	 * selector (workloadSelector) picks, and per host its DestinationRules
	 * and VirtualServices. The WorkloadEntries by an index of their
	 * labels: a selector's first label narrows the candidates, so
	 * thousands of registered proxies cost a sort, not a scan per
	 * Service. */
	size_t n_wl = 0, n_drs = 0;
	struct we_label *wl = we_label_index(v, &n_wl);
	size_t *drs = calloc(v->n + 1, sizeof(*drs));
	if (wl == NULL || drs == NULL) {
		free(wl);
		free(drs);
		free(svcs);
		return SN_ENOMEM;
	}
	for (size_t i = 0; i < v->n; i++)
		if (v->v[i]->kind == SN_KIND_DESTINATION_RULE && v->v[i]->n_hosts > 0)
			drs[n_drs++] = i;
	for (size_t s = 0; s < v->n; s++) {
		struct view_res *sv = v->v[s];
		const struct sn_labels *sel = sv->kind == SN_KIND_SERVICE || sv->kind == SN_KIND_SERVICE_ENTRY
						      ? sn_service_selector(sv->set.head)
						      : NULL;
		if (sel == NULL)
			continue;
		struct we_label want = { sv->ns, sel->v[0].key, sel->v[0].value, 0 };
		for (size_t i = we_label_lower_bound(wl, n_wl, &want); i < n_wl && !cmp_we_label(&wl[i], &want); i++) {
			struct sn_workload_info w;
			if (sn_workload_of(v->v[wl[i].res]->set.head, &w) == 0 && sn_labels_match(sel, w.labels))
				oom |= push_dep(sv, wl[i].res) != 0;
		}
	}
	free(wl);
	for (size_t s = 0; s < n_svcs; s++) {
		struct view_res *sv = v->v[svcs[s].res];
		const char *fqdn = svcs[s].host;
		for (size_t k = 0; k < n_drs; k++) {
			struct view_res *d = v->v[drs[k]];
			if (!strcmp(d->hosts[0], fqdn) || wildcard_match(d->hosts[0], fqdn))
				oom |= push_dep(sv, drs[k]) != 0;
		}
		for (size_t i = host_lower_bound(v->by_host, v->n_by_host, fqdn);
		     i < v->n_by_host && !strcmp(v->by_host[i].host, fqdn); i++)
			if (v->v[v->by_host[i].res]->kind == SN_KIND_VIRTUAL_SERVICE ||
			    v->v[v->by_host[i].res]->kind == SN_KIND_HTTP_ROUTE ||
			    v->v[v->by_host[i].res]->kind == SN_KIND_GRPC_ROUTE)
				oom |= push_dep(sv, v->by_host[i].res) != 0;
		for (size_t i = 0; i < v->n_wild_vs; i++) {
			struct view_res *vs = v->v[v->wild_vs[i]];
			if (vs->kind != SN_KIND_VIRTUAL_SERVICE)
				continue;
			for (size_t k = 0; k < vs->n_hosts; k++)
				if (wildcard_match(vs->hosts[k], fqdn)) {
					oom |= push_dep(sv, v->wild_vs[i]) != 0;
					break;
				}
		}
	}
	free(drs);
	free(svcs);
	/* the resources that reach a proxy other than by the hosts it calls */
	free(v->roots);
	v->n_roots = 0;
	v->roots = calloc(v->n + 1, sizeof(*v->roots));
	if (v->roots == NULL)
		return SN_ENOMEM;
	for (size_t i = 0; i < v->n; i++)
		if (may_be_root(v->v[i]))
			v->roots[v->n_roots++] = i;
	return oom ? SN_ENOMEM : 0;
}

/* ---- building the view ----------------------------------------------- */

/* Shares this replica's registrations with the others (etcd; a no-op
 * for a directory store): what changed since the last view. */
static void publish_regs(struct sn_mesh *m, const struct view *nv)
{
	for (size_t i = 0; i < nv->n; i++) {
		const struct view_res *r = nv->v[i];
		const struct sn_strmap_kv *had = r->reg != NULL ? sn_strmap_get(&m->published, r->key) : NULL;
		if (r->reg == NULL || (had != NULL && !strcmp(had->value, r->rv)))
			continue;
		if (sn_store_publish_reg(m->store, r->ns, r->name, r->rv, r->text) == 0 &&
		    sn_strmap_put(&m->published, r->key, r->rv) != 0)
			sn_log(SN_LOG_WARN, "mesh: out of memory noting %s as published", r->key);
	}
	for (size_t i = m->published.n; i-- > 0;) {
		const char *key = m->published.v[i].key;
		ssize_t at = view_index(nv, key);
		if (at >= 0 && nv->v[at]->reg != NULL)
			continue;
		const char *ns = strchr(key, '/'), *name = ns ? strchr(ns + 1, '/') : NULL;
		if (name != NULL) {
			char nsb[256];
			snprintf(nsb, sizeof(nsb), "%.*s", (int)(name - ns - 1), ns + 1);
			sn_store_publish_reg(m->store, nsb, name + 1, NULL, NULL);
		}
		sn_strmap_del(&m->published, key);
	}
}

static uint64_t sig_add(uint64_t h, const char *s)
{
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	h ^= 0xff; /* the end of a field: "ab","c" is not "a","bc" */
	return h * 1099511628211ULL;
}

/* What a proxy holding r would see change (FNV-1a): its version, the
 * hosts it was derived to, and what it brings along, with their versions.
 * A WorkloadEntry or DestinationRule reaches a proxy only through a
 * Service that depends on it, so its change is that Service's. */
static uint64_t res_sig(const struct view *v, const struct view_res *r)
{
	uint64_t h = sig_add(14695981039346656037ULL, r->rv);
	h = sig_add(h, r->fqdn != NULL ? r->fqdn : "");
	for (size_t i = 0; i < r->n_hosts; i++)
		h = sig_add(h, r->hosts[i]);
	for (size_t i = 0; i < r->n_deps; i++)
		h = sig_add(sig_add(h, v->v[r->deps[i]]->key), v->v[r->deps[i]]->rv);
	return h;
}

/* Whether r is one of the hosts px calls, as closure_of finds them: a
 * Service's FQDN, a ServiceEntry's or route's host (exact or wildcard). */
static int reached_by_hosts(const struct sn_mesh_proxy *px, const struct view_res *r)
{
	if (r->kind != SN_KIND_SERVICE && r->kind != SN_KIND_SERVICE_ENTRY && r->kind != SN_KIND_VIRTUAL_SERVICE &&
	    r->kind != SN_KIND_HTTP_ROUTE && r->kind != SN_KIND_GRPC_ROUTE)
		return 0;
	for (size_t s = 0; s < px->n_subs; s++) {
		char cand[2][SN_HOST_CAND_MAX];
		int nc = candidates(px->subs[s].host, px->ns, cand);
		for (int k = 0; k < nc; k++) {
			if (r->fqdn != NULL && !strcmp(r->fqdn, cand[k]))
				return 1;
			for (size_t h = 0; h < r->n_hosts; h++)
				if (r->hosts[h][0] == '*' ? wildcard_match(r->hosts[h], cand[k]) : !strcmp(r->hosts[h], cand[k]))
					return 1;
		}
	}
	return 0;
}

static int holds(const struct sn_mesh_proxy *px, const char *key)
{
	return sn_strmap_get(&px->held, key) != NULL || sn_strmap_get(&px->inflight_set, key) != NULL;
}

/* The index from resources to proxies: of what changed between two views
 * (fresh entries, entries whose sig moved, keys gone), a proxy is
 * recomputed only when it holds one of them or one would now reach it.
 * The others are as current at the new revision as they were at the
 * old. */
static void mark_affected(struct sn_mesh *m, const struct view *nv, const size_t *changed, size_t n_changed,
			  char *const *removed, size_t n_removed, uint64_t old_revision)
{
	int any = 0;
	for (struct sn_mesh_proxy *px = m->proxies; px != NULL; px = px->next) {
		if (px->gone || !px->hello)
			continue;
		for (size_t i = 0; i < n_removed && !px->dirty; i++)
			px->dirty = holds(px, removed[i]);
		for (size_t i = 0; i < n_changed && !px->dirty; i++) {
			const struct view_res *r = nv->v[changed[i]];
			px->dirty = holds(px, r->key) || reached_by_hosts(px, r) || root_for(px, r);
		}
		any |= px->dirty;
		if (!px->dirty && !px->inflight && !px->force && px->synced_revision == old_revision)
			px->synced_revision = nv->revision;
	}
	if (any)
		mesh_schedule(m);
}

/* Sorted by key, the earlier entry first: the store's, then this
 * replica's registrations, then the other replicas'. */
static int cmp_res_key_order(const void *a, const void *b)
{
	const struct view_res *x = *(const struct view_res *const *)a, *y = *(const struct view_res *const *)b;
	int c = strcmp(x->key, y->key);
	return c != 0 ? c : (x->order > y->order) - (x->order < y->order);
}

/* The view's next entry: kept from old when key is there at rv, else
 * parsed from text. NULL without memory. */
static struct view_res *view_take(struct view *old, struct view *nv, enum sn_resource_kind kind,
				  const char *api_version, const char *ns, const char *name, const char *rv,
				  const char *source, int line, const char *text, size_t text_len)
{
	char *key = make_key(kind, ns, name);
	struct view_res *r = key != NULL ? take_old(old, key, rv) : NULL;
	free(key);
	if (key == NULL)
		return NULL;
	if (r == NULL && (r = res_new(kind, api_version, ns, name, rv, source, line, text, text_len)) != NULL)
		r->fresh = 1;
	if (r != NULL) {
		r->reg = NULL;
		r->order = (unsigned)nv->n;
		nv->v[nv->n++] = r;
	}
	return r;
}

int mesh_view_refresh(struct sn_mesh *m)
{
	struct sn_store *st = m->store;
	struct view old = m->view, nv;
	char rv[32];
	const struct sn_shared_reg *sr;
	size_t n_sr = sn_store_shared_regs(st, &sr);
	size_t cap = st->n + m->n_proxies + n_sr + 1, n_svcs = 0, n_taken_svcs = 0;
	const struct view_res **svcs = NULL;
	int rc = 0, svcs_new = 0;

	if (!m->view_stale)
		return 0;
	memset(&nv, 0, sizeof(nv));
	nv.v = calloc(cap, sizeof(*nv.v));
	svcs = calloc(cap, sizeof(*svcs));
	if (nv.v == NULL || svcs == NULL) {
		free(nv.v);
		free(svcs);
		return SN_ENOMEM;
	}
	for (size_t i = 0; i < st->n; i++) {
		const struct sn_stored *e = st->v[i];
		snprintf(rv, sizeof(rv), "%llu", (unsigned long long)e->resource_version);
		struct view_res *r = view_take(&old, &nv, e->kind, e->api_version, e->namespace_, e->name, rv, e->source,
					       e->line, e->text, e->text_len);
		if (r == NULL) {
			rc = SN_ENOMEM;
			continue;
		}
		if (r->kind == SN_KIND_SERVICE && r->set.head != NULL) {
			svcs[n_svcs++] = r;
			svcs_new |= r->fresh;
			n_taken_svcs += !r->fresh;
		}
	}
	/* Registrations render from the Services: again only when those
	 * changed (or the proxy is new), not on every registration. */
	if (svcs_new || n_taken_svcs != old.n_services)
		m->svc_gen++;
	nv.n_services = n_svcs;
	for (struct sn_mesh_proxy *px = m->proxies; px != NULL; px = px->next) {
		if (!px->registered || px->gone)
			continue;
		if (px->reg_text == NULL || px->reg_svc_gen != m->svc_gen) {
			registry_render(m, px, svcs, n_svcs);
			px->reg_svc_gen = m->svc_gen;
		}
		if (px->reg_text == NULL || px->reg_error != NULL)
			continue;
		if (sn_store_get(st, SN_KIND_WORKLOAD_ENTRY, px->ns, px->reg_name) != NULL)
			continue; /* an applied WorkloadEntry of that name wins */
		struct view_res *r = view_take(&old, &nv, SN_KIND_WORKLOAD_ENTRY, "networking.istio.io/v1", px->ns,
					       px->reg_name, px->reg_rv, "sinewd-registry", 1, px->reg_text,
					       strlen(px->reg_text));
		if (r == NULL) {
			rc = SN_ENOMEM;
			continue;
		}
		r->reg = px;
		if (!m->grace_over && sn_strmap_put(&m->seen_regs, r->key, r->rv) != 0)
			rc = SN_ENOMEM;
	}
	/* The other replicas' registrations (etcd): after this replica's own,
	 * which win, as an applied WorkloadEntry does. */
	for (size_t i = 0; i < n_sr; i++) {
		if (sn_store_get(st, SN_KIND_WORKLOAD_ENTRY, sr[i].ns, sr[i].name) != NULL)
			continue;
		if (view_take(&old, &nv, SN_KIND_WORKLOAD_ENTRY, "networking.istio.io/v1", sr[i].ns, sr[i].name,
			      sr[i].rv, "sinewd-registry", 1, sr[i].text, sr[i].text_len) == NULL)
			rc = SN_ENOMEM;
	}
	free(svcs);
	/* One entry per key, the earliest: two links of one proxy id
	 * register the same name until the older closes. */
	qsort(nv.v, nv.n, sizeof(*nv.v), cmp_res_key_order);
	size_t kept = 0;
	for (size_t i = 0; i < nv.n; i++) {
		if (kept > 0 && !strcmp(nv.v[kept - 1]->key, nv.v[i]->key)) {
			if (nv.v[i]->fresh)
				res_free(nv.v[i]);
			else
				nv.v[i]->taken = 0;   /* still old's: freed with it below */
			continue;
		}
		nv.v[kept++] = nv.v[i];
	}
	nv.n = kept;
	publish_regs(m, &nv);

	/* What left the view: its keys, for the proxies holding them. */
	char **removed = calloc(old.n + 1, sizeof(*removed));
	size_t n_removed = 0;
	for (size_t i = 0; i < old.n; i++) {
		struct view_res *r = old.v[i];
		if (r->taken)
			continue;
		if (removed != NULL && r->kind != SN_KIND_WORKLOAD_ENTRY && r->kind != SN_KIND_DESTINATION_RULE &&
		    view_index(&nv, r->key) < 0) {
			removed[n_removed++] = r->key;
			r->key = NULL;
		}
		res_free(r);
	}
	for (size_t i = 0; i < nv.n; i++)
		nv.v[i]->taken = 0;
	free(old.v);
	free(old.by_host);
	free(old.wild_vs);
	free(old.roots);
	nv.revision = st->revision;
	nv.epoch = old.epoch;
	if (derive(&nv) != 0)
		rc = SN_ENOMEM;

	/* What changed for those holding it (see res_sig). */
	size_t *changed = calloc(nv.n + 1, sizeof(*changed)), n_changed = 0;
	for (size_t i = 0; i < nv.n; i++) {
		struct view_res *r = nv.v[i];
		uint64_t sig = res_sig(&nv, r);
		if ((r->fresh || sig != r->sig) && changed != NULL && r->kind != SN_KIND_WORKLOAD_ENTRY &&
		    r->kind != SN_KIND_DESTINATION_RULE)
			changed[n_changed++] = i;
		r->sig = sig;
		r->fresh = 0;
	}
	m->view = nv;
	m->view_stale = 0;
	if (changed == NULL || removed == NULL || rc != 0)
		mesh_changed_all(m);   /* not knowing what changed: everyone */
	else
		mark_affected(m, &m->view, changed, n_changed, removed, n_removed, old.revision);
	for (size_t i = 0; i < n_removed; i++)
		free(removed[i]);
	free(removed);
	free(changed);
	if (rc != 0)
		sn_log(SN_LOG_ERROR, "mesh: out of memory building the view of %zu resources; pushes may be incomplete",
		       nv.n);
	return rc;
}

/* ---- the relevant set of one proxy ----------------------------------- */

struct closure {
	struct view *v;
	size_t *list;
	size_t n, cap;
	int oom;
};

static void add_res(struct closure *c, size_t i)
{
	struct view_res *r = c->v->v[i];
	if (r->mark == c->v->epoch)
		return;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 32;
		size_t *nl = realloc(c->list, cap * sizeof(*nl));
		if (nl == NULL) {
			c->oom = 1;
			return;
		}
		c->list = nl;
		c->cap = cap;
	}
	r->mark = c->v->epoch;
	c->list[c->n++] = i;
}


static void closure_of(struct sn_mesh_proxy *px, struct closure *c)
{
	struct view *v = c->v;

	v->epoch++;
	if (v->epoch == 0)
		v->epoch = 1;
	for (size_t s = 0; s < px->n_subs; s++) {
		char cand[2][SN_HOST_CAND_MAX];
		int nc = candidates(px->subs[s].host, px->ns, cand);
		for (int k = 0; k < nc; k++) {
			for (size_t i = host_lower_bound(v->by_host, v->n_by_host, cand[k]);
			     i < v->n_by_host && !strcmp(v->by_host[i].host, cand[k]); i++)
				add_res(c, v->by_host[i].res);
			for (size_t i = 0; i < v->n_wild_vs; i++) {
				struct view_res *vs = v->v[v->wild_vs[i]];
				for (size_t h = 0; h < vs->n_hosts; h++)
					if (wildcard_match(vs->hosts[h], cand[k])) {
						add_res(c, v->wild_vs[i]);
						break;
					}
			}
		}
	}
	for (size_t i = 0; i < v->n_roots; i++)
		if (root_for(px, v->v[v->roots[i]]))
			add_res(c, v->roots[i]);
	/* breadth first: what is added brings what it needs */
	for (size_t i = 0; i < c->n; i++) {
		struct view_res *r = v->v[c->list[i]];
		for (size_t k = 0; k < r->n_deps; k++)
			add_res(c, r->deps[k]);
	}
}

/* ---- sending ---------------------------------------------------------- */

static int is_registered_key(const char *key)
{
	static const char pfx[] = "WorkloadEntry/";
	if (strncmp(key, pfx, sizeof(pfx) - 1) != 0)
		return 0;
	const char *slash = strchr(key + sizeof(pfx) - 1, '/');
	return slash != NULL && !strncmp(slash + 1, MESH_REG_PREFIX, strlen(MESH_REG_PREFIX));
}

static void out_res(struct sn_out *o, const struct view_res *r)
{
	sn_out_cstr(o, "{\"kind\":");
	sn_out_json_cstr(o, sn_resource_kind_str(r->kind));
	sn_out_cstr(o, ",\"namespace\":");
	sn_out_json_cstr(o, r->ns);
	sn_out_cstr(o, ",\"name\":");
	sn_out_json_cstr(o, r->name);
	sn_out_cstr(o, ",\"resourceVersion\":");
	sn_out_json_cstr(o, r->rv);
	sn_out_cstr(o, ",\"source\":");
	sn_out_json_cstr(o, r->source);
	sn_out_printf(o, ",\"line\":%d,\"yaml\":", r->line);
	sn_out_json_str(o, r->text, r->text_len);
	sn_out_cstr(o, "}");
}

static void inflight_clear(struct sn_mesh_proxy *px)
{
	sn_strmap_free(&px->inflight_set);
	for (size_t i = 0; i < px->n_inflight_removed; i++)
		free(px->inflight_removed[i]);
	free(px->inflight_removed);
	px->inflight_removed = NULL;
	px->n_inflight_removed = 0;
	px->inflight = 0;
}

void mesh_push(struct sn_mesh *m, struct sn_mesh_proxy *px)
{
	struct closure c = { 0 };
	struct sn_out o = { 0 };
	size_t *send = NULL, n_send = 0, n_subscribed = 0;
	uint64_t now = sn_loop_now(m->loop);
	int grace = !m->grace_over && now < m->grace_until_ms;
	int oom = 0;

	if (!px->hello || px->gone || px->inflight || px->conn == NULL)
		return;
	mesh_view_refresh(m);
	c.v = &m->view;
	closure_of(px, &c);
	px->recomputes++;
	send = calloc(c.n + px->held.n + 1, sizeof(*send));
	if (c.oom || send == NULL)
		goto oom;
	px->dirty = 0;

	/* added or changed */
	for (size_t i = 0; i < c.n; i++) {
		const struct view_res *r = m->view.v[c.list[i]];
		const struct sn_strmap_kv *h = sn_strmap_get(&px->held, r->key);
		if (h == NULL || strcmp(h->value, r->rv) != 0)
			send[n_send++] = c.list[i];
	}
	/* held and no longer needed */
	for (size_t i = 0; i < px->held.n; i++) {
		const struct sn_strmap_kv *h = &px->held.v[i];
		ssize_t at = view_index(&m->view, h->key);
		const struct view_res *r = at >= 0 ? m->view.v[at] : NULL;
		if (r != NULL && r->mark == m->view.epoch)
			continue;
		if (r != NULL && px->keep_have) {
			/* Reconnected, subscriptions not in yet: keep what it
			 * holds, newer if there is newer. */
			if (strcmp(h->value, r->rv) != 0)
				send[n_send++] = (size_t)at;
			continue;
		}
		if (r == NULL && grace && is_registered_key(h->key) && sn_strmap_get(&m->seen_regs, h->key) == NULL)
			continue; /* its proxy may not have reconnected yet */
		char **nr = realloc(px->inflight_removed, (px->n_inflight_removed + 1) * sizeof(*nr));
		if (nr == NULL)
			goto oom;
		px->inflight_removed = nr;
		if ((nr[px->n_inflight_removed] = strdup(h->key)) == NULL)
			goto oom;
		px->n_inflight_removed++;
	}
	for (size_t i = 0; i < px->n_subs; i++)
		n_subscribed += !px->subs[i].answered;
	if (n_send == 0 && px->n_inflight_removed == 0 && n_subscribed == 0 && !px->force) {
		free(send);
		free(c.list);
		inflight_clear(px);
		px->synced_revision = m->view.revision;
		return;
	}

	sn_out_printf(&o, "{\"type\":\"resources\",\"nonce\":\"%llu\",\"version\":\"%llu\",\"resources\":[",
		      (unsigned long long)px->nonce + 1, (unsigned long long)m->view.revision);
	for (size_t i = 0; i < n_send; i++) {
		const struct view_res *r = m->view.v[send[i]];
		if (i)
			sn_out_cstr(&o, ",");
		out_res(&o, r);
		oom |= sn_strmap_put(&px->inflight_set, r->key, r->rv) != 0;
	}
	sn_out_cstr(&o, "],\"removed\":[");
	for (size_t i = 0; i < px->n_inflight_removed; i++) {
		if (i)
			sn_out_cstr(&o, ",");
		sn_out_json_cstr(&o, px->inflight_removed[i]);
	}
	sn_out_cstr(&o, "],\"subscribed\":[");
	for (size_t i = 0, k = 0; i < px->n_subs; i++) {
		if (px->subs[i].answered)
			continue;
		if (k++)
			sn_out_cstr(&o, ",");
		sn_out_json_cstr(&o, px->subs[i].host);
	}
	sn_out_cstr(&o, "]}");
	free(send);
	send = NULL;
	free(c.list);
	c.list = NULL;
	if (o.failed || oom)
		goto oom;
	if (o.len > SN_XDS_MAX_MESSAGE) {
		sn_log(SN_LOG_ERROR, "mesh: push for proxy %s is %zu bytes, over the %u-byte message limit; not sent "
				     "(it stays STALE); split the large resources it subscribes to",
		       px->id, o.len, SN_XDS_MAX_MESSAGE);
		sn_out_free(&o);
		inflight_clear(px);
		return;
	}
	int rc = sn_xds_send(px->conn, o.p, o.len);
	sn_out_free(&o);
	if (rc != 0) {
		inflight_clear(px);
		sn_log(SN_LOG_WARN, "mesh: cannot queue a push for proxy %s (%s): %d; closing its link", px->id,
		       px->peer, rc);
		sn_xds_close(px->conn, "push not queued");
		return;
	}
	px->nonce++;
	px->inflight = 1;
	px->inflight_revision = m->view.revision;
	px->sent_ms = now;
	px->force = 0;
	px->pushes++;
	m->pushes++;
	for (size_t i = 0; i < px->n_subs; i++)
		px->subs[i].answered = 1;
	sn_log(SN_LOG_DEBUG, "mesh: push %llu to %s: %zu resources, %zu removed, %zu subscriptions, revision %llu",
	       (unsigned long long)px->nonce, px->id, px->inflight_set.n, px->n_inflight_removed, n_subscribed,
	       (unsigned long long)m->view.revision);
	return;

oom:
	free(send);
	free(c.list);
	sn_out_free(&o);
	inflight_clear(px);
	px->dirty = 1;
	sn_log(SN_LOG_ERROR, "mesh: out of memory computing the push for proxy %s; retried on the next change",
	       px->id);
}
