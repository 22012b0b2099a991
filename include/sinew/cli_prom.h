#ifndef SINEW_CLI_PROM_H
#define SINEW_CLI_PROM_H

/* The CLI's Prometheus client (src/cli/prom.c): what `--prometheus URL`
 * (or $SINEW_PROMETHEUS) makes the live views read instead of sinewd's
 * built-in store. Instant queries through Prometheus's HTTP API
 * (GET PREFIX/api/v1/query), bounded like every CLI exchange (a 3 s
 * connect timeout, SN_CLI_TIMEOUT_MS, SN_CLI_MAX_RESPONSE bytes) and to
 * SN_CLI_PROM_MAX_SERIES series an answer. docs/observability.md,
 * "Views from Prometheus". Blocking; one thread. */

#include <stddef.h>

#include "sinew/cli.h"

#define SN_CLI_PROM_MAX_SERIES 100000
#define SN_CLI_PROM_WINDOW_MIN_MS 10000u
#define SN_CLI_PROM_WINDOW_MAX_MS (720u * 3600u * 1000u)   /* 30 days */

struct fy_document;
struct fy_node;

/* A Prometheus server, as --prometheus named it. */
struct sn_cli_prom {
	char base[300];     /* "http://host:port", what sn_cli_http takes */
	char prefix[256];   /* path before /api/v1 ("" or "/prometheus"), no trailing '/' */
	char text[560];     /* base + prefix, for messages */
	char time[40];      /* evaluation time of every query ("1700000000.123"): one instant */
	const char *names;  /* request metric prefix, "sinew" or "istio" (sn_cli_prom_detect) */
};

/* One series of an instant vector: its labels (a JSON map owned by the
 * vector's document) and its value (NaN, +Inf possible). */
struct sn_cli_prom_sample {
	struct fy_node *metric;
	double value;
};

struct sn_cli_prom_vector {
	struct fy_document *doc;
	char *body;                     /* the answer the document reads from */
	struct sn_cli_prom_sample *v;   /* malloc'd */
	size_t n;
};

/* The Prometheus URL: flag if given, else $SINEW_PROMETHEUS, else NULL
 * (the views read sinewd). */
const char *sn_cli_prometheus(const char *flag);

/* Parses url (http://host[:port][/prefix]) into *p and fixes the
 * evaluation time to now. Returns 0, or -1 after printing why. */
int sn_cli_prom_open(const char *url, struct sn_cli_prom *p);

/* One instant query (promql, any length) at p->time. Returns 0 with *out
 * filled (free with sn_cli_prom_vector_free), or -1 after printing what
 * failed and what to do: Prometheus unreachable, an error answer (with
 * its errorType and message), an answer that is not Prometheus's API,
 * not an instant vector, or more than SN_CLI_PROM_MAX_SERIES series. */
int sn_cli_prom_query(const struct sn_cli_prom *p, const char *promql, struct sn_cli_prom_vector *out);
void sn_cli_prom_vector_free(struct sn_cli_prom_vector *v);

/* A label of a sample (owned by the vector's document), or def when it
 * is absent or empty. */
const char *sn_cli_prom_label(const struct sn_cli_prom_sample *s, const char *name, const char *def);

/* Which request metrics the proxies export: sets p->names to "sinew"
 * (sinew_requests_total, always exported by Sinew proxies) when
 * Prometheus holds any, else "istio" when it holds istio_requests_total
 * only, else "sinew". Returns 0, or -1 after printing why. */
int sn_cli_prom_detect(struct sn_cli_prom *p);

/* Answers a GET of sinewd's live-stats API -- "/api/v1/stats?resource=R
 * [&namespace=NS][&name=N][&window=D]" or "/api/v1/edges[?namespace=NS]
 * [&window=D]" (docs/api.md, "Stats") -- from the Prometheus at url, with
 * the JSON sinewd would send for it. Same contract as sn_cli_api_get: 1
 * when it failed (said on stderr), 2 when json is set and the body has
 * been printed, 0 with *r to read and free. */
int sn_cli_prom_api_get(const char *url, const char *path, int json, struct sn_http_response *r);

/* This thread's Prometheus errors go to errors (appended, "; "-separated)
 * instead of stderr; NULL: stderr again. sinewd --prometheus answers its
 * API's stats with sn_cli_prom_api_get on a thread of its own. */
struct sn_out;
void sn_cli_prom_capture(struct sn_out *errors);

#endif
