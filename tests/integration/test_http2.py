#!/usr/bin/python3
"""HTTP/2 from clients through sinew-proxy (src/proxy/h2_downstream.c):
h2c with prior knowledge on the outbound listener and on the inbound one
(plaintext, and behind a sidecar pair over mutual TLS), to an HTTP/1.1 app.
Real clients: curl --http2-prior-knowledge, nghttp (many streams on one
connection), h2load, and python3-h2 where a test needs to see frames.

What is checked: heads and bodies both ways (a body of unknown length goes
upstream chunked, a complete one with its length), local answers
(sinew-error) on a stream, many streams on one connection, a stream reset
by the client ending its exchange while the others go on, and metrics and
the access log saying HTTP/2. Floods and limits: test_http2_attacks.py."""

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
import test_mtls  # noqa: E402  (its openssl-made SVIDs)

import h2.config  # noqa: E402  (python3-h2)
import h2.connection  # noqa: E402
import h2.events  # noqa: E402


def curl(port, url, *args, data=None, timeout=30):
    """curl --http2-prior-knowledge to the proxy at port (the URL's host is
    the authority). Returns (status, headers dict, body bytes, stderr)."""
    argv = ["curl", "-sS", "--http2-prior-knowledge", "--connect-to", "::127.0.0.1:%d" % port,
            "-D", "-", "-o", "-", "--max-time", str(timeout)] + list(args) + [url]
    r = subprocess.run(argv, input=data, capture_output=True, timeout=timeout + 5)
    if r.returncode != 0:
        raise AssertionError("curl failed (%d): %s" % (r.returncode, r.stderr.decode(errors="replace")))
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    proto, status = lines[0].split()[:2]
    if proto != "HTTP/2":
        raise AssertionError("not HTTP/2: %r" % lines[0])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(status), hdrs, body, r.stderr


