/* The CLI's Prometheus client (src/cli/prom.c), the parts that need no
 * Prometheus: histogram_quantile's arithmetic, the URL it is given, the
 * sinewd API parameters it answers, and numbers printed as sinewd prints
 * them. Against a real Prometheus: tests/integration/test_prometheus_views.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli/prom.c"

static void set_les(struct data *d, const double *les, size_t n)
{
	for (size_t i = 0; i < n; i++)
		d->les[i] = les[i];
	d->n_les = n;
}

/* Values Prometheus 2.42 gives for histogram_quantile over the same
 * cumulative buckets. */
static void test_quantile_as_prometheus(void **state)
{
	static struct data d;
	/* out of order, as label order would give them */
	const double les[] = { 10, 0.5, INFINITY, 1, 5 };
	double cum[MAX_LE] = { 0 };

	(void)state;
	set_les(&d, les, 5);
	/* 10 in (0, 0.5], 30 in (1, 5], 60 in (5, 10]: cumulative 10, 10, 40, 100, 100 */
	cum[1] = 10;   /* le 0.5 */
	cum[3] = 10;   /* le 1 */
	cum[4] = 40;   /* le 5 */
	cum[0] = 100;  /* le 10 */
	cum[2] = 100;  /* +Inf */
	assert_float_equal(quantile(&d, cum, 0.05), 0.25, 1e-9);             /* in the first bucket, from 0 */
	assert_float_equal(quantile(&d, cum, 0.5), 5 + 5 * (10.0 / 60), 1e-9);
	assert_float_equal(quantile(&d, cum, 0.25), 1 + 4 * (15.0 / 30), 1e-9);
	/* a rank in +Inf answers the highest finite bound */
	cum[2] = 200;
	assert_float_equal(quantile(&d, cum, 0.99), 10, 1e-9);
	/* no observations, or no +Inf bucket: none */
	double zero[MAX_LE] = { 0 };
	assert_true(isnan(quantile(&d, zero, 0.5)));
	const double finite[] = { 1, 5 };
	set_les(&d, finite, 2);
	assert_true(isnan(quantile(&d, cum, 0.5)));
	/* a non-monotonic read (a scrape between bucket updates) is made monotonic */
	const double three[] = { 1, 5, INFINITY };
	double bumpy[MAX_LE] = { 10, 8, 10 };
	set_les(&d, three, 3);
	assert_float_equal(quantile(&d, bumpy, 0.5), 0.5, 1e-9);
}

static void test_param_decodes(void **state)
{
	char buf[16];

	(void)state;
	assert_int_equal(param("resource=deploy&namespace=a%2Fb&window=1m", "namespace", buf, sizeof(buf)), 1);
	assert_string_equal(buf, "a/b");
	assert_int_equal(param("resource=deploy&window=1m", "window", buf, sizeof(buf)), 1);
	assert_string_equal(buf, "1m");
	assert_int_equal(param("names=x&name=y+z", "name", buf, sizeof(buf)), 1);
	assert_string_equal(buf, "y z");
	assert_int_equal(param("resource=deploy", "name", buf, sizeof(buf)), 0);
	assert_int_equal(param(NULL, "name", buf, sizeof(buf)), 0);
	assert_int_equal(param("name=%zz", "name", buf, sizeof(buf)), -1);
	assert_int_equal(param("name=%4", "name", buf, sizeof(buf)), -1);
	assert_int_equal(param("name=0123456789abcdefgh", "name", buf, sizeof(buf)), -1);
}

static void test_open_takes_a_path_prefix(void **state)
{
	struct sn_cli_prom p;

	(void)state;
	assert_int_equal(sn_cli_prom_open("http://127.0.0.1:9090", &p), 0);
	assert_string_equal(p.base, "http://127.0.0.1:9090");
	assert_string_equal(p.prefix, "");
	assert_string_equal(p.names, "sinew");
	assert_int_equal(sn_cli_prom_open("http://prom.example:9090/prometheus/", &p), 0);
	assert_string_equal(p.base, "http://prom.example:9090");
	assert_string_equal(p.prefix, "/prometheus");
	assert_string_equal(p.text, "http://prom.example:9090/prometheus");
	assert_int_equal(sn_cli_prom_open("http://[::1]:9090/", &p), 0);
	assert_string_equal(p.prefix, "");
	assert_int_equal(sn_cli_prom_open("https://127.0.0.1:9090", &p), -1);
	assert_int_equal(sn_cli_prom_open("127.0.0.1:9090", &p), -1);
	assert_int_equal(sn_cli_prom_open("http://127.0.0.1:9090/api?x=1", &p), -1);
	assert_int_equal(sn_cli_prom_open("http://127.0.0.1:9090/a b", &p), -1);
	assert_int_equal(sn_cli_prom_open("http://127.0.0.1:9090/a\"b", &p), -1);
	assert_int_equal(sn_cli_prom_open("http://127.0.0.1:x", &p), -1);
}

static void test_env_and_flag(void **state)
{
	(void)state;
	unsetenv("SINEW_PROMETHEUS");
	assert_null(sn_cli_prometheus(NULL));
	assert_null(sn_cli_prometheus(""));
	setenv("SINEW_PROMETHEUS", "http://env:9090", 1);
	assert_string_equal(sn_cli_prometheus(NULL), "http://env:9090");
	assert_string_equal(sn_cli_prometheus("http://flag:9090"), "http://flag:9090");
	unsetenv("SINEW_PROMETHEUS");
}

static void test_numbers_as_sinewd_prints_them(void **state)
{
	struct sn_out o = { 0 };

	(void)state;
	sn_out_fixed(&o, 0.90149, 4);
	sn_out_cstr(&o, " ");
	sn_out_fixed(&o, 1.0, 4);
	sn_out_cstr(&o, " ");
	sn_out_fixed(&o, 33.35, 3);
	sn_out_cstr(&o, " ");
	sn_out_fixed(&o, NAN, 3);
	sn_out_cstr(&o, " ");
	sn_out_fixed(&o, INFINITY, 3);
	sn_out_raw(&o, "", 1);
	assert_string_equal(o.p, "0.9015 1.0000 33.350 null null");
	sn_out_free(&o);
	assert_int_equal(count_of(2054.6), 2055);
	assert_int_equal(count_of(NAN), 0);
	assert_int_equal(count_of(-1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quantile_as_prometheus),
		cmocka_unit_test(test_param_decodes),
		cmocka_unit_test(test_open_takes_a_path_prefix),
		cmocka_unit_test(test_env_and_flag),
		cmocka_unit_test(test_numbers_as_sinewd_prints_them),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
