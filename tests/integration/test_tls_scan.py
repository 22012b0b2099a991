"""Issue 5's acceptance item for an inbound port's TLS, checked with the
tools an auditor would use (docs/internals/tls.md, "What is negotiated"):
`sslscan` and `testssl` (Debian packages sslscan, testssl.sh) see TLS 1.3
only and nothing but the three TLS 1.3 AEAD suites; `openssl s_client`
sees TLSv1.3 and a CertificateRequest naming the bundle's root, a client
without a certificate gets `certificate required`, a TLS 1.2 client gets
`protocol version` and a client offering only other TLS 1.3 suites gets
`handshake failure`. The proxy is in file mode with mTLS (test_mtls's
certificates and helpers) and PERMISSIVE, so the port also serves
plaintext; plaintext under PERMISSIVE and STRICT after a reload are in
test_mtls.py, a proxy started under STRICT is here.

The scanners' "not offered" is only worth something if they can see TLS
1.2 and CBC suites behind a server that requires a client certificate:
the control test points them at `openssl s_server` with TLS 1.2 enabled
and client certificates required, and checks that they do.

A missing tool fails the test (scripts/deps.sh installs them)."""

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
import test_mtls as mt  # noqa: E402

import unittest  # noqa: E402

OPENSSL = "/usr/bin/openssl"
TLS13_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
TLS13_HEX = {"x1301", "x1302", "x1303"}
WEAK = re.compile(r"NULL|EXP|RC4|RC2|DES|IDEA|CBC|anon|ADH|AECDH|MD5|CCM", re.I)
# A scan of the proxy takes ~20 s: 10 of them are testssl's SSLv2 probe, which
# the inbound listener takes for plaintext (first byte 0x80, not 0x16) and
# answers with a 408 when --request-header-timeout (10 s) runs out.
TESTSSL_TIMEOUT = 80
_runs = itertools.count()


def setUpModule():
    mt.setUpModule()  # test_mtls's root and SVIDs, in mt.CERTS


def tearDownModule():
    mt.tearDownModule()


def require_tool(name, package):
    path = shutil.which(name)
    if path is None:
        raise AssertionError("%s not installed (Debian package %s): run scripts/deps.sh or "
                             "apt-get install -y %s" % (name, package, package))
    return path


