/* Translation: the bookinfo routing files produce the routes, clusters and
 * endpoints their documentation describes; vhost lookup by authority;
 * JSON dump; refcounting. */
#include "cfg_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static struct sn_snapshot *build(const char *const *files, const struct sn_proxy_identity *id)
{
	struct sn_config_set set;
	struct sn_diags d;
	sn_config_set_init(&set);
	sn_diags_init(&d);
	load_registry(&set, &d);
	for (size_t i = 0; files[i]; i++) {
		char p[1024], rel[512];
		snprintf(rel, sizeof(rel), "conformance/istio-bookinfo/networking/%s", files[i]);
		shared_path(p, sizeof(p), rel);
		if (sn_config_load_file(&set, p, &d) != 0) {
			print_diags(&d);
			fail_msg("load %s", files[i]);
		}
	}
	struct sn_snapshot *s = NULL;
	if (sn_config_translate(&set, id, &d, &s) != 0) {
		print_diags(&d);
		fail_msg("translate");
	}
	sn_diags_free(&d);
	sn_config_set_free(&set); /* the snapshot must not depend on the set */
	return s;
}

static const struct sn_proxy_identity pp_id = { .service = "productpage", .namespace_ = "default" };

static const struct sn_cluster *dest_cluster(const struct sn_snapshot *s, const struct sn_http_route *r, size_t i)
{
	assert_true(i < r->n_dests);
	assert_true(r->dests[i].cluster < s->n_clusters);
	return &s->clusters[r->dests[i].cluster];
}

static void test_jason_v2_v3(void **state)
{
	(void)state;
	const char *files[] = { "destination-rule-all.yaml", "virtual-service-reviews-jason-v2-v3.yaml", NULL };
	struct sn_snapshot *s = build(files, &pp_id);
	uint16_t port = 0;
	const struct sn_vhost *vh = sn_snapshot_find_vhost(s, SN_STR_LIT("reviews"), &port);
	assert_non_null(vh);
	assert_string_equal(vh->host, "reviews.default.svc.cluster.local");
	assert_int_equal(port, 9080);
	assert_int_equal(vh->n_routes, 2);

	const struct sn_http_route *r0 = &vh->routes[0];
	assert_int_equal(r0->n_matches, 1);
	assert_int_equal(r0->matches[0].n_headers, 1);
	assert_string_equal(r0->matches[0].headers[0].name, "end-user");
	assert_int_equal(r0->matches[0].headers[0].m.kind, SN_MATCH_EXACT);
	assert_string_equal(r0->matches[0].headers[0].m.value, "jason");
	assert_true(sn_str_match_test(&r0->matches[0].headers[0].m, SN_STR_LIT("jason")));
	assert_false(sn_str_match_test(&r0->matches[0].headers[0].m, SN_STR_LIT("jasonx")));
	const struct sn_cluster *c = dest_cluster(s, r0, 0);
	assert_string_equal(c->name, "outbound|9080|v2|reviews.default.svc.cluster.local");
	assert_string_equal(c->subset, "v2");
	assert_int_equal(c->n_endpoints, 1);
	assert_string_equal(c->endpoints[0].address, "127.0.10.4:9080");
	assert_string_equal(c->endpoints[0].version, "v2");
	assert_string_equal(c->endpoints[0].workload, "reviews-v2");
	assert_string_equal(c->endpoints[0].service_account, "bookinfo-reviews");
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&c->endpoints[0].addr;
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 9080);
	assert_int_equal(r0->dests[0].weight, 100);
	assert_int_equal(r0->retry.attempts, 2);
	assert_int_equal(r0->retry.retry_on, SN_RETRY_CONNECT_FAILURE | SN_RETRY_REFUSED_STREAM);
	assert_int_equal(r0->timeout_ms, 0);

	const struct sn_http_route *r1 = &vh->routes[1];
	assert_int_equal(r1->n_matches, 0);
	c = dest_cluster(s, r1, 0);
	assert_string_equal(c->subset, "v3");
	assert_int_equal(c->n_endpoints, 1);
	/* WorkloadEntry.ports[http] overrides the service port */
	assert_string_equal(c->endpoints[0].address, "127.0.10.5:19080");

	const char *same[] = { "reviews:9080", "reviews.default", "reviews.default.svc.cluster.local:9080",
			       "REVIEWS.default.svc.cluster.local.", "reviews.default.svc", "reviews.default:9080" };
	for (size_t i = 0; i < SN_ARRAY_LEN(same); i++) {
		const struct sn_vhost *v = sn_snapshot_find_vhost(s, sn_str_make(same[i], strlen(same[i])), &port);
		if (v != vh)
			fail_msg("find_vhost(%s)", same[i]);
		assert_int_equal(port, 9080);
	}
	assert_null(sn_snapshot_find_vhost(s, SN_STR_LIT("reviews:9081"), &port));
	assert_null(sn_snapshot_find_vhost(s, SN_STR_LIT("127.0.10.5:9080"), &port));
	assert_null(sn_snapshot_find_vhost(s, SN_STR_LIT("[::1]:9080"), &port));
	assert_null(sn_snapshot_find_vhost(s, SN_STR_LIT("nosuch"), &port));
	assert_null(sn_snapshot_find_vhost(s, SN_STR_LIT("reviews.other"), &port));

	/* services without a VirtualService get a catch-all to the default cluster */
	vh = sn_snapshot_find_vhost(s, SN_STR_LIT("ratings:9080"), &port);
	assert_non_null(vh);
	assert_int_equal(vh->n_routes, 1);
	c = dest_cluster(s, &vh->routes[0], 0);
	assert_null(c->subset);
	assert_string_equal(c->name, "outbound|9080||ratings.default.svc.cluster.local");
	assert_int_equal(c->lb, SN_LB_P2C_EWMA);
	assert_int_equal(c->connect_timeout_ms, 1000);
	const struct sn_service *svc = sn_snapshot_find_service(s, "ratings.default.svc.cluster.local");
	assert_non_null(svc);
	assert_int_equal(svc->ports[0].default_cluster, vh->routes[0].dests[0].cluster);
	assert_string_equal(svc->ports[0].protocol, "http");
	sn_snapshot_unref(s);
}

