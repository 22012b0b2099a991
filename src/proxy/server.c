/* The sinew-proxy process: loads config, starts workers, serves the admin
 * port, reloads on SIGHUP or when the config file changes, and drains on
 * SIGTERM/SIGINT.
 *
 * Reload: the main thread validates and translates the file into a new
 * snapshot; only if that succeeds is it posted to every worker, each of
 * which swaps its pointer between requests. A bad file never replaces a
 * good snapshot: the error (file:line: field: message) is logged and
 * counted, and the old config keeps serving.
 *
 * Drain: stop accepting, let every in-flight request finish, close idle
 * keep-alive connections, and exit when all workers are done or at the
 * --drain-seconds deadline, whichever comes first. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "sinew/log.h"
#include "proxy.h"

#define RELOAD_DEBOUNCE_MS 100

int sn_addr_parse(const char *s, struct sn_addr *out)
{
	char host[256];
	const char *colon;
	char *end;
	long port;

	memset(out, 0, sizeof(*out));
	if (s == NULL || *s == '\0')
		return SN_EINVAL;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof(host))
			return SN_EINVAL;
		memcpy(host, s + 1, (size_t)(rb - s - 1));
		host[rb - s - 1] = '\0';
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
			return SN_EINVAL;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || end == colon + 1 || port < 0 || port > 65535)
		return SN_EINVAL;
	if (host[0] == '\0' || strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	struct sockaddr_in *v4 = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->ss;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		out->len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		out->len = sizeof(*v6);
	} else {
		return SN_EINVAL;
	}
	sn_addr_format((struct sockaddr *)&out->ss, out->text, sizeof(out->text));
	return 0;
}

int sn_addr_list_parse(const char *s, struct sn_addr *out, size_t max, size_t *n, char *err, size_t err_size)
{
	const char *entry = s ? s : "";
	size_t k = 0;

	*n = 0;
	for (;;) {
		const char *comma = strchr(entry, ',');
		size_t len = comma ? (size_t)(comma - entry) : strlen(entry);
		char one[128];

		if (k == max) {
			snprintf(err, err_size, "more than %zu addresses", max);
			return SN_EINVAL;
		}
		if (len == 0) {
			snprintf(err, err_size, "entry %zu is empty: want IP:PORT[,IP:PORT...]", k + 1);
			return SN_EINVAL;
		}
		if (len < sizeof(one)) {
			memcpy(one, entry, len);
			one[len] = '\0';
		}
		/* Port 0 parses (a listener's "any port") but reaches nothing. */
		if (len >= sizeof(one) || sn_addr_parse(one, &out[k]) != 0 ||
		    (out[k].ss.ss_family == AF_INET ? ((struct sockaddr_in *)&out[k].ss)->sin_port
						     : ((struct sockaddr_in6 *)&out[k].ss)->sin6_port) == 0) {
			snprintf(err, err_size, "entry %zu (\"%.*s\"): want IP:PORT, e.g. 127.0.0.1:15012 or [::1]:15012",
				 k + 1, (int)SN_MIN(len, (size_t)64), entry);
			return SN_EINVAL;
		}
		for (size_t j = 0; j < k; j++) {
			if (strcmp(out[j].text, out[k].text) == 0) {
				snprintf(err, err_size, "entry %zu (%s) repeats entry %zu", k + 1, out[k].text, j + 1);
				return SN_EINVAL;
			}
		}
		k++;
		if (comma == NULL)
			break;
		entry = comma + 1;
	}
	*n = k;
	return 0;
}

void sn_addr_format(const struct sockaddr *sa, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN];
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof(ip));
		snprintf(buf, size, "%s:%u", ip, ntohs(v4->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, size, "[%s]:%u", ip, ntohs(v6->sin6_port));
	} else {
		snprintf(buf, size, "unix");
	}
}

/* "k=v,k2=v2" into p->labels (strings owned by the proxy, never freed
 * before exit). */
static int parse_labels(struct sn_proxy *p, const char *text)
{
	size_t n = 0, cap = 0;
	struct sn_label *v = NULL;
	const char *s = text;

	while (s != NULL && *s) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		const char *eq = memchr(s, '=', len);
		if (eq == NULL || eq == s) {
			fprintf(stderr, "sinew-proxy: --labels: \"%.*s\" is not key=value; write e.g. --labels app=reviews,version=v2\n",
				(int)len, s);
			free(v);
			return SN_EINVAL;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			struct sn_label *nv = realloc(v, cap * sizeof(*v));
			if (nv == NULL) {
				free(v);
				return SN_ENOMEM;
			}
			v = nv;
		}
		v[n].key = strndup(s, (size_t)(eq - s));
		v[n].value = strndup(eq + 1, len - (size_t)(eq - s) - 1);
		n++;
		s = comma ? comma + 1 : NULL;
	}
	p->labels.v = v;
	p->labels.n = n;
	return 0;
}

