/* Consistent hashing (DestinationRule loadBalancer.consistentHash): a
 * request's key -- a header, a cookie, the source IP or a query
 * parameter -- picks the same endpoint every time, and when an endpoint
 * goes or comes only about 1/N of the keys move. Two ways, as Envoy:
 *
 * - ringHash (the default): each endpoint is placed at ring_size/N
 *   points (rounded up to a power of two) of a 64-bit ring, by the hash
 *   of its address and the point's number; a key goes to the first point
 *   at or after its hash. minimumRingSize sets the points (default 1024).
 * - maglev: a table of table_size slots (a prime, default 65537) filled
 *   by each endpoint's permutation in turn (Google's Maglev); a key goes
 *   to slot hash % size. Fewer keys move than on a ring, in a fixed table.
 *
 * Endpoints outlier detection took out are skipped (the next point or
 * slot). A request without the key is balanced at random. The table
 * belongs to the worker's cluster state, built when a snapshot is taken. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

/* Eight bytes at a time (a JWT of 300 bytes is hashed on every request
 * of a RequestAuthentication's workload, filter_jwt.c), each word mixed
 * by a multiply and a fold of its high half into the low, then a 64-bit
 * finalizer (splitmix64's) so close keys spread. Not a stable format:
 * only this process's tables and caches use it. */
uint64_t sn_hash64(const void *p, size_t n, uint64_t seed)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ull ^ seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15ull);
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, s + i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	uint64_t t = 0;
	for (size_t k = 0; i + k < n; k++)
		t |= (uint64_t)s[i + k] << (8 * k);
	h = (h ^ t) * 0xff51afd7ed558ccdull;
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}

struct point {
	uint64_t hash;
	uint32_t ep;
};

static int cmp_point(const void *a, const void *b)
{
	const struct point *x = a, *y = b;
	return x->hash < y->hash ? -1 : x->hash > y->hash ? 1 : (x->ep > y->ep) - (x->ep < y->ep);
}

int sn_lb_hash_build(const struct sn_cluster *c, struct sn_cluster_state *cs)
{
	size_t n = c->n_endpoints;
	if ((c->lb != SN_LB_RING_HASH && c->lb != SN_LB_MAGLEV) || n == 0)
		return 0;
	if (c->lb == SN_LB_RING_HASH) {
		/* Points per endpoint: ring_size/N rounded up to a power of two,
		 * so that an endpoint more or less rarely changes the others'
		 * points -- when it does not, only the keys of the endpoint that
		 * came or went move. The ring has at least ring_size points. */
		size_t per = 1;
		while (per * n < c->hash.ring_size)
			per *= 2;
		struct point *ring = calloc(n * per, sizeof(*ring));
		if (ring == NULL)
			return SN_ENOMEM;
		for (size_t i = 0; i < n; i++)
			for (size_t k = 0; k < per; k++) {
				char key[96];
				int kl = snprintf(key, sizeof(key), "%s_%zu", c->endpoints[i].address, k);
				ring[i * per + k] = (struct point){ sn_hash64(key, (size_t)kl, 0), (uint32_t)i };
			}
		qsort(ring, n * per, sizeof(*ring), cmp_point);
		cs->ring = ring;
		cs->ring_n = n * per;
		return 0;
	}
	/* Maglev: each endpoint's preference list is offset + j*skip mod M. */
	size_t m = c->hash.table_size;
	uint32_t *table = malloc(m * sizeof(*table));
	uint64_t *next = calloc(n, sizeof(*next)), *offset = calloc(n, sizeof(*offset)), *skip = calloc(n, sizeof(*skip));
	if (table == NULL || next == NULL || offset == NULL || skip == NULL) {
		free(table), free(next), free(offset), free(skip);
		return SN_ENOMEM;
	}
	for (size_t i = 0; i < m; i++)
		table[i] = UINT32_MAX;
	for (size_t i = 0; i < n; i++) {
		const char *a = c->endpoints[i].address;
		offset[i] = sn_hash64(a, strlen(a), 0xa1) % m;
		skip[i] = sn_hash64(a, strlen(a), 0xb2) % (m - 1) + 1;
	}
	for (size_t filled = 0; filled < m;)
		for (size_t i = 0; i < n && filled < m; i++) {
			uint64_t slot;
			do
				slot = (offset[i] + next[i]++ * skip[i]) % m;
			while (table[slot] != UINT32_MAX);
			table[slot] = (uint32_t)i;
			filled++;
		}
	free(next), free(offset), free(skip);
	cs->maglev = table;
	cs->maglev_n = m;
	return 0;
}

void sn_lb_hash_free(struct sn_cluster_state *cs)
{
	free(cs->ring);
	free(cs->maglev);
	free(cs->wrr);
	cs->ring = NULL;
	cs->maglev = NULL;
	cs->wrr = NULL;
	cs->ring_n = cs->maglev_n = 0;
}

int sn_lb_hash_pick(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs, uint64_t key)
{
	int skip_out = sn_outlier_active(w, c, cs);
	if (cs->ring != NULL) {
		size_t lo = 0, hi = cs->ring_n;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (cs->ring[mid].hash < key)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (size_t k = 0; k < cs->ring_n; k++) {
			uint32_t ep = cs->ring[(lo + k) % cs->ring_n].ep;
			if (!skip_out || !sn_outlier_ejected(cs, ep))
				return (int)ep;
		}
	} else if (cs->maglev != NULL) {
		for (size_t k = 0; k < cs->maglev_n; k++) {
			uint32_t ep = cs->maglev[(key + k) % cs->maglev_n];
			if (!skip_out || !sn_outlier_ejected(cs, ep))
				return (int)ep;
		}
	}
	return sn_lb_pick(w, c, cs);
}

int sn_lb_hash_key(const struct sn_hash_policy *h, const struct sn_h1_request *rq, const char *peer, uint64_t *key)
{
	struct sn_str v = { NULL, 0 };
	switch (h->on) {
	case SN_HASH_HEADER: {
		int i = sn_h1_find_header(rq->headers, rq->num_headers, sn_str_make(h->name, strlen(h->name)), 0);
		if (i >= 0)
			v = rq->headers[i].value;
		else if (!strcmp(h->name, ":authority") || !strcmp(h->name, "host"))
			v = rq->authority;
		break;
	}
	case SN_HASH_COOKIE:
		v = sn_http_cookie(rq->headers, rq->num_headers, h->name);
		break;
	case SN_HASH_QUERY:
		v = sn_http_query_param(rq->path, h->name);
		break;
	case SN_HASH_SOURCE_IP: {
		/* "ip:port" or "[v6]:port": the address only */
		const char *colon = peer ? strrchr(peer, ':') : NULL;
		if (colon != NULL)
			v = sn_str_make(peer[0] == '[' ? peer + 1 : peer,
					(size_t)(colon - peer) - (peer[0] == '[' ? 2 : 0));
		break;
	}
	}
	if (v.p == NULL)
		return 0;
	*key = sn_hash64(v.p, v.len, 0);
	return 1;
}
