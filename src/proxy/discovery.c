/* Control-plane mode: `sinew-proxy --control-plane ADDR:PORT[,ADDR:PORT...]`.
 *
 * The proxy holds no config file. It keeps the resources sinewd sent it
 * (their YAML text, keyed by Kind/namespace/name) and, on every delta,
 * loads and translates the whole set with the same config library sinewd
 * ran at admission. A delta that does not translate runs in part when it
 * can (accept_partly: the changes that still translate, the others refused
 * by name in the ack); otherwise it is NACKed with the diagnostics and
 * changes nothing. Discovery is lazy: a request for a host
 * the proxy knows nothing about parks (at most 1 s) while the proxy
 * subscribes to it. Runs on the main thread's loop; workers reach it only
 * through sn_loop_post and the mutex-guarded table of known hosts.
 * With several sinewd replicas the link moves to the next one whenever
 * it ends or cannot be made (move_on); what it holds -- resources and
 * their versions, subscriptions, identity -- belongs to the proxy, not to
 * a link, and the next hello carries it to whichever replica answers.
 * Wire format: docs/internals/control-protocol.md. */
#include <errno.h>
#include <inttypes.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sinew/json.h"
#include "sinew/out.h"
#include "sinew/sorted.h"
#include "sinew/log.h"
#include "sinew/xds.h"
#include "proxy.h"
#include "tap.h"

#define HEARTBEAT_MS 3000
/* A PING unanswered for three heartbeats ends the link (on_timer); about
 * sinewd's own 10 s lease on us. */
#define LIVENESS_MS (3 * HEARTBEAT_MS)
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 10000
#define CONNECT_TIMEOUT_MS 2000
#define MAX_RESOURCES 100000
#define MAX_SUBSCRIPTIONS 4096
#define MAX_HOST 253

struct cp_resource {
	char *key;      /* "Kind/namespace/name" */
	char *rv;
	char *source;
	char *yaml;
	size_t yaml_len;
	int line;       /* line of yaml's first line in source (0: 1) */
};

struct cp_sub {
	char host[MAX_HOST + 1];
	int known;      /* sinewd answered this subscription */
	uint64_t last_used_ms;
};

/* A sweep: the main thread asks each worker which hosts it routed to
 * since the last sweep; the worker answers on the same message. */
struct sweep_msg {
	struct sn_task task;
	struct sn_cp *cp;
	struct sn_worker *w;
	char **hosts;
	size_t n_hosts;
};

struct sn_cp {
	struct sn_proxy *p;
	/* sinewd replicas, in --control-plane order; cur is the one in use or
	 * being tried. A round tries each once, back to back; only a round
	 * in which none answered waits out the backoff (move_on). */
	struct sn_addr replicas[SN_CP_MAX_REPLICAS];
	size_t n_replicas;
	size_t cur;
	size_t tried;                 /* replicas that failed in this round */
	char left[200];               /* why the last link or try ended, for the next "connected" line */
	struct sn_xds_conn *conn;
	uint64_t pings;               /* PINGs sent on this link (at most one unanswered) */
	uint64_t ping_ms;             /* when the last one went */
	struct sn_timer timer;        /* reconnect backoff, then heartbeat */
	struct sn_timer sweep_timer;  /* idle subscriptions */
	uint32_t idle_ms;
	uint32_t backoff_ms;
	int open;
	int bootstrap;                /* this link only fetches a certificate (identity.c) */
	int reconnect_now;
	char node_id[96];
	char revision[32];
	struct cp_resource *res;
	size_t n_res;
	pthread_mutex_t lock;         /* guards subs for worker reads */
	struct cp_sub *subs;
	size_t n_subs;
	uint64_t rng;
	uint64_t pushes, acks, nacks;
	/* stats messages (send_stats) */
	struct sn_timer stats_timer;
	uint32_t stats_interval_ms;
	uint64_t stats_seq;           /* messages sent by this process */
	uint64_t stats_quiet_ms;      /* loop time since which the counts may have moved */
	uint64_t stats_requests;      /* what the last one said, to skip an unchanged one */
	uint64_t stats_route_requests;
	size_t stats_series;
	int64_t stats_cx_active, stats_cx_total;
	int stats_warned;             /* series were left out (logged once) */
};

struct sub_msg {
	struct sn_task task;
	struct sn_cp *cp;
	char host[MAX_HOST + 1];
};

/* The replica in use or being tried, "ip:port". */
static const char *replica(const struct sn_cp *cp)
{
	return cp->replicas[cp->cur].text;
}

/* A JSON string; NULL as "" (the protocol's fields are strings). */
static void json_text(struct sn_out *o, const char *s)
{
	sn_out_json_str(o, s ? s : "", s ? strlen(s) : 0);
}

static void cp_send(struct sn_cp *cp, struct sn_out *b)
{
	/* A bootstrap link carries only the CSR (identity.c): no hello,
	 * subscriptions or heartbeats, which sinewd would refuse. */
	if (b->failed || cp->conn == NULL || cp->bootstrap) {
		free(b->p);
		return;
	}
	int r = sn_xds_send(cp->conn, b->p, b->len);
	if (r != 0)
		sn_log(SN_LOG_WARN, "control: cannot queue a message (%d); reconnecting", r);
	free(b->p);
	if (r != 0)
		sn_xds_close(cp->conn, "send queue full");
}

/* ---- JSON input via libfyaml (JSON is YAML) -------------------------- */

static const char *scalar(struct fy_node *map, const char *key, size_t *len)
{
	struct fy_node *n = map ? fy_node_mapping_lookup_by_string(map, key, FY_NT) : NULL;
	if (n == NULL || !fy_node_is_scalar(n))
		return NULL;
	return fy_node_get_scalar(n, len);
}

static char *scalar_dup(struct fy_node *map, const char *key)
{
	size_t len;
	const char *s = scalar(map, key, &len);
	return s ? strndup(s, len) : NULL;
}

/* ---- resources --------------------------------------------------------- */

static void res_free(struct cp_resource *r)
{
	free(r->key);
	free(r->rv);
	free(r->source);
	free(r->yaml);
}

static void res_table_free(struct cp_resource *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		res_free(&v[i]);
	free(v);
}

static ssize_t res_find(struct cp_resource *v, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].key, key) == 0)
			return (ssize_t)i;
	return -1;
}

/* Orders keys as sinewd's store does (kind, then namespace, then name),
 * so "the first one wins" rules (two VirtualServices for one host...)
 * pick the same resource here as at admission. */
static int kind_rank(const char *key, size_t len)
{
	static const char *const kinds[] = { "Service", "WorkloadEntry", "VirtualService", "DestinationRule" };
	for (size_t i = 0; i < SN_ARRAY_LEN(kinds); i++)
		if (strlen(kinds[i]) == len && !memcmp(kinds[i], key, len))
			return (int)i;
	return (int)SN_ARRAY_LEN(kinds);
}

