/* The etcd store backend: sinewd replicas that share one etcd cluster
 * (docs/internals/store.md, "etcd").
 *
 * Each resource is one key, /sinew/resources/<Kind>/<namespace>/<name>,
 * whose value is the directory store's file format without its
 * resourceVersion line: etcd's mod_revision is the resourceVersion, and
 * etcd's revision the store's, the same on every replica. The index in
 * struct sn_store is this replica's copy:
 *
 * - writes are transactions conditional on the version the index holds
 *   (mod_revision equal, or absent): two replicas writing the same
 *   resource never lose either write; the later one gets SN_ECONFLICT with
 *   the index refreshed from the transaction's failure branch, and
 *   admission decides again;
 * - a thread of its own watches the prefix from the revision loaded and
 *   posts what changed to the loop thread, which applies it (newer
 *   mod_revision wins; its own writes come back and are skipped) and calls
 *   the store's changed callback, which pushes to this replica's proxies.
 *   If etcd compacted past where the watch stood, the loop thread reloads
 *   everything.
 *
 * Talks to etcd's v3 JSON gateway (keys and values base64) with the
 * blocking HTTP client, trying each member in turn: a write blocks the
 * loop for at most ETCD_TIMEOUT_MS per member. Plain HTTP only for now. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libfyaml.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "sinew/config.h"
#include "sinew/fork_gate.h"
#include "sinew/http_client.h"
#include "sinew/join_token.h"
#include "sinew/log.h"
#include "sinew/out.h"
#include "sinew/sorted.h"
#include "store_internal.h"

#define ETCD_MAX_MEMBERS 8
#define ETCD_PREFIX "/sinew/resources/"
#define ETCD_PREFIX_END "/sinew/resources0"   /* the prefix with its last byte + 1 */
#define ETCD_TIMEOUT_MS 3000
#define ETCD_CONNECT_TIMEOUT_MS 500
#define ETCD_PAGE 256
#define ETCD_WATCH_WINDOW_MS 2000     /* a watch is re-made this often: bounds a stop */
#define ETCD_TXN_BYTES (1u << 20)     /* under etcd's default 1.5 MiB request limit */
#define ETCD_MAX_KEY 700
#define ETCD_WATCHED "/sinew/"         /* resources and registry */
#define ETCD_WATCHED_END "/sinew0"
#define ETCD_REG_PREFIX "/sinew/registry/"
#define ETCD_REG_PREFIX_END "/sinew/registry0"
#define ETCD_REPLICA_PREFIX "/sinew/replicas/"   /* ID = "API MESH" on its lease */
#define ETCD_REPLICA_PREFIX_END "/sinew/replicas0"
#define ETCD_MAX_REPLICAS 16
#define ETCD_REG_MAGIC "# sinew-reg 1 "   /* then: owner rv, a newline, the text */
#define ETCD_LEASE_TTL_S 10
#define ETCD_KEEPALIVE_MS 3000

/* One change seen by the watch. */
struct etcd_kv {
	int deleted;
	char *key;
	char *value;
	size_t value_len;
	uint64_t mod_revision;
};

/* What one watch line brought, posted to the loop thread. */
struct etcd_batch {
	struct sn_task task;
	struct sn_etcd *et;
	int resync;                 /* history compacted past the watch: reload */
	int lease_lost;             /* the registry lease expired: grant, publish again */
	uint64_t revision;
	struct etcd_kv *v;
	size_t n;
	struct etcd_batch *next, **pprev;   /* et->inflight, under et->lock */
};

struct sn_etcd {
	char members[ETCD_MAX_MEMBERS][64];  /* "http://HOST:PORT" (the client speaks TLS with tls) */
	size_t n_members;
	size_t cur;                 /* the loop thread's member */
	struct sn_store *st;
	/* the watch */
	struct sn_loop *loop;
	sn_store_changed_cb cb;
	void *cb_arg;
	pthread_t thread;
	int started;
	atomic_int stop;
	uint64_t watch_from;        /* thread: the next revision to see */
	size_t wcur;                /* thread: its member */
	pthread_mutex_t lock;
	struct etcd_batch *inflight;
	int stopped;                /* loop thread: batches arriving now are dropped */
	/* the shared registry */
	char self[20];              /* this replica's id, the owner of what it publishes */
	atomic_llong lease;         /* granted by the loop thread, kept alive by the watch */
	atomic_int lease_pending;   /* a lease_lost batch is on its way */
	struct pub {                /* loop thread: what this replica published */
		char *key;
		char *value;
		size_t len;
		uint64_t mod_revision;
	} *pubs;
	size_t n_pubs;
	struct sn_shared_reg *regs; /* loop thread: the other replicas' */
	size_t n_regs;
	struct sn_store_replica replicas[ETCD_MAX_REPLICAS];   /* loop thread: every replica announced */
	size_t n_replicas;
	SSL_CTX *tls;               /* HTTPS to the members; NULL: plain HTTP */
	int client_cert;            /* tls has a client certificate */
};

/* ---- base64 and JSON ---------------------------------------------------- */

/* Decodes standard base64 (with padding) into a new NUL-terminated
 * buffer; NULL if it is not base64. */
static char *b64_decode(const char *s, size_t n, size_t *len_out)
{
	if (n % 4 != 0 || n > (64u << 20))
		return NULL;
	char *out = malloc(n / 4 * 3 + 1);
	if (out == NULL)
		return NULL;
	int got = n ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n) : 0;
	if (got < 0) {
		free(out);
		return NULL;
	}
	size_t pad = n >= 2 && s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
	*len_out = (size_t)got - pad;
	out[*len_out] = '\0';
	return out;
}

static const char *jstr(struct fy_node *map, const char *key, size_t *len)
{
	struct fy_node *n = map ? fy_node_mapping_lookup_by_string(map, key, FY_NT) : NULL;
	size_t l = 0;
	const char *s = n != NULL && fy_node_is_scalar(n) ? fy_node_get_scalar(n, &l) : NULL;
	if (len != NULL)
		*len = s ? l : 0;
	return s;
}

/* etcd's int64s come as JSON strings; absent is 0. */
static uint64_t ju64(struct fy_node *map, const char *key)
{
	size_t l;
	const char *s = jstr(map, key, &l);
	char buf[24];
	if (s == NULL || l == 0 || l >= sizeof(buf))
		return 0;
	memcpy(buf, s, l);
	buf[l] = '\0';
	return strtoull(buf, NULL, 10);
}

static int jtrue(struct fy_node *map, const char *key)
{
	size_t l;
	const char *s = jstr(map, key, &l);
	return s != NULL && l == 4 && !memcmp(s, "true", 4);
}

/* Appends p[0..n) as a quoted base64 JSON string. */
static void out_b64(struct sn_out *o, const char *p, size_t n)
{
	size_t m = 4 * ((n + 2) / 3);
	char *w = sn_out_reserve(o, m + 3);
	if (w == NULL)
		return;
	w[0] = '"';
	EVP_EncodeBlock((unsigned char *)w + 1, (const unsigned char *)p, (int)n);
	w[m + 1] = '"';
	sn_out_commit(o, m + 2);
}

/* Pieces of a transaction's JSON: a compare on a key's mod_revision
 * (rev) or on its absence (rev 0), and a request on a key ("request_range",
 * "request_delete_range"). */
static void out_compare(struct sn_out *b, const char *key, size_t kl, uint64_t rev)
{
	sn_out_cstr(b, "{\"key\":");
	out_b64(b, key, kl);
	if (rev != 0)
		sn_out_printf(b, ",\"target\":\"MOD\",\"result\":\"EQUAL\",\"mod_revision\":\"%" PRIu64 "\"}", rev);
	else
		sn_out_cstr(b, ",\"target\":\"VERSION\",\"result\":\"EQUAL\",\"version\":\"0\"}");
}

static void out_key_request(struct sn_out *b, const char *request, const char *key, size_t kl)
{
	sn_out_printf(b, "{\"%s\":{\"key\":", request);
	out_b64(b, key, kl);
	sn_out_cstr(b, "}}");
}

/* The revision in an answer's header. */
static uint64_t header_revision(struct fy_node *root)
{
	return ju64(root ? fy_node_mapping_lookup_by_string(root, "header", FY_NT) : NULL, "revision");
}

