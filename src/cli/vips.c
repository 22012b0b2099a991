/* Service addresses for pods (issue 6 item 2; docs/internals/pods.md,
 * "Service names"): every Service sinewd knows gets a stable virtual IP
 * from the service range (10.96.0.0/16 by default, outside the pod range),
 * recorded in DATA_DIR/pods/vips ("NAMESPACE/NAME ADDRESS" per line) so it
 * never changes while recorded; every pod's /etc/hosts maps NAME, NAME.NS
 * and NAME.NS.svc.cluster.local to it. A connection to a VIP leaves the
 * pod through its default route and is captured by the outbound REDIRECT
 * rule: the proxy routes it by Host (HTTP). Called under the state lock
 * by `sinew run` (when a pod starts, for every live pod). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sinew/cli.h"
#include "sinew/file.h"
#include "sinew/pod.h"

#define VIP_NET SN_POD_VIP_NET   /* 10.96.0.0 */
#define VIP_HOSTS 65534u
#define MAX_SERVICES 4096

struct vip {
	char key[520];   /* "ns/name" */
	uint32_t addr;
};

static int load(const char *path, struct vip *v, size_t *n)
{
	FILE *f = fopen(path, "r");
	char line[400];

	*n = 0;
	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	while (fgets(line, sizeof(line), f) != NULL && *n < MAX_SERVICES) {
		char key[520], a[32];
		if (sscanf(line, "%519s %31s", key, a) == 2 && sn_pod_addr_parse(a, &v[*n].addr) == 0) {
			memcpy(v[*n].key, key, strlen(key) + 1);
			(*n)++;
		}
	}
	fclose(f);
	return 0;
}

static int save(const char *dir, const char *path, const struct vip *v, size_t n)
{
	(void)path;   /* dir/vips, written atomically (sinew/file.h) */
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char a[16];
		sn_pod_addr_str(v[i].addr, a, sizeof(a));
		fprintf(f, "%s %s\n", v[i].key, a);
	}
	if (fclose(f) != 0) {
		free(buf);
		return -1;
	}
	struct iovec part = { buf, len };
	int rc = sn_write_atomic(dir, "vips", &part, 1, 0644, 0);
	free(buf);
	return rc;
}

static uint32_t pick(const struct vip *v, size_t n)
{
	for (uint32_t h = 1; h <= VIP_HOSTS; h++) {
		int used = 0;
		for (size_t i = 0; i < n && !used; i++)
			used = v[i].addr == VIP_NET + h;
		if (!used)
			return VIP_NET + h;
	}
	return 0;
}

/* Applies a Service for the workload when none of that name exists, the
 * way `kubectl expose` would: selector app=NAME, the declared ports. */
static int ensure_service(const char *server, const char *name, const char *ns, const char *ports, char *err,
			  size_t es)
{
	char yaml[2048], *p = yaml;
	size_t left = sizeof(yaml);
	int w = snprintf(p, left, "apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: %s\n"
				  "spec:\n  selector:\n    app: %s\n  ports:\n", name, ns, name);
	p += w;
	left -= (size_t)w;
	char copy[SN_POD_FIELD_MAX];
	snprintf(copy, sizeof(copy), "%s", ports);
	for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		char *slash = strchr(tok, '/');
		const char *proto = slash ? slash + 1 : "http";
		if (slash)
			*slash = '\0';
		w = snprintf(p, left, "  - name: %s-%s\n    port: %s\n", proto, tok, tok);
		if (w < 0 || (size_t)w >= left)
			return -1;
		p += w;
		left -= (size_t)w;
	}
	struct sn_http_response r;
	if (sn_cli_api(server, "POST", "/api/v1/apply?source=sinew-run", yaml, strlen(yaml), &r) != 0) {
		snprintf(err, es, "cannot reach sinewd to create Service %s/%s", ns, name);
		return -1;
	}
	int ok = r.status == 200;
	if (!ok)
		snprintf(err, es, "sinewd refused Service %s/%s (%d): %.300s", ns, name, r.status, r.body ? r.body : "");
	sn_http_response_free(&r);
	return ok ? 0 : -1;
}

/* Whether /etc/netns/POD/hosts already says exactly this. */
static int hosts_unchanged(const char *pod, const struct sn_pod_host *h, size_t n)
{
	static char want[1 << 20], have[1 << 20];
	char path[PATH_MAX];
	int wl = sn_pod_hosts_render(h, n, want, sizeof(want));
	if (wl < 0)
		return 0;
	snprintf(path, sizeof(path), "/etc/netns/%s/hosts", pod);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	size_t hl = fread(have, 1, sizeof(have), f);
	fclose(f);
	return hl == (size_t)wl && memcmp(have, want, hl) == 0;
}

