/* The plain TCP transport (sinew/xprt.h): the socket calls themselves,
 * errno folded into SN_* codes. TLS is the other implementation
 * (src/tls/stream.c). */
#include <errno.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include "sinew/buf.h"
#include "sinew/xprt.h"

static int plain_handshake(struct sn_xprt *x)
{
	(void)x;
	return 0;
}

static ssize_t plain_read(struct sn_xprt *x, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = read(x->fd, buf, len);
		if (n > 0)
			return n;
		if (n == 0)
			return SN_ECLOSED;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? SN_EAGAIN : SN_EIO;
	}
}

/* sendmsg rather than writev: MSG_NOSIGNAL, so a peer that is gone is an
 * error here and never a SIGPIPE, whatever the program's signal setup. */
static ssize_t plain_writev(struct sn_xprt *x, const struct iovec *iov, int iovcnt)
{
	struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };

	for (;;) {
		ssize_t n = sendmsg(x->fd, &m, MSG_NOSIGNAL);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? SN_EAGAIN : SN_EIO;
	}
}

static int plain_shutdown(struct sn_xprt *x)
{
	return shutdown(x->fd, SHUT_WR) == 0 ? 0 : SN_EIO;
}

static unsigned plain_want(const struct sn_xprt *x)
{
	(void)x;
	return 0;   /* only the direction of the call that returned SN_EAGAIN */
}

static const char *plain_peer_id(const struct sn_xprt *x)
{
	(void)x;
	return NULL;
}

static struct sn_str plain_alpn(const struct sn_xprt *x)
{
	(void)x;
	return (struct sn_str){ "", 0 };
}

static const char *plain_error(const struct sn_xprt *x)
{
	(void)x;
	return "";
}

static void plain_close(struct sn_xprt *x, int graceful)
{
	(void)graceful;
	if (x->fd >= 0)
		close(x->fd);
	sn_xprt_init(x, -1);
}

const struct sn_xprt_ops sn_xprt_plain_ops = {
	.name = "tcp",
	.flags = SN_XPRT_SHORT_IO_FINAL,
	.handshake = plain_handshake,
	.read = plain_read,
	.writev = plain_writev,
	.shutdown = plain_shutdown,
	.want = plain_want,
	.peer_id = plain_peer_id,
	.alpn = plain_alpn,
	.error = plain_error,
	.close = plain_close,
};

void sn_xprt_init(struct sn_xprt *x, int fd)
{
	x->ops = &sn_xprt_plain_ops;
	x->fd = fd;
	x->layer = NULL;
}

/* ---- transport <-> buffer, for the request path ---- */

ssize_t sn_xprt_read_buf(struct sn_xprt *x, struct sn_buf_pool *pool, struct sn_buf *b, size_t max_cap, int hup,
			 unsigned *clear)
{
	*clear = 0;
	if (sn_buf_reserve(pool, b, 1, max_cap) != 0)
		return 0;
	size_t room = sn_buf_room(b);
	if (room == 0)
		return 0;
	ssize_t n = sn_xprt_read(x, b->base + b->end, room);
	if (n > 0) {
		b->end += (size_t)n;
		if ((size_t)n < room && !hup && sn_xprt_has(x, SN_XPRT_SHORT_IO_FINAL))
			*clear = SN_XPRT_WANT_READ;
		return n;
	}
	*clear = SN_XPRT_WANT_READ;
	if (n == SN_EAGAIN) {
		if (sn_xprt_want(x) & SN_XPRT_WANT_WRITE)
			*clear |= SN_XPRT_WANT_WRITE;
		return 0;
	}
	return -1;   /* SN_ECLOSED or an error */
}

ssize_t sn_xprt_send(struct sn_xprt *x, struct iovec *iov, int n, unsigned *clear)
{
	size_t done = 0;

	*clear = 0;
	while (n > 0) {
		ssize_t k = sn_xprt_writev(x, iov, n);
		if (k == SN_EAGAIN) {
			*clear = SN_XPRT_WANT_WRITE;
			if (sn_xprt_want(x) & SN_XPRT_WANT_READ)
				*clear |= SN_XPRT_WANT_READ;
			break;
		}
		if (k < 0)
			return -1;
		done += (size_t)k;
		size_t skip = (size_t)k;
		int i = 0;
		while (i < n && skip >= iov[i].iov_len)
			skip -= iov[i++].iov_len;
		memmove(iov, iov + i, (size_t)(n - i) * sizeof(iov[0]));
		n -= i;
		if (n > 0) {
			iov[0].iov_base = (char *)iov[0].iov_base + skip;
			iov[0].iov_len -= skip;
			if (sn_xprt_has(x, SN_XPRT_SHORT_IO_FINAL)) {
				*clear = SN_XPRT_WANT_WRITE;   /* short: the socket is full */
				break;
			}
		}
	}
	return (ssize_t)done;
}
