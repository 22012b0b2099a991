/* AuthorizationPolicy and PeerAuthentication: loading and diagnostics,
 * selection per proxy, and Istio's evaluation semantics (docs/security.md). */
#include "cfg_test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "sinew/h1.h"

#define HDR "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"

static const struct sn_label app_reviews[] = { { "app", "reviews" }, { "version", "v1" } };
static const struct sn_labels reviews_labels = { (struct sn_label *)app_reviews, 2 };

static struct sn_snapshot *build_ns(const char *yaml, const char *ns, const struct sn_labels *labels)
{
	struct sn_config_set set;
	struct sn_diags d;
	struct sn_proxy_identity id = { .service = "reviews", .namespace_ = ns, .labels = labels };
	sn_config_set_init(&set);
	sn_diags_init(&d);
	if (sn_config_load_text(&set, "authz.yaml", yaml, strlen(yaml), &d) != 0) {
		print_diags(&d);
		fail_msg("load");
	}
	struct sn_snapshot *s = NULL;
	if (sn_config_translate(&set, &id, &d, &s) != 0) {
		print_diags(&d);
		fail_msg("translate");
	}
	sn_diags_free(&d);
	sn_config_set_free(&set);
	return s;
}

static struct sn_snapshot *build(const char *yaml)
{
	return build_ns(yaml, "default", &reviews_labels);
}

/* A request; unset fields are empty. */
struct rq {
	const char *method, *path, *host, *principal, *ns, *ip;
	uint16_t port;
	const char *h[8];            /* name, value pairs */
};

static struct sn_authz_result run(const struct sn_snapshot *s, const struct rq *q)
{
	struct sn_authz_request r;
	struct sn_authz_result res;
	struct sockaddr_storage ss;
	struct sn_h1_header hdrs[4];
	memset(&r, 0, sizeof(r));
	memset(&ss, 0, sizeof(ss));
	const char *m = q->method ? q->method : "GET", *p = q->path ? q->path : "/";
	const char *h = q->host ? q->host : "reviews:9080";
	r.method = sn_str_make(m, strlen(m));
	r.path = sn_str_make(p, strlen(p));
	r.host = sn_str_make(h, strlen(h));
	if (q->principal)
		r.principal = sn_str_make(q->principal, strlen(q->principal));
	if (q->ns)
		r.source_namespace = sn_str_make(q->ns, strlen(q->ns));
	const char *ip = q->ip ? q->ip : "127.0.0.1";
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1)
		a4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1)
		a6->sin6_family = AF_INET6;
	else
		fail_msg("bad ip %s", ip);
	r.source = (struct sockaddr *)&ss;
	r.port = q->port ? q->port : 9080;
	size_t n = 0;
	for (; n < 4 && q->h[2 * n]; n++) {
		hdrs[n].name = sn_str_make(q->h[2 * n], strlen(q->h[2 * n]));
		hdrs[n].value = sn_str_make(q->h[2 * n + 1], strlen(q->h[2 * n + 1]));
	}
	r.headers = hdrs;
	r.n_headers = n;
	sn_authz_check(s, &r, &res);
	return res;
}

#define judge(s, want, who, ...)                                                             \
	do {                                                                                     \
		struct rq q_ = { __VA_ARGS__ };                                                  \
		struct sn_authz_result r_ = run((s), &q_);                                       \
		if (r_.decision != (want) || strcmp(r_.policy, (who)) != 0)                   \
			fail_msg("line %d: %s %s: got %s by \"%s\", want %s by \"%s\"", __LINE__, \
				 q_.method ? q_.method : "GET", q_.path ? q_.path : "/",            \
				 r_.decision ? "deny" : "allow", r_.policy,                         \
				 (want) ? "deny" : "allow", (who));                              \
	} while (0)

#define OK_ SN_AUTHZ_DECISION_ALLOW
#define NO_ SN_AUTHZ_DECISION_DENY
#define DEFAULT_DENY "default deny: no ALLOW policy matched"

/* ---- loading and diagnostics ----------------------------------------- */

static void load_expect_errors(const char *yaml, struct sn_diags *d)
{
	struct sn_config_set set;
	sn_config_set_init(&set);
	sn_diags_init(d);
	sn_config_load_text(&set, "bad.yaml", yaml, strlen(yaml), d);
	sn_config_set_free(&set);
}

