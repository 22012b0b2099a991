/* The mesh port: proxies connect here (sinewd --mesh, 127.0.0.1:15012),
 * one control link each (include/sinew/xds.h, server role). This file
 * keeps the per-proxy state — node, subscriptions, what it holds (acked),
 * the one push in flight, its last NACK — reads the proxy's messages and
 * renders proxy state for the API. What to send is push.c; the workload
 * registry is registry.c. Wire format: docs/internals/control-protocol.md. */
#include <errno.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sinew/json.h"
#include "sinew/log.h"
#include "mesh_internal.h"
#include "traces.h"
#include "stats.h"

/* ---- small helpers ---------------------------------------------------- */

static const char *scalar(struct fy_node *map, const char *key, size_t *len)
{
	struct fy_node *n = map ? fy_node_mapping_lookup_by_string(map, key, FY_NT) : NULL;
	if (n == NULL || !fy_node_is_scalar(n))
		return NULL;
	return fy_node_get_scalar(n, len);
}

/* A string field, copied into the link's pool, at most max bytes and
 * without control bytes; NULL if absent, JSON null, or not acceptable. */
static char *field_dup(struct sn_mesh_proxy *px, struct fy_node *map, const char *key, size_t max)
{
	size_t len;
	struct fy_node *n = map ? fy_node_mapping_lookup_by_string(map, key, FY_NT) : NULL;
	if (n == NULL || !fy_node_is_scalar(n))
		return NULL;
	const char *s = fy_node_get_scalar(n, &len);
	if (s == NULL || len > max || (fy_node_get_style(n) == FYNS_PLAIN && len == 4 && !memcmp(s, "null", 4)))
		return NULL;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20)
			return NULL;
	return sn_arena_strndup(&px->pool, s, len);
}

/* What a link owns that changes while it lives (heap): its pool's
 * cleanup. The hello's strings and the link's identity are in the pool. */
static void link_tables_free(void *arg)
{
	struct sn_mesh_proxy *px = arg;
	for (size_t i = 0; i < px->n_subs; i++)
		free(px->subs[i].host);
	free(px->subs);
	sn_strmap_free(&px->held);
	sn_strmap_free(&px->inflight_set);
	for (size_t i = 0; i < px->n_inflight_removed; i++)
		free(px->inflight_removed[i]);
	free(px->inflight_removed);
	for (size_t i = 0; i < px->n_nack; i++) {
		free(px->nack[i].resource);
		free(px->nack[i].text);
	}
	free(px->nack);
	registry_clear(px);
}

static void proxy_free(struct sn_mesh_proxy *px)
{
	sn_arena_free(&px->pool);
	free(px);
}

static void reclaim_proxy(struct sn_loop *loop, struct sn_task *t)
{
	proxy_free(sn_container_of(t, struct sn_mesh_proxy, reclaim));
}

static void send_error(struct sn_mesh_proxy *px, const char *msg)
{
	struct sn_out o = { 0 };
	sn_out_cstr(&o, "{\"type\":\"error\",\"message\":");
	sn_out_json_cstr(&o, msg);
	sn_out_cstr(&o, "}");
	if (!o.failed && px->conn != NULL)
		sn_xds_send(px->conn, o.p, o.len);
	sn_out_free(&o);
}

static void protocol_error(struct sn_mesh_proxy *px, const char *why)
{
	sn_log(SN_LOG_WARN, "mesh: proxy %s (%s): %s; closing the link", px->id ? px->id : "?", px->peer, why);
	send_error(px, why);
	sn_xds_close(px->conn, "protocol error");
}

/* ---- scheduling --------------------------------------------------------- */

static void run_push(struct sn_loop *loop, struct sn_task *t)
{
	struct sn_mesh *m = sn_container_of(t, struct sn_mesh, push_task);
	uint64_t t0 = sn_clock_us();
	size_t n = 0;

	mesh_view_refresh(m);
	for (struct sn_mesh_proxy *px = m->proxies; px != NULL; px = px->next) {
		if (px->gone || !px->hello || !(px->dirty || px->force))
			continue;
		mesh_push(m, px);
		n++;
	}
	if (n > 0)
		sn_log(SN_LOG_DEBUG, "mesh: recomputed %zu proxies at revision %llu in %llu us", n,
		       (unsigned long long)m->view.revision, (unsigned long long)(sn_clock_us() - t0));
}

void mesh_schedule(struct sn_mesh *m)
{
	sn_loop_defer(m->loop, &m->push_task, run_push);
}

void mesh_changed(struct sn_mesh *m)
{
	m->view_stale = 1;
	mesh_schedule(m);
}

void mesh_changed_all(struct sn_mesh *m)
{
	for (struct sn_mesh_proxy *px = m->proxies; px != NULL; px = px->next)
		px->dirty = 1;
	mesh_schedule(m);
}

void sn_mesh_store_changed(struct sn_mesh *m)
{
	if (m != NULL)
		mesh_changed(m);
}

/* ---- messages ------------------------------------------------------------ */

