/* sinew token create: mints a join token with sinewd (POST /api/v1/tokens)
 * and prints it, and nothing else, on stdout, so that
 * `SINEW_TOKEN=$(sinew token create --service-account reviews)` works. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sinew/cli.h"
#include "sinew/control.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew token create --service-account SA [--namespace NS] [--ttl D] [--server URL]\n"
		"\n"
		"Mints a join token: it lets one proxy obtain, once, a certificate for\n"
		"spiffe://<trust domain>/ns/NS/sa/SA from sinewd's CA, and pins sinewd's root\n"
		"(sinew-proxy --token TOKEN, or SINEW_TOKEN). The token is printed on stdout,\n"
		"alone; it is a secret: do not log it.\n"
		"\n"
		"  --service-account SA   the identity's service account (required)\n"
		"  -n, --namespace NS     its namespace (default \"default\")\n"
		"  --ttl D                how long the token may be used: 90s, 30m, 1h (default),\n"
		"                         at most 24h\n"
		"  --server URL           sinewd's API (default $SINEW_SERVER, else " SN_CLI_DEFAULT_SERVER ")\n"
		"\n"
		"Exit status: 0, 1 sinewd refused or is unreachable, 2 usage error.\n");
}

int sn_cli_token(int argc, char **argv)
{
	enum { O_SERVER = 256, O_SA, O_TTL };
	static const struct option opts[] = {
		{ "service-account", required_argument, NULL, O_SA },
		{ "namespace", required_argument, NULL, 'n' },
		{ "ttl", required_argument, NULL, O_TTL },
		{ "server", required_argument, NULL, O_SERVER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *sa = NULL, *ns = "default", *ttl = NULL;
	uint32_t ttl_s;
	int o;

	if (argc >= 2 && sn_cli_is_help(argv[1])) {
		usage(stdout);
		return 0;
	}
	if (argc < 2 || strcmp(argv[1], "create") != 0) {
		fprintf(stderr, "sinew token: want `sinew token create --service-account SA`%s%s%s\n",
			argc >= 2 ? " (not \"" : "", argc >= 2 ? argv[1] : "", argc >= 2 ? "\")" : "");
		return 2;
	}
	argc--;
	argv++;
	optind = 0;
	while ((o = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
		switch (o) {
		case O_SA: sa = optarg; break;
		case 'n': ns = optarg; break;
		case O_TTL: ttl = optarg; break;
		case O_SERVER: server = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sinew token create: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	if (sa == NULL || sa[0] == '\0') {
		fprintf(stderr, "sinew token create: --service-account SA is required (the identity the token "
				"grants: spiffe://TD/ns/NS/sa/SA)\n");
		return 2;
	}
	if (ttl != NULL && sn_ca_parse_ttl(ttl, &ttl_s) != 0) {
		fprintf(stderr, "sinew token create: --ttl %s: want a duration between 1s and 24h, e.g. 90s, 30m, "
				"1h\n", ttl);
		return 2;
	}
	struct sn_out body = { 0 };
	sn_out_cstr(&body, "{\"namespace\":");
	sn_out_json_cstr(&body, ns);
	sn_out_cstr(&body, ",\"serviceAccount\":");
	sn_out_json_cstr(&body, sa);
	if (ttl != NULL) {
		sn_out_cstr(&body, ",\"ttl\":");
		sn_out_json_cstr(&body, ttl);
	}
	sn_out_cstr(&body, "}");
	if (body.failed) {
		sn_out_free(&body);
		fprintf(stderr, "sinew: out of memory\n");
		return 1;
	}
	struct sn_http_response r;
	int rc = sn_cli_api(sn_cli_server(server), "POST", "/api/v1/tokens", body.p, body.len, &r);
	sn_out_free(&body);
	if (rc != 0)
		return 1;
	if (r.status != 200) {
		sn_cli_api_error(&r);
		sn_http_response_free(&r);
		return 1;
	}
	struct fy_document *doc = sn_cli_json_parse(r.body, r.len);
	struct fy_node *root = sn_cli_json_root(doc);
	const char *tok = sn_cli_json_str(root, "token");
	rc = 0;
	if (tok == NULL || strchr(tok, '\n') != NULL) {
		fprintf(stderr, "sinew: sinewd's answer has no token\n");
		rc = 1;
	} else {
		printf("%s\n", tok);
		if (isatty(STDERR_FILENO))
			fprintf(stderr, "sinew: single-use token for %s, valid until %s (nonce %s)\n",
				sn_cli_json_str_or(root, "spiffeId", "?"), sn_cli_json_str_or(root, "expiresAt", "?"),
				sn_cli_json_str_or(root, "nonce", "?"));
	}
	sn_cli_json_free(doc);
	if (r.body != NULL)
		memset(r.body, 0, r.len);
	sn_http_response_free(&r);
	return rc;
}
