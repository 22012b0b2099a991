/* The push side over a real control link on one loop: the first answer
 * to a hello, what a subscription brings (the Service, its endpoints,
 * DestinationRule, VirtualService and what that routes to, nothing
 * else), only changes afterwards, removals, the registry's generated
 * WorkloadEntry, and a reconnect holding resources getting nothing it
 * already has. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "sinew/control.h"
#include "sinew/log.h"
#include "sinew/xds.h"
#include "control/mesh_internal.h"

static const char REGISTRY[] =
	"apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec:\n  selector: {app: reviews}\n"
	"  ports:\n  - {name: http, port: 9080}\n"
	"---\napiVersion: v1\nkind: Service\nmetadata: {name: ratings}\nspec:\n  selector: {app: ratings}\n"
	"  ports:\n  - {name: http, port: 9080}\n"
	"---\napiVersion: v1\nkind: Service\nmetadata: {name: details}\nspec:\n  selector: {app: details}\n"
	"  ports:\n  - {name: http, port: 9080}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: reviews-v1}\n"
	"spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: ratings-v1}\n"
	"spec: {address: 10.0.0.2, labels: {app: ratings, version: v1}}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: details-v1}\n"
	"spec: {address: 10.0.0.3, labels: {app: details, version: v1}}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"
	"spec:\n  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n"
	"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
	"spec:\n  hosts: [reviews]\n  http:\n  - match: [{headers: {x-r: {exact: r}}}]\n"
	"    route: [{destination: {host: ratings}}]\n  - route: [{destination: {host: reviews, subset: v1}}]\n";

struct client {
	struct sn_xds_conn *c;
	int open, closed;
	char *msgs[32];
	size_t n;
	const char *hello;
};

struct fixture {
	char dir[64];
	struct sn_store st;
	struct sn_loop loop;
	struct sn_mesh *mesh;
	uint16_t port;
};

static void on_open(struct sn_xds_conn *c)
{
	struct client *cl = sn_xds_arg(c);
	cl->open = 1;
	assert_int_equal(sn_xds_send(c, cl->hello, strlen(cl->hello)), 0);
}

static void on_message(struct sn_xds_conn *c, const char *msg, size_t len)
{
	struct client *cl = sn_xds_arg(c);
	assert_true(cl->n < SN_ARRAY_LEN(cl->msgs));
	cl->msgs[cl->n++] = strndup(msg, len);
}

static void on_close(struct sn_xds_conn *c, const char *why)
{
	struct client *cl = sn_xds_arg(c);
	cl->closed = 1;
	cl->c = NULL;
}

static const struct sn_xds_ops ops = { .on_open = on_open, .on_message = on_message, .on_close = on_close };

static void client_connect(struct fixture *f, struct client *cl, const char *hello)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(f->port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_true(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 || errno == EINPROGRESS);
	memset(cl, 0, sizeof(*cl));
	cl->hello = hello;
	cl->c = sn_xds_client(&f->loop, fd, "sinewd", NULL, &ops, cl);
	assert_non_null(cl->c);
}

/* Runs the loop until cl has n messages (or 3 s). */
static void wait_msgs(struct fixture *f, struct client *cl, size_t n)
{
	for (int i = 0; i < 300 && cl->n < n; i++)
		sn_loop_run_once(&f->loop, 10);
	if (cl->n < n)
		fail_msg("waited for message %zu, have %zu", n, cl->n);
}

static void settle(struct fixture *f)
{
	for (int i = 0; i < 10; i++)
		sn_loop_run_once(&f->loop, 5);
}

static void send_msg(struct client *cl, const char *msg)
{
	assert_int_equal(sn_xds_send(cl->c, msg, strlen(msg)), 0);
}

