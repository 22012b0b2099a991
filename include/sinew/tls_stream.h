#ifndef SINEW_TLS_STREAM_H
#define SINEW_TLS_STREAM_H

/* Mutual TLS 1.3 between meshed proxies: a context built from a workload
 * identity (sinew/identity.h) and a non-blocking stream over a socket,
 * driven by the owner's edge-triggered loop (src/tls/stream.c; how it
 * works and why: docs/internals/tls.md).
 *
 * The stream never touches the loop itself: each call does what the
 * socket allows now and says, through SN_EAGAIN and sn_tls_stream_want(),
 * which readiness to wait for. As with a plain socket under EPOLLET, the
 * owner keeps calling until SN_EAGAIN; a short read does NOT mean the
 * socket is drained (OpenSSL may hold a decrypted record).
 *
 * Threads: a ctx may be shared by worker threads (its SSL_CTX pointer and
 * session cache are locked); a stream belongs to one thread. Nothing here
 * logs; failures come back as codes plus a sentence naming the peer
 * (sn_tls_stream_error). Messages never hold keys. */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <openssl/types.h>

#include "sinew/common.h"
#include "sinew/identity.h"
#include "sinew/xprt.h"

#define SN_TLS_WANT_READ 0x1u    /* wait for the socket to be readable */
#define SN_TLS_WANT_WRITE 0x2u   /* wait for the socket to be writable */

/* ALPN names of the inner protocol (DESIGN.md §2). */
#define SN_TLS_ALPN_H1 "sinew/h1"
#define SN_TLS_ALPN_H2 "sinew/h2"
#define SN_TLS_ALPN_TCP "sinew/tcp"

#define SN_TLS_ALPN_MAX 8                /* protocols per context */
#define SN_TLS_EXPECTED_MAX 64           /* expected server IDs per connection */
#define SN_TLS_SESSION_CACHE_DEFAULT 256 /* client: resumable destinations */
#define SN_TLS_SESSION_KEY_MAX 96        /* bytes of a session key */
#define SN_TLS_TICKET_LIFETIME 3600      /* seconds a server's ticket is good */
#define SN_TLS_PREFIX_MAX 16384          /* bytes given back by protocol detection */

struct sn_tls_ctx;
struct sn_tls_stream;

enum sn_tls_role {
	SN_TLS_SERVER = 0,
	SN_TLS_CLIENT = 1,
};

enum sn_tls_state {
	SN_TLS_STATE_HANDSHAKE = 0,
	SN_TLS_STATE_OPEN,
	SN_TLS_STATE_SHUTDOWN,   /* our close_notify sent (or being sent) */
	SN_TLS_STATE_CLOSED,     /* peer's close_notify received */
	SN_TLS_STATE_FAILED,
};

/* The workload's material. Borrowed during the call; the context keeps
 * its own copies (references), so the caller may free these after. */
struct sn_tls_identity {
	EVP_PKEY *key;                 /* ECDSA P-256; or NULL and key_pem */
	const char *key_pem;
	size_t key_len;
	const char *chain_pem;         /* leaf first, then intermediates */
	size_t chain_len;
	const struct sn_trust_bundle *bundle;  /* roots; required */
};

struct sn_tls_ctx_opts {
	enum sn_tls_role role;
	/* Server: require and verify a client certificate (mTLS). 0: verify
	 * one if sent (sn_tls_stream_peer_id tells). Client: ignored. */
	int require_client_cert;
	/* Client: offered in this order; server: accepted, first of the
	 * server's list the client offers wins; a client offering only
	 * others is refused (no_application_protocol), one offering none
	 * is served without ALPN (sn_tls_stream_alpn is ""). NULL/0: none. */
	const char *const *alpn;
	size_t n_alpn;
	/* Client: how many destinations' resumable sessions are kept (0:
	 * SN_TLS_SESSION_CACHE_DEFAULT). Only streams given a session key
	 * resume. */
	size_t session_cache;
	int no_resumption;             /* client and server: full handshakes only */
	/* Client, bootstrap only (a proxy holding a join token and no bundle
	 * yet): trust the server only if the chain it sends contains a root
	 * whose SHA-256 is pinned_root and the leaf validates to that root
	 * as an X.509-SVID of pinned_td. id->bundle may then be NULL. */
	const uint8_t *pinned_root;    /* 32 bytes, or NULL */
	const char *pinned_td;
};

