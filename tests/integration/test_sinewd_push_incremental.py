#!/usr/bin/python3
"""sinewd recomputes only the proxies a change concerns (issue 14's
incremental control plane), with real proxies: one calls reviews, one
calls ratings. A change to what one of them holds or would now reach is
pushed to it and not to the other; the other is still SYNCED at the new
revision. The ways a resource reaches a proxy are each tried: the host it
calls (a new VirtualService), what a Service it holds brings (a new
WorkloadEntry, a new DestinationRule, a proxy registering as that
Service's endpoint), a policy of its namespace, a resource removed."""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh, start_cp_proxy, get, version_of, reviews_vs  # noqa: E402


def plain_vs(host):
    return """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %s}
spec:
  hosts: [%s]
  http:
  - route:
    - destination: {host: %s}
""" % (host, host, host)


DENY_POLICY = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-nothing, namespace: %s}
spec:
  action: DENY
  rules:
  - to:
    - operation: {paths: [/never]}
"""


class IncrementalPushTest(unittest.TestCase):
    def setUp(self):
        self.mesh = Mesh(self)
        self.rv1 = st.start_backend(self, "reviews", "v1")
        self.ra1 = st.start_backend(self, "ratings", "v1")
        self.mesh.apply(st.registry_yaml({("reviews", "v1"): self.rv1.port, ("ratings", "v1"): self.ra1.port}),
                        "mesh.yaml")
        workdir = st.make_tempdir(self)
        self.a = start_cp_proxy(self, self.mesh, workdir=workdir, args=["--service", "app-a"])
        self.b = start_cp_proxy(self, self.mesh, workdir=workdir, args=["--service", "app-b"])
        # a calls reviews, b calls ratings: each subscribes to its host
        self.assertEqual(version_of(get(self.a.outbound_port, "reviews:9080")), "v1")
        self.assertEqual(version_of(get(self.b.outbound_port, "ratings:9080")), "v1")
        self.mesh.all_synced(2)

    def pushes(self):
        ps = {p["service"]: p for p in self.mesh.all_synced(2)}
        return ps["app-a"]["pushes"], ps["app-b"]["pushes"]

    def recomputes(self):
        ps = {p["service"]: p for p in self.mesh.all_synced(2)}
        return ps["app-a"]["recomputes"], ps["app-b"]["recomputes"]

    def change(self, apply=None, delete=None):
        """Applies (or deletes) and waits until both are SYNCED at the new
        revision; returns how many pushes each proxy got for it."""
        a0, b0 = self.pushes()
        ra0, rb0 = self.recomputes()
        if apply is not None:
            self.mesh.apply(apply)
        else:
            status, body = self.mesh.call("DELETE", delete)
            self.assertEqual(status, 200, body)
        _, ver = self.mesh.call("GET", "/api/v1/version")
        ps = self.mesh.wait_proxies(lambda ps: len(ps) == 2 and all(
            p["state"] == "SYNCED" and p["revision"]["current"] == ver["revision"] for p in ps),
            10, "both SYNCED at revision %s" % ver["revision"])
        by = {p["service"]: p for p in ps}
        got = by["app-a"]["pushes"] - a0, by["app-b"]["pushes"] - b0
        # one not concerned was not even recomputed
        if got[0] == 0:
            self.assertEqual(by["app-a"]["recomputes"], ra0, by["app-a"])
        if got[1] == 0:
            self.assertEqual(by["app-b"]["recomputes"], rb0, by["app-b"])
        return got

    def test_only_the_proxies_a_change_concerns_get_it(self):
        # the host a calls: a new VirtualService for reviews
        self.assertEqual(self.change(apply=plain_vs("reviews")), (1, 0))
        # and for ratings, b's
        self.assertEqual(self.change(apply=plain_vs("ratings")), (0, 1))
        # what the reviews Service brings: a new endpoint...
        rv2 = st.start_backend(self, "reviews", "v2")
        self.assertEqual(self.change(apply=st.workload_yaml("reviews-v2", rv2.port,
                                                            {"app": "reviews", "version": "v2"})), (1, 0))
        # ...a DestinationRule for its host
        dr = ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"
              "spec:\n  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n"
              "  - {name: v2, labels: {version: v2}}\n")
        self.assertEqual(self.change(apply=dr), (1, 0))
        # and it routes there: a got what it needed
        self.assertEqual(self.change(apply=reviews_vs("v2")), (1, 0))
        self.assertEqual(version_of(get(self.a.outbound_port, "reviews:9080")), "v2")
        # a proxy registering as a ratings endpoint concerns b only
        a0, b0 = self.pushes()
        ra2 = st.start_backend(self, "ratings", "v2")
        c = start_cp_proxy(self, self.mesh, workdir=st.make_tempdir(self), outbound=False, inbound=True,
                           app="127.0.0.1:%d" % ra2.port, args=["--service", "ratings", "--labels", "version=v2"])
        by = {p["service"]: p for p in self.mesh.wait_proxies(
            lambda ps: len(ps) == 3 and all(p["state"] == "SYNCED" for p in ps), 10, "three SYNCED")}
        self.assertIsNotNone(by["ratings"]["registered"], by["ratings"])
        self.assertEqual(by["app-a"]["pushes"], a0)
        self.assertGreater(by["app-b"]["pushes"], b0)
        c.stop()
        self.mesh.all_synced(2)
        # a policy of both proxies' namespace concerns both; of another, neither
        self.assertEqual(self.change(apply=DENY_POLICY % "default"), (1, 1))
        self.assertEqual(self.change(apply=DENY_POLICY % "elsewhere"), (0, 0))
        # neither acked that revision, and both run it: proxy-status says so
        _, ver = self.mesh.call("GET", "/api/v1/version")
        self.assertTrue(all(p["revision"]["acked"] != ver["revision"] for p in self.mesh.proxies()))
        env = st.proxy_env()
        env["SINEW_SERVER"] = "http://127.0.0.1:%d" % self.mesh.port
        out = subprocess.run([os.path.join(st.BIN, "sinew"), "proxy-status"], capture_output=True, text=True,
                             env=env, timeout=30).stdout
        rows = [line.split() for line in out.splitlines()[1:]]
        self.assertEqual(sorted((r[1], r[4], r[5]) for r in rows),
                         [("app-a", ver["revision"], "SYNCED"), ("app-b", ver["revision"], "SYNCED")], out)
        # removing what one holds
        self.assertEqual(self.change(delete="/api/v1/resources/virtualservices/default/ratings"), (0, 1))
        self.assertEqual(version_of(get(self.b.outbound_port, "ratings:9080")), "v1")
        self.assertEqual(self.change(delete="/api/v1/resources/authorizationpolicies/default/deny-nothing"),
                         (1, 1))

if __name__ == "__main__":
    st.main()
