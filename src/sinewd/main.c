/* sinewd: the control plane. Parses flags, opens the store and the CA,
 * serves the API and the mesh port (proxies: registry and push) on one loop thread
 * until SIGTERM or SIGINT. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>

#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "sinew/control.h"
#include "prom_views.h"
#include "sinew/log.h"
#include "sinew/pod.h"

struct sinewd {
	struct sn_loop loop;
	struct sn_store store;
	struct sn_api api;
	struct sn_mesh *mesh;
	struct sn_ca_service *ca;
	struct sn_traces *traces;   /* recent traces, in memory (docs/api.md "Traces") */
	struct sn_stats *stats;     /* live request stats, in memory (docs/api.md "Stats") */
	struct sn_io sig_io;
	int sig_fd;
};

/* Another replica changed the shared store: statuses, then the proxies. */
static void on_store_changed(struct sn_store *st, void *arg)
{
	struct sinewd *d = arg;
	sn_admit_refresh_status(st);
	if (d->mesh != NULL)
		sn_mesh_store_changed(d->mesh);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinewd --data-dir DIR [options]\n"
		"\n"
		"Sinew's control plane: a crash-safe store of mesh configuration with same-code\n"
		"admission and analysis, served over an HTTP/JSON API (docs/api.md); proxies\n"
		"connect to --mesh for their configuration and register their workloads\n"
		"(docs/internals/control-protocol.md).\n"
		"\n"
		"  --data-dir DIR       where resources are stored (created if missing); with --store\n"
		"                       etcd, what is this replica's own (its CA unless given, keys)\n"
		"  --store etcd://HOST:PORT[,HOST:PORT...]  keep resources in etcd instead, shared by\n"
		"                       several sinewd replicas (etcd's client URLs)\n"
		"  --etcd-cacert FILE   talk TLS to etcd, its certificates checked against FILE\n"
		"  --etcd-cert FILE, --etcd-key FILE  the client certificate etcd asks for\n"
		"  --api ADDR:PORT      HTTP API, loopback only (default 127.0.0.1:15080)\n"
		"  --mesh ADDR:PORT     proxy connections (default 127.0.0.1:15012), loopback only\n"
		"  --trust-domain TD    SPIFFE trust domain of issued identities (default cluster.local)\n"
		"  --cluster-domain D   the DNS domain short names complete with: reviews is\n"
		"                       reviews.NS.svc.D (default cluster.local; give proxies the same)\n"
		"  --ca-cert FILE       use this CA: the issuing certificate, any intermediates, then\n"
		"                       the root (PEM); default: a root generated in DATA_DIR/ca\n"
		"  --ca-key FILE        the issuing certificate's private key (PEM), with --ca-cert\n"
		"  --mesh-plaintext     also accept proxies without TLS on --mesh (tests, development);\n"
		"                       by default the mesh port takes mutual TLS only\n"
		"  --leaf-ttl D         lifetime of issued workload certificates (default 24h)\n"
		"  --root-ttl D         lifetime of a generated root (default 365d); a rotation starts\n"
		"                       by itself when a third of the issuing CA's life is left\n"
		"  --renew-spread D     during a rotation, proxies renew within D (default 5s)\n"
		"  --stats-resolution D time slot of the live stats (`sinew stat`), 1s to 10m; they\n"
		"                       keep the last hour (default 10s)\n"
		"  --prometheus URL     answer the live views (stats, edges, routes: the CLI's and the\n"
		"                       dashboard's) from a Prometheus that scrapes the proxies through\n"
		"                       this sinewd's service discovery, instead of the built-in store\n"
		"  --pod-mesh NETNS=ADDR:PORT  also take proxies on ADDR:PORT inside network namespace\n"
		"                       NETNS (the pods' network of `sinew run`, e.g. sn-mesh=10.88.0.1:15012)\n"
		"  --log-level LEVEL    error, warn, info (default), debug, trace\n"
		"  --version, --help\n"
		"\n"
		"Exit status: 0 after SIGTERM/SIGINT, 1 on a usage or start-up error.\n");
}

