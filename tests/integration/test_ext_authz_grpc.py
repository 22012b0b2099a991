"""External authorization over gRPC (AuthorizationPolicy action: CUSTOM with
an envoyExtAuthzGrpc provider) through a real sinew-proxy inbound listener.
The provider is declared as Istio does it (ConfigMap istio-system/istio,
data.mesh extensionProviders); the authorizer is a real gRPC server
(grpcio, generic handler, raw bytes) serving
envoy.service.auth.v3.Authorization/Check with a small protobuf reader and
writer written here, so the test checks the wire itself: what the proxy
sent (method, path, host, headers, body, source address, request id) and
how each answer maps -- allow with headers up and down, deny with status,
headers and body, a gRPC error status, a malformed answer, a timeout, an
unreachable authorizer (statusOnError, failOpen), and sinew_ext_authz_total.
"""

import json
import os
import sys
import threading
import time
import unittest
from concurrent import futures

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_ext_authz import ext_counts  # noqa: E402

import grpc  # noqa: E402  (python3-grpcio, installed by scripts/deps.sh: a missing one fails, not skips)

AP = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
CHECK = "/envoy.service.auth.v3.Authorization/Check"


# ---- protobuf, by hand ------------------------------------------------------

def pb_varint(v):
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def pb_len(field, data):
    if isinstance(data, str):
        data = data.encode()
    return pb_varint(field << 3 | 2) + pb_varint(len(data)) + data


def pb_int(field, v):
    return pb_varint(field << 3) + pb_varint(v)


def pb_read(data):
    """A message's fields as {number: [value, ...]}: bytes for
    length-delimited fields, ints for varints. Raises on malformed input."""
    out = {}
    i = 0

    def varint():
        nonlocal i
        v = shift = 0
        while True:
            b = data[i]
            i += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return v

    while i < len(data):
        key = varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            val = varint()
        elif wire == 2:
            n = varint()
            val = bytes(data[i:i + n])
            if len(val) != n:
                raise ValueError("length past the end")
            i += n
        elif wire == 1:
            val = int.from_bytes(data[i:i + 8], "little")
            i += 8
        elif wire == 5:
            val = int.from_bytes(data[i:i + 4], "little")
            i += 4
        else:
            raise ValueError("wire type %d" % wire)
        out.setdefault(num, []).append(val)
    return out


def one(msg, num, default=None):
    v = msg.get(num)
    return v[-1] if v else default


def read_peer(b):
    peer = pb_read(b or b"")
    sock = pb_read(one(pb_read(one(peer, 1, b"")), 1, b""))
    return {"address": one(sock, 2, b"").decode(), "port": one(sock, 3, 0),
            "principal": one(peer, 4, b"").decode()}


def read_check(raw):
    """CheckRequest -> a dict of what the authorizer is told."""
    attrs = pb_read(one(pb_read(raw), 1, b""))
    http = pb_read(one(pb_read(one(attrs, 4, b"")), 2, b""))
    headers = {}
    for entry in http.get(3, []):
        e = pb_read(entry)
        headers[one(e, 1, b"").decode()] = one(e, 2, b"").decode()
    size = one(http, 9, 0)
    if size >= 1 << 63:
        size -= 1 << 64
    return {"source": read_peer(one(attrs, 1)), "destination": read_peer(one(attrs, 2)),
            "id": one(http, 1, b"").decode(), "method": one(http, 2, b"").decode(),
            "headers": headers, "path": one(http, 4, b"").decode(),
            "host": one(http, 5, b"").decode(), "scheme": one(http, 6, b"").decode(),
            "size": size, "protocol": one(http, 10, b"").decode(),
            "body": one(http, 11), "raw_body": one(http, 12)}


def header_option(key, value, append=None):
    hv = pb_len(1, key) + pb_len(2, value)
    msg = pb_len(1, hv)
    if append is not None:
        msg += pb_len(2, pb_int(1, 1 if append else 0))   # google.protobuf.BoolValue
    return msg


def ok_response(headers=(), remove=(), to_client=()):
    ok = b"".join(pb_len(2, header_option(*h)) for h in headers)
    ok += b"".join(pb_len(5, r) for r in remove)
    ok += b"".join(pb_len(6, header_option(*h)) for h in to_client)
    # status {} (code 0 is proto3's default: an empty Status), ok_response
    return pb_len(1, b"") + pb_len(3, ok)


def denied_response(code, status=None, headers=(), body=b""):
    d = b""
    if status is not None:
        d += pb_len(1, pb_int(1, status))
    d += b"".join(pb_len(2, header_option(*h)) for h in headers)
    if body:
        d += pb_len(3, body)
    return pb_len(1, pb_int(1, code) + pb_len(2, "denied")) + pb_len(2, d)


