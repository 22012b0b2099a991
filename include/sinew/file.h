#ifndef SINEW_FILE_H
#define SINEW_FILE_H

/* Files written so that a crash never leaves a mix (src/core/file.c): the
 * one atomic write of the tree (sinewd's store and CA, the local mesh's
 * pod records, the CLI's VIP table). */

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Writes all n bytes (retrying short writes and EINTR). 0, or -1 with errno. */
int sn_write_all(int fd, const void *p, size_t n);

/* fsync of a directory, so that an entry made or renamed in it is durable.
 * 0, or -1 with errno. */
int sn_fsync_dir(const char *dir);

/* Replaces dir/name with the concatenation of parts[0..n): written to
 * dir/.name.tmp (a stale one is removed first; created exclusively with
 * mode, which fchmod makes exact whatever the umask), fsync'd, renamed over
 * dir/name, and dir fsync'd -- a crash leaves the old file or the new one.
 * no_sync skips the two fsyncs (tests, tmpfs). 0, or -1 with errno (the
 * temporary file removed). */
int sn_write_atomic(const char *dir, const char *name, const struct iovec *parts, size_t n, mode_t mode,
		    int no_sync);

#endif
