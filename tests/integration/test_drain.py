#!/usr/bin/python3
"""SIGTERM: the proxy stops accepting, finishes every in-flight request,
closes idle keep-alive connections, reports not-ready while draining, and
exits 0 when done or when --drain-seconds runs out."""

import http.client
import os
import signal
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402


def raw_get(path):
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: reviews\r\n\r\n"


class Drain(unittest.TestCase):

    def setUp(self):
        self.backend = st.start_backend(self, "reviews", "v1")
        self.cfg = st.registry_yaml({("reviews", "v1"): self.backend.port})

    def wait_backend(self, n, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.backend.requests() >= n:
                return
            time.sleep(0.02)
        self.fail("backend saw %d requests, expected %d" % (self.backend.requests(), n))

    def test_sigterm_under_load(self):
        p = st.start_proxy(self, self.cfg, args=["--drain-seconds", "10"])
        port = p.outbound_port

        # Idle keep-alive connections (one request done, now idle).
        idle = []
        for i in range(4):
            c = st.RawConn(port)
            self.addCleanup(c.close)
            c.send(raw_get("/idle/%d" % i))
            self.assertEqual(c.read_response().status, 200)
            idle.append(c)
        # Kept-alive connections whose second request will be in flight.
        reused = []
        for i in range(4):
            c = st.RawConn(port, timeout=15)
            self.addCleanup(c.close)
            c.send(raw_get("/warm/%d" % i))
            self.assertEqual(c.read_response().status, 200)
            reused.append(c)
        base = self.backend.requests()

        # Slow requests in flight: fresh and reused connections, several
        # delays, all still running when SIGTERM arrives.
        results = {}
        lock = threading.Lock()

        def slow_fresh(i, delay):
            try:
                r = st.request(port, "GET", "/slow/%d?delay_ms=%d" % (i, delay), host="reviews",
                               timeout=15)
            except Exception as e:  # noqa: BLE001
                r = e
            with lock:
                results["fresh%d" % i] = r

        def slow_reused(i, delay):
            c = reused[i]
            try:
                c.send(raw_get("/slow-reused/%d?delay_ms=%d" % (i, delay)))
                r = c.read_response()
                r.closed_after = c.closed_by_peer(3.0)
            except Exception as e:  # noqa: BLE001
                r = e
            with lock:
                results["reused%d" % i] = r

        threads = []
        delays = [500, 800, 1200, 1500, 2000]
        for i in range(20):
            threads.append(threading.Thread(target=slow_fresh, args=(i, delays[i % 5]),
                                            daemon=True))
        for i in range(4):
            threads.append(threading.Thread(target=slow_reused, args=(i, delays[(i + 2) % 5]),
                                            daemon=True))
        for t in threads:
            t.start()
        self.wait_backend(base + 24)

        t_term = time.monotonic()
        p.signal(signal.SIGTERM)
        time.sleep(0.2)

        # Not ready while draining.
        try:
            code, _, _ = p.admin_get("/ready", timeout=1.0)
            self.assertEqual(code, 503, "/ready during drain")
        except OSError as e:
            self.fail("admin port unreachable while draining: %r" % e)

        # New connections are refused.
        refused = False
        try:
            s = socket.create_connection((st.LOOPBACK, port), 1.0)
            try:
                s.sendall(raw_get("/after-term"))
                s.settimeout(1.0)
                data = s.recv(100)
                refused = (data == b"")
            except (ConnectionResetError, BrokenPipeError):
                refused = True
            except socket.timeout:
                refused = False  # accepted by the kernel, left hanging
            finally:
                s.close()
        except ConnectionRefusedError:
            refused = True
        self.assertTrue(refused, "a new connection was served after SIGTERM")

        # Idle keep-alive connections are closed promptly.
        for c in idle:
            self.assertTrue(c.closed_by_peer(2.0), "idle keep-alive connection not closed "
                            "while draining")

        for t in threads:
            t.join(15)
        exit_code = p.wait_exit(10)
        t_exit = time.monotonic() - t_term

        failed = {k: v for k, v in results.items()
                  if not (isinstance(v, st.Resp) and v.status == 200)}
        self.assertEqual(len(results), 24)
        self.assertEqual(failed, {}, "in-flight requests failed during drain")
        for i in range(4):
            self.assertTrue(results["reused%d" % i].closed_after,
                            "keep-alive connection left open after its in-flight response")
        self.assertEqual(exit_code, 0, "exit status after drain\n" + p.stderr()[-3000:])
        self.assertLess(t_exit, 5.0, "the proxy took %.1f s to exit after the last request "
                        "(drain-seconds 10)" % t_exit)
        self.assertFalse([e for e in self.backend.log() if e["path"] == "/after-term"])

    def test_sigterm_under_paced_load(self):
        """8 keep-alive clients keep sending (each request takes 50 ms at the
        backend) through SIGTERM. A request the backend received is in
        flight: its client must get the 200. Requests the proxy never read
        (connection closed or refused) are not in flight and may fail."""
        p = st.start_proxy(self, self.cfg, args=["--drain-seconds", "10"])
        port = p.outbound_port
        stop = threading.Event()
        lock = threading.Lock()
        outcome = {}    # path -> Resp or exception
        sent_after_term = []
        t_term = [None]

        def client(ti):
            conn = None
            for k in range(400):
                if stop.is_set():
                    break
                path = "/pl/%d/%d?delay_ms=50" % (ti, k)
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(st.LOOPBACK, port, timeout=10)
                    r = st.request(port, "GET", path, host="reviews", conn=conn)
                    if (r.header("connection") or "").lower() == "close":
                        conn.close()
                        conn = None
                except ConnectionRefusedError as e:
                    r = e
                    with lock:
                        outcome[path] = r
                    break   # the listener is gone: stop
                except Exception as e:  # noqa: BLE001
                    r = e
                    if conn is not None:
                        conn.close()
                    conn = None
                with lock:
                    outcome[path] = r
                    if t_term[0] is not None:
                        sent_after_term.append(path)
            if conn is not None:
                conn.close()

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(8)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        with lock:
            t_term[0] = time.monotonic()
        p.signal(signal.SIGTERM)
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join(15)
        code = p.wait_exit(10)

        received = {e["path"] for e in self.backend.log()}
        in_flight_failed = {k: v for k, v in outcome.items()
                            if k in received and not (isinstance(v, st.Resp) and v.status == 200)}
        non_200 = {k: v for k, v in outcome.items() if isinstance(v, st.Resp) and v.status != 200}
        ok = [k for k, v in outcome.items() if isinstance(v, st.Resp) and v.status == 200]
        self.assertGreater(len(ok), 50, "load did not run")
        self.assertEqual(in_flight_failed, {}, "requests the backend received failed at the "
                         "client during drain")
        self.assertEqual(non_200, {}, "responses other than 200 during drain")
        self.assertEqual(code, 0, p.stderr()[-3000:])

    def test_drain_deadline(self):
        """A request longer than --drain-seconds does not keep the proxy up."""
        p = st.start_proxy(self, self.cfg, args=["--drain-seconds", "2"])
        res = {}

        def long_req():
            try:
                res["r"] = st.request(p.outbound_port, "GET", "/long?delay_ms=20000",
                                      host="reviews", timeout=25)
            except Exception as e:  # noqa: BLE001
                res["r"] = e

        t = threading.Thread(target=long_req, daemon=True)
        t.start()
        self.wait_backend(1)
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        code = p.wait_exit(8)
        elapsed = time.monotonic() - t0
        self.assertIsNotNone(code, "proxy still running 8 s after SIGTERM with drain-seconds 2")
        self.assertEqual(code, 0, p.stderr()[-3000:])
        self.assertGreaterEqual(elapsed, 1.5)
        self.assertLess(elapsed, 4.0)
        t.join(5)
        self.assertFalse(t.is_alive(), "client still waiting after the proxy exited")

    def test_sigterm_idle_exits_fast(self):
        p = st.start_proxy(self, self.cfg, args=["--drain-seconds", "10"])
        r = st.request(p.outbound_port, "GET", "/x", host="reviews")
        self.assertEqual(r.status, 200)
        c = st.RawConn(p.outbound_port)
        self.addCleanup(c.close)
        c.send(raw_get("/idle"))
        self.assertEqual(c.read_response().status, 200)
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        code = p.wait_exit(5)
        self.assertEqual(code, 0, p.stderr()[-3000:])
        self.assertLess(time.monotonic() - t0, 2.0, "an idle proxy should exit at once")
        self.assertTrue(c.closed_by_peer(1.0))

    def test_sigterm_during_slow_upload(self):
        """A request whose body is still arriving when SIGTERM comes is
        in flight too: it completes."""
        p = st.start_proxy(self, self.cfg, args=["--drain-seconds", "10"])
        c = st.RawConn(p.outbound_port, timeout=10)
        self.addCleanup(c.close)
        c.send(b"POST /upload HTTP/1.1\r\nHost: reviews\r\nContent-Length: 10\r\n\r\nabcde")
        time.sleep(0.3)
        p.signal(signal.SIGTERM)
        time.sleep(0.5)
        c.send(b"fghij")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["body_len"], 10)
        self.assertEqual(p.wait_exit(5), 0)


if __name__ == "__main__":
    st.main()
