/* The snapshot a proxy runs: shared by worker threads (atomic refcount,
 * never written after translation), vhost lookup by authority, and the
 * JSON dump behind /config_dump. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"
#include "sinew/json.h"

const char *sn_lb_policy_str(enum sn_lb_policy p)
{
	switch (p) {
	case SN_LB_P2C_EWMA:
		return "P2C_EWMA";
	case SN_LB_ROUND_ROBIN:
		return "ROUND_ROBIN";
	case SN_LB_LEAST_REQUEST:
		return "LEAST_REQUEST";
	case SN_LB_RANDOM:
		return "RANDOM";
	case SN_LB_RING_HASH:
		return "RING_HASH";
	case SN_LB_MAGLEV:
		return "MAGLEV";
	}
	return "unknown";
}

void sn_snapshot_ref(struct sn_snapshot *s)
{
	__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}

void sn_snapshot_unref(struct sn_snapshot *s)
{
	if (s == NULL)
		return;
	if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	struct cfg_snapshot *cs = sn_container_of(s, struct cfg_snapshot, pub);
	for (size_t i = 0; i < cs->n_regexes; i++) {
		regfree(cs->regexes[i]);
		free(cs->regexes[i]);
	}
	free(cs->regexes);
	sn_arena_free(&s->arena);
	free(cs);
}

const struct sn_service *sn_snapshot_find_service(const struct sn_snapshot *s, const char *fqdn)
{
	for (size_t i = 0; i < s->n_services; i++)
		if (!strcmp(s->services[i].fqdn, fqdn))
			return &s->services[i];
	return NULL;
}

static uint16_t default_port(const struct sn_snapshot *s, const char *host)
{
	const struct sn_service *svc = sn_snapshot_find_service(s, host);
	return svc && svc->n_ports ? svc->ports[0].port : 80;
}

static const struct sn_vhost *find_exact(const struct sn_vhost *vhosts, size_t n_vhosts, const char *host,
					 uint16_t port)
{
	const struct sn_vhost *any = NULL;
	for (size_t i = 0; i < n_vhosts; i++) {
		const struct sn_vhost *v = &vhosts[i];
		if (strcmp(v->host, host) != 0)
			continue;
		if (v->port == port)
			return v;
		if (v->port == 0 && any == NULL)
			any = v;
	}
	return any;
}

/* sn_snapshot_find_vhost over vhosts[0..n_vhosts). */
static const struct sn_vhost *find_vhost_in(const struct sn_snapshot *s, const struct sn_vhost *vhosts,
					    size_t n_vhosts, struct sn_str authority, uint16_t *port_out)
{
	char host[256];
	uint16_t port = 0;
	int has_port = 0;

	if (s == NULL || authority.p == NULL || authority.len == 0 || authority.len > 260 ||
	    authority.p[0] == '[')
		return NULL;
	size_t hl = authority.len;
	const char *colon = memrchr(authority.p, ':', authority.len);
	if (colon != NULL) {
		if (memchr(authority.p, ':', (size_t)(colon - authority.p)) != NULL)
			return NULL; /* bare IPv6 */
		size_t pl = authority.len - (size_t)(colon - authority.p) - 1;
		unsigned long v = 0;
		if (pl == 0 || pl > 5)
			return NULL;
		for (size_t i = 0; i < pl; i++) {
			char c = colon[1 + i];
			if (c < '0' || c > '9')
				return NULL;
			v = v * 10 + (unsigned long)(c - '0');
		}
		if (v == 0 || v > 65535)
			return NULL;
		port = (uint16_t)v;
		has_port = 1;
		hl = (size_t)(colon - authority.p);
	}
	if (hl && authority.p[hl - 1] == '.')
		hl--;
	if (hl == 0 || hl > 200)
		return NULL;
	for (size_t i = 0; i < hl; i++)
		host[i] = (char)sn_tolower_ascii((unsigned char)authority.p[i]);
	host[hl] = '\0';
	unsigned char ip[16];
	if (inet_pton(AF_INET, host, ip) == 1)
		return NULL;

	/* Candidate names, most specific first, as a client in the proxy's
	 * namespace would have them resolved by DNS. */
	char cand[2][SN_HOST_CAND_MAX];
	size_t fb;
	int nc = (int)sn_host_candidates(host, hl, s->identity_namespace, cand, &fb);

	for (int i = 0; i < nc; i++) {
		uint16_t p = has_port ? port : default_port(s, cand[i]);
		const struct sn_vhost *v = find_exact(vhosts, n_vhosts, cand[i], p);
		if (v != NULL) {
			if (port_out)
				*port_out = p;
			return v;
		}
	}
	/* Wildcards: the longest suffix wins; "*" last. */
	const struct sn_vhost *best = NULL;
	size_t best_len = 0;
	uint16_t best_port = 0;
	for (int i = 0; i < nc; i++) {
		size_t cl = strlen(cand[i]);
		uint16_t p = has_port ? port : default_port(s, cand[i]);
		for (size_t j = 0; j < n_vhosts; j++) {
			const struct sn_vhost *v = &vhosts[j];
			if (v->host[0] != '*' || (v->port != 0 && v->port != p))
				continue;
			size_t vl = strlen(v->host);
			int ok = vl == 1 || (cl > vl - 1 && !strcmp(cand[i] + cl - (vl - 1), v->host + 1));
			if (ok && (best == NULL || vl > best_len)) {
				best = v;
				best_len = vl;
				best_port = p;
			}
		}
	}
	if (best && port_out)
		*port_out = best_port;
	return best;
}

