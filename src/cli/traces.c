/* sinew traces: the recent traces sinewd keeps (GET /api/v1/traces), and
 * one trace as a text waterfall (GET /api/v1/traces/ID): each span on its
 * line, indented under its parent, with its service, duration and a bar
 * placed on the trace's time line. docs/observability.md, "Tracing". */
#include <getopt.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/cli.h"

#define MAX_SPANS 1000
#define BAR 40

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew traces [TRACE_ID] [--service NAME] [--limit N] [--errors] [-o json] [--server URL]\n"
		"\n"
		"Without TRACE_ID: the newest traces sinewd keeps (the proxies send it their\n"
		"sampled spans): trace ID, root span, services, span count, duration.\n"
		"With TRACE_ID: that trace as a waterfall, each span under its parent.\n"
		"\n"
		"  --service NAME  only traces with a span of this service (e.g. reviews.default)\n"
		"  --limit N       at most N traces (default 20)\n"
		"  --errors        only traces with an error span\n"
		"  -o json         the API's JSON (OTLP JSON for one trace)\n"
		"  --server URL    sinewd's API (default $SINEW_SERVER, else " SN_CLI_DEFAULT_SERVER ")\n"
		"\n"
		"Sampling: 1 %% of new traces by default (Istio's); a Telemetry resource's\n"
		"randomSamplingPercentage changes it (docs/configuration.md, \"Telemetry\").\n"
		"\n"
		"Exit status: 0, 1 sinewd failed or has no such trace, 2 usage error.\n");
}

struct span {
	const char *id, *parent, *name, *service;
	unsigned long long start, end;
	int error, depth, done;
};

static unsigned long long nano(struct fy_node *sp, const char *key)
{
	const char *s = sn_cli_json_str(sp, key);
	return s != NULL ? strtoull(s, NULL, 10) : 0;
}

static void print_tree(struct span *v, size_t n, size_t at, int depth, unsigned long long t0,
		       unsigned long long total)
{
	struct span *s = &v[at];
	char bar[BAR + 1], label[200];
	s->done = 1;
	unsigned long long from = s->start > t0 ? s->start - t0 : 0, len = s->end > s->start ? s->end - s->start : 0;
	size_t a = total ? (size_t)(from * BAR / total) : 0, b = total ? (size_t)((from + len) * BAR / total) : 0;
	if (a >= BAR)
		a = BAR - 1;
	if (b <= a)
		b = a + 1;
	if (b > BAR)
		b = BAR;
	for (size_t i = 0; i < BAR; i++)
		bar[i] = i >= a && i < b ? '#' : '.';
	bar[BAR] = '\0';
	snprintf(label, sizeof(label), "%*s%s", depth * 2, "", s->name);
	printf("%-56.56s %-26.26s %9.2fms %s%s\n", label, s->service, (double)len / 1e6, bar, s->error ? " ERROR" : "");
	for (size_t i = 0; i < n; i++)
		if (!v[i].done && v[i].parent != NULL && !strcmp(v[i].parent, s->id))
			print_tree(v, n, i, depth + 1, t0, total);
}

static int show_trace(const char *server, const char *id, int json)
{
	char path[128];
	struct sn_http_response r;
	snprintf(path, sizeof(path), "/api/v1/traces/%s", id);
	int got = sn_cli_api_get(server, path, NULL, json, &r);
	if (got != 0)
		return got == 2 ? 0 : 1;
	struct fy_document *doc = sn_cli_json_parse(r.body, r.len);
	struct fy_node *rs = sn_cli_json_get(sn_cli_json_root(doc), "resourceSpans");
	struct span *v = calloc(MAX_SPANS, sizeof(*v));
	size_t n = 0;
	unsigned long long t0 = ~0ull, t1 = 0;
	for (size_t i = 0; v != NULL && i < sn_cli_json_len(rs); i++) {
		struct fy_node *res = sn_cli_json_at(rs, i);
		const char *svc = "?";
		struct fy_node *ra = sn_cli_json_get(sn_cli_json_get(res, "resource"), "attributes");
		for (size_t k = 0; k < sn_cli_json_len(ra); k++) {
			struct fy_node *a = sn_cli_json_at(ra, k);
			if (!strcmp(sn_cli_json_str_or(a, "key", ""), "service.name"))
				svc = sn_cli_json_str_or(sn_cli_json_get(a, "value"), "stringValue", "?");
		}
		struct fy_node *ss = sn_cli_json_get(res, "scopeSpans");
		for (size_t k = 0; k < sn_cli_json_len(ss); k++) {
			struct fy_node *spans = sn_cli_json_get(sn_cli_json_at(ss, k), "spans");
			for (size_t j = 0; j < sn_cli_json_len(spans) && n < MAX_SPANS; j++) {
				struct fy_node *sp = sn_cli_json_at(spans, j);
				struct span *s = &v[n++];
				s->id = sn_cli_json_str_or(sp, "spanId", "");
				s->parent = sn_cli_json_str(sp, "parentSpanId");
				if (s->parent != NULL && s->parent[0] == '\0')
					s->parent = NULL;
				s->name = sn_cli_json_str_or(sp, "name", "?");
				s->service = svc;
				s->start = nano(sp, "startTimeUnixNano");
				s->end = nano(sp, "endTimeUnixNano");
				s->error = sn_cli_json_int(sn_cli_json_get(sp, "status"), "code", 0) == 2;
				t0 = s->start < t0 ? s->start : t0;
				t1 = s->end > t1 ? s->end : t1;
			}
		}
	}
	printf("trace %s: %zu spans, %.2fms\n", id, n, n && t1 > t0 ? (double)(t1 - t0) / 1e6 : 0.0);
	/* roots: no parent, or a parent that is not here; earliest first */
	for (;;) {
		size_t best = n;
		for (size_t i = 0; i < n; i++) {
			if (v[i].done)
				continue;
			int orphan = v[i].parent == NULL;
			for (size_t k = 0; !orphan && k < n; k++)
				if (!strcmp(v[k].id, v[i].parent))
					break;
				else if (k == n - 1)
					orphan = 1;
			if (orphan && (best == n || v[i].start < v[best].start))
				best = i;
		}
		if (best == n)
			break;
		print_tree(v, n, best, 0, t0, t1 > t0 ? t1 - t0 : 1);
	}
	free(v);
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
	return 0;
}

