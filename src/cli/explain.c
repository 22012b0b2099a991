/* sinew explain: what the mesh would do with one request, computed by the
 * code the proxy runs. The resources (from sinewd, or from files) are
 * translated for the calling workload's identity with sn_config_translate,
 * the host is looked up with sn_snapshot_find_vhost and the rule chosen
 * with sn_router_match, exactly as sinew-proxy's exchange does (ex_route in
 * src/proxy/exchange.c); what a proxy would answer itself (no_route,
 * direct_response) is reported with the same reasons. */
#include <getopt.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/cli.h"
#include "sinew/config.h"
#include "sinew/control.h"
#include "../proxy/proxy.h"
#include "../proxy/exchange.h"

#define MAX_HEADERS 64

struct explain {
	const char *from;             /* workload name, or NULL */
	const char *ns;
	const char *method;
	char authority[512];
	char path[4096];              /* without the query */
	char query[4096];
	struct sn_h1_header headers[MAX_HEADERS + 1];
	size_t n_headers;
	int json;
	/* identity */
	struct sn_labels labels;
	struct sn_label label_store[64];
	char service[256];
	char sa[256];
	char workload[256];
	char ns_buf[256];
	const char *identity_note;    /* how --from was resolved */
	struct sn_addr source;        /* the caller's address (its WorkloadEntry), family 0 if unknown */
	/* for the destination's inbound verdict and the warnings */
	const struct sn_config_set *set;
	struct sn_diags loaded;       /* the load's warnings */
	struct sn_h1_header *all;     /* the request's headers, Host first */
	size_t n_all;
	/* --gateway: the request arrives at a gateway proxy's port */
	int gateway;
	const struct sn_gw_listener *gw;   /* the listener that took it */
};

/* What an endpoint's own proxy would decide on the request. */
struct inbound {
	const struct sn_endpoint *ep;
	struct sn_snapshot *snap;     /* the endpoint's; owns the origins noted */
	int status;                   /* 0: it reaches the app */
	const char *reason;           /* sinew-error of a refusal */
	char why[700];
	char ext[300];                /* "" or the CUSTOM policy's authorizer, asked first */
};

#define MAX_INBOUND 8
#define MAX_ORIGINS 64

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew explain [--from WORKLOAD] [--gateway] [-n NS] URL [-H 'name: value'...]\n"
		"                     [-X METHOD] [-f FILE...] [-o json] [--server URL]\n"
		"\n"
		"Shows what the mesh would do with a request that WORKLOAD's app sends to URL:\n"
		"the virtual host and the rule that match (with the VirtualService file:line they\n"
		"come from), each destination with its weight, subset, cluster and endpoints, the\n"
		"load-balancing policy, timeout, retries, fault injection and header changes; or\n"
		"why a proxy would answer `no_route` itself. It runs the proxy's own translation\n"
		"and routing code on the configuration sinewd stores (or on the files given).\n"
		"\n"
		"  --from WORKLOAD       the calling workload: a WorkloadEntry name, a connected\n"
		"                        proxy's id, or a Service name; its labels select\n"
		"                        sourceLabels rules. Default: an unlabeled client in NS\n"
		"  --gateway             the request arrives at a gateway proxy (WORKLOAD, whose\n"
		"                        labels select Gateways; without --from, every Gateway's)\n"
		"                        on URL's port (default 80): the Gateway server that opens\n"
		"                        it and the routes bound there; a TCP or TLS passthrough\n"
		"                        port shows where its connections go\n"
		"  -n, --namespace NS    the caller's namespace (default \"default\"); short host\n"
		"                        names resolve in it\n"
		"  -H, --header 'N: V'   a request header; repeatable (-H 'host: x' overrides URL's host)\n"
		"  -X, --request METHOD  default GET\n"
		"  -f, --filename FILE   explain against these files, offline (as sinew-proxy\n"
		"                        --config would load them); repeatable\n"
		"  -o json               the explanation as JSON\n"
		"  --server URL          sinewd's API (default $SINEW_SERVER, else " SN_CLI_DEFAULT_SERVER ")\n"
		"\n"
		"URL is http://HOST[:PORT][/PATH][?QUERY], or HOST[:PORT][/PATH].\n"
		"\n"
		"Exit status: 0 a rule matches (the request would be routed or answered by the\n"
		"rule), 1 no route or a failure, 2 usage error.\n");
}

/* ---- resources ------------------------------------------------------------ */

static int load_files(struct sn_config_set *set, char **files, size_t n, struct sn_diags *d)
{
	for (size_t i = 0; i < n; i++) {
		char *text;
		size_t len;
		if (sn_cli_read_file(files[i], &text, &len) != 0)
			return -1;
		sn_config_load_text(set, files[i], text, len, d);
		free(text);
	}
	return 0;
}

static int load_server(struct sn_config_set *set, const char *server, struct sn_diags *d)
{
	struct sn_http_response r;
	if (sn_cli_api(server, "GET", "/api/v1/resources", NULL, 0, &r) != 0)
		return -1;
	if (r.status != 200) {
		sn_cli_api_error(&r);
		sn_http_response_free(&r);
		return -1;
	}
	struct fy_document *doc = sn_cli_json_parse(r.body, r.len);
	struct fy_node *list = sn_cli_json_root(doc);
	if (list == NULL)
		fprintf(stderr, "sinew: sinewd's resource list is not JSON\n");
	for (size_t i = 0; i < sn_cli_json_len(list); i++) {
		struct fy_node *it = sn_cli_json_at(list, i);
		const char *y = sn_cli_json_str(it, "yaml");
		if (y != NULL)
			sn_config_load_text_at(set, sn_cli_json_str_or(it, "source", "sinewd"), y, strlen(y),
					       (int)sn_cli_json_int(it, "line", 1), d);
	}
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
	return list ? 0 : -1;
}

/* ---- who is calling --------------------------------------------------------- */

static void copy_labels(struct explain *x, const struct sn_labels *l)
{
	size_t n = SN_MIN(l->n, SN_ARRAY_LEN(x->label_store));
	for (size_t i = 0; i < n; i++)
		x->label_store[i] = l->v[i];
	x->labels.v = x->label_store;
	x->labels.n = n;
}

/* The Service of namespace ns whose selector picks labels, if any. */
static const struct sn_resource *service_of(const struct sn_config_set *set, const char *ns,
					    const struct sn_labels *labels)
{
	for (const struct sn_resource *r = set->head; r != NULL; r = r->next) {
		if (r->kind != SN_KIND_SERVICE || strcmp(r->namespace_, ns) != 0)
			continue;
		const struct sn_labels *sel = sn_service_selector(r);
		if (sel != NULL && sn_labels_match(sel, labels))
			return r;
	}
	return NULL;
}