const struct sn_vhost *sn_snapshot_find_vhost(const struct sn_snapshot *s, struct sn_str authority,
					       uint16_t *port_out)
{
	return s == NULL ? NULL : find_vhost_in(s, s->vhosts, s->n_vhosts, authority, port_out);
}

const struct sn_gw_listener *sn_snapshot_find_gw_listener(const struct sn_snapshot *s, uint16_t port)
{
	for (size_t i = 0; s != NULL && i < s->n_gw_listeners; i++)
		if (s->gw_listeners[i].port == port)
			return &s->gw_listeners[i];
	return NULL;
}

const struct sn_vhost *sn_snapshot_find_gw_vhost(const struct sn_snapshot *s, const struct sn_gw_listener *l,
						  struct sn_str authority)
{
	uint16_t port;
	if (s == NULL || l == NULL)
		return NULL;
	const struct sn_vhost *v = find_vhost_in(s, l->vhosts, l->n_vhosts, authority, &port);
	/* "*" takes what no name can match too: an IP address, no Host */
	for (size_t i = 0; v == NULL && i < l->n_vhosts; i++)
		if (!strcmp(l->vhosts[i].host, "*"))
			v = &l->vhosts[i];
	return v;
}

const struct sn_sni_route *sn_snapshot_find_sni_route(const struct sn_gw_listener *l, const char *sni)
{
	return l != NULL ? sn_sni_route_find(l->sni_routes, l->n_sni_routes, sni) : NULL;
}

const struct sn_sni_route *sn_sni_route_find(const struct sn_sni_route *routes, size_t nr, const char *sni)
{
	const struct sn_sni_route *best = NULL, *star = NULL;
	size_t best_len = 0, n = sni ? strlen(sni) : 0;
	for (size_t i = 0; i < nr; i++) {
		const struct sn_sni_route *r = &routes[i];
		if (!strcmp(r->sni, "*")) {
			if (star == NULL)
				star = r;
			continue;
		}
		if (n == 0)
			continue;
		if (!strcmp(r->sni, sni))
			return r;
		/* "*.example.com" holds a.example.com (and a.b.example.com) */
		size_t sl = strlen(r->sni) - 1;   /* ".example.com" */
		if (r->sni[0] == '*' && n > sl && !strcmp(sni + n - sl, r->sni + 1) && sl > best_len) {
			best = r;
			best_len = sl;
		}
	}
	return best ? best : star;
}

/* ---- JSON dump ------------------------------------------------------ */

