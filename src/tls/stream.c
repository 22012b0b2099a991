/* Mutual TLS 1.3 streams for the proxy: contexts built from a workload
 * identity, swapped whole on rotation, and non-blocking streams over a
 * socket through a small custom BIO (docs/internals/tls.md says why). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "sinew/identity.h"
#include "sinew/tls_stream.h"
#include "tls_internal.h"

#define SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define GROUPS "X25519:P-256"
#define SIGALGS "ECDSA+SHA256"
#define VERIFY_DEPTH 8
#define ERR_MAX 512
#define COALESCE_MAX 16384   /* a TLS record's payload */
#define SESSION_ID_CTX "sinew"

/* What one SSL_CTX needs to know in callbacks; freed with the SSL_CTX
 * (ex_data free hook), so a stream on an old SSL_CTX keeps its own. */
struct tls_gen {
	char td[SN_TRUST_DOMAIN_MAX + 1];
};

struct sess_slot {
	char key[SN_TLS_SESSION_KEY_MAX + 1];
	SSL_SESSION *sess;
};

struct sn_tls_ctx {
	enum sn_tls_role role;
	int web;                       /* a gateway's server context (sn_tls_ctx_new_web): no SPIFFE */
	int require_client_cert;
	int no_resumption;
	int pinned;                    /* bootstrap client: pin, pin_td */
	uint8_t pin[32];
	char pin_td[SN_TRUST_DOMAIN_MAX + 1];
	unsigned char alpn[256];       /* wire format: len, bytes, len, bytes… */
	size_t alpn_len;
	pthread_mutex_t lock;          /* guards cur, generation, cache */
	SSL_CTX *cur;
	uint64_t generation;
	struct sess_slot *cache;       /* client; direct-mapped by key hash */
	size_t cache_n;
};

struct sn_tls_stream {
	SSL *ssl;
	struct sn_tls_ctx *ctx;
	const char *td;                /* the SSL_CTX's tls_gen, lives with ssl */
	uint64_t generation;
	int fd;
	enum sn_tls_role role;
	enum sn_tls_state state;
	unsigned want;
	int failed_rc;
	int sys_errno;                 /* last socket errno seen by the BIO */
	unsigned eof : 1;              /* read() returned 0 */
	unsigned verify_failed : 1;    /* err holds the verify callback's reason */
	enum sn_id_err id_err;
	char *peer_id;
	char *expected;                /* n_expected strings back to back; until handshake */
	size_t n_expected;
	char *session_key;
	char *err;                     /* ERR_MAX, allocated on the first failure */
	unsigned char *prefix;
	size_t prefix_len, prefix_off;
};

/* ---- process-wide OpenSSL handles (created once, never freed) ---- */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static BIO_METHOD *fd_method;
static int gen_idx = -1;

static void gen_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	OPENSSL_free(ptr);
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static int bio_destroy(BIO *b)
{
	BIO_set_data(b, NULL);
	return 1;
}

/* Reads the detection prefix first, then the socket; keeps the errno
 * and EOF so that failures can be named. */
static int bio_read(BIO *b, char *buf, int len)
{
	struct sn_tls_stream *s = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (s == NULL || len <= 0)
		return 0;
	if (s->prefix != NULL) {
		size_t take = SN_MIN((size_t)len, s->prefix_len - s->prefix_off);
		memcpy(buf, s->prefix + s->prefix_off, take);
		s->prefix_off += take;
		if (s->prefix_off == s->prefix_len) {
			OPENSSL_free(s->prefix);
			s->prefix = NULL;
		}
		return (int)take;
	}
	do
		n = read(s->fd, buf, (size_t)len);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		return (int)n;
	if (n == 0) {
		s->eof = 1;
		return 0;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		BIO_set_retry_read(b);
		return -1;
	}
	s->sys_errno = errno;
	return -1;
}

static int bio_write(BIO *b, const char *buf, int len)
{
	struct sn_tls_stream *s = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (s == NULL || len <= 0)
		return 0;
	/* MSG_NOSIGNAL: a peer gone away is an error here, not a SIGPIPE. */
	do
		n = send(s->fd, buf, (size_t)len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == ENOTSOCK) {
		do
			n = write(s->fd, buf, (size_t)len);
		while (n < 0 && errno == EINTR);
	}
	if (n >= 0)
		return (int)n;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		BIO_set_retry_write(b);
		return -1;
	}
	s->sys_errno = errno;
	return -1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct sn_tls_stream *s = BIO_get_data(b);

	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;   /* nothing is buffered here */
	case BIO_CTRL_EOF:
		return s != NULL && s->eof;
	case BIO_C_GET_FD:
		if (s == NULL)
			return -1;
		if (ptr != NULL)
			*(int *)ptr = s->fd;
		return s->fd;
	default:
		return 0;
	}
}

/* A gateway port's certificates by server name (sn_tls_web_opts.sni),
 * hung on its default SSL_CTX, which frees it; ctx[i] NULL: the default. */
struct sni_table {
	size_t n;
	char **host;
	SSL_CTX **ctx;
};

static int sni_idx = -1;

static void sni_table_drop(struct sni_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->host[i]);
		SSL_CTX_free(t->ctx[i]);
	}
	free(t->host);
	free(t->ctx);
	free(t);
}

static void sni_table_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	sni_table_drop(ptr);
}

static void init_once(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sinew fd");

	if (m != NULL && BIO_meth_set_read(m, bio_read) && BIO_meth_set_write(m, bio_write) &&
	    BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create) &&
	    BIO_meth_set_destroy(m, bio_destroy))
		fd_method = m;
	else
		BIO_meth_free(m);
	gen_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, gen_free);
	sni_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sni_table_free);
}

static int init(void)
{
	pthread_once(&once, init_once);
	return fd_method != NULL && gen_idx >= 0 && sni_idx >= 0 ? 0 : SN_ENOMEM;
}

/* ---- error text ---- */

static void peer_name(int fd, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char a[INET6_ADDRSTRLEN];

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) {
		snprintf(out, cap, "peer on fd %d", fd);
		return;
	}
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		snprintf(out, cap, "%s:%u", a, (unsigned)ntohs(in->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
		snprintf(out, cap, "[%s]:%u", a, (unsigned)ntohs(in6->sin6_port));
	} else {
		snprintf(out, cap, "local peer on fd %d", fd);
	}
}

