/* sinew get KIND [NAME]: resources from sinewd's store (and the registry's
 * WorkloadEntries) as a table, the stored YAML texts, or JSON. KIND takes
 * the names sn_kind_lookup takes (singular, plural, short), or "all". */
#include <getopt.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/cli.h"
#include "sinew/config.h"

enum output { OUT_TABLE, OUT_WIDE, OUT_YAML, OUT_JSON };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew get KIND [NAME] [-n NS | -A] [-o yaml|json|wide] [--server URL]\n"
		"\n"
		"Lists resources stored in sinewd, with their status (accepted, warnings, errors).\n"
		"KIND is a singular, plural or short name, or \"all\":\n"
		"  service (services, svc)              workloadentry (workloadentries, we)\n"
		"  virtualservice (virtualservices, vs) destinationrule (destinationrules, dr)\n"
		"\n"
		"  -n, --namespace NS     default \"default\"\n"
		"  -A, --all-namespaces   every namespace\n"
		"  -o, --output FORMAT    yaml (the texts as applied, --- separated), json, wide\n"
		"  --server URL           sinewd's API (default $SINEW_SERVER, else " SN_CLI_DEFAULT_SERVER ")\n"
		"\n"
		"Exit status: 0, 1 not found or sinewd failed, 2 usage error.\n");
}

/* A node of a resource's YAML by path ("/spec/hosts"). */
static struct fy_node *at(struct fy_document *doc, const char *path)
{
	struct fy_node *root = sn_cli_json_root(doc);
	return root ? fy_node_by_path(root, path, FY_NT, FYNWF_DONT_FOLLOW) : NULL;
}

static void append(char *buf, size_t size, const char *sep, const char *s)
{
	size_t l = strlen(buf);
	if (l + 1 >= size || s == NULL)
		return;
	snprintf(buf + l, size - l, "%s%s", l ? sep : "", s);
}

/* "a,b,c" from a sequence of scalars, or of mappings' key. */
static void join_seq(struct fy_node *seq, const char *key, char *buf, size_t size)
{
	for (size_t i = 0; i < sn_cli_json_len(seq); i++) {
		struct fy_node *it = sn_cli_json_at(seq, i);
		if (key != NULL)
			append(buf, size, ",", sn_cli_json_str(it, key));
		else if (fy_node_is_scalar(it))
			append(buf, size, ",", fy_node_get_scalar0(it));
	}
}

static void join_map(struct fy_node *map, char *buf, size_t size)
{
	void *iter = NULL;
	struct fy_node_pair *p;
	if (map == NULL || !fy_node_is_mapping(map))
		return;
	while ((p = fy_node_mapping_iterate(map, &iter)) != NULL) {
		struct fy_node *k = fy_node_pair_key(p), *v = fy_node_pair_value(p);
		if (k == NULL || v == NULL || !fy_node_is_scalar(k) || !fy_node_is_scalar(v))
			continue;
		char kv[300];
		snprintf(kv, sizeof(kv), "%s=%s", fy_node_get_scalar0(k), fy_node_get_scalar0(v));
		append(buf, size, ",", kv);
	}
}

