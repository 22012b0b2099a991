/* The mesh network and pods: creating and removing network namespaces,
 * the bridge and veth pairs, always with `ip -n NS` inside namespaces
 * Sinew made (never in the host's), and `sinew down`'s sweep. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pod_internal.h"
#include "sinew/common.h"
#include "sinew/loop.h"
#include "sinew/pod.h"

#define MAX_PIDS 256

/* `ip ARGS...` (strings), failing with the command in err. exec's argv
 * is not const-qualified; nothing writes to it. */
#define IP(err, err_size, ...)                                                                   \
	sn_pod_exec_checked((char *const *)(const char *const[]){ "ip", __VA_ARGS__, NULL }, NULL, 0, err, \
			    err_size)

int sn_pod_state_dir(const char *data_dir, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/pods", data_dir);
	return n < 0 || (size_t)n >= size ? SN_EINVAL : 0;
}

/* ---- the mesh network ------------------------------------------------------ */

static int link_exists(const char *netns, const char *ifname)
{
	char *const argv[] = { (char *)"ip", (char *)"-n", (char *)netns, (char *)"link", (char *)"show",
			       (char *)"dev", (char *)ifname, NULL };
	return sn_pod_exec(argv, NULL, 0, NULL, 0) == 0;
}

int sn_pod_mesh_ensure(const char *dir, const struct sn_pod_mesh *m, char *err, size_t err_size)
{
	struct sn_pod_mesh old;
	char cidr[32], oldcidr[32], gw[40];
	sn_pod_cidr_str(&m->cidr, cidr, sizeof(cidr));
	int rc = sn_pod_mesh_read(dir, &old);
	if (rc == 0) {
		sn_pod_cidr_str(&old.cidr, oldcidr, sizeof(oldcidr));
		if (strcmp(old.netns, m->netns) != 0 || strcmp(old.bridge, m->bridge) != 0 ||
		    strcmp(cidr, oldcidr) != 0) {
			snprintf(err, err_size,
				 "the mesh network of %s is %s (bridge %s, pods %s), not %s (%s); run `sinew down` "
				 "to change it", dir, old.netns, old.bridge, oldcidr, m->netns, cidr);
			return SN_EINVAL;
		}
	} else if (sn_pod_netns_exists(m->netns)) {
		snprintf(err, err_size, "network namespace %s exists but %s does not record it (another data "
					"directory's mesh?); choose another with --mesh-netns NAME, or remove it with "
					"`ip netns del %s` if nothing uses it", m->netns, dir, m->netns);
		return SN_EINVAL;
	}
	/* Recorded first: whatever happens next, `sinew down` knows it. */
	if ((rc = sn_pod_mesh_write(dir, m, err, err_size)) != 0)
		return rc;
	if (!sn_pod_netns_exists(m->netns) && (rc = IP(err, err_size, "netns", "add", m->netns)) != 0)
		return rc;
	if ((rc = IP(err, err_size, "-n", m->netns, "link", "set", "lo", "up")) != 0)
		return rc;
	if (!link_exists(m->netns, m->bridge) &&
	    (rc = IP(err, err_size, "-n", m->netns, "link", "add", m->bridge, "type", "bridge")) != 0)
		return rc;
	char gwa[16];
	sn_pod_addr_str(sn_pod_cidr_gateway(&m->cidr), gwa, sizeof(gwa));
	snprintf(gw, sizeof(gw), "%s/%u", gwa, m->cidr.prefix);
	if ((rc = IP(err, err_size, "-n", m->netns, "addr", "replace", gw, "dev", m->bridge)) != 0)
		return rc;
	return IP(err, err_size, "-n", m->netns, "link", "set", m->bridge, "up");
}

