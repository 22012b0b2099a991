/* sinew tap and sinew top: the live request stream of chosen proxies, as
 * `linkerd viz tap` and `linkerd viz top` show it, from sinewd's
 * GET /api/v1/tap (docs/api.md "Tap"). Tapping needs sinewd's tap token
 * (DATA_DIR/tap.token): read from --token-file, $SINEW_TAP_TOKEN, or the
 * data directory the sinewd asked names. */
#include <errno.h>
#include <getopt.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sinew/cli.h"
#include "sinew/config.h"
#include "sinew/json.h"
#include "sinew/loop.h"

#define TOP_MAX_ROWS 1000
#define TOP_REFRESH_MS 1000

struct tap_opts {
	const char *server;
	const char *token_file;
	char ns[64];
	int all_ns;
	char kind[16];                /* "workload", "pod", "proxy", "ns" */
	char name[256];
	const char *path, *method, *authority, *status, *direction;
	char redact[512];
	int bodies;
	unsigned long max;
	uint32_t duration_ms;
	int json, wide;
};

static void tap_usage(FILE *f, int top)
{
	if (top)
		fprintf(f, "usage: sinew top deploy|pod|ns|proxy[/NAME] [-n NS | -A] [filters] [--max N] [--duration D]\n"
			   "                 [-o json] [--server URL] [--token-file F]\n"
			   "\n"
			   "The busiest paths of the chosen proxies' live requests (their tap), most\n"
			   "requested first: SOURCE, DESTINATION, METHOD, PATH, COUNT, BEST, WORST, LAST\n"
			   "(latency) and SUCCESS (rate). On a terminal the table redraws each second until\n"
			   "interrupted; otherwise (or with -o json) it prints once the tap ends: give\n"
			   "--duration or --max.\n\n");
	else
		fprintf(f, "usage: sinew tap deploy|pod|ns|proxy[/NAME] [-n NS | -A] [filters] [--bodies] [--redact H]...\n"
			   "                 [--max N] [--duration D] [-o json|wide] [--server URL] [--token-file F]\n"
			   "\n"
			   "The live requests the chosen proxies see, each as its proxy finished it:\n"
			   "  req id=... proxy=in|out src=ADDRESS dst=ADDRESS tls=true|false :method=... :authority=... :path=...\n"
			   "  rsp id=... ... :status=200 latency=1234us\n"
			   "  end id=... ... duration=1300us response-length=512B\n"
			   "-o wide adds the headers (and bodies with --bodies); -o json prints sinewd's\n"
			   "stream, one JSON object a line (docs/api.md \"Tap\").\n\n");
	fprintf(f, "  deploy/NAME       the proxies of workload NAME (reviews-v2), or of every workload of\n"
		   "                    service NAME (reviews) (also deployment/, workload/, svc/); pod/NAME\n"
		   "                    a pod's; proxy/ID one proxy; ns/NS or a bare kind: every proxy of the\n"
		   "                    namespace\n"
		   "  -n, --namespace NS     default \"default\"\n"
		   "  -A, --all-namespaces   every namespace\n"
		   "  --path P          requests whose path starts with P\n"
		   "  --method M        requests with method M\n"
		   "  --authority A     requests for authority A (with or without its port)\n"
		   "  --status S        responses with status S (503) or class S (5xx)\n"
		   "  --direction D     inbound (served) or outbound (sent) requests only\n");
	if (!top)
		fprintf(f, "  --bodies          also the first 4 KiB of each body (off unless asked)\n"
			   "  --redact H        hide header H's value too (repeatable); authorization,\n"
			   "                    proxy-authorization, cookie and set-cookie are always hidden\n");
	fprintf(f, "  --max N           stop after N requests\n"
		   "  --duration D      stop after D (1s to 1h; default 10m)\n"
		   "  --token-file F    sinewd's tap token (default $SINEW_TAP_TOKEN, else tap.token in the\n"
		   "                    data directory of the sinewd asked: readable by the user who runs it)\n"
		   "  --server URL      sinewd's API (default $SINEW_SERVER, else " SN_CLI_DEFAULT_SERVER ")\n"
		   "\nExit status: 0, 1 refused or failed, 2 usage error.\n");
}

