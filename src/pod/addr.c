/* The pod range: parsing, the reserved addresses (gateway first, capture
 * probe last) and the choice of a free pod address. Pure functions; the
 * state that says which addresses are taken is in state.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/common.h"
#include "sinew/pod.h"

static uint32_t mask_of(unsigned prefix)
{
	return prefix == 0 ? 0 : 0xffffffffu << (32 - prefix);
}

int sn_pod_addr_parse(const char *s, uint32_t *out)
{
	uint32_t a = 0;
	int parts = 0;
	const char *p = s;

	while (parts < 4) {
		unsigned v = 0;
		int digits = 0;
		while (*p >= '0' && *p <= '9' && digits < 4) {
			v = v * 10 + (unsigned)(*p - '0');
			p++;
			digits++;
		}
		if (digits == 0 || digits > 3 || v > 255 || (digits > 1 && p[-digits] == '0'))
			return SN_EINVAL;
		a = (a << 8) | v;
		parts++;
		if (parts < 4) {
			if (*p != '.')
				return SN_EINVAL;
			p++;
		}
	}
	if (*p != '\0')
		return SN_EINVAL;
	*out = a;
	return 0;
}

int sn_pod_cidr_parse(const char *s, struct sn_pod_cidr *out, char *err, size_t err_size)
{
	char ip[32];
	const char *slash = strchr(s, '/');
	if (slash == NULL || (size_t)(slash - s) >= sizeof(ip)) {
		snprintf(err, err_size, "pod range \"%s\": want ADDRESS/PREFIX, e.g. %s", s, SN_POD_DEFAULT_CIDR);
		return SN_EINVAL;
	}
	memcpy(ip, s, (size_t)(slash - s));
	ip[slash - s] = '\0';
	uint32_t a;
	if (sn_pod_addr_parse(ip, &a) != 0) {
		snprintf(err, err_size, "pod range \"%s\": \"%s\" is not an IPv4 address", s, ip);
		return SN_EINVAL;
	}
	char *end;
	const char *ps = slash + 1;
	long prefix = (*ps >= '0' && *ps <= '9') ? strtol(ps, &end, 10) : -1;
	if (prefix < 0 || *end != '\0' || prefix < 8 || prefix > 28) {
		snprintf(err, err_size, "pod range \"%s\": the prefix must be 8 to 28 (room for the gateway, the "
					"capture probe and pods)", s);
		return SN_EINVAL;
	}
	if ((a & ~mask_of((unsigned)prefix)) != 0) {
		char net[16];
		sn_pod_addr_str(a & mask_of((unsigned)prefix), net, sizeof(net));
		snprintf(err, err_size, "pod range \"%s\": host bits set; did you mean %s/%ld?", s, net, prefix);
		return SN_EINVAL;
	}
	/* The service VIPs (10.96.0.0/16, src/cli/vips.c) must stay apart. */
	uint32_t vnet = SN_POD_VIP_NET, common = SN_MIN((unsigned)prefix, 16u);
	if ((a & mask_of(common)) == (vnet & mask_of(common))) {
		snprintf(err, err_size, "pod range \"%s\" overlaps the service VIP range 10.96.0.0/16; pick another, "
					"e.g. %s", s, SN_POD_DEFAULT_CIDR);
		return SN_EINVAL;
	}
	out->net = a;
	out->prefix = (unsigned)prefix;
	return 0;
}

uint32_t sn_pod_cidr_gateway(const struct sn_pod_cidr *c)
{
	return c->net + 1;
}

uint32_t sn_pod_cidr_probe(const struct sn_pod_cidr *c)
{
	return (c->net | ~mask_of(c->prefix)) - 1;
}

int sn_pod_addr_pick(const struct sn_pod_cidr *c, const uint32_t *used, size_t n_used, uint32_t *out)
{
	uint32_t first = sn_pod_cidr_gateway(c) + 1, last = sn_pod_cidr_probe(c) - 1;
	/* Ranges are small for a local mesh and n_used is the number of pods:
	 * a linear scan per candidate is fine, but sort to stop early. */
	uint32_t *sorted = NULL;
	if (n_used > 0) {
		sorted = malloc(n_used * sizeof(*sorted));
		if (sorted == NULL)
			return SN_ENOMEM;
		memcpy(sorted, used, n_used * sizeof(*sorted));
		for (size_t i = 1; i < n_used; i++) {   /* insertion sort: n is small */
			uint32_t v = sorted[i];
			size_t j = i;
			while (j > 0 && sorted[j - 1] > v) {
				sorted[j] = sorted[j - 1];
				j--;
			}
			sorted[j] = v;
		}
	}
	uint32_t cand = first;
	for (size_t i = 0; i < n_used && cand <= last; i++) {
		if (sorted[i] < cand)
			continue;
		if (sorted[i] > cand)
			break;
		cand++;
	}
	free(sorted);
	if (cand > last || cand < first)
		return SN_ELIMIT;
	*out = cand;
	return 0;
}

void sn_pod_addr_str(uint32_t a, char *buf, size_t size)
{
	snprintf(buf, size, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

void sn_pod_cidr_str(const struct sn_pod_cidr *c, char *buf, size_t size)
{
	char a[16];
	sn_pod_addr_str(c->net, a, sizeof(a));
	snprintf(buf, size, "%s/%u", a, c->prefix);
}
