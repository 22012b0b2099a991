#!/usr/bin/python3
"""The mesh config's outboundTrafficPolicy in pods (root): `sinew up` with
a pod network, a client pod and a web pod behind real sinew-proxies with
transparent capture, and an "external" TCP server that no Service or
ServiceEntry declares -- a server-first protocol (a banner, then an echo)
on port 3306, one of sinew-proxy's default --opaque-ports, so the client's
connection is opaque TCP at once, without sniffing. It listens on the mesh
network's gateway address (the first host of the pod range, on the bridge
in the mesh namespace, where sinewd's 15012 is too): pods reach it through
their default route, and the proxy's own connection (uid 1337) is not
captured, so it is the proxy's "passthrough" (src/proxy/tcp.c,
outbound_route).

1. ALLOW_ANY (no mesh config): the captured connection goes straight to
   its original destination: the client reads the banner and its echo,
   the server sees the pod's address; an HTTP request for an undeclared
   host goes there too (Istio's PassthroughCluster), its Host and path as
   sent, counted by sinew_passthrough_total.
2. ConfigMap istio-system/istio with REGISTRY_ONLY applied, proxies
   SYNCED: the same connection is closed without reaching the server,
   the client proxy's log says it was blocked under REGISTRY_ONLY, and
   its sinew_blocked_egress_total counts it.
3. Under REGISTRY_ONLY an HTTP request for an undeclared host is 502
   blocked_egress, naming the host and the ConfigMap, and counted, while
   the declared Service (the web pod, HTTP on 8000 and a banner on 6379
   as opaque TCP) still answers.
4. ALLOW_ANY applied again: passthrough works again.
5. A ServiceEntry's addresses declare opaque TCP (REGISTRY_ONLY).
6-7. Istio's egress gateway tasks: HTTP through an egress gateway pod, in
   plain text and in the mesh's mutual TLS (ISTIO_MUTUAL).
8. Istio's TCP traffic shifting task: a VirtualService tcp route splits
   connections 80/20, then 0/100.
9. TLS to an undeclared address, declared by a ServiceEntry's name (the
   ClientHello's SNI), then through an egress gateway's PASSTHROUGH port.

Needs root (fails, not skips, without it); leaves no namespace, link or
rule."""

import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_gateway import make_pki  # noqa: E402
from test_pods import Env, SUFFIX, SINEW, netns_list, host_links, host_rules, read, sh  # noqa: E402

CIDR = "10.75.0.0/24"   # no other test uses it
GATEWAY = "10.75.0.1"   # the mesh network's gateway: the bridge's address in the mesh namespace
EXT_PORT = 3306         # in sinew-proxy's default --opaque-ports (server-first): TCP without sniffing
HTTP_PORT = 8080        # not opaque: sniffed, HTTP
TLS_PORT = 8443         # not opaque: sniffed, TLS (its ClientHello names the host)
UNDECLARED = "undeclared.example.com"

# The "external" server: a banner first (as MySQL's greeting), then each line
# echoed in upper case; every accepted peer on stdout.
EXT_SERVER = r'''
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print("listening", flush=True)
def one(c):
    try:
        f = c.makefile("rwb")
        f.write(sys.argv[3].encode() + b"\n")
        f.flush()
        for line in f:
            f.write(line.upper())
            f.flush()
    except OSError:
        pass
    c.close()
while True:
    c, peer = s.accept()
    print("accepted", peer[0], flush=True)
    threading.Thread(target=one, args=(c,), daemon=True).start()
'''

# The client, run in a pod as root (not the proxy's uid 1337: captured):
# prints BANNER ... ECHO ..., CLOSED (end of stream before a byte), RESET,
# TIMEOUT or CONNECT-FAILED.
TCP_CLIENT = r'''
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
except OSError as e:
    print("CONNECT-FAILED", e)
    sys.exit()
c.settimeout(5)
def line():
    b = b""
    while not b.endswith(b"\n"):
        d = c.recv(200)
        if not d:
            break
        b += d
    return b
try:
    banner = line()
    if not banner:
        print("CLOSED")
    else:
        c.sendall(b"ping\n")
        print("BANNER", banner.decode().strip(), "ECHO", line().decode().strip())
except ConnectionResetError:
    print("RESET")
except socket.timeout:
    print("TIMEOUT")
c.close()
'''

# The "external" web server: answers every GET with the Host it was sent,
# the path and the peer's address (what passthrough must deliver as is).
EXT_HTTP = r'''
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("EXTERNAL host=%s path=%s peer=%s\n" % (self.headers.get("host"), self.path,
                                                       self.client_address[0])).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H)
print("listening", flush=True)
s.serve_forever()
'''

