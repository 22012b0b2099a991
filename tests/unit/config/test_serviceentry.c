/* ServiceEntry: loading with Istio's validation (file:line:col and field
 * for each refusal), and translation into services, clusters and vhosts
 * like a Service's: STATIC endpoints, workloadSelector, DNS without DNS
 * (IP literals and "localhost" only), DestinationRule subsets and
 * VirtualService routes on ServiceEntry hosts. */
#include "cfg_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "config/config_internal.h"

static int load(struct sn_config_set *set, struct sn_diags *d, const char *text)
{
	sn_config_set_init(set);
	sn_diags_init(d);
	return sn_config_load_text(set, "t.yaml", text, strlen(text), d);
}

/* Loads text (must load) and translates it for a proxy in default. */
static struct sn_snapshot *build_text(const char *text, struct sn_diags *d)
{
	static const struct sn_proxy_identity id = { .service = "productpage", .namespace_ = "default" };
	struct sn_config_set set;
	if (load(&set, d, text) != 0) {
		print_diags(d);
		fail_msg("load");
	}
	struct sn_snapshot *s = NULL;
	if (sn_config_translate(&set, &id, d, &s) != 0) {
		print_diags(d);
		fail_msg("translate");
	}
	sn_config_set_free(&set); /* the snapshot must not depend on the set */
	return s;
}

static const struct sn_cluster *find_cluster(const struct sn_snapshot *s, const char *name)
{
	for (size_t i = 0; i < s->n_clusters; i++)
		if (!strcmp(s->clusters[i].name, name))
			return &s->clusters[i];
	fail_msg("no cluster %s", name);
	return NULL;
}

static int has_endpoint(const struct sn_cluster *c, const char *address)
{
	for (size_t i = 0; i < c->n_endpoints; i++)
		if (!strcmp(c->endpoints[i].address, address))
			return 1;
	return 0;
}

#define SE_STATIC                                                   \
	"apiVersion: networking.istio.io/v1\n"                      \
	"kind: ServiceEntry\n"                                      \
	"metadata: {name: internal-api}\n"                          \
	"spec:\n"                                                   \
	"  hosts: [api.internal.example]\n"                         \
	"  addresses: [10.9.0.1, 10.10.0.0/16]\n"                   \
	"  location: MESH_INTERNAL\n"                               \
	"  ports:\n"                                                \
	"  - {number: 80, name: http, protocol: HTTP, targetPort: 8080}\n" \
	"  resolution: STATIC\n"                                    \
	"  endpoints:\n"                                            \
	"  - address: 127.0.0.1\n"                                  \
	"    labels: {version: v1}\n"                               \
	"  - address: 127.0.0.2\n"                                  \
	"    ports: {http: 9999}\n"                                 \
	"    labels: {version: v2}\n"                               \
	"    weight: 3\n"                                           \
	"    serviceAccount: api\n"

