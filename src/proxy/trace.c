/* Tracing: the trace context of a request (W3C traceparent, B3 single and
 * multi header), and the spans a worker records, exported in batches.
 *
 * Context: traceparent is read first (version 00, or a later version's
 * first 55 bytes), then b3, then x-b3-*; what is malformed is taken as
 * absent. Each hop makes a span of its own (a new span ID, the caller's
 * as parent) and sends it upstream in every form the request carried, so
 * an app that forwards only Istio's B3 fields or only traceparent keeps
 * its trace whole. A trace started here goes in both W3C and B3 when
 * sampled, in traceparent alone when not: the common, unsampled request
 * pays for one field. tracestate passes untouched.
 *
 * Export: a worker writes each sampled span as OTLP JSON (and Zipkin v2
 * JSON when a zipkin tracer is configured) into its batch; the batch goes
 * after TRACE_FLUSH_MS, or at once when TRACE_BATCH_SPANS are in it: to
 * sinewd over the control link (a "spans" message; control-plane mode)
 * and to each tracer of the proxy's config (a POST of one's own, as
 * oneshot.c makes, at most TRACE_MAX_INFLIGHT per worker). Nothing waits
 * for it: a full batch, a busy tracer or a full control link drops spans,
 * counted in sinew_trace_spans_dropped_total. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/json.h"
#include "sinew/log.h"
#include "sinew/out.h"
#include "proxy.h"
#include "trace.h"

#define TRACE_FLUSH_MS 1000
#define TRACE_BATCH_SPANS 128
#define TRACE_MAX_SPANS 1024          /* a batch's spans while an export is slow */
#define TRACE_MAX_BATCH_BYTES (1u << 20)
#define TRACE_MAX_INFLIGHT 4
#define TRACE_EXPORT_ANSWER 512

/* Spans are written into room reserved for their worst case (every byte
 * escaped), so the appends below need no bound check of their own. */
static inline void put_raw(struct sn_json_out *j, const char *s, size_t n)
{
	memcpy(j->buf + j->len, s, n);
	j->len += n;
}
#define J_LIT(j, lit) put_raw((j), "" lit, sizeof(lit) - 1)   /* "" lit: a literal only */
#define J_SEL(j, c, a, b) ((c) ? J_LIT(j, a) : J_LIT(j, b))

/* Whether none of the 8 bytes in x needs escaping in JSON: none below
 * 0x20, none from 0x80, no '"' and no '\\' (the exact "has a byte below
 * n" test of Hacker's Delight, 6-2, for each). */
static inline int plain8(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
	return (((x - ones * 0x20) & ~x) | x | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs ? 0 : 1;
}

/* A JSON string: most span strings are plain ASCII with nothing to
 * escape, checked 8 bytes at a time and copied as they are; any other
 * goes through the tree's one escaping rule. */
static void put_str(struct sn_json_out *j, const char *s, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t x;
		memcpy(&x, s + i, 8);
		if (!plain8(x))
			break;
	}
	if (i + 8 > n && i < n) {
		uint64_t x = 0x2020202020202020ull;   /* the tail, padded with spaces */
		memcpy(&x, s + i, n - i);
		if (plain8(x))
			i = n;
	}
	if (i < n) {
		sn_json_out_str(j, s, n, SIZE_MAX);
		return;
	}
	char *p = j->buf + j->len;
	p[0] = '"';
	memcpy(p + 1, s, n);
	p[n + 1] = '"';
	j->len += n + 2;
}

/* ---- context ------------------------------------------------------------ */

static int all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

static uint64_t be64(const uint8_t b[8])
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	return v;
}

/* A B3 trace ID: 16 or 32 hex digits. */
static int b3_trace(struct sn_str s, struct sn_trace_in *in)
{
	uint8_t id[16] = { 0 };
	if ((s.len != 16 && s.len != 32) || sn_hex_decode(s.p, s.len / 2, id + (s.len == 16 ? 8 : 0)) != 0 || all_zero(id, 16))
		return -1;
	memcpy(in->trace_id, id, 16);
	in->trace64 = s.len == 16;
	return 0;
}

static int span_id(struct sn_str s, uint64_t *out)
{
	uint8_t b[8];
	if (s.len != 16 || sn_hex_decode(s.p, 8, b) != 0 || all_zero(b, 8))
		return -1;
	*out = be64(b);
	return 0;
}