static void client_free(struct client *cl)
{
	for (size_t i = 0; i < cl->n; i++)
		free(cl->msgs[i]);
	cl->n = 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sn_diags d;
	struct sn_apply_report rep;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t al = sizeof(a);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	snprintf(f->dir, sizeof(f->dir), "/tmp/sinew-push-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	sn_diags_init(&d);
	assert_int_equal(sn_store_open(&f->st, f->dir, &d), 0);
	sn_diags_free(&d);
	f->st.no_sync = 1;
	assert_int_equal(sn_admit_apply(&f->st, "registry.yaml", REGISTRY, strlen(REGISTRY), &rep), 0);
	assert_int_equal(rep.refused, 0);
	sn_apply_report_free(&rep);
	assert_int_equal(sn_loop_init(&f->loop), 0);
	assert_int_equal(sn_mesh_start(&f->mesh, &f->loop, &f->st, (struct sockaddr *)&a, sizeof(a), NULL), 0);
	assert_int_equal(getsockname(f->mesh->fd, (struct sockaddr *)&a, &al), 0);
	f->port = ntohs(a.sin_port);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	sn_mesh_stop(f->mesh);
	settle(f);
	sn_mesh_free(f->mesh);
	sn_loop_dispose(&f->loop);
	sn_store_close(&f->st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

#define HAS(msg, s) assert_non_null(strstr((msg), (s)))
#define HASNT(msg, s) assert_null(strstr((msg), (s)))

static void apply(struct fixture *f, const char *text)
{
	struct sn_apply_report rep;
	assert_int_equal(sn_admit_apply(&f->st, "t.yaml", text, strlen(text), &rep), 0);
	assert_int_equal(rep.refused, 0);
	sn_apply_report_free(&rep);
	sn_mesh_store_changed(f->mesh);
}

static void test_subscribe_and_deltas(void **state)
{
	struct fixture *f = *state;
	struct client cl;
	char rev[64];

	client_connect(f, &cl, "{\"type\":\"hello\",\"node\":{\"id\":\"pp-1\",\"service\":\"productpage\","
			       "\"namespace\":\"default\",\"labels\":{}},\"have\":{}}");
	wait_msgs(f, &cl, 1);
	snprintf(rev, sizeof(rev), "\"version\":\"%llu\"", (unsigned long long)f->st.revision);
	HAS(cl.msgs[0], "\"nonce\":\"1\"");
	HAS(cl.msgs[0], rev);
	HAS(cl.msgs[0], "\"resources\":[]");
	send_msg(&cl, "{\"type\":\"ack\",\"nonce\":\"1\"}");
	send_msg(&cl, "{\"type\":\"subscribe\",\"hosts\":[\"reviews\",\"nowhere.example\"]}");
	wait_msgs(f, &cl, 2);
	const char *m = cl.msgs[1];
	HAS(m, "\"nonce\":\"2\"");
	HAS(m, "\"name\":\"reviews\"");
	HAS(m, "\"kind\":\"VirtualService\"");
	HAS(m, "\"kind\":\"DestinationRule\"");
	HAS(m, "\"name\":\"reviews-v1\"");
	/* the VirtualService routes to ratings: it comes with its endpoint */
	HAS(m, "\"name\":\"ratings-v1\"");
	HAS(m, "\"name\":\"ratings\"");
	HASNT(m, "details");
	HAS(m, "\"subscribed\":[\"reviews\",\"nowhere.example\"]");
	HAS(m, "\"line\":");
	/* nothing more goes while a push is in flight */
	apply(f, "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: reviews-v2}\n"
		 "spec: {address: 10.0.0.9, labels: {app: reviews, version: v2}}\n");
	settle(f);
	assert_int_equal(cl.n, 2);
	send_msg(&cl, "{\"type\":\"ack\",\"nonce\":\"2\"}");
	wait_msgs(f, &cl, 3);
	m = cl.msgs[2];
	HAS(m, "\"name\":\"reviews-v2\"");
	HASNT(m, "\"name\":\"reviews-v1\"");
	HAS(m, "\"removed\":[]");
	send_msg(&cl, "{\"type\":\"ack\",\"nonce\":\"3\"}");
	/* a change elsewhere sends nothing */
	apply(f, "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: details-v2}\n"
		 "spec: {address: 10.0.0.8, labels: {app: details, version: v2}}\n");
	settle(f);
	assert_int_equal(cl.n, 3);
	/* a deletion is a removal */
	assert_int_equal(sn_admit_delete(&f->st, SN_KIND_WORKLOAD_ENTRY, "default", "reviews-v2"), 0);
	sn_mesh_store_changed(f->mesh);
	wait_msgs(f, &cl, 4);
	HAS(cl.msgs[3], "\"resources\":[]");
	HAS(cl.msgs[3], "\"removed\":[\"WorkloadEntry/default/reviews-v2\"]");
	/* a nack is kept and not retried until something changes */
	send_msg(&cl, "{\"type\":\"nack\",\"nonce\":\"4\",\"errors\":[{\"resource\":\"WorkloadEntry/default/reviews-v1\","
		  "\"text\":\"t.yaml:1:1: error: nope\"}]}");
	settle(f);
	assert_int_equal(cl.n, 4);
	struct sn_out o = { 0 };
	sn_mesh_render_proxies(f->mesh, &o);
	HAS(o.p, "\"state\":\"NACK\"");
	HAS(o.p, "error: nope");
	sn_out_free(&o);
	sn_mesh_render_resource_status(f->mesh, &o, SN_KIND_WORKLOAD_ENTRY, "default", "reviews-v1", "4");
	HAS(o.p, "\"proxy\":\"pp-1\"");
	sn_out_free(&o);
	sn_xds_close(cl.c, "test done");
	settle(f);
	client_free(&cl);
}

static void test_registry_and_reconnect(void **state)
{
	struct fixture *f = *state;
	struct client b, a, a2;
	char hello[1024];

	client_connect(f, &b, "{\"type\":\"hello\",\"node\":{\"id\":\"reviews-9\",\"service\":\"reviews\","
			      "\"namespace\":\"default\",\"labels\":{\"version\":\"v3\"},"
			      "\"inbound\":\"127.0.0.1:15106\"},\"have\":{}}");
	wait_msgs(f, &b, 1);
	client_connect(f, &a, "{\"type\":\"hello\",\"node\":{\"id\":\"pp-2\",\"namespace\":\"default\"},\"have\":{}}");
	wait_msgs(f, &a, 1);
	send_msg(&a, "{\"type\":\"ack\",\"nonce\":\"1\"}");
	send_msg(&a, "{\"type\":\"subscribe\",\"hosts\":[\"reviews.default.svc.cluster.local\"]}");
	wait_msgs(f, &a, 2);
	const char *m = a.msgs[1];
	HAS(m, "\"name\":\"proxy-reviews-9\"");
	HAS(m, "\\\"http\\\": 15106");
	HAS(m, "\\\"app\\\": \\\"reviews\\\"");
	HAS(m, "\"resourceVersion\":\"reg-");
	send_msg(&a, "{\"type\":\"ack\",\"nonce\":\"2\"}");
	settle(f);

	struct sn_mesh_proxy **reg = NULL;
	assert_int_equal(sn_mesh_registered(f->mesh, &reg), 1);
	assert_string_equal(sn_mesh_registered_name(reg[0]), "proxy-reviews-9");
	free(reg);

	/* a reconnect holding everything gets nothing new, loses nothing
	 * before its subscriptions arrive */
	size_t off = 0;
	off += (size_t)snprintf(hello + off, sizeof(hello) - off,
				"{\"type\":\"hello\",\"node\":{\"id\":\"pp-2\",\"namespace\":\"default\"},\"have\":{");
	int first = 1;
	for (struct sn_mesh_proxy *px = f->mesh->proxies; px != NULL; px = px->next) {
		if (strcmp(px->id, "pp-2") != 0)
			continue;
		for (size_t i = 0; i < px->held.n; i++) {
			off += (size_t)snprintf(hello + off, sizeof(hello) - off, "%s\"%s\":\"%s\"", first ? "" : ",",
						px->held.v[i].key, px->held.v[i].value);
			first = 0;
		}
	}
	snprintf(hello + off, sizeof(hello) - off, "}}");
	client_connect(f, &a2, hello);
	wait_msgs(f, &a2, 1);
	HAS(a2.msgs[0], "\"resources\":[]");
	HAS(a2.msgs[0], "\"removed\":[]");
	settle(f);
	assert_true(a.closed); /* the old link of the same proxy was replaced */
	send_msg(&a2, "{\"type\":\"ack\",\"nonce\":\"1\"}");
	send_msg(&a2, "{\"type\":\"subscribe\",\"hosts\":[\"reviews.default.svc.cluster.local\"]}");
	wait_msgs(f, &a2, 2);
	HAS(a2.msgs[1], "\"resources\":[]");
	HAS(a2.msgs[1], "\"removed\":[]");
	send_msg(&a2, "{\"type\":\"ack\",\"nonce\":\"2\"}");

	/* B leaves: A loses its endpoint */
	sn_xds_close(b.c, "bye");
	wait_msgs(f, &a2, 3);
	HAS(a2.msgs[2], "\"removed\":[\"WorkloadEntry/default/proxy-reviews-9\"]");
	sn_xds_close(a2.c, "test done");
	settle(f);
	client_free(&a);
	client_free(&a2);
	client_free(&b);
}

static void test_protocol_errors_close(void **state)
{
	struct fixture *f = *state;
	struct client cl;
	client_connect(f, &cl, "{\"type\":\"subscribe\",\"hosts\":[\"x\"]}");
	for (int i = 0; i < 300 && !cl.closed; i++)
		sn_loop_run_once(&f->loop, 10);
	assert_true(cl.closed);
	assert_true(cl.n >= 1);
	HAS(cl.msgs[0], "\"type\":\"error\"");
	client_free(&cl);
	client_connect(f, &cl, "not json at all {");
	for (int i = 0; i < 300 && !cl.closed; i++)
		sn_loop_run_once(&f->loop, 10);
	assert_true(cl.closed);
	client_free(&cl);
}

int main(void)
{
	if (getenv("SN_TEST_DEBUG") != NULL)
		sn_log_set_level(SN_LOG_DEBUG);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_subscribe_and_deltas, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registry_and_reconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_protocol_errors_close, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