/* The hello's labels, into the link's pool. */
static int parse_labels(struct sn_mesh_proxy *px, struct fy_node *map, struct sn_labels *out)
{
	struct fy_node_pair *pair;
	void *iter = NULL;

	if (map == NULL || fy_node_is_null(map))
		return 0;
	if (!fy_node_is_mapping(map) || fy_node_mapping_item_count(map) > 64)
		return -1;
	out->v = sn_arena_new_array(&px->pool, struct sn_label, (size_t)fy_node_mapping_item_count(map) + 1);
	if (out->v == NULL)
		return -1;
	while ((pair = fy_node_mapping_iterate(map, &iter)) != NULL) {
		struct fy_node *k = fy_node_pair_key(pair), *v = fy_node_pair_value(pair);
		size_t kl, vl;
		const char *ks = k && fy_node_is_scalar(k) ? fy_node_get_scalar(k, &kl) : NULL;
		const char *vs = v && fy_node_is_scalar(v) ? fy_node_get_scalar(v, &vl) : NULL;
		if (ks == NULL || vs == NULL || kl == 0 || kl > 317 || vl > 63 || out->n >= 64)
			return -1;
		out->v[out->n].key = sn_arena_strndup(&px->pool, ks, kl);
		out->v[out->n].value = sn_arena_strndup(&px->pool, vs, vl);
		out->n++;
		if (out->v[out->n - 1].key == NULL || out->v[out->n - 1].value == NULL)
			return -1;
	}
	return 0;
}

static void on_hello(struct sn_mesh *m, struct sn_mesh_proxy *px, struct fy_node *root)
{
	struct fy_node *node = fy_node_mapping_lookup_by_string(root, "node", FY_NT);
	struct fy_node *have = fy_node_mapping_lookup_by_string(root, "have", FY_NT);

	if (px->hello) {
		protocol_error(px, "a second hello on one link");
		return;
	}
	if (node == NULL || !fy_node_is_mapping(node)) {
		protocol_error(px, "hello without a node object");
		return;
	}
	px->id = field_dup(px, node, "id", MESH_MAX_ID);
	px->service = field_dup(px, node, "service", 253);
	px->workload = field_dup(px, node, "workload", 253);
	if (px->workload == NULL || px->workload[0] == '\0') {
		/* a proxy that predates node.workload: its service */
		px->workload = sn_arena_strdup(&px->pool, px->service && px->service[0] ? px->service : "unknown");
	}
	px->ns = field_dup(px, node, "namespace", 63);
	px->sa = field_dup(px, node, "service_account", 253);
	px->inbound = field_dup(px, node, "inbound", 64);
	px->admin = field_dup(px, node, "admin", 64);
	px->pod = field_dup(px, node, "pod", 80);
	px->version = field_dup(px, node, "version", 64);
	struct fy_node *cap = fy_node_mapping_lookup_by_string(node, "capture", FY_NT);
	px->capture = cap != NULL && fy_node_is_scalar(cap) && !strcmp(fy_node_get_scalar0(cap), "true");
	struct fy_node *gw = fy_node_mapping_lookup_by_string(node, "gateway", FY_NT);
	px->gateway = gw != NULL && fy_node_is_scalar(gw) && !strcmp(fy_node_get_scalar0(gw), "true");
	if (px->id == NULL || px->id[0] == '\0') {
		protocol_error(px, "hello: node.id is missing, empty or longer than 200 bytes");
		return;
	}
	if (px->ns == NULL || px->ns[0] == '\0') {
		px->ns = sn_arena_strdup(&px->pool, "default");
		if (px->ns == NULL) {
			protocol_error(px, "out of memory");
			return;
		}
	}
	if (parse_labels(px, fy_node_mapping_lookup_by_string(node, "labels", FY_NT), &px->labels) != 0) {
		protocol_error(px, "hello: node.labels must be a map of at most 64 string labels");
		return;
	}
	if (have != NULL && fy_node_is_mapping(have)) {
		struct fy_node_pair *pair;
		void *iter = NULL;
		while ((pair = fy_node_mapping_iterate(have, &iter)) != NULL) {
			struct fy_node *k = fy_node_pair_key(pair), *v = fy_node_pair_value(pair);
			size_t kl, vl;
			const char *ks = k && fy_node_is_scalar(k) ? fy_node_get_scalar(k, &kl) : NULL;
			const char *vs = v && fy_node_is_scalar(v) ? fy_node_get_scalar(v, &vl) : NULL;
			if (ks == NULL || vs == NULL || kl > 600 || vl > 64 || px->held.n >= MESH_MAX_HAVE)
				continue;
			char key[608], rv[72];
			memcpy(key, ks, kl);
			key[kl] = '\0';
			memcpy(rv, vs, vl);
			rv[vl] = '\0';
			if (sn_strmap_put(&px->held, key, rv) != 0) {
				protocol_error(px, "out of memory");
				return;
			}
		}
	}
	const char *bad = mesh_ca_check_hello(m, px);
	if (bad != NULL) {
		protocol_error(px, bad);
		return;
	}
	/* The same proxy on a new link (it reconnected before we noticed the
	 * old one died): the new link wins. */
	for (struct sn_mesh_proxy *o = m->proxies; o != NULL; o = o->next) {
		if (o == px || o->gone || !o->hello || o->id == NULL || strcmp(o->id, px->id) != 0)
			continue;
		sn_log(SN_LOG_INFO, "mesh: proxy %s reconnected from %s; closing its old link from %s", px->id, px->peer,
		       o->peer);
		sn_xds_close(o->conn, "replaced by a new link");
	}
	px->hello = 1;
	if (m->stats != NULL)
		px->stats_rec = sn_stats_proxy_up(m->stats, px->id, px->ns, px->workload ? px->workload : "unknown");
	if (px->stats_rec != NULL)
		(void)sn_stats_proxy_service(px->stats_rec, px->service);   /* out of memory: counted as its workload */
	px->keep_have = px->held.n > 0;
	px->force = 1;
	px->dirty = 1;
	if (px->inbound != NULL) {
		const char *err = registry_prepare(px);
		if (err != NULL) {
			char msg[300];
			snprintf(msg, sizeof(msg), "not registered: %s", err);
			sn_log(SN_LOG_WARN, "registry: proxy %s (%s) %s", px->id, px->peer, msg);
			registry_clear(px);
			px->reg_error = strdup(msg);
			send_error(px, msg);
		}
	}
	sn_log(SN_LOG_INFO, "mesh: proxy %s connected from %s (service %s, namespace %s%s%s, holds %zu resources)",
	       px->id, px->peer, px->service && px->service[0] ? px->service : "-", px->ns,
	       px->registered ? ", registers " : "", px->registered ? px->inbound : "", px->held.n);
	mesh_ca_after_hello(m, px);
	mesh_tap_hello(m, px);
	if (px->registered)
		mesh_changed(m);
	else
		mesh_schedule(m);
}

