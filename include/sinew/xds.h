#ifndef SINEW_XDS_H
#define SINEW_XDS_H

/* The control-plane link's transport (docs/internals/control-protocol.md):
 * one HTTP/2 stream (nghttp2, prior knowledge) carrying newline-delimited
 * JSON messages in both directions, driven by a sn_loop. Used by
 * sinew-proxy (client role) and sinewd (server role).
 *
 * Bounded: a message is at most SN_XDS_MAX_MESSAGE bytes; the send queue
 * holds at most SN_XDS_MAX_QUEUE bytes (sn_xds_conn_send returns SN_ELIMIT
 * beyond it, and the caller coalesces instead of queueing more). */

#include <stddef.h>

#include "sinew/common.h"
#include "sinew/loop.h"

#define SN_XDS_MAX_MESSAGE (8u << 20)
#define SN_XDS_MAX_QUEUE (16u << 20)
#define SN_XDS_PATH "/sinew.v1.Mesh/Stream"

struct sn_xds_conn;

struct sn_xds_ops {
	/* The stream is up: client got response headers 200; server got the
	 * request headers. */
	void (*on_open)(struct sn_xds_conn *c);
	/* One complete message (without the '\n'). The bytes are valid only
	 * during the call. */
	void (*on_message)(struct sn_xds_conn *c, const char *msg, size_t len);
	/* The link is gone (EOF, error, protocol error, sn_xds_conn_close).
	 * Called once; the conn is freed after it returns (in the loop's
	 * reclaim phase). why is a static string. */
	void (*on_close)(struct sn_xds_conn *c, const char *why);
	/* Optional: the TLS handshake is done (the peer's ID is known);
	 * nothing has been sent or received yet. Nonzero closes the link. */
	int (*on_secure)(struct sn_xds_conn *c);
};

struct sn_tls_ctx;

/* TLS for the link (NULL or ctx NULL: plaintext). Borrowed: the ctx must
 * outlive the connections (sn_tls_ctx_update swaps certificates under
 * them). */
struct sn_xds_tls {
	struct sn_tls_ctx *ctx;
	const char *expected_id;    /* client: the server's SPIFFE ID; NULL: any */
	int allow_plaintext;        /* server: a first byte other than 0x16 is plaintext h2 */
};

/* Takes fd (non-blocking; connected or with connect in progress) and
 * starts a client session: sends the preface and opens the stream.
 * Returns NULL on ENOMEM (fd closed). */
struct sn_xds_conn *sn_xds_client(struct sn_loop *loop, int fd, const char *authority,
				  const struct sn_xds_tls *tls, const struct sn_xds_ops *ops, void *arg);
/* Takes an accepted fd and starts a server session that accepts one
 * stream on SN_XDS_PATH (others get 404). */
struct sn_xds_conn *sn_xds_server(struct sn_loop *loop, int fd, const struct sn_xds_tls *tls,
				  const struct sn_xds_ops *ops, void *arg);
/* The peer's SPIFFE ID once the TLS handshake is done; NULL for plaintext
 * or a TLS client that sent no certificate. */
const char *sn_xds_peer_id(const struct sn_xds_conn *c);
/* The notAfter (unix seconds) of the certificate the peer presented in
 * the handshake, or 0 for none (plaintext, no certificate). It does not
 * change while the link lives: the peer may hold a newer one by now. */
int64_t sn_xds_peer_not_after(const struct sn_xds_conn *c);
/* Whether the link runs over TLS. */
int sn_xds_secure(const struct sn_xds_conn *c);
/* Whether bytes from the peer wait in the socket, not yet read (a busy
 * loop has not come to them): the peer is not silent. */
int sn_xds_has_unread(const struct sn_xds_conn *c);
/* Sends an HTTP/2 PING, which the peer's HTTP/2 layer answers by itself
 * as long as its loop runs, whether or not it has anything to say.
 * Returns 0, SN_ENOMEM or SN_ECLOSED. */
int sn_xds_ping(struct sn_xds_conn *c);
/* How many PINGs of ours the peer has answered on this link (in order). */
uint64_t sn_xds_pings_answered(const struct sn_xds_conn *c);

/* Queues one message (a '\n' is appended). Returns 0, SN_EINVAL if msg
 * holds a newline or is too long, SN_ELIMIT if the queue is full, SN_ECLOSED
 * if the link is closing. */
int sn_xds_send(struct sn_xds_conn *c, const char *msg, size_t len);
/* Bytes queued and not yet handed to the socket. */
size_t sn_xds_queued(const struct sn_xds_conn *c);
/* Closes the link; on_close runs (from the deferred phase). Idempotent. */
void sn_xds_close(struct sn_xds_conn *c, const char *why);
void *sn_xds_arg(const struct sn_xds_conn *c);
/* "ip:port" of the peer, for logs. */
const char *sn_xds_peer(const struct sn_xds_conn *c);

#endif