/* Sets s->err to "<what> with <peer> failed: <reason>". */
static void set_err(struct sn_tls_stream *s, const char *what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(struct sn_tls_stream *s, const char *what, const char *fmt, ...)
{
	char peer[INET6_ADDRSTRLEN + 16], reason[ERR_MAX];
	va_list ap;

	if (s->err == NULL) {
		s->err = OPENSSL_zalloc(ERR_MAX);
		if (s->err == NULL)
			return;
	}
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	peer_name(s->fd, peer, sizeof(peer));
	/* reason may be cut; a message is for people, not parsers. */
	int n = snprintf(s->err, ERR_MAX, "%s %s failed: ", what, peer);
	if (n > 0 && (size_t)n < ERR_MAX) {
		size_t room = ERR_MAX - (size_t)n;
		size_t rl = strnlen(reason, room - 1);
		memcpy(s->err + n, reason, rl);
		s->err[(size_t)n + rl] = '\0';
	}
}

/* ---- verification ---- */

static int expected_has(const struct sn_tls_stream *s, const char *id)
{
	const char *p = s->expected;

	for (size_t i = 0; i < s->n_expected; i++) {
		if (strcmp(p, id) == 0)
			return 1;
		p += strlen(p) + 1;
	}
	return 0;
}

/* Writes "X" or "one of X, Y, … (N more)" into out. */
static void expected_str(const struct sn_tls_stream *s, char *out, size_t cap)
{
	const char *p = s->expected;
	size_t off = 0;

	out[0] = '\0';
	if (s->n_expected > 1)
		off = (size_t)snprintf(out, cap, "one of ");
	for (size_t i = 0; i < s->n_expected && off < cap; i++) {
		size_t l = strlen(p);
		if (off + l + 16 >= cap) {
			snprintf(out + off, cap - off, "(%zu more)", s->n_expected - i);
			return;
		}
		memcpy(out + off, p, l);
		off += l;
		if (i + 1 < s->n_expected) {
			memcpy(out + off, ", ", 2);
			off += 2;
		}
		out[off] = '\0';
		p += l + 1;
	}
}

/* The client's check of the server's ID against what the registry expects. */
static int check_expected(struct sn_tls_stream *s, const char *id)
{
	char exp[ERR_MAX];

	if (s->role != SN_TLS_CLIENT || s->n_expected == 0 || expected_has(s, id))
		return 0;
	expected_str(s, exp, sizeof(exp));
	s->id_err = SN_ID_E_ID_NOT_ALLOWED;
	s->verify_failed = 1;
	set_err(s, "TLS handshake with", "peer presented %s, expected %s", id, exp);
	return SN_EINVAL;
}

static int keep_peer_id(struct sn_tls_stream *s, const struct sn_spiffe_id *id)
{
	char *p = OPENSSL_strndup(id->uri, id->len);

	if (p == NULL)
		return SN_ENOMEM;
	OPENSSL_free(s->peer_id);
	s->peer_id = p;
	return 0;
}

/* OpenSSL has validated the path to a root of the bundle (purpose TLS
 * server or client by role); this adds the SPIFFE leaf rules and, on the
 * client, the expected IDs. Failing here sends the peer an alert. */
static int verify_cb(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct sn_tls_stream *s = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
	struct sn_id_error e;
	struct sn_spiffe_id id;

	if (s == NULL)
		return 0;
	if (!ok) {
		sn_verify_fail(x, s->td, &e);
		s->id_err = e.code;
		s->verify_failed = 1;
		set_err(s, "TLS handshake with", "peer certificate refused: %s", e.msg);
		return 0;
	}
	if (X509_STORE_CTX_get_error_depth(x) != 0)
		return 1;
	if (sn_svid_check_leaf(X509_STORE_CTX_get_current_cert(x), s->td, &id, &e) != 0) {
		s->id_err = e.code;
		s->verify_failed = 1;
		set_err(s, "TLS handshake with", "peer certificate is not a valid X.509-SVID: %s", e.msg);
		X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	if (check_expected(s, id.uri) != 0 || keep_peer_id(s, &id) != 0) {
		X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	return 1;
}

/* Bootstrap client (docs/internals/identity.md, "Join tokens"): the
 * proxy has no bundle yet, only the root's SHA-256 from its token. The
 * server sends its root along; we take it as the only anchor if, and only
 * if, it is the pinned one, then validate the leaf as an X.509-SVID
 * (purpose TLS server) and check the expected IDs. Replaces OpenSSL's
 * whole chain verification for this context. */
static int pinned_verify(X509_STORE_CTX *x, void *arg)
{
	struct sn_tls_ctx *ctx = arg;
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct sn_tls_stream *s = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
	X509 *leaf = X509_STORE_CTX_get0_cert(x);
	STACK_OF(X509) *sent = X509_STORE_CTX_get0_untrusted(x);
	struct sn_trust_bundle *b = NULL;
	struct sn_spiffe_id id;
	struct sn_id_error e;
	X509 *root = NULL;
	int ok = 0;

	if (s == NULL || leaf == NULL)
		return 0;
	for (int i = 0; sent != NULL && i < sk_X509_num(sent) && root == NULL; i++) {
		uint8_t h[32];
		if (sn_cert_sha256(sk_X509_value(sent, i), h) == 0 && CRYPTO_memcmp(h, ctx->pin, 32) == 0)
			root = sk_X509_value(sent, i);
	}
	if (root == NULL) {
		s->id_err = SN_ID_E_UNTRUSTED;
		s->verify_failed = 1;
		set_err(s, "TLS handshake with", "server's chain does not hold the root pinned by the join token "
			"(sinewd's CA changed since the token was minted, or this is not that sinewd)");
		goto out;
	}
	struct sn_svid_verify_opts vo = { .trust_domain = ctx->pin_td, .purpose = SN_SVID_PURPOSE_SERVER };
	if (sn_trust_bundle_new(ctx->pin_td, &b) != 0 || sn_trust_bundle_add(b, root) != 0) {
		set_err(s, "TLS handshake with", "out of memory");
		goto out;
	}
	vo.bundle = b;
	if (sn_svid_verify(&vo, leaf, sent, &id, &e) != 0) {
		s->id_err = e.code;
		s->verify_failed = 1;
		set_err(s, "TLS handshake with", "peer certificate refused: %s", e.msg);
		goto out;
	}
	if (check_expected(s, id.uri) != 0 || keep_peer_id(s, &id) != 0)
		goto out;
	ok = 1;
out:
	if (!ok)
		X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
	sn_trust_bundle_free(b);
	return ok;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	struct sn_tls_ctx *ctx = arg;
	unsigned char *sel = NULL;

	if (SSL_select_next_proto(&sel, outlen, ctx->alpn, (unsigned)ctx->alpn_len, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		/* a browser offering only protocols we lack still gets
		 * HTTP/1.1 from a gateway; a peer proxy must agree */
		return ctx->web ? SSL_TLSEXT_ERR_NOACK : SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* ---- client session cache ---- */

static size_t key_hash(const char *k)
{
	uint64_t h = 1469598103934665603ull;

	for (; *k; k++)
		h = (h ^ (unsigned char)*k) * 1099511628211ull;
	return (size_t)h;
}

/* Takes (removes) the session cached for key: TLS 1.3 tickets are used
 * once (RFC 8446 C.4), so two connections never show the same ticket. */
static SSL_SESSION *cache_take(struct sn_tls_ctx *ctx, const char *key, uint64_t generation)
{
	SSL_SESSION *sess = NULL;

	if (ctx->cache_n == 0)
		return NULL;
	pthread_mutex_lock(&ctx->lock);
	struct sess_slot *sl = &ctx->cache[key_hash(key) % ctx->cache_n];
	if (generation == ctx->generation && sl->sess != NULL && strcmp(sl->key, key) == 0) {
		sess = sl->sess;
		sl->sess = NULL;
	}
	pthread_mutex_unlock(&ctx->lock);
	if (sess != NULL && (!SSL_SESSION_is_resumable(sess) ||
			     SSL_SESSION_get_time(sess) + SSL_SESSION_get_timeout(sess) <= time(NULL))) {
		SSL_SESSION_free(sess);
		sess = NULL;
	}
	return sess;
}

/* A ticket arrived (client). Kept only under the generation that
 * verified the server, and only for streams that named a destination. */
static int new_session_cb(SSL *ssl, SSL_SESSION *sess)
{
	struct sn_tls_stream *s = SSL_get_app_data(ssl);
	struct sn_tls_ctx *ctx;
	SSL_SESSION *old = NULL;

	if (s == NULL || s->session_key == NULL || s->state == SN_TLS_STATE_FAILED ||
	    s->peer_id == NULL || s->ctx->cache_n == 0)
		return 0;
	ctx = s->ctx;
	pthread_mutex_lock(&ctx->lock);
	if (s->generation != ctx->generation) {
		pthread_mutex_unlock(&ctx->lock);
		return 0;
	}
	struct sess_slot *sl = &ctx->cache[key_hash(s->session_key) % ctx->cache_n];
	old = sl->sess;
	sl->sess = sess;
	snprintf(sl->key, sizeof(sl->key), "%s", s->session_key);
	pthread_mutex_unlock(&ctx->lock);
	SSL_SESSION_free(old);
	return 1;   /* the cache keeps the reference */
}

static void cache_clear_locked(struct sn_tls_ctx *ctx)
{
	for (size_t i = 0; i < ctx->cache_n; i++) {
		SSL_SESSION_free(ctx->cache[i].sess);
		ctx->cache[i].sess = NULL;
		ctx->cache[i].key[0] = '\0';
	}
}

/* ---- contexts ---- */

static int load_key(const struct sn_tls_identity *id, EVP_PKEY **out, struct sn_id_error *err)
{
	EVP_PKEY *key = NULL;

	if (id->key != NULL) {
		if (!EVP_PKEY_up_ref(id->key))
			return sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory");
		key = id->key;
	} else {
		BIO *b;
		if (id->key_pem == NULL || id->key_len > INT32_MAX)
			return sn_id_fail(err, SN_EINVAL, SN_ID_E_MALFORMED, "no private key given");
		b = BIO_new_mem_buf(id->key_pem, (int)id->key_len);
		if (b == NULL)
			return sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory");
		key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
		BIO_free(b);
		ERR_clear_error();
		if (key == NULL)
			return sn_id_fail(err, SN_EINVAL, SN_ID_E_MALFORMED,
					  "private key is not an unencrypted PEM key");
	}
	char group[32] = "";
	size_t gl = 0;
	if (!EVP_PKEY_is_a(key, "EC") ||
	    !EVP_PKEY_get_group_name(key, group, sizeof(group), &gl) || strcmp(group, "prime256v1") != 0) {
		EVP_PKEY_free(key);
		ERR_clear_error();
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_CSR_KEY,
				  "private key is not ECDSA P-256 (the mesh uses P-256 only)");
	}
	*out = key;
	return 0;
}

/* Loads key and chain into c after checking that the leaf is an SVID of
 * td and matches the key. */
static int load_identity(SSL_CTX *c, const struct sn_tls_identity *id, const char *td,
			 struct sn_id_error *err)
{
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	X509 *leaf;
	int rc;

	if (id->chain_pem == NULL)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_MALFORMED, "no certificate chain given");
	rc = sn_pem_read_certs(id->chain_pem, id->chain_len, &chain);
	if (rc != 0)
		return sn_id_fail(err, rc, rc == SN_ENOMEM ? SN_ID_E_NOMEM : SN_ID_E_MALFORMED,
				  "certificate chain is not PEM certificates");
	rc = load_key(id, &key, err);
	if (rc != 0)
		goto out;
	leaf = sk_X509_value(chain, 0);
	rc = sn_svid_check_leaf(leaf, td, NULL, err);
	if (rc != 0) {
		char why[sizeof(err->msg)];
		if (err != NULL) {
			snprintf(why, sizeof(why), "%s", err->msg);
			sn_id_fail(err, SN_EINVAL, err->code, "own certificate: %s", why);
		}
		goto out;
	}
	if (SSL_CTX_use_certificate(c, leaf) != 1 || SSL_CTX_use_PrivateKey(c, key) != 1 ||
	    SSL_CTX_check_private_key(c) != 1) {
		rc = sn_id_fail(err, SN_EINVAL, SN_ID_E_CA,
				"the private key does not match the leaf certificate");
		goto out;
	}
	for (int i = 1; i < sk_X509_num(chain); i++) {
		if (SSL_CTX_add1_chain_cert(c, sk_X509_value(chain, i)) != 1) {
			rc = sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory");
			goto out;
		}
	}
out:
	ERR_clear_error();
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}

/* Builds one SSL_CTX (one generation) from id. */
static int build(struct sn_tls_ctx *ctx, const struct sn_tls_identity *id, SSL_CTX **out,
		 struct sn_id_error *err)
{
	int server = ctx->role == SN_TLS_SERVER;
	SSL_CTX *c = NULL;
	struct tls_gen *g = NULL;
	X509_STORE *store = NULL;
	int rc = SN_ENOMEM;

	if (id == NULL || (id->bundle == NULL && !ctx->pinned))
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_MALFORMED, "no trust bundle given");
	if (!ctx->pinned && sn_trust_bundle_count(id->bundle) == 0)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_UNTRUSTED, "trust bundle has no root");
	const char *td = ctx->pinned ? ctx->pin_td : sn_trust_bundle_trust_domain(id->bundle);
	c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	g = OPENSSL_zalloc(sizeof(*g));
	if (c == NULL || g == NULL)
		goto nomem;
	snprintf(g->td, sizeof(g->td), "%s", td);
	if (!SSL_CTX_set_ex_data(c, gen_idx, g))
		goto nomem;
	g = NULL;   /* freed with c */

	if (!SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(c, SUITES) || !SSL_CTX_set1_groups_list(c, GROUPS) ||
	    !SSL_CTX_set1_sigalgs_list(c, SIGALGS) || !SSL_CTX_set1_client_sigalgs_list(c, SIGALGS))
		goto nomem;
	SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
			       SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
			    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_clear_mode(c, SSL_MODE_AUTO_RETRY);
	SSL_CTX_set_read_ahead(c, 1);
	SSL_CTX_set_max_early_data(c, 0);

	if (ctx->pinned) {
		SSL_CTX_set_cert_verify_callback(c, pinned_verify, ctx);
	} else {
		store = sn_trust_bundle_store(id->bundle);
		if (store == NULL || !SSL_CTX_set0_verify_cert_store(c, store))
			goto nomem;
		store = NULL;
	}
	SSL_CTX_set_verify_depth(c, VERIFY_DEPTH);
	SSL_CTX_set_verify(c, SSL_VERIFY_PEER |
			      (server && ctx->require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
			   verify_cb);

	if (server) {
		/* Name the bundle's roots in the CertificateRequest
		 * (certificate_authorities), so a client can pick its cert. */
		STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
		if (names == NULL)
			goto nomem;
		for (size_t i = 0; i < sn_trust_bundle_count(id->bundle); i++) {
			X509_NAME *n = X509_NAME_dup(X509_get_subject_name(sn_trust_bundle_get(id->bundle, i)));
			if (n == NULL || !sk_X509_NAME_push(names, n)) {
				X509_NAME_free(n);
				sk_X509_NAME_pop_free(names, X509_NAME_free);
				goto nomem;
			}
		}
		SSL_CTX_set_client_CA_list(c, names);
		if (ctx->alpn_len)
			SSL_CTX_set_alpn_select_cb(c, alpn_select, ctx);
		/* Stateless tickets, keyed per SSL_CTX: a swap invalidates
		 * them all, so nothing verified under an old bundle resumes. */
		SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
		if (!SSL_CTX_set_session_id_context(c, (const unsigned char *)SESSION_ID_CTX,
						    sizeof(SESSION_ID_CTX) - 1) ||
		    !SSL_CTX_set_num_tickets(c, ctx->no_resumption ? 0 : 1))
			goto nomem;
		SSL_CTX_set_timeout(c, SN_TLS_TICKET_LIFETIME);
	} else {
		if (ctx->alpn_len && SSL_CTX_set_alpn_protos(c, ctx->alpn, (unsigned)ctx->alpn_len) != 0)
			goto nomem;
		if (!ctx->no_resumption) {
			SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
			SSL_CTX_sess_set_new_cb(c, new_session_cb);
		} else {
			SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
		}
	}

	if (server || id->key != NULL || id->key_pem != NULL || id->chain_pem != NULL) {
		rc = load_identity(c, id, td, err);
		if (rc != 0)
			goto fail;
	}
	*out = c;
	return 0;

nomem:
	rc = sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory building the TLS context");
fail:
	ERR_clear_error();
	X509_STORE_free(store);
	OPENSSL_free(g);
	SSL_CTX_free(c);
	return rc;
}

static int set_alpn(struct sn_tls_ctx *ctx, const char *const *alpn, size_t n, struct sn_id_error *err)
{
	if (n > SN_TLS_ALPN_MAX)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_MALFORMED, "more than %d ALPN protocols", SN_TLS_ALPN_MAX);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(alpn[i]);
		if (l == 0 || l > 255 || ctx->alpn_len + 1 + l > sizeof(ctx->alpn))
			return sn_id_fail(err, SN_EINVAL, SN_ID_E_MALFORMED, "ALPN protocol %zu is empty or too long", i);
		ctx->alpn[ctx->alpn_len++] = (unsigned char)l;
		memcpy(ctx->alpn + ctx->alpn_len, alpn[i], l);
		ctx->alpn_len += l;
	}
	return 0;
}

int sn_tls_ctx_new(const struct sn_tls_ctx_opts *o, const struct sn_tls_identity *id,
		   struct sn_tls_ctx **out, struct sn_id_error *err)
{
	struct sn_tls_ctx *ctx;
	int rc;

	if (init() != 0)
		return sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory initialising TLS");
	if (o->n_alpn > SN_TLS_ALPN_MAX)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_MALFORMED, "more than %d ALPN protocols",
				  SN_TLS_ALPN_MAX);
	ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL)
		return sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory");
	ctx->role = o->role;
	ctx->require_client_cert = o->require_client_cert;
	ctx->no_resumption = o->no_resumption;
	if (o->pinned_root != NULL) {
		if (o->role != SN_TLS_CLIENT || o->pinned_td == NULL ||
		    sn_trust_domain_check(o->pinned_td, NULL) != 0) {
			free(ctx);
			return sn_id_fail(err, SN_EINVAL, SN_ID_E_MALFORMED,
					  "a pinned root needs the client role and a valid trust domain");
		}
		ctx->pinned = 1;
		ctx->no_resumption = 1;
		memcpy(ctx->pin, o->pinned_root, 32);
		snprintf(ctx->pin_td, sizeof(ctx->pin_td), "%s", o->pinned_td);
	}
	if ((rc = set_alpn(ctx, o->alpn, o->n_alpn, err)) != 0) {
		free(ctx);
		return rc;
	}
	if (o->role == SN_TLS_CLIENT && !o->no_resumption) {
		ctx->cache_n = o->session_cache ? o->session_cache : SN_TLS_SESSION_CACHE_DEFAULT;
		ctx->cache = calloc(ctx->cache_n, sizeof(*ctx->cache));
		if (ctx->cache == NULL) {
			free(ctx);
			return sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory");
		}
	}
	pthread_mutex_init(&ctx->lock, NULL);
	rc = build(ctx, id, &ctx->cur, err);
	if (rc != 0) {
		sn_tls_ctx_free(ctx);
		return rc;
	}
	*out = ctx;
	return 0;
}

