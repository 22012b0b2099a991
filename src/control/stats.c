/* sinewd's live stats (docs/api.md "Stats"): what `sinew stat` and
 * `sinew edges` show, kept in memory so a mesh has golden metrics with no
 * Prometheus installed. Proxies send their request series over the control
 * link every --stats-interval (a `stats` message, mesh.c); the counts in
 * it are cumulative since the proxy started, so a lost message costs
 * nothing: sinewd keeps, per proxy and series, the last counts it saw
 * (a "baseline") and takes the difference.
 *
 * Per proxy, not per link: a proxy that reconnects (same node id, same
 * process) goes on from its baselines. A proxy sinewd has never seen
 * whose message is not its first (`seq` > 1: sinewd restarted, or the
 * record aged out) only sets the baselines -- its history is not
 * counted again into the current minute. A count that goes down is a
 * restart of that series.
 *
 * What is kept is what the two views need, aggregated over proxies: per
 * key (reporter, source workload and namespace, destination workload and
 * namespace, destination service, mTLS or not) a sorted array of sparse
 * time slots of --stats-resolution over the last hour, each with the
 * successes, failures and duration histogram (Istio's buckets) of the
 * requests that fell in it. A message's differences are spread over the
 * time they accrued in (`periodMs`, the time since the proxy last found
 * its counts unchanged or sent them), so a 10 s window holds 10 s of
 * traffic even when reports and slots do not line up.
 *
 * Bounded everywhere: keys, slots over all keys, proxy records and
 * baselines each have a cap (include/sinew/control.h); past the key and
 * slot caps the key updated longest ago goes first (an LRU list). The
 * whole message is checked before anything is taken. Loop thread only. */
#include <inttypes.h>
#include <libfyaml.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/config.h"
#include "sinew/json.h"
#include "sinew/log.h"
#include "sinew/out.h"
#include "sinew/sorted.h"
#include "sinew/stats_json.h"
#include "stats.h"

#define N_BOUNDS 19
#define N_BUCKETS (N_BOUNDS + 1)     /* the last is +Inf */
#define MAX_VALUE 1024               /* a label value; the proxy cuts at 256 bytes (escaping may triple) */
#define UNKNOWN "unknown"
/* registry.c names a registered proxy's WorkloadEntry "proxy-<id>": a
 * client's proxy reports that name as the destination workload, the
 * destination's own proxy its --service. Both mean the same workload. */
#define REG_PREFIX "proxy-"
#define PROXY_BUCKETS 4096           /* id index */
/* A disconnected proxy's baselines are kept this long for a reconnect of
 * the same process; later it starts over from its next message. */
#define BASELINE_KEEP_MS 600000u
/* The window ends this long after the slowest reporter's interval: what
 * proxies have not reported yet is not guessed at. */
#define LAG_SLACK_MS 250u
#define LAG_MAX_MS 60000u

/* Istio's duration buckets (docs/observability.md); a message with other
 * bounds is refused rather than filed wrongly. */
static const double bounds_ms[N_BOUNDS] = {
	0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
};

/* ---- the store ---------------------------------------------------------- */

/* One slot of one key: 92 bytes. */
struct slot {
	uint32_t t;                  /* slot number: loop time / resolution */
	uint32_t ok, failed;
	uint32_t dur[N_BUCKETS];
};

/* REP_ROUTE: a client's proxy's route series ("routes" in the message),
 * for GET /api/v1/routes. */
enum { REP_SOURCE = 0, REP_DESTINATION = 1, REP_ROUTE = 2 };
enum { SEC_UNKNOWN = 0, SEC_NONE, SEC_MTLS };

/* A key's strings, NUL-separated in key->text in this order. A route
 * key has no destination workload and the client's proxy as its source;
 * the last three are a route key's own ("" elsewhere, and for [DEFAULT]). */
enum { K_SRC_WL, K_SRC_NS, K_DST_WL, K_DST_NS, K_SVC, K_SVC_NAME, K_SVC_NS, K_VS_NS, K_VS, K_ROUTE, N_KSTR };

struct key {
	uint64_t hash;
	uint8_t reporter, security;
	uint8_t unrouted;            /* source side, no endpoint picked: the client's proxy answered */
	const char *s[N_KSTR];       /* into text */
	size_t len[N_KSTR];
	char *text;
	char *src_principal;         /* the last proven identities, or NULL */
	char *dst_principal;
	struct slot *slots;          /* live: slots[start .. start + n), sorted by t */
	size_t start, n, cap;
	uint64_t touched_ms;
	uint64_t epoch;              /* the message that last touched it */
	size_t acc;                  /* during that message: its row in the accumulation */
	struct key *hnext;           /* index chain */
	struct key *older, *newer;   /* LRU: updated longest ago first */
};

/* The last cumulative counts of one series of one proxy: 104 bytes. The
 * buckets and successes are kept modulo 2^32 (differences are taken the
 * same way). */
struct baseline {
	uint64_t hash;               /* 0: empty */
	uint64_t count;
	uint32_t dur[N_BUCKETS];
	uint32_t ok;
};

struct sn_stats_proxy {
	char *id, *ns, *workload;
	char *service;               /* its service when not its workload's name (sn_stats_proxy_service); NULL: the workload */
	uint64_t id_hash;
	int links;                   /* connected links with this id */
	uint64_t seq;                /* the last message taken (0: none) */
	uint64_t down_ms;            /* when its last link closed */
	uint64_t last_report_ms;
	uint32_t interval_ms;        /* its --stats-interval, as it said */
	int64_t cx_active;           /* connections open at its last report */
	int rebase;                  /* the next message only sets baselines */
	int lossy;                   /* a series was not remembered: new ones only set baselines */
	struct baseline *base;       /* open addressing by series hash */
	size_t n_base, cap_base;
	struct sn_stats_proxy *hnext;
	struct sn_stats_proxy *prev, *next;
};

struct sn_stats {
	struct sn_stats_limits lim;
	size_t max_slots_per_key;
	size_t min_slots_per_key;    /* what sharing the slot bound leaves a key: the default window */
	struct key *trim_at;         /* the next key to give up slots (a cursor over the LRU list) */
	struct cap_count {           /* how many keys have each slot capacity (a few distinct ones) */
		uint32_t cap, n;
	} caps[48];
	struct key **index;
	size_t index_mask;
	struct key *lru_old, *lru_new;
	size_t n_keys, n_slots, key_bytes;
	struct sn_stats_proxy *pindex[PROXY_BUCKETS];
	struct sn_stats_proxy *proxies;
	size_t n_proxies, n_baselines, base_cap_total;
	uint64_t epoch;
	uint64_t gc_t;               /* the slot the last sweep ran in */
	uint64_t messages, rejected, evicted_keys, untracked_series, dropped_slots, trimmed_keys;
};

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 1099511628211ull;
	}
	/* the length too: ("ab","c") is not ("a","bc") */
	h ^= n;
	h *= 0x9E3779B97F4A7C15ull;
	return h ^ (h >> 29);
}

static int str_is(struct sn_str s, const char *c)
{
	return sn_str_eq_cstr(s, c);
}

/* ---- keys ----------------------------------------------------------------- */

/* Counts keys by capacity (0 is not counted): caps double from 4 and
 * halve from the hour's count, so there are a few dozen values at most. */
static void caps_note(struct sn_stats *s, size_t cap, int delta)
{
	struct cap_count *free_one = NULL;

	if (cap == 0)
		return;
	for (size_t i = 0; i < SN_ARRAY_LEN(s->caps); i++) {
		if (s->caps[i].n > 0 && s->caps[i].cap == cap) {
			s->caps[i].n += (uint32_t)delta;
			return;
		}
		if (s->caps[i].n == 0 && free_one == NULL)
			free_one = &s->caps[i];
	}
	if (delta > 0 && free_one != NULL) {
		free_one->cap = (uint32_t)cap;
		free_one->n = 1;
	}
}

/* Whether a key holds at least cap slots. */
static int caps_any(const struct sn_stats *s, size_t cap)
{
	for (size_t i = 0; i < SN_ARRAY_LEN(s->caps); i++)
		if (s->caps[i].n > 0 && s->caps[i].cap >= cap)
			return 1;
	return 0;
}


static void lru_unlink(struct sn_stats *s, struct key *k)
{
	if (k->older != NULL)
		k->older->newer = k->newer;
	else
		s->lru_old = k->newer;
	if (k->newer != NULL)
		k->newer->older = k->older;
	else
		s->lru_new = k->older;
	k->older = k->newer = NULL;
}

static void lru_push_new(struct sn_stats *s, struct key *k)
{
	k->older = s->lru_new;
	k->newer = NULL;
	if (s->lru_new != NULL)
		s->lru_new->newer = k;
	else
		s->lru_old = k;
	s->lru_new = k;
}

static size_t key_bytes(const struct key *k)
{
	size_t b = sizeof(*k) + k->cap * sizeof(struct slot);
	for (size_t i = 0; i < N_KSTR; i++)
		b += k->len[i] + 1;
	b += k->src_principal ? strlen(k->src_principal) + 1 : 0;
	b += k->dst_principal ? strlen(k->dst_principal) + 1 : 0;
	return b;
}

static void key_free(struct sn_stats *s, struct key *k)
{
	struct key **pp = &s->index[k->hash & s->index_mask];
	while (*pp != NULL && *pp != k)
		pp = &(*pp)->hnext;
	if (*pp == k)
		*pp = k->hnext;
	if (s->trim_at == k)
		s->trim_at = k->newer;
	lru_unlink(s, k);
	caps_note(s, k->cap, -1);
	s->n_keys--;
	s->n_slots -= k->cap;
	s->key_bytes -= key_bytes(k);
	free(k->slots);
	free(k->text);
	free(k->src_principal);
	free(k->dst_principal);
	free(k);
}

/* Drops the key updated longest ago, unless the message being read
 * touched it (its row is in use). Returns 0, or -1 when there is none. */
