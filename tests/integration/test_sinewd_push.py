#!/usr/bin/python3
"""sinewd's push side against real proxies: a proxy in control-plane mode
becomes ready once sinewd answers, resolves a host its app never called
before by subscribing (the request parks, well under a second), gets a
fast no_route for a host that exists nowhere; the workload registry
(a proxy with --inbound registers, others reach its app through it, it
leaves when it exits or stops heartbeating); GET /api/v1/proxies.

The helpers here (Mesh, start_cp_proxy) are reused by the other
test_sinewd_push_*.py files."""

import http.client
import json
import os
import signal
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

SINEWD = os.path.join(st.BIN, "sinewd")


class Mesh:
    """sinewd with its API and mesh ports on loopback, stopped (and its log
    checked for sanitizer reports) when the test ends."""

    def __init__(self, test, data_dir=None, start=True, plaintext=True, extra=()):
        self.test = test
        # The push-protocol tests speak plaintext (--mesh-plaintext); the
        # identity tests (test_mesh_identity.py) run the default: mTLS only.
        self.extra = (["--mesh-plaintext"] if plaintext else []) + list(extra)
        self.dir = data_dir or st.make_tempdir(test, "sinewd-")
        self.port = st.free_port()
        self.mesh_port = st.free_port()
        self.log = self.dir.rstrip("/") + ".log"
        self.p = None
        test.addCleanup(self.stop)
        if start:
            self.start()

    @property
    def mesh_addr(self):
        return "127.0.0.1:%d" % self.mesh_port

    def start(self, wait=True):
        self.logf = open(self.log, "ab")
        env = st.proxy_env()
        self.p = st.spawn([SINEWD, "--data-dir", self.dir, "--api", "127.0.0.1:%d" % self.port,
                           "--mesh", self.mesh_addr, "--log-level", "info"] + self.extra,
                          stdout=self.logf, stderr=self.logf, env=env)
        if not wait:
            return
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise AssertionError("sinewd exited %s: %s" % (self.p.returncode, self.read_log()))
            try:
                if self.call("GET", "/ready")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("sinewd not ready: " + self.read_log())

    def read_log(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.p is None:
            return
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except Exception:  # noqa: BLE001
                pass
            st.stop_process(self.p)
        self.logf.close()
        self.p = None
        log = self.read_log()
        for pat in st.SANITIZER_PATTERNS:
            if pat in log:
                raise AssertionError("sinewd reported %r:\n%s" % (pat, log[-4000:]))

    def kill9(self):
        st.kill_group(self.p)
        self.p.wait(10)
        self.logf.close()
        self.p = None

    def call(self, method, path, body=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body.encode() if isinstance(body, str) else body)
            r = c.getresponse()
            data = r.read()
            return r.status, (json.loads(data) if data.strip() else None)
        finally:
            c.close()

    def apply(self, text, source="test.yaml"):
        status, items = self.call("POST", "/api/v1/apply?source=" + urllib.parse.quote(source), text)
        if status != 200:
            raise AssertionError("apply %s: %s %s" % (source, status, items))
        return items

    def get(self, **q):
        return self.call("GET", "/api/v1/resources" + ("?" + urllib.parse.urlencode(q) if q else ""))

    def proxies(self):
        status, body = self.call("GET", "/api/v1/proxies")
        if status != 200:
            raise AssertionError("GET /api/v1/proxies: %s %s" % (status, body))
        return body

    def wait_proxies(self, pred, timeout=10.0, what="proxies"):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = self.proxies()
            if pred(last):
                return last
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s; last: %s" % (what, json.dumps(last)[:3000]))

    def all_synced(self, n, timeout=10.0):
        return self.wait_proxies(
            lambda ps: len(ps) == n and all(p["state"] == "SYNCED" for p in ps),
            timeout, "%d SYNCED proxies" % n)


class CpProxy(st.Proxy):
    """sinew-proxy --control-plane ADDR (no config file)."""

    def __init__(self, workdir, control_plane, **kw):
        super().__init__(None, workdir, **kw)
        self.control_plane = control_plane

    def argv(self):
        a = [st.PROXY, "--control-plane", self.control_plane]
        if self.outbound_port:
            a += ["--outbound", "%s:%d" % (st.LOOPBACK, self.outbound_port)]
        if self.inbound_port:
            a += ["--inbound", "%s:%d" % (st.LOOPBACK, self.inbound_port), "--app", self.app]
        if self.admin_port:
            a += ["--admin", "%s:%d" % (st.LOOPBACK, self.admin_port)]
        return a + self.extra


def start_cp_proxy(test, mesh, ready=True, workdir=None, **kw):
    """Starts a control-plane-mode proxy; with ready, waits for /ready 200
    (15 s). Stopped and checked for sanitizer reports when the test ends."""
    st.require_proxy()
    workdir = workdir or st.make_tempdir(test)
    p = CpProxy(workdir, mesh.mesh_addr if isinstance(mesh, Mesh) else mesh, **kw).start()
    test.addCleanup(st._finish_proxy, test, p, True)
    if ready and not p.wait_ready(15.0):
        p.stop()
        test.fail("control-plane proxy not ready in 15 s (exit %r)\nargv: %s\n--- stderr ---\n%s"
                  % (p.exit_code, " ".join(p.argv()), p.stderr()[-6000:]))
    return p


def get(port, host, path="/", timeout=5.0):
    return st.request(port, "GET", path, host=host, timeout=timeout)


def version_of(r):
    if r.status != 200:
        return "status %d %s %r" % (r.status, r.header("sinew-error"), r.body[:200])
    return r.json().get("version")


REVIEWS_DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
  - name: v3
    labels: {version: v3}
"""


def reviews_vs(subset):
    return """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: %s}
