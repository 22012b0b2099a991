/* sinewd's trace store (docs/api.md "Traces"): the spans that proxies
 * export, kept in memory so traces are visible with nothing else
 * installed. Two ways in, one reader: a `spans` message on the control
 * link (mesh.c) and OTLP/HTTP JSON on the API port (api.c) both hand an
 * OTLP ExportTraceServiceRequest to sn_traces_ingest.
 *
 * A batch is read in two passes. The first checks all of it and renders
 * each span, resource and scope into bounded, normalized OTLP JSON (keys,
 * values, names cut to their bounds); a malformed batch stops there and
 * stores nothing, so an exporter told 400 has not half-delivered. The
 * second files each span under its trace, which is where the store's
 * bounds drop spans or evict the oldest traces.
 *
 * Traces are found by id in a sorted array (no hash an exporter could
 * aim at) and evicted oldest first-seen first, from a list. What a trace
 * shows in a listing (its root, services, duration) is recomputed only
 * when spans arrived since. Loop thread only. */
#include <libfyaml.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/config.h"
#include "sinew/json.h"
#include "sinew/out.h"
#include "sinew/sorted.h"
#include "traces.h"

#define UNKNOWN_SERVICE "unknown_service"   /* OTel's name for a resource without service.name */
#define TRIM_AFTER (1u << 20)                /* JSON batches this large give memory back after */

/* ---- the store ---------------------------------------------------------- */

struct span {
	uint8_t id[8];
	uint8_t parent[8];
	uint8_t has_parent;
	uint8_t error;               /* status ERROR, or attribute error=true */
	uint32_t res;                /* index into the trace's resources */
	uint32_t scope;              /* index into the trace's scopes */
	uint32_t seq;                /* arrival order within the trace */
	uint64_t start_ns, end_ns;
	char *name;
	size_t name_len;
	char *json;                  /* the span, OTLP JSON, as it is shown */
	size_t json_len;
};

/* A resource or a scope of a trace, kept once per trace: its JSON text
 * is what tells two apart. */
struct blob {
	char *json;
	size_t len;
	char *service;               /* resources: service.name, or UNKNOWN_SERVICE */
	size_t service_len;
};

struct trace {
	uint8_t id[16];
	uint64_t seq;                /* first seen: eviction order */
	struct trace *older, *newer; /* first-seen list */
	struct span *spans;
	size_t n, cap;
	struct blob *res;
	size_t n_res, cap_res;
	struct blob *scopes;
	size_t n_scopes, cap_scopes;
	size_t dropped;              /* spans refused for its bounds */
	size_t bytes;                /* what it allocated (approximately) */
	uint64_t start_ns, end_ns;   /* earliest start, latest end */
	int error;
	/* summary, recomputed when spans arrived since (summary_n != n) */
	size_t summary_n;
	size_t root;                 /* index into spans */
};

struct sn_traces {
	struct sn_traces_limits lim;
	size_t trace_bytes_max;      /* one trace's share: lim.bytes / 8 */
	struct trace **by_id;        /* sorted by id */
	size_t n, cap;
	struct trace *oldest, *newest;
	uint64_t next_seq;
	size_t spans;
	size_t bytes;
	struct sn_traces_stats stats;
};

struct sn_traces *sn_traces_new(const struct sn_traces_limits *lim)
{
	struct sn_traces *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->lim.traces = lim && lim->traces ? lim->traces : SN_TRACES_MAX_TRACES;
	t->lim.spans_per_trace = lim && lim->spans_per_trace ? lim->spans_per_trace : SN_TRACES_MAX_SPANS;
	t->lim.bytes = lim && lim->bytes ? lim->bytes : SN_TRACES_MAX_BYTES;
	t->trace_bytes_max = t->lim.bytes / 8;
	return t;
}

static void blobs_free(struct blob *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].json);
		free(v[i].service);
	}
	free(v);
}

static void trace_free(struct trace *tr)
{
	for (size_t i = 0; i < tr->n; i++) {
		free(tr->spans[i].name);
		free(tr->spans[i].json);
	}
	free(tr->spans);
	blobs_free(tr->res, tr->n_res);
	blobs_free(tr->scopes, tr->n_scopes);
	free(tr);
}

void sn_traces_clear(struct sn_traces *t)
{
	while (t->oldest != NULL) {
		struct trace *tr = t->oldest;
		t->oldest = tr->newer;
		trace_free(tr);
	}
	t->newest = NULL;
	t->n = 0;
	t->spans = 0;
	t->bytes = 0;
}

void sn_traces_free(struct sn_traces *t)
{
	if (t == NULL)
		return;
	sn_traces_clear(t);
	free(t->by_id);
	free(t);
}

static int cmp_trace_id(const void *key, const void *elem)
{
	return memcmp(key, (*(struct trace *const *)elem)->id, 16);
}

/* Index of the first trace whose id is >= id. */
static size_t lower_bound(const struct sn_traces *t, const uint8_t id[16])
{
	return sn_lower_bound(t->by_id, t->n, sizeof(*t->by_id), id, cmp_trace_id, NULL);
}

static struct trace *find(const struct sn_traces *t, const uint8_t id[16])
{
	size_t i = lower_bound(t, id);
	return i < t->n && !memcmp(t->by_id[i]->id, id, 16) ? t->by_id[i] : NULL;
}

static void trace_remove(struct sn_traces *t, struct trace *tr)
{
	size_t i = lower_bound(t, tr->id);
	memmove(&t->by_id[i], &t->by_id[i + 1], (t->n - i - 1) * sizeof(*t->by_id));
	t->n--;
	if (tr->older != NULL)
		tr->older->newer = tr->newer;
	else
		t->oldest = tr->newer;
	if (tr->newer != NULL)
		tr->newer->older = tr->older;
	else
		t->newest = tr->older;
	t->spans -= tr->n;
	t->bytes -= tr->bytes;
	trace_free(tr);
}

static void evict_oldest(struct sn_traces *t)
{
	trace_remove(t, t->oldest);
	t->stats.evicted_traces++;
}

