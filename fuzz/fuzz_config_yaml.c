/* Fuzz target: YAML → resources → snapshot → JSON dump, then free. Any
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
	if (sn_config_translate(&set, &id, &d, &snap) == 0) {
		FILE *f = fopen("/dev/null", "w");
		if (f != NULL) {
			sn_snapshot_dump_json(snap, f);
			fclose(f);
		}
		uint16_t port;
		static const char *const names[] = { "reviews", "reviews:9080", "a.b", "x.default.svc", "*" };
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			const struct sn_vhost *v = sn_snapshot_find_vhost(snap, sn_str_make(names[i], strlen(names[i])), &port);
			for (size_t r = 0; v && r < v->n_routes; r++)
				for (size_t m = 0; m < v->routes[r].n_matches; m++)
					sn_str_match_test(&v->routes[r].matches[m].uri, SN_STR_LIT("/api/v1"));
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
