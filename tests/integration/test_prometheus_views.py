#!/usr/bin/python3
"""`sinew stat` and `sinew edges` read from a real Prometheus
(--prometheus URL, $SINEW_PROMETHEUS): Debian's prometheus, started here
on loopback with a 1 s scrape interval, finds both proxies of an mTLS
pair through sinewd's HTTP service discovery; 2,000 requests at 100 req/s
go from productpage to reviews with a VirtualService aborting 10 % (500)
at the client's proxy, as in test_stat.py. Then:

- while the traffic runs, a 10 s window says about 100 req/s;
- after it, a window holding the whole run counts the requests the client
  sent (within Prometheus's extrapolation) at the success rate the client
  saw, 90 +- 2 % (the aborts count against reviews though its proxy never
  saw them), with the same rows, columns and JSON shape as `sinew stat`
  from sinewd's own store, and for services and namespaces too;
- `sinew edges` shows the same edge, secured, with the same identities;
- a --prometheus nobody listens on, or that is not Prometheus, is a clear
  error and exit 1; the flag wins over $SINEW_PROMETHEUS.

And on a plaintext pair whose Prometheus keeps only Istio's names
(--istio-metric-names, sinew_* request families dropped at scrape), the
views find istio_requests_total, and a client's "proxy-<id>" destination
is named by its workload, as sinewd names it."""

import json
import os
import shutil
import subprocess
import sys
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh, start_cp_proxy  # noqa: E402
from test_mesh_identity import start as start_token_proxy  # noqa: E402
from test_stat import ABORT_VS, STATS, Load, dice, row, wait_for, warm_up  # noqa: E402

SINEW = os.path.join(st.BIN, "sinew")
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
RATE = 100
SECONDS = 20


def prom_query(port, q):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": q}))
    with urllib.request.urlopen(url, timeout=5) as r:
        doc = json.loads(r.read())
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def start_prometheus(test, sd_port, extra=""):
    """Prometheus on a free loopback port, scraping sinewd's SD targets
    every second (extra: more of the scrape config); returns its port once
    it serves queries."""
    if not os.path.exists(PROMETHEUS):
        test.fail("prometheus is not installed (scripts/deps.sh installs it)")
    d = st.make_tempdir(test, "prom-")
    port = st.free_port()
    cfg = os.path.join(d, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("""global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
- job_name: sinew-proxies
  http_sd_configs:
  - url: http://127.0.0.1:%d/api/v1/prometheus/targets
    refresh_interval: 1s
""" % sd_port + extra)
    log_path = os.path.join(d, "prometheus.log")
    log = open(log_path, "w")
    test.addCleanup(log.close)
    p = st.spawn([PROMETHEUS, "--config.file", cfg, "--storage.tsdb.path", os.path.join(d, "data"),
                  "--web.listen-address", "127.0.0.1:%d" % port], stdout=log, stderr=log)
    test.addCleanup(st.stop_process, p)
    test.assertTrue(st.wait_port(port, 20), open(log_path).read()[-3000:])
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % port, timeout=2) as r:
                if r.status == 200:
                    return port
        except OSError:
            pass
        time.sleep(0.2)
    test.fail("prometheus not ready in 30 s\n" + open(log_path).read()[-3000:])


