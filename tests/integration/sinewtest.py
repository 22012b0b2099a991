"""Shared harness for Sinew's integration tests.

Real processes, real sockets: backends are tests/integration/backend.py,
the proxy is $SINEW_BIN/sinew-proxy. Every process started here is in its
own process group and is killed when its test ends (addCleanup), when the
interpreter exits, or when the file's watchdog fires.

Environment (set by ctest): SINEW_BIN, SINEW_SRC, SINEW_SHARED.
"""

import atexit
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("SINEW_SRC", os.path.abspath(os.path.join(HERE, "..", "..")))
SHARED = os.environ.get("SINEW_SHARED", os.path.abspath(os.path.join(SRC, "..", "shared")))
BIN = os.environ.get("SINEW_BIN", os.path.join(SRC, "build", "asan", "bin"))
PROXY = os.path.join(BIN, "sinew-proxy")
BOOKINFO = os.path.join(SHARED, "conformance", "istio-bookinfo", "networking")
PYTHON = "/usr/bin/python3"
BACKEND = os.path.join(HERE, "backend.py")
LOOPBACK = "127.0.0.1"

# ---------------------------------------------------------------------------
# processes

_procs = []
_procs_lock = threading.Lock()


def _track(p):
    with _procs_lock:
        _procs.append(p)


def kill_group(p, sig=signal.SIGKILL):
    """Sends sig to p's process group (p was started with start_new_session)."""
    if p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_process(p, timeout=5.0):
    """SIGKILLs p's group and reaps p."""
    kill_group(p, signal.SIGKILL)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    for f in (p.stdin, p.stdout, p.stderr):
        if f:
            try:
                f.close()
            except OSError:
                pass


def kill_all():
    with _procs_lock:
        procs = list(_procs)
    for p in procs:
        kill_group(p, signal.SIGKILL)
    for p in procs:
        try:
            p.wait(2)
        except Exception:
            pass


atexit.register(kill_all)


def _on_term(signum, frame):
    kill_all()
    remove_tempdirs()
    os._exit(128 + signum)


signal.signal(signal.SIGTERM, _on_term)


def spawn(argv, **kw):
    """Starts argv in a new session (its own process group) and tracks it."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    _track(p)
    return p


# ---------------------------------------------------------------------------
# ports

_given_ports = set()


def free_port():
    """A port on 127.0.0.1 that was free a moment ago and that this process
    has not handed out before. Races with other processes are possible; the
    proxy start retries on EADDRINUSE."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((LOOPBACK, 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _given_ports:
            _given_ports.add(port)
            return port
    raise RuntimeError("no free port")


def closed_port():
    """A port with nothing listening (connect gets ECONNREFUSED)."""
    return free_port()


def wait_for(pred, timeout, what, interval=0.05):
    """Polls pred() until it returns something true and returns that; fails
    naming what, and pred's last value, when timeout passes first."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1f s waiting for %s; last: %r" % (timeout, what, last))


def wait_port(port, timeout=10.0, host=LOOPBACK):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------
# temp dirs

_tmpdirs = []


def make_tempdir(test, prefix="sinew-it-"):
    d = tempfile.mkdtemp(prefix=prefix)
    if os.environ.get("SINEW_KEEP_TMP"):
        print("keeping", d, file=sys.stderr)
    else:
        _tmpdirs.append(d)
        test.addCleanup(shutil.rmtree, d, True)
    return d


def remove_tempdirs():
    """For exits that skip unittest's cleanups (watchdog, SIGTERM)."""
    for d in _tmpdirs:
        shutil.rmtree(d, True)


def write_file(path, text):
    tmp = path + ".tmp%d" % os.getpid()
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)  # atomic: a watcher never sees half a file


# ---------------------------------------------------------------------------
# backend

