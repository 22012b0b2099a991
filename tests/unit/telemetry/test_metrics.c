/* Unit tests for the request metrics store and Prometheus renderer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sinew/metrics.h"
#include "sinew/out.h"

/* ---- helpers ---- */

static char *render(struct sn_metrics *const *stores, size_t n,
		    const struct sn_metrics_process *proc, int istio)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	assert_non_null(f);
	sn_metrics_render(stores, n, proc, istio, f);
	assert_int_equal(fclose(f), 0);
	assert_non_null(out);
	return out;
}

static char *render1(struct sn_metrics *m)
{
	return render(&m, 1, NULL, 0);
}

/* Asserts that out holds line as a whole line; prints both on failure. */
static void expect_line_(const char *out, const char *line, const char *file, int ln)
{
	size_t n = strlen(line);

	for (const char *p = out; (p = strstr(p, line)) != NULL; p++) {
		if ((p == out || p[-1] == '\n') && p[n] == '\n')
			return;
	}
	print_error("%s:%d: line not found:\n  %s\nin output:\n%s\n", file, ln, line, out);
	fail();
}
#define expect_line(out, line) expect_line_((out), (line), __FILE__, __LINE__)

static void expect_no_substr_(const char *out, const char *s, const char *file, int ln)
{
	if (strstr(out, s)) {
		print_error("%s:%d: unexpected \"%s\" in output:\n%s\n", file, ln, s, out);
		fail();
	}
}
#define expect_no_substr(out, s) expect_no_substr_((out), (s), __FILE__, __LINE__)

static struct sn_metric_labels base_labels(void)
{
	struct sn_metric_labels l = {
		.reporter = "source",
		.source_workload = "web",
		.source_workload_namespace = "default",
		.source_principal = "spiffe://cluster.local/ns/default/sa/web",
		.source_app = "web",
		.source_version = "v1",
		.source_cluster = "Kubernetes",
		.destination_workload = "api",
		.destination_workload_namespace = "default",
		.destination_principal = "spiffe://cluster.local/ns/default/sa/api",
		.destination_app = "api",
		.destination_version = "v2",
		.destination_service = "api.default.svc.cluster.local",
		.destination_service_name = "api",
		.destination_service_namespace = "default",
		.destination_cluster = "Kubernetes",
		.request_protocol = "http",
		.response_code = 200,
		.grpc_response_status = NULL,
		.response_flags = "-",
		.connection_security_policy = "mutual_tls",
	};
	return l;
}

/* The label text base_labels() renders as, with response_code code. */
static const char *base_text(int code)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf),
		 "reporter=\"source\",source_workload=\"web\",source_workload_namespace=\"default\","
		 "source_principal=\"spiffe://cluster.local/ns/default/sa/web\",source_app=\"web\","
		 "source_version=\"v1\",source_cluster=\"Kubernetes\",destination_workload=\"api\","
		 "destination_workload_namespace=\"default\","
		 "destination_principal=\"spiffe://cluster.local/ns/default/sa/api\","
		 "destination_app=\"api\",destination_version=\"v2\","
		 "destination_service=\"api.default.svc.cluster.local\","
		 "destination_service_name=\"api\",destination_service_namespace=\"default\","
		 "destination_cluster=\"Kubernetes\","
		 "request_protocol=\"http\",response_code=\"%d\",grpc_response_status=\"unknown\","
		 "response_flags=\"-\",connection_security_policy=\"mutual_tls\"",
		 code);
	return buf;
}

static void expect_metric_(const char *out, const char *name, const char *labels,
			   const char *extra, const char *value, const char *file, int ln)
{
	char line[2048];

	snprintf(line, sizeof(line), "%s{%s%s} %s", name, labels, extra, value);
	expect_line_(out, line, file, ln);
}
#define expect_metric(out, name, labels, extra, value) \
	expect_metric_((out), (name), (labels), (extra), (value), __FILE__, __LINE__)

/* Sum of the values of every sample line that starts with prefix. */
static uint64_t sum_samples(const char *out, const char *prefix)
{
	uint64_t total = 0;
	size_t n = strlen(prefix);

	for (const char *p = out; *p;) {
		const char *eol = strchr(p, '\n');

		if (!eol)
			break;
		if (strncmp(p, prefix, n) == 0) {
			const char *sp = eol;

			while (sp > p && sp[-1] != ' ')
				sp--;
			total += strtoull(sp, NULL, 10);
		}
		p = eol + 1;
	}
	return total;
}

static size_t count_lines_with(const char *out, const char *prefix)
{
	size_t count = 0, n = strlen(prefix);

	for (const char *p = out; *p;) {
		const char *eol = strchr(p, '\n');

		if (strncmp(p, prefix, n) == 0)
			count++;
		if (!eol)
			break;
		p = eol + 1;
	}
	return count;
}

/* ---- tests ---- */

