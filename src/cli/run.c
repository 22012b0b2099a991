/* sinew run: a workload in its own pod, behind its sidecar.
 *
 *   record -> namespace, veth, address -> /etc/hosts -> capture rules
 *   -> proxy (uid 1337, in the pod) -> ready? (/ready, rules present,
 *   capture probe; fail closed) -> app (in the pod, the user's uid, stdio
 *   inherited and copied to its log) -> app exits or SIGINT/SIGTERM ->
 *   proxy SIGTERM and drain -> pod removed -> exit with the app's status.
 *
 * `sinew run` stays in the foreground as the pod's supervisor; its pid is
 * in the pod's record so that `sinew down` can stop it. With --no-capture
 * there is no namespace and no root: the proxy listens on explicit ports
 * and the app gets http_proxy. docs/internals/pods.md has the details. */
#include <errno.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sinew/cli.h"
#include "sinew/loop.h"
#include "sinew/common.h"
#include "sinew/control.h"
#include "sinew/pod.h"

#define MAX_PORTS 32
#define MAX_PROXY_ARGS 64
#define MAX_CONTROL_PLANES 8          /* sinew-proxy's --control-plane limit (sinewd replicas) */
#define REACH_TIMEOUT_MS 2000
#define DEFAULT_READY_S 30
#define DEFAULT_DRAIN_S 30
#define APP_STOP_GRACE_MS 10000
#define NAMES_REFRESH_MS 3000        /* new Services' names reach running pods within this */

struct run_opts {
	const char *service;
	const char *namespace_;
	const char *labels;
	const char *service_account;
	char ports[SN_POD_FIELD_MAX];
	int capture;
	int gateway;                 /* sinew gateway run: the proxy is the workload (--gateway), no app */
	const char *credentials;     /* the gateway's --credentials-dir */
	int token;                   /* mint a join token (--no-token: skip) */
	const char *data_dir;
	const char *server;
	const char *pod_cidr;
	const char *mesh_netns;
	const char *host;            /* --host NAME: a simulated host of `sinew up --host` */
	const char *proxy_cmd;       /* instead of sinew-proxy, split on blanks */
	const char *control_plane;   /* default: gateway:15012, or 127.0.0.1:15012 */
	const char *outbound, *inbound, *admin;   /* --no-capture listeners */
	int ready_timeout_s;
	int drain_timeout_s;
	const char *publish[8];      /* --publish [HOSTADDR:]HOSTPORT:PODPORT */
	size_t n_publish;
	char **cmd;                  /* the app: argv, NULL-terminated */
};

/* ---- signals ---------------------------------------------------------------- */

static int sig_pipe[2] = { -1, -1 };
static volatile sig_atomic_t stop_signal;   /* SIGINT, SIGTERM or SIGHUP received */

static void on_signal(int sig)
{
	int e = errno;
	if (sig != SIGCHLD)
		stop_signal = sig;
	if (sig_pipe[1] >= 0) {
		char c = (char)sig;
		ssize_t w = write(sig_pipe[1], &c, 1);
		(void)w;
	}
	errno = e;
}

static int signals_install(void)
{
	if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		return -1;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static void drain_sig_pipe(void)
{
	char buf[64];
	while (read(sig_pipe[0], buf, sizeof(buf)) > 0) {
	}
}

/* ---- small helpers ------------------------------------------------------------ */

/* Waits up to ms, returning early on a signal. */
static void nap(int ms)
{
	struct pollfd p = { sig_pipe[0], POLLIN, 0 };
	poll(&p, 1, ms);
	drain_sig_pipe();
}

/* A DNS-1123 label: what Services and namespaces are named. */
static int dns_label(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

/* "k=v,k=v": keys and values of letters, digits, '.', '_', '-', '/'. */
static int labels_ok(const char *s)
{
	int want_eq = 1;
	size_t part = 0;
	for (const char *c = s;; c++) {
		if (*c == '\0' || *c == ',') {
			if (want_eq || part == 0)
				return 0;
			if (*c == '\0')
				return 1;
			want_eq = 1;
			part = 0;
		} else if (*c == '=') {
			if (!want_eq || part == 0)
				return 0;
			want_eq = 0;
			part = 0;
		} else if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
			   *c == '.' || *c == '_' || *c == '-' || *c == '/') {
			part++;
		} else {
			return 0;
		}
	}
}

/* Appends "PORT[/PROTO]" items (comma-separated) to buf. */
static int add_ports(char *buf, size_t size, const char *arg)
{
	char tmp[SN_POD_FIELD_MAX];
	snprintf(tmp, sizeof(tmp), "%s", arg);
	for (char *save = NULL, *item = strtok_r(tmp, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *slash = strchr(item, '/'), *end;
		long port = strtol(item, &end, 10);
		if (end == item || port < 1 || port > 65535 || (*end != '\0' && *end != '/'))
			return -1;
		if (slash != NULL) {
			if (slash[1] == '\0')
				return -1;
			for (char *c = slash + 1; *c; c++)
				if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
				      *c == '-'))
					return -1;
		}
		size_t l = strlen(buf);
		int w = snprintf(buf + l, size - l, "%s%s", l ? "," : "", item);
		if (w < 0 || (size_t)w >= size - l)
			return -1;
	}
	return 0;
}

static int addr_port_ok(const char *s)
{
	const char *colon = strrchr(s, ':');
	char host[32], *end;
	uint32_t a;
	if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
		return 0;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	long port = strtol(colon + 1, &end, 10);
	return sn_pod_addr_parse(host, &a) == 0 && *end == '\0' && port > 0 && port < 65536;
}

/* One IPV4:PORT (port 1-65535) of s[0..len) into *sa. Returns 0 or -1. */
static int ipv4_port(const char *s, size_t len, struct sockaddr_in *sa)
{
	char text[32], *end;
	if (len == 0 || len >= sizeof(text))
		return -1;
	memcpy(text, s, len);
	text[len] = '\0';
	char *colon = strrchr(text, ':');
	if (colon == NULL || colon[1] < '0' || colon[1] > '9')
		return -1;
	*colon = '\0';
	unsigned long port = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || port == 0 || port > 65535)
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, text, &sa->sin_addr) == 1 ? 0 : -1;
}

/* --control-plane A[,B...]: sinewd replicas, passed to the proxy as
 * written. Fills sa[0..*n) (at most MAX_CONTROL_PLANES); returns 0, or -1
 * with err naming the entry and what is wrong. */
static int control_plane_list(const char *s, struct sockaddr_in *sa, size_t *n, char *err, size_t es)
{
	*n = 0;
	for (const char *entry = s;;) {
		const char *comma = strchr(entry, ',');
		size_t len = comma ? (size_t)(comma - entry) : strlen(entry);
		if (*n == MAX_CONTROL_PLANES) {
			snprintf(err, es, "more than %d addresses", MAX_CONTROL_PLANES);
			return -1;
		}
		if (ipv4_port(entry, len, &sa[*n]) != 0) {
			snprintf(err, es, "entry %zu (\"%.*s\"): want IPV4:PORT[,IPV4:PORT...], e.g. 10.88.0.1:15012",
				 *n + 1, (int)SN_MIN(len, (size_t)64), entry);
			return -1;
		}
		for (size_t j = 0; j < *n; j++) {
			if (sa[j].sin_addr.s_addr == sa[*n].sin_addr.s_addr && sa[j].sin_port == sa[*n].sin_port) {
				snprintf(err, es, "entry %zu (\"%.*s\") repeats entry %zu", *n + 1, (int)len, entry, j + 1);
				return -1;
			}
		}
		(*n)++;
		if (comma == NULL)
			return 0;
		entry = comma + 1;
	}
}

