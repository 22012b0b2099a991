/* The proxy's identity from sinewd (`--token`; DESIGN.md §5,
 * docs/internals/identity.md "Certificates over the control link").
 *
 * With a join token and no certificate yet, the control link is TLS
 * without a client certificate, trusting sinewd only through the root
 * pinned in the token; the proxy sends a CSR for a key it made (the key
 * never leaves it) with the token, installs what comes back and
 * reconnects with mutual TLS. From then on it renews at half-life (±10 %)
 * over that mTLS link, takes bundle updates, renews early when sinewd asks
 * (root rotation), and swaps the contexts in place: connections made
 * before a swap keep their certificate until they end. Main loop only;
 * workers read p->tls_server / p->tls_client with acquire loads. */
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "sinew/control.h"
#include "sinew/identity.h"
#include "sinew/join_token.h"
#include "sinew/json.h"
#include "sinew/log.h"
#include "sinew/tls_stream.h"
#include "sinew/xds.h"
#include "proxy.h"

#define RETRY_MS 2000
#define CSR_ANSWER_MS 30000   /* a renewal CSR unanswered this long is sent again */

struct sn_ident {
	struct sn_proxy *p;
	struct sn_join_token token;       /* parsed, not authenticated */
	struct sn_tls_ctx *bootstrap;     /* pinned root, no certificate */
	struct sn_tls_ctx *cp_ctx;        /* mTLS to sinewd, once we have a leaf */
	char sinewd_id[SN_SPIFFE_ID_MAX + 1];
	EVP_PKEY *key;                    /* the installed leaf's key */
	char *chain;                      /* the installed leaf + intermediates */
	char *bundle_pem;
	uint64_t bundle_version;
	char serial[41];
	time_t not_after;
	EVP_PKEY *pending;                /* key of a CSR in flight */
	int renew_due;                    /* renew on the next open link */
	struct sn_timer renew_timer;
	uint64_t rng;
	uint64_t renewals;
	char last_error[256];
};

static uint32_t rnd(struct sn_ident *id, uint32_t below)
{
	id->rng = id->rng * 6364136223846793005ull + 1442695040888963407ull;
	return below ? (uint32_t)((id->rng >> 33) % below) : 0;
}

int sn_ident_init(struct sn_proxy *p)
{
	struct sn_ident *id = calloc(1, sizeof(*id));
	struct sn_id_error e = { 0 };
	const char *tok = p->opt.token;

	if (id == NULL)
		return SN_ENOMEM;
	id->p = p;
	id->rng = sn_clock_us() ^ ((uint64_t)getpid() << 20);
	p->ident = id;
	if (sn_join_token_parse(tok, strlen(tok), &id->token, &e) != 0) {
		sn_log(SN_LOG_ERROR, "--token: %s; mint one with `sinew token create --service-account SA`", e.msg);
		return SN_EINVAL;
	}
	snprintf(id->sinewd_id, sizeof(id->sinewd_id), "spiffe://%s/ns/%s/sa/%s", id->token.trust_domain,
		 SN_SINEWD_NAMESPACE, SN_SINEWD_SERVICE_ACCOUNT);
	struct sn_tls_ctx_opts o = { .role = SN_TLS_CLIENT, .no_resumption = 1, .pinned_root = id->token.root_sha256,
				     .pinned_td = id->token.trust_domain };
	struct sn_tls_identity none = { 0 };
	if (sn_tls_ctx_new(&o, &none, &id->bootstrap, &e) != 0) {
		sn_log(SN_LOG_ERROR, "--token: cannot set up TLS to sinewd: %s", e.msg);
		return SN_EINVAL;
	}
	return 0;
}

void sn_ident_stop(struct sn_proxy *p)
{
	if (p->ident != NULL)
		sn_timer_stop(&p->loop, &p->ident->renew_timer);
}

void sn_ident_free(struct sn_proxy *p)
{
	struct sn_ident *id = p->ident;
	if (id == NULL)
		return;
	sn_tls_ctx_free(id->bootstrap);
	sn_tls_ctx_free(id->cp_ctx);
	EVP_PKEY_free(id->key);
	EVP_PKEY_free(id->pending);
	if (id->chain != NULL)
		free(id->chain);
	free(id->bundle_pem);
	free(id);
	p->ident = NULL;
}

