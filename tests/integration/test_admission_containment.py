#!/usr/bin/python3
"""Hardened inputs: one bad value must not take sinewd (or a proxy) down.

- The WorkloadEntry whose spec.address is present but null (it once crashed
  translation with inet_pton(NULL)): `sinew apply` refuses it with a
  spec.address error while sinewd keeps serving and admits the Service
  beside it; `sinew-proxy --config` exits 1 with the same error.
- Containment: with the test-only fault-injection point
  (SINEW_FAULT_CRASH_RESOURCE, compiled only with SN_TEST_HOOKS), loading
  one named resource crashes the config code. sinewd admits in a child
  process: it stays up, refuses that resource with internal_error, admits
  the others of the same apply, and no proxy ever receives it (the proxy
  runs with the same fault point, so receiving it would kill it).
- A stream of bad applies (1,000 of a 94-byte file that makes Debian's
  libfyaml 0.7.12 leak 4 KiB each) leaves the release sinewd's RSS flat
  (< 256 KiB growth)."""

import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh, start_cp_proxy  # noqa: E402

SINEW = os.path.join(st.BIN, "sinew")
HOOKS = os.environ.get("SINEW_TEST_HOOKS", "") in ("ON", "1", "TRUE", "true")
RELEASE_BIN = os.path.join(st.SRC, "build", "release", "bin")

NULL_ADDRESS = """apiVersion: v1
kind: Service
metadata: {name: s}
spec: {selector: {app: reviews}, ports: [{port: 9}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: w}
spec:
  address:
  labels: {app: reviews}
"""

# \r\r then 92 single quotes: 94 bytes.
CR_QUOTES = b"\r\r" + b"'" * 92


def items_by_name(body):
    return {(i["kind"], i["name"]): i for i in body}


def messages(item):
    return " | ".join("%s %s" % (d.get("field"), d.get("message")) for d in item["diagnostics"])


class NullValueTest(unittest.TestCase):
    def test_apply_refuses_null_address_and_sinewd_keeps_serving(self):
        mesh = Mesh(self)
        path = os.path.join(st.make_tempdir(self), "we.yaml")
        st.write_file(path, NULL_ADDRESS)
        env = st.proxy_env()
        env["SINEW_SERVER"] = "http://127.0.0.1:%d" % mesh.port
        p = subprocess.run([SINEW, "apply", "-f", path], capture_output=True, text=True, env=env, timeout=60)
        out = p.stdout + p.stderr
        self.assertNotEqual(p.returncode, 0, out)
        self.assertIn("spec.address", out)
        self.assertIn("address is required", out)
        self.assertIn("we.yaml:10:", out)  # file:line of the null value
        self.assertNotIn("closed the connection", out)
        # sinewd is up and kept the Service of the same apply
        self.assertEqual(mesh.call("GET", "/ready")[0], 200)
        status, body = mesh.call("GET", "/api/v1/resources/svc/default/s")
        self.assertEqual(status, 200, body)
        status, body = mesh.call("GET", "/api/v1/resources/we/default/w")
        self.assertEqual(status, 404, body)

    def test_proxy_config_refused_with_the_same_error(self):
        path = os.path.join(st.make_tempdir(self), "we.yaml")
        st.write_file(path, NULL_ADDRESS)
        code, err, ready = st.run_proxy_once(path)
        self.assertEqual(code, 2, err)  # sinew-proxy --help: 2 when the config is refused
        self.assertFalse(ready)
        self.assertIn("spec.address", err)
        self.assertIn("address is required", err)


