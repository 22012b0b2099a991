/* Capture rules in a pod, the way Istio's istio-iptables does it, and the
 * checks that they work.
 *
 * nat table:
 *   PREROUTING -p tcp -> SINEW_INBOUND: the proxy's admin and health ports
 *     RETURN, every other inbound TCP connection -> SINEW_IN_REDIRECT ->
 *     REDIRECT to the inbound listener (15006);
 *   OUTPUT -p tcp -> SINEW_OUTPUT: the proxy's own connections (its uid)
 *     RETURN, so they are never captured again; connections to
 *     127.0.0.1 RETURN (the app talking to itself or to its proxy's admin
 *     port); the admin and health ports RETURN; everything else ->
 *     SINEW_REDIRECT -> REDIRECT to the outbound listener (15001), where
 *     SO_ORIGINAL_DST gives the proxy the address the app asked for.
 *
 * The script is applied by one iptables-restore run: all or nothing. The
 * rules are written as iptables-save prints them, so that the presence
 * check can look for each line verbatim. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pod_internal.h"
#include "sinew/common.h"
#include "sinew/loop.h"
#include "sinew/pod.h"

static const unsigned default_exclude[] = { SN_POD_PORT_ADMIN, SN_POD_PORT_HEALTH };

static const struct sn_pod_capture capture_default = {
	.proxy_uid = SN_POD_PROXY_UID,
	.inbound_port = SN_POD_PORT_INBOUND,
	.outbound_port = SN_POD_PORT_OUTBOUND,
	.inbound_exclude = default_exclude,
	.n_inbound_exclude = SN_ARRAY_LEN(default_exclude),
	.outbound_exclude = default_exclude,
	.n_outbound_exclude = SN_ARRAY_LEN(default_exclude),
};

const struct sn_pod_capture *sn_pod_capture_default(void)
{
	return &capture_default;
}

struct script {
	char *buf;
	size_t size, len;
	int overflow;
};

__attribute__((format(printf, 2, 3))) static void put(struct script *s, const char *fmt, ...)
{
	va_list ap;
	if (s->overflow)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(s->buf + s->len, s->size - s->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= s->size - s->len) {
		s->overflow = 1;
		return;
	}
	s->len += (size_t)n;
}

int sn_pod_capture_script(const struct sn_pod_capture *c, char *buf, size_t size)
{
	struct script s = { buf, size, 0, size == 0 };
	if (size > 0)
		buf[0] = '\0';
	put(&s, "*nat\n"
		":PREROUTING ACCEPT [0:0]\n"
		":INPUT ACCEPT [0:0]\n"
		":OUTPUT ACCEPT [0:0]\n"
		":POSTROUTING ACCEPT [0:0]\n"
		":SINEW_INBOUND - [0:0]\n"
		":SINEW_IN_REDIRECT - [0:0]\n"
		":SINEW_OUTPUT - [0:0]\n"
		":SINEW_REDIRECT - [0:0]\n"
		"-A PREROUTING -p tcp -j SINEW_INBOUND\n"
		"-A OUTPUT -p tcp -j SINEW_OUTPUT\n");
	for (size_t i = 0; i < c->n_inbound_exclude; i++)
		put(&s, "-A SINEW_INBOUND -p tcp -m tcp --dport %u -j RETURN\n", c->inbound_exclude[i]);
	put(&s, "-A SINEW_INBOUND -p tcp -j SINEW_IN_REDIRECT\n");
	put(&s, "-A SINEW_IN_REDIRECT -p tcp -j REDIRECT --to-ports %u\n", c->inbound_port);
	put(&s, "-A SINEW_OUTPUT -m owner --uid-owner %u -j RETURN\n", c->proxy_uid);
	put(&s, "-A SINEW_OUTPUT -d 127.0.0.1/32 -j RETURN\n");
	for (size_t i = 0; i < c->n_outbound_exclude; i++)
		put(&s, "-A SINEW_OUTPUT -p tcp -m tcp --dport %u -j RETURN\n", c->outbound_exclude[i]);
	put(&s, "-A SINEW_OUTPUT -j SINEW_REDIRECT\n");
	put(&s, "-A SINEW_REDIRECT -p tcp -j REDIRECT --to-ports %u\n", c->outbound_port);
	put(&s, "COMMIT\n");
	return s.overflow ? SN_ELIMIT : (int)s.len;
}

int sn_pod_capture_install(const char *netns, const struct sn_pod_capture *c, char *err, size_t err_size)
{
	char script[4096];
	int n = sn_pod_capture_script(c, script, sizeof(script));
	if (n < 0) {
		snprintf(err, err_size, "capture rules do not fit in %zu bytes", sizeof(script));
		return n;
	}
	/* Without --noflush: the namespace's nat table becomes exactly this
	 * script, in one transaction. */
	char *const argv[] = { (char *)"ip", (char *)"netns", (char *)"exec", (char *)netns,
			       (char *)"iptables-restore", NULL };
	return sn_pod_exec_checked(argv, script, (size_t)n, err, err_size);
}

