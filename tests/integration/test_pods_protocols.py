#!/usr/bin/python3
"""WebSocket and gRPC between pods (root): `sinew up`, then a WebSocket
echo app (python3-websockets) and a gRPC echo app (python3-grpcio, port
declared `--port 50051/grpc`) each in its pod behind a real sinew-proxy,
and a client pod whose traffic is captured. From the client pod: a
WebSocket session (1 MiB each way, close handshake relayed) and gRPC calls
(unary, server streaming, a status) by service name -- so the upgrade is
relayed over the sidecars' mutual TLS, and gRPC goes as HTTP/2 over it
(ALPN sinew/h2) to an app spoken to in HTTP/2."""

import os
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
        for name, code in (("ws_app.py", WS_APP), ("grpc_app.py", GRPC_APP)):
            path = os.path.join(cls.e.tmp, name)
            with open(path, "w") as f:
                f.write(code)
            os.chmod(path, 0o644)
        cls.start("wsecho", "9090/http", ["/usr/bin/python3", os.path.join(cls.e.tmp, "ws_app.py")])
        cls.start("grpcecho", "50051/grpc", ["/usr/bin/python3", os.path.join(cls.e.tmp, "grpc_app.py")])
        cls.start("client", None, ["sleep", "600"])
        for svc, p in cls.procs:
            cls.e.wait_ready(svc, p, timeout=40)
        cls.pods = {p["service"]: p["name"] for p in cls.e.ps()}
        time.sleep(1.0)   # the apps' own listeners

    @classmethod
    def start(cls, svc, port, cmd):
        out = os.path.join(cls.e.tmp, svc + ".out")
        err = os.path.join(cls.e.tmp, svc + ".err")
        argv = [SINEW, "run", "--service", svc, "--labels", "app=%s,version=v1" % svc,
                "--service-account", svc, "--server", cls.server, "--ready-timeout", "30",
                "--drain-timeout", "3"] + (["--port", port] if port else []) + ["--"] + cmd
        with open(out, "w") as fo, open(err, "w") as fe:
            p = st.spawn(argv, stdout=fo, stderr=fe, env=cls.e.env())
        p.out_path, p.err_path = out, err
        cls.procs.append((svc, p))

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


if __name__ == "__main__":
    st.main()
