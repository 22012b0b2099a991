"""The local mesh end to end (issue 6): `sinew up` with a pod network,
`sinew run` for two unmodified programs, real sinew-proxies in the pods
with certificates from sinewd, names resolving to service VIPs, capture
sending the client's plain HTTP through both proxies over mutual TLS, and
`sinew down` leaving nothing behind. Needs root (CI runs as root)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_pods import (Env, SUFFIX, SINEW, netns_list, host_links, host_rules, read,  # noqa: E402
                       wait_exit, sh)


AUTHZ = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-shell-only, namespace: default}
spec:
  selector:
    matchLabels: {app: web}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/shell"]
    to:
    - operation:
        methods: ["GET"]
"""

KV_SERVER = r"""
import socket, threading
def serve(port, banner):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(16)
    while True:
        c, _ = s.accept()
        def one(c=c):
            f = c.makefile("rwb")
            if banner:
                f.write(b"+HELLO kv\n"); f.flush()
            for line in f:
                f.write(line.upper()); f.flush()
            c.close()
        threading.Thread(target=one, daemon=True).start()
threading.Thread(target=serve, args=(7000, False), daemon=True).start()
threading.Thread(target=serve, args=(7100, True), daemon=True).start()
def count_until_eof():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 7200)); s.listen(16)
    while True:
        c, _ = s.accept()
        n = 0
        while True:
            b = c.recv(65536)
            if not b:
                break
            n += len(b)
        c.sendall(b"GOT %d\n" % n)
        c.close()
threading.Thread(target=count_until_eof, daemon=True).start()
serve(6379, True)
"""

KV_CLIENT = r"""
import socket
c = socket.create_connection(("kv", 6379), timeout=10)
f = c.makefile("rwb")
print("banner", f.readline().decode().strip())
f.write(b"ping\n"); f.flush()
print("6379", f.readline().decode().strip())
c.close()
c = socket.create_connection(("kv.default.svc.cluster.local", 7000), timeout=10)
f = c.makefile("rwb")
f.write(b"hello there\n"); f.flush()
print("7000", f.readline().decode().strip())
c.close()
import time
for i in range(2):   # the first connection also brings the Service into the proxy (lazy discovery)
    t0 = time.time()
    c = socket.create_connection(("kv", 7100), timeout=10)
    b = c.makefile("rb").readline().decode().strip()
    took = time.time() - t0
    c.close()
print("7100", b, "fast" if took < 0.5 else "slow %.2f" % took)
c = socket.create_connection(("kv", 7200), timeout=10)   # half-close carried through both proxies
c.sendall(b"x" * 300000)
c.shutdown(socket.SHUT_WR)
print("7200", c.makefile("rb").readline().decode().strip())
c.close()
"""


def in_pod_sh(pod, argv, timeout=15):
    """An unmodified program in the pod, as root (not the proxy's uid):
    its TCP is captured like the app's."""
    return sh(["ip", "netns", "exec", pod] + argv, timeout=timeout)


def run_pod(test, env, api, service, *args, cmd):
    """`sinew run` of a real sidecar in the background, talking to sinewd at
    api; its stdout and stderr in files (p.out_path, p.err_path)."""
    out = os.path.join(env.tmp, "%s.out" % service)
    errp = os.path.join(env.tmp, "%s.err" % service)
    argv = [SINEW, "run", "--service", service, "--server", "http://" + api, "--ready-timeout", "30",
            "--drain-timeout", "5"] + list(args) + ["--"] + cmd
    with open(out, "w") as fo, open(errp, "w") as fe:
        p = st.spawn(argv, stdout=fo, stderr=fe, env=env.env())
    p.out_path, p.err_path = out, errp
    test.addCleanup(st.stop_process, p)
    return p