/* Per connection. Strings are copied. */
struct sn_tls_conn_opts {
	/* Client: the SPIFFE IDs the server may present (exact match); NULL
	 * or 0: any ID of the bundle's trust domain. Server: ignored (policy
	 * decides after the handshake, on sn_tls_stream_peer_id). */
	const char *const *expected_ids;
	size_t n_expected;
	/* Client: the destination a resumed session is reused for (e.g. the
	 * endpoint's "10.0.0.7:9080"); NULL: no resumption. */
	const char *session_key;
	/* Client: SNI, or NULL (SPIFFE needs none). */
	const char *server_name;
	/* Client: offer only this ALPN protocol (e.g. SN_TLS_ALPN_TCP) instead
	 * of the context's list; NULL: the context's. */
	const char *alpn;
	/* Client of a web context (sn_tls_ctx_new_web_client): the names the
	 * server's certificate may carry (DNS SAN or CN); none: not checked. */
	const char *const *verify_hosts;
	size_t n_verify_hosts;
};

/* The TLS transport (sinew/xprt.h): turns the plain transport x (its fd
 * connected, non-blocking) into a TLS stream over the same socket, as
 * sn_tls_stream_new does (conn may be NULL); the handshake starts with
 * sn_xprt_handshake or the first read. x then owns the stream and frees
 * it on sn_xprt_close. Returns 0, or SN_EINVAL/SN_ENOMEM with x still
 * plain. */
int sn_xprt_tls(struct sn_xprt *x, struct sn_tls_ctx *ctx, const struct sn_tls_conn_opts *conn);

/* --- contexts --- */

/* Creates a context for o->role from id: TLS 1.3 only, AES-GCM and
 * ChaCha20-Poly1305, X25519/P-256, ECDSA P-256 signatures. The leaf
 * must pass sn_svid_check_leaf against the bundle's trust domain and
 * match the key. A client may pass no key and no chain (it then has no
 * certificate: tests, or a server not asking for one). *out is the
 * caller's (sn_tls_ctx_free). Returns 0, SN_EINVAL (err says why) or
 * SN_ENOMEM. Not from a signal handler; from a loop callback is fine. */
int sn_tls_ctx_new(const struct sn_tls_ctx_opts *o, const struct sn_tls_identity *id,
		   struct sn_tls_ctx **out, struct sn_id_error *err);

/* Replaces the certificate, key and bundle: handshakes started after it
 * use the new material; streams already made keep the old SSL_CTX (each
 * holds a reference) and never notice. The client's session cache is
 * emptied (a session verified under the old bundle is not resumed).
 * Any thread. Returns 0, or SN_EINVAL/SN_ENOMEM with the ctx unchanged. */
int sn_tls_ctx_update(struct sn_tls_ctx *ctx, const struct sn_tls_identity *id,
		      struct sn_id_error *err);

/* A gateway's server context (Istio Gateway tls.mode SIMPLE or MUTUAL):
 * a web certificate from PEM files, not a SPIFFE identity. TLS 1.2 (ECDHE,
 * AEAD) or 1.3; the chain and key may be RSA or ECDSA. With client_ca_file
 * (MUTUAL) a client must present a certificate that file verifies. ALPN
 * as sn_tls_ctx_opts's (a server's list). sn_tls_stream_peer_id stays NULL
 * (a client certificate is no SVID). Returns 0, SN_EINVAL (err names the
 * file and OpenSSL's reason) or SN_ENOMEM. */
/* Another certificate of a gateway port, for clients whose server name
 * (SNI) host matches: a name (any case), "*.suffix" or "*". cert_file
 * NULL: the context's own (so that a more specific host can keep it). */
struct sn_tls_web_sni {
	const char *host;
	const char *cert_file, *key_file;
	const char *client_ca_file;    /* as the context's: NULL only if its is */
};

struct sn_tls_web_opts {
	const char *cert_file;         /* chain PEM, leaf first */
	const char *key_file;
	const char *client_ca_file;    /* NULL: no client certificate asked */
	const char *const *alpn;
	size_t n_alpn;
	/* certificates chosen by the ClientHello's server name: the exact
	 * host, else the longest "*.suffix", else "*", else the context's own */
	const struct sn_tls_web_sni *sni;
	size_t n_sni;
};

int sn_tls_ctx_new_web(const struct sn_tls_web_opts *o, struct sn_tls_ctx **out, struct sn_id_error *err);
/* New files for a web context (its ALPN list stays): as sn_tls_ctx_update. */
int sn_tls_ctx_update_web(struct sn_tls_ctx *ctx, const struct sn_tls_web_opts *o, struct sn_id_error *err);

/* A client context for TLS origination (DestinationRule tls.mode SIMPLE
 * or MUTUAL): the server verified against verify_ca_file (NULL: the
 * system's roots) unless insecure; a client certificate for MUTUAL. No
 * SPIFFE checks; the server's name is checked per connection
 * (sn_tls_conn_opts.verify_hosts). TLS 1.2 or 1.3, no resumption. */
struct sn_tls_web_client_opts {
	const char *verify_ca_file;
	int insecure;
	const char *cert_file, *key_file;   /* NULL: no client certificate */
};