static void test_render_one_series(void **state)
{
	struct sn_metrics *m = sn_metrics_new(0);
	struct sn_metric_labels l = base_labels();
	const char *t = base_text(200);
	char *out;

	assert_non_null(m);
	sn_metrics_record_request(m, &l, 3.0, 0, 20000);
	sn_metrics_record_request(m, &l, 700.25, 150, 5);
	out = render1(m);

	expect_line(out, "# HELP sinew_requests_total Requests completed, by source and destination.");
	expect_line(out, "# TYPE sinew_requests_total counter");
	expect_line(out, "# TYPE sinew_request_duration_milliseconds histogram");
	expect_line(out, "# TYPE sinew_request_bytes histogram");
	expect_line(out, "# TYPE sinew_response_bytes histogram");
	expect_metric(out, "sinew_requests_total", t, "", "2");

	expect_metric(out, "sinew_request_duration_milliseconds_bucket", t, ",le=\"0.5\"", "0");
	expect_metric(out, "sinew_request_duration_milliseconds_bucket", t, ",le=\"1\"", "0");
	expect_metric(out, "sinew_request_duration_milliseconds_bucket", t, ",le=\"5\"", "1");
	expect_metric(out, "sinew_request_duration_milliseconds_bucket", t, ",le=\"500\"", "1");
	expect_metric(out, "sinew_request_duration_milliseconds_bucket", t, ",le=\"1000\"", "2");
	expect_metric(out, "sinew_request_duration_milliseconds_bucket", t, ",le=\"3600000\"", "2");
	expect_metric(out, "sinew_request_duration_milliseconds_bucket", t, ",le=\"+Inf\"", "2");
	expect_metric(out, "sinew_request_duration_milliseconds_sum", t, "", "703.250");
	expect_metric(out, "sinew_request_duration_milliseconds_count", t, "", "2");

	expect_metric(out, "sinew_request_bytes_bucket", t, ",le=\"1\"", "1");
	expect_metric(out, "sinew_request_bytes_bucket", t, ",le=\"100\"", "1");
	expect_metric(out, "sinew_request_bytes_bucket", t, ",le=\"1000\"", "2");
	expect_metric(out, "sinew_request_bytes_bucket", t, ",le=\"1000000000\"", "2");
	expect_metric(out, "sinew_request_bytes_bucket", t, ",le=\"+Inf\"", "2");
	expect_metric(out, "sinew_request_bytes_sum", t, "", "150");
	expect_metric(out, "sinew_request_bytes_count", t, "", "2");

	expect_metric(out, "sinew_response_bytes_bucket", t, ",le=\"10\"", "1");
	expect_metric(out, "sinew_response_bytes_bucket", t, ",le=\"10000\"", "1");
	expect_metric(out, "sinew_response_bytes_bucket", t, ",le=\"100000\"", "2");
	expect_metric(out, "sinew_response_bytes_sum", t, "", "20005");

	/* 19 finite duration buckets + Inf; 10 byte buckets + Inf. */
	assert_int_equal(count_lines_with(out, "sinew_request_duration_milliseconds_bucket{"), 20);
	assert_int_equal(count_lines_with(out, "sinew_request_bytes_bucket{"), 11);
	expect_no_substr(out, "istio_");
	expect_line(out, "sinew_metrics_series 1");
	expect_line(out, "sinew_metrics_series_overflow_total 0");
	free(out);
	sn_metrics_free(m);
}

static void test_null_is_unknown_and_merges(void **state)
{
	struct sn_metrics *m = sn_metrics_new(16);
	struct sn_metric_labels l = { 0 };
	struct sn_metric_labels u = {
		.reporter = "unknown", .source_workload = "unknown",
		.source_workload_namespace = "unknown", .source_principal = "unknown",
		.source_app = "unknown", .source_version = "unknown", .source_cluster = "unknown",
		.destination_workload = "unknown", .destination_workload_namespace = "unknown",
		.destination_principal = "unknown", .destination_app = "unknown",
		.destination_version = "unknown", .destination_service = "unknown",
		.destination_service_name = "unknown", .destination_service_namespace = "unknown",
		.destination_cluster = "unknown", .request_protocol = "unknown",
		.response_code = -5, .grpc_response_status = "unknown",
		.response_flags = "unknown", .connection_security_policy = "unknown",
	};
	char *out;

	sn_metrics_record_request(m, &l, 1, 1, 1);
	sn_metrics_record_request(m, &u, 1, 1, 1);
	out = render1(m);
	expect_line(out,
		    "sinew_requests_total{reporter=\"unknown\",source_workload=\"unknown\","
		    "source_workload_namespace=\"unknown\",source_principal=\"unknown\","
		    "source_app=\"unknown\",source_version=\"unknown\",source_cluster=\"unknown\","
		    "destination_workload=\"unknown\",destination_workload_namespace=\"unknown\","
		    "destination_principal=\"unknown\",destination_app=\"unknown\","
		    "destination_version=\"unknown\",destination_service=\"unknown\","
		    "destination_service_name=\"unknown\",destination_service_namespace=\"unknown\","
		    "destination_cluster=\"unknown\",request_protocol=\"unknown\","
		    "response_code=\"0\",grpc_response_status=\"unknown\",response_flags=\"unknown\","
		    "connection_security_policy=\"unknown\"} 2");
	expect_line(out, "sinew_metrics_series 1");
	free(out);
	sn_metrics_free(m);
}

static void test_label_escaping(void **state)
{
	struct sn_metrics *m = sn_metrics_new(16);
	struct sn_metric_labels l = base_labels();
	char *out;

	l.source_workload = "a\\b\"c\nd";
	l.destination_workload = "bad\xff" "byte";
	l.destination_app = "caf\xc3\xa9";   /* valid UTF-8 passes through */
	sn_metrics_record_request(m, &l, 1, 1, 1);
	out = render1(m);
	assert_non_null(strstr(out, ",source_workload=\"a\\\\b\\\"c\\nd\","));
	assert_non_null(strstr(out, ",destination_workload=\"bad\xef\xbf\xbd" "byte\","));
	assert_non_null(strstr(out, ",destination_app=\"caf\xc3\xa9\","));
	free(out);
	sn_metrics_free(m);
}

