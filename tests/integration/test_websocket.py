#!/usr/bin/python3
"""WebSocket (and any HTTP/1.1 Upgrade) through sinew-proxy: the Upgrade is
forwarded (Istio allows upgrades by default), the 101 goes back to the
client, and from then on bytes are relayed both ways (src/proxy/tcp.c,
sn_tcp_tunnel) until the close handshake. Real client and server
(python3-websockets), one proxy in file mode and a sidecar pair over mutual
TLS; 1 MiB each way; the close code and reason reach the other end; the
101 is in metrics. An upgrade the app does not take is an ordinary
response; h2c is never forwarded."""

import asyncio
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
import test_mtls  # noqa: E402  (its openssl-made SVIDs)

import websockets  # noqa: E402  (python3-websockets)

MIB = 1024 * 1024


class EchoServer:
    """A WebSocket echo app on loopback, in its own thread and loop. It
    remembers what each connection saw: the path, and the close code and
    reason the client sent."""

    def __init__(self):
        self.seen = []
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("echo server did not start")

    async def _echo(self, ws, path=None):
        rec = {"path": ws.path}
        self.seen.append(rec)
        try:
            async for msg in ws:
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
        rec["close"] = (ws.close_code, ws.close_reason)

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def main():
            self.server = await websockets.serve(self._echo, "127.0.0.1", 0, max_size=4 * MIB)
            self.port = self.server.sockets[0].getsockname()[1]
            self.ready.set()
            await self.server.wait_closed()
        self.loop.run_until_complete(main())

    def last_close(self, timeout=5):
        """The close code and reason the last connection's handler saw. The
        handler records them after the close handshake, which the client
        may finish a moment before: wait for it."""
        deadline = time.time() + timeout
        while time.time() < deadline and (not self.seen or "close" not in self.seen[-1]):
            time.sleep(0.02)
        return self.seen[-1].get("close") if self.seen else None

    def close(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.thread.join(10)


def exchange_through(port, host="reviews:9080", path="/echo"):
    """Connects to the proxy at port as host, sends 1 MiB and two small
    messages, reads the echoes, closes with 4001 "bye". Returns
    (echoes, close code the server sent back)."""
    async def run():
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        async with websockets.connect("ws://%s%s" % (host, path), sock=s, max_size=4 * MIB,
                                      open_timeout=10, close_timeout=10) as ws:
            big = os.urandom(MIB)
            out = []
            for msg in (big, "hello", b"\x00" * 10):
                await ws.send(msg)
                out.append(await asyncio.wait_for(ws.recv(), 20))
            await ws.close(code=4001, reason="bye")
            return [big, "hello", b"\x00" * 10], out, ws.close_code
    return asyncio.run(run())


class WebSocket(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        scope = st.ClassScope(cls)
        cls.echo = EchoServer()
        scope.addCleanup(cls.echo.close)
        cls.backend = st.start_backend(scope, "ratings", "v1")
        cfg = st.registry_yaml({("reviews", "v1"): cls.echo.port, ("ratings", "v1"): cls.backend.port})
        cls.proxy = st.start_proxy(scope, cfg)

    def test_echo_one_mib_each_way(self):
        sent, got, code = exchange_through(self.proxy.outbound_port)
        self.assertEqual(got, sent)
        self.assertEqual(code, 4001)
        rec = self.echo.seen[-1]
        self.assertEqual(rec["path"], "/echo")
        self.assertEqual(self.echo.last_close(), (4001, "bye"))
        m = self.proxy.metrics()
        self.assertGreaterEqual(st.metric_sum(m, "sinew_upgraded_connections_total"), 1)
        self.assertGreaterEqual(st.metric_sum(m, "sinew_requests_total", response_code="101"), 1)

    def test_many_in_parallel(self):
        """Ten tunnels at once, each intact."""
        results = []

        def one():
            results.append(exchange_through(self.proxy.outbound_port))
        threads = [threading.Thread(target=one) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(len(results), 10)
        for sent, got, code in results:
            self.assertEqual(got, sent)
            self.assertEqual(code, 4001)

    def test_upgrade_the_app_does_not_take(self):
        """The Upgrade reaches the app; an app that answers 200 instead of
        101 gives an ordinary response on a connection that stays HTTP."""
        c = st.RawConn(self.proxy.outbound_port)
        self.addCleanup(c.close)
        c.send(b"GET /plain HTTP/1.1\r\nHost: ratings\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        seen = r.json()["headers"]
        self.assertEqual(seen.get("upgrade"), "websocket")
        self.assertEqual(seen.get("connection"), "upgrade")
        c.send(b"GET /after HTTP/1.1\r\nHost: ratings\r\n\r\n")
        self.assertEqual(c.read_response().json()["path"], "/after")

    def test_h2c_upgrade_not_forwarded(self):
        r = st.request(self.proxy.outbound_port, "GET", "/h2c", host="ratings",
                       headers={"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c",
                                "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA"})
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("upgrade", r.json()["headers"])


class WebSocketOverMTLS(unittest.TestCase):
    """Outbound proxy A → (mTLS) → inbound proxy B → the app."""

    @classmethod
    def setUpClass(cls):
        scope = st.ClassScope(cls)
        d = tempfile.mkdtemp(prefix="sinew-ws-")
        scope.addCleanup(shutil.rmtree, d, True)
        certs = test_mtls.Certs(d)
        cls.echo = EchoServer()
        scope.addCleanup(cls.echo.close)
        cls.b = st.start_proxy(scope, test_mtls.b_config(cls.echo.port), outbound=False, inbound=True,
                               app="127.0.0.1:%d" % cls.echo.port,
                               args=["--service", "reviews", "--labels", "app=reviews,version=v1",
                                     "--service-account", "reviews"] + certs.args("reviews"))
        cls.a = st.start_proxy(scope, test_mtls.a_config(cls.b.inbound_port),
                               args=["--service", "productpage", "--service-account", "productpage"] +
                               certs.args("productpage"))

    def test_echo_over_the_pair(self):
        sent, got, code = exchange_through(self.a.outbound_port)
        self.assertEqual(got, sent)
        self.assertEqual(code, 4001)
        self.assertEqual(self.echo.last_close(), (4001, "bye"))
        mb = self.b.metrics()
        self.assertGreaterEqual(st.metric_sum(mb, "sinew_requests_total", reporter="destination",
                                              response_code="101",
                                              connection_security_policy="mutual_tls"), 1)
        self.assertGreaterEqual(st.metric_sum(self.a.metrics(), "sinew_upgraded_connections_total"), 1)


if __name__ == "__main__":
    st.main()
