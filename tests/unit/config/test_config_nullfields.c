/* Generated test of the required-value rule (issue "Hardened inputs"): for
 * every document of a set of valid inputs (every kind, Istio's bookinfo
 * files), every scalar in it is set to null, [] and {} in turn, and the
 * whole file is loaded and translated again. Nothing may crash (ASan and
 * UBSan watch); [] and {} where a scalar belongs must be reported with the
 * field's path; null must leave the resource either accepted or refused
 * with an error, never half-read; and the fields a kind cannot do without
 * must be refused when null. */
#include <dirent.h>

#include "cfg_test_util.h"

#include "config/config_internal.h"

#define MAX_DOCS 64
#define MAX_LEAVES 4096

/* A leaf: its field path as diagnostics print it, and its node. */
struct leaf {
	char path[512];
	const struct yn *node;
};

struct doc {
	struct sn_arena arena;   /* the tree, kept (copied out of the parser's) */
	struct yn *root;
};

struct file {
	const char *name;
	struct doc docs[MAX_DOCS];
	size_t n_docs;
};

static struct yn *copy_tree(struct sn_arena *a, const struct yn *n)
{
	struct yn *c = sn_arena_new(a, struct yn);
	assert_non_null(c);
	*c = *n;
	if (n->s)
		c->s = sn_arena_strndup(a, n->s, n->len);
	if (n->n) {
		c->items = sn_arena_new_array(a, struct yn *, n->n);
		assert_non_null(c->items);
		if (n->keys) {
			c->keys = sn_arena_new_array(a, struct yn *, n->n);
			assert_non_null(c->keys);
		}
		for (size_t i = 0; i < n->n; i++) {
			c->items[i] = copy_tree(a, n->items[i]);
			if (n->keys)
				c->keys[i] = copy_tree(a, n->keys[i]);
		}
	}
	return c;
}

static void on_doc(void *user, struct yn *root, struct sn_arena *tmp)
{
	struct file *f = user;
	(void)tmp;
	assert_true(f->n_docs < MAX_DOCS);
	struct doc *d = &f->docs[f->n_docs++];
	sn_arena_init(&d->arena, 16 * 1024);
	d->root = copy_tree(&d->arena, root);
}

/* ---- emitting a tree back as flow YAML, one node replaced ---------- */

struct out {
	char *s;
	size_t n, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->n + n + 1 > o->cap) {
		o->cap = (o->n + n + 1) * 2;
		o->s = realloc(o->s, o->cap);
		assert_non_null(o->s);
	}
	memcpy(o->s + o->n, s, n);
	o->n += n;
	o->s[o->n] = '\0';
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static int plain_safe(const struct yn *n)
{
	if (!n->plain || n->len == 0 || n->s[0] == '-')
		return 0;
	for (size_t i = 0; i < n->len; i++) {
		char c = n->s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '/' || c == '-'))
			return 0;
	}
	return 1;
}

static void put_scalar(struct out *o, const struct yn *n)
{
	if (n->type == YN_NULL) {
		puts_(o, "null");
		return;
	}
	if (plain_safe(n)) {
		put(o, n->s, n->len);
		return;
	}
	puts_(o, "\"");
	for (size_t i = 0; i < n->len; i++) {
		unsigned char c = (unsigned char)n->s[i];
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(o, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			puts_(o, esc);
		} else {
			put(o, (const char *)&c, 1);
		}
	}
	puts_(o, "\"");
}

static void emit(struct out *o, const struct yn *n, const struct yn *target, const char *repl)
{
	if (n == target) {
		puts_(o, repl);
		return;
	}
	switch (n->type) {
	case YN_NULL:
	case YN_SCALAR:
		put_scalar(o, n);
		return;
	case YN_SEQ:
		puts_(o, "[");
		for (size_t i = 0; i < n->n; i++) {
			if (i)
				puts_(o, ", ");
			emit(o, n->items[i], target, repl);
		}
		puts_(o, "]");
		return;
	case YN_MAP:
		puts_(o, "{");
		for (size_t i = 0; i < n->n; i++) {
			if (i)
				puts_(o, ", ");
			put_scalar(o, n->keys[i]);
			puts_(o, ": ");
			emit(o, n->items[i], target, repl);
		}
		puts_(o, "}");
		return;
	}
}

static void collect(const struct yn *n, char *path, size_t len, struct leaf *v, size_t *nv)
{
	if (n->type == YN_SCALAR || n->type == YN_NULL) {
		if (len == 0)
			return;
		assert_true(*nv < MAX_LEAVES);
		snprintf(v[*nv].path, sizeof(v[*nv].path), "%s", path);
		v[(*nv)++].node = n;
		return;
	}
	for (size_t i = 0; i < n->n; i++) {
		size_t l2;
		if (n->type == YN_MAP)
			l2 = len + (size_t)snprintf(path + len, 512 - len, "%s%s", len ? "." : "", n->keys[i]->s);
		else
			l2 = len + (size_t)snprintf(path + len, 512 - len, "[%zu]", i);
		if (l2 < 500)
			collect(n->items[i], path, l2, v, nv);
		path[len] = '\0';
	}
}

