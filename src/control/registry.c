/* The workload registry: a proxy whose hello has `inbound` registers its
 * workload as a generated WorkloadEntry "proxy-<id>" in its namespace,
 * with its labels (plus app=<service> when it has no app label, the
 * convention Services select on), service account and address, and one
 * port per named port of every Service in its namespace that selects it,
 * all pointing at its inbound listener. The entry takes part in
 * translation for every proxy like an applied one, is validated by the
 * same loader, and is never written to the store. Its resourceVersion is
 * "reg-" and a hash of its text: it changes exactly when the entry does,
 * and is the same after a sinewd restart, so a proxy that reconnects
 * holding it gets nothing new.
 *
 * It leaves when the link closes or nothing was heard for the lease
 * (MESH_LEASE_MS; checked every MESH_LEASE_CHECK_MS). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinew/log.h"
#include "mesh_internal.h"

static int name_char_ok(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.';
}

/* A DNS-1123-ish name that the config library accepts as metadata.name. */
static int reg_name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max || s[0] == '.' || s[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!name_char_ok(s[i]))
			return 0;
	return 1;
}

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

void registry_clear(struct sn_mesh_proxy *px)
{
	free(px->reg_name);
	free(px->reg_text);
	free(px->reg_rv);
	free(px->reg_error);
	sn_labels_free(&px->reg_labels);
	px->reg_name = px->reg_text = px->reg_rv = px->reg_error = NULL;
	px->registered = 0;
}

const char *registry_prepare(struct sn_mesh_proxy *px)
{
	char host[64];
	const char *in = px->inbound;
	const char *colon = strrchr(in, ':');
	char *end;

	if (colon == NULL || colon == in || (size_t)(colon - in) >= sizeof(host))
		return "node.inbound is not ADDRESS:PORT";
	long port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || port < 1 || port > 65535)
		return "node.inbound has no valid port";
	memcpy(host, in, (size_t)(colon - in));
	host[colon - in] = '\0';
	if (host[0] == '[') {
		size_t hl = strlen(host);
		if (hl < 3 || host[hl - 1] != ']')
			return "node.inbound: an IPv6 address goes in brackets";
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	unsigned char buf[16];
	if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1)
		return "node.inbound is not an IP address and port";
	if (!strcmp(host, "0.0.0.0") || !strcmp(host, "::"))
		return "node.inbound is a wildcard address; other proxies cannot reach it";
	if (!reg_name_ok(px->id, MESH_MAX_ID))
		return "node.id must be lower-case letters, digits, '-' and '.' (at most 200)";
	if (!reg_name_ok(px->ns, 63))
		return "node.namespace must be lower-case letters, digits, '-' and '.'";
	registry_clear(px);
	snprintf(px->reg_address, sizeof(px->reg_address), "%s", host);
	px->reg_port = (uint16_t)port;
	size_t nl = strlen(MESH_REG_PREFIX) + strlen(px->id) + 1;
	px->reg_name = malloc(nl);
	if (px->reg_name == NULL || sn_labels_dup(&px->reg_labels, &px->labels) != 0)
		return "out of memory";
	snprintf(px->reg_name, nl, "%s%s", MESH_REG_PREFIX, px->id);
	if (px->service != NULL && px->service[0] && sn_labels_get(&px->reg_labels, "app") == NULL) {
		struct sn_label *v = realloc(px->reg_labels.v, (px->reg_labels.n + 1) * sizeof(*v));
		if (v == NULL)
			return "out of memory";
		px->reg_labels.v = v;
		v[px->reg_labels.n].key = strdup("app");
		v[px->reg_labels.n].value = strdup(px->service);
		if (v[px->reg_labels.n].key == NULL || v[px->reg_labels.n].value == NULL) {
			free(v[px->reg_labels.n].key);
			free(v[px->reg_labels.n].value);
			return "out of memory";
		}
		px->reg_labels.n++;
	}
	/* A workload whose proxy holds our certificate takes mutual TLS:
	 * clients use it without a DestinationRule saying so (Istio's auto
	 * mTLS keys on the same label). Not a gateway: its ports are the
	 * Gateways' (plain text unless a server says ISTIO_MUTUAL), as
	 * Istio's gateways carry no such label. */
	if (px->peer_id != NULL && !px->gateway && sn_labels_get(&px->reg_labels, SN_TLS_MODE_LABEL) == NULL) {
		struct sn_label *v = realloc(px->reg_labels.v, (px->reg_labels.n + 1) * sizeof(*v));
		if (v == NULL)
			return "out of memory";
		px->reg_labels.v = v;
		v[px->reg_labels.n].key = strdup(SN_TLS_MODE_LABEL);
		v[px->reg_labels.n].value = strdup("istio");
		if (v[px->reg_labels.n].key == NULL || v[px->reg_labels.n].value == NULL) {
			free(v[px->reg_labels.n].key);
			free(v[px->reg_labels.n].value);
			return "out of memory";
		}
		px->reg_labels.n++;
	}
	px->registered = 1;
	return NULL;
}

