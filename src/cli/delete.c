/* sinew delete KIND NAME / sinew delete -f FILE: DELETE
 * /api/v1/resources/KIND/NS/NAME for one resource, or for every resource
 * a file names (read here for kind, namespace and name only, so a file
 * sinewd would refuse can still be deleted by). */
#include <getopt.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/cli.h"
#include "sinew/config.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew delete KIND NAME [-n NS] [--server URL]\n"
		"       sinew delete -f FILE|DIR|- [-f ...] [--ignore-not-found] [--server URL]\n"
		"\n"
		"Deletes resources from sinewd. With -f, every resource the files name (kind,\n"
		"metadata.namespace, metadata.name) is deleted. KIND is a singular, plural or\n"
		"short name (vs, dr, svc, we).\n"
		"\n"
		"  -n, --namespace NS     default \"default\" (for -f: resources that name none)\n"
		"  -f, --filename FILE    a file, a directory or - (stdin); repeatable\n"
		"  --ignore-not-found     a resource that does not exist is not an error\n"
		"  --server URL           sinewd's API (default $SINEW_SERVER, else " SN_CLI_DEFAULT_SERVER ")\n"
		"\n"
		"Exit status: 0 deleted, 1 not found or sinewd failed, 2 usage error.\n");
}

/* DELETE one resource. Returns 0, 1 (failed, printed) or -1 (sinewd not
 * reachable). */
static int delete_one(const char *server, int kind, const char *ns, const char *name, int ignore_missing)
{
	char path[1400], e_ns[400], e_name[800], res[160];
	struct sn_http_response r;
	sn_cli_url_escape(ns, e_ns, sizeof(e_ns));
	sn_cli_url_escape(name, e_name, sizeof(e_name));
	snprintf(path, sizeof(path), "/api/v1/resources/%s/%s/%s", sn_kind_plural((enum sn_resource_kind)kind), e_ns,
		 e_name);
	if (sn_cli_api(server, "DELETE", path, NULL, 0, &r) != 0)
		return -1;
	int rc = 0;
	sn_cli_kind_resource(sn_resource_kind_str((enum sn_resource_kind)kind), res, sizeof(res));
	if (r.status == 200) {
		printf("%s \"%s\" deleted%s%s\n", res, name, strcmp(ns, "default") ? " from namespace " : "",
		       strcmp(ns, "default") ? ns : "");
	} else if (r.status == 404 && ignore_missing) {
		rc = 0;
	} else {
		sn_cli_api_error(&r);
		rc = 1;
	}
	fflush(stdout);
	sn_http_response_free(&r);
	return rc;
}

/* One document (or a List's item): deletes what it names. */
static int delete_doc(const char *server, const char *file, struct fy_node *root, const char *def_ns,
		      int ignore_missing)
{
	const char *kind_s = sn_cli_json_str(root, "kind");
	if (kind_s == NULL)
		return 0;   /* an empty document */
	if (!strcmp(kind_s, "List")) {
		struct fy_node *items = sn_cli_json_get(root, "items");
		int rc = 0;
		for (size_t i = 0; i < sn_cli_json_len(items); i++) {
			int r = delete_doc(server, file, sn_cli_json_at(items, i), def_ns, ignore_missing);
			if (r < 0)
				return r;
			rc |= r;
		}
		return rc;
	}
	struct fy_node *meta = sn_cli_json_get(root, "metadata");
	const char *name = sn_cli_json_str(meta, "name");
	const char *ns = sn_cli_json_str_or(meta, "namespace", def_ns);
	int kind = sn_kind_lookup(kind_s);
	if (kind < 0) {
		printf("%s: %s/%s skipped (Sinew does not store %s)\n", file, kind_s, name ? name : "?", kind_s);
		return 0;
	}
	if (name == NULL) {
		fprintf(stderr, "sinew: %s: a %s without metadata.name; nothing to delete by\n", file, kind_s);
		return 1;
	}
	return delete_one(server, kind, ns, name, ignore_missing);
}

