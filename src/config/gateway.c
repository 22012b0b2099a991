/* Istio's Gateway (networking.istio.io/v1): the ports a gateway proxy
 * (sinew-proxy --gateway) listens on, and the hosts it takes there.
 *
 * A Gateway selects gateway proxies by their labels (spec.selector; Istio
 * looks in every namespace, and so does Sinew). Each of its servers is a
 * port, a protocol and hosts; VirtualServices bind to it by name in
 * spec.gateways and route what the servers' hosts admit (translate.c).
 *
 * Served: HTTP, HTTP2 and GRPC servers in plain text (a client may speak
 * HTTP/1.1 or HTTP/2 on any of them), tls.httpsRedirect, and HTTPS servers
 * with tls.mode SIMPLE or MUTUAL (the proxy terminates TLS with PEM files,
 * or credentialName's files in its --credentials-dir), and TLS or HTTPS
 * servers with tls.mode PASSTHROUGH (routed by the ClientHello's server
 * name, VirtualService tls[] routes), and TCP servers (MONGO, MYSQL and
 * REDIS as TCP, as Istio does: VirtualService tcp[] routes, the first
 * that applies taking every connection), and TLS servers with tls.mode
 * SIMPLE, MUTUAL or ISTIO_MUTUAL (TLS terminated, then the tcp[] routes).
 * Warned and not opened: UDP, and a MUTUAL server with client
 * checks Sinew does not make (docs/configuration.md). */
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

/* "ns/host", "./host", "*\/host" or "host": a host pattern ("*",
 * "*.suffix" or a name) and the namespaces whose VirtualServices may bind
 * it. */
static int parse_host(struct cfg_ctx *c, const struct yn *at, const char *text, struct cfg_gw_host *out)
{
	const char *slash = strchr(text, '/');
	const char *host = slash ? slash + 1 : text;
	char *ns = NULL;

	if (slash != NULL) {
		size_t nl = (size_t)(slash - text);
		if (nl == 0 || nl > 63) {
			cfg_err(c, at, "\"%.64s\": the namespace before '/' must be 1 to 63 characters (or '*' or '.')",
				text);
			return -1;
		}
		ns = sn_arena_strndup(c->a, text, nl);
		if (ns == NULL)
			return -1;
		for (size_t i = 0; i < nl && !(nl == 1 && (ns[0] == '*' || ns[0] == '.')); i++)
			if (!((ns[i] >= 'a' && ns[i] <= 'z') || (ns[i] >= '0' && ns[i] <= '9') || ns[i] == '-')) {
				cfg_err(c, at, "\"%.64s\": \"%s\" is not a namespace; write NAMESPACE/HOST, ./HOST (the "
					"Gateway's namespace) or */HOST (any)", text, ns);
				return -1;
			}
		if (!strcmp(ns, "*"))
			ns = NULL;
	}
	size_t hl = strlen(host);
	int ok = hl > 0 && hl <= SN_HOST_NAME_MAX;
	for (size_t i = 0; ok && i < hl; i++) {
		char ch = host[i];
		if (ch == '*')
			ok = i == 0 && (hl == 1 || host[1] == '.');
		else
			ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
			     ch == '-' || ch == '.';
	}
	if (!ok) {
		cfg_err(c, at, "\"%.64s\" is not a host; write \"*\", \"*.example.com\", \"bookinfo.example.com\", "
			"optionally after NAMESPACE/", text);
		return -1;
	}
	out->ns = ns;
	out->host = sn_arena_strdup(c->a, host);
	if (out->host == NULL)
		return -1;
	sn_ascii_lower(out->host);
	size_t n = strlen(out->host);
	if (n > 1 && out->host[n - 1] == '.')
		out->host[n - 1] = '\0';
	return 0;
}

static void parse_port(struct cfg_ctx *c, const struct yn *v, struct cfg_gw_server *s)
{
	uint64_t x;
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x_node = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "number")) {
			if (cfg_get_uint(c, x_node, 1, 65535, &x) == 0)
				s->port = (uint16_t)x;
		} else if (!strcmp(k, "protocol")) {
			if (cfg_get_str(c, x_node, 32, &s->protocol) == 0)
				for (char *q = s->protocol; *q; q++)
					if (*q >= 'a' && *q <= 'z')
						*q = (char)(*q - 'a' + 'A');
		} else if (!strcmp(k, "name")) {
			cfg_get_str(c, x_node, CFG_MAX_NAME, &s->port_name);
		} else if (!strcmp(k, "targetPort")) {
			cfg_warn_unimplemented(c, v->keys[i], "targetPort (the gateway proxy listens on port.number)");
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	cfg_require(c, v, "number", YN_SCALAR, "the port the gateway listens on, e.g. 8080");
	cfg_require(c, v, "protocol", YN_SCALAR, "HTTP, HTTP2, GRPC, HTTPS, TLS or TCP");
}