int sn_ident_ready(const struct sn_proxy *p)
{
	return p->ident == NULL || p->ident->key != NULL;
}

void sn_ident_set_error(struct sn_proxy *p, const char *why)
{
	if (p->ident != NULL)
		snprintf(p->ident->last_error, sizeof(p->ident->last_error), "%s", why);
}

const char *sn_ident_error(const struct sn_proxy *p)
{
	return p->ident != NULL && p->ident->last_error[0] ? p->ident->last_error : NULL;
}

int sn_ident_cp_tls(struct sn_proxy *p, struct sn_xds_tls *out)
{
	struct sn_ident *id = p->ident;
	memset(out, 0, sizeof(*out));
	if (id == NULL)
		return 0;
	out->ctx = id->cp_ctx != NULL ? id->cp_ctx : id->bootstrap;
	out->expected_id = id->sinewd_id;
	return id->cp_ctx == NULL;
}

/* ---- sending ------------------------------------------------------------- */

static int send_text(struct sn_proxy *p, char *buf, size_t len)
{
	int rc = sn_cp_send_raw(p, buf, len);
	OPENSSL_cleanse(buf, len);   /* a CSR message may hold the token */
	free(buf);
	return rc;
}

static void schedule_renewal(struct sn_ident *id, uint64_t in_ms);

/* The renewal proof sinewd takes once the certificate that opened the
 * link has expired (docs/internals/identity.md, "Renewal on the link"):
 * base64 of ECDSA-SHA256 by the current key over SN_CA_RENEW_CONTEXT, its
 * NUL and the CSR's DER exactly as the PEM carries it. malloc'd; NULL on
 * failure (the CSR then goes without it). */
static char *renewal_signature(EVP_PKEY *key, const char *csr_pem, size_t csr_len)
{
	BIO *bio = BIO_new_mem_buf(csr_pem, (int)csr_len);
	char *name = NULL, *header = NULL, *out = NULL;
	unsigned char *der = NULL, sig[160];
	long der_len = 0;
	size_t sl = sizeof(sig);
	EVP_MD_CTX *md = NULL;

	if (bio == NULL || PEM_read_bio(bio, &name, &header, &der, &der_len) != 1 || (md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSignUpdate(md, SN_CA_RENEW_CONTEXT, sizeof(SN_CA_RENEW_CONTEXT)) != 1 ||
	    EVP_DigestSignUpdate(md, der, (size_t)der_len) != 1 || EVP_DigestSignFinal(md, sig, &sl) != 1)
		goto out;
	if ((out = malloc(4 * ((sl + 2) / 3) + 1)) != NULL)
		EVP_EncodeBlock((unsigned char *)out, sig, (int)sl);
out:
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	BIO_free(bio);
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(der);
	return out;
}

/* A CSR for a new key; with the token on the bootstrap link. */
static void send_csr(struct sn_proxy *p, int with_token)
{
	struct sn_ident *id = p->ident;
	char *csr = NULL, *buf = NULL;
	size_t csr_len = 0, len = 0;
	FILE *f;

	EVP_PKEY_free(id->pending);
	id->pending = NULL;
	if (sn_workload_key_generate(&id->pending) != 0 ||
	    sn_workload_csr_pem(id->pending, NULL, &csr, &csr_len) != 0 || (f = open_memstream(&buf, &len)) == NULL) {
		sn_log(SN_LOG_ERROR, "identity: cannot make a key and CSR (out of memory or no randomness)");
		free(csr);
		return;
	}
	fputs("{\"type\":\"csr\",\"csr\":", f);
	sn_json_fput_cstr(f, csr);
	if (with_token) {
		fputs(",\"token\":", f);
		sn_json_fput_cstr(f, p->opt.token);
	} else if (id->key != NULL && id->chain != NULL) {
		/* For when the link outlived the certificate it was opened
		 * with: sinewd then takes this proof of the current one. */
		char *sig = renewal_signature(id->key, csr, csr_len);
		if (sig != NULL) {
			fputs(",\"certificate\":", f);
			sn_json_fput_cstr(f, id->chain);
			fputs(",\"signature\":", f);
			sn_json_fput_cstr(f, sig);
			free(sig);
		}
	}
	fputs("}", f);
	fclose(f);
	free(csr);
	/* renew_due stays set until a certificate installs: a link lost with
	 * the CSR in flight sends it again on the next link; and a guard
	 * timer asks again if no answer comes. */
	if (send_text(p, buf, len) == 0 && !with_token)
		schedule_renewal(id, CSR_ANSWER_MS);
}

static void send_ack(struct sn_proxy *p)
{
	struct sn_ident *id = p->ident;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL)
		return;
	fprintf(f, "{\"type\":\"identity_ack\",\"serial\":\"%s\",\"bundle_version\":%llu}", id->serial,
		(unsigned long long)id->bundle_version);
	fclose(f);
	send_text(p, buf, len);
}

