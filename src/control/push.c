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
 * Cost per change: O(proxies x relevant set); the view is rebuilt only
 * when the store or the registry changed, re-parsing only changed
 * resources. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/log.h"
#include "mesh_internal.h"
#include "../config/config_internal.h"

/* ---- kvmap: sorted (key -> rv) --------------------------------------- */

void kvmap_free(struct kvmap *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].key);
		free(m->v[i].rv);
	}
	free(m->v);
	memset(m, 0, sizeof(*m));
}

static size_t kvmap_pos(const struct kvmap *m, const char *key, int *found)
{
	size_t lo = 0, hi = m->n;
	*found = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, m->v[mid].key);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

struct kv *kvmap_get(const struct kvmap *m, const char *key)
{
	int found;
	size_t i = kvmap_pos(m, key, &found);
	return found ? &m->v[i] : NULL;
}

int kvmap_put(struct kvmap *m, const char *key, const char *rv)
{
	int found;
	size_t i = kvmap_pos(m, key, &found);
	char *nrv = strdup(rv ? rv : "");
	if (nrv == NULL)
		return SN_ENOMEM;
	if (found) {
		free(m->v[i].rv);
		m->v[i].rv = nrv;
		return 0;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct kv *nv = realloc(m->v, cap * sizeof(*nv));
		if (nv == NULL) {
			free(nrv);
			return SN_ENOMEM;
		}
		m->v = nv;
		m->cap = cap;
	}
	char *nk = strdup(key);
	if (nk == NULL) {
		free(nrv);
		return SN_ENOMEM;
	}
	memmove(&m->v[i + 1], &m->v[i], (m->n - i) * sizeof(*m->v));
	m->v[i].key = nk;
	m->v[i].rv = nrv;
	m->n++;
	return 0;
}

void kvmap_del(struct kvmap *m, const char *key)
{
	int found;
	size_t i = kvmap_pos(m, key, &found);
	if (!found)
		return;
	free(m->v[i].key);
	free(m->v[i].rv);
	memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof(*m->v));
	m->n--;
}

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
	sn_arena_init(&r->set.arena, 4096);
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

static int cmp_res_key(const void *a, const void *b)
{
	const struct view_res *x = *(const struct view_res *const *)a, *y = *(const struct view_res *const *)b;
	return strcmp(x->key, y->key);
}

