/* sinew proxy-config routes|clusters|endpoints PROXY: what one proxy runs,
 * from its admin port's /config_dump (sn_snapshot_dump_json). The admin
 * address comes from sinewd's proxy list, or --admin. */
#include <getopt.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/cli.h"

enum what { W_ROUTES, W_CLUSTERS, W_ENDPOINTS, W_ALL };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew proxy-config routes|clusters|endpoints|all PROXY [-o json] [--server URL]\n"
		"       sinew proxy-config routes|clusters|endpoints|all --admin ADDR:PORT [-o json]\n"
		"\n"
		"Shows the configuration one proxy runs, read from its admin port's /config_dump:\n"
		"  routes      per virtual host: each rule, its matches, destinations (subset and\n"
		"              weight), timeout, retries, fault; a gateway's ports first, as\n"
		"              gateway:PORT HOST, and gateway:PORT sni NAME for TLS passthrough\n"
		"              (with -o json: in all's gateway_listeners)\n"
		"  clusters    each cluster: service, port, subset, load-balancing policy, endpoints\n"
		"  endpoints   each endpoint: cluster, address, workload, version\n"
		"  all         the whole dump (JSON)\n"
		"PROXY is a proxy id as `sinew proxy-status` lists it (a unique prefix will do);\n"
		"sinewd tells where its admin port is.\n"
		"\n"
		"  --admin ADDR:PORT   read this admin port directly (no sinewd needed)\n"
		"  -o json             the matching part of /config_dump as JSON\n"
		"  --server URL        sinewd's API (default $SINEW_SERVER, else " SN_CLI_DEFAULT_SERVER ")\n"
		"\n"
		"Exit status: 0, 1 proxy not found or unreachable, 2 usage error.\n");
}

/* Appends sep (unless buf is empty) and s, truncating to fit. */
static void append(char *buf, size_t size, const char *sep, const char *s)
{
	size_t l = strlen(buf);
	const char *parts[2] = { l ? sep : "", s };
	for (int i = 0; i < 2; i++) {
		size_t n = strlen(parts[i]);
		if (l + 1 >= size)
			return;
		if (n > size - l - 1)
			n = size - l - 1;
		memcpy(buf + l, parts[i], n);
		l += n;
		buf[l] = '\0';
	}
}

/* {"prefix":"/x"} or {"exact":"v","ignore_case":true} -> "prefix /x" */
static void str_match(struct fy_node *m, char *buf, size_t size)
{
	void *iter = NULL;
	struct fy_node_pair *p;
	buf[0] = '\0';
	while (m != NULL && fy_node_is_mapping(m) && (p = fy_node_mapping_iterate(m, &iter)) != NULL) {
		struct fy_node *k = fy_node_pair_key(p), *v = fy_node_pair_value(p);
		if (k == NULL || v == NULL || !fy_node_is_scalar(k) || !fy_node_is_scalar(v))
			continue;
		const char *ks = fy_node_get_scalar0(k), *vs = fy_node_get_scalar0(v);
		if (!strcmp(ks, "ignore_case"))
			append(buf, size, " ", "(ignore case)");
		else if (!strcmp(ks, "present"))
			append(buf, size, " ", "present");
		else {
			char one[600];
			snprintf(one, sizeof(one), "%s %s", ks, vs);
			append(buf, size, " ", one);
		}
	}
}

