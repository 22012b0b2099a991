/* The pod state directory: one record per pod (DIR/NAME.pod), the mesh
 * network's record (DIR/mesh) and a lock (DIR/.lock).
 *
 * Records are "key=value" lines: readable by a person, parsable after a
 * crash, and replaced atomically (temp file, fsync, rename). A record is
 * written before the first thing it describes is created, so nothing
 * Sinew makes is ever unrecorded; the pod's name is also its file name and
 * its network namespace's name, so even a record that does not parse (or
 * a temp file never renamed) says what to remove. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sinew/common.h"
#include "sinew/file.h"
#include "sinew/pod.h"
#include "pod_internal.h"

#define RECORD_MAX 8192

static const char *const state_names[] = {
	[SN_POD_STATE_CREATING] = "creating",
	[SN_POD_STATE_STARTING] = "starting",
	[SN_POD_STATE_RUNNING] = "running",
	[SN_POD_STATE_STOPPING] = "stopping",
};

const char *sn_pod_state_str(enum sn_pod_state s)
{
	return (unsigned)s < SN_ARRAY_LEN(state_names) ? state_names[s] : "unknown";
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, mode) != 0 && errno != EEXIST ? -1 : 0;
}

int sn_pod_state_dir_make(const char *dir, char *err, size_t err_size)
{
	if (mkdir_p(dir, 0700) != 0) {
		snprintf(err, err_size, "cannot create the pod state directory %s: %s", dir, strerror(errno));
		return SN_EIO;
	}
	return 0;
}

int sn_pod_state_lock(const char *dir, char *err, size_t err_size)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, err_size, "cannot open %s: %s", path, strerror(errno));
		return SN_EIO;
	}
	while (flock(fd, LOCK_EX) != 0) {
		if (errno == EINTR)
			continue;
		snprintf(err, err_size, "cannot lock %s: %s", path, strerror(errno));
		close(fd);
		return SN_EIO;
	}
	return fd;
}

void sn_pod_state_unlock(int fd)
{
	if (fd >= 0)
		close(fd);   /* releases the flock */
}

/* ---- record text ---------------------------------------------------------- */

struct text {
	char *buf;
	size_t size, len;
	int bad;
};

__attribute__((format(printf, 2, 3))) static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	if (t->bad)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(t->buf + t->len, t->size - t->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= t->size - t->len)
		t->bad = SN_ELIMIT;
	else
		t->len += (size_t)n;
}

static void put_str(struct text *t, const char *key, const char *v)
{
	if (strchr(v, '\n') != NULL)
		t->bad = SN_EINVAL;
	put(t, "%s=%s\n", key, v);
}

static void put_proc(struct text *t, const char *key, const struct sn_pod_proc *p)
{
	put(t, "%s=%ld %llu\n", key, (long)p->pid, p->start);
}

int sn_pod_record_render(const struct sn_pod *p, char *buf, size_t size)
{
	struct text t = { buf, size, 0, size == 0 ? SN_ELIMIT : 0 };
	put_str(&t, "name", p->name);
	put_str(&t, "state", sn_pod_state_str(p->state));
	put(&t, "capture=%d\n", p->capture ? 1 : 0);
	if (p->gateway)
		put(&t, "gateway=1\n");
	put_str(&t, "netns", p->netns);
	put_str(&t, "mesh", p->mesh_netns);
	put_str(&t, "veth_mesh", p->veth_mesh);
	put_str(&t, "veth_pod", p->veth_pod);
	put_str(&t, "address", p->address);
	put_str(&t, "admin", p->admin);
	put_str(&t, "service", p->service);
	put_str(&t, "namespace", p->namespace_);
	put_str(&t, "service_account", p->service_account);
	put_str(&t, "labels", p->labels);
	put_str(&t, "ports", p->ports);
	put_proc(&t, "supervisor", &p->supervisor);
	put_proc(&t, "proxy", &p->proxy);
	put_proc(&t, "app", &p->app);
	put(&t, "created=%lld\n", p->created);
	return t.bad ? t.bad : (int)t.len;
}