/* Handshakes from now on use c; streams made from the old SSL_CTX hold
 * their own references (SSL_new), so it is freed when they are. The
 * client's session cache is emptied (nothing verified under the old
 * material resumes). */
static void swap_cur(struct sn_tls_ctx *ctx, SSL_CTX *c)
{
	pthread_mutex_lock(&ctx->lock);
	SSL_CTX *old = ctx->cur;
	ctx->cur = c;
	__atomic_store_n(&ctx->generation, ctx->generation + 1, __ATOMIC_RELAXED);
	cache_clear_locked(ctx);
	pthread_mutex_unlock(&ctx->lock);
	SSL_CTX_free(old);
}

int sn_tls_ctx_update(struct sn_tls_ctx *ctx, const struct sn_tls_identity *id, struct sn_id_error *err)
{
	SSL_CTX *c = NULL;
	int rc;

	rc = build(ctx, id, &c, err);
	if (rc != 0)
		return rc;
	swap_cur(ctx, c);
	return 0;
}

void sn_tls_ctx_free(struct sn_tls_ctx *ctx)
{
	if (ctx == NULL)
		return;
	cache_clear_locked(ctx);
	free(ctx->cache);
	SSL_CTX_free(ctx->cur);
	pthread_mutex_destroy(&ctx->lock);
	free(ctx);
}

