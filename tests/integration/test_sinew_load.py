#!/usr/bin/python3
"""`sinew load` against a small origin started here (Python, one thread,
non-blocking, keep-alive): the achieved rate is within 2 % of the target,
a server stall shows in the latency corrected for coordinated omission but
not in the service time's p99, errors are counted by kind, headers and the
body reach the server, --json is valid JSON, and the progress line stays
off when stderr is not a terminal.

Standalone: needs only $SINEW_BIN/sinew and /usr/bin/python3. Every process
runs in its own process group and is killed when its test ends, at exit,
or by the watchdog. Prints "N passed, N failed" last."""

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("SINEW_SRC", os.path.abspath(os.path.join(HERE, "..", "..")))
BIN = os.environ.get("SINEW_BIN", os.path.join(SRC, "build", "asan", "bin"))
SINEW = os.path.join(BIN, "sinew")
PYTHON = "/usr/bin/python3"
WATCHDOG_SECONDS = 100

# The origin: answers every request with 1 KiB (or 503 for /503; for /echo,
# 200 only if it got header x-sinew-test: yes and a body of the announced
# Content-Length == 100). Stalls the whole server (all connections, like a
# GC pause) for STALL_MS when it reaches request number STALL_AT.
ORIGIN = r'''
import selectors, socket, sys, time
stall_at, stall_ms = int(sys.argv[1]), int(sys.argv[2])
sel = selectors.DefaultSelector()
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", 0))
ls.listen(512)
ls.setblocking(False)
sel.register(ls, selectors.EVENT_READ, None)
body = b"a" * 1024
ok = b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nContent-Type: text/plain\r\n\r\n" + body
bad = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
no = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
n = 0
print(ls.getsockname()[1], flush=True)
while True:
    for key, _ in sel.select():
        if key.data is None:
            try:
                c, _ = ls.accept()
            except BlockingIOError:
                continue
            c.setblocking(False)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sel.register(c, selectors.EVENT_READ, bytearray())
            continue
        c, buf = key.fileobj, key.data
        try:
            d = c.recv(65536)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            d = b""
        if not d:
            sel.unregister(c)
            c.close()
            continue
        buf += d
        out = b""
        while True:
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                break
            head = bytes(buf[:i]).decode("latin-1").split("\r\n")
            hdrs = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            clen = int(hdrs.get("content-length", "0"))
            if len(buf) < i + 4 + clen:
                break
            del buf[:i + 4 + clen]
            path = head[0].split(" ")[1]
            n += 1
            if n == stall_at:
                time.sleep(stall_ms / 1000.0)
            if path == "/503":
                out += bad
            elif path == "/echo":
                out += ok if (hdrs.get("x-sinew-test") == "yes" and clen == 100) else no
            else:
                out += ok
        if out:
            try:
                c.sendall(out)
            except OSError:
                sel.unregister(c)
                c.close()
'''

_procs = []


def _kill(p):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        pass


def _kill_all():
    for p in list(_procs):
        _kill(p)


atexit.register(_kill_all)
signal.signal(signal.SIGTERM, lambda s, f: (_kill_all(), os._exit(128 + s)))


