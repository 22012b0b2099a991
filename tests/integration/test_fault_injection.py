#!/usr/bin/python3
"""Istio's fault-injection task with the unmodified bookinfo files: a 7 s
delay and an HTTP 500 abort for jason's requests to ratings only."""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

JASON = {"end-user": "jason"}


class FaultInjection(unittest.TestCase):

    def test_ratings_test_delay(self):
        bi = st.Bookinfo(self, ["virtual-service-ratings-test-delay.yaml"])
        ratings = bi.backends[("ratings", "v1")]
        result = {}

        def jason():
            t0 = time.monotonic()
            try:
                result["resp"] = bi.get("ratings", "/ratings/0", headers=JASON, timeout=20)
            except Exception as e:  # noqa: BLE001
                result["resp"] = e
            result["elapsed"] = time.monotonic() - t0

        t = threading.Thread(target=jason, daemon=True)
        t0 = time.time()
        t.start()
        # While jason waits, everyone else is served at once, on new and on
        # kept-alive connections, and the delayed request has not reached
        # the backend yet.
        time.sleep(0.3)
        client = st.KeepAliveClient(bi.port)
        self.addCleanup(client.close)
        fast = []
        for i in range(10):
            for who in (None, {"end-user": "bob"}, {"end-user": "Jason"}):
                s = time.monotonic()
                r = (client.request("GET", "/ratings/%d" % i, "ratings", headers=who) if i % 2
                     else bi.get("ratings", "/ratings/%d" % i, headers=who))
                fast.append((time.monotonic() - s, who, r))
        for elapsed, who, r in fast:
            self.assertEqual(r.status, 200, "%r: %r" % (who, r))
            self.assertEqual(r.json()["version"], "v1")
            self.assertLess(elapsed, 1.0, "request from %r took %.2f s" % (who, elapsed))
        self.assertTrue(all("jason" != (r.json()["headers"].get("end-user")) for _, _, r in fast))
        self.assertTrue(t.is_alive(), "jason's request finished before 7 s: %r" % result)
        t.join(15)
        self.assertFalse(t.is_alive(), "jason's request did not finish in 15 s")
        r = result["resp"]
        self.assertIsInstance(r, st.Resp, "jason's request failed: %r" % r)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["service"], "ratings")
        self.assertIsNone(r.header("sinew-error"), r)
        self.assertGreaterEqual(result["elapsed"], 7.0)
        self.assertLess(result["elapsed"], 9.0)
        # The delay happens before the request is forwarded.
        arrivals = [rec["time"] for rec in ratings.log()
                    if rec["headers"].get("end-user") == "jason"]
        self.assertEqual(len(arrivals), 1, arrivals)
        self.assertGreaterEqual(arrivals[0] - t0, 6.8)

    def test_ratings_test_abort(self):
        bi = st.Bookinfo(self, ["virtual-service-ratings-test-abort.yaml"])
        ratings = bi.backends[("ratings", "v1")]
        client = st.KeepAliveClient(bi.port)
        self.addCleanup(client.close)
        for i in range(20):
            r = (client.request("GET", "/ratings/%d" % i, "ratings", headers=JASON) if i % 2
                 else bi.get("ratings", "/ratings/%d" % i, headers=JASON))
            self.assertEqual(r.status, 500, r)
            self.assertEqual(r.header("sinew-error"), "fault_abort", r)
        self.assertEqual(ratings.requests(), 0, "an aborted request reached the backend")
        for i in range(20):
            who = [None, {"end-user": "bob"}, {"end-user": "jasonx"}][i % 3]
            r = (client.request("GET", "/ratings/%d" % i, "ratings", headers=who) if i % 2
                 else bi.get("ratings", "/ratings/%d" % i, headers=who))
            self.assertEqual(r.status, 200, "%r: %r" % (who, r))
            self.assertIsNone(r.header("sinew-error"), r)
            self.assertEqual(r.json()["version"], "v1")
        self.assertEqual(ratings.requests(), 20)
        # The fault is on ratings only: jason reaches reviews and details.
        for host in ("reviews", "details"):
            r = bi.get(host, "/", headers=JASON)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["service"], host)

    def test_fault_injection_details_v1(self):
        """fault-injection-details-v1.yaml aborts every request to details
        with 555 (the file carries its own DestinationRule)."""
        bi = st.Bookinfo(self, ["fault-injection-details-v1.yaml"], dr=None)
        details = bi.backends[("details", "v1")]
        for i in range(10):
            r = bi.get("details", "/details/%d" % i, headers=JASON if i % 2 else None)
            self.assertEqual(r.status, 555, r)
            self.assertEqual(r.header("sinew-error"), "fault_abort", r)
        self.assertEqual(details.requests(), 0)
        r = bi.get("ratings", "/")
        self.assertEqual(r.status, 200, r)

    def test_abort_percentage(self):
        """fault.abort with percentage 30: about 30 % of 600 requests are
        aborted (503, fault_abort), the rest reach the backend."""
        vs = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts:
  - ratings
  http:
  - fault:
      abort:
        percentage:
          value: 30
        httpStatus: 503
    route:
    - destination:
        host: ratings
        subset: v1
"""
        ratings = st.start_backend(self, "ratings", "v1")
        cfg = st.join_docs(st.bookinfo_registry({("ratings", "v1"): ratings.port}),
                           st.bookinfo_file("destination-rule-all.yaml"), vs)
        p = st.start_proxy(self, cfg)
        c = st.KeepAliveClient(p.outbound_port)
        self.addCleanup(c.close)
        n, aborted = 600, 0
        for i in range(n):
            r = c.request("GET", "/r/%d" % i, "ratings")
            if r.status == 503:
                self.assertEqual(r.header("sinew-error"), "fault_abort", r)
                aborted += 1
            else:
                self.assertEqual(r.status, 200, r)
        self.assertLessEqual(abs(100.0 * aborted / n - 30), 7, "%d of %d aborted" % (aborted, n))
        self.assertEqual(ratings.requests(), n - aborted)


if __name__ == "__main__":
    st.main()
