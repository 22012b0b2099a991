/* Resources: multi-document loading, kinds and apiVersions, metadata. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

static const char *const kind_names[SN_KIND__COUNT] = {
	[SN_KIND_SERVICE] = "Service",
	[SN_KIND_WORKLOAD_ENTRY] = "WorkloadEntry",
	[SN_KIND_VIRTUAL_SERVICE] = "VirtualService",
	[SN_KIND_DESTINATION_RULE] = "DestinationRule",
	[SN_KIND_AUTHORIZATION_POLICY] = "AuthorizationPolicy",
	[SN_KIND_PEER_AUTHENTICATION] = "PeerAuthentication",
	[SN_KIND_SERVICE_ENTRY] = "ServiceEntry",
	[SN_KIND_REQUEST_AUTHENTICATION] = "RequestAuthentication",
	[SN_KIND_CONFIG_MAP] = "ConfigMap",
	[SN_KIND_SERVER] = "Server",
	[SN_KIND_RATE_LIMIT] = "HTTPLocalRateLimitPolicy",
	[SN_KIND_TELEMETRY] = "Telemetry",
	[SN_KIND_GATEWAY] = "Gateway",
	[SN_KIND_HTTP_ROUTE] = "HTTPRoute",
	[SN_KIND_K8S_GATEWAY] = "Gateway.gateway.networking.k8s.io",
	[SN_KIND_GRPC_ROUTE] = "GRPCRoute",
	[SN_KIND_TCP_ROUTE] = "TCPRoute",
	[SN_KIND_TLS_ROUTE] = "TLSRoute",
	[SN_KIND_REFERENCE_GRANT] = "ReferenceGrant",
};

const char *sn_resource_kind_str(enum sn_resource_kind k)
{
	return (unsigned)k < SN_KIND__COUNT ? kind_names[k] : "unknown";
}

int sn_kind_of(const char *kind, const char *api_version)
{
	if (kind == NULL)
		return -1;
	if (!strcmp(kind, "Gateway") && api_version != NULL &&
	    !strncmp(api_version, "gateway.networking.k8s.io/", 26))
		return SN_KIND_K8S_GATEWAY;
	for (int i = 0; i < SN_KIND__COUNT; i++)
		if (!strcmp(kind, kind_names[i]))
			return i;
	return -1;
}

/* Kinds an Istio or Kubernetes user applies that Sinew does not implement
 * yet: a warning, so that whole sample files load. */
static const char *const later_kinds[] = {
	"Sidecar", "EnvoyFilter", "WorkloadGroup", "ProxyConfig",
	"WasmPlugin", "GatewayClass", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod", "Job",
	"CronJob", "ServiceAccount", "Secret", "Namespace", "Endpoints",
	"EndpointSlice", "Ingress", "NetworkPolicy", "HorizontalPodAutoscaler",
	"PodDisruptionBudget", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding",
	"PersistentVolumeClaim",
};

static const char *const istio_versions[] = {
	"networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3",
};

static const char *const security_versions[] = {
	"security.istio.io/v1", "security.istio.io/v1beta1",
};

/* Linkerd's policy resources Sinew reads (ratelimit.c) */
static const char *const linkerd_server_versions[] = {
	"policy.linkerd.io/v1beta3", "policy.linkerd.io/v1beta2", "policy.linkerd.io/v1beta1",
};

static const char *const gateway_api_versions[] = {
	"gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1",
};
/* the kinds still experimental in the Gateway API's releases */
static const char *const gateway_api_alpha_versions[] = {
	"gateway.networking.k8s.io/v1alpha2", "gateway.networking.k8s.io/v1alpha3",
};