static void test_bucket_boundaries(void **state)
{
	struct sn_metrics *m = sn_metrics_new(16);
	struct sn_metric_labels l = base_labels();
	const char *t = base_text(200);
	char *out;

	/* A value equal to a bound belongs to that bucket (le = "<="). */
	sn_metrics_record_request(m, &l, 0.5, 10, 1000000000);
	sn_metrics_record_request(m, &l, 0.6, 11, 1000000001);
	sn_metrics_record_request(m, &l, 3600001.0, 0, 0);
	sn_metrics_record_request(m, &l, -4.0, 1, 1);   /* negative counts as 0 */
	out = render1(m);
	expect_metric(out, "sinew_request_duration_milliseconds_bucket", t, ",le=\"0.5\"", "2");
	expect_metric(out, "sinew_request_duration_milliseconds_bucket", t, ",le=\"1\"", "3");
	expect_metric(out, "sinew_request_duration_milliseconds_bucket", t, ",le=\"3600000\"", "3");
	expect_metric(out, "sinew_request_duration_milliseconds_bucket", t, ",le=\"+Inf\"", "4");
	expect_metric(out, "sinew_request_duration_milliseconds_sum", t, "", "3600002.100");
	expect_metric(out, "sinew_request_bytes_bucket", t, ",le=\"1\"", "2");
	expect_metric(out, "sinew_request_bytes_bucket", t, ",le=\"10\"", "3");
	expect_metric(out, "sinew_request_bytes_bucket", t, ",le=\"100\"", "4");
	expect_metric(out, "sinew_response_bytes_bucket", t, ",le=\"1000000000\"", "3");
	expect_metric(out, "sinew_response_bytes_bucket", t, ",le=\"+Inf\"", "4");
	expect_metric(out, "sinew_response_bytes_sum", t, "", "2000000002");
	free(out);
	sn_metrics_free(m);
}

static void test_cardinality_bound(void **state)
{
	struct sn_metrics *m = sn_metrics_new(3);
	struct sn_metric_labels l = base_labels();
	char *out;

	for (int code = 200; code < 210; code++) {
		l.response_code = code;
		sn_metrics_record_request(m, &l, 1, 1, 1);
	}
	/* Label sets already in the table keep recording there. */
	l.response_code = 201;
	sn_metrics_record_request(m, &l, 1, 1, 1);
	out = render1(m);
	expect_metric(out, "sinew_requests_total", base_text(200), "", "1");
	expect_metric(out, "sinew_requests_total", base_text(201), "", "2");
	expect_metric(out, "sinew_requests_total", base_text(202), "", "1");
	expect_no_substr(out, "response_code=\"203\"");
	expect_line(out,
		    "sinew_requests_total{reporter=\"overflow\",source_workload=\"overflow\","
		    "source_workload_namespace=\"overflow\",source_principal=\"overflow\","
		    "source_app=\"overflow\",source_version=\"overflow\",source_cluster=\"overflow\","
		    "destination_workload=\"overflow\",destination_workload_namespace=\"overflow\","
		    "destination_principal=\"overflow\",destination_app=\"overflow\","
		    "destination_version=\"overflow\",destination_service=\"overflow\","
		    "destination_service_name=\"overflow\",destination_service_namespace=\"overflow\","
		    "destination_cluster=\"overflow\",request_protocol=\"overflow\","
		    "response_code=\"overflow\",grpc_response_status=\"overflow\","
		    "response_flags=\"overflow\",connection_security_policy=\"overflow\"} 7");
	expect_line(out, "# TYPE sinew_metrics_series_overflow_total counter");
	expect_line(out, "sinew_metrics_series_overflow_total 7");
	expect_line(out, "sinew_metrics_series 3");
	assert_int_equal(sum_samples(out, "sinew_requests_total{"), 11);
	free(out);
	sn_metrics_free(m);
}

static void test_many_series(void **state)
{
	enum { N = 5000 };
	struct sn_metrics *m = sn_metrics_new(N);
	struct sn_metric_labels l = base_labels();
	char name[32];
	char *out;

	/* Twice over, so every lookup after the first pass must hit. */
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < N; i++) {
			snprintf(name, sizeof(name), "w%d", i);
			l.source_workload = name;
			sn_metrics_record_request(m, &l, 1, 1, 1);
		}
	}
	out = render1(m);
	expect_line(out, "sinew_metrics_series 5000");
	expect_line(out, "sinew_metrics_series_overflow_total 0");
	assert_int_equal(count_lines_with(out, "sinew_requests_total{"), N);
	assert_int_equal(sum_samples(out, "sinew_requests_total{"), 2 * N);
	free(out);
	sn_metrics_free(m);
}

/* The same pointers with new contents are a new label set: the lookup
 * may start from the pointers but must not trust them. */
