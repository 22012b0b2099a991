/* Same-code admission (DESIGN.md §3): an apply is validated by the config
 * library's loader and translated, together with the store, by the same
 * sn_config_translate a proxy runs. A resource with an error of its own
 * is refused alone: it is dropped and the rest translated again, so one
 * bad resource never blocks or changes another. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/control.h"
#include "sinew/log.h"

#include "admission_internal.h"

#define ADMIT_MAX_SOURCE 200

/* One resource of the candidate store: stored, or new in this apply. */
struct cand {
	enum sn_resource_kind kind;
	const char *api_version;
	const char *ns;
	const char *name;
	const char *source;
	int line;
	const char *text;
	size_t len;
	long item;                  /* index in the apply report; -1: stored, not in this apply */
	int dropped;
};

const char *sn_apply_result_str(enum sn_apply_result r)
{
	switch (r) {
	case SN_APPLY_CREATED:
		return "created";
	case SN_APPLY_CONFIGURED:
		return "configured";
	case SN_APPLY_UNCHANGED:
		return "unchanged";
	case SN_APPLY_REFUSED:
		return "refused";
	case SN_APPLY_IGNORED:
		return "ignored";
	}
	return "unknown";
}

void sn_apply_report_free(struct sn_apply_report *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].kind);
		free(r->v[i].namespace_);
		free(r->v[i].name);
		sn_diags_free(&r->v[i].diags);
	}
	free(r->v);
	memset(r, 0, sizeof(*r));
}

static void copy_diag(struct sn_diags *to, const struct sn_diag *g)
{
	sn_diags_add(to, g->severity, g->file, g->line, g->column, g->kind, g->name, g->field, "%s", g->message);
}

static int same_diag(const struct sn_diag *a, const struct sn_diag *b)
{
	return a->severity == b->severity && a->line == b->line && a->column == b->column &&
	       !strcmp(a->file, b->file) && !strcmp(a->message, b->message) &&
	       ((a->field == NULL && b->field == NULL) || (a->field && b->field && !strcmp(a->field, b->field)));
}

/* Appends g to d unless an identical message is there already (a
 * resource is translated once per identity namespace). */
static void add_unique(struct sn_diags *d, const struct sn_diag *g)
{
	for (size_t i = 0; i < d->n; i++)
		if (same_diag(&d->v[i], g))
			return;
	copy_diag(d, g);
}

/* Does g speak about kind ns/name? */
static int diag_is_about(const struct sn_diag *g, const char *kind, const char *ns, const char *name)
{
	if (g->kind == NULL || g->name == NULL || strcmp(g->kind, kind) != 0)
		return 0;
	size_t nl = strlen(ns);
	return !strncmp(g->name, ns, nl) && g->name[nl] == '/' && !strcmp(g->name + nl + 1, name);
}

static int has_error_about(const struct sn_diags *d, const struct cand *c)
{
	const char *kind = sn_resource_kind_str(c->kind);
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].severity == SN_DIAG_ERROR && diag_is_about(&d->v[i], kind, c->ns, c->name))
			return 1;
	return 0;
}

static void copy_about(struct sn_diags *to, const struct sn_diags *from, const struct cand *c)
{
	const char *kind = sn_resource_kind_str(c->kind);
	for (size_t i = 0; i < from->n; i++)
		if (diag_is_about(&from->v[i], kind, c->ns, c->name))
			add_unique(to, &from->v[i]);
}

/* Did translation skip this VirtualService for a host another one owns? */
static int is_shadowed(const struct sn_diags *d, const struct cand *c)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].severity == SN_DIAG_WARNING && diag_is_about(&d->v[i], "VirtualService", c->ns, c->name) &&
		    strstr(d->v[i].message, "comes first") != NULL)
			return 1;
	return 0;
}

/* Loads every candidate not dropped and translates the lot once per
 * identity namespace (the namespaces of the candidates in this apply, or
 * of every candidate when none is). All diagnostics go to out. */
