#!/usr/bin/python3
"""ServiceEntry resolution DNS for real names: the proxy resolves them with
the system resolver on its own thread, again every --dns-refresh, and its
endpoints follow the answers without a reload.

The test runs the proxy, two web servers and curl in a network namespace
of its own whose /etc/hosts (ip netns exec mounts /etc/netns/NAME/hosts
over it) is the "DNS" the test controls: api.test.example first answers
127.0.0.1, then 127.0.0.2; a name that stops resolving keeps its last
addresses (Envoy's behaviour); a name that never resolved gives 503
no_healthy_upstream. Needs root; removes its namespace."""

import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

NS = "sn-dns-%d" % os.getpid()
ETC = "/etc/netns/" + NS


def sh(*argv, **kw):
    return subprocess.run(list(argv), capture_output=True, text=True, **kw)


def in_ns(*argv):
    return ["ip", "netns", "exec", NS] + list(argv)


class DnsServiceEntry(unittest.TestCase):

    def setUp(self):
        if os.geteuid() != 0:
            self.fail("needs root (a network namespace; CI runs as root)")
        self.assertEqual(sh("ip", "netns", "add", NS).returncode, 0)
        self.addCleanup(lambda: shutil.rmtree(ETC, ignore_errors=True))
        self.addCleanup(sh, "ip", "netns", "del", NS)
        os.makedirs(ETC, exist_ok=True)
        self.hosts = os.path.join(ETC, "hosts")
        self.set_hosts("127.0.0.1 api.test.example\n")
        sh(*in_ns("ip", "link", "set", "lo", "up"))
        self.dir = st.make_tempdir(self)
        self.port = 18080
        for who, ip in (("A", "127.0.0.1"), ("B", "127.0.0.2")):
            d = os.path.join(self.dir, who)
            os.mkdir(d)
            with open(os.path.join(d, "who.txt"), "w") as f:
                f.write(who)
            p = st.spawn(in_ns(st.PYTHON, "-m", "http.server", str(self.port), "--bind", ip, "--directory", d),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.addCleanup(st.stop_process, p)
        cfg = os.path.join(self.dir, "sinew.yaml")
        st.write_file(cfg, """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: %d}]
  resolution: DNS
  endpoints: [{address: api.test.example}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: never}
spec:
  hosts: [never.test.example]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
""" % self.port)
        self.err = os.path.join(self.dir, "proxy.err")
        with open(self.err, "w") as e:
            self.proxy = st.spawn(in_ns(st.PROXY, "--config", cfg, "--outbound", "127.0.0.1:15001", "--admin",
                                        "127.0.0.1:15000", "--dns-refresh", "300ms"),
                                  stdout=subprocess.DEVNULL, stderr=e, env=st.proxy_env())
        self.addCleanup(st.stop_process, self.proxy)

    def set_hosts(self, text):
        with open(self.hosts, "w") as f:   # in place: the bind mount keeps the inode
            f.write(text)

    def get(self, host):
        r = sh(*in_ns("curl", "-sS", "--max-time", "5", "-H", "Host: " + host, "-w", " %{http_code}",
                      "http://127.0.0.1:15001/who.txt"))
        return r.stdout.strip()

    def wait_for(self, host, want, timeout=5.0):
        deadline, got = time.time() + timeout, None
        while time.time() < deadline:
            got = self.get(host)
            if got == want:
                return
            time.sleep(0.1)
        with open(self.err) as f:
            log = f.read()
        self.fail("%s: want %r, got %r\n%s" % (host, want, got, log[-3000:]))

    def test_endpoints_follow_dns(self):
        self.wait_for("api.example.com", "A 200")
        self.set_hosts("127.0.0.2 api.test.example\n")
        self.wait_for("api.example.com", "B 200")
        # the name stops resolving: the last addresses stay
        self.set_hosts("127.0.0.3 other.test.example\n")
        time.sleep(1.0)
        self.assertEqual(self.get("api.example.com"), "B 200")
        with open(self.err) as f:
            log = f.read()
        self.assertIn("dns: api.test.example is 127.0.0.2", log)
        self.assertIn("dns: api.test.example:", log)   # the failure, once
        self.assertIn("keeping its last addresses", log)
        # a host that never resolves: no endpoint
        got = self.get("never.test.example")
        self.assertTrue(got.endswith("503"), got)
        self.assertIsNone(self.proxy.poll())


if __name__ == "__main__":
    st.main()
