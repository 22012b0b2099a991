/* YAML documents as small trees with the line and column of every node
 * (built from libfyaml's event stream, so positions are exact and bounds
 * are ours), plus typed getters that turn a wrong type into a diagnostic. */
#include <errno.h>
#include <libfyaml.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

/* ---- tree building -------------------------------------------------- */

struct frame {
	struct yn *node;
	size_t cap;
	struct yn *pending_key;
};

struct builder {
	struct sn_arena *tmp;
	struct sn_diags *d;
	const char *file;
	struct frame stack[CFG_MAX_DEPTH + 1];
	int depth;
	struct yn *root;
	size_t nodes;
	int failed;              /* this document has an error: not delivered */
	int line_base;           /* added to every line: text is a slice of a larger file */
	int errors;
};

static void build_err(struct builder *b, int line, int col, const char *fmt, const char *arg)
{
	if (!b->failed)
		sn_diags_add(b->d, SN_DIAG_ERROR, b->file, line, col, NULL, NULL, NULL, fmt, arg);
	b->failed = 1;
	b->errors++;
}

static struct yn *new_node(struct builder *b, enum yn_type t, const struct fy_mark *m)
{
	if (++b->nodes > CFG_MAX_NODES) {
		build_err(b, m ? m->line + 1 + b->line_base : 0, m ? m->column + 1 : 0,
			  "document has more than 200000 YAML nodes%s; split it", "");
		return NULL;
	}
	struct yn *n = sn_arena_new(b->tmp, struct yn);
	if (n == NULL) {
		build_err(b, 0, 0, "out of memory%s", "");
		return NULL;
	}
	n->type = t;
	n->line = m ? m->line + 1 + b->line_base : 0;
	n->col = m ? m->column + 1 : 0;
	n->start = n->end = m ? m->input_pos : 0;
	return n;
}

static int push_child(struct builder *b, struct frame *f, struct yn *key, struct yn *val)
{
	struct yn *p = f->node;
	if (p->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 4;
		struct yn **items = sn_arena_new_array(b->tmp, struct yn *, cap);
		struct yn **keys = p->type == YN_MAP ? sn_arena_new_array(b->tmp, struct yn *, cap) : NULL;
		if (items == NULL || (p->type == YN_MAP && keys == NULL)) {
			build_err(b, 0, 0, "out of memory%s", "");
			return -1;
		}
		if (p->n) {
			memcpy(items, p->items, p->n * sizeof(*items));
			if (keys)
				memcpy(keys, p->keys, p->n * sizeof(*keys));
		}
		p->items = items;
		p->keys = keys;
		f->cap = cap;
	}
	if (p->type == YN_MAP)
		p->keys[p->n] = key;
	p->items[p->n++] = val;
	return 0;
}

/* A finished node goes into its parent (or becomes the root). */
static void attach(struct builder *b, struct yn *n)
{
	if (n == NULL)
		return;
	if (b->depth > 0 && n->end > b->stack[b->depth - 1].node->end)
		b->stack[b->depth - 1].node->end = n->end;
	if (b->depth == 0) {
		if (b->root == NULL)
			b->root = n;
		return;
	}
	struct frame *f = &b->stack[b->depth - 1];
	if (f->node->type == YN_SEQ) {
		if (f->node->n >= CFG_MAX_LIST * 64) {
			build_err(b, n->line, n->col, "sequence has too many items%s; split it", "");
			return;
		}
		push_child(b, f, NULL, n);
		return;
	}
	if (f->pending_key == NULL) {
		if (n->type != YN_SCALAR) {
			build_err(b, n->line, n->col, "a mapping key must be a plain string%s", "");
			n = NULL;
		}
		if (n != NULL) {
			if (f->node->n >= CFG_MAX_MAP_KEYS) {
				build_err(b, n->line, n->col, "mapping has more than 1024 keys%s", "");
			} else {
				for (size_t i = 0; i < f->node->n; i++) {
					if (strcmp(f->node->keys[i]->s, n->s) == 0) {
						build_err(b, n->line, n->col,
							  "duplicate key \"%s\"; remove one of them", n->s);
						break;
					}
				}
			}
		}
		/* keep a placeholder so key/value alternation stays right */
		if (n == NULL) {
			static const struct fy_mark zero;
			n = new_node(b, YN_SCALAR, &zero);
			if (n == NULL)
				return;
			n->s = "";
		}
		f->pending_key = n;
		return;
	}
	struct yn *k = f->pending_key;
	f->pending_key = NULL;
	push_child(b, f, k, n);
}

