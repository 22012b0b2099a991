#!/usr/bin/python3
"""Sinew's benchmark suite: sinew-proxy against HAProxy and nginx, side by
side, against a direct connection, in the same run (issue 3, "MB2" shape).

    make bench            # ~14 min, results in bench/results/full.{md,json}
    make bench QUICK=1    # ~4 min, results in bench/results/quick.{md,json}
    SINEW_BIN=build/bench-rel/bin python3 bench/run.py --quick
    SCENARIOS=J1 python3 bench/run.py --quick   # some scenarios only: results
                                                # in bench/results/quick-J1.{md,json}
    python3 bench/run.py --quick --scenarios T --out /tmp/bench   # T alone, elsewhere

Topology: two network namespaces made here, joined by a veth pair
(10.77.0.1 client side, 10.77.0.2 server side), deleted at the end; nothing
touches the host's interfaces. The origin (nginx, static 1 KiB) runs in the
server namespace on 127.0.0.1:8080 and 10.77.0.2:8080.

  S0 direct   client ─veth─▶ origin
  S1 one hop  client ─veth─▶ proxy(server ns) ─lo─▶ origin
  S2 sidecars client ─lo─▶ proxy(client ns) ─veth─▶ proxy(server ns) ─lo─▶ origin
  P2 mTLS     S2 with mutual TLS 1.3 (ECDSA P-256 SPIFFE certificates) on
              the veth hop between the two proxies
  H1 HTTP/2   S1 with the client speaking HTTP/2 with prior knowledge (h2c)
              to the proxy, H2_STREAMS streams per connection and 1/H2_STREAMS
              of the cell's connections (the same requests in flight); the
              proxy speaks HTTP/1.1 to the origin. Each proxy runs H1 in a
              process of its own (like P2), so S1's memory figures are S1's
              alone; nginx's H1 listener is "listen ... http2" (nginx 1.22
              speaks only HTTP/2 there)
  H2 HTTP/2   S2 with HTTP/2 from the client (as H1) and on the hop between
     pair     the proxies (sinew-proxy: the Service port is named http2;
              HAProxy: "proto h2"); HTTP/1.1 to the origin. nginx cannot
              proxy HTTP/2 to an upstream (only gRPC), so its middle hop is
              HTTP/1.1: its H2 row is HTTP/2 at the edge only
  G0 direct   gRPC-shaped unary calls straight to the gRPC origin: nghttpd
     gRPC     (nghttp2-server) answering POST /grpc.bench.Echo/Unary with a
              5-byte-framed message and the trailer grpc-status: 0; G1's
              baseline (S0 is the others')
  G1 gRPC     the same calls through one proxy, HTTP/2 on both sides
     one hop  (sinew-proxy: Service port named grpc; HAProxy: "proto h2";
              nginx: grpc_pass); content-type application/grpc and
              te: trailers, 100-byte requests, the trailers relayed
              (checked with nghttp before measuring)

  J0/J1 JWT   sinew-proxy only (issue 13's cost of JWT verification): S1's
              inbound hop twice, in processes of their own. J1: with a
              RequestAuthentication (bench/conf/sinew-server-jwt.yaml, one
              rule, an inline JWKS with an ES256 key made at start), every
              request carrying the same valid ES256 token in
              "Authorization: Bearer" (as a client reuses its token),
              forwarded to the app (forwardOriginalToken); J0: the same
              requests, the same token, without a RequestAuthentication
              (forwarded as any header), so only the verification
              differs (bench/jwt_cost.py counts it in instructions). 1000
              req/s × 16 connections, J0 and J1 back to back in each
              repetition; CPU from schedstat (ns, all threads). Before
              measuring: J1 must answer the token 200 (counted by
              sinew_jwt_valid_total) and a corrupted one 401 jwt_invalid,
              J0 must not check tokens; otherwise J1 has no figures and
              the run exits 1. Target: J1's CPU per 1000 req/s ≤ 1.10× J0's.

  T0/T1/T100  sinew-proxy only (issue 12's cost of tracing; --scenarios
  tracing     names them T): the client-side (outbound) hop routing Host:
              origin (a VirtualService) over the veth to the origin, in
              three processes of their own (bench/conf/sinew-client-
              trace.yaml): T0 with the mesh config's enableTracing: false,
              T1 and T100 with it on and a Telemetry resource's
              randomSamplingPercentage 1 and 100. Spans go as OTLP/HTTP
              JSON to a collector on the client namespace's loopback
              (COLLECTOR_CODE: a Python HTTP server, one port per
              scenario, counting the spans it parses). Unpinned, proxy and
              load generator sharing both cores, as a sidecar lives: a cost
              target counts only if it holds there. 1000 req/s × 16
              connections, then TRACE_SETTLE s for the last batch, all
              inside the CPU window; T0, T1, T100 interleaved in each
              repetition, the order rotating; CPU from schedstat. Before
              measuring (verify_trace), a burst through each: T100 must
              export at least one span per request within
              TRACE_EXPORT_WAIT s, T0 none, T1 about 1 % (TRACE_T1_SHARE);
              during the cells, T0 none and T100 one per request. A
              scenario failing its checks has no figures (T1 and T100 none
              without T0) and the run exits 1. Targets: T1's CPU per 1000
              req/s ≤ 1.03× T0's, T100's ≤ 1.15× (medians of the
              per-repetition ratios).

P2 runs its own pair of processes per proxy (other ports), configured as
for S2 plus TLS; the certificates are made at start with the openssl CLI.
Before measuring, each P2 pair is checked to really speak mutual TLS 1.3
(verify_p2); a pair that does not gets no P2 figures.

Each proxy (sinew-proxy, HAProxy, nginx) runs one worker with upstream
keep-alive and no logs (configs in bench/conf/). CPU placement on the
2-core machine: proxies on CPU 1, load generator and origin on CPU 0
(T's proxies, load generator and collector: unpinned).

Cells: 1000 req/s × 16 connections, 5000 req/s × 16, and saturation
(--qps 0) × 64. Each repetition runs every cell for S0 and for every proxy
in S1, S2 and P2, proxies in a rotating order; S0 is re-run every repetition
and deltas are taken against the S0 of the same repetition.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
CONF = os.path.join(HERE, "conf")
RESULTS = os.path.join(HERE, "results")

CLI_ADDR, SRV_ADDR = "10.77.0.1", "10.77.0.2"
ORIGIN_PORT = 8080
PROXIES = ["sinew", "haproxy", "nginx"]
SCENARIOS = ("S1", "S2", "P2", "H1", "H2", "G1")
BASELINES = ("S0", "G0")     # direct: no proxy
# sinew-proxy alone: its inbound hop without (J0) and with (J1) JWT
# verification; --scenarios names them J1.
JWT_SCENARIOS = ("J0", "J1")
# sinew-proxy alone: its outbound hop with tracing off (T0), sampling 1 %
# (T1) and 100 % (T100), unpinned; --scenarios names them T.
TRACE_SCENARIOS = ("T0", "T1", "T100")
SELECTABLE = SCENARIOS + ("J1", "T")


def baseline(scen):
    """The direct run a scenario's added latency is taken against."""
    return "G0" if scen == "G1" else "S0"


def needed_baselines(scens):
    """The direct runs the scenarios scens need, in BASELINES' order."""
    want = {baseline(s) for s in scens} | ({"S0"} if scens else set())   # S0: the noise floor, always
    return [b for b in BASELINES if b in want]

H2_STREAMS = 8
# Server-side listener and S2 client-side listener per proxy.
SRV_PORT = {"sinew": 15006, "haproxy": 15106, "nginx": 15206}
CLI_PORT = {"sinew": 15001, "haproxy": 15101, "nginx": 15201}
# The same for P2's pairs (bench/conf/sinew-client-mtls.yaml names 15016).
P2_SRV_PORT = {"sinew": 15016, "haproxy": 15116, "nginx": 15216}
P2_CLI_PORT = {"sinew": 15011, "haproxy": 15111, "nginx": 15211}
P2_ADMIN = "127.0.0.1:15021"
H1_SRV_PORT = {"sinew": 15007, "haproxy": 15107, "nginx": 15207}   # H1's own processes
H1_ADMIN = "127.0.0.1:15022"   # the H1 sinew-proxy's admin
H2_SRV_PORT = {"sinew": 15008, "haproxy": 15108, "nginx": 15208}   # H2's pairs (sinew-client-h2.yaml names 15008)
H2_CLI_PORT = {"sinew": 15003, "haproxy": 15103, "nginx": 15203}
H2_ADMIN = "127.0.0.1:15023"
G1_SRV_PORT = {"sinew": 15009, "haproxy": 15109, "nginx": 15209}
G1_ADMIN = "127.0.0.1:15024"
J_SRV_PORT = {"J0": 15013, "J1": 15012}   # J0/J1's own sinew-proxy processes
J_ADMIN = {"J0": "127.0.0.1:15026", "J1": "127.0.0.1:15025"}
JWT_ISSUER = "https://issuer.bench.sinew"
JWT_AUDIENCE = "origin"
JWT_KID = "bench-es256"
JWT_TARGET = 1.10            # issue 13: J1's CPU per 1000 req/s ≤ 1.10 × J0's
# T0/T1/T100: their own sinew-proxy processes in the client namespace
# (bench/conf/sinew-client-trace.yaml), each exporting to its own port of
# the one OTLP collector (COLLECTOR_CODE) on the namespace's loopback.
T_CLI_PORT = {"T0": 15040, "T1": 15041, "T100": 15042}
T_ADMIN = {"T0": "127.0.0.1:15027", "T1": "127.0.0.1:15028", "T100": "127.0.0.1:15029"}
T_COLLECTOR_PORT = {"T0": 4318, "T1": 4319, "T100": 4320}
T_ENABLE = {"T0": "false", "T1": "true", "T100": "true"}   # the mesh config's enableTracing
T_PCT = {"T0": 100, "T1": 1, "T100": 100}   # Telemetry randomSamplingPercentage (T0's is switched off)
TRACE_TARGET = {"T1": 1.03, "T100": 1.15}   # issue 12: CPU per 1000 req/s over T0's
TRACE_CHECK_N = {"T0": 500, "T1": 3000, "T100": 500}   # requests of each check burst
TRACE_T1_SHARE = (0.004, 0.02)   # T1's sampled share of its check burst: "about 1 %" (expect 30 ± 5.5 of 3000)
TRACE_EXPORT_WAIT = 5.0   # s: T100's spans must all have arrived by then
TRACE_QUIET_WAIT = 2.5    # s after a burst before T0's and T1's counts are final (batches flush each second)
TRACE_SETTLE = 1.2        # s after a cell's load, inside its CPU window: the last batch goes out
GRPC_ORIGIN_PORT = 8082      # nghttpd, h2c, in the server namespace (all its addresses)
GRPC_PATH = "/grpc.bench.Echo/Unary"
GRPC_HEADERS = ["-m", "POST", "-b", "100", "-H", "content-type: application/grpc", "-H", "te: trailers"]
# P2 identities: X.509-SVIDs of this trust domain, in the namespace the
# proxies run in (--namespace bench); the client-side sinew-proxy expects
# the server's to be its WorkloadEntry's serviceAccount.
TRUST_DOMAIN = "cluster.local"
BENCH_NS = "bench"
P2_SUITE = "TLS_AES_128_GCM_SHA256"   # what every pair must negotiate
PROXY_CPU, CLIENT_CPU = 1, 0
PATH = "/1k"
HOST = "origin"

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(msg):
    print(msg, flush=True)


ALL_CPUS = set(os.sched_getaffinity(0))


def cpus(cpu):
    """The affinity of a process pinned to cpu; None: unpinned (every CPU
    the bench itself may run on)."""
    return set(ALL_CPUS) if cpu is None else {cpu}


# --------------------------------------------------------------------------
# P2's certificates

SVID_EXT = """[v3]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = URI:%s
"""


def spiffe_id(sa):
    return "spiffe://%s/ns/%s/sa/%s" % (TRUST_DOMAIN, BENCH_NS, sa)


