/* Linkerd's local rate limiting, accepted unchanged (docs/configuration.md,
 * "Rate limits"; the choice is in docs/decisions.md):
 *
 *   Server (policy.linkerd.io/v1beta1..v1beta3): a port of the workloads
 *     podSelector picks, with its accessPolicy -- Linkerd's default is deny,
 *     so a Server without accessPolicy refuses what reaches that port.
 *   HTTPLocalRateLimitPolicy (policy.linkerd.io/v1alpha1): targetRef names a
 *     Server of its namespace; total.requestsPerSecond for all of the
 *     port's traffic, identity.requestsPerSecond per client identity (all
 *     unmeshed clients are one), overrides[] per ServiceAccount.
 *
 * The Server is about access, so it is read as a security policy: a field
 * Sinew does not know makes it deny what it selects (fail closed). */
#include <stdio.h>
#include <string.h>

#include "config_internal.h"

#define MAX_OVERRIDES 64
#define MAX_CLIENTS 64
#define MAX_RPS 10000000u

static const struct {
	const char *name;
	enum sn_server_access access;
} accesses[] = {
	{ "deny", SN_ACCESS_DENY },
	{ "all-unauthenticated", SN_ACCESS_ALL_UNAUTHENTICATED },
	{ "all-authenticated", SN_ACCESS_ALL_AUTHENTICATED },
	{ "cluster-unauthenticated", SN_ACCESS_CLUSTER_UNAUTHENTICATED },
	{ "cluster-authenticated", SN_ACCESS_CLUSTER_AUTHENTICATED },
};

const char *sn_server_access_str(enum sn_server_access a)
{
	for (size_t i = 0; i < SN_ARRAY_LEN(accesses); i++)
		if (accesses[i].access == a)
			return accesses[i].name;
	return "deny";
}

static void parse_pod_selector(struct cfg_ctx *c, const struct yn *v, struct cfg_server *sv)
{
	if (cfg_want_map(c, v) != 0)
		return;
	sv->has_selector = 1;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "matchLabels")) {
			cfg_get_labels(c, v->items[i], &sv->selector);
		} else if (!strcmp(k, "matchExpressions")) {
			/* what it selects is unknown here: fail closed */
			cfg_warn_unimplemented(c, v->keys[i], k);
			c->unknown++;
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
}

