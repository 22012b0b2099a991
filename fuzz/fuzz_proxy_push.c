/* Fuzz target: the messages a proxy reads from sinewd on its control link
 * (docs/internals/control-protocol.md): resources pushes (loaded and
 * translated with the config library, then published), error, and the
 * identity messages certificate, certificate_refused, bundle and renew.
 * The proxy's real discovery client (sn_cp_start, src/proxy/discovery.c)
 * connects to a stand-in sinewd made of the real transport in server role
 * (sn_xds_server) on an AF_UNIX socket in a temp dir, on the same loop;
 * the stand-in sends the input and reads the hello and acks.
 *
 * Input: byte 0 bit 0 gives the proxy an identity from a join token (as
 * `--token`, after its link opened, with a CSR in flight), so identity
 * messages reach identity.c; the rest is NDJSON, one message a line.
 * Every input starts a fresh discovery client and ends with nothing of it
 * left (snapshot, identity, TLS contexts, timers, connections). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sinew/join_token.h"
#include "sinew/tls_stream.h"
#include "sinew/xds.h"
#include "proxy/proxy.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_MAX_INPUT (256u << 10)
#define MAX_ITER 2000

struct sinewd {
	struct sn_xds_conn *c;
	int fd;
	int closed;
	size_t received;
};

static struct {
	int ready;
	struct sn_proxy p;
	struct sn_label lv[2];
	struct sn_labels labels;
	int lfd;
	char *token;
} F;

static void sd_message(struct sn_xds_conn *c, const char *msg, size_t len)
{
	struct sinewd *s = sn_xds_arg(c);
	s->received++;
}

static void sd_close(struct sn_xds_conn *c, const char *why)
{
	struct sinewd *s = sn_xds_arg(c);
	s->closed = 1;
	s->c = NULL;
	s->fd = -1;
}

static const struct sn_xds_ops sd_ops = { .on_message = sd_message, .on_close = sd_close };

static void setup(void)
{
	const char *dir = fz_tempdir("pxpush");
	struct sockaddr_un a;
	socklen_t al = fz_unix_addr(&a, dir, "sinewd.sock");
	struct sn_proxy *p = &F.p;

	fz_quiet();
	F.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (F.lfd < 0 || bind(F.lfd, (struct sockaddr *)&a, al) != 0 || listen(F.lfd, 16) != 0) {
		perror("fuzz: listen");
		exit(1);
	}
	if (sn_loop_init(&p->loop) != 0)
		abort();
	pthread_mutex_init(&p->snap_lock, NULL);
	F.lv[0] = (struct sn_label){ "app", "productpage" };
	F.lv[1] = (struct sn_label){ "version", "v1" };
	F.labels = (struct sn_labels){ F.lv, 2 };
	p->labels = F.labels;
	p->identity = (struct sn_proxy_identity){ .service = "productpage", .namespace_ = "default",
						  .service_account = "bookinfo-productpage", .labels = &F.labels };
	snprintf(p->principal, sizeof(p->principal), "spiffe://cluster.local/ns/default/sa/bookinfo-productpage");
	p->opt.service = "productpage";
	p->opt.have_control_plane = 1;
	memcpy(&p->opt.control_plane[0].ss, &a, sizeof(a));
	p->opt.control_plane[0].len = al;
	snprintf(p->opt.control_plane[0].text, sizeof(p->opt.control_plane[0].text), "fuzz-sinewd");
	p->opt.n_control_plane = 1;

	/* A join token for the identity mode: its claims are all the proxy
	 * reads (the MAC is sinewd's business). */
	static const uint8_t secret[SN_JOIN_TOKEN_SECRET_MIN] = { 1 };
	struct sn_join_token t = { .trust_domain = "cluster.local", .ns = "default", .sa = "bookinfo-productpage",
				   .expires_at = 4102444800 };
	size_t tl;
	if (sn_join_token_create(&t, secret, sizeof(secret), &F.token, &tl) != 0)
		abort();
	p->opt.token = F.token;
	F.ready = 1;
}

static int idle(const struct sinewd *s)
{
	if (F.p.loop.deferred.head != NULL)
		return 0;
	if (s->c != NULL && (sn_xds_queued(s->c) > 0 || !fz_fd_idle(s->fd)))
		return 0;
	return 1;
}

static void run_until_idle(struct sinewd *s)
{
	int quiet = 0;
	for (int i = 0; i < MAX_ITER && quiet < 2; i++) {
		sn_loop_run_once(&F.p.loop, 0);
		quiet = idle(s) ? quiet + 1 : 0;
	}
}

/* Connections the proxy made and we did not serve (a reconnect). */
static void drop_pending(void)
{
	int fd;
	while ((fd = accept4(F.lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
		close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sinewd s = { .fd = -1 };
	struct sn_proxy *p = &F.p;

	if (size == 0 || size > FZ_MAX_INPUT)
		return 0;
	if (!F.ready)
		setup();
	int with_identity = data[0] & 1;
	data++;
	size--;

	if (sn_cp_start(p) != 0)
		abort();
	int fd = accept4(F.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		abort();
	s.fd = fd;
	s.c = sn_xds_server(&p->loop, fd, NULL, &sd_ops, &s);
	if (s.c == NULL)
		abort();
	for (int i = 0; i < MAX_ITER && !sn_cp_is_open(p); i++)
		sn_loop_run_once(&p->loop, 0);
	if (!sn_cp_is_open(p))
		abort();
	if (with_identity) {
		if (sn_ident_init(p) != 0)
			abort();
		sn_ident_on_open(p);   /* no key yet: a CSR goes out, its key pending */
	}
	run_until_idle(&s);

	const char *m = (const char *)data, *end = m + size;
	while (m < end && s.c != NULL) {
		const char *nl = memchr(m, '\n', (size_t)(end - m));
		size_t len = nl ? (size_t)(nl - m) : (size_t)(end - m);
		sn_xds_send(s.c, m, len);
		m += len + 1;
	}
	run_until_idle(&s);

	/* Shut the client down as sinew-proxy does, then drop what it made. */
	sn_cp_stop(p);
	if (s.c != NULL)
		sn_xds_close(s.c, "fuzz input done");
	for (int i = 0; i < MAX_ITER && (!s.closed || p->loop.deferred.head != NULL); i++)
		sn_loop_run_once(&p->loop, 0);
	sn_loop_run_once(&p->loop, 0);   /* reclaim */
	if (!s.closed)
		abort();
	drop_pending();
	sn_ident_free(p);
	sn_cp_free(p);
	sn_tls_ctx_free(p->tls_server);
	sn_tls_ctx_free(p->tls_client);
	p->tls_server = p->tls_client = NULL;
	if (p->snap != NULL)
		sn_snapshot_unref(p->snap);
	p->snap = NULL;
	p->version = 0;
	p->ready = 0;
	p->cp_synced = 0;
	memset(&p->proc, 0, sizeof(p->proc));
	return 0;
}
