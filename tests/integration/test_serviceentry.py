#!/usr/bin/python3
"""ServiceEntry, as a user sees it: a file-mode proxy routes
`Host: api.internal.example` to a backend through a STATIC ServiceEntry,
and through a VirtualService + DestinationRule subset on it; a DNS entry
whose endpoint is a host name (DNS is not implemented yet) answers 503
no_healthy_upstream without any connection attempt; through sinewd, a
ServiceEntry applied by the API is stored and reaches a control-plane
proxy, which then routes to the backend through it.

All traffic goes to 127.0.0.1."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh, start_cp_proxy, version_of  # noqa: E402

HOST = "api.internal.example"


def static_entry(ports_by_version, name="internal-api"):
    """A STATIC ServiceEntry for HOST, port 80, one endpoint per version
    (127.0.0.1, its backend port through the endpoint's ports map)."""
    eps = "".join("  - address: 127.0.0.1\n    ports: {http: %d}\n    labels: {version: %s}\n"
                  % (port, ver) for ver, port in sorted(ports_by_version.items()))
    return ("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: %s}\n"
            "spec:\n  hosts: [%s]\n  location: MESH_INTERNAL\n"
            "  ports:\n  - {number: 80, name: http, protocol: HTTP}\n"
            "  resolution: STATIC\n  endpoints:\n%s" % (name, HOST, eps))


SUBSETS = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: internal-api}
spec:
  host: api.internal.example
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""

CANARY_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: internal-api}
spec:
  hosts: [api.internal.example]
  http:
  - match: [{headers: {x-canary: {exact: "yes"}}}]
    route: [{destination: {host: api.internal.example, subset: v2}}]
  - route: [{destination: {host: api.internal.example, subset: v1}}]
"""

DNS_ENTRY = """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: partner}
spec:
  hosts: [partner.example.com]
  ports: [{number: 80, name: http}]
  resolution: DNS
  endpoints:
  - address: gateway.partner.example.com
