/* sinew analyze: istioctl-analyze-style messages with stable codes
 * (docs/api.md "Codes").
 *
 *   sinew analyze                  the live store (POST /api/v1/analyze)
 *   sinew analyze -f FILE...       the files alone, offline: sinewd's own
 *                                  analyzer (sn_analyze) runs here
 *   sinew analyze --live -f FILE   the store as it would be after applying
 *                                  FILE (several files: the store is
 *                                  fetched and analyzed here with them) */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/cli.h"
#include "sinew/config.h"
#include "sinew/control.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew analyze [-f FILE|DIR|- ...] [--live] [-o json] [--server URL]\n"
		"\n"
		"Finds configuration that is valid resource by resource but wrong together: routes\n"
		"to hosts or subsets nobody defines, rules behind a catch-all, conflicting\n"
		"VirtualServices, weights not summing to 100, subsets without endpoints...\n"
		"Each message has a stable code (SN0001..., listed in docs/api.md).\n"
		"\n"
		"  (no -f)               analyze what sinewd stores\n"
		"  -f, --filename FILE   analyze these files alone, offline (no sinewd needed);\n"
		"                        a directory means its *.yaml, *.yml, *.json; repeatable\n"
		"  --live                with -f: analyze sinewd's store as it would be with the\n"
		"                        files applied (what-if)\n"
		"  -o json               the messages as JSON (docs/api.md's analyze answer)\n"
		"  --server URL          sinewd's API (default $SINEW_SERVER, else " SN_CLI_DEFAULT_SERVER ")\n"
		"\n"
		"Output: Error [SN0102] (VirtualService default/reviews reviews.yaml:12) message\n"
		"\n"
		"Exit status: 0 no Error (warnings and infos allowed), 1 an Error or a failure,\n"
		"2 usage error.\n");
}

/* ---- an in-memory store for sn_analyze ---------------------------------- */

struct mem_store {
	struct sn_store st;
	size_t cap;
};

static void stored_free(struct sn_stored *e)
{
	free(e->api_version);
	free(e->namespace_);
	free(e->name);
	free(e->source);
	free(e->text);
	free(e);
}

static void mem_free(struct mem_store *m)
{
	for (size_t i = 0; i < m->st.n; i++)
		stored_free(m->st.v[i]);
	free(m->st.v);
	memset(m, 0, sizeof(*m));
}

/* Adds a resource (kind < 0: a whole file that does not load, never
 * replaced); a later one with the same kind/namespace/name replaces the
 * earlier, as applying them in turn would. Returns 0 or -1 (ENOMEM). */
static int mem_put(struct mem_store *m, int kind, const char *ns, const char *name, const char *source, int line,
		   const char *text, size_t len)
{
	struct sn_stored *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return -1;
	e->kind = kind < 0 ? SN_KIND_SERVICE : (enum sn_resource_kind)kind;
	e->namespace_ = strdup(ns ? ns : "");
	e->name = strdup(kind < 0 || name == NULL ? "" : name);
	e->api_version = strdup("");
	e->source = strdup(source);
	e->line = line;
	e->text = malloc(len + 1);
	if (e->namespace_ == NULL || e->name == NULL || e->api_version == NULL || e->source == NULL ||
	    e->text == NULL) {
		stored_free(e);
		return -1;
	}
	memcpy(e->text, text, len);
	e->text[len] = '\0';
	e->text_len = len;
	for (size_t i = 0; e->name[0] && i < m->st.n; i++) {
		struct sn_stored *o = m->st.v[i];
		if (o->kind == e->kind && o->name[0] && !strcmp(o->namespace_, e->namespace_) &&
		    !strcmp(o->name, e->name)) {
			m->st.v[i] = e;
			stored_free(o);
			return 0;
		}
	}
	if (m->st.n == m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 64;
		struct sn_stored **v = realloc(m->st.v, nc * sizeof(*v));
		if (v == NULL) {
			stored_free(e);
			return -1;
		}
		m->st.v = v;
		m->cap = nc;
	}
	m->st.v[m->st.n++] = e;
	return 0;
}

/* Splits a file into resources (so a later file can replace one); a file
 * with errors goes in whole, so the analyzer reports them with file:line. */