int sn_cli_traces(int argc, char **argv)
{
	enum { O_SERVER = 256, O_SERVICE, O_LIMIT, O_ERRORS };
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "server", required_argument, NULL, O_SERVER },
		{ "service", required_argument, NULL, O_SERVICE },
		{ "limit", required_argument, NULL, O_LIMIT },
		{ "errors", no_argument, NULL, O_ERRORS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *service = NULL;
	int json = 0, errors = 0, o;
	long limit = 20;

	optind = 0;
	while ((o = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (o) {
		case 'o':
			if (strcmp(optarg, "json") != 0) {
				fprintf(stderr, "sinew traces: -o %s: want json\n", optarg);
				return 2;
			}
			json = 1;
			break;
		case O_SERVER: server = optarg; break;
		case O_SERVICE: service = optarg; break;
		case O_LIMIT: {
			char *end;
			limit = strtol(optarg, &end, 10);
			if (*end != '\0' || limit < 1 || limit > 1000) {
				fprintf(stderr, "sinew traces: --limit %s: want 1 to 1000\n", optarg);
				return 2;
			}
			break;
		}
		case O_ERRORS: errors = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	server = sn_cli_server(server);
	if (optind < argc) {
		const char *id = argv[optind++];
		if (optind < argc) {
			fprintf(stderr, "sinew traces: unexpected argument \"%s\"\n", argv[optind]);
			return 2;
		}
		return show_trace(server, id, json);
	}

	char path[512];
	int pl = snprintf(path, sizeof(path), "/api/v1/traces?limit=%ld%s", limit, errors ? "&error=true" : "");
	if (service != NULL) {
		/* a service name is a DNS label set: nothing to escape but refuse the rest */
		for (const char *c = service; *c; c++)
			if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '.')) {
				fprintf(stderr, "sinew traces: --service %s: want a service name such as "
						"reviews.default\n", service);
				return 2;
			}
		snprintf(path + pl, sizeof(path) - (size_t)pl, "&service=%s", service);
	}
	struct sn_http_response r;
	int got = sn_cli_api_get(server, path, "traces", json, &r);
	if (got != 0)
		return got == 2 ? 0 : 1;
	struct fy_document *doc = sn_cli_json_parse(r.body, r.len);
	struct fy_node *list = sn_cli_json_get(sn_cli_json_root(doc), "traces");
	size_t n = sn_cli_json_len(list);
	struct sn_cli_table t;
	static const char *const hdr[] = { "TRACE", "ROOT", "SERVICES", "SPANS", "DURATION", "ERROR" };
	sn_cli_table_init(&t, 6);
	sn_cli_table_row(&t, hdr);
	for (size_t i = 0; i < n; i++) {
		struct fy_node *tr = sn_cli_json_at(list, i);
		char services[400] = "", spans[16], dur[32], root[300];
		struct fy_node *sv = sn_cli_json_get(tr, "services");
		for (size_t k = 0; k < sn_cli_json_len(sv); k++) {
			struct fy_node *x = sn_cli_json_at(sv, k);
			const char *s = x ? fy_node_get_scalar0(x) : NULL;
			size_t l = strlen(services);
			if (s != NULL)
				snprintf(services + l, sizeof(services) - l, "%s%s", l ? "," : "", s);
		}
		snprintf(root, sizeof(root), "%s %s", sn_cli_json_str_or(tr, "rootService", "?"),
			 sn_cli_json_str_or(tr, "rootName", "?"));
		snprintf(spans, sizeof(spans), "%lld", (long long)sn_cli_json_int(tr, "spanCount", 0));
		const char *d = sn_cli_json_str(tr, "durationMs");
		snprintf(dur, sizeof(dur), "%sms", d ? d : "?");
		struct fy_node *err = sn_cli_json_get(tr, "error");
		const char *es = err ? fy_node_get_scalar0(err) : NULL;
		const char *cells[] = { sn_cli_json_str_or(tr, "traceId", "?"), root, services, spans, dur,
					es && !strcmp(es, "true") ? "yes" : "" };
		sn_cli_table_row(&t, cells);
	}
	if (n == 0)
		printf("No traces in sinewd at %s yet. Spans come from sampled requests: 1 %% by default;\n"
		       "a Telemetry resource with randomSamplingPercentage: 100 samples every request.\n", server);
	else
		sn_cli_table_print(&t, stdout);
	sn_cli_table_free(&t);
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
	return 0;
}
