#!/usr/bin/python3
"""Control-plane scale benchmark (issue 4): `make bench-control`.

N simulated proxies -- light clients speaking the real protocol of
docs/internals/control-protocol.md over HTTP/2 -- connect to a real sinewd
and subscribe to a mix of destinations. Then, repeatedly, a VirtualService
is applied through the API and the time from `apply` returning to every
proxy having ACKed a push at least as new as that revision is measured.
sinewd's RSS and CPU are read from /proc. Then sinewd is restarted and the
time until every proxy has reconnected and resynced is measured (mass
reconnect). Finally one real sinew-proxy's RSS is measured while the mesh
grows from 10 to 1,000 services it never calls (lazy discovery means it
should not grow).

    python3 bench/control.py [--proxies 1000] [--services 50] [--rounds 10]
    SINEW_BIN=build/release/bin python3 bench/control.py --quick
    python3 bench/control.py --proxies 10000 --register --out /tmp/r
    python3 bench/control.py --curve 100,1000,10000    # bench/results/control-curve.json
    python3 bench/control.py --replicas 3    # sinewd replicas on a 3-member etcd

The simulated proxies (--sim):
  c       (default) bench/control_sim.c, compiled into the run's temporary
          directory with gcc and libnghttp2 (apt-get install gcc
          libnghttp2-dev): one epoll process holding every link, fast enough
          that sinewd is what 10,000 proxies measure. All links start at once
          unless --connect-rate is given. Lost links reconnect with jittered
          backoff (50-100 ms doubling to 500 ms), their hello carrying the
          resources held (`have`), as sinew-proxy's does.
  python  the original asyncio client (Debian's python3-h2), 50 links per
          50 ms; about 100 us of Python per push, so above ~1,000 proxies it
          measures itself. No reconnects, hence no --reconnect phase.

--register: each simulated proxy's hello names an inbound address of its own
(127.Z.Y.X:15006) and labels {app: simN}, so sinewd registers a WorkloadEntry
per proxy and recomputes every proxy's closure as each one arrives -- what
real proxies make it do.

--reconnect (on by default with --sim c): after the rounds every sinewd gets
SIGTERM and is started again on the same data directory and ports; every
proxy reconnects at once. `reconnect_resync_s` runs from sinewd's /ready
answering again to every proxy having had a push on its new link (negative
when the storm delays /ready itself: the API shares sinewd's loop), and
`start_to_resynced_s` from the new sinewd's start; the backoff's 500 ms cap
bounds what the simulated proxies add to them.

--curve 100,1000,10000: the scale part once per count, each against a fresh
sinewd (no sidecar part), a row per count: connect_and_sync_s, apply p50/p99,
sinewd CPU seconds per apply, sinewd RSS, reconnect_resync_s; written as
control-curve.json under --out.

Everything runs on 127.0.0.1; every load is bounded in count and time.
"""

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import h2.config
import h2.connection
import h2.events

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SINEW_BIN", os.path.join(ROOT, "build", "release", "bin"))
PATH = "/sinew.v1.Mesh/Stream"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http(method, url, body=None, timeout=30):
    req = urllib.request.Request(url, data=body, method=method)
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


def machine_busy_s():
    """CPU seconds the whole machine has been busy (all cores), and stolen by the host."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / tick, (v[7] if len(v) > 7 else 0) / tick


def services_yaml(n, prefix="svc", with_endpoints=True):
    docs = []
    for i in range(n):
        name = "%s%d" % (prefix, i)
        docs.append("""apiVersion: v1
kind: Service
metadata: {name: %s, namespace: default}
spec:
  selector: {app: %s}
  ports: [{name: http, port: 9080}]
""" % (name, name))
        if with_endpoints:
            for v in ("v1", "v2"):
                docs.append("""apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: %s-%s, namespace: default}
spec:
  address: 127.0.0.%d
  ports: {http: 9080}
  labels: {app: %s, version: %s}
""" % (name, v, 2 + (i % 200), name, v))
            docs.append("""apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: %s, namespace: default}
spec:
  host: %s
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
""" % (name, name))
    return "---\n".join(docs)


def vs_yaml(name, subset):
    return """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %s, namespace: default}
