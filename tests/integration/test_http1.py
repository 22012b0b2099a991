#!/usr/bin/python3
"""HTTP/1.1 through the proxy with real clients (raw sockets, http.client,
curl): keep-alive, pipelining, chunked both ways, 100-continue,
absolute-form, HEAD/204, large bodies, slow clients, idle connections,
timeouts, connect failures, header operations and retries from a
VirtualService."""

import hashlib
import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - match:
    - uri:
        prefix: /timeout
    timeout: 0.5s
    route:
    - destination:
        host: reviews
  - match:
    - uri:
        prefix: /headers
    headers:
      request:
        set:
          x-set: set-by-vs
        add:
          x-add: added-by-vs
        remove:
        - x-remove
      response:
        set:
          x-resp-set: resp-set
        add:
          x-resp-add: resp-add
        remove:
        - x-resp-remove
    route:
    - destination:
        host: reviews
  - match:
    - uri:
        prefix: /retry
    retries:
      attempts: 2
      retryOn: 5xx
    route:
    - destination:
        host: reviews
  - match:
    - uri:
        prefix: /pertry
    timeout: 5s
    retries:
      attempts: 2
      perTryTimeout: 0.3s
      retryOn: 5xx
    route:
    - destination:
        host: reviews
  - match:
    - uri:
        prefix: /r429
    retries:
      attempts: 2
      retryOn: connect-failure,429
    route:
    - destination:
        host: reviews
  - match:
    - uri:
        prefix: /gw
    retries:
      attempts: 2
      retryOn: gateway-error
    route:
    - destination:
        host: reviews
  - match:
    - uri:
        prefix: /noretry
    retries:
      attempts: 0
    route:
    - destination:
        host: reviews
  - route:
    - destination:
        host: reviews
