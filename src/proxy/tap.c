/* Tap (tap.h): the taps sinewd asked for, matched against finished
 * exchanges on the workers, and the events sent back. Wire format:
 * docs/internals/control-protocol.md "tap". */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libfyaml.h>

#include "filter.h"
#include "proxy.h"
#include "sinew/json.h"
#include "sinew/log.h"
#include "sinew/out.h"
#include "tap.h"

/* Always redacted, whatever the tap asked: credentials and sessions. */
static const char *const always_redacted[] = { "authorization", "proxy-authorization", "cookie", "set-cookie" };

int sn_tap_init(struct sn_proxy *p)
{
	struct sn_taps *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return SN_ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	atomic_init(&t->active, 0);
	p->taps = t;
	return 0;
}

void sn_tap_free(struct sn_proxy *p)
{
	if (p->taps == NULL)
		return;
	pthread_mutex_destroy(&p->taps->lock);
	free(p->taps);
	p->taps = NULL;
}

/* ---- sinewd's messages (loop thread) --------------------------------- */

static const char *field(struct fy_node *map, const char *key, size_t *len)
{
	struct fy_node *n = fy_node_mapping_lookup_by_string(map, key, FY_NT);
	*len = 0;
	if (n == NULL || !fy_node_is_scalar(n))
		return NULL;
	return fy_node_get_scalar(n, len);
}

