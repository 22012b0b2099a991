/* DestinationRule: subsets and the traffic policy Sinew implements
 * (load balancer, connection pool); the rest is a warning. */
#include <string.h>

#include "config_internal.h"

/* consistentHash: one of httpHeaderName, httpCookie, useSourceIp,
 * httpQueryParameterName; ringHash {minimumRingSize} (the default, also
 * the deprecated top-level minimumRingSize) or maglev {tableSize}. */
static void parse_hash(struct cfg_ctx *c, const struct yn *v, struct cfg_policy *p)
{
	struct sn_hash_policy *h = &p->hash;
	uint64_t x;
	int keys = 0;

	if (cfg_want_map(c, v) != 0)
		return;
	*h = (struct sn_hash_policy){ .ring_size = 1024, .table_size = 65537 };
	p->has_lb = 1;
	p->lb = SN_LB_RING_HASH;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *y = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "httpHeaderName")) {
			keys++;
			if (cfg_get_str(c, y, CFG_MAX_NAME, &h->name) == 0) {
				h->on = SN_HASH_HEADER;
				sn_ascii_lower(h->name);
			}
		} else if (!strcmp(k, "httpQueryParameterName")) {
			keys++;
			if (cfg_get_str(c, y, CFG_MAX_NAME, &h->name) == 0)
				h->on = SN_HASH_QUERY;
		} else if (!strcmp(k, "useSourceIp")) {
			int b = 0;
			keys++;
			if (cfg_get_bool(c, y, &b) == 0 && b)
				h->on = SN_HASH_SOURCE_IP;
		} else if (!strcmp(k, "httpCookie")) {
			keys++;
			if (cfg_want_map(c, y) == 0) {
				h->on = SN_HASH_COOKIE;
				for (size_t j = 0; j < y->n; j++) {
					const char *f = y->keys[j]->s;
					size_t ql = cfg_path_push(c, ".%s", f);
					if (!strcmp(f, "name"))
						cfg_get_str(c, y->items[j], CFG_MAX_NAME, &h->name);
					else if (!strcmp(f, "path"))
						cfg_get_str(c, y->items[j], CFG_MAX_NAME, &h->cookie_path);
					else if (!strcmp(f, "ttl")) {
						uint32_t ms = 0;
						if (cfg_get_duration(c, y->items[j], &ms) == 0)
							h->cookie_ttl_s = (ms + 999) / 1000;
					} else
						cfg_warn_unknown(c, y->keys[j]);
					cfg_path_pop(c, ql);
				}
				cfg_require(c, y, "name", YN_SCALAR, "the cookie to hash on");
			}
		} else if (!strcmp(k, "ringHash") || !strcmp(k, "maglev")) {
			int maglev = k[0] == 'm';
			if (maglev)
				p->lb = SN_LB_MAGLEV;
			if (cfg_want_map(c, y) == 0)
				for (size_t j = 0; j < y->n; j++) {
					const char *f = y->keys[j]->s;
					size_t ql = cfg_path_push(c, ".%s", f);
					if (!maglev && !strcmp(f, "minimumRingSize")) {
						if (cfg_get_uint(c, y->items[j], 1, 1u << 20, &x) == 0)
							h->ring_size = (uint32_t)x;
					} else if (maglev && !strcmp(f, "tableSize")) {
						if (cfg_get_uint(c, y->items[j], 2, 5000011, &x) == 0) {
							int prime = x > 1;
							for (uint64_t d = 2; prime && d * d <= x; d++)
								prime = x % d != 0;
							if (!prime)
								cfg_err(c, y->items[j], "maglev tableSize must be a prime number "
									"(e.g. 65537)");
							h->table_size = (uint32_t)x;
						}
					} else {
						cfg_warn_unknown(c, y->keys[j]);
					}
					cfg_path_pop(c, ql);
				}
		} else if (!strcmp(k, "minimumRingSize")) {
			if (cfg_get_uint(c, y, 1, 1u << 20, &x) == 0)
				h->ring_size = (uint32_t)x;   /* deprecated: ringHash.minimumRingSize */
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (keys != 1)
		cfg_err(c, v, "consistentHash needs exactly one of httpHeaderName, httpCookie, useSourceIp, "
			"httpQueryParameterName (it has %d)", keys);
}