/* Labels of a proxy from GET /api/v1/proxies, kept in the document. */
static int from_proxy(struct explain *x, const char *server, struct fy_document **keep)
{
	struct sn_http_response r;
	char err[600];
	if (sn_cli_http(server, "GET", "/api/v1/proxies", NULL, NULL, 0, 5000, "sinewd", NULL, &r, err, sizeof(err)) !=
	    0)
		return 0;
	int found = 0;
	struct fy_document *doc = r.status == 200 ? sn_cli_json_parse(r.body, r.len) : NULL;
	struct fy_node *list = sn_cli_json_root(doc);
	for (size_t i = 0; i < sn_cli_json_len(list) && !found; i++) {
		struct fy_node *p = sn_cli_json_at(list, i);
		if (strcmp(sn_cli_json_str_or(p, "id", ""), x->from) != 0)
			continue;
		found = 1;
		snprintf(x->service, sizeof(x->service), "%s", sn_cli_json_str_or(p, "service", ""));
		snprintf(x->sa, sizeof(x->sa), "%s", sn_cli_json_str_or(p, "serviceAccount", "default"));
		snprintf(x->workload, sizeof(x->workload), "%s", x->from);
		snprintf(x->ns_buf, sizeof(x->ns_buf), "%s", sn_cli_json_str_or(p, "namespace", x->ns));
		x->ns = x->ns_buf;
		struct fy_node *lab = sn_cli_json_get(p, "labels");
		void *iter = NULL;
		struct fy_node_pair *pair;
		x->labels.v = x->label_store;
		x->labels.n = 0;
		while (lab != NULL && fy_node_is_mapping(lab) && x->labels.n < SN_ARRAY_LEN(x->label_store) &&
		       (pair = fy_node_mapping_iterate(lab, &iter)) != NULL) {
			struct fy_node *k = fy_node_pair_key(pair), *v = fy_node_pair_value(pair);
			if (k == NULL || v == NULL || !fy_node_is_scalar(k) || !fy_node_is_scalar(v))
				continue;
			x->label_store[x->labels.n].key = (char *)fy_node_get_scalar0(k);
			x->label_store[x->labels.n].value = (char *)fy_node_get_scalar0(v);
			x->labels.n++;
		}
		x->identity_note = "a connected proxy";
	}
	sn_http_response_free(&r);
	if (found)
		*keep = doc;
	else
		sn_cli_json_free(doc);
	return found;
}

/* Fills the identity from --from. Returns 0 or -1 (printed). */
static int resolve_identity(struct explain *x, const struct sn_config_set *set, const char *server,
			    struct fy_document **keep)
{
	char proxy_name[300];
	x->labels.v = x->label_store;
	x->labels.n = 0;
	snprintf(x->sa, sizeof(x->sa), "default");
	if (x->from == NULL) {
		snprintf(x->workload, sizeof(x->workload), "sinew-explain");
		x->identity_note = "an unlabeled client (no --from)";
		return 0;
	}
	if (server != NULL && from_proxy(x, server, keep))
		return 0;
	snprintf(proxy_name, sizeof(proxy_name), "proxy-%s", x->from);
	for (int pass = 0; pass < 2; pass++)
		for (const struct sn_resource *r = set->head; r != NULL; r = r->next) {
			if (r->kind != SN_KIND_WORKLOAD_ENTRY || strcmp(r->namespace_, x->ns) != 0 ||
			    strcmp(r->name, pass ? proxy_name : x->from) != 0)
				continue;
			struct sn_workload_info w;
			if (sn_workload_of(r, &w) == 0) {
				copy_labels(x, w.labels);
				if (w.service_account != NULL)
					snprintf(x->sa, sizeof(x->sa), "%s", w.service_account);
				char a[80];   /* an address, for Linkerd's cluster-* access */
				snprintf(a, sizeof(a), w.address && strchr(w.address, ':') ? "[%s]:1" : "%s:1",
					 w.address ? w.address : "");
				if (w.address == NULL || sn_addr_parse(a, &x->source) != 0)
					memset(&x->source, 0, sizeof(x->source));
			}
			const struct sn_resource *svc = service_of(set, x->ns, &x->labels);
			snprintf(x->service, sizeof(x->service), "%s", svc ? svc->name : "");
			snprintf(x->workload, sizeof(x->workload), "%s", x->from);
			x->identity_note = pass ? "a registered proxy's WorkloadEntry" : "a WorkloadEntry";
			return 0;
		}
	for (const struct sn_resource *r = set->head; r != NULL; r = r->next)
		if (r->kind == SN_KIND_SERVICE && !strcmp(r->namespace_, x->ns) && !strcmp(r->name, x->from)) {
			const struct sn_labels *sel = sn_service_selector(r);
			if (sel != NULL)
				copy_labels(x, sel);
			snprintf(x->service, sizeof(x->service), "%s", r->name);
			snprintf(x->workload, sizeof(x->workload), "%s", r->name);
			x->identity_note = "a Service (its selector's labels)";
			return 0;
		}
	fprintf(stderr, "sinew explain: no workload \"%s\" in namespace %s: no WorkloadEntry, connected proxy or "
			"Service has that name (sinew get we -n %s lists workloads)\n", x->from, x->ns, x->ns);
	return -1;
}

/* ---- the request ------------------------------------------------------------ */

static int parse_url(struct explain *x, const char *url)
{
	const char *p = url;
	if (!strncmp(p, "http://", 7))
		p += 7;
	else if (strstr(p, "://") != NULL) {
		fprintf(stderr, "sinew explain: %s: only http:// URLs (the mesh carries https as opaque TLS)\n", url);
		return -1;
	}
	size_t al = strcspn(p, "/?#");
	if (al == 0 || al >= sizeof(x->authority)) {
		fprintf(stderr, "sinew explain: %s: no host; write e.g. http://reviews:9080/path\n", url);
		return -1;
	}
	memcpy(x->authority, p, al);
	x->authority[al] = '\0';
	p += al;
	size_t pl = strcspn(p, "?#");
	if (pl >= sizeof(x->path))
		pl = sizeof(x->path) - 1;
	if (pl == 0)
		snprintf(x->path, sizeof(x->path), "/");
	else {
		memcpy(x->path, p, pl);
		x->path[pl] = '\0';
	}
	p += strcspn(p, "?#");
	if (*p == '?') {
		size_t ql = strcspn(p + 1, "#");
		snprintf(x->query, sizeof(x->query), "%.*s", (int)ql, p + 1);
	}
	return 0;
}