/* IPv4 "A.B.C.D:PORT" or "[V6]:PORT", loopback only in this release. */
static int parse_addr(const char *flag, const char *v, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[64];
	const char *colon = strrchr(v, ':');
	char *end;
	memset(ss, 0, sizeof(*ss));
	if (colon == NULL || (size_t)(colon - v) >= sizeof(host) || colon == v)
		goto bad;
	long port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535)
		goto bad;
	memcpy(host, v, (size_t)(colon - v));
	host[colon - v] = '\0';
	if (host[0] == '[') {
		size_t hl = strlen(host);
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
		if (hl < 3 || host[hl - 1] != ']')
			goto bad;
		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
			goto bad;
		if (!IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr))
			goto not_loopback;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a6);
		return 0;
	}
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
		goto bad;
	if ((ntohl(a4->sin_addr.s_addr) >> 24) != 127)
		goto not_loopback;
	a4->sin_family = AF_INET;
	a4->sin_port = htons((uint16_t)port);
	*len = sizeof(*a4);
	return 0;
bad:
	fprintf(stderr, "sinewd: %s %s: want IP:PORT, e.g. 127.0.0.1:15080 or [::1]:15080\n", flag, v);
	return -1;
not_loopback:
	fprintf(stderr, "sinewd: %s %s: only loopback addresses (127.0.0.0/8, ::1) are served until the API "
			"has authentication; use 127.0.0.1\n", flag, v);
	return -1;
}

