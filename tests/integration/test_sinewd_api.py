#!/usr/bin/python3
"""sinewd's HTTP/JSON API against a real sinewd: apply the bookinfo samples
(read from $SINEW_SHARED), get them back by kind alias, refuse one bad
resource of a multi-document apply alone (file:line:column and field),
delete, and analyze (stable codes on crafted files, nothing on bookinfo
with a matching registry)."""

import http.client
import json
import os
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

SINEWD = os.path.join(st.BIN, "sinewd")

# Services and one WorkloadEntry per version that destination-rule-all.yaml
# names, so every subset has an endpoint.
REGISTRY_VERSIONS = {
    "productpage": ["v1"], "details": ["v1", "v2"], "reviews": ["v1", "v2", "v3"],
    "ratings": ["v1", "v2", "v2-mysql", "v2-mysql-vm"],
}


def full_registry():
    docs = []
    n = 1
    for svc, versions in REGISTRY_VERSIONS.items():
        docs.append(st.service_yaml(svc))
        for v in versions:
            docs.append("""apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: %s-%s
spec:
  address: 10.0.1.%d
  labels: {app: %s, version: %s}
""" % (svc, v, n, svc, v))
            n += 1
    return st.join_docs(*docs)


def bookinfo_text(name):
    with open(os.path.join(st.BOOKINFO, name)) as f:
        return f.read()


class Sinewd:
    def __init__(self, test, data_dir=None):
        self.test = test
        self.dir = data_dir or st.make_tempdir(test, "sinewd-")
        self.port = st.free_port()
        self.mesh_port = st.free_port()
        self.log = os.path.join(self.dir, "..", os.path.basename(self.dir) + ".log")
        self.start()

    def start(self):
        self.logf = open(self.log, "ab")
        self.p = st.spawn([SINEWD, "--data-dir", self.dir, "--api", "127.0.0.1:%d" % self.port,
                           "--mesh", "127.0.0.1:%d" % self.mesh_port, "--log-level", "info"], stdout=self.logf, stderr=self.logf)
        self.test.addCleanup(self.stop)
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
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self):
        if self.p.poll() is None:
            st.stop_process(self.p)
        self.logf.close()
        log = self.read_log()
        for pat in st.SANITIZER_PATTERNS:
            if pat in log:
                raise AssertionError("sinewd reported %r:\n%s" % (pat, log[-4000:]))

    def kill9(self):
        st.kill_group(self.p)
        self.p.wait(10)
        self.logf.close()

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
        return self.call("POST", "/api/v1/apply?source=" + urllib.parse.quote(source), text)

    def get(self, **q):
        return self.call("GET", "/api/v1/resources" + ("?" + urllib.parse.urlencode(q) if q else ""))

    def analyze(self, text=None, only=False, source="analyze.yaml"):
        qs = "?source=" + urllib.parse.quote(source) + ("&only=1" if only else "")
        return self.call("POST", "/api/v1/analyze" + qs, text)


def by_name(items):
    return {(i["kind"], i["name"]): i for i in items}


def codes(report):
    return sorted(m["code"] for m in report["messages"] if m["level"] in ("Error", "Warning"))