/* The kvs a transaction's i-th response read (a failure branch's
 * request_range); NULL when it found nothing. */
static struct fy_node *txn_read(struct fy_node *root, int i)
{
	struct fy_node *resp = fy_node_mapping_lookup_by_string(root, "responses", FY_NT);
	struct fy_node *r = resp ? fy_node_sequence_get_by_index(resp, i) : NULL;
	struct fy_node *rr = r ? fy_node_mapping_lookup_by_string(r, "response_range", FY_NT) : NULL;
	struct fy_node *kvs = rr ? fy_node_mapping_lookup_by_string(rr, "kvs", FY_NT) : NULL;
	return kvs != NULL && fy_node_sequence_item_count(kvs) > 0 ? kvs : NULL;
}

static int key_of(const struct sn_stored *e, char *buf, size_t size)
{
	int n = snprintf(buf, size, ETCD_PREFIX "%s/%s/%s", sn_resource_kind_str(e->kind), e->namespace_, e->name);
	return n > 0 && (size_t)n < size ? n : -1;
}

/* "<Kind>/<ns>/<name>" after the prefix into its parts; -1 if the key is
 * not one this store writes. */
static int parse_key(const char *key, enum sn_resource_kind *kind, char *ns, size_t ns_size, char *name,
		     size_t name_size)
{
	size_t pl = strlen(ETCD_PREFIX);
	if (strncmp(key, ETCD_PREFIX, pl) != 0)
		return -1;
	const char *k = key + pl, *s1 = strchr(k, '/'), *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
	if (s2 == NULL || strchr(s2 + 1, '/') != NULL || (size_t)(s2 - s1 - 1) >= ns_size ||
	    strlen(s2 + 1) >= name_size)
		return -1;
	for (int i = 0; i < SN_KIND__COUNT; i++) {
		const char *ks = sn_resource_kind_str((enum sn_resource_kind)i);
		if (strlen(ks) == (size_t)(s1 - k) && !memcmp(ks, k, (size_t)(s1 - k))) {
			*kind = (enum sn_resource_kind)i;
			memcpy(ns, s1 + 1, (size_t)(s2 - s1 - 1));
			ns[s2 - s1 - 1] = '\0';
			snprintf(name, name_size, "%s", s2 + 1);
			return 0;
		}
	}
	return -1;
}

/* ---- calls --------------------------------------------------------------- */

/* An answer: the parsed document reads from body, which must outlive it. */
struct answer {
	struct fy_document *doc;
	char *body;
};

static void answer_free(struct answer *a)
{
	if (a->doc != NULL)
		fy_document_destroy(a->doc);
	free(a->body);
	memset(a, 0, sizeof(*a));
}

/* POSTs body to path at one member. 0 with the parsed answer in *a, or -1
 * with why in err (etcd's own error when it answered one). */
static int call_member(SSL_CTX *tls, const char *member, const char *path, const char *body, size_t body_len,
		       int timeout_ms, struct answer *a, char *err, size_t err_size)
{
	struct sn_http_request rq = {
		.method = "POST", .path = path, .content_type = "application/json", .body = body,
		.body_len = body_len, .timeout_ms = timeout_ms, .connect_timeout_ms = ETCD_CONNECT_TIMEOUT_MS,
		.who = "etcd", .tls_ctx = tls,
	};
	struct sn_http_response r;
	memset(a, 0, sizeof(*a));
	if (sn_http_exchange(member, &rq, &r, err, err_size) != 0)
		return -1;
	a->body = r.body;
	a->doc = r.len ? sn_json_parse(r.body, r.len) : NULL;
	struct fy_node *root = a->doc ? fy_document_root(a->doc) : NULL;
	if (r.status != 200 || root == NULL) {
		size_t ml = 0;
		const char *m = root ? jstr(root, "error", &ml) : NULL;
		if (m == NULL)
			m = root ? jstr(root, "message", &ml) : NULL;
		snprintf(err, err_size, "etcd at %s%s answered %d: %.*s", tls ? "https" : "http", member + 4, r.status,
			 m ? (int)SN_MIN(ml, 200) : 60, m ? m : r.body ? r.body : "");
		answer_free(a);
		return -1;
	}
	return 0;
}

/* Tries each member once, from the one that answered last. */
static int call(struct sn_etcd *et, const char *path, const struct sn_out *body, struct answer *a, char *err,
		size_t err_size)
{
	char last[300] = "";
	if (body->failed) {
		snprintf(err, err_size, "out of memory building the request to etcd");
		return -1;
	}
	for (size_t i = 0; i < et->n_members; i++) {
		size_t m = (et->cur + i) % et->n_members;
		if (call_member(et->tls, et->members[m], path, body->p, body->len, ETCD_TIMEOUT_MS, a, last,
				sizeof(last)) == 0) {
			if (m != et->cur)
				sn_log(SN_LOG_INFO, "store: etcd member %s answers (was %s)", et->members[m],
				       et->members[et->cur]);
			et->cur = m;
			return 0;
		}
		sn_log(SN_LOG_WARN, "store: %s", last);
	}
	snprintf(err, err_size, "no etcd member could do it (no quorum, or all down?); last: %s%s", last,
		 et->tls != NULL && !et->client_cert
			 ? " (if etcd runs with --client-cert-auth, give --etcd-cert and --etcd-key)"
			 : strstr(last, "bad certificate") != NULL
			 ? " (etcd does not trust this replica's --etcd-cert)"
			 : "");
	return -1;
}