/* sinew-proxy next to this executable, else from PATH. */
static void proxy_path(char *buf, size_t size)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash != NULL && (size_t)(slash - self) + sizeof("/sinew-proxy") <= size) {
			memcpy(buf, self, (size_t)(slash - self));
			memcpy(buf + (slash - self), "/sinew-proxy", sizeof("/sinew-proxy"));
			if (access(buf, X_OK) == 0)
				return;
		}
	}
	snprintf(buf, size, "sinew-proxy");
}

/* ---- the proxy's command line ----------------------------------------------- */

/* The one place that says how a pod's proxy is started: argv for the
 * proxy of pod p (strings borrowed from o, p, control_plane, probe and
 * store, which must outlive argv). In a pod it listens on 15001 for what
 * capture redirects out and, when the app serves ports, on 15006 for what
 * comes in (to the app at 127.0.0.1:PORT; other proxies are told
 * POD_ADDRESS:PORT); it answers the capture probe with the pod's name. The
 * join token is not here: it goes in SINEW_TOKEN, not on a command line
 * any user can read in /proc. Returns argc, or -1 when --proxy-cmd has
 * too many words. */
static int build_proxy_argv(const struct run_opts *o, const struct sn_pod *p, const char *control_plane,
			    const char *probe, char *store, size_t store_size, char *app, char *advertise,
			    char **argv, size_t max)
{
	size_t n = 0;
	if (o->proxy_cmd != NULL) {
		snprintf(store, store_size, "%s", o->proxy_cmd);
		for (char *save = NULL, *w = strtok_r(store, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
			if (n + 1 >= max)
				return -1;
			argv[n++] = w;
		}
	} else {
		proxy_path(store, store_size);
		argv[n++] = store;
	}
	if (n == 0)
		return -1;
	/* The first declared port is the app's (sinew-proxy has one --app). */
	long port = p->ports[0] ? strtol(p->ports, NULL, 10) : 0;
	snprintf(app, 32, "127.0.0.1:%ld", port);
	snprintf(advertise, 32, "%s:%ld", p->address, port);
#define ARG(s)                                  \
	do {                                    \
		if (n + 1 >= max)               \
			return -1;              \
		argv[n++] = (char *)(s);        \
	} while (0)
	ARG("--control-plane");
	ARG(control_plane);
	ARG("--service");
	ARG(p->service);
	ARG("--namespace");
	ARG(p->namespace_);
	if (p->labels[0]) {
		ARG("--labels");
		ARG(p->labels);
	}
	ARG("--service-account");
	ARG(p->service_account);
	ARG("--admin");
	ARG(p->admin);
	ARG("--pod");
	ARG(p->name);
	if (o->gateway) {
		/* no app, no capture: its ports come from the Gateways */
		ARG("--gateway");
		if (o->credentials != NULL) {
			ARG("--credentials-dir");
			ARG(o->credentials);
		}
		if (!p->capture) {
			ARG("--gateway-address");
			ARG("127.0.0.1");
		}
		/* registered with sinewd, so that a Service selecting the
		 * gateway's labels (an egress gateway's) reaches its ports;
		 * the port is no listener's (each Service port is its own) */
		snprintf(advertise, 32, "%s:%d", p->address, SN_POD_PORT_HEALTH);
		ARG("--advertise");
		ARG(advertise);
		argv[n] = NULL;
		return (int)n;
	}
	ARG("--outbound");
	ARG(p->capture ? "127.0.0.1:15001" : o->outbound);
	if (port > 0) {
		ARG("--inbound");
		ARG(p->capture ? "0.0.0.0:15006" : o->inbound);
		ARG("--app");
		ARG(app);
		if (p->capture) {
			ARG("--advertise");
			ARG(advertise);
		}
	}
	if (p->capture) {
		ARG("--capture-probe");
		ARG(probe);
	}
#undef ARG
	argv[n] = NULL;
	return (int)n;
}

/* ---- starting processes ------------------------------------------------------ */

struct child {
	const char *netns;      /* enter this pod first (NULL: stay) */
	int drop;               /* become uid/gid (groups from user, else none) */
	uid_t uid;
	gid_t gid;
	const char *user;
	int new_session;
	int in_fd, out_fd, err_fd;   /* -1: inherit */
	char *const *argv;
	const char *const *env;      /* "K=V" to set, "K" to unset; NULL-terminated */
};

/* Forks and execs c. A failure before exec comes back through a
 * close-on-exec pipe and is reported in err. Returns the pid or -1. */
static pid_t spawn(const struct child *c, char *err, size_t err_size)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0) {
		snprintf(err, err_size, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, err_size, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		char msg[512];
		close(p[0]);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		if (c->new_session)
			setsid();
		if (c->in_fd >= 0)
			dup2(c->in_fd, 0);
		if (c->out_fd >= 0)
			dup2(c->out_fd, 1);
		if (c->err_fd >= 0)
			dup2(c->err_fd, 2);
		if (c->netns != NULL && sn_pod_enter(c->netns, msg, sizeof(msg)) != 0)
			goto fail;
		if (c->drop) {
			int r = c->user != NULL ? initgroups(c->user, c->gid) : setgroups(0, NULL);
			if (r != 0 || setgid(c->gid) != 0 || setuid(c->uid) != 0) {
				snprintf(msg, sizeof(msg), "cannot switch to uid %u gid %u: %s", (unsigned)c->uid,
					 (unsigned)c->gid, strerror(errno));
				goto fail;
			}
		}
		for (const char *const *e = c->env; e != NULL && *e != NULL; e++) {
			const char *eq = strchr(*e, '=');
			if (eq == NULL) {
				unsetenv(*e);
			} else {
				char key[128];
				snprintf(key, sizeof(key), "%.*s", (int)(eq - *e), *e);
				setenv(key, eq + 1, 1);
			}
		}
		execvp(c->argv[0], c->argv);
		snprintf(msg, sizeof(msg), "cannot run %s%s: %s", c->argv[0],
			 c->drop ? " (as that user: every directory on its path must be searchable by it)" : "",
			 strerror(errno));
fail:;
		ssize_t w = write(p[1], msg, strlen(msg));
		(void)w;
		_exit(127);
	}
	close(p[1]);
	char msg[512];
	ssize_t r;
	do
		r = read(p[0], msg, sizeof(msg) - 1);
	while (r < 0 && errno == EINTR);
	close(p[0]);
	if (r > 0) {
		msg[r] = '\0';
		snprintf(err, err_size, "%s", msg);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
		}
		return -1;
	}
	return pid;
}

/* ---- the supervisor's state ---------------------------------------------- */

