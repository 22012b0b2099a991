#!/usr/bin/python3
"""DestinationRule outlierDetection through a real proxy (one worker,
round robin, so that every endpoint is asked in turn),
with Istio's field meanings: an endpoint answering 503 is taken out of the
pool after consecutive5xxErrors in a row and gets no request for
baseEjectionTime, then comes back; a second ejection lasts twice as long;
an endpoint that refuses connections is ejected the same way (a failure
of local origin counts as a 5xx); minHealthPercent stops ejections when
too few endpoints would be left; the counters and the config dump say so."""

import json
import os
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

BAD_APP = r'''
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(503)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''


def policy(extra=""):
    return ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"
            "spec:\n  host: reviews\n  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}\n"
            "    outlierDetection:\n"
            "      consecutive5xxErrors: 2\n      interval: 1s\n      baseEjectionTime: 2s\n"
            "      maxEjectionPercent: 100\n" + extra)


NO_RETRIES = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
              "spec:\n  hosts: [reviews]\n  http:\n  - retries: {attempts: 0}\n"
              "    route: [{destination: {host: reviews}}]\n")


class Outlier(unittest.TestCase):

    def start(self, dr, n_good=2, bad_port=None, vs=NO_RETRIES):
        good = [st.start_backend(self, "reviews", "v%d" % (i + 1)) for i in range(n_good)]
        ports = {("reviews", "v%d" % (i + 1)): b.port for i, b in enumerate(good)}
        if bad_port is None:
            bad_port = st.free_port()
            bad = st.spawn(["/usr/bin/python3", "-c", BAD_APP, str(bad_port)])
            self.addCleanup(st.stop_process, bad)
            st.wait_port(bad_port)
        ports[("reviews", "bad")] = bad_port
        self.bad_port = bad_port
        cfg = st.join_docs(st.registry_yaml(ports), dr, *([vs] if vs else []))
        return st.start_proxy(self, cfg, args=["--workers", "1"])

    def statuses(self, p, n):
        return [st.request(p.outbound_port, "GET", "/", host="reviews").status for _ in range(n)]

    def test_ejected_then_back_then_longer(self):
        p = self.start(policy())
        self.assertNotIn("outlierDetection", p.stderr())   # no "not implemented" warning
        got = self.statuses(p, 40)
        self.assertEqual(got.count(503), 2, got)            # two in a row, then out
        self.assertNotIn(503, got[got.index(503, got.index(503) + 1) + 1:], got)
        m = p.metrics()
        self.assertEqual(st.metric_sum(m, "sinew_outlier_ejections_total"), 1)
        self.assertEqual(st.metric_sum(m, "sinew_outlier_ejected_endpoints"), 1)
        # visible in the config dump and in proxy-config endpoints
        _, _, body = p.admin_get("/config_dump")
        dump = json.loads(body)
        self.assertEqual([(e["cluster"], e["address"]) for e in dump["outlier_ejections"]],
                         [("outbound|9080||reviews.default.svc.cluster.local", "127.0.0.1:%d" % self.bad_port)])
        self.assertTrue(0 < dump["outlier_ejections"][0]["remaining_ms"] <= 2000)
        out = subprocess.run([os.path.join(st.BIN, "sinew"), "proxy-config", "endpoints", "--admin",
                              "127.0.0.1:%d" % p.admin_port], capture_output=True, text=True, timeout=10).stdout
        bad_line = [line for line in out.splitlines() if ":%d" % self.bad_port in line]
        self.assertEqual(len(bad_line), 1, out)
        self.assertIn("ejected (", bad_line[0])
        self.assertEqual(sum("healthy" in line for line in out.splitlines()), 2, out)
        # still out within baseEjectionTime
        self.assertEqual(self.statuses(p, 20).count(503), 0)
        time.sleep(2.2)
        # back in: two more failures eject it again, now for 2 x 2 s
        got = self.statuses(p, 40)
        self.assertEqual(got.count(503), 2, got)
        self.assertEqual(st.metric_sum(p.metrics(), "sinew_outlier_ejections_total"), 2)
        time.sleep(2.2)
        self.assertEqual(self.statuses(p, 20).count(503), 0, "the second ejection lasts 4 s")
        time.sleep(2.2)
        self.assertGreater(self.statuses(p, 40).count(503), 0, "back in after 4 s")
        _, _, body = p.admin_get("/config_dump")
        self.assertIn(b'"outlier_detection":{"consecutive_5xx":2,"consecutive_gateway":0', body)
        self.assertIn(b'"base_ejection_ms":2000,"max_ejection_percent":100', body)

    def test_refused_connections_eject(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
        s.close()   # nothing listens there: connections are refused
        p = self.start(policy(), bad_port=dead, vs=None)
        got = self.statuses(p, 30)
        self.assertEqual(got.count(200), 30, got)   # the default policy retries connect failures
        m = p.metrics()
        self.assertEqual(st.metric_sum(m, "sinew_outlier_ejections_total"), 1)
        fails = st.metric_sum(m, "sinew_upstream_connect_failures_total")
        self.assertEqual(fails, 2, "no connection is tried once it is out")

    def test_min_health_percent_keeps_everyone_in(self):
        # one good endpoint of two: ejecting the bad one would leave 50 %,
        # under minHealthPercent 60: the pool stays whole
        p = self.start(policy("      minHealthPercent: 60\n"), n_good=1)
        got = self.statuses(p, 40)
        self.assertGreater(got.count(503), 4, got)


if __name__ == "__main__":
    st.main()