static void test_parse_static(void **state)
{
	(void)state;
	struct sn_config_set set;
	struct sn_diags d;
	assert_int_equal(load(&set, &d, SE_STATIC), 0);
	assert_non_null(set.head);
	assert_int_equal(set.head->kind, SN_KIND_SERVICE_ENTRY);
	assert_string_equal(sn_resource_kind_str(set.head->kind), "ServiceEntry");
	const struct cfg_service_entry *se = set.head->spec;
	assert_int_equal(se->n_hosts, 1);
	assert_string_equal(se->hosts[0], "api.internal.example");
	assert_int_equal(se->n_addresses, 2);
	assert_string_equal(se->addresses[1], "10.10.0.0/16");
	assert_true(se->mesh_internal);
	assert_int_equal(se->resolution, CFG_SE_STATIC);
	assert_int_equal(se->svc.n_ports, 1);
	assert_int_equal(se->svc.ports[0].port, 80);
	assert_int_equal(se->svc.ports[0].target_port, 8080);
	assert_string_equal(se->svc.ports[0].app_protocol, "http");
	assert_int_equal(se->n_endpoints, 2);
	assert_string_equal(se->endpoints[1].ip, "127.0.0.2");
	assert_int_equal(se->endpoints[1].w.weight, 3);
	assert_int_equal(d.errors, 0);
	/* VIPs are kept but not captured: said so */
	assert_diag(&d, SN_DIAG_WARNING, "t.yaml:6:", "spec.addresses", "goes to this ServiceEntry's endpoints");
	sn_diags_free(&d);
	sn_config_set_free(&set);

	/* every apiVersion Istio serves, and the kind's names */
	static const char *const versions[] = { "v1", "v1beta1", "v1alpha3" };
	for (size_t i = 0; i < 3; i++) {
		char text[512];
		snprintf(text, sizeof(text),
			 "apiVersion: networking.istio.io/%s\nkind: ServiceEntry\nmetadata: {name: x}\n"
			 "spec: {hosts: [a.example], ports: [{number: 80, name: http}], resolution: STATIC, "
			 "endpoints: [{address: 127.0.0.1}]}\n", versions[i]);
		assert_int_equal(load(&set, &d, text), 0);
		assert_int_equal(set.count, 1);
		sn_diags_free(&d);
		sn_config_set_free(&set);
	}
	assert_int_equal(sn_kind_lookup("serviceentry"), SN_KIND_SERVICE_ENTRY);
	assert_int_equal(sn_kind_lookup("ServiceEntries"), SN_KIND_SERVICE_ENTRY);
	assert_int_equal(sn_kind_lookup("se"), SN_KIND_SERVICE_ENTRY);
	assert_string_equal(sn_kind_plural(SN_KIND_SERVICE_ENTRY), "serviceentries");
	assert_string_equal(sn_kind_short(SN_KIND_SERVICE_ENTRY), "se");
}

/* One bad ServiceEntry: refused, with the diagnostic named. */
static void expect_error(const char *spec, const char *where, const char *field, const char *what)
{
	char text[2048];
	snprintf(text, sizeof(text),
		 "apiVersion: networking.istio.io/v1\n"
		 "kind: ServiceEntry\n"
		 "metadata: {name: bad}\n"
		 "spec:\n%s", spec);
	struct sn_config_set set;
	struct sn_diags d;
	assert_int_not_equal(load(&set, &d, text), 0);
	assert_int_equal(set.count, 0);
	if (!has_diag(&d, SN_DIAG_ERROR, where, "ServiceEntry default/bad", field, what, (const char *)NULL))
		fprintf(stderr, "expected an error with: %s ... %s: %s\n", where, field, what);
	assert_diag(&d, SN_DIAG_ERROR, where, "ServiceEntry default/bad", field, what);
	sn_diags_free(&d);
	sn_config_set_free(&set);
}

