#!/usr/bin/python3
"""sinewd replicas sharing a three-member etcd cluster (--store etcd://...),
all on loopback ports this test picks, with etcd's data in a temporary
directory it removes: an apply through any replica is seen by every
other; 200 applies racing through two replicas are all stored, each at
its own revision, in order; etcd losing one member changes nothing, losing
quorum makes applies fail with a clear error while reads keep being
served; a replica started later loads what the others wrote."""

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh, SINEWD, start_cp_proxy, get  # noqa: E402

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


class Etcd:
    """A cluster of n etcd members on loopback, killed when the test ends."""

    def __init__(self, test, n=3, tls=None):
        self.test = test
        self.tls = tls   # {"cert", "key", "ca"}: clients must speak TLS with a certificate from ca
        self.dir = st.make_tempdir(test, "etcd-")
        self.client = [st.free_port() for _ in range(n)]
        self.peer = [st.free_port() for _ in range(n)]
        self.procs = [None] * n
        self.cluster = ",".join("m%d=http://127.0.0.1:%d" % (i, p) for i, p in enumerate(self.peer))
        test.addCleanup(self.stop_all)
        for i in range(n):
            self.start(i)
        self.wait_healthy()

    @property
    def url(self):
        return "etcd://" + ",".join("127.0.0.1:%d" % p for p in self.client)

    def start(self, i):
        log = open(os.path.join(self.dir, "m%d.log" % i), "ab")
        scheme = "https" if self.tls else "http"
        tls = (["--cert-file", self.tls["cert"], "--key-file", self.tls["key"], "--trusted-ca-file", self.tls["ca"],
                "--client-cert-auth"] if self.tls else [])
        self.procs[i] = st.spawn([
            ETCD, "--name", "m%d" % i, "--data-dir", os.path.join(self.dir, "m%d" % i),
            "--listen-client-urls", "%s://127.0.0.1:%d" % (scheme, self.client[i]),
            "--advertise-client-urls", "%s://127.0.0.1:%d" % (scheme, self.client[i])] + tls + [
            "--listen-peer-urls", "http://127.0.0.1:%d" % self.peer[i],
            "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % self.peer[i],
            "--initial-cluster", self.cluster, "--initial-cluster-state", "new",
            "--initial-cluster-token", os.path.basename(self.dir),
            "--heartbeat-interval", "50", "--election-timeout", "500"],
            stdout=log, stderr=log)
        log.close()

    def kill(self, i):
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait(5)
        self.procs[i] = None

    def healthy(self, i):
        if self.tls:
            r = subprocess.run(["curl", "-s", "--max-time", "2", "--cacert", self.tls["ca"], "--cert",
                                self.tls["client_cert"], "--key", self.tls["client_key"],
                                "https://127.0.0.1:%d/health" % self.client[i]], capture_output=True, text=True)
            return '"health":"true"' in r.stdout
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % self.client[i], timeout=2) as r:
                return json.loads(r.read()).get("health") == "true"
        except (OSError, ValueError):
            return False

    def wait_healthy(self, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(self.procs[i] is None or self.healthy(i) for i in range(len(self.procs))):
                return
            time.sleep(0.1)
        raise AssertionError("etcd not healthy in %.0f s" % timeout)

    def history(self, key, revision):
        """The value of key at revision (etcd keeps history until compacted)."""
        body = json.dumps({"key": base64.b64encode(key.encode()).decode(), "revision": str(revision)}).encode()
        for port in self.client:
            try:
                req = urllib.request.Request("http://127.0.0.1:%d/v3/kv/range" % port, data=body, method="POST")
                with urllib.request.urlopen(req, timeout=5) as r:
                    kvs = json.loads(r.read()).get("kvs", [])
                    return base64.b64decode(kvs[0]["value"]).decode() if kvs else None
            except OSError:
                continue
        raise AssertionError("no etcd member answered")

    def stop_all(self):
        for p in self.procs:
            if p is not None:
                st.stop_process(p)


def replicas(test, etcd, n, extra=()):
    return [Mesh(test, extra=["--store", etcd.url] + list(extra[i] if extra else [])) for i in range(n)]


def openssl(*args):
    p = subprocess.run(["openssl"] + list(args), capture_output=True, timeout=30)
    if p.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), p.stderr.decode()))
    return p.stdout.decode()


