#!/usr/bin/python3
"""sinewd keeps recent traces in memory (docs/api.md "Traces"), against a
real sinewd: spans posted as OTLP/HTTP JSON (POST /v1/traces) or sent as a
`spans` message on a proxy's control link land in one store; GET
/api/v1/traces lists them newest first with their root, services and
duration, filtered by service, error and duration; GET
/api/v1/traces/{id} gives the trace back as OTLP JSON. Spans of one trace
posted apart are merged; the store's bounds evict the oldest traces and
drop spans past 1,000 a trace (answered as OTLP partial success);
malformed input is a 400 naming the field, protobuf a 415. A bad spans
message on the control link is dropped and counted, and the link stays."""

import http.client
import json
import os
import socket
import struct
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh  # noqa: E402

T1 = "5b8efff798038103d269b633813fc60c"
BASE_NS = 1544712660000000000


def tid(i):
    """A trace id from a number (never all zero)."""
    return "%032x" % (0xA0000000000000000000000000000000 + i)


def sid(i):
    return "%016x" % (0xB000000000000000 + i)


def sval(s):
    return {"stringValue": s}


def span(trace, span_id, name, start_ms, dur_ms, parent=None, kind=2, attrs=None, status=None):
    s = {"traceId": trace, "spanId": span_id, "name": name, "kind": kind,
         "startTimeUnixNano": str(BASE_NS + start_ms * 1000000),
         "endTimeUnixNano": str(BASE_NS + (start_ms + dur_ms) * 1000000),
         "attributes": attrs or []}
    if parent is not None:
        s["parentSpanId"] = parent
    if status is not None:
        s["status"] = status
    return s


def rs(service, spans, extra_attrs=()):
    """One ResourceSpans: a resource named service, one scope."""
    attrs = [{"key": "service.name", "value": sval(service)}] + list(extra_attrs)
    return {"resource": {"attributes": attrs},
            "scopeSpans": [{"scope": {"name": "sinew-proxy", "version": "0.1.0"}, "spans": spans}]}


def req(*resource_spans):
    return {"resourceSpans": list(resource_spans)}


def bookinfo_trace(trace, t0=0, error=False):
    """productpage's inbound server span, its client span to reviews, and
    reviews' server span, as two proxies would export them."""
    status = {"code": 2, "message": "upstream reset"} if error else None
    return req(
        rs("productpage.default", [
            span(trace, sid(1), "productpage.default.svc.cluster.local:9080/*", t0, 50),
            span(trace, sid(2), "reviews.default.svc.cluster.local:9080/*", t0 + 10, 30, parent=sid(1), kind=3,
                 attrs=[{"key": "http.method", "value": sval("GET")},
                        {"key": "http.status_code", "value": {"intValue": "200"}}]),
        ]),
        rs("reviews.default", [
            span(trace, sid(3), "reviews.default.svc.cluster.local:9080/*", t0 + 12, 25, parent=sid(2),
                 status=status),
        ]))


class Traces(Mesh):
    def post(self, body, ctype="application/json", headers=None, path="/v1/traces"):
        data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
        h = {"content-type": ctype} if ctype else {}
        h.update(headers or {})
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            c.request("POST", path, body=data, headers=h)
            r = c.getresponse()
            out = r.read()
            return r.status, (json.loads(out) if out.strip() else None)
        finally:
            c.close()

    def ok(self, body):
        status, ans = self.post(body)
        if status != 200:
            raise AssertionError("POST /v1/traces: %s %s" % (status, ans))
        return ans

    def traces(self, **q):
        status, body = self.call("GET", "/api/v1/traces" + ("?" + urllib.parse.urlencode(q) if q else ""))
        if status != 200:
            raise AssertionError("GET /api/v1/traces: %s %s" % (status, body))
        return body

    def trace(self, trace_id):
        return self.call("GET", "/api/v1/traces/" + trace_id)


def spans_of(detail):
    """(service, span) for every span of a GET /api/v1/traces/{id}, in order."""
    out = []
    for r in detail["resourceSpans"]:
        svc = [a["value"]["stringValue"] for a in r["resource"]["attributes"] if a["key"] == "service.name"]
        for ss in r["scopeSpans"]:
            for s in ss["spans"]:
                out.append((svc[0] if svc else None, s))
    return out