int sn_tls_ctx_new_web_client(const struct sn_tls_web_client_opts *o, struct sn_tls_ctx **out,
			      struct sn_id_error *err);
int sn_tls_ctx_update_web_client(struct sn_tls_ctx *ctx, const struct sn_tls_web_client_opts *o,
				 struct sn_id_error *err);

/* Frees the context. Streams made from it must be freed first. */
void sn_tls_ctx_free(struct sn_tls_ctx *ctx);

/* How many times the material was replaced (0 for the first). */
uint64_t sn_tls_ctx_generation(const struct sn_tls_ctx *ctx);

/* --- streams --- */

/* Creates a stream over fd (non-blocking, connected; borrowed: the
 * owner closes it after sn_tls_stream_free). conn may be NULL. Nothing
 * is sent until sn_tls_stream_handshake. *out is the caller's.
 * Returns 0, SN_EINVAL or SN_ENOMEM. */
int sn_tls_stream_new(struct sn_tls_ctx *ctx, int fd, const struct sn_tls_conn_opts *conn,
		      struct sn_tls_stream **out);

/* Gives back bytes protocol detection already read from fd (at most
 * SN_TLS_PREFIX_MAX; copied): the handshake reads them first. Before
 * the first handshake call only. Returns 0, SN_EINVAL or SN_ENOMEM. */
int sn_tls_stream_set_prefix(struct sn_tls_stream *s, const void *p, size_t len);

/* Frees the stream (no close_notify: call sn_tls_stream_shutdown first
 * for a clean close). Never from inside a call on the same stream. */
void sn_tls_stream_free(struct sn_tls_stream *s);

/* Advances the handshake. Returns 0 once done (then peer ID, ALPN and
 * resumption are known), SN_EAGAIN (see sn_tls_stream_want), or a
 * negative error with sn_tls_stream_error set; after an error only
 * sn_tls_stream_free is useful. Calling it when done returns 0. */
int sn_tls_stream_handshake(struct sn_tls_stream *s);

/* Reads up to len plaintext bytes. Returns bytes (> 0), SN_EAGAIN,
 * SN_ECLOSED once the peer's close_notify arrived, or a negative error
 * (a peer that closes the TCP connection without close_notify is
 * SN_EIO: the data may be truncated). Runs the handshake if needed. */
ssize_t sn_tls_stream_read(struct sn_tls_stream *s, void *buf, size_t len);

/* Writes up to len bytes. Returns bytes taken (> 0; may be fewer than
 * len: one or more whole TLS records went out), SN_EAGAIN, or a negative
 * error. After SN_EAGAIN the next call must offer at least the same
 * bytes again (the same content, the buffer may have moved): OpenSSL
 * holds the encrypted record until the socket takes it. */
ssize_t sn_tls_stream_write(struct sn_tls_stream *s, const void *buf, size_t len);

/* Writes the iovecs in order as sn_tls_stream_write does, each as its
 * own record(s); returns the bytes taken in total (> 0), SN_EAGAIN if
 * none, or a negative error. The same retry rule applies. */
ssize_t sn_tls_stream_writev(struct sn_tls_stream *s, const struct iovec *iov, int iovcnt);

/* Sends close_notify. Returns 0 once it is out (the owner may close the
 * fd, or read to SN_ECLOSED to see the peer's), SN_EAGAIN, or an error.
 * Before the handshake finished: 0 and nothing is sent. */
int sn_tls_stream_shutdown(struct sn_tls_stream *s);

/* SN_TLS_WANT_READ and/or SN_TLS_WANT_WRITE after an SN_EAGAIN. */
unsigned sn_tls_stream_want(const struct sn_tls_stream *s);

enum sn_tls_state sn_tls_stream_state(const struct sn_tls_stream *s);
const char *sn_tls_state_str(enum sn_tls_state st);

/* The peer's SPIFFE ID once the handshake is done (borrowed, valid until
 * free), or NULL if the peer sent no certificate. */
const char *sn_tls_stream_peer_id(const struct sn_tls_stream *s);

/* The ALPN protocol agreed ("" if none); borrowed. */
struct sn_str sn_tls_stream_alpn(const struct sn_tls_stream *s);

/* 1 if the handshake resumed a session (no certificates exchanged). */
int sn_tls_stream_resumed(const struct sn_tls_stream *s);

/* The last failure as a sentence naming the peer ("TLS handshake with
 * 10.0.0.7:9080 failed: peer presented spiffe://…, expected spiffe://…"),
 * or "". Borrowed, valid until the next call or free. */
const char *sn_tls_stream_error(const struct sn_tls_stream *s);

/* The id_err code behind a refused peer certificate (SN_ID_OK if the
 * failure was not about the certificate). */
enum sn_id_err sn_tls_stream_id_err(const struct sn_tls_stream *s);

