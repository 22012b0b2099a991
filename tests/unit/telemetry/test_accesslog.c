/* Unit tests for the JSON access log and the JSON escaper under it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sinew/accesslog.h"
#include "sinew/json.h"

/* ---- helpers ---- */

static struct sn_access_entry sample_entry(void)
{
	struct sn_access_entry e = {
		.start_unix_us = 1700000000123456,
		.direction = "outbound",
		.method = SN_STR_LIT("GET"),
		.path = SN_STR_LIT("/api/v1/items?id=7"),
		.authority = SN_STR_LIT("api.default.svc:8080"),
		.protocol = "HTTP/1.1",
		.response_code = 200,
		.response_flags = "-",
		.bytes_received = 12,
		.bytes_sent = 3456,
		.duration_ms = 12.5,
		.upstream_service_time_ms = 10.25,
		.upstream_cluster = "outbound|8080||api.default.svc.cluster.local",
		.upstream_host = "10.0.0.7:8080",
		.route_name = "api-route",
		.attempts = 1,
		.request_id = SN_STR_LIT("abc-123"),
		.user_agent = SN_STR_LIT("curl/7.88.1"),
		.forwarded_for = SN_STR_LIT("10.1.1.1"),
		.downstream_remote = "10.0.0.5:43210",
		.source_workload = "web",
		.destination_service = "api.default.svc.cluster.local",
	};
	return e;
}

/* Formats e and returns the NUL-terminated line (static buffer). */
static const char *format(const struct sn_access_entry *e, size_t *len_out)
{
	static char buf[SN_ACCESS_LOG_LINE_MAX + 1];
	size_t n = sn_access_log_format(e, buf, SN_ACCESS_LOG_LINE_MAX);

	assert_true(n > 0);
	assert_true(n <= SN_ACCESS_LOG_LINE_MAX);
	assert_int_equal(buf[n - 1], '\n');
	assert_null(memchr(buf, '\n', n - 1));   /* exactly one line */
	buf[n] = '\0';
	if (len_out)
		*len_out = n;
	return buf;
}

static void expect_substr_(const char *hay, const char *needle, const char *file, int ln)
{
	if (!strstr(hay, needle)) {
		print_error("%s:%d: missing\n  %s\nin\n  %s\n", file, ln, needle, hay);
		fail();
	}
}
#define expect_substr(hay, needle) expect_substr_((hay), (needle), __FILE__, __LINE__)

/* Every line of path must parse as a JSON object with exactly the access
 * log's keys, be valid UTF-8 and fit the bound. Returns the line count
 * python saw, or -1. */
static const char check_py[] =
	"import json,sys\n"
	"keys={'start_time','direction','method','path','authority','protocol',"
	"'response_code','grpc_status','response_flags','bytes_received','bytes_sent','duration_ms',"
	"'upstream_service_time_ms','upstream_cluster','upstream_host','route_name',"
	"'attempts','request_id','user_agent','x_forwarded_for',"
	"'downstream_remote_address','source_workload','destination_service'}\n"
	"n=0\n"
	"for raw in open(sys.argv[1],'rb'):\n"
	"  assert raw.endswith(b'\\n') and len(raw)<=8192, len(raw)\n"
	"  o=json.loads(raw.decode('utf-8'))\n"
	"  assert set(o)==keys, set(o)^keys\n"
	"  n+=1\n"
	"open(sys.argv[2],'w').write(str(n))\n";

static int python_check(const char *path)
{
	char script[] = "/tmp/sinew_alcheck_XXXXXX";
	char count_path[] = "/tmp/sinew_alcount_XXXXXX";
	char cmd[512], num[32] = { 0 };
	int fd, rc, n = -1;
	FILE *f;

	fd = mkstemp(script);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, check_py, strlen(check_py)), (ssize_t)strlen(check_py));
	close(fd);
	fd = mkstemp(count_path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s %s", script, path, count_path);
	rc = system(cmd);
	if (rc == 0) {
		f = fopen(count_path, "r");
		if (f && fgets(num, sizeof(num), f))
			n = atoi(num);
		if (f)
			fclose(f);
	} else {
		print_error("python3 check failed on %s (kept for inspection)\n", path);
	}
	unlink(script);
	unlink(count_path);
	return n;
}

