/* YAML documents as small trees with the line and column of every node,
 * built from libyaml's event stream, so positions are exact and bounds
 * are ours. libyaml only scans: a scalar is its text and its style, and
 * fields.c decides what the text means, so YAML 1.1's yes/on/0777 are
 * plain text here like any other word. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config_internal.h"

/* ---- tree building -------------------------------------------------- */

struct frame {
	struct yn *node;
	size_t cap;
	struct yn *pending_key;
};

/* libyaml's marks count characters; a node's span is in bytes. The text
 * is valid UTF-8 (first_bad_byte), and marks arrive nearly in order, so a
 * cursor that walks from the last mark converts them in linear time. */
struct byte_cursor {
	const unsigned char *s;
	size_t len;
	int ascii;               /* no multi-byte characters: byte = base + index */
	size_t base;             /* 3 after a byte order mark, which libyaml skips */
	size_t chars;            /* character index of byte */
	size_t byte;
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
	struct byte_cursor cur;
};

static size_t byte_offset(struct byte_cursor *c, size_t index)
{
	if (c->ascii)
		return c->base + index < c->len ? c->base + index : c->len;
	while (c->chars < index && c->byte < c->len) {
		c->byte++;
		while (c->byte < c->len && (c->s[c->byte] & 0xc0) == 0x80)
			c->byte++;
		c->chars++;
	}
	while (c->chars > index && c->byte > c->base) {
		c->byte--;
		while (c->byte > c->base && (c->s[c->byte] & 0xc0) == 0x80)
			c->byte--;
		c->chars--;
	}
	return c->byte;
}

static void build_err(struct builder *b, int line, int col, const char *fmt, const char *arg)
{
	if (!b->failed)
		sn_diags_add(b->d, SN_DIAG_ERROR, b->file, line, col, NULL, NULL, NULL, fmt, arg);
	b->failed = 1;
	b->errors++;
}

static int mark_line(const struct builder *b, const yaml_mark_t *m)
{
	return m ? (int)m->line + 1 + b->line_base : 0;
}

static int mark_col(const yaml_mark_t *m)
{
	return m ? (int)m->column + 1 : 0;
}

static struct yn *new_node(struct builder *b, enum yn_type t, const yaml_mark_t *m)
{
	if (++b->nodes > CFG_MAX_NODES) {
		build_err(b, mark_line(b, m), mark_col(m),
			  "document has more than 200000 YAML nodes%s; split it", "");
		return NULL;
	}
	struct yn *n = sn_arena_new(b->tmp, struct yn);
	if (n == NULL) {
		build_err(b, 0, 0, "out of memory%s", "");
		return NULL;
	}
	n->type = t;
	n->line = mark_line(b, m);
	n->col = mark_col(m);
	n->start = n->end = m ? byte_offset(&b->cur, m->index) : 0;
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
			n = new_node(b, YN_SCALAR, NULL);
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

static void on_event(struct builder *b, const yaml_event_t *e)
{
	const yaml_mark_t *m = &e->start_mark;
	struct yn *n;

	if (b->failed && e->type != YAML_DOCUMENT_START_EVENT) {
		/* refused already: only keep the nesting count */
		if (e->type == YAML_MAPPING_START_EVENT || e->type == YAML_SEQUENCE_START_EVENT)
			b->depth++;
		else if ((e->type == YAML_MAPPING_END_EVENT || e->type == YAML_SEQUENCE_END_EVENT) && b->depth > 0)
			b->depth--;
		return;
	}

	switch (e->type) {
	case YAML_DOCUMENT_START_EVENT:
		b->root = NULL;
		b->depth = 0;
		b->nodes = 0;
		b->failed = 0;
		break;
	case YAML_SCALAR_EVENT: {
		const char *t = (const char *)e->data.scalar.value;
		size_t len = t ? e->data.scalar.length : 0;
		int plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		if (len > CFG_MAX_SCALAR) {
			build_err(b, mark_line(b, m), mark_col(m), "scalar longer than 1 MiB%s", "");
			return;
		}
		int null = plain && is_null_text(t ? t : "", len) && e->data.scalar.tag == NULL;
		n = new_node(b, null ? YN_NULL : YN_SCALAR, m);
		if (n == NULL)
			return;
		n->plain = plain;
		n->end = byte_offset(&b->cur, e->end_mark.index);
		/* a quoted scalar is where its text is, inside the quotes, as
		 * diagnostics have always pointed (libfyaml's convention) */
		if ((e->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
		     e->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE) &&
		    n->end >= n->start + 2 && (b->cur.s[n->start] == '"' || b->cur.s[n->start] == '\'')) {
			n->start++;
			n->end--;
			n->col++;
		}
		n->s = sn_arena_strndup(b->tmp, t ? t : "", len);
		n->len = len;
		if (n->s == NULL) {
			build_err(b, 0, 0, "out of memory%s", "");
			return;
		}
		attach(b, n);
		break;
	}
	case YAML_ALIAS_EVENT:
		/* the column of the name after '*' */
		build_err(b, mark_line(b, m), mark_col(m) + 1,
			  "YAML aliases (*name) are not supported%s; write the value out", "");
		n = new_node(b, YN_NULL, m);
		attach(b, n);
		break;
	case YAML_MAPPING_START_EVENT:
	case YAML_SEQUENCE_START_EVENT:
		if (b->depth >= CFG_MAX_DEPTH) {
			build_err(b, mark_line(b, m), mark_col(m), "YAML nested deeper than 64 levels%s", "");
			/* parse on; nodes below are dropped, the document is refused */
			b->depth++;
			return;
		}
		n = new_node(b, e->type == YAML_MAPPING_START_EVENT ? YN_MAP : YN_SEQ, m);
		b->stack[b->depth].node = n;
		b->stack[b->depth].cap = 0;
		b->stack[b->depth].pending_key = NULL;
		b->depth++;
		break;
	case YAML_MAPPING_END_EVENT:
	case YAML_SEQUENCE_END_EVENT:
		if (b->depth == 0)
			return;
		b->depth--;
		/* a flow collection ends at its bracket; a block one's end mark
		 * is the next token, so its children bound it */
		if (e->end_mark.index > m->index && b->stack[b->depth].node != NULL)
			b->stack[b->depth].node->end = byte_offset(&b->cur, e->end_mark.index);
		attach(b, b->stack[b->depth].node);
		break;
	default:
		break;
	}
}

/* Offset of the first byte that is not valid UTF-8 or not a character
 * YAML allows (C0 and C1 controls other than tab, line breaks and NEL;
 * DEL; U+FFFE, U+FFFF), or len. Checked before libyaml sees the text: YAML
 * is UTF-8 here, the error names the byte, and marks can then be turned
 * into byte offsets by counting characters. */
static size_t first_bad_byte(const unsigned char *s, size_t len, int *ascii)
{
	size_t i = 0;
	*ascii = 1;
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
		*ascii = 0;
		for (size_t k = 1; k <= n; k++) {
			if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
				return i;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f && cp != 0x85) ||
		    cp == 0xfffe || cp == 0xffff)
			return i;
		i += n + 1;
	}
	return len;
}