/* ---- a gateway's server context: a web certificate ---- */

#define WEB_CIPHERS "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
		    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

static int web_fail(struct sn_id_error *err, const char *what, const char *path)
{
	unsigned long e = ERR_peek_last_error();
	char reason[200];
	ERR_error_string_n(e, reason, sizeof(reason));
	ERR_clear_error();
	return sn_id_fail(err, SN_EINVAL, SN_ID_E_MALFORMED, "%s %s: %s", what, path, e ? reason : "unusable");
}

/* What every web context (not the mesh's) shares: TLS 1.2 with ECDHE and
 * AEAD only, or 1.3 (Istio's gateway default minimum is 1.2); no
 * compression, renegotiation or early data; the stream's modes. NULL and
 * err set on failure. */
static SSL_CTX *web_ssl_ctx(const SSL_METHOD *method, struct sn_id_error *err)
{
	SSL_CTX *c = SSL_CTX_new(method);
	struct tls_gen *g = OPENSSL_zalloc(sizeof(*g));

	if (c == NULL || g == NULL || !SSL_CTX_set_ex_data(c, gen_idx, g)) {
		OPENSSL_free(g);
		SSL_CTX_free(c);
		sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory building the TLS context");
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) || !SSL_CTX_set_cipher_list(c, WEB_CIPHERS)) {
		web_fail(err, "TLS settings", "");
		SSL_CTX_free(c);
		return NULL;
	}
	SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
			    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_clear_mode(c, SSL_MODE_AUTO_RETRY);
	SSL_CTX_set_read_ahead(c, 1);
	SSL_CTX_set_max_early_data(c, 0);
	return c;
}