/* ---- installing ------------------------------------------------------------ */

static void on_renew_timer(struct sn_loop *loop, struct sn_timer *t);

static void schedule_renewal(struct sn_ident *id, uint64_t in_ms)
{
	sn_timer_start(&id->p->loop, &id->renew_timer, in_ms, on_renew_timer);
}

const char *const sn__mesh_alpn[SN_MESH_ALPN_SERVER] = { SN_TLS_ALPN_H1, SN_TLS_ALPN_TCP, SN_TLS_ALPN_H2 };

/* Builds (or swaps) the data-plane contexts and the control link's from
 * key + chain + bundle. Returns 0, or -1 with nothing changed. */
static int install(struct sn_proxy *p, EVP_PKEY *key, const char *chain, const char *bundle_pem)
{
	struct sn_ident *id = p->ident;
	struct sn_trust_bundle *b = NULL;
	struct sn_id_error e = { 0 };

	if (sn_trust_bundle_new(id->token.trust_domain, &b) != 0 ||
	    sn_trust_bundle_add_pem(b, bundle_pem, strlen(bundle_pem), &e) != 0 || sn_trust_bundle_count(b) == 0) {
		sn_log(SN_LOG_ERROR, "identity: the trust bundle from sinewd does not load: %s",
		       e.msg[0] ? e.msg : "no root");
		sn_trust_bundle_free(b);
		return -1;
	}
	struct sn_tls_identity ti = { .key = key, .chain_pem = chain, .chain_len = strlen(chain), .bundle = b };
	struct sn_tls_ctx_opts so = { .role = SN_TLS_SERVER, .require_client_cert = 1, .alpn = sn__mesh_alpn,
				      .n_alpn = SN_MESH_ALPN_SERVER };
	struct sn_tls_ctx_opts co = { .role = SN_TLS_CLIENT, .alpn = sn__mesh_alpn, .n_alpn = SN_MESH_ALPN_CLIENT };
	struct sn_tls_ctx_opts cpo = { .role = SN_TLS_CLIENT, .no_resumption = 1 };
	int rc;
	if (p->tls_server == NULL) {
		struct sn_tls_ctx *s = NULL, *c = NULL, *cp = NULL;
		rc = sn_tls_ctx_new(&so, &ti, &s, &e);
		if (rc == 0)
			rc = sn_tls_ctx_new(&co, &ti, &c, &e);
		if (rc == 0)
			rc = sn_tls_ctx_new(&cpo, &ti, &cp, &e);
		if (rc != 0) {
			sn_tls_ctx_free(s);
			sn_tls_ctx_free(c);
			sn_tls_ctx_free(cp);
		} else {
			id->cp_ctx = cp;
			__atomic_store_n(&p->tls_client, c, __ATOMIC_RELEASE);
			__atomic_store_n(&p->tls_server, s, __ATOMIC_RELEASE);
		}
	} else {
		/* Each update checks the material first and changes nothing on
		 * failure; the three are built from the same material. */
		rc = sn_tls_ctx_update(p->tls_server, &ti, &e);
		if (rc == 0)
			rc = sn_tls_ctx_update(p->tls_client, &ti, &e);
		if (rc == 0)
			rc = sn_tls_ctx_update(id->cp_ctx, &ti, &e);
	}
	sn_trust_bundle_free(b);
	if (rc != 0) {
		sn_log(SN_LOG_ERROR, "identity: the certificate from sinewd does not install: %s", e.msg);
		return -1;
	}
	return 0;
}