static void normalize_host(char *h)
{
	size_t n = strlen(h);
	for (size_t i = 0; i < n; i++)
		h[i] = (char)sn_tolower_ascii((unsigned char)h[i]);
}

static void on_subscribe(struct sn_mesh *m, struct sn_mesh_proxy *px, struct fy_node *root, int sub)
{
	struct fy_node *hosts = fy_node_mapping_lookup_by_string(root, "hosts", FY_NT), *it;
	void *iter = NULL;
	int changed = 0;

	if (hosts == NULL || !fy_node_is_sequence(hosts)) {
		protocol_error(px, "subscribe/unsubscribe without a hosts list");
		return;
	}
	while ((it = fy_node_sequence_iterate(hosts, &iter)) != NULL) {
		size_t len;
		const char *s = fy_node_is_scalar(it) ? fy_node_get_scalar(it, &len) : NULL;
		char host[256];
		if (s == NULL || len == 0 || len > 253 || memchr(s, '\0', len) != NULL)
			continue;
		memcpy(host, s, len);
		host[len] = '\0';
		normalize_host(host);
		size_t at = px->n_subs;
		for (size_t i = 0; i < px->n_subs; i++)
			if (!strcmp(px->subs[i].host, host))
				at = i;
		if (sub && at == px->n_subs) {
			if (px->n_subs >= MESH_MAX_SUBS) {
				sn_log(SN_LOG_WARN, "mesh: proxy %s subscribes to more than %d hosts; ignoring %s", px->id,
				       MESH_MAX_SUBS, host);
				continue;
			}
			struct sub *ns = realloc(px->subs, (px->n_subs + 1) * sizeof(*ns));
			char *h = strdup(host);
			if (ns == NULL || h == NULL) {
				if (ns != NULL)
					px->subs = ns;
				free(h);
				continue;
			}
			px->subs = ns;
			px->subs[px->n_subs].host = h;
			px->subs[px->n_subs++].answered = 0;
			changed = 1;
		} else if (!sub && at < px->n_subs) {
			free(px->subs[at].host);
			px->subs[at] = px->subs[--px->n_subs];
			changed = 1;
		}
	}
	if (sub && px->keep_have) {
		px->keep_have = 0;
		changed = 1;
	}
	if (changed) {
		px->dirty = 1;
		mesh_schedule(m);
	}
}

static void clear_nack(struct sn_mesh_proxy *px)
{
	for (size_t i = 0; i < px->n_nack; i++) {
		free(px->nack[i].resource);
		free(px->nack[i].text);
	}
	free(px->nack);
	px->nack = NULL;
	px->n_nack = 0;
}

/* The errors of a nack, or the resources an ack refused: {resource, text}
 * each, kept for GET /api/v1/proxies and the resources' status. */
static void take_errors(struct sn_mesh_proxy *px, struct fy_node *errs)
{
	struct fy_node *it;
	void *iter = NULL;
	while (errs != NULL && fy_node_is_sequence(errs) && (it = fy_node_sequence_iterate(errs, &iter)) != NULL &&
	       px->n_nack < MESH_MAX_NACK_ERRORS) {
		size_t rl = 0, tl = 0;
		const char *r = scalar(it, "resource", &rl), *t = scalar(it, "text", &tl);
		struct nack_error *nv = realloc(px->nack, (px->n_nack + 1) * sizeof(*nv));
		if (nv == NULL)
			break;
		px->nack = nv;
		nv[px->n_nack].resource = strndup(r ? r : "", SN_MIN(rl, 600));
		nv[px->n_nack].text = strndup(t ? t : "", SN_MIN(tl, MESH_MAX_TEXT));
		if (nv[px->n_nack].resource == NULL || nv[px->n_nack].text == NULL) {
			free(nv[px->n_nack].resource);
			free(nv[px->n_nack].text);
			break;
		}
		px->n_nack++;
	}
}