static int cmp_res(const void *a, const void *b)
{
	const char *x = ((const struct cp_resource *)a)->key, *y = ((const struct cp_resource *)b)->key;
	for (int part = 0; part < 3; part++) {
		const char *xe = part < 2 ? strchr(x, '/') : NULL, *ye = part < 2 ? strchr(y, '/') : NULL;
		size_t xl = xe ? (size_t)(xe - x) : strlen(x), yl = ye ? (size_t)(ye - y) : strlen(y);
		int c;
		if (part == 0) {
			c = kind_rank(x, xl) - kind_rank(y, yl);
		} else {
			c = memcmp(x, y, SN_MIN(xl, yl));
			if (c == 0)
				c = (xl > yl) - (xl < yl);
		}
		if (c != 0 || xe == NULL || ye == NULL)
			return c != 0 ? c : (xe != NULL) - (ye != NULL);
		x = xe + 1;
		y = ye + 1;
	}
	return 0;
}

static int cmp_key_res(const void *key, const void *elem)
{
	const struct cp_resource k = { .key = (char *)key };
	return cmp_res(&k, elem);
}

/* The index of key in a table sorted by cmp_res, or -1: by its order,
 * then by name among the keys it ranks alike (kinds past the four it
 * names rank alike). */
static ssize_t sorted_find(const struct cp_resource *v, size_t n, const char *key)
{
	for (size_t i = sn_lower_bound(v, n, sizeof(*v), key, cmp_key_res, NULL); i < n && !cmp_key_res(key, &v[i]); i++)
		if (!strcmp(v[i].key, key))
			return (ssize_t)i;
	return -1;
}

/* Loads every resource of the table and translates the set. On success
 * *out gets the snapshot; diagnostics go to d either way. */
static int build(struct sn_cp *cp, struct cp_resource *v, size_t n, struct sn_diags *d, struct sn_snapshot **out)
{
	struct sn_config_set set;
	int r = 0;

	sn_config_set_init(&set);
	for (size_t i = 0; i < n; i++)
		if (sn_config_load_text_at(&set, v[i].source ? v[i].source : v[i].key, v[i].yaml, v[i].yaml_len,
					   v[i].line > 0 ? v[i].line : 1, d) != 0)
			r = SN_EINVAL;
	if (r == 0)
		r = sn_config_translate(&set, &cp->p->identity, d, out);
	sn_config_set_free(&set);
	return r;
}

void sn_cp_retranslate(struct sn_proxy *p)
{
	struct sn_cp *cp = p->cp;
	struct sn_diags d;
	struct sn_snapshot *snap = NULL;
	if (cp == NULL || cp->res == NULL)
		return;   /* nothing held yet: the first push translates */
	sn_diags_init(&d);
	if (build(cp, cp->res, cp->n_res, &d, &snap) == 0 && snap != NULL)
		sn_proxy_publish(p, snap);
	else
		sn_log(SN_LOG_WARN, "control: translating the held resources again failed; still serving version %llu",
		       (unsigned long long)p->version);
	sn_diags_free(&d);
}

static void send_ack(struct sn_cp *cp, const char *nonce)
{
	struct sn_out b = { 0 };
	sn_out_cstr(&b, "{\"type\":\"ack\",\"nonce\":");
	json_text(&b, nonce);
	sn_out_cstr(&b, "}");
	cp_send(cp, &b);
}

/* One {"resource", "text"} of a nack's errors or an ack's refusals. */
static void out_refusal(struct sn_out *b, int *first, const char *key, const char *text)
{
	if (!*first)
		sn_out_cstr(b, ",");
	*first = 0;
	sn_out_cstr(b, "{\"resource\":");
	json_text(b, key);
	sn_out_cstr(b, ",\"text\":");
	json_text(b, text);
	sn_out_cstr(b, "}");
}

static void send_nack(struct sn_cp *cp, const char *nonce, const struct sn_diags *d)
{
	struct sn_out b = { 0 };
	int first = 1;
	sn_out_cstr(&b, "{\"type\":\"nack\",\"nonce\":");
	json_text(&b, nonce);
	sn_out_cstr(&b, ",\"errors\":[");
	for (size_t i = 0; i < d->n; i++) {
		char line[2048];
		char key[512];
		if (d->v[i].severity != SN_DIAG_ERROR)
			continue;
		sn_diag_format(&d->v[i], line, sizeof(line));
		snprintf(key, sizeof(key), "%s/%s", d->v[i].kind ? d->v[i].kind : "", d->v[i].name ? d->v[i].name : "");
		out_refusal(&b, &first, key, line);
	}
	sn_out_cstr(&b, "]}");
	cp_send(cp, &b);
}

/* Marks the subscriptions a message completes. Returns how many changed. */
static int mark_known(struct sn_cp *cp, struct fy_node *list)
{
	int changed = 0;
	struct fy_node *it;
	void *iter = NULL;

	if (list == NULL || !fy_node_is_sequence(list))
		return 0;
	pthread_mutex_lock(&cp->lock);
	while ((it = fy_node_sequence_iterate(list, &iter)) != NULL) {
		size_t len;
		const char *h = fy_node_is_scalar(it) ? fy_node_get_scalar(it, &len) : NULL;
		if (h == NULL)
			continue;
		for (size_t i = 0; i < cp->n_subs; i++)
			if (strlen(cp->subs[i].host) == len && memcmp(cp->subs[i].host, h, len) == 0 &&
			    !cp->subs[i].known) {
				cp->subs[i].known = 1;
				changed++;
			}
	}
	pthread_mutex_unlock(&cp->lock);
	return changed;
}

/* ---- a push accepted in part ------------------------------------------ */

/* One change of a push: a resource put (index in the new table) or a
 * held one removed (index in the old). */
struct change {
	const char *key;
	size_t at;
	int put;
	int accepted;
	char *error;    /* the first error of the last try */
};

/* What accept_partly keeps. */
struct partial {
	struct cp_resource *table;   /* deep copy: the set now run */
	size_t n;
	struct sn_snapshot *snap;
	struct change *changes;
	size_t n_changes;
};

static void partial_free(struct partial *pa)
{
	for (size_t i = 0; i < pa->n_changes; i++)
		free(pa->changes[i].error);
	free(pa->changes);
	if (pa->table != NULL)
		res_table_free(pa->table, pa->n);
	if (pa->snap != NULL)
		sn_snapshot_unref(pa->snap);
	memset(pa, 0, sizeof(*pa));
}

static int res_dup(struct cp_resource *dst, const struct cp_resource *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->key = strdup(src->key);
	dst->rv = src->rv ? strdup(src->rv) : NULL;
	dst->source = src->source ? strdup(src->source) : NULL;
	dst->yaml = malloc(src->yaml_len + 1);
	dst->yaml_len = src->yaml_len;
	dst->line = src->line;
	if (dst->yaml != NULL)
		memcpy(dst->yaml, src->yaml, src->yaml_len + 1);
	if (dst->key == NULL || dst->yaml == NULL || (src->rv && dst->rv == NULL) || (src->source && dst->source == NULL)) {
		res_free(dst);
		return SN_ENOMEM;
	}
	return 0;
}

