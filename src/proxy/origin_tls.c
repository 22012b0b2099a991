/* TLS origination: DestinationRule tls.mode SIMPLE or MUTUAL (Istio's
 * egress TLS origination). The app speaks plain HTTP to the proxy; the
 * proxy speaks TLS to the endpoints, verifying the server's certificate
 * against caCertificates (else the system's roots) and its name against
 * sni (else the service's host) or subjectAltNames, unless
 * insecureSkipVerify; with MUTUAL it presents clientCertificate and
 * privateKey (or credentialName's files in --credentials-dir).
 *
 * One client context per distinct set of files, made by the main thread
 * before a snapshot is posted (at most ORIGIN_MAX; they live as long as
 * the proxy, and the files are read again with each new configuration).
 * A cluster whose files do not load fails its requests with 503
 * tls_unavailable: never plaintext where TLS was asked for. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sinew/log.h"
#include "sinew/tls_stream.h"
#include "proxy.h"

#define DEFAULT_CREDENTIALS_DIR "/etc/sinew/credentials"

static void files_of(struct sn_proxy *p, const struct sn_cluster *c, char cert[600], char key[600], char ca[600])
{
	const struct sn_origin_tls *o = &c->origin;
	cert[0] = key[0] = ca[0] = '\0';
	if (o->credential != NULL) {
		const char *dir = p->opt.credentials_dir ? p->opt.credentials_dir : DEFAULT_CREDENTIALS_DIR;
		if (c->tls_mode == SN_CLUSTER_TLS_MUTUAL) {
			snprintf(cert, 600, "%s/%s/tls.crt", dir, o->credential);
			snprintf(key, 600, "%s/%s/tls.key", dir, o->credential);
		}
		snprintf(ca, 600, "%s/%s/ca.crt", dir, o->credential);
		if (access(ca, R_OK) != 0)
			snprintf(ca, 600, "%s/%s-cacert/ca.crt", dir, o->credential);
		if (access(ca, R_OK) != 0 && o->ca_file == NULL)
			ca[0] = '\0';   /* no CA in the credential: the system's roots */
	}
	if (o->ca_file != NULL)
		snprintf(ca, 600, "%s", o->ca_file);
	if (c->tls_mode == SN_CLUSTER_TLS_MUTUAL && o->cert_file != NULL) {
		snprintf(cert, 600, "%s", o->cert_file);
		snprintf(key, 600, "%s", o->key_file ? o->key_file : "");
	}
}

/* The slot's key: what its SSL_CTX is made of. */
static void key_of(struct sn_proxy *p, const struct sn_cluster *c, char *out, size_t size)
{
	char cert[600], key[600], ca[600];
	files_of(p, c, cert, key, ca);
	snprintf(out, size, "%s|%s|%s|%d", ca, cert, key, c->origin.insecure);
}

static int find(struct sn_proxy *p, const char *key)
{
	size_t n = __atomic_load_n(&p->n_origin_tls, __ATOMIC_ACQUIRE);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(p->origin_tls[i].key, key))
			return (int)i;
	return -1;
}