static ssize_t view_index(const struct view *v, const char *key)
{
	size_t lo = 0, hi = v->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, v->v[mid]->key);
		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
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
static size_t host_lower_bound(const struct host_ref *refs, size_t n, const char *host)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(refs[mid].host, host) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
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
	size_t n_se_hosts = 0;
	for (size_t i = 0; i < v->n; i++)
		if (v->v[i]->kind == SN_KIND_SERVICE_ENTRY && v->v[i]->set.head != NULL)
			n_se_hosts += ((const struct cfg_service_entry *)v->v[i]->set.head->spec)->n_hosts;
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
	for (size_t i = 0; i < v->n; i++) {
		struct view_res *r = v->v[i];
		if (r->kind != SN_KIND_SERVICE_ENTRY || r->set.head == NULL)
			continue;
		const struct cfg_service_entry *se = r->set.head->spec;
		for (size_t k = 0; k < se->n_hosts; k++) {
			if (push_host(r, entry_host(se->hosts[k])) != 0) {
				oom = 1;
				continue;
			}
			if (r->hosts[r->n_hosts - 1][0] == '*')
				continue;
			svcs[n_svcs].host = r->hosts[r->n_hosts - 1];
			svcs[n_svcs++].res = i;
		}
	}
	qsort(svcs, n_svcs, sizeof(*svcs), cmp_host_ref);

	/* hosts of VirtualServices and DestinationRules, resolved */
	size_t cap_refs = n_svcs;
	for (size_t i = 0; i < v->n; i++) {
		struct view_res *r = v->v[i];
		const struct sn_resource *res = r->set.head;
		if (res == NULL)
			continue;
		if (r->kind == SN_KIND_VIRTUAL_SERVICE || sn_kind_is_gwapi_route(r->kind)) {
			const struct cfg_vs *vs = res->spec;
			/* bound to gateways only: no host for sidecars, but its
			 * destinations for the gateway proxies (closure_of) */
			for (size_t k = 0; vs->for_mesh && k < vs->n_hosts; k++)
				oom |= push_host(r, resolve(vs->hosts[k], r->ns, svcs, n_svcs)) != 0;
			/* an HTTPRoute's hosts for sidecars: the Services it is attached to */
			for (size_t k = 0; vs->gateway_api && k < vs->n_parents; k++)
				if (vs->parents[k].service)
					oom |= push_host(r, resolve(vs->parents[k].name,
								    vs->parents[k].ns ? vs->parents[k].ns : r->ns,
								    svcs, n_svcs)) != 0;
			cap_refs += r->n_hosts;
			/* destinations and mirrors */
			for (size_t h = 0; h < vs->n_http; h++)
				for (size_t d = 0; d < vs->http[h].n_dests + vs->http[h].n_mirrors; d++) {
					const struct cfg_http *ht = &vs->http[h];
					const struct cfg_dest *cd = d < ht->n_dests ? &ht->dests[d] : &ht->mirrors[d - ht->n_dests];
					if (cd->host == NULL)
						continue;
					char *fq = resolve(cd->host, cd->ref_ns ? cd->ref_ns : r->ns, svcs, n_svcs);
					ssize_t s = fq ? find_service(svcs, n_svcs, fq) : -1;
					free(fq);
					if (s >= 0)
						oom |= push_dep(r, (size_t)s) != 0;
				}
			/* and tls[] (a gateway's passthrough) and tcp[] routes */
			for (size_t h = 0; h < vs->n_tls + vs->n_tcp; h++)
				for (size_t d = 0; d < (h < vs->n_tls ? vs->tls[h] : vs->tcp[h - vs->n_tls]).n_dests; d++) {
					const struct cfg_dest *cd = &(h < vs->n_tls ? vs->tls[h] : vs->tcp[h - vs->n_tls]).dests[d];
					char *fq = cd->host ? resolve(cd->host, cd->ref_ns ? cd->ref_ns : r->ns, svcs, n_svcs) : NULL;
					ssize_t s = fq ? find_service(svcs, n_svcs, fq) : -1;
					free(fq);
					if (s >= 0)
						oom |= push_dep(r, (size_t)s) != 0;
				}
		} else if (r->kind == SN_KIND_DESTINATION_RULE) {
			const struct cfg_dr *dr = res->spec;
			if (dr->host != NULL)
				oom |= push_host(r, resolve(dr->host, r->ns, svcs, n_svcs)) != 0;
		} else if (r->kind == SN_KIND_CONFIG_MAP) {
			/* the mesh config brings its authorizers' services */
			const struct cfg_mesh *m = res->spec;
			for (size_t k = 0; m != NULL && k < m->n_providers; k++) {
				const char *svc = m->providers[k].service, *slash = strchr(svc, '/');
				char ns[256];
				snprintf(ns, sizeof(ns), "%.*s", slash ? (int)(slash - svc) : (int)strlen(r->ns),
					 slash ? svc : r->ns);
				char *fq = resolve(slash ? slash + 1 : svc, ns, svcs, n_svcs);
				ssize_t si = fq ? find_service(svcs, n_svcs, fq) : -1;
				free(fq);
				if (si >= 0)
					oom |= push_dep(r, (size_t)si) != 0;
			}
		}
	}
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
	 * and VirtualServices */
	for (size_t s = 0; s < v->n; s++) {
		struct view_res *sv = v->v[s];
		const struct cfg_service *cs = NULL;
		if (sv->set.head == NULL)
			continue;
		if (sv->kind == SN_KIND_SERVICE)
			cs = sv->set.head->spec;
		else if (sv->kind == SN_KIND_SERVICE_ENTRY)
			cs = &((const struct cfg_service_entry *)sv->set.head->spec)->svc;
		if (cs == NULL || !cs->has_selector || cs->selector.n == 0)
			continue;
		for (size_t i = 0; i < v->n; i++) {
			struct view_res *w = v->v[i];
			if (w->kind != SN_KIND_WORKLOAD_ENTRY || w->set.head == NULL || strcmp(w->ns, sv->ns))
				continue;
			const struct cfg_workload *cw = w->set.head->spec;
			if (sn_labels_match(&cs->selector, &cw->labels))
				oom |= push_dep(sv, i) != 0;
		}
	}
	for (size_t s = 0; s < n_svcs; s++) {
		struct view_res *sv = v->v[svcs[s].res];
		const char *fqdn = svcs[s].host;
		for (size_t i = 0; i < v->n; i++) {
			struct view_res *d = v->v[i];
			if (d->kind != SN_KIND_DESTINATION_RULE || d->n_hosts == 0)
				continue;
			if (!strcmp(d->hosts[0], fqdn) || wildcard_match(d->hosts[0], fqdn))
				oom |= push_dep(sv, i) != 0;
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
	free(svcs);
	return oom ? SN_ENOMEM : 0;
}

/* ---- building the view ----------------------------------------------- */

/* Shares this replica's registrations with the others (etcd; a no-op
 * for a directory store): what changed since the last view. */
static void publish_regs(struct sn_mesh *m, const struct view *nv)
{
	for (size_t i = 0; i < nv->n; i++) {
		const struct view_res *r = nv->v[i];
		const struct kv *had = r->reg != NULL ? kvmap_get(&m->published, r->key) : NULL;
		if (r->reg == NULL || (had != NULL && !strcmp(had->rv, r->rv)))
			continue;
		if (sn_store_publish_reg(m->store, r->ns, r->name, r->rv, r->text) == 0 &&
		    kvmap_put(&m->published, r->key, r->rv) != 0)
			sn_log(SN_LOG_WARN, "mesh: out of memory noting %s as published", r->key);
	}
	for (size_t i = m->published.n; i-- > 0;) {
		const char *key = m->published.v[i].key;
		int still = 0;
		for (size_t k = 0; k < nv->n && !still; k++)
			still = nv->v[k]->reg != NULL && !strcmp(nv->v[k]->key, key);
		if (still)
			continue;
		const char *ns = strchr(key, '/'), *name = ns ? strchr(ns + 1, '/') : NULL;
		if (name != NULL) {
			char nsb[256];
			snprintf(nsb, sizeof(nsb), "%.*s", (int)(name - ns - 1), ns + 1);
			sn_store_publish_reg(m->store, nsb, name + 1, NULL, NULL);
		}
		kvmap_del(&m->published, key);
	}
}

int mesh_view_refresh(struct sn_mesh *m)
{
	struct sn_store *st = m->store;
	struct view old = m->view, nv;
	char rv[32];
	size_t cap = st->n + m->n_proxies + 1, n_svcs = 0;
	const struct view_res **svcs = NULL;
	int rc = 0;

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
		char *key = make_key(e->kind, e->namespace_, e->name);
		struct view_res *r;
		if (key == NULL) {
			rc = SN_ENOMEM;
			continue;
		}
		snprintf(rv, sizeof(rv), "%llu", (unsigned long long)e->resource_version);
		r = take_old(&old, key, rv);
		free(key);
		if (r == NULL)
			r = res_new(e->kind, e->api_version, e->namespace_, e->name, rv, e->source, e->line, e->text,
				    e->text_len);
		if (r == NULL) {
			rc = SN_ENOMEM;
			continue;
		}
		r->reg = NULL;
		nv.v[nv.n++] = r;
		if (r->kind == SN_KIND_SERVICE && r->set.head != NULL)
			svcs[n_svcs++] = r;
	}
	for (struct sn_mesh_proxy *px = m->proxies; px != NULL; px = px->next) {
		if (!px->registered || px->gone)
			continue;
		registry_render(m, px, svcs, n_svcs);
		if (px->reg_text == NULL || px->reg_error != NULL)
			continue;
		if (sn_store_get(st, SN_KIND_WORKLOAD_ENTRY, px->ns, px->reg_name) != NULL) {
			/* an applied WorkloadEntry of that name wins */
			continue;
		}
		char *key = make_key(SN_KIND_WORKLOAD_ENTRY, px->ns, px->reg_name);
		if (key == NULL) {
			rc = SN_ENOMEM;
			continue;
		}
		int dup = 0;
		for (size_t i = 0; i < nv.n && !dup; i++)
			dup = nv.v[i]->reg != NULL && !strcmp(nv.v[i]->key, key);
		struct view_res *r = dup ? NULL : take_old(&old, key, px->reg_rv);
		free(key);
		if (dup)
			continue;
		if (r == NULL)
			r = res_new(SN_KIND_WORKLOAD_ENTRY, "networking.istio.io/v1", px->ns, px->reg_name, px->reg_rv,
				    "sinewd-registry", 1, px->reg_text, strlen(px->reg_text));
		if (r == NULL) {
			rc = SN_ENOMEM;
			continue;
		}
		r->reg = px;
		nv.v[nv.n++] = r;
		if (!m->grace_over && kvmap_put(&m->seen_regs, r->key, r->rv) != 0)
			rc = SN_ENOMEM;
	}
	/* The other replicas' registrations (etcd): after this replica's own,
	 * which win, as an applied WorkloadEntry does. */
	const struct sn_shared_reg *sr;
	size_t n_sr = sn_store_shared_regs(st, &sr);
	struct view_res **grown = n_sr ? realloc(nv.v, (cap + n_sr) * sizeof(*nv.v)) : nv.v;
	if (grown == NULL) {
		rc = SN_ENOMEM;
		n_sr = 0;
	} else {
		nv.v = grown;
	}
	for (size_t i = 0; i < n_sr; i++) {
		if (sn_store_get(st, SN_KIND_WORKLOAD_ENTRY, sr[i].ns, sr[i].name) != NULL)
			continue;
		char *key = make_key(SN_KIND_WORKLOAD_ENTRY, sr[i].ns, sr[i].name);
		int dup = 0;
		for (size_t k = 0; key != NULL && k < nv.n && !dup; k++)
			dup = !strcmp(nv.v[k]->key, key);
		struct view_res *r = key == NULL || dup ? NULL : take_old(&old, key, sr[i].rv);
		free(key);
		if (dup)
			continue;
		if (r == NULL)
			r = res_new(SN_KIND_WORKLOAD_ENTRY, "networking.istio.io/v1", sr[i].ns, sr[i].name, sr[i].rv,
				    "sinewd-registry", 1, sr[i].text, sr[i].text_len);
		if (r == NULL) {
			rc = SN_ENOMEM;
			continue;
		}
		r->reg = NULL;
		nv.v[nv.n++] = r;
	}
	publish_regs(m, &nv);
	free(svcs);
	qsort(nv.v, nv.n, sizeof(*nv.v), cmp_res_key);
	for (size_t i = 0; i < old.n; i++)
		if (!old.v[i]->taken)
			res_free(old.v[i]);
	for (size_t i = 0; i < nv.n; i++)
		nv.v[i]->taken = 0;
	free(old.v);
	free(old.by_host);
	free(old.wild_vs);
	nv.revision = st->revision;
	nv.epoch = old.epoch;
	if (derive(&nv) != 0)
		rc = SN_ENOMEM;
	m->view = nv;
	m->view_stale = 0;
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

/* The candidate names a proxy in ns tries for host (the snapshot's
 * sn_snapshot_find_vhost), most specific first. Returns how many. */
static int candidates(const char *host, const char *ns, char cand[2][SN_HOST_CAND_MAX])
{
	size_t fb;
	return (int)sn_host_candidates(host, strlen(host), ns, cand, &fb);
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
	/* Security policies are about the proxy's own workload, not about
	 * what it calls: every AuthorizationPolicy and PeerAuthentication of
	 * its namespace and of the mesh root namespace goes to it, and its
	 * translation keeps those whose selector picks its labels (Telemetry
	 * too); and the mesh config with the services of its external
	 * authorizers and tracers. */
	for (size_t i = 0; i < v->n; i++) {
		struct view_res *r = v->v[i];
		if ((r->kind == SN_KIND_AUTHORIZATION_POLICY || r->kind == SN_KIND_PEER_AUTHENTICATION ||
		     r->kind == SN_KIND_REQUEST_AUTHENTICATION || r->kind == SN_KIND_TELEMETRY) &&
		    (!strcmp(r->ns, px->ns) || !strcmp(r->ns, SN_MESH_ROOT_NAMESPACE)))
			add_res(c, i);
		/* Linkerd's Servers and their rate limits: namespaced, no root */
		if ((r->kind == SN_KIND_SERVER || r->kind == SN_KIND_RATE_LIMIT) && !strcmp(r->ns, px->ns))
			add_res(c, i);
		/* the mesh config (istio-system/istio) is every proxy's; and a
		 * ServiceEntry with addresses, which captured traffic reaches by
		 * address rather than by a host the proxy would subscribe to */
		if (r->kind == SN_KIND_CONFIG_MAP || r->kind == SN_KIND_REFERENCE_GRANT)
			add_res(c, i);   /* (a ReferenceGrant: what routes may name across namespaces) */
		if (r->kind == SN_KIND_SERVICE_ENTRY && r->set.head != NULL &&
		    ((const struct cfg_service_entry *)r->set.head->spec)->n_addresses > 0)
			add_res(c, i);
		/* a gateway proxy: every Gateway (its translation keeps those
		 * whose selector picks its labels) and every VirtualService bound
		 * to a gateway, which bring the Services they route to */
		if (px->gateway && (r->kind == SN_KIND_GATEWAY || r->kind == SN_KIND_K8S_GATEWAY))
			add_res(c, i);
		/* and every Gateway API route attached to a Gateway */
		if (px->gateway && sn_kind_is_gwapi_route(r->kind) && r->set.head != NULL) {
			const struct cfg_vs *vs = r->set.head->spec;
			for (size_t k = 0; k < vs->n_parents; k++)
				if (!vs->parents[k].service) {
					add_res(c, i);
					break;
				}
		}
		if (px->gateway && r->kind == SN_KIND_VIRTUAL_SERVICE && r->set.head != NULL) {
			const struct cfg_vs *vs = r->set.head->spec;
			for (size_t k = 0; k < vs->n_gateways; k++)
				if (strcmp(vs->gateways[k], "mesh") != 0) {
					add_res(c, i);
					break;
				}
		}
	}
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
	kvmap_free(&px->inflight_set);
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
	send = calloc(c.n + px->held.n + 1, sizeof(*send));
	if (c.oom || send == NULL)
		goto oom;
	px->dirty = 0;

	/* added or changed */
	for (size_t i = 0; i < c.n; i++) {
		const struct view_res *r = m->view.v[c.list[i]];
		const struct kv *h = kvmap_get(&px->held, r->key);
		if (h == NULL || strcmp(h->rv, r->rv) != 0)
			send[n_send++] = c.list[i];
	}
	/* held and no longer needed */
	for (size_t i = 0; i < px->held.n; i++) {
		const struct kv *h = &px->held.v[i];
		ssize_t at = view_index(&m->view, h->key);
		const struct view_res *r = at >= 0 ? m->view.v[at] : NULL;
		if (r != NULL && r->mark == m->view.epoch)
			continue;
		if (r != NULL && px->keep_have) {
			/* Reconnected, subscriptions not in yet: keep what it
			 * holds, newer if there is newer. */
			if (strcmp(h->rv, r->rv) != 0)
				send[n_send++] = (size_t)at;
			continue;
		}
		if (r == NULL && grace && is_registered_key(h->key) && kvmap_get(&m->seen_regs, h->key) == NULL)
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
		oom |= kvmap_put(&px->inflight_set, r->key, r->rv) != 0;
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