"""


def pattern(n):
    p = b"0123456789abcdef"
    return (p * (n // len(p) + 1))[:n]


def raw_get(path, host="reviews", extra=b"", method=b"GET"):
    return method + b" " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n" \
        + extra + b"\r\n"


class Http1(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        scope = st.ClassScope(cls)
        cls.backend = st.start_backend(scope, "reviews", "v1")
        cls.dead_port = st.closed_port()
        cls.half = st.start_backend(scope, "half", "alive")
        cfg = st.join_docs(
            st.registry_yaml({("reviews", "v1"): cls.backend.port,
                              ("dead", "v1"): cls.dead_port,
                              ("half", "alive"): cls.half.port,
                              ("half", "dead"): st.closed_port()},
                             services=["empty"]),
            VS)
        cls.proxy = st.start_proxy(scope, cfg, workdir=st.make_tempdir(scope))
        cls.port = cls.proxy.outbound_port

    def conn(self):
        c = st.RawConn(self.port)
        self.addCleanup(c.close)
        return c

    # -- connection management -------------------------------------------

    def test_keepalive_reuse(self):
        c = self.conn()
        before = self.backend.counts()["connections"]
        for i in range(20):
            c.send(raw_get("/ka/%d" % i))
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["path"], "/ka/%d" % i)
        self.assertFalse(c.closed_by_peer(0.3), "proxy closed a keep-alive connection")
        # New downstream connections reuse pooled upstream connections.
        for i in range(10):
            r = st.request(self.port, "GET", "/fresh/%d" % i, host="reviews")
            self.assertEqual(r.status, 200, r)
        opened = self.backend.counts()["connections"] - before
        self.assertLessEqual(opened, 3, "30 sequential requests opened %d upstream connections"
                             % opened)

    def test_pipelining(self):
        c = self.conn()
        c.send(raw_get("/first?delay_ms=300") +
               b"POST /second HTTP/1.1\r\nHost: reviews\r\nContent-Length: 5\r\n\r\nhello" +
               raw_get("/third"))
        paths = []
        for _ in range(3):
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            paths.append(r.json()["path"])
        self.assertEqual(paths, ["/first?delay_ms=300", "/second", "/third"])
        c.send(raw_get("/fourth"))
        self.assertEqual(c.read_response().json()["path"], "/fourth")

    def test_pipelining_many(self):
        """50 requests in one send, answered in order; the proxy must not
        read unboundedly ahead or reorder."""
        c = self.conn()
        c.send(b"".join(raw_get("/p/%d" % i + ("?delay_ms=20" if i % 7 == 0 else ""))
                        for i in range(50)))
        for i in range(50):
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["path"].split("?")[0], "/p/%d" % i)

    def test_half_close_after_request(self):
        """A client that shuts down its sending side after the request still
        gets the response."""
        c = self.conn()
        c.send(raw_get("/half"))
        c.sock.shutdown(socket.SHUT_WR)
        c.sock.settimeout(5)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["path"], "/half")

    def test_client_aborts(self):
        """Clients that vanish mid-upload, or while the backend is still
        working, do not disturb the proxy."""
        c = st.RawConn(self.port)
        c.send(b"POST /abort-upload HTTP/1.1\r\nHost: reviews\r\nContent-Length: 100000\r\n\r\n"
               + b"x" * 1000)
        time.sleep(0.2)
        c.close()
        c = st.RawConn(self.port)
        c.send(raw_get("/abort-wait?delay_ms=500"))
        time.sleep(0.1)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()  # RST
        time.sleep(0.6)
        for i in range(5):
            r = st.request(self.port, "GET", "/after-abort/%d" % i, host="reviews")
            self.assertEqual(r.status, 200, r)
        self.assertTrue(self.proxy.alive())

    def test_many_concurrent_connections(self):
        n = 200
        conns = []
        try:
            for i in range(n):
                conns.append(st.RawConn(self.port))
            for i, c in enumerate(conns):
                c.send(raw_get("/conc/%d" % i))
            for i, c in enumerate(conns):
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["path"], "/conc/%d" % i)
        finally:
            for c in conns:
                c.close()

    def test_http10_closes(self):
        c = self.conn()
        c.send(b"GET /ten HTTP/1.0\r\nHost: reviews\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["path"], "/ten")
        self.assertTrue(c.closed_by_peer(2.0), "HTTP/1.0 request without keep-alive: "
                        "connection left open")

    def test_http10_client_gets_http11_upstream_and_dechunked_body(self):
        """A proxy sends its own version upstream (RFC 9110 2.5); a chunked
        answer reaches the HTTP/1.0 client without its framing,
        close-delimited."""
        c = self.conn()
        c.send(b"GET /ten11 HTTP/1.0\r\nHost: reviews\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["http_version"], "HTTP/1.1")
        c2 = self.conn()
        c2.send(b"GET /ten-chunked?chunked=1&size=20000 HTTP/1.0\r\nHost: reviews\r\n\r\n")
        r = c2.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.header("transfer-encoding"), r)
        self.assertIsNone(r.header("content-length"), r)
        self.assertEqual(r.header("connection"), "close", r)
        self.assertEqual(r.body, pattern(20000))

    def test_client_connection_close(self):
        c = self.conn()
        c.send(raw_get("/cc", extra=b"Connection: close\r\n"))
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertTrue(c.closed_by_peer(2.0))

    def test_hop_by_hop_headers_not_forwarded(self):
        r = st.request(self.port, "GET", "/hop", host="reviews",
                       headers={"Connection": "keep-alive, x-hop", "X-Hop": "1",
                                "X-End": "2"})
        self.assertEqual(r.status, 200, r)
        seen = r.json()["headers"]
        self.assertNotIn("x-hop", seen, "header named in Connection was forwarded")
        self.assertEqual(seen.get("x-end"), "2")

    def test_backend_closes_connection(self):
        c = self.conn()
        c.send(raw_get("/bc?close=1"))
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["path"], "/bc?close=1")
        if (r.header("connection") or "").lower() != "close":
            c.send(raw_get("/after-close"))
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
        r = st.request(self.port, "GET", "/again", host="reviews")
        self.assertEqual(r.status, 200, r)

    # -- bodies ------------------------------------------------------------

    def test_chunked_request_body(self):
        body = os.urandom(100000)
        chunks, i = [], 0
        sizes = [1, 10, 1000, 4096, 7, 30000, 5]
        k = 0
        while i < len(body):
            n = sizes[k % len(sizes)]
            k += 1
            part = body[i:i + n]
            chunks.append(b"%x\r\n%s\r\n" % (len(part), part))
            i += n
        c = self.conn()
        c.send(b"POST /chunked HTTP/1.1\r\nHost: reviews\r\nTransfer-Encoding: chunked\r\n\r\n")
        for ch in chunks:  # in pieces, so the proxy sees partial chunks
            c.send(ch)
        c.send(b"0\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        got = r.json()
        self.assertEqual(got["body_len"], len(body))
        self.assertEqual(got["body_sha256"], hashlib.sha256(body).hexdigest())
        c.send(raw_get("/after-chunked"))
        self.assertEqual(c.read_response().json()["path"], "/after-chunked")

    def test_chunked_request_body_curl(self):
        d = st.make_tempdir(self)
        path = os.path.join(d, "body")
        body = os.urandom(300000)
        with open(path, "wb") as f:
            f.write(body)
        cp = st.curl(["-H", "Host: reviews", "-H", "Transfer-Encoding: chunked",
                      "--data-binary", "@" + path, "http://127.0.0.1:%d/curl-chunked" % self.port])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        got = json.loads(cp.stdout)
        self.assertEqual(got["body_len"], len(body))
        self.assertEqual(got["body_sha256"], hashlib.sha256(body).hexdigest())

    def test_chunked_response(self):
        c = self.conn()
        c.send(raw_get("/cr?chunked=1&size=100000"))
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, pattern(100000))
        c.send(raw_get("/cr?chunked=1"))
        r = c.read_response()
        self.assertEqual(r.json()["path"], "/cr?chunked=1")
        c.send(raw_get("/after-chunked-response"))
        self.assertEqual(c.read_response().json()["path"], "/after-chunked-response")

    def test_expect_100_continue_raw(self):
        body = os.urandom(100000)
        c = self.conn()
        c.send(b"POST /expect HTTP/1.1\r\nHost: reviews\r\nContent-Length: %d\r\n"
               b"Expect: 100-continue\r\n\r\n" % len(body))
        c.sock.settimeout(3.0)
        interim = c.read_response(skip_1xx=False)
        self.assertEqual(interim.status, 100, "expected 100 Continue before the body, got %r"
                         % interim)
        c.sock.settimeout(10.0)
        c.send(body)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["body_len"], len(body))
        self.assertEqual(r.json()["body_sha256"], hashlib.sha256(body).hexdigest())

    def test_expect_100_continue_curl(self):
        d = st.make_tempdir(self)
        path = os.path.join(d, "body")
        body = os.urandom(2 * 1024 * 1024)
        with open(path, "wb") as f:
            f.write(body)
        t0 = time.monotonic()
        # curl waits up to --expect100-timeout for the 100 before sending
        # anyway; a proxy that never answers makes this slow.
        cp = st.curl(["-H", "Host: reviews", "-H", "Expect: 100-continue",
                      "--expect100-timeout", "10", "--data-binary", "@" + path,
                      "http://127.0.0.1:%d/curl-expect" % self.port])
        elapsed = time.monotonic() - t0
        self.assertEqual(cp.returncode, 0, cp.stderr)
        got = json.loads(cp.stdout)
        self.assertEqual(got["body_len"], len(body))
        self.assertEqual(got["body_sha256"], hashlib.sha256(body).hexdigest())
        self.assertLess(elapsed, 5.0, "curl waited for 100 Continue")

    def test_expect_100_continue_no_route(self):
        """A request the proxy refuses gets its final status without the
        client having to send the body."""
        c = self.conn()
        c.send(b"POST /x HTTP/1.1\r\nHost: nosuch\r\nContent-Length: 100000\r\n"
               b"Expect: 100-continue\r\n\r\n")
        c.sock.settimeout(3.0)
        r = c.read_response(skip_1xx=False)
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.header("sinew-error"), "no_route")

    def test_large_bodies(self):
        body = os.urandom(1024 * 1024)
        r = st.request(self.port, "POST", "/big", host="reviews", body=body, timeout=30)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["body_len"], len(body))
        self.assertEqual(r.json()["body_sha256"], hashlib.sha256(body).hexdigest())
        r = st.request(self.port, "GET", "/big?size=%d" % (1024 * 1024), host="reviews",
                       timeout=30)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.body), 1024 * 1024)
        self.assertEqual(r.body, pattern(1024 * 1024))
        # Both directions at once, 4 in parallel.
        def both(ti, i):
            rr = st.request(self.port, "POST", "/both?size=%d" % (1024 * 1024), host="reviews",
                            body=body, timeout=30)
            return rr
        res = st.run_parallel(4, 4, both, deadline_s=40)
        for rr in res:
            self.assertIsInstance(rr, st.Resp, rr)
            self.assertEqual(rr.status, 200)
            self.assertEqual(rr.body, pattern(1024 * 1024))

    def test_slow_reader(self):
        """A client that reads slowly gets every byte (backpressure, no
        truncation)."""
        c = self.conn()
        c.send(raw_get("/slow?size=4000000"))
        time.sleep(1.5)  # socket buffers fill; the proxy must wait, not drop
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), 4000000)
        self.assertEqual(r.body, pattern(4000000))
        c.send(raw_get("/after-slow"))
        self.assertEqual(c.read_response().json()["path"], "/after-slow")

    def test_head(self):
        c = self.conn()
        c.send(raw_get("/head?size=1000", method=b"HEAD"))
        r = c.read_response(method="HEAD")
        self.assertEqual(r.status, 200, r)
        if r.header("content-length") is not None:
            self.assertEqual(r.header("content-length"), "1000")
        # No body bytes were sent: the next response parses cleanly.
        c.send(raw_get("/after-head"))
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["path"], "/after-head")

    def test_204_and_304(self):
        c = self.conn()
        for status in (204, 304):
            c.send(raw_get("/s?status=%d" % status))
            r = c.read_response()
            self.assertEqual(r.status, status, r)
            self.assertEqual(r.body, b"")
            c.send(raw_get("/after-%d" % status))
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["path"], "/after-%d" % status)

    def test_absolute_form_curl_x(self):
        cp = st.curl(["-x", "http://127.0.0.1:%d" % self.port, "-D", "-",
                      "http://reviews:9080/abs?q=1"])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        head, _, body = cp.stdout.partition("\n\n")  # text mode: CRLF is \n
        self.assertIn(" 200", head.splitlines()[0])
        got = json.loads(body)
        self.assertEqual((got["service"], got["path"]), ("reviews", "/abs?q=1"))
        # Raw absolute-form whose authority differs from Host: the
        # request-target wins (RFC 9112 §3.2.2).
        r, _ = st.raw_exchange(self.port, b"GET http://reviews/abs2 HTTP/1.1\r\n"
                                          b"Host: nosuch\r\n\r\n")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["path"], "/abs2")

    def test_absolute_form_query_without_path(self):
        """http://host?x=1 is valid; its origin-form is /?x=1."""
        r, _ = st.raw_exchange(self.port, b"GET http://reviews?x=1 HTTP/1.1\r\nHost: reviews\r\n\r\n")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["path"], "/?x=1")

    def test_reg_name_host(self):
        """A Host with sub-delims is a valid reg-name: routed (here to no
        route), not refused as malformed."""
        r, _ = st.raw_exchange(self.port, b"GET / HTTP/1.1\r\nHost: 0.0.0.0=5000\r\n\r\n")
        self.assertEqual(r.status, 404, r)
        self.assertEqual(r.header("sinew-error"), "no_route", r)
        r, _ = st.raw_exchange(self.port, b"GET / HTTP/1.1\r\nHost: a,b\r\n\r\n")
        self.assertEqual(r.status, 400, r)

    def test_bad_content_length_refused_before_head_ends(self):
        """A duplicate Content-Length is refused at once, while the rest of
        the head has not come (nor ever will)."""
        c = self.conn()
        c.send(b"POST / HTTP/1.1\r\nHost: reviews\r\nContent-Length: 5\r\n"
               b"Content-Length: 5\r\nX-Still-Coming: ")
        c.sock.settimeout(3)
        r = c.read_response()
        self.assertEqual(r.status, 400, r)
        self.assertIn(b"duplicate content-length", r.body)

    def test_head_then_close_is_502(self):
        """An upstream that sends a response head and closes before the
        body: nothing reached the client yet, so it gets 502
        upstream_reset rather than a bare close."""
        r = st.request(self.port, "GET", "/noretry?partial=head", host="reviews")
        self.assertEqual(r.status, 502, r)
        self.assertEqual(r.header("sinew-error"), "upstream_reset", r)

    def test_head_forwarded_before_body(self):
        """A response head is forwarded as soon as it is complete, not
        held until the first body byte (streams, long polls)."""
        c = self.conn()
        t0 = time.monotonic()
        c.send(raw_get("/stream?head_first_ms=3000"))
        c.sock.settimeout(10)
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = c.sock.recv(4096)
            self.assertTrue(chunk, "closed before the head")
            got += chunk
        head_s = time.monotonic() - t0
        self.assertTrue(got.startswith(b"HTTP/1.1 200"), got)
        self.assertLess(head_s, 2.0, "the head waited %.2fs for the body" % head_s)

    def test_backend_status_passthrough(self):
        """An application's own error is not a mesh error: no sinew-error."""
        r = st.request(self.port, "GET", "/noretry?status=503", host="reviews")
        self.assertEqual(r.status, 503)
        self.assertIsNone(r.header("sinew-error"), r)
        r = st.request(self.port, "GET", "/x?status=404", host="reviews")
        self.assertEqual(r.status, 404)
        self.assertIsNone(r.header("sinew-error"), r)

    # -- proxy-made responses --------------------------------------------

    def test_vs_timeout(self):
        t0 = time.monotonic()
        r = st.request(self.port, "GET", "/timeout?delay_ms=3000", host="reviews")
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 504, r)
        self.assertEqual(r.header("sinew-error"), "upstream_timeout")
        self.assertGreaterEqual(elapsed, 0.45)
        self.assertLess(elapsed, 1.5)
        r = st.request(self.port, "GET", "/timeout?delay_ms=50", host="reviews")
        self.assertEqual(r.status, 200, r)

    def test_connect_failure(self):
        t0 = time.monotonic()
        r = st.request(self.port, "GET", "/", host="dead")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.header("sinew-error"), "upstream_connect_failure")
        self.assertLess(time.monotonic() - t0, 3.0)

    def test_default_policy_retries_connect_failures(self):
        """Service half has one live endpoint and one with nothing listening.
        With no VirtualService, the default policy (DESIGN.md §6) retries
        connection failures on another endpoint: the client never sees
        them."""
        c = st.KeepAliveClient(self.port)
        self.addCleanup(c.close)
        bad = []
        for i in range(40):
            r = (c.request("GET", "/half/%d" % i, "half") if i % 2 else
                 st.request(self.port, "GET", "/half/%d" % i, host="half"))
            if r.status != 200:
                bad.append(r)
        self.assertEqual(bad, [], "%d of 40 requests failed although a healthy endpoint "
                         "exists" % len(bad))

    def test_no_route(self):
        for host in ("nosuch", "nosuch:9080", "reviews.otherns", "nosuch.default.svc.cluster.local"):
            with self.subTest(host=host):
                r = st.request(self.port, "GET", "/", host=host)
                self.assertEqual(r.status, 404, r)
                self.assertEqual(r.header("sinew-error"), "no_route")

    def test_no_healthy_upstream(self):
        r = st.request(self.port, "GET", "/", host="empty")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.header("sinew-error"), "no_healthy_upstream")

    def test_upstream_reset(self):
        r = st.request(self.port, "GET", "/noretry?drop=1", host="reviews")
        self.assertEqual(r.status, 502, r)
        self.assertEqual(r.header("sinew-error"), "upstream_reset")

    def test_upstream_reset_mid_body(self):
        """Backend resets (RST) or closes (FIN) after part of the body: the
        client must see the failure -- the connection closed before the
        body is complete -- never a short body passed off as whole, and
        never a connection left hanging."""
        for mode in ("1", "fin", "1", "fin", "1"):
            with self.subTest(partial=mode):
                c = self.conn()
                c.send(raw_get("/noretry?partial=%s&size=100000" % mode))
                c.sock.settimeout(5.0)
                try:
                    r = c.read_response()
                except EOFError:
                    continue  # closed mid-body: the client sees the failure
                except socket.timeout:
                    self.fail("backend closed mid-body (partial=%s); the client was left "
                              "waiting 5 s with a truncated body" % mode)
                self.assertEqual(r.status, 502, "truncated body passed off as complete: %r" % r)

    def test_retry_per_try_timeout(self):
        t0 = time.monotonic()
        r = st.request(self.port, "GET", "/pertry?slow_first=1&slow_ms=3000", host="reviews",
                       headers={"x-fail-key": "pertry-once"})
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.attempts("pertry-once"), 2)
        self.assertGreaterEqual(elapsed, 0.25)
        self.assertLess(elapsed, 1.5, "perTryTimeout 0.3s did not cut the first attempt")
        t0 = time.monotonic()
        r = st.request(self.port, "GET", "/pertry?slow_first=10&slow_ms=3000", host="reviews",
                       headers={"x-fail-key": "pertry-always"})
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 504, r)
        self.assertEqual(r.header("sinew-error"), "upstream_timeout")
        self.assertEqual(self.attempts("pertry-always"), 3)
        self.assertLess(elapsed, 2.5)

    def test_retry_on_status_and_gateway_error(self):
        # A status code in retryOn makes it retriable (Istio semantics).
        r = st.request(self.port, "GET", "/r429?fail_first=1&fail_status=429", host="reviews",
                       headers={"x-fail-key": "r429"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.attempts("r429"), 2)
        r = st.request(self.port, "GET", "/r429?fail_first=1&fail_status=503", host="reviews",
                       headers={"x-fail-key": "r429-503"})
        self.assertEqual(r.status, 503, r)
        self.assertEqual(self.attempts("r429-503"), 1)
        # gateway-error: 502, 503, 504 are retried, 500 is not.
        for status, tries in ((503, 2), (502, 2), (504, 2), (500, 1)):
            key = "gw-%d" % status
            r = st.request(self.port, "GET", "/gw?fail_first=1&fail_status=%d" % status,
                           host="reviews", headers={"x-fail-key": key})
            self.assertEqual(r.status, 200 if tries == 2 else status, r)
            self.assertEqual(self.attempts(key), tries, key)

    def test_bad_upstream_response(self):
        """Response smuggling is refused too: an upstream response with
        conflicting framing is not relayed (502 with sinew-error)."""
        for q in ("header.Content-Length=5",                 # two different lengths
                  "header.Transfer-Encoding=chunked",        # TE with CL
                  "bighead=70000"):                          # head over 64 KiB
            with self.subTest(q=q[:40]):
                c = self.conn()
                c.send(raw_get("/noretry?" + q))
                c.sock.settimeout(5)
                try:
                    r = c.read_response()
                except EOFError:
                    self.fail("connection closed without a response")
                self.assertEqual(r.status, 502, r)
                self.assertEqual(r.header("sinew-error"), "upstream_protocol_error", r)
                self.assertIsNone(r.header("x-backend-service"), "backend head relayed")

    def test_header_operations(self):
        r = st.request(self.port, "GET",
                       "/headers?header.x-resp-set=orig&header.x-resp-remove=1", host="reviews",
                       headers={"x-set": "from-client", "x-add": "from-client",
                                "x-remove": "gone", "x-keep": "kept"})
        self.assertEqual(r.status, 200, r)
        seen = r.json()["headers"]
        self.assertEqual(seen.get("x-set"), "set-by-vs")
        adds = [v.strip() for v in seen.get("x-add", "").split(",")]
        self.assertIn("added-by-vs", adds)
        self.assertIn("from-client", adds)
        self.assertNotIn("x-remove", seen)
        self.assertEqual(seen.get("x-keep"), "kept")
        self.assertEqual(r.header_all("x-resp-set"), ["resp-set"])
        self.assertEqual(r.header("x-resp-add"), "resp-add")
        self.assertIsNone(r.header("x-resp-remove"))
        # Other routes are untouched.
        r = st.request(self.port, "GET", "/plain", host="reviews", headers={"x-remove": "kept"})
        self.assertEqual(r.json()["headers"].get("x-remove"), "kept")
        self.assertIsNone(r.header("x-resp-add"))

    def attempts(self, key):
        return len([e for e in self.backend.log() if e["headers"].get("x-fail-key") == key])

    def test_retries(self):
        # Fails once, then succeeds: the retry hides the failure.
        r = st.request(self.port, "GET", "/retry?fail_first=1", host="reviews",
                       headers={"x-fail-key": "retry-once"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.attempts("retry-once"), 2)
        # Fails twice, succeeds on the third try (attempts: 2 retries).
        r = st.request(self.port, "GET", "/retry?fail_first=2", host="reviews",
                       headers={"x-fail-key": "retry-twice"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.attempts("retry-twice"), 3)
        # Always fails: 1 try + 2 retries, then the backend's 503 goes back.
        r = st.request(self.port, "GET", "/retry?fail_first=100", host="reviews",
                       headers={"x-fail-key": "retry-always"})
        self.assertEqual(r.status, 503, r)
        self.assertEqual(self.attempts("retry-always"), 3)
        # attempts: 0 disables retries.
        r = st.request(self.port, "GET", "/noretry?fail_first=1", host="reviews",
                       headers={"x-fail-key": "noretry"})
        self.assertEqual(r.status, 503, r)
        self.assertEqual(self.attempts("noretry"), 1)
        # Default policy (DESIGN.md §6): a 5xx response is not retried.
        r = st.request(self.port, "GET", "/default?fail_first=1", host="reviews",
                       headers={"x-fail-key": "default"})
        self.assertEqual(r.status, 503, r)
        self.assertEqual(self.attempts("default"), 1)
        # A retried POST carries its whole body every time.
        body = os.urandom(20000)
        r = st.request(self.port, "POST", "/retry?fail_first=1", host="reviews", body=body,
                       headers={"x-fail-key": "retry-post"})
        self.assertIn(r.status, (200, 503), r)
        tries = [e for e in self.backend.log() if e["headers"].get("x-fail-key") == "retry-post"]
        self.assertEqual(len(tries), 2 if r.status == 200 else 1)
        for e in tries:
            self.assertEqual(e["body_len"], len(body))
            self.assertEqual(e["body_sha256"], hashlib.sha256(body).hexdigest())
        # 4xx is not a 5xx.
        r = st.request(self.port, "GET", "/retry?fail_first=1&fail_status=429", host="reviews",
                       headers={"x-fail-key": "retry-429"})
        self.assertEqual(r.status, 429, r)
        self.assertEqual(self.attempts("retry-429"), 1)


class RetryBudget(unittest.TestCase):
    """With its own proxy, so that no other test spends or saves budget."""

    def test_budget_caps_retries(self):
        backend = st.start_backend(self, "reviews", "v1")
        cfg = st.join_docs(st.registry_yaml({("reviews", "v1"): backend.port}), VS)
        p = st.start_proxy(self, cfg)
        # The retry budget (20 % of requests + 10/s; a burst of at most 100
        # saved up) caps retries when everything fails: 300 always-failing
        # requests with attempts 2 must not make 900 attempts.
        n = 300
        before = backend.requests()
        c = st.KeepAliveClient(p.outbound_port)
        self.addCleanup(c.close)
        t0 = time.monotonic()
        for i in range(n):
            c.request("GET", "/retry?fail_first=1000", "reviews",
                      headers={"x-fail-key": "budget-%d" % i})
        elapsed = time.monotonic() - t0
        attempts = backend.requests() - before
        allowed = n + 100 + 0.2 * n + 10 * (elapsed + 1) + 10
        self.assertLessEqual(attempts, allowed, "%d failing requests made %d attempts in "
                             "%.1f s; the retry budget allows about %d" % (n, attempts, elapsed,
                                                                          allowed))
        m = p.metrics()
        self.assertGreater(st.metric_sum(m, "sinew_upstream_retry_budget_exhausted_total"), 0)


class SlowClients(unittest.TestCase):
    """Header and idle timeouts, each with its own proxy."""

    def setUp(self):
        self.backend = st.start_backend(self, "reviews", "v1")
        cfg = st.registry_yaml({("reviews", "v1"): self.backend.port})
        self.proxy = st.start_proxy(self, cfg, args=["--request-header-timeout", "1s",
                                                     "--idle-timeout", "1s"])
        self.port = self.proxy.outbound_port

    def expect_timeout_close(self, c, t0, limit=3.0):
        """The proxy answers 408 (request_header_timeout) or just closes,
        within limit seconds of t0."""
        c.sock.settimeout(max(0.1, limit - (time.monotonic() - t0)))
        try:
            r = c.read_response()
        except EOFError:
            r = None
        except socket.timeout:
            self.fail("connection still open %.1f s after the slow client started"
                      % (time.monotonic() - t0))
        if r is not None:
            self.assertEqual(r.status, 408, r)
            self.assertEqual(r.header("sinew-error"), "request_header_timeout")
            self.assertTrue(c.closed_by_peer(1.0))
        return time.monotonic() - t0

    def test_request_header_timeout(self):
        c = st.RawConn(self.port)
        self.addCleanup(c.close)
        t0 = time.monotonic()
        c.send(b"GET /slow HTTP/1.1\r\nHost: rev")
        elapsed = self.expect_timeout_close(c, t0)
        self.assertGreaterEqual(elapsed, 0.8)
        self.assertEqual(self.backend.requests(), 0)

    def test_slowloris_trickle(self):
        """Trickling a byte every 200 ms does not extend the header timeout."""
        c = st.RawConn(self.port)
        self.addCleanup(c.close)
        data = b"GET /slow HTTP/1.1\r\nHost: reviews\r\nX-Slow: " + b"a" * 100
        t0 = time.monotonic()
        closed = False
        for b in data:
            try:
                c.send(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if time.monotonic() - t0 > 3.0:
                break
            time.sleep(0.2)
            if c.closed_by_peer(0.01):
                closed = True
                break
        elapsed = time.monotonic() - t0
        if not closed:
            elapsed = self.expect_timeout_close(c, t0, limit=3.5)
        self.assertLess(elapsed, 3.5, "slow client kept the connection %.1f s" % elapsed)
        self.assertEqual(self.backend.requests(), 0)

    def test_silent_connection_closed(self):
        c = st.RawConn(self.port)
        self.addCleanup(c.close)
        t0 = time.monotonic()
        self.assertTrue(c.closed_by_peer(3.0), "a connection that never sent a byte was kept "
                        "open for 3 s with 1 s timeouts")
        self.assertGreaterEqual(time.monotonic() - t0, 0.8)

    def test_idle_keepalive_timeout(self):
        c = st.RawConn(self.port)
        self.addCleanup(c.close)
        # Busy connection: requests every 0.4 s for 2.4 s keep it open.
        for i in range(6):
            c.send(raw_get("/busy/%d" % i))
            self.assertEqual(c.read_response().status, 200)
            time.sleep(0.4)
        t0 = time.monotonic()
        self.assertTrue(c.closed_by_peer(3.0), "idle keep-alive connection not closed")
        self.assertGreaterEqual(time.monotonic() - t0, 0.5)

    def test_slow_body_is_not_a_header_timeout(self):
        """The header timeout covers the head only: a body that arrives
        slowly but steadily is forwarded."""
        c = st.RawConn(self.port)
        self.addCleanup(c.close)
        c.send(b"POST /slowbody HTTP/1.1\r\nHost: reviews\r\nContent-Length: 6\r\n\r\n")
        for b in b"abcdef":
            time.sleep(0.3)
            c.send(bytes([b]))
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["body_len"], 6)


class Inbound(unittest.TestCase):

    def test_inbound_forwards_to_app(self):
        app = st.start_backend(self, "reviews", "v2")
        cfg = st.registry_yaml({("reviews", "v2"): app.port})
        p = st.start_proxy(self, cfg, outbound=False, inbound=True,
                           app="127.0.0.1:%d" % app.port,
                           args=["--service", "reviews", "--labels", "app=reviews,version=v2"])
        for host in ("reviews", "anything.example", "10.1.2.3:9080"):
            r = st.request(p.inbound_port, "POST", "/in?x=1", host=host, body=b"abc")
            self.assertEqual(r.status, 200, r)
            got = r.json()
            self.assertEqual((got["version"], got["path"], got["body_len"]), ("v2", "/in?x=1", 3))
        self.assertEqual(app.requests(), 3)
        m = p.metrics()
        self.assertEqual(st.metric_sum(m, "sinew_requests_total", reporter="destination",
                                       response_code="200"), 3)


if __name__ == "__main__":
    st.main()
