#!/usr/bin/python3
"""Malformed configuration is refused with file:line and field: at startup
the proxy exits non-zero; on reload (SIGHUP or the file changing) the old
snapshot stays active and keeps serving, and the failure is counted."""

import json
import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

REGISTRY = st.registry_yaml({("reviews", "v1"): 19081, ("reviews", "v3"): 19083})

DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v3
    labels:
      version: v3
"""

VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: {subset}
      weight: {weight}
"""

# Each bad document: (name, text, marker, field). marker is a substring of
# the line the diagnostic must point at (None: any line), field the field
# path the diagnostic must name (None: none required).
BAD = [
    ("bad_yaml_unclosed_flow",
     "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n"
     "spec:\n  hosts: [reviews\n  http:\n  - route:\n    - destination:\n        host: reviews\n",
     None, None),
    ("bad_yaml_indentation",
     "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n"
     "spec:\n  hosts:\n  - reviews\n   http: x\n  - route: [\n",
     None, None),
    ("unknown_kind",
     "apiVersion: networking.istio.io/v1\nkind: VirtualServise\nmetadata:\n  name: reviews\n"
     "spec:\n  hosts:\n  - reviews\n",
     "kind: VirtualServise", "kind"),
    ("wrong_type_weight",
     VS.replace("{subset}", "v1").replace("{weight}", "heavy"),
     "weight: heavy", "spec.http[0].route[0].weight"),
    ("wrong_type_hosts_map",
     "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n"
     "spec:\n  hosts:\n    name: reviews\n  http:\n  - route:\n    - destination:\n"
     "        host: reviews\n        subset: v1\n",
     None, "spec.hosts"),
    ("wrong_type_timeout",
     "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n"
     "spec:\n  hosts:\n  - reviews\n  http:\n  - timeout: soon\n    route:\n    - destination:\n"
     "        host: reviews\n        subset: v1\n",
     "timeout: soon", "spec.http[0].timeout"),
    ("unknown_subset",
     VS.replace("{subset}", "v9").replace("{weight}", "100"),
     "subset: v9", "spec.http[0].route[0].destination.subset"),
    ("unknown_host",
     VS.replace("{subset}", "v1").replace("{weight}", "100").replace(
         "        host: reviews\n", "        host: nosuch-service\n"),
     "host: nosuch-service", "spec.http[0].route[0].destination.host"),
]


def line_of(text, marker, after=0):
    for n, line in enumerate(text.splitlines(), 1):
        if n > after and marker in line:
            return n
    raise AssertionError("marker %r not in text" % marker)


def doc_start_line(text, doc):
    """1-based line where doc (one document of text) starts."""
    i = text.index(doc.strip("\n"))
    return text.count("\n", 0, i) + 1