int sn_pod_capture_present(const char *netns, const struct sn_pod_capture *c, char *err, size_t err_size)
{
	char script[4096], saved[32768];
	int n = sn_pod_capture_script(c, script, sizeof(script));
	if (n < 0)
		return n;
	char *const argv[] = { (char *)"ip", (char *)"netns", (char *)"exec", (char *)netns,
			       (char *)"iptables-save", (char *)"-t", (char *)"nat", NULL };
	int rc = sn_pod_exec(argv, NULL, 0, saved, sizeof(saved));
	if (rc != 0) {
		snprintf(err, err_size, "cannot read the capture rules of %s (iptables-save: %s %d): %.200s", netns,
			 rc < 0 ? "error" : "status", rc, saved);
		return SN_EIO;
	}
	/* Every chain and rule line of the script must be there, whole. */
	for (char *line = script; *line;) {
		char *nl = strchr(line, '\n');
		*nl = '\0';
		int wanted = (line[0] == ':' && strncmp(line, ":SINEW_", 7) == 0) || strncmp(line, "-A ", 3) == 0;
		if (wanted) {
			/* ":SINEW_X - [0:0]": the counters differ; match the name. */
			char want[256];
			if (line[0] == ':') {
				const char *sp = strchr(line, ' ');
				snprintf(want, sizeof(want), "\n%.*s ", (int)(sp - line), line);
			} else {
				snprintf(want, sizeof(want), "\n%.250s\n", line);
			}
			if (strstr(saved, want) == NULL) {
				snprintf(err, err_size, "capture rule missing in %s: %s", netns, line);
				return 0;
			}
		}
		line = nl + 1;
	}
	return 1;
}

int sn_pod_capture_probe(const char *netns, uint32_t probe_addr, const char *pod, int timeout_ms, char *err,
			 size_t err_size)
{
	char addr[16];
	sn_pod_addr_str(probe_addr, addr, sizeof(addr));
	int fd = sn_pod_socket_in_netns(netns, AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, err_size, "capture probe: cannot make a socket in %s: %s", netns, strerror(errno));
		return SN_EIO;
	}
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(SN_POD_PORT_PROBE),
				  .sin_addr.s_addr = htonl(probe_addr) };
	long long deadline = (long long)sn_clock_ms() + timeout_ms;
	int rc = 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
		snprintf(err, err_size, "capture probe to %s:%d from %s: %s (outbound traffic is not redirected to "
					"the proxy)", addr, SN_POD_PORT_PROBE, netns, strerror(errno));
		goto done;
	}
	struct pollfd pfd = { fd, POLLOUT, 0 };
	int left = (int)(deadline - (long long)sn_clock_ms());
	if (poll(&pfd, 1, left > 0 ? left : 0) != 1) {
		snprintf(err, err_size, "capture probe to %s:%d from %s: no connection within %d ms (outbound traffic "
					"is not redirected to the proxy)", addr, SN_POD_PORT_PROBE, netns, timeout_ms);
		goto done;
	}
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
	if (soerr != 0) {
		snprintf(err, err_size, "capture probe to %s:%d from %s: %s (outbound traffic is not redirected to the "
					"proxy, or its outbound listener is down)", addr, SN_POD_PORT_PROBE, netns,
			 strerror(soerr));
		goto done;
	}
	char line[256];
	size_t got = 0;
	while (got < sizeof(line) - 1 && memchr(line, '\n', got) == NULL) {
		left = (int)(deadline - (long long)sn_clock_ms());
		pfd.events = POLLIN;
		if (left <= 0 || poll(&pfd, 1, left) != 1)
			break;
		ssize_t r = read(fd, line + got, sizeof(line) - 1 - got);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	line[got] = '\0';
	char want[SN_POD_NAME_MAX + 32];
	snprintf(want, sizeof(want), "%s %s\n", SN_POD_PROBE_OK, pod);
	if (strncmp(line, want, strlen(want)) == 0) {
		rc = 1;
		goto done;
	}
	char *nl = strchr(line, '\n');
	if (nl != NULL)
		*nl = '\0';
	if (got == 0)
		snprintf(err, err_size, "capture probe to %s:%d from %s: connected, but no answer within %d ms (the "
					"proxy did not recognise the probe)", addr, SN_POD_PORT_PROBE, netns, timeout_ms);
	else
		snprintf(err, err_size, "capture probe to %s:%d from %s: answered \"%.80s\", want \"%s %s\"", addr,
			 SN_POD_PORT_PROBE, netns, line, SN_POD_PROBE_OK, pod);
done:
	close(fd);
	return rc;
}