/* The kind-specific column (HOSTS, HOST, PORTS, ADDRESS...) from the YAML. */
static void detail(const char *kind, const char *yaml, char *a, char *b, size_t size)
{
	a[0] = b[0] = '\0';
	struct fy_document *doc = yaml ? sn_cli_json_parse(yaml, strlen(yaml)) : NULL;
	if (doc == NULL)
		return;
	if (!strcmp(kind, "VirtualService")) {
		join_seq(at(doc, "/spec/hosts"), NULL, a, size);
		join_seq(at(doc, "/spec/gateways"), NULL, b, size);
	} else if (!strcmp(kind, "DestinationRule")) {
		struct fy_node *h = at(doc, "/spec/host");
		if (h && fy_node_is_scalar(h))
			snprintf(a, size, "%s", fy_node_get_scalar0(h));
		join_seq(at(doc, "/spec/subsets"), "name", b, size);
	} else if (!strcmp(kind, "Service")) {
		struct fy_node *ports = at(doc, "/spec/ports");
		for (size_t i = 0; i < sn_cli_json_len(ports); i++) {
			struct fy_node *p = sn_cli_json_at(ports, i);
			char one[128];
			const char *nm = sn_cli_json_str(p, "name");
			snprintf(one, sizeof(one), "%s%s%s", sn_cli_json_str_or(p, "port", "?"), nm ? "/" : "", nm ? nm : "");
			append(a, size, ",", one);
		}
		join_map(at(doc, "/spec/selector"), b, size);
	} else if (!strcmp(kind, "ServiceEntry")) {
		join_seq(at(doc, "/spec/hosts"), NULL, a, size);
		struct fy_node *r = at(doc, "/spec/resolution");
		snprintf(b, size, "%s", r && fy_node_is_scalar(r) ? fy_node_get_scalar0(r) : "NONE");
	} else if (!strcmp(kind, "Gateway")) {
		struct fy_node *servers = at(doc, "/spec/servers");
		for (size_t i = 0; i < sn_cli_json_len(servers); i++) {
			struct fy_node *sv = sn_cli_json_at(servers, i);
			struct fy_node *port = sn_cli_json_get(sv, "port");
			char one[160], hosts[300] = "";
			join_seq(sn_cli_json_get(sv, "hosts"), NULL, hosts, sizeof(hosts));
			snprintf(one, sizeof(one), "%s/%s %s", sn_cli_json_str_or(port, "number", "?"),
				 sn_cli_json_str_or(port, "protocol", "?"), hosts);
			append(a, size, ",", one);
		}
		join_map(at(doc, "/spec/selector"), b, size);
	} else if (!strcmp(kind, "Gateway.gateway.networking.k8s.io")) {
		struct fy_node *ls = at(doc, "/spec/listeners");
		for (size_t i = 0; i < sn_cli_json_len(ls); i++) {
			struct fy_node *l = sn_cli_json_at(ls, i);
			char one[360];
			snprintf(one, sizeof(one), "%s:%s/%s %s", sn_cli_json_str_or(l, "name", "?"),
				 sn_cli_json_str_or(l, "port", "?"), sn_cli_json_str_or(l, "protocol", "?"),
				 sn_cli_json_str_or(l, "hostname", "*"));
			append(a, size, ",", one);
		}
		struct fy_node *cls = at(doc, "/spec/gatewayClassName");
		snprintf(b, size, "%s", cls && fy_node_is_scalar(cls) ? fy_node_get_scalar0(cls) : "?");
	} else if (!strcmp(kind, "HTTPRoute") || !strcmp(kind, "GRPCRoute") || !strcmp(kind, "TCPRoute") ||
		   !strcmp(kind, "TLSRoute")) {
		struct fy_node *ps = at(doc, "/spec/parentRefs");
		for (size_t i = 0; i < sn_cli_json_len(ps); i++) {
			struct fy_node *p = sn_cli_json_at(ps, i);
			const char *sec = sn_cli_json_str(p, "sectionName"), *port = sn_cli_json_str(p, "port");
			char one[360];
			snprintf(one, sizeof(one), "%s/%s%s%s%s%s", sn_cli_json_str_or(p, "kind", "Gateway"),
				 sn_cli_json_str_or(p, "name", "?"), sec ? "#" : "", sec ? sec : "", port ? ":" : "",
				 port ? port : "");
			append(a, size, ",", one);
		}
		join_seq(at(doc, "/spec/hostnames"), NULL, b, size);
	} else if (!strcmp(kind, "WorkloadEntry")) {
		struct fy_node *ad = at(doc, "/spec/address");
		if (ad && fy_node_is_scalar(ad))
			snprintf(a, size, "%s", fy_node_get_scalar0(ad));
		struct fy_node *l = at(doc, "/spec/labels");
		join_map(l ? l : at(doc, "/metadata/labels"), b, size);
	}
	sn_cli_json_free(doc);
}

static const char *detail_header(const char *kind, int second)
{
	if (!strcmp(kind, "VirtualService"))
		return second ? "GATEWAYS" : "HOSTS";
	if (!strcmp(kind, "DestinationRule"))
		return second ? "SUBSETS" : "HOST";
	if (!strcmp(kind, "Service"))
		return second ? "SELECTOR" : "PORTS";
	if (!strcmp(kind, "WorkloadEntry"))
		return second ? "LABELS" : "ADDRESS";
	if (!strcmp(kind, "ServiceEntry"))
		return second ? "RESOLUTION" : "HOSTS";
	if (!strcmp(kind, "Gateway"))
		return second ? "SELECTOR" : "SERVERS";
	if (!strcmp(kind, "Gateway.gateway.networking.k8s.io"))
		return second ? "CLASS" : "LISTENERS";
	if (!strcmp(kind, "HTTPRoute") || !strcmp(kind, "GRPCRoute") || !strcmp(kind, "TCPRoute") ||
	    !strcmp(kind, "TLSRoute"))
		return second ? "HOSTNAMES" : "PARENTS";
	return second ? "DETAIL2" : "DETAIL";
}

