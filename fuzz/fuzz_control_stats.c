/* Fuzz target: the `stats` message sinewd reads from every proxy
 * (src/control/stats.c, docs/internals/control-protocol.md "stats"). The
 * input is NDJSON: each line is one message, read by sn_stats_ingest_json
 * for one of three proxies in turn (every fourth line its link drops and
 * comes back first, as a reconnect), on a clock that moves 700 ms a line,
 * into a store with small bounds (1 s slots, 16 keys, 600 slots, 4
 * proxies, 40 baselines), so eviction, sharing the slot bound, baselines,
 * restarts and spreading run within a few lines. After each line the
 * three stat views, the edges and the routes are rendered and must be JSON arrays,
 * and the bounds must hold; a refused line must say why and change
 * nothing. Every input starts from an empty store. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

#include "sinew/config.h"
#include "sinew/control.h"
#include "sinew/log.h"
#include "sinew/out.h"
#include "control/stats.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_MAX_INPUT (256u << 10)
#define FZ_T0 100000000ull

static const struct sn_stats_limits lim = { .resolution_ms = 1000, .keys = 16, .slots = 600, .proxies = 4,
					    .baselines = 40 };

static void check_array(const struct sn_out *o)
{
	CHECK(!o->failed);
	struct fy_document *doc = sn_json_parse(o->p, o->len);
	CHECK(doc != NULL && fy_document_root(doc) != NULL && fy_node_is_sequence(fy_document_root(doc)));
	fy_document_destroy(doc);
}

static void render_all(struct sn_stats *s, uint64_t now)
{
	static const enum sn_stats_resource res[] = { SN_STATS_DEPLOYMENT, SN_STATS_SERVICE, SN_STATS_NAMESPACE };
	struct sn_out o = { 0 };

	for (size_t i = 0; i < sizeof(res) / sizeof(res[0]); i++) {
		struct sn_stats_query q = { .resource = res[i], .window_ms = i == 0 ? 10000 : 3600000 };
		sn_stats_render_stat(s, &q, now, &o);
		check_array(&o);
		sn_out_free(&o);
	}
	struct sn_stats_query one = { .resource = SN_STATS_DEPLOYMENT, .namespace_ = "default", .name = "reviews",
				      .window_ms = 60000 };
	sn_stats_render_stat(s, &one, now, &o);
	check_array(&o);
	sn_out_free(&o);
	sn_stats_render_edges(s, NULL, 60000, now, &o);
	check_array(&o);
	sn_out_free(&o);
	sn_stats_render_edges(s, "default", 3600000, now, &o);
	check_array(&o);
	sn_out_free(&o);
	/* routes: by service and by client, filtered and not */
	for (int i = 0; i < 2; i++) {
		struct sn_stats_query rq = { .resource = i ? SN_STATS_DEPLOYMENT : SN_STATS_SERVICE,
					     .namespace_ = i ? NULL : "default", .window_ms = i ? 10000 : 3600000 };
		sn_stats_render_routes(s, &rq, now, &o);
		check_array(&o);
		sn_out_free(&o);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ids[3] = { "reviews-1", "productpage-1", "ratings-1" };
	static const char *const workloads[3] = { "reviews", "productpage", "ratings" };
	struct sn_stats_proxy *p[3];
	size_t off = 0, line = 0;
	uint64_t now = FZ_T0;

	if (size > FZ_MAX_INPUT)
		return 0;
	sn_log_current_level = -1;
	struct sn_stats *s = sn_stats_new(&lim);
	if (s == NULL)
		abort();
	for (int i = 0; i < 3; i++) {
		p[i] = sn_stats_proxy_up(s, ids[i], "default", workloads[i]);
		CHECK(p[i] != NULL);
	}
	while (off < size) {
		const uint8_t *nl = memchr(data + off, '\n', size - off);
		size_t len = nl != NULL ? (size_t)(nl - (data + off)) : size - off;
		struct sn_stats_counts before, after;
		struct sn_stats_result res;
		int who = (int)(line % 3);

		if (line % 4 == 3) {
			sn_stats_proxy_down(s, p[who], now);
			p[who] = sn_stats_proxy_up(s, ids[who], "default", workloads[who]);
			CHECK(p[who] != NULL);
		}
		sn_stats_counts(s, &before);
		int rc = sn_stats_ingest_json(s, p[who], (const char *)data + off, len, now, &res);
		sn_stats_counts(s, &after);
		if (rc != 0) {
			CHECK(rc == SN_EINVAL || rc == SN_ENOMEM);
			CHECK(res.error[0] != '\0');
			CHECK(after.messages == before.messages && after.keys == before.keys &&
			      after.slots == before.slots && after.baselines == before.baselines);
			CHECK(after.rejected == before.rejected + 1);
		} else {
			CHECK(after.messages == before.messages + 1);
			CHECK(res.counted + res.untracked <= res.series);
		}
		CHECK(after.keys <= lim.keys);
		CHECK(after.slots <= lim.slots);
		CHECK(after.baselines <= lim.baselines);
		CHECK(after.proxies <= lim.proxies);
		render_all(s, now + 1500);
		now += 700;
		line++;
		off += len + 1;
	}
	sn_stats_free(s);
	return 0;
}
