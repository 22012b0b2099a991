#ifndef SINEW_FUZZ_UTIL_H
#define SINEW_FUZZ_UTIL_H

/* Helpers shared by the fuzz targets that drive a real loop, store or
 * link (fuzz_control_*, fuzz_proxy_push). Header-only: each target is one
 * translation unit (CMakeLists.txt globs fuzz/fuzz_*.c). Nothing here
 * touches the network: links run over AF_UNIX sockets in a temp dir. */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/sockios.h>

#include "sinew/control.h"
#include "sinew/log.h"
#include "sinew/loop.h"

/* A directory under /tmp made once per process; exits on failure (the
 * target cannot run without it). Nothing is removed at exit. */
static inline const char *fz_tempdir(const char *name)
{
	static char dir[64];
	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "/tmp/sinew-fz-%s-XXXXXX", name);
		if (mkdtemp(dir) == NULL) {
			perror("fuzz: mkdtemp");
			exit(1);
		}
	}
	return dir;
}

static inline void fz_quiet(void)
{
	sn_log_current_level = -1;   /* below SN_LOG_ERROR: nothing is formatted */
}

/* An AF_UNIX address for DIR/NAME. Returns its length. */
static inline socklen_t fz_unix_addr(struct sockaddr_un *a, const char *dir, const char *name)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	snprintf(a->sun_path, sizeof(a->sun_path), "%s/%s", dir, name);
	return (socklen_t)sizeof(*a);
}

/* Whether nothing is in flight on the local end fd of an AF_UNIX stream:
 * no byte waits to be read here, none written here waits on the peer. */
static inline int fz_fd_idle(int fd)
{
	int in = 0, out = 0;
	if (fd < 0)
		return 1;
	if (ioctl(fd, FIONREAD, &in) != 0 || ioctl(fd, SIOCOUTQ, &out) != 0)
		return 1;   /* closed: nothing can move */
	return in == 0 && out == 0;
}

/* Opens the store in DIR/store for a fuzz target (no fsync) and applies
 * base (may be NULL); exits if that fails. */
static inline void fz_store_open(struct sn_store *st, const char *dir, const char *base)
{
	char path[128];
	struct sn_diags d;
	snprintf(path, sizeof(path), "%s/store", dir);
	sn_diags_init(&d);
	if (sn_store_open(st, path, &d) != 0) {
		fprintf(stderr, "fuzz: cannot open the store in %s\n", path);
		exit(1);
	}
	sn_diags_free(&d);
	st->no_sync = 1;
	if (base != NULL) {
		struct sn_apply_report rep;
		if (sn_admit_apply(st, "base.yaml", base, strlen(base), &rep) != 0 || rep.refused != 0) {
			fprintf(stderr, "fuzz: the base resources do not apply\n");
			exit(1);
		}
		sn_apply_report_free(&rep);
	}
}

/* Puts the store back to what base applied, after an input changed it
 * (fresh revision numbers, same resources), so every input starts from
 * the same store. */
static inline void fz_store_reset(struct sn_store *st, uint64_t *base_revision, const char *base)
{
	if (st->revision == *base_revision)
		return;
	while (st->n > 0) {
		struct sn_stored *e = st->v[st->n - 1];
		if (sn_store_delete(st, e->kind, e->namespace_, e->name) != 0) {
			fprintf(stderr, "fuzz: cannot reset the store\n");
			abort();
		}
	}
	if (base != NULL) {
		struct sn_apply_report rep;
		if (sn_admit_apply(st, "base.yaml", base, strlen(base), &rep) != 0 || rep.refused != 0)
			abort();
		sn_apply_report_free(&rep);
	}
	*base_revision = st->revision;
}


/* The part of sinewd every control target starts with: a loop, the store
 * (base applied) and a CA in dir; exits on failure. */
static inline void fz_sinewd_open(struct sn_loop *loop, struct sn_store *st, uint64_t *base_revision,
				  struct sn_ca_service **ca, const char *dir, const char *base)
{
	char err[512];
	fz_quiet();
	if (sn_loop_init(loop) != 0)
		abort();
	fz_store_open(st, dir, base);
	*base_revision = st->revision;
	struct sn_ca_service_opts co = { .data_dir = dir, .no_sync = 1 };
	if (sn_ca_service_open(&co, ca, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz: CA: %s\n", err);
		exit(1);
	}
}

#endif
