/* Load balancing over a cluster's endpoints.
 *
 * The default is power-of-two-choices over peak-EWMA latency (Finagle's
 * and Linkerd's balancer): pick two endpoints at random and send to the one
 * with the lower cost, where cost = EWMA latency x (requests in flight + 1).
 * Peak-EWMA jumps up at once on a slow response and decays slowly back
 * (time constant TAU_MS), so a degrading endpoint loses traffic within one
 * request. LEAST_REQUEST is P2C on requests in flight (Envoy's default
 * choice count of two); RANDOM and ROUND_ROBIN are what they say. */
#include "proxy.h"

#define TAU_MS 10000.0
#define INITIAL_EWMA_MS 0.0     /* an endpoint without samples costs nothing, so it is tried first (Finagle) */
#define FAILURE_PENALTY_MS 250.0

/* exp(-x) for x >= 0, to about 1e-6 relative: range-reduced Taylor series,
 * exp(-x) = exp(-x/32)^32. Written here so the proxy does not map libm
 * (0.45 MiB of resident memory) for one function. */
static double decay(double x)
{
	if (x <= 0.0)
		return 1.0;
	if (x > 40.0)
		return 0.0;
	double y = x / 32.0;
	double e = 1.0 - y * (1.0 - y / 2.0 * (1.0 - y / 3.0 * (1.0 - y / 4.0 * (1.0 - y / 5.0))));
	for (int i = 0; i < 5; i++)
		e *= e;
	return e;
}

void sn_lb_observe(struct sn_host *h, double latency_ms, int failed)
{
	uint64_t now = sn_clock_us();
	double sample = failed ? SN_MAX(latency_ms, FAILURE_PENALTY_MS) : latency_ms;

	if (h->ewma_stamp_us == 0) {
		h->ewma_ms = sample;
	} else if (sample > h->ewma_ms) {
		h->ewma_ms = sample;   /* peak: react at once */
	} else {
		double dt_ms = (double)(now - h->ewma_stamp_us) / 1000.0;
		double w = decay(dt_ms / TAU_MS);
		h->ewma_ms = h->ewma_ms * w + sample * (1.0 - w);
	}
	h->ewma_stamp_us = now;
}

/* Reading decays the estimate toward zero with the time since the last
 * sample (Finagle's PeakEwma does the same), so an endpoint that was
 * penalized once is probed again instead of being starved forever. */
static double ewma_cost(const struct sn_host *h, uint64_t now_us)
{
	double e = INITIAL_EWMA_MS;
	/* Untried: free while idle, so it gets probed; but once a request is
	 * on its way, as costly as a failure, so a new endpoint is not handed
	 * every request until its first answer (Finagle's penalty). */
	if (!h->ewma_stamp_us && h->active > 0)
		return FAILURE_PENALTY_MS * (double)(h->active + 1);
	if (h->ewma_stamp_us) {
		double dt_ms = (double)(now_us - h->ewma_stamp_us) / 1000.0;
		e = h->ewma_ms * decay(dt_ms / TAU_MS);
	}
	return e * (double)(h->active + 1);
}

static int pick(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs);

/* With weights (WorkloadEntry weight): an endpoint by weight at random. */
static size_t weighted_random(struct sn_worker *w, const struct sn_cluster *c, size_t skip)
{
	uint64_t total = c->weight_total - (skip < c->n_endpoints ? c->endpoints[skip].weight : 0);
	uint64_t r = total ? sn_worker_random(w) % total : 0;
	for (size_t i = 0; i < c->n_endpoints; i++) {
		if (i == skip)
			continue;
		if (r < c->endpoints[i].weight)
			return i;
		r -= c->endpoints[i].weight;
	}
	return skip == 0 ? 1 : 0;
}

/* Smooth weighted round robin (nginx's): each turn every endpoint gains
 * its weight, the richest is picked and pays the total; weights 3:1 give
 * a, a, b, a -- never bursts. */
static int weighted_rr(const struct sn_cluster *c, struct sn_cluster_state *cs)
{
	int best = -1;
	for (size_t i = 0; i < c->n_endpoints; i++) {
		cs->wrr[i] += c->endpoints[i].weight;
		if (best < 0 || cs->wrr[i] > cs->wrr[best])
			best = (int)i;
	}
	cs->wrr[best] -= (int64_t)c->weight_total;
	return best;
}

