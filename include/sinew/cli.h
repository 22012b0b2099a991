#ifndef SINEW_CLI_H
#define SINEW_CLI_H

/* The `sinew` command line: one function per subcommand, each in its own
 * file under src/cli/, dispatched by the thin main in src/sinew/main.c.
 *
 * A subcommand gets argv with argv[0] set to its own name ("load") and
 * returns the process exit status: 0 success, 1 runtime failure (or, for
 * `load`, errors seen), 2 usage error. It prints its own messages. */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sinew/http_client.h"

#ifndef SINEW_VERSION
#define SINEW_VERSION "0.1.0-dev"
#endif

typedef int (*sn_cli_cmd_cb)(int argc, char **argv);

struct sn_cli_cmd {
	const char *name;
	const char *summary;   /* one line for `sinew --help` */
	sn_cli_cmd_cb run;
};

/* The subcommands, NULL-terminated (name == NULL), in help order. Static
 * storage; defined in src/cli/commands.c. */
extern const struct sn_cli_cmd sn_cli_commands[];

/* Finds a subcommand by name; NULL if there is none. */
const struct sn_cli_cmd *sn_cli_find(const char *name);

/* `sinew load`: the open-loop HTTP load generator (src/cli/load.c). */
int sn_cli_load(int argc, char **argv);
/* `sinew version` (src/cli/version.c): the CLI's, and sinewd's if reachable. */
int sn_cli_version(int argc, char **argv);

/* The control-plane commands (docs/cli.md), one file each under src/cli/. */
int sn_cli_up(int argc, char **argv);            /* up.c */
int sn_cli_down(int argc, char **argv);          /* up.c */
int sn_cli_apply(int argc, char **argv);         /* apply.c */
int sn_cli_get(int argc, char **argv);           /* get.c */
int sn_cli_delete(int argc, char **argv);        /* delete.c */
int sn_cli_analyze(int argc, char **argv);       /* analyze.c */
int sn_cli_proxy_status(int argc, char **argv);  /* proxy_status.c */
int sn_cli_proxy_config(int argc, char **argv);  /* proxy_config.c */
int sn_cli_explain(int argc, char **argv);       /* explain.c */
int sn_cli_completion(int argc, char **argv);    /* completion.c */
int sn_cli_token(int argc, char **argv);         /* token.c: token create */
int sn_cli_ca(int argc, char **argv);            /* ca.c: ca [show] */
int sn_cli_run(int argc, char **argv);           /* run.c: a workload in a pod */
int sn_cli_gateway(int argc, char **argv);       /* gateway.c: an ingress gateway pod */
int sn_cli_ps(int argc, char **argv);            /* ps.c: the pods */
int sn_cli_logs(int argc, char **argv);          /* ps.c: a pod's logs */
int sn_cli_identity(int argc, char **argv);      /* identity.c */
int sn_cli_check(int argc, char **argv);         /* check.c */
int sn_cli_traces(int argc, char **argv);        /* traces.c */
int sn_cli_stat(int argc, char **argv);          /* stat.c: golden metrics (live stats) */
int sn_cli_edges(int argc, char **argv);         /* edges.c: who calls whom, secured or not */
int sn_cli_routes(int argc, char **argv);        /* routes.c: per-route golden metrics (live stats) */
int sn_cli_tap(int argc, char **argv);           /* tap.c: the live request stream */
int sn_cli_top(int argc, char **argv);           /* tap.c: the busiest paths, live */
/* client.c: when set, connections are made inside this network namespace
 * (a pod's: its proxy's admin port is on the pod's loopback). */
extern const char *sn_cli_netns;
/* identity.c: the admin ADDR:PORT (and id, may be NULL) of the connected
 * proxy whose id is or uniquely starts with name; -1 after printing why.
 * For a proxy in a pod it also sets sn_cli_netns to the pod. */
int sn_cli_find_admin(const char *server, const char *name, char *admin, size_t size, char *id, size_t id_size);
/* up.c: the last few KiB of a log file on stderr. */
void sn_cli_print_log_tail(const char *path);
/* publish.c: sinew run --publish [HOSTADDR:]HOSTPORT:PODPORT */
int sn_cli_publish_parse(const char *spec, char *host, size_t host_size, uint16_t *host_port, uint16_t *pod_port);
int sn_cli_publish_start(const char *netns, const char *spec, char *err, size_t err_size);   /* binds */
int sn_cli_publish_go(char *err, size_t err_size);                                           /* threads */
struct sn_pod;
/* vips.c: gives every Service a stable VIP (DATA_DIR/pods/vips), creates
 * the Service of self (a pod being started, may be NULL) if missing and
 * it declares ports, and rewrites every live pod's hosts file. Call with
 * the pod state lock held. Returns 0 or -1 with err set. */