static void test_diagnostics(void **state)
{
	(void)state;
	struct sn_diags d;
	load_expect_errors(HDR "metadata: {name: p}\n"
			       "spec:\n"
			       "  action: PERMIT\n"
			       "  rules:\n"
			       "  - from:\n"
			       "    - source: {}\n"
			       "    - source:\n"
			       "        ipBlocks: [\"10.0.0.0/33\", \"\"]\n"
			       "    to:\n"
			       "    - operation:\n"
			       "        ports: [\"http\"]\n"
			       "        paths: [\"/a/{*}/b\"]\n"
			       "        verbs: [GET]\n"
			       "    when:\n"
			       "    - key: request.headers[x-user]\n"
			       "    - key: destination.ip\n"
			       "      values: [\"10.0.0.1\"]\n"
			       "    - key: source.color\n"
			       "      values: [red]\n"
			       "  - bogus: 1\n",
			   &d);
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:5:11: error: AuthorizationPolicy default/p: spec.action:",
		    "unknown action \"PERMIT\"");
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:8:", "spec.rules[0].from[0].source:", "must not be empty");
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:10:21:", "spec.rules[0].from[1].source.ipBlocks[0]:",
		    "\"10.0.0.0/33\" is not an IP address or CIDR block");
	assert_diag(&d, SN_DIAG_ERROR, "spec.rules[0].from[1].source.ipBlocks[1]:", "empty value");
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:13:", "spec.rules[0].to[0].operation.ports[0]:",
		    "\"http\" is not a port number");
	assert_diag(&d, SN_DIAG_ERROR, "spec.rules[0].to[0].operation.paths[0]:", "path templates");
	assert_diag(&d, SN_DIAG_WARNING, "bad.yaml:15:9:", "spec.rules[0].to[0].operation.verbs:", "unknown field");
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:17:", "spec.rules[0].when[0]:",
		    "at least one of values or notValues must be set");
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:18:12:", "spec.rules[0].when[1].key:", "destination.ip is not implemented");
	assert_diag(&d, SN_DIAG_ERROR, "spec.rules[0].when[2].key:", "unknown condition key \"source.color\"");
	assert_diag(&d, SN_DIAG_WARNING, "bad.yaml:22:", "spec.rules[1].bogus:", "unknown field");
	sn_diags_free(&d);

	/* Wrong apiVersion; provider without CUSTOM; CUSTOM needs a provider. */
	load_expect_errors("apiVersion: networking.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec: {}\n"
			   "---\n" HDR "metadata: {name: b}\nspec:\n  provider: {name: x}\n"
			   "---\n" HDR "metadata: {name: c}\nspec:\n  action: CUSTOM\n  provider: {name: ext}\n"
			   "  rules: [{}]\n"
			   "---\n" HDR "metadata: {name: e}\nspec:\n  action: CUSTOM\n  rules: [{}]\n"
			   "---\napiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\n"
			   "metadata: {name: d}\nspec:\n  mtls: {mode: STRICTER}\n  portLevelMtls:\n    8080: {mode: DISABLE}\n",
			   &d);
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:1:", "apiVersion \"networking.istio.io/v1\" is not valid for kind "
		    "AuthorizationPolicy; use security.istio.io/v1 (or v1beta1)");
	assert_diag(&d, SN_DIAG_ERROR, "AuthorizationPolicy default/b: spec.provider:", "only with action: CUSTOM");
	assert_diag(&d, SN_DIAG_ERROR, "AuthorizationPolicy default/e: spec.provider:", "action CUSTOM needs provider");
	assert_diag(&d, SN_DIAG_ERROR, "PeerAuthentication default/d: spec.mtls.mode:", "unknown mTLS mode \"STRICTER\"");
	assert_diag(&d, SN_DIAG_ERROR, "PeerAuthentication default/d: spec.portLevelMtls:", "needs a workload selector");
	sn_diags_free(&d);

	/* requestPrincipals and request.auth.* load without a warning now
	 * (RequestAuthentication); a malformed claims key is an error. */
	struct sn_config_set set;
	sn_config_set_init(&set);
	sn_diags_init(&d);
	const char *y = HDR "metadata: {name: jwt}\nspec:\n  rules:\n  - from:\n    - source:\n"
			    "        requestPrincipals: [\"*\"]\n    when:\n    - key: request.auth.claims[iss]\n"
			    "      values: [\"https://accounts.google.com\"]\n";
	assert_int_equal(sn_config_load_text(&set, "jwt.yaml", y, strlen(y), &d), 0);
	assert_int_equal(d.warnings, 0);
	assert_int_equal(d.errors, 0);
	assert_int_equal(sn_kind_lookup("authorizationpolicies"), SN_KIND_AUTHORIZATION_POLICY);
	assert_int_equal(sn_kind_lookup("pa"), SN_KIND_PEER_AUTHENTICATION);
	assert_int_equal(set.count, 1);
	assert_int_equal(set.head->kind, SN_KIND_AUTHORIZATION_POLICY);
	sn_diags_free(&d);
	sn_config_set_free(&set);
}

