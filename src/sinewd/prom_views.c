/* sinewd --prometheus URL: the live views' API (GET /api/v1/stats,
 * /api/v1/edges, /api/v1/routes) answered from a real Prometheus instead
 * of the built-in store, so the dashboard and a CLI without --prometheus
 * read it too. The answer is the CLI's own (src/cli/prom.c: the same
 * queries and rows); its blocking HTTP exchanges run on a thread per
 * request, at most PROM_THREADS at once, so the loop never waits. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prom_views.h"
#include "sinew/cli.h"
#include "sinew/cli_prom.h"
#include "sinew/file.h"
#include "sinew/fork_gate.h"
#include "sinew/h1.h"
#include "sinew/log.h"
#include "sinew/out.h"

#define PROM_THREADS 4

static const char *prom_url;
static int running;                  /* threads answering; atomic */

struct job {
	int fd;
	char path[2048];
};

static void answer(int fd, int status, const char *body, size_t len)
{
	char head[256];
	int hl = snprintf(head, sizeof(head),
			  "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %zu\r\n"
			  "connection: close\r\n\r\n",
			  status, sn_h1_reason_phrase(status), len);
	sn_fork_gate_pause();   /* the socket blocks: a fork may go meanwhile */
	if (sn_write_all(fd, head, (size_t)hl) == 0)
		(void)sn_write_all(fd, body, len);
	sn_fork_gate_resume();
}

static void *run(void *arg)
{
	struct job *j = arg;
	struct sn_http_response r;
	struct sn_out errors = { 0 };

	sn_fork_gate_enter();   /* sinewd forks for admission: sinew/fork_gate.h */
	sn_cli_prom_capture(&errors);
	int rc = sn_cli_prom_api_get(prom_url, j->path, 0, &r);
	sn_cli_prom_capture(NULL);
	if (rc == 0) {
		answer(j->fd, 200, r.body, r.len);
		sn_http_response_free(&r);
	} else {
		struct sn_out o = { 0 };
		sn_out_cstr(&o, "{\"error\":");
		sn_out_json_cstr(&o, errors.len ? errors.p : "Prometheus failed");
		sn_out_cstr(&o, ",\"status\":502}\n");
		if (!o.failed)
			answer(j->fd, 502, o.p, o.len);
		sn_out_free(&o);
	}
	sn_out_free(&errors);
	close(j->fd);
	free(j);
	sn_fork_gate_leave();
	__atomic_sub_fetch(&running, 1, __ATOMIC_RELEASE);
	return NULL;
}

static int start(int fd, const char *path, char *err, size_t size)
{
	struct job *j;
	pthread_t t;
	pthread_attr_t attr;

	if (strlen(path) >= sizeof(j->path)) {
		snprintf(err, size, "the query is too long");
		return 414;
	}
	if (__atomic_add_fetch(&running, 1, __ATOMIC_ACQ_REL) > PROM_THREADS) {
		__atomic_sub_fetch(&running, 1, __ATOMIC_RELEASE);
		snprintf(err, size, "%d queries to Prometheus run already, the limit; try again", PROM_THREADS);
		return 429;
	}
	j = malloc(sizeof(*j));
	if (j == NULL) {
		__atomic_sub_fetch(&running, 1, __ATOMIC_RELEASE);
		snprintf(err, size, "sinewd is out of memory");
		return 503;
	}
	j->fd = fd;
	snprintf(j->path, sizeof(j->path), "%s", path);
	/* the thread writes and waits: the socket blocks (with the CLI's
	 * timeouts on the Prometheus side) */
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&t, &attr, run, j);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		if (fl >= 0)
			(void)fcntl(fd, F_SETFL, fl);
		free(j);
		__atomic_sub_fetch(&running, 1, __ATOMIC_RELEASE);
		snprintf(err, size, "sinewd cannot start a thread: %s", strerror(rc));
		return 503;
	}
	return 0;
}

int sinewd_prom_views(struct sn_api *api, const char *url, char *err, size_t size)
{
	struct sn_cli_prom p;
	/* checked now: a bad URL is a usage error, not a 502 at every view */
	sn_cli_prom_capture(NULL);
	if (sn_cli_prom_open(url, &p) != 0) {
		snprintf(err, size, "--prometheus %s: want http://HOST:PORT[/PATH]", url);
		return -1;
	}
	prom_url = url;
	api->stats_from = start;
	sn_log(SN_LOG_INFO, "live views (stats, edges, routes) from Prometheus at %s", p.text);
	return 0;
}