/* localityLbSetting: enabled, distribute, failover, failoverPriority
 * (Istio's LocalityLoadBalancerSetting). distribute and failover are
 * exclusive, as Istio validates. */
static void parse_locality(struct cfg_ctx *c, const struct yn *v, struct cfg_locality *l)
{
	if (cfg_want_map(c, v) != 0)
		return;
	l->set = 1;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "enabled")) {
			int on = 1;
			if (cfg_get_bool(c, x, &on) == 0)
				l->disabled = !on;
		} else if (!strcmp(k, "distribute") && cfg_want_seq(c, x, CFG_MAX_MATCHES) == 0) {
			l->distribute = sn_arena_new_array(c->a, struct cfg_locality_dist, x->n ? x->n : 1);
			for (size_t j = 0; l->distribute != NULL && j < x->n; j++) {
				struct cfg_locality_dist *d = &l->distribute[l->n_distribute];
				const struct yn *it = x->items[j];
				size_t ql = cfg_path_push(c, "[%zu]", j);
				if (cfg_want_map(c, it) == 0) {
					const struct yn *from = yn_get(it, "from"), *to = yn_get(it, "to");
					size_t rl = cfg_path_push(c, ".from");
					cfg_get_str(c, from, CFG_MAX_NAME, &d->from);
					cfg_path_pop(c, rl);
					rl = cfg_path_push(c, ".to");
					uint64_t sum = 0;
					if (cfg_want_map(c, to) == 0) {
						d->to = sn_arena_new_array(c->a, char *, to->n ? to->n : 1);
						d->weights = sn_arena_new_array(c->a, uint32_t, to->n ? to->n : 1);
						for (size_t q = 0; d->to && d->weights && q < to->n; q++) {
							uint64_t w;
							size_t sl = cfg_path_push(c, ".%s", to->keys[q]->s);
							if (cfg_get_uint(c, to->items[q], 0, 100, &w) == 0) {
								d->to[d->n_to] = sn_arena_strdup(c->a, to->keys[q]->s);
								d->weights[d->n_to++] = (uint32_t)w;
								sum += w;
							}
							cfg_path_pop(c, sl);
						}
					}
					if (d->from == NULL || d->n_to == 0)
						cfg_err(c, it, "a distribute entry needs from and to (locality: percent)");
					else if (sum != 100)
						cfg_err(c, to, "the weights of to sum to %llu; they must sum to 100",
							(unsigned long long)sum);
					else
						l->n_distribute++;
					cfg_path_pop(c, rl);
				}
				cfg_path_pop(c, ql);
			}
		} else if (!strcmp(k, "failover") && cfg_want_seq(c, x, CFG_MAX_MATCHES) == 0) {
			l->failover_from = sn_arena_new_array(c->a, char *, x->n ? x->n : 1);
			l->failover_to = sn_arena_new_array(c->a, char *, x->n ? x->n : 1);
			for (size_t j = 0; l->failover_from && l->failover_to && j < x->n; j++) {
				const struct yn *it = x->items[j];
				size_t ql = cfg_path_push(c, "[%zu]", j);
				char *from = NULL, *to = NULL;
				if (cfg_want_map(c, it) == 0) {
					cfg_get_str(c, yn_get(it, "from"), CFG_MAX_NAME, &from);
					cfg_get_str(c, yn_get(it, "to"), CFG_MAX_NAME, &to);
					if (from == NULL || to == NULL || !strcmp(from, to)) {
						cfg_err(c, it, "a failover entry needs from and to, two different regions");
					} else {
						l->failover_from[l->n_failover] = from;
						l->failover_to[l->n_failover++] = to;
					}
				}
				cfg_path_pop(c, ql);
			}
		} else if (!strcmp(k, "failoverPriority")) {
			cfg_get_str_list(c, x, CFG_MAX_NAME, &l->failover_priority, &l->n_failover_priority, NULL);
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (l->n_distribute && l->n_failover)
		cfg_err(c, v, "localityLbSetting takes distribute or failover, not both (as Istio)");
}