# ---- the authorizer -----------------------------------------------------------

class GrpcAuthorizer:
    """Envoy's Authorization/Check over gRPC: answers by the request's
    x-ext-authz header and path, and records what it was asked."""

    def __init__(self):
        self.seen = []
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handler = grpc.method_handlers_generic_handler("envoy.service.auth.v3.Authorization", {
            "Check": grpc.unary_unary_rpc_method_handler(
                self.check, request_deserializer=lambda b: b, response_serializer=lambda b: b)})
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("%s:0" % st.LOOPBACK)
        self.server.start()

    def check(self, raw, context):
        req = read_check(raw)
        req["metadata"] = {k: v for k, v in context.invocation_metadata()}
        with self.lock:
            self.seen.append(req)
        want = req["headers"].get("x-ext-authz", "")
        if req["path"].startswith("/slow"):
            time.sleep(2.0)
        if want == "allow":
            return ok_response(
                headers=[("x-ext-authz-check-result", "allowed"), ("x-ext-authz-user", "alice"),
                         ("x-appended", "from-authz", True), ("content-length", "999")],
                remove=["x-remove-me"],
                to_client=[("x-ext-authz-check-result", "allowed")])
        if want == "teapot":
            return denied_response(7, 418, [("x-ext-authz-check-result", "denied"),
                                            ("content-type", "text/x-teapot")], b"short and stout\n")
        if want == "grpc-error":
            context.abort(grpc.StatusCode.INTERNAL, "authorizer broke")
        if want == "garbage":
            return b"\x0a\xff\xff\xff\xff\x0f"   # a length past the end
        if want == "inject":
            return ok_response(headers=[("x-evil", "a\r\nx-smuggled: 1")])
        return denied_response(7, None, [("x-ext-authz-check-result", "denied")],
                               b"denied by ext_authz for not found header `x-ext-authz: allow`\n")

    def last(self):
        with self.lock:
            return self.seen[-1] if self.seen else None

    def count(self):
        with self.lock:
            return len(self.seen)

    def stop(self):
        self.server.stop(0).wait(5)


def mesh_config(authz_port, down_port, extra=""):
    return """apiVersion: v1
kind: ConfigMap
metadata:
  name: istio
  namespace: istio-system
data:
  mesh: |-
    extensionProviders:
    - name: grpc-authz
      envoyExtAuthzGrpc:
        service: ext-authz-grpc.default.svc.cluster.local
        port: 9000
        timeout: 0.5s
        pathPrefix: /not-for-grpc
    - name: grpc-open
      envoyExtAuthzGrpc:
        service: ext-down.default.svc.cluster.local
        port: 9000
        timeout: 0.5s
        failOpen: true
    - name: grpc-down
      envoyExtAuthzGrpc:
        service: ext-down.default.svc.cluster.local
        port: 9000
        timeout: 0.5s
        statusOnError: "503"
    - name: grpc-body
      envoyExtAuthzGrpc:
        service: default/ext-authz-grpc.default.svc.cluster.local
        port: 9000
        includeRequestBodyInCheck: {maxRequestBytes: 1024}
    - name: grpc-bytes
      envoyExtAuthzGrpc:
        service: ext-authz-grpc.default.svc.cluster.local
        port: 9000
        includeRequestBodyInCheck: {maxRequestBytes: 1024, packAsBytes: true}
%s---
apiVersion: v1
kind: Service
metadata: {name: ext-authz-grpc, namespace: default}
spec:
  selector: {app: ext-authz-grpc}
  ports: [{name: grpc, port: 9000}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ext-authz-grpc-1, namespace: default}
spec:
  address: 127.0.0.1
  ports: {grpc: %d}
  labels: {app: ext-authz-grpc}
---
apiVersion: v1
kind: Service
metadata: {name: ext-down, namespace: default}
spec:
  selector: {app: ext-down}
  ports: [{name: grpc, port: 9000}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ext-down-1, namespace: default}
spec:
  address: 127.0.0.1
  ports: {grpc: %d}
  labels: {app: ext-down}
---
""" % (extra, authz_port, down_port)


def custom(name, provider, paths, selector=""):
    return AP + """metadata: {name: %s, namespace: default}
spec:
%s  action: CUSTOM
  provider: {name: %s}
  rules:
  - to: [{operation: {paths: %s}}]
""" % (name, selector, provider, json.dumps(paths))


POLICIES = st.join_docs(
    custom("ext-authz", "grpc-authz", ["/headers*", "/slow", "/private*"],
           "  selector: {matchLabels: {app: reviews}}\n"),
    custom("ext-open", "grpc-open", ["/open*"]),
    custom("ext-down", "grpc-down", ["/down*"]),
    custom("ext-body", "grpc-body", ["/upload*"]),
    custom("ext-bytes", "grpc-bytes", ["/bytes*"]),
    AP + """metadata: {name: deny-private, namespace: default}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/private*"]}}]
""",
)




