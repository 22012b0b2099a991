/* sinew ps: the pods `sinew run` made, from their records, with each
 * proxy asked live (its /ready through a socket made in the pod's
 * namespace, and the capture probe run again). sinew logs: a pod's app or
 * proxy log. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sinew/cli.h"
#include "sinew/common.h"
#include "sinew/control.h"
#include "sinew/pod.h"

struct pod_view {
	const char *proxy;      /* ready, not-ready, exited, starting, unknown */
	char config[32];        /* config version from /ready, or "-" */
	char reason[400];       /* why not ready */
	int supervisor_alive;
	int app_alive;
};

/* "ready: config version 12" -> "12". */
static void config_version(const char *body, char *buf, size_t size)
{
	const char *v = strstr(body, "config version ");
	snprintf(buf, size, "-");
	if (v == NULL)
		return;
	v += strlen("config version ");
	size_t n = strspn(v, "0123456789");
	if (n > 0 && n < size)
		snprintf(buf, size, "%.*s", (int)n, v);
}

static void look(const struct sn_pod *p, struct pod_view *v)
{
	memset(v, 0, sizeof(*v));
	snprintf(v->config, sizeof(v->config), "-");
	v->supervisor_alive = sn_pod_proc_alive(p->supervisor.pid, p->supervisor.start);
	v->app_alive = sn_pod_proc_alive(p->app.pid, p->app.start);
	if (p->proxy.pid == 0) {
		v->proxy = p->state == SN_POD_STATE_CREATING && v->supervisor_alive ? "starting" : "exited";
		return;
	}
	if (!sn_pod_proc_alive(p->proxy.pid, p->proxy.start)) {
		v->proxy = "exited";
		return;
	}
	if (p->capture && geteuid() != 0) {
		v->proxy = "unknown";
		snprintf(v->reason, sizeof(v->reason), "asking a proxy in a pod needs root");
		return;
	}
	const char *netns = p->capture ? p->netns : NULL;
	char body[512], err[600];
	int status = 0;
	v->proxy = "not-ready";
	if (sn_pod_http_get(netns, p->admin, "/ready", 1000, &status, body, sizeof(body), err, sizeof(err)) != 0) {
		snprintf(v->reason, sizeof(v->reason), "/ready: %.380s", err);
		return;
	}
	config_version(body, v->config, sizeof(v->config));
	if (status != 200) {
		char *nl = strchr(body, '\n');
		if (nl != NULL)
			*nl = '\0';
		snprintf(v->reason, sizeof(v->reason), "/ready %d: %.200s", status, body);
		return;
	}
	if (p->capture && !p->gateway) {
		int present = sn_pod_capture_present(netns, sn_pod_capture_default(), err, sizeof(err));
		if (present != 1) {
			snprintf(v->reason, sizeof(v->reason), "%.390s", err);
			return;
		}
	}
	v->proxy = "ready";
}

/* The capture probe needs the range of the pod's network (its last
 * host): the mesh network's, or its simulated host's. */
static void probe(const char *dir, const struct sn_pod *p, struct pod_view *v)
{
	char err[600];
	struct sn_pod_mesh net;
	if (!p->capture || p->gateway || strcmp(v->proxy, "ready") != 0)
		return;
	const struct sn_pod_mesh *m = sn_pod_network_of(dir, p, &net) == 0 ? &net : NULL;
	if (m == NULL) {
		v->proxy = "not-ready";
		snprintf(v->reason, sizeof(v->reason), "no mesh network record: cannot probe capture");
		return;
	}
	if (sn_pod_capture_probe(p->netns, sn_pod_cidr_probe(&m->cidr), p->name, 1000, err, sizeof(err)) != 1) {
		v->proxy = "not-ready";
		snprintf(v->reason, sizeof(v->reason), "%.390s", err);
	}
}

static void ps_usage(FILE *f)
{
	fprintf(f,
		"usage: sinew ps [-o json] [--data-dir DIR]\n"
		"\n"
		"Lists the pods `sinew run` made: name, service, namespace, labels, address, the\n"
		"proxy's state (ready: /ready answers 200 and capture is verified again; not-ready;\n"
		"exited), the config version it runs, and age. Asking a proxy in a pod needs root.\n"
		"\n"
		"  -o json          the same as JSON, with pids and the reason when not ready\n"
		"  --data-dir DIR   default $SINEW_HOME, else the last `sinew up --data-dir`'s, else ~/.sinew\n"
		"\n"
		"Exit status: 0, 1 the state cannot be read, 2 usage error.\n");
}