/* "deploy/NAME", "pod/NAME", "proxy/ID", "ns/NS", "deploy", "ns". */
static int parse_target(const char *arg, struct tap_opts *o)
{
	static const struct {
		const char *word, *kind;
	} kinds[] = {
		{ "deploy", "workload" }, { "deployment", "workload" }, { "deployments", "workload" },
		{ "workload", "workload" }, { "workloads", "workload" }, { "svc", "workload" },
		{ "service", "workload" }, { "pod", "pod" }, { "pods", "pod" }, { "po", "pod" },
		{ "proxy", "proxy" }, { "proxies", "proxy" }, { "ns", "ns" }, { "namespace", "ns" },
	};
	const char *slash = strchr(arg, '/');
	size_t kl = slash ? (size_t)(slash - arg) : strlen(arg);
	for (size_t i = 0; i < SN_ARRAY_LEN(kinds); i++) {
		if (strlen(kinds[i].word) != kl || strncmp(arg, kinds[i].word, kl) != 0)
			continue;
		snprintf(o->kind, sizeof(o->kind), "%s", kinds[i].kind);
		if (slash != NULL && slash[1] != '\0') {
			if (strlen(slash + 1) >= sizeof(o->name))
				return -1;
			snprintf(o->name, sizeof(o->name), "%s", slash + 1);
		}
		return 0;
	}
	return -1;
}

/* The token: --token-file, $SINEW_TAP_TOKEN, or DATA_DIR/tap.token of the
 * sinewd asked. 0, or -1 after saying why. */
static int read_token(const struct tap_opts *o, char *out, size_t size)
{
	char path[4200];
	const char *env = getenv("SINEW_TAP_TOKEN");

	if (o->token_file == NULL && env != NULL && env[0]) {
		snprintf(out, size, "%s", env);
		return 0;
	}
	if (o->token_file != NULL) {
		snprintf(path, sizeof(path), "%s", o->token_file);
	} else {
		struct sn_http_response r;
		if (sn_cli_api_get(o->server, "/api/v1/version", NULL, 0, &r) != 0)
			return -1;
		struct fy_document *doc = sn_cli_json_parse(r.body, r.len);
		const char *dir = doc ? sn_cli_json_str(sn_cli_json_root(doc), "dataDir") : NULL;
		if (dir == NULL) {
			fprintf(stderr, "sinew: sinewd at %s does not say its data directory; give --token-file\n",
				o->server);
			sn_cli_json_free(doc);
			sn_http_response_free(&r);
			return -1;
		}
		snprintf(path, sizeof(path), "%s/tap.token", dir);
		sn_cli_json_free(doc);
		sn_http_response_free(&r);
	}
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		fprintf(stderr, "sinew: cannot read the tap token %s (%s): tapping needs it; run as the user who runs "
				"the mesh (root for `sinew up`), or give --token-file\n", path, strerror(errno));
		return -1;
	}
	size_t n = fread(out, 1, size - 1, f);
	fclose(f);
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
		n--;
	out[n] = '\0';
	return 0;
}

static int add_param(char *path, size_t size, const char *key, const char *value)
{
	char esc[1600];
	size_t len = strlen(path);
	if (value == NULL || value[0] == '\0')
		return 0;
	sn_cli_url_escape(value, esc, sizeof(esc));
	int n = snprintf(path + len, size - len, "%s%s=%s", strchr(path, '?') ? "&" : "?", key, esc);
	return n < 0 || (size_t)n >= size - len ? -1 : 0;
}

/* ---- tap --------------------------------------------------------------- */

struct tap_state {
	const struct tap_opts *o;
	unsigned long events;
	int ended;
	char end_reason[64];
};

