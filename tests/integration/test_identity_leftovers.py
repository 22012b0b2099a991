#!/usr/bin/python3
"""Identity left-overs (issue 13; docs/internals/identity.md): real sinewd,
real proxies, a real HTTP/2 client on the mesh port.

- Tokens across a root switch: a join token minted before a rotation's
  switch still bootstraps after it (sinewd cross-signs the new root with
  the old root's key and sends both; it honours the old pin while the
  cross-certificate lives), also after a sinewd restart; a sinewd that is
  not the one the token was minted by is still refused by the proxy.
- Renewal on a link that outlived its certificate: sinewd re-checks the
  notAfter of the certificate the link was opened with; past it, a CSR is
  refused with a sentence saying so unless it carries the current
  certificate and a renewal signature by its key. Proxies send that proof,
  so they renew through it without dropping their link or a request.
- The DestinationRule ISTIO_MUTUAL warning: printed by a proxy without an
  identity (it connects in plaintext), never by one holding an identity;
  `sinew analyze` does not call ISTIO_MUTUAL unimplemented."""

import base64
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh, CpProxy  # noqa: E402
from test_mesh_identity import token, start, ca, load, failed, served_chain, chains_to  # noqa: E402

SINEW = os.path.join(st.BIN, "sinew")
RENEW_CONTEXT = b"sinew SVID renewal v1\0"


def rotate(test, mesh):
    r = subprocess.run([SINEW, "ca", "rotate", "--wait", "--server", "http://127.0.0.1:%d" % mesh.port],
                       capture_output=True, text=True, timeout=90)
    test.assertEqual(r.returncode, 0, r.stdout + r.stderr)
    test.assertIn("Done: every proxy holds a leaf of root", r.stdout)


