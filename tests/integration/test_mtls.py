"""Mutual TLS between two sinew-proxies in file mode (DESIGN.md §2, §5;
docs/internals/tls.md): --tls-cert/--tls-key/--tls-bundle, SVIDs made
with the openssl CLI. Proxy A (productpage, outbound) reaches backend
reviews through proxy B (reviews, inbound) because of a DestinationRule
tls ISTIO_MUTUAL; B sees A's SPIFFE ID (metrics, AuthorizationPolicy);
B's inbound tells TLS from plaintext by the first byte and refuses
plaintext under PeerAuthentication STRICT; a client without a
certificate or speaking TLS 1.2 is refused; an endpoint presenting
another identity than its WorkloadEntry's serviceAccount fails the
attempt (503 upstream_connect_failure naming both IDs)."""

import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

import unittest  # noqa: E402

TD = "cluster.local"
PP_ID = "spiffe://%s/ns/default/sa/productpage" % TD
RV_ID = "spiffe://%s/ns/default/sa/reviews" % TD
RT_ID = "spiffe://%s/ns/default/sa/ratings" % TD

DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
---
"""

STRICT = """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
---
"""

ONLY_PP = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: only-productpage, namespace: default}
spec:
  selector:
    matchLabels: {app: reviews}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/productpage"]
---
"""

LEAF_EXT = """[v3]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = URI:%s
"""


def openssl(*args, data=None, timeout=20):
    return subprocess.run(["openssl"] + list(args), input=data, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=timeout)


def check(res):
    if res.returncode != 0:
        raise AssertionError("openssl failed: %s" % res.stderr.decode(errors="replace"))
    return res


class Certs:
    """A root and two SVIDs (EC P-256) under d."""

    def __init__(self, d):
        self.d = d
        self.root = os.path.join(d, "root.pem")
        rk = os.path.join(d, "root.key")
        check(openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", rk, "-out", self.root, "-subj", "/O=sinew/OU=%s/CN=test root" % TD,
                      "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign"))
        self.ids = {}
        for sa in ("productpage", "reviews"):
            key = os.path.join(d, sa + ".key")
            csr = os.path.join(d, sa + ".csr")
            crt = os.path.join(d, sa + ".pem")
            ext = os.path.join(d, sa + ".ext")
            with open(ext, "w") as f:
                f.write(LEAF_EXT % ("spiffe://%s/ns/default/sa/%s" % (TD, sa)))
            check(openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                          "-keyout", key, "-out", csr, "-subj", "/O=sinew"))
            check(openssl("x509", "-req", "-in", csr, "-CA", self.root, "-CAkey", rk, "-CAcreateserial",
                          "-days", "1", "-extfile", ext, "-extensions", "v3", "-out", crt))
            self.ids[sa] = (crt, key)

    def args(self, sa):
        crt, key = self.ids[sa]
        return ["--tls-cert", crt, "--tls-key", key, "--tls-bundle", self.root, "--trust-domain", TD]


CERTS = None


def setUpModule():
    global CERTS
    d = tempfile.mkdtemp(prefix="sinew-mtls-")
    CERTS = Certs(d)


def tearDownModule():
    if CERTS is not None:
        shutil.rmtree(CERTS.d, ignore_errors=True)


def b_config(app_port, extra=""):
    return st.registry_yaml({("reviews", "v1"): app_port}) + extra


def a_config(b_port, sa="reviews"):
    return (st.service_yaml("reviews") +
            st.workload_yaml("reviews-v1", b_port, {"app": "reviews", "version": "v1"}, service_account=sa) +
            DR)


def start_pair(test, b_extra="", a_sa="reviews"):
    app = st.start_backend(test, "reviews", "v1")
    b = st.start_proxy(test, b_config(app.port, b_extra), outbound=False, inbound=True,
                       app="127.0.0.1:%d" % app.port,
                       args=["--service", "reviews", "--labels", "app=reviews,version=v1",
                             "--service-account", "reviews"] + CERTS.args("reviews"))
    a = st.start_proxy(test, a_config(b.inbound_port, a_sa),
                       args=["--service", "productpage", "--service-account", "productpage"] +
                       CERTS.args("productpage"))
    return app, a, b


def plaintext(port):
    """A plaintext request to port: a Resp, or None if the connection was refused/closed."""
    try:
        return st.request(port, "GET", "/", host="reviews:9080", timeout=5.0)
    except (OSError, Exception):  # http.client.RemoteDisconnected, ConnectionResetError...
        return None


def s_client(port, *extra):
    req = b"GET / HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n"
    res = openssl("s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", CERTS.root, "-ign_eof",
                  *extra, data=req)
    return res.stdout.decode(errors="replace") + res.stderr.decode(errors="replace")


