#!/usr/bin/python3
"""An ingress gateway in file mode: `sinew-proxy --gateway` with Istio's
Gateway and VirtualServices bound to it (spec.gateways), real clients.

- it listens on the ports of the Gateways whose selector matches its
  --labels, and on no other; an HTTPS server (not served yet) is warned
  with its line and not opened;
- requests route by the bound VirtualServices, hosts as the server and the
  VirtualService meet (a "*.example.com" server admits book.example.com);
  a host no VirtualService routes there is 404 no_route naming the port;
- tls.httpsRedirect answers 301 to https://;
- HTTP/2 (prior knowledge) on a gateway port;
- a rule whose match is for the mesh only (match.gateways: [mesh]) is not
  applied at the gateway, and the gateway-bound VirtualService does not
  route a sidecar's requests;
- a reload moves the port: the old one closes, the new one opens;
- Istio's bookinfo-gateway.yaml, unchanged, serves /productpage at any
  authority, an IP address included."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

GW_ARGS = ["--gateway", "--gateway-address", st.LOOPBACK, "--labels", "istio=ingressgateway,app=ingress"]


def gateway_yaml(http_port, redirect_port, https_port):
    return """apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: edge
  namespace: istio-system
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: %d, name: http, protocol: HTTP}
    hosts: ["*/*.example.com"]
  - port: {number: %d, name: http-redirect, protocol: HTTP}
    hosts: ["*"]
    tls: {httpsRedirect: true}
  - port: {number: %d, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: edge-cert}
""" % (http_port, redirect_port, https_port)


VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: book
spec:
  hosts: [book.example.com]
  gateways: [istio-system/edge]
  http:
  - match: [{uri: {prefix: /mesh-only}, gateways: [mesh]}]
    route: [{destination: {host: reviews}}]
  - match: [{uri: {prefix: /reviews}}]
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: productpage}}]
"""


def refused(port):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect((st.LOOPBACK, port))
        return False
    except ConnectionRefusedError:
        return True
    finally:
        s.close()