static void test_weights_80_20(void **state)
{
	(void)state;
	const char *files[] = { "destination-rule-all.yaml", "virtual-service-reviews-80-20.yaml", NULL };
	struct sn_snapshot *s = build(files, &pp_id);
	const struct sn_vhost *vh = sn_snapshot_find_vhost(s, SN_STR_LIT("reviews"), NULL);
	assert_non_null(vh);
	assert_int_equal(vh->n_routes, 1);
	const struct sn_http_route *r = &vh->routes[0];
	assert_int_equal(r->n_dests, 2);
	assert_int_equal(r->dests[0].weight, 80);
	assert_int_equal(r->dests[1].weight, 20);
	assert_int_equal(r->total_weight, 100);
	assert_string_equal(dest_cluster(s, r, 0)->subset, "v1");
	assert_string_equal(dest_cluster(s, r, 1)->subset, "v2");
	sn_snapshot_unref(s);
}

static void test_fault_delay_and_abort(void **state)
{
	(void)state;
	const char *files[] = { "destination-rule-all.yaml", "virtual-service-ratings-test-delay.yaml", NULL };
	struct sn_snapshot *s = build(files, &pp_id);
	const struct sn_vhost *vh = sn_snapshot_find_vhost(s, SN_STR_LIT("ratings"), NULL);
	assert_non_null(vh);
	assert_int_equal(vh->n_routes, 2);
	assert_int_equal(vh->routes[0].fault.delay_ms, 7000);
	assert_true(vh->routes[0].fault.delay_percent == 100.0);
	assert_int_equal(vh->routes[0].fault.abort_status, 0);
	assert_int_equal(vh->routes[1].fault.delay_ms, 0);
	sn_snapshot_unref(s);

	const char *files2[] = { "destination-rule-all.yaml", "virtual-service-ratings-test-abort.yaml", NULL };
	s = build(files2, &pp_id);
	vh = sn_snapshot_find_vhost(s, SN_STR_LIT("ratings.default.svc.cluster.local"), NULL);
	assert_non_null(vh);
	assert_int_equal(vh->routes[0].fault.abort_status, 500);
	assert_true(vh->routes[0].fault.abort_percent == 100.0);
	sn_snapshot_unref(s);
}