static const char *match_kind_str(enum sn_str_match_kind k)
{
	switch (k) {
	case SN_MATCH_ANY: return "any";
	case SN_MATCH_EXACT: return "exact";
	case SN_MATCH_PREFIX: return "prefix";
	case SN_MATCH_REGEX: return "regex";
	case SN_MATCH_PRESENT: return "present";
	case SN_MATCH_PATH_PREFIX: return "pathPrefix";
	}
	return "?";
}

static void dump_str_match(FILE *f, const char *key, const struct sn_str_match *m, int *first)
{
	if (m->kind == SN_MATCH_ANY)
		return;
	fprintf(f, "%s", *first ? "" : ",");
	*first = 0;
	sn_json_fput_cstr(f, key);
	fprintf(f, ":{\"%s\":", match_kind_str(m->kind));
	if (m->kind == SN_MATCH_PRESENT)
		fputs("true", f);
	else
		sn_json_fput_cstr(f, m->value);
	if (m->ignore_case)
		fputs(",\"ignore_case\":true", f);
	fputc('}', f);
}

static void dump_kv(FILE *f, const char *key, const struct sn_kv_match *kv, size_t n, int *first)
{
	if (n == 0)
		return;
	fprintf(f, "%s", *first ? "" : ",");
	*first = 0;
	sn_json_fput_cstr(f, key);
	fputs(":{", f);
	for (size_t i = 0; i < n; i++) {
		int inner = 1;
		if (i)
			fputc(',', f);
		sn_json_fput_cstr(f, kv[i].name);
		fputc(':', f);
		fputc('{', f);
		struct sn_str_match m = kv[i].m;
		if (m.kind == SN_MATCH_ANY)
			m.kind = SN_MATCH_PRESENT;
		dump_str_match(f, "match", &m, &inner);
		fputc('}', f);
	}
	fputc('}', f);
}

static void dump_ops_list(FILE *f, const char *key, const struct sn_header_op *ops, size_t n, int *first)
{
	if (n == 0)
		return;
	fprintf(f, "%s", *first ? "" : ",");
	*first = 0;
	sn_json_fput_cstr(f, key);
	fputs(":[", f);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? ",{\"name\":" : "{\"name\":", f);
		sn_json_fput_cstr(f, ops[i].name);
		if (ops[i].value) {
			fputs(",\"value\":", f);
			sn_json_fput_cstr(f, ops[i].value);
		}
		fputc('}', f);
	}
	fputc(']', f);
}

static void dump_ops(FILE *f, const char *key, const struct sn_header_ops *o)
{
	if (o->n_set + o->n_add + o->n_remove == 0)
		return;
	fputc(',', f);
	sn_json_fput_cstr(f, key);
	fputs(":{", f);
	int first = 1;
	dump_ops_list(f, "set", o->set, o->n_set, &first);
	dump_ops_list(f, "add", o->add, o->n_add, &first);
	dump_ops_list(f, "remove", o->remove, o->n_remove, &first);
	fputc('}', f);
}

