#!/usr/bin/python3
"""Pods for real (root): `sinew run` makes network namespaces on a mesh
bridge with iptables capture, `sinew ps`/`logs` report on them and
`sinew down` removes everything, also after SIGKILL.

A small Python program stands in for sinew-proxy in the pods (--proxy-cmd):
it answers /ready on the admin port, the capture probe (by SO_ORIGINAL_DST)
and relays TCP transparently on 15001 (to the original destination, as uid
1337 so its own traffic is not captured) and 15006 (to the app on
127.0.0.1), so capture is exercised in both directions with unmodified
curl and python's http.server.

Network safety: every namespace, bridge and veth is made inside namespaces
this file creates (names carry a per-run suffix); the host's interfaces,
routes and rules are only read, and compared before and after. Whatever a
test leaves is removed by `sinew down`, and by an emergency sweep of this
run's namespaces at exit, on SIGTERM and at the watchdog."""

import atexit
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

SINEW = os.path.join(st.BIN, "sinew")
SUFFIX = secrets.token_hex(3)          # names: sn-mesh-SUFFIX, sn-web-SUFFIX-xxxxxx ...
MESH = "sn-mesh-" + SUFFIX
PROBE = ("10.88.255.254", 15999)

STANDIN = r'''
import argparse, json, os, signal, socket, struct, sys, threading

SO_ORIGINAL_DST = 80
ap = argparse.ArgumentParser()
for f in ("--gate", "--admin", "--outbound", "--inbound", "--app", "--pod", "--capture-probe",
          "--advertise", "--control-plane", "--service", "--namespace", "--labels", "--service-account"):
    ap.add_argument(f)
ap.add_argument("--no-probe", action="store_true")
args, unknown = ap.parse_known_args()


def log(*a):
    print(*a, flush=True)


log("standin argv", json.dumps(sys.argv[1:]), "uid", os.getuid(), "unknown", json.dumps(unknown),
    "token", os.environ.get("SINEW_TOKEN", "")[:4] or "-")


def addr(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


def listen(a):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(addr(a))
    s.listen(64)
    return s


def orig_dst(c):
    port, ip = struct.unpack("!2xH4s8x", c.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16))
    return socket.inet_ntoa(ip), port


def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def relay(c, target):
    try:
        u = socket.create_connection(target, 3)
    except OSError as e:
        log("relay to %s:%d failed: %s" % (target[0], target[1], e))
        c.close()
        return
    t = threading.Thread(target=pipe, args=(u, c), daemon=True)
    t.start()
    pipe(c, u)
    t.join(10)
    c.close()
    u.close()


def admin_loop(s):
    while True:
        c, _ = s.accept()
        try:
            c.settimeout(2)
            c.recv(4096)
            ready = not args.gate or os.path.exists(args.gate)
            body = "ready: config version 7\n" if ready else "not ready: gated\n"
            c.sendall(("HTTP/1.1 %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                       % ("200 OK" if ready else "503 Service Unavailable", len(body), body)).encode())
        except OSError:
            pass
        c.close()


def outbound_loop(s):
    probe = addr(args.capture_probe) if args.capture_probe else None
    while True:
        c, peer = s.accept()
        try:
            dst = orig_dst(c)
        except OSError:
            dst = None
        if dst is not None and dst == probe:
            if args.no_probe:
                log("probe ignored")
            else:
                c.sendall(("sinew-capture-ok %s\n" % args.pod).encode())
            c.close()
            continue
        if dst is None:
            log("outbound without original destination")
            c.close()
            continue
        log("outbound %s:%d" % dst)
        threading.Thread(target=relay, args=(c, dst), daemon=True).start()


def inbound_loop(s):
    while True:
        c, peer = s.accept()
        dst = orig_dst(c)
        log("inbound %s:%d from %s" % (dst[0], dst[1], peer[0]))
        threading.Thread(target=relay, args=(c, ("127.0.0.1", dst[1])), daemon=True).start()


signal.signal(signal.SIGTERM, lambda *a: (log("standin: SIGTERM, exiting"), os._exit(0)))
loops = [(admin_loop, listen(args.admin)), (outbound_loop, listen(args.outbound))]
if args.inbound:
    loops.append((inbound_loop, listen(args.inbound)))
for fn, s in loops:
    threading.Thread(target=fn, args=(s,), daemon=True).start()
log("standin listening")
while True:
    signal.pause()
'''


# ---------------------------------------------------------------------------
# emergency cleanup: whatever this run made, gone even if a test dies