def run(mesh, args, env=None, check=True):
    e = dict(os.environ)
    e.pop("SINEW_PROMETHEUS", None)
    e.update(env or {})
    r = subprocess.run([SINEW] + list(args) + ["--server", "http://127.0.0.1:%d" % mesh.port],
                       capture_output=True, text=True, timeout=60, env=e)
    if check and r.returncode != 0:
        raise AssertionError("sinew %s: %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


class StatFromPrometheus(unittest.TestCase):
    def test_stat_and_edges_agree_with_traffic_and_sinewd(self):
        mesh = Mesh(self, plaintext=False, extra=["--stats-resolution", "1s"])
        app = st.start_backend(self, "reviews", "v1")
        mesh.apply(st.service_yaml("reviews") + ABORT_VS, "reviews.yaml")
        start_token_proxy(self, mesh, "reviews", inbound_app=app.port, labels="app=reviews,version=v1",
                          extra=STATS)
        client = start_token_proxy(self, mesh, "productpage", extra=STATS)
        port = start_prometheus(self, mesh.port)
        prom = "http://127.0.0.1:%d" % port
        wait_for(lambda: len([u for u in prom_query(port, 'up{job="sinew-proxies"}') if u["value"][1] == "1"]) == 2,
                 20, "Prometheus to scrape both proxies")

        def stat(*args, window="1m", env=None, flag=True):
            argv = ["stat"] + list(args) + ["--window", window, "-o", "json"]
            if flag:
                argv += ["--prometheus", prom]
            return json.loads(run(mesh, argv, env=env).stdout)

        def edges(flag=True):
            argv = ["edges", "deploy", "--window", "1m", "-o", "json"] + (["--prometheus", prom] if flag else [])
            return json.loads(run(mesh, argv).stdout)

        seen = warm_up(self, client)
        load = Load(client.outbound_port, "reviews:9080", RATE, SECONDS)
        load.start()
        # steady: a 10 s window while the traffic runs (Prometheus's ends at the last scrape)
        time.sleep(13)
        steady = row(stat("deploy", window="10s"), "reviews-v1")
        load.join(90)
        self.assertIsNone(load.error, load.error)
        res = load.result
        self.assertEqual(res["completed"], RATE * SECONDS, res)
        for code, n in res["status"].items():
            seen[int(code)] = seen.get(int(code), 0) + n
        sent = sum(seen.values())
        ok = seen.get(200, 0)
        self.assertEqual(set(seen), {200, 500}, seen)
        print("client saw %d requests, %d answered 200 (%.2f %%); Prometheus, steady 10 s window: %s"
              % (sent, ok, 100.0 * ok / sent, json.dumps(steady)), flush=True)
        self.assertLess(abs(float(steady["rps"]) - RATE), RATE * 0.1, steady)
        self.assertLess(abs(float(steady["successRate"]) - 0.9), dice(int(steady["requests"]), k=6), steady)

        # the whole run, once every proxy's last counts are scraped and
        # sinewd's store has them too (its window ends a report interval ago)
        def settled():
            p = row(stat("deploy"), "reviews-v1")
            s = row(stat("deploy", flag=False), "reviews-v1")
            return (p, s) if abs(p["requests"] - sent) <= sent * 0.05 and s["requests"] == sent else None
        whole, own = wait_for(settled, 15, "Prometheus and sinewd to count %d requests" % sent)
        print("Prometheus: %s\nsinewd:     %s" % (json.dumps(whole), json.dumps(own)), flush=True)
        self.assertLess(abs(float(whole["successRate"]) - ok / sent), 0.02, whole)
        self.assertLess(abs(float(whole["successRate"]) - 0.9), dice(sent), whole)
        self.assertLess(abs(float(whole["successRate"]) - float(own["successRate"])), 0.02, (whole, own))
        self.assertEqual(set(whole), set(own))
        self.assertEqual(set(whole["latencyMs"]), set(own["latencyMs"]))
        for k in ("namespace", "name", "meshed", "reportedBy", "mtlsShare"):
            self.assertEqual(whole[k], own[k], (k, whole, own))
        for q in ("p50", "p95", "p99"):
            self.assertGreater(whole["latencyMs"][q], 0, whole)
        self.assertLessEqual(whole["latencyMs"]["p50"], whole["latencyMs"]["p99"])
        self.assertGreaterEqual(whole["tcpConnections"], 0)

        # the same rows from both, for every resource
        def names(rows):
            return sorted((r["namespace"], r["name"], r["meshed"], r["requests"] > 0) for r in rows)
        for resource in ("deploy", "svc", "ns"):
            p, s = stat(resource), stat(resource, flag=False)
            self.assertEqual(names(p), names(s), (resource, p, s))
        pp = row(stat("deploy"), "productpage")
        self.assertEqual(pp["requests"], 0)
        self.assertIsNone(pp["successRate"])
        self.assertEqual(stat("deploy", "reviews", "-n", "other"), [])
        self.assertEqual([r["name"] for r in stat("deploy", "reviews-v1")], ["reviews-v1"])
        self.assertLess(abs(row(stat("svc"), "reviews")["requests"] - sent), sent * 0.05)
        self.assertLess(abs(row(stat("ns"), "default")["requests"] - sent), sent * 0.05)

        # the table: sinewd's columns
        out = run(mesh, ["stat", "deploy", "--window", "1m", "--prometheus", prom]).stdout
        print(out, flush=True)
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "MESHED", "SUCCESS", "RPS", "LATENCY_P50", "LATENCY_P95",
                                            "LATENCY_P99", "TCP_CONN"], out)
        rv = next(ln.split() for ln in lines if ln.startswith("reviews-v1"))
        self.assertEqual(rv[1], "1/1")
        self.assertTrue(rv[2].endswith("%") and rv[3].endswith("rps") and rv[4].endswith("ms"), rv)

        # edges: the same pair, secured, the identities mutual TLS proved
        pe, se = edges(), edges(flag=False)
        self.assertEqual(len(pe), 1, pe)
        e = pe[0]
        self.assertEqual(set(e), set(se[0]))
        for k in ("src", "dst", "clientIdentity", "serverIdentity", "mtls"):
            self.assertEqual(e[k], se[0][k], (k, pe, se))
        self.assertEqual(e["dst"], {"namespace": "default", "workload": "reviews-v1"})
        self.assertEqual(e["clientIdentity"], "spiffe://cluster.local/ns/default/sa/productpage")
        self.assertTrue(e["mtls"])
        self.assertLess(abs(e["requests"] - sent), sent * 0.05, e)
        out = run(mesh, ["edges", "deploy", "--window", "1m", "--prometheus", prom]).stdout
        self.assertEqual(out.splitlines()[1].split(), ["productpage", "reviews-v1", "default", "default", "yes"], out)

        # routes: the VirtualService's route and the same counts, from
        # sinew_route_* in Prometheus and from sinewd
        pr = json.loads(run(mesh, ["routes", "svc", "--window", "1m", "-o", "json", "--prometheus", prom]).stdout)
        sr = json.loads(run(mesh, ["routes", "svc", "--window", "1m", "-o", "json"]).stdout)
        key = lambda r: (r["route"], r["service"]["name"])  # noqa: E731
        self.assertEqual([key(r) for r in pr], [key(r) for r in sr], (pr, sr))
        self.assertEqual([key(r) for r in pr], [("reviews.http[0]", "reviews")], pr)
        self.assertEqual(set(pr[0]), set(sr[0]))
        self.assertLess(abs(pr[0]["requests"] - sent), sent * 0.05, pr)
        # the window may miss or add a few requests at its edges: each one
        # moves the rate by at most 1/requests, whatever its outcome
        slack = abs(pr[0]["requests"] - sent) / pr[0]["requests"]
        self.assertLess(abs(float(pr[0]["successRate"]) - ok / sent), 0.02 + slack, pr)
        pd = json.loads(run(mesh, ["routes", "deploy", "--window", "1m", "-o", "json", "--prometheus", prom]).stdout)
        self.assertEqual([r["workload"] for r in pd], [{"namespace": "default", "name": "productpage"}], pd)
        out = run(mesh, ["routes", "--window", "1m", "--prometheus", prom]).stdout
        self.assertEqual(out.splitlines()[1].split()[:2], ["reviews.http[0]", "reviews"], out)

        # sinewd --prometheus: its API's views (the dashboard's, a CLI's
        # without the flag) answer from Prometheus: a second sinewd, with
        # no proxies of its own, shows the first one's mesh
        other = Mesh(self, extra=["--prometheus", prom])
        via = json.loads(run(other, ["stat", "deploy", "--window", "1m", "-o", "json"]).stdout)
        direct = stat("deploy")
        self.assertEqual(names(via), names(direct))
        for a, b in zip(via, direct):   # asked a moment apart: Prometheus extrapolates each window
            self.assertLessEqual(abs(a["requests"] - b["requests"]), max(b["requests"] * 0.05, 1), (via, direct))
        status, body = other.call("GET", "/api/v1/edges?window=1m")
        self.assertEqual(status, 200, body)
        self.assertEqual([(e["src"]["workload"], e["dst"]["workload"]) for e in body], [("productpage", "reviews-v1")])
        status, body = other.call("GET", "/api/v1/routes?window=1m")
        self.assertEqual(status, 200, body)
        self.assertEqual([r["route"] for r in body], ["reviews.http[0]"])
        status, body = other.call("GET", "/api/v1/stats?resource=nope")
        self.assertEqual(status, 502, body)
        self.assertIn('resource "nope"', body["error"])
        down = Mesh(self, extra=["--prometheus", "http://127.0.0.1:%d" % st.free_port()])
        status, body = down.call("GET", "/api/v1/stats?resource=deploy")
        self.assertEqual(status, 502, body)
        self.assertIn("cannot reach Prometheus", body["error"])

        # $SINEW_PROMETHEUS, and the flag over it
        r = run(mesh, ["stat", "deploy", "--window", "1m", "-o", "json"], env={"SINEW_PROMETHEUS": prom})
        self.assertEqual(names(json.loads(r.stdout)), names(stat("deploy")))
        dead = "http://127.0.0.1:%d" % st.free_port()
        r = run(mesh, ["stat", "deploy", "-o", "json", "--prometheus", prom], env={"SINEW_PROMETHEUS": dead})
        self.assertEqual(names(json.loads(r.stdout)), names(stat("deploy")))

        # Prometheus unreachable, or not Prometheus: said, exit 1
        for args in (["stat", "deploy"], ["edges", "deploy"], ["routes", "svc"]):
            r = run(mesh, args + ["--prometheus", dead], check=False)
            self.assertEqual(r.returncode, 1, (r.stdout, r.stderr))
            self.assertIn("cannot reach Prometheus at %s (connection refused)" % dead, r.stderr)
            self.assertIn("--prometheus", r.stderr)
            self.assertEqual(r.stdout, "")
        r = run(mesh, ["stat", "deploy", "--prometheus", "http://127.0.0.1:%d" % mesh.port], check=False)
        self.assertEqual(r.returncode, 1, (r.stdout, r.stderr))
        self.assertIn("does not answer as Prometheus's HTTP API", r.stderr)
        r = run(mesh, ["stat", "deploy", "--prometheus", "ftp://x"], check=False)
        self.assertEqual(r.returncode, 1, (r.stdout, r.stderr))
        self.assertIn("want an http:// URL", r.stderr)
        r = run(mesh, ["stat", "deploy", "--window", "5s", "--prometheus", prom], check=False)
        self.assertEqual(r.returncode, 1, (r.stdout, r.stderr))
        self.assertIn("window \"5s\"", r.stderr)


