#!/usr/bin/python3
"""sinewd's live stats under 1,000 proxies (issue 12: "sinewd with 1,000
proxies reporting stays within 200 MB").

N simulated proxies -- light clients speaking the real control protocol of
docs/internals/control-protocol.md over HTTP/2 (Debian's python3-h2), on a
plaintext mesh port (sinewd --mesh-plaintext) -- say hello and then send a
`stats` message every --interval, as sinew-proxy does: cumulative request
series with Istio's labels. Proxy i is a replica of workload i % W; each
calls --dests other workloads, picking among their replicas' registered
entries (`proxy-<id>`, as a real client's proxy reports them), with a 200
and a 503 series per endpoint, and reports its inbound requests per
calling workload. The first message of each proxy says its counts accrued
over the whole last hour (periodMs 3,600,000), so every key's hour of
slots is filled at once: the memory measured is the steady state an hour
of traffic reaches, not the first minutes'. sinewd's RSS and CPU come from
/proc; GET /api/v1/stats and /api/v1/edges are timed.

    python3 bench/stats_memory.py [--proxies 1000] [--workloads 100] [--dests 5]
    SINEW_BIN=build/release/bin python3 bench/stats_memory.py --workloads 1000   # every proxy its own workload

Everything runs on 127.0.0.1; every load is bounded in count and time.
"""

import argparse
import asyncio
import json
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import h2.config
import h2.connection
import h2.events

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SINEW_BIN", os.path.join(ROOT, "build", "release", "bin"))
PATH = "/sinew.v1.Mesh/Stream"
BOUNDS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
          600000, 1800000, 3600000]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http(method, url, timeout=60):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def proc_stat(pid):
    """(rss_kib, cpu_seconds) of a process."""
    with open("/proc/%d/status" % pid) as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / tick


def label_prefix(d):
    """A series' labels as JSON members, computed once."""
    return json.dumps(d)[:-1]


class Series:
    def __init__(self, labels, code, rate):
        self.prefix = label_prefix(dict(labels, responseCode=code))
        self.rate = rate            # requests a second
        self.buckets = [0] * 20

    def advance(self, seconds, rng):
        n = int(self.rate * seconds + rng.random())
        for _ in range(min(n, 4)):   # a few observations, spread over the low buckets
            self.buckets[rng.randrange(1, 6)] += n // 4 + 1
        return self

    def json(self):
        c = sum(self.buckets)
        return '%s,"count":%d,"durationBuckets":%s,"durationSumMs":%d.5}' % (
            self.prefix, c, json.dumps(self.buckets), c * 3)


