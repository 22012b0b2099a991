/* sinew identity PROXY: the SPIFFE ID a proxy serves, the certificate
 * chain it presents and the roots it trusts, from its admin port's
 * /identity (src/proxy/admin.c). PROXY is an id from sinewd's proxy list
 * (which says where its admin port is) or an admin ADDR:PORT. */
#include <getopt.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sinew/cli.h"
#include "sinew/pod.h"

#define LEAF_WARN_SECONDS (6 * 3600)
#define CA_WARN_SECONDS (60 * 86400)

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew identity PROXY [-o json] [--pem] [--server URL]\n"
		"       sinew identity ADDR:PORT [-o json] [--pem]\n"
		"\n"
		"Shows the workload identity a proxy serves, read from its admin port's\n"
		"/identity: its SPIFFE ID, the certificate chain it presents to peers (leaf\n"
		"first: subject, issuer, serial, validity, SHA-256 fingerprint) and the roots it\n"
		"trusts. Warns on stderr when the leaf expires within 6 hours, or an\n"
		"intermediate or root within 60 days.\n"
		"PROXY is a proxy id as `sinew proxy-status` lists it (a unique prefix will do);\n"
		"sinewd tells where its admin port is. ADDR:PORT (or --admin) reads that admin\n"
		"port directly, without sinewd.\n"
		"\n"
		"  -o json             the admin port's JSON\n"
		"  --pem               the certificate chain as PEM (leaf first), nothing else\n"
		"  --admin ADDR:PORT   the proxy's admin port\n"
		"  --server URL        sinewd's API (default $SINEW_SERVER, else " SN_CLI_DEFAULT_SERVER ")\n"
		"\n"
		"Exit status: 0, 1 proxy not found, unreachable or without mTLS, 2 usage error.\n");
}

/* The admin address and id (id may be NULL) of the connected proxy whose id
 * is (or uniquely starts with) name. Returns 0, or -1 after printing why.
 * Shared with proxy-config (include/sinew/cli.h). */
int sn_cli_find_admin(const char *server, const char *name, char *admin, size_t size, char *id, size_t id_size)
{
	struct sn_http_response r;
	if (sn_cli_api(server, "GET", "/api/v1/proxies", NULL, 0, &r) != 0)
		return -1;
	if (r.status != 200) {
		if (r.status == 404)
			fprintf(stderr, "sinew: sinewd at %s has no /api/v1/proxies; give the proxy's admin port as "
					"ADDR:PORT\n", server);
		else
			sn_cli_api_error(&r);
		sn_http_response_free(&r);
		return -1;
	}
	struct fy_document *doc = sn_cli_json_parse(r.body, r.len);
	struct fy_node *list = sn_cli_json_root(doc), *found = NULL;
	size_t matches = 0, n = sn_cli_json_len(list);
	for (size_t i = 0; i < n; i++) {
		struct fy_node *p = sn_cli_json_at(list, i);
		const char *pid = sn_cli_json_str_or(p, "id", "");
		if (strcmp(pid, name) == 0) {
			found = p;
			matches = 1;
			break;
		}
		if (strncmp(pid, name, strlen(name)) == 0) {
			found = p;
			matches++;
		}
	}
	const char *a = found ? sn_cli_json_str(found, "admin") : NULL;
	int rc = -1;
	if (matches == 0)
		fprintf(stderr, "sinew: no connected proxy \"%s\" (%zu connected); `sinew proxy-status` lists them\n",
			name, n);
	else if (matches > 1)
		fprintf(stderr, "sinew: \"%s\" names %zu proxies; give more of the id (sinew proxy-status)\n", name,
			matches);
	else if (a == NULL || !a[0])
		fprintf(stderr, "sinew: proxy %s has no admin port; start it with --admin ADDR:PORT\n",
			sn_cli_json_str_or(found, "id", name));
	else {
		/* An unspecified host (0.0.0.0, [::]) is reached at the address
		 * the proxy connected to sinewd from. */
		const char *peer = sn_cli_json_str(found, "peer"), *port = strrchr(a, ':');
		const char *pp = peer != NULL ? strrchr(peer, ':') : NULL;
		if (pp != NULL && pp > peer && (!strncmp(a, "0.0.0.0:", 8) || !strncmp(a, "[::]:", 5)))
			snprintf(admin, size, "%.*s%s", (int)(pp - peer), peer, port);
		else
			snprintf(admin, size, "%s", a);
		if (id != NULL)
			snprintf(id, id_size, "%s", sn_cli_json_str_or(found, "id", name));
		static char pod[SN_POD_NAME_MAX];
		const char *pn = sn_cli_json_str(found, "pod");
		if (pn != NULL && pn[0] && strlen(pn) < sizeof(pod)) {
			memcpy(pod, pn, strlen(pn) + 1);
			sn_cli_netns = pod;
		}
		rc = 0;
	}
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
	return rc;
}