static void test_reused_label_buffer(void **state)
{
	struct sn_metrics *m = sn_metrics_new(16);
	struct sn_metric_labels l = base_labels();
	char ver[8] = "v1";
	char *out;

	l.destination_version = ver;
	sn_metrics_record_request(m, &l, 1, 1, 1);
	sn_metrics_record_request(m, &l, 1, 1, 1);
	snprintf(ver, sizeof(ver), "v22");
	sn_metrics_record_request(m, &l, 1, 1, 1);
	snprintf(ver, sizeof(ver), "v");     /* a prefix of both */
	sn_metrics_record_request(m, &l, 1, 1, 1);
	snprintf(ver, sizeof(ver), "v1");
	sn_metrics_record_request(m, &l, 1, 1, 1);
	out = render1(m);
	expect_line(out, "sinew_metrics_series 3");
	assert_int_equal(count_lines_with(out, "sinew_requests_total{"), 3);
	assert_non_null(strstr(out, "destination_version=\"v1\",destination_service="
				    "\"api.default.svc.cluster.local\",destination_service_name="
				    "\"api\",destination_service_namespace=\"default\","
				    "destination_cluster=\"Kubernetes\","
				    "request_protocol=\"http\",response_code=\"200\","
				    "grpc_response_status=\"unknown\",response_flags=\"-\","
				    "connection_security_policy=\"mutual_tls\"} 3\n"));
	assert_non_null(strstr(out, "destination_version=\"v22\""));
	assert_non_null(strstr(out, "destination_version=\"v\""));
	free(out);
	sn_metrics_free(m);
}

static void test_long_label_value_truncated(void **state)
{
	struct sn_metrics *m = sn_metrics_new(16);
	struct sn_metric_labels l = base_labels();
	char big[1000];
	char *out;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	l.source_principal = big;
	sn_metrics_record_request(m, &l, 1, 1, 1);
	big[500] = 'y';   /* differs only past the cut: same series */
	sn_metrics_record_request(m, &l, 1, 1, 1);
	out = render1(m);
	expect_line(out, "sinew_metrics_series 1");
	assert_int_equal(sum_samples(out, "sinew_requests_total{"), 2);
	assert_non_null(strstr(out, "xxxx\",source_app="));
	free(out);
	sn_metrics_free(m);
}

static void test_sum_across_stores(void **state)
{
	struct sn_metrics *w[3] = { sn_metrics_new(8), sn_metrics_new(1), sn_metrics_new(8) };
	struct sn_metric_labels l = base_labels();
	char *out;

	sn_metrics_record_request(w[0], &l, 2, 10, 100);
	sn_metrics_record_request(w[1], &l, 3, 20, 200);
	sn_metrics_record_request(w[2], &l, 4, 30, 300);
	l.response_code = 503;
	sn_metrics_record_request(w[2], &l, 4, 30, 300);
	sn_metrics_record_request(w[1], &l, 4, 30, 300);   /* w[1] is full: overflow */
	sn_metrics_record_request(w[0], &l, 4, 30, 300);
	sn_metrics_add(w[0], SN_CTR_DOWNSTREAM_CX_TOTAL, 5);
	sn_metrics_add(w[2], SN_CTR_DOWNSTREAM_CX_TOTAL, 7);

	out = render(w, 3, NULL, 0);
	expect_metric(out, "sinew_requests_total", base_text(200), "", "3");
	expect_metric(out, "sinew_request_duration_milliseconds_sum", base_text(200), "", "9.000");
	expect_metric(out, "sinew_request_bytes_sum", base_text(200), "", "60");
	expect_metric(out, "sinew_response_bytes_sum", base_text(200), "", "600");
	expect_metric(out, "sinew_requests_total", base_text(503), "", "2");
	assert_int_equal(count_lines_with(out, "sinew_requests_total{"), 3);
	assert_int_equal(count_lines_with(out, "sinew_requests_total{reporter=\"overflow\""), 1);
	expect_line(out, "sinew_metrics_series_overflow_total 1");
	expect_line(out, "sinew_downstream_connections_total 12");
	free(out);
	for (int i = 0; i < 3; i++)
		sn_metrics_free(w[i]);
}

/* The control link's stats message: series summed over the stores as a
 * scrape sums them, cumulative counts and per-bucket durations, the
 * overflow series left out, and a byte bound that takes whole series out. */
