#!/usr/bin/python3
"""A resource a proxy refuses: deleting a DestinationRule whose subset a
stored VirtualService routes to is allowed (as in Istio), and the proxies
that route that host refuse the push. GET /api/v1/proxies shows NACK with
the error (file:line of the VirtualService), the VirtualService's status
names the proxy, the refusing proxy keeps routing on its last good config,
and other resources keep flowing to other proxies. Fixing the store
clears the NACK. One push that carries a resource the proxy cannot run
and one it can: the proxy runs the second and refuses the first by name
(it keeps its previous version), instead of refusing the whole push."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh, start_cp_proxy, get, version_of, REVIEWS_DR, reviews_vs  # noqa: E402

RATINGS_DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
"""


def ratings_vs(subset):
    return """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - route:
    - destination: {host: ratings, subset: %s}
""" % subset


class NackTest(unittest.TestCase):
    def mesh_with_routes(self):
        """sinewd with reviews and ratings (v1, v2 each), their rules, and a
        route to v1 for each."""
        mesh = Mesh(self)
        ports = {}
        for svc, ver in (("reviews", "v1"), ("reviews", "v2"), ("ratings", "v1"), ("ratings", "v2")):
            ports[(svc, ver)] = st.start_backend(self, svc, ver).port
        mesh.apply(st.registry_yaml(ports) + REVIEWS_DR + "---\n" + RATINGS_DR, "registry.yaml")
        mesh.apply(reviews_vs("v1"), "reviews-vs.yaml")
        mesh.apply(ratings_vs("v1"), "ratings-vs.yaml")
        return mesh

    def test_nack_reaches_proxy_status_and_resource_status(self):
        mesh = self.mesh_with_routes()
        a = start_cp_proxy(self, mesh, args=["--service", "productpage"])
        c = start_cp_proxy(self, mesh, args=["--service", "details"])
        self.assertEqual(version_of(get(a.outbound_port, "reviews:9080")), "v1")
        self.assertEqual(version_of(get(c.outbound_port, "ratings:9080")), "v1")
        mesh.all_synced(2)

        # delete the DestinationRule the reviews route needs
        status, body = mesh.call("DELETE", "/api/v1/resources/dr/default/reviews")
        self.assertEqual(status, 200, body)
        ps = mesh.wait_proxies(lambda ps: any(p["state"] == "NACK" for p in ps), 5, "a NACK")
        pa = [p for p in ps if p["service"] == "productpage"][0]
        pc = [p for p in ps if p["service"] == "details"][0]
        self.assertEqual(pa["state"], "NACK")
        self.assertEqual(pc["state"], "SYNCED")
        self.assertTrue(pa["errors"], pa)
        err = pa["errors"][0]
        self.assertEqual(err["resource"], "VirtualService/default/reviews")
        self.assertIn("reviews-vs.yaml:8:", err["text"])
        self.assertIn("subset", err["text"])
        # the resource's status names the proxy and the error
        status, vs = mesh.call("GET", "/api/v1/resources/vs/default/reviews")
        self.assertEqual(status, 200)
        nacks = vs["status"]["proxies"]["nack"]
        self.assertEqual([n["proxy"] for n in nacks], [pa["id"]])
        self.assertIn("subset", nacks[0]["error"])
        # the refusing proxy keeps its last good config
        for _ in range(5):
            self.assertEqual(version_of(get(a.outbound_port, "reviews:9080")), "v1")

        # other resources keep flowing to other proxies
        mesh.apply(ratings_vs("v2"), "ratings-vs.yaml")
        deadline = time.time() + 2
        while time.time() < deadline and version_of(get(c.outbound_port, "ratings:9080")) != "v2":
            time.sleep(0.02)
        self.assertEqual(version_of(get(c.outbound_port, "ratings:9080")), "v2")
        ps = mesh.wait_proxies(lambda ps: [p["state"] for p in ps if p["service"] == "details"] == ["SYNCED"],
                               5, "details SYNCED")
        self.assertEqual([p["state"] for p in ps if p["service"] == "productpage"], ["NACK"])

        # fix the store: the NACK clears, the route works on the new config
        mesh.apply(REVIEWS_DR, "reviews-dr.yaml")
        mesh.wait_proxies(lambda ps: len(ps) == 2 and all(p["state"] == "SYNCED" for p in ps), 5, "all SYNCED")
        status, vs = mesh.call("GET", "/api/v1/resources/vs/default/reviews")
        self.assertEqual(vs["status"]["proxies"]["nack"], [])
        self.assertEqual(vs["status"]["proxies"]["synced"], 1)
        self.assertEqual(version_of(get(a.outbound_port, "reviews:9080")), "v1")


    def test_one_refused_resource_does_not_hold_back_the_rest(self):
        mesh = self.mesh_with_routes()
        a = start_cp_proxy(self, mesh, args=["--service", "productpage"])
        self.assertEqual(version_of(get(a.outbound_port, "reviews:9080")), "v1")
        self.assertEqual(version_of(get(a.outbound_port, "ratings:9080")), "v1")
        mesh.all_synced(1)

        # One apply, one push to the proxy: a DestinationRule without the
        # subset its reviews route needs, and a ratings route it can run.
        reviews_dr_v2_only = REVIEWS_DR.replace("  - name: v1\n    labels: {version: v1}\n", "")
        self.assertNotIn("name: v1", reviews_dr_v2_only)
        mesh.apply(reviews_dr_v2_only + "---\n" + ratings_vs("v2"), "both.yaml")
        ps = mesh.wait_proxies(lambda ps: ps[0]["state"] == "NACK", 5, "a NACK")
        errors = ps[0]["errors"]
        self.assertEqual([e["resource"] for e in errors], ["DestinationRule/default/reviews"], errors)
        self.assertIn("subset", errors[0]["text"])
        # the ratings route runs; reviews runs on the DestinationRule it had
        self.assertEqual(version_of(get(a.outbound_port, "ratings:9080")), "v2")
        for _ in range(5):
            self.assertEqual(version_of(get(a.outbound_port, "reviews:9080")), "v1")
        status, dr = mesh.call("GET", "/api/v1/resources/dr/default/reviews")
        self.assertEqual([n["proxy"] for n in dr["status"]["proxies"]["nack"]], [ps[0]["id"]])
        self.assertIn("refused DestinationRule/default/reviews", a.stderr())

        # the route moves to v2: the DestinationRule now runs too
        mesh.apply(reviews_vs("v2"), "reviews-vs.yaml")
        mesh.all_synced(1)
        self.assertEqual(version_of(get(a.outbound_port, "reviews:9080")), "v2")

if __name__ == "__main__":
    st.main()
