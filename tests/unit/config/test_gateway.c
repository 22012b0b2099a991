/* Istio's Gateway: loading (servers, hosts with namespaces, protocols
 * served or warned), and translation for a gateway proxy: listeners by
 * port with the VirtualServices bound to them, hosts as server and
 * VirtualService meet, per-match gateways, and nothing for sidecars. */
#include "cfg_test_util.h"

static const struct sn_label ingress_labels[] = { { "istio", "ingressgateway" } };
static const struct sn_labels ingress = { (struct sn_label *)ingress_labels, 1 };

static struct sn_snapshot *build(const char *text, const struct sn_proxy_identity *id, struct sn_diags *d)
{
	return build_snapshot(text, id, d);
}

#define SVCS                                                        \
	"apiVersion: v1\nkind: Service\nmetadata: {name: productpage}\n" \
	"spec: {selector: {app: productpage}, ports: [{name: http, port: 9080}]}\n" \
	"---\n"                                                     \
	"apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: shop}\n" \
	"spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}\n" \
	"---\n"

#define GW                                                          \
	"apiVersion: networking.istio.io/v1\nkind: Gateway\n"       \
	"metadata: {name: gw, namespace: istio-system}\n"           \
	"spec:\n"                                                   \
	"  selector: {istio: ingressgateway}\n"                     \
	"  servers:\n"                                              \
	"  - port: {number: 8080, name: http, protocol: HTTP}\n"    \
	"    hosts: [\"*/*.example.com\", \"shop/reviews.shop.svc.cluster.local\"]\n" \
	"  - port: {number: 8443, name: https, protocol: HTTPS}\n"  \
	"    hosts: [\"*\"]\n"                                      \
	"    tls: {mode: SIMPLE, credentialName: x}\n"              \
	"  - port: {number: 8081, name: grpc, protocol: grpc}\n"    \
	"    hosts: [\"./*\"]\n"                                    \
	"  - port: {number: 8444, name: tls, protocol: HTTPS}\n"   \
	"    hosts: [\"*\"]\n"                                      \
	"    tls: {mode: AUTO_PASSTHROUGH}\n"                      \
	"  - port: {number: 8080, name: again, protocol: HTTPS}\n"  \
	"    hosts: [\"*\"]\n"                                      \
	"    tls: {mode: SIMPLE, credentialName: y}\n"             \
	"---\n"

#define VS_BOOK                                                     \
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\n" \
	"metadata: {name: book}\n"                                  \
	"spec:\n"                                                   \
	"  hosts: [book.example.com, other.org]\n"                  \
	"  gateways: [istio-system/gw]\n"                           \
	"  http:\n"                                                 \
	"  - match: [{uri: {prefix: /a}, gateways: [mesh]}]\n"      \
	"    route: [{destination: {host: reviews.shop}}]\n"        \
	"  - route: [{destination: {host: productpage}}]\n"         \
	"---\n"                                                     \
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\n" \
	"metadata: {name: rv, namespace: shop}\n"                   \
	"spec:\n"                                                   \
	"  hosts: [reviews]\n"                                      \
	"  gateways: [istio-system/gw, mesh]\n"                     \
	"  http: [{route: [{destination: {host: reviews}}]}]\n"

static void test_load_warns_what_is_not_served(void **state)
{
	(void)state;
	struct sn_config_set set;
	struct sn_diags d;
	sn_config_set_init(&set);
	sn_diags_init(&d);
	static const char text[] = GW;
	assert_int_equal(sn_config_load_text(&set, "t.yaml", text, strlen(text), &d), 0);
	assert_diag(&d, SN_DIAG_WARNING, "t.yaml:", "spec.servers[3].tls", "tls.mode AUTO_PASSTHROUGH is not served",
		    "not opened");
	assert_int_equal(d.errors, 0);
	sn_diags_free(&d);
	sn_config_set_free(&set);
}

