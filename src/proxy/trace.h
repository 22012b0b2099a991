#ifndef SINEW_PROXY_TRACE_H
#define SINEW_PROXY_TRACE_H

/* Trace context (trace.c): W3C Trace Context (traceparent) and B3, multi
 * header (x-b3-*) and single header (b3), read from a request and written
 * for the next hop; spans recorded per worker and exported in batches
 * (docs/observability.md, "Tracing"). */

#include <stddef.h>
#include <stdint.h>

#include "sinew/h1.h"

/* What a request brought. A context with no IDs may still carry a
 * sampling decision (b3: 0, x-b3-sampled alone). */
struct sn_trace_in {
	uint8_t trace_id[16];        /* all zero: none */
	uint64_t span_id;            /* the caller's span; 0: none */
	int sampled;                 /* -1 undecided, 0, 1 */
	int trace64;                 /* a 64-bit B3 trace ID: written back as 16 hex digits */
	unsigned forms;              /* SN_TRACE_W3C | ...: the forms the request carried (valid or not) */
	const char *source;          /* "traceparent", "b3", "x-b3" or NULL */
};

/* Reads the trace context of a request's fields: traceparent first (when
 * valid), then b3, then x-b3-*. Never fails: what is malformed is taken
 * as absent (a new trace starts). Bounded by the fields' lengths. */
void sn_trace_parse(const struct sn_h1_header *h, size_t n, struct sn_trace_in *out);

#define SN_TRACE_W3C 1u        /* traceparent */
#define SN_TRACE_B3 2u         /* x-b3-traceid, -spanid, -parentspanid, -sampled */
#define SN_TRACE_B3_SINGLE 4u  /* b3 */

/* One hop's context, once begun (filter_trace.c). */
struct sn_trace_ctx {
	uint8_t trace_id[16];
	uint64_t span_id;            /* this hop's span: the next hop's parent */
	uint64_t parent_id;          /* the caller's span; 0: this span is a root */
	uint8_t active;              /* begun: the fields below are set */
	uint8_t sampled;
	uint8_t trace64;
	uint8_t forms;               /* the forms it goes upstream in (SN_TRACE_*) */
};

/* Makes this hop's context from what came (a new trace when nothing
 * valid came; the sampling decision made here, pct percent, when none
 * came). It goes upstream in every form the request carried; a new trace
 * in W3C and B3 when sampled, in W3C alone when not (one field on the
 * common path: an unsampled request costs little). rnd: called at most
 * three times. */
void sn_trace_begin(const struct sn_trace_in *in, double pct, uint64_t (*rnd)(void *), void *arg,
		    struct sn_trace_ctx *out);

/* The fields a context goes upstream with (sn_fx_trace_send): names
 * (static, lower case) and values written into buf. A NULL value removes
 * a field the client sent. Returns the count (at most
 * SN_TRACE_MAX_FIELDS). */
#define SN_TRACE_MAX_FIELDS 6
#define SN_TRACE_FIELDS_BYTES 224
struct sn_trace_field {
	const char *name;
	const char *value;           /* NUL-terminated, in buf; NULL: remove */
	size_t len;
};
size_t sn_trace_fields(const struct sn_trace_ctx *t, char buf[SN_TRACE_FIELDS_BYTES],
		       struct sn_trace_field out[SN_TRACE_MAX_FIELDS]);

/* One finished span, for sn_trace_record (views valid for the call). */
struct sn_trace_attr {
	const char *key;             /* JSON-safe: Istio's tag names, or customTags names (checked at load) */
	size_t key_len;
	struct sn_str value;
};
struct sn_trace_span {
	struct sn_str name;
	int server;                  /* inbound: a server span; else a client span */
	int64_t start_us, end_us;    /* wall clock */
	const struct sn_trace_attr *attrs;
	size_t n_attrs;
	int error;                   /* 5xx or no answer */
	const char *message;         /* with error: why (the sinew-error reason) */
};

struct sn_worker;
/* Whether spans of this worker go anywhere (sinewd, a tracer), and are
 * not switched off (disableSpanReporting). */
int sn_trace_exporting(struct sn_worker *w);
/* Adds a sampled span to the worker's batch (worker thread). */
void sn_trace_record(struct sn_worker *w, const struct sn_trace_ctx *t, const struct sn_trace_span *sp);
/* At the worker's end, after its oneshot calls are closed. */
void sn_trace_out_free(struct sn_worker *w);

/* Hex forms (NUL-terminated). */
void sn_trace_id_hex(const uint8_t id[16], int trace64, char out[33]);
void sn_span_id_hex(uint64_t id, char out[17]);

#endif