/* ---- Istio's semantics ---------------------------------------------- */

static void test_no_policy_allows(void **state)
{
	(void)state;
	struct sn_snapshot *s = build("apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec:\n"
				      "  ports: [{port: 9080, name: http}]\n");
	assert_int_equal(s->n_authz, 0);
	judge(s, OK_, "no policy", .path = "/anything");
	sn_snapshot_unref(s);
	struct sn_authz_result r;
	sn_authz_check(NULL, NULL, &r);
	assert_int_equal(r.decision, OK_);
}

static void test_allow_by_path_and_method(void **state)
{
	(void)state;
	struct sn_snapshot *s = build(HDR "metadata: {name: read}\nspec:\n  action: ALLOW\n  rules:\n"
					  "  - to:\n    - operation: {methods: [GET, HEAD], paths: [\"/info*\"]}\n"
					  "    - operation: {methods: [POST], paths: [\"/data\"]}\n");
	assert_int_equal(s->n_authz, 1);
	assert_int_equal(s->n_authz_allow, 1);
	judge(s, OK_, "default/read", .path = "/info");
	judge(s, OK_, "default/read", .path = "/info/x?y=1");
	judge(s, OK_, "default/read", .method = "HEAD", .path = "/infos");
	judge(s, NO_, DEFAULT_DENY, .method = "POST", .path = "/info");
	judge(s, OK_, "default/read", .method = "POST", .path = "/data");
	judge(s, NO_, DEFAULT_DENY, .method = "POST", .path = "/data/1");
	judge(s, NO_, DEFAULT_DENY, .method = "get", .path = "/info"); /* methods are case-sensitive */
	judge(s, NO_, DEFAULT_DENY, .path = "/");
	sn_snapshot_unref(s);
}

static void test_deny_by_path_and_deny_wins(void **state)
{
	(void)state;
	struct sn_snapshot *s = build(HDR "metadata: {name: allow-all}\nspec:\n  rules: [{}]\n"
					  "---\n" HDR "metadata: {name: no-admin}\nspec:\n  action: DENY\n  rules:\n"
					  "  - to: [{operation: {paths: [\"/admin*\", \"*.secret\"]}}]\n");
	judge(s, OK_, "default/allow-all", .path = "/public");
	judge(s, NO_, "default/no-admin", .path = "/admin");
	judge(s, NO_, "default/no-admin", .path = "/admin/users?x=1");
	judge(s, NO_, "default/no-admin", .path = "/keys/a.secret");
	/* Judged on the normalized path, as Istio's default normalization. */
	judge(s, NO_, "default/no-admin", .path = "/public/../admin");
	judge(s, NO_, "default/no-admin", .path = "/%61dmin/x");
	judge(s, NO_, "default/no-admin", .path = "/./admin");
	judge(s, NO_, "default/no-admin", .path = "\\admin");
	judge(s, OK_, "default/allow-all", .path = "/admin%2fx/../y");
	sn_snapshot_unref(s);
}

static void test_default_deny_and_empty_rules(void **state)
{
	(void)state;
	/* An ALLOW policy without rules allows nothing: every request is
	 * denied by default. */
	struct sn_snapshot *s = build(HDR "metadata: {name: allow-nothing}\nspec: {}\n");
	assert_int_equal(s->n_authz_allow, 1);
	judge(s, NO_, DEFAULT_DENY, .path = "/");
	sn_snapshot_unref(s);
	/* A DENY policy without rules denies nothing; with an empty rule,
	 * everything. */
	s = build(HDR "metadata: {name: d}\nspec: {action: DENY}\n");
	judge(s, OK_, "no ALLOW policy", .path = "/");
	sn_snapshot_unref(s);
	s = build(HDR "metadata: {name: d}\nspec:\n  action: DENY\n  rules: [{}]\n");
	judge(s, NO_, "default/d", .path = "/");
	sn_snapshot_unref(s);
}

