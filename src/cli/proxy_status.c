/* sinew proxy-status: every proxy connected to sinewd, the store revision
 * it runs against the latest, and SYNCED / STALE / NACK with the error
 * (GET /api/v1/proxies, docs/internals/control-protocol.md). */
#include <getopt.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/cli.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew proxy-status [PROXY] [-o json|wide] [--server URL]\n"
		"\n"
		"Lists the proxies connected to sinewd: the configuration revision each one has\n"
		"acknowledged against the store's latest, and its state:\n"
		"  SYNCED   it runs the latest configuration\n"
		"  STALE    a push is not acknowledged yet\n"
		"  NACK     it refused a push (the error says which resource and why);\n"
		"           it keeps running its previous configuration\n"
		"PROXY (an id, or a prefix of one) shows only the matching proxies. With several\n"
		"sinewd replicas on etcd, every replica's proxies, and a REPLICA column (each\n"
		"proxy's sinewd).\n"
		"\n"
		"  -o json|wide    the API's JSON, or more columns (admin address, labels,\n"
		"                  subscriptions, last heard)\n"
		"  --server URL    sinewd's API (default $SINEW_SERVER, else " SN_CLI_DEFAULT_SERVER ")\n"
		"\n"
		"Exit status: 0, 1 sinewd failed (or PROXY matches none), 2 usage error.\n");
}