static int was_refused(const struct sn_mesh_proxy *px, const char *key)
{
	for (size_t i = 0; i < px->n_nack; i++)
		if (!strcmp(px->nack[i].resource, key))
			return 1;
	return 0;
}

static void on_answer(struct sn_mesh *m, struct sn_mesh_proxy *px, struct fy_node *root, int ack)
{
	size_t len;
	const char *nonce = scalar(root, "nonce", &len);
	char want[32];

	snprintf(want, sizeof(want), "%llu", (unsigned long long)px->nonce);
	if (!px->inflight || nonce == NULL || len != strlen(want) || memcmp(nonce, want, len) != 0) {
		sn_log(SN_LOG_DEBUG, "mesh: proxy %s answered nonce %.*s, not the one in flight; ignored", px->id,
		       nonce ? (int)SN_MIN(len, 32) : 1, nonce ? nonce : "?");
		return;
	}
	uint64_t latency = sn_loop_now(m->loop) - px->sent_ms;
	/* An ack may refuse some resources by name (the proxy runs the rest
	 * of the push): those keep what the proxy held before. */
	struct fy_node *refused = ack ? fy_node_mapping_lookup_by_string(root, "refused", FY_NT) : NULL;
	if (refused != NULL && (!fy_node_is_sequence(refused) || fy_node_sequence_item_count(refused) == 0))
		refused = NULL;
	clear_nack(px);
	if (!ack || refused != NULL)
		take_errors(px, ack ? refused : fy_node_mapping_lookup_by_string(root, "errors", FY_NT));
	if (ack) {
		for (size_t i = 0; i < px->n_inflight_removed; i++)
			if (!was_refused(px, px->inflight_removed[i]))
				sn_strmap_del(&px->held, px->inflight_removed[i]);
		for (size_t i = 0; i < px->inflight_set.n; i++)
			if (!was_refused(px, px->inflight_set.v[i].key) &&
			    sn_strmap_put(&px->held, px->inflight_set.v[i].key, px->inflight_set.v[i].value) != 0)
				px->dirty = 1; /* out of memory: resend from what we know */
		px->acked_revision = px->inflight_revision;
		/* Not dirty: every change since the push passed it by
		 * (mark_affected), so it is current with the view. */
		if (!px->dirty && refused == NULL)
			px->synced_revision = m->view.revision;
		px->nacked = refused != NULL;
		px->acks++;
		m->acks++;
		px->last_ack_latency_ms = latency;
	}
	if (refused != NULL) {
		px->nacks++;
		m->nacks++;
		sn_log(SN_LOG_WARN, "mesh: proxy %s runs push %s (revision %llu) without %zu of its resources: %s", px->id,
		       want, (unsigned long long)px->inflight_revision, px->n_nack,
		       px->n_nack ? px->nack[0].text : "no error given");
	} else if (!ack) {
		px->nacked = 1;
		px->nacks++;
		m->nacks++;
		sn_log(SN_LOG_WARN, "mesh: proxy %s refused push %s (revision %llu): %s", px->id, want,
		       (unsigned long long)px->inflight_revision,
		       px->n_nack ? px->nack[0].text : "no error given");
	}
	sn_strmap_free(&px->inflight_set);
	for (size_t i = 0; i < px->n_inflight_removed; i++)
		free(px->inflight_removed[i]);
	free(px->inflight_removed);
	px->inflight_removed = NULL;
	px->n_inflight_removed = 0;
	px->inflight = 0;
	/* What changed meanwhile goes now; a NACK is not retried until
	 * something changes. */
	if (px->dirty)
		mesh_push(m, px);
}

/* A batch of the proxy's spans: an OTLP ExportTraceServiceRequest with
 * "type" added. Telemetry, not configuration: one the store cannot read
 * is dropped and counted, and the link stays up. */
static void on_spans(struct sn_mesh *m, struct sn_mesh_proxy *px, struct fy_node *root)
{
	struct sn_traces_result res;

	if (m->traces == NULL) {
		sn_log(SN_LOG_DEBUG, "mesh: proxy %s sent spans; this sinewd keeps no traces; dropped", px->id);
		return;
	}
	if (sn_traces_ingest(m->traces, root, &res) != 0) {
		/* the first refusal on a link is logged with its reason at info, later ones at debug */
		sn_log(px->span_batches_refused == 0 ? SN_LOG_INFO : SN_LOG_DEBUG,
		       "mesh: proxy %s (%s) sent spans sinewd cannot read (%s); dropped them, the link stays", px->id,
		       px->peer, res.error);
		px->span_batches_refused++;
		return;
	}
	px->spans_stored += res.accepted;
	px->spans_dropped += res.dropped;
	if (res.dropped > 0)
		sn_log(SN_LOG_DEBUG, "mesh: proxy %s: %zu spans dropped: %s", px->id, res.dropped, res.dropped_why);
}

/* The proxy's request counts (stats.c): telemetry like spans, so a
 * message sinewd cannot read is dropped and counted, and the link stays. */