static void test_diagnostics(void **state)
{
	(void)state;
	const char *ports = "  ports: [{number: 80, name: http}]\n";
	char spec[1024];

	snprintf(spec, sizeof(spec), "  hosts: [a.example]\n%s  resolution: STATIC\n  endpoints:\n  - address: db.example.com\n",
		 ports);
	expect_error(spec, "t.yaml:9:14:", "spec.endpoints[0].address", "resolution STATIC needs IP addresses");

	snprintf(spec, sizeof(spec), "  hosts: [\"*.example.com\"]\n%s  resolution: DNS\n", ports);
	expect_error(spec, "t.yaml:5:12:", "spec.hosts[0]", "allowed only with resolution NONE");

	expect_error("  hosts: [\"*\"]\n  resolution: NONE\n", "t.yaml:5:12:", "spec.hosts[0]", "invalid host");

	snprintf(spec, sizeof(spec), "  hosts: [a.example]\n%s  resolution: DYNAMIC\n", ports);
	expect_error(spec, "t.yaml:7:15:", "spec.resolution", "unknown resolution \"DYNAMIC\"");

	snprintf(spec, sizeof(spec), "  hosts: [a.example]\n%s  location: OUTSIDE\n", ports);
	expect_error(spec, "t.yaml:7:13:", "spec.location", "MESH_EXTERNAL, MESH_INTERNAL");

	expect_error(ports, "t.yaml:", "spec.hosts", "hosts is required");

	snprintf(spec, sizeof(spec),
		 "  hosts: [a.example]\n%s  resolution: STATIC\n  workloadSelector: {labels: {app: a}}\n"
		 "  endpoints: [{address: 127.0.0.1}]\n", ports);
	expect_error(spec, "t.yaml:8:", "spec.workloadSelector", "only one of workloadSelector or endpoints");

	expect_error("  hosts: [a.example]\n  ports: [{number: 80}]\n", "t.yaml:6:", "spec.ports[0].name",
		     "name is required");

	expect_error("  hosts: [a.example]\n  ports: [{number: 80, name: h}, {number: 80, name: g}]\n",
		     "t.yaml:6:", "spec.ports[1].number", "already used by ports[0]");

	expect_error("  hosts: [a.example]\n  ports: [{number: 70000, name: h}]\n", "t.yaml:6:",
		     "spec.ports[0].number", "");

	expect_error("  hosts: [a.example]\n  ports: [{number: 80, name: h, protocol: SMTP}]\n", "t.yaml:6:",
		     "spec.ports[0].protocol", "unknown protocol");

	snprintf(spec, sizeof(spec), "  hosts: [a.example]\n%s  addresses: [10.0.0.0/8]\n  resolution: DNS\n", ports);
	expect_error(spec, "t.yaml:7:", "spec.addresses[0]", "allowed only with resolution NONE or STATIC");

	snprintf(spec, sizeof(spec), "  hosts: [a.example]\n%s  addresses: [not-an-ip]\n  resolution: STATIC\n", ports);
	expect_error(spec, "t.yaml:7:", "spec.addresses[0]", "not an IP address or CIDR");

	snprintf(spec, sizeof(spec),
		 "  hosts: [a.example]\n%s  resolution: STATIC\n  endpoints:\n  - address: 127.0.0.1\n"
		 "    ports: {grpc: 9000}\n", ports);
	expect_error(spec, "t.yaml:10:13:", "spec.endpoints[0].ports.grpc", "not the name of a port");

	snprintf(spec, sizeof(spec), "  hosts: [a.example]\n%s  endpoints: [{address: 127.0.0.1}]\n", ports);
	expect_error(spec, "t.yaml:7:", "spec.endpoints", "no endpoints should be provided for resolution NONE");

	snprintf(spec, sizeof(spec),
		 "  hosts: [a.example]\n%s  resolution: DNS_ROUND_ROBIN\n"
		 "  endpoints: [{address: a.example.net}, {address: b.example.net}]\n", ports);
	expect_error(spec, "t.yaml:8:", "spec.endpoints", "0 or 1 endpoint");

	snprintf(spec, sizeof(spec), "  hosts: [a.example]\n%s  resolution: DNS\n  endpoints: [{address: \"unix:///x\"}]\n",
		 ports);
	expect_error(spec, "t.yaml:8:", "spec.endpoints[0].address", "unix domain socket");
}

static void test_unimplemented_fields_warn(void **state)
{
	(void)state;
	const char *text = "apiVersion: networking.istio.io/v1beta1\n"
			   "kind: ServiceEntry\n"
			   "metadata: {name: w, namespace: shop}\n"
			   "spec:\n"
			   "  hosts: [a.example]\n"
			   "  exportTo: [\".\"]\n"
			   "  subjectAltNames: [spiffe://x]\n"
			   "  ports: [{number: 443, name: https, protocol: HTTPS}]\n"
			   "  resolution: STATIC\n"
			   "  endpoints:\n"
			   "  - {address: 127.0.0.1, network: n1, locality: r/z}\n";
	struct sn_config_set set;
	struct sn_diags d;
	assert_int_equal(load(&set, &d, text), 0);
	assert_diag(&d, SN_DIAG_WARNING, "t.yaml:6:3:", "spec.exportTo", "not implemented");
	assert_diag(&d, SN_DIAG_WARNING, "t.yaml:7:3:", "spec.subjectAltNames", "mTLS");
	assert_diag(&d, SN_DIAG_WARNING, "t.yaml:8:", "spec.ports[0].protocol", "relayed as opaque TCP");
	assert_diag(&d, SN_DIAG_WARNING, "t.yaml:11:", "spec.endpoints[0].network", "not implemented");
	/* locality is read (DestinationRule localityLbSetting) */
	assert_false(has_diag(&d, SN_DIAG_WARNING, "spec.endpoints[0].locality", (const char *)NULL));
	sn_diags_free(&d);
	sn_config_set_free(&set);
}

