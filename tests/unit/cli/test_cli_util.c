/* The CLI's shared helpers: URL parsing, escaping, kubectl names, ages,
 * tables, file expansion, JSON access, and argument errors of commands
 * (exit status 2 before any network). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "sinew/cli.h"

static void test_url_parse(void **state)
{
	struct sn_http_url u;
	char err[300];
	(void)state;
	assert_int_equal(sn_http_url_parse("http://127.0.0.1:15080", &u, err, sizeof(err)), 0);
	assert_string_equal(u.host, "127.0.0.1");
	assert_string_equal(u.port, "15080");
	assert_string_equal(u.text, "http://127.0.0.1:15080");
	assert_int_equal(sn_http_url_parse("http://[::1]:9/", &u, err, sizeof(err)), 0);
	assert_string_equal(u.host, "::1");
	assert_string_equal(u.port, "9");
	assert_string_equal(u.authority, "[::1]:9");
	assert_int_equal(sn_http_url_parse("http://localhost", &u, err, sizeof(err)), 0);
	assert_string_equal(u.port, "80");
	assert_int_not_equal(sn_http_url_parse("https://x:1", &u, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "https is not supported"));
	assert_int_not_equal(sn_http_url_parse("127.0.0.1:15080", &u, err, sizeof(err)), 0);
	assert_int_not_equal(sn_http_url_parse("http://h:0", &u, err, sizeof(err)), 0);
	assert_int_not_equal(sn_http_url_parse("http://h:99999", &u, err, sizeof(err)), 0);
	assert_int_not_equal(sn_http_url_parse("http://h:1/api", &u, err, sizeof(err)), 0);
	assert_int_not_equal(sn_http_url_parse("http://:1", &u, err, sizeof(err)), 0);
	assert_int_not_equal(sn_http_url_parse("http://[::1:1", &u, err, sizeof(err)), 0);
}

static void test_server_choice(void **state)
{
	(void)state;
	unsetenv("SINEW_SERVER");
	assert_string_equal(sn_cli_server(NULL), SN_CLI_DEFAULT_SERVER);
	setenv("SINEW_SERVER", "http://127.0.0.1:1", 1);
	assert_string_equal(sn_cli_server(NULL), "http://127.0.0.1:1");
	assert_string_equal(sn_cli_server("http://x:2"), "http://x:2");
	unsetenv("SINEW_SERVER");
}

static void test_escape_and_names(void **state)
{
	char buf[64];
	(void)state;
	sn_cli_url_escape("dir/a b&c=d.yaml", buf, sizeof(buf));
	assert_string_equal(buf, "dir/a%20b%26c%3Dd.yaml");
	sn_cli_url_escape("aaaaaaaaaa", buf, 6);   /* bounded */
	assert_true(strlen(buf) < 6);
	sn_cli_kind_resource("VirtualService", buf, sizeof(buf));
	assert_string_equal(buf, "virtualservice.networking.istio.io");
	sn_cli_kind_resource("Service", buf, sizeof(buf));
	assert_string_equal(buf, "service");
	sn_cli_kind_resource("AuthorizationPolicy", buf, sizeof(buf));
	assert_string_equal(buf, "authorizationpolicy.security.istio.io");
	sn_cli_kind_resource("Widget", buf, sizeof(buf));
	assert_string_equal(buf, "widget");
	sn_cli_kind_resource("", buf, sizeof(buf));
	assert_string_equal(buf, "unknown");
	sn_cli_age(5, buf, sizeof(buf));
	assert_string_equal(buf, "5s");
	sn_cli_age(600, buf, sizeof(buf));
	assert_string_equal(buf, "10m");
	sn_cli_age(3 * 3600, buf, sizeof(buf));
	assert_string_equal(buf, "3h");
	sn_cli_age(5 * 86400, buf, sizeof(buf));
	assert_string_equal(buf, "5d");
	assert_true(sn_cli_is_help("--help"));
	assert_false(sn_cli_is_help("--helpme"));
}

static void test_table(void **state)
{
	struct sn_cli_table t;
	char *out = NULL;
	size_t len = 0;
	(void)state;
	FILE *f = open_memstream(&out, &len);
	assert_non_null(f);
	sn_cli_table_init(&t, 3);
	const char *h[] = { "NAMESPACE", "NAME", "STATUS" };
	const char *r1[] = { "default", "reviews", "Accepted" };
	const char *r2[] = { "x", NULL, "" };
	sn_cli_table_row(&t, h);
	sn_cli_table_row(&t, r1);
	sn_cli_table_row(&t, r2);
	sn_cli_table_print(&t, f);
	fclose(f);
	assert_string_equal(out, "NAMESPACE   NAME      STATUS\n"
				 "default     reviews   Accepted\n"
				 "x           -         -\n");
	free(out);
	sn_cli_table_free(&t);
}

