/* sinewd's live stats (src/control/stats.c) on a clock the test drives:
 * cumulative counts become per-slot differences (a reconnect goes on, a
 * restart starts over, a sinewd that never saw a proxy takes its first
 * message as the start only); the window, rates, success rate and
 * histogram_quantile's interpolation; edges with a registered proxy's
 * entry name resolved and identities; requests a client's proxy answered
 * itself count against the workload of their service; a malformed message
 * changes nothing; and the bounds hold with many keys. Over real
 * processes: tests/integration/test_stat.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <libfyaml.h>

#include "sinew/config.h"
#include "sinew/control.h"
#include "sinew/out.h"
#include "control/stats.h"

#define T0 10000000ull   /* the test's loop time at the start, ms */
#define BOUNDS "[0.5,1,5,10,25,50,100,250,500,1000,2500,5000,10000,30000,60000,300000,600000,1800000,3600000]"

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));

static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, f);
	assert_true(vasprintf(&s, f, ap) >= 0);
	va_end(ap);
	return s;
}

/* One series: count requests, all in the 1-5 ms bucket. extra: more
 * members (",\"sourcePrincipal\":\"...\""); flags: responseFlags. */
static char *series_flags(const char *reporter, const char *src, const char *dst, const char *svc, int code,
			  unsigned long long count, const char *extra, const char *flags)
{
	return fmt("{\"reporter\":\"%s\",\"sourceWorkload\":\"%s\",\"sourceNamespace\":\"default\","
		   "\"destinationWorkload\":\"%s\",\"destinationNamespace\":\"%s\","
		   "\"destinationService\":\"%s.default.svc.cluster.local\",\"destinationServiceName\":\"%s\","
		   "\"destinationServiceNamespace\":\"default\",\"protocol\":\"http\",\"responseCode\":%d,"
		   "\"grpcStatus\":null,\"responseFlags\":\"%s\",\"connectionSecurityPolicy\":\"%s\",\"count\":%llu,"
		   "\"durationBuckets\":[0,0,%llu,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0],\"durationSumMs\":1.5%s}",
		   reporter, src, dst, strcmp(dst, "unknown") ? "default" : "unknown", svc, svc, code, flags,
		   !strcmp(reporter, "destination") ? "none" : "unknown", count, count, extra ? extra : "");
}

static char *series(const char *reporter, const char *src, const char *dst, const char *svc, int code,
		    unsigned long long count, const char *extra)
{
	return series_flags(reporter, src, dst, svc, code, count, extra, "-");
}

/* A message of seq with the given series (taken, freed), sent over the
 * last period ms. */
static char *message(unsigned long long seq, unsigned period, int n, char **v)
{
	struct sn_out o = { 0 };
	sn_out_printf(&o, "{\"type\":\"stats\",\"timeUnixMs\":1,\"seq\":%llu,\"intervalMs\":1000,\"periodMs\":%u,"
			  "\"durationBucketsMs\":" BOUNDS ",\"requests\":[", seq, period);
	for (int i = 0; i < n; i++) {
		sn_out_cstr(&o, i ? "," : "");
		sn_out_cstr(&o, v[i]);
		free(v[i]);
	}
	sn_out_cstr(&o, "],\"tcp\":{\"connectionsActive\":3,\"connectionsTotal\":9}}");
	assert_false(o.failed);
	return o.p;
}

static int take(struct sn_stats *s, struct sn_stats_proxy *p, char *msg, uint64_t now, struct sn_stats_result *res)
{
	int rc = sn_stats_ingest_json(s, p, msg, strlen(msg), now, res);
	if (rc != 0)
		fprintf(stderr, "ingest: %s\n", res->error);
	free(msg);
	return rc;
}