class Backend:
    """tests/integration/backend.py as a subprocess."""

    def __init__(self, service, version="v1", port=0, log=None, delay_ms=0):
        self.service = service
        self.version = version
        argv = [PYTHON, BACKEND, "--port", str(port), "--service", service,
                "--version", version]
        if log:
            argv += ["--log", log]
        if delay_ms:
            argv += ["--delay-ms", str(delay_ms)]
        self.proc = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()  # "LISTENING <port>"
        m = re.match(r"LISTENING (\d+)", line or "")
        if not m:
            stop_process(self.proc)
            raise RuntimeError("backend %s/%s did not start: %r" % (service, version, line))
        self.port = int(m.group(1))

    def _control(self, path):
        c = http.client.HTTPConnection(LOOPBACK, self.port, timeout=5)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return json.loads(r.read())
        finally:
            c.close()

    def counts(self):
        """{"requests", "connections", "bad"} seen so far."""
        return self._control("/__requests")

    def requests(self):
        return self.counts()["requests"]

    def log(self):
        return self._control("/__log")

    def reset(self):
        self._control("/__reset")

    def stop(self):
        stop_process(self.proc)


def start_backend(test, service, version="v1", **kw):
    b = Backend(service, version, **kw)
    test.addCleanup(b.stop)
    return b


# ---------------------------------------------------------------------------
# config

def service_yaml(name, namespace="default", port=9080, selector=None):
    selector = selector or {"app": name}
    sel = "".join("    %s: %s\n" % kv for kv in selector.items())
    return ("apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: %s\n"
            "spec:\n  selector:\n%s  ports:\n  - name: http\n    port: %d\n---\n"
            % (name, namespace, sel, port))


def workload_yaml(name, port, labels, namespace="default", address=LOOPBACK,
                  service_account=None):
    lab = "".join("    %s: %s\n" % kv for kv in labels.items())
    sa = "  serviceAccount: %s\n" % service_account if service_account else ""
    return ("apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n"
            "  name: %s\n  namespace: %s\nspec:\n  address: %s\n  ports:\n    http: %d\n"
            "  labels:\n%s%s---\n" % (name, namespace, address, port, lab, sa))


def registry_yaml(workloads, services=None):
    """workloads: {(service, version): port}. One Service per service name
    (selector app=<service>), one WorkloadEntry "<service>-<version>" per
    pair (labels app, version). services: extra service names with no
    workloads."""
    out = []
    names = []
    for (svc, _ver) in workloads:
        if svc not in names:
            names.append(svc)
    for svc in list(services or []):
        if svc not in names:
            names.append(svc)
    for svc in names:
        out.append(service_yaml(svc))
    for (svc, ver), port in workloads.items():
        out.append(workload_yaml("%s-%s" % (svc, ver), port, {"app": svc, "version": ver}))
    return "".join(out)


def bookinfo_file(name):
    path = os.path.join(BOOKINFO, name)
    with open(path) as f:
        return f.read()


def join_docs(*texts):
    """Concatenates YAML texts as separate documents."""
    parts = []
    for t in texts:
        t = t.rstrip("\n")
        if t.endswith("---"):
            t = t[:-3].rstrip("\n")
        if t.strip():
            parts.append(t)
    return "\n---\n".join(parts) + "\n"


# ---------------------------------------------------------------------------
# proxy

SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                      "SUMMARY: UndefinedBehaviorSanitizer", "ThreadSanitizer")


def proxy_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


def require_proxy(test=None):
    if not os.access(PROXY, os.X_OK):
        msg = "sinew-proxy not built at %s (set SINEW_BIN)" % PROXY
        if os.environ.get("SINEW_SKIP_MISSING"):
            raise unittest.SkipTest(msg)
        raise AssertionError(msg)