/* The ClientHello's server name picks the port's certificate (its
 * SSL_CTX: verification and ALPN go with it): the exact host, else the
 * longest "*.suffix", else "*", else the default it came with. */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
	(void)alert;
	(void)arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	const struct sni_table *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), sni_idx);
	if (t == NULL)
		return SSL_TLSEXT_ERR_OK;
	size_t n = name ? strlen(name) : 0, best_len = 0;
	ssize_t best = -1, star = -1;
	for (size_t i = 0; i < t->n; i++) {
		const char *h = t->host[i];
		if (!strcmp(h, "*")) {
			if (star < 0)
				star = (ssize_t)i;
			continue;
		}
		if (n == 0)
			continue;
		if (!strcasecmp(h, name)) {
			best = (ssize_t)i;
			break;
		}
		size_t sl = strlen(h) - 1;   /* "*.example.com": ".example.com" */
		if (h[0] == '*' && n > sl && !strcasecmp(name + n - sl, h + 1) && sl > best_len) {
			best = (ssize_t)i;
			best_len = sl;
		}
	}
	if (best < 0)
		best = star;
	if (best >= 0 && t->ctx[best] != NULL) {
		SSL_CTX *c = t->ctx[best];
		if (SSL_set_SSL_CTX(ssl, c) == NULL)
			return SSL_TLSEXT_ERR_ALERT_FATAL;
		SSL_set_verify(ssl, SSL_CTX_get_verify_mode(c), NULL);
		SSL_set_verify_depth(ssl, SSL_CTX_get_verify_depth(c));
	}
	return SSL_TLSEXT_ERR_OK;
}

static int build_web_one(struct sn_tls_ctx *ctx, const char *cert_file, const char *key_file,
			 const char *client_ca_file, SSL_CTX **out, struct sn_id_error *err);

static int build_web(struct sn_tls_ctx *ctx, const struct sn_tls_web_opts *o, SSL_CTX **out,
		     struct sn_id_error *err)
{
	SSL_CTX *c = NULL;
	int rc = build_web_one(ctx, o->cert_file, o->key_file, o->client_ca_file, &c, err);
	if (rc != 0 || o->n_sni == 0) {
		*out = c;
		return rc;
	}
	struct sni_table *t = calloc(1, sizeof(*t));
	if (t == NULL || (t->host = calloc(o->n_sni, sizeof(*t->host))) == NULL ||
	    (t->ctx = calloc(o->n_sni, sizeof(*t->ctx))) == NULL) {
		sni_table_drop(t);
		SSL_CTX_free(c);
		return sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory");
	}
	for (size_t i = 0; i < o->n_sni; i++, t->n++) {
		const struct sn_tls_web_sni *e = &o->sni[i];
		if ((t->host[i] = strdup(e->host)) == NULL) {
			rc = sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory");
			break;
		}
		if (e->cert_file != NULL &&
		    (rc = build_web_one(ctx, e->cert_file, e->key_file, e->client_ca_file, &t->ctx[i], err)) != 0)
			break;
	}
	if (rc != 0 || !SSL_CTX_set_ex_data(c, sni_idx, t)) {
		sni_table_drop(t);
		SSL_CTX_free(c);
		return rc != 0 ? rc : sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory");
	}
	SSL_CTX_set_tlsext_servername_callback(c, on_servername);
	*out = c;
	return 0;
}

static int build_web_one(struct sn_tls_ctx *ctx, const char *cert_file, const char *key_file,
			 const char *client_ca_file, SSL_CTX **out, struct sn_id_error *err)
{
	SSL_CTX *c = web_ssl_ctx(TLS_server_method(), err);
	int rc;

	if (c == NULL)
		return err->code == SN_ID_E_NOMEM ? SN_ENOMEM : SN_EINVAL;
	SSL_CTX_set_options(c, SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (!SSL_CTX_set1_groups_list(c, "X25519:P-256:P-384")) {
		rc = web_fail(err, "TLS settings", "");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(c, cert_file) != 1) {
		rc = web_fail(err, "serverCertificate", cert_file);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(c, key_file, SSL_FILETYPE_PEM) != 1) {
		rc = web_fail(err, "privateKey", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(c) != 1) {
		rc = web_fail(err, "privateKey does not match serverCertificate:", key_file);
		goto fail;
	}
	if (client_ca_file != NULL) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca_file);
		if (names == NULL || SSL_CTX_load_verify_locations(c, client_ca_file, NULL) != 1) {
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			rc = web_fail(err, "caCertificates", client_ca_file);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(c, names);
		SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		SSL_CTX_set_verify_depth(c, VERIFY_DEPTH);
	}
	if (ctx->alpn_len)
		SSL_CTX_set_alpn_select_cb(c, alpn_select, ctx);
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
	if (!SSL_CTX_set_session_id_context(c, (const unsigned char *)SESSION_ID_CTX, sizeof(SESSION_ID_CTX) - 1) ||
	    !SSL_CTX_set_num_tickets(c, 1)) {
		rc = sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory building the TLS context");
		goto fail;
	}
	SSL_CTX_set_timeout(c, SN_TLS_TICKET_LIFETIME);
	ERR_clear_error();
	*out = c;
	return 0;
fail:
	ERR_clear_error();
	SSL_CTX_free(c);
	return rc;
}


/* A client context for TLS origination: the server verified against
 * verify_ca_file (else the system's roots) unless insecure; the name is
 * checked per connection (sn_tls_conn_opts.verify_hosts). */
static int build_web_client(const struct sn_tls_web_client_opts *o, SSL_CTX **out, struct sn_id_error *err)
{
	SSL_CTX *c = web_ssl_ctx(TLS_client_method(), err);
	int rc;

	if (c == NULL)
		return err->code == SN_ID_E_NOMEM ? SN_ENOMEM : SN_EINVAL;
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	if (o->insecure) {
		SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
	} else {
		if ((o->verify_ca_file != NULL ? SSL_CTX_load_verify_locations(c, o->verify_ca_file, NULL)
					       : SSL_CTX_set_default_verify_paths(c)) != 1) {
			rc = web_fail(err, "caCertificates", o->verify_ca_file ? o->verify_ca_file : "(system roots)");
			goto fail;
		}
		SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
		SSL_CTX_set_verify_depth(c, VERIFY_DEPTH);
	}
	if (o->cert_file != NULL) {
		if (SSL_CTX_use_certificate_chain_file(c, o->cert_file) != 1) {
			rc = web_fail(err, "clientCertificate", o->cert_file);
			goto fail;
		}
		if (o->key_file == NULL || SSL_CTX_use_PrivateKey_file(c, o->key_file, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(c) != 1) {
			rc = web_fail(err, "privateKey", o->key_file ? o->key_file : "(none)");
			goto fail;
		}
	}
	ERR_clear_error();
	*out = c;
	return 0;
fail:
	ERR_clear_error();
	SSL_CTX_free(c);
	return rc;
}

int sn_tls_ctx_new_web_client(const struct sn_tls_web_client_opts *o, struct sn_tls_ctx **out,
			      struct sn_id_error *err)
{
	if (init() != 0)
		return sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory initialising TLS");
	struct sn_tls_ctx *ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL)
		return sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory");
	ctx->role = SN_TLS_CLIENT;
	ctx->web = 1;
	ctx->no_resumption = 1;
	pthread_mutex_init(&ctx->lock, NULL);
	int rc = build_web_client(o, &ctx->cur, err);
	if (rc != 0) {
		sn_tls_ctx_free(ctx);
		return rc;
	}
	*out = ctx;
	return 0;
}

int sn_tls_ctx_update_web_client(struct sn_tls_ctx *ctx, const struct sn_tls_web_client_opts *o,
				 struct sn_id_error *err)
{
	SSL_CTX *c = NULL;
	if (!ctx->web || ctx->role != SN_TLS_CLIENT)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_MALFORMED, "not a TLS origination context");
	int rc = build_web_client(o, &c, err);
	if (rc != 0)
		return rc;
	swap_cur(ctx, c);
	return 0;
}

