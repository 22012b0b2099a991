/* src/pod/: the capture rules script (exact output), the pod range and
 * address choice, records and hosts files. Pure functions only: the
 * namespaces themselves are tested by tests/integration/test_pods.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "sinew/common.h"
#include "sinew/pod.h"

static const char default_rules[] =
	"*nat\n"
	":PREROUTING ACCEPT [0:0]\n"
	":INPUT ACCEPT [0:0]\n"
	":OUTPUT ACCEPT [0:0]\n"
	":POSTROUTING ACCEPT [0:0]\n"
	":SINEW_INBOUND - [0:0]\n"
	":SINEW_IN_REDIRECT - [0:0]\n"
	":SINEW_OUTPUT - [0:0]\n"
	":SINEW_REDIRECT - [0:0]\n"
	"-A PREROUTING -p tcp -j SINEW_INBOUND\n"
	"-A OUTPUT -p tcp -j SINEW_OUTPUT\n"
	"-A SINEW_INBOUND -p tcp -m tcp --dport 15020 -j RETURN\n"
	"-A SINEW_INBOUND -p tcp -m tcp --dport 15021 -j RETURN\n"
	"-A SINEW_INBOUND -p tcp -j SINEW_IN_REDIRECT\n"
	"-A SINEW_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006\n"
	"-A SINEW_OUTPUT -m owner --uid-owner 1337 -j RETURN\n"
	"-A SINEW_OUTPUT -d 127.0.0.1/32 -j RETURN\n"
	"-A SINEW_OUTPUT -p tcp -m tcp --dport 15020 -j RETURN\n"
	"-A SINEW_OUTPUT -p tcp -m tcp --dport 15021 -j RETURN\n"
	"-A SINEW_OUTPUT -j SINEW_REDIRECT\n"
	"-A SINEW_REDIRECT -p tcp -j REDIRECT --to-ports 15001\n"
	"COMMIT\n";

static void test_capture_script_default(void **state)
{
	char buf[4096];
	(void)state;
	int n = sn_pod_capture_script(sn_pod_capture_default(), buf, sizeof(buf));
	assert_int_equal(n, (int)strlen(default_rules));
	assert_string_equal(buf, default_rules);
}

static void test_capture_script_custom_and_bounded(void **state)
{
	char buf[4096];
	static const unsigned in_ex[] = { 22 };
	struct sn_pod_capture c = { .proxy_uid = 2000, .inbound_port = 16006, .outbound_port = 16001,
				    .inbound_exclude = in_ex, .n_inbound_exclude = 1 };
	(void)state;
	int n = sn_pod_capture_script(&c, buf, sizeof(buf));
	assert_true(n > 0);
	assert_non_null(strstr(buf, "-A SINEW_INBOUND -p tcp -m tcp --dport 22 -j RETURN\n"
				    "-A SINEW_INBOUND -p tcp -j SINEW_IN_REDIRECT\n"
				    "-A SINEW_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006\n"
				    "-A SINEW_OUTPUT -m owner --uid-owner 2000 -j RETURN\n"
				    "-A SINEW_OUTPUT -d 127.0.0.1/32 -j RETURN\n"
				    "-A SINEW_OUTPUT -j SINEW_REDIRECT\n"
				    "-A SINEW_REDIRECT -p tcp -j REDIRECT --to-ports 16001\n"
				    "COMMIT\n"));
	/* Too small: an error, never half a script applied. */
	assert_int_equal(sn_pod_capture_script(sn_pod_capture_default(), buf, 100), SN_ELIMIT);
	assert_int_equal(sn_pod_capture_script(sn_pod_capture_default(), buf, strlen(default_rules)), SN_ELIMIT);
	assert_int_equal(sn_pod_capture_script(sn_pod_capture_default(), buf, strlen(default_rules) + 1),
			 (int)strlen(default_rules));
}