static void test_json_for_sinewd(void **state)
{
	struct sn_metrics *w[3] = { sn_metrics_new(8), sn_metrics_new(1), sn_metrics_new(8) };
	struct sn_metric_labels l = base_labels();
	struct sn_metrics_json_info info;
	struct sn_out o = { 0 };

	sn_metrics_record_request(w[0], &l, 2, 10, 100);
	sn_metrics_record_request(w[1], &l, 3, 20, 200);
	sn_metrics_record_request(w[2], &l, 4, 30, 300);
	l.response_code = 503;
	sn_metrics_record_request(w[2], &l, 0.25, 30, 300);
	sn_metrics_record_request(w[1], &l, 4, 30, 300);   /* w[1] is full: overflow, not sent */
	sn_metrics_add(w[0], SN_CTR_DOWNSTREAM_CX_TOTAL, 5);
	sn_metrics_add(w[2], SN_CTR_DOWNSTREAM_CX_TOTAL, 7);
	sn_metrics_add(w[2], SN_CTR_DOWNSTREAM_CX_ACTIVE, 2);

	assert_int_equal(sn_metrics_json(w, 3, 1u << 20, &o, &info), 0);
	assert_int_equal(info.series, 2);
	assert_int_equal(info.requests, 4);
	assert_int_equal(info.left_out, 0);
	if (strncmp(o.p, "\"durationBucketsMs\":[0.5,1,5,10,25,50,100,250,500,1000,2500,5000,10000,30000,60000,"
			 "300000,600000,1800000,3600000],\"requests\":[{\"reporter\":\"source\",", 130) != 0)
		fail_msg("unexpected start: %s", o.p);
	if (strstr(o.p, "\"destinationCluster\":\"Kubernetes\",\"protocol\":\"http\",\"responseCode\":200,"
			"\"grpcStatus\":null,\"responseFlags\":\"-\",\"connectionSecurityPolicy\":\"mutual_tls\","
			"\"count\":3,\"durationBuckets\":[0,0,3,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],"
			"\"durationSumMs\":9.000}") == NULL)
		fail_msg("the 200 series is not there whole: %s", o.p);
	if (strstr(o.p, "\"responseCode\":503,\"grpcStatus\":null,\"responseFlags\":\"-\","
			"\"connectionSecurityPolicy\":\"mutual_tls\",\"count\":1,\"durationBuckets\":"
			"[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],\"durationSumMs\":0.250}]") == NULL)
		fail_msg("the 503 series is not there whole: %s", o.p);
	expect_no_substr(o.p, "overflow");
	assert_int_equal(sn_metrics_counter_sum(w, 3, SN_CTR_DOWNSTREAM_CX_TOTAL), 12);
	assert_int_equal(sn_metrics_counter_sum(w, 3, SN_CTR_DOWNSTREAM_CX_ACTIVE), 2);
	sn_out_free(&o);

	/* room for the buckets and one series: the second is left out whole */
	size_t one = 160 + 800;
	assert_int_equal(sn_metrics_json(w, 3, one, &o, &info), 0);
	assert_int_equal(info.series, 1);
	assert_int_equal(info.left_out, 1);
	assert_true(o.len <= one);
	/* no route series: an empty "routes" after the requests */
	static const char tail[] = "}],\"routes\":[]";
	assert_true(o.len > strlen(tail) && !strcmp(o.p + o.len - strlen(tail), tail));
	sn_out_free(&o);
	for (int i = 0; i < 3; i++)
		sn_metrics_free(w[i]);
}

/* Route series: summed over stores by labels, [DEFAULT] with empty
 * route labels (null in the message), successes counted, the table's
 * bound counted as overflow; and the byte bound takes whole series out. */
static void test_route_series(void **state)
{
	struct sn_metrics *w[2] = { sn_metrics_new(8), sn_metrics_new(8) };
	/* r as from snapshot 7 (its pointers name its series), d without one */
	struct sn_route_labels r = { "default", "reviews", "ratings", "reviews.default.svc.cluster.local", "reviews",
				     "default", 7 };
	struct sn_route_labels d = { NULL, NULL, NULL, "details.default.svc.cluster.local", "details", "default", 0 };
	struct sn_metrics_json_info info;
	struct sn_out o = { 0 };
	char name[32], *out;

	sn_metrics_record_route(w[0], &r, 1, 2);
	sn_metrics_record_route(w[1], &r, 0, 30);
	/* the same strings at other addresses (another snapshot): the same series */
	char route[] = "ratings", svc[] = "reviews.default.svc.cluster.local";
	struct sn_route_labels r2 = r;
	r2.route = route;
	r2.destination_service = svc;
	r2.gen = 8;
	sn_metrics_record_route(w[1], &r2, 1, 0.25);
	sn_metrics_record_route(w[0], &d, 1, 7);
	out = render(w, 2, NULL, 0);
	const char *rl = "virtual_service_namespace=\"default\",virtual_service=\"reviews\",route=\"ratings\","
			 "destination_service=\"reviews.default.svc.cluster.local\",destination_service_name=\"reviews\","
			 "destination_service_namespace=\"default\"";
	char line[512];
	expect_line(out, "# TYPE sinew_route_requests_total counter");
	snprintf(line, sizeof(line), "sinew_route_requests_total{%s} 3", rl);
	expect_line(out, line);
	snprintf(line, sizeof(line), "sinew_route_responses_total{%s,classification=\"success\"} 2", rl);
	expect_line(out, line);
	snprintf(line, sizeof(line), "sinew_route_responses_total{%s,classification=\"failure\"} 1", rl);
	expect_line(out, line);
	snprintf(line, sizeof(line), "sinew_route_request_duration_milliseconds_bucket{%s,le=\"0.5\"} 1", rl);
	expect_line(out, line);
	snprintf(line, sizeof(line), "sinew_route_request_duration_milliseconds_sum{%s} 32.250", rl);
	expect_line(out, line);
	expect_line(out, "sinew_route_requests_total{virtual_service_namespace=\"\",virtual_service=\"\",route=\"\","
			 "destination_service=\"details.default.svc.cluster.local\",destination_service_name=\"details\","
			 "destination_service_namespace=\"default\"} 1");
	expect_line(out, "sinew_route_series 2");
	expect_line(out, "sinew_route_series_overflow_total 0");
	free(out);

	assert_int_equal(sn_metrics_json(w, 2, 1u << 20, &o, &info), 0);
	assert_int_equal(info.route_series, 2);
	assert_int_equal(info.routes_left_out, 0);
	if (strstr(o.p, ",\"routes\":[{\"virtualServiceNamespace\":\"default\",\"virtualService\":\"reviews\","
			"\"route\":\"ratings\",\"destinationService\":\"reviews.default.svc.cluster.local\","
			"\"destinationServiceName\":\"reviews\",\"destinationServiceNamespace\":\"default\",\"count\":3,"
			"\"successes\":2,\"durationBuckets\":[1,0,1,0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}") == NULL)
		fail_msg("the ratings route is not there whole: %s", o.p);
	if (strstr(o.p, "{\"virtualServiceNamespace\":null,\"virtualService\":null,\"route\":null,") == NULL)
		fail_msg("[DEFAULT] is not there: %s", o.p);
	size_t whole = o.len;
	sn_out_free(&o);
	/* one route series less room: the last is left out, the array closed */
	assert_int_equal(sn_metrics_json(w, 2, whole - 10, &o, &info), 0);
	assert_int_equal(info.route_series, 1);
	assert_int_equal(info.routes_left_out, 1);
	assert_true(o.len <= whole - 10);
	assert_int_equal(o.p[o.len - 1], ']');
	sn_out_free(&o);

	/* the table's bound: past it, counted and not kept (one buffer
	 * rewritten each time: no snapshot's strings, so no generation) */
	r.gen = 0;
	for (int i = 0; i < SN_METRICS_MAX_ROUTE_SERIES + 5; i++) {
		snprintf(name, sizeof(name), "r%d", i);
		r.route = name;
		sn_metrics_record_route(w[0], &r, 1, 1);
	}
	out = render(w, 1, NULL, 0);
	snprintf(line, sizeof(line), "sinew_route_series %d", SN_METRICS_MAX_ROUTE_SERIES);
	expect_line(out, line);
	expect_line(out, "sinew_route_series_overflow_total 7");   /* r1022 .. r1028: the table held 2 already */
	free(out);
	for (int i = 0; i < 2; i++)
		sn_metrics_free(w[i]);
}

