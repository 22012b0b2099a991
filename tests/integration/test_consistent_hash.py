#!/usr/bin/python3
"""DestinationRule loadBalancer.consistentHash through a real proxy and five
real endpoints: a key (a header, a query parameter, a cookie, the source
IP) always lands on the same endpoint; with one endpoint of five gone its
keys move and few others (~1/5 in all; ring hash and Maglev); an httpCookie with a ttl that the
client does not send yet is made by the proxy (Set-Cookie), and the
requests that carry it stay on one endpoint."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

VERSIONS = ["v1", "v2", "v3", "v4", "v5"]


def dr(hash_spec):
    return ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\n"
            "spec:\n  host: reviews\n  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n" + hash_spec)


class ConsistentHash(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        scope = st.ClassScope(cls)
        cls.apps = {v: st.start_backend(scope, "reviews", v) for v in VERSIONS}

    def proxy(self, hash_spec, versions=VERSIONS):
        ports = {("reviews", v): self.apps[v].port for v in versions}
        return st.start_proxy(self, st.join_docs(st.registry_yaml(ports), dr(hash_spec)), args=["--workers", "1"])

    def where(self, p, users, header=True):
        out = {}
        for u in users:
            got = set()
            for _ in range(3):
                if header:
                    r = st.request(p.outbound_port, "GET", "/", host="reviews", headers={"x-user": u})
                else:
                    r = st.request(p.outbound_port, "GET", "/?user=" + u, host="reviews")
                got.add(r.json()["version"])
            self.assertEqual(len(got), 1, "user %s went to %s" % (u, got))
            out[u] = got.pop()
        return out

    def check_moves(self, spec, exact):
        users = ["user-%d" % i for i in range(60)]
        before = self.where(self.proxy(spec), users)
        self.assertGreaterEqual(len(set(before.values())), 4, before)   # spread over the endpoints
        after = self.where(self.proxy(spec, VERSIONS[:4]), users)        # v5 gone
        moved = sorted(u for u in users if before[u] != after[u])
        lost = sorted(u for u in users if before[u] == "v5")
        if exact:
            self.assertEqual(moved, lost, (before, after))   # ring: only v5's keys move
        else:
            # Maglev: v5's keys move, and a few others (its minimal disruption)
            self.assertTrue(set(lost) <= set(moved), (before, after))
            self.assertLess(len(moved), len(lost) + len(users) * 0.15, (moved, before, after))

    def test_ring_hash_header(self):
        self.check_moves("        httpHeaderName: x-user\n", exact=True)

    def test_maglev_header(self):
        self.check_moves("        httpHeaderName: x-user\n        maglev: {tableSize: 65537}\n", exact=False)

    def test_query_parameter(self):
        p = self.proxy("        httpQueryParameterName: user\n        ringHash: {minimumRingSize: 2048}\n")
        spread = self.where(p, ["q%d" % i for i in range(30)], header=False)
        self.assertGreaterEqual(len(set(spread.values())), 3, spread)

    def test_source_ip(self):
        p = self.proxy("        useSourceIp: true\n")
        got = {st.request(p.outbound_port, "GET", "/", host="reviews").json()["version"] for _ in range(20)}
        self.assertEqual(len(got), 1, got)

    def test_cookie_made_by_the_proxy(self):
        p = self.proxy("        httpCookie: {name: sticky, path: /, ttl: 3600s}\n")
        r = st.request(p.outbound_port, "GET", "/", host="reviews")
        cookie = r.header("set-cookie")
        self.assertRegex(cookie or "", r"^sticky=[0-9a-f]{16}; Max-Age=3600; Path=/; HttpOnly$")
        first = r.json()["version"]
        value = cookie.split(";")[0]
        for _ in range(10):
            r = st.request(p.outbound_port, "GET", "/", host="reviews", headers={"cookie": "a=b; " + value})
            self.assertEqual(r.json()["version"], first)
            self.assertIsNone(r.header("set-cookie"))
        # an HTTP/2 client gets it too
        import subprocess
        out = subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/null", "--http2-prior-knowledge",
                              "-H", "Host: reviews", "http://127.0.0.1:%d/" % p.outbound_port],
                             capture_output=True, text=True, timeout=10).stdout
        self.assertIn("set-cookie: sticky=", out.lower())

    def test_refusals(self):
        d = st.make_tempdir(self)
        path = os.path.join(d, "bad.yaml")
        st.write_file(path, dr("        httpHeaderName: x\n        useSourceIp: true\n"
                               "        maglev: {tableSize: 65536}\n"))
        code, err, ready = st.run_proxy_once(path)
        self.assertFalse(ready)
        self.assertIn("consistentHash needs exactly one of httpHeaderName", err)
        self.assertIn("maglev tableSize must be a prime number", err)


if __name__ == "__main__":
    st.main()