static void on_stats(struct sn_mesh *m, struct sn_mesh_proxy *px, struct fy_node *root)
{
	struct sn_stats_result res;

	if (m->stats == NULL || px->stats_rec == NULL) {
		sn_log(SN_LOG_DEBUG, "mesh: proxy %s sent stats; this sinewd keeps none for it; dropped", px->id);
		return;
	}
	if (sn_stats_ingest(m->stats, px->stats_rec, root, sn_loop_now(m->loop), &res) != 0) {
		sn_log(px->stats_refused == 0 ? SN_LOG_INFO : SN_LOG_DEBUG,
		       "mesh: proxy %s (%s) sent stats sinewd cannot read (%s); dropped them, the link stays", px->id,
		       px->peer, res.error);
		px->stats_refused++;
		return;
	}
	px->stats_messages++;
	if (res.untracked > 0)
		sn_log(SN_LOG_DEBUG, "mesh: proxy %s: %zu stats series not counted (sinewd's stats bounds)", px->id,
		       res.untracked);
}

/* ---- link callbacks --------------------------------------------------------- */

static void on_message(struct sn_xds_conn *c, const char *msg, size_t len)
{
	struct sn_mesh_proxy *px = sn_xds_arg(c);
	struct sn_mesh *m = px->mesh;
	struct fy_document *doc;
	size_t tlen;
	const char *type;

	if (px->gone)
		return;
	px->last_heard_ms = sn_loop_now(m->loop);
	/* The heartbeat as proxies write it, every 3 s from each: not worth a
	 * parse (10,000 proxies' heartbeats were a fifth of a core). Any
	 * other spelling takes the general path below. */
	static const char heartbeat[] = "{\"type\":\"heartbeat\"}";
	if (px->hello && len == sizeof(heartbeat) - 1 && !memcmp(msg, heartbeat, len))
		return;
	if (!sn_utf8_valid(msg, len)) {
		protocol_error(px, "a message is not UTF-8");
		return;
	}
	doc = sn_json_parse(msg, len);
	if (doc == NULL || fy_document_root(doc) == NULL || !fy_node_is_mapping(fy_document_root(doc))) {
		if (doc != NULL)
			fy_document_destroy(doc);
		protocol_error(px, "a message is not a JSON object");
		return;
	}
	struct fy_node *root = fy_document_root(doc);
	type = scalar(root, "type", &tlen);
	if (type == NULL) {
		protocol_error(px, "a message has no type");
	} else if (tlen == 5 && !memcmp(type, "hello", 5)) {
		on_hello(m, px, root);
	} else if (tlen == 3 && !memcmp(type, "csr", 3) && m->ca != NULL) {
		mesh_ca_on_csr(m, px, root);
	} else if (!px->hello) {
		protocol_error(px, "the first message must be hello");
	} else if (tlen == 9 && !memcmp(type, "heartbeat", 9)) {
		/* last_heard_ms is all it does */
	} else if (tlen == 9 && !memcmp(type, "subscribe", 9)) {
		on_subscribe(m, px, root, 1);
	} else if (tlen == 11 && !memcmp(type, "unsubscribe", 11)) {
		on_subscribe(m, px, root, 0);
	} else if (tlen == 3 && !memcmp(type, "ack", 3)) {
		on_answer(m, px, root, 1);
	} else if (tlen == 4 && !memcmp(type, "nack", 4)) {
		on_answer(m, px, root, 0);
	} else if (tlen == 12 && !memcmp(type, "identity_ack", 12) && m->ca != NULL) {
		mesh_ca_on_ack(m, px, root);
	} else if (tlen == 5 && !memcmp(type, "spans", 5)) {
		on_spans(m, px, root);
		fy_document_destroy(doc);
		sn_traces_trim(len);
		return;
	} else if (tlen == 12 && !memcmp(type, "scrapeResult", 12)) {
		mesh_scrape_on_result(m, px, root);
	} else if (tlen == 8 && !memcmp(type, "tapEvent", 8)) {
		mesh_tap_on_event(m, px, root, msg, len);   /* relayed to a tap session, or dropped */
	} else if (tlen == 5 && !memcmp(type, "stats", 5)) {
		on_stats(m, px, root);
		fy_document_destroy(doc);
		sn_traces_trim(len);   /* a large message's parser memory goes back, as for spans */
		return;
	} else {
		sn_log(SN_LOG_DEBUG, "mesh: proxy %s sent a message of unknown type %.*s; ignored", px->id,
		       (int)SN_MIN(tlen, 32), type);
	}
	fy_document_destroy(doc);
}

static void on_close(struct sn_xds_conn *c, const char *why)
{
	struct sn_mesh_proxy *px = sn_xds_arg(c);
	struct sn_mesh *m = px->mesh;

	px->gone = 1;
	px->conn = NULL;
	if (px->next != NULL)
		px->next->pprev = px->pprev;
	*px->pprev = px->next;
	m->n_proxies--;
	if (px->hello)
		sn_log(SN_LOG_INFO, "mesh: proxy %s (%s) disconnected: %s%s", px->id, px->peer, why,
		       px->registered ? "; its registered endpoint leaves" : "");
	else if (!px->bootstrap)
		sn_log(SN_LOG_WARN, "mesh: link from %s closed before its hello: %s", px->peer, why);
	if (px->registered && m->fd >= 0)
		mesh_changed(m);
	sn_stats_proxy_down(m->stats, px->stats_rec, sn_loop_now(m->loop));
	px->stats_rec = NULL;
	sn_loop_reclaim(m->loop, &px->reclaim, reclaim_proxy);
	if (m->ca != NULL && m->fd >= 0)
		mesh_ca_progress(m);   /* a rotation may have waited for this proxy */
}

