/* The small HTTP/1.1 server (src/http/server.c) on a real loop and real
 * loopback sockets: what sinewd's API and the proxy's admin port rely on.
 * The exact response head, HEAD without a body, Content-Length bodies with
 * 100-continue, the refusals (400, 411, 413, 431) through on_error or a
 * bare close without it, a server that does not read bodies, the
 * connection bound, the timeout, handover (taken and refused), an
 * unanswered request, and stop closing what is open. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "sinew/http_server.h"

/* What the handlers saw, and how they answer. */
struct app {
	struct sn_hsrv srv;
	int requests, errors;
	char method[16], path[128], query[128], header[64], body[256];
	size_t body_len;
	int error_status;
	char error_msg[256];
	uint64_t conn_id;
	enum { ANSWER, NO_ANSWER, HANDOVER_TAKE, HANDOVER_REFUSE } mode;
	int taken_fd;
};

static struct sn_loop loop;

static void copy(char *dst, size_t cap, struct sn_str s)
{
	snprintf(dst, cap, "%.*s", (int)s.len, s.p ? s.p : "");
}

static int take(int fd, const void *arg, char *why, size_t size)
{
	struct app *a = (struct app *)arg;
	if (a->mode == HANDOVER_REFUSE) {
		snprintf(why, size, "no tap for you");
		return 403;
	}
	a->taken_fd = fd;
	return 0;
}

static void on_request(void *data, struct sn_hsrv_conn *c, const struct sn_hsrv_req *r)
{
	struct app *a = data;
	a->requests++;
	copy(a->method, sizeof(a->method), r->method);
	copy(a->path, sizeof(a->path), r->path);
	copy(a->query, sizeof(a->query), r->query);
	copy(a->header, sizeof(a->header), sn_hsrv_header(r, "x-test"));
	a->body_len = r->body_len;
	memcpy(a->body, r->body, SN_MIN(r->body_len, sizeof(a->body)));
	a->conn_id = sn_hsrv_conn_id(c);
	if (a->mode == HANDOVER_TAKE || a->mode == HANDOVER_REFUSE)
		sn_hsrv_handover(c, take, a);
	else if (a->mode == ANSWER)
		sn_hsrv_respond(c, 200, "text/plain", "x-a: b\r\n", "hello", 5);
}

static void on_error(void *data, struct sn_hsrv_conn *c, int status, const char *msg)
{
	struct app *a = data;
	char body[300];
	a->errors++;
	a->error_status = status;
	snprintf(a->error_msg, sizeof(a->error_msg), "%s", msg);
	int n = snprintf(body, sizeof(body), "error: %s", msg);
	sn_hsrv_respond(c, status, "text/plain", "", body, (size_t)n);
}

static void start(struct app *a, size_t body_max, int with_errors, int max_conns, uint32_t timeout_ms)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sn_hsrv_opts o = {
		.name = "test", .request_line_max = 1024, .head_max = 2048, .body_max = body_max,
		.body_hint = "send less", .max_conns = max_conns, .timeout_ms = timeout_ms, .backlog = 16,
		.on_request = on_request, .on_error = with_errors ? on_error : NULL, .data = a,
	};
	memset(a, 0, sizeof(*a));
	a->taken_fd = -1;
	assert_int_equal(sn_hsrv_start(&a->srv, &loop, (struct sockaddr *)&sin, sizeof(sin), &o), 0);
}

static int dial(struct app *a)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(getsockname(a->srv.fd, (struct sockaddr *)&sin, &len), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, len), 0);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		assert_true(w > 0);
		s += w;
		n -= (size_t)w;
	}
}

/* Runs the loop and reads fd until the server closes it (or, with until,
 * until those bytes arrived); what came into buf. -1 if neither happened
 * within about 5 s. */
static ssize_t drain(int fd, char *buf, size_t cap, const char *until)
{
	size_t got = 0;
	for (int i = 0; i < 1000; i++) {
		sn_loop_run_once(&loop, 5);
		for (;;) {
			ssize_t n = read(fd, buf + got, cap - 1 - got);
			if (n > 0) {
				got += (size_t)n;
				buf[got] = '\0';
				if (until != NULL && strstr(buf, until) != NULL)
					return (ssize_t)got;
				continue;
			}
			if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
				buf[got] = '\0';
				sn_loop_run_once(&loop, 0);   /* reclaim */
				return (ssize_t)got;
			}
			break;
		}
	}
	return -1;
}

static ssize_t exchange(struct app *a, const char *req, char *buf, size_t cap)
{
	int fd = dial(a);
	send_all(fd, req, strlen(req));
	ssize_t n = drain(fd, buf, cap, NULL);
	close(fd);
	return n;
}