/* Loads and translates the config file. On success publishes the new
 * snapshot to the workers and returns 0; on failure logs every error and
 * keeps the current snapshot. */
static int load_config(struct sn_proxy *p, int initial)
{
	struct sn_diags d;
	struct sn_snapshot *s = NULL;
	int r;

	sn_diags_init(&d);
	r = sn_config_build_from_file(p->opt.config_path, &p->identity, &d, &s);
	for (size_t i = 0; i < d.n; i++) {
		char line[2048];
		sn_diag_format(&d.v[i], line, sizeof(line));
		sn_log(d.v[i].severity == SN_DIAG_ERROR ? SN_LOG_ERROR : SN_LOG_WARN, "config: %s", line);
	}
	if (r != 0 || s == NULL) {
		if (initial)
			sn_log(SN_LOG_ERROR, "config: %s refused (%zu error(s)); fix the errors above and start again",
			       p->opt.config_path, d.errors);
		else
			sn_log(SN_LOG_ERROR, "config: reload of %s refused (%zu error(s)); still serving version %llu",
			       p->opt.config_path, d.errors, (unsigned long long)p->version);
		p->proc.config_reloads_failed++;
		sn_diags_free(&d);
		return SN_EINVAL;
	}
	sn_diags_free(&d);
	sn_proxy_publish(p, s);
	sn_log(SN_LOG_INFO, "config: %s loaded as version %llu (%zu services, %zu clusters, %zu hosts)",
	       p->opt.config_path, (unsigned long long)p->version, s->n_services, s->n_clusters, s->n_vhosts);
	return 0;
}

void sn_proxy_publish(struct sn_proxy *p, struct sn_snapshot *s)
{
	s->version = ++p->version;
	sn_ident_check_snapshot(p, s);
	sn_gw_tls_sync(p, s);
	sn_origin_tls_sync(p, s);
	sn_dns_published(p);
	for (int i = 0; i < p->n_workers; i++) {
		sn_snapshot_ref(s);
		sn_worker_post_snapshot(&p->workers[i], s);
	}
	pthread_mutex_lock(&p->snap_lock);
	struct sn_snapshot *old = p->snap;
	p->snap = s;
	pthread_mutex_unlock(&p->snap_lock);
	if (old != NULL)
		sn_snapshot_unref(old);
	p->proc.config_version = p->version;
	p->proc.config_reloads_ok++;
	p->proc.config_last_reload_seconds = (double)time(NULL);
}

void sn_proxy_retranslate(struct sn_proxy *p, const char *why)
{
	if (p->draining)
		return;
	sn_log(SN_LOG_INFO, "config: translating again: %s", why);
	if (p->cp != NULL)
		sn_cp_retranslate(p);
	else
		load_config(p, 0);
}

void sn_proxy_republish(struct sn_proxy *p)
{
	pthread_mutex_lock(&p->snap_lock);
	struct sn_snapshot *s = p->snap;
	pthread_mutex_unlock(&p->snap_lock);
	if (s == NULL)
		return;
	for (int i = 0; i < p->n_workers; i++) {
		sn_snapshot_ref(s);
		sn_worker_post_snapshot(&p->workers[i], s);
	}
}

static void on_reload_timer(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_proxy *p = sn_container_of(t, struct sn_proxy, reload_timer);
	if (!p->draining)
		load_config(p, 0);
}

static void schedule_reload(struct sn_proxy *p)
{
	sn_timer_start(&p->loop, &p->reload_timer, RELOAD_DEBOUNCE_MS, on_reload_timer);
}

static void on_exit_check(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_proxy *p = sn_container_of(t, struct sn_proxy, exit_check_timer);
	if (__atomic_load_n(&p->workers_running, __ATOMIC_ACQUIRE) == 0) {
		sn_loop_stop(&p->loop);
		return;
	}
	sn_timer_start(&p->loop, &p->exit_check_timer, 20, on_exit_check);
}

static void on_drain_deadline(struct sn_loop *loop, struct sn_timer *t)
{
	struct sn_proxy *p = sn_container_of(t, struct sn_proxy, drain_timer);
	sn_log(SN_LOG_WARN, "drain: deadline of %u ms reached; closing what is left", p->opt.drain_ms);
	for (int i = 0; i < p->n_workers; i++)
		sn_worker_post_stop(&p->workers[i]);
}