static void test_cidr(void **state)
{
	struct sn_pod_cidr c;
	char err[200], s[32];
	(void)state;
	assert_int_equal(sn_pod_cidr_parse("10.88.0.0/16", &c, err, sizeof(err)), 0);
	assert_int_equal(c.prefix, 16);
	sn_pod_cidr_str(&c, s, sizeof(s));
	assert_string_equal(s, "10.88.0.0/16");
	sn_pod_addr_str(sn_pod_cidr_gateway(&c), s, sizeof(s));
	assert_string_equal(s, "10.88.0.1");
	sn_pod_addr_str(sn_pod_cidr_probe(&c), s, sizeof(s));
	assert_string_equal(s, "10.88.255.254");
	assert_int_equal(sn_pod_cidr_parse("192.168.7.0/28", &c, err, sizeof(err)), 0);
	sn_pod_addr_str(sn_pod_cidr_probe(&c), s, sizeof(s));
	assert_string_equal(s, "192.168.7.14");

	assert_int_equal(sn_pod_cidr_parse("10.88.0.1/16", &c, err, sizeof(err)), SN_EINVAL);
	assert_non_null(strstr(err, "did you mean 10.88.0.0/16"));
	/* never over the service VIPs (10.96.0.0/16) */
	assert_int_equal(sn_pod_cidr_parse("10.96.4.0/24", &c, err, sizeof(err)), SN_EINVAL);
	assert_non_null(strstr(err, "overlaps the service VIP range"));
	assert_int_equal(sn_pod_cidr_parse("10.0.0.0/8", &c, err, sizeof(err)), SN_EINVAL);
	assert_int_equal(sn_pod_cidr_parse("10.97.0.0/16", &c, err, sizeof(err)), 0);
	assert_int_equal(sn_pod_cidr_parse("10.88.0.0/29", &c, err, sizeof(err)), SN_EINVAL);
	assert_non_null(strstr(err, "8 to 28"));
	const char *bad[] = { "10.88.0.0", "10.88.0/16", "10.88.0.0/", "10.88.0.0/x", "300.1.1.0/24",
			      "10.088.0.0/16", "10.88.0.0/16x", "/16", "1.2.3.4.5/8" };
	for (size_t i = 0; i < SN_ARRAY_LEN(bad); i++)
		assert_int_equal(sn_pod_cidr_parse(bad[i], &c, err, sizeof(err)), SN_EINVAL);
}

static uint32_t ip(const char *s)
{
	uint32_t a = 0;
	assert_int_equal(sn_pod_addr_parse(s, &a), 0);
	return a;
}

static void test_addr_pick(void **state)
{
	struct sn_pod_cidr c;
	char err[200], s[16];
	uint32_t a;
	(void)state;
	assert_int_equal(sn_pod_cidr_parse("10.88.0.0/16", &c, err, sizeof(err)), 0);
	/* The first pod gets .2 (.1 is the gateway). */
	assert_int_equal(sn_pod_addr_pick(&c, NULL, 0, &a), 0);
	sn_pod_addr_str(a, s, sizeof(s));
	assert_string_equal(s, "10.88.0.2");
	/* The lowest free one, whatever the order and duplicates of used. */
	uint32_t used[] = { ip("10.88.0.4"), ip("10.88.0.2"), ip("10.88.0.3"), ip("10.88.0.2"), ip("10.88.0.6") };
	assert_int_equal(sn_pod_addr_pick(&c, used, SN_ARRAY_LEN(used), &a), 0);
	sn_pod_addr_str(a, s, sizeof(s));
	assert_string_equal(s, "10.88.0.5");
	/* A removed pod's address is reused. */
	uint32_t gap[] = { ip("10.88.0.3") };
	assert_int_equal(sn_pod_addr_pick(&c, gap, 1, &a), 0);
	assert_int_equal(a, ip("10.88.0.2"));
	/* Addresses outside the range do not matter. */
	uint32_t other[] = { ip("10.89.0.2"), ip("1.2.3.4") };
	assert_int_equal(sn_pod_addr_pick(&c, other, 2, &a), 0);
	assert_int_equal(a, ip("10.88.0.2"));

	/* A /28 has 16 addresses: network, gateway, 12 pods, probe, broadcast. */
	assert_int_equal(sn_pod_cidr_parse("10.0.0.16/28", &c, err, sizeof(err)), 0);
	uint32_t full[12];
	for (int i = 0; i < 12; i++) {
		assert_int_equal(sn_pod_addr_pick(&c, full, (size_t)i, &a), 0);
		assert_int_equal(a, ip("10.0.0.18") + (uint32_t)i);
		full[i] = a;
	}
	assert_int_equal(sn_pod_addr_pick(&c, full, 12, &a), SN_ELIMIT);
	assert_int_not_equal(full[11], sn_pod_cidr_probe(&c));
	assert_int_equal(full[11] + 1, sn_pod_cidr_probe(&c));
}