/* A kv of a range or watch answer into a new entry; NULL with why. */
static struct sn_stored *entry_of(const char *key, const char *value, size_t value_len, uint64_t mod_revision,
				  char *err, size_t err_size)
{
	enum sn_resource_kind kind;
	char ns[256], name[256];
	char *buf = malloc(value_len + 1);
	if (buf == NULL) {
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	memcpy(buf, value, value_len);
	buf[value_len] = '\0';
	struct sn_stored *e = sn__stored_parse(buf, value_len, err, err_size);
	free(buf);
	if (e == NULL)
		return NULL;
	if (parse_key(key, &kind, ns, sizeof(ns), name, sizeof(name)) != 0 || kind != e->kind ||
	    strcmp(ns, e->namespace_) || strcmp(name, e->name)) {
		snprintf(err, err_size, "the value says it is %s %s/%s, which does not match its key",
			 sn_resource_kind_str(e->kind), e->namespace_, e->name);
		sn__stored_free(e);
		return NULL;
	}
	if (sn__stored_verify(e, err, err_size) != 0) {
		sn__stored_free(e);
		return NULL;
	}
	e->resource_version = mod_revision;
	return e;
}

/* Puts what a kvs array holds into the index (newer versions only);
 * returns how many entries changed. */
static size_t index_kvs(struct sn_store *st, struct fy_node *kvs, struct sn_diags *report)
{
	size_t changed = 0;
	void *it = NULL;
	struct fy_node *kv;
	while (kvs != NULL && (kv = fy_node_sequence_iterate(kvs, &it)) != NULL) {
		size_t kl, vl, dl = 0;
		const char *k64 = jstr(kv, "key", &kl), *v64 = jstr(kv, "value", &vl);
		char *key = k64 ? b64_decode(k64, kl, &dl) : NULL;
		char *val = key && v64 ? b64_decode(v64, vl, &dl) : NULL;
		char err[1200];
		struct sn_stored *e = val ? entry_of(key, val, dl, ju64(kv, "mod_revision"), err, sizeof(err)) : NULL;
		if (e == NULL && val == NULL)
			snprintf(err, sizeof(err), "not base64");
		if (e == NULL) {
			if (report != NULL)
				sn_diags_add(report, SN_DIAG_WARNING, key ? key : "etcd", 0, 0, NULL, NULL, NULL,
					     "stored resource skipped: %s (re-apply it)", err);
			else
				sn_log(SN_LOG_WARN, "store: etcd key %s skipped: %s (re-apply it)", key ? key : "?", err);
		} else {
			struct sn_stored *have = sn_store_get(st, e->kind, e->namespace_, e->name);
			if (have != NULL && have->resource_version >= e->resource_version) {
				sn__stored_free(e);
			} else if ((have == NULL && st->n >= SN_STORE_MAX_RESOURCES) || sn__store_index_put(st, e) != 0) {
				sn_log(SN_LOG_WARN, "store: %s skipped: more than %u resources or out of memory", key,
				       SN_STORE_MAX_RESOURCES);
				sn__stored_free(e);
			} else {
				changed++;
			}
		}
		free(key);
		free(val);
	}
	return changed;
}

/* Reads every key in [prefix, end) at one revision, a page at a time:
 * on_kvs gets each page's kvs array. *rev_out: the revision read at. */
static int range_all(struct sn_etcd *et, const char *prefix, const char *end,
		     void (*on_kvs)(void *arg, struct fy_node *kvs), void *arg, uint64_t *rev_out, char *err,
		     size_t err_size)
{
	uint64_t rev = 0;
	char from[ETCD_MAX_KEY + 2];
	size_t from_len = strlen(prefix);
	memcpy(from, prefix, from_len);
	for (;;) {
		struct sn_out b = { 0 };
		sn_out_cstr(&b, "{\"key\":");
		out_b64(&b, from, from_len);
		sn_out_cstr(&b, ",\"range_end\":");
		out_b64(&b, end, strlen(end));
		sn_out_printf(&b, ",\"limit\":\"%d\"", ETCD_PAGE);
		if (rev)
			sn_out_printf(&b, ",\"revision\":\"%" PRIu64 "\"", rev);
		sn_out_cstr(&b, "}");
		struct answer a;
		int c = call(et, "/v3/kv/range", &b, &a, err, err_size);
		sn_out_free(&b);
		if (c != 0)
			return SN_EIO;
		struct fy_node *root = fy_document_root(a.doc);
		if (rev == 0)
			rev = header_revision(root);
		struct fy_node *kvs = fy_node_mapping_lookup_by_string(root, "kvs", FY_NT);
		if (kvs != NULL)
			on_kvs(arg, kvs);
		/* the next page starts just after the last key of this one */
		int more = jtrue(root, "more");
		int n = kvs ? fy_node_sequence_item_count(kvs) : 0;
		struct fy_node *last = n > 0 ? fy_node_sequence_get_by_index(kvs, n - 1) : NULL;
		size_t kl, dl = 0;
		const char *k64 = last ? jstr(last, "key", &kl) : NULL;
		char *key = k64 ? b64_decode(k64, kl, &dl) : NULL;
		answer_free(&a);
		if (!more || key == NULL || dl > ETCD_MAX_KEY) {
			free(key);
			break;
		}
		memcpy(from, key, dl);
		from[dl] = '\0';
		from_len = dl + 1;   /* the key followed by a NUL byte: the next one up */
		free(key);
	}
	*rev_out = rev;
	return 0;
}

struct load_ctx {
	struct sn_store *st;
	struct sn_diags *report;
	int prune;
	char **seen;            /* keys read, when pruning */
	size_t n_seen;
};

static void load_page(void *arg, struct fy_node *kvs)
{
	struct load_ctx *l = arg;
	index_kvs(l->st, kvs, l->report);
	struct fy_node *kv;
	for (void *it = NULL; l->prune && (kv = fy_node_sequence_iterate(kvs, &it)) != NULL;) {
		size_t kl, dl = 0;
		const char *s = jstr(kv, "key", &kl);
		char *k = s ? b64_decode(s, kl, &dl) : NULL;
		char **ns = k ? realloc(l->seen, (l->n_seen + 1) * sizeof(*ns)) : NULL;
		if (ns == NULL) {
			free(k);
			continue;
		}
		l->seen = ns;
		l->seen[l->n_seen++] = k;
	}
}

/* Loads every resource at one revision. Entries not seen are removed
 * when prune (a resync). */
static int load_all(struct sn_store *st, struct sn_diags *report, int prune, char *err, size_t err_size)
{
	struct load_ctx l = { st, report, prune, NULL, 0 };
	uint64_t rev = 0;
	int rc = range_all(st->etcd, ETCD_PREFIX, ETCD_PREFIX_END, load_page, &l, &rev, err, err_size);
	if (rc == 0 && rev > st->revision)
		st->revision = rev;
	if (rc == 0 && prune) {
		char key[ETCD_MAX_KEY + 1];
		for (size_t i = st->n; i-- > 0;) {
			int found = 0;
			if (key_of(st->v[i], key, sizeof(key)) < 0)
				continue;
			for (size_t k = 0; k < l.n_seen && !found; k++)
				found = !strcmp(l.seen[k], key);
			if (!found)
				sn__store_index_remove(st, st->v[i]->kind, st->v[i]->namespace_, st->v[i]->name);
		}
	}
	for (size_t k = 0; k < l.n_seen; k++)
		free(l.seen[k]);
	free(l.seen);
	return rc;
}

/* ---- the shared registry ------------------------------------------------- */

static void shared_reg_free(struct sn_shared_reg *r)
{
	free(r->ns);
	free(r->name);
	free(r->rv);
	free(r->text);
}

struct reg_key {
	const char *ns, *name;
};

static int cmp_reg_key(const void *key, const void *elem)
{
	const struct reg_key *k = key;
	const struct sn_shared_reg *r = elem;
	int c = strcmp(k->ns, r->ns);
	return c != 0 ? c : strcmp(k->name, r->name);
}

static size_t reg_pos(const struct sn_etcd *et, const char *ns, const char *name, int *found)
{
	struct reg_key k = { ns, name };
	return sn_lower_bound(et->regs, et->n_regs, sizeof(*et->regs), &k, cmp_reg_key, found);
}

static void reg_remove_at(struct sn_etcd *et, size_t i)
{
	shared_reg_free(&et->regs[i]);
	memmove(&et->regs[i], &et->regs[i + 1], (et->n_regs - i - 1) * sizeof(*et->regs));
	et->n_regs--;
}

/* Applies a registry key seen at mod_revision (value NULL: deleted).
 * Returns 1 when the other replicas' set changed. */
static int reg_apply(struct sn_etcd *et, const char *key, const char *value, size_t len, uint64_t mod_revision)
{
	char ns[256], name[256], owner[sizeof(et->self)], rv[80];
	size_t pl = strlen(ETCD_REG_PREFIX);
	const char *k = key + pl, *slash = strncmp(key, ETCD_REG_PREFIX, pl) ? NULL : strchr(k, '/');
	if (slash == NULL || (size_t)(slash - k) >= sizeof(ns) || strlen(slash + 1) >= sizeof(name))
		return 0;
	memcpy(ns, k, (size_t)(slash - k));
	ns[slash - k] = '\0';
	snprintf(name, sizeof(name), "%s", slash + 1);
	int found;
	size_t i = reg_pos(et, ns, name, &found);
	if (value == NULL) {
		if (!found || et->regs[i].mod_revision >= mod_revision)
			return 0;
		reg_remove_at(et, i);
		return 1;
	}
	size_t ml = strlen(ETCD_REG_MAGIC);
	const char *nl = memchr(value, '\n', len);
	if (len < ml || memcmp(value, ETCD_REG_MAGIC, ml) || nl == NULL ||
	    sscanf(value + ml, "%19s %79s", owner, rv) != 2)
		return 0;
	if (!strcmp(owner, et->self)) {
		/* this replica's own: it renders it from its proxy */
		if (!found)
			return 0;
		reg_remove_at(et, i);
		return 1;
	}
	if (found && et->regs[i].mod_revision >= mod_revision)
		return 0;
	struct sn_shared_reg r = { strdup(ns), strdup(name), strdup(rv), NULL, 0, mod_revision };
	r.text_len = len - (size_t)(nl + 1 - value);
	r.text = malloc(r.text_len + 1);
	if (r.ns == NULL || r.name == NULL || r.rv == NULL || r.text == NULL) {
		shared_reg_free(&r);
		return 0;
	}
	memcpy(r.text, nl + 1, r.text_len);
	r.text[r.text_len] = '\0';
	if (found) {
		shared_reg_free(&et->regs[i]);
		et->regs[i] = r;
		return 1;
	}
	struct sn_shared_reg *nv = realloc(et->regs, (et->n_regs + 1) * sizeof(*nv));
	if (nv == NULL) {
		shared_reg_free(&r);
		return 0;
	}
	et->regs = nv;
	memmove(&et->regs[i + 1], &et->regs[i], (et->n_regs - i) * sizeof(*et->regs));
	et->regs[i] = r;
	et->n_regs++;
	return 1;
}

static int replica_apply(struct sn_etcd *et, const char *key, const char *value, size_t len);

/* What a replica publishes on its lease, seen in a read or the watch
 * (value NULL: gone): a registration or a replica's announcement. 1 when
 * what this replica knows of the others changed. */
static int published_apply(struct sn_etcd *et, const char *key, const char *value, size_t len,
			   uint64_t mod_revision)
{
	if (!strncmp(key, ETCD_REPLICA_PREFIX, strlen(ETCD_REPLICA_PREFIX)))
		return replica_apply(et, key, value, len);
	if (!strncmp(key, ETCD_REG_PREFIX, strlen(ETCD_REG_PREFIX)))
		return reg_apply(et, key, value, len, mod_revision);
	return 0;
}

static void published_page(void *arg, struct fy_node *kvs)
{
	struct sn_etcd *et = arg;
	struct fy_node *kv;
	for (void *it = NULL; (kv = fy_node_sequence_iterate(kvs, &it)) != NULL;) {
		size_t kl, vl, dl = 0, vdl = 0;
		const char *k64 = jstr(kv, "key", &kl), *v64 = jstr(kv, "value", &vl);
		char *key = k64 ? b64_decode(k64, kl, &dl) : NULL;
		char *val = key && v64 ? b64_decode(v64, vl, &vdl) : NULL;
		if (val != NULL)
			published_apply(et, key, val, vdl, ju64(kv, "mod_revision"));
		free(key);
		free(val);
	}
}

static int load_regs(struct sn_etcd *et, uint64_t *rev, char *err, size_t err_size)
{
	while (et->n_regs > 0)
		reg_remove_at(et, et->n_regs - 1);
	return range_all(et, ETCD_REG_PREFIX, ETCD_REG_PREFIX_END, published_page, et, rev, err, err_size);
}

static int lease_grant(struct sn_etcd *et, char *err, size_t err_size)
{
	struct sn_out b = { 0 };
	struct answer a;
	sn_out_printf(&b, "{\"TTL\":\"%d\"}", ETCD_LEASE_TTL_S);
	int c = call(et, "/v3/lease/grant", &b, &a, err, err_size);
	sn_out_free(&b);
	if (c != 0)
		return SN_EIO;
	size_t l;
	const char *id = jstr(fy_document_root(a.doc), "ID", &l);
	long long v = id && l < 24 ? strtoll(id, NULL, 10) : 0;
	answer_free(&a);
	if (v == 0) {
		snprintf(err, err_size, "etcd granted no lease");
		return SN_EIO;
	}
	atomic_store(&et->lease, v);
	return 0;
}

/* Puts one published value on the current lease; compare-and-delete when
 * value is NULL (only what this replica wrote last). */
static int pub_write(struct sn_etcd *et, struct pub *p, int del, char *err, size_t err_size)
{
	struct sn_out b = { 0 };
	struct answer a;
	if (del) {
		sn_out_cstr(&b, "{\"compare\":[");
		out_compare(&b, p->key, strlen(p->key), p->mod_revision);
		sn_out_cstr(&b, "],\"success\":[");
		out_key_request(&b, "request_delete_range", p->key, strlen(p->key));
		sn_out_cstr(&b, "]}");
	} else {
		sn_out_cstr(&b, "{\"compare\":[],\"success\":[{\"request_put\":{\"key\":");
		out_b64(&b, p->key, strlen(p->key));
		sn_out_cstr(&b, ",\"value\":");
		out_b64(&b, p->value, p->len);
		sn_out_printf(&b, ",\"lease\":\"%lld\"}}]}", (long long)atomic_load(&et->lease));
	}
	int c = call(et, "/v3/kv/txn", &b, &a, err, err_size);
	sn_out_free(&b);
	if (c != 0)
		return SN_EIO;
	p->mod_revision = header_revision(fy_document_root(a.doc));
	answer_free(&a);
	return 0;
}

size_t sn_store_shared_regs(const struct sn_store *st, const struct sn_shared_reg **out)
{
	*out = st->etcd ? st->etcd->regs : NULL;
	return st->etcd ? st->etcd->n_regs : 0;
}

/* Puts key=value (value NULL: withdraws it) among what this replica
 * publishes on its lease. 0, SN_ENOMEM or SN_EIO (logged). */
static int pub_set(struct sn_etcd *et, const char *key, char *value, size_t len)
{
	char err[400];
	size_t i = 0;
	while (i < et->n_pubs && strcmp(et->pubs[i].key, key) != 0)
		i++;
	if (value == NULL) {
		if (i == et->n_pubs)
			return 0;
		int rc = pub_write(et, &et->pubs[i], 1, err, sizeof(err));
		free(et->pubs[i].key);
		free(et->pubs[i].value);
		et->pubs[i] = et->pubs[--et->n_pubs];
		if (rc != 0)
			sn_log(SN_LOG_WARN, "store: withdrawing %s from etcd: %s (its lease removes it)", key, err);
		return rc;
	}
	if (i == et->n_pubs) {
		struct pub *np = realloc(et->pubs, (et->n_pubs + 1) * sizeof(*np));
		if (np == NULL || (np[i].key = strdup(key)) == NULL) {
			if (np != NULL)
				et->pubs = np;
			free(value);
			return SN_ENOMEM;
		}
		et->pubs = np;
		np[i].value = NULL;
		np[i].mod_revision = 0;
		et->n_pubs++;
	}
	struct pub *p = &et->pubs[i];
	free(p->value);
	p->value = value;
	p->len = len;
	int rc = pub_write(et, p, 0, err, sizeof(err));
	if (rc != 0)
		sn_log(SN_LOG_WARN, "store: publishing %s to etcd: %s; other replicas do not see it yet", key, err);
	return rc;
}

int sn_store_publish_reg(struct sn_store *st, const char *ns, const char *name, const char *rv, const char *text)
{
	struct sn_etcd *et = st->etcd;
	char key[ETCD_MAX_KEY + 1];
	if (et == NULL)
		return 0;
	if ((size_t)snprintf(key, sizeof(key), ETCD_REG_PREFIX "%s/%s", ns, name) >= sizeof(key))
		return SN_EINVAL;
	if (text == NULL)
		return pub_set(et, key, NULL, 0);
	struct sn_out v = { 0 };
	sn_out_printf(&v, ETCD_REG_MAGIC "%s %s\n", et->self, rv);
	sn_out_cstr(&v, text);
	if (v.failed) {
		sn_out_free(&v);
		return SN_ENOMEM;
	}
	return pub_set(et, key, v.p, v.len);
}

/* ---- the replicas ---------------------------------------------------------- */

static void replica_free(struct sn_store_replica *r)
{
	free(r->id);
	free(r->api);
	free(r->mesh);
}

/* A /sinew/replicas/ID key seen (value NULL: gone). 1 when the list changed. */
static int replica_apply(struct sn_etcd *et, const char *key, const char *value, size_t len)
{
	const char *id = key + strlen(ETCD_REPLICA_PREFIX);
	char api[128], mesh[128];
	size_t i = 0;
	if (strlen(id) == 0 || strlen(id) >= sizeof(et->self))
		return 0;
	while (i < et->n_replicas && strcmp(et->replicas[i].id, id) != 0)
		i++;
	if (value == NULL || len >= 300 || sscanf(value, "%127s %127s", api, mesh) != 2) {
		if (i == et->n_replicas)
			return 0;
		replica_free(&et->replicas[i]);
		et->replicas[i] = et->replicas[--et->n_replicas];
		return 1;
	}
	if (i == et->n_replicas) {
		if (et->n_replicas == ETCD_MAX_REPLICAS)
			return 0;
		memset(&et->replicas[i], 0, sizeof(et->replicas[i]));
		et->n_replicas++;
	}
	struct sn_store_replica *r = &et->replicas[i];
	replica_free(r);
	r->id = strdup(id);
	r->api = strdup(api);
	r->mesh = strdup(mesh);
	r->self = !strcmp(id, et->self);
	if (r->id == NULL || r->api == NULL || r->mesh == NULL) {
		replica_free(r);
		et->replicas[i] = et->replicas[--et->n_replicas];
	}
	return 1;
}

int sn_store_announce(struct sn_store *st, const char *api, const char *mesh)
{
	struct sn_etcd *et = st->etcd;
	char key[ETCD_MAX_KEY + 1];
	uint64_t rev;
	if (et == NULL)
		return 0;
	snprintf(key, sizeof(key), ETCD_REPLICA_PREFIX "%s", et->self);
	struct sn_out v = { 0 };
	sn_out_printf(&v, "%s %s\n", api, mesh);
	if (v.failed) {
		sn_out_free(&v);
		return SN_ENOMEM;
	}
	int rc = pub_set(et, key, v.p, v.len);
	char err[400];
	if (range_all(et, ETCD_REPLICA_PREFIX, ETCD_REPLICA_PREFIX_END, published_page, et, &rev, err, sizeof(err)) !=
	    0)
		sn_log(SN_LOG_WARN, "store: reading the other replicas from etcd: %s", err);
	return rc;
}

size_t sn_store_replicas(const struct sn_store *st, const struct sn_store_replica **out)
{
	*out = st->etcd ? st->etcd->replicas : NULL;
	return st->etcd ? st->etcd->n_replicas : 0;
}

/* The lease expired (this replica was cut off longer than its TTL): a
 * new one, and everything published again on it. */
static void lease_renew(struct sn_etcd *et)
{
	char err[400];
	if (lease_grant(et, err, sizeof(err)) != 0) {
		sn_log(SN_LOG_WARN, "store: cannot get a new etcd lease: %s; trying again", err);
		return;
	}
	for (size_t i = 0; i < et->n_pubs; i++)
		if (pub_write(et, &et->pubs[i], 0, err, sizeof(err)) != 0)
			sn_log(SN_LOG_WARN, "store: publishing %s again: %s", et->pubs[i].key, err);
	sn_log(SN_LOG_INFO, "store: new etcd lease; %zu registrations published again", et->n_pubs);
}

/* ---- what the CA shares --------------------------------------------------- */

#define ETCD_TOKEN_KEY "/sinew/ca/token-key"
#define ETCD_SPENT_PREFIX "/sinew/ca/spent/"

/* A txn: put key=value (on lease, 0: none) when the key does not exist;
 * otherwise read it. *existing gets the value found (malloc'd; NULL when
 * the put happened). 0 or -1 with why in err. */
static int put_if_absent(struct sn_etcd *et, const char *key, const void *value, size_t len, long long lease,
			 char **existing, size_t *existing_len, char *err, size_t err_size)
{
	struct sn_out b = { 0 };
	struct answer a;
	*existing = NULL;
	sn_out_cstr(&b, "{\"compare\":[");
	out_compare(&b, key, strlen(key), 0);
	sn_out_cstr(&b, "],\"success\":[{\"request_put\":{\"key\":");
	out_b64(&b, key, strlen(key));
	sn_out_cstr(&b, ",\"value\":");
	out_b64(&b, value, len);
	if (lease)
		sn_out_printf(&b, ",\"lease\":\"%lld\"", lease);
	sn_out_cstr(&b, "}}],\"failure\":[");
	out_key_request(&b, "request_range", key, strlen(key));
	sn_out_cstr(&b, "]}");
	int c = call(et, "/v3/kv/txn", &b, &a, err, err_size);
	sn_out_free(&b);
	if (c != 0)
		return -1;
	struct fy_node *root = fy_document_root(a.doc);
	int rc = 0;
	if (!jtrue(root, "succeeded")) {
		struct fy_node *kvs = txn_read(root, 0);
		struct fy_node *kv = kvs ? fy_node_sequence_get_by_index(kvs, 0) : NULL;
		size_t vl = 0;
		const char *v64 = kv ? jstr(kv, "value", &vl) : NULL;
		*existing = v64 ? b64_decode(v64, vl, existing_len) : NULL;
		if (*existing == NULL) {
			snprintf(err, err_size, "etcd said %s exists but did not return it", key);
			rc = -1;
		}
	}
	answer_free(&a);
	return rc;
}

int sn_store_token_secret(struct sn_store *st, uint8_t out[32], char *err, size_t err_size)
{
	struct sn_etcd *et = st->etcd;
	uint8_t mine[32];
	char *have = NULL;
	size_t have_len = 0;
	if (et == NULL)
		return SN_EINVAL;
	if (sn_join_token_secret_generate(mine, sizeof(mine)) != 0) {
		snprintf(err, err_size, "cannot draw random bytes for the token secret");
		return SN_EIO;
	}
	if (put_if_absent(et, ETCD_TOKEN_KEY, mine, sizeof(mine), 0, &have, &have_len, err, err_size) != 0) {
		OPENSSL_cleanse(mine, sizeof(mine));
		return SN_EIO;
	}
	if (have != NULL && have_len != 32) {
		snprintf(err, err_size, "etcd's %s is %zu bytes, not 32; delete the key to draw a new secret (tokens "
					"minted before stop working)", ETCD_TOKEN_KEY, have_len);
		OPENSSL_cleanse(have, have_len);
		free(have);
		OPENSSL_cleanse(mine, sizeof(mine));
		return SN_EIO;
	}
	memcpy(out, have != NULL ? (const uint8_t *)have : mine, 32);
	if (have != NULL) {
		OPENSSL_cleanse(have, have_len);
		free(have);
	}
	OPENSSL_cleanse(mine, sizeof(mine));
	return 0;
}

int sn_store_spend_nonce(void *store, const char *nonce_hex, time_t until, char *err, size_t err_size)
{
	struct sn_store *st = store;
	struct sn_etcd *et = st->etcd;
	char key[80];
	if (et == NULL || strlen(nonce_hex) != 32) {
		snprintf(err, err_size, "no shared store");
		return -1;
	}
	snprintf(key, sizeof(key), ETCD_SPENT_PREFIX "%s", nonce_hex);
	/* on a lease as long as the token can be presented, so spent nonces
	 * do not pile up */
	time_t now = time(NULL);
	long long ttl = until > now ? (long long)(until - now) : 1;
	struct sn_out b = { 0 };
	struct answer a;
	sn_out_printf(&b, "{\"TTL\":\"%lld\"}", ttl);
	int c = call(et, "/v3/lease/grant", &b, &a, err, err_size);
	sn_out_free(&b);
	if (c != 0)
		return -1;
	size_t l;
	const char *id = jstr(fy_document_root(a.doc), "ID", &l);
	long long lease = id && l < 24 ? strtoll(id, NULL, 10) : 0;
	answer_free(&a);
	char *have = NULL;
	size_t have_len = 0;
	if (put_if_absent(et, key, "1", 1, lease, &have, &have_len, err, err_size) != 0)
		return -1;
	free(have);
	return have != NULL ? 1 : 0;
}

/* ---- the backend --------------------------------------------------------- */

/* One transaction: e[0..n) each conditional on old[i]'s version. */
static int txn_write(struct sn_store *st, struct sn_stored *const *e, struct sn_stored *const *old, size_t n)
{
	struct sn_etcd *et = st->etcd;
	char key[ETCD_MAX_KEY + 1], header[SN__STORE_MAX_HEADER];
	struct sn_out b = { 0 };
	for (int part = 0; part < 3; part++) {
		sn_out_cstr(&b, part == 0 ? "{\"compare\":[" : part == 1 ? "],\"success\":[" : "],\"failure\":[");
		for (size_t i = 0; i < n; i++) {
			int kl = key_of(e[i], key, sizeof(key));
			if (kl < 0) {
				sn_out_free(&b);
				return SN_EINVAL;
			}
			if (i)
				sn_out_cstr(&b, ",");
			if (part == 0) {
				out_compare(&b, key, (size_t)kl, old[i] != NULL ? old[i]->resource_version : 0);
			} else if (part == 1) {
				int hl = sn__stored_header(e[i], 0, header, sizeof(header));
				char *v = hl < 0 ? NULL : malloc((size_t)hl + e[i]->text_len);
				if (v == NULL) {
					sn_out_free(&b);
					return hl < 0 ? SN_EINVAL : SN_ENOMEM;
				}
				memcpy(v, header, (size_t)hl);
				memcpy(v + hl, e[i]->text, e[i]->text_len);
				sn_out_cstr(&b, "{\"request_put\":{\"key\":");
				out_b64(&b, key, (size_t)kl);
				sn_out_cstr(&b, ",\"value\":");
				out_b64(&b, v, (size_t)hl + e[i]->text_len);
				sn_out_cstr(&b, "}}");
				free(v);
			} else {
				out_key_request(&b, "request_range", key, (size_t)kl);
			}
		}
	}
	sn_out_cstr(&b, "]}");
	struct answer a;
	int c = call(et, "/v3/kv/txn", &b, &a, st->error, sizeof(st->error));
	sn_out_free(&b);
	if (c != 0)
		return SN_EIO;
	struct fy_node *root = fy_document_root(a.doc);
	uint64_t rev = header_revision(root);
	int rc = 0;
	if (jtrue(root, "succeeded")) {
		for (size_t i = 0; i < n; i++)
			e[i]->resource_version = rev;
	} else {
		/* Someone else wrote one of them: take what etcd holds now. A key
		 * deleted meanwhile has no kvs; it leaves the index. */
		for (size_t i = 0; i < n; i++) {
			struct fy_node *kvs = txn_read(root, (int)i);
			if (kvs != NULL)
				index_kvs(st, kvs, NULL);
			else if (old[i] != NULL)
				sn__store_index_remove(st, e[i]->kind, e[i]->namespace_, e[i]->name);
		}
		rc = SN_ECONFLICT;
	}
	if (rev > st->revision)
		st->revision = rev;
	answer_free(&a);
	return rc;
}

static int etcd_write(struct sn_store *st, struct sn_stored *const *e, struct sn_stored *const *old, size_t n,
		      int *rcs)
{
	/* Transactions of at most SN_STORE_TXN_MAX resources and about
	 * ETCD_TXN_BYTES; a conflict stops at the transaction it hit (the ones
	 * before are stored: deciding again finds them unchanged). */
	size_t i = 0;
	while (i < n) {
		size_t j = i, bytes = 0;
		while (j < n && j - i < SN_STORE_TXN_MAX && (j == i || bytes + e[j]->text_len <= ETCD_TXN_BYTES))
			bytes += e[j++]->text_len;
		int rc = txn_write(st, e + i, old + i, j - i);
		for (size_t k = i; k < (rc ? n : j); k++)
			rcs[k] = rc;
		if (rc != 0)
			return rc;
		i = j;
	}
	return 0;
}

static int etcd_remove(struct sn_store *st, const struct sn_stored *old)
{
	char key[ETCD_MAX_KEY + 1];
	int kl = key_of(old, key, sizeof(key));
	if (kl < 0)
		return SN_EIO;
	struct sn_out b = { 0 };
	sn_out_cstr(&b, "{\"compare\":[");
	out_compare(&b, key, (size_t)kl, old->resource_version);
	sn_out_cstr(&b, "],\"success\":[");
	out_key_request(&b, "request_delete_range", key, (size_t)kl);
	sn_out_cstr(&b, "],\"failure\":[");
	out_key_request(&b, "request_range", key, (size_t)kl);
	sn_out_cstr(&b, "]}");
	struct answer a;
	int c = call(st->etcd, "/v3/kv/txn", &b, &a, st->error, sizeof(st->error));
	sn_out_free(&b);
	if (c != 0)
		return SN_EIO;
	struct fy_node *root = fy_document_root(a.doc);
	uint64_t rev = header_revision(root);
	int rc = 0;
	if (!jtrue(root, "succeeded")) {
		struct fy_node *kvs = txn_read(root, 0);
		if (kvs == NULL) {
			sn__store_index_remove(st, old->kind, old->namespace_, old->name);
			rc = SN_ENOTFOUND;
		} else {
			index_kvs(st, kvs, NULL);
			rc = SN_ECONFLICT;
		}
	}
	if (rev > st->revision)
		st->revision = rev;
	answer_free(&a);
	return rc;
}

static int etcd_save_revision(struct sn_store *st)
{
	(void)st;
	return 0;   /* etcd's revision never goes back */
}

static void batch_free(struct etcd_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->v[i].key);
		free(b->v[i].value);
	}
	free(b->v);
	free(b);
}

