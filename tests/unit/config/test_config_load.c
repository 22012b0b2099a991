/* Loading: Istio's bookinfo files load unchanged; malformed input is an
 * error with file:line and field path; unknown fields are warnings. */
#include "cfg_test_util.h"

#include <dirent.h>

static void test_networking_files_load_and_translate(void **state)
{
	(void)state;
	char dir[1024];
	shared_path(dir, sizeof(dir), "conformance/istio-bookinfo/networking");
	DIR *dp = opendir(dir);
	assert_non_null(dp);
	struct dirent *e;
	int files = 0;
	while ((e = readdir(dp)) != NULL) {
		size_t n = strlen(e->d_name);
		if (n < 6 || strcmp(e->d_name + n - 5, ".yaml") != 0)
			continue;
		char p[2048];
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		struct sn_config_set set;
		struct sn_diags d;
		sn_config_set_init(&set);
		sn_diags_init(&d);
		load_registry(&set, &d);
		int rc = sn_config_load_file(&set, p, &d);
		if (rc != 0 || d.errors != 0) {
			print_diags(&d);
			fail_msg("%s: %zu errors", e->d_name, d.errors);
		}
		/* the routing files translate together with the subsets they use */
		if (strncmp(e->d_name, "destination-rule", 16) != 0) {
			char dr[2048];
			snprintf(dr, sizeof(dr), "%s/destination-rule-all.yaml", dir);
			assert_int_equal(sn_config_load_file(&set, dr, &d), 0);
		}
		struct sn_proxy_identity id = { .service = "productpage", .namespace_ = "default" };
		struct sn_snapshot *snap = NULL;
		rc = sn_config_translate(&set, &id, &d, &snap);
		if (rc != 0 || d.errors != 0) {
			print_diags(&d);
			fail_msg("%s: translate: %zu errors", e->d_name, d.errors);
		}
		assert_non_null(snap);
		FILE *devnull = fopen("/dev/null", "w");
		sn_snapshot_dump_json(snap, devnull);
		fclose(devnull);
		sn_snapshot_unref(snap);
		sn_diags_free(&d);
		sn_config_set_free(&set);
		files++;
	}
	closedir(dp);
	assert_true(files >= 20);
}

static void test_warned_kinds(void **state)
{
	(void)state;
	char p[1024];
	struct sn_config_set set;
	struct sn_diags d;
	sn_config_set_init(&set);
	sn_diags_init(&d);
	shared_path(p, sizeof(p), "conformance/istio-bookinfo/networking/bookinfo-gateway.yaml");
	assert_int_equal(sn_config_load_file(&set, p, &d), 0);
	/* Istio's Gateway is implemented (gateway.c): the file loads clean */
	if (d.warnings != 0)
		print_diags(&d);
	assert_int_equal(d.warnings, 0);
	/* the Gateway API's Gateway shares the kind name; it and HTTPRoute
	 * are implemented (gateway_api.c): every file loads clean */
	static const char *const gwapi[] = { "bookinfo-gateway.yaml", "route-all-v1.yaml", "route-reviews-v1.yaml",
					     "route-reviews-v3.yaml", "route-reviews-50-v3.yaml",
					     "route-reviews-90-10.yaml" };
	for (size_t i = 0; i < SN_ARRAY_LEN(gwapi); i++) {
		char rel[200];
		snprintf(rel, sizeof(rel), "conformance/istio-bookinfo/gateway-api/%s", gwapi[i]);
		shared_path(p, sizeof(p), rel);
		assert_int_equal(sn_config_load_file(&set, p, &d), 0);
	}
	if (d.warnings != 0)
		print_diags(&d);
	assert_int_equal(d.warnings, 0);
	shared_path(p, sizeof(p), "conformance/istio-bookinfo/networking/destination-rule-all-mtls.yaml");
	assert_int_equal(sn_config_load_file(&set, p, &d), 0);
	/* ISTIO_MUTUAL is implemented: whether a proxy can do it is the
	 * proxy's to say (it warns when it holds no identity), not the loader's. */
	assert_false(has_diag(&d, SN_DIAG_WARNING, "spec.trafficPolicy.tls.mode", (const char *)NULL));
	assert_int_equal(d.errors, 0);
	sn_diags_free(&d);
	sn_config_set_free(&set);
}

