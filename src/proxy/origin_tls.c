/* TLS origination: DestinationRule tls.mode SIMPLE or MUTUAL (Istio's
 * egress TLS origination). The app speaks plain HTTP to the proxy; the
 * proxy speaks TLS to the endpoints, verifying the server's certificate
 * against caCertificates (else the system's roots) and its name against
 * sni (else the service's host) or subjectAltNames, unless
 * insecureSkipVerify; with MUTUAL it presents clientCertificate and
 * privateKey (or credentialName's files in --credentials-dir).
 *
 * One client context per distinct set of files, made by the main thread
 * before a snapshot is posted, which also writes each cluster's slot into
 * it (sn_cluster.origin_slot: nothing is looked up per request; at most 64; they live as long as
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

/* What a cluster's client context is made of (its slot's key), and the
 * files: caCertificates wins over the credential's CA; no CA at all means
 * the system's roots. */
struct origin_files {
	char cert[600], key[600], ca[600];
};

static void files_of(const struct sn_proxy *p, const struct sn_cluster *c, struct origin_files *f)
{
	const struct sn_origin_tls *o = &c->origin;
	int mutual = c->tls_mode == SN_CLUSTER_TLS_MUTUAL;
	memset(f, 0, sizeof(*f));
	if (o->credential != NULL) {
		struct sn_credential_files cf;
		sn_credential_files(p, o->credential, &cf);
		if (mutual) {
			memcpy(f->cert, cf.cert, sizeof(f->cert));
			memcpy(f->key, cf.key, sizeof(f->key));
		}
		if (cf.has_ca)
			memcpy(f->ca, cf.ca, sizeof(f->ca));
	}
	if (o->ca_file != NULL)
		snprintf(f->ca, sizeof(f->ca), "%s", o->ca_file);
	if (mutual && o->cert_file != NULL) {
		snprintf(f->cert, sizeof(f->cert), "%s", o->cert_file);
		snprintf(f->key, sizeof(f->key), "%s", o->key_file ? o->key_file : "");
	}
}

static int find(struct sn_proxy *p, const char *key)
{
	size_t n = __atomic_load_n(&p->n_origin_tls, __ATOMIC_ACQUIRE);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(p->origin_tls[i].key, key))
			return (int)i;
	return -1;
}

/* Makes or refreshes the slot of key; returns its index, or -1 (logged). */
static int load(struct sn_proxy *p, const struct sn_cluster *c, const char *k, const struct origin_files *f)
{
	struct sn_tls_web_client_opts o = { .verify_ca_file = f->ca[0] ? f->ca : NULL, .insecure = c->origin.insecure,
					    .cert_file = f->cert[0] ? f->cert : NULL,
					    .key_file = f->key[0] ? f->key : NULL };
	struct sn_id_error e = { 0 };
	int i = find(p, k);
	if (i < 0 && p->n_origin_tls == SN_ARRAY_LEN(p->origin_tls)) {
		sn_log(SN_LOG_ERROR, "tls origination: cluster %s: more than %zu distinct TLS settings; its requests "
		       "fail (503 tls_unavailable)", c->name, SN_ARRAY_LEN(p->origin_tls));
		return -1;
	}
	const char *files[3] = { o.verify_ca_file, o.cert_file, o.key_file };
	if (sn_files_readable(files, 3, e.msg, sizeof(e.msg)) != 0)
		goto failed;
	if (i >= 0) {
		if (sn_tls_ctx_update_web_client(p->origin_tls[i].ctx, &o, &e) != 0)
			goto failed;
		__atomic_store_n(&p->origin_tls[i].ok, 1, __ATOMIC_RELEASE);
		return i;
	}
	struct sn_origin_slot *s = &p->origin_tls[p->n_origin_tls];
	if (sn_tls_ctx_new_web_client(&o, &s->ctx, &e) != 0)
		goto failed;
	snprintf(s->key, sizeof(s->key), "%s", k);
	s->ok = 1;
	__atomic_store_n(&p->n_origin_tls, p->n_origin_tls + 1, __ATOMIC_RELEASE);
	return (int)(p->n_origin_tls - 1);
failed:
	if (i >= 0)
		__atomic_store_n(&p->origin_tls[i].ok, 0, __ATOMIC_RELEASE);
	sn_log(SN_LOG_ERROR, "tls origination: cluster %s: %s; its requests fail (503 tls_unavailable)%s", c->name,
	       e.msg, c->origin.credential ? "; credentialName NAME is looked up in --credentials-dir" : "");
	return -1;
}

void sn_origin_tls_sync(struct sn_proxy *p, struct sn_snapshot *s)
{
	char k[SN_ORIGIN_KEY_MAX];
	for (size_t i = 0; s != NULL && i < s->n_clusters; i++) {
		struct sn_cluster *c = &s->clusters[i];
		c->origin_slot = 0;
		if (c->tls_mode != SN_CLUSTER_TLS_SIMPLE && c->tls_mode != SN_CLUSTER_TLS_MUTUAL)
			continue;
		struct origin_files f;
		files_of(p, c, &f);
		snprintf(k, sizeof(k), "%s|%s|%s|%d", f.ca, f.cert, f.key, c->origin.insecure);
		/* clusters of one key share a slot: load it once per snapshot */
		int slot = -1;
		for (size_t j = 0; j < i && slot < 0; j++)
			if (s->clusters[j].origin_slot > 0 &&
			    !strcmp(p->origin_tls[s->clusters[j].origin_slot - 1].key, k))
				slot = s->clusters[j].origin_slot - 1;
		if (slot < 0)
			slot = load(p, c, k, &f);
		c->origin_slot = slot + 1;   /* 0: did not load; requests fail */
	}
}

int sn_upstream_origin(struct sn_worker *w, const struct sn_cluster *c, char *id, size_t size)
{
	if (c->tls_mode != SN_CLUSTER_TLS_SIMPLE && c->tls_mode != SN_CLUSTER_TLS_MUTUAL)
		return 0;
	int i = c->origin_slot - 1;
	if (i < 0 || !__atomic_load_n(&w->proxy->origin_tls[i].ok, __ATOMIC_ACQUIRE))
		return SN_EINVAL;
	/* pooled connections are told apart by it: the slot and the name */
	snprintf(id, size, "tls:%d:%s", i, c->origin.sni ? c->origin.sni : c->service);
	return 1;
}

int sn_upstream_origin_start(struct sn_worker *w, const struct sn_cluster *c, const char *id, int h2,
			     struct sn_xprt *x)
{
	int i = c->origin_slot - 1;
	const char *sni = c->origin.sni ? c->origin.sni : c->service;
	(void)id;
	if (i < 0)
		return SN_EINVAL;
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