static int mem_put_file(struct mem_store *m, const char *path, const char *text, size_t len)
{
	struct sn_config_set set;
	struct sn_diags d;
	int rc = 0;
	sn_config_set_init(&set);
	sn_diags_init(&d);
	sn_config_load_text(&set, path, text, len, &d);
	int whole = d.errors > 0;
	for (const struct sn_resource *r = set.head; r != NULL && !whole; r = r->next)
		whole = r->text == NULL;
	if (whole) {
		rc = mem_put(m, -1, "", "", path, 1, text, len);
	} else {
		for (const struct sn_resource *r = set.head; r != NULL && rc == 0; r = r->next)
			rc = mem_put(m, (int)r->kind, r->namespace_, r->name, path, r->text_line, r->text, r->text_len);
	}
	sn_diags_free(&d);
	sn_config_set_free(&set);
	return rc;
}

/* ---- output -------------------------------------------------------------- */


static void print_local_json(const struct sn_analysis *an)
{
	struct sn_out o = { 0 };
	sn_out_printf(&o, "{\"errors\":%zu,\"warnings\":%zu,\"infos\":%zu,\"messages\":[", an->errors, an->warnings,
		      an->infos);
	for (size_t i = 0; i < an->n; i++) {
		const struct sn_analysis_msg *m = &an->v[i];
		char text[2400];
		sn_analysis_msg_text(m, text, sizeof(text));
		sn_out_printf(&o, "%s{\"code\":\"%s\",\"type\":\"%s\",\"level\":\"%s\",\"resource\":", i ? "," : "",
			      m->code, m->type, sn_analysis_level_str(m->level));
		sn_out_json_cstr(&o, m->resource);
		sn_out_cstr(&o, ",\"file\":");
		sn_out_json_cstr(&o, m->file);
		sn_out_printf(&o, ",\"line\":%d,\"field\":", m->line);
		sn_out_json_cstr(&o, m->field);
		sn_out_cstr(&o, ",\"message\":");
		sn_out_json_cstr(&o, m->message);
		sn_out_cstr(&o, ",\"text\":");
		sn_out_json_cstr(&o, text);
		sn_out_cstr(&o, "}");
	}
	sn_out_cstr(&o, "]}\n");
	if (!o.failed)
		fwrite(o.p, 1, o.len, stdout);
	sn_out_free(&o);
}

static void print_summary(size_t n, size_t errors, size_t warnings, size_t infos)
{
	if (n == 0)
		printf("No validation issues found.\n");
	else
		fprintf(stderr, "%zu error%s, %zu warning%s, %zu info%s\n", errors, errors == 1 ? "" : "s", warnings,
			warnings == 1 ? "" : "s", infos, infos == 1 ? "" : "s");
}

/* Runs the analyzer here on m. */
static int analyze_local(struct mem_store *m, int json)
{
	struct sn_analysis an;
	int rc = sn_analyze(&m->st, NULL, 0, NULL, NULL, 0, &an);
	if (rc != 0) {
		fprintf(stderr, "sinew: out of memory analyzing; analyze fewer files at once\n");
		sn_analysis_free(&an);
		return 1;
	}
	if (json) {
		print_local_json(&an);
	} else {
		for (size_t i = 0; i < an.n; i++) {
			char text[2400];
			sn_analysis_msg_text(&an.v[i], text, sizeof(text));
			printf("%s\n", text);
		}
		print_summary(an.n, an.errors, an.warnings, an.infos);
	}
	rc = an.errors > 0 ? 1 : 0;
	sn_analysis_free(&an);
	return rc;
}

/* Prints sinewd's analyze answer. */
static int print_remote(const struct sn_http_response *r, int json)
{
	if (r->status != 200) {
		sn_cli_api_error(r);
		return 1;
	}
	struct fy_document *doc = sn_cli_json_parse(r->body, r->len);
	struct fy_node *root = sn_cli_json_root(doc);
	if (root == NULL) {
		fprintf(stderr, "sinew: sinewd's analyze answer is not JSON\n");
		return 1;
	}
	long long errors = sn_cli_json_int(root, "errors", 0);
	if (json) {
		fwrite(r->body, 1, r->len, stdout);
	} else {
		struct fy_node *msgs = sn_cli_json_get(root, "messages");
		for (size_t i = 0; i < sn_cli_json_len(msgs); i++)
			printf("%s\n", sn_cli_json_str_or(sn_cli_json_at(msgs, i), "text", "?"));
		print_summary(sn_cli_json_len(msgs), (size_t)errors, (size_t)sn_cli_json_int(root, "warnings", 0),
			      (size_t)sn_cli_json_int(root, "infos", 0));
	}
	sn_cli_json_free(doc);
	return errors > 0 ? 1 : 0;
}

/* The live store into m (as GET /api/v1/resources lists it; registered
 * WorkloadEntries are left out, as sinewd's own analysis leaves them). */