static void start_drain(struct sn_proxy *p, const char *why)
{
	if (p->draining) {
		sn_log(SN_LOG_WARN, "drain: second signal; stopping now");
		for (int i = 0; i < p->n_workers; i++)
			sn_worker_post_stop(&p->workers[i]);
		return;
	}
	p->draining = 1;
	p->proc.draining = 1;
	p->ready = 0;
	sn_cp_stop(p);
	sn_log(SN_LOG_INFO, "drain: %s; no new connections, finishing in-flight requests (deadline %u ms)", why,
	       p->opt.drain_ms);
	for (int i = 0; i < p->n_workers; i++)
		sn_worker_post_drain(&p->workers[i]);
	sn_timer_start(&p->loop, &p->drain_timer, p->opt.drain_ms, on_drain_deadline);
	sn_timer_start(&p->loop, &p->exit_check_timer, 20, on_exit_check);
}

static void on_signal(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct sn_proxy *p = sn_container_of(io, struct sn_proxy, sig_io);
	struct signalfd_siginfo si;

	while (read(p->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			if (p->opt.config_path == NULL)
				break;  /* control-plane mode: nothing to reload */
			sn_log(SN_LOG_INFO, "config: SIGHUP, reloading %s", p->opt.config_path);
			if (!p->draining)
				load_config(p, 0);
			break;
		case SIGTERM:
			start_drain(p, "SIGTERM");
			break;
		case SIGINT:
			start_drain(p, "SIGINT");
			break;
		default:
			break;
		}
	}
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

static void on_inotify(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	struct sn_proxy *p = sn_container_of(io, struct sn_proxy, ino_io);
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const char *want = base_name(p->opt.config_path);
	int hit = 0;

	for (;;) {
		ssize_t n = read(p->inofd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *q = buf; q < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)q;
			if (e->len > 0 && strcmp(e->name, want) == 0)
				hit = 1;
			q += sizeof(*e) + e->len;
		}
	}
	if (hit)
		schedule_reload(p);
}

/* Watches the config file's directory: editors and `kubectl`-style tools
 * replace files by rename, which a watch on the file itself would miss. */
static void watch_config(struct sn_proxy *p)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(p->opt.config_path, '/');

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == p->opt.config_path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - p->opt.config_path), p->opt.config_path);
	p->inofd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (p->inofd < 0)
		return;
	if (inotify_add_watch(p->inofd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_MODIFY) < 0) {
		sn_log(SN_LOG_WARN, "config: cannot watch %s (%s); reload with SIGHUP", dir, strerror(errno));
		close(p->inofd);
		p->inofd = -1;
		return;
	}
	sn_io_start(&p->loop, &p->ino_io, p->inofd, on_inotify);
}

void sn_proxy_worker_exited(struct sn_proxy *p)
{
	__atomic_sub_fetch(&p->workers_running, 1, __ATOMIC_RELEASE);
}

static void setup_identity(struct sn_proxy *p)
{
	struct sn_proxy_options *o = &p->opt;

	if (o->namespace_ == NULL)
		o->namespace_ = "default";
	if (o->service_account == NULL)
		o->service_account = "default";
	/* The workload, as Kubernetes names bookinfo's deployments: the
	 * service, with its version label when it has one (reviews-v1), so a
	 * service's versions are the workloads that Istio's metrics and graphs
	 * show. */
	const char *version = sn_labels_get(&p->labels, "version");
	if (o->service != NULL && version != NULL && version[0] != '\0')
		snprintf(p->workload, sizeof(p->workload), "%s-%s", o->service, version);
	else
		snprintf(p->workload, sizeof(p->workload), "%s", o->service ? o->service : "unknown");
	if (o->trust_domain == NULL)
		o->trust_domain = SN_ID_DEFAULT_TRUST_DOMAIN;
	snprintf(p->principal, sizeof(p->principal), "spiffe://%s/ns/%s/sa/%s", o->trust_domain, o->namespace_,
		 o->service_account);
	if (o->service != NULL)
		snprintf(p->own_service_fqdn, sizeof(p->own_service_fqdn), "%s.%s.svc.%s", o->service, o->namespace_,
			 sn_cluster_domain());
	p->identity.service = o->service;
	p->identity.namespace_ = o->namespace_;
	p->identity.labels = &p->labels;
	p->identity.service_account = o->service_account;
	p->identity.workload = p->workload;
	p->identity.trust_domain = o->trust_domain;
	p->identity.gateway = o->gateway;
}