static void test_load_errors(void **state)
{
	(void)state;
	static const char *const bad[][2] = {
		{ "spec: {servers: [{port: {number: 80, protocol: HTTPS}, hosts: [\"*\"], tls: {mode: SIMPLE}}]}\n",
		  "needs credentialName, or serverCertificate and privateKey" },
		{ "spec: {servers: [{port: {number: 80, protocol: HTTPS}, hosts: [\"*\"], tls: {mode: MUTUAL, "
		  "serverCertificate: a, privateKey: b}}]}\n", "MUTUAL needs caCertificates" },
		{ "spec: {servers: [{port: {number: 80, protocol: HTTPS}, hosts: [\"*\"], tls: {mode: SIMPLE, "
		  "credentialName: ../x}}]}\n", "must be a plain name" },
		{ "spec: {servers: [{port: {number: 80, protocol: HTTP}, hosts: [\"a b\"]}]}\n", "is not a host" },
		{ "spec: {servers: [{port: {number: 80, protocol: HTTP}, hosts: [\"Bad_ns/x\"]}]}\n", "not a namespace" },
		{ "spec: {servers: [{port: {number: 80, protocol: SPDY}, hosts: [\"*\"]}]}\n", "unknown protocol" },
		{ "spec: {servers: [{port: {protocol: HTTP}, hosts: [\"*\"]}]}\n", "number is required" },
		{ "spec: {servers: [{port: {number: 80, protocol: HTTP}}]}\n", "hosts is required" },
		{ "spec: {selector: {istio: x}}\n", "servers is required" },
	};
	for (size_t i = 0; i < SN_ARRAY_LEN(bad); i++) {
		char text[600];
		snprintf(text, sizeof(text), "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\n%s",
			 bad[i][0]);
		struct sn_config_set set;
		struct sn_diags d;
		sn_config_set_init(&set);
		sn_diags_init(&d);
		assert_int_not_equal(sn_config_load_text(&set, "t.yaml", text, strlen(text), &d), 0);
		assert_diag(&d, SN_DIAG_ERROR, "t.yaml:", bad[i][1]);
		sn_diags_free(&d);
		sn_config_set_free(&set);
	}
}

static const struct sn_vhost *gw_host(const struct sn_gw_listener *l, const char *host)
{
	for (size_t i = 0; i < l->n_vhosts; i++)
		if (!strcmp(l->vhosts[i].host, host))
			return &l->vhosts[i];
	return NULL;
}

static void test_translate_for_gateway(void **state)
{
	(void)state;
	static const struct sn_proxy_identity id = { .service = "istio-ingressgateway", .namespace_ = "istio-system",
						     .labels = &ingress, .gateway = 1 };
	struct sn_diags d;
	struct sn_snapshot *s = build(SVCS GW VS_BOOK, &id, &d);
	assert_true(s->gateway);
	/* 8080, 8081 and 8443 (SIMPLE), sorted; AUTO_PASSTHROUGH is not opened,
	 * nor HTTPS on 8080, which is plain text already (warned) */
	assert_int_equal(s->n_gw_listeners, 3);
	assert_int_equal(s->gw_listeners[0].port, 8080);
	assert_int_equal(s->gw_listeners[0].tls, 0);
	assert_int_equal(s->gw_listeners[1].port, 8081);
	assert_string_equal(s->gw_listeners[1].protocol, "GRPC");
	assert_int_equal(s->gw_listeners[2].port, 8443);
	assert_int_equal(s->gw_listeners[2].tls, 1);
	assert_string_equal(s->gw_listeners[2].credential, "x");
	assert_diag(&d, SN_DIAG_WARNING, "spec.servers[4]", "port 8080 is already plain text", "not opened");
	const struct sn_gw_listener *l = sn_snapshot_find_gw_listener(s, 8080);
	assert_non_null(l);
	/* book.example.com meets "*.example.com"; other.org meets nothing;
	 * reviews (shop) is admitted for shop's VirtualServices only */
	const struct sn_vhost *book = gw_host(l, "book.example.com");
	assert_non_null(book);
	assert_null(gw_host(l, "other.org"));
	assert_non_null(gw_host(l, "reviews.shop.svc.cluster.local"));
	/* the /a rule is for the mesh only: one rule at the gateway */
	assert_int_equal(book->n_routes, 1);
	assert_string_equal(s->clusters[book->routes[0].dests[0].cluster].service,
			    "productpage.default.svc.cluster.local");
	/* lookups by authority, and "*" only where a server admits it */
	assert_ptr_equal(sn_snapshot_find_gw_vhost(s, l, sn_str_make("BOOK.example.com:8080", 21)), book);
	assert_null(sn_snapshot_find_gw_vhost(s, l, sn_str_make("10.0.0.1", 8)));
	/* 8081 admits the Gateway's own namespace only: none bound there */
	assert_int_equal(s->gw_listeners[1].n_vhosts, 0);
	sn_snapshot_unref(s);
	sn_diags_free(&d);

	/* a gateway proxy the selector does not pick: no listeners */
	static const struct sn_label other_labels[] = { { "istio", "egressgateway" } };
	static const struct sn_labels other = { (struct sn_label *)other_labels, 1 };
	static const struct sn_proxy_identity id2 = { .namespace_ = "istio-system", .labels = &other, .gateway = 1 };
	s = build(SVCS GW VS_BOOK, &id2, &d);
	assert_int_equal(s->n_gw_listeners, 0);
	sn_snapshot_unref(s);
	sn_diags_free(&d);
}