int sn_tls_ctx_new_web(const struct sn_tls_web_opts *o, struct sn_tls_ctx **out, struct sn_id_error *err)
{
	if (init() != 0)
		return sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory initialising TLS");
	if (o->cert_file == NULL || o->key_file == NULL)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_MALFORMED, "a certificate and a key are required");
	struct sn_tls_ctx *ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL)
		return sn_id_fail(err, SN_ENOMEM, SN_ID_E_NOMEM, "out of memory");
	ctx->role = SN_TLS_SERVER;
	ctx->web = 1;
	ctx->require_client_cert = o->client_ca_file != NULL;
	pthread_mutex_init(&ctx->lock, NULL);
	int rc = set_alpn(ctx, o->alpn, o->n_alpn, err);
	if (rc == 0)
		rc = build_web(ctx, o, &ctx->cur, err);
	if (rc != 0) {
		sn_tls_ctx_free(ctx);
		return rc;
	}
	*out = ctx;
	return 0;
}

int sn_tls_ctx_update_web(struct sn_tls_ctx *ctx, const struct sn_tls_web_opts *o, struct sn_id_error *err)
{
	SSL_CTX *c = NULL;
	if (!ctx->web)
		return sn_id_fail(err, SN_EINVAL, SN_ID_E_MALFORMED, "not a gateway's TLS context");
	int rc = build_web(ctx, o, &c, err);
	if (rc != 0)
		return rc;
	ctx->require_client_cert = o->client_ca_file != NULL;
	swap_cur(ctx, c);
	return 0;
}

uint64_t sn_tls_ctx_generation(const struct sn_tls_ctx *ctx)
{
	return __atomic_load_n(&ctx->generation, __ATOMIC_RELAXED);
}

/* ---- streams ---- */

static int copy_expected(struct sn_tls_stream *s, const struct sn_tls_conn_opts *conn)
{
	size_t total = 0;

	if (conn->n_expected > SN_TLS_EXPECTED_MAX)
		return SN_EINVAL;
	for (size_t i = 0; i < conn->n_expected; i++) {
		size_t l = strlen(conn->expected_ids[i]);
		if (l == 0 || l > SN_SPIFFE_ID_MAX)
			return SN_EINVAL;
		total += l + 1;
	}
	if (total == 0)
		return 0;
	s->expected = OPENSSL_malloc(total);
	if (s->expected == NULL)
		return SN_ENOMEM;
	char *p = s->expected;
	for (size_t i = 0; i < conn->n_expected; i++) {
		size_t l = strlen(conn->expected_ids[i]) + 1;
		memcpy(p, conn->expected_ids[i], l);
		p += l;
	}
	s->n_expected = conn->n_expected;
	return 0;
}

int sn_tls_stream_new(struct sn_tls_ctx *ctx, int fd, const struct sn_tls_conn_opts *conn,
		      struct sn_tls_stream **out)
{
	struct sn_tls_stream *s;
	struct tls_gen *g;
	BIO *bio;
	int rc = SN_ENOMEM;

	if (fd < 0)
		return SN_EINVAL;
	s = OPENSSL_zalloc(sizeof(*s));
	if (s == NULL)
		return SN_ENOMEM;
	s->ctx = ctx;
	s->fd = fd;
	s->role = ctx->role;
	s->state = SN_TLS_STATE_HANDSHAKE;
	pthread_mutex_lock(&ctx->lock);
	s->ssl = SSL_new(ctx->cur);   /* takes a reference on the SSL_CTX */
	s->generation = ctx->generation;
	pthread_mutex_unlock(&ctx->lock);
	if (s->ssl == NULL)
		goto fail;
	g = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s->ssl), gen_idx);
	s->td = g->td;
	bio = BIO_new(fd_method);
	if (bio == NULL)
		goto fail;
	BIO_set_data(bio, s);
	SSL_set_bio(s->ssl, bio, bio);
	SSL_set_app_data(s->ssl, s);
	if (ctx->role == SN_TLS_SERVER) {
		SSL_set_accept_state(s->ssl);
	} else {
		SSL_set_connect_state(s->ssl);
		if (conn != NULL) {
			rc = copy_expected(s, conn);
			if (rc != 0)
				goto fail;
			rc = SN_ENOMEM;
			if (conn->server_name != NULL && !SSL_set_tlsext_host_name(s->ssl, conn->server_name)) {
				rc = SN_EINVAL;
				goto fail;
			}
			/* a web server's certificate must name one of these */
			for (size_t i = 0; ctx->web && i < conn->n_verify_hosts; i++)
				if (!(i == 0 ? SSL_set1_host(s->ssl, conn->verify_hosts[i])
					     : SSL_add1_host(s->ssl, conn->verify_hosts[i]))) {
					rc = SN_EINVAL;
					goto fail;
				}
			if (conn->alpn != NULL) {
				/* This connection's inner protocol instead of the ctx's list. */
				unsigned char wire[256];
				size_t l = strlen(conn->alpn);
				if (l == 0 || l > 255) {
					rc = SN_EINVAL;
					goto fail;
				}
				wire[0] = (unsigned char)l;
				memcpy(wire + 1, conn->alpn, l);
				if (SSL_set_alpn_protos(s->ssl, wire, (unsigned)l + 1) != 0)
					goto fail;
			}
			if (conn->session_key != NULL && ctx->cache_n > 0) {
				if (strlen(conn->session_key) > SN_TLS_SESSION_KEY_MAX) {
					rc = SN_EINVAL;
					goto fail;
				}
				s->session_key = OPENSSL_strdup(conn->session_key);
				if (s->session_key == NULL)
					goto fail;
				SSL_SESSION *sess = cache_take(ctx, s->session_key, s->generation);
				if (sess != NULL) {
					SSL_set_session(s->ssl, sess);
					SSL_SESSION_free(sess);
				}
			}
		}
	}
	ERR_clear_error();
	*out = s;
	return 0;
fail:
	ERR_clear_error();
	sn_tls_stream_free(s);
	return rc;
}

int sn_tls_stream_set_prefix(struct sn_tls_stream *s, const void *p, size_t len)
{
	if (len == 0)
		return 0;
	if (len > SN_TLS_PREFIX_MAX || s->prefix != NULL || s->state != SN_TLS_STATE_HANDSHAKE)
		return SN_EINVAL;
	s->prefix = OPENSSL_memdup(p, len);
	if (s->prefix == NULL)
		return SN_ENOMEM;
	s->prefix_len = len;
	s->prefix_off = 0;
	return 0;
}

void sn_tls_stream_free(struct sn_tls_stream *s)
{
	if (s == NULL)
		return;
	SSL_free(s->ssl);   /* frees the BIO; drops the SSL_CTX reference */
	OPENSSL_free(s->peer_id);
	OPENSSL_free(s->expected);
	OPENSSL_free(s->session_key);
	OPENSSL_free(s->err);
	OPENSSL_free(s->prefix);
	OPENSSL_free(s);
}

