"""Istio's bookinfo tasks on the local mesh (issue 6 acceptance): the C
bookinfo services each in its own pod behind a real sinew-proxy (capture,
certificates from sinewd, auto mTLS), productpage published on the host
like `kubectl port-forward`, and the unmodified task files from
../shared/conformance/istio-bookinfo/networking applied with `sinew apply`.
Results are observed through productpage as a user would: page content,
status, and timing for the 7 s delay."""

import json
import os
import re
import subprocess
import sys
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_pods import Env, SUFFIX, SINEW, netns_list, sh  # noqa: E402

NET = st.BOOKINFO   # .../istio-bookinfo/networking
BOOKINFO = os.path.join(st.BIN, "bookinfo")
UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."


def stars(page):
    """The color of the stars on the page: None (reviews v1), 'black' or 'red'."""
    colors = set(re.findall(r'<font class="stars" color="(\w+)"', page))
    if not colors:
        return None
    assert len(colors) == 1, colors
    return colors.pop()


class BookinfoPods(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise AssertionError("needs root: network namespaces and iptables (CI runs as root)")
        cls.t = unittest.TestCase()   # Env and make_tempdir want a test for cleanups
        cls.e = Env(cls.t)
        cls.procs = []
        cls.addClassCleanup(cls.teardown)   # also when setUpClass fails
        cls.mesh = "sn-bi-" + SUFFIX
        cls.api = "127.0.0.1:%d" % st.free_port()
        cls.server = "http://" + cls.api
        cls.page_port = st.free_port()
        cls.procs = []
        rc, out, err = cls.e.sinew("up", "--api", cls.api, "--mesh", "127.0.0.1:%d" % st.free_port(),
                                   "--mesh-netns", cls.mesh, "--pod-cidr", "10.68.0.0/24")
        assert rc == 0, err
        for svc, version in (("details", "v1"), ("ratings", "v1"), ("reviews", "v1"), ("reviews", "v2"),
                             ("reviews", "v3"), ("productpage", "v1")):
            extra = ["--publish", "%d:9080" % cls.page_port] if svc == "productpage" else []
            cls.start(svc, version, extra)
        for svc, version, p in cls.procs:
            cls.e.wait_ready(svc, p, timeout=40) if svc != "reviews" else None
        deadline = time.time() + 40
        while time.time() < deadline:
            ready = [p for p in cls.e.ps() if p["proxy"]["state"] == "ready" and p["app"]["running"]]
            if len(ready) == 6:
                break
            time.sleep(0.2)
        assert len(ready) == 6, cls.e.ps()
        cls.pod_names = [p["name"] for p in ready]
        cls.apply("destination-rule-all.yaml")

    @classmethod
    def start(cls, svc, version, extra):
        name = "%s-%s" % (svc, version)
        out = os.path.join(cls.e.tmp, name + ".out")
        err = os.path.join(cls.e.tmp, name + ".err")
        argv = [SINEW, "run", "--service", svc, "--labels", "app=%s,version=%s" % (svc, version),
                "--service-account", "bookinfo-" + svc, "--port", "9080", "--server", cls.server,
                "--ready-timeout", "30", "--drain-timeout", "3"] + extra + \
               ["--", BOOKINFO, svc, "--listen", "0.0.0.0:9080", "--version", version]
        with open(out, "w") as fo, open(err, "w") as fe:
            p = st.spawn(argv, stdout=fo, stderr=fe, env=cls.e.env())
        p.out_path, p.err_path = out, err
        cls.procs.append((svc, version, p))

    @classmethod
    def teardown(cls):
        for _, _, p in cls.procs:
            st.stop_process(p)
        rc, out, err = cls.e.sinew("down")
        assert rc == 0, err
        left = netns_list()
        assert [n for n in getattr(cls, "pod_names", []) + [cls.mesh] if n in left] == [], left
        cls.t.doCleanups()

    @classmethod
    def apply(cls, *files):
        for f in files:
            rc, out, err = cls.e.sinew("apply", "-f", os.path.join(NET, f), "--server", cls.server)
            assert rc == 0, (f, out, err)
        # every proxy runs the new revision before we look
        deadline = time.time() + 15
        while time.time() < deadline:
            rc, out, err = cls.e.sinew("proxy-status", "--server", cls.server)
            if rc == 0 and "STALE" not in out and "NACK" not in out and out.count("SYNCED") >= 6:
                return
            time.sleep(0.1)
        raise AssertionError("proxies did not sync: %s" % out)

    @classmethod
    def delete(cls, kind, name):
        cls.e.sinew("delete", kind, name, "--server", cls.server)

    def page(self, user=None):
        """GET /productpage the way a browser does: signed in through the
        login form (cookie), or anonymous. Returns (status, html, seconds)."""
        headers = {}
        if user:
            body = urllib.parse.urlencode({"username": user, "passwd": "x"})
            r = st.request(self.page_port, "POST", "/login", host="127.0.0.1:%d" % self.page_port,
                           headers={"content-type": "application/x-www-form-urlencoded"}, body=body.encode())
            cookie = r.header("set-cookie")
            self.assertTrue(cookie, r)
            headers["cookie"] = cookie.split(";")[0]
        t0 = time.time()
        r = st.request(self.page_port, "GET", "/productpage", host="127.0.0.1:%d" % self.page_port,
                       headers=headers, timeout=30)
        return r.status, r.body.decode("utf-8", "replace"), time.time() - t0

    def test_1_request_routing(self):
        self.apply("virtual-service-all-v1.yaml")
        for user in (None, "jason"):
            for _ in range(6):
                status, html, _ = self.page(user)
                self.assertEqual(status, 200)
                self.assertIn("The Comedy of Errors", html)
                self.assertIsNone(stars(html), "v1 shows no stars")
        self.apply("virtual-service-reviews-test-v2.yaml")
        for _ in range(6):
            status, html, _ = self.page("jason")
            self.assertEqual((status, stars(html)), (200, "black"))
            status, html, _ = self.page()
            self.assertEqual((status, stars(html)), (200, None))
            status, html, _ = self.page("bob")
            self.assertEqual((status, stars(html)), (200, None))

    def test_2_fault_injection_delay(self):
        self.apply("virtual-service-all-v1.yaml", "virtual-service-reviews-test-v2.yaml",
                   "virtual-service-ratings-test-delay.yaml")
        status, html, took = self.page("jason")
        self.assertEqual(status, 200)
        # productpage gives reviews two tries of 3 s; ratings is 7 s late
        self.assertIn(UNAVAILABLE, html)
        self.assertTrue(5.5 <= took <= 8.0, "jason's page took %.2f s" % took)
        status, html, took = self.page()
        self.assertEqual((status, stars(html)), (200, None))
        self.assertLess(took, 2.0)

    def test_3_fault_injection_abort(self):
        self.apply("virtual-service-all-v1.yaml", "virtual-service-reviews-test-v2.yaml",
                   "virtual-service-ratings-test-abort.yaml")
        status, html, took = self.page("jason")
        self.assertEqual(status, 200)
        self.assertIn("Ratings service is currently unavailable", html)
        self.assertLess(took, 3.0)
        status, html, _ = self.page()
        self.assertEqual((status, stars(html)), (200, None))
        self.delete("vs", "ratings")

    def test_4_traffic_shifting(self):
        self.delete("vs", "ratings")
        self.apply("virtual-service-all-v1.yaml", "virtual-service-reviews-50-v3.yaml")
        seen = {None: 0, "red": 0, "black": 0}
        for _ in range(40):
            status, html, _ = self.page()
            self.assertEqual(status, 200)
            seen[stars(html)] += 1
        self.assertEqual(seen["black"], 0, seen)
        self.assertTrue(10 <= seen["red"] <= 30, seen)
        self.apply("virtual-service-reviews-v3.yaml")
        for _ in range(10):
            status, html, _ = self.page()
            self.assertEqual((status, stars(html)), (200, "red"))

    def test_5_mutual_tls_between_pods(self):
        """The calls productpage made reached reviews over mTLS."""
        rev = [p for p in self.e.ps() if p["service"] == "reviews"]
        self.assertEqual(len(rev), 3)
        total = 0
        for p in rev:
            r = sh(["ip", "netns", "exec", p["name"], "curl", "-sS", "--max-time", "5",
                    "http://127.0.0.1:15020/metrics"])
            samples = st.parse_metrics(r.stdout)
            total += st.metric_sum(samples, "sinew_requests_total", connection_security_policy="mutual_tls",
                                   source_principal="spiffe://cluster.local/ns/default/sa/bookinfo-productpage")
            self.assertEqual(st.metric_sum(samples, "sinew_requests_total", connection_security_policy="none"), 0)
        self.assertGreater(total, 50)

    def test_7_prometheus_reaches_every_pod_through_sinewd(self):
        """The pods' admin ports are on their own loopback, and the pods'
        network has no link to the host's: sinewd's SD lists each pod's
        proxy at sinewd's API, which relays the scrape over the proxy's
        control link. bookinfo's six workloads are named as their
        Deployments (reviews-v2)."""
        with urllib.request.urlopen(self.server + "/api/v1/prometheus/targets", timeout=10) as r:
            targets = json.loads(r.read())
        pods = [t for t in targets if t["labels"].get("pod") and t["labels"]["service"] != "sleep"]  # test_6's
        self.assertEqual(sorted(t["labels"]["workload"] for t in pods),
                         ["details-v1", "productpage-v1", "ratings-v1", "reviews-v1", "reviews-v2", "reviews-v3"],
                         targets)
        for t in pods:
            self.assertEqual(t["targets"], [self.api], t)
            self.assertEqual(t["labels"]["sinew_reachable"], "via-sinewd", t)
            with urllib.request.urlopen(self.server + t["labels"]["__metrics_path__"], timeout=10) as r:
                text = r.read().decode()
            self.assertIn("# TYPE sinew_requests_total counter", text, t)

    def test_6_one_page_load_is_one_trace(self):
        """Tracing through the pods: a page load from a client pod (Istio's
        sleep) is one trace with spans from the sleep, productpage,
        details, reviews and ratings proxies, exported as OTLP JSON to a
        collector on the mesh network (the mesh config's opentelemetry
        provider) and kept by sinewd (its trace API and `sinew traces`).
        W3C-only and B3-only clients continue their own trace; a page load
        without context starts one. (The published port reaches the app
        past its sidecar, as kubectl port-forward does: no server span.)"""
        col = os.path.join(self.e.tmp, "otlp.jsonl")
        script = os.path.join(self.e.tmp, "collector.py")
        with open(script, "w") as f:
            f.write(COLLECTOR % (col, GATEWAY, OTLP_PORT))
        log = open(os.path.join(self.e.tmp, "collector.log"), "w")
        p = st.spawn(["ip", "netns", "exec", self.mesh, "/usr/bin/python3", script], stdout=log, stderr=log)
        self.addCleanup(st.stop_process, p)
        sleep = self.e.run_joined(self.server, "sleep", None, ["sleep", "600"])
        self.addCleanup(st.stop_process, sleep)
        self.e.wait_ready("sleep", sleep, timeout=40)
        pod = self.e.pod("sleep")["name"]
        cfg = os.path.join(self.e.tmp, "tracing.yaml")
        with open(cfg, "w") as f:
            f.write(TRACING % (GATEWAY, OTLP_PORT))
        rc, out, err = self.e.sinew("apply", "-f", cfg, "--server", self.server)
        self.assertEqual(rc, 0, err)
        self.apply("virtual-service-reviews-v3.yaml")   # v3 calls ratings

        w3c = "4bf92f3577b34da6a3ce929d0e0e4736"
        b3 = "80f198ee56343ba864fe8b2a57d3eff7"
        for headers in (["-H", "traceparent: 00-%s-00f067aa0ba902b7-01" % w3c],
                        ["-H", "x-b3-traceid: " + b3, "-H", "x-b3-spanid: e457b5a2e4d86bd1", "-H", "x-b3-sampled: 1"],
                        ["-H", "x-request-id: page-load-without-context"]):
            r = sh(["ip", "netns", "exec", pod, "curl", "-sS", "--max-time", "20",
                    "http://productpage:9080/productpage"] + headers, timeout=30)
            self.assertIn('color="red"', r.stdout, r.stderr)

        def spans_of(tid):
            out = []
            if os.path.exists(col):
                with open(col) as f:
                    for line in f:
                        doc = json.loads(line)
                        for rs in doc["resourceSpans"]:
                            svc = [a["value"]["stringValue"] for a in rs["resource"]["attributes"]
                                   if a["key"] == "service.name"][0]
                            for ss in rs["scopeSpans"]:
                                out += [(svc, sp) for sp in ss["spans"] if tid is None or sp["traceId"] == tid]
            return out

        want = {"sleep.default", "productpage.default", "details.default", "reviews.default", "ratings.default"}
        for tid, caller in ((w3c, "00f067aa0ba902b7"), (b3, "e457b5a2e4d86bd1")):
            deadline = time.time() + 10
            while time.time() < deadline and len(spans_of(tid)) < 8:
                time.sleep(0.2)
            spans = spans_of(tid)
            self.assertEqual({svc for svc, _ in spans}, want, spans)
            # sleep out; productpage in, out to details and reviews; reviews
            # in, out to ratings; details and ratings in: 8 spans, one trace
            self.assertEqual(len(spans), 8, [(s, sp["name"], sp["kind"]) for s, sp in spans])
            by_id = {sp["spanId"]: sp for _, sp in spans}
            roots = [sp for sp in by_id.values() if sp.get("parentSpanId") not in by_id]
            self.assertEqual(len(roots), 1, roots)   # sleep's client span, child of the client's
            self.assertEqual(roots[0]["kind"], 3)
            self.assertEqual(roots[0]["parentSpanId"], caller)
            for sp in by_id.values():
                self.assertRegex(sp["traceId"], r"^[0-9a-f]{32}$")
                self.assertRegex(sp["spanId"], r"^[0-9a-f]{16}$")
                parent = by_id.get(sp.get("parentSpanId"))
                if parent is not None:
                    self.assertLessEqual(int(parent["startTimeUnixNano"]), int(sp["startTimeUnixNano"]))
                    self.assertGreaterEqual(int(parent["endTimeUnixNano"]), int(sp["endTimeUnixNano"]))
                    if sp["kind"] == 2:   # a server span is the callee's side of a client span
                        self.assertEqual(parent["kind"], 3)
                        self.assertEqual(sp["name"], parent["name"])
            # sinewd kept the same trace
            rc, out, err = self.e.sinew("traces", tid, "--server", self.server)
            self.assertEqual(rc, 0, err)
            for svc in want:
                self.assertIn(svc, out)
            r = st.request(int(self.server.rsplit(":", 1)[1]), "GET", "/api/v1/traces/" + tid)
            self.assertEqual(r.status, 200, r.body)
            kept = {sp["spanId"] for rs in r.json()["resourceSpans"] for ss in rs["scopeSpans"]
                    for sp in ss["spans"]}
            self.assertEqual(kept, set(by_id))
        started = [sp for _, sp in spans_of(None)
                   if any(a["key"] == "guid:x-request-id" and a["value"]["stringValue"] == "page-load-without-context"
                          for a in sp["attributes"])]
        self.assertEqual(len(started), 8, started)
        self.assertEqual(len({sp["traceId"] for sp in started}), 1, started)
        rc, out, err = self.e.sinew("traces", "--service", "ratings.default", "--server", self.server)
        self.assertEqual(rc, 0, err)
        self.assertIn(w3c, out)


GATEWAY = "10.68.0.1"
OTLP_PORT = 14318
COLLECTOR = """import http.server, json
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        assert self.path == "/v1/traces" and self.headers.get("content-type") == "application/json"
        with open(%r, "a") as f:
            f.write(json.dumps(json.loads(body)) + "\\n")
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
http.server.ThreadingHTTPServer((%r, %d), H).serve_forever()
"""
TRACING = """apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    extensionProviders:
    - name: otel
      opentelemetry:
        service: otel-collector.observability.svc.cluster.local
        port: 4318
        http: {path: /v1/traces}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: otel-collector, namespace: observability}
spec:
  hosts: [otel-collector.observability.svc.cluster.local]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 4318, name: http, protocol: HTTP}]
  endpoints: [{address: %s, ports: {http: %d}}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - providers: [{name: otel}]
    randomSamplingPercentage: 100
"""


if __name__ == "__main__":
    st.main()