static int evaluate(const struct cand *c, size_t n, struct sn_diags *out)
{
	struct sn_config_set set;
	const char *nss[SN_API_ADMIT_MAX_NAMESPACES];
	size_t n_ns = 0;
	int any_new = 0;

	sn_config_set_init(&set);
	for (size_t i = 0; i < n; i++) {
		if (c[i].dropped)
			continue;
		sn_config_load_text_at(&set, c[i].source, c[i].text, c[i].len, c[i].line, out);
		if (c[i].item >= 0)
			any_new = 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (c[i].dropped || (any_new && c[i].item < 0))
			continue;
		int seen = 0;
		for (size_t k = 0; k < n_ns; k++)
			if (!strcmp(nss[k], c[i].ns))
				seen = 1;
		if (!seen && n_ns < SN_ARRAY_LEN(nss))
			nss[n_ns++] = c[i].ns;
	}
	if (n_ns == 0)
		nss[n_ns++] = "default";

	for (size_t k = 0; k < n_ns; k++) {
		/* A neutral proxy: no service, no labels, in the namespace. */
		struct sn_proxy_identity id = { .service = NULL, .namespace_ = nss[k], .workload = "sinewd-admission",
						.gateway = SN_GATEWAY_ANY };
		struct sn_diags d;
		struct sn_snapshot *snap = NULL;
		sn_diags_init(&d);
		int rc = sn_config_translate(&set, &id, &d, &snap);
		if (snap != NULL)
			sn_snapshot_unref(snap);
		for (size_t i = 0; i < d.n; i++)
			add_unique(out, &d.v[i]);
		sn_diags_free(&d);
		if (rc == SN_ENOMEM) {
			sn_config_set_free(&set);
			return SN_ENOMEM;
		}
	}
	sn_config_set_free(&set);

	/* A new VirtualService for a host another one routes first is not
	 * translated at all (sidecars ignore it), so its references were not
	 * checked; it would poison every proxy the day the first one goes.
	 * Translate it on its own with everything but the other routes. */
	for (size_t i = 0; i < n; i++) {
		if (c[i].dropped || c[i].item < 0 || c[i].kind != SN_KIND_VIRTUAL_SERVICE || !is_shadowed(out, &c[i]))
			continue;
		sn_config_set_init(&set);
		for (size_t k = 0; k < n; k++)
			if (!c[k].dropped && (c[k].kind != SN_KIND_VIRTUAL_SERVICE || k == i))
				sn_config_load_text_at(&set, c[k].source, c[k].text, c[k].len, c[k].line, out);
		struct sn_proxy_identity id = { .namespace_ = c[i].ns, .workload = "sinewd-admission" };
		struct sn_diags d;
		struct sn_snapshot *snap = NULL;
		sn_diags_init(&d);
		sn_config_translate(&set, &id, &d, &snap);
		if (snap != NULL)
			sn_snapshot_unref(snap);
		for (size_t k = 0; k < d.n; k++)
			if (diag_is_about(&d.v[k], "VirtualService", c[i].ns, c[i].name))
				add_unique(out, &d.v[k]);
		sn_diags_free(&d);
		sn_config_set_free(&set);
	}
	return 0;
}

/* Candidates for the whole store (nothing new). */
static struct cand *store_cands(const struct sn_store *st, size_t *n_out)
{
	struct cand *c = calloc(st->n ? st->n : 1, sizeof(*c));
	if (c == NULL)
		return NULL;
	for (size_t i = 0; i < st->n; i++) {
		const struct sn_stored *e = st->v[i];
		c[i] = (struct cand){ e->kind, e->api_version, e->namespace_, e->name, e->source, e->line,
				      e->text, e->text_len, -1, 0 };
	}
	*n_out = st->n;
	return c;
}

static void set_statuses(struct sn_store *st, const struct sn_diags *d)
{
	for (size_t i = 0; i < st->n; i++)
		sn_stored_set_status(st->v[i], d);
}

void sn_admit_refresh_status(struct sn_store *st)
{
	size_t n = 0;
	struct cand *c = store_cands(st, &n);
	struct sn_diags d;
	sn_diags_init(&d);
	if (c != NULL && evaluate(c, n, &d) == 0)
		set_statuses(st, &d);
	sn_diags_free(&d);
	free(c);
}

int sn_admit_delete(struct sn_store *st, enum sn_resource_kind kind, const char *ns, const char *name)
{
	int rc = sn_store_delete(st, kind, ns, name);
	if (rc == 0 || rc == SN_ECONFLICT)
		sn_admit_refresh_status(st);
	return rc;
}

/* ---- apply ----------------------------------------------------------- */