struct cfg_server *cfg_parse_server(struct cfg_ctx *c, const struct yn *spec)
{
	struct cfg_server *sv = sn_arena_new(c->a, struct cfg_server);
	size_t unknown0 = c->unknown;
	const struct yn *port = NULL;
	if (sv == NULL)
		return NULL;
	sv->access = SN_ACCESS_DENY;
	for (size_t i = 0; i < spec->n; i++) {
		const char *k = spec->keys[i]->s;
		const struct yn *v = spec->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "podSelector")) {
			parse_pod_selector(c, v, sv);
		} else if (!strcmp(k, "port")) {
			port = v;
			uint64_t n;
			if (v->type == YN_SCALAR && v->s[0] >= '0' && v->s[0] <= '9') {
				if (cfg_get_uint(c, v, 1, 65535, &n) == 0)
					sv->port = (uint16_t)n;
			} else {
				cfg_get_str(c, v, 15, &sv->port_name);   /* an IANA service name */
			}
		} else if (!strcmp(k, "accessPolicy")) {
			char *a = NULL;
			if (cfg_get_str(c, v, 64, &a) == 0) {
				size_t j;
				for (j = 0; j < SN_ARRAY_LEN(accesses) && strcmp(a, accesses[j].name); j++)
					;
				if (j < SN_ARRAY_LEN(accesses))
					sv->access = accesses[j].access;
				else
					cfg_err(c, v, "unknown accessPolicy \"%.64s\"; use deny, all-unauthenticated, "
						"all-authenticated, cluster-unauthenticated or cluster-authenticated", a);
			}
		} else if (!strcmp(k, "proxyProtocol")) {
			/* Sinew detects HTTP/1, HTTP/2 and gRPC by the first bytes */
			char *pp = NULL;
			if (cfg_get_str(c, v, 32, &pp) == 0 && strcmp(pp, "unknown") && strcmp(pp, "HTTP/1") &&
			    strcmp(pp, "HTTP/2") && strcmp(pp, "gRPC"))
				cfg_warn(c, v, "proxyProtocol %.32s is not implemented (Sinew detects HTTP/1, HTTP/2 and "
					 "gRPC by themselves; other traffic is relayed as TCP)", pp);
		} else if (!strcmp(k, "externalWorkloadSelector")) {
			cfg_warn_unimplemented(c, spec->keys[i], k);
			c->unknown++;   /* a Server for workloads Sinew cannot name: fail closed */
		} else {
			cfg_warn_unknown(c, spec->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (port == NULL)
		cfg_err(c, spec, "a Server needs a port (the workload's port number or name)");
	if (!sv->has_selector && c->unknown == unknown0)
		cfg_err(c, spec, "a Server needs a podSelector (matchLabels: {} selects every workload of its "
			"namespace)");
	sv->unenforceable = cfg_security_unenforceable(c, spec, unknown0,
		"every request to the port of the workloads it selects is denied, 403 policy_unenforceable");
	return sv;
}

static void parse_limit(struct cfg_ctx *c, const struct yn *v, uint32_t *rps)
{
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		size_t pl = cfg_path_push(c, ".%s", v->keys[i]->s);
		uint64_t n;
		if (!strcmp(v->keys[i]->s, "requestsPerSecond")) {
			if (cfg_get_uint(c, v->items[i], 1, MAX_RPS, &n) == 0)
				*rps = (uint32_t)n;
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (*rps == 0)
		cfg_require(c, v, "requestsPerSecond", YN_SCALAR, "requests per second, e.g. 100");
}

static void parse_override(struct cfg_ctx *c, const struct yn *v, const char *ns, struct sn_rl_override *o)
{
	const struct yn *refs = NULL;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		size_t pl = cfg_path_push(c, ".%s", k);
		uint64_t n;
		if (!strcmp(k, "requestsPerSecond")) {
			if (cfg_get_uint(c, v->items[i], 1, MAX_RPS, &n) == 0)
				o->rps = (uint32_t)n;
		} else if (!strcmp(k, "clientRefs")) {
			refs = v->items[i];
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (o->rps == 0)
		cfg_require(c, v, "requestsPerSecond", YN_SCALAR, "the clients' requests per second");
	if (refs == NULL) {
		cfg_require(c, v, "clientRefs", YN_SEQ, "the ServiceAccounts it is for: [{kind: ServiceAccount, name: X}]");
		return;
	}
	size_t pl = cfg_path_push(c, ".clientRefs");
	if (cfg_want_seq(c, refs, MAX_CLIENTS) == 0 && refs->n > 0) {
		o->clients = sn_arena_new_array(c->a, char *, refs->n);
		for (size_t j = 0; o->clients != NULL && j < refs->n; j++) {
			const struct yn *r = refs->items[j];
			size_t ql = cfg_path_push(c, "[%zu]", j);
			char *kind = NULL, *name = NULL, *rns = NULL;
			if (cfg_want_map(c, r) == 0) {
				for (size_t i = 0; i < r->n; i++) {
					const char *k = r->keys[i]->s;
					size_t rl = cfg_path_push(c, ".%s", k);
					if (!strcmp(k, "kind"))
						cfg_get_str(c, r->items[i], 64, &kind);
					else if (!strcmp(k, "name"))
						cfg_get_str(c, r->items[i], CFG_MAX_NAME, &name);
					else if (!strcmp(k, "namespace"))
						cfg_get_str(c, r->items[i], CFG_MAX_NAME, &rns);
					else if (strcmp(k, "group"))
						cfg_warn_unknown(c, r->keys[i]);
					cfg_path_pop(c, rl);
				}
				if (kind != NULL && strcmp(kind, "ServiceAccount"))
					cfg_err(c, r, "clientRefs kind %.64s: only ServiceAccount is supported (as in Linkerd)",
						kind);
				else if (name == NULL || !name[0])
					cfg_err(c, r, "a clientRef needs the ServiceAccount's name");
				else
					o->clients[o->n_clients++] =
						sn_arena_printf(c->a, "%s/%s", rns && rns[0] ? rns : ns, name);
			}
			cfg_path_pop(c, ql);
		}
	}
	cfg_path_pop(c, pl);
}

struct cfg_rate_limit *cfg_parse_rate_limit(struct cfg_ctx *c, const struct yn *spec, const char *ns)
{
	struct cfg_rate_limit *rl = sn_arena_new(c->a, struct cfg_rate_limit);
	const struct yn *target = NULL;
	if (rl == NULL)
		return NULL;
	for (size_t i = 0; i < spec->n; i++) {
		const char *k = spec->keys[i]->s;
		const struct yn *v = spec->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "targetRef")) {
			target = v;
			if (cfg_want_map(c, v) == 0) {
				char *kind = NULL;
				for (size_t j = 0; j < v->n; j++) {
					const char *tk = v->keys[j]->s;
					size_t ql = cfg_path_push(c, ".%s", tk);
					if (!strcmp(tk, "kind"))
						cfg_get_str(c, v->items[j], 64, &kind);
					else if (!strcmp(tk, "name"))
						cfg_get_str(c, v->items[j], CFG_MAX_NAME, &rl->server);
					else if (strcmp(tk, "group"))
						cfg_warn_unknown(c, v->keys[j]);
					cfg_path_pop(c, ql);
				}
				if (kind == NULL || strcmp(kind, "Server"))
					cfg_err(c, v, "targetRef must name a Server ({group: policy.linkerd.io, kind: Server, "
						"name: NAME}), as in Linkerd");
				else if (rl->server == NULL || !rl->server[0])
					cfg_err(c, v, "targetRef needs the Server's name");
			}
		} else if (!strcmp(k, "total")) {
			parse_limit(c, v, &rl->total);
		} else if (!strcmp(k, "identity")) {
			parse_limit(c, v, &rl->identity);
		} else if (!strcmp(k, "overrides")) {
			if (cfg_want_seq(c, v, MAX_OVERRIDES) == 0 && v->n > 0) {
				rl->overrides = sn_arena_new_array(c->a, struct sn_rl_override, v->n);
				for (size_t j = 0; rl->overrides != NULL && j < v->n; j++) {
					size_t ql = cfg_path_push(c, "[%zu]", j);
					if (cfg_want_map(c, v->items[j]) == 0)
						parse_override(c, v->items[j], ns, &rl->overrides[rl->n_overrides++]);
					cfg_path_pop(c, ql);
				}
			}
		} else {
			cfg_warn_unknown(c, spec->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (target == NULL)
		cfg_require(c, spec, "targetRef", YN_MAP, "the Server it limits: {group: policy.linkerd.io, kind: Server, "
			    "name: NAME}");
	/* Linkerd's validation: no part above the total */
	if (rl->total && rl->identity > rl->total)
		cfg_err(c, spec, "identity.requestsPerSecond (%u) cannot be greater than total.requestsPerSecond (%u)",
			rl->identity, rl->total);
	for (size_t j = 0; rl->total && j < rl->n_overrides; j++)
		if (rl->overrides[j].rps > rl->total)
			cfg_err(c, spec, "overrides[%zu].requestsPerSecond (%u) cannot be greater than "
				"total.requestsPerSecond (%u)", j, rl->overrides[j].rps, rl->total);
	return rl;
}
