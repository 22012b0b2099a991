#!/usr/bin/python3
"""What a proxy's identity is and when it runs out (issue 5 item 5): the
admin endpoint /identity (SPIFFE ID, chain, roots) checked field by field
against `openssl x509` on the files the proxy was given; the gauge
sinew_certificate_expiry_timestamp_seconds (one series per certificate,
equal to its notAfter, valid for promtool); `sinew identity` by admin
address and by proxy id; `sinew check` against sinewd and its proxies:
all well (exit 0) with a certificate sinewd issued, warnings (exit 1) for
a leaf expiring within 6 h (a 2 h leaf made with `openssl ca`), a proxy
without mTLS, a proxy not trusting sinewd's CA, an unreachable admin port
and a root expiring within 60 days, exit 2 when sinewd is unreachable."""

import calendar
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import SINEWD, Mesh, start_cp_proxy  # noqa: E402

SINEW = os.path.join(st.BIN, "sinew")
TD = "cluster.local"
RV_ID = "spiffe://%s/ns/default/sa/reviews" % TD
RT_ID = "spiffe://%s/ns/default/sa/ratings" % TD

LEAF_EXT = """[v3]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = URI:%s
"""

CA_EXT = """[v3]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
"""

# `openssl x509 -days` counts whole days; `openssl ca` takes exact dates.
CA_CNF = """[ca]
default_ca = ca_default
[ca_default]
dir = %(d)s
database = %(d)s/index.txt
new_certs_dir = %(d)s/newcerts
serial = %(d)s/serial
default_md = sha256
policy = policy_any
unique_subject = no
[policy_any]
organizationName = optional
commonName = optional
"""


def openssl(*args, data=None):
    p = subprocess.run(["openssl"] + list(args), input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    if p.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), p.stderr.decode(errors="replace")))
    return p.stdout.decode()


def asn1_time(t):
    return time.strftime("%y%m%d%H%M%SZ", time.gmtime(t))


class Certs:
    """A root (1 year), an intermediate (200 days) and, under it, reviews
    (1 day); ratings straight under the root, valid 2 hours. EC P-256."""

    def __init__(self, d):
        self.d = d
        self.root, rk = self.p("root.pem"), self.p("root.key")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", rk, "-out", self.root, "-subj", "/O=sinew/OU=%s/CN=test root" % TD, "-days", "365",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        self.inter, ik = self.p("inter.pem"), self.p("inter.key")
        self.write("inter.ext", CA_EXT)
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", ik,
                "-out", self.p("inter.csr"), "-subj", "/O=sinew/OU=%s/CN=test intermediate" % TD)
        openssl("x509", "-req", "-in", self.p("inter.csr"), "-CA", self.root, "-CAkey", rk, "-CAcreateserial",
                "-days", "200", "-extfile", self.p("inter.ext"), "-extensions", "v3", "-out", self.inter)
        # reviews: leaf + intermediate in its --tls-cert file
        self.rv_leaf, self.rv_key = self.p("reviews-leaf.pem"), self.p("reviews.key")
        self.write("reviews.ext", LEAF_EXT % RV_ID)
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", self.rv_key, "-out", self.p("reviews.csr"), "-subj", "/O=sinew/CN=reviews")
        openssl("x509", "-req", "-in", self.p("reviews.csr"), "-CA", self.inter, "-CAkey", ik, "-CAcreateserial",
                "-days", "1", "-extfile", self.p("reviews.ext"), "-extensions", "v3", "-out", self.rv_leaf)
        self.rv_chain = self.write("reviews-chain.pem", self.read(self.rv_leaf) + self.read(self.inter))
        # ratings: 2 hours, with openssl ca
        os.mkdir(self.p("newcerts"))
        self.write("index.txt", "")
        self.write("serial", "1000\n")
        self.write("ca.cnf", CA_CNF % {"d": d})
        self.write("ratings.ext", LEAF_EXT % RT_ID)
        self.rt_leaf, self.rt_key = self.p("ratings.pem"), self.p("ratings.key")
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", self.rt_key, "-out", self.p("ratings.csr"), "-subj", "/O=sinew")
        now = time.time()
        openssl("ca", "-batch", "-config", self.p("ca.cnf"), "-cert", self.root, "-keyfile", rk,
                "-in", self.p("ratings.csr"), "-out", self.rt_leaf, "-notext", "-startdate", asn1_time(now - 60),
                "-enddate", asn1_time(now + 7200), "-extfile", self.p("ratings.ext"), "-extensions", "v3")

    def p(self, name):
        return os.path.join(self.d, name)

    def write(self, name, text):
        with open(self.p(name), "w") as f:
            f.write(text)
        return self.p(name)

    def read(self, path):
        with open(path) as f:
            return f.read()

    def reviews_args(self):
        return ["--tls-cert", self.rv_chain, "--tls-key", self.rv_key, "--tls-bundle", self.root,
                "--trust-domain", TD, "--service-account", "reviews"]

    def ratings_args(self):
        return ["--tls-cert", self.rt_leaf, "--tls-key", self.rt_key, "--tls-bundle", self.root,
                "--trust-domain", TD, "--service-account", "ratings"]