static void dump_route(FILE *f, const struct sn_snapshot *s, const struct sn_http_route *r)
{
	fputs("{\"name\":", f);
	sn_json_fput_cstr(f, r->name);
	fputs(",\"origin\":", f);
	sn_json_fput_cstr(f, r->origin);
	fputs(",\"match\":[", f);
	for (size_t i = 0; i < r->n_matches; i++) {
		const struct sn_route_match *m = &r->matches[i];
		int first = 1;
		fputs(i ? ",{" : "{", f);
		if (m->name) {
			fputs("\"name\":", f);
			sn_json_fput_cstr(f, m->name);
			first = 0;
		}
		dump_str_match(f, "uri", &m->uri, &first);
		dump_str_match(f, "method", &m->method, &first);
		dump_str_match(f, "authority", &m->authority, &first);
		dump_str_match(f, "scheme", &m->scheme, &first);
		dump_kv(f, "headers", m->headers, m->n_headers, &first);
		dump_kv(f, "without_headers", m->without_headers, m->n_without_headers, &first);
		dump_kv(f, "query_params", m->query_params, m->n_query_params, &first);
		if (m->port)
			fprintf(f, "%s\"port\":%u", first ? "" : ",", m->port);
		fputc('}', f);
	}
	fputs("],\"destinations\":[", f);
	for (size_t i = 0; i < r->n_dests; i++) {
		const struct sn_route_dest *d = &r->dests[i];
		fprintf(f, "%s{\"cluster\":", i ? "," : "");
		sn_json_fput_cstr(f, d->cluster < s->n_clusters ? s->clusters[d->cluster].name : NULL);
		fprintf(f, ",\"weight\":%u", d->weight);
		dump_ops(f, "request_headers", &d->request_ops);
		dump_ops(f, "response_headers", &d->response_ops);
		fputc('}', f);
	}
	fprintf(f, "],\"total_weight\":%u,\"timeout_ms\":%u", r->total_weight, r->timeout_ms);
	fprintf(f, ",\"retries\":{\"attempts\":%u,\"per_try_timeout_ms\":%u,\"retry_on\":[", r->retry.attempts,
		r->retry.per_try_timeout_ms);
	static const char *const bits[] = { "5xx", "gateway-error", "connect-failure", "refused-stream", "reset",
					    "retriable-status-codes", "cancelled", "deadline-exceeded", "internal",
					    "resource-exhausted", "unavailable" };
	int first = 1;
	for (size_t i = 0; i < SN_ARRAY_LEN(bits); i++)
		if (r->retry.retry_on & (1u << i)) {
			fprintf(f, "%s\"%s\"", first ? "" : ",", bits[i]);
			first = 0;
		}
	fputs("],\"status_codes\":[", f);
	for (size_t i = 0; i < r->retry.n_status_codes; i++)
		fprintf(f, "%s%u", i ? "," : "", r->retry.status_codes[i]);
	fputs("]}", f);
	if (r->fault.delay_ms || r->fault.abort_status || r->fault.abort_grpc)
		fprintf(f, ",\"fault\":{\"delay_ms\":%u,\"delay_percent\":%g,\"abort_status\":%d,\"abort_grpc_status\":%d,"
			"\"abort_percent\":%g}", r->fault.delay_ms, r->fault.delay_percent, r->fault.abort_status,
			r->fault.abort_grpc - 1, r->fault.abort_percent);
	dump_ops(f, "request_headers", &r->request_ops);
	dump_ops(f, "response_headers", &r->response_ops);
	if (r->rewrite_uri) {
		fputs(",\"rewrite_uri\":", f);
		sn_json_fput_cstr(f, r->rewrite_uri);
	}
	if (r->rewrite_authority) {
		fputs(",\"rewrite_authority\":", f);
		sn_json_fput_cstr(f, r->rewrite_authority);
	}
	if (r->direct_status) {
		fprintf(f, ",\"direct_response\":{\"status\":%d,\"body\":", r->direct_status);
		sn_json_fput_cstr(f, r->direct_body);
		fputc('}', f);
	}
	if (r->n_mirrors) {
		fputs(",\"mirrors\":[", f);
		for (size_t i = 0; i < r->n_mirrors; i++) {
			fputs(i ? ",{\"cluster\":" : "{\"cluster\":", f);
			sn_json_fput_cstr(f, r->mirrors[i].cluster < s->n_clusters ? s->clusters[r->mirrors[i].cluster].name : NULL);
			fprintf(f, ",\"percent\":%g}", r->mirrors[i].percent);
		}
		fputc(']', f);
	}
	fputc('}', f);
}

/* ---- security (added) ---------------------------------------------- */

static void dump_authz_strs(FILE *f, const char *name, const char *not_name, const struct sn_authz_strs *x,
			    int *first)
{
	const struct sn_authz_str *lists[2] = { x->v, x->not_v };
	size_t ns[2] = { x->n, x->n_not };
	for (int k = 0; k < 2; k++) {
		if (ns[k] == 0)
			continue;
		fputs(*first ? "" : ",", f);
		*first = 0;
		sn_json_fput_cstr(f, k ? not_name : name);
		fputs(":[", f);
		for (size_t i = 0; i < ns[k]; i++) {
			if (i)
				fputc(',', f);
			sn_json_fput_cstr(f, lists[k][i].raw);
		}
		fputc(']', f);
	}
}

