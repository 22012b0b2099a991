#!/usr/bin/python3
"""sinewd's CA through its API, checked with the openssl CLI: a join token
(POST /api/v1/tokens, `sinew token create`) buys one X.509-SVID for exactly
its identity (POST /api/v1/certificates) that `openssl verify` accepts
against the bundle; tokens are single use (also across a SIGKILL and
restart, which keeps the root), expire, and refuse tampering, another
trust domain and another root; a bad CSR is a 400 that does not spend the
token; renewal with the current SVID and a signature by its key works and
refuses a forged signature, a foreign leaf and another identity; a
user-provided root + intermediate; GET /api/v1/ca and `sinew ca`."""

import base64
import json
import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh, SINEWD  # noqa: E402

SINEW = os.path.join(st.BIN, "sinew")
RENEW_CONTEXT = b"sinew SVID renewal v1\0"


class CaMesh(Mesh):
    """Mesh with extra sinewd flags (--trust-domain, --ca-cert, --ca-key)."""

    def __init__(self, test, data_dir=None, extra=(), start=True):
        super().__init__(test, data_dir=data_dir, start=start, extra=extra)

    def post(self, path, obj):
        return self.call("POST", path, json.dumps(obj))

    def token(self, sa="reviews", ns=None, ttl=None):
        body = {"serviceAccount": sa}
        if ns is not None:
            body["namespace"] = ns
        if ttl is not None:
            body["ttl"] = ttl
        status, r = self.post("/api/v1/tokens", body)
        if status != 200:
            raise AssertionError("POST /api/v1/tokens: %s %s" % (status, r))
        return r["token"]

    def ca(self):
        status, r = self.call("GET", "/api/v1/ca")
        if status != 200:
            raise AssertionError("GET /api/v1/ca: %s %s" % (status, r))
        return r