static void parse_lb(struct cfg_ctx *c, const struct yn *v, struct cfg_policy *p)
{
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "simple")) {
			char *s = NULL;
			if (cfg_get_str(c, x, 64, &s) == 0) {
				p->has_lb = 1;
				if (!strcmp(s, "ROUND_ROBIN"))
					p->lb = SN_LB_ROUND_ROBIN;
				else if (!strcmp(s, "LEAST_REQUEST") || !strcmp(s, "LEAST_CONN"))
					p->lb = SN_LB_LEAST_REQUEST;
				else if (!strcmp(s, "RANDOM"))
					p->lb = SN_LB_RANDOM;
				else if (!strcmp(s, "UNSPECIFIED"))
					p->lb = SN_LB_P2C_EWMA;
				else if (!strcmp(s, "PASSTHROUGH")) {
					p->lb = SN_LB_P2C_EWMA;
					cfg_warn(c, x, "PASSTHROUGH is not implemented; the default balancer "
						 "(P2C with peak EWMA) is used");
				} else {
					p->has_lb = 0;
					cfg_err(c, x, "unknown load balancer \"%.64s\"; use ROUND_ROBIN, LEAST_REQUEST, "
						"RANDOM or PASSTHROUGH", s);
				}
			}
		} else if (!strcmp(k, "consistentHash")) {
			parse_hash(c, x, p);
		} else if (!strcmp(k, "localityLbSetting")) {
			parse_locality(c, x, &p->locality);
		} else if (!strcmp(k, "warmupDurationSecs")) {
			p->warmup_min_pct = 10;       /* Envoy's slow start defaults */
			p->warmup_aggression = 1.0;
			cfg_get_duration(c, x, &p->warmup_ms);
		} else if (!strcmp(k, "warmup") && cfg_want_map(c, x) == 0) {
			p->warmup_min_pct = 10;
			p->warmup_aggression = 1.0;
			/* Istio's newer form: duration, minimumPercent, aggression */
			for (size_t j = 0; j < x->n; j++) {
				const char *wk = x->keys[j]->s;
				size_t ql = cfg_path_push(c, ".%s", wk);
				uint64_t u;
				double d;
				if (!strcmp(wk, "duration")) {
					cfg_get_duration(c, x->items[j], &p->warmup_ms);
				} else if (!strcmp(wk, "minimumPercent")) {
					if (cfg_get_uint(c, x->items[j], 0, 100, &u) == 0)
						p->warmup_min_pct = (uint32_t)u;
				} else if (!strcmp(wk, "aggression")) {
					if (cfg_get_double(c, x->items[j], 1.0, 100.0, &d) == 0)
						p->warmup_aggression = d;
				} else {
					cfg_warn_unknown(c, x->keys[j]);
				}
				cfg_path_pop(c, ql);
			}
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
}

