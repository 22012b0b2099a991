"""Identity through sinewd (issue 5; docs/internals/identity.md): real
sinewd, real proxies joining with `sinew token create` tokens, real
traffic.

- a proxy with a token gets its certificate over a TLS link that trusts
  sinewd only by the root pinned in the token, then talks mTLS to sinewd;
  the mesh port refuses plaintext by default; a token is single use;
- two token proxies talk mutual TLS with no DestinationRule (auto mTLS by
  the registry's security.istio.io/tlsMode label): the server proxy's
  metrics show connection_security_policy="mutual_tls" and the client's
  SPIFFE ID as source_principal;
- a workload holding a certificate for service account A cannot pass as B:
  the client proxy refuses the server;
- leaves renew on schedule (short lifetimes) with no failed request under
  load;
- root rotation under 200 req/s: 0 failed requests; afterwards every leaf
  chains to the new root and the old root has left the bundle."""

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh, CpProxy  # noqa: E402

SINEW = os.path.join(st.BIN, "sinew")


def token(test, mesh, sa, ns=None):
    argv = [SINEW, "token", "create", "--server", "http://127.0.0.1:%d" % mesh.port, "--service-account", sa]
    if ns:
        argv += ["--namespace", ns]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    test.assertEqual(r.returncode, 0, r.stderr)
    return r.stdout.strip()


def start(test, mesh, sa, service=None, inbound_app=None, labels=None, ready=True, tok=None, extra=()):
    """A control-plane proxy joining with a token for sa."""
    st.require_proxy()
    tok = tok or token(test, mesh, sa)
    args = ["--token", tok, "--service", service or sa]
    if labels:
        args += ["--labels", labels]
    p = CpProxy(st.make_tempdir(test), mesh.mesh_addr, inbound=inbound_app is not None,
                app=("127.0.0.1:%d" % inbound_app) if inbound_app else None, args=args + list(extra))
    p.start()
    test.addCleanup(st._finish_proxy, test, p, True)
    if ready and not p.wait_ready(20.0):
        p.stop()
        test.fail("proxy %s not ready in 20 s\n%s" % (sa, p.stderr()[-6000:]))
    return p


def load(port, host, qps, seconds, connections=8):
    """sinew load through a proxy's outbound; returns its JSON result."""
    r = subprocess.run([SINEW, "load", "--json", "--quiet", "-q", str(qps), "-c", str(connections),
                        "-d", "%ds" % seconds, "-t", "3s", "-H", "Host: %s" % host,
                        "http://127.0.0.1:%d/" % port], capture_output=True, text=True,
                       timeout=seconds + 60)
    try:
        return json.loads(r.stdout)
    except ValueError:
        raise AssertionError("sinew load: %d %s %s" % (r.returncode, r.stdout[-2000:], r.stderr[-2000:]))


def failed(result):
    return result["errors_total"]


def served_chain(port):
    """The certificate chain a proxy's inbound presents (TLS 1.3 sends it
    before asking for ours), as PEM blocks."""
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-showcerts", "-tls1_3"],
                       input="", capture_output=True, text=True, timeout=20)
    return re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n", r.stdout, re.S)


def chains_to(test, chain, root_pem):
    d = tempfile.mkdtemp(prefix="sinew-verify-")
    try:
        with open(os.path.join(d, "root.pem"), "w") as f:
            f.write(root_pem)
        with open(os.path.join(d, "leaf.pem"), "w") as f:
            f.write(chain[0])
        with open(os.path.join(d, "inter.pem"), "w") as f:
            f.write("".join(chain[1:]) or chain[0])
        r = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(d, "root.pem"), "-untrusted",
                            os.path.join(d, "inter.pem"), os.path.join(d, "leaf.pem")],
                           capture_output=True, text=True, timeout=20)
        return r.returncode == 0
    finally:
        for n in os.listdir(d):
            os.unlink(os.path.join(d, n))
        os.rmdir(d)


def ca(mesh):
    status, body = mesh.call("GET", "/api/v1/ca")
    assert status == 200, body
    return body


def metric(p, name, **labels):
    return st.metric_sum(p.metrics(), name, **labels)


