/* The golden metrics as the views show them (sinew/stats_json.h). */
#include <inttypes.h>
#include <math.h>

#include "sinew/common.h"
#include "sinew/out.h"
#include "sinew/stats_json.h"

void sn_out_fixed(struct sn_out *o, double v, int decimals)
{
	static const uint64_t scale[] = { 1, 10, 100, 1000, 10000 };
	if (!isfinite(v) || v < 0 || v > 1e15 || decimals < 0 || decimals > 4) {
		sn_out_cstr(o, "null");
		return;
	}
	uint64_t x = (uint64_t)(v * (double)scale[decimals] + 0.5);
	if (decimals == 0)
		sn_out_printf(o, "%" PRIu64, x);
	else
		sn_out_printf(o, "%" PRIu64 ".%0*" PRIu64, x / scale[decimals], decimals, x % scale[decimals]);
}

double sn_quantile_cumulative(const double *le, const double *cum, size_t n, double q)
{
	if (n < 2 || !isinf(le[n - 1]))
		return NAN;
	double total = 0;
	for (size_t i = 0; i < n; i++)
		total = SN_MAX(total, cum[i]);   /* monotonic, as Prometheus forces it */
	if (!(total > 0))
		return NAN;
	double rank = q * total, prev = 0;
	for (size_t b = 0; b < n; b++) {
		double c = SN_MAX(prev, cum[b]);
		if (c >= rank && c > prev) {
			if (b == n - 1)
				return le[n - 2];
			if (b == 0 && le[0] <= 0)
				return le[0];
			double start = b == 0 ? 0.0 : le[b - 1];
			return start + (le[b] - start) * ((rank - prev) / (c - prev));
		}
		prev = c;
	}
	return le[n - 2];
}

void sn_stats_json_row(struct sn_out *o, const struct sn_stats_row_json *r)
{
	sn_out_cstr(o, "{\"namespace\":");
	sn_out_json_cstr(o, r->ns);
	sn_out_cstr(o, ",\"name\":");
	sn_out_json_cstr(o, r->name);
	sn_out_printf(o, ",\"meshed\":\"%u/%u\",\"successRate\":", r->connected, SN_MAX(r->connected, r->seen));
	sn_out_fixed(o, r->success, 4);
	sn_out_printf(o, ",\"requests\":%" PRIu64 ",\"rps\":", r->requests);
	sn_out_fixed(o, r->rps, 3);
	sn_out_cstr(o, ",\"latencyMs\":{\"p50\":");
	sn_out_fixed(o, r->p50, 3);
	sn_out_cstr(o, ",\"p95\":");
	sn_out_fixed(o, r->p95, 3);
	sn_out_cstr(o, ",\"p99\":");
	sn_out_fixed(o, r->p99, 3);
	sn_out_printf(o, "},\"tcpConnections\":%" PRId64 ",\"mtlsShare\":", r->tcp);
	sn_out_fixed(o, r->mtls_share, 4);
	sn_out_cstr(o, ",\"reportedBy\":");
	sn_out_json_cstr(o, r->reported_by);
	sn_out_cstr(o, "}");
}

void sn_stats_json_route(struct sn_out *o, const struct sn_stats_route_json *r)
{
	sn_out_cstr(o, "{\"route\":");
	if (r->vs == NULL || r->vs[0] == '\0') {
		sn_out_cstr(o, "\"[DEFAULT]\",\"virtualService\":null");
	} else {
		sn_out_json_cstr(o, r->route ? r->route : "");   /* "" only for a route named so */
		sn_out_cstr(o, ",\"virtualService\":{\"namespace\":");
		sn_out_json_cstr(o, r->vs_ns);
		sn_out_cstr(o, ",\"name\":");
		sn_out_json_cstr(o, r->vs);
		sn_out_cstr(o, "}");
	}
	sn_out_cstr(o, ",\"service\":{\"namespace\":");
	sn_out_json_cstr(o, r->svc_ns);
	sn_out_cstr(o, ",\"name\":");
	sn_out_json_cstr(o, r->svc_name);
	sn_out_cstr(o, ",\"host\":");
	sn_out_json_cstr(o, r->svc_host);
	sn_out_cstr(o, "}");
	if (r->client != NULL) {
		sn_out_cstr(o, ",\"workload\":{\"namespace\":");
		sn_out_json_cstr(o, r->client_ns);
		sn_out_cstr(o, ",\"name\":");
		sn_out_json_cstr(o, r->client);
		sn_out_cstr(o, "}");
	}
	sn_out_cstr(o, ",\"successRate\":");
	sn_out_fixed(o, r->success, 4);
	sn_out_printf(o, ",\"requests\":%" PRIu64 ",\"rps\":", r->requests);
	sn_out_fixed(o, r->rps, 3);
	sn_out_cstr(o, ",\"latencyMs\":{\"p50\":");
	sn_out_fixed(o, r->p50, 3);
	sn_out_cstr(o, ",\"p95\":");
	sn_out_fixed(o, r->p95, 3);
	sn_out_cstr(o, ",\"p99\":");
	sn_out_fixed(o, r->p99, 3);
	sn_out_cstr(o, "}}");
}

void sn_stats_json_edge(struct sn_out *o, const struct sn_stats_edge_json *e)
{
	sn_out_cstr(o, "{\"src\":{\"namespace\":");
	sn_out_json_cstr(o, e->src_ns);
	sn_out_cstr(o, ",\"workload\":");
	sn_out_json_cstr(o, e->src);
	sn_out_cstr(o, "},\"dst\":{\"namespace\":");
	sn_out_json_cstr(o, e->dst_ns);
	sn_out_cstr(o, ",\"workload\":");
	sn_out_json_cstr(o, e->dst);
	sn_out_cstr(o, "},\"clientIdentity\":");
	sn_out_json_cstr(o, e->client_id);
	sn_out_cstr(o, ",\"serverIdentity\":");
	sn_out_json_cstr(o, e->server_id);
	sn_out_printf(o, ",\"mtls\":%s,\"requests\":%" PRIu64 ",\"rps\":", e->mtls ? "true" : "false", e->requests);
	sn_out_fixed(o, e->rps, 3);
	sn_out_cstr(o, "}");
}