static int b3_sampled(struct sn_str s)
{
	if (sn_str_eq_cstr(s, "1") || sn_str_eq_cstr(s, "d") || sn_str_ieq_cstr(s, "true"))
		return 1;
	if (sn_str_eq_cstr(s, "0") || sn_str_ieq_cstr(s, "false"))
		return 0;
	return -1;
}

/* W3C: "00-<32>-<16>-<2>"; a later version may add "-..." after that. */
static int parse_traceparent(struct sn_str v, struct sn_trace_in *in)
{
	uint8_t ver, flags, tid[16];
	uint64_t sid;
	if (v.len < 55 || v.p[2] != '-' || v.p[35] != '-' || v.p[52] != '-' || sn_hex_decode(v.p, 1, &ver) != 0 ||
	    ver == 0xff || (ver == 0 && v.len != 55) || (v.len > 55 && v.p[55] != '-'))
		return -1;
	for (size_t i = 0; i < 55; i++)   /* lower case only (W3C) */
		if (v.p[i] >= 'A' && v.p[i] <= 'F')
			return -1;
	if (sn_hex_decode(v.p + 3, 16, tid) != 0 || all_zero(tid, 16) || span_id(sn_str_make(v.p + 36, 16), &sid) != 0 ||
	    sn_hex_decode(v.p + 53, 1, &flags) != 0)
		return -1;
	memcpy(in->trace_id, tid, 16);
	in->span_id = sid;
	in->sampled = flags & 1;
	in->trace64 = 0;
	in->source = "traceparent";
	return 0;
}

/* b3: "{trace}-{span}[-{sampled}[-{parent}]]" or a lone "{sampled}". */
static int parse_b3(struct sn_str v, struct sn_trace_in *in)
{
	struct sn_str part[4];
	size_t n = 0, start = 0;
	for (size_t i = 0; i <= v.len; i++) {
		if (i < v.len && v.p[i] != '-')
			continue;
		if (n == 4)
			return -1;   /* a fifth part */
		part[n++] = sn_str_make(v.p + start, i - start);
		start = i + 1;
	}
	if (n == 1) {
		in->sampled = b3_sampled(part[0]);
		return in->sampled < 0 ? -1 : 0;
	}
	struct sn_trace_in t = *in;
	if (b3_trace(part[0], &t) != 0 || span_id(part[1], &t.span_id) != 0)
		return -1;
	if (n >= 3 && (t.sampled = b3_sampled(part[2])) < 0)
		return -1;
	*in = t;
	in->source = "b3";
	return 0;
}

void sn_trace_parse(const struct sn_h1_header *h, size_t n, struct sn_trace_in *out)
{
	int tp = -1, b3 = -1, xt = -1, xs = -1, xsam = -1, xflags = -1;
	memset(out, 0, sizeof(*out));
	out->sampled = -1;
	for (size_t i = 0; i < n; i++) {
		struct sn_str nm = h[i].name;
		if (nm.len == 11 && sn_str_ieq_cstr(nm, "traceparent"))
			tp = tp < 0 ? (int)i : tp;
		else if (nm.len == 2 && sn_str_ieq_cstr(nm, "b3"))
			b3 = b3 < 0 ? (int)i : b3;
		else if (nm.len > 5 && (nm.p[0] | 0x20) == 'x' && nm.p[1] == '-' && (nm.p[2] | 0x20) == 'b') {
			if (sn_str_ieq_cstr(nm, "x-b3-traceid"))
				xt = (int)i;
			else if (sn_str_ieq_cstr(nm, "x-b3-spanid"))
				xs = (int)i;
			else if (sn_str_ieq_cstr(nm, "x-b3-sampled"))
				xsam = (int)i;
			else if (sn_str_ieq_cstr(nm, "x-b3-flags"))
				xflags = (int)i;
		}
	}
	out->forms = (tp >= 0 ? SN_TRACE_W3C : 0) | (b3 >= 0 ? SN_TRACE_B3_SINGLE : 0) |
		     (xt >= 0 || xs >= 0 || xsam >= 0 ? SN_TRACE_B3 : 0);
	if (tp >= 0 && parse_traceparent(h[tp].value, out) == 0) {
		/* a 64-bit B3 trace ID beside it (a proxy before us wrote both):
		 * kept 64-bit for the B3 fields */
		struct sn_trace_in t = *out;
		if (xt >= 0 && h[xt].value.len == 16 && b3_trace(h[xt].value, &t) == 0 &&
		    !memcmp(t.trace_id, out->trace_id, 16))
			out->trace64 = 1;
		return;
	}
	if (b3 >= 0 && parse_b3(h[b3].value, out) == 0 && out->source != NULL)
		return;
	if (xt >= 0 && xs >= 0) {
		struct sn_trace_in t = *out;
		if (b3_trace(h[xt].value, &t) == 0 && span_id(h[xs].value, &t.span_id) == 0) {
			*out = t;
			out->source = "x-b3";
		}
	}
	if (out->sampled < 0 && xsam >= 0)
		out->sampled = b3_sampled(h[xsam].value);
	if (xflags >= 0 && sn_str_eq_cstr(h[xflags].value, "1"))
		out->sampled = 1;   /* debug */
}

