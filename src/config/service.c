/* Service (Kubernetes v1) and WorkloadEntry: what the registry is made of. */
#include <arpa/inet.h>
#include <string.h>

#include "config_internal.h"

static void parse_port(struct cfg_ctx *c, const struct yn *v, struct cfg_svc_port *p)
{
	uint64_t x;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x_node = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "name")) {
			cfg_get_str(c, x_node, 63, &p->name);
		} else if (!strcmp(k, "port")) {
			if (cfg_get_uint(c, x_node, 1, 65535, &x) == 0)
				p->port = (uint16_t)x;
		} else if (!strcmp(k, "targetPort")) {
			if (x_node->type == YN_SCALAR && !x_node->plain) {
				cfg_warn(c, x_node, "a named targetPort (\"%.64s\") is not implemented yet; "
					 "the service port is used (or the WorkloadEntry's port of the same name)",
					 x_node->s);
			} else if (x_node->type == YN_SCALAR && x_node->len && (x_node->s[0] < '0' || x_node->s[0] > '9')) {
				cfg_warn(c, x_node, "a named targetPort (\"%.64s\") is not implemented yet; "
					 "the service port is used (or the WorkloadEntry's port of the same name)",
					 x_node->s);
			} else if (cfg_get_uint(c, x_node, 1, 65535, &x) == 0) {
				p->target_port = (uint16_t)x;
			}
		} else if (!strcmp(k, "protocol")) {
			if (cfg_get_str(c, x_node, 16, &p->protocol) == 0 && strcmp(p->protocol, "TCP") != 0)
				cfg_warn(c, x_node, "protocol %.16s is not implemented (only TCP); the port is "
					 "treated as TCP", p->protocol);
		} else if (!strcmp(k, "appProtocol")) {
			cfg_get_str(c, x_node, 63, &p->app_protocol);
		} else if (!strcmp(k, "nodePort")) {
			cfg_warn_unimplemented(c, v->keys[i], "nodePort");
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	cfg_require(c, v, "port", YN_SCALAR, "the port number the service listens on (1-65535)");
}

struct cfg_service *cfg_parse_service(struct cfg_ctx *c, const struct yn *spec, const struct sn_labels *meta_labels)
{
	struct cfg_service *s = sn_arena_new(c->a, struct cfg_service);
	if (s == NULL)
		return NULL;
	s->labels = *meta_labels;
	for (size_t i = 0; i < spec->n; i++) {
		const char *k = spec->keys[i]->s;
		const struct yn *v = spec->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "selector")) {
			if (cfg_get_labels(c, v, &s->selector) == 0)
				s->has_selector = 1;
		} else if (!strcmp(k, "ports")) {
			if (cfg_want_seq(c, v, 256) == 0) {
				s->ports = sn_arena_new_array(c->a, struct cfg_svc_port, v->n ? v->n : 1);
				if (s->ports == NULL)
					return NULL;
				for (size_t j = 0; j < v->n; j++) {
					size_t ql = cfg_path_push(c, "[%zu]", j);
					if (cfg_want_map(c, v->items[j]) == 0)
						parse_port(c, v->items[j], &s->ports[s->n_ports++]);
					cfg_path_pop(c, ql);
				}
				for (size_t a = 0; a < s->n_ports; a++)
					for (size_t b = a + 1; b < s->n_ports; b++)
						if (s->ports[a].port == s->ports[b].port && s->ports[a].port) {
							size_t ql = cfg_path_push(c, "[%zu].port", b);
							cfg_err(c, v->items[b], "port %u is listed twice",
								s->ports[b].port);
							cfg_path_pop(c, ql);
						}
			}
		} else {
			/* type, clusterIP, sessionAffinity...: Kubernetes fields with
			 * no Sinew behaviour yet; said so rather than dropped. */
			cfg_warn(c, spec->keys[i], "Service field %s is not implemented by Sinew; ignored", k);
		}
		cfg_path_pop(c, pl);
	}
	return s;
}

/* A host name as an endpoint address may be written (ServiceEntry DNS
 * endpoints): DNS-1123 characters, no wildcard. */
static int endpoint_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > CFG_MAX_NAME || s[0] == '.' || s[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '-' || ch == '.' || ch == '_'))
			return 0;
	}
	return 1;
}

