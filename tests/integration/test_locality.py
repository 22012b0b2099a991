#!/usr/bin/python3
"""Locality-aware load balancing (DestinationRule localityLbSetting, with
Istio's semantics): the client proxy's locality comes from its topology
labels, each endpoint's from its WorkloadEntry's locality field.

- with outlierDetection, traffic stays in the proxy's zone; when that
  endpoint is ejected it fails over to the same region, then to another;
- failover: [{from: us-west, to: eu-west}] prefers eu-west to us-east;
- distribute: from us-west/zone1/* to {zone1: 80, zone2: 20} splits by
  those shares and sends nothing elsewhere;
- without outlierDetection, locality plays no part (Istio's rule);
- failoverPriority orders by the labels the endpoint shares with the
  proxy."""

import collections
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

LABELS = ("topology.kubernetes.io/region=us-west,topology.kubernetes.io/zone=zone1,"
          "topology.istio.io/subzone=sz1,app=productpage,network=n1")
OUTLIER = "outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}"


def workload(name, port, locality, extra=""):
    return """apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %s}
spec:
  address: 127.0.0.1
  ports: {http: %d}
  labels: {app: reviews, version: %s%s}
  locality: %s
""" % (name, port, name, extra, locality)


class Locality(unittest.TestCase):

    def setUp(self):
        self.b = {}
        self.where = {"v1": "us-west/zone1/sz1", "v2": "us-west/zone2", "v3": "us-east/zone1", "v4": "eu-west/zone1"}
        for v in self.where:
            self.b[v] = st.start_backend(self, "reviews", v)

    def start(self, policy, extra_labels=None):
        docs = [st.service_yaml("reviews")]
        for v, loc in self.where.items():
            docs.append(workload(v, self.b[v].port, loc, (extra_labels or {}).get(v, "")))
        docs.append("""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    %s
""" % policy)
        return st.start_proxy(self, config_text=st.join_docs(*docs), args=["--labels", LABELS])

    def spread(self, p, n):
        c = collections.Counter()
        for _ in range(n):
            r = st.request(p.outbound_port, "GET", "/", host="reviews")
            c[r.header("x-backend-version") if r.status == 200 else r.status] += 1
        return c

    def settle_on(self, p, version, n=20):
        """Requests until n in a row reach version (5 s at most)."""
        deadline, run, seen = time.time() + 5, 0, []
        while time.time() < deadline and run < n:
            r = st.request(p.outbound_port, "GET", "/", host="reviews")
            v = r.header("x-backend-version") if r.status == 200 else r.status
            seen.append(v)
            run = run + 1 if v == version else 0
        self.assertEqual(run, n, "not %d in a row to %s: %s" % (n, version, seen[-40:]))

    def test_failover_zone_region_then_other(self):
        p = self.start(OUTLIER)
        self.assertEqual(self.spread(p, 30), {"v1": 30})
        self.b["v1"].stop()
        self.settle_on(p, "v2")          # same region, another zone
        self.b["v2"].stop()
        c = self.spread(p, 10)           # other regions: us-east and eu-west alike
        self.assertEqual(set(c) - {"v3", "v4"}, set(), c)
        self.assertEqual(set(c), {"v3", "v4"}, c)

    def test_failover_region_order(self):
        p = self.start("loadBalancer: {localityLbSetting: {failover: [{from: us-west, to: eu-west}]}}\n    "
                       + OUTLIER)
        self.assertEqual(self.spread(p, 10), {"v1": 10})
        self.b["v1"].stop()
        self.b["v2"].stop()
        self.settle_on(p, "v4")          # eu-west before us-east

    def test_distribute(self):
        p = self.start("loadBalancer: {localityLbSetting: {distribute: [{from: us-west/zone1/*, to: "
                       "{\"us-west/zone1/*\": 80, \"us-west/zone2/*\": 20}}]}}\n    " + OUTLIER)
        c = self.spread(p, 1000)
        self.assertEqual(set(c), {"v1", "v2"}, c)
        self.assertAlmostEqual(c["v1"] / 1000.0, 0.8, delta=0.06)

    def test_no_outlier_detection_no_locality(self):
        p = self.start("loadBalancer: {simple: ROUND_ROBIN}")
        c = self.spread(p, 40)
        self.assertEqual(c, {"v1": 10, "v2": 10, "v3": 10, "v4": 10})

    def test_failover_priority_labels(self):
        # network n1 first (v3 shares it), then the rest
        p = self.start("loadBalancer: {localityLbSetting: {failoverPriority: [network]}}\n    " + OUTLIER,
                       extra_labels={"v3": ", network: n1"})
        self.assertEqual(self.spread(p, 10), {"v3": 10})
        self.b["v3"].stop()
        c = self.spread(p, 30)
        self.assertEqual(set(c) - {"v1", "v2", "v4", 503, 502}, set(), c)
        self.assertGreater(c["v1"] + c["v2"] + c["v4"], 25, c)


class Warmup(unittest.TestCase):
    """warmupDurationSecs (Envoy's slow start): an endpoint that joins
    takes a small share at first (minimumPercent, 10 %), growing to its
    full share over the window."""

    def test_new_endpoint_ramps_up(self):
        b = {v: st.start_backend(self, "reviews", v) for v in ("v1", "v2", "v3")}
        rule = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, warmupDurationSecs: 6s}
"""
        def config(versions):
            return st.join_docs(st.registry_yaml({("reviews", v): b[v].port for v in versions}), rule)
        p = st.start_proxy(self, config_text=config(("v1", "v2")))
        # v1 and v2 were there from the start: their window passes first
        time.sleep(6.2)
        st.write_file(p.config_path, config(("v1", "v2", "v3")))
        deadline = time.time() + 5
        while time.time() < deadline:
            if st.request(p.outbound_port, "GET", "/", host="reviews").header("x-backend-version") == "v3":
                break
            time.sleep(0.02)
        c = collections.Counter()
        for _ in range(300):
            c[st.request(p.outbound_port, "GET", "/", host="reviews").header("x-backend-version")] += 1
        self.assertLess(c["v3"] / 300.0, 0.2, c)    # a third once warm
        time.sleep(6.5)
        c = collections.Counter()
        for _ in range(300):
            c[st.request(p.outbound_port, "GET", "/", host="reviews").header("x-backend-version")] += 1
        self.assertAlmostEqual(c["v3"] / 300.0, 1 / 3.0, delta=0.1)


if __name__ == "__main__":
    st.main()