static int add_header(struct explain *x, const char *h)
{
	const char *colon = strchr(h, ':');
	if (colon == NULL || colon == h) {
		fprintf(stderr, "sinew explain: -H %s: want 'name: value'\n", h);
		return -1;
	}
	if (x->n_headers >= MAX_HEADERS) {
		fprintf(stderr, "sinew explain: at most %d headers\n", MAX_HEADERS);
		return -1;
	}
	const char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	size_t vl = strlen(v);
	while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
	struct sn_h1_header *hd = &x->headers[x->n_headers++];
	hd->name = sn_str_make(h, (size_t)(colon - h));
	hd->value = sn_str_make(v, vl);
	if (sn_str_ieq_cstr(hd->name, "host")) {
		snprintf(x->authority, sizeof(x->authority), "%.*s", (int)vl, v);
		x->n_headers--;   /* the authority header is added once, below */
	}
	return 0;
}

/* ---- describing what was found ------------------------------------------------ */

static void describe_str_match(char *buf, size_t size, const char *what, const struct sn_str_match *m)
{
	static const char *const kinds[] = { "any", "exact", "prefix", "regex", "present", "path prefix" };
	size_t l = strlen(buf);
	if (m->kind == SN_MATCH_ANY || l + 1 >= size)
		return;
	snprintf(buf + l, size - l, "%s%s %s%s%s%s%s", l ? ", " : "", what, kinds[m->kind],
		 m->kind == SN_MATCH_PRESENT ? "" : " \"", m->kind == SN_MATCH_PRESENT ? "" : (m->value ? m->value : ""),
		 m->kind == SN_MATCH_PRESENT ? "" : "\"", m->ignore_case ? " (ignore case)" : "");
}

static void describe_match(const struct sn_route_match *m, char *buf, size_t size)
{
	char what[300];
	buf[0] = '\0';
	describe_str_match(buf, size, "uri", &m->uri);
	describe_str_match(buf, size, "method", &m->method);
	describe_str_match(buf, size, "authority", &m->authority);
	describe_str_match(buf, size, "scheme", &m->scheme);
	for (size_t i = 0; i < m->n_headers; i++) {
		snprintf(what, sizeof(what), "header %s", m->headers[i].name);
		describe_str_match(buf, size, what, &m->headers[i].m);
	}
	for (size_t i = 0; i < m->n_without_headers; i++) {
		snprintf(what, sizeof(what), "without header %s", m->without_headers[i].name);
		describe_str_match(buf, size, what, &m->without_headers[i].m);
	}
	for (size_t i = 0; i < m->n_query_params; i++) {
		snprintf(what, sizeof(what), "query %s", m->query_params[i].name);
		describe_str_match(buf, size, what, &m->query_params[i].m);
	}
	if (m->port) {
		size_t l = strlen(buf);
		snprintf(buf + l, size - l, "%sport %u", l ? ", " : "", m->port);
	}
	if (!buf[0])
		snprintf(buf, size, "every request");
}

static void retry_on_text(uint32_t bits, char *buf, size_t size)
{
	static const char *const names[] = { "5xx", "gateway-error", "connect-failure", "refused-stream", "reset",
					     "retriable-status-codes" };
	buf[0] = '\0';
	for (size_t i = 0; i < SN_ARRAY_LEN(names); i++)
		if (bits & (1u << i)) {
			size_t l = strlen(buf);
			snprintf(buf + l, size - l, "%s%s", l ? "," : "", names[i]);
		}
	if (!buf[0])
		snprintf(buf, size, "-");
}

static void ops_text(const struct sn_header_ops *o, const char *dir, FILE *f)
{
	for (size_t i = 0; i < o->n_set; i++)
		fprintf(f, "             %s set %s: %s\n", dir, o->set[i].name, o->set[i].value ? o->set[i].value : "");
	for (size_t i = 0; i < o->n_add; i++)
		fprintf(f, "             %s add %s: %s\n", dir, o->add[i].name, o->add[i].value ? o->add[i].value : "");
	for (size_t i = 0; i < o->n_remove; i++)
		fprintf(f, "             %s remove %s\n", dir, o->remove[i].name);
}

static int has_ops(const struct sn_header_ops *o)
{
	return o->n_set + o->n_add + o->n_remove > 0;
}

static void json_ops(struct sn_out *o, const char *key, const struct sn_header_ops *h)
{
	const struct {
		const char *name;
		const struct sn_header_op *v;
		size_t n;
	} lists[] = { { "set", h->set, h->n_set }, { "add", h->add, h->n_add }, { "remove", h->remove, h->n_remove } };
	sn_out_printf(o, ",\"%s\":{", key);
	for (size_t l = 0; l < SN_ARRAY_LEN(lists); l++) {
		sn_out_printf(o, "%s\"%s\":[", l ? "," : "", lists[l].name);
		for (size_t i = 0; i < lists[l].n; i++) {
			sn_out_cstr(o, i ? ",{\"name\":" : "{\"name\":");
			sn_out_json_cstr(o, lists[l].v[i].name);
			sn_out_cstr(o, ",\"value\":");
			sn_out_json_cstr(o, lists[l].v[i].value);
			sn_out_cstr(o, "}");
		}
		sn_out_cstr(o, "]");
	}
	sn_out_cstr(o, "}");
}

static void print_no_route(const struct explain *x, int status, const char *flag, const char *reason)
{
	if (x->json) {
		struct sn_out o = { 0 };
		sn_out_printf(&o, "{\"routed\":false,\"status\":%d,\"error\":\"%s\",\"reason\":", status, flag);
		sn_out_json_cstr(&o, reason);
		sn_out_cstr(&o, "}\n");
		if (!o.failed)
			fwrite(o.p, 1, o.len, stdout);
		sn_out_free(&o);
		return;
	}
	printf("%s: %s\n", status == 0 || status >= 400 ? "no route" : "answered", reason);
	if (status >= 400)
		printf("  a proxy answers %d with `sinew-error: %s`\n", status, flag);
	else if (status > 0)
		printf("  a proxy answers %d\n", status);
}

