/* Outlier detection (DestinationRule trafficPolicy.outlierDetection):
 * an endpoint that fails several requests in a row leaves its cluster's
 * load-balancing pool for a while, as Envoy does for Istio.
 *
 * - consecutive5xxErrors (default 5): 5xx answers in a row; a failure
 *   of local origin (connect failure, reset, timeout) counts as a 5xx
 *   unless splitExternalLocalOriginErrors, which counts those apart
 *   against consecutiveLocalOriginFailures (default 5).
 * - consecutiveGatewayErrors (off by default): 502, 503, 504 in a row
 *   (and local-origin failures, unsplit).
 * - An ejection lasts baseEjectionTime x the endpoint's ejections so far
 *   (capped at 300 s or the base, whichever is longer); the count drops
 *   by one for every `interval` the endpoint then stays in the pool.
 * - maxEjectionPercent (default 10) of a cluster's endpoints may be out
 *   at once, and always at least one; below minHealthPercent (default 0)
 *   of endpoints in the pool, ejections are ignored (Envoy's panic).
 *
 * State is per worker, like the connection limits, and lives in the
 * worker's cluster state; a new snapshot carries it over for endpoints
 * that stay (sn_outlier_carry). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sinew/log.h"
#include "proxy.h"

#define MAX_EJECTION_MS 300000u

static void mark(struct sn_worker *w, const char *cluster, const char *address, int64_t until);

static uint64_t now_ms(struct sn_worker *w)
{
	return sn_loop_now(&w->loop);
}

/* Lets endpoints whose ejection is over back in. */
static void expire(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs)
{
	uint64_t now = now_ms(w);
	if (cs->n_ejected == 0 || now < cs->next_expiry_ms)
		return;
	uint64_t next = UINT64_MAX;
	for (size_t i = 0; i < c->n_endpoints; i++) {
		struct sn_outlier_host *o = &cs->od[i];
		if (o->ejected_until_ms == 0)
			continue;
		if (o->ejected_until_ms <= now) {
			o->ejected_until_ms = 0;
			o->back_since_ms = now;
			cs->n_ejected--;
			mark(w, c->name, c->endpoints[i].address, 0);   /* back in */
			sn_metrics_add(w->metrics, SN_CTR_OUTLIER_EJECTED_ACTIVE, -1);
			sn_log(SN_LOG_INFO, "outlier: %s back in %s's pool", c->endpoints[i].address, c->name);
		} else if (o->ejected_until_ms < next) {
			next = o->ejected_until_ms;
		}
	}
	cs->next_expiry_ms = next;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* For the admin port: cluster's endpoint at address is out until then
 * (wall clock); a later mark of the same endpoint replaces it. */
static void mark(struct sn_worker *w, const char *cluster, const char *address, int64_t until)
{
	struct sn_proxy *p = w->proxy;
	int64_t now = wall_ms();
	pthread_mutex_lock(&p->outlier_lock);
	size_t k = p->n_outlier_marks;
	for (size_t i = 0; i < p->n_outlier_marks; i++) {
		struct sn_outlier_mark *m = &p->outlier_marks[i];
		if ((!strcmp(m->cluster, cluster) && !strcmp(m->address, address)) || m->until_wall_ms <= now) {
			k = i;
			break;
		}
	}
	if (k == p->n_outlier_marks && k < SN_ARRAY_LEN(p->outlier_marks))
		p->n_outlier_marks++;
	if (k < SN_ARRAY_LEN(p->outlier_marks)) {
		snprintf(p->outlier_marks[k].cluster, sizeof(p->outlier_marks[k].cluster), "%s", cluster);
		snprintf(p->outlier_marks[k].address, sizeof(p->outlier_marks[k].address), "%s", address);
		p->outlier_marks[k].until_wall_ms = until;
	}
	pthread_mutex_unlock(&p->outlier_lock);
}

/* Cluster names and addresses come from validated configuration; a byte
 * JSON would need escaped is written as '?' all the same. */
static void json_safe(FILE *f, const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s < 0x20 || *s == '"' || *s == '\\' ? '?' : *s, f);
}

void sn_outlier_dump_json(struct sn_proxy *p, FILE *f)
{
	int64_t now = wall_ms();
	int first = 1;
	fputc('[', f);
	pthread_mutex_lock(&p->outlier_lock);
	for (size_t i = 0; i < p->n_outlier_marks; i++) {
		const struct sn_outlier_mark *m = &p->outlier_marks[i];
		if (m->until_wall_ms <= now)
			continue;
		fprintf(f, "%s{\"cluster\":\"", first ? "" : ",");
		json_safe(f, m->cluster);
		fputs("\",\"address\":\"", f);
		json_safe(f, m->address);
		fprintf(f, "\",\"remaining_ms\":%lld}", (long long)(m->until_wall_ms - now));
		first = 0;
	}
	pthread_mutex_unlock(&p->outlier_lock);
	fputc(']', f);
}