def wait_log(get, text, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in get():
            return True
        time.sleep(0.2)
    return text in get()


class TokensAcrossSwitch(unittest.TestCase):
    def test_token_minted_before_switch_bootstraps_after(self):
        mesh = Mesh(self, plaintext=False, extra=["--renew-spread", "1s"])
        app = st.start_backend(self, "ratings", "v1")
        mesh.apply(st.service_yaml("ratings"))
        # one proxy joined before the rotation, which it follows on its link
        server = start(self, mesh, "ratings", inbound_app=app.port)
        old_root = ca(mesh)["roots"][0]
        before = [token(self, mesh, "productpage"), token(self, mesh, "reviews")]
        self.assertIsNone(ca(mesh)["crossSigned"])
        rotate(self, mesh)
        after = ca(mesh)
        self.assertEqual(after["rotation"]["phase"], "stable")
        self.assertEqual([r["sha256"] for r in after["roots"]], [after["roots"][0]["sha256"]])
        new_root = after["roots"][0]
        self.assertNotEqual(new_root["sha256"], old_root["sha256"])
        # the cross-certificate: the new root's name, by the old root, for
        # as long as a token minted before the switch can live (24 h + 5 min)
        cross = after["crossSigned"]
        self.assertIsNotNone(cross, after)
        self.assertEqual(cross["by"]["sha256"], old_root["sha256"])
        self.assertEqual(cross["certificate"]["subject"], new_root["subject"])
        self.assertGreater(cross["certificate"]["expiresInSeconds"], 24 * 3600)
        self.assertLessEqual(cross["certificate"]["expiresInSeconds"], 24 * 3600 + 300 + 5)

        # the mesh port now serves a leaf of the new root, then the cross,
        # the old root and the new root
        deadline = time.time() + 10
        while time.time() < deadline:
            chain = served_chain(mesh.mesh_port)
            if len(chain) == 4 and chains_to(self, chain[:1], new_root["pem"]):
                break
            time.sleep(0.2)
        self.assertEqual(len(chain), 4, chain)
        self.assertTrue(chains_to(self, chain, new_root["pem"]))
        self.assertTrue(chains_to(self, chain, old_root["pem"]))   # through the cross-certificate

        # a token minted before the switch bootstraps now; the proxy then
        # serves a leaf of the new root and talks mTLS to the older proxy
        client = start(self, mesh, "productpage", tok=before[0])
        log = client.stderr()
        self.assertIn("sinewd verified by the root pinned in the token", log)
        self.assertIn("identity: got spiffe://cluster.local/ns/default/sa/productpage", log)
        self.assertNotIn("does not hold the root pinned", log)
        for _ in range(50):
            r = st.request(client.outbound_port, "GET", "/", host="ratings:9080", timeout=5)
            if r.status == 200:
                break
            time.sleep(0.1)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(chains_to(self, served_chain(server.inbound_port), new_root["pem"]))
        # a token minted after the switch pins the new root and works too
        start(self, mesh, "details", tok=token(self, mesh, "details"))

        # the cross-certificate survives a restart of sinewd
        mesh.stop()
        mesh.start()
        self.assertEqual(ca(mesh)["crossSigned"]["by"]["sha256"], old_root["sha256"])
        start(self, mesh, "reviews", tok=before[1])

        # a token is still single use, old pin or not
        again = start(self, mesh, "productpage", tok=before[0], ready=False)
        self.assertFalse(again.wait_ready(3.0))
        self.assertIn("token already used", again.stderr())

    def test_other_sinewd_still_refused(self):
        """A token pins one sinewd's root (or, after a switch, its previous
        root): another sinewd, rotated or not, cannot pass for it."""
        mesh = Mesh(self, plaintext=False, extra=["--renew-spread", "1s"])
        other = Mesh(self, plaintext=False, extra=["--renew-spread", "1s"])
        tok = token(self, mesh, "productpage")
        rotate(self, other)   # the other one holds a cross-certificate of its own root, not of ours
        p = CpProxy(st.make_tempdir(self), other.mesh_addr, args=["--token", tok, "--service", "productpage"])
        p.start()
        self.addCleanup(st._finish_proxy, self, p, True)
        self.assertFalse(p.wait_ready(3.0))
        self.assertIn("server's chain does not hold the root pinned by the join token", p.stderr())
        self.assertNotIn("ca: issued", other.read_log())


# ---- a control-link client of our own (HTTP/2 over TLS, JSON lines) --------

class Link:
    """One mesh-port link: TLS 1.3 (with a client certificate or without),
    HTTP/2 with prior knowledge, POST /sinew.v1.Mesh/Stream, JSON lines."""

    def __init__(self, port, cert=None, key=None):
        import h2.config
        import h2.connection
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE   # this test checks sinewd's side, not the proxy's
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        if cert:
            ctx.load_cert_chain(cert, key)
        self.s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10))
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.initiate_connection()
        self.sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(self.sid, [(":method", "POST"), (":scheme", "https"), (":authority", "sinewd"),
                                        (":path", "/sinew.v1.Mesh/Stream"),
                                        ("content-type", "application/x-ndjson")])
        self.s.sendall(self.h2.data_to_send())
        self.buf = b""

    def send(self, msg):
        self.h2.send_data(self.sid, (json.dumps(msg) + "\n").encode())
        self.s.sendall(self.h2.data_to_send())

    def recv(self, timeout=10.0):
        import h2.events
        deadline = time.time() + timeout
        while b"\n" not in self.buf:
            if time.time() > deadline:
                raise AssertionError("no message from sinewd in %.0f s" % timeout)
            self.s.settimeout(max(0.1, deadline - time.time()))
            data = self.s.recv(65536)
            if not data:
                raise AssertionError("sinewd closed the link")
            for ev in self.h2.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    self.buf += ev.data
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    raise AssertionError("sinewd ended the link: %r" % ev)
            out = self.h2.data_to_send()
            if out:
                self.s.sendall(out)
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def new_key_and_csr():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key, key_pem, csr.public_bytes(serialization.Encoding.PEM).decode(), \
        csr.public_bytes(serialization.Encoding.DER)


