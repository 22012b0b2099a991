#!/usr/bin/python3
"""HTTP/2 attacks on sinew-proxy's outbound listener (h2c, prior knowledge).

Each attack is made of real frames on a real socket (hyperframe for the
frames, hpack for header blocks; python3-h2's H2Connection for the
well-behaved clients, since it refuses to send most of these), against
the bounds in docs/internals/http2.md:

    rapid reset (CVE-2023-44487)       HEADERS + RST_STREAM, thousands   GOAWAY
    CONTINUATION flood (CVE-2024-27316) one head in 200 CONTINUATIONs    GOAWAY
    HPACK bomb                          a 4 KB dynamic-table entry        stream reset,
                                        referenced 300 times (1.2 MB)     never the app
    SETTINGS flood / too many entries   ACKs queued, 40 entries a frame   GOAWAY / close
    PING flood                          ACKs queued, never read           GOAWAY / close
    empty DATA flood (CVE-2019-9518)    zero-length DATA, no END_STREAM   GOAWAY
    concurrent streams                  110 slow requests at once         the excess refused
                                                                          (after the SETTINGS ACK:
                                                                          expected failure, see there)
    zero-window stall                   INITIAL_WINDOW_SIZE 0, 4 x 4 MB   bounded memory

After every attack the proxy is alive and a new HTTP/2 connection and an
HTTP/1.1 request both get their 200s; one test checks a connection that is
mid-request while another is attacked. The proxy's RSS (VmRSS of its one
process) is measured around each attack and over the whole file, and
printed with the GOAWAY codes seen.

Run: SINEW_BIN=build/asan/bin /usr/bin/python3 tests/integration/test_http2_attacks.py
"""

import collections
import json
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

import h2.config  # noqa: E402  (python3-h2)
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import hpack  # noqa: E402
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame,  # noqa: E402
                              HeadersFrame, PingFrame, RstStreamFrame, SettingsFrame,
                              WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
AUTHORITY = "reviews:9080"
TIMEOUT = 10.0
MIB = 1024 * 1024

# HTTP/2 error codes (RFC 9113 7)
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, CANCEL = 0x0, 0x1, 0x2, 0x8
REFUSED_STREAM, ENHANCE_YOUR_CALM = 0x7, 0xb
CODE_NAMES = {0x0: "NO_ERROR", 0x1: "PROTOCOL_ERROR", 0x2: "INTERNAL_ERROR",
              0x3: "FLOW_CONTROL_ERROR", 0x4: "SETTINGS_TIMEOUT", 0x5: "STREAM_CLOSED",
              0x6: "FRAME_SIZE_ERROR", 0x7: "REFUSED_STREAM", 0x8: "CANCEL",
              0x9: "COMPRESSION_ERROR", 0xa: "CONNECT_ERROR", 0xb: "ENHANCE_YOUR_CALM",
              0xc: "INADEQUATE_SECURITY", 0xd: "HTTP_1_1_REQUIRED"}

# SETTINGS identifiers
SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6


def code_name(code):
    return "%s(0x%x)" % (CODE_NAMES.get(code, "?"), code)


def rss_kib(pid):
    """VmRSS of pid in KiB (from /proc/<pid>/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def is_asan_build():
    """The proxy binary carries AddressSanitizer (its quarantine keeps
    freed memory resident, so RSS bounds are looser)."""
    with open(st.PROXY, "rb") as f:
        return b"__asan_init" in f.read()


# ---------------------------------------------------------------------------
# HPACK by hand, where the order of the dynamic table matters

def hp_int(value, prefix_bits, first):
    """An HPACK integer (RFC 7541 5.1) with the pattern bits `first`."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7f) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hp_str(s):
    b = s.encode() if isinstance(s, str) else s
    return hp_int(len(b), 7, 0x00) + b   # no Huffman


def hp_literal(name, value, index=False):
    """A literal field with a new name: with incremental indexing (it enters
    the dynamic table) or without indexing (it does not)."""
    return (b"\x40" if index else b"\x00") + hp_str(name) + hp_str(value)