/* The push (the held table old, the table it asked for v) did not
 * translate as a whole. Takes its changes one at a time onto what is held,
 * keeping each that still translates, until none more does (a change may
 * need another: a route and the rule defining its subset): one resource
 * that cannot run no longer holds back the others. Returns 0 with *pa
 * filled when some changes run and some do not; -1 when there is nothing
 * to separate (one change, none runs, more than PARTIAL_MAX_CHANGES, or
 * out of memory): the whole push is refused. old and v are sorted by
 * cmp_res (cp->res always is), so a proxy holding thousands of endpoints
 * finds each key by a binary search. */
#define PARTIAL_MAX_CHANGES 64
#define PARTIAL_MAX_ROUNDS 3

static int accept_partly(struct sn_cp *cp, const struct cp_resource *old, size_t n_old, const struct cp_resource *v,
			 size_t n, struct partial *pa)
{
	struct cp_resource *cur = NULL, *cand = NULL;
	size_t n_cur = n_old, accepted = 0;

	memset(pa, 0, sizeof(*pa));
	pa->changes = calloc(PARTIAL_MAX_CHANGES, sizeof(*pa->changes));
	if (pa->changes == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		ssize_t at = sorted_find(old, n_old, v[i].key);
		if (at >= 0 && old[at].rv != NULL && v[i].rv != NULL && !strcmp(old[at].rv, v[i].rv))
			continue;
		if (pa->n_changes == PARTIAL_MAX_CHANGES)
			goto whole;
		pa->changes[pa->n_changes++] = (struct change){ .key = v[i].key, .at = i, .put = 1 };
	}
	for (size_t i = 0; i < n_old; i++) {
		if (sorted_find(v, n, old[i].key) >= 0)
			continue;
		if (pa->n_changes == PARTIAL_MAX_CHANGES)
			goto whole;
		pa->changes[pa->n_changes++] = (struct change){ .key = old[i].key, .at = i, .put = 0 };
	}
	if (pa->n_changes < 2)
		goto whole;
	/* tables of borrowed entries (from old and v); copied once at the end */
	cur = calloc(n_old + pa->n_changes + 1, sizeof(*cur));
	cand = calloc(n_old + pa->n_changes + 1, sizeof(*cand));
	if (cur == NULL || cand == NULL)
		goto whole;
	if (n_old > 0)
		memcpy(cur, old, n_old * sizeof(*cur));
	for (int round = 0, progress = 1; round < PARTIAL_MAX_ROUNDS && progress; round++) {
		progress = 0;
		for (size_t c = 0; c < pa->n_changes; c++) {
			struct change *ch = &pa->changes[c];
			if (ch->accepted)
				continue;
			size_t n_cand = n_cur;
			memcpy(cand, cur, n_cur * sizeof(*cand));
			ssize_t at = sorted_find(cand, n_cand, ch->key);
			if (ch->put && at >= 0)
				cand[at] = v[ch->at];
			else if (ch->put)
				cand[n_cand++] = v[ch->at];
			else if (at >= 0)
				cand[at] = cand[--n_cand];
			qsort(cand, n_cand, sizeof(*cand), cmp_res);
			struct sn_diags d;
			struct sn_snapshot *snap = NULL;
			sn_diags_init(&d);
			if (build(cp, cand, n_cand, &d, &snap) == 0 && snap != NULL) {
				struct cp_resource *t = cur;
				cur = cand;
				cand = t;
				n_cur = n_cand;
				if (pa->snap != NULL)
					sn_snapshot_unref(pa->snap);
				pa->snap = snap;
				ch->accepted = 1;
				accepted++;
				progress = 1;
			} else {
				if (snap != NULL)
					sn_snapshot_unref(snap);
				for (size_t i = 0; i < d.n; i++)
					if (d.v[i].severity == SN_DIAG_ERROR) {
						char line[2048];
						sn_diag_format(&d.v[i], line, sizeof(line));
						free(ch->error);
						ch->error = strdup(line);
						break;
					}
			}
			sn_diags_free(&d);
		}
	}
	if (accepted == 0)
		goto whole;
	pa->table = calloc(n_cur + 1, sizeof(*pa->table));
	if (pa->table == NULL)
		goto whole;
	for (size_t i = 0; i < n_cur; i++, pa->n++)
		if (res_dup(&pa->table[i], &cur[i]) != 0)
			goto whole;
	free(cur);
	free(cand);
	return 0;
whole:
	free(cur);
	free(cand);
	partial_free(pa);
	return -1;
}

static void send_ack_refusing(struct sn_cp *cp, const char *nonce, const struct partial *pa)
{
	struct sn_out b = { 0 };
	int first = 1;
	sn_out_cstr(&b, "{\"type\":\"ack\",\"nonce\":");
	json_text(&b, nonce);
	sn_out_cstr(&b, ",\"refused\":[");
	for (size_t i = 0; i < pa->n_changes; i++) {
		const struct change *ch = &pa->changes[i];
		if (!ch->accepted)
			out_refusal(&b, &first, ch->key, ch->error ? ch->error : "did not translate with the rest of the push");
	}
	sn_out_cstr(&b, "]}");
	cp_send(cp, &b);
}

/* The first push that runs makes the proxy ready. Returns whether this
 * one did. */
static int became_ready(struct sn_cp *cp)
{
	struct sn_proxy *p = cp->p;
	if (p->ready)
		return 0;
	__atomic_store_n(&p->cp_synced, 1, __ATOMIC_RELEASE);
	p->ready = 1;
	sn_log(SN_LOG_INFO, "control: synced with %s at revision %s (%zu resources); ready", replica(cp),
	       cp->revision, cp->n_res);
	return 1;
}