static void parse_tls(struct cfg_ctx *c, const struct yn *v, struct cfg_gw_server *s)
{
	if (cfg_want_map(c, v) != 0)
		return;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "httpsRedirect")) {
			cfg_get_bool(c, x, &s->https_redirect);
			cfg_path_pop(c, pl);
			continue;
		}
		s->has_tls_settings = 1;
		if (s->tls_at == NULL)
			s->tls_at = v->keys[i];
		if (!strcmp(k, "mode")) {
			s->mode_at = x;
			if (cfg_get_str(c, x, 32, &s->tls_mode) == 0)
				for (char *q = s->tls_mode; *q; q++)
					if (*q >= 'a' && *q <= 'z')
						*q = (char)(*q - 'a' + 'A');
		} else if (!strcmp(k, "serverCertificate")) {
			cfg_get_str(c, x, CFG_MAX_STR, &s->cert_file);
		} else if (!strcmp(k, "privateKey")) {
			cfg_get_str(c, x, CFG_MAX_STR, &s->key_file);
		} else if (!strcmp(k, "caCertificates")) {
			cfg_get_str(c, x, CFG_MAX_STR, &s->ca_file);
		} else if (!strcmp(k, "credentialName")) {
			if (cfg_get_str(c, x, CFG_MAX_NAME, &s->credential) == 0 &&
			    (s->credential[0] == '.' || strchr(s->credential, '/') != NULL)) {
				cfg_err(c, x, "credentialName \"%.64s\" must be a plain name (it names a directory "
					"of the proxy's --credentials-dir)", s->credential);
			}
		} else if (!strcmp(k, "subjectAltNames") || !strcmp(k, "verifyCertificateSpki") ||
			   !strcmp(k, "verifyCertificateHash") || !strcmp(k, "caCrl")) {
			/* a check on the client's certificate Sinew does not make:
			 * the server is not opened rather than let more in */
			s->tls_unenforceable = 1;
			cfg_warn(c, v->keys[i], "%s is not implemented by Sinew's gateways; this server is not "
				 "opened (fail closed: it would admit clients the check refuses)", k);
		} else if (!strcmp(k, "minProtocolVersion") || !strcmp(k, "maxProtocolVersion") ||
			   !strcmp(k, "cipherSuites") || !strcmp(k, "credentialNames") || !strcmp(k, "tlsCertificates")) {
			cfg_warn_unimplemented(c, v->keys[i], !strcmp(k, "cipherSuites") || !strcmp(k, "minProtocolVersion") ||
						       !strcmp(k, "maxProtocolVersion")
					       ? "this TLS setting (Sinew's gateways take TLS 1.2 with ECDHE and AEAD "
						 "ciphers, and TLS 1.3)"
					       : "several certificates per server (one serverCertificate or credentialName)");
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
}

/* An HTTPS server: served when its TLS is SIMPLE or MUTUAL with a
 * certificate (files, or credentialName) Sinew can check. Returns 1 when
 * served; else warns why it is not opened. */