def renewal_signature(key, csr_der):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    return base64.b64encode(key.sign(RENEW_CONTEXT + csr_der, ec.ECDSA(hashes.SHA256()))).decode()


class RenewalOnExpiredLink(unittest.TestCase):
    def test_sinewd_rechecks_the_link_certificate(self):
        mesh = Mesh(self, plaintext=False, extra=["--leaf-ttl", "10s"])
        d = st.make_tempdir(self)
        # bootstrap: a certificate A for a key of ours, to a join token
        key_a, key_a_pem, csr, _ = new_key_and_csr()
        boot = Link(mesh.mesh_port)
        boot.send({"type": "csr", "csr": csr, "token": token(self, mesh, "reviews")})
        got_a = boot.recv()
        boot.close()
        self.assertEqual(got_a["type"], "certificate", got_a)
        self.assertEqual(got_a["spiffe_id"], "spiffe://cluster.local/ns/default/sa/reviews")
        with open(os.path.join(d, "a.pem"), "w") as f:
            f.write(got_a["chain"])
        with open(os.path.join(d, "a.key"), "w") as f:
            f.write(key_a_pem)
        # an mTLS link opened with A: while A is valid it proves the identity
        link = Link(mesh.mesh_port, os.path.join(d, "a.pem"), os.path.join(d, "a.key"))
        self.addCleanup(link.close)
        time.sleep(max(0.0, got_a["not_after"] - time.time() - 3.5))
        key_b, _, csr_b, _ = new_key_and_csr()
        link.send({"type": "csr", "csr": csr_b})
        got_b = link.recv()
        self.assertEqual(got_b["type"], "certificate", got_b)
        self.assertGreater(got_b["not_after"], got_a["not_after"])
        # A expires; the link stays open; a bare CSR is refused, saying why
        time.sleep(max(0.0, got_a["not_after"] - time.time() + 1.2))
        _, _, csr_c, csr_c_der = new_key_and_csr()
        link.send({"type": "csr", "csr": csr_c})
        refused = link.recv()
        self.assertEqual(refused["type"], "certificate_refused", refused)
        self.assertEqual(refused["status"], 401, refused)
        self.assertIn("the certificate this link was opened with expired at", refused["message"])
        self.assertIn("spiffe://cluster.local/ns/default/sa/reviews", refused["message"])
        self.assertIn("the certificate this link was opened with expired at", mesh.read_log())
        # the expired certificate as proof does not do either
        link.send({"type": "csr", "csr": csr_c, "certificate": got_a["chain"],
                   "signature": renewal_signature(key_a, csr_c_der)})
        refused = link.recv()
        self.assertEqual(refused["type"], "certificate_refused", refused)
        self.assertIn("current certificate refused (expired)", refused["message"])
        # the current certificate B with a signature by another key: refused
        link.send({"type": "csr", "csr": csr_c, "certificate": got_b["chain"],
                   "signature": renewal_signature(key_a, csr_c_der)})
        refused = link.recv()
        self.assertEqual(refused["type"], "certificate_refused", refused)
        self.assertIn("renewal signature does not verify", refused["message"])
        # B with a signature by B's key over this CSR: renewed, for the
        # link's identity
        link.send({"type": "csr", "csr": csr_c, "certificate": got_b["chain"],
                   "signature": renewal_signature(key_b, csr_c_der)})
        got_c = link.recv()
        self.assertEqual(got_c["type"], "certificate", got_c)
        self.assertEqual(got_c["spiffe_id"], "spiffe://cluster.local/ns/default/sa/reviews")
        self.assertIn("proved by its current one", mesh.read_log())

    def test_proxy_proof_of_another_identity_refused(self):
        """A link of identity A renewing with B's (valid) certificate and key,
        once A's certificate expired: a certificate renews only its own
        identity, the link's."""
        mesh = Mesh(self, plaintext=False, extra=["--leaf-ttl", "10s"])
        d = st.make_tempdir(self)
        certs = {}
        for sa in ("reviews", "ratings"):
            key, key_pem, csr, _ = new_key_and_csr()
            boot = Link(mesh.mesh_port)
            boot.send({"type": "csr", "csr": csr, "token": token(self, mesh, sa)})
            certs[sa] = (key, key_pem, boot.recv())
            boot.close()
            self.assertEqual(certs[sa][2]["type"], "certificate", certs[sa][2])
        with open(os.path.join(d, "a.pem"), "w") as f:
            f.write(certs["reviews"][2]["chain"])
        with open(os.path.join(d, "a.key"), "w") as f:
            f.write(certs["reviews"][1])
        link = Link(mesh.mesh_port, os.path.join(d, "a.pem"), os.path.join(d, "a.key"))
        self.addCleanup(link.close)
        # both renew while their links' certificates are valid (this also
        # keeps the reviews link within its lease)
        time.sleep(max(0.0, certs["reviews"][2]["not_after"] - time.time() - 3.5))
        _, _, csr_a, _ = new_key_and_csr()
        link.send({"type": "csr", "csr": csr_a})
        self.assertEqual(link.recv()["type"], "certificate")
        key_r, key_r_pem, csr_r, _ = new_key_and_csr()
        with open(os.path.join(d, "r.pem"), "w") as f:
            f.write(certs["ratings"][2]["chain"])
        with open(os.path.join(d, "r.key"), "w") as f:
            f.write(certs["ratings"][1])
        rl = Link(mesh.mesh_port, os.path.join(d, "r.pem"), os.path.join(d, "r.key"))
        rl.send({"type": "csr", "csr": csr_r})
        got_r = rl.recv()
        rl.close()
        self.assertEqual(got_r["type"], "certificate", got_r)
        time.sleep(max(0.0, certs["reviews"][2]["not_after"] - time.time() + 1.2))
        _, _, csr, csr_der = new_key_and_csr()
        link.send({"type": "csr", "csr": csr, "certificate": got_r["chain"],
                   "signature": renewal_signature(key_r, csr_der)})
        refused = link.recv()
        self.assertEqual(refused["type"], "certificate_refused", refused)
        self.assertIn("a certificate renews only its own identity", refused["message"])

    def test_proxies_renew_past_their_link_certificate(self):
        """10 s leaves (the shortest sinewd takes) for 24 s: every renewal after the first is on a link
        whose certificate expired. The proxies prove their current one,
        keep their links, and no request fails."""
        mesh = Mesh(self, plaintext=False, extra=["--leaf-ttl", "10s"])
        app = st.start_backend(self, "ratings", "v1")
        mesh.apply(st.service_yaml("ratings"))
        server = start(self, mesh, "ratings", inbound_app=app.port)
        client = start(self, mesh, "productpage")
        for _ in range(50):
            if st.request(client.outbound_port, "GET", "/", host="ratings:9080", timeout=5).status == 200:
                break
            time.sleep(0.1)
        res = load(client.outbound_port, "ratings:9080", 50, 24)
        self.assertEqual(failed(res), 0, res)
        log = mesh.read_log()
        self.assertIn("proved by its current one", log)
        self.assertNotIn("refused a certificate", log)
        for p in (server, client):
            err = p.stderr()
            self.assertGreaterEqual(len(re.findall(r"identity: renewed ", err)), 3, err[-3000:])
            self.assertNotIn("sinewd refused a certificate", err)
            self.assertNotIn("control: lost", err)
            self.assertEqual(err.count("control: connected to"), 2, err[-3000:])   # bootstrap, then mTLS