static int on_secure(struct sn_xds_conn *c)
{
	return mesh_ca_on_secure(sn_xds_arg(c));
}

static const struct sn_xds_ops mesh_ops = {
	.on_message = on_message,
	.on_close = on_close,
	.on_secure = on_secure,
};

static void accept_from(struct sn_loop *loop, struct sn_mesh *m, int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				sn_log(SN_LOG_WARN, "mesh: accept: %s", strerror(errno));
			return;
		}
		if (m->n_proxies >= SN_MESH_MAX_PROXIES) {
			sn_log(SN_LOG_WARN, "mesh: %d proxies connected, the limit; refusing one", SN_MESH_MAX_PROXIES);
			close(fd);
			continue;
		}
		struct sn_mesh_proxy *px = calloc(1, sizeof(*px));
		if (px == NULL) {
			close(fd);
			continue;
		}
		px->mesh = m;
		/* the link's pool: the hello's strings, its identity; the
		 * tables that change while it lives go with it (cleanup) */
		sn_arena_init(&px->pool, 1024);
		if (sn_arena_on_free(&px->pool, link_tables_free, px) != 0) {
			close(fd);
			free(px);
			continue;
		}
		px->serial = ++m->serial;
		px->last_heard_ms = sn_loop_now(loop);
		px->connected_at = (uint64_t)time(NULL);
		struct sn_xds_tls tls = { .ctx = m->tls, .allow_plaintext = m->allow_plaintext };
		px->conn = sn_xds_server(loop, fd, m->tls != NULL ? &tls : NULL, &mesh_ops, px);
		if (px->conn == NULL) {
			proxy_free(px);
			continue;
		}
		snprintf(px->peer, sizeof(px->peer), "%s", sn_xds_peer(px->conn));
		px->next = m->proxies;
		if (px->next != NULL)
			px->next->pprev = &px->next;
		px->pprev = &m->proxies;
		m->proxies = px;
		m->n_proxies++;
	}
}

static void on_accept(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct sn_mesh *m = sn_container_of(io, struct sn_mesh, io);
	accept_from(loop, m, m->fd);
}

static void on_accept_pods(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct sn_mesh *m = sn_container_of(io, struct sn_mesh, pod_io);
	accept_from(loop, m, m->pod_fd);
}

int sn_mesh_add_listener(struct sn_mesh *m, int fd)
{
	if (m->pod_fd >= 0 || listen(fd, MESH_BACKLOG) != 0 || sn_io_start(m->loop, &m->pod_io, fd, on_accept_pods) != 0)
		return SN_EIO;
	m->pod_fd = fd;
	return 0;
}

int sn_mesh_start(struct sn_mesh **out, struct sn_loop *loop, struct sn_store *st, const struct sockaddr *addr,
		  socklen_t addr_len, const struct sn_mesh_opts *opts)
{
	static const struct sn_mesh_opts none = { .allow_plaintext = 1 };
	struct sn_mesh *m = calloc(1, sizeof(*m));
	int one = 1;

	*out = NULL;
	if (m == NULL)
		return SN_ENOMEM;
	m->loop = loop;
	m->store = st;
	m->traces = opts != NULL ? opts->traces : NULL;
	m->replica = opts != NULL ? opts->replica : NULL;
	m->stats = opts != NULL ? opts->stats : NULL;
	m->view_stale = 1;
	m->pod_fd = -1;
	m->started_ms = sn_loop_now(loop);
	if (mesh_ca_start(m, opts != NULL ? opts : &none) != 0) {
		mesh_ca_free(m);
		free(m);
		errno = EINVAL;
		return SN_EINVAL;
	}
	m->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (m->fd < 0)
		goto fail;
	setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(m->fd, addr, addr_len) != 0 || listen(m->fd, MESH_BACKLOG) != 0 || sn_io_start(loop, &m->io, m->fd, on_accept) != 0)
		goto fail;
	registry_start(m);
	if (mesh_tap_start(m) != 0)
		goto fail;
	mesh_view_refresh(m);
	*out = m;
	return 0;
fail:;
	int e = errno;
	if (m->fd >= 0)
		close(m->fd);
	mesh_ca_stop(m);
	mesh_ca_free(m);
	free(m);
	errno = e;
	return SN_EIO;
}

void sn_mesh_stop(struct sn_mesh *m)
{
	if (m == NULL || m->fd < 0)
		return;
	mesh_tap_stop(m);
	mesh_scrape_stop(m);
	registry_stop(m);
	mesh_ca_stop(m);
	sn_io_stop(m->loop, &m->io);
	close(m->fd);
	m->fd = -1;
	if (m->pod_fd >= 0) {
		sn_io_stop(m->loop, &m->pod_io);
		close(m->pod_fd);
		m->pod_fd = -1;
	}
	for (struct sn_mesh_proxy *px = m->proxies; px != NULL; px = px->next)
		if (px->conn != NULL)
			sn_xds_close(px->conn, "sinewd stopping");
}

void sn_mesh_free(struct sn_mesh *m)
{
	if (m == NULL)
		return;
	sn_mesh_stop(m);
	while (m->proxies != NULL) {
		struct sn_mesh_proxy *px = m->proxies;
		m->proxies = px->next;
		proxy_free(px);
	}
	mesh_view_free(&m->view);
	sn_strmap_free(&m->seen_regs);
	sn_strmap_free(&m->published);
	mesh_ca_free(m);
	free(m);
}

