/* Istio's Telemetry resource (telemetry.istio.io/v1): its tracing part.
 * A Telemetry in the mesh root namespace with no selector is the mesh's
 * default, one in a namespace with no selector that namespace's, one with
 * a selector its workloads'; translate.c applies them in that order, each
 * overriding what it sets (Istio's hierarchy). Of tracing[], the first
 * entry counts (Istio's rule); providers, randomSamplingPercentage,
 * disableSpanReporting and customTags (literal, environment, header) are
 * read. metrics and accessLogging are warned as not implemented: Sinew's
 * metrics and access log are always on (docs/observability.md). */
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

#define MAX_TAGS 32

static void parse_tag(struct cfg_ctx *c, const char *name, const struct yn *v, struct sn_trace_tag *t)
{
	/* The name goes into every span's JSON as it is (trace.c) */
	for (const char *q = name; *q; q++)
		if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
		      strchr("._-:/", *q) != NULL)) {
			cfg_err(c, v, "custom tag name \"%.64s\": use letters, digits and . _ - : / only", name);
			return;
		}
	t->name = sn_arena_strdup(c->a, name);
	if (cfg_want_map(c, v) != 0 || v->n != 1) {
		if (v->type == YN_MAP)
			cfg_err(c, v, "a custom tag has one kind: literal, environment or header");
		return;
	}
	const char *k = v->keys[0]->s;
	const struct yn *x = v->items[0];
	size_t pl = cfg_path_push(c, ".%s", k);
	const struct yn *val = NULL, *dflt = NULL;
	if (cfg_want_map(c, x) == 0) {
		for (size_t i = 0; i < x->n; i++) {
			const char *f = x->keys[i]->s;
			if ((!strcmp(k, "literal") && !strcmp(f, "value")) || (strcmp(k, "literal") && !strcmp(f, "name")))
				val = x->items[i];
			else if (strcmp(k, "literal") && !strcmp(f, "defaultValue"))
				dflt = x->items[i];
			else
				cfg_warn_unknown(c, x->keys[i]);
		}
	}
	char *s = NULL, *d = NULL;
	if (val == NULL || cfg_get_str(c, val, CFG_MAX_STR, &s) != 0) {
		if (val == NULL)
			cfg_err(c, x, "%s needs %s", k, !strcmp(k, "literal") ? "value" : "name");
		cfg_path_pop(c, pl);
		return;
	}
	if (dflt != NULL)
		cfg_get_str(c, dflt, CFG_MAX_STR, &d);
	if (!strcmp(k, "literal")) {
		t->kind = SN_TRACE_TAG_LITERAL;
		t->value = s;
	} else if (!strcmp(k, "environment")) {
		/* the proxy's environment, read as the proxy translates */
		const char *e = getenv(s);
		t->kind = SN_TRACE_TAG_LITERAL;
		t->value = e != NULL ? sn_arena_strdup(c->a, e) : d;
	} else if (!strcmp(k, "header")) {
		sn_ascii_lower(s);
		t->kind = SN_TRACE_TAG_HEADER;
		t->value = s;
		t->default_value = d;
	} else {
		cfg_err(c, v->keys[0], "unknown custom tag kind %s; use literal, environment or header", k);
	}
	cfg_path_pop(c, pl);
}

static void parse_tracing(struct cfg_ctx *c, const struct yn *v, struct cfg_telemetry *t)
{
	if (cfg_want_map(c, v) != 0)
		return;
	t->has_tracing = 1;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "providers")) {
			t->providers_set = 1;
			if (cfg_want_seq(c, x, 16) == 0) {
				t->providers = sn_arena_new_array(c->a, char *, x->n ? x->n : 1);
				for (size_t j = 0; t->providers != NULL && j < x->n; j++) {
					size_t pl2 = cfg_path_push(c, "[%zu]", j);
					const struct yn *nm = cfg_want_map(c, x->items[j]) == 0 ? yn_get(x->items[j], "name") : NULL;
					if (x->items[j]->type == YN_MAP && nm == NULL)
						cfg_err(c, x->items[j], "a provider is {name: NAME}, a name from the mesh "
							"config's extensionProviders");
					else if (nm != NULL && cfg_get_str(c, nm, CFG_MAX_NAME, &t->providers[t->n_providers]) == 0)
						t->n_providers++;
					cfg_path_pop(c, pl2);
				}
			}
		} else if (!strcmp(k, "randomSamplingPercentage")) {
			cfg_get_double(c, x, 0, 100, &t->sampling);
		} else if (!strcmp(k, "disableSpanReporting")) {
			cfg_get_bool(c, x, &t->no_reporting);
		} else if (!strcmp(k, "customTags")) {
			t->tags_set = 1;
			if (cfg_want_map(c, x) == 0) {
				if (x->n > MAX_TAGS) {
					cfg_err(c, x, "%zu custom tags; at most %d", x->n, MAX_TAGS);
				} else {
					t->tags = sn_arena_new_array(c->a, struct sn_trace_tag, x->n ? x->n : 1);
					for (size_t j = 0; t->tags != NULL && j < x->n; j++) {
						size_t pl2 = cfg_path_push(c, ".%s", x->keys[j]->s);
						parse_tag(c, x->keys[j]->s, x->items[j], &t->tags[t->n_tags++]);
						cfg_path_pop(c, pl2);
					}
				}
			}
		} else if (!strcmp(k, "match")) {
			cfg_warn(c, v->keys[i], "match (client or server spans only) is not implemented by Sinew; "
				 "this entry applies to both");
		} else {
			cfg_warn_unimplemented(c, v->keys[i], k);
		}
		cfg_path_pop(c, pl);
	}
}

void *cfg_parse_telemetry(struct cfg_ctx *c, const struct yn *spec)
{
	struct cfg_telemetry *t = sn_arena_new(c->a, struct cfg_telemetry);
	if (t == NULL)
		return NULL;
	t->sampling = -1;
	t->no_reporting = -1;
	for (size_t i = 0; i < spec->n; i++) {
		const char *k = spec->keys[i]->s;
		const struct yn *v = spec->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "selector")) {
			cfg_parse_selector(c, v, &t->selector, &t->has_selector);
		} else if (!strcmp(k, "tracing")) {
			if (cfg_want_seq(c, v, 16) == 0 && v->n > 0) {
				size_t pl2 = cfg_path_push(c, "[0]");
				parse_tracing(c, v->items[0], t);
				cfg_path_pop(c, pl2);
				if (v->n > 1) {
					pl2 = cfg_path_push(c, "[1]");
					cfg_warn(c, v->items[1], "only the first tracing entry is used (as Istio does); "
						 "%zu more ignored", v->n - 1);
					cfg_path_pop(c, pl2);
				}
			}
		} else if (!strcmp(k, "targetRef") || !strcmp(k, "targetRefs")) {
			if (v->type != YN_NULL) {
				cfg_warn(c, spec->keys[i], "%s (a Gateway's telemetry) is not implemented by Sinew yet; "
					 "this Telemetry is ignored (it never applies to sidecars)", k);
				t->ignored = 1;
			}
		} else if (!strcmp(k, "metrics") || !strcmp(k, "accessLogging")) {
			cfg_warn(c, spec->keys[i], "%s is not implemented by Sinew; ignored (Sinew's metrics and "
				 "access log are always on: docs/observability.md)", k);
		} else {
			cfg_warn_unknown(c, spec->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	return t;
}
