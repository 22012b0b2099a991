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
		uint64_t hi = rnd(arg), lo = rnd(arg);
		for (int i = 0; i < 8; i++) {
			out->trace_id[i] = (uint8_t)(hi >> (56 - 8 * i));
			out->trace_id[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
		}
		if (all_zero(out->trace_id, 16))
			out->trace_id[15] = 1;
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

/* Two hex digits per byte, by table: this runs on every request. */
static const char hex2[513] =
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	"202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
	"404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
	"606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
	"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
	"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	"c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
	"e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

static char *hex_bytes(char *p, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++, p += 2)
		memcpy(p, hex2 + 2 * b[i], 2);
	return p;
}

static char *hex_u64(char *p, uint64_t v)
{
	for (int i = 56; i >= 0; i -= 8, p += 2)
		memcpy(p, hex2 + 2 * ((v >> i) & 0xff), 2);
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

/* POSTs body (taken) to a tracer. */
static void post(struct sn_trace_out *to, const struct sn_ext_authz *p, const struct sn_cluster *cl, char *body,
		 size_t len, uint32_t spans)
{
	const char *why = NULL;
	char head[512];
	int hl = snprintf(head, sizeof(head),
			  "POST %s HTTP/1.1\r\nhost: %s:%u\r\ncontent-type: application/json\r\n"
			  "content-length: %zu\r\nconnection: close\r\n\r\n",
			  p->path_prefix, cl->service, p->port, len);
	char *out = hl > 0 && (size_t)hl < sizeof(head) && to->inflight < TRACE_MAX_INFLIGHT ? malloc((size_t)hl + len)
											  : NULL;
	if (out == NULL) {
		sn_metrics_add(to->w->metrics, SN_CTR_TRACE_SPANS_DROPPED, spans);
		free(body);
		return;
	}
	memcpy(out, head, (size_t)hl);
	memcpy(out + hl, body, len);
	free(body);
	if (sn_oneshot_start(to->w, cl, out, (size_t)hl + len, TRACE_EXPORT_ANSWER, p->timeout_ms, export_answered, to,
			     &why) == NULL) {
		sn_metrics_add(to->w->metrics, SN_CTR_TRACE_EXPORTS_FAILED, 1);
		return;
	}
	to->inflight++;
}

/* The OTLP request body: the batch's spans under this proxy's resource. */
static char *otlp_body(struct sn_trace_out *to, const char *prefix, size_t *len)
{
	struct sn_proxy *p = to->w->proxy;
	struct sn_out o = { 0 };
	char svc[300];
	snprintf(svc, sizeof(svc), "%s.%s", p->opt.service ? p->opt.service : "unknown",
		 p->identity.namespace_ ? p->identity.namespace_ : "default");
	sn_out_cstr(&o, prefix);
	sn_out_cstr(&o, "\"resourceSpans\":[{\"resource\":{\"attributes\":[");
	kv_otlp(&o, "service.name", sn_str_make(svc, strlen(svc)), 1);
	kv_otlp(&o, "service.instance.id", sn_str_make(p->workload, strlen(p->workload)), 0);
	if (p->identity.namespace_ != NULL)
		kv_otlp(&o, "k8s.namespace.name",
			sn_str_make(p->identity.namespace_, strlen(p->identity.namespace_)), 0);
	sn_out_cstr(&o, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"sinew-proxy\",\"version\":\"0.1.0\"},\"spans\":[");
	sn_out_raw(&o, to->otlp.p, to->otlp.len);
	sn_out_cstr(&o, "]}]}]}");
	if (o.failed) {
		sn_out_free(&o);
		return NULL;
	}
	*len = o.len;
	return o.p;
}

static void flush(struct sn_trace_out *to)
{
	struct sn_worker *w = to->w;
	const struct sn_snapshot *s = w->snap;
	size_t len;

	if (to->n == 0)
		return;
	if (w->proxy->cp != NULL) {
		char *m = otlp_body(to, "{\"type\":\"spans\",", &len);
		if (m == NULL || sn_cp_send_spans(w->proxy, m, len) != 0)
			sn_metrics_add(w->metrics, SN_CTR_TRACE_SPANS_DROPPED, to->n);
	}
	for (size_t i = 0; s != NULL && i < s->tracing.n_providers; i++) {
		const struct sn_ext_authz *p = &s->ext_authz[s->tracing.providers[i]];
		if (p->cluster >= s->n_clusters)
			continue;
		char *body = NULL;
		if (p->proto == SN_EXT_TRACE_OTLP) {
			body = otlp_body(to, "{", &len);
		} else if (to->zipkin.len > 0 && (body = malloc(to->zipkin.len + 2)) != NULL) {
			body[0] = '[';
			memcpy(body + 1, to->zipkin.p, to->zipkin.len);
			body[to->zipkin.len + 1] = ']';
			len = to->zipkin.len + 2;
		}
		if (body == NULL)
			sn_metrics_add(w->metrics, SN_CTR_TRACE_SPANS_DROPPED, to->n);
		else
			post(to, p, &s->clusters[p->cluster], body, len, to->n);
	}
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

	/* OTLP: https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding
	 * (IDs in hex, 64-bit integers as strings, kind 2 server, 3 client) */
	struct sn_out *o = &to->otlp;
	sn_out_printf(o, "%s{\"traceId\":\"%s\",\"spanId\":\"%s\"", to->n ? "," : "", tid, sid);
	if (t->parent_id != 0)
		sn_out_printf(o, ",\"parentSpanId\":\"%s\"", pid);
	sn_out_cstr(o, ",\"name\":");
	sn_out_json_str(o, sp->name.p, sp->name.len);
	sn_out_printf(o, ",\"kind\":%d,\"startTimeUnixNano\":\"%lld000\",\"endTimeUnixNano\":\"%lld000\",\"attributes\":[",
		      sp->server ? 2 : 3, (long long)sp->start_us, (long long)sp->end_us);
	for (size_t i = 0; i < sp->n_attrs; i++)
		kv_otlp(o, sp->attrs[i].key, sp->attrs[i].value, i == 0);
	sn_out_printf(o, "],\"status\":{\"code\":%d", sp->error ? 2 : 0);
	if (sp->error && sp->message != NULL) {
		sn_out_cstr(o, ",\"message\":");
		sn_out_json_cstr(o, sp->message);
	}
	sn_out_cstr(o, "}}");

	/* Zipkin v2 (https://zipkin.io/zipkin-api/#/default/post_spans) */
	if (has_tracer(w->snap, SN_EXT_TRACE_ZIPKIN)) {
		struct sn_proxy *p = w->proxy;
		struct sn_out *z = &to->zipkin;
		sn_out_printf(z, "%s{\"traceId\":\"%s\",\"id\":\"%s\"", to->n ? "," : "", tid, sid);
		if (t->parent_id != 0)
			sn_out_printf(z, ",\"parentId\":\"%s\"", pid);
		sn_out_printf(z, ",\"kind\":\"%s\",\"name\":", sp->server ? "SERVER" : "CLIENT");
		sn_out_json_str(z, sp->name.p, sp->name.len);
		sn_out_printf(z, ",\"timestamp\":%lld,\"duration\":%lld,\"localEndpoint\":{\"serviceName\":\"%s.%s\"}",
			      (long long)sp->start_us, (long long)SN_MAX(sp->end_us - sp->start_us, 1),
			      p->opt.service ? p->opt.service : "unknown",
			      p->identity.namespace_ ? p->identity.namespace_ : "default");
		sn_out_cstr(z, ",\"tags\":{");
		for (size_t i = 0; i < sp->n_attrs; i++) {
			if (i)
				sn_out_cstr(z, ",");
			sn_out_json_cstr(z, sp->attrs[i].key);
			sn_out_cstr(z, ":");
			sn_out_json_str(z, sp->attrs[i].value.p, sp->attrs[i].value.len);
		}
		sn_out_cstr(z, "}}");
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
