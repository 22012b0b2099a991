/* sinew-proxy: the data plane. Parses flags and runs the proxy. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/join_token.h"
#include "sinew/log.h"
#include "../proxy/proxy.h"

#ifndef SINEW_VERSION
#define SINEW_VERSION "0.1.0-dev"
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sinew-proxy --config FILE | --control-plane ADDR:PORT[,ADDR:PORT...] [options]\n"
		"\n"
		"Sinew's data plane: an HTTP/1.1 sidecar proxy configured with Kubernetes-style\n"
		"resources (Service, WorkloadEntry, Istio VirtualService and DestinationRule).\n"
		"\n"
		"  --config FILE                multi-document YAML; reloaded on SIGHUP and when it changes\n"
		"  --control-plane ADDR:PORT[,ADDR:PORT...]\n"
		"                               get config from sinewd instead (its --mesh address), or from\n"
		"                               one of up to 8 replicas: the first, then the next whenever a\n"
		"                               link is refused, times out (2s), goes silent (9s) or is lost;\n"
		"                               backoff (250ms doubling to 10s) only once all have failed\n"
		"  --discovery-idle D           drop a destination not called for D (default 10m)\n"
		"  --stats-interval D           send sinewd the request counts this often (default 10s),\n"
		"                               for `sinew stat` and `sinew edges`\n"
		"  --outbound ADDR:PORT         listener for the app's outgoing HTTP (Host or absolute-form routing)\n"
		"  --inbound ADDR:PORT          listener for requests to the local app (needs --app)\n"
		"  --gateway                    an ingress gateway: listen on the ports of the Istio Gateways\n"
		"                               whose selector matches --labels (e.g. istio=ingressgateway)\n"
		"                               and route by the VirtualServices bound to them\n"
		"  --gateway-address IP         where the gateway's ports listen (default 0.0.0.0)\n"
		"  --dns-refresh D              ServiceEntry names (resolution DNS) are resolved again this\n"
		"                               often (default 5s)\n"
		"  --credentials-dir DIR        credentialName NAME (HTTPS Gateway servers, DestinationRule\n"
		"                               tls): DIR/NAME/tls.crt, tls.key, ca.crt; default\n"
		"                               /etc/sinew/credentials\n"
		"  --app ADDR:PORT              where the local app listens\n"
		"  --admin ADDR:PORT            /metrics, /ready, /live, /config_dump\n"
		"  --service NAME               this workload's service (metrics, source matching)\n"
		"  --namespace NS               default \"default\"; short host names resolve here\n"
		"  --labels k=v,...             this workload's labels (VirtualService sourceLabels)\n"
		"  --service-account SA         default \"default\"\n"
		"  --access-log PATH|-          JSON lines access log (off by default)\n"
		"  --log-level LEVEL            error, warn, info (default), debug, trace\n"
		"  --workers N                  worker threads (default 1)\n"
		"  --drain-seconds N            SIGTERM grace period (default 5)\n"
		"  --request-header-timeout D   time for a client to send a request head (default 10s)\n"
		"  --idle-timeout D             keep-alive idle timeout (default 60s)\n"
		"  --max-connections N          downstream connections per worker (default 16384)\n"
		"  --istio-metric-names         also export istio_* metric names\n"
		"  --trace-sampling PCT         percent of new traces sampled, 0-100 (default 1, Istio's);\n"
		"                               a Telemetry resource's randomSamplingPercentage overrides it\n"
		"  --tls-cert FILE              mTLS: this workload's SVID, leaf first then its chain (PEM)\n"
		"  --tls-key FILE               mTLS: its private key (PEM, EC P-256)\n"
		"  --tls-bundle FILE            mTLS: the trust domain's roots (PEM)\n"
		"  --trust-domain TD            default cluster.local\n"
		"  --cluster-domain D           the DNS domain short names complete with: reviews is\n"
		"                               reviews.NS.svc.D (default cluster.local)\n"
		"  --advertise ADDR:PORT        where other proxies reach --inbound (registered with sinewd;\n"
		"                               default --inbound), e.g. the pod's address and app port\n"
		"  --capture-probe ADDR:PORT    transparent capture (sinew run): a connection to --outbound\n"
		"                               whose original destination is ADDR:PORT is answered\n"
		"                               \"sinew-capture-ok POD\" (the pod's rule check)\n"
		"  --pod NAME                   the pod's name, for that answer\n"
		"  --opaque-ports LIST          with --capture-probe: ports proxied as TCP (default the\n"
		"                               server-first 25,587,3306,4444,5432,6379,9300,11211); other\n"
		"                               ports are sniffed for 1 s: HTTP, else TCP\n"
		"  --services-hosts FILE        with --capture-probe: VIP -> NAME.NS.svc.cluster.local (a\n"
		"                               hosts file; default /etc/hosts, the pod's)\n"
		"  --token TOKEN                join token from `sinew token create` (or SINEW_TOKEN): the\n"
		"                               proxy makes its key, gets its certificate from sinewd, renews\n"
		"                               it, and talks mutual TLS to sinewd and other proxies\n"
		"  --version, --help\n"
		"\n"
		"Exit status: 0 after a clean drain, 1 on a usage or runtime error, 2 when the config is refused.\n");
}

static int parse_dur(const char *flag, const char *v, uint32_t *out)
{
	if (sn_parse_duration_ms(v, out) != 0) {
		fprintf(stderr, "sinew-proxy: %s %s: not a duration; write e.g. 500ms, 10s, 2m\n", flag, v);
		return -1;
	}
	return 0;
}

static int parse_uint(const char *flag, const char *v, long max, long *out)
{
	char *end;
	long n = strtol(v, &end, 10);
	if (*v == '\0' || *end != '\0' || n < 0 || n > max) {
		fprintf(stderr, "sinew-proxy: %s %s: want a whole number from 0 to %ld\n", flag, v, max);
		return -1;
	}
	*out = n;
	return 0;
}

static int parse_addr(const char *flag, const char *v, struct sn_addr *a)
{
	if (sn_addr_parse(v, a) != 0) {
		fprintf(stderr, "sinew-proxy: %s %s: want IP:PORT, e.g. 127.0.0.1:15001 or [::1]:15001\n", flag, v);
		return -1;
	}
	return 0;
}

/* --opaque-ports 3306,6379,...: replaces the default server-first list. */
static int parse_ports(const char *v, struct sn_proxy_options *o)
{
	const char *p = v;
	o->n_opaque_ports = 0;
	while (*p) {
		char *end;
		long n = strtol(p, &end, 10);
		if (end == p || n < 1 || n > 65535 || (*end != ',' && *end != '\0') ||
		    o->n_opaque_ports == SN_ARRAY_LEN(o->opaque_ports)) {
			fprintf(stderr, "sinew-proxy: --opaque-ports %s: want up to %zu ports, e.g. 3306,6379\n", v,
				SN_ARRAY_LEN(o->opaque_ports));
			return -1;
		}
		o->opaque_ports[o->n_opaque_ports++] = (uint16_t)n;
		p = *end ? end + 1 : end;
	}
	return 0;
}