class SimProxy:
    """One simulated proxy: one h2 connection, one stream, NDJSON both ways."""

    def __init__(self, idx, args, port):
        self.idx, self.port, self.args = idx, port, args
        self.id = "sim-%d" % idx
        w = idx % args.workloads
        self.workload = "wl%d" % w
        self.rng = random.Random(idx)
        self.series = []
        sa = lambda name: "spiffe://cluster.local/ns/default/sa/" + name  # noqa: E731
        replicas = max(1, args.proxies // args.workloads)
        # outbound: to --dests workloads, one series pair per endpoint (replica)
        for k in range(args.dests):
            dw = (w + 1 + k * 7) % args.workloads
            for r in range(replicas):
                dst_id = "sim-%d" % (dw + r * args.workloads)
                base = {"reporter": "source", "sourceWorkload": self.workload, "sourceNamespace": "default",
                        "sourcePrincipal": sa(self.workload), "sourceApp": self.workload, "sourceVersion": "v1",
                        "sourceCluster": "Kubernetes", "destinationWorkload": "proxy-" + dst_id,
                        "destinationNamespace": "default", "destinationPrincipal": sa("wl%d" % dw),
                        "destinationApp": "wl%d" % dw, "destinationVersion": "v1",
                        "destinationService": "wl%d.default.svc.cluster.local" % dw,
                        "destinationServiceName": "wl%d" % dw, "destinationServiceNamespace": "default",
                        "destinationCluster": "Kubernetes", "protocol": "http", "grpcStatus": None,
                        "responseFlags": "-", "connectionSecurityPolicy": "unknown"}
                self.series.append(Series(base, 200, 2.0))
                self.series.append(Series(base, 503, 0.1))
        # inbound: from the workloads that call this one
        callers = [c for c in range(args.workloads)
                   if any((c + 1 + k * 7) % args.workloads == w for k in range(args.dests))]
        for c in callers:
            base = {"reporter": "destination", "sourceWorkload": "unknown", "sourceNamespace": "unknown",
                    "sourcePrincipal": sa("wl%d" % c), "sourceApp": "unknown", "sourceVersion": "unknown",
                    "sourceCluster": "Kubernetes", "destinationWorkload": self.workload,
                    "destinationNamespace": "default", "destinationPrincipal": sa(self.workload),
                    "destinationApp": self.workload, "destinationVersion": "v1",
                    "destinationService": "%s.default.svc.cluster.local" % self.workload,
                    "destinationServiceName": self.workload, "destinationServiceNamespace": "default",
                    "destinationCluster": "Kubernetes", "protocol": "http", "grpcStatus": None,
                    "responseFlags": "-", "connectionSecurityPolicy": "mutual_tls"}
            self.series.append(Series(base, 200, 2.0))
            self.series.append(Series(base, 503, 0.1))
        self.seq = 0
        self.ready = asyncio.Event()
        self.sent_bytes = 0

    def stats_message(self, period_ms):
        self.seq += 1
        for s in self.series:
            s.advance(period_ms / 1000.0, self.rng)
        return ('{"type":"stats","timeUnixMs":%d,"seq":%d,"intervalMs":%d,"periodMs":%d,"durationBucketsMs":%s,'
                '"requests":[%s],"tcp":{"connectionsActive":4,"connectionsTotal":%d}}\n'
                % (int(time.time() * 1000), self.seq, self.args.interval * 1000, period_ms, json.dumps(BOUNDS),
                   ",".join(s.json() for s in self.series), self.seq * 4)).encode()

    async def run(self, stop, rounds_done, all_ready):
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.increment_flow_control_window(1 << 24)
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", "sinewd"),
                                (":path", PATH), ("content-type", "application/x-ndjson")])
        pending = []

        def send(data):
            pending.append(data)

        def flush_pending():
            # respect the peer's flow-control window: a large stats message
            # goes out as the window allows
            while pending:
                data = pending[0]
                room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                if room <= 0:
                    return
                conn.send_data(sid, data[:room])
                if room >= len(data):
                    pending.pop(0)
                else:
                    pending[0] = data[room:]

        send((json.dumps({"type": "hello", "node": {"id": self.id, "service": self.workload,
                                                     "namespace": "default", "labels": {"app": self.workload},
                                                     "service_account": self.workload, "inbound": None,
                                                     "admin": None, "version": "bench"}, "have": {}}) + "\n").encode())
        flush_pending()
        writer.write(conn.data_to_send())
        await writer.drain()
        next_stats = time.monotonic() + self.rng.random() * self.args.interval   # spread, as real proxies are
        last_beat = time.monotonic()
        first = True
        while not stop.is_set():
            try:
                data = await asyncio.wait_for(reader.read(65536), 0.5)
            except asyncio.TimeoutError:
                data = None
            if data == b"":
                break
            if data:
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.DataReceived):
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                        if b'"type":"resources"' in ev.data:
                            self.ready.set()
                    elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset,
                                         h2.events.ConnectionTerminated)):
                        stop.set()
            now = time.monotonic()
            if not all_ready.is_set():
                # every proxy says hello before any reports, as in a running mesh: a
                # client's report names its destinations' entries, which sinewd
                # resolves to workloads once those proxies are known
                next_stats = now + self.rng.random() * self.args.interval
            elif self.args.no_stats and now >= next_stats:
                rounds_done[self.idx] += 1
                next_stats += self.args.interval
            elif now >= next_stats:
                # the first message: an hour of counts, spread over the hour
                msg = self.stats_message(3600000 if first else self.args.interval * 1000)
                self.sent_bytes += len(msg)
                send(msg)
                if not first:
                    rounds_done[self.idx] += 1
                first = False
                next_stats += self.args.interval
            if now - last_beat > 3:
                send(b'{"type":"heartbeat"}\n')
                last_beat = now
            flush_pending()
            out = conn.data_to_send()
            if out:
                writer.write(out)
                await writer.drain()
        writer.close()


