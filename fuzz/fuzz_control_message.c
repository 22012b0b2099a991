/* Fuzz target: the control-protocol messages sinewd reads from a proxy
 * (docs/internals/control-protocol.md): hello, subscribe, unsubscribe,
 * ack, nack, heartbeat, csr, identity_ack, spans (into a trace store,
 * emptied after each input). They go through the real link:
 * sinewd's mesh port (sn_mesh_start, with a CA) listens on an AF_UNIX
 * socket in a temp dir, and each input is one proxy connection made with
 * sn_xds_client on the same loop, so HTTP/2 framing, line splitting,
 * on_message's parsing and dispatch, pushes, the registry and the CA run
 * as in production.
 *
 * Input: byte 0 picks the link, the rest is NDJSON (one message a line):
 *   0  plaintext; a valid hello goes first
 *   1  plaintext; no hello is added (the input's first line is one)
 *   2  mTLS identity default/bookinfo-productpage; a valid hello goes first
 *   3  TLS without a client certificate (bootstrap: a csr with a token)
 * Modes 2 and 3 set the link's identity as mesh_ca_on_secure would after
 * a handshake (the handshake itself is not what this target tests).
 * Store and CA are made once; every input starts from the same store and
 * leaves no proxy behind. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sinew/control.h"
#include "sinew/xds.h"
#include "control/mesh_internal.h"
#include "control/traces.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_MAX_INPUT (256u << 10)
#define MAX_ITER 2000

static const char BASE[] =
	"apiVersion: v1\nkind: Service\nmetadata: {name: productpage}\nspec:\n  selector: {app: productpage}\n"
	"  ports:\n  - {name: http, port: 9080}\n"
	"---\napiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec:\n  selector: {app: reviews}\n"
	"  ports:\n  - {name: http, port: 9080}\n  - {port: 9443, targetPort: 8443}\n"
	"---\napiVersion: v1\nkind: Service\nmetadata: {name: ratings}\nspec:\n  selector: {app: ratings}\n"
	"  ports:\n  - {name: http, port: 9080}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: reviews-v1}\n"
	"spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: ratings-v1}\n"
	"spec: {address: 10.0.0.2, labels: {app: ratings, version: v1}}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"
	"spec:\n  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
	"spec:\n  hosts: [reviews]\n  http:\n  - match: [{headers: {x-r: {exact: r}}}]\n"
	"    route: [{destination: {host: ratings}}]\n  - route: [{destination: {host: reviews, subset: v1}}]\n"
	"---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext}\n"
	"spec: {hosts: [api.example.com], ports: [{number: 443, name: https, protocol: TLS}], resolution: DNS}\n";

static const char HELLO[] =
	"{\"type\":\"hello\",\"node\":{\"id\":\"productpage-fz\",\"service\":\"productpage\",\"namespace\":\"default\","
	"\"labels\":{\"app\":\"productpage\",\"version\":\"v1\"},\"service_account\":\"bookinfo-productpage\","
	"\"inbound\":\"127.0.0.1:15106\",\"admin\":\"127.0.0.1:15120\",\"version\":\"0.1.0\"},\"have\":{}}";

struct client {
	struct sn_xds_conn *c;
	int fd;
	int closed;
	size_t received;
};

static struct {
	int ready;
	struct sn_loop loop;
	struct sn_store st;
	struct sn_ca_service *ca;
	struct sn_mesh *mesh;
	struct sn_traces *traces;
	struct sockaddr_un addr;
	uint64_t base_revision;
} F;

static void cl_message(struct sn_xds_conn *c, const char *msg, size_t len)
{
	struct client *cl = sn_xds_arg(c);
	cl->received++;
}

static void cl_close(struct sn_xds_conn *c, const char *why)
{
	struct client *cl = sn_xds_arg(c);
	cl->closed = 1;
	cl->c = NULL;
	cl->fd = -1;
}

static const struct sn_xds_ops cl_ops = { .on_message = cl_message, .on_close = cl_close };

static void setup(void)
{
	const char *dir = fz_tempdir("ctlmsg");
	fz_sinewd_open(&F.loop, &F.st, &F.base_revision, &F.ca, dir, BASE);
	const struct sn_traces_limits tl = { .traces = 4, .spans_per_trace = 8, .bytes = 64u << 10 };
	F.traces = sn_traces_new(&tl);
	if (F.traces == NULL)
		abort();
	struct sn_mesh_opts mo = { .ca = F.ca, .allow_plaintext = 1, .no_auto_rotate = 1, .traces = F.traces };
	socklen_t al = fz_unix_addr(&F.addr, dir, "mesh.sock");
	if (sn_mesh_start(&F.mesh, &F.loop, &F.st, (struct sockaddr *)&F.addr, al, &mo) != 0) {
		fprintf(stderr, "fuzz: sn_mesh_start: %s\n", strerror(errno));
		exit(1);
	}
	/* Deterministic from the first input: no start-up grace (it would
	 * end 10 s into the run and change what a push removes). */
	sn_timer_stop(&F.loop, &F.mesh->grace_timer);
	F.mesh->grace_over = 1;
	F.mesh->grace_until_ms = 0;
	F.ready = 1;
}