static char *str_field(struct fy_node *root, const char *key)
{
	struct fy_node *n = fy_node_mapping_lookup_by_string(root, key, FY_NT);
	size_t len;
	const char *s;
	if (n == NULL || !fy_node_is_scalar(n) || (s = fy_node_get_scalar(n, &len)) == NULL || len > (1u << 20) ||
	    memchr(s, '\0', len) != NULL)
		return NULL;  /* a NUL (JSON \u0000) has no place in a PEM, and would cut the copy short */
	return strndup(s, len);
}

static long long int_field(struct fy_node *root, const char *key)
{
	struct fy_node *n = fy_node_mapping_lookup_by_string(root, key, FY_NT);
	return n != NULL && fy_node_is_scalar(n) ? strtoll(fy_node_get_scalar0(n), NULL, 10) : 0;
}

static void on_certificate(struct sn_proxy *p, struct fy_node *root, int bootstrap)
{
	struct sn_ident *id = p->ident;
	char *chain = str_field(root, "chain"), *bundle = str_field(root, "bundle");
	char *spiffe = str_field(root, "spiffe_id"), *serial = str_field(root, "serial");
	long long nb = int_field(root, "not_before"), na = int_field(root, "not_after");
	uint64_t bv = (uint64_t)int_field(root, "bundle_version");

	if (id->pending == NULL || chain == NULL || bundle == NULL || spiffe == NULL || serial == NULL) {
		sn_log(SN_LOG_WARN, "identity: an unexpected or incomplete certificate from sinewd; ignored");
		goto out;
	}
	if (install(p, id->pending, chain, bundle) != 0) {
		snprintf(id->last_error, sizeof(id->last_error), "the certificate from sinewd does not install");
		schedule_renewal(id, RETRY_MS);
		goto out;
	}
	EVP_PKEY_free(id->key);
	id->key = id->pending;
	id->pending = NULL;
	id->renew_due = 0;
	free(id->chain);
	id->chain = chain;
	chain = NULL;
	free(id->bundle_pem);
	id->bundle_pem = bundle;
	bundle = NULL;
	id->bundle_version = bv;
	snprintf(id->serial, sizeof(id->serial), "%s", serial);
	id->not_after = (time_t)na;
	id->last_error[0] = '\0';
	/* Half-life ±10 % of what is left from now: notBefore is back-dated
	 * for clock skew, which would make a short lifetime renew at once. */
	time_t now = time(NULL);
	time_t at = sn_svid_renew_at(SN_MAX((time_t)nb, now), (time_t)na, rnd(id, UINT32_MAX));
	schedule_renewal(id, at > now ? (uint64_t)(at - now) * 1000 : 0);
	/* p->principal came from the token at start-up and is what sinewd
	 * signs; workers read it unlocked, so it is never rewritten. */
	if (strcmp(spiffe, p->principal) != 0)
		sn_log(SN_LOG_WARN, "identity: sinewd issued %s, not %s as the token said", spiffe, p->principal);
	sn_log(SN_LOG_INFO, "identity: %s %s, serial %s, valid until %lld; renews in %llds", bootstrap ? "got" : "renewed",
	       spiffe, serial, na, (long long)(at > now ? at - now : 0));
	if (!bootstrap)
		id->renewals++;
	if (bootstrap) {
		/* Reconnect with the certificate: the link becomes mTLS. */
		sn_cp_reconnect(p, "got a certificate; reconnecting with mutual TLS");
	} else {
		send_ack(p);
	}
out:
	free(chain);
	free(bundle);
	free(spiffe);
	free(serial);
}

static void on_bundle(struct sn_proxy *p, struct fy_node *root)
{
	struct sn_ident *id = p->ident;
	uint64_t v = (uint64_t)int_field(root, "version");
	char *bundle = str_field(root, "bundle");

	if (bundle == NULL || id->key == NULL)
		goto out;
	if (v != id->bundle_version || strcmp(bundle, id->bundle_pem) != 0) {
		if (install(p, id->key, id->chain, bundle) != 0)
			goto out;
		free(id->bundle_pem);
		id->bundle_pem = bundle;
		bundle = NULL;
		sn_log(SN_LOG_INFO, "identity: trust bundle version %llu installed", (unsigned long long)v);
	}
	id->bundle_version = v;
	send_ack(p);
out:
	free(bundle);
}

