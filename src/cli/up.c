/* sinew up / sinew down: run sinewd in the background for this user.
 *
 * up starts sinewd (the binary next to this sinew, else from PATH) in its
 * own session with stdout and stderr going to DIR/sinewd.log, records its
 * pid in DIR/sinewd.pid and waits for /ready; as root it first makes the
 * mesh network for pods (`sinew run`) unless told not to. down sends
 * SIGTERM, waits, SIGKILLs after 10 s and removes the pid file. Both are
 * idempotent.
 *
 * `up --data-dir DIR` also records DIR in ~/.sinew/current.json, so that
 * the commands after it find that mesh without the flag or $SINEW_HOME;
 * its `down` removes the record. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sinew/cli.h"
#include "sinew/file.h"
#include "sinew/json.h"
#include "sinew/loop.h"
#include "sinew/common.h"
#include "sinew/pod.h"

#define READY_WAIT_MS 10000
#define STOP_WAIT_MS 10000
#define CURRENT_NAME "current.json"   /* in ~/.sinew: {"data_dir":"/abs/dir"} */
#define CURRENT_MAX 8192

/* ---- the current mesh --------------------------------------------------- */

/* ~/.sinew, where the record of the current mesh lives whatever the data
 * directory is: the one place every later shell of this user looks. */