async def run(args, api, mesh_port, pid):
    stop = asyncio.Event()
    all_ready = asyncio.Event()
    rounds_done = [0] * args.proxies
    sims = [SimProxy(i, args, mesh_port) for i in range(args.proxies)]
    rss0, _ = proc_stat(pid)
    tasks = []
    t0 = time.monotonic()
    for i, s in enumerate(sims):
        tasks.append(asyncio.create_task(s.run(stop, rounds_done, all_ready)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    try:
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in sims)), 120)
    except asyncio.TimeoutError:
        print("  only %d/%d proxies connected within 120 s" % (sum(s.ready.is_set() for s in sims), len(sims)))
    all_ready.set()
    print("  %d proxies connected in %.1f s; %d series each on average"
          % (len(sims), time.monotonic() - t0, sum(len(s.series) for s in sims) // len(sims)), flush=True)
    samples = []
    _, cpu_start = proc_stat(pid)
    t_start = time.monotonic()
    while min(rounds_done) < args.rounds:
        await asyncio.sleep(args.interval)
        rss, cpu = proc_stat(pid)
        loop = asyncio.get_running_loop()
        t = time.monotonic()
        st_code, body = await loop.run_in_executor(None, http, "GET",
                                                   api + "/api/v1/stats?resource=deploy&window=1m")
        stat_ms = (time.monotonic() - t) * 1000
        t = time.monotonic()
        e_code, ebody = await loop.run_in_executor(None, http, "GET", api + "/api/v1/edges?window=1m")
        edges_ms = (time.monotonic() - t) * 1000
        rows = json.loads(body) if st_code == 200 else []
        samples.append({"rounds": min(rounds_done), "rss_mib": round(rss / 1024, 1),
                        "stat_ms": round(stat_ms, 1), "edges_ms": round(edges_ms, 1),
                        "rows": len(rows), "edges": len(json.loads(ebody)) if e_code == 200 else 0})
        print("  after %d rounds: sinewd RSS %.1f MiB; GET stats %.0f ms (%d rows), edges %.0f ms (%d)"
              % (samples[-1]["rounds"], rss / 1024, stat_ms, len(rows), edges_ms, samples[-1]["edges"]),
              flush=True)
    rss_end, cpu_end = proc_stat(pid)
    elapsed = time.monotonic() - t_start
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    sent = sum(s.sent_bytes for s in sims)
    return {
        "proxies": args.proxies, "workloads": args.workloads, "dests": args.dests,
        "interval_s": args.interval, "rounds": args.rounds,
        "series_per_proxy_avg": sum(len(s.series) for s in sims) / len(sims),
        "stats_bytes_sent": sent, "message_bytes_avg": sent // max(1, sum(s.seq for s in sims)),
        "sinewd_rss_mib": {"before": round(rss0 / 1024, 1), "peak_sampled": max(x["rss_mib"] for x in samples),
                           "end": round(rss_end / 1024, 1)},
        "sinewd_cpu_percent": round(100.0 * (cpu_end - cpu_start) / elapsed, 1),
        "samples": samples,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxies", type=int, default=1000)
    ap.add_argument("--workloads", type=int, default=100)
    ap.add_argument("--dests", type=int, default=5)
    ap.add_argument("--interval", type=int, default=10, help="seconds between a proxy's messages")
    ap.add_argument("--resolution", default="10s", help="sinewd --stats-resolution")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--no-stats", action="store_true", help="connect and heartbeat only: the links' own cost")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    tmp = tempfile.mkdtemp(prefix="sinew-bench-stats-")
    api_port, mesh_port = free_port(), free_port()
    api = "http://127.0.0.1:%d" % api_port
    d = subprocess.Popen([os.path.join(BIN, "sinewd"), "--data-dir", os.path.join(tmp, "data"),
                          "--api", "127.0.0.1:%d" % api_port, "--mesh", "127.0.0.1:%d" % mesh_port,
                          "--log-level", "warn", "--mesh-plaintext", "--stats-resolution", args.resolution],
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "sinewd.log"), "w"))
    try:
        for _ in range(100):
            try:
                if http("GET", api + "/ready", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        print("== %d simulated proxies (%d workloads, %d destinations each), a stats message every %d s, "
              "sinewd --stats-resolution %s" % (args.proxies, args.workloads, args.dests, args.interval,
                                                args.resolution), flush=True)
        result = asyncio.run(run(args, api, mesh_port, d.pid))
        result["binary"] = BIN
        result["machine"] = {"cpus": os.cpu_count(), "kernel": os.uname().release}
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "stats-memory-w%d-r%s.json" % (args.workloads, args.resolution)), "w") as f:
            json.dump(result, f, indent=2)
        print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
        peak = result["sinewd_rss_mib"]["peak_sampled"]
        print("target (issue 12): sinewd with %d proxies reporting within 200 MB: peak RSS %.1f MiB (%.0f MB), %s"
              % (args.proxies, peak, peak * 1.048576, "met" if peak * 1.048576 <= 200 else "NOT met"), flush=True)
    finally:
        d.terminate()
        try:
            d.wait(10)
        except subprocess.TimeoutExpired:
            d.kill()
        with open(os.path.join(tmp, "sinewd.log")) as f:
            log = f.read()
        if log.strip():
            print("sinewd's log (warnings):\n" + log[-3000:])


if __name__ == "__main__":
    main()