/* Writes the given lines to a temp file and validates them with python. */
static void check_lines_json(const char *const *lines, const size_t *lens, size_t n)
{
	char path[] = "/tmp/sinew_accesslog_XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(write(fd, lines[i], lens[i]), (ssize_t)lens[i]);
	close(fd);
	assert_int_equal(python_check(path), (int)n);
	unlink(path);
}

static void check_line_json(const char *line, size_t len)
{
	check_lines_json(&line, &len, 1);
}

/* ---- the line ---- */

static void test_format_full_line(void **state)
{
	struct sn_access_entry e = sample_entry();
	size_t n;
	const char *line = format(&e, &n);

	assert_string_equal(line,
		"{\"start_time\":\"2023-11-14T22:13:20.123Z\",\"direction\":\"outbound\","
		"\"method\":\"GET\",\"path\":\"/api/v1/items?id=7\","
		"\"authority\":\"api.default.svc:8080\",\"protocol\":\"HTTP/1.1\","
		"\"response_code\":200,\"grpc_status\":null,\"response_flags\":\"-\",\"bytes_received\":12,"
		"\"bytes_sent\":3456,\"duration_ms\":12.500,\"upstream_service_time_ms\":10.250,"
		"\"upstream_cluster\":\"outbound|8080||api.default.svc.cluster.local\","
		"\"upstream_host\":\"10.0.0.7:8080\",\"route_name\":\"api-route\",\"attempts\":1,"
		"\"request_id\":\"abc-123\",\"user_agent\":\"curl/7.88.1\","
		"\"x_forwarded_for\":\"10.1.1.1\",\"downstream_remote_address\":\"10.0.0.5:43210\","
		"\"source_workload\":\"web\","
		"\"destination_service\":\"api.default.svc.cluster.local\"}\n");
	check_line_json(line, n);
}

static void test_missing_values_are_null(void **state)
{
	struct sn_access_entry e = sample_entry();
	size_t n;
	const char *line;

	e.upstream_service_time_ms = -1;
	e.upstream_cluster = NULL;
	e.upstream_host = NULL;
	e.route_name = NULL;
	e.request_id = SN_STR_NULL;
	e.user_agent = SN_STR_NULL;
	e.forwarded_for = SN_STR_LIT("");   /* present but empty: "" */
	e.response_code = 0;
	e.duration_ms = NAN;
	e.start_unix_us = 999;   /* 1970, and sub-millisecond */
	line = format(&e, &n);
	expect_substr(line, "\"start_time\":\"1970-01-01T00:00:00.000Z\"");
	expect_substr(line, "\"response_code\":0,");
	expect_substr(line, "\"duration_ms\":null,");
	expect_substr(line, "\"upstream_service_time_ms\":null,");
	expect_substr(line, "\"upstream_cluster\":null,\"upstream_host\":null,\"route_name\":null,");
	expect_substr(line, "\"request_id\":null,\"user_agent\":null,\"x_forwarded_for\":\"\",");
	check_line_json(line, n);
}

static void test_escaping(void **state)
{
	static const char path[] =
		"/a\"b\\c\nd\te\x01\x1f\x7f"   /* quote, backslash, controls, DEL */
		"\xe2\x82\xac"                   /* euro sign: valid, kept */
		"\xff"                           /* never valid */
		"\xc0\xaf"                       /* overlong '/' */
		"\xed\xa0\x80"                   /* UTF-16 surrogate */
		"\xf0\x9f\x98\x80"               /* emoji: valid 4-byte */
		"\xe2\x82";                      /* cut-off sequence at the end */
	struct sn_access_entry e = sample_entry();
	size_t n;
	const char *line;

	e.path = sn_str_make(path, sizeof(path) - 1);
	e.user_agent = sn_str_make("nul\0byte", 8);
	line = format(&e, &n);
	expect_substr(line,
		"\"path\":\"/a\\\"b\\\\c\\nd\\te\\u0001\\u001f\x7f"
		"\xe2\x82\xac"
		"\xef\xbf\xbd"
		"\xef\xbf\xbd\xef\xbf\xbd"
		"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
		"\xf0\x9f\x98\x80"
		"\xef\xbf\xbd\xef\xbf\xbd\",");
	expect_substr(line, "\"user_agent\":\"nul\\u0000byte\"");
	check_line_json(line, n);
}