static int delete_file(const char *server, const char *file, const char *def_ns, int ignore_missing)
{
	char *text;
	size_t len;
	int rc = 0;
	if (sn_cli_read_file(file, &text, &len) != 0)
		return 1;
	struct fy_parse_cfg cfg = { .flags = FYPCF_QUIET };
	struct fy_parser *fyp = fy_parser_create(&cfg);
	if (fyp == NULL || fy_parser_set_string(fyp, text, len) != 0) {
		fprintf(stderr, "sinew: out of memory reading %s\n", file);
		if (fyp)
			fy_parser_destroy(fyp);
		free(text);
		return 1;
	}
	struct fy_document *doc;
	while ((doc = fy_parse_load_document(fyp)) != NULL) {
		struct fy_node *root = fy_document_root(doc);
		int r = root ? delete_doc(server, file, root, def_ns, ignore_missing) : 0;
		fy_parse_document_destroy(fyp, doc);
		if (r < 0) {
			rc = -1;
			break;
		}
		rc |= r;
	}
	if (rc >= 0 && fy_parser_get_stream_error(fyp)) {
		fprintf(stderr, "sinew: %s is not valid YAML; resources after the error were not deleted (sinew analyze -f %s "
				"says where)\n", file, file);
		rc = 1;
	}
	fy_parser_destroy(fyp);
	free(text);
	return rc;
}

int sn_cli_delete(int argc, char **argv)
{
	enum { O_SERVER = 256, O_IGNORE };
	static const struct option opts[] = {
		{ "namespace", required_argument, NULL, 'n' },
		{ "filename", required_argument, NULL, 'f' },
		{ "ignore-not-found", no_argument, NULL, O_IGNORE },
		{ "server", required_argument, NULL, O_SERVER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *ns = NULL;
	char **args = calloc((size_t)argc + 1, sizeof(*args));
	size_t n_args = 0;
	int ignore = 0, o, rc = 0;

	if (args == NULL)
		return 1;
	optind = 0;
	while ((o = getopt_long(argc, argv, "n:f:h", opts, NULL)) != -1) {
		switch (o) {
		case 'n': ns = optarg; break;
		case 'f': args[n_args++] = optarg; break;
		case O_IGNORE: ignore = 1; break;
		case O_SERVER: server = optarg; break;
		case 'h': usage(stdout); free(args); return 0;
		default: usage(stderr); free(args); return 2;
		}
	}
	server = sn_cli_server(server);
	if (n_args > 0) {
		if (optind < argc) {
			fprintf(stderr, "sinew delete: give either -f FILE or KIND NAME, not both\n");
			free(args);
			return 2;
		}
		char **files;
		size_t n_files;
		if (sn_cli_expand_files(args, n_args, &files, &n_files) != 0) {
			free(args);
			return 1;
		}
		for (size_t i = 0; i < n_files && rc >= 0; i++) {
			int r = delete_file(server, files[i], ns ? ns : "default", ignore);
			rc = r < 0 ? -1 : (rc | r);
		}
		sn_cli_free_strv(files, n_files);
		free(args);
		return rc != 0 ? 1 : 0;
	}
	free(args);
	if (argc - optind != 2) {
		fprintf(stderr, "sinew delete: want KIND NAME (e.g. sinew delete vs reviews) or -f FILE\n");
		return 2;
	}
	int kind = sn_kind_lookup(argv[optind]);
	if (kind < 0) {
		fprintf(stderr, "sinew delete: unknown kind \"%s\"; kinds: service (svc), workloadentry (we), "
				"virtualservice (vs), destinationrule (dr)\n", argv[optind]);
		return 2;
	}
	rc = delete_one(server, kind, ns ? ns : "default", argv[optind + 1], ignore);
	return rc != 0 ? 1 : 0;
}
