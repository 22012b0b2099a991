#ifndef SINEW_XPRT_H
#define SINEW_XPRT_H

/* A transport: the byte stream under a codec, plain TCP or TLS, behind one
 * small ops table (HAProxy's xprt_ops, curl's connection filters). The
 * exchange, the opaque TCP relay and the control link read and write
 * through it and never ask which one they hold; what differs between
 * transports is said by the ops' flags, not by testing for TLS.
 *
 * Every call does what the socket allows now and never touches the loop:
 * SN_EAGAIN means "wait", and sn_xprt_want() says for which readiness.
 * Under edge-triggered epoll the owner keeps calling until SN_EAGAIN,
 * except where a flag below says a short transfer already proves it.
 *
 * The plain transport lives in src/core/xprt.c, the TLS one in
 * src/tls/stream.c (sn_xprt_tls, sinew/tls_stream.h). A transport belongs
 * to one thread. It may be handed to another owner by copying the struct
 * and forgetting the original (sn_xprt_init on it). */

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "sinew/common.h"

#define SN_XPRT_WANT_READ 0x1u    /* wait for the socket to be readable */
#define SN_XPRT_WANT_WRITE 0x2u   /* wait for the socket to be writable */

/* What a transport promises (sn_xprt_ops.flags). */
/* A read shorter than asked means the socket is drained, and a write
 * shorter than offered that it is full: no call needed to see SN_EAGAIN
 * (a plain socket; not TLS, which may hold a decrypted record or take
 * one record at a time). Saves a system call per wake-up. */
#define SN_XPRT_SHORT_IO_FINAL 0x1u
/* A read may wait for writability and a write for readability (TLS
 * renegotiation-free key updates, handshake records): on any readiness
 * the owner retries both directions. */
#define SN_XPRT_CROSSED_READINESS 0x2u
/* Bytes are encrypted and the peer authenticated by certificate
 * (connection_security_policy "mutual_tls" in metrics). */
#define SN_XPRT_SECURE 0x4u

struct sn_xprt;

struct sn_xprt_ops {
	const char *name;            /* "tcp", "tls": for logs */
	unsigned flags;              /* SN_XPRT_* above */
	/* Advances the handshake: 0 once done (at once for plain TCP),
	 * SN_EAGAIN, or a negative error (sn_xprt_error says why). */
	int (*handshake)(struct sn_xprt *x);
	/* Reads up to len bytes: bytes (> 0), SN_EAGAIN, SN_ECLOSED on the
	 * peer's orderly end (FIN, or TLS close_notify), or a negative error
	 * (a TLS peer that closes without close_notify is SN_EIO). */
	ssize_t (*read)(struct sn_xprt *x, void *buf, size_t len);
	/* Writes the iovecs in order: bytes taken (> 0), SN_EAGAIN, or a
	 * negative error. After SN_EAGAIN the next call offers at least the
	 * same bytes again (TLS keeps the encrypted record until it is out). */
	ssize_t (*writev)(struct sn_xprt *x, const struct iovec *iov, int iovcnt);
	/* Ends our sending side (FIN; over TLS close_notify, then FIN):
	 * 0 once out, SN_EAGAIN (TLS: the handshake is still running or the
	 * socket is full; call again), or a negative error. Reading goes on. */
	int (*shutdown)(struct sn_xprt *x);
	/* What the last SN_EAGAIN waits for beyond the direction of the call
	 * itself: SN_XPRT_WANT_* (TLS: a read waiting to write, a write to
	 * read); 0 for plain TCP, which waits only for its own direction. */
	unsigned (*want)(const struct sn_xprt *x);
	/* The peer's SPIFFE ID once the handshake is done, else NULL;
	 * borrowed until close. */
	const char *(*peer_id)(const struct sn_xprt *x);
	/* The ALPN protocol agreed ("" if none or plain). */
	struct sn_str (*alpn)(const struct sn_xprt *x);
	/* The last failure as a sentence naming the peer, or "". */
	const char *(*error)(const struct sn_xprt *x);
	/* Frees the layer and closes the socket. graceful: try to end the
	 * stream cleanly first (TLS close_notify, best effort, never
	 * waiting). Leaves x as sn_xprt_init made it. */
	void (*close)(struct sn_xprt *x, int graceful);
};

struct sn_xprt {
	const struct sn_xprt_ops *ops;
	int fd;                      /* the socket; -1 once closed */
	void *layer;                 /* the TLS stream; NULL for plain TCP */
};

/* The plain TCP transport's table (src/core/xprt.c). */
extern const struct sn_xprt_ops sn_xprt_plain_ops;

/* Makes x a plain transport over fd (taken: closed by sn_xprt_close).
 * fd -1 makes an empty transport that owns nothing. */
void sn_xprt_init(struct sn_xprt *x, int fd);

static inline int sn_xprt_handshake(struct sn_xprt *x)
{
	return x->ops->handshake(x);
}

static inline ssize_t sn_xprt_read(struct sn_xprt *x, void *buf, size_t len)
{
	return x->ops->read(x, buf, len);
}

static inline ssize_t sn_xprt_writev(struct sn_xprt *x, const struct iovec *iov, int iovcnt)
{
	return x->ops->writev(x, iov, iovcnt);
}

static inline ssize_t sn_xprt_write(struct sn_xprt *x, const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };
	return x->ops->writev(x, &iov, 1);
}

static inline int sn_xprt_shutdown(struct sn_xprt *x)
{
	return x->ops->shutdown(x);
}

static inline unsigned sn_xprt_want(const struct sn_xprt *x)
{
	return x->ops->want(x);
}

static inline unsigned sn_xprt_has(const struct sn_xprt *x, unsigned flag)
{
	return x->ops->flags & flag;
}

static inline const char *sn_xprt_peer_id(const struct sn_xprt *x)
{
	return x->ops->peer_id(x);
}

static inline struct sn_str sn_xprt_alpn(const struct sn_xprt *x)
{
	return x->ops->alpn(x);
}

static inline const char *sn_xprt_error(const struct sn_xprt *x)
{
	return x->ops->error(x);
}

struct sn_buf;
struct sn_buf_pool;

/* Reads what x has into b (storage from pool, grown up to max_cap).
 * Returns bytes read, 0 for nothing now (or b full), -1 on the end or an
 * error. *clear gets the readiness the caller must drop (SN_XPRT_WANT_*):
 * READ once the socket is drained -- SN_EAGAIN, or a short read where the
 * transport says that proves it, unless hup (a hang-up was reported: the
 * EOF after the data will not be announced again by edge-triggered epoll)
 * -- and WRITE when the transport waits to write first. */
ssize_t sn_xprt_read_buf(struct sn_xprt *x, struct sn_buf_pool *pool, struct sn_buf *b, size_t max_cap, int hup,
			 unsigned *clear);

/* Writes iov[0..n) through x while it takes bytes, consuming the iovecs.
 * Returns the bytes written (possibly 0) or -1 on an error; *clear as
 * above, for the write direction (WRITE once the socket is full, READ
 * when the transport waits to read first). TLS takes a record at a time,
 * so a short write there does not mean full: it loops to SN_EAGAIN. After
 * SN_EAGAIN the same bytes must be offered again. */
ssize_t sn_xprt_send(struct sn_xprt *x, struct iovec *iov, int n, unsigned *clear);

/* Closes (see the close op); does nothing on an empty transport. */
static inline void sn_xprt_close(struct sn_xprt *x, int graceful)
{
	x->ops->close(x, graceful);
}

#endif
