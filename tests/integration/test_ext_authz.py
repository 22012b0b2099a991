"""External authorization (AuthorizationPolicy action: CUSTOM) through a
real sinew-proxy inbound listener, with the provider declared the way
Istio does it (ConfigMap istio-system/istio, data.mesh extensionProviders,
envoyExtAuthzHttp) and a real HTTP authorizer in the test that behaves as
Istio's sample ext-authz server: allow with `x-ext-authz: allow`, else deny
403 with its own body. Covers: allow (with headers to the app), deny
(status, body and headers relayed), timeout and down (denied unless
failOpen), 5xx (an error), the headers the authorizer sees, the request
body when asked, an undefined provider (denied, fail closed), policies
after the authorizer (DENY still denies), and sinew_ext_authz_total."""

import http.server
import json
import os
import socketserver
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

import unittest  # noqa: E402

AP = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"


class Authorizer:
    """Istio's sample ext-authz, over HTTP: records what it is asked."""

    def __init__(self):
        self.seen = []
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def handle_one(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                with outer.lock:
                    outer.seen.append({"method": self.command, "path": self.path,
                                       "headers": {k.lower(): v for k, v in self.headers.items()},
                                       "body": body})
                if "/slow" in self.path:
                    time.sleep(2.0)
                if "/boom" in self.path:
                    return self.answer(500, b"authorizer broke\n", {})
                if self.headers.get("x-ext-authz") == "allow":
                    return self.answer(200, b"", {"x-ext-authz-check-result": "allowed",
                                                  "x-ext-authz-user": "alice",
                                                  "x-not-forwarded": "1"})
                if self.headers.get("x-ext-authz") == "teapot":
                    return self.answer(418, b"short and stout\n",
                                       {"x-ext-authz-check-result": "denied",
                                        "content-type": "text/x-teapot"})
                msg = ("denied by ext_authz for not found header `x-ext-authz: allow` in the "
                       "request\n").encode()
                return self.answer(403, msg, {"x-ext-authz-check-result": "denied",
                                              "x-secret": "not for clients"})

            def answer(self, code, body, headers):
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = handle_one

        class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request, client_address):
                pass   # the proxy hung up on a slow answer: expected

        self.server = S((st.LOOPBACK, 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def last(self):
        with self.lock:
            return self.seen[-1] if self.seen else None

    def count(self):
        with self.lock:
            return len(self.seen)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def mesh_config(authz_port, down_port, extra=""):
    return """apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |-
    extensionProviders:
    - name: sample-ext-authz-http
      envoyExtAuthzHttp:
        service: ext-authz.default.svc.cluster.local
        port: 8000
        timeout: 0.5s
        pathPrefix: /check
        includeRequestHeadersInCheck: ["x-ext-authz", "x-trace-*"]
        includeAdditionalHeadersInCheck: {x-from-mesh: sinew}
        headersToUpstreamOnAllow: ["x-ext-authz-check-*", "x-ext-authz-user"]
        headersToDownstreamOnDeny: ["x-ext-authz-check-result", "content-type"]
        headersToDownstreamOnAllow: ["x-ext-authz-check-result"]
    - name: open-ext-authz
      envoyExtAuthzHttp:
        service: ext-down.default.svc.cluster.local
        port: 8000
        timeout: 0.5s
        failOpen: true
    - name: down-ext-authz
      envoyExtAuthzHttp:
        service: ext-down.default.svc.cluster.local
        port: 8000
        timeout: 0.5s
        statusOnError: "503"
    - name: body-ext-authz
      envoyExtAuthzHttp:
        service: default/ext-authz.default.svc.cluster.local
        port: 8000
        includeRequestHeadersInCheck: ["x-ext-authz"]
        includeRequestBodyInCheck: {maxRequestBytes: 1024}
%s---
apiVersion: v1
kind: Service
metadata: {name: ext-authz, namespace: default}
spec:
  selector: {app: ext-authz}
  ports: [{name: http, port: 8000}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ext-authz-1, namespace: default}
spec:
  address: 127.0.0.1
  ports: {http: %d}
  labels: {app: ext-authz}
---
apiVersion: v1
kind: Service
metadata: {name: ext-down, namespace: default}
spec:
  selector: {app: ext-down}
  ports: [{name: http, port: 8000}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ext-down-1, namespace: default}
spec:
  address: 127.0.0.1
  ports: {http: %d}
  labels: {app: ext-down}
---
""" % (extra, authz_port, down_port)


POLICIES = st.join_docs(
    AP + """metadata: {name: ext-authz, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: CUSTOM
  provider: {name: sample-ext-authz-http}
  rules:
  - to: [{operation: {paths: ["/headers*", "/slow", "/boom", "/private*"]}}]
""",
    AP + """metadata: {name: ext-open, namespace: default}
spec:
  action: CUSTOM
  provider: {name: open-ext-authz}
  rules:
  - to: [{operation: {paths: ["/open*"]}}]
""",
    AP + """metadata: {name: ext-down, namespace: default}
spec:
  action: CUSTOM
  provider: {name: down-ext-authz}
  rules:
  - to: [{operation: {paths: ["/down*"]}}]
""",
    AP + """metadata: {name: ext-body, namespace: default}
spec:
  action: CUSTOM
  provider: {name: body-ext-authz}
  rules:
  - to: [{operation: {paths: ["/upload*"]}}]
""",
    AP + """metadata: {name: ext-nobody, namespace: default}
spec:
  action: CUSTOM
  provider: {name: no-such-provider}
  rules:
  - to: [{operation: {paths: ["/undefined*"]}}]
""",
    AP + """metadata: {name: deny-private, namespace: default}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/private*"]}}]
""",
)


def ext_counts(p):
    m = p.metrics()
    return {r: st.metric_sum(m, "sinew_ext_authz_total", result=r)
            for r in ("allowed", "denied", "error", "failed_open")}


class ExtAuthzHttp(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.scope = st.ClassScope(cls)
        t = cls.scope
        cls.authz = Authorizer()
        t.addCleanup(cls.authz.stop)
        cls.app = st.start_backend(t, "reviews", "v1")
        down = st.closed_port()
        cfg = st.join_docs(mesh_config(cls.authz.port, down),
                           st.registry_yaml({("reviews", "v1"): cls.app.port}), POLICIES)
        cls.p = st.start_proxy(t, cfg, outbound=False, inbound=True,
                               app="127.0.0.1:%d" % cls.app.port,
                               args=["--service", "reviews", "--labels", "app=reviews,version=v1"])

    def req(self, path, headers=None, method="GET", body=None):
        return st.request(self.p.inbound_port, method, path, host="reviews:9080",
                          headers=headers, body=body)

    def test_allow_sends_headers_both_ways(self):
        before = self.app.requests()
        r = self.req("/headers?x=1", {"x-ext-authz": "allow", "x-trace-id": "t1",
                                      "x-other": "no", "x-ext-authz-user": "mallory"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.app.requests(), before + 1)
        # What the authorizer saw: method, pathPrefix + path, host, the
        # named fields and the additional one, nothing else of the client's.
        seen = self.authz.last()
        self.assertEqual((seen["method"], seen["path"]), ("GET", "/check/headers?x=1"))
        self.assertEqual(seen["headers"]["host"], "reviews:9080")
        self.assertEqual(seen["headers"]["x-ext-authz"], "allow")
        self.assertEqual(seen["headers"]["x-trace-id"], "t1")
        self.assertEqual(seen["headers"]["x-from-mesh"], "sinew")
        self.assertNotIn("x-other", seen["headers"])
        # What the app got: the authorizer's named fields replace the
        # client's own (x-ext-authz-user), others of its answer do not go.
        log = json.loads(r.body)
        hdrs = log["headers"]
        self.assertEqual(hdrs.get("x-ext-authz-check-result"), "allowed", log)
        self.assertEqual(hdrs.get("x-ext-authz-user"), "alice", log)
        self.assertNotIn("x-not-forwarded", hdrs)
        # And the client: headersToDownstreamOnAllow.
        self.assertEqual(r.header("x-ext-authz-check-result"), "allowed", r)

    def test_deny_relays_status_body_and_named_headers(self):
        before = self.app.requests()
        r = self.req("/headers", {"x-ext-authz": "deny"})
        self.assertEqual((r.status, r.header("sinew-error")), (403, "ext_authz_denied"), r)
        self.assertIn("denied by ext_authz for not found header `x-ext-authz: allow`", r.body.decode())
        self.assertEqual(r.header("x-ext-authz-check-result"), "denied", r)
        self.assertIsNone(r.header("x-secret"), "a field not in headersToDownstreamOnDeny went to the client")
        r = self.req("/headers", {"x-ext-authz": "teapot"})
        self.assertEqual(r.status, 418, r)
        self.assertEqual(r.body, b"short and stout\n")
        self.assertEqual(r.header("content-type"), "text/x-teapot")
        self.assertEqual(self.app.requests(), before, "a denied request reached the app")

    def test_only_selected_paths_are_asked(self):
        n = self.authz.count()
        r = self.req("/public")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.authz.count(), n)

    def test_timeout_denies(self):
        before = self.app.requests()
        t0 = time.monotonic()
        r = self.req("/slow", {"x-ext-authz": "allow"})
        took = time.monotonic() - t0
        self.assertEqual((r.status, r.header("sinew-error")), (403, "ext_authz_error"), r)
        self.assertIn("did not answer within its timeout", r.body.decode())
        self.assertLess(took, 1.8, "the 0.5 s timeout did not hold")
        self.assertEqual(self.app.requests(), before)

    def test_5xx_is_an_error(self):
        r = self.req("/boom", {"x-ext-authz": "allow"})
        self.assertEqual((r.status, r.header("sinew-error")), (403, "ext_authz_error"), r)
        self.assertIn("answered 500", r.body.decode())

    def test_down_denies_with_status_on_error(self):
        before = self.app.requests()
        r = self.req("/down/x")
        self.assertEqual((r.status, r.header("sinew-error")), (503, "ext_authz_error"), r)
        self.assertIn("could not be reached", r.body.decode())
        self.assertEqual(self.app.requests(), before)

    def test_down_with_fail_open_allows(self):
        before = self.app.requests()
        r = self.req("/open/x")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.app.requests(), before + 1)

    def test_undefined_provider_denies(self):
        before = self.app.requests()
        r = self.req("/undefined/x")
        self.assertEqual((r.status, r.header("sinew-error")), (403, "ext_authz_unavailable"), r)
        self.assertIn("no-such-provider is not defined in the mesh config", r.body.decode())
        self.assertEqual(self.app.requests(), before)
        self.assertIn("provider \"no-such-provider\" is not defined in the mesh config", self.p.stderr())

    def test_deny_policy_still_applies_after_allow(self):
        before = self.app.requests()
        r = self.req("/private", {"x-ext-authz": "allow"})
        self.assertEqual((r.status, r.header("sinew-error")), (403, "rbac_denied"), r)
        self.assertIn("default/deny-private", r.body.decode())
        self.assertEqual(self.app.requests(), before)

    def test_body_sent_when_asked(self):
        r = self.req("/upload", {"x-ext-authz": "allow", "content-type": "text/plain"},
                     method="POST", body=b"hello authorizer")
        self.assertEqual(r.status, 200, r)
        seen = self.authz.last()
        self.assertEqual((seen["method"], seen["path"]), ("POST", "/upload"))
        self.assertEqual(seen["body"], b"hello authorizer")
        self.assertEqual(json.loads(r.body)["body_len"], 16, "the app did not get the whole body")

    def test_z_metrics(self):
        # Runs last (alphabetical): every kind of result was seen.
        c = ext_counts(self.p)
        self.assertGreaterEqual(c["allowed"], 2, c)
        self.assertGreaterEqual(c["denied"], 2, c)
        self.assertGreaterEqual(c["error"], 4, c)
        self.assertGreaterEqual(c["failed_open"], 1, c)
        _, _, text = self.p.admin_get("/metrics")
        self.assertEqual(text.decode().count("# TYPE sinew_ext_authz_total counter"), 1)


class ThroughSinewd(unittest.TestCase):
    """The mesh config applied to sinewd reaches every proxy, with the
    authorizer's Service and WorkloadEntry, and is enforced there."""

    def test_pushed_and_enforced(self):
        from test_sinewd_push import Mesh, start_cp_proxy
        authz = Authorizer()
        self.addCleanup(authz.stop)
        app = st.start_backend(self, "reviews", "v1")
        mesh = Mesh(self)
        mesh.apply(st.join_docs(mesh_config(authz.port, st.closed_port()), AP + """metadata: {name: ext-authz}
spec:
  selector: {matchLabels: {app: reviews}}
  action: CUSTOM
  provider: {name: sample-ext-authz-http}
  rules:
  - to: [{operation: {paths: ["/headers*"]}}]
"""), "ext-authz.yaml")
        px = start_cp_proxy(self, mesh, outbound=False, inbound=True, app="127.0.0.1:%d" % app.port,
                            args=["--service", "reviews", "--labels", "app=reviews,version=v1"])
        deadline = time.time() + 5
        while True:
            r = st.request(px.inbound_port, "GET", "/headers", host="reviews",
                           headers={"x-ext-authz": "allow"})
            if r.status == 200 or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(authz.last()["path"], "/check/headers")
        r = st.request(px.inbound_port, "GET", "/headers", host="reviews")
        self.assertEqual((r.status, r.header("sinew-error")), (403, "ext_authz_denied"), r)
        self.assertEqual(st.request(px.inbound_port, "GET", "/public", host="reviews").status, 200)


class MeshConfigErrors(unittest.TestCase):

    def test_bad_provider_named_with_file_line_field(self):
        d = st.make_tempdir(self)
        path = os.path.join(d, "mesh.yaml")
        st.write_file(path, """apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    defaultConfig: {holdApplicationUntilProxyStarts: true}
    extensionProviders:
    - name: a
      envoyExtAuthzHttp:
        port: 8000
        statusOnError: "teapot"
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app-settings, namespace: default}
data: {color: blue}
""")
        code, err, ready = st.run_proxy_once(path)
        self.assertFalse(ready)
        self.assertIn("mesh.yaml:6:", err)
        # defaultConfig is read for tracing.sampling; its other fields are warned one by one
        self.assertIn("data.mesh.defaultConfig.holdApplicationUntilProxyStarts: holdApplicationUntilProxyStarts "
                      "is not implemented", err)
        self.assertIn("mesh.yaml:10:", err)
        self.assertIn("data.mesh.extensionProviders[0].envoyExtAuthzHttp.service:", err)
        self.assertIn("service is required", err)
        self.assertIn("statusOnError \"teapot\" is not an HTTP status", err)
        self.assertIn("ConfigMap default/app-settings is not read by Sinew", err)


if __name__ == "__main__":
    st.main()
