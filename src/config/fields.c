/* Reading the YAML tree into the config model: the field path and the
 * diagnostics that name it, and the typed getters that every kind's parser
 * goes through, so one rule decides what a value may be (and what counts
 * as missing) for every field of every kind. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

const char *yn_type_str(const struct yn *n)
{
	if (n == NULL)
		return "nothing";
	switch (n->type) {
	case YN_NULL:
		return "null";
	case YN_SCALAR:
		return n->plain ? "a plain scalar" : "a string";
	case YN_SEQ:
		return "a sequence";
	case YN_MAP:
		return "a mapping";
	}
	return "?";
}

struct yn *yn_get(const struct yn *map, const char *key)
{
	if (map == NULL || map->type != YN_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++)
		if (strcmp(map->keys[i]->s, key) == 0)
			return map->items[i];
	return NULL;
}

/* ---- context: path and diagnostics ---------------------------------- */

size_t cfg_path_push(struct cfg_ctx *c, const char *fmt, ...)
{
	size_t old = c->path_len;
	char seg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(seg, sizeof(seg), fmt, ap);
	va_end(ap);
	const char *s = seg;
	if (c->path_len == 0 && s[0] == '.')
		s++;
	size_t n = strlen(s);
	if (c->path_len + n + 1 > sizeof(c->path))
		n = sizeof(c->path) - 1 - c->path_len;
	memcpy(c->path + c->path_len, s, n);
	c->path_len += n;
	c->path[c->path_len] = '\0';
	return old;
}

void cfg_path_pop(struct cfg_ctx *c, size_t len)
{
	c->path_len = len;
	c->path[len] = '\0';
}

char *cfg_path_dup(struct cfg_ctx *c, const char *suffix)
{
	return sn_arena_printf(c->a, "%s%s", c->path, suffix ? suffix : "");
}

static void vreport(struct cfg_ctx *c, enum sn_diag_severity sev, const struct yn *at,
		    const char *fmt, va_list ap)
{
	char msg[900];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (sev == SN_DIAG_ERROR)
		c->errors++;
	c->path[c->path_len] = '\0';
	sn_diags_add(c->d, sev, c->file, at ? at->line : 0, at ? at->col : 0, c->kind, c->name,
		     c->path_len ? c->path : NULL, "%s", msg);
}

void cfg_err(struct cfg_ctx *c, const struct yn *at, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(c, SN_DIAG_ERROR, at, fmt, ap);
	va_end(ap);
}

void cfg_warn(struct cfg_ctx *c, const struct yn *at, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(c, SN_DIAG_WARNING, at, fmt, ap);
	va_end(ap);
}

void cfg_warn_unimplemented(struct cfg_ctx *c, const struct yn *key, const char *what)
{
	cfg_warn(c, key, "%s is not implemented by Sinew yet; ignored%s%s", what ? what : "this field",
		 what ? "" : " (traffic behaves as if it were absent)", "");
}

void cfg_warn_unknown(struct cfg_ctx *c, const struct yn *key)
{
	c->unknown++;
	cfg_warn(c, key, "unknown field; ignored (check the spelling against the Istio/Kubernetes reference)");
}

int cfg_security_unenforceable(struct cfg_ctx *c, const struct yn *at, size_t unknown0, const char *denial)
{
	if (c->unknown == unknown0)
		return 0;
	cfg_warn(c, at, "this policy has %zu field(s) Sinew does not know (warned above), so it cannot be enforced "
		 "as written: %s (fail closed) until they are fixed or removed", c->unknown - unknown0, denial);
	return 1;
}

/* ---- required values ------------------------------------------------ */

int cfg_missing(const struct yn *v, enum yn_type want)
{
	if (v == NULL || v->type == YN_NULL)
		return 1;
	if (v->type == YN_SCALAR)
		return v->len == 0;
	/* an empty list or mapping where one is wanted holds nothing; of the
	 * wrong type it is present, and the getter names the type (want
	 * YN_NULL: any collection is a value, spec: {} among them) */
	return v->type == want && v->n == 0;
}

