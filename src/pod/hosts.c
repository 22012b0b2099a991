/* Per-pod name resolution: /etc/netns/POD/hosts and resolv.conf, which
 * sn_pod_enter (like `ip netns exec`) bind-mounts over /etc/hosts and
 * /etc/resolv.conf for every process started in the pod. Services are
 * NAME, NAME.NS and NAME.NS.svc.cluster.local at their VIP. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pod_internal.h"
#include "sinew/common.h"
#include "sinew/pod.h"

static const char resolv_conf[] =
	"# Written by sinew: a pod resolves names through its /etc/hosts (services\n"
	"# and their virtual IPs); it has no name server.\n"
	"options timeout:1 attempts:1\n";

/* A name or address goes on a hosts line: no blanks, no '#'. */
static int word_ok(const char *s)
{
	if (s == NULL || s[0] == '\0')
		return 0;
	for (; *s; s++)
		if (*s <= ' ' || *s == '#' || *s == 127)
			return 0;
	return 1;
}

int sn_pod_hosts_render(const struct sn_pod_host *entries, size_t n, char *buf, size_t size)
{
	size_t len = 0;
	int w = snprintf(buf, size,
			 "# Written by sinew for this pod; rewritten in place when services change.\n"
			 "127.0.0.1\tlocalhost\n"
			 "::1\tlocalhost ip6-localhost ip6-loopback\n");
	if (w < 0 || (size_t)w >= size)
		return SN_ELIMIT;
	len = (size_t)w;
	for (size_t i = 0; i < n; i++) {
		const struct sn_pod_host *h = &entries[i];
		if (!word_ok(h->address) || !word_ok(h->name) || (h->ns != NULL && !word_ok(h->ns)))
			return SN_EINVAL;
		if (h->ns != NULL)
			w = snprintf(buf + len, size - len, "%s\t%s %s.%s %s.%s.svc.cluster.local\n", h->address,
				     h->name, h->name, h->ns, h->name, h->ns);
		else
			w = snprintf(buf + len, size - len, "%s\t%s\n", h->address, h->name);
		if (w < 0 || (size_t)w >= size - len)
			return SN_ELIMIT;
		len += (size_t)w;
	}
	return (int)len;
}

static int write_in_place(const char *path, const char *text, size_t len, char *err, size_t err_size)
{
	/* Truncate and write the same inode: a rename would leave running
	 * processes with the old file bind-mounted. */
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, err_size, "cannot write %s: %s", path, strerror(errno));
		return SN_EIO;
	}
	size_t off = 0;
	while (off < len) {
		ssize_t r = write(fd, text + off, len - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, err_size, "cannot write %s: %s", path, strerror(errno));
			close(fd);
			return SN_EIO;
		}
		off += (size_t)r;
	}
	if (close(fd) != 0) {
		snprintf(err, err_size, "cannot write %s: %s", path, strerror(errno));
		return SN_EIO;
	}
	return 0;
}

int sn_pod_hosts_write(const char *pod, const struct sn_pod_host *entries, size_t n, char *err,
		       size_t err_size)
{
	char dir[SN_POD_NAME_MAX + 16], path[PATH_MAX], text[65536];
	if (strlen(pod) >= SN_POD_NAME_MAX || sn_pod_netns_path(pod, path, sizeof(path)) != 0) {
		snprintf(err, err_size, "bad pod name \"%s\"", pod);
		return SN_EINVAL;
	}
	int len = sn_pod_hosts_render(entries, n, text, sizeof(text));
	if (len < 0) {
		snprintf(err, err_size, "pod %s: %s", pod,
			 len == SN_EINVAL ? "a hosts entry has a blank or '#' in its name or address"
					  : "too many hosts entries");
		return len;
	}
	if (mkdir("/etc/netns", 0755) != 0 && errno != EEXIST) {
		snprintf(err, err_size, "cannot create /etc/netns: %s", strerror(errno));
		return SN_EIO;
	}
	snprintf(dir, sizeof(dir), "/etc/netns/%s", pod);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		snprintf(err, err_size, "cannot create %s: %s", dir, strerror(errno));
		return SN_EIO;
	}
	snprintf(path, sizeof(path), "%s/resolv.conf", dir);
	if (access(path, F_OK) != 0 &&
	    write_in_place(path, resolv_conf, sizeof(resolv_conf) - 1, err, err_size) != 0)
		return SN_EIO;
	snprintf(path, sizeof(path), "%s/hosts", dir);
	return write_in_place(path, text, (size_t)len, err, err_size);
}

void sn_pod_hosts_remove(const char *pod)
{
	char dir[SN_POD_NAME_MAX + 16], path[PATH_MAX];
	if (strlen(pod) >= SN_POD_NAME_MAX || sn_pod_netns_path(pod, path, sizeof(path)) != 0)
		return;
	snprintf(dir, sizeof(dir), "/etc/netns/%s", pod);
	snprintf(path, sizeof(path), "%s/hosts", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/resolv.conf", dir);
	unlink(path);
	rmdir(dir);
	rmdir("/etc/netns");   /* only when empty: other tools' pods stay */
}