static void match_summary(struct fy_node *matches, char *buf, size_t size)
{
	buf[0] = '\0';
	for (size_t i = 0; i < sn_cli_json_len(matches); i++) {
		struct fy_node *m = sn_cli_json_at(matches, i);
		char one[1200] = "", part[800];
		void *iter = NULL;
		struct fy_node_pair *p;
		while ((p = fy_node_mapping_iterate(m, &iter)) != NULL) {
			struct fy_node *k = fy_node_pair_key(p), *v = fy_node_pair_value(p);
			const char *ks = k ? fy_node_get_scalar0(k) : NULL;
			if (ks == NULL || v == NULL || !strcmp(ks, "name"))
				continue;
			if (!strcmp(ks, "port")) {
				snprintf(part, sizeof(part), "port %s", fy_node_is_scalar(v) ? fy_node_get_scalar0(v) : "?");
				append(one, sizeof(one), ", ", part);
			} else if (!strcmp(ks, "headers") || !strcmp(ks, "without_headers") || !strcmp(ks, "query_params")) {
				void *it2 = NULL;
				struct fy_node_pair *q;
				while ((q = fy_node_mapping_iterate(v, &it2)) != NULL) {
					char sm[600];
					struct fy_node *qk = fy_node_pair_key(q);
					str_match(sn_cli_json_get(fy_node_pair_value(q), "match"), sm, sizeof(sm));
					snprintf(part, sizeof(part), "%s %s %s",
						 !strcmp(ks, "headers") ? "header" : !strcmp(ks, "query_params") ? "query" : "without header",
						 qk ? fy_node_get_scalar0(qk) : "?", sm);
					append(one, sizeof(one), ", ", part);
				}
			} else {
				char sm[600];
				str_match(v, sm, sizeof(sm));
				snprintf(part, sizeof(part), "%s %s", ks, sm);
				append(one, sizeof(one), ", ", part);
			}
		}
		append(buf, size, " | ", one[0] ? one : "*");
	}
	if (!buf[0])
		snprintf(buf, size, "*");
}

static struct fy_node *cluster_by_name(struct fy_node *clusters, const char *name)
{
	for (size_t i = 0; i < sn_cli_json_len(clusters); i++) {
		struct fy_node *c = sn_cli_json_at(clusters, i);
		if (name != NULL && strcmp(sn_cli_json_str_or(c, "name", ""), name) == 0)
			return c;
	}
	return NULL;
}

/* One row per rule of each vhost; a gateway listener's (gw_port != 0) are
 * named "gateway:PORT HOST". */
static void route_rows(struct sn_cli_table *t, struct fy_node *vhosts, struct fy_node *clusters, long long gw_port)
{
	for (size_t i = 0; i < sn_cli_json_len(vhosts); i++) {
		struct fy_node *vh = sn_cli_json_at(vhosts, i);
		char host[400];
		long long port = sn_cli_json_int(vh, "port", 0);
		if (gw_port)
			snprintf(host, sizeof(host), "gateway:%lld %s", gw_port, sn_cli_json_str_or(vh, "host", "?"));
		else if (port)
			snprintf(host, sizeof(host), "%s:%lld", sn_cli_json_str_or(vh, "host", "?"), port);
		else
			snprintf(host, sizeof(host), "%s", sn_cli_json_str_or(vh, "host", "?"));
		struct fy_node *routes = sn_cli_json_get(vh, "routes");
		for (size_t r = 0; r < sn_cli_json_len(routes); r++) {
			struct fy_node *rt = sn_cli_json_at(routes, r);
			char match[1600], dests[1600] = "", timeout[32], retries[300], fault[200] = "";
			match_summary(sn_cli_json_get(rt, "match"), match, sizeof(match));
			struct fy_node *ds = sn_cli_json_get(rt, "destinations");
			long long total = sn_cli_json_int(rt, "total_weight", 0);
			for (size_t k = 0; k < sn_cli_json_len(ds); k++) {
				struct fy_node *d = sn_cli_json_at(ds, k);
				struct fy_node *c = cluster_by_name(clusters, sn_cli_json_str(d, "cluster"));
				const char *svc = sn_cli_json_str_or(c, "service", sn_cli_json_str_or(d, "cluster", "?"));
				const char *subset = sn_cli_json_str(c, "subset");
				char one[600];
				long long w = sn_cli_json_int(d, "weight", 0);
				size_t dot = strcspn(svc, ".");
				snprintf(one, sizeof(one), "%.*s%s%s", (int)dot, svc, subset ? "/" : "", subset ? subset : "");
				if (sn_cli_json_len(ds) > 1 || (total && w != total)) {
					size_t l = strlen(one);
					snprintf(one + l, sizeof(one) - l, " %lld%%", total ? w * 100 / total : w);
				}
				append(dests, sizeof(dests), ", ", one);
			}
			struct fy_node *direct = sn_cli_json_get(rt, "direct_response");
			if (direct != NULL)
				snprintf(dests, sizeof(dests), "direct %s", sn_cli_json_str_or(direct, "status", "?"));
			long long to = sn_cli_json_int(rt, "timeout_ms", 0);
			if (to)
				snprintf(timeout, sizeof(timeout), "%lldms", to);
			else
				snprintf(timeout, sizeof(timeout), "none");
			struct fy_node *re = sn_cli_json_get(rt, "retries");
			char on[200] = "";
			struct fy_node *ron = sn_cli_json_get(re, "retry_on");
			for (size_t k = 0; k < sn_cli_json_len(ron); k++) {
				struct fy_node *it = sn_cli_json_at(ron, k);
				append(on, sizeof(on), ",", it && fy_node_is_scalar(it) ? fy_node_get_scalar0(it) : "?");
			}
			long long att = sn_cli_json_int(re, "attempts", 0), ptt = sn_cli_json_int(re, "per_try_timeout_ms", 0);
			if (att == 0)
				snprintf(retries, sizeof(retries), "none");
			else if (ptt)
				snprintf(retries, sizeof(retries), "%lld x %lldms on %s", att, ptt, on[0] ? on : "-");
			else
				snprintf(retries, sizeof(retries), "%lld on %s", att, on[0] ? on : "-");
			struct fy_node *fl = sn_cli_json_get(rt, "fault");
			if (fl != NULL) {
				char one[100];
				if (sn_cli_json_int(fl, "delay_ms", 0)) {
					snprintf(one, sizeof(one), "delay %lldms %s%%", sn_cli_json_int(fl, "delay_ms", 0),
						 sn_cli_json_str_or(fl, "delay_percent", "?"));
					append(fault, sizeof(fault), "; ", one);
				}
				if (sn_cli_json_int(fl, "abort_status", 0)) {
					snprintf(one, sizeof(one), "abort %lld %s%%", sn_cli_json_int(fl, "abort_status", 0),
						 sn_cli_json_str_or(fl, "abort_percent", "?"));
					append(fault, sizeof(fault), "; ", one);
				}
			}
			const char *cells[] = { host, sn_cli_json_str(rt, "name"), match, dests, timeout, retries, fault,
						sn_cli_json_str(rt, "origin") };
			sn_cli_table_row(t, cells);
		}
	}
}

