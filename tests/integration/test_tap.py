#!/usr/bin/python3
"""sinew tap and sinew top against real proxies: sinewd asks the chosen
proxies over the control link to tap, they send each matching finished
request back, and sinewd streams them to the CLI (GET /api/v1/tap).

- a request shows within 1 s of being sent; the path, method, status and
  direction filters hold (requests they exclude never show);
- credentials are redacted (authorization, cookie always; --redact more);
  bodies only with --bodies, and then the first bytes of both;
- the text output is linkerd's req/rsp/end; --max ends the stream;
- tap is refused without sinewd's tap token (401), with a wrong one (403),
  and the CLI says how to get it when it cannot read it;
- sinew top counts the requests per path;
- over mutual TLS the event says tls=true and names both identities."""

import json
import os
import queue
import stat
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh, start_cp_proxy  # noqa: E402
from test_mesh_identity import start as start_token_proxy  # noqa: E402

SINEW = os.path.join(st.BIN, "sinew")

BROKEN_VS = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - match:
    - uri:
        prefix: /broken
    fault:
      abort:
        percentage:
          value: 100
        httpStatus: 503
    route:
    - destination:
        host: reviews
  - route:
    - destination:
        host: reviews
"""


class Tap:
    """`sinew tap ...` running, its lines read as they come, each with the
    time it arrived."""

    def __init__(self, test, mesh, *args):
        self.lines = queue.Queue()
        self.p = subprocess.Popen([SINEW, "tap"] + list(args) + ["--server", "http://127.0.0.1:%d" % mesh.port],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        test.addCleanup(self.stop)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put((time.time(), line.rstrip("\n")))
        self.lines.put((time.time(), None))

    def next(self, timeout=10):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("sinew tap printed nothing in %s s; stderr: %s" % (timeout, self.stderr_now()))

    def next_json(self, timeout=10):
        at, line = self.next(timeout)
        if line is None:
            raise AssertionError("sinew tap ended (%s): %s" % (self.p.poll(), self.stderr_now()))
        return at, json.loads(line)

    def started(self):
        _, m = self.next_json(15)
        assert m["type"] == "start", m
        return m

    def stderr_now(self):
        if self.p.poll() is None or self.p.stderr.closed:
            return "(running)"
        return self.p.stderr.read()

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(10)
        self.t.join(5)
        self.p.stdout.close()
        self.p.stderr.close()


def sinew(mesh, *args, check=True, timeout=60):
    r = subprocess.run([SINEW] + list(args) + ["--server", "http://127.0.0.1:%d" % mesh.port],
                       capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("sinew %s: %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr))
    return r


def api_tap(mesh, auth=None):
    req = urllib.request.Request("http://127.0.0.1:%d/api/v1/tap?namespace=default" % mesh.port)
    if auth is not None:
        req.add_header("authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read(200)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def warm_up(test, client, host="reviews:9080"):
    for _ in range(100):
        if st.request(client.outbound_port, "GET", "/", host=host, timeout=5).status == 200:
            return
        time.sleep(0.1)
    test.fail("reviews never answered 200")


def fields(ev, key):
    return {k.lower(): v for k, v in ev.get(key, [])}


class TapPlaintext(unittest.TestCase):
    def setUp(self):
        self.mesh = Mesh(self)
        app = st.start_backend(self, "reviews", "v1")
        self.mesh.apply(st.service_yaml("reviews") + BROKEN_VS, "reviews.yaml")
        self.server = start_cp_proxy(self, self.mesh, outbound=False, inbound=True, app="127.0.0.1:%d" % app.port,
                                     args=["--service", "reviews", "--labels", "version=v1"])
        self.client = start_cp_proxy(self, self.mesh, args=["--service", "productpage"])
        warm_up(self, self.client)

    def get(self, path, method="GET", headers=None, body=None):
        return st.request(self.client.outbound_port, method, path, host="reviews:9080", headers=headers, body=body)

    def test_stream_filters_redaction_bodies_and_refusals(self):
        mesh = self.mesh
        token_path = os.path.join(mesh.dir, "tap.token")
        mode = stat.S_IMODE(os.stat(token_path).st_mode)
        self.assertEqual(mode, 0o600, oct(mode))
        with open(token_path) as f:
            token = f.read().strip()
        self.assertEqual(len(token), 64)

        # refused: no token, a wrong token
        code, body = api_tap(mesh)
        self.assertEqual(code, 401, body)
        self.assertIn("tap.token", body["error"])
        code, body = api_tap(mesh, "Bearer " + "0" * 64)
        self.assertEqual(code, 403, body)
        code, body = api_tap(mesh, "Basic " + token)
        self.assertEqual(code, 403, body)
        # the CLI, without a readable token
        r = sinew(mesh, "tap", "deploy/productpage", "--token-file", "/nonexistent/tap.token", "--max", "1",
                  check=False)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("cannot read the tap token /nonexistent/tap.token", r.stderr)
        r = sinew(mesh, "tap", "deploy/nosuch", "--max", "1", check=False)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("no connected proxy matches", r.stderr)
        r = sinew(mesh, "tap", "deploy/productpage", "--status", "abc", check=False)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("status", r.stderr)

        # a path filter; the token found through sinewd's data directory
        tap = Tap(self, mesh, "deploy/productpage", "-o", "json", "--path", "/tapme", "--duration", "30s")
        start = tap.started()
        self.assertEqual([p["workload"] for p in start["proxies"]], ["productpage"], start)
        time.sleep(0.3)   # the proxies have the tap once sinewd sent it (one link hop)
        self.assertEqual(self.get("/other").status, 200)
        sent = time.time()
        self.assertEqual(self.get("/tapme/1?x=1", headers={"Authorization": "Bearer secret-value",
                                                           "Cookie": "session=hush", "X-Seen": "yes"}).status, 200)
        at, m = tap.next_json()
        delay = at - sent
        print("tap: the event arrived %.0f ms after the request was sent" % (delay * 1000), flush=True)
        self.assertLess(delay, 1.0)
        self.assertEqual(m["type"], "event")
        self.assertEqual(m["proxy"]["workload"], "productpage")
        ev = m["event"]
        self.assertEqual(ev["path"], "/tapme/1?x=1")      # /other never showed
        self.assertEqual(ev["method"], "GET")
        self.assertEqual(ev["status"], 200)
        self.assertEqual(ev["direction"], "outbound")
        self.assertEqual(ev["destination"]["workload"].startswith("proxy-reviews"), True, ev)
        self.assertEqual(ev["destination"]["service"], "reviews.default.svc.cluster.local")
        self.assertFalse(ev["tls"])
        rq = fields(ev, "requestHeaders")
        self.assertEqual(rq["authorization"], "[redacted]")
        self.assertEqual(rq["cookie"], "[redacted]")
        self.assertEqual(rq["x-seen"], "yes")
        self.assertNotIn("secret-value", json.dumps(m))
        self.assertIn("content-type", fields(ev, "responseHeaders"))
        self.assertNotIn("requestBody", ev)          # no --bodies: no body
        self.assertNotIn("responseBody", ev)
        self.assertGreater(ev["durationMs"], 0)
        self.assertEqual(len(ev["requestId"]), 36)
        tap.stop()

        # method and status filters: only the POSTs answered 5xx
        tap = Tap(self, mesh, "deploy/productpage", "-o", "json", "--method", "POST", "--status", "5xx",
                  "--max", "2")
        tap.started()
        time.sleep(0.3)
        self.assertEqual(self.get("/broken/a").status, 503)                       # GET
        self.assertEqual(self.get("/ok", method="POST", body=b"x").status, 200)   # 200
        self.assertEqual(self.get("/broken/b", method="POST", body=b"x").status, 503)
        self.assertEqual(self.get("/broken/c", method="POST", body=b"x").status, 503)
        _, a = tap.next_json()
        _, b = tap.next_json()
        self.assertEqual([a["event"]["path"], b["event"]["path"]], ["/broken/b", "/broken/c"])
        self.assertEqual(a["event"]["sinewError"], "fault_abort")
        self.assertEqual(tap.p.wait(10), 0)           # --max 2 ended it

        # bodies only when asked; more headers redacted; the server side
        tap = Tap(self, mesh, "deploy/reviews", "-o", "json", "--direction", "inbound", "--bodies",
                  "--redact", "X-Api-Key", "--max", "1")
        tap.started()
        time.sleep(0.3)
        self.assertEqual(self.get("/echo", method="POST", headers={"X-Api-Key": "k-123", "Content-Type": "text/plain"},
                                  body=b"hello-body").status, 200)
        _, m = tap.next_json()
        ev = m["event"]
        self.assertEqual(ev["direction"], "inbound")
        self.assertEqual(m["proxy"]["workload"], "reviews-v1")   # its service and version label
        self.assertEqual(ev["requestBody"], "hello-body")
        self.assertIn("reviews", ev["responseBody"])   # the backend names itself
        self.assertEqual(fields(ev, "requestHeaders")["x-api-key"], "[redacted]")
        tap.stop()

        # the text form, as linkerd prints it
        tap = Tap(self, mesh, "deploy/productpage", "--max", "1")
        time.sleep(1.0)
        self.assertEqual(self.get("/text").status, 200)
        lines = [tap.next()[1] for _ in range(3)]
        self.assertTrue(lines[0].startswith("req id=productpage:1 proxy=out "), lines)
        self.assertIn(":method=GET :authority=reviews:9080 :path=/text", lines[0])
        self.assertTrue(lines[1].startswith("rsp ") and ":status=200" in lines[1], lines)
        self.assertTrue(lines[2].startswith("end ") and "response-length=" in lines[2], lines)
        self.assertEqual(tap.p.wait(10), 0)

    def test_top_counts_paths(self):
        mesh = self.mesh
        out = {}

        def run_top():
            out["r"] = sinew(mesh, "top", "deploy/productpage", "-o", "json", "--duration", "5s")
        t = threading.Thread(target=run_top)
        t.start()
        time.sleep(1.5)
        for _ in range(5):
            self.assertEqual(self.get("/a?q=1").status, 200)
        for _ in range(3):
            self.assertEqual(self.get("/b").status, 200)
        self.assertEqual(self.get("/broken/x").status, 503)
        t.join(30)
        rows = json.loads(out["r"].stdout)
        by_path = {r["path"]: r for r in rows}
        self.assertEqual(by_path["/a"]["count"], 5, rows)
        self.assertEqual(by_path["/b"]["count"], 3, rows)
        self.assertEqual(by_path["/broken/x"]["successRate"], 0.0, rows)
        self.assertEqual(rows[0]["path"], "/a")       # busiest first
        self.assertEqual(by_path["/a"]["source"], "productpage")
        self.assertLessEqual(by_path["/a"]["latencyMs"]["best"], by_path["/a"]["latencyMs"]["worst"])
        # not on a terminal, a top without an end is refused
        r = sinew(mesh, "top", "deploy/productpage", check=False)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("--duration or --max", r.stderr)


class TapMutualTLS(unittest.TestCase):
    def test_identities(self):
        mesh = Mesh(self, plaintext=False)
        app = st.start_backend(self, "reviews", "v1")
        mesh.apply(st.service_yaml("reviews"), "reviews.yaml")
        start_token_proxy(self, mesh, "reviews", inbound_app=app.port, labels="app=reviews,version=v1")
        client = start_token_proxy(self, mesh, "productpage")
        warm_up(self, client)
        tap = Tap(self, mesh, "ns/default", "-o", "json", "--max", "2", "--path", "/mtls")
        start = tap.started()
        self.assertEqual(sorted(p["workload"] for p in start["proxies"]), ["productpage", "reviews-v1"], start)
        time.sleep(0.3)
        self.assertEqual(st.request(client.outbound_port, "GET", "/mtls", host="reviews:9080").status, 200)
        evs = {}
        for _ in range(2):
            _, m = tap.next_json()
            evs[m["event"]["direction"]] = m["event"]
        out, inn = evs["outbound"], evs["inbound"]
        self.assertTrue(out["tls"] and inn["tls"], evs)
        self.assertEqual(out["destination"]["principal"], "spiffe://cluster.local/ns/default/sa/reviews")
        self.assertEqual(out["source"]["principal"], "spiffe://cluster.local/ns/default/sa/productpage")
        self.assertEqual(inn["source"]["principal"], "spiffe://cluster.local/ns/default/sa/productpage")
        self.assertEqual(inn["destination"]["principal"], "spiffe://cluster.local/ns/default/sa/reviews")
        self.assertEqual(out["requestId"], inn["requestId"])   # one request, seen from both sides
        # the leaves the proxies present, with their expiry (the dashboard's certificates view)
        for p in mesh.proxies():
            self.assertTrue(0 < p["leafExpiresInSeconds"] <= 24 * 3600, p)
            self.assertAlmostEqual(p["leafNotAfter"] - time.time(), p["leafExpiresInSeconds"], delta=60)


if __name__ == "__main__":
    unittest.main(verbosity=2)