static void test_record_round_trip(void **state)
{
	struct sn_pod p, q;
	char text[8192];
	(void)state;
	memset(&p, 0, sizeof(p));
	snprintf(p.name, sizeof(p.name), "sn-reviews-0a1b2c");
	snprintf(p.netns, sizeof(p.netns), "sn-reviews-0a1b2c");
	snprintf(p.mesh_netns, sizeof(p.mesh_netns), "sn-mesh");
	snprintf(p.veth_mesh, sizeof(p.veth_mesh), "snv-0a1b2c");
	snprintf(p.veth_pod, sizeof(p.veth_pod), "eth0");
	snprintf(p.address, sizeof(p.address), "10.88.0.7");
	snprintf(p.admin, sizeof(p.admin), "127.0.0.1:15020");
	snprintf(p.service, sizeof(p.service), "reviews");
	snprintf(p.namespace_, sizeof(p.namespace_), "default");
	snprintf(p.service_account, sizeof(p.service_account), "bookinfo-reviews");
	snprintf(p.labels, sizeof(p.labels), "app=reviews,version=v2");
	snprintf(p.ports, sizeof(p.ports), "9080/http");
	p.capture = 1;
	p.state = SN_POD_STATE_RUNNING;
	p.supervisor = (struct sn_pod_proc){ 100, 5000 };
	p.proxy = (struct sn_pod_proc){ 101, 5001 };
	p.app = (struct sn_pod_proc){ 102, 5002 };
	p.created = 1790000000;
	int n = sn_pod_record_render(&p, text, sizeof(text));
	assert_true(n > 0);
	assert_non_null(strstr(text, "name=sn-reviews-0a1b2c\nstate=running\ncapture=1\n"));
	assert_non_null(strstr(text, "proxy=101 5001\n"));
	assert_int_equal(sn_pod_record_parse(text, (size_t)n, &q), 0);
	char again[8192];
	assert_int_equal(sn_pod_record_render(&q, again, sizeof(again)), n);
	assert_string_equal(again, text);
	assert_string_equal(q.labels, "app=reviews,version=v2");
	assert_int_equal(q.app.pid, 102);
	assert_int_equal(q.app.start, 5002);
	assert_int_equal(q.state, SN_POD_STATE_RUNNING);
	assert_int_equal(q.created, 1790000000);

	/* Torn after its first line: still names the pod (a cut inside the
	 * name is caught by comparing with the file name: test_record_files). */
	assert_int_equal(sn_pod_record_parse(text, strlen("name=sn-reviews-0a1b2c\nsta"), &q), 0);
	assert_string_equal(q.name, "sn-reviews-0a1b2c");
	assert_int_equal(sn_pod_record_parse("state=running\n", 14, &q), SN_EINVAL);
	/* A newline in a value is refused, not written. */
	snprintf(p.labels, sizeof(p.labels), "a=b\nname=evil");
	assert_int_equal(sn_pod_record_render(&p, text, sizeof(text)), SN_EINVAL);
	assert_int_equal(sn_pod_record_render(&q, text, 10), SN_ELIMIT);
}