static void on_resources(struct sn_cp *cp, struct fy_node *root)
{
	struct sn_proxy *p = cp->p;
	char *nonce = scalar_dup(root, "nonce");
	char *version = scalar_dup(root, "version");
	struct fy_node *list = fy_node_mapping_lookup_by_string(root, "resources", FY_NT);
	struct fy_node *removed = fy_node_mapping_lookup_by_string(root, "removed", FY_NT);
	struct cp_resource *v = NULL;
	size_t n = 0;
	struct fy_node *it;
	void *iter;
	struct sn_diags d;
	struct sn_snapshot *snap = NULL;

	cp->pushes++;
	/* Start from a copy of what we hold; apply the delta to the copy. */
	v = calloc(cp->n_res + (list && fy_node_is_sequence(list) ? (size_t)fy_node_sequence_item_count(list) : 0) + 1,
		   sizeof(*v));
	if (v == NULL)
		goto out;
	for (size_t i = 0; i < cp->n_res; i++) {
		v[n].key = strdup(cp->res[i].key);
		v[n].rv = cp->res[i].rv ? strdup(cp->res[i].rv) : NULL;
		v[n].source = cp->res[i].source ? strdup(cp->res[i].source) : NULL;
		v[n].yaml = malloc(cp->res[i].yaml_len + 1);
		if (v[n].yaml != NULL) {
			memcpy(v[n].yaml, cp->res[i].yaml, cp->res[i].yaml_len + 1);
			v[n].yaml_len = cp->res[i].yaml_len;
		}
		v[n].line = cp->res[i].line;
		n++;
	}
	iter = NULL;
	while (removed != NULL && fy_node_is_sequence(removed) && (it = fy_node_sequence_iterate(removed, &iter)) != NULL) {
		size_t len;
		const char *k = fy_node_is_scalar(it) ? fy_node_get_scalar(it, &len) : NULL;
		if (k == NULL)
			continue;
		char *key = strndup(k, len);
		ssize_t at = key ? res_find(v, n, key) : -1;
		if (at >= 0) {
			res_free(&v[at]);
			v[at] = v[--n];
		}
		free(key);
	}
	iter = NULL;
	while (list != NULL && fy_node_is_sequence(list) && (it = fy_node_sequence_iterate(list, &iter)) != NULL) {
		char key[768];
		size_t ylen;
		char *kind = scalar_dup(it, "kind"), *ns = scalar_dup(it, "namespace"), *name = scalar_dup(it, "name");
		const char *yaml = scalar(it, "yaml", &ylen);
		if (kind == NULL || name == NULL || yaml == NULL || n >= MAX_RESOURCES) {
			free(kind), free(ns), free(name);
			continue;
		}
		snprintf(key, sizeof(key), "%s/%s/%s", kind, ns ? ns : "default", name);
		free(kind), free(ns), free(name);
		ssize_t at = res_find(v, n, key);
		if (at < 0)
			at = (ssize_t)n++;
		else
			res_free(&v[at]);
		v[at].key = strdup(key);
		v[at].rv = scalar_dup(it, "resourceVersion");
		v[at].source = scalar_dup(it, "source");
		v[at].yaml = strndup(yaml, ylen);
		v[at].yaml_len = ylen;
		size_t llen;
		const char *ls = scalar(it, "line", &llen);
		v[at].line = 0;
		for (size_t k = 0; ls != NULL && k < llen && k < 9 && ls[k] >= '0' && ls[k] <= '9'; k++)
			v[at].line = v[at].line * 10 + (ls[k] - '0');
	}
	qsort(v, n, sizeof(*v), cmp_res);
	sn_diags_init(&d);
	struct partial pa;
	int built = build(cp, v, n, &d, &snap) == 0 && snap != NULL;
	if (!built && snap != NULL) {
		sn_snapshot_unref(snap);
		snap = NULL;
	}
	if (!built && accept_partly(cp, cp->res, cp->n_res, v, n, &pa) == 0) {
		/* Part of it runs: the rest is refused by name, the link goes
		 * on with what runs (sinewd keeps the refused ones as before). */
		cp->nacks++;
		for (size_t i = 0; i < pa.n_changes; i++)
			if (!pa.changes[i].accepted)
				sn_log(SN_LOG_ERROR, "control: push %s: refused %s%s: %s", nonce ? nonce : "?",
				       pa.changes[i].put ? "" : "the removal of ", pa.changes[i].key,
				       pa.changes[i].error ? pa.changes[i].error : "it does not translate with the rest");
		send_ack_refusing(cp, nonce ? nonce : "", &pa);
		res_table_free(v, n);
		res_table_free(cp->res, cp->n_res);
		cp->res = pa.table;
		cp->n_res = pa.n;
		pa.table = NULL;
		p->proc.config_reloads_failed++;
		mark_known(cp, fy_node_mapping_lookup_by_string(root, "subscribed", FY_NT));
		sn_proxy_publish(p, pa.snap);
		pa.snap = NULL;
		partial_free(&pa);
		became_ready(cp);
	} else if (!built) {
		cp->nacks++;
		for (size_t i = 0; i < d.n; i++) {
			char line[2048];
			if (d.v[i].severity != SN_DIAG_ERROR)
				continue;
			sn_diag_format(&d.v[i], line, sizeof(line));
			sn_log(SN_LOG_ERROR, "control: refused push %s: %s", nonce ? nonce : "?", line);
		}
		send_nack(cp, nonce ? nonce : "", &d);
		res_table_free(v, n);
		p->proc.config_reloads_failed++;
		/* Hosts this push answered are known (their routes failed):
		 * requests waiting for them must not hang. */
		if (mark_known(cp, fy_node_mapping_lookup_by_string(root, "subscribed", FY_NT)))
			sn_proxy_republish(p);
	} else {
		res_table_free(cp->res, cp->n_res);
		cp->res = v;
		cp->n_res = n;
		if (version != NULL)
			snprintf(cp->revision, sizeof(cp->revision), "%s", version);
		mark_known(cp, fy_node_mapping_lookup_by_string(root, "subscribed", FY_NT));
		sn_proxy_publish(p, snap);
		cp->acks++;
		send_ack(cp, nonce ? nonce : "");
		if (!became_ready(cp)) {
			sn_log(SN_LOG_DEBUG, "control: revision %s applied as config version %llu (%zu resources)",
			       cp->revision, (unsigned long long)p->version, n);
		}
	}
	sn_diags_free(&d);
out:
	free(nonce);
	free(version);
}

/* ---- link lifecycle ----------------------------------------------------- */

static void send_hello(struct sn_cp *cp)
{
	struct sn_proxy *p = cp->p;
	struct sn_out b = { 0 };

	sn_out_cstr(&b, "{\"type\":\"hello\",\"node\":{\"id\":");
	json_text(&b, cp->node_id);
	sn_out_cstr(&b, ",\"service\":");
	json_text(&b, p->opt.service ? p->opt.service : "");
	sn_out_cstr(&b, ",\"workload\":");
	json_text(&b, p->workload);
	sn_out_cstr(&b, ",\"namespace\":");
	json_text(&b, p->identity.namespace_);
	sn_out_cstr(&b, ",\"service_account\":");
	json_text(&b, p->identity.service_account);
	sn_out_cstr(&b, ",\"labels\":{");
	for (size_t i = 0; i < p->labels.n; i++) {
		if (i)
			sn_out_cstr(&b, ",");
		json_text(&b, p->labels.v[i].key);
		sn_out_cstr(&b, ":");
		json_text(&b, p->labels.v[i].value);
	}
	sn_out_cstr(&b, "},\"inbound\":");
	if (p->opt.have_advertise)
		json_text(&b, p->opt.advertise.text);
	else if (p->opt.have_inbound)
		json_text(&b, p->opt.inbound.text);
	else
		sn_out_cstr(&b, "null");
	sn_out_cstr(&b, ",\"admin\":");
	if (p->opt.have_admin)
		json_text(&b, p->opt.admin.text);
	else
		sn_out_cstr(&b, "null");
	if (p->opt.have_capture_probe)
		sn_out_cstr(&b, ",\"capture\":true");
	if (p->opt.gateway)
		sn_out_cstr(&b, ",\"gateway\":true");
	if (p->opt.pod_name != NULL) {
		sn_out_cstr(&b, ",\"pod\":");
		json_text(&b, p->opt.pod_name);
	}
	sn_out_cstr(&b, ",\"version\":\"0.1.0\"},\"have\":{");
	for (size_t i = 0; i < cp->n_res; i++) {
		if (i)
			sn_out_cstr(&b, ",");
		json_text(&b, cp->res[i].key);
		sn_out_cstr(&b, ":");
		json_text(&b, cp->res[i].rv ? cp->res[i].rv : "");
	}
	sn_out_cstr(&b, "}}");
	cp_send(cp, &b);
}

