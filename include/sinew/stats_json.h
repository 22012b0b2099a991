#ifndef SINEW_STATS_JSON_H
#define SINEW_STATS_JSON_H

/* The golden metrics as the views show them (src/telemetry/stats_json.c):
 * the one writer of the rows of GET /api/v1/stats and /api/v1/edges
 * (docs/api.md "Stats"), used by sinewd's live stats (src/control/stats.c)
 * and by the CLI's views from Prometheus (src/cli/prom.c), and the one
 * histogram quantile both compute latencies with. */

#include <stddef.h>
#include <stdint.h>

struct sn_out;

/* v with exactly `decimals` decimals (0 to 4), without printf's locale;
 * null when v is NaN, infinite, negative or past 1e15. */
void sn_out_fixed(struct sn_out *o, double v, int decimals);

/* histogram_quantile (Prometheus's promql/quantile.go) over n buckets:
 * le[] their upper bounds, ascending, the last +Inf; cum[] their
 * cumulative counts. Linear within the first non-empty bucket whose count
 * reaches the rank, the lowest bucket starting at 0 (or at its bound when
 * that is not above 0); a rank in +Inf answers the highest finite bound.
 * NaN without observations, with fewer than two buckets, or without +Inf
 * last. */
double sn_quantile_cumulative(const double *le, const double *cum, size_t n, double q);

/* One row of /api/v1/stats. NaN renders null. */
struct sn_stats_row_json {
	const char *ns, *name;
	unsigned connected, seen;        /* "meshed": connected / max(connected, seen) */
	double success;                  /* 0..1 */
	uint64_t requests;
	double rps;
	double p50, p95, p99;            /* ms */
	int64_t tcp;
	double mtls_share;               /* 0..1 */
	const char *reported_by;         /* "destination" or "source" */
};
void sn_stats_json_row(struct sn_out *o, const struct sn_stats_row_json *r);

/* One edge of /api/v1/edges. */
struct sn_stats_edge_json {
	const char *src_ns, *src, *dst_ns, *dst;
	const char *client_id, *server_id;   /* NULL: null */
	int mtls;
	uint64_t requests;
	double rps;
};
void sn_stats_json_edge(struct sn_out *o, const struct sn_stats_edge_json *e);

/* One row of /api/v1/routes: a VirtualService route (vs NULL or "":
 * [DEFAULT], no rule's) to a service, with the client workload when the
 * view is by client (client NULL: by service). */
struct sn_stats_route_json {
	const char *route, *vs_ns, *vs;
	const char *svc_ns, *svc_name, *svc_host;
	const char *client_ns, *client;
	double success;
	uint64_t requests;
	double rps;
	double p50, p95, p99;
};
void sn_stats_json_route(struct sn_out *o, const struct sn_stats_route_json *r);

#endif