static void test_audit(void **state)
{
	(void)state;
	struct sn_snapshot *s = build(HDR "metadata: {name: audit}\nspec:\n  action: AUDIT\n  rules:\n"
					  "  - to: [{operation: {methods: [GET], paths: [\"/user/profile/*\"]}}]\n");
	struct rq q = { .path = "/user/profile/7" };
	struct sn_authz_result r = run(s, &q);
	assert_int_equal(r.decision, OK_);
	assert_true(r.audited);
	assert_string_equal(r.audit_policy, "default/audit");
	assert_string_equal(r.policy, "no ALLOW policy");
	q.path = "/other";
	r = run(s, &q);
	assert_int_equal(r.decision, OK_);
	assert_false(r.audited);
	sn_snapshot_unref(s);
	/* AUDIT does not change a deny either. */
	s = build(HDR "metadata: {name: audit}\nspec:\n  action: AUDIT\n  rules: [{}]\n"
		  "---\n" HDR "metadata: {name: only-get}\nspec:\n  rules: [{to: [{operation: {methods: [GET]}}]}]\n");
	q.method = "DELETE";
	r = run(s, &q);
	assert_int_equal(r.decision, NO_);
	assert_true(r.audited);
	sn_snapshot_unref(s);
}

static void test_negative_and_string_forms(void **state)
{
	(void)state;
	struct sn_snapshot *s = build(HDR "metadata: {name: a}\nspec:\n  rules:\n"
					  "  - to:\n    - operation:\n        notPaths: [\"/private*\"]\n"
					  "        notMethods: [DELETE]\n"
					  "        hosts: [\"*.example.com\", \"reviews*\"]\n"
					  "        notHosts: [\"evil.example.com\"]\n");
	judge(s, OK_, "default/a", .path = "/x");
	judge(s, NO_, DEFAULT_DENY, .path = "/private/x");
	judge(s, NO_, DEFAULT_DENY, .method = "DELETE", .path = "/x");
	judge(s, OK_, "default/a", .host = "API.Example.COM"); /* hosts are case-insensitive */
	judge(s, NO_, DEFAULT_DENY, .host = "evil.example.com");
	judge(s, NO_, DEFAULT_DENY, .host = "ratings:9080");
	sn_snapshot_unref(s);
}

static void test_when_headers(void **state)
{
	(void)state;
	struct sn_snapshot *s = build(HDR "metadata: {name: a}\nspec:\n  rules:\n  - when:\n"
					  "    - key: request.headers[X-User]\n      values: [\"admin\", \"ops-*\"]\n"
					  "    - key: request.headers[x-trace]\n      values: [\"*\"]\n"
					  "    - key: request.headers[x-bad]\n      notValues: [\"*yes\"]\n");
	judge(s, OK_, "default/a", .h = { "x-user", "admin", "X-Trace", "1" });
	judge(s, OK_, "default/a", .h = { "x-user", "ops-jo", "x-trace", "1" });
	judge(s, NO_, DEFAULT_DENY, .h = { "x-user", "admin" });             /* presence */
	judge(s, NO_, DEFAULT_DENY, .h = { "x-user", "admin", "x-trace", "" }); /* "*" needs non-empty */
	judge(s, NO_, DEFAULT_DENY, .h = { "x-user", "guest", "x-trace", "1" });
	judge(s, NO_, DEFAULT_DENY, .h = { "x-user", "admin", "x-trace", "1", "x-bad", "oh-yes" });
	/* Repeated headers are judged joined with ',' (Envoy). */
	judge(s, NO_, DEFAULT_DENY, .h = { "x-user", "admin", "x-user", "admin", "x-trace", "1" });
	sn_snapshot_unref(s);
}

static void test_ip_blocks(void **state)
{
	(void)state;
	struct sn_snapshot *s = build(HDR "metadata: {name: lan}\nspec:\n  rules:\n  - from:\n"
					  "    - source: {ipBlocks: [\"10.0.0.0/8\", \"192.168.1.7\", \"2001:db8::/32\"],"
					  " notIpBlocks: [\"10.9.0.0/16\"]}\n"
					  "---\n" HDR "metadata: {name: block}\nspec:\n  action: DENY\n  rules:\n"
					  "  - when: [{key: source.ip, values: [\"10.66.0.0/16\"]}]\n");
	judge(s, OK_, "default/lan", .ip = "10.1.2.3");
	judge(s, NO_, DEFAULT_DENY, .ip = "11.0.0.1");
	judge(s, NO_, DEFAULT_DENY, .ip = "10.9.1.1");
	judge(s, OK_, "default/lan", .ip = "192.168.1.7");
	judge(s, NO_, DEFAULT_DENY, .ip = "192.168.1.8");
	judge(s, OK_, "default/lan", .ip = "2001:db8:1::5");
	judge(s, NO_, DEFAULT_DENY, .ip = "2001:db9::5");
	judge(s, OK_, "default/lan", .ip = "::ffff:10.0.0.1"); /* v4-mapped is v4 */
	judge(s, NO_, "default/block", .ip = "10.66.3.4");
	sn_snapshot_unref(s);
	s = build(HDR "metadata: {name: local}\nspec:\n  rules:\n  - from:\n    - source: {ipBlocks: [\"127.0.0.1/32\"]}\n");
	judge(s, OK_, "default/local", .ip = "127.0.0.1");
	judge(s, NO_, DEFAULT_DENY, .ip = "127.0.0.2");
	sn_snapshot_unref(s);
}