class Bootstrap(unittest.TestCase):
    def test_token_bootstrap_and_auto_mtls(self):
        mesh = Mesh(self, plaintext=False)
        app = st.start_backend(self, "ratings", "v1")
        mesh.apply(st.service_yaml("ratings"))
        server = start(self, mesh, "ratings", inbound_app=app.port, labels="app=ratings,version=v1")
        client = start(self, mesh, "productpage")
        # the proxies' links to sinewd are mTLS, with the token's identities
        ps = mesh.all_synced(2)
        ids = sorted(p.get("spiffeId") for p in ps)
        self.assertEqual(ids, ["spiffe://cluster.local/ns/default/sa/productpage",
                               "spiffe://cluster.local/ns/default/sa/ratings"])
        self.assertTrue(all(p["mtls"] for p in ps))
        self.assertIn("identity: got spiffe://cluster.local/ns/default/sa/ratings", server.stderr())
        self.assertIn("sinewd verified by the root pinned in the token", server.stderr())
        # no DestinationRule: auto mTLS because the endpoint's proxy holds an identity
        for _ in range(50):
            r = st.request(client.outbound_port, "GET", "/", host="ratings:9080", timeout=5)
            if r.status == 200:
                break
            time.sleep(0.1)
        self.assertEqual(r.status, 200, r)
        for _ in range(5):
            self.assertEqual(st.request(client.outbound_port, "GET", "/", host="ratings:9080").status, 200)
        self.assertGreaterEqual(metric(server, "sinew_requests_total", connection_security_policy="mutual_tls",
                                       source_principal="spiffe://cluster.local/ns/default/sa/productpage"), 6)
        self.assertEqual(metric(server, "sinew_requests_total", connection_security_policy="none"), 0)

    def test_plaintext_refused_and_token_single_use(self):
        mesh = Mesh(self, plaintext=False)
        # a proxy without a token cannot use the mesh port
        p = CpProxy(st.make_tempdir(self), mesh.mesh_addr)
        p.start()
        self.addCleanup(st._finish_proxy, self, p, True)
        self.assertFalse(p.wait_ready(2.0))
        self.assertIn("plaintext refused", mesh.read_log())
        self.assertEqual(mesh.proxies(), [])
        # a token is spent by its first proxy
        tok = token(self, mesh, "reviews")
        start(self, mesh, "reviews", tok=tok)
        second = start(self, mesh, "reviews", tok=tok, ready=False)
        self.assertFalse(second.wait_ready(3.0))
        self.assertIn("token already used", second.stderr())
        # flags contradicting the token stop the proxy at once
        r = subprocess.run([st.PROXY, "--control-plane", mesh.mesh_addr, "--outbound", "127.0.0.1:1",
                            "--token", token(self, mesh, "reviews"), "--service-account", "ratings"],
                           capture_output=True, text=True, timeout=20, env=st.proxy_env())
        self.assertEqual(r.returncode, 1)
        self.assertIn("the token is for service-account reviews", r.stderr)

    def test_a_cannot_pass_as_b(self):
        """A WorkloadEntry says ratings lives at an address where a proxy
        holding the `reviews` identity listens: the client refuses it."""
        mesh = Mesh(self, plaintext=False)
        app = st.start_backend(self, "ratings", "v1")
        impostor = start(self, mesh, "reviews", service="impostor", inbound_app=app.port)
        client = start(self, mesh, "productpage")
        mesh.apply(st.service_yaml("ratings") +
                   st.workload_yaml("ratings-1", impostor.inbound_port, {"app": "ratings"},
                                    service_account="ratings") +
                   "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ratings}\n"
                   "spec:\n  host: ratings\n  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL}\n")
        time.sleep(0.5)
        r = st.request(client.outbound_port, "GET", "/", host="ratings:9080", timeout=10)
        self.assertEqual(r.status, 503, r)
        log = client.stderr()
        self.assertIn("peer presented spiffe://cluster.local/ns/default/sa/reviews, expected "
                      "spiffe://cluster.local/ns/default/sa/ratings", log)
        self.assertEqual(app.counts()["requests"], 0)
        # the impostor's own policy view: it saw a client it could name
        self.assertEqual(metric(impostor, "sinew_requests_total"), 0)


