/* The store: write, reload, corrupt files skipped, revision monotonic;
 * the kind alias table; resource text kept by the config loader. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "sinew/control.h"

static const char SVC[] =
	"apiVersion: v1\n"
	"kind: Service\n"
	"metadata:\n"
	"  name: reviews\n"
	"spec:\n"
	"  selector: {app: reviews}\n"
	"  ports:\n"
	"  - {name: http, port: 9080}\n";

static void make_tmp(char *dir, size_t size)
{
	snprintf(dir, size, "/tmp/sinew-store-XXXXXX");
	assert_non_null(mkdtemp(dir));
}

static void rm_rf(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void open_store(struct sn_store *st, const char *dir, struct sn_diags *d)
{
	sn_diags_init(d);
	assert_int_equal(sn_store_open(st, dir, d), 0);
	st->no_sync = 1;
}

static void test_put_reload(void **state)
{
	char dir[64];
	struct sn_store st;
	struct sn_diags d;
	struct sn_stored *e = NULL;
	make_tmp(dir, sizeof(dir));
	open_store(&st, dir, &d);
	assert_int_equal(st.n, 0);
	assert_int_equal(sn_store_put(&st, SN_KIND_SERVICE, "v1", "default", "reviews", "a.yaml", 3, SVC,
				      strlen(SVC), &e), 0);
	assert_int_equal(e->resource_version, 1);
	assert_int_equal(e->generation, 1);
	/* same text: generation stays; new text: +1; revision always moves */
	assert_int_equal(sn_store_put(&st, SN_KIND_SERVICE, "v1", "default", "reviews", "a.yaml", 3, SVC,
				      strlen(SVC), &e), 0);
	assert_int_equal(e->generation, 1);
	assert_int_equal(e->resource_version, 2);
	char svc2[sizeof(SVC) + 32];
	snprintf(svc2, sizeof(svc2), "%s  type: ClusterIP\n", SVC);
	assert_int_equal(sn_store_put(&st, SN_KIND_SERVICE, "v1", "default", "reviews", "b.yaml", 10, svc2,
				      strlen(svc2), &e), 0);
	assert_int_equal(e->generation, 2);
	assert_int_equal(st.revision, 3);
	sn_store_close(&st);
	sn_diags_free(&d);

	open_store(&st, dir, &d);
	if (d.n)
		sn_diags_print(&d, stderr);
	assert_int_equal(d.n, 0);
	assert_int_equal(st.n, 1);
	assert_int_equal(st.revision, 3);
	e = sn_store_get(&st, SN_KIND_SERVICE, "default", "reviews");
	assert_non_null(e);
	assert_string_equal(e->text, svc2);
	assert_string_equal(e->source, "b.yaml");
	assert_int_equal(e->line, 10);
	assert_int_equal(e->generation, 2);
	assert_int_equal(e->resource_version, 3);
	sn_store_close(&st);
	sn_diags_free(&d);
	rm_rf(dir);
}

static void test_revision_monotonic_after_delete(void **state)
{
	char dir[64];
	struct sn_store st;
	struct sn_diags d;
	make_tmp(dir, sizeof(dir));
	open_store(&st, dir, &d);
	assert_int_equal(sn_store_put(&st, SN_KIND_SERVICE, "v1", "default", "reviews", "a.yaml", 1, SVC,
				      strlen(SVC), NULL), 0);
	assert_int_equal(sn_store_delete(&st, SN_KIND_SERVICE, "default", "reviews"), 0);
	assert_int_equal(sn_store_delete(&st, SN_KIND_SERVICE, "default", "reviews"), SN_ENOTFOUND);
	assert_int_equal(st.revision, 2);
	sn_store_close(&st);
	sn_diags_free(&d);
	/* nothing is left that carries revision 2 but the revision file */
	open_store(&st, dir, &d);
	assert_int_equal(st.n, 0);
	assert_int_equal(st.revision, 2);
	sn_store_close(&st);
	sn_diags_free(&d);
	rm_rf(dir);
}