def sh(argv, timeout=20, check=False, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s: %s %s" % (" ".join(argv), p.stdout, p.stderr))
    return p


def netns_list():
    out = sh(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def sweep():
    """Removes this run's namespaces (killing what runs in them) and
    /etc/netns entries. Only names with SUFFIX: never anyone else's."""
    for ns in netns_list():
        if SUFFIX not in ns:
            continue
        for pid in sh(["ip", "netns", "pids", ns]).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        sh(["ip", "netns", "del", ns])
    if os.path.isdir("/etc/netns"):
        for d in os.listdir("/etc/netns"):
            if SUFFIX in d:
                shutil.rmtree(os.path.join("/etc/netns", d), True)
        try:
            os.rmdir("/etc/netns")
        except OSError:
            pass


atexit.register(sweep)
_st_on_term = signal.getsignal(signal.SIGTERM)


def _on_term(signum, frame):
    sweep()
    _st_on_term(signum, frame)


signal.signal(signal.SIGTERM, _on_term)


def _watchdog():
    sys.stderr.write("test_pods: near the watchdog; sweeping this run's namespaces\n")
    st.kill_all()
    sweep()


# ---------------------------------------------------------------------------
# helpers

def host_links():
    return set(line.split(":")[1].strip().split("@")[0]
               for line in sh(["ip", "-o", "link", "show"]).stdout.splitlines())


def host_rules():
    """The host's iptables and nft rule sets, counters and comments out."""
    out = []
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool):
            out += [line for line in sh([tool]).stdout.splitlines() if not line.startswith("#")]
    if shutil.which("nft"):
        out += sh(["nft", "list", "ruleset"]).stdout.splitlines()
    return [line.split(" [")[0] for line in out]


class Env:
    """A data dir, the stand-in, a web root; sinew with SINEW_HOME set."""

    def __init__(self, test, name="d"):
        self.test = test
        self.tmp = st.make_tempdir(test, "sn-pods-")
        os.chmod(self.tmp, 0o755)   # the stand-in runs as uid 1337
        self.home = os.path.join(self.tmp, name)
        self.standin = os.path.join(self.tmp, "standin.py")
        with open(self.standin, "w") as f:
            f.write(STANDIN)
        os.chmod(self.standin, 0o644)
        self.www = os.path.join(self.tmp, "www")
        os.mkdir(self.www)
        with open(os.path.join(self.www, "index.txt"), "w") as f:
            f.write("hello from pod A\n")
        os.chmod(self.www, 0o755)
        os.chmod(os.path.join(self.www, "index.txt"), 0o644)
        test.addCleanup(self.down)

    def env(self):
        e = st.proxy_env()
        e["SINEW_HOME"] = self.home
        e.pop("SINEW_SERVER", None)
        e.pop("SUDO_UID", None)
        return e

    def sinew(self, *args, timeout=60, stdin=None):
        p = subprocess.run([SINEW] + list(args), capture_output=True, text=True, env=self.env(),
                           timeout=timeout, input=stdin)
        for pat in st.SANITIZER_PATTERNS:
            if pat in p.stderr:
                raise AssertionError("sanitizer report from sinew %s:\n%s" % (" ".join(args), p.stderr))
        return p.returncode, p.stdout, p.stderr

    def down(self):
        rc, out, err = self.sinew("down")
        if rc != 0:
            raise AssertionError("sinew down failed: %s %s" % (out, err))

    def proxy_cmd(self, *extra):
        return " ".join(["/usr/bin/python3", self.standin] + list(extra))

    def run_args(self, service, *extra, proxy_extra=(), ready_timeout=10):
        return ["run", "--service", service, "--no-token", "--mesh-netns", MESH,
                "--ready-timeout", str(ready_timeout), "--drain-timeout", "5",
                "--proxy-cmd", self.proxy_cmd(*proxy_extra)] + list(extra)

    def start(self, service, *args, cmd, proxy_extra=(), ready_timeout=10):
        """`sinew run` in the background; its stdout/stderr in files."""
        out = os.path.join(self.tmp, "%s.out" % service)
        err = os.path.join(self.tmp, "%s.err" % service)
        argv = [SINEW] + self.run_args(service, *args, proxy_extra=proxy_extra,
                                      ready_timeout=ready_timeout) + ["--"] + cmd
        fo, fe = open(out, "w"), open(err, "w")
        p = st.spawn(argv, stdout=fo, stderr=fe, env=self.env())
        fo.close()
        fe.close()
        p.out_path, p.err_path = out, err
        self.test.addCleanup(st.stop_process, p)
        return p

    def run_joined(self, server, service, port, cmd, namespace=None):
        """`sinew run` of a real sidecar that joins sinewd at server
        (labels app=SERVICE,version=v1, service account SERVICE), in the
        background, its stdout/stderr in files; the caller stops it."""
        out = os.path.join(self.tmp, service + ".out")
        err = os.path.join(self.tmp, service + ".err")
        argv = [SINEW, "run", "--service", service] + (["--namespace", namespace] if namespace else []) + [
            "--labels", "app=%s,version=v1" % service, "--service-account", service, "--server", server,
            "--ready-timeout", "30", "--drain-timeout", "3"] + (["--port", port] if port else []) + ["--"] + cmd
        with open(out, "w") as fo, open(err, "w") as fe:
            p = st.spawn(argv, stdout=fo, stderr=fe, env=self.env())
        p.out_path, p.err_path = out, err
        return p

    def ps(self):
        rc, out, err = self.sinew("ps", "-o", "json")
        self.test.assertEqual(rc, 0, err)
        return json.loads(out)["pods"]

    def pod(self, service):
        for p in self.ps():
            if p["service"] == service:
                return p
        return None

    def wait_ready(self, service, proc, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            p = self.pod(service)
            if p and p["proxy"]["state"] == "ready" and p["app"]["running"]:
                return p
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("pod of %s not ready: %s\nstderr: %s" % (service, self.pod(service),
                                                                     read(proc.err_path)))

    def pods_dir(self):
        return os.path.join(self.home, "pods")


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def in_pod(pod, code, uid=None, timeout=10):
    """Runs python code inside pod's namespace (as ip netns exec does), as
    root or as uid."""
    pre = "import os\n"
    if uid is not None:
        pre += "os.setgroups([]); os.setgid(%d); os.setuid(%d)\n" % (uid, uid)
    return sh(["ip", "netns", "exec", pod, "/usr/bin/python3", "-c", pre + code], timeout=timeout)


PROBE_CODE = """
import socket
try:
    s = socket.create_connection(("%s", %d), 1)
    s.settimeout(2)
    print("ANSWER", s.recv(200).decode().strip())
except OSError as e:
    print("FAILED", e)
""" % PROBE


def gone(pid):
    """No such process, or a zombie (an orphan waiting for init)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def wait_exit(proc, timeout):
    """The exit status of a background `sinew run`, which must have said
    nothing a sanitizer says."""
    try:
        rc = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError("sinew run still running after %s s" % timeout)
    err = read(proc.err_path)
    for pat in st.SANITIZER_PATTERNS:
        if pat in err:
            raise AssertionError("sanitizer report from sinew run:\n" + err)
    return rc


# ---------------------------------------------------------------------------

class PodsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("pods need root")
        for tool in ("ip", "iptables-restore", "iptables-save"):
            if not shutil.which(tool):
                raise unittest.SkipTest("%s is not installed (scripts/deps.sh)" % tool)
        if not os.access(SINEW, os.X_OK):
            raise unittest.SkipTest("sinew not built at %s" % SINEW)
        cls.links_before = host_links()
        cls.rules_before = host_rules()

    def assert_host_clean(self):
        self.assertEqual([n for n in netns_list() if SUFFIX in n], [])
        self.assertEqual(host_links() - self.links_before, set())
        self.assertFalse([n for n in host_links() if n.startswith(("sn", "snv-", "snbr"))])
        rules = host_rules()
        self.assertEqual(rules, self.rules_before)
        self.assertFalse([r for r in rules if "SINEW" in r])
        self.assertFalse(any(SUFFIX in d for d in os.listdir("/etc/netns"))
                         if os.path.isdir("/etc/netns") else False)

    def test_usage(self):
        e = Env(self)
        for args in (["run", "--", "true"], ["run", "--service", "Bad_Name", "--", "true"],
                     ["run", "--service", "x"], ["run", "--service", "x", "--labels", "a", "--", "true"],
                     ["run", "--service", "x", "--port", "0", "--", "true"],
                     ["run", "--service", "x", "--outbound", "127.0.0.1:1", "--", "true"],
                     ["ps", "-o", "yaml"], ["logs"]):
            rc, out, err = e.sinew(*args)
            self.assertEqual(rc, 2, (args, out, err))
            self.assertTrue(err.strip(), args)
        for c in ("run", "ps", "logs"):
            rc, out, err = e.sinew(c, "--help")
            self.assertEqual(rc, 0)
            self.assertIn("usage: sinew " + c, out)
            self.assertIn("Exit status", out)
        rc, out, err = e.sinew("ps")
        self.assertEqual(rc, 0, err)
        self.assertIn("No pods", out)
        rc, out, err = e.sinew("logs", "nothing-" + SUFFIX)
        self.assertEqual(rc, 1)
        self.assertIn("no pod or service", err)
        rc, out, err = e.sinew("run", "--service", "x", "--no-token", "--mesh-netns", MESH,
                               "--pod-cidr", "10.88.0.1/16", "--", "true")
        self.assertEqual(rc, 1)
        self.assertIn("did you mean 10.88.0.0/16", err)

    def test_capture_ps_logs_and_pod_to_pod(self):
        e = Env(self)
        web, client = "web-" + SUFFIX, "client-" + SUFFIX
        a = e.start(web, "--port", "8000/http", "--labels", "app=web,version=v1",
                    cmd=["/usr/bin/python3", "-m", "http.server", "8000", "--bind", "0.0.0.0",
                         "--directory", e.www])
        pa = e.wait_ready(web, a)
        name, addr = pa["name"], pa["address"]
        self.assertTrue(name.startswith("sn-%s-" % web), name)
        self.assertTrue(addr.startswith("10.88."), addr)
        self.assertEqual(pa["labels"], {"app": "web", "version": "v1"})
        self.assertEqual(pa["ports"], [{"port": 8000, "protocol": "http"}])
        self.assertEqual(pa["proxy"]["config"], "7")
        self.assertIn(name, netns_list())

        # sinew ps: one line per pod
        rc, out, err = e.sinew("ps")
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "SERVICE", "NAMESPACE", "LABELS", "ADDRESS", "PROXY",
                                            "CONFIG", "AGE"])
        self.assertEqual(lines[1].split()[:7], [name, web, "default", "app=web,version=v1", addr, "ready", "7"])

        # (1) the capture probe, as sinew run does it (root in the pod):
        # redirected to the stand-in, which answers by SO_ORIGINAL_DST
        r = in_pod(name, PROBE_CODE)
        self.assertIn("ANSWER sinew-capture-ok %s" % name, r.stdout, r.stderr)
        # the proxy's uid is not captured: the same connection goes nowhere
        r = in_pod(name, PROBE_CODE, uid=1337)
        self.assertIn("FAILED", r.stdout, r.stderr)
        # the rule set as iptables-save shows it
        saved = sh(["ip", "netns", "exec", name, "iptables-save", "-t", "nat"]).stdout
        for line in ("-A OUTPUT -p tcp -j SINEW_OUTPUT", "-A PREROUTING -p tcp -j SINEW_INBOUND",
                     "-A SINEW_OUTPUT -m owner --uid-owner 1337 -j RETURN",
                     "-A SINEW_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
                     "-A SINEW_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006"):
            self.assertIn(line, saved)
        # per-pod name resolution through /etc/netns/POD/hosts
        r = sh(["ip", "netns", "exec", name, "getent", "hosts", name])
        self.assertEqual(r.stdout.split()[:2], [addr, name], r.stderr)
        # the proxy's command line: built by build_proxy_argv, run as 1337
        plog = read(os.path.join(e.pods_dir(), name + ".proxy.log"))
        argv = json.loads(plog.split("standin argv ", 1)[1].split(" uid ", 1)[0])
        want = {"--pod": name, "--capture-probe": "%s:%d" % PROBE, "--admin": "127.0.0.1:15020",
                "--outbound": "127.0.0.1:15001", "--inbound": "0.0.0.0:15006", "--app": "127.0.0.1:8000",
                "--advertise": "%s:8000" % addr, "--service": web, "--namespace": "default",
                "--labels": "app=web,version=v1", "--control-plane": "10.88.0.1:15012"}
        for k, v in want.items():
            self.assertEqual(argv[argv.index(k) + 1], v, (k, argv))
        self.assertIn(" uid 1337 ", plog)

        # (3) pod to pod over the bridge: curl in B, unmodified, to A's
        # address; B's outbound is captured by B's stand-in, which relays
        # as uid 1337; A's inbound is captured by A's stand-in, which
        # relays to http.server on 127.0.0.1:8000
        t0 = time.monotonic()
        rc, out, err = e.sinew(*e.run_args(client), "--", "curl", "-s", "-m", "5",
                               "http://%s:8000/index.txt" % addr)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "hello from pod A\n")
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIn("inbound %s:8000 from 10.88." % addr, read(os.path.join(e.pods_dir(), name + ".proxy.log")))
        rc, out, err = e.sinew("logs", client, "--proxy")
        self.assertEqual(rc, 0, err)
        self.assertIn("outbound %s:8000" % addr, out)
        self.assertIn("standin: SIGTERM", out)   # drained at the end
        self.assertIsNone(e.pod(client))         # and removed

        # SIGTERM to sinew run: app stopped, proxy drained, pod removed
        a.send_signal(signal.SIGTERM)
        rc = wait_exit(a, 20)
        self.assertEqual(rc, 128 + signal.SIGTERM, read(a.err_path))
        self.assertNotIn(name, netns_list())
        self.assertEqual(e.ps(), [])
        self.assertFalse(os.path.exists("/etc/netns/" + name))
        rc, out, err = e.sinew("logs", web)
        self.assertEqual(rc, 0, err)
        self.assertIn("GET /index.txt", out)
        e.down()
        self.assert_host_clean()

    def test_fail_closed_without_rules(self):
        """(2) Rules removed before readiness: the app is never started."""
        e = Env(self)
        svc = "gated-" + SUFFIX
        gate = os.path.join(e.tmp, "gate")
        marker = os.path.join(e.tmp, "app-started")
        p = e.start(svc, proxy_extra=("--gate", gate), ready_timeout=8,
                    cmd=["/bin/sh", "-c", "touch %s; sleep 30" % marker])
        deadline = time.time() + 10
        name = None
        while time.time() < deadline and name is None:
            pod = e.pod(svc)
            if pod and pod["netns"] and "SINEW_OUTPUT" in sh(
                    ["ip", "netns", "exec", pod["netns"], "iptables-save", "-t", "nat"]).stdout \
                    and pod["proxy"]["pid"]:
                name = pod["name"]
            else:
                time.sleep(0.05)
        self.assertIsNotNone(name, read(p.err_path))
        sh(["ip", "netns", "exec", name, "iptables", "-t", "nat", "-F"], check=True)
        open(gate, "w").close()
        rc = wait_exit(p, 15)
        err = read(p.err_path)
        self.assertEqual(rc, 1, err)
        self.assertIn("capture rule missing in %s" % name, err)
        self.assertIn("the app was not started", err)
        self.assertFalse(os.path.exists(marker))
        self.assertNotIn(name, netns_list())
        self.assertIsNone(e.pod(svc))

        # Rules present but nothing answers the probe: not ready at the
        # deadline, fail closed too.
        t0 = time.monotonic()
        rc, out, err = e.sinew(*e.run_args(svc, proxy_extra=("--no-probe",), ready_timeout=2), "--",
                               "/bin/sh", "-c", "touch %s" % marker)
        self.assertEqual(rc, 1, err)
        self.assertIn("is not ready after 2 s: capture probe to %s:%d" % PROBE, err)
        self.assertIn("the app was not started", err)
        self.assertFalse(os.path.exists(marker))
        self.assertLess(time.monotonic() - t0, 8)
        self.assertEqual(e.ps(), [])

    def test_sigkill_then_down(self):
        """(4) SIGKILL sinew run and its app (the proxy is orphaned), plus a
        record torn by a crash; `sinew down` removes all; (5) twice."""
        e = Env(self)
        svc = "victim-" + SUFFIX
        p = e.start(svc, cmd=["sleep", "300"])
        pod = e.wait_ready(svc, p)
        name = pod["name"]
        proxy_pid, app_pid = pod["proxy"]["pid"], pod["app"]["pid"]
        os.kill(p.pid, signal.SIGKILL)
        os.kill(app_pid, signal.SIGKILL)
        p.wait(5)
        time.sleep(0.2)
        self.assertFalse(gone(proxy_pid))
        rc, out, err = e.sinew("ps")
        self.assertIn(name, out)

        # a crash right after `ip netns add`, before the record was renamed
        torn = "sn-torn-%s-abcdef" % SUFFIX
        with open(os.path.join(e.pods_dir(), ".%s.pod.tmp" % torn), "w") as f:
            f.write("name=%s\nstate=crea" % torn)
        sh(["ip", "netns", "add", torn], check=True)
        self.addCleanup(sh, ["ip", "netns", "del", torn])

        rc, out, err = e.sinew("down")
        self.assertEqual(rc, 0, err)
        self.assertIn("pod %s removed" % name, out)
        self.assertIn("pod %s removed" % torn, out)
        self.assertIn("mesh network %s removed" % MESH, out)
        self.assertTrue(gone(proxy_pid), proxy_pid)
        self.assertEqual(os.listdir(e.pods_dir()), [".lock"])
        self.assert_host_clean()
        # (5) again: nothing to do, still fine
        rc, out, err = e.sinew("down")
        self.assertEqual(rc, 0, err)
        self.assertNotIn("removed", out)
        self.assert_host_clean()

    def test_down_stops_a_running_pod(self):
        e = Env(self)
        svc = "live-" + SUFFIX
        p = e.start(svc, cmd=["sleep", "300"])
        name = e.wait_ready(svc, p)["name"]
        rc, out, err = e.sinew("down")
        self.assertEqual(rc, 0, err)
        self.assertIn("pod %s removed" % name, out)
        # its `sinew run` was told to stop: app stopped, proxy drained
        self.assertEqual(wait_exit(p, 15), 128 + signal.SIGTERM, read(p.err_path))
        self.assertEqual(e.ps(), [])
        self.assert_host_clean()

    def test_proxy_death_stops_the_app(self):
        """A pod without its proxy is not meshed: the app is stopped."""
        e = Env(self)
        svc = "orphan-" + SUFFIX
        p = e.start(svc, cmd=["sleep", "300"])
        pod = e.wait_ready(svc, p)
        os.kill(pod["proxy"]["pid"], signal.SIGKILL)
        self.assertEqual(wait_exit(p, 15), 1)
        self.assertIn("the proxy of pod %s exited (signal 9); stopping the app" % pod["name"], read(p.err_path))
        self.assertTrue(gone(pod["app"]["pid"]))
        self.assertEqual(e.ps(), [])
        self.assertNotIn(pod["name"], netns_list())

    def test_no_capture(self):
        e = Env(self)
        svc = "plain-" + SUFFIX
        out_port, in_port, admin_port = st.free_port(), st.free_port(), st.free_port()
        rc, out, err = e.sinew("run", "--service", svc, "--no-token", "--no-capture",
                               "--proxy-cmd", e.proxy_cmd(), "--ready-timeout", "10",
                               "--outbound", "127.0.0.1:%d" % out_port, "--inbound", "127.0.0.1:%d" % in_port,
                               "--admin", "127.0.0.1:%d" % admin_port, "--port", "9080",
                               "--", "/bin/sh", "-c", "echo proxy=$http_proxy pod=$SINEW_POD; exit 7")
        self.assertEqual(rc, 7, err)
        self.assertIn("proxy=http://127.0.0.1:%d pod=sn-%s-" % (out_port, svc), out)
        self.assertEqual(e.ps(), [])
        rc, out, err = e.sinew("logs", svc, "--proxy")
        self.assertIn('"--app", "127.0.0.1:9080"', out)
        self.assertNotIn("--capture-probe", out)

    def test_up_makes_the_mesh(self):
        e = Env(self)
        mesh = "sn-upmesh-" + SUFFIX
        api = "127.0.0.1:%d" % st.free_port()
        rc, out, err = e.sinew("up", "--api", api, "--mesh", "127.0.0.1:%d" % st.free_port(),
                               "--mesh-netns", mesh, "--pod-cidr", "10.77.0.0/24")
        self.assertEqual(rc, 0, err)
        self.assertIn("mesh network %s: bridge snbr0, pods 10.77.0.0/24, gateway 10.77.0.1" % mesh, out)
        addrs = sh(["ip", "-n", mesh, "-o", "addr", "show", "dev", "snbr0"]).stdout
        self.assertIn("10.77.0.1/24", addrs)
        # sinewd could bind inside it; a socket made there sees the bridge
        r = sh(["ip", "netns", "exec", mesh, "/usr/bin/python3", "-c",
                "import socket; s=socket.socket(); s.bind(('10.77.0.1', 0)); print('bound')"])
        self.assertIn("bound", r.stdout, r.stderr)
        # a pod on it, with a join token from this sinewd: in the proxy's
        # environment, never on its command line
        svc = "tok-" + SUFFIX
        rc, out, err = e.sinew("run", "--service", svc, "--server", "http://" + api,
                               "--proxy-cmd", e.proxy_cmd(), "--",
                               "/bin/sh", "-c", "echo ip=$SINEW_POD_IP token=${SINEW_TOKEN:-none}")
        self.assertEqual(rc, 0, err)
        self.assertIn("ip=10.77.0.2 token=none", out)
        rc, log, err = e.sinew("logs", svc, "--proxy")
        self.assertIn('"--control-plane", "10.77.0.1:15012"', log)
        self.assertIn(" token sn1.", log)
        self.assertNotIn("sn1.", log.split(" token ")[0])
        # another data dir cannot take it
        other = Env(self, "other")
        rc, out, err = other.sinew("run", "--service", "x", "--no-token", "--mesh-netns", mesh, "--", "true")
        self.assertEqual(rc, 1)
        self.assertIn("exists but", err)
        rc, out, err = e.sinew("down")
        self.assertEqual(rc, 0, err)
        self.assertIn("mesh network %s removed" % mesh, out)
        self.assertIn("sinewd stopped", out)
        self.assertNotIn(mesh, netns_list())
        self.assert_host_clean()


class RealProxyTest(unittest.TestCase):
    """The whole chain with the real binaries: `sinew up` makes the mesh
    network and sinewd listens on its gateway (--pod-mesh); `sinew run`
    mints a join token; sinew-proxy in the pod (uid 1337) gets its
    certificate over the bridge, syncs, answers the capture probe; only
    then the app starts."""

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0 or not shutil.which("iptables-restore"):
            raise unittest.SkipTest("pods need root and iptables")
        for prog, flag in (("sinewd", "--pod-mesh"), ("sinew-proxy", "--capture-probe")):
            path = os.path.join(st.BIN, prog)
            if not os.access(path, os.X_OK):
                raise unittest.SkipTest("%s not built" % prog)
            h = sh([path, "--help"])
            if flag not in h.stdout + h.stderr:
                raise unittest.SkipTest("%s has no %s yet" % (prog, flag))

    def test_real_proxy_in_a_pod(self):
        e = Env(self)
        mesh = "sn-realmesh-" + SUFFIX
        api = "127.0.0.1:%d" % st.free_port()
        rc, out, err = e.sinew("up", "--api", api, "--mesh", "127.0.0.1:%d" % st.free_port(),
                               "--mesh-netns", mesh, "--pod-cidr", "10.66.0.0/24")
        self.assertEqual(rc, 0, err)
        self.assertIn("pods:  10.66.0.1:15012 (in network namespace %s" % mesh, out)
        svc = "real-" + SUFFIX
        argv = [SINEW, "run", "--service", svc, "--server", "http://" + api, "--port", "8000",
                "--labels", "app=real,version=v1", "--ready-timeout", "20", "--", "sleep", "60"]
        out_path, err_path = os.path.join(e.tmp, "real.out"), os.path.join(e.tmp, "real.err")
        with open(out_path, "w") as fo, open(err_path, "w") as fe:
            p = st.spawn(argv, stdout=fo, stderr=fe, env=e.env())
        p.out_path, p.err_path = out_path, err_path
        self.addCleanup(st.stop_process, p)
        pod = e.wait_ready(svc, p, timeout=25)
        self.assertEqual(pod["address"], "10.66.0.2")
        self.assertRegex(pod["proxy"]["config"] or "", r"^\d+$")
        plog = read(os.path.join(e.pods_dir(), pod["name"] + ".proxy.log"))
        self.assertIn("control plane 10.66.0.1:15012", plog)
        self.assertIn("control: connected to 10.66.0.1:15012 (mutual TLS)", plog)
        self.assertIn("identity: got spiffe://cluster.local/ns/default/sa/default", plog)
        # the real proxy answers the probe the same way
        r = in_pod(pod["name"], PROBE_CODE.replace("10.88.255.254", "10.66.0.254"))
        self.assertIn("ANSWER sinew-capture-ok %s" % pod["name"], r.stdout, r.stderr)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(wait_exit(p, 20), 128 + signal.SIGTERM, read(p.err_path))
        self.assertIn("drain: done", read(os.path.join(e.pods_dir(), pod["name"] + ".proxy.log")))
        rc, out, err = e.sinew("down")
        self.assertEqual(rc, 0, err)
        self.assertIn("mesh network %s removed" % mesh, out)
        self.assertIn("sinewd stopped", out)
        self.assertNotIn(mesh, netns_list())

    def test_plain_up_then_run_ps_logs_down_find_the_mesh(self):
        """Issue 12: as root a plain `sinew up` makes the pod network
        (10.88.0.0/16 in sn-mesh), so `sinew run` works without
        --pod-cidr; and the mesh `sinew up --data-dir DIR` started is the
        one run, ps, logs and down use, with neither --data-dir nor
        SINEW_HOME, until its `sinew down` forgets it."""
        if "sn-mesh" in netns_list():
            self.skipTest("network namespace sn-mesh exists (another mesh): the default name is taken")
        e = Env(self)   # its cleanup: `sinew down` with SINEW_HOME=e.home, whatever happens here
        home = os.path.join(e.tmp, "home")
        os.mkdir(home)
        env = e.env()
        del env["SINEW_HOME"]
        env["HOME"] = home

        def sinew(*args):
            p = subprocess.run([SINEW] + list(args), capture_output=True, text=True, env=env, timeout=60)
            for pat in st.SANITIZER_PATTERNS:
                self.assertNotIn(pat, p.stderr)
            return p.returncode, p.stdout, p.stderr

        def ps():
            rc, out, err = sinew("ps", "-o", "json")
            self.assertEqual(rc, 0, err)
            return json.loads(out)["pods"]

        api = "127.0.0.1:%d" % st.free_port()
        rc, out, err = sinew("up", "--no-pods", "--pod-cidr", "10.88.0.0/16")
        self.assertEqual(rc, 2, out + err)
        rc, out, err = sinew("up", "--data-dir", e.home, "--api", api, "--mesh", "127.0.0.1:%d" % st.free_port())
        self.assertEqual(rc, 0, err)
        self.assertIn("mesh network sn-mesh: bridge snbr0, pods 10.88.0.0/16, gateway 10.88.0.1", out)
        self.assertIn("pods:  10.88.0.1:15012 (in network namespace sn-mesh", out)
        current = os.path.join(home, ".sinew", "current.json")
        with open(current) as f:
            self.assertEqual(json.load(f), {"data_dir": os.path.realpath(e.home)})

        svc = "plain-" + SUFFIX
        argv = [SINEW, "run", "--service", svc, "--server", "http://" + api, "--ready-timeout", "20", "--",
                "sleep", "60"]
        out_path, err_path = os.path.join(e.tmp, "plain.out"), os.path.join(e.tmp, "plain.err")
        with open(out_path, "w") as fo, open(err_path, "w") as fe:
            p = st.spawn(argv, stdout=fo, stderr=fe, env=env)
        p.out_path, p.err_path = out_path, err_path
        self.addCleanup(st.stop_process, p)
        deadline = time.time() + 25
        pod = None
        while time.time() < deadline and p.poll() is None:
            pod = next((x for x in ps() if x["service"] == svc), None)
            if pod and pod["proxy"]["state"] == "ready" and pod["app"]["running"]:
                break
            time.sleep(0.1)
        self.assertTrue(pod and pod["proxy"]["state"] == "ready", "%r\n%s" % (pod, read(err_path)))
        self.assertEqual(pod["address"], "10.88.0.2")
        # The pod is DIR's, not ~/.sinew's
        self.assertTrue(os.path.exists(os.path.join(e.pods_dir(), pod["name"] + ".pod")))
        self.assertFalse(os.path.exists(os.path.join(home, ".sinew", "pods")))
        rc, log, err = sinew("logs", svc, "--proxy")
        self.assertEqual(rc, 0, err)
        self.assertIn("control: connected to 10.88.0.1:15012 (mutual TLS)", log)
        rc, out, err = sinew("up", "--api", api)
        self.assertEqual(rc, 0, err)
        self.assertIn("already running", out)
        self.assertIn(os.path.realpath(e.home), out)

        rc, out, err = sinew("down")
        self.assertEqual(rc, 0, err)
        self.assertIn("pod %s removed" % pod["name"], out)
        self.assertIn("mesh network sn-mesh removed", out)
        self.assertIn("sinewd stopped", out)
        self.assertIn(os.path.realpath(e.home), out)
        wait_exit(p, 20)
        self.assertNotIn("sn-mesh", netns_list())
        self.assertFalse(os.path.exists(current))
        # Forgotten: the default data directory again.
        rc, out, err = sinew("down")
        self.assertEqual(rc, 0, err)
        self.assertIn("data dir %s" % os.path.join(home, ".sinew"), out)

        # --no-pods: sinewd alone, no namespace.
        rc, out, err = sinew("up", "--data-dir", e.home, "--api", api, "--mesh", "127.0.0.1:%d" % st.free_port(),
                             "--no-pods")
        self.assertEqual(rc, 0, err)
        self.assertNotIn("mesh network", out)
        self.assertNotIn("pods:", out)
        self.assertNotIn("sn-mesh", netns_list())
        rc, out, err = sinew("down")
        self.assertEqual(rc, 0, err)
        self.assertIn("sinewd stopped", out)


def main():
    t = threading.Timer(st.WATCHDOG_SECONDS - 10, _watchdog)
    t.daemon = True
    t.start()
    st.main()


if __name__ == "__main__":
    main()