/* reviews' proxy reports ok 200s and failed 500s, cumulative. */
static void report_reviews(struct sn_stats *s, struct sn_stats_proxy *p, unsigned long long seq,
			   unsigned long long ok, unsigned long long failed, unsigned period, uint64_t now)
{
	struct sn_stats_result res;
	char *v[2] = { series("destination", "unknown", "reviews", "reviews", 200, ok, NULL),
		       series("destination", "unknown", "reviews", "reviews", 500, failed, NULL) };
	assert_int_equal(take(s, p, message(seq, period, 2, v), now, &res), 0);
}

/* The document reads the text in place: it lives until done(). */
static char *stat_text;

/* The rendered JSON, parsed; the caller ends it with done(). */
static struct fy_document *stat(struct sn_stats *s, enum sn_stats_resource r, uint32_t window, uint64_t now)
{
	struct sn_out o = { 0 };
	struct sn_stats_query q = { .resource = r, .window_ms = window };
	sn_stats_render_stat(s, &q, now, &o);
	assert_false(o.failed);
	struct fy_document *doc = sn_json_parse(o.p, o.len);
	if (doc == NULL || !fy_node_is_sequence(fy_document_root(doc)))
		fail_msg("not a JSON array: %s", o.p);
	assert_null(stat_text);
	stat_text = o.p;
	return doc;
}

static void done(struct fy_document *doc)
{
	fy_document_destroy(doc);
	free(stat_text);
	stat_text = NULL;
}

static struct fy_node *find_row(struct fy_document *doc, const char *name)
{
	struct fy_node *it;
	void *iter = NULL;
	while ((it = fy_node_sequence_iterate(fy_document_root(doc), &iter)) != NULL) {
		const char *n = fy_node_get_scalar0(fy_node_mapping_lookup_by_string(it, "name", FY_NT));
		if (n != NULL && !strcmp(n, name))
			return it;
	}
	return NULL;
}

static const char *field(struct fy_node *row, const char *path)
{
	struct fy_node *n = fy_node_by_path(row, path, FY_NT, FYNWF_DONT_FOLLOW);
	const char *v = n != NULL ? fy_node_get_scalar0(n) : NULL;
	return v != NULL ? v : "(absent)";
}

static void test_counts_window_and_percentiles(void **state)
{
	struct sn_stats_limits lim = { .resolution_ms = 1000 };
	struct sn_stats *s = sn_stats_new(&lim);
	struct sn_stats_proxy *p = sn_stats_proxy_up(s, "reviews-1", "default", "reviews");
	assert_non_null(p);

	/* 50 requests a second, 10 % failing, reported every second */
	report_reviews(s, p, 1, 0, 0, 0, T0);
	for (unsigned k = 1; k <= 20; k++)
		report_reviews(s, p, k + 1, 45ull * k, 5ull * k, 1000, T0 + k * 1000);
	struct fy_document *doc = stat(s, SN_STATS_DEPLOYMENT, 10000, T0 + 20 * 1000 + 300);
	struct fy_node *row = find_row(doc, "reviews");
	assert_non_null(row);
	assert_string_equal(field(row, "/requests"), "500");
	assert_string_equal(field(row, "/rps"), "50.000");
	assert_string_equal(field(row, "/successRate"), "0.9000");
	assert_string_equal(field(row, "/meshed"), "1/1");
	assert_string_equal(field(row, "/tcpConnections"), "3");
	assert_string_equal(field(row, "/mtlsShare"), "0.0000");
	assert_string_equal(field(row, "/reportedBy"), "destination");
	/* all in (1, 5]: linear within the bucket, as histogram_quantile */
	assert_string_equal(field(row, "/latencyMs/p50"), "3.000");
	assert_string_equal(field(row, "/latencyMs/p95"), "4.800");
	assert_string_equal(field(row, "/latencyMs/p99"), "4.960");
	done(doc);

	/* the service and the namespace say the same */
	doc = stat(s, SN_STATS_SERVICE, 10000, T0 + 20 * 1000 + 300);
	assert_string_equal(field(find_row(doc, "reviews"), "/requests"), "500");
	done(doc);
	doc = stat(s, SN_STATS_NAMESPACE, 10000, T0 + 20 * 1000 + 300);
	assert_string_equal(field(find_row(doc, "default"), "/requests"), "500");
	assert_string_equal(field(find_row(doc, "default"), "/successRate"), "0.9000");
	done(doc);

	/* a whole minute holds the 20 seconds there were */
	doc = stat(s, SN_STATS_DEPLOYMENT, 60000, T0 + 20 * 1000 + 300);
	assert_string_equal(field(find_row(doc, "reviews"), "/requests"), "950");
	done(doc);
	sn_stats_free(s);
}

