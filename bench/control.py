#!/usr/bin/python3
"""Control-plane scale benchmark (issue 4): `make bench-control`.

N simulated proxies -- light clients speaking the real protocol of
docs/internals/control-protocol.md over HTTP/2 (Debian's python3-h2) --
connect to a real sinewd, register and subscribe to a mix of destinations.
Then, repeatedly, a VirtualService is applied through the API and the time
from `apply` returning to every subscribed proxy having ACKed a push at
least as new as that revision is measured. sinewd's RSS and CPU are read
from /proc. Finally one real sinew-proxy's RSS is measured while the mesh
grows from 10 to 1,000 services it never calls (lazy discovery means it
should not grow).

    python3 bench/control.py [--proxies 1000] [--services 50] [--rounds 10]
    SINEW_BIN=build/release/bin python3 bench/control.py --quick
    python3 bench/control.py --replicas 3    # sinewd replicas on a 3-member etcd

With --replicas N, a three-member etcd cluster is started on loopback (its
data in the run's temporary directory) and N sinewd replicas share it
(--store etcd://...); the simulated proxies are spread over the replicas
and the VirtualService is applied through the first, so the time measured
includes etcd's watch reaching the other replicas.

Everything runs on 127.0.0.1; every load is bounded in count and time.
"""

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
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

    def __init__(self, idx, port, hosts, stats):
        self.idx, self.port, self.hosts, self.stats = idx, port, hosts, stats
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

        send({"type": "hello", "node": {"id": "sim-%d" % self.idx, "service": "sim%d" % self.idx,
                                        "namespace": "default", "labels": {"app": "sim"},
                                        "service_account": "default", "inbound": None,
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
    stats = {"pushes": 0}
    stop = asyncio.Event()
    sims = []
    for i in range(args.proxies):
        # each proxy calls 3 destinations of the mesh; one of them is svc0,
        # the one whose VirtualService the rounds change
        hosts = ["svc0", "svc%d" % (1 + i % (args.services - 1)), "svc%d" % (1 + (i * 7) % (args.services - 1))]
        sims.append(SimProxy(i, mesh_ports[i % len(mesh_ports)], hosts, stats))
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
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    lat.sort()
    return {
        "proxies": len(sims), "services": args.services, "rounds": len(lat), "replicas": len(mesh_ports),
        "connect_and_sync_s": round(connect_s, 2),
        "apply_to_all_acked_ms": {
            "p50": round(statistics.median(lat), 1) if lat else None,
            "p99": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1) if lat else None,
            "max": round(lat[-1], 1) if lat else None,
        },
        "sinewd_rss_mib": {"idle_synced": round(rss_idle / 1024, 1), "after_rounds": round(rss_load / 1024, 1)},
        "sinewd_cpu_s_during_rounds": round(cpu1 - cpu0, 2),
        "pushes_acked": stats["pushes"],
    }


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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--proxies", type=int, default=1000)
    ap.add_argument("--services", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="100 proxies, 5 rounds")
    ap.add_argument("--replicas", type=int, default=1, help="sinewd replicas on a 3-member etcd (1: no etcd)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args()
    if args.quick:
        args.proxies, args.rounds = 100, 5
    # 1,000 connections on each side: raise the fd limit (sinewd inherits it).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    tmp = tempfile.mkdtemp(prefix="sinew-bench-control-")
    procs = []
    store = []
    if args.replicas > 1:
        store = ["--store", start_etcd(tmp, procs)]
    apis, mesh_ports, ds = [], [], []
    for i in range(args.replicas):
        api_port, mesh_port = free_port(), free_port()
        apis.append("http://127.0.0.1:%d" % api_port)
        mesh_ports.append(mesh_port)
        ds.append(subprocess.Popen([os.path.join(BIN, "sinewd"), "--data-dir", os.path.join(tmp, "data%d" % i),
                                    "--api", "127.0.0.1:%d" % api_port, "--mesh", "127.0.0.1:%d" % mesh_port,
                                    "--log-level", "warn", "--mesh-plaintext"] + store,  # simulated proxies: plaintext h2
                                   stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "sinewd%d.log" % i), "w")))
    procs.extend(ds)
    d, api, mesh_port = ds[0], apis[0], mesh_ports[0]
    try:
        for a in apis:
            for _ in range(100):
                try:
                    if http("GET", a + "/ready", timeout=1)[0] == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.1)
        st, body = http("POST", api + "/api/v1/apply?source=mesh.yaml", services_yaml(args.services).encode(), 120)
        if st != 200:
            sys.exit("bench-control: applying the mesh failed: %d %s" % (st, body[:500]))
        print("== %d simulated proxies, %d services, %d rounds of a VirtualService change"
              % (args.proxies, args.services, args.rounds))
        result = asyncio.run(scale_run(args, api, mesh_ports, d.pid))
        print("== one real sidecar as the mesh grows with services it does not call")
        result["sidecar_rss"] = sidecar_growth(args, api, mesh_port, tmp)
        result["machine"] = {"cpus": os.cpu_count(), "kernel": os.uname().release}
        os.makedirs(args.out, exist_ok=True)
        name = ("control-quick" if args.quick else "control") + (
            "-replicas%d" % args.replicas if args.replicas > 1 else "")
        with open(os.path.join(args.out, name + ".json"), "w") as f:
            json.dump(result, f, indent=2)
        print(json.dumps(result, indent=2))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