/* Line and column (1-based, columns in characters) of byte off. */
static void locate(const char *text, size_t off, int line_base, int *line, int *col)
{
	*line = 1 + line_base;
	*col = 1;
	for (size_t i = 0; i < off; i++) {
		if (text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)text[i] & 0xc0) != 0x80) {
			(*col)++;
		}
	}
}

/* libyaml stops at the first error; it is one diagnostic, at the problem,
 * naming the construct it was reading and where that began. */
static void syntax_error(struct builder *b, const yaml_parser_t *p, const char *text)
{
	int line = 0, col = 0;
	char ctx[200] = "";

	if (p->error == YAML_MEMORY_ERROR) {
		sn_diags_add(b->d, SN_DIAG_ERROR, b->file, 0, 0, NULL, NULL, NULL,
			     "out of memory while reading the YAML");
		return;
	}
	if (p->error == YAML_READER_ERROR) {
		locate(text, p->problem_offset < b->cur.len ? p->problem_offset : b->cur.len, b->line_base, &line, &col);
	} else {
		line = mark_line(b, &p->problem_mark);
		col = mark_col(&p->problem_mark);
		if (p->context != NULL)
			snprintf(ctx, sizeof(ctx), " (%s that starts at line %d, column %d)", p->context,
				 mark_line(b, &p->context_mark), mark_col(&p->context_mark));
	}
	sn_diags_add(b->d, SN_DIAG_ERROR, b->file, line, col, NULL, NULL, NULL,
		     "YAML syntax error: %s%s; fix the YAML (documents before this one were read)",
		     p->problem ? p->problem : "malformed input", ctx);
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
	yaml_parser_t p;
	size_t before = d->errors;
	size_t docs = 0;

	memset(&b, 0, sizeof(b));
	b.d = d;
	b.file = file;
	b.line_base = line_base > 0 ? line_base : 0;
	b.cur.s = (const unsigned char *)text;
	b.cur.len = len;

	if (len > CFG_MAX_INPUT) {
		sn_diags_add(d, SN_DIAG_ERROR, file, 0, 0, NULL, NULL, NULL,
			     "input is %zu bytes, more than the 16 MiB limit; split it", len);
		return 1;
	}

	size_t bad = first_bad_byte((const unsigned char *)text, len, &b.cur.ascii);
	if (bad < len) {
		int line, col;
		locate(text, bad, b.line_base, &line, &col);
		sn_diags_add(d, SN_DIAG_ERROR, file, line, col, NULL, NULL, NULL,
			     "byte 0x%02x is not valid UTF-8 text; save the file as UTF-8 without control characters",
			     (unsigned char)text[bad]);
		return 1;
	}

	if (!yaml_parser_initialize(&p)) {
		sn_diags_add(d, SN_DIAG_ERROR, file, 0, 0, NULL, NULL, NULL, "cannot start the YAML parser");
		return 1;
	}
	/* libyaml skips a leading byte order mark without counting it */
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		b.cur.base = b.cur.byte = 3;
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	sn_arena_init(&tmp, 64 * 1024);
	b.tmp = &tmp;

	for (;;) {
		yaml_event_t e;
		if (!yaml_parser_parse(&p, &e)) {
			syntax_error(&b, &p, text);
			break;
		}
		yaml_event_type_t type = e.type;
		on_event(&b, &e);
		yaml_event_delete(&e);
		if (type == YAML_STREAM_END_EVENT)
			break;
		if (type != YAML_DOCUMENT_END_EVENT)
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

	yaml_parser_delete(&p);
	sn_arena_free(&tmp);
	return d->errors - before;
}