static void print_identity(const struct explain *x)
{
	char labels[600] = "";
	for (size_t i = 0; i < x->labels.n; i++) {
		size_t l = strlen(labels);
		snprintf(labels + l, sizeof(labels) - l, "%s%s=%s", l ? "," : "", x->labels.v[i].key,
			 x->labels.v[i].value);
	}
	printf("From:        %s in namespace %s (%s)\n", x->workload, x->ns, x->identity_note);
	printf("             service %s, service account %s, labels %s\n", x->service[0] ? x->service : "-", x->sa,
	       labels[0] ? labels : "-");
}

/* The destination's inbound, by the code its proxy runs: the
 * configuration translated for the endpoint's workload, its
 * RequestAuthentication and sn_authz_check with the caller's mTLS
 * identity. A JWT is not verified here (explain holds no keys' fetches):
 * the request is judged as one without a valid token; the source address
 * is the caller's WorkloadEntry's, else unknown (ipBlocks and Linkerd's
 * cluster-* access do not match then). Origins of the policies that took
 * part are added to origins for the warnings. */
static void judge_inbound(const struct explain *x, const struct sn_cluster *c, struct inbound *v,
			  const char **origins, size_t *n_origins)
{
	const struct sn_endpoint *ep = v->ep;
	struct sn_proxy_identity id = {
		.service = c->service_name,
		.namespace_ = c->namespace_,
		.labels = &ep->labels,
		.service_account = ep->service_account,
		.workload = ep->workload,
		.trust_domain = "cluster.local",
	};
	struct sn_diags d;
	struct sn_snapshot *t = NULL;
	sn_diags_init(&d);
	v->snap = NULL;
	v->status = 0;
	v->reason = NULL;
	v->ext[0] = '\0';
	if (sn_config_translate(x->set, &id, &d, &t) != 0 || t == NULL) {
		snprintf(v->why, sizeof(v->why), "its configuration does not translate (its proxy keeps the previous one)");
		sn_diags_free(&d);
		return;
	}
	sn_diags_free(&d);
	for (size_t i = 0; i < t->n_authz && *n_origins < MAX_ORIGINS; i++)
		origins[(*n_origins)++] = t->authz[i].origin;
	for (size_t i = 0; i < t->n_jwt_rules && *n_origins < MAX_ORIGINS; i++)
		origins[(*n_origins)++] = t->jwt_rules[i].origin;
	if (t->peer_auth.origin != NULL && *n_origins < MAX_ORIGINS)
		origins[(*n_origins)++] = t->peer_auth.origin;
	if (t->jwt_unenforceable != NULL) {
		v->status = 401;
		v->reason = "policy_unenforceable";
		snprintf(v->why, sizeof(v->why), "RequestAuthentication %s has fields Sinew does not know, so it refuses "
			 "every request (fail closed)", t->jwt_unenforceable);
		goto out;
	}
	char principal[600];
	snprintf(principal, sizeof(principal), "cluster.local/ns/%s/sa/%s", x->ns, x->sa);
	struct sn_authz_request ar;
	struct sn_authz_result res;
	memset(&ar, 0, sizeof(ar));
	ar.principal = sn_str_make(principal, strlen(principal));
	ar.source_namespace = sn_str_make(x->ns, strlen(x->ns));
	if (x->source.ss.ss_family != 0)
		ar.source = (const struct sockaddr *)&x->source.ss;
	ar.port = ep->addr.ss_family == AF_INET6 ? ntohs(((const struct sockaddr_in6 *)&ep->addr)->sin6_port)
						 : ntohs(((const struct sockaddr_in *)&ep->addr)->sin_port);
	ar.host = sn_str_make(x->authority, strlen(x->authority));
	ar.method = sn_str_make(x->method, strlen(x->method));
	ar.path = sn_str_make(x->path, strlen(x->path));
	ar.headers = x->all;
	ar.n_headers = x->n_all;
	sn_authz_check(t, &ar, &res);
	if (res.decision == SN_AUTHZ_DECISION_DENY && !strcmp(res.reason, "ext_authz_unavailable")) {
		const struct sn_ext_authz *pv = NULL;
		for (size_t i = 0; i < t->n_ext_authz && pv == NULL; i++)
			if (res.provider != NULL && !strcmp(t->ext_authz[i].name, res.provider))
				pv = &t->ext_authz[i];
		if (pv != NULL) {
			/* the proxy asks it; what follows holds if it allows */
			snprintf(v->ext, sizeof(v->ext), "external authorizer %s (%s:%u) of CUSTOM policy %s", pv->name,
				 pv->service, pv->port, res.policy);
			ar.custom_allowed = 1;
			sn_authz_check(t, &ar, &res);
		}
	}
	if (res.decision == SN_AUTHZ_DECISION_DENY) {
		v->status = 403;
		v->reason = res.reason;
		if (!strcmp(res.reason, "policy_unenforceable"))
			snprintf(v->why, sizeof(v->why), "policy %s has fields Sinew does not know, so it denies every "
				 "request it covers (fail closed)", res.policy);
		else if (!strcmp(res.reason, "ext_authz_unavailable"))
			snprintf(v->why, sizeof(v->why), "CUSTOM policy %s names provider %s, which the mesh config does not "
				 "define (fail closed)", res.policy, res.provider ? res.provider : "-");
		else
			snprintf(v->why, sizeof(v->why), "%s", res.policy);
	} else {
		snprintf(v->why, sizeof(v->why), "%s", res.policy);
		/* then Linkerd's Server of the port: access and rate limit */
		const struct sn_server *sv = sn__server_for_port(t, ar.port);
		const char *no = sv != NULL ? sn__server_refusal(sv, &ar) : NULL;
		if (no != NULL) {
			v->status = 403;
			v->reason = sv->unenforceable ? "policy_unenforceable" : "rbac_denied";
			snprintf(v->why, sizeof(v->why), "Server %s: %s", sv->name, no);
		} else if (sv != NULL && sv->rl_name != NULL) {
			size_t l = strlen(v->why);
			snprintf(v->why + l, sizeof(v->why) - l, "; rate limited by HTTPLocalRateLimitPolicy %s (total %u/s, "
				 "per identity %u/s, %zu override(s); 0: none): past them 429 rate_limited", sv->rl_name,
				 sv->rl_total, sv->rl_identity, sv->n_rl_overrides);
		}
		if (sv != NULL && *n_origins < MAX_ORIGINS)
			origins[(*n_origins)++] = sv->origin;
		if (sv != NULL && sv->rl_origin != NULL && *n_origins < MAX_ORIGINS)
			origins[(*n_origins)++] = sv->rl_origin;
	}
out:
	v->snap = t;
}

static void inbound_free(struct inbound *in, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (in[i].snap != NULL)
			sn_snapshot_unref(in[i].snap);
}