def ec_key(d, name):
    path = os.path.join(d, name)
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    return path


def self_signed_ca(d, name, subject):
    """A CA key and its self-signed certificate in d: (cert, key)."""
    key, cert = ec_key(d, name + "-key.pem"), os.path.join(d, name + ".pem")
    openssl("req", "-x509", "-new", "-key", key, "-subj", subject, "-days", "3",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", cert)
    return cert, key


def issue_cert(d, name, subject, ca, ca_key, extensions):
    """A key and a certificate for it signed by ca, with extensions (an
    openssl extfile's lines): (cert, key)."""
    key, csr, cert, ext = (ec_key(d, name + "-key.pem"), os.path.join(d, name + ".csr"),
                           os.path.join(d, name + ".pem"), os.path.join(d, name + ".ext"))
    with open(ext, "w") as f:
        f.write(extensions)
    openssl("req", "-new", "-key", key, "-subj", subject, "-out", csr)
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "2",
            "-extfile", ext, "-out", cert)
    return cert, key


def per_replica_intermediates(d, n):
    """One root; an intermediate of its own for each replica (the
    --ca-cert chain and --ca-key of each), as docs/security.md says."""
    root, rk = self_signed_ca(d, "root", "/O=sinew test/CN=mesh root")
    out = []
    for i in range(n):
        pem, ik = issue_cert(d, "int%d" % i, "/O=sinew test/CN=replica %d" % i, root, rk,
                             "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"
                             "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
        chain = os.path.join(d, "chain%d.pem" % i)
        with open(chain, "w") as f, open(pem) as a, open(root) as b:
            f.write(a.read() + b.read())
        out.append(["--ca-cert", chain, "--ca-key", ik])
    return root, out


def vs_yaml(name, who):
    return """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %s, namespace: default}
spec:
  hosts: [reviews]
  http:
  - headers: {response: {set: {x-who: "%s"}}}
    route:
    - destination: {host: reviews}
""" % (name, who)


def resource(mesh, kind, name):
    status, body = mesh.call("GET", "/api/v1/resources/%s/default/%s" % (kind, name))
    return body if status == 200 else None


wait_for = st.wait_for


def apply(mesh, text, source="t.yaml"):
    status, body = mesh.call("POST", "/api/v1/apply?source=" + source, text.encode())
    return status, body


def etcd_tls_files(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    ca, ca_key = self_signed_ca(d, "etcd-ca", "/CN=etcd test ca")
    # etcd's own JSON gateway dials its gRPC port with the server certificate:
    # it needs clientAuth too
    cert, key = issue_cert(d, "server", "/CN=sinew server", ca, ca_key,
                           "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    client_cert, client_key = issue_cert(d, "client", "/CN=sinew client", ca, ca_key,
                                         "extendedKeyUsage=clientAuth\n")
    return {"ca": ca, "cert": cert, "key": key, "client_cert": client_cert, "client_key": client_key}


class EtcdTlsTest(unittest.TestCase):
    def test_etcd_over_tls_with_a_client_certificate(self):
        if not os.path.exists(ETCD):
            self.fail("etcd is not installed (make test installs etcd-server)")
        tls = etcd_tls_files(st.make_tempdir(self, "etcd-tls-"))
        etcd = Etcd(self, n=1, tls=tls)
        flags = ["--store", etcd.url, "--etcd-cacert", tls["ca"], "--etcd-cert", tls["client_cert"],
                 "--etcd-key", tls["client_key"]]
        a, b = Mesh(self, extra=flags), Mesh(self, extra=flags)
        self.assertIn("(TLS)", a.call("GET", "/api/v1/version")[1]["store"])
        status, body = apply(a, st.service_yaml("reviews"))
        self.assertEqual(status, 200, body)
        wait_for(lambda: resource(b, "Service", "reviews"), 2.0, "the other replica sees it, watching over TLS")
        # refused: no client certificate; no TLS at all; a CA that does not sign etcd's certificate
        other = etcd_tls_files(st.make_tempdir(self, "etcd-tls-other-"))
        d = st.make_tempdir(self, "sinewd-tls-bad-")
        for extra, want in ((["--etcd-cacert", tls["ca"]], "give --etcd-cert and --etcd-key"),
                            ([], "etcd at http://127.0.0.1"),
                            (["--etcd-cacert", other["ca"]], "does not verify"),
                            (["--etcd-cert", tls["client_cert"], "--etcd-key", tls["client_key"]], "need --etcd-cacert"),
                            (["--etcd-cacert", tls["ca"], "--etcd-cert", tls["client_cert"]], "go together")):
            p = subprocess.run([SINEWD, "--data-dir", d, "--store", etcd.url, "--api", "127.0.0.1:%d" % st.free_port(),
                                "--mesh", "127.0.0.1:%d" % st.free_port()] + extra,
                               capture_output=True, text=True, timeout=30, env=st.proxy_env())
            self.assertEqual(p.returncode, 1, (extra, p.stderr))
            self.assertIn(want, p.stderr, extra)


class EtcdStoreTest(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(ETCD):
            self.fail("etcd is not installed (make test installs etcd-server)")
        self.etcd = Etcd(self)

    def test_apply_through_any_replica_reaches_every_replica(self):
        ms = replicas(self, self.etcd, 3)
        status, body = apply(ms[0], st.service_yaml("reviews"))
        self.assertEqual(status, 200, body)
        for i, m in enumerate(ms):
            # every replica learns it from etcd's watch (or had written it)
            t0 = time.time()
            got = wait_for(lambda: resource(m, "Service", "reviews"), 1.0, "replica %d sees the Service" % i)
            self.assertEqual(got["resourceVersion"], body[0]["resourceVersion"])
            self.assertLess(time.time() - t0, 1.0)
        for writer in range(3):
            status, body = apply(ms[writer], vs_yaml("reviews", "w%d" % writer))
            self.assertEqual(status, 200, body)
            rv = body[0]["resourceVersion"]
            for m in ms:
                wait_for(lambda: (resource(m, "VirtualService", "reviews") or {}).get("resourceVersion") == rv,
                         1.0, "every replica at %s" % rv)
        # the revision is etcd's: the same on every replica
        revs = {m.call("GET", "/api/v1/version")[1]["revision"] for m in ms}
        self.assertEqual(len(revs), 1, revs)
        self.assertIn("etcd at", ms[1].call("GET", "/api/v1/version")[1]["store"])
        # a delete through another replica reaches the rest
        status, body = ms[2].call("DELETE", "/api/v1/resources/VirtualService/default/reviews")
        self.assertEqual(status, 200, body)
        for m in ms:
            wait_for(lambda: resource(m, "VirtualService", "reviews") is None, 1.0, "deleted everywhere")
        # a replica started now loads what the others wrote
        late = Mesh(self, extra=["--store", self.etcd.url])
        self.assertIsNotNone(resource(late, "Service", "reviews"))
        self.assertIsNone(resource(late, "VirtualService", "reviews"))

    def test_racing_applies_none_lost(self):
        ms = replicas(self, self.etcd, 2)
        self.assertEqual(apply(ms[0], st.service_yaml("reviews"))[0], 200)
        # the second replica admits against what it has seen: wait for the Service
        wait_for(lambda: resource(ms[1], "Service", "reviews"), 2.0, "the other replica sees the Service")
        results, errors, lock = [], [], threading.Lock()

        def writer(m, tag):
            for i in range(100):
                who = "%s-%d" % (tag, i)
                try:
                    status, body = apply(m, vs_yaml("race", who))
                except OSError as e:   # a hung apply (say, a stuck admission child) is a failure, not a gap
                    status, body = None, repr(e)
                with lock:
                    if status == 200:
                        results.append((int(body[0]["resourceVersion"]), who))
                    else:
                        errors.append((who, status, body))

        ts = [threading.Thread(target=writer, args=(m, tag)) for m, tag in ((ms[0], "a"), (ms[1], "b"))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(120)
        self.assertEqual(errors, [])
        self.assertEqual(len(results), 200)
        revs = [r for r, _ in results]
        self.assertEqual(len(set(revs)), 200, "two applies reported the same revision")
        # none lost: etcd's history holds each apply's text at its revision
        key = "/sinew/resources/VirtualService/default/race"
        for rev, who in results:
            self.assertIn('x-who: "%s"' % who, self.etcd.history(key, rev) or "", "apply %s at %d" % (who, rev))
        # in order: each writer's own applies got increasing revisions
        for tag in ("a", "b"):
            mine = [r for r, w in sorted(results, key=lambda x: int(x[1].split("-")[1])) if w.startswith(tag)]
            self.assertEqual(mine, sorted(mine))
        # both replicas end at the last one
        last_rev, last_who = max(results)
        for m in ms:
            wait_for(lambda: (resource(m, "VirtualService", "race") or {}).get("resourceVersion") == str(last_rev),
                     2.0, "replica at the last apply")
            self.assertIn('x-who: "%s"' % last_who, resource(m, "VirtualService", "race")["yaml"])

    def test_member_loss_then_quorum_loss(self):
        ms = replicas(self, self.etcd, 2)
        self.etcd.kill(0)   # the member listed first: replicas move on
        status, body = apply(ms[0], st.service_yaml("reviews"))
        self.assertEqual(status, 200, body)
        wait_for(lambda: resource(ms[1], "Service", "reviews"), 3.0, "the other replica sees it")
        self.etcd.kill(1)   # two of three gone: no quorum
        t0 = time.time()
        status, body = apply(ms[0], st.service_yaml("ratings"))
        took = time.time() - t0
        self.assertEqual(status, 500, body)
        msg = body[0]["diagnostics"][0]["message"]
        self.assertIn("no quorum", msg)
        self.assertLess(took, 15.0)
        # reads keep being served from what the replica holds
        self.assertIsNotNone(resource(ms[1], "Service", "reviews"))
        self.assertIsNone(resource(ms[0], "Service", "ratings"))
        # quorum back: applies work again, and both replicas see them
        self.etcd.start(1)
        self.etcd.start(0)
        self.etcd.wait_healthy()
        wait_for(lambda: apply(ms[0], st.service_yaml("ratings"))[0] == 200, 15.0, "apply after quorum is back")
        wait_for(lambda: resource(ms[1], "Service", "ratings"), 5.0, "the other replica sees it")

    def test_registered_workload_shared_on_a_lease(self):
        """A proxy registered at replica A is an endpoint for a client
        whose proxy talks only to replica B; when A dies, its registration
        leaves with A's etcd lease (10 s), not later."""
        a, b = replicas(self, self.etcd, 2)
        a.apply(st.service_yaml("ratings"))
        wait_for(lambda: resource(b, "Service", "ratings"), 2.0, "B sees the Service")
        app = st.start_backend(self, "ratings", "v1")
        start_cp_proxy(self, a, outbound=False, inbound=True, app="127.0.0.1:%d" % app.port,
                       args=["--service", "ratings", "--labels", "version=v1"])
        client = start_cp_proxy(self, b, args=["--service", "productpage"])
        r = wait_for(lambda: (lambda r: r if r.status == 200 else None)(get(client.outbound_port, "ratings:9080")),
                     5.0, "the client reaches the workload registered at the other replica")
        self.assertEqual(r.json()["service"], "ratings")
        a.p.send_signal(signal.SIGKILL)
        a.p.wait(5)
        t0 = time.time()
        wait_for(lambda: get(client.outbound_port, "ratings:9080").status == 503, 16.0,
                 "the dead replica's registration expires with its lease")
        self.assertGreater(time.time() - t0, 3.0)   # not before the lease could run out
        a.p = None

    def test_certificates_and_tokens_through_any_replica(self):
        """Each replica signs with an intermediate of its own under one root:
        a token minted at one replica is good at another, once only, across
        all of them; every replica's leaves verify against the one root."""
        d = st.make_tempdir(self, "ca-")
        root, flags = per_replica_intermediates(d, 3)
        ms = replicas(self, self.etcd, 3, extra=flags)
        roots = {m.call("GET", "/api/v1/ca")[1]["roots"][0]["sha256"] for m in ms}
        self.assertEqual(len(roots), 1, roots)
        csr_key = ec_key(d, "leaf-key.pem")
        csr = openssl("req", "-new", "-key", csr_key, "-subj", "/CN=workload")
        for minted_at in range(3):
            status, r = ms[minted_at].call("POST", "/api/v1/tokens", json.dumps({"serviceAccount": "reviews"}))
            self.assertEqual(status, 200, r)
            token = r["token"]
            used_at = (minted_at + 1) % 3
            status, r = ms[used_at].call("POST", "/api/v1/certificates", json.dumps({"token": token, "csr": csr}))
            self.assertEqual(status, 200, r)
            leaf = os.path.join(d, "leaf%d.pem" % minted_at)
            chain = os.path.join(d, "leafchain%d.pem" % minted_at)

            def verify_issued(answer, replica):
                """The one root verifies the leaf through the replica's own intermediate."""
                with open(leaf, "w") as f:
                    f.write(answer["certificate"])
                with open(chain, "w") as f:
                    f.write(answer["chain"])
                openssl("verify", "-CAfile", root, "-untrusted", chain, leaf)
                self.assertIn("replica %d" % replica, openssl("x509", "-in", leaf, "-noout", "-issuer"))

            verify_issued(r, used_at)
            # renewed at yet another replica (a proxy that moved): the
            # current leaf with its chain, and a signature by its key
            renew_at = (minted_at + 2) % 3
            csr2 = openssl("req", "-new", "-key", csr_key, "-subj", "/CN=workload")
            der = base64.b64decode("".join(l for l in csr2.splitlines() if l and not l.startswith("-----")))
            msg = os.path.join(d, "renew-msg.bin")
            with open(msg, "wb") as f:
                f.write(b"sinew SVID renewal v1\0" + der)
            sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", csr_key, msg], capture_output=True,
                                 timeout=30, check=True).stdout
            status, r2 = ms[renew_at].call("POST", "/api/v1/certificates", json.dumps(
                {"certificate": r["certificate"] + r["chain"], "csr": csr2,
                 "signature": base64.b64encode(sig).decode()}))
            self.assertEqual(status, 200, r2)
            verify_issued(r2, renew_at)
            # spent for every replica, including the one that minted it
            for again in range(3):
                status, r = ms[again].call("POST", "/api/v1/certificates", json.dumps({"token": token, "csr": csr}))
                self.assertEqual(status, 401, r)
                self.assertIn("already used", r["error"])

    def test_mesh_on_three_replicas_survives_one(self):
        """Issue 15's acceptance: three replicas on the three-member etcd,
        each with its own intermediate; a client proxy on each replica and
        a registered workload's proxy, all over mutual TLS. An apply
        through any replica reaches every proxy within 1 s; SIGKILL a
        replica under 200 req/s of meshed traffic through its own proxy:
        nothing fails, the proxy is listed by another replica within 5 s,
        applies keep working; then SIGKILL an etcd member: applies keep
        working."""
        from test_control_failover import Load, listed, token
        d = st.make_tempdir(self, "ca-")
        _, flags = per_replica_intermediates(d, 3)
        ms = [Mesh(self, plaintext=False, extra=["--store", self.etcd.url] + flags[i]) for i in range(3)]
        addrs = [m.mesh_addr for m in ms]

        def starting_at(i):
            return ",".join(addrs[i:] + addrs[:i])

        ms[0].apply(st.service_yaml("ratings"))
        app = st.start_backend(self, "ratings", "v1")
        start_cp_proxy(self, starting_at(1), outbound=False, inbound=True,
                                app="127.0.0.1:%d" % app.port, ready=True,
                                args=["--token", token(self, ms[2], "ratings"), "--service", "ratings",
                                      "--labels", "version=v1"])
        clients = [start_cp_proxy(self, starting_at(i), args=["--token", token(self, ms[i], "productpage%d" % i),
                                                              "--service", "productpage%d" % i])
                   for i in range(3)]
        for i, c in enumerate(clients):
            wait_for(lambda: get(c.outbound_port, "ratings:9080").status == 200, 10.0,
                     "client %d reaches ratings, registered at another replica, over mTLS" % i)
            wait_for(lambda: [p for p in (listed(ms[i]) or []) if p["service"] == "productpage%d" % i], 5.0,
                     "replica %d lists its client, synced over mTLS: %r" % (i, ms[i].proxies()))

        def route(tag):
            return """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - headers: {response: {set: {x-tag: "%s"}}}
    route:
    - destination: {host: ratings}
""" % tag

        def everyone_sees(tag, who):
            t0 = time.time()
            for c in who:
                wait_for(lambda: get(c.outbound_port, "ratings:9080").header("x-tag") == tag, 1.0,
                         "%s at every proxy" % tag)
            return time.time() - t0

        for via in range(3):
            ms[via].apply(route("via%d" % via))
            self.assertLess(everyone_sees("via%d" % via, clients), 1.0)

        # every replica knows the others; proxy-status through any one shows
        # all proxies with the replica each talks to (istioctl's ISTIOD column)
        status, body = ms[0].call("GET", "/api/v1/replicas")
        self.assertEqual(status, 200, body)
        self.assertEqual(sorted(r["mesh"] for r in body["replicas"]), sorted(addrs))
        self.assertEqual([r["mesh"] for r in body["replicas"] if r["self"]], [addrs[0]])
        status, every = ms[1].call("GET", "/api/v1/proxies?all=1")
        self.assertEqual(status, 200, every)
        self.assertEqual(sorted((p["service"], p["replica"]) for p in every),
                         sorted([("productpage%d" % i, addrs[i]) for i in range(3)] + [("ratings", addrs[1])]))
        p = subprocess.run([os.path.join(st.BIN, "sinew"), "proxy-status", "--server",
                            "http://127.0.0.1:%d" % ms[2].port],
                           capture_output=True, text=True, timeout=30, env=st.proxy_env())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("REPLICA", p.stdout.splitlines()[0])
        for i in range(3):
            self.assertRegex(p.stdout, r"productpage%d-\S+ .*%s" % (i, addrs[i].replace(".", r"\.")))

        load = Load(clients[0].outbound_port, "ratings:9080", rate=200, total=1600, seconds=10.0).start()
        time.sleep(2.0)
        ms[0].p.send_signal(signal.SIGKILL)
        ms[0].p.wait(5)
        ms[0].p = None
        t_kill = time.time()
        node = wait_for(lambda: [p for r in ms[1:] for p in (listed(r) or []) if p["service"] == "productpage0"],
                        5.0, "client 0 listed by another replica")
        self.assertLess(time.time() - t_kill, 5.0)
        self.assertTrue(node[0]["mtls"])
        load.join()
        self.assertEqual(load.bad, [], "requests failed across the replica's death")
        self.assertGreater(len(load.ok_times), 1000)
        ms[1].apply(route("after-kill"))
        everyone_sees("after-kill", clients)

        self.etcd.kill(2)
        ms[2].apply(route("member-gone"))
        everyone_sees("member-gone", clients)

        # two of three members gone: no quorum; writes are refused with a
        # reason, and the mesh keeps serving what it has
        self.etcd.kill(1)
        status, body = apply(ms[1], route("no-quorum"))
        self.assertEqual(status, 500, body)
        self.assertIn("no quorum", body[0]["diagnostics"][0]["message"])
        for c in clients:
            r = get(c.outbound_port, "ratings:9080")
            self.assertEqual((r.status, r.header("x-tag")), (200, "member-gone"))

    def test_bad_store_flag(self):
        d = st.make_tempdir(self, "sinewd-bad-")
        for url, want in (("etcd://", "no etcd member"), ("http://127.0.0.1:2379", "want etcd://"),
                          ("etcd://127.0.0.1", "not HOST:PORT"),
                          ("etcd://127.0.0.1:%d" % st.closed_port(), "no etcd member could")):
            p = subprocess.run([SINEWD, "--data-dir", d, "--store", url, "--api", "127.0.0.1:%d" % st.free_port(),
                                "--mesh", "127.0.0.1:%d" % st.free_port()],
                               capture_output=True, text=True, timeout=30, env=st.proxy_env())
            self.assertEqual(p.returncode, 1, url)
            self.assertIn(want, p.stderr, url)


if __name__ == "__main__":
    st.main()
