/* Simulated hosts: a mesh spread over machines, on this one (issue 15;
 * docs/internals/pods.md, "Hosts").
 *
 *   sn-mesh (the hub)                         sn-h-b (host b)
 *   snbr0 10.88.0.1/16  (pods, sinewd)        snbr0 10.89.0.1/16  (its pods)
 *   snh-b 169.254.77.5/30 ═══ veth ═══════════ snm0 169.254.77.6/30
 *   route 10.89.0.0/16 via 169.254.77.6       default via 169.254.77.5
 *   ip_forward=1                              ip_forward=1
 *
 * Flat routing: a pod's address is the same everywhere; traffic between
 * pods on two hosts crosses the hub, and a host reaches sinewd on the
 * hub's gateway. Every `ip` runs with -n inside a namespace Sinew made;
 * the host's own network is never touched. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pod_internal.h"
#include "sinew/common.h"
#include "sinew/pod.h"

#define LINK_NET 0xa9fe4d00u   /* 169.254.77.0: /30 per host, index * 4 */
#define HOST_NETNS_PREFIX "sn-h-"
#define HOST_LINK "snm0"       /* the link's end inside a host */

#define IP(err, err_size, ...)                                                                   \
	sn_pod_exec_checked((char *const *)(const char *const[]){ "ip", __VA_ARGS__, NULL }, NULL, 0, err, \
			    err_size)