/* SSL_MODE_RELEASE_BUFFERS alone keeps the read buffer after a read that
 * ends in EAGAIN, the usual idle state: hand both record buffers back
 * whenever nothing is pending in them (OpenSSL refuses otherwise). */
static void idle(struct sn_tls_stream *s)
{
	if (s->state != SN_TLS_STATE_HANDSHAKE)
		SSL_free_buffers(s->ssl);
}

static int failed(struct sn_tls_stream *s, int rc)
{
	s->state = SN_TLS_STATE_FAILED;
	s->failed_rc = rc;
	s->want = 0;
	ERR_clear_error();
	return rc;
}

/* Maps a failed SSL_* call to our return codes and a sentence. */
static int ssl_fail(struct sn_tls_stream *s, int r, const char *what)
{
	int e = SSL_get_error(s->ssl, r);
	unsigned long le;

	switch (e) {
	case SSL_ERROR_WANT_READ:
		s->want = SN_TLS_WANT_READ;
		idle(s);
		return SN_EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		s->want = SN_TLS_WANT_WRITE;
		return SN_EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		s->want = 0;
		if (s->state == SN_TLS_STATE_HANDSHAKE) {
			set_err(s, what, "peer sent close_notify during the handshake");
			return failed(s, SN_ECLOSED);
		}
		s->state = SN_TLS_STATE_CLOSED;
		ERR_clear_error();
		return SN_ECLOSED;
	default:
		break;
	}
	if (s->verify_failed)   /* err already says what the certificate did wrong */
		return failed(s, SN_EINVAL);
	if (s->sys_errno != 0) {
		set_err(s, what, "%s", strerror(s->sys_errno));
		return failed(s, SN_EIO);
	}
	if (s->eof) {
		if (s->state == SN_TLS_STATE_HANDSHAKE)
			set_err(s, what, "peer closed the connection during the handshake");
		else
			set_err(s, what, "peer closed the connection without close_notify (data may be truncated)");
		return failed(s, SN_EIO);
	}
	le = ERR_peek_last_error();
	long vr = s->ctx->web && s->role == SN_TLS_CLIENT ? SSL_get_verify_result(s->ssl) : X509_V_OK;
	if (vr != X509_V_OK) {
		/* a web server's certificate: say why OpenSSL refused it */
		set_err(s, what, "server certificate refused: %s", X509_verify_cert_error_string(vr));
	} else if (le != 0) {
		const char *reason = ERR_reason_error_string(le);
		set_err(s, what, "%s", reason != NULL ? reason : "TLS protocol error");
	} else {
		set_err(s, what, "TLS error %d", e);
	}
	return failed(s, SN_EINVAL);
}

/* After the handshake: the peer's ID (from the verify callback, or from
 * the resumed session's certificate), the client's expected IDs again
 * (a resumed session skipped the callback), the certificate's expiry. */
static int handshake_done(struct sn_tls_stream *s)
{
	X509 *peer = SSL_get0_peer_certificate(s->ssl);
	const char *what = "TLS handshake with";

	if (peer != NULL && s->peer_id == NULL && !s->ctx->web) {
		struct sn_spiffe_id id;
		struct sn_id_error e;
		if (sn_svid_check_leaf(peer, s->td, &id, &e) != 0) {
			s->id_err = e.code;
			set_err(s, what, "peer certificate is not a valid X.509-SVID: %s", e.msg);
			return failed(s, SN_EINVAL);
		}
		if (keep_peer_id(s, &id) != 0)
			return failed(s, SN_ENOMEM);
	}
	if (peer != NULL && SSL_session_reused(s->ssl) &&
	    X509_cmp_time(X509_get0_notAfter(peer), NULL) <= 0) {
		s->id_err = SN_ID_E_EXPIRED;
		set_err(s, what, "resumed session's peer certificate has expired");
		return failed(s, SN_EINVAL);
	}
	if (s->role == SN_TLS_CLIENT && !s->ctx->web) {
		if (s->peer_id == NULL) {
			set_err(s, what, "server presented no certificate");
			return failed(s, SN_EINVAL);
		}
		if (check_expected(s, s->peer_id) != 0)
			return failed(s, SN_EINVAL);
	}
	OPENSSL_free(s->expected);
	s->expected = NULL;
	s->n_expected = 0;
	s->state = SN_TLS_STATE_OPEN;
	s->want = 0;
	idle(s);
	return 0;
}

int sn_tls_stream_handshake(struct sn_tls_stream *s)
{
	int r;

	if (s->state == SN_TLS_STATE_FAILED)
		return s->failed_rc;
	if (s->state != SN_TLS_STATE_HANDSHAKE)
		return 0;
	ERR_clear_error();
	r = SSL_do_handshake(s->ssl);
	if (r == 1)
		return handshake_done(s);
	return ssl_fail(s, r, "TLS handshake with");
}

ssize_t sn_tls_stream_read(struct sn_tls_stream *s, void *buf, size_t len)
{
	size_t n = 0;
	int r;

	if (s->state == SN_TLS_STATE_HANDSHAKE) {
		r = sn_tls_stream_handshake(s);
		if (r != 0)
			return r;
	}
	if (s->state == SN_TLS_STATE_FAILED)
		return s->failed_rc;
	if (s->state == SN_TLS_STATE_CLOSED)
		return SN_ECLOSED;
	if (len == 0)
		return 0;
	ERR_clear_error();
	r = SSL_read_ex(s->ssl, buf, len, &n);
	if (r == 1) {
		s->want = 0;
		return (ssize_t)n;
	}
	return ssl_fail(s, r, "TLS read from");
}

ssize_t sn_tls_stream_write(struct sn_tls_stream *s, const void *buf, size_t len)
{
	size_t total = 0;
	int r;

	if (s->state == SN_TLS_STATE_HANDSHAKE) {
		r = sn_tls_stream_handshake(s);
		if (r != 0)
			return r;
	}
	if (s->state == SN_TLS_STATE_FAILED)
		return s->failed_rc;
	if (s->state == SN_TLS_STATE_SHUTDOWN) {
		set_err(s, "TLS write to", "stream was shut down");
		return SN_EINVAL;
	}
	/* Partial-write mode hands back each record as it goes out; loop
	 * until the socket pushes back, like write(2) on a big buffer. */
	while (total < len) {
		size_t n = 0;
		ERR_clear_error();
		r = SSL_write_ex(s->ssl, (const char *)buf + total, len - total, &n);
		if (r != 1) {
			int rc = ssl_fail(s, r, "TLS write to");
			if (rc == SN_EAGAIN && total > 0)
				return (ssize_t)total;
			return rc;
		}
		total += n;
	}
	s->want = 0;
	idle(s);
	return (ssize_t)total;
}