void sn_trace_begin(const struct sn_trace_in *in, double pct, uint64_t (*rnd)(void *), void *arg,
		    struct sn_trace_ctx *out)
{
	memset(out, 0, sizeof(*out));
	out->active = 1;
	out->forms = (uint8_t)in->forms;
	if (in->source != NULL) {
		memcpy(out->trace_id, in->trace_id, 16);
		out->parent_id = in->span_id;
		out->trace64 = (uint8_t)in->trace64;
	} else {
		/* random bytes: their order does not matter */
		uint64_t r[2] = { rnd(arg), rnd(arg) | 1 };
		memcpy(out->trace_id, r, 16);
	}
	do
		out->span_id = rnd(arg);
	while (out->span_id == 0);
	if (in->sampled >= 0)
		out->sampled = (uint8_t)in->sampled;
	else
		out->sampled = pct >= 100 || (pct > 0 && (double)(out->span_id >> 11) * 0x1.0p-53 * 100.0 < pct);
	if (in->source == NULL)
		out->forms |= SN_TRACE_W3C | (out->sampled ? SN_TRACE_B3 : 0);
}

/* 16 lower-case hex digits of v, most significant first, without a
 * loop or a table (SWAR): this runs on every request. Each nibble is
 * spread to a byte of its own, 0-9 and a-f made by adding '0' and, where
 * the nibble is over 9, the distance from '9' + 1 to 'a'. */
