#!/usr/bin/python3
"""gRPC through sinew-proxy, with real gRPC (python3-grpcio) clients and
servers: a Service port named grpc makes the proxy speak HTTP/2 to the
endpoints, one connection per endpoint carrying every call
(src/proxy/h2_upstream.c), with trailers relayed.

The service is generic (raw bytes, no protobuf): the proxy never looks at
messages, and the cases are gRPC's interop cases that matter for a proxy --
empty and large unary, client, server and ping-pong streaming, a status
code and message, custom metadata both ways, a deadline on a sleeping
server, a cancel after the call began -- through one proxy and through a
sidecar pair over mutual TLS (HTTP/2 on the mesh link, ALPN sinew/h2).
With three endpoints, unary calls on one client channel spread across
them."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from concurrent import futures

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
import test_mtls  # noqa: E402  (its openssl-made SVIDs)

import grpc  # noqa: E402  (python3-grpcio)

SVC = "sinew.test.Echo"
GRPC_JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grpc-js")
MIB = 1024 * 1024


def ident(b):
    return b


class EchoServer:
    """A gRPC server on loopback: /Unary echoes (or, per metadata, fails,
    sleeps, or answers its name), /ServerStream sends n messages,
    /ClientStream joins, /Bidi echoes each message."""

    def __init__(self, name="s"):
        self.name = name.encode()
        self.calls = 0
        self.cancelled = threading.Event()
        self.lock = threading.Lock()
        self.failed_once = set()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                                  options=[("grpc.max_receive_message_length", 8 * MIB),
                                           ("grpc.max_send_message_length", 8 * MIB)])
        h = {
            "Unary": grpc.unary_unary_rpc_method_handler(self.unary, ident, ident),
            "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream, ident, ident),
            "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream, ident, ident),
            "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi, ident, ident),
        }
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SVC, h),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def unary(self, req, ctx):
        self.calls += 1
        md = dict(ctx.invocation_metadata())
        if "x-echo-initial" in md:
            ctx.send_initial_metadata((("x-echo-initial", md["x-echo-initial"]),))
        if "x-echo-trailing-bin" in md:
            ctx.set_trailing_metadata((("x-echo-trailing-bin", md["x-echo-trailing-bin"]),))
        if "x-fail-once" in md:
            with self.lock:
                first = md["x-fail-once"] not in self.failed_once
                self.failed_once.add(md["x-fail-once"])
            if first:
                ctx.abort(grpc.StatusCode.UNAVAILABLE, "not yet")
        if "x-fail" in md:
            ctx.abort(grpc.StatusCode(int_to_code(int(md["x-fail"]))), "failed on purpose: " + md["x-fail"])
        if "x-sleep-ms" in md:
            time.sleep(int(md["x-sleep-ms"]) / 1000.0)
        if req == b"who":
            return self.name
        return req

    def server_stream(self, req, ctx):
        for i in range(int(req or b"0")):
            yield b"msg-%d" % i

    def client_stream(self, it, ctx):
        parts = []
        try:
            for m in it:
                parts.append(m)
        except Exception:
            pass
        # grpcio may end the iteration a moment before it marks the call
        # cancelled; a half-close (no cancel) leaves it active.
        deadline = time.time() + 2
        while ctx.is_active() and time.time() < deadline and parts and parts[0] == b"first":
            time.sleep(0.02)
        if not ctx.is_active():
            self.cancelled.set()
        return b"|".join(parts)

    def bidi(self, it, ctx):
        for m in it:
            yield b"echo:" + m

    def stop(self):
        self.server.stop(0)


def int_to_code(n):
    for c in grpc.StatusCode:
        if c.value[0] == n:
            return c.value
    raise ValueError(n)


def grpc_config(ports, name="echo", port=50051):
    """A Service with a port named grpc, one WorkloadEntry per server port."""
    out = ("apiVersion: v1\nkind: Service\nmetadata: {name: %s}\nspec:\n  selector: {app: %s}\n"
           "  ports:\n  - {name: grpc, port: %d}\n---\n" % (name, name, port))
    for i, p in enumerate(ports):
        out += ("apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: %s-%d}\n"
                "spec:\n  address: 127.0.0.1\n  ports: {grpc: %d}\n  labels: {app: %s}\n---\n"
                % (name, i, p, name))
    return out


def grpc_js_client(test, port, authority):
    """Runs @grpc/grpc-js's client (grpc-js/peer.js) through the proxy at
    port and checks that each of its 9 interop cases passed."""
    if not os.path.isdir(os.path.join(GRPC_JS, "node_modules", "@grpc", "grpc-js")):
        test.fail("@grpc/grpc-js is not installed in %s: run scripts/deps.sh" % GRPC_JS)
    r = subprocess.run(["node", os.path.join(GRPC_JS, "peer.js"), "client", "127.0.0.1:%d" % port, authority],
                       capture_output=True, text=True, timeout=60)
    test.assertEqual(r.returncode, 0, r.stderr)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    test.assertEqual(len(res), 9, res)
    for case, outcome in res.items():
        test.assertEqual(outcome, "ok", "%s: %s" % (case, outcome))


def channel(port, authority="echo:50051"):
    return grpc.insecure_channel("127.0.0.1:%d" % port, options=[("grpc.default_authority", authority),
                                                                 ("grpc.max_receive_message_length", 8 * MIB)])


class Calls:
    """The interop cases, against a channel."""

    def __init__(self, test, ch, servers):
        self.t = test
        self.ch = ch
        self.servers = servers
        self.unary = ch.unary_unary("/%s/Unary" % SVC)

    def empty_unary(self):
        self.t.assertEqual(self.unary(b"", timeout=10), b"")

    def large_unary(self):
        big = os.urandom(MIB)
        self.t.assertEqual(self.unary(big, timeout=20), big)

    def server_streaming(self):
        got = list(self.ch.unary_stream("/%s/ServerStream" % SVC)(b"50", timeout=10))
        self.t.assertEqual(got, [b"msg-%d" % i for i in range(50)])

    def client_streaming(self):
        parts = [os.urandom(20000) for _ in range(10)]
        got = self.ch.stream_unary("/%s/ClientStream" % SVC)(iter(parts), timeout=10)
        self.t.assertEqual(got, b"|".join(parts))

    def ping_pong(self):
        q = []
        ev = threading.Event()

        def gen():
            for i in range(10):
                q.append(b"ping-%d" % i)
                yield q[-1]
                ev.wait(5)
                ev.clear()
        out = []
        for m in self.ch.stream_stream("/%s/Bidi" % SVC)(gen(), timeout=20):
            out.append(m)
            ev.set()
        self.t.assertEqual(out, [b"echo:ping-%d" % i for i in range(10)])

    def status_code_and_message(self):
        with self.t.assertRaises(grpc.RpcError) as cm:
            self.unary(b"x", metadata=(("x-fail", "2"),), timeout=10)
        self.t.assertEqual(cm.exception.code(), grpc.StatusCode.UNKNOWN)
        self.t.assertEqual(cm.exception.details(), "failed on purpose: 2")

    def custom_metadata(self):
        resp, call = self.unary.with_call(b"md", metadata=(("x-echo-initial", "hello"),
                                                           ("x-echo-trailing-bin", b"\x00\x01\xfe")), timeout=10)
        self.t.assertEqual(resp, b"md")
        self.t.assertIn(("x-echo-initial", "hello"), call.initial_metadata())
        self.t.assertIn(("x-echo-trailing-bin", b"\x00\x01\xfe"), call.trailing_metadata())

    def timeout_on_sleeping_server(self):
        t0 = time.time()
        with self.t.assertRaises(grpc.RpcError) as cm:
            self.unary(b"zz", metadata=(("x-sleep-ms", "3000"),), timeout=0.5)
        self.t.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.t.assertLess(time.time() - t0, 2.5)

    def cancel_after_begin(self):
        for s in self.servers:
            s.cancelled.clear()
        stop = threading.Event()

        def gen():
            yield b"first"
            stop.wait(5)
        fut = self.ch.stream_unary("/%s/ClientStream" % SVC).future(gen(), timeout=10)
        time.sleep(0.3)
        fut.cancel()
        # The request stream stays open until the server has seen the
        # cancel: ending it first would be a half-close, not a cancel.
        deadline = time.time() + 5
        while time.time() < deadline and not any(s.cancelled.is_set() for s in self.servers):
            time.sleep(0.05)
        stop.set()
        self.t.assertTrue(fut.cancelled())
        self.t.assertTrue(any(s.cancelled.is_set() for s in self.servers), "no server saw the cancel")

    def all(self):
        for name in ("empty_unary", "large_unary", "server_streaming", "client_streaming", "ping_pong",
                     "status_code_and_message", "custom_metadata", "timeout_on_sleeping_server",
                     "cancel_after_begin"):
            with self.t.subTest(case=name):
                getattr(self, name)()


class GrpcThroughOneProxy(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        scope = st.ClassScope(cls)
        cls.servers = [EchoServer("s%d" % i) for i in range(3)]
        for s in cls.servers:
            scope.addCleanup(s.stop)
        # Round robin makes "a third each" exact; the default balancer
        # (P2C over latency) weighs endpoints by how fast they answer.
        dr = ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: echo}\n"
              "spec:\n  host: echo\n  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}\n---\n")
        cls.proxy = st.start_proxy(scope, grpc_config([s.port for s in cls.servers]) + dr)

    def test_interop_cases(self):
        ch = channel(self.proxy.outbound_port)
        self.addCleanup(ch.close)
        Calls(self, ch, self.servers).all()

    def test_calls_spread_over_endpoints_on_one_channel(self):
        """Per-request balancing over long-lived connections: 300 unary
        calls on one client channel (one HTTP/2 connection to the proxy)
        reach each of three servers about a third of the time, over one
        upstream connection per server."""
        ch = channel(self.proxy.outbound_port)
        self.addCleanup(ch.close)
        unary = ch.unary_unary("/%s/Unary" % SVC)
        before = st.metric_sum(self.proxy.metrics(), "sinew_upstream_connections_total")
        counts = {}
        for _ in range(300):
            who = unary(b"who", timeout=10)
            counts[who] = counts.get(who, 0) + 1
        self.assertEqual(sorted(counts), [b"s0", b"s1", b"s2"], counts)
        for who, n in counts.items():
            self.assertLess(abs(n - 100), 10 + 1, counts)   # within ±10 % of a third
        opened = st.metric_sum(self.proxy.metrics(), "sinew_upstream_connections_total") - before
        self.assertLessEqual(opened, 3)


class GrpcOverMTLS(unittest.TestCase):
    """Client → A's outbound → HTTP/2 over mTLS (sinew/h2) → B's inbound →
    HTTP/2 to the app."""

    @classmethod
    def setUpClass(cls):
        scope = st.ClassScope(cls)
        d = tempfile.mkdtemp(prefix="sinew-grpc-")
        scope.addCleanup(shutil.rmtree, d, True)
        certs = test_mtls.Certs(d)
        cls.server = EchoServer("b")
        scope.addCleanup(cls.server.stop)
        cls.b = st.start_proxy(scope, grpc_config([cls.server.port], name="reviews"), outbound=False,
                               inbound=True, app="127.0.0.1:%d" % cls.server.port,
                               args=["--service", "reviews", "--labels", "app=reviews,version=v1",
                                     "--service-account", "reviews"] + certs.args("reviews"))
        cfg = (grpc_config([], name="reviews") +
               st.workload_yaml("reviews-v1", cls.b.inbound_port, {"app": "reviews"}, service_account="reviews")
               .replace("ports:\n    http:", "ports:\n    grpc:") + test_mtls.DR)
        cls.a = st.start_proxy(scope, cfg, args=["--service", "productpage", "--service-account", "productpage"] +
                               certs.args("productpage"))

    def test_grpc_js_client_over_the_pair(self):
        """@grpc/grpc-js's client through the same pair."""
        grpc_js_client(self, self.a.outbound_port, "reviews:50051")

    def test_interop_cases_over_the_pair(self):
        ch = channel(self.a.outbound_port, authority="reviews:50051")
        self.addCleanup(ch.close)
        Calls(self, ch, [self.server]).all()
        mb = self.b.metrics()
        self.assertGreaterEqual(st.metric_sum(mb, "sinew_requests_total", reporter="destination",
                                              connection_security_policy="mutual_tls"), 9)
        self.assertGreaterEqual(st.metric_sum(mb, "sinew_downstream_http2_connections_total"), 1)

    def test_plaintext_grpc_client_to_the_inbound(self):
        """A gRPC client without a sidecar (PERMISSIVE: plaintext allowed)
        speaks h2c to B's inbound: the port is declared grpc, so B speaks
        HTTP/2 to the app too (it used to speak HTTP/1.1, which a gRPC
        server refuses)."""
        ch = channel(self.b.inbound_port, authority="reviews:50051")
        self.addCleanup(ch.close)
        calls = Calls(self, ch, [self.server])
        calls.large_unary()
        calls.ping_pong()
        calls.status_code_and_message()
        self.assertGreaterEqual(st.metric_sum(self.b.metrics(), "sinew_requests_total", reporter="destination",
                                              connection_security_policy="none", request_protocol="grpc"), 3)