class IstioNamesOnly(unittest.TestCase):
    def test_istio_metric_names(self):
        """A Prometheus that keeps only Istio's names (proxies with
        --istio-metric-names, Sinew's own request families dropped at
        scrape): the views find istio_requests_total and count the same."""
        mesh = Mesh(self, extra=["--stats-resolution", "1s"])
        app = st.start_backend(self, "reviews", "v1")
        mesh.apply(st.service_yaml("reviews"), "svc.yaml")
        start_cp_proxy(self, mesh, outbound=False, inbound=True, app="127.0.0.1:%d" % app.port,
                       args=["--service", "reviews", "--istio-metric-names"] + STATS)
        client = start_cp_proxy(self, mesh, args=["--service", "productpage", "--istio-metric-names"] + STATS)
        port = start_prometheus(self, mesh.port, """  metric_relabel_configs:
  - source_labels: [__name__]
    regex: sinew_(request|response)_.*|sinew_requests_total
    action: drop
""")
        prom = "http://127.0.0.1:%d" % port
        wait_for(lambda: len([u for u in prom_query(port, 'up{job="sinew-proxies"}') if u["value"][1] == "1"]) == 2,
                 20, "Prometheus to scrape both proxies")
        warm_up(self, client)
        deadline = time.time() + 20
        rows, es = [], []
        while time.time() < deadline:   # a rate needs two scrapes of each proxy with traffic between them
            for _ in range(20):
                self.assertEqual(st.request(client.outbound_port, "GET", "/", host="reviews:9080").status, 200)
            rows = json.loads(run(mesh, ["stat", "deploy", "-o", "json", "--prometheus", prom]).stdout)
            es = json.loads(run(mesh, ["edges", "deploy", "-o", "json", "--prometheus", prom]).stdout)
            if [r for r in rows if r["name"] == "reviews" and r["requests"] > 0] and es:
                break
            time.sleep(0.5)
        self.assertEqual(prom_query(port, "sinew_requests_total"), [])
        self.assertNotEqual(prom_query(port, "istio_requests_total"), [])
        rv = row(rows, "reviews")
        self.assertGreater(rv["requests"], 0, rows)
        self.assertEqual(rv["successRate"], 1.0, rv)
        self.assertEqual(rv["mtlsShare"], 0.0, rv)   # plaintext
        self.assertEqual(sorted(r["name"] for r in rows), ["productpage", "reviews"], rows)
        self.assertEqual([(e["src"]["workload"], e["dst"]["workload"], e["mtls"]) for e in es],
                         [("productpage", "reviews", False)], es)


if __name__ == "__main__":
    st.main()
