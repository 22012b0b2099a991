/* sinew routes: the golden metrics of each VirtualService route -- success
 * rate, requests per second, latency percentiles -- as `linkerd viz routes`
 * prints them per ServiceProfile route, from the route series the
 * clients' proxies send sinewd (GET /api/v1/routes, docs/api.md "Stats");
 * requests no route of a VirtualService matched show as [DEFAULT]. */
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sinew/cli.h"
#include "sinew/cli_prom.h"
#include "sinew/loop.h"


static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew routes [svc|deploy] [NAME] [-n NS | -A] [--window D] [-o json|wide] [--watch]\n"
		"                    [--server URL] [--prometheus URL]\n"
		"       sinew routes svc/NAME | deploy/NAME ...\n"
		"\n"
		"The golden metrics of each VirtualService route over the last --window,\n"
		"from the route series the clients' proxies send sinewd:\n"
		"  svc (the default)  the routes of each service (svc/NAME: of one), summed\n"
		"                     over every client\n"
		"  deploy             the routes each workload's requests took (deploy/NAME:\n"
		"                     one workload's outbound routes)\n"
		"Columns:\n"
		"  ROUTE        the route's name (http[].name, else VSNAME.http[i]); [DEFAULT]:\n"
		"               requests no VirtualService route matched (no VirtualService,\n"
		"               or no rule for them)\n"
		"  SERVICE      the destination service\n"
		"  SUCCESS      responses 1xx-4xx (and gRPC OK) out of all requests\n"
		"  RPS          requests a second\n"
		"  LATENCY_P50, _P95, _P99   interpolated in Istio's duration buckets\n"
		"A route with no requests in the window (seen in the last hour) shows \"-\".\n"
		"\n"
		"  -n, --namespace NS      the services' (deploy: the workloads') namespace;\n"
		"                          default \"default\"\n"
		"  -A, --all-namespaces    every namespace\n"
		"  --window D              10s to 1h (default 1m); it ends one report interval ago\n"
		"  -o json|wide            the API's JSON, or more columns (VirtualService, requests)\n"
		"  -w, --watch             print again every 2 s until interrupted\n"
		"  --server URL            sinewd's API (default $SINEW_SERVER, else " SN_CLI_DEFAULT_SERVER ")\n"
		"  --prometheus URL        compute the same from a Prometheus that scrapes the proxies\n"
		"                          through sinewd's service discovery (default $SINEW_PROMETHEUS)\n"
		"\n"
		"Exit status: 0, 1 sinewd (or Prometheus) failed, 2 usage error.\n");
}

struct view {
	int by_client;               /* deploy: rows per client workload */
	int client_column;           /* WORKLOAD: rows of several workloads */
	int ns_column;               /* NAMESPACE: rows of several namespaces */
	int wide;
	const char *path;
};

