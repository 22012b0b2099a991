#!/usr/bin/python3
"""Linkerd's local rate limiting, accepted unchanged (docs/configuration.md,
"Rate limits"): a Server for the workload's port and an
HTTPLocalRateLimitPolicy targeting it, through a real inbound sinew-proxy
in front of a real app. The total limit lets a burst of requestsPerSecond
through and refuses the rest 429 rate_limited with x-ratelimit-* and
retry-after, refills within a second; every unmeshed client shares one
identity bucket; an override gives a ServiceAccount (over mutual TLS, from
a real client proxy) its own limit; a Server's accessPolicy (Linkerd's
default deny) is enforced; a Server for another workload changes nothing;
bad limits are refused with file:line:field."""

import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
import test_mtls  # noqa: E402  (its Certs: a root and SVIDs for productpage and reviews)


def setUpModule():
    test_mtls.setUpModule()


def tearDownModule():
    test_mtls.tearDownModule()


def server(port, access="all-unauthenticated", name="reviews-http", app="reviews"):
    acc = "  accessPolicy: %s\n" % access if access else ""
    return ("apiVersion: policy.linkerd.io/v1beta3\nkind: Server\nmetadata: {name: %s, namespace: default}\n"
            "spec:\n  podSelector: {matchLabels: {app: %s}}\n  port: %d\n  proxyProtocol: HTTP/1\n%s---\n"
            % (name, app, port, acc))


def rate_limit(total=None, identity=None, overrides="", target="reviews-http"):
    spec = "  targetRef: {group: policy.linkerd.io, kind: Server, name: %s}\n" % target
    if total:
        spec += "  total: {requestsPerSecond: %d}\n" % total
    if identity:
        spec += "  identity: {requestsPerSecond: %d}\n" % identity
    return ("apiVersion: policy.linkerd.io/v1alpha1\nkind: HTTPLocalRateLimitPolicy\n"
            "metadata: {name: reviews-rl, namespace: default}\nspec:\n" + spec + overrides + "---\n")


def start(test, extra):
    app = st.start_backend(test, "reviews", "v1")
    cfg = st.join_docs(st.registry_yaml({("reviews", "v1"): app.port}), extra(app.port))
    p = st.start_proxy(test, cfg, outbound=False, inbound=True, app="127.0.0.1:%d" % app.port,
                       args=["--service", "reviews", "--labels", "app=reviews,version=v1"])
    return app, p


def burst(port, n, host="reviews"):
    return [st.request(port, "GET", "/r/%d" % i, host=host) for i in range(n)]


def allowed(test, rs, t0, rps):
    """GCRA lets a burst of rps through, then one more per 1/rps: between
    rps and rps + (time taken) x rps of them, whatever the machine's pace."""
    n = sum(1 for r in rs if r.status == 200)
    test.assertGreaterEqual(n, rps, [r.status for r in rs])
    test.assertLessEqual(n, rps + int((time.monotonic() - t0) * rps), [r.status for r in rs])
    test.assertEqual([r.status for r in rs[:rps]], [200] * rps)
    test.assertEqual({r.status for r in rs}, {200, 429})
    return n