def openssl(*args, data=None, check=True):
    p = subprocess.run(["openssl"] + list(args), input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    if check and p.returncode != 0:
        raise AssertionError("openssl %s: %s %s" % (" ".join(args), p.stdout, p.stderr))
    return p


class Work:
    """Key, CSR and certificate files in a temp dir."""

    def __init__(self, test):
        self.dir = st.make_tempdir(test, "sinew-ca-")
        self.n = 0

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, data):
        with open(self.path(name), "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return self.path(name)

    def read(self, name):
        with open(self.path(name)) as f:
            return f.read()

    def key(self, kind="ec"):
        self.n += 1
        name = "key%d.pem" % self.n
        if kind == "ec":
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", self.path(name))
        elif kind == "p384":
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384", "-out", self.path(name))
        else:
            openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", self.path(name))
        return self.path(name)

    def csr(self, key, san=None):
        self.n += 1
        name = "req%d.csr" % self.n
        args = ["req", "-new", "-key", key, "-subj", "/CN=workload", "-out", self.path(name)]
        if san:
            args += ["-addext", "subjectAltName=URI:" + san]
        openssl(*args)
        return self.read(name)


def csr_der(csr_pem):
    b64 = "".join(l for l in csr_pem.splitlines() if l and not l.startswith("-----"))
    return base64.b64decode(b64)


def renew_signature(w, key, csr_pem):
    msg = w.write("renew-msg.bin", RENEW_CONTEXT + csr_der(csr_pem))
    openssl("dgst", "-sha256", "-sign", key, "-out", w.path("renew-sig.bin"), msg)
    with open(w.path("renew-sig.bin"), "rb") as f:
        return base64.b64encode(f.read()).decode()


def pubkey_of(w, path, is_cert):
    if is_cert:
        return openssl("x509", "-in", path, "-noout", "-pubkey").stdout
    return openssl("pkey", "-in", path, "-pubout").stdout


class CaTest(unittest.TestCase):
    def issue(self, mesh, token, csr):
        return mesh.post("/api/v1/certificates", {"token": token, "csr": csr})

    def check_svid(self, w, r, spiffe_id, tag="leaf"):
        """openssl verify against the bundle, and the X.509-SVID fields."""
        leaf = w.write(tag + ".pem", r["certificate"])
        bundle = w.write(tag + "-bundle.pem", r["bundle"])
        args = ["verify", "-CAfile", bundle]
        if r["chain"].strip():
            args += ["-untrusted", w.write(tag + "-chain.pem", r["chain"])]
        v = openssl(*(args + [leaf]), check=False)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn(b": OK", v.stdout)
        text = openssl("x509", "-in", leaf, "-noout", "-text").stdout.decode()
        self.assertEqual(re.findall(r"URI:(\S+?)(?:,|\s|$)", text), [spiffe_id], text)
        self.assertNotIn("DNS:", text)
        self.assertRegex(text, r"X509v3 Basic Constraints: critical\s+CA:FALSE")
        self.assertRegex(text, r"X509v3 Extended Key Usage:\s+TLS Web Server Authentication, "
                               r"TLS Web Client Authentication")
        self.assertRegex(text, r"X509v3 Key Usage: critical\s+Digital Signature\s")
        self.assertIn("ASN1 OID: prime256v1", text)
        self.assertEqual(r["spiffeId"], spiffe_id)
        life = r["notAfterUnix"] - time.time()
        self.assertTrue(23 * 3600 < life <= 24 * 3600 + 5, life)
        return leaf

    def test_token_issue_single_use_and_identity(self):
        mesh = CaMesh(self)
        w = Work(self)
        ca = mesh.ca()
        self.assertEqual(ca["trustDomain"], "cluster.local")
        self.assertEqual(len(ca["roots"]), 1)
        root = w.write("root.pem", ca["roots"][0]["pem"])
        fp = openssl("x509", "-in", root, "-noout", "-fingerprint", "-sha256").stdout.decode()
        self.assertEqual(fp.strip().split("=", 1)[1].replace(":", "").lower(), ca["roots"][0]["sha256"])
        self.assertEqual(ca["bundle"].strip(), ca["roots"][0]["pem"].strip())
        self.assertGreater(ca["roots"][0]["expiresInSeconds"], 364 * 86400)

        tok = mesh.token("reviews", ns="bookinfo")
        self.assertRegex(tok, r"^sn1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
        key = w.key()
        # the CSR asks for another identity; the token's is what it gets
        csr = w.csr(key, san="spiffe://cluster.local/ns/kube-system/sa/admin")
        status, r = self.issue(mesh, tok, csr)
        self.assertEqual(status, 200, r)
        leaf = self.check_svid(w, r, "spiffe://cluster.local/ns/bookinfo/sa/reviews")
        self.assertEqual(pubkey_of(w, leaf, True), pubkey_of(w, key, False))
        self.assertEqual(r["chain"], "")

        # single use
        status, r2 = self.issue(mesh, tok, w.csr(w.key()))
        self.assertEqual(status, 401, r2)
        self.assertIn("already used", r2["error"])
        # the default namespace
        status, r3 = self.issue(mesh, mesh.token("ratings"), csr)
        self.assertEqual(status, 200, r3)
        self.assertEqual(r3["spiffeId"], "spiffe://cluster.local/ns/default/sa/ratings")

        log = mesh.read_log()
        self.assertNotIn(tok, log)
        self.assertNotIn(tok.split(".")[2], log)
        self.assertNotIn("PRIVATE KEY", log)
        nonce = json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "==").decode()
                           .replace(";", '","').replace("=", '":"').join(['{"', '"}']))["nonce"]
        self.assertIn("nonce=" + nonce, log)

    def test_token_requests_refused(self):
        mesh = CaMesh(self)
        for body, status, what in [
                ({}, 400, "serviceAccount is required"),
                ({"serviceAccount": "a/b"}, 400, "SPIFFE ID"),
                ({"serviceAccount": "r", "ttl": "25h"}, 400, "between 1s and 24h"),
                ({"serviceAccount": "r", "ttl": "0s"}, 400, "between 1s and 24h"),
                ({"serviceAccount": "r", "ttl": "abc"}, 400, "between 1s and 24h"),
                ({"serviceAccount": "r", "service_account": "x"}, 400, "unknown field"),
                ({"serviceAccount": ["r"]}, 400, "must be a string")]:
            s, r = mesh.post("/api/v1/tokens", body)
            self.assertEqual(s, status, (body, r))
            self.assertIn(what, r["error"])
        s, r = mesh.call("POST", "/api/v1/tokens", "not json {")
        self.assertEqual(s, 400, r)
        s, r = mesh.call("GET", "/api/v1/tokens")
        self.assertEqual(s, 405, r)
        # 24h is the bound, inclusive
        mesh.token("r", ttl="24h")
        mesh.token("r", ttl="1h30m")

    def test_expired_tampered_and_bad_csr(self):
        mesh = CaMesh(self)
        w = Work(self)
        csr = w.csr(w.key())
        short = mesh.token("reviews", ttl="1s")
        tok = mesh.token("reviews")
        # tampered: claims changed (another service account), MAC kept
        head, claims, mac = tok.split(".")
        raw = base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)).replace(b"sa=reviews", b"sa=admins")
        forged = ".".join([head, base64.urlsafe_b64encode(raw).decode().rstrip("="), mac])
        for t in (forged, tok[:-2] + ("AA" if not tok.endswith("AA") else "BB")):
            s, r = self.issue(mesh, t, csr)
            self.assertEqual(s, 401, r)
            self.assertIn("bad token signature", r["error"])
        s, r = self.issue(mesh, "sn1.garbage", csr)
        self.assertEqual(s, 401, r)
        s, r = mesh.post("/api/v1/certificates", {"csr": csr})
        self.assertEqual(s, 400, r)

        # bad CSRs: 400, and the token is not spent
        for bad in (w.csr(w.key("rsa")), w.csr(w.key("p384")), "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                    "-----END CERTIFICATE REQUEST-----\n", "hello", ""):
            s, r = self.issue(mesh, tok, bad)
            self.assertEqual(s, 400, (bad[:40], r))
            self.assertNotIn(tok, json.dumps(r))
        s, r = self.issue(mesh, tok, w.csr(w.key("rsa")))
        self.assertIn("P-256", r["error"])
        s, r = self.issue(mesh, tok, csr)
        self.assertEqual(s, 200, r)

        time.sleep(2.2)
        s, r = self.issue(mesh, short, csr)
        self.assertEqual(s, 401, r)
        self.assertIn("expired", r["error"])
        log = mesh.read_log()
        for t in (tok, short, forged):
            self.assertNotIn(t, log)

    def test_restart_keeps_root_and_spent_tokens(self):
        mesh = CaMesh(self)
        w = Work(self)
        fp = mesh.ca()["roots"][0]["sha256"]
        used = mesh.token("reviews")
        unused = mesh.token("ratings")
        csr = w.csr(w.key())
        s, r = self.issue(mesh, used, csr)
        self.assertEqual(s, 200, r)
        cadir = os.path.join(mesh.dir, "ca")
        for name in ("key.pem", "token.key", "used-nonces"):
            self.assertEqual(os.stat(os.path.join(cadir, name)).st_mode & 0o777, 0o600, name)
        self.assertEqual(os.stat(cadir).st_mode & 0o777, 0o700)
        mesh.kill9()
        mesh.start()
        self.assertEqual(mesh.ca()["roots"][0]["sha256"], fp)
        s, r = self.issue(mesh, used, csr)
        self.assertEqual(s, 401, r)
        self.assertIn("already used", r["error"])
        s, r = self.issue(mesh, unused, csr)
        self.assertEqual(s, 200, r)
        self.assertEqual(mesh.ca()["spentTokens"], 2)
        # and after a clean stop too
        mesh.stop()
        mesh.start()
        s, r = self.issue(mesh, unused, csr)
        self.assertEqual(s, 401, r)

        # the generated root serves one trust domain: another is refused at start
        mesh.stop()
        other = CaMesh(self, data_dir=mesh.dir, extra=["--trust-domain", "example.org"], start=False)
        other.start(wait=False)
        self.assertEqual(other.p.wait(15), 1)
        self.assertIn("serves trust domain cluster.local", other.read_log())
        other.p = None
        other.logf.close()

    def test_renewal(self):
        mesh = CaMesh(self)
        w = Work(self)
        k1 = w.key()
        s, r = self.issue(mesh, mesh.token("reviews"), w.csr(k1))
        self.assertEqual(s, 200, r)
        leaf1 = r["certificate"]
        s, other = self.issue(mesh, mesh.token("ratings"), w.csr(w.key()))
        self.assertEqual(s, 200, other)

        k2 = w.key()
        csr2 = w.csr(k2, san="spiffe://cluster.local/ns/default/sa/ratings")
        sig = renew_signature(w, k1, csr2)
        s, r2 = mesh.post("/api/v1/certificates", {"certificate": leaf1, "csr": csr2, "signature": sig})
        self.assertEqual(s, 200, r2)
        leaf2 = self.check_svid(w, r2, "spiffe://cluster.local/ns/default/sa/reviews", "renewed")
        self.assertEqual(pubkey_of(w, leaf2, True), pubkey_of(w, k2, False))
        # the renewed leaf renews in turn (with k2)
        k3 = w.key()
        csr3 = w.csr(k3)
        s, r3 = mesh.post("/api/v1/certificates", {"certificate": r2["certificate"], "csr": csr3,
                                                   "signature": renew_signature(w, k2, csr3),
                                                   "spiffeId": "spiffe://cluster.local/ns/default/sa/reviews"})
        self.assertEqual(s, 200, r3)

        # forged: signed with the new key, not the current certificate's
        s, r = mesh.post("/api/v1/certificates", {"certificate": leaf1, "csr": csr2,
                                                  "signature": renew_signature(w, k2, csr2)})
        self.assertEqual(s, 401, r)
        self.assertIn("does not verify", r["error"])
        # a signature over another CSR
        s, r = mesh.post("/api/v1/certificates", {"certificate": leaf1, "csr": csr3,
                                                  "signature": renew_signature(w, k1, csr2)})
        self.assertEqual(s, 401, r)
        # no signature; not base64
        s, r = mesh.post("/api/v1/certificates", {"certificate": leaf1, "csr": csr2})
        self.assertEqual(s, 401, r)
        self.assertIn("missing", r["error"])
        s, r = mesh.post("/api/v1/certificates", {"certificate": leaf1, "csr": csr2, "signature": "!!"})
        self.assertEqual(s, 401, r)
        # a leaf of another identity cannot renew this one
        s, r = mesh.post("/api/v1/certificates", {"certificate": leaf1, "csr": csr2, "signature": sig,
                                                  "spiffeId": other["spiffeId"]})
        self.assertEqual(s, 401, r)
        self.assertIn("renews only its own identity", r["error"])
        # a spiffeId that is not one (and would otherwise reach the log)
        s, r = mesh.post("/api/v1/certificates", {"certificate": leaf1, "csr": csr2, "signature": sig,
                                                  "spiffeId": "spiffe://cluster.local/x\ninjected"})
        self.assertEqual(s, 400, r)
        self.assertNotIn("injected", mesh.read_log())
        # a leaf for the same identity from another CA (another sinewd)
        foreign = CaMesh(self)
        kf = w.key()
        s, rf = self.issue(foreign, foreign.token("reviews"), w.csr(kf))
        self.assertEqual(s, 200, rf)
        s, r = mesh.post("/api/v1/certificates", {"certificate": rf["certificate"], "csr": csr2,
                                                  "signature": renew_signature(w, kf, csr2)})
        self.assertEqual(s, 401, r)
        self.assertIn("untrusted", r["error"])
        # a self-signed look-alike with the right SPIFFE ID
        ss = w.path("selfsigned.pem")
        openssl("req", "-x509", "-new", "-key", kf, "-subj", "/", "-days", "1", "-addext",
                "subjectAltName=critical,URI:spiffe://cluster.local/ns/default/sa/reviews", "-addext",
                "basicConstraints=critical,CA:FALSE", "-out", ss)
        s, r = mesh.post("/api/v1/certificates", {"certificate": w.read("selfsigned.pem"), "csr": csr2,
                                                  "signature": renew_signature(w, kf, csr2)})
        self.assertEqual(s, 401, r)
        # both token and certificate: 400
        s, r = mesh.post("/api/v1/certificates", {"certificate": leaf1, "token": mesh.token("x"), "csr": csr2,
                                                  "signature": sig})
        self.assertEqual(s, 400, r)

    def test_user_ca_with_intermediate_and_wrong_trust_domain(self):
        w = Work(self)
        rk, ik = w.key(), w.key()
        root = w.path("user-root.pem")
        openssl("req", "-x509", "-new", "-key", rk, "-subj", "/O=test/CN=user root", "-days", "30",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-out", root)
        openssl("req", "-new", "-key", ik, "-subj", "/O=test/CN=user intermediate", "-out", w.path("int.csr"))
        ext = w.write("int.ext", "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,"
                                 "cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
        openssl("x509", "-req", "-in", w.path("int.csr"), "-CA", root, "-CAkey", rk, "-CAcreateserial",
                "-days", "20", "-extfile", ext, "-out", w.path("int.pem"))
        chain = w.write("user-chain.pem", w.read("int.pem") + w.read("user-root.pem"))

        # a data dir whose generated CA minted a token, then the user's CA
        mesh = CaMesh(self)
        old_tok = mesh.token("reviews")
        mesh.stop()
        mesh = CaMesh(self, data_dir=mesh.dir, extra=["--trust-domain", "example.org", "--ca-cert", chain,
                                                      "--ca-key", ik])
        ca = mesh.ca()
        self.assertEqual(ca["trustDomain"], "example.org")
        self.assertEqual(ca["source"], "provided")
        self.assertIn("user intermediate", ca["issuer"]["subject"])
        csr = w.csr(w.key())
        s, r = self.issue(mesh, old_tok, csr)
        self.assertEqual(s, 401, r)
        self.assertIn("wrong trust domain", r["error"])
        s, r = self.issue(mesh, mesh.token("reviews", ns="shop"), csr)
        self.assertEqual(s, 200, r)
        self.assertIn("user intermediate", openssl("x509", "-noout", "-subject", "-in",
                                                   w.write("ci.pem", r["chain"])).stdout.decode())
        self.check_svid(w, r, "spiffe://example.org/ns/shop/sa/reviews", "user")
        # the leaf does not outlive the intermediate
        self.assertLessEqual(r["notAfterUnix"], time.time() + 20 * 86400)

        # sinew ca warns: the root expires within 60 days
        env = dict(st.proxy_env(), SINEW_SERVER="http://127.0.0.1:%d" % mesh.port)
        p = subprocess.run([SINEW, "ca"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(ca["roots"][0]["sha256"], p.stdout.decode())
        self.assertIn("Trust domain:  example.org", p.stdout.decode())
        self.assertIn("within 60 days", p.stderr.decode())

        # another root under the same trust domain (and token secret): the
        # token's root pin no longer matches
        tok = mesh.token("reviews")
        mesh.stop()
        rk2 = w.key()
        root2 = w.path("user-root2.pem")
        openssl("req", "-x509", "-new", "-key", rk2, "-subj", "/O=test/CN=user root 2", "-days", "90",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-out", root2)
        mesh = CaMesh(self, data_dir=mesh.dir, extra=["--trust-domain", "example.org", "--ca-cert", root2,
                                                      "--ca-key", rk2])
        s, r = self.issue(mesh, tok, csr)
        self.assertEqual(s, 401, r)
        self.assertIn("not this CA's current root", r["error"])
        s, r = self.issue(mesh, mesh.token("reviews"), csr)
        self.assertEqual(s, 200, r)
        self.assertEqual(r["chain"], "")

    def test_cli_token_create_and_ca(self):
        mesh = CaMesh(self)
        w = Work(self)
        env = dict(st.proxy_env(), SINEW_SERVER="http://127.0.0.1:%d" % mesh.port)
        p = subprocess.run([SINEW, "token", "create", "--service-account", "reviews", "-n", "shop", "--ttl",
                            "10m"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertRegex(out, r"^sn1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$")
        self.assertEqual(p.stderr, b"")
        s, r = self.issue(mesh, out.strip(), w.csr(w.key()))
        self.assertEqual(s, 200, r)
        self.assertEqual(r["spiffeId"], "spiffe://cluster.local/ns/shop/sa/reviews")

        for args, code, err in [(["token", "create"], 2, "--service-account"),
                                (["token"], 2, "token create"),
                                (["token", "create", "--service-account", "r", "--ttl", "2d"], 2, "--ttl"),
                                (["token", "create", "--service-account", "a b"], 1, "SPIFFE ID")]:
            p = subprocess.run([SINEW] + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=30)
            self.assertEqual(p.returncode, code, (args, p.stderr))
            self.assertEqual(p.stdout, b"", args)
            self.assertIn(err, p.stderr.decode(), args)

        fp = mesh.ca()["roots"][0]["sha256"]
        p = subprocess.run([SINEW, "ca", "show"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(fp, p.stdout.decode())
        self.assertIn("Not after:", p.stdout.decode())
        self.assertEqual(p.stderr, b"")   # a 1-year root: no warning
        p = subprocess.run([SINEW, "ca", "-o", "pem"], env=env, stdout=subprocess.PIPE, timeout=30)
        self.assertEqual(p.stdout.decode(), mesh.ca()["bundle"])
        comp = subprocess.run([SINEW, "completion", "bash"], stdout=subprocess.PIPE, timeout=30).stdout.decode()
        self.assertIn("token) flags=\"--service-account", comp)
        self.assertIn("ca) flags=", comp)


if __name__ == "__main__":
    st.main()
