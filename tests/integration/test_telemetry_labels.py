#!/usr/bin/python3
"""What the request metrics' labels and the access log say, with Istio's
meaning (docs/observability.md; issue 12, "Seeing the mesh"), between real
proxies and real backends:

- a principal is reported only where mutual TLS proved it: plaintext
  proxies, a plaintext request to a proxy that holds a certificate, a
  plaintext cluster and a failed mTLS attempt all say "unknown";
- destination_app is the endpoint's app label (the proxy's own on the
  destination side), not the service name;
- source_cluster / destination_cluster name the mesh's cluster
  ("Kubernetes", Istio's default cluster id), while the Envoy-style cluster
  stays in the access log's upstream_cluster;
- bytes_sent and sinew_response_bytes count the body of a response the
  proxy made itself (direct response, fault abort, no route), HTTP/1.1 and
  HTTP/2."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_mtls import Certs, DR, PP_ID, RV_ID  # noqa: E402

FQDN = "reviews.default.svc.cluster.local"
CLUSTER_ID = "Kubernetes"
CERTS = None


def setUpModule():
    global CERTS
    d = tempfile.mkdtemp(prefix="sinew-labels-")
    CERTS = Certs(d)


def tearDownModule():
    if CERTS is not None:
        shutil.rmtree(CERTS.d, ignore_errors=True)


def series(test, proxy, **match):
    """The labels of the one sinew_requests_total series matching, and its count."""
    sel = st.metric_select(proxy.metrics(), "sinew_requests_total", **match)
    test.assertEqual(len(sel), 1, "want one series for %r, got %r" % (match, sel))
    return sel[0][1], sel[0][2]


def inbound_proxy(test, app_port, certs=None, labels="app=reviews-app,version=v1", extra=""):
    """Proxy B: reviews' sidecar, inbound only, in front of a backend."""
    args = ["--service", "reviews", "--service-account", "reviews"]
    if labels:
        args += ["--labels", labels]
    if certs:
        args += CERTS.args("reviews")
    return st.start_proxy(test, st.registry_yaml({("reviews", "v1"): app_port}) + extra,
                          outbound=False, inbound=True, app="127.0.0.1:%d" % app_port, args=args)


def outbound_config(b_port, reviews_labels, sa="reviews", dr="", more=""):
    sel = {"app": reviews_labels["app"]} if "app" in reviews_labels else {"tier": reviews_labels["tier"]}
    return (st.service_yaml("reviews", selector=sel) +
            st.workload_yaml("reviews-v1", b_port, reviews_labels, service_account=sa) + dr + more)


def outbound_proxy(test, config, certs=False, access_log=None):
    """Proxy A: productpage's sidecar, outbound only."""
    args = ["--service", "productpage", "--service-account", "productpage",
            "--labels", "app=productpage-app,version=v1"]
    if certs:
        args += CERTS.args("productpage")
    if access_log:
        args += ["--access-log", access_log]
    return st.start_proxy(test, config, args=args)


def access_lines(test, path, want, timeout=5.0):
    deadline = time.time() + timeout
    lines = []
    while time.time() < deadline:
        try:
            with open(path) as f:
                lines = [json.loads(ln) for ln in f if ln.strip()]
        except FileNotFoundError:
            lines = []
        if len(lines) >= want:
            break
        time.sleep(0.05)
    test.assertEqual(len(lines), want, "access log: %r" % lines)
    return lines