/* The inbound verdicts of the route's endpoints (at most MAX_INBOUND). */
static size_t judge_route(const struct explain *x, const struct sn_snapshot *s, const struct sn_http_route *route,
			  struct inbound *in, const char **origins, size_t *n_origins)
{
	size_t n = 0;
	if (route->origin != NULL && *n_origins < MAX_ORIGINS)
		origins[(*n_origins)++] = route->origin;
	for (size_t i = 0; i < route->n_dests; i++) {
		const struct sn_cluster *c = &s->clusters[route->dests[i].cluster];
		for (size_t e = 0; e < c->n_endpoints && n < MAX_INBOUND; e++) {
			in[n].ep = &c->endpoints[e];
			judge_inbound(x, c, &in[n++], origins, n_origins);
		}
	}
	return n;
}

/* The load's warnings about a resource that took part: its "Kind ns/name"
 * starts one of the origins. */
static int warning_applies(const struct sn_diag *g, const char **origins, size_t n_origins)
{
	char who[600];
	if (g->severity != SN_DIAG_WARNING || g->kind == NULL || g->name == NULL)
		return 0;
	int l = snprintf(who, sizeof(who), "%s %s", g->kind, g->name);
	for (size_t i = 0; i < n_origins; i++) {
		const char *o = origins[i];
		if (l > 0 && !strncmp(o, who, (size_t)l) && (o[l] == '\0' || o[l] == ','))
			return 1;
	}
	return 0;
}

static void print_inbound_text(const struct explain *x, const struct inbound *in, size_t n, const char **origins,
			       size_t n_origins)
{
	char buf[1200];
	if (n > 0)
		printf("Inbound:     as the endpoints' proxies judge it, from cluster.local/ns/%s/sa/%s over mTLS%s:\n",
		       x->ns, x->sa, sn_h1_find_header(x->all, x->n_all, SN_STR_LIT("authorization"), 0) >= 0 ?
		       " (a token is not verified here: judged as without one)" : "");
	for (size_t i = 0; i < n; i++) {
		printf("  %s (%s): ", in[i].ep->address, in[i].ep->workload ? in[i].ep->workload : "-");
		if (in[i].ext[0])
			printf("asks the %s; if it allows: ", in[i].ext);
		if (in[i].status)
			printf("refused %d (sinew-error: %s): %s\n", in[i].status, in[i].reason, in[i].why);
		else
			printf("allowed (%s)\n", in[i].why);
	}
	int head = 0;
	for (size_t i = 0; i < x->loaded.n; i++) {
		if (!warning_applies(&x->loaded.v[i], origins, n_origins))
			continue;
		if (!head++)
			printf("Warnings:    what the configuration that took part has that Sinew does not do:\n");
		sn_diag_format(&x->loaded.v[i], buf, sizeof(buf));
		printf("  %s\n", buf);
	}
}

static void print_inbound_json(struct sn_out *o, const struct explain *x, const struct inbound *in, size_t n,
			       const char **origins, size_t n_origins)
{
	char buf[1200];
	sn_out_cstr(o, ",\"inbound\":[");
	for (size_t i = 0; i < n; i++) {
		sn_out_cstr(o, i ? ",{\"endpoint\":" : "{\"endpoint\":");
		sn_out_json_cstr(o, in[i].ep->address);
		sn_out_cstr(o, ",\"workload\":");
		sn_out_json_cstr(o, in[i].ep->workload);
		sn_out_printf(o, ",\"allowed\":%s,\"status\":%d,\"error\":", in[i].status ? "false" : "true",
			      in[i].status);
		sn_out_json_cstr(o, in[i].reason);
		sn_out_cstr(o, ",\"why\":");
		sn_out_json_cstr(o, in[i].why);
		sn_out_cstr(o, ",\"extAuthz\":");
		sn_out_json_cstr(o, in[i].ext[0] ? in[i].ext : NULL);
		sn_out_cstr(o, "}");
	}
	sn_out_cstr(o, "],\"warnings\":[");
	int k = 0;
	for (size_t i = 0; i < x->loaded.n; i++) {
		if (!warning_applies(&x->loaded.v[i], origins, n_origins))
			continue;
		sn_diag_format(&x->loaded.v[i], buf, sizeof(buf));
		if (k++)
			sn_out_cstr(o, ",");
		sn_out_json_cstr(o, buf);
	}
	sn_out_cstr(o, "]");
}