static int https_served(struct cfg_ctx *c, const struct yn *v, struct cfg_gw_server *s)
{
	const struct yn *at = s->mode_at ? s->mode_at : v;
	size_t pl = cfg_path_push(c, ".tls");
	int ok = 0;
	if (s->tls_mode == NULL) {
		cfg_warn(c, v, "a%s %s server needs tls.mode SIMPLE or MUTUAL and a certificate; this server "
			 "(port %u) is not opened", strcmp(s->protocol, "TLS") ? "n" : "", s->protocol, s->port);
	} else if (!strcmp(s->tls_mode, "PASSTHROUGH")) {
		/* the client's TLS goes through whole, routed by its server name */
		s->passthrough = 1;
		ok = 1;
		if (s->credential != NULL || s->cert_file != NULL || s->key_file != NULL || s->ca_file != NULL)
			cfg_warn(c, at, "certificates are not used with tls.mode PASSTHROUGH (the gateway does not "
				 "terminate TLS there)");
	} else if (!strcmp(s->tls_mode, "ISTIO_MUTUAL")) {
		/* the mesh's mTLS, with the gateway's own SPIFFE certificate
		 * (an egress gateway's sidecars call it so) */
		ok = 1;
		if (s->credential != NULL || s->cert_file != NULL || s->key_file != NULL || s->ca_file != NULL)
			cfg_warn(c, at, "certificates are not used with tls.mode ISTIO_MUTUAL (the gateway uses its "
				 "mesh identity)");
	} else if (strcmp(s->tls_mode, "SIMPLE") && strcmp(s->tls_mode, "MUTUAL")) {
		cfg_warn(c, at, "tls.mode %s is not served by Sinew's gateways yet (SIMPLE, MUTUAL, ISTIO_MUTUAL and "
			 "PASSTHROUGH are); this "
			 "server (port %u) is not opened", s->tls_mode, s->port);
	} else if (s->credential == NULL && (s->cert_file == NULL || s->key_file == NULL)) {
		cfg_err(c, at, "tls.mode %s needs credentialName, or serverCertificate and privateKey (PEM files)",
			s->tls_mode);
	} else if (!strcmp(s->tls_mode, "MUTUAL") && s->credential == NULL && s->ca_file == NULL) {
		cfg_err(c, at, "tls.mode MUTUAL needs caCertificates (the PEM file that verifies clients), or "
			"credentialName");
	} else if (!s->tls_unenforceable) {
		ok = 1;
	}
	cfg_path_pop(c, pl);
	return ok;
}

