"""Tracing through a real sidecar pair in file mode: client -> proxy A
(outbound, service productpage) -> proxy B (inbound, service reviews) ->
the app. The tracers are declared the way Istio does it (ConfigMap
istio-system/istio, data.mesh extensionProviders: opentelemetry over HTTP
and zipkin) and chosen by a Telemetry resource; a real HTTP collector in
the test takes OTLP/HTTP JSON and Zipkin v2 JSON and checks their schema:
hex IDs, parent links, timing nesting, Istio's span tags. Covers a new
trace, W3C-only and B3-only (multi and single header) clients continuing
theirs, a client's "not sampled", the Telemetry hierarchy (a selector's
randomSamplingPercentage: 0 over the mesh's 100), an error span, metrics,
and config errors."""

import http.server
import json
import os
import re
import socketserver
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

import unittest  # noqa: E402

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


class Collector:
    """An OTLP/HTTP (JSON) and Zipkin v2 receiver: records what it is sent."""

    def __init__(self):
        self.posts = []
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n)
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = None
                with outer.lock:
                    outer.posts.append((self.path, self.headers.get("content-type"), doc, body))
                out = b"{}" if self.path == "/v1/traces" else b""
                self.send_response(200 if self.path == "/v1/traces" else 202)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = S((st.LOOPBACK, 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def otlp_spans(self):
        """[(service.name, span)] of every OTLP post."""
        out = []
        with self.lock:
            posts = list(self.posts)
        for path, ctype, doc, _ in posts:
            if path != "/v1/traces":
                continue
            assert ctype == "application/json", ctype
            for rs in doc["resourceSpans"]:
                attrs = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
                svc = attrs["service.name"]["stringValue"]
                for ss in rs["scopeSpans"]:
                    for sp in ss["spans"]:
                        sp = dict(sp, _resource=rs["resource"]["attributes"])
                        out.append((svc, sp))
        return out

    def zipkin_spans(self):
        out = []
        with self.lock:
            posts = list(self.posts)
        for path, _, doc, _ in posts:
            if path == "/api/v2/spans":
                out.extend(doc)
        return out

    def wait_trace(self, trace_id, n, timeout=5.0, zipkin=False):
        deadline = time.time() + timeout
        while True:
            spans = self.zipkin_spans() if zipkin else self.otlp_spans()
            got = [s for s in spans if (s if zipkin else s[1])["traceId"] == trace_id]
            if len(got) >= n or time.time() > deadline:
                return got
            time.sleep(0.1)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def mesh_yaml(collector_port):
    return """apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    extensionProviders:
    - name: otel
      opentelemetry:
        service: collector.observability.svc.cluster.local
        port: 4318
        http: {path: /v1/traces, timeout: 2s}
    - name: zipkin
      zipkin:
        service: collector.observability.svc.cluster.local
        port: 9411
---
apiVersion: v1
kind: Service
metadata: {name: collector, namespace: observability}
spec:
  selector: {app: collector}
  ports: [{name: http-otlp, port: 4318}, {name: http-zipkin, port: 9411}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: collector-1, namespace: observability}
spec:
  address: 127.0.0.1
  ports: {http-otlp: %d, http-zipkin: %d}
  labels: {app: collector}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - providers: [{name: otel}, {name: zipkin}]
    randomSamplingPercentage: 100
    customTags:
      team: {literal: {value: bookinfo}}
      tenant: {header: {name: x-tenant, defaultValue: none}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: quiet, namespace: default}
spec:
  selector: {matchLabels: {app: quiet}}
  tracing:
  - randomSamplingPercentage: 0
---
""" % (collector_port, collector_port)


def start_pair(test, collector, a_labels="app=productpage,version=v1"):
    app = st.start_backend(test, "reviews", "v1")
    b = st.start_proxy(test, mesh_yaml(collector.port) + st.registry_yaml({("reviews", "v1"): app.port}),
                       outbound=False, inbound=True, app="127.0.0.1:%d" % app.port,
                       args=["--service", "reviews", "--labels", "app=reviews,version=v1"])
    a = st.start_proxy(test, mesh_yaml(collector.port) + st.service_yaml("reviews") +
                       st.workload_yaml("reviews-v1", b.inbound_port, {"app": "reviews", "version": "v1"}) +
                       st.service_yaml("nowhere") +
                       st.workload_yaml("nowhere-v1", st.closed_port(), {"app": "nowhere"}),
                       args=["--service", a_labels.split(",")[0].split("=")[1], "--labels", a_labels])
    return app, a, b


def attrs(span):
    """A span's tags: its resource's (the proxy's: Istio's canonical
    service, revision, namespace, mesh, node) and its own."""
    return {a["key"]: list(a["value"].values())[0]
            for a in span.get("_resource", []) + span.get("attributes", [])}


class Tracing(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.collector = Collector()

    @classmethod
    def tearDownClass(cls):
        cls.collector.stop()

    def setUp(self):
        self.app, self.a, self.b = start_pair(self, self.collector)

    def get(self, headers=None, host="reviews:9080", path="/reviews/1"):
        r = st.request(self.a.outbound_port, "GET", path, host=host, headers=headers or {})
        return r

    def test_new_trace_is_one_trace_of_two_spans(self):
        """No context from the client: the outbound proxy starts a trace
        (a root client span), the inbound one continues it (a server span
        whose parent is the client span), the app sees this hop's span as
        its parent in both W3C and B3 forms."""
        r = self.get(headers={"x-tenant": "acme"})
        self.assertEqual(r.status, 200, r.body)
        seen = r.json()["headers"]
        tp = seen["traceparent"]
        m = re.match(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$", tp)
        self.assertTrue(m, tp)
        tid, app_parent = m.group(1), m.group(2)
        self.assertEqual(seen["x-b3-traceid"], tid)
        self.assertEqual(seen["x-b3-spanid"], app_parent)
        self.assertEqual(seen["x-b3-sampled"], "1")

        spans = self.collector.wait_trace(tid, 2)
        self.assertEqual(len(spans), 2, spans)
        by_kind = {sp["kind"]: (svc, sp) for svc, sp in spans}
        csvc, client = by_kind[3]
        ssvc, server = by_kind[2]
        self.assertEqual(csvc, "productpage.default")
        self.assertEqual(ssvc, "reviews.default")
        for sp in (client, server):
            self.assertRegex(sp["traceId"], HEX32)
            self.assertRegex(sp["spanId"], HEX16)
            self.assertIsInstance(sp["startTimeUnixNano"], str)
            self.assertLessEqual(int(sp["startTimeUnixNano"]), int(sp["endTimeUnixNano"]))
        self.assertNotIn("parentSpanId", client)   # the root
        self.assertEqual(server["parentSpanId"], client["spanId"])
        self.assertEqual(seen["x-b3-parentspanid"], client["spanId"])
        self.assertEqual(server["spanId"], app_parent)
        # the server span nests in the client span
        self.assertGreaterEqual(int(server["startTimeUnixNano"]), int(client["startTimeUnixNano"]))
        self.assertLessEqual(int(server["endTimeUnixNano"]), int(client["endTimeUnixNano"]))
        self.assertEqual(client["name"], "reviews.default.svc.cluster.local:9080/*")
        self.assertEqual(server["name"], client["name"])   # Envoy's: both sides name the destination
        ca, sa = attrs(client), attrs(server)
        self.assertEqual(ca["http.method"], "GET")
        self.assertEqual(ca["http.status_code"], "200")
        self.assertEqual(ca["upstream_cluster"], "outbound|9080||reviews.default.svc.cluster.local")
        self.assertEqual(ca["istio.canonical_service"], "productpage")
        self.assertEqual(ca["http.url"], "http://reviews:9080/reviews/1")
        self.assertEqual(ca["team"], "bookinfo")
        self.assertEqual(ca["tenant"], "acme")
        self.assertEqual(sa["istio.canonical_service"], "reviews")
        self.assertEqual(sa["istio.canonical_revision"], "v1")
        self.assertEqual(sa["guid:x-request-id"], seen["x-request-id"])
        self.assertEqual(client["status"]["code"], 0)

        z = self.collector.wait_trace(tid, 2, zipkin=True)
        self.assertEqual(sorted(s["kind"] for s in z), ["CLIENT", "SERVER"])
        zc = [s for s in z if s["kind"] == "CLIENT"][0]
        zs = [s for s in z if s["kind"] == "SERVER"][0]
        self.assertEqual(zc["id"], client["spanId"])
        self.assertEqual(zs["parentId"], zc["id"])
        self.assertEqual(zc["localEndpoint"]["serviceName"], "productpage.default")
        self.assertEqual(zc["tags"]["http.status_code"], "200")
        self.assertEqual(zc["tags"]["istio.canonical_service"], "productpage")   # Zipkin: on every span
        self.assertIsInstance(zc["timestamp"], int)
        self.assertGreater(zc["duration"], 0)

    def test_w3c_client_continues_its_trace(self):
        tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
        r = self.get(headers={"traceparent": "00-%s-%s-01" % (tid, sid), "tracestate": "congo=t61rcWkgMzE"})
        self.assertEqual(r.status, 200)
        seen = r.json()["headers"]
        self.assertTrue(seen["traceparent"].startswith("00-%s-" % tid), seen["traceparent"])
        self.assertNotIn(sid, seen["traceparent"])
        self.assertEqual(seen["tracestate"], "congo=t61rcWkgMzE")
        spans = self.collector.wait_trace(tid, 2)
        client = [sp for _, sp in spans if sp["kind"] == 3][0]
        self.assertEqual(client["parentSpanId"], sid)

    def test_b3_multi_client_continues_its_trace(self):
        """Istio's x-b3-* fields with a 64-bit trace ID: kept 64-bit in B3,
        zero-padded in traceparent and OTLP."""
        tid, sid = "a3ce929d0e0e4736", "00f067aa0ba902b7"
        r = self.get(headers={"x-b3-traceid": tid, "x-b3-spanid": sid, "x-b3-sampled": "1"})
        seen = r.json()["headers"]
        self.assertEqual(seen["x-b3-traceid"], tid)
        self.assertNotEqual(seen["x-b3-spanid"], sid)
        self.assertNotIn("traceparent", seen)   # answered in the form it came
        spans = self.collector.wait_trace("0" * 16 + tid, 2)
        self.assertEqual(len(spans), 2)
        client = [sp for _, sp in spans if sp["kind"] == 3][0]
        self.assertEqual(client["parentSpanId"], sid)

    def test_every_form_the_client_sent_goes_on(self):
        """traceparent and x-b3-* together (an app forwarding both): both
        go on with this hop's span."""
        tid, sid = "5" * 32, "6" * 16
        r = self.get(headers={"traceparent": "00-%s-%s-01" % (tid, sid), "x-b3-traceid": tid,
                              "x-b3-spanid": sid, "x-b3-sampled": "1"})
        seen = r.json()["headers"]
        span = seen["traceparent"][36:52]
        self.assertEqual(seen["x-b3-spanid"], span)
        self.assertEqual(seen["x-b3-traceid"], tid)
        self.assertNotEqual(span, sid)

    def test_b3_single_header_is_answered_in_kind(self):
        tid, sid = "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1"
        r = self.get(headers={"b3": "%s-%s-1" % (tid, sid)})
        seen = r.json()["headers"]
        m = re.match(r"^%s-([0-9a-f]{16})-1$" % tid, seen["b3"])
        self.assertTrue(m, seen["b3"])
        self.assertNotEqual(m.group(1), sid)
        self.assertNotIn("x-b3-spanid", seen)   # only the form it came in
        self.assertEqual(len(self.collector.wait_trace(tid, 2)), 2)

    def test_client_not_sampled_is_kept(self):
        """A client's "not sampled" is honoured by every hop: no span, the
        context still goes on."""
        tid, sid = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
        r = self.get(headers={"traceparent": "00-%s-%s-00" % (tid, sid)})
        seen = r.json()["headers"]
        self.assertTrue(seen["traceparent"].startswith("00-%s-" % tid))
        self.assertTrue(seen["traceparent"].endswith("-00"))
        self.assertNotIn("x-b3-sampled", seen)
        self.get(headers={"traceparent": "00-%s-%s-01" % ("1" * 32, sid)})   # a sampled one after it
        self.assertEqual(len(self.collector.wait_trace("1" * 32, 2)), 2)
        self.assertEqual(self.collector.wait_trace(tid, 1, timeout=0.5), [])

    def test_malformed_context_starts_a_new_trace(self):
        for bad in ("00-%s-%s-01" % ("0" * 32, "b7ad6b7169203331"),
                    "00-%s-%s-01" % ("A" * 32, "b7ad6b7169203331"),
                    "00-xyz", "ff-%s-%s-01" % ("1" * 32, "2" * 16)):
            r = self.get(headers={"traceparent": bad})
            self.assertEqual(r.status, 200)
            tp = r.json()["headers"]["traceparent"]
            self.assertRegex(tp, r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")
            self.assertNotIn(tp[3:35], ("0" * 32, "a" * 32, "1" * 32))

    def test_error_span(self):
        """A request the proxy answers 503 (no endpoint answers) is an
        error span with the reason."""
        r = self.get(host="nowhere:9080", headers={"traceparent": "00-%s-%s-01" % ("2" * 32, "3" * 16)})
        self.assertEqual(r.status, 503)
        spans = self.collector.wait_trace("2" * 32, 1)
        self.assertEqual(len(spans), 1, spans)
        sp = spans[0][1]
        self.assertEqual(sp["status"]["code"], 2)
        self.assertEqual(attrs(sp)["error"], "true")
        self.assertEqual(attrs(sp)["http.status_code"], "503")
        self.assertEqual(sp["status"]["message"], attrs(sp)["response_flags"])

    def test_http2_client(self):
        """An HTTP/2 client (curl, prior knowledge): the context goes on in
        the upstream request's fields all the same."""
        tid = "7" * 32
        r = st.curl(["-sS", "--http2-prior-knowledge", "--connect-to", "::127.0.0.1:%d" % self.a.outbound_port,
                     "-H", "traceparent: 00-%s-%s-01" % (tid, "8" * 16), "http://reviews:9080/h2"])
        self.assertEqual(r.returncode, 0, r.stderr)
        seen = json.loads(r.stdout)["headers"]
        self.assertTrue(seen["traceparent"].startswith("00-%s-" % tid), seen)
        spans = self.collector.wait_trace(tid, 2)
        self.assertEqual(sorted(sp["kind"] for _, sp in spans), [2, 3])
        client = [sp for _, sp in spans if sp["kind"] == 3][0]
        self.assertEqual(attrs(client)["http.protocol"], "HTTP/2")

    def test_metrics(self):
        r = self.get(headers={"traceparent": "00-%s-%s-01" % ("4" * 32, "5" * 16)})
        self.assertEqual(r.status, 200)
        self.collector.wait_trace("4" * 32, 2)
        m = {name: v for name, labels, v in self.a.metrics() if not labels}
        self.assertGreaterEqual(m["sinew_trace_spans_total"], 1)
        self.assertEqual(m["sinew_trace_spans_dropped_total"], 0)
        self.assertEqual(m["sinew_trace_exports_failed_total"], 0)


class Selector(unittest.TestCase):

    def test_telemetry_selector_overrides_the_mesh_default(self):
        """Telemetry quiet (selector app=quiet, 0 %) wins over the mesh's
        100 % for that workload: its new traces are not sampled, and the
        next hop keeps that decision."""
        c = Collector()
        self.addCleanup(c.stop)
        app, a, b = start_pair(self, c, a_labels="app=quiet,version=v1")
        r = st.request(a.outbound_port, "GET", "/", host="reviews:9080")
        seen = r.json()["headers"]
        tp = seen["traceparent"]
        self.assertTrue(tp.endswith("-00"), tp)
        self.assertNotIn("x-b3-traceid", seen)   # an unsampled new trace: one field
        tid = tp[3:35]
        time.sleep(1.5)
        self.assertEqual([s for s in c.otlp_spans() if s[1]["traceId"] == tid], [])
        # a sampled client's trace still is, from this workload too
        r = st.request(a.outbound_port, "GET", "/", host="reviews:9080",
                       headers={"traceparent": "00-%s-%s-01" % ("6" * 32, "7" * 16)})
        self.assertEqual(len(c.wait_trace("6" * 32, 2)), 2)


class Config(unittest.TestCase):

    def run_config(self, text):
        d = st.make_tempdir(self)
        path = os.path.join(d, "sinew.yaml")
        st.write_file(path, text)
        return st.run_proxy_once(path)

    def test_otlp_over_grpc_is_an_error(self):
        code, err, ready = self.run_config("""apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    extensionProviders:
    - name: otel
      opentelemetry: {service: otel.default.svc.cluster.local, port: 4317}
""")
        self.assertEqual(code, 2, err)
        self.assertIn("opentelemetry without http", err)
        self.assertRegex(err, r"sinew\.yaml:\d+")

    def test_unknown_tracer_is_warned(self):
        code, err, ready = self.run_config("""apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - providers: [{name: jaeger}]
  metrics:
  - providers: [{name: prometheus}]
""")
        self.assertTrue(ready, err)
        self.assertIn('tracing provider "jaeger" is not defined', err)
        self.assertIn("metrics is not implemented", err)

    def test_bad_sampling_is_an_error(self):
        code, err, ready = self.run_config("""apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - randomSamplingPercentage: 150
""")
        self.assertEqual(code, 2, err)
        self.assertIn("randomSamplingPercentage", err)


if __name__ == "__main__":
    unittest.main()