static void print_route_text(const struct explain *x, const struct sn_snapshot *s, const struct sn_vhost *vh,
			     uint16_t port, const struct sn_http_route *route, int match_idx, size_t route_idx)
{
	char buf[2000];
	print_identity(x);
	if (x->gw != NULL)
		printf("Gateway:     port %u, %s\n", x->gw->port, x->gw->origin ? x->gw->origin : "-");
	printf("Request:     %s http://%s%s%s%s\n", x->method, x->authority, x->path, x->query[0] ? "?" : "", x->query);
	printf("Host:        %s -> virtual host %s (port %u)\n", x->authority, vh->host, port);
	printf("Rule:        %s (rule %zu of %zu)\n", route->name, route_idx + 1, vh->n_routes);
	printf("             from %s\n", route->origin ? route->origin : "the Service's default route");
	if (match_idx >= 0) {
		describe_match(&route->matches[match_idx], buf, sizeof(buf));
		printf("             matched by match[%d]: %s\n", match_idx, buf);
	} else {
		printf("             matches every request (no match list)\n");
	}
	for (size_t i = 0; i < route_idx; i++)
		printf("             skipped %s: none of its matches holds\n", vh->routes[i].name);
	if (route->direct_status) {
		printf("Answer:      direct response %d, body \"%s\" (sinew-error: direct_response)\n",
		       route->direct_status, route->direct_body ? route->direct_body : "");
		return;
	}
	printf("Destinations:\n");
	for (size_t i = 0; i < route->n_dests; i++) {
		const struct sn_route_dest *d = &route->dests[i];
		const struct sn_cluster *c = &s->clusters[d->cluster];
		double pct = route->total_weight ? 100.0 * d->weight / route->total_weight : 100.0;
		printf("  %5.1f%%  %s subset %s -> cluster %s\n", pct, c->service, c->subset ? c->subset : "-", c->name);
		printf("          lb %s, connect timeout %u ms%s\n", sn_lb_policy_str(c->lb), c->connect_timeout_ms,
		       c->max_connections ? ", connection limit set" : "");
		if (c->n_endpoints == 0)
			printf("          no endpoints: requests get 503 (sinew-error: no_healthy_upstream)\n");
		for (size_t e = 0; e < c->n_endpoints; e++) {
			const struct sn_endpoint *ep = &c->endpoints[e];
			printf("          endpoint %s  workload %s  version %s%s\n", ep->address,
			       ep->workload ? ep->workload : "-", ep->version ? ep->version : "-",
			       ep->workload && !strncmp(ep->workload, "proxy-", 6) ? "  (registered by a connected proxy)" : "");
		}
		if (has_ops(&d->request_ops) || has_ops(&d->response_ops)) {
			ops_text(&d->request_ops, "request ", stdout);
			ops_text(&d->response_ops, "response", stdout);
		}
	}
	if (route->timeout_ms)
		printf("Timeout:     %u ms\n", route->timeout_ms);
	else
		printf("Timeout:     none\n");
	retry_on_text(route->retry.retry_on, buf, sizeof(buf));
	if (route->retry.attempts && route->retry.per_try_timeout_ms)
		printf("Retries:     %u attempts, per-try timeout %u ms, retry on %s (under the retry budget)\n",
		       route->retry.attempts, route->retry.per_try_timeout_ms, buf);
	else if (route->retry.attempts)
		printf("Retries:     %u attempts, no per-try timeout, retry on %s (under the retry budget)\n",
		       route->retry.attempts, buf);
	else
		printf("Retries:     none\n");
	if (route->fault.delay_ms || route->fault.abort_status) {
		printf("Fault:       ");
		if (route->fault.delay_ms)
			printf("delay %u ms for %g%% of requests%s", route->fault.delay_ms, route->fault.delay_percent,
			       route->fault.abort_status ? "; " : "");
		if (route->fault.abort_status)
			printf("abort with %d for %g%% of requests (sinew-error: fault_abort)", route->fault.abort_status,
			       route->fault.abort_percent);
		printf("\n");
	} else {
		printf("Fault:       none\n");
	}
	if (has_ops(&route->request_ops) || has_ops(&route->response_ops)) {
		printf("Headers:\n");
		ops_text(&route->request_ops, "request ", stdout);
		ops_text(&route->response_ops, "response", stdout);
	}
	if (route->rewrite_uri || route->rewrite_authority)
		printf("Rewrite:     %s%s%s%s\n", route->rewrite_uri ? "uri " : "", route->rewrite_uri ? route->rewrite_uri : "",
		       route->rewrite_authority ? " authority " : "", route->rewrite_authority ? route->rewrite_authority : "");
	struct inbound in[MAX_INBOUND];
	const char *origins[MAX_ORIGINS];
	size_t n_origins = 0;
	size_t n = judge_route(x, s, route, in, origins, &n_origins);
	print_inbound_text(x, in, n, origins, n_origins);
	inbound_free(in, n);
}

static void print_route_json(const struct explain *x, const struct sn_snapshot *s, const struct sn_vhost *vh,
			     uint16_t port, const struct sn_http_route *route, int match_idx)
{
	struct sn_out o = { 0 };
	sn_out_cstr(&o, "{\"routed\":true,");
	if (x->gw != NULL) {
		sn_out_printf(&o, "\"gateway\":{\"port\":%u,\"origin\":", x->gw->port);
		sn_out_json_cstr(&o, x->gw->origin);
		sn_out_cstr(&o, "},");
	}
	sn_out_cstr(&o, "\"from\":{\"workload\":");
	sn_out_json_cstr(&o, x->workload);
	sn_out_cstr(&o, ",\"namespace\":");
	sn_out_json_cstr(&o, x->ns);
	sn_out_cstr(&o, ",\"service\":");
	sn_out_json_cstr(&o, x->service[0] ? x->service : NULL);
	sn_out_cstr(&o, ",\"labels\":{");
	for (size_t i = 0; i < x->labels.n; i++) {
		if (i)
			sn_out_cstr(&o, ",");
		sn_out_json_cstr(&o, x->labels.v[i].key);
		sn_out_cstr(&o, ":");
		sn_out_json_cstr(&o, x->labels.v[i].value);
	}
	sn_out_cstr(&o, "}},\"vhost\":");
	sn_out_json_cstr(&o, vh->host);
	sn_out_printf(&o, ",\"port\":%u,\"route\":{\"name\":", port);
	sn_out_json_cstr(&o, route->name);
	sn_out_cstr(&o, ",\"origin\":");
	sn_out_json_cstr(&o, route->origin);
	sn_out_printf(&o, ",\"match\":%d}", match_idx);
	if (route->direct_status) {
		sn_out_printf(&o, ",\"directResponse\":{\"status\":%d,\"body\":", route->direct_status);
		sn_out_json_cstr(&o, route->direct_body);
		sn_out_cstr(&o, "}");
	}
	sn_out_cstr(&o, ",\"destinations\":[");
	for (size_t i = 0; i < route->n_dests && !route->direct_status; i++) {
		const struct sn_route_dest *d = &route->dests[i];
		const struct sn_cluster *c = &s->clusters[d->cluster];
		sn_out_cstr(&o, i ? ",{\"cluster\":" : "{\"cluster\":");
		sn_out_json_cstr(&o, c->name);
		sn_out_cstr(&o, ",\"service\":");
		sn_out_json_cstr(&o, c->service);
		sn_out_cstr(&o, ",\"subset\":");
		sn_out_json_cstr(&o, c->subset);
		sn_out_printf(&o, ",\"weight\":%u,\"lb\":\"%s\",\"endpoints\":[", d->weight, sn_lb_policy_str(c->lb));
		for (size_t e = 0; e < c->n_endpoints; e++) {
			const struct sn_endpoint *ep = &c->endpoints[e];
			sn_out_cstr(&o, e ? ",{\"address\":" : "{\"address\":");
			sn_out_json_cstr(&o, ep->address);
			sn_out_cstr(&o, ",\"workload\":");
			sn_out_json_cstr(&o, ep->workload);
			sn_out_cstr(&o, ",\"version\":");
			sn_out_json_cstr(&o, ep->version);
			sn_out_cstr(&o, "}");
		}
		sn_out_cstr(&o, "]");
		json_ops(&o, "requestHeaders", &d->request_ops);
		json_ops(&o, "responseHeaders", &d->response_ops);
		sn_out_cstr(&o, "}");
	}
	char on[200];
	retry_on_text(route->retry.retry_on, on, sizeof(on));
	sn_out_printf(&o, "],\"timeoutMs\":%u,\"retries\":{\"attempts\":%u,\"perTryTimeoutMs\":%u,\"retryOn\":",
		      route->timeout_ms, route->retry.attempts, route->retry.per_try_timeout_ms);
	sn_out_json_cstr(&o, on);
	sn_out_printf(&o, "},\"fault\":{\"delayMs\":%u,\"delayPercent\":%g,\"abortStatus\":%d,\"abortPercent\":%g}",
		      route->fault.delay_ms, route->fault.delay_percent, route->fault.abort_status,
		      route->fault.abort_percent);
	json_ops(&o, "requestHeaders", &route->request_ops);
	json_ops(&o, "responseHeaders", &route->response_ops);
	sn_out_cstr(&o, ",\"rewriteUri\":");
	sn_out_json_cstr(&o, route->rewrite_uri);
	sn_out_cstr(&o, ",\"rewriteAuthority\":");
	sn_out_json_cstr(&o, route->rewrite_authority);
	struct inbound in[MAX_INBOUND];
	const char *origins[MAX_ORIGINS];
	size_t n_origins = 0;
	size_t n = route->direct_status ? 0 : judge_route(x, s, route, in, origins, &n_origins);
	print_inbound_json(&o, x, in, n, origins, n_origins);
	inbound_free(in, n);
	sn_out_cstr(&o, "}\n");
	if (!o.failed)
		fwrite(o.p, 1, o.len, stdout);
	sn_out_free(&o);
}