static int evict_one(struct sn_stats *s)
{
	struct key *k = s->lru_old;
	if (k == NULL || k->epoch == s->epoch)
		return -1;
	key_free(s, k);
	s->evicted_keys++;
	return 0;
}

static uint64_t key_hash(int reporter, int security, int unrouted, const struct sn_str *v)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)(reporter | security << 2 | unrouted << 4);
	for (size_t i = 0; i < N_KSTR; i++)
		h = hash_bytes(h, v[i].p, v[i].len);
	return h;
}

/* Finds or makes the key; NULL when it cannot be made (no memory, or
 * every key in use by this message). Moves it to the new end. */
static struct key *key_get(struct sn_stats *s, int reporter, int security, int unrouted, const struct sn_str *v,
			   uint64_t now)
{
	uint64_t h = key_hash(reporter, security, unrouted, v);
	struct key *k;

	for (k = s->index[h & s->index_mask]; k != NULL; k = k->hnext) {
		if (k->hash != h || k->reporter != reporter || k->security != security || k->unrouted != unrouted)
			continue;
		size_t i = 0;
		while (i < N_KSTR && k->len[i] == v[i].len && !memcmp(k->s[i], v[i].p, v[i].len))
			i++;
		if (i == N_KSTR)
			break;
	}
	if (k == NULL) {
		size_t total = 0;
		while (s->n_keys >= s->lim.keys)
			if (evict_one(s) != 0)
				return NULL;
		k = calloc(1, sizeof(*k));
		for (size_t i = 0; i < N_KSTR; i++)
			total += v[i].len + 1;
		char *p = k != NULL ? malloc(total) : NULL;
		if (p == NULL) {
			free(k);
			return NULL;
		}
		k->text = p;
		for (size_t i = 0; i < N_KSTR; i++) {
			memcpy(p, v[i].p, v[i].len);
			p[v[i].len] = '\0';
			k->s[i] = p;
			k->len[i] = v[i].len;
			p += v[i].len + 1;
		}
		k->hash = h;
		k->reporter = (uint8_t)reporter;
		k->security = (uint8_t)security;
		k->unrouted = (uint8_t)unrouted;
		k->hnext = s->index[h & s->index_mask];
		s->index[h & s->index_mask] = k;
		s->n_keys++;
		s->key_bytes += key_bytes(k);
		lru_push_new(s, k);
	} else if (k != s->lru_new) {
		lru_unlink(s, k);
		lru_push_new(s, k);
	}
	k->touched_ms = now;
	return k;
}

static void key_set_principal(struct sn_stats *s, struct key *k, char **slot, struct sn_str v)
{
	if (v.len == 0 || str_is(v, UNKNOWN) || (*slot != NULL && strlen(*slot) == v.len && !memcmp(*slot, v.p, v.len)))
		return;
	char *c = strndup(v.p, v.len);
	if (c == NULL)
		return;
	s->key_bytes -= key_bytes(k);
	free(*slot);
	*slot = c;
	s->key_bytes += key_bytes(k);
}

/* k's slot array is now slots (realloc'd to ncap): the counts follow. */
static void key_set_cap(struct sn_stats *s, struct key *k, struct slot *slots, size_t ncap)
{
	s->key_bytes -= key_bytes(k);
	s->n_slots = s->n_slots - k->cap + ncap;
	caps_note(s, k->cap, -1);
	caps_note(s, ncap, 1);
	k->slots = slots;
	k->cap = ncap;
	s->key_bytes += key_bytes(k);
}

/* Drops slots older than min_t; shrinks a mostly empty array. */
static void key_expire(struct sn_stats *s, struct key *k, uint32_t min_t)
{
	while (k->n > 0 && k->slots[k->start].t < min_t) {
		k->start++;
		k->n--;
	}
	if (k->n == 0)
		k->start = 0;
	if (k->cap > 8 && k->n < k->cap / 4) {
		size_t ncap = k->cap / 2;
		memmove(k->slots, k->slots + k->start, k->n * sizeof(*k->slots));
		k->start = 0;
		struct slot *ns = realloc(k->slots, ncap * sizeof(*ns));
		if (ns != NULL)
			key_set_cap(s, k, ns, ncap);
	}
}

/* Keeps the newer half of k's slots and gives the rest of its array back. */
static void key_halve(struct sn_stats *s, struct key *k)
{
	size_t ncap = k->cap / 2;

	if (k->n > ncap) {
		k->start += k->n - ncap;
		k->n = ncap;
	}
	memmove(k->slots, k->slots + k->start, k->n * sizeof(*k->slots));
	k->start = 0;
	struct slot *ns = realloc(k->slots, ncap * sizeof(*ns));
	if (ns == NULL)
		return;   /* keeps the larger array; the data moved already */
	key_set_cap(s, k, ns, ncap);
	s->trimmed_keys++;
}

/* Makes room for need more slots under the bound by taking from richer
 * keys: each key holding at least twice what the growing key is about to
 * hold (ncap), in turn (a cursor going round the LRU list), gives up the
 * older half of its history -- never below what the default window needs.
 * So the keys come to share the bound evenly and each keeps its latest
 * minutes. Returns 0, or -1 when no key is that rich. */
static int make_room(struct sn_stats *s, size_t need, const struct key *self, size_t ncap)
{
	size_t seen = 0, victim = 2 * SN_MAX(ncap, s->min_slots_per_key);

	while (s->n_slots + need > s->lim.slots) {
		/* the usual answer once the keys share the bound evenly: no */
		if (!caps_any(s, victim))
			return -1;
		struct key *k = s->trim_at != NULL ? s->trim_at : s->lru_old;
		if (k == NULL || seen++ > s->n_keys)
			return -1;
		s->trim_at = k->newer;
		if (k != self && k->cap >= victim) {
			key_halve(s, k);
			seen = 0;
		}
	}
	return 0;
}

/* The slot t of k, made if missing (slots before min_t leave first). NULL
 * when the slot bound leaves no room and no other key can go. */
static struct slot *key_slot(struct sn_stats *s, struct key *k, uint32_t t, uint32_t min_t)
{
	size_t i;

	key_expire(s, k, min_t);
	/* Spreads write the newest few slots: search from the end. */
	for (i = k->n; i > 0 && k->slots[k->start + i - 1].t > t; i--)
		;
	if (i > 0 && k->slots[k->start + i - 1].t == t)
		return &k->slots[k->start + i - 1];
	if (k->n == s->max_slots_per_key) {
		if (i == 0)
			return NULL;   /* older than all of a full hour: cannot be */
		k->start++;    /* the oldest goes (it is past the hour by then) */
		k->n--;
		i--;
	}
	if (k->start + k->n == k->cap && k->start == 0) {
		size_t ncap = k->cap ? SN_MIN(k->cap * 2, s->max_slots_per_key) : 4;
		int room = s->n_slots + (ncap - k->cap) <= s->lim.slots ||
			   make_room(s, ncap - k->cap, k, ncap) == 0;
		if (!room && k->n > 0) {
			/* its share of a full bound: its oldest slot makes way */
			if (i == 0) {
				s->dropped_slots++;
				return NULL;
			}
			k->start++;
			k->n--;
			i--;
		} else {
			/* a new key: the key updated longest ago goes */
			while (!room && s->n_slots + (ncap - k->cap) > s->lim.slots)
				if (evict_one(s) != 0) {
					s->dropped_slots++;
					return NULL;
				}
			struct slot *ns = realloc(k->slots, ncap * sizeof(*ns));
			if (ns == NULL)
				return NULL;
			key_set_cap(s, k, ns, ncap);
		}
	}
	if (k->start + k->n == k->cap) {
		memmove(k->slots, k->slots + k->start, k->n * sizeof(*k->slots));
		k->start = 0;
	}
	struct slot *at = &k->slots[k->start + i];
	memmove(at + 1, at, (k->n - i) * sizeof(*at));
	memset(at, 0, sizeof(*at));
	at->t = t;
	k->n++;
	return at;
}

static void add32(uint32_t *p, uint64_t v)
{
	uint64_t x = (uint64_t)*p + v;
	*p = x > UINT32_MAX ? UINT32_MAX : (uint32_t)x;
}

/* ---- proxies ---------------------------------------------------------------- */

static size_t proxy_bytes(const struct sn_stats_proxy *p)
{
	return sizeof(*p) + strlen(p->id) + strlen(p->ns) + strlen(p->workload) + 3 +
	       (p->service ? strlen(p->service) + 1 : 0);
}

/* The service a proxy serves: its workload's name unless told otherwise
 * (a workload named service-version). */
static const char *proxy_service(const struct sn_stats_proxy *p)
{
	return p->service != NULL ? p->service : p->workload;
}

/* The workload a request for service ns/name that never reached one
 * counts against: the one workload whose proxies serve it, else (none, or
 * several versions) the service's name, which a workload view counts in
 * its namespace only. */
static const char *service_workload(const struct sn_stats *s, const char *ns, const char *name)
{
	const char *found = NULL;
	for (const struct sn_stats_proxy *p = s->proxies; p != NULL; p = p->next) {
		if (strcmp(p->ns, ns) != 0 || strcmp(proxy_service(p), name) != 0)
			continue;
		if (found != NULL && strcmp(found, p->workload) != 0)
			return name;
		found = p->workload;
	}
	return found != NULL ? found : name;
}

static struct sn_stats_proxy *proxy_find(const struct sn_stats *s, const char *id, size_t len)
{
	uint64_t h = hash_bytes(1469598103934665603ull, id, len);
	for (struct sn_stats_proxy *p = s->pindex[h % PROXY_BUCKETS]; p != NULL; p = p->hnext)
		if (p->id_hash == h && strlen(p->id) == len && !memcmp(p->id, id, len))
			return p;
	return NULL;
}

static void proxy_drop_baselines(struct sn_stats *s, struct sn_stats_proxy *p)
{
	s->n_baselines -= p->n_base;
	s->base_cap_total -= p->cap_base;
	free(p->base);
	p->base = NULL;
	p->n_base = p->cap_base = 0;
}

