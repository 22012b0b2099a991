/* Diagnostics: what is wrong, where (file:line:column, kind, name, field)
 * and what to do. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/config.h"

void sn_diags_init(struct sn_diags *d)
{
	memset(d, 0, sizeof(*d));
}

static void diag_free_one(struct sn_diag *g)
{
	free(g->file);
	free(g->kind);
	free(g->name);
	free(g->field);
	free(g->message);
}

void sn_diags_free(struct sn_diags *d)
{
	for (size_t i = 0; i < d->n; i++)
		diag_free_one(&d->v[i]);
	free(d->v);
	memset(d, 0, sizeof(*d));
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

void sn_diags_add(struct sn_diags *d, enum sn_diag_severity sev, const char *file, int line,
		  int column, const char *kind, const char *name, const char *field,
		  const char *fmt, ...)
{
	/* Counted even when storing fails, so an error is never lost as a
	 * success. */
	if (sev == SN_DIAG_ERROR)
		d->errors++;
	else
		d->warnings++;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct sn_diag *v = realloc(d->v, cap * sizeof(*v));
		if (v == NULL)
			return;
		d->v = v;
		d->cap = cap;
	}
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	struct sn_diag *g = &d->v[d->n];
	memset(g, 0, sizeof(*g));
	g->severity = sev;
	g->file = strdup(file ? file : "-");
	g->line = line;
	g->column = column;
	g->kind = dup_or_null(kind);
	g->name = dup_or_null(name);
	g->field = dup_or_null(field && field[0] ? field : NULL);
	g->message = strdup(msg);
	if (g->file == NULL || g->message == NULL) {
		diag_free_one(g);
		return;
	}
	d->n++;
}

void sn_diag_format(const struct sn_diag *g, char *buf, size_t size)
{
	if (size == 0)
		return;
	int off = 0;
	if (g->line > 0)
		off = snprintf(buf, size, "%s:%d:%d: %s: ", g->file, g->line, g->column > 0 ? g->column : 1,
			       g->severity == SN_DIAG_ERROR ? "error" : "warning");
	else
		off = snprintf(buf, size, "%s: %s: ", g->file,
			       g->severity == SN_DIAG_ERROR ? "error" : "warning");
	if (off < 0 || (size_t)off >= size)
		return;
	if (g->kind) {
		int k = snprintf(buf + off, size - (size_t)off, "%s%s%s: ", g->kind, g->name ? " " : "",
				 g->name ? g->name : "");
		if (k < 0 || (size_t)off + (size_t)k >= size)
			return;
		off += k;
	}
	if (g->field) {
		int k = snprintf(buf + off, size - (size_t)off, "%s: ", g->field);
		if (k < 0 || (size_t)off + (size_t)k >= size)
			return;
		off += k;
	}
	snprintf(buf + off, size - (size_t)off, "%s", g->message);
}

void sn_diags_print(const struct sn_diags *d, FILE *f)
{
	char buf[2048];
	for (size_t i = 0; i < d->n; i++) {
		sn_diag_format(&d->v[i], buf, sizeof(buf));
		fprintf(f, "%s\n", buf);
	}
}
