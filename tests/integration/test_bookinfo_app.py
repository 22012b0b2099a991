#!/usr/bin/python3
"""The bookinfo demo application (examples/bookinfo, binary `bookinfo`)
behind one sinew-proxy in file mode: every service's http_proxy points at
the proxy's outbound listener, the proxy's config is the services, their
WorkloadEntries and the unmodified destination-rule-all.yaml, plus Istio's
task files as each test applies them. Everything is observed through
productpage, as a user of Istio's tasks would: the page, its status and
how long it takes."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

BOOKINFO = os.path.join(st.BIN, "bookinfo")
APPS = (("details", "v1"), ("ratings", "v1"), ("reviews", "v1"), ("reviews", "v2"),
        ("reviews", "v3"), ("productpage", "v1"))
REVIEWS_ERROR = "Sorry, product reviews are currently unavailable for this book."
RATINGS_ERROR = "Ratings service is currently unavailable"
STAR, EMPTY = "\u2605", "\u2606"


def stars(page):
    """[(color, full stars)] of the reviews on a page, in order."""
    return [(c, s.count(STAR)) for c, s in
            re.findall(r'<font class="stars" color="([a-z]+)">([^<]*)</font>', page)]


class App:
    def __init__(self, workdir, role, version, port, proxy_port):
        self.role, self.version, self.port = role, version, port
        self.stderr_path = os.path.join(workdir, "%s-%s.stderr" % (role, version))
        env = st.proxy_env()
        env["http_proxy"] = "http://%s:%d" % (st.LOOPBACK, proxy_port)
        for k in ("HTTP_PROXY", "no_proxy", "NO_PROXY", "SERVICES_DOMAIN"):
            env.pop(k, None)
        env["HOSTNAME"] = "%s-%s" % (role, version)
        self._err = open(self.stderr_path, "ab")
        self.proc = st.spawn([BOOKINFO, role, "--version", version, "--listen",
                              "%s:%d" % (st.LOOPBACK, port)],
                             stdout=subprocess.DEVNULL, stderr=self._err, env=env)

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def stop(self):
        """SIGTERM; returns the exit status (None if it had to be killed)."""
        code = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(20)
            except subprocess.TimeoutExpired:
                pass
        else:
            code = self.proc.returncode
        st.stop_process(self.proc)
        self._err.close()
        return code


class BookinfoApp(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not os.access(BOOKINFO, os.X_OK):
            raise AssertionError("bookinfo not built at %s (set SINEW_BIN)" % BOOKINFO)
        scope = st.ClassScope(cls)
        cls.workdir = st.make_tempdir(scope, "sinew-bookinfo-")
        cls.ports = {k: st.free_port() for k in APPS}
        cls.base = st.join_docs(st.registry_yaml(cls.ports),
                                st.bookinfo_file("destination-rule-all.yaml"))
        cls.config_path = os.path.join(cls.workdir, "sinew.yaml")
        st.write_file(cls.config_path, cls.base)
        cls.proxy = st.start_proxy(scope, config_path=cls.config_path, workdir=cls.workdir,
                                   args=["--service", "bookinfo", "--log-level", "warn"])
        cls.apps = {}
        cls.stopped = False
        cls.addClassCleanup(cls.stop_apps)
        for (role, ver), port in cls.ports.items():
            cls.apps[(role, ver)] = App(cls.workdir, role, ver, port, cls.proxy.outbound_port)
        for key, app in cls.apps.items():
            if not st.wait_port(app.port, 10):
                raise AssertionError("%s did not listen on %d:\n%s"
                                     % (key, app.port, app.stderr()[-3000:]))
        cls.pp = cls.ports[("productpage", "v1")]

    @classmethod
    def stop_apps(cls):
        if cls.stopped:
            return {}
        cls.stopped = True
        return {k: a.stop() for k, a in cls.apps.items()}

    # -- helpers ---------------------------------------------------------

    def config_version(self):
        _, _, body = self.proxy.admin_get("/ready")
        m = re.search(rb"version (\d+)", body)
        return int(m.group(1)) if m else -1

    def apply(self, *files):
        """The proxy's config becomes base + files; waits for the reload."""
        before = self.config_version()
        st.write_file(self.config_path,
                      st.join_docs(self.base, *[st.bookinfo_file(f) for f in files]))
        deadline = time.time() + 5
        while time.time() < deadline:
            if self.config_version() > before:
                return
            time.sleep(0.05)
        self.fail("proxy did not reload %r in 5 s:\n%s" % (files, self.proxy.stderr()[-3000:]))

    def page(self, cookie=None, headers=None, timeout=20):
        h = dict(headers or {})
        if cookie:
            h["Cookie"] = cookie
        r = st.request(self.pp, "GET", "/productpage", headers=h, timeout=timeout)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("content-type"), "text/html; charset=utf-8")
        return r.body.decode()

    def login(self, user):
        r = st.request(self.pp, "POST", "/login", body=("username=%s&passwd=x" % user).encode(),
                       headers={"Content-Type": "application/x-www-form-urlencoded",
                                "Referer": "http://bookinfo.example/productpage"})
        self.assertEqual(r.status, 302, r)
        self.assertEqual(r.header("location"), "/productpage")
        m = re.match(r"(user=[^;]*);", r.header("set-cookie") or "")
        self.assertTrue(m, r)
        return m.group(1)

    def assert_details(self, page):
        self.assertIn("<h3>The Comedy of Errors</h3>", page)
        self.assertIn("<h4>Book Details</h4>", page)
        for v in ("paperback", "PublisherA", "English", "1234567890", "123-1234567890"):
            self.assertIn(v, page)

    def assert_reviews(self, page):
        self.assertIn("<h4>Book Reviews</h4>", page)
        self.assertIn("<small>Reviewer1</small>", page)
        self.assertIn("<small>Reviewer2</small>", page)
        self.assertIn("The slapstick humour is refreshing!", page)

    # -- tests -----------------------------------------------------------

    def test_01_page_and_api(self):
        """With no VirtualService the page renders with details and reviews
        from all three versions of reviews, every call made through the
        proxy; the JSON API follows swagger.yaml."""
        seen = set()
        for _ in range(60):
            page = self.page()
            self.assert_details(page)
            self.assert_reviews(page)
            self.assertIn("Sign in", page)
            s = stars(page)
            self.assertIn(s, ([], [("black", 5), ("black", 4)], [("red", 5), ("red", 4)]), page)
            seen.add(s[0][0] if s else "none")
            if len(seen) == 3:
                break
        self.assertEqual(seen, {"none", "black", "red"})

        r = st.request(self.pp, "GET", "/api/v1/products")
        self.assertEqual(r.status, 200, r)
        products = r.json()
        self.assertEqual([p["id"] for p in products], [0])
        self.assertEqual(products[0]["title"], "The Comedy of Errors")
        self.assertIn("<b>William Shakespeare's</b>", products[0]["descriptionHtml"])
        r = st.request(self.pp, "GET", "/api/v1/products/0")
        self.assertEqual(r.status, 200, r)
        d = r.json()
        for k in ("id", "publisher", "language", "author", "ISBN-10", "ISBN-13", "year", "type",
                  "pages"):
            self.assertIn(k, d)
        self.assertEqual((d["id"], d["type"], d["pages"], d["year"]), (0, "paperback", 200, 1595))
        r = st.request(self.pp, "GET", "/api/v1/products/0/reviews")
        self.assertEqual(r.status, 200, r)
        rv = r.json()
        self.assertEqual(rv["id"], 0)
        self.assertEqual([x["reviewer"] for x in rv["reviews"]], ["Reviewer1", "Reviewer2"])
        r = st.request(self.pp, "GET", "/api/v1/products/0/ratings")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}})
        r = st.request(self.pp, "GET", "/api/v1/products/x")
        self.assertEqual(r.status, 400, r)
        r = st.request(self.pp, "GET", "/nope")
        self.assertEqual(r.status, 404, r)
        for (role, ver), port in self.ports.items():
            r = st.request(port, "GET", "/health")
            self.assertEqual(r.status, 200, "%s-%s: %r" % (role, ver, r))

        # Every call between the services went through the proxy.
        samples = self.proxy.metrics()
        for svc in ("details", "reviews", "ratings"):
            n = sum(v for (name, lab, v) in samples if name == "sinew_requests_total"
                    and lab.get("destination_service", "").split(".")[0] == svc)
            self.assertGreater(n, 0, "no request to %s in the proxy's metrics" % svc)

    def test_02_login_logout(self):
        cookie = self.login("jason")
        self.assertEqual(cookie, "user=jason")
        page = self.page(cookie)
        self.assertIn('<span id="user">jason ( <a href="logout">sign out</a> )</span>', page)
        self.assertNotIn("Sign in", page)
        r = st.request(self.pp, "GET", "/logout", headers={"Cookie": cookie})
        self.assertEqual(r.status, 302, r)
        self.assertRegex(r.header("set-cookie"), r"^user=;.*Max-Age=0")
        # An end-user header (a test client's shortcut) counts as signed in.
        self.assertIn('<span id="user">bob', self.page(headers={"end-user": "bob"}))
        # Names are escaped on the page; unusable ones are refused.
        cookie = self.login("%3Cb%3Eeve")
        self.assertIn("&lt;b&gt;eve (", self.page(cookie))
        r = st.request(self.pp, "POST", "/login", body=b"username=",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(r.status, 400, r)

    def test_03_request_routing_jason_v2_v3(self):
        """virtual-service-reviews-jason-v2-v3.yaml: signed-in jason sees
        black stars (v2), everyone else red stars (v3)."""
        self.apply("virtual-service-reviews-jason-v2-v3.yaml")
        jason = self.login("jason")
        bob = self.login("bob")
        for _ in range(10):
            page = self.page(jason)
            self.assert_reviews(page)
            self.assertEqual(stars(page), [("black", 5), ("black", 4)], page)
            for who in (None, bob):
                page = self.page(who)
                self.assertEqual(stars(page), [("red", 5), ("red", 4)], page)

    def test_04_fault_injection_delay(self):
        """virtual-service-reviews-test-v2.yaml + ratings-test-delay.yaml:
        jason's ratings calls are delayed 7 s; reviews v2 waits (10 s
        timeout), productpage gives up after 3 s, tries again, gives up
        again: the page arrives after about 6 s saying the reviews are
        unavailable. Everyone else is served at once by v1."""
        self.apply("virtual-service-reviews-test-v2.yaml",
                   "virtual-service-ratings-test-delay.yaml")
        jason = self.login("jason")
        out = {}

        def jason_page():
            t0 = time.monotonic()
            try:
                out["page"] = self.page(jason, timeout=30)
            except Exception as e:  # noqa: BLE001 - reported below
                out["page"] = e
            out["elapsed"] = time.monotonic() - t0

        t = threading.Thread(target=jason_page, daemon=True)
        t.start()
        time.sleep(0.2)
        for _ in range(10):
            t0 = time.monotonic()
            page = self.page()
            elapsed = time.monotonic() - t0
            self.assertLess(elapsed, 1.5, "an anonymous page took %.2f s" % elapsed)
            self.assert_reviews(page)
            self.assertEqual(stars(page), [], page)
        self.assertTrue(t.is_alive(), "jason's page came back early: %r" % out)
        t.join(20)
        self.assertFalse(t.is_alive(), "jason's page did not come back in 20 s")
        page = out["page"]
        self.assertIsInstance(page, str, page)
        self.assertGreaterEqual(out["elapsed"], 5.5)
        self.assertLess(out["elapsed"], 7.5)
        self.assert_details(page)
        self.assertIn("<h4>Error fetching product reviews!</h4>", page)
        self.assertIn(REVIEWS_ERROR, page)
        self.assertIn('<span id="user">jason', page)

    def test_05_fault_injection_abort(self):
        """virtual-service-reviews-test-v2.yaml + ratings-test-abort.yaml:
        the proxy answers jason's ratings calls with 500; reviews v2 says
        the ratings service is unavailable, the rest of the page is there."""
        self.apply("virtual-service-reviews-test-v2.yaml",
                   "virtual-service-ratings-test-abort.yaml")
        jason = self.login("jason")
        for _ in range(5):
            t0 = time.monotonic()
            page = self.page(jason)
            self.assertLess(time.monotonic() - t0, 1.5)
            self.assert_details(page)
            self.assert_reviews(page)
            self.assertEqual(stars(page), [], page)
            self.assertEqual(page.count("<p><i>%s</i></p>" % RATINGS_ERROR), 2, page)
            page = self.page()
            self.assert_reviews(page)
            self.assertNotIn(RATINGS_ERROR, page)
            self.assertEqual(stars(page), [], page)
        # Through the API, with the end-user header instead of the cookie.
        r = st.request(self.pp, "GET", "/api/v1/products/0/reviews", headers={"end-user": "jason"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual([x["rating"] for x in r.json()["reviews"]], [{"error": RATINGS_ERROR}] * 2)
        r = st.request(self.pp, "GET", "/api/v1/products/0/ratings", headers={"end-user": "jason"})
        self.assertEqual(r.status, 500, r)
        self.assertEqual(r.json(), {"error": "Sorry, product ratings are currently unavailable "
                                             "for this book."})

    def test_06_headers_forwarded(self):
        """productpage and reviews forward the trace headers, user-agent
        and end-user (a VirtualService matching on them is how Istio's
        task files see the user)."""
        self.apply("virtual-service-reviews-jason-v2-v3.yaml")
        tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        r = st.request(self.pp, "GET", "/api/v1/products/0/reviews",
                       headers={"traceparent": tp, "x-request-id": "rid-123",
                                "x-b3-traceid": "abc", "user-agent": "bk-test/1",
                                "Cookie": "user=jason"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["reviews"][0]["rating"]["color"], "black")
        # an app logs a request after answering it: the line may come a
        # moment after the response did (a clean-clone run read it first)
        for app, pat in ((("reviews", "v2"), r'"GET /reviews/0" 200 .* end-user=jason x-request-id=rid-123'),
                         (("ratings", "v1"), r'"GET /ratings/0" 200 .* end-user=jason x-request-id=rid-123')):
            deadline = time.time() + 5
            while time.time() < deadline and not re.search(pat, self.apps[app].stderr()):
                time.sleep(0.05)
            self.assertRegex(self.apps[app].stderr(), pat)

    def test_07_http_robustness(self):
        """Keep-alive, pipelining, Connection: close, HTTP/1.0, limits and
        bad requests; many requests leave no descriptor behind."""
        details = self.ports[("details", "v1")]
        app = self.apps[("details", "v1")]
        fds0 = app.fds()
        c = st.KeepAliveClient(details)
        try:
            for i in range(300):
                r = c.request("GET", "/details/%d" % i, "details")
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["id"], i)
        finally:
            c.close()
        for i in range(100):
            r = st.request(details, "GET", "/details/%d" % i)
            self.assertEqual(r.status, 200, r)
        # Pipelined requests are answered in order, then Connection: close.
        rc = st.RawConn(details)
        try:
            rc.send(b"GET /details/1 HTTP/1.1\r\nHost: d\r\n\r\nHEAD /details/2 HTTP/1.1\r\n"
                    b"Host: d\r\n\r\nGET /details/3 HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
            a = rc.read_response()
            b = rc.read_response("HEAD")
            z = rc.read_response()
            self.assertEqual((a.status, a.json()["id"]), (200, 1))
            self.assertEqual((b.status, b.body), (200, b""))
            self.assertGreater(int(b.header("content-length")), 0)
            self.assertEqual((z.status, z.json()["id"], z.header("connection")), (200, 3, "close"))
            self.assertTrue(rc.closed_by_peer(2.0))
        finally:
            rc.close()
        # HTTP/1.0 closes unless asked to keep alive.
        r, closed = st.raw_exchange(details, b"GET /details/0 HTTP/1.0\r\n\r\n")
        self.assertEqual((r.status, closed), (200, True))
        r, closed = st.raw_exchange(details, b"GET /details/0 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        self.assertEqual((r.status, closed, r.header("connection")), (200, False, "keep-alive"))
        # Malformed and oversized requests: an error, then the connection closes.
        cases = ((b"GET /details/0 HTTP/1.1\r\nHost: d\r\nContent-Length: 1\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n", 400, True),
                 (b"GET /details/0 HTTP/1.1\r\nHost: d\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
                  431, True),
                 (b"POST /login HTTP/1.1\r\nHost: d\r\nContent-Length: 100000\r\n\r\n", 413, True),
                 (b"POST /login HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n", 411,
                  True),
                 (b"DELETE /details/0 HTTP/1.1\r\nHost: d\r\n\r\n", 405, False),
                 (b"GET /details/abc HTTP/1.1\r\nHost: d\r\n\r\n", 400, False))
        for raw, status, close in cases:
            r, closed = st.raw_exchange(details, raw)
            self.assertIsNotNone(r, raw[:60])
            self.assertEqual((r.status, closed), (status, close), "%r: %r" % (raw[:60], r))
        # A client that sends half a head and stalls holds only its own
        # connection.
        stall = socket.create_connection((st.LOOPBACK, details))
        stall.sendall(b"GET /details/0 HTTP/1.1\r\nHo")
        t0 = time.monotonic()
        r = st.request(details, "GET", "/details/5")
        self.assertEqual(r.status, 200)
        self.assertLess(time.monotonic() - t0, 1.0)
        stall.close()
        # No descriptor is left behind (connections close within a moment).
        deadline = time.time() + 3
        while app.fds() > fds0 and time.time() < deadline:
            time.sleep(0.05)
        self.assertLessEqual(app.fds(), fds0)

    def test_99_clean_exit(self):
        """SIGTERM: every service drains and exits 0 with no sanitizer
        report (ASan's leak check runs at exit)."""
        codes = self.stop_apps()
        for key, code in codes.items():
            err = self.apps[key].stderr()
            self.assertEqual(code, 0, "%s exit status %r:\n%s" % (key, code, err[-3000:]))
            for pat in st.SANITIZER_PATTERNS:
                self.assertNotIn(pat, err, "%s:\n%s" % (key, err[-4000:]))


if __name__ == "__main__":
    st.main()
