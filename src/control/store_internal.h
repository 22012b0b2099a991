#ifndef SINEW_STORE_INTERNAL_H
#define SINEW_STORE_INTERNAL_H

/* Between the store's index (store.c) and its backends: the directory
 * (store.c) and etcd (store_etcd.c). Loop thread only. */

#include "sinew/control.h"

#define SN__STORE_MAX_HEADER 4096

/* A backend: where resources are made durable. */
struct sn_store_ops {
	const char *name;   /* "directory", "etcd" */
	/* Makes e[0..n) durable, each replacing old[i] (NULL: new). Sets each
	 * e[i]->resource_version. All or nothing is not promised across
	 * transactions (etcd) or files (directory): rcs[i] says per entry
	 * (0 stored). Returns 0, or the first error; SN_ECONFLICT after the
	 * index was refreshed with what another replica wrote. */
	int (*write)(struct sn_store *st, struct sn_stored *const *e, struct sn_stored *const *old, size_t n, int *rcs);
	/* Removes old durably. 0, SN_ECONFLICT or SN_EIO. */
	int (*remove)(struct sn_store *st, const struct sn_stored *old);
	int (*save_revision)(struct sn_store *st);
	void (*close)(struct sn_store *st);
};

extern const struct sn_store_ops sn__store_etcd_ops;

/* The stored form of a resource: "# key: value" header lines, "#", then
 * the YAML (docs/internals/store.md). with_rv: include resourceVersion
 * (the directory's files; etcd has its own mod_revision). Returns the
 * header's length or -1. */
int sn__stored_header(const struct sn_stored *e, int with_rv, char *buf, size_t size);
/* Parses the stored form (buf is changed) into a new entry; NULL with why
 * in err. */
struct sn_stored *sn__stored_parse(char *buf, size_t len, char *err, size_t errlen);
/* Checks that the text still loads as the resource its header names. */
int sn__stored_verify(const struct sn_stored *e, char *err, size_t errlen);
void sn__stored_free(struct sn_stored *e);

/* Makes the data directory; st is reset (store.c). */
int sn__store_open_data_dir(struct sn_store *st, const char *dir);

/* The index: insert or replace (takes e), remove (0 or SN_ENOTFOUND). */
int sn__store_index_put(struct sn_store *st, struct sn_stored *e);
int sn__store_index_remove(struct sn_store *st, enum sn_resource_kind kind, const char *ns, const char *name);

/* For the fuzz target and tests (store_etcd.c): an etcd store with no
 * member and no thread, and one watch line applied to it as the loop
 * thread would (a resync or lease renewal finds no member and logs it).
 * Returns 1 when the line ends the watch. */
int sn__etcd_open_offline(struct sn_store *st);
int sn__etcd_feed_line(struct sn_store *st, const char *line, size_t len);

#endif
