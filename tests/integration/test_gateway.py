#!/usr/bin/python3
"""An ingress gateway in file mode: `sinew-proxy --gateway` with Istio's
Gateway and VirtualServices bound to it (spec.gateways), real clients.

- it listens on the ports of the Gateways whose selector matches its
  --labels, and on no other; an HTTPS server whose certificate is missing
  is not opened, and the log says which file;
- requests route by the bound VirtualServices, hosts as the server and the
  VirtualService meet (a "*.example.com" server admits book.example.com);
  a host no VirtualService routes there is 404 no_route naming the port;
- tls.httpsRedirect answers 301 to https://;
- HTTP/2 (prior knowledge) on a gateway port;
- a rule whose match is for the mesh only (match.gateways: [mesh]) is not
  applied at the gateway, and the gateway-bound VirtualService does not
  route a sidecar's requests;
- HTTPS servers: tls.mode SIMPLE (HTTP/2 and HTTP/1.1 by ALPN, TLS 1.2 and
  1.3, x-forwarded-proto https) and MUTUAL (a client certificate the CA
  signed, else refused), credentialName from --credentials-dir, and fail
  closed when the certificate does not load or a client check cannot be
  made;
- a reload moves the port: the old one closes, the new one opens;
- Istio's bookinfo-gateway.yaml, unchanged, serves /productpage at any
  authority, an IP address included;
- TLS passthrough by server name, and a TCP server whose tcp[] route
  shifts connections by weight (Istio's TCP traffic shifting task)."""

import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
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
        # HTTPS with credentialName edge-cert, not in --credentials-dir: the
        # port stays closed and the log names the file it looked for
        self.assertTrue(refused(self.https))
        self.assertIn("port %d" % self.https, p.stderr())
        self.assertIn("/edge-cert/tls.crt: No such file or directory", p.stderr())
        # the metrics carry the route of the bound VirtualService
        m = p.metrics()
        n = st.metric_sum(m, "sinew_route_requests_total", virtual_service="book")
        self.assertGreaterEqual(n, 3, [s for s in m if "route" in s[0]][:10])

    def test_explain_agrees_with_the_gateway(self):
        """`sinew explain --gateway` on the same file says what the gateway
        does: the backend of a routed request, the 404 of a host nothing
        routes on the port, the redirect port, a port nothing opens."""
        p = self.start(st.join_docs(self.registry, gateway_yaml(self.http, self.redir, self.https), VS))
        self.assertTrue(self.wait_listening(self.http), p.stderr()[-3000:])
        cases = [("book.example.com", "/page"), ("book.example.com", "/reviews/1"),
                 ("book.example.com", "/mesh-only"), ("other.example.com", "/"), ("productpage", "/")]
        for host, path in cases:
            with self.subTest(host=host, path=path):
                out = subprocess.run([os.path.join(st.BIN, "sinew"), "explain", "--gateway", "-f", self.path,
                                      "-o", "json", "http://%s:%d%s" % (host, self.http, path)],
                                     capture_output=True, text=True, timeout=10)
                doc = json.loads(out.stdout)
                r = st.request(self.http, "GET", path, host=host)
                if doc["routed"]:
                    self.assertEqual(out.returncode, 0, out)
                    self.assertEqual(doc["gateway"]["port"], self.http)
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual([d["cluster"] for d in doc["destinations"]],
                                     ["outbound|9080||%s.default.svc.cluster.local" % r.header("x-backend-service")])
                else:
                    self.assertEqual(out.returncode, 1, out)
                    self.assertEqual((r.status, r.header("sinew-error")), (doc["status"], doc["error"]), doc)
        out = subprocess.run([os.path.join(st.BIN, "sinew"), "explain", "--gateway", "-f", self.path,
                              "http://book.example.com:%d/a" % self.redir], capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out)
        self.assertIn("redirects every request to https://", out.stdout)
        closed = st.closed_port()
        out = subprocess.run([os.path.join(st.BIN, "sinew"), "explain", "--gateway", "-f", self.path,
                              "http://book.example.com:%d/" % closed], capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 1, out)
        self.assertIn("opens port %d: a connection there is refused" % closed, out.stdout)
        self.assertTrue(refused(closed))

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


