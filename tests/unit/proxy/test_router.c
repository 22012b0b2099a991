/* Unit tests for route selection and load balancing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "proxy/proxy.h"

static struct sn_route_request req(const char *method, const char *path, const char *query,
				   const struct sn_h1_header *h, size_t nh)
{
	struct sn_route_request r;
	memset(&r, 0, sizeof(r));
	r.method = sn_str_make(method, strlen(method));
	r.path = sn_str_make(path, strlen(path));
	if (query != NULL)
		r.query = sn_str_make(query, strlen(query));
	r.authority = SN_STR_LIT("reviews");
	r.port = 9080;
	r.headers = h;
	r.n_headers = nh;
	return r;
}

/* First matching rule wins; AND within a match, OR across matches; an
 * empty query with a query-param condition does not match (and does not
 * touch a NULL pointer: the bug UBSan found). */
static void test_first_match_wins(void **state)
{
	struct sn_kv_match hdr = { "end-user", { SN_MATCH_EXACT, "jason", NULL, 0 } };
	struct sn_kv_match qp = { "v", { SN_MATCH_PRESENT, NULL, NULL, 0 } };
	struct sn_route_match m_hdr = { 0 }, m_q = { 0 }, m_prefix = { 0 };
	struct sn_http_route routes[3];
	struct sn_vhost vh = { .host = "reviews.default.svc.cluster.local", .routes = routes, .n_routes = 3 };

	m_hdr.headers = &hdr;
	m_hdr.n_headers = 1;
	m_q.query_params = &qp;
	m_q.n_query_params = 1;
	m_prefix.uri = (struct sn_str_match){ SN_MATCH_PREFIX, "/api", NULL, 0 };
	memset(routes, 0, sizeof(routes));
	routes[0].name = "jason-or-query";
	routes[0].matches = (struct sn_route_match[]){ m_hdr, m_q };
	routes[0].n_matches = 2;
	routes[1].name = "api";
	routes[1].matches = &m_prefix;
	routes[1].n_matches = 1;
	routes[2].name = "default";

	struct sn_h1_header jason = { SN_STR_LIT("End-User"), SN_STR_LIT("jason") };
	struct sn_h1_header other = { SN_STR_LIT("end-user"), SN_STR_LIT("bob") };
	const struct sn_route_match *hit = NULL;
	struct sn_route_request r = req("GET", "/api/x", NULL, &jason, 1);
	assert_string_equal(sn_router_match(&vh, &r, &hit)->name, "jason-or-query");
	assert_ptr_equal(hit, &routes[0].matches[0]);
	r = req("GET", "/api/x", NULL, &other, 1);
	assert_string_equal(sn_router_match(&vh, &r, &hit)->name, "api");
	assert_ptr_equal(hit, &m_prefix);   /* a rewrite.uri replaces its prefix */
	r = req("GET", "/other", "a=1&v", NULL, 0);
	assert_string_equal(sn_router_match(&vh, &r, &hit)->name, "jason-or-query");
	assert_ptr_equal(hit, &routes[0].matches[1]);   /* the second match held */
	r = req("GET", "/other", NULL, NULL, 0);
	assert_string_equal(sn_router_match(&vh, &r, &hit)->name, "default");
	assert_null(hit);
	vh.n_routes = 2;
	assert_null(sn_router_match(&vh, &r, &hit));
}

static void test_weighted_pick(void **state)
{
	struct sn_route_dest d[3] = { { .cluster = 0, .weight = 50 }, { .cluster = 1, .weight = 30 },
				      { .cluster = 2, .weight = 20 } };
	struct sn_http_route route = { 0 };
	int seen[3] = { 0 };

	route.dests = d;
	route.n_dests = 3;
	route.total_weight = 100;
	for (uint64_t x = 0; x < 1000; x++)
		seen[sn_router_pick_dest(&route, x)->cluster]++;
	assert_int_equal(seen[0], 500);
	assert_int_equal(seen[1], 300);
	assert_int_equal(seen[2], 200);
}

/* Peak-EWMA reacts at once to a slow sample and P2C steers away. */
static void test_p2c_ewma_prefers_fast(void **state)
{
	struct sn_worker w;
	struct sn_host fast = { 0 }, slow = { 0 };
	struct sn_host *hosts[2] = { &fast, &slow };
	struct sn_cluster_state cs = { .hosts = hosts };
	struct sn_endpoint eps[2];
	struct sn_cluster c;
	int picks[2] = { 0 };

	memset(&w, 0, sizeof(w));
	w.rng = 42;
	memset(&c, 0, sizeof(c));
	memset(eps, 0, sizeof(eps));
	c.endpoints = eps;
	c.n_endpoints = 2;
	c.lb = SN_LB_P2C_EWMA;
	sn_lb_observe(&fast, 1.0, 0);
	sn_lb_observe(&slow, 200.0, 0);
	for (int i = 0; i < 100; i++)
		picks[sn_lb_pick(&w, &c, &cs)]++;
	assert_int_equal(picks[0], 100);
	c.lb = SN_LB_ROUND_ROBIN;
	picks[0] = picks[1] = 0;
	for (int i = 0; i < 100; i++)
		picks[sn_lb_pick(&w, &c, &cs)]++;
	assert_int_equal(picks[0], 50);
	assert_int_equal(picks[1], 50);
}

/* An endpoint without samples is probed first, but only one request at a
 * time until it answers. */
static void test_p2c_new_endpoint_probed_not_flooded(void **state)
{
	struct sn_worker w;
	struct sn_host known = { 0 }, fresh = { 0 };
	struct sn_host *hosts[2] = { &known, &fresh };
	struct sn_cluster_state cs = { .hosts = hosts };
	struct sn_endpoint eps[2];
	struct sn_cluster c;

	memset(&w, 0, sizeof(w));
	w.rng = 7;
	memset(&c, 0, sizeof(c));
	memset(eps, 0, sizeof(eps));
	c.endpoints = eps;
	c.n_endpoints = 2;
	c.lb = SN_LB_P2C_EWMA;
	sn_lb_observe(&known, 5.0, 0);
	assert_int_equal(sn_lb_pick(&w, &c, &cs), 1);
	fresh.active = 1;   /* the probe is in flight */
	assert_int_equal(sn_lb_pick(&w, &c, &cs), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_match_wins),
		cmocka_unit_test(test_weighted_pick),
		cmocka_unit_test(test_p2c_ewma_prefers_fast),
		cmocka_unit_test(test_p2c_new_endpoint_probed_not_flooded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
