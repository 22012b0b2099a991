/* sinew gateway run: an ingress gateway in the local mesh, as Istio's
 * istio-ingressgateway deployment is in a cluster (or, with
 * --gateway-name, the deployment Istio makes for a Gateway API Gateway). It is a pod like
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
		"usage: sinew gateway run [--gateway-name NAME] [--service NAME] [-n NS] [--labels k=v,...]\n"
		"                         [--service-account SA]\n"
		"                         [--publish [ADDR:]HPORT:PORT]... [options]\n"
		"\n"
		"Runs an ingress gateway: a pod on the mesh network whose proxy listens on the ports\n"
		"of the Istio Gateways that select its labels, and routes what comes in by the\n"
		"VirtualServices bound to them (spec.gateways), over mTLS to the mesh; or, with\n"
		"--gateway-name, of one Gateway API Gateway and its HTTPRoutes. --publish\n"
		"makes a gateway port reachable from the host, e.g. --publish 8080:8080 for Istio's\n"
		"bookinfo-gateway.yaml (port 8080). Runs until Ctrl-C or SIGTERM; needs root.\n"
		"\n"
		"  --gateway-name NAME       serve the Gateway API's Gateway NAME (gateway.networking.k8s.io)\n"
		"                            as Istio's automated deployment does: service and service\n"
		"                            account NAME-istio in namespace default (or -n), label\n"
		"                            gateway.networking.k8s.io/gateway-name=NAME\n"
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
	/* --gateway-name NAME: Istio's names for a Gateway API Gateway's
	 * deployment (NAME-istio), and the label its Gateway selects */
	const char *gw_name = NULL;
	char svc[300], label[360];
	const char *api_defaults[] = {
		"run", "--gateway", "--service", svc, "--namespace", "default", "--labels", label,
		"--service-account", svc,
	};
	for (int i = 2; i + 1 < argc && strcmp(argv[i], "--") != 0; i++)
		if (!strcmp(argv[i], "--gateway-name"))
			gw_name = argv[i + 1];
	if (gw_name != NULL) {
		if (gw_name[0] == '\0' || strlen(gw_name) > 253 || strpbrk(gw_name, "=,/ ") != NULL) {
			fprintf(stderr, "sinew gateway run: --gateway-name \"%s\" is not a Gateway's name\n", gw_name);
			return 2;
		}
		snprintf(svc, sizeof(svc), "%s-istio", gw_name);
		snprintf(label, sizeof(label), "gateway.networking.k8s.io/gateway-name=%s", gw_name);
	}
	const char *const *dv = gw_name ? api_defaults : (const char *const *)defaults;
	size_t nd = gw_name ? SN_ARRAY_LEN(api_defaults) : SN_ARRAY_LEN(defaults);
	char **av = calloc(nd + (size_t)argc, sizeof(*av));
	if (av == NULL) {
		fprintf(stderr, "sinew gateway run: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < nd; i++)
		av[i] = (char *)dv[i];
	size_t n = nd;
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--gateway-name") && i + 1 < argc) {
			i++;
			continue;
		}
		av[n++] = argv[i];
	}
	int rc = sn_cli_run((int)n, av);
	free(av);
	return rc;
}