static void print_fields(struct fy_node *list, const char *mark)
{
	for (size_t i = 0; i < sn_cli_json_len(list); i++) {
		struct fy_node *f = sn_cli_json_at(list, i);
		struct fy_node *k = sn_cli_json_at(f, 0), *v = sn_cli_json_at(f, 1);
		const char *ks = k && fy_node_is_scalar(k) ? fy_node_get_scalar0(k) : "?";
		const char *vs = v && fy_node_is_scalar(v) ? fy_node_get_scalar0(v) : "";
		printf("    %s %s: %s\n", mark, ks, vs);
	}
}

static void print_body(struct fy_node *ev, const char *key, const char *cut_key, const char *mark)
{
	const char *b = sn_cli_json_str(ev, key);
	if (b == NULL)
		return;
	printf("    %s body (%s%zu bytes):\n%s\n", mark, sn_cli_json_bool(ev, cut_key) ? "first " : "", strlen(b), b);
}

static int on_tap_line(const char *line, size_t len, void *arg)
{
	struct tap_state *st = arg;
	struct fy_document *doc = sn_cli_json_parse(line, len);
	struct fy_node *root = doc ? sn_cli_json_root(doc) : NULL;
	const char *type = root ? sn_cli_json_str(root, "type") : NULL;

	if (type == NULL) {
		sn_cli_json_free(doc);
		return 0;
	}
	if (st->o->json) {
		fwrite(line, 1, len, stdout);
		putchar('\n');
	}
	if (!strcmp(type, "start") && !st->o->json) {
		struct fy_node *px = sn_cli_json_get(root, "proxies");
		fprintf(stderr, "sinew tap: tapping %zu prox%s", sn_cli_json_len(px), sn_cli_json_len(px) == 1 ? "y" : "ies");
		for (size_t i = 0; i < sn_cli_json_len(px) && i < 8; i++)
			fprintf(stderr, "%s%s", i ? ", " : " (", sn_cli_json_str_or(sn_cli_json_at(px, i), "id", "?"));
		fprintf(stderr, "%s; Ctrl-C ends it\n", sn_cli_json_len(px) ? (sn_cli_json_len(px) > 8 ? ", ...)" : ")") : "");
	} else if (!strcmp(type, "end")) {
		st->ended = 1;
		snprintf(st->end_reason, sizeof(st->end_reason), "%s", sn_cli_json_str_or(root, "reason", "?"));
		long long dropped = sn_cli_json_int(root, "dropped", 0);
		if (dropped > 0)
			fprintf(stderr, "sinew tap: %lld requests matched but were not shown (each proxy sends at most 100 a "
					"second per tap, and sinewd holds 1 MiB for a slow reader)\n", dropped);
	} else if (!strcmp(type, "event") && !st->o->json) {
		struct fy_node *ev = sn_cli_json_get(root, "event");
		struct fy_node *src = sn_cli_json_get(ev, "source"), *dst = sn_cli_json_get(ev, "destination");
		char id[96], common[600];
		const char *dir = sn_cli_json_str_or(ev, "direction", "?");
		snprintf(id, sizeof(id), "%s:%lu", sn_cli_json_str_or(sn_cli_json_get(root, "proxy"), "workload", "?"),
			 st->events + 1);
		snprintf(common, sizeof(common), "id=%s proxy=%s src=%s dst=%s tls=%s", id,
			 !strcmp(dir, "inbound") ? "in" : "out", sn_cli_json_str_or(src, "address", "-"),
			 sn_cli_json_str_or(dst, "address", "-"), sn_cli_json_bool(ev, "tls") ? "true" : "false");
		printf("req %s :method=%s :authority=%s :path=%s\n", common, sn_cli_json_str_or(ev, "method", ""),
		       sn_cli_json_str_or(ev, "authority", ""), sn_cli_json_str_or(ev, "path", ""));
		if (st->o->wide) {
			print_fields(sn_cli_json_get(ev, "requestHeaders"), ">");
			print_body(ev, "requestBody", "requestBodyCut", ">");
		}
		const char *up = sn_cli_json_str(ev, "upstreamMs");
		const char *err = sn_cli_json_str(ev, "sinewError");
		const char *grpc = sn_cli_json_str(ev, "grpcStatus");
		printf("rsp %s :status=%lld%s%s%s%s latency=%.0fus\n", common, sn_cli_json_int(ev, "status", 0),
		       grpc ? " grpc-status=" : "", grpc ? grpc : "", err ? " sinew-error=" : "", err ? err : "",
		       (up ? strtod(up, NULL) : strtod(sn_cli_json_str_or(ev, "durationMs", "0"), NULL)) * 1000.0);
		if (st->o->wide) {
			print_fields(sn_cli_json_get(ev, "responseHeaders"), "<");
			print_body(ev, "responseBody", "responseBodyCut", "<");
		}
		printf("end %s duration=%.0fus response-length=%lldB\n", common,
		       strtod(sn_cli_json_str_or(ev, "durationMs", "0"), NULL) * 1000.0,
		       sn_cli_json_int(ev, "responseBytes", 0));
	}
	if (!strcmp(type, "event"))
		st->events++;
	fflush(stdout);
	sn_cli_json_free(doc);
	return st->ended || (st->o->max && st->events >= st->o->max);
}