static void test_answer_exact(void **state)
{
	(void)state;
	struct app a;
	char buf[1024];
	static const char want[] = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\nx-a: b\r\n"
				   "connection: close\r\n\r\nhello";

	start(&a, 1024, 1, 8, 5000);
	/* a second request in the same bytes is ignored: one per connection */
	ssize_t n = exchange(&a, "GET /x/y?a=1&b HTTP/1.1\r\nHost: h\r\nX-Test: one\r\nx-test: two\r\n\r\n"
				 "GET /second HTTP/1.1\r\nHost: h\r\n\r\n", buf, sizeof(buf));
	assert_int_equal(n, sizeof(want) - 1);
	assert_string_equal(buf, want);
	assert_int_equal(a.requests, 1);
	assert_string_equal(a.method, "GET");
	assert_string_equal(a.path, "/x/y");
	assert_string_equal(a.query, "a=1&b");
	assert_string_equal(a.header, "two");   /* the last, case-insensitively */
	assert_int_equal(a.body_len, 0);
	assert_int_equal(a.conn_id, 1);
	assert_int_equal(a.srv.conns, 0);

	/* HEAD: the same head, no body */
	n = exchange(&a, "HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n", buf, sizeof(buf));
	assert_int_equal(n, sizeof(want) - 1 - 5);
	assert_memory_equal(buf, want, (size_t)n);
	assert_string_equal(a.query, "");
	assert_int_equal(a.conn_id, 2);
	sn_hsrv_stop(&a.srv);
}