static void etcd_close(struct sn_store *st)
{
	struct sn_etcd *et = st->etcd;
	if (et == NULL)
		return;
	if (et->started) {
		atomic_store(&et->stop, 1);
		pthread_join(et->thread, NULL);
	}
	/* Batches the loop never ran (it stopped first). */
	while (et->inflight != NULL) {
		struct etcd_batch *b = et->inflight;
		et->inflight = b->next;
		batch_free(b);
	}
	for (size_t i = 0; i < et->n_pubs; i++) {
		free(et->pubs[i].key);
		free(et->pubs[i].value);
	}
	free(et->pubs);
	for (size_t i = 0; i < et->n_regs; i++)
		shared_reg_free(&et->regs[i]);
	free(et->regs);
	for (size_t i = 0; i < et->n_replicas; i++)
		replica_free(&et->replicas[i]);
	SSL_CTX_free(et->tls);
	pthread_mutex_destroy(&et->lock);
	free(et);
	st->etcd = NULL;
}

const struct sn_store_ops sn__store_etcd_ops = {
	.name = "etcd",
	.write = etcd_write,
	.remove = etcd_remove,
	.save_revision = etcd_save_revision,
	.close = etcd_close,
};

/* ---- the watch ----------------------------------------------------------- */

/* Loop thread: applies one batch, then tells the owner. */
static void batch_apply(struct sn_etcd *et, struct etcd_batch *b);