int sn_cli_vips_refresh(const char *server, const char *dir, const struct sn_pod *self, char *err, size_t err_size);

/* ---- shared by the commands: src/cli/client.c, src/cli/util.c ---------- */

#define SN_CLI_DEFAULT_SERVER "http://127.0.0.1:15080"
#define SN_CLI_MAX_RESPONSE SN_HTTP_CLIENT_MAX_RESPONSE
#define SN_CLI_MAX_INPUT (8u << 20)       /* bytes of one input file (sinewd's body bound) */
#define SN_CLI_TIMEOUT_MS 30000           /* whole exchange */

/* One blocking HTTP/1.1 exchange with base (an http:// URL): METHOD path,
 * an optional body (content_type may be NULL), connect timeout
 * SN_HTTP_CLIENT_CONNECT_TIMEOUT_MS and timeout_ms for the whole exchange. who
 * names the peer in messages ("sinewd"), hint says what to do when it
 * cannot be reached (may be NULL). Returns 0 with *out filled (any
 * status), or -1 with a one-line message in err ("cannot reach sinewd at
 * http://127.0.0.1:15080 (connection refused); start it with `sinew up`"). */
int sn_cli_http(const char *base, const char *method, const char *path, const char *content_type,
		const char *body, size_t body_len, int timeout_ms, const char *who, const char *hint,
		struct sn_http_response *out, char *err, size_t err_size);

/* A stream of lines (GET path with an authorization field, NULL for none):
 * on a 200 answer, on_line gets each line (without its newline; empty
 * lines skipped) as it comes, until the server ends the stream or on_line
 * returns nonzero; *out then holds what is left (usually nothing). Any
 * other status: *out as sn_cli_http fills it. Returns as sn_cli_http. */
int sn_cli_http_lines(const char *base, const char *path, const char *authorization, int timeout_ms,
		      sn_http_line_cb on_line, void *arg, struct sn_http_response *out, char *err, size_t err_size);

/* The data directory (src/cli/up.c): flag if given, else $SINEW_HOME,
 * else the one the last `sinew up --data-dir` recorded in
 * ~/.sinew/current.json (until its `sinew down`; only while it exists),
 * else ~/.sinew. Returns 0, or -1 after printing why there is none. */
int sn_cli_data_dir(const char *flag, char *buf, size_t size);

/* The sinewd URL: flag if given, else $SINEW_SERVER, else the default. */
const char *sn_cli_server(const char *flag);

/* sn_cli_http against sinewd; prints "sinew: ..." on stderr and returns
 * -1 when it cannot be reached. */
int sn_cli_api(const char *server, const char *method, const char *path, const char *body, size_t body_len,
	       struct sn_http_response *out);

/* For a non-2xx sinewd answer: prints "sinew: <its error message>" (or
 * the status) on stderr. */
void sn_cli_api_error(const struct sn_http_response *r);
/* GET path from sinewd, for the read-only views: 1 when it failed (said on
 * stderr: no answer, the API's error, or -- 404 -- a sinewd that predates
 * the endpoint `feature` names); 2 when json is set and the body has been
 * printed as it is (nothing left to do); 0 with *r to read and free. */
int sn_cli_api_get(const char *server, const char *path, const char *feature, int json,
		   struct sn_http_response *r);

/* JSON (read with libfyaml, as sinew-proxy reads the control link). The
 * nodes belong to the document. */
struct fy_document;
struct fy_node;
struct fy_document *sn_cli_json_parse(const char *text, size_t len);
void sn_cli_json_free(struct fy_document *doc);
struct fy_node *sn_cli_json_root(struct fy_document *doc);
struct fy_node *sn_cli_json_get(struct fy_node *map, const char *key);
/* A scalar member as a NUL-terminated string owned by the document; NULL
 * if absent, not a scalar, or JSON null. */