static void status_text(struct fy_node *it, char *buf, size_t size, char *proxies, size_t psize)
{
	struct fy_node *st = sn_cli_json_get(it, "status");
	size_t nw = sn_cli_json_len(sn_cli_json_get(st, "warnings"));
	size_t ne = sn_cli_json_len(sn_cli_json_get(st, "errors"));
	if (!sn_cli_json_bool(st, "accepted") || ne)
		snprintf(buf, size, "Error");
	else if (nw)
		snprintf(buf, size, "Accepted (%zu warning%s)", nw, nw == 1 ? "" : "s");
	else
		snprintf(buf, size, "Accepted");
	struct fy_node *px = sn_cli_json_get(st, "proxies");
	proxies[0] = '\0';
	if (px != NULL) {
		size_t nn = sn_cli_json_len(sn_cli_json_get(px, "nack"));
		int l = snprintf(proxies, psize, "%lld synced, %lld pending", sn_cli_json_int(px, "synced", 0),
				 sn_cli_json_int(px, "pending", 0));
		if (nn && l > 0 && (size_t)l < psize)
			snprintf(proxies + l, psize - (size_t)l, ", %zu NACK", nn);
	}
}

static int print_table(struct fy_node *list, int all_kinds, enum output out, const char *kind_filter)
{
	size_t n = sn_cli_json_len(list);
	int wide = out == OUT_WIDE;
	struct sn_cli_table t;
	const char *hdr[12];
	size_t nc = 0;

	hdr[nc++] = "NAMESPACE";
	if (all_kinds)
		hdr[nc++] = "KIND";
	hdr[nc++] = "NAME";
	if (!all_kinds) {
		hdr[nc++] = detail_header(kind_filter, 0);
		if (wide)
			hdr[nc++] = detail_header(kind_filter, 1);
	}
	hdr[nc++] = "RV";
	if (wide)
		hdr[nc++] = "GEN";
	hdr[nc++] = "STATUS";
	if (wide) {
		hdr[nc++] = "PROXIES";
		hdr[nc++] = "SOURCE";
	}
	sn_cli_table_init(&t, nc);
	sn_cli_table_row(&t, hdr);
	for (size_t i = 0; i < n; i++) {
		struct fy_node *it = sn_cli_json_at(list, i);
		const char *kind = sn_cli_json_str_or(it, "kind", "");
		const char *cells[12];
		char d1[512], d2[512], status[64], proxies[96], gen[24], source[600], res[160];
		size_t c = 0;
		detail(kind, sn_cli_json_str(it, "yaml"), d1, d2, sizeof(d1));
		status_text(it, status, sizeof(status), proxies, sizeof(proxies));
		snprintf(gen, sizeof(gen), "%lld", sn_cli_json_int(it, "generation", 0));
		snprintf(source, sizeof(source), "%s:%lld", sn_cli_json_str_or(it, "source", "-"),
			 sn_cli_json_int(it, "line", 0));
		if (sn_cli_json_bool(it, "registered"))
			snprintf(source, sizeof(source), "registry (proxy %s)", sn_cli_json_str_or(it, "proxy", "?"));
		sn_cli_kind_resource(kind, res, sizeof(res));
		cells[c++] = sn_cli_json_str(it, "namespace");
		if (all_kinds)
			cells[c++] = res;
		cells[c++] = sn_cli_json_str(it, "name");
		if (!all_kinds) {
			cells[c++] = d1;
			if (wide)
				cells[c++] = d2;
		}
		cells[c++] = sn_cli_json_str(it, "resourceVersion");
		if (wide)
			cells[c++] = gen;
		cells[c++] = status;
		if (wide) {
			cells[c++] = proxies;
			cells[c++] = source;
		}
		sn_cli_table_row(&t, cells);
	}
	sn_cli_table_print(&t, stdout);
	sn_cli_table_free(&t);
	return 0;
}

