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

int sn_lb_pick(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs)
{
	int idx = pick(w, c, cs);
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
		return (int)(cs->rr_next++ % n);
	case SN_LB_RANDOM:
		return (int)(sn_worker_random(w) % n);
	case SN_LB_LEAST_REQUEST:
	case SN_LB_P2C_EWMA:
	default:
		break;
	}
	a = sn_worker_random(w) % n;
	b = sn_worker_random(w) % (n - 1);
	if (b >= a)
		b++;
	const struct sn_host *ha = cs->hosts[a];
	const struct sn_host *hb = cs->hosts[b];
	if (ha == NULL || hb == NULL)
		return (int)a;
	if (c->lb == SN_LB_LEAST_REQUEST)
		return (int)(ha->active <= hb->active ? a : b);
	uint64_t now = sn_clock_us();
	return (int)(ewma_cost(ha, now) <= ewma_cost(hb, now) ? a : b);
}
