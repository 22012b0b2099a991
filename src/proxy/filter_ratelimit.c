/* Linkerd's Server and HTTPLocalRateLimitPolicy on the inbound path
 * (docs/configuration.md, "Rate limits"), as a filter after authorization.
 *
 * A request to a port a Server names is judged by the Server's
 * accessPolicy first (Linkerd's default deny; all-authenticated wants a
 * mesh identity; cluster-* a source in Linkerd's default cluster
 * networks), then by its rate limit: the total, the client's identity
 * (every client without one counts as one), or the override naming the
 * client's ServiceAccount in place of the identity limit.
 *
 * The limits are GCRA (as Linkerd), per proxy process: each bucket keeps a
 * theoretical arrival time; a request is let through when it is at most
 * one second ahead of now (a burst of requestsPerSecond), and moves it by
 * 1/requestsPerSecond. Buckets live in one table for all workers, behind
 * one mutex, bounded: RL_SLOTS slots, probing RL_PROBE of them, the
 * bucket furthest in the past giving way when full (it is the one that
 * would let its next request through anyway). A refusal is 429 with
 * sinew-error: rate_limited, x-ratelimit-limit, x-ratelimit-remaining: 0,
 * x-ratelimit-reset and retry-after (seconds). */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/identity.h"
#include "sinew/log.h"
#include "sinew/loop.h"
#include "filter.h"

#define RL_SLOTS 1024
#define RL_PROBE 16
#define RL_KEY 200
#define NS_PER_S 1000000000ull

struct rl_slot {
	uint64_t hash;               /* 0: empty */
	uint64_t tat;                /* theoretical arrival time, ns (monotonic) */
	char key[RL_KEY];
};

static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rl_slot *rl_table;   /* allocated at the first limited request */

/* The bucket of key, found or taken; NULL without memory. Under rl_lock. */
static struct rl_slot *rl_slot(const char *key)
{
	if (rl_table == NULL && (rl_table = calloc(RL_SLOTS, sizeof(*rl_table))) == NULL)
		return NULL;
	uint64_t h = sn_hash64(key, strlen(key), 0x726cu) | 1;
	struct rl_slot *victim = NULL;
	for (size_t i = 0; i < RL_PROBE; i++) {
		struct rl_slot *s = &rl_table[(h + i) & (RL_SLOTS - 1)];
		if (s->hash == 0) {          /* slots are never emptied: not further on */
			victim = s;
			break;
		}
		if (s->hash == h && !strncmp(s->key, key, RL_KEY - 1))
			return s;
		if (victim == NULL || s->tat < victim->tat)
			victim = s;
	}
	victim->hash = h;
	victim->tat = 0;
	snprintf(victim->key, sizeof(victim->key), "%s", key);
	return victim;
}

/* How long until a request of a bucket at rps would go (0: now). */
static uint64_t rl_wait(const struct rl_slot *s, uint32_t rps, uint64_t now)
{
	uint64_t t = NS_PER_S / rps;
	uint64_t tat = s->tat > now ? s->tat : now;
	/* allowed while tat + t <= now + 1 s: at most rps at once */
	return tat + t > now + NS_PER_S ? tat + t - now - NS_PER_S : 0;
}

static void rl_take(struct rl_slot *s, uint32_t rps, uint64_t now)
{
	s->tat = (s->tat > now ? s->tat : now) + NS_PER_S / rps;
}

/* Linkerd's default clusterNetworks. */
static int in_cluster_networks(const struct sockaddr *sa)
{
	if (sa == NULL)
		return 0;
	if (sa->sa_family == AF_INET) {
		uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
		return (a >> 24) == 10 || (a & 0xffc00000u) == 0x64400000u || (a & 0xfff00000u) == 0xac100000u ||
		       (a & 0xffff0000u) == 0xc0a80000u;
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)sa)->sin6_addr)) {
			struct sockaddr_in v4 = { .sin_family = AF_INET };
			memcpy(&v4.sin_addr, b + 12, 4);
			return in_cluster_networks((const struct sockaddr *)&v4);
		}
		return b[0] == 0xfd;
	}
	return 0;
}

/* "ns/sa" of a client's SPIFFE ID into buf; "" without one. */
static void client_sa(const char *peer_id, char *buf, size_t size)
{
	struct sn_spiffe_id id;
	struct sn_str ns, sa;
	buf[0] = '\0';
	if (peer_id != NULL && sn_spiffe_id_parse(peer_id, strlen(peer_id), &id, NULL) == 0 &&
	    sn_spiffe_id_workload(&id, &ns, &sa) == 0)
		snprintf(buf, size, "%.*s/%.*s", (int)ns.len, ns.p, (int)sa.len, sa.p);
}

static enum sn_filter_verdict refuse_rate(struct sn_exchange *ex, const struct sn_server *sv, const char *which,
					  uint32_t rps, uint64_t wait_ns)
{
	/* the answer keeps pointers until sn_fx_answer writes it, below */
	char limit[16], reset[16];
	unsigned secs = (unsigned)((wait_ns + NS_PER_S - 1) / NS_PER_S);
	snprintf(limit, sizeof(limit), "%u", rps);
	snprintf(reset, sizeof(reset), "%u", secs ? secs : 1);
	sn_fx_answer_header(ex, "x-ratelimit-limit", limit);
	sn_fx_answer_header(ex, "x-ratelimit-remaining", "0");
	sn_fx_answer_header(ex, "x-ratelimit-reset", reset);
	sn_fx_answer_header(ex, "retry-after", reset);
	sn_metrics_add(sn_fx_worker(ex)->metrics, SN_CTR_RATE_LIMITED, 1);
	sn_fx_answer(ex, 429, "rate_limited", "sinew: rate limited by HTTPLocalRateLimitPolicy %s (%s: %u requests per "
		     "second) on Server %s", sv->rl_name, which, rps, sv->name);
	return SN_FILTER_ANSWERED;
}

