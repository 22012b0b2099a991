/* Fuzz target: one HTTP request to sinewd's API (docs/api.md), as a whole:
 * method, target, query, headers, body. sinewd's real API server
 * (sn_api_start, src/control/api.c) listens on an AF_UNIX socket in a temp
 * dir, with a real store (bookinfo-like resources applied once) and a CA;
 * each input is written on one connection, whose write side is then shut
 * (a short body ends there), and the loop runs until sinewd has answered
 * and closed it. So the request parser, routing, the query decoder, apply
 * through admission (sn_admit_apply: load, validate, translate, persist),
 * get, delete, analyze, tokens, certificates and traces (POST /v1/traces,
 * GET /api/v1/traces[/ID]) run as in production.
 * An input that changed the store is undone afterwards (the base applied
 * again; the trace store emptied and given its base trace again), so
 * every input meets the same store. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sinew/control.h"
#include "control/traces.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_MAX_INPUT (512u << 10)
#define MAX_ITER 100000

static const char BASE[] =
	"apiVersion: v1\nkind: Service\nmetadata: {name: productpage}\nspec:\n  selector: {app: productpage}\n"
	"  ports:\n  - {name: http, port: 9080}\n"
	"---\napiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec:\n  selector: {app: reviews}\n"
	"  ports:\n  - {name: http, port: 9080}\n"
	"---\napiVersion: v1\nkind: Service\nmetadata: {name: ratings}\nspec:\n  selector: {app: ratings}\n"
	"  ports:\n  - {name: http, port: 9080}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: reviews-v1}\n"
	"spec: {address: 127.0.10.3, labels: {app: reviews, version: v1}, serviceAccount: bookinfo-reviews}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: ratings-v1}\n"
	"spec: {address: 127.0.10.6, labels: {app: ratings, version: v1}}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"
	"spec:\n  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
	"spec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews, subset: v1}}]\n";

/* One trace held before every input (GET /api/v1/traces/ID finds it). */
static const char BASE_SPANS[] =
	"{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":"
	"\"productpage.default\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"sinew-proxy\"},\"spans\":[{\"traceId\":"
	"\"5b8efff798038103d269b633813fc60c\",\"spanId\":\"eee19b7ec3c1b173\",\"name\":\"GET /productpage\",\"kind\":2,"
	"\"startTimeUnixNano\":\"1544712660000000000\",\"endTimeUnixNano\":\"1544712661000000000\"}]}]}]}";

static struct {
	int ready;
	struct sn_loop loop;
	struct sn_store st;
	struct sn_ca_service *ca;
	struct sn_api api;
	struct sockaddr_un addr;
	uint64_t base_revision;
} F;

static void traces_reset(void)
{
	struct sn_traces_result res;
	sn_traces_clear(F.api.traces);
	if (sn_traces_ingest_json(F.api.traces, BASE_SPANS, sizeof(BASE_SPANS) - 1, &res) != 0)
		abort();
}

static void setup(void)
{
	const char *dir = fz_tempdir("ctlapi");
	fz_sinewd_open(&F.loop, &F.st, &F.base_revision, &F.ca, dir, BASE);
	socklen_t al = fz_unix_addr(&F.addr, dir, "api.sock");
	F.api.mesh_addr = "fuzz";
	F.api.ca = F.ca;
	F.api.admit_in_process = 1;  /* the child would hide admission from the fuzzer */
	F.api.traces = sn_traces_new(NULL);
	if (F.api.traces == NULL)
		abort();
	traces_reset();
	if (sn_api_start(&F.api, &F.loop, &F.st, (struct sockaddr *)&F.addr, al) != 0) {
		fprintf(stderr, "fuzz: sn_api_start: %s\n", strerror(errno));
		exit(1);
	}
	F.ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[16384];
	size_t off = 0;
	int shut = 0, eof = 0;

	if (size > FZ_MAX_INPUT)
		return 0;
	if (!F.ready)
		setup();
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&F.addr, sizeof(F.addr)) != 0)
		abort();
	/* Write what the socket takes, let sinewd read, repeat; read its
	 * answer as it comes, until it closes the connection. */
	for (int i = 0; i < MAX_ITER && !eof; i++) {
		while (off < size) {
			ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		if (!shut && (off == size || errno == EPIPE || errno == ECONNRESET)) {
			shutdown(fd, SHUT_WR);
			shut = 1;
		}
		sn_loop_run_once(&F.loop, 0);
		for (;;) {
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n > 0)
				continue;
			if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
				eof = 1;
			break;
		}
	}
	close(fd);
	sn_loop_run_once(&F.loop, 0);   /* reclaim the connection */
	if (!eof || F.api.srv.conns != 0) {
		fprintf(stderr, "fuzz: sinewd did not answer and close the connection\n");
		abort();
	}
	fz_store_reset(&F.st, &F.base_revision, BASE);
	traces_reset();
	return 0;
}