static void send_subscribe(struct sn_cp *cp, const char *const *hosts, size_t n)
{
	struct sn_out b = { 0 };
	if (n == 0)
		return;
	sn_out_cstr(&b, "{\"type\":\"subscribe\",\"hosts\":[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			sn_out_cstr(&b, ",");
		json_text(&b, hosts[i]);
	}
	sn_out_cstr(&b, "]}");
	cp_send(cp, &b);
}

static void connect_now(struct sn_cp *cp);

static uint32_t jitter(struct sn_cp *cp, uint32_t below)
{
	cp->rng = cp->rng * 6364136223846793005ull + 1442695040888963407ull;
	return below ? (uint32_t)((cp->rng >> 33) % below) : 0;
}

static void on_timer(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_cp *cp = sn_container_of(t, struct sn_cp, timer);

	if (cp->conn == NULL) {
		connect_now(cp);
		return;
	}
	if (cp->open && cp->bootstrap) {
		sn_xds_close(cp->conn, "no certificate from sinewd in time");
	} else if (cp->open) {
		/* A replica whose machine vanished, or whose loop hangs, closes
		 * nothing: an unanswered PING is how we learn it is gone. One is
		 * out at a time, and its answer counts however late our loop
		 * reads it, so a stall of ours is not taken for one of sinewd's. */
		if (cp->pings > sn_xds_pings_answered(cp->conn)) {
			if (sn_loop_now(loop) - cp->ping_ms >= LIVENESS_MS) {
				sn_xds_close(cp->conn, "heartbeat missing: sinewd answered no PING in 9 s");
				return;
			}
		} else if (sn_xds_ping(cp->conn) == 0) {
			cp->pings++;
			cp->ping_ms = sn_loop_now(loop);
		}
		struct sn_out b = { 0 };
		sn_out_cstr(&b, "{\"type\":\"heartbeat\"}");
		cp_send(cp, &b);
		sn_timer_start(loop, &cp->timer, HEARTBEAT_MS, on_timer);
	} else {
		/* The stream did not open in time. */
		sn_xds_close(cp->conn, "connect timeout");
	}
}

static void on_open(struct sn_xds_conn *c)
{
	struct sn_cp *cp = sn_xds_arg(c);
	const char **hosts;
	const char *how = sn_xds_secure(c) ? (cp->bootstrap ? " (TLS, to get a certificate)" : " (mutual TLS)") : "";

	cp->open = 1;
	cp->backoff_ms = BACKOFF_MIN_MS;
	cp->tried = 0;
	cp->pings = 0;
	if (cp->n_replicas > 1)
		sn_log(SN_LOG_INFO, "control: connected to %s%s, replica %zu of %zu%s%s", replica(cp), how,
		       cp->cur + 1, cp->n_replicas, cp->left[0] ? "; " : "", cp->left);
	else
		sn_log(SN_LOG_INFO, "control: connected to %s%s", replica(cp), how);
	cp->left[0] = '\0';
	if (sn_ident_on_open(cp->p)) {
		/* Bootstrap: no hello; the certificate comes back, or the link
		 * times out and we try again. */
		sn_timer_start(&cp->p->loop, &cp->timer, CONNECT_TIMEOUT_MS * 5, on_timer);
		return;
	}
	send_hello(cp);
	/* Re-subscribe to everything this proxy was watching. */
	pthread_mutex_lock(&cp->lock);
	hosts = calloc(cp->n_subs + 1, sizeof(*hosts));
	size_t n = 0;
	for (size_t i = 0; hosts != NULL && i < cp->n_subs; i++)
		hosts[n++] = cp->subs[i].host;
	pthread_mutex_unlock(&cp->lock);
	if (hosts != NULL)
		send_subscribe(cp, hosts, n);
	free(hosts);
	sn_timer_start(&cp->p->loop, &cp->timer, HEARTBEAT_MS, on_timer);
}

/* Past this, a scrape answers with an error instead of the text (the
 * link's line limit, with room for escaping). */
#define SCRAPE_MAX_TEXT (4u << 20)

/* sinewd relays a Prometheus scrape of this proxy (a pod's admin port is
 * not reachable from outside the pod): the /metrics text goes back as a
 * "scrapeResult" with the same id. */
static void on_scrape(struct sn_cp *cp, struct fy_node *root)
{
	size_t idl;
	const char *id = scalar(root, "id", &idl);
	char *text = NULL;
	size_t tl = 0;
	struct sn_out b = { 0 };

	if (id == NULL || idl == 0 || idl > 32)
		return;
	sn_out_cstr(&b, "{\"type\":\"scrapeResult\",\"id\":");
	sn_out_json_str(&b, id, idl);
	if (sn_admin_metrics_text(cp->p, &text, &tl) != 0 || tl > SCRAPE_MAX_TEXT) {
		sn_out_printf(&b, ",\"error\":\"%s\"}", text == NULL ? "out of memory" : "the metrics text is over 4 MiB");
	} else {
		sn_out_cstr(&b, ",\"text\":");
		sn_out_json_str(&b, text, tl);
		sn_out_raw(&b, "}", 1);
	}
	free(text);
	cp_send(cp, &b);
}

static void on_message(struct sn_xds_conn *c, const char *msg, size_t len)
{
	struct sn_cp *cp = sn_xds_arg(c);
	struct fy_document *doc;
	size_t tlen;
	const char *type;

	if (!sn_utf8_valid(msg, len)) {
		sn_xds_close(c, "message is not UTF-8");
		return;
	}
	doc = sn_json_parse(msg, len);
	if (doc == NULL || fy_document_root(doc) == NULL || !fy_node_is_mapping(fy_document_root(doc))) {
		if (doc != NULL)
			fy_document_destroy(doc);
		sn_log(SN_LOG_WARN, "control: unparsable message from %s; reconnecting", replica(cp));
		sn_xds_close(c, "bad message");
		return;
	}
	type = scalar(fy_document_root(doc), "type", &tlen);
	if (type != NULL && sn_ident_on_message(cp->p, type, tlen, fy_document_root(doc), cp->bootstrap))
		; /* identity.c took it */
	else if (cp->bootstrap)
		sn_log(SN_LOG_DEBUG, "control: ignoring a message on the bootstrap link");
	else if (type != NULL && tlen == 9 && memcmp(type, "resources", 9) == 0)
		on_resources(cp, fy_document_root(doc));
	else if (type != NULL && ((tlen == 3 && memcmp(type, "tap", 3) == 0) || (tlen == 5 && memcmp(type, "untap", 5) == 0)))
		sn_tap_on_message(cp->p, tlen == 3, fy_document_root(doc));
	else if (type != NULL && tlen == 6 && memcmp(type, "scrape", 6) == 0)
		on_scrape(cp, fy_document_root(doc));
	else if (type != NULL && tlen == 5 && memcmp(type, "error", 5) == 0) {
		size_t mlen = 0;
		const char *m = scalar(fy_document_root(doc), "message", &mlen);
		sn_log(SN_LOG_ERROR, "control: %s says: %.*s", replica(cp), (int)mlen, m ? m : "");
	}
	fy_document_destroy(doc);
}