static void test_ports(void **state)
{
	(void)state;
	struct sn_snapshot *s = build(HDR "metadata: {name: d}\nspec:\n  action: DENY\n  rules:\n"
					  "  - to: [{operation: {ports: [\"8080\"], methods: [POST]}}]\n"
					  "  - when: [{key: destination.port, values: [\"9443\"]}]\n");
	judge(s, NO_, "default/d", .method = "POST", .port = 8080);
	judge(s, OK_, "no ALLOW policy", .method = "POST", .port = 9080);
	judge(s, NO_, "default/d", .port = 9443);
	sn_snapshot_unref(s);
}

static void test_principals_and_namespaces(void **state)
{
	(void)state;
	struct sn_snapshot *s = build(HDR "metadata: {name: from-sleep}\nspec:\n  rules:\n  - from:\n"
					  "    - source: {principals: [\"cluster.local/ns/default/sa/sleep\"]}\n"
					  "    - source: {namespaces: [\"test\"]}\n"
					  "---\n" HDR "metadata: {name: no-dev}\nspec:\n  action: DENY\n  rules:\n"
					  "  - from: [{source: {namespaces: [\"dev\"]}}]\n"
					  "  - from: [{source: {notPrincipals: [\"*\"]}}]\n    to: [{operation: {paths: [\"/admin*\"]}}]\n");
	judge(s, OK_, "default/from-sleep", .principal = "cluster.local/ns/default/sa/sleep", .ns = "default");
	judge(s, NO_, DEFAULT_DENY, .principal = "cluster.local/ns/default/sa/other", .ns = "default");
	judge(s, OK_, "default/from-sleep", .principal = "cluster.local/ns/test/sa/x", .ns = "test");
	judge(s, NO_, "default/no-dev", .principal = "cluster.local/ns/dev/sa/x", .ns = "dev");
	/* Plaintext: no principal, no namespace. */
	judge(s, NO_, DEFAULT_DENY, .path = "/");
	judge(s, NO_, "default/no-dev", .path = "/admin");
	judge(s, NO_, DEFAULT_DENY, .principal = "cluster.local/ns/default/sa/other", .path = "/admin");
	sn_snapshot_unref(s);
	/* source.principal / source.namespace conditions; requestPrincipals
	 * never match (no JWT) and notRequestPrincipals always do. */
	s = build(HDR "metadata: {name: a}\nspec:\n  rules:\n"
		  "  - when: [{key: source.principal, values: [\"*/sa/sleep\"]}, {key: source.namespace, notValues: [\"dev\"]}]\n"
		  "  - from: [{source: {requestPrincipals: [\"*\"]}}]\n"
		  "---\n" HDR "metadata: {name: need-jwt}\nspec:\n  action: DENY\n  rules:\n"
		  "  - from: [{source: {notRequestPrincipals: [\"*\"]}}]\n    to: [{operation: {paths: [\"/jwt*\"]}}]\n");
	judge(s, OK_, "default/a", .principal = "cluster.local/ns/x/sa/sleep", .ns = "x");
	judge(s, NO_, DEFAULT_DENY, .principal = "cluster.local/ns/dev/sa/sleep", .ns = "dev");
	judge(s, NO_, DEFAULT_DENY);
	judge(s, NO_, "default/need-jwt", .principal = "cluster.local/ns/x/sa/sleep", .ns = "x", .path = "/jwt/1");
	sn_snapshot_unref(s);
}