static void test_kube_bookinfo_loads(void **state)
{
	(void)state;
	char p[1024];
	struct sn_config_set set;
	struct sn_diags d;
	sn_config_set_init(&set);
	sn_diags_init(&d);
	shared_path(p, sizeof(p), "conformance/istio-bookinfo/kube/bookinfo.yaml");
	int rc = sn_config_load_file(&set, p, &d);
	if (rc != 0)
		print_diags(&d);
	assert_int_equal(rc, 0);
	assert_diag(&d, SN_DIAG_WARNING, "kind Deployment is not implemented yet");
	assert_diag(&d, SN_DIAG_WARNING, "kind ServiceAccount is not implemented yet");
	size_t services = 0;
	for (struct sn_resource *r = set.head; r; r = r->next)
		if (r->kind == SN_KIND_SERVICE)
			services++;
	assert_int_equal(services, 4);
	struct sn_snapshot *snap = NULL;
	struct sn_proxy_identity id = { 0 };
	assert_int_equal(sn_config_translate(&set, &id, &d, &snap), 0);
	assert_int_equal(snap->n_services, 4);
	sn_snapshot_unref(snap);
	sn_diags_free(&d);
	sn_config_set_free(&set);
}

/* Loads text (and translates it with the registry when translate is set);
 * leaves the diagnostics in *d. */
static int load_bad(const char *text, int translate, struct sn_diags *d)
{
	struct sn_config_set set;
	sn_config_set_init(&set);
	sn_diags_init(d);
	int rc = 0;
	if (translate)
		load_registry(&set, d);
	rc = sn_config_load_text(&set, "bad.yaml", text, strlen(text), d);
	if (rc == 0 && translate) {
		struct sn_snapshot *snap = NULL;
		struct sn_proxy_identity id = { .namespace_ = "default" };
		rc = sn_config_translate(&set, &id, d, &snap);
		if (rc == 0)
			sn_snapshot_unref(snap);
		else
			assert_null(snap);
	}
	sn_config_set_free(&set);
	return rc;
}

static const char dr_reviews[] =
	"apiVersion: networking.istio.io/v1\n"
	"kind: DestinationRule\n"
	"metadata: {name: reviews}\n"
	"spec:\n"
	"  host: reviews\n"
	"  subsets:\n"
	"  - name: v1\n"
	"    labels: {version: v1}\n"
	"  - name: v2\n"
	"    labels: {version: v2}\n"
	"---\n";

static void test_bad_yaml(void **state)
{
	(void)state;
	struct sn_diags d;
	const char *text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\nspec: [1, 2\n";
	assert_int_equal(load_bad(text, 0, &d), SN_EINVAL);
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:6:", "YAML syntax error");
	sn_diags_free(&d);

	text = "a: b\nc: d: e\n";
	assert_int_equal(load_bad(text, 0, &d), SN_EINVAL);
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:2:", "YAML syntax error");
	sn_diags_free(&d);
}

static void test_unknown_kind_and_api(void **state)
{
	(void)state;
	struct sn_diags d;
	assert_int_equal(load_bad("apiVersion: v1\nkind: Frobnicator\nmetadata: {name: x}\n", 0, &d), SN_EINVAL);
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:2:7: error: Frobnicator: kind: unknown kind \"Frobnicator\"",
		    "VirtualService");
	sn_diags_free(&d);

	assert_int_equal(load_bad("apiVersion: networking.istio.io/v2\nkind: VirtualService\n"
				  "metadata: {name: x}\nspec: {hosts: [a]}\n", 0, &d), SN_EINVAL);
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:1:13:", "apiVersion", "networking.istio.io/v2");
	sn_diags_free(&d);
}