/* The link to the current replica ended (was_up: it had opened) or could
 * not be made, for why: go on with the next one. The replicas of a round
 * are tried back to back, so a dead one costs at most CONNECT_TIMEOUT_MS
 * and a refusing one nothing; the jittered exponential backoff (+-50 %)
 * runs only after a whole round in which none answered. A lost link
 * starts a new round at the next replica (the lost one counts as tried:
 * with one replica this is the plain backoff), after a pause of up to
 * BACKOFF_MIN_MS, because every proxy of a replica that died sees it at
 * the same moment and should not reach the next one in the same instant. */
static void move_on(struct sn_cp *cp, const char *why, int was_up)
{
	uint32_t delay = 0;

	snprintf(cp->left, sizeof(cp->left), "left %s: %s", replica(cp), why);
	if (was_up)
		cp->tried = 0;
	cp->tried++;
	cp->cur = (cp->cur + 1) % cp->n_replicas;
	if (cp->tried >= cp->n_replicas) {
		cp->tried = 0;
		delay = cp->backoff_ms / 2 + jitter(cp, cp->backoff_ms + 1);
		cp->backoff_ms = SN_MIN(cp->backoff_ms * 2, BACKOFF_MAX_MS);
	} else if (was_up) {
		delay = jitter(cp, BACKOFF_MIN_MS + 1);
	}
	sn_timer_start(&cp->p->loop, &cp->timer, delay, on_timer);
}

static void on_close(struct sn_xds_conn *c, const char *why)
{
	struct sn_cp *cp = sn_xds_arg(c);
	int was_up = cp->open && !cp->bootstrap;

	if (cp->conn != c)
		return;
	cp->conn = NULL;
	sn_tap_clear(cp->p);   /* sinewd's taps end with the link they came on */
	if (cp->reconnect_now) {
		sn_log(SN_LOG_INFO, "control: %s", why);
	} else if (was_up) {
		sn_log(SN_LOG_WARN, "control: lost %s (%s); serving config version %llu meanwhile%s%s",
		       replica(cp), why, (unsigned long long)cp->p->version, cp->n_replicas > 1 ? "; next: " : "",
		       cp->n_replicas > 1 ? cp->replicas[(cp->cur + 1) % cp->n_replicas].text : "");
	} else {
		/* Unreachable, or refused: TLS failures say why once per try. */
		sn_log(sn_xds_secure(c) ? SN_LOG_WARN : SN_LOG_DEBUG, "control: %s: %s", replica(cp), why);
		if (cp->bootstrap)
			sn_ident_set_error(cp->p, why);
	}
	cp->open = 0;
	if (cp->p->draining)
		return;
	if (cp->reconnect_now) {
		/* The same replica, at once: it just gave us our certificate. */
		cp->reconnect_now = 0;
		cp->backoff_ms = BACKOFF_MIN_MS;
		cp->left[0] = '\0';
		sn_timer_start(&cp->p->loop, &cp->timer, 0, on_timer);
		return;
	}
	move_on(cp, why, was_up);
}

static const struct sn_xds_ops cp_ops = {
	.on_open = on_open,
	.on_message = on_message,
	.on_close = on_close,
};