static void test_translate_static(void **state)
{
	(void)state;
	struct sn_diags d;
	struct sn_snapshot *s = build_text(SE_STATIC, &d);
	const struct sn_service *svc = sn_snapshot_find_service(s, "api.internal.example");
	assert_non_null(svc);
	assert_string_equal(svc->service_entry, "default/internal-api");
	assert_string_equal(svc->resolution, "STATIC");
	assert_int_equal(svc->n_ports, 1);
	assert_int_equal(svc->n_addresses, 2);
	const struct sn_cluster *c = find_cluster(s, "outbound|80||api.internal.example");
	assert_int_equal(c->n_endpoints, 2);
	/* targetPort, or the endpoint's port of the same name */
	assert_true(has_endpoint(c, "127.0.0.1:8080"));
	assert_true(has_endpoint(c, "127.0.0.2:9999"));
	assert_int_equal(c->endpoints[1].weight, 3);
	assert_string_equal(c->endpoints[1].service_account, "api");
	assert_string_equal(c->endpoints[1].version, "v2");
	const struct sockaddr_in *a = (const struct sockaddr_in *)&c->endpoints[0].addr;
	assert_int_equal(a->sin_family, AF_INET);
	assert_int_equal(ntohs(a->sin_port), 8080);

	/* exact host match with or without the port; no short names for it */
	uint16_t port = 0;
	const struct sn_vhost *vh = sn_snapshot_find_vhost(s, SN_STR_LIT("api.internal.example"), &port);
	assert_non_null(vh);
	assert_int_equal(port, 80);
	assert_int_equal(vh->n_routes, 1);
	assert_ptr_equal(&s->clusters[vh->routes[0].dests[0].cluster], c);
	assert_non_null(vh->routes[0].origin);
	assert_non_null(strstr(vh->routes[0].origin, "ServiceEntry default/internal-api"));
	assert_non_null(sn_snapshot_find_vhost(s, SN_STR_LIT("API.internal.example:80"), NULL));
	assert_null(sn_snapshot_find_vhost(s, SN_STR_LIT("api.internal.example:81"), NULL));
	assert_null(sn_snapshot_find_vhost(s, SN_STR_LIT("api"), NULL));

	/* the dump shows what the ServiceEntry added */
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	sn_snapshot_dump_json(s, f);
	fclose(f);
	assert_non_null(strstr(buf, "\"service_entry\":\"default/internal-api\""));
	assert_non_null(strstr(buf, "\"addresses\":[\"10.9.0.1\",\"10.10.0.0/16\"]"));
	assert_non_null(strstr(buf, "\"location\":\"MESH_INTERNAL\""));
	free(buf);
	sn_snapshot_unref(s);
	sn_diags_free(&d);
}

static void test_workload_selector(void **state)
{
	(void)state;
	const char *text = "apiVersion: networking.istio.io/v1\n"
			   "kind: ServiceEntry\n"
			   "metadata: {name: vms}\n"
			   "spec:\n"
			   "  hosts: [vm.internal.example]\n"
			   "  ports: [{number: 80, name: http, targetPort: 8000}]\n"
			   "  resolution: STATIC\n"
			   "  workloadSelector: {labels: {app: vm}}\n"
			   "---\n"
			   "apiVersion: networking.istio.io/v1\n"
			   "kind: WorkloadEntry\n"
			   "metadata: {name: vm-1}\n"
			   "spec: {address: 127.0.0.11, labels: {app: vm, version: v1}}\n"
			   "---\n"
			   "apiVersion: networking.istio.io/v1\n"
			   "kind: WorkloadEntry\n"
			   "metadata: {name: vm-2}\n"
			   "spec: {address: 127.0.0.12, labels: {app: vm, version: v2}, ports: {http: 8002}}\n"
			   "---\n"
			   "apiVersion: networking.istio.io/v1\n"
			   "kind: WorkloadEntry\n"
			   "metadata: {name: other}\n"
			   "spec: {address: 127.0.0.13, labels: {app: other}}\n"
			   "---\n"
			   "apiVersion: networking.istio.io/v1\n"
			   "kind: WorkloadEntry\n"
			   "metadata: {name: vm-elsewhere, namespace: other}\n"
			   "spec: {address: 127.0.0.14, labels: {app: vm}}\n";
	struct sn_diags d;
	struct sn_snapshot *s = build_text(text, &d);
	const struct sn_cluster *c = find_cluster(s, "outbound|80||vm.internal.example");
	assert_int_equal(c->n_endpoints, 2);
	assert_true(has_endpoint(c, "127.0.0.11:8000"));
	assert_true(has_endpoint(c, "127.0.0.12:8002"));
	assert_string_equal(c->endpoints[0].workload, "vm-1");
	sn_snapshot_unref(s);
	sn_diags_free(&d);
}

