/* Identity on the mesh port (docs/internals/identity.md, "Certificates
 * over the control link" and "Root rotation"): the port's own TLS
 * identity (spiffe://TD/ns/sinew-system/sa/sinewd, issued by our CA to a
 * key made here), certificates for proxies — to a join token on a link
 * without a client certificate, or to the link's own mTLS identity for
 * renewal — the trust bundle pushed to every proxy, and the rotation of
 * the CA in three phases:
 *
 *   stable ──rotate──▶ distributing ──every proxy acked the bundle
 *   (old+new roots)──▶ migrating (new issuer; proxies told to renew)
 *   ──every proxy acked a leaf of the new issuer──▶ stable (old root gone)
 *
 * so that no proxy ever meets a certificate it cannot verify. Loop thread
 * only. */
#include <errno.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "sinew/identity.h"
#include "sinew/log.h"
#include "sinew/tls_stream.h"
#include "mesh_internal.h"

#define CA_TICK_MS 500
#define PHASE_TIMEOUT_MS (10 * 60 * 1000)   /* a phase waits this long for a silent proxy */
#define RESTART_HOLD_MS (MESH_LEASE_MS + 5000)  /* proxies reconnect within their backoff (10 s max) */
#define MAX_CSR 8192
#define MAX_TOKEN 1024

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static const char *phase_name(const struct sn_mesh *m)
{
	return sn_ca_phase_str(sn_ca_service_phase(m->ca));
}

/* A link with a verified mTLS identity (a proxy holding a leaf of ours). */
static int has_identity(const struct sn_mesh_proxy *px)
{
	return px->peer_id != NULL;
}

/* ---- the rotation's roster ---------------------------------------------
 * A rotation waits for every proxy that held an mTLS link since it began,
 * also while one is disconnected (it may come back trusting only the old
 * root), up to the phase timeout. Keyed by node id. */

static struct ca_member *member(struct sn_mesh *m, const char *id, int add)
{
	for (size_t i = 0; i < m->n_members; i++)
		if (strcmp(m->members[i].id, id) == 0)
			return &m->members[i];
	if (!add)
		return NULL;
	if (m->n_members == m->cap_members) {
		size_t cap = m->cap_members ? m->cap_members * 2 : 16;
		struct ca_member *v = realloc(m->members, cap * sizeof(*v));
		if (v == NULL)
			return NULL;
		m->members = v;
		m->cap_members = cap;
	}
	struct ca_member *e = &m->members[m->n_members];
	if ((e->id = strdup(id)) == NULL)
		return NULL;
	e->bundle_acked = e->leaf_gen = 0;
	m->n_members++;
	return e;
}

static void roster_clear(struct sn_mesh *m)
{
	for (size_t i = 0; i < m->n_members; i++)
		free(m->members[i].id);
	m->n_members = 0;
}

static void send_out(struct sn_mesh_proxy *px, struct sn_out *o)
{
	if (!o->failed && px->conn != NULL && !px->gone && sn_xds_send(px->conn, o->p, o->len) != 0)
		sn_log(SN_LOG_WARN, "mesh: proxy %s (%s): send queue full; identity message dropped",
		       px->id ? px->id : "?", px->peer);
	sn_out_free(o);
}

/* ---- sinewd's own identity --------------------------------------------- */

/* Issues (again) the mesh port's certificate from the current issuer and
 * swaps it into the server context; with the bundle as it is now. */