static void test_reconnect_restart_and_unknown_proxy(void **state)
{
	struct sn_stats_limits lim = { .resolution_ms = 1000 };
	struct sn_stats *s = sn_stats_new(&lim);
	struct sn_stats_proxy *p = sn_stats_proxy_up(s, "reviews-1", "default", "reviews");
	struct sn_stats_counts c;

	report_reviews(s, p, 1, 100, 0, 1000, T0);          /* the first message counts */
	sn_stats_proxy_down(s, p, T0 + 100);
	p = sn_stats_proxy_up(s, "reviews-1", "default", "reviews");   /* same process, new link */
	report_reviews(s, p, 2, 150, 0, 1000, T0 + 1000);   /* +50, not +150 */
	report_reviews(s, p, 1, 30, 0, 1000, T0 + 2000);    /* a new process with this id: counts from zero */
	/* sinewd never saw this proxy and this is not its first message: the start only */
	struct sn_stats_proxy *q = sn_stats_proxy_up(s, "reviews-2", "default", "reviews");
	struct sn_stats_result res;
	char *v[1] = { series("destination", "unknown", "reviews", "reviews", 200, 1000000, NULL) };
	assert_int_equal(take(s, q, message(57, 1000, 1, v), T0 + 2000, &res), 0);
	assert_int_equal(res.baseline, 1);
	struct fy_document *doc = stat(s, SN_STATS_DEPLOYMENT, 60000, T0 + 4000);
	struct fy_node *row = find_row(doc, "reviews");
	assert_string_equal(field(row, "/requests"), "180");
	assert_string_equal(field(row, "/meshed"), "2/2");
	done(doc);

	sn_stats_counts(s, &c);
	assert_int_equal(c.messages, 4);
	assert_int_equal(c.rejected, 0);
	sn_stats_free(s);
}