static void test_record_files(void **state)
{
	char dir[] = "/tmp/sn-pod-unit-XXXXXX", err[300], path[512];
	struct sn_pod p, *list;
	size_t n;
	(void)state;
	assert_non_null(mkdtemp(dir));
	memset(&p, 0, sizeof(p));
	snprintf(p.name, sizeof(p.name), "sn-b-000001");
	snprintf(p.address, sizeof(p.address), "10.88.0.3");
	p.capture = 1;
	assert_int_equal(sn_pod_record_write(dir, &p, err, sizeof(err)), 0);
	snprintf(p.name, sizeof(p.name), "sn-a-000002");
	snprintf(p.address, sizeof(p.address), "10.88.0.2");
	assert_int_equal(sn_pod_record_write(dir, &p, err, sizeof(err)), 0);
	/* A crash while writing a first record leaves only its temp file. */
	snprintf(path, sizeof(path), "%s/.sn-c-000003.pod.tmp", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("name=sn-c-0000", f);   /* torn */
	fclose(f);
	/* And garbage under a record's name still names the pod. */
	snprintf(path, sizeof(path), "%s/sn-d-000004.pod", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("\x01\x02garbage", f);
	fclose(f);
	assert_int_equal(sn_pod_record_list(dir, &list, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(list[0].name, "sn-a-000002");
	assert_string_equal(list[0].address, "10.88.0.2");
	assert_string_equal(list[1].name, "sn-b-000001");
	assert_string_equal(list[2].name, "sn-c-000003");
	assert_string_equal(list[3].name, "sn-d-000004");
	free(list);

	uint32_t *used;
	assert_int_equal(sn_pod_used_addrs(dir, &used, &n), 0);
	assert_int_equal(n, 2);
	free(used);

	/* A new name is used by no record. */
	char name[SN_POD_NAME_MAX];
	assert_int_equal(sn_pod_name_new(dir, "reviews", name, sizeof(name)), 0);
	assert_int_equal(strncmp(name, "sn-reviews-", 11), 0);
	assert_int_equal(strlen(name), strlen("sn-reviews-") + 6);

	struct sn_pod_mesh m = { .netns = "sn-mesh-x", .bridge = "snbr0" }, m2;
	assert_int_equal(sn_pod_cidr_parse("10.90.0.0/24", &m.cidr, err, sizeof(err)), 0);
	assert_int_equal(sn_pod_mesh_write(dir, &m, err, sizeof(err)), 0);
	assert_int_equal(sn_pod_mesh_read(dir, &m2), 0);
	assert_string_equal(m2.netns, "sn-mesh-x");
	assert_int_equal(m2.cidr.net, m.cidr.net);
	assert_int_equal(m2.cidr.prefix, 24);
	sn_pod_mesh_forget(dir);
	assert_int_equal(sn_pod_mesh_read(dir, &m2), SN_ENOTFOUND);

	const char *names[] = { "sn-a-000002", "sn-b-000001", "sn-c-000003", "sn-d-000004" };
	for (size_t i = 0; i < SN_ARRAY_LEN(names); i++)
		sn_pod_record_remove(dir, names[i]);
	assert_int_equal(sn_pod_record_list(dir, &list, &n), 0);
	assert_int_equal(n, 0);
	free(list);
	snprintf(path, sizeof(path), "%s/.lock", dir);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

static void test_hosts_render(void **state)
{
	char buf[1024];
	(void)state;
	struct sn_pod_host h[] = {
		{ "10.88.0.2", "sn-reviews-0a1b2c", NULL },
		{ "10.96.0.10", "reviews", "default" },
	};
	int n = sn_pod_hosts_render(h, 2, buf, sizeof(buf));
	assert_int_equal(n, (int)strlen(buf));
	assert_string_equal(buf, "# Written by sinew for this pod; rewritten in place when services change.\n"
				 "127.0.0.1\tlocalhost\n"
				 "::1\tlocalhost ip6-localhost ip6-loopback\n"
				 "10.88.0.2\tsn-reviews-0a1b2c\n"
				 "10.96.0.10\treviews reviews.default reviews.default.svc.cluster.local\n");
	struct sn_pod_host bad[] = { { "10.0.0.1", "a b", NULL } };
	assert_int_equal(sn_pod_hosts_render(bad, 1, buf, sizeof(buf)), SN_EINVAL);
	struct sn_pod_host bad2[] = { { "10.0.0.1", "a", "x#y" } };
	assert_int_equal(sn_pod_hosts_render(bad2, 1, buf, sizeof(buf)), SN_EINVAL);
	assert_int_equal(sn_pod_hosts_render(h, 2, buf, 120), SN_ELIMIT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_capture_script_default),
		cmocka_unit_test(test_capture_script_custom_and_bounded),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_addr_pick),
		cmocka_unit_test(test_record_round_trip),
		cmocka_unit_test(test_record_files),
		cmocka_unit_test(test_hosts_render),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
