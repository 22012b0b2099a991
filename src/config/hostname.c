/* Host names: the one rule for what a short name stands for, and the
 * cluster domain it completes with. Istio's rule, which is a pod's DNS
 * search path: "reviews" in namespace ns is reviews.ns.svc.DOMAIN,
 * "reviews.other" is reviews.other.svc.DOMAIN (namespace other), "x.svc"
 * is x.svc.DOMAIN; each may also be a host as written (a ServiceEntry's
 * hosts are never qualified: "localhost" stays localhost). Every place
 * that qualifies a host -- translation, the snapshot's virtual-host
 * lookup, sinewd's push and analysis -- asks here, so file mode and the
 * control plane cannot drift apart. */
#include <string.h>

#include "config_internal.h"

static char domain[SN_CLUSTER_DOMAIN_MAX + 1] = "cluster.local";

int sn_cluster_domain_set(const char *d)
{
	size_t n = d ? strlen(d) : 0;
	if (n == 0 || n > SN_CLUSTER_DOMAIN_MAX || d[0] == '.' || d[n - 1] == '.' || strstr(d, "..") != NULL)
		return SN_EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = (char)sn_tolower_ascii((unsigned char)d[i]);
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return SN_EINVAL;
	}
	for (size_t i = 0; i <= n; i++)
		domain[i] = (char)sn_tolower_ascii((unsigned char)d[i]);
	return 0;
}

const char *sn_cluster_domain(void)
{
	return domain;
}

static void put(char *out, const char *a, const char *b, const char *c)
{
	/* Fits by construction: 253 + 1 + 63 + 5 + SN_CLUSTER_DOMAIN_MAX. */
	size_t n = 0;
	for (const char *parts[3] = { a, b, c }, **q = parts; q < parts + 3; q++) {
		if (*q == NULL)
			continue;
		size_t l = strlen(*q);
		if (n + l >= SN_HOST_CAND_MAX)
			l = SN_HOST_CAND_MAX - 1 - n;
		memcpy(out + n, *q, l);
		n += l;
	}
	out[n] = '\0';
}

size_t sn_host_candidates(const char *host, size_t hl, const char *ns, char out[2][SN_HOST_CAND_MAX],
			  size_t *fallback)
{
	char h[SN_HOST_NAME_MAX + 1];
	char tail[SN_HOST_CAND_MAX];

	*fallback = 0;
	if (hl > 0 && host[hl - 1] == '.')
		hl--;
	if (hl == 0 || hl > SN_HOST_NAME_MAX)
		return 0;
	for (size_t i = 0; i < hl; i++)
		h[i] = (char)sn_tolower_ascii((unsigned char)host[i]);
	h[hl] = '\0';
	const char *dot = strchr(h, '.');
	if (h[0] == '*' || (dot != NULL && strchr(dot + 1, '.') != NULL && !(hl > 4 && !strcmp(h + hl - 4, ".svc")))) {
		put(out[0], h, NULL, NULL);   /* a wildcard, or a name with two dots or more: as written */
		return 1;
	}
	if (dot == NULL) {
		/* "reviews": its namespace's Service first, else a host so named. */
		put(tail, ".", ns && ns[0] ? ns : "default", ".svc.");
		put(out[0], h, tail, domain);
	} else if (hl > 4 && !strcmp(h + hl - 4, ".svc")) {
		put(out[0], h, ".", domain);
	} else {
		/* "reviews.other": namespace other's Service if there is one,
		 * else the name as written (a real domain, "example.com"). */
		put(out[0], h, ".svc.", domain);
		*fallback = 1;
	}
	put(out[1], h, NULL, NULL);
	return 2;
}