/* Whether nothing moves on the link any more (both ends read and wrote
 * everything, no deferred work). */
static int idle(struct client *cl, struct sn_mesh_proxy *px)
{
	if (F.loop.deferred.head != NULL)
		return 0;
	if (cl->c != NULL && (sn_xds_queued(cl->c) > 0 || !fz_fd_idle(cl->fd)))
		return 0;
	if (px != NULL && !px->gone && px->conn != NULL && sn_xds_queued(px->conn) > 0)
		return 0;
	return 1;
}

/* Whether px is still linked (on_close unlinks it; it is freed at the
 * end of that loop iteration). */
static int linked(const struct sn_mesh_proxy *px)
{
	for (const struct sn_mesh_proxy *o = F.mesh->proxies; o != NULL; o = o->next)
		if (o == px)
			return 1;
	return 0;
}

static void run_until_idle(struct client *cl, struct sn_mesh_proxy **px)
{
	int quiet = 0;
	for (int i = 0; i < MAX_ITER && quiet < 2; i++) {
		sn_loop_run_once(&F.loop, 0);
		if (*px != NULL && !linked(*px))
			*px = NULL;
		quiet = idle(cl, *px) ? quiet + 1 : 0;
	}
}

static void set_identity(struct sn_mesh_proxy *px, int bootstrap)
{
	if (bootstrap) {
		px->bootstrap = 1;
		return;
	}
	/* in the link's pool, as mesh_ca.c puts what the handshake proved */
	px->peer_id = sn_arena_strdup(&px->pool, "spiffe://cluster.local/ns/default/sa/bookinfo-productpage");
	px->peer_ns = sn_arena_strdup(&px->pool, "default");
	px->peer_sa = sn_arena_strdup(&px->pool, "bookinfo-productpage");
	if (px->peer_id == NULL || px->peer_ns == NULL || px->peer_sa == NULL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct client cl = { .fd = -1 };
	struct sn_mesh_proxy *px = NULL;

	if (size == 0 || size > FZ_MAX_INPUT)
		return 0;
	if (!F.ready)
		setup();
	int mode = data[0] % 4;
	data++;
	size--;

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&F.addr, sizeof(F.addr)) != 0)
		abort();
	cl.fd = fd;
	cl.c = sn_xds_client(&F.loop, fd, "sinewd", NULL, &cl_ops, &cl);
	if (cl.c == NULL)
		abort();
	/* sinewd accepts it: the newest proxy is first in the list. */
	for (int i = 0; i < MAX_ITER && F.mesh->n_proxies == 0; i++)
		sn_loop_run_once(&F.loop, 0);
	if (F.mesh->n_proxies != 1)
		abort();
	px = F.mesh->proxies;
	if (mode >= 2)
		set_identity(px, mode == 3);

	if (mode == 0 || mode == 2)
		sn_xds_send(cl.c, HELLO, sizeof(HELLO) - 1);
	const char *p = (const char *)data, *end = p + size;
	while (p < end && cl.c != NULL) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		sn_xds_send(cl.c, p, len);
		p += len + 1;
	}
	run_until_idle(&cl, &px);

	/* Hang up; sinewd drops the proxy (and its registration). */
	if (cl.c != NULL)
		sn_xds_close(cl.c, "fuzz input done");
	for (int i = 0; i < MAX_ITER && (F.mesh->n_proxies > 0 || !cl.closed || F.loop.deferred.head != NULL); i++)
		sn_loop_run_once(&F.loop, 0);
	sn_loop_run_once(&F.loop, 0);   /* reclaim */
	if (F.mesh->n_proxies != 0 || F.mesh->proxies != NULL || !cl.closed)
		abort();
	fz_store_reset(&F.st, &F.base_revision, BASE);
	sn_traces_clear(F.traces);
	return 0;
}