int sn_pod_mesh_remove(const char *dir, int *removed, char *err, size_t err_size)
{
	struct sn_pod_mesh m;
	*removed = 0;
	if (sn_pod_mesh_read(dir, &m) != 0) {
		sn_pod_mesh_forget(dir);
		return 0;
	}
	if (sn_pod_netns_exists(m.netns)) {
		/* The bridge and any veth end left on it go with the namespace. */
		int rc = IP(err, err_size, "netns", "del", m.netns);
		if (rc != 0 && sn_pod_netns_exists(m.netns))
			return rc;
		*removed = 1;
	}
	sn_pod_mesh_forget(dir);
	return 0;
}

/* ---- names and addresses ------------------------------------------------ */

int sn_pod_name_new(const char *dir, const char *service, char *buf, size_t size)
{
	for (int attempt = 0; attempt < 32; attempt++) {
		unsigned char r[3];
		if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
			return SN_EIO;
		int n = snprintf(buf, size, "sn-%s-%02x%02x%02x", service, r[0], r[1], r[2]);
		if (n < 0 || (size_t)n >= size || (size_t)n >= SN_POD_NAME_MAX)
			return SN_EINVAL;
		struct sn_pod p;
		if (sn_pod_record_read(dir, buf, &p) == SN_ENOTFOUND && !sn_pod_netns_exists(buf))
			return 0;
	}
	return SN_ELIMIT;
}

int sn_pod_used_addrs(const char *dir, uint32_t **out, size_t *n)
{
	struct sn_pod *pods;
	size_t np;
	*out = NULL;
	*n = 0;
	int rc = sn_pod_record_list(dir, &pods, &np);
	if (rc != 0)
		return rc;
	uint32_t *v = np ? malloc(np * sizeof(*v)) : NULL;
	if (np && v == NULL) {
		free(pods);
		return SN_ENOMEM;
	}
	size_t k = 0;
	for (size_t i = 0; i < np; i++)
		if (pods[i].capture && sn_pod_addr_parse(pods[i].address, &v[k]) == 0)
			k++;
	free(pods);
	*out = v;
	*n = k;
	return 0;
}

/* ---- pods ------------------------------------------------------------------ */

/* Writes value to /proc/sys/RELPATH in a pod's network namespace, from a
 * child process that entered it (so /proc/sys/net is the pod's). A
 * missing IPv6 (optional) is no error. */
static int netns_sysctl(const char *netns, const char *relpath, const char *value, int optional_ipv6, char *err,
			size_t err_size)
{
	char nspath[PATH_MAX], path[PATH_MAX];
	if (sn_pod_netns_path(netns, nspath, sizeof(nspath)) != 0)
		return SN_EINVAL;
	snprintf(path, sizeof(path), "/proc/sys/%s", relpath);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, err_size, "fork: %s", strerror(errno));
		return SN_EIO;
	}
	if (pid == 0) {
		int nsfd = open(nspath, O_RDONLY | O_CLOEXEC);
		if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0)
			_exit(2);
		if (optional_ipv6 && access("/proc/sys/net/ipv6", F_OK) != 0)
			_exit(0);   /* no IPv6 in this kernel */
		size_t vl = strlen(value);
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, value, vl) != (ssize_t)vl)
			_exit(3);
		_exit(0);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return SN_EIO;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(err, err_size, "cannot write %s in %s", path, netns);
		return SN_EIO;
	}
	return 0;
}