WEB_BANNER = r'''
import socket, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 6379))
s.listen(16)
def one(c):
    try:
        c.sendall(b"+HELLO web\n")
        c.makefile("rb").readline()
        c.sendall(b"+PONG\n")
    except OSError:
        pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=one, args=(c,), daemon=True).start()
'''


def mesh_config(mode):
    return """apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    outboundTrafficPolicy:
      mode: %s
""" % mode


class PodsEgress(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise AssertionError("needs root: network namespaces and iptables (CI runs as root)")
        cls.links0, cls.rules0 = host_links(), host_rules()
        cls.t = unittest.TestCase()   # Env and make_tempdir want a test for cleanups
        cls.procs = []
        cls.pods = {}
        cls.ext = None
        cls.ext_http = None
        cls.mode = None
        cls.e = Env(cls.t)
        cls.addClassCleanup(cls.teardown)   # also when setUpClass fails
        cls.mesh = "sn-eg-" + SUFFIX
        api = "127.0.0.1:%d" % st.free_port()
        cls.server = "http://" + api
        t0 = time.time()
        rc, out, err = cls.e.sinew("up", "--api", api, "--mesh", "127.0.0.1:%d" % st.free_port(),
                                   "--mesh-netns", cls.mesh, "--pod-cidr", CIDR)
        assert rc == 0, (out, err)
        assert "gateway %s" % GATEWAY in out, out
        for name, code in (("ext.py", EXT_SERVER), ("web_banner.py", WEB_BANNER), ("ext_http.py", EXT_HTTP)):
            path = os.path.join(cls.e.tmp, name)
            with open(path, "w") as f:
                f.write(code)
            os.chmod(path, 0o644)

        # the external server, in the mesh namespace on the gateway address
        cls.ext_out = os.path.join(cls.e.tmp, "ext.out")
        with open(cls.ext_out, "w") as fo:
            cls.ext = st.spawn(["ip", "netns", "exec", cls.mesh, "/usr/bin/python3",
                                os.path.join(cls.e.tmp, "ext.py"), GATEWAY, str(EXT_PORT), "+BANNER external"],
                               stdout=fo, stderr=fo, env=cls.e.env())
        deadline = time.time() + 10
        while "listening" not in read(cls.ext_out):
            assert time.time() < deadline and cls.ext.poll() is None, read(cls.ext_out)
            time.sleep(0.05)
        # and an external web server beside it (HTTP_PORT, sniffed)
        cls.ext_http_out = os.path.join(cls.e.tmp, "ext_http.out")
        with open(cls.ext_http_out, "w") as fo:
            cls.ext_http = st.spawn(["ip", "netns", "exec", cls.mesh, "/usr/bin/python3",
                                     os.path.join(cls.e.tmp, "ext_http.py"), GATEWAY, str(HTTP_PORT)],
                                    stdout=fo, stderr=fo, env=cls.e.env())
        while "listening" not in read(cls.ext_http_out):
            assert time.time() < deadline and cls.ext_http.poll() is None, read(cls.ext_http_out)
            time.sleep(0.05)

        # the declared Service: web (HTTP on 8000, a server-first banner on 6379/tcp)
        cls.procs.append(("web", cls.e.run_joined(cls.server, "web", "8000,6379/tcp", [
            "/bin/sh", "-c", "/usr/bin/python3 %s & exec /usr/bin/python3 -m http.server 8000 --bind 127.0.0.1 "
            "--directory %s" % (os.path.join(cls.e.tmp, "web_banner.py"), cls.e.www)])))
        cls.procs.append(("client", cls.e.run_joined(cls.server, "client", None, ["sleep", "600"])))
        for svc, p in cls.procs:
            cls.pods[svc] = cls.e.wait_ready(svc, p, timeout=40)["name"]
        cls.wait_synced()
        sys.stderr.write("setUpClass: 2 pods ready and synced in %.1f s\n" % (time.time() - t0))

    @classmethod
    def teardown(cls):
        try:
            # SIGTERM: each `sinew run` stops its app, drains its proxy (which
            # exits, a sanitizer's report in its log) and removes its pod
            for _, p in cls.procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for _, p in cls.procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    pass
                st.stop_process(p)
            if cls.ext is not None:
                st.stop_process(cls.ext)
            if cls.ext_http is not None:
                st.stop_process(cls.ext_http)
            errs = "".join(read(p.err_path) for _, p in cls.procs)
            for name in cls.pods.values():   # the logs stay until `sinew down`
                log = cls.e.sinew("logs", name, "--proxy")[1]
                assert "drain: done" in log, log[-3000:]
                errs += log
            rc, out, err = cls.e.sinew("down")
            assert rc == 0, (out, err)
            errs += read(os.path.join(cls.e.home, "sinewd.log"))   # sinewd has exited: a leak report is in
            left = netns_list()
            assert [n for n in list(cls.pods.values()) + [cls.mesh] if n in left] == [], left
            assert not [n for n in left if SUFFIX in n], left
            assert host_links() == cls.links0, host_links() ^ cls.links0
            assert host_rules() == cls.rules0, set(host_rules()) ^ set(cls.rules0)
            for pat in st.SANITIZER_PATTERNS:
                assert pat not in errs, errs
        finally:
            cls.t.doCleanups()   # Env's sinew down again, the temp dir

    @classmethod
    def wait_synced(cls, timeout=15):
        """Both proxies run sinewd's latest revision."""
        deadline = time.time() + timeout
        out = ""
        while time.time() < deadline:
            rc, out, err = cls.e.sinew("proxy-status", "--server", cls.server)
            if rc == 0 and "STALE" not in out and "NACK" not in out and out.count("SYNCED") >= 2:
                return
            time.sleep(0.1)
        raise AssertionError("proxies did not sync: %s" % out)

    @classmethod
    def set_mode(cls, mode):
        rc, out, err = cls.e.sinew("apply", "-f", "-", "--server", cls.server, stdin=mesh_config(mode))
        assert rc == 0, (out, err)
        assert "configmap/istio" in out.lower(), out
        cls.wait_synced()
        cls.mode = mode

    # -- helpers -----------------------------------------------------------------

    def in_pod(self, svc, argv, timeout=30):
        return sh(["ip", "netns", "exec", self.pods[svc]] + argv, timeout=timeout)

    def tcp(self, host, port):
        r = self.in_pod("client", ["/usr/bin/python3", "-c", TCP_CLIENT, host, str(port)])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout.strip()

    def accepted(self):
        return [ln for ln in read(self.ext_out).splitlines() if ln.startswith("accepted ")]

    def metrics(self, svc):
        r = self.in_pod(svc, ["curl", "-sS", "--max-time", "5", "http://127.0.0.1:15020/metrics"])
        self.assertEqual(r.returncode, 0, r.stderr)
        return st.parse_metrics(r.stdout)

    def blocked(self):
        return st.metric_sum(self.metrics("client"), "sinew_blocked_egress_total")

    def proxy_log(self, svc):
        rc, out, err = self.e.sinew("logs", self.pods[svc], "--proxy")
        self.assertEqual(rc, 0, err)
        return out

    def curl_undeclared(self):
        """curl from the client pod for a host nothing declares, at the
        gateway's address on a sniffed (HTTP) port: -i, status last."""
        return self.in_pod("client", ["curl", "-sS", "-i", "--max-time", "10", "--resolve",
                                      "%s:%d:%s" % (UNDECLARED, HTTP_PORT, GATEWAY),
                                      "-w", "\nSTATUS %{http_code}",
                                      "http://%s:%d/some/path" % (UNDECLARED, HTTP_PORT)])

    def assert_http_passthrough(self):
        before = st.metric_sum(self.metrics("client"), "sinew_passthrough_total")
        r = self.curl_undeclared()
        self.assertTrue(r.stdout.endswith("STATUS 200"), r.stdout + r.stderr)
        client_ip = [p for p in self.e.ps() if p["name"] == self.pods["client"]][0]["address"]
        self.assertIn("EXTERNAL host=%s:%d path=/some/path peer=%s" % (UNDECLARED, HTTP_PORT, client_ip), r.stdout)
        self.assertNotIn("sinew-error", r.stdout.lower())
        self.assertGreater(st.metric_sum(self.metrics("client"), "sinew_passthrough_total"), before)

    def assert_passthrough(self):
        n = len(self.accepted())
        self.assertEqual(self.tcp(GATEWAY, EXT_PORT), "BANNER +BANNER external ECHO PING")
        acc = self.accepted()
        self.assertEqual(len(acc), n + 1, acc)
        # from the pod's own address: through the pod's network, not from the host
        client_ip = [p for p in self.e.ps() if p["name"] == self.pods["client"]][0]["address"]
        self.assertEqual(acc[-1], "accepted " + client_ip, acc)

    # -- tests -------------------------------------------------------------------

    def test_1_allow_any_passes_through(self):
        """No mesh config (ALLOW_ANY): opaque TCP to an address no Service
        declares goes to its original destination."""
        if self.mode not in (None, "ALLOW_ANY"):
            self.set_mode("ALLOW_ANY")
        self.assert_passthrough()
        self.assertEqual(self.blocked(), 0)
        log = self.proxy_log("client")
        self.assertNotIn("blocked", log)
        # HTTP for an undeclared host: passed through to its original
        # destination as Istio's PassthroughCluster, Host and path as sent
        self.assert_http_passthrough()
        self.assertEqual(self.blocked(), 0)
        # both counted in Istio's tcp metrics, as Istio's PassthroughCluster
        m = self.metrics("client")
        self.assertGreaterEqual(st.metric_sum(m, "sinew_tcp_connections_opened_total", reporter="source",
                                              destination_service_name="PassthroughCluster"), 2, m)

    def test_2_registry_only_blocks_opaque_tcp(self):
        """REGISTRY_ONLY: the same connection is closed before it reaches
        the server, logged and counted."""
        if self.mode != "REGISTRY_ONLY":
            self.set_mode("REGISTRY_ONLY")
        before = self.blocked()
        n = len(self.accepted())
        self.assertIn(self.tcp(GATEWAY, EXT_PORT), ("CLOSED", "RESET"))
        time.sleep(0.3)   # a passthrough connect would have reached the server by now
        self.assertEqual(len(self.accepted()), n, "the server saw a connection: %s" % self.accepted())
        self.assertEqual(self.blocked(), before + 1)
        log = self.proxy_log("client")
        lines = [ln for ln in log.splitlines() if "blocked" in ln]
        self.assertTrue(lines, log[-3000:])
        self.assertIn("to %s:%d: blocked: no Service or ServiceEntry declares it" % (GATEWAY, EXT_PORT), lines[-1])
        self.assertIn("REGISTRY_ONLY", lines[-1])
        self.assertRegex(lines[-1], r"\(ConfigMap istio-system/istio, \S+:7\)")
        # and again: every connection
        self.assertIn(self.tcp(GATEWAY, EXT_PORT), ("CLOSED", "RESET"))
        self.assertEqual(self.blocked(), before + 2)
        self.assertEqual(len(self.accepted()), n)

    def test_3_registry_only_http_and_declared_services(self):
        """REGISTRY_ONLY: HTTP for an undeclared host is 502 blocked_egress;
        the declared Service answers, over HTTP and opaque TCP."""
        if self.mode != "REGISTRY_ONLY":
            self.set_mode("REGISTRY_ONLY")
        before = self.blocked()
        r = self.curl_undeclared()
        out = r.stdout
        self.assertTrue(out.endswith("STATUS 502"), out + r.stderr)
        self.assertIn("sinew-error: blocked_egress", out.lower())
        self.assertIn(UNDECLARED, out)
        self.assertIn("REGISTRY_ONLY", out)
        self.assertRegex(out, r"\(ConfigMap istio-system/istio, \S+:7\)")   # the line of its mode
        self.assertEqual(self.blocked(), before + 1)
        # the declared Service: HTTP by name (the app may still be starting its listener)
        deadline = time.time() + 10
        while True:
            r = self.in_pod("client", ["curl", "-sS", "--max-time", "10", "-w", "\nSTATUS %{http_code}",
                                       "http://web:8000/index.txt"])
            if r.stdout.endswith("STATUS 200") or time.time() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(r.stdout, "hello from pod A\n\nSTATUS 200", r.stderr)
        r = self.in_pod("client", ["curl", "-sS", "--max-time", "10", "-w", "\nSTATUS %{http_code}",
                                   "http://web.default.svc.cluster.local:8000/index.txt"])
        self.assertEqual(r.stdout, "hello from pod A\n\nSTATUS 200", r.stderr)
        # and opaque TCP to its VIP (6379: server-first, in the opaque list)
        self.assertEqual(self.tcp("web", 6379), "BANNER +HELLO web ECHO +PONG")
        self.assertEqual(self.blocked(), before + 1)
        m = self.metrics("client")
        self.assertGreaterEqual(st.metric_sum(m, "sinew_requests_total",
                                              destination_service="web.default.svc.cluster.local"), 2)
        self.assertGreaterEqual(st.metric_sum(m, "sinew_tcp_outbound_mtls_connections_total"), 1)

    def test_4_allow_any_again(self):
        """Back to ALLOW_ANY: the proxies reload and pass through again."""
        if self.mode != "REGISTRY_ONLY":
            self.set_mode("REGISTRY_ONLY")
        self.assertIn(self.tcp(GATEWAY, EXT_PORT), ("CLOSED", "RESET"))
        self.set_mode("ALLOW_ANY")
        before = self.blocked()
        self.assert_passthrough()
        self.assert_http_passthrough()
        self.assertEqual(self.blocked(), before)
        rc, out, err = self.e.sinew("proxy-status", "-o", "json", "--server", self.server)
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(json.loads(out)), 2, out)

    def test_5_service_entry_addresses_declare_tcp(self):
        """REGISTRY_ONLY with a ServiceEntry whose addresses hold the
        external address: opaque TCP to it is declared, and goes to the
        entry's endpoint (here the same server)."""
        if self.mode != "REGISTRY_ONLY":
            self.set_mode("REGISTRY_ONLY")
        self.assertIn(self.tcp(GATEWAY, EXT_PORT), ("CLOSED", "RESET"))
        se = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext-db}