# ---- the ISTIO_MUTUAL warning: the proxy's, and only where it is true ------

MTLS_DR = """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      tls:
        mode: ISTIO_MUTUAL
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
"""

WARNING = "ISTIO_MUTUAL, but this proxy has no identity"


class IstioMutualWarning(unittest.TestCase):
    def config(self):
        return (st.service_yaml("reviews") +
                st.workload_yaml("reviews-v1", 1, {"app": "reviews", "version": "v1"}, service_account="reviews") +
                "---\n" + MTLS_DR)

    def test_file_mode_without_identity_warns_with_place(self):
        d = st.make_tempdir(self)
        path = os.path.join(d, "sinew.yaml")
        text = self.config()
        st.write_file(path, text)
        p = st.start_proxy(self, config_path=path, workdir=d)
        lines = text.splitlines()
        mode_lines = [i + 1 for i, ln in enumerate(lines) if "ISTIO_MUTUAL" in ln]
        self.assertEqual(len(mode_lines), 2)
        err = p.stderr()
        warned = [ln for ln in err.splitlines() if WARNING in ln]
        self.assertEqual(len(warned), 2, err[-3000:])
        for n, field in zip(mode_lines, ("spec.subsets[0].trafficPolicy.tls.mode", "spec.trafficPolicy.tls.mode")):
            self.assertTrue(any("%s:%d:" % (path, n) in ln and field in ln and "warn" in ln for ln in warned),
                            (n, field, warned))
        self.assertTrue(all("DestinationRule default/reviews" in ln for ln in warned), warned)
        # a reload of the same rules does not say it again
        st.write_file(path, text + "\n")
        p.signal(__import__("signal").SIGHUP)
        time.sleep(1.0)
        self.assertEqual(len([ln for ln in p.stderr().splitlines() if WARNING in ln]), 2)

    def test_file_mode_with_identity_is_silent(self):
        from test_mtls import Certs
        certs = Certs(st.make_tempdir(self))
        p = st.start_proxy(self, self.config(), args=["--service", "productpage", "--service-account",
                                                      "productpage"] + certs.args("productpage"))
        err = p.stderr()
        self.assertNotIn("ISTIO_MUTUAL", err)
        self.assertNotIn("mutual TLS needs", err)

    def test_token_proxy_is_silent_and_analyze_says_what_is_true(self):
        mesh = Mesh(self, plaintext=False)
        mesh.apply(st.service_yaml("reviews") + "---\n" + MTLS_DR)
        p = start(self, mesh, "productpage")
        # its snapshot holds the rule's clusters once it asks for reviews
        st.request(p.outbound_port, "GET", "/", host="reviews:9080", timeout=5)
        time.sleep(0.5)
        err = p.stderr()
        self.assertNotIn("ISTIO_MUTUAL", err)
        self.assertNotIn("mutual TLS needs", err)
        # sinew analyze does not call ISTIO_MUTUAL unimplemented (it is not)
        r = subprocess.run([SINEW, "analyze", "--server", "http://127.0.0.1:%d" % mesh.port],
                           capture_output=True, text=True, timeout=30)
        self.assertNotIn("ISTIO_MUTUAL", r.stdout + r.stderr)
        self.assertNotIn("tls.mode", r.stdout + r.stderr)

    def test_control_plane_proxy_without_identity_warns(self):
        """A proxy of a --mesh-plaintext sinewd without a token: the rule's
        clusters are named, since the resources came from sinewd."""
        mesh = Mesh(self, plaintext=True)
        mesh.apply(st.service_yaml("reviews") + "---\n" + MTLS_DR)
        p = CpProxy(st.make_tempdir(self), mesh.mesh_addr, args=["--service", "productpage"])
        p.start()
        self.addCleanup(st._finish_proxy, self, p, True)
        self.assertTrue(p.wait_ready(15.0), p.stderr()[-3000:])
        st.request(p.outbound_port, "GET", "/", host="reviews:9080", timeout=5)
        self.assertTrue(wait_log(p.stderr, WARNING, 5), p.stderr()[-3000:])
        self.assertIn("reviews.default.svc.cluster.local", p.stderr())


if __name__ == "__main__":
    st.main()