class ExtAuthzGrpc(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.scope = st.ClassScope(cls)
        t = cls.scope
        cls.authz = GrpcAuthorizer()
        t.addCleanup(cls.authz.stop)
        cls.app = st.start_backend(t, "reviews", "v1")
        cfg = st.join_docs(mesh_config(cls.authz.port, st.closed_port()),
                           st.registry_yaml({("reviews", "v1"): cls.app.port}), POLICIES)
        cls.p = st.start_proxy(t, cfg, outbound=False, inbound=True,
                               app="127.0.0.1:%d" % cls.app.port,
                               args=["--service", "reviews", "--labels", "app=reviews,version=v1"])
        cls.before = ext_counts(cls.p)

    def req(self, path, headers=None, method="GET", body=None):
        return st.request(self.p.inbound_port, method, path, host="reviews:9080",
                          headers=headers, body=body)

    def test_allow_what_is_sent_and_headers_both_ways(self):
        before = self.app.requests()
        r = self.req("/headers?x=1", {"x-ext-authz": "allow", "x-trace-id": "t1",
                                      "x-ext-authz-user": "mallory", "x-remove-me": "secret",
                                      "x-appended": "from-client", "x-request-id": "rid-42"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.app.requests(), before + 1)
        seen = self.authz.last()
        # The request as Envoy describes it.
        self.assertEqual((seen["method"], seen["path"], seen["host"]), ("GET", "/headers?x=1", "reviews:9080"))
        self.assertEqual((seen["scheme"], seen["protocol"], seen["size"]), ("http", "HTTP/1.1", 0))
        self.assertEqual(seen["id"], "rid-42")
        h = seen["headers"]
        self.assertEqual(h.get("x-ext-authz"), "allow", h)
        self.assertEqual(h.get("x-trace-id"), "t1", h)
        self.assertEqual(h.get(":authority"), "reviews:9080", h)
        self.assertEqual(h.get(":method"), "GET", h)
        self.assertEqual(h.get(":path"), "/headers?x=1", h)
        self.assertNotIn("host", h)
        self.assertIsNone(seen["body"])
        # The peers: the client's address and port, the listener's address.
        self.assertEqual(seen["source"]["address"], "127.0.0.1", seen)
        self.assertGreater(seen["source"]["port"], 0, seen)
        self.assertEqual(seen["source"]["principal"], "", "a plaintext client has no principal")
        self.assertEqual(seen["destination"]["address"], "127.0.0.1", seen)
        self.assertEqual(seen["destination"]["port"], self.p.inbound_port, seen)
        # What the app got: set replaces, append adds, remove removes, and
        # a framing field (content-length) is never taken from the authorizer.
        log = json.loads(r.body)
        hdrs = log["headers"]
        self.assertEqual(hdrs.get("x-ext-authz-check-result"), "allowed", log)
        self.assertEqual(hdrs.get("x-ext-authz-user"), "alice", log)
        self.assertNotIn("x-remove-me", hdrs)
        self.assertIn("from-client", hdrs.get("x-appended", ""), log)
        self.assertIn("from-authz", hdrs.get("x-appended", ""), log)
        # And the client: response_headers_to_add.
        self.assertEqual(r.header("x-ext-authz-check-result"), "allowed", r)

    def test_deny_default_403_with_body_and_headers(self):
        before = self.app.requests()
        r = self.req("/headers", {"x-ext-authz": "deny"})
        self.assertEqual((r.status, r.header("sinew-error")), (403, "ext_authz_denied"), r)
        self.assertIn("denied by ext_authz for not found header `x-ext-authz: allow`", r.body.decode())
        self.assertEqual(r.header("x-ext-authz-check-result"), "denied", r)
        self.assertEqual(self.app.requests(), before, "a denied request reached the app")

    def test_deny_418_relayed(self):
        r = self.req("/headers", {"x-ext-authz": "teapot"})
        self.assertEqual((r.status, r.header("sinew-error")), (418, "ext_authz_denied"), r)
        self.assertEqual(r.body, b"short and stout\n")
        self.assertEqual(r.header("content-type"), "text/x-teapot")
        self.assertEqual(r.header("x-ext-authz-check-result"), "denied", r)

    def test_grpc_error_status_is_an_error(self):
        r = self.req("/headers", {"x-ext-authz": "grpc-error"})
        self.assertEqual((r.status, r.header("sinew-error")), (403, "ext_authz_error"), r)
        self.assertIn("answered gRPC status 13", r.body.decode())

    def test_malformed_answer_is_an_error(self):
        before = self.app.requests()
        r = self.req("/headers", {"x-ext-authz": "garbage"})
        self.assertEqual((r.status, r.header("sinew-error")), (403, "ext_authz_error"), r)
        self.assertIn("malformed CheckResponse", r.body.decode())
        r = self.req("/headers", {"x-ext-authz": "inject"})
        self.assertEqual((r.status, r.header("sinew-error")), (403, "ext_authz_error"), r)
        self.assertIn("control characters", r.body.decode())
        self.assertEqual(self.app.requests(), before)

    def test_timeout_denies(self):
        before = self.app.requests()
        t0 = time.monotonic()
        r = self.req("/slow", {"x-ext-authz": "allow"})
        took = time.monotonic() - t0
        self.assertEqual((r.status, r.header("sinew-error")), (403, "ext_authz_error"), r)
        self.assertIn("did not answer within its timeout", r.body.decode())
        self.assertLess(took, 1.8, "the 0.5 s timeout did not hold")
        self.assertEqual(self.app.requests(), before)

    def test_unreachable_status_on_error(self):
        before = self.app.requests()
        r = self.req("/down/x")
        self.assertEqual((r.status, r.header("sinew-error")), (503, "ext_authz_error"), r)
        self.assertIn("could not be reached", r.body.decode())
        self.assertEqual(self.app.requests(), before)

    def test_unreachable_fail_open_allows(self):
        before = self.app.requests()
        r = self.req("/open/x")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.app.requests(), before + 1)

    def test_only_selected_paths_are_asked(self):
        n = self.authz.count()
        self.assertEqual(self.req("/public").status, 200)
        self.assertEqual(self.authz.count(), n)

    def test_deny_policy_still_applies_after_allow(self):
        r = self.req("/private", {"x-ext-authz": "allow"})
        self.assertEqual((r.status, r.header("sinew-error")), (403, "rbac_denied"), r)

    def test_body_as_string(self):
        r = self.req("/upload", {"x-ext-authz": "allow", "content-type": "text/plain"},
                     method="POST", body=b"hello authorizer")
        self.assertEqual(r.status, 200, r)
        seen = self.authz.last()
        self.assertEqual((seen["method"], seen["path"], seen["size"]), ("POST", "/upload", 16))
        self.assertEqual(seen["body"], b"hello authorizer")
        self.assertIsNone(seen["raw_body"])
        self.assertEqual(json.loads(r.body)["body_len"], 16, "the app did not get the whole body")

    def test_body_as_bytes(self):
        payload = bytes(range(256))
        r = self.req("/bytes", {"x-ext-authz": "allow"}, method="PUT", body=payload)
        self.assertEqual(r.status, 200, r)
        seen = self.authz.last()
        self.assertEqual(seen["raw_body"], payload)
        self.assertIsNone(seen["body"])

    def test_body_too_big_without_partial(self):
        n = self.authz.count()
        r = self.req("/upload", {"x-ext-authz": "allow"}, method="POST", body=b"x" * 2048)
        self.assertEqual((r.status, r.header("sinew-error")), (413, "ext_authz_error"), r)
        self.assertEqual(self.authz.count(), n)

    def test_unknown_field_warned(self):
        err = self.p.stderr()
        self.assertIn("envoyExtAuthzGrpc.pathPrefix", err)
        self.assertNotIn("not implemented by Sinew yet", err)

    def test_z_metrics(self):
        # Runs last (alphabetical): every kind of result was seen.
        c = ext_counts(self.p)
        d = {k: c[k] - self.before[k] for k in c}
        self.assertGreaterEqual(d["allowed"], 4, d)
        self.assertGreaterEqual(d["denied"], 2, d)
        self.assertGreaterEqual(d["error"], 5, d)
        self.assertGreaterEqual(d["failed_open"], 1, d)


class ThroughSinewd(unittest.TestCase):
    """The gRPC provider applied to sinewd reaches the proxy and is enforced."""

    def test_pushed_and_enforced(self):
        from test_sinewd_push import Mesh, start_cp_proxy
        authz = GrpcAuthorizer()
        self.addCleanup(authz.stop)
        app = st.start_backend(self, "reviews", "v1")
        mesh = Mesh(self)
        mesh.apply(st.join_docs(mesh_config(authz.port, st.closed_port()),
                                custom("ext-authz", "grpc-authz", ["/headers*"],
                                       "  selector: {matchLabels: {app: reviews}}\n")), "ext-authz.yaml")
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
        self.assertEqual(authz.last()["path"], "/headers")
        r = st.request(px.inbound_port, "GET", "/headers", host="reviews")
        self.assertEqual((r.status, r.header("sinew-error")), (403, "ext_authz_denied"), r)
        self.assertEqual(st.request(px.inbound_port, "GET", "/public", host="reviews").status, 200)


if __name__ == "__main__":
    st.main()
