/* sinew check: is the mesh's identity healthy, before it hurts? Checks
 * sinewd's CA (GET /api/v1/ca) and every connected proxy through its
 * admin port's /identity: roots and intermediates valid for 60 more days,
 * leaves for 6 more hours, every proxy on mTLS and trusting sinewd's CA
 * (DESIGN.md §4: certificate expiry is the hard limit of a proxy cut off
 * from sinewd). One line per check, in the manner of `linkerd check`. */
#include <getopt.h>
#include <libfyaml.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sinew/cli.h"

#define LEAF_WARN_SECONDS (6 * 3600)
#define CA_WARN_SECONDS (60 * 86400)
#define ADMIN_TIMEOUT_MS 5000

enum level { OK, WARN, FAIL };

struct checker {
	int tty;                 /* stdout is a terminal: ✔ ‼ ×, else [ok] [warn] [fail] */
	unsigned n[3];           /* checks per level */
	long long now;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew check [--server URL]\n"
		"\n"
		"Checks the mesh's identity against sinewd and every connected proxy (through\n"
		"its admin port), one line per check, and warns about what will break:\n"
		"  - a root (or intermediate) of sinewd's CA or of a proxy expiring within 60 days\n"
		"  - a proxy's leaf certificate expiring within 6 hours\n"
		"  - a proxy running without mTLS, or not trusting sinewd's CA\n"
		"  - a proxy whose admin port cannot be reached\n"
		"\n"
		"  --server URL   sinewd's API, http://HOST:PORT or HOST:PORT (default\n"
		"                 $SINEW_SERVER, else " SN_CLI_DEFAULT_SERVER ")\n"
		"\n"
		"Exit status: 0 all is well, 1 something was warned about, 2 sinewd cannot be\n"
		"reached (or a usage error).\n");
}

static void section(const struct checker *c, const char *title)
{
	size_t n = strlen(title);
	printf("%s%s\n", c->n[OK] + c->n[WARN] + c->n[FAIL] ? "\n" : "", title);
	for (size_t i = 0; i < n; i++)
		putchar('-');
	putchar('\n');
}