/* Copies a field into dst (size bytes); 0, or -1 when it does not fit. */
static int copy_field(struct fy_node *map, const char *key, char *dst, size_t size)
{
	size_t n;
	const char *s = field(map, key, &n);
	dst[0] = '\0';
	if (s == NULL)
		return 0;
	if (n >= size)
		return -1;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

static void entry_remove(struct sn_taps *t, unsigned i)
{
	t->e[i] = t->e[t->n - 1];
	t->n--;
	atomic_store_explicit(&t->active, t->n, memory_order_relaxed);
}

static int tap_parse(struct fy_node *root, struct sn_tap_entry *e, const char **why)
{
	char dir[16], status[8], dur[16];
	struct fy_node *red;

	memset(e, 0, sizeof(*e));
	if (copy_field(root, "id", e->id, sizeof(e->id)) != 0 || e->id[0] == '\0')
		return *why = "no id", -1;
	if (copy_field(root, "direction", dir, sizeof(dir)) != 0)
		return *why = "bad direction", -1;
	e->dirs = !strcmp(dir, "inbound") ? SN_FILTER_INBOUND : !strcmp(dir, "outbound") ? SN_FILTER_OUTBOUND
						  : SN_FILTER_INBOUND | SN_FILTER_OUTBOUND;
	if (copy_field(root, "method", e->method, sizeof(e->method)) != 0 ||
	    copy_field(root, "path", e->path, sizeof(e->path)) != 0 ||
	    copy_field(root, "authority", e->authority, sizeof(e->authority)) != 0)
		return *why = "a filter is too long", -1;
	if (copy_field(root, "status", status, sizeof(status)) != 0 || sn_status_range(status, &e->status_lo, &e->status_hi) != 0)
		return *why = "bad status", -1;
	if (copy_field(root, "bodies", dir, sizeof(dir)) != 0)
		return *why = "bad bodies", -1;
	e->bodies = !strcmp(dir, "true");
	if (copy_field(root, "durationMs", dur, sizeof(dur)) != 0)
		return *why = "bad durationMs", -1;
	unsigned long ms = strtoul(dur, NULL, 10);
	if (ms == 0 || ms > SN_TAP_MAX_DURATION_MS)
		ms = SN_TAP_MAX_DURATION_MS;
	e->expires_us = sn_clock_us() + (uint64_t)ms * 1000;
	red = fy_node_mapping_lookup_by_string(root, "redact", FY_NT);
	if (red != NULL && fy_node_is_sequence(red)) {
		void *it = NULL;
		struct fy_node *n;
		while ((n = fy_node_sequence_iterate(red, &it)) != NULL && e->n_redact < SN_TAP_MAX_REDACT) {
			size_t len;
			const char *s = fy_node_is_scalar(n) ? fy_node_get_scalar(n, &len) : NULL;
			if (s == NULL || len == 0 || len >= sizeof(e->redact[0]))
				continue;
			for (size_t i = 0; i < len; i++)
				e->redact[e->n_redact][i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
			e->redact[e->n_redact][len] = '\0';
			e->n_redact++;
		}
	}
	e->tokens = SN_TAP_RATE;
	e->refill_us = sn_clock_us();
	return 0;
}

void sn_tap_on_message(struct sn_proxy *p, int add, struct fy_node *root)
{
	struct sn_taps *t = p->taps;
	struct sn_tap_entry e;
	const char *why = NULL;
	uint64_t now = sn_clock_us();

	if (t == NULL)
		return;
	if (add && tap_parse(root, &e, &why) != 0) {
		sn_log(SN_LOG_WARN, "tap: sinewd asked for a tap this proxy cannot read (%s); ignored", why);
		return;
	}
	if (!add && copy_field(root, "id", e.id, sizeof(e.id)) != 0)
		return;
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < t->n;) {
		/* the same id again replaces it; expired ones go */
		if (!strcmp(t->e[i].id, e.id) || t->e[i].expires_us <= now)
			entry_remove(t, i);
		else
			i++;
	}
	if (add) {
		if (t->n < SN_TAP_MAX) {
			t->e[t->n++] = e;
			atomic_store_explicit(&t->active, t->n, memory_order_relaxed);
		} else {
			why = "the proxy's limit of taps at once";
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (why != NULL)
		sn_log(SN_LOG_WARN, "tap: tap %s refused: %s (%d)", e.id, why, SN_TAP_MAX);
	else
		sn_log(SN_LOG_INFO, "tap: %s %s", add ? "tapping for" : "tap ended:", e.id);
}

void sn_tap_clear(struct sn_proxy *p)
{
	struct sn_taps *t = p->taps;
	if (t == NULL)
		return;
	pthread_mutex_lock(&t->lock);
	t->n = 0;
	atomic_store_explicit(&t->active, 0, memory_order_relaxed);
	pthread_mutex_unlock(&t->lock);
}

/* ---- matching (workers) ---------------------------------------------- */

static int authority_matches(const char *want, struct sn_str have)
{
	size_t wl = strlen(want);
	if (have.len == wl && strncasecmp(have.p, want, wl) == 0)
		return 1;
	/* "reviews" or "reviews.default.svc.cluster.local" matches
	 * "reviews:9080": the host without its port */
	const char *colon = have.len > 0 && have.p[0] != '[' ? memchr(have.p, ':', have.len) : NULL;
	size_t hl = colon ? (size_t)(colon - have.p) : have.len;
	return hl == wl && strncasecmp(have.p, want, wl) == 0;
}

static int head_matches(const struct sn_tap_entry *e, unsigned dir, const struct sn_h1_request *req, uint64_t now)
{
	if (e->expires_us <= now || !(e->dirs & dir))
		return 0;
	if (e->method[0] && !sn_str_eq_cstr(req->method, e->method))
		return 0;
	if (e->path[0]) {
		size_t pl = strlen(e->path);
		if (req->path.len < pl || memcmp(req->path.p, e->path, pl) != 0)
			return 0;
	}
	if (e->authority[0] && !authority_matches(e->authority, req->authority))
		return 0;
	return 1;
}

int sn__tap_prematch(struct sn_proxy *p, unsigned dir, const struct sn_h1_request *req, int *bodies)
{
	struct sn_taps *t = p->taps;
	uint64_t now = sn_clock_us();
	int any = 0;

	*bodies = 0;
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < t->n; i++) {
		if (head_matches(&t->e[i], dir, req, now)) {
			any = 1;
			*bodies |= t->e[i].bodies;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return any;
}

/* ---- capture (the exchange's worker) --------------------------------- */

void sn__tap_capture_head(struct sn_tap_capture *c, const struct sn_h1_response *r)
{
	c->fields_len = 0;
	c->n_fields = 0;
	c->fields_cut = 0;
	for (size_t i = 0; i < r->num_headers; i++) {
		const struct sn_h1_header *h = &r->headers[i];
		size_t need = h->name.len + h->value.len + 2;
		if (c->fields_len + need > sizeof(c->fields)) {
			c->fields_cut = 1;
			break;
		}
		memcpy(c->fields + c->fields_len, h->name.p, h->name.len);
		c->fields_len += h->name.len;
		c->fields[c->fields_len++] = '\0';
		memcpy(c->fields + c->fields_len, h->value.p, h->value.len);
		c->fields_len += h->value.len;
		c->fields[c->fields_len++] = '\0';
		c->n_fields++;
	}
}

void sn__tap_capture_body(struct sn_tap_capture *c, int response, const char *p, size_t n)
{
	char *buf = response ? c->resp_body : c->req_body;
	size_t *len = response ? &c->resp_body_len : &c->req_body_len;
	if (!response && c->req_body_whole)
		return;
	*(response ? &c->resp_body_seen : &c->req_body_seen) += n;
	if (!c->bodies || *len >= SN_TAP_MAX_BODY)
		return;
	size_t take = SN_MIN(n, SN_TAP_MAX_BODY - *len);
	memcpy(buf + *len, p, take);
	*len += take;
}

/* ---- events ------------------------------------------------------------ */

static int redacted(const struct sn_tap_entry *e, struct sn_str name)
{
	for (size_t i = 0; i < SN_ARRAY_LEN(always_redacted); i++)
		if (sn_str_ieq_cstr(name, always_redacted[i]))
			return 1;
	for (unsigned i = 0; i < e->n_redact; i++)
		if (sn_str_ieq_cstr(name, e->redact[i]))
			return 1;
	return 0;
}

static void put_field(struct sn_out *o, const struct sn_tap_entry *e, struct sn_str name, struct sn_str value,
		      int first)
{
	sn_out_cstr(o, first ? "[" : ",[");
	sn_out_json_str(o, name.p, name.len);
	sn_out_raw(o, ",", 1);
	if (redacted(e, name))
		sn_out_cstr(o, "\"[redacted]\"");
	else
		sn_out_json_str(o, value.p, value.len);
	sn_out_raw(o, "]", 1);
}

static void put_kv(struct sn_out *o, const char *key, const char *v)
{
	if (v == NULL)
		return;
	sn_out_printf(o, ",\"%s\":", key);
	sn_out_json_cstr(o, v);
}

/* One event for tap e: the message sinewd relays ("tapEvent"). */
static void build_event(struct sn_out *o, const struct sn_tap_entry *e, uint64_t dropped, struct sn_exchange *ex,
			const struct sn_fx_summary *s, const struct sn_tap_capture *cap)
{
	struct sn_proxy *p = sn_fx_worker(ex)->proxy;
	const struct sn_h1_request *req = s->req;
	const struct sn_trace_ctx *tc = sn_fx_trace(ex);
	int outbound = s->dir == SN_DIR_OUTBOUND;
	char local[64], up_id[256];
	/* outbound: mutual TLS when the endpoint had to prove its SPIFFE ID
	 * and its response head came (telemetry's rule) */
	int mtls = outbound ? s->cluster != NULL && s->ep != NULL && s->upstream_ms >= 0 &&
				      sn_upstream_mtls(sn_fx_worker(ex), s->cluster, s->ep, up_id, sizeof(up_id)) == 1
			    : s->secure;

	sn_out_cstr(o, "{\"type\":\"tapEvent\",\"tap\":");
	sn_out_json_cstr(o, e->id);
	sn_out_printf(o, ",\"dropped\":\"%" PRIu64 "\",\"event\":{\"timeUnixMs\":%" PRId64
			 ",\"direction\":\"%s\",\"protocol\":\"%s\",\"tls\":%s",
		      dropped, s->start_wall_us / 1000, outbound ? "outbound" : "inbound", s->protocol,
		      mtls ? "true" : "false");
	/* who called whom */
	sn_out_cstr(o, ",\"source\":{\"address\":");
	sn_out_json_cstr(o, s->peer);
	if (outbound) {
		put_kv(o, "workload", p->workload);
		put_kv(o, "namespace", p->identity.namespace_);
		if (mtls)
			put_kv(o, "principal", p->principal);
	} else {
		put_kv(o, "principal", s->peer_id);
	}
	sn_out_cstr(o, "},\"destination\":{");
	if (outbound) {
		sn_out_cstr(o, "\"address\":");
		sn_out_json_cstr(o, s->ep != NULL ? s->ep->address : NULL);
		if (s->ep != NULL)
			put_kv(o, "workload", s->ep->workload);
		if (mtls)
			put_kv(o, "principal", up_id);
		if (s->cluster != NULL) {
			put_kv(o, "service", s->cluster->service);
			put_kv(o, "namespace", s->cluster->namespace_);
			put_kv(o, "subset", s->cluster->subset);
		}
	} else {
		sn_fx_local(ex, local, sizeof(local));
		sn_out_cstr(o, "\"address\":");
		sn_out_json_cstr(o, local);
		put_kv(o, "workload", p->workload);
		put_kv(o, "namespace", p->identity.namespace_);
		if (mtls)
			put_kv(o, "principal", p->principal);
	}
	sn_out_cstr(o, "},\"method\":");
	sn_out_json_str(o, req->method.p, req->method.len);
	sn_out_cstr(o, ",\"authority\":");
	sn_out_json_str(o, req->authority.p, req->authority.len);
	sn_out_cstr(o, ",\"path\":");
	sn_out_json_str(o, req->path.p, req->path.len);
	sn_out_printf(o, ",\"status\":%d", s->status);
	put_kv(o, "grpcStatus", s->grpc_status);
	if (s->flags != NULL && strcmp(s->flags, "-") != 0)
		put_kv(o, "sinewError", s->flags);
	if (s->route != NULL)
		put_kv(o, "route", s->route->name);
	sn_out_printf(o, ",\"durationMs\":%.3f", s->duration_ms);
	if (s->upstream_ms >= 0)
		sn_out_printf(o, ",\"upstreamMs\":%.3f", s->upstream_ms);
	sn_out_printf(o, ",\"attempts\":%u,\"requestBytes\":%" PRIu64 ",\"responseBytes\":%" PRIu64, s->attempts,
		      s->request_bytes, s->response_bytes);
	sn_out_cstr(o, ",\"requestId\":");
	sn_out_json_str(o, s->request_id.p, s->request_id.len);
	if (tc != NULL && tc->active) {
		char hex[33];
		for (int i = 0; i < 16; i++)
			snprintf(hex + 2 * i, 3, "%02x", tc->trace_id[i]);
		put_kv(o, "traceId", hex);
	}
	sn_out_cstr(o, ",\"requestHeaders\":[");
	for (size_t i = 0; i < req->num_headers; i++)
		put_field(o, e, req->headers[i].name, req->headers[i].value, i == 0);
	sn_out_raw(o, "]", 1);
	if (cap != NULL && s->upstream_ms >= 0) {
		const char *f = cap->fields;
		sn_out_cstr(o, ",\"responseHeaders\":[");
		for (unsigned i = 0; i < cap->n_fields; i++) {
			struct sn_str name = sn_str_make(f, strlen(f));
			f += name.len + 1;
			struct sn_str value = sn_str_make(f, strlen(f));
			f += value.len + 1;
			put_field(o, e, name, value, i == 0);
		}
		sn_out_raw(o, "]", 1);
		if (cap->fields_cut)
			sn_out_cstr(o, ",\"responseHeadersCut\":true");
	}
	if (e->bodies && cap != NULL && cap->bodies) {
		if (cap->req_body_seen > 0) {
			sn_out_cstr(o, ",\"requestBody\":");
			sn_out_json_str(o, cap->req_body, cap->req_body_len);
			if (cap->req_body_seen > cap->req_body_len)
				sn_out_cstr(o, ",\"requestBodyCut\":true");
		}
		if (cap->resp_body_seen > 0) {
			sn_out_cstr(o, ",\"responseBody\":");
			sn_out_json_str(o, cap->resp_body, cap->resp_body_len);
			if (cap->resp_body_seen > cap->resp_body_len)
				sn_out_cstr(o, ",\"responseBodyCut\":true");
		}
	}
	sn_out_cstr(o, "}}");
}

void sn__tap_record(struct sn_exchange *ex, const struct sn_fx_summary *s, const struct sn_tap_capture *cap)
{
	struct sn_proxy *p = sn_fx_worker(ex)->proxy;
	struct sn_taps *t = p->taps;
	unsigned dir = s->dir == SN_DIR_OUTBOUND ? SN_FILTER_OUTBOUND : SN_FILTER_INBOUND;
	uint64_t now = sn_clock_us();

	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < t->n; i++) {
		struct sn_tap_entry *e = &t->e[i];
		if (!head_matches(e, dir, s->req, now))
			continue;
		if (e->status_lo != 0 && (s->status < e->status_lo || s->status > e->status_hi))
			continue;
		e->tokens = SN_MIN((double)SN_TAP_RATE, e->tokens + (double)(now - e->refill_us) * SN_TAP_RATE / 1e6);
		e->refill_us = now;
		if (e->tokens < 1.0) {
			e->dropped++;
			continue;
		}
		e->tokens -= 1.0;
		struct sn_out o = { 0 };
		build_event(&o, e, e->dropped, ex, s, cap);
		if (o.failed) {
			sn_out_free(&o);
			e->dropped++;
			continue;
		}
		e->dropped = 0;
		/* taken by the main loop, which sends it or drops it */
		(void)sn_cp_send_telemetry(p, o.p, o.len);
	}
	pthread_mutex_unlock(&t->lock);
}