/* A resolver's answers for test_dns: two addresses for every name. */
static size_t answers(void *ctx, const char *name, char out[][48], size_t max)
{
	(void)ctx;
	(void)name;
	assert_true(max >= 2);
	snprintf(out[0], 48, "192.0.2.1");
	snprintf(out[1], 48, "2001:db8::1");
	return 2;
}

static void test_dns(void **state)
{
	(void)state;
	const char *text = "apiVersion: networking.istio.io/v1\n"
			   "kind: ServiceEntry\n"
			   "metadata: {name: dns}\n"
			   "spec:\n"
			   "  hosts: [lit.example, local.example]\n"
			   "  ports: [{number: 80, name: http}]\n"
			   "  resolution: DNS\n"
			   "  endpoints:\n"
			   "  - address: 127.0.0.7\n"
			   "  - address: localhost\n"
			   "    ports: {http: 8081}\n"
			   "  - address: db.example.net\n"
			   "---\n"
			   "apiVersion: networking.istio.io/v1\n"
			   "kind: ServiceEntry\n"
			   "metadata: {name: by-host}\n"
			   "spec:\n"
			   "  hosts: [www.example.org, 127.0.0.9]\n"
			   "  ports: [{number: 8080, name: http}]\n"
			   "  resolution: DNS\n";
	struct sn_diags d;
	struct sn_snapshot *s = build_text(text, &d);
	assert_int_equal(d.errors, 0);
	/* a name that needs DNS: the proxy's resolver's (none here): no
	 * endpoint, and no warning (the proxy resolves it) */
	assert_false(has_diag(&d, SN_DIAG_WARNING, "db.example.net", (const char *)NULL));
	const struct sn_cluster *c = find_cluster(s, "outbound|80||lit.example");
	assert_int_equal(c->n_endpoints, 2);
	assert_true(has_endpoint(c, "127.0.0.7:80"));
	assert_true(has_endpoint(c, "127.0.0.1:8081")); /* localhost, without DNS */
	c = find_cluster(s, "outbound|80||local.example");
	assert_int_equal(c->n_endpoints, 2);
	/* no endpoints: each host is its own endpoint, when known without DNS */
	c = find_cluster(s, "outbound|8080||www.example.org");
	assert_int_equal(c->n_endpoints, 0);
	c = find_cluster(s, "outbound|8080||127.0.0.9");
	assert_int_equal(c->n_endpoints, 1);
	assert_true(has_endpoint(c, "127.0.0.9:8080"));
	/* the entry is kept: its host routes (to a cluster with no endpoint) */
	assert_non_null(sn_snapshot_find_vhost(s, SN_STR_LIT("www.example.org:8080"), NULL));
	sn_snapshot_unref(s);
	sn_diags_free(&d);

	/* with a resolver's answers: DNS takes every address of a name,
	 * DNS_ROUND_ROBIN the first */
	struct sn_config_set set;
	static const struct sn_proxy_identity id = { .namespace_ = "default", .dns_lookup = answers };
	load(&set, &d, text);
	assert_int_equal(sn_config_translate(&set, &id, &d, &s), 0);
	c = find_cluster(s, "outbound|80||lit.example");
	assert_int_equal(c->n_endpoints, 4);
	assert_true(has_endpoint(c, "192.0.2.1:80"));
	assert_true(has_endpoint(c, "[2001:db8::1]:80"));
	c = find_cluster(s, "outbound|8080||www.example.org");
	assert_int_equal(c->n_endpoints, 2);
	sn_snapshot_unref(s);
	sn_config_set_free(&set);
	sn_diags_free(&d);
	static const char rr[] = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: rr}\n"
				 "spec: {hosts: [rr.example], ports: [{number: 80, name: http}], resolution: DNS_ROUND_ROBIN}\n";
	load(&set, &d, rr);
	assert_int_equal(sn_config_translate(&set, &id, &d, &s), 0);
	c = find_cluster(s, "outbound|80||rr.example");
	assert_int_equal(c->n_endpoints, 1);
	sn_snapshot_unref(s);
	sn_config_set_free(&set);
	sn_diags_free(&d);
}

