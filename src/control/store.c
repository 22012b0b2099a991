/* The embedded store: one file per resource, written crash-safe with
 * write-temp + fsync + rename + fsync(dir), a persisted revision, and an
 * in-memory index sorted by kind, namespace and name. Why this and not a
 * WAL, and the file format: docs/internals/store.md. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sinew/control.h"
#include "sinew/file.h"
#include "sinew/log.h"
#include "sinew/sorted.h"
#include "store_internal.h"

#define STORE_MAGIC "# sinew-store 1\n"
#define STORE_MAX_HEADER SN__STORE_MAX_HEADER
#define STORE_MAX_PATH 1024
#define STORE_CONFLICT_RETRIES 8   /* writes again after another replica's (etcd) */

/* ---- small helpers --------------------------------------------------- */

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* CRC-32 (IEEE, reflected), bitwise: resources are at most 1 MiB and are
 * checksummed once per write and once per start. */
static uint32_t crc32_ieee(const char *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= (unsigned char)p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
	}
	return c ^ 0xffffffffu;
}

/* A name or namespace is used as a path component: the config library
 * allows letters, digits, '-', '.' and '_'; here it must also not start
 * with '.' (".", ".." and our temp files). */
static int component_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253 || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '-' || ch == '.' || ch == '_'))
			return 0;
	}
	return 1;
}

static int fsync_path(const char *path, int no_sync)
{
	return no_sync ? 0 : sn_fsync_dir(path);
}

/* mkdir that makes the new entry durable in its parent. */
static int make_dir(const char *path, const char *parent, int no_sync)
{
	if (mkdir(path, 0755) == 0)
		return fsync_path(parent, no_sync);
	return errno == EEXIST ? 0 : -1;
}

/* Replaces dir/name with the bytes a+b, atomically and durably: a crash
 * leaves either the old file or the new one, never a mix (sinew/file.h). */
static int write_atomic(const char *dir, const char *name, const char *a, size_t alen, const char *b,
			size_t blen, int no_sync)
{
	struct iovec parts[2] = { { (void *)a, alen }, { (void *)b, blen } };
	return sn_write_atomic(dir, name, parts, 2, 0644, no_sync);
}

/* ---- the index ------------------------------------------------------- */

static int cmp_key(enum sn_resource_kind ka, const char *nsa, const char *na, const struct sn_stored *b)
{
	if (ka != b->kind)
		return ka < b->kind ? -1 : 1;
	int c = strcmp(nsa, b->namespace_);
	return c ? c : strcmp(na, b->name);
}

struct store_key {
	enum sn_resource_kind kind;
	const char *ns, *name;
};

static int cmp_store_key(const void *key, const void *elem)
{
	const struct store_key *k = key;
	return cmp_key(k->kind, k->ns, k->name, *(const struct sn_stored *const *)elem);
}

/* Index of the entry, or of where it would go (*found = 0). */
static size_t find_pos(const struct sn_store *st, enum sn_resource_kind kind, const char *ns, const char *name,
		       int *found)
{
	struct store_key k = { kind, ns, name };
	return sn_lower_bound(st->v, st->n, sizeof(*st->v), &k, cmp_store_key, found);
}

struct sn_stored *sn_store_get(const struct sn_store *st, enum sn_resource_kind kind, const char *ns,
			       const char *name)
{
	int found;
	size_t i = find_pos(st, kind, ns, name, &found);
	return found ? st->v[i] : NULL;
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void sn__stored_free(struct sn_stored *e)
{
	if (e == NULL)
		return;
	free(e->api_version);
	free(e->namespace_);
	free(e->name);
	free(e->source);
	free(e->text);
	free_strv(e->warnings, e->n_warnings);
	free_strv(e->errors, e->n_errors);
	free(e);
}

int sn__store_index_put(struct sn_store *st, struct sn_stored *e)
{
	int found;
	size_t i = find_pos(st, e->kind, e->namespace_, e->name, &found);
	if (found) {
		/* keep the status until it is recomputed */
		e->accepted = st->v[i]->accepted;
		sn__stored_free(st->v[i]);
		st->v[i] = e;
		return 0;
	}
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 64;
		struct sn_stored **nv = realloc(st->v, cap * sizeof(*nv));
		if (nv == NULL)
			return SN_ENOMEM;
		st->v = nv;
		st->cap = cap;
	}
	memmove(&st->v[i + 1], &st->v[i], (st->n - i) * sizeof(*st->v));
	st->v[i] = e;
	st->n++;
	return 0;
}