spec:
  hosts: [db.external.example]
  addresses: [%s/32]
  ports: [{number: %d, name: tcp-db, protocol: TCP}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{address: %s}]
""" % (GATEWAY, EXT_PORT, GATEWAY)
        rc, out, err = self.e.sinew("apply", "-f", "-", "--server", self.server, stdin=se)
        self.assertEqual(rc, 0, (out, err))
        try:
            self.wait_synced()
            before = self.blocked()
            n = len(self.accepted())
            self.assertEqual(self.tcp(GATEWAY, EXT_PORT), "BANNER +BANNER external ECHO PING")
            self.assertEqual(len(self.accepted()), n + 1)
            self.assertEqual(self.blocked(), before)
        finally:
            rc, out, err = self.e.sinew("delete", "serviceentry", "ext-db", "--server", self.server)
            self.assertEqual(rc, 0, (out, err))
            self.wait_synced()

    def test_6_egress_gateway(self):
        """Istio's egress gateway task (HTTP): an egress gateway pod
        (`sinew gateway run` as istio-egressgateway, labels
        istio=egressgateway) behind its Service, a ServiceEntry for the
        external host, a Gateway and the task's VirtualService -- the
        mesh's requests for the host go to the egress gateway, which calls
        out: the external server sees the gateway's address, not the
        client pod's."""
        out = os.path.join(self.e.tmp, "egress.out")
        err = os.path.join(self.e.tmp, "egress.err")
        with open(out, "w") as fo, open(err, "w") as fe:
            p = st.spawn([SINEW, "gateway", "run", "--service", "istio-egressgateway", "--labels",
                          "app=istio-egressgateway,istio=egressgateway", "--service-account",
                          "istio-egressgateway-service-account", "--server", self.server, "--ready-timeout", "30",
                          "--drain-timeout", "3"], stdout=fo, stderr=fe, env=self.e.env())
        p.err_path = err
        type(self).procs.append(("egress", p))
        deadline, gw = time.time() + 30, None
        while time.time() < deadline and gw is None:
            gw = next((q for q in self.e.ps() if q["service"] == "istio-egressgateway"
                       and q["proxy"]["state"] == "ready"), None)
            time.sleep(0.2)
        self.assertIsNotNone(gw, read(err))
        type(self).pods["egress"] = gw["name"]
        cfg = """apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  ports: [{name: http2, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external}
spec:
  hosts: [%(host)s]
  ports: [{number: %(port)d, name: http, protocol: HTTP}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{address: %(gw)s}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [%(host)s]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-for-external}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets: [{name: external}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-external-through-egress-gateway}
spec:
  hosts: [%(host)s]
  gateways: [istio-system/istio-egressgateway, mesh]
  http:
  - match: [{gateways: [mesh], port: %(port)d}]
    route:
    - destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: external, port: {number: 80}}
  - match: [{gateways: [istio-system/istio-egressgateway], port: 80}]
    route:
    - destination: {host: %(host)s, port: {number: %(port)d}}
""" % {"host": UNDECLARED, "port": HTTP_PORT, "gw": GATEWAY}
        rc, o, e = self.e.sinew("apply", "-f", "-", "--server", self.server, stdin=cfg)
        self.assertEqual(rc, 0, (o, e))
        deadline, r = time.time() + 15, None
        while time.time() < deadline:
            r = self.curl_undeclared()
            if r.stdout.endswith("STATUS 200"):
                break
            time.sleep(0.2)
        self.assertTrue(r.stdout.endswith("STATUS 200"), (r.stdout, r.stderr, read(err)[-2000:]))
        # from the egress gateway's address: it went out through the gateway
        self.assertIn("EXTERNAL host=%s:%d path=/some/path peer=%s" % (UNDECLARED, HTTP_PORT, gw["address"]),
                      r.stdout)
        # the client's sidecar routed it to the gateway (route metrics name the VirtualService)
        m = self.metrics("client")
        self.assertGreaterEqual(st.metric_sum(m, "sinew_route_requests_total",
                                              virtual_service="direct-external-through-egress-gateway"), 1,
                                [x for x in m if "route" in x[0]][:20])

    def test_7_egress_gateway_mutual_tls(self):
        """Istio's egress gateway with mutual TLS between the sidecar and
        the gateway: a Gateway server HTTPS on 443 with tls.mode
        ISTIO_MUTUAL and a DestinationRule for the gateway with
        ISTIO_MUTUAL on 443. The request still leaves through the gateway;
        the gateway's 443 takes only the mesh's mTLS (plain text from the
        mesh network is refused), so the sidecar's call was mTLS."""
        if "egress" not in self.pods:
            self.test_6_egress_gateway()
        gw = [q for q in self.e.ps() if q["name"] == self.pods["egress"]][0]
        cfg = """apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  ports: [{name: http2, port: 80}, {name: https, port: 443}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [%(host)s]
    tls: {mode: ISTIO_MUTUAL}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-for-external}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: external
    trafficPolicy:
      portLevelSettings:
      - port: {number: 443}
        tls: {mode: ISTIO_MUTUAL, sni: %(host)s}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-external-through-egress-gateway}
spec:
  hosts: [%(host)s]
  gateways: [istio-system/istio-egressgateway, mesh]
  http:
  - match: [{gateways: [mesh], port: %(port)d}]
    route:
    - destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: external, port: {number: 443}}
  - match: [{gateways: [istio-system/istio-egressgateway], port: 443}]
    route:
    - destination: {host: %(host)s, port: {number: %(port)d}}
""" % {"host": UNDECLARED, "port": HTTP_PORT}
        rc, o, e = self.e.sinew("apply", "-f", "-", "--server", self.server, stdin=cfg)
        self.assertEqual(rc, 0, (o, e))
        deadline, r = time.time() + 15, None
        while time.time() < deadline:
            r = self.curl_undeclared()
            if r.stdout.endswith("STATUS 200") and "peer=%s" % gw["address"] in r.stdout:
                break
            time.sleep(0.2)
        self.assertIn("EXTERNAL host=%s:%d path=/some/path peer=%s" % (UNDECLARED, HTTP_PORT, gw["address"]),
                      r.stdout, (r.stderr, self.proxy_log("egress")[-3000:], self.proxy_log("client")[-2000:]))
        # the gateway's 443 in plain text, from the mesh network: refused
        plain = sh(["ip", "netns", "exec", self.mesh, "curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w",
                    "%{http_code}", "-H", "Host: %s" % UNDECLARED, "http://%s:443/x" % gw["address"]])
        self.assertNotEqual(plain.stdout, "200", plain)

    def test_8_tcp_traffic_shifting(self):
        """Istio's TCP traffic shifting task: tcp-echo v1 and v2 (a declared
        TCP port), a DestinationRule with their subsets and a VirtualService
        tcp route, 80/20 then 0/100: the client pod's connections to
        tcp-echo:9000 split as the weights say."""
        path = os.path.join(self.e.tmp, "tcp_echo.py")   # examples/tcp-echo's, where the pods' uid reads it
        with open(os.path.join(st.SRC, "examples", "tcp-echo", "tcp_echo.py")) as f:
            st.write_file(path, f.read())
        os.chmod(path, 0o644)
        for v in ("v1", "v2"):
            err = os.path.join(self.e.tmp, "tcp-echo-%s.err" % v)
            with open(err, "w") as fe:
                p = st.spawn([SINEW, "run", "--service", "tcp-echo", "--labels", "app=tcp-echo,version=" + v,
                              "--service-account", "tcp-echo", "--port", "9000/tcp", "--server", self.server,
                              "--ready-timeout", "30", "--drain-timeout", "3", "--", "/usr/bin/python3", path, v],
                             stdout=subprocess.DEVNULL, stderr=fe, env=self.e.env())
            p.err_path = err
            type(self).procs.append(("tcp-echo-" + v, p))
        deadline, ready = time.time() + 40, []
        while time.time() < deadline and len(ready) < 2:
            ready = [q for q in self.e.ps() if q["service"] == "tcp-echo" and q["proxy"]["state"] == "ready"
                     and q["app"]["running"]]
            time.sleep(0.2)
        self.assertEqual(len(ready), 2, self.e.ps())
        for q in ready:
            type(self).pods["tcp-echo-" + q["name"]] = q["name"]
            # the app's own listener (a slow machine starts python late)
            deadline = time.time() + 20
            while time.time() < deadline:
                r = sh(["ip", "netns", "exec", q["name"], "ss", "-ltnH", "sport = :9000"])
                if r.stdout.strip():
                    break
                time.sleep(0.1)
            self.assertTrue(r.stdout.strip(), "tcp-echo in %s does not listen on 9000" % q["name"])

        def shift(w1, w2):
            cfg = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-echo-destination}