static void test_malformed_changes_nothing(void **state)
{
	struct sn_stats *s = sn_stats_new(NULL);
	struct sn_stats_proxy *p = sn_stats_proxy_up(s, "a-1", "default", "a");
	struct sn_stats_result res;
	struct sn_stats_counts c;
	static const struct {
		const char *msg;
		const char *error;
	} bad[] = {
		{ "[]", "not a JSON object" },
		{ "{\"seq\":0,\"durationBucketsMs\":" BOUNDS ",\"requests\":[]}", "seq:" },
		{ "{\"seq\":1,\"durationBucketsMs\":[1,2],\"requests\":[]}", "durationBucketsMs:" },
		{ "{\"seq\":1,\"durationBucketsMs\":[0.5,1,5,10,25,50,100,250,500,1000,2500,5000,10000,30000,60000,"
		  "300000,600000,1800000,7200000],\"requests\":[]}", "durationBucketsMs[18]" },
		{ "{\"seq\":1,\"durationBucketsMs\":" BOUNDS "}", "requests:" },
		{ "{\"seq\":1,\"durationBucketsMs\":" BOUNDS ",\"requests\":[{\"reporter\":\"client\"}]}",
		  "requests[0].reporter" },
		{ "{\"seq\":1,\"durationBucketsMs\":" BOUNDS ",\"requests\":[{\"reporter\":\"source\",\"responseCode\":200,"
		  "\"count\":2,\"durationBuckets\":[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}]}",
		  "count 2 is not the sum" },
		{ "{\"seq\":1,\"durationBucketsMs\":" BOUNDS ",\"requests\":[{\"reporter\":\"source\",\"responseCode\":200,"
		  "\"count\":1,\"durationBuckets\":[1,0]}]}", "requests[0].durationBuckets: want 20" },
		{ "{\"seq\":1,\"durationBucketsMs\":" BOUNDS ",\"requests\":[{\"reporter\":\"source\",\"responseCode\":200,"
		  "\"count\":0,\"durationBuckets\":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]},{\"reporter\":\"source\","
		  "\"sourceWorkload\":7,\"responseCode\":200,\"count\":0,"
		  "\"durationBuckets\":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}]}",
		  "requests[1].sourceWorkload: want a string" },
		{ "{\"seq\":1,\"durationBucketsMs\":" BOUNDS ",\"requests\":[{\"reporter\":\"source\",\"responseCode\":1000,"
		  "\"count\":0,\"durationBuckets\":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}]}",
		  "requests[0].responseCode" },
		{ "{\"seq\":1,\"durationBucketsMs\":" BOUNDS ",\"requests\":[],\"tcp\":{\"connectionsActive\":-1}}",
		  "tcp.connectionsActive" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sn_stats_ingest_json(s, p, bad[i].msg, strlen(bad[i].msg), T0, &res), SN_EINVAL);
		if (strstr(res.error, bad[i].error) == NULL)
			fail_msg("message %zu: error \"%s\" does not say \"%s\"", i, res.error, bad[i].error);
	}
	sn_stats_counts(s, &c);
	assert_int_equal(c.rejected, sizeof(bad) / sizeof(bad[0]));
	assert_int_equal(c.messages, 0);
	assert_int_equal(c.keys, 0);
	assert_int_equal(c.baselines, 0);
	/* the proxy's first message still counts in full: the refused ones did not move it */
	report_reviews(s, p, 1, 10, 0, 0, T0 + 1000);
	sn_stats_counts(s, &c);
	assert_int_equal(c.keys, 1);
	sn_stats_free(s);
}

static void test_edges_identities_and_unrouted(void **state)
{
	struct sn_stats_limits lim = { .resolution_ms = 1000 };
	struct sn_stats *s = sn_stats_new(&lim);
	struct sn_stats_proxy *web = sn_stats_proxy_up(s, "web-1", "default", "web");
	struct sn_stats_proxy *rev = sn_stats_proxy_up(s, "reviews-1", "default", "reviews");
	struct sn_stats_result res;
	const char *ids = ",\"sourcePrincipal\":\"spiffe://cluster.local/ns/default/sa/web\","
			  "\"destinationPrincipal\":\"spiffe://cluster.local/ns/default/sa/reviews\"";

	/* web called reviews 90 times (its entry is proxy-reviews-1) and its
	 * own proxy aborted 10 more (a fault: no endpoint picked) */
	char *v[2] = { series("source", "web", "proxy-reviews-1", "reviews", 200, 90, ids),
		       series_flags("source", "web", "unknown", "reviews", 500, 10, NULL, "fault_abort") };
	assert_int_equal(take(s, web, message(1, 10000, 2, v), T0 + 10000, &res), 0);
	assert_int_equal(res.counted, 2);
	report_reviews(s, rev, 1, 90, 0, 10000, T0 + 10000);

	struct sn_out o = { 0 };
	sn_stats_render_edges(s, "default", 60000, T0 + 12000, &o);
	assert_false(o.failed);
	assert_non_null(strstr(o.p, "{\"src\":{\"namespace\":\"default\",\"workload\":\"web\"},\"dst\":{\"namespace\":"
				    "\"default\",\"workload\":\"reviews\"},\"clientIdentity\":\"spiffe://cluster.local/ns/"
				    "default/sa/web\",\"serverIdentity\":\"spiffe://cluster.local/ns/default/sa/reviews\","
				    "\"mtls\":true,\"requests\":100,"));
	sn_out_free(&o);
	sn_stats_render_edges(s, "elsewhere", 60000, T0 + 12000, &o);
	assert_string_equal(o.p, "[]");
	sn_out_free(&o);

	/* reviews: its own 90 (all fine) and the 10 web's proxy answered */
	struct fy_document *doc = stat(s, SN_STATS_DEPLOYMENT, 60000, T0 + 12000);
	struct fy_node *row = find_row(doc, "reviews");
	assert_string_equal(field(row, "/requests"), "100");
	assert_string_equal(field(row, "/successRate"), "0.9000");
	/* web has a proxy and no inbound traffic */
	row = find_row(doc, "web");
	assert_non_null(row);
	assert_string_equal(field(row, "/requests"), "0");
	assert_string_equal(field(row, "/successRate"), "null");
	done(doc);
	sn_stats_free(s);
}