/* The apiVersions kind k (a Gateway API kind) takes, as said in errors. */
static const char *gateway_api_versions_for(int k)
{
	switch (k) {
	case SN_KIND_TCP_ROUTE:
		return "gateway.networking.k8s.io/v1alpha2";
	case SN_KIND_TLS_ROUTE:
		return "gateway.networking.k8s.io/v1alpha2 (or v1alpha3)";
	case SN_KIND_GRPC_ROUTE:
		return "gateway.networking.k8s.io/v1 (or v1alpha2)";
	case SN_KIND_REFERENCE_GRANT:
		return "gateway.networking.k8s.io/v1beta1 (or v1alpha2)";
	default:
		return "gateway.networking.k8s.io/v1 (or v1beta1)";
	}
}

static int gateway_api_version_ok(int k, const char *api)
{
	int alpha = 0;
	for (size_t i = 0; i < SN_ARRAY_LEN(gateway_api_alpha_versions); i++)
		alpha |= !strcmp(api, gateway_api_alpha_versions[i]);
	switch (k) {
	case SN_KIND_TCP_ROUTE:
		return !strcmp(api, "gateway.networking.k8s.io/v1alpha2");
	case SN_KIND_TLS_ROUTE:
		return alpha;
	case SN_KIND_GRPC_ROUTE:
		return !strcmp(api, "gateway.networking.k8s.io/v1") || !strcmp(api, "gateway.networking.k8s.io/v1alpha2");
	case SN_KIND_REFERENCE_GRANT:
		return !strcmp(api, "gateway.networking.k8s.io/v1beta1") ||
		       !strcmp(api, "gateway.networking.k8s.io/v1alpha2");
	default:
		for (size_t i = 0; i < SN_ARRAY_LEN(gateway_api_versions); i++)
			if (!strcmp(api, gateway_api_versions[i]))
				return 1;
		return 0;
	}
}

static int is_security_kind(int k)
{
	return k == SN_KIND_AUTHORIZATION_POLICY || k == SN_KIND_PEER_AUTHENTICATION ||
	       k == SN_KIND_REQUEST_AUTHENTICATION;
}

int sn_labels_match(const struct sn_labels *selector, const struct sn_labels *set)
{
	if (selector == NULL)
		return 1;
	for (size_t i = 0; i < selector->n; i++) {
		const char *v = sn_labels_get(set, selector->v[i].key);
		if (v == NULL || strcmp(v, selector->v[i].value) != 0)
			return 0;
	}
	return 1;
}

const char *sn_labels_get(const struct sn_labels *set, const char *key)
{
	if (set == NULL)
		return NULL;
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->v[i].key, key) == 0)
			return set->v[i].value;
	return NULL;
}

void sn_labels_free(struct sn_labels *l)
{
	for (size_t i = 0; l->v != NULL && i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int sn_labels_dup(struct sn_labels *dst, const struct sn_labels *src)
{
	dst->n = 0;
	dst->v = calloc(src->n + 1, sizeof(*dst->v));
	if (dst->v == NULL)
		return SN_ENOMEM;
	for (size_t i = 0; i < src->n; i++) {
		dst->v[i].key = strdup(src->v[i].key);
		dst->v[i].value = strdup(src->v[i].value);
		dst->n++;
		if (dst->v[i].key == NULL || dst->v[i].value == NULL) {
			sn_labels_free(dst);
			return SN_ENOMEM;
		}
	}
	return 0;
}

int sn_labels_arena_dup(struct sn_arena *a, struct sn_labels *dst, const struct sn_labels *src)
{
	dst->n = 0;
	dst->v = sn_arena_new_array(a, struct sn_label, src->n ? src->n : 1);
	if (dst->v == NULL)
		return -1;
	for (size_t i = 0; i < src->n; i++) {
		dst->v[i].key = sn_arena_strdup(a, src->v[i].key);
		dst->v[i].value = sn_arena_strdup(a, src->v[i].value);
		if (dst->v[i].key == NULL || dst->v[i].value == NULL)
			return -1;
	}
	dst->n = src->n;
	return 0;
}

void sn_config_set_init(struct sn_config_set *set)
{
	memset(set, 0, sizeof(*set));
	sn_arena_init(&set->arena, 0);
	set->tail = &set->head;
}

void sn_config_set_free(struct sn_config_set *set)
{
	sn_arena_free(&set->arena);
	memset(set, 0, sizeof(*set));
	set->tail = &set->head;
}

struct load_state {
	struct sn_config_set *set;
	struct sn_diags *d;
	const char *file;
	const char *text;    /* the whole input, for each resource's text */
	size_t len;
};

/* The resource's own YAML: its root node's bytes, from the start of its
 * first line to the end of its last, with what precedes the root on the
 * first line ("--- ", "- ") blanked so lines and columns stay as in the
 * input. NULL on allocation failure. */
static char *resource_text(struct load_state *ls, struct sn_arena *a, const struct yn *root, size_t *len_out)
{
	size_t start = root->start, end = root->end;
	if (start > ls->len || end > ls->len || end < start)
		return NULL;
	while (end < ls->len && ls->text[end] != '\n')
		end++;
	size_t lead = 0;
	while (lead < start && ls->text[start - lead - 1] != '\n')
		lead++;
	char *t = sn_arena_alloc(a, lead + (end - start) + 2);
	if (t == NULL)
		return NULL;
	memset(t, ' ', lead);
	memcpy(t + lead, ls->text + start, end - start);
	t[lead + end - start] = '\n';
	*len_out = lead + (end - start) + 1;
	return t;
}

static int name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > CFG_MAX_NAME)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '-' || ch == '.' || ch == '_'))
			return 0;
	}
	return 1;
}

