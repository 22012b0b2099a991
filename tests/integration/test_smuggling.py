#!/usr/bin/python3
"""Request smuggling and limits (RFC 9112), over raw sockets to the
outbound listener: each malformed request gets the right 4xx/5xx with a
sinew-error header, the connection is closed, and the backend receives
nothing at all."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

H = b"Host: reviews\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: reviews\r\n\r\n"


def req(head_lines, body=b"", start=b"POST /target HTTP/1.1"):
    return start + b"\r\n" + b"".join(l + b"\r\n" for l in head_lines) + b"\r\n" + body


# (name, bytes, accepted statuses, expected sinew-error reason or None for
# "any non-empty reason")
CASES = [
    # Content-Length and Transfer-Encoding together: never forwarded.
    ("cl_and_te", req([H.strip(), b"Content-Length: 4", b"Transfer-Encoding: chunked"],
                      b"0\r\n\r\n" + SMUGGLED), {400}, "bad_request"),
    ("te_and_cl", req([H.strip(), b"Transfer-Encoding: chunked", b"Content-Length: 46"],
                      b"0\r\n\r\n" + SMUGGLED), {400}, "bad_request"),
    ("duplicate_cl_differ", req([H.strip(), b"Content-Length: 5", b"Content-Length: 6"],
                                b"hello!"), {400}, "bad_request"),
    ("cl_list_differ", req([H.strip(), b"Content-Length: 5, 6"], b"hello!"), {400},
     "bad_request"),
    ("cl_not_a_number", req([H.strip(), b"Content-Length: abc"], b"abc"), {400}, "bad_request"),
    ("cl_negative", req([H.strip(), b"Content-Length: -1"], b"a"), {400}, "bad_request"),
    ("cl_plus_sign", req([H.strip(), b"Content-Length: +5"], b"hello"), {400}, "bad_request"),
    ("cl_hex", req([H.strip(), b"Content-Length: 0x5"], b"hello"), {400}, "bad_request"),
    ("cl_overflow", req([H.strip(), b"Content-Length: 99999999999999999999999"], b"x"), {400},
     "bad_request"),
    ("cl_inner_space", req([H.strip(), b"Content-Length: 1 2"], b"x" * 12), {400},
     "bad_request"),
    # Transfer codings other than chunked are not implemented (RFC 9112
    # §6.1: 501); chunked not last in a request is a 400.
    ("te_gzip", req([H.strip(), b"Transfer-Encoding: gzip"], b"x" * 10), {501},
     "not_implemented"),
    ("te_gzip_chunked", req([H.strip(), b"Transfer-Encoding: gzip, chunked"],
                            b"5\r\nhello\r\n0\r\n\r\n"), {400, 501}, None),
    ("te_chunked_identity", req([H.strip(), b"Transfer-Encoding: chunked, identity"],
                                b"5\r\nhello\r\n0\r\n\r\n"), {400, 501}, None),
    ("te_chunked_twice", req([H.strip(), b"Transfer-Encoding: chunked",
                              b"Transfer-Encoding: chunked"], b"0\r\n\r\n"), {400, 501}, None),
    ("te_chunked_obfuscated", req([H.strip(), b"Transfer-Encoding: xchunked"],
                                  b"0\r\n\r\n"), {400, 501}, None),
    ("te_http10", req([H.strip(), b"Transfer-Encoding: chunked"], b"0\r\n\r\n",
                      start=b"POST /target HTTP/1.0"), {400}, None),
    # Header syntax.
    ("obs_fold", req([H.strip(), b"X-Folded: a", b" b"]), {400}, "bad_request"),
    ("obs_fold_tab", req([H.strip(), b"X-Folded: a", b"\tb"]), {400}, "bad_request"),
    ("fold_first_line", req([b" X-Lead: a", H.strip()]), {400}, "bad_request"),
    ("bare_lf_in_headers", b"GET /target HTTP/1.1\r\nHost: reviews\nX-A: b\r\n\r\n", {400},
     "bad_request"),
    ("bare_cr_in_headers", b"GET /target HTTP/1.1\r\nHost: reviews\rX-A: b\r\n\r\n", {400},
     "bad_request"),
    ("bare_cr_in_value", req([H.strip(), b"X-A: b\rc"]), {400}, "bad_request"),
    ("space_before_colon", req([b"Host : reviews"]), {400}, "bad_request"),
    ("space_before_colon_cl", req([H.strip(), b"Content-Length : 5"], b"hello"), {400},
     "bad_request"),
    ("nul_in_value", req([H.strip(), b"X-A: a\x00b"]), {400}, "bad_request"),
    ("ctl_in_value", req([H.strip(), b"X-A: a\x01b"]), {400}, "bad_request"),
    ("del_in_value", req([H.strip(), b"X-A: a\x7fb"]), {400}, "bad_request"),
    ("invalid_name_char", req([H.strip(), b"X(A): b"]), {400}, "bad_request"),
    ("name_with_space", req([H.strip(), b"X A: b"]), {400}, "bad_request"),
    ("empty_name", req([H.strip(), b": b"]), {400}, "bad_request"),
    ("missing_colon", req([H.strip(), b"XA b"]), {400}, "bad_request"),
    ("missing_host_11", req([b"X-A: b"], start=b"GET /target HTTP/1.1"), {400}, "bad_request"),
    ("two_hosts", req([H.strip(), b"Host: ratings"], start=b"GET /target HTTP/1.1"), {400},
     "bad_request"),
    ("two_hosts_same", req([H.strip(), H.strip()], start=b"GET /target HTTP/1.1"), {400},
     "bad_request"),
    ("empty_host", req([b"Host: "], start=b"GET /target HTTP/1.1"), {400, 404}, None),
    ("host_with_space", req([b"Host: rev iews"], start=b"GET /target HTTP/1.1"), {400},
     "bad_request"),
    # Request line.
    ("bad_method_char", b"G(ET /target HTTP/1.1\r\nHost: reviews\r\n\r\n", {400}, "bad_request"),
    ("two_spaces", b"GET  /target HTTP/1.1\r\nHost: reviews\r\n\r\n", {400}, "bad_request"),
    ("no_version", b"GET /target\r\nHost: reviews\r\n\r\n", {400}, "bad_request"),
    ("lowercase_version", b"GET /target http/1.1\r\nHost: reviews\r\n\r\n", {400, 505},
     None),
    ("space_in_target", b"GET /a b HTTP/1.1\r\nHost: reviews\r\n\r\n", {400}, "bad_request"),
    ("ctl_in_target", b"GET /a\x01b HTTP/1.1\r\nHost: reviews\r\n\r\n", {400}, "bad_request"),
    ("http2_version", b"GET /target HTTP/2.0\r\nHost: reviews\r\n\r\n", {505},
     "http_version_not_supported"),
    ("http3_version", b"GET /target HTTP/3.0\r\nHost: reviews\r\n\r\n", {505},
     "http_version_not_supported"),
    ("connect_method", b"CONNECT reviews:9080 HTTP/1.1\r\nHost: reviews:9080\r\n\r\n", {501},
     "not_implemented"),
    ("expect_unknown", req([H.strip(), b"Content-Length: 5", b"Expect: 200-ok"], b"hello"),
     {417}, "expectation_failed"),
    ("http09_version", b"GET /target HTTP/0.9\r\nHost: reviews\r\n\r\n", {400, 505}, None),
    # Limits.
    ("request_line_over_8k",
     b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: reviews\r\n\r\n", {414}, "uri_too_long"),
    ("headers_over_64k",
     req([H.strip()] + [b"X-Big-%d: %s" % (i, b"b" * 7000) for i in range(10)],
         start=b"GET /target HTTP/1.1"), {431}, "header_too_large"),
    ("one_header_over_64k",
     req([H.strip(), b"X-Huge: " + b"h" * 70000], start=b"GET /target HTTP/1.1"), {431},
     "header_too_large"),
    ("over_100_headers",
     req([H.strip()] + [b"X-H%d: v" % i for i in range(120)], start=b"GET /target HTTP/1.1"),
     {431}, "header_too_large"),
    # Chunked framing.
    ("bad_chunk_size", req([H.strip(), b"Transfer-Encoding: chunked"],
                           b"zz\r\nhello\r\n0\r\n\r\n"), {400}, "bad_request"),
    ("chunk_size_overflow", req([H.strip(), b"Transfer-Encoding: chunked"],
                                b"fffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), {400},
     "bad_request"),
    ("chunk_size_negative", req([H.strip(), b"Transfer-Encoding: chunked"],
                                b"-5\r\nhello\r\n0\r\n\r\n"), {400}, "bad_request"),
    ("chunk_size_0x", req([H.strip(), b"Transfer-Encoding: chunked"],
                          b"0x5\r\nhello\r\n0\r\n\r\n"), {400}, "bad_request"),
    ("chunk_missing_crlf", req([H.strip(), b"Transfer-Encoding: chunked"],
                               b"5\r\nhelloXX0\r\n\r\n"), {400}, "bad_request"),
    ("chunk_bare_lf", req([H.strip(), b"Transfer-Encoding: chunked"],
                          b"5\nhello\n0\n\n"), {400}, "bad_request"),
]

# docs/errors.md: the reason each status is sent with.
REASON_FOR = {400: "bad_request", 404: "no_route", 414: "uri_too_long",
              431: "header_too_large", 417: "expectation_failed", 501: "not_implemented",
              505: "http_version_not_supported"}

# Cases where a body with bad framing follows a valid head: a proxy that
# streams may have to decide after connecting upstream. They must still
# never deliver the request to the backend.
BODY_CASES = {"bad_chunk_size", "chunk_size_overflow", "chunk_size_negative", "chunk_size_0x",
              "chunk_missing_crlf", "chunk_bare_lf"}


class Smuggling(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        scope = st.ClassScope(cls)
        cls.backend = st.start_backend(scope, "reviews", "v1")
        cfg = st.registry_yaml({("reviews", "v1"): cls.backend.port},
                               services=["ratings"])
        cls.proxy = st.start_proxy(scope, cfg, workdir=st.make_tempdir(scope),
                                   args=["--request-header-timeout", "5s"])
        cls.port = cls.proxy.outbound_port

    def backend_total(self):
        c = self.backend.counts()
        return c["requests"]

    def test_control_valid_requests_reach_backend(self):
        """The same listener forwards well-formed requests (so the "backend
        received nothing" checks below can fail)."""
        before = self.backend_total()
        ok = [
            req([H.strip(), b"Content-Length: 5"], b"hello"),
            req([H.strip(), b"Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\n\r\n"),
            req([H.strip(), b"Transfer-Encoding: chunked"],
                b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"),
            req([H.strip(), b"Content-Length: 5", b"X-Empty:", b"X-Tab:\tv\t"], b"hello"),
            req([H.strip()] + [b"X-H%d: v" % i for i in range(90)], start=b"GET /t HTTP/1.1"),
            b"GET /" + b"a" * 7000 + b" HTTP/1.1\r\nHost: reviews\r\n\r\n",
            req([b"host: reviews", b"content-length: 0"]),
        ]
        passed = 0
        for i, data in enumerate(ok):
            with self.subTest(valid=i, start=data[:60]):
                r, _ = st.raw_exchange(self.port, data)
                self.assertIsNotNone(r, "no response to valid request %d" % i)
                self.assertEqual(r.status, 200, "valid request %d: %r" % (i, r))
                self.assertIsNone(r.header("sinew-error"), r)
                if b"hello" in data:
                    self.assertEqual(r.json()["body_len"], 5, r)
                passed += 1
        time.sleep(0.2)
        self.assertEqual(self.backend_total(), before + passed)

    def test_cases(self):
        for name, data, statuses, reason in CASES:
            with self.subTest(case=name):
                before = self.backend.counts()
                r, closed = st.raw_exchange(self.port, data, timeout=10)
                self.assertIsNotNone(r, "%s: connection closed without a response" % name)
                self.assertIn(r.status, statuses, "%s: %r" % (name, r))
                self.assertTrue(r.header("sinew-error"), "%s: no sinew-error header: %r"
                                % (name, r))
                if reason:
                    self.assertEqual(r.header("sinew-error"), reason, name)
                self.assertEqual(r.header("sinew-error"), REASON_FOR.get(r.status),
                                 "%s: reason does not match the status (docs/errors.md)" % name)
                self.assertTrue(closed, "%s: connection left open after a malformed request"
                                % name)
                time.sleep(0.1)
                after = self.backend.counts()
                complete = ((after["requests"] - after["bad"])
                            - (before["requests"] - before["bad"]))
                self.assertEqual(after["requests"], before["requests"],
                                 "%s: the backend received the request (%s)" % (
                                     name, "complete, and answered it" if complete else
                                     "the head, then an aborted body"))
        log = self.backend.log()
        self.assertFalse([e for e in log if "smuggled" in e["path"]], "a smuggled request "
                         "reached the backend")

    def test_pipelined_after_bad_request_not_forwarded(self):
        """A valid request pipelined behind a malformed one is not processed:
        the proxy cannot know where it starts."""
        before = self.backend_total()
        data = (req([H.strip(), b"Content-Length: 5", b"Content-Length: 7"], b"hello")
                + b"GET /after-bad HTTP/1.1\r\nHost: reviews\r\n\r\n")
        r, closed = st.raw_exchange(self.port, data)
        self.assertEqual(r.status, 400)
        self.assertTrue(closed)
        time.sleep(0.2)
        self.assertEqual(self.backend_total(), before)

    def test_error_metrics(self):
        """Rejected requests show in the metrics with their reason."""
        m0 = self.proxy.metrics()
        n0 = st.metric_sum(m0, "sinew_requests_total", response_flags="bad_request",
                           response_code="400")
        for _ in range(3):
            st.raw_exchange(self.port, req([H.strip(), b"Content-Length: x"]))
        m1 = self.proxy.metrics()
        self.assertEqual(st.metric_sum(m1, "sinew_requests_total", response_flags="bad_request",
                                       response_code="400") - n0, 3)


if __name__ == "__main__":
    st.main()