static void test_gateway_bound_and_service_entry(void **state)
{
	(void)state;
	const char *files[] = { "bookinfo-gateway.yaml", "egress-rule-google-apis.yaml", NULL };
	struct sn_snapshot *s = build(files, &pp_id);
	/* the gateway-only VS ("*") is not applied to sidecars */
	assert_null(sn_snapshot_find_vhost(s, SN_STR_LIT("example.com"), NULL));
	/* the googleapis VS routes port 80 of a ServiceEntry host (DNS, not
	 * resolved yet) to its port 443: the rule is kept, with no endpoints */
	uint16_t port = 0;
	const struct sn_vhost *vh = sn_snapshot_find_vhost(s, SN_STR_LIT("www.googleapis.com"), &port);
	assert_non_null(vh);
	assert_int_equal(port, 80);
	assert_int_equal(vh->n_routes, 1);
	const struct sn_cluster *c = dest_cluster(s, &vh->routes[0], 0);
	assert_string_equal(c->name, "outbound|443||www.googleapis.com");
	assert_int_equal(c->n_endpoints, 0);
	assert_int_equal(c->lb, SN_LB_ROUND_ROBIN);
	sn_snapshot_unref(s);
}

static struct sn_snapshot *build_text(const char *text, const struct sn_proxy_identity *id, struct sn_diags *d)
{
	struct sn_config_set set;
	sn_config_set_init(&set);
	sn_diags_init(d);
	load_registry(&set, d);
	return build_snapshot_in(&set, text, id, d);
}

static const struct sn_cluster *cluster_named(const struct sn_snapshot *s, const char *name)
{
	for (size_t i = 0; i < s->n_clusters; i++)
		if (!strcmp(s->clusters[i].name, name))
			return &s->clusters[i];
	fail_msg("no cluster %s", name);
	return NULL;
}

static void test_outlier_detection(void **state)
{
	(void)state;
	const char *text =
		"apiVersion: networking.istio.io/v1\n"
		"kind: DestinationRule\n"
		"metadata: {name: reviews}\n"
		"spec:\n"
		"  host: reviews\n"
		"  trafficPolicy:\n"
		"    outlierDetection: {consecutive5xxErrors: 3, interval: 2s, baseEjectionTime: 1m}\n"
		"  subsets:\n"
		"  - name: v1\n"
		"    labels: {version: v1}\n"
		"    trafficPolicy:\n"
		"      outlierDetection: {consecutiveGatewayErrors: 2, maxEjectionPercent: 50, minHealthPercent: 30,\n"
		"                         splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 4}\n"
		"  - name: v2\n"
		"    labels: {version: v2}\n"
		"---\n"
		"apiVersion: networking.istio.io/v1\n"
		"kind: VirtualService\n"
		"metadata: {name: reviews}\n"
		"spec:\n"
		"  hosts: [reviews]\n"
		"  http:\n"
		"  - route:\n"
		"    - {destination: {host: reviews, subset: v1}, weight: 50}\n"
		"    - {destination: {host: reviews, subset: v2}, weight: 50}\n";
	struct sn_diags d;
	struct sn_snapshot *s = build_text(text, &pp_id, &d);
	sn_diags_free(&d);
	const struct sn_outlier_policy *o = &cluster_named(s, "outbound|9080||reviews.default.svc.cluster.local")->outlier;
	assert_true(o->enabled);
	assert_int_equal(o->consecutive_5xx, 3);
	assert_int_equal(o->consecutive_gateway, 0);
	assert_int_equal(o->interval_ms, 2000);
	assert_int_equal(o->base_ejection_ms, 60000);
	assert_int_equal(o->max_ejection_pct, 10);   /* Istio's defaults for the rest */
	assert_int_equal(o->min_health_pct, 0);
	/* a subset's outlierDetection replaces the rule's as a whole */
	o = &cluster_named(s, "outbound|9080|v1|reviews.default.svc.cluster.local")->outlier;
	assert_int_equal(o->consecutive_5xx, 5);
	assert_int_equal(o->consecutive_gateway, 2);
	assert_int_equal(o->interval_ms, 10000);
	assert_int_equal(o->base_ejection_ms, 30000);
	assert_int_equal(o->max_ejection_pct, 50);
	assert_int_equal(o->min_health_pct, 30);
	assert_true(o->split_local);
	assert_int_equal(o->consecutive_local, 4);
	o = &cluster_named(s, "outbound|9080|v2|reviews.default.svc.cluster.local")->outlier;
	assert_int_equal(o->consecutive_5xx, 3);   /* v2 has none of its own: the rule's */
	/* no outlierDetection: none */
	assert_false(cluster_named(s, "outbound|9080||ratings.default.svc.cluster.local")->outlier.enabled);
	sn_snapshot_unref(s);

	/* refusals name the field */
	struct sn_config_set set;
	sn_config_set_init(&set);
	sn_diags_init(&d);
	const char *bad = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
			  "spec:\n  host: reviews\n  trafficPolicy:\n    outlierDetection:\n"
			  "      consecutiveErrors: 5\n      interval: 0s\n      maxEjectionPercent: 120\n";
	assert_int_not_equal(sn_config_load_text(&set, "bad.yaml", bad, strlen(bad), &d), 0);
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:8:", "outlierDetection.consecutiveErrors", "consecutive5xxErrors");
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:9:", "outlierDetection.interval", "at least 1ms");
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:10:", "outlierDetection.maxEjectionPercent");
	sn_diags_free(&d);
	sn_config_set_free(&set);
}