spec:
  host: tcp-echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo}
spec:
  hosts: [tcp-echo]
  tcp:
  - match: [{port: 9000}]
    route:
    - destination: {host: tcp-echo, port: {number: 9000}, subset: v1}
      weight: %d
    - destination: {host: tcp-echo, port: {number: 9000}, subset: v2}
      weight: %d
""" % (w1, w2)
            rc, o, e = self.e.sinew("apply", "-f", "-", "--server", self.server, stdin=cfg)
            self.assertEqual(rc, 0, (o, e))
            self.wait_synced()
            # both subsets' endpoints in the client's configuration (the
            # pods' registrations may reach it after the route does)
            deadline, dump = time.time() + 15, {}
            while time.time() < deadline:
                r = self.in_pod("client", ["curl", "-sS", "--max-time", "5", "http://127.0.0.1:15020/config_dump"])
                try:
                    dump = json.loads(r.stdout)
                except ValueError:
                    dump = {}
                eps = {c["name"]: len(c.get("endpoints", [])) for c in dump.get("clusters", [])}
                if all(eps.get("outbound|9000|%s|tcp-echo.default.svc.cluster.local" % v, 0) > 0
                       for v in ("v1", "v2")):
                    break
                time.sleep(0.2)

        def count(n):
            client = ("import socket\nseen = {}\n"
                      "for i in range(%d):\n"
                      "    c = socket.create_connection(('tcp-echo', 9000), timeout=5)\n"
                      "    c.sendall(b'hello\\n')\n"
                      "    b = b''\n"
                      "    while not b.endswith(b'\\n'):\n"
                      "        d = c.recv(100)\n"
                      "        if not d: break\n"
                      "        b += d\n"
                      "    c.close()\n"
                      "    k = b.split(b' ')[0].decode() or 'none'\n"
                      "    seen[k] = seen.get(k, 0) + 1\n"
                      "print(seen)\n" % n)
            r = self.in_pod("client", ["/usr/bin/python3", "-c", client], timeout=120)
            self.assertEqual(r.returncode, 0, (r.stdout + r.stderr, self.proxy_log("client")[-3000:]))
            return eval(r.stdout.strip())

        shift(80, 20)
        seen = count(100)
        self.assertEqual(seen.get("v1", 0) + seen.get("v2", 0), 100, seen)
        self.assertTrue(8 <= seen.get("v2", 0) <= 35, seen)
        shift(0, 100)
        self.assertEqual(count(20), {"v2": 20})
        # Istio's tcp metrics on both sides: the client's proxy reports as
        # the source, each tcp-echo proxy as the destination, with the
        # principals mutual TLS proved
        fqdn = "tcp-echo.default.svc.cluster.local"
        m = self.metrics("client")
        src = [(lab, v) for (name, lab, v) in m if name == "sinew_tcp_connections_opened_total"
               and lab.get("destination_service") == fqdn]
        self.assertTrue(src, [x for x in m if x[0].startswith("sinew_tcp")])
        self.assertEqual({lab["reporter"] for lab, _ in src}, {"source"})
        self.assertGreaterEqual(sum(v for lab, v in src if lab["destination_version"] == "v2"),
                                20 + seen.get("v2", 0))
        self.assertTrue(all(lab["destination_principal"].startswith("spiffe://") for lab, _ in src), src)
        deadline, got = time.time() + 10, []
        while time.time() < deadline:
            got = []
            for key in [k for k in self.pods if k.startswith("tcp-echo-")]:
                for (name, lab, v) in self.metrics(key):
                    if name.startswith("sinew_tcp_connections_") and lab.get("reporter") == "destination":
                        got.append((name, lab, v))
            opened = sum(v for (n, _, v) in got if n.endswith("opened_total"))
            closed = sum(v for (n, _, v) in got if n.endswith("closed_total"))
            if opened >= 120 and closed == opened:
                break
            time.sleep(0.2)
        self.assertGreaterEqual(opened, 120, got)
        self.assertEqual(closed, opened, got)
        self.assertEqual({lab["connection_security_policy"] for (_, lab, _) in got}, {"mutual_tls"}, got)
        self.assertTrue(all(lab["source_principal"].startswith("spiffe://") for (_, lab, _) in got), got)

    def test_9_tls_by_server_name(self):
        """TLS to an address the mesh does not know: the sidecar reads the
        ClientHello's server name (as Istio's listeners match by SNI).
        Under REGISTRY_ONLY, https to an undeclared name is refused; a
        ServiceEntry for the name (no addresses) declares it, and the
        client's TLS goes through whole (curl verifies the server's
        certificate). Then Istio's "egress gateway for HTTPS traffic":
        tls routes send the mesh's TLS for the name to the egress gateway's
        PASSTHROUGH port, and the gateway on to the server, which sees the
        gateway's address."""
        if "egress" not in self.pods:
            self.test_6_egress_gateway()
        gw = [q for q in self.e.ps() if q["name"] == self.pods["egress"]][0]
        client_ip = [q for q in self.e.ps() if q["name"] == self.pods["client"]][0]["address"]
        d = os.path.join(self.e.tmp, "tls-ext")
        os.mkdir(d)
        pki = make_pki(d)
        path = os.path.join(self.e.tmp, "ext_tls.py")
        st.write_file(path, EXT_HTTP.replace("print(\"listening\", flush=True)",
                                             "import ssl\nc = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
                                             "c.load_cert_chain(sys.argv[3], sys.argv[4])\n"
                                             "s.socket = c.wrap_socket(s.socket, server_side=True)\n"
                                             "print(\"listening\", flush=True)"))
        out = os.path.join(self.e.tmp, "ext_tls.out")
        with open(out, "w") as fo:
            srv = st.spawn(["ip", "netns", "exec", self.mesh, "/usr/bin/python3", path, GATEWAY, str(TLS_PORT),
                            pki["tls.crt"], pki["tls.key"]], stdout=fo, stderr=fo, env=self.e.env())
        self.addCleanup(st.stop_process, srv)
        deadline = time.time() + 10
        while "listening" not in read(out):
            self.assertTrue(time.time() < deadline and srv.poll() is None, read(out))
            time.sleep(0.05)

        def get():
            r = self.in_pod("client", ["curl", "-sS", "--max-time", "10", "--cacert", pki["ca.crt"], "--resolve",
                                       "%s:%d:%s" % (UNDECLARED, TLS_PORT, GATEWAY),
                                       "https://%s:%d/tls" % (UNDECLARED, TLS_PORT)])
            return r

        if self.mode != "REGISTRY_ONLY":
            self.set_mode("REGISTRY_ONLY")
        before = self.blocked()
        r = get()
        self.assertNotEqual(r.returncode, 0, r)
        self.assertGreater(self.blocked(), before)
        se = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external}
