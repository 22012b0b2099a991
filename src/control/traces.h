#ifndef SINEW_CONTROL_TRACES_H
#define SINEW_CONTROL_TRACES_H

/* Private to src/control (api.c, mesh.c) and its tests and fuzz target:
 * sinewd's trace store (traces.c). Creation and the bounds are public
 * (include/sinew/control.h); this is what reads spans in and renders
 * them out. Loop thread only; nothing is locked. Wire format: an OTLP
 * ExportTraceServiceRequest in OTLP's JSON encoding, docs/api.md
 * ("Traces"). */

#include <stddef.h>
#include <stdint.h>

#include "sinew/control.h"

struct fy_node;
struct sn_out;

/* What one batch (one POST /v1/traces, one `spans` message) did. */
struct sn_traces_result {
	size_t accepted;            /* spans stored */
	size_t duplicates;          /* spans the trace held already (same spanId): ignored */
	size_t dropped;             /* spans refused: trace full, or out of memory */
	char dropped_why[160];      /* a sentence for the first reason, when dropped > 0 */
	char error[320];            /* malformed: "resourceSpans[0]...traceId: want 32 hex digits" */
};

/* Since the store was made. */
struct sn_traces_stats {
	uint64_t batches;           /* batches read (empty ones too) */
	uint64_t rejected_batches;  /* malformed: nothing of them stored */
	uint64_t spans;             /* spans stored */
	uint64_t duplicate_spans;
	uint64_t dropped_spans;     /* over a trace's bounds, or out of memory */
	uint64_t dropped_attributes;/* over 64, key too long, or a type not kept */
	uint64_t evicted_traces;    /* to make room (count or memory) */
};

/* GET /api/v1/traces filters. */
struct sn_traces_query {
	const char *service;        /* NULL: any; else a span's service.name */
	size_t limit;               /* 1 .. SN_TRACES_MAX_LIST */
	uint64_t min_duration_ns;
	int error;                  /* -1 any, 0 only traces without, 1 only with an error */
};

#define SN_TRACES_DEFAULT_LIST 20u
#define SN_TRACES_MAX_LIST 1000u

/* Reads one batch: root is the ExportTraceServiceRequest object (other
 * members, such as a control message's "type", are ignored, as OTLP/JSON
 * asks). The whole batch is checked before anything is stored: returns
 * SN_EINVAL with res->error naming the field when any of it is malformed
 * (nothing stored), else 0 with res counting what was stored, ignored and
 * dropped (a full trace drops spans; it never fails the batch). res is the
 * caller's. Borrows root. */
int sn_traces_ingest(struct sn_traces *t, struct fy_node *root, struct sn_traces_result *res);

/* The same from JSON text (a POST body): SN_EINVAL too for text that is
 * not UTF-8 or not JSON. */
int sn_traces_ingest_json(struct sn_traces *t, const char *text, size_t len, struct sn_traces_result *res);

/* After a batch read from text_len bytes of JSON, once its document is
 * freed: gives the parser's memory back to the system when the batch was
 * large (sn_traces_ingest_json does it itself). */
void sn_traces_trim(size_t text_len);

/* Parses a trace id: exactly 32 hex digits, either case, not all zero.
 * Returns 0 with id set, or SN_EINVAL. */
int sn_traces_parse_id(const char *s, size_t len, uint8_t id[16]);

/* GET /api/v1/traces: {"traces":[summaries, newest start first], then the
 * store's counts}. On allocation failure o->failed is set. */
void sn_traces_render_list(struct sn_traces *t, const struct sn_traces_query *q, struct sn_out *o);

/* GET /api/v1/traces/{id}: the summary, then "resourceSpans" in OTLP JSON
 * (spans grouped by resource and scope, in start order). Returns 0, or
 * SN_ENOTFOUND (nothing written). */
int sn_traces_render_trace(struct sn_traces *t, const uint8_t id[16], struct sn_out *o);

/* Appends the store's counts as members: `"stored":N,"spans":N,...`. */
void sn_traces_render_counts(const struct sn_traces *t, struct sn_out *o);

const struct sn_traces_stats *sn_traces_stats(const struct sn_traces *t);
size_t sn_traces_count(const struct sn_traces *t);
size_t sn_traces_span_count(const struct sn_traces *t);
size_t sn_traces_bytes(const struct sn_traces *t);

/* Drops every trace (counters are kept). Fuzzing: every input meets an
 * empty store. */
void sn_traces_clear(struct sn_traces *t);

#endif