class TracesApi(unittest.TestCase):
    def test_post_list_and_fetch(self):
        d = Traces(self)
        self.assertEqual(d.ok(bookinfo_trace(T1.upper())), {})
        body = d.traces()
        self.assertEqual((body["stored"], body["spans"], body["droppedSpans"]), (1, 3, 0), body)
        t = body["traces"][0]
        self.assertEqual(t["traceId"], T1)   # stored lower case
        self.assertEqual(t["rootService"], "productpage.default")
        self.assertEqual(t["rootName"], "productpage.default.svc.cluster.local:9080/*")
        self.assertEqual(t["startTimeUnixNano"], str(BASE_NS))
        self.assertEqual(t["durationMs"], 50.0)
        self.assertEqual(t["spanCount"], 3)
        self.assertEqual(t["services"], ["productpage.default", "reviews.default"])
        self.assertIs(t["error"], False)

        status, detail = d.trace(T1)
        self.assertEqual(status, 200, detail)
        self.assertEqual(detail["traceId"], T1)
        got = [(svc, s["spanId"], s.get("parentSpanId")) for svc, s in spans_of(detail)]
        self.assertEqual(got, [("productpage.default", sid(1), None), ("productpage.default", sid(2), sid(1)),
                               ("reviews.default", sid(3), sid(2))])
        client = spans_of(detail)[1][1]
        self.assertEqual(client["kind"], 3)
        self.assertEqual(client["attributes"][1], {"key": "http.status_code", "value": {"intValue": "200"}})
        self.assertEqual(detail["resourceSpans"][0]["scopeSpans"][0]["scope"],
                         {"name": "sinew-proxy", "version": "0.1.0"})
        # the answer is itself an ExportTraceServiceRequest: posting it again changes nothing
        self.assertEqual(d.ok(detail), {})
        self.assertEqual(d.traces()["traces"][0]["spanCount"], 3)

    def test_merge_two_posts_and_root(self):
        d = Traces(self)
        full = bookinfo_trace(T1)
        # reviews' proxy exports first: its span's parent is not here yet,
        # so it is the root for now
        d.ok(req(full["resourceSpans"][1]))
        t = d.traces()["traces"][0]
        self.assertEqual((t["rootService"], t["spanCount"]), ("reviews.default", 1))
        d.ok(req(full["resourceSpans"][0]))
        t = d.traces()["traces"][0]
        self.assertEqual((t["rootService"], t["spanCount"], t["durationMs"]), ("productpage.default", 3, 50.0))
        self.assertEqual(d.traces()["stored"], 1)
        # an exporter's retry: the same spans again are not stored twice
        d.ok(full)
        body = d.traces()
        self.assertEqual((body["traces"][0]["spanCount"], body["duplicateSpans"]), (3, 3))

    def test_root_detection(self):
        d = Traces(self)
        # no span without a parent: the root is the earliest span whose
        # parent is absent from the trace (the caller's proxy had not
        # exported yet); a later orphan does not win
        d.ok(req(rs("a", [span(T1, sid(5), "late-orphan", 20, 5, parent=sid(99)),
                         span(T1, sid(6), "early-orphan", 10, 30, parent=sid(98)),
                         span(T1, sid(7), "child", 11, 2, parent=sid(6))])))
        t = d.traces()["traces"][0]
        self.assertEqual(t["rootName"], "early-orphan")
        # an empty parentSpanId (or none) is a root, as OTLP says
        t2 = tid(2)
        s = span(t2, sid(1), "root", 0, 1)
        s["parentSpanId"] = ""
        d.ok(req(rs("b", [span(t2, sid(2), "kid", 0, 1, parent=sid(1)), s])))
        status, detail = d.trace(t2)
        self.assertEqual(status, 200)
        self.assertEqual([x["name"] for _, x in spans_of(detail)], ["kid", "root"])   # same start: arrival order
        self.assertEqual(d.traces(service="b")["traces"][0]["rootName"], "root")

    def test_filters_and_order(self):
        d = Traces(self)
        d.ok(bookinfo_trace(tid(1), t0=0))
        d.ok(bookinfo_trace(tid(2), t0=1000, error=True))
        d.ok(req(rs("ratings.default", [span(tid(3), sid(1), "ratings", 500, 400)])))
        d.ok(req(rs("details.default", [span(tid(4), sid(1), "details", 2000, 1,
                                             attrs=[{"key": "error", "value": {"boolValue": True}}])])))
        ids = [t["traceId"] for t in d.traces()["traces"]]
        self.assertEqual(ids, [tid(4), tid(2), tid(3), tid(1)])   # newest start first
        self.assertEqual([t["traceId"] for t in d.traces(service="reviews.default")["traces"]], [tid(2), tid(1)])
        self.assertEqual(d.traces(service="nope")["traces"], [])
        self.assertEqual([t["traceId"] for t in d.traces(error="true")["traces"]], [tid(4), tid(2)])
        self.assertEqual([t["traceId"] for t in d.traces(error="false")["traces"]], [tid(3), tid(1)])
        self.assertEqual([t["traceId"] for t in d.traces(minDurationMs="100")["traces"]], [tid(3)])
        self.assertEqual([t["traceId"] for t in d.traces(minDurationMs="0.5")["traces"]],
                         [tid(4), tid(2), tid(3), tid(1)])
        body = d.traces(limit="2")
        self.assertEqual(([t["traceId"] for t in body["traces"]], body["matched"]), ([tid(4), tid(2)], 4))
        self.assertIs(d.traces(service="details.default")["traces"][0]["error"], True)
        for q, word in (({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"limit": "x"}, "limit"),
                        ({"minDurationMs": "-1"}, "minDurationMs"), ({"error": "maybe"}, "error")):
            status, body = d.call("GET", "/api/v1/traces?" + urllib.parse.urlencode(q))
            self.assertEqual(status, 400, (q, body))
            self.assertIn(word, body["error"])

    def test_malformed_names_the_field(self):
        d = Traces(self)
        good = span(T1, sid(1), "ok", 0, 1)
        cases = [
            (dict(good, traceId="xyz"), "resourceSpans[1].scopeSpans[0].spans[1].traceId: want 32 hex digits"),
            (dict(good, traceId="0" * 32), "resourceSpans[1].scopeSpans[0].spans[1].traceId: an all-zero"),
            (dict(good, spanId="0" * 16), "resourceSpans[1].scopeSpans[0].spans[1].spanId: an all-zero"),
            (dict(good, spanId=sid(2) + "00"), "spans[1].spanId: want 16 hex digits"),
            (dict(good, parentSpanId="nothex!!nothex!!"), "spans[1].parentSpanId: want 16 hex digits"),
            (dict(good, kind="SPAN_KIND_SIDEWAYS"), "spans[1].kind: want 0 to 5"),
            (dict(good, startTimeUnixNano="soon"), "spans[1].startTimeUnixNano: want nanoseconds"),
            (dict(good, endTimeUnixNano=str(BASE_NS - 1)), "spans[1].endTimeUnixNano: ends before"),
            (dict(good, status={"code": 7}), "spans[1].status.code: want 0, 1, 2"),
            (dict(good, attributes=[{"key": "n", "value": {"intValue": "12x"}}]),
             "spans[1].attributes[0].value.intValue: want a 64-bit integer"),
            (dict(good, attributes=[{"key": "b", "value": {"boolValue": "yes"}}]),
             "spans[1].attributes[0].value.boolValue: want true or false"),
            (dict(good, attributes=[{"value": sval("x")}]), "spans[1].attributes[0].key: want a string"),
            (dict(good, attributes={"k": "v"}), "spans[1].attributes: want an array"),
        ]
        for bad, want in cases:
            with self.subTest(want=want):
                body = req(rs("a", [span(tid(9), sid(9), "fine", 0, 1)]),
                           rs("b", [span(tid(8), sid(8), "fine", 0, 1), bad]))
                status, ans = d.post(body)
                self.assertEqual(status, 400, ans)
                self.assertIn(want, ans["error"])
                self.assertEqual((ans["status"], ans["code"], ans["message"]), (400, 3, ans["error"]))
        # a malformed batch stores nothing, not even its good spans
        body = d.traces()
        self.assertEqual((body["stored"], body["rejectedBatches"]), (0, len(cases)))
        for raw, want in ((b"{\"resourceSpans\": [", "not JSON"), (b"[1,2]", "want a JSON object"),
                          (b"", "empty"), (b"\xff\xfe", "not UTF-8"),
                          (json.dumps({"resourceSpans": {}}).encode(), "resourceSpans: want an array"),
                          (json.dumps({"resourceSpans": [{"resource": [], "scopeSpans": []}]}).encode(),
                           "resourceSpans[0].resource: want an object")):
            with self.subTest(raw=raw):
                status, ans = d.post(raw)
                self.assertEqual(status, 400, ans)
                self.assertIn(want, ans["error"])
        # what OTLP/JSON allows from other exporters is taken
        other = {"traceId": T1.upper(), "spanId": sid(1).upper(), "parentSpanId": "", "name": "n",
                 "kind": "SPAN_KIND_CLIENT", "startTimeUnixNano": BASE_NS, "endTimeUnixNano": BASE_NS + 10 ** 6,
                 "attributes": [{"key": "i", "value": {"intValue": 7}}, {"key": "f", "value": {"doubleValue": 0.25}},
                                {"key": "arr", "value": {"arrayValue": {"values": [sval("x")]}}},
                                {"key": "u", "value": {}}],
                 "status": {"code": "STATUS_CODE_ERROR"}, "events": [{"name": "e"}], "unknownField": 1}
        self.assertEqual(d.ok({"resourceSpans": [{"scopeSpans": [{"spans": [other]}]}], "extra": True}), {})
        t = d.traces()["traces"][0]
        self.assertEqual((t["rootService"], t["error"]), ("unknown_service", True))
        s = spans_of(d.trace(T1)[1])[0][1]
        self.assertEqual((s["kind"], s["status"]["code"], s["droppedAttributesCount"], s["droppedEventsCount"]),
                         (3, 2, 1, 1))
        self.assertEqual([a["value"] for a in s["attributes"]],
                         [{"intValue": "7"}, {"doubleValue": 0.25}, {}])

    def test_content_types_and_methods(self):
        d = Traces(self)
        status, ans = d.post(b"\x0a\x00", ctype="application/x-protobuf")
        self.assertEqual(status, 415, ans)
        self.assertIn("JSON", ans["error"])
        self.assertIn("protobuf", ans["error"])
        status, ans = d.post(bookinfo_trace(T1), ctype="text/plain")
        self.assertEqual(status, 415, ans)
        self.assertIn("text/plain", ans["error"])
        status, ans = d.post(bookinfo_trace(T1), headers={"content-encoding": "gzip"})
        self.assertEqual(status, 415, ans)
        self.assertIn("gzip", ans["error"])
        self.assertEqual(d.post(bookinfo_trace(T1), ctype="application/json; charset=utf-8")[0], 200)
        self.assertEqual(d.call("GET", "/v1/traces")[0], 405)
        self.assertEqual(d.call("DELETE", "/api/v1/traces")[0], 405)
        self.assertEqual(d.call("POST", "/api/v1/traces/" + T1)[0], 405)

    def test_unknown_and_bad_ids(self):
        d = Traces(self)
        d.ok(bookinfo_trace(T1))
        status, body = d.trace(tid(77))
        self.assertEqual(status, 404, body)
        self.assertIn(tid(77), body["error"])
        self.assertIn("GET /api/v1/traces", body["error"])
        for bad in ("xyz", T1 + "0", "0" * 32, T1[:-1] + "g"):
            status, body = d.trace(bad)
            self.assertEqual(status, 400, (bad, body))
            self.assertIn("32 hex digits", body["error"])
        self.assertEqual(d.trace(T1.upper())[0], 200)

    def test_bounds_oldest_traces_evicted(self):
        d = Traces(self)
        n = 2050
        for lo in range(0, n, 550):
            batch = [span(tid(i), sid(1), "t%d" % i, i, 1) for i in range(lo, min(n, lo + 550))]
            d.ok(req(rs("svc", batch)))
        body = d.traces(limit="1000")
        self.assertEqual((body["stored"], body["evictedTraces"], body["limits"]["traces"]), (2000, 50, 2000))
        self.assertEqual(len(body["traces"]), 1000)
        self.assertEqual(body["traces"][0]["traceId"], tid(n - 1))
        for i in (0, 49):
            self.assertEqual(d.trace(tid(i))[0], 404)
        for i in (50, n - 1):
            self.assertEqual(d.trace(tid(i))[0], 200)
        # a trace seen again keeps its place: the oldest still go first
        d.ok(req(rs("svc", [span(tid(50), sid(2), "again", 50, 1)])))
        d.ok(req(rs("svc", [span(tid(n), sid(1), "new", n, 1)])))
        self.assertEqual(d.trace(tid(50))[0], 404)
        self.assertEqual(d.trace(tid(51))[0], 200)

    def test_bounds_spans_per_trace_dropped(self):
        d = Traces(self)
        spans = [span(T1, sid(i + 1), "s%d" % i, i, 1, parent=sid(1) if i else None) for i in range(1100)]
        status, ans = d.post(req(rs("svc", spans)))
        self.assertEqual(status, 200, ans)
        self.assertEqual(ans["partialSuccess"]["rejectedSpans"], 100, ans)
        self.assertIn(T1, ans["partialSuccess"]["errorMessage"])
        self.assertIn("per-trace limit", ans["partialSuccess"]["errorMessage"])
        body = d.traces()
        self.assertEqual((body["traces"][0]["spanCount"], body["droppedSpans"], body["spans"]), (1000, 100, 1000))
        status, detail = d.trace(T1)
        self.assertEqual((len(spans_of(detail)), detail["droppedSpans"]), (1000, 100))
        status, ans = d.post(req(rs("svc", [span(T1, sid(5000), "more", 0, 1)])))
        self.assertEqual(ans["partialSuccess"]["rejectedSpans"], 1)

    def test_attribute_and_name_bounds(self):
        d = Traces(self)
        attrs = [{"key": "k%02d" % i, "value": sval("v")} for i in range(70)]
        attrs[0] = {"key": "long", "value": sval("é" * 600 + "x")}          # 1201 bytes: cut at 1 KiB
        attrs[1] = {"key": "K" * 257, "value": sval("dropped: key too long")}
        d.ok(req(rs("svc", [span(T1, sid(1), "n" * 1500, 0, 1, attrs=attrs)])))
        s = spans_of(d.trace(T1)[1])[0][1]
        self.assertEqual(len(s["attributes"]), 64)
        self.assertEqual(s["droppedAttributesCount"], 6)   # the long key and 5 past 64
        v = s["attributes"][0]["value"]["stringValue"]
        self.assertEqual(v, "é" * 512)                     # 1024 bytes, no character cut in half
        self.assertNotIn("K" * 257, [a["key"] for a in s["attributes"]])
        self.assertEqual(len(s["name"]), 1024)
        self.assertEqual(d.traces()["droppedAttributes"], 6)