struct meta {
	char *name;
	char *namespace_;
	struct sn_labels labels;
};

static void parse_metadata(struct cfg_ctx *c, const struct yn *v, struct meta *m)
{
	if (v == NULL || v->type == YN_NULL) {
		size_t pl = cfg_path_push(c, ".metadata.name");
		cfg_err(c, v, "metadata.name is required: name the resource (letters, digits, '-' and '.')");
		cfg_path_pop(c, pl);
		return;
	}
	size_t pl = cfg_path_push(c, ".metadata");
	if (cfg_want_map(c, v) != 0) {
		cfg_path_pop(c, pl);
		return;
	}
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x = v->items[i];
		size_t fl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "name")) {
			if (cfg_get_str(c, x, CFG_MAX_NAME, &m->name) == 0 && !name_ok(m->name)) {
				cfg_err(c, x, "\"%.64s\" is not a valid name; use letters, digits, '-' and '.'", m->name);
				m->name = NULL;
			}
		} else if (!strcmp(k, "namespace")) {
			if (cfg_get_str(c, x, 63, &m->namespace_) == 0 && !name_ok(m->namespace_)) {
				cfg_err(c, x, "\"%.64s\" is not a valid namespace", m->namespace_);
				m->namespace_ = NULL;
			}
		} else if (!strcmp(k, "labels")) {
			cfg_get_labels(c, x, &m->labels);
		} else if (!strcmp(k, "annotations") || !strcmp(k, "uid") || !strcmp(k, "resourceVersion") ||
			   !strcmp(k, "generation") || !strcmp(k, "creationTimestamp") ||
			   !strcmp(k, "managedFields") || !strcmp(k, "selfLink")) {
			/* Kubernetes bookkeeping: no traffic meaning. */
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, fl);
	}
	cfg_require(c, v, "name", YN_SCALAR, "name the resource (letters, digits, '-' and '.')");
	cfg_path_pop(c, pl);
}

static void load_object(struct load_state *ls, const struct yn *root, const char *prefix, int depth);

static void load_list(struct load_state *ls, struct cfg_ctx *c, const struct yn *root, const char *prefix,
		      int depth)
{
	const struct yn *items = NULL;
	for (size_t i = 0; i < root->n; i++) {
		const char *k = root->keys[i]->s;
		if (!strcmp(k, "items")) {
			items = root->items[i];
		} else if (strcmp(k, "apiVersion") && strcmp(k, "kind") && strcmp(k, "metadata")) {
			size_t pl = cfg_path_push(c, ".%s", k);
			cfg_warn_unknown(c, root->keys[i]);
			cfg_path_pop(c, pl);
		}
	}
	if (depth > 0) {
		cfg_err(c, root, "a List inside a List is not supported; flatten it");
		return;
	}
	size_t pl = cfg_path_push(c, ".items");
	if (cfg_want_seq(c, items, CFG_MAX_RESOURCES) == 0) {
		for (size_t i = 0; i < items->n; i++) {
			char pfx[64];
			snprintf(pfx, sizeof(pfx), "%sitems[%zu].", prefix, i);
			load_object(ls, items->items[i], pfx, depth + 1);
		}
	}
	cfg_path_pop(c, pl);
}