/* A destination without a proxy is seen through its clients. */
static void test_fallback_to_source(void **state)
{
	struct sn_stats_limits lim = { .resolution_ms = 1000 };
	struct sn_stats *s = sn_stats_new(&lim);
	struct sn_stats_proxy *web = sn_stats_proxy_up(s, "web-1", "default", "web");
	struct sn_stats_result res;
	char *v[1] = { series("source", "web", "ratings-v1", "ratings", 503, 20, NULL) };

	assert_int_equal(take(s, web, message(1, 5000, 1, v), T0 + 5000, &res), 0);
	struct fy_document *doc = stat(s, SN_STATS_DEPLOYMENT, 60000, T0 + 7000);
	struct fy_node *row = find_row(doc, "ratings-v1");
	assert_non_null(row);
	assert_string_equal(field(row, "/requests"), "20");
	assert_string_equal(field(row, "/successRate"), "0.0000");
	assert_string_equal(field(row, "/meshed"), "0/0");
	assert_string_equal(field(row, "/reportedBy"), "source");
	done(doc);
	sn_stats_free(s);
}

/* Many keys, many series: every bound holds and the stalest keys go. */
static void test_bounded(void **state)
{
	struct sn_stats_limits lim = { .resolution_ms = 1000, .keys = 64, .slots = 2000, .proxies = 8,
				       .baselines = 300 };
	struct sn_stats *s = sn_stats_new(&lim);
	struct sn_stats_counts c;
	struct sn_stats_proxy *p[8];
	char id[32], dst[32];

	for (int i = 0; i < 8; i++) {
		snprintf(id, sizeof(id), "app%d-1", i);
		snprintf(dst, sizeof(dst), "app%d", i);
		p[i] = sn_stats_proxy_up(s, id, "default", dst);
		assert_non_null(p[i]);
	}
	/* one more connected proxy than the bound: refused, not a crash */
	assert_null(sn_stats_proxy_up(s, "extra-1", "default", "extra"));

	/* two of them send 16 new series (new keys) every second */
	for (unsigned round = 1; round <= 40; round++) {
		for (int i = 0; i < 2; i++) {
			char *v[16];
			struct sn_stats_result res;
			for (int k = 0; k < 16; k++) {
				snprintf(dst, sizeof(dst), "dst%u-%d", round, k);   /* new keys every round */
				v[k] = series("source", "web", dst, dst, 200, round, NULL);
			}
			/* spread over the last 30 s: many slots per key */
			assert_int_equal(take(s, p[i], message(round, 30000, 16, v), T0 + round * 1000, &res), 0);
			sn_stats_counts(s, &c);
			assert_true(c.keys <= lim.keys);
			assert_true(c.slots <= lim.slots);
			assert_true(c.baselines <= lim.baselines);
			assert_true(c.proxies <= lim.proxies);
		}
	}
	sn_stats_counts(s, &c);
	assert_true(c.evicted_keys > 0);
	assert_true(c.untracked_series > 0);   /* past the baselines' bound: not counted, not a crash */
	assert_true(c.bytes < (1u << 20));

	/* the newest keys are the ones kept */
	struct sn_out o = { 0 };
	struct sn_stats_query q = { .resource = SN_STATS_SERVICE, .window_ms = 60000 };
	sn_stats_render_stat(s, &q, T0 + 42000, &o);
	assert_false(o.failed);
	assert_null(strstr(o.p, "\"dst1-0\""));
	sn_out_free(&o);

	/* an hour later everything has aged out but the connected proxies */
	for (int i = 0; i < 8; i++)
		sn_stats_proxy_down(s, p[i], T0 + 50000);
	sn_stats_render_stat(s, &q, T0 + 50000 + 2 * SN_STATS_RETENTION_MS, &o);
	sn_out_free(&o);
	sn_stats_counts(s, &c);
	assert_int_equal(c.keys, 0);
	assert_int_equal(c.slots, 0);
	assert_int_equal(c.proxies, 0);
	assert_int_equal(c.baselines, 0);
	sn_stats_free(s);
}