"""


def get(port, host, headers=None):
    return st.request(port, "GET", "/", host=host, headers=headers, timeout=5.0)


def total(metrics, name):
    return sum(v for n, _, v in metrics if n == name)


class FileMode(unittest.TestCase):
    def test_static_entry_and_subsets(self):
        v1 = st.start_backend(self, "internal-api", "v1")
        v2 = st.start_backend(self, "internal-api", "v2")
        # the entry alone: both endpoints serve the host
        p = st.start_proxy(self, config_text=static_entry({"v1": v1.port, "v2": v2.port}))
        seen = st.versions_of([get(p.outbound_port, HOST) for _ in range(40)])
        self.assertEqual(set(seen), {"v1", "v2"}, seen)
        self.assertEqual(sum(seen.values()), 40, seen)
        r = get(p.outbound_port, HOST + ":80")
        self.assertEqual(r.status, 200)
        # no short name for a host outside the cluster domain
        r = get(p.outbound_port, "api")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.header("sinew-error"), "no_route")

        # a VirtualService + DestinationRule subset on the entry's host
        text = st.join_docs(static_entry({"v1": v1.port, "v2": v2.port}), SUBSETS, CANARY_VS)
        p2 = st.start_proxy(self, config_text=text)
        for _ in range(10):
            self.assertEqual(version_of(get(p2.outbound_port, HOST)), "v1")
            self.assertEqual(version_of(get(p2.outbound_port, HOST, {"x-canary": "yes"})), "v2")
        st_code, _, body = p2.admin_get("/config_dump")
        self.assertEqual(st_code, 200)
        self.assertIn(b'"service_entry":"default/internal-api"', body)
        self.assertIn(b"outbound|80|v2|api.internal.example", body)

    def test_dns_entry_answers_503_without_connecting(self):
        # the name goes to the proxy's resolver (no answer here: this
        # machine has no DNS); until it answers, no endpoint
        p = st.start_proxy(self, config_text=DNS_ENTRY)
        before = p.metrics()
        t0 = time.time()
        r = get(p.outbound_port, "partner.example.com")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.header("sinew-error"), "no_healthy_upstream")
        self.assertLess(time.time() - t0, 1.0)
        after = p.metrics()
        for name in ("sinew_upstream_connections_total", "sinew_upstream_connect_failures_total"):
            self.assertEqual(total(after, name), total(before, name), name)

    def test_localhost_entry_is_not_qualified(self):
        """hosts: [localhost], resolution DNS, no endpoints: the host is
        the endpoint (localhost needs no DNS), never
        localhost.default.svc.cluster.local; a VirtualService names it
        by the same short name."""
        be = st.start_backend(self, "local", "v1")
        entry = ("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: local}\n"
                 "spec:\n  hosts: [localhost]\n  ports:\n  - {number: %d, name: http, protocol: HTTP}\n"
                 "  resolution: DNS\n" % be.port)
        vs = ("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: local}\n"
              "spec:\n  hosts: [localhost]\n  http:\n  - match: [{uri: {prefix: /v}}]\n"
              "    headers: {request: {set: {x-via: vs}}}\n    route: [{destination: {host: localhost}}]\n"
              "  - route: [{destination: {host: localhost}}]\n")
        p = st.start_proxy(self, config_text=st.join_docs(entry, vs))
        r = get(p.outbound_port, "localhost:%d" % be.port)
        self.assertEqual((r.status, version_of(r)), (200, "v1"), r)
        r = st.request(p.outbound_port, "GET", "/v", host="localhost:%d" % be.port)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["headers"].get("x-via"), "vs")
        st_code, _, body = p.admin_get("/config_dump")
        self.assertIn(("outbound|%d||localhost" % be.port).encode(), body)
        self.assertNotIn(b"localhost.default.svc", body)

    def test_entry_without_endpoints_says_what_to_do(self):
        entry = ("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext}\n"
                 "spec:\n  hosts: [ext.example.com]\n  ports:\n  - {number: 80, name: http}\n"
                 "  resolution: DNS\n")
        p = st.start_proxy(self, config_text=entry)
        r = get(p.outbound_port, "ext.example.com")
        self.assertEqual((r.status, r.header("sinew-error")), (503, "no_healthy_upstream"), r)
        self.assertIn("ServiceEntry default/ext (resolution DNS)", r.body.decode())
        self.assertNotIn("WorkloadEntry", r.body.decode())


class ThroughSinewd(unittest.TestCase):
    def test_applied_entry_reaches_a_control_plane_proxy(self):
        be = st.start_backend(self, "internal-api", "v1")
        mesh = Mesh(self)
        items = mesh.apply(static_entry({"v1": be.port}), "se.yaml")
        self.assertEqual([(i["kind"], i["result"]) for i in items], [("ServiceEntry", "created")], items)
        # stored like the other kinds, under its short name too
        status, got = mesh.get(kind="se")
        self.assertEqual(status, 200)
        self.assertEqual([(g["kind"], g["name"]) for g in got], [("ServiceEntry", "internal-api")], got)
        self.assertTrue(got[0]["status"]["accepted"], got)

        px = start_cp_proxy(self, mesh, args=["--service", "productpage"])
        r = get(px.outbound_port, HOST)
        self.assertEqual(version_of(r), "v1")
        ps = mesh.all_synced(1)
        self.assertEqual(ps[0]["subscriptions"], [HOST])

        # a change to the entry (another endpoint, subsets) reaches it
        be2 = st.start_backend(self, "internal-api", "v2")
        mesh.apply(st.join_docs(static_entry({"v1": be.port, "v2": be2.port}), SUBSETS, CANARY_VS),
                   "se2.yaml")
        deadline = time.time() + 5
        while time.time() < deadline and version_of(get(px.outbound_port, HOST, {"x-canary": "yes"})) != "v2":
            time.sleep(0.05)
        self.assertEqual(version_of(get(px.outbound_port, HOST, {"x-canary": "yes"})), "v2")
        self.assertEqual(version_of(get(px.outbound_port, HOST)), "v1")

    def test_localhost_entry_through_sinewd(self):
        """The same short-name rule in sinewd's push as in file mode: a
        control-plane proxy asked for localhost gets the entry."""
        be = st.start_backend(self, "local", "v1")
        mesh = Mesh(self)
        entry = ("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: local}\n"
                 "spec:\n  hosts: [localhost]\n  ports:\n  - {number: %d, name: http, protocol: HTTP}\n"
                 "  resolution: DNS\n" % be.port)
        mesh.apply(entry, "local.yaml")
        px = start_cp_proxy(self, mesh, args=["--service", "productpage"])
        r = get(px.outbound_port, "localhost:%d" % be.port)
        self.assertEqual((r.status, version_of(r)), (200, "v1"), r)


if __name__ == "__main__":
    st.main()