static void test_wrong_type(void **state)
{
	(void)state;
	struct sn_diags d;
	const char *text =
		"apiVersion: networking.istio.io/v1\n"
		"kind: VirtualService\n"
		"metadata:\n"
		"  name: reviews\n"
		"spec:\n"
		"  hosts: [reviews]\n"
		"  http:\n"
		"  - timeout:\n"
		"    - 1s\n"
		"    route:\n"
		"    - destination: {host: reviews}\n";
	assert_int_equal(load_bad(text, 0, &d), SN_EINVAL);
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:9:", "VirtualService default/reviews: spec.http[0].timeout: "
		    "expected a duration string like \"1.5s\", got a sequence");
	sn_diags_free(&d);

	text = "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  ports:\n  - port: http\n";
	assert_int_equal(load_bad(text, 0, &d), SN_EINVAL);
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:6:11:", "spec.ports[0].port", "expected an integer");
	sn_diags_free(&d);
}

static void test_unknown_subset(void **state)
{
	(void)state;
	struct sn_diags d;
	char text[2048];
	snprintf(text, sizeof(text), "%s"
		 "apiVersion: networking.istio.io/v1\n"   /* 12 */
		 "kind: VirtualService\n"
		 "metadata: {name: reviews}\n"
		 "spec:\n"
		 "  hosts: [reviews]\n"
		 "  http:\n"
		 "  - route:\n"
		 "    - destination:\n"
		 "        host: reviews\n"
		 "        subset: v9\n",                    /* 21 */
		 dr_reviews);
	assert_int_equal(load_bad(text, 1, &d), SN_EINVAL);
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:21:17:", "spec.http[0].route[0].destination.subset",
		    "subset \"v9\" is not defined by any DestinationRule for reviews.default.svc.cluster.local; "
		    "define it in a DestinationRule's subsets or fix the name");
	sn_diags_free(&d);
}

static void test_unknown_host(void **state)
{
	(void)state;
	struct sn_diags d;
	const char *text =
		"apiVersion: networking.istio.io/v1\n"
		"kind: VirtualService\n"
		"metadata: {name: reviews}\n"
		"spec:\n"
		"  hosts: [reviews]\n"
		"  http:\n"
		"  - route:\n"
		"    - destination:\n"
		"        host: reveiws\n";
	assert_int_equal(load_bad(text, 1, &d), SN_EINVAL);
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:9:15:", "spec.http[0].route[0].destination.host",
		    "\"reveiws\"", "not a known Service");
	sn_diags_free(&d);
}

static void test_weights(void **state)
{
	(void)state;
	struct sn_diags d;
	char text[2048];
	snprintf(text, sizeof(text), "%s"
		 "apiVersion: networking.istio.io/v1\n"
		 "kind: VirtualService\n"
		 "metadata: {name: reviews}\n"
		 "spec:\n"
		 "  hosts: [reviews]\n"
		 "  http:\n"
		 "  - route:\n"                               /* 18 */
		 "    - destination: {host: reviews, subset: v1}\n"
		 "      weight: 70\n"
		 "    - destination: {host: reviews, subset: v2}\n"
		 "      weight: 20\n",
		 dr_reviews);
	assert_int_equal(load_bad(text, 1, &d), SN_EINVAL);
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:19:", "spec.http[0].route", "weights sum to 90, want 100");
	sn_diags_free(&d);
}

static void test_bad_duration_and_regex(void **state)
{
	(void)state;
	struct sn_diags d;
	const char *text =
		"apiVersion: networking.istio.io/v1\n"
		"kind: VirtualService\n"
		"metadata: {name: reviews, namespace: shop}\n"
		"spec:\n"
		"  hosts: [reviews]\n"
		"  http:\n"
		"  - match:\n"
		"    - uri:\n"
		"        regex: \"/api/([a-z\"\n"              /* 9 */
		"    timeout: 7x\n"                          /* 10 */
		"    retries: {attempts: 3, perTryTimeout: 2}\n" /* 11 */
		"    route:\n"
		"    - destination: {host: reviews}\n";
	assert_int_equal(load_bad(text, 0, &d), SN_EINVAL);
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:9:17:", "VirtualService shop/reviews",
		    "spec.http[0].match[0].uri.regex", "does not compile");
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:10:14:", "spec.http[0].timeout", "\"7x\" is not a duration");
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:11:43:", "spec.http[0].retries.perTryTimeout");
	sn_diags_free(&d);
}