void registry_render(struct sn_mesh *m, struct sn_mesh_proxy *px, const struct view_res *const *svcs,
		     size_t n_svcs)
{
	struct sn_out o = { 0 };
	const char *names[256];
	size_t n_names = 0;

	sn_out_cstr(&o, "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: ");
	sn_out_cstr(&o, px->reg_name);
	sn_out_cstr(&o, "\n  namespace: ");
	sn_out_cstr(&o, px->ns);
	sn_out_cstr(&o, "\nspec:\n  address: ");
	sn_out_json_cstr(&o, px->reg_address);
	sn_out_cstr(&o, "\n  serviceAccount: ");
	sn_out_json_cstr(&o, px->sa && px->sa[0] ? px->sa : "default");
	sn_out_cstr(&o, "\n  labels:");
	if (px->reg_labels.n == 0)
		sn_out_cstr(&o, " {}");
	for (size_t i = 0; i < px->reg_labels.n; i++) {
		sn_out_cstr(&o, "\n    ");
		sn_out_json_cstr(&o, px->reg_labels.v[i].key);
		sn_out_cstr(&o, ": ");
		sn_out_json_cstr(&o, px->reg_labels.v[i].value);
	}
	sn_out_cstr(&o, "\n  ports:");
	for (size_t s = 0; s < n_svcs; s++) {
		const struct view_res *sv = svcs[s];
		const struct sn_labels *sel = sn_service_selector(sv->set.head);
		struct sn_port_info sp;
		if (strcmp(sv->ns, px->ns) || sel == NULL || !sn_labels_match(sel, &px->reg_labels))
			continue;
		for (size_t p = 0; sn_service_port_at(sv->set.head, p, &sp) == 0; p++) {
			const char *pn = sp.name;
			int seen = 0;
			if (pn == NULL || pn[0] == '\0')
				continue; /* an unnamed port reaches the Service's targetPort */
			for (size_t k = 0; k < n_names; k++)
				seen |= !strcmp(names[k], pn);
			if (seen || n_names == SN_ARRAY_LEN(names))
				continue;
			names[n_names++] = pn;
			sn_out_cstr(&o, "\n    ");
			sn_out_json_cstr(&o, pn);
			/* A pod with capture takes every port at its address (the
			 * REDIRECT rule), and a gateway listens on its Gateways'
			 * ports: each Service port reaches its targetPort.
			 * Otherwise every port reaches the proxy's one inbound. */
			uint16_t tp = sp.target_port ? sp.target_port : sp.port;
			sn_out_printf(&o, ": %u", (px->capture || px->gateway) && tp ? tp : px->reg_port);
		}
	}
	if (n_names == 0)
		sn_out_cstr(&o, " {}");
	sn_out_cstr(&o, "\n");
	if (o.failed) {
		sn_out_free(&o);
		return;
	}
	if (px->reg_text != NULL && !strcmp(px->reg_text, o.p)) {
		sn_out_free(&o);
		return;
	}
	/* New text: validate it with the loader the proxies run. */
	struct sn_config_set set;
	struct sn_diags d;
	char rv[32];
	sn_config_set_init(&set);
	sn_diags_init(&d);
	sn_config_load_text(&set, "sinewd-registry", o.p, o.len, &d);
	free(px->reg_error);
	px->reg_error = NULL;
	if (d.errors > 0) {
		char line[1024] = "";
		for (size_t i = 0; i < d.n; i++)
			if (d.v[i].severity == SN_DIAG_ERROR) {
				sn_diag_format(&d.v[i], line, sizeof(line));
				break;
			}
		px->reg_error = strdup(line);
		sn_log(SN_LOG_WARN, "registry: proxy %s (%s) not registered: its WorkloadEntry does not validate: %s",
		       px->id, px->peer, line);
	}
	sn_diags_free(&d);
	sn_config_set_free(&set);
	snprintf(rv, sizeof(rv), "reg-%016llx", (unsigned long long)fnv1a(o.p, o.len));
	free(px->reg_text);
	free(px->reg_rv);
	px->reg_text = o.p; /* takes the buffer */
	px->reg_rv = strdup(rv);
	if (px->reg_rv == NULL) {
		free(px->reg_text);
		px->reg_text = NULL;
	}
	(void)m;
}

/* Lease: a proxy not heard from for MESH_LEASE_MS loses its link (and so
 * its registration); it reconnects when it is alive. */
static void on_lease_timer(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_mesh *m = sn_container_of(t, struct sn_mesh, lease_timer);
	uint64_t now = sn_loop_now(loop);

	for (struct sn_mesh_proxy *px = m->proxies; px != NULL; px = px->next) {
		if (px->gone || px->conn == NULL || now - px->last_heard_ms <= MESH_LEASE_MS)
			continue;
		/* What it sent waits in the socket: the loop was busy (thousands
		 * of proxies reconnecting at once), the proxy was not silent. */
		if (sn_xds_has_unread(px->conn))
			continue;
		sn_log(SN_LOG_WARN, "registry: proxy %s (%s) silent for %llu ms, past the %d ms lease; dropping it",
		       px->id ? px->id : "?", px->peer, (unsigned long long)(now - px->last_heard_ms), MESH_LEASE_MS);
		sn_xds_close(px->conn, "lease expired");
	}
	sn_timer_start(loop, &m->lease_timer, MESH_LEASE_CHECK_MS, on_lease_timer);
}

/* End of the start-up grace: registered entries that proxies still hold
 * and nobody re-registered are removed now. */
static void on_grace_timer(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_mesh *m = sn_container_of(t, struct sn_mesh, grace_timer);
	m->grace_over = 1;
	sn_strmap_free(&m->seen_regs);
	mesh_changed_all(m);   /* what proxies kept for the grace goes now */
}

void registry_start(struct sn_mesh *m)
{
	m->grace_until_ms = sn_loop_now(m->loop) + MESH_LEASE_MS;
	sn_timer_start(m->loop, &m->lease_timer, MESH_LEASE_CHECK_MS, on_lease_timer);
	sn_timer_start(m->loop, &m->grace_timer, MESH_LEASE_MS, on_grace_timer);
}

void registry_stop(struct sn_mesh *m)
{
	sn_timer_stop(m->loop, &m->lease_timer);
	sn_timer_stop(m->loop, &m->grace_timer);
}
