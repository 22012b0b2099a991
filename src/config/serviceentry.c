/* ServiceEntry (networking.istio.io): hosts the registry does not know
 * from a Service, with their ports, resolution and endpoints (listed, or
 * WorkloadEntries picked by workloadSelector). Checked here with Istio's
 * validation rules; translate.c then builds every host like a Service.
 *
 * DNS is never queried here: translation runs inside a proxy's loop and
 * must not block. An endpoint written as an IP literal or "localhost" is
 * used as is; another name is resolved by the proxy's resolver thread
 * (src/proxy/dns.c) and gives endpoints once it has answered. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_internal.h"

const char *cfg_se_resolution_str(enum cfg_se_resolution r)
{
	switch (r) {
	case CFG_SE_NONE:
		return "NONE";
	case CFG_SE_STATIC:
		return "STATIC";
	case CFG_SE_DNS:
		return "DNS";
	case CFG_SE_DNS_ROUND_ROBIN:
		return "DNS_ROUND_ROBIN";
	}
	return "unknown";
}

const char *cfg_literal_ip(const char *name)
{
	unsigned char buf[16];
	if (name == NULL)
		return NULL;
	if (inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1)
		return name;
	if (!strcasecmp(name, "localhost") || !strcasecmp(name, "localhost."))
		return "127.0.0.1";
	return NULL;
}

/* DNS-1123 names with an optional "*." prefix (Istio's wildcard domain). */
static int se_host_ok(const char *h)
{
	size_t n = strlen(h);
	if (n == 0 || n > CFG_MAX_NAME)
		return 0;
	if (h[0] == '*') {
		if (h[1] != '.' || h[2] == '\0')
			return 0;
		h += 2;
	}
	if (*h == '.' || *h == '-')
		return 0;
	for (; *h; h++) {
		char c = *h;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
			return 0;
	}
	return 1;
}

/* An IP address or a CIDR ("10.0.0.0/8", "2001:db8::/32"). 1 if valid;
 * *cidr says which. */
static int address_ok(const char *s, int *cidr)
{
	char ip[64];
	unsigned char buf[16];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	*cidr = slash != NULL;
	if (n == 0 || n >= sizeof(ip))
		return 0;
	memcpy(ip, s, n);
	ip[n] = '\0';
	int bits;
	if (inet_pton(AF_INET, ip, buf) == 1)
		bits = 32;
	else if (inet_pton(AF_INET6, ip, buf) == 1)
		bits = 128;
	else
		return 0;
	if (slash == NULL)
		return 1;
	const char *p = slash + 1;
	int v = 0;
	if (*p == '\0' || strlen(p) > 3)
		return 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		v = v * 10 + (*p - '0');
	}
	return v <= bits;
}

/* Istio's protocol names (protocol.Parse), case-insensitive. */
static const char *const known_protocols[] = {
	"http", "https", "grpc", "grpc-web", "http2", "http_proxy", "tcp", "tls", "mongo", "mysql", "redis", "udp",
};

static void parse_port(struct cfg_ctx *c, const struct yn *v, struct cfg_svc_port *p)
{
	uint64_t x;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *xn = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "number")) {
			if (cfg_get_uint(c, xn, 1, 65535, &x) == 0)
				p->port = (uint16_t)x;
		} else if (!strcmp(k, "targetPort")) {
			if (cfg_get_uint(c, xn, 1, 65535, &x) == 0)
				p->target_port = (uint16_t)x;
		} else if (!strcmp(k, "name")) {
			cfg_get_str(c, xn, 63, &p->name);
		} else if (!strcmp(k, "protocol")) {
			char *proto = NULL;
			if (cfg_get_str(c, xn, 32, &proto) == 0) {
				sn_ascii_lower(proto);
				int known = 0;
				for (size_t j = 0; j < SN_ARRAY_LEN(known_protocols); j++)
					known |= !strcmp(proto, known_protocols[j]);
				if (!known) {
					cfg_err(c, xn, "unknown protocol \"%.32s\"; use HTTP, HTTPS, GRPC, HTTP2, TCP, TLS, "
						"MONGO, MYSQL or REDIS", proto);
				} else {
					p->app_protocol = proto;
					if (strcmp(proto, "http") && strcmp(proto, "http2") && strcmp(proto, "grpc") &&
					    strcmp(proto, "grpc-web"))
						cfg_warn(c, xn, "protocol %s: captured traffic (sinew run) on this port is "
							 "relayed as opaque TCP; requests through the proxy's --outbound "
							 "listener are routed as HTTP", v->items[i]->s);
				}
			}
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	cfg_require(c, v, "number", YN_SCALAR, "the port number (1-65535)");
	cfg_require(c, v, "name", YN_SCALAR,
		    "Istio: a DNS label such as \"http\"; endpoints' ports maps refer to it");
}

