/* sinew stat: the golden metrics of workloads, services or namespaces --
 * who is meshed, success rate, requests per second, latency percentiles,
 * open connections -- as `linkerd viz stat` prints them, from sinewd's
 * live stats (GET /api/v1/stats, docs/api.md "Stats"): no Prometheus
 * needed; with --prometheus the same rows from a real one (prom.c). */
#include <getopt.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sinew/cli.h"
#include "sinew/cli_prom.h"
#include "sinew/loop.h"

#define WATCH_MS 2000

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew stat deploy|svc|ns [NAME] [-n NS | -A] [--window D] [-o json|wide] [--watch]\n"
		"                  [--server URL] [--prometheus URL]\n"
		"\n"
		"The golden metrics of each workload (deploy, deployment, workload), service\n"
		"(svc, service) or namespace (ns) over the last --window, from the request\n"
		"counts every proxy sends sinewd:\n"
		"  MESHED       its proxies connected now / connected or reporting in the window\n"
		"  SUCCESS      responses 1xx-4xx (and gRPC OK) out of all requests\n"
		"  RPS          requests a second\n"
		"  LATENCY_P50, _P95, _P99   interpolated in Istio's duration buckets\n"
		"  TCP_CONN     connections open to its proxies\n"
		"A workload is seen by its own proxies (inbound), else by its clients'.\n"
		"Requests a client's proxy answered itself (a fault abort, no healthy\n"
		"endpoint) count against the workload of the service they were for.\n"
		"\n"
		"  -n, --namespace NS      default \"default\"\n"
		"  -A, --all-namespaces    every namespace\n"
		"  --window D              10s to 1h (default 1m); it ends one report interval ago\n"
		"  -o json|wide            the API's JSON, or more columns (requests, mTLS share)\n"
		"  -w, --watch             print again every 2 s until interrupted\n"
		"  --server URL            sinewd's API (default $SINEW_SERVER, else " SN_CLI_DEFAULT_SERVER ")\n"
		"  --prometheus URL        compute the same from a Prometheus that scrapes the proxies\n"
		"                          through sinewd's service discovery (default $SINEW_PROMETHEUS)\n"
		"\n"
		"Exit status: 0, 1 sinewd (or Prometheus) failed, 2 usage error.\n");
}

/* "90.00%", "50.0rps", "3.2ms" / "120ms"; "-" for null. */
void sn_cli_fmt_percent(struct fy_node *row, const char *key, char *buf, size_t size)
{
	const char *v = sn_cli_json_str(row, key);
	if (v == NULL)
		snprintf(buf, size, "-");
	else
		snprintf(buf, size, "%.2f%%", strtod(v, NULL) * 100.0);
}

static void fmt_millis(struct fy_node *lat, const char *key, char *buf, size_t size)
{
	const char *v = sn_cli_json_str(lat, key);
	double ms = v != NULL ? strtod(v, NULL) : 0;
	if (v == NULL)
		snprintf(buf, size, "-");
	else if (ms < 10)
		snprintf(buf, size, "%.1fms", ms);
	else
		snprintf(buf, size, "%.0fms", ms);
}

void sn_cli_fmt_golden(struct fy_node *row, struct sn_cli_golden *g)
{
	struct fy_node *lat = sn_cli_json_get(row, "latencyMs");
	const char *rv = sn_cli_json_str(row, "rps");
	sn_cli_fmt_percent(row, "successRate", g->success, sizeof(g->success));
	if (sn_cli_json_str(row, "successRate") == NULL)
		snprintf(g->rps, sizeof(g->rps), "-");
	else
		snprintf(g->rps, sizeof(g->rps), "%.1frps", rv ? strtod(rv, NULL) : 0.0);
	fmt_millis(lat, "p50", g->p50, sizeof(g->p50));
	fmt_millis(lat, "p95", g->p95, sizeof(g->p95));
	fmt_millis(lat, "p99", g->p99, sizeof(g->p99));
	snprintf(g->requests, sizeof(g->requests), "%lld", sn_cli_json_int(row, "requests", 0));
	g->traffic |= sn_cli_json_int(row, "requests", 0) > 0;
}

struct stat_view {
	const char *path;
	int all_ns;                  /* a NAMESPACE column: rows of several namespaces */
};