static int host_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > SN_POD_HOST_NAME_MAX || s[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

int sn_pod_host_read(const char *dir, const char *name, struct sn_pod_hostnet *h)
{
	char path[4096], text[1024], err[200];
	size_t len;
	if (!host_name_ok(name))
		return SN_EINVAL;
	snprintf(path, sizeof(path), "%s/%s.host", dir, name);
	int rc = sn__pod_read_small(path, text, sizeof(text), &len);
	if (rc != 0)
		return rc;
	memset(h, 0, sizeof(*h));
	snprintf(h->name, sizeof(h->name), "%s", name);
	int have_cidr = 0;
	for (char *line = text; *line;) {
		char *nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		if (strncmp(line, "index=", 6) == 0)
			h->index = (unsigned)strtoul(line + 6, NULL, 10);
		else if (strncmp(line, "netns=", 6) == 0)
			snprintf(h->net.netns, sizeof(h->net.netns), "%s", line + 6);
		else if (strncmp(line, "bridge=", 7) == 0)
			snprintf(h->net.bridge, sizeof(h->net.bridge), "%s", line + 7);
		else if (strncmp(line, "cidr=", 5) == 0)
			have_cidr = sn_pod_cidr_parse(line + 5, &h->net.cidr, err, sizeof(err)) == 0;
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	if (h->index < 1 || h->index > SN_POD_HOST_MAX || h->net.netns[0] == '\0' || h->net.bridge[0] == '\0' ||
	    !have_cidr)
		return SN_EINVAL;
	return 0;
}

static int cmp_host(const void *a, const void *b)
{
	return strcmp(((const struct sn_pod_hostnet *)a)->name, ((const struct sn_pod_hostnet *)b)->name);
}

int sn_pod_host_list(const char *dir, struct sn_pod_hostnet **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	struct sn_pod_hostnet *v = calloc(SN_POD_HOST_MAX, sizeof(*v));
	if (v == NULL) {
		closedir(d);
		return SN_ENOMEM;
	}
	struct dirent *e;
	while ((e = readdir(d)) != NULL && *n < SN_POD_HOST_MAX) {
		size_t l = strlen(e->d_name);
		char name[SN_POD_HOST_NAME_MAX + 1];
		if (l <= 5 || strcmp(e->d_name + l - 5, ".host") != 0 || l - 5 > SN_POD_HOST_NAME_MAX)
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(l - 5), e->d_name);
		if (sn_pod_host_read(dir, name, &v[*n]) == 0)
			(*n)++;
	}
	closedir(d);
	qsort(v, *n, sizeof(*v), cmp_host);
	*out = v;
	return 0;
}

static void link_addrs(unsigned index, char *hub, char *host, size_t size)
{
	sn_pod_addr_str(LINK_NET + index * 4 + 1, hub, size);
	sn_pod_addr_str(LINK_NET + index * 4 + 2, host, size);
}

static int overlaps(const struct sn_pod_cidr *a, const struct sn_pod_cidr *b)
{
	unsigned p = a->prefix < b->prefix ? a->prefix : b->prefix;
	uint32_t mask = p == 0 ? 0 : 0xffffffffu << (32 - p);
	return (a->net & mask) == (b->net & mask);
}

/* ip netns exec NS sysctl: /proc/sys/net is the namespace's there. */
static int forwarding_on(const char *netns, char *err, size_t err_size)
{
	return IP(err, err_size, "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ip_forward=1");
}

int sn_pod_host_ensure(const char *dir, const struct sn_pod_mesh *m, const char *name, const char *cidr,
		       struct sn_pod_hostnet *out, char *err, size_t err_size)
{
	struct sn_pod_hostnet *hosts = NULL, h;
	size_t n = 0;
	char hub[16], host[16], buf[16], veth[SN_POD_IFNAME_MAX], c[32];
	int rc;

	if (!host_name_ok(name)) {
		snprintf(err, err_size, "host name \"%s\": want 1 to %d lower-case letters, digits and '-'", name,
			 SN_POD_HOST_NAME_MAX);
		return SN_EINVAL;
	}
	if ((rc = sn_pod_host_list(dir, &hosts, &n)) != 0) {
		snprintf(err, err_size, "cannot read the hosts recorded in %s", dir);
		return rc;
	}
	memset(&h, 0, sizeof(h));
	int found = 0;
	for (size_t i = 0; i < n && !found; i++)
		if (!strcmp(hosts[i].name, name)) {
			h = hosts[i];
			found = 1;
		}
	if (found && cidr != NULL) {
		struct sn_pod_cidr want;
		char have[32];
		sn_pod_cidr_str(&h.net.cidr, have, sizeof(have));
		if (sn_pod_cidr_parse(cidr, &want, err, err_size) != 0 || want.net != h.net.cidr.net ||
		    want.prefix != h.net.cidr.prefix) {
			snprintf(err, err_size, "host %s has pod range %s, not %s; `sinew down` to change it", name, have,
				 cidr);
			free(hosts);
			return SN_EINVAL;
		}
	}
	if (!found) {
		/* the lowest free index gives the link, and the default range */
		for (h.index = 1; h.index <= SN_POD_HOST_MAX; h.index++) {
			int used = 0;
			for (size_t i = 0; i < n && !used; i++)
				used = hosts[i].index == h.index;
			if (!used)
				break;
		}
		if (h.index > SN_POD_HOST_MAX) {
			snprintf(err, err_size, "%d hosts already; remove some with `sinew down`", SN_POD_HOST_MAX);
			free(hosts);
			return SN_ELIMIT;
		}
		snprintf(h.name, sizeof(h.name), "%s", name);
		snprintf(h.net.netns, sizeof(h.net.netns), HOST_NETNS_PREFIX "%s", name);
		snprintf(h.net.bridge, sizeof(h.net.bridge), "%s", SN_POD_BRIDGE);
		if (cidr != NULL) {
			if (sn_pod_cidr_parse(cidr, &h.net.cidr, err, err_size) != 0) {
				free(hosts);
				return SN_EINVAL;
			}
		} else {
			uint64_t size = 1ull << (32 - m->cidr.prefix), net = m->cidr.net + (uint64_t)h.index * size;
			h.net.cidr.prefix = m->cidr.prefix;
			h.net.cidr.net = (uint32_t)net;
			if (net > 0xffffffffull) {
				snprintf(err, err_size, "no room after the mesh's range for host %s; give --pod-cidr", name);
				free(hosts);
				return SN_EINVAL;
			}
		}
		int clash = overlaps(&h.net.cidr, &m->cidr);
		for (size_t i = 0; i < n && !clash; i++)
			clash = overlaps(&h.net.cidr, &hosts[i].net.cidr);
		if (clash) {
			sn_pod_cidr_str(&h.net.cidr, c, sizeof(c));
			snprintf(err, err_size, "host %s's pod range %s overlaps the mesh's or another host's; give "
						"--pod-cidr with a range of its own", name, c);
			free(hosts);
			return SN_EINVAL;
		}
		if (sn_pod_netns_exists(h.net.netns)) {
			snprintf(err, err_size, "network namespace %s exists but %s does not record it; remove it with "
						"`ip netns del %s` if nothing uses it", h.net.netns, dir, h.net.netns);
			free(hosts);
			return SN_EINVAL;
		}
	}
	free(hosts);

	/* Recorded first: whatever happens next, `sinew down` knows it. */
	char text[512], hname[SN_POD_HOST_NAME_MAX + 8];
	sn_pod_cidr_str(&h.net.cidr, c, sizeof(c));
	int tl = snprintf(text, sizeof(text), "index=%u\nnetns=%s\nbridge=%s\ncidr=%s\n", h.index, h.net.netns,
			  h.net.bridge, c);
	snprintf(hname, sizeof(hname), "%s.host", h.name);
	if ((rc = sn__pod_write_atomic(dir, hname, text, (size_t)tl, err, err_size)) != 0)
		return rc;

	link_addrs(h.index, hub, host, sizeof(hub));
	snprintf(veth, sizeof(veth), "snh-%s", h.name);
	sn_pod_addr_str(sn_pod_cidr_gateway(&h.net.cidr), buf, sizeof(buf));
	char gw[48], hub30[24], host30[24];
	snprintf(gw, sizeof(gw), "%s/%u", buf, h.net.cidr.prefix);
	snprintf(hub30, sizeof(hub30), "%s/30", hub);
	snprintf(host30, sizeof(host30), "%s/30", host);
	const char *hn = h.net.netns;
	if (!sn_pod_netns_exists(hn) && (rc = IP(err, err_size, "netns", "add", hn)) != 0)
		return rc;
	if ((rc = IP(err, err_size, "-n", hn, "link", "set", "lo", "up")) != 0 ||
	    (IP(err, err_size, "-n", hn, "link", "show", "dev", h.net.bridge) != 0 &&
	     (rc = IP(err, err_size, "-n", hn, "link", "add", h.net.bridge, "type", "bridge")) != 0) ||
	    (rc = IP(err, err_size, "-n", hn, "addr", "replace", gw, "dev", h.net.bridge)) != 0 ||
	    (rc = IP(err, err_size, "-n", hn, "link", "set", h.net.bridge, "up")) != 0)
		return rc;
	/* the link: made in the hub with its other end born in the host */
	if (IP(err, err_size, "-n", hn, "link", "show", "dev", HOST_LINK) != 0 &&
	    (rc = IP(err, err_size, "-n", m->netns, "link", "add", veth, "type", "veth", "peer", "name", HOST_LINK,
		     "netns", hn)) != 0)
		return rc;
	if ((rc = IP(err, err_size, "-n", m->netns, "addr", "replace", hub30, "dev", veth)) != 0 ||
	    (rc = IP(err, err_size, "-n", m->netns, "link", "set", veth, "up")) != 0 ||
	    (rc = IP(err, err_size, "-n", hn, "addr", "replace", host30, "dev", HOST_LINK)) != 0 ||
	    (rc = IP(err, err_size, "-n", hn, "link", "set", HOST_LINK, "up")) != 0 ||
	    (rc = IP(err, err_size, "-n", m->netns, "route", "replace", c, "via", host)) != 0 ||
	    (rc = IP(err, err_size, "-n", hn, "route", "replace", "default", "via", hub)) != 0 ||
	    (rc = forwarding_on(m->netns, err, err_size)) != 0 || (rc = forwarding_on(hn, err, err_size)) != 0)
		return rc;
	if (out != NULL)
		*out = h;
	return 0;
}

int sn_pod_network_of(const char *dir, const struct sn_pod *p, struct sn_pod_mesh *out)
{
	struct sn_pod_hostnet *hosts;
	size_t n;
	if (sn_pod_mesh_read(dir, out) == 0 && (p->mesh_netns[0] == '\0' || !strcmp(out->netns, p->mesh_netns)))
		return 0;
	if (sn_pod_host_list(dir, &hosts, &n) != 0)
		return SN_ENOTFOUND;
	int rc = SN_ENOTFOUND;
	for (size_t i = 0; i < n && rc != 0; i++)
		if (!strcmp(hosts[i].net.netns, p->mesh_netns)) {
			*out = hosts[i].net;
			rc = 0;
		}
	free(hosts);
	return rc;
}

int sn_pod_hosts_down(const char *dir, FILE *out, char *err, size_t err_size)
{
	struct sn_pod_hostnet *hosts;
	size_t n;
	int rc = sn_pod_host_list(dir, &hosts, &n);
	if (rc != 0) {
		snprintf(err, err_size, "cannot read the hosts recorded in %s", dir);
		return rc;
	}
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		if (sn_pod_netns_exists(hosts[i].net.netns)) {
			/* its bridge, and both ends of its link, go with it */
			if ((rc = IP(err, err_size, "netns", "del", hosts[i].net.netns)) != 0 &&
			    sn_pod_netns_exists(hosts[i].net.netns))
				break;
			rc = 0;
		}
		snprintf(path, sizeof(path), "%s/%s.host", dir, hosts[i].name);
		unlink(path);
		snprintf(path, sizeof(path), "%s/.%s.host.tmp", dir, hosts[i].name);
		unlink(path);
		if (out != NULL)
			fprintf(out, "host %s removed (namespace %s)\n", hosts[i].name, hosts[i].net.netns);
	}
	free(hosts);
	return rc;
}