static void parse_server(struct cfg_ctx *c, const struct yn *v, struct cfg_gw_server *s)
{
	s->loc = cfg_loc_of(v);
	const struct yn *tls = NULL;
	for (size_t i = 0; i < v->n; i++) {
		const char *k = v->keys[i]->s;
		const struct yn *x = v->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "port")) {
			parse_port(c, x, s);
		} else if (!strcmp(k, "hosts")) {
			char **hosts = NULL;
			struct cfg_loc *locs = NULL;
			size_t n = 0;
			if (cfg_get_str_list(c, x, CFG_MAX_NAME + 64, &hosts, &n, &locs) == 0 && n > 0) {
				s->hosts = sn_arena_new_array(c->a, struct cfg_gw_host, n);
				for (size_t j = 0; s->hosts != NULL && j < n; j++) {
					size_t ql = cfg_path_push(c, "[%zu]", j);
					struct yn at = { .line = locs[j].line, .col = locs[j].col };
					if (parse_host(c, &at, hosts[j], &s->hosts[s->n_hosts]) == 0)
						s->n_hosts++;
					cfg_path_pop(c, ql);
				}
			}
		} else if (!strcmp(k, "tls")) {
			tls = x;
			parse_tls(c, x, s);
		} else if (!strcmp(k, "name")) {
			cfg_get_str(c, x, CFG_MAX_NAME, &s->name);
		} else if (!strcmp(k, "bind")) {
			cfg_warn_unimplemented(c, v->keys[i], "bind (the gateway proxy listens on every address of its "
					       "host or pod)");
		} else if (!strcmp(k, "defaultEndpoint")) {
			cfg_warn_unimplemented(c, v->keys[i], "defaultEndpoint");
		} else {
			cfg_warn_unknown(c, v->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	cfg_require(c, v, "port", YN_MAP, "the port, e.g. {number: 8080, name: http, protocol: HTTP}");
	cfg_require(c, v, "hosts", YN_SEQ, "the hosts this server takes, e.g. [\"*\"] or [\"bookinfo.example.com\"]");
	if (s->protocol == NULL)
		return;
	static const char *const served[] = { "HTTP", "HTTP2", "GRPC", "GRPC-WEB" };
	int ok = 0;
	for (size_t i = 0; i < SN_ARRAY_LEN(served); i++)
		if (!strcmp(s->protocol, served[i]))
			ok = 1;
	if (!strcmp(s->protocol, "HTTPS")) {
		s->served = https_served(c, v, s);
		return;
	}
	if (!strcmp(s->protocol, "TLS") && s->tls_mode != NULL && !strcmp(s->tls_mode, "PASSTHROUGH")) {
		s->passthrough = 1;
		s->served = 1;
		return;
	}
	if (!strcmp(s->protocol, "TLS")) {
		/* TLS terminated at the gateway, then bytes: tcp[] routes (Istio's
		 * TLS server with SIMPLE, MUTUAL or ISTIO_MUTUAL) */
		s->served = https_served(c, v, s);
		s->tcp = !s->passthrough;
		return;
	}
	/* opaque bytes, routed by tcp[]; Istio proxies MONGO, MYSQL and REDIS
	 * ports as TCP too (their protocol filters only add statistics) */
	static const char *const bytes[] = { "TCP", "MONGO", "MYSQL", "REDIS" };
	for (size_t i = 0; i < SN_ARRAY_LEN(bytes) && !ok; i++)
		if (!strcmp(s->protocol, bytes[i]))
			ok = s->tcp = 1;
	if (!ok) {
		static const char *const known[] = { "UDP" };
		int is_known = 0;
		for (size_t i = 0; i < SN_ARRAY_LEN(known); i++)
			if (!strcmp(s->protocol, known[i]))
				is_known = 1;
		size_t pl = cfg_path_push(c, ".port.protocol");
		if (is_known)
			cfg_warn(c, v, "protocol %s is not served by Sinew's gateways yet; this server (port %u) is "
				 "not opened (HTTP, HTTP2, GRPC, HTTPS, TLS and TCP are)", s->protocol, s->port);
		else
			cfg_err(c, v, "unknown protocol \"%.32s\"; use HTTP, HTTP2, GRPC, HTTPS, TLS or TCP", s->protocol);
		cfg_path_pop(c, pl);
		return;
	}
	if (s->has_tls_settings) {
		/* TLS fields on a plain-text server: Istio uses them only for
		 * HTTPS/TLS servers; say so rather than drop them unseen. */
		size_t pl = cfg_path_push(c, ".tls");
		if (s->tcp)
			cfg_warn(c, s->tls_at ? s->tls_at : tls, "TLS settings on a %s server are not used: its "
				 "bytes go through as they come (for TLS routed by server name, make it protocol TLS "
				 "with tls.mode PASSTHROUGH)", s->protocol);
		else
			cfg_warn(c, s->tls_at ? s->tls_at : tls, "TLS settings on a %s server are not used (only "
				 "httpsRedirect is); to terminate TLS, make it protocol HTTPS", s->protocol);
		s->https_redirect = s->https_redirect && !s->tcp;
		cfg_path_pop(c, pl);
	}
	s->served = 1;
}

struct cfg_gateway *cfg_parse_gateway(struct cfg_ctx *c, const struct yn *spec)
{
	struct cfg_gateway *g = sn_arena_new(c->a, struct cfg_gateway);
	if (g == NULL)
		return NULL;
	for (size_t i = 0; i < spec->n; i++) {
		const char *k = spec->keys[i]->s;
		const struct yn *v = spec->items[i];
		size_t pl = cfg_path_push(c, ".%s", k);
		if (!strcmp(k, "selector")) {
			if (cfg_get_labels(c, v, &g->selector) == 0)
				g->has_selector = 1;
		} else if (!strcmp(k, "servers")) {
			if (cfg_want_seq(c, v, CFG_MAX_LIST) == 0) {
				g->servers = sn_arena_new_array(c->a, struct cfg_gw_server, v->n ? v->n : 1);
				if (g->servers == NULL)
					return NULL;
				for (size_t j = 0; j < v->n; j++) {
					size_t ql = cfg_path_push(c, "[%zu]", j);
					if (cfg_want_map(c, v->items[j]) == 0)
						parse_server(c, v->items[j], &g->servers[g->n_servers++]);
					cfg_path_pop(c, ql);
				}
			}
		} else {
			cfg_warn_unknown(c, spec->keys[i]);
		}
		cfg_path_pop(c, pl);
	}
	cfg_require(c, spec, "servers", YN_SEQ, "list the ports, e.g. [{port: {number: 8080, name: http, "
		    "protocol: HTTP}, hosts: [\"*\"]}]");
	return g;
}

int cfg_gateway_ref_names(const char *ref, const char *vs_ns, const char *gw_ns, const char *gw_name)
{
	const char *slash = strchr(ref, '/');
	if (slash == NULL)
		return !strcmp(vs_ns, gw_ns) && !strcmp(ref, gw_name);
	size_t nl = (size_t)(slash - ref);
	return strlen(gw_ns) == nl && !strncmp(ref, gw_ns, nl) && !strcmp(slash + 1, gw_name);
}