static void test_100k_path_truncated(void **state)
{
	enum { BIG = 100 * 1024 };
	char *path = malloc(BIG);
	struct sn_access_entry e = sample_entry();
	size_t n;
	const char *line;

	assert_non_null(path);
	path[0] = '/';
	for (size_t i = 1; i < BIG; i++)
		path[i] = (char)('a' + i % 26);
	e.path = sn_str_make(path, BIG);
	line = format(&e, &n);
	assert_true(n <= SN_ACCESS_LOG_LINE_MAX);
	expect_substr(line, SN_JSON_TRUNCATED "\",\"authority\":");
	/* Every field after the path is still there, whole. */
	expect_substr(line, "\"destination_service\":\"api.default.svc.cluster.local\"}\n");
	expect_substr(line, "\"user_agent\":\"curl/7.88.1\"");
	check_line_json(line, n);
	free(path);
}

static void test_every_field_huge(void **state)
{
	enum { BIG = 100 * 1024 };
	char *ctl = malloc(BIG + 1);     /* escapes to 6 bytes per byte */
	char *utf = malloc(BIG + 1);     /* 3-byte sequences; any cut splits one */
	struct sn_access_entry e;
	const char *lines[2];
	size_t lens[2];
	char *copy[2];

	assert_non_null(ctl);
	assert_non_null(utf);
	memset(ctl, 0x01, BIG);
	ctl[BIG] = '\0';
	for (size_t i = 0; i < BIG; i++)
		utf[i] = "\xe2\x82\xac"[i % 3];
	utf[BIG] = '\0';

	for (int k = 0; k < 2; k++) {
		char *s = k ? utf : ctl;
		struct sn_str v = sn_str_make(s, BIG);

		e = (struct sn_access_entry){
			.start_unix_us = INT64_MAX, .direction = s, .method = v, .path = v,
			.authority = v, .protocol = s, .response_code = -2147483647 - 1,
			.response_flags = s, .bytes_received = UINT64_MAX,
			.bytes_sent = UINT64_MAX, .duration_ms = 1e300,
			.upstream_service_time_ms = INFINITY, .upstream_cluster = s,
			.upstream_host = s, .route_name = s, .attempts = UINT32_MAX,
			.request_id = v, .user_agent = v, .forwarded_for = v,
			.downstream_remote = s, .source_workload = s, .destination_service = s,
		};
		lines[k] = format(&e, &lens[k]);
		assert_true(lens[k] <= SN_ACCESS_LOG_LINE_MAX);
		expect_substr(lines[k], SN_JSON_TRUNCATED "\"}\n");
		expect_substr(lines[k], "\"bytes_sent\":18446744073709551615,");
		expect_substr(lines[k], "\"response_code\":-2147483648,");
		expect_substr(lines[k], "\"duration_ms\":1000000000000.000,");
		copy[k] = strdup(lines[k]);   /* format() reuses its buffer */
		assert_non_null(copy[k]);
		lines[k] = copy[k];
	}
	check_lines_json(lines, lens, 2);
	free(copy[0]);
	free(copy[1]);
	free(ctl);
	free(utf);
}

static void test_small_buffer(void **state)
{
	struct sn_access_entry e = sample_entry();
	char small[64], mid[1536];
	size_t n;

	/* Too small for even the keys: nothing, rather than a broken line. */
	assert_int_equal(sn_access_log_format(&e, small, sizeof(small)), 0);
	n = sn_access_log_format(&e, mid, sizeof(mid));
	assert_true(n > 0 && n <= sizeof(mid));
	assert_int_equal(mid[n - 1], '\n');
	check_line_json(mid, n);
}

/* ---- the escaper and writer directly ---- */

static void test_json_escape_never_splits(void **state)
{
	char out[16];
	size_t used, w;

	/* "\u0001" needs 6 bytes: with 5 left it is not started. */
	w = sn_json_escape(out, 5, "ab\x01", 3, &used);
	assert_int_equal(w, 2);
	assert_int_equal(used, 2);
	w = sn_json_escape(out, 4, "a\xe2\x82\xac", 4, &used);
	assert_int_equal(w, 4);
	assert_int_equal(used, 4);
	w = sn_json_escape(out, 3, "a\xe2\x82\xac", 4, &used);
	assert_int_equal(w, 1);
	assert_int_equal(used, 1);
	w = sn_json_escape(out, sizeof(out), "\"\\\b\f\n\r\t", 7, &used);
	assert_int_equal(w, 14);
	assert_memory_equal(out, "\\\"\\\\\\b\\f\\n\\r\\t", 14);
}

