/* The atomic write (see sinew/file.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sinew/file.h"

int sn_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int sn_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

int sn_write_atomic(const char *dir, const char *name, const struct iovec *parts, size_t n, mode_t mode,
		    int no_sync)
{
	char tmp[PATH_MAX], dst[PATH_MAX];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >= sizeof(tmp) ||
	    (size_t)snprintf(dst, sizeof(dst), "%s/%s", dir, name) >= sizeof(dst)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	int rc = fchmod(fd, mode);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = sn_write_all(fd, parts[i].iov_base, parts[i].iov_len);
	if (rc == 0 && !no_sync)
		rc = fsync(fd);
	int e = errno;
	if (close(fd) != 0 && rc == 0) {
		rc = -1;
		e = errno;
	}
	if (rc == 0 && rename(tmp, dst) != 0) {
		rc = -1;
		e = errno;
	}
	if (rc != 0) {
		unlink(tmp);
		errno = e;
		return -1;
	}
	return no_sync ? 0 : sn_fsync_dir(dir);
}