spec:
  hosts: [%s]
  http:
  - route:
    - destination: {host: %s, subset: %s}
""" % (name, name, name, subset)


class SimProxy:
    """One simulated proxy: one h2 connection, one stream, NDJSON both ways."""

    def __init__(self, idx, port, hosts, stats, register=False):
        self.idx, self.port, self.hosts, self.stats = idx, port, hosts, stats
        self.register = register
        self.acked_revision = 0
        self.ready = asyncio.Event()

    async def run(self, stop):
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.increment_flow_control_window(1 << 24)
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                                (":authority", "sinewd"), (":path", PATH),
                                ("content-type", "application/x-ndjson")])

        def send(obj):
            conn.send_data(sid, (json.dumps(obj) + "\n").encode())

        i = self.idx
        # with --register, what control_sim.c sends: an address of its own
        inbound = "127.%d.%d.%d:15006" % (1 + i // 62500, (i // 250) % 250, 2 + i % 250) if self.register else None
        send({"type": "hello", "node": {"id": "sim-%d" % i, "service": "sim%d" % i,
                                        "namespace": "default",
                                        "labels": {"app": "sim%d" % i if self.register else "sim"},
                                        "service_account": "default", "inbound": inbound,
                                        "admin": None, "version": "bench"}, "have": {}})
        send({"type": "subscribe", "hosts": self.hosts})
        writer.write(conn.data_to_send())
        await writer.drain()
        buf = b""
        last_beat = time.monotonic()
        while not stop.is_set():
            try:
                data = await asyncio.wait_for(reader.read(65536), 1.0)
            except asyncio.TimeoutError:
                data = None
            if data == b"":
                break
            if data:
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.DataReceived):
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                        buf += ev.data
                        while b"\n" in buf:
                            line, buf = buf.split(b"\n", 1)
                            msg = json.loads(line)
                            if msg.get("type") == "resources":
                                send({"type": "ack", "nonce": msg.get("nonce", "")})
                                try:
                                    rev = int(msg.get("version") or 0)
                                except ValueError:
                                    rev = 0
                                self.acked_revision = max(self.acked_revision, rev)
                                self.stats["pushes"] += 1
                                self.ready.set()
                    elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset,
                                         h2.events.ConnectionTerminated)):
                        stop.set()
            if time.monotonic() - last_beat > 3:
                send({"type": "heartbeat"})
                last_beat = time.monotonic()
            out = conn.data_to_send()
            if out:
                writer.write(out)
                await writer.drain()
        writer.close()


async def scale_run(args, api, mesh_ports, sinewd_pid):
    """The scale part with the Python simulated proxies (--sim python)."""
    stats = {"pushes": 0}
    stop = asyncio.Event()
    sims = []
    for i in range(args.proxies):
        # each proxy calls 3 destinations of the mesh; one of them is svc0,
        # the one whose VirtualService the rounds change
        hosts = ["svc0", "svc%d" % (1 + i % (args.services - 1)), "svc%d" % (1 + (i * 7) % (args.services - 1))]
        sims.append(SimProxy(i, mesh_ports[i % len(mesh_ports)], hosts, stats, args.register))
    tasks = []
    t0 = time.monotonic()
    for i, s in enumerate(sims):
        tasks.append(asyncio.create_task(s.run(stop)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    try:
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in sims)), 60)
    except asyncio.TimeoutError:
        print("  only %d/%d proxies synced within 60 s" % (sum(s.ready.is_set() for s in sims), len(sims)))
    connect_s = time.monotonic() - t0
    rss_idle, cpu0 = proc_stat(sinewd_pid)
    sim_cpu0 = time.process_time()
    busy0, steal0 = machine_busy_s()
    print("  %d proxies connected and synced in %.1f s; sinewd RSS %.1f MiB"
          % (len(sims), connect_s, rss_idle / 1024))
    lat = []
    for r in range(args.rounds):
        subset = "v1" if r % 2 else "v2"
        t_apply = time.monotonic()
        st, body = await asyncio.get_running_loop().run_in_executor(
            None, http, "POST", api + "/api/v1/apply?source=bench-vs.yaml", vs_yaml("svc0", subset).encode())
        t_ret = time.monotonic()
        if st != 200:
            print("  apply failed: %d %s" % (st, body[:300]))
            break
        rev = max(int(x.get("resourceVersion") or 0) for x in json.loads(body))
        deadline = t_ret + 30
        while time.monotonic() < deadline and any(s.acked_revision < rev for s in sims):
            await asyncio.sleep(0.002)
        done = time.monotonic()
        missing = sum(s.acked_revision < rev for s in sims)
        lat.append((done - t_ret) * 1000)
        print("  round %d: apply took %.1f ms; all %d ACKed %.1f ms after it returned%s"
              % (r + 1, (t_ret - t_apply) * 1000, len(sims), lat[-1],
                 "" if not missing else " (%d missing)" % missing))
        await asyncio.sleep(0.2)
    rss_load, cpu1 = proc_stat(sinewd_pid)
    sim_cpu = time.process_time() - sim_cpu0
    busy1, steal1 = machine_busy_s()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    result = scale_result(args, len(sims), len(mesh_ports), connect_s, lat, rss_idle, rss_load, cpu1 - cpu0,
                          stats["pushes"])
    result["sim_cpu_s_during_rounds"] = round(sim_cpu, 2)   # this process: the sim and the driver
    result["other_cpu_s_during_rounds"] = round(max(0.0, (busy1 - busy0) - (cpu1 - cpu0) - sim_cpu), 2)
    result["steal_s_during_rounds"] = round(steal1 - steal0, 2)
    return result


def scale_result(args, proxies, replicas, connect_s, lat, rss_idle, rss_load, cpu_rounds, pushes):
    lat = sorted(lat)
    return {
        "proxies": proxies, "services": args.services, "rounds": len(lat), "replicas": replicas,
        "sim": args.sim, "register": args.register,
        "connect_and_sync_s": round(connect_s, 2) if connect_s is not None else None,
        "apply_to_all_acked_ms": {
            "p50": round(statistics.median(lat), 1) if lat else None,
            "p99": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1) if lat else None,
            "max": round(lat[-1], 1) if lat else None,
        },
        "sinewd_rss_mib": {"idle_synced": round(rss_idle / 1024, 1), "after_rounds": round(rss_load / 1024, 1)},
        "sinewd_cpu_s_during_rounds": round(cpu_rounds, 2),
        "sinewd_cpu_s_per_apply": round(cpu_rounds / len(lat), 3) if lat else None,
        "pushes_acked": pushes,
    }


# ---- the C simulated proxies (--sim c) ----

def build_sim(tmp):
    """Compiles bench/control_sim.c into tmp; the executable's path."""
    src = os.path.join(ROOT, "bench", "control_sim.c")
    exe = os.path.join(tmp, "control_sim")
    cc = os.environ.get("CC", "gcc")
    if shutil.which(cc) is None:
        sys.exit("bench-control: no %s to build bench/control_sim.c: apt-get install gcc libnghttp2-dev "
                 "(or run with --sim python)" % cc)
    r = subprocess.run([cc, "-O2", "-Wall", "-o", exe, src, "-lnghttp2"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("bench-control: building bench/control_sim.c failed:\n%s\nIt needs gcc and nghttp2's headers "
                 "and library: apt-get install gcc libnghttp2-dev (or run with --sim python)" % r.stderr.strip())
    return exe


class CSim:
    """control_sim.c running N proxies; its stdout events, read by a thread."""

    def __init__(self, exe, ports, proxies, args, max_seconds, log):
        cmd = [exe, "--port", ",".join(str(p) for p in ports), "--proxies", str(proxies),
               "--services", str(args.services), "--connect-rate", str(args.connect_rate),
               "--max-seconds", str(int(max_seconds))] + (["--register"] if args.register else [])
        self.log = log
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(log, "w"), text=True, bufsize=1)
        self.cond = threading.Condition()
        self.synced, self.acked, self.lost = [], [], []   # (t, n or rev)
        self.progress = None                              # (t, open, synced, min_acked)
        self.stats, self.eof = {}, False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        events = open(os.path.splitext(self.log)[0] + ".events", "w")   # for a look afterwards
        for line in self.proc.stdout:
            events.write(line)
            f = line.split()
            if not f:
                continue
            with self.cond:
                try:
                    if f[0] == "synced":
                        self.synced.append((float(f[1]), int(f[2])))
                    elif f[0] == "acked":
                        self.acked.append((float(f[1]), int(f[2])))
                    elif f[0] == "lost":
                        self.lost.append((float(f[1]), int(f[2])))
                    elif f[0] == "progress":
                        self.progress = (float(f[1]), int(f[2]), int(f[3]), int(f[4]))
                    elif f[0] == "stats":
                        self.stats = dict(kv.split("=", 1) for kv in f[1:] if "=" in kv)
                except (IndexError, ValueError):
                    print("  control_sim said something odd: %r" % line.strip())
                self.cond.notify_all()
        events.close()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait(self, what, pred, timeout):
        """Waits for pred() (called with the lock held); its value, or None after timeout.
        Prints the sim's progress every 10 s meanwhile."""
        deadline = time.monotonic() + timeout
        next_note = time.monotonic() + 10
        with self.cond:
            while True:
                v = pred()
                if v is not None or self.eof:
                    return v
                now = time.monotonic()
                if now >= deadline:
                    return None
                if now >= next_note and self.progress:
                    print("    (%s: %d links open, %d proxies synced, lowest ACKed version %d)"
                          % ((what,) + self.progress[1:]))
                    next_note = now + 10
                self.cond.wait(min(deadline, next_note) - now)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()   # the sim exits when its stdin closes
            except OSError:
                pass
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self.reader.join(10)
        return self.stats


def scale_run_c(args, exe, proxies, ds, tmp):
    """The scale part with control_sim.c, and the mass reconnect (ds: the Sinewd replicas)."""
    api = ds[0].api
    sync_timeout = max(60.0, proxies * 0.03)
    round_timeout = max(30.0, proxies * 0.006)
    max_seconds = 2 * sync_timeout + args.rounds * (round_timeout + 1) + 300
    sim = CSim(exe, [d.mesh_port for d in ds], proxies, args, max_seconds, os.path.join(tmp, "sim.log"))
    result = None
    try:
        first = sim.wait("connecting", lambda: sim.synced[0] if sim.synced else None, sync_timeout)
        if first is None:
            p = sim.progress or (0, 0, 0, 0)
            print("  only %d/%d proxies synced within %.0f s (%d links open); see %s"
                  % (p[2], proxies, sync_timeout, p[1], sim.log))
            connect_s = None
        else:
            connect_s = first[0] - sim.t_start
        # sinewd's CPU with every proxy connected and nothing changing: heartbeats
        # (a message and a PING per proxy every 3 s); the rounds pay it too
        _, c_a = proc_stat(ds[0].proc.pid)
        time.sleep(2.0)
        rss_idle, cpu0 = proc_stat(ds[0].proc.pid)
        idle_per_s = (cpu0 - c_a) / 2.0
        sim_cpu0 = proc_stat(sim.proc.pid)[1]
        busy0, steal0 = machine_busy_s()
        me0 = time.process_time()
        t_rounds = time.monotonic()
        if connect_s is not None:
            print("  %d proxies connected and synced in %.2f s; sinewd RSS %.1f MiB, CPU %.0f %% of a core "
                  "while idle (heartbeats)" % (proxies, connect_s, rss_idle / 1024, idle_per_s * 100))
        lat, apply_ms = [], []
        for r in range(args.rounds if connect_s is not None else 0):
            subset = "v1" if r % 2 else "v2"
            t_apply = time.monotonic()
            st, body = http("POST", api + "/api/v1/apply?source=bench-vs.yaml", vs_yaml("svc0", subset).encode(), 60)
            t_ret = time.monotonic()
            if st != 200:
                print("  apply failed: %d %s" % (st, body[:300]))
                break
            rev = max(int(x.get("resourceVersion") or 0) for x in json.loads(body))
            ev = sim.wait("round %d" % (r + 1), lambda: next((a for a in sim.acked if a[1] >= rev), None),
                          round_timeout)
            if ev is None:
                p = sim.progress or (0, 0, 0, 0)
                print("  round %d: apply took %.1f ms; not all %d ACKed revision %d within %.0f s "
                      "(lowest ACKed: %d); stopping the rounds"
                      % (r + 1, (t_ret - t_apply) * 1000, proxies, rev, round_timeout, p[3]))
                break
            # the sim's own clock: when the last proxy's ACK went out, not when we read of it.
            # Before `apply` returned counts as 0, as the Python sim would see it.
            d_ms = (ev[0] - t_ret) * 1000
            lat.append(max(0.0, d_ms))
            apply_ms.append((t_ret - t_apply) * 1000)
            print("  round %d: apply took %.1f ms; all %d ACKed %.1f ms %s it returned"
                  % (r + 1, apply_ms[-1], proxies, abs(d_ms), "after" if d_ms >= 0 else "BEFORE"))
            time.sleep(0.2)
        rss_load, cpu1 = proc_stat(ds[0].proc.pid)
        sim_rss, sim_cpu1 = proc_stat(sim.proc.pid)
        busy1, steal1 = machine_busy_s()
        me1 = time.process_time()
        t_rounds = time.monotonic() - t_rounds
        result = scale_result(args, proxies, len(ds), connect_s, lat, rss_idle, rss_load, cpu1 - cpu0, None)
        result["sinewd_cpu_s_per_s_idle"] = round(idle_per_s, 3)
        if lat:
            # what an apply costs beyond the heartbeats' share of the same time
            result["sinewd_cpu_s_per_apply_net"] = round(max(0.0, cpu1 - cpu0 - idle_per_s * t_rounds) / len(lat), 3)
        # the client's share of the two cores: it should stay well under sinewd's
        result["sim_cpu_s_during_rounds"] = round(sim_cpu1 - sim_cpu0, 2)
        result["sim_rss_mib"] = round(sim_rss / 1024, 1)
        # a shared machine: what else ran during the rounds (0 on a quiet one)
        result["other_cpu_s_during_rounds"] = round(
            max(0.0, (busy1 - busy0) - (cpu1 - cpu0) - (sim_cpu1 - sim_cpu0) - (me1 - me0)), 2)
        result["steal_s_during_rounds"] = round(steal1 - steal0, 2)
        result["connect_rate"] = args.connect_rate or "all at once"
        if apply_ms:
            result["apply_call_ms"] = {"min": round(min(apply_ms), 1), "p50": round(statistics.median(apply_ms), 1),
                                       "max": round(max(apply_ms), 1)}
        if args.reconnect and connect_s is not None:
            result["reconnect"] = mass_reconnect(sim, ds, proxies, sync_timeout)
    finally:
        stats = sim.stop()
    if result is not None:
        result["pushes_acked"] = int(stats.get("pushes", 0)) if stats else None
        result["sim_stats"] = stats
    if stats:
        print("  control_sim: %s" % " ".join("%s=%s" % kv for kv in stats.items() if kv[0] != "t"))
    return result


def mass_reconnect(sim, ds, proxies, timeout):
    """Restarts every sinewd; the time until every proxy is resynced."""
    with sim.cond:
        n_synced = len(sim.synced)
        n_lost = len(sim.lost)
    rss_before, _ = proc_stat(ds[0].proc.pid)
    t_term = time.monotonic()
    for d in ds:   # every replica at once: every proxy has to come back
        d.proc.terminate()
    for d in ds:
        d.stop()
    t_down = time.monotonic()
    for d in ds:
        d.start()
    ready = [d.wait_ready(30) for d in ds]
    if None in ready:
        print("  reconnect: a restarted sinewd did not answer /ready in 30 s; see its log")
        return {"error": "sinewd not ready after restart"}
    t_ready = max(ready)
    ev = sim.wait("resyncing", lambda: sim.synced[n_synced] if len(sim.synced) > n_synced else None, timeout)
    with sim.cond:
        lost = sum(n for t, n in sim.lost[n_lost:])
    rss, cpu = proc_stat(ds[0].proc.pid)
    out = {
        "sinewd_exit_s": round(t_down - t_term, 2),
        "sinewd_start_to_ready_s": round(t_ready - t_down, 2),
        "links_lost": lost,
        # negative: every proxy was back before /ready answered (the API shares sinewd's loop)
        "reconnect_resync_s": round(ev[0] - t_ready, 2) if ev else None,
        "start_to_resynced_s": round(ev[0] - t_down, 2) if ev else None,
        "term_to_resynced_s": round(ev[0] - t_term, 2) if ev else None,
        "sinewd_cpu_s_start_to_resynced": round(cpu, 2),
        "sinewd_rss_mib": {"before": round(rss_before / 1024, 1), "after_resync": round(rss / 1024, 1)},
    }
    if ev is None:
        p = sim.progress or (0, 0, 0, 0)
        print("  reconnect: only %d/%d proxies resynced within %.0f s of the restart (%d links open)"
              % (p[2], proxies, timeout, p[1]))
    else:
        print("  restart: sinewd exited %.2f s after SIGTERM, ready %.2f s after start; %d links lost; "
              "all %d proxies resynced %.2f s after start, %.2f s %s /ready; sinewd RSS %.1f MiB"
              % (t_down - t_term, t_ready - t_down, lost, proxies, ev[0] - t_down, abs(ev[0] - t_ready),
                 "after" if ev[0] >= t_ready else "BEFORE", rss / 1024))
    return out


def sidecar_growth(args, api, mesh_port, tmp):
    """One real sidecar's RSS while the mesh grows with services it never calls."""
    admin = free_port()
    out = free_port()
    p = subprocess.Popen([os.path.join(BIN, "sinew-proxy"), "--control-plane", "127.0.0.1:%d" % mesh_port,
                          "--outbound", "127.0.0.1:%d" % out, "--admin", "127.0.0.1:%d" % admin,
                          "--service", "watcher", "--log-level", "warn"],
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "sidecar.log"), "w"))
    rows = []
    try:
        for _ in range(100):
            try:
                if http("GET", "http://127.0.0.1:%d/ready" % admin, timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        have = 0
        for target in (10, 100, 1000):
            add = target - have
            st, _ = http("POST", api + "/api/v1/apply?source=grow.yaml",
                         services_yaml(add, prefix="grow%d-" % target, with_endpoints=True).encode(), timeout=120)
            have = target
            time.sleep(1.0)
            rss, _ = proc_stat(p.pid)
            rows.append({"services": target, "sidecar_rss_kib": rss})
            print("  mesh of %d extra services: sidecar RSS %.2f MiB" % (target, rss / 1024))
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    return rows


def start_etcd(tmp, procs):
    """A three-member etcd cluster on loopback; its client URL for --store."""
    client = [free_port() for _ in range(3)]
    peer = [free_port() for _ in range(3)]
    cluster = ",".join("m%d=http://127.0.0.1:%d" % (i, p) for i, p in enumerate(peer))
    for i in range(3):
        procs.append(subprocess.Popen(
            ["etcd", "--name", "m%d" % i, "--data-dir", os.path.join(tmp, "etcd%d" % i),
             "--listen-client-urls", "http://127.0.0.1:%d" % client[i],
             "--advertise-client-urls", "http://127.0.0.1:%d" % client[i],
             "--listen-peer-urls", "http://127.0.0.1:%d" % peer[i],
             "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % peer[i],
             "--initial-cluster", cluster, "--initial-cluster-state", "new"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "etcd%d.log" % i), "w")))
    for _ in range(200):
        try:
            if all(json.loads(http("GET", "http://127.0.0.1:%d/health" % c, timeout=1)[1]).get("health") == "true"
                   for c in client):
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    return "etcd://" + ",".join("127.0.0.1:%d" % c for c in client)