int sn_cli_get(int argc, char **argv)
{
	enum { O_SERVER = 256 };
	static const struct option opts[] = {
		{ "namespace", required_argument, NULL, 'n' },
		{ "all-namespaces", no_argument, NULL, 'A' },
		{ "output", required_argument, NULL, 'o' },
		{ "server", required_argument, NULL, O_SERVER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *ns = NULL, *kind_arg = NULL, *name = NULL;
	int all_ns = 0, o, rc = 0;
	enum output out = OUT_TABLE;

	optind = 0;
	while ((o = getopt_long(argc, argv, "n:Ao:h", opts, NULL)) != -1) {
		switch (o) {
		case 'n': ns = optarg; break;
		case 'A': all_ns = 1; break;
		case 'o':
			if (!strcmp(optarg, "yaml"))
				out = OUT_YAML;
			else if (!strcmp(optarg, "json"))
				out = OUT_JSON;
			else if (!strcmp(optarg, "wide"))
				out = OUT_WIDE;
			else {
				fprintf(stderr, "sinew get: -o %s: want yaml, json or wide\n", optarg);
				return 2;
			}
			break;
		case O_SERVER: server = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc)
		kind_arg = argv[optind++];
	if (optind < argc)
		name = argv[optind++];
	if (kind_arg == NULL || optind < argc) {
		if (kind_arg == NULL)
			fprintf(stderr, "sinew get: which kind? e.g. sinew get virtualservices (see sinew get --help)\n");
		else
			fprintf(stderr, "sinew get: unexpected argument \"%s\"; one KIND and at most one NAME\n",
				argv[optind]);
		return 2;
	}
	int all_kinds = !strcmp(kind_arg, "all");
	int kind = all_kinds ? -1 : sn_kind_lookup(kind_arg);
	if (!all_kinds && kind < 0) {
		fprintf(stderr, "sinew get: unknown kind \"%s\"; kinds: service (svc), workloadentry (we), "
				"virtualservice (vs), destinationrule (dr), or all\n", kind_arg);
		return 2;
	}
	if (all_ns && ns != NULL) {
		fprintf(stderr, "sinew get: -n and -A do not go together\n");
		return 2;
	}
	if (name != NULL && (all_kinds || all_ns)) {
		fprintf(stderr, "sinew get: a NAME needs one kind and one namespace\n");
		return 2;
	}
	if (ns == NULL && !all_ns)
		ns = "default";
	server = sn_cli_server(server);

	char path[1200], e_ns[400], e_name[400];
	sn_cli_url_escape(ns ? ns : "", e_ns, sizeof(e_ns));
	if (name != NULL) {
		sn_cli_url_escape(name, e_name, sizeof(e_name));
		snprintf(path, sizeof(path), "/api/v1/resources/%s/%s/%s", sn_kind_plural((enum sn_resource_kind)kind),
			 e_ns, e_name);
	} else {
		snprintf(path, sizeof(path), "/api/v1/resources%s%s%s%s%s", all_kinds ? "" : "?kind=",
			 all_kinds ? "" : sn_kind_plural((enum sn_resource_kind)kind),
			 all_ns ? "" : (all_kinds ? "?namespace=" : "&namespace="), all_ns ? "" : e_ns, "");
	}
	struct sn_http_response r;
	if (sn_cli_api(server, "GET", path, NULL, 0, &r) != 0)
		return 1;
	if (r.status != 200) {
		sn_cli_api_error(&r);
		sn_http_response_free(&r);
		return 1;
	}
	if (out == OUT_JSON) {
		fwrite(r.body, 1, r.len, stdout);
		if (r.len && r.body[r.len - 1] != '\n')
			putchar('\n');
		sn_http_response_free(&r);
		return 0;
	}
	struct fy_document *doc = sn_cli_json_parse(r.body, r.len);
	struct fy_node *root = sn_cli_json_root(doc);
	if (root == NULL) {
		fprintf(stderr, "sinew: sinewd's answer to GET %s is not JSON\n", path);
		sn_http_response_free(&r);
		return 1;
	}
	/* one resource: make it a list of one, so both print the same way */
	struct fy_document *wrap = NULL;
	if (fy_node_is_mapping(root)) {
		wrap = fy_document_create(NULL);
		struct fy_node *seq = wrap ? fy_node_create_sequence(wrap) : NULL;
		struct fy_node *copy = seq ? fy_node_copy(wrap, root) : NULL;
		if (copy == NULL || fy_node_sequence_append(seq, copy) != 0 || fy_document_set_root(wrap, seq) != 0) {
			fprintf(stderr, "sinew: out of memory\n");
			rc = 1;
			goto done;
		}
		root = seq;
	}
	size_t n = sn_cli_json_len(root);
	if (n == 0) {
		if (all_ns)
			fprintf(stderr, "No resources found.\n");
		else
			fprintf(stderr, "No resources found in %s namespace.\n", ns);
		goto done;
	}
	if (out == OUT_YAML) {
		for (size_t i = 0; i < n; i++) {
			const char *y = sn_cli_json_str(sn_cli_json_at(root, i), "yaml");
			if (y == NULL)
				continue;
			if (i)
				fputs("---\n", stdout);
			while (*y == '\n')
				y++;
			fputs(y, stdout);
			size_t l = strlen(y);
			if (l == 0 || y[l - 1] != '\n')
				putchar('\n');
		}
	} else {
		rc = print_table(root, all_kinds, out, all_kinds ? "" : sn_resource_kind_str((enum sn_resource_kind)kind));
	}
done:
	if (wrap != NULL)
		fy_document_destroy(wrap);
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
	return rc;
}