static int current_home(char *buf, size_t size)
{
	const char *home = getenv("HOME");
	if (home == NULL || !home[0])
		return -1;
	int n = snprintf(buf, size, "%s/.sinew", home);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* The data directory ~/.sinew/current.json names, as written (not checked
 * to exist). 0, or -1 when there is no readable record. */
static int current_read(char *buf, size_t size)
{
	char home[PATH_MAX - 32], path[PATH_MAX], text[CURRENT_MAX];
	if (current_home(home, sizeof(home)) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/" CURRENT_NAME, home);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return -1;
	size_t n = fread(text, 1, sizeof(text), f);
	fclose(f);
	if (n == 0 || n == sizeof(text))
		return -1;
	struct fy_document *doc = sn_cli_json_parse(text, n);
	const char *d = sn_cli_json_str(sn_cli_json_root(doc), "data_dir");
	int rc = d != NULL && d[0] == '/' && strlen(d) < size ? 0 : -1;
	if (rc == 0)
		memcpy(buf, d, strlen(d) + 1);
	sn_cli_json_free(doc);
	return rc;
}

/* DIR from --data-dir, $SINEW_HOME, the current mesh's record (while its
 * directory is there), or ~/.sinew (declared in cli.h). */
int sn_cli_data_dir(const char *flag, char *buf, size_t size)
{
	const char *home;
	struct stat sb;
	if (flag != NULL)
		snprintf(buf, size, "%s", flag);
	else if ((home = getenv("SINEW_HOME")) != NULL && home[0])
		snprintf(buf, size, "%s", home);
	else if (current_read(buf, size) == 0 && stat(buf, &sb) == 0 && S_ISDIR(sb.st_mode))
		return 0;
	else if ((home = getenv("HOME")) != NULL && home[0])
		snprintf(buf, size, "%s/.sinew", home);
	else {
		fprintf(stderr, "sinew: no --data-dir, $SINEW_HOME or $HOME; give --data-dir DIR\n");
		return -1;
	}
	return 0;
}

static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(tmp, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* Records dir (absolute) as the current mesh's. A failure only costs the
 * convenience, so it is a warning. */
static void current_write(const char *dir)
{
	char home[PATH_MAX - 32], text[CURRENT_MAX];
	struct sn_json_out o;
	if (current_home(home, sizeof(home)) != 0)
		return;
	sn_json_out_init(&o, text, sizeof(text));
	if (sn_json_out_raw(&o, "{\"data_dir\":", 12) != 0 ||
	    sn_json_out_str(&o, dir, strlen(dir), o.cap - o.len) != 0 || sn_json_out_raw(&o, "}\n", 2) != 0)
		return;   /* a directory name longer than the record: nothing to point at */
	struct iovec part = { text, o.len };
	if (mkdir_p(home) != 0 || sn_write_atomic(home, CURRENT_NAME, &part, 1, 0600, 0) != 0)
		fprintf(stderr, "sinew up: cannot record the data directory in %s/" CURRENT_NAME " (%s); other "
				"commands need --data-dir %s or SINEW_HOME=%s\n", home, strerror(errno), dir, dir);
}

/* Forgets the current mesh if it is dir's: its `sinew down` ends it. */
static void current_forget(const char *dir)
{
	char home[PATH_MAX - 32], path[PATH_MAX], cur[PATH_MAX], abs[PATH_MAX];
	if (current_read(cur, sizeof(cur)) != 0 || current_home(home, sizeof(home)) != 0)
		return;
	if (strcmp(cur, dir) != 0 && (realpath(dir, abs) == NULL || strcmp(cur, abs) != 0))
		return;
	snprintf(path, sizeof(path), "%s/" CURRENT_NAME, home);
	unlink(path);
}

/* Alive and not a zombie waiting for a parent that is not us. */
static int alive(pid_t pid)
{
	char path[64], buf[256];
	if (kill(pid, 0) != 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *rp = strrchr(buf, ')');
	return !(rp != NULL && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

/* The pid in DIR/sinewd.pid if that process is alive and is a sinewd;
 * 0 otherwise. */
static pid_t running_pid(const char *pidfile)
{
	FILE *f = fopen(pidfile, "r");
	long pid = 0;
	if (f == NULL)
		return 0;
	char line[32], *end;
	if (fgets(line, sizeof(line), f) == NULL || (pid = strtol(line, &end, 10), end == line) ||
	    (*end != '\0' && *end != '\n'))
		pid = 0;
	fclose(f);
	if (pid <= 1 || !alive((pid_t)pid))
		return 0;
	char path[64], exe[PATH_MAX];
	snprintf(path, sizeof(path), "/proc/%ld/exe", pid);
	ssize_t n = readlink(path, exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		const char *base = strrchr(exe, '/');
		base = base ? base + 1 : exe;
		if (strncmp(base, "sinewd", 6) != 0)
			return 0;   /* the pid was reused by something else */
	}
	return (pid_t)pid;
}

/* sinewd next to this executable, else "sinewd" (found on PATH by exec). */
static void sinewd_path(char *buf, size_t size)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		size_t dir = slash != NULL ? (size_t)(slash - self) : 0;
		if (slash != NULL && dir + sizeof("/sinewd") <= size) {
			memcpy(buf, self, dir);
			memcpy(buf + dir, "/sinewd", sizeof("/sinewd"));
			if (access(buf, X_OK) == 0)
				return;
		}
	}
	snprintf(buf, size, "sinewd");
}

void sn_cli_print_log_tail(const char *log)
{
	FILE *f = fopen(log, "r");
	char buf[4096];
	if (f == NULL)
		return;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, sz > (long)sizeof(buf) - 1 ? sz - (long)sizeof(buf) + 1 : 0, SEEK_SET);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	fprintf(stderr, "--- %s (end) ---\n%s", log, buf);
	if (n && buf[n - 1] != '\n')
		fputc('\n', stderr);
}

/* "HOST:PORT" or "[V6]:PORT" with a numeric port (sinewd checks the rest). */
static int addr_port(const char *s)
{
	const char *colon = strrchr(s, ':');
	const char *rb = strrchr(s, ']');
	if (colon == NULL || colon == s || colon[1] == '\0' || (rb != NULL && rb > colon))
		return 0;
	for (const char *p = colon + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return 0;
	return 1;
}

/* The mesh network for pods (src/pod/), made before sinewd starts so that
 * it can listen inside it. asked: the user gave --pod-cidr or
 * --mesh-netns, and a failure stops `up`; made by default (root), a
 * failure is a warning and sinewd starts without one -- the control plane
 * is still of use, and `sinew run` says what to do. */
static int mesh_up(const char *dir, const char *cidr, const char *netns, int asked)
{
	char pods[PATH_MAX], err[700], why[800], c[32], gw[16];
	struct sn_pod_mesh m, old;
	if (geteuid() != 0) {
		fprintf(stderr, "sinew up: --pod-cidr/--mesh-netns make a network namespace: run as root\n");
		return -1;
	}
	if (sn_pod_state_dir(dir, pods, sizeof(pods)) != 0 || sn_pod_state_dir_make(pods, err, sizeof(err)) != 0) {
		snprintf(why, sizeof(why), "%s", err);
		goto fail;
	}
	int have = sn_pod_mesh_read(pods, &old) == 0;
	memset(&m, 0, sizeof(m));
	if (have)
		sn_pod_cidr_str(&old.cidr, c, sizeof(c));
	if (sn_pod_cidr_parse(cidr ? cidr : have ? c : SN_POD_DEFAULT_CIDR, &m.cidr, err, sizeof(err)) != 0) {
		snprintf(why, sizeof(why), "--pod-cidr: %s", err);
		goto fail;
	}
	snprintf(m.netns, sizeof(m.netns), "%s", netns ? netns : have ? old.netns : SN_POD_MESH_NETNS);
	snprintf(m.bridge, sizeof(m.bridge), "%s", have ? old.bridge : SN_POD_BRIDGE);
	int lock = sn_pod_state_lock(pods, err, sizeof(err));
	int rc = lock < 0 ? lock : sn_pod_mesh_ensure(pods, &m, err, sizeof(err));
	sn_pod_state_unlock(lock);
	if (rc != 0) {
		snprintf(why, sizeof(why), "the mesh network: %s", err);
		goto fail;
	}
	sn_pod_cidr_str(&m.cidr, c, sizeof(c));
	sn_pod_addr_str(sn_pod_cidr_gateway(&m.cidr), gw, sizeof(gw));
	printf("mesh network %s: bridge %s, pods %s, gateway %s\n", m.netns, m.bridge, c, gw);
	return 0;
fail:
	if (asked)
		fprintf(stderr, "sinew up: %s\n", why);
	else
		fprintf(stderr, "sinew up: no pod network, so sinewd starts without one (%s). `sinew run` "
				"needs it: `sinew down`, then `sinew up --mesh-netns NAME`; --no-pods says you want "
				"none\n", why);
	return -1;
}

/* sinew up --host NAME: the simulated host beside the mesh network. */
static int host_up(const char *dir, const char *name, const char *cidr)
{
	char pods[PATH_MAX], err[700], c[32], gw[16];
	struct sn_pod_mesh m;
	struct sn_pod_hostnet h;
	if (sn_pod_state_dir(dir, pods, sizeof(pods)) != 0 || sn_pod_mesh_read(pods, &m) != 0) {
		fprintf(stderr, "sinew up: --host %s: no mesh network recorded in %s\n", name, dir);
		return -1;
	}
	int lock = sn_pod_state_lock(pods, err, sizeof(err));
	int rc = lock < 0 ? lock : sn_pod_host_ensure(pods, &m, name, cidr, &h, err, sizeof(err));
	sn_pod_state_unlock(lock);
	if (rc != 0) {
		fprintf(stderr, "sinew up: --host %s: %s\n", name, err);
		return -1;
	}
	sn_pod_cidr_str(&h.net.cidr, c, sizeof(c));
	sn_pod_addr_str(sn_pod_cidr_gateway(&h.net.cidr), gw, sizeof(gw));
	printf("host %s: namespace %s, bridge %s, pods %s, gateway %s, routed to %s\n", h.name, h.net.netns,
	       h.net.bridge, c, gw, m.netns);
	return 0;
}

/* Takes back the mesh network this `up` made by default when sinewd then
 * does not start: a failed `up` leaves no namespace of its own behind
 * (one made on request stays, as the user asked for it). */
static void mesh_undo(const char *dir)
{
	char pods[PATH_MAX], err[700];
	int removed = 0;
	if (sn_pod_state_dir(dir, pods, sizeof(pods)) != 0)
		return;
	int lock = sn_pod_state_lock(pods, err, sizeof(err));
	int rc = lock < 0 ? lock : sn_pod_mesh_remove(pods, &removed, err, sizeof(err));
	sn_pod_state_unlock(lock);
	if (rc != 0)
		fprintf(stderr, "sinew up: the mesh network it made: %s; `sinew down` removes it\n", err);
}

static void up_usage(FILE *f)
{
	fprintf(f,
		"usage: sinew up [--data-dir DIR] [--api ADDR:PORT] [--mesh ADDR:PORT]\n"
		"                [--pod-cidr CIDR] [--mesh-netns NAME] [--no-pods]\n"
		"                [--host NAME [--host-cidr CIDR]]\n"
		"\n"
		"Starts sinewd, the control plane, in the background and waits until it is ready.\n"
		"It stores resources in DIR, logs to DIR/sinewd.log and records its pid in\n"
		"DIR/sinewd.pid. If it is already running, says so. As root it first makes the\n"
		"mesh network for `sinew run`'s pods.\n"
		"\n"
		"  --data-dir DIR       default $SINEW_HOME, else the last `sinew up --data-dir`'s\n"
		"                       until its `sinew down`, else ~/.sinew; run, ps, logs and\n"
		"                       down find it the same way\n"
		"  --api ADDR:PORT      the HTTP API the CLI talks to (default 127.0.0.1:15080);\n"
		"                       with another address, point the CLI at it with\n"
		"                       --server or SINEW_SERVER=http://ADDR:PORT\n"
		"  --mesh ADDR:PORT     where proxies connect (default 127.0.0.1:15012)\n"
		"  --log-level LEVEL    sinewd's: error, warn, info (default), debug, trace\n"
		"  --pod-cidr CIDR      the pod range of the mesh network (root; default\n"
		"                       " SN_POD_DEFAULT_CIDR ", or what DIR recorded)\n"
		"  --mesh-netns NAME    ... in this network namespace (default " SN_POD_MESH_NETNS ")\n"
		"  --no-pods            no mesh network (root makes one by default)\n"
		"  --host NAME          also a simulated host NAME (root): a network namespace\n"
		"                       sn-h-NAME with a pod bridge and range of its own, routed to\n"
		"                       the mesh network, for `sinew run --host NAME`; with sinewd\n"
		"                       already running, adds the host only\n"
		"  --host-cidr CIDR     the host's pod range (default: the block after the mesh's,\n"
		"                       10.89.0.0/16 for the first host)\n"
		"\n"
		"Exit status: 0 running (started or already), 1 it did not start, 2 usage error.\n");
}

int sn_cli_up(int argc, char **argv)
{
	enum { O_DATA = 256, O_API, O_MESH, O_LOG, O_POD_CIDR, O_MESH_NETNS, O_NO_PODS, O_HOST, O_HOST_CIDR };
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, O_DATA },
		{ "api", required_argument, NULL, O_API },
		{ "mesh", required_argument, NULL, O_MESH },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "pod-cidr", required_argument, NULL, O_POD_CIDR },
		{ "mesh-netns", required_argument, NULL, O_MESH_NETNS },
		{ "no-pods", no_argument, NULL, O_NO_PODS },
		{ "host", required_argument, NULL, O_HOST },
		{ "host-cidr", required_argument, NULL, O_HOST_CIDR },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir_flag = NULL, *api = "127.0.0.1:15080", *mesh = "127.0.0.1:15012", *level = "info";
	const char *pod_cidr = NULL, *mesh_netns = NULL, *host = NULL, *host_cidr = NULL;
	int no_pods = 0;
	char dir[PATH_MAX - 32], pidfile[PATH_MAX], log[PATH_MAX], exe[PATH_MAX], url[300];
	int o;

	optind = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case O_DATA: dir_flag = optarg; break;
		case O_API: api = optarg; break;
		case O_MESH: mesh = optarg; break;
		case O_LOG: level = optarg; break;
		case O_POD_CIDR: pod_cidr = optarg; break;
		case O_MESH_NETNS: mesh_netns = optarg; break;
		case O_NO_PODS: no_pods = 1; break;
		case O_HOST: host = optarg; break;
		case O_HOST_CIDR: host_cidr = optarg; break;
		case 'h': up_usage(stdout); return 0;
		default: up_usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sinew up: unexpected argument \"%s\"; see sinew up --help\n", argv[optind]);
		return 2;
	}
	int pods_asked = pod_cidr != NULL || mesh_netns != NULL;
	if (pods_asked && no_pods) {
		fprintf(stderr, "sinew up: --no-pods with --pod-cidr or --mesh-netns: choose one\n");
		return 2;
	}
	if (host != NULL && geteuid() != 0) {
		fprintf(stderr, "sinew up: --host %s makes network namespaces: run as root (sudo sinew up --host %s)\n",
			host, host);
		return 1;
	}
	if ((host != NULL && no_pods) || (host_cidr != NULL && host == NULL)) {
		fprintf(stderr, "sinew up: %s\n", no_pods ? "--host makes pods' network: not with --no-pods"
							  : "--host-cidr goes with --host NAME");
		return 2;
	}
	if (sn_cli_data_dir(dir_flag, dir, sizeof(dir)) != 0)
		return 2;
	snprintf(url, sizeof(url), "http://%s", api);
	struct sn_http_url u;
	char err[600];
	if (!addr_port(api) || sn_http_url_parse(url, &u, err, sizeof(err)) != 0) {
		fprintf(stderr, "sinew up: --api %s: want ADDR:PORT, e.g. 127.0.0.1:15080\n", api);
		return 2;
	}
	if (!addr_port(mesh)) {
		fprintf(stderr, "sinew up: --mesh %s: want ADDR:PORT, e.g. 127.0.0.1:15012\n", mesh);
		return 2;
	}
	if (mkdir_p(dir) != 0) {
		fprintf(stderr, "sinew: cannot create the data directory %s: %s\n", dir, strerror(errno));
		return 1;
	}
	char abs[PATH_MAX];
	if (realpath(dir, abs) != NULL && strlen(abs) < sizeof(dir))
		memcpy(dir, abs, strlen(abs) + 1);
	snprintf(pidfile, sizeof(pidfile), "%s/sinewd.pid", dir);
	snprintf(log, sizeof(log), "%s/sinewd.log", dir);
	if ((pods_asked || host != NULL) && mesh_up(dir, pod_cidr, mesh_netns, 1) != 0)
		return 1;
	if (host != NULL && host_up(dir, host, host_cidr) != 0)
		return 1;

	pid_t old = running_pid(pidfile);
	if (old > 0) {
		printf("sinewd is already running (pid %ld, data in %s, log %s)\n", (long)old, dir, log);
		if (dir_flag != NULL)
			current_write(dir);
		return 0;
	}
	/* Root gets the pod network without asking, so that `sinew run` works
	 * after a plain `sinew up` (sinewd listens on the gateway only if the
	 * network is there when it starts). Not when sinewd already runs: it
	 * would not listen there until restarted anyway. */
	char pods[PATH_MAX], pod_mesh[SN_POD_NAME_MAX + 32] = "";
	struct sn_pod_mesh pm;
	int have_pods_dir = sn_pod_state_dir(dir, pods, sizeof(pods)) == 0;
	int made_mesh = 0;
	if (!pods_asked && !no_pods && geteuid() == 0 && have_pods_dir) {
		int had = sn_pod_mesh_read(pods, &pm) == 0;
		if (mesh_up(dir, NULL, NULL, 0) == 0)
			made_mesh = !had;
		else if (!had)
			mesh_undo(dir);   /* what a half-made one recorded */
	}
	/* With a mesh network (made now or by an earlier `sinew run`), sinewd
	 * also takes proxies on its gateway, where pods' proxies connect. */
	if (geteuid() == 0 && have_pods_dir && sn_pod_mesh_read(pods, &pm) == 0 && sn_pod_netns_exists(pm.netns)) {
		char gw[16];
		sn_pod_addr_str(sn_pod_cidr_gateway(&pm.cidr), gw, sizeof(gw));
		snprintf(pod_mesh, sizeof(pod_mesh), "%s=%s:%d", pm.netns, gw, SN_POD_PORT_CONTROL);
	}

	sinewd_path(exe, sizeof(exe));
	int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0) {
		fprintf(stderr, "sinew: cannot open the log %s: %s\n", log, strerror(errno));
		goto fail;
	}
	int pipefd[2];   /* tells the parent when exec failed */
	if (pipe2(pipefd, O_CLOEXEC) != 0) {
		fprintf(stderr, "sinew: pipe: %s\n", strerror(errno));
		close(logfd);
		goto fail;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "sinew: cannot start sinewd: fork: %s\n", strerror(errno));
		close(logfd);
		goto fail;
	}
	if (pid == 0) {
		close(pipefd[0]);
		setsid();
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		signal(SIGPIPE, SIG_DFL);
		char *av[] = { exe, (char *)"--data-dir", dir, (char *)"--api", (char *)api, (char *)"--mesh",
			       (char *)mesh, (char *)"--log-level", (char *)level,
			       pod_mesh[0] ? (char *)"--pod-mesh" : NULL, pod_mesh, NULL };
		execvp(exe, av);
		int e = errno;
		if (write(pipefd[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	close(pipefd[1]);
	close(logfd);
	int exec_errno = 0;
	ssize_t rn = read(pipefd[0], &exec_errno, sizeof(exec_errno));
	close(pipefd[0]);
	if (rn == (ssize_t)sizeof(exec_errno)) {
		waitpid(pid, NULL, 0);
		fprintf(stderr, "sinew: cannot run %s: %s; build it (make build) or put it on PATH\n", exe,
			strerror(exec_errno));
		goto fail;
	}
	FILE *pf = fopen(pidfile, "w");
	if (pf == NULL || fprintf(pf, "%ld\n", (long)pid) < 0 || fclose(pf) != 0) {
		fprintf(stderr, "sinew: cannot write %s: %s; stopping sinewd\n", pidfile, strerror(errno));
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
		goto fail;
	}

	long long deadline = (long long)sn_clock_ms() + READY_WAIT_MS;
	for (;;) {
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			unlink(pidfile);
			fprintf(stderr, "sinew: sinewd exited during start-up (%s %d)\n",
				WIFEXITED(status) ? "status" : "signal",
				WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
			sn_cli_print_log_tail(log);
			goto fail;
		}
		struct sn_http_response r;
		if (sn_cli_http(u.text, "GET", "/ready", NULL, NULL, 0, 1000, "sinewd", NULL, &r, err, sizeof(err)) ==
		    0) {
			int st = r.status;
			sn_http_response_free(&r);
			if (st == 200)
				break;
		}
		if ((long long)sn_clock_ms() > deadline) {
			fprintf(stderr, "sinew: sinewd (pid %ld) is not ready after %d s; see %s (stop it with `sinew down`)\n",
				(long)pid, READY_WAIT_MS / 1000, log);
			sn_cli_print_log_tail(log);
			return 1;   /* sinewd runs: `sinew down` stops it and removes the network */
		}
		sn_sleep_ms(50);
	}
	printf("sinewd is running (pid %ld)\n", (long)pid);
	printf("  API:   %s\n", u.text);
	printf("  mesh:  %s (proxies: sinew-proxy --control-plane %s)\n", mesh, mesh);
	if (pod_mesh[0])
		printf("  pods:  %s (in network namespace %.*s, for `sinew run`)\n", strchr(pod_mesh, '=') + 1,
		       (int)(strchr(pod_mesh, '=') - pod_mesh), pod_mesh);
	if (dir_flag != NULL) {
		current_write(dir);
		printf("  data:  %s (what run, ps, logs and down use until `sinew down`)\n", dir);
	} else {
		printf("  data:  %s\n", dir);
	}
	printf("  log:   %s\n", log);
	if (strcmp(u.text, SN_CLI_DEFAULT_SERVER) != 0) {
		const char *env = getenv("SINEW_SERVER");
		if (env == NULL || strcmp(env, u.text) != 0)
			printf("The API is not on the default address; run: export SINEW_SERVER=%s\n", u.text);
	}
	return 0;
fail:
	if (made_mesh)
		mesh_undo(dir);
	return 1;
}

static void down_usage(FILE *f)
{
	fprintf(f,
		"usage: sinew down [--data-dir DIR]\n"
		"\n"
		"Stops the sinewd that `sinew up` started with this data directory: SIGTERM, then\n"
		"SIGKILL if it has not exited after 10 s. Resources stay in DIR for the next\n"
		"`sinew up`. Pods that `sinew run` made with this data directory are removed\n"
		"first (their processes, network namespaces, capture rules, logs), then the\n"
		"mesh network. Nothing running is not an error.\n"
		"\n"
		"  --data-dir DIR   default $SINEW_HOME, else the last `sinew up --data-dir`'s\n"
		"                   (which this forgets), else ~/.sinew\n"
		"\n"
		"Exit status: 0 stopped (or not running), 1 it could not be stopped, 2 usage error.\n");
}

int sn_cli_down(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir_flag = NULL;
	char dir[PATH_MAX - 32], pidfile[PATH_MAX];
	int o;

	optind = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'd': dir_flag = optarg; break;
		case 'h': down_usage(stdout); return 0;
		default: down_usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sinew down: unexpected argument \"%s\"; see sinew down --help\n", argv[optind]);
		return 2;
	}
	if (sn_cli_data_dir(dir_flag, dir, sizeof(dir)) != 0)
		return 2;
	/* Pods first: their proxies drain while sinewd is still there. */
	char pods[PATH_MAX], perr[700];
	int pods_rc = 0;
	if (sn_pod_state_dir(dir, pods, sizeof(pods)) == 0 && sn_pod_down(pods, STOP_WAIT_MS, stdout, perr,
									  sizeof(perr)) != 0) {
		fprintf(stderr, "sinew down: %s\n", perr);
		pods_rc = 1;
	}
	snprintf(pidfile, sizeof(pidfile), "%s/sinewd.pid", dir);
	pid_t pid = running_pid(pidfile);
	if (pid <= 0) {
		current_forget(dir);
		if (unlink(pidfile) == 0)
			printf("sinewd is not running (removed a stale %s)\n", pidfile);
		else
			printf("sinewd is not running (data dir %s)\n", dir);
		return pods_rc;
	}
	if (kill(pid, SIGTERM) != 0) {
		fprintf(stderr, "sinew: cannot stop sinewd (pid %ld): %s\n", (long)pid, strerror(errno));
		return 1;
	}
	long long deadline = (long long)sn_clock_ms() + STOP_WAIT_MS;
	int killed = 0;
	for (;;) {
		/* Our child only if this shell started it; reap it if so. */
		waitpid(pid, NULL, WNOHANG);
		if (!alive(pid))
			break;
		if (!killed && (long long)sn_clock_ms() > deadline) {
			fprintf(stderr, "sinew: sinewd (pid %ld) did not exit within %d s of SIGTERM; sending SIGKILL\n",
				(long)pid, STOP_WAIT_MS / 1000);
			kill(pid, SIGKILL);
			killed = 1;
			deadline = (long long)sn_clock_ms() + 5000;
		} else if (killed && (long long)sn_clock_ms() > deadline) {
			fprintf(stderr, "sinew: sinewd (pid %ld) is still there after SIGKILL\n", (long)pid);
			return 1;
		}
		sn_sleep_ms(20);
	}
	unlink(pidfile);
	current_forget(dir);
	printf("sinewd stopped (pid %ld%s); data kept in %s\n", (long)pid, killed ? ", killed" : "", dir);
	return pods_rc;
}