static void on_signal(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct sinewd *d = sn_container_of(io, struct sinewd, sig_io);
	struct signalfd_siginfo si;
	while (read(d->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		sn_log(SN_LOG_INFO, "sinewd: signal %u; stopping (the store is durable: nothing to flush)",
		       si.ssi_signo);
		sn_loop_stop(loop);
	}
}

/* --pod-mesh NETNS=ADDR:PORT: a second mesh listener inside the pods'
 * network namespace (made by `sinew up`/`sinew run`; docs/internals/pods.md),
 * so that proxies in pods reach sinewd on their bridge's gateway. */
static int listen_in_netns(struct sn_mesh *m, const char *spec)
{
	char netns[SN_POD_NAME_MAX];
	const char *eq = strchr(spec, '=');
	struct sockaddr_in sa = { .sin_family = AF_INET };
	char host[32];
	const char *colon = eq ? strrchr(eq, ':') : NULL;

	if (eq == NULL || eq == spec || (size_t)(eq - spec) >= sizeof(netns) || colon == NULL ||
	    (size_t)(colon - eq - 1) >= sizeof(host)) {
		fprintf(stderr, "sinewd: --pod-mesh %s: want NETNS=ADDR:PORT, e.g. sn-mesh=10.88.0.1:15012\n", spec);
		return -1;
	}
	memcpy(netns, spec, (size_t)(eq - spec));
	netns[eq - spec] = '\0';
	memcpy(host, eq + 1, (size_t)(colon - eq - 1));
	host[colon - eq - 1] = '\0';
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || *end != '\0' || port < 1 || port > 65535) {
		fprintf(stderr, "sinewd: --pod-mesh %s: want NETNS=ADDR:PORT with an IPv4 address\n", spec);
		return -1;
	}
	sa.sin_port = htons((uint16_t)port);
	int one = 1;
	int fd = sn_pod_socket_in_netns(netns, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		fprintf(stderr, "sinewd: --pod-mesh: cannot open a socket in network namespace %s: %s (does it exist? "
				"`sinew up` creates it; root is needed)\n", netns, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || sn_mesh_add_listener(m, fd) != 0) {
		fprintf(stderr, "sinewd: --pod-mesh: cannot listen on %s:%ld in %s: %s\n", host, port, netns,
			strerror(errno));
		close(fd);
		return -1;
	}
	sn_log(SN_LOG_INFO, "mesh: also listening on %s:%ld in network namespace %s (pods)", host, port, netns);
	return 0;
}

/* "90s", "30m", "24h", "365d", or plain seconds. */
static int parse_duration(const char *s, uint32_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned long long unit = 1;

	if (end == s || v == 0)
		return -1;
	if (*end == 'd')
		unit = 86400;
	else if (*end == 'h')
		unit = 3600;
	else if (*end == 'm')
		unit = 60;
	else if (*end != 's' && *end != '\0')
		return -1;
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (v > 100ull * 365 * 86400 / unit)
		return -1;
	*out = (uint32_t)(v * unit);
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_DATA = 256, O_API, O_MESH, O_LOG_LEVEL, O_VERSION, O_HELP, O_TD, O_CLUSTER_DOMAIN, O_CA_CERT, O_CA_KEY,
	       O_MESH_PLAIN, O_LEAF_TTL, O_ROOT_TTL, O_RENEW_SPREAD, O_POD_MESH, O_STATS_RESOLUTION, O_PROMETHEUS,
	       O_STORE, O_ETCD_CA, O_ETCD_CERT, O_ETCD_KEY };
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, O_DATA },
		{ "store", required_argument, NULL, O_STORE },
		{ "etcd-cacert", required_argument, NULL, O_ETCD_CA },
		{ "etcd-cert", required_argument, NULL, O_ETCD_CERT },
		{ "etcd-key", required_argument, NULL, O_ETCD_KEY },
		{ "api", required_argument, NULL, O_API },
		{ "mesh", required_argument, NULL, O_MESH },
		{ "log-level", required_argument, NULL, O_LOG_LEVEL },
		{ "trust-domain", required_argument, NULL, O_TD },
		{ "cluster-domain", required_argument, NULL, O_CLUSTER_DOMAIN },
		{ "ca-cert", required_argument, NULL, O_CA_CERT },
		{ "ca-key", required_argument, NULL, O_CA_KEY },
		{ "mesh-plaintext", no_argument, NULL, O_MESH_PLAIN },
		{ "leaf-ttl", required_argument, NULL, O_LEAF_TTL },
		{ "root-ttl", required_argument, NULL, O_ROOT_TTL },
		{ "renew-spread", required_argument, NULL, O_RENEW_SPREAD },
		{ "pod-mesh", required_argument, NULL, O_POD_MESH },
		{ "stats-resolution", required_argument, NULL, O_STATS_RESOLUTION },
		{ "prometheus", required_argument, NULL, O_PROMETHEUS },
		{ "version", no_argument, NULL, O_VERSION },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *prometheus = NULL, *store_url = NULL;
	struct sn_etcd_tls etcd_tls = { 0 };
	const char *data_dir = NULL, *api_s = "127.0.0.1:15080", *mesh_s = "127.0.0.1:15012", *pod_mesh = NULL;
	struct sn_ca_service_opts ca_opts = { 0 };
	struct sn_mesh_opts mesh_opts = { 0 };
	struct sn_stats_limits stats_lim = { 0 };
	uint32_t ttl;
	struct sockaddr_storage api_addr, mesh_addr;
	socklen_t api_len = 0, mesh_len = 0;
	static struct sinewd d;
	int o;

	/* Before anything talks to a peer: a write to a closed connection is an
	 * error to handle (EPIPE), not a reason to die; TLS writes (etcd)
	 * cannot ask for MSG_NOSIGNAL. */
	signal(SIGPIPE, SIG_IGN);
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case O_DATA:
			data_dir = optarg;
			break;
		case O_STORE:
			store_url = optarg;
			break;
		case O_ETCD_CA:
			etcd_tls.ca_file = optarg;
			break;
		case O_ETCD_CERT:
			etcd_tls.cert_file = optarg;
			break;
		case O_ETCD_KEY:
			etcd_tls.key_file = optarg;
			break;
		case O_API:
			api_s = optarg;
			break;
		case O_MESH:
			mesh_s = optarg;
			break;
		case O_CLUSTER_DOMAIN:
			if (sn_cluster_domain_set(optarg) != 0) {
				fprintf(stderr, "sinewd: --cluster-domain %s: not a DNS name (letters, digits, '-' and "
					"'.', at most %d characters), e.g. cluster.local\n", optarg, SN_CLUSTER_DOMAIN_MAX);
				return 1;
			}
			break;
		case O_TD:
			ca_opts.trust_domain = optarg;
			break;
		case O_CA_CERT:
			ca_opts.cert_file = optarg;
			break;
		case O_CA_KEY:
			ca_opts.key_file = optarg;
			break;
		case O_MESH_PLAIN:
			mesh_opts.allow_plaintext = 1;
			break;
		case O_POD_MESH:
			pod_mesh = optarg;
			break;
		case O_LEAF_TTL:
		case O_ROOT_TTL:
		case O_RENEW_SPREAD:
			if (parse_duration(optarg, &ttl) != 0 || (o == O_LEAF_TTL && ttl < 10) ||
			    (o == O_ROOT_TTL && ttl < 60)) {
				fprintf(stderr, "sinewd: --%s %s: want a duration such as 90s, 30m, 24h or 365d (leaves at "
						"least 10s, roots at least 60s)\n",
					o == O_LEAF_TTL ? "leaf-ttl" : o == O_ROOT_TTL ? "root-ttl" : "renew-spread", optarg);
				return 1;
			}
			if (o == O_LEAF_TTL)
				ca_opts.leaf_ttl = ttl;
			else if (o == O_ROOT_TTL)
				ca_opts.root_ttl = ttl;
			else
				mesh_opts.renew_spread_ms = ttl * 1000;
			break;
		case O_PROMETHEUS:
			prometheus = optarg;
			break;
		case O_STATS_RESOLUTION:
			if (sn_parse_duration_ms(optarg, &stats_lim.resolution_ms) != 0 ||
			    stats_lim.resolution_ms < 1000 || stats_lim.resolution_ms > 600000) {
				fprintf(stderr, "sinewd: --stats-resolution %s: want a duration from 1s to 10m, e.g. 10s\n",
					optarg);
				return 1;
			}
			break;
		case O_LOG_LEVEL:
			if (sn_log_set_level_name(optarg) != 0) {
				fprintf(stderr, "sinewd: --log-level %s: want error, warn, info, debug or trace\n", optarg);
				return 1;
			}
			break;
		case O_VERSION:
			printf("sinewd %s\n", SINEWD_VERSION);
			return 0;
		case 'h':
		case O_HELP:
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sinewd: unexpected argument \"%s\"; see sinewd --help\n", argv[optind]);
		return 1;
	}
	if (store_url == NULL && (etcd_tls.ca_file || etcd_tls.cert_file || etcd_tls.key_file)) {
		fprintf(stderr, "sinewd: --etcd-cacert, --etcd-cert and --etcd-key go with --store etcd://...\n");
		return 1;
	}
	if (data_dir == NULL) {
		fprintf(stderr, "sinewd: --data-dir DIR is required: where the store keeps resources\n");
		return 1;
	}
	if (parse_addr("--api", api_s, &api_addr, &api_len) != 0 ||
	    parse_addr("--mesh", mesh_s, &mesh_addr, &mesh_len) != 0)
		return 1;

	struct sn_diags report;
	sn_diags_init(&report);
	uint64_t t0 = sn_clock_ms();
	if (store_url != NULL) {
		char err[700];
		if (sn_store_open_etcd(&d.store, data_dir, store_url, &etcd_tls, &report, err, sizeof(err)) != 0) {
			fprintf(stderr, "sinewd: cannot open the store: %s\n", err);
			sn_diags_free(&report);
			return 1;
		}
	} else if (sn_store_open(&d.store, data_dir, &report) != 0) {
		fprintf(stderr, "sinewd: cannot open the store in %s: %s; check the path and its permissions\n",
			data_dir, strerror(errno));
		sn_diags_free(&report);
		return 1;
	}
	for (size_t i = 0; i < report.n; i++) {
		char line[1600];
		sn_diag_format(&report.v[i], line, sizeof(line));
		sn_log(SN_LOG_WARN, "store: %s", line);
	}
	sn_diags_free(&report);
	sn_admit_refresh_status(&d.store);
	sn_log(SN_LOG_INFO, "store: %zu resources at revision %llu loaded from %s in %llu ms", d.store.n,
	       (unsigned long long)d.store.revision, d.store.where, (unsigned long long)(sn_clock_ms() - t0));

	char ca_err[1024];
	uint8_t token_secret[32];
	ca_opts.data_dir = data_dir;
	if (store_url != NULL) {
		/* Replicas share the join-token secret and spend tokens once for
		 * all, through etcd (docs/internals/store.md, "etcd"). */
		if (sn_store_token_secret(&d.store, token_secret, ca_err, sizeof(ca_err)) != 0) {
			fprintf(stderr, "sinewd: the join-token secret in etcd: %s\n", ca_err);
			sn_store_close(&d.store);
			return 1;
		}
		ca_opts.token_secret = token_secret;
		ca_opts.spend = sn_store_spend_nonce;
		ca_opts.spend_arg = &d.store;
	}
	if (sn_ca_service_open(&ca_opts, &d.ca, ca_err, sizeof(ca_err)) != 0) {
		fprintf(stderr, "sinewd: CA: %s\n", ca_err);
		sn_store_close(&d.store);
		return 1;
	}
	OPENSSL_cleanse(token_secret, sizeof(token_secret));
	char root_fp[65];
	sn_ca_service_root_sha256_hex(d.ca, root_fp);
	sn_log(SN_LOG_INFO, "ca: trust domain %s, root sha256 %s (%s)", sn_ca_service_trust_domain(d.ca), root_fp,
	       ca_opts.cert_file ? ca_opts.cert_file : "DATA_DIR/ca");

	if (sn_loop_init(&d.loop) != 0) {
		fprintf(stderr, "sinewd: cannot create the event loop: %s\n", strerror(errno));
		return 1;
	}
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	d.sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d.sig_fd < 0 || sn_io_start(&d.loop, &d.sig_io, d.sig_fd, on_signal) != 0) {
		fprintf(stderr, "sinewd: cannot watch signals: %s\n", strerror(errno));
		return 1;
	}
	d.api.mesh_addr = mesh_s;
	d.api.api_addr = api_s;
	if (prometheus != NULL) {
		char err[600];
		if (sinewd_prom_views(&d.api, prometheus, err, sizeof(err)) != 0) {
			fprintf(stderr, "sinewd: %s\n", err);
			return 2;
		}
	}
	d.traces = sn_traces_new(NULL);
	if (d.traces == NULL) {
		fprintf(stderr, "sinewd: out of memory\n");
		return 1;
	}
	d.stats = sn_stats_new(&stats_lim);
	if (d.stats == NULL) {
		fprintf(stderr, "sinewd: out of memory\n");
		return 1;
	}
	mesh_opts.ca = d.ca;
	mesh_opts.replica = mesh_s;
	mesh_opts.traces = d.traces;
	mesh_opts.stats = d.stats;
	mesh_opts.no_auto_rotate = ca_opts.cert_file != NULL;   /* sinewd rotates only a CA it made */
	if (sn_mesh_start(&d.mesh, &d.loop, &d.store, (const struct sockaddr *)&mesh_addr, mesh_len, &mesh_opts) != 0) {
		fprintf(stderr, "sinewd: cannot listen on %s (--mesh): %s; pick a free port\n", mesh_s,
			strerror(errno));
		return 1;
	}
	if (pod_mesh != NULL && listen_in_netns(d.mesh, pod_mesh) != 0)
		return 1;
	d.api.mesh = d.mesh;
	d.api.ca = d.ca;
	d.api.traces = d.traces;
	d.api.stats = d.stats;
	if (sn_api_start(&d.api, &d.loop, &d.store, (const struct sockaddr *)&api_addr, api_len) != 0) {
		fprintf(stderr, "sinewd: cannot listen on %s (--api): %s; pick a free port\n", api_s, strerror(errno));
		return 1;
	}
	if (sn_store_watch_start(&d.store, &d.loop, on_store_changed, &d) != 0) {
		fprintf(stderr, "sinewd: cannot start watching etcd: %s\n", strerror(errno));
		return 1;
	}
	sn_store_announce(&d.store, api_s, mesh_s);   /* sinew proxy-status asks every replica */
	sn_log(SN_LOG_INFO, "sinewd %s: API on http://%s, mesh on %s, data in %s, resources in %s", SINEWD_VERSION,
	       api_s, mesh_s, data_dir, d.store.where);

	int rc = sn_loop_run(&d.loop);
	sn_store_watch_stop(&d.store);
	sn_api_stop(&d.api);
	sn_mesh_stop(d.mesh);
	sn_io_stop(&d.loop, &d.sig_io);
	close(d.sig_fd);
	sn_loop_run_once(&d.loop, 0); /* reclaim closed connections */
	sn_mesh_free(d.mesh);
	sn_traces_free(d.traces);
	sn_stats_free(d.stats);
	sn_loop_dispose(&d.loop);
	sn_store_close(&d.store);
	sn_ca_service_free(d.ca);
	return rc == 0 ? 0 : 1;
}