/* rewrite.uriRegexRewrite: a pattern that does not compile, a group the
 * pattern lacks, a lazy quantifier (greediness matters to a rewrite), a
 * stray backslash, and uri with it: each an error at its line. */
static void test_uri_regex_rewrite_errors(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
		{ "{match: \"/a/([a-z\", rewrite: \"/b\"}", "does not compile" },
		{ "{match: \"/a/(x)\", rewrite: \"/b/\\\\2\"}", "\\2 names a capture group the pattern does not have" },
		{ "{match: \"/a/(.*?)\", rewrite: \"/b\"}", "lazy quantifiers" },
		{ "{match: \"/a\", rewrite: \"/b\\\\q\"}", "is \\0 to \\9" },
		{ "{match: \"/a\"}", "rewrite is required" },
		{ "{match: \"/(a)\\\\1\", rewrite: \"/b\"}", "a backreference" },
	};
	for (size_t i = 0; i < SN_ARRAY_LEN(cases); i++) {
		char text[600];
		struct sn_diags d;
		snprintf(text, sizeof(text),
			 "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n"
			 "  hosts: [reviews]\n  http:\n  - rewrite:\n      uriRegexRewrite: %s\n"
			 "    route: [{destination: {host: reviews}}]\n", cases[i][0]);
		assert_int_equal(load_bad(text, 0, &d), SN_EINVAL);
		if (!has_diag(&d, SN_DIAG_ERROR, "bad.yaml:8:", "spec.http[0].rewrite.uriRegexRewrite", cases[i][1],
			      (const char *)NULL)) {
			print_diags(&d);
			fail_msg("case %zu: no error with \"%s\"", i, cases[i][1]);
		}
		sn_diags_free(&d);
	}
	struct sn_diags d;
	assert_int_equal(load_bad("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
				  "spec:\n  hosts: [reviews]\n  http:\n  - rewrite: {uri: /x, uriRegexRewrite: {match: a, "
				  "rewrite: b}}\n    route: [{destination: {host: reviews}}]\n", 0, &d), SN_EINVAL);
	assert_true(has_diag(&d, SN_DIAG_ERROR, "uri or uriRegexRewrite, not both", (const char *)NULL));
	sn_diags_free(&d);
}

static void test_unknown_fields_warn(void **state)
{
	(void)state;
	struct sn_diags d;
	const char *text =
		"apiVersion: networking.istio.io/v1\n"
		"kind: VirtualService\n"
		"metadata: {name: reviews}\n"
		"spec:\n"
		"  hosts: [reviews]\n"
		"  http:\n"
		"  - route:\n"
		"    - destination: {host: reviews}\n"
		"    delegate: {name: other}\n"          /* 9 */
		"    frobnicate: true\n"                    /* 10 */
		"  exportTo: [\".\"]\n";                       /* 11 */
	assert_int_equal(load_bad(text, 0, &d), 0);
	assert_int_equal(d.errors, 0);
	assert_diag(&d, SN_DIAG_WARNING, "bad.yaml:10:5:", "spec.http[0].frobnicate", "unknown field");
	assert_diag(&d, SN_DIAG_WARNING, "bad.yaml:9:5:", "spec.http[0].delegate", "not implemented");
	assert_diag(&d, SN_DIAG_WARNING, "bad.yaml:11:3:", "spec.exportTo", "not implemented");
	sn_diags_free(&d);

	text = "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  type: ClusterIP\n"
	       "  ports:\n  - port: 80\n    targetPort: http\n";
	assert_int_equal(load_bad(text, 0, &d), 0);
	assert_diag(&d, SN_DIAG_WARNING, "bad.yaml:5:3:", "spec.type", "not implemented");
	assert_diag(&d, SN_DIAG_WARNING, "bad.yaml:8:17:", "spec.ports[0].targetPort", "named targetPort");
	sn_diags_free(&d);
}

