/* A gateway's HTTPS ports (Istio Gateway servers with tls.mode SIMPLE or
 * MUTUAL): one TLS context per port, from the PEM files the Gateway names
 * (serverCertificate, privateKey, caCertificates) or from credentialName
 * in --credentials-dir (NAME/tls.crt, NAME/tls.key, and for MUTUAL
 * NAME/ca.crt or NAME-cacert/ca.crt, as Kubernetes secrets hold them).
 *
 * The files are read again with every new configuration, so a renewed
 * certificate is picked up at the next reload or push. A port whose files
 * do not load is never opened (worker.c asks sn_gw_tls_get), and the
 * error names the file and OpenSSL's reason. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sinew/log.h"
#include "sinew/tls_stream.h"
#include "proxy.h"

#define DEFAULT_CREDENTIALS_DIR "/etc/sinew/credentials"

static const char *const gw_alpn[] = { "h2", "http/1.1" };

void sn_credential_files(const struct sn_proxy *p, const char *name, struct sn_credential_files *f)
{
	const char *dir = p->opt.credentials_dir ? p->opt.credentials_dir : DEFAULT_CREDENTIALS_DIR;
	snprintf(f->cert, sizeof(f->cert), "%s/%s/tls.crt", dir, name);
	snprintf(f->key, sizeof(f->key), "%s/%s/tls.key", dir, name);
	snprintf(f->ca, sizeof(f->ca), "%s/%s/ca.crt", dir, name);
	if (access(f->ca, R_OK) != 0)   /* Istio's separate CA secret */
		snprintf(f->ca, sizeof(f->ca), "%s/%s-cacert/ca.crt", dir, name);
	f->has_ca = access(f->ca, R_OK) == 0;
}

int sn_files_readable(const char *const *files, size_t n, char *err, size_t size)
{
	for (size_t i = 0; i < n; i++)
		if (files[i] != NULL && access(files[i], R_OK) != 0) {
			snprintf(err, size, "cannot read %s: %s", files[i], strerror(errno));
			return -1;
		}
	return 0;
}

static struct sn_gw_tls *slot_for(struct sn_proxy *p, const struct sn_snapshot *s, uint16_t port)
{
	struct sn_gw_tls *reuse = NULL;
	for (size_t i = 0; i < SN_ARRAY_LEN(p->gw_tls); i++) {
		struct sn_gw_tls *g = &p->gw_tls[i];
		if (g->port == port)
			return g;
		/* free: never used, or its port is no HTTPS port of s */
		const struct sn_gw_listener *l = g->port ? sn_snapshot_find_gw_listener(s, g->port) : NULL;
		if (reuse == NULL && (l == NULL || l->tls == 0 || l->tls == 3))
			reuse = g;
	}
	return reuse;
}

