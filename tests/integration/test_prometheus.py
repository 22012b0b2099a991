"""A real Prometheus (Debian's package, started here on loopback) scrapes
every proxy that sinewd knows through sinewd's HTTP service discovery
endpoint (GET /api/v1/prometheus/targets), as a user who outgrows the
built-in views would run it: both proxies of a sidecar pair found and up,
`promtool check metrics` clean on what they serve, and the queries of
Istio's Grafana dashboards (istio_requests_total by reporter, source and
destination; histogram_quantile over
istio_request_duration_milliseconds_bucket) answering with the expected
series under --istio-metric-names."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh, start_cp_proxy  # noqa: E402

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def prom_query(port, q):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": q}))
    with urllib.request.urlopen(url, timeout=5) as r:
        doc = json.loads(r.read())
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


class Prometheus(unittest.TestCase):

    def setUp(self):
        self.mesh = Mesh(self)
        app = st.start_backend(self, "reviews", "v1")
        # reviews as a `sinew run` pod's proxy: its admin port on (what
        # would be) the pod's loopback, scraped through sinewd's relay
        self.b = start_cp_proxy(self, self.mesh, outbound=False, inbound=True, app="127.0.0.1:%d" % app.port,
                                args=["--service", "reviews", "--labels", "app=reviews,version=v1",
                                      "--istio-metric-names", "--pod", "reviews-pod"])
        self.a = start_cp_proxy(self, self.mesh, args=["--service", "productpage", "--labels",
                                                       "app=productpage,version=v1", "--istio-metric-names"])
        self.mesh.apply(st.service_yaml("reviews"))
        self.mesh.wait_proxies(lambda ps: len(ps) == 2 and all(p["state"] == "SYNCED" for p in ps))

    def test_sd_lists_every_proxy(self):
        status, targets = self.mesh.call("GET", "/api/v1/prometheus/targets")
        self.assertEqual(status, 200)
        got = {t["labels"]["service"]: t for t in targets}
        self.assertEqual(set(got), {"productpage", "reviews"})
        # a proxy on the host: its own admin port
        self.assertEqual(got["productpage"]["targets"], ["127.0.0.1:%d" % self.a.admin_port])
        self.assertEqual(got["productpage"]["labels"]["__metrics_path__"], "/metrics")
        self.assertNotIn("sinew_reachable", got["productpage"]["labels"])
        # a pod's: sinewd's API relays the scrape over its control link
        labels = got["reviews"]["labels"]
        self.assertEqual(got["reviews"]["targets"], ["127.0.0.1:%d" % self.mesh.port])
        self.assertEqual(labels["__metrics_path__"], "/api/v1/proxies/%s/metrics" % labels["sinew_proxy"])
        self.assertEqual(labels["sinew_reachable"], "via-sinewd")
        self.assertEqual(labels["pod"], "reviews-pod")
        self.assertEqual(labels["namespace"], "default")
        self.assertEqual(labels["version"], "v1")
        self.assertEqual(labels["workload"], "reviews-v1")
        # the relay itself: the proxy's /metrics text, as its admin port serves it
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.mesh.port, labels["__metrics_path__"]),
                                    timeout=10) as r:
            self.assertEqual(r.status, 200)
            self.assertTrue(r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers)
            text = r.read().decode()
        self.assertIn("# TYPE istio_requests_total counter", text)
        self.assertIn("sinew_downstream_connections_total", text)
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/api/v1/proxies/nosuch/metrics" % self.mesh.port, timeout=10)
            self.fail("a scrape of an unknown proxy answered")
        except urllib.error.HTTPError as e:
            self.assertEqual(e.code, 404)
            self.assertIn("no connected proxy has id nosuch", json.loads(e.read())["error"])
        for t in targets:   # Prometheus's format: strings only
            self.assertTrue(all(isinstance(v, str) for v in t["labels"].values()), t)

    def test_real_prometheus_scrapes_through_sd(self):
        if not os.path.exists(PROMETHEUS):
            self.fail("prometheus is not installed (scripts/deps.sh installs it)")
        for _ in range(40):
            r = st.request(self.a.outbound_port, "GET", "/reviews/1", host="reviews:9080")
            self.assertEqual(r.status, 200, r.body)
        d = st.make_tempdir(self, "prom-")
        port = st.free_port()
        cfg = os.path.join(d, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("""global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