/* ---- the API's view --------------------------------------------------------- */

static const char *state_of(const struct sn_mesh *m, const struct sn_mesh_proxy *px)
{
	if (px->nacked)
		return "NACK";
	if (!px->hello || px->inflight || px->dirty || px->force || m->view_stale ||
	    px->synced_revision != m->store->revision)
		return "STALE";
	return "SYNCED";
}

static void out_labels(struct sn_out *o, const struct sn_labels *l)
{
	sn_out_cstr(o, "{");
	for (size_t i = 0; i < l->n; i++) {
		if (i)
			sn_out_cstr(o, ",");
		sn_out_json_cstr(o, l->v[i].key);
		sn_out_cstr(o, ":");
		sn_out_json_cstr(o, l->v[i].value);
	}
	sn_out_cstr(o, "}");
}

static int cmp_proxy_id(const void *a, const void *b)
{
	const struct sn_mesh_proxy *x = *(const struct sn_mesh_proxy *const *)a;
	const struct sn_mesh_proxy *y = *(const struct sn_mesh_proxy *const *)b;
	return strcmp(x->id, y->id);
}

void sn_mesh_render_proxies(struct sn_mesh *m, struct sn_out *o)
{
	struct sn_mesh_proxy **v;
	size_t n = 0;

	sn_out_cstr(o, "[");
	if (m == NULL) {
		sn_out_cstr(o, "]");
		return;
	}
	uint64_t now = sn_loop_now(m->loop);
	v = calloc(m->n_proxies + 1, sizeof(*v));
	if (v == NULL) {
		o->failed = 1;
		return;
	}
	for (struct sn_mesh_proxy *px = m->proxies; px != NULL; px = px->next)
		if (px->hello && !px->gone)
			v[n++] = px;
	qsort(v, n, sizeof(*v), cmp_proxy_id);
	for (size_t i = 0; i < n; i++) {
		const struct sn_mesh_proxy *px = v[i];
		char since[40];
		time_t t = (time_t)px->connected_at;
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (i)
			sn_out_cstr(o, ",");
		sn_out_cstr(o, "{\"id\":");
		sn_out_json_cstr(o, px->id);
		if (m->replica != NULL) {
			sn_out_cstr(o, ",\"replica\":");
			sn_out_json_cstr(o, m->replica);
		}
		sn_out_cstr(o, ",\"service\":");
		sn_out_json_cstr(o, px->service && px->service[0] ? px->service : NULL);
		sn_out_cstr(o, ",\"workload\":");
		sn_out_json_cstr(o, px->workload);
		sn_out_cstr(o, ",\"namespace\":");
		sn_out_json_cstr(o, px->ns);
		sn_out_cstr(o, ",\"serviceAccount\":");
		sn_out_json_cstr(o, px->sa && px->sa[0] ? px->sa : "default");
		mesh_ca_render_proxy(m, px, o);
		sn_out_cstr(o, ",\"labels\":");
		out_labels(o, &px->labels);
		sn_out_cstr(o, ",\"address\":");
		sn_out_json_cstr(o, px->inbound);
		sn_out_cstr(o, ",\"pod\":");
		sn_out_json_cstr(o, px->pod);
		sn_out_cstr(o, ",\"admin\":");
		sn_out_json_cstr(o, px->admin);
		sn_out_cstr(o, ",\"peer\":");
		sn_out_json_cstr(o, px->peer);
		sn_out_cstr(o, ",\"proxyVersion\":");
		sn_out_json_cstr(o, px->version);
		sn_out_cstr(o, ",\"connectedSince\":");
		sn_out_json_cstr(o, since);
		sn_out_printf(o, ",\"lastHeardMs\":%llu", (unsigned long long)(now - px->last_heard_ms));
		sn_out_printf(o, ",\"revision\":{\"acked\":\"%llu\",\"current\":\"%llu\"}",
			      (unsigned long long)px->acked_revision, (unsigned long long)m->store->revision);
		sn_out_printf(o, ",\"state\":\"%s\",\"errors\":[", state_of(m, px));
		for (size_t k = 0; px->nacked && k < px->n_nack; k++) {
			if (k)
				sn_out_cstr(o, ",");
			sn_out_cstr(o, "{\"resource\":");
			sn_out_json_cstr(o, px->nack[k].resource);
			sn_out_cstr(o, ",\"text\":");
			sn_out_json_cstr(o, px->nack[k].text);
			sn_out_cstr(o, "}");
		}
		sn_out_cstr(o, "],\"subscriptions\":[");
		for (size_t k = 0; k < px->n_subs; k++) {
			if (k)
				sn_out_cstr(o, ",");
			sn_out_json_cstr(o, px->subs[k].host);
		}
		sn_out_printf(o, "],\"resources\":%zu,\"registered\":", px->held.n);
		if (px->registered && px->reg_error == NULL)
			sn_out_json_cstr(o, px->reg_name);
		else
			sn_out_cstr(o, "null");
		sn_out_cstr(o, ",\"registryError\":");
		sn_out_json_cstr(o, px->reg_error);
		sn_out_printf(o, ",\"pushes\":%llu,\"acks\":%llu,\"nacks\":%llu,\"recomputes\":%llu,\"lastAckMs\":%llu",
			      (unsigned long long)px->pushes, (unsigned long long)px->acks,
			      (unsigned long long)px->nacks, (unsigned long long)px->recomputes,
			      (unsigned long long)px->last_ack_latency_ms);
		sn_out_printf(o, ",\"spans\":{\"stored\":%llu,\"dropped\":%llu,\"rejectedBatches\":%llu}",
			      (unsigned long long)px->spans_stored, (unsigned long long)px->spans_dropped,
			      (unsigned long long)px->span_batches_refused);
		sn_out_printf(o, ",\"stats\":{\"messages\":%llu,\"rejected\":%llu}}",
			      (unsigned long long)px->stats_messages, (unsigned long long)px->stats_refused);
	}
	sn_out_cstr(o, "]");
	free(v);
}

