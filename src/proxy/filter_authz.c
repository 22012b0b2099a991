/* AuthorizationPolicy on the inbound path (docs/security.md), as a
 * filter. Judges the request on what its connection offers: the
 * principal and namespace of the client's SPIFFE ID over mutual TLS (none
 * over plaintext), the peer address, the app's port, authority, method,
 * path and headers. A CUSTOM policy that selects the request asks its
 * provider first (filter_extauthz.c). A denial is answered 403
 * rbac_denied, naming the policy; an AUDIT match is logged. */
#include <arpa/inet.h>
#include <string.h>

#include "sinew/log.h"
#include "filter.h"

void sn__authz_peer(struct sn_authz_request *ar, const char *peer, const char *peer_id, struct sn_addr *storage)
{
	if (peer_id != NULL && strncmp(peer_id, "spiffe://", 9) == 0) {
		/* spiffe://TD/ns/NS/sa/SA: principal "TD/ns/NS/sa/SA", namespace NS. */
		const char *id = peer_id + 9;
		ar->principal = sn_str_make(id, strlen(id));
		const char *ns = strstr(id, "/ns/");
		if (ns != NULL) {
			ns += 4;
			const char *end = strchr(ns, '/');
			ar->source_namespace = sn_str_make(ns, end ? (size_t)(end - ns) : strlen(ns));
		}
	}
	if (peer != NULL && sn_addr_parse(peer, storage) == 0)
		ar->source = (const struct sockaddr *)&storage->ss;
}

uint16_t sn__inbound_port(struct sn_exchange *ex)
{
	const struct sockaddr_storage *app = &sn_fx_worker(ex)->proxy->opt.app.ss;
	if (sn_fx_app_port(ex))
		return sn_fx_app_port(ex);
	if (app->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)app)->sin_port);
	if (app->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)app)->sin6_port);
	return 0;
}

static enum sn_filter_verdict authz_request(struct sn_exchange *ex)
{
	struct sn_worker *w = sn_fx_worker(ex);
	const struct sn_snapshot *s = w->snap;
	const struct sn_h1_request *rq = sn_fx_request(ex);
	uint64_t *st = sn_fx_state(ex);
	struct sn_authz_request ar;
	struct sn_authz_result res;
	struct sn_addr peer;

	if (s == NULL || (s->n_authz == 0 && s->peer_auth.unenforceable == NULL))
		return SN_FILTER_NEXT;
	memset(&ar, 0, sizeof(ar));
	if ((*st & ~7ull) != 0) {
		/* A CUSTOM policy's provider was asked: its verdict first. */
		enum sn_filter_verdict v = sn__extauthz_verdict(ex, st);
		if (v != SN_FILTER_NEXT)
			return v;
		ar.custom_allowed = 1;
	}
	sn__authz_peer(&ar, sn_fx_peer(ex), sn_fx_peer_id(ex), &peer);
	ar.port = sn__inbound_port(ex);
	ar.host = rq->authority;
	ar.method = rq->method;
	ar.path = rq->path;
	ar.headers = rq->headers;
	ar.n_headers = rq->num_headers;
	sn_fx_request_auth(ex, &ar.request_principal, &ar.claims);
	for (;;) {
		sn_authz_check(s, &ar, &res);
		if (res.provider == NULL || ar.custom_allowed)
			break;
		/* A CUSTOM policy selects the request: its provider decides
		 * (filter_extauthz.c), then the DENY and ALLOW policies. */
		enum sn_filter_verdict v = sn__extauthz_start(ex, st, res.provider, res.policy);
		if (v != SN_FILTER_NEXT)
			return v;
		ar.custom_allowed = 1;   /* allowed at once: failOpen */
	}
	if (res.audited)
		sn_log(SN_LOG_INFO, "conn=%llu audit: %.*s %.*s from %s matched AUDIT policy %s (%s)",
		       (unsigned long long)sn_fx_conn_id(ex), (int)rq->method.len, rq->method.p,
		       (int)SN_MIN(rq->path.len, 256), rq->path.p, sn_fx_peer(ex), res.audit_policy,
		       res.decision == SN_AUTHZ_DECISION_DENY ? "denied" : "allowed");
	if (res.decision == SN_AUTHZ_DECISION_ALLOW) {
		sn_metrics_add(w->metrics, SN_CTR_AUTHZ_ALLOW, 1);
		return SN_FILTER_NEXT;
	}
	sn_metrics_add(w->metrics, SN_CTR_AUTHZ_DENY, 1);
	if (!strcmp(res.reason, "policy_unenforceable"))
		sn_fx_answer(ex, 403, res.reason,
			     "RBAC: access denied (sinew: policy %s has fields Sinew does not know, so it cannot be "
			     "enforced as written and denies every request it covers; `sinew analyze` names them)",
			     res.policy);
	else
		sn_fx_answer(ex, 403, res.reason, "RBAC: access denied (sinew: %s)", res.policy);
	return SN_FILTER_ANSWERED;
}

static void authz_done(struct sn_exchange *ex, const struct sn_fx_summary *s)
{
	(void)s;
	sn__extauthz_done(sn_fx_state(ex));
}

const struct sn_filter sn_filter_authz = {
	.name = "authz",
	.dirs = SN_FILTER_INBOUND,
	.request_head = authz_request,
	.done = authz_done,
};