static void dump_authz_cidrs(FILE *f, const char *name, const char *not_name, const struct sn_authz_cidrs *x,
			     int *first)
{
	const struct sn_authz_cidr *lists[2] = { x->v, x->not_v };
	size_t ns[2] = { x->n, x->n_not };
	for (int k = 0; k < 2; k++) {
		if (ns[k] == 0)
			continue;
		fputs(*first ? "" : ",", f);
		*first = 0;
		sn_json_fput_cstr(f, k ? not_name : name);
		fputs(":[", f);
		for (size_t i = 0; i < ns[k]; i++) {
			if (i)
				fputc(',', f);
			sn_json_fput_cstr(f, lists[k][i].raw);
		}
		fputc(']', f);
	}
}

static void dump_authz_ports(FILE *f, const char *name, const char *not_name, const struct sn_authz_ports *x,
			     int *first)
{
	const uint16_t *lists[2] = { x->v, x->not_v };
	size_t ns[2] = { x->n, x->n_not };
	for (int k = 0; k < 2; k++) {
		if (ns[k] == 0)
			continue;
		fprintf(f, "%s\"%s\":[", *first ? "" : ",", k ? not_name : name);
		*first = 0;
		for (size_t i = 0; i < ns[k]; i++)
			fprintf(f, "%s\"%u\"", i ? "," : "", lists[k][i]);
		fputc(']', f);
	}
}

static void dump_authz_rule(FILE *f, const struct sn_authz_rule *r)
{
	fputs("{\"from\":[", f);
	for (size_t i = 0; i < r->n_from; i++) {
		const struct sn_authz_source *x = &r->from[i];
		int first = 1;
		fputs(i ? ",{" : "{", f);
		dump_authz_strs(f, "principals", "notPrincipals", &x->principals, &first);
		dump_authz_strs(f, "requestPrincipals", "notRequestPrincipals", &x->request_principals, &first);
		dump_authz_strs(f, "namespaces", "notNamespaces", &x->namespaces, &first);
		dump_authz_cidrs(f, "ipBlocks", "notIpBlocks", &x->ip_blocks, &first);
		dump_authz_cidrs(f, "remoteIpBlocks", "notRemoteIpBlocks", &x->remote_ip_blocks, &first);
		fputc('}', f);
	}
	fputs("],\"to\":[", f);
	for (size_t i = 0; i < r->n_to; i++) {
		const struct sn_authz_operation *x = &r->to[i];
		int first = 1;
		fputs(i ? ",{" : "{", f);
		dump_authz_strs(f, "hosts", "notHosts", &x->hosts, &first);
		dump_authz_ports(f, "ports", "notPorts", &x->ports, &first);
		dump_authz_strs(f, "methods", "notMethods", &x->methods, &first);
		dump_authz_strs(f, "paths", "notPaths", &x->paths, &first);
		fputc('}', f);
	}
	fputs("],\"when\":[", f);
	for (size_t i = 0; i < r->n_when; i++) {
		const struct sn_authz_condition *w = &r->when[i];
		int first = 0;
		fputs(i ? ",{\"key\":" : "{\"key\":", f);
		sn_json_fput_cstr(f, w->key);
		dump_authz_strs(f, "values", "notValues", &w->strs, &first);
		dump_authz_cidrs(f, "values", "notValues", &w->cidrs, &first);
		dump_authz_ports(f, "values", "notValues", &w->ports, &first);
		fputc('}', f);
	}
	fputs("]}", f);
}