static void load(struct sn_proxy *p, const struct sn_cluster *c, const char *k)
{
	char cert[600], key[600], ca[600];
	files_of(p, c, cert, key, ca);
	struct sn_tls_web_client_opts o = { .verify_ca_file = ca[0] ? ca : NULL, .insecure = c->origin.insecure,
					    .cert_file = cert[0] ? cert : NULL, .key_file = key[0] ? key : NULL };
	struct sn_id_error e = { 0 };
	int i = find(p, k);
	if (i < 0 && p->n_origin_tls == SN_ARRAY_LEN(p->origin_tls)) {
		sn_log(SN_LOG_ERROR, "tls origination: cluster %s: more than %zu distinct TLS settings; its requests "
		       "fail (503 tls_unavailable)", c->name, SN_ARRAY_LEN(p->origin_tls));
		return;
	}
	const char *files[3] = { o.verify_ca_file, o.cert_file, o.key_file };
	for (size_t f = 0; f < 3; f++)
		if (files[f] != NULL && access(files[f], R_OK) != 0) {
			snprintf(e.msg, sizeof(e.msg), "cannot read %s: %s", files[f], strerror(errno));
			goto failed;
		}
	if (i >= 0) {
		if (sn_tls_ctx_update_web_client(p->origin_tls[i].ctx, &o, &e) != 0)
			goto failed;
		__atomic_store_n(&p->origin_tls[i].ok, 1, __ATOMIC_RELEASE);
		return;
	}
	struct sn_origin_slot *s = &p->origin_tls[p->n_origin_tls];
	if (sn_tls_ctx_new_web_client(&o, &s->ctx, &e) != 0)
		goto failed;
	snprintf(s->key, sizeof(s->key), "%s", k);
	s->ok = 1;
	__atomic_store_n(&p->n_origin_tls, p->n_origin_tls + 1, __ATOMIC_RELEASE);
	return;
failed:
	if (i >= 0)
		__atomic_store_n(&p->origin_tls[i].ok, 0, __ATOMIC_RELEASE);
	sn_log(SN_LOG_ERROR, "tls origination: cluster %s: %s; its requests fail (503 tls_unavailable)%s", c->name,
	       e.msg, c->origin.credential ? "; credentialName NAME is looked up in --credentials-dir" : "");
}

void sn_origin_tls_sync(struct sn_proxy *p, const struct sn_snapshot *s)
{
	char k[SN_ORIGIN_KEY_MAX];
	for (size_t i = 0; s != NULL && i < s->n_clusters; i++) {
		const struct sn_cluster *c = &s->clusters[i];
		if (c->tls_mode != SN_CLUSTER_TLS_SIMPLE && c->tls_mode != SN_CLUSTER_TLS_MUTUAL)
			continue;
		key_of(p, c, k, sizeof(k));
		/* several clusters share a slot: load it once per snapshot */
		int done = 0;
		for (size_t j = 0; j < i && !done; j++) {
			const struct sn_cluster *d = &s->clusters[j];
			char dk[SN_ORIGIN_KEY_MAX];
			if (d->tls_mode == SN_CLUSTER_TLS_SIMPLE || d->tls_mode == SN_CLUSTER_TLS_MUTUAL) {
				key_of(p, d, dk, sizeof(dk));
				done = !strcmp(dk, k);
			}
		}
		if (!done)
			load(p, c, k);
	}
}

int sn_upstream_origin(struct sn_worker *w, const struct sn_cluster *c, char *id, size_t size)
{
	char k[SN_ORIGIN_KEY_MAX];
	if (c->tls_mode != SN_CLUSTER_TLS_SIMPLE && c->tls_mode != SN_CLUSTER_TLS_MUTUAL)
		return 0;
	key_of(w->proxy, c, k, sizeof(k));
	int i = find(w->proxy, k);
	if (i < 0 || !__atomic_load_n(&w->proxy->origin_tls[i].ok, __ATOMIC_ACQUIRE))
		return SN_EINVAL;
	/* pooled connections are told apart by it: the slot and the name */
	snprintf(id, size, "tls:%d:%s", i, c->origin.sni ? c->origin.sni : c->service);
	return 1;
}

int sn_upstream_origin_start(struct sn_worker *w, const struct sn_cluster *c, const char *id, int h2,
			     struct sn_xprt *x)
{
	int i = -1, n = 0;
	if (sscanf(id, "tls:%d:%n", &i, &n) != 1 || n == 0 || i < 0 ||
	    (size_t)i >= __atomic_load_n(&w->proxy->n_origin_tls, __ATOMIC_ACQUIRE))
		return SN_EINVAL;
	const char *sni = id + n;
	const char *hosts[SN_ORIGIN_SANS_MAX];
	size_t nh = 0;
	if (!c->origin.insecure) {
		for (size_t k = 0; k < c->origin.n_sans && nh < SN_ARRAY_LEN(hosts); k++)
			hosts[nh++] = c->origin.sans[k];
		if (nh == 0)
			hosts[nh++] = sni;
	}
	struct sn_tls_conn_opts co = { .server_name = sni, .alpn = h2 ? "h2" : "http/1.1", .verify_hosts = hosts,
				       .n_verify_hosts = nh };
	return sn_xprt_tls(x, w->proxy->origin_tls[i].ctx, &co);
}
