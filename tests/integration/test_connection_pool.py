#!/usr/bin/python3
"""DestinationRule connectionPool limits, Envoy's way (Istio's
circuit-breaking task): at `tcp.maxConnections` a request waits in the
endpoint's queue for a connection, up to `http.http1MaxPendingRequests`;
only past the queue is it answered 503 `sinew-error: overflow`. A request
waiting keeps its route timeout, and a client that leaves while its
request waits takes it out of the queue. One worker: the limits are per
worker and endpoint."""

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402


def dr(max_conns, max_pending):
    return ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"
            "spec:\n  host: reviews\n  trafficPolicy:\n    connectionPool:\n"
            "      tcp: {maxConnections: %d}\n      http: {http1MaxPendingRequests: %d}\n"
            % (max_conns, max_pending))


def fire(port, n, path, host="reviews", timeout=15.0):
    """n concurrent GETs; returns [(status, sinew-error, seconds)] in start order."""
    out = [None] * n

    def one(i):
        t0 = time.time()
        r = st.request(port, "GET", path, host=host, timeout=timeout)
        out[i] = (r.status, r.header("sinew-error"), time.time() - t0)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for i, t in enumerate(ts):
        t.start()
        time.sleep(0.05)   # in this order
    for t in ts:
        t.join()
    return out


class ConnectionPool(unittest.TestCase):

    def start(self, *docs):
        self.app = st.start_backend(self, "reviews", "v1")
        cfg = st.join_docs(st.registry_yaml({("reviews", "v1"): self.app.port}), *docs)
        return st.start_proxy(self, cfg, args=["--workers", "1"])

    def test_queue_then_overflow(self):
        p = self.start(dr(1, 2))
        got = fire(p.outbound_port, 4, "/slow?delay_ms=600")
        statuses = sorted((s, e) for s, e, _ in got)
        self.assertEqual(statuses, [(200, None)] * 3 + [(503, "overflow")], got)
        # the one past the queue is refused at once; the queued ones are
        # served one after another on the single connection
        refused = [x for x in got if x[0] == 503][0]
        self.assertLess(refused[2], 0.5, got)
        served = sorted(x[2] for x in got if x[0] == 200)
        self.assertGreater(served[2], 1.5, got)
        m = p.metrics()
        self.assertEqual(st.metric_sum(m, "sinew_upstream_pending_requests_total"), 3 - 1)
        self.assertEqual(st.metric_sum(m, "sinew_overflow_total"), 1)
        self.assertEqual(st.metric_sum(m, "sinew_upstream_connections_total"), 1)

    def test_without_limits_nothing_waits(self):
        p = self.start()
        got = fire(p.outbound_port, 4, "/slow?delay_ms=300")
        self.assertEqual([s for s, _, _ in got], [200] * 4, got)
        self.assertEqual(st.metric_sum(p.metrics(), "sinew_upstream_pending_requests_total"), 0)

    def test_waiting_request_keeps_its_route_timeout(self):
        vs = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
              "spec:\n  hosts: [reviews]\n  http:\n  - timeout: 1s\n    route: [{destination: {host: reviews}}]\n")
        p = self.start(dr(1, 5), vs)
        got = fire(p.outbound_port, 2, "/slow?delay_ms=1500")
        self.assertEqual(sorted((s, e) for s, e, _ in got),
                         [(504, "upstream_timeout")] * 2, got)
        # the connection is free again, nobody waits on it
        r = st.request(p.outbound_port, "GET", "/after", host="reviews")
        self.assertEqual(r.status, 200, r)

    def test_client_leaving_while_waiting(self):
        p = self.start(dr(1, 5))
        busy = threading.Thread(target=st.request, args=(p.outbound_port, "GET", "/slow?delay_ms=800"),
                                kwargs={"host": "reviews", "timeout": 10})
        busy.start()
        time.sleep(0.1)
        s = socket.create_connection(("127.0.0.1", p.outbound_port))
        s.sendall(b"GET /gone HTTP/1.1\r\nHost: reviews\r\n\r\n")
        time.sleep(0.2)
        # a reset while its request waits for the connection (a FIN alone
        # is a half-close: the request would still be served)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        busy.join()
        r = st.request(p.outbound_port, "GET", "/after", host="reviews")
        self.assertEqual(r.status, 200, r)
        self.assertNotIn("/gone", [q["path"] for q in self.app.log()])


# Istio's circuit-breaking task's DestinationRule, as its page gives it
# (host httpbin; the conformance files do not carry the task).
ISTIO_CB_DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: httpbin
spec:
  host: httpbin
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: 1
      http:
        http1MaxPendingRequests: 1
        maxRequestsPerConnection: 1
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 3m
      maxEjectionPercent: 100
"""


class CircuitBreakingTask(unittest.TestCase):
    """Istio's circuit-breaking task with its DestinationRule: one client
    connection at a time goes through; three concurrent ones trip the
    breaker (one connection, one waiting: the third is 503 overflow), and
    the overflow counter says how many -- Envoy's
    upstream_rq_pending_overflow, which the task reads."""

    def load(self, port, conns, n):
        r = subprocess.run([os.path.join(st.BIN, "sinew"), "load", "-q", "0", "-c", str(conns), "-n", str(n),
                            "-H", "Host: httpbin", "--json", "--quiet",
                            "http://127.0.0.1:%d/get?delay_ms=30" % port],
                           capture_output=True, text=True, timeout=60)
        self.assertIn(r.returncode, (0, 1), r.stderr)
        return json.loads(r.stdout)

    def test_task(self):
        app = st.start_backend(self, "httpbin", "v1")
        cfg = st.join_docs(st.registry_yaml({("httpbin", "v1"): app.port}), ISTIO_CB_DR)
        p = st.start_proxy(self, cfg, args=["--workers", "1"])
        self.assertNotIn("warning", p.stderr().lower())
        one = self.load(p.outbound_port, 1, 20)
        self.assertEqual(one["completed"], 20, one)
        self.assertEqual(one["errors_total"], 0, one)
        three = self.load(p.outbound_port, 3, 60)
        m = p.metrics()
        overflow = st.metric_sum(m, "sinew_overflow_total")
        ok = st.metric_sum(m, "sinew_requests_total", response_code="200")
        self.assertGreater(overflow, 0, three)
        self.assertGreater(ok, 20, three)
        self.assertEqual(three["errors"]["status"], overflow, three)
        self.assertEqual(three["status"].get("503", 0), overflow, three)
        self.assertEqual(st.metric_sum(m, "sinew_requests_total", response_code="503",
                                       response_flags="overflow"), overflow)
        # the breaker's 503s are the proxy's own: the endpoint is not
        # ejected by outlier detection (consecutive5xxErrors: 1)
        self.assertEqual(st.metric_sum(m, "sinew_outlier_ejections_total"), 0)


if __name__ == "__main__":
    st.main()