const struct yn *cfg_require(struct cfg_ctx *c, const struct yn *map, const char *key, enum yn_type want,
			     const char *what)
{
	const struct yn *v = yn_get(map, key);
	if (!cfg_missing(v, want))
		return v;
	size_t pl = cfg_path_push(c, ".%s", key);
	const char *how = v == NULL ? "" : v->type == YN_NULL ? " (it is null)" : " (it is empty)";
	cfg_err(c, v && v->line ? v : map, "%s is required%s: %s", key, how, what);
	cfg_path_pop(c, pl);
	return NULL;
}

/* ---- typed getters -------------------------------------------------- */

int cfg_get_str(struct cfg_ctx *c, const struct yn *v, size_t max, char **out)
{
	if (v == NULL || v->type == YN_NULL)
		return 1;
	if (v->type != YN_SCALAR) {
		cfg_err(c, v, "expected a string, got %s", yn_type_str(v));
		return -1;
	}
	if (v->len > max) {
		cfg_err(c, v, "string is %zu bytes, more than the limit of %zu", v->len, max);
		return -1;
	}
	if (memchr(v->s, '\0', v->len) != NULL) {
		cfg_err(c, v, "string contains a NUL byte");
		return -1;
	}
	char *s = sn_arena_strndup(c->a, v->s, v->len);
	if (s == NULL) {
		cfg_err(c, v, "out of memory");
		return -1;
	}
	*out = s;
	return 0;
}