int sn_cli_vips_refresh(const char *server, const char *dir, const struct sn_pod *self, char *err, size_t es)
{
	static struct vip v[MAX_SERVICES];
	char path[PATH_MAX];
	size_t n = 0;
	struct sn_http_response r;
	int rc = -1;

	snprintf(path, sizeof(path), "%s/vips", dir);
	if (load(path, v, &n) != 0) {
		snprintf(err, es, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (sn_cli_api(server, "GET", "/api/v1/resources?kind=svc", NULL, 0, &r) != 0)
		return snprintf(err, es, "cannot list Services from sinewd at %s", server), -1;
	if (r.status != 200) {
		snprintf(err, es, "cannot list Services from sinewd at %s (%d)", server, r.status);
		sn_http_response_free(&r);
		return -1;
	}
	struct fy_document *doc = sn_cli_json_parse(r.body, r.len);
	struct fy_node *list = sn_cli_json_root(doc);
	int have_self = self == NULL || self->service[0] == '\0';
	size_t before = n;
	for (size_t i = 0; i < sn_cli_json_len(list); i++) {
		struct fy_node *it = sn_cli_json_at(list, i);
		char key[520];
		snprintf(key, sizeof(key), "%s/%s", sn_cli_json_str_or(it, "namespace", "default"),
			 sn_cli_json_str_or(it, "name", "?"));
		if (self != NULL && !have_self && !strcmp(sn_cli_json_str_or(it, "name", ""), self->service) &&
		    !strcmp(sn_cli_json_str_or(it, "namespace", ""), self->namespace_))
			have_self = 1;
		int known = 0;
		for (size_t k = 0; k < n && !known; k++)
			known = !strcmp(v[k].key, key);
		if (!known && n < MAX_SERVICES) {
			memcpy(v[n].key, key, strlen(key) + 1);
			if ((v[n].addr = pick(v, n)) == 0) {
				snprintf(err, es, "the service range 10.96.0.0/16 is full");
				goto out;
			}
			n++;
		}
	}
	if (!have_self && self->ports[0] != '\0') {
		if (ensure_service(server, self->service, self->namespace_, self->ports, err, es) != 0)
			goto out;
		char key[520];
		snprintf(key, sizeof(key), "%s/%s", self->namespace_, self->service);
		int known = 0;
		for (size_t k = 0; k < n && !known; k++)
			known = !strcmp(v[k].key, key);
		if (!known && n < MAX_SERVICES) {
			memcpy(v[n].key, key, strlen(key) + 1);
			v[n].addr = pick(v, n);
			n++;
		}
		fprintf(stderr, "sinew run: created Service %s (selector app=%s, ports %s)\n", key, self->service,
			self->ports);
	}
	if (n != before && save(dir, path, v, n) != 0) {
		snprintf(err, es, "cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	/* every live pod's hosts: its own name, then the services */
	struct sn_pod *pods = NULL;
	size_t np = 0;
	if (sn_pod_record_list(dir, &pods, &np) != 0)
		np = 0;
	static struct sn_pod_host h[MAX_SERVICES + 1];
	static char addrs[MAX_SERVICES][16], names[MAX_SERVICES][520];
	for (size_t i = 0; i < n; i++) {
		char *slash = strchr(v[i].key, '/');
		sn_pod_addr_str(v[i].addr, addrs[i], sizeof(addrs[i]));
		snprintf(names[i], sizeof(names[i]), "%.*s", 519, slash ? slash + 1 : v[i].key);
		if (slash)
			*slash = '\0';
		h[i + 1].address = addrs[i];
		h[i + 1].name = names[i];
		h[i + 1].ns = v[i].key;   /* the namespace part */
	}
	for (size_t i = 0; i <= np; i++) {
		const struct sn_pod *p = i < np ? &pods[i] : self;
		if (p == NULL || !p->capture || p->name[0] == '\0' || (i < np && self != NULL && !strcmp(p->name, self->name)))
			continue;
		h[0].address = p->address;
		h[0].name = p->name;
		h[0].ns = NULL;
		char e2[300];
		if (hosts_unchanged(p->name, h, n + 1))
			continue;   /* rewriting is not atomic for readers: only on change */
		if (sn_pod_hosts_write(p->name, h, n + 1, e2, sizeof(e2)) != 0 && p == self) {
			snprintf(err, es, "%s", e2);
			free(pods);
			goto out;
		}
	}
	free(pods);
	rc = 0;
out:
	sn_cli_json_free(doc);
	sn_http_response_free(&r);
	return rc;
}
