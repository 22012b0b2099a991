#!/usr/bin/python3
"""The Kubernetes Gateway API (gateway.networking.k8s.io/v1 Gateway and
HTTPRoute) in file mode, through real proxies and real backends:

- a gateway proxy labelled gateway.networking.k8s.io/gateway-name=NAME
  serves the Gateway API Gateway NAME of its own namespace, and no proxy
  without that label (or of another namespace) opens its port;
- Istio's gateway-api/bookinfo-gateway.yaml, unchanged but for the port:
  Exact and PathPrefix matches reach productpage, PathPrefix is segment-wise
  (/static takes /static/x, not /staticfoo), anything else is 404 no_route,
  and the file loads without a warning;
- GAMMA: an HTTPRoute whose parentRef is a Service routes a sidecar's calls
  to it (route-reviews-90-10.yaml splits about 90/10, route-reviews-v1.yaml
  sends everything to v1), the unmodified conformance files;
- precedence across HTTPRoutes for one host: Exact before PathPrefix, the
  longest prefix first, then more header matches (each case set up so that
  route-name order alone would pick the other rule);
- filters: RequestHeaderModifier and ResponseHeaderModifier set/add/remove,
  RequestRedirect (302 by default, scheme and hostname), URLRewrite
  ReplacePrefixMatch (to "/" too), ReplaceFullPath (query kept) and
  hostname; a weight 0 backend takes nothing; a rule with no backendRefs
  answers 500; timeouts.request is honoured;
- allowedRoutes.namespaces.from: Same refuses a route of another namespace
  that from: All takes;
- GRPCRoute: gRPC calls (python3-grpcio) routed by service, method and
  header to two gRPC servers, a method no rule takes answered UNIMPLEMENTED
  by the proxy;
- TCPRoute on a TCP listener: connections split by weight; TLSRoute on a
  TLS Passthrough listener: routed by server name, the backend's own
  certificate verified by curl end to end;
- ReferenceGrant: a backendRef to a Service of another namespace answers
  500 until a ReferenceGrant there allows HTTPRoutes of the route's
  namespace, then reaches it (the proxy reloads the file)."""

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_gateway import TagEcho, make_pki, refused, tcp_say  # noqa: E402

GWAPI = os.path.join(st.SHARED, "conformance", "istio-bookinfo", "gateway-api")
KUBE = os.path.join(st.SHARED, "conformance", "istio-bookinfo", "kube")
LABEL = "gateway.networking.k8s.io/gateway-name"


def gw_args(name, *extra):
    return ["--gateway", "--gateway-address", st.LOOPBACK, "--labels", "%s=%s" % (LABEL, name)] + list(extra)


def read(d, name):
    with open(os.path.join(d, name)) as f:
        return f.read()



def gateway(name, listeners):
    """listeners: [(name, port, from)]"""
    ls = "".join("  - name: %s\n    port: %d\n    protocol: HTTP\n"
                 "    allowedRoutes: {namespaces: {from: %s}}\n" % ln for ln in listeners)
    return ("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: %s\n"
            "spec:\n  gatewayClassName: istio\n  listeners:\n%s" % (name, ls))


def route(name, host, rules, ns="default", parent="{name: edge}"):
    return ("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n"
            "  name: %s\n  namespace: %s\nspec:\n  parentRefs: [%s]\n  hostnames: [%s]\n"
            "  rules:\n%s" % (name, ns, parent, host, rules))


PRECEDENCE = [
    route("prec-1", "prec.example.com", """\
  - matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: svc-a, port: 9080}]
  - matches: [{path: {type: Exact, value: /a/b/c}, headers: [{name: x-pick, value: c}]}]
    backendRefs: [{name: svc-c, port: 9080}]
  - matches: [{path: {type: PathPrefix, value: /h}}, {path: {type: PathPrefix, value: /a/b/e}}]
    backendRefs: [{name: svc-a, port: 9080}]
"""),
    route("prec-2", "prec.example.com", """\
  - matches: [{path: {type: PathPrefix, value: /a/b}}]
    backendRefs: [{name: svc-b, port: 9080}]
  - matches: [{path: {type: PathPrefix, value: /h}, headers: [{name: x-v, value: "1"}]},
              {path: {type: Exact, value: /a/b/e}}]
    backendRefs: [{name: svc-c, port: 9080}]
"""),
]