static void test_body_and_continue(void **state)
{
	(void)state;
	struct app a;
	char buf[1024];

	start(&a, 64, 1, 8, 5000);
	ssize_t n = exchange(&a, "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world", buf,
			     sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(a.requests, 1);
	assert_int_equal(a.body_len, 11);
	assert_memory_equal(a.body, "hello world", 11);

	/* Expect: 100-continue: the interim answer, then the body */
	int fd = dial(&a);
	static const char head[] = "PUT /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
	send_all(fd, head, sizeof(head) - 1);
	n = drain(fd, buf, sizeof(buf), "\r\n\r\n");
	assert_string_equal(buf, "HTTP/1.1 100 Continue\r\n\r\n");
	assert_int_equal(a.requests, 1);
	send_all(fd, "abc", 3);
	n = drain(fd, buf, sizeof(buf), NULL);
	close(fd);
	assert_true(n > 0 && strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_int_equal(a.requests, 2);
	assert_int_equal(a.body_len, 3);
	assert_memory_equal(a.body, "abc", 3);
	sn_hsrv_stop(&a.srv);
}

static void test_refusals(void **state)
{
	(void)state;
	struct app a;
	char buf[4096], big[3100];

	start(&a, 64, 1, 8, 5000);
	exchange(&a, "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 65\r\n\r\n", buf, sizeof(buf));
	assert_int_equal(a.error_status, 413);
	assert_string_equal(a.error_msg, "request body is 65 bytes, more than the 64 bytes limit; send less");
	assert_true(strncmp(buf, "HTTP/1.1 413 ", 13) == 0);

	exchange(&a, "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", buf, sizeof(buf));
	assert_int_equal(a.error_status, 411);

	exchange(&a, "GET /p HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n", buf, sizeof(buf));
	assert_int_equal(a.error_status, 400);
	assert_true(strncmp(a.error_msg, "malformed request: ", 19) == 0);

	snprintf(big, sizeof(big), "GET /p HTTP/1.1\r\nHost: h\r\nX-Big: %02990d\r\n\r\n", 0);
	exchange(&a, big, buf, sizeof(buf));
	assert_int_equal(a.error_status, 431);
	assert_true(strncmp(buf, "HTTP/1.1 431 ", 13) == 0);
	assert_int_equal(a.requests, 0);
	assert_int_equal(a.errors, 4);
	sn_hsrv_stop(&a.srv);

	/* without on_error: closed, no answer */
	start(&a, 64, 0, 8, 5000);
	assert_int_equal(exchange(&a, "GET /p HTTP/1.1\r\nBad Name: x\r\n\r\n", buf, sizeof(buf)), 0);
	assert_int_equal(exchange(&a, big, buf, sizeof(buf)), 0);
	assert_int_equal(a.srv.conns, 0);
	sn_hsrv_stop(&a.srv);
}

/* body_max 0 (the admin port): the head alone, whatever it announces. */
static void test_bodies_not_read(void **state)
{
	(void)state;
	struct app a;
	char buf[1024];

	start(&a, 0, 0, 8, 5000);
	static const char req[] = "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n";
	int fd = dial(&a);
	send_all(fd, req, sizeof(req) - 1);
	assert_true(drain(fd, buf, sizeof(buf), NULL) > 0);
	close(fd);
	assert_true(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);   /* no 100 Continue first */
	assert_int_equal(a.body_len, 0);
	exchange(&a, "POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", buf, sizeof(buf));
	assert_int_equal(a.requests, 2);
	sn_hsrv_stop(&a.srv);
}

static void test_unanswered_closes(void **state)
{
	(void)state;
	struct app a;
	char buf[256];

	start(&a, 0, 1, 8, 5000);
	a.mode = NO_ANSWER;
	assert_int_equal(exchange(&a, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", buf, sizeof(buf)), 0);
	assert_int_equal(a.requests, 1);
	assert_int_equal(a.srv.conns, 0);
	sn_hsrv_stop(&a.srv);
}

static void test_conn_bound_and_timeout(void **state)
{
	(void)state;
	struct app a;
	char buf[256];

	start(&a, 0, 1, 1, 200);
	int first = dial(&a);
	sn_loop_run_once(&loop, 5);
	assert_int_equal(a.srv.conns, 1);
	/* over the bound: closed at once, unanswered */
	int second = dial(&a);
	assert_int_equal(drain(second, buf, sizeof(buf), NULL), 0);
	close(second);
	assert_int_equal(a.srv.conns, 1);
	/* the first, silent, times out */
	uint64_t t0 = sn_clock_ms();
	assert_int_equal(drain(first, buf, sizeof(buf), NULL), 0);
	assert_true(sn_clock_ms() - t0 >= 50);
	close(first);
	assert_int_equal(a.srv.conns, 0);
	sn_hsrv_stop(&a.srv);
}

static void test_handover(void **state)
{
	(void)state;
	struct app a;
	char buf[256];

	start(&a, 0, 1, 8, 200);
	a.mode = HANDOVER_TAKE;
	int fd = dial(&a);
	send_all(fd, "GET /tap HTTP/1.1\r\nHost: h\r\n\r\n", strlen("GET /tap HTTP/1.1\r\nHost: h\r\n\r\n"));
	for (int i = 0; i < 200 && a.taken_fd < 0; i++)
		sn_loop_run_once(&loop, 5);
	assert_true(a.taken_fd >= 0);
	assert_int_equal(a.srv.conns, 0);
	/* past the timeout the socket is still the taker's: open, and not closed by stop */
	for (int i = 0; i < 60; i++)
		sn_loop_run_once(&loop, 5);
	sn_hsrv_stop(&a.srv);
	sn_loop_run_once(&loop, 0);
	assert_int_equal(fcntl(a.taken_fd, F_GETFD) >= 0, 1);
	assert_int_equal(write(a.taken_fd, "stream", 6), 6);
	close(a.taken_fd);
	assert_int_equal(drain(fd, buf, sizeof(buf), NULL), 6);
	assert_string_equal(buf, "stream");
	close(fd);

	/* refused: the server answers the taker's status through on_error */
	start(&a, 0, 1, 8, 5000);
	a.mode = HANDOVER_REFUSE;
	exchange(&a, "GET /tap HTTP/1.1\r\nHost: h\r\n\r\n", buf, sizeof(buf));
	assert_true(strncmp(buf, "HTTP/1.1 403 Forbidden\r\n", 24) == 0);
	assert_non_null(strstr(buf, "\r\n\r\nerror: no tap for you"));
	assert_int_equal(a.srv.conns, 0);
	sn_hsrv_stop(&a.srv);
}

static void test_stop_closes_open(void **state)
{
	(void)state;
	struct app a;
	char buf[256];
	struct sn_hsrv never;

	memset(&never, 0, sizeof(never));
	sn_hsrv_stop(&never);   /* zeroed, never started: nothing to do */

	start(&a, 0, 1, 8, 5000);
	int fd = dial(&a);
	send_all(fd, "GET / HTTP/1.1\r\n", strlen("GET / HTTP/1.1\r\n"));   /* half a head */
	sn_loop_run_once(&loop, 5);
	sn_loop_run_once(&loop, 5);
	assert_int_equal(a.srv.conns, 1);
	sn_hsrv_stop(&a.srv);
	sn_hsrv_stop(&a.srv);
	assert_int_equal(a.srv.conns, 0);
	assert_int_equal(drain(fd, buf, sizeof(buf), NULL), 0);
	close(fd);
}

static void test_format(void **state)
{
	(void)state;
	char *out;
	size_t len;

	static const char want[] = "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n"
				   "connection: close\r\n\r\n{}";
	assert_int_equal(sn_hsrv_format(404, "application/json", NULL, "{}", 2, 0, &out, &len), 0);
	assert_int_equal(len, sizeof(want) - 1);
	assert_memory_equal(out, want, len);
	free(out);
	assert_int_equal(sn_hsrv_format(200, "text/plain", "", "live\n", 5, 1, &out, &len), 0);
	static const char head[] = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n"
				   "connection: close\r\n\r\n";
	assert_int_equal(len, sizeof(head) - 1);
	assert_memory_equal(out, head, len);
	free(out);
}

static int setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	return sn_loop_init(&loop);
}

static int teardown(void **state)
{
	(void)state;
	sn_loop_run_once(&loop, 0);
	sn_loop_dispose(&loop);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answer_exact),
		cmocka_unit_test(test_body_and_continue),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_bodies_not_read),
		cmocka_unit_test(test_unanswered_closes),
		cmocka_unit_test(test_conn_bound_and_timeout),
		cmocka_unit_test(test_handover),
		cmocka_unit_test(test_stop_closes_open),
		cmocka_unit_test(test_format),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