static void dump_security(const struct sn_snapshot *s, FILE *f)
{
	fputs(",\"authorization_policies\":[", f);
	for (size_t i = 0; i < s->n_authz; i++) {
		const struct sn_authz_policy *p = &s->authz[i];
		fputs(i ? ",{\"name\":" : "{\"name\":", f);
		sn_json_fput_cstr(f, p->name);
		fputs(",\"origin\":", f);
		sn_json_fput_cstr(f, p->origin);
		fprintf(f, ",\"action\":\"%s\"", sn_authz_action_str(p->action));
		if (p->unenforceable)
			fputs(",\"unenforceable\":true", f);
		if (p->provider != NULL) {
			fputs(",\"provider\":", f);
			sn_json_fput_cstr(f, p->provider);
		}
		fputs(",\"rules\":[", f);
		for (size_t r = 0; r < p->n_rules; r++) {
			if (r)
				fputc(',', f);
			dump_authz_rule(f, &p->rules[r]);
		}
		fputs("]}", f);
	}
	const struct sn_peer_auth *pa = &s->peer_auth;
	fprintf(f, "],\"peer_authentication\":{\"mode\":\"%s\",\"origin\":",
		sn_mtls_mode_str(pa->mode == SN_MTLS_UNSET ? SN_MTLS_PERMISSIVE : pa->mode));
	sn_json_fput_cstr(f, pa->origin ? pa->origin : "default");
	fputs(",\"ports\":[", f);
	for (size_t i = 0; i < pa->n_ports; i++) {
		fprintf(f, "%s{\"port\":%u,\"mode\":\"%s\",\"origin\":", i ? "," : "", pa->ports[i].port,
			sn_mtls_mode_str(pa->ports[i].mode));
		sn_json_fput_cstr(f, pa->ports[i].origin);
		fputc('}', f);
	}
	fputc(']', f);
	if (pa->unenforceable != NULL) {   /* fail closed: names the policy */
		fputs(",\"unenforceable\":", f);
		sn_json_fput_cstr(f, pa->unenforceable);
	}
	if (s->jwt_unenforceable != NULL) {
		fputs("},\"request_authentication_unenforceable\":", f);
		sn_json_fput_cstr(f, s->jwt_unenforceable);
		fputs(",\"request_authentication\":[", f);
	} else {
		fputs("},\"request_authentication\":[", f);
	}
	for (size_t i = 0; i < s->n_jwt_rules; i++) {
		const struct sn_jwt_rule *r = &s->jwt_rules[i];
		fputs(i ? ",{\"issuer\":" : "{\"issuer\":", f);
		sn_json_fput_cstr(f, r->issuer);
		fputs(",\"origin\":", f);
		sn_json_fput_cstr(f, r->origin);
		fprintf(f, ",\"keys\":%zu,\"jwks_uri\":", r->n_keys);
		sn_json_fput_cstr(f, r->jwks_uri);
		fprintf(f, ",\"audiences\":%zu,\"forward_original_token\":%s}", r->n_audiences,
			r->forward ? "true" : "false");
	}
	fputs("],\"servers\":[", f);
	for (size_t i = 0; i < s->n_servers; i++) {
		const struct sn_server *v = &s->servers[i];
		fputs(i ? ",{\"name\":" : "{\"name\":", f);
		sn_json_fput_cstr(f, v->name);
		fputs(",\"origin\":", f);
		sn_json_fput_cstr(f, v->origin);
		fprintf(f, ",\"port\":%u,\"access_policy\":\"%s\"", v->port, sn_server_access_str(v->access));
		if (v->unenforceable != NULL)
			fputs(",\"unenforceable\":true", f);
		if (v->rl_name != NULL) {
			fputs(",\"rate_limit\":{\"name\":", f);
			sn_json_fput_cstr(f, v->rl_name);
			fprintf(f, ",\"total\":%u,\"identity\":%u,\"overrides\":[", v->rl_total, v->rl_identity);
			for (size_t k = 0; k < v->n_rl_overrides; k++) {
				fprintf(f, "%s{\"requests_per_second\":%u,\"clients\":[", k ? "," : "",
					v->rl_overrides[k].rps);
				for (size_t j = 0; j < v->rl_overrides[k].n_clients; j++) {
					if (j)
						fputc(',', f);
					sn_json_fput_cstr(f, v->rl_overrides[k].clients[j]);
				}
				fputs("]}", f);
			}
			fputs("]}", f);
		}
		fputc('}', f);
	}
	fputc(']', f);
}

