#!/usr/bin/python3
"""A proxy that knows several sinewd replicas (issue 15;
docs/internals/control-protocol.md, "Several sinewd replicas").

Two independent sinewd processes (own --data-dir each) issue from one CA
(--ca-cert/--ca-key, made here with openssl) and one join-token secret,
and hold the same config; the mesh port is mutual TLS (the default). A
proxy joins with a token and `--control-plane A,B`:

- it uses A and traffic flows; SIGKILL A under about 200 req/s: no request
  fails, B lists the proxy within 5 s, and an apply to B afterwards is
  seen in traffic;
- `--control-plane REFUSED,HUNG,B` (nothing listens; a listener that
  never answers): the proxy bootstraps with its token at B and is ready
  in a few seconds, the hung one costing only the connect timeout;
- a replica that stops answering (SIGSTOP: its kernel still acks) is left
  for the next once heartbeats go unanswered;
- a malformed list stops sinew-proxy and `sinew run` with an error naming
  the entry."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh, CpProxy, get, version_of, REVIEWS_DR, reviews_vs  # noqa: E402

SINEW = os.path.join(st.BIN, "sinew")


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), r.stderr))


def shared_ca(test):
    """A root CA (key and self-signed certificate) and a join-token secret
    for every replica. Returns (cert, key, secret bytes)."""
    d = st.make_tempdir(test, "sinew-ca-")
    key, cert = os.path.join(d, "ca.key"), os.path.join(d, "ca.pem")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    openssl("req", "-x509", "-new", "-key", key, "-subj", "/O=sinew test/CN=failover root", "-days", "2",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", cert)
    return cert, key, os.urandom(32)


def replicas(test, n):
    """n sinewd processes, each with its own data dir, all issuing from one
    CA and verifying tokens with one secret (DATA_DIR/ca/token.key), the
    mesh port taking mutual TLS only."""
    cert, key, secret = shared_ca(test)
    out = []
    for _ in range(n):
        data = os.path.join(st.make_tempdir(test, "sinewd-"), "data")
        os.makedirs(os.path.join(data, "ca"), 0o700)
        fd = os.open(os.path.join(data, "ca", "token.key"), os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, secret)
        os.close(fd)
        out.append(Mesh(test, data_dir=data, plaintext=False, extra=["--ca-cert", cert, "--ca-key", key]))
    return out


def token(test, mesh, sa):
    r = subprocess.run([SINEW, "token", "create", "--server", "http://127.0.0.1:%d" % mesh.port,
                        "--service-account", sa], capture_output=True, text=True, timeout=20)
    test.assertEqual(r.returncode, 0, r.stderr)
    return r.stdout.strip()


def start_proxy(test, control_plane, tok, ready_in=20.0, service="productpage"):
    st.require_proxy()
    p = CpProxy(st.make_tempdir(test), control_plane, args=["--token", tok, "--service", service])
    p.start()
    test.addCleanup(st._finish_proxy, test, p, True)
    t0 = time.time()
    if not p.wait_ready(ready_in):
        p.stop()
        test.fail("proxy not ready in %.0f s\nargv: %s\n%s" % (ready_in, " ".join(p.argv()), p.stderr()[-6000:]))
    return p, time.time() - t0


def control_plane_of(p):
    st_, _, body = p.admin_get("/config_dump")
    assert st_ == 200, body
    return json.loads(body)["control_plane"]


def listed(mesh, node_id=None):
    """The proxies mesh lists (SYNCED, over mTLS), or None while there are
    none (or sinewd is not there)."""
    try:
        ps = mesh.proxies()
    except OSError:
        return None
    ps = [p for p in ps if p["state"] == "SYNCED" and p.get("mtls") and (node_id is None or p["id"] == node_id)]
    return ps or None


class Load:
    """About `rate` requests a second through a proxy's outbound from
    `threads` keep-alive clients, stopping after `total` requests or
    `seconds`, whichever comes first. Counts successes and failures, with
    the time of each success."""

    def __init__(self, port, host, rate=200, total=1600, seconds=12.0, threads=8):
        self.port, self.host = port, host
        self.interval = threads / float(rate)
        self.total, self.seconds = total, seconds
        self.ok_times, self.bad = [], []
        self.lock = threading.Lock()
        self.issued = 0
        self.threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(threads)]

    def _take(self):
        with self.lock:
            if self.issued >= self.total:
                return False
            self.issued += 1
            return True

    def _worker(self):
        c = st.KeepAliveClient(self.port, timeout=3)
        stop_at = time.time() + self.seconds
        due = time.time()
        try:
            while time.time() < stop_at and self._take():
                try:
                    r = c.request("GET", "/", host=self.host)
                    good = r.status == 200
                    what = "%d %s" % (r.status, r.header("sinew-error"))
                except Exception as e:  # noqa: BLE001 - counted as a failure
                    good, what = False, repr(e)
                with self.lock:
                    if good:
                        self.ok_times.append(time.time())
                    else:
                        self.bad.append("%.3f %s" % (time.time(), what))
                due += self.interval
                if due > time.time():
                    time.sleep(due - time.time())
        finally:
            c.close()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def join(self):
        for t in self.threads:
            t.join(self.seconds + 10)


class Failover(unittest.TestCase):
    def config(self, meshes):
        b1 = st.start_backend(self, "reviews", "v1")
        b2 = st.start_backend(self, "reviews", "v2")
        text = (st.registry_yaml({("reviews", "v1"): b1.port, ("reviews", "v2"): b2.port})
                + REVIEWS_DR + "---\n" + reviews_vs("v1"))
        for m in meshes:
            m.apply(text, "reviews.yaml")

    def test_sigkill_replica_under_load(self):
        a, b = replicas(self, 2)
        self.config([a, b])
        tok = token(self, a, "productpage")   # minted at A, good at B too (one secret)
        p, _ = start_proxy(self, "%s,%s" % (a.mesh_addr, b.mesh_addr), tok)

        # (a) on A, the first of the list; traffic flows
        on_a = st.wait_for(lambda: listed(a), 5, "A to list the proxy")
        node_id = on_a[0]["id"]
        self.assertEqual(on_a[0]["spiffeId"], "spiffe://cluster.local/ns/default/sa/productpage")
        self.assertIsNone(listed(b))
        cp = control_plane_of(p)
        self.assertEqual((cp["replica"], cp["connected"], cp["replicas"]),
                         (a.mesh_addr, True, [a.mesh_addr, b.mesh_addr]))
        self.assertRegex(cp["revision"], r"^\d+$")
        st.wait_for(lambda: version_of(get(p.outbound_port, "reviews:9080")) == "v1", 5, "v1 through the proxy")

        # (b) SIGKILL A under ~200 req/s: nothing fails, B has the proxy in 5 s
        load = Load(p.outbound_port, "reviews:9080").start()
        st.wait_for(lambda: len(load.ok_times) >= 200, 5, "load to run")
        t_kill = time.time()
        a.kill9()
        on_b = st.wait_for(lambda: listed(b, node_id), 5, "B to list the proxy")
        t_moved = time.time() - t_kill
        self.assertEqual(on_b[0]["spiffeId"], "spiffe://cluster.local/ns/default/sa/productpage")
        load.join()
        self.assertEqual(load.bad[:10], [])
        self.assertGreaterEqual(len(load.ok_times), 1000, "the load ran short")
        self.assertGreater(len([t for t in load.ok_times if t > t_kill + 1]), 200)
        self.assertLess(t_moved, 5.0)
        cp = control_plane_of(p)
        self.assertEqual((cp["replica"], cp["connected"], cp["replicas"]),
                         (b.mesh_addr, True, [a.mesh_addr, b.mesh_addr]))
        log = p.stderr()
        self.assertIn("control: lost %s (" % a.mesh_addr, log)
        self.assertIn("control: connected to %s (mutual TLS), replica 2 of 2; left %s: "
                      % (b.mesh_addr, a.mesh_addr), log)

        # (c) an apply to B reaches the proxy and shows in traffic
        b.apply(reviews_vs("v2"), "reviews-v2.yaml")
        st.wait_for(lambda: version_of(get(p.outbound_port, "reviews:9080")) == "v2", 3, "v2 through the proxy")
        for _ in range(20):
            self.assertEqual(version_of(get(p.outbound_port, "reviews:9080")), "v2")
        st.wait_for(lambda: listed(b, node_id), 5, "B to see the proxy synced")

    def test_dead_replicas_first(self):
        """(d) REFUSED and HUNG come before B: the proxy bootstraps with its
        token at B and is ready within the connect timeout and a little."""
        (b,) = replicas(self, 1)
        self.config([b])
        refused = st.closed_port()
        hung = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(hung.close)
        hung.bind((st.LOOPBACK, 0))
        hung.listen(16)   # the kernel completes the handshake; nobody ever answers
        hung_addr = "127.0.0.1:%d" % hung.getsockname()[1]
        p, took = start_proxy(self, "127.0.0.1:%d,%s,%s" % (refused, hung_addr, b.mesh_addr),
                              token(self, b, "productpage"))
        # the hung replica costs the 2 s connect timeout; the refused one nothing
        self.assertLess(took, 6.0, p.stderr()[-3000:])
        self.assertEqual(version_of(get(p.outbound_port, "reviews:9080")), "v1")
        st.wait_for(lambda: listed(b), 5, "B to list the proxy")
        cp = control_plane_of(p)
        self.assertEqual((cp["replica"], cp["connected"]), (b.mesh_addr, True))
        log = p.stderr()
        self.assertIn("connected to %s (TLS, to get a certificate), replica 3 of 3; left %s: connect timeout"
                      % (b.mesh_addr, hung_addr), log)
        self.assertIn("identity: got spiffe://cluster.local/ns/default/sa/productpage", log)
        self.assertIn("control: connected to %s (mutual TLS), replica 3 of 3" % b.mesh_addr, log)

    def test_silent_replica_is_left(self):
        """A replica that stops answering closes nothing: the proxy leaves it
        once its heartbeats go unanswered (10 s) and moves to the next."""
        a, b = replicas(self, 2)
        self.config([a, b])
        p, _ = start_proxy(self, "%s,%s" % (a.mesh_addr, b.mesh_addr), token(self, a, "productpage"))
        node_id = st.wait_for(lambda: listed(a), 5, "A to list the proxy")[0]["id"]
        a.p.send_signal(signal.SIGSTOP)
        self.addCleanup(a.kill9)
        t0 = time.time()
        st.wait_for(lambda: listed(b, node_id), 20, "B to list the proxy", interval=0.2)
        self.assertLess(time.time() - t0, 15.0)
        self.assertIn("control: lost %s (heartbeat missing: sinewd answered no PING in 9 s)" % a.mesh_addr,
                      p.stderr())
        self.assertEqual(version_of(get(p.outbound_port, "reviews:9080")), "v1")


class BadLists(unittest.TestCase):
    def test_malformed_lists(self):
        """(e) each bad list stops sinew-proxy at once, naming the entry."""
        st.require_proxy()
        cases = [
            ("127.0.0.1:15012,nonsense", 'entry 2 ("nonsense"): want IP:PORT'),
            ("127.0.0.1:15012,,127.0.0.1:15013", "entry 2 is empty"),
            ("127.0.0.1:15012,127.0.0.1:0", 'entry 2 ("127.0.0.1:0"): want IP:PORT'),
            ("127.0.0.1:15012,127.0.0.1:15012", "entry 2 (127.0.0.1:15012) repeats entry 1"),
            (",".join("127.0.0.1:%d" % (15012 + i) for i in range(9)), "more than 8 addresses"),
        ]
        for arg, want in cases:
            with self.subTest(arg=arg):
                r = subprocess.run([st.PROXY, "--control-plane", arg, "--outbound", "127.0.0.1:0"],
                                   capture_output=True, text=True, timeout=20, env=st.proxy_env())
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn("sinew-proxy: --control-plane %s: %s" % (arg, want), r.stderr)
        # sinew run checks the list before anything else happens
        r = subprocess.run([SINEW, "run", "--no-capture", "--service", "shop", "--control-plane",
                            "127.0.0.1:15012,10.0.0.1", "--", "true"],
                           capture_output=True, text=True, timeout=20, env=st.proxy_env())
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('--control-plane 127.0.0.1:15012,10.0.0.1: entry 2 ("10.0.0.1"): want IPV4:PORT', r.stderr)


if __name__ == "__main__":
    st.main()