int sn_pod_create(const struct sn_pod_mesh *m, const struct sn_pod *p, char *err, size_t err_size)
{
	char addr[40], gw[16], tmpif[SN_POD_IFNAME_MAX];
	int rc;

	/* The pod's end is made with a unique name right inside the pod (two
	 * pods' ends can never meet), then renamed eth0 there. */
	snprintf(tmpif, sizeof(tmpif), "snp-%.6s", p->veth_mesh + 4);
	if (!sn_pod_netns_exists(p->name) && (rc = IP(err, err_size, "netns", "add", p->name)) != 0)
		return rc;
	if ((rc = IP(err, err_size, "-n", p->name, "link", "set", "lo", "up")) != 0)
		return rc;
	if ((rc = IP(err, err_size, "-n", m->netns, "link", "add", p->veth_mesh, "type", "veth", "peer", "name",
		     tmpif, "netns", p->name)) != 0)
		return rc;
	if ((rc = IP(err, err_size, "-n", m->netns, "link", "set", p->veth_mesh, "master",
		     m->bridge)) != 0 ||
	    (rc = IP(err, err_size, "-n", m->netns, "link", "set", p->veth_mesh, "up")) != 0)
		return rc;
	if ((rc = IP(err, err_size, "-n", p->name, "link", "set", tmpif, "name", p->veth_pod)) != 0)
		return rc;
	/* IPv6 off on eth0: capture is IPv4, and an IPv6 path out of the pod
	 * would not be captured */
	char rel[128];
	snprintf(rel, sizeof(rel), "net/ipv6/conf/%s/disable_ipv6", p->veth_pod);
	if ((rc = netns_sysctl(p->name, rel, "1\n", 1, err, err_size)) != 0)
		return rc;
	/* a gateway's proxy (uid 1337) listens on its Gateways' ports, 80 and
	 * 443 included: as Istio's gateways, the pod opens every port to it */
	if (p->gateway &&
	    (rc = netns_sysctl(p->name, "net/ipv4/ip_unprivileged_port_start", "0\n", 0, err, err_size)) != 0)
		return rc;
	snprintf(addr, sizeof(addr), "%s/%u", p->address, m->cidr.prefix);
	sn_pod_addr_str(sn_pod_cidr_gateway(&m->cidr), gw, sizeof(gw));
	if ((rc = IP(err, err_size, "-n", p->name, "addr", "add", addr, "dev", p->veth_pod)) != 0 ||
	    (rc = IP(err, err_size, "-n", p->name, "link", "set", p->veth_pod, "up")) != 0 ||
	    (rc = IP(err, err_size, "-n", p->name, "route", "add", "default", "via", gw)) != 0)
		return rc;
	return 0;
}

/* Signals a recorded process if it is still the one recorded. With group,
 * also its process group (the proxy leads its own session). */
static void signal_proc(const struct sn_pod_proc *pp, int sig, int group)
{
	if (pp->pid <= 1 || pp->pid == getpid() || !sn_pod_proc_alive(pp->pid, pp->start))
		return;
	if (group && getpgid(pp->pid) == pp->pid)
		kill(-pp->pid, sig);
	kill(pp->pid, sig);
}

static int any_alive(const struct sn_pod *p, const pid_t *pids, int n)
{
	const struct sn_pod_proc *rec[] = { &p->supervisor, &p->app, &p->proxy };
	for (size_t i = 0; i < SN_ARRAY_LEN(rec); i++)
		if (rec[i]->pid > 1 && rec[i]->pid != getpid() && sn_pod_proc_alive(rec[i]->pid, rec[i]->start))
			return 1;
	for (int i = 0; i < n; i++)
		if (sn_pod_proc_alive(pids[i], 0))
			return 1;
	return 0;
}

static int pod_pids(const struct sn_pod *p, pid_t *pids, size_t max)
{
	if (!sn_pod_netns_exists(p->name))
		return 0;
	int n = sn_pod_netns_pids(p->name, pids, max);
	return n < 0 ? 0 : (n > (int)max ? (int)max : n);
}

