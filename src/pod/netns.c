/* Network namespaces and processes: sockets made inside a pod's
 * namespace, `ip netns exec` semantics for children, running the ip and
 * iptables tools, and recognising processes by pid and start time. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pod_internal.h"
#include "sinew/common.h"
#include "sinew/pod.h"

int sn_pod_netns_path(const char *netns, char *buf, size_t size)
{
	if (netns == NULL || netns[0] == '\0' || strchr(netns, '/') != NULL || strcmp(netns, ".") == 0 ||
	    strcmp(netns, "..") == 0)
		return SN_EINVAL;
	int n = snprintf(buf, size, "/run/netns/%s", netns);
	return n < 0 || (size_t)n >= size ? SN_EINVAL : 0;
}

int sn_pod_netns_exists(const char *netns)
{
	char path[PATH_MAX];
	struct stat st;
	return sn_pod_netns_path(netns, path, sizeof(path)) == 0 && stat(path, &st) == 0;
}

/* ---- work done by a thread inside a namespace ------------------------- */

struct in_netns {
	const char *netns;
	int (*fn)(void *arg);
	void *arg;
	int rc;
	int err;
};

static void *in_netns_thread(void *p)
{
	struct in_netns *w = p;
	char path[PATH_MAX];
	if (sn_pod_netns_path(w->netns, path, sizeof(path)) != 0) {
		w->rc = SN_EINVAL;
		w->err = EINVAL;
		return NULL;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		w->rc = SN_EIO;
		w->err = errno;
		return NULL;
	}
	/* Only this thread moves; it ends right after, so the process's own
	 * threads never see the pod's namespace. */
	if (setns(fd, CLONE_NEWNET) != 0) {
		w->rc = SN_EIO;
		w->err = errno;
		close(fd);
		return NULL;
	}
	close(fd);
	w->rc = w->fn(w->arg);
	w->err = errno;
	return NULL;
}

int sn_pod_in_netns(const char *netns, int (*fn)(void *arg), void *arg)
{
	struct in_netns w = { netns, fn, arg, SN_EIO, 0 };
	pthread_t t;
	int e = pthread_create(&t, NULL, in_netns_thread, &w);
	if (e != 0) {
		errno = e;
		return SN_EIO;
	}
	pthread_join(t, NULL);
	errno = w.err;
	return w.rc;
}

struct mk_socket {
	int domain, type, proto;
};

static int mk_socket(void *arg)
{
	struct mk_socket *s = arg;
	int fd = socket(s->domain, s->type | SOCK_CLOEXEC, s->proto);
	return fd < 0 ? SN_EIO : fd;
}

int sn_pod_socket_in_netns(const char *netns, int domain, int type, int proto)
{
	struct mk_socket s = { domain, type, proto };
	if (netns == NULL || netns[0] == '\0')
		return mk_socket(&s);
	return sn_pod_in_netns(netns, mk_socket, &s);
}

/* ---- ip netns exec, for a child about to exec ------------------------- */

int sn_pod_enter(const char *netns, char *err, size_t err_size)
{
	char path[PATH_MAX];
	if (sn_pod_netns_path(netns, path, sizeof(path)) != 0) {
		snprintf(err, err_size, "bad network namespace name \"%s\"", netns ? netns : "");
		return SN_EINVAL;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, err_size, "cannot open %s: %s", path, strerror(errno));
		return SN_EIO;
	}
	if (setns(fd, CLONE_NEWNET) != 0) {
		snprintf(err, err_size, "cannot enter network namespace %s: %s", netns, strerror(errno));
		close(fd);
		return SN_EIO;
	}
	close(fd);
	/* A private mount namespace whose changes do not reach the host's. */
	if (unshare(CLONE_NEWNS) != 0) {
		snprintf(err, err_size, "unshare(CLONE_NEWNS): %s", strerror(errno));
		return SN_EIO;
	}
	if (mount("", "/", "none", MS_SLAVE | MS_REC, NULL) != 0) {
		snprintf(err, err_size, "cannot make / a slave mount: %s", strerror(errno));
		return SN_EIO;
	}
	/* /sys/class/net should show the pod's interfaces, as ip does it; not
	 * fatal where sysfs cannot be mounted (some containers). */
	if (umount2("/sys", MNT_DETACH) == 0 && mount(netns, "/sys", "sysfs", 0, NULL) != 0)
		(void)mount(netns, "/sys", "sysfs", MS_RDONLY, NULL);

	char etc[PATH_MAX];
	snprintf(etc, sizeof(etc), "/etc/netns/%s", netns);
	DIR *d = opendir(etc);
	if (d == NULL)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char src[PATH_MAX], dst[PATH_MAX];
		if (e->d_name[0] == '.')
			continue;
		if (snprintf(src, sizeof(src), "%s/%s", etc, e->d_name) >= (int)sizeof(src) ||
		    snprintf(dst, sizeof(dst), "/etc/%s", e->d_name) >= (int)sizeof(dst))
			continue;
		if (mount(src, dst, "none", MS_BIND, NULL) != 0) {
			snprintf(err, err_size, "cannot bind %s over %s: %s", src, dst, strerror(errno));
			closedir(d);
			return SN_EIO;
		}
	}
	closedir(d);
	return 0;
}

/* ---- running tools ------------------------------------------------------ */