static int self_issue(struct sn_mesh *m)
{
	struct sn_ca_issued is = { 0 };
	struct sn_ca_refusal why = { 0 };
	struct sn_trust_bundle *b = NULL;
	struct sn_id_error e = { 0 };
	char *csr = NULL, *chain = NULL;
	size_t csr_len = 0;
	int rc = -1;

	if (m->self_key == NULL && sn_workload_key_generate(&m->self_key) != 0)
		goto out;
	if (sn_workload_csr_pem(m->self_key, NULL, &csr, &csr_len) != 0)
		goto out;
	if (sn_ca_service_issue_for(m->ca, SN_SINEWD_NAMESPACE, SN_SINEWD_SERVICE_ACCOUNT, csr, csr_len, 0, &is,
				    &why) != 0) {
		sn_log(SN_LOG_ERROR, "ca: cannot issue the mesh port's certificate: %s", why.msg);
		goto out;
	}
	/* The chain ends with the root: a proxy bootstrapping from a join
	 * token finds there the root its token pins. After a switch the
	 * cross-certificate and the previous root come before it, so that a
	 * token minted before the switch finds its root and a path to it
	 * (leaf -> cross -> previous root); the cross comes before the
	 * self-signed root, since a verifier takes the first issuer it finds
	 * among the certificates sent. */
	const char *inter = sn_ca_service_chain_pem(m->ca);
	const char *cross = sn_ca_service_cross_pem(m->ca);
	const char *root = sn_ca_service_root_pem(m->ca);
	size_t l1 = strlen(is.certificate), l2 = strlen(inter), lx = strlen(cross), l3 = strlen(root);
	if ((chain = malloc(l1 + l2 + lx + l3 + 1)) == NULL)
		goto out;
	memcpy(chain, is.certificate, l1);
	memcpy(chain + l1, inter, l2);
	memcpy(chain + l1 + l2, cross, lx);
	memcpy(chain + l1 + l2 + lx, root, l3 + 1);
	const char *bpem = sn_ca_service_bundle_pem(m->ca);
	if (sn_trust_bundle_new(sn_ca_service_trust_domain(m->ca), &b) != 0 ||
	    sn_trust_bundle_add_pem(b, bpem, strlen(bpem), &e) != 0)
		goto out;
	struct sn_tls_identity id = { .key = m->self_key, .chain_pem = chain, .chain_len = l1 + l2 + lx + l3,
				     .bundle = b };
	struct sn_tls_ctx_opts so = { .role = SN_TLS_SERVER, .require_client_cert = 0, .no_resumption = 1 };
	if (m->tls == NULL ? sn_tls_ctx_new(&so, &id, &m->tls, &e) != 0 : sn_tls_ctx_update(m->tls, &id, &e) != 0) {
		sn_log(SN_LOG_ERROR, "ca: mesh port TLS context: %s", e.msg);
		goto out;
	}
	m->self_gen = sn_ca_service_issuer_gen(m->ca);
	m->self_bundle = sn_ca_service_bundle_version(m->ca);
	/* Half of what is left from now (notBefore is back-dated for skew). */
	int64_t now = now_s();
	m->self_renew_at = now + ((int64_t)is.not_after - now) / 2;
	sn_log(SN_LOG_INFO, "ca: mesh port identity %s, serial %s, renews at half-life", is.spiffe_id, is.serial);
	rc = 0;
out:
	sn_trust_bundle_free(b);
	sn_ca_issued_free(&is);
	free(csr);
	free(chain);
	return rc;
}

/* ---- messages to proxies ----------------------------------------------- */

static void send_bundle(struct sn_mesh *m, struct sn_mesh_proxy *px)
{
	struct sn_out o = { 0 };
	uint64_t v = sn_ca_service_bundle_version(m->ca);
	sn_out_printf(&o, "{\"type\":\"bundle\",\"version\":%llu,\"trust_domain\":", (unsigned long long)v);
	sn_out_json_cstr(&o, sn_ca_service_trust_domain(m->ca));
	sn_out_cstr(&o, ",\"bundle\":");
	sn_out_json_cstr(&o, sn_ca_service_bundle_pem(m->ca));
	sn_out_cstr(&o, "}");
	px->bundle_sent = v;
	send_out(px, &o);
}

static void send_renew(struct sn_mesh *m, struct sn_mesh_proxy *px)
{
	struct sn_out o = { 0 };
	sn_out_printf(&o, "{\"type\":\"renew\",\"within_ms\":%u,\"reason\":\"root rotation\"}", m->renew_spread_ms);
	px->renew_sent_gen = sn_ca_service_issuer_gen(m->ca);
	send_out(px, &o);
}

static void send_refused(struct sn_mesh_proxy *px, int status, const char *msg)
{
	struct sn_out o = { 0 };
	sn_out_printf(&o, "{\"type\":\"certificate_refused\",\"status\":%d,\"message\":", status);
	sn_out_json_cstr(&o, msg);
	sn_out_cstr(&o, "}");
	send_out(px, &o);
}