class ConfigErrors(unittest.TestCase):

    def assert_diagnostic(self, stderr, path, text, bad, marker, field, what):
        """stderr has one line naming path:LINE (LINE = the marker's line in
        the bad document if given; for "kind" also the document's first
        line) and, if given, the field path."""
        if marker:
            start = doc_start_line(text, bad)
            lines = {line_of(text, marker, start - 1)}
            if field == "kind":
                lines.add(start)
        else:
            lines = None
        pat = re.compile(re.escape(path) + r":(\d+)")
        hits = []
        for ln in stderr.splitlines():
            for m in pat.finditer(ln):
                n = int(m.group(1))
                if lines is None or n in lines:
                    hits.append(ln)
        self.assertTrue(hits, "%s: stderr does not name %s:%s\n--- stderr ---\n%s"
                        % (what, path, sorted(lines) if lines else "LINE", stderr[-3000:]))
        if field:
            self.assertTrue(any(field in h for h in hits),
                            "%s: no diagnostic line names both %s:%s and field %r\n"
                            "--- stderr ---\n%s" % (what, path, sorted(lines) if lines else "LINE",
                                                   field, stderr[-3000:]))

    def test_startup_refuses_bad_config(self):
        d = st.make_tempdir(self)
        for name, bad, marker, field in BAD:
            with self.subTest(case=name):
                text = st.join_docs(REGISTRY, DR, bad)
                path = os.path.join(d, name + ".yaml")
                st.write_file(path, text)
                code, err, ready = st.run_proxy_once(path, timeout=10)
                self.assertFalse(ready, "%s: proxy became ready with a bad config" % name)
                self.assertIsNotNone(code, "%s: proxy still running after 10 s" % name)
                self.assertGreater(code, 0, "%s: exit status %r (negative: killed by a signal)"
                                   "\n%s" % (name, code, err[-3000:]))
                # sinew-proxy --help: "2 when the config is refused".
                self.assertEqual(code, 2, "%s: exit status for a refused config" % name)
                self.assertNotRegex(err, "|".join(map(re.escape, st.SANITIZER_PATTERNS)))
                self.assertNotRegex(err, re.escape(path) + r":0\b",
                                    "%s: diagnostic with line 0" % name)
                self.assert_diagnostic(err, path, text, bad, marker, field, name)

    def test_missing_file(self):
        d = st.make_tempdir(self)
        path = os.path.join(d, "does-not-exist.yaml")
        code, err, ready = st.run_proxy_once(path, timeout=10)
        self.assertFalse(ready)
        self.assertIsNotNone(code)
        self.assertGreater(code, 0)
        self.assertIn(path, err)

    def test_error_does_not_hide_other_errors(self):
        """Two bad documents: both are reported (a bad resource never hides
        another's problem)."""
        d = st.make_tempdir(self)
        bad1 = VS.replace("{subset}", "v7").replace("{weight}", "100")
        bad2 = VS.replace("{subset}", "v8").replace("{weight}", "100").replace("reviews", "ratings")
        text = st.join_docs(st.registry_yaml({("reviews", "v1"): 19081, ("ratings", "v1"): 19082}),
                            DR, DR.replace("reviews", "ratings"), bad1, bad2)
        path = os.path.join(d, "two.yaml")
        st.write_file(path, text)
        code, err, ready = st.run_proxy_once(path, timeout=10)
        self.assertFalse(ready)
        self.assertGreater(code or 0, 0, err)
        lines = [n for n, ln in enumerate(text.splitlines(), 1) if "subset: v7" in ln or
                 "subset: v8" in ln]
        for n in lines:
            self.assertIn("%s:%d" % (path, n), err)

    # -- reload ---------------------------------------------------------

    def start_serving(self):
        b1 = st.start_backend(self, "reviews", "v1")
        b3 = st.start_backend(self, "reviews", "v3")
        registry = st.registry_yaml({("reviews", "v1"): b1.port, ("reviews", "v3"): b3.port})
        good = {v: st.join_docs(registry, DR, VS.replace("{subset}", v).replace("{weight}", "100"))
                for v in ("v1", "v3")}
        d = st.make_tempdir(self)
        path = os.path.join(d, "sinew.yaml")
        st.write_file(path, good["v1"])
        p = st.start_proxy(self, config_path=path, workdir=d)
        self.assert_version(p, "v1")
        return p, path, registry, good

    def assert_version(self, p, ver, n=10):
        c = st.KeepAliveClient(p.outbound_port)
        try:
            for i in range(n):
                r = c.request("GET", "/r%d" % i, "reviews")
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["version"], ver)
                r = st.request(p.outbound_port, "GET", "/n%d" % i, host="reviews")
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["version"], ver)
        finally:
            c.close()

    def reloads(self, p):
        m = p.metrics()
        return (st.metric_sum(m, "sinew_config_reloads_total", result="success"),
                st.metric_sum(m, "sinew_config_reloads_total", result="failure"),
                st.metric_sum(m, "sinew_config_version"))

    def wait_for(self, cond, timeout=5.0, what="condition"):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = cond()
            if v:
                return v
            time.sleep(0.05)
        self.fail("timed out after %.0f s waiting for %s" % (timeout, what))

    def config_version(self, p):
        st_, _, body = p.admin_get("/config_dump")
        self.assertEqual(st_, 200)
        return json.loads(body)["version"]

    def bad_reload(self, p, path, registry, trigger):
        ok0, fail0, _ = self.reloads(p)
        ver0 = self.config_version(p)
        cases = [c for c in BAD if c[0] in ("bad_yaml_unclosed_flow", "unknown_kind",
                                            "wrong_type_weight", "unknown_subset",
                                            "unknown_host")]
        for name, bad, marker, field in cases:
            with self.subTest(case=name, trigger=trigger):
                text = st.join_docs(registry, DR, bad)
                before = len(p.stderr())
                fails = self.reloads(p)[1]
                st.write_file(path, text)
                if trigger == "sighup":
                    p.signal(signal.SIGHUP)
                self.wait_for(lambda: self.reloads(p)[1] > fails, 5,
                              "sinew_config_reloads_total{result=\"failure\"} to pass %d"
                              % fails)
                self.assertTrue(p.alive(), "proxy exited on a bad reload:\n" + p.stderr()[-3000:])
                # The old snapshot keeps serving.
                self.assert_version(p, "v1", n=5)
                self.assertEqual(self.config_version(p), ver0)
                # The diagnostic may be written just after the counter moves.
                time.sleep(0.2)
                err = p.stderr()[before:]
                self.assert_diagnostic(err, path, text, bad, marker, field, name)
        ok1, fail1, _ = self.reloads(p)
        self.assertEqual(ok1, ok0, "a bad file counted as a successful reload")
        self.assertGreaterEqual(fail1, fail0 + len(cases))

    def test_reload_bad_file_on_change(self):
        p, path, registry, good = self.start_serving()
        self.bad_reload(p, path, registry, "file")
        ok0, _, _ = self.reloads(p)
        ver0 = self.config_version(p)
        st.write_file(path, good["v3"])
        self.wait_for(lambda: self.reloads(p)[0] > ok0, 5, "a successful reload")
        self.assert_version(p, "v3")
        self.assertNotEqual(self.config_version(p), ver0)

    def test_reload_bad_file_on_sighup(self):
        p, path, registry, good = self.start_serving()
        self.bad_reload(p, path, registry, "sighup")
        ok0, _, _ = self.reloads(p)
        st.write_file(path, good["v3"])
        p.signal(signal.SIGHUP)
        self.wait_for(lambda: self.reloads(p)[0] > ok0, 5, "a successful reload")
        self.assert_version(p, "v3")

    def test_sighup_reloads_unchanged_file(self):
        p, path, registry, good = self.start_serving()
        ok0, fail0, _ = self.reloads(p)
        p.signal(signal.SIGHUP)
        self.wait_for(lambda: self.reloads(p)[0] > ok0, 5, "SIGHUP to cause a reload")
        self.assertEqual(self.reloads(p)[1], fail0)
        self.assertTrue(p.alive())
        self.assert_version(p, "v1")

    def test_sighup_storm(self):
        """Many SIGHUPs in a row (a deploy script in a loop): no crash, no
        failed request, the config stays as it was."""
        p, path, registry, good = self.start_serving()
        _, fail0, _ = self.reloads(p)
        for i in range(40):
            p.signal(signal.SIGHUP)
            time.sleep(0.01)
            if i % 8 == 0:
                self.assert_version(p, "v1", n=1)
        time.sleep(0.5)
        self.assertTrue(p.alive(), p.stderr()[-3000:])
        self.assert_version(p, "v1")
        self.assertEqual(self.reloads(p)[1], fail0)

    def test_bad_reload_then_removed_file(self):
        """The file vanishing (e.g. during a deploy) is a failed reload, not
        an empty config: the old snapshot keeps serving."""
        p, path, registry, good = self.start_serving()
        _, fail0, _ = self.reloads(p)
        os.unlink(path)
        p.signal(signal.SIGHUP)
        self.wait_for(lambda: self.reloads(p)[1] > fail0, 5, "a failed reload")
        self.assertTrue(p.alive())
        self.assert_version(p, "v1")
        st.write_file(path, good["v3"])
        p.signal(signal.SIGHUP)
        self.wait_for(lambda: self.assert_version_ok(p, "v3"), 5, "v3 after the file came back")

    def assert_version_ok(self, p, ver):
        try:
            r = st.request(p.outbound_port, "GET", "/", host="reviews")
            return r.status == 200 and r.json()["version"] == ver
        except Exception:  # noqa: BLE001
            return False


if __name__ == "__main__":
    st.main()