static void test_rich_virtual_service(void **state)
{
	(void)state;
	const char *text =
		"apiVersion: networking.istio.io/v1beta1\n"
		"kind: DestinationRule\n"
		"metadata: {name: reviews}\n"
		"spec:\n"
		"  host: reviews.default.svc.cluster.local\n"
		"  trafficPolicy:\n"
		"    loadBalancer: {simple: LEAST_CONN}\n"
		"    connectionPool:\n"
		"      tcp: {maxConnections: 100, connectTimeout: 250ms}\n"
		"      http: {http1MaxPendingRequests: 10, maxRequestsPerConnection: 5, idleTimeout: 30s}\n"
		"  subsets:\n"
		"  - name: v1\n"
		"    labels: {version: v1}\n"
		"    trafficPolicy:\n"
		"      loadBalancer: {simple: ROUND_ROBIN}\n"
		"  - name: v2\n"
		"    labels: {version: v2}\n"
		"---\n"
		"apiVersion: networking.istio.io/v1alpha3\n"
		"kind: VirtualService\n"
		"metadata: {name: reviews}\n"
		"spec:\n"
		"  hosts: [reviews]\n"
		"  http:\n"
		"  - name: canary\n"
		"    match:\n"
		"    - uri: {prefix: /API}\n"
		"      ignoreUriCase: true\n"
		"      method: {exact: GET}\n"
		"      headers:\n"
		"        X-Canary: {}\n"
		"        cookie: {regex: \"^(.*?;)?(user=\\\\d+)(;.*)?$\"}\n"
		"      queryParams: {debug: {exact: \"1\"}}\n"
		"      withoutHeaders: {x-skip: {}}\n"
		"    - sourceLabels: {app: nobody}\n"
		"    rewrite: {uri: /v2/, authority: reviews-v2}\n"
		"    timeout: 1.5s\n"
		"    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: \"5xx,503,reset,retriable-4xx\"}\n"
		"    headers:\n"
		"      request: {set: {X-Sinew: yes}, remove: [X-Debug]}\n"
		"      response: {add: {x-served-by: canary}}\n"
		"    route:\n"
		"    - destination: {host: reviews, subset: v1, port: {number: 9080}}\n"
		"      weight: 25\n"
		"    - destination: {host: reviews.default.svc.cluster.local, subset: v2}\n"
		"      weight: 75\n"
		"      headers: {request: {set: {x-v: \"2\"}}}\n"
		"  - match:\n"
		"    - sourceLabels: {app: nobody}\n"
		"    route:\n"
		"    - destination: {host: reviews}\n"
		"  - match:\n"
		"    - uri: {exact: /health}\n"
		"    directResponse: {status: 200, body: {string: \"ok\\n\"}}\n"
		"  - route:\n"
		"    - destination: {host: ratings}\n"
		"    retries: {attempts: 0}\n";
	struct sn_diags d;
	struct sn_snapshot *s = build_text(text, &pp_id, &d);
	assert_diag(&d, SN_DIAG_WARNING, "t.yaml:38:", "spec.http[0].retries.retryOn", "\"retriable-4xx\"");
	sn_diags_free(&d);

	const struct sn_vhost *vh = sn_snapshot_find_vhost(s, SN_STR_LIT("reviews"), NULL);
	assert_non_null(vh);
	/* the rule whose only match needs sourceLabels app=nobody is gone */
	assert_int_equal(vh->n_routes, 3);
	const struct sn_http_route *r = &vh->routes[0];
	assert_string_equal(r->name, "canary");
	assert_int_equal(r->n_matches, 1);
	const struct sn_route_match *m = &r->matches[0];
	assert_true(sn_str_match_test(&m->uri, SN_STR_LIT("/api/x")));
	assert_false(sn_str_match_test(&m->uri, SN_STR_LIT("/ap")));
	assert_int_equal(m->n_headers, 2);
	assert_string_equal(m->headers[0].name, "x-canary");
	assert_int_equal(m->headers[0].m.kind, SN_MATCH_PRESENT);
	assert_int_equal(m->headers[1].m.kind, SN_MATCH_REGEX);
	assert_true(sn_str_match_test(&m->headers[1].m, SN_STR_LIT("a=b;user=42")));
	assert_false(sn_str_match_test(&m->headers[1].m, SN_STR_LIT("a=b;user=x")));
	assert_int_equal(m->n_query_params, 1);
	assert_int_equal(m->n_without_headers, 1);
	assert_string_equal(r->rewrite_uri, "/v2/");
	assert_string_equal(r->rewrite_authority, "reviews-v2");
	assert_int_equal(r->timeout_ms, 1500);
	assert_int_equal(r->retry.attempts, 3);
	assert_int_equal(r->retry.per_try_timeout_ms, 500);
	assert_int_equal(r->retry.retry_on, SN_RETRY_5XX | SN_RETRY_RESET | SN_RETRY_RETRIABLE_CODES);
	assert_int_equal(r->retry.n_status_codes, 1);
	assert_int_equal(r->retry.status_codes[0], 503);
	assert_int_equal(r->request_ops.n_set, 1);
	assert_string_equal(r->request_ops.set[0].name, "x-sinew");
	assert_string_equal(r->request_ops.set[0].value, "yes");
	assert_string_equal(r->request_ops.remove[0].name, "x-debug");
	assert_int_equal(r->response_ops.n_add, 1);
	assert_int_equal(r->dests[1].request_ops.n_set, 1);
	const struct sn_cluster *c1 = dest_cluster(s, r, 0), *c2 = dest_cluster(s, r, 1);
	assert_string_equal(c1->subset, "v1");
	assert_int_equal(c1->lb, SN_LB_ROUND_ROBIN);   /* subset overrides */
	assert_int_equal(c1->max_connections, 100);    /* pool inherited */
	assert_int_equal(c2->lb, SN_LB_LEAST_REQUEST);
	assert_int_equal(c2->connect_timeout_ms, 250);
	assert_int_equal(c2->max_pending, 10);
	assert_int_equal(c2->max_requests_per_conn, 5);
	assert_int_equal(c2->idle_timeout_ms, 30000);

	r = &vh->routes[1];
	assert_int_equal(r->direct_status, 200);
	assert_string_equal(r->direct_body, "ok\n");
	assert_int_equal(r->n_dests, 0);
	r = &vh->routes[2];
	assert_int_equal(r->retry.attempts, 0);
	assert_string_equal(dest_cluster(s, r, 0)->service, "ratings.default.svc.cluster.local");
	assert_string_equal(r->name, "reviews.http[3]");

	/* the dump is JSON: parse it back with python if present, else check shape */
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	s->version = 7;
	sn_snapshot_dump_json(s, f);
	fclose(f);
	assert_non_null(strstr(buf, "\"version\":7"));
	assert_non_null(strstr(buf, "\"body\":\"ok\\n\""));
	assert_non_null(strstr(buf, "outbound|9080|v1|reviews.default.svc.cluster.local"));
	FILE *py = popen("python3 -c 'import json,sys; json.load(sys.stdin)' 2>/dev/null", "w");
	if (py != NULL) {
		fwrite(buf, 1, len, py);
		int st = pclose(py);
		if (st != 0 && st != 127 << 8)
			fail_msg("dump is not valid JSON: %s", buf);
	}
	free(buf);

	/* a second reference keeps it alive */
	sn_snapshot_ref(s);
	sn_snapshot_unref(s);
	assert_int_equal(s->refs, 1);
	sn_snapshot_unref(s);
}