static int show(const struct sn_cli_live *lv, void *arg)
{
	const struct view *v = arg;
	struct sn_http_response r;

	int got = sn_cli_live_get(lv, v->path, "route stats", &r);
	if (got != 0)
		return got == 2 ? 0 : 1;
	struct fy_document *doc = sn_cli_json_parse(r.body, r.len);
	struct fy_node *list = sn_cli_json_root(doc);
	size_t n = sn_cli_json_len(list);
	int traffic = 0;
	static const char *const hdr[] = { "NAMESPACE", "WORKLOAD", "ROUTE", "SERVICE", "SUCCESS", "RPS",
					   "LATENCY_P50", "LATENCY_P95", "LATENCY_P99", "VIRTUAL_SERVICE", "REQUESTS" };
	/* the columns shown, in hdr's order */
	int on[SN_ARRAY_LEN(hdr)];
	size_t ncols = 0;
	for (size_t c = 0; c < SN_ARRAY_LEN(hdr); c++) {
		on[c] = c == 0 ? v->ns_column : c == 1 ? v->client_column : c >= 9 ? v->wide : 1;
		ncols += (size_t)on[c];
	}
	struct sn_cli_table t;
	const char *cells[SN_ARRAY_LEN(hdr)];
	size_t k = 0;
	sn_cli_table_init(&t, ncols);
	for (size_t c = 0; c < SN_ARRAY_LEN(hdr); c++)
		if (on[c])
			cells[k++] = hdr[c];
	sn_cli_table_row(&t, cells);
	for (size_t i = 0; i < n; i++) {
		struct fy_node *row = sn_cli_json_at(list, i);
		struct fy_node *svc = sn_cli_json_get(row, "service");
		struct fy_node *wl = sn_cli_json_get(row, "workload");
		struct fy_node *vs = sn_cli_json_get(row, "virtualService");
		char vsname[520];
		struct sn_cli_golden g = { .traffic = traffic };
		sn_cli_fmt_golden(row, &g);
		traffic = g.traffic;
		if (vs != NULL && sn_cli_json_str(vs, "name") != NULL)
			snprintf(vsname, sizeof(vsname), "%s/%s", sn_cli_json_str_or(vs, "namespace", "?"),
				 sn_cli_json_str(vs, "name"));
		else
			snprintf(vsname, sizeof(vsname), "-");
		const char *all[] = { sn_cli_json_str_or(v->by_client ? wl : svc, "namespace", "-"),
				      sn_cli_json_str_or(wl, "name", "-"), sn_cli_json_str_or(row, "route", "-"),
				      sn_cli_json_str_or(svc, "name", "-"), g.success, g.rps, g.p50, g.p95, g.p99, vsname,
				      g.requests };
		k = 0;
		for (size_t c = 0; c < SN_ARRAY_LEN(hdr); c++)
			if (on[c])
				cells[k++] = all[c];
		sn_cli_table_row(&t, cells);
	}
	if (n == 0) {
		printf("No routes found (clients' proxies report every --stats-interval, 10 s by default).\n");
	} else {
		sn_cli_table_print(&t, stdout);
		if (!traffic)
			fprintf(stderr, "sinew routes: no requests in the window yet; counts arrive with each proxy's "
					"next report (every --stats-interval, 10 s by default) and show once every proxy "
					"has reported for that slot: up to about 20 s after the traffic\n");
	}
	sn_cli_table_free(&t);
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
	return 0;
}

/* "svc", "deploy" and their other names; 1 deploy, 0 svc, -1 neither. */
static int resource_kind(const char *r)
{
	static const char *const svc[] = { "svc", "service", "services" };
	static const char *const deploy[] = { "deploy", "deployment", "deployments", "workload", "workloads" };
	for (size_t i = 0; i < SN_ARRAY_LEN(svc); i++)
		if (!strcmp(r, svc[i]))
			return 0;
	for (size_t i = 0; i < SN_ARRAY_LEN(deploy); i++)
		if (!strcmp(r, deploy[i]))
			return 1;
	return -1;
}

int sn_cli_routes(int argc, char **argv)
{
	struct sn_cli_live lv;
	const char *name = NULL;
	char path[1200], resource[64];
	struct view v = { 0 };
	int rc = sn_cli_live_parse(&lv, "routes", argc, argv, 1, usage);

	if (rc >= 0)
		return rc;
	v.wide = lv.wide;
	snprintf(resource, sizeof(resource), "svc");
	if (optind < argc) {
		/* "svc/NAME", or "svc [NAME]" as `sinew stat` takes it */
		const char *arg = argv[optind++], *slash = strchr(arg, '/');
		size_t rlen = slash != NULL ? (size_t)(slash - arg) : strlen(arg);
		if (rlen >= sizeof(resource)) {
			fprintf(stderr, "sinew routes: unknown resource \"%s\"; want svc or deploy\n", arg);
			return 2;
		}
		memcpy(resource, arg, rlen);
		resource[rlen] = '\0';
		if (slash != NULL && slash[1] != '\0')
			name = slash + 1;
		else if (slash == NULL && optind < argc)
			name = argv[optind++];
	}
	int kind = resource_kind(resource);
	if (kind < 0) {
		fprintf(stderr, "sinew routes: unknown resource \"%s\"; want svc (a service's routes) or deploy (a "
				"workload's outbound routes)\n", resource);
		return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "sinew routes: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	v.by_client = kind;
	v.client_column = kind && name == NULL;
	v.ns_column = lv.all_ns;
	if (sn_cli_live_path(&lv, "/api/v1/routes", kind ? "deploy" : "svc", 1, name, path, sizeof(path)) != 0) {
		fprintf(stderr, "sinew routes: the name or namespace is too long\n");
		return 2;
	}
	v.path = path;
	return sn_cli_live_run(&lv, show, &v);
}
