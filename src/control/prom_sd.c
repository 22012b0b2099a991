/* Prometheus HTTP service discovery (GET /api/v1/prometheus/targets):
 * every connected proxy's admin address as a scrape target, in the format
 * Prometheus's http_sd_configs reads
 * (https://prometheus.io/docs/prometheus/latest/http_sd/), with labels
 * naming the proxy: namespace, service, workload labels app and version,
 * the proxy's id and pod. A user who outgrows sinewd's built-in views
 * points a real Prometheus here (docs/observability.md, "Prometheus").
 *
 * A proxy whose admin address only its own network namespace reaches (a
 * `sinew run` pod's 127.0.0.1:15020) is listed at sinewd's API instead,
 * with __metrics_path__ /api/v1/proxies/ID/metrics (scrape.c relays the
 * scrape over the proxy's control link) and label
 * sinew_reachable="via-sinewd". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/json.h"
#include "sinew/query.h"
#include "mesh_internal.h"

static void label(struct sn_out *o, int *first, const char *k, const char *v)
{
	if (v == NULL || v[0] == '\0')
		return;
	sn_out_cstr(o, *first ? "" : ",");
	*first = 0;
	sn_out_json_cstr(o, k);
	sn_out_cstr(o, ":");
	sn_out_json_cstr(o, v);
}


void sn_mesh_render_prom_sd(struct sn_mesh *m, const char *api_addr, struct sn_out *o)
{
	int any = 0;
	sn_out_cstr(o, "[");
	for (struct sn_mesh_proxy *px = m != NULL ? m->proxies : NULL; px != NULL; px = px->next) {
		if (!px->hello || px->gone || px->admin == NULL || px->admin[0] == '\0')
			continue;
		int first = 1;
		int pod_local = px->pod != NULL && px->pod[0] != '\0' && !strncmp(px->admin, "127.", 4);
		char path[3 * MESH_MAX_ID + 64], id[3 * MESH_MAX_ID + 1];
		sn_out_cstr(o, any ? ",{\"targets\":[" : "{\"targets\":[");
		any = 1;
		if (pod_local && api_addr != NULL) {
			sn_url_escape(px->id, 0, id, sizeof(id));
			snprintf(path, sizeof(path), "/api/v1/proxies/%s/metrics", id);
		} else {
			snprintf(path, sizeof(path), "/metrics");
		}
		sn_out_json_cstr(o, pod_local && api_addr != NULL ? api_addr : px->admin);
		sn_out_cstr(o, "],\"labels\":{");
		label(o, &first, "__metrics_path__", path);
		label(o, &first, "namespace", px->ns);
		label(o, &first, "service", px->service);
		label(o, &first, "workload", px->workload);
		label(o, &first, "app", sn_labels_get(&px->labels, "app"));
		label(o, &first, "version", sn_labels_get(&px->labels, "version"));
		label(o, &first, "sinew_proxy", px->id);
		label(o, &first, "pod", px->pod);
		if (pod_local)
			label(o, &first, "sinew_reachable", api_addr != NULL ? "via-sinewd" : "pod-local");
		sn_out_cstr(o, "}}");
	}
	sn_out_cstr(o, "]");
}
