#!/usr/bin/python3
"""Live metrics without Prometheus: real proxies send sinewd their request
counts over the control link (--stats-interval 1s), sinewd keeps them as a
time series (--stats-resolution 1s), and `sinew stat` / `sinew edges`
show them as `linkerd viz stat` / `edges` do.

- mTLS (join tokens): 2,000 requests at a fixed 100 req/s from productpage
  to reviews with a VirtualService aborting 10 % (500): while the traffic
  is steady a 10 s window says 100 req/s within 5 %; after it, a window
  holding the whole run counts every request once and exactly the success
  rate the client saw, which is near 90 % as the fault's dice allow (within
  4.5 standard deviations of a binomial of that many requests: +- 3 % at
  2,000; a fixed +- 2 % was 3 deviations and failed about once in 400
  runs, on the dice, not on the counting); the aborts
  count against reviews though its proxy never saw them; `sinew edges`
  shows the pair with both identities, secured.
- plaintext: the same pair is not secured and has no identities;
- a malformed stats message is logged and counted, and the link stays up
  (the control link spoken by hand);
- the API's and the CLI's refusals.

The store's bounds and its arithmetic on a driven clock:
tests/unit/control/test_stats.c."""

import json
import os
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh, start_cp_proxy  # noqa: E402
from test_mesh_identity import start as start_token_proxy  # noqa: E402
from test_sinewd_traces import MeshLink  # noqa: E402

SINEW = os.path.join(st.BIN, "sinew")
STATS = ["--stats-interval", "1s"]
RATE = 100
SECONDS = 20

ABORT_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - fault:
      abort:
        percentage:
          value: 10
        httpStatus: 500
    route:
    - destination:
        host: reviews