int sn_cli_ps(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir_flag = NULL, *output = NULL;
	char data[PATH_MAX - 160], dir[PATH_MAX - 128];
	int o;

	optind = 0;
	while ((o = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (o) {
		case 'o': output = optarg; break;
		case 'd': dir_flag = optarg; break;
		case 'h': ps_usage(stdout); return 0;
		default: ps_usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sinew ps: unexpected argument \"%s\"; see sinew ps --help\n", argv[optind]);
		return 2;
	}
	if (output != NULL && strcmp(output, "json") != 0) {
		fprintf(stderr, "sinew ps: -o %s: only json is supported\n", output);
		return 2;
	}
	if (sn_cli_data_dir(dir_flag, data, sizeof(data)) != 0)
		return 2;
	sn_pod_state_dir(data, dir, sizeof(dir));
	struct sn_pod *pods;
	size_t n;
	if (sn_pod_record_list(dir, &pods, &n) != 0) {
		fprintf(stderr, "sinew ps: cannot read %s: %s\n", dir, strerror(errno));
		return 1;
	}
	long long now = (long long)time(NULL);
	struct sn_out out = { 0 };
	struct sn_cli_table t;
	sn_cli_table_init(&t, 8);
	const char *head[] = { "NAME", "SERVICE", "NAMESPACE", "LABELS", "ADDRESS", "PROXY", "CONFIG", "AGE" };
	sn_cli_table_row(&t, head);
	sn_out_cstr(&out, "{\"pods\":[");
	for (size_t i = 0; i < n; i++) {
		const struct sn_pod *p = &pods[i];
		struct pod_view v;
		look(p, &v);
		probe(dir, p, &v);
		char age[32];
		if (p->created > 0)
			sn_cli_age(now - p->created, age, sizeof(age));
		else
			snprintf(age, sizeof(age), "-");
		const char *row[] = { p->name, p->service[0] ? p->service : "-", p->namespace_[0] ? p->namespace_ : "-",
				      p->labels[0] ? p->labels : "-", p->address[0] ? p->address : "-", v.proxy,
				      v.config, age };
		sn_cli_table_row(&t, row);
		sn_out_printf(&out, "%s{\"name\":", i ? "," : "");
		sn_out_json_cstr(&out, p->name);
		sn_out_cstr(&out, ",\"service\":");
		sn_out_json_cstr(&out, p->service);
		sn_out_cstr(&out, ",\"namespace\":");
		sn_out_json_cstr(&out, p->namespace_);
		sn_out_cstr(&out, ",\"serviceAccount\":");
		sn_out_json_cstr(&out, p->service_account);
		sn_out_cstr(&out, ",\"labels\":{");
		char labels[SN_POD_FIELD_MAX];
		snprintf(labels, sizeof(labels), "%s", p->labels);
		int first = 1;
		for (char *save = NULL, *kv = strtok_r(labels, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(kv, '=');
			if (eq == NULL)
				continue;
			*eq = '\0';
			sn_out_cstr(&out, first ? "" : ",");
			sn_out_json_cstr(&out, kv);
			sn_out_cstr(&out, ":");
			sn_out_json_cstr(&out, eq + 1);
			first = 0;
		}
		sn_out_cstr(&out, "},\"ports\":[");
		char ports[SN_POD_FIELD_MAX];
		snprintf(ports, sizeof(ports), "%s", p->ports);
		first = 1;
		for (char *save = NULL, *pp = strtok_r(ports, ",", &save); pp; pp = strtok_r(NULL, ",", &save)) {
			char *slash = strchr(pp, '/');
			if (slash != NULL)
				*slash = '\0';
			sn_out_printf(&out, "%s{\"port\":%ld,\"protocol\":", first ? "" : ",", strtol(pp, NULL, 10));
			sn_out_json_cstr(&out, slash ? slash + 1 : NULL);
			sn_out_cstr(&out, "}");
			first = 0;
		}
		sn_out_cstr(&out, "],\"address\":");
		sn_out_json_cstr(&out, p->address[0] ? p->address : NULL);
		sn_out_printf(&out, ",\"capture\":%s,\"netns\":", p->capture ? "true" : "false");
		sn_out_json_cstr(&out, p->netns[0] ? p->netns : NULL);
		sn_out_cstr(&out, ",\"state\":");
		sn_out_json_cstr(&out, sn_pod_state_str(p->state));
		sn_out_cstr(&out, ",\"proxy\":{\"state\":");
		sn_out_json_cstr(&out, v.proxy);
		sn_out_printf(&out, ",\"pid\":%ld,\"admin\":", (long)p->proxy.pid);
		sn_out_json_cstr(&out, p->admin[0] ? p->admin : NULL);
		sn_out_cstr(&out, ",\"config\":");
		sn_out_json_cstr(&out, strcmp(v.config, "-") ? v.config : NULL);
		sn_out_cstr(&out, ",\"reason\":");
		sn_out_json_cstr(&out, v.reason[0] ? v.reason : NULL);
		sn_out_printf(&out, "},\"app\":{\"pid\":%ld,\"running\":%s},\"supervisor\":{\"pid\":%ld,\"running\":%s},"
				    "\"created\":%lld,\"ageSeconds\":%lld}",
			      (long)p->app.pid, v.app_alive ? "true" : "false", (long)p->supervisor.pid,
			      v.supervisor_alive ? "true" : "false", p->created, p->created ? now - p->created : 0);
	}
	sn_out_cstr(&out, "]}\n");
	if (output != NULL) {
		if (out.failed) {
			fprintf(stderr, "sinew: out of memory\n");
		} else {
			fwrite(out.p, 1, out.len, stdout);
		}
	} else if (n == 0) {
		printf("No pods (in %s); start one with `sinew run --service NAME -- CMD`\n", dir);
	} else {
		sn_cli_table_print(&t, stdout);
	}
	sn_cli_table_free(&t);
	sn_out_free(&out);
	free(pods);
	return 0;
}

/* ---- sinew logs -------------------------------------------------------------- */

static void logs_usage(FILE *f)
{
	fprintf(f,
		"usage: sinew logs NAME [--proxy] [--data-dir DIR]\n"
		"\n"
		"Prints the log of a pod's app (what it wrote on stdout and stderr), or with\n"
		"--proxy its proxy's. NAME is a pod (sinew ps) or a service: then its newest pod.\n"
		"Logs stay after the pod exits, until `sinew down`.\n"
		"\n"
		"  --proxy          the proxy's log instead of the app's\n"
		"  --data-dir DIR   default $SINEW_HOME, else the last `sinew up --data-dir`'s, else ~/.sinew\n"
		"\n"
		"Exit status: 0, 1 no such pod or service, 2 usage error.\n");
}

/* The newest "sn-SERVICE-xxxxxx.<kind>.log" in dir, by modification time. */
static int newest_log(const char *dir, const char *service, const char *kind, char *buf, size_t size)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	char prefix[SN_POD_NAME_MAX], suffix[32];
	snprintf(prefix, sizeof(prefix), "sn-%s-", service);
	snprintf(suffix, sizeof(suffix), ".%s.log", kind);
	size_t pl = strlen(prefix), sl = strlen(suffix);
	time_t best = 0;
	int found = -1;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);
		/* prefix + 6 random hex + suffix */
		if (l != pl + 6 + sl || strncmp(e->d_name, prefix, pl) != 0 || strcmp(e->d_name + l - sl, suffix) != 0)
			continue;
		char path[PATH_MAX + 256];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		size_t pl2 = strlen(path);
		if (pl2 < size && stat(path, &st) == 0 && (found < 0 || st.st_mtime >= best)) {
			best = st.st_mtime;
			memcpy(buf, path, pl2 + 1);
			found = 0;
		}
	}
	closedir(d);
	return found;
}