static void result(struct checker *c, enum level l, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void result(struct checker *c, enum level l, const char *fmt, ...)
{
	static const char *const tty_mark[] = { "\u2714", "\u203c", "\u00d7" };
	static const char *const plain_mark[] = { "[ok]", "[warn]", "[fail]" };
	va_list ap;

	c->n[l]++;
	printf("%s ", c->tty ? tty_mark[l] : plain_mark[l]);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* A detail under the last check. */
static void hint(const struct checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hint(const struct checker *c, const char *fmt, ...)
{
	va_list ap;

	printf("    ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void utc(long long t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, size, "?");
}

/* One expiry check: "<what> is valid for at least <limit_text>" or a
 * warning saying when it expires. */
static void check_expiry(struct checker *c, const char *what, long long not_after, long long limit,
			 const char *limit_text, const char *advice)
{
	char when[40], left[32];

	utc(not_after, when, sizeof(when));
	sn_cli_age(not_after > c->now ? not_after - c->now : c->now - not_after, left, sizeof(left));
	if (not_after <= c->now) {
		result(c, WARN, "%s expired %s ago (%s)", what, left, when);
		hint(c, "%s", advice);
	} else if (not_after - c->now < limit) {
		result(c, WARN, "%s expires in %s (%s), within %s", what, left, when, limit_text);
		hint(c, "%s", advice);
	} else {
		result(c, OK, "%s is valid for at least %s (until %s)", what, limit_text, when);
	}
}

/* sinewd's CA: its roots and issuer. Fills ca_roots (sha256 hex, one
 * per line) for the proxies' trust check. */
static void check_ca(struct checker *c, const char *server, char *ca_roots, size_t size)
{
	struct sn_http_response r;
	char err[700];

	ca_roots[0] = '\0';
	section(c, "certificate authority");
	if (sn_cli_http(server, "GET", "/api/v1/ca", NULL, NULL, 0, SN_CLI_TIMEOUT_MS, "sinewd", NULL, &r, err,
			sizeof(err)) != 0) {
		result(c, WARN, "can read sinewd's CA");
		hint(c, "%s", err);
		return;
	}
	struct fy_document *doc = r.status == 200 ? sn_cli_json_parse(r.body, r.len) : NULL;
	struct fy_node *root = sn_cli_json_root(doc);
	struct fy_node *roots = sn_cli_json_get(root, "roots");
	size_t n = sn_cli_json_len(roots);
	if (root == NULL || n == 0) {
		result(c, WARN, "can read sinewd's CA");
		hint(c, "GET /api/v1/ca answered %d: %.200s", r.status, r.body ? r.body : "");
		goto out;
	}
	result(c, OK, "sinewd's CA serves trust domain %s (%s, %zu root%s)",
	       sn_cli_json_str_or(root, "trustDomain", "?"), sn_cli_json_str_or(root, "source", "?"), n,
	       n == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++) {
		struct fy_node *rt = sn_cli_json_at(roots, i);
		const char *sha = sn_cli_json_str_or(rt, "sha256", "?");
		char what[120];
		snprintf(what, sizeof(what), "root %.16s", sha);
		check_expiry(c, what, sn_cli_json_int(rt, "notAfterUnix", 0), CA_WARN_SECONDS, "60 days",
			     "rotate it before then (docs/internals/identity.md, Rotation)");
		size_t l = strlen(ca_roots);
		snprintf(ca_roots + l, size - l, "%s\n", sha);
	}
	struct fy_node *iss = sn_cli_json_get(root, "issuer");
	const char *iss_sha = sn_cli_json_str(iss, "sha256");
	if (iss_sha != NULL && strstr(ca_roots, iss_sha) == NULL) {
		char what[120];
		snprintf(what, sizeof(what), "issuer (intermediate) %.16s", iss_sha);
		check_expiry(c, what, sn_cli_json_int(iss, "notAfterUnix", 0), CA_WARN_SECONDS, "60 days",
			     "replace the intermediate before then; leaves cannot outlive it");
	}
out:
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
}

/* "127.0.0.1:15020" as a base URL; an unspecified host (0.0.0.0, [::])
 * is reached at the address the proxy connected to sinewd from. */
static void admin_base(const char *admin, const char *peer, char *out, size_t size)
{
	const char *port = strrchr(admin, ':');
	if (port != NULL && peer != NULL && (!strncmp(admin, "0.0.0.0:", 8) || !strncmp(admin, "[::]:", 5))) {
		const char *pp = strrchr(peer, ':');
		if (pp != NULL && pp > peer) {
			snprintf(out, size, "http://%.*s%s", (int)(pp - peer), peer, port);
			return;
		}
	}
	snprintf(out, size, "http://%s", admin);
}

static void check_proxy(struct checker *c, struct fy_node *px, const char *ca_roots)
{
	const char *id = sn_cli_json_str_or(px, "id", "?");
	const char *admin = sn_cli_json_str(px, "admin");
	char base[320], err[700], what[400];
	struct sn_http_response r;

	if (admin == NULL || !admin[0]) {
		result(c, WARN, "proxy %s has no admin port; its certificates cannot be checked", id);
		hint(c, "start it with --admin ADDR:PORT");
		return;
	}
	admin_base(admin, sn_cli_json_str(px, "peer"), base, sizeof(base));
	/* a pod's proxy: its admin port is on the pod's loopback */
	const char *pod = sn_cli_json_str(px, "pod");
	sn_cli_netns = pod != NULL && pod[0] ? pod : NULL;
	int hr = sn_cli_http(base, "GET", "/identity", NULL, NULL, 0, ADMIN_TIMEOUT_MS, "its admin port", NULL, &r, err,
			     sizeof(err));
	sn_cli_netns = NULL;
	if (hr != 0) {
		result(c, WARN, "proxy %s: admin port %s is unreachable", id, base + 7);
		hint(c, "%s", err);
		return;
	}
	struct fy_document *doc = r.status == 200 ? sn_cli_json_parse(r.body, r.len) : NULL;
	struct fy_node *root = sn_cli_json_root(doc);
	if (root == NULL || sn_cli_json_get(root, "mtls") == NULL) {
		result(c, WARN, "proxy %s: its identity cannot be read", id);
		if (r.status == 404)
			hint(c, "%s has no /identity: a sinew-proxy older than this CLI", base);
		else
			hint(c, "%s/identity answered %d: %.200s", base, r.status, r.body ? r.body : "");
		goto out;
	}
	if (!sn_cli_json_bool(root, "mtls")) {
		result(c, WARN, "proxy %s runs without mTLS", id);
		hint(c, "it has no certificate: it neither proves its identity nor checks its peers' (docs/security.md)");
		goto out;
	}
	struct fy_node *chain = sn_cli_json_get(root, "chain"), *roots = sn_cli_json_get(root, "roots");
	result(c, OK, "proxy %s serves mTLS as %s", id, sn_cli_json_str_or(root, "spiffe_id", "?"));
	for (size_t i = 0; i < sn_cli_json_len(chain); i++) {
		struct fy_node *cert = sn_cli_json_at(chain, i);
		long long na = sn_cli_json_int(cert, "not_after", 0);
		if (i == 0) {
			snprintf(what, sizeof(what), "proxy %s: leaf", id);
			check_expiry(c, what, na, LEAF_WARN_SECONDS, "6 hours",
				     "give it a new certificate before then; peers will refuse it once it expires");
		} else {
			snprintf(what, sizeof(what), "proxy %s: intermediate %.16s", id,
				 sn_cli_json_str_or(cert, "sha256", "?"));
			check_expiry(c, what, na, CA_WARN_SECONDS, "60 days",
				     "replace the intermediate before then; its leaves cannot outlive it");
		}
	}
	/* Roots: one line for all unless one is expiring. */
	size_t n_roots = sn_cli_json_len(roots), soon = 0, trusted = 0;
	const char *first_root = sn_cli_json_str_or(sn_cli_json_at(roots, 0), "sha256", "?");
	for (size_t i = 0; i < n_roots; i++) {
		struct fy_node *rt = sn_cli_json_at(roots, i);
		const char *sha = sn_cli_json_str_or(rt, "sha256", "?");
		if (sn_cli_json_int(rt, "not_after", 0) - c->now < CA_WARN_SECONDS) {
			snprintf(what, sizeof(what), "proxy %s: root %.16s", id, sha);
			check_expiry(c, what, sn_cli_json_int(rt, "not_after", 0), CA_WARN_SECONDS, "60 days",
				     "rotate it before then (docs/internals/identity.md, Rotation)");
			soon++;
		}
		if (ca_roots[0] && strstr(ca_roots, sha) != NULL)
			trusted++;
	}
	if (n_roots > 0 && soon == 0)
		result(c, OK, "proxy %s: %s valid for at least 60 days", id,
		       n_roots == 1 ? "its root is" : "its roots are");
	if (ca_roots[0]) {
		if (trusted > 0) {
			result(c, OK, "proxy %s trusts sinewd's CA", id);
		} else {
			result(c, WARN, "proxy %s does not trust sinewd's CA", id);
			if (n_roots == 1)
				hint(c, "its root %.16s is not sinewd's (%.16s): it will refuse peers holding certificates "
					"that sinewd issued", first_root, ca_roots);
			else
				hint(c, "none of its %zu roots is sinewd's (%.16s): it will refuse peers holding "
					"certificates that sinewd issued", n_roots, ca_roots);
		}
	}
out:
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
}

static void check_proxies(struct checker *c, const char *server, const char *ca_roots)
{
	struct sn_http_response r;
	char err[700];

	section(c, "proxies");
	if (sn_cli_http(server, "GET", "/api/v1/proxies", NULL, NULL, 0, SN_CLI_TIMEOUT_MS, "sinewd", NULL, &r, err,
			sizeof(err)) != 0) {
		result(c, WARN, "can list the connected proxies");
		hint(c, "%s", err);
		return;
	}
	struct fy_document *doc = r.status == 200 ? sn_cli_json_parse(r.body, r.len) : NULL;
	struct fy_node *list = sn_cli_json_root(doc);
	if (list == NULL || !fy_node_is_sequence(list)) {
		result(c, WARN, "can list the connected proxies");
		hint(c, "GET /api/v1/proxies answered %d: %.200s", r.status, r.body ? r.body : "");
	} else {
		size_t n = sn_cli_json_len(list);
		result(c, OK, "%zu prox%s connected to sinewd", n, n == 1 ? "y is" : "ies are");
		for (size_t i = 0; i < n; i++)
			check_proxy(c, sn_cli_json_at(list, i), ca_roots);
	}
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
}

static void summary(const struct checker *c)
{
	unsigned total = c->n[OK] + c->n[WARN] + c->n[FAIL];

	putchar('\n');
	if (c->n[FAIL])
		printf("Status: %u of %u checks failed; sinewd must be reachable to check the rest\n", c->n[FAIL],
		       total);
	else if (c->n[WARN])
		printf("Status: %u warning%s, %u of %u checks passed\n", c->n[WARN], c->n[WARN] == 1 ? "" : "s",
		       c->n[OK], total);
	else
		printf("Status: all %u checks passed\n", total);
}

int sn_cli_check(int argc, char **argv)
{
	enum { O_SERVER = 256 };
	static const struct option opts[] = {
		{ "server", required_argument, NULL, O_SERVER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server_flag = NULL;
	int o;

	optind = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case O_SERVER: server_flag = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sinew check: unexpected argument \"%s\"; usage: sinew check [--server URL]\n",
			argv[optind]);
		return 2;
	}
	const char *s = sn_cli_server(server_flag);
	char server[320], err[700], ca_roots[8 * 65 + 1];
	snprintf(server, sizeof(server), "%s%s", strstr(s, "://") ? "" : "http://", s);

	struct checker c = { .tty = isatty(STDOUT_FILENO), .now = (long long)time(NULL) };
	struct sn_http_response r;
	section(&c, "sinewd");
	if (sn_cli_http(server, "GET", "/ready", NULL, NULL, 0, SN_CLI_TIMEOUT_MS, "sinewd", "start it with `sinew up`",
			&r, err, sizeof(err)) != 0) {
		result(&c, FAIL, "sinewd is reachable at %s", server);
		hint(&c, "%s", err);
		summary(&c);
		return 2;
	}
	if (r.status == 200)
		result(&c, OK, "sinewd is reachable at %s and ready", server);
	else
		result(&c, WARN, "sinewd at %s is not ready (/ready answered %d)", server, r.status);
	sn_http_response_free(&r);

	check_ca(&c, server, ca_roots, sizeof(ca_roots));
	check_proxies(&c, server, ca_roots);
	summary(&c);
	return c.n[WARN] ? 1 : 0;
}