/* Locality priorities (DestinationRule localityLbSetting, translate.c):
 * Envoy's priority load. A level's health is its share of endpoints not
 * ejected, times the overprovisioning factor 1.4, at most 100 %; level 0
 * takes its health's worth of the traffic, level 1 what is left up to its
 * own, and so on (normalised when all levels together fall short). Within
 * the level: two healthy candidates at random, the cheaper by the
 * cluster's measure (round robin: the next in turn). */
#define OVERPROVISION_PCT 140

static int healthy(const struct sn_cluster_state *cs, size_t i)
{
	return cs->od == NULL || cs->od[i].ejected_until_ms == 0;
}

static int pick_by_priority(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs)
{
	uint32_t load[256] = { 0 }, left = 100, sum = 0;
	unsigned np = c->n_priorities;

	for (unsigned p = 0; p < np && left > 0; p++) {
		uint32_t total = 0, ok = 0;
		for (size_t i = 0; i < c->n_endpoints; i++)
			if (c->endpoints[i].priority == p) {
				total++;
				ok += (uint32_t)healthy(cs, i);
			}
		uint32_t health = total ? SN_MIN(100u, ok * OVERPROVISION_PCT / total) : 0;
		load[p] = SN_MIN(left, health);
		left -= load[p];
		sum += load[p];
	}
	if (sum == 0)
		return pick(w, c, cs);   /* nothing healthy anywhere: as without locality */
	uint32_t r = (uint32_t)(sn_worker_random(w) % sum);
	unsigned level = 0;
	while (level + 1 < np && r >= load[level]) {
		r -= load[level];
		level++;
	}
	/* the level's healthy endpoints */
	size_t cand[64], n = 0;
	for (size_t i = 0; i < c->n_endpoints && n < SN_ARRAY_LEN(cand); i++)
		if (c->endpoints[i].priority == level && healthy(cs, i))
			cand[n++] = i;
	if (n == 0)
		return pick(w, c, cs);
	if (c->lb == SN_LB_ROUND_ROBIN)
		return (int)cand[cs->rr_next++ % n];
	size_t a = cand[sn_worker_random(w) % n], b = cand[sn_worker_random(w) % n];
	if (c->lb == SN_LB_RANDOM || a == b || cs->hosts[a] == NULL || cs->hosts[b] == NULL)
		return (int)a;
	if (c->lb == SN_LB_LEAST_REQUEST)
		return (int)(cs->hosts[a]->active <= cs->hosts[b]->active ? a : b);
	uint64_t now = sn_clock_us();
	return (int)(ewma_cost(cs->hosts[a], now) <= ewma_cost(cs->hosts[b], now) ? a : b);
}

/* Slow start (DestinationRule warmupDurationSecs, Envoy's): an endpoint
 * this worker has known for less than the window takes a share that grows
 * from minimumPercent to its full weight as (age / window)^(1/aggression).
 * While any endpoint of the cluster warms, endpoints are drawn by these
 * effective weights. Returns -1 when none warms. */
/* x^(1/a) for x in (0, 1], a >= 1, without libm (linking it costs every
 * proxy ~0.4 MiB of resident pages): e^(ln(x)/a), ln by the atanh series
 * on the mantissa, e^y by halving y until small and squaring back. */
static double root_of(double x, double a)
{
	if (a == 1.0 || x >= 1.0)
		return x;
	if (x <= 0.0)
		return 0.0;
	int k = 0;
	while (x < 0.5) {
		x *= 2.0;
		k++;
	}
	double z = (x - 1.0) / (x + 1.0), z2 = z * z, term = z, ln = 0.0;
	for (int i = 1; i < 40; i += 2) {
		ln += term / i;
		term *= z2;
	}
	double y = (2.0 * ln - k * 0.6931471805599453) / a;   /* <= 0 */
	int halvings = 0;
	while (y < -0.5) {
		y /= 2.0;
		halvings++;
	}
	double e = 1.0, t = 1.0;
	for (int i = 1; i < 20; i++) {
		t *= y / i;
		e += t;
	}
	while (halvings-- > 0)
		e *= e;
	return e;
}

