"""A mesh across simulated hosts (issue 15): `sinew up --host NAME` makes
a host namespace with its own pod bridge and range, routed to the mesh
network; `sinew run --host NAME` puts a pod there; an unmodified client on
the mesh network's host reaches a server on the other host by service name
through both sidecars over mutual TLS (and back the other way); `sinew
down` removes every host namespace and link. Needs root (CI runs as root).

Network safety as in test_pods.py: every namespace and link is made inside
namespaces this run creates (names carry its suffix), the host's links
and rules are compared before and after."""

import ipaddress
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_pods import Env, SUFFIX, netns_list, host_links, host_rules, read  # noqa: E402
from test_local_mesh import run_pod, in_pod_sh  # noqa: E402


class Hosts(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.fail("needs root: network namespaces and iptables (CI runs as root)")
        self.links0, self.rules0 = host_links(), host_rules()
        self.e = Env(self)
        self.mesh = "sn-mh-" + SUFFIX
        self.host = "b" + SUFFIX
        self.api = "127.0.0.1:%d" % st.free_port()
        rc, out, err = self.e.sinew("up", "--api", self.api, "--mesh", "127.0.0.1:%d" % st.free_port(),
                                    "--mesh-netns", self.mesh, "--pod-cidr", "10.66.0.0/24", "--host", self.host)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("host %s: namespace sn-h-%s, bridge snbr0, pods 10.66.1.0/24, gateway 10.66.1.1, "
                      "routed to %s" % (self.host, self.host, self.mesh), out)

    def run_pod(self, service, *args, cmd):
        return run_pod(self, self.e, self.api, service, *args, cmd=cmd)

    def test_pods_on_two_hosts_talk_by_name_over_mtls(self):
        e = self.e
        self.assertIn("sn-h-" + self.host, netns_list())
        # a second `up --host` with sinewd running adds (or here: checks) the host only
        rc, out, err = e.sinew("up", "--api", self.api, "--host", self.host)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("already running", out)

        web = self.run_pod("web", "--host", self.host, "--port", "8000", "--service-account", "web",
                           cmd=["/usr/bin/python3", "-m", "http.server", "8000", "--bind", "127.0.0.1",
                                "--directory", e.www])
        wpod = e.wait_ready("web", web, timeout=40)
        shell = self.run_pod("shell", "--service-account", "shell", cmd=["sleep", "120"])
        spod = e.wait_ready("shell", shell, timeout=40)
        far = self.run_pod("far", "--host", self.host, "--service-account", "far", cmd=["sleep", "120"])
        fpod = e.wait_ready("far", far, timeout=40)
        self.pods = [wpod["name"], spod["name"], fpod["name"]]
        # each pod is on its host's range
        self.assertIn(ipaddress.ip_address(wpod["address"]), ipaddress.ip_network("10.66.1.0/24"))
        self.assertIn(ipaddress.ip_address(spod["address"]), ipaddress.ip_network("10.66.0.0/24"))
        # from the mesh network's host to the other, by name, plain curl
        for url in ("http://web:8000/index.txt", "http://web.default.svc.cluster.local:8000/index.txt"):
            deadline = time.time() + 10
            while True:
                r = in_pod_sh(spod["name"], ["curl", "-sS", "--max-time", "5", url])
                if r.returncode == 0 or time.time() > deadline:
                    break
                time.sleep(0.2)
            self.assertEqual((r.returncode, r.stdout), (0, "hello from pod A\n"), r.stderr)
        # and within host b, from a pod there
        r = in_pod_sh(fpod["name"], ["curl", "-sS", "--max-time", "10", "http://web:8000/index.txt"])
        self.assertEqual(r.stdout, "hello from pod A\n", r.stderr)
        # over mTLS: the server's proxy saw both clients' SPIFFE IDs, nothing in plaintext
        r = in_pod_sh(wpod["name"], ["curl", "-sS", "--max-time", "5", "http://127.0.0.1:15020/metrics"])
        samples = st.parse_metrics(r.stdout)
        for sa, n in (("shell", 2), ("far", 1)):
            self.assertGreaterEqual(st.metric_sum(samples, "sinew_requests_total",
                                                  connection_security_policy="mutual_tls",
                                                  source_principal="spiffe://cluster.local/ns/default/sa/" + sa),
                                    n, r.stdout[-3000:])
        self.assertEqual(st.metric_sum(samples, "sinew_requests_total", connection_security_policy="none"), 0)
        # the server's proxy on host b reached sinewd across the link
        rc, out, err = e.sinew("proxy-status", "--server", "http://" + self.api)
        self.assertEqual(rc, 0, err)
        self.assertIn("web", out)

    def test_run_on_a_host_that_is_not_there(self):
        p = self.run_pod("lost", "--host", "nope", cmd=["true"])
        p.wait(30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--host nope: no such host", read(p.err_path))
        self.assertIn("sudo sinew up --host nope", read(p.err_path))
        rc, out, err = self.e.sinew("up", "--api", self.api, "--host", "Bad_Name")
        self.assertEqual(rc, 1)
        self.assertIn("lower-case letters", err)

    def tearDown(self):
        rc, out, err = self.e.sinew("down")
        self.assertEqual(rc, 0, err)
        self.assertIn("host %s removed (namespace sn-h-%s)" % (self.host, self.host), out)
        left = netns_list()
        self.assertNotIn(self.mesh, left)
        self.assertNotIn("sn-h-" + self.host, left)
        self.assertEqual([n for n in getattr(self, "pods", []) if n in left], [])
        self.assertEqual(host_links(), self.links0)
        self.assertEqual(host_rules(), self.rules0)


if __name__ == "__main__":
    st.main()
