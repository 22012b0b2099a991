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

#define STORE_MAGIC "# sinew-store 1\n"
#define STORE_MAX_HEADER 4096
#define STORE_MAX_PATH 1024

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

/* Index of the entry, or of where it would go (*found = 0). */
static size_t find_pos(const struct sn_store *st, enum sn_resource_kind kind, const char *ns, const char *name,
		       int *found)
{
	size_t lo = 0, hi = st->n;
	*found = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_key(kind, ns, name, st->v[mid]);
		if (c == 0) {
			*found = 1;
			return mid;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
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

static void stored_free(struct sn_stored *e)
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

/* Inserts or replaces e in the index (takes e). */
static int index_put(struct sn_store *st, struct sn_stored *e)
{
	int found;
	size_t i = find_pos(st, e->kind, e->namespace_, e->name, &found);
	if (found) {
		/* keep the status until it is recomputed */
		e->accepted = st->v[i]->accepted;
		stored_free(st->v[i]);
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

static int format_header(const struct sn_stored *e, char *buf, size_t size)
{
	int n = snprintf(buf, size,
			 STORE_MAGIC
			 "# kind: %s\n# apiVersion: %s\n# namespace: %s\n# name: %s\n"
			 "# resourceVersion: %" PRIu64 "\n# generation: %" PRIu64 "\n"
			 "# source: %s\n# line: %d\n# length: %zu\n# crc32: %08" PRIx32 "\n#\n",
			 sn_resource_kind_str(e->kind), e->api_version, e->namespace_, e->name, e->resource_version,
			 e->generation, e->source, e->line, e->text_len, crc32_ieee(e->text, e->text_len));
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

/* Parses one stored file's bytes into a new entry. On failure returns
 * NULL with why in err. */
static struct sn_stored *parse_file(char *buf, size_t len, char *err, size_t errlen)
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
			bad = (e->api_version = xstrdup(v)) == NULL;
		else if (!strcmp(k, "namespace"))
			bad = (e->namespace_ = xstrdup(v)) == NULL;
		else if (!strcmp(k, "name"))
			bad = (e->name = xstrdup(v)) == NULL;
		else if (!strcmp(k, "source"))
			bad = (e->source = xstrdup(v)) == NULL;
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
	stored_free(e);
	return NULL;
}

/* Checks that the stored text still loads as the resource its header and
 * path name (a newer Sinew may be stricter). */
static int verify_loads(const struct sn_stored *e, char *err, size_t errlen)
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
	struct sn_stored *e = parse_file(buf, len, err, sizeof(err));
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
		stored_free(e);
		return;
	}
	if (verify_loads(e, err, sizeof(err)) != 0) {
		sn_diags_add(report, SN_DIAG_WARNING, path, 0, 0, NULL, NULL, NULL,
			     "stored resource no longer loads: %s; skipped (fix and re-apply it)", err);
		stored_free(e);
		return;
	}
	if (st->n >= SN_STORE_MAX_RESOURCES || index_put(st, e) != 0) {
		sn_diags_add(report, SN_DIAG_WARNING, path, 0, 0, NULL, NULL, NULL,
			     "more than %u resources or out of memory; skipped", SN_STORE_MAX_RESOURCES);
		stored_free(e);
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

int sn_store_open(struct sn_store *st, const char *dir, struct sn_diags *report)
{
	char path[STORE_MAX_PATH], parent[STORE_MAX_PATH];
	memset(st, 0, sizeof(*st));
	if (strlen(dir) > 512) {
		errno = ENAMETOOLONG;
		return SN_EIO;
	}
	st->dir = strdup(dir);
	if (st->dir == NULL)
		return SN_ENOMEM;
	snprintf(parent, sizeof(parent), "%s/..", dir);
	snprintf(path, sizeof(path), "%s/resources", dir);
	if (make_dir(dir, parent, 0) != 0 || make_dir(path, dir, 0) != 0) {
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

void sn_store_close(struct sn_store *st)
{
	for (size_t i = 0; i < st->n; i++)
		stored_free(st->v[i]);
	free(st->v);
	free(st->dir);
	memset(st, 0, sizeof(*st));
}

/* ---- changes --------------------------------------------------------- */

int sn_store_put(struct sn_store *st, enum sn_resource_kind kind, const char *api_version, const char *ns,
		 const char *name, const char *source, int line, const char *text, size_t text_len,
		 struct sn_stored **out)
{
	char dir[STORE_MAX_PATH], kdir[STORE_MAX_PATH], fname[300], header[STORE_MAX_HEADER];
	if ((unsigned)kind >= SN_KIND__COUNT || !component_ok(ns) || !component_ok(name))
		return SN_EINVAL;
	if (text_len > SN_STORE_MAX_RESOURCE_BYTES)
		return SN_ELIMIT;
	struct sn_stored *old = sn_store_get(st, kind, ns, name);
	if (old == NULL && st->n >= SN_STORE_MAX_RESOURCES)
		return SN_ELIMIT;

	struct sn_stored *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return SN_ENOMEM;
	e->kind = kind;
	e->api_version = strdup(api_version);
	e->namespace_ = strdup(ns);
	e->name = strdup(name);
	e->source = strdup(source && source[0] ? source : "-");
	e->line = line > 0 ? line : 1;
	e->text = malloc(text_len + 1);
	if (e->api_version == NULL || e->namespace_ == NULL || e->name == NULL || e->source == NULL ||
	    e->text == NULL) {
		stored_free(e);
		return SN_ENOMEM;
	}
	memcpy(e->text, text, text_len);
	e->text[text_len] = '\0';
	e->text_len = text_len;
	e->resource_version = st->revision + 1;
	e->generation = old == NULL ? 1
		: (old->text_len == text_len && !memcmp(old->text, text, text_len)) ? old->generation
										   : old->generation + 1;
	e->accepted = 1;

	snprintf(kdir, sizeof(kdir), "%s/resources/%s", st->dir, sn_resource_kind_str(kind));
	char rdir[STORE_MAX_PATH];
	snprintf(rdir, sizeof(rdir), "%s/resources", st->dir);
	int hl = format_header(e, header, sizeof(header));
	if (hl < 0 || resource_dir(st, kind, ns, dir, sizeof(dir)) != 0 ||
	    (size_t)snprintf(fname, sizeof(fname), "%s.yaml", name) >= sizeof(fname)) {
		stored_free(e);
		return SN_EINVAL;
	}
	if (make_dir(kdir, rdir, st->no_sync) != 0 || make_dir(dir, kdir, st->no_sync) != 0 ||
	    write_atomic(dir, fname, header, (size_t)hl, e->text, e->text_len, st->no_sync) != 0) {
		int err = errno;
		sn_log(SN_LOG_ERROR, "store: cannot write %s/%s: %s", dir, fname, strerror(err));
		stored_free(e);
		errno = err;
		return SN_EIO;
	}
	if (index_put(st, e) != 0) {
		/* on disk but not indexed: it loads on the next start */
		stored_free(e);
		return SN_ENOMEM;
	}
	st->revision = e->resource_version;
	if (out != NULL)
		*out = e;
	return 0;
}

int sn_store_save_revision(struct sn_store *st)
{
	return write_revision(st, st->revision) == 0 ? 0 : SN_EIO;
}

int sn_store_delete(struct sn_store *st, enum sn_resource_kind kind, const char *ns, const char *name)
{
	char dir[STORE_MAX_PATH], path[STORE_MAX_PATH];
	int found;
	if ((unsigned)kind >= SN_KIND__COUNT)
		return SN_ENOTFOUND;
	size_t i = find_pos(st, kind, ns, name, &found);
	if (!found)
		return SN_ENOTFOUND;
	if (resource_dir(st, kind, ns, dir, sizeof(dir)) != 0 ||
	    (size_t)snprintf(path, sizeof(path), "%s/%s.yaml", dir, name) >= sizeof(path))
		return SN_EIO;
	/* The revision goes to disk first: after a crash the store may still
	 * hold the resource, but its revision never goes back. */
	uint64_t rev = st->revision + 1;
	if (write_revision(st, rev) != 0 || (unlink(path) != 0 && errno != ENOENT) ||
	    fsync_path(dir, st->no_sync) != 0) {
		sn_log(SN_LOG_ERROR, "store: cannot delete %s: %s", path, strerror(errno));
		return SN_EIO;
	}
	st->revision = rev;
	stored_free(st->v[i]);
	memmove(&st->v[i], &st->v[i + 1], (st->n - i - 1) * sizeof(*st->v));
	st->n--;
	return 0;
}
