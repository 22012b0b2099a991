/* `sinew analyze` over sinewd's store: the stored resources, the
 * WorkloadEntries connected proxies registered, and a body to try, put in
 * one set for the config library's analysis (src/config/analyze.c). */
#include <string.h>

#include "sinew/control.h"

int sn_analyze(const struct sn_store *st, const char *const *registered, size_t n_registered,
	       const char *body_source, const char *body, size_t body_len, struct sn_analysis *out)
{
	struct sn_config_set set, over;
	struct sn_diags d, td;
	const char *src = body_source && body_source[0] ? body_source : "-";

	sn_config_set_init(&set);
	sn_config_set_init(&over);
	set.keep_invalid = 1;   /* a resource with an error still has its other checks */
	sn_diags_init(&d);
	sn_diags_init(&td);
	/* The body's resources replace stored ones with the same name. */
	if (body != NULL)
		sn_config_load_text(&over, src, body, body_len, &td);
	for (size_t i = 0; st != NULL && i < st->n; i++) {
		const struct sn_stored *e = st->v[i];
		int replaced = 0;
		for (const struct sn_resource *r = over.head; r && !replaced; r = r->next)
			replaced = r->kind == e->kind && !strcmp(r->namespace_, e->namespace_) &&
				   !strcmp(r->name, e->name);
		if (!replaced)
			sn_config_load_text_at(&set, e->source, e->text, e->text_len, e->line, &d);
	}
	/* what the pods registered: their Services' endpoints */
	for (size_t i = 0; i < n_registered; i++)
		if (registered[i] != NULL)
			sn_config_load_text_at(&set, "sinewd-registry", registered[i], strlen(registered[i]), 1, &d);
	struct sn_resource **body_start = set.tail;
	if (body != NULL)
		sn_config_load_text(&set, src, body, body_len, &d);
	int rc = sn_config_analyze(&set, body != NULL ? body_start : NULL, &d, out);
	sn_diags_free(&d);
	sn_diags_free(&td);
	sn_config_set_free(&set);
	sn_config_set_free(&over);
	return rc;
}