A = "    backendRefs: [{name: svc-a, port: 9080}]\n"
FILTERS = route("filters", "filt.example.com", """\
  - matches: [{path: {value: /hdr}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Set, value: s}]
        add: [{name: x-add, value: added}]
        remove: [x-drop]
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: x-resp, value: r}]
        add: [{name: x-resp-add, value: ra}]
        remove: [x-backend-version]
""" + A + """\
  - matches: [{path: {value: /redir}}]
    filters: [{type: RequestRedirect, requestRedirect: {scheme: https, hostname: secure.example.com}}]
  - matches: [{path: {value: /old}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}}]
""" + A + """\
  - matches: [{path: {value: /strip}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}]
""" + A + """\
  - matches: [{path: {value: /pre/}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /xyz/}}}]
""" + A + """\
  - matches: [{path: {value: /full}}]
    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /replaced}}}]
""" + A + """\
  - matches: [{path: {value: /host}}]
    filters: [{type: URLRewrite, urlRewrite: {hostname: rewritten.example.com}}]
""" + A + """\
  - matches: [{path: {value: /weights}}]
    backendRefs: [{name: svc-a, port: 9080, weight: 0}, {name: svc-b, port: 9080, weight: 1}]
  - matches: [{path: {value: /nobackend}}]
  - matches: [{path: {value: /slow}}]
    timeouts: {request: 300ms}
""" + A)


# PathPrefix "/" (no matches): the whole path follows the new prefix
ROOT = route("root", "root.example.com", """\
  - filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /base}}}]
""" + A)


