#!/usr/bin/python3
"""J1's cost in counts that do not swing (../shared/PERF.md): user-space
instructions and system calls per request of sinew-proxy's inbound hop
without (J0) and with (J1) a RequestAuthentication, the client sending
the same valid ES256 token on every request (as bench/run.py's J1 does).
Each figure is the difference between a long and a short run divided by
the difference in requests (start-up, the first verification and
shutdown cancel out), under valgrind --tool=callgrind and strace -f -c,
h2load --h1 driving C keep-alive connections to an nginx origin serving
1 KiB on loopback.

    /usr/bin/python3 bench/jwt_cost.py            # after `make build`
    N=2000 C=10 /usr/bin/python3 bench/jwt_cost.py

Also J0- (J0 without the token) and J1 without forwardOriginalToken (the
token stripped before the app, Istio's default); J1f is
bench/conf/sinew-server-jwt.yaml as it is (the token forwarded, as J0 does:
the same bytes both ways, only the verification differs). Exits 1 when
J1f's instructions per request exceed issue 13's 1.10x of J0's, or a run
fails."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as bench  # noqa: E402  (make_jwt, JWT_ISSUER, JWT_AUDIENCE, CONF)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROXY = os.environ.get("SINEW_PROXY", os.path.join(ROOT, "build", "release", "bin", "sinew-proxy"))
N = int(os.environ.get("N", "2000"))
C = int(os.environ.get("C", "10"))
SHORT = int(os.environ.get("SHORT", "300"))
ORIGIN_PORT = int(os.environ.get("ORIGIN_PORT", "18090"))
HOP_PORT = int(os.environ.get("HOP_PORT", "18092"))
TARGET = bench.JWT_TARGET


def wait_up(port, host_header, headers, deadline_s=30.0):
    end = time.time() + deadline_s
    while time.time() < end:
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: " + host_header]
                           + sum((["-H", h] for h in headers), []) + ["http://127.0.0.1:%d/1k" % port],
                           capture_output=True, text=True, timeout=10)
        if r.stdout == "200":
            return True
        time.sleep(0.2)
    return False


def stop(p):
    """The measured process: strace's tracee first (strace then writes its
    table), callgrind's process directly."""
    kids = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
    for k in kids or [str(p.pid)]:
        try:
            os.kill(int(k), signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def one(tool, cfg, headers, n, out):
    """The tool's total (Ir or system calls) for a run of n requests."""
    argv = [PROXY, "--config", cfg, "--inbound", "127.0.0.1:%d" % HOP_PORT, "--app", "127.0.0.1:%d" % ORIGIN_PORT,
            "--admin", "127.0.0.1:%d" % (HOP_PORT + 1), "--workers", "1", "--log-level", "error",
            "--namespace", bench.BENCH_NS, "--service", "origin"]
    f = os.path.join(out, "%s-%d" % (tool, n))
    if tool == "ir":
        argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + f] + argv
    else:
        argv = ["strace", "-f", "-c", "-o", f] + argv
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_up(HOP_PORT, "origin", headers):
            raise RuntimeError("sinew-proxy did not answer 200 under %s" % tool)
        r = subprocess.run(["h2load", "--h1", "-H", ":authority: origin", "-c", str(C), "-t", "1", "-n", str(n)]
                           + sum((["-H", h] for h in headers), []) + ["http://127.0.0.1:%d/1k" % HOP_PORT],
                           capture_output=True, text=True, timeout=600)
        if " %d succeeded" % n not in r.stdout or "status codes: %d 2xx" % n not in r.stdout:
            raise RuntimeError("h2load under %s: %s" % (tool, r.stdout[-400:]))
    finally:
        stop(p)
    text = open(f).read()
    if tool == "ir":
        m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    else:
        m = re.search(r"^\S+\s+\S+\s+\S+\s+(\d+)\s+(?:\d+\s+)?total$", text, re.M)
    if m is None:
        raise RuntimeError("no total in %s" % f)
    return int(m.group(1))


def main():
    for t in ("valgrind", "strace", "h2load", "curl", "nginx"):
        if shutil.which(t) is None:
            sys.exit("jwt_cost: %s not found (scripts/deps.sh bench)" % t)
    if not os.access(PROXY, os.X_OK):
        sys.exit("jwt_cost: %s not built (make build)" % PROXY)
    out = tempfile.mkdtemp(prefix="sinew-jwt-cost-")
    origin = None
    try:
        os.makedirs(os.path.join(out, "www"))
        with open(os.path.join(out, "www", "1k"), "wb") as f:
            f.write(b"a" * 1024)
        with open(os.path.join(out, "origin.conf"), "w") as f:
            f.write("worker_processes 1; user root; daemon off; pid %s/origin.pid; error_log %s/origin.err warn;\n"
                    "events { worker_connections 4096; }\n"
                    "http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s;\n"
                    "  server { listen 127.0.0.1:%d backlog=4096; root %s/www; location / { } } }\n"
                    % (out, out, ORIGIN_PORT, out))
        origin = subprocess.Popen(["nginx", "-c", os.path.join(out, "origin.conf")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        jwks, tok, _bad = bench.make_jwt()
        text = open(os.path.join(bench.CONF, "sinew-server-jwt.yaml")).read()
        for k, v in (("ISSUER", bench.JWT_ISSUER), ("AUDIENCE", bench.JWT_AUDIENCE), ("JWKS", jwks)):
            text = text.replace("@%s@" % k, v)
        j1f = os.path.join(out, "j1f.yaml")
        with open(j1f, "w") as f:
            f.write(text)
        j1 = os.path.join(out, "j1.yaml")
        with open(j1, "w") as f:
            f.write(text.replace("    forwardOriginalToken: true\n", ""))
        # J0 gets the same header, so that only the verification differs
        # (J0 forwards it to the origin, J1 strips it); J0- is bench/run.py's
        # J0, without a token.
        j0 = os.path.join(bench.CONF, "sinew-server.yaml")
        auth = ["authorization: Bearer " + tok]
        cases = (("J0", j0, auth), ("J0-", j0, []), ("J1", j1, auth), ("J1f", j1f, auth))
        res = {}
        print("%-4s %14s %12s   (inbound hop, %d keep-alive connections, %d requests, one token)"
              % ("hop", "instr/request", "syscalls/req", C, N))
        for name, cfg, headers in cases:
            a = one("ir", cfg, headers, SHORT, out)
            b = one("ir", cfg, headers, SHORT + N, out)
            c = one("sys", cfg, headers, SHORT, out)
            d = one("sys", cfg, headers, SHORT + N, out)
            res[name] = ((b - a) / N, (d - c) / N)
            print("%-4s %14.0f %12.2f" % (name, res[name][0], res[name][1]))
        ratio = res["J1f"][0] / res["J0"][0]
        print("J1f/J0 instructions per request (the same bytes both ways: verification only): %.3f (target <= %.2f)"
              % (ratio, TARGET))
        print("J1/J0: %.3f; J1/J0- (a token-less request): %.3f"
              % (res["J1"][0] / res["J0"][0], res["J1"][0] / res["J0-"][0]))
        return 0 if ratio <= TARGET else 1
    finally:
        if origin is not None:
            origin.terminate()
            origin.wait()
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