/* --token: the identity comes from the token (sinewd signs only that);
 * flags that say otherwise are a mistake worth stopping for. */
static int check_token(struct sn_proxy_options *o)
{
	static struct sn_join_token t;
	struct sn_id_error e = { 0 };

	if (!o->have_control_plane) {
		fprintf(stderr, "sinew-proxy: --token needs --control-plane ADDR:PORT[,ADDR:PORT...] (the sinewd that "
				"minted it, or replicas sharing its CA and token secret)\n");
		return -1;
	}
	if (o->tls_cert != NULL) {
		fprintf(stderr, "sinew-proxy: give --token (certificates from sinewd) or --tls-cert/--tls-key/--tls-bundle "
				"(files), not both\n");
		return -1;
	}
	if (sn_join_token_parse(o->token, strlen(o->token), &t, &e) != 0) {
		fprintf(stderr, "sinew-proxy: --token: %s; mint one with `sinew token create --service-account SA`\n",
			e.msg);
		return -1;
	}
	const struct { const char *flag, *given, *token; } v[] = {
		{ "--namespace", o->namespace_, t.ns },
		{ "--service-account", o->service_account, t.sa },
		{ "--trust-domain", o->trust_domain, t.trust_domain },
	};
	for (size_t i = 0; i < SN_ARRAY_LEN(v); i++) {
		if (v[i].given != NULL && strcmp(v[i].given, v[i].token) != 0) {
			fprintf(stderr, "sinew-proxy: %s %s, but the token is for %s %s; drop the flag or mint a token for "
					"that identity\n", v[i].flag, v[i].given, v[i].flag + 2, v[i].token);
			return -1;
		}
	}
	o->namespace_ = t.ns;
	o->service_account = t.sa;
	o->trust_domain = t.trust_domain;
	return 0;
}