static void connect_now(struct sn_cp *cp)
{
	const struct sn_addr *a = &cp->replicas[cp->cur];
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	/* Loopback refuses at once, here rather than in on_close. */
	if (fd < 0 || (connect(fd, (const struct sockaddr *)&a->ss, a->len) != 0 && errno != EINPROGRESS)) {
		char why[160];
		snprintf(why, sizeof(why), "connect failed: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		sn_log(SN_LOG_DEBUG, "control: %s: %s", a->text, why);
		move_on(cp, why, 0);
		return;
	}
	struct sn_xds_tls tls;
	cp->bootstrap = sn_ident_cp_tls(cp->p, &tls);
	cp->conn = sn_xds_client(&cp->p->loop, fd, a->text, tls.ctx != NULL ? &tls : NULL, &cp_ops, cp);
	if (cp->conn == NULL) {
		/* Out of memory: no replica's fault; the same one, later. */
		sn_timer_start(&cp->p->loop, &cp->timer, cp->backoff_ms, on_timer);
		return;
	}
	sn_timer_start(&cp->p->loop, &cp->timer, CONNECT_TIMEOUT_MS, on_timer);
}

/* ---- subscriptions from workers ----------------------------------------- */

static void on_sub_msg(struct sn_loop *loop, struct sn_task *t)
{
	struct sub_msg *m = sn_container_of(t, struct sub_msg, task);
	struct sn_cp *cp = m->cp;
	int fresh = 1;

	pthread_mutex_lock(&cp->lock);
	for (size_t i = 0; i < cp->n_subs; i++)
		if (strcmp(cp->subs[i].host, m->host) == 0)
			fresh = 0;
	if (fresh && cp->n_subs < MAX_SUBSCRIPTIONS) {
		struct cp_sub *ns = realloc(cp->subs, (cp->n_subs + 1) * sizeof(*ns));
		if (ns != NULL) {
			cp->subs = ns;
			snprintf(cp->subs[cp->n_subs].host, sizeof(cp->subs[0].host), "%s", m->host);
			cp->subs[cp->n_subs].known = 0;
			cp->subs[cp->n_subs].last_used_ms = sn_loop_now(&cp->p->loop);
			cp->n_subs++;
		} else {
			fresh = 0;
		}
	} else if (fresh) {
		fresh = 0;
	}
	pthread_mutex_unlock(&cp->lock);
	if (fresh && cp->open) {
		const char *h = m->host;
		sn_log(SN_LOG_DEBUG, "control: subscribing to %s", h);
		send_subscribe(cp, &h, 1);
	}
	free(m);
}

int sn_cp_host_known(struct sn_proxy *p, struct sn_str host)
{
	struct sn_cp *cp = p->cp;
	int known = 0;

	if (cp == NULL)
		return 1;
	pthread_mutex_lock(&cp->lock);
	for (size_t i = 0; i < cp->n_subs; i++)
		if (strlen(cp->subs[i].host) == host.len && memcmp(cp->subs[i].host, host.p, host.len) == 0)
			known = cp->subs[i].known ? 1 : -1;
	pthread_mutex_unlock(&cp->lock);
	return known;
}

void sn_cp_subscribe(struct sn_proxy *p, struct sn_str host)
{
	struct sub_msg *m;

	if (p->cp == NULL || host.len == 0 || host.len > MAX_HOST)
		return;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return;
	m->cp = p->cp;
	for (size_t i = 0; i < host.len; i++)
		m->host[i] = (char)sn_tolower_ascii((unsigned char)host.p[i]);
	sn_loop_post(&p->loop, &m->task, on_sub_msg);
}

/* ---- idle subscriptions -------------------------------------------------- */

static void send_unsubscribe(struct sn_cp *cp, const char *const *hosts, size_t n)
{
	struct sn_out b = { 0 };
	if (n == 0)
		return;
	sn_out_cstr(&b, "{\"type\":\"unsubscribe\",\"hosts\":[");
	for (size_t i = 0; i < n; i++) {
		if (i)
			sn_out_cstr(&b, ",");
		json_text(&b, hosts[i]);
	}
	sn_out_cstr(&b, "]}");
	cp_send(cp, &b);
}

static void sweep_free(struct sweep_msg *m)
{
	for (size_t i = 0; i < m->n_hosts; i++)
		free(m->hosts[i]);
	free(m->hosts);
	free(m);
}

/* Main thread: a worker's report. Subscriptions whose virtual host was
 * used are fresh again. */
static void on_sweep_report(struct sn_loop *loop, struct sn_task *t)
{
	struct sweep_msg *m = sn_container_of(t, struct sweep_msg, task);
	struct sn_cp *cp = m->cp;
	struct sn_proxy *p = cp->p;
	uint64_t now = sn_loop_now(loop);

	pthread_mutex_lock(&p->snap_lock);
	struct sn_snapshot *snap = p->snap;
	if (snap != NULL)
		sn_snapshot_ref(snap);
	pthread_mutex_unlock(&p->snap_lock);
	pthread_mutex_lock(&cp->lock);
	for (size_t i = 0; snap != NULL && i < cp->n_subs; i++) {
		uint16_t port;
		const struct sn_vhost *vh = sn_snapshot_find_vhost(
			snap, sn_str_make(cp->subs[i].host, strlen(cp->subs[i].host)), &port);
		for (size_t k = 0; vh != NULL && k < m->n_hosts; k++)
			if (strcmp(vh->host, m->hosts[k]) == 0)
				cp->subs[i].last_used_ms = now;
	}
	pthread_mutex_unlock(&cp->lock);
	if (snap != NULL)
		sn_snapshot_unref(snap);
	sweep_free(m);
}

/* Worker thread: report and reset the hosts routed since the last sweep. */
static void on_sweep_request(struct sn_loop *loop, struct sn_task *t)
{
	struct sweep_msg *m = sn_container_of(t, struct sweep_msg, task);
	struct sn_worker *w = m->w;

	if (w->snap != NULL && w->vhost_used != NULL) {
		m->hosts = calloc(w->snap->n_vhosts + 1, sizeof(char *));
		for (size_t i = 0; m->hosts != NULL && i < w->snap->n_vhosts; i++) {
			if (!w->vhost_used[i])
				continue;
			w->vhost_used[i] = 0;
			m->hosts[m->n_hosts] = strdup(w->snap->vhosts[i].host);
			if (m->hosts[m->n_hosts] != NULL)
				m->n_hosts++;
		}
	}
	sn_loop_post(&m->cp->p->loop, &m->task, on_sweep_report);
}

static void on_sweep_timer(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_cp *cp = sn_container_of(t, struct sn_cp, sweep_timer);
	struct sn_proxy *p = cp->p;
	uint64_t now = sn_loop_now(loop);
	const char **gone = NULL;
	size_t n_gone = 0;

	/* Drop what has been idle longer than the limit (reports from the
	 * previous round have arrived by now), then ask for a new round. */
	pthread_mutex_lock(&cp->lock);
	gone = calloc(cp->n_subs + 1, sizeof(*gone));
	char (*names)[MAX_HOST + 1] = calloc(cp->n_subs + 1, sizeof(*names));
	for (size_t i = 0; gone != NULL && names != NULL && i < cp->n_subs;) {
		if (now - cp->subs[i].last_used_ms < cp->idle_ms) {
			i++;
			continue;
		}
		snprintf(names[n_gone], sizeof(names[0]), "%s", cp->subs[i].host);
		gone[n_gone] = names[n_gone];
		n_gone++;
		cp->subs[i] = cp->subs[--cp->n_subs];
	}
	pthread_mutex_unlock(&cp->lock);
	if (n_gone > 0) {
		sn_log(SN_LOG_INFO, "control: dropping %zu subscription(s) idle for %u s (first: %s)", n_gone,
		       cp->idle_ms / 1000, gone[0]);
		if (cp->open)
			send_unsubscribe(cp, gone, n_gone);
	}
	free(gone);
	free(names);
	for (int i = 0; i < p->n_workers; i++) {
		struct sweep_msg *m = calloc(1, sizeof(*m));
		if (m == NULL)
			continue;
		m->cp = cp;
		m->w = &p->workers[i];
		sn_loop_post(&p->workers[i].loop, &m->task, on_sweep_request);
	}
	sn_timer_start(loop, &cp->sweep_timer, SN_MAX(cp->idle_ms / 4, 100u), on_sweep_timer);
}

/* ---- stats for sinewd ------------------------------------------------------ */

/* Live metrics without Prometheus (`sinew stat`, `sinew edges`): every
 * --stats-interval the request series go to sinewd, cumulative since the
 * proxy started, so a lost message costs nothing and sinewd takes the
 * differences. Like spans they wait behind the configuration: a link with
 * this much queued skips a round (the next carries the counts). */
#define STATS_MAX_QUEUED (1u << 20)
/* Under the link's line limit with room for the envelope. */
#define STATS_MAX_BYTES (SN_XDS_MAX_MESSAGE - (64u << 10))
#define STATS_INTERVAL_DEFAULT_MS 10000

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Builds the message from the workers' stores (read while they record, as
 * /metrics does) and sends it, unless nothing moved since the last one. */
static void send_stats(struct sn_cp *cp, uint64_t now)
{
	struct sn_proxy *p = cp->p;
	struct sn_metrics *stores[256];
	struct sn_metrics_json_info info;
	struct sn_out b = { 0 };
	size_t n = 0;

	for (int i = 0; i < p->n_workers && n < SN_ARRAY_LEN(stores); i++)
		stores[n++] = p->workers[i].metrics;
	int64_t active = sn_metrics_counter_sum(stores, n, SN_CTR_DOWNSTREAM_CX_ACTIVE);
	int64_t total = sn_metrics_counter_sum(stores, n, SN_CTR_DOWNSTREAM_CX_TOTAL);
	/* periodMs: since when these counts may have moved -- the last
	 * message, or the last round that found nothing new; sinewd spreads
	 * what they add over that time. */
	sn_out_printf(&b, "{\"type\":\"stats\",\"timeUnixMs\":%" PRId64 ",\"seq\":%" PRIu64
			  ",\"intervalMs\":%u,\"periodMs\":%" PRIu64 ",",
		      wall_ms(), cp->stats_seq + 1, cp->stats_interval_ms, now - cp->stats_quiet_ms);
	if (sn_metrics_json(stores, n, STATS_MAX_BYTES, &b, &info) != 0) {
		sn_log(SN_LOG_WARN, "control: out of memory building the stats message; trying again in %u ms",
		       cp->stats_interval_ms);
		sn_out_free(&b);
		return;
	}
	sn_out_printf(&b, ",\"tcp\":{\"connectionsActive\":%" PRId64 ",\"connectionsTotal\":%" PRId64 "}}",
		      active, total);
	if (cp->stats_seq > 0 && info.requests == cp->stats_requests && info.series == cp->stats_series &&
	    info.route_requests == cp->stats_route_requests && active == cp->stats_cx_active &&
	    total == cp->stats_cx_total) {
		cp->stats_quiet_ms = now;
		sn_out_free(&b);
		return;
	}
	if ((info.left_out > 0 || info.routes_left_out > 0) && !cp->stats_warned) {
		cp->stats_warned = 1;
		sn_log(SN_LOG_WARN, "control: %zu request series and %zu route series left out of the stats for sinewd "
				    "(the message would pass %u bytes); `sinew stat` and `sinew routes` miss them",
		       info.left_out, info.routes_left_out, STATS_MAX_BYTES);
	}
	if (b.failed || sn_xds_send(cp->conn, b.p, b.len) != 0) {
		sn_out_free(&b);
		return;
	}
	sn_out_free(&b);
	cp->stats_seq++;
	cp->stats_quiet_ms = now;
	cp->stats_requests = info.requests;
	cp->stats_route_requests = info.route_requests;
	cp->stats_series = info.series;
	cp->stats_cx_active = active;
	cp->stats_cx_total = total;
}