class H2Client:
    """A python3-h2 client on a plain socket, for tests that drive streams
    one by one."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True,
                                                                          header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.flush()
        self.responses = {}   # stream -> {"headers", "data", "ended", "reset"}
        self.goaway = None

    def flush(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def request(self, path, authority="reviews:9080", method="GET", end=True):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", method), (":scheme", "http"), (":authority", authority),
                                     (":path", path)], end_stream=end)
        self.responses[sid] = {"headers": None, "data": b"", "ended": False, "reset": None}
        self.flush()
        return sid

    def pump(self, until, timeout=10):
        deadline = time.time() + timeout
        while not until():
            if time.time() > deadline:
                raise AssertionError("timed out; responses so far: %r" % {
                    k: (v["headers"], len(v["data"]), v["ended"], v["reset"]) for k, v in self.responses.items()})
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("connection closed")
            for ev in self.conn.receive_data(data):
                r = self.responses.get(getattr(ev, "stream_id", None))
                if isinstance(ev, h2.events.ResponseReceived):
                    r["headers"] = dict(ev.headers)
                elif isinstance(ev, h2.events.DataReceived):
                    r["data"] += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    r["ended"] = True
                elif isinstance(ev, h2.events.StreamReset):
                    r["reset"] = ev.error_code
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self.goaway = ev.error_code
            self.flush()

    def close(self):
        self.sock.close()


class OutboundH2(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        scope = st.ClassScope(cls)
        cls.backend = st.start_backend(scope, "reviews", "v1")
        cls.workdir = st.make_tempdir(scope)
        cls.log = os.path.join(cls.workdir, "access.log")
        # A rewrite on one path, for both clients (the header-operations
        # filter gives the head builders their authority and path).
        vs = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
              "spec:\n  hosts: [reviews]\n  http:\n  - match: [{uri: {prefix: /rw}}]\n"
              "    rewrite: {uri: /new, authority: rewritten.example}\n"
              "    headers: {request: {set: {x-filter: set}}, response: {add: {x-resp: added}}}\n"
              "    route: [{destination: {host: reviews}}]\n"
              "  - route: [{destination: {host: reviews}}]\n")
        cfg = st.registry_yaml({("reviews", "v1"): cls.backend.port}) + vs
        cls.proxy = st.start_proxy(scope, cfg, workdir=cls.workdir, args=["--access-log", cls.log])

    def url(self, path):
        return "http://reviews:9080" + path

    def test_get_post_head(self):
        status, hdrs, body, _ = curl(self.proxy.outbound_port, self.url("/hello?x=1"))
        self.assertEqual(status, 200)
        seen = json.loads(body)
        self.assertEqual(seen["path"], "/hello?x=1")
        self.assertEqual(seen["headers"]["host"], "reviews:9080")
        self.assertEqual(seen["http_version"], "HTTP/1.1")
        self.assertEqual(hdrs["x-backend-service"], "reviews")
        self.assertNotIn("connection", hdrs)

        status, _, body, _ = curl(self.proxy.outbound_port, self.url("/post"), "-d", "abc=1")
        seen = json.loads(body)
        self.assertEqual((status, seen["method"], seen["body_len"]), (200, "POST", 5))
        self.assertEqual(seen["headers"]["content-length"], "5")

        status, hdrs, body, _ = curl(self.proxy.outbound_port, self.url("/head"), "-I")
        self.assertEqual(status, 200)
        self.assertGreater(int(hdrs["content-length"]), 0)   # the GET's length, no body
        self.assertNotIn(b"{", body)

    def test_rewrite_and_header_operations(self):
        """VirtualService rewrite and headers, the same for an HTTP/2 and an
        HTTP/1.1 client."""
        status, hdrs, body, _ = curl(self.proxy.outbound_port, self.url("/rw?x=1"))
        seen = json.loads(body)
        self.assertEqual((status, seen["path"], seen["headers"]["host"]), (200, "/new?x=1", "rewritten.example"))
        self.assertEqual(seen["headers"]["x-filter"], "set")
        self.assertEqual(hdrs.get("x-resp"), "added")
        r = st.request(self.proxy.outbound_port, "GET", "/rw?x=2", host="reviews:9080")
        self.assertEqual((r.json()["path"], r.json()["headers"]["host"]), ("/new?x=2", "rewritten.example"))
        self.assertEqual(r.header("x-resp"), "added")

    def test_cookies_joined_for_http1(self):
        """HTTP/2 sends each cookie as its own field; the HTTP/1.1 app gets
        one Cookie line (RFC 9113 8.2.3)."""
        c = H2Client(self.proxy.outbound_port)
        self.addCleanup(c.close)
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "reviews:9080"),
                                  (":path", "/cookies"), ("cookie", "a=1"), ("cookie", "b=2")], end_stream=True)
        c.responses[sid] = {"headers": None, "data": b"", "ended": False, "reset": None}
        c.flush()
        c.pump(lambda: c.responses[sid]["ended"])
        self.assertEqual(json.loads(c.responses[sid]["data"])["headers"]["cookie"], "a=1; b=2")

    def test_local_answer_on_a_stream(self):
        status, hdrs, body, _ = curl(self.proxy.outbound_port, "http://nowhere:9080/x")
        self.assertEqual(status, 404)
        self.assertEqual(hdrs["sinew-error"], "no_route")
        self.assertIn(b"no route for host", body)
        self.assertEqual(int(hdrs["content-length"]), len(body))

    def test_bodies_both_ways(self):
        """3 MiB of unknown length up (chunked to the app, windows given
        back as it goes), 5 MB down (chunked by the app: unframed on the
        stream)."""
        data = os.urandom(3 << 20)
        status, _, body, _ = curl(self.proxy.outbound_port, self.url("/up"), "-T", "-", "-X", "POST", data=data)
        seen = json.loads(body)
        self.assertEqual(status, 200)
        self.assertEqual(seen["body_len"], len(data))
        self.assertEqual(seen["body_sha256"], hashlib.sha256(data).hexdigest())
        self.assertEqual(seen["headers"].get("transfer-encoding"), "chunked")

        status, hdrs, body, _ = curl(self.proxy.outbound_port, self.url("/down?size=5000000&chunked=1"))
        self.assertEqual((status, len(body)), (200, 5000000))
        self.assertEqual(body[:32], b"0123456789abcdef" * 2)
        self.assertNotIn("transfer-encoding", hdrs)

    def test_many_streams_one_connection(self):
        before = st.metric_sum(self.proxy.metrics(), "sinew_downstream_connections_total")
        r = subprocess.run(["nghttp", "-v", "-n", "-m", "20", "-H", ":authority: reviews:9080",
                            "http://127.0.0.1:%d/many" % self.proxy.outbound_port],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count(":status: 200"), 20, r.stdout[-2000:])
        after = st.metric_sum(self.proxy.metrics(), "sinew_downstream_connections_total")
        self.assertEqual(after - before, 1)

    def test_h2load(self):
        r = subprocess.run(["h2load", "-n", "1000", "-c", "4", "-m", "10", "-H", ":authority: reviews:9080",
                            "http://127.0.0.1:%d/load" % self.proxy.outbound_port],
                           capture_output=True, text=True, timeout=60)
        self.assertIn("1000 succeeded, 0 failed, 0 errored", r.stdout, r.stdout)
        self.assertIn("status codes: 1000 2xx", r.stdout)

    def test_sinew_load_h2(self):
        """`sinew load --h2`: 2 connections x 8 streams through the proxy."""
        sinew = os.path.join(os.path.dirname(st.PROXY), "sinew")
        r = subprocess.run([sinew, "load", "--h2", "8", "-c", "2", "-q", "0", "-n", "2000", "--json",
                            "-H", "Host: reviews:9080", "http://127.0.0.1:%d/load" % self.proxy.outbound_port],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        res = json.loads(r.stdout)
        self.assertEqual((res["completed"], res["status"], res["connects"]), (2000, {"200": 2000}, 2))

    def test_client_reset_ends_only_its_stream(self):
        c = H2Client(self.proxy.outbound_port)
        self.addCleanup(c.close)
        slow = c.request("/slow?delay_ms=800")
        quick = c.request("/quick")
        c.pump(lambda: c.responses[quick]["ended"])
        self.assertEqual(c.responses[quick]["headers"][":status"], "200")
        c.conn.reset_stream(slow)
        c.flush()
        again = c.request("/again")
        c.pump(lambda: c.responses[again]["ended"])
        self.assertEqual(json.loads(c.responses[again]["data"])["path"], "/again")
        # the reset stream is recorded as the client's going
        deadline = time.time() + 5
        while time.time() < deadline:
            if "downstream_disconnect" in open(self.log).read():
                break
            time.sleep(0.1)
        self.assertIn("downstream_disconnect", open(self.log).read())

    def test_metrics_and_access_log(self):
        curl(self.proxy.outbound_port, self.url("/logged"))
        m = self.proxy.metrics()
        self.assertGreaterEqual(st.metric_sum(m, "sinew_downstream_http2_connections_total"), 1)
        deadline = time.time() + 5
        entry = None
        while time.time() < deadline and entry is None:
            for line in open(self.log):
                e = json.loads(line)
                if e.get("path") == "/logged":
                    entry = e
            time.sleep(0.05)
        self.assertIsNotNone(entry)
        self.assertEqual(entry["protocol"], "HTTP/2")
        self.assertEqual(entry["response_code"], 200)

    def test_http1_still_works_on_the_same_listener(self):
        r = st.request(self.proxy.outbound_port, "GET", "/h1", host="reviews:9080")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["path"], "/h1")

    def test_preface_after_http1_is_refused(self):
        """The preface counts only as a connection's first bytes."""
        c = st.RawConn(self.proxy.outbound_port)
        self.addCleanup(c.close)
        c.send(b"GET /first HTTP/1.1\r\nHost: reviews:9080\r\n\r\n")
        self.assertEqual(c.read_response().status, 200)
        c.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        self.assertEqual(c.read_response().status, 505)