static void test_sidecars_get_no_gateway_routes(void **state)
{
	(void)state;
	static const struct sn_proxy_identity id = { .service = "productpage", .namespace_ = "default",
						     .labels = &ingress };
	struct sn_diags d;
	struct sn_snapshot *s = build(SVCS GW VS_BOOK, &id, &d);
	assert_false(s->gateway);
	assert_int_equal(s->n_gw_listeners, 0);
	/* book is bound to the gateway only; rv to the mesh too */
	uint16_t port;
	assert_null(sn_snapshot_find_vhost(s, sn_str_make("book.example.com", 16), &port));
	const struct sn_vhost *rv = sn_snapshot_find_vhost(s, sn_str_make("reviews.shop", 12), &port);
	assert_non_null(rv);
	assert_string_equal(rv->routes[0].vs_name, "rv");
	sn_snapshot_unref(s);
	sn_diags_free(&d);
}

static void test_star_takes_any_authority(void **state)
{
	(void)state;
	char p[1024];
	shared_path(p, sizeof(p), "conformance/istio-bookinfo/networking/bookinfo-gateway.yaml");
	FILE *f = fopen(p, "r");
	assert_non_null(f);
	static char text[8192];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	char all[10000];
	snprintf(all, sizeof(all), SVCS "%.*s", (int)n, text);
	static const struct sn_proxy_identity id = { .namespace_ = "istio-system", .labels = &ingress, .gateway = 1 };
	struct sn_diags d;
	struct sn_snapshot *s = build(all, &id, &d);
	const struct sn_gw_listener *l = sn_snapshot_find_gw_listener(s, 8080);
	assert_non_null(l);
	const struct sn_vhost *v = sn_snapshot_find_gw_vhost(s, l, sn_str_make("127.0.0.1:9080", 14));
	assert_non_null(v);
	assert_string_equal(v->host, "*");
	assert_ptr_equal(sn_snapshot_find_gw_vhost(s, l, sn_str_make("anything.example", 16)), v);
	sn_snapshot_unref(s);
	sn_diags_free(&d);
}