static char *hex_u64(char *p, uint64_t v)
{
	for (int half = 0; half < 2; half++) {
		uint64_t x = half ? v & 0xffffffffu : v >> 32;
		x = ((x & 0xffff0000u) << 16) | (x & 0xffffu);
		x = ((x & 0x0000ff000000ff00ull) << 8) | (x & 0x000000ff000000ffull);
		x = ((x & 0x00f000f000f000f0ull) << 4) | (x & 0x000f000f000f000full);
		uint64_t over9 = ((x + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
		x += 0x3030303030303030ull + over9 * ('a' - '9' - 1);
		x = __builtin_bswap64(x);
		memcpy(p + 8 * half, &x, 8);
	}
	return p + 16;
}

static char *hex_bytes(char *p, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i += 8)
		p = hex_u64(p, be64(b + i));
	return p;
}

void sn_trace_id_hex(const uint8_t id[16], int trace64, char out[33])
{
	*hex_bytes(out, id + (trace64 ? 8 : 0), trace64 ? 8 : 16) = '\0';
}

void sn_span_id_hex(uint64_t id, char out[17])
{
	*hex_u64(out, id) = '\0';
}

/* Starts a field's value at buf + *at; end() closes it. */
static char *field(struct sn_trace_field *f, const char *name, char *buf, size_t at)
{
	f->name = name;
	f->value = buf + at;
	return buf + at;
}

static void end(struct sn_trace_field *f, char *p, char *buf, size_t *at)
{
	*p = '\0';
	f->len = (size_t)(p - f->value);
	*at = (size_t)(p + 1 - buf);
}

size_t sn_trace_fields(const struct sn_trace_ctx *t, char buf[SN_TRACE_FIELDS_BYTES],
		       struct sn_trace_field out[SN_TRACE_MAX_FIELDS])
{
	/* at most 56 + 33 + 17 + 17 + 2 + 70 bytes < SN_TRACE_FIELDS_BYTES */
	const uint8_t *tid = t->trace_id + (t->trace64 ? 8 : 0);
	size_t tl = t->trace64 ? 8 : 16, n = 0, at = 0;
	char *p;
	if (t->forms & SN_TRACE_W3C) {
		p = field(&out[n], "traceparent", buf, at);
		memcpy(p, "00-", 3);
		p = hex_bytes(p + 3, t->trace_id, 16);
		*p++ = '-';
		p = hex_u64(p, t->span_id);
		memcpy(p, t->sampled ? "-01" : "-00", 3);
		end(&out[n++], p + 3, buf, &at);
	}
	if (t->forms & SN_TRACE_B3) {
		p = field(&out[n], "x-b3-traceid", buf, at);
		end(&out[n++], hex_bytes(p, tid, tl), buf, &at);
		p = field(&out[n], "x-b3-spanid", buf, at);
		end(&out[n++], hex_u64(p, t->span_id), buf, &at);
		out[n] = (struct sn_trace_field){ "x-b3-parentspanid", NULL, 0 };
		if (t->parent_id != 0) {
			p = field(&out[n], "x-b3-parentspanid", buf, at);
			end(&out[n], hex_u64(p, t->parent_id), buf, &at);
		}
		n++;
		p = field(&out[n], "x-b3-sampled", buf, at);
		*p = t->sampled ? '1' : '0';
		end(&out[n++], p + 1, buf, &at);
	}
	if (t->forms & SN_TRACE_B3_SINGLE) {
		p = field(&out[n], "b3", buf, at);
		p = hex_bytes(p, tid, tl);
		*p++ = '-';
		p = hex_u64(p, t->span_id);
		*p++ = '-';
		*p = t->sampled ? '1' : '0';
		end(&out[n++], p + 1, buf, &at);
	}
	return n;
}

/* ---- spans and their export --------------------------------------------- */

struct sn_trace_out {
	struct sn_worker *w;
	struct sn_out otlp;          /* OTLP span objects, comma-separated */
	struct sn_out zipkin;        /* Zipkin v2 span objects, comma-separated */
	uint32_t n;
	struct sn_timer timer;
	int timer_on;
	uint32_t inflight;
};

/* Whether the worker's config has a tracer of this kind. */
static int has_tracer(const struct sn_snapshot *s, enum sn_ext_authz_proto kind)
{
	for (size_t i = 0; s != NULL && i < s->tracing.n_providers; i++)
		if (s->ext_authz[s->tracing.providers[i]].proto == kind)
			return 1;
	return 0;
}

int sn_trace_exporting(struct sn_worker *w)
{
	const struct sn_snapshot *s = w->snap;
	if (s != NULL && s->tracing.no_reporting)
		return 0;
	return w->proxy->cp != NULL || (s != NULL && s->tracing.n_providers > 0);
}

static void kv_otlp(struct sn_out *o, const char *k, struct sn_str v, int first)
{
	sn_out_cstr(o, first ? "{\"key\":" : ",{\"key\":");
	sn_out_json_cstr(o, k);
	sn_out_cstr(o, ",\"value\":{\"stringValue\":");
	sn_out_json_str(o, v.p, v.len);
	sn_out_cstr(o, "}}");
}

static void export_answered(void *user, enum sn_oneshot_end how, char *resp, size_t len)
{
	struct sn_trace_out *to = user;
	int ok = how == SN_ONESHOT_ANSWERED && len >= 12 && !memcmp(resp, "HTTP/1.", 7) && resp[9] == '2';
	if (!ok)
		sn_metrics_add(to->w->metrics, SN_CTR_TRACE_EXPORTS_FAILED, 1);
	to->inflight--;
	free(resp);
}

/* One message in one allocation: head, then open, the batch, close --
 * the batch copied once per destination. NULL when out of memory. */
static char *assemble(const char *head, size_t hl, const struct sn_out *open, const struct sn_out *batch,
		      const char *close, size_t *len)
{
	size_t cl = strlen(close), n = hl + open->len + batch->len + cl;
	char *m = open->failed ? NULL : malloc(n);
	if (m == NULL)
		return NULL;
	memcpy(m, head, hl);
	memcpy(m + hl, open->p, open->len);
	memcpy(m + hl + open->len, batch->p, batch->len);
	memcpy(m + hl + open->len + batch->len, close, cl);
	*len = n;
	return m;
}

/* POSTs open + batch + close to a tracer (its own connection). */
static void post(struct sn_trace_out *to, const struct sn_ext_authz *p, const struct sn_cluster *cl,
		 const struct sn_out *open, const struct sn_out *batch, const char *close)
{
	const char *why = NULL;
	char head[512];
	size_t len = 0;
	int hl = snprintf(head, sizeof(head),
			  "POST %s HTTP/1.1\r\nhost: %s:%u\r\ncontent-type: application/json\r\n"
			  "content-length: %zu\r\nconnection: close\r\n\r\n",
			  p->path_prefix, cl->service, p->port, open->len + batch->len + strlen(close));
	char *out = hl > 0 && (size_t)hl < sizeof(head) && to->inflight < TRACE_MAX_INFLIGHT
			    ? assemble(head, (size_t)hl, open, batch, close, &len)
			    : NULL;
	if (out == NULL) {
		sn_metrics_add(to->w->metrics, SN_CTR_TRACE_SPANS_DROPPED, to->n);
		return;
	}
	if (sn_oneshot_start(to->w, cl, out, len, TRACE_EXPORT_ANSWER, p->timeout_ms, export_answered, to, &why) ==
	    NULL) {
		sn_metrics_add(to->w->metrics, SN_CTR_TRACE_EXPORTS_FAILED, 1);
		return;
	}
	to->inflight++;
}

/* Istio's span tags that are the proxy's, not the request's: in OTLP the
 * resource's attributes (said once per batch, shown on every span), in
 * Zipkin each span's tags. n: how many (at most PROXY_ATTRS). */
#define PROXY_ATTRS 6
static size_t proxy_attrs(const struct sn_proxy *p, struct sn_trace_attr *a)
{
	const char *app = sn_labels_get(&p->labels, "app"), *ver = sn_labels_get(&p->labels, "version");
	const char *svc = app ? app : p->opt.service ? p->opt.service : "unknown";
	const char *ns = p->identity.namespace_ ? p->identity.namespace_ : "default";
	const char *mesh = p->opt.trust_domain ? p->opt.trust_domain : "cluster.local";
	size_t n = 0;
#define PA(k, v) (a[n++] = (struct sn_trace_attr){ "" k, sizeof(k) - 1, sn_str_make((v), strlen(v)) })
	PA("component", "proxy");
	PA("istio.canonical_service", svc);
	PA("istio.canonical_revision", ver ? ver : "latest");
	PA("istio.namespace", ns);
	PA("istio.mesh_id", mesh);
	PA("node_id", p->workload);
#undef PA
	return n;
}

/* What comes before an OTLP batch: this proxy's resource, and its scope. */
static void otlp_open(struct sn_trace_out *to, const char *prefix, struct sn_out *o)
{
	struct sn_proxy *p = to->w->proxy;
	struct sn_trace_attr pa[PROXY_ATTRS];
	size_t n = proxy_attrs(p, pa);
	char svc[300];
	snprintf(svc, sizeof(svc), "%s.%s", p->opt.service ? p->opt.service : "unknown",
		 p->identity.namespace_ ? p->identity.namespace_ : "default");
	sn_out_cstr(o, prefix);
	sn_out_cstr(o, "\"resourceSpans\":[{\"resource\":{\"attributes\":[");
	kv_otlp(o, "service.name", sn_str_make(svc, strlen(svc)), 1);
	kv_otlp(o, "service.instance.id", sn_str_make(p->workload, strlen(p->workload)), 0);
	if (p->identity.namespace_ != NULL)
		kv_otlp(o, "k8s.namespace.name", sn_str_make(p->identity.namespace_, strlen(p->identity.namespace_)), 0);
	for (size_t i = 0; i < n; i++)
		kv_otlp(o, pa[i].key, pa[i].value, 0);
	sn_out_cstr(o, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"sinew-proxy\",\"version\":\"0.1.0\"},\"spans\":[");
}

#define OTLP_CLOSE "]}]}]}"

static void flush(struct sn_trace_out *to)
{
	struct sn_worker *w = to->w;
	const struct sn_snapshot *s = w->snap;
	struct sn_out open = { 0 };
	size_t len;

	if (to->n == 0)
		return;
	if (w->proxy->cp != NULL) {
		otlp_open(to, "{\"type\":\"spans\",", &open);
		char *m = assemble("", 0, &open, &to->otlp, OTLP_CLOSE, &len);
		if (m == NULL || sn_cp_send_telemetry(w->proxy, m, len) != 0)
			sn_metrics_add(w->metrics, SN_CTR_TRACE_SPANS_DROPPED, to->n);
		open.len = 0;
	}
	for (size_t i = 0; s != NULL && i < s->tracing.n_providers; i++) {
		const struct sn_ext_authz *p = &s->ext_authz[s->tracing.providers[i]];
		if (p->cluster >= s->n_clusters)
			continue;
		struct sn_out zopen = { .p = "[", .len = 1 };
		if (p->proto == SN_EXT_TRACE_OTLP) {
			open.len = 0;
			otlp_open(to, "{", &open);
			post(to, p, &s->clusters[p->cluster], &open, &to->otlp, OTLP_CLOSE);
		} else {
			post(to, p, &s->clusters[p->cluster], &zopen, &to->zipkin, "]");
		}
	}
	sn_out_free(&open);
	to->otlp.len = 0;
	to->zipkin.len = 0;
	to->n = 0;
}

static void on_flush_timer(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_trace_out *to = sn_container_of(t, struct sn_trace_out, timer);
	(void)loop;
	to->timer_on = 0;
	flush(to);
}

void sn_trace_record(struct sn_worker *w, const struct sn_trace_ctx *t, const struct sn_trace_span *sp)
{
	struct sn_trace_out *to = w->trace_out;
	char tid[33], sid[17], pid[17];

	if (to == NULL) {
		to = w->trace_out = calloc(1, sizeof(*to));
		if (to == NULL) {
			sn_metrics_add(w->metrics, SN_CTR_TRACE_SPANS_DROPPED, 1);
			return;
		}
		to->w = w;
	}
	if (to->n >= TRACE_MAX_SPANS || to->otlp.len + to->zipkin.len > TRACE_MAX_BATCH_BYTES) {
		sn_metrics_add(w->metrics, SN_CTR_TRACE_SPANS_DROPPED, 1);
		return;
	}
	sn_trace_id_hex(t->trace_id, 0, tid);
	sn_span_id_hex(t->span_id, sid);
	sn_span_id_hex(t->parent_id, pid);

	/* Room for the worst case (every byte escaped as \u00XX), reserved
	 * once: the span is then written with the bounded writer, no call
	 * that may grow the buffer per field. */
	size_t want = 512 + 6 * (sp->name.len + (sp->message ? strlen(sp->message) : 0));
	for (size_t i = 0; i < sp->n_attrs; i++)
		want += 64 + sp->attrs[i].key_len + 6 * sp->attrs[i].value.len;
	struct sn_json_out j;
	char *at;

	/* OTLP: https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding
	 * (IDs in hex, 64-bit integers as strings, kind 2 server, 3 client) */
	struct sn_out *o = &to->otlp;
	if ((at = sn_out_reserve(o, want)) != NULL) {
		sn_json_out_init(&j, at, want);
		J_SEL(&j, to->n, ",{\"traceId\":\"", "{\"traceId\":\"");
		put_raw(&j, tid, 32);
		J_LIT(&j, "\",\"spanId\":\"");
		put_raw(&j, sid, 16);
		if (t->parent_id != 0) {
			J_LIT(&j, "\",\"parentSpanId\":\"");
			put_raw(&j, pid, 16);
		}
		J_LIT(&j, "\",\"name\":");
		put_str(&j, sp->name.p, sp->name.len);
		J_SEL(&j, sp->server, ",\"kind\":2,\"startTimeUnixNano\":\"", ",\"kind\":3,\"startTimeUnixNano\":\"");
		sn_json_out_i64(&j, sp->start_us);
		J_LIT(&j, "000\",\"endTimeUnixNano\":\"");
		sn_json_out_i64(&j, sp->end_us);
		J_LIT(&j, "000\",\"attributes\":[");
		for (size_t i = 0; i < sp->n_attrs; i++) {
			J_SEL(&j, i, ",{\"key\":\"", "{\"key\":\"");
			put_raw(&j, sp->attrs[i].key, sp->attrs[i].key_len);
			J_LIT(&j, "\",\"value\":{\"stringValue\":");
			put_str(&j, sp->attrs[i].value.p, sp->attrs[i].value.len);
			J_LIT(&j, "}}");
		}
		J_SEL(&j, sp->error, "],\"status\":{\"code\":2", "],\"status\":{\"code\":0");
		if (sp->error && sp->message != NULL) {
			J_LIT(&j, ",\"message\":");
			put_str(&j, sp->message, strlen(sp->message));
		}
		J_LIT(&j, "}}");
		sn_out_commit(o, j.len);
	}

	/* Zipkin v2 (https://zipkin.io/zipkin-api/#/default/post_spans) */
	struct sn_trace_attr pa[PROXY_ATTRS];
	size_t npa = 0, zwant = want + 256;
	if (has_tracer(w->snap, SN_EXT_TRACE_ZIPKIN)) {
		npa = proxy_attrs(w->proxy, pa);
		for (size_t i = 0; i < npa; i++)
			zwant += 8 + pa[i].key_len + 6 * pa[i].value.len;
	}
	if (npa > 0 && (at = sn_out_reserve(&to->zipkin, zwant)) != NULL) {
		struct sn_proxy *p = w->proxy;
		const char *svc = p->opt.service ? p->opt.service : "unknown";
		const char *ns = p->identity.namespace_ ? p->identity.namespace_ : "default";
		sn_json_out_init(&j, at, zwant);
		J_SEL(&j, to->n, ",{\"traceId\":\"", "{\"traceId\":\"");
		put_raw(&j, tid, 32);
		J_LIT(&j, "\",\"id\":\"");
		put_raw(&j, sid, 16);
		if (t->parent_id != 0) {
			J_LIT(&j, "\",\"parentId\":\"");
			put_raw(&j, pid, 16);
		}
		J_SEL(&j, sp->server, "\",\"kind\":\"SERVER\",\"name\":", "\",\"kind\":\"CLIENT\",\"name\":");
		put_str(&j, sp->name.p, sp->name.len);
		J_LIT(&j, ",\"timestamp\":");
		sn_json_out_i64(&j, sp->start_us);
		J_LIT(&j, ",\"duration\":");
		sn_json_out_i64(&j, SN_MAX(sp->end_us - sp->start_us, 1));
		J_LIT(&j, ",\"localEndpoint\":{\"serviceName\":\"");
		/* service and namespace: DNS labels, nothing to escape */
		put_raw(&j, svc, SN_MIN(strlen(svc), (size_t)63));
		J_LIT(&j, ".");
		put_raw(&j, ns, SN_MIN(strlen(ns), (size_t)63));
		J_LIT(&j, "\"},\"tags\":{");
		for (size_t i = 0; i < npa; i++) {
			J_SEL(&j, i, ",\"", "\"");
			put_raw(&j, pa[i].key, pa[i].key_len);
			J_LIT(&j, "\":");
			put_str(&j, pa[i].value.p, pa[i].value.len);
		}
		for (size_t i = 0; i < sp->n_attrs; i++) {
			J_LIT(&j, ",");
			J_LIT(&j, "\"");
			put_raw(&j, sp->attrs[i].key, sp->attrs[i].key_len);
			J_LIT(&j, "\":");
			put_str(&j, sp->attrs[i].value.p, sp->attrs[i].value.len);
		}
		J_LIT(&j, "}}");
		sn_out_commit(&to->zipkin, j.len);
	}
	if (o->failed || to->zipkin.failed) {
		/* no room: the span is dropped, the batch stays whole */
		sn_out_free(&to->otlp);
		sn_out_free(&to->zipkin);
		memset(&to->otlp, 0, sizeof(to->otlp));
		memset(&to->zipkin, 0, sizeof(to->zipkin));
		sn_metrics_add(w->metrics, SN_CTR_TRACE_SPANS_DROPPED, to->n + 1);
		to->n = 0;
		return;
	}
	to->n++;
	sn_metrics_add(w->metrics, SN_CTR_TRACE_SPANS, 1);
	if (to->n >= TRACE_BATCH_SPANS) {
		if (to->timer_on)
			sn_timer_stop(&w->loop, &to->timer);
		to->timer_on = 0;
		flush(to);
	} else if (!to->timer_on) {
		to->timer_on = 1;
		sn_timer_start(&w->loop, &to->timer, TRACE_FLUSH_MS, on_flush_timer);
	}
}

void sn_trace_out_free(struct sn_worker *w)
{
	struct sn_trace_out *to = w->trace_out;
	if (to == NULL)
		return;
	if (to->timer_on)
		sn_timer_stop(&w->loop, &to->timer);
	sn_out_free(&to->otlp);
	sn_out_free(&to->zipkin);
	free(to);
	w->trace_out = NULL;
}
