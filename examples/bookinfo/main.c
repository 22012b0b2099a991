/* bookinfo ROLE [--listen ADDR:PORT] [--version vN]: runs one service of
 * the bookinfo demo. See README.md. */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bookinfo.h"

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bookinfo ROLE [--listen ADDR:PORT] [--version vN]\n"
		"\n"
		"Runs one service of Istio's bookinfo demo application.\n"
		"\n"
		"  ROLE                 details, ratings, reviews or productpage\n"
		"  --listen ADDR:PORT   where to listen (default 0.0.0.0:9080)\n"
		"  --version vN         reviews: v1 (no stars), v2 (black stars), v3 (red stars);\n"
		"                       the others are v1\n"
		"\n"
		"Environment (as Istio's services read it):\n"
		"  DETAILS_HOSTNAME, REVIEWS_HOSTNAME, RATINGS_HOSTNAME   names of the services\n"
		"      called (default details, reviews, ratings)\n"
		"  SERVICES_DOMAIN      appended to those names as .DOMAIN\n"
		"  DETAILS_SERVICE_PORT, REVIEWS_SERVICE_PORT, RATINGS_SERVICE_PORT (default 9080)\n"
		"  http_proxy, no_proxy  send calls through an HTTP proxy (absolute-form requests),\n"
		"      e.g. http_proxy=http://127.0.0.1:15001 for sinew-proxy --outbound\n"
		"  HOSTNAME, CLUSTER_NAME  reported by reviews as podname and clustername\n");
}

static int set_service(struct bk_service *svc, const char *name_env, const char *def,
		       const char *port_env)
{
	const char *name = getenv(name_env);
	const char *domain = getenv("SERVICES_DOMAIN");
	const char *port = getenv(port_env);
	if (name == NULL || *name == '\0')
		name = def;
	if (port == NULL || *port == '\0')
		port = "9080";
	long p = bk_parse_id(sn_str_make(port, strlen(port)));
	int n = domain && *domain ? snprintf(svc->host, sizeof(svc->host), "%s.%s", name, domain)
				  : snprintf(svc->host, sizeof(svc->host), "%s", name);
	if (n < 0 || (size_t)n >= sizeof(svc->host)) {
		fprintf(stderr, "bookinfo: %s%s is too long\n", name_env,
			domain ? " with SERVICES_DOMAIN" : "");
		return -1;
	}
	if (p <= 0 || p > 65535) {
		fprintf(stderr, "bookinfo: %s=%s is not a port\n", port_env, port);
		return -1;
	}
	snprintf(svc->port, sizeof(svc->port), "%ld", p);
	return 0;
}

int main(int argc, char **argv)
{
	static struct bk_app app;
	const char *listen_spec = "0.0.0.0:9080";
	const char *role = NULL;
	char err[256];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if ((strcmp(a, "--listen") == 0 || strcmp(a, "--version") == 0 ||
			    strcmp(a, "--role") == 0) && i + 1 < argc) {
			const char *v = argv[++i];
			if (strcmp(a, "--listen") == 0)
				listen_spec = v;
			else if (strcmp(a, "--role") == 0)
				role = v;
			else if (strlen(v) < sizeof(app.version))
				memcpy(app.version, v, strlen(v) + 1);
			else
				goto bad_version;
		} else if (a[0] != '-' && role == NULL) {
			role = a;
		} else {
			fprintf(stderr, "bookinfo: unknown argument %s (see --help)\n", a);
			return 1;
		}
	}
	if (role == NULL) {
		usage(stderr);
		return 1;
	}
	if (app.version[0] == '\0')
		memcpy(app.version, "v1", 3);
	if (strcmp(role, "details") == 0) {
		app.role = BK_ROLE_DETAILS;
	} else if (strcmp(role, "ratings") == 0) {
		app.role = BK_ROLE_RATINGS;
	} else if (strcmp(role, "productpage") == 0) {
		app.role = BK_ROLE_PRODUCTPAGE;
	} else if (strcmp(role, "reviews") == 0) {
		app.role = BK_ROLE_REVIEWS;
		if (strcmp(app.version, "v2") == 0) {
			app.ratings_enabled = 1;
			app.star_color = "black";
			app.ratings_timeout_ms = 10000;
		} else if (strcmp(app.version, "v3") == 0) {
			app.ratings_enabled = 1;
			app.star_color = "red";
			app.ratings_timeout_ms = 2500;
		} else if (strcmp(app.version, "v1") != 0) {
			goto bad_version;
		}
	} else {
		fprintf(stderr, "bookinfo: unknown role %s: details, ratings, reviews or productpage\n",
			role);
		return 1;
	}
	if (app.role != BK_ROLE_REVIEWS && strcmp(app.version, "v1") != 0)
		goto bad_version;
	snprintf(app.name, sizeof(app.name), "%s-%s", role, app.version);

	const char *host = getenv("HOSTNAME");
	if (host && *host && strlen(host) < sizeof(app.podname))
		memcpy(app.podname, host, strlen(host) + 1);
	else if (gethostname(app.podname, sizeof(app.podname) - 1) != 0)
		memcpy(app.podname, "unknown", 8);
	const char *cluster = getenv("CLUSTER_NAME");
	snprintf(app.clustername, sizeof(app.clustername), "%s", cluster ? cluster : "null");

	if (set_service(&app.details, "DETAILS_HOSTNAME", "details", "DETAILS_SERVICE_PORT") != 0 ||
	    set_service(&app.reviews, "REVIEWS_HOSTNAME", "reviews", "REVIEWS_SERVICE_PORT") != 0 ||
	    set_service(&app.ratings, "RATINGS_HOSTNAME", "ratings", "RATINGS_SERVICE_PORT") != 0)
		return 1;
	if (bk_proxy_from_env(&app.proxy, err, sizeof(err)) != 0) {
		fprintf(stderr, "bookinfo: %s\n", err);
		return 1;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	app.stopping = &stopping;

	int fd = bk_listen(listen_spec, err, sizeof(err));
	if (fd < 0) {
		fprintf(stderr, "bookinfo: %s\n", err);
		return 1;
	}
	bk_handler_cb handler = app.role == BK_ROLE_DETAILS   ? bk_details_handle
				: app.role == BK_ROLE_RATINGS ? bk_ratings_handle
				: app.role == BK_ROLE_REVIEWS ? bk_reviews_handle
							      : bk_productpage_handle;
	fprintf(stderr, "bookinfo: %s listening on %s", app.name, listen_spec);
	if (app.role == BK_ROLE_PRODUCTPAGE)
		fprintf(stderr, "; details %s:%s, reviews %s:%s", app.details.host, app.details.port,
			app.reviews.host, app.reviews.port);
	if (app.ratings_enabled)
		fprintf(stderr, "; ratings %s:%s (%s stars, %d ms timeout)", app.ratings.host,
			app.ratings.port, app.star_color, app.ratings_timeout_ms);
	if (app.proxy.enabled)
		fprintf(stderr, "; via http_proxy %s:%s", app.proxy.host, app.proxy.port);
	fprintf(stderr, "\n");
	int rc = bk_serve(&app, fd, handler);
	fprintf(stderr, "bookinfo: %s stopped\n", app.name);
	return rc == 0 ? 0 : 1;

bad_version:
	fprintf(stderr, "bookinfo: --version: reviews has v1, v2 and v3; %s has v1\n",
		role ? role : "the other services");
	return 1;
}