int sn_cli_logs(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "proxy", no_argument, NULL, 'p' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir_flag = NULL;
	int proxy = 0, o;
	char data[PATH_MAX - 160], dir[PATH_MAX - 128], path[PATH_MAX];

	optind = 0;
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (o) {
		case 'p': proxy = 1; break;
		case 'd': dir_flag = optarg; break;
		case 'h': logs_usage(stdout); return 0;
		default: logs_usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "sinew logs: want one NAME (a pod or a service); see sinew logs --help\n");
		return 2;
	}
	const char *name = argv[optind];
	const char *kind = proxy ? "proxy" : "app";
	if (strchr(name, '/') != NULL || name[0] == '.' || strlen(name) >= SN_POD_NAME_MAX) {
		fprintf(stderr, "sinew logs: \"%s\" is not a pod or service name\n", name);
		return 2;
	}
	if (sn_cli_data_dir(dir_flag, data, sizeof(data)) != 0)
		return 2;
	sn_pod_state_dir(data, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s.%s.log", dir, name, kind);
	if (access(path, R_OK) != 0) {
		/* A service: its live pods first (newest), else the newest log. */
		struct sn_pod *pods;
		size_t n;
		long long newest = -1;
		if (sn_pod_record_list(dir, &pods, &n) == 0) {
			for (size_t i = 0; i < n; i++)
				if (strcmp(pods[i].service, name) == 0 && pods[i].created > newest) {
					newest = pods[i].created;
					snprintf(path, sizeof(path), "%s/%s.%s.log", dir, pods[i].name, kind);
				}
			free(pods);
		}
		if (newest < 0 && newest_log(dir, name, kind, path, sizeof(path)) != 0) {
			fprintf(stderr, "sinew logs: no pod or service \"%s\" in %s; `sinew ps` lists the pods\n", name,
				dir);
			return 1;
		}
	}
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr, "sinew logs: cannot read %s: %s\n", path, strerror(errno));
		return 1;
	}
	char buf[16384];
	size_t r;
	while ((r = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, r, stdout);
	fclose(f);
	return 0;
}
