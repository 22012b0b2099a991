#!/usr/bin/python3
"""Istio's request-routing task with the unmodified bookinfo files: real
backends for reviews v1/v2/v3 (and ratings, details, productpage v1), the
proxy's outbound listener, http.client and curl as the app."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

N = 25


class RequestRouting(unittest.TestCase):

    def check_all(self, bi, expect_version, n=N, host="reviews", headers=None,
                  service="reviews"):
        """n requests on one keep-alive connection plus n on fresh ones; every
        one must be 200 from service/expect_version."""
        client = st.KeepAliveClient(bi.port)
        self.addCleanup(client.close)
        got = []
        for i in range(n):
            got.append(client.request("GET", "/reviews/%d" % i, host, headers=headers))
            got.append(bi.get(host, "/reviews/%d" % i, headers=headers))
        for r in got:
            self.assertEqual(r.status, 200, "host %s headers %r: %r" % (host, headers, r))
            body = r.json()
            self.assertEqual((body["service"], body["version"]), (service, expect_version),
                             "host %s headers %r routed to %s %s" % (
                                 host, headers, body["service"], body["version"]))
        return got

    def test_virtual_service_all_v1(self):
        bi = st.Bookinfo(self, ["virtual-service-all-v1.yaml"])
        for user in (None, "jason", "bob"):
            h = {"end-user": user} if user else None
            self.check_all(bi, "v1", headers=h)
        for svc in ("ratings", "details", "productpage"):
            self.check_all(bi, "v1", n=5, host=svc, service=svc)
        # Only v1 ever saw traffic.
        self.assertEqual(bi.backends[("reviews", "v2")].requests(), 0)
        self.assertEqual(bi.backends[("reviews", "v3")].requests(), 0)

    def test_reviews_test_v2(self):
        bi = st.Bookinfo(self, ["virtual-service-reviews-test-v2.yaml"])
        self.check_all(bi, "v2", headers={"end-user": "jason"})
        # Header names are case-insensitive; values are exact.
        self.check_all(bi, "v2", n=5, headers={"End-User": "jason"})
        self.check_all(bi, "v1")
        self.check_all(bi, "v1", headers={"end-user": "bob"})
        self.check_all(bi, "v1", n=5, headers={"end-user": "Jason"})
        self.check_all(bi, "v1", n=5, headers={"end-user": "jason2"})
        self.assertEqual(bi.backends[("reviews", "v3")].requests(), 0)

    def test_reviews_jason_v2_v3(self):
        bi = st.Bookinfo(self, ["virtual-service-reviews-jason-v2-v3.yaml"])
        self.check_all(bi, "v2", headers={"end-user": "jason"})
        self.check_all(bi, "v3")
        self.check_all(bi, "v3", headers={"end-user": "bob"})
        self.check_all(bi, "v3", n=5, headers={"x-end-user": "jason"})
        self.assertEqual(bi.backends[("reviews", "v1")].requests(), 0)

    def test_reviews_v3(self):
        bi = st.Bookinfo(self, ["virtual-service-reviews-v3.yaml"])
        self.check_all(bi, "v3")
        self.check_all(bi, "v3", headers={"end-user": "jason"})
        self.assertEqual(bi.backends[("reviews", "v1")].requests(), 0)
        self.assertEqual(bi.backends[("reviews", "v2")].requests(), 0)

    def test_host_forms(self):
        """Service names resolve as name, name.namespace and the FQDN, with or
        without the port; absolute-form works through curl -x and
        http_proxy."""
        bi = st.Bookinfo(self, ["virtual-service-reviews-v3.yaml"])
        for host in ("reviews", "reviews:9080", "reviews.default", "reviews.default:9080",
                     "reviews.default.svc.cluster.local",
                     "reviews.default.svc.cluster.local:9080", "REVIEWS", "Reviews:9080"):
            with self.subTest(host=host):
                self.check_all(bi, "v3", n=3, host=host)
        proxy_url = "http://127.0.0.1:%d" % bi.port
        for url in ("http://reviews:9080/abs", "http://reviews.default.svc.cluster.local:9080/abs",
                    "http://reviews/abs"):
            with self.subTest(url=url, via="curl -x"):
                cp = st.curl(["-x", proxy_url, "-H", "end-user: jason", url])
                self.assertEqual(cp.returncode, 0, cp.stderr)
                body = json.loads(cp.stdout)
                self.assertEqual(body["version"], "v3")
                self.assertEqual(body["path"], "/abs", "absolute-form must reach the app "
                                 "in origin-form")
        env = dict(os.environ, http_proxy=proxy_url, no_proxy="", NO_PROXY="")
        cp = subprocess.run(["curl", "-sS", "http://reviews:9080/env?x=1"], env=env,
                               capture_output=True, text=True, timeout=20)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        body = json.loads(cp.stdout)
        self.assertEqual((body["service"], body["version"], body["path"]),
                         ("reviews", "v3", "/env?x=1"))

    def test_no_virtual_service_uses_all_endpoints(self):
        """With no VirtualService for a host, traffic goes to the Service's
        endpoints (every version is a candidate)."""
        bi = st.Bookinfo(self, [])
        seen = {}
        for i in range(90):
            r = bi.get("reviews", "/p%d" % i)
            self.assertEqual(r.status, 200, r)
            b = r.json()
            self.assertEqual(b["service"], "reviews")
            seen[b["version"]] = seen.get(b["version"], 0) + 1
        self.assertTrue(set(seen) <= {"v1", "v2", "v3"}, seen)
        self.assertGreaterEqual(len(seen), 2, "load balancing used one endpoint only: %r" % seen)

    def test_other_services_untouched(self):
        """A VirtualService for reviews does not change ratings or details."""
        bi = st.Bookinfo(self, ["virtual-service-reviews-jason-v2-v3.yaml"])
        self.check_all(bi, "v1", n=5, host="ratings", service="ratings",
                       headers={"end-user": "jason"})
        self.check_all(bi, "v1", n=5, host="details", service="details")


if __name__ == "__main__":
    st.main()