- job_name: sinew-proxies
  http_sd_configs:
  - url: http://127.0.0.1:%d/api/v1/prometheus/targets
    refresh_interval: 1s
""" % self.mesh.port)
        log = open(os.path.join(d, "prometheus.log"), "w")
        p = st.spawn([PROMETHEUS, "--config.file", cfg, "--storage.tsdb.path", os.path.join(d, "data"),
                      "--web.listen-address", "127.0.0.1:%d" % port], stdout=log, stderr=log)
        self.addCleanup(st.stop_process, p)
        self.assertTrue(st.wait_port(port, 20), open(os.path.join(d, "prometheus.log")).read()[-3000:])
        deadline = time.time() + 30
        while time.time() < deadline:   # it serves queries once ready
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % port, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            time.sleep(0.2)

        deadline = time.time() + 30
        up = []
        while time.time() < deadline:
            up = prom_query(port, 'up{job="sinew-proxies"}')
            if len(up) == 2 and all(u["value"][1] == "1" for u in up):
                break
            time.sleep(0.5)
        self.assertEqual(sorted(u["metric"]["service"] for u in up), ["productpage", "reviews"], up)
        self.assertTrue(all(u["value"][1] == "1" for u in up), up)

        # Istio's dashboards: requests by reporter, source and destination
        deadline = time.time() + 20
        res = []
        while time.time() < deadline:
            res = prom_query(port, 'sum(istio_requests_total{destination_service_name="reviews"}) '
                                   'by (reporter, source_workload, destination_workload, response_code)')
            if len(res) == 2 and all(float(x["value"][1]) >= 40 for x in res):
                break
            time.sleep(0.5)
        by = {x["metric"]["reporter"]: x["metric"] for x in res}
        self.assertEqual(set(by), {"source", "destination"}, res)
        self.assertEqual(by["source"]["response_code"], "200")
        self.assertTrue(all(float(x["value"][1]) >= 40 for x in res), res)
        # a rate needs two scrapes with traffic between them
        deadline = time.time() + 20
        q = []
        while time.time() < deadline:
            for _ in range(5):
                st.request(self.a.outbound_port, "GET", "/reviews/1", host="reviews:9080")
            q = prom_query(port, 'histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket'
                                 '{reporter="source"}[1m])) by (le, destination_service_name))')
            if len(q) == 1 and q[0]["value"][1] not in ("NaN", "0"):
                break
            time.sleep(0.5)
        self.assertEqual(len(q), 1, q)
        self.assertEqual(q[0]["metric"]["destination_service_name"], "reviews")
        self.assertGreater(float(q[0]["value"][1]), 0)

    def test_promtool_check_metrics_is_clean(self):
        st.request(self.a.outbound_port, "GET", "/", host="reviews:9080")
        for px in (self.a, self.b):
            status, _, body = px.admin_get("/metrics")
            self.assertEqual(status, 200)
            r = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=30)
            out = r.stdout.decode() + r.stderr.decode()
            # Istio's names carry milliseconds, which promtool's linter
            # flags (exit 3); that finding is by design, anything else fails
            allowed = re.compile(r'^(sinew|istio)_\w+_milliseconds use base unit "seconds" instead of '
                                 r'"milliseconds"$')
            self.assertIn(r.returncode, (0, 3), out)
            self.assertEqual([ln for ln in out.splitlines() if ln.strip() and not allowed.match(ln.strip())],
                             [], out)


if __name__ == "__main__":
    unittest.main()