static void parse_ports(struct cfg_ctx *c, const struct yn *v, struct cfg_service *s)
{
	if (cfg_want_seq(c, v, 256) != 0)
		return;
	s->ports = sn_arena_new_array(c->a, struct cfg_svc_port, v->n ? v->n : 1);
	if (s->ports == NULL)
		return;
	for (size_t j = 0; j < v->n; j++) {
		size_t ql = cfg_path_push(c, "[%zu]", j);
		if (cfg_want_map(c, v->items[j]) == 0)
			parse_port(c, v->items[j], &s->ports[s->n_ports++]);
		cfg_path_pop(c, ql);
	}
	for (size_t a = 0; a < s->n_ports; a++)
		for (size_t b = a + 1; b < s->n_ports; b++) {
			const char *what = NULL;
			if (s->ports[a].port && s->ports[a].port == s->ports[b].port)
				what = "number";
			else if (s->ports[a].name && s->ports[b].name && !strcmp(s->ports[a].name, s->ports[b].name))
				what = "name";
			if (what == NULL)
				continue;
			size_t ql = cfg_path_push(c, "[%zu].%s", b, what);
			cfg_err(c, v->items[b], "port %s %s is already used by ports[%zu]", what,
				!strcmp(what, "name") ? s->ports[b].name : "", a);
			cfg_path_pop(c, ql);
		}
}

