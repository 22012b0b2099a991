#!/usr/bin/python3
"""WebSocket and gRPC between pods (root): `sinew up`, then a WebSocket
echo app (python3-websockets) and a gRPC echo app (python3-grpcio, port
declared `--port 50051/grpc`) each in its pod behind a real sinew-proxy,
and a client pod whose traffic is captured. From the client pod: a
WebSocket session (1 MiB each way, close handshake relayed) and gRPC calls
(unary, server streaming, a status) by service name -- so the upgrade is
relayed over the sidecars' mutual TLS, and gRPC goes as HTTP/2 over it
(ALPN sinew/h2) to an app spoken to in HTTP/2. And TLS from the app:
`curl --http2` over TLS to an HTTP/2 app (nghttpd) and to an HTTP/1.1 app
(python's ssl), and `nghttp` with many streams: the sidecars never hold
the app's key, so its TLS goes through as opaque TCP inside the mesh's
mutual TLS, and ALPN is agreed end to end (h2 with nghttpd, http/1.1
with the HTTP/1.1 app), as Istio's sidecars do with TLS they don't
originate."""

import os
import re
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_pods import Env, SUFFIX, SINEW, netns_list, sh  # noqa: E402

WS_APP = r'''
import asyncio, websockets
async def echo(ws, path=None):
    async for m in ws:
        await ws.send(m)
async def main():
    async with websockets.serve(echo, "0.0.0.0", 9090, max_size=4 << 20):
        await asyncio.Future()
asyncio.run(main())
'''

GRPC_APP = r'''
from concurrent import futures
import grpc
ident = lambda b: b
def unary(req, ctx):
    if req == b"fail":
        ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, "asked to fail")
    return b"echo:" + req
def stream(req, ctx):
    for i in range(int(req)):
        yield b"msg-%d" % i
s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
s.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.Echo", {
    "Unary": grpc.unary_unary_rpc_method_handler(unary, ident, ident),
    "Stream": grpc.unary_stream_rpc_method_handler(stream, ident, ident)}),))
s.add_insecure_port("0.0.0.0:50051")
s.start()
s.wait_for_termination()
'''

H1_TLS_APP = r'''
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"h1 over tls " + self.path.encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
ctx.set_alpn_protocols(["http/1.1"])
srv = http.server.ThreadingHTTPServer(("0.0.0.0", 8444), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
'''

WS_CLIENT = r'''
import asyncio, os, websockets
async def main():
    async with websockets.connect("ws://wsecho:9090/chat", max_size=4 << 20, open_timeout=10) as ws:
        big = os.urandom(1 << 20)
        await ws.send(big)
        got = await asyncio.wait_for(ws.recv(), 20)
        await ws.send("hello")
        hello = await asyncio.wait_for(ws.recv(), 20)
        await ws.close(code=4001, reason="bye")
        print("WS", got == big, hello, ws.close_code)
asyncio.run(main())
'''

GRPC_CLIENT = r'''
import grpc
ch = grpc.insecure_channel("grpcecho:50051")
u = ch.unary_unary("/t.Echo/Unary")
print("UNARY", u(b"hi", timeout=10).decode())
print("STREAM", len(list(ch.unary_stream("/t.Echo/Stream")(b"20", timeout=10))))
try:
    u(b"fail", timeout=10)
except grpc.RpcError as e:
    print("STATUS", e.code().name, e.details())
'''