def spawn(test, argv, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    _procs.append(p)
    test.addCleanup(_kill, p)
    return p


def start_origin(test, stall_at=0, stall_ms=0):
    p = spawn(test, [PYTHON, "-c", ORIGIN, str(stall_at), str(stall_ms)],
              stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.strip():
        test.fail("origin did not start")
    return int(line)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def load(test, args, timeout=30):
    """Runs sinew load; returns (exit status, stdout, stderr)."""
    p = spawn(test, [SINEW, "load"] + args, stdout=subprocess.PIPE,
              stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(p)
        test.fail("sinew load %s ran past %d s" % (" ".join(args), timeout))
    if "Sanitizer" in err or "runtime error" in err:
        test.fail("sanitizer report from sinew load:\n" + err)
    return p.returncode, out, err


def load_json(test, args, timeout=30):
    rc, out, err = load(test, args + ["--json"], timeout)
    try:
        return rc, json.loads(out)
    except ValueError:
        test.fail("not JSON (exit %d):\n%s\nstderr:\n%s" % (rc, out, err))


def start_nghttpd(test, files):
    """nghttpd (nghttp2-server) serving files {name: bytes} in h2c."""
    import tempfile
    d = tempfile.mkdtemp(prefix="sinew-load-h2-")
    test.addCleanup(lambda: __import__("shutil").rmtree(d, True))
    for name, data in files.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    port = closed_port()
    spawn(test, ["nghttpd", "--no-tls", "-d", d, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return port
        except OSError:
            time.sleep(0.05)
    test.fail("nghttpd did not start")


class SinewLoadH2(unittest.TestCase):
    """--h2 N: HTTP/2 with prior knowledge, N streams in flight per
    connection, against nghttpd."""

    def test_rate_and_streams(self):
        port = start_nghttpd(self, {"k.bin": b"k" * 1024})
        rc, r = load_json(self, ["--h2", "8", "-c", "2", "-q", "1000", "-d", "2s",
                                 "http://127.0.0.1:%d/k.bin" % port])
        self.assertEqual(rc, 0, r)
        self.assertEqual(r["h2_streams"], 8)
        self.assertEqual((r["scheduled"], r["completed"]), (2000, 2000), r)
        self.assertEqual(r["status"], {"200": 2000})
        self.assertEqual(r["connects"], 2, "two connections, many streams each")
        self.assertGreater(r["bytes_received"], 2000 * 1024)   # on the wire: bodies and frames
        self.assertLessEqual(abs(r["achieved_qps"] - 1000.0), 20.0, r["achieved_qps"])

    def test_closed_loop_bodies_and_errors(self):
        port = start_nghttpd(self, {"k.bin": b"k" * 10})
        rc, r = load_json(self, ["--h2", "16", "-c", "1", "-q", "0", "-n", "3000", "-b", "100000",
                                 "http://127.0.0.1:%d/k.bin" % port])
        self.assertEqual(rc, 0, r)
        self.assertEqual(r["completed"], 3000)
        self.assertGreater(r["bytes_sent"], 3000 * 100000)
        rc, r = load_json(self, ["--h2", "4", "-c", "2", "-q", "0", "-n", "100", "http://127.0.0.1:%d/none" % port])
        self.assertEqual(rc, 1)
        self.assertEqual(r["status"], {"404": 100})
        rc, r = load_json(self, ["--h2", "4", "-c", "1", "-q", "100", "-d", "300ms", "--timeout", "1s",
                                 "http://127.0.0.1:%d/" % closed_port()])
        self.assertEqual(rc, 1)
        self.assertGreater(r["errors"]["connect"], 0, r)
        self.assertEqual(r["completed"], 0)


class SinewLoad(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not os.access(SINEW, os.X_OK):
            raise unittest.SkipTest("no %s (build first)" % SINEW)

    def test_rate_within_two_percent(self):
        port = start_origin(self)
        rc, r = load_json(self, ["--qps", "1000", "--connections", "16", "--duration", "3s",
                                 "http://127.0.0.1:%d/" % port])
        self.assertEqual(rc, 0, r)
        self.assertEqual(r["errors_total"], 0, r["errors"])
        self.assertEqual(r["scheduled"], 3000)
        self.assertEqual(r["completed"], 3000)
        self.assertEqual(r["status"], {"200": 3000})
        self.assertLessEqual(abs(r["achieved_qps"] - 1000.0), 20.0,
                             "achieved %.1f req/s, target 1000" % r["achieved_qps"])
        self.assertEqual(r["bytes_received"], 3000 * (1024 + 67))
        for key in ("latency_us", "service_us"):
            h = r[key]
            self.assertEqual(h["count"], 3000)
            self.assertTrue(0 < h["min"] <= h["p50"] <= h["p90"] <= h["p99"] <= h["p99.9"] <= h["max"], h)
        # Corrected latency includes the wait before the send: never less.
        self.assertGreaterEqual(r["latency_us"]["p50"], r["service_us"]["p50"])

    def test_stall_shows_in_corrected_latency(self):
        # 1000 req/s over 16 connections for 2 s; the server stops for 100 ms
        # at its 500th request. During the stall 16 requests are in flight
        # (their service time shows it: max) and ~85 more come due and wait
        # for a connection; only the corrected latency counts that wait, so
        # its p99 (the 20 worst of 2000) shows the stall and the service
        # time's p99 does not.
        port = start_origin(self, stall_at=500, stall_ms=100)
        rc, r = load_json(self, ["-q", "1000", "-c", "16", "-d", "2s", "--timeout", "2s",
                                 "http://127.0.0.1:%d/" % port])
        self.assertEqual(rc, 0, r)
        self.assertEqual(r["completed"], 2000, r)
        lat, svc = r["latency_us"], r["service_us"]
        self.assertGreaterEqual(svc["max"], 95000, "the in-flight requests saw the stall: %r" % svc)
        self.assertGreaterEqual(lat["max"], 95000, lat)
        self.assertGreaterEqual(lat["p99"], 50000, "corrected p99 must show the 100 ms stall: %r" % lat)
        # (bounds with room for a loaded machine's own scheduling noise: a
        # clean-clone run once saw 34 ms at the service time's p99)
        self.assertLess(svc["p99"], 50000, "service-time p99 hides most of the stall: %r" % svc)
        self.assertLess(svc["p99"] * 2, lat["p99"], (lat, svc))
        self.assertGreaterEqual(r["max_backlog"], 50, "requests waited for a connection: %r" % r)

    def test_errors_by_kind(self):
        # Nothing listens: connect errors, and nothing completes.
        rc, r = load_json(self, ["-q", "100", "-c", "2", "-d", "500ms", "--timeout", "1s",
                                 "http://127.0.0.1:%d/" % closed_port()])
        self.assertEqual(rc, 1)
        self.assertGreater(r["errors"]["connect"], 0, r)
        self.assertEqual(r["completed"], 0)
        # Status codes are tallied, and 5xx counts as an error of kind status.
        port = start_origin(self)
        rc, r = load_json(self, ["-q", "200", "-c", "4", "-n", "100", "http://127.0.0.1:%d/503" % port])
        self.assertEqual(rc, 1)
        self.assertEqual(r["status"], {"503": 100}, r)
        self.assertEqual(r["errors"]["status"], 100)
        self.assertEqual(r["errors_total"], 100)
        # A server that stalls past the timeout: timeouts (and the rest of
        # the run goes on over fresh connections).
        port = start_origin(self, stall_at=20, stall_ms=600)
        rc, r = load_json(self, ["-q", "100", "-c", "2", "-n", "60", "--timeout", "200ms",
                                 "http://127.0.0.1:%d/" % port])
        self.assertEqual(rc, 1)
        self.assertGreater(r["errors"]["timeout"], 0, r)

    def test_headers_body_and_method(self):
        port = start_origin(self)
        rc, r = load_json(self, ["-q", "500", "-c", "4", "-n", "200", "-H", "X-Sinew-Test: yes",
                                 "--body-size", "100", "http://127.0.0.1:%d/echo" % port])
        self.assertEqual(rc, 0, r)
        self.assertEqual(r["method"], "POST")
        self.assertEqual(r["status"], {"200": 200}, "the server saw the header and the body")
        rc, r = load_json(self, ["-q", "500", "-c", "4", "-n", "20", "-m", "PUT", "-b", "99",
                                 "-H", "x-sinew-test: yes", "http://127.0.0.1:%d/echo" % port])
        self.assertEqual(r["method"], "PUT")
        self.assertEqual(r["status"], {"400": 20}, "99 bytes is not the 100 the server wants")

    def test_text_report_and_usage(self):
        port = start_origin(self)
        rc, out, err = load(self, ["-q", "200", "-c", "2", "-d", "1s", "http://127.0.0.1:%d/" % port])
        self.assertEqual(rc, 0, out + err)
        for want in ("rate", "req/s achieved", "200: 200", "p50", "p90", "p99", "p99.9", "max",
                     "coordinated omission", "service time"):
            self.assertIn(want, out)
        self.assertNotIn("\r", err, "no progress line when stderr is not a terminal")
        rc, out, _ = load(self, ["--help"])
        self.assertEqual(rc, 0)
        self.assertIn("--qps", out)
        for bad in (["--qps", "x", "http://127.0.0.1:1/"], ["-d", "3 parsecs", "http://127.0.0.1:1/"],
                    ["-H", "no colon", "http://127.0.0.1:1/"], ["https://127.0.0.1:1/"], []):
            rc, _, err = load(self, bad)
            self.assertEqual(rc, 2, "%r must be a usage error: %s" % (bad, err))
        p = subprocess.run([SINEW, "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        self.assertIn("load", p.stdout)
        p = subprocess.run([SINEW, "version"], capture_output=True, text=True, timeout=10)
        self.assertTrue(p.stdout.startswith("sinew "), p.stdout)
        p = subprocess.run([SINEW, "nope"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 2)


def main():
    def watchdog():
        sys.stderr.write("watchdog: ran past %d s\n" % WATCHDOG_SECONDS)
        _kill_all()
        print("0 passed, 1 failed", flush=True)
        os._exit(1)

    t = threading.Timer(WATCHDOG_SECONDS, watchdog)
    t.daemon = True
    t.start()
    loader = unittest.TestLoader()
    mod = sys.modules["__main__"]
    suite = loader.loadTestsFromNames(sys.argv[1:], mod) if len(sys.argv) > 1 else loader.loadTestsFromModule(mod)
    res = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
    t.cancel()
    _kill_all()
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    skipped = len(res.skipped)
    passed = res.testsRun - failed - skipped - len(res.expectedFailures)
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line, flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