static void test_corrupt_skipped(void **state)
{
	char dir[64], path[256];
	struct sn_store st;
	struct sn_diags d;
	make_tmp(dir, sizeof(dir));
	open_store(&st, dir, &d);
	const char *ratings = "apiVersion: v1\nkind: Service\nmetadata:\n  name: ratings\nspec:\n  ports: [{port: 80}]\n";
	assert_int_equal(sn_store_put(&st, SN_KIND_SERVICE, "v1", "default", "reviews", "a.yaml", 1, SVC,
				      strlen(SVC), NULL), 0);
	assert_int_equal(sn_store_put(&st, SN_KIND_SERVICE, "v1", "default", "ratings", "a.yaml", 1, ratings,
				      strlen(ratings), NULL), 0);
	sn_store_close(&st);
	sn_diags_free(&d);

	/* flip a byte of the YAML: the checksum catches it */
	snprintf(path, sizeof(path), "%s/resources/Service/default/reviews.yaml", dir);
	FILE *f = fopen(path, "r+");
	assert_non_null(f);
	fseek(f, -3, SEEK_END);
	fputc('7', f);
	fclose(f);
	/* a leftover temp file from a crash is removed, junk is reported */
	snprintf(path, sizeof(path), "%s/resources/Service/default/.ratings.yaml.tmp", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("# sinew-store 1\n# kind: Serv", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/resources/Service/default/junk.yaml", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("hello\n", f);
	fclose(f);

	open_store(&st, dir, &d);
	assert_int_equal(st.n, 1);
	assert_non_null(sn_store_get(&st, SN_KIND_SERVICE, "default", "ratings"));
	assert_null(sn_store_get(&st, SN_KIND_SERVICE, "default", "reviews"));
	assert_int_equal(d.n, 2);
	int saw_crc = 0, saw_junk = 0;
	for (size_t i = 0; i < d.n; i++) {
		char line[1600];
		sn_diag_format(&d.v[i], line, sizeof(line));
		fprintf(stderr, "reported: %s\n", line);
		saw_crc |= strstr(line, "reviews.yaml") && strstr(line, "checksum mismatch") != NULL;
		saw_junk |= strstr(line, "junk.yaml") && strstr(line, "not a sinew store file") != NULL;
	}
	assert_true(saw_crc);
	assert_true(saw_junk);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/resources/Service/default/.ratings.yaml.tmp", dir);
	assert_int_not_equal(access(path, F_OK), 0);
	/* the revision never goes back: the file of revision 2 still exists */
	assert_true(st.revision >= 2);
	sn_store_close(&st);
	sn_diags_free(&d);
	rm_rf(dir);
}

static void test_bad_names_refused(void **state)
{
	char dir[64];
	struct sn_store st;
	struct sn_diags d;
	make_tmp(dir, sizeof(dir));
	open_store(&st, dir, &d);
	assert_int_equal(sn_store_put(&st, SN_KIND_SERVICE, "v1", "..", "x", "a", 1, SVC, strlen(SVC), NULL),
			 SN_EINVAL);
	assert_int_equal(sn_store_put(&st, SN_KIND_SERVICE, "v1", "default", "a/b", "a", 1, SVC, strlen(SVC), NULL),
			 SN_EINVAL);
	char *big = malloc(SN_STORE_MAX_RESOURCE_BYTES + 2);
	assert_non_null(big);
	memset(big, 'a', SN_STORE_MAX_RESOURCE_BYTES + 1);
	assert_int_equal(sn_store_put(&st, SN_KIND_SERVICE, "v1", "default", "big", "a", 1, big,
				      SN_STORE_MAX_RESOURCE_BYTES + 1, NULL), SN_ELIMIT);
	free(big);
	assert_int_equal(st.n, 0);
	assert_int_equal(st.revision, 0);
	sn_store_close(&st);
	sn_diags_free(&d);
	rm_rf(dir);
}

static void test_kind_aliases(void **state)
{
	static const struct {
		const char *name;
		int kind;
	} cases[] = {
		{ "virtualservice", SN_KIND_VIRTUAL_SERVICE }, { "VirtualServices", SN_KIND_VIRTUAL_SERVICE },
		{ "vs", SN_KIND_VIRTUAL_SERVICE },             { "VS", SN_KIND_VIRTUAL_SERVICE },
		{ "destinationrule", SN_KIND_DESTINATION_RULE }, { "destinationrules", SN_KIND_DESTINATION_RULE },
		{ "dr", SN_KIND_DESTINATION_RULE },            { "service", SN_KIND_SERVICE },
		{ "Services", SN_KIND_SERVICE },               { "svc", SN_KIND_SERVICE },
		{ "workloadentry", SN_KIND_WORKLOAD_ENTRY },   { "workloadentries", SN_KIND_WORKLOAD_ENTRY },
		{ "we", SN_KIND_WORKLOAD_ENTRY },              { "sidecar", -1 },
		{ "gw", SN_KIND_GATEWAY },                     { "Gateways", SN_KIND_GATEWAY },
		{ "", -1 },                                    { "virtualservicex", -1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (sn_kind_lookup(cases[i].name) != cases[i].kind)
			fprintf(stderr, "kind \"%s\": got %d, want %d\n", cases[i].name, sn_kind_lookup(cases[i].name),
				cases[i].kind);
		assert_int_equal(sn_kind_lookup(cases[i].name), cases[i].kind);
	}
	assert_null(NULL);
	assert_int_equal(sn_kind_lookup(NULL), -1);
	assert_string_equal(sn_kind_plural(SN_KIND_DESTINATION_RULE), "destinationrules");
	assert_string_equal(sn_kind_short(SN_KIND_WORKLOAD_ENTRY), "we");
}

/* Each resource's text reloads at its own line and column. */
static void test_resource_text_keeps_lines(void **state)
{
	static const char text[] =
		"# leading comment\n"
		"apiVersion: v1\n"
		"kind: Service\n"
		"metadata: {name: a}\n"
		"spec: {ports: [{port: 80}]}\n"
		"--- \n"
		"apiVersion: v1\n"
		"kind: List\n"
		"items:\n"
		"- apiVersion: v1\n"
		"  kind: Service\n"
		"  metadata:\n"
		"    name: b\n"
		"  spec:\n"
		"    ports: [{port: x}]\n"
		"- apiVersion: v1\n"
		"  kind: Service\n"
		"  metadata: {name: c}\n"
		"  spec: {ports: [{port: 81}], bogus: 1}\n";
	struct sn_config_set set;
	struct sn_diags d;
	sn_config_set_init(&set);
	sn_diags_init(&d);
	sn_config_load_text(&set, "f.yaml", text, strlen(text), &d);
	assert_int_equal(set.count, 2);
	const struct sn_resource *a = set.head, *c = a->next;
	assert_string_equal(c->name, "c");
	assert_int_equal(a->text_line, 2);
	assert_int_equal(c->text_line, 16);
	assert_non_null(strstr(a->text, "name: a"));
	assert_null(strstr(a->text, "---"));
	assert_null(strstr(c->text, "- "));

	/* reloading c's text alone gives the same file:line:column */
	char first[1600], again[1600];
	assert_int_equal(d.n, 2); /* port x (error, b) and bogus (warning, c) */
	sn_diag_format(&d.v[1], first, sizeof(first));
	struct sn_config_set set2;
	struct sn_diags d2;
	sn_config_set_init(&set2);
	sn_diags_init(&d2);
	assert_int_equal(sn_config_load_text_at(&set2, "f.yaml", c->text, c->text_len, c->text_line, &d2), 0);
	assert_int_equal(set2.count, 1);
	assert_int_equal(set2.head->line, c->line);
	assert_int_equal(d2.n, 1);
	sn_diag_format(&d2.v[0], again, sizeof(again));
	fprintf(stderr, "%s\n%s\n", first, again);
	/* same place; the field path loses the List's "items[1]." prefix */
	assert_int_equal(d.v[1].line, d2.v[0].line);
	assert_int_equal(d.v[1].column, d2.v[0].column);
	assert_int_equal(d2.v[0].line, 19);
	assert_string_equal(d.v[1].message, d2.v[0].message);
	sn_diags_free(&d2);
	sn_config_set_free(&set2);
	sn_diags_free(&d);
	sn_config_set_free(&set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_reload),
		cmocka_unit_test(test_revision_monotonic_after_delete),
		cmocka_unit_test(test_corrupt_skipped),
		cmocka_unit_test(test_bad_names_refused),
		cmocka_unit_test(test_kind_aliases),
		cmocka_unit_test(test_resource_text_keeps_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
