#!/usr/bin/python3
"""Tracing's cost on sinew-proxy's outbound hop (issue 12: at 1 % and
100 % sampling, at most +3 % and +15 % CPU per 1000 req/s), with tracing
off (the mesh config's enableTracing: false), at 1 % and at 100 %
sampling (a Telemetry resource), spans exported as OTLP/HTTP JSON to a
collector on loopback (a small Python server that takes and drops them).

Three figures per case:
- instructions per request in user space (valgrind --tool=callgrind) and
  system calls per request (strace -f -c): the difference between a long
  and a short run divided by the difference in requests, so start-up and
  shutdown cancel out (../shared/PERF.md). Callgrind counts a large
  memcpy (rep movsb) as one instruction per byte, which makes copying
  batches look dearer than it is;
- CPU time per request (user + system, /proc/PID/stat) of the proxy alone,
  unpinned, over a run of CPU_N requests: what the target is written in,
  and what swings run to run.

h2load --h1 drives C keep-alive connections to an nginx origin serving
1 KiB on loopback, as bench/jwt_cost.py.

    /usr/bin/python3 bench/trace_cost.py            # after `make build`
    N=2000 C=10 CPU_N=100000 /usr/bin/python3 bench/trace_cost.py
"""

import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROXY = os.environ.get("SINEW_PROXY", os.path.join(ROOT, "build", "release", "bin", "sinew-proxy"))
N = int(os.environ.get("N", "2000"))
C = int(os.environ.get("C", "10"))
SHORT = int(os.environ.get("SHORT", "300"))
CPU_N = int(os.environ.get("CPU_N", "100000"))
ORIGIN_PORT = int(os.environ.get("ORIGIN_PORT", "18190"))
HOP_PORT = int(os.environ.get("HOP_PORT", "18192"))
COLLECTOR_PORT = int(os.environ.get("COLLECTOR_PORT", "18194"))

BASE = """apiVersion: v1
kind: Service
metadata: {name: up, namespace: default}
spec: {selector: {app: up}, ports: [{name: http, port: 80}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: up-1, namespace: default}
spec: {address: 127.0.0.1, ports: {http: %(origin)d}, labels: {app: up}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: any, namespace: default}
spec: {hosts: ["*"], http: [{route: [{destination: {host: up}}]}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    enableTracing: %(enable)s
    extensionProviders:
    - name: otel
      opentelemetry: {service: collector.default.svc.cluster.local, port: 4318, http: {path: /v1/traces}}
---
apiVersion: v1
kind: Service
metadata: {name: collector, namespace: default}
spec: {selector: {app: collector}, ports: [{name: http, port: 4318}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: collector-1, namespace: default}
spec: {address: 127.0.0.1, ports: {http: %(collector)d}, labels: {app: collector}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - providers: [{name: otel}]
    randomSamplingPercentage: %(pct)s
"""


class Collector(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    spans = 0

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        Collector.spans += body.count(b'"spanId"')
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


def stop(p):
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


def wait_up():
    end = time.time() + 30
    while time.time() < end:
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: up",
                            "http://127.0.0.1:%d/1k" % HOP_PORT], capture_output=True, text=True, timeout=10)
        if r.stdout == "200":
            return True
        time.sleep(0.2)
    return False


def load(n):
    r = subprocess.run(["h2load", "--h1", "-H", ":authority: up", "-c", str(C), "-t", "1", "-n", str(n),
                        "http://127.0.0.1:%d/1k" % HOP_PORT], capture_output=True, text=True, timeout=900)
    if " %d succeeded" % n not in r.stdout:
        raise RuntimeError("h2load: %s" % r.stdout[-400:])


def one(tool, cfg, n, out):
    argv = [PROXY, "--config", cfg, "--outbound", "127.0.0.1:%d" % HOP_PORT, "--admin",
            "127.0.0.1:%d" % (HOP_PORT + 1), "--workers", "1", "--log-level", "error", "--service", "bench"]
    f = os.path.join(out, "%s-%d" % (tool, n))
    if tool == "ir":
        argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + f] + argv
    elif tool == "sys":
        argv = ["strace", "-f", "-c", "-o", f] + argv
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_up():
            raise RuntimeError("sinew-proxy did not answer 200 under %s" % tool)
        if tool == "cpu":
            def ticks():
                with open("/proc/%d/stat" % p.pid) as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                return int(fields[11]) + int(fields[12])
            t0 = ticks()
            load(n)
            time.sleep(1.2)   # the last batch goes out
            return (ticks() - t0) / os.sysconf("SC_CLK_TCK")
        load(n)
    finally:
        stop(p)
    text = open(f).read()
    m = re.search(r"^(?:summary|totals): (\d+)", text, re.M) if tool == "ir" else \
        re.search(r"^\S+\s+\S+\s+\S+\s+(\d+)\s+(?:\d+\s+)?total$", text, re.M)
    if m is None:
        raise RuntimeError("no total in %s" % f)
    return int(m.group(1))


def main():
    for t in ("valgrind", "strace", "h2load", "curl", "nginx"):
        if shutil.which(t) is None:
            sys.exit("trace_cost: %s not found (scripts/deps.sh bench)" % t)
    out = tempfile.mkdtemp(prefix="sinew-trace-cost-")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", COLLECTOR_PORT), Collector)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
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
        cases = (("off", "false", "0"), ("1%", "true", "1"), ("100%", "true", "100"))
        cfgs = {}
        for name, enable, pct in cases:
            cfgs[name] = os.path.join(out, "%s.yaml" % pct)
            with open(cfgs[name], "w") as f:
                f.write(BASE % {"origin": ORIGIN_PORT, "collector": COLLECTOR_PORT, "enable": enable, "pct": pct})
        print("%-5s %14s %12s %16s   (outbound hop, %d keep-alive connections, %d requests; CPU over %d)"
              % ("trace", "instr/request", "syscalls/req", "CPU us/request", C, N, CPU_N))
        res = {}
        for name, _, _ in cases:
            a = one("ir", cfgs[name], SHORT, out)
            b = one("ir", cfgs[name], SHORT + N, out)
            c = one("sys", cfgs[name], SHORT, out)
            d = one("sys", cfgs[name], SHORT + N, out)
            res[name] = [(b - a) / N, (d - c) / N]
        # CPU: interleaved, three rounds, the median of each
        cpu = {name: [] for name, _, _ in cases}
        for _ in range(3):
            for name, _, _ in cases:
                cpu[name].append(one("cpu", cfgs[name], CPU_N, out) / CPU_N * 1e6)
        for name, _, _ in cases:
            res[name].append(sorted(cpu[name])[1])
            print("%-5s %14.0f %12.2f %16.2f" % (name, res[name][0], res[name][1], res[name][2]))
        for name in ("1%", "100%"):
            print("%s vs off: instructions %+.1f %%, CPU %+.1f %% (target %s)"
                  % (name, (res[name][0] / res["off"][0] - 1) * 100, (res[name][2] / res["off"][2] - 1) * 100,
                     "<= +3 %" if name == "1%" else "<= +15 %"))
        print("spans the collector took: %d" % Collector.spans)
        return 0
    finally:
        srv.shutdown()
        if origin is not None:
            origin.terminate()
            origin.wait()
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