class ToAnHTTP2App(unittest.TestCase):
    """An app that speaks HTTP/2 (nghttpd, nghttp2-server): a Service port
    named http2-web makes the proxy speak HTTP/2 to it, every request over
    one connection, whatever the client speaks."""

    @classmethod
    def setUpClass(cls):
        scope = st.ClassScope(cls)
        cls.docroot = st.make_tempdir(scope)
        with open(os.path.join(cls.docroot, "hello.txt"), "w") as f:
            f.write("hello from nghttpd\n")
        cls.big = os.urandom(100000)
        with open(os.path.join(cls.docroot, "big.bin"), "wb") as f:
            f.write(cls.big)
        cls.port = st.free_port()
        cls.ng = st.spawn(["nghttpd", "--no-tls", "-d", cls.docroot, str(cls.port)])
        scope.addCleanup(st.stop_process, cls.ng)
        st.wait_port(cls.port)
        cfg = ("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n"
               "  ports:\n  - {name: http2-web, port: 8080}\n---\n"
               "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: web-1}\nspec:\n"
               "  address: 127.0.0.1\n  ports: {http2-web: %d}\n  labels: {app: web}\n---\n" % cls.port +
               "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web}\n"
               "spec:\n  hosts: [web]\n  http:\n  - match: [{uri: {prefix: /old}}]\n"
               "    rewrite: {uri: /hello.txt}\n    route: [{destination: {host: web}}]\n"
               "  - route: [{destination: {host: web}}]\n---\n"
               # an HTTP/1.1 port, upgraded by a DestinationRule
               "apiVersion: v1\nkind: Service\nmetadata: {name: legacy}\nspec:\n  selector: {app: legacy}\n"
               "  ports:\n  - {name: http, port: 8081}\n---\n"
               "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: legacy-1}\nspec:\n"
               "  address: 127.0.0.1\n  ports: {http: %d}\n  labels: {app: legacy}\n---\n" % cls.port +
               "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: legacy}\n"
               "spec:\n  host: legacy\n  trafficPolicy:\n    connectionPool:\n"
               "      http: {h2UpgradePolicy: UPGRADE}\n")
        cls.proxy = st.start_proxy(scope, cfg)

    def test_http1_and_http2_clients(self):
        r = st.request(self.proxy.outbound_port, "GET", "/hello.txt", host="web:8080")
        self.assertEqual((r.status, r.body), (200, b"hello from nghttpd\n"))
        self.assertEqual(r.header("server", "").split()[0], "nghttpd")
        status, hdrs, body, _ = curl(self.proxy.outbound_port, "http://web:8080/hello.txt")
        self.assertEqual((status, body), (200, b"hello from nghttpd\n"))

    def test_h2_upgrade_policy(self):
        """An http port with h2UpgradePolicy: UPGRADE reaches the HTTP/2-only
        app (without it the app would get HTTP/1.1 and refuse it)."""
        r = st.request(self.proxy.outbound_port, "GET", "/hello.txt", host="legacy:8081")
        self.assertEqual((r.status, r.body), (200, b"hello from nghttpd\n"))
        self.assertNotIn("h2UpgradePolicy", self.proxy.stderr())   # no "not implemented" warning

    def test_endpoint_not_listening(self):
        """An HTTP/2 endpoint whose port refuses the connection: 503
        upstream_connect_failure at once (after the default retries), to
        HTTP/1.1 and HTTP/2 clients alike -- once the request hung until the
        client gave up."""
        dead = st.closed_port()
        cfg = ("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n"
               "  ports:\n  - {name: http2-web, port: 8080}\n---\n"
               "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: web-1}\nspec:\n"
               "  address: 127.0.0.1\n  ports: {http2-web: %d}\n  labels: {app: web}\n" % dead)
        p = st.start_proxy(self, cfg)
        t0 = time.time()
        r = st.request(p.outbound_port, "GET", "/hello.txt", host="web:8080", timeout=10)
        self.assertEqual((r.status, r.header("sinew-error")), (503, "upstream_connect_failure"), r)
        status, hdrs, _, _ = curl(p.outbound_port, "http://web:8080/hello.txt", timeout=10)
        self.assertEqual(status, 503)
        self.assertLess(time.time() - t0, 3.0)

    def test_rewrite_to_an_http2_app(self):
        status, _, body, _ = curl(self.proxy.outbound_port, "http://web:8080/old")
        self.assertEqual((status, body), (200, b"hello from nghttpd\n"))

    def test_many_bodies_over_one_connection(self):
        """3 MB of whole responses through one upstream connection: bytes
        a closed stream held go back to the connection's window (1 MiB),
        or the connection would stall after ten of them."""
        before = st.metric_sum(self.proxy.metrics(), "sinew_upstream_connections_total")
        for i in range(30):
            status, _, body, _ = curl(self.proxy.outbound_port, "http://web:8080/big.bin", timeout=10)
            self.assertEqual((status, len(body)), (200, len(self.big)), "response %d" % i)
            self.assertEqual(body, self.big)
        self.assertLessEqual(st.metric_sum(self.proxy.metrics(), "sinew_upstream_connections_total") - before, 1)

    def test_h2load_one_upstream_connection(self):
        before = st.metric_sum(self.proxy.metrics(), "sinew_upstream_connections_total")
        r = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "10", "-H", ":authority: web:8080",
                            "http://127.0.0.1:%d/hello.txt" % self.proxy.outbound_port],
                           capture_output=True, text=True, timeout=60)
        self.assertIn("2000 succeeded, 0 failed, 0 errored", r.stdout, r.stdout)
        self.assertLessEqual(st.metric_sum(self.proxy.metrics(), "sinew_upstream_connections_total") - before, 1)