static void test_request_authentication(void **state)
{
	(void)state;
	struct sn_diags d;
	const char *RA = "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\n";
	char text[4096];
	/* the JWKS is checked at load; a jwksUri must be http(s) */
	snprintf(text, sizeof(text),
		 "%smetadata: {name: bad}\nspec:\n  jwtRules:\n"
		 "  - issuer: a\n    jwks: '{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-521\", \"x\": \"AAAAAAAA\", \"y\": \"AAAAAAAA\"}]}'\n"
		 "  - issuer: b\n    jwks: 'not json'\n"
		 "  - issuer: c\n    jwksUri: ftp://c/jwks\n"
		 "  - jwks: '{\"keys\": [{\"kty\": \"OKP\", \"crv\": \"Ed25519\", \"x\": \"AAAAAAAAAAAA\"}]}'\n"
		 "  - issuer: e\n", RA);
	load_expect_errors(text, &d);
	assert_diag(&d, SN_DIAG_ERROR, "RequestAuthentication default/bad: spec.jwtRules[0].jwks:", "jwks key 0 needs crv P-256 or P-384");
	assert_diag(&d, SN_DIAG_ERROR, "spec.jwtRules[1].jwks:", "not a JSON Web Key Set");
	assert_diag(&d, SN_DIAG_ERROR, "spec.jwtRules[2]:", "jwksUri \"ftp://c/jwks\" is not an http:// or https:// URI");
	assert_diag(&d, SN_DIAG_ERROR, "spec.jwtRules[3].issuer:", "issuer is required");
	assert_diag(&d, SN_DIAG_ERROR, "spec.jwtRules[4]:", "needs jwks");
	sn_diags_free(&d);
	assert_int_equal(sn_kind_lookup("ra"), SN_KIND_REQUEST_AUTHENTICATION);

	/* selection as for AuthorizationPolicy; defaults strip Authorization */
	snprintf(text, sizeof(text),
		 "%smetadata: {name: mine}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  jwtRules:\n"
		 "  - issuer: https://i\n    jwks: '{\"keys\": [{\"kty\": \"RSA\", \"n\": \"AQABAQABAQABAQABAQABAQAB\", \"e\": \"AQAB\"}]}'\n"
		 "    fromHeaders: [{name: X-Token}]\n    fromParams: [tok]\n"
		 "---\n%smetadata: {name: theirs}\nspec:\n  selector: {matchLabels: {app: other}}\n  jwtRules:\n"
		 "  - issuer: https://o\n    jwksUri: https://o/k\n", RA, RA);
	struct sn_snapshot *s = build(text);
	assert_int_equal(s->n_jwt_rules, 1);
	assert_string_equal(s->jwt_rules[0].issuer, "https://i");
	assert_int_equal(s->jwt_rules[0].n_keys, 1);
	assert_string_equal(s->jwt_rules[0].headers[0].name, "x-token");
	assert_string_equal(s->jwt_rules[0].headers[0].prefix, "");
	assert_string_equal(s->jwt_rules[0].params[0], "tok");
	assert_int_equal(s->jwt_rules[0].strip.n_remove, 1);
	assert_string_equal(s->jwt_rules[0].strip.remove[0].name, "x-token");
	assert_non_null(strstr(s->jwt_rules[0].origin, "RequestAuthentication default/mine, authz.yaml:"));
	sn_snapshot_unref(s);
}

static void test_selector_and_root_namespace(void **state)
{
	(void)state;
	const char *y = HDR "metadata: {name: only-ratings, namespace: default}\nspec:\n"
			    "  selector: {matchLabels: {app: ratings}}\n"
			    "---\n" HDR "metadata: {name: other-ns, namespace: prod}\nspec: {}\n"
			    "---\n" HDR "metadata: {name: mesh-v1, namespace: istio-system}\nspec:\n"
			    "  selector: {matchLabels: {version: v1}}\n  action: DENY\n  rules: [{to: [{operation: {paths: [\"/v1only\"]}}]}]\n"
			    "---\n" HDR "metadata: {name: mesh-all, namespace: istio-system}\nspec:\n"
			    "  action: AUDIT\n  rules: [{}]\n"
			    "---\n" HDR "metadata: {name: ns-reviews}\nspec:\n"
			    "  selector: {matchLabels: {app: reviews}}\n  rules: [{to: [{operation: {paths: [\"/ok\"]}}]}]\n"
			    "---\n" HDR "metadata: {name: custom}\nspec:\n  action: CUSTOM\n  provider: {name: x}\n"
			    "  rules: [{to: [{operation: {paths: [\"/ok/ext*\"]}}]}]\n";
	struct sn_snapshot *s = build(y);
	assert_int_equal(s->n_authz, 4);
	assert_string_equal(s->authz[0].name, "istio-system/mesh-v1");
	assert_string_equal(s->authz[1].name, "istio-system/mesh-all");
	assert_string_equal(s->authz[2].name, "default/ns-reviews");
	assert_string_equal(s->authz[2].origin, "AuthorizationPolicy default/ns-reviews, authz.yaml:27");
	assert_string_equal(s->authz[3].provider, "x");
	judge(s, NO_, "istio-system/mesh-v1", .path = "/v1only");
	judge(s, OK_, "default/ns-reviews", .path = "/ok");
	judge(s, NO_, DEFAULT_DENY, .path = "/other");
	/* CUSTOM comes first: a match names its provider (asked by the
	 * proxy) and denies until it has said yes (fail closed); what it does
	 * not select goes on to DENY and ALLOW. */
	struct sn_authz_request car = { .method = { "GET", 3 }, .path = { "/ok/ext/x", 9 } };
	struct sn_authz_result cres;
	sn_authz_check(s, &car, &cres);
	assert_int_equal(cres.decision, NO_);
	assert_string_equal(cres.policy, "default/custom");
	assert_string_equal(cres.reason, "ext_authz_unavailable");
	assert_string_equal(cres.provider, "x");
	/* Once the provider allowed, the other policies judge (here no
	 * ALLOW policy matches: default deny, not the provider's). */
	car.custom_allowed = 1;
	sn_authz_check(s, &car, &cres);
	assert_int_equal(cres.decision, NO_);
	assert_null(cres.provider);
	assert_string_equal(cres.policy, DEFAULT_DENY);
	assert_string_equal(cres.reason, "rbac_denied");
	judge(s, OK_, "default/ns-reviews", .path = "/ok");
	sn_snapshot_unref(s);

	/* Another workload (version v2, app reviews) in another namespace. */
	static const struct sn_label v2[] = { { "app", "ratings" }, { "version", "v2" } };
	static const struct sn_labels v2_labels = { (struct sn_label *)v2, 2 };
	s = build_ns(y, "prod", &v2_labels);
	assert_int_equal(s->n_authz, 2);
	assert_string_equal(s->authz[0].name, "prod/other-ns");
	assert_string_equal(s->authz[1].name, "istio-system/mesh-all");
	judge(s, NO_, DEFAULT_DENY, .path = "/v1only");
	sn_snapshot_unref(s);
}

