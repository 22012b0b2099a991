/* A tiny blocking HTTP GET through a socket made inside a pod's network
 * namespace: how `sinew run` and `sinew ps` ask a proxy's admin port
 * (127.0.0.1:15020 in the pod) for /ready without entering the pod. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sinew/common.h"
#include "sinew/loop.h"
#include "sinew/pod.h"

static int wait_fd(int fd, short events, long long deadline)
{
	struct pollfd p = { fd, events, 0 };
	for (;;) {
		long long left = deadline - (long long)sn_clock_ms();
		if (left <= 0)
			return 0;
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		return r == 1;
	}
}

int sn_pod_http_get(const char *netns, const char *addr_port, const char *path, int timeout_ms, int *status,
		    char *body, size_t body_size, char *err, size_t err_size)
{
	char host[32];
	uint32_t a;
	const char *colon = strrchr(addr_port, ':');
	char *end;
	long port = colon ? strtol(colon + 1, &end, 10) : 0;
	if (colon == NULL || (size_t)(colon - addr_port) >= sizeof(host) || *end != '\0' || port <= 0 ||
	    port > 65535) {
		snprintf(err, err_size, "bad address \"%s\": want IPV4:PORT", addr_port);
		return SN_EINVAL;
	}
	memcpy(host, addr_port, (size_t)(colon - addr_port));
	host[colon - addr_port] = '\0';
	if (sn_pod_addr_parse(host, &a) != 0) {
		snprintf(err, err_size, "bad address \"%s\": want IPV4:PORT", addr_port);
		return SN_EINVAL;
	}
	long long deadline = (long long)sn_clock_ms() + timeout_ms;
	int fd = sn_pod_socket_in_netns(netns, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, err_size, "cannot make a socket in %s: %s", netns ? netns : "this namespace",
			 strerror(errno));
		return SN_EIO;
	}
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(a) };
	int rc = SN_EIO;
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS)
		soerr = errno;
	else if (!wait_fd(fd, POLLOUT, deadline))
		soerr = ETIMEDOUT;
	else
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
	if (soerr != 0) {
		snprintf(err, err_size, "%s%s%s: %s", addr_port, netns ? " in " : "", netns ? netns : "",
			 strerror(soerr));
		goto done;
	}
	char req[512];
	int rl = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path,
			  addr_port);
	if (rl < 0 || (size_t)rl >= sizeof(req) || send(fd, req, (size_t)rl, MSG_NOSIGNAL) != rl) {
		snprintf(err, err_size, "%s: cannot send the request: %s", addr_port, strerror(errno));
		goto done;
	}
	char resp[8192];
	size_t got = 0;
	for (;;) {
		if (got == sizeof(resp) - 1 || !wait_fd(fd, POLLIN, deadline))
			break;
		ssize_t r = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	resp[got] = '\0';
	int st = 0;
	/* "HTTP/1.x NNN": three digits after the version */
	if (strncmp(resp, "HTTP/", 5) != 0 || strlen(resp) < 12 || resp[8] != ' ' || resp[9] < '1' || resp[9] > '5' ||
	    resp[10] < '0' || resp[10] > '9' || resp[11] < '0' || resp[11] > '9' ||
	    (st = (resp[9] - '0') * 100 + (resp[10] - '0') * 10 + (resp[11] - '0')) == 0) {
		snprintf(err, err_size, "%s%s: no HTTP answer within %d ms", addr_port, path, timeout_ms);
		goto done;
	}
	*status = st;
	if (body != NULL && body_size > 0) {
		const char *b = strstr(resp, "\r\n\r\n");
		snprintf(body, body_size, "%s", b ? b + 4 : "");
	}
	rc = 0;
done:
	close(fd);
	return rc;
}