/* ---- top --------------------------------------------------------------- */

struct top_row {
	char source[160], destination[160], method[24], path[200];
	unsigned long count, ok;
	double best, worst, last;
};

struct top_state {
	const struct tap_opts *o;
	struct top_row *rows;
	size_t n;
	unsigned long events, left_out;
	int ended, tty;
	uint64_t drawn_ms;
};

static int row_cmp(const void *a, const void *b)
{
	const struct top_row *x = a, *y = b;
	if (x->count != y->count)
		return x->count < y->count ? 1 : -1;
	int c = strcmp(x->path, y->path);
	return c ? c : strcmp(x->source, y->source);
}

static void top_draw(struct top_state *st)
{
	qsort(st->rows, st->n, sizeof(*st->rows), row_cmp);
	if (st->o->json) {
		printf("[");
		for (size_t i = 0; i < st->n; i++) {
			const struct top_row *r = &st->rows[i];
			printf("%s{\"source\":", i ? "," : "");
			sn_json_fput_cstr(stdout, r->source);
			printf(",\"destination\":");
			sn_json_fput_cstr(stdout, r->destination);
			printf(",\"method\":");
			sn_json_fput_cstr(stdout, r->method);
			printf(",\"path\":");
			sn_json_fput_cstr(stdout, r->path);
			printf(",\"count\":%lu,\"successRate\":%.4f,\"latencyMs\":{\"best\":%.3f,\"worst\":%.3f,\"last\":%.3f}}",
			       r->count, r->count ? (double)r->ok / (double)r->count : 0.0, r->best, r->worst, r->last);
		}
		printf("]\n");
		return;
	}
	static const char *const hdr[] = { "SOURCE", "DESTINATION", "METHOD", "PATH", "COUNT", "BEST", "WORST", "LAST",
					   "SUCCESS" };
	struct sn_cli_table t;
	sn_cli_table_init(&t, 9);
	sn_cli_table_row(&t, hdr);
	for (size_t i = 0; i < st->n; i++) {
		const struct top_row *r = &st->rows[i];
		char count[24], best[24], worst[24], last[24], ok[24];
		snprintf(count, sizeof(count), "%lu", r->count);
		snprintf(best, sizeof(best), "%.1fms", r->best);
		snprintf(worst, sizeof(worst), "%.1fms", r->worst);
		snprintf(last, sizeof(last), "%.1fms", r->last);
		snprintf(ok, sizeof(ok), "%.2f%%", r->count ? 100.0 * (double)r->ok / (double)r->count : 0.0);
		const char *cells[] = { r->source, r->destination, r->method, r->path, count, best, worst, last, ok };
		sn_cli_table_row(&t, cells);
	}
	if (st->tty)
		fputs("\033[H\033[2J", stdout);
	if (st->n == 0)
		printf("No requests seen yet (%lu).\n", st->events);
	else
		sn_cli_table_print(&t, stdout);
	if (st->left_out)
		printf("(%lu requests on more than %d distinct paths not shown)\n", st->left_out, TOP_MAX_ROWS);
	sn_cli_table_free(&t);
	fflush(stdout);
}

