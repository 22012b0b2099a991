/* The table of `sinew` subcommands. A new subcommand is one file in
 * src/cli/ with its sn_cli_<name> function, and one line here. */
#include <stdio.h>
#include <string.h>

#include "sinew/cli.h"

const struct sn_cli_cmd sn_cli_commands[] = {
	{ "up", "start sinewd (the control plane) in the background", sn_cli_up },
	{ "down", "stop the sinewd that `sinew up` started", sn_cli_down },
	{ "apply", "apply configuration from files (-f FILE|DIR|-)", sn_cli_apply },
	{ "get", "list resources: sinew get KIND [NAME]", sn_cli_get },
	{ "delete", "delete resources: sinew delete KIND NAME, or -f FILE", sn_cli_delete },
	{ "analyze", "find problems in the live configuration or in files", sn_cli_analyze },
	{ "explain", "show what the mesh would do with a request", sn_cli_explain },
	{ "proxy-status", "list connected proxies and whether they run the latest config", sn_cli_proxy_status },
	{ "proxy-config", "show a proxy's routes, clusters or endpoints", sn_cli_proxy_config },
	{ "token", "mint a join token for a proxy: token create --service-account SA", sn_cli_token },
	{ "ca", "show the CA: roots, fingerprints, expiry", sn_cli_ca },
	{ "run", "run a workload in a pod behind its sidecar: run --service NAME -- CMD", sn_cli_run },
	{ "gateway", "run an ingress gateway for Istio Gateways: gateway run --publish 8080:8080", sn_cli_gateway },
	{ "ps", "list the pods `sinew run` made and their proxies' state", sn_cli_ps },
	{ "logs", "print a pod's app or proxy log: logs NAME [--proxy]", sn_cli_logs },
	{ "identity", "show a proxy's SPIFFE ID, certificate chain and roots", sn_cli_identity },
	{ "check", "check certificates and mTLS across sinewd and its proxies", sn_cli_check },
	{ "traces", "list recent traces, or show one as a waterfall: traces [TRACE_ID]", sn_cli_traces },
	{ "stat", "success rate, requests/s and latency per workload, service or namespace: stat deploy", sn_cli_stat },
	{ "edges", "which workloads call which, and whether mTLS secures it: edges deploy", sn_cli_edges },
	{ "routes", "success rate, requests/s and latency per VirtualService route: routes svc/NAME", sn_cli_routes },
	{ "tap", "the live requests of a workload's proxies, with filters: tap deploy/NAME", sn_cli_tap },
	{ "top", "the busiest paths of a workload's live requests: top deploy/NAME", sn_cli_top },
	{ "load", "generate HTTP load at a fixed rate and report latency (open loop)", sn_cli_load },
	{ "completion", "print a shell completion script (bash)", sn_cli_completion },
	{ "version", "print the version (and sinewd's)", sn_cli_version },
	{ NULL, NULL, NULL },
};

const struct sn_cli_cmd *sn_cli_find(const char *name)
{
	for (const struct sn_cli_cmd *c = sn_cli_commands; c->name != NULL; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}