ssize_t sn_tls_stream_writev(struct sn_tls_stream *s, const struct iovec *iov, int iovcnt)
{
	size_t total = 0;

	if (iovcnt > 1) {
		/* One record for what fits in one (a response head and a small
		 * body used to be two records, two sends). Always the first
		 * min(total, COALESCE_MAX) bytes, so a retry after SN_EAGAIN
		 * offers the same bytes again, never fewer (tls.md). */
		unsigned char buf[COALESCE_MAX];
		size_t n = 0;
		for (int i = 0; i < iovcnt && n < sizeof(buf); i++) {
			size_t take = SN_MIN(iov[i].iov_len, sizeof(buf) - n);
			memcpy(buf + n, iov[i].iov_base, take);
			n += take;
		}
		return n == 0 ? 0 : sn_tls_stream_write(s, buf, n);
	}
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len == 0)
			continue;
		ssize_t n = sn_tls_stream_write(s, iov[i].iov_base, iov[i].iov_len);
		if (n < 0)
			return total > 0 && n == SN_EAGAIN ? (ssize_t)total : n;
		total += (size_t)n;
		if ((size_t)n < iov[i].iov_len)
			break;
	}
	return (ssize_t)total;
}

int sn_tls_stream_shutdown(struct sn_tls_stream *s)
{
	int r;

	switch (s->state) {
	case SN_TLS_STATE_FAILED:
		return s->failed_rc;
	case SN_TLS_STATE_HANDSHAKE:
		/* No session to close: the owner just closes the socket. */
		s->state = SN_TLS_STATE_SHUTDOWN;
		return 0;
	default:
		break;
	}
	if (s->state != SN_TLS_STATE_CLOSED)
		s->state = SN_TLS_STATE_SHUTDOWN;
	ERR_clear_error();
	r = SSL_shutdown(s->ssl);
	if (r >= 0) {
		s->want = 0;
		return 0;
	}
	int e = SSL_get_error(s->ssl, r);
	if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
		s->want = e == SSL_ERROR_WANT_WRITE ? SN_TLS_WANT_WRITE : SN_TLS_WANT_READ;
		return SN_EAGAIN;
	}
	return ssl_fail(s, r, "TLS shutdown with");
}

unsigned sn_tls_stream_want(const struct sn_tls_stream *s)
{
	return s->want;
}

enum sn_tls_state sn_tls_stream_state(const struct sn_tls_stream *s)
{
	return s->state;
}

const char *sn_tls_state_str(enum sn_tls_state st)
{
	switch (st) {
	case SN_TLS_STATE_HANDSHAKE: return "handshake";
	case SN_TLS_STATE_OPEN: return "open";
	case SN_TLS_STATE_SHUTDOWN: return "shutdown";
	case SN_TLS_STATE_CLOSED: return "closed";
	case SN_TLS_STATE_FAILED: return "failed";
	}
	return "?";
}

const char *sn_tls_stream_peer_id(const struct sn_tls_stream *s)
{
	return s->state == SN_TLS_STATE_HANDSHAKE || s->state == SN_TLS_STATE_FAILED ? NULL : s->peer_id;
}

struct sn_str sn_tls_stream_alpn(const struct sn_tls_stream *s)
{
	const unsigned char *p = NULL;
	unsigned int l = 0;

	SSL_get0_alpn_selected(s->ssl, &p, &l);
	return p != NULL ? sn_str_make((const char *)p, l) : sn_str_make("", 0);
}

int sn_tls_stream_resumed(const struct sn_tls_stream *s)
{
	return s->state != SN_TLS_STATE_HANDSHAKE && SSL_session_reused(s->ssl);
}

const char *sn_tls_stream_error(const struct sn_tls_stream *s)
{
	return s->err != NULL ? s->err : "";
}

enum sn_id_err sn_tls_stream_id_err(const struct sn_tls_stream *s)
{
	return s->id_err;
}

SSL *sn_tls_stream_ssl(const struct sn_tls_stream *s)
{
	return s->ssl;
}

/* ---- the transport (sinew/xprt.h) ---- */

_Static_assert(SN_TLS_WANT_READ == SN_XPRT_WANT_READ && SN_TLS_WANT_WRITE == SN_XPRT_WANT_WRITE,
	       "want bits are passed through");

static int xprt_handshake(struct sn_xprt *x)
{
	return sn_tls_stream_handshake(x->layer);
}

static ssize_t xprt_read(struct sn_xprt *x, void *buf, size_t len)
{
	return sn_tls_stream_read(x->layer, buf, len);
}

static ssize_t xprt_writev(struct sn_xprt *x, const struct iovec *iov, int iovcnt)
{
	return sn_tls_stream_writev(x->layer, iov, iovcnt);
}

/* close_notify, then FIN once it is out. Nothing can be sent before the
 * handshake is done: SN_EAGAIN, the owner's reads drive it on. */
static int xprt_shutdown(struct sn_xprt *x)
{
	struct sn_tls_stream *s = x->layer;
	if (s->state == SN_TLS_STATE_HANDSHAKE)
		return SN_EAGAIN;
	int r = sn_tls_stream_shutdown(s);
	if (r != 0)
		return r;
	return shutdown(x->fd, SHUT_WR) == 0 ? 0 : SN_EIO;
}

static unsigned xprt_want(const struct sn_xprt *x)
{
	return sn_tls_stream_want(x->layer);
}

static const char *xprt_peer_id(const struct sn_xprt *x)
{
	return sn_tls_stream_peer_id(x->layer);
}

static struct sn_str xprt_alpn(const struct sn_xprt *x)
{
	return sn_tls_stream_alpn(x->layer);
}

static const char *xprt_error(const struct sn_xprt *x)
{
	return sn_tls_stream_error(x->layer);
}

static void xprt_close(struct sn_xprt *x, int graceful)
{
	struct sn_tls_stream *s = x->layer;
	if (graceful && s->state == SN_TLS_STATE_OPEN)
		sn_tls_stream_shutdown(s);   /* close_notify, best effort */
	sn_tls_stream_free(s);
	if (x->fd >= 0)
		close(x->fd);
	sn_xprt_init(x, -1);
}

static const struct sn_xprt_ops tls_xprt_ops = {
	.name = "tls",
	.flags = SN_XPRT_CROSSED_READINESS | SN_XPRT_SECURE,
	.handshake = xprt_handshake,
	.read = xprt_read,
	.writev = xprt_writev,
	.shutdown = xprt_shutdown,
	.want = xprt_want,
	.peer_id = xprt_peer_id,
	.alpn = xprt_alpn,
	.error = xprt_error,
	.close = xprt_close,
};

int sn_xprt_tls(struct sn_xprt *x, struct sn_tls_ctx *ctx, const struct sn_tls_conn_opts *conn)
{
	struct sn_tls_stream *s;
	int r = sn_tls_stream_new(ctx, x->fd, conn, &s);
	if (r != 0)
		return r;
	x->ops = &tls_xprt_ops;
	x->layer = s;
	return 0;
}

/* ---- for src/tls/info.c ---- */

SSL_CTX *sn_tls_ctx_current(struct sn_tls_ctx *ctx, uint64_t *generation, char td[SN_TRUST_DOMAIN_MAX + 1])
{
	SSL_CTX *c;

	pthread_mutex_lock(&ctx->lock);
	c = ctx->cur;
	if (c != NULL && !SSL_CTX_up_ref(c))
		c = NULL;
	*generation = ctx->generation;
	pthread_mutex_unlock(&ctx->lock);
	if (c != NULL) {
		const struct tls_gen *g = SSL_CTX_get_ex_data(c, gen_idx);
		snprintf(td, SN_TRUST_DOMAIN_MAX + 1, "%s", g != NULL ? g->td : "");
	}
	return c;
}
