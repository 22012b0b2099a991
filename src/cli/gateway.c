/* sinew gateway run: an ingress gateway in the local mesh, as Istio's
 * istio-ingressgateway deployment is in a cluster. It is a pod like
 * `sinew run`'s (run.c does the work), whose proxy runs `--gateway`: no
 * app and no capture; it listens on the ports of the Istio Gateways whose
 * selector matches its labels and routes by the VirtualServices bound to
 * them, calling the mesh over mTLS. Istio's defaults: service
 * istio-ingressgateway in istio-system, labels istio=ingressgateway, so
 * Istio's bookinfo-gateway.yaml selects it unchanged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/cli.h"
#include "sinew/common.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew gateway run [--service NAME] [-n NS] [--labels k=v,...] [--service-account SA]\n"
		"                         [--publish [ADDR:]HPORT:PORT]... [options]\n"
		"\n"
		"Runs an ingress gateway: a pod on the mesh network whose proxy listens on the ports\n"
		"of the Istio Gateways that select its labels, and routes what comes in by the\n"
		"VirtualServices bound to them (spec.gateways), over mTLS to the mesh. --publish\n"
		"makes a gateway port reachable from the host, e.g. --publish 8080:8080 for Istio's\n"
		"bookinfo-gateway.yaml (port 8080). Runs until Ctrl-C or SIGTERM; needs root.\n"
		"\n"
		"  --service NAME            default istio-ingressgateway\n"
		"  -n, --namespace NS        default istio-system\n"
		"  --labels k=v,...          default app=istio-ingressgateway,istio=ingressgateway\n"
		"                            (what Istio's Gateways select: istio: ingressgateway)\n"
		"  --service-account SA      default istio-ingressgateway-service-account\n"
		"  --publish [ADDR:]HPORT:PORT  gateway port PORT on the host at ADDR:HPORT (default\n"
		"                            127.0.0.1), repeatable\n"
		"  --credentials-dir DIR     HTTPS servers' credentialName NAME: DIR/NAME/tls.crt and\n"
		"                            tls.key (ca.crt for MUTUAL), readable by the proxy's user\n"
		"                            (uid 1337 in a pod); default /etc/sinew/credentials\n"
		"  --no-capture              no pod and no root: the ports listen on 127.0.0.1\n"
		"  --admin ADDR:PORT         with --no-capture (default 127.0.0.1:15020)\n"
		"\n"
		"Also --control-plane, --no-token, --pod-cidr, --mesh-netns, --ready-timeout,\n"
		"--drain-timeout, --data-dir and --server, as for `sinew run`.\n"
		"\n"
		"Exit status: 0 after Ctrl-C or SIGTERM; 1 when the gateway could not be made ready\n"
		"or its proxy died; 2 usage error.\n");
}

int sn_cli_gateway(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "run") != 0) {
		fprintf(stderr, "sinew gateway: unknown subcommand \"%s\"; see sinew gateway --help\n", argv[1]);
		return 2;
	}
	for (int i = 2; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		}
	/* Istio's defaults first: what the user gives comes later and wins. */
	static const char *const defaults[] = {
		"run", "--gateway", "--service", "istio-ingressgateway", "--namespace", "istio-system",
		"--labels", "app=istio-ingressgateway,istio=ingressgateway",
		"--service-account", "istio-ingressgateway-service-account",
	};
	size_t nd = SN_ARRAY_LEN(defaults);
	char **av = calloc(nd + (size_t)argc, sizeof(*av));
	if (av == NULL) {
		fprintf(stderr, "sinew gateway run: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < nd; i++)
		av[i] = (char *)defaults[i];
	for (int i = 2; i < argc; i++)
		av[nd + (size_t)i - 2] = argv[i];
	int rc = sn_cli_run((int)nd + argc - 2, av);
	free(av);
	return rc;
}