#define GW_TLS                                                      \
	"apiVersion: networking.istio.io/v1\nkind: Gateway\n"       \
	"metadata: {name: tls, namespace: istio-system}\n"          \
	"spec:\n"                                                   \
	"  selector: {istio: ingressgateway}\n"                     \
	"  servers:\n"                                              \
	"  - port: {number: 9443, name: tls, protocol: TLS}\n"      \
	"    hosts: [\"*.example.com\"]\n"                          \
	"    tls: {mode: PASSTHROUGH}\n"                            \
	"  - port: {number: 9443, name: web, protocol: HTTP}\n"     \
	"    hosts: [\"*\"]\n"                                      \
	"---\n"                                                     \
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\n" \
	"metadata: {name: sni}\n"                                   \
	"spec:\n"                                                   \
	"  hosts: [\"*.example.com\"]\n"                             \
	"  gateways: [istio-system/tls]\n"                          \
	"  tls:\n"                                                  \
	"  - match: [{sniHosts: [book.example.com], port: 9443}]\n" \
	"    route: [{destination: {host: productpage, port: {number: 9080}}}]\n" \
	"  - match: [{sniHosts: [\"*.example.com\", other.org]}]\n"  \
	"    route: [{destination: {host: reviews.shop}, weight: 30}, {destination: {host: productpage}, weight: 70}]\n" \
	"  - match: [{sniHosts: [book.example.com]}]\n"             \
	"    route: [{destination: {host: reviews.shop}}]\n"

static void test_tls_passthrough_routes(void **state)
{
	(void)state;
	static const struct sn_proxy_identity id = { .namespace_ = "istio-system", .labels = &ingress, .gateway = 1 };
	struct sn_diags d;
	struct sn_snapshot *s = build(SVCS GW_TLS, &id, &d);
	/* one port, passthrough; the HTTP server on it is warned, not opened */
	assert_int_equal(s->n_gw_listeners, 1);
	const struct sn_gw_listener *l = sn_snapshot_find_gw_listener(s, 9443);
	assert_non_null(l);
	assert_true(l->passthrough);
	assert_int_equal(l->n_vhosts, 0);
	assert_diag(&d, SN_DIAG_WARNING, "spec.servers[1]", "a TLS passthrough port", "not opened");
	/* book.example.com; *.example.com (other.org meets no server host);
	 * the third rule's book.example.com is taken: warned */
	assert_int_equal(l->n_sni_routes, 2);
	assert_diag(&d, SN_DIAG_WARNING, "spec.tls[2]", "server name book.example.com", "earlier tls route");
	const struct sn_sni_route *r = sn_snapshot_find_sni_route(l, "book.example.com");
	assert_non_null(r);
	assert_string_equal(r->sni, "book.example.com");
	assert_int_equal(r->n_dests, 1);
	assert_string_equal(s->clusters[r->dests[0].cluster].service, "productpage.default.svc.cluster.local");
	r = sn_snapshot_find_sni_route(l, "a.b.example.com");
	assert_non_null(r);
	assert_string_equal(r->sni, "*.example.com");
	assert_int_equal(r->n_dests, 2);
	assert_int_equal(r->total_weight, 100);
	assert_string_equal(s->clusters[r->dests[0].cluster].service, "reviews.shop.svc.cluster.local");
	assert_int_equal(r->dests[0].weight, 30);
	assert_null(sn_snapshot_find_sni_route(l, "example.com"));
	assert_null(sn_snapshot_find_sni_route(l, "other.org"));
	assert_null(sn_snapshot_find_sni_route(l, NULL));
	sn_snapshot_unref(s);
	sn_diags_free(&d);

	/* for sidecars: the mesh's matches at the host's port, by server name */
#define MESH_VS                                                                                         \
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: m}\n"            \
		"spec:\n  hosts: [productpage]\n  tls:\n"                                                    \
		"  - match: [{sniHosts: [a.example.com], port: 9080}]\n"                                     \
		"    route: [{destination: {host: reviews.shop}}]\n"                                          \
		"  - match: [{sniHosts: [b.example.com], port: 1}, {sniHosts: [\"*.example.com\"], gateways: [mesh]}]\n" \
		"    route: [{destination: {host: productpage}}]\n"                                           \
		"  - match: [{sniHosts: [c.example.com], gateways: [istio-system/tls]}]\n"                    \
		"    route: [{destination: {host: productpage}}]\n"
	static const struct sn_proxy_identity side = { .service = "x", .namespace_ = "default" };
	s = build(SVCS MESH_VS, &side, &d);
	uint16_t port;
	const struct sn_vhost *v = sn_snapshot_find_vhost(s, sn_str_make("productpage:9080", 16), &port);
	assert_non_null(v);
	/* a.example.com and *.example.com; b (port 1) and c (a gateway's) not */
	assert_int_equal(v->n_tls_routes, 2);
	r = sn_sni_route_find(v->tls_routes, v->n_tls_routes, "a.example.com");
	assert_string_equal(s->clusters[r->dests[0].cluster].service, "reviews.shop.svc.cluster.local");
	r = sn_sni_route_find(v->tls_routes, v->n_tls_routes, "c.example.com");
	assert_string_equal(r->sni, "*.example.com");
	assert_null(sn_sni_route_find(v->tls_routes, v->n_tls_routes, NULL));
	assert_int_equal(d.warnings, 0);
	sn_snapshot_unref(s);
	sn_diags_free(&d);
}

/* A TCP server: the first tcp[] route bound there at its port takes every
 * connection; a later one is warned; a TCP server on an HTTP port is not
 * opened; MONGO is TCP. */
static void test_tcp_servers(void **state)
{
	(void)state;
	static const struct sn_proxy_identity id = { .namespace_ = "istio-system", .labels = &ingress, .gateway = 1 };
	struct sn_diags d;
	struct sn_snapshot *s = build(SVCS
		"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: tcp, namespace: istio-system}\n"
		"spec:\n  selector: {istio: ingressgateway}\n  servers:\n"
		"  - port: {number: 31400, name: tcp, protocol: TCP}\n    hosts: [\"*\"]\n"
		"  - port: {number: 31400, name: web, protocol: HTTP}\n    hosts: [\"*\"]\n"
		"  - port: {number: 27017, name: mongo, protocol: MONGO}\n    hosts: [\"*\"]\n"
		"  - port: {number: 31401, name: none, protocol: TCP}\n    hosts: [\"*\"]\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\n"
		"spec:\n  hosts: [\"*\"]\n  gateways: [istio-system/tcp]\n  tcp:\n"
		"  - match: [{port: 27017}]\n    route: [{destination: {host: reviews.shop}}]\n"
		"  - match: [{port: 31400}]\n"
		"    route: [{destination: {host: productpage}, weight: 80}, {destination: {host: reviews.shop}, weight: 20}]\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: b}\n"
		"spec:\n  hosts: [\"*\"]\n  gateways: [istio-system/tcp]\n  tcp:\n"
		"  - route: [{destination: {host: productpage}}]\n",
		&id, &d);
	assert_int_equal(s->n_gw_listeners, 3);
	assert_diag(&d, SN_DIAG_WARNING, "spec.servers[1]", "a TCP port", "not opened");
	const struct sn_gw_listener *l = sn_snapshot_find_gw_listener(s, 31400);
	assert_true(l->tcp && !l->passthrough);
	assert_non_null(l->tcp_route);
	assert_int_equal(l->tcp_route->n_dests, 2);
	assert_int_equal(l->tcp_route->total_weight, 100);
	assert_string_equal(s->clusters[l->tcp_route->dests[1].cluster].service, "reviews.shop.svc.cluster.local");
	/* b's route, without a port, also matches 31400: a's came first */
	assert_diag(&d, SN_DIAG_WARNING, "spec.tcp[0]", "gateway port 31400", "earlier tcp route");
	l = sn_snapshot_find_gw_listener(s, 27017);
	assert_true(l->tcp);
	assert_int_equal(l->tcp_route->n_dests, 1);
	/* b's portless route takes 31401 */
	l = sn_snapshot_find_gw_listener(s, 31401);
	assert_non_null(l->tcp_route);
	assert_string_equal(s->clusters[l->tcp_route->dests[0].cluster].service, "productpage.default.svc.cluster.local");
	sn_snapshot_unref(s);
	sn_diags_free(&d);
}

int main(void)
{
	(void)load_registry;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_warns_what_is_not_served),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_translate_for_gateway),
		cmocka_unit_test(test_sidecars_get_no_gateway_routes),
		cmocka_unit_test(test_star_takes_any_authority),
		cmocka_unit_test(test_tls_passthrough_routes),
		cmocka_unit_test(test_tcp_servers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
