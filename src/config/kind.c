/* Kind names as people type them (kubectl style): singular, plural and
 * short names, any case. Shared by sinewd's API and the CLI. */
#include <strings.h>

#include "config_internal.h"

struct kind_alias {
	enum sn_resource_kind kind;
	const char *singular;   /* lower case */
	const char *plural;
	const char *short_name;
};

static const struct kind_alias aliases[SN_KIND__COUNT] = {
	{ SN_KIND_SERVICE, "service", "services", "svc" },
	{ SN_KIND_WORKLOAD_ENTRY, "workloadentry", "workloadentries", "we" },
	{ SN_KIND_VIRTUAL_SERVICE, "virtualservice", "virtualservices", "vs" },
	{ SN_KIND_DESTINATION_RULE, "destinationrule", "destinationrules", "dr" },
	{ SN_KIND_AUTHORIZATION_POLICY, "authorizationpolicy", "authorizationpolicies", "ap" },
	{ SN_KIND_PEER_AUTHENTICATION, "peerauthentication", "peerauthentications", "pa" },
	{ SN_KIND_SERVICE_ENTRY, "serviceentry", "serviceentries", "se" },
	{ SN_KIND_REQUEST_AUTHENTICATION, "requestauthentication", "requestauthentications", "ra" },
	{ SN_KIND_CONFIG_MAP, "configmap", "configmaps", "cm" },
	{ SN_KIND_SERVER, "server", "servers", "srv" },
	{ SN_KIND_RATE_LIMIT, "httplocalratelimitpolicy", "httplocalratelimitpolicies", "rl" },
	{ SN_KIND_TELEMETRY, "telemetry", "telemetries", "telemetry" },
	{ SN_KIND_GATEWAY, "gateway", "gateways", "gw" },
	{ SN_KIND_HTTP_ROUTE, "httproute", "httproutes", "httproute" },
	{ SN_KIND_K8S_GATEWAY, "gateway.gateway.networking.k8s.io", "gateways.gateway.networking.k8s.io", "gtw" },
	{ SN_KIND_GRPC_ROUTE, "grpcroute", "grpcroutes", "grpcroute" },
	{ SN_KIND_TCP_ROUTE, "tcproute", "tcproutes", "tcproute" },
	{ SN_KIND_TLS_ROUTE, "tlsroute", "tlsroutes", "tlsroute" },
	{ SN_KIND_REFERENCE_GRANT, "referencegrant", "referencegrants", "refgrant" },
};

int sn_kind_lookup(const char *name)
{
	if (name == NULL)
		return -1;
	for (size_t i = 0; i < SN_ARRAY_LEN(aliases); i++) {
		const struct kind_alias *k = &aliases[i];
		if (!strcasecmp(name, k->singular) || !strcasecmp(name, k->plural) ||
		    !strcasecmp(name, k->short_name))
			return (int)k->kind;
	}
	return -1;
}

const char *sn_kind_plural(enum sn_resource_kind k)
{
	return (unsigned)k < SN_KIND__COUNT ? aliases[k].plural : "unknown";
}

const char *sn_kind_short(enum sn_resource_kind k)
{
	return (unsigned)k < SN_KIND__COUNT ? aliases[k].short_name : "unknown";
}