/* The OpenSSL object, borrowed, for inspection (cipher, version, peer
 * certificate). Do not read or write through it. */
SSL *sn_tls_stream_ssl(const struct sn_tls_stream *s);

/* ==== What a context serves (src/tls/info.c) ==========================
 * The identity a ctx currently presents and trusts, for the admin
 * endpoint /identity, the certificate-expiry gauge and `sinew identity`.
 * Certificates are public; nothing here ever reads the private key. */

#define SN_TLS_INFO_CHAIN_MAX 8          /* certificates of the served chain described */
#define SN_TLS_INFO_ROOTS_MAX 8          /* roots of the trust bundle described */
#define SN_TLS_INFO_NAME_MAX 256         /* subject/issuer bytes with the NUL; longer is cut */
#define SN_TLS_INFO_SERIAL_MAX 48        /* hex digits of a serial with sign and NUL */
#define SN_TLS_INFO_PEM_MAX 16384        /* bytes of the whole chain's PEM with the NUL */

#define SN_TLS_INFO_PEM 0x1u             /* sn_tls_ctx_describe: fill chain_pem too */

enum sn_tls_cert_kind {
	SN_TLS_CERT_LEAF = 0,
	SN_TLS_CERT_INTERMEDIATE,
	SN_TLS_CERT_ROOT,
};

/* One certificate. Strings are NUL-terminated. */
struct sn_tls_cert_info {
	enum sn_tls_cert_kind kind;
	/* X509_NAME_oneline form, as `sinew ca` and GET /api/v1/ca print
	 * names ("/O=sinew/OU=cluster.local/CN=sinew root 1a2b"); "" for
	 * the empty subject of an SVID issued by sinewd. */
	char subject[SN_TLS_INFO_NAME_MAX];
	char issuer[SN_TLS_INFO_NAME_MAX];
	char serial[SN_TLS_INFO_SERIAL_MAX];   /* upper-case hex, as `openssl x509 -serial` */
	int64_t not_before, not_after;         /* unix seconds */
	char sha256[65];                       /* SHA-256 of the DER, lower-case hex */
	/* Chain certificates with SN_TLS_INFO_PEM: this one's PEM is
	 * chain_pem[pem_off .. pem_off + pem_len); pem_len 0 if it did not
	 * fit. Roots: always 0. */
	size_t pem_off, pem_len;
};

/* The identity of one ctx generation, read at one instant. Fixed size
 * (about 29 KiB, 16 of them the PEM): allocate it rather than put it on
 * a worker's stack. */
struct sn_tls_ctx_info {
	uint64_t generation;                   /* as sn_tls_ctx_generation */
	int has_cert;                          /* 0: a client ctx made without one */
	char spiffe_id[SN_SPIFFE_ID_MAX + 1];  /* the leaf's URI SAN; "" without a leaf */
	char trust_domain[SN_TRUST_DOMAIN_MAX + 1];
	/* The chain served to peers: [0] the leaf, then intermediates, in
	 * the order sent. n_chain are described; chain_total are held
	 * (more than SN_TLS_INFO_CHAIN_MAX: the rest is left out). */
	size_t n_chain, chain_total;
	struct sn_tls_cert_info chain[SN_TLS_INFO_CHAIN_MAX];
	/* The trust bundle's roots (in the verify store's order). */
	size_t n_roots, roots_total;
	struct sn_tls_cert_info roots[SN_TLS_INFO_ROOTS_MAX];
	/* With SN_TLS_INFO_PEM: the chain's PEM, leaf first (what
	 * `--tls-cert` holds), cut after the last certificate that fits. */
	char chain_pem[SN_TLS_INFO_PEM_MAX];
	size_t chain_pem_len;
};

/* Describes the identity ctx serves now into *out (the caller's; every
 * field is overwritten). The current generation is taken under the ctx's
 * lock with a reference, so a concurrent sn_tls_ctx_update() yields
 * either the old or the new identity, whole, never a mix. flags:
 * SN_TLS_INFO_PEM or 0. Any thread; CPU only (no I/O), a few tens of
 * microseconds. Returns 0, or SN_ENOMEM. */
int sn_tls_ctx_describe(struct sn_tls_ctx *ctx, unsigned flags, struct sn_tls_ctx_info *out);

/* "leaf", "intermediate", "root". */
const char *sn_tls_cert_kind_str(enum sn_tls_cert_kind k);

/* For src/tls/info.c (defined in stream.c, which owns the ctx's layout):
 * the current SSL_CTX with a new reference the caller drops with
 * SSL_CTX_free(), its generation, and its trust domain copied into td,
 * all read under the ctx's lock. NULL if the reference cannot be taken. */
SSL_CTX *sn_tls_ctx_current(struct sn_tls_ctx *ctx, uint64_t *generation,
			    char td[SN_TRUST_DOMAIN_MAX + 1]);

#endif
