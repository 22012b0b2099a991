/* Fuzz target: YAML → resources → snapshot (a sidecar's, then a gateway's)
 * → JSON dump and lookups, then free. Any
 * input must yield diagnostics, never a crash, leak or hang. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "sinew/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sn_config_set set;
	struct sn_diags d;
	struct sn_snapshot *snap = NULL;
	struct sn_label lv[] = { { "app", "reviews" }, { "version", "v2" } };
	struct sn_labels labels = { lv, 2 };
	struct sn_proxy_identity id = { .service = "reviews", .namespace_ = "default", .labels = &labels };

	if (size > (1u << 20))
		return 0;
	sn_config_set_init(&set);
	sn_diags_init(&d);
	sn_config_load_text(&set, "fuzz.yaml", (const char *)data, size, &d);
	/* as a sidecar, then as a gateway proxy of every Gateway */
	for (int gw = 0; gw < 2; gw++) {
		id.gateway = gw ? SN_GATEWAY_ANY : 0;
		if (sn_config_translate(&set, &id, &d, &snap) != 0)
			continue;
		FILE *f = fopen("/dev/null", "w");
		if (f != NULL) {
			sn_snapshot_dump_json(snap, f);
			fclose(f);
		}
		uint16_t port;
		static const char *const names[] = { "reviews", "reviews:9080", "a.b", "x.default.svc", "*", "10.0.0.1:80" };
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			struct sn_str a = sn_str_make(names[i], strlen(names[i]));
			const struct sn_vhost *v = sn_snapshot_find_vhost(snap, a, &port);
			for (size_t l = 0; l <= snap->n_gw_listeners; l++) {
				for (size_t r = 0; v && r < v->n_routes; r++)
					for (size_t m = 0; m < v->routes[r].n_matches; m++)
						sn_str_match_test(&v->routes[r].matches[m].uri, SN_STR_LIT("/api/v1"));
				v = l < snap->n_gw_listeners ? sn_snapshot_find_gw_vhost(snap, &snap->gw_listeners[l], a)
							     : NULL;
			}
		}
		sn_snapshot_unref(snap);
	}
	char buf[512];
	for (size_t i = 0; i < d.n; i++)
		sn_diag_format(&d.v[i], buf, sizeof(buf));
	sn_diags_free(&d);
	sn_config_set_free(&set);
	return 0;
}