@unittest.skipUnless(HOOKS, "fault-injection points are compiled only into test builds (SN_TEST_HOOKS)")
class ContainmentTest(unittest.TestCase):
    def setUp(self):
        os.environ["SINEW_FAULT_CRASH_RESOURCE"] = "default/boom"
        self.addCleanup(os.environ.pop, "SINEW_FAULT_CRASH_RESOURCE", None)

    def filter_child_reports(self, mesh):
        """The admission child's crash report is expected in sinewd's log
        (it shares sinewd's stderr): keep it out of the sanitizer check,
        which still reads every line of sinewd's own."""
        pid = mesh.p.pid
        with open(mesh.log, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines(True)
        kept, child = [], False
        for ln in lines:
            if ln.startswith("==") and "==" in ln[2:]:
                child = ln[2:ln.index("==", 2)] != str(pid)
            elif ln.startswith("SUMMARY: AddressSanitizer") and child:
                continue
            if not (ln.startswith("==") and child):
                kept.append(ln)
        with open(mesh.log, "w") as f:
            f.write("".join(kept))
        return "".join(lines)

    def test_crashing_resource_is_refused_alone(self):
        mesh = Mesh(self)
        backend = st.start_backend(self, "reviews", "v1")
        mesh.apply(st.registry_yaml({("reviews", "v1"): backend.port}), "registry.yaml")
        proxy = start_cp_proxy(self, mesh, args=["--service", "productpage"])
        r = st.request(proxy.outbound_port, "GET", "/", host="reviews:9080")
        self.assertEqual(r.status, 200, r.body[:300])

        doc = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: boom}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec: {selector: {app: ratings}, ports: [{port: 9080}]}
"""
        t0 = time.time()
        status, body = mesh.call("POST", "/api/v1/apply?source=apply.yaml", doc)
        took = time.time() - t0
        self.assertEqual(status, 422, body)
        items = items_by_name(body)
        boom = items[("VirtualService", "boom")]
        self.assertEqual(boom["result"], "refused", boom)
        self.assertIn("internal_error", messages(boom))
        self.assertIn("VirtualService default/boom", messages(boom))
        self.assertEqual(items[("DestinationRule", "reviews")]["result"], "created", body)
        self.assertEqual(items[("Service", "ratings")]["result"], "created", body)
        # sinewd is up, serving and storing
        self.assertEqual(mesh.call("GET", "/ready")[0], 200)
        self.assertEqual(mesh.call("GET", "/api/v1/resources/vs/default/boom")[0], 404)
        self.assertEqual(mesh.call("GET", "/api/v1/resources/dr/default/reviews")[0], 200)
        status, _ = mesh.call("POST", "/api/v1/apply?source=later.yaml",
                              st.service_yaml("details"))
        self.assertEqual(status, 200)
        # the proxy, which would crash on it, never got it and still routes
        deadline = time.time() + 5
        while time.time() < deadline:
            st_code, _, dump = proxy.admin_get("/config_dump")
            if b"reviews" in dump and b"subset" in dump and b'"v1"' in dump:
                break
            time.sleep(0.1)
        self.assertTrue(proxy.alive(), proxy.stderr()[-3000:])
        self.assertNotIn(b"boom", dump)
        r = st.request(proxy.outbound_port, "GET", "/", host="reviews:9080")
        self.assertEqual(r.status, 200, r.body[:300])
        log = self.filter_child_reports(mesh)
        self.assertIn("crashes admission; refused", log)
        print("apply with one crashing resource answered in %.2f s" % took)


class BadApplyMemoryTest(unittest.TestCase):
    def test_rss_flat_under_bad_applies(self):
        sinewd = os.path.join(RELEASE_BIN, "sinewd")
        if not os.path.exists(sinewd):
            self.skipTest("no release build (make build) at " + RELEASE_BIN)
        import test_sinewd_push
        old = test_sinewd_push.SINEWD
        test_sinewd_push.SINEWD = sinewd
        try:
            mesh = Mesh(self)
        finally:
            test_sinewd_push.SINEWD = old

        def rss_kib():
            with open("/proc/%d/status" % mesh.p.pid) as f:
                for ln in f:
                    if ln.startswith("VmRSS:"):
                        return int(ln.split()[1])
            return 0

        def bad_applies(n):
            for _ in range(n):
                status, body = mesh.call("POST", "/api/v1/apply?source=cr.yaml", CR_QUOTES)
                self.assertEqual(status, 422, body)
                self.assertTrue(any(d["severity"] == "error" for it in body for d in it["diagnostics"]),
                                json.dumps(body)[:500])

        bad_applies(100)   # warm up: allocator arenas, buffers
        before = rss_kib()
        t0 = time.time()
        bad_applies(1000)
        took = time.time() - t0
        after = rss_kib()
        print("1,000 bad applies: RSS %d -> %d KiB (%+d), %.2f ms per apply"
              % (before, after, after - before, took))
        self.assertLess(after - before, 256, "sinewd's RSS grew by %d KiB" % (after - before))
        self.assertEqual(mesh.call("GET", "/ready")[0], 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