/* TCP series: Istio's tcp families, summed over stores, without
 * response_code and grpc_response_status; never a request, and not in
 * sinewd's JSON. */
static void test_tcp_series(void **state)
{
	struct sn_metrics *w[2] = { sn_metrics_new(8), sn_metrics_new(8) };
	struct sn_metric_labels l = base_labels();
	struct sn_metrics_json_info info;
	struct sn_out o = { 0 };
	static const char t[] =
		"reporter=\"source\",source_workload=\"web\",source_workload_namespace=\"default\","
		"source_principal=\"spiffe://cluster.local/ns/default/sa/web\",source_app=\"web\","
		"source_version=\"v1\",source_cluster=\"Kubernetes\",destination_workload=\"api\","
		"destination_workload_namespace=\"default\","
		"destination_principal=\"spiffe://cluster.local/ns/default/sa/api\","
		"destination_app=\"api\",destination_version=\"v2\","
		"destination_service=\"api.default.svc.cluster.local\","
		"destination_service_name=\"api\",destination_service_namespace=\"default\","
		"destination_cluster=\"Kubernetes\",request_protocol=\"tcp\","
		"response_flags=\"-\",connection_security_policy=\"mutual_tls\"";

	sn_metrics_record_tcp(w[0], &l, 1, 0, 0, 0);
	sn_metrics_record_tcp(w[0], &l, 0, 0, 100, 7);
	sn_metrics_record_tcp(w[0], &l, 0, 1, 5, 3);
	sn_metrics_record_tcp(w[1], &l, 1, 0, 0, 0);   /* another worker: summed */
	sn_metrics_record_request(w[1], &l, 2, 10, 100);
	char *out = render(w, 2, NULL, 1);
	expect_line(out, "# TYPE sinew_tcp_connections_opened_total counter");
	expect_metric(out, "sinew_tcp_connections_opened_total", t, "", "2");
	expect_metric(out, "sinew_tcp_connections_closed_total", t, "", "1");
	expect_metric(out, "sinew_tcp_sent_bytes_total", t, "", "105");
	expect_metric(out, "sinew_tcp_received_bytes_total", t, "", "10");
	expect_metric(out, "istio_tcp_received_bytes_total", t, "", "10");
	/* the one request is the only request series */
	assert_int_equal(count_lines_with(out, "sinew_requests_total{"), 1);
	expect_metric(out, "sinew_requests_total", base_text(200), "", "1");
	assert_int_equal(count_lines_with(out, "sinew_tcp_connections_opened_total{"), 1);
	free(out);
	assert_int_equal(sn_metrics_json(w, 2, 1u << 20, &o, &info), 0);
	assert_int_equal(info.series, 1);
	expect_no_substr(o.p, "\"tcp\"");
	sn_out_free(&o);
	for (int i = 0; i < 2; i++)
		sn_metrics_free(w[i]);
}