int sn_ident_on_message(struct sn_proxy *p, const char *type, size_t tlen, struct fy_node *root, int bootstrap)
{
	struct sn_ident *id = p->ident;

	if (id == NULL)
		return 0;
	if (tlen == 11 && !memcmp(type, "certificate", 11)) {
		on_certificate(p, root, bootstrap);
	} else if (tlen == 19 && !memcmp(type, "certificate_refused", 19)) {
		char *msg = str_field(root, "message");
		snprintf(id->last_error, sizeof(id->last_error), "sinewd refused a certificate: %s", msg ? msg : "?");
		sn_log(SN_LOG_ERROR, "identity: %s", id->last_error);
		free(msg);
		EVP_PKEY_free(id->pending);
		id->pending = NULL;
		if (id->key != NULL)
			schedule_renewal(id, RETRY_MS * 5);
	} else if (tlen == 6 && !memcmp(type, "bundle", 6)) {
		on_bundle(p, root);
	} else if (tlen == 5 && !memcmp(type, "renew", 5)) {
		uint32_t within = (uint32_t)int_field(root, "within_ms");
		uint32_t in = rnd(id, within ? within : 1);
		sn_log(SN_LOG_INFO, "identity: sinewd asks for a renewal (root rotation); renewing in %u ms", in);
		schedule_renewal(id, in);
	} else {
		return 0;
	}
	return 1;
}

/* The link is open (and, over TLS, sinewd proved itself). Returns 1 if
 * this link is for bootstrap only (no hello). */
int sn_ident_on_open(struct sn_proxy *p)
{
	struct sn_ident *id = p->ident;
	if (id == NULL)
		return 0;
	if (id->key == NULL) {
		sn_log(SN_LOG_INFO, "identity: sinewd verified by the root pinned in the token; asking for %s/%s",
		       id->token.ns, id->token.sa);
		send_csr(p, 1);
		return 1;
	}
	if (id->renew_due)
		send_csr(p, 0);
	return 0;
}

static void on_renew_timer(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_ident *id = sn_container_of(t, struct sn_ident, renew_timer);
	if (id->key == NULL)
		return;
	id->renew_due = 1;
	if (sn_cp_is_open(id->p))
		send_csr(id->p, 0);
}

void sn_ident_render(const struct sn_proxy *p, FILE *f)
{
	const struct sn_ident *id = p->ident;
	if (id == NULL)
		return;
	fprintf(f, "identity: %s, serial %s, valid until %lld, bundle version %llu, %llu renewals%s%s\n",
		id->key ? p->principal : "(none yet)", id->serial[0] ? id->serial : "-", (long long)id->not_after,
		(unsigned long long)id->bundle_version, (unsigned long long)id->renewals,
		id->last_error[0] ? "; last error: " : "", id->last_error);
}

/* ---- ISTIO_MUTUAL without an identity ------------------------------------
 * A DestinationRule's tls.mode ISTIO_MUTUAL means mutual TLS only for a
 * proxy that holds an identity (--token, or --tls-cert/--tls-key/
 * --tls-bundle); one without connects to those destinations in plaintext.
 * Only the proxy knows which it is, so the warning is the proxy's, not the
 * config loader's: printed once per change of the set of such clusters,
 * never by a proxy holding an identity. In file mode it names each place
 * in the file; from sinewd, the clusters. */

static uint64_t fnv(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (h ^ 0xff) * 1099511628211ull;
}

static const char *node_str(struct fy_node *n, const char *path)
{
	struct fy_node *v = n != NULL ? fy_node_by_path(n, path, FY_NT, FYNWF_DONT_FOLLOW) : NULL;
	return v != NULL && fy_node_is_scalar(v) ? fy_node_get_scalar0(v) : NULL;
}

/* One policy (trafficPolicy, or a portLevelSettings entry): its tls.mode
 * if ISTIO_MUTUAL, then its portLevelSettings. */