static void on_stats_timer(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_cp *cp = sn_container_of(t, struct sn_cp, stats_timer);
	uint64_t now = sn_loop_now(loop);

	sn_timer_start(loop, &cp->stats_timer, cp->stats_interval_ms, on_stats_timer);
	/* No link (or one that only fetches a certificate): the counts keep
	 * adding up and go with the next message. */
	if (cp->conn == NULL || !cp->open || cp->bootstrap || sn_xds_queued(cp->conn) >= STATS_MAX_QUEUED)
		return;
	send_stats(cp, now);
}

/* ---- setup --------------------------------------------------------------- */

int sn_cp_start(struct sn_proxy *p)
{
	struct sn_cp *cp = calloc(1, sizeof(*cp));
	struct sn_diags d;
	struct sn_snapshot *empty = NULL;

	if (cp == NULL)
		return SN_ENOMEM;
	cp->p = p;
	cp->n_replicas = SN_MIN(p->opt.n_control_plane, SN_ARRAY_LEN(cp->replicas));
	int rc = cp->n_replicas == 0 ? SN_EINVAL : sn_tap_init(p);
	if (rc != 0) {
		free(cp);
		return rc;
	}
	memcpy(cp->replicas, p->opt.control_plane, cp->n_replicas * sizeof(cp->replicas[0]));
	cp->backoff_ms = BACKOFF_MIN_MS;
	cp->rng = sn_clock_us() ^ (uint64_t)getpid();
	pthread_mutex_init(&cp->lock, NULL);
	snprintf(cp->node_id, sizeof(cp->node_id), "%s-%08llx", p->opt.service ? p->opt.service : "proxy",
		 (unsigned long long)(cp->rng & 0xffffffffull));
	p->cp = cp;
	/* Start from an empty snapshot: requests park until discovery
	 * answers, and /ready says 503 until the first sync. */
	sn_diags_init(&d);
	if (build(cp, NULL, 0, &d, &empty) == 0 && empty != NULL)
		sn_proxy_publish(p, empty);
	sn_diags_free(&d);
	p->proc.config_reloads_ok = 0;
	cp->idle_ms = p->opt.discovery_idle_ms ? p->opt.discovery_idle_ms : 600000;
	sn_timer_start(&p->loop, &cp->sweep_timer, SN_MAX(cp->idle_ms / 4, 100u), on_sweep_timer);
	cp->stats_interval_ms = p->opt.stats_interval_ms ? p->opt.stats_interval_ms : STATS_INTERVAL_DEFAULT_MS;
	cp->stats_quiet_ms = sn_loop_now(&p->loop);
	sn_timer_start(&p->loop, &cp->stats_timer, cp->stats_interval_ms, on_stats_timer);
	connect_now(cp);
	return 0;
}

void sn_cp_stop(struct sn_proxy *p)
{
	struct sn_cp *cp = p->cp;
	if (cp == NULL)
		return;
	sn_timer_stop(&p->loop, &cp->timer);
	sn_timer_stop(&p->loop, &cp->sweep_timer);
	sn_timer_stop(&p->loop, &cp->stats_timer);
	sn_ident_stop(p);
	if (cp->conn != NULL) {
		struct sn_xds_conn *c = cp->conn;
		cp->conn = NULL;
		sn_xds_close(c, "shutting down");
	}
}

void sn_cp_free(struct sn_proxy *p)
{
	struct sn_cp *cp = p->cp;
	if (cp == NULL)
		return;
	res_table_free(cp->res, cp->n_res);
	free(cp->subs);
	sn_tap_free(p);
	pthread_mutex_destroy(&cp->lock);
	free(cp);
	p->cp = NULL;
}

const char *sn_cp_revision(struct sn_proxy *p)
{
	return p->cp ? p->cp->revision : NULL;
}

void sn_cp_dump_json(struct sn_proxy *p, FILE *f)
{
	struct sn_cp *cp = p->cp;
	if (cp == NULL)
		return;
	fputs(",\"control_plane\":{\"replica\":", f);
	sn_json_fput_cstr(f, replica(cp));
	fprintf(f, ",\"connected\":%s,\"replicas\":[", cp->conn != NULL && cp->open && !cp->bootstrap ? "true" : "false");
	for (size_t i = 0; i < cp->n_replicas; i++) {
		if (i)
			fputc(',', f);
		sn_json_fput_cstr(f, cp->replicas[i].text);
	}
	fputs("],\"revision\":", f);
	sn_json_fput_cstr(f, cp->revision);
	fputc('}', f);
}

int sn_cp_send_raw(struct sn_proxy *p, const char *msg, size_t len)
{
	struct sn_cp *cp = p->cp;
	if (cp == NULL || cp->conn == NULL || !cp->open)
		return SN_ECLOSED;
	return sn_xds_send(cp->conn, msg, len);
}

/* Telemetry (spans, tap events) waits behind the configuration, never in
 * front of it: past this many bytes queued on the link, a message is
 * dropped. */
#define TELEMETRY_MAX_QUEUED (1u << 20)

struct telemetry_msg {
	struct sn_task task;
	struct sn_cp *cp;
	char *msg;
	size_t len;
};

static void on_telemetry_msg(struct sn_loop *loop, struct sn_task *t)
{
	struct telemetry_msg *m = sn_container_of(t, struct telemetry_msg, task);
	struct sn_cp *cp = m->cp;
	(void)loop;
	if (cp->conn != NULL && cp->open && !cp->bootstrap && sn_xds_queued(cp->conn) < TELEMETRY_MAX_QUEUED)
		(void)sn_xds_send(cp->conn, m->msg, m->len);
	free(m->msg);
	free(m);
}

int sn_cp_send_telemetry(struct sn_proxy *p, char *msg, size_t len)
{
	struct telemetry_msg *m = p->cp != NULL ? calloc(1, sizeof(*m)) : NULL;
	if (m == NULL) {
		free(msg);
		return SN_ENOMEM;
	}
	m->cp = p->cp;
	m->msg = msg;
	m->len = len;
	sn_loop_post(&p->loop, &m->task, on_telemetry_msg);
	return 0;
}

int sn_cp_is_open(struct sn_proxy *p)
{
	return p->cp != NULL && p->cp->conn != NULL && p->cp->open;
}

void sn_cp_reconnect(struct sn_proxy *p, const char *why)
{
	struct sn_cp *cp = p->cp;
	if (cp == NULL || cp->conn == NULL)
		return;
	cp->reconnect_now = 1;
	sn_xds_close(cp->conn, why);
}