static void parse_pool(struct cfg_ctx *c, const struct yn *v, struct cfg_policy *p)
{
	if (cfg_want_map(c, v) != 0)
		return;
	p->has_pool = 1;
	uint64_t x;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *sec = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		int tcp = !strcmp(k, "tcp");
		if (!tcp && strcmp(k, "http") != 0) {
			cfg_warn_unknown(c, v->keys[i]);
			cfg_path_pop(c, pl);
			continue;
		}
		if (cfg_want_map(c, sec) != 0) {
			cfg_path_pop(c, pl);
			continue;
		}
		for (size_t j = 0; j < sec->n; j++) {
			const char *f = sec->keys[j]->s;
			const struct yn *y = sec->items[j];
			size_t ql = cfg_path_push(c, ".%s", f);
			if (tcp && !strcmp(f, "maxConnections")) {
				if (cfg_get_uint(c, y, 1, 10000000, &x) == 0)
					p->max_connections = (uint32_t)x;
			} else if (tcp && !strcmp(f, "connectTimeout")) {
				cfg_get_duration(c, y, &p->connect_timeout_ms);
			} else if (!tcp && !strcmp(f, "http1MaxPendingRequests")) {
				if (cfg_get_uint(c, y, 1, 10000000, &x) == 0)
					p->max_pending = (uint32_t)x;
			} else if (!tcp && !strcmp(f, "maxRequestsPerConnection")) {
				if (cfg_get_uint(c, y, 0, 1000000000, &x) == 0)
					p->max_requests_per_conn = (uint32_t)x;
			} else if (!tcp && !strcmp(f, "idleTimeout")) {
				cfg_get_duration(c, y, &p->idle_timeout_ms);
			} else if (!tcp && !strcmp(f, "h2UpgradePolicy")) {
				char *m = NULL;
				if (cfg_get_str(c, y, 32, &m) == 0) {
					if (!strcmp(m, "UPGRADE"))
						p->h2_upgrade = 1;
					else if (!strcmp(m, "DO_NOT_UPGRADE"))
						p->h2_upgrade = -1;
					else if (strcmp(m, "DEFAULT") != 0)
						cfg_err(c, y, "h2UpgradePolicy \"%s\" is not one of DEFAULT, DO_NOT_UPGRADE, UPGRADE", m);
				}
			} else if ((tcp && (!strcmp(f, "tcpKeepalive") || !strcmp(f, "maxConnectionDuration") ||
					    !strcmp(f, "idleTimeout"))) ||
				   (!tcp && (!strcmp(f, "http2MaxRequests") || !strcmp(f, "maxRetries") ||
					     !strcmp(f, "useClientProtocol") ||
					     !strcmp(f, "maxConcurrentStreams")))) {
				cfg_warn_unimplemented(c, sec->keys[j], f);
			} else {
				cfg_warn_unknown(c, sec->keys[j]);
			}
			cfg_path_pop(c, ql);
		}
		cfg_path_pop(c, pl);
	}
}

/* ClientTLSSettings. SIMPLE and MUTUAL: the proxy originates TLS to the
 * endpoints (src/proxy/origin_tls.c), verifying the server against
 * caCertificates (else the system's roots) and its name (sni, else the
 * service's host, or subjectAltNames) unless insecureSkipVerify. */