int sn__store_index_remove(struct sn_store *st, enum sn_resource_kind kind, const char *ns, const char *name)
{
	int found;
	size_t i = find_pos(st, kind, ns, name, &found);
	if (!found)
		return SN_ENOTFOUND;
	sn__stored_free(st->v[i]);
	memmove(&st->v[i], &st->v[i + 1], (st->n - i - 1) * sizeof(*st->v));
	st->n--;
	return 0;
}

void sn_stored_set_status(struct sn_stored *e, const struct sn_diags *d)
{
	char name[520];
	const char *kind = sn_resource_kind_str(e->kind);
	snprintf(name, sizeof(name), "%s/%s", e->namespace_, e->name);
	free_strv(e->warnings, e->n_warnings);
	free_strv(e->errors, e->n_errors);
	e->warnings = e->errors = NULL;
	e->n_warnings = e->n_errors = 0;
	size_t nw = 0, ne = 0;
	for (size_t i = 0; i < d->n; i++) {
		const struct sn_diag *g = &d->v[i];
		if (g->kind == NULL || g->name == NULL || strcmp(g->kind, kind) || strcmp(g->name, name))
			continue;
		if (g->severity == SN_DIAG_ERROR)
			ne++;
		else
			nw++;
	}
	e->warnings = nw ? calloc(nw, sizeof(char *)) : NULL;
	e->errors = ne ? calloc(ne, sizeof(char *)) : NULL;
	for (size_t i = 0; i < d->n; i++) {
		const struct sn_diag *g = &d->v[i];
		if (g->kind == NULL || g->name == NULL || strcmp(g->kind, kind) || strcmp(g->name, name))
			continue;
		char line[1600];
		sn_diag_format(g, line, sizeof(line));
		if (g->severity == SN_DIAG_ERROR) {
			if (e->errors != NULL && (e->errors[e->n_errors] = strdup(line)) != NULL)
				e->n_errors++;
		} else if (e->warnings != NULL && (e->warnings[e->n_warnings] = strdup(line)) != NULL) {
			e->n_warnings++;
		}
	}
	e->accepted = ne == 0;
}

/* ---- file format ----------------------------------------------------- */

static int resource_dir(const struct sn_store *st, enum sn_resource_kind kind, const char *ns, char *out,
			size_t size)
{
	int n = snprintf(out, size, "%s/resources/%s/%s", st->dir, sn_resource_kind_str(kind), ns);
	return n > 0 && (size_t)n < size ? 0 : -1;
}

int sn__stored_header(const struct sn_stored *e, int with_rv, char *buf, size_t size)
{
	char rv[48] = "";
	if (with_rv)
		snprintf(rv, sizeof(rv), "# resourceVersion: %" PRIu64 "\n", e->resource_version);
	int n = snprintf(buf, size,
			 STORE_MAGIC
			 "# kind: %s\n# apiVersion: %s\n# namespace: %s\n# name: %s\n"
			 "%s# generation: %" PRIu64 "\n"
			 "# source: %s\n# line: %d\n# length: %zu\n# crc32: %08" PRIx32 "\n#\n",
			 sn_resource_kind_str(e->kind), e->api_version, e->namespace_, e->name, rv, e->generation,
			 e->source, e->line, e->text_len, crc32_ieee(e->text, e->text_len));
	return n > 0 && (size_t)n < size ? n : -1;
}

static int write_revision(struct sn_store *st, uint64_t rev)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", rev);
	return write_atomic(st->dir, "revision", buf, (size_t)n, "", 0, st->no_sync);
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

/* Eight hex digits at most: 1 if v is not one. */
static int parse_crc(const char *v, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 16);
	if (v[0] == '\0' || v[0] == '-' || *end != '\0' || errno != 0 || x > 0xffffffffull)
		return 1;
	*out = x;
	return 0;
}

