#!/usr/bin/python3
"""Per-route metrics: `sinew routes` (as `linkerd viz routes`), sinewd's
GET /api/v1/routes, and the proxy's sinew_route_* series on /metrics.

A plaintext mesh (sinewd --stats-resolution 1s, proxies --stats-interval
1s): productpage's proxy calls
- reviews, whose VirtualService has a route named "ratings" (prefix
  /ratings, aborting 50 % with 500) and a catch-all named "reviews";
- details, whose VirtualService has one unnamed rule (prefix /details:
  "details.http[0]") -- a request for another path matches no rule (404
  from the client's proxy) and is [DEFAULT];
- ratings, a Service with no VirtualService and no endpoint (503 from the
  client's proxy): [DEFAULT], never a success.
Every request's status is counted at the client; the routes view must
count each route's requests exactly, with exactly the success rate the
client saw, by service (summed over clients) and by client workload; the
client's /metrics must hold the same counts, and pass promtool.

Then a stats message spoken by hand: one with a malformed route series is
refused (the link stays), one without "routes" (an older proxy) and one
with a [DEFAULT] series are taken."""

import json
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh, start_cp_proxy  # noqa: E402
from test_sinewd_traces import MeshLink  # noqa: E402

SINEW = os.path.join(st.BIN, "sinew")
STATS = ["--stats-interval", "1s"]

VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - name: ratings
    match:
    - uri:
        prefix: /ratings
    fault:
      abort:
        percentage:
          value: 50
        httpStatus: 500
    route:
    - destination:
        host: reviews
  - name: reviews
    route:
    - destination:
        host: reviews
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: details
spec:
  hosts:
  - details
  http:
  - match:
    - uri:
        prefix: /details
    route:
    - destination:
        host: details
