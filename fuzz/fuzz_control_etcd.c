/* Fuzz target: what sinewd's etcd store reads from etcd
 * (src/control/store_etcd.c): watch lines ({"result":{"events":[...]}},
 * keys and values in base64) applied to the index as the loop thread
 * does, which reaches the stored-resource parser (the directory store's
 * format, sn__stored_parse) and the registry's values. etcd is trusted,
 * but a member's bug, a tampered key, or an older Sinew's value must never
 * crash sinewd. The input is NDJSON, each line one watch line; the store
 * starts empty for every input. After each line the index must be sorted
 * with no duplicate and every entry must have its strings. An input that
 * starts with '#' is instead one stored value, fed to the stored-resource
 * parser alone. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/config.h"
#include "sinew/control.h"
#include "sinew/log.h"
#include "control/store_internal.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_MAX_INPUT (256u << 10)

static void check_index(const struct sn_store *st)
{
	for (size_t i = 0; i < st->n; i++) {
		const struct sn_stored *e = st->v[i];
		CHECK(e->api_version != NULL && e->namespace_ != NULL && e->name != NULL && e->text != NULL);
		if (i == 0)
			continue;
		const struct sn_stored *p = st->v[i - 1];
		int c = p->kind != e->kind ? (p->kind < e->kind ? -1 : 1) : strcmp(p->namespace_, e->namespace_);
		if (c == 0)
			c = strcmp(p->name, e->name);
		CHECK(c < 0);
	}
	const struct sn_shared_reg *r;
	size_t n = sn_store_shared_regs(st, &r);
	for (size_t i = 1; i < n; i++) {
		int c = strcmp(r[i - 1].ns, r[i].ns);
		CHECK(c < 0 || (c == 0 && strcmp(r[i - 1].name, r[i].name) < 0));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	if (!init) {
		sn_log_set_level_name("error");
		init = 1;
	}
	if (size > FZ_MAX_INPUT)
		return 0;
	struct sn_store st;
	if (sn__etcd_open_offline(&st) != 0)
		return 0;
	if (size > 0 && data[0] == '#') {
		char *buf = malloc(size + 1), err[300] = "";
		if (buf != NULL) {
			memcpy(buf, data, size);
			buf[size] = '\0';
			struct sn_stored *e = sn__stored_parse(buf, size, err, sizeof(err));
			CHECK(e != NULL || err[0] != '\0');
			sn__stored_free(e);
			free(buf);
		}
		sn_store_close(&st);
		return 0;
	}
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (len > 0) {
			sn__etcd_feed_line(&st, p, len);
			check_index(&st);
		}
		p += len + 1;
	}
	sn_store_close(&st);
	return 0;
}