static void on_batch(struct sn_loop *loop, struct sn_task *task)
{
	(void)loop;
	struct etcd_batch *b = (struct etcd_batch *)task;
	struct sn_etcd *et = b->et;
	pthread_mutex_lock(&et->lock);
	if (b->next != NULL)
		b->next->pprev = b->pprev;
	*b->pprev = b->next;
	pthread_mutex_unlock(&et->lock);
	if (et->stopped) {
		batch_free(b);
		return;
	}
	batch_apply(et, b);
}

/* Applies what one watch line brought to the index (loop thread), frees
 * it, and tells the owner when anything changed. */
static void batch_apply(struct sn_etcd *et, struct etcd_batch *b)
{
	struct sn_store *st = et->st;
	size_t changed = 0;
	if (b->lease_lost) {
		lease_renew(et);
		atomic_store(&et->lease_pending, 0);
	}
	if (b->resync) {
		char err[400];
		size_t before = st->n;
		uint64_t rev = st->revision;
		sn_log(SN_LOG_WARN, "store: etcd compacted past revision %" PRIu64 " before this replica saw it; "
				    "reloading every resource", b->revision);
		uint64_t rrev;
		if (load_all(st, NULL, 1, err, sizeof(err)) != 0 || load_regs(et, &rrev, err, sizeof(err)) != 0)
			sn_log(SN_LOG_ERROR, "store: reload from etcd failed: %s; serving what was loaded", err);
		changed = 1 + (st->n != before || st->revision != rev);
	}
	for (size_t i = 0; i < b->n; i++) {
		struct etcd_kv *kv = &b->v[i];
		enum sn_resource_kind kind;
		char ns[256], name[256], err[1200];
		if (strncmp(kv->key, ETCD_PREFIX, strlen(ETCD_PREFIX)) != 0) {
			changed += (size_t)published_apply(et, kv->key, kv->deleted ? NULL : kv->value, kv->value_len,
							   kv->mod_revision);
			continue;
		}
		if (parse_key(kv->key, &kind, ns, sizeof(ns), name, sizeof(name)) != 0)
			continue;
		struct sn_stored *have = sn_store_get(st, kind, ns, name);
		if (have != NULL && have->resource_version >= kv->mod_revision)
			continue;   /* this replica's own write, or older news */
		if (kv->deleted) {
			if (have != NULL) {
				sn__store_index_remove(st, kind, ns, name);
				changed++;
			}
			continue;
		}
		struct sn_stored *e = entry_of(kv->key, kv->value, kv->value_len, kv->mod_revision, err, sizeof(err));
		if (e == NULL) {
			sn_log(SN_LOG_WARN, "store: etcd key %s skipped: %s (re-apply it)", kv->key, err);
			continue;
		}
		if ((have == NULL && st->n >= SN_STORE_MAX_RESOURCES) || sn__store_index_put(st, e) != 0) {
			sn__stored_free(e);
			continue;
		}
		changed++;
	}
	/* The store's revision moves with its resources only (etcd's also
	 * counts registrations and spent tokens): a proxy is up to date when
	 * it has acked the last resource change. */
	for (size_t i = 0; i < b->n; i++)
		if (strncmp(b->v[i].key, ETCD_PREFIX, strlen(ETCD_PREFIX)) == 0 && b->v[i].mod_revision > st->revision)
			st->revision = b->v[i].mod_revision;
	batch_free(b);
	if (changed && et->cb != NULL)
		et->cb(st, et->cb_arg);
}