static void parse_tls(struct cfg_ctx *c, const struct yn *v, struct cfg_policy *p)
{
	const struct yn *mode_at = NULL;
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x = v->items[i];
		struct sn_origin_tls *o = &p->origin;
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "mode")) {
			char *m = NULL;
			mode_at = x;
			if (cfg_get_str(c, x, 32, &m) == 0) {
				p->has_tls = 1;
				p->tls_mode = SN_CLUSTER_TLS_DISABLE;
				if (!strcmp(m, "ISTIO_MUTUAL"))
					/* Whether this proxy can do it (it holds an identity)
					 * is the proxy's to say: sn_ident_check_snapshot. */
					p->tls_mode = SN_CLUSTER_TLS_ISTIO_MUTUAL;
				else if (!strcmp(m, "SIMPLE"))
					p->tls_mode = SN_CLUSTER_TLS_SIMPLE;
				else if (!strcmp(m, "MUTUAL"))
					p->tls_mode = SN_CLUSTER_TLS_MUTUAL;
				else if (strcmp(m, "DISABLE") != 0)
					cfg_err(c, x, "unknown tls mode \"%.32s\"; use DISABLE, SIMPLE, MUTUAL "
						"or ISTIO_MUTUAL", m);
			}
		} else if (!strcmp(k, "caCertificates")) {
			cfg_get_str(c, x, CFG_MAX_STR, &o->ca_file);
		} else if (!strcmp(k, "clientCertificate")) {
			cfg_get_str(c, x, CFG_MAX_STR, &o->cert_file);
		} else if (!strcmp(k, "privateKey")) {
			cfg_get_str(c, x, CFG_MAX_STR, &o->key_file);
		} else if (!strcmp(k, "credentialName")) {
			if (cfg_get_str(c, x, CFG_MAX_NAME, &o->credential) == 0 &&
			    (o->credential[0] == '.' || strchr(o->credential, '/') != NULL))
				cfg_err(c, x, "credentialName \"%.64s\" must be a plain name (a directory of the "
					"proxy's --credentials-dir)", o->credential);
		} else if (!strcmp(k, "sni")) {
			cfg_get_str(c, x, CFG_MAX_NAME, &o->sni);
		} else if (!strcmp(k, "subjectAltNames")) {
			cfg_get_str_list(c, x, CFG_MAX_NAME, &o->sans, &o->n_sans, NULL);
		} else if (!strcmp(k, "insecureSkipVerify")) {
			int b = 0;
			if (cfg_get_bool(c, x, &b) == 0)
				o->insecure = b;
		} else {
			cfg_warn_unimplemented(c, v->keys[i], k);
		}
		cfg_path_pop(c, pl);
	}
	if (p->tls_mode == SN_CLUSTER_TLS_MUTUAL && p->origin.credential == NULL &&
	    (p->origin.cert_file == NULL || p->origin.key_file == NULL)) {
		size_t pl = cfg_path_push(c, ".mode");
		cfg_err(c, mode_at, "tls.mode MUTUAL needs clientCertificate and privateKey (PEM files), or "
			"credentialName");
		cfg_path_pop(c, pl);
	}
}

/* outlierDetection, with Istio's defaults (networking/v1 destination_rule
 * OutlierDetection). consecutiveErrors is the deprecated name of
 * consecutiveGatewayErrors's older meaning; it is refused with a pointer. */