class GrpcPolicies(unittest.TestCase):
    """VirtualService retries on gRPC statuses, a route timeout answered as
    DEADLINE_EXCEEDED, proxy-made errors as gRPC statuses, and
    grpc_response_status in metrics and the access log."""

    @classmethod
    def setUpClass(cls):
        scope = st.ClassScope(cls)
        cls.server = EchoServer("p")
        scope.addCleanup(cls.server.stop)
        vs = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: retry}\n"
              "spec:\n  hosts: [retry]\n  http:\n  - route: [{destination: {host: retry}}]\n"
              "    retries: {attempts: 3, retryOn: unavailable}\n---\n"
              "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: slow}\n"
              "spec:\n  hosts: [slow]\n  http:\n  - route: [{destination: {host: slow}}]\n"
              "    timeout: 300ms\n---\n"
              "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: faulty}\n"
              "spec:\n  hosts: [faulty]\n  http:\n  - route: [{destination: {host: faulty}}]\n"
              "    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}\n---\n")
        cls.workdir = st.make_tempdir(scope)
        cls.log = os.path.join(cls.workdir, "access.log")
        cls.proxy = st.start_proxy(scope, grpc_config([cls.server.port], name="retry") +
                                   grpc_config([cls.server.port], name="slow") +
                                   grpc_config([cls.server.port], name="plain") +
                                   grpc_config([cls.server.port], name="faulty") + vs,
                                   workdir=cls.workdir, args=["--access-log", cls.log])

    def unary(self, host):
        ch = channel(self.proxy.outbound_port, authority=host + ":50051")
        self.addCleanup(ch.close)
        return ch.unary_unary("/%s/Unary" % SVC)

    def test_retry_recovers_unavailable(self):
        before = self.server.calls
        self.assertEqual(self.unary("retry")(b"again", metadata=(("x-fail-once", "k1"),), timeout=10), b"again")
        self.assertEqual(self.server.calls - before, 2)
        # without the VirtualService's retries, the UNAVAILABLE comes back
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary("plain")(b"x", metadata=(("x-fail-once", "k2"),), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertGreaterEqual(st.metric_sum(self.proxy.metrics(), "sinew_upstream_retries_total"), 1)

    def test_route_timeout_is_deadline_exceeded(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary("slow")(b"zz", metadata=(("x-sleep-ms", "2000"),), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertIn("route timeout", cm.exception.details())
        self.assertIn(("sinew-error", "upstream_timeout"), cm.exception.trailing_metadata())

    def test_fault_abort_with_grpc_status(self):
        """fault.abort.grpcStatus: the call gets that status; a plain HTTP
        request to the same route gets its HTTP equivalent (503)."""
        before = self.server.calls
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary("faulty")(b"x", timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn(("sinew-error", "fault_abort"), cm.exception.trailing_metadata())
        self.assertEqual(self.server.calls, before, "an aborted call never reaches the app")
        r = st.request(self.proxy.outbound_port, "GET", "/", host="faulty:50051")
        self.assertEqual((r.status, r.header("sinew-error")), (503, "fault_abort"))

    def test_proxy_made_errors_are_grpc_statuses(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary("nowhere")(b"x", timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        self.assertIn("no route for host", cm.exception.details())
        self.assertIn(("sinew-error", "no_route"), cm.exception.trailing_metadata())

    def test_grpc_status_in_metrics_and_access_log(self):
        self.unary("plain")(b"ok", timeout=10)
        with self.assertRaises(grpc.RpcError):
            self.unary("plain")(b"x", metadata=(("x-fail", "9"),), timeout=10)
        m = self.proxy.metrics()
        self.assertGreaterEqual(st.metric_sum(m, "sinew_requests_total", request_protocol="grpc",
                                              grpc_response_status="0"), 1)
        self.assertGreaterEqual(st.metric_sum(m, "sinew_requests_total", request_protocol="grpc",
                                              grpc_response_status="9"), 1)
        deadline = time.time() + 5
        seen = set()
        while time.time() < deadline and not {"0", "9"} <= seen:
            import json
            seen = {json.loads(line).get("grpc_status") for line in open(self.log)}
            time.sleep(0.05)
        self.assertLessEqual({"0", "9"}, seen)


class GrpcJs(unittest.TestCase):
    """@grpc/grpc-js (npm; scripts/deps.sh installs it) on both ends: a
    grpc-js client through the proxy to the Python server, and the Python
    client through the proxy to a grpc-js server."""

    @classmethod
    def setUpClass(cls):
        if not os.path.isdir(os.path.join(GRPC_JS, "node_modules", "@grpc", "grpc-js")):
            raise AssertionError("@grpc/grpc-js is not installed in %s: run scripts/deps.sh" % GRPC_JS)
        scope = st.ClassScope(cls)
        cls.py = EchoServer("py")
        scope.addCleanup(cls.py.stop)
        cls.js = subprocess.Popen(["node", os.path.join(GRPC_JS, "peer.js"), "server"], stdout=subprocess.PIPE,
                                  text=True)
        scope.addCleanup(lambda: (cls.js.kill(), cls.js.wait(5)))
        line = cls.js.stdout.readline().split()
        if line[:1] != ["LISTENING"]:
            raise AssertionError("grpc-js server did not start: %r" % line)
        cls.js_port = int(line[1])
        cls.proxy = st.start_proxy(scope, grpc_config([cls.py.port], name="pysvc") +
                                   grpc_config([cls.js_port], name="jssvc"))

    def test_grpc_js_client_to_python_server(self):
        grpc_js_client(self, self.proxy.outbound_port, "pysvc:50051")

    def test_python_client_to_grpc_js_server(self):
        ch = channel(self.proxy.outbound_port, authority="jssvc:50051")
        self.addCleanup(ch.close)
        calls = Calls(self, ch, [])
        for name in ("empty_unary", "large_unary", "server_streaming", "client_streaming", "ping_pong",
                     "status_code_and_message", "custom_metadata", "timeout_on_sleeping_server"):
            with self.subTest(case=name):
                getattr(calls, name)()
        self.assertEqual(ch.unary_unary("/%s/Unary" % SVC)(b"who", timeout=10), b"js")


class GrpcExample(unittest.TestCase):
    """examples/grpc/demo.sh, as a user runs it (on free ports)."""

    def test_demo(self):
        st.require_proxy(self)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, SINEW_BIN=os.path.dirname(st.PROXY))
        for k in ("ECHO_A_PORT", "ECHO_B_PORT", "PROXY_PORT", "ADMIN_PORT"):
            env[k] = str(st.free_port())
        r = subprocess.run([os.path.join(root, "examples", "grpc", "demo.sh")], env=env, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("calls answered by: server-a 10, server-b 10", r.stdout)
        self.assertIn("a failing call: FAILED_PRECONDITION - asked to fail", r.stdout)
        self.assertIn("workload=echo-a grpc_response_status=0 count=10", r.stdout)
        self.assertIn("grpc_response_status=9 count=1", r.stdout)


if __name__ == "__main__":
    st.main()