static int slurp(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0;

	if (f == NULL)
		return -1;
	for (;;) {
		if (cap - n < 4096) {
			char *nb = realloc(buf, cap + 65536);
			if (nb == NULL || cap > (16u << 20)) {
				free(nb ? nb : buf);
				fclose(f);
				return -1;
			}
			buf = nb;
			cap += 65536;
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0)
			break;
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		return -1;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* --tls-cert/--tls-key/--tls-bundle: the inbound server and outbound
 * client contexts (docs/internals/tls.md). Returns 0 (also when TLS is
 * not configured) or -1 after logging why. */
static int setup_tls(struct sn_proxy *p)
{
	struct sn_proxy_options *o = &p->opt;
	char *cert = NULL, *key = NULL, *roots = NULL;
	size_t cert_len = 0, key_len = 0, roots_len = 0;
	struct sn_id_error err;
	int rc = -1;

	if (o->tls_cert == NULL)
		return 0;
	memset(&err, 0, sizeof(err));
	const char *bad = slurp(o->tls_cert, &cert, &cert_len) != 0 ? o->tls_cert
			: slurp(o->tls_key, &key, &key_len) != 0       ? o->tls_key
			: slurp(o->tls_bundle, &roots, &roots_len) != 0 ? o->tls_bundle
									: NULL;
	if (bad != NULL) {
		sn_log(SN_LOG_ERROR, "mTLS: cannot read %s: %s", bad, strerror(errno));
		goto out;
	}
	if (sn_trust_bundle_new(o->trust_domain, &p->bundle) != 0) {
		sn_log(SN_LOG_ERROR, "mTLS: --trust-domain %s: not a valid trust domain", o->trust_domain);
		goto out;
	}
	if (sn_trust_bundle_add_pem(p->bundle, roots, roots_len, &err) != 0 || sn_trust_bundle_count(p->bundle) == 0) {
		sn_log(SN_LOG_ERROR, "mTLS: --tls-bundle %s: %s", o->tls_bundle, err.msg[0] ? err.msg : "no root");
		goto out;
	}
	struct sn_tls_identity id = {
		.key_pem = key, .key_len = key_len, .chain_pem = cert, .chain_len = cert_len, .bundle = p->bundle,
	};
	struct sn_tls_ctx_opts so = { .role = SN_TLS_SERVER, .require_client_cert = 1, .alpn = sn__mesh_alpn,
				      .n_alpn = SN_MESH_ALPN_SERVER };
	struct sn_tls_ctx_opts co = { .role = SN_TLS_CLIENT, .alpn = sn__mesh_alpn, .n_alpn = SN_MESH_ALPN_CLIENT };
	if (sn_tls_ctx_new(&so, &id, &p->tls_server, &err) != 0 ||
	    sn_tls_ctx_new(&co, &id, &p->tls_client, &err) != 0) {
		sn_log(SN_LOG_ERROR, "mTLS: --tls-cert %s / --tls-key %s: %s", o->tls_cert, o->tls_key, err.msg);
		goto out;
	}
	sn_log(SN_LOG_INFO, "mTLS: identity %s, trust domain %s (%zu root(s))", p->principal, o->trust_domain,
	       sn_trust_bundle_count(p->bundle));
	rc = 0;
out:
	if (key != NULL)
		OPENSSL_cleanse(key, key_len);
	free(cert);
	free(key);
	free(roots);
	return rc;
}

static void free_tls(struct sn_proxy *p)
{
	if (p->tls_server != NULL)
		sn_tls_ctx_free(p->tls_server);
	if (p->tls_client != NULL)
		sn_tls_ctx_free(p->tls_client);
	if (p->bundle != NULL)
		sn_trust_bundle_free(p->bundle);
	for (size_t i = 0; i < SN_ARRAY_LEN(p->gw_tls); i++)
		sn_tls_ctx_free(p->gw_tls[i].ctx);   /* the workers and their streams are gone */
	for (size_t i = 0; i < p->n_origin_tls; i++)
		sn_tls_ctx_free(p->origin_tls[i].ctx);
}

int sn_proxy_run(struct sn_proxy_options *opt)
{
	struct sn_proxy *p = calloc(1, sizeof(*p));
	sigset_t mask;
	int started = 0;
	int rc = 1;

	if (p == NULL)
		return 1;
	p->opt = *opt;
	p->sigfd = p->inofd = -1;
	pthread_mutex_init(&p->snap_lock, NULL);
	pthread_mutex_init(&p->outlier_lock, NULL);
	if (parse_labels(p, opt->labels_text) != 0)
		goto out;
	setup_identity(p);
	if (setup_tls(p) != 0)
		goto out;
	if (opt->token != NULL && sn_ident_init(p) != 0)
		goto out;

	/* Signals are handled on the main loop; workers inherit the mask. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (sn_loop_init(&p->loop) != 0)
		goto out;
	if (opt->access_log_path != NULL) {
		p->access_log = sn_access_log_open(opt->access_log_path);
		if (p->access_log == NULL) {
			sn_log(SN_LOG_ERROR, "--access-log %s: %s", opt->access_log_path, strerror(errno));
			goto out_loop;
		}
	}
	p->n_workers = opt->workers > 0 ? opt->workers : 1;
	p->workers = calloc((size_t)p->n_workers, sizeof(*p->workers));
	if (p->workers == NULL)
		goto out_log;
	for (int i = 0; i < p->n_workers; i++) {
		if (sn_worker_init(&p->workers[i], p, i) != 0)
			goto out_workers;
		started = i + 1;
	}
	if (sn_dns_start(p) != 0)
		goto out_workers;
	if (opt->have_control_plane) {
		if (sn_cp_start(p) != 0)
			goto out_workers;
	} else if (load_config(p, 1) != 0) {
		rc = 2;
		goto out_workers;
	}
	p->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (p->sigfd < 0 || sn_io_start(&p->loop, &p->sig_io, p->sigfd, on_signal) != 0)
		goto out_workers;
	if (!opt->have_control_plane)
		watch_config(p);
	if (opt->have_admin && sn_admin_start(p) != 0)
		goto out_workers;

	p->workers_running = p->n_workers;
	for (int i = 0; i < p->n_workers; i++) {
		if (sn_worker_start(&p->workers[i]) != 0) {
			sn_log(SN_LOG_ERROR, "cannot start worker thread %d", i);
			p->workers_running = i;
			for (int j = 0; j < i; j++)
				sn_worker_post_stop(&p->workers[j]);
			for (int j = 0; j < i; j++)
				pthread_join(p->workers[j].thread, NULL);
			goto out_admin;
		}
	}
	/* In control-plane mode, ready comes with the first sync. */
	if (!opt->have_control_plane)
		p->ready = 1;
	char replicas[SN_CP_MAX_REPLICAS * sizeof(opt->control_plane[0].text)] = "";
	for (size_t i = 0, off = 0; i < opt->n_control_plane && off < sizeof(replicas); i++)
		off += (size_t)snprintf(replicas + off, sizeof(replicas) - off, "%s%s", i ? "," : "",
					opt->control_plane[i].text);
	sn_log(SN_LOG_INFO, "sinew-proxy %s: %soutbound %s, inbound %s -> app %s, admin %s, %d worker(s)%s%s",
	       p->ready ? "ready" : "started", opt->gateway ? "gateway (ports from its Gateways), " : "",
	       opt->have_outbound ? opt->outbound.text : "off",
	       opt->have_inbound ? opt->inbound.text : "off", opt->have_inbound ? opt->app.text : "-",
	       opt->have_admin ? opt->admin.text : "off", p->n_workers,
	       opt->have_control_plane ? (opt->n_control_plane > 1 ? ", control plane replicas " : ", control plane ")
				       : "",
	       replicas);

	sn_loop_run(&p->loop);

	for (int i = 0; i < p->n_workers; i++)
		pthread_join(p->workers[i].thread, NULL);
	sn_log(SN_LOG_INFO, "drain: done; exiting");
	rc = 0;
	/* Close the control link and let the loop free it. */
	sn_cp_stop(p);
	sn_loop_run_once(&p->loop, 0);

out_admin:
	sn_admin_stop(p);
out_workers:
	sn_dns_stop(p);
	for (int i = 0; i < started; i++)
		sn_worker_dispose(&p->workers[i]);
	for (int i = 0; i < started; i++)
		sn_metrics_free(p->workers[i].metrics);
	free(p->workers);
out_log:
	if (p->access_log != NULL)
		sn_access_log_close(p->access_log);
out_loop:
	if (p->sigfd >= 0) {
		sn_io_stop(&p->loop, &p->sig_io);
		close(p->sigfd);
	}
	if (p->inofd >= 0) {
		sn_io_stop(&p->loop, &p->ino_io);
		close(p->inofd);
	}
	sn_loop_dispose(&p->loop);
out:
	sn_cp_free(p);
	sn_ident_free(p);
	if (p->snap != NULL)
		sn_snapshot_unref(p->snap);
	sn_labels_free(&p->labels);
	free_tls(p);
	pthread_mutex_destroy(&p->snap_lock);
	free(p);
	return rc;
}