/* Keeps a loaded resource in the set (an invalid one only when the set
 * keeps those, for sinewd's analysis). */
static void keep_resource(struct load_state *ls, struct cfg_ctx *c, const struct yn *root, int k, char *api,
			  const struct meta *m, void *body)
{
	if (c->errors && (!ls->set->keep_invalid || body == NULL || m->name == NULL))
		return;
	if (ls->set->count >= CFG_MAX_RESOURCES) {
		cfg_err(c, root, "more than %d resources in one set; split the configuration",
			CFG_MAX_RESOURCES);
		return;
	}
	struct sn_resource *res = sn_arena_new(c->a, struct sn_resource);
	if (res == NULL) {
		cfg_err(c, root, "out of memory");
		return;
	}
	res->kind = (enum sn_resource_kind)k;
	res->api_version = api;
	res->name = m->name;
	res->namespace_ = m->namespace_;
	res->file = sn_arena_strdup(c->a, ls->file);
	res->line = root->n ? root->keys[0]->line : root->line;
	res->spec = body;
	res->invalid = c->errors != 0;
	res->text = resource_text(ls, c->a, root, &res->text_len);
	res->text_line = root->line;
	*ls->set->tail = res;
	ls->set->tail = &res->next;
	ls->set->count++;
}

/* ConfigMap: only istio-system/istio, the mesh config, is Sinew's
 * (meshconfig.c); any other is an application's and loads with a warning. */
static void load_config_map(struct load_state *ls, struct cfg_ctx *c, const struct yn *root, char *api,
			    const struct meta *m)
{
	const struct yn *data = NULL;
	if (strcmp(m->namespace_, SN_MESH_ROOT_NAMESPACE) != 0 || strcmp(m->name, "istio") != 0) {
		size_t pl = cfg_path_push(c, ".metadata.name");
		cfg_warn(c, yn_get(yn_get(root, "metadata"), "name"),
			 "ConfigMap %s/%s is not read by Sinew; ignored (Sinew reads only %s/istio, the mesh config)",
			 m->namespace_, m->name, SN_MESH_ROOT_NAMESPACE);
		cfg_path_pop(c, pl);
		return;
	}
	for (size_t i = 0; i < root->n; i++) {
		const char *key = root->keys[i]->s;
		if (!strcmp(key, "data")) {
			data = root->items[i];
		} else if (strcmp(key, "apiVersion") && strcmp(key, "kind") && strcmp(key, "metadata")) {
			size_t pl = cfg_path_push(c, ".%s", key);
			if (!strcmp(key, "binaryData") || !strcmp(key, "immutable"))
				cfg_warn_unimplemented(c, root->keys[i], key);
			else
				cfg_warn_unknown(c, root->keys[i]);
			cfg_path_pop(c, pl);
		}
	}
	size_t pl = cfg_path_push(c, ".data");
	void *body = cfg_parse_config_map(c, data, ls->text, ls->len);
	if (body == NULL && c->errors == 0)
		cfg_err(c, root, "out of memory");
	cfg_path_pop(c, pl);
	keep_resource(ls, c, root, SN_KIND_CONFIG_MAP, api, m, body);
}