"""

BOUNDS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
          600000, 1800000, 3600000]


def dice(n, p=0.1, k=4.5):
    """How far a 10 % abort's success rate may stray over n requests: k
    standard deviations of the binomial (the fault's randomness, not
    sinew's counting, which the tests check exactly)."""
    return k * (p * (1 - p) / max(n, 1)) ** 0.5


def sinew(mesh, *args, check=True):
    r = subprocess.run([SINEW] + list(args) + ["--server", "http://127.0.0.1:%d" % mesh.port],
                       capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise AssertionError("sinew %s: %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


def stat_json(mesh, *args):
    return json.loads(sinew(mesh, "stat", *args, "-o", "json").stdout)


def row(rows, name):
    for r in rows:
        if r["name"] == name:
            return r
    raise AssertionError("no row %s in %s" % (name, json.dumps(rows)))


def wait_for(pred, timeout, what):
    return st.wait_for(pred, timeout, what, interval=0.2)


def warm_up(test, client, host="reviews:9080"):
    """Requests until one is routed; returns {status: count} of all sent."""
    seen = {}
    for _ in range(100):
        r = st.request(client.outbound_port, "GET", "/", host=host, timeout=5)
        seen[r.status] = seen.get(r.status, 0) + 1
        if r.status == 200:
            return seen
        time.sleep(0.1)
    test.fail("reviews never answered 200: %s" % seen)


class Load(threading.Thread):
    """sinew load at a fixed rate (open loop) through a proxy's outbound."""

    def __init__(self, port, host, rate, seconds):
        super().__init__(daemon=True)
        self.argv = [SINEW, "load", "--json", "--quiet", "-q", str(rate), "-c", "8", "-d", "%ds" % seconds,
                     "-t", "3s", "-H", "Host: " + host, "http://127.0.0.1:%d/" % port]
        self.result = None
        self.error = None
        self.started = None

    def run(self):
        self.started = time.time()
        r = subprocess.run(self.argv, capture_output=True, text=True, timeout=120)
        try:
            self.result = json.loads(r.stdout)
        except ValueError:
            self.error = "sinew load: %d %s %s" % (r.returncode, r.stdout[-2000:], r.stderr[-2000:])


class StatOverMutualTLS(unittest.TestCase):
    def test_success_rate_rps_and_edges(self):
        mesh = Mesh(self, plaintext=False, extra=["--stats-resolution", "1s"])
        app = st.start_backend(self, "reviews", "v1")
        mesh.apply(st.service_yaml("reviews") + ABORT_VS, "reviews.yaml")
        start_token_proxy(self, mesh, "reviews", inbound_app=app.port, labels="app=reviews,version=v1",
                          extra=STATS)
        client = start_token_proxy(self, mesh, "productpage", extra=STATS)
        seen = warm_up(self, client)

        load = Load(client.outbound_port, "reviews:9080", RATE, SECONDS)
        load.start()
        # steady: 10 s of traffic behind the window's end (it ends ~1.25 s ago)
        time.sleep(14)
        steady = row(stat_json(mesh, "deploy", "--window", "10s"), "reviews-v1")
        load.join(90)
        self.assertIsNone(load.error, load.error)
        res = load.result
        # the 500s count as errors in sinew load; nothing else may
        self.assertEqual({k: v for k, v in res["errors"].items() if k != "status" and v}, {}, res)
        self.assertEqual(res["completed"], RATE * SECONDS, res)
        for code, n in res["status"].items():
            seen[int(code)] = seen.get(int(code), 0) + n
        sent = sum(seen.values())
        ok = seen.get(200, 0)
        self.assertEqual(set(seen), {200, 500}, seen)
        print("client saw %d requests, %d answered 200 (%.2f %%); steady 10 s window: %s"
              % (sent, ok, 100.0 * ok / sent, json.dumps(steady)), flush=True)

        # req/s within 5 % of the rate sent, while it was sent
        self.assertLess(abs(float(steady["rps"]) - RATE), RATE * 0.05, steady)
        self.assertLess(abs(float(steady["successRate"]) - 0.9), dice(int(steady["requests"])), steady)

        # the whole run: every request once, the success rate the client saw
        def settled():
            r = row(stat_json(mesh, "deploy", "--window", "1m"), "reviews-v1")
            return r if r["requests"] == sent else None
        whole = wait_for(settled, 10, "reviews to count %d requests" % sent)
        self.assertAlmostEqual(float(whole["successRate"]), ok / sent, delta=0.0001)
        self.assertLess(abs(float(whole["successRate"]) - 0.9), dice(sent), whole)
        self.assertEqual(whole["meshed"], "1/1")
        self.assertEqual(whole["reportedBy"], "destination")
        self.assertEqual(whole["mtlsShare"], 1.0)   # of the requests that reached it
        for q in ("p50", "p95", "p99"):
            self.assertGreater(whole["latencyMs"][q], 0, whole)
        self.assertLessEqual(whole["latencyMs"]["p50"], whole["latencyMs"]["p99"])
        # the client has a proxy and no inbound traffic
        pp = row(stat_json(mesh, "deploy", "--window", "1m"), "productpage")
        self.assertEqual(pp["requests"], 0)
        self.assertIsNone(pp["successRate"])
        # the service and the namespace count the same requests
        self.assertEqual(row(stat_json(mesh, "svc", "--window", "1m"), "reviews")["requests"], sent)
        self.assertEqual(row(stat_json(mesh, "ns", "--window", "1m"), "default")["requests"], sent)
        self.assertEqual(stat_json(mesh, "deploy", "reviews", "-n", "other"), [])

        # the table, as linkerd viz stat prints it
        out = sinew(mesh, "stat", "deploy", "--window", "1m").stdout
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "MESHED", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95",
                                            "LATENCY_P99", "TCP_CONN"], out)
        rv = next(l.split() for l in lines if l.startswith("reviews-v1"))
        self.assertEqual(rv[1], "1/1")
        self.assertEqual(rv[2], "%.2f%%" % (100.0 * ok / sent))
        self.assertTrue(rv[3].endswith("rps") and rv[4].endswith("ms"), rv)
        print(out, flush=True)

        # edges: the pair, with the identities mutual TLS proved
        # (the client's proxy reports on its own tick: wait for its last report too)
        def edges_settled():
            es = json.loads(sinew(mesh, "edges", "deploy", "--window", "1m", "-o", "json").stdout)
            return es if len(es) == 1 and es[0]["requests"] == sent else None
        edges = wait_for(edges_settled, 10, "the edge to count %d requests" % sent)
        e = edges[0]
        self.assertEqual(e["src"], {"namespace": "default", "workload": "productpage"})
        self.assertEqual(e["dst"], {"namespace": "default", "workload": "reviews-v1"})
        self.assertEqual(e["clientIdentity"], "spiffe://cluster.local/ns/default/sa/productpage")
        self.assertEqual(e["serverIdentity"], "spiffe://cluster.local/ns/default/sa/reviews")
        self.assertTrue(e["mtls"])
        self.assertEqual(e["requests"], sent)
        out = sinew(mesh, "edges", "deploy", "--window", "1m").stdout
        self.assertEqual(out.splitlines()[0].split(), ["SRC", "DST", "SRC_NS", "DST_NS", "SECURED"], out)
        self.assertEqual(out.splitlines()[1].split(), ["productpage", "reviews-v1", "default", "default", "yes"], out)
        wide = sinew(mesh, "edges", "deploy", "--window", "1m", "-o", "wide").stdout
        self.assertIn("spiffe://cluster.local/ns/default/sa/productpage", wide)
        self.assertIn("spiffe://cluster.local/ns/default/sa/reviews", wide)
        print(wide, flush=True)
        # every proxy's messages were taken, none refused
        for p in mesh.proxies():
            self.assertGreater(p["stats"]["messages"], 0, p)
            self.assertEqual(p["stats"]["rejected"], 0, p)


class StatPlaintext(unittest.TestCase):
    def test_edges_not_secured_and_a_bad_message_keeps_the_link(self):
        mesh = Mesh(self, extra=["--stats-resolution", "1s"])
        app = st.start_backend(self, "reviews", "v2")
        mesh.apply(st.service_yaml("reviews"), "svc.yaml")
        start_cp_proxy(self, mesh, outbound=False, inbound=True, app="127.0.0.1:%d" % app.port,
                       args=["--service", "reviews", "--labels", "version=v2"] + STATS)
        client = start_cp_proxy(self, mesh, args=["--service", "productpage"] + STATS)
        warm_up(self, client)
        for _ in range(19):
            self.assertEqual(st.request(client.outbound_port, "GET", "/", host="reviews:9080").status, 200)

        def counted():
            rows = stat_json(mesh, "deploy", "--window", "1m")
            return rows if row(rows, "reviews-v2")["requests"] >= 20 else None
        rows = wait_for(counted, 10, "reviews to count 20 requests")
        self.assertEqual(row(rows, "reviews-v2")["successRate"], 1.0)
        self.assertEqual(row(rows, "reviews-v2")["mtlsShare"], 0.0)
        edges = json.loads(sinew(mesh, "edges", "deploy", "-o", "json").stdout)
        self.assertEqual(len(edges), 1, edges)
        # the client's proxy reports the registered entry proxy-reviews-...; sinewd names its workload
        self.assertEqual(edges[0]["dst"]["workload"], "reviews-v2")
        self.assertFalse(edges[0]["mtls"])
        self.assertIsNone(edges[0]["clientIdentity"])
        self.assertIsNone(edges[0]["serverIdentity"])
        out = sinew(mesh, "edges", "deploy").stdout
        self.assertEqual(out.splitlines()[1].split(), ["productpage", "reviews-v2", "default", "default", "no"], out)

        # A stats message sinewd cannot read: logged, counted, dropped; the link stays.
        link = MeshLink(mesh.mesh_port)
        self.addCleanup(link.close)
        link.send({"type": "hello", "node": {"id": "wire-stats", "service": "wire", "namespace": "default",
                                             "version": "0.1.0"}, "have": {}})
        link.wait(lambda m: m.get("type") == "resources")
        link.send({"type": "stats", "seq": 1, "durationBucketsMs": BOUNDS,
                   "requests": [{"reporter": "client", "count": 1}]})
        good = {"reporter": "destination", "destinationWorkload": "wire", "destinationNamespace": "default",
                "destinationServiceName": "wire", "destinationServiceNamespace": "default",
                "responseCode": 200, "count": 7, "durationBuckets": [0, 0, 7] + [0] * 17}
        link.send({"type": "stats", "seq": 1, "intervalMs": 1000, "periodMs": 1000, "durationBucketsMs": BOUNDS,
                   "requests": [good]})
        link.send({"type": "heartbeat"})
        link.pump(0.5)
        self.assertFalse(link.closed)
        self.assertEqual([m for m in link.lines if m.get("type") == "error"], [])
        px = [p for p in mesh.proxies() if p["id"] == "wire-stats"]
        self.assertEqual(px[0]["stats"], {"messages": 1, "rejected": 1}, px)
        self.assertIn("sent stats sinewd cannot read (requests[0].reporter: want \"source\" or \"destination\")",
                      mesh.read_log())

        def wire_counted():
            link.pump(0.1)
            r = [x for x in stat_json(mesh, "deploy", "--window", "1m") if x["name"] == "wire"]
            return r if r and r[0]["requests"] == 7 else None
        wait_for(wire_counted, 10, "the hand-made link's 7 requests")

    def test_api_and_cli_refusals(self):
        mesh = Mesh(self)
        for path, want in (("/api/v1/stats", "resource \"\" is not one of"),
                           ("/api/v1/stats?resource=pods", "resource \"pods\" is not one of"),
                           ("/api/v1/stats?resource=deploy&window=5s", "window \"5s\" is not a duration"),
                           ("/api/v1/stats?resource=deploy&window=2h", "window \"2h\""),
                           ("/api/v1/edges?window=soon", "window \"soon\"")):
            status, body = mesh.call("GET", path)
            self.assertEqual(status, 400, (path, body))
            self.assertIn(want, body["error"])
        for path in ("/api/v1/stats", "/api/v1/edges"):
            status, body = mesh.call("POST", path, "{}")
            self.assertEqual(status, 405, body)
        status, body = mesh.call("GET", "/api/v1/stats?resource=ns&window=15m")
        self.assertEqual((status, body), (200, []))
        self.assertIn("No traffic found", sinew(mesh, "stat", "deploy").stdout)
        self.assertIn("No edges found", sinew(mesh, "edges", "deploy").stdout)
        for args in (["stat"], ["stat", "pods"], ["stat", "deploy", "-o", "yaml"], ["edges"], ["edges", "svc"]):
            r = sinew(mesh, *args, check=False)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertTrue(r.stderr.strip(), args)
        r = sinew(mesh, "stat", "deploy", "--window", "1s", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("window \"1s\"", r.stderr)
        for c in ("stat", "edges"):
            r = subprocess.run([SINEW, c, "--help"], capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 0)
            self.assertIn("usage: sinew " + c, r.stdout)
            self.assertIn("Exit status", r.stdout)


if __name__ == "__main__":
    st.main()