static struct trace *trace_new(struct sn_traces *t, const uint8_t id[16])
{
	while (t->n >= t->lim.traces && t->oldest != NULL)
		evict_oldest(t);
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		struct trace **v = realloc(t->by_id, cap * sizeof(*v));
		if (v == NULL)
			return NULL;
		t->by_id = v;
		t->cap = cap;
	}
	struct trace *tr = calloc(1, sizeof(*tr));
	if (tr == NULL)
		return NULL;
	memcpy(tr->id, id, 16);
	tr->seq = t->next_seq++;
	tr->start_ns = UINT64_MAX;
	tr->summary_n = (size_t)-1;
	tr->bytes = sizeof(*tr);
	size_t i = lower_bound(t, id);
	memmove(&t->by_id[i + 1], &t->by_id[i], (t->n - i) * sizeof(*t->by_id));
	t->by_id[i] = tr;
	t->n++;
	tr->older = t->newest;
	if (t->newest != NULL)
		t->newest->newer = tr;
	else
		t->oldest = tr;
	t->newest = tr;
	t->bytes += tr->bytes;
	return tr;
}

/* ---- reading a batch: helpers over libfyaml's nodes --------------------- */

/* The parts of a batch, checked and rendered, before anything is stored. */
struct pend_span {
	uint8_t trace[16];
	struct span s;               /* res and scope index the batch's arrays */
};

struct batch {
	struct blob *res;
	size_t n_res, cap_res;
	struct blob *scopes;
	size_t n_scopes, cap_scopes;
	struct pend_span *spans;
	size_t n, cap;
	struct sn_out o;             /* scratch: one rendering at a time */
	size_t dropped_attrs;
	char *err;                   /* res->error */
	size_t err_size;
	/* where we are, for error messages */
	size_t ri, si, pi;
	int depth;                   /* 0 request, 1 resourceSpans[ri], 2 scopeSpans[si], 3 spans[pi] */
};