struct watch_ctx {
	struct sn_etcd *et;
	int canceled;
};

/* Watch thread: one line of the stream, {"result":{...}}. */
/* One watch line, {"result":{...}}, into a batch (NULL: nothing to apply);
 * moves et->watch_from. *canceled: the watch ended, or the line could not
 * be read or held (the next watch starts over). */
static struct etcd_batch *batch_of_line(struct sn_etcd *et, const char *line, size_t len, int *canceled)
{
	struct fy_document *doc = sn_json_parse(line, len);
	struct fy_node *root = doc ? fy_document_root(doc) : NULL;
	struct fy_node *res = root && fy_node_is_mapping(root) ? fy_node_mapping_lookup_by_string(root, "result", FY_NT)
							       : NULL;
	if (res == NULL || !fy_node_is_mapping(res)) {
		if (doc)
			fy_document_destroy(doc);
		*canceled = 1;
		return NULL;
	}
	uint64_t rev = header_revision(res);
	uint64_t compact = ju64(res, "compact_revision");
	struct fy_node *events = fy_node_mapping_lookup_by_string(res, "events", FY_NT);
	int n_ev = events && fy_node_is_sequence(events) ? fy_node_sequence_item_count(events) : 0;
	struct etcd_batch *b = NULL;
	if (compact > 0 || n_ev > 0) {
		b = calloc(1, sizeof(*b));
		if (b != NULL && n_ev > 0 && (b->v = calloc((size_t)n_ev, sizeof(*b->v))) == NULL) {
			free(b);
			b = NULL;
		}
		if (b == NULL) {
			/* cannot hold the news: start over from a full reload */
			fy_document_destroy(doc);
			*canceled = 1;
			return NULL;
		}
		b->et = et;
		b->resync = compact > 0;
		b->revision = rev;
	}
	struct fy_node *ev;
	for (void *it = NULL; b != NULL && n_ev > 0 && (ev = fy_node_sequence_iterate(events, &it)) != NULL;) {
		struct fy_node *kv = fy_node_is_mapping(ev) ? fy_node_mapping_lookup_by_string(ev, "kv", FY_NT) : NULL;
		if (kv == NULL || !fy_node_is_mapping(kv))
			continue;
		size_t tl, kl, vl, dl = 0, vdl = 0;
		const char *type = jstr(ev, "type", &tl);
		const char *k64 = jstr(kv, "key", &kl), *v64 = jstr(kv, "value", &vl);
		struct etcd_kv *x = &b->v[b->n];
		x->deleted = type != NULL && tl == 6 && !memcmp(type, "DELETE", 6);
		x->mod_revision = ju64(kv, "mod_revision");
		x->key = k64 ? b64_decode(k64, kl, &dl) : NULL;
		x->value = !x->deleted && v64 ? b64_decode(v64, vl, &vdl) : NULL;
		x->value_len = vdl;
		if (x->key == NULL || (!x->deleted && x->value == NULL)) {
			free(x->key);
			free(x->value);
			continue;
		}
		b->n++;
	}
	if (compact > 0)
		et->watch_from = compact;   /* resync: the reload reads the current state */
	if (rev + 1 > et->watch_from && compact == 0)
		et->watch_from = rev + 1;
	if (jtrue(res, "canceled"))
		*canceled = 1;
	fy_document_destroy(doc);
	return b;
}