void sn_mesh_render_resource_status(struct sn_mesh *m, struct sn_out *o, enum sn_resource_kind kind,
				    const char *ns, const char *name, const char *rv)
{
	char key[800];
	size_t synced = 0, pending = 0, n_nack = 0;

	if (m == NULL)
		return;
	snprintf(key, sizeof(key), "%s/%s/%s", sn_resource_kind_str(kind), ns, name);
	for (const struct sn_mesh_proxy *px = m->proxies; px != NULL; px = px->next) {
		if (px->gone || !px->hello)
			continue;
		const struct sn_strmap_kv *h = sn_strmap_get(&px->held, key);
		if (h != NULL && !strcmp(h->value, rv))
			synced++;
		if (px->inflight && sn_strmap_get(&px->inflight_set, key) != NULL)
			pending++;
	}
	sn_out_printf(o, ",\"proxies\":{\"synced\":%zu,\"pending\":%zu,\"nack\":[", synced, pending);
	for (const struct sn_mesh_proxy *px = m->proxies; px != NULL; px = px->next) {
		if (px->gone || !px->nacked)
			continue;
		for (size_t k = 0; k < px->n_nack; k++) {
			if (strcmp(px->nack[k].resource, key) != 0)
				continue;
			if (n_nack++)
				sn_out_cstr(o, ",");
			sn_out_cstr(o, "{\"proxy\":");
			sn_out_json_cstr(o, px->id);
			sn_out_cstr(o, ",\"error\":");
			sn_out_json_cstr(o, px->nack[k].text);
			sn_out_cstr(o, "}");
		}
	}
	sn_out_cstr(o, "]}");
}

static int cmp_registered(const void *a, const void *b)
{
	const struct sn_mesh_proxy *x = *(const struct sn_mesh_proxy *const *)a;
	const struct sn_mesh_proxy *y = *(const struct sn_mesh_proxy *const *)b;
	int c = strcmp(x->ns, y->ns);
	return c ? c : strcmp(x->reg_name, y->reg_name);
}

size_t sn_mesh_registered(struct sn_mesh *m, struct sn_mesh_proxy ***out)
{
	size_t n = 0;
	*out = NULL;
	if (m == NULL)
		return 0;
	mesh_view_refresh(m);
	struct sn_mesh_proxy **v = calloc(m->n_proxies + 1, sizeof(*v));
	if (v == NULL)
		return 0;
	for (struct sn_mesh_proxy *px = m->proxies; px != NULL; px = px->next) {
		if (px->gone || !px->registered || px->reg_text == NULL || px->reg_error != NULL)
			continue;
		if (sn_store_get(m->store, SN_KIND_WORKLOAD_ENTRY, px->ns, px->reg_name) != NULL)
			continue;
		v[n++] = px;
	}
	qsort(v, n, sizeof(*v), cmp_registered);
	*out = v;
	return n;
}

const char *sn_mesh_registered_ns(const struct sn_mesh_proxy *p)
{
	return p->ns;
}

const char *sn_mesh_registered_name(const struct sn_mesh_proxy *p)
{
	return p->reg_name;
}

const char *sn_mesh_registered_text(const struct sn_mesh_proxy *p)
{
	return p->reg_text;
}

void sn_mesh_render_registered(struct sn_mesh *m, const struct sn_mesh_proxy *p, struct sn_out *o)
{
	sn_out_cstr(o, "{\"kind\":\"WorkloadEntry\",\"apiVersion\":\"networking.istio.io/v1\",\"namespace\":");
	sn_out_json_cstr(o, p->ns);
	sn_out_cstr(o, ",\"name\":");
	sn_out_json_cstr(o, p->reg_name);
	sn_out_cstr(o, ",\"resourceVersion\":");
	sn_out_json_cstr(o, p->reg_rv);
	sn_out_cstr(o, ",\"generation\":1,\"source\":\"sinewd-registry\",\"line\":1,\"registered\":true,\"proxy\":");
	sn_out_json_cstr(o, p->id);
	sn_out_cstr(o, ",\"yaml\":");
	sn_out_json_cstr(o, p->reg_text);
	sn_out_cstr(o, ",\"status\":{\"accepted\":true,\"warnings\":[],\"errors\":[]");
	sn_mesh_render_resource_status(m, o, SN_KIND_WORKLOAD_ENTRY, p->ns, p->reg_name, p->reg_rv);
	sn_out_cstr(o, "}}");
}