class Principals(unittest.TestCase):

    def test_plaintext_proxies_prove_no_principal(self):
        """Neither proxy has a certificate: no principal is known on either
        side, though each could spell the SPIFFE ID it would have."""
        app = st.start_backend(self, "reviews", "v1")
        b = inbound_proxy(self, app.port)
        a = outbound_proxy(self, outbound_config(b.inbound_port, {"app": "reviews-app", "version": "v1"}))
        for _ in range(2):
            r = st.request(a.outbound_port, "GET", "/r", host="reviews:9080")
            self.assertEqual(r.status, 200, r)
        la, n = series(self, a, reporter="source", destination_service=FQDN)
        self.assertEqual(n, 2)
        self.assertEqual((la["source_principal"], la["destination_principal"],
                          la["connection_security_policy"]), ("unknown", "unknown", "unknown"), la)
        lb, n = series(self, b, reporter="destination")
        self.assertEqual(n, 2)
        self.assertEqual((lb["source_principal"], lb["destination_principal"],
                          lb["connection_security_policy"]), ("unknown", "unknown", "none"), lb)

    def test_mtls_proves_both_principals_and_plaintext_none(self):
        app = st.start_backend(self, "reviews", "v1")
        b = inbound_proxy(self, app.port, certs=True)
        # ratings: no DestinationRule and no tlsMode label, so plaintext,
        # although A holds a certificate.
        ratings = st.start_backend(self, "ratings", "v1")
        more = (st.service_yaml("ratings") +
                st.workload_yaml("ratings-v1", ratings.port, {"app": "ratings", "version": "v1"},
                                 service_account="ratings"))
        a = outbound_proxy(self, outbound_config(b.inbound_port, {"app": "reviews-app", "version": "v1"},
                                                 dr=DR, more=more), certs=True)
        for _ in range(3):
            r = st.request(a.outbound_port, "GET", "/r", host="reviews:9080")
            self.assertEqual(r.status, 200, r)
        la, n = series(self, a, reporter="source", destination_service=FQDN)
        self.assertEqual(n, 3)
        self.assertEqual((la["source_principal"], la["destination_principal"]), (PP_ID, RV_ID), la)
        lb, n = series(self, b, reporter="destination", connection_security_policy="mutual_tls")
        self.assertEqual(n, 3)
        self.assertEqual((lb["source_principal"], lb["destination_principal"]), (PP_ID, RV_ID), lb)

        # Plaintext straight to B (PERMISSIVE): B holds a certificate but
        # this connection proved no one, B included.
        r = st.request(b.inbound_port, "GET", "/plain", host="reviews:9080")
        self.assertEqual(r.status, 200, r)
        lb, n = series(self, b, reporter="destination", connection_security_policy="none")
        self.assertEqual(n, 1)
        self.assertEqual((lb["source_principal"], lb["destination_principal"]), ("unknown", "unknown"), lb)

        # A plaintext cluster: A's certificate was not used.
        r = st.request(a.outbound_port, "GET", "/rt", host="ratings:9080")
        self.assertEqual(r.status, 200, r)
        la, n = series(self, a, reporter="source", destination_service="ratings.default.svc.cluster.local")
        self.assertEqual((la["source_principal"], la["destination_principal"]), ("unknown", "unknown"), la)

    def test_failed_mtls_attempt_proves_nothing(self):
        """The endpoint presents another identity than its WorkloadEntry's
        service account: the handshake fails, and the expected SPIFFE ID
        is not reported as if it had been seen."""
        app = st.start_backend(self, "reviews", "v1")
        b = inbound_proxy(self, app.port, certs=True)
        a = outbound_proxy(self, outbound_config(b.inbound_port, {"app": "reviews-app", "version": "v1"},
                                                 sa="ratings", dr=DR), certs=True)
        r = st.request(a.outbound_port, "GET", "/r", host="reviews:9080")
        self.assertEqual(r.status, 503, r)
        la, _ = series(self, a, reporter="source", destination_service=FQDN)
        self.assertEqual((la["source_principal"], la["destination_principal"]), ("unknown", "unknown"), la)
        self.assertEqual(app.requests(), 0)


class AppAndCluster(unittest.TestCase):

    def test_destination_app_is_the_app_label(self):
        app = st.start_backend(self, "reviews", "v1")
        # B: its own app label (not the service name) ...
        b = inbound_proxy(self, app.port, labels="app=reviews-app,version=v1")
        # ... and C, without labels: its service, as before.
        app2 = st.start_backend(self, "reviews", "v2")
        c = inbound_proxy(self, app2.port, labels=None)
        # ratings' endpoint has no app label: Istio says unknown.
        ratings = st.start_backend(self, "ratings", "v1")
        more = (st.service_yaml("ratings", selector={"tier": "backend"}) +
                st.workload_yaml("ratings-v1", ratings.port, {"tier": "backend", "version": "v1"}))
        a = outbound_proxy(self, outbound_config(b.inbound_port, {"app": "reviews-app", "version": "v1"},
                                                 more=more))
        self.assertEqual(st.request(a.outbound_port, "GET", "/", host="reviews:9080").status, 200)
        self.assertEqual(st.request(a.outbound_port, "GET", "/", host="ratings:9080").status, 200)
        self.assertEqual(st.request(c.inbound_port, "GET", "/", host="reviews:9080").status, 200)

        la, _ = series(self, a, reporter="source", destination_service=FQDN)
        self.assertEqual((la["destination_app"], la["destination_service_name"], la["source_app"]),
                         ("reviews-app", "reviews", "productpage-app"), la)
        la, _ = series(self, a, reporter="source", destination_service="ratings.default.svc.cluster.local")
        self.assertEqual((la["destination_app"], la["destination_version"]), ("unknown", "v1"), la)
        lb, _ = series(self, b, reporter="destination")
        self.assertEqual((lb["destination_app"], lb["destination_service_name"]), ("reviews-app", "reviews"), lb)
        lc, _ = series(self, c, reporter="destination")
        self.assertEqual(lc["destination_app"], "reviews", lc)

    def test_cluster_labels_name_the_mesh_cluster(self):
        app = st.start_backend(self, "reviews", "v1")
        b = inbound_proxy(self, app.port, certs=True)
        d = st.make_tempdir(self)
        log = os.path.join(d, "access.log")
        a = outbound_proxy(self, outbound_config(b.inbound_port, {"app": "reviews-app", "version": "v1"},
                                                 dr=DR), certs=True, access_log=log)
        self.assertEqual(st.request(a.outbound_port, "GET", "/c", host="reviews:9080").status, 200)
        self.assertEqual(st.request(a.outbound_port, "GET", "/nr", host="nosuch").status, 404)
        self.assertEqual(st.request(b.inbound_port, "GET", "/p", host="reviews:9080").status, 200)

        la, _ = series(self, a, reporter="source", destination_service=FQDN)
        self.assertEqual((la["source_cluster"], la["destination_cluster"]), (CLUSTER_ID, CLUSTER_ID), la)
        # No route: no endpoint, so no destination cluster either.
        la, _ = series(self, a, reporter="source", response_flags="no_route")
        self.assertEqual((la["source_cluster"], la["destination_cluster"]), (CLUSTER_ID, "unknown"), la)
        # Inbound: the client is of this mesh only when its certificate says so.
        lb, _ = series(self, b, reporter="destination", connection_security_policy="mutual_tls")
        self.assertEqual((lb["source_cluster"], lb["destination_cluster"]), (CLUSTER_ID, CLUSTER_ID), lb)
        lb, _ = series(self, b, reporter="destination", connection_security_policy="none")
        self.assertEqual((lb["source_cluster"], lb["destination_cluster"]), ("unknown", CLUSTER_ID), lb)
        # Envoy's cluster names stay out of the metrics ...
        for proxy in (a, b):
            for name, labels, _ in proxy.metrics():
                if name == "sinew_requests_total":
                    self.assertFalse([v for v in labels.values() if "bound|" in v], labels)
        # ... and are in the access log.
        by_path = {e["path"]: e for e in access_lines(self, log, 2)}
        self.assertEqual(by_path["/c"]["upstream_cluster"], "outbound|9080||" + FQDN)
        self.assertIsNone(by_path["/nr"]["upstream_cluster"])


VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-vs, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: direct
    match: [{uri: {prefix: /direct}}]
    directResponse: {status: 200, body: {string: "hello, world!"}}
  - name: abort
    match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: reviews}}]
  - route: [{destination: {host: reviews}}]
---
"""


class BytesSent(unittest.TestCase):

    def test_proxy_made_responses_count_their_body(self):
        app = st.start_backend(self, "reviews", "v1")
        d = st.make_tempdir(self)
        log = os.path.join(d, "access.log")
        a = outbound_proxy(self, st.registry_yaml({("reviews", "v1"): app.port}) + VS, access_log=log)
        direct = st.request(a.outbound_port, "GET", "/direct", host="reviews:9080")
        self.assertEqual((direct.status, direct.body), (200, b"hello, world!\n"))
        abort = st.request(a.outbound_port, "GET", "/abort", host="reviews:9080")
        self.assertEqual((abort.status, abort.header("sinew-error")), (418, "fault_abort"))
        noroute = st.request(a.outbound_port, "GET", "/nr", host="nosuch")
        self.assertEqual(noroute.status, 404)
        head = st.request(a.outbound_port, "HEAD", "/direct-head", host="reviews:9080")
        self.assertEqual((head.status, head.body), (200, b""))
        # HTTP/2: the answer goes through the HTTP/2 codec instead.
        cp = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "-", "--max-time", "10",
                             "-H", "Host: reviews:9080", "http://127.0.0.1:%d/direct-h2" % a.outbound_port],
                            capture_output=True, timeout=20)
        self.assertEqual((cp.returncode, cp.stdout), (0, b"hello, world!\n"), cp.stderr)

        by_path = {e["path"]: e for e in access_lines(self, log, 5)}
        self.assertEqual(by_path["/direct"]["bytes_sent"], 14)
        self.assertEqual(by_path["/direct"]["response_flags"], "direct_response")
        self.assertEqual(by_path["/abort"]["bytes_sent"], len(abort.body))
        self.assertGreater(len(abort.body), 0)
        self.assertEqual(by_path["/nr"]["bytes_sent"], len(noroute.body))
        self.assertEqual(by_path["/direct-head"]["bytes_sent"], 0)
        self.assertEqual(by_path["/direct-h2"]["protocol"], "HTTP/2")
        self.assertEqual(by_path["/direct-h2"]["bytes_sent"], 14)

        m = a.metrics()
        self.assertEqual(st.metric_sum(m, "sinew_response_bytes_sum", response_flags="direct_response"), 28)
        self.assertEqual(st.metric_sum(m, "sinew_response_bytes_count", response_flags="direct_response"), 3)
        self.assertEqual(st.metric_sum(m, "sinew_response_bytes_sum", response_flags="fault_abort"),
                         len(abort.body))


if __name__ == "__main__":
    st.main()