static void test_json_out_str_bounds(void **state)
{
	char buf[64];
	struct sn_json_out o;

	sn_json_out_init(&o, buf, sizeof(buf));
	assert_int_equal(sn_json_out_str(&o, "hello", 5, 7), 0);
	assert_int_equal(o.len, 7);
	assert_memory_equal(buf, "\"hello\"", 7);

	/* One byte short: truncated, with the marker, within max. */
	sn_json_out_init(&o, buf, sizeof(buf));
	assert_int_equal(sn_json_out_str(&o, "0123456789abcdefghijklmnop", 26, 27), 1);
	assert_int_equal(o.len, 27);
	assert_memory_equal(buf, "\"0123456789a" SN_JSON_TRUNCATED "\"", 27);

	/* Short value fits in less than the marker needs. */
	sn_json_out_init(&o, buf, 4);
	assert_int_equal(sn_json_out_str(&o, "ab", 2, 100), 0);
	assert_memory_equal(buf, "\"ab\"", 4);
	sn_json_out_init(&o, buf, 4);
	assert_int_equal(sn_json_out_str(&o, "abc", 3, 100), SN_ELIMIT);
	assert_int_equal(o.len, 0);

	sn_json_out_init(&o, buf, sizeof(buf));
	assert_int_equal(sn_json_out_fixed3(&o, -1500), 0);
	assert_int_equal(sn_json_out_raw(&o, " ", 1), 0);
	assert_int_equal(sn_json_out_i64(&o, INT64_MIN), 0);
	assert_memory_equal(buf, "-1.500 -9223372036854775808", o.len);
}

/* ---- writing ---- */

enum { THREADS = 4, LINES_PER_THREAD = 500 };

static void *writer_main(void *p)
{
	struct sn_access_log *log = p;
	struct sn_access_entry e = sample_entry();
	char path[6000];

	/* Lines of about 6 KiB, so a torn write would show. */
	memset(path, 'p', sizeof(path));
	path[0] = '/';
	e.path = sn_str_make(path, sizeof(path));
	for (int i = 0; i < LINES_PER_THREAD; i++)
		if (sn_access_log_write(log, &e) != 0)
			return (void *)1;
	return NULL;
}

static void test_write_lines_from_threads(void **state)
{
	char path[] = "/tmp/sinew_accesslog_XXXXXX";
	int fd = mkstemp(path);
	struct sn_access_log *log;
	pthread_t t[THREADS];
	void *rc;

	assert_true(fd >= 0);
	close(fd);
	log = sn_access_log_open(path);
	assert_non_null(log);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, writer_main, log), 0);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], &rc);
		assert_null(rc);
	}
	sn_access_log_close(log);

	/* Reopening appends. */
	log = sn_access_log_open(path);
	assert_non_null(log);
	{
		struct sn_access_entry e = sample_entry();

		assert_int_equal(sn_access_log_write(log, &e), 0);
	}
	sn_access_log_close(log);
	assert_int_equal(python_check(path), THREADS * LINES_PER_THREAD + 1);
	unlink(path);
}

static void test_open_errors_and_stdout(void **state)
{
	struct sn_access_log *log;

	errno = 0;
	log = sn_access_log_open("/nonexistent-dir/sinew/access.log");
	assert_null(log);
	assert_int_equal(errno, ENOENT);

	log = sn_access_log_open("-");
	assert_non_null(log);
	sn_access_log_close(log);
	/* stdout belongs to the process, not the log. */
	assert_true(fcntl(STDOUT_FILENO, F_GETFD) >= 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_full_line),
		cmocka_unit_test(test_missing_values_are_null),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_100k_path_truncated),
		cmocka_unit_test(test_every_field_huge),
		cmocka_unit_test(test_small_buffer),
		cmocka_unit_test(test_json_escape_never_splits),
		cmocka_unit_test(test_json_out_str_bounds),
		cmocka_unit_test(test_write_lines_from_threads),
		cmocka_unit_test(test_open_errors_and_stdout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
