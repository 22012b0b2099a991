#!/usr/bin/python3
"""The admin port (/ready, /live, /config_dump, /metrics) and the access log,
checked against requests the test made and counted itself."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

FQDN = "reviews.default.svc.cluster.local"


class AdminMetrics(unittest.TestCase):

    def setUp(self):
        self.bi = st.Bookinfo(self, ["virtual-service-reviews-test-v2.yaml"],
                              workloads=(("reviews", "v1"), ("reviews", "v2"), ("ratings", "v1")),
                              proxy_args=["--service", "productpage", "--namespace", "default",
                                          "--labels", "app=productpage,version=v1",
                                          "--service-account", "bookinfo-productpage"],
                              ready=True, access_log=True)
        self.proxy = self.bi.proxy

    def scrape_text(self):
        code, headers, body = self.proxy.admin_get("/metrics")
        self.assertEqual(code, 200)
        return headers, body.decode()

    def test_health_endpoints(self):
        for path in ("/ready", "/live"):
            code, _, _ = self.proxy.admin_get(path)
            self.assertEqual(code, 200, path)
        code, _, _ = self.proxy.admin_get("/no-such-admin-path")
        self.assertEqual(code, 404)

    def test_config_dump(self):
        code, headers, body = self.proxy.admin_get("/config_dump")
        self.assertEqual(code, 200)
        self.assertIn("json", headers.get("content-type", ""))
        dump = json.loads(body)
        self.assertIn("version", dump)
        text = json.dumps(dump)
        # The snapshot names what the config file holds.
        for needle in (FQDN, "v1", "v2", "ratings"):
            self.assertIn(needle, text)
        self.assertIn(str(self.bi.ports[("reviews", "v2")]), text)

    def test_request_counts_and_labels(self):
        n_v1, n_v2 = 37, 13
        c = st.KeepAliveClient(self.bi.port)
        self.addCleanup(c.close)
        for i in range(n_v1):
            self.assertEqual(c.request("GET", "/m%d" % i, "reviews").status, 200)
        for i in range(n_v2):
            r = st.request(self.bi.port, "POST", "/m%d" % i, host="reviews",
                           headers={"end-user": "jason"}, body=b"x" * 100)
            self.assertEqual(r.status, 200)
        samples = self.proxy.metrics()
        for ver, n in (("v1", n_v1), ("v2", n_v2)):
            sel = st.metric_select(samples, "sinew_requests_total", destination_service=FQDN,
                                   destination_version=ver)
            self.assertEqual(sum(v for _, _, v in sel), n, "%s: %r" % (ver, sel))
            self.assertEqual(len(sel), 1, "one series expected for %s: %r" % (ver, sel))
            labels = sel[0][1]
            for k, want in (("reporter", "source"), ("response_code", "200"),
                            ("response_flags", "-"), ("source_workload", "productpage-v1"),   # service-version, as Istio names bookinfo
                            ("source_workload_namespace", "default"),
                            ("destination_service_name", "reviews"),
                            ("destination_service_namespace", "default")):
                self.assertEqual(labels.get(k), want, "label %s in %r" % (k, labels))
            for k in ("source_principal", "destination_workload", "destination_principal",
                      "request_protocol", "connection_security_policy"):
                self.assertIn(k, labels)
            # Histogram: _count == requests, +Inf bucket == _count,
            # cumulative buckets never decrease.
            match = dict(destination_service=FQDN, destination_version=ver, response_code="200")
            cnt = st.metric_sum(samples, "sinew_request_duration_milliseconds_count", **match)
            self.assertEqual(cnt, n)
            self.assertGreater(st.metric_sum(samples, "sinew_request_duration_milliseconds_sum",
                                             **match), 0)
            buckets = st.metric_select(samples, "sinew_request_duration_milliseconds_bucket",
                                       **match)
            self.assertTrue(buckets)
            by_le = sorted(((float(l["le"]), v) for _, l, v in buckets))
            self.assertEqual(by_le[-1][0], float("inf"))
            self.assertEqual(by_le[-1][1], n)
            vals = [v for _, v in by_le]
            self.assertEqual(vals, sorted(vals), "buckets not cumulative: %r" % by_le)
            for name in ("sinew_request_bytes", "sinew_response_bytes"):
                self.assertEqual(st.metric_sum(samples, name + "_count", **match), n, name)
        self.assertGreaterEqual(
            st.metric_sum(samples, "sinew_request_bytes_sum", destination_version="v2"),
            100 * n_v2)
        self.assertGreater(
            st.metric_sum(samples, "sinew_response_bytes_sum", destination_version="v1"), 0)

    def test_error_reasons_in_metrics_and_access_log(self):
        r = st.request(self.bi.port, "GET", "/nr", host="nosuch")
        self.assertEqual((r.status, r.header("sinew-error")), (404, "no_route"))
        r = st.request(self.bi.port, "GET", "/ok", host="reviews")
        self.assertEqual(r.status, 200)
        r = st.request(self.bi.port, "GET", "/empty", host="details")
        self.assertEqual((r.status, r.header("sinew-error")), (503, "no_healthy_upstream"))
        samples = self.proxy.metrics()
        self.assertEqual(st.metric_sum(samples, "sinew_requests_total", response_flags="no_route",
                                       response_code="404"), 1)
        self.assertEqual(st.metric_sum(samples, "sinew_requests_total",
                                       response_flags="no_healthy_upstream",
                                       response_code="503"), 1)
        lines = self.access_lines(3)
        by_path = {e.get("path"): e for e in lines}
        self.assertEqual(by_path["/nr"]["response_flags"], "no_route")
        self.assertEqual(by_path["/nr"]["response_code"], 404)
        self.assertEqual(by_path["/ok"]["response_flags"], "-")
        self.assertEqual(by_path["/ok"]["response_code"], 200)
        self.assertEqual(by_path["/empty"]["response_flags"], "no_healthy_upstream")

    def test_cardinality_bounded_for_unknown_hosts(self):
        """Clients control the Host header: 200 unknown hosts must not make
        200 series."""
        before = len(self.proxy.metrics())
        c = st.KeepAliveClient(self.bi.port)
        self.addCleanup(c.close)
        for i in range(200):
            r = c.request("GET", "/", "unknown-%d.example:%d" % (i, 1000 + i))
            self.assertEqual(r.status, 404)
        samples = self.proxy.metrics()
        self.assertEqual(st.metric_sum(samples, "sinew_requests_total", response_flags="no_route"),
                         200)
        series = st.metric_select(samples, "sinew_requests_total", response_flags="no_route")
        self.assertLessEqual(len(series), 2, "one series per unknown host: %r" % series[:5])
        self.assertLess(len(samples) - before, 100, "scrape grew by %d samples"
                        % (len(samples) - before))

    def access_lines(self, want, timeout=5.0):
        deadline = time.time() + timeout
        lines = []
        while time.time() < deadline:
            try:
                with open(self.bi.access_log) as f:
                    raw = f.read()
            except FileNotFoundError:
                raw = ""
            lines = [ln for ln in raw.splitlines() if ln.strip()]
            if len(lines) >= want:
                break
            time.sleep(0.1)
        out = []
        for ln in lines:
            try:
                out.append(json.loads(ln))
            except ValueError:
                self.fail("access log line is not JSON: %r" % ln)
        self.assertEqual(len(out), want, "access log lines: %r" % lines)
        return out

    def test_access_log_lines(self):
        n = 25
        for i in range(n):
            hdr = {"end-user": "jason"} if i % 5 == 0 else {"User-Agent": 'we"ird\\agent\x01'[:-1]}
            r = st.request(self.bi.port, "GET", '/al/%d?q="x"' % i, host="reviews", headers=hdr)
            self.assertEqual(r.status, 200)
        entries = self.access_lines(n)
        for e in entries:
            for k in ("response_code", "response_flags", "method", "path", "duration_ms"):
                self.assertIn(k, e)
            self.assertEqual(e["response_code"], 200)
            self.assertEqual(e["response_flags"], "-")
            self.assertEqual(e["method"], "GET")
        self.assertEqual(sorted(e["path"] for e in entries),
                         sorted('/al/%d?q="x"' % i for i in range(n)))

    def test_promtool_check_metrics(self):
        if not shutil.which("promtool"):
            self.skipTest("promtool not installed (Debian package prometheus)")
        for i in range(5):
            st.request(self.bi.port, "GET", "/p%d" % i, host="reviews")
        st.request(self.bi.port, "GET", "/p", host="nosuch")
        headers, text = self.scrape_text()
        self.assertTrue(headers.get("content-type", "").startswith("text/plain"), headers)
        st.parse_metrics(text)
        cp = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                            text=True, timeout=30)
        # Istio's names (DESIGN.md §7) carry milliseconds, which promtool's
        # linter flags; that one finding is by design. Anything else (a
        # parse error, a counter without _total, a missing HELP...) fails.
        allowed = re.compile(r'^sinew_\w+_milliseconds use base unit "seconds" instead of '
                             r'"milliseconds"$')
        problems = [ln for ln in (cp.stdout + cp.stderr).splitlines()
                    if ln.strip() and not allowed.match(ln.strip())]
        self.assertIn(cp.returncode, (0, 3), "promtool failed to parse the scrape:\n%s%s"
                      % (cp.stdout, cp.stderr))
        self.assertEqual(problems, [], "promtool check metrics:\n%s%s" % (cp.stdout, cp.stderr))

    def test_config_metrics(self):
        samples = self.proxy.metrics()
        self.assertTrue(st.metric_select(samples, "sinew_config_version"))
        self.assertEqual(st.metric_sum(samples, "sinew_config_reloads_total", result="failure"),
                         0)
        code, _, body = self.proxy.admin_get("/config_dump")
        dump = json.loads(body)
        self.assertEqual(float(dump["version"]), st.metric_sum(samples, "sinew_config_version"))


class AccessLogStdout(unittest.TestCase):

    def test_access_log_to_stdout(self):
        bi = st.Bookinfo(self, ["virtual-service-reviews-v3.yaml"],
                         workloads=(("reviews", "v3"),), proxy_args=["--access-log", "-"])
        for i in range(5):
            st.request(bi.port, "GET", "/so/%d" % i, host="reviews")
        st.request(bi.port, "GET", "/so/x", host="nosuch")
        deadline = time.time() + 5
        lines = []
        while time.time() < deadline:
            lines = [ln for ln in bi.proxy.stdout().splitlines() if ln.startswith("{")]
            if len(lines) >= 6:
                break
            time.sleep(0.1)
        entries = [json.loads(ln) for ln in lines]
        self.assertEqual(sorted(e["path"] for e in entries),
                         sorted(["/so/%d" % i for i in range(5)] + ["/so/x"]))
        self.assertEqual([e["response_flags"] for e in entries if e["path"] == "/so/x"],
                         ["no_route"])


class MetricsAcrossWorkers(unittest.TestCase):

    def test_two_workers_summed_and_istio_names(self):
        """Per-worker counters are summed on scrape; --istio-metric-names
        adds istio_* series with the same values."""
        bi = st.Bookinfo(self, ["virtual-service-reviews-v3.yaml"],
                         workloads=(("reviews", "v3"),),
                         proxy_args=["--workers", "2", "--istio-metric-names"])
        n = 40
        res = st.run_parallel(8, n, lambda ti, i: st.request(bi.port, "GET", "/w%d" % i,
                                                            host="reviews"), deadline_s=30)
        self.assertEqual(len([r for r in res if isinstance(r, st.Resp) and r.status == 200]), n,
                         st.describe_failures(res))
        samples = bi.proxy.metrics()
        for name in ("sinew_requests_total", "istio_requests_total"):
            self.assertEqual(st.metric_sum(samples, name, destination_service=FQDN,
                                           destination_version="v3", response_code="200"), n,
                             name)
        for name in ("sinew_request_duration_milliseconds_count",
                     "istio_request_duration_milliseconds_count"):
            self.assertEqual(st.metric_sum(samples, name, destination_version="v3"), n, name)


if __name__ == "__main__":
    st.main()