int sn_pod_remove(const char *dir, const struct sn_pod *p, int grace_ms, char *err, size_t err_size)
{
	pid_t pids[MAX_PIDS];
	const struct sn_pod_proc *rec[] = { &p->supervisor, &p->app, &p->proxy };
	int sig = SIGTERM;
	long long deadline = (long long)sn_clock_ms() + grace_ms;

	/* The pod's `sinew run` first: it stops its app and then drains its
	 * proxy, in that order. Signalled together, a proxy that finished
	 * draining before its supervisor took the signal looked to it like a
	 * proxy that died (it exited 1 instead of 143). */
	const struct sn_pod_proc *sup = &p->supervisor;
	if (sup->pid > 1 && sup->pid != getpid() && sn_pod_proc_alive(sup->pid, sup->start)) {
		signal_proc(sup, SIGTERM, 0);
		while ((long long)sn_clock_ms() < deadline && sn_pod_proc_alive(sup->pid, sup->start))
			sn_sleep_ms(20);
	}
	/* SIGTERM to the recorded processes and to everything in the pod's
	 * namespace; SIGKILL what is left after the grace period. */
	for (int round = 0; round < 2; round++) {
		int n = pod_pids(p, pids, MAX_PIDS);
		for (size_t i = 0; i < SN_ARRAY_LEN(rec); i++)
			signal_proc(rec[i], sig, rec[i] == &p->proxy);
		for (int i = 0; i < n; i++)
			kill(pids[i], sig);
		while ((long long)sn_clock_ms() < deadline) {
			n = pod_pids(p, pids, MAX_PIDS);
			if (!any_alive(p, pids, n))
				break;
			sn_sleep_ms(20);
		}
		n = pod_pids(p, pids, MAX_PIDS);
		if (!any_alive(p, pids, n))
			break;
		sig = SIGKILL;
		deadline = (long long)sn_clock_ms() + 3000;
	}
	if (sn_pod_netns_exists(p->name)) {
		/* The veth pair and the capture rules go with the namespace. */
		int rc = IP(err, err_size, "netns", "del", p->name);
		if (rc != 0 && sn_pod_netns_exists(p->name))   /* not just gone under us */
			return rc;
	}
	sn_pod_hosts_remove(p->name);
	sn_pod_record_remove(dir, p->name);
	return 0;
}

/* ---- sinew down ---------------------------------------------------------- */

static void remove_logs(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		if ((l > 10 && strcmp(e->d_name + l - 10, ".proxy.log") == 0) ||
		    (l > 8 && strcmp(e->d_name + l - 8, ".app.log") == 0)) {
			char path[PATH_MAX];
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			unlink(path);
		}
	}
	closedir(d);
}

int sn_pod_down(const char *dir, int grace_ms, FILE *out, char *err, size_t err_size)
{
	struct stat st;
	if (stat(dir, &st) != 0)
		return 0;   /* no pod was ever made here */
	int lock = sn_pod_state_lock(dir, err, err_size);
	if (lock < 0)
		return lock;
	struct sn_pod *pods;
	size_t n;
	int rc = sn_pod_record_list(dir, &pods, &n), failed = 0;
	if (rc != 0) {
		snprintf(err, err_size, "cannot list the pods in %s: %s", dir, strerror(errno));
		sn_pod_state_unlock(lock);
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		char e[512];
		if (sn_pod_remove(dir, &pods[i], grace_ms, e, sizeof(e)) != 0) {
			fprintf(out, "pod %s: not removed: %s\n", pods[i].name, e);
			failed++;
		} else {
			fprintf(out, "pod %s removed%s%s%s\n", pods[i].name, pods[i].service[0] ? " (service " : "",
				pods[i].service, pods[i].service[0] ? ")" : "");
		}
	}
	free(pods);
	if (failed) {
		snprintf(err, err_size, "%d pod%s could not be removed%s", failed, failed == 1 ? "" : "s",
			 geteuid() != 0 ? "; pods with capture need root: run `sinew down` as root" : "");
		sn_pod_state_unlock(lock);
		return SN_EIO;
	}
	remove_logs(dir);
	/* the hosts before the hub they hang on */
	if ((rc = sn_pod_hosts_down(dir, out, err, err_size)) != 0) {
		sn_pod_state_unlock(lock);
		return rc;
	}
	struct sn_pod_mesh m;
	int had_mesh = sn_pod_mesh_read(dir, &m) == 0, removed = 0;
	rc = sn_pod_mesh_remove(dir, &removed, err, err_size);
	if (rc == 0 && had_mesh && removed)
		fprintf(out, "mesh network %s removed (bridge %s)\n", m.netns, m.bridge);
	sn_pod_state_unlock(lock);
	return rc;
}