class ApiTest(unittest.TestCase):
    def test_apply_bookinfo_and_get_back(self):
        d = Sinewd(self)
        status, items = d.apply(full_registry(), "registry.yaml")
        self.assertEqual(status, 200, items)
        self.assertTrue(all(i["result"] == "created" for i in items), items)
        for name in ("destination-rule-all.yaml", "virtual-service-all-v1.yaml"):
            status, items = d.apply(bookinfo_text(name), name)
            self.assertEqual(status, 200, items)
            self.assertEqual({i["result"] for i in items}, {"created"}, items)
        # applying again changes nothing
        status, items = d.apply(bookinfo_text("virtual-service-all-v1.yaml"), "virtual-service-all-v1.yaml")
        self.assertEqual(status, 200)
        self.assertEqual({i["result"] for i in items}, {"unchanged"}, items)
        # a change is "configured", its generation moves
        status, items = d.apply(bookinfo_text("virtual-service-reviews-50-v3.yaml"), "50.yaml")
        self.assertEqual(status, 200, items)
        self.assertEqual([(i["name"], i["result"]) for i in items], [("reviews", "configured")])

        for alias in ("vs", "VirtualService", "virtualservices", "VS"):
            status, got = d.get(kind=alias)
            self.assertEqual(status, 200, got)
            self.assertEqual(sorted(g["name"] for g in got), ["details", "productpage", "ratings", "reviews"])
        status, got = d.get(kind="dr", name="reviews")
        self.assertEqual(status, 200)
        self.assertEqual(len(got), 1)
        dr = got[0]
        self.assertEqual(dr["apiVersion"], "networking.istio.io/v1")
        self.assertEqual(dr["source"], "destination-rule-all.yaml")
        self.assertIn("name: reviews", dr["yaml"])
        self.assertIn("- name: v3", dr["yaml"])
        self.assertTrue(dr["status"]["accepted"])
        status, reviews = d.call("GET", "/api/v1/resources/vs/default/reviews")
        self.assertEqual(status, 200, reviews)
        self.assertEqual(reviews["generation"], 2)
        self.assertIn("weight: 50", reviews["yaml"])
        status, svcs = d.get(kind="svc", namespace="default")
        self.assertEqual(len(svcs), 4)
        status, we = d.get(kind="we")
        self.assertEqual(len(we), 10)
        status, err = d.get(kind="sidecar")   # a kind Sinew does not implement
        self.assertEqual(status, 400)
        self.assertIn("virtualservice", err["error"])
        status, v = d.call("GET", "/api/v1/version")
        self.assertEqual(status, 200)
        self.assertEqual(v["resources"], 22)
        self.assertEqual(v["revision"], "23")
        self.assertEqual(d.call("GET", "/live")[0], 200)

    def test_one_bad_resource_refused_alone(self):
        d = Sinewd(self)
        self.assertEqual(d.apply(full_registry())[0], 200)
        self.assertEqual(d.apply(bookinfo_text("destination-rule-all.yaml"), "dr.yaml")[0], 200)
        text = st.join_docs(
            """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts: [ratings]
  http:
  - route:
    - destination: {host: ratings, subset: v1}
""", """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
        subset: v9
""", """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: details
spec:
  hosts: [details]
  http:
  - timeout: soon
    route:
    - destination: {host: details}
""", """apiVersion: v1
kind: Service
metadata:
  name: extra
spec:
  selector: {app: extra}
  ports: [{name: http, port: 8080}]
""")
        status, items = d.apply(text, "mixed.yaml")
        self.assertEqual(status, 422, items)
        got = by_name(items)
        self.assertEqual(got[("VirtualService", "ratings")]["result"], "created")
        self.assertEqual(got[("Service", "extra")]["result"], "created")
        bad = got[("VirtualService", "reviews")]
        self.assertEqual(bad["result"], "refused")
        errs = [g for g in bad["diagnostics"] if g["severity"] == "error"]
        self.assertEqual(len(errs), 1, bad)
        self.assertEqual((errs[0]["file"], errs[0]["line"], errs[0]["column"]), ("mixed.yaml", 21, 17))
        self.assertEqual(errs[0]["field"], "spec.http[0].route[0].destination.subset")
        self.assertTrue(errs[0]["text"].startswith("mixed.yaml:21:17: error: "), errs[0])
        self.assertIn("v9", errs[0]["message"])
        bad2 = got[("VirtualService", "details")]
        self.assertEqual(bad2["result"], "refused")
        self.assertEqual(bad2["diagnostics"][0]["field"], "spec.http[0].timeout")
        self.assertEqual(bad2["diagnostics"][0]["line"], 30)
        # the refused ones are not stored, the others are
        status, vs = d.get(kind="vs")
        self.assertEqual([v["name"] for v in vs], ["ratings"])
        self.assertEqual(len(d.get(kind="svc", name="extra")[1]), 1)

    def test_refusal_does_not_change_others(self):
        """A good resource whose dependency is refused in the same apply is
        refused for its own reason; an unrelated one still applies."""
        d = Sinewd(self)
        self.assertEqual(d.apply(full_registry())[0], 200)
        text = st.join_docs(
            """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
  trafficPolicy:
    loadBalancer: {simple: BOGUS}
""", """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
""", """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts: [ratings]
  http:
  - route:
    - destination: {host: ratings}
""")
        status, items = d.apply(text, "dep.yaml")
        self.assertEqual(status, 422, items)
        got = by_name(items)
        self.assertEqual(got[("DestinationRule", "reviews")]["result"], "refused", items)
        self.assertEqual(got[("VirtualService", "reviews")]["result"], "refused", items)
        self.assertIn("subset", got[("VirtualService", "reviews")]["diagnostics"][-1]["message"])
        self.assertEqual(got[("VirtualService", "ratings")]["result"], "created", items)

    def test_shadowed_virtual_service_is_still_checked(self):
        d = Sinewd(self)
        self.assertEqual(d.apply(full_registry())[0], 200)
        self.assertEqual(d.apply(bookinfo_text("destination-rule-all.yaml"), "dr.yaml")[0], 200)
        self.assertEqual(d.apply(bookinfo_text("virtual-service-all-v1.yaml"), "all-v1.yaml")[0], 200)
        status, items = d.apply("""apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-canary
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v7}
""", "canary.yaml")
        self.assertEqual(status, 422, items)
        self.assertEqual(items[0]["result"], "refused")
        self.assertTrue(any(g["field"] == "spec.http[0].route[0].destination.subset" for g in items[0]["diagnostics"]),
                        items)

    def test_yaml_and_kind_errors(self):
        d = Sinewd(self)
        status, items = d.apply("apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n"
                                "---\nkind: Frobnicator\napiVersion: x/v1\nmetadata: {name: f}\n"
                                "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: sc}\n"
                                "spec: {}\n", "kinds.yaml")
        self.assertEqual(status, 422, items)
        results = [(i["kind"], i["name"], i["result"]) for i in items]
        self.assertEqual(results, [("Service", "a", "created"), ("Frobnicator", "", "refused"),
                                   ("Sidecar", "sc", "ignored")], items)
        self.assertIn("kinds.yaml:6:", items[1]["diagnostics"][0]["text"])
        status, items = d.apply("a: [\n", "broken.yaml")
        self.assertEqual(status, 422)
        self.assertIn("broken.yaml:", items[0]["diagnostics"][0]["text"])
        self.assertIn("YAML syntax error", items[0]["diagnostics"][0]["message"])

    def test_delete(self):
        d = Sinewd(self)
        self.assertEqual(d.apply(full_registry())[0], 200)
        status, body = d.call("DELETE", "/api/v1/resources/svc/default/nope")
        self.assertEqual(status, 404)
        self.assertIn("Service default/nope not found", body["error"])
        self.assertIn("reviews", body["error"])  # says what exists
        status, body = d.call("DELETE", "/api/v1/resources/services/default/ratings")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"], "deleted")
        self.assertEqual(d.get(kind="svc", name="ratings")[1], [])
        self.assertEqual(d.call("GET", "/api/v1/resources/svc/default/ratings")[0], 404)
        self.assertEqual(d.call("DELETE", "/api/v1/resources/svc/default/ratings")[0], 404)
        self.assertEqual(d.call("DELETE", "/api/v1/resources/widgets/default/x")[0], 400)
        # the revision never goes back, even across a restart
        rev = d.call("GET", "/api/v1/version")[1]["revision"]
        d.stop()
        d.start()
        self.assertEqual(d.call("GET", "/api/v1/version")[1]["revision"], rev)
        self.assertEqual(len(d.get(kind="svc")[1]), 3)

    def test_bounds_and_errors(self):
        d = Sinewd(self)
        # refused from the head alone, before any of the body is read
        resp, _ = st.raw_exchange(d.port, b"POST /api/v1/apply HTTP/1.1\r\nHost: x\r\n"
                                  b"Content-Length: 8388609\r\n\r\n")
        self.assertEqual(resp.status, 413)
        self.assertIn("8 MiB", resp.json()["error"])
        status, body = d.call("GET", "/api/v1/nothing")
        self.assertEqual(status, 404)
        self.assertIn("/api/v1/resources", body["error"])
        status, body = d.call("PUT", "/api/v1/apply", "x")
        self.assertEqual(status, 405)
        status, body = d.call("GET", "/api/v1/resources?kind=%zz")
        self.assertEqual(status, 400)
        # a resource over 1 MiB is refused alone
        big = "apiVersion: v1\nkind: Service\nmetadata:\n  name: big\n  annotations:\n    a: \"%s\"\nspec:\n  ports: [{port: 80}]\n" % ("x" * (1024 * 1024))
        status, items = d.apply(big + "---\napiVersion: v1\nkind: Service\nmetadata: {name: small}\nspec: {ports: [{port: 80}]}\n")
        self.assertEqual(status, 422, items)
        self.assertEqual([i["result"] for i in items], ["refused", "created"])
        self.assertIn("1 MiB", items[0]["diagnostics"][0]["message"])


class AnalyzeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Sinewd(st.ClassScope(cls))
        cls.dr_all = bookinfo_text("destination-rule-all.yaml")

    def analyze_only(self, *texts):
        status, rep = self.d.analyze(st.join_docs(*texts), only=True)
        self.assertEqual(status, 200, rep)
        return rep

    def test_bookinfo_samples_clean_one_at_a_time(self):
        reg = full_registry()
        names = sorted(n for n in os.listdir(st.BOOKINFO) if n.startswith("virtual-service") or
                       n in ("bookinfo-gateway.yaml", "fault-injection-details-v1.yaml",
                             "egress-rule-google-apis.yaml", "certmanager-gateway.yaml"))
        self.assertGreater(len(names), 10)
        # what is genuinely wrong in a sample on its own
        expected = {
            # its second rule can never match: the first has no match
            "fault-injection-details-v1.yaml": ["SN0103"],
        }
        # the cert-manager sample routes to a Service of its own
        extra = {"certmanager-gateway.yaml": st.join_docs(
            st.service_yaml("cert-manager-resolver", namespace="istio-system", port=8089),
            st.workload_yaml("cert-manager-resolver-1", 8089, {"app": "cert-manager-resolver"},
                             namespace="istio-system"))}
        for name in names:
            with self.subTest(file=name):
                rep = self.analyze_only(reg, self.dr_all, extra.get(name, ""), bookinfo_text(name))
                self.assertEqual(codes(rep), expected.get(name, []), "\n".join(m["text"] for m in rep["messages"]))
        for name in ("destination-rule-all-mtls.yaml", "destination-rule-reviews.yaml"):
            with self.subTest(file=name):
                rep = self.analyze_only(reg, bookinfo_text(name), bookinfo_text("virtual-service-all-v1.yaml"))
                if name == "destination-rule-reviews.yaml":
                    # only reviews has subsets here: the v1 routes of the others are genuinely broken
                    self.assertEqual(set(codes(rep)), {"SN0102"}, rep)
                else:
                    self.assertEqual(codes(rep), [], "\n".join(m["text"] for m in rep["messages"]))

    def test_bookinfo_samples_that_conflict(self):
        """The reviews samples all name their VirtualService "reviews": taken
        together the later replaces the earlier (as applying them in turn
        would), which is fine. The same rules under another name conflict
        for host reviews (SN0104), which is genuinely wrong."""
        reg, v1 = full_registry(), bookinfo_text("virtual-service-all-v1.yaml")
        rep = self.analyze_only(reg, self.dr_all, v1, bookinfo_text("virtual-service-reviews-v3.yaml"))
        self.assertEqual(codes(rep), [], rep)
        copy = bookinfo_text("virtual-service-reviews-v3.yaml").replace("name: reviews", "name: reviews-v3-copy")
        rep = self.analyze_only(reg, self.dr_all, v1, copy)
        self.assertEqual(codes(rep), ["SN0104"], rep)
        m = [m for m in rep["messages"] if m["code"] == "SN0104"][0]
        self.assertEqual(m["resource"], "VirtualService default/reviews-v3-copy")
        self.assertIn("merge", m["message"])

    def test_fixture_registry_lacks_versions(self):
        """tests/config/bookinfo-registry.yaml has ratings v1 and details v1
        only: the other subsets of destination-rule-all select nothing."""
        with open(os.path.join(st.SRC, "tests", "config", "bookinfo-registry.yaml")) as f:
            reg = f.read()
        rep = self.analyze_only(reg, self.dr_all)
        self.assertEqual(codes(rep), ["SN0106"] * 4, rep)

    def test_codes_on_crafted_files(self):
        reg = st.join_docs(st.service_yaml("reviews"), st.service_yaml("lonely"), """apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1}
spec:
  address: 127.0.10.3
  labels: {app: reviews, version: v1}
""")
        dr = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"""
        cases = {
            "SN0101": """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: nosuch}