static void utc(long long t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "?");
}

/* "2026-11-27T15:19:07Z (in 23h)", "... (5m ago)", or for an expiry
 * in the past "... (expired 5m ago)". */
static void when_str(long long t, long long now, int expiry, char *buf, size_t size)
{
	char when[40], dist[32];
	utc(t, when, sizeof(when));
	sn_cli_age(t > now ? t - now : now - t, dist, sizeof(dist));
	if (t > now)
		snprintf(buf, size, "%s (in %s)", when, dist);
	else
		snprintf(buf, size, "%s (%s%s ago)", when, expiry ? "expired " : "", dist);
}

static void print_cert(struct fy_node *c, int root, long long now)
{
	char v[96];
	const char *subj = sn_cli_json_str_or(c, "subject", "?");
	printf("    Subject:     %s\n", subj[0] ? subj : "(empty)");
	if (!root) {
		printf("    Issuer:      %s\n", sn_cli_json_str_or(c, "issuer", "?"));
		printf("    Serial:      %s\n", sn_cli_json_str_or(c, "serial", "?"));
		when_str(sn_cli_json_int(c, "not_before", 0), now, 0, v, sizeof(v));
		printf("    Not before:  %s\n", v);
	}
	when_str(sn_cli_json_int(c, "not_after", 0), now, 1, v, sizeof(v));
	printf("    Not after:   %s\n", v);
	printf("    SHA-256:     %s\n", sn_cli_json_str_or(c, "sha256", "?"));
}

/* Warns on stderr about a certificate close to expiry; as `sinew ca`. */
static void warn_expiry(struct fy_node *c, const char *what, long long limit, const char *limit_text,
			long long now)
{
	long long na = sn_cli_json_int(c, "not_after", 0);
	char when[40], left[32];
	utc(na, when, sizeof(when));
	sn_cli_age(na - now, left, sizeof(left));
	if (na <= now)
		fprintf(stderr, "sinew: warning: %s %s expired at %s\n", what, sn_cli_json_str_or(c, "sha256", "?"), when);
	else if (na - now < limit)
		fprintf(stderr, "sinew: warning: %s %s expires in %s (%s), within %s\n", what,
			sn_cli_json_str_or(c, "sha256", "?"), left, when, limit_text);
}