static void test_misc_errors(void **state)
{
	(void)state;
	struct sn_diags d;
	/* hostname WorkloadEntry address */
	assert_int_equal(load_bad("apiVersion: networking.istio.io/v1beta1\nkind: WorkloadEntry\n"
				  "metadata: {name: w}\nspec: {address: db.example.com}\n", 0, &d), SN_EINVAL);
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:4:", "spec.address", "not an IP address");
	sn_diags_free(&d);
	/* missing name, no spec */
	assert_int_equal(load_bad("apiVersion: v1\nkind: Service\nmetadata: {}\n", 0, &d), SN_EINVAL);
	assert_diag(&d, SN_DIAG_ERROR, "metadata.name", "required");
	sn_diags_free(&d);
	/* aliases are refused, duplicates too */
	assert_int_equal(load_bad("a: &x 1\nb: *x\n", 0, &d), SN_EINVAL);
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:2:5:", "aliases");
	sn_diags_free(&d);
	assert_int_equal(load_bad("kind: Service\nkind: Service\n", 0, &d), SN_EINVAL);
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:2:1:", "duplicate key");
	sn_diags_free(&d);
	/* not UTF-8: refused before the YAML parser (libfyaml hang regression) */
	assert_int_equal(load_bad("a: 1\n%\xb8kk\n", 0, &d), SN_EINVAL);
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:2:2:", "not valid UTF-8");
	sn_diags_free(&d);
	/* a scalar document */
	assert_int_equal(load_bad("hello\n", 0, &d), SN_EINVAL);
	assert_diag(&d, SN_DIAG_ERROR, "bad.yaml:1:1:", "must be a mapping");
	sn_diags_free(&d);
	/* empty documents are skipped */
	assert_int_equal(load_bad("---\n---\n# nothing\n---\n~\n", 0, &d), 0);
	assert_int_equal(d.n, 0);
	sn_diags_free(&d);
	/* deep nesting is bounded */
	char deep[400];
	size_t o = 0;
	for (int i = 0; i < 100; i++)
		deep[o++] = '[';
	for (int i = 0; i < 100; i++)
		deep[o++] = ']';
	deep[o] = '\0';
	assert_int_equal(load_bad(deep, 0, &d), SN_EINVAL);
	assert_diag(&d, SN_DIAG_ERROR, "nested deeper");
	sn_diags_free(&d);
}

static void test_list_kind(void **state)
{
	(void)state;
	struct sn_diags d;
	struct sn_config_set set;
	const char *text =
		"apiVersion: v1\n"
		"kind: List\n"
		"items:\n"
		"- apiVersion: v1\n"
		"  kind: Service\n"
		"  metadata: {name: a}\n"
		"  spec: {ports: [{port: 80}]}\n"
		"- apiVersion: v1\n"
		"  kind: Service\n"
		"  metadata: {name: b}\n"
		"  spec: {ports: [{port: bad}]}\n";
	sn_config_set_init(&set);
	sn_diags_init(&d);
	assert_int_equal(sn_config_load_text(&set, "list.yaml", text, strlen(text), &d), SN_EINVAL);
	assert_int_equal(set.count, 1);
	assert_string_equal(set.head->name, "a");
	assert_diag(&d, SN_DIAG_ERROR, "list.yaml:11:", "items[1].spec.ports[0].port");
	sn_diags_free(&d);
	sn_config_set_free(&set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_networking_files_load_and_translate),
		cmocka_unit_test(test_warned_kinds),
		cmocka_unit_test(test_kube_bookinfo_loads),
		cmocka_unit_test(test_bad_yaml),
		cmocka_unit_test(test_unknown_kind_and_api),
		cmocka_unit_test(test_wrong_type),
		cmocka_unit_test(test_unknown_subset),
		cmocka_unit_test(test_unknown_host),
		cmocka_unit_test(test_weights),
		cmocka_unit_test(test_bad_duration_and_regex),
		cmocka_unit_test(test_uri_regex_rewrite_errors),
		cmocka_unit_test(test_unknown_fields_warn),
		cmocka_unit_test(test_misc_errors),
		cmocka_unit_test(test_list_kind),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