class GatewayAPIBookinfo(unittest.TestCase):

    def setUp(self):
        self.pp = st.start_backend(self, "productpage")
        self.registry = st.registry_yaml({("productpage", "v1"): self.pp.port})
        self.port = st.free_port()
        text = read(GWAPI, "bookinfo-gateway.yaml")
        self.assertEqual(text.count("port: 80\n"), 1)
        self.config = st.join_docs(self.registry, text.replace("port: 80\n", "port: %d\n" % self.port))

    def start(self, args):
        d = st.make_tempdir(self)
        path = os.path.join(d, "sinew.yaml")
        st.write_file(path, self.config)
        return st.start_proxy(self, config_path=path, workdir=d, outbound=False, args=args)

    def wait_listening(self, port, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline and refused(port):
            time.sleep(0.05)
        return not refused(port)

    def test_bookinfo_gateway_file(self):
        p = self.start(gw_args("bookinfo-gateway"))
        self.assertTrue(self.wait_listening(self.port), p.stderr()[-3000:])
        for path in ("/productpage", "/productpage?u=normal", "/static/x", "/static", "/login", "/logout",
                     "/api/v1/products/1", "/api/v1/products"):
            for host in ("bookinfo.example.com", "%s:%d" % (st.LOOPBACK, self.port)):
                r = st.request(self.port, "GET", path, host=host)
                self.assertEqual((r.status, r.header("x-backend-service")), (200, "productpage"), (path, host, r))
                self.assertEqual(r.json()["path"], path)
        for path in ("/productpagex", "/productpage/x", "/staticfoo", "/loginx", "/api/v1/productsx"):
            r = st.request(self.port, "GET", path, host="bookinfo.example.com")
            self.assertEqual(r.status, 404, (path, r))
        r = st.request(self.port, "GET", "/admin", host="x")
        self.assertEqual((r.status, r.header("sinew-error")), (404, "no_route"), r)
        self.assertEqual(self.pp.requests(), 16)
        self.assertNotIn("warning", p.stderr().lower())

    def test_label_and_namespace_select(self):
        """Without the label, with another Gateway's name, or in another
        namespace, the proxy opens no port; with both it does."""
        for args in (["--gateway", "--gateway-address", st.LOOPBACK],
                     gw_args("other-gateway"),
                     ["--gateway", "--gateway-address", st.LOOPBACK, "--labels", "istio=ingressgateway"],
                     gw_args("bookinfo-gateway", "--namespace", "other")):
            p = self.start(args)
            time.sleep(0.5)
            self.assertTrue(p.alive(), p.stderr()[-2000:])
            self.assertTrue(refused(self.port), "port opened by %s" % " ".join(args))
            p.stop()
        p = self.start(gw_args("bookinfo-gateway", "--namespace", "default"))
        self.assertTrue(self.wait_listening(self.port), p.stderr()[-3000:])


class GatewayAPIMesh(unittest.TestCase):
    """GAMMA: HTTPRoutes with a Service parentRef, on a sidecar's outbound
    listener, the conformance files unchanged."""

    def start(self, route_file):
        self.v1 = st.start_backend(self, "reviews", "v1")
        self.v2 = st.start_backend(self, "reviews", "v2")
        reg = st.registry_yaml({("reviews", "v1"): self.v1.port, ("reviews", "v2"): self.v2.port},
                               services=["productpage", "ratings", "details"])
        cfg = st.join_docs(reg, read(KUBE, "bookinfo-versions.yaml"), read(GWAPI, route_file))
        return st.start_proxy(self, cfg)

    def run_n(self, p, n):
        c = st.KeepAliveClient(p.outbound_port)
        self.addCleanup(c.close)
        got = [c.request("GET", "/reviews/%d" % i, "reviews") for i in range(n)]
        bad = [r for r in got if r.status != 200]
        self.assertEqual(bad, [], "%d of %d failed" % (len(bad), n))
        return st.versions_of(got)

    def test_reviews_90_10(self):
        p = self.start("route-reviews-90-10.yaml")
        seen = self.run_n(p, 400)
        self.assertEqual(set(seen) - {"v1", "v2"}, set(), seen)
        v2 = seen.get("v2", 0)
        self.assertTrue(20 <= v2 <= 80, "v2 took %d of 400 (expected about 40): %r" % (v2, seen))
        self.assertEqual((self.v1.requests(), self.v2.requests()), (seen.get("v1", 0), v2))

    def test_reviews_v1(self):
        p = self.start("route-reviews-v1.yaml")
        seen = self.run_n(p, 60)
        self.assertEqual(seen, {"v1": 60})
        self.assertEqual(self.v2.requests(), 0)


class GatewayAPIRoutes(unittest.TestCase):
    """Hand-written Gateway and HTTPRoutes: precedence, filters, namespaces."""

    def setUp(self):
        self.b = {s: st.start_backend(self, s) for s in ("svc-a", "svc-b", "svc-c")}
        self.registry = st.registry_yaml({(s, "v1"): b.port for s, b in self.b.items()})
        self.port = st.free_port()

    def start(self, *docs, name="edge", port=None):
        d = st.make_tempdir(self)
        path = os.path.join(d, "sinew.yaml")
        st.write_file(path, st.join_docs(self.registry, *docs))
        p = st.start_proxy(self, config_path=path, workdir=d, outbound=False, args=gw_args(name))
        port = port or self.port
        deadline = time.time() + 5
        while time.time() < deadline and refused(port):
            time.sleep(0.05)
        self.assertFalse(refused(port), p.stderr()[-3000:])
        return p

    def get(self, path, host, headers=None, port=None, timeout=10.0):
        return st.request(port or self.port, "GET", path, host=host, headers=headers, timeout=timeout)

    def svc(self, path, host, headers=None, port=None):
        r = self.get(path, host, headers, port)
        return r.status, r.header("x-backend-service")

    def test_precedence(self):
        self.start(gateway("edge", [("http", self.port, "Same")]), *PRECEDENCE)
        h = "prec.example.com"
        cases = [("/a/x", None, "svc-a"), ("/a", None, "svc-a"), ("/a/bc", None, "svc-a"),
                 ("/a/b", None, "svc-b"), ("/a/b/x", None, "svc-b"),
                 ("/a/b/c", {"x-pick": "c"}, "svc-c"), ("/a/b/c", None, "svc-b"),
                 ("/a/b/c", {"x-pick": "d"}, "svc-b"), ("/a/b/c/d", {"x-pick": "c"}, "svc-b"),
                 ("/h/1", {"x-v": "1"}, "svc-c"), ("/h/1", None, "svc-a"),
                 # Exact beats a PathPrefix as long, though its route sorts later
                 ("/a/b/e", None, "svc-c"), ("/a/b/e/f", None, "svc-a")]
        for path, hdrs, want in cases:
            self.assertEqual(self.svc(path, h, hdrs), (200, want), (path, hdrs))
        for path, host in (("/ab", h), ("/", h), ("/a/x", "other.example.com")):
            r = self.get(path, host)
            self.assertEqual(r.status, 404, (path, host, r))

    def test_header_modifiers(self):
        self.start(gateway("edge", [("http", self.port, "Same")]), FILTERS)
        r = self.get("/hdr/1", "filt.example.com",
                     {"x-set": "client", "x-add": "mine", "x-drop": "gone", "x-keep": "k"})
        self.assertEqual(r.status, 200, r)
        seen = r.json()["headers"]
        self.assertEqual(seen.get("x-set"), "s", seen)
        self.assertEqual([v.strip() for v in seen.get("x-add", "").split(",")], ["mine", "added"], seen)
        self.assertNotIn("x-drop", seen)
        self.assertEqual(seen.get("x-keep"), "k")
        self.assertEqual((r.header("x-resp"), r.header("x-resp-add")), ("r", "ra"), r)
        self.assertIsNone(r.header("x-backend-version"), r)
        self.assertEqual(r.header("x-backend-service"), "svc-a")

    def test_redirect_and_rewrites(self):
        self.start(gateway("edge", [("http", self.port, "Same")]), FILTERS, ROOT)
        h = "filt.example.com"
        r = self.get("/redir/x?q=1", h)
        self.assertEqual(r.status, 302, r)
        self.assertEqual(r.header("location"), "https://secure.example.com/redir/x?q=1", r)
        self.assertEqual(sum(b.requests() for b in self.b.values()), 0)
        for path, want in (("/old/x?q=1", "/new/x?q=1"), ("/old", "/new"), ("/old/", "/new/"),
                           ("/strip/x", "/x"), ("/strip", "/"), ("/strip/x/y?z=1", "/x/y?z=1"),
                           ("/strip?z=1", "/?z=1"), ("/pre/bar", "/xyz/bar"),
                           ("/full/anything?q=2", "/replaced?q=2"), ("/full", "/replaced")):
            r = self.get(path, h)
            self.assertEqual(r.status, 200, (path, r))
            self.assertEqual(r.json()["path"], want, path)
        r = self.get("/oldx", h)
        self.assertEqual(r.status, 404, r)
        for path, want in (("/x", "/base/x"), ("/x/y?q=1", "/base/x/y?q=1")):
            r = self.get(path, "root.example.com")
            self.assertEqual((r.status, r.json()["path"]), (200, want), path)
        r = self.get("/host/1", h)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["headers"].get("host"), "rewritten.example.com", r.json())
        self.assertEqual(r.json()["path"], "/host/1")

    def test_weights_no_backend_timeout(self):
        self.start(gateway("edge", [("http", self.port, "Same")]), FILTERS)
        h = "filt.example.com"
        got = [self.svc("/weights/%d" % i, h) for i in range(40)]
        self.assertEqual(set(got), {(200, "svc-b")}, got)
        self.assertEqual(self.b["svc-a"].requests(), 0)
        r = self.get("/nobackend", h)
        self.assertEqual(r.status, 500, r)
        r = self.get("/slow?delay_ms=0", h)
        self.assertEqual(r.status, 200, r)
        t0 = time.time()
        r = self.get("/slow?delay_ms=3000", h, timeout=8.0)
        took = time.time() - t0
        self.assertEqual(r.status, 504, r)
        self.assertLess(took, 2.0, "timeouts.request 300ms, answered after %.2f s" % took)

    def test_allowed_routes_namespaces(self):
        """A route in namespace other, parentRef namespace default: the
        from: Same listener refuses it, the from: All listener takes it;
        a route of the Gateway's own namespace attaches to both."""
        other = st.free_port()
        echo = st.start_backend(self, "echo")
        self.registry += st.service_yaml("echo", namespace="other") + \
            st.workload_yaml("echo-v1", echo.port, {"app": "echo"}, namespace="other")
        rules = "  - backendRefs: [{name: %s, port: 9080}]\n"
        p = self.start(gateway("shared", [("same", self.port, "Same"), ("all", other, "All")]),
                       route("foreign", "foreign.example.com", rules % "echo", ns="other",
                             parent="{name: shared, namespace: default}"),
                       route("home", "home.example.com", rules % "svc-a", parent="{name: shared}"),
                       name="shared")
        self.assertFalse(refused(other), p.stderr()[-3000:])
        self.assertEqual(self.svc("/x", "home.example.com"), (200, "svc-a"))
        self.assertEqual(self.svc("/x", "home.example.com", port=other), (200, "svc-a"))
        self.assertEqual(self.svc("/x", "foreign.example.com", port=other), (200, "echo"))
        r = self.get("/x", "foreign.example.com")
        self.assertEqual((r.status, r.header("sinew-error")), (404, "no_route"), r)
        self.assertEqual(echo.requests(), 1)


