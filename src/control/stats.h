#ifndef SINEW_CONTROL_STATS_H
#define SINEW_CONTROL_STATS_H

/* Private to src/control (api.c, mesh.c) and its tests and fuzz target:
 * sinewd's live stats (stats.c), what `sinew stat`, `sinew edges` and
 * `sinew routes` show. Creation and the bounds are public (include/sinew/control.h);
 * this is what reads the proxies' `stats` messages in and renders the
 * API's answers out. Loop thread only; nothing is locked; every function
 * takes the loop's time (monotonic ms), so tests can drive the clock.
 * Wire format: docs/internals/control-protocol.md ("stats"); API:
 * docs/api.md ("Stats"). */

#include <stddef.h>
#include <stdint.h>

#include "sinew/control.h"

struct fy_node;
struct sn_out;

/* A proxy as the stats know it: by node id, across its links (a proxy
 * that reconnects goes on where it was). Owned by the store. */
struct sn_stats_proxy;

/* A link of proxy id (namespace ns, workload: its service, "unknown"
 * without one) said hello. Returns its record, or NULL when the store
 * holds as many proxies as it may (its stats are then not kept). Strings
 * are copied. */
struct sn_stats_proxy *sn_stats_proxy_up(struct sn_stats *s, const char *id, const char *ns, const char *workload);
/* The service proxy p serves, when its workload is named otherwise
 * (reviews-v1 of service reviews): service views count it under the
 * service, and requests for the service its clients' proxies answered
 * themselves count against its workload when it is the service's only
 * one. NULL or the workload's name: the same. 0 or SN_ENOMEM. */
int sn_stats_proxy_service(struct sn_stats_proxy *p, const char *service);
/* That link closed. The record stays an hour (for `meshed`, and a
 * reconnect of the same process), then goes. p may be NULL. */
void sn_stats_proxy_down(struct sn_stats *s, struct sn_stats_proxy *p, uint64_t now_ms);

/* What one message did. */
struct sn_stats_result {
	size_t series;              /* series read */
	size_t counted;             /* series that added requests */
	size_t untracked;           /* series past the bound on what is remembered per series: not counted */
	int baseline;               /* 1: a first message of a proxy sinewd did not know, taken as the
				     * starting point only (sinewd restarted; nothing counted) */
	char error[320];            /* malformed: "requests[3].durationBuckets: want 20 counts ..." */
};

/* Reads one stats message of proxy p: root is its object ("type" and
 * unknown members are ignored). The whole message is checked before
 * anything is taken: SN_EINVAL with res->error naming the field when any
 * of it is malformed (nothing changed), else 0. Borrows root. */
int sn_stats_ingest(struct sn_stats *s, struct sn_stats_proxy *p, struct fy_node *root, uint64_t now_ms,
		    struct sn_stats_result *res);
/* The same from JSON text; SN_EINVAL too for text that is not UTF-8 or not
 * a JSON object. */
int sn_stats_ingest_json(struct sn_stats *s, struct sn_stats_proxy *p, const char *text, size_t len,
			 uint64_t now_ms, struct sn_stats_result *res);

enum sn_stats_resource {
	SN_STATS_DEPLOYMENT = 0,    /* a workload: the proxies' --service, or a WorkloadEntry's name */
	SN_STATS_SERVICE,
	SN_STATS_NAMESPACE,
};

/* "deploy", "deployment", "deployments", "workload"..., "svc", "service",
 * "services", "ns", "namespace", "namespaces". Returns 0 or SN_EINVAL. */
int sn_stats_parse_resource(const char *s, enum sn_stats_resource *out);

#define SN_STATS_WINDOW_MIN_MS 10000u
#define SN_STATS_WINDOW_MAX_MS 3600000u
#define SN_STATS_WINDOW_DEFAULT_MS 60000u

/* GET /api/v1/stats. */
struct sn_stats_query {
	enum sn_stats_resource resource;
	const char *namespace_;     /* NULL: every namespace */
	const char *name;           /* NULL: every one */
	uint32_t window_ms;
};

/* GET /api/v1/stats: a JSON array of rows, sorted by namespace and name.
 * On allocation failure o->failed is set. */
void sn_stats_render_stat(struct sn_stats *s, const struct sn_stats_query *q, uint64_t now_ms, struct sn_out *o);
/* GET /api/v1/edges: a JSON array of workload pairs with traffic in the
 * window (ns: only edges with an end in it; NULL: all). */
void sn_stats_render_edges(struct sn_stats *s, const char *ns, uint32_t window_ms, uint64_t now_ms,
			   struct sn_out *o);

/* GET /api/v1/routes: a JSON array of route rows (docs/api.md "Routes"),
 * from the clients' proxies' route series. q->resource SERVICE: one row
 * per destination service and route, summed over clients, namespace and
 * name filtering the service; DEPLOYMENT: one per client workload,
 * service and route, filtering the client. Routes seen in the hour show
 * even without requests in the window. On allocation failure o->failed
 * is set. */
void sn_stats_render_routes(struct sn_stats *s, const struct sn_stats_query *q, uint64_t now_ms, struct sn_out *o);

/* What the store holds and has done (tests, the benchmark). */
struct sn_stats_counts {
	size_t keys;                /* aggregation keys held */
	size_t slots;               /* time slots allocated over every key */
	size_t proxies;             /* proxy records (connected or within the hour) */
	size_t baselines;           /* series remembered for their last cumulative counts */
	size_t bytes;               /* what the store allocated (approximately) */
	uint64_t messages;          /* messages taken */
	uint64_t rejected;          /* messages refused as malformed */
	uint64_t evicted_keys;      /* keys dropped for the bounds (not for age) */
	uint64_t trims;             /* times a key gave up the older half of its slots to the slot bound */
	uint64_t untracked_series;  /* series not counted: past the baseline bound */
};
void sn_stats_counts(const struct sn_stats *s, struct sn_stats_counts *out);

#endif