static void send_certificate(struct sn_mesh *m, struct sn_mesh_proxy *px, const struct sn_ca_issued *is)
{
	struct sn_out o = { 0 };
	sn_out_cstr(&o, "{\"type\":\"certificate\",\"spiffe_id\":");
	sn_out_json_cstr(&o, is->spiffe_id);
	sn_out_printf(&o, ",\"serial\":\"%s\",\"not_before\":%lld,\"not_after\":%lld,\"chain\":", is->serial,
		      (long long)is->not_before, (long long)is->not_after);
	/* leaf then intermediates, as one JSON string */
	struct sn_out chain = { 0 };
	sn_out_cstr(&chain, is->certificate);
	sn_out_cstr(&chain, sn_ca_service_chain_pem(m->ca));
	if (chain.failed)
		o.failed = 1;
	else
		sn_out_json_str(&o, chain.p, chain.len);
	sn_out_free(&chain);
	sn_out_printf(&o, ",\"bundle_version\":%llu,\"trust_domain\":",
		      (unsigned long long)sn_ca_service_bundle_version(m->ca));
	sn_out_json_cstr(&o, sn_ca_service_trust_domain(m->ca));
	sn_out_cstr(&o, ",\"bundle\":");
	sn_out_json_cstr(&o, sn_ca_service_bundle_pem(m->ca));
	sn_out_cstr(&o, "}");
	px->bundle_sent = sn_ca_service_bundle_version(m->ca);
	send_out(px, &o);
}

/* ---- the proxy's messages ---------------------------------------------- */

int mesh_ca_on_secure(struct sn_mesh_proxy *px)
{
	const char *id = sn_xds_peer_id(px->conn);
	struct sn_spiffe_id sid;
	struct sn_str ns, sa;

	if (id == NULL) {
		px->bootstrap = 1;   /* TLS without a client certificate: a csr with a token, nothing else */
		return 0;
	}
	if (sn_spiffe_id_parse(id, strlen(id), &sid, NULL) != 0 || sn_spiffe_id_workload(&sid, &ns, &sa) != 0) {
		sn_log(SN_LOG_WARN, "mesh: %s presented %s, which names no workload (/ns/NS/sa/SA); closing", px->peer,
		       id);
		return -1;
	}
	px->peer_id = sn_arena_strdup(&px->pool, id);
	px->peer_ns = sn_arena_strndup(&px->pool, ns.p, ns.len);
	px->peer_sa = sn_arena_strndup(&px->pool, sa.p, sa.len);
	if (px->peer_id == NULL || px->peer_ns == NULL || px->peer_sa == NULL)
		return -1;
	return 0;
}

/* The hello's claims against the link's identity. Returns NULL when they
 * agree, else why not. On an mTLS link, an unset namespace or service
 * account is taken from the certificate. */
const char *mesh_ca_check_hello(struct sn_mesh *m, struct sn_mesh_proxy *px)
{
	if (px->bootstrap)
		return "this link has no client certificate: it may carry only a csr with a join token; reconnect "
		       "with the certificate";
	if (!has_identity(px))
		return m->allow_plaintext || !sn_xds_secure(px->conn) ? NULL : "no identity";
	if (strcmp(px->ns, px->peer_ns) != 0)
		return "hello namespace differs from the namespace of the client certificate";
	if (px->sa == NULL || px->sa[0] == '\0') {
		px->sa = sn_arena_strdup(&px->pool, px->peer_sa);
	} else if (strcmp(px->sa, px->peer_sa) != 0) {
		return "hello service_account differs from the service account of the client certificate";
	}
	return px->sa != NULL ? NULL : "out of memory";
}

/* After a hello on an mTLS link: the bundle, and a renewal if a rotation
 * is migrating and this proxy's leaf is not from the new issuer. */
void mesh_ca_after_hello(struct sn_mesh *m, struct sn_mesh_proxy *px)
{
	if (!has_identity(px))
		return;
	if (sn_ca_service_phase(m->ca) != SN_CA_STABLE) {
		struct ca_member *e = member(m, px->id, 1);
		if (e != NULL && e->leaf_gen == sn_ca_service_issuer_gen(m->ca))
			px->leaf_gen = e->leaf_gen;   /* it renewed before it reconnected */
	}
	send_bundle(m, px);
	if (sn_ca_service_phase(m->ca) == SN_CA_MIGRATING && px->leaf_gen != sn_ca_service_issuer_gen(m->ca))
		send_renew(m, px);
}

/* A string field, copied, with its length; NULL if absent, longer than
 * max, or holding a NUL byte (JSON's \u0000: no PEM or token has one, and
 * the copy would be shorter than *len). Found by fuzz_control_message. */
static char *str_field(struct fy_node *root, const char *key, size_t max, size_t *len)
{
	struct fy_node *n = fy_node_mapping_lookup_by_string(root, key, FY_NT);
	const char *s;

	if (n == NULL || !fy_node_is_scalar(n) || (s = fy_node_get_scalar(n, len)) == NULL || *len > max ||
	    memchr(s, '\0', *len) != NULL)
		return NULL;
	return strndup(s, *len);
}