static struct sn_apply_item *new_item(struct sn_apply_report *r, const char *kind, const char *ns,
				      const char *name, enum sn_apply_result res)
{
	struct sn_apply_item *v = realloc(r->v, (r->n + 1) * sizeof(*v));
	if (v == NULL)
		return NULL;
	r->v = v;
	struct sn_apply_item *it = &v[r->n];
	memset(it, 0, sizeof(*it));
	it->kind = strdup(kind ? kind : "");
	it->namespace_ = strdup(ns ? ns : "");
	it->name = strdup(name ? name : "");
	if (it->kind == NULL || it->namespace_ == NULL || it->name == NULL) {
		free(it->kind);
		free(it->namespace_);
		free(it->name);
		return NULL;
	}
	it->result = res;
	it->seq = r->n;
	sn_diags_init(&it->diags);
	r->n++;
	return it;
}

/* Items for the documents that did not load (grouped by the resource the
 * diagnostics name; a message naming none is an item of its own) and for
 * kinds Sinew does not implement yet. */
static int add_unloaded_items(struct sn_apply_report *r, const struct sn_config_set *set, const struct sn_diags *d)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct sn_diag *g = &d->v[i];
		int loaded = 0;
		for (const struct sn_resource *res = set->head; res && !loaded; res = res->next)
			loaded = diag_is_about(g, sn_resource_kind_str(res->kind), res->namespace_, res->name);
		if (loaded)
			continue;
		struct sn_apply_item *it = NULL;
		if (g->kind != NULL && g->name != NULL) {
			for (size_t k = 0; k < r->n && it == NULL; k++) {
				char nm[600];
				snprintf(nm, sizeof(nm), "%s/%s", r->v[k].namespace_, r->v[k].name);
				if (!strcmp(r->v[k].kind, g->kind) && !strcmp(nm, g->name) &&
				    (r->v[k].result == SN_APPLY_REFUSED || r->v[k].result == SN_APPLY_IGNORED))
					it = &r->v[k];
			}
		}
		if (it == NULL) {
			char ns[300] = "", name[300] = "";
			const char *slash = g->name ? strchr(g->name, '/') : NULL;
			if (slash != NULL) {
				snprintf(ns, sizeof(ns), "%.*s", (int)(slash - g->name), g->name);
				snprintf(name, sizeof(name), "%s", slash + 1);
			}
			it = new_item(r, g->kind, ns, name, SN_APPLY_IGNORED);
			if (it == NULL)
				return SN_ENOMEM;
			it->line = g->line;
		}
		copy_diag(&it->diags, g);
		if (g->severity == SN_DIAG_ERROR)
			it->result = SN_APPLY_REFUSED;
	}
	return 0;
}