static int bad(struct batch *b, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Records what is wrong and where; returns SN_EINVAL. */
static int bad(struct batch *b, const char *field, const char *fmt, ...)
{
	char why[200], where[160] = "";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (b->depth == 1)
		snprintf(where, sizeof(where), "resourceSpans[%zu]", b->ri);
	else if (b->depth == 2)
		snprintf(where, sizeof(where), "resourceSpans[%zu].scopeSpans[%zu]", b->ri, b->si);
	else if (b->depth == 3)
		snprintf(where, sizeof(where), "resourceSpans[%zu].scopeSpans[%zu].spans[%zu]", b->ri, b->si, b->pi);
	if (where[0] == '\0' && field[0] == '\0')
		snprintf(b->err, b->err_size, "%s", why);
	else
		snprintf(b->err, b->err_size, "%s%s%s: %s", where, where[0] && field[0] ? "." : "", field, why);
	return SN_EINVAL;
}

static int is_plain(struct fy_node *n)
{
	return n != NULL && fy_node_is_scalar(n) && fy_node_get_style(n) == FYNS_PLAIN;
}

/* A quoted scalar: a JSON string. */
static int is_string(struct fy_node *n)
{
	if (n == NULL || !fy_node_is_scalar(n))
		return 0;
	enum fy_node_style st = fy_node_get_style(n);
	return st != FYNS_PLAIN && st != FYNS_ALIAS;
}

static int is_null(struct fy_node *n)
{
	size_t len;
	const char *s = is_plain(n) ? fy_node_get_scalar(n, &len) : NULL;
	return s != NULL && len == 4 && !memcmp(s, "null", 4);
}

/* A member; NULL when absent or null (proto3 JSON: the default). */
static struct fy_node *member(struct fy_node *map, const char *key)
{
	struct fy_node *n = map != NULL ? fy_node_mapping_lookup_by_string(map, key, FY_NT) : NULL;
	return n == NULL || is_null(n) ? NULL : n;
}

static const char *scalar_text(struct fy_node *n, size_t *len)
{
	const char *s = n != NULL && fy_node_is_scalar(n) && fy_node_get_style(n) != FYNS_ALIAS
				? fy_node_get_scalar(n, len)
				: NULL;
	if (s == NULL)
		*len = 0;
	return s;
}

/* An unsigned decimal (proto3 JSON writes 64-bit integers as strings,
 * and takes numbers too). Returns 0 or -1. */
static int parse_u64(struct fy_node *n, uint64_t *out)
{
	size_t len;
	const char *s = scalar_text(n, &len);
	uint64_t v = 0;
	if (s == NULL || len == 0 || len > 20)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int parse_i64(struct fy_node *n, int64_t *out)
{
	size_t len;
	const char *s = scalar_text(n, &len);
	uint64_t v = 0, max;
	int neg;
	if (s == NULL || len == 0 || len > 21)
		return -1;
	neg = s[0] == '-';
	max = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	if ((size_t)neg == len)
		return -1;
	for (size_t i = (size_t)neg; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

/* Whether s is a JSON number (RFC 8259 grammar). */
static int json_number(const char *s, size_t len)
{
	size_t i = 0;
	if (i < len && s[i] == '-')
		i++;
	if (i >= len)
		return 0;
	if (s[i] == '0') {
		i++;
	} else if (s[i] >= '1' && s[i] <= '9') {
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
	} else {
		return 0;
	}
	if (i < len && s[i] == '.') {
		size_t d = ++i;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d)
			return 0;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		size_t d = i;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d)
			return 0;
	}
	return i == len;
}

/* An enum: a number within [0, max] or one of names (proto3 JSON takes
 * either). Returns the value or -1. */
static int parse_enum(struct fy_node *n, const char *const *names, int max)
{
	size_t len;
	const char *s = scalar_text(n, &len);
	uint64_t v;
	if (s == NULL)
		return -1;
	if (parse_u64(n, &v) == 0)
		return v <= (uint64_t)max ? (int)v : -1;
	for (int i = 0; i <= max; i++)
		if (strlen(names[i]) == len && !memcmp(names[i], s, len))
			return i;
	return -1;
}

/* n bytes from 2n hex digits, either case. Returns 0, -1 (not hex), or 1
 * (all zero). */
static int parse_hex_id(const char *s, size_t len, uint8_t *out, size_t n)
{
	uint8_t any = 0;
	if (s == NULL || len != 2 * n)
		return -1;
	if (sn_hex_decode(s, n, out) != 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		any |= out[i];
	return any ? 0 : 1;
}

int sn_traces_parse_id(const char *s, size_t len, uint8_t id[16])
{
	return parse_hex_id(s, len, id, 16) == 0 ? 0 : SN_EINVAL;
}

/* n (at most 16) bytes as lower-case hex and a NUL. */
static void hex(char *out, const uint8_t *b, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static void out_hex(struct sn_out *o, const uint8_t *b, size_t n)
{
	char buf[36];
	buf[0] = '"';
	hex(buf + 1, b, SN_MIN(n, 16));
	buf[1 + 2 * SN_MIN(n, 16)] = '"';
	sn_out_raw(o, buf, 2 + 2 * SN_MIN(n, 16));
}

/* How much of s (len bytes) fits in max without splitting a UTF-8
 * sequence. */
static size_t cut_utf8(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	size_t n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

/* A string member, truncated to SN_TRACES_MAX_VALUE. Returns 1 (present),
 * 0 (absent or null), or SN_EINVAL. */
static int get_string(struct batch *b, struct fy_node *map, const char *key, const char *field, const char **s,
		      size_t *len)
{
	struct fy_node *n = member(map, key);
	*s = NULL;
	*len = 0;
	if (n == NULL)
		return 0;
	if (!is_string(n))
		return bad(b, field, "want a string");
	*s = scalar_text(n, len);
	if (*s == NULL)
		return bad(b, field, "want a string");
	*len = cut_utf8(*s, *len, SN_TRACES_MAX_VALUE);
	return 1;
}

/* A sequence member: 1 with *seq, 0 absent, or SN_EINVAL. */
static int get_seq(struct batch *b, struct fy_node *map, const char *key, const char *field, struct fy_node **seq)
{
	*seq = member(map, key);
	if (*seq == NULL)
		return 0;
	if (!fy_node_is_sequence(*seq))
		return bad(b, field, "want an array");
	return 1;
}

/* ---- reading a batch: attributes, spans, resources ------------------------ */

/* What put_attrs noticed on the way. */
struct attr_notes {
	const char *service;         /* service.name, borrowed from the document */
	size_t service_len;
	int error;                   /* error: true */
	uint32_t dropped;
};

/* One AnyValue into o as {"stringValue":...} and so on. Returns 0, 1 (not
 * kept: arrays, key-value lists, long bytes) or SN_EINVAL. */
static int put_value(struct batch *b, const char *field, struct fy_node *v, struct sn_out *o, int *is_true,
		     const char **str, size_t *str_len)
{
	struct fy_node *n;
	char f[128];   /* field (under 96 bytes) and the member's name */
	size_t len;
	const char *s;

	if (v == NULL || !fy_node_is_mapping(v))
		return bad(b, field, "want an AnyValue object, e.g. {\"stringValue\":\"GET\"}");
	if ((n = member(v, "stringValue")) != NULL) {
		snprintf(f, sizeof(f), "%s.stringValue", field);
		if (!fy_node_is_scalar(n) || (s = scalar_text(n, &len)) == NULL)
			return bad(b, f, "want a string");
		len = cut_utf8(s, len, SN_TRACES_MAX_VALUE);
		sn_out_cstr(o, "{\"stringValue\":");
		sn_out_json_str(o, s, len);
		sn_out_cstr(o, "}");
		*str = s;
		*str_len = len;
	} else if ((n = member(v, "boolValue")) != NULL) {
		s = is_plain(n) ? scalar_text(n, &len) : NULL;
		snprintf(f, sizeof(f), "%s.boolValue", field);
		if (s == NULL || !((len == 4 && !memcmp(s, "true", 4)) || (len == 5 && !memcmp(s, "false", 5))))
			return bad(b, f, "want true or false");
		*is_true = len == 4;
		sn_out_cstr(o, *is_true ? "{\"boolValue\":true}" : "{\"boolValue\":false}");
	} else if ((n = member(v, "intValue")) != NULL) {
		int64_t i;
		snprintf(f, sizeof(f), "%s.intValue", field);
		if (parse_i64(n, &i) != 0)
			return bad(b, f, "want a 64-bit integer (a number or a decimal string)");
		sn_out_printf(o, "{\"intValue\":\"%lld\"}", (long long)i);
	} else if ((n = member(v, "doubleValue")) != NULL) {
		s = scalar_text(n, &len);
		snprintf(f, sizeof(f), "%s.doubleValue", field);
		if (s != NULL && json_number(s, len) && len <= 64) {
			sn_out_cstr(o, "{\"doubleValue\":");
			sn_out_raw(o, s, len);
			sn_out_cstr(o, "}");
		} else if (s != NULL && is_string(n) &&
			   ((len == 3 && !memcmp(s, "NaN", 3)) || (len == 8 && !memcmp(s, "Infinity", 8)) ||
			    (len == 9 && !memcmp(s, "-Infinity", 9)))) {
			sn_out_cstr(o, "{\"doubleValue\":");
			sn_out_json_str(o, s, len);
			sn_out_cstr(o, "}");
		} else {
			return bad(b, f, "want a number, \"NaN\", \"Infinity\" or \"-Infinity\"");
		}
	} else if ((n = member(v, "bytesValue")) != NULL) {
		snprintf(f, sizeof(f), "%s.bytesValue", field);
		if (!is_string(n) || (s = scalar_text(n, &len)) == NULL)
			return bad(b, f, "want a base64 string");
		if (len > SN_TRACES_MAX_VALUE)
			return 1;   /* cut base64 means nothing */
		sn_out_cstr(o, "{\"bytesValue\":");
		sn_out_json_str(o, s, len);
		sn_out_cstr(o, "}");
	} else if (member(v, "arrayValue") != NULL || member(v, "kvlistValue") != NULL) {
		return 1;
	} else {
		sn_out_cstr(o, "{}");   /* an empty AnyValue: allowed, means unset */
	}
	return 0;
}

/* An OTLP KeyValue list (field names it in errors) as a JSON array into o:
 * at most SN_TRACES_MAX_ATTRS, keys up to SN_TRACES_MAX_KEY bytes, string
 * values cut to SN_TRACES_MAX_VALUE. Returns 0 or SN_EINVAL. */
static int put_attrs(struct batch *b, struct fy_node *seq, const char *field, struct sn_out *o,
		     struct attr_notes *notes)
{
	struct fy_node *kv;
	void *iter = NULL;
	size_t i = 0, kept = 0;
	char f[96];

	sn_out_cstr(o, "[");
	for (; (kv = fy_node_sequence_iterate(seq, &iter)) != NULL; i++) {
		size_t kl = 0, mark = o->len, sl = 0;
		const char *k, *str = NULL;
		int is_true = 0;
		if (kept >= SN_TRACES_MAX_ATTRS) {
			notes->dropped++;
			continue;
		}
		if (!fy_node_is_mapping(kv)) {
			snprintf(f, sizeof(f), "%s[%zu]", field, i);
			return bad(b, f, "want a {\"key\":...,\"value\":{...}} object");
		}
		snprintf(f, sizeof(f), "%s[%zu].key", field, i);
		struct fy_node *kn = member(kv, "key");
		if (kn == NULL || !is_string(kn) || (k = scalar_text(kn, &kl)) == NULL)
			return bad(b, f, "want a string");
		if (kl == 0 || kl > SN_TRACES_MAX_KEY) {
			notes->dropped++;
			continue;
		}
		if (kept)
			sn_out_cstr(o, ",");
		sn_out_cstr(o, "{\"key\":");
		sn_out_json_str(o, k, kl);
		sn_out_cstr(o, ",\"value\":");
		snprintf(f, sizeof(f), "%s[%zu].value", field, i);
		int rc = put_value(b, f, member(kv, "value"), o, &is_true, &str, &sl);
		if (rc < 0)
			return rc;
		if (rc > 0) {
			o->len = mark;   /* not kept: take back what this one wrote */
			notes->dropped++;
			continue;
		}
		sn_out_cstr(o, "}");
		kept++;
		if (kl == 12 && !memcmp(k, "service.name", 12) && str != NULL) {
			notes->service = str;
			notes->service_len = sl;
		}
		if (kl == 5 && !memcmp(k, "error", 5) && is_true)
			notes->error = 1;
	}
	sn_out_cstr(o, "]");
	return 0;
}

static char *out_take(struct sn_out *o, size_t *len)
{
	char *p = o->failed ? NULL : malloc(o->len ? o->len : 1);
	if (p != NULL)
		memcpy(p, o->p, o->len);
	*len = o->len;
	o->len = 0;
	return p;
}

static int grow(void **v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 8;
	void *p = realloc(*v, c * size);
	if (p == NULL)
		return SN_ENOMEM;
	*v = p;
	*cap = c;
	return 0;
}

/* An optional count member (droppedAttributesCount and the like). */
static int get_count(struct batch *b, struct fy_node *map, const char *key, const char *field, uint64_t *out)
{
	struct fy_node *n = member(map, key);
	*out = 0;
	if (n != NULL && parse_u64(n, out) != 0)
		return bad(b, field, "want a non-negative integer");
	return 0;
}

static const char *const span_kinds[] = { "SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER",
					  "SPAN_KIND_CLIENT", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER" };
static const char *const status_codes[] = { "STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR" };

static int read_span(struct batch *b, struct fy_node *sp, size_t res, size_t scope)
{
	struct pend_span ps;
	struct sn_out *o = &b->o;
	struct fy_node *n;
	const char *s, *name;
	size_t len, name_len;
	uint64_t dropped_attrs, dropped_events, dropped_links, n_events = 0, n_links = 0;
	int kind = 0, code = 0, rc;
	struct attr_notes notes = { 0 };
	const char *msg = NULL;
	size_t msg_len = 0;

	memset(&ps, 0, sizeof(ps));
	ps.s.res = (uint32_t)res;
	ps.s.scope = (uint32_t)scope;
	if (!fy_node_is_mapping(sp))
		return bad(b, "", "want a span object");
	s = is_string(n = member(sp, "traceId")) ? scalar_text(n, &len) : NULL;
	rc = s != NULL ? parse_hex_id(s, len, ps.trace, 16) : -1;
	if (rc < 0)
		return bad(b, "traceId", "want 32 hex digits");
	if (rc > 0)
		return bad(b, "traceId", "an all-zero trace id is invalid");
	s = is_string(n = member(sp, "spanId")) ? scalar_text(n, &len) : NULL;
	rc = s != NULL ? parse_hex_id(s, len, ps.s.id, 8) : -1;
	if (rc < 0)
		return bad(b, "spanId", "want 16 hex digits");
	if (rc > 0)
		return bad(b, "spanId", "an all-zero span id is invalid");
	n = member(sp, "parentSpanId");
	s = n != NULL ? scalar_text(n, &len) : NULL;
	if (n != NULL && (!is_string(n) || s == NULL))
		return bad(b, "parentSpanId", "want 16 hex digits, or \"\" for a root span");
	if (s != NULL && len > 0) {
		rc = parse_hex_id(s, len, ps.s.parent, 8);
		if (rc < 0)
			return bad(b, "parentSpanId", "want 16 hex digits, or \"\" for a root span");
		ps.s.has_parent = rc == 0;   /* all zero: no parent, as "" */
	}
	if ((rc = get_string(b, sp, "name", "name", &name, &name_len)) < 0)
		return rc;
	if ((n = member(sp, "kind")) != NULL && (kind = parse_enum(n, span_kinds, 5)) < 0)
		return bad(b, "kind", "want 0 to 5 or a SpanKind name (SPAN_KIND_SERVER, SPAN_KIND_CLIENT, ...)");
	if ((n = member(sp, "startTimeUnixNano")) == NULL || parse_u64(n, &ps.s.start_ns) != 0 || ps.s.start_ns == 0)
		return bad(b, "startTimeUnixNano", "want nanoseconds since 1970 as a decimal string, e.g. "
						   "\"1544712660000000000\"");
	if ((n = member(sp, "endTimeUnixNano")) == NULL || parse_u64(n, &ps.s.end_ns) != 0)
		return bad(b, "endTimeUnixNano", "want nanoseconds since 1970 as a decimal string, e.g. "
						 "\"1544712661000000000\"");
	if (ps.s.end_ns < ps.s.start_ns)
		return bad(b, "endTimeUnixNano", "ends before startTimeUnixNano");
	if ((n = member(sp, "status")) != NULL) {
		struct fy_node *c;
		if (!fy_node_is_mapping(n))
			return bad(b, "status", "want an object, e.g. {\"code\":2,\"message\":\"...\"}");
		if ((c = member(n, "code")) != NULL && (code = parse_enum(c, status_codes, 2)) < 0)
			return bad(b, "status.code", "want 0, 1, 2 or STATUS_CODE_UNSET, STATUS_CODE_OK, "
						     "STATUS_CODE_ERROR");
		if ((rc = get_string(b, n, "message", "status.message", &msg, &msg_len)) < 0)
			return rc;
	}
	if (get_count(b, sp, "droppedAttributesCount", "droppedAttributesCount", &dropped_attrs) < 0 ||
	    get_count(b, sp, "droppedEventsCount", "droppedEventsCount", &dropped_events) < 0 ||
	    get_count(b, sp, "droppedLinksCount", "droppedLinksCount", &dropped_links) < 0)
		return SN_EINVAL;
	/* Events and links are not kept; they are counted as dropped. */
	if ((rc = get_seq(b, sp, "events", "events", &n)) < 0)
		return rc;
	if (rc > 0)
		n_events = (uint64_t)fy_node_sequence_item_count(n);
	if ((rc = get_seq(b, sp, "links", "links", &n)) < 0)
		return rc;
	if (rc > 0)
		n_links = (uint64_t)fy_node_sequence_item_count(n);

	o->len = 0;
	sn_out_cstr(o, "{\"traceId\":");
	out_hex(o, ps.trace, 16);
	sn_out_cstr(o, ",\"spanId\":");
	out_hex(o, ps.s.id, 8);
	if (ps.s.has_parent) {
		sn_out_cstr(o, ",\"parentSpanId\":");
		out_hex(o, ps.s.parent, 8);
	}
	sn_out_cstr(o, ",\"name\":");
	sn_out_json_str(o, name ? name : "", name_len);
	sn_out_printf(o, ",\"kind\":%d,\"startTimeUnixNano\":\"%llu\",\"endTimeUnixNano\":\"%llu\",\"attributes\":", kind,
		      (unsigned long long)ps.s.start_ns, (unsigned long long)ps.s.end_ns);
	if ((rc = get_seq(b, sp, "attributes", "attributes", &n)) < 0)
		return rc;
	if (rc > 0 && (rc = put_attrs(b, n, "attributes", o, &notes)) < 0)
		return rc;
	if (n == NULL)
		sn_out_cstr(o, "[]");
	b->dropped_attrs += notes.dropped;
	dropped_attrs += notes.dropped;
	if (dropped_attrs)
		sn_out_printf(o, ",\"droppedAttributesCount\":%u",
			      (unsigned)SN_MIN(dropped_attrs, (uint64_t)UINT32_MAX));
	if (dropped_events + n_events)
		sn_out_printf(o, ",\"droppedEventsCount\":%u",
			      (unsigned)SN_MIN(dropped_events + n_events, (uint64_t)UINT32_MAX));
	if (dropped_links + n_links)
		sn_out_printf(o, ",\"droppedLinksCount\":%u",
			      (unsigned)SN_MIN(dropped_links + n_links, (uint64_t)UINT32_MAX));
	sn_out_printf(o, ",\"status\":{\"code\":%d", code);
	if (msg_len) {
		sn_out_cstr(o, ",\"message\":");
		sn_out_json_str(o, msg, msg_len);
	}
	sn_out_cstr(o, "}}");
	ps.s.error = code == 2 || notes.error;

	if (grow((void **)&b->spans, &b->cap, b->n, sizeof(*b->spans)) != 0)
		return SN_ENOMEM;
	ps.s.json = out_take(o, &ps.s.json_len);
	ps.s.name_len = name_len;
	ps.s.name = malloc(name_len + 1);
	if (ps.s.json == NULL || ps.s.name == NULL) {
		free(ps.s.json);
		free(ps.s.name);
		return SN_ENOMEM;
	}
	if (name_len)
		memcpy(ps.s.name, name, name_len);
	ps.s.name[name_len] = '\0';
	b->spans[b->n++] = ps;
	return 0;
}

/* A resource's or scope's rendering, kept in the batch. */
static int add_blob(struct blob **v, size_t *n, size_t *cap, struct sn_out *o, const char *service,
		    size_t service_len)
{
	struct blob bl = { 0 };
	if (grow((void **)v, cap, *n, sizeof(**v)) != 0)
		return SN_ENOMEM;
	bl.json = out_take(o, &bl.len);
	if (service != NULL) {
		bl.service = malloc(service_len + 1);
		if (bl.service != NULL) {
			memcpy(bl.service, service, service_len);
			bl.service[service_len] = '\0';
		}
		bl.service_len = service_len;
	}
	if (bl.json == NULL || (service != NULL && bl.service == NULL)) {
		free(bl.json);
		free(bl.service);
		return SN_ENOMEM;
	}
	(*v)[(*n)++] = bl;
	return 0;
}

static int read_scope_spans(struct batch *b, struct fy_node *ss, size_t res)
{
	struct fy_node *scope, *spans, *sp;
	const char *name = NULL, *version = NULL;
	size_t nl = 0, vl = 0;
	void *iter = NULL;
	int rc;

	if (!fy_node_is_mapping(ss))
		return bad(b, "", "want a ScopeSpans object ({\"scope\":{...},\"spans\":[...]})");
	if ((scope = member(ss, "scope")) != NULL) {
		if (!fy_node_is_mapping(scope))
			return bad(b, "scope", "want an object ({\"name\":...,\"version\":...})");
		if ((rc = get_string(b, scope, "name", "scope.name", &name, &nl)) < 0 ||
		    (rc = get_string(b, scope, "version", "scope.version", &version, &vl)) < 0)
			return rc;
	}
	sn_out_cstr(&b->o, "{");
	if (name != NULL) {
		sn_out_cstr(&b->o, "\"name\":");
		sn_out_json_str(&b->o, name, nl);
	}
	if (version != NULL) {
		sn_out_cstr(&b->o, name != NULL ? ",\"version\":" : "\"version\":");
		sn_out_json_str(&b->o, version, vl);
	}
	sn_out_cstr(&b->o, "}");
	if (add_blob(&b->scopes, &b->n_scopes, &b->cap_scopes, &b->o, NULL, 0) != 0)
		return SN_ENOMEM;
	size_t scope_i = b->n_scopes - 1;
	if ((rc = get_seq(b, ss, "spans", "spans", &spans)) <= 0)
		return rc;
	b->depth = 3;
	for (b->pi = 0; (sp = fy_node_sequence_iterate(spans, &iter)) != NULL; b->pi++)
		if ((rc = read_span(b, sp, res, scope_i)) != 0)
			return rc;
	b->depth = 2;
	return 0;
}

static int read_resource_spans(struct batch *b, struct fy_node *rs)
{
	struct fy_node *resource, *attrs = NULL, *list, *ss;
	struct attr_notes notes = { 0 };
	uint64_t dropped = 0;
	void *iter = NULL;
	int rc;

	if (!fy_node_is_mapping(rs))
		return bad(b, "", "want a ResourceSpans object ({\"resource\":{...},\"scopeSpans\":[...]})");
	b->o.len = 0;
	sn_out_cstr(&b->o, "{\"attributes\":");
	if ((resource = member(rs, "resource")) != NULL) {
		if (!fy_node_is_mapping(resource))
			return bad(b, "resource", "want an object ({\"attributes\":[...]})");
		if ((rc = get_seq(b, resource, "attributes", "resource.attributes", &attrs)) < 0)
			return rc;
		if (attrs != NULL && (rc = put_attrs(b, attrs, "resource.attributes", &b->o, &notes)) < 0)
			return rc;
		if (get_count(b, resource, "droppedAttributesCount", "resource.droppedAttributesCount", &dropped) < 0)
			return SN_EINVAL;
	}
	if (attrs == NULL)
		sn_out_cstr(&b->o, "[]");
	b->dropped_attrs += notes.dropped;
	dropped += notes.dropped;
	if (dropped)
		sn_out_printf(&b->o, ",\"droppedAttributesCount\":%u", (unsigned)SN_MIN(dropped, (uint64_t)UINT32_MAX));
	sn_out_cstr(&b->o, "}");
	if (notes.service == NULL || notes.service_len == 0) {
		notes.service = UNKNOWN_SERVICE;
		notes.service_len = sizeof(UNKNOWN_SERVICE) - 1;
	}
	if (add_blob(&b->res, &b->n_res, &b->cap_res, &b->o, notes.service, notes.service_len) != 0)
		return SN_ENOMEM;
	size_t res_i = b->n_res - 1;
	if ((rc = get_seq(b, rs, "scopeSpans", "scopeSpans", &list)) <= 0)
		return rc;
	b->depth = 2;
	for (b->si = 0; (ss = fy_node_sequence_iterate(list, &iter)) != NULL; b->si++) {
		b->o.len = 0;
		if ((rc = read_scope_spans(b, ss, res_i)) != 0)
			return rc;
	}
	b->depth = 1;
	return 0;
}

static void batch_free(struct batch *b)
{
	blobs_free(b->res, b->n_res);
	blobs_free(b->scopes, b->n_scopes);
	for (size_t i = 0; i < b->n; i++) {
		free(b->spans[i].s.name);
		free(b->spans[i].s.json);
	}
	free(b->spans);
	sn_out_free(&b->o);
}

/* ---- filing a batch ----------------------------------------------------- */

/* The trace's copy of a batch's resource or scope: the one with the same
 * JSON, or a new one. Returns its index or -1. */
static long intern(struct blob **v, size_t *n, size_t *cap, const struct blob *b, size_t *bytes)
{
	for (size_t i = 0; i < *n; i++)
		if ((*v)[i].len == b->len && !memcmp((*v)[i].json, b->json, b->len))
			return (long)i;
	if (grow((void **)v, cap, *n, sizeof(**v)) != 0)
		return -1;
	struct blob c = { 0 };
	c.json = malloc(b->len ? b->len : 1);
	c.service = b->service ? malloc(b->service_len + 1) : NULL;
	if (c.json == NULL || (b->service != NULL && c.service == NULL)) {
		free(c.json);
		free(c.service);
		return -1;
	}
	if (c.service != NULL)
		memcpy(c.service, b->service, b->service_len + 1);
	memcpy(c.json, b->json, b->len);
	c.len = b->len;
	c.service_len = b->service_len;
	(*v)[*n] = c;
	*bytes += sizeof(c) + c.len + c.service_len;
	return (long)(*n)++;
}

/* Counts a span refused; the first reason is kept for the answer. */
static void drop(struct sn_traces_result *res, const char *why, const uint8_t trace[16])
{
	char id[33];
	if (res->dropped++ > 0)
		return;
	hex(id, trace, 16);
	snprintf(res->dropped_why, sizeof(res->dropped_why), "trace %s: %s", id, why);
}

/* Files one span (takes its strings). */
static void file_span(struct sn_traces *t, struct batch *b, struct pend_span *ps, struct sn_traces_result *res)
{
	struct trace *tr = find(t, ps->trace);
	size_t before, add = sizeof(struct span) + ps->s.json_len + ps->s.name_len + 1;

	if (tr == NULL && sizeof(struct trace) + add > t->trace_bytes_max) {
		drop(res, "a span larger than a trace may hold (1/8 of the store's memory bound)", ps->trace);
		goto discard;
	}
	if (tr == NULL && (tr = trace_new(t, ps->trace)) == NULL) {
		drop(res, "sinewd is out of memory", ps->trace);
		goto discard;
	}
	if (tr->n >= t->lim.spans_per_trace) {
		tr->dropped++;
		drop(res, "holds the most spans a trace may (the per-trace limit)", ps->trace);
		goto discard;
	}
	if (tr->bytes + add > t->trace_bytes_max) {
		tr->dropped++;
		drop(res, "holds the most bytes a trace may (1/8 of the store's memory bound)", ps->trace);
		goto discard;
	}
	for (size_t i = 0; i < tr->n; i++) {
		if (!memcmp(tr->spans[i].id, ps->s.id, 8)) {
			res->duplicates++;
			goto discard;
		}
	}
	before = tr->bytes;
	long ri = intern(&tr->res, &tr->n_res, &tr->cap_res, &b->res[ps->s.res], &tr->bytes);
	long si = ri < 0 ? -1 : intern(&tr->scopes, &tr->n_scopes, &tr->cap_scopes, &b->scopes[ps->s.scope], &tr->bytes);
	if (si < 0 || grow((void **)&tr->spans, &tr->cap, tr->n, sizeof(*tr->spans)) != 0) {
		t->bytes += tr->bytes - before;
		drop(res, "sinewd is out of memory", ps->trace);
		if (tr->n == 0)
			trace_remove(t, tr);   /* made for this span */
		goto discard;
	}
	struct span *s = &tr->spans[tr->n];
	*s = ps->s;
	s->res = (uint32_t)ri;
	s->scope = (uint32_t)si;
	s->seq = (uint32_t)tr->n;
	tr->n++;
	tr->bytes += add;
	t->bytes += tr->bytes - before;
	t->spans++;
	if (s->start_ns < tr->start_ns)
		tr->start_ns = s->start_ns;
	if (s->end_ns > tr->end_ns)
		tr->end_ns = s->end_ns;
	tr->error |= s->error;
	res->accepted++;
	ps->s.json = NULL;
	ps->s.name = NULL;
	return;
discard:
	free(ps->s.json);
	free(ps->s.name);
	ps->s.json = NULL;
	ps->s.name = NULL;
}

int sn_traces_ingest(struct sn_traces *t, struct fy_node *root, struct sn_traces_result *res)
{
	struct batch b;
	struct fy_node *list, *rs;
	void *iter = NULL;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	memset(&b, 0, sizeof(b));
	b.err = res->error;
	b.err_size = sizeof(res->error);
	if (root == NULL || !fy_node_is_mapping(root)) {
		rc = bad(&b, "", "want a JSON object: an OTLP ExportTraceServiceRequest ({\"resourceSpans\":[...]})");
		goto out;
	}
	if ((rc = get_seq(&b, root, "resourceSpans", "resourceSpans", &list)) <= 0)
		goto out;
	b.depth = 1;
	for (b.ri = 0; (rs = fy_node_sequence_iterate(list, &iter)) != NULL; b.ri++)
		if ((rc = read_resource_spans(&b, rs)) != 0)
			goto out;
	rc = 0;
	if (b.o.failed) {
		rc = SN_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < b.n; i++)
		file_span(t, &b, &b.spans[i], res);
	while (t->bytes > t->lim.bytes && t->oldest != NULL)
		evict_oldest(t);
	t->stats.spans += res->accepted;
	t->stats.duplicate_spans += res->duplicates;
	t->stats.dropped_spans += res->dropped;
	t->stats.dropped_attributes += b.dropped_attrs;
out:
	if (rc == SN_ENOMEM)
		snprintf(res->error, sizeof(res->error), "sinewd is out of memory; retry later");
	if (rc == 0)
		t->stats.batches++;
	else
		t->stats.rejected_batches++;
	batch_free(&b);
	return rc;
}

int sn_traces_ingest_json(struct sn_traces *t, const char *text, size_t len, struct sn_traces_result *res)
{
	if (len == 0 || !sn_utf8_valid(text, len)) {
		memset(res, 0, sizeof(*res));
		snprintf(res->error, sizeof(res->error), len ? "the body is not UTF-8 JSON" : "the body is empty; "
			 "send an OTLP ExportTraceServiceRequest as JSON ({\"resourceSpans\":[...]})");
		t->stats.rejected_batches++;
		return SN_EINVAL;
	}
	struct fy_document *doc = sn_json_parse(text, len);
	if (doc == NULL || fy_document_root(doc) == NULL) {
		if (doc != NULL)
			fy_document_destroy(doc);
		memset(res, 0, sizeof(*res));
		snprintf(res->error, sizeof(res->error), "the body is not JSON; send an OTLP "
			 "ExportTraceServiceRequest in OTLP's JSON encoding ({\"resourceSpans\":[...]})");
		t->stats.rejected_batches++;
		return SN_EINVAL;
	}
	int rc = sn_traces_ingest(t, fy_document_root(doc), res);
	fy_document_destroy(doc);
	sn_traces_trim(len);
	return rc;
}

void sn_traces_trim(size_t text_len)
{
	/* libfyaml takes about 50 bytes per byte of JSON, in small blocks,
	 * interleaved with what the store keeps: without this a batch of a
	 * few MiB would leave sinewd hundreds of MiB larger for good. Small
	 * batches (a proxy's usual) are not worth the page faults. */
	if (text_len >= TRIM_AFTER)
		malloc_trim(0);
}

/* ---- rendering ---------------------------------------------------------- */

static int cmp_id8(const void *a, const void *b)
{
	return memcmp(a, b, 8);
}

/* The root: the earliest span whose parent is not in the trace (or the
 * earliest span, when every parent is there: a cycle). */
static void summarize(struct trace *tr)
{
	if (tr->summary_n == tr->n)
		return;
	uint8_t(*ids)[8] = malloc((tr->n ? tr->n : 1) * sizeof(*ids));
	size_t root = SIZE_MAX, first = 0;
	for (size_t i = 0; ids != NULL && i < tr->n; i++)
		memcpy(ids[i], tr->spans[i].id, 8);
	if (ids != NULL)
		qsort(ids, tr->n, sizeof(*ids), cmp_id8);
	for (size_t i = 0; i < tr->n; i++) {
		const struct span *s = &tr->spans[i];
		if (s->start_ns < tr->spans[first].start_ns)
			first = i;
		int orphan = !s->has_parent ||
			     (ids != NULL && bsearch(s->parent, ids, tr->n, sizeof(*ids), cmp_id8) == NULL);
		if (orphan && (root == SIZE_MAX || s->start_ns < tr->spans[root].start_ns))
			root = i;
	}
	free(ids);
	tr->root = root != SIZE_MAX ? root : first;
	tr->summary_n = ids != NULL ? tr->n : (size_t)-1;
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void out_duration_ms(struct sn_out *o, uint64_t ns)
{
	uint64_t us = ns / 1000;
	sn_out_printf(o, "%llu.%03llu", (unsigned long long)(us / 1000), (unsigned long long)(us % 1000));
}

/* The summary's members, without braces. */
static void out_summary(struct sn_out *o, struct trace *tr)
{
	summarize(tr);
	const struct span *root = &tr->spans[tr->root];
	const char **svc = malloc(tr->n_res * sizeof(*svc) + 1);
	size_t n_svc = 0;

	sn_out_cstr(o, "\"traceId\":");
	out_hex(o, tr->id, 16);
	sn_out_cstr(o, ",\"rootService\":");
	sn_out_json_cstr(o, tr->res[root->res].service);
	sn_out_cstr(o, ",\"rootName\":");
	sn_out_json_str(o, root->name, root->name_len);
	sn_out_printf(o, ",\"startTimeUnixNano\":\"%llu\",\"durationMs\":", (unsigned long long)tr->start_ns);
	out_duration_ms(o, tr->end_ns - tr->start_ns);
	sn_out_printf(o, ",\"spanCount\":%zu,\"services\":[", tr->n);
	if (svc == NULL) {
		o->failed = 1;
		return;
	}
	for (size_t i = 0; i < tr->n_res; i++)
		svc[n_svc++] = tr->res[i].service;
	qsort(svc, n_svc, sizeof(*svc), cmp_cstr);
	for (size_t i = 0, shown = 0; i < n_svc; i++) {
		if (i > 0 && !strcmp(svc[i], svc[i - 1]))
			continue;
		if (shown++)
			sn_out_cstr(o, ",");
		sn_out_json_cstr(o, svc[i]);
	}
	free(svc);
	sn_out_printf(o, "],\"error\":%s", tr->error ? "true" : "false");
}

static int has_service(const struct trace *tr, const char *service)
{
	for (size_t i = 0; i < tr->n_res; i++)
		if (!strcmp(tr->res[i].service, service))
			return 1;
	return 0;
}

static int cmp_newest(const void *a, const void *b)
{
	const struct trace *x = *(const struct trace *const *)a, *y = *(const struct trace *const *)b;
	if (x->start_ns != y->start_ns)
		return x->start_ns > y->start_ns ? -1 : 1;
	return x->seq > y->seq ? -1 : x->seq < y->seq;
}

void sn_traces_render_counts(const struct sn_traces *t, struct sn_out *o)
{
	const struct sn_traces_stats *st = &t->stats;
	sn_out_printf(o, "\"stored\":%zu,\"spans\":%zu,\"bytes\":%zu,\"droppedSpans\":%llu,\"rejectedBatches\":%llu,"
			 "\"evictedTraces\":%llu,\"droppedAttributes\":%llu,\"duplicateSpans\":%llu,"
			 "\"limits\":{\"traces\":%zu,\"spansPerTrace\":%zu,\"bytes\":%zu}",
		      t->n, t->spans, t->bytes, (unsigned long long)st->dropped_spans,
		      (unsigned long long)st->rejected_batches, (unsigned long long)st->evicted_traces,
		      (unsigned long long)st->dropped_attributes, (unsigned long long)st->duplicate_spans, t->lim.traces,
		      t->lim.spans_per_trace, t->lim.bytes);
}

void sn_traces_render_list(struct sn_traces *t, const struct sn_traces_query *q, struct sn_out *o)
{
	struct trace **v = malloc((t->n ? t->n : 1) * sizeof(*v));
	size_t n = 0;

	if (v == NULL) {
		o->failed = 1;
		return;
	}
	for (size_t i = 0; i < t->n; i++) {
		struct trace *tr = t->by_id[i];
		if (tr->n == 0 || (q->service != NULL && !has_service(tr, q->service)) ||
		    tr->end_ns - tr->start_ns < q->min_duration_ns || (q->error >= 0 && tr->error != q->error))
			continue;
		v[n++] = tr;
	}
	qsort(v, n, sizeof(*v), cmp_newest);
	sn_out_cstr(o, "{\"traces\":[");
	for (size_t i = 0; i < n && i < q->limit; i++) {
		sn_out_cstr(o, i ? ",{" : "{");
		out_summary(o, v[i]);
		sn_out_cstr(o, "}");
	}
	sn_out_printf(o, "],\"matched\":%zu,", n);
	sn_traces_render_counts(t, o);
	sn_out_cstr(o, "}");
	free(v);
}

/* Span order when shown: by resource, then scope, in the order each is
 * first seen along the trace's timeline; then by start. */
struct shown {
	const struct span *s;
	uint32_t res_rank, scope_rank;
};

static int cmp_start(const void *a, const void *b)
{
	const struct span *x = ((const struct shown *)a)->s, *y = ((const struct shown *)b)->s;
	if (x->start_ns != y->start_ns)
		return x->start_ns < y->start_ns ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cmp_shown(const void *a, const void *b)
{
	const struct shown *x = a, *y = b;
	if (x->res_rank != y->res_rank)
		return x->res_rank < y->res_rank ? -1 : 1;
	if (x->scope_rank != y->scope_rank)
		return x->scope_rank < y->scope_rank ? -1 : 1;
	return cmp_start(a, b);
}

int sn_traces_render_trace(struct sn_traces *t, const uint8_t id[16], struct sn_out *o)
{
	struct trace *tr = find(t, id);
	if (tr == NULL || tr->n == 0)
		return SN_ENOTFOUND;
	struct shown *v = malloc(tr->n * sizeof(*v));
	uint32_t *res_rank = malloc((tr->n_res + tr->n_scopes) * sizeof(*res_rank) + 1);
	if (v == NULL || res_rank == NULL) {
		free(v);
		free(res_rank);
		o->failed = 1;
		return 0;
	}
	uint32_t *scope_rank = res_rank + tr->n_res, nr = 0, ns = 0;
	memset(res_rank, 0xff, (tr->n_res + tr->n_scopes) * sizeof(*res_rank));
	for (size_t i = 0; i < tr->n; i++)
		v[i].s = &tr->spans[i];
	qsort(v, tr->n, sizeof(*v), cmp_start);
	for (size_t i = 0; i < tr->n; i++) {
		if (res_rank[v[i].s->res] == UINT32_MAX)
			res_rank[v[i].s->res] = nr++;
		if (scope_rank[v[i].s->scope] == UINT32_MAX)
			scope_rank[v[i].s->scope] = ns++;
		v[i].res_rank = res_rank[v[i].s->res];
		v[i].scope_rank = scope_rank[v[i].s->scope];
	}
	qsort(v, tr->n, sizeof(*v), cmp_shown);

	sn_out_cstr(o, "{");
	out_summary(o, tr);
	sn_out_printf(o, ",\"droppedSpans\":%zu,\"resourceSpans\":[", tr->dropped);
	for (size_t i = 0; i < tr->n; i++) {
		const struct span *s = v[i].s;
		int new_res = i == 0 || v[i].res_rank != v[i - 1].res_rank;
		int new_scope = new_res || v[i].scope_rank != v[i - 1].scope_rank;
		if (new_res) {
			if (i > 0)
				sn_out_cstr(o, "]}]},");
			sn_out_cstr(o, "{\"resource\":");
			sn_out_raw(o, tr->res[s->res].json, tr->res[s->res].len);
			sn_out_cstr(o, ",\"scopeSpans\":[");
		} else if (new_scope) {
			sn_out_cstr(o, "]},");
		}
		if (new_scope) {
			sn_out_cstr(o, "{\"scope\":");
			sn_out_raw(o, tr->scopes[s->scope].json, tr->scopes[s->scope].len);
			sn_out_cstr(o, ",\"spans\":[");
		} else {
			sn_out_cstr(o, ",");
		}
		sn_out_raw(o, s->json, s->json_len);
	}
	sn_out_cstr(o, "]}]}]}");
	free(v);
	free(res_rank);
	return 0;
}

const struct sn_traces_stats *sn_traces_stats(const struct sn_traces *t)
{
	return &t->stats;
}

size_t sn_traces_count(const struct sn_traces *t)
{
	return t->n;
}

size_t sn_traces_span_count(const struct sn_traces *t)
{
	return t->spans;
}

size_t sn_traces_bytes(const struct sn_traces *t)
{
	return t->bytes;
}