/* {"sni":..,"origin":..,"destinations":[{"cluster":..,"weight":..}]} */
static void dump_sni_route(FILE *f, const struct sn_snapshot *s, const struct sn_sni_route *r)
{
	fputs("{\"sni\":", f);
	sn_json_fput_cstr(f, r->sni);
	fputs(",\"origin\":", f);
	sn_json_fput_cstr(f, r->origin);
	fputs(",\"destinations\":[", f);
	for (size_t d = 0; d < r->n_dests; d++) {
		fputs(d ? ",{\"cluster\":" : "{\"cluster\":", f);
		sn_json_fput_cstr(f, s->clusters[r->dests[d].cluster].name);
		fprintf(f, ",\"weight\":%u}", r->dests[d].weight);
	}
	fputs("]}", f);
}

static void dump_vhosts(FILE *f, const struct sn_snapshot *s, const struct sn_vhost *vhosts, size_t n)
{
	fputc('[', f);
	for (size_t i = 0; i < n; i++) {
		const struct sn_vhost *v = &vhosts[i];
		fputs(i ? ",{\"host\":" : "{\"host\":", f);
		sn_json_fput_cstr(f, v->host);
		fprintf(f, ",\"port\":%u,\"routes\":[", v->port);
		for (size_t r = 0; r < v->n_routes; r++) {
			if (r)
				fputc(',', f);
			dump_route(f, s, &v->routes[r]);
		}
		fputc(']', f);
		if (v->tcp_route != NULL) {
			fputs(",\"tcp_route\":", f);
			dump_sni_route(f, s, v->tcp_route);
		}
		if (v->n_tls_routes) {
			fputs(",\"tls_routes\":[", f);
			for (size_t k = 0; k < v->n_tls_routes; k++) {
				if (k)
					fputc(',', f);
				dump_sni_route(f, s, &v->tls_routes[k]);
			}
			fputc(']', f);
		}
		fputc('}', f);
	}
	fputc(']', f);
}