static void proxy_free(struct sn_stats *s, struct sn_stats_proxy *p)
{
	struct sn_stats_proxy **pp = &s->pindex[p->id_hash % PROXY_BUCKETS];
	while (*pp != NULL && *pp != p)
		pp = &(*pp)->hnext;
	if (*pp == p)
		*pp = p->hnext;
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		s->proxies = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	proxy_drop_baselines(s, p);
	s->n_proxies--;
	free(p->id);
	free(p->ns);
	free(p->workload);
	free(p->service);
	free(p);
}

static int set_str(char **dst, const char *v)
{
	if (*dst != NULL && !strcmp(*dst, v))
		return 0;
	char *c = strdup(v);
	if (c == NULL)
		return -1;
	free(*dst);
	*dst = c;
	return 0;
}

struct sn_stats_proxy *sn_stats_proxy_up(struct sn_stats *s, const char *id, const char *ns, const char *workload)
{
	struct sn_stats_proxy *p = proxy_find(s, id, strlen(id));

	if (p == NULL) {
		if (s->n_proxies >= s->lim.proxies) {
			/* the record that went away longest ago makes room */
			struct sn_stats_proxy *old = NULL;
			for (struct sn_stats_proxy *q = s->proxies; q != NULL; q = q->next)
				if (q->links == 0 && (old == NULL || q->down_ms < old->down_ms))
					old = q;
			if (old == NULL)
				return NULL;
			proxy_free(s, old);
		}
		p = calloc(1, sizeof(*p));
		if (p == NULL || (p->id = strdup(id)) == NULL) {
			free(p);
			return NULL;
		}
		p->id_hash = hash_bytes(1469598103934665603ull, id, strlen(id));
		p->hnext = s->pindex[p->id_hash % PROXY_BUCKETS];
		s->pindex[p->id_hash % PROXY_BUCKETS] = p;
		p->next = s->proxies;
		if (p->next != NULL)
			p->next->prev = p;
		s->proxies = p;
		s->n_proxies++;
	}
	if (set_str(&p->ns, ns) != 0 || set_str(&p->workload, workload) != 0) {
		if (p->ns == NULL || p->workload == NULL) {
			proxy_free(s, p);
			return NULL;
		}
	}
	p->links++;
	return p;
}

int sn_stats_proxy_service(struct sn_stats_proxy *p, const char *service)
{
	if (p == NULL)
		return 0;
	if (service == NULL || service[0] == '\0' || strcmp(service, p->workload) == 0) {
		free(p->service);
		p->service = NULL;
		return 0;
	}
	return set_str(&p->service, service);
}

void sn_stats_proxy_down(struct sn_stats *s, struct sn_stats_proxy *p, uint64_t now_ms)
{
	if (s == NULL || p == NULL)
		return;
	if (p->links > 0)
		p->links--;
	if (p->links == 0)
		p->down_ms = now_ms;
}

/* The baseline of a series, or where it would go (hash 0). */
static struct baseline *base_find(struct sn_stats_proxy *p, uint64_t h)
{
	if (p->cap_base == 0)
		return NULL;
	for (size_t i = h & (p->cap_base - 1);; i = (i + 1) & (p->cap_base - 1))
		if (p->base[i].hash == h || p->base[i].hash == 0)
			return &p->base[i];
}

/* Inserts (or finds) the baseline of h; NULL past the bound or without
 * memory. */
static struct baseline *base_put(struct sn_stats *s, struct sn_stats_proxy *p, uint64_t h)
{
	struct baseline *b = base_find(p, h);

	if (b != NULL && b->hash == h)
		return b;
	if (s->n_baselines >= s->lim.baselines)
		return NULL;
	if (2 * (p->n_base + 1) > p->cap_base) {
		size_t ncap = p->cap_base ? p->cap_base * 2 : 16;
		struct baseline *nb = calloc(ncap, sizeof(*nb)), *old = p->base;
		size_t ocap = p->cap_base;
		if (nb == NULL)
			return NULL;
		p->base = nb;
		p->cap_base = ncap;
		for (size_t i = 0; i < ocap; i++)
			if (old[i].hash != 0)
				*base_find(p, old[i].hash) = old[i];
		free(old);
		s->base_cap_total += ncap - ocap;
	}
	b = base_find(p, h);
	if (b == NULL)
		return NULL;
	memset(b, 0, sizeof(*b));
	b->hash = h;
	p->n_base++;
	s->n_baselines++;
	return b;
}

/* ---- sweeping --------------------------------------------------------------- */

static uint32_t slot_of(const struct sn_stats *s, uint64_t ms)
{
	return (uint32_t)(ms / s->lim.resolution_ms);
}

static uint32_t oldest_kept(const struct sn_stats *s, uint64_t now)
{
	return now > SN_STATS_RETENTION_MS ? slot_of(s, now - SN_STATS_RETENTION_MS) : 0;
}

/* Once a slot: slots past the hour go, then keys with none left, then
 * records of proxies gone for the hour (their baselines after 10 min). */
static void sweep(struct sn_stats *s, uint64_t now)
{
	uint32_t t = slot_of(s, now), min_t = oldest_kept(s, now);

	if (t == s->gc_t)
		return;
	s->gc_t = t;
	for (struct key *k = s->lru_old, *next; k != NULL; k = next) {
		next = k->newer;
		key_expire(s, k, min_t);
		if (k->n == 0 && k->touched_ms + SN_STATS_RETENTION_MS <= now)
			key_free(s, k);
	}
	for (struct sn_stats_proxy *p = s->proxies, *next; p != NULL; p = next) {
		next = p->next;
		if (p->links > 0)
			continue;
		if (now - p->down_ms >= SN_STATS_RETENTION_MS)
			proxy_free(s, p);
		else if (p->base != NULL && now - p->down_ms >= BASELINE_KEEP_MS) {
			proxy_drop_baselines(s, p);
			p->rebase = 1;
		}
	}
}

/* ---- lifetime --------------------------------------------------------------- */

struct sn_stats *sn_stats_new(const struct sn_stats_limits *lim)
{
	struct sn_stats *s = calloc(1, sizeof(*s));
	size_t buckets = 1;

	if (s == NULL)
		return NULL;
	if (lim != NULL)
		s->lim = *lim;
	if (s->lim.resolution_ms == 0)
		s->lim.resolution_ms = SN_STATS_RESOLUTION_DEFAULT_MS;
	if (s->lim.resolution_ms < 1000)
		s->lim.resolution_ms = 1000;
	if (s->lim.resolution_ms > 600000)
		s->lim.resolution_ms = 600000;
	if (s->lim.keys == 0)
		s->lim.keys = SN_STATS_MAX_KEYS;
	if (s->lim.slots == 0)
		s->lim.slots = SN_STATS_MAX_SLOTS;
	if (s->lim.proxies == 0)
		s->lim.proxies = SN_STATS_MAX_PROXIES;
	if (s->lim.baselines == 0)
		s->lim.baselines = SN_STATS_MAX_BASELINES;
	/* the hour, and one more for the slot being filled */
	s->max_slots_per_key = SN_STATS_RETENTION_MS / s->lim.resolution_ms + 2;
	s->min_slots_per_key = SN_MIN(SN_STATS_WINDOW_DEFAULT_MS / s->lim.resolution_ms + 4, s->max_slots_per_key);
	while (buckets < s->lim.keys && buckets < (1u << 20))
		buckets <<= 1;
	s->index = calloc(buckets, sizeof(*s->index));
	if (s->index == NULL) {
		free(s);
		return NULL;
	}
	s->index_mask = buckets - 1;
	return s;
}

void sn_stats_free(struct sn_stats *s)
{
	if (s == NULL)
		return;
	while (s->lru_old != NULL)
		key_free(s, s->lru_old);
	while (s->proxies != NULL)
		proxy_free(s, s->proxies);
	free(s->index);
	free(s);
}

void sn_stats_counts(const struct sn_stats *s, struct sn_stats_counts *out)
{
	memset(out, 0, sizeof(*out));
	out->keys = s->n_keys;
	out->slots = s->n_slots;
	out->proxies = s->n_proxies;
	out->baselines = s->n_baselines;
	out->bytes = sizeof(*s) + (s->index_mask + 1) * sizeof(*s->index) + s->key_bytes +
		     s->base_cap_total * sizeof(struct baseline);
	for (const struct sn_stats_proxy *p = s->proxies; p != NULL; p = p->next)
		out->bytes += proxy_bytes(p);
	out->messages = s->messages;
	out->rejected = s->rejected;
	out->evicted_keys = s->evicted_keys;
	out->trims = s->trimmed_keys;
	out->untracked_series = s->untracked_series;
}

/* ---- reading a message ------------------------------------------------------ */

/* The label fields of a series, in the order they are hashed. */
enum {
	F_SRC_WL, F_SRC_NS, F_SRC_PRINCIPAL, F_SRC_APP, F_SRC_VERSION, F_SRC_CLUSTER,
	F_DST_WL, F_DST_NS, F_DST_PRINCIPAL, F_DST_APP, F_DST_VERSION,
	F_SVC, F_SVC_NAME, F_SVC_NS, F_DST_CLUSTER, F_PROTOCOL, F_GRPC, F_FLAGS, F_SECURITY,
	N_FIELDS,
};

static const char *const field_names[N_FIELDS] = {
	"sourceWorkload", "sourceNamespace", "sourcePrincipal", "sourceApp", "sourceVersion", "sourceCluster",
	"destinationWorkload", "destinationNamespace", "destinationPrincipal", "destinationApp", "destinationVersion",
	"destinationService", "destinationServiceName", "destinationServiceNamespace", "destinationCluster",
	"protocol", "grpcStatus", "responseFlags", "connectionSecurityPolicy",
};

struct in_series {
	uint64_t hash;
	int reporter;                /* REP_ROUTE: an item of "routes" */
	int code;
	struct sn_str f[N_FIELDS];   /* into the document; "unknown" when absent or null */
	struct sn_str vs_ns, vs, route;   /* a route series': "" for [DEFAULT] */
	uint64_t count;
	uint64_t ok;                 /* successes among count */
	uint64_t dur[N_BUCKETS];
};