int main(int argc, char **argv)
{
	enum {
		O_CONFIG = 256, O_OUTBOUND, O_INBOUND, O_APP, O_ADMIN, O_SERVICE, O_NAMESPACE, O_LABELS, O_SA,
		O_ACCESS_LOG, O_LOG_LEVEL, O_WORKERS, O_DRAIN, O_HDR_TIMEOUT, O_IDLE_TIMEOUT, O_MAX_CONNS,
		O_ISTIO_NAMES, O_TRACE_SAMPLING, O_VERSION, O_HELP, O_CONTROL_PLANE, O_DISCOVERY_IDLE, O_STATS_INTERVAL,
		O_TLS_CERT, O_TLS_KEY, O_TLS_BUNDLE, O_TRUST_DOMAIN, O_CLUSTER_DOMAIN, O_TOKEN, O_CAPTURE_PROBE, O_POD, O_ADVERTISE, O_OPAQUE, O_SVC_HOSTS, O_GATEWAY, O_GATEWAY_ADDR, O_CREDENTIALS, O_DNS_REFRESH,
	};
	static const struct option opts[] = {
		{ "config", required_argument, NULL, O_CONFIG },
		{ "outbound", required_argument, NULL, O_OUTBOUND },
		{ "inbound", required_argument, NULL, O_INBOUND },
		{ "app", required_argument, NULL, O_APP },
		{ "admin", required_argument, NULL, O_ADMIN },
		{ "service", required_argument, NULL, O_SERVICE },
		{ "namespace", required_argument, NULL, O_NAMESPACE },
		{ "labels", required_argument, NULL, O_LABELS },
		{ "service-account", required_argument, NULL, O_SA },
		{ "access-log", required_argument, NULL, O_ACCESS_LOG },
		{ "log-level", required_argument, NULL, O_LOG_LEVEL },
		{ "workers", required_argument, NULL, O_WORKERS },
		{ "drain-seconds", required_argument, NULL, O_DRAIN },
		{ "request-header-timeout", required_argument, NULL, O_HDR_TIMEOUT },
		{ "idle-timeout", required_argument, NULL, O_IDLE_TIMEOUT },
		{ "max-connections", required_argument, NULL, O_MAX_CONNS },
		{ "istio-metric-names", no_argument, NULL, O_ISTIO_NAMES },
		{ "trace-sampling", required_argument, NULL, O_TRACE_SAMPLING },
		{ "control-plane", required_argument, NULL, O_CONTROL_PLANE },
		{ "discovery-idle", required_argument, NULL, O_DISCOVERY_IDLE },
		{ "stats-interval", required_argument, NULL, O_STATS_INTERVAL },
		{ "tls-cert", required_argument, NULL, O_TLS_CERT },
		{ "token", required_argument, NULL, O_TOKEN },
		{ "capture-probe", required_argument, NULL, O_CAPTURE_PROBE },
		{ "pod", required_argument, NULL, O_POD },
		{ "advertise", required_argument, NULL, O_ADVERTISE },
		{ "opaque-ports", required_argument, NULL, O_OPAQUE },
		{ "services-hosts", required_argument, NULL, O_SVC_HOSTS },
		{ "tls-key", required_argument, NULL, O_TLS_KEY },
		{ "tls-bundle", required_argument, NULL, O_TLS_BUNDLE },
		{ "trust-domain", required_argument, NULL, O_TRUST_DOMAIN },
		{ "cluster-domain", required_argument, NULL, O_CLUSTER_DOMAIN },
		{ "gateway", no_argument, NULL, O_GATEWAY },
		{ "gateway-address", required_argument, NULL, O_GATEWAY_ADDR },
		{ "credentials-dir", required_argument, NULL, O_CREDENTIALS },
		{ "dns-refresh", required_argument, NULL, O_DNS_REFRESH },
		{ "version", no_argument, NULL, O_VERSION },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct sn_proxy_options o;
	int c;
	long n;

	memset(&o, 0, sizeof(o));
	o.workers = 1;
	o.drain_ms = 5000;
	o.trace_sampling = 1.0;
	o.request_header_timeout_ms = 10000;
	o.idle_timeout_ms = 60000;
	o.max_connections = 16384;
	o.limits.max_request_line = SN_H1_DEFAULT_MAX_REQUEST_LINE;
	o.limits.max_head_bytes = SN_H1_DEFAULT_MAX_HEAD_BYTES;
	o.limits.max_headers = SN_H1_DEFAULT_MAX_HEADERS;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_CONFIG: o.config_path = optarg; break;
		case O_OUTBOUND:
			if (parse_addr("--outbound", optarg, &o.outbound) != 0)
				return 1;
			o.have_outbound = 1;
			break;
		case O_INBOUND:
			if (parse_addr("--inbound", optarg, &o.inbound) != 0)
				return 1;
			o.have_inbound = 1;
			break;
		case O_APP:
			if (parse_addr("--app", optarg, &o.app) != 0)
				return 1;
			break;
		case O_ADMIN:
			if (parse_addr("--admin", optarg, &o.admin) != 0)
				return 1;
			o.have_admin = 1;
			break;
		case O_SERVICE: o.service = optarg; break;
		case O_NAMESPACE: o.namespace_ = optarg; break;
		case O_LABELS: o.labels_text = optarg; break;
		case O_SA: o.service_account = optarg; break;
		case O_ACCESS_LOG: o.access_log_path = optarg; break;
		case O_LOG_LEVEL:
			if (sn_log_set_level_name(optarg) != 0) {
				fprintf(stderr, "sinew-proxy: --log-level %s: want error, warn, info, debug or trace\n", optarg);
				return 1;
			}
			break;
		case O_WORKERS:
			if (parse_uint("--workers", optarg, 256, &n) != 0 || n == 0) {
				if (n == 0)
					fprintf(stderr, "sinew-proxy: --workers must be at least 1\n");
				return 1;
			}
			o.workers = (int)n;
			break;
		case O_DRAIN:
			if (parse_uint("--drain-seconds", optarg, 86400, &n) != 0)
				return 1;
			o.drain_ms = (uint32_t)n * 1000u;
			break;
		case O_HDR_TIMEOUT:
			if (parse_dur("--request-header-timeout", optarg, &o.request_header_timeout_ms) != 0)
				return 1;
			break;
		case O_IDLE_TIMEOUT:
			if (parse_dur("--idle-timeout", optarg, &o.idle_timeout_ms) != 0)
				return 1;
			break;
		case O_MAX_CONNS:
			if (parse_uint("--max-connections", optarg, 1000000, &n) != 0)
				return 1;
			o.max_connections = (uint32_t)n;
			break;
		case O_ISTIO_NAMES: o.istio_metric_names = 1; break;
		case O_TRACE_SAMPLING: {
			char *end;
			o.trace_sampling = strtod(optarg, &end);
			if (end == optarg || *end != '\0' || !(o.trace_sampling >= 0 && o.trace_sampling <= 100)) {
				fprintf(stderr, "sinew-proxy: --trace-sampling %s: want a percentage from 0 to 100, "
					"e.g. 1 or 0.5\n", optarg);
				return 1;
			}
			break;
		}
		case O_DISCOVERY_IDLE:
			if (parse_dur("--discovery-idle", optarg, &o.discovery_idle_ms) != 0)
				return 1;
			break;
		case O_STATS_INTERVAL:
			if (parse_dur("--stats-interval", optarg, &o.stats_interval_ms) != 0)
				return 1;
			/* sinewd's slots are 1 s at the finest; an hour is its whole memory */
			if (o.stats_interval_ms < 100 || o.stats_interval_ms > 3600000) {
				fprintf(stderr, "sinew-proxy: --stats-interval %s: want from 100ms to 1h, e.g. 10s\n",
					optarg);
				return 1;
			}
			break;
		case O_CONTROL_PLANE: {
			char err[160];
			if (sn_addr_list_parse(optarg, o.control_plane, SN_ARRAY_LEN(o.control_plane),
					       &o.n_control_plane, err, sizeof(err)) != 0) {
				fprintf(stderr, "sinew-proxy: --control-plane %s: %s (sinewd's --mesh address, or its "
					"replicas', comma-separated, at most %zu)\n", optarg, err, SN_ARRAY_LEN(o.control_plane));
				return 1;
			}
			o.have_control_plane = 1;
			break;
		}
		case O_TLS_CERT: o.tls_cert = optarg; break;
		case O_TOKEN: o.token = optarg; break;
		case O_POD: o.pod_name = optarg; break;
		case O_CAPTURE_PROBE:
			if (parse_addr("--capture-probe", optarg, &o.capture_probe) != 0)
				return 1;
			o.have_capture_probe = 1;
			break;
		case O_OPAQUE:
			if (parse_ports(optarg, &o) != 0)
				return 1;
			break;
		case O_SVC_HOSTS: o.services_hosts = optarg; break;
		case O_ADVERTISE:
			if (parse_addr("--advertise", optarg, &o.advertise) != 0)
				return 1;
			o.have_advertise = 1;
			break;
		case O_TLS_KEY: o.tls_key = optarg; break;
		case O_TLS_BUNDLE: o.tls_bundle = optarg; break;
		case O_TRUST_DOMAIN: o.trust_domain = optarg; break;
		case O_CLUSTER_DOMAIN:
			if (sn_cluster_domain_set(optarg) != 0) {
				fprintf(stderr, "sinew-proxy: --cluster-domain %s: not a DNS name (letters, digits, '-' "
					"and '.', at most %d characters), e.g. cluster.local\n", optarg, SN_CLUSTER_DOMAIN_MAX);
				return 1;
			}
			break;
		case O_GATEWAY: o.gateway = 1; break;
		case O_CREDENTIALS: o.credentials_dir = optarg; break;
		case O_DNS_REFRESH:
			if (parse_dur("--dns-refresh", optarg, &o.dns_refresh_ms) != 0)
				return 1;
			if (o.dns_refresh_ms < 100) {
				fprintf(stderr, "sinew-proxy: --dns-refresh %s: at least 100ms\n", optarg);
				return 1;
			}
			break;
		case O_GATEWAY_ADDR: {
			char a[80];
			snprintf(a, sizeof(a), strchr(optarg, ':') ? "[%s]:0" : "%s:0", optarg);
			if (strlen(optarg) > 64 || sn_addr_parse(a, &o.gateway_address) != 0) {
				fprintf(stderr, "sinew-proxy: --gateway-address %s: want an IP address, e.g. 0.0.0.0 or "
					"127.0.0.1\n", optarg);
				return 1;
			}
			o.have_gateway_address = 1;
			break;
		}
		case O_VERSION: printf("sinew-proxy %s\n", SINEW_VERSION); return 0;
		case O_HELP: usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sinew-proxy: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 1;
	}
	if ((o.config_path == NULL) == !o.have_control_plane) {
		fprintf(stderr, "sinew-proxy: give exactly one of --config FILE (file mode) or --control-plane "
				"ADDR:PORT[,ADDR:PORT...] (sinewd)\n");
		return 1;
	}
	if (o.have_inbound != (o.app.len != 0)) {
		fprintf(stderr, "sinew-proxy: --inbound and --app go together: --inbound 127.0.0.1:15006 --app 127.0.0.1:8080\n");
		return 1;
	}
	if ((o.tls_cert != NULL) != (o.tls_key != NULL) || (o.tls_cert != NULL) != (o.tls_bundle != NULL)) {
		fprintf(stderr, "sinew-proxy: --tls-cert, --tls-key and --tls-bundle go together\n");
		return 1;
	}
	if (o.have_capture_probe) {
		/* Captured traffic: server-first ports are TCP (DESIGN.md §6);
		 * names resolve through the pod's hosts file. */
		static const uint16_t server_first[] = { 25, 587, 3306, 4444, 5432, 6379, 9300, 11211 };
		if (o.n_opaque_ports == 0) {
			memcpy(o.opaque_ports, server_first, sizeof(server_first));
			o.n_opaque_ports = SN_ARRAY_LEN(server_first);
		}
		if (o.services_hosts == NULL)
			o.services_hosts = "/etc/hosts";
	}
	if (o.token == NULL && getenv("SINEW_TOKEN") != NULL && getenv("SINEW_TOKEN")[0] != '\0')
		o.token = getenv("SINEW_TOKEN");
	if (o.token != NULL && check_token(&o) != 0)
		return 1;
	if (o.have_gateway_address && !o.gateway) {
		fprintf(stderr, "sinew-proxy: --gateway-address goes with --gateway\n");
		return 1;
	}
	if (o.gateway && (o.have_inbound || o.have_capture_probe)) {
		fprintf(stderr, "sinew-proxy: a --gateway takes no --inbound or --capture-probe: it is the workload "
			"(its ports come from the Gateways that select its --labels)\n");
		return 1;
	}
	if (o.gateway && !o.have_gateway_address)
		sn_addr_parse("0.0.0.0:0", &o.gateway_address);
	if (!o.have_outbound && !o.have_inbound && !o.gateway) {
		fprintf(stderr, "sinew-proxy: nothing to do: give --outbound and/or --inbound, or --gateway\n");
		return 1;
	}
	if (o.request_header_timeout_ms == 0)
		o.request_header_timeout_ms = 10000;
	if (o.idle_timeout_ms == 0)
		o.idle_timeout_ms = 60000;
	return sn_proxy_run(&o);
}