def make_pki(d):
    """A P-256 root and two P-256 X.509-SVID leaves under d, made as
    tests/integration/test_mtls.py makes them (docs/internals/identity.md):
    origin.{pem,key} for the server-side proxies, client.{pem,key} for the
    client-side ones; NAME.crtkey is leaf and key in one file (HAProxy's
    crt). The leaves' subject also has CN=<service account>: HAProxy's
    verifyhost and nginx's proxy_ssl_verify can only check a host name (a
    DNS SAN, else the CN), not the URI SAN sinew-proxy checks. stranger.*:
    a leaf with the client's name from another root, for the negative
    check."""
    os.makedirs(d)

    def openssl(*argv):
        r = subprocess.run(["openssl"] + list(argv), capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("openssl %s: %s" % (argv[0], r.stderr.strip()))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for root, subj in (("root", "/O=sinew/OU=%s/CN=bench root" % TRUST_DOMAIN),
                       ("stranger-root", "/O=stranger/CN=other root")):
        openssl("req", "-x509", *ec, "-keyout", os.path.join(d, root + ".key"),
                "-out", os.path.join(d, root + ".pem"), "-subj", subj, "-days", "2",
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, sa, root in (("origin", "origin", "root"), ("client", "client", "root"),
                           ("stranger", "client", "stranger-root")):
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write(SVID_EXT % spiffe_id(sa))
        key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".pem")
        openssl("req", "-new", *ec, "-keyout", key, "-out", os.path.join(d, name + ".csr"),
                "-subj", "/O=sinew/CN=%s" % sa)
        openssl("x509", "-req", "-in", os.path.join(d, name + ".csr"), "-CA", os.path.join(d, root + ".pem"),
                "-CAkey", os.path.join(d, root + ".key"), "-CAcreateserial", "-days", "1",
                "-extfile", os.path.join(d, name + ".ext"), "-extensions", "v3", "-out", crt)
        with open(os.path.join(d, name + ".crtkey"), "w") as f:
            f.write(open(crt).read() + open(key).read())


# --------------------------------------------------------------------------
# J1's key and token

def make_jwt():
    """An ES256 key made here, minted as tests/integration/test_jwt.py
    does (python3-jwt, python3-cryptography): (JWKS text for the
    RequestAuthentication, a valid token, the same token with its
    signature corrupted)."""
    sys.path.insert(0, "/usr/lib/python3/dist-packages")
    try:
        import base64
        import jwt
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError as e:
        raise RuntimeError("J1 needs python3-jwt and python3-cryptography (scripts/deps.sh bench): %s" % e)

    def b64(n):
        return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key().public_numbers()
    jwks = json.dumps({"keys": [{"kty": "EC", "kid": JWT_KID, "crv": "P-256", "alg": "ES256",
                                 "x": b64(pub.x), "y": b64(pub.y)}]})
    now = int(time.time())
    tok = jwt.encode({"iss": JWT_ISSUER, "sub": "bench-client", "aud": JWT_AUDIENCE, "iat": now,
                      "exp": now + 86400}, key, algorithm="ES256", headers={"kid": JWT_KID})
    if isinstance(tok, bytes):
        tok = tok.decode()
    head, payload, sig = tok.split(".")
    i = len(sig) // 2   # a character in the middle of the signature: r or s changes
    bad = "%s.%s.%s%s%s" % (head, payload, sig[:i], "A" if sig[i] != "A" else "B", sig[i + 1:])
    return jwks, tok, bad


# --------------------------------------------------------------------------
# T's OTLP collector

# An OTLP/HTTP JSON receiver, run with python3 -c in the client namespace,
# listening on 127.0.0.1 at each port given: a POST to /v1/traces is
# parsed (resourceSpans → scopeSpans → spans) and its spans counted under
# the port it came to, those whose traceId/spanId are not 32/16 hex
# digits counted as bad; any other POST is answered 400 and counted bad.
# A GET answers the counts as JSON, {port: {"spans", "posts", "bad"}}.
COLLECTOR_CODE = r"""
import http.server, json, re, sys, threading
ports = [int(p) for p in sys.argv[1:]]
counts = {p: {"spans": 0, "posts": 0, "bad": 0} for p in ports}
lock = threading.Lock()
tid, sid = re.compile("[0-9a-f]{32}"), re.compile("[0-9a-f]{16}")
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def reply(self, code, body):
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        with lock:
            body = json.dumps(counts).encode()
        self.reply(200, body)
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        n = bad = 0
        try:
            if self.path != "/v1/traces":
                raise ValueError(self.path)
            for rs in json.loads(body)["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for sp in ss["spans"]:
                        n += 1
                        if not (tid.fullmatch(sp["traceId"]) and sid.fullmatch(sp["spanId"])):
                            bad += 1
        except (ValueError, KeyError, TypeError):
            bad += 1
        with lock:
            c = counts[self.server.server_address[1]]
            c["posts"] += 1
            c["spans"] += n
            c["bad"] += bad
        self.reply(400 if bad else 200, b"{}")
for p in ports:
    s = http.server.ThreadingHTTPServer(("127.0.0.1", p), H)
    threading.Thread(target=s.serve_forever, daemon=True).start()
print("listening on", ports, flush=True)
threading.Event().wait()
"""


# --------------------------------------------------------------------------
# processes and namespaces

class Bench:
    def __init__(self, args):
        self.args = args
        self.tag = str(os.getpid())
        self.ns_cli = "sinewbench-c-" + self.tag
        self.ns_srv = "sinewbench-s-" + self.tag
        self.procs = {}          # name -> Popen
        self.dir = tempfile.mkdtemp(prefix="sinew-bench-")
        self.ns_made = []

    # -- namespaces -------------------------------------------------------

    def sh(self, *argv, check=True):
        r = subprocess.run(argv, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr.strip()))
        return r

    def setup_netns(self):
        # Leftovers of a run that was killed (its pid is gone).
        r = self.sh("ip", "netns", "list", check=False)
        for line in r.stdout.splitlines():
            m = re.match(r"(sinewbench-[cs]-(\d+))", line)
            if m and not os.path.exists("/proc/" + m.group(2)):
                self.sh("ip", "netns", "del", m.group(1), check=False)
        veth_c, veth_s = "snbc" + self.tag, "snbs" + self.tag
        for ns in (self.ns_cli, self.ns_srv):
            self.sh("ip", "netns", "add", ns)
            self.ns_made.append(ns)
            self.sh("ip", "-n", ns, "link", "set", "lo", "up")
        # Created inside the client namespace, then one end moved: the host
        # never holds either end.
        self.sh("ip", "-n", self.ns_cli, "link", "add", veth_c, "type", "veth", "peer", "name", veth_s)
        self.sh("ip", "-n", self.ns_cli, "link", "set", veth_s, "netns", self.ns_srv)
        self.sh("ip", "-n", self.ns_cli, "addr", "add", CLI_ADDR + "/24", "dev", veth_c)
        self.sh("ip", "-n", self.ns_srv, "addr", "add", SRV_ADDR + "/24", "dev", veth_s)
        self.sh("ip", "-n", self.ns_cli, "link", "set", veth_c, "up")
        self.sh("ip", "-n", self.ns_srv, "link", "set", veth_s, "up")

    def cleanup(self):
        for name, p in list(self.procs.items()):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()
        for ns in self.ns_made:
            self.sh("ip", "netns", "del", ns, check=False)
        self.ns_made = []
        shutil.rmtree(self.dir, True)

    def spawn(self, name, ns, argv, cpu, **kw):
        """Starts argv in ns as name, pinned to cpu (None: unpinned, on
        every CPU the bench may use)."""
        def pre():
            os.setsid()
            os.sched_setaffinity(0, cpus(cpu))
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", open(os.path.join(self.dir, name + ".out"), "w"))
        kw.setdefault("stderr", subprocess.STDOUT)
        # ip netns exec execs argv in place: the Popen pid is the program's.
        p = subprocess.Popen(["ip", "netns", "exec", ns] + argv, preexec_fn=pre, **kw)
        self.procs[name] = p
        return p

    def run_in(self, ns, argv, cpu, timeout):
        def pre():
            os.sched_setaffinity(0, cpus(cpu))
        return subprocess.run(["ip", "netns", "exec", ns] + argv, capture_output=True, text=True,
                              timeout=timeout, preexec_fn=pre)

    # -- servers ----------------------------------------------------------

    def template(self, src, name, **subst):
        text = open(os.path.join(CONF, src)).read()
        subst.setdefault("DIR", self.dir)
        subst.setdefault("NAME", name)
        for k, v in subst.items():
            text = text.replace("@%s@" % k, str(v))
        path = os.path.join(self.dir, name + "-" + src)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_servers(self):
        os.makedirs(os.path.join(self.dir, "www"))
        with open(os.path.join(self.dir, "www", "1k"), "wb") as f:
            f.write(b"s" * 1024)
        self.pki = os.path.join(self.dir, "pki")
        make_pki(self.pki)
        cfg = self.template("origin-nginx.conf", "origin", ORIGIN_ADDR=SRV_ADDR)
        self.spawn("origin", self.ns_srv, ["nginx", "-e", os.path.join(self.dir, "origin.err"), "-c", cfg],
                   CLIENT_CPU)
        # The gRPC origin: a 5-byte-framed 20-byte message, grpc-status 0
        # in the trailers; on every address of the server namespace (its
        # loopback for the proxies, the veth for G0), as the origin is.
        grpc_www = os.path.join(self.dir, "grpc-www", GRPC_PATH.strip("/").split("/")[0])
        os.makedirs(grpc_www)
        with open(os.path.join(grpc_www, "Unary"), "wb") as f:
            f.write(b"\x00\x00\x00\x00\x14" + b"g" * 20)
        self.spawn("grpc-origin", self.ns_srv,
                   ["nghttpd", "--no-tls", "-a", "0.0.0.0", "-d", os.path.join(self.dir, "grpc-www"),
                    "--trailer", "grpc-status: 0", str(GRPC_ORIGIN_PORT)], CLIENT_CPU)
        proxy_bin = os.path.join(self.args.sinew_bin, "sinew-proxy")
        common = ["--workers", "1", "--log-level", "error", "--namespace", BENCH_NS]

        def tls(name):
            return ["--tls-cert", os.path.join(self.pki, name + ".pem"),
                    "--tls-key", os.path.join(self.pki, name + ".key"),
                    "--tls-bundle", os.path.join(self.pki, "root.pem"), "--trust-domain", TRUST_DOMAIN]
        # sinew-proxy: server side (inbound → app) and client side (outbound, routes Host: origin).
        self.spawn("sinew-srv", self.ns_srv,
                   [proxy_bin, "--config", os.path.join(CONF, "sinew-server.yaml"),
                    "--inbound", "%s:%d" % (SRV_ADDR, SRV_PORT["sinew"]),
                    "--app", "127.0.0.1:%d" % ORIGIN_PORT, "--admin", "127.0.0.1:15020",
                    "--service", "origin"] + common, PROXY_CPU)
        self.spawn("sinew-cli", self.ns_cli,
                   [proxy_bin, "--config", os.path.join(CONF, "sinew-client.yaml"),
                    "--outbound", "127.0.0.1:%d" % CLI_PORT["sinew"], "--admin", "127.0.0.1:15020",
                    "--service", "client"] + common, PROXY_CPU)
        # P2: the same with identities, STRICT inbound and ISTIO_MUTUAL outbound.
        self.spawn("sinew-p2srv", self.ns_srv,
                   [proxy_bin, "--config", os.path.join(CONF, "sinew-server-mtls.yaml"),
                    "--inbound", "%s:%d" % (SRV_ADDR, P2_SRV_PORT["sinew"]),
                    "--app", "127.0.0.1:%d" % ORIGIN_PORT, "--admin", P2_ADMIN,
                    "--service", "origin", "--service-account", "origin"] + common + tls("origin"), PROXY_CPU)
        self.spawn("sinew-p2cli", self.ns_cli,
                   [proxy_bin, "--config", os.path.join(CONF, "sinew-client-mtls.yaml"),
                    "--outbound", "127.0.0.1:%d" % P2_CLI_PORT["sinew"], "--admin", P2_ADMIN,
                    "--service", "client", "--service-account", "client"] + common + tls("client"), PROXY_CPU)
        # H1: HTTP/2 from the client, a process of its own.
        self.spawn("sinew-h1srv", self.ns_srv,
                   [proxy_bin, "--config", os.path.join(CONF, "sinew-server.yaml"),
                    "--inbound", "%s:%d" % (SRV_ADDR, H1_SRV_PORT["sinew"]),
                    "--app", "127.0.0.1:%d" % ORIGIN_PORT, "--admin", H1_ADMIN,
                    "--service", "origin"] + common, PROXY_CPU)
        # H2: a pair speaking HTTP/2 between them; G1: gRPC to nghttpd.
        self.spawn("sinew-h2srv", self.ns_srv,
                   [proxy_bin, "--config", os.path.join(CONF, "sinew-server.yaml"),
                    "--inbound", "%s:%d" % (SRV_ADDR, H2_SRV_PORT["sinew"]),
                    "--app", "127.0.0.1:%d" % ORIGIN_PORT, "--admin", H2_ADMIN,
                    "--service", "origin"] + common, PROXY_CPU)
        self.spawn("sinew-h2cli", self.ns_cli,
                   [proxy_bin, "--config", os.path.join(CONF, "sinew-client-h2.yaml"),
                    "--outbound", "127.0.0.1:%d" % H2_CLI_PORT["sinew"], "--admin", H2_ADMIN,
                    "--service", "client"] + common, PROXY_CPU)
        self.spawn("sinew-g1srv", self.ns_srv,
                   [proxy_bin, "--config", os.path.join(CONF, "sinew-grpc-server.yaml"),
                    "--inbound", "%s:%d" % (SRV_ADDR, G1_SRV_PORT["sinew"]),
                    "--app", "127.0.0.1:%d" % GRPC_ORIGIN_PORT, "--admin", G1_ADMIN,
                    "--service", "origin"] + common, PROXY_CPU)
        # J1: sinew-proxy's inbound hop with a RequestAuthentication, and
        # J0, its baseline, without; processes of their own.
        self.jwt_token = self.jwt_bad = None
        if self.args.jwt:
            jwks, self.jwt_token, self.jwt_bad = make_jwt()
            jcfg = {"J1": self.template("sinew-server-jwt.yaml", "j1", ISSUER=JWT_ISSUER, AUDIENCE=JWT_AUDIENCE,
                                        JWKS=jwks),
                    "J0": os.path.join(CONF, "sinew-server.yaml")}
            for scen in JWT_SCENARIOS:
                self.spawn("sinew-%ssrv" % scen.lower(), self.ns_srv,
                           [proxy_bin, "--config", jcfg[scen],
                            "--inbound", "%s:%d" % (SRV_ADDR, J_SRV_PORT[scen]),
                            "--app", "127.0.0.1:%d" % ORIGIN_PORT, "--admin", J_ADMIN[scen],
                            "--service", "origin"] + common, PROXY_CPU)
        # T0/T1/T100: sinew-proxy's outbound hop with tracing off, at 1 %
        # and at 100 %, unpinned (a cost target must hold as a sidecar
        # lives: sharing the cores with its app and the load generator),
        # and the OTLP collector their spans go to.
        self.trace_down = {}
        if self.args.trace:
            self.spawn("collector", self.ns_cli, ["/usr/bin/python3", "-c", COLLECTOR_CODE] +
                       [str(T_COLLECTOR_PORT[s]) for s in TRACE_SCENARIOS], None)
            for scen in TRACE_SCENARIOS:
                cfg = self.template("sinew-client-trace.yaml", scen.lower(), ENABLE=T_ENABLE[scen],
                                    PCT=T_PCT[scen], COLLECTOR_PORT=T_COLLECTOR_PORT[scen])
                self.spawn("sinew-%scli" % scen.lower(), self.ns_cli,
                           [proxy_bin, "--config", cfg, "--outbound", "127.0.0.1:%d" % T_CLI_PORT[scen],
                            "--admin", T_ADMIN[scen], "--service", "client"] + common, None)
        # HAProxy and nginx: (process, namespace, listener, upstream, TLS role).
        hops = {}
        for proxy in ("haproxy", "nginx"):
            hops[proxy] = (
                ("srv", self.ns_srv, "%s:%d" % (SRV_ADDR, SRV_PORT[proxy]), "127.0.0.1:%d" % ORIGIN_PORT, "none"),
                ("cli", self.ns_cli, "127.0.0.1:%d" % CLI_PORT[proxy], "%s:%d" % (SRV_ADDR, SRV_PORT[proxy]), "none"),
                ("p2srv", self.ns_srv, "%s:%d" % (SRV_ADDR, P2_SRV_PORT[proxy]), "127.0.0.1:%d" % ORIGIN_PORT,
                 "server"),
                ("p2cli", self.ns_cli, "127.0.0.1:%d" % P2_CLI_PORT[proxy], "%s:%d" % (SRV_ADDR, P2_SRV_PORT[proxy]),
                 "client"),
                ("h1srv", self.ns_srv, "%s:%d" % (SRV_ADDR, H1_SRV_PORT[proxy]), "127.0.0.1:%d" % ORIGIN_PORT,
                 "none"),
                ("h2srv", self.ns_srv, "%s:%d" % (SRV_ADDR, H2_SRV_PORT[proxy]), "127.0.0.1:%d" % ORIGIN_PORT,
                 "none"),
                ("h2cli", self.ns_cli, "127.0.0.1:%d" % H2_CLI_PORT[proxy], "%s:%d" % (SRV_ADDR, H2_SRV_PORT[proxy]),
                 "none"),
                ("g1srv", self.ns_srv, "%s:%d" % (SRV_ADDR, G1_SRV_PORT[proxy]),
                 "127.0.0.1:%d" % GRPC_ORIGIN_PORT, "none"))
        for side, ns, listen, up, role in hops["haproxy"]:
            cfg = self.template("haproxy.cfg", "haproxy-" + side, LISTEN=listen, UPSTREAM=up,
                                MAXCONN=self.args.haproxy_maxconn, TLS=role, PKI=self.pki,
                                SERVER_OPTS="proto h2" if side in ("h2cli", "g1srv") else "")
            self.spawn("haproxy-" + side, ns, ["haproxy", "-db", "-f", cfg], PROXY_CPU)
        for side, ns, listen, up, role in hops["nginx"]:
            name = "nginx-" + side
            if side == "g1srv":
                cfg = self.template("nginx-grpc.conf", name, LISTEN=listen, UPSTREAM=up)
                self.spawn(name, ns, ["nginx", "-e", os.path.join(self.dir, name + ".err"), "-c", cfg], PROXY_CPU)
                continue
            server_tls = proxy_tls = ""
            if role == "server":
                listen += " ssl"
                server_tls = "include %s;" % self.template("nginx-mtls-server.conf", name, PKI=self.pki)
            elif role == "client":
                proxy_tls = "include %s;" % self.template("nginx-mtls-client.conf", name, PKI=self.pki)
            if side in ("h1srv", "h2cli"):
                listen += " http2"
            cfg = self.template("nginx-proxy.conf", name, LISTEN=listen, UPSTREAM=up, SERVER_TLS=server_tls,
                                PROXY_TLS=proxy_tls, SCHEME="https" if role == "client" else "http")
            self.spawn(name, ns, ["nginx", "-e", os.path.join(self.dir, name + ".err"), "-c", cfg], PROXY_CPU)
        # Ready when a few requests pass end to end on every path. A P2
        # pair that never answers only loses its P2 figures (verify_p2).
        self.p2_down = {}
        deadline = time.time() + 15
        paths = [(b, None) for b in needed_baselines(self.args.scenarios)] + \
            [(s, p) for s in self.args.scenarios for p in PROXIES] + \
            [(s, "sinew") for s in (JWT_SCENARIOS if self.args.jwt else ())] + \
            [(s, "sinew") for s in (TRACE_SCENARIOS if self.args.trace else ())]
        self.jwt_down = None
        for scen, proxy in paths:
            while True:
                probe = ["--qps", "100", "-c", "1", "-n", "3", "--timeout", "1s"]
                if scen in JWT_SCENARIOS:
                    # Up, without a token (which passes authentication):
                    # whether tokens are verified is verify_jwt's to say.
                    r = self.load_url(self.ns_cli, self.url(scen, proxy), probe)
                else:
                    r = self.load(scen, proxy, probe, timeout=10)
                if r is not None and r.get("errors_total") == 0 and r.get("completed") == 3:
                    break
                if time.time() > deadline:
                    names = [n for n in self.procs if (scen != "P2" or n.startswith(proxy + "-p2")) and
                             (scen not in JWT_SCENARIOS or n == "sinew-%ssrv" % scen.lower()) and
                             (scen not in TRACE_SCENARIOS or n in ("sinew-%scli" % scen.lower(), "collector"))]
                    for name in names:
                        p = self.procs[name]
                        if p.poll() is not None:
                            log("  %s exited with %s; its output:" % (name, p.returncode))
                            log(open(os.path.join(self.dir, name + ".out")).read()[-2000:])
                    if scen == "P2":
                        self.p2_down[proxy] = "the pair never answered: %r" % (r and r.get("errors"))
                        log("bench: P2 %s %s" % (proxy, self.p2_down[proxy]))
                        break
                    if scen in JWT_SCENARIOS:
                        self.jwt_down = "%s's sinew-proxy never answered: %r" % (scen, r and r.get("errors"))
                        log("bench: %s" % self.jwt_down)
                        break
                    if scen in TRACE_SCENARIOS:
                        self.trace_down[scen] = "its sinew-proxy never answered: %r" % (r and r.get("errors"))
                        log("bench: %s %s" % (scen, self.trace_down[scen]))
                        break
                    raise RuntimeError("%s %s never answered: %r" % (scen, proxy or "direct", r))
                time.sleep(0.2)
        if "G1" in self.args.scenarios:
            self.verify_grpc()

    def verify_grpc(self):
        """G0 and G1 must be gRPC end to end: with nghttp, one call per path
        must come back 200 with the trailer grpc-status: 0 (the proxy
        relays trailers), and sinew-proxy must count it as gRPC."""
        body = os.path.join(self.dir, "grpc-body")
        with open(body, "wb") as f:
            f.write(b"\x00\x00\x00\x00\x5f" + b"q" * 95)
        for proxy in [None] + PROXIES:
            url = self.url("G0" if proxy is None else "G1", proxy, GRPC_PATH)
            r = self.run_in(self.ns_cli, ["nghttp", "-v", "-d", body, "-H", "content-type: application/grpc",
                                          "-H", "te: trailers", "-H", ":authority: " + HOST, url], CLIENT_CPU, 10)
            out = r.stdout + r.stderr
            if ":status: 200" not in out or not re.search(r"recv \(stream_id=\d+\) grpc-status: 0", out):
                raise RuntimeError("G1 %s: no gRPC answer with trailers through it:\n%s" % (proxy or "direct",
                                                                                          out[-1500:]))
        status, text = self.http_get(self.ns_srv, "http://%s/metrics" % G1_ADMIN)
        if status != 200 or not re.search(r'sinew_requests_total\{[^}]*request_protocol="grpc"[^}]*'
                                          r'grpc_response_status="0"', text or ""):
            raise RuntimeError("G1 sinew: the calls were not counted as gRPC: %s" % (text or "")[-800:])

    def pids(self, scen, proxy):
        if scen == "S1":
            return [self.procs[proxy + "-srv"].pid]
        if scen == "H1":
            return [self.procs[proxy + "-h1srv"].pid]
        if scen == "H2":
            return [self.procs[proxy + "-h2cli"].pid, self.procs[proxy + "-h2srv"].pid]
        if scen == "G1":
            return [self.procs[proxy + "-g1srv"].pid]
        if scen == "S2":
            return [self.procs[proxy + "-cli"].pid, self.procs[proxy + "-srv"].pid]
        if scen == "P2":
            return [self.procs[proxy + "-p2cli"].pid, self.procs[proxy + "-p2srv"].pid]
        if scen in JWT_SCENARIOS:
            return [self.procs["sinew-%ssrv" % scen.lower()].pid]
        if scen in TRACE_SCENARIOS:
            return [self.procs["sinew-%scli" % scen.lower()].pid]
        return []

    # -- load -------------------------------------------------------------

    def url(self, scen, proxy, path=PATH):
        if scen == "S0":
            return "http://%s:%d%s" % (SRV_ADDR, ORIGIN_PORT, path)
        if scen == "S1":
            return "http://%s:%d%s" % (SRV_ADDR, SRV_PORT[proxy], path)
        if scen == "H1":
            return "http://%s:%d%s" % (SRV_ADDR, H1_SRV_PORT[proxy], path)
        if scen == "H2":
            return "http://127.0.0.1:%d%s" % (H2_CLI_PORT[proxy], path)
        if scen == "G0":
            return "http://%s:%d%s" % (SRV_ADDR, GRPC_ORIGIN_PORT, path)
        if scen == "G1":
            return "http://%s:%d%s" % (SRV_ADDR, G1_SRV_PORT[proxy], path)
        if scen == "P2":
            return "http://127.0.0.1:%d%s" % (P2_CLI_PORT[proxy], path)
        if scen in JWT_SCENARIOS:
            return "http://%s:%d%s" % (SRV_ADDR, J_SRV_PORT[scen], path)
        if scen in TRACE_SCENARIOS:
            return "http://127.0.0.1:%d%s" % (T_CLI_PORT[scen], path)
        return "http://127.0.0.1:%d%s" % (CLI_PORT[proxy], path)

    def load(self, scen, proxy, extra, timeout):
        path = PATH
        if scen in ("G0", "G1"):
            extra = list(extra) + GRPC_HEADERS
            path = GRPC_PATH
        if scen in ("H1", "H2", "G0", "G1"):
            # The same requests in flight: connections / H2_STREAMS, each
            # with H2_STREAMS streams.
            extra = list(extra)
            if "-c" in extra:
                i = extra.index("-c") + 1
                extra[i] = str(max(1, int(extra[i]) // H2_STREAMS))
            extra += ["--h2", str(H2_STREAMS)]
        if scen in ("J0", "J1"):
            # the same requests: only J1's verification differs
            extra = list(extra) + ["-H", "Authorization: Bearer " + self.jwt_token]
        argv = [os.path.join(self.args.sinew_bin, "sinew"), "load", "--json", "--quiet",
                "-H", "Host: " + HOST] + extra + [self.url(scen, proxy, path)]
        try:
            # T's load generator shares the cores with the proxy, as a
            # sidecar's app does.
            r = self.run_in(self.ns_cli, argv, None if scen in TRACE_SCENARIOS else CLIENT_CPU, timeout)
        except subprocess.TimeoutExpired:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    # -- P2: is it really mutual TLS? -------------------------------------

    def http_get(self, ns, url, timeout=5):
        """(status, body) of a GET from inside ns (Host: origin), or (None, why)."""
        code = ("import sys, urllib.request, urllib.error\n"
                "req = urllib.request.Request(sys.argv[1], headers={'Host': sys.argv[2]})\n"
                "try:\n"
                "    r = urllib.request.urlopen(req, timeout=float(sys.argv[3])); s, b = r.status, r.read()\n"
                "except urllib.error.HTTPError as e:\n"
                "    s, b = e.code, e.read()\n"
                "sys.stdout.write('%d\\n' % s + b.decode(errors='replace'))\n")
        try:
            r = self.run_in(ns, ["/usr/bin/python3", "-c", code, url, HOST, str(timeout)], CLIENT_CPU, timeout + 5)
        except subprocess.TimeoutExpired:
            return None, "timed out"
        if r.returncode != 0:
            return None, (r.stderr.strip().splitlines() or ["failed"])[-1]
        head, _, body = r.stdout.partition("\n")
        return int(head), body

    def http_status(self, ns, url, headers, timeout=5):
        """(status, its sinew-error header) of a GET from inside ns (Host:
        origin, plus headers), or (None, why)."""
        code = ("import json, sys, urllib.request, urllib.error\n"
                "h = json.loads(sys.argv[2]); h['Host'] = sys.argv[3]\n"
                "req = urllib.request.Request(sys.argv[1], headers=h)\n"
                "try:\n"
                "    r = urllib.request.urlopen(req, timeout=float(sys.argv[4])); r.read()\n"
                "except urllib.error.HTTPError as e:\n"
                "    r = e; e.read()\n"
                "sys.stdout.write('%d %s' % (r.status, r.headers.get('sinew-error') or ''))\n")
        try:
            r = self.run_in(ns, ["/usr/bin/python3", "-c", code, url, json.dumps(headers), HOST, str(timeout)],
                            CLIENT_CPU, timeout + 5)
        except subprocess.TimeoutExpired:
            return None, "timed out"
        if r.returncode != 0:
            return None, (r.stderr.strip().splitlines() or ["failed"])[-1]
        status, _, err = r.stdout.partition(" ")
        return int(status), err.strip()

    def sinew_metrics(self, ns, admin=P2_ADMIN):
        """A sinew-proxy's counters in ns (by default the P2 one's): {series
        text: value}."""
        status, body = self.http_get(ns, "http://%s/metrics" % admin)
        if status != 200:
            raise RuntimeError("sinew-proxy /metrics at %s in %s: %s" % (admin, ns, body))
        out = {}
        for line in body.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out

    def s_client(self, port, cert=None, extra=()):
        """openssl s_client from the client namespace to a P2 server-side
        listener: one GET, then what it printed."""
        argv = ["openssl", "s_client", "-connect", "%s:%d" % (SRV_ADDR, port), "-CAfile",
                os.path.join(self.pki, "root.pem"), "-ign_eof"] + list(extra)
        if cert:
            argv += ["-cert", os.path.join(self.pki, cert + ".pem"), "-key", os.path.join(self.pki, cert + ".key")]

        def pre():
            os.sched_setaffinity(0, {CLIENT_CPU})
        try:
            r = subprocess.run(["ip", "netns", "exec", self.ns_cli] + argv, capture_output=True, text=True,
                               input="GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (PATH, HOST),
                               timeout=10, preexec_fn=pre)
        except subprocess.TimeoutExpired:
            return "(timed out)"
        return r.stdout + r.stderr

    def verify_p2(self):
        """Checks that each P2 pair speaks mutual TLS 1.3 with P2_SUITE on
        its hop, and that its server side serves nothing else. Returns
        {proxy: {"ok", "hop", "checks": [[what, ok, detail]], "reason"}}; a
        pair that is not ok gets no P2 figures."""
        out = {}
        for proxy in PROXIES:
            checks = []
            hop = "?"
            if proxy in self.p2_down:
                out[proxy] = {"ok": False, "hop": hop, "checks": [["starts", False, self.p2_down[proxy]]],
                              "reason": self.p2_down[proxy]}
                continue
            if proxy == "sinew":
                # sinew-proxy's inbound labels each request it served with
                # how it came; nothing else uses the P2 pair.
                before = self.sinew_metrics(self.ns_srv)
                r = self.load("P2", proxy, ["--qps", "100", "-c", "1", "-n", "5", "--timeout", "2s"], timeout=10)
                after = self.sinew_metrics(self.ns_srv)
                mtls = sum_series(after, "sinew_requests_total", connection_security_policy="mutual_tls",
                                  source_principal=spiffe_id("client")) - \
                    sum_series(before, "sinew_requests_total", connection_security_policy="mutual_tls",
                               source_principal=spiffe_id("client"))
                plain = sum_series(after, "sinew_requests_total", connection_security_policy="none")
                ok = r is not None and r.get("completed") == 5 and mtls >= 5 and plain == 0
                checks.append(["through the pair", ok, "%s of 5 served, %d counted as mutual_tls from %s, %d as "
                               "plaintext" % (r.get("completed") if r else "none", mtls, spiffe_id("client"), plain)])
                # Its hop's suite cannot be read from outside: both ends are
                # sinew-proxy, which speaks TLS 1.3 only and puts P2_SUITE
                # first on both sides; s_client below shows the server's pick.
                hop = "mutual_tls from %s (its /metrics); TLSv1.3 only, %s first on both ends" % (
                    spiffe_id("client"), P2_SUITE)
            else:
                status, body = self.http_get(self.ns_cli, self.url("P2", proxy, "/tls-check"))
                body = (body or "").strip()
                f = body.split()
                want_verify = "0" if proxy == "haproxy" else "SUCCESS"
                ok = (status == 200 and len(f) >= 2 and f[0] == "TLSv1.3" and f[1] == P2_SUITE and
                      ("verify=%s" % want_verify) in f)
                checks.append(["through the pair (/tls-check)", ok, "%s %s" % (status, body)])
                hop = body
            port = P2_SRV_PORT[proxy]
            txt = self.s_client(port, "client")
            ok = ("HTTP/1.1 200" in txt and ("TLSv1.3, Cipher is %s" % P2_SUITE) in txt and
                  "Verify return code: 0 (ok)" in txt)
            m = re.search(r"New, (\S+), Cipher is (\S+)", txt)
            checks.append(["s_client with the client's certificate (must be served over TLSv1.3 %s, the server's "
                           "certificate verified)" % P2_SUITE, ok,
                           ("200, %s %s" % m.groups()) if ok else (m.group(0) if m else txt.strip()[-200:])])
            for what, cert, extra in (("without a client certificate", None, ()),
                                      ("with a certificate of another root", "stranger", ()),
                                      ("offering TLS 1.2 only", "client", ("-tls1_2",))):
                txt = self.s_client(port, cert, extra)
                ok = "HTTP/1.1 200" not in txt and "TLSv1.2, Cipher is" not in txt
                m = re.search(r"(alert [a-z ]+|HTTP/1.1 \d+)", txt)
                checks.append(["%s (must be refused)" % what, ok, m.group(0).strip() if m else "no answer"])
            r = self.load_url(self.ns_cli, "http://%s:%d%s" % (SRV_ADDR, port, PATH), ["-n", "1", "--timeout", "2s"])
            ok = r is not None and r.get("completed", 0) - r.get("errors_total", 0) <= 0
            kinds = ", ".join("%s %d" % kv for kv in (r.get("errors") or {}).items() if kv[1]) if r else "no answer"
            checks.append(["plaintext (must be refused)", ok, kinds or "served"])
            bad = [c[0] for c in checks if not c[1]]
            out[proxy] = {"ok": not bad, "hop": hop, "checks": checks,
                          "reason": ("failed: " + "; ".join(bad)) if bad else ""}
        return out

    # -- J1: are the tokens really verified? ------------------------------

    def verify_jwt(self):
        """Checks, before J1 is measured, that its sinew-proxy verifies the
        token: answered 200 and counted by sinew_jwt_valid_total, and 401
        jwt_invalid once its signature is corrupted; and that J0 checks no
        token. Returns {"ok", "checks": [[what, ok, detail]], "reason",
        "token_bytes"}; J1 is not measured unless ok."""
        checks = []
        if self.jwt_down:
            return {"ok": False, "checks": [["starts", False, self.jwt_down]], "reason": self.jwt_down,
                    "token_bytes": len(self.jwt_token)}

        def get(scen, tok):
            return self.http_status(self.ns_cli, self.url(scen, "sinew"),
                                    {"Authorization": "Bearer " + tok} if tok else {})
        try:
            m0 = self.sinew_metrics(self.ns_srv, J_ADMIN["J1"])
            status, err = get("J1", self.jwt_token)
            m1 = self.sinew_metrics(self.ns_srv, J_ADMIN["J1"])
            valid = sum_series(m1, "sinew_jwt_valid_total") - sum_series(m0, "sinew_jwt_valid_total")
            checks.append(["J1 with the valid ES256 token (must be 200 and counted by sinew_jwt_valid_total)",
                           status == 200 and valid >= 1, "%s%s, %d counted valid" % (
                               status, (" " + err) if err else "", valid)])
            status, err = get("J1", self.jwt_bad)
            checks.append(["J1 with the token's signature corrupted (must be 401 jwt_invalid)",
                           status == 401 and err == "jwt_invalid", ("%s %s" % (status, err)).strip()])
            status, err = get("J0", self.jwt_bad)
            checks.append(["J0 with the corrupted token (must be 200: J0 has no RequestAuthentication)",
                           status == 200, ("%s %s" % (status, err)).strip()])
        except RuntimeError as e:
            checks.append(["J1's /metrics", False, str(e)])
        bad = [c[0].split(" (")[0] + ": " + c[2] for c in checks if not c[1]]
        return {"ok": not bad, "checks": checks, "reason": ("failed: " + "; ".join(bad)) if bad else "",
                "token_bytes": len(self.jwt_token)}

    # -- T: are spans really exported, and only as sampled? ---------------

    def collector_counts(self):
        """What the OTLP collector has taken so far: {scen: {"spans",
        "posts", "bad"}}."""
        status, body = self.http_get(self.ns_cli, "http://127.0.0.1:%d/" % T_COLLECTOR_PORT["T0"])
        if status != 200:
            raise RuntimeError("the OTLP collector in %s: %s" % (self.ns_cli, body))
        c = json.loads(body)
        return {s: c[str(T_COLLECTOR_PORT[s])] for s in TRACE_SCENARIOS}

    def trace_counters(self, scen):
        """A T proxy's own tracing counters: {"recorded", "dropped",
        "failed"} (sinew_trace_spans_total, ..._dropped_total,
        sinew_trace_exports_failed_total)."""
        m = self.sinew_metrics(self.ns_cli, T_ADMIN[scen])
        return {"recorded": sum_series(m, "sinew_trace_spans_total"),
                "dropped": sum_series(m, "sinew_trace_spans_dropped_total"),
                "failed": sum_series(m, "sinew_trace_exports_failed_total")}

    def verify_trace(self):
        """Checks, before T is measured, with a burst of TRACE_CHECK_N
        requests through each T proxy (as fast as 16 connections go): T100
        exports at least one span per request, all at the collector within
        TRACE_EXPORT_WAIT s; T0 exports none and records none; T1's share
        is about 1 % (TRACE_T1_SHARE). Returns {scen: {"ok", "checks":
        [[what, ok, detail]], "reason", "requests", "spans"}}; a scenario
        that is not ok is not measured (nor are T1 and T100 without T0)."""
        out = {s: {"ok": False, "checks": [], "reason": "", "requests": 0, "spans": 0} for s in TRACE_SCENARIOS}
        for scen, why in self.trace_down.items():
            out[scen]["checks"].append(["starts", False, why])
        live = [s for s in TRACE_SCENARIOS if s not in self.trace_down]
        try:
            time.sleep(TRACE_SETTLE)   # the readiness probes' spans are in before counting starts
            c0 = self.collector_counts()
            m0 = {s: self.trace_counters(s) for s in live}
            ends = {}
            for scen in live:   # T100 last: its wait covers the others'
                n = TRACE_CHECK_N[scen]
                r = self.load(scen, "sinew", ["--qps", "0", "-c", "16", "-n", str(n), "--timeout", "5s"], 60)
                ends[scen] = time.time()
                ok = r is not None and r.get("completed") == n and r.get("errors_total") == 0
                out[scen]["requests"] = r.get("completed", 0) if r else 0
                out[scen]["checks"].append(["%d requests answered" % n, ok, "%s completed, %s errors" % (
                    r and r.get("completed"), r and r.get("errors_total")) if r else "sinew load failed"])
            while ends:
                c = self.collector_counts()
                got = {s: c[s]["spans"] - c0[s]["spans"] for s in live}
                now = time.time()
                quiet = all(now - ends[s] >= TRACE_QUIET_WAIT for s in ends)
                t100 = "T100" not in ends or got["T100"] >= TRACE_CHECK_N["T100"]
                if quiet and (t100 or now - ends["T100"] >= TRACE_EXPORT_WAIT):
                    break
                time.sleep(0.25)
            waited = {s: time.time() - ends[s] for s in ends}
            for scen in live:
                m1 = self.trace_counters(scen)
                d = {k: m1[k] - m0[scen][k] for k in m1}
                n, spans = out[scen]["requests"], c[scen]["spans"] - c0[scen]["spans"]
                bad = c[scen]["bad"] - c0[scen]["bad"]
                out[scen]["spans"] = spans
                detail = "%d spans at the collector from %d requests in %.1f s (the proxy recorded %d, dropped " \
                         "%d; %d exports failed; %d bad)" % (spans, n, waited[scen], d["recorded"], d["dropped"],
                                                            d["failed"], bad)
                if scen == "T0":
                    out[scen]["checks"].append(["tracing off exports no span (must be 0 at the collector and "
                                                "0 recorded)", spans == 0 and d["recorded"] == 0 and bad == 0,
                                                detail])
                elif scen == "T1":
                    lo, hi = TRACE_T1_SHARE
                    out[scen]["checks"].append(["1 %% sampling exports about 1 %% (%.1f–%.0f %% of the requests)" % (
                        lo * 100, hi * 100), n > 0 and lo <= spans / n <= hi and bad == 0,
                        "%.2f %%: %s" % (spans * 100.0 / max(n, 1), detail)])
                else:
                    out[scen]["checks"].append(["100 %% sampling exports at least one span per request within "
                                                "%g s, as OTLP/HTTP JSON" % TRACE_EXPORT_WAIT,
                                                n > 0 and spans >= n and bad == 0, detail])
        except (RuntimeError, ValueError, KeyError) as e:
            for scen in live:
                out[scen]["checks"].append(["the collector and the proxies' /metrics", False, str(e)])
        for scen in TRACE_SCENARIOS:
            bad = [k[0].split(" (")[0] + ": " + k[2] for k in out[scen]["checks"] if not k[1]]
            if not bad and scen != "T0" and not out["T0"]["ok"]:
                bad = ["no baseline: T0 failed its checks"]
            out[scen]["ok"] = not bad
            out[scen]["reason"] = ("failed: " + "; ".join(bad)) if bad else ""
        return out

    def load_url(self, ns, url, extra, timeout=10):
        argv = [os.path.join(self.args.sinew_bin, "sinew"), "load", "--json", "--quiet", "-H", "Host: " + HOST] + \
            extra + [url]
        try:
            r = self.run_in(ns, argv, CLIENT_CPU, timeout)
            return json.loads(r.stdout)
        except (subprocess.TimeoutExpired, ValueError):
            return None


def sum_series(metrics, name, **labels):
    """Sum of a counter's series whose labels include all of labels."""
    total = 0.0
    for k, v in metrics.items():
        if k == name or k.startswith(name + "{"):
            if all(('%s="%s"' % kv) in k for kv in labels.items()):
                total += v
    return total


def tcp_opens(pid):
    """(ActiveOpens, PassiveOpens) of the network namespace pid lives in."""
    with open("/proc/%d/net/snmp" % pid) as f:
        rows = [line.split() for line in f if line.startswith("Tcp:")]
    d = dict(zip(rows[0][1:], rows[1][1:]))
    return int(d["ActiveOpens"]), int(d["PassiveOpens"])


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])   # utime + stime (fields 14, 15)