static void find_tool(const char *name, char *buf, size_t size)
{
	static const char *const dirs[] = { "/usr/sbin", "/sbin", "/usr/bin", "/bin" };
	if (strchr(name, '/') == NULL)
		for (size_t i = 0; i < SN_ARRAY_LEN(dirs); i++) {
			snprintf(buf, size, "%s/%s", dirs[i], name);
			if (access(buf, X_OK) == 0)
				return;
		}
	snprintf(buf, size, "%s", name);
}

int sn_pod_exec(char *const argv[], const char *input, size_t input_len, char *out, size_t out_size)
{
	char exe[PATH_MAX];
	int in[2] = { -1, -1 }, outp[2] = { -1, -1 };
	find_tool(argv[0], exe, sizeof(exe));
	if (pipe2(in, O_CLOEXEC) != 0)
		return SN_EIO;
	if (pipe2(outp, O_CLOEXEC) != 0) {
		close(in[0]);
		close(in[1]);
		return SN_EIO;
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(in[0]);
		close(in[1]);
		close(outp[0]);
		close(outp[1]);
		return SN_EIO;
	}
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(outp[1], 1);
		dup2(outp[1], 2);
		signal(SIGPIPE, SIG_DFL);
		execvp(exe, argv);
		fprintf(stderr, "cannot run %s: %s\n", exe, strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(outp[1]);
	/* The input is small (a rules script): a pipe holds it whole. */
	size_t off = 0;
	while (input != NULL && off < input_len) {
		ssize_t w = write(in[1], input + off, input_len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(in[1]);
	size_t used = 0;
	char drain[4096];
	for (;;) {
		char *dst = drain;
		size_t room = sizeof(drain);
		if (out != NULL && out_size > 1 && used < out_size - 1) {
			dst = out + used;
			room = out_size - 1 - used;
		}
		ssize_t r = read(outp[0], dst, room);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (dst != drain)
			used += (size_t)r;
	}
	if (out != NULL && out_size > 0)
		out[used] = '\0';
	close(outp[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return SN_EIO;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 256 + WTERMSIG(status);
}

/* Runs argv; on failure puts "what: output" into err. 0 or SN_EIO. */
int sn_pod_exec_checked(char *const argv[], const char *input, size_t input_len, char *err, size_t err_size)
{
	char out[2048];
	int rc = sn_pod_exec(argv, input, input_len, out, sizeof(out));
	if (rc == 0)
		return 0;
	char cmd[512];
	size_t n = 0;
	cmd[0] = '\0';
	for (size_t i = 0; argv[i] != NULL && n < sizeof(cmd) - 1; i++) {
		int w = snprintf(cmd + n, sizeof(cmd) - n, "%s%s", i ? " " : "", argv[i]);
		if (w < 0)
			break;
		n += (size_t)w;
	}
	size_t ol = strlen(out);
	while (ol > 0 && (out[ol - 1] == '\n' || out[ol - 1] == ' '))
		out[--ol] = '\0';
	for (char *p = out; *p; p++)
		if (*p == '\n')
			*p = ' ';
	if (rc < 0)
		snprintf(err, err_size, "`%s` could not be run: %s", cmd, strerror(errno));
	else
		snprintf(err, err_size, "`%s` failed (%s %d)%s%s", cmd, rc >= 256 ? "signal" : "status",
			 rc >= 256 ? rc - 256 : rc, ol ? ": " : "", out);
	return SN_EIO;
}

/* ---- processes ----------------------------------------------------------- */

/* Reads /proc/PID/stat; returns the state letter and the start time. */
static int proc_stat(pid_t pid, char *state, unsigned long long *start)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (p == NULL || p[1] != ' ')
		return -1;
	p += 2;
	*state = *p;
	/* Field 3 is the state; the start time is field 22. */
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (p == NULL)
			return -1;
		p++;
	}
	*start = strtoull(p, NULL, 10);
	return 0;
}

unsigned long long sn_pod_proc_start(pid_t pid)
{
	char st;
	unsigned long long start;
	if (pid <= 0 || proc_stat(pid, &st, &start) != 0)
		return 0;
	return start;
}

int sn_pod_proc_alive(pid_t pid, unsigned long long start)
{
	char st;
	unsigned long long s;
	if (pid <= 1 || proc_stat(pid, &st, &s) != 0)
		return 0;
	if (st == 'Z' || st == 'X')
		return 0;
	return start == 0 || s == start;
}

int sn_pod_netns_pids(const char *netns, pid_t *pids, size_t max)
{
	char path[PATH_MAX];
	struct stat ns;
	if (sn_pod_netns_path(netns, path, sizeof(path)) != 0)
		return SN_EINVAL;
	if (stat(path, &ns) != 0)
		return 0;
	DIR *d = opendir("/proc");
	if (d == NULL)
		return SN_EIO;
	struct dirent *e;
	int count = 0;
	pid_t self = getpid();
	while ((e = readdir(d)) != NULL) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end != '\0' || pid <= 1 || pid == self)
			continue;
		char p[64];
		struct stat st;
		snprintf(p, sizeof(p), "/proc/%ld/ns/net", pid);
		if (stat(p, &st) != 0 || st.st_dev != ns.st_dev || st.st_ino != ns.st_ino)
			continue;
		if ((size_t)count < max)
			pids[count] = (pid_t)pid;
		count++;
	}
	closedir(d);
	return count;
}
