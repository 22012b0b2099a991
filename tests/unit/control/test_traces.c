/* The trace store (src/control/traces.c) with small bounds: the memory
 * bound evicts the oldest traces and a trace's share of it drops spans;
 * the count bound evicts by first-seen; resources are kept once per
 * trace and told apart by their attributes; a parent cycle still has a
 * root; every rendering is JSON. The API and the control link over a real
 * sinewd: tests/integration/test_sinewd_traces.py. */
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
#include "control/traces.h"

#define T1 "5b8efff798038103d269b633813fc60c"

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

/* One span of trace (32 hex) with id span (16 hex), parent (NULL: root),
 * name padded to name_len, a resource of service and instance. */
static char *one_span(const char *trace, const char *span, const char *parent, size_t name_len, unsigned start,
		      const char *service, const char *instance)
{
	char *name = malloc(name_len + 1);
	memset(name, 'n', name_len);
	name[name_len] = '\0';
	char *s = fmt("{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":"
		      "{\"stringValue\":\"%s\"}},{\"key\":\"service.instance.id\",\"value\":{\"stringValue\":\"%s\"}}]},"
		      "\"scopeSpans\":[{\"scope\":{\"name\":\"sinew-proxy\"},\"spans\":[{\"traceId\":\"%s\",\"spanId\":"
		      "\"%s\",\"parentSpanId\":\"%s\",\"name\":\"%s\",\"kind\":2,\"startTimeUnixNano\":\"%u000000\","
		      "\"endTimeUnixNano\":\"%u000000\"}]}]}]}",
		      service, instance, trace, span, parent ? parent : "", name, 1000 + start, 1001 + start);
	free(name);
	return s;
}

static void ingest(struct sn_traces *t, char *json, struct sn_traces_result *res)
{
	int rc = sn_traces_ingest_json(t, json, strlen(json), res);
	if (rc != 0)
		fprintf(stderr, "ingest: %s\n", res->error);
	assert_int_equal(rc, 0);
	free(json);
}

static void trace_id(char out[33], unsigned i)
{
	snprintf(out, 33, "a%031x", i);
}

/* Renders the trace (or the list when id is NULL) and checks it is JSON;
 * returns the text (the caller frees). */
static char *render(struct sn_traces *t, const char *id)
{
	struct sn_out o = { 0 };
	uint8_t b[16];
	if (id != NULL) {
		assert_int_equal(sn_traces_parse_id(id, strlen(id), b), 0);
		if (sn_traces_render_trace(t, b, &o) != 0)
			return NULL;
	} else {
		struct sn_traces_query q = { .limit = 1000, .error = -1 };
		sn_traces_render_list(t, &q, &o);
	}
	assert_false(o.failed);
	struct fy_document *doc = sn_json_parse(o.p, o.len);
	assert_non_null(doc);
	assert_true(fy_node_is_mapping(fy_document_root(doc)));
	fy_document_destroy(doc);
	sn_out_raw(&o, "", 1);
	return o.p;
}

static void test_memory_bound_evicts_oldest(void **state)
{
	struct sn_traces_limits lim = { .traces = 1000, .spans_per_trace = 100, .bytes = 64 << 10 };
	struct sn_traces *t = sn_traces_new(&lim);
	struct sn_traces_result res;
	char id[33];

	for (unsigned i = 0; i < 200; i++) {
		trace_id(id, i + 1);
		ingest(t, one_span(id, "00000000000000a1", NULL, 1000, i, "svc", "i"), &res);
		assert_int_equal(res.accepted, 1);
		assert_true(sn_traces_bytes(t) <= lim.bytes);
	}
	assert_true(sn_traces_count(t) < 200);
	assert_true(sn_traces_count(t) > 10);
	assert_int_equal(sn_traces_stats(t)->evicted_traces, 200 - sn_traces_count(t));
	trace_id(id, 1);
	assert_null(render(t, id));        /* the oldest left */
	trace_id(id, 200);
	free(render(t, id));               /* the newest is there */
	free(render(t, NULL));
	sn_traces_clear(t);
	assert_int_equal(sn_traces_bytes(t), 0);
	assert_int_equal(sn_traces_count(t), 0);
	sn_traces_free(t);
}