struct run {
	struct run_opts *o;
	char dir[PATH_MAX - 128];    /* the pod state directory */
	struct sn_pod pod;
	struct sn_pod_mesh mesh;     /* where the pod is: the mesh network, or its --host's */
	struct sn_pod_mesh hub;      /* the mesh network, where sinewd listens */
	int recorded;                /* a record exists: remove the pod on the way out */
	pid_t proxy, app;
	int proxy_status, app_status;   /* valid once proxy/app are 0 after running */
	int proxy_exited, app_exited;
	int proxy_died;              /* the proxy exited while the app ran */
	int proxy_log, app_log;
	char probe[32];              /* "10.88.255.254:15999" */
	uint32_t probe_addr;
	char *token;
};

static void record(struct run *r)
{
	char err[512];
	if (r->recorded && sn_pod_record_write(r->dir, &r->pod, err, sizeof(err)) != 0)
		fprintf(stderr, "sinew run: warning: %s\n", err);
}

static void reap(struct run *r)
{
	int st;
	if (r->proxy > 0 && waitpid(r->proxy, &st, WNOHANG) == r->proxy) {
		r->proxy_status = st;
		r->proxy_exited = 1;
		r->proxy = 0;
	}
	if (r->app > 0 && waitpid(r->app, &st, WNOHANG) == r->app) {
		r->app_status = st;
		r->app_exited = 1;
		r->app = 0;
	}
}

static void status_str(int st, char *buf, size_t size)
{
	if (WIFEXITED(st))
		snprintf(buf, size, "status %d", WEXITSTATUS(st));
	else
		snprintf(buf, size, "signal %d", WTERMSIG(st));
}

/* Mints the proxy's join token (POST /api/v1/tokens). */
static int mint_token(struct run *r)
{
	struct sn_out body = { 0 };
	sn_out_cstr(&body, "{\"namespace\":");
	sn_out_json_cstr(&body, r->o->namespace_);
	sn_out_cstr(&body, ",\"serviceAccount\":");
	sn_out_json_cstr(&body, r->o->service_account);
	sn_out_cstr(&body, "}");
	if (body.failed) {
		sn_out_free(&body);
		fprintf(stderr, "sinew: out of memory\n");
		return -1;
	}
	struct sn_http_response resp;
	int rc = sn_cli_api(sn_cli_server(r->o->server), "POST", "/api/v1/tokens", body.p, body.len, &resp);
	sn_out_free(&body);
	if (rc != 0) {
		fprintf(stderr, "sinew run: the proxy needs a join token from sinewd (start it with `sinew up`, or "
				"give --no-token)\n");
		return -1;
	}
	if (resp.status != 200) {
		sn_cli_api_error(&resp);
		sn_http_response_free(&resp);
		return -1;
	}
	struct fy_document *doc = sn_cli_json_parse(resp.body, resp.len);
	const char *tok = sn_cli_json_str(sn_cli_json_root(doc), "token");
	if (tok != NULL && strchr(tok, '\n') == NULL)
		r->token = strdup(tok);
	sn_cli_json_free(doc);
	if (resp.body != NULL)
		memset(resp.body, 0, resp.len);
	sn_http_response_free(&resp);
	if (r->token == NULL) {
		fprintf(stderr, "sinew run: sinewd's answer to POST /api/v1/tokens has no token\n");
		return -1;
	}
	return 0;
}

/* Mesh, name, address and the first record, under the state lock. */
static int reserve(struct run *r)
{
	char err[700];
	struct sn_pod *p = &r->pod;
	int lock = sn_pod_state_lock(r->dir, err, sizeof(err));
	if (lock < 0) {
		fprintf(stderr, "sinew run: %s\n", err);
		return -1;
	}
	int rc = -1;
	if (r->o->capture) {
		struct sn_pod_mesh old;
		int have = sn_pod_mesh_read(r->dir, &old) == 0;
		const char *cidr = r->o->pod_cidr;
		char oldcidr[32];
		if (have)
			sn_pod_cidr_str(&old.cidr, oldcidr, sizeof(oldcidr));
		if (cidr == NULL)
			cidr = have ? oldcidr : SN_POD_DEFAULT_CIDR;
		if (sn_pod_cidr_parse(cidr, &r->mesh.cidr, err, sizeof(err)) != 0) {
			fprintf(stderr, "sinew run: --pod-cidr: %s\n", err);
			goto done;
		}
		snprintf(r->mesh.netns, sizeof(r->mesh.netns), "%s",
			 r->o->mesh_netns ? r->o->mesh_netns : have ? old.netns : SN_POD_MESH_NETNS);
		snprintf(r->mesh.bridge, sizeof(r->mesh.bridge), "%s", have ? old.bridge : SN_POD_BRIDGE);
		if (sn_pod_mesh_ensure(r->dir, &r->mesh, err, sizeof(err)) != 0) {
			fprintf(stderr, "sinew run: the mesh network: %s\n", err);
			goto done;
		}
		r->hub = r->mesh;
		if (r->o->host != NULL) {
			struct sn_pod_hostnet h;
			if (sn_pod_host_read(r->dir, r->o->host, &h) != 0 || !sn_pod_netns_exists(h.net.netns)) {
				fprintf(stderr, "sinew run: --host %s: no such host in %s; make it with `sudo sinew up "
						"--host %s`\n", r->o->host, r->dir, r->o->host);
				goto done;
			}
			r->mesh = h.net;
		}
	}
	if (sn_pod_name_new(r->dir, r->o->service, p->name, sizeof(p->name)) != 0) {
		fprintf(stderr, "sinew run: cannot choose a pod name for service %s\n", r->o->service);
		goto done;
	}
	if (r->o->capture) {
		uint32_t *used, a;
		size_t n;
		if (sn_pod_used_addrs(r->dir, &used, &n) != 0) {
			fprintf(stderr, "sinew run: cannot read the pods in %s\n", r->dir);
			goto done;
		}
		int prc = sn_pod_addr_pick(&r->mesh.cidr, used, n, &a);
		free(used);
		if (prc != 0) {
			char c[32];
			sn_pod_cidr_str(&r->mesh.cidr, c, sizeof(c));
			fprintf(stderr, "sinew run: the pod range %s is full (%zu pods); remove pods or `sinew down` and "
					"choose a larger --pod-cidr\n", c, n);
			goto done;
		}
		sn_pod_addr_str(a, p->address, sizeof(p->address));
		snprintf(p->netns, sizeof(p->netns), "%s", p->name);
		snprintf(p->mesh_netns, sizeof(p->mesh_netns), "%s", r->mesh.netns);
		snprintf(p->veth_mesh, sizeof(p->veth_mesh), "snv-%s", p->name + strlen(p->name) - 6);
		snprintf(p->veth_pod, sizeof(p->veth_pod), "eth0");
		snprintf(p->admin, sizeof(p->admin), "127.0.0.1:%d", SN_POD_PORT_ADMIN);
		r->probe_addr = sn_pod_cidr_probe(&r->mesh.cidr);
		char pa[16];
		sn_pod_addr_str(r->probe_addr, pa, sizeof(pa));
		snprintf(r->probe, sizeof(r->probe), "%s:%d", pa, SN_POD_PORT_PROBE);
	} else {
		snprintf(p->address, sizeof(p->address), "127.0.0.1");
		snprintf(p->admin, sizeof(p->admin), "%s", r->o->admin);
	}
	p->capture = r->o->capture;
	p->gateway = r->o->gateway;
	p->state = SN_POD_STATE_CREATING;
	snprintf(p->service, sizeof(p->service), "%s", r->o->service);
	snprintf(p->namespace_, sizeof(p->namespace_), "%s", r->o->namespace_);
	snprintf(p->service_account, sizeof(p->service_account), "%s", r->o->service_account);
	/* app=SERVICE unless given: the Service sinew run creates selects on
	 * it, and so do AuthorizationPolicies (the proxy's own labels). */
	const char *ul = r->o->labels ? r->o->labels : "";
	int has_app = !strncmp(ul, "app=", 4) || strstr(ul, ",app=") != NULL;
	if (has_app)
		snprintf(p->labels, sizeof(p->labels), "%s", ul);
	else
		snprintf(p->labels, sizeof(p->labels), "app=%s%s%s", r->o->service, ul[0] ? "," : "", ul);
	snprintf(p->ports, sizeof(p->ports), "%s", r->o->ports);
	p->supervisor.pid = getpid();
	p->supervisor.start = sn_pod_proc_start(getpid());
	p->created = (long long)time(NULL);
	if (sn_pod_record_write(r->dir, p, err, sizeof(err)) != 0) {
		fprintf(stderr, "sinew run: %s\n", err);
		goto done;
	}
	r->recorded = 1;
	rc = 0;
done:
	sn_pod_state_unlock(lock);
	return rc;
}

