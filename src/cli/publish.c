/* sinew run --publish [HOSTADDR:]HOSTPORT:PODPORT: a port of the pod's app
 * on the host, as `kubectl port-forward` does it: a listener in the host's
 * namespace (loopback by default) whose connections are relayed to
 * 127.0.0.1:PODPORT inside the pod (a socket made there, so nothing is
 * routed between the namespaces). Like port-forward it reaches the app on
 * the pod's loopback, past its inbound proxy; the app's own calls still go
 * through its sidecar. Threads: one accepting per published port, one per
 * connection (at most PUBLISH_MAX_CONNS at once). The listeners are
 * bound first (sn_cli_publish_start: a taken port fails the run before
 * anything starts); the threads only after every child process
 * (sn_cli_publish_go), since threads and fork do not mix. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sinew/cli.h"
#include "sinew/common.h"
#include "sinew/pod.h"

#define PUBLISH_MAX_CONNS 256
#define RELAY_BUF 16384

struct pub {
	int lfd;
	char netns[SN_POD_NAME_MAX];
	uint16_t pod_port;
};

/* One direction of a relayed connection; two per connection (a single
 * thread blocked sending one way could never read the other: an app that
 * echoes while the client uploads would deadlock it). The last of the two
 * closes both sockets. */
struct relay {
	int from, to;
	int *refs;
	int *fds;
};

static int active;   /* connections being relayed (atomic) */
static struct pub *pubs[8];
static size_t n_pubs;

int sn_cli_publish_parse(const char *spec, char *host, size_t host_size, uint16_t *host_port, uint16_t *pod_port)
{
	char copy[128];
	char *parts[3];
	int n = 0;

	if (strlen(spec) >= sizeof(copy))
		return -1;
	memcpy(copy, spec, strlen(spec) + 1);
	for (char *save = NULL, *t = strtok_r(copy, ":", &save); t && n < 3; t = strtok_r(NULL, ":", &save))
		parts[n++] = t;
	if (n < 2)
		return -1;
	const char *h = n == 3 ? parts[0] : "127.0.0.1";
	char *e1, *e2;
	long hp = strtol(parts[n - 2], &e1, 10), pp = strtol(parts[n - 1], &e2, 10);
	struct in_addr ia;
	if (*e1 || *e2 || hp < 1 || hp > 65535 || pp < 1 || pp > 65535 || inet_pton(AF_INET, h, &ia) != 1 ||
	    strlen(h) >= host_size)
		return -1;
	memcpy(host, h, strlen(h) + 1);
	*host_port = (uint16_t)hp;
	*pod_port = (uint16_t)pp;
	return 0;
}

static void *relay_run(void *arg)
{
	struct relay r = *(struct relay *)arg;
	char *buf = malloc(RELAY_BUF);

	free(arg);
	while (buf != NULL) {
		/* no idle timeout per direction: one side may rightly stay silent
		 * while the other streams; the connection ends with its peers */
		ssize_t got = recv(r.from, buf, RELAY_BUF, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		ssize_t off = 0;
		while (off < got) {
			ssize_t w = send(r.to, buf + off, (size_t)(got - off), MSG_NOSIGNAL);
			if (w <= 0)
				break;
			off += w;
		}
		if (off < got)
			break;
	}
	free(buf);
	shutdown(r.to, SHUT_WR);      /* pass the EOF on; the other way goes on */
	if (__atomic_sub_fetch(r.refs, 1, __ATOMIC_ACQ_REL) == 0) {
		close(r.fds[0]);
		close(r.fds[1]);
		free(r.refs);   /* refs and fds share one allocation */
		__atomic_sub_fetch(&active, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void *accept_run(void *arg)
{
	struct pub *p = arg;
	for (;;) {
		int c = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break;
		}
		if (__atomic_load_n(&active, __ATOMIC_RELAXED) >= PUBLISH_MAX_CONNS) {
			close(c);
			continue;
		}
		int s = sn_pod_socket_in_netns(p->netns, AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(p->pod_port) };
		to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (s < 0 || connect(s, (struct sockaddr *)&to, sizeof(to)) != 0) {
			if (s >= 0)
				close(s);
			close(c);
			continue;
		}
		/* shared: [refs, fd a, fd b] */
		int *shared = malloc(3 * sizeof(int));
		struct relay *up = malloc(sizeof(*up)), *down = malloc(sizeof(*down));
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, 128 * 1024);
		int started = 0;
		if (shared != NULL && up != NULL && down != NULL) {
			shared[0] = 2;
			shared[1] = c;
			shared[2] = s;
			*up = (struct relay){ .from = c, .to = s, .refs = &shared[0], .fds = &shared[1] };
			*down = (struct relay){ .from = s, .to = c, .refs = &shared[0], .fds = &shared[1] };
			__atomic_add_fetch(&active, 1, __ATOMIC_RELAXED);
			if (pthread_create(&t, &at, relay_run, up) == 0) {
				started = 1;
				if (pthread_create(&t, &at, relay_run, down) != 0) {
					/* the running half finishes alone: drop our reference */
					free(down);
					shutdown(s, SHUT_RDWR);
					if (__atomic_sub_fetch(&shared[0], 1, __ATOMIC_ACQ_REL) == 0) {
						close(c);
						close(s);
						free(shared);
						__atomic_sub_fetch(&active, 1, __ATOMIC_RELAXED);
					}
				}
			} else {
				__atomic_sub_fetch(&active, 1, __ATOMIC_RELAXED);
			}
		}
		if (!started) {
			free(up);
			free(down);
			free(shared);
			close(c);
			close(s);
		}
		pthread_attr_destroy(&at);
	}
	return NULL;
}

int sn_cli_publish_start(const char *netns, const char *spec, char *err, size_t es)
{
	char host[64];
	uint16_t hp, pp;
	int one = 1;

	if (sn_cli_publish_parse(spec, host, sizeof(host), &hp, &pp) != 0) {
		snprintf(err, es, "--publish %s: want [HOSTADDR:]HOSTPORT:PODPORT, e.g. 9080:9080", spec);
		return -1;
	}
	struct pub *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -1;
	snprintf(p->netns, sizeof(p->netns), "%s", netns);
	p->pod_port = pp;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(hp) };
	inet_pton(AF_INET, host, &sa.sin_addr);
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->lfd >= 0)
		setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (p->lfd < 0 || bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(p->lfd, 128) != 0) {
		snprintf(err, es, "--publish %s: cannot listen on %s:%u: %s", spec, host, hp, strerror(errno));
		if (p->lfd >= 0)
			close(p->lfd);
		free(p);
		return -1;
	}
	if (n_pubs == SN_ARRAY_LEN(pubs)) {
		snprintf(err, es, "--publish: at most %zu ports", SN_ARRAY_LEN(pubs));
		close(p->lfd);
		free(p);
		return -1;
	}
	pubs[n_pubs++] = p;
	return 0;   /* p lives as long as the process */
}

int sn_cli_publish_go(char *err, size_t es)
{
	for (size_t i = 0; i < n_pubs; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, accept_run, pubs[i]) != 0) {
			snprintf(err, es, "--publish: cannot start a thread");
			return -1;
		}
		pthread_detach(t);
	}
	return 0;
}