static void test_trace_share_drops_spans(void **state)
{
	struct sn_traces_limits lim = { .traces = 10, .spans_per_trace = 1000, .bytes = 64 << 10 };
	struct sn_traces *t = sn_traces_new(&lim);
	struct sn_traces_result res;
	char span[17];
	size_t dropped = 0;

	for (unsigned i = 0; i < 40; i++) {
		snprintf(span, sizeof(span), "%016x", i + 1);
		ingest(t, one_span(T1, span, NULL, 1000, i, "svc", "i"), &res);
		dropped += res.dropped;
		if (res.dropped)
			assert_non_null(strstr(res.dropped_why, "most bytes a trace may"));
	}
	assert_true(dropped > 0);
	assert_true(sn_traces_bytes(t) <= lim.bytes / 8);
	assert_int_equal(sn_traces_span_count(t) + dropped, 40);
	char *out = render(t, T1), *want = fmt("\"droppedSpans\":%zu", dropped);
	assert_non_null(strstr(out, want));
	free(want);
	free(out);
	sn_traces_free(t);
}

static void test_count_bound_first_seen(void **state)
{
	struct sn_traces_limits lim = { .traces = 3 };
	struct sn_traces *t = sn_traces_new(&lim);
	struct sn_traces_result res;
	char id[33];

	for (unsigned i = 1; i <= 3; i++) {
		trace_id(id, i);
		ingest(t, one_span(id, "00000000000000a1", NULL, 4, 100 - i, "svc", "i"), &res);
	}
	/* trace 1 gets a span later: it stays the first seen */
	trace_id(id, 1);
	ingest(t, one_span(id, "00000000000000a2", NULL, 4, 500, "svc", "i"), &res);
	trace_id(id, 4);
	ingest(t, one_span(id, "00000000000000a1", NULL, 4, 1, "svc", "i"), &res);
	assert_int_equal(sn_traces_count(t), 3);
	trace_id(id, 1);
	assert_null(render(t, id));
	/* newest start first: 2 (98), 3 (97), 4 (1) */
	char *list = render(t, NULL);
	char *p2 = strstr(list, "a0000000000000000000000000000002");
	char *p3 = strstr(list, "a0000000000000000000000000000003");
	char *p4 = strstr(list, "a0000000000000000000000000000004");
	assert_true(p2 != NULL && p3 != NULL && p4 != NULL && p2 < p3 && p3 < p4);
	free(list);
	sn_traces_free(t);
}

static void test_resources_and_cycle(void **state)
{
	struct sn_traces *t = sn_traces_new(NULL);
	struct sn_traces_result res;

	/* two pods of one service, a cycle of parents */
	ingest(t, one_span(T1, "00000000000000b2", "00000000000000b1", 3, 20, "reviews", "pod-a"), &res);
	ingest(t, one_span(T1, "00000000000000b1", "00000000000000b2", 3, 10, "reviews", "pod-b"), &res);
	ingest(t, one_span(T1, "00000000000000b3", "00000000000000b1", 3, 30, "reviews", "pod-b"), &res);
	char *out = render(t, T1);
	/* the earliest span is the root when every parent is there */
	assert_non_null(strstr(out, "\"rootService\":\"reviews\""));
	assert_non_null(strstr(out, "\"services\":[\"reviews\"]"));
	/* pod-b first (its span starts first), holding b1 and b3; then pod-a */
	char *b = strstr(out, "pod-b"), *a = strstr(out, "pod-a");
	assert_true(b != NULL && a != NULL && b < a);
	assert_null(strstr(b + 1, "pod-b"));
	char *s1 = strstr(out, "\"spanId\":\"00000000000000b1\""), *s3 = strstr(out, "\"spanId\":\"00000000000000b3\"");
	char *s2 = strstr(out, "\"spanId\":\"00000000000000b2\"");
	assert_true(s1 < s3 && s3 < a && a < s2);
	free(out);
	sn_traces_free(t);
}

static void test_ids(void **state)
{
	uint8_t id[16];
	assert_int_equal(sn_traces_parse_id(T1, 32, id), 0);
	assert_int_equal(id[0], 0x5b);
	assert_int_equal(sn_traces_parse_id("5B8EFFF798038103D269B633813FC60C", 32, id), 0);
	assert_int_equal(id[15], 0x0c);
	assert_int_equal(sn_traces_parse_id("00000000000000000000000000000000", 32, id), SN_EINVAL);
	assert_int_equal(sn_traces_parse_id(T1, 31, id), SN_EINVAL);
	assert_int_equal(sn_traces_parse_id("5b8efff798038103d269b633813fc60g", 32, id), SN_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memory_bound_evicts_oldest),
		cmocka_unit_test(test_trace_share_drops_spans),
		cmocka_unit_test(test_count_bound_first_seen),
		cmocka_unit_test(test_resources_and_cycle),
		cmocka_unit_test(test_ids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