int cfg_parse_workload_body(struct cfg_ctx *c, const struct yn *spec, const struct sn_labels *meta_labels,
			    int names_ok, struct cfg_workload *w)
{
	memset(w, 0, sizeof(*w));
	w->weight = 1;
	int has_labels = 0;
	for (size_t i = 0; i < spec->n; i++) {
		const char *k = spec->keys[i]->s;
		const struct yn *v = spec->items[i];
		uint64_t x;
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "address")) {
			w->address_loc = cfg_loc_of(v);
			if (cfg_get_str(c, v, CFG_MAX_NAME, &w->address) == 0) {
				unsigned char buf[16];
				int ip = inet_pton(AF_INET, w->address, buf) == 1 || inet_pton(AF_INET6, w->address, buf) == 1;
				if (!ip && !strncmp(w->address, "unix://", 7)) {
					cfg_err(c, v, "unix domain socket addresses (\"%.64s\") are not supported yet; "
						"write an IPv4 or IPv6 address", w->address);
					w->address = NULL;
				} else if (!ip && !names_ok) {
					cfg_err(c, v, "\"%.64s\" is not an IP address; host names and unix sockets "
						"are not supported yet, write the workload's IPv4 or IPv6 address",
						w->address);
					w->address = NULL;
				} else if (!ip && !endpoint_name_ok(w->address)) {
					cfg_err(c, v, "\"%.64s\" is neither an IP address nor a valid host name "
						"(no wildcard, port or scheme)", w->address);
					w->address = NULL;
				}
			}
		} else if (!strcmp(k, "ports")) {
			if (cfg_want_map(c, v) == 0) {
				w->ports = sn_arena_new_array(c->a, struct cfg_named_port, v->n ? v->n : 1);
				if (w->ports == NULL)
					return -1;
				for (size_t j = 0; j < v->n; j++) {
					size_t ql = cfg_path_push(c, ".%s", v->keys[j]->s);
					if (cfg_get_uint(c, v->items[j], 1, 65535, &x) == 0) {
						w->ports[w->n_ports].name = sn_arena_strdup(c->a, v->keys[j]->s);
						w->ports[w->n_ports].loc = cfg_loc_of(v->keys[j]);
						w->ports[w->n_ports++].port = (uint16_t)x;
					}
					cfg_path_pop(c, ql);
				}
			}
		} else if (!strcmp(k, "labels")) {
			if (cfg_get_labels(c, v, &w->labels) == 0)
				has_labels = 1;
		} else if (!strcmp(k, "serviceAccount")) {
			cfg_get_str(c, v, CFG_MAX_NAME, &w->service_account);
		} else if (!strcmp(k, "weight")) {
			if (cfg_get_uint(c, v, 0, 1000000, &x) == 0)
				w->weight = (uint32_t)x;
		} else if (!strcmp(k, "locality")) {
			cfg_get_str(c, v, CFG_MAX_NAME, &w->locality);
		} else if (!strcmp(k, "network")) {
			cfg_warn_unimplemented(c, spec->keys[i], k);
		} else {
			cfg_warn_unknown(c, spec->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	if (!has_labels && meta_labels != NULL)
		w->labels = *meta_labels;
	cfg_require(c, spec, "address", YN_SCALAR, "the workload's IP address");
	return 0;
}

struct cfg_workload *cfg_parse_workload(struct cfg_ctx *c, const struct yn *spec, const struct sn_labels *meta_labels)
{
	struct cfg_workload *w = sn_arena_new(c->a, struct cfg_workload);
	if (w == NULL || cfg_parse_workload_body(c, spec, meta_labels, 0, w) != 0)
		return NULL;
	return w;
}

/* ---- what the control plane and the CLI read of them ------------------ */

const struct sn_labels *sn_service_selector(const struct sn_resource *r)
{
	const struct cfg_service *cs = NULL;
	if (r == NULL || r->spec == NULL)
		return NULL;
	if (r->kind == SN_KIND_SERVICE)
		cs = r->spec;
	else if (r->kind == SN_KIND_SERVICE_ENTRY)
		cs = &((const struct cfg_service_entry *)r->spec)->svc;
	return cs != NULL && cs->has_selector && cs->selector.n > 0 ? &cs->selector : NULL;
}

int sn_service_port_at(const struct sn_resource *r, size_t i, struct sn_port_info *out)
{
	if (r == NULL || r->spec == NULL || r->kind != SN_KIND_SERVICE)
		return -1;
	const struct cfg_service *cs = r->spec;
	if (i >= cs->n_ports)
		return -1;
	*out = (struct sn_port_info){ cs->ports[i].name, cs->ports[i].port, cs->ports[i].target_port };
	return 0;
}

int sn_workload_of(const struct sn_resource *r, struct sn_workload_info *out)
{
	if (r == NULL || r->spec == NULL || r->kind != SN_KIND_WORKLOAD_ENTRY)
		return -1;
	const struct cfg_workload *w = r->spec;
	*out = (struct sn_workload_info){ &w->labels, w->address, w->service_account };
	return 0;
}