class PodProtocols(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise AssertionError("needs root: network namespaces and iptables (CI runs as root)")
        cls.t = unittest.TestCase()
        cls.e = Env(cls.t)
        cls.procs = []
        cls.addClassCleanup(cls.teardown)
        cls.mesh = "sn-pp-" + SUFFIX
        api = "127.0.0.1:%d" % st.free_port()
        cls.server = "http://" + api
        rc, out, err = cls.e.sinew("up", "--api", api, "--mesh", "127.0.0.1:%d" % st.free_port(),
                                   "--mesh-netns", cls.mesh, "--pod-cidr", "10.69.0.0/24")
        assert rc == 0, err
        for name, code in (("ws_app.py", WS_APP), ("grpc_app.py", GRPC_APP), ("h1_tls_app.py", H1_TLS_APP)):
            path = os.path.join(cls.e.tmp, name)
            with open(path, "w") as f:
                f.write(code)
            os.chmod(path, 0o644)
        cls.start("wsecho", "9090/http", ["/usr/bin/python3", os.path.join(cls.e.tmp, "ws_app.py")])
        cls.start("grpcecho", "50051/grpc", ["/usr/bin/python3", os.path.join(cls.e.tmp, "grpc_app.py")])
        # One certificate for both TLS apps; the client trusts it.
        cls.key = os.path.join(cls.e.tmp, "app.key")
        cls.cert = os.path.join(cls.e.tmp, "app.crt")
        sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", cls.key, "-out", cls.cert, "-days", "1", "-subj", "/CN=h2tls",
            "-addext", "subjectAltName=DNS:h2tls,DNS:h1tls"])
        docs = os.path.join(cls.e.tmp, "htdocs")
        os.makedirs(docs)
        for i in range(8):
            with open(os.path.join(docs, "f%d.txt" % i), "w") as f:
                f.write("file %d\n" % i * 100)
        for path in (cls.key, cls.cert, docs, os.path.join(cls.e.tmp, "h1_tls_app.py")):
            os.chmod(path, 0o755 if os.path.isdir(path) else 0o644)
        cls.start("h2tls", "8443/https", ["nghttpd", "--htdocs", docs, "8443", cls.key, cls.cert])
        cls.start("h1tls", "8444/https", ["/usr/bin/python3", os.path.join(cls.e.tmp, "h1_tls_app.py"),
                                          cls.cert, cls.key])
        cls.start("client", None, ["sleep", "600"])
        for svc, p in cls.procs:
            cls.e.wait_ready(svc, p, timeout=40)
        cls.pods = {p["service"]: p["name"] for p in cls.e.ps()}
        time.sleep(1.0)   # the apps' own listeners

    @classmethod
    def start(cls, svc, port, cmd):
        cls.procs.append((svc, cls.e.run_joined(cls.server, svc, port, cmd)))

    @classmethod
    def teardown(cls):
        for _, p in cls.procs:
            st.stop_process(p)
        rc, out, err = cls.e.sinew("down")
        assert rc == 0, err
        left = netns_list()
        assert [n for n in list(getattr(cls, "pods", {}).values()) + [cls.mesh] if n in left] == [], left
        cls.t.doCleanups()

    def in_client(self, code):
        return sh(["ip", "netns", "exec", self.pods["client"], "/usr/bin/python3", "-c", code], timeout=60)

    def metrics(self, svc):
        r = sh(["ip", "netns", "exec", self.pods[svc], "curl", "-sS", "--max-time", "5",
                "http://127.0.0.1:15020/metrics"])
        return st.parse_metrics(r.stdout)

    def test_websocket_between_pods(self):
        r = self.in_client(WS_CLIENT)
        self.assertIn("WS True hello 4001", r.stdout, r.stdout + r.stderr)
        m = self.metrics("wsecho")
        self.assertGreaterEqual(st.metric_sum(m, "sinew_requests_total", response_code="101",
                                              connection_security_policy="mutual_tls"), 1)
        self.assertGreaterEqual(st.metric_sum(self.metrics("client"), "sinew_upgraded_connections_total"), 1)

    def test_grpc_between_pods(self):
        r = self.in_client(GRPC_CLIENT)
        out = r.stdout + r.stderr
        self.assertIn("UNARY echo:hi", out)
        self.assertIn("STREAM 20", out)
        self.assertIn("STATUS FAILED_PRECONDITION asked to fail", out)
        m = self.metrics("grpcecho")
        self.assertGreaterEqual(st.metric_sum(m, "sinew_requests_total", request_protocol="grpc",
                                              grpc_response_status="0",
                                              connection_security_policy="mutual_tls"), 2)
        self.assertGreaterEqual(st.metric_sum(m, "sinew_downstream_http2_connections_total"), 1)

    def in_client_argv(self, argv):
        return sh(["ip", "netns", "exec", self.pods["client"]] + argv, timeout=60)

    def test_tls_from_the_app_h2_and_h1(self):
        before = st.metric_sum(self.metrics("client"), "sinew_tcp_outbound_mtls_connections_total")
        fmt = "%{http_version} %{http_code} "
        r = self.in_client_argv(["curl", "-sS", "--max-time", "10", "--http2", "--cacert", self.cert,
                                 "-w", fmt, "-o", "/dev/null", "https://h2tls:8443/f1.txt"])
        self.assertEqual(r.stdout.strip(), "2 200", r.stdout + r.stderr)
        r = self.in_client_argv(["curl", "-sS", "--max-time", "10", "--http2", "--cacert", self.cert,
                                 "-w", fmt, "https://h1tls:8444/hello"])
        self.assertEqual(r.stdout, "h1 over tls /hello1.1 200 ", r.stdout + r.stderr)
        # nghttp: one connection, eight streams, over the sidecars' mTLS.
        urls = ["https://h2tls:8443/f%d.txt" % i for i in range(8)]
        r = self.in_client_argv(["nghttp", "-v", "-n", "-t", "10"] + urls)
        out = r.stdout + r.stderr
        self.assertEqual(out.count("Connected"), 1, out)
        self.assertIn("The negotiated protocol: h2", out)
        ids = set(re.findall(r"recv DATA frame <length=700, flags=0x01, stream_id=(\d+)>", out))
        self.assertEqual(len(ids), 8, out)
        after = st.metric_sum(self.metrics("client"), "sinew_tcp_outbound_mtls_connections_total")
        self.assertEqual(after - before, 3, "each TLS connection is one opaque connection in mutual TLS")


if __name__ == "__main__":
    st.main()
