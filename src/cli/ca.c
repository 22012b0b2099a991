/* sinew ca [show]: sinewd's CA (GET /api/v1/ca): trust domain, each root's
 * SHA-256 fingerprint and expiry, the issuer; warns when a root expires
 * within 60 days. sinew ca rotate: starts a root rotation (POST
 * /api/v1/ca/rotate) and, with --wait, follows it to the end. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sinew/cli.h"

#define ROOT_WARN_DAYS 60

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew ca [show] [-o json|pem] [--server URL]\n"
		"       sinew ca rotate [--wait] [--server URL]\n"
		"\n"
		"Shows sinewd's certificate authority: the trust domain, each trusted root with\n"
		"its SHA-256 fingerprint (what join tokens pin) and expiry, and the certificate\n"
		"that signs workload certificates. Warns on stderr when a root expires within\n"
		"%d days.\n"
		"\n"
		"  -o json        the API's JSON\n"
		"  -o pem         the trust bundle (roots) as PEM, nothing else\n"
		"  --server URL   sinewd's API (default $SINEW_SERVER, else " SN_CLI_DEFAULT_SERVER ")\n"
		"\n"
		"rotate replaces the root (and intermediate) sinewd generated, with no downtime:\n"
		"the new root is first added to every proxy's trust bundle; once every proxy\n"
		"acknowledged it, the new CA issues and proxies renew; once every proxy holds a\n"
		"leaf of the new root, the old root leaves the bundle. sinewd also starts one by\n"
		"itself when a third of the CA's lifetime is left. A CA given with --ca-cert is\n"
		"not rotated by sinewd.\n"
		"  --wait         follow the rotation until it is done (at most 10 minutes)\n"
		"\n"
		"Exit status: 0, 1 sinewd failed or is unreachable, 2 usage error.\n",
		ROOT_WARN_DAYS);
}

/* "ab12cd..." as "AB:12:CD:..." (openssl x509 -fingerprint's form). */
static void colon_hex(const char *h, char *out, size_t size)
{
	size_t o = 0;
	for (size_t i = 0; h[i] && h[i + 1] && o + 4 < size; i += 2) {
		if (i)
			out[o++] = ':';
		for (int k = 0; k < 2; k++) {
			char c = h[i + (size_t)k];
			out[o++] = c >= 'a' && c <= 'f' ? (char)(c - 'a' + 'A') : c;
		}
	}
	out[o] = '\0';
}