static void test_source_labels_match_proxy(void **state)
{
	(void)state;
	const char *text =
		"apiVersion: networking.istio.io/v1\n"
		"kind: VirtualService\n"
		"metadata: {name: ratings}\n"
		"spec:\n"
		"  hosts: [ratings]\n"
		"  http:\n"
		"  - match:\n"
		"    - sourceLabels: {app: reviews, version: v2}\n"
		"    fault: {abort: {httpStatus: 503, percentage: {value: 50}}}\n"
		"    route:\n"
		"    - destination: {host: ratings}\n"
		"  - route:\n"
		"    - destination: {host: ratings}\n";
	struct sn_label lv[] = { { "app", "reviews" }, { "version", "v2" } };
	struct sn_labels labels = { lv, 2 };
	struct sn_proxy_identity id = { .service = "reviews", .namespace_ = "default", .labels = &labels };
	struct sn_diags d;
	struct sn_snapshot *s = build_text(text, &id, &d);
	sn_diags_free(&d);
	const struct sn_vhost *vh = sn_snapshot_find_vhost(s, SN_STR_LIT("ratings"), NULL);
	assert_int_equal(vh->n_routes, 2);
	assert_int_equal(vh->routes[0].fault.abort_status, 503);
	assert_true(vh->routes[0].fault.abort_percent == 50.0);
	sn_snapshot_unref(s);

	s = build_text(text, &pp_id, &d);
	sn_diags_free(&d);
	vh = sn_snapshot_find_vhost(s, SN_STR_LIT("ratings"), NULL);
	assert_int_equal(vh->n_routes, 1);
	sn_snapshot_unref(s);
}