/* Watch thread: hands b to the loop thread, noted in et->inflight until
 * it runs (a stop frees what never ran). */
static void post_batch(struct sn_etcd *et, struct etcd_batch *b)
{
	pthread_mutex_lock(&et->lock);
	b->next = et->inflight;
	if (et->inflight != NULL)
		et->inflight->pprev = &b->next;
	b->pprev = &et->inflight;
	et->inflight = b;
	pthread_mutex_unlock(&et->lock);
	sn_loop_post(et->loop, &b->task, on_batch);
}

/* Watch thread: one line of the stream, handed to the loop thread. */
static int on_watch_line(const char *line, size_t len, void *arg)
{
	struct watch_ctx *w = arg;
	struct sn_etcd *et = w->et;
	struct etcd_batch *b = batch_of_line(et, line, len, &w->canceled);
	if (b != NULL)
		post_batch(et, b);
	return w->canceled;
}

int sn__etcd_feed_line(struct sn_store *st, const char *line, size_t len)
{
	int canceled = 0;
	struct etcd_batch *b = batch_of_line(st->etcd, line, len, &canceled);
	if (b != NULL)
		batch_apply(st->etcd, b);
	return canceled;
}

int sn__etcd_open_offline(struct sn_store *st)
{
	memset(st, 0, sizeof(*st));
	struct sn_etcd *et = calloc(1, sizeof(*et));
	if (et == NULL)
		return SN_ENOMEM;
	pthread_mutex_init(&et->lock, NULL);
	snprintf(et->self, sizeof(et->self), "offline");
	et->st = st;
	st->etcd = et;
	st->ops = &sn__store_etcd_ops;
	snprintf(st->where, sizeof(st->where), "etcd (offline)");
	return 0;
}

/* Watch thread: keeps the registry lease alive; when etcd says it is
 * gone, asks the loop thread for a new one. */
static void keepalive(struct sn_etcd *et)
{
	char body[64], err[300];
	snprintf(body, sizeof(body), "{\"ID\":\"%lld\"}", (long long)atomic_load(&et->lease));
	struct sn_http_request rq = {
		.method = "POST", .path = "/v3/lease/keepalive", .content_type = "application/json", .body = body,
		.body_len = strlen(body), .timeout_ms = ETCD_TIMEOUT_MS, .connect_timeout_ms = ETCD_CONNECT_TIMEOUT_MS,
		.who = "etcd", .tls_ctx = et->tls,
	};
	struct sn_http_response r;
	if (sn_http_exchange(et->members[et->wcur], &rq, &r, err, sizeof(err)) != 0)
		return;   /* the watch finds the member down and moves on */
	int lost = r.status == 200 && strstr(r.body, "\"TTL\"") == NULL;   /* etcd omits a TTL of 0 */
	sn_http_response_free(&r);
	if (lost && !atomic_exchange(&et->lease_pending, 1)) {
		struct etcd_batch *b = calloc(1, sizeof(*b));
		if (b == NULL) {
			atomic_store(&et->lease_pending, 0);
			return;
		}
		b->et = et;
		b->lease_lost = 1;
		post_batch(et, b);
	}
}