def cpu_sched_ns(pid):
    """CPU time of all of pid's threads in ns (schedstat's first field,
    user and system together), or None without schedstat. A clock tick is
    10 ms: at 1000 req/s a 10 % difference in a 3 s run is under two."""
    total = 0
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return None
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            continue   # the thread ended
        except (OSError, ValueError, IndexError):
            return None
    return total


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def mem_kib(pid):
    """VmRSS, RssAnon (private heap and stacks, what the proxy itself
    allocates) and Pss (RSS with shared library pages divided among the
    processes mapping them) in KiB."""
    out = {"rss": 0, "anon": 0, "pss": 0}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss"] = int(line.split()[1])
            elif line.startswith("RssAnon:"):
                out["anon"] = int(line.split()[1])
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["pss"] = int(line.split()[1])
    except OSError:
        pass
    return out


class RssSampler(threading.Thread):
    """Peak VmRSS of some processes, sampled every 100 ms."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids = pids
        self.peak = {p: 0 for p in pids}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for p in self.pids:
                try:
                    self.peak[p] = max(self.peak[p], rss_kib(p))
                except OSError:
                    pass
            self.stop.wait(0.1)


# --------------------------------------------------------------------------
# measurements

def measure_cell(b, scen, proxy, cell):
    pids = b.pids(scen, proxy)
    extra = ["--qps", str(cell["qps"]), "-c", str(cell["conns"]), "-d", "%gs" % cell["secs"], "--timeout", "5s"]
    # P2 sinew-proxy: its counters before and after, outside the CPU window
    # (a scrape costs the proxy CPU): every request must have come in as
    # mutual TLS, and the new upstream connections are its handshakes.
    sinew_p2 = scen == "P2" and proxy == "sinew"
    if sinew_p2:
        m0 = (b.sinew_metrics(b.ns_cli), b.sinew_metrics(b.ns_srv))
    # J1: every request must have been verified (its counters, outside the
    # CPU window as for P2).
    if scen == "J1":
        j0 = b.sinew_metrics(b.ns_srv, J_ADMIN["J1"])
    # T: the spans the collector took and the proxy's tracing counters,
    # outside the CPU window too.
    if scen in TRACE_SCENARIOS:
        tr0 = (b.collector_counts()[scen], b.trace_counters(scen))
    srv_opens = tcp_opens(b.procs["origin"].pid)[1]
    before = {p: cpu_ticks(p) for p in pids}
    before_ns = {p: cpu_sched_ns(p) for p in pids}
    sampler = RssSampler(pids)
    sampler.start()
    t0 = time.time()
    r = b.load(scen, proxy, extra, timeout=cell["secs"] + 30)
    wall = time.time() - t0
    if scen in TRACE_SCENARIOS:
        time.sleep(TRACE_SETTLE)   # the last batch's export is the cell's too (all three wait alike)
    sampler.stop.set()
    sampler.join()
    if r is None:
        raise RuntimeError("sinew load failed for %s %s %s" % (cell["name"], scen, proxy))
    cpu_s = sum(cpu_ticks(p) - before[p] for p in pids) / CLK_TCK
    after_ns = {p: cpu_sched_ns(p) for p in pids}
    cpu_sched_s = None
    if all(before_ns[p] is not None and after_ns[p] is not None for p in pids):
        cpu_sched_s = sum(after_ns[p] - before_ns[p] for p in pids) / 1e9
    out = {
        "achieved_qps": r["achieved_qps"], "completed": r["completed"], "errors": r["errors_total"],
        "latency_us": r["latency_us"], "service_us": r["service_us"],
        "send_lag_p99_us": r["send_lag_us"]["p99"], "wall_s": wall,
        # TCP connections accepted in the server namespace during the cell
        # (by the server-side proxy, and by the origin from it): with
        # keep-alive working, a few at most; in P2 each is a handshake.
        "srv_ns_new_conns": tcp_opens(b.procs["origin"].pid)[1] - srv_opens,
    }
    if sinew_p2:
        m1 = (b.sinew_metrics(b.ns_cli), b.sinew_metrics(b.ns_srv))

        def delta(i, name, **labels):
            return sum_series(m1[i], name, **labels) - sum_series(m0[i], name, **labels)
        mtls = delta(1, "sinew_requests_total", connection_security_policy="mutual_tls")
        plain = delta(1, "sinew_requests_total", connection_security_policy="none")
        out["mtls_requests"] = mtls
        out["mtls_ok"] = mtls >= r["completed"] and plain == 0
        out["upstream_new_conns"] = delta(0, "sinew_upstream_connections_total")
        out["upstream_reuses"] = delta(0, "sinew_upstream_connection_reuses_total")
    elif scen == "P2":
        # Their P2 listeners accept nothing but mutual TLS (verify_p2).
        out["mtls_ok"] = True
    if scen == "J1":
        j1 = b.sinew_metrics(b.ns_srv, J_ADMIN["J1"])
        out["jwt_valid"] = sum_series(j1, "sinew_jwt_valid_total") - sum_series(j0, "sinew_jwt_valid_total")
        out["jwt_invalid"] = sum_series(j1, "sinew_jwt_invalid_total") - sum_series(j0, "sinew_jwt_invalid_total")
        out["jwt_ok"] = out["jwt_valid"] >= r["completed"] and out["jwt_invalid"] == 0 and r["errors_total"] == 0
    if scen in TRACE_SCENARIOS:
        tr1 = (b.collector_counts()[scen], b.trace_counters(scen))
        out["spans"] = tr1[0]["spans"] - tr0[0]["spans"]
        out["spans_bad"] = tr1[0]["bad"] - tr0[0]["bad"]
        for k in ("recorded", "dropped", "failed"):
            out["spans_" + k] = tr1[1][k] - tr0[1][k]
        # T100: every request's span reached the collector; T0: none did.
        # T1's share is random: checked once, before measuring.
        ok = r["errors_total"] == 0 and out["spans_bad"] == 0
        if scen == "T0":
            ok = ok and out["spans"] == 0 and out["spans_recorded"] == 0
        elif scen == "T100":
            ok = ok and out["spans"] >= r["completed"]
        out["trace_ok"] = ok
    if pids:
        out["cpu_s"] = cpu_s
        # Cores used per 1000 req/s, in percent of one core: CPU seconds
        # per 1000 completed requests × 100 (the rate cancels out).
        out["cpu_pct_per_krps"] = cpu_s * 1000.0 / max(r["completed"], 1) * 100.0
        out["rss_peak_kib"] = sum(sampler.peak.values())
        if cpu_sched_s is not None:
            # The same from schedstat, in ns rather than clock ticks.
            out["cpu_sched_s"] = cpu_sched_s
            out["cpu_sched_pct_per_krps"] = cpu_sched_s * 1000.0 / max(r["completed"], 1) * 100.0
    return out


def measure_idle(b, proxy, n):
    """RSS growth of the server-side proxy holding n idle keep-alive
    connections that each carried one request."""
    pid = b.procs[proxy + "-srv"].pid
    before = rss_kib(pid)
    argv = ["/usr/bin/python3", os.path.join(HERE, "idle_conns.py"), SRV_ADDR, str(SRV_PORT[proxy]),
            str(n), PATH, HOST]

    def pre():
        os.sched_setaffinity(0, {CLIENT_CPU})
    p = subprocess.Popen(["ip", "netns", "exec", b.ns_cli] + argv, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, preexec_fn=pre)
    try:
        line = p.stdout.readline().strip()
        if not line.startswith("ready"):
            raise RuntimeError("idle connections to %s: %s" % (proxy, line or "helper died"))
        time.sleep(0.3)
        after = rss_kib(pid)
    finally:
        try:
            p.stdin.close()
        except OSError:
            pass
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    time.sleep(0.3)   # let the proxy notice the closes
    return {"n": n, "rss_before_kib": before, "rss_after_kib": after,
            "bytes_per_conn": (after - before) * 1024.0 / n}


# --------------------------------------------------------------------------
# statistics and report

def med(xs):
    return statistics.median(xs) if xs else None


def spread(xs):
    return [min(xs), max(xs)] if xs else None


def scenarios(runs, p2):
    """The proxy scenarios of a run: S1, S2, P2 if it was attempted (runs
    saved before P2 existed have none), the others if they were measured."""
    first = next((k for k in runs[0] if k not in ("jwt", "trace")), None) if runs else None
    keys = runs[0][first] if first is not None else {}
    tried = p2 is not None or any(k.startswith("P2/") for k in keys)
    return [s for s in SCENARIOS if (s == "P2" and tried) or any(k.startswith(s + "/") for k in keys)]


def p2_refusal(runs, reps, cn, proxy, p2):
    """Why P2 figures of proxy in cell cn may not be reported, or None."""
    if p2 is not None and proxy in p2 and not p2[proxy]["ok"]:
        return "no mutual TLS: " + p2[proxy]["reason"]
    for r in range(reps):
        x = runs[r][cn].get("P2/" + proxy)
        if x is None:
            return "not measured"
        if not x.get("mtls_ok"):
            return "repetition %d: not every request came in over mutual TLS (%d of %d)" % (
                r + 1, int(x.get("mtls_requests") or 0), x["completed"])
    return None


def summarize_jwt(runs, reps, checks):
    """J0 and J1 (runs[rep]["jwt"]["J0/sinew"], ...): their CPU per 1000
    req/s, service time and counts, and J1/J0's CPU per repetition (both
    back to back in it) with its median against JWT_TARGET. checks:
    verify_jwt's findings; None when J1 was not asked for."""
    if checks is None and not any("jwt" in runs[r] for r in range(reps)):
        return None
    if checks is not None and not checks["ok"]:
        return {"refused": "not measured, its checks " + checks["reason"]}
    out = {}
    for r in range(reps):
        x = runs[r].get("jwt", {}).get("J1/sinew")
        if x is None:
            return {"refused": "not measured in repetition %d" % (r + 1)}
        if not x.get("jwt_ok"):
            return {"refused": "repetition %d: not every request was verified (%d of %d counted valid, %d invalid, "
                               "%d errors)" % (r + 1, x["jwt_valid"], x["completed"], x["jwt_invalid"], x["errors"])}

    def cpu(x):
        return x.get("cpu_sched_pct_per_krps", x["cpu_pct_per_krps"])
    for scen in JWT_SCENARIOS:
        xs = [runs[r]["jwt"][scen + "/sinew"] for r in range(reps)]
        cs = [cpu(x) for x in xs]
        out[scen] = {"cpu_pct_per_krps": {"median": med(cs), "spread": spread(cs), "reps": cs},
                     "cpu_source": "schedstat" if all("cpu_sched_pct_per_krps" in x for x in xs) else "ticks",
                     "achieved_qps": med([x["achieved_qps"] for x in xs]),
                     "service_us": {k: {"median": med([x["service_us"][k] for x in xs]),
                                        "spread": spread([x["service_us"][k] for x in xs])}
                                    for k in ("p50", "p99")},
                     "completed": sum(x["completed"] for x in xs), "errors": sum(x["errors"] for x in xs),
                     "rss_peak_kib": max(x["rss_peak_kib"] for x in xs)}
        if scen == "J1":
            out[scen]["jwt_valid"] = sum(x["jwt_valid"] for x in xs)
    per = [a / b for a, b in zip(out["J1"]["cpu_pct_per_krps"]["reps"], out["J0"]["cpu_pct_per_krps"]["reps"])
           if b > 0]
    out["cpu_ratio"] = {"median": med(per), "spread": spread(per), "reps": per}
    out["met"] = bool(per) and med(per) <= JWT_TARGET
    return out