H2_STREAMER = r'''
import socket, sys, threading
import h2.config, h2.connection, h2.events
SIZE = int(sys.argv[1])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(16)
print(ls.getsockname()[1], flush=True)

def serve(sock):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    pending = {}
    pattern = bytes(range(256)) * 65   # byte i of a body is i % 256
    while True:
        data = sock.recv(65536)
        if not data:
            return
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                # no content-length: the length is unknown to the proxy
                conn.send_headers(ev.stream_id, [(":status", "200"), ("content-type", "application/octet-stream")])
                pending[ev.stream_id] = SIZE
        for sid in list(pending):
            while pending[sid] > 0:
                n = min(16384, pending[sid], conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                if n <= 0:
                    break
                off = (SIZE - pending[sid]) % 256
                conn.send_data(sid, pattern[off:off + n])
                pending[sid] -= n
            if pending[sid] == 0:
                conn.end_stream(sid)
                del pending[sid]
        sock.sendall(conn.data_to_send())

while True:
    s, _ = ls.accept()
    threading.Thread(target=serve, args=(s,), daemon=True).start()
'''


class LongBodyFromAnHTTP2App(unittest.TestCase):
    """40 MB of unknown length from an HTTP/2 app to a slowish HTTP/1.1
    client: chunked on the way, windows given back as the client reads,
    nothing reset, every byte in order. (The framing the proxy adds is kept
    out of what it gives back to the windows -- h2_upstream.c -- so the
    buffer stays within one window however long the stream; this test
    does not reach that bound, it checks the relay.)"""

    def test_slow_reader(self):
        size = 40 << 20
        p = st.spawn(["/usr/bin/python3", "-c", H2_STREAMER, str(size)], stdout=subprocess.PIPE, text=True)
        self.addCleanup(st.stop_process, p)
        port = int(p.stdout.readline())
        cfg = ("apiVersion: v1\nkind: Service\nmetadata: {name: big}\nspec:\n  selector: {app: big}\n"
               "  ports:\n  - {name: http2, port: 8080}\n---\n"
               "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: big-1}\nspec:\n"
               "  address: 127.0.0.1\n  ports: {http2: %d}\n  labels: {app: big}\n" % port)
        proxy = st.start_proxy(self, cfg)
        s = socket.create_connection(("127.0.0.1", proxy.outbound_port), timeout=20)
        self.addCleanup(s.close)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: big:8080\r\n\r\n")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        raw = bytearray()
        head = b""
        while b"\r\n\r\n" not in raw:
            raw += s.recv(4096)
        head, _, rest = bytes(raw).partition(b"\r\n\r\n")
        self.assertIn(b"transfer-encoding: chunked", head.lower())
        body = bytearray()
        buf = bytearray(rest)
        deadline = time.time() + 60
        while time.time() < deadline:
            # parse complete chunks from buf
            while True:
                i = buf.find(b"\r\n")
                if i < 0:
                    break
                n = int(buf[:i].split(b";")[0], 16)
                if len(buf) < i + 2 + n + 2:
                    break
                body += buf[i + 2:i + 2 + n]
                del buf[:i + 2 + n + 2]
                if n == 0:
                    break
            if len(body) >= size or (buf[:3] == b"0\r\n"):
                break
            data = s.recv(65536)
            self.assertTrue(data, "the proxy closed after %d of %d bytes" % (len(body), size))
            buf += data
            time.sleep(0.0005)   # a slow reader
        self.assertEqual(len(body), size)
        self.assertEqual(bytes(body), bytes(range(256)) * (size // 256))


class Churn(unittest.TestCase):
    """Clients that go away at any moment, on both kinds of endpoint: a
    few hundred streams -- downloads, uploads of unknown length, slow
    answers -- each reset or its connection dropped at a random point, for
    a bounded time, through one proxy to an HTTP/1.1 app and to an HTTP/2
    app. The proxy must stay up and answer well afterwards; under ASan
    every path that ends an exchange early is checked for memory errors."""

    @classmethod
    def setUpClass(cls):
        scope = st.ClassScope(cls)
        cls.backend = st.start_backend(scope, "reviews", "v1")
        cls.docroot = st.make_tempdir(scope)
        with open(os.path.join(cls.docroot, "big.bin"), "wb") as f:
            f.write(os.urandom(400000))
        cls.ngport = st.free_port()
        cls.ng = st.spawn(["nghttpd", "--no-tls", "-d", cls.docroot, str(cls.ngport)])
        scope.addCleanup(st.stop_process, cls.ng)
        st.wait_port(cls.ngport)
        cfg = (st.registry_yaml({("reviews", "v1"): cls.backend.port}) +
               "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n"
               "  ports:\n  - {name: http2-web, port: 8080}\n---\n"
               "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: web-1}\nspec:\n"
               "  address: 127.0.0.1\n  ports: {http2-web: %d}\n  labels: {app: web}\n" % cls.ngport)
        cls.proxy = st.start_proxy(scope, cfg)

    def test_random_resets_and_drops(self):
        import random
        rnd = random.Random(7)
        deadline = time.time() + 8
        conns = 0
        while time.time() < deadline:
            conns += 1
            c = H2Client(self.proxy.outbound_port, timeout=5)
            sids = []
            for _ in range(rnd.randint(1, 12)):
                kind = rnd.choice(["h1big", "h1slow", "h2big", "upload"])
                sid = c.conn.get_next_available_stream_id()
                if kind == "h1big":
                    hdr = ("reviews:9080", "/big?size=%d" % rnd.randint(1, 2000000))
                elif kind == "h1slow":
                    hdr = ("reviews:9080", "/slow?delay_ms=%d" % rnd.randint(0, 300))
                elif kind == "h2big":
                    hdr = ("web:8080", "/big.bin")
                else:
                    hdr = ("reviews:9080", "/up")
                method = "POST" if kind == "upload" else "GET"
                c.conn.send_headers(sid, [(":method", method), (":scheme", "http"), (":authority", hdr[0]),
                                          (":path", hdr[1])], end_stream=method == "GET")
                if kind == "upload":
                    room = min(c.conn.local_flow_control_window(sid), c.conn.max_outbound_frame_size)
                    if room > 0:
                        c.conn.send_data(sid, os.urandom(rnd.randint(1, room)))
                c.responses[sid] = {"headers": None, "data": b"", "ended": False, "reset": None}
                sids.append(sid)
            c.flush()
            # read a little, then reset some streams, then maybe drop all
            try:
                c.sock.settimeout(0.05)
                for _ in range(rnd.randint(0, 5)):
                    try:
                        data = c.sock.recv(65536)
                    except socket.timeout:
                        break
                    if not data:
                        break
                    c.conn.receive_data(data)
                for sid in sids:
                    if rnd.random() < 0.5:
                        try:
                            c.conn.reset_stream(sid)
                        except Exception:
                            pass
                c.flush()
            except OSError:
                pass
            if rnd.random() < 0.7:
                c.close()
        self.assertGreater(conns, 10)
        # the proxy is up and answers both ways, on fresh connections
        status, _, body, _ = curl(self.proxy.outbound_port, "http://reviews:9080/after")
        self.assertEqual(status, 200)
        status, _, body, _ = curl(self.proxy.outbound_port, "http://web:8080/big.bin", timeout=10)
        self.assertEqual((status, len(body)), (200, 400000))
        r = st.request(self.proxy.outbound_port, "GET", "/h1-after", host="reviews:9080")
        self.assertEqual(r.status, 200)
        # nothing left open once the clients are gone
        deadline = time.time() + 10
        while time.time() < deadline:
            active = st.metric_sum(self.proxy.metrics(), "sinew_downstream_connections_active")
            if active <= 1:
                break
            time.sleep(0.2)
        self.assertLessEqual(active, 1)


class InboundH2OverMTLS(unittest.TestCase):
    """h2c to A's outbound → (HTTP/1.1 over mTLS) → B's inbound → the app;
    and h2c straight to B's inbound (PERMISSIVE: plaintext allowed)."""

    @classmethod
    def setUpClass(cls):
        scope = st.ClassScope(cls)
        d = tempfile.mkdtemp(prefix="sinew-h2-")
        scope.addCleanup(shutil.rmtree, d, True)
        certs = test_mtls.Certs(d)
        cls.app = st.start_backend(scope, "reviews", "v1")
        cls.b = st.start_proxy(scope, test_mtls.b_config(cls.app.port), outbound=False, inbound=True,
                               app="127.0.0.1:%d" % cls.app.port,
                               args=["--service", "reviews", "--labels", "app=reviews,version=v1",
                                     "--service-account", "reviews"] + certs.args("reviews"))
        cls.a = st.start_proxy(scope, test_mtls.a_config(cls.b.inbound_port),
                               args=["--service", "productpage", "--service-account", "productpage"] +
                               certs.args("productpage"))

    def test_through_the_pair(self):
        data = os.urandom(300000)
        status, _, body, _ = curl(self.a.outbound_port, "http://reviews:9080/pair", "--data-binary", "@-",
                                  data=data)
        seen = json.loads(body)
        self.assertEqual(status, 200)
        self.assertEqual(seen["body_sha256"], hashlib.sha256(data).hexdigest())
        mb = self.b.metrics()
        self.assertGreaterEqual(st.metric_sum(mb, "sinew_requests_total", reporter="destination",
                                              connection_security_policy="mutual_tls"), 1)

    def test_h2c_to_the_inbound_listener(self):
        status, _, body, _ = curl(self.b.inbound_port, "http://reviews:9080/in")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["path"], "/in")
        self.assertGreaterEqual(st.metric_sum(self.b.metrics(), "sinew_downstream_http2_connections_total"), 1)


class InboundToAnHTTP2App(unittest.TestCase):
    """The inbound listener speaks to its app in the protocol the app's
    Service port declares, or, undeclared, in the client's (Envoy's
    USE_DOWNSTREAM_PROTOCOL): an h2c client reaches an HTTP/2-only app
    (nghttpd) on an undeclared port; an HTTP/1.1 client still gets
    HTTP/1.1 to the app, and an http-declared port stays HTTP/1.1."""

    def start(self, port_name):
        d = st.make_tempdir(self)
        with open(os.path.join(d, "hello.txt"), "w") as f:
            f.write("hello from nghttpd\n")
        port = st.free_port()
        ng = st.spawn(["nghttpd", "--no-tls", "-d", d, str(port)])
        self.addCleanup(st.stop_process, ng)
        st.wait_port(port)
        cfg = ("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n"
               "  ports:\n  - {name: %s, port: 8080}\n---\n"
               "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: web-1}\nspec:\n"
               "  address: 127.0.0.1\n  ports: {%s: %d}\n  labels: {app: web}\n" % (port_name, port_name, port))
        return st.start_proxy(self, cfg, outbound=False, inbound=True, app="127.0.0.1:%d" % port,
                              args=["--service", "web", "--labels", "app=web"])

    def test_undeclared_port_follows_the_client(self):
        p = self.start("web")
        status, _, body, _ = curl(p.inbound_port, "http://web:8080/hello.txt")
        self.assertEqual((status, body), (200, b"hello from nghttpd\n"))
        # HTTP/1.1 from the client: HTTP/1.1 to the app, which nghttpd refuses.
        r = st.request(p.inbound_port, "GET", "/hello.txt", host="web:8080")
        self.assertEqual(r.status, 502, r)

    def test_declared_http2_port(self):
        p = self.start("http2-web")
        r = st.request(p.inbound_port, "GET", "/hello.txt", host="web:8080")
        self.assertEqual((r.status, r.body), (200, b"hello from nghttpd\n"))


class RawH1Upstream:
    """An HTTP/1.1 endpoint that keeps each request's raw bytes (head,
    chunks, trailers) and answers 200 once the request is whole."""

    def __init__(self):
        self.requests = []
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.one, args=(c,), daemon=True).start()

    def one(self, c):
        buf = b""
        with c:
            c.settimeout(10)
            while True:
                try:
                    d = c.recv(65536)
                except OSError:
                    return
                if not d:
                    return
                buf += d
                head, sep, rest = buf.partition(b"\r\n\r\n")
                if not sep:
                    continue
                chunked = b"transfer-encoding: chunked" in head.lower()
                if (chunked and (rest.startswith(b"0\r\n") or b"\r\n0\r\n" in rest) and rest.endswith(b"\r\n\r\n")) or \
                        (not chunked and len(rest) >= int((re.search(rb"(?i)content-length: *(\d+)", head) or
                                                          re.match(rb"()", b"")).group(1) or 0)):
                    self.requests.append(buf)
                    c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    buf = b""

    def close(self):
        self.srv.close()