/* ex_route's decisions, in its order. Returns the exit status. */
/* A gateway's TCP or TLS passthrough port: where its connections go. */
static void print_l4_listener(const struct explain *x, const struct sn_snapshot *s, const struct sn_gw_listener *gl)
{
	const struct sn_sni_route *one = gl->tcp ? gl->tcp_route : NULL;
	size_t n = gl->tcp ? (one != NULL) : gl->n_sni_routes;
	if (x->json) {
		struct sn_out o = { 0 };
		sn_out_printf(&o, "{\"routed\":%s,\"gateway\":{\"port\":%u,\"origin\":", n ? "true" : "false", gl->port);
		sn_out_json_cstr(&o, gl->origin);
		sn_out_printf(&o, ",\"kind\":\"%s\"},\"routes\":[", gl->tcp ? "tcp" : "tls_passthrough");
		for (size_t i = 0; i < n; i++) {
			const struct sn_sni_route *r = gl->tcp ? one : &gl->sni_routes[i];
			sn_out_cstr(&o, i ? ",{\"sni\":" : "{\"sni\":");
			sn_out_json_cstr(&o, gl->tcp ? NULL : r->sni);
			sn_out_cstr(&o, ",\"origin\":");
			sn_out_json_cstr(&o, r->origin);
			sn_out_cstr(&o, ",\"destinations\":[");
			for (size_t k = 0; k < r->n_dests; k++) {
				sn_out_cstr(&o, k ? ",{\"cluster\":" : "{\"cluster\":");
				sn_out_json_cstr(&o, s->clusters[r->dests[k].cluster].name);
				sn_out_printf(&o, ",\"weight\":%u}", r->dests[k].weight);
			}
			sn_out_cstr(&o, "]}");
		}
		sn_out_cstr(&o, "]}\n");
		if (!o.failed)
			fwrite(o.p, 1, o.len, stdout);
		sn_out_free(&o);
		return;
	}
	print_identity(x);
	printf("Gateway:     port %u, %s\n", gl->port, gl->origin ? gl->origin : "-");
	printf("Port:        %s: connections are not HTTP; %s\n", gl->tcp ? "TCP" : "TLS passthrough",
	       gl->tcp ? "each goes, as bytes, where the port's tcp route says"
		       : "each goes, TLS untouched, where the route for its ClientHello's server name says");
	if (n == 0)
		printf("Routes:      none: each connection is closed\n");
	for (size_t i = 0; i < n; i++) {
		const struct sn_sni_route *r = gl->tcp ? one : &gl->sni_routes[i];
		printf("Route:       %s%s, from %s\n", gl->tcp ? "every connection" : "server name ",
		       gl->tcp ? "" : r->sni, r->origin ? r->origin : "-");
		for (size_t k = 0; k < r->n_dests; k++) {
			const struct sn_cluster *c = &s->clusters[r->dests[k].cluster];
			printf("  %5.1f%%  %s -> cluster %s (%zu endpoint%s)\n",
			       r->total_weight ? 100.0 * r->dests[k].weight / r->total_weight : 100.0, c->service, c->name,
			       c->n_endpoints, c->n_endpoints == 1 ? "" : "s");
		}
	}
}