""",
            "SN0102": """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v5}
""",
            "SN0103": """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
  - match:
    - headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews, subset: v1}
""",
            "SN0104": """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b}
spec:
  hosts: [reviews.default.svc.cluster.local]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
""",
            "SN0105": """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 60
    - destination: {host: reviews, subset: v1}
      weight: 30
""",
            "SN0108": """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: gone}
spec:
  host: gone
""",
            "SN0109": """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-again}
spec:
  host: reviews.default.svc.cluster.local
""",
        }
        # the base itself: SN0106 (subset v2 selects nothing), SN0107 (lonely)
        base = self.analyze_only(reg, dr)
        self.assertEqual(codes(base), ["SN0106", "SN0107"], base)
        msgs = {m["code"]: m for m in base["messages"]}
        self.assertEqual(msgs["SN0106"]["resource"], "DestinationRule default/reviews")
        self.assertEqual(msgs["SN0106"]["file"], "analyze.yaml")
        self.assertIn('"v2"', msgs["SN0106"]["message"])
        self.assertEqual(msgs["SN0107"]["resource"], "Service default/lonely")
        for code, text in sorted(cases.items()):
            with self.subTest(code=code):
                rep = self.analyze_only(reg, dr, text)
                got = sorted(set(codes(rep)) - {"SN0106", "SN0107"})
                self.assertEqual(got, [code], "\n".join(m["text"] for m in rep["messages"]))
                m = [m for m in rep["messages"] if m["code"] == code][0]
                self.assertGreater(m["line"], 0, m)
                self.assertTrue(m["text"].startswith(m["level"] + " [" + code + "] ("), m)

    def test_store_and_body(self):
        d = Sinewd(self)
        self.assertEqual(d.apply(full_registry())[0], 200)
        self.assertEqual(d.apply(self.dr_all, "dr.yaml")[0], 200)
        status, rep = d.analyze()
        self.assertEqual(status, 200)
        self.assertEqual(codes(rep), [], rep)
        # the store plus a file not applied yet: the file's problems show
        status, rep = d.analyze(bookinfo_text("virtual-service-all-v1.yaml").replace("subset: v1", "subset: v8", 1),
                                source="next.yaml")
        self.assertEqual(codes(rep), ["SN0102"], rep)
        self.assertEqual(rep["messages"][0]["file"], "next.yaml")
        # the body alone (only=1): the registry is not there
        status, rep = d.analyze(bookinfo_text("virtual-service-all-v1.yaml"), only=True)
        self.assertIn("SN0101", codes(rep))
        # deleting a DestinationRule that a stored route needs: analysis and status say so
        self.assertEqual(d.apply(bookinfo_text("virtual-service-all-v1.yaml"), "vs.yaml")[0], 200)
        self.assertEqual(d.call("DELETE", "/api/v1/resources/dr/default/reviews")[0], 200)
        status, rep = d.analyze()
        self.assertEqual(codes(rep), ["SN0102"], rep)
        status, vs = d.call("GET", "/api/v1/resources/vs/default/reviews")
        self.assertFalse(vs["status"]["accepted"])
        self.assertIn("subset", vs["status"]["errors"][0])


if __name__ == "__main__":
    st.main()