spec:
  hosts: [%(host)s]
  ports: [{number: %(http)d, name: http, protocol: HTTP}, {number: %(tls)d, name: tls, protocol: TLS}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{address: %(gw)s}]
""" % {"host": UNDECLARED, "http": HTTP_PORT, "tls": TLS_PORT, "gw": GATEWAY}
        rc, o, e = self.e.sinew("apply", "-f", "-", "--server", self.server, stdin=se)
        self.assertEqual(rc, 0, (o, e))
        self.wait_synced()
        r = get()
        self.assertEqual(r.returncode, 0, (r, self.proxy_log("client")[-2000:]))
        self.assertIn("EXTERNAL host=%s:%d path=/tls peer=%s" % (UNDECLARED, TLS_PORT, client_ip), r.stdout)

        # through the egress gateway, the TLS passed through at both hops
        cfg = """apiVersion: v1
kind: Service
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  ports: [{name: http2, port: 80}, {name: tls, port: 443}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 443, name: tls, protocol: TLS}
    hosts: [%(host)s]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-for-external}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets: [{name: external}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-external-through-egress-gateway}
spec:
  hosts: [%(host)s]
  gateways: [istio-system/istio-egressgateway, mesh]
  tls:
  - match: [{gateways: [mesh], port: %(tls)d, sniHosts: [%(host)s]}]
    route:
    - destination: {host: istio-egressgateway.istio-system.svc.cluster.local, subset: external, port: {number: 443}}
  - match: [{gateways: [istio-system/istio-egressgateway], port: 443, sniHosts: [%(host)s]}]
    route:
    - destination: {host: %(host)s, port: {number: %(tls)d}}
""" % {"host": UNDECLARED, "tls": TLS_PORT}
        rc, o, e = self.e.sinew("apply", "-f", "-", "--server", self.server, stdin=cfg)
        self.assertEqual(rc, 0, (o, e))
        self.wait_synced()
        deadline = time.time() + 15
        while time.time() < deadline:
            r = get()
            if r.returncode == 0 and "peer=%s" % gw["address"] in r.stdout:
                break
            time.sleep(0.2)
        self.assertIn("EXTERNAL host=%s:%d path=/tls peer=%s" % (UNDECLARED, TLS_PORT, gw["address"]), r.stdout,
                      (r, self.proxy_log("egress")[-2000:], self.proxy_log("client")[-2000:]))


if __name__ == "__main__":
    st.main()