const struct sn_server *sn__server_for_port(const struct sn_snapshot *s, uint16_t port)
{
	for (size_t i = 0; s != NULL && i < s->n_servers; i++)
		if (s->servers[i].port == port)
			return &s->servers[i];
	return NULL;
}

const char *sn__server_refusal(const struct sn_server *sv, const struct sn_authz_request *ar)
{
	if (sv->unenforceable != NULL)
		return "it has fields Sinew does not know, so it denies every request to its port (fail closed; "
		       "`sinew analyze` names them)";
	const char *no = NULL;
	switch (sv->access) {
	case SN_ACCESS_DENY:
		no = "its accessPolicy is deny (Linkerd's default; all-unauthenticated lets every client in)";
		break;
	case SN_ACCESS_ALL_AUTHENTICATED:
		no = ar->principal.len ? NULL : "its accessPolicy all-authenticated wants a client with a mesh identity";
		break;
	case SN_ACCESS_CLUSTER_AUTHENTICATED:
		no = ar->principal.len && in_cluster_networks(ar->source) ? NULL
		     : "its accessPolicy cluster-authenticated wants a client with a mesh identity from the cluster "
		       "networks";
		break;
	case SN_ACCESS_CLUSTER_UNAUTHENTICATED:
		no = in_cluster_networks(ar->source) ? NULL
		     : "its accessPolicy cluster-unauthenticated wants a client from the cluster networks (10.0.0.0/8, "
		       "100.64.0.0/10, 172.16.0.0/12, 192.168.0.0/16, fd00::/8)";
		break;
	case SN_ACCESS_ALL_UNAUTHENTICATED:
		break;
	}
	return no;
}

static enum sn_filter_verdict ratelimit_request(struct sn_exchange *ex)
{
	struct sn_worker *w = sn_fx_worker(ex);
	const struct sn_snapshot *s = w->snap;
	if (s == NULL || s->n_servers == 0)
		return SN_FILTER_NEXT;
	const struct sn_server *sv = sn__server_for_port(s, sn__inbound_port(ex));
	if (sv == NULL)
		return SN_FILTER_NEXT;

	struct sn_authz_request ar;
	struct sn_addr peer;
	memset(&ar, 0, sizeof(ar));
	sn__authz_peer(&ar, sn_fx_peer(ex), sn_fx_peer_id(ex), &peer);
	const char *no = sn__server_refusal(sv, &ar);
	if (no != NULL) {
		sn_metrics_add(w->metrics, SN_CTR_AUTHZ_DENY, 1);
		sn_fx_answer(ex, 403, sv->unenforceable ? "policy_unenforceable" : "rbac_denied",
			     "RBAC: access denied (sinew: Server %s: %s)", sv->name, no);
		return SN_FILTER_ANSWERED;
	}
	if (sv->rl_name == NULL)
		return SN_FILTER_NEXT;

	/* the client's own limit: an override naming its ServiceAccount, else
	 * the identity limit (unmeshed clients share one bucket) */
	char sa[300], key[2][RL_KEY];
	client_sa(sn_fx_peer_id(ex), sa, sizeof(sa));
	uint32_t own = sv->rl_identity;
	const char *own_what = "per identity";
	for (size_t i = 0; sa[0] && i < sv->n_rl_overrides; i++)
		for (size_t k = 0; k < sv->rl_overrides[i].n_clients; k++)
			if (!strcmp(sv->rl_overrides[i].clients[k], sa)) {
				own = sv->rl_overrides[i].rps;
				own_what = "override";
			}
	snprintf(key[0], RL_KEY, "%s|%u|total", sv->rl_name, sv->rl_total);
	snprintf(key[1], RL_KEY, "%s|%u|%.*s", sv->rl_name, own, (int)SN_MIN(ar.principal.len, 150),
		 ar.principal.len ? ar.principal.p : "");
	uint64_t now = sn_clock_ns(), wait[2] = { 0, 0 };
	uint32_t rps[2] = { sv->rl_total, own };
	struct rl_slot *slot[2] = { NULL, NULL };
	pthread_mutex_lock(&rl_lock);
	for (int i = 0; i < 2; i++)
		if (rps[i] && (slot[i] = rl_slot(key[i])) != NULL)
			wait[i] = rl_wait(slot[i], rps[i], now);
	if (wait[0] == 0 && wait[1] == 0)
		for (int i = 0; i < 2; i++)
			if (slot[i] != NULL)
				rl_take(slot[i], rps[i], now);
	pthread_mutex_unlock(&rl_lock);
	if (wait[0] != 0)
		return refuse_rate(ex, sv, "total", rps[0], wait[0]);
	if (wait[1] != 0)
		return refuse_rate(ex, sv, own_what, rps[1], wait[1]);
	return SN_FILTER_NEXT;
}

const struct sn_filter sn_filter_ratelimit = {
	.name = "ratelimit",
	.dirs = SN_FILTER_INBOUND,
	.request_head = ratelimit_request,
};