void sn_snapshot_dump_json(const struct sn_snapshot *s, FILE *f)
{
	fprintf(f, "{\"version\":%llu,\"source\":", (unsigned long long)s->version);
	sn_json_fput_cstr(f, s->source);
	fputs(",\"namespace\":", f);
	sn_json_fput_cstr(f, s->identity_namespace);
	fputs(",\"services\":[", f);
	for (size_t i = 0; i < s->n_services; i++) {
		const struct sn_service *v = &s->services[i];
		fputs(i ? ",{\"fqdn\":" : "{\"fqdn\":", f);
		sn_json_fput_cstr(f, v->fqdn);
		fputs(",\"ports\":[", f);
		for (size_t p = 0; p < v->n_ports; p++) {
			fputs(p ? ",{\"name\":" : "{\"name\":", f);
			sn_json_fput_cstr(f, v->ports[p].name);
			fprintf(f, ",\"port\":%u,\"target_port\":%u,\"protocol\":", v->ports[p].port,
				v->ports[p].target_port);
			sn_json_fput_cstr(f, v->ports[p].protocol);
			fputc('}', f);
		}
		fputc(']', f);
		if (v->service_entry != NULL) {
			fputs(",\"service_entry\":", f);
			sn_json_fput_cstr(f, v->service_entry);
			fputs(",\"resolution\":", f);
			sn_json_fput_cstr(f, v->resolution);
			fprintf(f, ",\"location\":\"%s\",\"addresses\":[",
				v->mesh_internal ? "MESH_INTERNAL" : "MESH_EXTERNAL");
			for (size_t k = 0; k < v->n_addresses; k++) {
				if (k)
					fputc(',', f);
				sn_json_fput_cstr(f, v->addresses[k]);
			}
			fputc(']', f);
		}
		fputc('}', f);
	}
	fputs("],\"clusters\":[", f);
	for (size_t i = 0; i < s->n_clusters; i++) {
		const struct sn_cluster *c = &s->clusters[i];
		fputs(i ? ",{\"name\":" : "{\"name\":", f);
		sn_json_fput_cstr(f, c->name);
		fputs(",\"service\":", f);
		sn_json_fput_cstr(f, c->service);
		fprintf(f, ",\"port\":%u,\"subset\":", c->port);
		sn_json_fput_cstr(f, c->subset);
		fprintf(f, ",\"protocol\":\"%s\"", c->http2 ? "HTTP/2" : "HTTP/1.1");
		if (c->outlier.enabled)
			fprintf(f, ",\"outlier_detection\":{\"consecutive_5xx\":%u,\"consecutive_gateway\":%u,"
				   "\"consecutive_local\":%u,\"split_local\":%s,\"interval_ms\":%u,"
				   "\"base_ejection_ms\":%u,\"max_ejection_percent\":%u,\"min_health_percent\":%u}",
				c->outlier.consecutive_5xx, c->outlier.consecutive_gateway, c->outlier.consecutive_local,
				c->outlier.split_local ? "true" : "false", c->outlier.interval_ms,
				c->outlier.base_ejection_ms, c->outlier.max_ejection_pct, c->outlier.min_health_pct);
		fprintf(f, ",\"lb\":\"%s\",\"connect_timeout_ms\":%u,\"max_connections\":%u,\"max_pending\":%u,"
			"\"max_requests_per_conn\":%u,\"idle_timeout_ms\":%u,\"endpoints\":[",
			sn_lb_policy_str(c->lb), c->connect_timeout_ms, c->max_connections, c->max_pending,
			c->max_requests_per_conn, c->idle_timeout_ms);
		for (size_t e = 0; e < c->n_endpoints; e++) {
			const struct sn_endpoint *ep = &c->endpoints[e];
			fputs(e ? ",{\"address\":" : "{\"address\":", f);
			sn_json_fput_cstr(f, ep->address);
			fputs(",\"workload\":", f);
			sn_json_fput_cstr(f, ep->workload);
			fputs(",\"version\":", f);
			sn_json_fput_cstr(f, ep->version);
			fputs(",\"service_account\":", f);
			sn_json_fput_cstr(f, ep->service_account);
			fputs(",\"locality\":", f);
			sn_json_fput_cstr(f, ep->locality);
			if (c->locality_lb)
				fprintf(f, ",\"priority\":%u", ep->priority);
			fprintf(f, ",\"weight\":%u}", ep->weight);
		}
		fputs("]}", f);
	}
	fputs("],\"vhosts\":", f);
	dump_vhosts(f, s, s->vhosts, s->n_vhosts);
	if (s->gateway) {
		fputs(",\"gateway_listeners\":[", f);
		for (size_t i = 0; i < s->n_gw_listeners; i++) {
			const struct sn_gw_listener *l = &s->gw_listeners[i];
			fprintf(f, "%s{\"port\":%u,\"protocol\":", i ? "," : "", l->port);
			sn_json_fput_cstr(f, l->protocol);
			fputs(",\"origin\":", f);
			sn_json_fput_cstr(f, l->origin);
			fprintf(f, ",\"https_redirect\":%s", l->https_redirect ? "true" : "false");
			if (l->tls) {
				fprintf(f, ",\"tls\":{\"mode\":\"%s\",\"server_certificate\":",
					l->tls == 3 ? "ISTIO_MUTUAL" : l->tls == 2 ? "MUTUAL" : "SIMPLE");
				sn_json_fput_cstr(f, l->cert_file);
				fputs(",\"private_key\":", f);
				sn_json_fput_cstr(f, l->key_file);
				fputs(",\"ca_certificates\":", f);
				sn_json_fput_cstr(f, l->ca_file);
				fputs(",\"credential_name\":", f);
				sn_json_fput_cstr(f, l->credential);
				fputc('}', f);
			}
			if (l->passthrough) {
				fputs(",\"tls\":{\"mode\":\"PASSTHROUGH\"},\"sni_routes\":[", f);
				for (size_t k = 0; k < l->n_sni_routes; k++) {
					if (k)
						fputc(',', f);
					dump_sni_route(f, s, &l->sni_routes[k]);
				}
				fputc(']', f);
			}
			if (l->tcp) {
				fputs(",\"tcp\":true", f);
				if (l->tcp_route != NULL) {
					fputs(",\"tcp_route\":", f);
					dump_sni_route(f, s, l->tcp_route);
				}
			}
			fputs(",\"vhosts\":", f);
			dump_vhosts(f, s, l->vhosts, l->n_vhosts);
			fputc('}', f);
		}
		fputc(']', f);
	}
	dump_security(s, f);
	fputs("}\n", f);
}