static int pick_warming(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs)
{
	uint64_t now = sn_loop_now(&w->loop);
	double eff[256], total = 0;
	int warming = 0;
	size_t n = SN_MIN(c->n_endpoints, SN_ARRAY_LEN(eff));
	double min = (c->warmup_min_pct ? c->warmup_min_pct : 10) / 100.0;
	double aggr = c->warmup_aggression >= 1.0 ? c->warmup_aggression : 1.0;

	for (size_t i = 0; i < n; i++) {
		const struct sn_host *h = cs->hosts[i];
		double f = 1.0;
		if (h != NULL && now - h->added_ms < c->warmup_ms) {
			f = root_of((double)(now - h->added_ms) / (double)c->warmup_ms, aggr);
			f = f < min ? min : f;
			warming = 1;
		}
		eff[i] = (c->weighted ? c->endpoints[i].weight : 1.0) * f *
			 (c->endpoints[i].priority == SN_PRIORITY_NONE ? 0.0 : 1.0);
		total += eff[i];
	}
	if (!warming || total <= 0)
		return -1;
	double r = (double)(sn_worker_random(w) % 1000000) / 1000000.0 * total;
	for (size_t i = 0; i < n; i++) {
		if (r < eff[i])
			return (int)i;
		r -= eff[i];
	}
	return (int)(n - 1);
}

int sn_lb_pick(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs)
{
	if (c->warmup_ms && c->n_endpoints > 1 && c->lb != SN_LB_RING_HASH && c->lb != SN_LB_MAGLEV &&
	    !(c->locality_lb && c->n_priorities > 1)) {
		int idx = pick_warming(w, c, cs);
		if (idx >= 0)
			return sn_outlier_active(w, c, cs) ? sn_outlier_pick_in(w, c, cs, idx) : idx;
	}
	if (c->locality_lb && c->n_priorities > 1 && c->lb != SN_LB_RING_HASH && c->lb != SN_LB_MAGLEV) {
		if (cs->od != NULL)
			sn_outlier_active(w, c, cs);   /* ends ejections that are over */
		return pick_by_priority(w, c, cs);
	}
	/* distribute's shares are traffic shares: by weight alone (a
	 * cheaper endpoint must not take another locality's share) */
	int idx = c->locality_shares && c->n_endpoints > 0 && c->weight_total > 0 ? (int)weighted_random(w, c, SIZE_MAX)
										    : pick(w, c, cs);
	return sn_outlier_active(w, c, cs) ? sn_outlier_pick_in(w, c, cs, idx) : idx;
}

static int pick(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs)
{
	size_t n = c->n_endpoints;
	size_t a, b;

	if (n == 0)
		return -1;
	if (n == 1)
		return 0;
	switch (c->lb) {
	case SN_LB_ROUND_ROBIN:
		if (c->weighted && cs->wrr != NULL)
			return weighted_rr(c, cs);
		return (int)(cs->rr_next++ % n);
	case SN_LB_RANDOM:
		if (c->weighted)
			return (int)weighted_random(w, c, SIZE_MAX);
		return (int)(sn_worker_random(w) % n);
	case SN_LB_LEAST_REQUEST:
	case SN_LB_P2C_EWMA:
	default:
		break;
	}
	if (c->weighted) {
		/* Two candidates drawn by weight, costs divided by it. */
		a = weighted_random(w, c, SIZE_MAX);
		b = weighted_random(w, c, a);
	} else {
		a = sn_worker_random(w) % n;
		b = sn_worker_random(w) % (n - 1);
		if (b >= a)
			b++;
	}
	const struct sn_host *ha = cs->hosts[a];
	const struct sn_host *hb = cs->hosts[b];
	if (ha == NULL || hb == NULL)
		return (int)a;
	double wa = c->weighted ? c->endpoints[a].weight : 1.0, wb = c->weighted ? c->endpoints[b].weight : 1.0;
	if (c->lb == SN_LB_LEAST_REQUEST)
		return (int)(ha->active / wa <= hb->active / wb ? a : b);
	uint64_t now = sn_clock_us();
	return (int)(ewma_cost(ha, now) / wa <= ewma_cost(hb, now) / wb ? a : b);
}