class Sinewd:
    """One sinewd replica; its ports and data directory stay across a restart."""

    def __init__(self, tmp, i, store):
        self.api_port, self.mesh_port = free_port(), free_port()
        self.api = "http://127.0.0.1:%d" % self.api_port
        self.cmd = [os.path.join(BIN, "sinewd"), "--data-dir", os.path.join(tmp, "data%d" % i),
                    "--api", "127.0.0.1:%d" % self.api_port, "--mesh", "127.0.0.1:%d" % self.mesh_port,
                    "--log-level", "warn", "--mesh-plaintext"] + store   # simulated proxies: plaintext h2
        self.log = os.path.join(tmp, "sinewd%d.log" % i)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=open(self.log, "a"))

    def wait_ready(self, timeout=10):
        """time.monotonic() when /ready first answers 200, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if http("GET", self.api + "/ready", timeout=1)[0] == 200:
                    return time.monotonic()
            except OSError:
                pass
            time.sleep(0.01)
        return None

    def stop(self, timeout=60):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()   # SIGTERM; a no-op if the caller sent it already
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            print("  sinewd (pid %d) still running %d s after SIGTERM; killing it" % (self.proc.pid, timeout))
            self.proc.kill()
            self.proc.wait()


def start_mesh(args, tmp, procs):
    """Fresh sinewd replicas (and etcd with --replicas) with the mesh applied."""
    store = []
    if args.replicas > 1:
        store = ["--store", start_etcd(tmp, procs)]
    ds = [Sinewd(tmp, i, store) for i in range(args.replicas)]
    for d in ds:
        d.start()
        procs.append(d)
    for d in ds:
        if d.wait_ready(10) is None:
            sys.exit("bench-control: sinewd did not answer /ready within 10 s; see %s" % d.log)
    st, body = http("POST", ds[0].api + "/api/v1/apply?source=mesh.yaml", services_yaml(args.services).encode(), 120)
    if st != 200:
        sys.exit("bench-control: applying the mesh failed: %d %s" % (st, body[:500]))
    return ds


def stop_all(procs):
    for p in reversed(procs):
        if isinstance(p, Sinewd):
            p.stop(30)
            continue
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    del procs[:]


def scale(args, exe, proxies, ds, tmp):
    if args.sim == "c":
        return scale_run_c(args, exe, proxies, ds, tmp)
    args.proxies = proxies
    return asyncio.run(scale_run(args, ds[0].api, [d.mesh_port for d in ds], ds[0].proc.pid))


def suffix(args):
    return "-replicas%d" % args.replicas if args.replicas > 1 else ""


def run_curve(args, exe, tmp, counts):
    rows = []
    for n in counts:
        sub = os.path.join(tmp, "n%d" % n)
        os.makedirs(sub)
        procs = []
        try:
            ds = start_mesh(args, sub, procs)
            print("== %d simulated proxies (%s), %d services, %d rounds%s" % (
                n, args.sim, args.services, args.rounds, ", then a mass reconnect" if args.reconnect else ""))
            r = scale(args, exe, n, ds, sub)
        finally:
            stop_all(procs)
        if r is None:
            continue
        rec = r.get("reconnect") or {}
        rows.append({
            "proxies": n,
            "connect_and_sync_s": r["connect_and_sync_s"],
            "apply_to_all_acked_ms_p50": r["apply_to_all_acked_ms"]["p50"],
            "apply_to_all_acked_ms_p99": r["apply_to_all_acked_ms"]["p99"],
            "sinewd_cpu_s_per_apply": r["sinewd_cpu_s_per_apply"],
            "sinewd_cpu_s_per_apply_net": r.get("sinewd_cpu_s_per_apply_net"),
            "sinewd_cpu_s_per_s_idle": r.get("sinewd_cpu_s_per_s_idle"),
            "sinewd_rss_mib": r["sinewd_rss_mib"]["after_rounds"],
            "reconnect_resync_s": rec.get("reconnect_resync_s"),
            "reconnect_start_to_resynced_s": rec.get("start_to_resynced_s"),
            "sinewd_rss_mib_after_reconnect": (rec.get("sinewd_rss_mib") or {}).get("after_resync"),
            "other_cpu_s_during_rounds": r.get("other_cpu_s_during_rounds"),
            "detail": r,
        })
    print("\n%8s %10s %9s %9s %10s %9s %10s %10s" % ("proxies", "connect s", "p50 ms", "p99 ms", "cpu/apply",
                                                      "RSS MiB", "resync s", "(start) s"))
    for w in rows:
        print("%8d %10s %9s %9s %10s %9s %10s %10s" % (
            w["proxies"], w["connect_and_sync_s"], w["apply_to_all_acked_ms_p50"], w["apply_to_all_acked_ms_p99"],
            w["sinewd_cpu_s_per_apply"], w["sinewd_rss_mib"], w["reconnect_resync_s"],
            w["reconnect_start_to_resynced_s"]))
    return {"sim": args.sim, "register": args.register, "services": args.services, "rounds": args.rounds,
            "replicas": args.replicas, "connect_rate": args.connect_rate or "all at once", "curve": rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxies", type=int, default=1000)
    ap.add_argument("--services", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="100 proxies, 5 rounds")
    ap.add_argument("--replicas", type=int, default=1, help="sinewd replicas on a 3-member etcd (1: no etcd)")
    ap.add_argument("--sim", choices=("c", "python"), default="c",
                    help="simulated proxies: bench/control_sim.c (default) or the asyncio client")
    ap.add_argument("--register", action="store_true",
                    help="each simulated proxy registers a WorkloadEntry (an inbound address of its own)")
    ap.add_argument("--reconnect", action=argparse.BooleanOptionalAction, default=None,
                    help="after the rounds, restart sinewd and time the resync (default: on with --sim c)")
    ap.add_argument("--connect-rate", type=float, default=0,
                    help="--sim c: links started per second at first (default 0: all at once)")
    ap.add_argument("--curve", help="proxy counts, e.g. 100,1000,10000: the scale part per count, fresh "
                                    "sinewd each; writes control-curve.json")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args()
    if args.quick:
        args.proxies, args.rounds = 100, 5
    if args.reconnect is None:
        args.reconnect = args.sim == "c"
    elif args.reconnect and args.sim != "c":
        ap.error("--reconnect needs --sim c (the Python simulated proxies do not reconnect)")
    if args.services < 2:
        ap.error("--services: at least 2")
    counts = [args.proxies]
    if args.curve:
        try:
            counts = [int(x) for x in args.curve.split(",") if x.strip()]
        except ValueError:
            ap.error("--curve: proxy counts separated by commas, e.g. 100,1000,10000")
        if not counts or min(counts) < 1:
            ap.error("--curve: proxy counts separated by commas, e.g. 100,1000,10000")
    # a link is a descriptor on each side: raise the fd limit (sinewd inherits it)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    if max(counts) + 256 > min(hard, 65536):
        print("bench-control: warning: the fd limit is %d; %d proxies need more on sinewd's side" % (
            min(hard, 65536), max(counts)))
    tmp = tempfile.mkdtemp(prefix="sinew-bench-control-")
    print("bench-control: temporary directory (logs, data) %s" % tmp)
    exe = build_sim(tmp) if args.sim == "c" else None
    machine = {"cpus": os.cpu_count(), "kernel": os.uname().release}
    if args.curve:
        result = run_curve(args, exe, tmp, counts)
        result["machine"] = machine
        name = "control-curve" + suffix(args)
    else:
        procs = []
        try:
            ds = start_mesh(args, tmp, procs)
            print("== %d simulated proxies (%s), %d services, %d rounds of a VirtualService change%s"
                  % (args.proxies, args.sim, args.services, args.rounds,
                     ", then a mass reconnect" if args.reconnect else ""))
            result = scale(args, exe, args.proxies, ds, tmp)
            if result is None:
                sys.exit("bench-control: the scale run did not finish; logs in %s" % tmp)
            print("== one real sidecar as the mesh grows with services it does not call")
            result["sidecar_rss"] = sidecar_growth(args, ds[0].api, ds[0].mesh_port, tmp)
            result["machine"] = machine
        finally:
            stop_all(procs)
        name = ("control-quick" if args.quick else "control") + suffix(args)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, name + ".json"), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    print("bench-control: wrote %s" % os.path.join(args.out, name + ".json"))


if __name__ == "__main__":
    main()