static void *watch_main(void *arg)
{
	struct sn_etcd *et = arg;
	unsigned fails = 0;
	uint64_t last_keepalive = sn_clock_ms();
	sn_fork_gate_enter();   /* admission forks: sinew/fork_gate.h */
	while (!atomic_load(&et->stop)) {
		char body[400], k64[64], e64[64], err[400];
		if (sn_clock_ms() - last_keepalive >= ETCD_KEEPALIVE_MS) {
			keepalive(et);
			last_keepalive = sn_clock_ms();
		}
		EVP_EncodeBlock((unsigned char *)k64, (const unsigned char *)ETCD_WATCHED, (int)strlen(ETCD_WATCHED));
		EVP_EncodeBlock((unsigned char *)e64, (const unsigned char *)ETCD_WATCHED_END,
				(int)strlen(ETCD_WATCHED_END));
		snprintf(body, sizeof(body),
			 "{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\",\"start_revision\":\"%" PRIu64 "\"}}",
			 k64, e64, et->watch_from);
		struct watch_ctx w = { et, 0 };
		struct sn_http_request rq = {
			.method = "POST", .path = "/v3/watch", .content_type = "application/json", .body = body,
			.body_len = strlen(body), .timeout_ms = ETCD_WATCH_WINDOW_MS,
			.connect_timeout_ms = ETCD_CONNECT_TIMEOUT_MS, .who = "etcd", .on_line = on_watch_line,
			.line_arg = &w, .tls_ctx = et->tls,
		};
		struct sn_http_response r;
		const char *member = et->members[et->wcur];
		int rc = sn_http_exchange(member, &rq, &r, err, sizeof(err));
		/* The window ending is the normal way out (timed out). */
		int ok = rc == 0 ? r.status == 200 && !w.canceled : strstr(err, "timed out") != NULL;
		if (rc == 0)
			sn_http_response_free(&r);
		if (ok) {
			fails = 0;
			continue;
		}
		if (rc != 0 && fails == 0)
			sn_log(SN_LOG_WARN, "store: watching etcd at %s: %s; trying the next member", member, err);
		et->wcur = (et->wcur + 1) % et->n_members;
		fails++;
		/* A round of members all failing: wait a little (bounded by stop). */
		for (unsigned t = 0; fails % et->n_members == 0 && t < 5 && !atomic_load(&et->stop); t++) {
			sn_fork_gate_pause();
			usleep(100 * 1000);
			sn_fork_gate_resume();
		}
	}
	sn_fork_gate_leave();
	return NULL;
}

int sn_store_watch_start(struct sn_store *st, struct sn_loop *loop, sn_store_changed_cb cb, void *arg)
{
	struct sn_etcd *et = st->etcd;
	if (et == NULL)
		return 0;
	char err[400];
	uint64_t rrev = 0;
	et->loop = loop;
	et->cb = cb;
	et->cb_arg = arg;
	/* The registry: a lease for what this replica publishes, and what the
	 * others did. The watch starts after the older of the two reads
	 * (what it replays again is applied once: newer versions only). */
	if (lease_grant(et, err, sizeof(err)) != 0 || load_regs(et, &rrev, err, sizeof(err)) != 0) {
		sn_log(SN_LOG_ERROR, "store: etcd registry: %s", err);
		return SN_EIO;
	}
	et->watch_from = SN_MIN(st->revision, rrev) + 1;
	et->wcur = et->cur;
	if (pthread_create(&et->thread, NULL, watch_main, et) != 0)
		return SN_EIO;
	et->started = 1;
	return 0;
}

void sn_store_watch_stop(struct sn_store *st)
{
	struct sn_etcd *et = st->etcd;
	if (et == NULL)
		return;
	et->stopped = 1;
	et->cb = NULL;
	if (et->started) {
		atomic_store(&et->stop, 1);
		pthread_join(et->thread, NULL);
		et->started = 0;
	}
}

/* ---- open ---------------------------------------------------------------- */

/* "etcd://HOST:PORT[,HOST:PORT...]" into members. */
static int parse_url(struct sn_etcd *et, const char *url, char *err, size_t err_size)
{
	const char *scheme = "etcd://";
	if (strncmp(url, scheme, strlen(scheme)) != 0) {
		snprintf(err, err_size, "--store %s: want etcd://HOST:PORT[,HOST:PORT...] (etcd's client URLs, "
					"plain HTTP), e.g. etcd://127.0.0.1:2379", url);
		return SN_EINVAL;
	}
	const char *p = url + strlen(scheme);
	while (*p) {
		size_t n = strcspn(p, ",");
		char one[64], why[200];
		struct sn_http_url u;
		if (et->n_members == ETCD_MAX_MEMBERS) {
			snprintf(err, err_size, "--store: at most %d etcd members", ETCD_MAX_MEMBERS);
			return SN_EINVAL;
		}
		if (n == 0 || n + 8 >= sizeof(one) || memchr(p, '/', n) != NULL || memchr(p, ':', n) == NULL) {
			snprintf(err, err_size, "--store %s: member \"%.*s\" is not HOST:PORT, e.g. 127.0.0.1:2379", url,
				 (int)SN_MIN(n, 80), p);
			return SN_EINVAL;
		}
		snprintf(one, sizeof(one), "http://%.*s", (int)n, p);
		if (sn_http_url_parse(one, &u, why, sizeof(why)) != 0) {
			snprintf(err, err_size, "--store %s: member \"%.*s\" is not HOST:PORT, e.g. 127.0.0.1:2379", url,
				 (int)n, p);
			return SN_EINVAL;
		}
		snprintf(et->members[et->n_members++], sizeof(et->members[0]), "%s", one);
		p += n;
		if (*p == ',')
			p++;
	}
	if (et->n_members == 0) {
		snprintf(err, err_size, "--store %s: no etcd member given; e.g. etcd://127.0.0.1:2379", url);
		return SN_EINVAL;
	}
	return 0;
}

/* The TLS context for the members: their CA, our client certificate. */
static int tls_setup(struct sn_etcd *et, const struct sn_etcd_tls *t, char *err, size_t err_size)
{
	if (t == NULL || t->ca_file == NULL) {
		if (t != NULL && (t->cert_file != NULL || t->key_file != NULL)) {
			snprintf(err, err_size, "--etcd-cert and --etcd-key need --etcd-cacert (the CA etcd's "
						"certificates are checked against)");
			return SN_EINVAL;
		}
		return 0;
	}
	if ((t->cert_file == NULL) != (t->key_file == NULL)) {
		snprintf(err, err_size, "--etcd-cert and --etcd-key go together");
		return SN_EINVAL;
	}
	et->tls = SSL_CTX_new(TLS_client_method());
	const char *what = "out of memory";
	if (et->tls == NULL || SSL_CTX_set_min_proto_version(et->tls, TLS1_2_VERSION) != 1)
		goto fail;
	SSL_CTX_set_verify(et->tls, SSL_VERIFY_PEER, NULL);
	what = t->ca_file;
	if (SSL_CTX_load_verify_locations(et->tls, t->ca_file, NULL) != 1)
		goto fail;
	what = t->cert_file;
	if (t->cert_file != NULL && (SSL_CTX_use_certificate_chain_file(et->tls, t->cert_file) != 1 ||
				     (what = t->key_file, SSL_CTX_use_PrivateKey_file(et->tls, t->key_file,
										     SSL_FILETYPE_PEM) != 1) ||
				     SSL_CTX_check_private_key(et->tls) != 1))
		goto fail;
	et->client_cert = t->cert_file != NULL;
	return 0;
fail:;
	unsigned long e = ERR_peek_last_error();
	snprintf(err, err_size, "TLS to etcd: %s: %s", what,
		 e && ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "cannot load it");
	ERR_clear_error();
	return SN_EINVAL;
}

int sn_store_open_etcd(struct sn_store *st, const char *dir, const char *url, const struct sn_etcd_tls *tls,
		       struct sn_diags *report, char *err, size_t err_size)
{
	int rc = sn__store_open_data_dir(st, dir);
	if (rc != 0) {
		snprintf(err, err_size, "cannot make the data directory %s: %s", dir, strerror(errno));
		return rc;
	}
	struct sn_etcd *et = calloc(1, sizeof(*et));
	if (et == NULL) {
		sn_store_close(st);
		snprintf(err, err_size, "out of memory");
		return SN_ENOMEM;
	}
	pthread_mutex_init(&et->lock, NULL);
	snprintf(et->self, sizeof(et->self), "%08x%08x", (unsigned)getpid(), (unsigned)(sn_clock_us() & 0xffffffffu));
	et->st = st;
	st->etcd = et;
	st->ops = &sn__store_etcd_ops;
	if ((rc = parse_url(et, url, err, err_size)) != 0 || (rc = tls_setup(et, tls, err, err_size)) != 0) {
		sn_store_close(st);
		return rc;
	}
	snprintf(st->where, sizeof(st->where), "etcd at %s%s", url + strlen("etcd://"), et->tls ? " (TLS)" : "");
	if (load_all(st, report, 0, err, err_size) != 0) {
		sn_store_close(st);
		return SN_EIO;
	}
	return 0;
}