static int fetch_store(const char *server, struct mem_store *m)
{
	struct sn_http_response r;
	if (sn_cli_api(server, "GET", "/api/v1/resources", NULL, 0, &r) != 0)
		return -1;
	if (r.status != 200) {
		sn_cli_api_error(&r);
		sn_http_response_free(&r);
		return -1;
	}
	struct fy_document *doc = sn_cli_json_parse(r.body, r.len);
	struct fy_node *list = sn_cli_json_root(doc);
	int rc = list ? 0 : -1;
	for (size_t i = 0; i < sn_cli_json_len(list) && rc == 0; i++) {
		struct fy_node *it = sn_cli_json_at(list, i);
		const char *y = sn_cli_json_str(it, "yaml");
		if (sn_cli_json_bool(it, "registered") || y == NULL)
			continue;
		rc = mem_put(m, sn_kind_lookup(sn_cli_json_str_or(it, "kind", "")), sn_cli_json_str(it, "namespace"),
			     sn_cli_json_str(it, "name"), sn_cli_json_str_or(it, "source", "-"),
			     (int)sn_cli_json_int(it, "line", 1), y, strlen(y));
	}
	if (list == NULL)
		fprintf(stderr, "sinew: sinewd's resource list is not JSON\n");
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
	return rc;
}

int sn_cli_analyze(int argc, char **argv)
{
	enum { O_SERVER = 256, O_LIVE };
	static const struct option opts[] = {
		{ "filename", required_argument, NULL, 'f' },
		{ "live", no_argument, NULL, O_LIVE },
		{ "output", required_argument, NULL, 'o' },
		{ "server", required_argument, NULL, O_SERVER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL;
	char **args = calloc((size_t)argc + 1, sizeof(*args));
	size_t n_args = 0;
	int live = 0, json = 0, o, rc = 0;

	if (args == NULL)
		return 1;
	optind = 0;
	while ((o = getopt_long(argc, argv, "f:o:h", opts, NULL)) != -1) {
		switch (o) {
		case 'f': args[n_args++] = optarg; break;
		case O_LIVE: live = 1; break;
		case 'o':
			if (strcmp(optarg, "json") != 0) {
				fprintf(stderr, "sinew analyze: -o %s: only json (the default is text)\n", optarg);
				free(args);
				return 2;
			}
			json = 1;
			break;
		case O_SERVER: server = optarg; break;
		case 'h': usage(stdout); free(args); return 0;
		default: usage(stderr); free(args); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sinew analyze: unexpected argument \"%s\"; files go after -f\n", argv[optind]);
		free(args);
		return 2;
	}
	server = sn_cli_server(server);
	if (n_args == 0) {
		free(args);
		if (live) {
			fprintf(stderr, "sinew analyze: --live goes with -f FILE (without -f the live store is analyzed)\n");
			return 2;
		}
		struct sn_http_response r;
		if (sn_cli_api(server, "POST", "/api/v1/analyze", NULL, 0, &r) != 0)
			return 1;
		rc = print_remote(&r, json);
		sn_http_response_free(&r);
		return rc;
	}

	char **files;
	size_t n_files;
	rc = sn_cli_expand_files(args, n_args, &files, &n_files);
	free(args);
	if (rc != 0)
		return 1;
	if (live && n_files == 1) {
		char *text, esc[3 * 1024 + 1], path[3 * 1024 + 64];
		size_t len;
		struct sn_http_response r;
		if (sn_cli_read_file(files[0], &text, &len) != 0) {
			sn_cli_free_strv(files, n_files);
			return 1;
		}
		sn_cli_url_escape(files[0], esc, sizeof(esc));
		snprintf(path, sizeof(path), "/api/v1/analyze?source=%s", esc);
		rc = sn_cli_api(server, "POST", path, text, len, &r);
		free(text);
		sn_cli_free_strv(files, n_files);
		if (rc != 0)
			return 1;
		rc = print_remote(&r, json);
		sn_http_response_free(&r);
		return rc;
	}

	struct mem_store m;
	memset(&m, 0, sizeof(m));
	rc = 0;
	if (live && fetch_store(server, &m) != 0)
		rc = 1;
	for (size_t i = 0; i < n_files && rc == 0; i++) {
		char *text;
		size_t len;
		if (sn_cli_read_file(files[i], &text, &len) != 0) {
			rc = 1;
			break;
		}
		if (mem_put_file(&m, files[i], text, len) != 0) {
			fprintf(stderr, "sinew: out of memory reading %s\n", files[i]);
			rc = 1;
		}
		free(text);
	}
	if (rc == 0)
		rc = analyze_local(&m, json);
	mem_free(&m);
	sn_cli_free_strv(files, n_files);
	return rc;
}