def hp_request_pseudo(path):
    """:method GET, :scheme http (static 2, 6), :path and :authority as
    literals without indexing: leaves the dynamic table alone."""
    return (b"\x82\x86" + hp_int(4, 4, 0x00) + hp_str(path) +    # :path, name index 4
            hp_int(1, 4, 0x00) + hp_str(AUTHORITY))              # :authority, name index 1


# ---------------------------------------------------------------------------
# a client that sends any frame and reads every frame

class H2Raw:
    """One HTTP/2 connection from raw frames. Reads frames into what the
    tests look at: GOAWAY (code, last stream), RST_STREAMs, response heads,
    DATA bytes, stream ends, frame counts; and whether the peer closed
    (EOF or reset)."""

    def __init__(self, port, settings=None, ack_settings=True, auto_window=True, rcvbuf=None,
                 timeout=TIMEOUT):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((st.LOOPBACK, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.ack_settings = ack_settings
        self.auto_window = auto_window
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.buf = bytearray()
        self.goaway = None            # (error code, last stream id, debug data)
        self.resets = {}              # stream id -> error code
        self.heads = {}               # stream id -> [(name, value)]
        self.data = collections.Counter()   # stream id -> DATA payload bytes
        self.ended = set()
        self.counts = collections.Counter()
        self.server_settings = {}
        self.settings_acked = False
        self.closed = None            # None, "eof" or "reset"
        self.send_error = None
        self._block = None            # (stream id, bytes, END_STREAM) of a head in CONTINUATIONs
        self.send(PREFACE + SettingsFrame(0, settings=settings or {}).serialize())

    # -- sending

    def send(self, data):
        """sendall; False (and send_error set) once the peer is gone."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError) as e:
            self.send_error = e.__class__.__name__
            return False

    def head_block(self, path, extra=()):
        return self.enc.encode([(":method", "GET"), (":scheme", "http"), (":authority", AUTHORITY),
                                (":path", path)] + list(extra))

    def headers_frame(self, sid, block, end_stream=True, end_headers=True):
        flags = (["END_HEADERS"] if end_headers else []) + (["END_STREAM"] if end_stream else [])
        return HeadersFrame(sid, data=block, flags=flags).serialize()

    def get(self, sid, path, extra=(), end_stream=True):
        """Sends a GET on stream sid."""
        return self.send(self.headers_frame(sid, self.head_block(path, extra), end_stream))

    # -- reading

    def _frame(self, f):
        self.counts[f.__class__.__name__] += 1
        sid = f.stream_id
        if isinstance(f, SettingsFrame):
            if "ACK" in f.flags:
                self.settings_acked = True
            else:
                self.server_settings.update(f.settings)
                if self.ack_settings:
                    self.send(SettingsFrame(0, flags=["ACK"]).serialize())
        elif isinstance(f, GoAwayFrame):
            if self.goaway is None:
                self.goaway = (f.error_code, f.last_stream_id, bytes(f.additional_data))
        elif isinstance(f, RstStreamFrame):
            self.resets[sid] = f.error_code
        elif isinstance(f, HeadersFrame):
            self._block = (sid, bytes(f.data), "END_STREAM" in f.flags)
            if "END_HEADERS" in f.flags:
                self._head_done()
        elif isinstance(f, ContinuationFrame):
            if self._block is not None:
                self._block = (self._block[0], self._block[1] + bytes(f.data), self._block[2])
                if "END_HEADERS" in f.flags:
                    self._head_done()
        elif isinstance(f, DataFrame):
            self.data[sid] += len(f.data)
            if "END_STREAM" in f.flags:
                self.ended.add(sid)
            n = f.flow_controlled_length
            if self.auto_window and n > 0 and self.closed is None:
                self.send(WindowUpdateFrame(0, window_increment=n).serialize() +
                          (WindowUpdateFrame(sid, window_increment=n).serialize()
                           if "END_STREAM" not in f.flags else b""))

    def _head_done(self):
        sid, block, end = self._block
        self._block = None
        fields = self.dec.decode(block)
        if sid not in self.heads:
            self.heads[sid] = fields
        if end:
            self.ended.add(sid)

    def _parse(self):
        while len(self.buf) >= 9:
            f, length = Frame.parse_frame_header(memoryview(bytes(self.buf[:9])))
            if len(self.buf) < 9 + length:
                return
            body = bytes(self.buf[9:9 + length])
            del self.buf[:9 + length]
            f.parse_body(memoryview(body))
            self._frame(f)

    def read_some(self, timeout):
        """Reads what arrives within timeout. False on timeout or close."""
        if self.closed:
            return False
        self.sock.settimeout(max(0.01, timeout))
        try:
            d = self.sock.recv(1 << 18)
        except socket.timeout:
            return False
        except ConnectionResetError:
            self.closed = "reset"
            return False
        finally:
            self.sock.settimeout(TIMEOUT)
        if not d:
            self.closed = "eof"
            return False
        self.buf += d
        self._parse()
        return True

    def run_until(self, pred, timeout=TIMEOUT):
        """Reads until pred() holds, the peer closes, or timeout. Returns
        pred()."""
        deadline = time.time() + timeout
        while not pred() and not self.closed:
            left = deadline - time.time()
            if left <= 0:
                break
            self.read_some(min(left, 0.5))
        return pred()

    def status(self, sid):
        for k, v in self.heads.get(sid, ()):
            if k in (":status", b":status"):
                return int(v)
        return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def describe(self):
        return ("goaway=%r resets=%d (%s) heads=%d closed=%r send_error=%r frames=%s"
                % (self.goaway and (code_name(self.goaway[0]), self.goaway[1], self.goaway[2][:80]),
                   len(self.resets), dict(collections.Counter(self.resets.values())),
                   len(self.heads), self.closed, self.send_error, dict(self.counts)))


class H2Good:
    """A well-behaved client: python3-h2's H2Connection, one GET on a new
    connection, windows given back as the body arrives."""

    def __init__(self, port, path, timeout=TIMEOUT):
        self.sock = socket.create_connection((st.LOOPBACK, port), timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(self.sid, [(":method", "GET"), (":scheme", "http"),
                                          (":authority", AUTHORITY), (":path", path)],
                               end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        self.status = None
        self.headers = []
        self.body = bytearray()
        self.done = False

    def finish(self, timeout=TIMEOUT):
        """Reads until the stream ends. Returns (status, headers, body);
        raises on a reset, GOAWAY, close or timeout."""
        deadline = time.time() + timeout
        try:
            while not self.done:
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError("HTTP/2 response not complete in %.0f s (status %r, %d bytes)"
                                         % (timeout, self.status, len(self.body)))
                self.sock.settimeout(left)
                d = self.sock.recv(65536)
                if not d:
                    raise AssertionError("HTTP/2 connection closed mid-response (status %r, %d bytes)"
                                         % (self.status, len(self.body)))
                for e in self.conn.receive_data(d):
                    if isinstance(e, h2.events.ResponseReceived) and e.stream_id == self.sid:
                        self.headers = e.headers
                        self.status = int(dict(e.headers)[":status"])
                    elif isinstance(e, h2.events.DataReceived) and e.stream_id == self.sid:
                        self.body += e.data
                        self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                    elif isinstance(e, h2.events.StreamEnded) and e.stream_id == self.sid:
                        self.done = True
                    elif isinstance(e, h2.events.StreamReset) and e.stream_id == self.sid:
                        raise AssertionError("stream reset: %s" % code_name(e.error_code))
                    elif isinstance(e, h2.events.ConnectionTerminated):
                        raise AssertionError("GOAWAY %s" % code_name(e.error_code))
                out = self.conn.data_to_send()
                if out:
                    self.sock.sendall(out)
            return self.status, self.headers, bytes(self.body)
        finally:
            self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def h2_get(port, path):
    return H2Good(port, path).finish()


# ---------------------------------------------------------------------------

class Http2Attacks(unittest.TestCase):
    """One backend, one proxy (file mode) for all the attacks: what one
    connection does must not hurt the next."""

    @classmethod
    def setUpClass(cls):
        scope = st.ClassScope(cls)
        cls.backend = st.start_backend(scope, "reviews", "v1")
        cfg = st.registry_yaml({("reviews", "v1"): cls.backend.port})
        cls.proxy = st.start_proxy(scope, cfg)
        cls.port = cls.proxy.outbound_port
        cls.pid = cls.proxy.proc.pid
        cls.goaways = {}              # attack -> what ended the connection
        cls.rss = []                  # (attack, before KiB, after KiB)
        cls.asan = is_asan_build()
        # Warm up (the worker's pools, nghttp2, the upstream pool) so the
        # baseline is not the first allocations.
        for i in range(20):
            status, _, _ = h2_get(cls.port, "/warm?i=%d&size=20000" % i)
            assert status == 200, status
            assert st.request(cls.port, "GET", "/warm1", host=AUTHORITY).status == 200
        cls.rss0 = rss_kib(cls.pid)
        scope.addCleanup(cls._report)

    @classmethod
    def _report(cls):
        rss1 = rss_kib(cls.pid) if cls.proxy.alive() else None
        print("\n--- HTTP/2 attacks: %s build, proxy pid %d ---" % ("ASan" if cls.asan else "non-ASan",
                                                                     cls.pid))
        for name, how in sorted(cls.goaways.items()):
            print("  %-34s %s" % (name, how))
        for name, before, after in cls.rss:
            print("  RSS %-30s %7d KiB -> %7d KiB (%+d KiB)" % (name, before, after, after - before))
        if rss1 is not None:
            print("  RSS overall (baseline -> end)    %7d KiB -> %7d KiB (%+d KiB)"
                  % (cls.rss0, rss1, rss1 - cls.rss0))
        sys.stdout.flush()

    # -- helpers

    def setUp(self):
        self.assertTrue(self.proxy.alive(), "the proxy died before this test")
        self.t0 = time.time()
        self.rss_before = rss_kib(self.pid)

    def note_rss(self, name):
        self.rss.append((name, self.rss_before, rss_kib(self.pid)))

    def new_conn(self, **kw):
        c = H2Raw(self.port, **kw)
        self.addCleanup(c.close)
        return c

    def assert_unaffected(self, what):
        """The proxy lives, and new connections (HTTP/2 and HTTP/1.1) are
        served."""
        self.assertTrue(self.proxy.alive(), "the proxy died after %s:\n%s"
                        % (what, self.proxy.stderr()[-3000:]))
        status, headers, body = h2_get(self.port, "/after-%s" % what)
        self.assertEqual(status, 200, "HTTP/2 after %s: %r" % (what, headers))
        self.assertEqual(json.loads(body)["path"], "/after-%s" % what)
        r = st.request(self.port, "GET", "/after-%s-h1" % what, host=AUTHORITY)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["path"], "/after-%s-h1" % what)
        self.assertLess(time.time() - self.t0, 30, "%s took too long" % what)

    def assert_ended(self, c, what, want_goaway=True, codes=None, timeout=TIMEOUT):
        """The proxy ends the attacking connection within timeout: a GOAWAY
        with a non-zero code (one of codes if given) and then the close;
        without want_goaway, a close alone is enough (its GOAWAY may be
        stuck behind the bytes the attacker never read)."""
        t = time.time()
        c.run_until(lambda: False, timeout)   # to the close
        took = time.time() - t
        self.assertTrue(c.closed, "%s: connection still open after %.0f s: %s"
                        % (what, timeout, c.describe()))
        if c.goaway is not None:
            code = c.goaway[0]
            self.assertNotEqual(code, NO_ERROR, "%s: GOAWAY NO_ERROR: %s" % (what, c.describe()))
            if codes is not None:
                self.assertIn(code, codes, "%s: %s" % (what, c.describe()))
            how = "GOAWAY %s, last stream %d, then %s (%.2f s) %r" % (
                code_name(code), c.goaway[1], c.closed, time.time() - self.t0, c.goaway[2][:60])
        else:
            self.assertFalse(want_goaway, "%s: closed (%s) without a GOAWAY: %s"
                             % (what, c.closed, c.describe()))
            how = "closed (%s) without a GOAWAY read (%.2f s)" % (c.closed, time.time() - self.t0)
        self.goaways[what] = how
        return took

    def backend_paths(self):
        return [r["path"] for r in self.backend.log()]

    # -- the tests

    def test_a_baseline(self):
        """The h2c path works at all (so a failure below is the attack's)."""
        status, headers, body = h2_get(self.port, "/base?size=100000")
        self.assertEqual(status, 200, headers)
        self.assertEqual(len(body), 100000)
        c = self.new_conn()
        self.assertTrue(c.run_until(lambda: c.server_settings and c.settings_acked))
        self.assertEqual(c.server_settings.get(SETTINGS_MAX_CONCURRENT_STREAMS), 100)
        self.assertEqual(c.server_settings.get(SETTINGS_MAX_HEADER_LIST_SIZE), 64 * 1024)
        m = self.proxy.metrics()
        self.assertGreaterEqual(st.metric_sum(m, "sinew_downstream_http2_connections_total"), 20)

    def test_rapid_reset(self):
        """CVE-2023-44487: 5000 streams opened and reset at once
        (HEADERS + RST_STREAM CANCEL), in one write, never waiting."""
        n = 5000
        before = self.backend.requests()
        c = self.new_conn()
        blast = bytearray()
        for i in range(n):
            sid = 2 * i + 1
            blast += c.headers_frame(sid, c.head_block("/rr"), end_stream=True)
            blast += RstStreamFrame(sid, error_code=CANCEL).serialize()
        c.send(bytes(blast))
        took = self.assert_ended(c, "rapid reset (5000 streams)")
        self.assertLess(took, 5.0, "the rapid reset went on for %.1f s" % took)
        # GOAWAY's last stream: it stopped well before the end of the blast.
        self.assertLess(c.goaway[1], 2 * n - 1, c.describe())
        reached = self.backend.requests() - before
        print("\n  rapid reset: %d streams sent, GOAWAY last stream %d, %d reached the backend"
              % (n, c.goaway[1], reached))
        # Most never reach the app (the head and its reset arrive together).
        self.assertLess(reached, n // 4)
        self.note_rss("rapid reset")
        self.assert_unaffected("rapid-reset")

    def test_continuation_flood(self):
        """CVE-2024-27316: HEADERS without END_HEADERS, then 200 small
        CONTINUATIONs (more than the 8 a head may use)."""
        c = self.new_conn()
        block = c.head_block("/cont", [("x-c%03d" % i, "v" * 10) for i in range(60)])
        pieces = 200
        step = max(1, len(block) // pieces)
        frags = [block[i:i + step] for i in range(0, len(block), step)]
        frames = HeadersFrame(1, data=frags[0], flags=["END_STREAM"]).serialize()
        for j, frag in enumerate(frags[1:]):
            last = j == len(frags) - 2
            frames += ContinuationFrame(1, data=frag, flags=["END_HEADERS"] if last else []).serialize()
        self.assertGreater(len(frags), 100)
        c.send(frames)
        self.assert_ended(c, "CONTINUATION flood (%d frames)" % len(frags))
        self.assertNotIn(1, c.heads, "the head was answered: %s" % c.describe())
        self.assertNotIn("/cont", self.backend_paths())
        self.note_rss("CONTINUATION flood")
        self.assert_unaffected("continuation")

    def test_hpack_bomb(self):
        """A 4 KB field enters the dynamic table with an ordinary request;
        the next head references it 300 times (1 byte each): 1.2 MB of
        fields from 300 bytes, far over the 64 KiB announced. The stream is
        reset (or answered 431, or the connection closed); the app never
        sees it; the connection's HPACK state stays usable."""
        c = self.new_conn()
        big = "b" * 4000      # name 6 + value 4000 + 32 <= the 4096 table
        # stream 1: pseudo-headers without indexing, x-bomb with indexing:
        # x-bomb becomes dynamic entry 62.
        c.send(c.headers_frame(1, hp_request_pseudo("/bomb-seed") + hp_literal("x-bomb", big, index=True)))
        self.assertTrue(c.run_until(lambda: 1 in c.ended), c.describe())
        self.assertEqual(c.status(1), 200, c.describe())
        refs = 300
        block = hp_request_pseudo("/bomb") + b"\xbe" * refs     # indexed field 62, 300 times
        self.assertLess(len(block), 16384)
        c.send(c.headers_frame(3, block))
        c.run_until(lambda: 3 in c.resets or 3 in c.heads or c.goaway is not None, TIMEOUT)
        status = c.status(3)
        outcome = ("RST_STREAM %s" % code_name(c.resets[3]) if 3 in c.resets else
                   "status %r" % status if status is not None else
                   "GOAWAY %s" % code_name(c.goaway[0]) if c.goaway else
                   "closed (%s)" % c.closed if c.closed else None)
        self.assertIsNotNone(outcome, "no answer to the bomb in %.0f s: %s" % (TIMEOUT, c.describe()))
        self.assertNotEqual(status, 200, c.describe())
        if status is not None:
            self.assertIn(status, (400, 431), c.describe())
        self.goaways["HPACK bomb (%d x 4 KB)" % refs] = outcome
        # The control, on the same connection when the proxy chose a
        # stream error: 3 references (12 KB, under the bound) reach the app
        # as three 4000-byte x-bomb fields -- entry 62 is what the bomb
        # referenced, and the HPACK state survived the reset.
        if 3 in c.resets and not c.closed and c.goaway is None:
            c.send(c.headers_frame(5, hp_request_pseudo("/bomb-control") + b"\xbe" * 3))
            self.assertTrue(c.run_until(lambda: 5 in c.ended), c.describe())
            self.assertEqual(c.status(5), 200, c.describe())
            rec = [r for r in self.backend.log() if r["path"] == "/bomb-control"]
            self.assertEqual(len(rec), 1)
            self.assertEqual([v for k, v in rec[0]["header_list"] if k.lower() == "x-bomb"], [big] * 3)
        paths = self.backend_paths()
        self.assertIn("/bomb-seed", paths)
        self.assertNotIn("/bomb", paths)
        self.note_rss("HPACK bomb")
        self.assert_unaffected("hpack-bomb")

    def test_settings_flood(self):
        """30000 SETTINGS frames, the ACKs never read (a receive buffer of
        4 KB): the ACKs the proxy must queue are bounded."""
        n = 30000
        c = self.new_conn(rcvbuf=4096)
        one = SettingsFrame(0, settings={SETTINGS_ENABLE_PUSH: 0}).serialize()
        c.send(one * n)
        self.assert_ended(c, "SETTINGS flood (%d, unread)" % n, want_goaway=False,
                          codes=(ENHANCE_YOUR_CALM, PROTOCOL_ERROR, INTERNAL_ERROR))
        self.note_rss("SETTINGS flood")
        self.assert_unaffected("settings-flood")

    def test_settings_too_many_entries(self):
        """One SETTINGS frame with 40 entries (over the 32 accepted)."""
        c = self.new_conn()
        payload = b"".join(bytes([0, SETTINGS_ENABLE_PUSH, 0, 0, 0, 0]) for _ in range(40))
        frame = len(payload).to_bytes(3, "big") + b"\x04\x00" + b"\0\0\0\0" + payload
        c.send(frame)
        self.assert_ended(c, "SETTINGS with 40 entries")
        self.note_rss("SETTINGS 40 entries")
        self.assert_unaffected("settings-entries")

    def test_ping_flood(self):
        """40000 PINGs in one write, the ACKs never read (a 4 KB receive
        buffer)."""
        n = 40000
        c = self.new_conn(rcvbuf=4096)
        c.send(PingFrame(0, opaque_data=b"sinew-pi").serialize() * n)
        self.assert_ended(c, "PING flood (%d, unread)" % n, want_goaway=False,
                          codes=(ENHANCE_YOUR_CALM, PROTOCOL_ERROR, INTERNAL_ERROR))
        self.assertLess(c.counts["PingFrame"], n, c.describe())
        self.note_rss("PING flood")
        self.assert_unaffected("ping-flood")

    def test_empty_data_flood(self):
        """CVE-2019-9518: a request with a body to come, then 1000
        zero-length DATA frames without END_STREAM."""
        c = self.new_conn()
        head = [(":method", "POST"), (":scheme", "http"), (":authority", AUTHORITY),
                (":path", "/empty-data")]
        frames = c.headers_frame(1, c.enc.encode(head), end_stream=False)
        frames += DataFrame(1, data=b"").serialize() * 1000
        c.send(frames)
        self.assert_ended(c, "empty DATA flood (1000)", codes=(ENHANCE_YOUR_CALM, PROTOCOL_ERROR))
        self.note_rss("empty DATA flood")
        self.assert_unaffected("empty-data")

    def _over_the_limit(self, ack, what):
        """110 slow requests at once (the limit is 100), in one write, on a
        connection that did (ack) or did not yet acknowledge the proxy's
        SETTINGS. Returns (client, first 100 stream ids, the 10 over)."""
        c = self.new_conn(ack_settings=ack)
        self.assertTrue(c.run_until(lambda: c.server_settings and (c.settings_acked or not ack)),
                        c.describe())
        limit = c.server_settings.get(SETTINGS_MAX_CONCURRENT_STREAMS)
        self.assertEqual(limit, 100)
        total = limit + 10
        if ack:
            time.sleep(0.1)   # our ACK is in before the heads
        self.backend.reset()
        c.send(b"".join(c.headers_frame(2 * i + 1, c.head_block("/slow?delay_ms=2000"))
                        for i in range(total)))
        sids = [2 * i + 1 for i in range(total)]
        c.run_until(lambda: all(s in c.ended or s in c.resets for s in sids), TIMEOUT)
        first, excess = sids[:limit], sids[limit:]
        self.goaways[what] = "excess: %s; first 100: %d x 200; GOAWAY %s; closed %r; backend saw %d" % (
            dict(collections.Counter(code_name(c.resets[s]) if s in c.resets else "no RST_STREAM"
                                     for s in excess)),
            sum(1 for s in first if c.status(s) == 200 and s in c.ended),
            code_name(c.goaway[0]) if c.goaway else None, c.closed, self.backend.requests())
        return c, first, excess

    def _assert_refused(self, c, first, excess):
        for s in excess:
            self.assertIn(c.resets.get(s), (REFUSED_STREAM, PROTOCOL_ERROR),
                          "stream %d over the limit: %s" % (s, c.describe()))
        ok = [s for s in first if c.status(s) == 200 and s in c.ended]
        self.assertEqual(len(ok), len(first), "the first %d streams: %s" % (len(first), c.describe()))
        self.assertEqual(self.backend.requests(), len(first))
        self.assertIsNone(c.goaway, c.describe())

    def test_concurrent_streams_over_limit_before_ack(self):
        """110 slow requests before the client acknowledged SETTINGS: the
        10 over the announced 100 get RST_STREAM REFUSED_STREAM, the first
        100 their 200s, the connection goes on."""
        c, first, excess = self._over_the_limit(False, "110 streams of 100, SETTINGS not ACKed")
        self._assert_refused(c, first, excess)
        self.note_rss("110 streams (no ACK)")
        self.assert_unaffected("max-streams-noack")

    def test_concurrent_streams_over_limit(self):
        """110 slow requests at once on a connection that acknowledged the
        limit of 100 (as every real client has by then): none over the
        limit is served -- each refused, or the connection ended with a
        GOAWAY saying why -- the backend sees at most 100, and other
        connections are unaffected."""
        c, first, excess = self._over_the_limit(True, "110 streams of 100, SETTINGS ACKed")
        for s in excess:
            self.assertIsNone(c.status(s), "stream %d over the limit answered: %s" % (s, c.describe()))
            if s not in c.resets:
                self.assertIsNotNone(c.goaway, "stream %d neither refused nor GOAWAY: %s"
                                     % (s, c.describe()))
        if c.goaway is not None:
            self.assertIn(c.goaway[0], (PROTOCOL_ERROR, REFUSED_STREAM, ENHANCE_YOUR_CALM), c.describe())
            self.assertLess(c.goaway[1], excess[0], c.describe())
        self.assertLessEqual(self.backend.requests(), len(first))
        self.note_rss("110 streams (ACKed)")
        self.assert_unaffected("max-streams")

    def test_zero_window_stall(self):
        """INITIAL_WINDOW_SIZE 0 and four 4 MB responses, no WINDOW_UPDATE
        ever: the proxy holds a bounded amount per stream (its queue, its
        upstream buffer), not the bodies."""
        streams, size = 4, 4000000
        rss_before = rss_kib(self.pid)
        c = self.new_conn(settings={SETTINGS_INITIAL_WINDOW_SIZE: 0}, auto_window=False)
        for i in range(streams):
            c.get(2 * i + 1, "/stall?size=%d&i=%d" % (size, i))
        sids = [2 * i + 1 for i in range(streams)]
        self.assertTrue(c.run_until(lambda: all(s in c.heads for s in sids)), c.describe())
        self.assertEqual([c.status(s) for s in sids], [200] * streams)
        # Let the backend push all it can into the proxy.
        deadline = time.time() + 2.0
        while time.time() < deadline:
            c.read_some(deadline - time.time())
        rss_stalled = rss_kib(self.pid)
        self.assertEqual(sum(c.data.values()), 0, "DATA past a zero window: %s" % c.describe())
        self.assertIsNone(c.closed, c.describe())
        growth = rss_stalled - rss_before
        print("\n  zero-window stall: RSS %d -> %d KiB (%+d KiB) with %d x %d-byte responses held"
              % (rss_before, rss_stalled, growth, streams, size))
        self.rss.append(("zero-window stall (held)", rss_before, rss_stalled))
        self.assertLess(growth, 4 * 1024, "the proxy buffers the stalled bodies")
        c.close()
        time.sleep(0.3)
        self.assert_unaffected("zero-window")

    def test_bystander_completes_during_attack(self):
        """A connection mid-request (HTTP/2, and HTTP/1.1) while another
        connection floods PINGs and resets streams: both answered in full."""
        path = "/bystander?delay_ms=1500&size=200000"
        t_start = time.time()
        good = H2Good(self.port, path)
        h1 = {}

        def h1_request():
            try:
                h1["r"] = st.request(self.port, "GET", path, host=AUTHORITY)
            except Exception as e:  # noqa: BLE001 - reported below
                h1["r"] = e
        t = threading.Thread(target=h1_request, daemon=True)
        t.start()
        time.sleep(0.1)   # both requests are in flight
        rr = self.new_conn()
        blast = bytearray()
        for i in range(3000):
            sid = 2 * i + 1
            blast += rr.headers_frame(sid, rr.head_block("/rr2"), end_stream=True)
            blast += RstStreamFrame(sid, error_code=CANCEL).serialize()
        pf = self.new_conn(rcvbuf=4096)
        pf.send(PingFrame(0, opaque_data=b"bystandr").serialize() * 40000)
        rr.send(bytes(blast))
        self.assert_ended(rr, "rapid reset beside a bystander")
        self.assert_ended(pf, "PING flood beside a bystander", want_goaway=False)
        t_attacks = time.time() - t_start
        self.assertLess(t_attacks, 1.4, "the attacks outlasted the bystander's request")
        status, headers, body = good.finish()
        self.assertGreaterEqual(time.time() - t_start, 1.5)
        self.assertEqual(status, 200, headers)
        self.assertEqual(len(body), 200000)
        self.assertEqual(body[:16], b"0123456789abcdef")
        t.join(TIMEOUT)
        r = h1.get("r")
        self.assertIsInstance(r, st.Resp, r)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.body), 200000)
        self.note_rss("bystander + 2 attacks")
        self.assert_unaffected("bystander")

    def test_zz_memory_bounded_overall(self):
        """After every attack above (this test runs last), the proxy's RSS
        grew by less than 20 MiB over the baseline (48 MiB for ASan, whose
        quarantine holds freed memory)."""
        rss1 = rss_kib(self.pid)
        growth = rss1 - self.rss0
        bound = (48 if self.asan else 20) * 1024
        print("\n  overall: RSS %d KiB at baseline, %d KiB now (%+d KiB; bound %d KiB)"
              % (self.rss0, rss1, growth, bound))
        self.assertLess(growth, bound)
        self.assert_unaffected("all")


if __name__ == "__main__":
    st.main()