static void test_peer_authentication(void **state)
{
	(void)state;
	const char *pa = "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\n";
	char y[2048];
	snprintf(y, sizeof(y),
		 "%smetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n"
		 "---\n%smetadata: {name: default, namespace: default}\nspec: {mtls: {mode: PERMISSIVE}}\n"
		 "---\n%smetadata: {name: reviews}\nspec:\n  selector: {matchLabels: {app: reviews}}\n"
		 "  mtls: {mode: UNSET}\n  portLevelMtls:\n    8080: {mode: DISABLE}\n    9090: {mode: UNSET}\n"
		 "    9443: {mode: STRICT}\n",
		 pa, pa, pa);
	/* reviews in default: workload UNSET inherits the namespace's
	 * PERMISSIVE; ports override. */
	struct sn_snapshot *s = build(y);
	assert_int_equal(s->peer_auth.mode, SN_MTLS_PERMISSIVE);
	assert_string_equal(s->peer_auth.origin, "PeerAuthentication default/default");
	assert_int_equal(sn_peer_auth_mode(&s->peer_auth, 8080), SN_MTLS_DISABLE);
	assert_int_equal(sn_peer_auth_mode(&s->peer_auth, 9090), SN_MTLS_PERMISSIVE);
	assert_int_equal(sn_peer_auth_mode(&s->peer_auth, 9443), SN_MTLS_STRICT);
	assert_int_equal(sn_peer_auth_mode(&s->peer_auth, 9080), SN_MTLS_PERMISSIVE);

	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	sn_snapshot_dump_json(s, f);
	fclose(f);
	assert_non_null(strstr(buf, "\"peer_authentication\":{\"mode\":\"PERMISSIVE\""));
	assert_non_null(strstr(buf, "{\"port\":8080,\"mode\":\"DISABLE\",\"origin\":\"PeerAuthentication default/reviews\"}"));
	assert_non_null(strstr(buf, "\"authorization_policies\":[]"));
	free(buf);
	sn_snapshot_unref(s);

	/* Another namespace: the mesh policy. */
	s = build_ns(y, "prod", NULL);
	assert_int_equal(s->peer_auth.mode, SN_MTLS_STRICT);
	assert_string_equal(s->peer_auth.origin, "PeerAuthentication istio-system/default");
	assert_int_equal(s->peer_auth.n_ports, 0);
	sn_snapshot_unref(s);

	/* Nothing: PERMISSIVE (DESIGN.md §5). */
	s = build("apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec: {ports: [{port: 9080}]}\n");
	assert_int_equal(s->peer_auth.mode, SN_MTLS_PERMISSIVE);
	assert_string_equal(s->peer_auth.origin, "default");
	sn_snapshot_unref(s);
}