class Proxy:
    """sinew-proxy as a subprocess. stderr goes to a file (self.stderr_path)."""

    def __init__(self, config_path, workdir, outbound=True, inbound=None, app=None,
                 args=(), admin=True):
        self.config_path = config_path
        self.workdir = workdir
        self.outbound_port = free_port() if outbound else None
        self.inbound_port = free_port() if inbound else None
        self.admin_port = free_port() if admin else None
        self.app = app
        self.extra = list(args)
        self.stderr_path = os.path.join(workdir, "proxy-%d.stderr" % id(self))
        self.stdout_path = os.path.join(workdir, "proxy-%d.stdout" % id(self))
        self.proc = None
        self.exit_code = None

    def argv(self):
        a = [PROXY, "--config", self.config_path]
        if self.outbound_port:
            a += ["--outbound", "%s:%d" % (LOOPBACK, self.outbound_port)]
        if self.inbound_port:
            a += ["--inbound", "%s:%d" % (LOOPBACK, self.inbound_port),
                  "--app", self.app]
        if self.admin_port:
            a += ["--admin", "%s:%d" % (LOOPBACK, self.admin_port)]
        return a + self.extra

    def start(self):
        self._err = open(self.stderr_path, "ab")
        self._out = open(self.stdout_path, "ab")
        self.proc = spawn(self.argv(), stdout=self._out, stderr=self._err, env=proxy_env())
        return self

    def stderr(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stdout(self):
        try:
            with open(self.stdout_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def admin_get(self, path, timeout=3.0):
        """(status, headers dict lowercased, body bytes) from the admin port."""
        c = http.client.HTTPConnection(LOOPBACK, self.admin_port, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def wait_ready(self, timeout=10.0):
        """Polls /ready until 200. Returns True, or False if the process
        exited or the time ran out."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.alive():
                return False
            try:
                st, _, _ = self.admin_get("/ready", timeout=1.0)
                if st == 200:
                    return True
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        return False

    def wait_exit(self, timeout):
        try:
            self.exit_code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.exit_code

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def metrics(self):
        st, _, body = self.admin_get("/metrics")
        if st != 200:
            raise AssertionError("/metrics returned %d" % st)
        return parse_metrics(body.decode())

    def stop(self, graceful=True):
        """SIGTERM (then SIGKILL after 10 s); reaps; closes files."""
        if self.proc is None:
            return
        if graceful and self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        stop_process(self.proc)
        if self.exit_code is None:
            self.exit_code = self.proc.returncode
        for f in (self._err, self._out):
            try:
                f.close()
            except OSError:
                pass

    def sanitizer_report(self):
        err = self.stderr()
        for pat in SANITIZER_PATTERNS:
            i = err.find(pat)
            if i >= 0:
                return err[max(0, i - 200): i + 3000]
        return None


def start_proxy(test, config_text=None, config_path=None, workdir=None, ready=True,
                check_sanitizer=True, **kw):
    """Writes config_text to workdir/sinew.yaml (unless config_path is given),
    starts the proxy and, if ready, waits for /ready (10 s), failing the test
    with the proxy's stderr if it does not get there. Retries twice if a
    listen port was taken by someone else in the meantime. The proxy is
    stopped when the test ends, and its stderr is checked for sanitizer
    reports."""
    require_proxy()
    workdir = workdir or make_tempdir(test)
    if config_path is None:
        config_path = os.path.join(workdir, "sinew.yaml")
        write_file(config_path, config_text)
    for attempt in range(3):
        p = Proxy(config_path, workdir, **kw).start()
        test.addCleanup(_finish_proxy, test, p, check_sanitizer)
        if not ready:
            return p
        if p.wait_ready(10.0):
            return p
        err = p.stderr()
        if not p.alive() and re.search(r"address already in use|EADDRINUSE", err, re.I) \
                and attempt < 2:
            continue
        p.stop()
        test.fail("sinew-proxy did not become ready in 10 s (exit %r)\nargv: %s\n"
                  "--- stderr ---\n%s" % (p.exit_code, " ".join(p.argv()), err[-6000:]))
    return p


def _finish_proxy(test, p, check_sanitizer):
    p.stop()
    if check_sanitizer:
        rep = p.sanitizer_report()
        if rep:
            raise AssertionError("sanitizer report in sinew-proxy stderr:\n" + rep)


def run_proxy_once(config_path, timeout=10.0, args=()):
    """Runs the proxy expecting it to exit on its own (bad config). Returns
    (exit status or None if still running at timeout, stderr text, ready)."""
    require_proxy()
    workdir = os.path.dirname(config_path)
    p = Proxy(config_path, workdir, args=args).start()
    ready = False
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not p.alive():
                break
            try:
                st, _, _ = p.admin_get("/ready", timeout=0.5)
                if st == 200:
                    ready = True
                    break
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        code = p.proc.poll()
    finally:
        p.stop()
    return code, p.stderr(), ready


# ---------------------------------------------------------------------------
# HTTP clients

class Resp:
    def __init__(self, status, reason, headers, body, version="HTTP/1.1"):
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name, value)
        self.body = body
        self.version = version

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Resp %d %s %r body=%r>" % (self.status, self.reason, self.headers,
                                             self.body[:300])


def request(port, method="GET", path="/", host=None, headers=None, body=None, timeout=10.0,
            conn=None):
    """One request with http.client. host sets the Host header. Returns Resp.
    If conn is given it is reused (keep-alive) and not closed."""
    own = conn is None
    c = conn or http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        hdrs = dict(headers or {})
        skip_host = False
        if host is not None:
            hdrs["Host"] = host
            skip_host = True
        c.putrequest(method, path, skip_host=skip_host, skip_accept_encoding=True)
        for k, v in hdrs.items():
            c.putheader(k, v)
        if body is not None:
            c.putheader("Content-Length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        data = r.read()
        return Resp(r.status, r.reason, r.getheaders(), data,
                    "HTTP/1.%d" % (r.version - 10) if r.version in (10, 11) else str(r.version))
    finally:
        if own:
            c.close()


def connect(port, timeout=10.0):
    s = socket.create_connection((LOOPBACK, port), timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class RawConn:
    """A client socket with a response reader that understands
    Content-Length, chunked and read-until-close bodies."""

    def __init__(self, port, timeout=10.0):
        self.sock = connect(port, timeout)
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self):
        if self.eof:
            return False
        try:
            d = self.sock.recv(65536)
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def _read_line(self):
        while b"\n" not in self.buf:
            if len(self.buf) > 1 << 20 or not self._fill():
                raise EOFError("connection closed before a complete line (have %r)"
                               % self.buf[:200])
        i = self.buf.index(b"\n") + 1
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def _read_n(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("connection closed with %d of %d body bytes" % (len(self.buf), n))
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def read_response(self, method="GET", skip_1xx=True):
        """Reads one response. Raises EOFError if the peer closes before a
        status line, socket.timeout on timeout."""
        while True:
            status_line = self._read_line()
            m = re.match(rb"(HTTP/\d\.\d) (\d{3})(?: (.*))?\r?\n$", status_line)
            if not m:
                raise ValueError("bad status line %r" % status_line)
            version, status = m.group(1).decode(), int(m.group(2))
            reason = (m.group(3) or b"").decode("latin-1")
            headers = []
            while True:
                line = self._read_line()
                if line in (b"\r\n", b"\n"):
                    break
                k, _, v = line.decode("latin-1").partition(":")
                headers.append((k.strip(), v.strip()))
            r = Resp(status, reason, headers, b"", version)
            if 100 <= status < 200 and skip_1xx:
                continue
            break
        te = (r.header("transfer-encoding") or "").lower()
        cl = r.header("content-length")
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in te:
            parts = []
            while True:
                size = int(self._read_line().split(b";")[0].strip(), 16)
                if size == 0:
                    while self._read_line() not in (b"\r\n", b"\n"):
                        pass
                    break
                parts.append(self._read_n(size))
                self._read_line()
            body = b"".join(parts)
        elif cl is not None:
            body = self._read_n(int(cl))
        else:
            while self._fill():
                pass
            body, self.buf = self.buf, b""
        r.body = body
        return r

    def closed_by_peer(self, timeout=2.0):
        """True if the peer closes (EOF or reset) within timeout with no
        further data; False if the connection stays open."""
        self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        if d:
            self.buf += d
            return False
        return True


def raw_exchange(port, data, timeout=5.0):
    """Sends data on a new connection and reads one response. Returns
    (Resp or None, closed) where closed says whether the peer then closed
    the connection (within 2 s)."""
    c = RawConn(port, timeout)
    try:
        c.send(data)
        try:
            r = c.read_response()
        except EOFError:
            return None, True
        closed = c.closed_by_peer(2.0)
        return r, closed
    finally:
        c.close()


def curl(args, timeout=30):
    """Runs curl with args; returns CompletedProcess (text)."""
    return subprocess.run(["curl", "-sS"] + list(args), capture_output=True, text=True,
                          timeout=timeout, start_new_session=True)


# ---------------------------------------------------------------------------
# Prometheus text format

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


def parse_metrics(text):
    """Parses Prometheus text exposition into [(name, {labels}, float)].
    Raises ValueError on a line that is not valid."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError("metrics line %d not valid: %r" % (n, line))
        labels = {}
        if m.group(3):
            rest = m.group(3)
            pos = 0
            while pos < len(rest):
                lm = _LABEL.match(rest, pos)
                if not lm:
                    raise ValueError("metrics line %d: bad labels %r" % (n, line))
                labels[lm.group(1)] = re.sub(r'\\(.)', lambda x: {"n": "\n"}.get(x.group(1), x.group(1)),
                                             lm.group(2))
                pos = lm.end()
        v = m.group(4)
        value = float(v.replace("+Inf", "inf").replace("-Inf", "-inf").replace("NaN", "nan"))
        out.append((m.group(1), labels, value))
    return out


def metric_select(samples, name, **labels):
    return [(n, l, v) for (n, l, v) in samples
            if n == name and all(l.get(k) == str(val) for k, val in labels.items())]


def metric_sum(samples, name, **labels):
    return sum(v for (_, _, v) in metric_select(samples, name, **labels))


# ---------------------------------------------------------------------------
# bookinfo

def bookinfo_registry(ports):
    """ports: {(service, version): port} for the backends that run."""
    return registry_yaml(ports, services=["productpage", "details", "reviews", "ratings"])


class Bookinfo:
    """Backends for reviews v1/v2/v3 and ratings v1 (and whatever else is
    asked), a config of registry + destination-rule-all.yaml + the given
    files (unmodified, from $SINEW_SHARED), and a proxy with --outbound."""

    DEFAULT = (("reviews", "v1"), ("reviews", "v2"), ("reviews", "v3"), ("ratings", "v1"),
               ("details", "v1"), ("productpage", "v1"))

    def __init__(self, test, files, workloads=DEFAULT, dr="destination-rule-all.yaml",
                 proxy_args=(), ready=True, access_log=False):
        self.test = test
        self.backends = {}
        for svc, ver in workloads:
            self.backends[(svc, ver)] = start_backend(test, svc, ver)
        self.ports = {k: b.port for k, b in self.backends.items()}
        texts = [bookinfo_registry(self.ports)]
        if dr:
            texts.append(bookinfo_file(dr))
        texts += [bookinfo_file(f) for f in files]
        self.config_text = join_docs(*texts)
        self.workdir = make_tempdir(test)
        self.config_path = os.path.join(self.workdir, "sinew.yaml")
        write_file(self.config_path, self.config_text)
        args = list(proxy_args)
        self.access_log = None
        if access_log:
            self.access_log = os.path.join(self.workdir, "access.log")
            args += ["--access-log", self.access_log]
        self.proxy = start_proxy(test, config_path=self.config_path, workdir=self.workdir,
                                 args=args, ready=ready)
        self.port = self.proxy.outbound_port

    def get(self, host, path="/", headers=None, **kw):
        return request(self.port, "GET", path, host=host, headers=headers, **kw)


# ---------------------------------------------------------------------------
# parallel load

def run_parallel(n_threads, total, fn, deadline_s=60.0):
    """Calls fn(thread_index, i) `total` times spread over n_threads threads.
    Returns the list of results (exceptions are returned, not raised)."""
    results = [None] * total
    lock = threading.Lock()
    nxt = [0]
    stop_at = time.time() + deadline_s

    def worker(ti):
        while True:
            with lock:
                i = nxt[0]
                if i >= total:
                    return
                nxt[0] += 1
            if time.time() > stop_at:
                results[i] = TimeoutError("run_parallel deadline")
                continue
            try:
                results[i] = fn(ti, i)
            except Exception as e:  # noqa: BLE001 - reported to the caller
                results[i] = e

    ts = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(n_threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(deadline_s + 10)
    return results


class KeepAliveClient:
    """One http.client connection per thread, reconnecting when the server
    closes it."""

    def __init__(self, port, timeout=10.0):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, host, headers=None, body=None):
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=self.timeout)
            try:
                r = request(self.port, method, path, host=host, headers=headers, body=body,
                            conn=self.conn)
                if (r.header("connection") or "").lower() == "close":
                    self.close()
                return r
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # The server may close an idle keep-alive connection just as
                # we reuse it; a request that was never answered is retried
                # once on a fresh connection (what browsers and curl do).
                self.close()
                if attempt == 1:
                    raise e
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


# ---------------------------------------------------------------------------
# running a test file

WATCHDOG_SECONDS = float(os.environ.get("SINEW_TEST_WATCHDOG", "115"))


def _watchdog():
    sys.stderr.write("watchdog: test file ran past %.0f s; killing everything\n"
                     % WATCHDOG_SECONDS)
    sys.stderr.flush()
    kill_all()
    remove_tempdirs()
    print("0 passed, 1 failed", flush=True)
    os._exit(1)


def main():
    """unittest.main replacement: runs the calling module's tests, prints
    "N passed, N failed[, N skipped]" and exits non-zero on any failure."""
    t = threading.Timer(WATCHDOG_SECONDS, _watchdog)
    t.daemon = True
    t.start()
    mod = sys.modules["__main__"]
    loader = unittest.TestLoader()
    if len(sys.argv) > 1:
        suite = loader.loadTestsFromNames(sys.argv[1:], mod)
    else:
        suite = loader.loadTestsFromModule(mod)
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2)
    res = runner.run(suite)
    t.cancel()
    kill_all()
    # A test with failing subTests counts once.
    def tid(t):
        return getattr(t, "test_case", t).id()
    failed_ids = {tid(t) for t, _ in res.failures + res.errors}
    failed_ids |= {tid(t) for t in res.unexpectedSuccesses}
    skipped_ids = {tid(t) for t, _ in res.skipped} - failed_ids
    failed = len(failed_ids)
    skipped = len(skipped_ids)
    passed = max(0, res.testsRun - failed - skipped - len(res.expectedFailures))
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line, flush=True)
    sys.exit(1 if failed else 0)


class ClassScope:
    """Lets setUpClass use the helpers that take a test: cleanups run when
    the class ends; failures raise."""

    def __init__(self, cls):
        self.cls = cls

    def addCleanup(self, fn, *a, **kw):
        self.cls.addClassCleanup(fn, *a, **kw)

    def fail(self, msg):
        raise AssertionError(msg)


def versions_of(resps):
    """{version: count} from backend JSON bodies (status 200 only)."""
    out = {}
    for r in resps:
        if isinstance(r, Resp) and r.status == 200:
            v = r.json().get("version")
            out[v] = out.get(v, 0) + 1
    return out


def describe_failures(results, limit=5):
    bad = [r for r in results if not (isinstance(r, Resp) and r.status == 200)]
    return "%d failed; first: %r" % (len(bad), bad[:limit])