static void parse_outlier(struct cfg_ctx *c, const struct yn *v, struct sn_outlier_policy *o)
{
	uint64_t x;
	double d;

	if (cfg_want_map(c, v) != 0)
		return;
	*o = (struct sn_outlier_policy){ .enabled = 1, .consecutive_5xx = 5, .consecutive_local = 5,
					 .interval_ms = 10000, .base_ejection_ms = 30000, .max_ejection_pct = 10 };
	for (size_t i = 0; i < v->n; i++) {
		const char *f = v->keys[i]->s;
		const struct yn *y = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", f);
		if (!strcmp(f, "consecutive5xxErrors")) {
			if (cfg_get_uint(c, y, 0, 1000000, &x) == 0)
				o->consecutive_5xx = (uint32_t)x;
		} else if (!strcmp(f, "consecutiveGatewayErrors")) {
			if (cfg_get_uint(c, y, 0, 1000000, &x) == 0)
				o->consecutive_gateway = (uint32_t)x;
		} else if (!strcmp(f, "consecutiveLocalOriginFailures")) {
			if (cfg_get_uint(c, y, 0, 1000000, &x) == 0)
				o->consecutive_local = (uint32_t)x;
		} else if (!strcmp(f, "splitExternalLocalOriginErrors")) {
			cfg_get_bool(c, y, &o->split_local);
		} else if (!strcmp(f, "interval")) {
			if (cfg_get_duration(c, y, &o->interval_ms) == 0 && o->interval_ms == 0)
				cfg_err(c, y, "interval must be at least 1ms");
		} else if (!strcmp(f, "baseEjectionTime")) {
			if (cfg_get_duration(c, y, &o->base_ejection_ms) == 0 && o->base_ejection_ms == 0)
				cfg_err(c, y, "baseEjectionTime must be at least 1ms");
		} else if (!strcmp(f, "maxEjectionPercent") || !strcmp(f, "minHealthPercent")) {
			if (cfg_get_double(c, y, 0, 100, &d) == 0) {
				if (f[1] == 'a')
					o->max_ejection_pct = (uint32_t)d;
				else
					o->min_health_pct = (uint32_t)d;
			}
		} else if (!strcmp(f, "consecutiveErrors")) {
			cfg_err(c, v->keys[i], "consecutiveErrors is deprecated and removed from Istio's v1 API; use "
				"consecutive5xxErrors or consecutiveGatewayErrors");
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
}

static void parse_policy(struct cfg_ctx *c, const struct yn *v, struct cfg_policy *p);

/* portLevelSettings[]: {port: {number}, loadBalancer, connectionPool,
 * outlierDetection, tls}, each port once. */
static void parse_port_level(struct cfg_ctx *c, const struct yn *v, struct cfg_policy *p)
{
	uint64_t x;
	if (cfg_want_seq(c, v, CFG_MAX_LIST) != 0 || v->n == 0)
		return;
	p->ports = sn_arena_new_array(c->a, struct cfg_port_policy, v->n);
	if (p->ports == NULL)
		return;
	for (size_t j = 0; j < v->n; j++) {
		const struct yn *e = v->items[j];
		size_t ql = cfg_path_push(c, "[%zu]", j);
		if (cfg_want_map(c, e) != 0) {
			cfg_path_pop(c, ql);
			continue;
		}
		struct cfg_port_policy *pp = &p->ports[p->n_ports];
		memset(pp, 0, sizeof(*pp));
		const struct yn *port = yn_get(e, "port"), *num = port != NULL && port->type == YN_MAP ? yn_get(port, "number") : NULL;
		if (cfg_require(c, e, "port", YN_MAP, "the Service port these settings are for: {number: 443}") != NULL) {
			size_t pl = cfg_path_push(c, ".port.number");
			if (num == NULL)
				cfg_err(c, port, "number is required: the Service port, e.g. 443");
			else if (cfg_get_uint(c, num, 1, 65535, &x) == 0)
				pp->port = (uint16_t)x;
			cfg_path_pop(c, pl);
			for (size_t k = 0; port->type == YN_MAP && k < port->n; k++)
				if (strcmp(port->keys[k]->s, "number") != 0) {
					size_t pl2 = cfg_path_push(c, ".port.%s", port->keys[k]->s);
					cfg_warn_unknown(c, port->keys[k]);
					cfg_path_pop(c, pl2);
				}
		}
		for (size_t k = 0; pp->port && k < p->n_ports; k++)
			if (p->ports[k].port == pp->port) {
				size_t pl = cfg_path_push(c, ".port.number");
				cfg_err(c, num, "port %u has settings already (portLevelSettings[%zu]); give each port one entry",
					pp->port, k);
				cfg_path_pop(c, pl);
				pp->port = 0;
			}
		/* the entry is a TrafficPolicy without its own portLevelSettings */
		for (size_t i = 0; i < e->n; i++) {
			const char *k = e->keys[i]->s;
			if (!strcmp(k, "port"))
				continue;
			size_t pl = cfg_path_push(c, ".%s", k);
			if (!strcmp(k, "loadBalancer")) {
				parse_lb(c, e->items[i], &pp->p);
				if (pp->p.locality.set)
					cfg_warn(c, e->keys[i], "localityLbSetting in portLevelSettings is not implemented; "
						 "the rule's (or the subset's) applies to every port");
			} else if (!strcmp(k, "connectionPool")) {
				parse_pool(c, e->items[i], &pp->p);
			}
			else if (!strcmp(k, "tls"))
				parse_tls(c, e->items[i], &pp->p);
			else if (!strcmp(k, "outlierDetection"))
				parse_outlier(c, e->items[i], &pp->p.outlier);
			else
				cfg_warn_unknown(c, e->keys[i]);
			cfg_path_pop(c, pl);
		}
		if (pp->port)
			p->n_ports++;
		cfg_path_pop(c, ql);
	}
}

static void parse_policy(struct cfg_ctx *c, const struct yn *v, struct cfg_policy *p)
{
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "loadBalancer"))
			parse_lb(c, x, p);
		else if (!strcmp(k, "connectionPool"))
			parse_pool(c, x, p);
		else if (!strcmp(k, "tls"))
			parse_tls(c, x, p);
		else if (!strcmp(k, "outlierDetection"))
			parse_outlier(c, x, &p->outlier);
		else if (!strcmp(k, "portLevelSettings"))
			parse_port_level(c, x, p);
		else if (!strcmp(k, "tunnel") || !strcmp(k, "proxyProtocol"))
			cfg_warn_unimplemented(c, v->keys[i], k);
		else
			cfg_warn_unknown(c, v->keys[i]);
		cfg_path_pop(c, pl);
	}
}