static int open_logs(struct run *r)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s.proxy.log", r->dir, r->pod.name);
	r->proxy_log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	snprintf(path, sizeof(path), "%s/%s.app.log", r->dir, r->pod.name);
	r->app_log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (r->proxy_log < 0 || r->app_log < 0) {
		fprintf(stderr, "sinew run: cannot open the logs in %s: %s\n", r->dir, strerror(errno));
		return -1;
	}
	return 0;
}

/* Fail fast, with the fix, when no sinewd of the list listens on the
 * pods' network (a `sinew up` without a pod network, or before this mesh
 * was made): otherwise the proxy would wait out --ready-timeout. One
 * replica that answers is enough (the proxy moves between them by
 * itself), so all are tried at once, for REACH_TIMEOUT_MS at most. */
static int control_reachable(struct run *r, const char *control_plane)
{
	struct sockaddr_in sa[MAX_CONTROL_PLANES];
	int fd[MAX_CONTROL_PLANES], err[MAX_CONTROL_PLANES];
	size_t n = 0, pending = 0;
	char why[160];
	int ok = 0;

	if (control_plane_list(control_plane, sa, &n, why, sizeof(why)) != 0)
		return 0;   /* checked with the flags; cannot tell: let the proxy try */
	for (size_t i = 0; i < n; i++) {
		err[i] = ETIMEDOUT;
		/* From the mesh namespace, where sinewd's pod listener is: from
		 * the pod the capture rules would send this to the (not yet
		 * started) proxy. */
		fd[i] = sn_pod_socket_in_netns(r->mesh.netns, AF_INET, SOCK_STREAM, 0);
		if (fd[i] < 0) {
			ok = 1;   /* cannot tell: let the proxy try */
			continue;
		}
		int fl = fcntl(fd[i], F_GETFL);
		if (fl < 0 || fcntl(fd[i], F_SETFL, fl | O_NONBLOCK) != 0 ||
		    connect(fd[i], (struct sockaddr *)&sa[i], sizeof(sa[i])) == 0) {
			ok = 1;
		} else if (errno == EINPROGRESS) {
			pending++;
			continue;
		} else {
			err[i] = errno;
		}
		close(fd[i]);
		fd[i] = -1;
	}
	uint64_t deadline = sn_clock_ms() + REACH_TIMEOUT_MS;
	while (!ok && pending > 0) {
		struct pollfd pf[MAX_CONTROL_PLANES];
		size_t at[MAX_CONTROL_PLANES], np = 0;
		uint64_t now = sn_clock_ms();
		if (now >= deadline)
			break;
		for (size_t i = 0; i < n; i++) {
			if (fd[i] >= 0) {
				pf[np] = (struct pollfd){ .fd = fd[i], .events = POLLOUT };
				at[np++] = i;
			}
		}
		int k = poll(pf, np, (int)(deadline - now));
		if (k < 0 && errno != EINTR)
			break;
		for (size_t j = 0; k > 0 && j < np; j++) {
			size_t i = at[j];
			int e = 0;
			socklen_t el = sizeof(e);
			if (pf[j].revents == 0)
				continue;
			if (getsockopt(fd[i], SOL_SOCKET, SO_ERROR, &e, &el) != 0)
				e = errno;
			if (e == 0)
				ok = 1;
			err[i] = e;
			close(fd[i]);
			fd[i] = -1;
			pending--;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	if (ok)
		return 0;
	char tried[MAX_CONTROL_PLANES * 64] = "";
	for (size_t i = 0, off = 0; i < n && off < sizeof(tried); i++) {
		char ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &sa[i].sin_addr, ip, sizeof(ip));
		off += (size_t)snprintf(tried + off, sizeof(tried) - off, "%s%s:%u (%s)", i ? ", " : "", ip,
					ntohs(sa[i].sin_port), strerror(err[i]));
	}
	fprintf(stderr, "sinew run: sinewd does not answer in the pods' network on %s: it listens there only when "
			"started with it; run `sinew down` then `sinew up` (as root, without --no-pods), or give "
			"--control-plane\n", tried);
	return -1;
}

static int start_proxy(struct run *r)
{
	char store[PATH_MAX], cp[64], err[700], gw[16];
	char *argv[MAX_PROXY_ARGS];
	const char *control_plane = r->o->control_plane;
	if (control_plane == NULL) {
		if (r->o->capture) {
			/* sinewd's pod listener is on the mesh network's gateway,
			 * routed from every host */
			sn_pod_addr_str(sn_pod_cidr_gateway(&r->hub.cidr), gw, sizeof(gw));
			snprintf(cp, sizeof(cp), "%s:%d", gw, SN_POD_PORT_CONTROL);
		} else {
			snprintf(cp, sizeof(cp), "127.0.0.1:%d", SN_POD_PORT_CONTROL);
		}
		control_plane = cp;
	}
	if (r->o->capture && r->o->token && r->o->proxy_cmd == NULL && control_reachable(r, control_plane) != 0)
		return -1;
	char app[32], advertise[32];
	if (build_proxy_argv(r->o, &r->pod, control_plane, r->probe, store, sizeof(store), app, advertise, argv,
			     MAX_PROXY_ARGS) < 0) {
		fprintf(stderr, "sinew run: --proxy-cmd has too many words\n");
		return -1;
	}
	char token_env[4096];
	const char *env[] = { "SINEW_TOKEN", NULL, NULL };
	if (r->token != NULL) {
		snprintf(token_env, sizeof(token_env), "SINEW_TOKEN=%s", r->token);
		env[0] = token_env;
	}
	if (r->o->capture)
		env[1] = "HOME=/";   /* uid 1337 has no home */
	int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	struct child c = {
		.netns = r->o->capture ? r->pod.name : NULL,
		.drop = r->o->capture,
		.uid = SN_POD_PROXY_UID,
		.gid = SN_POD_PROXY_UID,
		.new_session = 1,   /* the terminal's ^C is for the app; the proxy drains on our SIGTERM */
		.in_fd = nul,
		.out_fd = r->proxy_log,
		.err_fd = r->proxy_log,
		.argv = argv,
		.env = env,
	};
	r->proxy = spawn(&c, err, sizeof(err));
	memset(token_env, 0, sizeof(token_env));
	if (nul >= 0)
		close(nul);
	if (r->proxy < 0) {
		r->proxy = 0;
		fprintf(stderr, "sinew run: cannot start the proxy: %s\n", err);
		return -1;
	}
	r->pod.proxy.pid = r->proxy;
	r->pod.proxy.start = sn_pod_proc_start(r->proxy);
	r->pod.state = SN_POD_STATE_STARTING;
	record(r);
	return 0;
}

/* Ready: the proxy's /ready says 200, and with capture the rules are in
 * place and the probe comes back through the proxy. Fail closed: the rules
 * missing fails at once, anything else at the deadline. */
static int wait_ready(struct run *r)
{
	char why[700] = "the proxy's admin port did not answer";
	char log[PATH_MAX];
	long long deadline = (long long)sn_clock_ms() + (long long)r->o->ready_timeout_s * 1000;
	const char *netns = r->o->capture ? r->pod.name : NULL;
	snprintf(log, sizeof(log), "%s/%s.proxy.log", r->dir, r->pod.name);
	for (;;) {
		reap(r);
		if (stop_signal)
			return -1;
		if (r->proxy_exited) {
			char st[40];
			status_str(r->proxy_status, st, sizeof(st));
			fprintf(stderr, "sinew run: the proxy of pod %s exited during start-up (%s); the app was not "
					"started\n", r->pod.name, st);
			sn_cli_print_log_tail(log);
			return -1;
		}
		int status = 0;
		char body[512], err[600];
		if (sn_pod_http_get(netns, r->pod.admin, "/ready", 1000, &status, body, sizeof(body), err,
				    sizeof(err)) != 0) {
			snprintf(why, sizeof(why), "the proxy's /ready did not answer: %s", err);
		} else if (status != 200) {
			char *nl = strchr(body, '\n');
			if (nl != NULL)
				*nl = '\0';
			snprintf(why, sizeof(why), "the proxy's /ready says %d: %.200s", status, body);
		} else if (!r->o->capture || r->o->gateway) {
			return 0;
		} else {
			int present = sn_pod_capture_present(netns, sn_pod_capture_default(), err, sizeof(err));
			if (present == 0) {
				fprintf(stderr, "sinew run: pod %s: %s; capture fails closed: the app was not started\n",
					r->pod.name, err);
				return -1;
			}
			if (present < 0) {
				snprintf(why, sizeof(why), "%s", err);
			} else {
				int ok = sn_pod_capture_probe(netns, r->probe_addr, r->pod.name, 1000, err, sizeof(err));
				if (ok == 1)
					return 0;
				snprintf(why, sizeof(why), "%s", err);
			}
		}
		if ((long long)sn_clock_ms() > deadline) {
			fprintf(stderr, "sinew run: pod %s is not ready after %d s: %s; the app was not started\n",
				r->pod.name, r->o->ready_timeout_s, why);
			sn_cli_print_log_tail(log);
			return -1;
		}
		nap(100);
	}
}

static int start_app(struct run *r, int out_pipe[2], int err_pipe[2])
{
	char err[700], pod_env[SN_POD_NAME_MAX + 16], ip_env[40], proxy_env[96];
	const char *env[8];
	size_t ne = 0;
	snprintf(pod_env, sizeof(pod_env), "SINEW_POD=%s", r->pod.name);
	snprintf(ip_env, sizeof(ip_env), "SINEW_POD_IP=%s", r->pod.address);
	env[ne++] = pod_env;
	env[ne++] = ip_env;
	env[ne++] = "SINEW_TOKEN";
	if (!r->o->capture) {
		snprintf(proxy_env, sizeof(proxy_env), "http_proxy=http://%s", r->o->outbound);
		env[ne++] = proxy_env;
	}
	env[ne] = NULL;
	struct child c = {
		.netns = r->o->capture ? r->pod.name : NULL,
		.in_fd = -1,
		.out_fd = out_pipe[1],
		.err_fd = err_pipe[1],
		.argv = r->o->cmd,
		.env = env,
	};
	/* Run as the user who ran `sudo sinew run`, not as root, when known. */
	const char *su = getenv("SUDO_UID"), *sg = getenv("SUDO_GID");
	if (geteuid() == 0 && su != NULL && sg != NULL && strtoul(su, NULL, 10) > 0) {
		c.drop = 1;
		c.uid = (uid_t)strtoul(su, NULL, 10);
		c.gid = (gid_t)strtoul(sg, NULL, 10);
		c.user = getenv("SUDO_USER");
	}
	if (r->o->capture && (c.drop ? c.uid : geteuid()) == SN_POD_PROXY_UID) {
		fprintf(stderr, "sinew run: the app would run as uid %d, the proxy's: its traffic would not be "
				"captured; run it as another user\n", SN_POD_PROXY_UID);
		return -1;
	}
	r->app = spawn(&c, err, sizeof(err));
	close(out_pipe[1]);
	close(err_pipe[1]);
	if (r->app < 0) {
		r->app = 0;
		fprintf(stderr, "sinew run: %s\n", err);
		return -1;
	}
	r->pod.app.pid = r->app;
	r->pod.app.start = sn_pod_proc_start(r->app);
	r->pod.state = SN_POD_STATE_RUNNING;
	record(r);
	return 0;
}

/* Copies what the app wrote to our stdout/stderr and to its log. Returns
 * 2 after copying, 1 when there is nothing to read now, 0 at EOF. */
static int copy_out(int from, int to, int log)
{
	char buf[16384];
	ssize_t n = read(from, buf, sizeof(buf));
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 1 : 0;
	if (n == 0)
		return 0;
	for (int fd_i = 0; fd_i < 2; fd_i++) {
		int fd = fd_i == 0 ? to : log;
		ssize_t off = 0;
		while (fd >= 0 && off < n) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			off += w;
		}
	}
	return 2;
}