/* A route of bytes (a gateway's TLS passthrough, a sidecar's tcp[]):
 * its weighted clusters. */
static void l4_row(struct sn_cli_table *t, const char *host, const char *rule, struct fy_node *r)
{
	struct fy_node *ds = sn_cli_json_get(r, "destinations");
	char dests[600] = "";
	for (size_t j = 0; j < sn_cli_json_len(ds); j++) {
		struct fy_node *d = sn_cli_json_at(ds, j);
		char one[300];
		snprintf(one, sizeof(one), "%s (%lld)", sn_cli_json_str_or(d, "cluster", "?"), sn_cli_json_int(d, "weight", 0));
		append(dests, sizeof(dests), ", ", one);
	}
	const char *row[8] = { host, rule, "-", dests, "-", "-", "-", sn_cli_json_str_or(r, "origin", "?") };
	sn_cli_table_row(t, row);
}

static void print_routes(struct fy_node *root)
{
	struct fy_node *clusters = sn_cli_json_get(root, "clusters");
	struct fy_node *gw = sn_cli_json_get(root, "gateway_listeners");
	struct sn_cli_table t;
	static const char *const hdr[] = { "HOST", "RULE", "MATCH", "DESTINATIONS", "TIMEOUT", "RETRIES", "FAULT",
					   "ORIGIN" };
	sn_cli_table_init(&t, 8);
	sn_cli_table_row(&t, hdr);
	for (size_t i = 0; i < sn_cli_json_len(gw); i++) {
		struct fy_node *l = sn_cli_json_at(gw, i);
		route_rows(&t, sn_cli_json_get(l, "vhosts"), clusters, sn_cli_json_int(l, "port", 0));
		/* TLS passthrough: one row per server name */
		struct fy_node *sni = sn_cli_json_get(l, "sni_routes");
		for (size_t k = 0; k < sn_cli_json_len(sni); k++) {
			struct fy_node *r = sn_cli_json_at(sni, k);
			char host[400];
			snprintf(host, sizeof(host), "gateway:%lld sni %s", sn_cli_json_int(l, "port", 0),
				 sn_cli_json_str_or(r, "sni", "?"));
			l4_row(&t, host, "tls passthrough", r);
		}
		struct fy_node *tcp = sn_cli_json_get(l, "tcp_route");
		if (tcp != NULL) {
			char host[64];
			snprintf(host, sizeof(host), "gateway:%lld", sn_cli_json_int(l, "port", 0));
			l4_row(&t, host, "tcp", tcp);
		}
	}
	route_rows(&t, sn_cli_json_get(root, "vhosts"), clusters, 0);
	/* opaque TCP routed by a VirtualService's tcp[] and tls[] */
	struct fy_node *vhs = sn_cli_json_get(root, "vhosts");
	for (size_t i = 0; i < sn_cli_json_len(vhs); i++) {
		struct fy_node *vh = sn_cli_json_at(vhs, i), *r = sn_cli_json_get(vh, "tcp_route");
		struct fy_node *tls = sn_cli_json_get(vh, "tls_routes");
		char host[400];
		snprintf(host, sizeof(host), "%s:%lld", sn_cli_json_str_or(vh, "host", "?"), sn_cli_json_int(vh, "port", 0));
		if (r != NULL)
			l4_row(&t, host, "tcp", r);
		for (size_t k = 0; k < sn_cli_json_len(tls); k++) {
			struct fy_node *tr = sn_cli_json_at(tls, k);
			char rule[300];
			snprintf(rule, sizeof(rule), "tls sni %s", sn_cli_json_str_or(tr, "sni", "?"));
			l4_row(&t, host, rule, tr);
		}
	}
	sn_cli_table_print(&t, stdout);
	sn_cli_table_free(&t);
	for (size_t i = 0; i < sn_cli_json_len(gw); i++) {
		struct fy_node *l = sn_cli_json_at(gw, i);
		if (!strcmp(sn_cli_json_str_or(l, "https_redirect", ""), "true"))
			printf("gateway:%lld redirects every request to https (%s)\n", sn_cli_json_int(l, "port", 0),
			       sn_cli_json_str_or(l, "origin", "?"));
	}
}