static void load_one(struct sn_proxy *p, const struct sn_snapshot *s, const struct sn_gw_listener *l)
{
	struct sn_credential_files cf;
	/* a TCP port carries bytes, not HTTP: no protocol to agree on */
	struct sn_tls_web_opts o = { .alpn = l->tcp ? NULL : gw_alpn, .n_alpn = l->tcp ? 0 : SN_ARRAY_LEN(gw_alpn) };
	struct sn_id_error e = { 0 };

	if (l->credential != NULL) {
		sn_credential_files(p, l->credential, &cf);
		o.cert_file = cf.cert;
		o.key_file = cf.key;
		o.client_ca_file = l->tls == 2 ? cf.ca : NULL;
	} else {
		o.cert_file = l->cert_file;
		o.key_file = l->key_file;
		o.client_ca_file = l->tls == 2 ? l->ca_file : NULL;
	}
	/* other servers' certificates on the port, by server name */
	struct sn_tls_web_sni sni[SN_GW_CERTS_MAX];
	static struct sn_credential_files sni_cf[SN_GW_CERTS_MAX];   /* main thread only */
	size_t n_sni = SN_MIN(l->n_certs, SN_ARRAY_LEN(sni));
	if (l->n_certs > n_sni)
		sn_log(SN_LOG_WARN, "gateway: port %u (%s): %zu server hosts with certificates; the first %zu are "
		       "chosen by server name, the others get the port's first certificate", l->port, l->origin,
		       l->n_certs, n_sni);
	int readable = sn_files_readable((const char *const[]){ o.cert_file, o.key_file, o.client_ca_file }, 3,
					 e.msg, sizeof(e.msg)) == 0;
	for (size_t i = 0; i < n_sni && readable; i++) {
		const struct sn_gw_cert *c = &l->certs[i];
		sni[i] = (struct sn_tls_web_sni){ .host = c->host };
		if (c->credential != NULL) {
			sn_credential_files(p, c->credential, &sni_cf[i]);
			sni[i].cert_file = sni_cf[i].cert;
			sni[i].key_file = sni_cf[i].key;
			sni[i].client_ca_file = l->tls == 2 ? sni_cf[i].ca : NULL;
		} else if (c->cert_file != NULL) {
			sni[i].cert_file = c->cert_file;
			sni[i].key_file = c->key_file;
			sni[i].client_ca_file = l->tls == 2 ? c->ca_file : NULL;
		}
		readable = sn_files_readable((const char *const[]){ sni[i].cert_file, sni[i].key_file,
								    sni[i].client_ca_file }, 3, e.msg, sizeof(e.msg)) == 0;
	}
	o.sni = sni;
	o.n_sni = n_sni;
	if (!readable) {
		sn_log(SN_LOG_ERROR, "gateway: port %u (%s) stays closed: %s%s", l->port, l->origin, e.msg,
		       l->credential ? "; credentialName NAME is looked up in --credentials-dir as NAME/tls.crt, "
				       "NAME/tls.key (and NAME/ca.crt or NAME-cacert/ca.crt for MUTUAL)" : "");
		struct sn_gw_tls *old = slot_for(p, s, l->port);
		if (old != NULL && old->port == l->port)
			__atomic_store_n(&old->ok, 0, __ATOMIC_RELEASE);
		return;
	}
	struct sn_gw_tls *g = slot_for(p, s, l->port);
	if (g == NULL) {
		sn_log(SN_LOG_ERROR, "gateway: port %u (%s): no TLS slot left; it stays closed", l->port, l->origin);
		return;
	}
	if (g->port != l->port) {
		/* another port's slot: its connections keep their own SSL_CTX */
		__atomic_store_n(&g->ok, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&g->port, l->port, __ATOMIC_RELEASE);
	}
	int rc = g->ctx == NULL ? sn_tls_ctx_new_web(&o, &g->ctx, &e) : sn_tls_ctx_update_web(g->ctx, &o, &e);
	if (rc != 0) {
		__atomic_store_n(&g->ok, 0, __ATOMIC_RELEASE);
		sn_log(SN_LOG_ERROR, "gateway: port %u (%s) stays closed: %s%s%s", l->port, l->origin, e.msg,
		       l->credential ? "; credentialName is looked up in --credentials-dir as NAME/tls.crt and "
				       "NAME/tls.key" : "",
		       l->credential && l->tls == 2 ? " (and NAME/ca.crt or NAME-cacert/ca.crt for MUTUAL)" : "");
		return;
	}
	__atomic_store_n(&g->ok, 1, __ATOMIC_RELEASE);
	sn_log(SN_LOG_INFO, "gateway: port %u: TLS %s with %s", l->port, l->tls == 2 ? "MUTUAL" : "SIMPLE",
	       o.cert_file);
}

void sn_gw_tls_sync(struct sn_proxy *p, const struct sn_snapshot *s)
{
	if (!p->opt.gateway || s == NULL)
		return;
	for (size_t i = 0; i < s->n_gw_listeners; i++)
		if (s->gw_listeners[i].tls == 1 || s->gw_listeners[i].tls == 2)   /* 3: the mesh's context */
			load_one(p, s, &s->gw_listeners[i]);
}

struct sn_tls_ctx *sn_gw_listener_tls(struct sn_proxy *p, const struct sn_gw_listener *l)
{
	if (l->tls == 3)   /* ISTIO_MUTUAL: the mesh's server context, once sinewd signed ours */
		return __atomic_load_n(&p->tls_server, __ATOMIC_ACQUIRE);
	return sn_gw_tls_get(p, l->port);
}

struct sn_tls_ctx *sn_gw_tls_get(struct sn_proxy *p, uint16_t port)
{
	for (size_t i = 0; i < SN_ARRAY_LEN(p->gw_tls); i++) {
		struct sn_gw_tls *g = &p->gw_tls[i];
		if (__atomic_load_n(&g->port, __ATOMIC_ACQUIRE) == port)
			return __atomic_load_n(&g->ok, __ATOMIC_ACQUIRE) ? g->ctx : NULL;
	}
	return NULL;
}