static void test_counters_and_process(void **state)
{
	struct sn_metrics *w[2] = { sn_metrics_new(8), sn_metrics_new(8) };
	struct sn_metrics_process proc = {
		.config_version = 42,
		.config_reloads_ok = 3,
		.config_reloads_failed = 1,
		.config_last_reload_seconds = 1700000000.25,
		.draining = 1,
	};
	char *out;

	sn_metrics_add(w[0], SN_CTR_DOWNSTREAM_CX_ACTIVE, 3);
	sn_metrics_add(w[0], SN_CTR_DOWNSTREAM_CX_ACTIVE, -1);
	sn_metrics_add(w[1], SN_CTR_DOWNSTREAM_CX_ACTIVE, -4);   /* gauges may go below 0 */
	sn_metrics_add(w[1], SN_CTR_UPSTREAM_RQ_RETRY, 9);
	sn_metrics_add(w[0], SN_CTR_OVERFLOW, 1);
	out = render(w, 2, &proc, 0);

	expect_line(out, "# TYPE sinew_downstream_connections_active gauge");
	expect_line(out, "sinew_downstream_connections_active -2");
	expect_line(out, "# TYPE sinew_upstream_connections_active gauge");
	expect_line(out, "# TYPE sinew_downstream_connections_total counter");
	expect_line(out, "# TYPE sinew_upstream_connections_total counter");
	expect_line(out, "# TYPE sinew_upstream_connect_failures_total counter");
	expect_line(out, "sinew_upstream_retries_total 9");
	expect_line(out, "sinew_upstream_retry_budget_exhausted_total 0");
	expect_line(out, "sinew_upstream_connection_reuses_total 0");
	expect_line(out, "sinew_downstream_requests_rejected_total 0");
	expect_line(out, "sinew_overflow_total 1");

	expect_line(out, "# TYPE sinew_config_version gauge");
	expect_line(out, "sinew_config_version 42");
	expect_line(out, "# TYPE sinew_config_reloads_total counter");
	expect_line(out, "sinew_config_reloads_total{result=\"success\"} 3");
	expect_line(out, "sinew_config_reloads_total{result=\"failure\"} 1");
	expect_line(out, "# TYPE sinew_config_last_reload_success_timestamp_seconds gauge");
	expect_line(out, "sinew_config_last_reload_success_timestamp_seconds 1700000000.250");
	expect_line(out, "# TYPE sinew_draining gauge");
	expect_line(out, "sinew_draining 1");
	free(out);

	/* No process values: none of their lines. */
	out = render(w, 2, NULL, 0);
	expect_no_substr(out, "sinew_config_version");
	expect_no_substr(out, "sinew_draining");
	free(out);
	sn_metrics_free(w[0]);
	sn_metrics_free(w[1]);
}

static void test_istio_names(void **state)
{
	struct sn_metrics *m = sn_metrics_new(8);
	struct sn_metric_labels l = base_labels();
	const char *t = base_text(200);
	char *out;

	sn_metrics_record_request(m, &l, 12, 34, 56);
	out = render(&m, 1, NULL, 1);
	expect_line(out, "# TYPE istio_requests_total counter");
	expect_line(out, "# TYPE istio_request_duration_milliseconds histogram");
	expect_line(out, "# TYPE istio_request_bytes histogram");
	expect_line(out, "# TYPE istio_response_bytes histogram");
	expect_metric(out, "sinew_requests_total", t, "", "1");
	expect_metric(out, "istio_requests_total", t, "", "1");
	expect_metric(out, "istio_request_duration_milliseconds_bucket", t, ",le=\"25\"", "1");
	expect_metric(out, "istio_request_duration_milliseconds_bucket", t, ",le=\"10\"", "0");
	expect_metric(out, "istio_request_duration_milliseconds_sum", t, "", "12.000");
	expect_metric(out, "istio_request_bytes_sum", t, "", "34");
	expect_metric(out, "istio_response_bytes_count", t, "", "1");
	free(out);
	sn_metrics_free(m);
}

static void test_empty_render(void **state)
{
	char *out = render(NULL, 0, NULL, 1);

	expect_line(out, "# TYPE sinew_requests_total counter");
	expect_line(out, "sinew_metrics_series 0");
	free(out);
}

/* Lint messages promtool prints for names we keep on purpose: Istio's
 * names (and ours, which mirror them) are in milliseconds. */
static int allowed_lint(const char *line)
{
	static const char *const ok[] = {
		"sinew_request_duration_milliseconds use base unit \"seconds\" instead of \"milliseconds\"",
		"istio_request_duration_milliseconds use base unit \"seconds\" instead of \"milliseconds\"",
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (strcmp(line, ok[i]) == 0)
			return 1;
	return line[0] == '\0';
}

static void test_promtool_check(void **state)
{
	struct sn_metrics *w[2] = { sn_metrics_new(2), sn_metrics_new(8) };
	struct sn_metric_labels l = base_labels();
	struct sn_metrics_process proc = { 7, 2, 1, 1700000000.5, 0 };
	char path[] = "/tmp/sinew_metrics_XXXXXX";
	char cmd[256], line[1024];
	FILE *f, *res;
	int fd, rc, bad = 0;

	if (system("command -v promtool >/dev/null 2>&1") != 0) {
		print_message("promtool not found (apt-get install prometheus): skipping\n");
		skip();
	}
	for (int code = 200; code < 206; code++) {   /* fills w[0]: overflow too */
		l.response_code = code;
		sn_metrics_record_request(w[0], &l, code / 7.0, (uint64_t)code, 1);
		sn_metrics_record_request(w[1], &l, code * 100.0, 0, (uint64_t)code * 1000);
	}
	l.source_workload = "we\"ird\\name\nwith\xfe bytes";
	l.grpc_response_status = "14";
	sn_metrics_record_request(w[1], &l, 0.1, 5, 5);
	sn_metrics_add(w[0], SN_CTR_UPSTREAM_CX_ACTIVE, 2);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	sn_metrics_render(w, 2, &proc, 1, f);
	assert_int_equal(fclose(f), 0);

	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1; echo \"rc=$?\"", path);
	res = popen(cmd, "r");
	assert_non_null(res);
	rc = -1;
	while (fgets(line, sizeof(line), res)) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "rc=", 3) == 0) {
			rc = atoi(line + 3);
			continue;
		}
		if (!allowed_lint(line)) {
			print_error("promtool: %s\n", line);
			bad = 1;
		}
	}
	pclose(res);
	/* 0: clean; 3: lint findings only (all of them allowed above). */
	if (bad || (rc != 0 && rc != 3)) {
		print_error("promtool rc=%d on %s (kept for inspection)\n", rc, path);
		fail();
	}
	unlink(path);
	sn_metrics_free(w[0]);
	sn_metrics_free(w[1]);
}