/* Keys whose hours do not all fit share the slot bound: each gives up
 * its older half in turn, and every one keeps its last minute. */
static void test_slots_shared(void **state)
{
	struct sn_stats_limits lim = { .resolution_ms = 1000, .slots = 20000 };
	struct sn_stats *s = sn_stats_new(&lim);
	struct sn_stats_proxy *p = sn_stats_proxy_up(s, "web-1", "default", "web");
	struct sn_stats_counts c;
	struct sn_stats_result res;
	char *v[8], dst[16];
	uint64_t now = T0 + SN_STATS_RETENTION_MS;

	/* 8 destinations, an hour of traffic each (3,600 slots a key: 28,800 in all) */
	for (int k = 0; k < 8; k++) {
		snprintf(dst, sizeof(dst), "dst%d", k);
		v[k] = series("source", "web", dst, dst, 200, 36000, NULL);
	}
	assert_int_equal(take(s, p, message(1, SN_STATS_RETENTION_MS, 8, v), now, &res), 0);
	sn_stats_counts(s, &c);
	assert_true(c.slots <= lim.slots);
	assert_int_equal(c.keys, 8);
	assert_int_equal(c.evicted_keys, 0);
	assert_true(c.trims > 0);

	struct fy_document *doc = stat(s, SN_STATS_SERVICE, 60000, now + 1500);
	for (int k = 0; k < 8; k++) {
		snprintf(dst, sizeof(dst), "dst%d", k);
		/* 10 requests a second; the last minute of each is there */
		assert_string_equal(field(find_row(doc, dst), "/requests"), "600");
	}
	done(doc);
	sn_stats_free(s);
}

/* Route series: cumulative counts and successes become differences, two
 * clients of one service sum in the service view and stay apart in the
 * workload view, [DEFAULT] sorts last, and no stat row counts them. */
static char *route_msg(unsigned long long seq, const char *route, unsigned long long count, unsigned long long ok)
{
	const char *vs = route != NULL ? "\"default\",\"virtualService\":\"reviews\",\"route\":" : "null,"
		"\"virtualService\":null,\"route\":";
	return fmt("{\"type\":\"stats\",\"seq\":%llu,\"intervalMs\":1000,\"periodMs\":1000,\"durationBucketsMs\":" BOUNDS
		   ",\"requests\":[],\"routes\":[{\"virtualServiceNamespace\":%s%s%s%s,"
		   "\"destinationService\":\"reviews.default.svc.cluster.local\",\"destinationServiceName\":\"reviews\","
		   "\"destinationServiceNamespace\":\"default\",\"count\":%llu,\"successes\":%llu,"
		   "\"durationBuckets\":[0,0,%llu,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}]}",
		   seq, vs, route ? "\"" : "null", route ? route : "", route ? "\"" : "", count, ok, count);
}