class MTLS(unittest.TestCase):

    def test_neither_tls_nor_http_is_refused_at_once(self):
        """An SSLv2 hello (first byte 0x80) on a PERMISSIVE inbound port is
        closed at once, not held until the request-header timeout."""
        import socket
        import time
        app, a, b = start_pair(self)
        c = socket.create_connection(("127.0.0.1", b.inbound_port), timeout=5)
        t0 = time.time()
        c.sendall(bytes.fromhex("802e0100020015000000100100800700c0030080060040020080040080"))
        try:
            data = c.recv(100)   # closed (FIN, or RST: unread bytes)
        except ConnectionResetError:
            data = b""
        took = time.time() - t0
        c.close()
        self.assertEqual(data, b"")
        self.assertLess(took, 1.0)
        self.assertIn("is neither TLS nor HTTP/1", b.stderr())
        self.assertEqual(app.counts()["requests"], 0)

    def test_large_bodies_both_ways_over_mtls(self):
        """Bodies larger than a TLS record, up and down, intact (the TLS
        layer coalesces a head and a small body into one record)."""
        import hashlib
        app, a, b = start_pair(self)
        for size in (10, 16000, 16384, 70000, 3 * 1024 * 1024 + 7):
            r = st.request(a.outbound_port, "GET", "/big?size=%d" % size, host="reviews:9080", timeout=30)
            self.assertEqual((r.status, len(r.body)), (200, size))
            self.assertEqual(r.body, (b"0123456789abcdef" * (size // 16 + 1))[:size])
            body = os.urandom(size)
            r = st.request(a.outbound_port, "POST", "/up", host="reviews:9080", body=body, timeout=30)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["body_sha256"], hashlib.sha256(body).hexdigest())
        m = b.metrics()
        self.assertEqual(st.metric_sum(m, "sinew_requests_total", reporter="destination",
                                       connection_security_policy="mutual_tls"), 10)

    def test_requests_over_mtls(self):
        app, a, b = start_pair(self)
        for _ in range(3):
            r = st.request(a.outbound_port, "GET", "/reviews/1", host="reviews:9080")
            self.assertEqual(r.status, 200, r)
            self.assertIsNone(r.header("sinew-error"), r)
        self.assertEqual(app.requests(), 3)
        m = b.metrics()
        self.assertEqual(st.metric_sum(m, "sinew_requests_total", reporter="destination",
                                       connection_security_policy="mutual_tls",
                                       source_principal=PP_ID), 3, b.stderr()[-3000:])
        # Plaintext under the default (PERMISSIVE) still works, labelled "none".
        r = plaintext(b.inbound_port)
        self.assertIsNotNone(r)
        self.assertEqual(r.status, 200, r)
        m = b.metrics()
        self.assertEqual(st.metric_sum(m, "sinew_requests_total", reporter="destination",
                                       connection_security_policy="none"), 1)

    def test_s_client(self):
        app, a, b = start_pair(self)
        # With productpage's certificate: served.
        crt, key = CERTS.ids["productpage"]
        out = s_client(b.inbound_port, "-cert", crt, "-key", key)
        self.assertIn("HTTP/1.1 200", out, out[-3000:])
        before = app.requests()
        # Without a client certificate: refused.
        out = s_client(b.inbound_port)
        self.assertNotIn("HTTP/1.1 200", out, out[-3000:])
        # TLS 1.2: refused at the handshake.
        out = s_client(b.inbound_port, "-tls1_2", "-cert", crt, "-key", key)
        self.assertNotIn("HTTP/1.1 200", out, out[-3000:])
        self.assertNotIn("TLSv1.2, Cipher is", out)
        self.assertEqual(app.requests(), before)
        self.assertTrue(b.alive())

    def test_strict_refuses_plaintext_after_reload(self):
        app, a, b = start_pair(self)
        r = plaintext(b.inbound_port)
        self.assertIsNotNone(r)
        self.assertEqual(r.status, 200, r)
        st.write_file(b.config_path, b_config(app.port, STRICT))
        deadline = time.time() + 10
        refused = False
        while time.time() < deadline:
            if plaintext(b.inbound_port) is None:
                refused = True
                break
            time.sleep(0.1)
        self.assertTrue(refused, b.stderr()[-3000:])
        self.assertIn("plaintext refused: PeerAuthentication STRICT", b.stderr())
        # mTLS goes on.
        r = st.request(a.outbound_port, "GET", "/", host="reviews:9080")
        self.assertEqual(r.status, 200, r)

    def test_wrong_identity_is_connect_failure(self):
        app, a, b = start_pair(self, a_sa="ratings")
        r = st.request(a.outbound_port, "GET", "/", host="reviews:9080")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.header("sinew-error"), "upstream_connect_failure", r)
        body = r.body.decode()
        self.assertIn(RV_ID, body)
        self.assertIn(RT_ID, body)
        self.assertEqual(app.requests(), 0)

    def test_authz_by_principal(self):
        app, a, b = start_pair(self, b_extra=ONLY_PP)
        r = st.request(a.outbound_port, "GET", "/", host="reviews:9080")
        self.assertEqual(r.status, 200, r)
        r = plaintext(b.inbound_port)
        self.assertIsNotNone(r)
        self.assertEqual((r.status, r.header("sinew-error")), (403, "rbac_denied"), r)
        self.assertEqual(app.requests(), 1)


if __name__ == "__main__":
    st.main()