/* ---- two workers recording while a third thread renders ---- */

enum { WRITES = 200000, LABEL_SETS = 40 };

struct writer_arg {
	struct sn_metrics *m;
	int id;
};

static int writers_done;
static int reader_saw_too_many;   /* cmocka asserts only on the test thread */

static void *writer_main(void *p)
{
	struct writer_arg *a = p;
	struct sn_metric_labels l = base_labels();
	char name[LABEL_SETS][16];

	for (int i = 0; i < LABEL_SETS; i++)
		snprintf(name[i], sizeof(name[i]), "svc%d", i);
	for (int i = 0; i < WRITES; i++) {
		l.destination_service_name = name[(i * 7 + a->id) % LABEL_SETS];
		/* Every 10th run through the services answers 503. */
		l.response_code = (i / LABEL_SETS % 10 == 0) ? 503 : 200;
		sn_metrics_record_request(a->m, &l, (double)(i % 1000), 100, 1000);
		if (i % 1000 == 0)
			sn_metrics_add(a->m, SN_CTR_DOWNSTREAM_CX_TOTAL, 1);
	}
	return NULL;
}

static void *reader_main(void *p)
{
	struct sn_metrics *const *w = p;
	int renders = 0;

	while (!__atomic_load_n(&writers_done, __ATOMIC_ACQUIRE) || renders < 3) {
		char *out = render(w, 2, NULL, 1);
		uint64_t total = sum_samples(out, "sinew_requests_total{");
		uint64_t count = sum_samples(out, "sinew_request_duration_milliseconds_count{");

		/* Never more than was written; _count always equals
		 * requests_total, both being the sum of the same buckets. */
		if (total > 2 * WRITES || count != total)
			__atomic_store_n(&reader_saw_too_many, 1, __ATOMIC_RELAXED);
		free(out);
		renders++;
	}
	return (void *)(intptr_t)renders;
}

static void test_concurrent_writers_and_reader(void **state)
{
	struct sn_metrics *w[2] = { sn_metrics_new(128), sn_metrics_new(128) };
	struct writer_arg args[2] = { { w[0], 0 }, { w[1], 1 } };
	pthread_t wt[2], rt;
	void *renders;
	char *out;

	writers_done = 0;
	assert_int_equal(pthread_create(&rt, NULL, reader_main, w), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&wt[i], NULL, writer_main, &args[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(wt[i], NULL);
	__atomic_store_n(&writers_done, 1, __ATOMIC_RELEASE);
	pthread_join(rt, &renders);
	print_message("reader rendered %d times\n", (int)(intptr_t)renders);
	assert_int_equal(reader_saw_too_many, 0);

	out = render(w, 2, NULL, 1);
	assert_int_equal(sum_samples(out, "sinew_requests_total{"), 2 * WRITES);
	assert_int_equal(sum_samples(out, "istio_requests_total{"), 2 * WRITES);
	assert_int_equal(sum_samples(out, "sinew_request_duration_milliseconds_count{"), 2 * WRITES);
	assert_int_equal(sum_samples(out, "sinew_request_bytes_sum{"), 2 * WRITES * 100ull);
	assert_int_equal(sum_samples(out, "sinew_response_bytes_sum{"), 2 * WRITES * 1000ull);
	/* 40 services x 2 codes, the same in both workers: summed to 80 rows. */
	assert_int_equal(count_lines_with(out, "sinew_requests_total{"), 2 * LABEL_SETS);
	expect_line(out, "sinew_downstream_connections_total 400");
	expect_line(out, "sinew_metrics_series_overflow_total 0");
	free(out);
	sn_metrics_free(w[0]);
	sn_metrics_free(w[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_one_series),
		cmocka_unit_test(test_null_is_unknown_and_merges),
		cmocka_unit_test(test_label_escaping),
		cmocka_unit_test(test_bucket_boundaries),
		cmocka_unit_test(test_cardinality_bound),
		cmocka_unit_test(test_many_series),
		cmocka_unit_test(test_reused_label_buffer),
		cmocka_unit_test(test_long_label_value_truncated),
		cmocka_unit_test(test_sum_across_stores),
		cmocka_unit_test(test_json_for_sinewd),
		cmocka_unit_test(test_route_series),
		cmocka_unit_test(test_tcp_series),
		cmocka_unit_test(test_counters_and_process),
		cmocka_unit_test(test_istio_names),
		cmocka_unit_test(test_empty_render),
		cmocka_unit_test(test_promtool_check),
		cmocka_unit_test(test_concurrent_writers_and_reader),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