/* Runs until the app exits: copies its output, forwards a stop signal as
 * SIGTERM (SIGKILL after APP_STOP_GRACE_MS or on a second signal), stops
 * it if the proxy dies. */
static void supervise(struct run *r, int out_fd, int err_fd)
{
	long long kill_at = 0;
	int signalled = 0;
	long long names_at = (long long)sn_clock_ms() + NAMES_REFRESH_MS;
	fcntl(out_fd, F_SETFL, O_NONBLOCK);
	fcntl(err_fd, F_SETFL, O_NONBLOCK);
	while (r->app > 0) {
		if (r->o->capture && r->o->token && (long long)sn_clock_ms() >= names_at) {
			/* Services applied since: their names in every pod (vips.c). */
			char err[600];
			int lock = sn_pod_state_lock(r->dir, err, sizeof(err));
			if (lock >= 0) {
				sn_cli_vips_refresh(sn_cli_server(r->o->server), r->dir, NULL, err, sizeof(err));
				sn_pod_state_unlock(lock);
			}
			names_at = (long long)sn_clock_ms() + NAMES_REFRESH_MS;
		}
		struct pollfd p[3] = { { sig_pipe[0], POLLIN, 0 }, { out_fd, POLLIN, 0 }, { err_fd, POLLIN, 0 } };
		int n = poll(p, 3, 500);
		if (n > 0) {
			if (p[0].revents)
				drain_sig_pipe();
			if (out_fd >= 0 && p[1].revents && !copy_out(out_fd, 1, r->app_log)) {
				close(out_fd);
				out_fd = -1;
			}
			if (err_fd >= 0 && p[2].revents && !copy_out(err_fd, 2, r->app_log)) {
				close(err_fd);
				err_fd = -1;
			}
		}
		reap(r);
		if (r->app == 0)
			break;
		if (r->proxy_exited && !signalled) {
			char st[40];
			status_str(r->proxy_status, st, sizeof(st));
			fprintf(stderr, "sinew run: the proxy of pod %s exited (%s); stopping the app\n", r->pod.name, st);
			signalled = -1;
			r->proxy_died = 1;
			kill(r->app, SIGTERM);
			kill_at = (long long)sn_clock_ms() + APP_STOP_GRACE_MS;
		}
		if (stop_signal) {
			if (signalled > 0) {
				kill(r->app, SIGKILL);   /* asked twice */
			} else if (signalled == 0) {
				kill(r->app, SIGTERM);
				kill_at = (long long)sn_clock_ms() + APP_STOP_GRACE_MS;
				signalled = 1;
			}
			stop_signal = 0;
		}
		if (kill_at && (long long)sn_clock_ms() > kill_at) {
			kill(r->app, SIGKILL);
			kill_at = 0;
		}
	}
	/* What the app wrote just before exiting (its children may keep the
	 * pipes open: take what is there and stop). */
	while (out_fd >= 0 && copy_out(out_fd, 1, r->app_log) == 2) {
	}
	while (err_fd >= 0 && copy_out(err_fd, 2, r->app_log) == 2) {
	}
	if (out_fd >= 0)
		close(out_fd);
	if (err_fd >= 0)
		close(err_fd);
}