def summarize_trace(runs, reps, checks):
    """T0, T1 and T100 (runs[rep]["trace"]["T0/sinew"], ...): their CPU per
    1000 req/s, service time, span counts, and T1/T0's and T100/T0's CPU
    per repetition (all three interleaved in it) with their medians against
    TRACE_TARGET. checks: verify_trace's findings; None when T was not
    asked for. A scenario that failed its checks, or whose cell exported
    what it should not (T0 a span, T100 fewer spans than requests), gets
    {"refused": why}; T1 and T100 also when T0 did."""
    if checks is None and not any("trace" in runs[r] for r in range(reps)):
        return None
    out = {}

    def cpu(x):
        return x.get("cpu_sched_pct_per_krps", x["cpu_pct_per_krps"])
    for scen in TRACE_SCENARIOS:
        if checks is not None and not checks[scen]["ok"]:
            out[scen] = {"refused": "not measured, its checks " + checks[scen]["reason"]}
            continue
        xs = [runs[r].get("trace", {}).get(scen + "/sinew") for r in range(reps)]
        miss = [r + 1 for r, x in enumerate(xs) if x is None]
        if miss:
            out[scen] = {"refused": "not measured in repetition %d" % miss[0]}
            continue
        bad = [(r + 1, x) for r, x in enumerate(xs) if not x.get("trace_ok")]
        if bad:
            r, x = bad[0]
            out[scen] = {"refused": "repetition %d: %d spans at the collector for %d requests (%d errors, %d bad "
                                    "spans, %d dropped by the proxy)" % (r, x["spans"], x["completed"], x["errors"],
                                                                         x["spans_bad"], x["spans_dropped"])}
            continue
        cs = [cpu(x) for x in xs]
        out[scen] = {"cpu_pct_per_krps": {"median": med(cs), "spread": spread(cs), "reps": cs},
                     "cpu_source": "schedstat" if all("cpu_sched_pct_per_krps" in x for x in xs) else "ticks",
                     "achieved_qps": med([x["achieved_qps"] for x in xs]),
                     "service_us": {k: {"median": med([x["service_us"][k] for x in xs]),
                                        "spread": spread([x["service_us"][k] for x in xs])}
                                    for k in ("p50", "p99")},
                     "completed": sum(x["completed"] for x in xs), "errors": sum(x["errors"] for x in xs),
                     "spans": sum(x["spans"] for x in xs),
                     "spans_dropped": sum(x["spans_dropped"] for x in xs),
                     "exports_failed": sum(x["spans_failed"] for x in xs),
                     "rss_peak_kib": max(x["rss_peak_kib"] for x in xs)}
    if "refused" in out["T0"]:
        for scen in ("T1", "T100"):
            if "refused" not in out[scen]:
                out[scen] = {"refused": "no baseline, T0 " + out["T0"]["refused"]}
    out["cpu_ratio"] = {}
    for scen in ("T1", "T100"):
        if "refused" in out[scen]:
            continue
        per = [a / b for a, b in zip(out[scen]["cpu_pct_per_krps"]["reps"], out["T0"]["cpu_pct_per_krps"]["reps"])
               if b > 0]
        out["cpu_ratio"][scen] = {"median": med(per), "spread": spread(per), "reps": per,
                                  "target": TRACE_TARGET[scen], "met": bool(per) and med(per) <= TRACE_TARGET[scen]}
    out["refused"] = [s for s in TRACE_SCENARIOS if "refused" in out[s]]
    return out