"""

BOUNDS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
          600000, 1800000, 3600000]


def sinew(mesh, *args, check=True):
    r = subprocess.run([SINEW] + list(args) + ["--server", "http://127.0.0.1:%d" % mesh.port],
                       capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise AssertionError("sinew %s: %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


def routes_json(mesh, *args):
    return json.loads(sinew(mesh, "routes", *args, "-o", "json").stdout)


def wait_for(pred, timeout, what):
    return st.wait_for(pred, timeout, what, interval=0.3)


def key_of(row):
    return (row["service"]["name"], row["route"])


class Routes(unittest.TestCase):
    def test_routes_by_service_and_workload_and_on_metrics(self):
        mesh = Mesh(self, extra=["--stats-resolution", "1s"])
        reviews = st.start_backend(self, "reviews", "v1")
        details = st.start_backend(self, "details", "v1")
        mesh.apply(st.service_yaml("reviews") + st.service_yaml("details") + st.service_yaml("ratings") + VS,
                   "routes.yaml")
        for name, app in (("reviews", reviews), ("details", details)):
            start_cp_proxy(self, mesh, outbound=False, inbound=True, app="127.0.0.1:%d" % app.port,
                           args=["--service", name, "--labels", "app=%s,version=v1" % name] + STATS)
        client = start_cp_proxy(self, mesh, args=["--service", "productpage"] + STATS)

        sent = {}   # (service, route) -> {status: n}

        def send(host, path, key):
            r = st.request(client.outbound_port, "GET", path, host=host + ":9080", timeout=5)
            d = sent.setdefault(key, {})
            d[r.status] = d.get(r.status, 0) + 1
            return r.status

        # until both services' endpoints are known (discovery is lazy)
        wait_for(lambda: send("reviews", "/reviews/1", ("reviews", "reviews")) == 200, 15, "reviews")
        wait_for(lambda: send("details", "/details/1", ("details", "details.http[0]")) == 200, 15, "details")
        for i in range(40):
            send("reviews", "/ratings/%d" % i, ("reviews", "ratings"))
        for i in range(30):
            send("reviews", "/reviews/%d" % i, ("reviews", "reviews"))
        for i in range(20):
            send("details", "/details/%d" % i, ("details", "details.http[0]"))
        for i in range(10):
            send("details", "/other/%d" % i, ("details", "[DEFAULT]"))
        for i in range(5):
            send("ratings", "/ratings/%d" % i, ("ratings", "[DEFAULT]"))
        print("sent: %s" % json.dumps({"%s %s" % k: v for k, v in sent.items()}), flush=True)
        self.assertEqual(set(sent[("reviews", "ratings")]), {200, 500}, sent)   # the abort's dice, 40 times
        self.assertEqual(set(sent[("reviews", "reviews")]), {200}, sent)
        self.assertEqual(set(sent[("details", "[DEFAULT]")]), {404}, sent)
        self.assertEqual(set(sent[("ratings", "[DEFAULT]")]), {503}, sent)
        total = {k: sum(v.values()) for k, v in sent.items()}
        ok = {k: sum(n for code, n in v.items() if code < 500) for k, v in sent.items()}

        # by service, summed over clients: every route once, exactly
        def settled():
            rows = routes_json(mesh, "svc", "--window", "1m")
            got = {key_of(r): r["requests"] for r in rows}
            return rows if got == total else None
        rows = wait_for(settled, 20, "the routes to count %s" % total)
        for r in rows:
            k = key_of(r)
            self.assertAlmostEqual(r["successRate"], ok[k] / total[k], delta=0.0001, msg=r)
            self.assertGreater(r["rps"], 0, r)
            self.assertLessEqual(r["latencyMs"]["p50"], r["latencyMs"]["p99"], r)
            self.assertNotIn("workload", r)
            self.assertEqual(r["service"]["namespace"], "default")
            self.assertEqual(r["service"]["host"], "%s.default.svc.cluster.local" % r["service"]["name"])
            if r["route"] == "[DEFAULT]":
                self.assertIsNone(r["virtualService"], r)
            else:
                self.assertEqual(r["virtualService"], {"namespace": "default", "name": r["service"]["name"]}, r)
        # sorted by service, [DEFAULT] last within one
        self.assertEqual([key_of(r) for r in rows],
                         [("details", "details.http[0]"), ("details", "[DEFAULT]"), ("ratings", "[DEFAULT]"),
                          ("reviews", "ratings"), ("reviews", "reviews")])
        print(json.dumps(rows), flush=True)

        # one service; by the client workload; filters that keep nothing
        one = routes_json(mesh, "svc/reviews", "--window", "1m")
        self.assertEqual([key_of(r) for r in one], [("reviews", "ratings"), ("reviews", "reviews")])
        self.assertEqual(routes_json(mesh, "svc", "reviews", "--window", "1m"), one)
        by_wl = routes_json(mesh, "deploy/productpage", "--window", "1m")
        self.assertEqual({key_of(r): r["requests"] for r in by_wl}, total)
        for r in by_wl:
            self.assertEqual(r["workload"], {"namespace": "default", "name": "productpage"})
        # the servers' proxies made no outbound requests
        self.assertEqual(routes_json(mesh, "deploy/reviews", "--window", "1m"), [])
        self.assertEqual(routes_json(mesh, "svc", "-n", "other"), [])
        self.assertEqual(len(routes_json(mesh, "svc", "-A", "--window", "1m")), 5)

        # the table, as linkerd viz routes prints it
        out = sinew(mesh, "routes", "svc", "--window", "1m").stdout
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["ROUTE", "SERVICE", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95",
                                            "LATENCY_P99"], out)
        rt = next(l.split() for l in lines if l.startswith("ratings "))
        self.assertEqual(rt[1], "reviews")
        k = ("reviews", "ratings")
        self.assertEqual(rt[2], "%.2f%%" % (100.0 * ok[k] / total[k]))
        self.assertTrue(rt[3].endswith("rps") and rt[4].endswith("ms"), rt)
        dflt = [l.split() for l in lines if l.startswith("[DEFAULT]")]
        self.assertEqual([(d[1], d[2]) for d in dflt], [("details", "100.00%"), ("ratings", "0.00%")], out)
        print(out, flush=True)
        wide = sinew(mesh, "routes", "deploy", "--window", "1m", "-o", "wide").stdout
        self.assertEqual(wide.splitlines()[0].split(),
                         ["WORKLOAD", "ROUTE", "SERVICE", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95",
                          "LATENCY_P99", "VIRTUAL_SERVICE", "REQUESTS"], wide)
        self.assertIn("default/reviews", wide)
        print(wide, flush=True)

        # the client's /metrics: the same counts per route
        _, _, body = client.admin_get("/metrics")
        text = body.decode()
        m = st.parse_metrics(text)
        for (svc, route), n in total.items():
            labels = {"destination_service_name": svc, "route": "" if route == "[DEFAULT]" else route}
            self.assertEqual(st.metric_sum(m, "sinew_route_requests_total", **labels), n, (svc, route))
            self.assertEqual(st.metric_sum(m, "sinew_route_responses_total", classification="success", **labels),
                             ok[(svc, route)], (svc, route))
            self.assertEqual(st.metric_sum(m, "sinew_route_responses_total", classification="failure", **labels),
                             n - ok[(svc, route)], (svc, route))
            self.assertEqual(st.metric_sum(m, "sinew_route_request_duration_milliseconds_count", **labels), n)
            self.assertEqual(st.metric_sum(m, "sinew_route_request_duration_milliseconds_bucket", le="+Inf",
                                           **labels), n)
        rt = st.metric_select(m, "sinew_route_requests_total", route="ratings")
        self.assertEqual(len(rt), 1, rt)
        self.assertEqual(rt[0][1], {"virtual_service_namespace": "default", "virtual_service": "reviews",
                                    "route": "ratings", "destination_service": "reviews.default.svc.cluster.local",
                                    "destination_service_name": "reviews",
                                    "destination_service_namespace": "default"})
        self.assertEqual(st.metric_sum(m, "sinew_route_series"), 5)
        self.assertEqual(st.metric_sum(m, "sinew_route_series_overflow_total"), 0)
        if shutil.which("promtool"):
            cp = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                                timeout=30)
            allowed = re.compile(r'^sinew_\w+_milliseconds use base unit "seconds" instead of "milliseconds"$')
            problems = [ln for ln in (cp.stdout + cp.stderr).splitlines()
                        if ln.strip() and not allowed.match(ln.strip())]
            self.assertIn(cp.returncode, (0, 3), cp.stdout + cp.stderr)
            self.assertEqual(problems, [], cp.stdout + cp.stderr)
        # the servers' proxies report no route series (inbound has no routes)
        for p in mesh.proxies():
            self.assertEqual(p["stats"]["rejected"], 0, p)

    def test_hand_made_messages_and_refusals(self):
        mesh = Mesh(self, extra=["--stats-resolution", "1s"])
        link = MeshLink(mesh.mesh_port)
        self.addCleanup(link.close)
        link.send({"type": "hello", "node": {"id": "wire-routes", "service": "wire", "namespace": "default",
                                             "version": "0.1.0"}, "have": {}})
        link.wait(lambda m: m.get("type") == "resources")
        dflt = {"virtualServiceNamespace": None, "virtualService": None, "route": None,
                "destinationService": "api.example.com", "destinationServiceName": "api.example.com",
                "destinationServiceNamespace": "default", "count": 9, "successes": 6,
                "durationBuckets": [0, 0, 9] + [0] * 17}
        bad = dict(dflt, successes=10)
        half = dict(dflt, route="r1")
        base = {"type": "stats", "intervalMs": 1000, "periodMs": 1000, "durationBucketsMs": BOUNDS, "requests": []}
        link.send(dict(base, seq=1, routes=[bad]))
        link.send(dict(base, seq=1, routes=[half]))
        link.send(dict(base, seq=1))                       # an older proxy: no "routes"
        link.send(dict(base, seq=2, routes=[dflt]))
        link.send({"type": "heartbeat"})
        link.pump(0.5)
        self.assertFalse(link.closed)
        px = [p for p in mesh.proxies() if p["id"] == "wire-routes"]
        self.assertEqual(px[0]["stats"], {"messages": 2, "rejected": 2}, px)
        # (sinewd logs the first refusal of a link)
        self.assertIn("routes[0].successes: want a whole number, at most count", mesh.read_log())

        def counted():
            link.pump(0.1)
            rows = json.loads(sinew(mesh, "routes", "deploy/wire", "--window", "1m", "-o", "json").stdout)
            return rows if rows and rows[0]["requests"] == 9 else None
        rows = wait_for(counted, 10, "the hand-made link's 9 requests")
        self.assertEqual(rows[0]["route"], "[DEFAULT]")
        self.assertEqual(rows[0]["successRate"], 0.6667)
        self.assertEqual(rows[0]["service"], {"namespace": "default", "name": "api.example.com",
                                              "host": "api.example.com"})
        # stat does not count route series as requests of anyone
        stat = json.loads(sinew(mesh, "stat", "deploy", "--window", "1m", "-o", "json").stdout)
        self.assertEqual([r["requests"] for r in stat], [0], stat)

        # the API's and the CLI's refusals
        for path, want in (("/api/v1/routes?resource=ns", "resource \"ns\" is not one of service"),
                           ("/api/v1/routes?window=5s", "window \"5s\" is not a duration")):
            status, body = mesh.call("GET", path)
            self.assertEqual(status, 400, (path, body))
            self.assertIn(want, body["error"])
        status, body = mesh.call("POST", "/api/v1/routes", "{}")
        self.assertEqual(status, 405, body)
        status, body = mesh.call("GET", "/api/v1/routes?resource=svc&namespace=nowhere")
        self.assertEqual((status, body), (200, []))
        self.assertIn("No routes found", sinew(mesh, "routes", "svc", "-n", "nowhere").stdout)
        for args in (["routes", "pods"], ["routes", "ns/default"], ["routes", "svc", "-o", "yaml"],
                     ["routes", "svc", "a", "b"]):
            r = sinew(mesh, *args, check=False)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertTrue(r.stderr.strip(), args)
        r = subprocess.run([SINEW, "routes", "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage: sinew routes", r.stdout)
        self.assertIn("Exit status", r.stdout)


if __name__ == "__main__":
    st.main()