struct reader {
	char *err;
	size_t err_size;
};

static int fail(struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct reader *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err, r->err_size, fmt, ap);
	va_end(ap);
	return SN_EINVAL;
}

static int is_plain(struct fy_node *n)
{
	return n != NULL && fy_node_is_scalar(n) && fy_node_get_style(n) == FYNS_PLAIN;
}

static int is_null(struct fy_node *n)
{
	size_t len;
	const char *v = is_plain(n) ? fy_node_get_scalar(n, &len) : NULL;
	return v != NULL && len == 4 && !memcmp(v, "null", 4);
}

/* A member; NULL when absent or JSON null. */
static struct fy_node *member(struct fy_node *map, const char *key)
{
	struct fy_node *n = fy_node_mapping_lookup_by_string(map, key, FY_NT);
	return n == NULL || is_null(n) ? NULL : n;
}

/* A JSON string (a quoted scalar). */
static int get_string(struct fy_node *n, struct sn_str *out)
{
	size_t len;
	if (n == NULL || !fy_node_is_scalar(n) || fy_node_get_style(n) == FYNS_PLAIN ||
	    fy_node_get_style(n) == FYNS_ALIAS)
		return -1;
	const char *v = fy_node_get_scalar(n, &len);
	if (v == NULL)
		return -1;
	*out = sn_str_make(v, len);
	return 0;
}

