/* The Gateway API (gateway_api.c): loading Gateway and HTTPRoute (what is
 * refused, what is warned), and translation: a gateway proxy of the
 * Gateway's namespace with its gateway-name label gets the listeners and
 * the attached routes in the Gateway API's precedence order; a sidecar
 * gets a Service's HTTPRoutes (GAMMA) with their weights; PathPrefix is
 * segment-wise; filters become the route's header ops, redirect, rewrite
 * and mirrors; a rule without a usable backend answers 500. */
#include "cfg_test_util.h"

static const struct sn_label bookinfo_labels[] = { { "gateway.networking.k8s.io/gateway-name", "bookinfo-gateway" } };
static const struct sn_labels bookinfo_gw = { (struct sn_label *)bookinfo_labels, 1 };

static char *slurp_shared(const char *rel)
{
	char p[1024];
	shared_path(p, sizeof(p), rel);
	FILE *f = fopen(p, "r");
	assert_non_null(f);
	char *buf = calloc(1, 1 << 16);
	assert_non_null(buf);
	size_t n = fread(buf, 1, (1 << 16) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static struct sn_snapshot *build(const char *text, const struct sn_proxy_identity *id, struct sn_diags *d)
{
	return build_snapshot(text, id, d);
}

static const char *cluster_service(const struct sn_snapshot *s, const struct sn_http_route *r, size_t i)
{
	return s->clusters[r->dests[i].cluster].service;
}

#define SVC(name, app)                                                                  \
	"apiVersion: v1\nkind: Service\nmetadata: {name: " name "}\n"                  \
	"spec: {selector: {app: " app "}, ports: [{name: http, port: 9080}]}\n---\n"

static void test_bookinfo_gateway_for_its_proxy(void **state)
{
	(void)state;
	char *text = slurp_shared("conformance/istio-bookinfo/gateway-api/bookinfo-gateway.yaml");
	char *all = malloc(strlen(text) + 256);
	assert_non_null(all);
	sprintf(all, SVC("productpage", "productpage") "%s", text);
	static const struct sn_proxy_identity id = { .namespace_ = "default", .labels = &bookinfo_gw, .gateway = 1 };
	struct sn_diags d;
	struct sn_snapshot *s = build(all, &id, &d);
	assert_int_equal(d.warnings, 0);
	assert_int_equal(s->n_gw_listeners, 1);
	const struct sn_gw_listener *l = sn_snapshot_find_gw_listener(s, 80);
	assert_non_null(l);
	assert_int_equal(l->n_vhosts, 1);
	const struct sn_vhost *v = sn_snapshot_find_gw_vhost(s, l, sn_str_make("bookinfo.example", 16));
	assert_non_null(v);
	/* exact paths first, longest first; then prefixes, longest first */
	static const char *const order[] = { "/productpage", "/logout", "/login", "/api/v1/products", "/static" };
	assert_int_equal(v->n_routes, SN_ARRAY_LEN(order));
	for (size_t i = 0; i < SN_ARRAY_LEN(order); i++) {
		assert_string_equal(v->routes[i].matches[0].uri.value, order[i]);
		assert_int_equal(v->routes[i].matches[0].uri.kind, i < 3 ? SN_MATCH_EXACT : SN_MATCH_PATH_PREFIX);
		assert_string_equal(cluster_service(s, &v->routes[i], 0), "productpage.default.svc.cluster.local");
		assert_non_null(strstr(v->routes[i].origin, "HTTPRoute default/bookinfo"));
	}
	sn_snapshot_unref(s);
	sn_diags_free(&d);

	/* a proxy of another namespace, or without the label: nothing */
	static const struct sn_proxy_identity other_ns = { .namespace_ = "shop", .labels = &bookinfo_gw, .gateway = 1 };
	s = build(all, &other_ns, &d);
	assert_int_equal(s->n_gw_listeners, 0);
	sn_snapshot_unref(s);
	sn_diags_free(&d);
	static const struct sn_label istio_labels[] = { { "istio", "ingressgateway" } };
	static const struct sn_labels istio = { (struct sn_label *)istio_labels, 1 };
	static const struct sn_proxy_identity unlabelled = { .namespace_ = "default", .labels = &istio, .gateway = 1 };
	s = build(all, &unlabelled, &d);
	assert_int_equal(s->n_gw_listeners, 0);
	sn_snapshot_unref(s);
	sn_diags_free(&d);
	free(all);
	free(text);
}

static void test_mesh_routes_split_by_weight(void **state)
{
	(void)state;
	char *svcs = slurp_shared("conformance/istio-bookinfo/kube/bookinfo-versions.yaml");
	char *route = slurp_shared("conformance/istio-bookinfo/gateway-api/route-reviews-90-10.yaml");
	char *all = malloc(strlen(svcs) + strlen(route) + 256);
	assert_non_null(all);
	sprintf(all, SVC("reviews", "reviews") "%s\n---\n%s", svcs, route);
	static const struct sn_proxy_identity id = { .service = "productpage", .namespace_ = "default" };
	struct sn_diags d;
	struct sn_snapshot *s = build(all, &id, &d);
	uint16_t port;
	const struct sn_vhost *v = sn_snapshot_find_vhost(s, sn_str_make("reviews:9080", 12), &port);
	assert_non_null(v);
	assert_int_equal(v->n_routes, 1);
	const struct sn_http_route *r = &v->routes[0];
	assert_int_equal(r->n_dests, 2);
	assert_string_equal(cluster_service(s, r, 0), "reviews-v1.default.svc.cluster.local");
	assert_string_equal(cluster_service(s, r, 1), "reviews-v2.default.svc.cluster.local");
	assert_int_equal(r->dests[0].weight, 90);
	assert_int_equal(r->dests[1].weight, 10);
	assert_int_equal(r->total_weight, 100);
	assert_string_equal(r->vs_name, "reviews");
	/* the gateway gets nothing of a Service's route */
	assert_int_equal(s->n_gw_listeners, 0);
	/* other Services keep their default route */
	v = sn_snapshot_find_vhost(s, sn_str_make("reviews-v1:9080", 15), &port);
	assert_non_null(v);
	assert_null(v->routes[0].vs_name);
	sn_snapshot_unref(s);
	sn_diags_free(&d);
	free(all);
	free(route);
	free(svcs);
}

#define GWAPI_GW                                                                        \
	"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: bookinfo-gateway}\n" \
	"spec:\n  gatewayClassName: istio\n  listeners:\n"                              \
	"  - {name: web, port: 8080, protocol: HTTP, hostname: \"*.example.com\"}\n"    \
	"  - {name: all, port: 8081, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}\n---\n"

static void test_precedence_and_filters(void **state)
{
	(void)state;
	static const char text[] =
		SVC("a", "a") SVC("b", "b") SVC("c", "c") GWAPI_GW
		"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: zz}\n"
		"spec:\n  parentRefs: [{name: bookinfo-gateway, sectionName: web}]\n"
		"  hostnames: [shop.example.com, other.org]\n"
		"  rules:\n"
		"  - matches: [{path: {type: PathPrefix, value: /a/}}]\n"
		"    filters:\n"
		"    - type: RequestHeaderModifier\n"
		"      requestHeaderModifier: {set: [{name: X-Set, value: '1'}], add: [{name: x-add, value: '2'}], remove: [x-gone]}\n"
		"    - type: URLRewrite\n"
		"      urlRewrite: {hostname: internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: /z}}\n"
		"    - type: RequestMirror\n"
		"      requestMirror: {backendRef: {name: c, port: 9080}, percent: 25}\n"
		"    backendRefs: [{name: a, port: 9080, weight: 3}, {name: b, port: 9080, weight: 0}, {name: c, port: 9080}]\n"
		"---\n"
		"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: aa}\n"
		"spec:\n  parentRefs: [{name: bookinfo-gateway}]\n"
		"  hostnames: [shop.example.com]\n"
		"  rules:\n"
		"  - matches: [{path: {value: /a/b}, headers: [{name: X-Canary, value: 'yes'}]}, {path: {value: /a/b}}]\n"
		"    backendRefs: [{name: b, port: 9080}]\n"
		"  - matches: [{path: {type: Exact, value: /a}, method: POST}]\n"
		"    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: secure.example.com}}]\n"
		"  - matches: [{path: {type: Exact, value: /full}}]\n"
		"    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /new}}}]\n"
		"    backendRefs: [{name: c, port: 9080}]\n"
		"    timeouts: {request: 2s, backendRequest: 500ms}\n"
		"  - matches: [{path: {type: Exact, value: /none}}]\n";
	static const struct sn_proxy_identity id = { .namespace_ = "default", .labels = &bookinfo_gw, .gateway = 1 };
	struct sn_diags d;
	struct sn_snapshot *s = build(text, &id, &d);
	if (d.warnings)
		print_diags(&d);
	assert_int_equal(d.warnings, 0);
	const struct sn_gw_listener *l = sn_snapshot_find_gw_listener(s, 8080);
	assert_non_null(l);
	/* other.org does not meet *.example.com */
	assert_int_equal(l->n_vhosts, 1);
	const struct sn_vhost *v = sn_snapshot_find_gw_vhost(s, l, sn_str_make("shop.example.com", 16));
	assert_non_null(v);
	assert_int_equal(v->n_routes, 6);
	/* exact: /full (5) before /none (5, rule order), then /a; prefixes
	 * /a/b with a header before /a/b, then /a ("/a/" trimmed) */
	assert_string_equal(v->routes[0].matches[0].uri.value, "/full");
	assert_string_equal(v->routes[1].matches[0].uri.value, "/none");
	assert_string_equal(v->routes[2].matches[0].uri.value, "/a");
	assert_int_equal(v->routes[2].matches[0].uri.kind, SN_MATCH_EXACT);
	assert_string_equal(v->routes[3].matches[0].uri.value, "/a/b");
	assert_int_equal(v->routes[3].matches[0].n_headers, 1);
	assert_string_equal(v->routes[3].matches[0].headers[0].name, "x-canary");
	assert_string_equal(v->routes[4].matches[0].uri.value, "/a/b");
	assert_int_equal(v->routes[4].matches[0].n_headers, 0);
	assert_string_equal(v->routes[5].matches[0].uri.value, "/a");
	assert_int_equal(v->routes[5].matches[0].uri.kind, SN_MATCH_PATH_PREFIX);
	/* /full: whole-path rewrite, timeouts */
	assert_string_equal(v->routes[0].rewrite_uri, "/new");
	assert_true(v->routes[0].rewrite_full);
	assert_int_equal(v->routes[0].timeout_ms, 2000);
	assert_int_equal(v->routes[0].retry.per_try_timeout_ms, 500);
	/* /none: no backend, 500 */
	assert_int_equal(v->routes[1].direct_status, 500);
	/* /a POST: redirect, 302 by default, the scheme's port */
	assert_int_equal(v->routes[2].redirect.code, 302);
	assert_string_equal(v->routes[2].redirect.scheme, "https");
	assert_string_equal(v->routes[2].redirect.authority, "secure.example.com");
	assert_int_equal(v->routes[2].redirect.derive_port, 1);
	assert_string_equal(v->routes[2].matches[0].method.value, "POST");
	/* /a/: header ops, segment rewrite, mirror, weights (0 dropped) */
	const struct sn_http_route *r = &v->routes[5];
	assert_int_equal(r->request_ops.n_set, 1);
	assert_string_equal(r->request_ops.set[0].name, "x-set");
	assert_int_equal(r->request_ops.n_add, 1);
	assert_int_equal(r->request_ops.n_remove, 1);
	assert_string_equal(r->rewrite_uri, "/z");
	assert_false(r->rewrite_full);
	assert_string_equal(r->rewrite_authority, "internal");
	assert_int_equal(r->n_mirrors, 1);
	assert_true(r->mirrors[0].percent > 24.9 && r->mirrors[0].percent < 25.1);
	assert_int_equal(r->n_dests, 2);
	assert_string_equal(cluster_service(s, r, 0), "a.default.svc.cluster.local");
	assert_int_equal(r->dests[0].weight, 3);
	assert_string_equal(cluster_service(s, r, 1), "c.default.svc.cluster.local");
	assert_int_equal(r->dests[1].weight, 1);
	/* 8081 takes any host; route aa has no sectionName, so it is there too */
	l = sn_snapshot_find_gw_listener(s, 8081);
	assert_non_null(l);
	assert_int_equal(l->n_vhosts, 1);
	assert_string_equal(l->vhosts[0].host, "shop.example.com");
	assert_int_equal(l->vhosts[0].n_routes, 5);
	sn_snapshot_unref(s);
	sn_diags_free(&d);
}

static void test_allowed_routes_namespaces(void **state)
{
	(void)state;
	static const char text[] =
		SVC("a", "a") GWAPI_GW
		"apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: shop}\n"
		"spec: {selector: {app: a}, ports: [{name: http, port: 9080}]}\n---\n"
		"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: shop}\n"
		"spec:\n  parentRefs: [{name: bookinfo-gateway, namespace: default}]\n"
		"  hostnames: [x.example.com]\n"
		"  rules: [{backendRefs: [{name: a, port: 9080}]}]\n";
	static const struct sn_proxy_identity id = { .namespace_ = "default", .labels = &bookinfo_gw, .gateway = 1 };
	struct sn_diags d;
	struct sn_snapshot *s = build(text, &id, &d);
	/* web (from: Same) does not take shop's route; all (from: All) does */
	assert_int_equal(sn_snapshot_find_gw_listener(s, 8080)->n_vhosts, 0);
	const struct sn_gw_listener *l = sn_snapshot_find_gw_listener(s, 8081);
	assert_int_equal(l->n_vhosts, 1);
	assert_string_equal(cluster_service(s, &l->vhosts[0].routes[0], 0), "a.shop.svc.cluster.local");
	/* no matches: PathPrefix "/" */
	assert_int_equal(l->vhosts[0].routes[0].matches[0].uri.kind, SN_MATCH_PATH_PREFIX);
	assert_string_equal(l->vhosts[0].routes[0].matches[0].uri.value, "/");
	sn_snapshot_unref(s);
	sn_diags_free(&d);
}

static void test_path_prefix_is_segment_wise(void **state)
{
	(void)state;
	struct sn_str_match m = { .kind = SN_MATCH_PATH_PREFIX, .value = "/static" };
	assert_true(sn_str_match_test(&m, sn_str_make("/static", 7)));
	assert_true(sn_str_match_test(&m, sn_str_make("/static/", 8)));
	assert_true(sn_str_match_test(&m, sn_str_make("/static/a.css", 13)));
	assert_false(sn_str_match_test(&m, sn_str_make("/staticfoo", 10)));
	assert_false(sn_str_match_test(&m, sn_str_make("/stat", 5)));
	struct sn_str_match root = { .kind = SN_MATCH_PATH_PREFIX, .value = "/" };
	assert_true(sn_str_match_test(&root, sn_str_make("/", 1)));
	assert_true(sn_str_match_test(&root, sn_str_make("/anything", 9)));
}

static void load_expect(const char *body, enum sn_diag_severity sev, const char *what)
{
	char text[2000];
	snprintf(text, sizeof(text), "%s", body);
	struct sn_config_set set;
	struct sn_diags d;
	sn_config_set_init(&set);
	sn_diags_init(&d);
	int rc = sn_config_load_text(&set, "t.yaml", text, strlen(text), &d);
	if (!has_diag(&d, sev, "t.yaml:", what, (const char *)NULL)) {
		print_diags(&d);
		fail_msg("expected a %s with \"%s\"", sev == SN_DIAG_ERROR ? "error" : "warning", what);
	}
	if (sev == SN_DIAG_ERROR)
		assert_int_not_equal(rc, 0);
	sn_diags_free(&d);
	sn_config_set_free(&set);
}

#define ROUTE "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n" \
	      "  parentRefs: [{name: g}]\n"
#define GW "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n"

static void test_refused_and_warned(void **state)
{
	(void)state;
	load_expect(ROUTE "  rules: [{matches: [{path: {type: Glob, value: /a}}], backendRefs: [{name: a, port: 1}]}]\n",
		    SN_DIAG_ERROR, "use Exact, PathPrefix or RegularExpression");
	load_expect(ROUTE "  rules: [{matches: [{path: {value: a}}], backendRefs: [{name: a, port: 1}]}]\n",
		    SN_DIAG_ERROR, "must start with /");
	load_expect(ROUTE "  rules: [{matches: [{method: FETCH}], backendRefs: [{name: a, port: 1}]}]\n",
		    SN_DIAG_ERROR, "method \"FETCH\"");
	load_expect(ROUTE "  rules: [{backendRefs: [{name: a}]}]\n", SN_DIAG_ERROR, "port is required");
	load_expect(ROUTE "  rules: [{filters: [{type: Teleport}], backendRefs: [{name: a, port: 1}]}]\n",
		    SN_DIAG_ERROR, "unknown filter type");
	load_expect(ROUTE "  rules: [{matches: [{path: {type: Exact, value: /a}}], filters: [{type: URLRewrite, "
		    "urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}], backendRefs: [{name: a, port: 1}]}]\n",
		    SN_DIAG_ERROR, "ReplacePrefixMatch needs every match");
	load_expect(ROUTE "  hostnames: [\"*\"]\n  rules: [{backendRefs: [{name: a, port: 1}]}]\n", SN_DIAG_ERROR,
		    "is not a hostname");
	load_expect(ROUTE "  rules: [{filters: [{type: CORS, cors: {}}], backendRefs: [{name: a, port: 1}]}]\n",
		    SN_DIAG_WARNING, "filter type CORS is not implemented");
	load_expect(ROUTE "  rules: [{backendRefs: [{name: a, port: 1, kind: ServiceImport}]}]\n", SN_DIAG_WARNING,
		    "backendRef kind \"ServiceImport\"");
	load_expect(GW "  gatewayClassName: istio\n  listeners: [{name: h, port: 443, protocol: HTTPS}]\n",
		    SN_DIAG_ERROR, "needs tls");
	load_expect(GW "  gatewayClassName: istio\n  listeners: [{name: h, port: 443, protocol: HTTPS, tls: {mode: "
		    "Passthrough}}]\n", SN_DIAG_WARNING, "Passthrough takes protocol TLS");
	load_expect(GW "  gatewayClassName: istio\n  listeners: [{name: h, port: 443, protocol: HTTPS, tls: "
		    "{certificateRefs: [{name: c, namespace: other}]}}]\n", SN_DIAG_WARNING, "is not served");
	load_expect(GW "  gatewayClassName: nginx\n  listeners: [{name: h, port: 80, protocol: HTTP}]\n",
		    SN_DIAG_WARNING, "is not served by Sinew");
	load_expect(GW "  gatewayClassName: istio\n  listeners: [{name: h, port: 80, protocol: UDP}]\n",
		    SN_DIAG_WARNING, "protocol UDP is not served");
	load_expect(GW "  gatewayClassName: istio\n  listeners: [{name: h, port: 80, protocol: TLS, tls: {mode: Bogus}}]\n",
		    SN_DIAG_ERROR, "use Terminate or Passthrough");
	load_expect(GW "  gatewayClassName: istio\n  listeners: [{name: h, port: 80, protocol: TLS, tls: {}}]\n",
		    SN_DIAG_ERROR, "a TLS listener needs tls.certificateRefs");
	load_expect(GW "  gatewayClassName: istio\n  listeners: [{name: h, port: 80, protocol: TCP, allowedRoutes: "
		    "{kinds: [{kind: HTTPRoute}]}}]\n", SN_DIAG_WARNING, "kind HTTPRoute cannot attach to this listener");
	/* GRPCRoute */
#define GRPC "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: r}\nspec:\n" \
	     "  parentRefs: [{name: g}]\n"
	load_expect(GRPC "  rules: [{matches: [{method: {type: Prefix, service: a.B}}], backendRefs: [{name: a, port: 1}]}]\n",
		    SN_DIAG_ERROR, "method type \"Prefix\"");
	load_expect(GRPC "  rules: [{matches: [{method: {}}], backendRefs: [{name: a, port: 1}]}]\n", SN_DIAG_ERROR,
		    "needs service, method, or both");
	load_expect(GRPC "  rules: [{matches: [{method: {service: a/B}}], backendRefs: [{name: a, port: 1}]}]\n",
		    SN_DIAG_ERROR, "without '/'");
	load_expect(GRPC "  rules: [{filters: [{type: URLRewrite, urlRewrite: {}}], backendRefs: [{name: a, port: 1}]}]\n",
		    SN_DIAG_ERROR, "not valid in a GRPCRoute");
	load_expect(GRPC "  rules: [{timeouts: {request: 1s}, backendRefs: [{name: a, port: 1}]}]\n", SN_DIAG_WARNING,
		    "timeouts is not a field of a GRPCRoute rule");
	/* TCPRoute, TLSRoute, ReferenceGrant */
	load_expect("apiVersion: gateway.networking.k8s.io/v1\nkind: TCPRoute\nmetadata: {name: r}\nspec:\n"
		    "  parentRefs: [{name: g}]\n  rules: [{backendRefs: [{name: a, port: 1}]}]\n", SN_DIAG_ERROR,
		    "use gateway.networking.k8s.io/v1alpha2");
	load_expect("apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: r}\nspec:\n"
		    "  parentRefs: [{name: g}]\n  rules: [{backendRefs: [{name: a, port: 1}]}, {backendRefs: [{name: b, "
		    "port: 1}]}]\n", SN_DIAG_WARNING, "takes its first rule");
	load_expect("apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: r}\nspec:\n"
		    "  parentRefs: [{kind: Service, name: a}]\n  rules: [{backendRefs: [{name: a, port: 1}]}]\n",
		    SN_DIAG_WARNING, "attached to a Service is not implemented");
	load_expect("apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TLSRoute\nmetadata: {name: r}\nspec:\n"
		    "  parentRefs: [{name: g}]\n  hostnames: [\"*\"]\n  rules: [{backendRefs: [{name: a, port: 1}]}]\n",
		    SN_DIAG_ERROR, "is not a server name");
	load_expect("apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g}\nspec:\n"
		    "  from: [{group: gateway.networking.k8s.io, kind: Deployment, namespace: a}]\n"
		    "  to: [{group: \"\", kind: Service}]\n", SN_DIAG_WARNING, "grants nothing");
	load_expect("apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: {name: g}\nspec:\n"
		    "  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute}]\n  to: [{group: \"\", kind: Service}]\n",
		    SN_DIAG_ERROR, "namespace is required");
	load_expect(GW "  gatewayClassName: istio\n  listeners: [{name: h, port: 80, protocol: HTTP}, "
		    "{name: h, port: 81, protocol: HTTP}]\n", SN_DIAG_ERROR, "is used twice");
	load_expect(GW "  listeners: [{name: h, port: 80, protocol: HTTP}]\n", SN_DIAG_ERROR,
		    "gatewayClassName is required");
}

static void test_https_listener_uses_the_secret(void **state)
{
	(void)state;
	static const char text[] =
		GW "  gatewayClassName: istio\n"
		"  listeners: [{name: tls, port: 8443, protocol: HTTPS, tls: {certificateRefs: [{kind: Secret, name: web-cert}]}}]\n";
	static const struct sn_label g_labels[] = { { "gateway.networking.k8s.io/gateway-name", "g" } };
	static const struct sn_labels g = { (struct sn_label *)g_labels, 1 };
	static const struct sn_proxy_identity id = { .namespace_ = "default", .labels = &g, .gateway = 1 };
	struct sn_diags d;
	struct sn_snapshot *s = build(text, &id, &d);
	assert_int_equal(s->n_gw_listeners, 1);
	assert_int_equal(s->gw_listeners[0].tls, 1);
	assert_string_equal(s->gw_listeners[0].credential, "web-cert");
	sn_snapshot_unref(s);
	sn_diags_free(&d);
}

#define GW_LABELS(name)                                                                  \
	static const struct sn_label name##_l[] = { { "gateway.networking.k8s.io/gateway-name", "g" } }; \
	static const struct sn_labels name = { (struct sn_label *)name##_l, 1 }

/* GRPCRoute: its method matches become paths, exact for service and
 * method, a segment prefix for a service alone, a pattern for a method
 * alone; header matches kept; on an HTTP listener beside HTTPRoutes. */
static void test_grpc_route(void **state)
{
	(void)state;
	GW_LABELS(g);
	static const char text[] =
		SVC("echo", "echo") SVC("other", "other")
		GW "  gatewayClassName: istio\n  listeners: [{name: web, port: 8080, protocol: HTTP}]\n---\n"
		"apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: r}\nspec:\n"
		"  parentRefs: [{name: g}]\n  hostnames: [grpc.example.com]\n  rules:\n"
		"  - matches: [{method: {service: echo.Echo, method: Unary}, headers: [{name: X-Tier, value: gold}]}]\n"
		"    backendRefs: [{name: other, port: 9080}]\n"
		"  - matches: [{method: {service: echo.Echo}}, {method: {method: Stream}}]\n"
		"    backendRefs: [{name: echo, port: 9080}]\n";
	static const struct sn_proxy_identity id = { .namespace_ = "default", .labels = &g, .gateway = 1 };
	struct sn_diags d;
	struct sn_snapshot *s = build(text, &id, &d);
	const struct sn_gw_listener *l = sn_snapshot_find_gw_listener(s, 8080);
	assert_non_null(l);
	assert_int_equal(l->n_vhosts, 1);
	const struct sn_vhost *vh = &l->vhosts[0];
	assert_string_equal(vh->host, "grpc.example.com");
	assert_int_equal(vh->n_routes, 3);
	/* precedence: the exact path first, then the prefix, then the pattern */
	assert_int_equal(vh->routes[0].matches[0].uri.kind, SN_MATCH_EXACT);
	assert_string_equal(vh->routes[0].matches[0].uri.value, "/echo.Echo/Unary");
	assert_int_equal(vh->routes[0].matches[0].n_headers, 1);
	assert_string_equal(vh->routes[0].matches[0].headers[0].name, "x-tier");
	assert_string_equal(cluster_service(s, &vh->routes[0], 0), "other.default.svc.cluster.local");
	assert_int_equal(vh->routes[1].matches[0].uri.kind, SN_MATCH_PATH_PREFIX);
	assert_string_equal(vh->routes[1].matches[0].uri.value, "/echo.Echo");
	assert_int_equal(vh->routes[2].matches[0].uri.kind, SN_MATCH_REGEX);
	assert_true(sn_str_match_test(&vh->routes[2].matches[0].uri, sn_str_make("/any.Svc/Stream", 15)));
	assert_false(sn_str_match_test(&vh->routes[2].matches[0].uri, sn_str_make("/any.Svc/Streams", 16)));
	assert_false(sn_str_match_test(&vh->routes[1].matches[0].uri, sn_str_make("/echo.EchoX/Unary", 17)));
	assert_int_equal(d.warnings, 0);
	sn_snapshot_unref(s);
	sn_diags_free(&d);
}

/* TCPRoute on a TCP listener, TLSRoute on a TLS Passthrough listener
 * (hostnames as server names), each to its listener by sectionName; a
 * route of the other kind does not attach. */
static void test_tcp_and_tls_routes(void **state)
{
	(void)state;
	GW_LABELS(g);
	static const char text[] =
		SVC("echo", "echo") SVC("secure", "secure")
		GW "  gatewayClassName: istio\n  listeners:\n"
		"  - {name: tcp, port: 31400, protocol: TCP}\n"
		"  - {name: tls, port: 8443, protocol: TLS, hostname: \"*.example.com\", tls: {mode: Passthrough}}\n"
		"  - {name: tls-term, port: 9443, protocol: TLS, tls: {certificateRefs: [{name: db-cert}]}}\n---\n"
		"apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: t}\nspec:\n"
		"  parentRefs: [{name: g, sectionName: tcp}]\n"
		"  rules: [{backendRefs: [{name: echo, port: 9080, weight: 80}, {name: secure, port: 9080, weight: 20}]}]\n---\n"
		"apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TLSRoute\nmetadata: {name: s}\nspec:\n"
		"  parentRefs: [{name: g}]\n  hostnames: [a.example.com, b.other.org]\n"
		"  rules: [{backendRefs: [{name: secure, port: 9080}]}]\n---\n"
		"apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: term}\nspec:\n"
		"  parentRefs: [{name: g, sectionName: tls-term}]\n  rules: [{backendRefs: [{name: echo, port: 9080}]}]\n---\n"
		"apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: wrong}\nspec:\n"
		"  parentRefs: [{name: g, sectionName: tls}]\n  rules: [{backendRefs: [{name: echo, port: 9080}]}]\n";
	static const struct sn_proxy_identity id = { .namespace_ = "default", .labels = &g, .gateway = 1 };
	struct sn_diags d;
	struct sn_snapshot *s = build(text, &id, &d);
	const struct sn_gw_listener *l = sn_snapshot_find_gw_listener(s, 31400);
	assert_true(l->tcp);
	assert_non_null(l->tcp_route);
	assert_int_equal(l->tcp_route->n_dests, 2);
	assert_int_equal(l->tcp_route->total_weight, 100);
	assert_string_equal(s->clusters[l->tcp_route->dests[1].cluster].service, "secure.default.svc.cluster.local");
	l = sn_snapshot_find_gw_listener(s, 8443);
	assert_true(l->passthrough);
	/* a.example.com meets the listener's *.example.com; b.other.org does not */
	assert_int_equal(l->n_sni_routes, 1);
	assert_non_null(sn_snapshot_find_sni_route(l, "a.example.com"));
	assert_null(sn_snapshot_find_sni_route(l, "c.example.com"));
	/* a TLS listener that terminates (the default mode) takes a TCPRoute */
	l = sn_snapshot_find_gw_listener(s, 9443);
	assert_true(l->tcp);
	assert_int_equal(l->tls, 1);
	assert_string_equal(l->credential, "db-cert");
	assert_non_null(l->tcp_route);
	assert_string_equal(s->clusters[l->tcp_route->dests[0].cluster].service, "echo.default.svc.cluster.local");
	sn_snapshot_unref(s);
	sn_diags_free(&d);
}

/* A backendRef to another namespace: 500 (a rule with no usable backend)
 * and a warning until a ReferenceGrant there allows the route's kind
 * and namespace; then routed. A grant for another kind, namespace or
 * Service name allows nothing. */
static void test_reference_grant(void **state)
{
	(void)state;
	GW_LABELS(g);
#define XNS_BASE                                                                                      \
	"apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: backend}\n"                  \
	"spec: {selector: {app: api}, ports: [{name: http, port: 9080}]}\n---\n"                      \
	GW "  gatewayClassName: istio\n  listeners: [{name: web, port: 8080, protocol: HTTP}]\n---\n" \
	"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n"     \
	"  parentRefs: [{name: g}]\n  rules: [{backendRefs: [{name: api, namespace: backend, port: 9080}]}]\n---\n"
#define GRANT(from_kind, from_ns, to_name)                                                              \
	"apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\n"                        \
	"metadata: {name: allow, namespace: backend}\nspec:\n"                                          \
	"  from: [{group: gateway.networking.k8s.io, kind: " from_kind ", namespace: " from_ns "}]\n" \
	"  to: [{group: \"\", kind: Service" to_name "}]\n"
	static const struct sn_proxy_identity id = { .namespace_ = "default", .labels = &g, .gateway = 1 };
	static const char *const denied[] = {
		XNS_BASE,
		XNS_BASE GRANT("GRPCRoute", "default", ""),
		XNS_BASE GRANT("HTTPRoute", "elsewhere", ""),
		XNS_BASE GRANT("HTTPRoute", "default", ", name: other"),
	};
	for (size_t i = 0; i < SN_ARRAY_LEN(denied); i++) {
		struct sn_diags d;
		struct sn_snapshot *s = build(denied[i], &id, &d);
		const struct sn_gw_listener *l = sn_snapshot_find_gw_listener(s, 8080);
		assert_int_equal(l->n_vhosts, 1);
		assert_int_equal(l->vhosts[0].routes[0].n_dests, 0);
		assert_int_equal(l->vhosts[0].routes[0].direct_status, 500);
		if (!has_diag(&d, SN_DIAG_WARNING, "no ReferenceGrant in backend", "HTTPRoutes of namespace default",
			      (const char *)NULL)) {
			print_diags(&d);
			fail_msg("case %zu: no warning", i);
		}
		sn_snapshot_unref(s);
		sn_diags_free(&d);
	}
	static const char *const allowed[] = {
		XNS_BASE GRANT("HTTPRoute", "default", ""),
		XNS_BASE GRANT("HTTPRoute", "default", ", name: api"),
	};
	for (size_t i = 0; i < SN_ARRAY_LEN(allowed); i++) {
		struct sn_diags d;
		struct sn_snapshot *s = build(allowed[i], &id, &d);
		const struct sn_gw_listener *l = sn_snapshot_find_gw_listener(s, 8080);
		assert_int_equal(l->vhosts[0].routes[0].n_dests, 1);
		assert_string_equal(cluster_service(s, &l->vhosts[0].routes[0], 0), "api.backend.svc.cluster.local");
		assert_int_equal(d.warnings, 0);
		sn_snapshot_unref(s);
		sn_diags_free(&d);
	}
}

int main(void)
{
	(void)load_registry;
	(void)src_path;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bookinfo_gateway_for_its_proxy),
		cmocka_unit_test(test_mesh_routes_split_by_weight),
		cmocka_unit_test(test_precedence_and_filters),
		cmocka_unit_test(test_allowed_routes_namespaces),
		cmocka_unit_test(test_path_prefix_is_segment_wise),
		cmocka_unit_test(test_refused_and_warned),
		cmocka_unit_test(test_https_listener_uses_the_secret),
		cmocka_unit_test(test_grpc_route),
		cmocka_unit_test(test_tcp_and_tls_routes),
		cmocka_unit_test(test_reference_grant),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