/* A header's string field: given once (a second one is a damaged or
 * forged header, not something to guess about). 1 when bad. */
static int set_once(char **field, const char *v)
{
	if (*field != NULL)
		return 1;
	*field = xstrdup(v);
	return *field == NULL;
}

struct sn_stored *sn__stored_parse(char *buf, size_t len, char *err, size_t errlen)
{
	size_t ml = strlen(STORE_MAGIC);
	if (len < ml || memcmp(buf, STORE_MAGIC, ml) != 0) {
		snprintf(err, errlen, "not a sinew store file (no \"# sinew-store 1\" header)");
		return NULL;
	}
	struct sn_stored *e = calloc(1, sizeof(*e));
	if (e == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	char kind[64] = "";
	uint64_t length = UINT64_MAX, line = 0, crc = UINT64_MAX;
	size_t off = ml;
	int ended = 0;
	while (off < len && off < STORE_MAX_HEADER) {
		char *nl = memchr(buf + off, '\n', len - off);
		if (nl == NULL)
			break;
		*nl = '\0';
		char *l = buf + off;
		off = (size_t)(nl - buf) + 1;
		if (!strcmp(l, "#")) {
			ended = 1;
			break;
		}
		char *colon = strstr(l, ": ");
		if (strncmp(l, "# ", 2) != 0 || colon == NULL)
			continue;
		*colon = '\0';
		const char *k = l + 2, *v = colon + 2;
		int bad = 0;
		if (!strcmp(k, "kind"))
			snprintf(kind, sizeof(kind), "%s", v);
		else if (!strcmp(k, "apiVersion"))
			bad = set_once(&e->api_version, v);
		else if (!strcmp(k, "namespace"))
			bad = set_once(&e->namespace_, v);
		else if (!strcmp(k, "name"))
			bad = set_once(&e->name, v);
		else if (!strcmp(k, "source"))
			bad = set_once(&e->source, v);
		else if (!strcmp(k, "resourceVersion"))
			bad = parse_u64(v, &e->resource_version);
		else if (!strcmp(k, "generation"))
			bad = parse_u64(v, &e->generation);
		else if (!strcmp(k, "line"))
			bad = parse_u64(v, &line) || line > 100000000;
		else if (!strcmp(k, "length"))
			bad = parse_u64(v, &length);
		else if (!strcmp(k, "crc32"))
			bad = parse_crc(v, &crc);
		if (bad) {
			snprintf(err, errlen, "bad header field \"%s\"", k);
			goto fail;
		}
	}
	int k = sn_kind_of(kind, e->api_version);
	if (!ended || k < 0 || e->api_version == NULL || e->namespace_ == NULL || e->name == NULL ||
	    e->source == NULL || length == UINT64_MAX || crc == UINT64_MAX) {
		snprintf(err, errlen, "incomplete header");
		goto fail;
	}
	if (length != len - off) {
		snprintf(err, errlen, "length says %" PRIu64 " bytes of YAML, the file has %zu (truncated?)", length,
			 len - off);
		goto fail;
	}
	if (crc32_ieee(buf + off, len - off) != (uint32_t)crc) {
		snprintf(err, errlen, "checksum mismatch: the YAML was changed or damaged after it was written");
		goto fail;
	}
	e->kind = (enum sn_resource_kind)k;
	e->line = (int)(line ? line : 1);
	e->text_len = len - off;
	e->text = malloc(e->text_len + 1);
	if (e->text == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	memcpy(e->text, buf + off, e->text_len);
	e->text[e->text_len] = '\0';
	e->accepted = 1;
	return e;
fail:
	sn__stored_free(e);
	return NULL;
}

/* A newer Sinew may be stricter than the one that stored it. */
int sn__stored_verify(const struct sn_stored *e, char *err, size_t errlen)
{
	struct sn_config_set set;
	struct sn_diags d;
	sn_config_set_init(&set);
	sn_diags_init(&d);
	int rc = sn_config_load_text_at(&set, e->source, e->text, e->text_len, e->line, &d);
	const struct sn_resource *r = set.head;
	if (rc != 0 || set.count != 1 || r->kind != e->kind || strcmp(r->namespace_, e->namespace_) ||
	    strcmp(r->name, e->name)) {
		if (d.n > 0)
			sn_diag_format(&d.v[0], err, errlen);
		else
			snprintf(err, errlen, "the YAML is not exactly the resource the header names");
		rc = -1;
	}
	sn_diags_free(&d);
	sn_config_set_free(&set);
	return rc;
}

static char *read_small_file(const char *path, size_t max, size_t *len_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat sb;
	if (fstat(fd, &sb) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	if ((size_t)sb.st_size > max) {
		close(fd);
		errno = EFBIG;
		return NULL;
	}
	size_t cap = (size_t)sb.st_size + 1, len = 0;
	char *buf = malloc(cap);
	while (buf != NULL && len < cap) {
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (buf == NULL || len >= cap) {
		free(buf);
		errno = EFBIG;
		return NULL;
	}
	buf[len] = '\0';
	*len_out = len;
	return buf;
}

static void load_one(struct sn_store *st, const char *path, const char *kind_dir, const char *ns_dir,
		     const char *fname, struct sn_diags *report)
{
	char err[1200];
	size_t len = 0;
	char *buf = read_small_file(path, SN_STORE_MAX_RESOURCE_BYTES + STORE_MAX_HEADER, &len);
	if (buf == NULL) {
		sn_diags_add(report, SN_DIAG_WARNING, path, 0, 0, NULL, NULL, NULL,
			     "cannot read stored resource: %s; skipped (re-apply it)", strerror(errno));
		return;
	}
	struct sn_stored *e = sn__stored_parse(buf, len, err, sizeof(err));
	free(buf);
	if (e == NULL) {
		sn_diags_add(report, SN_DIAG_WARNING, path, 0, 0, NULL, NULL, NULL,
			     "corrupt stored resource: %s; skipped (re-apply it, then remove the file)", err);
		return;
	}
	size_t nl = strlen(e->name);
	if (strcmp(kind_dir, sn_resource_kind_str(e->kind)) || strcmp(ns_dir, e->namespace_) ||
	    strlen(fname) != nl + 5 || strncmp(fname, e->name, nl) != 0) {
		sn_diags_add(report, SN_DIAG_WARNING, path, 0, 0, NULL, NULL, NULL,
			     "stored resource says it is %s %s/%s, which does not match its path; skipped",
			     sn_resource_kind_str(e->kind), e->namespace_, e->name);
		sn__stored_free(e);
		return;
	}
	if (sn__stored_verify(e, err, sizeof(err)) != 0) {
		sn_diags_add(report, SN_DIAG_WARNING, path, 0, 0, NULL, NULL, NULL,
			     "stored resource no longer loads: %s; skipped (fix and re-apply it)", err);
		sn__stored_free(e);
		return;
	}
	if (st->n >= SN_STORE_MAX_RESOURCES || sn__store_index_put(st, e) != 0) {
		sn_diags_add(report, SN_DIAG_WARNING, path, 0, 0, NULL, NULL, NULL,
			     "more than %u resources or out of memory; skipped", SN_STORE_MAX_RESOURCES);
		sn__stored_free(e);
		return;
	}
	if (e->resource_version > st->revision)
		st->revision = e->resource_version;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !strcmp(s + n - m, suffix);
}

/* Walks dir/resources/<Kind>/<ns>/<name>.yaml. Temp files a crash left
 * behind are removed; anything else unexpected is reported. */
static void load_tree(struct sn_store *st, struct sn_diags *report)
{
	char base[STORE_MAX_PATH], kpath[STORE_MAX_PATH], npath[STORE_MAX_PATH], fpath[STORE_MAX_PATH];
	snprintf(base, sizeof(base), "%s/resources", st->dir);
	DIR *kd = opendir(base);
	if (kd == NULL)
		return;
	struct dirent *ke;
	while ((ke = readdir(kd)) != NULL) {
		if (ke->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(kpath, sizeof(kpath), "%s/%s", base, ke->d_name) >= sizeof(kpath))
			continue;
		DIR *nd = opendir(kpath);
		if (nd == NULL)
			continue;
		struct dirent *ne;
		while ((ne = readdir(nd)) != NULL) {
			if (ne->d_name[0] == '.')
				continue;
			if ((size_t)snprintf(npath, sizeof(npath), "%s/%s", kpath, ne->d_name) >= sizeof(npath))
				continue;
			DIR *fd = opendir(npath);
			if (fd == NULL)
				continue;
			struct dirent *fe;
			while ((fe = readdir(fd)) != NULL) {
				if (!strcmp(fe->d_name, ".") || !strcmp(fe->d_name, ".."))
					continue;
				if ((size_t)snprintf(fpath, sizeof(fpath), "%s/%s", npath, fe->d_name) >=
				    sizeof(fpath))
					continue;
				if (fe->d_name[0] == '.' && ends_with(fe->d_name, ".tmp")) {
					unlink(fpath);
					continue;
				}
				if (!ends_with(fe->d_name, ".yaml")) {
					sn_diags_add(report, SN_DIAG_WARNING, fpath, 0, 0, NULL, NULL, NULL,
						     "not a stored resource (want NAME.yaml); ignored");
					continue;
				}
				load_one(st, fpath, ke->d_name, ne->d_name, fe->d_name, report);
			}
			closedir(fd);
		}
		closedir(nd);
	}
	closedir(kd);
}

/* ---- the directory backend ------------------------------------------- */

static int dir_write_one(struct sn_store *st, struct sn_stored *e)
{
	char dir[STORE_MAX_PATH], kdir[STORE_MAX_PATH], rdir[STORE_MAX_PATH], fname[300], header[STORE_MAX_HEADER];
	e->resource_version = st->revision + 1;
	snprintf(kdir, sizeof(kdir), "%s/resources/%s", st->dir, sn_resource_kind_str(e->kind));
	snprintf(rdir, sizeof(rdir), "%s/resources", st->dir);
	int hl = sn__stored_header(e, 1, header, sizeof(header));
	if (hl < 0 || resource_dir(st, e->kind, e->namespace_, dir, sizeof(dir)) != 0 ||
	    (size_t)snprintf(fname, sizeof(fname), "%s.yaml", e->name) >= sizeof(fname))
		return SN_EINVAL;
	if (make_dir(kdir, rdir, st->no_sync) != 0 || make_dir(dir, kdir, st->no_sync) != 0 ||
	    write_atomic(dir, fname, header, (size_t)hl, e->text, e->text_len, st->no_sync) != 0) {
		int err = errno;
		sn_log(SN_LOG_ERROR, "store: cannot write %s/%s: %s", dir, fname, strerror(err));
		snprintf(st->error, sizeof(st->error), "cannot write %.200s/%.100s: %s", dir, fname, strerror(err));
		errno = err;
		return SN_EIO;
	}
	st->revision = e->resource_version;
	return 0;
}

static int dir_write(struct sn_store *st, struct sn_stored *const *e, struct sn_stored *const *old, size_t n,
		     int *rcs)
{
	(void)old;
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		rcs[i] = dir_write_one(st, e[i]);
		if (rcs[i] != 0 && rc == 0)
			rc = rcs[i];
	}
	return rc;
}

static int dir_remove(struct sn_store *st, const struct sn_stored *old)
{
	char dir[STORE_MAX_PATH], path[STORE_MAX_PATH];
	if (resource_dir(st, old->kind, old->namespace_, dir, sizeof(dir)) != 0 ||
	    (size_t)snprintf(path, sizeof(path), "%s/%s.yaml", dir, old->name) >= sizeof(path))
		return SN_EIO;
	/* The revision goes to disk first: after a crash the store may still
	 * hold the resource, but its revision never goes back. */
	uint64_t rev = st->revision + 1;
	if (write_revision(st, rev) != 0 || (unlink(path) != 0 && errno != ENOENT) ||
	    fsync_path(dir, st->no_sync) != 0) {
		sn_log(SN_LOG_ERROR, "store: cannot delete %s: %s", path, strerror(errno));
		snprintf(st->error, sizeof(st->error), "cannot delete %.300s: %s", path, strerror(errno));
		return SN_EIO;
	}
	st->revision = rev;
	return 0;
}

static int dir_save_revision(struct sn_store *st)
{
	return write_revision(st, st->revision) == 0 ? 0 : SN_EIO;
}

static const struct sn_store_ops dir_ops = {
	.name = "directory",
	.write = dir_write,
	.remove = dir_remove,
	.save_revision = dir_save_revision,
	.close = NULL,
};

/* The data directory, made if missing (durably in its parent). */
static int open_data_dir(struct sn_store *st, const char *dir)
{
	char parent[STORE_MAX_PATH];
	memset(st, 0, sizeof(*st));
	if (strlen(dir) > 512) {
		errno = ENAMETOOLONG;
		return SN_EIO;
	}
	st->dir = strdup(dir);
	if (st->dir == NULL)
		return SN_ENOMEM;
	snprintf(parent, sizeof(parent), "%s/..", dir);
	if (make_dir(dir, parent, 0) != 0) {
		int e = errno;
		sn_store_close(st);
		errno = e;
		return SN_EIO;
	}
	return 0;
}

int sn_store_open(struct sn_store *st, const char *dir, struct sn_diags *report)
{
	char path[STORE_MAX_PATH];
	int rc = open_data_dir(st, dir);
	if (rc != 0)
		return rc;
	st->ops = &dir_ops;
	snprintf(st->where, sizeof(st->where), "%s", dir);
	snprintf(path, sizeof(path), "%s/resources", dir);
	if (make_dir(path, dir, 0) != 0) {
		int e = errno;
		sn_store_close(st);
		errno = e;
		return SN_EIO;
	}
	snprintf(path, sizeof(path), "%s/.revision.tmp", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/revision", dir);
	size_t len = 0;
	char *buf = read_small_file(path, 64, &len);
	if (buf != NULL) {
		uint64_t rev;
		if (len > 0 && buf[len - 1] == '\n')
			buf[len - 1] = '\0';
		if (parse_u64(buf, &rev) == 0)
			st->revision = rev;
		else
			sn_diags_add(report, SN_DIAG_WARNING, path, 1, 1, NULL, NULL, NULL,
				     "not a revision number; using the highest resourceVersion stored");
		free(buf);
	} else if (errno != ENOENT) {
		sn_diags_add(report, SN_DIAG_WARNING, path, 0, 0, NULL, NULL, NULL, "cannot read: %s",
			     strerror(errno));
	}
	load_tree(st, report);
	return 0;
}

int sn__store_open_data_dir(struct sn_store *st, const char *dir)
{
	return open_data_dir(st, dir);
}

void sn_store_close(struct sn_store *st)
{
	if (st->ops != NULL && st->ops->close != NULL)
		st->ops->close(st);
	for (size_t i = 0; i < st->n; i++)
		sn__stored_free(st->v[i]);
	free(st->v);
	free(st->dir);
	memset(st, 0, sizeof(*st));
}

/* ---- changes --------------------------------------------------------- */

static struct sn_stored *new_entry(const struct sn_store_put *p, const struct sn_stored *old)
{
	struct sn_stored *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	e->kind = p->kind;
	e->api_version = strdup(p->api_version);
	e->namespace_ = strdup(p->ns);
	e->name = strdup(p->name);
	e->source = strdup(p->source && p->source[0] ? p->source : "-");
	e->line = p->line > 0 ? p->line : 1;
	e->text = malloc(p->text_len + 1);
	if (e->api_version == NULL || e->namespace_ == NULL || e->name == NULL || e->source == NULL ||
	    e->text == NULL) {
		sn__stored_free(e);
		return NULL;
	}
	memcpy(e->text, p->text, p->text_len);
	e->text[p->text_len] = '\0';
	e->text_len = p->text_len;
	e->generation = old == NULL ? 1
		: (old->text_len == p->text_len && !memcmp(old->text, p->text, p->text_len)) ? old->generation
											      : old->generation + 1;
	e->accepted = 1;
	return e;
}

int sn_store_put_many(struct sn_store *st, const struct sn_store_put *v, size_t n, struct sn_stored **out)
{
	if (n == 0)
		return 0;
	size_t adds = 0;
	for (size_t i = 0; i < n; i++) {
		const struct sn_store_put *p = &v[i];
		if ((unsigned)p->kind >= SN_KIND__COUNT || !component_ok(p->ns) || !component_ok(p->name))
			return SN_EINVAL;
		if (p->text_len > SN_STORE_MAX_RESOURCE_BYTES)
			return SN_ELIMIT;
		adds += sn_store_get(st, p->kind, p->ns, p->name) == NULL;
	}
	if (st->n + adds > SN_STORE_MAX_RESOURCES)
		return SN_ELIMIT;
	struct sn_stored **e = calloc(n, sizeof(*e)), **old = calloc(n, sizeof(*old));
	int *rcs = calloc(n, sizeof(*rcs));
	int rc = e == NULL || old == NULL || rcs == NULL ? SN_ENOMEM : 0;
	/* A conflict means another replica wrote one of these since this one
	 * last saw it; the index now holds that version. What is written here
	 * replaces it whatever it was (the last write wins, as with one
	 * replica), so write again against it; only the generation and the
	 * "created" or "configured" of the report depend on it. */
	for (int attempt = 0; rc == 0; attempt++) {
		for (size_t i = 0; rc == 0 && i < n; i++) {
			old[i] = sn_store_get(st, v[i].kind, v[i].ns, v[i].name);
			if ((e[i] = new_entry(&v[i], old[i])) == NULL)
				rc = SN_ENOMEM;
		}
		st->error[0] = '\0';
		if (rc == 0)
			rc = st->ops->write(st, e, old, n, rcs);
		if (rc != SN_ECONFLICT || attempt == STORE_CONFLICT_RETRIES)
			break;
		for (size_t i = 0; i < n; i++) {
			sn__stored_free(e[i]);
			e[i] = NULL;
		}
		rc = 0;
	}
	/* old[] may be gone now (a conflict refreshes the index): not read again. */
	for (size_t i = 0; e != NULL && i < n; i++) {
		if (e[i] == NULL)
			continue;
		if (rc == SN_ENOMEM || rc == SN_ECONFLICT || rcs[i] != 0) {
			sn__stored_free(e[i]);
			continue;
		}
		struct sn_stored *keep = e[i];
		if (keep->resource_version > st->revision)
			st->revision = keep->resource_version;
		if (sn__store_index_put(st, keep) != 0) {
			/* stored but not indexed: it loads on the next start */
			sn__stored_free(keep);
			rc = rc ? rc : SN_ENOMEM;
			continue;
		}
		if (out != NULL)
			out[i] = keep;
	}
	free(e);
	free(old);
	free(rcs);
	return rc;
}

int sn_store_put(struct sn_store *st, enum sn_resource_kind kind, const char *api_version, const char *ns,
		 const char *name, const char *source, int line, const char *text, size_t text_len,
		 struct sn_stored **out)
{
	struct sn_store_put p = { kind, api_version, ns, name, source, line, text, text_len };
	return sn_store_put_many(st, &p, 1, out);
}

int sn_store_save_revision(struct sn_store *st)
{
	return st->ops->save_revision(st);
}

int sn_store_delete(struct sn_store *st, enum sn_resource_kind kind, const char *ns, const char *name)
{
	if ((unsigned)kind >= SN_KIND__COUNT)
		return SN_ENOTFOUND;
	int rc = SN_ECONFLICT;
	/* After a conflict the index holds the other replica's version: the
	 * delete is meant whatever it was, so try again against that. */
	for (int attempt = 0; rc == SN_ECONFLICT && attempt <= STORE_CONFLICT_RETRIES; attempt++) {
		struct sn_stored *old = sn_store_get(st, kind, ns, name);
		if (old == NULL)
			return SN_ENOTFOUND;
		st->error[0] = '\0';
		rc = st->ops->remove(st, old);
	}
	if (rc != 0)
		return rc;
	sn__store_index_remove(st, kind, ns, name);
	return 0;
}