static int show(const struct sn_cli_live *lv, void *arg)
{
	const struct stat_view *v = arg;
	const char *prom = lv->prom;
	int wide = lv->wide, all_ns = v->all_ns;
	struct sn_http_response r;

	int got = sn_cli_live_get(lv, v->path, "live stats", &r);
	if (got != 0)
		return got == 2 ? 0 : 1;
	struct fy_document *doc = sn_cli_json_parse(r.body, r.len);
	struct fy_node *list = sn_cli_json_root(doc);
	size_t n = sn_cli_json_len(list);
	int traffic = 0;
	static const char *const hdr[] = { "NAMESPACE", "NAME", "MESHED", "SUCCESS", "RPS", "LATENCY_P50",
					   "LATENCY_P95", "LATENCY_P99", "TCP_CONN", "REQUESTS", "MTLS" };
	size_t first = all_ns ? 0 : 1, ncols = (wide ? 11 : 9) - first;
	struct sn_cli_table t;
	sn_cli_table_init(&t, ncols);
	sn_cli_table_row(&t, hdr + first);
	for (size_t i = 0; i < n; i++) {
		struct fy_node *row = sn_cli_json_at(list, i);
		char tcp[32], mtls[32];
		struct sn_cli_golden g = { .traffic = traffic };
		sn_cli_fmt_golden(row, &g);
		traffic = g.traffic;
		snprintf(tcp, sizeof(tcp), "%lld", sn_cli_json_int(row, "tcpConnections", 0));
		sn_cli_fmt_percent(row, "mtlsShare", mtls, sizeof(mtls));
		const char *cells[] = { sn_cli_json_str(row, "namespace"), sn_cli_json_str(row, "name"),
					sn_cli_json_str(row, "meshed"), g.success, g.rps, g.p50, g.p95, g.p99, tcp, g.requests, mtls };
		sn_cli_table_row(&t, cells + first);
	}
	if (n == 0 && prom != NULL) {
		printf("No traffic found in Prometheus at %s (is it scraping sinewd's /api/v1/prometheus/targets?).\n",
		       prom);
	} else if (n == 0) {
		printf("No traffic found (proxies report every --stats-interval, 10 s by default).\n");
	} else {
		sn_cli_table_print(&t, stdout);
		/* why the columns read "-" right after traffic (docs/observability.md, "Live stats") */
		if (!traffic && prom != NULL)
			fprintf(stderr, "sinew stat: no requests in the window in Prometheus; a rate needs two scrapes "
					"with traffic between them inside --window\n");
		else if (!traffic)
			fprintf(stderr, "sinew stat: no requests in the window yet; counts arrive with each proxy's next "
					"report (every --stats-interval, 10 s by default) and show once every proxy has "
					"reported for that slot: up to about 20 s after the traffic\n");
	}
	sn_cli_table_free(&t);
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
	return 0;
}

/* ---- the live views' common parts (cli.h) -------------------------------- */