struct cfg_dr *cfg_parse_destination_rule(struct cfg_ctx *c, const struct yn *spec)
{
	struct cfg_dr *dr = sn_arena_new(c->a, struct cfg_dr);
	if (dr == NULL)
		return NULL;
	for (size_t i = 0; i < spec->n; i++) {
		const char *k = spec->keys[i]->s;
		const struct yn *v = spec->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "host")) {
			if (cfg_get_str(c, v, CFG_MAX_NAME, &dr->host) == 0) {
				sn_ascii_lower(dr->host);
				size_t n = strlen(dr->host);
				if (n > 1 && dr->host[n - 1] == '.')
					dr->host[n - 1] = '\0';
				dr->host_loc = cfg_loc_of(v);
				if (dr->host[0] == '\0' || strchr(dr->host, ':') || strchr(dr->host, '/')) {
					cfg_err(c, v, "\"%.64s\" is not a valid host; write a service name like "
						"\"reviews\"", dr->host);
					dr->host = NULL;
				}
			}
		} else if (!strcmp(k, "trafficPolicy")) {
			parse_policy(c, v, &dr->policy);
		} else if (!strcmp(k, "subsets")) {
			if (cfg_want_seq(c, v, CFG_MAX_LIST) == 0) {
				dr->subsets = sn_arena_new_array(c->a, struct cfg_subset, v->n ? v->n : 1);
				if (dr->subsets == NULL)
					return NULL;
				for (size_t j = 0; j < v->n; j++) {
					size_t ql = cfg_path_push(c, "[%zu]", j);
					const struct yn *sv = v->items[j];
					if (cfg_want_map(c, sv) != 0) {
						cfg_path_pop(c, ql);
						continue;
					}
					struct cfg_subset *s = &dr->subsets[dr->n_subsets];
					s->loc = cfg_loc_of(sv);
					for (size_t m = 0; m < sv->n; m++) {
						const char *sk = sv->keys[m]->s;
						size_t rl = cfg_path_push(c, ".%s", sk);
						if (!strcmp(sk, "name"))
							cfg_get_str(c, sv->items[m], CFG_MAX_NAME, &s->name);
						else if (!strcmp(sk, "labels"))
							cfg_get_labels(c, sv->items[m], &s->labels);
						else if (!strcmp(sk, "trafficPolicy"))
							parse_policy(c, sv->items[m], &s->policy);
						else
							cfg_warn_unknown(c, sv->keys[m]);
						cfg_path_pop(c, rl);
					}
					if (cfg_require(c, sv, "name", YN_SCALAR, "name the subset (e.g. v1)") != NULL &&
					    s->name != NULL) {
						for (size_t m = 0; m < dr->n_subsets; m++)
							if (!strcmp(dr->subsets[m].name, s->name))
								cfg_err(c, sv, "subset \"%.64s\" is defined twice", s->name);
						dr->n_subsets++;
					}
					cfg_path_pop(c, ql);
				}
			}
		} else if (!strcmp(k, "exportTo")) {
			cfg_warn_unimplemented(c, spec->keys[i], "exportTo (every DestinationRule is visible to every proxy)");
		} else if (!strcmp(k, "workloadSelector")) {
			cfg_warn_unimplemented(c, spec->keys[i], "workloadSelector");
		} else {
			cfg_warn_unknown(c, spec->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	cfg_require(c, spec, "host", YN_SCALAR, "the Service this rule applies to");
	return dr;
}