static int rotate(int argc, char **argv)
{
	enum { O_SERVER = 256, O_WAIT };
	static const struct option opts[] = {
		{ "server", required_argument, NULL, O_SERVER },
		{ "wait", no_argument, NULL, O_WAIT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL;
	int o, wait = 0;

	optind = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case O_SERVER: server = optarg; break;
		case O_WAIT: wait = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sinew ca rotate: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	struct sn_http_response r;
	if (sn_cli_api(sn_cli_server(server), "POST", "/api/v1/ca/rotate", "", 0, &r) != 0)
		return 1;
	if (r.status != 200) {
		sn_cli_api_error(&r);
		sn_http_response_free(&r);
		return 1;
	}
	struct fy_document *doc = sn_cli_json_parse(r.body, r.len);
	/* With no proxy to wait for, the rotation may already be past its
	 * first phase: the new root is then the issuing one, listed first. */
	struct fy_node *next = sn_cli_json_get(sn_cli_json_get(sn_cli_json_root(doc), "rotation"), "next");
	if (next == NULL)
		next = sn_cli_json_at(sn_cli_json_get(sn_cli_json_root(doc), "roots"), 0);
	printf("Rotation started: new root %s is being added to every proxy's trust bundle.\n",
	       next ? sn_cli_json_str_or(next, "sha256", "?") : "?");
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
	if (!wait) {
		printf("Follow it with `sinew ca` (phase distributing -> migrating -> stable).\n");
		return 0;
	}
	const char *last = "distributing";
	for (int i = 0; i < 6000; i++) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		if (sn_cli_api(sn_cli_server(server), "GET", "/api/v1/ca", NULL, 0, &r) != 0)
			return 1;
		doc = sn_cli_json_parse(r.body, r.len);
		struct fy_node *rot = sn_cli_json_get(sn_cli_json_root(doc), "rotation");
		const char *ph = sn_cli_json_str_or(rot, "phase", "?");
		int done = !strcmp(ph, "stable");
		if (strcmp(ph, last) != 0) {
			if (!strcmp(ph, "migrating"))
				printf("Every proxy trusts the new root; it issues now and proxies renew.\n");
			else if (done)
				printf("Done: every proxy holds a leaf of root %s; the old root left the bundle.\n",
				       sn_cli_json_str_or(sn_cli_json_at(sn_cli_json_get(sn_cli_json_root(doc), "roots"), 0),
							  "sha256", "?"));
			last = !strcmp(ph, "migrating") ? "migrating" : done ? "stable" : "distributing";
		}
		sn_cli_json_free(doc);
		sn_http_response_free(&r);
		if (done)
			return 0;
	}
	fprintf(stderr, "sinew: the rotation is still %s after 10 minutes; see sinewd's log and `sinew proxy-status`\n",
		last);
	return 1;
}

int sn_cli_ca(int argc, char **argv)
{
	enum { O_SERVER = 256 };
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "server", required_argument, NULL, O_SERVER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *output = NULL;
	int o;

	if (argc >= 2 && !strcmp(argv[1], "rotate"))
		return rotate(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "show")) {
		argc--;
		argv++;
	}
	optind = 0;
	while ((o = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (o) {
		case 'o':
			if (strcmp(optarg, "json") && strcmp(optarg, "pem")) {
				fprintf(stderr, "sinew ca: -o %s: want json or pem\n", optarg);
				return 2;
			}
			output = optarg;
			break;
		case O_SERVER: server = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sinew ca: unexpected argument \"%s\"; usage: sinew ca [show] [-o json|pem]\n",
			argv[optind]);
		return 2;
	}
	struct sn_http_response r;
	if (sn_cli_api(sn_cli_server(server), "GET", "/api/v1/ca", NULL, 0, &r) != 0)
		return 1;
	if (r.status != 200) {
		sn_cli_api_error(&r);
		sn_http_response_free(&r);
		return 1;
	}
	if (output != NULL && !strcmp(output, "json")) {
		fwrite(r.body, 1, r.len, stdout);
		sn_http_response_free(&r);
		return 0;
	}
	struct fy_document *doc = sn_cli_json_parse(r.body, r.len);
	struct fy_node *root = sn_cli_json_root(doc);
	if (root == NULL) {
		fprintf(stderr, "sinew: sinewd's answer to /api/v1/ca is not JSON\n");
		sn_http_response_free(&r);
		return 1;
	}
	if (output != NULL) {   /* pem */
		fputs(sn_cli_json_str_or(root, "bundle", ""), stdout);
		sn_cli_json_free(doc);
		sn_http_response_free(&r);
		return 0;
	}
	time_t now = time(NULL);
	struct fy_node *roots = sn_cli_json_get(root, "roots");
	printf("Trust domain:  %s\n", sn_cli_json_str_or(root, "trustDomain", "?"));
	printf("Source:        %s\n", sn_cli_json_str_or(root, "source", "?"));
	for (size_t i = 0; i < sn_cli_json_len(roots); i++) {
		struct fy_node *c = sn_cli_json_at(roots, i);
		char fp[200];
		long long na = sn_cli_json_int(c, "notAfterUnix", 0);
		long long days = (na - (long long)now) / 86400;
		colon_hex(sn_cli_json_str_or(c, "sha256", ""), fp, sizeof(fp));
		printf("\nRoot %zu:\n", i + 1);
		printf("  Subject:     %s\n", sn_cli_json_str_or(c, "subject", "?"));
		printf("  SHA-256:     %s\n", sn_cli_json_str_or(c, "sha256", "?"));
		printf("               %s\n", fp);
		printf("  Not before:  %s\n", sn_cli_json_str_or(c, "notBefore", "?"));
		printf("  Not after:   %s (%s%lld days)\n", sn_cli_json_str_or(c, "notAfter", "?"),
		       na <= (long long)now ? "expired " : "in ", na <= (long long)now ? -days : days);
		if (na <= (long long)now)
			fprintf(stderr, "sinew: warning: root %s expired at %s; workloads cannot get certificates\n",
				sn_cli_json_str_or(c, "sha256", "?"), sn_cli_json_str_or(c, "notAfter", "?"));
		else if (na - (long long)now < ROOT_WARN_DAYS * 86400LL)
			fprintf(stderr, "sinew: warning: root %s expires in %lld days (%s), within %d days; rotate it "
					"before then (docs/internals/identity.md, Rotation)\n",
				sn_cli_json_str_or(c, "sha256", "?"), days, sn_cli_json_str_or(c, "notAfter", "?"),
				ROOT_WARN_DAYS);
	}
	struct fy_node *iss = sn_cli_json_get(root, "issuer");
	if (iss != NULL && strcmp(sn_cli_json_str_or(iss, "sha256", ""), sn_cli_json_str_or(
		    sn_cli_json_at(roots, 0), "sha256", "")) != 0) {
		printf("\nIssuer (intermediate):\n");
		printf("  Subject:     %s\n", sn_cli_json_str_or(iss, "subject", "?"));
		printf("  SHA-256:     %s\n", sn_cli_json_str_or(iss, "sha256", "?"));
		printf("  Not after:   %s\n", sn_cli_json_str_or(iss, "notAfter", "?"));
	} else {
		printf("\nIssuer:        the root (no intermediate)\n");
	}
	printf("Leaf lifetime: %llds; spent join tokens remembered: %lld\n",
	       sn_cli_json_int(root, "leafTtlSeconds", 0), sn_cli_json_int(root, "spentTokens", 0));
	struct fy_node *rot = sn_cli_json_get(root, "rotation");
	printf("Rotation:      %s\n", sn_cli_json_str_or(rot, "phase", "?"));
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
	return 0;
}
