/* Fuzzes the trace context a request carries (src/proxy/trace.c):
 * traceparent, b3 and x-b3-* fields, as sn_trace_parse reads them from a
 * request's header list. The input is "name: value" lines ('\n'), at most
 * 16. Properties:
 * - a context taken (source set) has a non-zero trace ID and span ID, and
 *   a sampling decision of -1, 0 or 1;
 * - the fields made for the next hop (sn_trace_begin, sn_trace_fields)
 *   are what they claim: read back, they give the same trace ID, this
 *   hop's span ID as the caller's, and the same decision (and a 64-bit
 *   B3 trace ID stays so when B3 goes on); traceparent is 55 bytes of
 *   lower-case hex and dashes. */
#include <stdint.h>
#include <string.h>

#include "proxy/trace.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t counter_rnd(void *arg)
{
	uint64_t *c = arg;
	return ++*c * 0x9e3779b97f4a7c15ull;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sn_h1_header h[16];
	size_t n = 0, at = 0;
	const char *p = (const char *)data;

	while (at < size && n < 16) {
		const char *nl = memchr(p + at, '\n', size - at);
		size_t end = nl ? (size_t)(nl - p) : size;
		const char *colon = memchr(p + at, ':', end - at);
		if (colon != NULL) {
			size_t v = (size_t)(colon - p) + 1;
			while (v < end && p[v] == ' ')
				v++;
			h[n].name = sn_str_make(p + at, (size_t)(colon - (p + at)));
			h[n].value = sn_str_make(p + v, end - v);
			n++;
		}
		at = end + 1;
	}

	struct sn_trace_in in;
	sn_trace_parse(h, n, &in);
	CHECK(in.sampled >= -1 && in.sampled <= 1);
	if (in.source != NULL) {
		uint8_t zero[16] = { 0 };
		CHECK(memcmp(in.trace_id, zero, 16) != 0);
		CHECK(in.span_id != 0);
	}

	uint64_t c = size;
	struct sn_trace_ctx t;
	sn_trace_begin(&in, 50.0, counter_rnd, &c, &t);
	CHECK(t.active && t.span_id != 0);
	if (in.source != NULL) {
		CHECK(!memcmp(t.trace_id, in.trace_id, 16));
		CHECK(t.parent_id == in.span_id);
	}
	if (in.sampled >= 0)
		CHECK(t.sampled == in.sampled);

	char buf[SN_TRACE_FIELDS_BYTES];
	struct sn_trace_field f[SN_TRACE_MAX_FIELDS];
	size_t nf = sn_trace_fields(&t, buf, f);
	CHECK(nf >= 1 && nf <= SN_TRACE_MAX_FIELDS);
	CHECK(t.forms != 0);
	struct sn_h1_header back[SN_TRACE_MAX_FIELDS];
	size_t nb = 0;
	for (size_t i = 0; i < nf; i++) {
		if (f[i].value == NULL)
			continue;
		CHECK(strlen(f[i].value) == f[i].len);
		if (!strcmp(f[i].name, "traceparent")) {
			CHECK(f[i].len == 55);
			for (size_t k = 0; k < 55; k++)
				CHECK((f[i].value[k] >= '0' && f[i].value[k] <= '9') ||
				      (f[i].value[k] >= 'a' && f[i].value[k] <= 'f') || f[i].value[k] == '-');
		}
		back[nb].name = sn_str_make(f[i].name, strlen(f[i].name));
		back[nb].value = sn_str_make(f[i].value, f[i].len);
		nb++;
	}
	struct sn_trace_in again;
	sn_trace_parse(back, nb, &again);
	CHECK(again.source != NULL);
	CHECK(!memcmp(again.trace_id, t.trace_id, 16));
	CHECK(again.span_id == t.span_id);
	CHECK(again.sampled == t.sampled);
	if (t.forms & SN_TRACE_B3)
		CHECK(again.trace64 == t.trace64);
	return 0;
}