int cfg_get_uint(struct cfg_ctx *c, const struct yn *v, uint64_t min, uint64_t max, uint64_t *out)
{
	if (v == NULL || v->type == YN_NULL)
		return 1;
	if (v->type != YN_SCALAR) {
		cfg_err(c, v, "expected an integer, got %s", yn_type_str(v));
		return -1;
	}
	uint64_t x = 0;
	int ok = v->len > 0 && v->len <= 19;
	for (size_t i = 0; ok && i < v->len; i++) {
		if (v->s[i] < '0' || v->s[i] > '9')
			ok = 0;
		else
			x = x * 10 + (uint64_t)(v->s[i] - '0');
	}
	if (!ok) {
		cfg_err(c, v, "expected an integer between %llu and %llu, got \"%.64s\"",
			(unsigned long long)min, (unsigned long long)max, v->s);
		return -1;
	}
	if (x < min || x > max) {
		cfg_err(c, v, "%llu is out of range; use a value between %llu and %llu",
			(unsigned long long)x, (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*out = x;
	return 0;
}

int cfg_get_double(struct cfg_ctx *c, const struct yn *v, double min, double max, double *out)
{
	if (v == NULL || v->type == YN_NULL)
		return 1;
	if (v->type != YN_SCALAR) {
		cfg_err(c, v, "expected a number, got %s", yn_type_str(v));
		return -1;
	}
	char *end = NULL;
	errno = 0;
	double x = v->len ? strtod(v->s, &end) : 0;
	if (v->len == 0 || end != v->s + v->len || errno != 0 || !isfinite(x)) {
		cfg_err(c, v, "expected a number between %g and %g, got \"%.64s\"", min, max, v->s);
		return -1;
	}
	if (x < min || x > max) {
		cfg_err(c, v, "%g is out of range; use a value between %g and %g", x, min, max);
		return -1;
	}
	*out = x;
	return 0;
}

int cfg_get_bool(struct cfg_ctx *c, const struct yn *v, int *out)
{
	if (v == NULL || v->type == YN_NULL)
		return 1;
	if (v->type == YN_SCALAR) {
		if (!strcmp(v->s, "true") || !strcmp(v->s, "True") || !strcmp(v->s, "TRUE")) {
			*out = 1;
			return 0;
		}
		if (!strcmp(v->s, "false") || !strcmp(v->s, "False") || !strcmp(v->s, "FALSE")) {
			*out = 0;
			return 0;
		}
		cfg_err(c, v, "expected true or false, got \"%.64s\"", v->s);
		return -1;
	}
	cfg_err(c, v, "expected true or false, got %s", yn_type_str(v));
	return -1;
}

int cfg_get_duration(struct cfg_ctx *c, const struct yn *v, uint32_t *ms_out)
{
	if (v == NULL || v->type == YN_NULL)
		return 1;
	if (v->type != YN_SCALAR) {
		cfg_err(c, v, "expected a duration string like \"1.5s\", got %s", yn_type_str(v));
		return -1;
	}
	if (sn_parse_duration_ms(v->s, ms_out) != 0) {
		cfg_err(c, v, "\"%.64s\" is not a duration; write it like \"1.5s\", \"100ms\" or \"2m\" "
			"(a unit is required; at most 720h)", v->s);
		return -1;
	}
	return 0;
}

int cfg_want_map(struct cfg_ctx *c, const struct yn *v)
{
	if (v == NULL || v->type == YN_NULL)
		return 1;
	if (v->type != YN_MAP) {
		cfg_err(c, v, "expected a mapping, got %s", yn_type_str(v));
		return -1;
	}
	return 0;
}

int cfg_want_seq(struct cfg_ctx *c, const struct yn *v, size_t max_items)
{
	if (v == NULL || v->type == YN_NULL)
		return 1;
	if (v->type != YN_SEQ) {
		cfg_err(c, v, "expected a sequence (a YAML list), got %s", yn_type_str(v));
		return -1;
	}
	if (v->n > max_items) {
		cfg_err(c, v, "%zu items, more than the limit of %zu", v->n, max_items);
		return -1;
	}
	return 0;
}

int cfg_get_labels(struct cfg_ctx *c, const struct yn *v, struct sn_labels *out)
{
	int r = cfg_want_map(c, v);
	if (r != 0)
		return r;
	if (v->n > 256) {
		cfg_err(c, v, "%zu entries, more than the limit of 256", v->n);
		return -1;
	}
	struct sn_label *l = sn_arena_new_array(c->a, struct sn_label, v->n ? v->n : 1);
	if (l == NULL) {
		cfg_err(c, v, "out of memory");
		return -1;
	}
	size_t n = 0;
	int bad = 0;
	for (size_t i = 0; i < v->n; i++) {
		size_t pl = cfg_path_push(c, ".%s", v->keys[i]->s);
		char *val = "";
		if (v->keys[i]->len == 0 || v->keys[i]->len > CFG_MAX_NAME) {
			cfg_err(c, v->keys[i], "a key must be 1 to %d characters", CFG_MAX_NAME);
			bad = 1;
		} else if (cfg_get_str(c, v->items[i], CFG_MAX_STR, &val) < 0) {
			bad = 1;
		} else {
			l[n].key = sn_arena_strdup(c->a, v->keys[i]->s);
			l[n].value = val;
			if (l[n].key == NULL)
				bad = 1;
			else
				n++;
		}
		cfg_path_pop(c, pl);
	}
	out->v = l;
	out->n = n;
	return bad ? -1 : 0;
}

int cfg_get_str_list(struct cfg_ctx *c, const struct yn *v, size_t max_len, char ***out, size_t *n_out,
		     struct cfg_loc **locs_out)
{
	int r = cfg_want_seq(c, v, CFG_MAX_LIST);
	if (r != 0)
		return r;
	char **s = sn_arena_new_array(c->a, char *, v->n ? v->n : 1);
	struct cfg_loc *locs = sn_arena_new_array(c->a, struct cfg_loc, v->n ? v->n : 1);
	if (s == NULL || locs == NULL) {
		cfg_err(c, v, "out of memory");
		return -1;
	}
	size_t n = 0;
	int bad = 0;
	for (size_t i = 0; i < v->n; i++) {
		size_t pl = cfg_path_push(c, "[%zu]", i);
		char *x = NULL;
		int g = cfg_get_str(c, v->items[i], max_len, &x);
		if (g == 1) {
			/* a null item is a missing value, never skipped in silence */
			cfg_err(c, v->items[i], "a list item is null; remove it or write a value");
			bad = 1;
		} else if (g < 0)
			bad = 1;
		else if (g == 0) {
			locs[n] = cfg_loc_of(v->items[i]);
			s[n++] = x;
		}
		cfg_path_pop(c, pl);
	}
	*out = s;
	*n_out = n;
	if (locs_out)
		*locs_out = locs;
	return bad ? -1 : 0;
}