static int parse_enum(struct cfg_ctx *c, const struct yn *v, const char *const *names, size_t n, const char *what)
{
	char *s = NULL;
	if (cfg_get_str(c, v, 64, &s) != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return (int)i;
	char list[200] = "";
	size_t off = 0;
	for (size_t i = 0; i < n && off < sizeof(list); i++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "", names[i]);
	cfg_err(c, v, "unknown %s \"%.64s\"; use %s", what, s, list);
	return -1;
}

static void parse_endpoints(struct cfg_ctx *c, const struct yn *v, struct cfg_service_entry *se)
{
	if (cfg_want_seq(c, v, CFG_MAX_LIST) != 0)
		return;
	se->endpoints = sn_arena_new_array(c->a, struct cfg_se_endpoint, v->n ? v->n : 1);
	if (se->endpoints == NULL)
		return;
	for (size_t j = 0; j < v->n; j++) {
		size_t ql = cfg_path_push(c, "[%zu]", j);
		struct cfg_se_endpoint *ep = &se->endpoints[se->n_endpoints];
		if (cfg_want_map(c, v->items[j]) == 0 && cfg_parse_workload_body(c, v->items[j], NULL, 1, &ep->w) == 0) {
			if (ep->w.address != NULL)
				sn_ascii_lower(ep->w.address);
			se->n_endpoints++;
		}
		cfg_path_pop(c, ql);
	}
}

/* Diagnostic at a remembered location, field path = current + suffix. */
static void at_loc(struct cfg_ctx *c, int error, struct cfg_loc loc, const char *suffix, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void at_loc(struct cfg_ctx *c, int error, struct cfg_loc loc, const char *suffix, const char *fmt, ...)
{
	struct yn at = { .line = loc.line, .col = loc.col };
	char msg[700];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	size_t pl = cfg_path_push(c, "%s", suffix);
	if (error)
		cfg_err(c, &at, "%s", msg);
	else
		cfg_warn(c, &at, "%s", msg);
	cfg_path_pop(c, pl);
}

static const char *idx_path(char *buf, size_t size, const char *field, size_t i, const char *rest)
{
	snprintf(buf, size, ".%s[%zu]%s", field, i, rest);
	return buf;
}

/* Istio's cross-field rules, once every field is read. */
static void check(struct cfg_ctx *c, const struct yn *spec, struct cfg_service_entry *se, const struct yn *res_node,
		  const struct yn *addr_node, const struct yn *sel_node)
{
	const char *rname = cfg_se_resolution_str(se->resolution);
	char path[200];
	for (size_t i = 0; i < se->n_hosts; i++) {
		const char *h = se->hosts[i];
		if (!strcmp(h, "*"))
			at_loc(c, 1, se->host_locs[i], idx_path(path, sizeof(path), "hosts", i, ""),
			       "invalid host \"*\": a ServiceEntry names its hosts (\"*.example.com\" with "
			       "resolution NONE at most)");
		else if (!se_host_ok(h))
			at_loc(c, 1, se->host_locs[i], idx_path(path, sizeof(path), "hosts", i, ""),
			       "\"%.64s\" is not a valid host; write a DNS name like \"api.example.com\" (no port, "
			       "no scheme)", h);
		else if (h[0] == '*' && se->resolution != CFG_SE_NONE)
			at_loc(c, 1, se->host_locs[i], idx_path(path, sizeof(path), "hosts", i, ""),
			       "wildcard host \"%.64s\" is allowed only with resolution NONE (resolution is %s); "
			       "list the hosts or set resolution: NONE", h, rname);
	}
	for (size_t i = 0; i < se->n_addresses; i++) {
		int cidr = 0;
		if (!address_ok(se->addresses[i], &cidr)) {
			size_t pl = cfg_path_push(c, ".addresses[%zu]", i);
			cfg_err(c, addr_node, "\"%.64s\" is not an IP address or CIDR", se->addresses[i]);
			cfg_path_pop(c, pl);
		} else if (cidr && se->resolution != CFG_SE_NONE && se->resolution != CFG_SE_STATIC) {
			size_t pl = cfg_path_push(c, ".addresses[%zu]", i);
			cfg_err(c, addr_node, "CIDR \"%.64s\" is allowed only with resolution NONE or STATIC",
				se->addresses[i]);
			cfg_path_pop(c, pl);
		}
	}
	if (se->n_addresses && c->errors == 0) {
		size_t pl = cfg_path_push(c, ".addresses");
		cfg_warn(c, addr_node, "addresses: captured opaque TCP (sinew run) sent to them goes to this "
			 "ServiceEntry's endpoints; HTTP is routed by its Host header, so call the service by "
			 "host name");
		cfg_path_pop(c, pl);
	}
	if (se->svc.has_selector && se->n_endpoints) {
		size_t pl = cfg_path_push(c, ".workloadSelector");
		cfg_err(c, sel_node, "only one of workloadSelector or endpoints can be set; remove one");
		cfg_path_pop(c, pl);
	}
	/* endpoints[].ports name ports of this entry */
	for (size_t i = 0; i < se->n_endpoints; i++) {
		const struct cfg_workload *w = &se->endpoints[i].w;
		for (size_t k = 0; k < w->n_ports; k++) {
			int found = 0;
			for (size_t p = 0; p < se->svc.n_ports; p++)
				found |= se->svc.ports[p].name && !strcmp(se->svc.ports[p].name, w->ports[k].name);
			if (!found) {
				char rest[96];
				snprintf(rest, sizeof(rest), ".ports.%.60s", w->ports[k].name);
				at_loc(c, 1, w->ports[k].loc, idx_path(path, sizeof(path), "endpoints", i, rest),
				       "\"%.64s\" is not the name of a port of this ServiceEntry; use a name from "
				       "spec.ports", w->ports[k].name);
			}
		}
	}
	switch (se->resolution) {
	case CFG_SE_NONE:
		if (se->n_endpoints) {
			size_t pl = cfg_path_push(c, ".endpoints");
			cfg_err(c, yn_get(spec, "endpoints"), "no endpoints should be provided for resolution NONE; "
				"use resolution STATIC or DNS, or remove them");
			cfg_path_pop(c, pl);
		}
		if (se->svc.has_selector) {
			size_t pl = cfg_path_push(c, ".workloadSelector");
			cfg_warn(c, sel_node, "workloadSelector should not be set when resolution is NONE; ignored");
			cfg_path_pop(c, pl);
		}
		if (c->errors == 0) {
			size_t pl = cfg_path_push(c, ".resolution");
			cfg_warn(c, res_node ? res_node : spec,
				 "resolution NONE forwards to the original destination, which needs traffic capture "
				 "(`sinew run`); until then requests get 503 no_healthy_upstream");
			cfg_path_pop(c, pl);
		}
		break;
	case CFG_SE_STATIC:
		for (size_t i = 0; i < se->n_endpoints; i++) {
			struct cfg_se_endpoint *ep = &se->endpoints[i];
			if (ep->w.address == NULL)
				continue;
			unsigned char buf[16];
			if (inet_pton(AF_INET, ep->w.address, buf) == 1 || inet_pton(AF_INET6, ep->w.address, buf) == 1)
				ep->ip = ep->w.address;
			else
				at_loc(c, 1, ep->w.address_loc, idx_path(path, sizeof(path), "endpoints", i, ".address"),
				       "\"%.64s\" is not an IP address; resolution STATIC needs IP addresses (use "
				       "resolution DNS for host names)", ep->w.address);
		}
		if (se->n_endpoints == 0 && !se->svc.has_selector && c->errors == 0) {
			size_t pl = cfg_path_push(c, ".resolution");
			cfg_warn(c, res_node ? res_node : spec, "resolution STATIC with no endpoints and no "
				 "workloadSelector: requests get 503 no_healthy_upstream");
			cfg_path_pop(c, pl);
		}
		break;
	case CFG_SE_DNS:
	case CFG_SE_DNS_ROUND_ROBIN:
		if (se->resolution == CFG_SE_DNS_ROUND_ROBIN && se->n_endpoints > 1) {
			size_t pl = cfg_path_push(c, ".endpoints");
			cfg_err(c, yn_get(spec, "endpoints"), "there must be 0 or 1 endpoint for resolution "
				"DNS_ROUND_ROBIN; use resolution DNS for several");
			cfg_path_pop(c, pl);
		}
		/* a name (not an IP literal) is the proxy resolver's: ip NULL */
		for (size_t i = 0; i < se->n_endpoints; i++) {
			struct cfg_se_endpoint *ep = &se->endpoints[i];
			if (ep->w.address != NULL)
				ep->ip = (char *)cfg_literal_ip(ep->w.address);
		}
		break;
	}
}

struct cfg_service_entry *cfg_parse_service_entry(struct cfg_ctx *c, const struct yn *spec)
{
	static const char *const locations[] = { "MESH_EXTERNAL", "MESH_INTERNAL" };
	static const char *const resolutions[] = { "NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN" };
	struct cfg_service_entry *se = sn_arena_new(c->a, struct cfg_service_entry);
	if (se == NULL)
		return NULL;
	const struct yn *res_node = NULL, *addr_node = NULL, *sel_node = NULL;
	for (size_t i = 0; i < spec->n; i++) {
		const char *k = spec->keys[i]->s;
		const struct yn *v = spec->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "hosts")) {
			if (cfg_get_str_list(c, v, CFG_MAX_NAME, &se->hosts, &se->n_hosts, &se->host_locs) == 0) {
				for (size_t j = 0; j < se->n_hosts; j++) {
					char *h = se->hosts[j];
					sn_ascii_lower(h);
					size_t n = strlen(h);
					if (n > 1 && h[n - 1] == '.')
						h[n - 1] = '\0';
				}
			}
		} else if (!strcmp(k, "addresses")) {
			addr_node = v;
			cfg_get_str_list(c, v, 64, &se->addresses, &se->n_addresses, NULL);
		} else if (!strcmp(k, "ports")) {
			parse_ports(c, v, &se->svc);
		} else if (!strcmp(k, "location")) {
			int r = parse_enum(c, v, locations, SN_ARRAY_LEN(locations), "location");
			if (r >= 0)
				se->mesh_internal = r == 1;
		} else if (!strcmp(k, "resolution")) {
			res_node = v;
			int r = parse_enum(c, v, resolutions, SN_ARRAY_LEN(resolutions), "resolution");
			if (r >= 0)
				se->resolution = (enum cfg_se_resolution)r;
		} else if (!strcmp(k, "endpoints")) {
			parse_endpoints(c, v, se);
		} else if (!strcmp(k, "workloadSelector")) {
			sel_node = v;
			if (cfg_want_map(c, v) == 0) {
				se->svc.has_selector = 1;
				for (size_t j = 0; j < v->n; j++) {
					size_t ql = cfg_path_push(c, ".%s", v->keys[j]->s);
					if (!strcmp(v->keys[j]->s, "labels"))
						cfg_get_labels(c, v->items[j], &se->svc.selector);
					else
						cfg_warn_unknown(c, v->keys[j]);
					cfg_path_pop(c, ql);
				}
			}
		} else if (!strcmp(k, "exportTo")) {
			cfg_warn_unimplemented(c, spec->keys[i], "exportTo (every ServiceEntry is visible to every proxy)");
		} else if (!strcmp(k, "subjectAltNames")) {
			cfg_warn(c, spec->keys[i], "subjectAltNames is not checked until Sinew originates mTLS to "
				 "upstreams; ignored");
		} else {
			cfg_warn_unknown(c, spec->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	cfg_require(c, spec, "hosts", YN_SEQ, "list the host names this ServiceEntry adds, e.g. [api.example.com]");
	if (se->svc.n_ports == 0 && c->errors == 0) {
		size_t pl = cfg_path_push(c, ".ports");
		cfg_warn(c, yn_get(spec, "ports") ? yn_get(spec, "ports") : spec,
			 "no ports: nothing can route to this ServiceEntry; add spec.ports");
		cfg_path_pop(c, pl);
	}
	if (c->errors == 0)
		check(c, spec, se, res_node, addr_node, sel_node);
	return se;
}