static int is_null_text(const char *s, size_t len)
{
	return len == 0 || (len == 1 && s[0] == '~') ||
	       (len == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) || !memcmp(s, "NULL", 4)));
}

static void on_event(struct builder *b, struct fy_event *e)
{
	const struct fy_mark *m = fy_event_start_mark(e);
	struct yn *n;

	if (b->failed && e->type != FYET_DOCUMENT_START) {
		/* refused already: only keep the nesting count */
		if (e->type == FYET_MAPPING_START || e->type == FYET_SEQUENCE_START)
			b->depth++;
		else if ((e->type == FYET_MAPPING_END || e->type == FYET_SEQUENCE_END) && b->depth > 0)
			b->depth--;
		return;
	}

	switch (e->type) {
	case FYET_DOCUMENT_START:
		b->root = NULL;
		b->depth = 0;
		b->nodes = 0;
		b->failed = 0;
		break;
	case FYET_SCALAR: {
		size_t len = 0;
		const char *t = e->scalar.value ? fy_token_get_text(e->scalar.value, &len) : NULL;
		int plain = e->scalar.value == NULL ||
			    fy_token_scalar_style(e->scalar.value) == FYSS_PLAIN;
		if (t == NULL)
			len = 0;
		if (len > CFG_MAX_SCALAR) {
			build_err(b, m ? m->line + 1 + b->line_base : 0, m ? m->column + 1 : 0,
				  "scalar longer than 1 MiB%s", "");
			return;
		}
		int null = plain && is_null_text(t ? t : "", len) && e->scalar.tag == NULL;
		n = new_node(b, null ? YN_NULL : YN_SCALAR, m);
		if (n == NULL)
			return;
		n->plain = plain;
		if (fy_event_end_mark(e) != NULL)
			n->end = fy_event_end_mark(e)->input_pos;
		n->s = sn_arena_strndup(b->tmp, t ? t : "", len);
		n->len = len;
		if (n->s == NULL) {
			build_err(b, 0, 0, "out of memory%s", "");
			return;
		}
		attach(b, n);
		break;
	}
	case FYET_ALIAS:
		build_err(b, m ? m->line + 1 + b->line_base : 0, m ? m->column + 1 : 0,
			  "YAML aliases (*name) are not supported%s; write the value out", "");
		n = new_node(b, YN_NULL, m);
		attach(b, n);
		break;
	case FYET_MAPPING_START:
	case FYET_SEQUENCE_START:
		if (b->depth >= CFG_MAX_DEPTH) {
			build_err(b, m ? m->line + 1 + b->line_base : 0, m ? m->column + 1 : 0,
				  "YAML nested deeper than 64 levels%s", "");
			/* parse on; nodes below are dropped, the document is refused */
			b->depth++;
			return;
		}
		n = new_node(b, e->type == FYET_MAPPING_START ? YN_MAP : YN_SEQ, m);
		b->stack[b->depth].node = n;
		b->stack[b->depth].cap = 0;
		b->stack[b->depth].pending_key = NULL;
		b->depth++;
		break;
	case FYET_MAPPING_END:
	case FYET_SEQUENCE_END:
		if (b->depth == 0)
			return;
		b->depth--;
		/* a flow collection ends at its bracket; a block one's end mark
		 * is the next token, so its children bound it */
		if (m != NULL && fy_event_end_mark(e) != NULL && fy_event_end_mark(e)->input_pos > m->input_pos &&
		    b->stack[b->depth].node != NULL)
			b->stack[b->depth].node->end = fy_event_end_mark(e)->input_pos;
		attach(b, b->stack[b->depth].node);
		break;
	default:
		break;
	}
}

/* Offset of the first byte that is not valid UTF-8 (or a control
 * character YAML forbids), or len. Checked before libfyaml sees the text:
 * YAML is UTF-8 here, and libfyaml 0.7.12 can loop on malformed bytes in a
 * directive (found by fuzz_config_yaml). */
static size_t first_bad_byte(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		if (c < 0x80) {
			if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
				return i;
			i++;
			continue;
		}
		size_t n;
		uint32_t cp;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return i;
		}
		for (size_t k = 1; k <= n; k++) {
			if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
				return i;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return i;
		i += n + 1;
	}
	return len;
}