# ---- the control link, spoken by hand ---------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def hpack_literal(name, value):
    """A header as an HPACK literal without indexing, new name, no Huffman."""
    n, v = name.encode(), value.encode()
    assert len(n) < 127 and len(v) < 127
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


class MeshLink:
    """A proxy's control link (docs/internals/control-protocol.md) on a
    plaintext mesh port (sinewd --mesh-plaintext): HTTP/2 with prior
    knowledge, one POST stream of NDJSON each way."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.rbuf = b""
        self.partial = b""
        self.lines = []
        self.closed = False
        head = b"".join(hpack_literal(k, v) for k, v in (
            (":method", "POST"), (":scheme", "http"), (":path", "/sinew.v1.Mesh/Stream"),
            (":authority", "sinewd"), ("content-type", "application/x-ndjson")))
        self.s.sendall(PREFACE + frame(4, 0, 0) + frame(1, 4, 1, head))

    def send(self, obj):
        data = (json.dumps(obj) + "\n").encode()
        for i in range(0, len(data), 16384):
            self.s.sendall(frame(0, 0, 1, data[i:i + 16384]))

    def _frames(self):
        while len(self.rbuf) >= 9:
            n = int.from_bytes(self.rbuf[:3], "big")
            if len(self.rbuf) < 9 + n:
                return
            ftype, flags = self.rbuf[3], self.rbuf[4]
            stream = int.from_bytes(self.rbuf[5:9], "big") & 0x7FFFFFFF
            payload = self.rbuf[9:9 + n]
            self.rbuf = self.rbuf[9 + n:]
            yield ftype, flags, stream, payload

    def pump(self, seconds):
        deadline = time.time() + seconds
        while not self.closed and time.time() < deadline:
            self.s.settimeout(max(0.01, deadline - time.time()))
            try:
                data = self.s.recv(65536)
            except socket.timeout:
                return
            except OSError:
                self.closed = True
                return
            if not data:
                self.closed = True
                return
            self.rbuf += data
            for ftype, flags, stream, payload in self._frames():
                if ftype == 4 and not flags & 1:              # SETTINGS
                    self._reply(frame(4, 1, 0))
                elif ftype == 6 and not flags & 1:            # PING
                    self._reply(frame(6, 1, 0, payload))
                elif ftype == 0 and stream == 1:              # DATA
                    if flags & 8:
                        payload = payload[1:len(payload) - payload[0]]
                    self.partial += payload
                    *done, self.partial = self.partial.split(b"\n")
                    self.lines += [json.loads(x) for x in done if x.strip()]
                    if flags & 1:
                        self.closed = True
                    elif payload:
                        inc = struct.pack(">I", len(payload))
                        self._reply(frame(8, 0, 0, inc) + frame(8, 0, 1, inc))
                elif ftype in (3, 7) or (ftype == 1 and flags & 1):   # RST_STREAM, GOAWAY, trailers
                    self.closed = True

    def _reply(self, data):
        try:
            self.s.sendall(data)
        except OSError:   # sinewd closed the link; what it sent is still read
            pass

    def wait(self, pred, seconds=5.0):
        deadline = time.time() + seconds
        while time.time() < deadline:
            for m in self.lines:
                if pred(m):
                    return m
            if self.closed:
                break
            self.pump(0.05)
        raise AssertionError("no such message; got %s (closed: %s)" % (self.lines, self.closed))

    def close(self):
        self.s.close()


HELLO = {"type": "hello", "node": {"id": "wire-traces", "service": "productpage", "namespace": "default",
                                   "version": "0.1.0"}, "have": {}}


class TracesOverControlLink(unittest.TestCase):
    def test_spans_message_lands_in_store(self):
        d = Traces(self)
        link = MeshLink(d.mesh_port)
        self.addCleanup(link.close)
        link.send(HELLO)
        link.wait(lambda m: m.get("type") == "resources")
        msg = dict(bookinfo_trace(T1), type="spans")
        link.send(msg)
        deadline = time.time() + 5
        while time.time() < deadline and d.trace(T1)[0] != 200:
            link.pump(0.05)
        status, detail = d.trace(T1)
        self.assertEqual(status, 200, detail)
        self.assertEqual(detail["spanCount"], 3)

        # a malformed one is dropped and counted; the link stays up
        bad = req(rs("productpage.default", [span("nothex", sid(1), "x", 0, 1)]))
        link.send(dict(bad, type="spans"))
        link.send(dict(req(rs("productpage.default", [span(tid(5), sid(1), "after", 0, 1)])), type="spans"))
        link.send({"type": "heartbeat"})
        deadline = time.time() + 5
        while time.time() < deadline and d.trace(tid(5))[0] != 200:
            link.pump(0.05)
        self.assertEqual(d.trace(tid(5))[0], 200)
        link.pump(0.2)
        self.assertFalse(link.closed)
        self.assertEqual([m for m in link.lines if m.get("type") == "error"], [])
        px = [p for p in d.proxies() if p["id"] == "wire-traces"]
        self.assertEqual(len(px), 1, d.proxies())
        self.assertEqual(px[0]["spans"], {"stored": 4, "dropped": 0, "rejectedBatches": 1})
        self.assertEqual(d.traces()["rejectedBatches"], 1)
        self.assertIn("sent spans sinewd cannot read (resourceSpans[0].scopeSpans[0].spans[0].traceId: want 32 "
                      "hex digits)", d.read_log())

    def test_spans_before_hello_refused(self):
        d = Traces(self)
        link = MeshLink(d.mesh_port)
        self.addCleanup(link.close)
        link.send(dict(bookinfo_trace(T1), type="spans"))
        m = link.wait(lambda m: m.get("type") == "error")
        self.assertIn("hello", m["message"])
        self.assertEqual(d.trace(T1)[0], 404)


if __name__ == "__main__":
    st.main()