class RequestTrailers(unittest.TestCase):
    """An HTTP/2 client's request trailers reach an HTTP/1.1 endpoint in the
    last chunk (RFC 9112 7.1.2), the body chunked even when it was whole
    before the request went; fields a trailer must not carry (here
    authorization) are dropped. (nghttp2 itself refuses a content-length
    trailer: PROTOCOL_ERROR.)"""

    def test_trailers_in_the_last_chunk(self):
        up = RawH1Upstream()
        self.addCleanup(up.close)
        cfg = st.registry_yaml({("reviews", "v1"): up.port})
        p = st.start_proxy(self, cfg)
        c = H2Client(p.outbound_port)
        self.addCleanup(c.close)
        for body in (b"hello body", b""):
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "reviews:9080"),
                                      (":path", "/t"), ("x-head", "1")])
            if body:
                c.conn.send_data(sid, body)
            c.conn.send_headers(sid, [("x-checksum", "abc123"), ("authorization", "late"), ("x-second", "two")],
                                end_stream=True)
            c.responses[sid] = {"headers": None, "data": b"", "ended": False, "reset": None}
            c.flush()
            c.pump(lambda: c.responses[sid]["ended"] or c.responses[sid]["reset"] is not None)
            self.assertEqual((c.responses[sid]["headers"][":status"], c.responses[sid]["data"]), ("200", b"ok"))
            raw = up.requests[-1]
            head, _, rest = raw.partition(b"\r\n\r\n")
            self.assertIn(b"transfer-encoding: chunked", head.lower(), raw)
            want = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + \
                b"0\r\nx-checksum: abc123\r\nx-second: two\r\n\r\n"
            self.assertEqual(rest, want, raw)


if __name__ == "__main__":
    st.main()