static void test_dump_json(void **state)
{
	(void)state;
	struct sn_snapshot *s = build(HDR "metadata: {name: a}\nspec:\n  action: DENY\n  rules:\n"
					  "  - from: [{source: {ipBlocks: [\"10.0.0.0/8\"], notNamespaces: [dev]}}]\n"
					  "    to: [{operation: {ports: [\"8080\"], paths: [\"/x*\"]}}]\n"
					  "    when: [{key: \"request.headers[x-a]\", values: [\"1\"]}]\n");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	sn_snapshot_dump_json(s, f);
	fclose(f);
	const char *want = "\"authorization_policies\":[{\"name\":\"default/a\",\"origin\":\"AuthorizationPolicy "
			   "default/a, authz.yaml:1\",\"action\":\"DENY\",\"rules\":[{\"from\":[{\"notNamespaces\":"
			   "[\"dev\"],\"ipBlocks\":[\"10.0.0.0/8\"]}],\"to\":[{\"ports\":[\"8080\"],\"paths\":[\"/x*\"]}],"
			   "\"when\":[{\"key\":\"request.headers[x-a]\",\"values\":[\"1\"]}]}]}]";
	if (strstr(buf, want) == NULL)
		fail_msg("dump:\n%s\nwant:\n%s", buf, want);
	free(buf);
	sn_snapshot_unref(s);
}

/* A field Sinew does not know: the policy denies everything it covers
 * (docs/security.md "Fail closed"); the same field in a policy for
 * another workload changes nothing here. */
static void test_unenforceable(void **state)
{
	(void)state;
	struct sn_snapshot *s = build(HDR "metadata: {name: typo}\nspec:\n  action: DENY\n  rules:\n"
				      "  - to: [{operation: {paths: [\"/admin\"], methodz: [GET]}}]\n");
	assert_int_equal(s->n_authz, 1);
	assert_true(s->authz[0].unenforceable);
	struct sn_authz_result r = run(s, &(struct rq){ .path = "/public" });
	assert_int_equal(r.decision, SN_AUTHZ_DECISION_DENY);
	assert_string_equal(r.reason, "policy_unenforceable");
	assert_string_equal(r.policy, "default/typo");
	sn_snapshot_unref(s);

	s = build(HDR "metadata: {name: other}\nspec:\n  selector: {matchLabels: {app: ratings}}\n"
		  "  actionz: DENY\n");
	assert_int_equal(s->n_authz, 0);
	assert_int_equal(run(s, &(struct rq){ 0 }).decision, SN_AUTHZ_DECISION_ALLOW);
	sn_snapshot_unref(s);

	/* PeerAuthentication: only the level that applies counts */
	const char *pa = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n";
	char y[1024];
	snprintf(y, sizeof(y), "%smetadata: {name: default, namespace: prod}\nspec: {mtls: {mode: STRICT, x: 1}}\n"
		 "---\n%smetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: PERMISSIVE}}\n",
		 pa, pa);
	s = build(y);
	assert_null(s->peer_auth.unenforceable);
	assert_int_equal(run(s, &(struct rq){ 0 }).decision, SN_AUTHZ_DECISION_ALLOW);
	sn_snapshot_unref(s);
	s = build_ns(y, "prod", NULL);
	assert_string_equal(s->peer_auth.unenforceable, "prod/default");
	r = run(s, &(struct rq){ 0 });
	assert_int_equal(r.decision, SN_AUTHZ_DECISION_DENY);
	assert_string_equal(r.reason, "policy_unenforceable");
	assert_string_equal(r.policy, "prod/default");
	sn_snapshot_unref(s);

	/* RequestAuthentication: the snapshot names it */
	s = build("apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: ra}\n"
		  "spec:\n  jwtRules:\n  - issuer: https://i.test\n    jwksUri: http://127.0.0.1:1/k\n"
		  "    audience: [x]\n");
	assert_string_equal(s->jwt_unenforceable, "default/ra");
	sn_snapshot_unref(s);
}

int main(void)
{
	(void)shared_path;   /* shared helpers this file does not need */
	(void)load_registry;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_diagnostics),
		cmocka_unit_test(test_no_policy_allows),
		cmocka_unit_test(test_allow_by_path_and_method),
		cmocka_unit_test(test_deny_by_path_and_deny_wins),
		cmocka_unit_test(test_default_deny_and_empty_rules),
		cmocka_unit_test(test_audit),
		cmocka_unit_test(test_negative_and_string_forms),
		cmocka_unit_test(test_when_headers),
		cmocka_unit_test(test_ip_blocks),
		cmocka_unit_test(test_ports),
		cmocka_unit_test(test_principals_and_namespaces),
		cmocka_unit_test(test_selector_and_root_namespace),
		cmocka_unit_test(test_request_authentication),
		cmocka_unit_test(test_peer_authentication),
		cmocka_unit_test(test_dump_json),
		cmocka_unit_test(test_unenforceable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