int sn_cli_proxy_status(int argc, char **argv)
{
	enum { O_SERVER = 256 };
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "server", required_argument, NULL, O_SERVER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *only = NULL;
	int json = 0, wide = 0, o;

	optind = 0;
	while ((o = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (o) {
		case 'o':
			if (!strcmp(optarg, "json"))
				json = 1;
			else if (!strcmp(optarg, "wide"))
				wide = 1;
			else {
				fprintf(stderr, "sinew proxy-status: -o %s: want json or wide\n", optarg);
				return 2;
			}
			break;
		case O_SERVER: server = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc)
		only = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "sinew proxy-status: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	server = sn_cli_server(server);
	struct sn_http_response r;
	/* all=1: every sinewd replica's proxies, when there are several (etcd) */
	if (sn_cli_api(server, "GET", "/api/v1/proxies?all=1", NULL, 0, &r) != 0)
		return 1;
	if (r.status == 404) {
		fprintf(stderr, "sinew: sinewd at %s has no /api/v1/proxies (it predates the push protocol); "
				"upgrade sinewd to see proxies\n", server);
		sn_http_response_free(&r);
		return 1;
	}
	if (r.status != 200) {
		sn_cli_api_error(&r);
		sn_http_response_free(&r);
		return 1;
	}
	if (json && only == NULL) {
		fwrite(r.body, 1, r.len, stdout);
		if (r.len && r.body[r.len - 1] != '\n')
			putchar('\n');
		sn_http_response_free(&r);
		return 0;
	}
	struct fy_document *doc = sn_cli_json_parse(r.body, r.len);
	struct fy_node *list = sn_cli_json_root(doc);
	size_t n = sn_cli_json_len(list), shown = 0;
	struct sn_cli_table t;
	static const char *const hdr[] = { "NAME", "SERVICE", "NAMESPACE", "ADDRESS", "VERSION", "STATE", "ERROR",
					   "ADMIN", "LABELS", "SUBSCRIPTIONS", "LAST HEARD" };
	/* Several sinewd replicas (istioctl's ISTIOD column): which one each
	 * proxy talks to. */
	int replicas = 0;
	for (size_t i = 1; i < n && !replicas; i++) {
		const char *a = sn_cli_json_str(sn_cli_json_at(list, 0), "replica");
		const char *b = sn_cli_json_str(sn_cli_json_at(list, i), "replica");
		replicas = a != NULL && b != NULL && strcmp(a, b) != 0;
	}
	const char *head[12];
	size_t nc = 0;
	for (size_t k = 0; k < 7; k++)
		head[nc++] = hdr[k];
	if (replicas)
		head[nc++] = "REPLICA";
	for (size_t k = 7; wide && k < 11; k++)
		head[nc++] = hdr[k];
	sn_cli_table_init(&t, nc);
	sn_cli_table_row(&t, head);
	for (size_t i = 0; i < n; i++) {
		struct fy_node *p = sn_cli_json_at(list, i);
		const char *id = sn_cli_json_str_or(p, "id", "?");
		if (only != NULL && strncmp(id, only, strlen(only)) != 0)
			continue;
		shown++;
		if (json) {
			char *one = fy_emit_node_to_string(p, FYECF_MODE_JSON_ONELINE);
			if (one != NULL)
				printf("%s\n", one);
			free(one);
			continue;
		}
		struct fy_node *rev = sn_cli_json_get(p, "revision");
		char version[80], err[1200] = "", labels[600] = "", subs[800] = "", heard[32];
		const char *acked = sn_cli_json_str_or(rev, "acked", "?"), *cur = sn_cli_json_str_or(rev, "current", "?");
		/* SYNCED: current at the store's revision, though a change that
		 * did not concern it sent it nothing to acknowledge */
		if (strcmp(acked, cur) == 0 || !strcmp(sn_cli_json_str_or(p, "state", ""), "SYNCED"))
			snprintf(version, sizeof(version), "%s", cur);
		else
			snprintf(version, sizeof(version), "%s/%s", acked, cur);
		struct fy_node *errs = sn_cli_json_get(p, "errors");
		for (size_t k = 0; k < sn_cli_json_len(errs); k++) {
			size_t l = strlen(err);
			snprintf(err + l, sizeof(err) - l, "%s%s", l ? "; " : "",
				 sn_cli_json_str_or(sn_cli_json_at(errs, k), "text", "?"));
		}
		const char *reg_err = sn_cli_json_str(p, "registryError");
		if (reg_err != NULL) {
			size_t l = strlen(err);
			snprintf(err + l, sizeof(err) - l, "%sregistry: %s", l ? "; " : "", reg_err);
		}
		struct fy_node *lab = sn_cli_json_get(p, "labels");
		if (lab != NULL && sn_cli_json_str(lab, "version") != NULL)
			snprintf(labels, sizeof(labels), "version=%s", sn_cli_json_str(lab, "version"));
		struct fy_node *sv = sn_cli_json_get(p, "subscriptions");
		for (size_t k = 0; k < sn_cli_json_len(sv); k++) {
			struct fy_node *h = sn_cli_json_at(sv, k);
			size_t l = strlen(subs);
			const char *hs = h ? fy_node_get_scalar0(h) : NULL;
			if (hs != NULL)
				snprintf(subs + l, sizeof(subs) - l, "%s%s", l ? "," : "", hs);
		}
		snprintf(heard, sizeof(heard), "%.1fs ago", (double)sn_cli_json_int(p, "lastHeardMs", 0) / 1000.0);
		const char *all[] = { id, sn_cli_json_str(p, "service"), sn_cli_json_str(p, "namespace"),
				      sn_cli_json_str(p, "address"), version, sn_cli_json_str(p, "state"), err,
				      sn_cli_json_str(p, "admin"), labels, subs, heard };
		const char *cells[12];
		size_t k = 0;
		for (size_t j = 0; j < 7; j++)
			cells[k++] = all[j];
		if (replicas)
			cells[k++] = sn_cli_json_str(p, "replica");
		for (size_t j = 7; wide && j < 11; j++)
			cells[k++] = all[j];
		sn_cli_table_row(&t, cells);
	}
	int rc = 0;
	if (only != NULL && shown == 0) {
		fprintf(stderr, "sinew: no connected proxy has an id starting with \"%s\" (%zu connected)\n", only, n);
		rc = 1;
	} else if (json) {
		/* printed already */
	} else if (n == 0) {
		printf("No proxies are connected to sinewd at %s.\n", server);
	} else {
		sn_cli_table_print(&t, stdout);
	}
	sn_cli_table_free(&t);
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
	return rc;
}