""" % subset


class PushTest(unittest.TestCase):
    def test_ready_after_sinewd_answers_lazy_subscribe_and_unknown_host(self):
        be = st.start_backend(self, "reviews", "v1")
        mesh = Mesh(self, start=False)
        # sinewd is not up yet: the proxy starts, is not ready, retries
        px = start_cp_proxy(self, mesh, ready=False, args=["--service", "productpage"])
        time.sleep(0.7)
        self.assertTrue(px.alive(), px.stderr())
        st_code, _, _ = px.admin_get("/ready")
        self.assertEqual(st_code, 503)
        mesh.start()
        mesh.apply(st.registry_yaml({("reviews", "v1"): be.port}), "registry.yaml")
        self.assertTrue(px.wait_ready(15.0), px.stderr())
        ps = mesh.all_synced(1)
        self.assertEqual(ps[0]["service"], "productpage")
        self.assertEqual(ps[0]["subscriptions"], [])

        # first call to reviews: subscribe, park, answer
        t0 = time.time()
        r = get(px.outbound_port, "reviews:9080")
        dt = time.time() - t0
        self.assertEqual(version_of(r), "v1")
        self.assertLess(dt, 1.0)
        # unknown host: answered by sinewd as "exists nowhere", fast
        t0 = time.time()
        r = get(px.outbound_port, "nowhere.example:80")
        dt = time.time() - t0
        self.assertEqual(r.status, 404)
        self.assertEqual(r.header("sinew-error"), "no_route")
        self.assertLess(dt, 0.5)
        # and again (known now): immediate
        t0 = time.time()
        r = get(px.outbound_port, "nowhere.example")
        self.assertEqual(r.status, 404)
        self.assertLess(time.time() - t0, 0.5)
        ps = mesh.all_synced(1)
        self.assertEqual(sorted(ps[0]["subscriptions"]), ["nowhere.example", "reviews"])
        self.assertEqual(ps[0]["resources"], 2)  # Service + WorkloadEntry
        self.assertEqual(ps[0]["revision"]["acked"], ps[0]["revision"]["current"])
        # resource status says which proxies run it
        status, items = mesh.get(kind="svc")
        self.assertEqual(status, 200)
        self.assertEqual(items[0]["status"]["proxies"], {"synced": 1, "pending": 0, "nack": []})

        # a change reaches the subscribed proxy
        be2 = st.start_backend(self, "reviews", "v2")
        mesh.apply(st.registry_yaml({("reviews", "v1"): be.port, ("reviews", "v2"): be2.port})
                   + REVIEWS_DR + "---\n" + reviews_vs("v2"), "v2.yaml")
        deadline = time.time() + 2
        while time.time() < deadline and version_of(get(px.outbound_port, "reviews")) != "v2":
            time.sleep(0.02)
        self.assertEqual(version_of(get(px.outbound_port, "reviews")), "v2")

    def test_registry_through_inbound_and_lease(self):
        mesh = Mesh(self)
        mesh.apply(st.service_yaml("reviews"), "svc.yaml")
        app_b = st.start_backend(self, "reviews", "v2")
        a = start_cp_proxy(self, mesh, args=["--service", "productpage"])
        b = start_cp_proxy(self, mesh, outbound=False, inbound=True,
                           app="127.0.0.1:%d" % app_b.port,
                           args=["--service", "reviews", "--labels", "version=v2"])
        # B registered: a generated WorkloadEntry, marked, not stored
        def registered():
            status, items = mesh.get(kind="we")
            return [i for i in items if i.get("registered")]
        deadline = time.time() + 5
        while time.time() < deadline and not registered():
            time.sleep(0.05)
        regs = registered()
        self.assertEqual(len(regs), 1, regs)
        we = regs[0]
        self.assertTrue(we["name"].startswith("proxy-reviews-"), we)
        self.assertIn("127.0.0.1", we["yaml"])
        self.assertIn('"http": %d' % b.inbound_port, we["yaml"])
        self.assertIn('"version": "v2"', we["yaml"])
        self.assertIn('"app": "reviews"', we["yaml"])
        self.assertTrue(we["resourceVersion"].startswith("reg-"))
        self.assertFalse(os.path.exists(os.path.join(mesh.dir, "resources", "WorkloadEntry")))
        status, one = mesh.call("GET", "/api/v1/resources/we/default/" + we["name"])
        self.assertEqual(status, 200)
        self.assertTrue(one["registered"])
        status, _ = mesh.call("DELETE", "/api/v1/resources/we/default/" + we["name"])
        self.assertEqual(status, 409)

        # A's app -> A outbound -> B inbound -> B's app
        r = get(a.outbound_port, "reviews:9080")
        self.assertEqual(version_of(r), "v2")
        self.assertEqual(app_b.requests(), 1)
        ps = mesh.proxies()
        pb = [p for p in ps if p["service"] == "reviews"][0]
        self.assertEqual(pb["registered"], we["name"])
        self.assertEqual(pb["address"], "127.0.0.1:%d" % b.inbound_port)
        self.assertEqual(pb["labels"], {"version": "v2"})

        # B stops heartbeating (SIGSTOP): dropped within the 10 s lease
        b.signal(signal.SIGSTOP)
        t0 = time.time()
        while time.time() - t0 < 14 and registered():
            time.sleep(0.1)
        gone_after = time.time() - t0
        b.signal(signal.SIGCONT)
        self.assertFalse(registered(), "still registered %.1f s after SIGSTOP" % gone_after)
        self.assertLess(gone_after, 12.5)
        self.assertGreater(gone_after, 8.0)
        # A gets the removal (pushed once sinewd drops the entry): no
        # endpoint for reviews any more
        deadline = time.time() + 2
        r = get(a.outbound_port, "reviews:9080")
        while r.status != 503 and time.time() < deadline:
            time.sleep(0.05)
            r = get(a.outbound_port, "reviews:9080")
        self.assertEqual(r.status, 503, r.body)
        # B is alive again and reconnects: registered again, reachable
        deadline = time.time() + 10
        while time.time() < deadline and not registered():
            time.sleep(0.1)
        self.assertTrue(registered())
        deadline = time.time() + 3
        while time.time() < deadline and get(a.outbound_port, "reviews:9080").status != 200:
            time.sleep(0.05)
        self.assertEqual(version_of(get(a.outbound_port, "reviews:9080")), "v2")

        # B exits: leaves at once (link closed), A stops routing to it
        b.stop()
        t0 = time.time()
        while time.time() - t0 < 3 and registered():
            time.sleep(0.05)
        self.assertFalse(registered())
        self.assertLess(time.time() - t0, 2.0)
        ps = mesh.wait_proxies(lambda ps: len(ps) == 1, 3, "B gone from /api/v1/proxies")
        self.assertEqual(ps[0]["service"], "productpage")

    def test_bad_hello_is_refused_and_others_unaffected(self):
        import socket
        mesh = Mesh(self)
        # not HTTP/2 at all
        s = socket.create_connection(("127.0.0.1", mesh.mesh_port), 5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
        s.close()
        be = st.start_backend(self, "reviews", "v1")
        mesh.apply(st.registry_yaml({("reviews", "v1"): be.port}), "registry.yaml")
        px = start_cp_proxy(self, mesh, args=["--service", "x"])
        self.assertEqual(version_of(get(px.outbound_port, "reviews")), "v1")
        self.assertEqual(mesh.call("GET", "/ready")[0], 200)


if __name__ == "__main__":
    st.main()