def summarize(runs, idle, idle_rss, cells, reps, p2=None, jwt=None, trace=None):
    """runs[rep][cell][scen/proxy] → per-proxy figures with median and
    spread over repetitions, and sinew's ratios to HAProxy and nginx. p2:
    verify_p2's findings; a P2 pair that failed them, or a cell where not
    every request was mutual TLS, gets {"refused": why} instead of figures.
    jwt: verify_jwt's findings (summarize_jwt); trace: verify_trace's
    (summarize_trace)."""
    keys = ("p50", "p99", "p99.9")
    scens = scenarios(runs, p2)
    summ = {"cells": {}, "proxies": {}, "scenarios": scens}
    for cell in cells:
        cn = cell["name"]
        cs = {}
        for base in BASELINES:
            if base not in runs[0][cn]:
                continue   # runs saved before G0 existed
            s0 = [runs[r][cn][base] for r in range(reps)]
            cs[base] = {
                "achieved_qps": med([x["achieved_qps"] for x in s0]),
                "latency_us": {k: med([x["latency_us"][k] for x in s0]) for k in keys},
                "service_us": {k: med([x["service_us"][k] for x in s0]) for k in keys},
                "latency_us_spread": {k: spread([x["latency_us"][k] for x in s0]) for k in keys},
                "service_us_spread": {k: spread([x["service_us"][k] for x in s0]) for k in keys},
            }
        for scen in scens:
            cs[scen] = {}
            for proxy in PROXIES:
                why = p2_refusal(runs, reps, cn, proxy, p2) if scen == "P2" else None
                if why:
                    cs[scen][proxy] = {"refused": why}
                    continue
                xs = [runs[r][cn]["%s/%s" % (scen, proxy)] for r in range(reps)]
                d = {"achieved_qps": med([x["achieved_qps"] for x in xs]),
                     "achieved_qps_spread": spread([x["achieved_qps"] for x in xs]),
                     "errors": sum(x["errors"] for x in xs),
                     "completed": sum(x["completed"] for x in xs)}
                if all("srv_ns_new_conns" in x for x in xs):
                    d["srv_ns_new_conns"] = sum(x["srv_ns_new_conns"] for x in xs)
                if all("upstream_new_conns" in x for x in xs):
                    d["upstream_new_conns"] = sum(x["upstream_new_conns"] for x in xs)
                    d["upstream_reuses"] = sum(x["upstream_reuses"] for x in xs)
                for lk in ("latency_us", "service_us"):
                    d["delta_" + lk] = {}
                    for k in keys:
                        ds = [runs[r][cn]["%s/%s" % (scen, proxy)][lk][k] - runs[r][cn][baseline(scen)][lk][k]
                              for r in range(reps)]
                        d["delta_" + lk][k] = {"median": med(ds), "spread": spread(ds), "reps": ds}
                cpus = [x["cpu_pct_per_krps"] for x in xs]
                d["cpu_pct_per_krps"] = {"median": med(cpus), "spread": spread(cpus)}
                d["rss_peak_kib"] = max(x["rss_peak_kib"] for x in xs)
                cs[scen][proxy] = d
        summ["cells"][cn] = cs

    def ratio(cn, scen, get, other, of_medians):
        """sinew's figure over other's: per repetition, then the median and
        spread of those. Added latency can be near zero or negative in a
        noisy repetition, which makes a per-repetition ratio meaningless:
        there the median is the ratio of the medians, and the spread only
        counts repetitions where both deltas are positive."""
        b = baseline(scen)
        a = [get(runs[r][cn]["%s/sinew" % scen], runs[r][cn][b]) for r in range(reps)]
        o = [get(runs[r][cn]["%s/%s" % (scen, other)], runs[r][cn][b]) for r in range(reps)]
        per = [x / y for x, y in zip(a, o) if y > 0 and x > 0]
        if of_medians:
            ma, mo = med(a), med(o)
            ok = ma is not None and mo is not None and ma > 0 and mo > 0
            return {"median": ma / mo if ok else None, "spread": spread(per)}
        return {"median": med(per), "spread": spread(per)}

    ratios = {}
    figures = {
        "delta_p50": lambda x, s0: x["latency_us"]["p50"] - s0["latency_us"]["p50"],
        "delta_p99": lambda x, s0: x["latency_us"]["p99"] - s0["latency_us"]["p99"],
        "delta_p99.9": lambda x, s0: x["latency_us"]["p99.9"] - s0["latency_us"]["p99.9"],
        "delta_svc_p50": lambda x, s0: x["service_us"]["p50"] - s0["service_us"]["p50"],
        "delta_svc_p99": lambda x, s0: x["service_us"]["p99"] - s0["service_us"]["p99"],
        "delta_svc_p99.9": lambda x, s0: x["service_us"]["p99.9"] - s0["service_us"]["p99.9"],
        "cpu_per_krps": lambda x, s0: x["cpu_pct_per_krps"],
        "rss_under_load": lambda x, s0: x["rss_peak_kib"],
        "throughput": lambda x, s0: x["achieved_qps"],
    }
    for cell in cells:
        cn = cell["name"]
        for scen in scens:
            for other in ("haproxy", "nginx"):
                if "refused" in summ["cells"][cn][scen]["sinew"] or "refused" in summ["cells"][cn][scen][other]:
                    continue
                for fig, get in figures.items():
                    if fig == "throughput" and not cell["saturate"]:
                        continue
                    if fig != "throughput" and cell["saturate"] and fig.startswith("delta"):
                        continue
                    ratios["%s/%s/%s/sinew:%s" % (cn, scen, fig, other)] = ratio(
                        cn, scen, get, other, fig.startswith("delta"))
    summ["ratios"] = ratios
    if "P2" in scens:
        # What mutual TLS adds to the same pair: P2 − S2 per repetition
        # (both run back to back in it), median and spread.
        cost = summ["p2_cost"] = {}
        for cell in cells:
            cn = cell["name"]
            cost[cn] = {}
            for proxy in PROXIES:
                if "refused" in summ["cells"][cn]["P2"][proxy]:
                    continue
                pairs = [(runs[r][cn]["P2/" + proxy], runs[r][cn]["S2/" + proxy]) for r in range(reps)]
                c = {}
                for k in ("p50", "p99"):
                    ds = [a["service_us"][k] - b["service_us"][k] for a, b in pairs]
                    c["svc_" + k + "_us"] = {"median": med(ds), "spread": spread(ds)}
                ds = [a["cpu_pct_per_krps"] - b["cpu_pct_per_krps"] for a, b in pairs]
                c["cpu_pct_per_krps"] = {"median": med(ds), "spread": spread(ds)}
                rs = [a["achieved_qps"] / b["achieved_qps"] for a, b in pairs if b["achieved_qps"] > 0]
                c["throughput_ratio"] = {"median": med(rs), "spread": spread(rs)}
                d, d2 = summ["cells"][cn]["P2"][proxy], summ["cells"][cn]["S2"][proxy]
                if "srv_ns_new_conns" in d and "srv_ns_new_conns" in d2:
                    c["srv_ns_new_conns_per_krq"] = d["srv_ns_new_conns"] * 1000.0 / max(d["completed"], 1)
                    c["s2_srv_ns_new_conns_per_krq"] = d2["srv_ns_new_conns"] * 1000.0 / max(d2["completed"], 1)
                if "upstream_new_conns" in d:
                    c["handshakes_per_krq"] = d["upstream_new_conns"] * 1000.0 / max(d["completed"], 1)
                cost[cn][proxy] = c
    for proxy in PROXIES:
        summ["proxies"][proxy] = {"rss_idle_kib": idle_rss[proxy],
                                  "idle_conns": idle[proxy]}
    j = summarize_jwt(runs, reps, jwt)
    if j is not None:
        summ["jwt"] = j
    t = summarize_trace(runs, reps, trace)
    if t is not None:
        summ["trace"] = t
    return summ