static int explain_request(struct explain *x, const struct sn_snapshot *s)
{
	char reason[1400];
	uint16_t port = 0;
	struct sn_str authority = sn_str_make(x->authority, strlen(x->authority));
	const struct sn_vhost *vh;
	if (x->gateway) {
		/* the URL's port is the gateway's (the proxy's own lookup) */
		const char *colon = strrchr(x->authority, ':');
		unsigned long p = colon != NULL && strchr(x->authority, ']') < colon ? strtoul(colon + 1, NULL, 10) : 80;
		const struct sn_gw_listener *gl = p > 0 && p < 65536 ? sn_snapshot_find_gw_listener(s, (uint16_t)p) : NULL;
		if (gl == NULL) {
			snprintf(reason, sizeof(reason), "no Gateway server %s%s opens port %lu: a connection there is "
				 "refused", x->from ? "selecting " : "of any gateway", x->from ? x->workload : "", p);
			print_no_route(x, 0, "-", reason);
			return 1;
		}
		x->gw = gl;
		if (gl->tcp || gl->passthrough) {
			print_l4_listener(x, s, gl);
			return (gl->tcp ? gl->tcp_route != NULL : gl->n_sni_routes > 0) ? 0 : 1;
		}
		if (gl->https_redirect) {
			snprintf(reason, sizeof(reason), "port %u redirects every request to https:// (tls.httpsRedirect, "
				 "%s)", gl->port, gl->origin ? gl->origin : "-");
			print_no_route(x, 301, "-", reason);
			return 0;
		}
		port = gl->port;
		vh = sn_snapshot_find_gw_vhost(s, gl, authority);
		if (vh == NULL) {
			snprintf(reason, sizeof(reason), "no VirtualService (or route) bound to the Gateway on port %u "
				 "routes host \"%s\" (%s)", gl->port, x->authority, gl->origin ? gl->origin : "-");
			print_no_route(x, 404, "no_route", reason);
			return 1;
		}
	} else {
		vh = sn_snapshot_find_vhost(s, authority, &port);
	}
	if (vh == NULL) {
		snprintf(reason, sizeof(reason),
			 "no route for host \"%s\": no Service or VirtualService host matches it (in namespace %s)",
			 x->authority, x->ns);
		print_no_route(x, 404, "no_route", reason);
		return 1;
	}
	struct sn_route_request rr;
	memset(&rr, 0, sizeof(rr));
	/* The proxy matches on the request's own headers, Host among them. */
	struct sn_h1_header *all = x->headers;
	memmove(all + 1, all, x->n_headers * sizeof(*all));
	all[0].name = SN_STR_LIT("host");
	all[0].value = authority;
	rr.method = sn_str_make(x->method, strlen(x->method));
	rr.path = sn_str_make(x->path, strlen(x->path));
	rr.query = sn_str_make(x->query, strlen(x->query));
	rr.authority = authority;
	rr.port = port;
	rr.headers = all;
	rr.n_headers = x->n_headers + 1;
	x->all = all;
	x->n_all = rr.n_headers;
	const struct sn_route_match *hit = NULL;
	const struct sn_http_route *route = sn_router_match(vh, &rr, &hit);
	if (route == NULL) {
		snprintf(reason, sizeof(reason), "no rule for host %s matched %.32s %.1000s (its %zu rule%s all have matches "
			 "that do not hold)", vh->host, x->method, x->path, vh->n_routes, vh->n_routes == 1 ? "" : "s");
		print_no_route(x, 404, "no_route", reason);
		return 1;
	}
	if (!route->direct_status && route->n_dests == 0) {
		snprintf(reason, sizeof(reason), "route %s has no destination", route->name);
		print_no_route(x, 503, "no_route", reason);
		return 1;
	}
	int m = hit ? (int)(hit - route->matches) : -1;   /* which of the route's matches held */
	size_t idx = (size_t)(route - vh->routes);
	if (x->json)
		print_route_json(x, s, vh, port, route, m);
	else
		print_route_text(x, s, vh, port, route, m, idx);
	return 0;
}

int sn_cli_explain(int argc, char **argv)
{
	enum { O_SERVER = 256, O_FROM, O_GATEWAY };
	static const struct option opts[] = {
		{ "from", required_argument, NULL, O_FROM },
		{ "gateway", no_argument, NULL, O_GATEWAY },
		{ "namespace", required_argument, NULL, 'n' },
		{ "header", required_argument, NULL, 'H' },
		{ "request", required_argument, NULL, 'X' },
		{ "filename", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "server", required_argument, NULL, O_SERVER },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct explain x;
	const char *server = NULL;
	char **hdr_args = calloc((size_t)argc + 1, sizeof(char *));
	char **file_args = calloc((size_t)argc + 1, sizeof(char *));
	size_t n_hdr = 0, n_file = 0;
	int o, rc = 1;
	struct sn_config_set set;
	struct sn_diags d;
	struct sn_snapshot *snap = NULL;
	struct fy_document *keep = NULL;
	char **files = NULL;
	size_t n_files = 0;
	const char *ns_given = NULL;

	memset(&x, 0, sizeof(x));
	x.method = "GET";
	sn_config_set_init(&set);
	sn_diags_init(&d);
	if (hdr_args == NULL || file_args == NULL)
		goto out;
	optind = 0;
	while ((o = getopt_long(argc, argv, "n:H:X:f:o:h", opts, NULL)) != -1) {
		switch (o) {
		case O_FROM: x.from = optarg; break;
		case O_GATEWAY: x.gateway = 1; break;
		case 'n': ns_given = optarg; break;
		case 'H': hdr_args[n_hdr++] = optarg; break;
		case 'X': x.method = optarg; break;
		case 'f': file_args[n_file++] = optarg; break;
		case 'o':
			if (strcmp(optarg, "json") != 0) {
				fprintf(stderr, "sinew explain: -o %s: only json (the default is text)\n", optarg);
				rc = 2;
				goto out;
			}
			x.json = 1;
			break;
		case O_SERVER: server = optarg; break;
		case 'h': usage(stdout); rc = 0; goto out;
		default: usage(stderr); rc = 2; goto out;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "sinew explain: want one URL, e.g. sinew explain --from productpage-v1 http://reviews:9080/\n");
		rc = 2;
		goto out;
	}
	x.ns = ns_given ? ns_given : "default";
	if (parse_url(&x, argv[optind]) != 0) {
		rc = 2;
		goto out;
	}
	for (size_t i = 0; i < n_hdr; i++)
		if (add_header(&x, hdr_args[i]) != 0) {
			rc = 2;
			goto out;
		}

	if (n_file > 0) {
		if (sn_cli_expand_files(file_args, n_file, &files, &n_files) != 0 ||
		    load_files(&set, files, n_files, &d) != 0)
			goto out;
	} else {
		server = sn_cli_server(server);
		if (load_server(&set, server, &d) != 0)
			goto out;
	}
	if (d.errors > 0) {
		fprintf(stderr, "sinew explain: the configuration does not load (a proxy would refuse it):\n");
		sn_diags_print(&d, stderr);
		goto out;
	}
	if (resolve_identity(&x, &set, n_file > 0 ? NULL : server, &keep) != 0)
		goto out;
	struct sn_proxy_identity id = {
		.service = x.service[0] ? x.service : NULL,
		.namespace_ = x.ns,
		.labels = &x.labels,
		.service_account = x.sa,
		.workload = x.workload,
		.trust_domain = "cluster.local",
		/* a named gateway: the Gateways its labels select; else all */
		.gateway = x.gateway ? (x.from != NULL ? 1 : SN_GATEWAY_ANY) : 0,
	};
	x.loaded = d;                /* its warnings, for the resources that take part */
	sn_diags_init(&d);
	x.set = &set;
	if (sn_config_translate(&set, &id, &d, &snap) != 0 || snap == NULL) {
		fprintf(stderr, "sinew explain: the configuration does not translate for %s (its proxy would refuse "
				"it and keep its previous configuration):\n", x.workload);
		sn_diags_print(&d, stderr);
		goto out;
	}
	rc = explain_request(&x, snap);
out:
	if (snap != NULL)
		sn_snapshot_unref(snap);
	sn_cli_json_free(keep);
	sn_cli_free_strv(files, n_files);
	sn_diags_free(&d);
	sn_diags_free(&x.loaded);
	sn_config_set_free(&set);
	free(hdr_args);
	free(file_args);
	return rc;
}
