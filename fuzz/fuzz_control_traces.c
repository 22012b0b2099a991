/* Fuzz target: OTLP span ingest into sinewd's trace store
 * (src/control/traces.c): what any proxy's `spans` message and any client
 * of POST /v1/traces reach. The input is NDJSON: each line is one batch
 * (an ExportTraceServiceRequest in OTLP's JSON encoding), read by
 * sn_traces_ingest_json into one store with small bounds (4 traces, 8
 * spans a trace, 24 KiB), so eviction, the per-trace bounds and merging
 * run within a few lines. After each batch every trace held is rendered,
 * and the listing with and without filters; each rendering must be a JSON
 * object, and the bounds must hold. A refused batch must say why and
 * store nothing. Every input starts from an empty store. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

#include "sinew/config.h"
#include "sinew/control.h"
#include "sinew/log.h"
#include "sinew/out.h"
#include "control/traces.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_MAX_INPUT (256u << 10)
#define FZ_TRACES 4
#define FZ_SPANS 8
#define FZ_BYTES (24u << 10)

static struct sn_traces *store;

static void check_json_object(const struct sn_out *o)
{
	CHECK(!o->failed);
	struct fy_document *doc = sn_json_parse(o->p, o->len);
	CHECK(doc != NULL && fy_document_root(doc) != NULL && fy_node_is_mapping(fy_document_root(doc)));
	fy_document_destroy(doc);
}

/* Renders the listing (filtered by the first trace's root service, when
 * there is one) and every trace it names. */
static void render_all(void)
{
	struct sn_traces_query all = { .limit = SN_TRACES_MAX_LIST, .error = -1 };
	struct sn_out o = { 0 };
	struct fy_document *doc;
	struct fy_node *traces, *it;
	void *iter = NULL;
	char service[SN_TRACES_MAX_VALUE + 1] = "";
	size_t listed = 0;

	sn_traces_render_list(store, &all, &o);
	check_json_object(&o);
	doc = sn_json_parse(o.p, o.len);
	traces = fy_node_mapping_lookup_by_string(fy_document_root(doc), "traces", FY_NT);
	CHECK(traces != NULL && fy_node_is_sequence(traces));
	while ((it = fy_node_sequence_iterate(traces, &iter)) != NULL) {
		size_t len;
		const char *id = fy_node_get_scalar(fy_node_mapping_lookup_by_string(it, "traceId", FY_NT), &len);
		uint8_t b[16];
		CHECK(id != NULL && sn_traces_parse_id(id, len, b) == 0);
		struct sn_out one = { 0 };
		CHECK(sn_traces_render_trace(store, b, &one) == 0);
		check_json_object(&one);
		sn_out_free(&one);
		if (listed++ == 0) {
			const char *s = fy_node_get_scalar(fy_node_mapping_lookup_by_string(it, "rootService", FY_NT), &len);
			if (s != NULL && len < sizeof(service) && memchr(s, '\0', len) == NULL) {
				memcpy(service, s, len);
				service[len] = '\0';
			}
		}
	}
	CHECK(listed == sn_traces_count(store));
	fy_document_destroy(doc);
	sn_out_free(&o);

	struct sn_traces_query some = { .service = service[0] ? service : NULL, .limit = 2, .error = 1,
					.min_duration_ns = 1000 };
	sn_traces_render_list(store, &some, &o);
	check_json_object(&o);
	sn_out_free(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct sn_traces_limits lim = { .traces = FZ_TRACES, .spans_per_trace = FZ_SPANS, .bytes = FZ_BYTES };
	size_t off = 0;

	if (size > FZ_MAX_INPUT)
		return 0;
	if (store == NULL) {
		sn_log_current_level = -1;
		store = sn_traces_new(&lim);
		if (store == NULL)
			abort();
	}
	while (off < size) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t len = nl != NULL ? (size_t)(nl - (data + off)) : size - off;
		struct sn_traces_result res;
		size_t spans_before = sn_traces_span_count(store), n_before = sn_traces_count(store);
		uint64_t evicted_before = sn_traces_stats(store)->evicted_traces;

		int rc = sn_traces_ingest_json(store, (const char *)data + off, len, &res);
		if (rc != 0) {
			CHECK(rc == SN_EINVAL || rc == SN_ENOMEM);
			CHECK(res.error[0] != '\0');
			CHECK(sn_traces_span_count(store) == spans_before && sn_traces_count(store) == n_before);
		} else if (sn_traces_stats(store)->evicted_traces == evicted_before) {
			CHECK(sn_traces_span_count(store) == spans_before + res.accepted);
		}
		CHECK(sn_traces_count(store) <= FZ_TRACES);
		CHECK(sn_traces_bytes(store) <= FZ_BYTES);
		CHECK(sn_traces_span_count(store) <= FZ_TRACES * FZ_SPANS);
		render_all();
		off += len + 1;
	}
	sn_traces_clear(store);
	return 0;
}