static void load_object(struct load_state *ls, const struct yn *root, const char *prefix, int depth)
{
	struct cfg_ctx c;
	memset(&c, 0, sizeof(c));
	c.d = ls->d;
	c.a = &ls->set->arena;
	c.file = ls->file;
	if (prefix[0]) {
		/* "items[3]." -> path "items[3]" */
		cfg_path_push(&c, "%.*s", (int)strlen(prefix) - 1, prefix);
	}

	if (root->type != YN_MAP) {
		cfg_err(&c, root, "a document must be a mapping with apiVersion, kind, metadata and spec; got %s",
			yn_type_str(root));
		return;
	}
	char *api = NULL, *kind = NULL;
	const struct yn *kind_node = yn_get(root, "kind");
	const struct yn *api_node = yn_get(root, "apiVersion");
	size_t pl;
	if (cfg_require(&c, root, "kind", YN_SCALAR, "e.g. kind: VirtualService") != NULL) {
		pl = cfg_path_push(&c, ".kind");
		cfg_get_str(&c, kind_node, 64, &kind);
		cfg_path_pop(&c, pl);
	}
	if (cfg_require(&c, root, "apiVersion", YN_SCALAR, "e.g. apiVersion: networking.istio.io/v1") != NULL) {
		pl = cfg_path_push(&c, ".apiVersion");
		cfg_get_str(&c, api_node, 128, &api);
		cfg_path_pop(&c, pl);
	}
	if (kind == NULL || api == NULL)
		return;
	c.kind = kind;

	if (!strcmp(kind, "List")) {
		if (strcmp(api, "v1") != 0) {
			pl = cfg_path_push(&c, ".apiVersion");
			cfg_err(&c, api_node, "apiVersion \"%.64s\" is not valid for kind List; use v1", api);
			cfg_path_pop(&c, pl);
			return;
		}
		load_list(ls, &c, root, prefix, depth);
		return;
	}

	/* the Gateway API's Gateway shares Istio's kind name: its group tells */
	int k = sn_kind_of(kind, api);
	if (k == SN_KIND_K8S_GATEWAY)
		c.kind = sn_resource_kind_str(SN_KIND_K8S_GATEWAY);
	if (k < 0) {
		int later = 0;
		for (size_t i = 0; i < SN_ARRAY_LEN(later_kinds); i++)
			if (!strcmp(kind, later_kinds[i]))
				later = 1;
		struct meta m = { 0 };
		const struct yn *md = yn_get(root, "metadata");
		const struct yn *nm = yn_get(md, "name");
		const struct yn *ns = yn_get(md, "namespace");
		m.name = nm && nm->type == YN_SCALAR ? nm->s : NULL;
		m.namespace_ = ns && ns->type == YN_SCALAR ? ns->s : "default";
		char nsname[320];
		snprintf(nsname, sizeof(nsname), "%s/%s", m.namespace_, m.name ? m.name : "?");
		c.name = nsname;
		pl = cfg_path_push(&c, ".kind");
		if (later) {
			cfg_warn(&c, kind_node, "kind %s is not implemented yet; ignored", kind);
		} else {
			c.name = NULL;
			cfg_err(&c, kind_node,
				"unknown kind \"%.64s\"; Sinew supports Service, WorkloadEntry, VirtualService, "
				"DestinationRule, ServiceEntry, AuthorizationPolicy, PeerAuthentication, RequestAuthentication, "
				"ConfigMap istio-system/istio, Telemetry, Gateway, the Gateway API's Gateway, HTTPRoute, GRPCRoute, TCPRoute, TLSRoute and ReferenceGrant, and Linkerd's Server and HTTPLocalRateLimitPolicy (other Istio and "
				"Kubernetes kinds load with a warning)", kind);
		}
		cfg_path_pop(&c, pl);
		return;
	}

	int api_ok = 0;
	if (k == SN_KIND_SERVICE || k == SN_KIND_CONFIG_MAP) {
		api_ok = !strcmp(api, "v1");
	} else if (is_security_kind(k)) {
		for (size_t i = 0; i < SN_ARRAY_LEN(security_versions); i++)
			if (!strcmp(api, security_versions[i]))
				api_ok = 1;
	} else if (k == SN_KIND_SERVER) {
		for (size_t i = 0; i < SN_ARRAY_LEN(linkerd_server_versions); i++)
			if (!strcmp(api, linkerd_server_versions[i]))
				api_ok = 1;
	} else if (k == SN_KIND_RATE_LIMIT) {
		api_ok = !strcmp(api, "policy.linkerd.io/v1alpha1");
	} else if (k == SN_KIND_TELEMETRY) {
		api_ok = !strcmp(api, "telemetry.istio.io/v1") || !strcmp(api, "telemetry.istio.io/v1alpha1");
	} else if (sn_kind_is_gwapi_route(k) || k == SN_KIND_K8S_GATEWAY || k == SN_KIND_REFERENCE_GRANT) {
		api_ok = gateway_api_version_ok(k, api);
	} else {
		for (size_t i = 0; i < SN_ARRAY_LEN(istio_versions); i++)
			if (!strcmp(api, istio_versions[i]))
				api_ok = 1;
	}
	if (!api_ok) {
		pl = cfg_path_push(&c, ".apiVersion");
		cfg_err(&c, api_node, "apiVersion \"%.64s\" is not valid for kind %s; use %s", api, kind,
			k == SN_KIND_SERVICE || k == SN_KIND_CONFIG_MAP ? "v1"
			: is_security_kind(k) ? "security.istio.io/v1 (or v1beta1)"
			: k == SN_KIND_SERVER ? "policy.linkerd.io/v1beta3 (or v1beta2, v1beta1)"
			: k == SN_KIND_RATE_LIMIT ? "policy.linkerd.io/v1alpha1"
			: k == SN_KIND_TELEMETRY ? "telemetry.istio.io/v1 (or v1alpha1)"
			: sn_kind_is_gwapi_route(k) || k == SN_KIND_K8S_GATEWAY || k == SN_KIND_REFERENCE_GRANT
				? gateway_api_versions_for(k)
				: "networking.istio.io/v1 (or v1beta1, v1alpha3)");
		cfg_path_pop(&c, pl);
		return;
	}

	struct meta m;
	memset(&m, 0, sizeof(m));
	parse_metadata(&c, yn_get(root, "metadata"), &m);
	if (m.name == NULL)
		return;
	if (m.namespace_ == NULL)
		m.namespace_ = sn_arena_strdup(c.a, "default");
	c.name = sn_arena_printf(c.a, "%s/%s", m.namespace_, m.name);
	if (m.namespace_ == NULL || c.name == NULL) {
		cfg_err(&c, root, "out of memory");
		return;
	}

	if (k == SN_KIND_CONFIG_MAP) {
		load_config_map(ls, &c, root, api, &m);
		return;
	}

	const struct yn *spec = NULL;
	for (size_t i = 0; i < root->n; i++) {
		const char *key = root->keys[i]->s;
		if (!strcmp(key, "spec")) {
			spec = root->items[i];
		} else if (strcmp(key, "apiVersion") && strcmp(key, "kind") && strcmp(key, "metadata") &&
			   strcmp(key, "status")) {
			/* status is written by controllers: no meaning as input */
			pl = cfg_path_push(&c, ".%s", key);
			cfg_warn_unknown(&c, root->keys[i]);
			cfg_path_pop(&c, pl);
		}
	}
	int r = cfg_require(&c, root, "spec", YN_NULL, "the resource's settings (spec: {} for none)") ? 0 : -1;
	pl = cfg_path_push(&c, ".spec");
	if (r == 0)
		r = cfg_want_map(&c, spec);
	void *body = NULL;
	if (r == 0) {
		switch ((enum sn_resource_kind)k) {
		case SN_KIND_SERVICE:
			body = cfg_parse_service(&c, spec, &m.labels);
			break;
		case SN_KIND_WORKLOAD_ENTRY:
			body = cfg_parse_workload(&c, spec, &m.labels);
			break;
		case SN_KIND_VIRTUAL_SERVICE:
			body = cfg_parse_virtual_service(&c, spec);
			break;
		case SN_KIND_DESTINATION_RULE:
			body = cfg_parse_destination_rule(&c, spec);
			break;
		case SN_KIND_AUTHORIZATION_POLICY:
			body = cfg_parse_authorization_policy(&c, spec);
			break;
		case SN_KIND_PEER_AUTHENTICATION:
			body = cfg_parse_peer_authentication(&c, spec);
			break;
		case SN_KIND_SERVICE_ENTRY:
			body = cfg_parse_service_entry(&c, spec);
			break;
		case SN_KIND_REQUEST_AUTHENTICATION:
			body = cfg_parse_request_authentication(&c, spec);
			break;
		case SN_KIND_SERVER:
			body = cfg_parse_server(&c, spec);
			break;
		case SN_KIND_RATE_LIMIT:
			body = cfg_parse_rate_limit(&c, spec, m.namespace_);
			break;
		case SN_KIND_TELEMETRY:
			body = cfg_parse_telemetry(&c, spec);
			break;
		case SN_KIND_GATEWAY:
			body = cfg_parse_gateway(&c, spec);
			break;
		case SN_KIND_HTTP_ROUTE:
		case SN_KIND_GRPC_ROUTE:
			body = cfg_parse_http_route(&c, spec, m.name, k == SN_KIND_GRPC_ROUTE);
			break;
		case SN_KIND_TCP_ROUTE:
		case SN_KIND_TLS_ROUTE:
			body = cfg_parse_l4_route(&c, spec, m.name, k == SN_KIND_TLS_ROUTE);
			break;
		case SN_KIND_REFERENCE_GRANT:
			body = cfg_parse_reference_grant(&c, spec);
			break;
		case SN_KIND_K8S_GATEWAY:
			body = cfg_parse_k8s_gateway(&c, spec, m.name);
			break;
		default:
			break;
		}
		if (body == NULL && c.errors == 0)
			cfg_err(&c, spec, "out of memory");
	}
	cfg_path_pop(&c, pl);
	keep_resource(ls, &c, root, k, api, &m, body);
}