/* A non-negative integer written as a JSON number. */
static int get_u64(struct fy_node *n, uint64_t *out)
{
	size_t len;
	const char *v = is_plain(n) ? fy_node_get_scalar(n, &len) : NULL;
	uint64_t x = 0;
	if (v == NULL || len == 0 || len > 20 || (len > 1 && v[0] == '0'))
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		unsigned d = (unsigned)(v[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*out = x;
	return 0;
}

/* A JSON number as a double (the bucket bounds). */
static int get_number(struct fy_node *n, double *out)
{
	size_t len;
	char buf[40], *end;
	const char *v = is_plain(n) ? fy_node_get_scalar(n, &len) : NULL;
	if (v == NULL || len == 0 || len >= sizeof(buf) || !((v[0] >= '0' && v[0] <= '9') || v[0] == '-'))
		return -1;
	memcpy(buf, v, len);
	buf[len] = '\0';
	*out = strtod(buf, &end);
	return *end == '\0' && isfinite(*out) ? 0 : -1;
}

static int success(const struct in_series *x);

static int read_series(struct reader *r, struct fy_node *it, size_t i, struct in_series *out)
{
	struct fy_node *n;
	struct sn_str rep;
	uint64_t v, sum = 0;

	if (!fy_node_is_mapping(it))
		return fail(r, "requests[%zu]: want an object", i);
	if (get_string(member(it, "reporter"), &rep) != 0 || !(str_is(rep, "source") || str_is(rep, "destination")))
		return fail(r, "requests[%zu].reporter: want \"source\" or \"destination\"", i);
	out->reporter = str_is(rep, "source") ? REP_SOURCE : REP_DESTINATION;
	for (size_t f = 0; f < N_FIELDS; f++) {
		n = member(it, field_names[f]);
		if (n == NULL) {
			out->f[f] = SN_STR_LIT(UNKNOWN);
			continue;
		}
		if (get_string(n, &out->f[f]) != 0)
			return fail(r, "requests[%zu].%s: want a string or null", i, field_names[f]);
		if (out->f[f].len > MAX_VALUE || memchr(out->f[f].p, '\0', out->f[f].len) != NULL)
			return fail(r, "requests[%zu].%s: longer than %d bytes, or holds a NUL", i, field_names[f],
				    MAX_VALUE);
	}
	if (get_u64(member(it, "responseCode"), &v) != 0 || v > 999)
		return fail(r, "requests[%zu].responseCode: want a number from 0 to 999", i);
	out->code = (int)v;
	if (get_u64(member(it, "count"), &out->count) != 0)
		return fail(r, "requests[%zu].count: want a whole number", i);
	n = member(it, "durationBuckets");
	if (n == NULL || !fy_node_is_sequence(n) || fy_node_sequence_item_count(n) != N_BUCKETS)
		return fail(r, "requests[%zu].durationBuckets: want %d counts, one per bucket of durationBucketsMs "
			       "and the last for +Inf", i, N_BUCKETS);
	for (int b = 0; b < N_BUCKETS; b++) {
		if (get_u64(fy_node_sequence_get_by_index(n, b), &out->dur[b]) != 0)
			return fail(r, "requests[%zu].durationBuckets[%d]: want a whole number", i, b);
		if (sum > UINT64_MAX - out->dur[b])
			return fail(r, "requests[%zu].durationBuckets: the counts overflow", i);
		sum += out->dur[b];
	}
	if (sum != out->count)
		return fail(r, "requests[%zu]: count %" PRIu64 " is not the sum of durationBuckets (%" PRIu64 ")", i,
			    out->count, sum);

	uint64_t h = hash_bytes(1469598103934665603ull, &out->reporter, sizeof(out->reporter));
	h = hash_bytes(h, &out->code, sizeof(out->code));
	for (size_t f = 0; f < N_FIELDS; f++)
		h = hash_bytes(h, out->f[f].p, out->f[f].len);
	out->hash = h ? h : 1;   /* 0 marks an empty baseline */
	out->vs_ns = out->vs = out->route = SN_STR_LIT("");
	out->ok = success(out) ? out->count : 0;
	return 0;
}

/* A member of a route series: a string, or null (absent) for [DEFAULT]'s
 * VirtualService and route. */
static int route_string(struct reader *r, struct fy_node *it, size_t i, const char *name, int nullable,
			struct sn_str *out)
{
	struct fy_node *n = member(it, name);
	if (n == NULL && nullable) {
		*out = SN_STR_LIT("");
		return 0;
	}
	if (n == NULL || get_string(n, out) != 0)
		return fail(r, "routes[%zu].%s: want a string%s", i, name, nullable ? " or null" : "");
	if (out->len > MAX_VALUE || memchr(out->p, '\0', out->len) != NULL)
		return fail(r, "routes[%zu].%s: longer than %d bytes, or holds a NUL", i, name, MAX_VALUE);
	return 0;
}

/* An item of "routes" (docs/internals/control-protocol.md). */
static int read_route(struct reader *r, struct fy_node *it, size_t i, struct in_series *out)
{
	struct fy_node *n;
	uint64_t sum = 0;
	int rc;

	if (!fy_node_is_mapping(it))
		return fail(r, "routes[%zu]: want an object", i);
	out->reporter = REP_ROUTE;
	for (size_t f = 0; f < N_FIELDS; f++)
		out->f[f] = SN_STR_LIT(UNKNOWN);
	if ((rc = route_string(r, it, i, "virtualServiceNamespace", 1, &out->vs_ns)) != 0 ||
	    (rc = route_string(r, it, i, "virtualService", 1, &out->vs)) != 0 ||
	    (rc = route_string(r, it, i, "route", 1, &out->route)) != 0 ||
	    (rc = route_string(r, it, i, "destinationService", 0, &out->f[F_SVC])) != 0 ||
	    (rc = route_string(r, it, i, "destinationServiceName", 0, &out->f[F_SVC_NAME])) != 0 ||
	    (rc = route_string(r, it, i, "destinationServiceNamespace", 0, &out->f[F_SVC_NS])) != 0)
		return rc;
	/* (a route named "" shows as [DEFAULT] of its VirtualService) */
	if ((out->vs.len == 0) != (out->vs_ns.len == 0) || (out->route.len > 0 && out->vs.len == 0))
		return fail(r, "routes[%zu]: virtualServiceNamespace, virtualService and route: want all three, or "
			       "all null ([DEFAULT])", i);
	if (get_u64(member(it, "count"), &out->count) != 0)
		return fail(r, "routes[%zu].count: want a whole number", i);
	if (get_u64(member(it, "successes"), &out->ok) != 0 || out->ok > out->count)
		return fail(r, "routes[%zu].successes: want a whole number, at most count", i);
	n = member(it, "durationBuckets");
	if (n == NULL || !fy_node_is_sequence(n) || fy_node_sequence_item_count(n) != N_BUCKETS)
		return fail(r, "routes[%zu].durationBuckets: want %d counts, one per bucket of durationBucketsMs "
			       "and the last for +Inf", i, N_BUCKETS);
	for (int b = 0; b < N_BUCKETS; b++) {
		if (get_u64(fy_node_sequence_get_by_index(n, b), &out->dur[b]) != 0)
			return fail(r, "routes[%zu].durationBuckets[%d]: want a whole number", i, b);
		if (sum > UINT64_MAX - out->dur[b])
			return fail(r, "routes[%zu].durationBuckets: the counts overflow", i);
		sum += out->dur[b];
	}
	if (sum != out->count)
		return fail(r, "routes[%zu]: count %" PRIu64 " is not the sum of durationBuckets (%" PRIu64 ")", i,
			    out->count, sum);

	/* salted apart from the request series: one proxy's baselines hold both */
	uint64_t h = hash_bytes(0x726F757465ull, &out->reporter, sizeof(out->reporter));
	h = hash_bytes(h, out->vs_ns.p, out->vs_ns.len);
	h = hash_bytes(h, out->vs.p, out->vs.len);
	h = hash_bytes(h, out->route.p, out->route.len);
	for (size_t f = F_SVC; f <= F_SVC_NS; f++)
		h = hash_bytes(h, out->f[f].p, out->f[f].len);
	out->hash = h ? h : 1;
	return 0;
}

static int cmp_series(const void *a, const void *b)
{
	uint64_t x = ((const struct in_series *)a)->hash, y = ((const struct in_series *)b)->hash;
	return (x > y) - (x < y);
}

/* ---- taking a message ------------------------------------------------------- */

/* What one message adds to one key, summed over its series. */
struct acc {
	struct key *k;
	uint64_t ok, failed;
	uint64_t dur[N_BUCKETS];
};

static int success(const struct in_series *x)
{
	const struct sn_str g = x->f[F_GRPC];
	if (x->code < 1 || x->code > 499)
		return 0;
	return str_is(g, UNKNOWN) || str_is(g, "0");
}

static int security_of(const struct in_series *x)
{
	struct sn_str pol = x->f[F_SECURITY];
	if (str_is(pol, "mutual_tls"))
		return SEC_MTLS;
	/* A client's proxy reports both principals only for a request its
	 * endpoint answered over mutual TLS (docs/observability.md). */
	if (x->reporter == REP_SOURCE && !str_is(x->f[F_SRC_PRINCIPAL], UNKNOWN) &&
	    !str_is(x->f[F_DST_PRINCIPAL], UNKNOWN))
		return SEC_MTLS;
	return str_is(pol, "none") ? SEC_NONE : SEC_UNKNOWN;
}

/* Spreads v over the slots of [from, to) in proportion to how much of the
 * span each covers; what each slot gets sums to v exactly. */
struct spread {
	uint32_t t0, t1;             /* first and last slot */
	uint64_t from, span;         /* ms */
	uint32_t res;
};

static uint64_t share(const struct spread *sp, uint32_t t, uint64_t v)
{
	if (sp->t0 == sp->t1 || sp->span == 0)
		return t == sp->t1 ? v : 0;
	/* covered up to the end of slot t, and up to its start */
	uint64_t end = SN_MIN((uint64_t)(t + 1) * sp->res, sp->from + sp->span) - sp->from;
	uint64_t start = t == sp->t0 ? 0 : (uint64_t)t * sp->res - sp->from;
	return v * end / sp->span - v * start / sp->span;
}

static void spread_acc(struct sn_stats *s, struct acc *a, const struct spread *sp, uint32_t min_t)
{
	for (uint32_t t = sp->t0; t <= sp->t1; t++) {
		uint64_t ok = share(sp, t, a->ok), failed = share(sp, t, a->failed), any = ok | failed;
		uint64_t dur[N_BUCKETS];
		for (int b = 0; b < N_BUCKETS; b++) {
			dur[b] = share(sp, t, a->dur[b]);
			any |= dur[b];
		}
		if (any == 0 || t < min_t)
			continue;
		struct slot *sl = key_slot(s, a->k, t, min_t);
		if (sl == NULL)
			return;
		add32(&sl->ok, ok);
		add32(&sl->failed, failed);
		for (int b = 0; b < N_BUCKETS; b++)
			add32(&sl->dur[b], dur[b]);
	}
}

/* The key a series files under. A registered proxy's entry name becomes
 * the workload its own proxy reports. */
static struct key *series_key(struct sn_stats *s, const struct in_series *x, uint64_t now)
{
	struct sn_str v[N_KSTR];
	int unrouted = x->reporter == REP_SOURCE && str_is(x->f[F_DST_WL], UNKNOWN);

	v[K_SRC_WL] = x->f[F_SRC_WL];
	v[K_SRC_NS] = x->f[F_SRC_NS];
	v[K_DST_WL] = x->f[F_DST_WL];
	v[K_DST_NS] = x->f[F_DST_NS];
	v[K_SVC] = x->f[F_SVC];
	v[K_SVC_NAME] = x->f[F_SVC_NAME];
	v[K_SVC_NS] = x->f[F_SVC_NS];
	v[K_VS_NS] = v[K_VS] = v[K_ROUTE] = SN_STR_LIT("");
	if (x->reporter == REP_SOURCE && v[K_DST_WL].len > sizeof(REG_PREFIX) - 1 &&
	    !memcmp(v[K_DST_WL].p, REG_PREFIX, sizeof(REG_PREFIX) - 1)) {
		const struct sn_stats_proxy *dp = proxy_find(s, v[K_DST_WL].p + sizeof(REG_PREFIX) - 1,
							     v[K_DST_WL].len - (sizeof(REG_PREFIX) - 1));
		if (dp != NULL) {
			v[K_DST_WL] = sn_str_make(dp->workload, strlen(dp->workload));
			v[K_DST_NS] = sn_str_make(dp->ns, strlen(dp->ns));
		}
	}
	return key_get(s, x->reporter, security_of(x), unrouted, v, now);
}

/* The key a route series files under: the client is the proxy that sent
 * it (its workload, as its `sinew stat` row). */
static struct key *route_key(struct sn_stats *s, const struct sn_stats_proxy *p, const struct in_series *x,
			     uint64_t now)
{
	struct sn_str v[N_KSTR];

	v[K_SRC_WL] = sn_str_make(p->workload, strlen(p->workload));
	v[K_SRC_NS] = sn_str_make(p->ns, strlen(p->ns));
	v[K_DST_WL] = v[K_DST_NS] = SN_STR_LIT("");
	v[K_SVC] = x->f[F_SVC];
	v[K_SVC_NAME] = x->f[F_SVC_NAME];
	v[K_SVC_NS] = x->f[F_SVC_NS];
	v[K_VS_NS] = x->vs_ns;
	v[K_VS] = x->vs;
	v[K_ROUTE] = x->route;
	return key_get(s, REP_ROUTE, 0, 0, v, now);
}

/* Checks a whole message into *series (malloc'd, sorted by hash, equal
 * series summed). */
static int read_message(struct reader *r, struct fy_node *root, struct in_series **series, size_t *n_series,
			uint64_t *seq, uint64_t *period, uint64_t *interval, int64_t *cx_active, int *has_tcp)
{
	struct fy_node *n, *reqs;
	size_t cnt;

	*series = NULL;
	*n_series = 0;
	if (root == NULL || !fy_node_is_mapping(root))
		return fail(r, "a stats message is a JSON object");
	if (get_u64(member(root, "seq"), seq) != 0 || *seq == 0)
		return fail(r, "seq: want the message's number, from 1");
	*period = 0;
	if ((n = member(root, "periodMs")) != NULL && get_u64(n, period) != 0)
		return fail(r, "periodMs: want a whole number of milliseconds");
	*interval = 0;
	if ((n = member(root, "intervalMs")) != NULL && get_u64(n, interval) != 0)
		return fail(r, "intervalMs: want a whole number of milliseconds");
	n = member(root, "durationBucketsMs");
	if (n == NULL || !fy_node_is_sequence(n) || fy_node_sequence_item_count(n) != N_BOUNDS)
		return fail(r, "durationBucketsMs: want the %d bounds of Istio's duration buckets", N_BOUNDS);
	for (int b = 0; b < N_BOUNDS; b++) {
		double v;
		if (get_number(fy_node_sequence_get_by_index(n, b), &v) != 0 || v != bounds_ms[b])
			return fail(r, "durationBucketsMs[%d]: want %g, as sinewd's buckets (Istio's)", b, bounds_ms[b]);
	}
	*has_tcp = 0;
	if ((n = member(root, "tcp")) != NULL) {
		uint64_t a;
		struct fy_node *av = fy_node_is_mapping(n) ? member(n, "connectionsActive") : NULL;
		if (!fy_node_is_mapping(n) || (av != NULL && get_u64(av, &a) != 0))
			return fail(r, "tcp.connectionsActive: want a whole number");
		*has_tcp = av != NULL;
		*cx_active = av != NULL ? (int64_t)SN_MIN(a, (uint64_t)INT64_MAX) : 0;
	}
	reqs = member(root, "requests");
	if (reqs == NULL || !fy_node_is_sequence(reqs))
		return fail(r, "requests: want a list of series");
	cnt = (size_t)fy_node_sequence_item_count(reqs);
	if (cnt > SN_STATS_MAX_SERIES)
		return fail(r, "requests: %zu series, more than the %u a message may hold", cnt, SN_STATS_MAX_SERIES);
	/* routes: optional (a proxy older than route series sends none) */
	struct fy_node *routes = member(root, "routes");
	size_t rcnt = 0;
	if (routes != NULL && !fy_node_is_sequence(routes))
		return fail(r, "routes: want a list of route series");
	if (routes != NULL)
		rcnt = (size_t)fy_node_sequence_item_count(routes);
	if (rcnt > SN_STATS_MAX_SERIES)
		return fail(r, "routes: %zu series, more than the %u a message may hold", rcnt, SN_STATS_MAX_SERIES);
	if (cnt + rcnt == 0)
		return 0;
	struct in_series *v = calloc(cnt + rcnt, sizeof(*v));
	if (v == NULL)
		return SN_ENOMEM;
	struct fy_node *it;
	void *iter = NULL;
	size_t i = 0;
	while ((it = fy_node_sequence_iterate(reqs, &iter)) != NULL && i < cnt) {
		int rc = read_series(r, it, i, &v[i]);
		if (rc != 0) {
			free(v);
			return rc;
		}
		i++;
	}
	iter = NULL;
	for (size_t j = 0; routes != NULL && (it = fy_node_sequence_iterate(routes, &iter)) != NULL && j < rcnt; j++) {
		int rc = read_route(r, it, j, &v[i]);
		if (rc != 0) {
			free(v);
			return rc;
		}
		i++;
	}
	qsort(v, i, sizeof(*v), cmp_series);
	size_t out = 0;
	for (size_t k = 0; k < i; k++) {
		/* The same labels twice: one series (a proxy sums its workers'). */
		if (out > 0 && v[out - 1].hash == v[k].hash) {
			v[out - 1].count += v[k].count;
			v[out - 1].ok += v[k].ok;
			for (int b = 0; b < N_BUCKETS; b++)
				v[out - 1].dur[b] += v[k].dur[b];
			continue;
		}
		v[out++] = v[k];
	}
	*series = v;
	*n_series = out;
	return 0;
}

int sn_stats_ingest(struct sn_stats *s, struct sn_stats_proxy *p, struct fy_node *root, uint64_t now_ms,
		    struct sn_stats_result *res)
{
	struct reader r = { res->error, sizeof(res->error) };
	struct in_series *v;
	struct acc *accs = NULL;
	size_t n, n_acc = 0;
	uint64_t seq = 0, period = 0, interval = 0;
	int64_t cx_active = 0;
	int has_tcp = 0, rc;

	memset(res, 0, sizeof(*res));
	rc = read_message(&r, root, &v, &n, &seq, &period, &interval, &cx_active, &has_tcp);
	if (rc != 0) {
		if (rc == SN_ENOMEM)
			snprintf(res->error, sizeof(res->error), "sinewd ran out of memory reading it");
		s->rejected++;
		return rc;
	}
	accs = n > 0 ? calloc(n, sizeof(*accs)) : NULL;
	if (n > 0 && accs == NULL) {
		free(v);
		snprintf(res->error, sizeof(res->error), "sinewd ran out of memory reading it");
		s->rejected++;
		return SN_ENOMEM;
	}
	sweep(s, now_ms);
	s->messages++;
	s->epoch++;
	res->series = n;

	/* Count from this message, or only take its counts as the start. */
	int count_all = 0;
	if (p->seq == 0 || seq <= p->seq || p->rebase) {
		if (seq <= p->seq || p->rebase)
			proxy_drop_baselines(s, p);   /* a new process with this id, or records lost */
		count_all = seq == 1;
		res->baseline = !count_all;
		p->rebase = 0;
		p->lossy = 0;
	}
	int baseline_only = res->baseline;

	for (size_t i = 0; i < n; i++) {
		const struct in_series *x = &v[i];
		struct baseline *b = base_find(p, x->hash);
		int known = b != NULL && b->hash == x->hash;
		uint64_t d = x->count, dd[N_BUCKETS], okd = x->ok;
		int count = !baseline_only && (known || !p->lossy || count_all);

		int fresh = 1;
		if (known && x->count >= b->count) {
			uint64_t sum = 0;
			d = x->count - b->count;
			okd = (uint32_t)((uint32_t)x->ok - b->ok);
			for (int k = 0; k < N_BUCKETS; k++) {
				dd[k] = (uint32_t)((uint32_t)x->dur[k] - b->dur[k]);
				sum += dd[k];
			}
			/* buckets that do not add up to the count moved backwards
			 * (or more successes than requests): as a count that went
			 * down, a restart */
			fresh = sum != d || okd > d;
		}
		if (fresh) {
			/* new, or counting from zero again (a series restarted) */
			d = x->count;
			okd = x->ok;
			for (int k = 0; k < N_BUCKETS; k++)
				dd[k] = x->dur[k];
		}
		if (!known) {
			b = base_put(s, p, x->hash);
			if (b == NULL) {
				/* Not remembered, so never counted: counting its whole
				 * history later, once there is room, would be wrong. */
				p->lossy = 1;
				res->untracked++;
				s->untracked_series++;
				continue;
			}
		}
		b->count = x->count;
		b->ok = (uint32_t)x->ok;
		for (int k = 0; k < N_BUCKETS; k++)
			b->dur[k] = (uint32_t)x->dur[k];
		if (!count || d == 0)
			continue;
		struct key *k = x->reporter == REP_ROUTE ? route_key(s, p, x, now_ms) : series_key(s, x, now_ms);
		if (k == NULL) {
			res->untracked++;
			s->untracked_series++;
			continue;
		}
		if (k->epoch != s->epoch) {
			k->epoch = s->epoch;
			k->acc = n_acc++;
			accs[k->acc].k = k;
		}
		struct acc *a = &accs[k->acc];
		a->ok += okd;
		a->failed += d - okd;
		for (int q = 0; q < N_BUCKETS; q++)
			a->dur[q] += dd[q];
		if (x->reporter != REP_ROUTE) {
			key_set_principal(s, k, &k->src_principal, x->f[F_SRC_PRINCIPAL]);
			key_set_principal(s, k, &k->dst_principal, x->f[F_DST_PRINCIPAL]);
		}
		res->counted++;
	}

	/* The differences accrued over periodMs up to now (at most the hour). */
	struct spread sp = { .res = s->lim.resolution_ms };
	period = SN_MIN(period, (uint64_t)SN_STATS_RETENTION_MS);
	period = SN_MIN(period, now_ms);
	sp.from = now_ms - period;
	sp.span = period;
	sp.t0 = slot_of(s, sp.from);
	sp.t1 = slot_of(s, now_ms);
	uint32_t min_t = oldest_kept(s, now_ms);
	for (size_t i = 0; i < n_acc; i++) {
		/* slot counters are 32-bit: one message adds at most that */
		accs[i].ok = SN_MIN(accs[i].ok, (uint64_t)UINT32_MAX);
		accs[i].failed = SN_MIN(accs[i].failed, (uint64_t)UINT32_MAX);
		for (int b = 0; b < N_BUCKETS; b++)
			accs[i].dur[b] = SN_MIN(accs[i].dur[b], (uint64_t)UINT32_MAX);
		spread_acc(s, &accs[i], &sp, min_t);
	}
	p->seq = seq;
	p->last_report_ms = now_ms;
	if (interval > 0)
		p->interval_ms = (uint32_t)SN_MIN(interval, (uint64_t)SN_STATS_RETENTION_MS);
	if (has_tcp)
		p->cx_active = cx_active;
	free(accs);
	free(v);
	return 0;
}

int sn_stats_ingest_json(struct sn_stats *s, struct sn_stats_proxy *p, const char *text, size_t len,
			 uint64_t now_ms, struct sn_stats_result *res)
{
	struct fy_document *doc;
	int rc;

	memset(res, 0, sizeof(*res));
	if (!sn_utf8_valid(text, len)) {
		snprintf(res->error, sizeof(res->error), "the message is not UTF-8");
		s->rejected++;
		return SN_EINVAL;
	}
	doc = sn_json_parse(text, len);
	if (doc == NULL || fy_document_root(doc) == NULL || !fy_node_is_mapping(fy_document_root(doc))) {
		if (doc != NULL)
			fy_document_destroy(doc);
		snprintf(res->error, sizeof(res->error), "the message is not a JSON object");
		s->rejected++;
		return SN_EINVAL;
	}
	rc = sn_stats_ingest(s, p, fy_document_root(doc), now_ms, res);
	fy_document_destroy(doc);
	return rc;
}

/* ---- querying ---------------------------------------------------------------- */

int sn_stats_parse_resource(const char *v, enum sn_stats_resource *out)
{
	static const struct {
		const char *name;
		enum sn_stats_resource r;
	} names[] = {
		{ "deploy", SN_STATS_DEPLOYMENT }, { "deployment", SN_STATS_DEPLOYMENT },
		{ "deployments", SN_STATS_DEPLOYMENT }, { "workload", SN_STATS_DEPLOYMENT },
		{ "workloads", SN_STATS_DEPLOYMENT }, { "svc", SN_STATS_SERVICE }, { "service", SN_STATS_SERVICE },
		{ "services", SN_STATS_SERVICE }, { "ns", SN_STATS_NAMESPACE }, { "namespace", SN_STATS_NAMESPACE },
		{ "namespaces", SN_STATS_NAMESPACE },
	};
	for (size_t i = 0; i < SN_ARRAY_LEN(names); i++)
		if (!strcmp(v, names[i].name)) {
			*out = names[i].r;
			return 0;
		}
	return SN_EINVAL;
}

/* Requests of a window, summed. */
struct tally {
	uint64_t requests, ok;
	uint64_t reached;            /* not answered by the client's own proxy */
	uint64_t mtls;               /* of those, over mutual TLS */
	uint64_t dur[N_BUCKETS];
};

static void tally_add(struct tally *t, const struct tally *x)
{
	t->requests += x->requests;
	t->ok += x->ok;
	t->reached += x->reached;
	t->mtls += x->mtls;
	for (int b = 0; b < N_BUCKETS; b++)
		t->dur[b] += x->dur[b];
}

/* The slots of the window: [t0, t1). */
struct window {
	uint32_t t0, t1;
	double seconds;
};

/* The window ends where every proxy has reported: the slowest one's
 * interval (and a little) before now, at a slot boundary. An interval
 * past a minute counts as a minute: one slow reporter must not push
 * everyone's window back. */
static void window_of(const struct sn_stats *s, uint32_t window_ms, uint64_t now, struct window *w)
{
	uint64_t lag = 0;
	uint32_t n = (window_ms + s->lim.resolution_ms - 1) / s->lim.resolution_ms;

	for (const struct sn_stats_proxy *p = s->proxies; p != NULL; p = p->next)
		if (p->seq > 0 && now - p->last_report_ms < SN_STATS_RETENTION_MS)
			lag = SN_MAX(lag, (uint64_t)SN_MIN(p->interval_ms, LAG_MAX_MS));
	if (lag == 0)
		lag = s->lim.resolution_ms;
	lag += LAG_SLACK_MS;
	w->t1 = now > lag ? slot_of(s, now - lag) : 0;
	w->t0 = w->t1 > n ? w->t1 - n : 0;
	w->seconds = (double)n * s->lim.resolution_ms / 1000.0;
}

static int cmp_slot_t(const void *key, const void *elem)
{
	uint32_t t = *(const uint32_t *)key, e = ((const struct slot *)elem)->t;
	return (t > e) - (t < e);
}

static void key_tally(const struct key *k, const struct window *w, struct tally *t)
{
	memset(t, 0, sizeof(*t));
	/* slots are sorted: find the first in the window */
	size_t lo = sn_lower_bound(&k->slots[k->start], k->n, sizeof(*k->slots), &w->t0, cmp_slot_t, NULL);
	for (size_t i = lo; i < k->n && k->slots[k->start + i].t < w->t1; i++) {
		const struct slot *sl = &k->slots[k->start + i];
		t->ok += sl->ok;
		t->requests += (uint64_t)sl->ok + sl->failed;
		for (int b = 0; b < N_BUCKETS; b++)
			t->dur[b] += sl->dur[b];
	}
	if (!k->unrouted)
		t->reached = t->requests;
	if (k->security == SEC_MTLS)
		t->mtls = t->reached;
}

/* A latency quantile of a tally's buckets (sn_quantile_cumulative, as
 * the CLI's views from Prometheus compute it). NaN without observations. */
static double quantile(const uint64_t *dur, double q)
{
	double le[N_BUCKETS], cum[N_BUCKETS], c = 0;
	for (int b = 0; b < N_BUCKETS; b++) {
		le[b] = b < N_BOUNDS ? bounds_ms[b] : INFINITY;
		c += (double)dur[b];
		cum[b] = c;
	}
	return sn_quantile_cumulative(le, cum, N_BUCKETS, q);
}


/* ---- rows --------------------------------------------------------------- */

struct row {
	const char *ns, *name;       /* borrowed from keys and proxy records */
	uint64_t hash;
	struct tally in;             /* reported by the destination's proxies */
	struct tally out;            /* reported by clients' proxies (what reached it) */
	struct tally unrouted;       /* clients' proxies answered before picking an endpoint */
	uint32_t connected, seen;    /* its proxies: connected now; connected or reporting in the window */
	int64_t tcp;
	int pseudo;                  /* deployment view: only unrouted requests nobody took (namespace sums) */
};

struct rows {
	struct row *v;
	size_t n, cap;
	size_t *index;               /* row + 1; 0 empty */
	size_t index_mask;
	int failed;
};

static uint64_t pair_hash(const char *a, const char *b)
{
	return hash_bytes(hash_bytes(1469598103934665603ull, a, strlen(a)), b, strlen(b));
}

static int rows_grow(struct rows *rs)
{
	size_t ncap = rs->cap ? rs->cap * 2 : 64, isize = 2 * ncap;
	struct row *nv = realloc(rs->v, ncap * sizeof(*nv));
	if (nv == NULL)
		return -1;
	rs->v = nv;
	size_t *ni = calloc(isize, sizeof(*ni));
	if (ni == NULL)
		return -1;
	free(rs->index);
	rs->index = ni;
	rs->index_mask = isize - 1;
	rs->cap = ncap;
	for (size_t r = 0; r < rs->n; r++) {
		size_t i = rs->v[r].hash & rs->index_mask;
		while (rs->index[i] != 0)
			i = (i + 1) & rs->index_mask;
		rs->index[i] = r + 1;
	}
	return 0;
}

/* The row (ns, name), made if missing and make; NULL if absent (or no
 * memory: rs->failed). */
static struct row *row_get(struct rows *rs, const char *ns, const char *name, int make)
{
	uint64_t h = pair_hash(ns, name);
	size_t i;

	if (rs->cap > 0)
		for (i = h & rs->index_mask; rs->index[i] != 0; i = (i + 1) & rs->index_mask) {
			struct row *r = &rs->v[rs->index[i] - 1];
			if (r->hash == h && !strcmp(r->ns, ns) && !strcmp(r->name, name))
				return r;
		}
	if (!make)
		return NULL;
	if (rs->n == rs->cap && rows_grow(rs) != 0) {
		rs->failed = 1;
		return NULL;
	}
	for (i = h & rs->index_mask; rs->index[i] != 0; i = (i + 1) & rs->index_mask)
		;
	struct row *r = &rs->v[rs->n];
	memset(r, 0, sizeof(*r));
	r->ns = ns;
	r->name = name;
	r->hash = h;
	rs->index[i] = ++rs->n;
	return r;
}

static void rows_free(struct rows *rs)
{
	free(rs->v);
	free(rs->index);
}

/* Rows per workload (resource deployment) or per service, with the
 * proxies of each and what the window holds for it:
 * - its own proxies' inbound series (reporter destination) when it has
 *   proxies, else what its clients' proxies reported of requests that
 *   reached it (Linkerd's stat falls back the same way);
 * - plus requests its clients' proxies answered themselves before
 *   picking an endpoint (fault aborts, no healthy endpoint, overflow),
 *   which never reached it: in a Sinew mesh a proxy's workload is its
 *   service, so these go to the workload named as their service. */
static void build_rows(struct sn_stats *s, int by_service, const struct window *w, struct rows *rs)
{
	uint64_t since = (uint64_t)w->t0 * s->lim.resolution_ms;

	for (const struct sn_stats_proxy *p = s->proxies; p != NULL; p = p->next) {
		int in_window = p->seq > 0 && p->last_report_ms >= since;
		if (p->links == 0 && !in_window)
			continue;
		struct row *r = row_get(rs, p->ns, by_service ? proxy_service(p) : p->workload, 1);
		if (r == NULL)
			return;
		r->seen++;
		if (p->links > 0) {
			r->connected++;
			r->tcp += p->cx_active;
		}
	}
	for (const struct key *k = s->lru_old; k != NULL; k = k->newer) {
		struct tally t;
		if (k->reporter == REP_ROUTE)
			continue;
		key_tally(k, w, &t);
		if (t.requests == 0)
			continue;
		const char *ns, *name;
		if (k->reporter == REP_SOURCE && k->unrouted) {
			ns = k->s[K_SVC_NS];
			name = by_service ? k->s[K_SVC_NAME] : service_workload(s, ns, k->s[K_SVC_NAME]);
		} else if (by_service) {
			ns = k->s[K_SVC_NS];
			name = k->s[K_SVC_NAME];
		} else {
			ns = k->s[K_DST_NS];
			name = k->s[K_DST_WL];
		}
		struct row *r = row_get(rs, ns, name, 1);
		if (r == NULL)
			return;
		if (k->reporter == REP_DESTINATION)
			tally_add(&r->in, &t);
		else if (k->unrouted)
			tally_add(&r->unrouted, &t);
		else
			tally_add(&r->out, &t);
	}
	/* A workload view cannot name the workload of an unrouted request
	 * without a proxy of that name: it counts in its namespace only. */
	for (size_t i = 0; !by_service && i < rs->n; i++) {
		struct row *r = &rs->v[i];
		if (r->seen == 0 && r->in.requests == 0 && r->out.requests == 0)
			r->pseudo = 1;
	}
}

/* What a row shows: its proxies' inbound view when it has proxies. */
static void row_total(const struct row *r, struct tally *t)
{
	*t = r->seen > 0 || r->in.requests > 0 ? r->in : r->out;
	tally_add(t, &r->unrouted);
}

static int cmp_row(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	int c = strcmp(x->ns, y->ns);
	return c ? c : strcmp(x->name, y->name);
}

static void out_row(struct sn_out *o, const char *ns, const char *name, const struct tally *t, uint32_t connected,
		    uint32_t seen, int64_t tcp, const char *reported_by, const struct window *w)
{
	const struct sn_stats_row_json r = {
		.ns = ns, .name = name, .connected = connected, .seen = seen,
		.success = t->requests ? (double)t->ok / (double)t->requests : NAN,
		.requests = t->requests, .rps = (double)t->requests / w->seconds,
		.p50 = quantile(t->dur, 0.5), .p95 = quantile(t->dur, 0.95), .p99 = quantile(t->dur, 0.99),
		.tcp = tcp,
		/* of the requests that went anywhere: a fault abort used no connection */
		.mtls_share = t->reached ? (double)t->mtls / (double)t->reached : NAN,
		.reported_by = reported_by,
	};
	sn_stats_json_row(o, &r);
}

void sn_stats_render_stat(struct sn_stats *s, const struct sn_stats_query *q, uint64_t now_ms, struct sn_out *o)
{
	struct rows rs = { 0 };
	struct window w;
	size_t shown = 0;

	sweep(s, now_ms);
	window_of(s, q->window_ms ? q->window_ms : SN_STATS_WINDOW_DEFAULT_MS, now_ms, &w);
	build_rows(s, q->resource == SN_STATS_SERVICE, &w, &rs);
	if (rs.failed) {
		o->failed = 1;
		rows_free(&rs);
		return;
	}
	sn_out_cstr(o, "[");
	if (q->resource == SN_STATS_NAMESPACE) {
		/* namespaces: their workloads summed (each with its fallback) */
		struct rows ns = { 0 };
		for (size_t i = 0; i < rs.n; i++) {
			struct row *r = &rs.v[i];
			struct row *n = row_get(&ns, r->ns, r->ns, 1);
			struct tally t;
			if (n == NULL)
				break;
			row_total(r, &t);
			tally_add(&n->in, &t);
			n->connected += r->connected;
			n->seen += SN_MAX(r->connected, r->seen);
			n->tcp += r->tcp;
		}
		if (ns.failed)
			o->failed = 1;
		if (ns.n > 0)
			qsort(ns.v, ns.n, sizeof(*ns.v), cmp_row);
		for (size_t i = 0; i < ns.n; i++) {
			const struct row *r = &ns.v[i];
			if ((q->namespace_ != NULL && strcmp(r->ns, q->namespace_) != 0) ||
			    (q->name != NULL && strcmp(r->ns, q->name) != 0))
				continue;
			if (shown++)
				sn_out_cstr(o, ",");
			out_row(o, r->ns, r->ns, &r->in, r->connected, r->seen, r->tcp, "destination", &w);
		}
		rows_free(&ns);
	} else {
		if (rs.n > 0)
			qsort(rs.v, rs.n, sizeof(*rs.v), cmp_row);
		for (size_t i = 0; i < rs.n; i++) {
			const struct row *r = &rs.v[i];
			struct tally t;
			if (r->pseudo || (q->namespace_ != NULL && strcmp(r->ns, q->namespace_) != 0) ||
			    (q->name != NULL && strcmp(r->name, q->name) != 0))
				continue;
			row_total(r, &t);
			if (shown++)
				sn_out_cstr(o, ",");
			out_row(o, r->ns, r->name, &t, r->connected, r->seen, r->tcp,
				r->seen > 0 || r->in.requests > 0 ? "destination" : "source", &w);
		}
	}
	sn_out_cstr(o, "]");
	rows_free(&rs);
}

/* ---- edges --------------------------------------------------------------- */

struct edge {
	const char *src_ns, *src, *dst_ns, *dst;
	uint64_t requests, reached, reached_mtls;
	const char *client_id, *server_id;
	uint64_t client_at, server_at;   /* touched time of the key the identity came from */
};

static int cmp_edge(const void *a, const void *b)
{
	const struct edge *x = a, *y = b;
	int c = strcmp(x->src_ns, y->src_ns);
	if (c == 0)
		c = strcmp(x->src, y->src);
	if (c == 0)
		c = strcmp(x->dst_ns, y->dst_ns);
	return c ? c : strcmp(x->dst, y->dst);
}

struct edges {
	struct edge *v;
	size_t n, cap;
	size_t *index;               /* edge + 1; 0 empty */
	size_t index_mask;
};

static uint64_t edge_hash(const char *a, const char *b, const char *c, const char *d)
{
	return hash_bytes(pair_hash(a, b), c, strlen(c)) ^ hash_bytes(0, d, strlen(d));
}

static int edge_same(const struct edge *e, const char *a, const char *b, const char *c, const char *d)
{
	return !strcmp(e->src_ns, a) && !strcmp(e->src, b) && !strcmp(e->dst_ns, c) && !strcmp(e->dst, d);
}

/* The edge between two workloads, made if missing; NULL without memory. */
static struct edge *edge_get(struct edges *es, const char *a, const char *b, const char *c, const char *d)
{
	uint64_t h = edge_hash(a, b, c, d);
	size_t i;

	if (es->cap > 0)
		for (i = h & es->index_mask; es->index[i] != 0; i = (i + 1) & es->index_mask)
			if (edge_same(&es->v[es->index[i] - 1], a, b, c, d))
				return &es->v[es->index[i] - 1];
	if (es->n == es->cap) {
		size_t ncap = es->cap ? es->cap * 2 : 32;
		struct edge *nv = realloc(es->v, ncap * sizeof(*nv));
		size_t *ni = nv != NULL ? calloc(2 * ncap, sizeof(*ni)) : NULL;
		if (nv != NULL)
			es->v = nv;
		if (ni == NULL)
			return NULL;
		free(es->index);
		es->index = ni;
		es->index_mask = 2 * ncap - 1;
		es->cap = ncap;
		for (size_t e = 0; e < es->n; e++) {
			const struct edge *x = &es->v[e];
			for (i = edge_hash(x->src_ns, x->src, x->dst_ns, x->dst) & es->index_mask; es->index[i] != 0;
			     i = (i + 1) & es->index_mask)
				;
			es->index[i] = e + 1;
		}
	}
	for (i = h & es->index_mask; es->index[i] != 0; i = (i + 1) & es->index_mask)
		;
	struct edge *e = &es->v[es->n];
	memset(e, 0, sizeof(*e));
	e->src_ns = a;
	e->src = b;
	e->dst_ns = c;
	e->dst = d;
	es->index[i] = ++es->n;
	return e;
}

void sn_stats_render_edges(struct sn_stats *s, const char *ns, uint32_t window_ms, uint64_t now_ms,
			   struct sn_out *o)
{
	struct window w;
	struct edges es = { 0 };
	struct rows workloads = { 0 };

	sweep(s, now_ms);
	window_of(s, window_ms ? window_ms : SN_STATS_WINDOW_DEFAULT_MS, now_ms, &w);
	for (const struct sn_stats_proxy *p = s->proxies; p != NULL; p = p->next)
		row_get(&workloads, p->ns, p->workload, 1);
	/* From the clients' proxies: they know both ends (and the server's
	 * identity, proven by the handshake). */
	for (const struct key *k = s->lru_old; k != NULL && !workloads.failed; k = k->newer) {
		struct tally t;
		if (k->reporter != REP_SOURCE)
			continue;
		key_tally(k, &w, &t);
		if (t.requests == 0)
			continue;
		const char *dns = k->s[K_DST_NS], *dst = k->s[K_DST_WL];
		if (k->unrouted) {
			/* answered by the client's proxy: the service's workload, if it has proxies */
			dns = k->s[K_SVC_NS];
			dst = service_workload(s, dns, k->s[K_SVC_NAME]);
			if (row_get(&workloads, dns, dst, 0) == NULL)
				continue;
		}
		if (ns != NULL && strcmp(k->s[K_SRC_NS], ns) != 0 && strcmp(dns, ns) != 0)
			continue;
		struct edge *e = edge_get(&es, k->s[K_SRC_NS], k->s[K_SRC_WL], dns, dst);
		if (e == NULL) {
			o->failed = 1;
			break;
		}
		e->requests += t.requests;
		e->reached += t.reached;
		e->reached_mtls += t.mtls;
		if (k->src_principal != NULL && k->touched_ms >= e->client_at) {
			e->client_id = k->src_principal;
			e->client_at = k->touched_ms;
		}
		if (k->dst_principal != NULL && k->touched_ms >= e->server_at) {
			e->server_id = k->dst_principal;
			e->server_at = k->touched_ms;
		}
	}
	if (workloads.failed)
		o->failed = 1;
	rows_free(&workloads);
	struct edge *v = es.v;
	size_t n = es.n, shown = 0;
	free(es.index);
	if (n > 0)
		qsort(v, n, sizeof(*v), cmp_edge);
	sn_out_cstr(o, "[");
	for (size_t i = 0; i < n; i++) {
		const struct edge *e = &v[i];
		if (shown++)
			sn_out_cstr(o, ",");
		const struct sn_stats_edge_json ej = {
			.src_ns = e->src_ns, .src = e->src, .dst_ns = e->dst_ns, .dst = e->dst,
			.client_id = e->client_id, .server_id = e->server_id,
			/* secured: every request that reached the destination went
			 * over mutual TLS */
			.mtls = e->reached > 0 && e->reached_mtls == e->reached,
			.requests = e->requests, .rps = (double)e->requests / w.seconds,
		};
		sn_stats_json_edge(o, &ej);
	}
	sn_out_cstr(o, "]");
	free(v);
}

/* ---- routes --------------------------------------------------------------- */

/* Orders route keys into rows: by client (the deployment view), then
 * service, then VirtualService and route, [DEFAULT] last. 0: one row. */
static int cmp_route_key(const struct key *x, const struct key *y, int by_client)
{
	static const int order[] = { K_SVC_NS, K_SVC_NAME, K_SVC };
	int c = 0;
	if (by_client && (c = strcmp(x->s[K_SRC_NS], y->s[K_SRC_NS])) == 0)
		c = strcmp(x->s[K_SRC_WL], y->s[K_SRC_WL]);
	for (size_t i = 0; c == 0 && i < SN_ARRAY_LEN(order); i++)
		c = strcmp(x->s[order[i]], y->s[order[i]]);
	if (c == 0 && (x->len[K_VS] == 0) != (y->len[K_VS] == 0))
		return x->len[K_VS] == 0 ? 1 : -1;
	if (c == 0 && (c = strcmp(x->s[K_VS_NS], y->s[K_VS_NS])) == 0 && (c = strcmp(x->s[K_VS], y->s[K_VS])) == 0)
		c = strcmp(x->s[K_ROUTE], y->s[K_ROUTE]);
	return c;
}

static int cmp_route_by_client(const void *a, const void *b)
{
	return cmp_route_key(*(const struct key *const *)a, *(const struct key *const *)b, 1);
}

static int cmp_route_by_service(const void *a, const void *b)
{
	return cmp_route_key(*(const struct key *const *)a, *(const struct key *const *)b, 0);
}

static void out_route_row(struct sn_out *o, const struct key *k, int by_client, const struct tally *t,
			  const struct window *w)
{
	const struct sn_stats_route_json r = {
		.route = k->s[K_ROUTE], .vs_ns = k->s[K_VS_NS], .vs = k->len[K_VS] ? k->s[K_VS] : NULL,
		.svc_ns = k->s[K_SVC_NS], .svc_name = k->s[K_SVC_NAME], .svc_host = k->s[K_SVC],
		.client_ns = by_client ? k->s[K_SRC_NS] : NULL, .client = by_client ? k->s[K_SRC_WL] : NULL,
		.success = t->requests ? (double)t->ok / (double)t->requests : NAN,
		.requests = t->requests, .rps = (double)t->requests / w->seconds,
		.p50 = quantile(t->dur, 0.5), .p95 = quantile(t->dur, 0.95), .p99 = quantile(t->dur, 0.99),
	};
	sn_stats_json_route(o, &r);
}

void sn_stats_render_routes(struct sn_stats *s, const struct sn_stats_query *q, uint64_t now_ms, struct sn_out *o)
{
	int by_client = q->resource == SN_STATS_DEPLOYMENT;
	const struct key **v = NULL;
	size_t n = 0, cap = 0, shown = 0;
	struct window w;

	sweep(s, now_ms);
	window_of(s, q->window_ms ? q->window_ms : SN_STATS_WINDOW_DEFAULT_MS, now_ms, &w);
	for (const struct key *k = s->lru_old; k != NULL; k = k->newer) {
		if (k->reporter != REP_ROUTE)
			continue;
		const char *ns = by_client ? k->s[K_SRC_NS] : k->s[K_SVC_NS];
		const char *name = by_client ? k->s[K_SRC_WL] : k->s[K_SVC_NAME];
		if ((q->namespace_ != NULL && strcmp(ns, q->namespace_) != 0) ||
		    (q->name != NULL && strcmp(name, q->name) != 0))
			continue;
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 64;
			const struct key **nv = realloc(v, ncap * sizeof(*nv));
			if (nv == NULL) {
				o->failed = 1;
				free(v);
				return;
			}
			v = nv;
			cap = ncap;
		}
		v[n++] = k;
	}
	if (n > 0)
		qsort(v, n, sizeof(*v), by_client ? cmp_route_by_client : cmp_route_by_service);
	sn_out_cstr(o, "[");
	/* keys of one row are adjacent: they differ only by client */
	for (size_t i = 0; i < n;) {
		struct tally t = { 0 }, kt;
		size_t j = i;
		for (; j < n && cmp_route_key(v[i], v[j], by_client) == 0; j++) {
			key_tally(v[j], &w, &kt);
			tally_add(&t, &kt);
		}
		if (shown++)
			sn_out_cstr(o, ",");
		out_route_row(o, v[i], by_client, &t, &w);
		i = j;
	}
	sn_out_cstr(o, "]");
	free(v);
}
