#!/usr/bin/python3
"""Istio's traffic-shifting task with the unmodified bookinfo files: weights
50/50, 80/20, 90/10 hold within 5 percentage points over 2,000 requests,
spread over several keep-alive connections."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

TOTAL = 2000
THREADS = 8
TOLERANCE = 5.0  # percentage points


class TrafficShifting(unittest.TestCase):

    def shift(self, vs_file, expect):
        bi = st.Bookinfo(self, [vs_file])
        clients = [st.KeepAliveClient(bi.port) for _ in range(THREADS)]
        for c in clients:
            self.addCleanup(c.close)

        def one(ti, i):
            return clients[ti].request("GET", "/reviews/%d" % i, "reviews",
                                       headers={"end-user": "u%d" % (i % 7)})

        results = st.run_parallel(THREADS, TOTAL, one, deadline_s=60)
        ok = [r for r in results if isinstance(r, st.Resp) and r.status == 200]
        self.assertEqual(len(ok), TOTAL, st.describe_failures(results))
        seen = st.versions_of(ok)
        self.assertEqual(set(seen), set(expect), "versions seen %r, expected %r" % (seen, expect))
        for ver, pct in expect.items():
            got = 100.0 * seen[ver] / TOTAL
            self.assertLessEqual(abs(got - pct), TOLERANCE,
                                 "%s: %s got %.1f%%, expected %d%% (counts %r)"
                                 % (vs_file, ver, got, pct, seen))
        # The backends agree with what the clients saw.
        for ver in ("v1", "v2", "v3"):
            self.assertEqual(bi.backends[("reviews", ver)].requests(), seen.get(ver, 0), ver)
        # Weights apply per request, not per connection: one connection alone
        # sees every weighted version.
        c = st.KeepAliveClient(bi.port)
        self.addCleanup(c.close)
        one_conn = [c.request("GET", "/single/%d" % i, "reviews") for i in range(200)]
        seen1 = st.versions_of(one_conn)
        self.assertEqual(sum(seen1.values()), 200, st.describe_failures(one_conn))
        self.assertEqual(set(seen1), set(expect), "one connection saw %r" % seen1)

    def test_reviews_50_v3(self):
        self.shift("virtual-service-reviews-50-v3.yaml", {"v1": 50, "v3": 50})

    def test_reviews_80_20(self):
        self.shift("virtual-service-reviews-80-20.yaml", {"v1": 80, "v2": 20})

    def test_reviews_90_10(self):
        self.shift("virtual-service-reviews-90-10.yaml", {"v1": 90, "v2": 10})

    def test_reviews_v2_v3(self):
        self.shift("virtual-service-reviews-v2-v3.yaml", {"v2": 50, "v3": 50})


if __name__ == "__main__":
    st.main()