static void print_clusters(struct fy_node *root)
{
	struct fy_node *clusters = sn_cli_json_get(root, "clusters");
	struct sn_cli_table t;
	static const char *const hdr[] = { "CLUSTER", "SERVICE", "PORT", "SUBSET", "LB", "ENDPOINTS",
					   "CONNECT TIMEOUT" };
	sn_cli_table_init(&t, 7);
	sn_cli_table_row(&t, hdr);
	for (size_t i = 0; i < sn_cli_json_len(clusters); i++) {
		struct fy_node *c = sn_cli_json_at(clusters, i);
		char n[24], ct[32];
		snprintf(n, sizeof(n), "%zu", sn_cli_json_len(sn_cli_json_get(c, "endpoints")));
		snprintf(ct, sizeof(ct), "%lldms", sn_cli_json_int(c, "connect_timeout_ms", 0));
		const char *cells[] = { sn_cli_json_str(c, "name"), sn_cli_json_str(c, "service"), sn_cli_json_str(c, "port"),
					sn_cli_json_str(c, "subset"), sn_cli_json_str(c, "lb"), n, ct };
		sn_cli_table_row(&t, cells);
	}
	sn_cli_table_print(&t, stdout);
	sn_cli_table_free(&t);
}

static void print_endpoints(struct fy_node *root)
{
	struct fy_node *clusters = sn_cli_json_get(root, "clusters");
	struct sn_cli_table t;
	static const char *const hdr[] = { "CLUSTER", "ADDRESS", "WORKLOAD", "VERSION", "WEIGHT", "STATUS" };
	struct fy_node *out = sn_cli_json_get(root, "outlier_ejections");
	sn_cli_table_init(&t, 6);
	sn_cli_table_row(&t, hdr);
	for (size_t i = 0; i < sn_cli_json_len(clusters); i++) {
		struct fy_node *c = sn_cli_json_at(clusters, i);
		struct fy_node *eps = sn_cli_json_get(c, "endpoints");
		for (size_t e = 0; e < sn_cli_json_len(eps); e++) {
			struct fy_node *ep = sn_cli_json_at(eps, e);
			char status[64] = "healthy";
			const char *cn = sn_cli_json_str(c, "name"), *addr = sn_cli_json_str(ep, "address");
			for (size_t k = 0; k < sn_cli_json_len(out); k++) {
				struct fy_node *o = sn_cli_json_at(out, k);
				const char *oc = sn_cli_json_str(o, "cluster"), *oa = sn_cli_json_str(o, "address");
				if (cn && addr && oc && oa && !strcmp(cn, oc) && !strcmp(addr, oa))
					snprintf(status, sizeof(status), "ejected (%s ms left)",
						 sn_cli_json_str_or(o, "remaining_ms", "?"));
			}
			const char *cells[] = { cn, addr, sn_cli_json_str(ep, "workload"), sn_cli_json_str(ep, "version"),
						sn_cli_json_str(ep, "weight"), status };
			sn_cli_table_row(&t, cells);
		}
	}
	sn_cli_table_print(&t, stdout);
	sn_cli_table_free(&t);
}

