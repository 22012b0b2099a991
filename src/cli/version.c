/* sinew version: the CLI's version and, when sinewd answers, the server's. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "sinew/cli.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew version [--server URL] [--client]\n"
		"\n"
		"Prints the version of this sinew and, if sinewd answers at --server ($SINEW_SERVER,\n"
		"default " SN_CLI_DEFAULT_SERVER "), of sinewd. sinewd not running is not an error.\n"
		"\n"
		"  --server URL   sinewd's API\n"
		"  --client       the CLI's version only; do not contact sinewd\n"
		"\n"
		"Exit status: 0, or 2 on a usage error.\n");
}

int sn_cli_version(int argc, char **argv)
{
	enum { O_SERVER = 256, O_CLIENT };
	static const struct option opts[] = {
		{ "server", required_argument, NULL, O_SERVER },
		{ "client", no_argument, NULL, O_CLIENT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL;
	int client_only = 0, o;

	optind = 0;
	while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (o) {
		case O_SERVER: server = optarg; break;
		case O_CLIENT: client_only = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sinew version: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	printf("sinew %s\n", SINEW_VERSION);
	if (client_only)
		return 0;
	struct sn_http_response r;
	char err[600];
	server = sn_cli_server(server);
	if (sn_cli_http(server, "GET", "/api/v1/version", NULL, NULL, 0, 3000, "sinewd", NULL, &r, err,
			sizeof(err)) != 0) {
		printf("sinewd: not reachable at %s\n", server);
		return 0;
	}
	struct fy_document *doc = r.status == 200 ? sn_cli_json_parse(r.body, r.len) : NULL;
	struct fy_node *root = sn_cli_json_root(doc);
	if (root != NULL)
		printf("sinewd %s at %s (api %s, revision %s, %lld resources)\n",
		       sn_cli_json_str_or(root, "version", "?"), server, sn_cli_json_str_or(root, "api", "?"),
		       sn_cli_json_str_or(root, "revision", "?"), sn_cli_json_int(root, "resources", 0));
	else
		printf("sinewd: %s answered %d to /api/v1/version\n", server, r.status);
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
	return 0;
}