static void test_none_and_wildcard(void **state)
{
	(void)state;
	const char *text = "apiVersion: networking.istio.io/v1\n"
			   "kind: ServiceEntry\n"
			   "metadata: {name: wiki}\n"
			   "spec:\n"
			   "  hosts: [wikipedia.org, \"*.wikipedia.org\"]\n"
			   "  ports: [{number: 80, name: http}]\n";
	struct sn_diags d;
	struct sn_snapshot *s = build_text(text, &d);
	assert_diag(&d, SN_DIAG_WARNING, "t.yaml:", "spec.resolution", "resolution NONE", "no_healthy_upstream");
	const struct sn_vhost *vh = sn_snapshot_find_vhost(s, SN_STR_LIT("en.wikipedia.org"), NULL);
	assert_non_null(vh);
	assert_string_equal(vh->host, "*.wikipedia.org");
	assert_int_equal(s->clusters[vh->routes[0].dests[0].cluster].n_endpoints, 0);
	assert_non_null(sn_snapshot_find_vhost(s, SN_STR_LIT("wikipedia.org"), NULL));
	sn_snapshot_unref(s);
	sn_diags_free(&d);
}

static void test_subsets_and_virtual_service(void **state)
{
	(void)state;
	const char *text = SE_STATIC
			   "---\n"
			   "apiVersion: networking.istio.io/v1\n"
			   "kind: DestinationRule\n"
			   "metadata: {name: internal-api}\n"
			   "spec:\n"
			   "  host: api.internal.example\n"
			   "  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n"
			   "  subsets:\n"
			   "  - {name: v1, labels: {version: v1}}\n"
			   "  - {name: v2, labels: {version: v2}}\n"
			   "---\n"
			   "apiVersion: networking.istio.io/v1\n"
			   "kind: VirtualService\n"
			   "metadata: {name: internal-api}\n"
			   "spec:\n"
			   "  hosts: [api.internal.example]\n"
			   "  http:\n"
			   "  - match: [{headers: {x-canary: {exact: \"1\"}}}]\n"
			   "    route: [{destination: {host: api.internal.example, subset: v2}}]\n"
			   "  - route:\n"
			   "    - {destination: {host: api.internal.example, subset: v1}, weight: 90}\n"
			   "    - {destination: {host: api.internal.example, subset: v2}, weight: 10}\n"
			   "---\n"
			   "apiVersion: networking.istio.io/v1\n"
			   "kind: VirtualService\n"
			   "metadata: {name: reviews}\n"
			   "spec:\n"
			   "  hosts: [reviews]\n"
			   "  http:\n"
			   "  - route: [{destination: {host: api.internal.example, subset: v1}}]\n";
	struct sn_diags d;
	struct sn_snapshot *s = build_text(text, &d);
	assert_int_equal(d.errors, 0);
	const struct sn_cluster *v1 = find_cluster(s, "outbound|80|v1|api.internal.example");
	const struct sn_cluster *v2 = find_cluster(s, "outbound|80|v2|api.internal.example");
	assert_int_equal(v1->n_endpoints, 1);
	assert_true(has_endpoint(v1, "127.0.0.1:8080"));
	assert_int_equal(v2->n_endpoints, 1);
	assert_true(has_endpoint(v2, "127.0.0.2:9999"));
	assert_int_equal(v1->lb, SN_LB_ROUND_ROBIN);

	const struct sn_vhost *vh = sn_snapshot_find_vhost(s, SN_STR_LIT("api.internal.example"), NULL);
	assert_non_null(vh);
	assert_int_equal(vh->n_routes, 2);
	assert_ptr_equal(&s->clusters[vh->routes[0].dests[0].cluster], v2);
	assert_int_equal(vh->routes[1].n_dests, 2);
	assert_int_equal(vh->routes[1].dests[0].weight, 90);
	assert_ptr_equal(&s->clusters[vh->routes[1].dests[0].cluster], v1);

	/* a route from another host to the ServiceEntry host */
	vh = sn_snapshot_find_vhost(s, SN_STR_LIT("reviews"), NULL);
	assert_non_null(vh);
	assert_ptr_equal(&s->clusters[vh->routes[0].dests[0].cluster], v1);
	sn_snapshot_unref(s);
	sn_diags_free(&d);

	/* an unknown subset of a ServiceEntry host is an error like a Service's */
	const char *bad = SE_STATIC
			  "---\n"
			  "apiVersion: networking.istio.io/v1\n"
			  "kind: VirtualService\n"
			  "metadata: {name: bad}\n"
			  "spec:\n"
			  "  hosts: [api.internal.example]\n"
			  "  http: [{route: [{destination: {host: api.internal.example, subset: v9}}]}]\n";
	struct sn_config_set set;
	assert_int_equal(load(&set, &d, bad), 0);
	struct sn_snapshot *out = NULL;
	assert_int_not_equal(sn_config_translate(&set, NULL, &d, &out), 0);
	assert_null(out);
	assert_diag(&d, SN_DIAG_ERROR, "t.yaml:25:", "VirtualService default/bad", "subset", "\"v9\"");
	sn_diags_free(&d);
	sn_config_set_free(&set);
}