class Gateway(unittest.TestCase):

    def setUp(self):
        self.pp = st.start_backend(self, "productpage")
        self.rv = st.start_backend(self, "reviews")
        self.registry = st.registry_yaml({("productpage", "v1"): self.pp.port,
                                          ("reviews", "v1"): self.rv.port})
        self.http, self.redir, self.https = st.free_port(), st.free_port(), st.free_port()

    def start(self, text, args=GW_ARGS, outbound=False):
        self.dir = st.make_tempdir(self)
        self.path = os.path.join(self.dir, "sinew.yaml")
        st.write_file(self.path, text)
        return st.start_proxy(self, config_path=self.path, workdir=self.dir, outbound=outbound, args=args)

    def wait_listening(self, port, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not refused(port):
                return True
            time.sleep(0.05)
        return False

    def test_routes_by_bound_virtual_services(self):
        p = self.start(st.join_docs(self.registry, gateway_yaml(self.http, self.redir, self.https), VS))
        self.assertTrue(self.wait_listening(self.http), p.stderr()[-3000:])
        # the bound VirtualService, at the host the server admits
        r = st.request(self.http, "GET", "/page?x=1", host="book.example.com")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("x-backend-service"), "productpage")
        self.assertEqual(r.json()["path"], "/page?x=1")
        r = st.request(self.http, "GET", "/reviews/1", host="Book.Example.com:%d" % self.http)
        self.assertEqual((r.status, r.header("x-backend-service")), (200, "reviews"), r)
        # match.gateways [mesh]: not at the gateway; the next rule takes it
        r = st.request(self.http, "GET", "/mesh-only", host="book.example.com")
        self.assertEqual(r.header("x-backend-service"), "productpage", r)
        # a host nothing routes on this port
        r = st.request(self.http, "GET", "/", host="other.example.com")
        self.assertEqual((r.status, r.header("sinew-error")), (404, "no_route"), r)
        self.assertIn("port %d" % self.http, r.body.decode())
        r = st.request(self.http, "GET", "/", host="productpage")
        self.assertEqual(r.status, 404, r)
        # HTTP/2 with prior knowledge on the same port
        out = st.curl(["-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                       "-H", "Host: book.example.com", "http://%s:%d/h2" % (st.LOOPBACK, self.http)])
        self.assertEqual(out.stdout.strip(), "200 2", out)
        # httpsRedirect: 301 to https, path and query kept, port dropped
        r = st.request(self.redir, "GET", "/a/b?q=1", host="book.example.com:%d" % self.redir)
        self.assertEqual(r.status, 301, r)
        self.assertEqual(r.header("location"), "https://book.example.com/a/b?q=1")
        # HTTPS is not served yet: warned with its line, not opened
        self.assertTrue(refused(self.https))
        err = p.stderr()
        line = [n for n, ln in enumerate(open(self.path).read().splitlines(), 1)
                if "name: https" in ln][0]
        self.assertRegex(err, r"%s:%d:\d+: warning: Gateway istio-system/edge: spec\.servers\[2\]\.port\.protocol: "
                         r"protocol HTTPS is not served" % (self.path, line))
        # the metrics carry the route of the bound VirtualService
        m = p.metrics()
        n = st.metric_sum(m, "sinew_route_requests_total", virtual_service="book")
        self.assertGreaterEqual(n, 3, [s for s in m if "route" in s[0]][:10])

    def test_sidecar_ignores_gateway_bound_rules(self):
        """The same file in a sidecar (no --gateway): no gateway port, and
        book.example.com is not a host it routes."""
        p = self.start(st.join_docs(self.registry, gateway_yaml(self.http, self.redir, self.https), VS),
                       args=[], outbound=True)
        self.assertTrue(refused(self.http))
        r = st.request(p.outbound_port, "GET", "/", host="book.example.com")
        self.assertEqual((r.status, r.header("sinew-error")), (404, "no_route"), r)
        r = st.request(p.outbound_port, "GET", "/", host="productpage")
        self.assertEqual(r.status, 200, r)

    def test_labels_select(self):
        """A gateway proxy whose labels the selector does not match
        listens nowhere, and says so nowhere it should not."""
        p = self.start(st.join_docs(self.registry, gateway_yaml(self.http, self.redir, self.https), VS),
                       args=["--gateway", "--gateway-address", st.LOOPBACK, "--labels", "istio=egressgateway"])
        self.assertTrue(p.alive())
        self.assertTrue(refused(self.http))
        self.assertTrue(refused(self.redir))

    def test_reload_moves_the_port(self):
        p = self.start(st.join_docs(self.registry, gateway_yaml(self.http, self.redir, self.https), VS))
        self.assertTrue(self.wait_listening(self.http), p.stderr()[-3000:])
        moved = st.free_port()
        st.write_file(self.path, st.join_docs(self.registry, gateway_yaml(moved, self.redir, self.https), VS))
        self.assertTrue(self.wait_listening(moved), p.stderr()[-3000:])
        deadline = time.time() + 5
        while time.time() < deadline and not refused(self.http):
            time.sleep(0.05)
        self.assertTrue(refused(self.http), "the old port still listens")
        r = st.request(moved, "GET", "/x", host="book.example.com")
        self.assertEqual((r.status, r.header("x-backend-service")), (200, "productpage"), r)

    def test_bookinfo_gateway_file_unchanged(self):
        """Istio's bookinfo-gateway.yaml: port 8080, hosts "*". The test
        moves only the port (8080 may be taken on this machine) by
        rewriting the number in a copy, nothing else."""
        text = st.bookinfo_file("bookinfo-gateway.yaml")
        self.assertIn("number: 8080", text)
        port = st.free_port()
        text = text.replace("number: 8080", "number: %d" % port)
        p = self.start(st.join_docs(self.registry, text), args=GW_ARGS)
        self.assertTrue(self.wait_listening(port), p.stderr()[-3000:])
        for host in ("%s:%d" % (st.LOOPBACK, port), "bookinfo.example.com", "localhost"):
            r = st.request(port, "GET", "/productpage", host=host)
            self.assertEqual((r.status, r.header("x-backend-service")), (200, "productpage"), (host, r))
        r = st.request(port, "GET", "/api/v1/products/1", host="x")
        self.assertEqual(r.status, 200, r)
        r = st.request(port, "GET", "/admin", host="x")
        self.assertEqual((r.status, r.header("sinew-error")), (404, "no_route"), r)
        self.assertNotIn("warning", p.stderr().lower())


if __name__ == "__main__":
    st.main()