static void test_routes(void **state)
{
	struct sn_stats_limits lim = { .resolution_ms = 1000 };
	struct sn_stats *s = sn_stats_new(&lim);
	struct sn_stats_proxy *a = sn_stats_proxy_up(s, "pp-1", "default", "productpage");
	struct sn_stats_proxy *b = sn_stats_proxy_up(s, "rt-1", "default", "ratings");
	struct sn_stats_result res;
	struct sn_out o = { 0 };
	uint64_t now = T0;

	assert_int_equal(take(s, a, route_msg(1, "ratings", 10, 9), now, &res), 0);
	assert_int_equal(take(s, b, route_msg(1, NULL, 4, 4), now, &res), 0);
	now += 1000;
	assert_int_equal(take(s, a, route_msg(2, "ratings", 30, 25), now, &res), 0);
	assert_int_equal(take(s, b, route_msg(2, "ratings", 5, 0), now, &res), 0);
	assert_int_equal(res.counted, 1);
	now += 5000;

	struct sn_stats_query q = { .resource = SN_STATS_SERVICE, .window_ms = 60000 };
	sn_stats_render_routes(s, &q, now, &o);
	assert_false(o.failed);
	if (strstr(o.p, "[{\"route\":\"ratings\",\"virtualService\":{\"namespace\":\"default\",\"name\":\"reviews\"},"
			"\"service\":{\"namespace\":\"default\",\"name\":\"reviews\",\"host\":"
			"\"reviews.default.svc.cluster.local\"},\"successRate\":0.7143,\"requests\":35,") == NULL ||
	    strstr(o.p, "},{\"route\":\"[DEFAULT]\",\"virtualService\":null,") == NULL ||
	    strstr(o.p, "\"successRate\":1.0000,\"requests\":4,") == NULL)
		fail_msg("routes by service: %s", o.p);
	sn_out_free(&o);
	q.resource = SN_STATS_DEPLOYMENT;
	q.name = "productpage";
	sn_stats_render_routes(s, &q, now, &o);
	if (strstr(o.p, "\"workload\":{\"namespace\":\"default\",\"name\":\"productpage\"},\"successRate\":0.8333,"
			"\"requests\":30,") == NULL || strstr(o.p, "[DEFAULT]") != NULL)
		fail_msg("routes of productpage: %s", o.p);
	sn_out_free(&o);
	q.namespace_ = "other";
	sn_stats_render_routes(s, &q, now, &o);
	assert_string_equal(o.p, "[]");
	sn_out_free(&o);

	/* not requests of anyone's stat row */
	struct fy_document *doc = stat(s, SN_STATS_SERVICE, 60000, now);
	assert_null(find_row(doc, "reviews"));
	done(doc);
	sn_stats_free(s);
}

static void test_parse_resource(void **state)
{
	enum sn_stats_resource r;
	assert_int_equal(sn_stats_parse_resource("deploy", &r), 0);
	assert_int_equal(r, SN_STATS_DEPLOYMENT);
	assert_int_equal(sn_stats_parse_resource("svc", &r), 0);
	assert_int_equal(r, SN_STATS_SERVICE);
	assert_int_equal(sn_stats_parse_resource("ns", &r), 0);
	assert_int_equal(r, SN_STATS_NAMESPACE);
	assert_int_equal(sn_stats_parse_resource("pods", &r), SN_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts_window_and_percentiles),
		cmocka_unit_test(test_reconnect_restart_and_unknown_proxy),
		cmocka_unit_test(test_malformed_changes_nothing),
		cmocka_unit_test(test_edges_identities_and_unrouted),
		cmocka_unit_test(test_fallback_to_source),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_slots_shared),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_parse_resource),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
