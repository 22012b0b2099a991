/* sinew edges: which workloads call which, and whether those calls are
 * secured by mutual TLS with whose identities, as `linkerd viz edges`
 * prints them, from sinewd's live stats (GET /api/v1/edges, docs/api.md
 * "Stats"), or with --prometheus from a real Prometheus (prom.c). */
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/cli.h"
#include "sinew/cli_prom.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew edges deploy [-n NS | -A] [--window D] [-o json|wide] [--server URL]\n"
		"                   [--prometheus URL]\n"
		"\n"
		"The workload pairs with traffic in the last --window, as the callers' proxies\n"
		"saw them: SECURED is yes when every request that reached the destination went\n"
		"over mutual TLS; -o wide adds the identities each side proved and the rate.\n"
		"\n"
		"  -n, --namespace NS      edges with an end in NS (default \"default\")\n"
		"  -A, --all-namespaces    every edge\n"
		"  --window D              10s to 1h (default 1m)\n"
		"  -o json|wide            the API's JSON, or more columns\n"
		"  --server URL            sinewd's API (default $SINEW_SERVER, else " SN_CLI_DEFAULT_SERVER ")\n"
		"  --prometheus URL        compute the same from a Prometheus that scrapes the proxies\n"
		"                          through sinewd's service discovery (default $SINEW_PROMETHEUS)\n"
		"\n"
		"Exit status: 0, 1 sinewd (or Prometheus) failed, 2 usage error.\n");
}

int sn_cli_edges(int argc, char **argv)
{
	struct sn_cli_live lv;
	char path[600];
	int rc = sn_cli_live_parse(&lv, "edges", argc, argv, 0, usage);

	if (rc >= 0)
		return rc;
	if (optind >= argc) {
		fprintf(stderr, "sinew edges: say what to show: deploy (e.g. sinew edges deploy)\n");
		return 2;
	}
	const char *resource = argv[optind++];
	if (strcmp(resource, "deploy") && strcmp(resource, "deployment") && strcmp(resource, "deployments") &&
	    strcmp(resource, "workload") && strcmp(resource, "workloads")) {
		fprintf(stderr, "sinew edges: %s: edges join workloads; use sinew edges deploy\n", resource);
		return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "sinew edges: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	if (sn_cli_live_path(&lv, "/api/v1/edges", NULL, 1, NULL, path, sizeof(path)) != 0) {
		fprintf(stderr, "sinew edges: the namespace is too long\n");
		return 2;
	}
	const char *prom = lv.prom;
	int wide = lv.wide;

	struct sn_http_response r;
	int got = sn_cli_live_get(&lv, path, "live stats", &r);
	if (got != 0)
		return got == 2 ? 0 : 1;
	struct fy_document *doc = sn_cli_json_parse(r.body, r.len);
	struct fy_node *list = sn_cli_json_root(doc);
	size_t n = sn_cli_json_len(list);
	static const char *const hdr[] = { "SRC", "DST", "SRC_NS", "DST_NS", "SECURED", "CLIENT_ID", "SERVER_ID",
					   "RPS" };
	struct sn_cli_table t;
	sn_cli_table_init(&t, wide ? 8 : 5);
	sn_cli_table_row(&t, hdr);
	for (size_t i = 0; i < n; i++) {
		struct fy_node *e = sn_cli_json_at(list, i);
		struct fy_node *src = sn_cli_json_get(e, "src"), *dst = sn_cli_json_get(e, "dst");
		const char *rps = sn_cli_json_str(e, "rps");
		char rate[48];
		snprintf(rate, sizeof(rate), "%.1frps", rps ? strtod(rps, NULL) : 0.0);
		const char *cells[] = { sn_cli_json_str(src, "workload"), sn_cli_json_str(dst, "workload"),
					sn_cli_json_str(src, "namespace"), sn_cli_json_str(dst, "namespace"),
					sn_cli_json_bool(e, "mtls") ? "yes" : "no", sn_cli_json_str(e, "clientIdentity"),
					sn_cli_json_str(e, "serverIdentity"), rate };
		sn_cli_table_row(&t, cells);
	}
	if (n == 0 && prom != NULL)
		printf("No edges found in Prometheus at %s (is it scraping sinewd's /api/v1/prometheus/targets?).\n",
		       prom);
	else if (n == 0)
		printf("No edges found (proxies report every --stats-interval, 10 s by default).\n");
	else
		sn_cli_table_print(&t, stdout);
	sn_cli_table_free(&t);
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
	return 0;
}