class GatewayAPIOtherRoutes(unittest.TestCase):
    """GRPCRoute, TCPRoute, TLSRoute and ReferenceGrant through a gateway
    proxy of the Gateway API."""

    def start(self, text, ports):
        d = st.make_tempdir(self)
        self.path = os.path.join(d, "sinew.yaml")
        st.write_file(self.path, text)
        p = st.start_proxy(self, config_path=self.path, workdir=d, outbound=False, args=gw_args("edge"))
        for port in ports:
            deadline = time.time() + 5
            while time.time() < deadline and refused(port):
                time.sleep(0.05)
            self.assertFalse(refused(port), p.stderr()[-3000:])
        return p

    def listeners(self, ls):
        return ("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: edge}\n"
                "spec:\n  gatewayClassName: istio\n  listeners:\n" + ls)

    def test_grpc_route(self):
        import grpc  # python3-grpcio
        from test_grpc import EchoServer, SVC, grpc_config, channel
        a, b = EchoServer("a"), EchoServer("b")
        self.addCleanup(a.stop)
        self.addCleanup(b.stop)
        port = st.free_port()
        text = st.join_docs(grpc_config([a.port], name="echo-a"), grpc_config([b.port], name="echo-b"),
                            self.listeners("  - {name: web, port: %d, protocol: HTTP}\n" % port), """\
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo}
spec:
  parentRefs: [{name: edge}]
  hostnames: [grpc.example.com]
  rules:
  - matches:
    - method: {service: %s, method: Unary}
      headers: [{name: x-tier, value: gold}]
    backendRefs: [{name: echo-b, port: 50051}]
  - matches: [{method: {service: %s}}]
    backendRefs: [{name: echo-a, port: 50051}]
""" % (SVC, SVC))
        p = self.start(text, [port])
        self.assertNotIn("warning", p.stderr().lower())
        ch = channel(port, authority="grpc.example.com")
        self.addCleanup(ch.close)
        unary = ch.unary_unary("/%s/Unary" % SVC)
        self.assertEqual(unary(b"who", timeout=10), b"a")
        self.assertEqual(unary(b"who", timeout=10, metadata=(("x-tier", "gold"),)), b"b")
        self.assertEqual(unary(b"who", timeout=10, metadata=(("x-tier", "silver"),)), b"a")
        stream = ch.unary_stream("/%s/ServerStream" % SVC)
        self.assertEqual(list(stream(b"3", timeout=10)), [b"msg-0", b"msg-1", b"msg-2"])
        # a service no rule takes: the proxy's 404 no_route, as a gRPC status
        with self.assertRaises(grpc.RpcError) as cm:
            ch.unary_unary("/other.Service/Unary")(b"who", timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        self.assertEqual((a.calls, b.calls), (2, 1))

    def test_tcp_route(self):
        echo = {}
        for v in ("v1", "v2"):
            srv = TagEcho(v)
            self.addCleanup(srv.server_close)
            self.addCleanup(srv.shutdown)
            echo[v] = srv.port
        port = st.free_port()
        reg = ""
        for v in ("v1", "v2"):
            reg += ("apiVersion: v1\nkind: Service\nmetadata: {name: tcp-echo-%s}\nspec:\n  selector: {app: tcp-echo, "
                    "version: %s}\n  ports: [{name: tcp, port: 9000}]\n---\n" % (v, v))
            reg += ("apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: tcp-echo-%s}\n"
                    "spec:\n  address: %s\n  ports: {tcp: %d}\n  labels: {app: tcp-echo, version: %s}\n---\n"
                    % (v, st.LOOPBACK, echo[v], v))
        text = st.join_docs(reg, self.listeners("  - {name: tcp-31400, port: %d, protocol: TCP}\n" % port), """\
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: tcp-echo}
spec:
  parentRefs: [{name: edge, sectionName: tcp-31400}]
  rules:
  - backendRefs:
    - {name: tcp-echo-v1, port: 9000, weight: 80}
    - {name: tcp-echo-v2, port: 9000, weight: 20}
""")
        p = self.start(text, [port])
        self.assertNotIn("warning", p.stderr().lower())
        got = [tcp_say(port, "n") for _ in range(200)]
        v2 = got.count("v2 n\n")
        self.assertEqual(got.count("v1 n\n") + v2, 200, got)
        self.assertTrue(20 <= v2 <= 65, "v2 took %d of 200 (20 %% is 40)" % v2)

    def test_tls_route(self):
        d = st.make_tempdir(self)
        pki = make_pki(d)
        backend = {}
        for who in ("a", "b"):
            wd = os.path.join(d, who)
            os.mkdir(wd)
            st.write_file(os.path.join(wd, "who"), "backend %s\n" % who)
            bport = st.free_port()
            bp = st.spawn(["openssl", "s_server", "-quiet", "-accept", "%s:%d" % (st.LOOPBACK, bport), "-cert",
                           pki["tls.crt"], "-key", pki["tls.key"], "-WWW"], cwd=wd,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.addCleanup(st.stop_process, bp)
            st.wait_port(bport)
            backend[who] = bport
        reg = st.registry_yaml({("secure-a", "v1"): backend["a"], ("secure-b", "v1"): backend["b"]})
        port = st.free_port()
        text = st.join_docs(reg, self.listeners(
            "  - {name: tls, port: %d, protocol: TLS, hostname: \"*.example.com\", tls: {mode: Passthrough}}\n"
            % port), """\
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: a}
spec:
  parentRefs: [{name: edge}]
  hostnames: [a.example.com]
  rules: [{backendRefs: [{name: secure-a, port: 9080}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: b}
spec:
  parentRefs: [{name: edge}]
  rules: [{backendRefs: [{name: secure-b, port: 9080}]}]
""")
        p = self.start(text, [port])

        def get(name):
            return st.curl(["--max-time", "10", "--cacert", pki["ca.crt"], "--resolve",
                            "%s:%d:%s" % (name, port, st.LOOPBACK), "https://%s:%d/who" % (name, port)])
        r = get("a.example.com")
        self.assertEqual((r.returncode, r.stdout), (0, "backend a\n"), (r, p.stderr()[-2000:]))
        # route b has no hostnames: every name the listener takes
        r = get("z.example.com")
        self.assertEqual((r.returncode, r.stdout), (0, "backend b\n"), r)
        self.assertNotIn("warning", p.stderr().lower())

    def test_reference_grant(self):
        api = st.start_backend(self, "api")
        port = st.free_port()
        base = st.join_docs(st.service_yaml("api", namespace="backend"),
                            st.workload_yaml("api-v1", api.port, {"app": "api"}, namespace="backend"),
                            self.listeners("  - {name: web, port: %d, protocol: HTTP}\n" % port),
                            route("to-api", "api.example.com",
                                  "  - backendRefs: [{name: api, namespace: backend, port: 9080}]\n"))
        p = self.start(base, [port])
        r = st.request(port, "GET", "/x", host="api.example.com")
        self.assertEqual(r.status, 500, r)
        self.assertEqual(api.requests(), 0)
        self.assertIn("no ReferenceGrant in backend lets HTTPRoutes of namespace default refer to it", p.stderr())
        grant = """\
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: from-default, namespace: backend}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: "", kind: Service}]
"""
        st.write_file(self.path, st.join_docs(base, grant))
        deadline = time.time() + 10
        while time.time() < deadline:
            r = st.request(port, "GET", "/x", host="api.example.com")
            if r.status == 200:
                break
            time.sleep(0.05)
        self.assertEqual((r.status, r.header("x-backend-service")), (200, "api"), r)


if __name__ == "__main__":
    st.main()