class Total(unittest.TestCase):
    def test_burst_then_429_then_refill(self):
        app, p = start(self, lambda port: server(port) + rate_limit(total=5))
        t0 = time.monotonic()
        rs = burst(p.inbound_port, 12)
        n = allowed(self, rs, t0, 5)   # a burst of requestsPerSecond, then the refill's pace
        r = [r for r in rs if r.status == 429][-1]
        self.assertEqual((r.status, r.header("sinew-error")), (429, "rate_limited"), r)
        self.assertEqual(r.header("x-ratelimit-limit"), "5")
        self.assertEqual(r.header("x-ratelimit-remaining"), "0")
        self.assertEqual(r.header("retry-after"), "1")
        self.assertIn("HTTPLocalRateLimitPolicy default/reviews-rl (total: 5 requests per second)", r.body.decode())
        self.assertEqual(app.requests(), n, "a refused request reached the app")
        time.sleep(1.1)
        self.assertEqual([r.status for r in burst(p.inbound_port, 3)], [200] * 3)
        m = p.metrics()
        self.assertEqual(st.metric_sum(m, "sinew_rate_limited_total"), 12 - n)
        self.assertEqual(st.metric_sum(m, "sinew_requests_total", response_code="429",
                                       response_flags="rate_limited"), 12 - n)
        _, _, body = p.admin_get("/config_dump")
        self.assertIn(b'"access_policy":"all-unauthenticated","rate_limit":{"name":"default/reviews-rl",'
                      b'"total":5,"identity":0', body)

    def test_sustained_100_against_10(self):
        """100 req/s for 3 s against a 10 req/s limit (sinew load, open
        loop): about 10 req/s of 200s -- the burst of 10, then 10 a
        second -- and the rest 429."""
        app, p = start(self, lambda port: server(port) + rate_limit(total=10))
        r = subprocess.run([os.path.join(st.BIN, "sinew"), "load", "-q", "100", "-c", "4", "-d", "3s", "--json",
                            "--quiet", "-H", "Host: reviews", "http://127.0.0.1:%d/r" % p.inbound_port],
                           capture_output=True, text=True, timeout=60)
        self.assertIn(r.returncode, (0, 1), r.stderr)
        res = json.loads(r.stdout)
        ok, limited = res["status"].get("200", 0), res["status"].get("429", 0)
        self.assertEqual(ok + limited, res["completed"], res)
        self.assertGreaterEqual(res["completed"], 250, res)
        # 10 in the burst + 10 a second for the ~3 s of sending
        self.assertTrue(30 <= ok <= 10 + 10 * (res["elapsed_s"] + 0.5), (ok, res["elapsed_s"], res["status"]))
        self.assertEqual(app.requests(), ok)

    def test_port_by_name(self):
        """port: http, Linkerd's usual form: the name of the workload's port,
        found in its WorkloadEntry (the one with the proxy's labels)."""
        app, p = start(self, lambda port: server(port).replace("port: %d" % port, "port: http") +
                       rate_limit(total=2))
        t0 = time.monotonic()
        allowed(self, burst(p.inbound_port, 5), t0, 2)
        self.assertNotIn("is not a port name", p.stderr())

    def test_server_for_another_port_or_workload(self):
        app, p = start(self, lambda port: server(port + 1) + server(port, name="other", app="ratings") +
                       rate_limit(total=1) + rate_limit(total=1, target="other").replace("reviews-rl", "other-rl"))
        self.assertEqual([r.status for r in burst(p.inbound_port, 4)], [200] * 4)


class Access(unittest.TestCase):
    def test_default_deny(self):
        app, p = start(self, lambda port: server(port, access=None))
        r = st.request(p.inbound_port, "GET", "/", host="reviews")
        self.assertEqual((r.status, r.header("sinew-error")), (403, "rbac_denied"), r)
        self.assertIn("Server default/reviews-http: its accessPolicy is deny", r.body.decode())
        self.assertEqual(app.requests(), 0)

    def test_all_authenticated_refuses_plaintext(self):
        app, p = start(self, lambda port: server(port, access="all-authenticated"))
        r = st.request(p.inbound_port, "GET", "/", host="reviews")
        self.assertEqual(r.status, 403, r)
        self.assertIn("wants a client with a mesh identity", r.body.decode())

    def test_unknown_field_fails_closed(self):
        app, p = start(self, lambda port: server(port).replace("  proxyProtocol", "  portz: 1\n  proxyProtocol"))
        r = st.request(p.inbound_port, "GET", "/", host="reviews")
        self.assertEqual((r.status, r.header("sinew-error")), (403, "policy_unenforceable"), r)
        self.assertIn("spec.portz: unknown field", p.stderr())


class Identity(unittest.TestCase):
    def test_unmeshed_share_one_bucket_and_override_by_service_account(self):
        ov = ("  overrides:\n  - requestsPerSecond: 6\n    clientRefs:\n"
              "    - {kind: ServiceAccount, name: productpage}\n")
        app = st.start_backend(self, "reviews", "v1")
        extra = server(app.port) + rate_limit(total=50, identity=2, overrides=ov)
        b = st.start_proxy(self, test_mtls.b_config(app.port, "---\n" + extra), outbound=False, inbound=True,
                           app="127.0.0.1:%d" % app.port,
                           args=["--service", "reviews", "--labels", "app=reviews,version=v1",
                                 "--service-account", "reviews"] + test_mtls.CERTS.args("reviews"))
        a = st.start_proxy(self, test_mtls.a_config(b.inbound_port),
                           args=["--service", "productpage", "--service-account", "productpage"] +
                           test_mtls.CERTS.args("productpage"))
        # plaintext clients: one identity, two per second
        t0 = time.monotonic()
        rs = burst(b.inbound_port, 5)
        allowed(self, rs, t0, 2)
        r = [r for r in rs if r.status == 429][-1]
        self.assertIn("(per identity: 2 requests per second)", r.body.decode())
        # productpage over mutual TLS: its override, six per second
        t0 = time.monotonic()
        rs = burst(a.outbound_port, 10, host="reviews:9080")
        allowed(self, rs, t0, 6)
        r = [r for r in rs if r.status == 429][-1]
        self.assertIn("(override: 6 requests per second)", r.body.decode())