static void test_duration(void **state)
{
	(void)state;
	uint32_t ms = 0;
	assert_int_equal(sn_parse_duration_ms("1s", &ms), 0);
	assert_int_equal(ms, 1000);
	assert_int_equal(sn_parse_duration_ms("0.5s", &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(sn_parse_duration_ms("100ms", &ms), 0);
	assert_int_equal(ms, 100);
	assert_int_equal(sn_parse_duration_ms("2m", &ms), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(sn_parse_duration_ms("1h", &ms), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(sn_parse_duration_ms("1h30m", &ms), 0);
	assert_int_equal(ms, 5400000);
	assert_int_equal(sn_parse_duration_ms("1.5s", &ms), 0);
	assert_int_equal(ms, 1500);
	assert_int_equal(sn_parse_duration_ms("500us", &ms), 0);
	assert_int_equal(ms, 1);
	assert_int_equal(sn_parse_duration_ms("0s", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(sn_parse_duration_ms("0.000000001h", &ms), 0);
	const char *bad[] = { "", "5", "s", "1x", "-1s", "1.s.s", "99999999999h", "721h", "1 s", ".s" };
	for (size_t i = 0; i < SN_ARRAY_LEN(bad); i++)
		if (sn_parse_duration_ms(bad[i], &ms) != SN_EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
}

/* portLevelSettings: Istio's egress-rule-google-apis.yaml originates TLS
 * on 443 only; a subset's port settings come last. */
static void test_port_level_settings(void **state)
{
	(void)state;
	static const char *const files[] = { "egress-rule-google-apis.yaml", NULL };
	struct sn_snapshot *s = build(files, &pp_id);
	const struct sn_cluster *c443 = cluster_named(s, "outbound|443||www.googleapis.com");
	const struct sn_cluster *c80 = cluster_named(s, "outbound|80||www.googleapis.com");
	assert_non_null(c443);
	assert_non_null(c80);
	assert_int_equal(c443->tls_mode, SN_CLUSTER_TLS_SIMPLE);
	assert_true(c443->tls_set);
	assert_int_equal(c80->tls_mode, SN_CLUSTER_TLS_DISABLE);
	assert_false(c80->tls_set);
	assert_int_equal(c80->lb, SN_LB_ROUND_ROBIN);   /* the rule's loadBalancer on every port */
	sn_snapshot_unref(s);

	static const char text[] =
		"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
		"spec:\n  host: reviews\n"
		"  trafficPolicy:\n    loadBalancer: {simple: RANDOM}\n"
		"    portLevelSettings:\n    - port: {number: 9080}\n      loadBalancer: {simple: LEAST_REQUEST}\n"
		"      connectionPool: {tcp: {maxConnections: 7}}\n"
		"  subsets:\n  - name: v1\n    labels: {version: v1}\n    trafficPolicy:\n"
		"      portLevelSettings:\n      - port: {number: 9080}\n        tls: {mode: ISTIO_MUTUAL}\n";
	struct sn_diags d;
	s = build_text(text, &pp_id, &d);
	const struct sn_cluster *all = cluster_named(s, "outbound|9080||reviews.default.svc.cluster.local");
	assert_non_null(all);
	assert_int_equal(all->lb, SN_LB_LEAST_REQUEST);
	assert_int_equal(all->max_connections, 7);
	assert_false(all->tls_set);
	sn_snapshot_unref(s);
	sn_diags_free(&d);

	static const char vs[] =
		"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
		"spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews, subset: v1}}]}]}\n---\n";
	char both[2048];
	snprintf(both, sizeof(both), "%s%s", vs, text);
	s = build_text(both, &pp_id, &d);
	const struct sn_cluster *v1 = cluster_named(s, "outbound|9080|v1|reviews.default.svc.cluster.local");
	assert_non_null(v1);
	assert_int_equal(v1->lb, SN_LB_LEAST_REQUEST);
	assert_int_equal(v1->tls_mode, SN_CLUSTER_TLS_ISTIO_MUTUAL);
	sn_snapshot_unref(s);
	sn_diags_free(&d);

	/* a port twice: an error at its line */
	static const char dup[] =
		"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
		"spec:\n  host: reviews\n  trafficPolicy:\n    portLevelSettings:\n"
		"    - port: {number: 80}\n    - port: {number: 80}\n";
	struct sn_config_set set;
	sn_config_set_init(&set);
	sn_diags_init(&d);
	assert_int_not_equal(sn_config_load_text(&set, "t.yaml", dup, strlen(dup), &d), 0);
	assert_diag(&d, SN_DIAG_ERROR, "t.yaml:9:", "portLevelSettings[1].port.number", "has settings already");
	sn_diags_free(&d);
	sn_config_set_free(&set);
}

/* tcp[] routes: a sidecar's opaque TCP for the host and port, by weight. */
static void test_tcp_routes(void **state)
{
	(void)state;
	static const char text[] =
		"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n"
		"spec: {host: reviews, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}\n"
		"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
		"spec:\n  hosts: [reviews]\n  tcp:\n"
		"  - match: [{port: 1234}]\n    route: [{destination: {host: reviews, subset: v2}}]\n"
		"  - match: [{port: 9080}]\n    route: [{destination: {host: reviews, subset: v1}, weight: 80},"
		" {destination: {host: reviews, subset: v2}, weight: 20}]\n"
		"  - route: [{destination: {host: reviews, subset: v2}}]\n";
	struct sn_diags d;
	struct sn_snapshot *s = build_text(text, &pp_id, &d);
	uint16_t port;
	const struct sn_vhost *v = sn_snapshot_find_vhost(s, sn_str_make("reviews:9080", 12), &port);
	assert_non_null(v);
	assert_non_null(v->tcp_route);
	assert_int_equal(v->tcp_route->n_dests, 2);
	assert_int_equal(v->tcp_route->total_weight, 100);
	assert_string_equal(s->clusters[v->tcp_route->dests[0].cluster].name,
			    "outbound|9080|v1|reviews.default.svc.cluster.local");
	assert_int_equal(v->tcp_route->dests[1].weight, 20);
	sn_snapshot_unref(s);
	sn_diags_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jason_v2_v3),
		cmocka_unit_test(test_weights_80_20),
		cmocka_unit_test(test_fault_delay_and_abort),
		cmocka_unit_test(test_gateway_bound_and_service_entry),
		cmocka_unit_test(test_rich_virtual_service),
		cmocka_unit_test(test_outlier_detection),
		cmocka_unit_test(test_source_labels_match_proxy),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_port_level_settings),
		cmocka_unit_test(test_tcp_routes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