class LocalMesh(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.fail("needs root: network namespaces and iptables (CI runs as root)")
        self.links0, self.rules0 = host_links(), host_rules()
        self.e = Env(self)
        self.mesh = "sn-lm-" + SUFFIX
        self.api = "127.0.0.1:%d" % st.free_port()
        rc, out, err = self.e.sinew("up", "--api", self.api, "--mesh", "127.0.0.1:%d" % st.free_port(),
                                    "--mesh-netns", self.mesh, "--pod-cidr", "10.67.0.0/24")
        self.assertEqual(rc, 0, err)

    def run_pod(self, service, *args, cmd):
        return run_pod(self, self.e, self.api, service, *args, cmd=cmd)

    def test_unmodified_programs_talk_mtls_by_name(self):
        e = self.e
        os.chmod(e.tmp, 0o755)
        web = self.run_pod("web", "--port", "8000", "--service-account", "web",
                           cmd=["/usr/bin/python3", "-m", "http.server", "8000", "--bind", "127.0.0.1",
                                "--directory", e.www])
        wpod = e.wait_ready("web", web, timeout=40)
        client = self.run_pod("shell", "--service-account", "shell", cmd=["sleep", "120"])
        cpod = e.wait_ready("shell", client, timeout=40)
        self.pods = [wpod["name"], cpod["name"]]
        # names resolve to the Service's VIP in every pod
        hosts = read("/etc/netns/%s/hosts" % cpod["name"])
        m = re.search(r"^(10\.96\.\d+\.\d+)\s+web web\.default web\.default\.svc\.cluster\.local", hosts, re.M)
        self.assertTrue(m, hosts)
        vip = m.group(1)
        # a Service applied later gets a name in running pods within seconds
        rc, out, err = e.sinew("apply", "-f", "-", "--server", "http://" + self.api,
                               stdin="apiVersion: v1\nkind: Service\nmetadata: {name: late}\n"
                                     "spec:\n  selector: {app: late}\n  ports: [{name: http, port: 80}]\n")
        self.assertEqual(rc, 0, err)
        deadline = time.time() + 10
        while time.time() < deadline and "\tlate late.default " not in read("/etc/netns/%s/hosts" % cpod["name"]):
            time.sleep(0.2)
        self.assertIn("\tlate late.default late.default.svc.cluster.local", read("/etc/netns/%s/hosts" % cpod["name"]))
        # sinew run created the Service (selector app=web, port 8000)
        rc, out, err = e.sinew("get", "svc", "web", "--server", "http://" + self.api)
        self.assertEqual(rc, 0, err)
        # curl with no proxy settings, by name and by FQDN
        for url in ("http://web:8000/index.txt", "http://web.default.svc.cluster.local:8000/index.txt"):
            r = in_pod_sh(cpod["name"], ["curl", "-sS", "--max-time", "10", url])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, "hello from pod A\n")
        # python's http client, by name
        r = in_pod_sh(cpod["name"], ["/usr/bin/python3", "-c",
                                     "import urllib.request;print(urllib.request.urlopen("
                                     "'http://web:8000/index.txt', timeout=10).read().decode(), end='')"])
        self.assertEqual(r.stdout, "hello from pod A\n", r.stderr)
        # over mTLS: the server proxy saw the client's SPIFFE ID
        r = in_pod_sh(wpod["name"], ["curl", "-sS", "--max-time", "5", "http://127.0.0.1:15020/metrics"])
        samples = st.parse_metrics(r.stdout)
        n = st.metric_sum(samples, "sinew_requests_total", connection_security_policy="mutual_tls",
                          source_principal="spiffe://cluster.local/ns/default/sa/shell")
        self.assertGreaterEqual(n, 3, r.stdout[-3000:])
        self.assertEqual(st.metric_sum(samples, "sinew_requests_total", connection_security_policy="none"), 0)
        # the client's proxy routed by Host to the VIP's service
        r = in_pod_sh(cpod["name"], ["curl", "-sS", "--max-time", "5", "http://127.0.0.1:15020/metrics"])
        self.assertGreaterEqual(st.metric_sum(st.parse_metrics(r.stdout), "sinew_requests_total",
                                              destination_service="web.default.svc.cluster.local"), 3)
        self.assertTrue(vip.startswith("10.96."))
        # the CLI inspects pod proxies from the host (their admin port is on the pod's loopback)
        rc, out, err = e.sinew("proxy-status", "-o", "json", "--server", "http://" + self.api)
        self.assertEqual(rc, 0, err)
        wid = [p["id"] for p in json.loads(out) if p.get("service") == "web"][0]
        rc, out, err = e.sinew("identity", wid, "--server", "http://" + self.api)
        self.assertEqual(rc, 0, err)
        self.assertIn("spiffe://cluster.local/ns/default/sa/web", out)
        rc, out, err = e.sinew("check", "--server", "http://" + self.api)
        self.assertNotIn("unreachable", out)
        self.assertNotIn("without mTLS", out)
        self.assertEqual(rc, 0, out + err)
        # an AuthorizationPolicy selecting app=web (the label sinew run adds):
        # only the shell's identity may GET
        rc, out, err = e.sinew("apply", "-f", "-", "--server", "http://" + self.api, stdin=AUTHZ)
        self.assertEqual(rc, 0, err)
        other = self.run_pod("other", "--service-account", "other", cmd=["sleep", "120"])
        opod = e.wait_ready("other", other, timeout=40)
        self.pods.append(opod["name"])
        deadline = time.time() + 10
        while time.time() < deadline:
            r = in_pod_sh(opod["name"], ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                                        "http://web:8000/index.txt"])
            if r.stdout == "403":
                break
            time.sleep(0.2)
        self.assertEqual(r.stdout, "403")
        r = in_pod_sh(opod["name"], ["curl", "-si", "--max-time", "5", "http://web:8000/index.txt"])
        self.assertIn("sinew-error: rbac_denied", r.stdout)
        r = in_pod_sh(cpod["name"], ["curl", "-sS", "--max-time", "10", "http://web:8000/index.txt"])
        self.assertEqual(r.stdout, "hello from pod A\n")
        # capture rules removed under a running pod: it reports not-ready (fail closed)
        in_pod_sh(wpod["name"], ["iptables", "-t", "nat", "-F"])
        self.assertEqual(e.pod("web")["proxy"]["state"], "not-ready")
        # the app exits: sinew run drains the proxy, removes the pod, exits with the app's status
        client.send_signal(signal.SIGTERM)
        self.assertEqual(wait_exit(client, 20), 128 + signal.SIGTERM, read(client.err_path))
        self.assertNotIn(cpod["name"], netns_list())

    def test_opaque_tcp_over_mtls(self):
        """A server-first protocol on 6379 (in the opaque list: TCP at once),
        a client-first non-HTTP protocol on 7000 (sniffed: not HTTP, so
        TCP) and a server-first one on 7100 declared tcp, all reached by
        name from another pod through both proxies over mutual TLS (ALPN
        sinew/tcp)."""
        e = self.e
        server = os.path.join(e.tmp, "kv.py")
        with open(server, "w") as f:
            f.write(KV_SERVER)
        os.chmod(e.tmp, 0o755)
        os.chmod(server, 0o644)
        kv = self.run_pod("kv", "--port", "6379/tcp,7000/tcp,7100/tcp,7200/tcp", "--service-account", "kv",
                          cmd=["/usr/bin/python3", server])
        kpod = e.wait_ready("kv", kv, timeout=40)
        client = self.run_pod("tcpclient", "--service-account", "tcpclient", cmd=["sleep", "120"])
        cpod = e.wait_ready("tcpclient", client, timeout=40)
        self.pods = [kpod["name"], cpod["name"]]
        r = in_pod_sh(cpod["name"], ["/usr/bin/python3", "-c", KV_CLIENT], timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # 7100 is server-first but not a well-known port: declared tcp (Service port
        # "tcp-7100"), it is TCP at once, not after the 1 s sniff
        self.assertEqual(r.stdout.splitlines(), ["banner +HELLO kv", "6379 PING", "7000 HELLO THERE",
                                                 "7100 +HELLO kv fast", "7200 GOT 300000"], r.stderr)
        m = st.parse_metrics(in_pod_sh(kpod["name"], ["curl", "-sS", "--max-time", "5",
                                                      "http://127.0.0.1:15020/metrics"]).stdout)
        self.assertGreaterEqual(st.metric_sum(m, "sinew_tcp_inbound_mtls_connections_total"), 5)
        m = st.parse_metrics(in_pod_sh(cpod["name"], ["curl", "-sS", "--max-time", "5",
                                                      "http://127.0.0.1:15020/metrics"]).stdout)
        self.assertGreaterEqual(st.metric_sum(m, "sinew_tcp_outbound_mtls_connections_total"), 2)
        # AuthorizationPolicy holds for opaque TCP too: only another identity may connect
        rc, out, err = e.sinew("apply", "-f", "-", "--server", "http://" + self.api, stdin=(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: kv-only-admin}\n"
            "spec:\n  selector:\n    matchLabels: {app: kv}\n  action: ALLOW\n  rules:\n"
            "  - from:\n    - source:\n        principals: [\"cluster.local/ns/default/sa/admin\"]\n"))
        self.assertEqual(rc, 0, err)
        probe = ("import socket\nc = socket.create_connection(('kv', 7000), timeout=5)\n"
                 "c.sendall(b'hi\\n')\ntry:\n    print(repr(c.recv(100)))\nexcept Exception as x:\n"
                 "    print(type(x).__name__)\n")
        deadline = time.time() + 10
        while time.time() < deadline:
            r = in_pod_sh(cpod["name"], ["/usr/bin/python3", "-c", probe], timeout=20)
            if r.stdout.strip() in ("b''", "ConnectionResetError"):
                break
            time.sleep(0.3)
        self.assertIn(r.stdout.strip(), ("b''", "ConnectionResetError"), r.stdout + r.stderr)
        m = st.parse_metrics(in_pod_sh(kpod["name"], ["curl", "-sS", "--max-time", "5",
                                                      "http://127.0.0.1:15020/metrics"]).stdout)
        self.assertGreaterEqual(st.metric_sum(m, "sinew_authz_deny_total"), 1)

    def test_http_on_two_ports(self):
        """A pod serving HTTP on two ports: each port's requests reach the
        app's own port (the inbound routes by original destination)."""
        e = self.e
        os.chmod(e.tmp, 0o755)
        for port in ("8000", "8001"):
            d = os.path.join(e.tmp, "www" + port)
            os.mkdir(d)
            with open(os.path.join(d, "who"), "w") as f:
                f.write("port %s\n" % port)
            os.chmod(d, 0o755)
            os.chmod(os.path.join(d, "who"), 0o644)
        two = self.run_pod("two", "--port", "8000,8001", cmd=[
            "/bin/sh", "-c", "/usr/bin/python3 -m http.server 8001 --bind 127.0.0.1 --directory %s & "
            "exec /usr/bin/python3 -m http.server 8000 --bind 127.0.0.1 --directory %s"
            % (os.path.join(e.tmp, "www8001"), os.path.join(e.tmp, "www8000"))])
        tpod = e.wait_ready("two", two, timeout=40)
        client = self.run_pod("c2", cmd=["sleep", "120"])
        cpod = e.wait_ready("c2", client, timeout=40)
        self.pods = [tpod["name"], cpod["name"]]
        for port in ("8000", "8001", "8000"):
            r = in_pod_sh(cpod["name"], ["curl", "-sS", "--max-time", "10", "http://two:%s/who" % port])
            self.assertEqual((r.returncode, r.stdout), (0, "port %s\n" % port), r.stderr)

    def test_sigkill_everything_then_down(self):
        """Real sinewd, proxies and apps, all SIGKILLed (sinewd too): `sinew
        down` still removes every pod, namespace, link and rule."""
        e = self.e
        web = self.run_pod("kweb", "--port", "8000", cmd=["/usr/bin/python3", "-m", "http.server", "8000",
                                                          "--bind", "127.0.0.1"])
        wpod = e.wait_ready("kweb", web, timeout=40)
        cl = self.run_pod("kcl", cmd=["sleep", "300"])
        cpod = e.wait_ready("kcl", cl, timeout=40)
        self.pods = [wpod["name"], cpod["name"]]
        victims = [web.pid, cl.pid]
        for pod in self.pods:
            victims += [int(x) for x in sh(["ip", "netns", "pids", pod]).stdout.split()]
        with open(os.path.join(e.home, "sinewd.pid")) as f:
            victims.append(int(f.read().split()[0]))
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in (web, cl):
            p.wait(10)
        self.assertIn(wpod["name"], netns_list())   # left behind by the crash
        rc, out, err = e.sinew("down")
        self.assertEqual(rc, 0, out + err)
        for pod in self.pods:
            self.assertIn("pod %s removed" % pod, out)
        self.assertIn("mesh network %s removed" % self.mesh, out)
        for pid in victims:
            self.assertFalse(os.path.exists("/proc/%d/status" % pid) and
                             "zombie" not in read("/proc/%d/status" % pid), pid)
        # tearDown checks: no namespace of this test, host links and rules as before

    def test_run_without_pod_network_fails_fast(self):
        """sinewd started without a pod network (--no-pods; as root `up`
        makes one by default): sinew run says so at once instead of
        waiting out --ready-timeout."""
        e2 = Env(self, name="d2")
        api = "127.0.0.1:%d" % st.free_port()
        rc, out, err = e2.sinew("up", "--api", api, "--mesh", "127.0.0.1:%d" % st.free_port(), "--no-pods")
        self.assertEqual(rc, 0, err)
        t0 = time.time()
        r = subprocess.run([SINEW, "run", "--service", "lonely", "--server", "http://" + api,
                            "--mesh-netns", "sn-lm2-" + SUFFIX, "--pod-cidr", "10.72.0.0/24", "--", "true"],
                           capture_output=True, text=True, timeout=60, env=e2.env())
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("sinewd does not answer in the pods' network on 10.72.0.1:15012", r.stderr)
        self.assertLess(time.time() - t0, 10)
        rc, out, err = e2.sinew("down")
        self.assertEqual(rc, 0, err)
        self.assertNotIn("sn-lm2-" + SUFFIX, netns_list())

    def tearDown(self):
        rc, out, err = self.e.sinew("down")
        self.assertEqual(rc, 0, err)
        left = netns_list()
        self.assertNotIn(self.mesh, left)
        # this test's pods (other tests may run pods at the same time)
        self.assertEqual([n for n in getattr(self, "pods", []) if n in left], [])
        self.assertEqual(host_links(), self.links0)
        self.assertEqual(host_rules(), self.rules0)


if __name__ == "__main__":
    st.main()