static void test_expand_files_sorted(void **state)
{
	char dir[] = "/tmp/sinew-cli-unit-XXXXXX";
	char path[256];
	(void)state;
	assert_non_null(mkdtemp(dir));
	const char *names[] = { "b.yaml", "a.yml", "c.json", "notes.txt", ".hidden.yaml" };
	for (size_t i = 0; i < 5; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fputs("kind: Service\n", f);
		fclose(f);
	}
	char *args[] = { dir, (char *)"-" };
	char **files;
	size_t n;
	assert_int_equal(sn_cli_expand_files(args, 2, &files, &n), 0);
	assert_int_equal(n, 4);
	assert_non_null(strstr(files[0], "/a.yml"));
	assert_non_null(strstr(files[1], "/b.yaml"));
	assert_non_null(strstr(files[2], "/c.json"));
	assert_string_equal(files[3], "-");
	char *text;
	size_t len;
	assert_int_equal(sn_cli_read_file(files[1], &text, &len), 0);
	assert_string_equal(text, "kind: Service\n");
	free(text);
	sn_cli_free_strv(files, n);
	char *missing[] = { (char *)"/nonexistent/sinew" };
	assert_int_equal(sn_cli_expand_files(missing, 1, &files, &n), -1);
	for (size_t i = 0; i < 5; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

static void test_json(void **state)
{
	const char *j = "{\"a\":\"x\",\"n\":12,\"t\":true,\"z\":null,\"q\":\"null\",\"l\":[1,2,3],"
			"\"s\":\"line\\nnext \\u00e9\"}";
	(void)state;
	struct fy_document *doc = sn_cli_json_parse(j, strlen(j));
	assert_non_null(doc);
	struct fy_node *r = sn_cli_json_root(doc);
	assert_string_equal(sn_cli_json_str(r, "a"), "x");
	assert_int_equal(sn_cli_json_int(r, "n", -1), 12);
	assert_int_equal(sn_cli_json_int(r, "a", -1), -1);
	assert_true(sn_cli_json_bool(r, "t"));
	assert_null(sn_cli_json_str(r, "z"));
	assert_string_equal(sn_cli_json_str(r, "q"), "null");
	assert_string_equal(sn_cli_json_str_or(r, "missing", "d"), "d");
	assert_int_equal(sn_cli_json_len(sn_cli_json_get(r, "l")), 3);
	assert_null(sn_cli_json_at(sn_cli_json_get(r, "l"), 3));
	assert_string_equal(sn_cli_json_str(r, "s"), "line\nnext \xc3\xa9");
	sn_cli_json_free(doc);
	assert_null(sn_cli_json_parse("", 0));
}

static int run_cmd(int (*fn)(int, char **), int n, ...)
{
	char *argv[16];
	va_list ap;
	va_start(ap, n);
	for (int i = 0; i < n; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	argv[n] = NULL;
	FILE *saved = stderr;
	stderr = fopen("/dev/null", "w");
	int rc = fn(n, argv);
	fclose(stderr);
	stderr = saved;
	return rc;
}

static void test_usage_errors_exit_2(void **state)
{
	(void)state;
	assert_int_equal(run_cmd(sn_cli_get, 1, "get"), 2);
	assert_int_equal(run_cmd(sn_cli_get, 2, "get", "nokind"), 2);
	assert_int_equal(run_cmd(sn_cli_get, 4, "get", "vs", "-o", "xml"), 2);
	assert_int_equal(run_cmd(sn_cli_get, 5, "get", "vs", "-A", "-n", "x"), 2);
	assert_int_equal(run_cmd(sn_cli_apply, 1, "apply"), 2);
	assert_int_equal(run_cmd(sn_cli_apply, 4, "apply", "-f", "x", "extra"), 2);
	assert_int_equal(run_cmd(sn_cli_delete, 2, "delete", "vs"), 2);
	assert_int_equal(run_cmd(sn_cli_delete, 3, "delete", "nokind", "x"), 2);
	assert_int_equal(run_cmd(sn_cli_analyze, 2, "analyze", "--live"), 2);
	assert_int_equal(run_cmd(sn_cli_explain, 1, "explain"), 2);
	assert_int_equal(run_cmd(sn_cli_explain, 4, "explain", "-H", "nocolon", "http://x/"), 2);
	assert_int_equal(run_cmd(sn_cli_explain, 2, "explain", "https://x/"), 2);
	assert_int_equal(run_cmd(sn_cli_proxy_config, 2, "proxy-config", "routes"), 2);
	assert_int_equal(run_cmd(sn_cli_proxy_config, 3, "proxy-config", "bogus", "p"), 2);
	assert_int_equal(run_cmd(sn_cli_completion, 2, "completion", "fish"), 2);
	assert_int_equal(run_cmd(sn_cli_up, 2, "up", "stray"), 2);
	assert_int_equal(run_cmd(sn_cli_up, 3, "up", "--api", "nonsense"), 2);
}

static void test_unreachable_is_exit_1(void **state)
{
	(void)state;
	/* port 1 on loopback: nothing listens, connect is refused at once */
	assert_int_equal(run_cmd(sn_cli_get, 4, "get", "vs", "--server", "http://127.0.0.1:1"), 1);
	struct sn_http_response r;
	char err[400];
	assert_int_equal(sn_cli_http("http://127.0.0.1:1", "GET", "/", NULL, NULL, 0, 2000, "sinewd",
				     "start it with `sinew up`", &r, err, sizeof(err)),
			 -1);
	assert_string_equal(err, "cannot reach sinewd at http://127.0.0.1:1 (connection refused); "
				 "start it with `sinew up`");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_parse),
		cmocka_unit_test(test_server_choice),
		cmocka_unit_test(test_escape_and_names),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_expand_files_sorted),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_usage_errors_exit_2),
		cmocka_unit_test(test_unreachable_is_exit_1),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
