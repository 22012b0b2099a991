/* Helpers shared by the config unit tests (header-only, static). */
#ifndef SN_CFG_TEST_UTIL_H
#define SN_CFG_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sinew/config.h"

static void path_join(char *buf, size_t size, const char *env, const char *fallback, const char *rel)
{
	const char *base = getenv(env);
	snprintf(buf, size, "%s/%s", base && base[0] ? base : fallback, rel);
}

static void shared_path(char *buf, size_t size, const char *rel)
{
	path_join(buf, size, "SINEW_SHARED", "/work/shared", rel);
}

static void src_path(char *buf, size_t size, const char *rel)
{
	path_join(buf, size, "SINEW_SRC", "/work/main", rel);
}

static void print_diags(const struct sn_diags *d)
{
	sn_diags_print(d, stderr);
}

/* 1 if some diagnostic of severity sev contains every given substring
 * (NULL-terminated list) in its formatted text. */
static int has_diag(const struct sn_diags *d, enum sn_diag_severity sev, ...)
{
	char buf[2048];
	for (size_t i = 0; i < d->n; i++) {
		if (d->v[i].severity != sev)
			continue;
		sn_diag_format(&d->v[i], buf, sizeof(buf));
		va_list ap;
		va_start(ap, sev);
		int ok = 1;
		const char *s;
		while ((s = va_arg(ap, const char *)) != NULL)
			if (strstr(buf, s) == NULL)
				ok = 0;
		va_end(ap);
		if (ok)
			return 1;
	}
	return 0;
}

/* Loads text as t.yaml into set (initialised, maybe holding more) and
 * translates it for id; fails the test on an error (diagnostics
 * printed). set is freed. */
__attribute__((unused)) static struct sn_snapshot *build_snapshot_in(struct sn_config_set *set, const char *text,
								const struct sn_proxy_identity *id,
								struct sn_diags *d)
{
	if (sn_config_load_text(set, "t.yaml", text, strlen(text), d) != 0) {
		print_diags(d);
		fail_msg("load");
	}
	struct sn_snapshot *s = NULL;
	if (sn_config_translate(set, id, d, &s) != 0) {
		print_diags(d);
		fail_msg("translate");
	}
	sn_config_set_free(set);
	return s;
}

/* Loads text as t.yaml and translates it for id; fails the test on an
 * error (diagnostics printed). d is initialised here; the caller frees it. */
__attribute__((unused)) static struct sn_snapshot *build_snapshot(const char *text, const struct sn_proxy_identity *id,
							     struct sn_diags *d)
{
	struct sn_config_set set;
	sn_config_set_init(&set);
	sn_diags_init(d);
	return build_snapshot_in(&set, text, id, d);
}

#define assert_diag(d, sev, ...)                                                 \
	do {                                                                     \
		if (!has_diag((d), (sev), __VA_ARGS__, (const char *)NULL)) {    \
			print_diags(d);                                          \
			fail_msg("no %s diagnostic with: %s",                    \
				 (sev) == SN_DIAG_ERROR ? "error" : "warning", #__VA_ARGS__); \
		}                                                                \
	} while (0)

static void load_registry(struct sn_config_set *set, struct sn_diags *d)
{
	char p[1024];
	src_path(p, sizeof(p), "tests/config/bookinfo-registry.yaml");
	int rc = sn_config_load_file(set, p, d);
	if (rc != 0)
		print_diags(d);
	assert_int_equal(rc, 0);
}

#endif
