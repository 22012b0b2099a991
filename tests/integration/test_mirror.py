#!/usr/bin/python3
"""VirtualService mirroring (Istio's traffic-shadowing task): every request
goes to v1 and a copy to v2, whose answer is dropped; the copy's Host has
"-shadow" after its host; a body that came with the head is copied too;
mirrorPercentage and mirrors[] choose how many; a slow mirror never slows
the primary; a bad mirror fails alone. Real backends, one proxy."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
"""


def vs(mirror):
    return ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
            "spec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews, subset: v1}}]\n"
            + mirror)


def wait_for(fn, want, timeout=3.0):
    deadline = time.time() + timeout
    while time.time() < deadline and fn() < want:
        time.sleep(0.05)
    return fn()


class Mirror(unittest.TestCase):

    def start(self, mirror, v3_delay=0):
        self.v1 = st.start_backend(self, "reviews", "v1")
        self.v2 = st.start_backend(self, "reviews", "v2")
        self.v3 = st.start_backend(self, "reviews", "v3", delay_ms=v3_delay)
        ports = {("reviews", "v1"): self.v1.port, ("reviews", "v2"): self.v2.port,
                 ("reviews", "v3"): self.v3.port}
        return st.start_proxy(self, st.join_docs(st.registry_yaml(ports), DR, vs(mirror)),
                              args=["--workers", "1"])

    def test_mirror_to_v2(self):
        p = self.start("    mirror: {host: reviews, subset: v2}\n")
        for i in range(20):
            r = st.request(p.outbound_port, "GET", "/m/%d" % i, host="reviews:9080",
                           headers={"x-request-id": "rid-%d" % i})
            self.assertEqual(r.json()["version"], "v1")
        self.assertEqual(wait_for(self.v2.requests, 20), 20)
        self.assertEqual(self.v1.requests(), 20)
        log = self.v2.log()
        self.assertEqual(sorted(q["path"] for q in log), sorted("/m/%d" % i for i in range(20)))
        self.assertEqual({q["headers"]["host"] for q in log}, {"reviews-shadow:9080"})
        self.assertEqual(sorted(q["headers"]["x-request-id"] for q in log), sorted("rid-%d" % i for i in range(20)))
        # a body that came with the head is copied
        r = st.request(p.outbound_port, "POST", "/post", host="reviews", body=b"x" * 5000)
        self.assertEqual(r.status, 200)
        wait_for(self.v2.requests, 21)
        post = [q for q in self.v2.log() if q["path"] == "/post"]
        self.assertEqual([(q["method"], q["body_len"], q["headers"]["host"]) for q in post],
                         [("POST", 5000, "reviews-shadow")])
        m = p.metrics()
        self.assertEqual(st.metric_sum(m, "sinew_mirror_requests_total"), 21)
        self.assertEqual(wait_for(lambda: st.metric_sum(p.metrics(), "sinew_mirror_answered_total"), 21), 21)
        _, _, body = p.admin_get("/config_dump")
        self.assertIn(b'"mirrors":[{"cluster":"outbound|9080|v2|reviews.default.svc.cluster.local","percent":100}]',
                      body)
        self.assertNotIn("mirror is not implemented", p.stderr())

    def test_body_after_the_head(self):
        """A body that comes after its head is waited for (briefly), then
        copied; the primary gets it too."""
        p = self.start("    mirror: {host: reviews, subset: v2}\n")
        s = socket.create_connection(("127.0.0.1", p.outbound_port))
        self.addCleanup(s.close)
        s.sendall(b"POST /late HTTP/1.1\r\nHost: reviews\r\nContent-Length: 3000\r\n\r\n")
        time.sleep(0.3)
        s.sendall(b"y" * 3000)
        s.settimeout(5)
        got = b""
        while b"\r\n\r\n" not in got:
            got += s.recv(65536)
        self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:200])
        wait_for(self.v2.requests, 1)
        self.assertEqual([(q["path"], q["body_len"]) for q in self.v2.log()], [("/late", 3000)])
        self.assertEqual([(q["path"], q["body_len"]) for q in self.v1.log()], [("/late", 3000)])

    def test_percentages(self):
        p = self.start("    mirror: {host: reviews, subset: v2}\n    mirrorPercentage: {value: 0}\n")
        for _ in range(30):
            st.request(p.outbound_port, "GET", "/", host="reviews")
        time.sleep(0.3)
        self.assertEqual(self.v2.requests(), 0)

    def test_mirrors_list(self):
        p = self.start("    mirrors:\n    - destination: {host: reviews, subset: v2}\n"
                       "    - destination: {host: reviews, subset: v3}\n      percentage: {value: 50}\n")
        n = 200
        for _ in range(n):
            st.request(p.outbound_port, "GET", "/", host="reviews")
        self.assertEqual(wait_for(self.v2.requests, n), n)
        got = wait_for(self.v3.requests, n // 2, timeout=1.0)
        self.assertTrue(60 <= got <= 140, got)   # 50 % of 200, binomial: 3 sigma is 21

    def test_slow_mirror_never_slows_the_primary(self):
        p = self.start("    mirror: {host: reviews, subset: v3}\n", v3_delay=1500)
        t0 = time.time()
        for _ in range(5):
            self.assertEqual(st.request(p.outbound_port, "GET", "/", host="reviews").status, 200)
        self.assertLess(time.time() - t0, 1.0, "the primary waited for the mirror")
        self.assertEqual(wait_for(self.v3.requests, 5), 5)

    def test_mirror_that_refuses(self):
        p = self.start("    mirror: {host: reviews, subset: v3}\n")
        self.v3.stop()
        for _ in range(5):
            self.assertEqual(st.request(p.outbound_port, "GET", "/", host="reviews").status, 200)
        self.assertEqual(wait_for(lambda: st.metric_sum(p.metrics(), "sinew_mirror_failed_total"), 5), 5)

    def test_both_mirror_and_mirrors_refused(self):
        d = st.make_tempdir(self)
        path = os.path.join(d, "bad.yaml")
        st.write_file(path, st.join_docs(st.registry_yaml({("reviews", "v1"): 1}), DR, vs(
            "    mirror: {host: reviews, subset: v2}\n    mirrors:\n    - destination: {host: reviews}\n")))
        code, err, ready = st.run_proxy_once(path)
        self.assertFalse(ready)
        self.assertIn("spec.http[0].mirrors: mirror and mirrors are both set", err)


if __name__ == "__main__":
    st.main()