int sn_cli_identity(int argc, char **argv)
{
	enum { O_SERVER = 256, O_ADMIN, O_PEM };
	static const struct option opts[] = {
		{ "admin", required_argument, NULL, O_ADMIN },
		{ "output", required_argument, NULL, 'o' },
		{ "pem", no_argument, NULL, O_PEM },
		{ "server", required_argument, NULL, O_SERVER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *admin_flag = NULL;
	int json = 0, pem = 0, o;

	optind = 0;
	while ((o = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (o) {
		case O_ADMIN: admin_flag = optarg; break;
		case 'o':
			if (strcmp(optarg, "json") != 0) {
				fprintf(stderr, "sinew identity: -o %s: only json (the default is text; --pem for PEM)\n",
					optarg);
				return 2;
			}
			json = 1;
			break;
		case O_PEM: pem = 1; break;
		case O_SERVER: server = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	const char *proxy = optind < argc ? argv[optind++] : NULL;
	if (optind < argc || (proxy == NULL) == (admin_flag == NULL)) {
		fprintf(stderr, "sinew identity: name one PROXY (see sinew proxy-status) or its admin ADDR:PORT\n");
		return 2;
	}
	if (json && pem) {
		fprintf(stderr, "sinew identity: -o json and --pem exclude each other\n");
		return 2;
	}
	/* An id never holds ':'; an address always does. */
	if (admin_flag == NULL && strchr(proxy, ':') != NULL) {
		admin_flag = proxy;
		proxy = NULL;
	}
	char admin[300], id[300] = "", base[320], err[700];
	if (admin_flag != NULL)
		snprintf(admin, sizeof(admin), "%s", admin_flag);
	else if (sn_cli_find_admin(sn_cli_server(server), proxy, admin, sizeof(admin), id, sizeof(id)) != 0)
		return 1;
	snprintf(base, sizeof(base), "%s%s", strncmp(admin, "http://", 7) ? "http://" : "", admin);
	const char *who = id[0] ? id : base + 7;

	struct sn_http_response r;
	if (sn_cli_http(base, "GET", "/identity", NULL, NULL, 0, 10000, "the proxy's admin port",
			"is the proxy running, and is this its --admin address?", &r, err, sizeof(err)) != 0) {
		fprintf(stderr, "sinew: %s\n", err);
		return 1;
	}
	if (r.status == 404) {
		fprintf(stderr, "sinew: the admin port at %s has no /identity (a sinew-proxy older than this CLI, or not "
				"a proxy's admin port)\n", base);
		sn_http_response_free(&r);
		return 1;
	}
	struct fy_document *doc = r.status == 200 ? sn_cli_json_parse(r.body, r.len) : NULL;
	struct fy_node *root = sn_cli_json_root(doc);
	if (root == NULL || sn_cli_json_get(root, "mtls") == NULL) {
		fprintf(stderr, "sinew: %s/identity answered %d: %.200s\n", base, r.status, r.body ? r.body : "");
		sn_cli_json_free(doc);
		sn_http_response_free(&r);
		return 1;
	}
	int rc = 0;
	int mtls = sn_cli_json_bool(root, "mtls");
	if (json)
		fwrite(r.body, 1, r.len, stdout);
	if (!mtls) {
		fprintf(stderr, "sinew: proxy %s runs without mTLS: it has no certificate, so it neither proves its "
				"identity nor checks its peers'; give it one (--tls-cert/--tls-key/--tls-bundle, "
				"docs/security.md)\n", who);
		rc = 1;
		goto out;
	}
	struct fy_node *chain = sn_cli_json_get(root, "chain"), *roots = sn_cli_json_get(root, "roots");
	size_t n_chain = sn_cli_json_len(chain), n_roots = sn_cli_json_len(roots);
	if (json)
		goto out;
	if (pem) {
		for (size_t i = 0; i < n_chain; i++)
			fputs(sn_cli_json_str_or(sn_cli_json_at(chain, i), "pem", ""), stdout);
		goto out;
	}
	long long now = (long long)time(NULL);
	if (id[0])
		printf("Proxy:         %s (admin %s)\n", id, admin);
	else
		printf("Proxy:         admin %s\n", admin);
	printf("SPIFFE ID:     %s\n", sn_cli_json_str_or(root, "spiffe_id", "?"));
	printf("Trust domain:  %s\n", sn_cli_json_str_or(root, "trust_domain", "?"));
	printf("Generation:    %lld (times its certificate or roots were replaced)\n",
	       sn_cli_json_int(root, "generation", 0));
	printf("\nChain (presented to peers, leaf first):\n");
	for (size_t i = 0; i < n_chain; i++) {
		struct fy_node *c = sn_cli_json_at(chain, i);
		if (i == 0)
			printf("  Leaf:\n");
		else
			printf("  Intermediate %zu:\n", i);
		print_cert(c, 0, now);
		if (i == 0)
			warn_expiry(c, "leaf", LEAF_WARN_SECONDS, "6 hours", now);
		else
			warn_expiry(c, "intermediate", CA_WARN_SECONDS, "60 days", now);
	}
	printf("\nRoots (trusted, %zu):\n", n_roots);
	for (size_t i = 0; i < n_roots; i++) {
		struct fy_node *c = sn_cli_json_at(roots, i);
		printf("  Root %zu:\n", i + 1);
		print_cert(c, 1, now);
		warn_expiry(c, "root", CA_WARN_SECONDS, "60 days", now);
	}
out:
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
	return rc;
}