class Rotation(unittest.TestCase):
    def pair(self, mesh):
        app = st.start_backend(self, "ratings", "v1")
        mesh.apply(st.service_yaml("ratings"))
        server = start(self, mesh, "ratings", inbound_app=app.port)
        client_app = st.start_backend(self, "productpage", "v1")
        client = start(self, mesh, "productpage", inbound_app=client_app.port)
        for _ in range(50):
            if st.request(client.outbound_port, "GET", "/", host="ratings:9080", timeout=5).status == 200:
                break
            time.sleep(0.1)
        return server, client

    def test_leaves_renew_on_schedule_without_failures(self):
        mesh = Mesh(self, plaintext=False, extra=["--leaf-ttl", "12s"])
        server, client = self.pair(mesh)
        res = load(client.outbound_port, "ratings:9080", 100, 14)
        self.assertEqual(failed(res), 0, res)
        self.assertGreaterEqual(res["completed"], 1300, res)
        for p in (server, client):
            renewals = re.findall(r"identity: renewed (\S+), serial", p.stderr())
            self.assertGreaterEqual(len(renewals), 1, p.stderr()[-3000:])
        # and the link to sinewd stayed up throughout
        self.assertNotIn("control: lost", server.stderr() + client.stderr())

    def test_root_rotation_under_load(self):
        mesh = Mesh(self, plaintext=False, extra=["--renew-spread", "2s"])
        server, client = self.pair(mesh)
        old_root = ca(mesh)["roots"][0]
        out = {}
        t = threading.Thread(target=lambda: out.update(r=load(client.outbound_port, "ratings:9080", 200, 12)))
        t.start()
        time.sleep(3)
        r = subprocess.run([SINEW, "ca", "rotate", "--wait", "--server", "http://127.0.0.1:%d" % mesh.port],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Rotation started: new root", r.stdout)
        self.assertIn("Every proxy trusts the new root", r.stdout)
        self.assertIn("Done: every proxy holds a leaf of root", r.stdout)
        t.join(60)
        after = ca(mesh)
        self.assertEqual(after["rotation"]["phase"], "stable", after["rotation"])
        self.assertEqual(len(after["roots"]), 1)
        new_root = after["roots"][0]
        self.assertNotEqual(new_root["sha256"], old_root["sha256"])
        res = out["r"]
        self.assertEqual(failed(res), 0, res)
        self.assertGreaterEqual(res["completed"], 2200, res)
        # every leaf chains to the new root, none to the old
        for p in (server, client):
            chain = served_chain(p.inbound_port)
            self.assertTrue(chain, "no certificate from %d" % p.inbound_port)
            self.assertTrue(chains_to(self, chain, new_root["pem"]), p.stderr()[-3000:])
            self.assertFalse(chains_to(self, chain, old_root["pem"]))
        log = mesh.read_log()
        self.assertIn("every proxy trusts the new root", log)
        self.assertIn("rotation done", log)
        self.assertIn(new_root["sha256"], r.stdout)
        # a second rotation while one runs is refused; after, allowed again
        status, body = mesh.call("POST", "/api/v1/ca/rotate")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["rotation"]["phase"], "distributing")
        self.assertEqual(len(body["roots"]), 2)
        status2, body2 = mesh.call("POST", "/api/v1/ca/rotate")
        self.assertEqual(status2, 409, body2)
        self.assertIn("already under way", body2["error"])

    def test_sinewd_restart_mid_rotation(self):
        """sinewd stops while proxies migrate (slow renewals) and restarts:
        it waits for them to reconnect instead of dropping the old root
        under them; the rotation then finishes and traffic flows."""
        mesh = Mesh(self, plaintext=False, extra=["--renew-spread", "60s"])
        server, client = self.pair(mesh)
        status, body = mesh.call("POST", "/api/v1/ca/rotate")
        self.assertEqual(status, 200, body)
        deadline = time.time() + 10
        while time.time() < deadline and ca(mesh)["rotation"]["phase"] != "migrating":
            time.sleep(0.1)
        self.assertEqual(ca(mesh)["rotation"]["phase"], "migrating")
        mesh.stop()
        mesh.extra = [x for x in mesh.extra if x not in ("--renew-spread", "60s")] + ["--renew-spread", "1s"]
        mesh.start()
        self.assertIn("waiting 15 s for proxies to reconnect", mesh.read_log())
        deadline = time.time() + 40
        while time.time() < deadline and ca(mesh)["rotation"]["phase"] != "stable":
            time.sleep(0.3)
        self.assertEqual(ca(mesh)["rotation"]["phase"], "stable", mesh.read_log()[-3000:])
        mesh.all_synced(2, timeout=15)
        self.assertEqual(st.request(client.outbound_port, "GET", "/", host="ratings:9080", timeout=5).status, 200)
        new_root = ca(mesh)["roots"][0]
        for p in (server, client):
            self.assertTrue(chains_to(self, served_chain(p.inbound_port), new_root["pem"]))

    def test_automatic_rotation_before_expiry(self):
        """A 60 s root (notBefore back-dated 60 s): sinewd starts a rotation
        by itself once a third of its life is left, and finishes it."""
        mesh = Mesh(self, plaintext=False, extra=["--root-ttl", "60s", "--renew-spread", "1s"])
        server, client = self.pair(mesh)
        first = ca(mesh)["roots"][0]["sha256"]
        deadline = time.time() + 45
        while time.time() < deadline and "rotation done" not in mesh.read_log():
            time.sleep(0.5)
        log = mesh.read_log()
        self.assertIn("rotation started (the CA expires soon)", log)
        self.assertIn("rotation done", log)
        now = ca(mesh)
        self.assertNotEqual(now["roots"][-1]["sha256"], first)
        self.assertEqual(st.request(client.outbound_port, "GET", "/", host="ratings:9080", timeout=5).status, 200)


if __name__ == "__main__":
    st.main()