static void warn_policy(const char *file, const char *name, struct fy_node *pol, const char *field, int depth)
{
	struct fy_node *mode = pol != NULL ? fy_node_by_path(pol, "/tls/mode", FY_NT, FYNWF_DONT_FOLLOW) : NULL;
	if (mode != NULL && fy_node_is_scalar(mode) && strcmp(fy_node_get_scalar0(mode), "ISTIO_MUTUAL") == 0) {
		struct fy_token *tok = fy_node_get_scalar_token(mode);
		const struct fy_mark *mk = tok != NULL ? fy_token_start_mark(tok) : NULL;
		sn_log(SN_LOG_WARN, "config: %s:%d:%d: warning: DestinationRule %s: %s.tls.mode: ISTIO_MUTUAL, but this "
				    "proxy has no identity (start it with --token, or --tls-cert/--tls-key/--tls-bundle): "
				    "it connects to these endpoints in plaintext",
		       file, mk ? mk->line + 1 : 0, mk ? mk->column + 1 : 0, name, field);
	}
	struct fy_node *pls = depth == 0 && pol != NULL ?
				      fy_node_by_path(pol, "/portLevelSettings", FY_NT, FYNWF_DONT_FOLLOW) : NULL;
	struct fy_node *it;
	void *iter = NULL;
	for (int i = 0; pls != NULL && fy_node_is_sequence(pls) && (it = fy_node_sequence_iterate(pls, &iter)) != NULL;
	     i++) {
		char f[160];
		snprintf(f, sizeof(f), "%s.portLevelSettings[%d]", field, i);
		warn_policy(file, name, it, f, depth + 1);
	}
}

/* File mode: every ISTIO_MUTUAL in the file's DestinationRules. */
static void warn_file(const char *path)
{
	struct fy_parse_cfg cfg = { .flags = FYPCF_QUIET };
	struct fy_parser *fyp = fy_parser_create(&cfg);
	struct fy_document *doc;

	if (fyp == NULL || fy_parser_set_input_file(fyp, path) != 0) {
		fy_parser_destroy(fyp);
		return;
	}
	while ((doc = fy_parse_load_document(fyp)) != NULL) {
		struct fy_node *root = fy_document_root(doc);
		const char *kind = node_str(root, "/kind");
		if (kind != NULL && strcmp(kind, "DestinationRule") == 0) {
			const char *ns = node_str(root, "/metadata/namespace"), *nm = node_str(root, "/metadata/name");
			char name[300];
			snprintf(name, sizeof(name), "%s/%s", ns ? ns : "default", nm ? nm : "?");
			warn_policy(path, name, fy_node_by_path(root, "/spec/trafficPolicy", FY_NT, FYNWF_DONT_FOLLOW),
				    "spec.trafficPolicy", 0);
			struct fy_node *subs = fy_node_by_path(root, "/spec/subsets", FY_NT, FYNWF_DONT_FOLLOW), *it;
			void *iter = NULL;
			for (int i = 0; subs != NULL && fy_node_is_sequence(subs) &&
					(it = fy_node_sequence_iterate(subs, &iter)) != NULL;
			     i++) {
				char f[96];
				snprintf(f, sizeof(f), "spec.subsets[%d].trafficPolicy", i);
				warn_policy(path, name, fy_node_by_path(it, "/trafficPolicy", FY_NT, FYNWF_DONT_FOLLOW), f,
					    0);
			}
		}
		fy_parse_document_destroy(fyp, doc);
	}
	fy_parser_destroy(fyp);
}

void sn_ident_check_snapshot(struct sn_proxy *p, const struct sn_snapshot *s)
{
	uint64_t h = 1469598103934665603ull;
	const char *first = NULL;
	size_t n = 0;

	if (p->opt.token != NULL || p->opt.tls_cert != NULL)
		return;   /* it holds an identity (or is getting one): ISTIO_MUTUAL is mutual TLS */
	for (size_t i = 0; i < s->n_clusters; i++) {
		const struct sn_cluster *c = &s->clusters[i];
		if (!c->tls_set || c->tls_mode != SN_CLUSTER_TLS_ISTIO_MUTUAL)
			continue;
		h = fnv(h, c->name);
		if (first == NULL)
			first = c->name;
		n++;
	}
	if (n == 0 || h == p->plaintext_mtls_warned) {
		p->plaintext_mtls_warned = n == 0 ? 0 : h;
		return;
	}
	p->plaintext_mtls_warned = h;
	if (p->opt.config_path != NULL) {
		warn_file(p->opt.config_path);
		return;
	}
	sn_log(SN_LOG_WARN, "config: DestinationRule tls.mode of cluster %s%s: ISTIO_MUTUAL, but this proxy has no "
			    "identity (start it with --token, or --tls-cert/--tls-key/--tls-bundle): it connects to %s "
			    "in plaintext", first, n > 1 ? " and others" : "", n > 1 ? "them" : "its endpoints");
}