int sn_cli_live_parse(struct sn_cli_live *lv, const char *cmd, int argc, char **argv, int watch_ok,
		      void (*say_usage)(FILE *))
{
	enum { O_SERVER = 256, O_WINDOW, O_PROMETHEUS };
	static const struct option opts[] = {
		{ "namespace", required_argument, NULL, 'n' },
		{ "all-namespaces", no_argument, NULL, 'A' },
		{ "window", required_argument, NULL, O_WINDOW },
		{ "output", required_argument, NULL, 'o' },
		{ "watch", no_argument, NULL, 'w' },
		{ "prometheus", required_argument, NULL, O_PROMETHEUS },
		{ "server", required_argument, NULL, O_SERVER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *prom = NULL;
	int o;

	memset(lv, 0, sizeof(*lv));
	lv->cmd = cmd;
	lv->ns = "default";
	lv->window = "1m";
	optind = 0;
	while ((o = getopt_long(argc, argv, watch_ok ? "n:Ao:wh" : "n:Ao:h", opts, NULL)) != -1) {
		switch (o) {
		case 'n': lv->ns = optarg; break;
		case 'A': lv->all_ns = 1; break;
		case O_WINDOW: lv->window = optarg; break;
		case 'o':
			if (!strcmp(optarg, "json"))
				lv->json = 1;
			else if (!strcmp(optarg, "wide"))
				lv->wide = 1;
			else {
				fprintf(stderr, "sinew %s: -o %s: want json or wide\n", cmd, optarg);
				return 2;
			}
			break;
		case 'w':
			if (!watch_ok) {
				say_usage(stderr);
				return 2;
			}
			lv->watch = 1;
			break;
		case O_SERVER: server = optarg; break;
		case O_PROMETHEUS: prom = optarg; break;
		case 'h': say_usage(stdout); return 0;
		default: say_usage(stderr); return 2;
		}
	}
	lv->server = sn_cli_server(server);
	lv->prom = sn_cli_prometheus(prom);
	return -1;
}

int sn_cli_live_path(const struct sn_cli_live *lv, const char *base, const char *resource, int with_ns,
		     const char *name, char *buf, size_t size)
{
	char esc_ns[400], esc_name[400], esc_window[64];
	sn_cli_url_escape(lv->window, esc_window, sizeof(esc_window));
	sn_cli_url_escape(lv->ns, esc_ns, sizeof(esc_ns));
	if (name != NULL)
		sn_cli_url_escape(name, esc_name, sizeof(esc_name));
	int n = snprintf(buf, size, "%s?window=%s%s%s%s%s%s%s", base, esc_window, resource ? "&resource=" : "",
			 resource ? resource : "", with_ns && !lv->all_ns ? "&namespace=" : "",
			 with_ns && !lv->all_ns ? esc_ns : "", name ? "&name=" : "", name ? esc_name : "");
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int sn_cli_live_get(const struct sn_cli_live *lv, const char *path, const char *feature, struct sn_http_response *r)
{
	return lv->prom != NULL ? sn_cli_prom_api_get(lv->prom, path, lv->json, r)
				: sn_cli_api_get(lv->server, path, feature, lv->json, r);
}

int sn_cli_live_run(const struct sn_cli_live *lv, int (*render)(const struct sn_cli_live *lv, void *arg), void *arg)
{
	if (!lv->watch)
		return render(lv, arg);
	/* Until interrupted (SIGINT ends the process, as `watch` does). */
	int tty = isatty(STDOUT_FILENO);
	for (;;) {
		if (tty)
			fputs("\033[H\033[2J", stdout);
		int rc = render(lv, arg);
		if (rc != 0)
			return rc;
		if (!tty)
			putchar('\n');
		fflush(stdout);
		sn_sleep_ms(WATCH_MS);
	}
}

int sn_cli_stat(int argc, char **argv)
{
	struct sn_cli_live lv;
	const char *resource, *name = NULL;
	char path[1200];
	int rc = sn_cli_live_parse(&lv, "stat", argc, argv, 1, usage);

	if (rc >= 0)
		return rc;
	if (optind >= argc) {
		fprintf(stderr, "sinew stat: say what to show: deploy, svc or ns (e.g. sinew stat deploy)\n");
		return 2;
	}
	resource = argv[optind++];
	if (!strcmp(resource, "po") || !strcmp(resource, "pod") || !strcmp(resource, "pods")) {
		fprintf(stderr, "sinew stat: %s: Sinew shows workloads (deploy), services (svc) and namespaces (ns)\n",
			resource);
		return 2;
	}
	int is_ns = !strcmp(resource, "ns") || !strcmp(resource, "namespace") || !strcmp(resource, "namespaces");
	if (!is_ns && strcmp(resource, "deploy") && strcmp(resource, "deployment") && strcmp(resource, "deployments") &&
	    strcmp(resource, "workload") && strcmp(resource, "workloads") && strcmp(resource, "svc") &&
	    strcmp(resource, "service") && strcmp(resource, "services")) {
		fprintf(stderr, "sinew stat: unknown resource \"%s\"; want deploy, svc or ns\n", resource);
		return 2;
	}
	if (optind < argc)
		name = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "sinew stat: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	/* a namespace row is named by its namespace; -n does not narrow it */
	if (sn_cli_live_path(&lv, "/api/v1/stats", resource, !is_ns, name, path, sizeof(path)) != 0) {
		fprintf(stderr, "sinew stat: the name or namespace is too long\n");
		return 2;
	}
	/* a NAMESPACE column where rows of several namespaces show */
	struct stat_view v = { path, lv.all_ns && !is_ns };
	return sn_cli_live_run(&lv, show, &v);
}
