/* PeerAuthentication: loading, and the effective mTLS mode for one
 * proxy's inbound (workload policy over namespace policy over mesh
 * policy, then per port). Enforcement waits for mTLS (docs/security.md):
 * today the mode is computed, dumped and reported. */
#include <string.h>

#include "config_internal.h"

const char *sn_mtls_mode_str(enum sn_mtls_mode m)
{
	switch (m) {
	case SN_MTLS_UNSET:
		return "UNSET";
	case SN_MTLS_DISABLE:
		return "DISABLE";
	case SN_MTLS_PERMISSIVE:
		return "PERMISSIVE";
	case SN_MTLS_STRICT:
		return "STRICT";
	}
	return "unknown";
}

enum sn_mtls_mode sn_peer_auth_mode(const struct sn_peer_auth *pa, uint16_t port)
{
	for (size_t i = 0; i < pa->n_ports; i++)
		if (pa->ports[i].port == port)
			return pa->ports[i].mode;
	return pa->mode == SN_MTLS_UNSET ? SN_MTLS_PERMISSIVE : pa->mode;
}

/* mtls: {mode: X}. Returns 0 and sets *mode (UNSET when absent). */
static int parse_mtls(struct cfg_ctx *c, const struct yn *v, enum sn_mtls_mode *mode)
{
	*mode = SN_MTLS_UNSET;
	int r = cfg_want_map(c, v);
	if (r != 0)
		return r < 0 ? -1 : 0;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "mode")) {
			char *m = NULL;
			if (cfg_get_str(c, v->items[i], 32, &m) == 0) {
				if (!strcmp(m, "UNSET"))
					*mode = SN_MTLS_UNSET;
				else if (!strcmp(m, "DISABLE"))
					*mode = SN_MTLS_DISABLE;
				else if (!strcmp(m, "PERMISSIVE"))
					*mode = SN_MTLS_PERMISSIVE;
				else if (!strcmp(m, "STRICT"))
					*mode = SN_MTLS_STRICT;
				else
					cfg_err(c, v->items[i], "unknown mTLS mode \"%.32s\"; use UNSET, DISABLE, "
						"PERMISSIVE or STRICT", m);
			}
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	return 0;
}

static void parse_port_level(struct cfg_ctx *c, const struct yn *v, struct cfg_peer_auth *pa)
{
	if (cfg_want_map(c, v) != 0)
		return;
	pa->ports = sn_arena_new_array(c->a, struct sn_mtls_port, v->n ? v->n : 1);
	if (pa->ports == NULL) {
		cfg_err(c, v, "out of memory");
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		const struct yn *k = v->keys[i];
		size_t pl = cfg_path_push(c, ".%s", k->s);
		unsigned long port = 0;
		int ok = k->len > 0 && k->len <= 5;
		for (size_t j = 0; ok && j < k->len; j++) {
			if (k->s[j] < '0' || k->s[j] > '9')
				ok = 0;
			else
				port = port * 10 + (unsigned long)(k->s[j] - '0');
		}
		if (!ok || port == 0 || port > 65535) {
			cfg_err(c, k, "\"%.32s\" is not a port number (1-65535)", k->s);
		} else {
			enum sn_mtls_mode m;
			int dup = 0;
			for (size_t j = 0; j < pa->n_ports; j++)
				if (pa->ports[j].port == port)
					dup = 1;
			if (dup)
				cfg_err(c, k, "port %lu is given twice", port);
			else if (v->items[i]->type == YN_NULL)
				cfg_err(c, v->items[i], "give the port's mtls settings, e.g. {mode: DISABLE}");
			else if (parse_mtls(c, v->items[i], &m) == 0) {
				pa->ports[pa->n_ports].port = (uint16_t)port;
				pa->ports[pa->n_ports++].mode = m;
			}
		}
		cfg_path_pop(c, pl);
	}
}

struct cfg_peer_auth *cfg_parse_peer_authentication(struct cfg_ctx *c, const struct yn *spec)
{
	struct cfg_peer_auth *pa = sn_arena_new(c->a, struct cfg_peer_auth);
	size_t unknown0 = c->unknown;
	if (pa == NULL)
		return NULL;
	const struct yn *port_level = NULL;
	for (size_t i = 0; i < spec->n; i++) {
		const char *k = spec->keys[i]->s;
		const struct yn *v = spec->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "selector")) {
			if (cfg_want_map(c, v) == 0) {
				pa->has_selector = 1;
				for (size_t j = 0; j < v->n; j++) {
					size_t ql = cfg_path_push(c, ".%s", v->keys[j]->s);
					if (!strcmp(v->keys[j]->s, "matchLabels"))
						cfg_get_labels(c, v->items[j], &pa->selector);
					else
						cfg_warn_unknown(c, v->keys[j]);
					cfg_path_pop(c, ql);
				}
			}
		} else if (!strcmp(k, "mtls")) {
			parse_mtls(c, v, &pa->mode);
		} else if (!strcmp(k, "portLevelMtls")) {
			port_level = spec->keys[i];
			parse_port_level(c, v, pa);
		} else if (!strcmp(k, "portLevelTls")) {
			/* what it would change is not enforced: counted as unknown,
			 * so the policy fails closed (docs/security.md) */
			cfg_warn_unimplemented(c, spec->keys[i], "portLevelTls");
			c->unknown++;
		} else {
			cfg_warn_unknown(c, spec->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (port_level != NULL && (!pa->has_selector || pa->selector.n == 0)) {
		/* Istio's validation refuses it too: port-level settings only
		 * apply to a policy with a workload selector. */
		size_t pl = cfg_path_push(c, ".portLevelMtls");
		cfg_err(c, port_level, "portLevelMtls needs a workload selector (selector.matchLabels); it has no "
			"effect on a namespace or mesh policy");
		cfg_path_pop(c, pl);
	}
	pa->unenforceable = cfg_security_unenforceable(c, spec, unknown0,
		"every request to the workloads it applies to is denied, 403 policy_unenforceable");
	return pa;
}