static void copy(char *dst, size_t size, const char *v, size_t n)
{
	if (n >= size)
		n = size - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static void parse_proc(struct sn_pod_proc *p, const char *v)
{
	char *end;
	long pid = strtol(v, &end, 10);
	p->pid = pid > 0 && pid < INT32_MAX ? (pid_t)pid : 0;
	p->start = strtoull(end, NULL, 10);
}

int sn_pod_record_parse(const char *text, size_t len, struct sn_pod *p)
{
	memset(p, 0, sizeof(*p));
	const char *end = text + len;
	for (const char *line = text; line < end;) {
		const char *nl = memchr(line, '\n', (size_t)(end - line));
		if (nl == NULL)
			nl = end;   /* a last line without newline: a torn write; use it */
		const char *eq = memchr(line, '=', (size_t)(nl - line));
		if (eq != NULL) {
			size_t kl = (size_t)(eq - line), vl = (size_t)(nl - eq - 1);
			const char *v = eq + 1;
			char val[SN_POD_FIELD_MAX];
			copy(val, sizeof(val), v, vl);
#define KEY(k) (kl == sizeof(k) - 1 && memcmp(line, k, kl) == 0)
			if (KEY("name"))
				copy(p->name, sizeof(p->name), v, vl);
			else if (KEY("state")) {
				for (size_t i = 0; i < SN_ARRAY_LEN(state_names); i++)
					if (strcmp(val, state_names[i]) == 0)
						p->state = (enum sn_pod_state)i;
			} else if (KEY("capture"))
				p->capture = val[0] == '1';
			else if (KEY("gateway"))
				p->gateway = val[0] == '1';
			else if (KEY("netns"))
				copy(p->netns, sizeof(p->netns), v, vl);
			else if (KEY("mesh"))
				copy(p->mesh_netns, sizeof(p->mesh_netns), v, vl);
			else if (KEY("veth_mesh"))
				copy(p->veth_mesh, sizeof(p->veth_mesh), v, vl);
			else if (KEY("veth_pod"))
				copy(p->veth_pod, sizeof(p->veth_pod), v, vl);
			else if (KEY("address"))
				copy(p->address, sizeof(p->address), v, vl);
			else if (KEY("admin"))
				copy(p->admin, sizeof(p->admin), v, vl);
			else if (KEY("service"))
				copy(p->service, sizeof(p->service), v, vl);
			else if (KEY("namespace"))
				copy(p->namespace_, sizeof(p->namespace_), v, vl);
			else if (KEY("service_account"))
				copy(p->service_account, sizeof(p->service_account), v, vl);
			else if (KEY("labels"))
				copy(p->labels, sizeof(p->labels), v, vl);
			else if (KEY("ports"))
				copy(p->ports, sizeof(p->ports), v, vl);
			else if (KEY("supervisor"))
				parse_proc(&p->supervisor, val);
			else if (KEY("proxy"))
				parse_proc(&p->proxy, val);
			else if (KEY("app"))
				parse_proc(&p->app, val);
			else if (KEY("created"))
				p->created = strtoll(val, NULL, 10);
#undef KEY
		}
		line = nl + 1;
	}
	return p->name[0] ? 0 : SN_EINVAL;
}

/* A pod name is a file name and a network namespace name. */
static int name_ok(const char *name)
{
	if (name[0] == '\0' || name[0] == '.' || strlen(name) >= SN_POD_NAME_MAX)
		return 0;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.'))
			return 0;
	return 1;
}

int sn__pod_write_atomic(const char *dir, const char *name, const char *text, size_t len, char *err,
			 size_t err_size)
{
	struct iovec part = { (void *)text, len };
	if (sn_write_atomic(dir, name, &part, 1, 0600, 0) != 0) {
		snprintf(err, err_size, "cannot write %s/%s: %s", dir, name, strerror(errno));
		return SN_EIO;
	}
	return 0;
}

int sn__pod_read_small(const char *path, char *buf, size_t size, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? SN_ENOTFOUND : SN_EIO;
	size_t n = 0;
	for (;;) {
		ssize_t r = read(fd, buf + n, size - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		if (n == size - 1)
			break;
	}
	close(fd);
	buf[n] = '\0';
	*len = n;
	return 0;
}

int sn_pod_record_write(const char *dir, const struct sn_pod *p, char *err, size_t err_size)
{
	char text[RECORD_MAX], file[SN_POD_NAME_MAX + 8];
	if (!name_ok(p->name)) {
		snprintf(err, err_size, "bad pod name \"%s\"", p->name);
		return SN_EINVAL;
	}
	int n = sn_pod_record_render(p, text, sizeof(text));
	if (n < 0) {
		snprintf(err, err_size, "pod %s: a field has a newline or the record is too long", p->name);
		return n;
	}
	snprintf(file, sizeof(file), "%s.pod", p->name);
	return sn__pod_write_atomic(dir, file, text, (size_t)n, err, err_size);
}

int sn_pod_record_read(const char *dir, const char *name, struct sn_pod *p)
{
	char path[PATH_MAX], text[RECORD_MAX];
	size_t len;
	if (!name_ok(name))
		return SN_EINVAL;
	snprintf(path, sizeof(path), "%s/%s.pod", dir, name);
	int rc = sn__pod_read_small(path, text, sizeof(text), &len);
	if (rc != 0)
		return rc;
	rc = sn_pod_record_parse(text, len, p);
	if (rc != 0 || strcmp(p->name, name) != 0) {
		/* Unreadable: keep what the file name says. */
		memset(p, 0, sizeof(*p));
		snprintf(p->name, sizeof(p->name), "%s", name);
		return SN_EINVAL;
	}
	return 0;
}

void sn_pod_record_remove(const char *dir, const char *name)
{
	char path[PATH_MAX];
	if (!name_ok(name))
		return;
	snprintf(path, sizeof(path), "%s/%s.pod", dir, name);
	unlink(path);
	snprintf(path, sizeof(path), "%s/.%s.pod.tmp", dir, name);
	unlink(path);
}

static int cmp_pod(const void *a, const void *b)
{
	return strcmp(((const struct sn_pod *)a)->name, ((const struct sn_pod *)b)->name);
}

int sn_pod_record_list(const char *dir, struct sn_pod **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? 0 : SN_EIO;
	struct sn_pod *v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char name[SN_POD_NAME_MAX];
		const char *s = e->d_name;
		size_t l = strlen(s);
		/* NAME.pod, or .NAME.pod.tmp left by a crash while writing. */
		if (l > 4 && strcmp(s + l - 4, ".pod") == 0 && s[0] != '.')
			l -= 4;
		else if (s[0] == '.' && l > 9 && strcmp(s + l - 8, ".pod.tmp") == 0) {
			s++;
			l -= 9;
		} else
			continue;
		if (l >= sizeof(name))
			continue;
		memcpy(name, s, l);
		name[l] = '\0';
		if (!name_ok(name))
			continue;
		int dup = 0;
		for (size_t i = 0; i < cnt; i++)
			dup |= strcmp(v[i].name, name) == 0;
		if (dup)
			continue;
		if (cnt == cap) {
			size_t nc = cap ? cap * 2 : 8;
			struct sn_pod *nv = realloc(v, nc * sizeof(*nv));
			if (nv == NULL) {
				free(v);
				closedir(d);
				return SN_ENOMEM;
			}
			v = nv;
			cap = nc;
		}
		int rc = sn_pod_record_read(dir, name, &v[cnt]);
		if (rc == SN_ENOTFOUND) {
			/* Only the temp file exists: its content may be torn. */
			char path[PATH_MAX], text[RECORD_MAX];
			size_t len;
			snprintf(path, sizeof(path), "%s/.%s.pod.tmp", dir, name);
			if (sn__pod_read_small(path, text, sizeof(text), &len) != 0 ||
			    sn_pod_record_parse(text, len, &v[cnt]) != 0 || strcmp(v[cnt].name, name) != 0) {
				memset(&v[cnt], 0, sizeof(v[cnt]));
				snprintf(v[cnt].name, sizeof(v[cnt].name), "%s", name);
			}
		} else if (rc != 0 && rc != SN_EINVAL) {
			memset(&v[cnt], 0, sizeof(v[cnt]));
			snprintf(v[cnt].name, sizeof(v[cnt].name), "%s", name);
		}
		cnt++;
	}
	closedir(d);
	if (cnt > 1)
		qsort(v, cnt, sizeof(*v), cmp_pod);
	*out = v;
	*n = cnt;
	return 0;
}

/* ---- the mesh record ------------------------------------------------------- */

int sn_pod_mesh_read(const char *dir, struct sn_pod_mesh *m)
{
	char path[PATH_MAX], text[1024], err[200];
	size_t len;
	snprintf(path, sizeof(path), "%s/mesh", dir);
	int rc = sn__pod_read_small(path, text, sizeof(text), &len);
	if (rc != 0)
		return rc;
	memset(m, 0, sizeof(*m));
	int have_cidr = 0;
	for (char *line = text; *line;) {
		char *nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		if (strncmp(line, "netns=", 6) == 0)
			snprintf(m->netns, sizeof(m->netns), "%s", line + 6);
		else if (strncmp(line, "bridge=", 7) == 0)
			snprintf(m->bridge, sizeof(m->bridge), "%s", line + 7);
		else if (strncmp(line, "cidr=", 5) == 0)
			have_cidr = sn_pod_cidr_parse(line + 5, &m->cidr, err, sizeof(err)) == 0;
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	if (m->netns[0] == '\0')
		return SN_EINVAL;
	if (m->bridge[0] == '\0')
		snprintf(m->bridge, sizeof(m->bridge), "%s", SN_POD_BRIDGE);
	if (!have_cidr)
		sn_pod_cidr_parse(SN_POD_DEFAULT_CIDR, &m->cidr, err, sizeof(err));
	return 0;
}

int sn_pod_mesh_write(const char *dir, const struct sn_pod_mesh *m, char *err, size_t err_size)
{
	char text[512], cidr[32], gw[16];
	if (!name_ok(m->netns)) {
		snprintf(err, err_size, "bad mesh namespace name \"%s\": use lower-case letters, digits and '-'",
			 m->netns);
		return SN_EINVAL;
	}
	sn_pod_cidr_str(&m->cidr, cidr, sizeof(cidr));
	sn_pod_addr_str(sn_pod_cidr_gateway(&m->cidr), gw, sizeof(gw));
	int n = snprintf(text, sizeof(text), "netns=%s\nbridge=%s\ncidr=%s\ngateway=%s\n", m->netns, m->bridge,
			 cidr, gw);
	return sn__pod_write_atomic(dir, "mesh", text, (size_t)n, err, err_size);
}

void sn_pod_mesh_forget(const char *dir)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/mesh", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/.mesh.tmp", dir);
	unlink(path);
}