/* SIGTERM to the proxy, wait for its drain (SIGKILL at the deadline), then
 * everything else in the pod, the namespace, the hosts file, the record. */
static int teardown(struct run *r)
{
	char err[700];
	if (!r->recorded)
		return 0;
	r->pod.state = SN_POD_STATE_STOPPING;
	record(r);
	if (r->app > 0) {
		kill(r->app, SIGTERM);
		long long until = (long long)sn_clock_ms() + APP_STOP_GRACE_MS;
		while (r->app > 0 && (long long)sn_clock_ms() < until) {
			nap(50);
			reap(r);
		}
		if (r->app > 0) {
			kill(r->app, SIGKILL);
			while (waitpid(r->app, NULL, 0) < 0 && errno == EINTR) {
			}
			r->app = 0;
		}
	}
	if (r->proxy > 0) {
		kill(-r->proxy, SIGTERM);
		kill(r->proxy, SIGTERM);
		long long until = (long long)sn_clock_ms() + (long long)r->o->drain_timeout_s * 1000;
		while (r->proxy > 0 && (long long)sn_clock_ms() < until) {
			nap(50);
			reap(r);
		}
		if (r->proxy > 0) {
			fprintf(stderr, "sinew run: the proxy of pod %s did not exit within %d s of SIGTERM; killing it\n",
				r->pod.name, r->o->drain_timeout_s);
			kill(-r->proxy, SIGKILL);
			kill(r->proxy, SIGKILL);
			while (waitpid(r->proxy, NULL, 0) < 0 && errno == EINTR) {
			}
			r->proxy = 0;
		}
	}
	if (sn_pod_remove(r->dir, &r->pod, 2000, err, sizeof(err)) != 0) {
		fprintf(stderr, "sinew run: pod %s was not removed: %s; `sinew down` removes it\n", r->pod.name, err);
		return -1;
	}
	r->recorded = 0;
	return 0;
}

/* sinew gateway run, once its proxy is ready: publish, then serve until a
 * stop signal (0) or the proxy's death (1). */
static int run_gateway(struct run *r)
{
	char err[700];
	r->pod.state = SN_POD_STATE_RUNNING;
	record(r);
	const char *api = strstr(r->pod.labels, "gateway.networking.k8s.io/gateway-name=");
	if (api != NULL)
		fprintf(stderr, "sinew gateway run: gateway %s (%s) ready: it listens on the ports of the Gateway API "
			"Gateway %s/%.*s\n", r->pod.name, r->pod.address, r->pod.namespace_,
			(int)strcspn(api + 39, ","), api + 39);
	else
		fprintf(stderr, "sinew gateway run: gateway %s (%s) ready: it listens on the ports of the Gateways "
			"whose selector matches %s\n", r->pod.name, r->pod.address, r->pod.labels);
	if (r->o->n_publish > 0) {
		if (sn_cli_publish_go(err, sizeof(err)) != 0)
			fprintf(stderr, "sinew gateway run: %s\n", err);
		for (size_t i = 0; i < r->o->n_publish; i++)
			fprintf(stderr, "sinew gateway run: gateway %s: port published: %s\n", r->pod.name,
				r->o->publish[i]);
	}
	while (!stop_signal) {
		nap(500);
		reap(r);
		if (r->proxy_exited) {
			char st[40];
			status_str(r->proxy_status, st, sizeof(st));
			fprintf(stderr, "sinew gateway run: the proxy of gateway %s exited (%s)\n", r->pod.name, st);
			return 1;
		}
	}
	return 0;
}

