/* Unit tests for the mTLS stream layer: real loopback TCP pairs driven by
 * a real loop (sinew/loop.h), certificates issued by the identity
 * library's CA. Handshakes and peer IDs, each refusal (wrong expected ID,
 * no client certificate, untrusted CA, TLS 1.2), 1 MiB both ways through
 * small socket buffers, close_notify and truncation, resumption, a
 * certificate swap under a live connection, the memory an idle
 * connection holds, and the real `openssl s_client` against a stream. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "sinew/identity.h"
#include "sinew/loop.h"
#include "sinew/tls_stream.h"

#define TD "cluster.local"
#define REVIEWS "spiffe://cluster.local/ns/default/sa/reviews"
#define RATINGS "spiffe://cluster.local/ns/default/sa/ratings"
#define PRODUCTPAGE "spiffe://cluster.local/ns/default/sa/productpage"
#define MIB (1024 * 1024)

/* ---- counting OpenSSL's heap (and the stream's: it allocates through
 * OPENSSL_malloc) to measure what an idle connection holds ---- */

static int64_t live_bytes;
static int counting;

static void *cnt_malloc(size_t n, const char *file, int line)
{
	size_t *p = malloc(n + 16);
	if (p == NULL)
		return NULL;
	p[0] = n;
	__atomic_add_fetch(&live_bytes, (int64_t)n, __ATOMIC_RELAXED);
	return (char *)p + 16;
}

static void cnt_free(void *ptr, const char *file, int line)
{
	if (ptr == NULL)
		return;
	size_t *p = (size_t *)((char *)ptr - 16);
	__atomic_sub_fetch(&live_bytes, (int64_t)p[0], __ATOMIC_RELAXED);
	free(p);
}

static void *cnt_realloc(void *ptr, size_t n, const char *file, int line)
{
	if (ptr == NULL)
		return cnt_malloc(n, file, line);
	if (n == 0) {
		cnt_free(ptr, file, line);
		return NULL;
	}
	size_t *p = (size_t *)((char *)ptr - 16);
	size_t old = p[0];
	size_t *q = realloc(p, n + 16);
	if (q == NULL)
		return NULL;
	q[0] = n;
	__atomic_add_fetch(&live_bytes, (int64_t)n - (int64_t)old, __ATOMIC_RELAXED);
	return (char *)q + 16;
}

/* ---- identities ---- */

struct ident {
	EVP_PKEY *key;
	char *chain;
	X509 *leaf;
};

static struct sn_ca *ca1, *ca2;
static struct sn_trust_bundle *bundle1, *bundle2;
static struct ident id_reviews, id_ratings, id_productpage, id_reviews_ca2, id_productpage_ca2;

static void issue(struct sn_ca *ca, const char *sa, struct ident *out)
{
	struct sn_svid_params p = { .ns = "default", .sa = sa };
	struct sn_id_error err;
	char *csr = NULL;
	size_t len = 0;

	assert_int_equal(sn_workload_key_generate(&out->key), 0);
	assert_int_equal(sn_workload_csr_pem(out->key, NULL, &csr, &len), 0);
	if (sn_ca_sign_csr(ca, csr, len, &p, &out->chain, &len, &err) != 0)
		fail_msg("sign: %s", err.msg);
	free(csr);
	BIO *b = BIO_new_mem_buf(out->chain, -1);
	out->leaf = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(out->leaf);
}

static void ident_free(struct ident *i)
{
	EVP_PKEY_free(i->key);
	free(i->chain);
	X509_free(i->leaf);
	memset(i, 0, sizeof(*i));
}

static struct sn_tls_identity tls_id(const struct ident *i, const struct sn_trust_bundle *b)
{
	struct sn_tls_identity t = { .bundle = b };
	if (i != NULL) {
		t.key = i->key;
		t.chain_pem = i->chain;
		t.chain_len = strlen(i->chain);
	}
	return t;
}

static const char *const alpn_h1[] = { SN_TLS_ALPN_H1 };

static struct sn_tls_ctx *server_ctx(const struct ident *i, const struct sn_trust_bundle *b)
{
	struct sn_tls_ctx_opts o = { .role = SN_TLS_SERVER, .require_client_cert = 1,
				     .alpn = alpn_h1, .n_alpn = 1 };
	struct sn_tls_identity t = tls_id(i, b);
	struct sn_tls_ctx *ctx = NULL;
	struct sn_id_error err;

	if (sn_tls_ctx_new(&o, &t, &ctx, &err) != 0)
		fail_msg("server ctx: %s", err.msg);
	return ctx;
}

static struct sn_tls_ctx *client_ctx(const struct ident *i, const struct sn_trust_bundle *b)
{
	struct sn_tls_ctx_opts o = { .role = SN_TLS_CLIENT, .alpn = alpn_h1, .n_alpn = 1 };
	struct sn_tls_identity t = tls_id(i, b);
	struct sn_tls_ctx *ctx = NULL;
	struct sn_id_error err;

	if (sn_tls_ctx_new(&o, &t, &ctx, &err) != 0)
		fail_msg("client ctx: %s", err.msg);
	return ctx;
}

/* ---- sockets ---- */

static void nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

static int listen_any(int *port, int bufsz)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int one = 1;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(l >= 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bufsz) {
		setsockopt(l, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
		setsockopt(l, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	}
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 64), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
	*port = ntohs(a.sin_port);
	return l;
}

/* A connected loopback pair, both non-blocking. bufsz > 0 shrinks the
 * socket buffers so that large writes come back partial. */