/* Documents loaded with every mutated file (the Services bookinfo's
 * routes name), or NULL. */
static char *registry;

/* The whole file as flow documents, document k's node target replaced. */
static char *emit_file(const struct file *f, size_t k, const struct yn *target, const char *repl, size_t *len)
{
	struct out o = { 0 };
	if (registry != NULL) {
		puts_(&o, registry);
		puts_(&o, "\n");
	}
	for (size_t i = 0; i < f->n_docs; i++) {
		puts_(&o, "---\n");
		emit(&o, f->docs[i].root, i == k ? target : NULL, repl);
		puts_(&o, "\n");
	}
	*len = o.n;
	return o.s;
}

/* Loads and translates text as a sidecar of reviews in default; returns
 * the number of errors, diagnostics in d. */
static size_t load_translate(const char *text, size_t len, struct sn_diags *d)
{
	struct sn_config_set set;
	struct sn_label lv[] = { { "app", "reviews" }, { "version", "v2" } };
	struct sn_labels labels = { lv, 2 };
	struct sn_proxy_identity id = { .service = "reviews", .namespace_ = "default", .labels = &labels };
	struct sn_snapshot *snap = NULL;

	sn_config_set_init(&set);
	sn_config_load_text(&set, "mutated.yaml", text, len, d);
	if (sn_config_translate(&set, &id, d, &snap) == 0 && snap != NULL) {
		FILE *null = fopen("/dev/null", "w");
		assert_non_null(null);
		sn_snapshot_dump_json(snap, null);
		fclose(null);
		sn_snapshot_unref(snap);
	}
	sn_config_set_free(&set);
	return d->errors;
}

static int is_below(const char *f, const char *path)
{
	size_t n = strlen(path);
	return !strncmp(f, path, n) && (f[n] == '\0' || f[n] == '.' || f[n] == '[');
}

/* Does some diagnostic name this field (its path, or a path below it), or
 * warn that a field above it is not read at all? */
static int names_field(const struct sn_diags *d, const char *path)
{
	for (size_t i = 0; i < d->n; i++) {
		const char *f = d->v[i].field;
		if (f != NULL && (is_below(f, path) || (d->v[i].severity == SN_DIAG_WARNING && is_below(path, f))))
			return 1;
	}
	return 0;
}

/* Fields that a resource cannot do without: null must be refused. */
static const char *const required[] = {
	"kind", "apiVersion", "metadata.name", "spec",
	"spec.address",                              /* WorkloadEntry */
	"spec.host",                                 /* DestinationRule */
	"spec.hosts[0]",                             /* VirtualService, ServiceEntry: the only host */
	"spec.subsets[0].name", "spec.subsets[1].name",
	"spec.ports[0].port",                        /* Service */
	"spec.ports[0].number", "spec.ports[0].name", /* ServiceEntry */
	"spec.http[0].route[0].destination.host", "spec.http[0].route[1].destination.host",
	"spec.http[1].directResponse.status",
	"spec.rules[0].when[0].key",
	"spec.endpoints[0].address",
};

/* A kind Sinew does not implement is ignored whole, with a warning that
 * names the kind, not a field. */
static int implemented(const char *kind)
{
	static const char *const kinds[] = { "Service", "WorkloadEntry", "VirtualService", "DestinationRule",
					     "ServiceEntry", "PeerAuthentication", "AuthorizationPolicy" };
	for (size_t i = 0; i < SN_ARRAY_LEN(kinds); i++)
		if (!strcmp(kinds[i], kind))
			return 1;
	return 0;
}

static int is_required(const char *kind, const char *path)
{
	for (size_t i = 0; i < SN_ARRAY_LEN(required); i++)
		if (!strcmp(required[i], path))
			return !(strcmp(path, "spec.ports[0].name") == 0 && strcmp(kind, "ServiceEntry") != 0);
	return 0;
}

struct stats {
	size_t cases, refused, accepted;
};

