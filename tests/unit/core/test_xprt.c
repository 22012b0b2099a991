/* The plain transport (src/core/xprt.c) over a real socket pair: what the
 * request path relies on -- SN_EAGAIN, short reads that prove the socket
 * drained, SN_ECLOSED on FIN, half-close, errors instead of SIGPIPE. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "sinew/xprt.h"

static void pair(struct sn_xprt *a, struct sn_xprt *b)
{
	int fds[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
	sn_xprt_init(a, fds[0]);
	sn_xprt_init(b, fds[1]);
}

static void test_plain_read_write(void **state)
{
	(void)state;
	struct sn_xprt a, b;
	char buf[64];

	pair(&a, &b);
	assert_string_equal(a.ops->name, "tcp");
	assert_true(sn_xprt_has(&a, SN_XPRT_SHORT_IO_FINAL));
	assert_false(sn_xprt_has(&a, SN_XPRT_SECURE));
	assert_false(sn_xprt_has(&a, SN_XPRT_CROSSED_READINESS));
	assert_int_equal(sn_xprt_handshake(&a), 0);
	assert_null(sn_xprt_peer_id(&a));
	assert_int_equal(sn_xprt_alpn(&a).len, 0);
	assert_string_equal(sn_xprt_error(&a), "");

	assert_int_equal(sn_xprt_read(&b, buf, sizeof(buf)), SN_EAGAIN);
	struct iovec iov[3] = { { "GET ", 4 }, { "/ ", 2 }, { "HTTP/1.1", 8 } };
	assert_int_equal(sn_xprt_writev(&a, iov, 3), 14);
	/* A short read: everything there was. */
	assert_int_equal(sn_xprt_read(&b, buf, sizeof(buf)), 14);
	assert_memory_equal(buf, "GET / HTTP/1.1", 14);
	assert_int_equal(sn_xprt_read(&b, buf, sizeof(buf)), SN_EAGAIN);

	/* Half-close: b sees the end, and can still answer. */
	assert_int_equal(sn_xprt_shutdown(&a), 0);
	assert_int_equal(sn_xprt_read(&b, buf, sizeof(buf)), SN_ECLOSED);
	assert_int_equal(sn_xprt_write(&b, "ok", 2), 2);
	assert_int_equal(sn_xprt_read(&a, buf, sizeof(buf)), 2);

	sn_xprt_close(&a, 1);
	assert_int_equal(a.fd, -1);
	sn_xprt_close(&a, 1);   /* empty: nothing */
	sn_xprt_close(&b, 0);
}

/* A full socket answers SN_EAGAIN; the write before it was short. */
static void test_plain_full(void **state)
{
	(void)state;
	struct sn_xprt a, b;
	static char big[1 << 16];
	size_t total = 0;
	ssize_t n;

	pair(&a, &b);
	int small = 4096;
	setsockopt(a.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	while ((n = sn_xprt_write(&a, big, sizeof(big))) > 0) {
		total += (size_t)n;
		assert_true(total < (64u << 20));
	}
	assert_int_equal(n, SN_EAGAIN);
	assert_true(total > 0);
	sn_xprt_close(&a, 0);
	sn_xprt_close(&b, 0);
}

/* Writing to a peer that is gone is an error, not a SIGPIPE. */
static void test_plain_peer_gone(void **state)
{
	(void)state;
	struct sn_xprt a, b;
	char buf[8];

	signal(SIGPIPE, SIG_DFL);
	pair(&a, &b);
	sn_xprt_close(&b, 0);
	assert_int_equal(sn_xprt_write(&a, "x", 1), SN_EIO);
	assert_int_equal(sn_xprt_read(&a, buf, sizeof(buf)), SN_ECLOSED);
	sn_xprt_close(&a, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_read_write),
		cmocka_unit_test(test_plain_full),
		cmocka_unit_test(test_plain_peer_gone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