/* Renewal on an mTLS link (docs/internals/identity.md, "Renewal on the
 * link"): for the link's identity only. The certificate that opened the
 * link proves it while that certificate is valid; once it has expired
 * (the link outlived it: a proxy renews at half-life and keeps its link),
 * only the proxy's current certificate with a renewal signature over the
 * CSR does, checked as the HTTP API checks them. *proved notes the
 * latter for the log. */
static int renew_on_link(struct sn_mesh *m, struct sn_mesh_proxy *px, struct fy_node *root, const char *csr,
			 size_t csr_len, struct sn_ca_issued *is, struct sn_ca_refusal *why, char proved[160])
{
	int64_t now = now_s(), link_na = sn_xds_peer_not_after(px->conn);
	size_t cert_len = 0, sig_len = 0;
	char *cert, *sig;
	char when[32];
	int rc;

	if (link_na > now)
		return sn_ca_service_issue_for(m->ca, px->peer_ns, px->peer_sa, csr, csr_len, 0, is, why);
	time_t t = (time_t)link_na;
	struct tm tm;
	if (link_na <= 0 || gmtime_r(&t, &tm) == NULL || strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(when, sizeof(when), "an unknown time");
	cert = str_field(root, "certificate", SN_CA_MAX_CERT_PEM, &cert_len);
	sig = str_field(root, "signature", 1024, &sig_len);
	if (cert == NULL || sig == NULL) {
		why->status = 401;
		snprintf(why->msg, sizeof(why->msg), "the certificate this link was opened with expired at %s, so it no "
			 "longer proves %s; send the current certificate and a renewal signature with the csr, or "
			 "reconnect with the current certificate", when, px->peer_id);
		rc = SN_EINVAL;
	} else {
		rc = sn_ca_service_renew(m->ca, cert, cert_len, csr, csr_len, sig, sig_len, px->peer_id, 0, is, why);
		if (rc == 0)
			snprintf(proved, 160, " (the link's certificate expired at %s; proved by its current one)", when);
	}
	free(cert);
	free(sig);
	return rc;
}

void mesh_ca_on_csr(struct sn_mesh *m, struct sn_mesh_proxy *px, struct fy_node *root)
{
	struct sn_ca_issued is = { 0 };
	struct sn_ca_refusal why = { 0 };
	size_t csr_len = 0, tok_len = 0;
	char nonce[33] = "", proved[160] = "";
	char *csr = str_field(root, "csr", MAX_CSR, &csr_len);
	char *token = str_field(root, "token", MAX_TOKEN, &tok_len);
	int rc;

	if (csr == NULL) {
		send_refused(px, 400, "csr: a PEM certificate request (at most 8 KiB) is required");
		goto out;
	}
	if (has_identity(px)) {
		rc = renew_on_link(m, px, root, csr, csr_len, &is, &why, proved);
	} else if (px->bootstrap) {
		rc = sn_ca_service_issue(m->ca, token, token ? tok_len : 0, csr, csr_len, 0, &is, nonce, &why);
	} else {
		send_refused(px, 401, "certificates are issued only over TLS: to a join token, or to the link's own "
				      "client certificate");
		goto out;
	}
	if (rc != 0) {
		sn_log(SN_LOG_WARN, "ca: refused a certificate to %s%s%s%s: %s", px->peer,
		       px->peer_id ? " (" : "", px->peer_id ? px->peer_id : "", px->peer_id ? ")" : "", why.msg);
		send_refused(px, why.status, why.msg);
		goto out;
	}
	snprintf(px->issued_serial, sizeof(px->issued_serial), "%s", is.serial);
	px->issued_gen = sn_ca_service_issuer_gen(m->ca);
	sn_log(SN_LOG_INFO, "ca: issued %s (serial %s) to %s%s%s%s%s", is.spiffe_id, is.serial, px->peer,
	       nonce[0] ? " for token " : " renewing", nonce[0] ? nonce : "", nonce[0] ? "" : " its own identity",
	       proved[0] ? proved : "");
	send_certificate(m, px, &is);
	m->issued++;
out:
	sn_ca_issued_free(&is);
	if (token != NULL)
		OPENSSL_cleanse(token, tok_len);
	free(token);
	free(csr);
}

void mesh_ca_on_ack(struct sn_mesh *m, struct sn_mesh_proxy *px, struct fy_node *root)
{
	size_t l;
	char *serial = str_field(root, "serial", 64, &l);
	struct fy_node *bv = fy_node_mapping_lookup_by_string(root, "bundle_version", FY_NT);
	unsigned long long v = 0;

	if (bv != NULL && fy_node_is_scalar(bv))
		v = strtoull(fy_node_get_scalar0(bv), NULL, 10);
	if (v > px->bundle_acked && v <= sn_ca_service_bundle_version(m->ca))
		px->bundle_acked = v;
	if (serial != NULL && px->issued_serial[0] && strcmp(serial, px->issued_serial) == 0)
		px->leaf_gen = px->issued_gen;
	free(serial);
	struct ca_member *e = px->id != NULL ? member(m, px->id, 0) : NULL;
	if (e != NULL) {
		e->bundle_acked = SN_MAX(e->bundle_acked, px->bundle_acked);
		if (px->leaf_gen)
			e->leaf_gen = px->leaf_gen;
	}
	mesh_ca_progress(m);
}

/* ---- rotation ----------------------------------------------------------- */

static void broadcast_bundle(struct sn_mesh *m)
{
	for (struct sn_mesh_proxy *px = m->proxies; px != NULL; px = px->next)
		if (!px->gone && px->hello && has_identity(px))
			send_bundle(m, px);
}

/* The bundle changed: our own server context and every proxy. */
static void bundle_changed(struct sn_mesh *m)
{
	if (self_issue(m) != 0)
		sn_log(SN_LOG_ERROR, "ca: the mesh port keeps its previous certificate and bundle");
	broadcast_bundle(m);
}

int sn_mesh_ca_rotate(struct sn_mesh *m, const char *why, char *err, size_t es)
{
	int rc = sn_ca_service_rotate_begin(m->ca, 0, err, es);
	if (rc != 0)
		return rc;
	m->phase_since_ms = sn_loop_now(m->loop);
	roster_clear(m);
	for (struct sn_mesh_proxy *px = m->proxies; px != NULL; px = px->next)
		if (!px->gone && px->hello && has_identity(px))
			member(m, px->id, 1);
	sn_log(SN_LOG_INFO, "ca: rotation started (%s): distributing the new root to %zu proxies before it issues",
	       why, m->n_members);
	bundle_changed(m);
	mesh_ca_progress(m);
	return 0;
}

void mesh_ca_progress(struct sn_mesh *m)
{
	enum sn_ca_phase ph;
	size_t waiting = 0;
	char err[512] = "";
	uint64_t now = sn_loop_now(m->loop);

	if (m->ca == NULL)
		return;
	ph = sn_ca_service_phase(m->ca);
	if (ph == SN_CA_STABLE)
		return;
	if (now < m->hold_until_ms)
		return;
	uint64_t v = sn_ca_service_bundle_version(m->ca), gen = sn_ca_service_issuer_gen(m->ca);
	const char *first = NULL;
	for (size_t i = 0; i < m->n_members; i++) {
		const struct ca_member *e = &m->members[i];
		if (ph == SN_CA_DISTRIBUTING ? e->bundle_acked < v : e->leaf_gen != gen) {
			if (first == NULL)
				first = e->id;
			waiting++;
		}
	}
	int timed_out = now - m->phase_since_ms > m->phase_timeout_ms;
	if (waiting > 0 && !timed_out)
		return;
	if (waiting > 0)
		sn_log(SN_LOG_WARN, "ca: rotation: %zu proxies (%s%s) did not answer within %u s, connected or not; "
				    "going on without them (they will need a new token)",
		       waiting, first, waiting > 1 ? ", …" : "", m->phase_timeout_ms / 1000);
	if (ph == SN_CA_DISTRIBUTING) {
		if (sn_ca_service_rotate_switch(m->ca, err, sizeof(err)) != 0) {
			sn_log(SN_LOG_ERROR, "ca: rotation: cannot switch to the new issuer: %s", err);
			return;
		}
		m->phase_since_ms = now;
		sn_log(SN_LOG_INFO, "ca: rotation: every proxy trusts the new root; it issues now, proxies renew "
				    "within %u ms", m->renew_spread_ms);
		/* The mesh port keeps its leaf of the old root until the end:
		 * a proxy that missed the new bundle can still reconnect. */
		for (struct sn_mesh_proxy *px = m->proxies; px != NULL; px = px->next)
			if (!px->gone && px->hello && has_identity(px))
				send_renew(m, px);
	} else {
		if (sn_ca_service_rotate_finish(m->ca, err, sizeof(err)) != 0) {
			sn_log(SN_LOG_ERROR, "ca: rotation: cannot drop the old root: %s", err);
			return;
		}
		m->phase_since_ms = now;
		roster_clear(m);
		char fp[65];
		sn_ca_service_root_sha256_hex(m->ca, fp);
		sn_log(SN_LOG_INFO, "ca: rotation done: every proxy holds a leaf of root %s; the old root leaves the "
				    "bundle", fp);
		bundle_changed(m);
	}
}

static void on_tick(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_mesh *m = sn_container_of(t, struct sn_mesh, ca_timer);
	int64_t now = now_s();

	int cross_gone = sn_ca_service_expire_cross(m->ca, (time_t)now);
	if (now >= m->self_renew_at || cross_gone ||
	    (sn_ca_service_phase(m->ca) == SN_CA_STABLE && m->self_gen != sn_ca_service_issuer_gen(m->ca)))
		self_issue(m);
	if (sn_ca_service_phase(m->ca) == SN_CA_STABLE && !m->no_auto_rotate) {
		/* Automatic rotation once a third of the issuer's life is left. */
		time_t nb, na = sn_ca_service_issuer_not_after(m->ca, &nb);
		char err[512];
		if (na - now < (na - nb) / 3 && sn_mesh_ca_rotate(m, "the CA expires soon", err, sizeof(err)) != 0)
			sn_log(SN_LOG_ERROR, "ca: automatic rotation: %s", err);
	}
	mesh_ca_progress(m);
	sn_timer_start(loop, &m->ca_timer, CA_TICK_MS, on_tick);
}

int mesh_ca_start(struct sn_mesh *m, const struct sn_mesh_opts *o)
{
	m->ca = o->ca;
	m->allow_plaintext = o->allow_plaintext;
	m->no_auto_rotate = o->no_auto_rotate;
	m->renew_spread_ms = o->renew_spread_ms ? o->renew_spread_ms : 5000;
	m->phase_timeout_ms = o->phase_timeout_ms ? o->phase_timeout_ms : PHASE_TIMEOUT_MS;
	if (m->ca == NULL)
		return 0;
	if (self_issue(m) != 0)
		return SN_EINVAL;
	m->phase_since_ms = sn_loop_now(m->loop);
	if (sn_ca_service_phase(m->ca) != SN_CA_STABLE) {
		/* Restarted mid-rotation: who took part is not known; wait for
		 * the proxies to reconnect and report before going on. */
		m->hold_until_ms = m->phase_since_ms + RESTART_HOLD_MS;
		sn_log(SN_LOG_INFO, "ca: a rotation is %s; waiting %d s for proxies to reconnect before it goes on",
		       phase_name(m), RESTART_HOLD_MS / 1000);
	}
	sn_timer_start(m->loop, &m->ca_timer, CA_TICK_MS, on_tick);
	return 0;
}

void mesh_ca_stop(struct sn_mesh *m)
{
	if (m->ca != NULL)
		sn_timer_stop(m->loop, &m->ca_timer);
}

void mesh_ca_free(struct sn_mesh *m)
{
	roster_clear(m);
	free(m->members);
	m->members = NULL;
	sn_tls_ctx_free(m->tls);
	m->tls = NULL;
	EVP_PKEY_free(m->self_key);
	m->self_key = NULL;
}

void mesh_ca_render_proxy(const struct sn_mesh *m, const struct sn_mesh_proxy *px, struct sn_out *o)
{
	sn_out_cstr(o, ",\"mtls\":");
	sn_out_cstr(o, has_identity(px) ? "true" : "false");
	sn_out_cstr(o, ",\"spiffeId\":");
	sn_out_json_cstr(o, px->peer_id);
	/* the certificate the proxy presents on its link now: its leaf */
	int64_t na = has_identity(px) && px->conn != NULL ? sn_xds_peer_not_after(px->conn) : 0;
	if (na > 0)
		sn_out_printf(o, ",\"leafNotAfter\":%lld,\"leafExpiresInSeconds\":%lld", (long long)na,
			      (long long)(na - now_s()));
	if (m->ca != NULL && has_identity(px) && sn_ca_service_phase(m->ca) != SN_CA_STABLE)
		sn_out_printf(o, ",\"rotation\":{\"phase\":\"%s\",\"bundleAcked\":%s,\"leafFromNewIssuer\":%s}",
			      phase_name(m), px->bundle_acked >= sn_ca_service_bundle_version(m->ca) ? "true" : "false",
			      px->leaf_gen == sn_ca_service_issuer_gen(m->ca) ? "true" : "false");
}
