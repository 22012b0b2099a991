/* sinew apply -f FILE|DIR|-: each file's text goes to sinewd's same-code
 * admission (POST /api/v1/apply?source=FILE, docs/api.md); one line per
 * resource as kubectl prints it, diagnostics (file:line:col) on stderr. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/cli.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew apply -f FILE|DIR|- [-f ...] [--server URL]\n"
		"\n"
		"Applies Kubernetes-style resources (Service, WorkloadEntry, VirtualService,\n"
		"DestinationRule; multi-document YAML or JSON) to sinewd. sinewd validates each\n"
		"resource with the code the proxies run: a refused resource is reported with\n"
		"file:line:column and never blocks the others.\n"
		"\n"
		"  -f, --filename FILE   a file, a directory (its *.yaml, *.yml, *.json, sorted)\n"
		"                        or - for stdin; repeatable\n"
		"  --server URL          sinewd's API (default $SINEW_SERVER, else " SN_CLI_DEFAULT_SERVER ")\n"
		"\n"
		"Prints `KIND/NAME created|configured|unchanged` per resource; refusals and\n"
		"warnings go to stderr.\n"
		"\n"
		"Exit status: 0 all applied, 1 something was refused or sinewd failed, 2 usage error.\n");
}

/* Prints the answer for one file. Returns the number of refused resources,
 * or -1 if the answer is not what docs/api.md describes. */
static int report(const char *path, const struct sn_http_response *r)
{
	struct fy_document *doc = sn_cli_json_parse(r->body, r->len);
	struct fy_node *list = sn_cli_json_root(doc);
	int refused = 0;

	if (list == NULL || sn_cli_json_len(list) == 0) {
		sn_cli_json_free(doc);
		if (list == NULL) {
			fprintf(stderr, "sinew: %s: sinewd's answer is not a JSON list\n", path);
			return -1;
		}
		fprintf(stderr, "sinew: %s: no resources found in it\n", path);
		return 0;
	}
	for (size_t i = 0; i < sn_cli_json_len(list); i++) {
		struct fy_node *it = sn_cli_json_at(list, i);
		const char *kind = sn_cli_json_str_or(it, "kind", "");
		const char *name = sn_cli_json_str_or(it, "name", "");
		const char *result = sn_cli_json_str_or(it, "result", "?");
		char res[160], what[400];
		sn_cli_kind_resource(kind, res, sizeof(res));
		if (kind[0] && name[0])
			snprintf(what, sizeof(what), "%s/%s", res, name);
		else
			snprintf(what, sizeof(what), "%s: the document at line %lld", path,
				 sn_cli_json_int(it, "line", 0));
		if (strcmp(result, "refused") == 0) {
			refused++;
			fprintf(stderr, "error: %s refused\n", what);
		} else if (strcmp(result, "ignored") == 0) {
			printf("%s ignored (Sinew does not implement %s yet)\n", what, kind[0] ? kind : "this kind");
		} else {
			printf("%s %s\n", what, result);
		}
		struct fy_node *diags = sn_cli_json_get(it, "diagnostics");
		for (size_t k = 0; k < sn_cli_json_len(diags); k++) {
			const char *text = sn_cli_json_str(sn_cli_json_at(diags, k), "text");
			if (text != NULL)
				fprintf(stderr, "  %s\n", text);
		}
	}
	fflush(stdout);
	sn_cli_json_free(doc);
	return refused;
}

int sn_cli_apply(int argc, char **argv)
{
	enum { O_SERVER = 256 };
	static const struct option opts[] = {
		{ "filename", required_argument, NULL, 'f' },
		{ "server", required_argument, NULL, O_SERVER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL;
	char **args = calloc((size_t)argc + 1, sizeof(*args));
	size_t n_args = 0;
	int o, rc = 0;

	if (args == NULL)
		return 1;
	optind = 0;
	while ((o = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
		switch (o) {
		case 'f': args[n_args++] = optarg; break;
		case O_SERVER: server = optarg; break;
		case 'h': usage(stdout); free(args); return 0;
		default: usage(stderr); free(args); return 2;
		}
	}
	if (optind < argc || n_args == 0) {
		if (optind < argc)
			fprintf(stderr, "sinew apply: unexpected argument \"%s\"; files go after -f\n", argv[optind]);
		else
			fprintf(stderr, "sinew apply: give the configuration with -f FILE, -f DIR or -f -\n");
		free(args);
		return 2;
	}
	char **files;
	size_t n_files;
	if (sn_cli_expand_files(args, n_args, &files, &n_files) != 0) {
		free(args);
		return 1;
	}
	free(args);
	server = sn_cli_server(server);
	for (size_t i = 0; i < n_files; i++) {
		char *text;
		size_t len;
		if (sn_cli_read_file(files[i], &text, &len) != 0) {
			rc = 1;
			continue;
		}
		char esc[3 * 1024 + 1], path[3 * 1024 + 64];
		sn_cli_url_escape(files[i], esc, sizeof(esc));
		snprintf(path, sizeof(path), "/api/v1/apply?source=%s", esc);
		struct sn_http_response r;
		if (sn_cli_api(server, "POST", path, text, len, &r) != 0) {
			free(text);
			rc = 1;
			break;   /* sinewd is not there: the next file would say the same */
		}
		free(text);
		if (r.status == 200 || r.status == 422) {
			int refused = report(files[i], &r);
			if (refused != 0 || r.status == 422)
				rc = 1;
		} else {
			fprintf(stderr, "sinew: %s: ", files[i]);
			fflush(stderr);
			sn_cli_api_error(&r);
			rc = 1;
		}
		sn_http_response_free(&r);
	}
	sn_cli_free_strv(files, n_files);
	return rc;
}