static int on_top_line(const char *line, size_t len, void *arg)
{
	struct top_state *st = arg;
	struct fy_document *doc = sn_cli_json_parse(line, len);
	struct fy_node *root = doc ? sn_cli_json_root(doc) : NULL;
	const char *type = root ? sn_cli_json_str(root, "type") : NULL;

	if (type != NULL && !strcmp(type, "end")) {
		st->ended = 1;
	} else if (type != NULL && !strcmp(type, "event")) {
		struct fy_node *ev = sn_cli_json_get(root, "event");
		struct fy_node *src = sn_cli_json_get(ev, "source"), *dst = sn_cli_json_get(ev, "destination");
		struct top_row key;
		memset(&key, 0, sizeof(key));
		/* a workload where the proxy knows it, else the address */
		snprintf(key.source, sizeof(key.source), "%s",
			 sn_cli_json_str_or(src, "workload", sn_cli_json_str_or(src, "address", "-")));
		snprintf(key.destination, sizeof(key.destination), "%s",
			 sn_cli_json_str_or(dst, "workload", sn_cli_json_str_or(dst, "address", "-")));
		snprintf(key.method, sizeof(key.method), "%s", sn_cli_json_str_or(ev, "method", ""));
		const char *path = sn_cli_json_str_or(ev, "path", "");
		size_t pl = strcspn(path, "?");   /* rows by path; the query varies */
		snprintf(key.path, sizeof(key.path), "%.*s", (int)SN_MIN(pl, sizeof(key.path) - 1), path);
		double ms = strtod(sn_cli_json_str_or(ev, "durationMs", "0"), NULL);
		long long status = sn_cli_json_int(ev, "status", 0);
		const char *grpc = sn_cli_json_str(ev, "grpcStatus");
		int ok = status > 0 && status < 500 && (grpc == NULL || !strcmp(grpc, "0"));
		struct top_row *r = NULL;
		for (size_t i = 0; i < st->n; i++)
			if (!strcmp(st->rows[i].source, key.source) && !strcmp(st->rows[i].destination, key.destination) &&
			    !strcmp(st->rows[i].method, key.method) && !strcmp(st->rows[i].path, key.path)) {
				r = &st->rows[i];
				break;
			}
		if (r == NULL && st->n < TOP_MAX_ROWS) {
			r = &st->rows[st->n++];
			*r = key;
			r->best = ms;
		}
		st->events++;
		if (r == NULL) {
			st->left_out++;
		} else {
			r->count++;
			r->ok += (unsigned long)ok;
			r->best = SN_MIN(r->best, ms);
			r->worst = SN_MAX(r->worst, ms);
			r->last = ms;
		}
	}
	sn_cli_json_free(doc);
	if (st->tty && !st->o->json && sn_clock_ms() - st->drawn_ms >= TOP_REFRESH_MS) {
		st->drawn_ms = sn_clock_ms();
		top_draw(st);
	}
	return st->ended || (st->o->max && st->events >= st->o->max);
}

/* ---- both -------------------------------------------------------------- */