static void sanitize_source(const char *in, char *out, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; in && in[i] && o + 1 < size && o < ADMIT_MAX_SOURCE; i++) {
		unsigned char ch = (unsigned char)in[i];
		out[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	out[o] = '\0';
	if (o == 0)
		snprintf(out, size, "-");
}

static int cmp_item_line(const void *a, const void *b)
{
	const struct sn_apply_item *x = a, *y = b;
	if (x->line != y->line)
		return (x->line > y->line) - (x->line < y->line);
	return (x->seq > y->seq) - (x->seq < y->seq);
}

static int name_ok_for_store(const char *s)
{
	return s[0] != '.';
}

void sn__admit_decision_free(struct sn__admit_decision *dec)
{
	sn_apply_report_free(&dec->rep);
	for (size_t i = 0; i < dec->n_puts; i++) {
		struct sn__admit_put *p = &dec->puts[i];
		free(p->api_version);
		free(p->ns);
		free(p->name);
		free(p->source);
		free(p->text);
	}
	free(dec->puts);
	sn_diags_free(&dec->eval);
	memset(dec, 0, sizeof(*dec));
}

static char *memdup0(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	if (p != NULL) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

static int add_put(struct sn__admit_decision *dec, const struct cand *c)
{
	struct sn__admit_put *v = realloc(dec->puts, (dec->n_puts + 1) * sizeof(*v));
	if (v == NULL)
		return SN_ENOMEM;
	dec->puts = v;
	struct sn__admit_put *p = &v[dec->n_puts];
	memset(p, 0, sizeof(*p));
	p->item = c->item;
	p->kind = c->kind;
	p->line = c->line;
	p->api_version = strdup(c->api_version);
	p->ns = strdup(c->ns);
	p->name = strdup(c->name);
	p->source = strdup(c->source);
	p->text = memdup0(c->text, c->len);
	p->len = c->len;
	dec->n_puts++;
	if (p->api_version == NULL || p->ns == NULL || p->name == NULL || p->source == NULL || p->text == NULL)
		return SN_ENOMEM;
	return 0;
}

void sn__admit_sanitize_source(const char *in, char *out, size_t size)
{
	sanitize_source(in, out, size);
}

/* Steps 1 to 3 of an apply: load, decide per resource, translate with the
 * store; changes nothing. mark (n_mark entries, one per resource of the
 * body in order, or NULL) sets resources aside: SN__ADMIT_SKIP quietly,
 * SN__ADMIT_CRASHED refused with internal_error. */
int sn__admit_decide(const struct sn_store *st, const char *source_in, const char *text, size_t len,
		     const unsigned char *mark, size_t n_mark, sn__admit_loaded_cb on_loaded, void *user,
		     struct sn__admit_decision *dec)
{
	char source[ADMIT_MAX_SOURCE + 8];
	struct sn_config_set body;
	struct sn_diags load_d;
	struct cand *c = NULL;
	long *item_of = NULL;   /* report item per new resource */
	struct sn_apply_report *out = &dec->rep;
	int rc = 0;

	memset(dec, 0, sizeof(*dec));
	sanitize_source(source_in, source, sizeof(source));
	sn_config_set_init(&body);
	sn_diags_init(&load_d);
	sn_diags_init(&dec->eval);

	sn_config_load_text(&body, source, text, len, &load_d);
	if (on_loaded != NULL)
		on_loaded(user, &body);

	/* 1. one item per loaded resource, in document order */
	size_t n_new = body.count;
	item_of = calloc(n_new ? n_new : 1, sizeof(*item_of));
	c = calloc(st->n + n_new + 1, sizeof(*c));
	if (item_of == NULL || c == NULL) {
		rc = SN_ENOMEM;
		goto out;
	}
	size_t k = 0;
	for (const struct sn_resource *r = body.head; r; r = r->next, k++) {
		const char *kind = sn_resource_kind_str(r->kind);
		struct sn_apply_item *it = new_item(out, kind, r->namespace_, r->name, SN_APPLY_CREATED);
		if (it == NULL) {
			rc = SN_ENOMEM;
			goto out;
		}
		item_of[k] = (long)(out->n - 1);
		it->line = r->text_line;
		if (mark != NULL && k < n_mark && mark[k] != SN__ADMIT_ADMIT) {
			if (mark[k] == SN__ADMIT_CRASHED)
				sn_diags_add(&it->diags, SN_DIAG_ERROR, source, r->line, 1, kind,
					     NULL, NULL,
					     "internal_error: admitting %s %s/%s crashed sinewd's admission "
					     "process; it was refused, sinewd and the other resources are "
					     "unaffected and no proxy received it. Please report it with this "
					     "resource (sinewd " SINEWD_VERSION ")",
					     kind, r->namespace_, r->name);
			it->result = SN_APPLY_REFUSED;
			continue;
		}
		struct cand tmp = { r->kind, r->api_version, r->namespace_, r->name, source, r->text_line,
				    r->text, r->text_len, item_of[k], 0 };
		copy_about(&it->diags, &load_d, &tmp);
		/* the same resource twice in one apply: the second is refused */
		for (const struct sn_resource *p = body.head; p != r; p = p->next) {
			if (p->kind == r->kind && !strcmp(p->namespace_, r->namespace_) && !strcmp(p->name, r->name)) {
				sn_diags_add(&it->diags, SN_DIAG_ERROR, source, r->line, 1, kind, NULL, "metadata.name",
					     "%s %s/%s is already defined in this apply at %s:%d; remove one of them",
					     kind, r->namespace_, r->name, source, p->line);
				it->result = SN_APPLY_REFUSED;
				break;
			}
		}
		if (it->result == SN_APPLY_REFUSED)
			continue;
		if (!name_ok_for_store(r->name) || !name_ok_for_store(r->namespace_)) {
			sn_diags_add(&it->diags, SN_DIAG_ERROR, source, r->line, 1, kind, NULL, "metadata",
				     "a name or namespace may not start with '.'; rename %s/%s", r->namespace_, r->name);
			it->result = SN_APPLY_REFUSED;
		} else if (r->text == NULL || r->text_len > SN_STORE_MAX_RESOURCE_BYTES) {
			sn_diags_add(&it->diags, SN_DIAG_ERROR, source, r->line, 1, kind, NULL, NULL,
				     "%s %s/%s is larger than the 1 MiB a resource may take; split it", kind,
				     r->namespace_, r->name);
			it->result = SN_APPLY_REFUSED;
		} else if (sn_store_get(st, r->kind, r->namespace_, r->name) == NULL &&
			   st->n + n_new > SN_STORE_MAX_RESOURCES) {
			sn_diags_add(&it->diags, SN_DIAG_ERROR, source, r->line, 1, kind, NULL, NULL,
				     "the store holds %zu resources, the limit is %u; delete some first", st->n,
				     SN_STORE_MAX_RESOURCES);
			it->result = SN_APPLY_REFUSED;
		}
	}
	if (add_unloaded_items(out, &body, &load_d) != 0) {
		rc = SN_ENOMEM;
		goto out;
	}

	/* 2. the candidate store: stored resources (a replaced one in its
	 * place, so "which came first" does not change), then new ones */
	size_t n = 0;
	for (size_t i = 0; i < st->n; i++) {
		const struct sn_stored *e = st->v[i];
		c[n++] = (struct cand){ e->kind, e->api_version, e->namespace_, e->name, e->source, e->line,
					e->text, e->text_len, -1, 0 };
	}
	k = 0;
	for (const struct sn_resource *r = body.head; r; r = r->next, k++) {
		if (out->v[item_of[k]].result == SN_APPLY_REFUSED)
			continue;
		struct cand nc = { r->kind, r->api_version, r->namespace_, r->name, source, r->text_line,
				   r->text, r->text_len, item_of[k], 0 };
		size_t at = n;
		for (size_t i = 0; i < n; i++)
			if (c[i].item < 0 && c[i].kind == r->kind && !strcmp(c[i].ns, r->namespace_) &&
			    !strcmp(c[i].name, r->name))
				at = i;
		c[at] = nc;
		if (at == n)
			n++;
	}

	/* 3. translate; drop the new resources with errors of their own;
	 * again until none is dropped */
	for (size_t round = 0; round <= n_new; round++) {
		sn_diags_free(&dec->eval);
		sn_diags_init(&dec->eval);
		rc = evaluate(c, n, &dec->eval);
		if (rc != 0)
			goto out;
		int dropped = 0;
		for (size_t i = 0; i < n; i++) {
			if (c[i].item < 0 || c[i].dropped || !has_error_about(&dec->eval, &c[i]))
				continue;
			struct sn_apply_item *it = &out->v[c[i].item];
			copy_about(&it->diags, &dec->eval, &c[i]);
			it->result = SN_APPLY_REFUSED;
			c[i].dropped = 1;
			dropped = 1;
		}
		if (!dropped)
			break;
	}

	/* what step 4 persists, owned (it may cross a process boundary) */
	for (size_t i = 0; i < n; i++) {
		if (c[i].item < 0 || c[i].dropped)
			continue;
		copy_about(&out->v[c[i].item].diags, &dec->eval, &c[i]);
		if (add_put(dec, &c[i]) != 0) {
			rc = SN_ENOMEM;
			goto out;
		}
	}

out:
	dec->rc = rc;
	free(item_of);
	free(c);
	sn_diags_free(&load_d);
	sn_config_set_free(&body);
	return rc;
}

/* Step 4: persist what dec accepted, update every status; then the
 * report's final order and count (into out, which takes dec's report). */
int sn__admit_commit(struct sn_store *st, struct sn__admit_decision *dec, struct sn_apply_report *out)
{
	struct sn_apply_report *rep = &dec->rep;
	int rc = dec->rc;
	uint64_t rev_before = st->revision;

	/* What changed goes to the store in one batch (one etcd transaction). */
	struct sn_store_put *w = rc == 0 && dec->n_puts ? calloc(dec->n_puts, sizeof(*w)) : NULL;
	size_t *wi = rc == 0 && dec->n_puts ? calloc(dec->n_puts, sizeof(*wi)) : NULL;
	struct sn_stored **we = rc == 0 && dec->n_puts ? calloc(dec->n_puts, sizeof(*we)) : NULL;
	size_t nw = 0;
	if (dec->n_puts && (w == NULL || wi == NULL || we == NULL))
		rc = SN_ENOMEM;
	for (size_t i = 0; rc == 0 && i < dec->n_puts; i++) {
		const struct sn__admit_put *p = &dec->puts[i];
		if (p->item < 0 || (size_t)p->item >= rep->n)
			continue;
		struct sn_apply_item *it = &rep->v[p->item];
		struct sn_stored *old = sn_store_get(st, p->kind, p->ns, p->name);
		if (old != NULL && old->text_len == p->len && !memcmp(old->text, p->text, p->len) &&
		    !strcmp(old->api_version, p->api_version)) {
			it->result = SN_APPLY_UNCHANGED;
			it->resource_version = old->resource_version;
			continue;
		}
		it->result = old != NULL ? SN_APPLY_CONFIGURED : SN_APPLY_CREATED;
		w[nw] = (struct sn_store_put){ p->kind, p->api_version, p->ns, p->name, p->source, p->line, p->text,
					       p->len };
		wi[nw++] = (size_t)p->item;
	}
	int prc = rc == 0 && nw ? sn_store_put_many(st, w, nw, we) : 0;
	for (size_t k = 0; prc != 0 && k < nw; k++) {
		struct sn_apply_item *it = &rep->v[wi[k]];
		if (we[k] != NULL)
			continue;   /* stored before a later one failed (directory store) */
		if (prc == SN_ECONFLICT)
			sn_diags_add(&it->diags, SN_DIAG_ERROR, w[k].source, w[k].line, 1, sn_resource_kind_str(w[k].kind),
				     NULL, NULL,
				     "another sinewd replica changed resources of this apply while it was being admitted; "
				     "nothing of it was stored; apply again");
		else
			sn_diags_add(&it->diags, SN_DIAG_ERROR, w[k].source, w[k].line, 1, sn_resource_kind_str(w[k].kind),
				     NULL, NULL, "sinewd could not store this resource (%s%s%s); see sinewd's log and apply again",
				     prc == SN_EIO ? "I/O error" : prc == SN_ELIMIT ? "limit" : "out of memory",
				     st->error[0] ? ": " : "", st->error);
		it->result = SN_APPLY_REFUSED;
	}
	for (size_t k = 0; k < nw; k++)
		if (we[k] != NULL) {
			/* another replica may have made it meanwhile (etcd) */
			if (rep->v[wi[k]].result == SN_APPLY_CREATED && we[k]->generation > 1)
				rep->v[wi[k]].result = SN_APPLY_CONFIGURED;
			rep->v[wi[k]].resource_version = we[k]->resource_version;
		}
	if (prc == SN_EIO || prc == SN_ECONFLICT || prc == SN_ENOMEM)
		rc = prc;
	free(w);
	free(wi);
	free(we);
	if (rc == SN_ECONFLICT) {
		sn_admit_refresh_status(st);   /* the index holds another replica's versions now */
	} else if (dec->rc == 0) {
		set_statuses(st, &dec->eval);
		if (st->revision != rev_before && sn_store_save_revision(st) != 0)
			sn_log(SN_LOG_WARN, "store: cannot write %s/revision; resources are stored, the revision is "
					    "recovered from them on start", st->where);
	}
	if (rc == SN_ENOMEM) {
		struct sn_apply_item *it = new_item(rep, "", "", "", SN_APPLY_REFUSED);
		if (it != NULL)
			sn_diags_add(&it->diags, SN_DIAG_ERROR, "-", 0, 0, NULL, NULL, NULL,
				     "sinewd ran out of memory admitting this apply; nothing was stored; split it");
		for (size_t i = 0; i < rep->n; i++)
			if (rep->v[i].result != SN_APPLY_IGNORED)
				rep->v[i].result = SN_APPLY_REFUSED;
	}
	if (rep->n > 1)
		qsort(rep->v, rep->n, sizeof(*rep->v), cmp_item_line);
	rep->refused = 0;
	for (size_t i = 0; i < rep->n; i++)
		if (rep->v[i].result == SN_APPLY_REFUSED)
			rep->refused++;
	*out = *rep;
	memset(rep, 0, sizeof(*rep));
	sn__admit_decision_free(dec);
	return rc;
}

int sn_admit_apply(struct sn_store *st, const char *source, const char *text, size_t len,
		   struct sn_apply_report *out)
{
	struct sn__admit_decision dec;
	sn__admit_decide(st, source, text, len, NULL, 0, NULL, NULL, &dec);
	return sn__admit_commit(st, &dec, out);
}