const char *sn_cli_json_str(struct fy_node *map, const char *key);
/* The same with def for NULL. */
const char *sn_cli_json_str_or(struct fy_node *map, const char *key, const char *def);
long long sn_cli_json_int(struct fy_node *map, const char *key, long long def);
int sn_cli_json_bool(struct fy_node *map, const char *key);
/* Number of items of a sequence (0 if n is not one) and item i. */
size_t sn_cli_json_len(struct fy_node *seq);
struct fy_node *sn_cli_json_at(struct fy_node *seq, size_t i);

/* A text table printed with aligned columns (kubectl style). */
struct sn_cli_table {
	size_t ncols;
	char **cells;       /* rows * ncols, malloc'd */
	size_t n_rows;
	size_t cap_rows;
};

void sn_cli_table_init(struct sn_cli_table *t, size_t ncols);
/* Appends a row of t->ncols strings (copied; NULL prints as "-"). */
void sn_cli_table_row(struct sn_cli_table *t, const char *const *cells);
/* Prints the rows, columns separated by three spaces, no trailing blanks. */
void sn_cli_table_print(const struct sn_cli_table *t, FILE *f);
void sn_cli_table_free(struct sn_cli_table *t);

/* Reads a whole file ("-": stdin) of at most SN_CLI_MAX_INPUT bytes into
 * a malloc'd NUL-terminated buffer. Returns 0, or -1 after printing why. */
int sn_cli_read_file(const char *path, char **out, size_t *len);
/* Expands -f arguments: a file, "-", or a directory (its *.yaml, *.yml and
 * *.json, sorted). *out gets a malloc'd array of malloc'd paths. Returns 0,
 * or -1 after printing why. */
int sn_cli_expand_files(char **args, size_t n_args, char ***out, size_t *n_out);
void sn_cli_free_strv(char **v, size_t n);
/* Percent-encodes s for a query value or path segment into buf. */
void sn_cli_url_escape(const char *s, char *buf, size_t size);

/* stat.c, for the live-stats views: a row's golden metrics as cells --
 * successRate "90.00%", rps "50.0rps" ("-" without a success rate),
 * latencyMs p50/p95/p99 "3.2ms" / "120ms", requests; "-" for null or
 * absent. requests > 0 sets traffic. */
struct sn_cli_golden {
	char success[32], rps[48], p50[32], p95[32], p99[32], requests[32];
	int traffic;
};
void sn_cli_fmt_golden(struct fy_node *row, struct sn_cli_golden *g);

/* stat.c: what the live views (stat, edges, routes) share -- their
 * options (-n, -A, --window, -o json|wide, --watch, --server,
 * --prometheus), the API path, and the watch loop. */
struct sn_cli_live {
	const char *cmd;             /* "stat", for messages */
	const char *server, *prom;   /* resolved: flag, else environment, else default (prom: NULL) */
	const char *ns, *window;
	int json, wide, all_ns, watch;
};
/* Parses the options (--watch only when watch_ok); the positional
 * arguments are left from optind. -1 to go on, else the exit status (0
 * after --help, 2 on a usage error). */
int sn_cli_live_parse(struct sn_cli_live *lv, const char *cmd, int argc, char **argv, int watch_ok,
		      void (*say_usage)(FILE *));
/* base?window=W[&resource=R][&namespace=NS][&name=N]: the namespace
 * unless -A or !with_ns; resource and name when not NULL. 0, or -1 when it
 * does not fit. */
int sn_cli_live_path(const struct sn_cli_live *lv, const char *base, const char *resource, int with_ns,
		     const char *name, char *buf, size_t size);
/* GET path from Prometheus (--prometheus) or sinewd: as sn_cli_api_get. */
int sn_cli_live_get(const struct sn_cli_live *lv, const char *path, const char *feature, struct sn_http_response *r);
/* show(lv, arg) once, or with --watch every 2 s until interrupted (the
 * screen cleared on a terminal). Its status. */
int sn_cli_live_run(const struct sn_cli_live *lv, int (*render)(const struct sn_cli_live *lv, void *arg), void *arg);
void sn_cli_fmt_percent(struct fy_node *row, const char *key, char *buf, size_t size);
/* kubectl's resource name for a kind: "virtualservice.networking.istio.io",
 * "service". */
void sn_cli_kind_resource(const char *kind, char *buf, size_t size);
/* "5s", "3m", "2h", "4d" for a duration in seconds. */
void sn_cli_age(long long seconds, char *buf, size_t size);
/* True for "-h" and "--help". */
int sn_cli_is_help(const char *arg);

#endif