def make_pki(d):
    """A CA, a server certificate for *.example.com and a client
    certificate, with the openssl command line (RSA server key, as many
    real sites have; EC client key)."""
    def sh(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True)
    sh("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
       "-out", "ca.crt", "-days", "2", "-subj", "/CN=test ca")
    sh("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "srv.csr", "-subj", "/CN=book.example.com")
    with open(os.path.join(d, "srv.ext"), "w") as f:
        f.write("subjectAltName=DNS:book.example.com,DNS:*.example.com\n")
    sh("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "tls.crt",
       "-days", "2", "-extfile", "srv.ext")
    sh("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "client.key",
       "-out", "client.csr", "-subj", "/CN=client")
    sh("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
       "-out", "client.crt", "-days", "2")
    return {k: os.path.join(d, k) for k in ("ca.crt", "tls.crt", "tls.key", "client.crt", "client.key")}


def https_gateway(port, mode, pki=None, credential=None, extra=""):
    if credential:
        tls = "{mode: %s, credentialName: %s%s}" % (mode, credential, extra)
    else:
        tls = "{mode: %s, serverCertificate: %s, privateKey: %s%s%s}" % (
            mode, pki["tls.crt"], pki["tls.key"],
            ", caCertificates: %s" % pki["ca.crt"] if mode == "MUTUAL" else "", extra)
    return """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %d, name: https, protocol: HTTPS}
    hosts: ["*/*.example.com"]
    tls: %s
""" % (port, tls)


class GatewayTLS(unittest.TestCase):
    """HTTPS servers: tls.mode SIMPLE and MUTUAL terminated by the gateway
    with PEM files or credentialName, curl as the client."""

    def setUp(self):
        self.pp = st.start_backend(self, "productpage")
        self.registry = st.registry_yaml({("productpage", "v1"): self.pp.port}, services=["reviews"])
        self.dir = st.make_tempdir(self)
        self.pki = make_pki(self.dir)
        self.port = st.free_port()

    def start(self, gateway, args=()):
        path = os.path.join(self.dir, "sinew.yaml")
        st.write_file(path, st.join_docs(self.registry, gateway, VS))
        return st.start_proxy(self, config_path=path, workdir=self.dir, outbound=False, args=GW_ARGS + list(args))

    def curl(self, *args):
        return st.curl(["--max-time", "10", "--cacert", self.pki["ca.crt"], "--resolve",
                        "book.example.com:%d:%s" % (self.port, st.LOOPBACK), "-o", "/dev/null",
                        "-w", "%{http_code} %{http_version}"] + list(args) +
                       ["https://book.example.com:%d/x" % self.port])

    def wait_listening(self):
        deadline = time.time() + 5
        while time.time() < deadline and refused(self.port):
            time.sleep(0.05)
        return not refused(self.port)

    def test_simple(self):
        p = self.start(https_gateway(self.port, "SIMPLE", self.pki))
        self.assertTrue(self.wait_listening(), p.stderr()[-2000:])
        r = self.curl("--http2")
        self.assertEqual(r.stdout, "200 2", r)
        r = self.curl("--http1.1", "--tlsv1.2", "--tls-max", "1.2")
        self.assertEqual(r.stdout, "200 1.1", r)
        # the app learns the client's scheme; the client's own claim is replaced
        out = st.curl(["--max-time", "10", "--cacert", self.pki["ca.crt"], "-H", "x-forwarded-proto: gopher",
                       "--resolve", "book.example.com:%d:%s" % (self.port, st.LOOPBACK),
                       "https://book.example.com:%d/x" % self.port])
        self.assertEqual(json.loads(out.stdout)["headers"].get("x-forwarded-proto"), "https", out)
        # TLS 1.1 and plain text are refused
        r = self.curl("--tlsv1.1", "--tls-max", "1.1")
        self.assertNotEqual(r.returncode, 0, r)
        r = st.curl(["--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                     "http://%s:%d/x" % (st.LOOPBACK, self.port)])
        self.assertNotEqual(r.stdout, "200", r)

    def test_mutual(self):
        p = self.start(https_gateway(self.port, "MUTUAL", self.pki))
        self.assertTrue(self.wait_listening(), p.stderr()[-2000:])
        r = self.curl()
        self.assertNotEqual(r.returncode, 0, "a client without a certificate got in: %r" % r)
        r = self.curl("--cert", self.pki["client.crt"], "--key", self.pki["client.key"])
        self.assertEqual(r.stdout, "200 2", r)
        # a certificate another CA signed is refused
        other = os.path.join(self.dir, "other")
        os.mkdir(other)
        o = make_pki(other)
        r = self.curl("--cert", o["client.crt"], "--key", o["client.key"])
        self.assertNotEqual(r.returncode, 0, r)

    def test_credential_name_and_fail_closed(self):
        creds = os.path.join(self.dir, "creds")
        os.makedirs(os.path.join(creds, "edge-cert"))
        for k in ("tls.crt", "tls.key", "ca.crt"):
            shutil.copy(self.pki[k], os.path.join(creds, "edge-cert", k))
        p = self.start(https_gateway(self.port, "SIMPLE", credential="edge-cert"), ["--credentials-dir", creds])
        self.assertTrue(self.wait_listening(), p.stderr()[-2000:])
        self.assertEqual(self.curl().stdout, "200 2")
        p.stop()
        # a credential that is not there: the port stays closed, and the
        # log names the file
        port2 = st.free_port()
        self.port = port2
        p = self.start(https_gateway(port2, "SIMPLE", credential="nosuch"), ["--credentials-dir", creds])
        time.sleep(0.5)
        self.assertTrue(refused(port2))
        self.assertIn("%s/nosuch/tls.crt" % creds, p.stderr())
        # subjectAltNames on MUTUAL is a check Sinew does not make: not opened
        port3 = st.free_port()
        self.port = port3
        p = self.start(https_gateway(port3, "MUTUAL", self.pki, extra=", subjectAltNames: [client]"))
        time.sleep(0.5)
        self.assertTrue(refused(port3))
        self.assertIn("subjectAltNames is not implemented", p.stderr())


    def test_certificate_by_server_name(self):
        """Istio's "TLS ingress gateway for multiple hosts": two HTTPS
        servers on one port, each host with its own credentialName; the
        ClientHello's server name picks the certificate (each from its own
        CA here, so a wrong pick fails verification), and a name neither
        server has gets the first server's."""
        creds = os.path.join(self.dir, "creds")
        pkis = {}
        for name in ("a", "b"):
            d = os.path.join(self.dir, "pki-" + name)
            os.mkdir(d)
            pkis[name] = make_pki(d)
            os.makedirs(os.path.join(creds, name + "-cert"))
            for k in ("tls.crt", "tls.key", "ca.crt"):
                shutil.copy(pkis[name][k], os.path.join(creds, name + "-cert", k))
        gw = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %d, name: https-a, protocol: HTTPS}
    hosts: ["*/a.example.com"]
    tls: {mode: SIMPLE, credentialName: a-cert}
  - port: {number: %d, name: https-b, protocol: HTTPS}
    hosts: ["*/b.example.com", "*/*.b.example.com"]
    tls: {mode: SIMPLE, credentialName: b-cert}
""" % (self.port, self.port)
        self.port_a = self.port
        vs = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ab}
spec:
  hosts: [a.example.com, b.example.com, c.example.com]
  gateways: [istio-system/edge]
  http: [{route: [{destination: {host: productpage}}]}]
"""
        path = os.path.join(self.dir, "sinew.yaml")
        st.write_file(path, st.join_docs(self.registry, gw, vs))
        p = st.start_proxy(self, config_path=path, workdir=self.dir, outbound=False,
                           args=GW_ARGS + ["--credentials-dir", creds])
        self.assertTrue(self.wait_listening(), p.stderr()[-2000:])

        def get(host, ca):
            return st.curl(["--max-time", "10", "--cacert", ca, "--resolve", "%s:%d:%s" % (host, self.port, st.LOOPBACK),
                            "-o", "/dev/null", "-w", "%{http_code}", "https://%s:%d/x" % (host, self.port)])
        self.assertEqual(get("a.example.com", pkis["a"]["ca.crt"]).stdout, "200")
        self.assertEqual(get("b.example.com", pkis["b"]["ca.crt"]).stdout, "200")
        r = get("b.example.com", pkis["a"]["ca.crt"])
        self.assertEqual(r.returncode, 60, r)   # b's certificate is not a's CA's
        # x.b.example.com: the "*.b.example.com" host's; c.example.com: no
        # server host of its own, the first server's certificate (and then
        # 404, as no server admits that host)
        # (b's certificate names *.example.com, one label: curl refuses the
        # name, having verified the chain with b's CA -- so it was b's)
        r = get("x.b.example.com", pkis["b"]["ca.crt"])
        self.assertEqual(r.returncode, 60, r)
        self.assertIn("subject name", r.stderr)
        r = get("c.example.com", pkis["a"]["ca.crt"])
        self.assertEqual((r.returncode, r.stdout), (0, "404"), r)
        self.assertNotIn("warning", p.stderr().lower())
        p.stop()

        # MUTUAL: each host verifies clients with its own credential's CA
        self.port = st.free_port()
        st.write_file(path, st.join_docs(self.registry, gw.replace("SIMPLE", "MUTUAL").replace(
            "number: %d" % (self.port_a), "number: %d" % self.port), vs))
        p = st.start_proxy(self, config_path=path, workdir=self.dir, outbound=False,
                           args=GW_ARGS + ["--credentials-dir", creds])
        self.assertTrue(self.wait_listening(), p.stderr()[-2000:])

        def mget(host, who):
            return st.curl(["--max-time", "10", "--cacert", pkis[host]["ca.crt"], "--cert", pkis[who]["client.crt"],
                            "--key", pkis[who]["client.key"], "--resolve",
                            "%s.example.com:%d:%s" % (host, self.port, st.LOOPBACK), "-o", "/dev/null", "-w",
                            "%{http_code}", "https://%s.example.com:%d/x" % (host, self.port)])
        self.assertEqual(mget("a", "a").stdout, "200")
        self.assertEqual(mget("b", "b").stdout, "200")
        self.assertNotEqual(mget("b", "a").returncode, 0)   # a's client at b: b's CA refuses it
        self.assertNotEqual(mget("a", "b").returncode, 0)


class GatewayPassthrough(unittest.TestCase):
    """tls.mode PASSTHROUGH: the gateway reads the ClientHello's server
    name and sends the connection, its TLS untouched, where the bound
    VirtualService's tls[] route for that name says; curl verifies the
    backend's own certificate end to end."""

    def setUp(self):
        self.dir = st.make_tempdir(self)
        self.pki = make_pki(self.dir)
        self.backends = {}
        for who in ("a", "b"):
            d = os.path.join(self.dir, who)
            os.mkdir(d)
            st.write_file(os.path.join(d, "who"), "backend %s\n" % who)
            port = st.free_port()
            p = st.spawn(["openssl", "s_server", "-quiet", "-accept", "%s:%d" % (st.LOOPBACK, port), "-cert",
                          self.pki["tls.crt"], "-key", self.pki["tls.key"], "-WWW"], cwd=d,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.addCleanup(st.stop_process, p)
            st.wait_port(port)
            self.backends[who] = port
        self.registry = st.registry_yaml({("secure-a", "v1"): self.backends["a"],
                                          ("secure-b", "v1"): self.backends["b"]})
        self.port = st.free_port()

    def config(self):
        return st.join_docs(self.registry, """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %d, name: tls, protocol: TLS}
    hosts: ["*.example.com"]
    tls: {mode: PASSTHROUGH}
""" % self.port, """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: sni}
spec:
  hosts: ["*.example.com"]
  gateways: [istio-system/edge]
  tls:
  - match: [{sniHosts: [a.example.com]}]
    route: [{destination: {host: secure-a, port: {number: 9080}}}]
  - match: [{sniHosts: ["*.example.com"]}]
    route: [{destination: {host: secure-b, port: {number: 9080}}}]
""")

    def get(self, name, *extra):
        return st.curl(["--max-time", "10", "--cacert", self.pki["ca.crt"], "--resolve",
                        "%s:%d:%s" % (name, self.port, st.LOOPBACK)] + list(extra) +
                       ["https://%s:%d/who" % (name, self.port)])

    def test_routes_by_server_name(self):
        path = os.path.join(self.dir, "sinew.yaml")
        st.write_file(path, self.config())
        p = st.start_proxy(self, config_path=path, workdir=self.dir, outbound=False, args=GW_ARGS)
        st.wait_port(self.port)
        r = self.get("a.example.com")
        self.assertEqual((r.returncode, r.stdout), (0, "backend a\n"), (r, p.stderr()[-2000:]))
        # "*.example.com" takes any other name under it, the longest first
        r = self.get("b.example.com")
        self.assertEqual((r.returncode, r.stdout), (0, "backend b\n"), r)
        # two labels deep: routed there too, and the backend's own
        # certificate (*.example.com, one label) is what curl refuses --
        # the gateway did not terminate the TLS
        r = self.get("x.y.example.com")
        self.assertEqual(r.returncode, 60, r)
        self.assertIn("x.y.example.com", r.stderr)
        r = self.get("x.y.example.com", "-k")
        self.assertEqual((r.returncode, r.stdout), (0, "backend b\n"), r)
        # a name no route takes, and plain HTTP on the port: closed
        r = st.curl(["--max-time", "5", "-k", "--resolve", "c.example.org:%d:%s" % (self.port, st.LOOPBACK),
                     "https://c.example.org:%d/who" % self.port])
        self.assertNotEqual(r.returncode, 0, r)
        self.assertEqual(st.raw_exchange(self.port, b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n"),
                         (None, True))
        deadline = time.time() + 5
        while time.time() < deadline and "other than a TLS ClientHello" not in p.stderr():
            time.sleep(0.05)
        err = p.stderr()
        self.assertIn("asked for server name c.example.org, which no tls route", err)
        self.assertIn("something other than a TLS ClientHello", err)
        self.assertNotIn("warning", err.lower())
        # proxy-config routes shows the server names and where they go
        r = subprocess.run([os.path.join(st.BIN, "sinew"), "proxy-config", "routes", "--admin",
                            "%s:%d" % (st.LOOPBACK, p.admin_port)], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [line.split() for line in r.stdout.splitlines() if "sni" in line]
        self.assertEqual([row[:5] for row in rows],
                         [["gateway:%d" % self.port, "sni", "a.example.com", "tls", "passthrough"],
                          ["gateway:%d" % self.port, "sni", "*.example.com", "tls", "passthrough"]], r.stdout)
        self.assertIn("outbound|9080||secure-a.default.svc.cluster.local (100)", r.stdout)


class TagEcho(socketserver.ThreadingTCPServer):
    """A TCP server answering each line it reads with "TAG line"."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, tag):
        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                for line in self.rfile:
                    self.wfile.write(b"%s %s" % (tag.encode(), line))
        super().__init__((st.LOOPBACK, 0), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


def tcp_say(port, line, timeout=5):
    """One connection: sends line, returns the line answered ("" if none)."""
    with socket.create_connection((st.LOOPBACK, port), timeout=timeout) as s:
        s.sendall(line.encode() + b"\n")
        f = s.makefile("rb")
        try:
            return f.readline().decode()
        except OSError:
            return ""


class GatewayTCP(unittest.TestCase):
    """A Gateway server of protocol TCP with a VirtualService's tcp[]
    route bound to it: Istio's TCP traffic shifting task through the
    ingress gateway (tcp-echo v1, then 80/20 between v1 and v2), each
    connection relayed whole to the destination its weight picked."""

    def setUp(self):
        self.echo = {}
        for v in ("v1", "v2"):
            srv = TagEcho(v)
            self.addCleanup(srv.server_close)
            self.addCleanup(srv.shutdown)
            self.echo[v] = srv.port
        self.port = st.free_port()

    def config(self, w1, w2):
        gw = """apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tcp-echo-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: %d, name: tcp, protocol: TCP}
    hosts: ["*"]
""" % self.port
        dr = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-echo-destination}
spec:
  host: tcp-echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""
        vs = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo}
spec:
  hosts: ["*"]
  gateways: [tcp-echo-gateway]
  tcp:
  - match: [{port: %d}]
    route:
    - destination: {host: tcp-echo, port: {number: 9000}, subset: v1}
      weight: %d
    - destination: {host: tcp-echo, port: {number: 9000}, subset: v2}
      weight: %d
""" % (self.port, w1, w2)
        reg = ("apiVersion: v1\nkind: Service\nmetadata: {name: tcp-echo}\nspec:\n  selector: {app: tcp-echo}\n"
               "  ports: [{name: tcp, port: 9000}]\n---\n")
        for v in ("v1", "v2"):
            reg += ("apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: tcp-echo-%s}\n"
                    "spec:\n  address: %s\n  ports: {tcp: %d}\n  labels: {app: tcp-echo, version: %s}\n---\n"
                    % (v, st.LOOPBACK, self.echo[v], v))
        return st.join_docs(reg, gw, dr, vs)

    def test_tcp_traffic_shifting(self):
        d = st.make_tempdir(self)
        path = os.path.join(d, "sinew.yaml")
        st.write_file(path, self.config(100, 0))
        p = st.start_proxy(self, config_path=path, workdir=d, outbound=False, args=GW_ARGS)
        st.wait_port(self.port)
        got = [tcp_say(self.port, "hello %d" % i) for i in range(20)]
        self.assertEqual(got, ["v1 hello %d\n" % i for i in range(20)], p.stderr()[-2000:])
        self.assertNotIn("warning", p.stderr().lower())
        # 80/20: each connection picks; wait for the reload to show v2
        st.write_file(path, self.config(80, 20))
        deadline = time.time() + 10
        while time.time() < deadline and not tcp_say(self.port, "x").startswith("v2"):
            time.sleep(0.02)
        got = [tcp_say(self.port, "n") for _ in range(200)]
        v2 = sum(1 for g in got if g == "v2 n\n")
        self.assertEqual(sum(1 for g in got if g == "v1 n\n") + v2, 200, got)
        self.assertTrue(20 <= v2 <= 65, "v2 took %d of 200 (20 %% is 40)" % v2)
        # proxy-config routes names the port's route and its weights
        r = subprocess.run([os.path.join(st.BIN, "sinew"), "proxy-config", "routes", "--admin",
                            "%s:%d" % (st.LOOPBACK, p.admin_port)], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        row = [line.split() for line in r.stdout.splitlines() if line.startswith("gateway:%d " % self.port)]
        self.assertEqual([x[:2] for x in row], [["gateway:%d" % self.port, "tcp"]], r.stdout)
        self.assertIn("outbound|9000|v1|tcp-echo.default.svc.cluster.local (80)", r.stdout)
        self.assertIn("outbound|9000|v2|tcp-echo.default.svc.cluster.local (20)", r.stdout)
        # Istio's tcp metrics: every connection opened and closed, bytes
        # each way, by destination (the gateway reports as the source)
        m = p.metrics()
        sel = dict(reporter="source", request_protocol="tcp",
                   destination_service="tcp-echo.default.svc.cluster.local")
        deadline = time.time() + 5
        while time.time() < deadline and st.metric_sum(m, "sinew_tcp_connections_closed_total", **sel) < 222:
            time.sleep(0.05)
            m = p.metrics()
        opened = st.metric_sum(m, "sinew_tcp_connections_opened_total", **sel)
        closed = st.metric_sum(m, "sinew_tcp_connections_closed_total", **sel)
        self.assertGreaterEqual(opened, 222)   # wait_port's, 20, at least one probe, 200
        self.assertEqual(closed, opened)
        self.assertEqual(st.metric_sum(m, "sinew_tcp_connections_opened_total", destination_version="v2", **sel),
                         st.metric_sum(m, "sinew_tcp_connections_closed_total", destination_version="v2", **sel))
        self.assertGreaterEqual(st.metric_sum(m, "sinew_tcp_connections_opened_total", destination_version="v2",
                                              **sel), v2)
        # "hello I\n" (8 or 9 bytes) answered "v1 hello I\n" (11 or 12), then
        # "n\n" (2) answered "vX n\n" (5), and the probes' "x\n" (2) and "vX x\n"
        # (5); wait_port's connection sent nothing
        hello = sum(len("hello %d\n" % i) for i in range(20))
        probes = (opened - 221) * 2
        self.assertEqual(st.metric_sum(m, "sinew_tcp_received_bytes_total", **sel), hello + 200 * 2 + probes)
        self.assertEqual(st.metric_sum(m, "sinew_tcp_sent_bytes_total", **sel),
                         hello + 20 * 3 + 200 * 5 + probes // 2 * 5)
        self.assertEqual(st.metric_sum(m, "sinew_tcp_connections_opened_total", response_code="0"), 0)
        # and no request series came of them
        self.assertEqual(st.metric_sum(m, "sinew_requests_total"), 0)
        if shutil.which("promtool"):
            _, _, body = p.admin_get("/metrics")
            cp = subprocess.run(["promtool", "check", "metrics"], input=body.decode(), capture_output=True,
                                text=True, timeout=30)
            bad = [ln for ln in (cp.stdout + cp.stderr).splitlines()
                   if ln.strip() and "milliseconds" not in ln]
            self.assertEqual(bad, [], cp.stdout + cp.stderr)
        # sinew explain --gateway shows the port's route and weights
        out = subprocess.run([os.path.join(st.BIN, "sinew"), "explain", "--gateway", "-f", path,
                              "http://x:%d/" % self.port], capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 0, out)
        self.assertIn("TCP: connections are not HTTP", out.stdout)
        self.assertIn(" 80.0%  tcp-echo.default.svc.cluster.local -> cluster outbound|9000|v1|", out.stdout)
        # no route at the port: each connection is closed, and the log says why
        st.write_file(path, self.config(100, 0).replace("match: [{port: %d}]" % self.port,
                                                        "match: [{port: %d}]" % (self.port + 1)))
        deadline = time.time() + 10
        while time.time() < deadline and tcp_say(self.port, "x") != "":
            time.sleep(0.05)
        self.assertEqual(tcp_say(self.port, "x"), "")
        self.assertIn("no tcp route of a VirtualService bound there takes this port", p.stderr())

    def test_tls_terminated_then_tcp(self):
        """A TLS server with tls.mode SIMPLE (files) whose VirtualService
        routes tcp[]: the gateway terminates the client's TLS (offering no
        ALPN: the port carries bytes, not HTTP) and relays the plain bytes
        to the endpoint."""
        d = st.make_tempdir(self)
        pki = make_pki(d)
        tls_port = st.free_port()
        cfg = self.config(100, 0).replace(
            "    hosts: [\"*\"]\n",
            "    hosts: [\"*\"]\n  - port: {number: %d, name: tls, protocol: TLS}\n    hosts: [\"*\"]\n"
            "    tls: {mode: SIMPLE, serverCertificate: %s, privateKey: %s}\n" % (tls_port, pki["tls.crt"], pki["tls.key"]),
            1).replace("  - match: [{port: %d}]" % self.port, "  - match: [{port: %d}, {port: %d}]" % (self.port, tls_port))
        path = os.path.join(d, "sinew.yaml")
        st.write_file(path, cfg)
        p = st.start_proxy(self, config_path=path, workdir=d, outbound=False, args=GW_ARGS)
        st.wait_port(tls_port)
        import ssl
        ctx = ssl.create_default_context(cafile=pki["ca.crt"])
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection((st.LOOPBACK, tls_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="db.example.com") as tls:
                self.assertIsNone(tls.selected_alpn_protocol())
                tls.sendall(b"over tls\n")
                self.assertEqual(tls.makefile("rb").readline(), b"v1 over tls\n")
        # the plain port still relays as before; no warning for either
        self.assertEqual(tcp_say(self.port, "plain"), "v1 plain\n")
        self.assertNotIn("warning", p.stderr().lower())


if __name__ == "__main__":
    st.main()