def sslscan(port, workdir):
    """Runs sslscan against 127.0.0.1:port. Returns (text output, parsed XML
    <ssltest> element)."""
    require_tool("sslscan", "sslscan")
    xml_path = os.path.join(workdir, "sslscan-%d.xml" % port)
    res = subprocess.run(["sslscan", "--no-colour", "--xml=" + xml_path, "127.0.0.1:%d" % port],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = res.stdout.decode(errors="replace")
    if res.returncode != 0 or not os.path.exists(xml_path):
        raise AssertionError("sslscan exited %d:\n%s" % (res.returncode, out[-3000:]))
    test = ET.parse(xml_path).getroot().find("ssltest")
    if test is None:
        raise AssertionError("sslscan wrote no <ssltest>:\n%s" % out[-3000:])
    return out, test


def sslscan_protocols(test):
    """{"SSLv2": False, ..., "TLSv1.3": True} from sslscan's XML."""
    names = {("ssl", "2"): "SSLv2", ("ssl", "3"): "SSLv3", ("tls", "1.0"): "TLSv1.0",
             ("tls", "1.1"): "TLSv1.1", ("tls", "1.2"): "TLSv1.2", ("tls", "1.3"): "TLSv1.3"}
    return {names.get((p.get("type"), p.get("version")), p.get("version")): p.get("enabled") == "1"
            for p in test.findall("protocol")}


def sslscan_lines(out):
    return [ln for ln in out.splitlines()
            if re.match(r"(SSLv\d|TLSv1\.\d)\s+(enabled|disabled)|(Preferred|Accepted) ", ln)]


def testssl(port, workdir, *checks, timeout=TESTSSL_TIMEOUT):
    """Runs testssl with the given checks against 127.0.0.1:port, no DNS.
    Returns ({id: finding}, text output, seconds)."""
    require_tool("testssl", "testssl.sh")
    json_path = os.path.join(workdir, "testssl-%d-%d.json" % (port, next(_runs)))
    argv = ["testssl", "--quiet", "--color", "0", "--warnings", "off", "--nodns", "none",
            "--openssl", OPENSSL, "--connect-timeout", "5", "--openssl-timeout", "5",
            "--jsonfile-pretty", json_path] + list(checks) + ["127.0.0.1:%d" % port]
    t0 = time.time()
    p = st.spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        raw, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        st.stop_process(p)  # testssl's whole group: its openssl and dd children too
        raise AssertionError("testssl did not finish in %d s: %s" % (timeout, " ".join(argv)))
    took = time.time() - t0
    out = raw.decode(errors="replace")
    try:
        with open(json_path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise AssertionError("testssl (exit %d) wrote no usable JSON (%s):\n%s"
                             % (p.returncode, e, out[-3000:]))
    found = {}
    for scan in doc.get("scanResult", []):
        for val in scan.values():
            if isinstance(val, list):
                for f in val:
                    if isinstance(f, dict) and "id" in f:
                        found[f["id"]] = f.get("finding", "")
    return found, out, took


def testssl_lines(out):
    return [ln.rstrip() for ln in out.splitlines()
            if re.match(r" (SSLv|TLS )| (NULL|Anonymous|Export|LOW|Triple|Obsolete|Strong)"
                        r"| x[0-9a-f]{4} ", ln)]


def expect_not_offered(test, found, ids, out):
    for i in ids:
        test.assertIn(i, found, "testssl reported nothing for %s:\n%s" % (i, out[-3000:]))
        test.assertEqual(found[i], "not offered", "%s: %r\n%s" % (i, found[i], out[-3000:]))


def start_inbound(test, extra=""):
    """A backend behind one proxy's mTLS inbound listener (PERMISSIVE unless
    extra says otherwise). Returns (backend, proxy)."""
    app = st.start_backend(test, "reviews", "v1")
    b = st.start_proxy(test, mt.b_config(app.port, extra), outbound=False, inbound=True,
                       app="127.0.0.1:%d" % app.port,
                       args=["--service", "reviews", "--labels", "app=reviews,version=v1",
                             "--service-account", "reviews"] + mt.CERTS.args("reviews"))
    return app, b


class TLSScan(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        scope = st.ClassScope(cls)
        cls.workdir = st.make_tempdir(scope, "sinew-tls-scan-")
        cls.app, cls.proxy = start_inbound(scope)
        cls.port = cls.proxy.inbound_port

    def test_sslscan(self):
        out, scan = sslscan(self.port, self.workdir)
        print("sslscan 127.0.0.1:%d:\n  %s" % (self.port, "\n  ".join(sslscan_lines(out))))
        protos = sslscan_protocols(scan)
        self.assertEqual(protos, {"SSLv2": False, "SSLv3": False, "TLSv1.0": False, "TLSv1.1": False,
                                  "TLSv1.2": False, "TLSv1.3": True}, out)
        ciphers = [(c.get("sslversion"), c.get("cipher")) for c in scan.findall("cipher")]
        self.assertEqual(sorted(ciphers), sorted(("TLSv1.3", s) for s in TLS13_SUITES), out)
        preferred = [c.get("cipher") for c in scan.findall("cipher") if c.get("status") == "preferred"]
        self.assertEqual(preferred, ["TLS_AES_128_GCM_SHA256"], out)  # server order, AES-GCM first
        self.assertEqual([c for _, c in ciphers if WEAK.search(c)], [], out)
        reneg = scan.find("renegotiation")
        self.assertIsNotNone(reneg, out)
        self.assertEqual(reneg.get("supported"), "0", out)
        self.assertTrue(self.proxy.alive())

    def test_testssl(self):
        before = self.app.requests()
        found, out, took = testssl(self.port, self.workdir, "-p", "-s", "-E")
        print("testssl 127.0.0.1:%d (%.1f s):\n%s" % (self.port, took, "\n".join(testssl_lines(out))))
        self.assertTrue(found.get("TLS1_3", "").startswith("offered"), "TLS1_3: %r\n%s"
                        % (found.get("TLS1_3"), out[-3000:]))
        expect_not_offered(self, found, ["SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2"], out)
        # Cipher categories: NULL, anonymous, export, LOW (DES, RC2, RC4),
        # 3DES/IDEA, "AVERAGE" (obsolete CBC); only AEAD is offered.
        expect_not_offered(self, found, ["cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT",
                                         "cipherlist_LOW", "cipherlist_3DES_IDEA",
                                         "cipherlist_AVERAGE"], out)
        self.assertEqual(found.get("cipherlist_STRONG"), "offered", out[-3000:])
        # Ciphers per protocol (-E): exactly the three TLS 1.3 AEAD suites.
        per_proto = {k: v for k, v in found.items() if k.startswith("cipher-")}
        self.assertEqual(sorted(per_proto), sorted("cipher-tls1_3_" + h for h in TLS13_HEX), out[-3000:])
        names = {v.split()[3] for v in per_proto.values()}  # "TLS 1.3 x1301 TLS_AES_128_GCM_SHA256 ..."
        self.assertEqual(names, TLS13_SUITES, per_proto)
        self.assertEqual([v for v in per_proto.values() if WEAK.search(v)], [], per_proto)
        self.assertTrue(self.proxy.alive())
        self.assertEqual(self.app.requests(), before)  # nothing testssl sent reached the app

    def test_s_client(self):
        crt, key = mt.CERTS.ids["productpage"]
        before = self.app.requests()
        log_from = len(self.proxy.stderr())
        ca_line = "O = sinew, OU = %s, CN = test root" % mt.TD
        # With a client certificate: TLS 1.3, the server's suite first, served.
        out = mt.s_client(self.port, "-cert", crt, "-key", key)
        self.assertIn("New, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256", out, out[-3000:])
        self.assertIn("HTTP/1.1 200", out, out[-3000:])
        self.assertEqual(self.app.requests(), before + 1)
        # Without one: the server asks (CertificateRequest naming the
        # bundle's root), then refuses with certificate_required (116).
        # In TLS 1.3 the client finishes its side first, so s_client prints
        # the TLSv1.3 session and learns of the refusal on its first read.
        out = mt.s_client(self.port)
        self.assertIn("Acceptable client certificate CA names\n" + ca_line, out, out[-3000:])
        self.assertIn("New, TLSv1.3, Cipher is", out, out[-3000:])
        self.assertIn("alert certificate required", out, out[-3000:])
        self.assertIn("SSL alert number 116", out, out[-3000:])
        self.assertNotIn("HTTP/1.1", out, out[-3000:])
        # TLS 1.2, with a certificate: refused with protocol_version (70).
        out = mt.s_client(self.port, "-tls1_2", "-cert", crt, "-key", key)
        self.assertIn("alert protocol version", out, out[-3000:])
        self.assertIn("SSL alert number 70", out, out[-3000:])
        self.assertIn("New, (NONE), Cipher is (NONE)", out, out[-3000:])
        self.assertNotIn("HTTP/1.1", out, out[-3000:])
        # TLS 1.3 with only suites outside the three: handshake_failure (40).
        out = mt.s_client(self.port, "-tls1_3", "-ciphersuites",
                          "TLS_AES_128_CCM_SHA256:TLS_AES_128_CCM_8_SHA256", "-cert", crt, "-key", key)
        self.assertIn("alert handshake failure", out, out[-3000:])
        self.assertIn("New, (NONE), Cipher is (NONE)", out, out[-3000:])
        self.assertEqual(self.app.requests(), before + 1)
        err = self.proxy.stderr()[log_from:]
        for reason in ("peer did not return a certificate", "unsupported protocol", "no shared cipher"):
            self.assertIn("failed: " + reason, err, err[-3000:])
        self.assertTrue(self.proxy.alive())

    def test_scanners_see_tls12_behind_client_auth(self):
        """Control: a server requiring client certificates and allowing
        TLS 1.2 (and its CBC suites) is reported as such, so the scanners'
        "not offered" above is a finding, not a blind spot."""
        require_tool("openssl", "openssl")
        crt, key = mt.CERTS.ids["reviews"]
        port = st.free_port()
        p = st.spawn([OPENSSL, "s_server", "-quiet", "-accept", "127.0.0.1:%d" % port,
                      "-cert", crt, "-key", key, "-CAfile", mt.CERTS.root,
                      "-Verify", "1", "-verify_return_error"],  # OpenSSL's defaults: TLS 1.2 and 1.3
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(st.stop_process, p)
        self.assertTrue(st.wait_port(port, 10), "openssl s_server did not listen on %d" % port)
        out, scan = sslscan(port, self.workdir)
        self.assertTrue(sslscan_protocols(scan).get("TLSv1.2"), out)
        found, out, took = testssl(port, self.workdir, "-p", "-s")
        print("testssl control (s_server, TLS 1.2 + 1.3, client cert required, %.1f s):\n%s"
              % (took, "\n".join(testssl_lines(out))))
        self.assertEqual(found.get("TLS1_2"), "offered", out[-3000:])
        self.assertEqual(found.get("cipherlist_AVERAGE"), "offered", out[-3000:])


class Strict(unittest.TestCase):

    def test_plaintext_refused_when_started_strict(self):
        # test_mtls covers STRICT arriving by reload; here it is there from the start.
        app, b = start_inbound(self, mt.STRICT)
        self.assertIsNone(mt.plaintext(b.inbound_port), b.stderr()[-3000:])
        self.assertIn("plaintext refused: PeerAuthentication STRICT", b.stderr())
        self.assertEqual(app.requests(), 0)
        crt, key = mt.CERTS.ids["productpage"]
        out = mt.s_client(b.inbound_port, "-cert", crt, "-key", key)
        self.assertIn("New, TLSv1.3, Cipher is", out, out[-3000:])
        self.assertIn("HTTP/1.1 200", out, out[-3000:])
        self.assertEqual(app.requests(), 1)


if __name__ == "__main__":
    st.main()