static void print_json_part(struct fy_node *root, const char *key)
{
	struct fy_node *n = key ? sn_cli_json_get(root, key) : root;
	char *s = n ? fy_emit_node_to_string(n, FYECF_MODE_JSON_ONELINE) : NULL;
	printf("%s\n", s ? s : "null");
	free(s);
}

int sn_cli_proxy_config(int argc, char **argv)
{
	enum { O_SERVER = 256, O_ADMIN };
	static const struct option opts[] = {
		{ "admin", required_argument, NULL, O_ADMIN },
		{ "output", required_argument, NULL, 'o' },
		{ "server", required_argument, NULL, O_SERVER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *admin_flag = NULL;
	int json = 0, o;
	enum what what;

	optind = 0;
	while ((o = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (o) {
		case O_ADMIN: admin_flag = optarg; break;
		case 'o':
			if (strcmp(optarg, "json") != 0) {
				fprintf(stderr, "sinew proxy-config: -o %s: only json (the default is a table)\n", optarg);
				return 2;
			}
			json = 1;
			break;
		case O_SERVER: server = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "sinew proxy-config: which part? routes, clusters, endpoints or all (see --help)\n");
		return 2;
	}
	const char *w = argv[optind++];
	if (!strcmp(w, "routes") || !strcmp(w, "route"))
		what = W_ROUTES;
	else if (!strcmp(w, "clusters") || !strcmp(w, "cluster"))
		what = W_CLUSTERS;
	else if (!strcmp(w, "endpoints") || !strcmp(w, "endpoint"))
		what = W_ENDPOINTS;
	else if (!strcmp(w, "all"))
		what = W_ALL;
	else {
		fprintf(stderr, "sinew proxy-config: \"%s\": want routes, clusters, endpoints or all\n", w);
		return 2;
	}
	const char *proxy = optind < argc ? argv[optind++] : NULL;
	if (optind < argc || (proxy == NULL) == (admin_flag == NULL)) {
		fprintf(stderr, "sinew proxy-config: name one PROXY (see sinew proxy-status) or give --admin ADDR:PORT\n");
		return 2;
	}
	char admin[300], base[320], err[700];
	if (admin_flag != NULL)
		snprintf(admin, sizeof(admin), "%s", admin_flag);
	else if (sn_cli_find_admin(sn_cli_server(server), proxy, admin, sizeof(admin), NULL, 0) != 0)
		return 1;
	snprintf(base, sizeof(base), "%s%s", strncmp(admin, "http://", 7) ? "http://" : "", admin);
	struct sn_http_response r;
	if (sn_cli_http(base, "GET", "/config_dump", NULL, NULL, 0, 10000, "the proxy's admin port",
			"is the proxy running, and is this its --admin address?", &r, err, sizeof(err)) != 0) {
		fprintf(stderr, "sinew: %s\n", err);
		return 1;
	}
	if (r.status != 200) {
		fprintf(stderr, "sinew: %s/config_dump answered %d: %.200s\n", base, r.status, r.body);
		sn_http_response_free(&r);
		return 1;
	}
	struct fy_document *doc = sn_cli_json_parse(r.body, r.len);
	struct fy_node *root = sn_cli_json_root(doc);
	if (root == NULL) {
		fprintf(stderr, "sinew: %s/config_dump is not JSON\n", base);
		sn_http_response_free(&r);
		return 1;
	}
	if (sn_cli_json_get(root, "clusters") == NULL && !json && what != W_ALL)
		printf("The proxy has no configuration yet (version %s).\n", sn_cli_json_str_or(root, "version", "0"));
	else if (what == W_ALL)
		fwrite(r.body, 1, r.len, stdout);
	else if (json)
		print_json_part(root, what == W_ROUTES ? "vhosts" : "clusters");
	else if (what == W_ROUTES)
		print_routes(root);
	else if (what == W_CLUSTERS)
		print_clusters(root);
	else
		print_endpoints(root);
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
	return 0;
}