static void on_doc(void *user, struct yn *root, struct sn_arena *tmp)
{
	(void)tmp;
	load_object(user, root, "", 0);
}

int sn_config_load_text(struct sn_config_set *set, const char *display_name, const char *text,
			size_t len, struct sn_diags *d)
{
	return sn_config_load_text_at(set, display_name, text, len, 1, d);
}

int sn_config_load_text_at(struct sn_config_set *set, const char *display_name, const char *text,
			   size_t len, int first_line, struct sn_diags *d)
{
	struct load_state ls = { set, d, display_name ? display_name : "-", text ? text : "", text ? len : 0 };
	size_t before = d->errors;
	cfg_yaml_parse_at(ls.file, ls.text, ls.len, first_line > 1 ? first_line - 1 : 0, d, on_doc, &ls);
	return d->errors == before ? 0 : SN_EINVAL;
}

int sn_config_load_file(struct sn_config_set *set, const char *path, struct sn_diags *d)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		sn_diags_add(d, SN_DIAG_ERROR, path, 0, 0, NULL, NULL, NULL, "cannot open: %s", strerror(errno));
		return SN_EIO;
	}
	size_t cap = 64 * 1024, len = 0;
	char *buf = malloc(cap);
	while (buf != NULL) {
		if (len == cap) {
			if (cap >= CFG_MAX_INPUT) {
				free(buf);
				fclose(f);
				sn_diags_add(d, SN_DIAG_ERROR, path, 0, 0, NULL, NULL, NULL,
					     "file is larger than 16 MiB; split it");
				return SN_EINVAL;
			}
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	int rd_err = ferror(f);
	fclose(f);
	if (buf == NULL || rd_err) {
		const char *why = buf == NULL ? "out of memory" : strerror(errno);
		sn_diags_add(d, SN_DIAG_ERROR, path, 0, 0, NULL, NULL, NULL, "cannot read: %s", why);
		free(buf);
		return SN_EIO;
	}
	int rc = sn_config_load_text(set, path, buf, len, d);
	free(buf);
	return rc;
}