/* ---- sinew run ---------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew run --service NAME [--namespace NS] [--labels k=v,...] [--service-account SA]\n"
		"                 [--port PORT[/PROTOCOL]]... [--no-capture] [options] -- CMD [ARGS...]\n"
		"\n"
		"Runs CMD in a pod: its own network namespace on the mesh network, with a sidecar\n"
		"proxy in front of it and iptables capture rules sending its TCP through the proxy,\n"
		"the way Istio's init container and sidecar do it. The app starts only once the\n"
		"proxy is ready and capture is verified (fail closed). When CMD exits the proxy\n"
		"drains and the pod is removed; sinew run exits with CMD's status. Ctrl-C or SIGTERM\n"
		"stop both. Needs root, except with --no-capture.\n"
		"\n"
		"  --service NAME            the workload's service (required)\n"
		"  -n, --namespace NS        its namespace (default \"default\")\n"
		"  --labels k=v,...          its labels (e.g. app=reviews,version=v2)\n"
		"  --service-account SA      its identity's service account (default \"default\")\n"
		"  --port PORT[/PROTOCOL]    a port the app serves (repeatable, or comma-separated)\n"
		"  --publish [ADDR:]HPORT:PPORT  the app's port PPORT on the host at ADDR:HPORT (default\n"
		"                            127.0.0.1), like kubectl port-forward (repeatable)\n"
		"  --no-capture              no pod and no root: the proxy listens on --outbound,\n"
		"                            --inbound and --admin, and CMD gets http_proxy\n"
		"  --outbound ADDR:PORT      with --no-capture (default 127.0.0.1:15001)\n"
		"  --inbound ADDR:PORT       with --no-capture (default 127.0.0.1:15006)\n"
		"  --admin ADDR:PORT         with --no-capture (default 127.0.0.1:15020)\n"
		"  --pod-cidr CIDR           the pod range when the mesh network is created\n"
		"                            (default " SN_POD_DEFAULT_CIDR "; recorded in the data directory)\n"
		"  --mesh-netns NAME         the mesh network namespace (default " SN_POD_MESH_NETNS ")\n"
		"  --host NAME               run the pod on simulated host NAME (`sudo sinew up --host\n"
		"                            NAME` makes it): its bridge and range, routed to the others\n"
		"  --control-plane ADDR:PORT[,ADDR:PORT...]\n"
		"                            what the proxy connects to (default the gateway:15012;\n"
		"                            127.0.0.1:15012 with --no-capture); several sinewd replicas\n"
		"                            (at most %d): the proxy fails over between them\n"
		"  --no-token                do not mint a join token (no sinewd needed)\n"
		"  --proxy-cmd 'CMD ARGS'    run this instead of sinew-proxy, with the same flags\n"
		"  --ready-timeout SECONDS   how long to wait for the proxy (default %d)\n"
		"  --drain-timeout SECONDS   how long the proxy may drain at the end (default %d)\n"
		"  --data-dir DIR            state and logs in DIR/pods (default $SINEW_HOME, else the last\n"
		"                            `sinew up --data-dir`'s, else ~/.sinew)\n"
		"  --server URL              sinewd's API (default $SINEW_SERVER, else " SN_CLI_DEFAULT_SERVER ")\n"
		"\n"
		"Exit status: CMD's (128+N when a signal N ended it); 1 when the pod or its proxy\n"
		"could not be made ready (the app was not started); 2 usage error.\n",
		MAX_CONTROL_PLANES, DEFAULT_READY_S, DEFAULT_DRAIN_S);
}

static int seconds_arg(const char *flag, const char *v, int *out)
{
	char *end;
	long n = strtol(v, &end, 10);
	if (end == v || (*end != '\0' && strcmp(end, "s") != 0) || n < 1 || n > 3600) {
		fprintf(stderr, "sinew run: %s %s: want whole seconds, 1 to 3600\n", flag, v);
		return -1;
	}
	*out = (int)n;
	return 0;
}

int sn_cli_run(int argc, char **argv)
{
	enum { O_SERVICE = 256, O_LABELS, O_SA, O_PORT, O_NO_CAPTURE, O_NO_TOKEN, O_DATA, O_SERVER, O_CIDR, O_MESH,
	       O_PROXY_CMD, O_CP, O_OUT, O_IN, O_ADMIN, O_READY, O_DRAIN, O_PUBLISH, O_GATEWAY, O_CREDS, O_HOST };
	static const struct option opts[] = {
		{ "service", required_argument, NULL, O_SERVICE },
		{ "namespace", required_argument, NULL, 'n' },
		{ "labels", required_argument, NULL, O_LABELS },
		{ "service-account", required_argument, NULL, O_SA },
		{ "port", required_argument, NULL, O_PORT },
		{ "no-capture", no_argument, NULL, O_NO_CAPTURE },
		{ "no-token", no_argument, NULL, O_NO_TOKEN },
		{ "data-dir", required_argument, NULL, O_DATA },
		{ "server", required_argument, NULL, O_SERVER },
		{ "pod-cidr", required_argument, NULL, O_CIDR },
		{ "mesh-netns", required_argument, NULL, O_MESH },
		{ "proxy-cmd", required_argument, NULL, O_PROXY_CMD },
		{ "control-plane", required_argument, NULL, O_CP },
		{ "host", required_argument, NULL, O_HOST },
		{ "outbound", required_argument, NULL, O_OUT },
		{ "inbound", required_argument, NULL, O_IN },
		{ "admin", required_argument, NULL, O_ADMIN },
		{ "ready-timeout", required_argument, NULL, O_READY },
		{ "drain-timeout", required_argument, NULL, O_DRAIN },
		{ "publish", required_argument, NULL, O_PUBLISH },
		{ "gateway", no_argument, NULL, O_GATEWAY },   /* from `sinew gateway run` (gateway.c) */
		{ "credentials-dir", required_argument, NULL, O_CREDS },   /* sinew gateway run */
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct run_opts o = {
		.namespace_ = "default",
		.service_account = "default",
		.capture = 1,
		.token = 1,
		.outbound = "127.0.0.1:15001",
		.inbound = "127.0.0.1:15006",
		.admin = "127.0.0.1:15020",
		.ready_timeout_s = DEFAULT_READY_S,
		.drain_timeout_s = DEFAULT_DRAIN_S,
	};
	int opt, capture_listeners = 0;

	optind = 0;
	/* '+': options end at CMD, so its own flags are never ours. */
	while ((opt = getopt_long(argc, argv, "+n:h", opts, NULL)) != -1) {
		switch (opt) {
		case O_SERVICE: o.service = optarg; break;
		case 'n': o.namespace_ = optarg; break;
		case O_LABELS: o.labels = optarg; break;
		case O_SA: o.service_account = optarg; break;
		case O_PORT:
			if (add_ports(o.ports, sizeof(o.ports), optarg) != 0) {
				fprintf(stderr, "sinew run: --port %s: want PORT[/PROTOCOL], e.g. 9080/http\n", optarg);
				return 2;
			}
			break;
		case O_NO_CAPTURE: o.capture = 0; break;
		case O_GATEWAY: o.gateway = 1; break;
		case O_CREDS: o.credentials = optarg; break;
		case O_NO_TOKEN: o.token = 0; break;
		case O_DATA: o.data_dir = optarg; break;
		case O_SERVER: o.server = optarg; break;
		case O_CIDR: o.pod_cidr = optarg; break;
		case O_MESH: o.mesh_netns = optarg; break;
		case O_PROXY_CMD: o.proxy_cmd = optarg; break;
		case O_CP: o.control_plane = optarg; break;
		case O_HOST: o.host = optarg; break;
		case O_OUT: o.outbound = optarg; capture_listeners = 1; break;
		case O_IN: o.inbound = optarg; capture_listeners = 1; break;
		case O_ADMIN: o.admin = optarg; capture_listeners = 1; break;
		case O_READY:
			if (seconds_arg("--ready-timeout", optarg, &o.ready_timeout_s) != 0)
				return 2;
			break;
		case O_DRAIN:
			if (seconds_arg("--drain-timeout", optarg, &o.drain_timeout_s) != 0)
				return 2;
			break;
		case O_PUBLISH: {
			char h[64];
			uint16_t hp, pp;
			if (o.n_publish == SN_ARRAY_LEN(o.publish) ||
			    sn_cli_publish_parse(optarg, h, sizeof(h), &hp, &pp) != 0) {
				fprintf(stderr, "sinew run: --publish %s: want [HOSTADDR:]HOSTPORT:PODPORT, e.g. 9080:9080 "
						"(at most 8)\n", optarg);
				return 2;
			}
			o.publish[o.n_publish++] = optarg;
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (o.host != NULL && !o.capture) {
		fprintf(stderr, "sinew run: --host puts the pod on a simulated host's network: not with --no-capture\n");
		return 2;
	}
	if (o.n_publish > 0 && !o.capture) {
		fprintf(stderr, "sinew run: --publish is for pods; with --no-capture the app already listens on the "
				"host\n");
		return 2;
	}
	if (o.service == NULL || !dns_label(o.service) || strlen(o.service) > 40) {
		fprintf(stderr, "sinew run: %s; see sinew run --help\n",
			o.service == NULL
				? "--service NAME is required"
				: "--service: want a name of lower-case letters, digits and '-', at most 40 long");
		return 2;
	}
	if (!dns_label(o.namespace_) || !dns_label(o.service_account)) {
		fprintf(stderr, "sinew run: --namespace and --service-account want names of lower-case letters, "
				"digits and '-'\n");
		return 2;
	}
	if (o.labels != NULL && (!labels_ok(o.labels) || strlen(o.labels) >= SN_POD_FIELD_MAX)) {
		fprintf(stderr, "sinew run: --labels %s: want k=v,k=v (letters, digits, '.', '_', '-', '/')\n",
			o.labels);
		return 2;
	}
	if (o.credentials != NULL && !o.gateway) {
		fprintf(stderr, "sinew run: --credentials-dir is for `sinew gateway run`\n");
		return 2;
	}
	if (o.gateway && optind < argc) {
		fprintf(stderr, "sinew gateway run: a gateway runs no command (\"%s\"): its proxy is the workload\n",
			argv[optind]);
		return 2;
	}
	if (!o.gateway && optind >= argc) {
		fprintf(stderr, "sinew run: no command; usage: sinew run --service NAME [options] -- CMD [ARGS...]\n");
		return 2;
	}
	o.cmd = o.gateway ? NULL : argv + optind;
	if (o.capture && capture_listeners) {
		fprintf(stderr, "sinew run: --outbound, --inbound and --admin go with --no-capture (in a pod the "
				"proxy uses 15001, 15006 and 15020)\n");
		return 2;
	}
	if (!o.capture && (!addr_port_ok(o.outbound) || !addr_port_ok(o.inbound) || !addr_port_ok(o.admin))) {
		fprintf(stderr, "sinew run: --outbound, --inbound and --admin want IPV4:PORT, e.g. 127.0.0.1:15001\n");
		return 2;
	}
	if (o.control_plane != NULL) {
		struct sockaddr_in cps[MAX_CONTROL_PLANES];
		size_t ncp;
		char err[200];
		if (control_plane_list(o.control_plane, cps, &ncp, err, sizeof(err)) != 0) {
			fprintf(stderr, "sinew run: --control-plane %s: %s\n", o.control_plane, err);
			return 2;
		}
	}
	if (o.capture && geteuid() != 0) {
		fprintf(stderr, "sinew run: a pod needs root (a network namespace and capture rules); run it as "
				"root, or use --no-capture to run the proxy on explicit ports instead\n");
		return 1;
	}

	struct run r;
	char data[PATH_MAX - 160], err[700];
	memset(&r, 0, sizeof(r));
	r.o = &o;
	r.proxy_log = r.app_log = -1;
	if (sn_cli_data_dir(o.data_dir, data, sizeof(data)) != 0)
		return 2;
	if (sn_pod_state_dir(data, r.dir, sizeof(r.dir)) != 0 || sn_pod_state_dir_make(r.dir, err, sizeof(err)) != 0) {
		fprintf(stderr, "sinew run: %s\n", err);
		return 1;
	}
	char abs[PATH_MAX];
	if (realpath(r.dir, abs) != NULL && strlen(abs) < sizeof(r.dir))
		memcpy(r.dir, abs, strlen(abs) + 1);
	if (signals_install() != 0) {
		fprintf(stderr, "sinew run: pipe: %s\n", strerror(errno));
		return 1;
	}

	int rc = 1;
	int out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
	if (o.token && mint_token(&r) != 0)
		goto out;
	if (reserve(&r) != 0)
		goto out;
	if (o.capture) {
		if (stop_signal)
			goto out;
		if (sn_pod_create(&r.mesh, &r.pod, err, sizeof(err)) != 0) {
			fprintf(stderr, "sinew run: cannot create pod %s: %s\n", r.pod.name, err);
			goto out;
		}
		/* Service names: every Service gets a VIP in every pod's hosts
		 * (vips.c); without sinewd (--no-token), the pod's own name. */
		int vips = -1;
		if (o.token) {
			int lock = sn_pod_state_lock(r.dir, err, sizeof(err));
			if (lock >= 0) {
				vips = sn_cli_vips_refresh(sn_cli_server(o.server), r.dir, &r.pod, err, sizeof(err));
				sn_pod_state_unlock(lock);
			}
			if (vips != 0)
				fprintf(stderr, "sinew run: pod %s: service names: %s; only the pod's own name resolves\n",
					r.pod.name, err);
		}
		struct sn_pod_host self = { r.pod.address, r.pod.name, NULL };
		if (vips != 0 && sn_pod_hosts_write(r.pod.name, &self, 1, err, sizeof(err)) != 0) {
			fprintf(stderr, "sinew run: pod %s: %s\n", r.pod.name, err);
			goto out;
		}
		if (stop_signal)
			goto out;
		if (!o.gateway && sn_pod_capture_install(r.pod.name, sn_pod_capture_default(), err, sizeof(err)) != 0) {
			fprintf(stderr, "sinew run: pod %s: cannot install the capture rules: %s\n", r.pod.name, err);
			goto out;
		}
	}
	for (size_t i = 0; i < o.n_publish; i++) {
		if (sn_cli_publish_start(r.pod.name, o.publish[i], err, sizeof(err)) != 0) {
			fprintf(stderr, "sinew run: %s\n", err);
			goto out;
		}
	}
	if (open_logs(&r) != 0 || stop_signal || start_proxy(&r) != 0 || wait_ready(&r) != 0)
		goto out;
	if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
		fprintf(stderr, "sinew run: pipe: %s\n", strerror(errno));
		goto out;
	}
	if (stop_signal)
		goto out;
	if (o.gateway) {
		rc = run_gateway(&r);
		close(out_pipe[0]);
		close(out_pipe[1]);
		close(err_pipe[0]);
		close(err_pipe[1]);
		goto out;
	}
	fprintf(stderr, "sinew run: pod %s (%s) ready; starting %s\n", r.pod.name, r.pod.address, o.cmd[0]);
	if (start_app(&r, out_pipe, err_pipe) != 0) {
		close(out_pipe[0]);
		close(err_pipe[0]);
		rc = 127;
		goto out;
	}
	if (o.n_publish > 0) {
		if (sn_cli_publish_go(err, sizeof(err)) != 0)
			fprintf(stderr, "sinew run: %s\n", err);
		for (size_t i = 0; i < o.n_publish; i++)
			fprintf(stderr, "sinew run: pod %s: port published: %s\n", r.pod.name, o.publish[i]);
	}
	supervise(&r, out_pipe[0], err_pipe[0]);
	if (r.app_exited) {
		rc = WIFEXITED(r.app_status) ? WEXITSTATUS(r.app_status) : 128 + WTERMSIG(r.app_status);
		if (r.proxy_died)
			rc = 1;   /* we stopped the app: its status says nothing */
	}
out:
	if (stop_signal && rc == 1 && r.app_status == 0 && !r.app_exited)
		rc = 128 + stop_signal;
	if (teardown(&r) != 0 && rc == 0)
		rc = 1;
	if (r.token != NULL) {
		memset(r.token, 0, strlen(r.token));
		free(r.token);
	}
	if (r.proxy_log >= 0)
		close(r.proxy_log);
	if (r.app_log >= 0)
		close(r.app_log);
	return rc;
}