static void eject(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs, size_t i,
		  const char *why)
{
	const struct sn_outlier_policy *p = &c->outlier;
	struct sn_outlier_host *o = &cs->od[i];
	uint64_t now = now_ms(w);

	/* Envoy's rule: one more may go if the share out stays within the
	 * limit, and one may always go. */
	if (cs->n_ejected > 0 && (cs->n_ejected + 1) * 100 > (uint64_t)p->max_ejection_pct * c->n_endpoints)
		return;
	if (o->times > 0 && o->back_since_ms != 0) {
		uint64_t quiet = (now - o->back_since_ms) / (p->interval_ms ? p->interval_ms : 1);
		o->times = quiet >= o->times ? 0 : o->times - (uint32_t)quiet;
	}
	o->times++;
	uint64_t span = (uint64_t)p->base_ejection_ms * o->times;
	uint64_t cap = SN_MAX((uint64_t)MAX_EJECTION_MS, (uint64_t)p->base_ejection_ms);
	o->ejected_until_ms = now + SN_MIN(span, cap);
	o->c5xx = o->cgw = o->clocal = 0;
	cs->n_ejected++;
	if (o->ejected_until_ms < cs->next_expiry_ms || cs->n_ejected == 1)
		cs->next_expiry_ms = o->ejected_until_ms;
	sn_metrics_add(w->metrics, SN_CTR_OUTLIER_EJECTIONS, 1);
	sn_metrics_add(w->metrics, SN_CTR_OUTLIER_EJECTED_ACTIVE, 1);
	mark(w, c->name, c->endpoints[i].address, wall_ms() + (int64_t)(o->ejected_until_ms - now));
	sn_log(SN_LOG_INFO, "outlier: %s ejected from %s for %llu ms (%s; ejection %u)", c->endpoints[i].address,
	       c->name, (unsigned long long)(o->ejected_until_ms - now), why, o->times);
}

void sn_outlier_report(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs, size_t i,
		       int status)
{
	const struct sn_outlier_policy *p = &c->outlier;
	if (!p->enabled || cs == NULL || cs->od == NULL || i >= c->n_endpoints)
		return;
	struct sn_outlier_host *o = &cs->od[i];
	if (o->ejected_until_ms != 0)
		return;   /* an answer from before the ejection */
	int local = status == 0;
	if (local && p->split_local) {
		if (p->consecutive_local && ++o->clocal >= p->consecutive_local)
			eject(w, c, cs, i, "consecutive local-origin failures");
		return;
	}
	if (!local && p->split_local)
		o->clocal = 0;   /* the endpoint answered */
	int is5xx = local || status >= 500;
	int gateway = local || status == 502 || status == 503 || status == 504;
	o->c5xx = is5xx ? o->c5xx + 1 : 0;
	o->cgw = gateway ? o->cgw + 1 : 0;
	if (p->consecutive_5xx && o->c5xx >= p->consecutive_5xx)
		eject(w, c, cs, i, "consecutive 5xx");
	else if (p->consecutive_gateway && o->cgw >= p->consecutive_gateway)
		eject(w, c, cs, i, "consecutive gateway errors");
}

int sn_outlier_active(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs)
{
	if (!c->outlier.enabled || cs == NULL || cs->od == NULL || cs->n_ejected == 0)
		return 0;
	expire(w, c, cs);
	if (cs->n_ejected == 0 || cs->n_ejected >= c->n_endpoints)
		return 0;   /* none out, or all: the pool is everyone */
	uint64_t in = c->n_endpoints - cs->n_ejected;
	return in * 100 >= (uint64_t)c->outlier.min_health_pct * c->n_endpoints;
}

int sn_outlier_pick_in(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs, int idx)
{
	if (idx < 0 || cs->od[idx].ejected_until_ms == 0)
		return idx;
	/* Uniformly among those in the pool. */
	size_t in = c->n_endpoints - cs->n_ejected;
	size_t k = (size_t)(sn_worker_random(w) % in);
	for (size_t i = 0; i < c->n_endpoints; i++)
		if (cs->od[i].ejected_until_ms == 0 && k-- == 0)
			return (int)i;
	return idx;
}

int sn_outlier_ejected(const struct sn_cluster_state *cs, size_t i)
{
	return cs != NULL && cs->od != NULL && cs->od[i].ejected_until_ms != 0;
}

void sn_outlier_carry(struct sn_worker *w, const struct sn_cluster *c, struct sn_cluster_state *cs,
		      const struct sn_snapshot *old, const struct sn_cluster_state *old_cs)
{
	if (old == NULL || old_cs == NULL)
		return;
	for (size_t k = 0; k < old->n_clusters; k++) {
		const struct sn_cluster *oc = &old->clusters[k];
		if (old_cs[k].od == NULL || strcmp(oc->name, c->name) != 0)
			continue;
		for (size_t i = 0; i < c->n_endpoints; i++)
			for (size_t j = 0; j < oc->n_endpoints; j++) {
				if (strcmp(c->endpoints[i].address, oc->endpoints[j].address) != 0)
					continue;
				cs->od[i] = old_cs[k].od[j];
				if (cs->od[i].ejected_until_ms != 0) {
					cs->n_ejected++;
					sn_metrics_add(w->metrics, SN_CTR_OUTLIER_EJECTED_ACTIVE, 1);
				}
				break;
			}
		cs->next_expiry_ms = 0;   /* the next look recomputes it */
		return;
	}
}

void sn_outlier_release(struct sn_worker *w, struct sn_cluster_state *cs)
{
	if (cs->n_ejected)
		sn_metrics_add(w->metrics, SN_CTR_OUTLIER_EJECTED_ACTIVE, -(int64_t)cs->n_ejected);
	free(cs->od);
	cs->od = NULL;
	cs->n_ejected = 0;
}