def machine():
    cpu = "?"
    hyper = False
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and cpu == "?":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and " hypervisor" in line:
                hyper = True
    virt = "?"
    if shutil.which("systemd-detect-virt"):
        virt = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True).stdout.strip() or "none"
    vendor = ""
    try:
        vendor = open("/sys/class/dmi/id/sys_vendor").read().strip()
    except OSError:
        pass
    mem_kib = 0
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])

    def out(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except Exception:
            return "?"
    rev = out(["git", "-C", SRC, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", SRC, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_mib": mem_kib // 1024,
        "kernel": platform.release(),
        "vm": hyper, "virtualization": virt if virt != "?" else ("hypervisor flag set" if hyper else "none seen"),
        "sys_vendor": vendor,
        "os": out(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "sinew": "%s%s" % (rev, "+dirty" if dirty else ""),
        "haproxy": out(["haproxy", "-v"]),
        "nginx": out(["nginx", "-v"]),
        "compiler": out(["gcc", "--version"]),
    }


def fmt(v, nd=0):
    if v is None:
        return "–"
    return ("%%.%df" % nd) % v


def fmt_ms(us):
    return "–" if us is None else "%.3f" % (us / 1000.0)


def fmt_ratio(r):
    if not r or r["median"] is None:
        return "–"
    if not r["spread"]:
        return "%.2f" % r["median"]
    return "%.2f (%.2f–%.2f)" % (r["median"], r["spread"][0], r["spread"][1])


def targets(summ):
    """Issue 2's targets, on the headline cell, one hop (S1). Added latency
    is judged on the service time (send to response): at 1000 req/s over
    16 connections nothing queues, so the corrected latency differs from it
    only by the load generator's own wake-up lag, which is not the proxy's
    and on a shared 2-core VM is most of the corrected p99's noise. A delta
    within the S0 noise floor is reported as inconclusive."""
    if "S1" not in summ["cells"].get("1k", {}):
        return []   # a run of other scenarios (--scenarios)
    c = summ["cells"]["1k"]["S1"]
    s0 = summ["cells"]["1k"]["S0"]
    s, h, n = c["sinew"], c["haproxy"], c["nginx"]
    res = []

    def d(x, k):
        return x["delta_service_us"][k]["median"]
    for k in ("p50", "p99"):
        lim = 0.8 * min(d(h, k), d(n, k))
        noise = s0.get("service_us_spread", {}).get(k)
        width = (noise[1] - noise[0]) if noise else 0
        res.append(("added %s (service time) ≤ 0.8× HAProxy's and nginx's" % k,
                    "%.0f µs vs ≤ %.0f µs (HAProxy %.0f, nginx %.0f; S0's own spread %.0f µs)" % (
                        d(s, k), lim, d(h, k), d(n, k), width),
                    d(s, k) <= lim))
    cs, ch = s["cpu_pct_per_krps"]["median"], h["cpu_pct_per_krps"]["median"]
    res.append(("CPU per 1000 req/s ≤ 0.6× HAProxy's", "%.2f %% vs ≤ %.2f %%" % (cs, 0.6 * ch), cs <= 0.6 * ch))
    idle = summ["proxies"]["sinew"]["rss_idle_kib"]
    res.append(("RSS idle ≤ 3 MiB", "%.2f MiB" % (idle / 1024), idle <= 3 * 1024))
    load = s["rss_peak_kib"]
    res.append(("RSS under 1000 req/s ≤ 8 MiB", "%.2f MiB" % (load / 1024), load <= 8 * 1024))
    for ic in summ["proxies"]["sinew"]["idle_conns"]:
        res.append(("≤ 4 KiB per idle keep-alive connection (%d)" % ic["n"],
                    "%.0f B" % ic["bytes_per_conn"], ic["bytes_per_conn"] <= 4096))
    return res


def h2_targets(summ, cells):
    """Issue 10's speed targets for the HTTP/2 scenarios (H1 one hop, H2
    pair, G1 gRPC) in the rate-limited cells: sinew's added service-time
    p50 and p99 and CPU per 1000 req/s against 0.8× the lower of HAProxy's
    and nginx's. Rows: (cell, scenario, figure, sinew, limit, met)."""
    rows = []
    for cell in cells:
        if cell["saturate"]:
            continue
        cn = cell["name"]
        for scen in ("H1", "H2", "G1"):
            c = summ["cells"][cn].get(scen)
            if c is None or any("refused" in c[p] for p in PROXIES):
                continue
            for fig in ("p50", "p99", "cpu"):
                if fig == "cpu":
                    v = {p: c[p]["cpu_pct_per_krps"]["median"] for p in PROXIES}
                    unit = "%.2f %%"
                else:
                    v = {p: c[p]["delta_service_us"][fig]["median"] for p in PROXIES}
                    unit = "%.0f µs"
                lim = 0.8 * min(v["haproxy"], v["nginx"])
                rows.append((cn, scen, "added " + fig + " (service)" if fig != "cpu" else "CPU per 1k req/s",
                             unit % v["sinew"], unit % lim, v["sinew"] <= lim))
    return rows


def markdown(result):
    summ, m, cells = result["summary"], result["machine"], result["cells"]
    scens = summ.get("scenarios", ["S1", "S2"])
    L = []
    L.append("# Sinew benchmark: %s run, %s" % (result["mode"], result["date"]))
    L.append("")
    L.append("Machine: %s, %d cores, %d MiB, kernel %s, %s; virtualized: %s%s." % (
        m["cpu"], m["cores"], m["memory_mib"], m["kernel"], m["os"], m["virtualization"],
        (" (%s)" % m["sys_vendor"]) if m["sys_vendor"] else ""))
    L.append("Versions: sinew %s (%s), %s, %s; compiler %s." % (m["sinew"], result["sinew_bin"], m["haproxy"],
                                                                m["nginx"], m["compiler"]))
    if not cells:
        L.append("%d repetitions. Proxies pinned to CPU %d, load generator and origin to CPU %d." % (
            result["reps"], PROXY_CPU, CLIENT_CPU))
    else:
        L.append("%d repetitions, proxies interleaved in rotating order, S0 re-run in each; "
                 "cells: %s. Proxies pinned to CPU %d, load generator and origin to CPU %d. "
                 "Latency is `sinew load`'s, from the scheduled send time (corrected for coordinated "
                 "omission); Δ is against S0 of the same repetition; figures are medians over the "
                 "repetitions with the spread (min–max) in parentheses." % (
                     result["reps"], ", ".join("%s (%s req/s × %d conns, %gs)" % (
                         c["name"], "max" if c["saturate"] else c["qps"], c["conns"], c["secs"]) for c in cells),
                     PROXY_CPU, CLIENT_CPU))
    chosen = result.get("scenarios")
    if chosen and set(chosen) != set(SELECTABLE):
        L.append("")
        L.append("Scenarios %s only (--scenarios / SCENARIOS); the others were not run." % ", ".join(chosen))
    L.append("")
    for cell in cells:
        cn = cell["name"]
        cs = summ["cells"][cn]
        s0 = cs["S0"]
        if cell["saturate"]:
            L.append("## Saturation: %d connections, as fast as possible" % cell["conns"])
            L.append("")
            L.append("S0 direct: %.0f req/s.%s" % (s0["achieved_qps"], (" G0 direct gRPC: %.0f calls/s." % (
                cs["G0"]["achieved_qps"])) if "G0" in cs else ""))
            L.append("")
            L.append("| scenario | proxy | max req/s | spread | CPU %/1k req/s | RSS peak MiB | errors |")
            L.append("|---|---|---:|---|---:|---:|---:|")
            for scen in scens:
                for p in PROXIES:
                    d = cs[scen][p]
                    if "refused" in d:
                        L.append("| %s | %s | not reported: %s | | | | |" % (scen, p, d["refused"]))
                        continue
                    L.append("| %s | %s | %.0f | %.0f–%.0f | %.2f | %.2f | %d |" % (
                        scen, p, d["achieved_qps"], d["achieved_qps_spread"][0], d["achieved_qps_spread"][1],
                        d["cpu_pct_per_krps"]["median"], d["rss_peak_kib"] / 1024, d["errors"]))
            L.append("")
            continue
        L.append("## %d req/s × %d connections × 1 KiB" % (cell["qps"], cell["conns"]))
        L.append("")
        sp = s0["latency_us_spread"]
        L.append("S0 direct, ms: p50 %s, p99 %s (%s–%s over repetitions: the noise floor), p99.9 %s "
                 "(service time p50 %s, p99 %s)." % (
                     fmt_ms(s0["latency_us"]["p50"]), fmt_ms(s0["latency_us"]["p99"]), fmt_ms(sp["p99"][0]),
                     fmt_ms(sp["p99"][1]), fmt_ms(s0["latency_us"]["p99.9"]),
                     fmt_ms(s0["service_us"]["p50"]), fmt_ms(s0["service_us"]["p99"])))
        if "G0" in cs:
            g0 = cs["G0"]
            L.append("")
            L.append("G0 direct gRPC (G1's baseline), ms: p50 %s, p99 %s, p99.9 %s (service time p50 %s, p99 %s)." % (
                fmt_ms(g0["latency_us"]["p50"]), fmt_ms(g0["latency_us"]["p99"]), fmt_ms(g0["latency_us"]["p99.9"]),
                fmt_ms(g0["service_us"]["p50"]), fmt_ms(g0["service_us"]["p99"])))
        L.append("")
        L.append("| scenario | proxy | Δp50 µs | Δp99 µs | Δp99.9 µs | Δp50 svc µs | Δp99 svc µs | CPU %/1k req/s | RSS peak MiB | errors |")
        L.append("|---|---|---|---|---|---|---|---|---:|---:|")
        for scen in scens:
            for p in PROXIES:
                d = cs[scen][p]
                if "refused" in d:
                    L.append("| %s | %s | not reported: %s | | | | | | | |" % (scen, p, d["refused"]))
                    continue

                def dl(lk, k):
                    x = d["delta_" + lk][k]
                    return "%.0f (%.0f–%.0f)" % (x["median"], x["spread"][0], x["spread"][1])
                cpu = d["cpu_pct_per_krps"]
                L.append("| %s | %s | %s | %s | %s | %s | %s | %.2f (%.2f–%.2f) | %.2f | %d |" % (
                    scen, p, dl("latency_us", "p50"), dl("latency_us", "p99"), dl("latency_us", "p99.9"),
                    dl("service_us", "p50"), dl("service_us", "p99"),
                    cpu["median"], cpu["spread"][0], cpu["spread"][1], d["rss_peak_kib"] / 1024, d["errors"]))
        L.append("")
    has_s1 = "S1" in summ["cells"].get("1k", {})
    if has_s1:
        L.extend(markdown_memory(summ))
    if summ["ratios"]:
        L.extend(markdown_ratios(summ))
    if "P2" in scens:
        L.extend(markdown_p2(result, cells))
    h2t = h2_targets(summ, cells)
    if h2t:
        L.append("## HTTP/2 and gRPC targets (issue 10): added p50/p99 (service time) and CPU per 1000 req/s "
                 "≤ 0.8× HAProxy's and nginx's")
        L.append("")
        L.append("| cell | scenario | figure | sinew | ≤ (0.8 × the lower of HAProxy, nginx) | met |")
        L.append("|---|---|---|---:|---:|---|")
        for row in h2t:
            L.append("| %s | %s | %s | %s | %s | %s |" % (row[0], row[1], row[2], row[3], row[4],
                                                       "yes" if row[5] else "**no**"))
        L.append("")
        L.append("nginx's H2 hop between the proxies is HTTP/1.1 (it cannot proxy HTTP/2 but to gRPC "
                 "servers), so its H2 figures are HTTP/2 at the edge only.")
        L.append("")
    if "jwt" in summ:
        L.extend(markdown_jwt(result))
    if "trace" in summ:
        L.extend(markdown_trace(result))
    if result["targets"]:
        L.append("## Issue 2's targets (one hop, 1000 req/s × 16 × 1 KiB)")
        L.append("")
        L.append("| target | measured | met |")
        L.append("|---|---|---|")
        for name, val, ok in result["targets"]:
            L.append("| %s | %s | %s |" % (name, val, "yes" if ok else "**no**"))
        L.append("")
    return "\n".join(L)


def markdown_memory(summ):
    L = []
    L.append("## Memory")
    L.append("")
    L.append("| proxy | RSS idle MiB | of which anonymous | PSS idle MiB | RSS at 1000 req/s MiB (S1) | bytes per idle keep-alive conn |")
    L.append("|---|---:|---:|---:|---:|---|")
    for p in PROXIES:
        pr = summ["proxies"][p]
        im = pr["idle_mem_kib"]
        ic = ", ".join("%.0f B @ %d" % (x["bytes_per_conn"], x["n"]) for x in pr["idle_conns"])
        L.append("| %s | %.2f | %.2f | %.2f | %.2f | %s |" % (
            p, pr["rss_idle_kib"] / 1024, im["anon"] / 1024, im["pss"] / 1024,
            summ["cells"]["1k"]["S1"][p]["rss_peak_kib"] / 1024, ic))
    L.append("")
    L.append("RSS counts every resident page mapped, including shared libraries (libc alone is "
             "about 1.5 MiB of sinew-proxy's RSS); anonymous is what the process allocated; PSS "
             "splits shared pages among the processes that map them. Idle: after startup and the "
             "few requests of the readiness check. Bytes per idle connection: RSS growth while "
             "`bench/idle_conns.py` holds N connections that each carried one request.")
    L.append("")
    return L


def markdown_ratios(summ):
    L = []
    L.append("## Ratios sinew / HAProxy and sinew / nginx (median, spread over repetitions; < 1 is better for sinew except throughput)")
    L.append("")
    L.append("delta_* are added latency from the scheduled send (corrected), delta_svc_* from the actual "
             "send (service time); a latency ratio is the ratio of the median deltas, shown as – when "
             "either median is not above zero (within the noise), with the spread over the repetitions "
             "where both deltas were positive.")
    L.append("")
    L.append("| cell | scenario | figure | sinew/HAProxy | sinew/nginx |")
    L.append("|---|---|---|---|---|")
    seen = set()
    for key in summ["ratios"]:
        cn, scen, fig, _ = key.split("/")
        if (cn, scen, fig) in seen:
            continue
        seen.add((cn, scen, fig))
        L.append("| %s | %s | %s | %s | %s |" % (
            cn, scen, fig, fmt_ratio(summ["ratios"].get("%s/%s/%s/sinew:haproxy" % (cn, scen, fig))),
            fmt_ratio(summ["ratios"].get("%s/%s/%s/sinew:nginx" % (cn, scen, fig)))))
    L.append("")
    if any(summ["proxies"][p]["idle_conns"] for p in PROXIES):
        L.append("Idle memory per connection (RSS growth / connections): " + "; ".join(
            "%s %s" % (p, ", ".join("%.0f B @ %d" % (x["bytes_per_conn"], x["n"])
                                    for x in summ["proxies"][p]["idle_conns"]))
            for p in PROXIES) + ".")
        L.append("")
    return L


def markdown_jwt(result):
    """J1's section: JWT verification against the same hop without it."""
    j, jc = result["summary"]["jwt"], result.get("jwt_cell") or {}
    checks = result.get("jwt_checks") or {}
    L = ["## J1: JWT verification on the inbound hop (issue 13)", ""]
    L.append("sinew-proxy alone, S1's inbound hop in two processes of its own: J1 with a RequestAuthentication "
             "(one rule, issuer %s, audience %s, an inline JWKS with one ES256 P-256 key made at start), every "
             "request carrying the same valid ES256 token (%s bytes) in `Authorization: Bearer`, as a client "
             "reuses its token, forwarded to the app (`forwardOriginalToken: true`); J0 the same requests with the "
             "same token, without a RequestAuthentication (the token forwarded as any header), so that only the "
             "verification differs (`bench/jwt_cost.py` counts it in instructions per request). %s req/s × %s "
             "connections × %ss, J0 and J1 back to back in each of %d repetitions (order alternating). CPU: "
             "the process's threads' run time from /proc/PID/task/*/schedstat (ns; clock ticks are too coarse "
             "for a 10 %% difference at this rate), per 1000 completed requests. Target: J1's CPU per 1000 "
             "req/s ≤ %.2f× J0's, judged on the median of the per-repetition ratios." % (
                 JWT_ISSUER, JWT_AUDIENCE, checks.get("token_bytes", "?"), jc.get("qps", "?"),
                 jc.get("conns", "?"), jc.get("secs", "?"), result["reps"], JWT_TARGET))
    L.append("")
    if checks.get("checks"):
        L.append("Checked before measuring: " + "; ".join(
            "%s%s: %s" % ("" if ok else "**FAILED** ", what, detail) for what, ok, detail in checks["checks"]) + ".")
        L.append("")
    if "refused" in j:
        L.append("**No J1 figures**: %s." % j["refused"])
        L.append("")
        L.append("| target | measured | met |")
        L.append("|---|---|---|")
        L.append("| CPU per 1000 req/s with JWT (ES256) ≤ %.2f× without | not measured | **no** |" % JWT_TARGET)
        L.append("")
        return L
    L.append("| scenario | inbound hop | CPU %/1k req/s | p50 svc µs | p99 svc µs | req/s | completed | errors | "
             "counted valid JWT | RSS peak MiB |")
    L.append("|---|---|---|---|---|---:|---:|---:|---:|---:|")
    for scen, what in (("J0", "no RequestAuthentication, the same token"),
                       ("J1", "RequestAuthentication, ES256 token")):
        d = j[scen]
        c, sv = d["cpu_pct_per_krps"], d["service_us"]
        L.append("| %s | %s | %.2f (%.2f–%.2f) | %.0f (%.0f–%.0f) | %.0f (%.0f–%.0f) | %.0f | %d | %d | %s | %.2f |" % (
            scen, what, c["median"], c["spread"][0], c["spread"][1],
            sv["p50"]["median"], sv["p50"]["spread"][0], sv["p50"]["spread"][1],
            sv["p99"]["median"], sv["p99"]["spread"][0], sv["p99"]["spread"][1],
            d["achieved_qps"], d["completed"], d["errors"], "%d" % d["jwt_valid"] if "jwt_valid" in d else "–",
            d["rss_peak_kib"] / 1024))
    L.append("")
    r = j["cpu_ratio"]
    L.append("| target | measured | met |")
    L.append("|---|---|---|")
    L.append("| CPU per 1000 req/s with JWT (ES256) ≤ %.2f× without, at %s req/s | %.2f %% vs %.2f %%: %s× "
             "(per repetition %s) | %s |" % (
                 JWT_TARGET, jc.get("qps", "?"), j["J1"]["cpu_pct_per_krps"]["median"],
                 j["J0"]["cpu_pct_per_krps"]["median"], fmt(r["median"], 2),
                 ", ".join("%.2f" % x for x in r["reps"]), "yes" if j["met"] else "**no**"))
    L.append("")
    return L


def markdown_trace(result):
    """T's section: tracing at 1 % and 100 % against the same hop with it off."""
    t, tc = result["summary"]["trace"], result.get("trace_cell") or {}
    checks = result.get("trace_checks") or {}
    L = ["## T1, T100: tracing's cost on the outbound hop (issue 12)", ""]
    L.append("sinew-proxy alone, the client-side (outbound) hop routing `Host: origin` (a VirtualService) over "
             "the veth straight to the origin, in three processes of its own (`bench/conf/sinew-client-trace.yaml`): "
             "T0 with the mesh config's `enableTracing: false`, T1 and T100 with it on and a `Telemetry` resource's "
             "`randomSamplingPercentage` 1 and 100 (T0's says 100 too: the switch alone turns tracing off). Spans go "
             "as OTLP/HTTP JSON to a collector on the client namespace's loopback (a Python HTTP server, one port "
             "per scenario, counting the spans it parses). Unpinned, as a sidecar lives: the proxy and the load "
             "generator share both cores (the origin stays on CPU %d). %s req/s × %s connections × %ss, then "
             "%.1f s for the last batch to go out (inside the CPU window, for all three alike); T0, T1 and T100 "
             "interleaved in each of %d repetitions (order rotating). CPU: the proxy's threads' run time from "
             "/proc/PID/task/*/schedstat, per 1000 completed requests. Targets: T1's CPU per 1000 req/s ≤ %.2f× "
             "T0's, T100's ≤ %.2f×, judged on the median of the per-repetition ratios. `bench/trace_cost.py` "
             "counts the same cost in instructions and system calls per request." % (
                 CLIENT_CPU, tc.get("qps", "?"), tc.get("conns", "?"), tc.get("secs", "?"), TRACE_SETTLE,
                 result["reps"], TRACE_TARGET["T1"], TRACE_TARGET["T100"]))
    L.append("")
    if checks:
        L.append("Checked before measuring, a burst through each (16 connections, as fast as they go): " + "; ".join(
            "%s: %s" % (scen, ", ".join("%s%s: %s" % ("" if ok else "**FAILED** ", what, detail)
                                        for what, ok, detail in checks[scen]["checks"]))
            for scen in TRACE_SCENARIOS if scen in checks) + ".")
        L.append("")
    L.append("| scenario | tracing | CPU %/1k req/s | p50 svc µs | p99 svc µs | req/s | completed | errors | "
             "spans at the collector | dropped by the proxy | RSS peak MiB |")
    L.append("|---|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for scen, what in (("T0", "off (`enableTracing: false`)"), ("T1", "1 % sampling"), ("T100", "100 % sampling")):
        d = t[scen]
        if "refused" in d:
            L.append("| %s | %s | no figures: %s | | | | | | | | |" % (scen, what, d["refused"].replace("|", "/")))
            continue
        c, sv = d["cpu_pct_per_krps"], d["service_us"]
        L.append("| %s | %s | %.2f (%.2f–%.2f) | %.0f (%.0f–%.0f) | %.0f (%.0f–%.0f) | %.0f | %d | %d | %d (%.3f per "
                 "request) | %d | %.2f |" % (
                     scen, what, c["median"], c["spread"][0], c["spread"][1],
                     sv["p50"]["median"], sv["p50"]["spread"][0], sv["p50"]["spread"][1],
                     sv["p99"]["median"], sv["p99"]["spread"][0], sv["p99"]["spread"][1],
                     d["achieved_qps"], d["completed"], d["errors"], d["spans"], d["spans"] / max(d["completed"], 1),
                     d["spans_dropped"], d["rss_peak_kib"] / 1024))
    L.append("")
    L.append("| target | measured | met |")
    L.append("|---|---|---|")
    for scen, what in (("T1", "1 %"), ("T100", "100 %")):
        name = "CPU per 1000 req/s with tracing at %s sampling ≤ %.2f× without, at %s req/s, unpinned" % (
            what, TRACE_TARGET[scen], tc.get("qps", "?"))
        if "refused" in t[scen]:
            L.append("| %s | not measured | **no** |" % name)
            continue
        r = t["cpu_ratio"][scen]
        L.append("| %s | %.2f %% vs %.2f %%: %s× (%s–%s; per repetition %s) | %s |" % (
            name, t[scen]["cpu_pct_per_krps"]["median"], t["T0"]["cpu_pct_per_krps"]["median"], fmt(r["median"], 3),
            fmt((r["spread"] or [None])[0], 3), fmt((r["spread"] or [None, None])[1], 3), ", ".join("%.3f" % x for x in r["reps"]),
            "yes" if r["met"] else "**no**"))
    L.append("")
    return L


def markdown_p2(result, cells):
    summ, p2 = result["summary"], result.get("p2_checks") or {}
    L = ["## P2: mutual TLS between the sidecars", ""]
    L.append("S2's topology with mutual TLS 1.3 on the veth hop between the two proxies: ECDSA P-256 "
             "X.509-SVIDs made at start (%s for the server side, %s for the client side), one root. "
             "Before measuring, each pair was checked (below); a pair that failed a check, or a "
             "sinew-proxy cell where not every request reached the server side as mutual TLS, has no "
             "P2 figures." % (spiffe_id("origin"), spiffe_id("client")))
    L.append("")
    L.append("| proxy | the hop, as its server side saw it | checks (all passed unless marked) |")
    L.append("|---|---|---|")
    for p in PROXIES:
        c = p2.get(p)
        if c is None:
            L.append("| %s | – | not recorded |" % p)
            continue
        L.append("| %s | %s | %s |" % (p, c["hop"].replace("|", "/"), "; ".join(
            "%s%s: %s" % ("" if ok else "**FAILED** ", what.split(" (")[0], detail.replace("|", "/"))
            for what, ok, detail in c["checks"])))
    L.append("")
    if all("p2_idle_mem_kib" in summ["proxies"][p] for p in PROXIES):
        L.append("Idle memory of the server-side P2 process (TLS configured, after the checks), against the "
                 "plaintext one: " + "; ".join(
                     "%s RSS %.2f MiB (%.2f), anonymous %.2f MiB (%.2f)" % (
                         p, summ["proxies"][p]["p2_idle_mem_kib"]["rss"] / 1024,
                         summ["proxies"][p]["idle_mem_kib"]["rss"] / 1024,
                         summ["proxies"][p]["p2_idle_mem_kib"]["anon"] / 1024,
                         summ["proxies"][p]["idle_mem_kib"]["anon"] / 1024) for p in PROXIES) + ".")
        L.append("")
    L.append("What mutual TLS adds to the same pair, P2 − S2 per repetition (median, spread): service-time "
             "latency, CPU of both proxies per 1000 req/s, throughput at saturation as P2/S2; and TCP "
             "connections accepted in the server namespace per 1000 requests during the P2 cell (each one "
             "on the hop is a TLS handshake; near 0 when keep-alive holds; the cell's first repetition "
             "opens the pool).")
    L.append("")
    L.append("| cell | proxy | +p50 svc µs | +p99 svc µs | +CPU %/1k req/s | throughput P2/S2 | new conns per 1k req, P2 (S2) |")
    L.append("|---|---|---|---|---|---|---|")

    def ms(x, nd=0):
        if x is None or x.get("median") is None:
            return "–"
        f = "%%.%df (%%.%df–%%.%df)" % (nd, nd, nd)
        return f % (x["median"], x["spread"][0], x["spread"][1])
    for cell in cells:
        cn = cell["name"]
        for p in PROXIES:
            c = summ.get("p2_cost", {}).get(cn, {}).get(p)
            if c is None:
                L.append("| %s | %s | not reported | | | | |" % (cn, p))
                continue
            conns = "–"
            if "srv_ns_new_conns_per_krq" in c:
                conns = "%.2f (S2 %.2f)" % (c["srv_ns_new_conns_per_krq"], c["s2_srv_ns_new_conns_per_krq"])
            if "handshakes_per_krq" in c:
                conns += "; TLS connections the client side opened: %.2f" % c["handshakes_per_krq"]
            sat = cell["saturate"]
            L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                cn, p, "" if sat else ms(c["svc_p50_us"]), "" if sat else ms(c["svc_p99_us"]),
                ms(c["cpu_pct_per_krps"], 2), ms(c["throughput_ratio"], 2) if sat else "", conns))
    L.append("")
    return L


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short cells (~4 min in all)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sinew-bin", default=os.environ.get("SINEW_BIN", os.path.join(SRC, "build", "release", "bin")))
    ap.add_argument("--out", default=RESULTS, help="directory for <mode>.md and <mode>.json")
    ap.add_argument("--rerender", metavar="JSON", help="recompute the summary and Markdown of a saved run")
    ap.add_argument("--scenarios", default=os.environ.get("SCENARIOS", ""),
                    help="run only these, comma-separated, of %s (default: all; env SCENARIOS; J1 is J0 and "
                         "J1, T is T0, T1 and T100); S0 (and G0 for G1) come along, and the results go to "
                         "<mode>-<scenarios>.{md,json}" %
                    ",".join(SELECTABLE))
    args = ap.parse_args()
    args.sinew_bin = os.path.abspath(args.sinew_bin)
    chosen = [x.strip().upper() for x in re.split(r"[,\s]+", args.scenarios) if x.strip()]
    chosen = ["T" if x in TRACE_SCENARIOS else x for x in chosen]   # T0, T1, T100: all three
    unknown = [x for x in chosen if x not in SELECTABLE]
    if unknown:
        sys.exit("bench: unknown scenario %s; choose among %s" % (", ".join(unknown), ", ".join(SELECTABLE)))
    subset = bool(chosen) and set(chosen) != set(SELECTABLE)
    if not subset:
        chosen = list(SELECTABLE)
    chosen = [x for x in SELECTABLE if x in chosen]
    args.scenarios = [x for x in SCENARIOS if x in chosen]   # those with the three proxies
    args.jwt = "J1" in chosen
    args.trace = "T" in chosen
    if args.rerender:
        result = json.load(open(args.rerender))
        pr = result["summary"]["proxies"]
        summ = summarize(result["runs"], {p: pr[p]["idle_conns"] for p in PROXIES},
                         {p: pr[p]["rss_idle_kib"] for p in PROXIES}, result["cells"], result["reps"],
                         result.get("p2_checks"), result.get("jwt_checks"), result.get("trace_checks"))
        for p in PROXIES:
            for k in ("idle_mem_kib", "p2_idle_mem_kib"):
                if k in pr[p]:
                    summ["proxies"][p][k] = pr[p][k]
        result["summary"] = summ
        result["targets"] = targets(summ)
        write_results(args.out, result)
        return

    if os.geteuid() != 0:
        sys.exit("bench: needs root (network namespaces)")
    for tool in ("ip", "nginx", "haproxy", "openssl"):
        if not shutil.which(tool):
            sys.exit("bench: %s not found; run scripts/deps.sh" % tool)
    for prog in ("sinew", "sinew-proxy"):
        if not os.access(os.path.join(args.sinew_bin, prog), os.X_OK):
            sys.exit("bench: no %s in %s; run make build (or set SINEW_BIN)" % (prog, args.sinew_bin))
    if args.reps < 1:
        sys.exit("bench: --reps must be at least 1")
    if (os.cpu_count() or 1) < 2:
        sys.exit("bench: needs 2 CPUs (proxies pinned to CPU 1)")

    if args.quick:
        secs, sat_secs, idle_ns = 1.5, 1.5, [1000, 10000]
    else:
        secs, sat_secs, idle_ns = 8, 5, [1000, 10000]
    cells = [
        {"name": "1k", "qps": 1000, "conns": 16, "secs": secs, "saturate": False},
        {"name": "5k", "qps": 5000, "conns": 16, "secs": secs, "saturate": False},
        {"name": "max", "qps": 0, "conns": 64, "secs": sat_secs, "saturate": True},
    ] if args.scenarios else []
    # J1's cell: issue 13's rate; a few seconds even when quick, since a
    # 10 % difference in CPU is what it has to see.
    jwt_cell = {"name": "jwt-1k", "qps": 1000, "conns": 16, "secs": 3 if args.quick else secs, "saturate": False}
    # T's cell: issue 12's rate, as long as J's.
    trace_cell = {"name": "trace-1k", "qps": 1000, "conns": 16, "secs": 3 if args.quick else secs, "saturate": False}
    # Descriptors for 10k idle connections (and the proxies' upstream side):
    # as many as allowed, up to 65536 (raising the hard limit needs
    # CAP_SYS_RESOURCE, which a container may not give).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        want = hard if hard != resource.RLIM_INFINITY else want
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    # HAProxy wants 2 × maxconn + a few descriptors up front.
    args.haproxy_maxconn = min(10100, (fd_limit - 64) // 2)
    idle_ns = [min(n, args.haproxy_maxconn - 100) for n in idle_ns]
    if idle_ns[-1] < 10000:
        log("bench: descriptor limit %d: the \"10k\" idle test holds %d connections" % (fd_limit, idle_ns[-1]))

    b = Bench(args)

    def on_signal(signum, frame):
        b.cleanup()
        os._exit(128 + signum)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started = time.time()
    mode = "quick" if args.quick else "full"
    jwt_checks = trace_checks = None
    try:
        log("bench: %s run, %d repetitions, sinew from %s%s" % (
            mode, args.reps, args.sinew_bin, (", scenarios " + ",".join(chosen)) if subset else ""))
        b.setup_netns()
        log("bench: namespaces %s (%s) and %s (%s) joined by a veth pair" % (b.ns_cli, CLI_ADDR, b.ns_srv, SRV_ADDR))
        b.start_servers()
        time.sleep(0.5)
        idle_mem = {p: mem_kib(b.procs[p + "-srv"].pid) for p in PROXIES}
        idle_rss = {p: idle_mem[p]["rss"] for p in PROXIES}
        log("bench: all paths answer; idle RSS (server side): " +
            ", ".join("%s %.2f MiB" % (p, idle_rss[p] / 1024) for p in PROXIES))
        p2, p2_ok, p2_idle_mem = None, [], None
        if "P2" in args.scenarios:
            p2 = b.verify_p2()
            for p in PROXIES:
                log("bench: P2 %-7s %s: %s" % (p, "mutual TLS verified" if p2[p]["ok"] else "REFUSED, no P2 figures",
                                              p2[p]["hop"] if p2[p]["ok"] else p2[p]["reason"]))
                for what, ok, detail in p2[p]["checks"]:
                    if not ok:
                        log("    %s: %s" % (what, detail))
            p2_ok = [p for p in PROXIES if p2[p]["ok"]]
            p2_idle_mem = {p: mem_kib(b.procs[p + "-p2srv"].pid) for p in PROXIES}
        jwt_seq = []
        if args.jwt:
            jwt_checks = b.verify_jwt()
            log("bench: J1 %s" % ("tokens verified: " + "; ".join(
                "%s: %s" % (c[0].split(" (")[0], c[2]) for c in jwt_checks["checks"])
                if jwt_checks["ok"] else "FAILED ITS CHECKS, no J1 figures: " + jwt_checks["reason"]))
            if jwt_checks["ok"]:
                jwt_seq = list(JWT_SCENARIOS)
        trace_seq = []
        if args.trace:
            trace_checks = b.verify_trace()
            for scen in TRACE_SCENARIOS:
                c = trace_checks[scen]
                log("bench: %-4s %s" % (scen, ("checked: " + "; ".join(k[2] for k in c["checks"][1:])) if c["ok"]
                                         else "FAILED ITS CHECKS, no %s figures: %s" % (scen, c["reason"])))
            trace_seq = [s for s in TRACE_SCENARIOS if trace_checks[s]["ok"]]

        runs = []
        n_total = args.reps * (len(cells) * (len(needed_baselines(args.scenarios)) + len(
            [s for s in args.scenarios if s != "P2"]) * len(PROXIES) + len(p2_ok)) + len(jwt_seq) + len(trace_seq))
        n_done = 0
        for rep in range(args.reps):
            runs.append({})
            order = PROXIES[rep % len(PROXIES):] + PROXIES[:rep % len(PROXIES)]
            # J0 and J1 back to back, the order alternating, before the
            # cells.
            seqs = [(cell, [(b, None) for b in needed_baselines(args.scenarios)] +
                     [(s, p) for p in order for s in args.scenarios if s != "P2" or p in p2_ok]) for cell in cells]
            if jwt_seq:
                seqs.insert(0, (jwt_cell, [(s, "sinew") for s in (jwt_seq if rep % 2 == 0 else jwt_seq[::-1])]))
            # T0, T1 and T100 one after the other, the order rotating,
            # after J.
            if trace_seq:
                k = rep % len(trace_seq)
                seqs.insert(1 if jwt_seq else 0, (trace_cell, [(s, "sinew") for s in trace_seq[k:] + trace_seq[:k]]))
            for cell, seq in seqs:
                cr = runs[rep]["jwt" if cell is jwt_cell else "trace" if cell is trace_cell else cell["name"]] = {}
                for scen, proxy in seq:
                    key = scen if proxy is None else "%s/%s" % (scen, proxy)
                    x = measure_cell(b, scen, proxy, cell)
                    cr[key] = x
                    n_done += 1
                    extra = ""
                    if "cpu_pct_per_krps" in x:
                        extra = "  cpu %.2f %%/1k  rss %.1f MiB" % (x["cpu_pct_per_krps"], x["rss_peak_kib"] / 1024)
                    if scen == "P2":
                        extra += "  new conns %d%s" % (x["srv_ns_new_conns"], "" if x["mtls_ok"] else
                                                       "  NOT ALL mTLS: %s of %d" % (x.get("mtls_requests"),
                                                                                    x["completed"]))
                    if "cpu_sched_pct_per_krps" in x and (scen in JWT_SCENARIOS or scen in TRACE_SCENARIOS):
                        extra += "  (schedstat %.2f %%/1k)" % x["cpu_sched_pct_per_krps"]
                    if scen == "J1":
                        extra += "  JWT valid %d%s" % (x["jwt_valid"], "" if x["jwt_ok"] else
                                                       "  NOT ALL VERIFIED: %d of %d, %d invalid" % (
                                                           x["jwt_valid"], x["completed"], x["jwt_invalid"]))
                    if scen in TRACE_SCENARIOS:
                        extra += "  spans %d (dropped %d)%s" % (x["spans"], x["spans_dropped"], "" if x["trace_ok"]
                                                                else "  NOT AS SAMPLED: %d spans for %d requests" % (
                                                                    x["spans"], x["completed"]))
                    log("[%3d/%d %4.0fs] rep %d %-3s %-2s %-7s %8.1f req/s  p50 %s p99 %s p99.9 %s ms  err %d%s" % (
                        n_done, n_total, time.time() - started, rep + 1, cell["name"], scen, proxy or "direct",
                        x["achieved_qps"], fmt_ms(x["latency_us"]["p50"]), fmt_ms(x["latency_us"]["p99"]),
                        fmt_ms(x["latency_us"]["p99.9"]), x["errors"], extra))

        idle = {p: [] for p in PROXIES}
        for n in (idle_ns if "S1" in args.scenarios else []):
            for p in PROXIES:
                x = measure_idle(b, p, n)
                idle[p].append(x)
                log("[idle %5d] %-7s RSS %.2f → %.2f MiB: %.0f bytes per idle connection" % (
                    n, p, x["rss_before_kib"] / 1024, x["rss_after_kib"] / 1024, x["bytes_per_conn"]))
    finally:
        b.cleanup()

    summ = summarize(runs, idle, idle_rss, cells, args.reps, p2, jwt_checks, trace_checks)
    for p in PROXIES:
        summ["proxies"][p]["idle_mem_kib"] = idle_mem[p]
        if p2_idle_mem is not None:
            summ["proxies"][p]["p2_idle_mem_kib"] = p2_idle_mem[p]
    result = {
        "mode": mode, "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "duration_s": round(time.time() - started, 1), "reps": args.reps, "cells": cells,
        "sinew_bin": os.path.relpath(args.sinew_bin, SRC) if args.sinew_bin.startswith(SRC) else args.sinew_bin,
        "machine": machine(), "summary": summ, "runs": runs, "p2_checks": p2,
        "scenarios": chosen, "file": mode + ("-" + "-".join(chosen) if subset else ""),
    }
    if args.jwt:
        result["jwt_cell"] = jwt_cell
        result["jwt_checks"] = jwt_checks
    if args.trace:
        result["trace_cell"] = trace_cell
        result["trace_checks"] = trace_checks
    result["targets"] = targets(summ)
    write_results(args.out, result)
    log("bench: done in %.0f s; results in %s/%s.{md,json}" % (time.time() - started, os.path.relpath(args.out),
                                                              result["file"]))
    j, t = summ.get("jwt"), summ.get("trace")
    why = []
    if j is not None and "refused" in j:
        # The cost of JWT verification was not measured: say so by the exit status too.
        why.append("J1 has no figures: %s" % j["refused"])
    if t is not None and t["refused"]:
        # Nor that of tracing.
        why += ["%s has no figures: %s" % (s, t[s]["refused"]) for s in t["refused"]]
    if why:
        sys.exit("bench: " + "; ".join(why))


def write_results(out, result):
    md = markdown(result)
    name = result.get("file", result["mode"])
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, name + ".json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(out, name + ".md"), "w") as f:
        f.write(md)
    log("")
    log(md)


if __name__ == "__main__":
    main()