static int run(int argc, char **argv, int top)
{
	enum { O_SERVER = 256, O_PATH, O_METHOD, O_AUTHORITY, O_STATUS, O_DIRECTION, O_BODIES, O_REDACT, O_MAX,
	       O_DURATION, O_TOKEN_FILE };
	static const struct option opts[] = {
		{ "namespace", required_argument, NULL, 'n' },
		{ "all-namespaces", no_argument, NULL, 'A' },
		{ "output", required_argument, NULL, 'o' },
		{ "path", required_argument, NULL, O_PATH },
		{ "method", required_argument, NULL, O_METHOD },
		{ "authority", required_argument, NULL, O_AUTHORITY },
		{ "status", required_argument, NULL, O_STATUS },
		{ "direction", required_argument, NULL, O_DIRECTION },
		{ "bodies", no_argument, NULL, O_BODIES },
		{ "redact", required_argument, NULL, O_REDACT },
		{ "max", required_argument, NULL, O_MAX },
		{ "duration", required_argument, NULL, O_DURATION },
		{ "token-file", required_argument, NULL, O_TOKEN_FILE },
		{ "server", required_argument, NULL, O_SERVER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = top ? "top" : "tap";
	struct tap_opts o;
	const char *server = NULL;
	int c;

	memset(&o, 0, sizeof(o));
	snprintf(o.ns, sizeof(o.ns), "default");
	optind = 1;
	while ((c = getopt_long(argc, argv, "n:Ao:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (strlen(optarg) >= sizeof(o.ns)) {
				fprintf(stderr, "sinew %s: namespace too long\n", cmd);
				return 2;
			}
			snprintf(o.ns, sizeof(o.ns), "%s", optarg);
			break;
		case 'A': o.all_ns = 1; break;
		case 'o':
			if (!strcmp(optarg, "json"))
				o.json = 1;
			else if (!strcmp(optarg, "wide") && !top)
				o.wide = 1;
			else {
				fprintf(stderr, "sinew %s: -o %s: want json%s\n", cmd, optarg, top ? "" : " or wide");
				return 2;
			}
			break;
		case O_PATH: o.path = optarg; break;
		case O_METHOD: o.method = optarg; break;
		case O_AUTHORITY: o.authority = optarg; break;
		case O_STATUS: o.status = optarg; break;
		case O_DIRECTION:
			if (strcmp(optarg, "inbound") && strcmp(optarg, "outbound")) {
				fprintf(stderr, "sinew %s: --direction %s: want inbound or outbound\n", cmd, optarg);
				return 2;
			}
			o.direction = optarg;
			break;
		case O_BODIES: o.bodies = 1; break;
		case O_REDACT: {
			size_t len = strlen(o.redact);
			if (strchr(optarg, ',') != NULL || len + strlen(optarg) + 2 > sizeof(o.redact)) {
				fprintf(stderr, "sinew %s: --redact %s: one header name each time, %zu bytes in all\n", cmd,
					optarg, sizeof(o.redact) - 1);
				return 2;
			}
			snprintf(o.redact + len, sizeof(o.redact) - len, "%s%s", len ? "," : "", optarg);
			break;
		}
		case O_MAX: {
			char *end;
			o.max = strtoul(optarg, &end, 10);
			if (*end != '\0' || o.max == 0 || optarg[0] == '-') {
				fprintf(stderr, "sinew %s: --max %s: want a count of requests, e.g. 100\n", cmd, optarg);
				return 2;
			}
			break;
		}
		case O_DURATION:
			if (sn_parse_duration_ms(optarg, &o.duration_ms) != 0 || o.duration_ms < 1000 ||
			    o.duration_ms > 3600000) {
				fprintf(stderr, "sinew %s: --duration %s: want 1s to 1h, e.g. 30s\n", cmd, optarg);
				return 2;
			}
			break;
		case O_TOKEN_FILE: o.token_file = optarg; break;
		case O_SERVER: server = optarg; break;
		case 'h': tap_usage(stdout, top); return 0;
		default: tap_usage(stderr, top); return 2;
		}
	}
	if (optind != argc - 1 || parse_target(argv[optind], &o) != 0) {
		if (optind < argc)
			fprintf(stderr, "sinew %s: %s: want deploy/NAME, pod/NAME, proxy/ID or ns/NAMESPACE\n", cmd,
				argv[optind]);
		tap_usage(stderr, top);
		return 2;
	}
	o.server = sn_cli_server(server);
	if (!strcmp(o.kind, "ns") && o.name[0]) {
		snprintf(o.ns, sizeof(o.ns), "%.63s", o.name);
		o.name[0] = '\0';
	}

	char path[4096] = "/api/v1/tap";
	char durs[24] = "", maxs[24] = "";
	if (o.duration_ms)
		snprintf(durs, sizeof(durs), "%ums", o.duration_ms);
	if (o.max)
		snprintf(maxs, sizeof(maxs), "%lu", o.max);
	int bad = add_param(path, sizeof(path), "namespace", o.all_ns && strcmp(o.kind, "ns") ? "" : o.ns);
	bad |= add_param(path, sizeof(path), !strcmp(o.kind, "pod") ? "pod" : !strcmp(o.kind, "proxy") ? "proxy" : "workload",
			 o.name);
	bad |= add_param(path, sizeof(path), "path", o.path);
	bad |= add_param(path, sizeof(path), "method", o.method);
	bad |= add_param(path, sizeof(path), "authority", o.authority);
	bad |= add_param(path, sizeof(path), "status", o.status);
	bad |= add_param(path, sizeof(path), "direction", o.direction);
	bad |= add_param(path, sizeof(path), "redact", o.redact);
	bad |= add_param(path, sizeof(path), "bodies", o.bodies ? "true" : NULL);
	bad |= add_param(path, sizeof(path), "max", maxs);
	bad |= add_param(path, sizeof(path), "duration", durs);
	if (bad) {
		fprintf(stderr, "sinew %s: the filters are too long\n", cmd);
		return 2;
	}
	if (top && !isatty(STDOUT_FILENO) && !o.duration_ms && !o.max && !o.json) {
		fprintf(stderr, "sinew top: not on a terminal: give --duration or --max (the table prints when the tap "
				"ends)\n");
		return 2;
	}

	char token[200], authz[220], err[800];
	if (read_token(&o, token, sizeof(token)) != 0)
		return 1;
	snprintf(authz, sizeof(authz), "Bearer %s", token);
	int timeout = (int)(o.duration_ms ? o.duration_ms : 600000) + 15000;

	struct sn_http_response r;
	struct tap_state ts = { .o = &o };
	struct top_state tops = { .o = &o, .tty = isatty(STDOUT_FILENO) };
	int rc;
	if (top) {
		tops.rows = calloc(TOP_MAX_ROWS, sizeof(*tops.rows));
		if (tops.rows == NULL) {
			fprintf(stderr, "sinew top: out of memory\n");
			return 1;
		}
		if (tops.tty && !o.json)
			top_draw(&tops);
		rc = sn_cli_http_lines(o.server, path, authz, timeout, on_top_line, &tops, &r, err, sizeof(err));
	} else {
		rc = sn_cli_http_lines(o.server, path, authz, timeout, on_tap_line, &ts, &r, err, sizeof(err));
	}
	if (rc != 0) {
		fprintf(stderr, "sinew: %s\n", err);
		free(tops.rows);
		return 1;
	}
	if (r.status != 200) {
		if (r.status == 404 && strstr(r.body ? r.body : "", "no such endpoint") != NULL)
			fprintf(stderr, "sinew: sinewd at %s has no /api/v1/tap (it predates tap); upgrade sinewd\n",
				o.server);
		else
			sn_cli_api_error(&r);
		sn_http_response_free(&r);
		free(tops.rows);
		return 1;
	}
	sn_http_response_free(&r);
	if (top) {
		top_draw(&tops);
		free(tops.rows);
	}
	return 0;
}

int sn_cli_tap(int argc, char **argv)
{
	return run(argc, argv, 0);
}

int sn_cli_top(int argc, char **argv)
{
	return run(argc, argv, 1);
}