static void tcp_pair(int *cfd, int *sfd, int bufsz)
{
	int port;
	int l = listen_any(&port, bufsz);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (bufsz) {
		setsockopt(c, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
		setsockopt(c, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	}
	assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
	int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(s >= 0);
	close(l);
	nonblock(c);
	nonblock(s);
	*cfd = c;
	*sfd = s;
}

/* ---- one end of a connection, driven by the loop ---- */

struct end {
	struct sn_io io;
	struct sn_tls_stream *s;
	SSL *raw;                 /* a plain OpenSSL peer instead of s */
	int fd;
	int hs;                   /* 1 pending, 0 done, < 0 failed */
	const unsigned char *tx;
	size_t tx_len, tx_off;
	int tx_eagain, tx_partial;
	unsigned char *rx;
	size_t rx_cap, rx_len;
	int rd;                   /* 1 reading, 0 not, < 0 final read result */
	int hs_eagain_w;          /* handshake asked for write readiness */
};

static void step(struct end *e)
{
	if (e->raw != NULL) {
		if (e->hs == 1) {
			int r = SSL_do_handshake(e->raw);
			if (r == 1)
				e->hs = 0;
			else if (SSL_get_error(e->raw, r) != SSL_ERROR_WANT_READ &&
				 SSL_get_error(e->raw, r) != SSL_ERROR_WANT_WRITE)
				e->hs = -1;
			ERR_clear_error();
		}
		return;
	}
	if (e->hs == 1) {
		int r = sn_tls_stream_handshake(e->s);
		if (r == SN_EAGAIN) {
			unsigned w = sn_tls_stream_want(e->s);
			assert_true(w == SN_TLS_WANT_READ || w == SN_TLS_WANT_WRITE);
			if (w & SN_TLS_WANT_WRITE)
				e->hs_eagain_w++;
			return;
		}
		e->hs = r;
		if (r < 0)
			return;
	}
	while (e->tx_off < e->tx_len) {
		size_t want = e->tx_len - e->tx_off;
		ssize_t n = sn_tls_stream_write(e->s, e->tx + e->tx_off, want);
		if (n == SN_EAGAIN) {
			assert_int_equal(sn_tls_stream_want(e->s), SN_TLS_WANT_WRITE);
			e->tx_eagain++;
			break;
		}
		if (n < 0)
			fail_msg("write: %zd %s", n, sn_tls_stream_error(e->s));
		if ((size_t)n < want)
			e->tx_partial++;
		e->tx_off += (size_t)n;
	}
	while (e->rd == 1) {
		unsigned char scratch[4096];
		unsigned char *p = scratch;
		size_t cap = sizeof(scratch);
		if (e->rx != NULL && e->rx_len < e->rx_cap) {
			p = e->rx + e->rx_len;
			cap = SN_MIN((size_t)16384, e->rx_cap - e->rx_len);
		}
		ssize_t n = sn_tls_stream_read(e->s, p, cap);
		if (n == SN_EAGAIN)
			break;
		if (n <= 0) {
			e->rd = (int)n;
			break;
		}
		if (p != scratch)
			e->rx_len += (size_t)n;
		else if (e->rx != NULL)
			fail_msg("read past the expected data");
	}
}

static void on_io(struct sn_loop *loop, struct sn_io *io, unsigned events)
{
	step(sn_container_of(io, struct end, io));
}

static struct sn_loop loop;

static void end_start(struct end *e, struct sn_tls_ctx *ctx, int fd, const struct sn_tls_conn_opts *co)
{
	memset(e, 0, sizeof(*e));
	e->fd = fd;
	e->hs = 1;
	if (ctx != NULL)
		assert_int_equal(sn_tls_stream_new(ctx, fd, co, &e->s), 0);
	assert_int_equal(sn_io_start(&loop, &e->io, fd, on_io), 0);
}

/* Closes as the proxy will: close_notify when the session is up (an SSL
 * freed without it leaves its session unresumable). */
static void end_stop(struct end *e)
{
	sn_io_stop(&loop, &e->io);
	if (e->s != NULL && (sn_tls_stream_state(e->s) == SN_TLS_STATE_OPEN ||
			     sn_tls_stream_state(e->s) == SN_TLS_STATE_CLOSED))
		sn_tls_stream_shutdown(e->s);
	sn_tls_stream_free(e->s);
	SSL_free(e->raw);
	if (e->fd >= 0)
		close(e->fd);
	free(e->rx);
	memset(e, 0, sizeof(*e));
	e->fd = -1;
}

typedef int (*cond_fn)(struct end *a, struct end *b);

/* Runs the loop until cond holds or 5 s pass (then fails). */
static void run_until(struct end *a, struct end *b, cond_fn cond)
{
	uint64_t deadline = sn_clock_ms() + 5000;

	step(a);
	if (b != NULL)
		step(b);
	while (!cond(a, b)) {
		if (sn_clock_ms() > deadline)
			fail_msg("timed out: a hs=%d rd=%d tx=%zu/%zu rx=%zu; b hs=%d rd=%d tx=%zu/%zu rx=%zu",
				 a->hs, a->rd, a->tx_off, a->tx_len, a->rx_len,
				 b ? b->hs : 9, b ? b->rd : 9, b ? b->tx_off : 0, b ? b->tx_len : 0,
				 b ? b->rx_len : 0);
		assert_int_equal(sn_loop_run_once(&loop, 50), 0);
	}
}

static int both_hs_settled(struct end *a, struct end *b)
{
	return a->hs != 1 && b->hs != 1;
}

static int hs_settled_a(struct end *a, struct end *b)
{
	return a->hs != 1;
}

static int hs_settled_b(struct end *a, struct end *b)
{
	return b->hs != 1;
}

/* Connects client ctx cc to server ctx sc over a fresh pair. */
static void connect_pair(struct end *c, struct end *s, struct sn_tls_ctx *cc, struct sn_tls_ctx *sc,
			 const struct sn_tls_conn_opts *co, int bufsz)
{
	int cfd, sfd;

	tcp_pair(&cfd, &sfd, bufsz);
	end_start(c, cc, cfd, co);
	end_start(s, sc, sfd, NULL);
}

static const char *const expect_reviews[] = { REVIEWS };

static const struct sn_tls_conn_opts to_reviews = {
	.expected_ids = expect_reviews, .n_expected = 1,
};

/* Sends msg from a to b and checks it arrives. */
static void exchange(struct end *a, struct end *b, const char *msg)
{
	size_t n = strlen(msg);

	a->tx = (const unsigned char *)msg;
	a->tx_len = n;
	a->tx_off = 0;
	free(b->rx);
	b->rx = calloc(1, n + 1);
	b->rx_cap = n;
	b->rx_len = 0;
	b->rd = 1;
	a->rd = 1;   /* keep draining (tickets, alerts) */
	uint64_t deadline = sn_clock_ms() + 5000;
	step(a);
	step(b);
	while (b->rx_len < n) {
		if (sn_clock_ms() > deadline || b->rd < 0 || a->rd < 0)
			fail_msg("exchange stuck: rx %zu/%zu rd a=%d b=%d: %s %s", b->rx_len, n, a->rd, b->rd,
				 sn_tls_stream_error(a->s), sn_tls_stream_error(b->s));
		assert_int_equal(sn_loop_run_once(&loop, 50), 0);
	}
	assert_memory_equal(b->rx, msg, n);
}

/* ---- tests ---- */

static void test_handshake_ok(void **state)
{
	struct sn_tls_ctx *sc = server_ctx(&id_reviews, bundle1);
	struct sn_tls_ctx *cc = client_ctx(&id_productpage, bundle1);
	struct end c, s;

	connect_pair(&c, &s, cc, sc, &to_reviews, 0);
	run_until(&c, &s, both_hs_settled);
	if (c.hs != 0 || s.hs != 0)
		fail_msg("client %d: %s / server %d: %s", c.hs, sn_tls_stream_error(c.s), s.hs,
			 sn_tls_stream_error(s.s));
	assert_string_equal(sn_tls_stream_peer_id(c.s), REVIEWS);
	assert_string_equal(sn_tls_stream_peer_id(s.s), PRODUCTPAGE);
	assert_true(sn_str_eq_cstr(sn_tls_stream_alpn(c.s), SN_TLS_ALPN_H1));
	assert_true(sn_str_eq_cstr(sn_tls_stream_alpn(s.s), SN_TLS_ALPN_H1));
	assert_int_equal(SSL_version(sn_tls_stream_ssl(c.s)), TLS1_3_VERSION);
	const char *suite = SSL_get_cipher_name(sn_tls_stream_ssl(s.s));
	assert_true(strcmp(suite, "TLS_AES_128_GCM_SHA256") == 0 || strcmp(suite, "TLS_AES_256_GCM_SHA384") == 0 ||
		    strcmp(suite, "TLS_CHACHA20_POLY1305_SHA256") == 0);
	assert_int_equal(sn_tls_stream_state(c.s), SN_TLS_STATE_OPEN);
	assert_string_equal(sn_tls_state_str(sn_tls_stream_state(c.s)), "open");
	assert_int_equal(sn_tls_stream_resumed(c.s), 0);
	assert_string_equal(sn_tls_stream_error(c.s), "");

	exchange(&c, &s, "GET / HTTP/1.1\r\nhost: reviews\r\n\r\n");
	exchange(&s, &c, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");

	end_stop(&c);
	end_stop(&s);
	sn_tls_ctx_free(cc);
	sn_tls_ctx_free(sc);
}

/* Waits (bounded) until fd has one of the events. */
static void wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	assert_true(poll(&p, 1, 5000) >= 0);
}

/* The TLS transport (sinew/xprt.h) as the proxy drives it: handshake,
 * writev/read, peer ID and ALPN through the ops, shutdown seen by the
 * peer as SN_ECLOSED, close freeing the stream and the socket. */
static void test_xprt_tls(void **state)
{
	(void)state;
	struct sn_tls_ctx *sc = server_ctx(&id_reviews, bundle1);
	struct sn_tls_ctx *cc = client_ctx(&id_productpage, bundle1);
	struct sn_xprt c, s;
	int cfd, sfd;

	tcp_pair(&cfd, &sfd, 0);
	sn_xprt_init(&c, cfd);
	sn_xprt_init(&s, sfd);
	assert_string_equal(c.ops->name, "tcp");
	assert_int_equal(sn_xprt_tls(&c, cc, &to_reviews), 0);
	assert_int_equal(sn_xprt_tls(&s, sc, NULL), 0);
	assert_string_equal(c.ops->name, "tls");
	assert_true(sn_xprt_has(&c, SN_XPRT_SECURE) && sn_xprt_has(&c, SN_XPRT_CROSSED_READINESS));
	assert_false(sn_xprt_has(&c, SN_XPRT_SHORT_IO_FINAL));
	/* Before the handshake nothing can end the stream. */
	assert_int_equal(sn_xprt_shutdown(&c), SN_EAGAIN);

	int rc = SN_EAGAIN, rs = SN_EAGAIN;
	uint64_t deadline = sn_clock_ms() + 5000;
	while ((rc != 0 || rs != 0) && sn_clock_ms() < deadline) {
		if (rc != 0)
			rc = sn_xprt_handshake(&c);
		if (rs != 0)
			rs = sn_xprt_handshake(&s);
		assert_true(rc == 0 || rc == SN_EAGAIN);
		assert_true(rs == 0 || rs == SN_EAGAIN);
		struct pollfd p[2] = { { .fd = cfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
		poll(p, 2, 50);
	}
	assert_int_equal(rc, 0);
	assert_int_equal(rs, 0);
	assert_string_equal(sn_xprt_peer_id(&c), REVIEWS);
	assert_string_equal(sn_xprt_peer_id(&s), PRODUCTPAGE);
	assert_true(sn_str_eq_cstr(sn_xprt_alpn(&s), SN_TLS_ALPN_H1));
	assert_string_equal(sn_xprt_error(&s), "");

	struct iovec iov[2] = { { "ab", 2 }, { "cdef", 4 } };
	assert_int_equal(sn_xprt_writev(&c, iov, 2), 6);
	char buf[16];
	size_t got = 0;
	while (got < 6 && sn_clock_ms() < deadline) {
		ssize_t n = sn_xprt_read(&s, buf + got, sizeof(buf) - got);
		if (n == SN_EAGAIN) {
			assert_int_equal(sn_xprt_want(&s), SN_XPRT_WANT_READ);
			wait_fd(sfd, POLLIN);
			continue;
		}
		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_int_equal(got, 6);
	assert_memory_equal(buf, "abcdef", 6);

	/* Half-close: close_notify and FIN; the server reads the end and
	 * can still answer. */
	assert_int_equal(sn_xprt_shutdown(&c), 0);
	ssize_t n;
	while ((n = sn_xprt_read(&s, buf, sizeof(buf))) == SN_EAGAIN && sn_clock_ms() < deadline)
		wait_fd(sfd, POLLIN);
	assert_int_equal(n, SN_ECLOSED);
	assert_int_equal(sn_xprt_write(&s, "late", 4), 4);
	got = 0;
	while (got < 4 && sn_clock_ms() < deadline) {
		n = sn_xprt_read(&c, buf + got, sizeof(buf) - got);
		if (n == SN_EAGAIN) {
			wait_fd(cfd, POLLIN);
			continue;
		}
		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_memory_equal(buf, "late", 4);

	sn_xprt_close(&c, 1);
	sn_xprt_close(&s, 1);
	assert_int_equal(c.fd, -1);
	assert_ptr_equal(c.layer, NULL);
	assert_string_equal(c.ops->name, "tcp");
	sn_xprt_close(&c, 1);   /* an empty transport: nothing to do */
	sn_tls_ctx_free(cc);
	sn_tls_ctx_free(sc);
}

static void test_wrong_expected_server(void **state)
{
	struct sn_tls_ctx *sc = server_ctx(&id_ratings, bundle1);
	struct sn_tls_ctx *cc = client_ctx(&id_productpage, bundle1);
	struct end c, s;

	connect_pair(&c, &s, cc, sc, &to_reviews, 0);
	run_until(&c, &s, both_hs_settled);
	assert_int_equal(c.hs, SN_EINVAL);
	const char *msg = sn_tls_stream_error(c.s);
	if (strstr(msg, "peer presented " RATINGS ", expected " REVIEWS) == NULL ||
	    strstr(msg, "TLS handshake with 127.0.0.1:") == NULL)
		fail_msg("message: %s", msg);
	assert_int_equal(sn_tls_stream_id_err(c.s), SN_ID_E_ID_NOT_ALLOWED);
	assert_null(sn_tls_stream_peer_id(c.s));
	assert_int_equal(sn_tls_stream_state(c.s), SN_TLS_STATE_FAILED);
	/* The server learns through the alert; it may not have finished. */
	assert_true(s.hs < 0);
	/* Every later call repeats the failure. */
	char b[8];
	assert_int_equal(sn_tls_stream_read(c.s, b, sizeof(b)), SN_EINVAL);
	assert_int_equal(sn_tls_stream_write(c.s, "x", 1), SN_EINVAL);

	/* Several expected: the message lists them. */
	end_stop(&c);
	end_stop(&s);
	const char *const two[] = { REVIEWS, PRODUCTPAGE };
	struct sn_tls_conn_opts co = { .expected_ids = two, .n_expected = 2 };
	connect_pair(&c, &s, cc, sc, &co, 0);
	run_until(&c, &s, both_hs_settled);
	assert_int_equal(c.hs, SN_EINVAL);
	if (strstr(sn_tls_stream_error(c.s), "expected one of " REVIEWS ", " PRODUCTPAGE) == NULL)
		fail_msg("message: %s", sn_tls_stream_error(c.s));
	end_stop(&c);
	end_stop(&s);

	/* No expected set: any ID of the trust domain. */
	connect_pair(&c, &s, cc, sc, NULL, 0);
	run_until(&c, &s, both_hs_settled);
	assert_int_equal(c.hs, 0);
	assert_string_equal(sn_tls_stream_peer_id(c.s), RATINGS);
	end_stop(&c);
	end_stop(&s);
	sn_tls_ctx_free(cc);
	sn_tls_ctx_free(sc);
}

static void test_client_without_cert(void **state)
{
	struct sn_tls_ctx *sc = server_ctx(&id_reviews, bundle1);
	struct sn_tls_ctx *cc = client_ctx(NULL, bundle1);
	struct end c, s;

	connect_pair(&c, &s, cc, sc, &to_reviews, 0);
	c.rd = 1;
	run_until(&c, &s, hs_settled_b);
	assert_true(s.hs < 0);
	if (strstr(sn_tls_stream_error(s.s), "did not return a certificate") == NULL)
		fail_msg("server: %s", sn_tls_stream_error(s.s));
	/* TLS 1.3: the client finishes first and hears the refusal as an
	 * alert on its first read. */
	run_until(&c, &s, hs_settled_a);
	if (c.hs == 0) {
		uint64_t deadline = sn_clock_ms() + 5000;
		step(&c);
		while (c.rd == 1 && sn_clock_ms() < deadline)
			sn_loop_run_once(&loop, 50);
		assert_true(c.rd < 0 && c.rd != SN_ECLOSED);
	}
	if (strstr(sn_tls_stream_error(c.s), "certificate required") == NULL)
		fail_msg("client: %s", sn_tls_stream_error(c.s));
	end_stop(&c);
	end_stop(&s);
	sn_tls_ctx_free(cc);
	sn_tls_ctx_free(sc);
}

static void test_untrusted_ca(void **state)
{
	struct end c, s;

	/* A server whose certificate comes from another CA. */
	struct sn_tls_ctx *sc = server_ctx(&id_reviews_ca2, bundle2);
	struct sn_tls_ctx *cc = client_ctx(&id_productpage, bundle1);
	connect_pair(&c, &s, cc, sc, &to_reviews, 0);
	run_until(&c, &s, both_hs_settled);
	assert_int_equal(c.hs, SN_EINVAL);
	assert_int_equal(sn_tls_stream_id_err(c.s), SN_ID_E_UNTRUSTED);
	if (strstr(sn_tls_stream_error(c.s), "chain does not lead to a trusted root of trust domain cluster.local") == NULL)
		fail_msg("client: %s", sn_tls_stream_error(c.s));
	assert_true(s.hs < 0);
	end_stop(&c);
	end_stop(&s);
	sn_tls_ctx_free(cc);
	sn_tls_ctx_free(sc);

	/* A client whose certificate comes from another CA. */
	sc = server_ctx(&id_reviews, bundle1);
	cc = client_ctx(&id_productpage_ca2, bundle1);
	connect_pair(&c, &s, cc, sc, &to_reviews, 0);
	run_until(&c, &s, hs_settled_b);
	assert_int_equal(s.hs, SN_EINVAL);
	assert_int_equal(sn_tls_stream_id_err(s.s), SN_ID_E_UNTRUSTED);
	if (strstr(sn_tls_stream_error(s.s), "chain does not lead to a trusted root") == NULL)
		fail_msg("server: %s", sn_tls_stream_error(s.s));
	end_stop(&c);
	end_stop(&s);
	sn_tls_ctx_free(cc);
	sn_tls_ctx_free(sc);
}

static void test_tls12_client_refused(void **state)
{
	struct sn_tls_ctx *sc = server_ctx(&id_reviews, bundle1);
	SSL_CTX *raw = SSL_CTX_new(TLS_client_method());
	struct end c, s;
	int cfd, sfd;

	assert_non_null(raw);
	SSL_CTX_set_max_proto_version(raw, TLS1_2_VERSION);
	SSL_CTX_set_verify(raw, SSL_VERIFY_NONE, NULL);
	tcp_pair(&cfd, &sfd, 0);
	end_start(&c, NULL, cfd, NULL);
	c.raw = SSL_new(raw);
	SSL_set_fd(c.raw, cfd);
	SSL_set_connect_state(c.raw);
	end_start(&s, sc, sfd, NULL);
	run_until(&c, &s, both_hs_settled);
	assert_int_equal(c.hs, -1);
	assert_true(s.hs < 0);
	if (strstr(sn_tls_stream_error(s.s), "unsupported protocol") == NULL)
		fail_msg("server: %s", sn_tls_stream_error(s.s));
	end_stop(&c);
	end_stop(&s);
	SSL_CTX_free(raw);
	sn_tls_ctx_free(sc);
}

static void test_alpn_mismatch(void **state)
{
	static const char *const h2_only[] = { SN_TLS_ALPN_H2 };
	struct sn_tls_ctx_opts o = { .role = SN_TLS_CLIENT, .alpn = h2_only, .n_alpn = 1 };
	struct sn_tls_identity t = tls_id(&id_productpage, bundle1);
	struct sn_tls_ctx *sc = server_ctx(&id_reviews, bundle1), *cc = NULL;
	struct sn_id_error err;
	struct end c, s;

	assert_int_equal(sn_tls_ctx_new(&o, &t, &cc, &err), 0);
	connect_pair(&c, &s, cc, sc, &to_reviews, 0);
	run_until(&c, &s, both_hs_settled);
	assert_true(c.hs < 0 && s.hs < 0);
	if (strstr(sn_tls_stream_error(c.s), "no application protocol") == NULL)
		fail_msg("client: %s", sn_tls_stream_error(c.s));
	end_stop(&c);
	end_stop(&s);
	sn_tls_ctx_free(cc);

	/* A client that offers no ALPN at all is served, with none. */
	o.alpn = NULL;
	o.n_alpn = 0;
	assert_int_equal(sn_tls_ctx_new(&o, &t, &cc, &err), 0);
	connect_pair(&c, &s, cc, sc, &to_reviews, 0);
	run_until(&c, &s, both_hs_settled);
	assert_int_equal(s.hs, 0);
	assert_int_equal(sn_tls_stream_alpn(s.s).len, 0);
	end_stop(&c);
	end_stop(&s);
	sn_tls_ctx_free(cc);
	sn_tls_ctx_free(sc);
}

/* Protocol detection has read the start of the ClientHello: the stream
 * is given those bytes back and the handshake goes on. */
static void test_detection_prefix(void **state)
{
	struct sn_tls_ctx *sc = server_ctx(&id_reviews, bundle1);
	struct sn_tls_ctx *cc = client_ctx(&id_productpage, bundle1);
	struct end c, s;
	int cfd, sfd;
	unsigned char head[5];

	tcp_pair(&cfd, &sfd, 0);
	end_start(&c, cc, cfd, &to_reviews);
	step(&c);   /* ClientHello out */
	ssize_t n;
	uint64_t deadline = sn_clock_ms() + 5000;
	do
		n = read(sfd, head, sizeof(head));
	while (n < 0 && errno == EAGAIN && sn_clock_ms() < deadline);
	assert_int_equal(n, 5);
	assert_int_equal(head[0], 0x16);   /* handshake record: TLS detected */
	end_start(&s, sc, sfd, NULL);
	assert_int_equal(sn_tls_stream_set_prefix(s.s, head, sizeof(head)), 0);
	assert_int_equal(sn_tls_stream_set_prefix(s.s, head, sizeof(head)), SN_EINVAL);
	run_until(&c, &s, both_hs_settled);
	assert_int_equal(c.hs, 0);
	assert_int_equal(s.hs, 0);
	exchange(&c, &s, "after detection");
	end_stop(&c);
	end_stop(&s);
	sn_tls_ctx_free(cc);
	sn_tls_ctx_free(sc);
}

static unsigned char *pattern(size_t n, unsigned seed)
{
	unsigned char *p = malloc(n);
	uint32_t x = seed;

	assert_non_null(p);
	for (size_t i = 0; i < n; i++) {
		x = x * 1664525u + 1013904223u;
		p[i] = (unsigned char)(x >> 24);
	}
	return p;
}

static int transfer_done(struct end *a, struct end *b)
{
	return a->tx_off == a->tx_len && b->tx_off == b->tx_len && a->rx_len == a->rx_cap &&
	       b->rx_len == b->rx_cap;
}

static void test_mib_both_ways(void **state)
{
	struct sn_tls_ctx *sc = server_ctx(&id_reviews, bundle1);
	struct sn_tls_ctx *cc = client_ctx(&id_productpage, bundle1);
	struct end c, s;
	unsigned char *up = pattern(MIB, 1), *down = pattern(MIB, 2);

	/* 8 KiB socket buffers: most writes come back partial. */
	connect_pair(&c, &s, cc, sc, &to_reviews, 8192);
	run_until(&c, &s, both_hs_settled);
	assert_int_equal(c.hs, 0);
	assert_int_equal(s.hs, 0);
	c.tx = up;
	c.tx_len = MIB;
	s.tx = down;
	s.tx_len = MIB;
	c.rx = malloc(MIB);
	c.rx_cap = MIB;
	s.rx = malloc(MIB);
	s.rx_cap = MIB;
	c.rd = s.rd = 1;
	run_until(&c, &s, transfer_done);
	assert_memory_equal(s.rx, up, MIB);
	assert_memory_equal(c.rx, down, MIB);
	assert_true(c.tx_eagain > 0 && s.tx_eagain > 0);
	assert_true(c.tx_partial > 0 && s.tx_partial > 0);
	print_message("1 MiB each way: client %d partial writes, %d EAGAIN; server %d, %d\n",
		      c.tx_partial, c.tx_eagain, s.tx_partial, s.tx_eagain);
	end_stop(&c);
	end_stop(&s);
	free(up);
	free(down);
	sn_tls_ctx_free(cc);
	sn_tls_ctx_free(sc);
}

static int rd_final_b(struct end *a, struct end *b)
{
	return b->rd != 1;
}

static int rd_final_a(struct end *a, struct end *b)
{
	return a->rd != 1;
}

static void test_close_notify(void **state)
{
	struct sn_tls_ctx *sc = server_ctx(&id_reviews, bundle1);
	struct sn_tls_ctx *cc = client_ctx(&id_productpage, bundle1);
	struct end c, s;

	connect_pair(&c, &s, cc, sc, &to_reviews, 0);
	run_until(&c, &s, both_hs_settled);
	exchange(&c, &s, "last words");
	c.rd = 0;
	s.rd = 1;
	assert_int_equal(sn_tls_stream_shutdown(c.s), 0);
	assert_int_equal(sn_tls_stream_state(c.s), SN_TLS_STATE_SHUTDOWN);
	assert_true(sn_tls_stream_write(c.s, "x", 1) < 0);
	run_until(&c, &s, rd_final_b);
	assert_int_equal(s.rd, SN_ECLOSED);
	assert_int_equal(sn_tls_stream_state(s.s), SN_TLS_STATE_CLOSED);
	/* Half-close: the server may still answer, then closes too. */
	s.tx = (const unsigned char *)"bye";
	s.tx_len = 3;
	s.rd = 0;
	step(&s);
	assert_int_equal(sn_tls_stream_shutdown(s.s), 0);
	c.rx = calloc(1, 4);
	c.rx_cap = 3;
	c.rd = 1;
	run_until(&c, &s, rd_final_a);
	assert_int_equal(c.rd, SN_ECLOSED);
	assert_memory_equal(c.rx, "bye", 3);
	end_stop(&c);
	end_stop(&s);

	/* A TCP close without close_notify is a truncation, not an end. */
	connect_pair(&c, &s, cc, sc, &to_reviews, 0);
	run_until(&c, &s, both_hs_settled);
	exchange(&c, &s, "x");
	sn_io_stop(&loop, &c.io);
	sn_tls_stream_free(c.s);
	c.s = NULL;
	close(c.fd);
	c.fd = -1;
	s.rd = 1;
	free(s.rx);
	s.rx = NULL;
	run_until(&s, NULL, rd_final_a);
	assert_int_equal(s.rd, SN_EIO);
	if (strstr(sn_tls_stream_error(s.s), "without close_notify") == NULL)
		fail_msg("server: %s", sn_tls_stream_error(s.s));
	end_stop(&c);
	end_stop(&s);
	sn_tls_ctx_free(cc);
	sn_tls_ctx_free(sc);
}

static void test_hot_swap(void **state)
{
	struct sn_tls_ctx *sc = server_ctx(&id_reviews, bundle1);
	struct sn_tls_ctx *cc = client_ctx(&id_productpage, bundle1);
	struct end c1, s1, c2, s2;
	struct ident renewed;
	struct sn_id_error err;

	connect_pair(&c1, &s1, cc, sc, &to_reviews, 0);
	run_until(&c1, &s1, both_hs_settled);
	assert_int_equal(c1.hs, 0);
	exchange(&c1, &s1, "before");

	/* The leaf renews: a new key and certificate for the same ID. */
	issue(ca1, "reviews", &renewed);
	struct sn_tls_identity t = tls_id(&renewed, bundle1);
	if (sn_tls_ctx_update(sc, &t, &err) != 0)
		fail_msg("update: %s", err.msg);
	assert_int_equal(sn_tls_ctx_generation(sc), 1);
	/* A bad update leaves the context as it was. */
	struct sn_tls_identity bad = tls_id(&id_ratings, bundle1);
	bad.key = renewed.key;   /* key of another certificate */
	assert_int_equal(sn_tls_ctx_update(sc, &bad, &err), SN_EINVAL);
	assert_int_equal(sn_tls_ctx_generation(sc), 1);

	/* The old connection goes on, both ways, on its old certificate. */
	exchange(&c1, &s1, "after the swap");
	exchange(&s1, &c1, "still here");
	assert_int_equal(X509_cmp(SSL_get0_peer_certificate(sn_tls_stream_ssl(c1.s)), id_reviews.leaf), 0);

	/* A new handshake presents the new certificate. */
	connect_pair(&c2, &s2, cc, sc, &to_reviews, 0);
	run_until(&c2, &s2, both_hs_settled);
	assert_int_equal(c2.hs, 0);
	assert_int_equal(s2.hs, 0);
	assert_int_equal(X509_cmp(SSL_get0_peer_certificate(sn_tls_stream_ssl(c2.s)), renewed.leaf), 0);
	assert_string_equal(sn_tls_stream_peer_id(c2.s), REVIEWS);
	exchange(&c2, &s2, "new");
	exchange(&c1, &s1, "old still works");

	/* The context may go before nothing: free the new first, then the
	 * old connection still holds the old SSL_CTX until it ends. */
	end_stop(&c2);
	end_stop(&s2);
	end_stop(&c1);
	end_stop(&s1);
	ident_free(&renewed);
	sn_tls_ctx_free(cc);
	sn_tls_ctx_free(sc);
}

static void test_resumption(void **state)
{
	struct sn_tls_ctx *sc = server_ctx(&id_reviews, bundle1);
	struct sn_tls_ctx *cc = client_ctx(&id_productpage, bundle1);
	struct sn_tls_conn_opts co = to_reviews;
	struct end c, s;
	struct sn_id_error err;

	co.session_key = "127.0.0.1:9080";
	connect_pair(&c, &s, cc, sc, &co, 0);
	run_until(&c, &s, both_hs_settled);
	assert_int_equal(sn_tls_stream_resumed(c.s), 0);
	exchange(&s, &c, "a ticket came before this");
	end_stop(&c);
	end_stop(&s);

	connect_pair(&c, &s, cc, sc, &co, 0);
	run_until(&c, &s, both_hs_settled);
	assert_int_equal(c.hs, 0);
	assert_int_equal(sn_tls_stream_resumed(c.s), 1);
	assert_int_equal(sn_tls_stream_resumed(s.s), 1);
	assert_string_equal(sn_tls_stream_peer_id(c.s), REVIEWS);
	assert_string_equal(sn_tls_stream_peer_id(s.s), PRODUCTPAGE);
	exchange(&s, &c, "another ticket");
	end_stop(&c);
	end_stop(&s);

	/* The expected set is checked on resumption too. */
	const char *const ratings_only[] = { RATINGS };
	struct sn_tls_conn_opts co2 = { .expected_ids = ratings_only, .n_expected = 1,
					.session_key = "127.0.0.1:9080" };
	connect_pair(&c, &s, cc, sc, &co2, 0);
	run_until(&c, &s, hs_settled_a);
	assert_int_equal(c.hs, SN_EINVAL);
	if (strstr(sn_tls_stream_error(c.s), "peer presented " REVIEWS ", expected " RATINGS) == NULL)
		fail_msg("client: %s", sn_tls_stream_error(c.s));
	end_stop(&c);
	end_stop(&s);

	/* A fresh ticket, then the server swaps: tickets of the old
	 * SSL_CTX no longer resume, the handshake is full. */
	connect_pair(&c, &s, cc, sc, &co, 0);
	run_until(&c, &s, both_hs_settled);
	exchange(&s, &c, "ticket");
	end_stop(&c);
	end_stop(&s);
	struct sn_tls_identity t = tls_id(&id_reviews, bundle1);
	assert_int_equal(sn_tls_ctx_update(sc, &t, &err), 0);
	connect_pair(&c, &s, cc, sc, &co, 0);
	run_until(&c, &s, both_hs_settled);
	assert_int_equal(c.hs, 0);
	assert_int_equal(sn_tls_stream_resumed(c.s), 0);
	exchange(&s, &c, "ticket");
	end_stop(&c);
	end_stop(&s);

	/* The client swaps: its cache is emptied. */
	t = tls_id(&id_productpage, bundle1);
	assert_int_equal(sn_tls_ctx_update(cc, &t, &err), 0);
	connect_pair(&c, &s, cc, sc, &co, 0);
	run_until(&c, &s, both_hs_settled);
	assert_int_equal(c.hs, 0);
	assert_int_equal(sn_tls_stream_resumed(c.s), 0);
	end_stop(&c);
	end_stop(&s);
	sn_tls_ctx_free(cc);
	sn_tls_ctx_free(sc);
}

#define IDLE_CONNS 32

static void test_idle_memory(void **state)
{
	if (!counting)
		skip();
	struct sn_tls_ctx *sc = server_ctx(&id_reviews, bundle1);
	struct sn_tls_ctx *cc = client_ctx(&id_productpage, bundle1);
	static struct end c[IDLE_CONNS], s[IDLE_CONNS];

	/* One warm-up connection so that lazily built shared state (method
	 * tables, provider caches) is not charged to the connections. */
	connect_pair(&c[0], &s[0], cc, sc, &to_reviews, 0);
	run_until(&c[0], &s[0], both_hs_settled);
	exchange(&c[0], &s[0], "warm");
	exchange(&s[0], &c[0], "warm");
	end_stop(&c[0]);
	end_stop(&s[0]);

	int64_t before = __atomic_load_n(&live_bytes, __ATOMIC_RELAXED);
	int64_t m0 = 0, m1 = 0, m2 = 0;
	for (int i = 0; i < IDLE_CONNS; i++) {
		m0 -= __atomic_load_n(&live_bytes, __ATOMIC_RELAXED);
		connect_pair(&c[i], &s[i], cc, sc, &to_reviews, 0);
		m0 += __atomic_load_n(&live_bytes, __ATOMIC_RELAXED);
		m1 -= __atomic_load_n(&live_bytes, __ATOMIC_RELAXED);
		run_until(&c[i], &s[i], both_hs_settled);
		m1 += __atomic_load_n(&live_bytes, __ATOMIC_RELAXED);
		m2 -= __atomic_load_n(&live_bytes, __ATOMIC_RELAXED);
		assert_int_equal(c[i].hs, 0);
		exchange(&c[i], &s[i], "GET / HTTP/1.1\r\n\r\n");
		exchange(&s[i], &c[i], "HTTP/1.1 204 No Content\r\n\r\n");
		free(c[i].rx);
		c[i].rx = NULL;
		free(s[i].rx);
		s[i].rx = NULL;
		m2 += __atomic_load_n(&live_bytes, __ATOMIC_RELAXED);
	}
	print_message("  of which per pair: SSL_new %lld, handshake %lld, first exchange %lld\n",
		      (long long)m0 / IDLE_CONNS, (long long)m1 / IDLE_CONNS, (long long)m2 / IDLE_CONNS);
	int64_t after = __atomic_load_n(&live_bytes, __ATOMIC_RELAXED);
	int64_t per_end = (after - before) / (2 * IDLE_CONNS);
	print_message("idle TLS connection: %lld bytes per endpoint (OpenSSL heap + stream), "
		      "%d connections, buffers released\n", (long long)per_end, IDLE_CONNS);
	/* The record buffers (~17 KiB each way when in use) must be gone:
	 * what is left is the SSL object, the session with the peer's
	 * certificate and the record-layer cipher contexts. */
	assert_true(per_end < 24 * 1024);
	for (int i = 0; i < IDLE_CONNS; i++) {
		end_stop(&c[i]);
		end_stop(&s[i]);
	}
	sn_tls_ctx_free(cc);
	sn_tls_ctx_free(sc);
}

/* ---- openssl s_client against a stream ---- */

struct sclient_run {
	struct sn_io lio, pio;
	int lfd;
	struct end srv;
	int accepted;
	FILE *pipe;
	int pipe_eof;
	char out[32768];
	size_t out_len;
	struct sn_tls_ctx *sc;
	int sent_hello;
	int srv_hs;               /* the server's handshake result */
	char srv_err[512];        /* and its error, kept past the stream */
};

static void srv_io(struct sn_loop *l, struct sn_io *io, unsigned events)
{
	struct end *e = sn_container_of(io, struct end, io);
	struct sclient_run *r = sn_container_of(e, struct sclient_run, srv);

	step(e);
	if (e->hs == 0 && !r->sent_hello) {
		r->sent_hello = 1;
		e->tx = (const unsigned char *)"hello from sinew\n";
		e->tx_len = strlen((const char *)e->tx);
		step(e);
		sn_tls_stream_shutdown(e->s);
	}
}

static void on_accept(struct sn_loop *l, struct sn_io *io, unsigned events)
{
	struct sclient_run *r = sn_container_of(io, struct sclient_run, lio);
	int fd = accept4(r->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	assert_false(r->accepted);
	r->accepted = 1;
	memset(&r->srv, 0, sizeof(r->srv));
	r->srv.fd = fd;
	r->srv.hs = 1;
	r->srv.rd = 1;
	assert_int_equal(sn_tls_stream_new(r->sc, fd, NULL, &r->srv.s), 0);
	assert_int_equal(sn_io_start(l, &r->srv.io, fd, srv_io), 0);
	srv_io(l, &r->srv.io, SN_IO_READ);
}

static void on_pipe(struct sn_loop *l, struct sn_io *io, unsigned events)
{
	struct sclient_run *r = sn_container_of(io, struct sclient_run, pio);

	for (;;) {
		ssize_t n = read(io->fd, r->out + r->out_len, sizeof(r->out) - 1 - r->out_len);
		if (n > 0) {
			r->out_len += (size_t)n;
			r->out[r->out_len] = '\0';
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			r->pipe_eof = 1;
		return;
	}
}

static char tmpdir[64];

static void write_file(const char *name, const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Runs s_client with args against a server stream; fills r. */
static void run_sclient(struct sclient_run *r, const char *args)
{
	char cmd[1024];
	int port;

	memset(r, 0, sizeof(*r));
	r->srv.fd = -1;
	r->sc = server_ctx(&id_reviews, bundle1);
	r->lfd = listen_any(&port, 0);
	nonblock(r->lfd);
	assert_int_equal(sn_io_start(&loop, &r->lio, r->lfd, on_accept), 0);
	snprintf(cmd, sizeof(cmd),
		 "openssl s_client -connect 127.0.0.1:%d -alpn sinew/h1 -CAfile %s/root.pem %s "
		 "-ign_eof </dev/null 2>&1", port, tmpdir, args);
	r->pipe = popen(cmd, "r");
	assert_non_null(r->pipe);
	nonblock(fileno(r->pipe));
	assert_int_equal(sn_io_start(&loop, &r->pio, fileno(r->pipe), on_pipe), 0);
	uint64_t deadline = sn_clock_ms() + 10000;
	r->srv_hs = 1;
	while (!r->pipe_eof || !r->accepted || r->srv.hs == 1) {
		if (sn_clock_ms() > deadline)
			fail_msg("s_client did not finish; output so far:\n%s", r->out);
		assert_int_equal(sn_loop_run_once(&loop, 50), 0);
		/* Close our side once the server is done, so s_client exits. */
		if (r->accepted && r->srv.hs != 1 && r->srv.s != NULL &&
		    (r->srv.hs < 0 || r->srv.rd != 1)) {
			r->srv_hs = r->srv.hs;
			snprintf(r->srv_err, sizeof(r->srv_err), "%s", sn_tls_stream_error(r->srv.s));
			sn_io_stop(&loop, &r->srv.io);
			sn_tls_stream_free(r->srv.s);
			r->srv.s = NULL;
			close(r->srv.fd);
			r->srv.fd = -1;
		}
	}
	sn_io_stop(&loop, &r->pio);
	int st = pclose(r->pipe);
	(void)st;
	sn_io_stop(&loop, &r->lio);
	close(r->lfd);
}

static void sclient_done(struct sclient_run *r)
{
	if (r->srv.s != NULL) {
		sn_io_stop(&loop, &r->srv.io);
		sn_tls_stream_free(r->srv.s);
		close(r->srv.fd);
	}
	sn_tls_ctx_free(r->sc);
}

static void test_openssl_s_client(void **state)
{
	static struct sclient_run r;
	char args[512];

	if (access("/usr/bin/openssl", X_OK) != 0)
		skip();
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sinew-tls-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	char *root = NULL;
	size_t rl = 0;
	assert_int_equal(sn_trust_bundle_pem(bundle1, &root, &rl), 0);
	write_file("root.pem", root);
	free(root);
	write_file("client.pem", id_productpage.chain);
	char path[128];
	snprintf(path, sizeof(path), "%s/client.key", tmpdir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_true(PEM_write_PrivateKey(f, id_productpage.key, NULL, NULL, 0, NULL, NULL));
	fclose(f);

	/* With a client certificate: TLS 1.3, the CA names the server asks
	 * for, a verified server, our ALPN, and data after the handshake. */
	snprintf(args, sizeof(args), "-verify_return_error -cert %s/client.pem -key %s/client.key",
		 tmpdir, tmpdir);
	run_sclient(&r, args);
	if (r.srv_hs != 0)
		fail_msg("server: %d %s\ns_client:\n%s", r.srv_hs, r.srv_err, r.out);
	if (strstr(r.out, "TLSv1.3") == NULL || strstr(r.out, "Acceptable client certificate CA names") == NULL ||
	    strstr(r.out, "OU = cluster.local") == NULL || strstr(r.out, "ALPN protocol: sinew/h1") == NULL ||
	    strstr(r.out, "Verify return code: 0 (ok)") == NULL || strstr(r.out, "hello from sinew") == NULL)
		fail_msg("s_client output:\n%s", r.out);
	/* Show what a person running s_client sees. */
	int ca_next = 0;
	for (char *line = r.out; *line != '\0';) {
		char *nl = strchr(line, '\n');
		int len = nl != NULL ? (int)(nl - line) : (int)strlen(line);
		struct sn_str l = sn_str_make(line, (size_t)len);
		if (ca_next-- > 0 || memmem(l.p, l.len, "TLSv1.3", 7) != NULL ||
		    memmem(l.p, l.len, "Acceptable client", 17) != NULL || memmem(l.p, l.len, "ALPN protocol", 13) != NULL ||
		    memmem(l.p, l.len, "Verify return code", 18) != NULL ||
		    memmem(l.p, l.len, "Peer signature type", 19) != NULL || memmem(l.p, l.len, "hello from", 10) != NULL)
			print_message("  s_client| %.*s\n", len, line);
		if (memmem(l.p, l.len, "Acceptable client", 17) != NULL)
			ca_next = 1;
		line += len + (nl != NULL);
	}
	sclient_done(&r);

	/* Without one: the server refuses it. */
	run_sclient(&r, "");
	assert_true(r.srv_hs < 0);
	if (strstr(r.srv_err, "did not return a certificate") == NULL)
		fail_msg("server: %s\ns_client:\n%s", r.srv_err, r.out);
	if (strstr(r.out, "Acceptable client certificate CA names") == NULL)
		fail_msg("s_client output:\n%s", r.out);
	sclient_done(&r);

	/* TLS 1.2 only: refused. */
	snprintf(args, sizeof(args), "-tls1_2 -cert %s/client.pem -key %s/client.key", tmpdir, tmpdir);
	run_sclient(&r, args);
	assert_true(r.srv_hs < 0);
	if (strstr(r.srv_err, "unsupported protocol") == NULL)
		fail_msg("server: %s\ns_client:\n%s", r.srv_err, r.out);
	if (strstr(r.out, "TLSv1.3") != NULL && strstr(r.out, "Protocol  : TLSv1.3") != NULL)
		fail_msg("s_client output:\n%s", r.out);
	sclient_done(&r);

	for (const char *n = "root.pem"; n != NULL; n = strcmp(n, "root.pem") == 0 ? "client.pem" :
						      strcmp(n, "client.pem") == 0 ? "client.key" : NULL) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, n);
		unlink(path);
	}
	rmdir(tmpdir);
}

static void test_ctx_refusals(void **state)
{
	struct sn_tls_ctx_opts o = { .role = SN_TLS_SERVER, .require_client_cert = 1 };
	struct sn_tls_identity t = tls_id(&id_reviews, bundle1);
	struct sn_tls_ctx *ctx = NULL;
	struct sn_id_error err;

	/* A server needs a certificate. */
	t.key = NULL;
	t.chain_pem = NULL;
	assert_int_equal(sn_tls_ctx_new(&o, &t, &ctx, &err), SN_EINVAL);
	/* A key that is not the leaf's. */
	t = tls_id(&id_reviews, bundle1);
	t.key = id_ratings.key;
	assert_int_equal(sn_tls_ctx_new(&o, &t, &ctx, &err), SN_EINVAL);
	assert_non_null(strstr(err.msg, "does not match"));
	/* A leaf of another trust domain than the bundle's. */
	struct sn_trust_bundle *other = NULL;
	assert_int_equal(sn_trust_bundle_new("example.org", &other), 0);
	assert_int_equal(sn_trust_bundle_add(other, sn_ca_root(ca1)), 0);
	t = tls_id(&id_reviews, other);
	assert_int_equal(sn_tls_ctx_new(&o, &t, &ctx, &err), SN_EINVAL);
	assert_non_null(strstr(err.msg, "own certificate"));
	sn_trust_bundle_free(other);
	/* The key as PEM works as well as the EVP_PKEY. */
	char *kp = NULL;
	long kl;
	BIO *b = BIO_new(BIO_s_mem());
	assert_true(PEM_write_bio_PrivateKey(b, id_reviews.key, NULL, NULL, 0, NULL, NULL));
	kl = BIO_get_mem_data(b, &kp);
	t = tls_id(&id_reviews, bundle1);
	t.key = NULL;
	t.key_pem = kp;
	t.key_len = (size_t)kl;
	if (sn_tls_ctx_new(&o, &t, &ctx, &err) != 0)
		fail_msg("%s", err.msg);
	sn_tls_ctx_free(ctx);
	BIO_free(b);
	/* Bad ALPN. */
	const char *const bad_alpn[] = { "" };
	o.alpn = bad_alpn;
	o.n_alpn = 1;
	t = tls_id(&id_reviews, bundle1);
	assert_int_equal(sn_tls_ctx_new(&o, &t, &ctx, &err), SN_EINVAL);
}

static int setup(void **state)
{
	struct sn_ca_params p = { .trust_domain = TD };
	struct sn_id_error err;

	if (sn_ca_create(&p, &ca1, &err) != 0 || sn_ca_create(&p, &ca2, &err) != 0)
		fail_msg("ca: %s", err.msg);
	assert_int_equal(sn_trust_bundle_new(TD, &bundle1), 0);
	assert_int_equal(sn_trust_bundle_add(bundle1, sn_ca_root(ca1)), 0);
	assert_int_equal(sn_trust_bundle_new(TD, &bundle2), 0);
	assert_int_equal(sn_trust_bundle_add(bundle2, sn_ca_root(ca2)), 0);
	issue(ca1, "reviews", &id_reviews);
	issue(ca1, "ratings", &id_ratings);
	issue(ca1, "productpage", &id_productpage);
	issue(ca2, "reviews", &id_reviews_ca2);
	issue(ca2, "productpage", &id_productpage_ca2);
	assert_int_equal(sn_loop_init(&loop), 0);
	return 0;
}

static int teardown(void **state)
{
	sn_loop_dispose(&loop);
	ident_free(&id_reviews);
	ident_free(&id_ratings);
	ident_free(&id_productpage);
	ident_free(&id_reviews_ca2);
	ident_free(&id_productpage_ca2);
	sn_trust_bundle_free(bundle1);
	sn_trust_bundle_free(bundle2);
	sn_ca_free(ca1);
	sn_ca_free(ca2);
	return 0;
}

int main(void)
{
	/* Before OpenSSL allocates anything. */
	counting = CRYPTO_set_mem_functions(cnt_malloc, cnt_realloc, cnt_free);

	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_ok),
		cmocka_unit_test(test_xprt_tls),
		cmocka_unit_test(test_wrong_expected_server),
		cmocka_unit_test(test_client_without_cert),
		cmocka_unit_test(test_untrusted_ca),
		cmocka_unit_test(test_tls12_client_refused),
		cmocka_unit_test(test_alpn_mismatch),
		cmocka_unit_test(test_detection_prefix),
		cmocka_unit_test(test_mib_both_ways),
		cmocka_unit_test(test_close_notify),
		cmocka_unit_test(test_hot_swap),
		cmocka_unit_test(test_resumption),
		cmocka_unit_test(test_idle_memory),
		cmocka_unit_test(test_openssl_s_client),
		cmocka_unit_test(test_ctx_refusals),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