static void test_service_wins(void **state)
{
	(void)state;
	const char *text = "apiVersion: v1\n"
			   "kind: Service\n"
			   "metadata: {name: ratings}\n"
			   "spec: {ports: [{name: http, port: 9080}]}\n"
			   "---\n"
			   "apiVersion: networking.istio.io/v1\n"
			   "kind: ServiceEntry\n"
			   "metadata: {name: shadow}\n"
			   "spec:\n"
			   "  hosts: [ratings.default.svc.cluster.local, shadow.example]\n"
			   "  ports: [{number: 80, name: http}]\n"
			   "  resolution: STATIC\n"
			   "  endpoints: [{address: 127.0.0.1}]\n";
	struct sn_diags d;
	struct sn_snapshot *s = build_text(text, &d);
	assert_diag(&d, SN_DIAG_WARNING, "t.yaml:10:", "ServiceEntry default/shadow", "spec.hosts[0]",
		    "Service default/ratings also defines host ratings.default.svc.cluster.local", "Service wins");
	const struct sn_service *svc = sn_snapshot_find_service(s, "ratings.default.svc.cluster.local");
	assert_non_null(svc);
	assert_null(svc->service_entry);
	assert_int_equal(svc->ports[0].port, 9080);
	svc = sn_snapshot_find_service(s, "shadow.example");
	assert_non_null(svc);
	assert_non_null(svc->service_entry);
	sn_snapshot_unref(s);
	sn_diags_free(&d);
}

/* The bookinfo egress sample: DNS to an external host; translated without
 * a resolver (sinewd's admission): no endpoint, never any traffic, 0
 * errors. */
static void test_bookinfo_egress_file(void **state)
{
	(void)state;
	char p[1024];
	shared_path(p, sizeof(p), "conformance/istio-bookinfo/networking/egress-rule-google-apis.yaml");
	struct sn_config_set set;
	struct sn_diags d;
	sn_config_set_init(&set);
	sn_diags_init(&d);
	load_registry(&set, &d);
	assert_int_equal(sn_config_load_file(&set, p, &d), 0);
	struct sn_snapshot *s = NULL;
	if (sn_config_translate(&set, NULL, &d, &s) != 0)
		print_diags(&d);
	assert_non_null(s);
	assert_int_equal(d.errors, 0);
	/* www.googleapis.com is the proxy resolver's: without one, no endpoint */
	assert_false(has_diag(&d, SN_DIAG_WARNING, "DNS resolution", (const char *)NULL));
	for (size_t i = 0; i < s->n_clusters; i++)
		if (strstr(s->clusters[i].name, "googleapis") != NULL)
			assert_int_equal(s->clusters[i].n_endpoints, 0);
	sn_snapshot_unref(s);
	sn_diags_free(&d);
	sn_config_set_free(&set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_static),
		cmocka_unit_test(test_diagnostics),
		cmocka_unit_test(test_unimplemented_fields_warn),
		cmocka_unit_test(test_translate_static),
		cmocka_unit_test(test_workload_selector),
		cmocka_unit_test(test_dns),
		cmocka_unit_test(test_none_and_wildcard),
		cmocka_unit_test(test_subsets_and_virtual_service),
		cmocka_unit_test(test_service_wins),
		cmocka_unit_test(test_bookinfo_egress_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