def x509(path, *what):
    return openssl("x509", "-in", path, "-noout", *what).strip()


def x509_fields(path):
    """What `openssl x509` says: the fields /identity reports."""
    def date(opt):
        v = x509(path, opt).split("=", 1)[1]
        return calendar.timegm(time.strptime(v, "%b %d %H:%M:%S %Y GMT"))
    return {
        "subject": x509(path, "-subject", "-nameopt", "compat").split("=", 1)[1],
        "issuer": x509(path, "-issuer", "-nameopt", "compat").split("=", 1)[1],
        "serial": x509(path, "-serial").split("=", 1)[1],
        "not_before": date("-startdate"),
        "not_after": date("-enddate"),
        "sha256": x509(path, "-fingerprint", "-sha256").split("=", 1)[1].replace(":", "").lower(),
        "pem": openssl("x509", "-in", path),
    }


def sinew(*args, env=None, timeout=30):
    e = dict(st.proxy_env())
    e.pop("SINEW_SERVER", None)
    e.update(env or {})
    p = subprocess.run([SINEW] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
                       timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def identity(proxy):
    status, headers, body = proxy.admin_get("/identity")
    if status != 200:
        raise AssertionError("/identity: %d %r" % (status, body[:300]))
    assert headers.get("content-type") == "application/json", headers
    return json.loads(body)


def expiry_series(proxy):
    """{(kind, spiffe_id or None, sha256 prefix): value} from /metrics."""
    out = {}
    for name, labels, value in proxy.metrics():
        if name == "sinew_certificate_expiry_timestamp_seconds":
            out[(labels["kind"], labels.get("spiffe_id"), labels["sha256"])] = value
    return out


CERTS = None


def setUpModule():
    global CERTS
    CERTS = Certs(tempfile.mkdtemp(prefix="sinew-ident-"))


def tearDownModule():
    if CERTS is not None:
        shutil.rmtree(CERTS.d, ignore_errors=True)


class Sinewd(Mesh):
    """Mesh's sinewd with extra flags. Proxies here reach sinewd without a
    join token (a plaintext control link, certificates from files): a
    sinewd whose mesh port takes mutual TLS only is given --mesh-plaintext
    for that."""

    def __init__(self, test, flags=()):
        h = subprocess.run([SINEWD, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        self.flags = (["--mesh-plaintext"] if b"--mesh-plaintext" in h.stdout else []) + list(flags)
        super().__init__(test)

    def start(self, wait=True):
        self.logf = open(self.log, "ab")
        self.p = st.spawn([SINEWD, "--data-dir", self.dir, "--api", "127.0.0.1:%d" % self.port,
                           "--mesh", self.mesh_addr, "--log-level", "info"] + self.flags,
                          stdout=self.logf, stderr=self.logf, env=st.proxy_env())
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


def file_proxy(test, tls_args=()):
    app = st.start_backend(test, "reviews", "v1")
    return st.start_proxy(test, st.registry_yaml({("reviews", "v1"): app.port}), outbound=False, inbound=True,
                          app="127.0.0.1:%d" % app.port,
                          args=["--service", "reviews", "--labels", "app=reviews,version=v1"] + list(tls_args))


class ProxyIdentity(unittest.TestCase):

    def test_identity_endpoint_gauge_and_cli(self):
        p = file_proxy(self, CERTS.reviews_args())
        doc = identity(p)
        self.assertIs(doc["mtls"], True)
        self.assertEqual(doc["spiffe_id"], RV_ID)
        self.assertEqual(doc["trust_domain"], TD)
        self.assertEqual(doc["generation"], 0)
        # the chain, field by field, as openssl reads the same files
        self.assertEqual(len(doc["chain"]), 2, doc)
        for got, path, kind in ((doc["chain"][0], CERTS.rv_leaf, "leaf"),
                                (doc["chain"][1], CERTS.inter, "intermediate")):
            want = x509_fields(path)
            self.assertEqual(got["kind"], kind)
            for k in ("subject", "issuer", "serial", "not_before", "not_after", "sha256", "pem"):
                self.assertEqual(got[k], want[k], (kind, k))
        self.assertEqual(doc["chain"][0]["issuer"], doc["chain"][1]["subject"])
        self.assertEqual(len(doc["roots"]), 1)
        want = x509_fields(CERTS.root)
        for k in ("subject", "not_after", "sha256"):
            self.assertEqual(doc["roots"][0][k], want[k], k)
        status, _, body = p.admin_get("/identity")
        self.assertNotIn(b"PRIVATE KEY", body)

        # the gauge: one series per certificate, value notAfter
        series = expiry_series(p)
        leaf, inter, root = (x509_fields(f) for f in (CERTS.rv_leaf, CERTS.inter, CERTS.root))
        self.assertEqual(series, {
            ("leaf", RV_ID, leaf["sha256"][:16]): leaf["not_after"],
            ("intermediate", None, inter["sha256"][:16]): inter["not_after"],
            ("root", None, root["sha256"][:16]): root["not_after"],
        })
        if shutil.which("promtool"):
            _, _, text = p.admin_get("/metrics")
            r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30)
            findings = [l for l in (r.stdout + r.stderr).decode().splitlines()
                        if l.strip() and "use base unit \"seconds\" instead of \"milliseconds\"" not in l]
            self.assertEqual(findings, [], text.decode()[-2000:])

        # sinew identity ADDR:PORT
        admin = "127.0.0.1:%d" % p.admin_port
        rc, out, err = sinew("identity", admin)
        self.assertEqual(rc, 0, err)
        self.assertIn("SPIFFE ID:     " + RV_ID, out)
        self.assertIn("Leaf:", out)
        self.assertIn("Intermediate 1:", out)
        self.assertIn("Subject:     /O=sinew/OU=cluster.local/CN=test intermediate", out)
        self.assertIn("SHA-256:     " + leaf["sha256"], out)
        self.assertIn("Serial:      " + leaf["serial"], out)
        self.assertIn("Roots (trusted, 1):", out)
        self.assertEqual(err, "")   # 1-day leaf, 200-day intermediate, 1-year root: no warning
        rc, out, err = sinew("identity", "--admin", admin, "--pem")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, leaf["pem"] + inter["pem"])
        rc, out, err = sinew("identity", admin, "-o", "json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["chain"][0]["sha256"], leaf["sha256"])

    def test_without_mtls(self):
        p = file_proxy(self)
        self.assertEqual(identity(p), {"mtls": False})
        self.assertEqual(expiry_series(p), {})
        _, _, text = p.admin_get("/metrics")
        self.assertIn(b"# TYPE sinew_certificate_expiry_timestamp_seconds gauge\n", text)
        rc, out, err = sinew("identity", "127.0.0.1:%d" % p.admin_port)
        self.assertEqual(rc, 1)
        self.assertIn("runs without mTLS", err)
        self.assertEqual(out, "")

    def test_cli_errors(self):
        closed = st.closed_port()
        rc, out, err = sinew("identity", "127.0.0.1:%d" % closed)
        self.assertEqual(rc, 1)
        self.assertIn("cannot reach the proxy's admin port at http://127.0.0.1:%d" % closed, err)
        rc, out, err = sinew("identity", "reviews", "--server", "http://127.0.0.1:%d" % closed)
        self.assertEqual(rc, 1)
        self.assertIn("cannot reach sinewd", err)
        for args in ([], ["a", "b"], ["x", "-o", "yaml"], ["x", "-o", "json", "--pem"]):
            rc, out, err = sinew("identity", *args)
            self.assertEqual(rc, 2, args)
            self.assertTrue(err.strip(), args)
        rc, out, err = sinew("identity", "--help")
        self.assertEqual(rc, 0)
        self.assertIn("usage: sinew identity", out)
        rc, out, err = sinew("check", "--bogus")
        self.assertEqual(rc, 2)
        rc, out, err = sinew("completion", "bash")
        self.assertIn("identity) flags=\"--admin", out)
        self.assertIn("check) flags=\"--server", out)


class Check(unittest.TestCase):

    def sinewd_certificate(self, mesh, sa):
        """A key, and the chain and bundle sinewd issues for it with a join token."""
        w = st.make_tempdir(self, "sinew-ident-")
        key = os.path.join(w, "key.pem")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
        csr = openssl("req", "-new", "-key", key, "-subj", "/CN=workload")
        status, tok = mesh.call("POST", "/api/v1/tokens", json.dumps({"serviceAccount": sa}))
        self.assertEqual(status, 200, tok)
        status, r = mesh.call("POST", "/api/v1/certificates", json.dumps({"token": tok["token"], "csr": csr}))
        self.assertEqual(status, 200, r)
        chain = os.path.join(w, "chain.pem")
        bundle = os.path.join(w, "bundle.pem")
        with open(chain, "w") as f:
            f.write(r["certificate"] + r["chain"])
        with open(bundle, "w") as f:
            f.write(r["bundle"])
        return ["--tls-cert", chain, "--tls-key", key, "--tls-bundle", bundle, "--trust-domain", TD,
                "--service-account", sa]

    def check(self, mesh):
        return sinew("check", "--server", "127.0.0.1:%d" % mesh.port)

    def wait_proxies(self, mesh, n):
        mesh.wait_proxies(lambda ps: len(ps) == n, 15, "%d proxies" % n)
        return {p["service"]: p for p in mesh.proxies()}

    def test_check(self):
        rc, out, err = sinew("check", "--server", "http://127.0.0.1:%d" % st.closed_port())
        self.assertEqual(rc, 2, out + err)
        self.assertIn("[fail] sinewd is reachable at", out)
        self.assertIn("connection refused", out)

        mesh = Sinewd(self)
        rc, out, err = self.check(mesh)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("[ok] sinewd is reachable at http://127.0.0.1:%d and ready" % mesh.port, out)
        self.assertRegex(out, r"\[ok\] root [0-9a-f]{16} is valid for at least 60 days")
        self.assertIn("[ok] 0 proxies are connected to sinewd", out)
        self.assertRegex(out, r"Status: all \d+ checks passed")
        self.assertNotIn("\u2714", out)   # not a terminal: plain ASCII

        # A proxy with a certificate sinewd issued: all well.
        rv = start_cp_proxy(self, mesh, outbound=True, args=["--service", "reviews"] +
                            self.sinewd_certificate(mesh, "reviews"))
        pid = self.wait_proxies(mesh, 1)["reviews"]["id"]
        rc, out, err = self.check(mesh)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("[ok] proxy %s serves mTLS as %s" % (pid, RV_ID), out)
        self.assertIn("[ok] proxy %s: leaf is valid for at least 6 hours" % pid, out)
        self.assertIn("[ok] proxy %s trusts sinewd's CA" % pid, out)
        # sinew identity by (a prefix of) the proxy's id, through sinewd
        rc, out, err = sinew("identity", pid[:9], "--server", "http://127.0.0.1:%d" % mesh.port)
        self.assertEqual(rc, 0, err)
        self.assertIn("Proxy:         %s (admin 127.0.0.1:%d)" % (pid, rv.admin_port), out)
        self.assertIn("SPIFFE ID:     " + RV_ID, out)
        self.assertIn("Subject:     (empty)", out)   # sinewd's SVIDs have an empty subject
        self.assertEqual(sinew("identity", "nobody", "--server", "http://127.0.0.1:%d" % mesh.port)[0], 1)

        # A 2-hour leaf from another root, and a proxy without mTLS.
        rt = start_cp_proxy(self, mesh, outbound=True, args=["--service", "ratings"] + CERTS.ratings_args())
        pp = start_cp_proxy(self, mesh, outbound=True, args=["--service", "productpage"])
        ids = {k: v["id"] for k, v in self.wait_proxies(mesh, 3).items()}
        rc, out, err = self.check(mesh)
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(out, r"\[warn\] proxy %s: leaf expires in (\d+h|\d+m) \(.*\), within 6 hours"
                         % re.escape(ids["ratings"]))
        self.assertIn("[warn] proxy %s does not trust sinewd's CA" % ids["ratings"], out)
        self.assertIn("[warn] proxy %s runs without mTLS" % ids["productpage"], out)
        self.assertIn("[ok] proxy %s trusts sinewd's CA" % ids["reviews"], out)
        self.assertRegex(out, r"Status: 3 warnings, \d+ of \d+ checks passed")
        rc, out, err = sinew("identity", ids["productpage"], "--server", "http://127.0.0.1:%d" % mesh.port)
        self.assertEqual(rc, 1)
        self.assertIn("proxy %s runs without mTLS" % ids["productpage"], err)
        rc, out, err = sinew("identity", ids["ratings"], "--server", "http://127.0.0.1:%d" % mesh.port)
        self.assertEqual(rc, 0, err)
        self.assertRegex(err, r"warning: leaf [0-9a-f]{64} expires in .*, within 6 hours")

        # A proxy whose admin port stops answering (SIGSTOP: still registered).
        rt.proc.send_signal(19)
        self.addCleanup(lambda: rt.proc.send_signal(18))
        rc, out, err = self.check(mesh)
        rt.proc.send_signal(18)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("[warn] proxy %s: admin port 127.0.0.1:%d is unreachable" % (ids["ratings"], rt.admin_port),
                      out)

    def test_root_expiring_within_60_days(self):
        w = st.make_tempdir(self, "sinew-ident-")
        root, key = os.path.join(w, "root.pem"), os.path.join(w, "root.key")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                "-out", root, "-subj", "/O=sinew/OU=%s/CN=short root" % TD, "-days", "30",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        mesh = Sinewd(self, ["--ca-cert", root, "--ca-key", key])
        rc, out, err = self.check(mesh)
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(out, r"\[warn\] root [0-9a-f]{16} expires in (29|30)d \(.*\), within 60 days")
        self.assertIn("rotate it before then", out)
        self.assertIn("Status: 1 warning,", out)


if __name__ == "__main__":
    st.main()