class ThroughSinewd(unittest.TestCase):
    def test_applied_and_pushed(self):
        from test_sinewd_push import Mesh, start_cp_proxy
        app = st.start_backend(self, "reviews", "v1")
        mesh = Mesh(self)
        px = start_cp_proxy(self, mesh, outbound=False, inbound=True, app="127.0.0.1:%d" % app.port,
                            args=["--service", "reviews", "--labels", "app=reviews,version=v1"])
        self.assertEqual(st.request(px.inbound_port, "GET", "/", host="reviews").status, 200)
        mesh.apply(server(app.port) + rate_limit(total=2), "rl.yaml")
        deadline = time.time() + 5
        codes = []
        while 429 not in codes and time.time() < deadline:
            codes = [r.status for r in burst(px.inbound_port, 4)]
            time.sleep(0.05)
        self.assertIn(429, codes, "the rate limit did not reach the proxy")


class Explain(unittest.TestCase):
    def explain(self, extra, *args):
        d = st.make_tempdir(self)
        path = os.path.join(d, "all.yaml")
        pp = st.workload_yaml("productpage-v1", 9080, {"app": "productpage"}, address="10.0.9.9",
                              service_account="productpage")
        st.write_file(path, st.join_docs(st.registry_yaml({("reviews", "v1"): 9081}) + pp, extra))
        r = subprocess.run([os.path.join(st.BIN, "sinew"), "explain", "-f", path] + list(args) +
                           ["http://reviews:9080/"], capture_output=True, text=True, env=st.proxy_env(), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_explain_names_the_server_and_its_limit(self):
        out = self.explain(server(9081) + rate_limit(total=5, identity=2))
        self.assertIn("rate limited by HTTPLocalRateLimitPolicy default/reviews-rl (total 5/s, per identity 2/s", out)
        out = self.explain(server(9081, access=None))
        self.assertIn("refused 403 (sinew-error: rbac_denied): Server default/reviews-http: its accessPolicy is deny",
                      out)
        # cluster-unauthenticated: judged on the caller's WorkloadEntry address
        out = self.explain(server(9081, access="cluster-unauthenticated"), "--from", "productpage-v1")
        self.assertIn("(reviews-v1): allowed", out)
        out = self.explain(server(9081, access="cluster-unauthenticated"))
        self.assertIn("wants a client from the cluster networks", out)


class Analyze(unittest.TestCase):
    def test_policy_for_a_missing_server(self):
        d = st.make_tempdir(self)
        path = os.path.join(d, "rl.yaml")
        st.write_file(path, rate_limit(total=5, target="nope"))
        r = subprocess.run([os.path.join(st.BIN, "sinew"), "analyze", "-f", path], capture_output=True, text=True,
                           env=st.proxy_env(), timeout=60)
        self.assertIn("Warning [SN0111] (HTTPLocalRateLimitPolicy default/reviews-rl", r.stdout)
        self.assertIn("targets Server nope, which is not in namespace default", r.stdout)
        st.write_file(path, server(9080) + rate_limit(total=5))
        r = subprocess.run([os.path.join(st.BIN, "sinew"), "analyze", "-f", path], capture_output=True, text=True,
                           env=st.proxy_env(), timeout=60)
        self.assertNotIn("SN0111", r.stdout)


class BadPolicy(unittest.TestCase):
    def test_identity_above_total_refused(self):
        d = st.make_tempdir(self)
        path = os.path.join(d, "rl.yaml")
        st.write_file(path, server(9080) + rate_limit(total=5, identity=10))
        code, err, ready = st.run_proxy_once(path)
        self.assertFalse(ready)
        self.assertIn("rl.yaml:", err)
        self.assertIn("HTTPLocalRateLimitPolicy default/reviews-rl: spec: identity.requestsPerSecond (10) cannot be "
                      "greater than total.requestsPerSecond (5)", err)


if __name__ == "__main__":
    st.main()