static void mutate_file(const char *name, const char *text, size_t len, struct stats *st)
{
	struct file *f = calloc(1, sizeof(*f));
	struct sn_diags d;
	assert_non_null(f);
	f->name = name;
	sn_diags_init(&d);
	cfg_yaml_parse(name, text, len, &d, on_doc, f);
	sn_diags_free(&d);

	/* the baseline, re-emitted: it must load as the file does */
	size_t blen;
	char *base = emit_file(f, SIZE_MAX, NULL, NULL, &blen);
	sn_diags_init(&d);
	size_t base_errors = load_translate(base, blen, &d);
	if (base_errors != 0) {
		fprintf(stderr, "%s: re-emitted file has errors; skipped:\n", name);
		print_diags(&d);
	}
	sn_diags_free(&d);
	free(base);
	if (base_errors != 0) {
		for (size_t i = 0; i < f->n_docs; i++)
			sn_arena_free(&f->docs[i].arena);
		free(f);
		return;
	}

	static struct leaf leaves[MAX_LEAVES];
	static const char *const repls[] = { "null", "[]", "{}" };
	for (size_t k = 0; k < f->n_docs; k++) {
		const struct yn *kind_node = yn_get(f->docs[k].root, "kind");
		const char *kind = kind_node && kind_node->s ? kind_node->s : "";
		char path[512] = "";
		size_t nl = 0;
		collect(f->docs[k].root, path, 0, leaves, &nl);
		for (size_t i = 0; i < nl; i++) {
			for (size_t r = 0; r < SN_ARRAY_LEN(repls); r++) {
				size_t mlen;
				char *m = emit_file(f, k, leaves[i].node, repls[r], &mlen);
				sn_diags_init(&d);
				size_t errors = load_translate(m, mlen, &d);
				st->cases++;
				if (errors)
					st->refused++;
				else
					st->accepted++;
				/* [] or {} where a scalar was: always said, at the field
				 * (an error, or the warning that Sinew does not read it) */
				if (!implemented(kind)) {
					/* only that it did not crash */
				} else if (r > 0 && !names_field(&d, leaves[i].path)) {
					fprintf(stderr, "%s: %s %s = %s: no diagnostic names the field\n", name, kind,
						leaves[i].path, repls[r]);
					print_diags(&d);
					fail();
				} else if (r == 0 && is_required(kind, leaves[i].path) &&
					   (errors == 0 || !names_field(&d, leaves[i].path))) {
					fprintf(stderr, "%s: %s %s: null accepted or not named\n", name, kind,
						leaves[i].path);
					print_diags(&d);
					fail();
				}
				sn_diags_free(&d);
				free(m);
			}
		}
	}
	for (size_t i = 0; i < f->n_docs; i++)
		sn_arena_free(&f->docs[i].arena);
	free(f);
}

static char *read_all(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	if (fp == NULL)
		return NULL;
	fseek(fp, 0, SEEK_END);
	long n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	char *s = malloc((size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)n, fp), (size_t)n);
	s[n] = '\0';
	fclose(fp);
	*len = (size_t)n;
	return s;
}

static void run_one(const char *path, struct stats *st)
{
	size_t len;
	char *text = read_all(path, &len);
	if (text == NULL) {
		fprintf(stderr, "cannot read %s\n", path);
		fail();
	}
	mutate_file(path, text, len, st);
	free(text);
}

static void test_every_kind_every_scalar(void **state)
{
	(void)state;
	(void)load_registry;
	(void)has_diag;
	char p[1024];
	struct stats st = { 0 };
	src_path(p, sizeof(p), "tests/config/every-field.yaml");
	run_one(p, &st);
	src_path(p, sizeof(p), "tests/config/bookinfo-registry.yaml");
	run_one(p, &st);
	fprintf(stderr, "every-field + registry: %zu cases, %zu refused, %zu accepted\n", st.cases, st.refused,
		st.accepted);
	assert_true(st.cases > 300);
	assert_true(st.refused > 0 && st.accepted > 0);
}

static void test_bookinfo_every_scalar(void **state)
{
	(void)state;
	struct stats st = { 0 };
	char dir[1024], reg[1024];
	size_t reg_len;
	src_path(reg, sizeof(reg), "tests/config/bookinfo-registry.yaml");
	char *services = read_all(reg, &reg_len);
	assert_non_null(services);
	/* and the subsets the routes name, but for the rules' own files */
	size_t dr_len;
	shared_path(reg, sizeof(reg), "conformance/istio-bookinfo/networking/destination-rule-all.yaml");
	char *rules = read_all(reg, &dr_len);
	assert_non_null(rules);
	char *with_rules = malloc(reg_len + dr_len + 8);
	assert_non_null(with_rules);
	snprintf(with_rules, reg_len + dr_len + 8, "%s\n---\n%s", services, rules);
	shared_path(dir, sizeof(dir), "conformance/istio-bookinfo/networking");
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, alphasort);
	assert_true(n > 0);
	size_t files = 0;
	for (int i = 0; i < n; i++) {
		size_t l = strlen(names[i]->d_name);
		if (l > 5 && !strcmp(names[i]->d_name + l - 5, ".yaml")) {
			char p[2048];
			snprintf(p, sizeof(p), "%s/%s", dir, names[i]->d_name);
			registry = strncmp(names[i]->d_name, "destination-rule", 16) ? with_rules : services;
			run_one(p, &st);
			files++;
		}
		free(names[i]);
	}
	free(names);
	free(services);
	free(rules);
	free(with_rules);
	registry = NULL;
	assert_true(files >= 20);
	fprintf(stderr, "bookinfo: %zu cases, %zu refused, %zu accepted\n", st.cases, st.refused, st.accepted);
	assert_true(st.cases > 300);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_kind_every_scalar),
		cmocka_unit_test(test_bookinfo_every_scalar),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