size_t cfg_yaml_parse(const char *file, const char *text, size_t len, struct sn_diags *d,
		      cfg_doc_cb on_doc, void *user)
{
	return cfg_yaml_parse_at(file, text, len, 0, d, on_doc, user);
}

size_t cfg_yaml_parse_at(const char *file, const char *text, size_t len, int line_base, struct sn_diags *d,
			 cfg_doc_cb on_doc, void *user)
{
	struct builder b;
	struct sn_arena tmp;
	size_t before = d->errors;
	size_t docs = 0;

	memset(&b, 0, sizeof(b));
	sn_arena_init(&tmp, 64 * 1024);
	b.tmp = &tmp;
	b.d = d;
	b.file = file;
	b.line_base = line_base > 0 ? line_base : 0;

	if (len > CFG_MAX_INPUT) {
		sn_diags_add(d, SN_DIAG_ERROR, file, 0, 0, NULL, NULL, NULL,
			     "input is %zu bytes, more than the 16 MiB limit; split it", len);
		return 1;
	}

	size_t bad = first_bad_byte((const unsigned char *)text, len);
	if (bad < len) {
		int line = 1 + b.line_base, col = 1;
		for (size_t i = 0; i < bad; i++) {
			if (text[i] == '\n') {
				line++;
				col = 1;
			} else if (((unsigned char)text[i] & 0xc0) != 0x80) {
				col++;
			}
		}
		sn_diags_add(d, SN_DIAG_ERROR, file, line, col, NULL, NULL, NULL,
			     "byte 0x%02x is not valid UTF-8 text; save the file as UTF-8 without control characters",
			     (unsigned char)text[bad]);
		return 1;
	}

	struct fy_diag_cfg dcfg;
	fy_diag_cfg_default(&dcfg);
	dcfg.fp = NULL;
	dcfg.output_fn = NULL;
	dcfg.colorize = false;
	dcfg.level = FYET_ERROR;
	struct fy_diag *diag = fy_diag_create(&dcfg);
	if (diag == NULL) {
		sn_diags_add(d, SN_DIAG_ERROR, file, 0, 0, NULL, NULL, NULL, "out of memory");
		return 1;
	}
	fy_diag_set_collect_errors(diag, true);
	struct fy_parse_cfg pcfg = { .flags = FYPCF_QUIET, .diag = diag };
	struct fy_parser *fyp = fy_parser_create(&pcfg);
	if (fyp == NULL || fy_parser_set_string(fyp, text, len) != 0) {
		sn_diags_add(d, SN_DIAG_ERROR, file, 0, 0, NULL, NULL, NULL, "cannot start the YAML parser");
		goto out;
	}

	struct fy_event *e;
	while ((e = fy_parser_parse(fyp)) != NULL) {
		int end = e->type == FYET_DOCUMENT_END;
		on_event(&b, e);
		fy_parser_event_free(fyp, e);
		if (!end)
			continue;
		if (++docs > CFG_MAX_DOCS) {
			sn_diags_add(d, SN_DIAG_ERROR, file, 0, 0, NULL, NULL, NULL,
				     "more than %d documents; split the input", CFG_MAX_DOCS);
			break;
		}
		if (!b.failed && b.root != NULL && b.root->type != YN_NULL)
			on_doc(user, b.root, &tmp);
		b.root = NULL;
		sn_arena_free(&tmp);
		sn_arena_init(&tmp, 64 * 1024);
	}

	void *it = NULL;
	struct fy_diag_error *de;
	int syntax = 0;
	while ((de = fy_diag_errors_iterate(diag, &it)) != NULL) {
		if (de->type < FYET_ERROR)
			continue;
		syntax++;
		sn_diags_add(d, SN_DIAG_ERROR, file, de->line ? de->line + b.line_base : 0, de->column, NULL, NULL, NULL,
			     "YAML syntax error: %s; fix the YAML (documents before this one were read)",
			     de->msg ? de->msg : "malformed input");
	}
	if (!syntax && fy_parser_get_stream_error(fyp))
		sn_diags_add(d, SN_DIAG_ERROR, file, 0, 0, NULL, NULL, NULL,
			     "YAML syntax error; fix the YAML");
out:
	if (fyp)
		fy_parser_destroy(fyp);
	fy_diag_destroy(diag);
	sn_arena_free(&tmp);
	return d->errors - before;
}

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
	cfg_warn(c, key, "unknown field; ignored (check the spelling against the Istio/Kubernetes reference)");
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
		if (g < 0)
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
