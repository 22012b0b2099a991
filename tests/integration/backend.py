#!/usr/bin/python3
"""A real HTTP/1.1 backend standing in for a bookinfo service.

    backend.py --port P --service NAME --version V [--log FILE] [--delay-ms N]

--delay-ms N delays every (non-control) response by N ms, making this
endpoint a slow one.

--port 0 picks a free port; the backend prints "LISTENING <port>" on stdout
once it accepts connections.

Every response (except HEAD, 204 and 304) carries a JSON body
    {"service", "version", "method", "path", "headers": {...}, "body_len",
     "body_sha256"}
unless size=N asks for N bytes of a fixed pattern instead. Headers
x-backend-service and x-backend-version are on every response.

Query parameters:
    status=N        respond with status N
    delay_ms=N      sleep N ms before responding
    size=N          body of N bytes (pattern "0123456789abcdef" repeated)
    chunked=1       chunked response (several chunks)
    close=1         Connection: close, then close
    drop=1          read the request, then close without any response (RST)
    partial=1       send the head and half the body, then reset the connection
    partial=fin     send the head and half the body, then close it cleanly (FIN)
    fail_first=N    with request header x-fail-key: K, the first N requests
                    with that key get fail_status (default 503)
    slow_first=N    with x-fail-key: K, the first N requests with that key are
                    delayed slow_ms (default 2000) ms
    header.NAME=V   add response header NAME: V
    bighead=N       add a response header X-Big of N bytes

Control paths (not counted):
    GET /__requests   {"requests": n, "connections": m, "bad": b}
    GET /__log        the last 20000 request records
    GET /__reset      zero the counters and the log
"""

import argparse
import hashlib
import json
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATTERN = b"0123456789abcdef"
LOG_KEEP = 20000  # request records kept for /__log


class State:
    def __init__(self, service, version, log_path):
        self.service = service
        self.version = version
        self.lock = threading.Lock()
        self.requests = 0
        self.connections = 0
        self.bad = 0
        self.log = []
        self.fail_counts = {}
        self.log_file = open(log_path, "a", buffering=1) if log_path else None

    def record(self, rec):
        with self.lock:
            self.requests += 1
            self.log.append(rec)
            if len(self.log) > LOG_KEEP:
                del self.log[:-LOG_KEEP]
            if self.log_file:
                self.log_file.write(json.dumps(rec) + "\n")

    def reset(self):
        with self.lock:
            self.requests = 0
            self.connections = 0
            self.bad = 0
            self.log = []
            self.fail_counts = {}


def pattern_body(n):
    reps = n // len(PATTERN) + 1
    return (PATTERN * reps)[:n]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sinew-test-backend"
    sys_version = ""
    timeout = 120  # an idle keep-alive connection is dropped after this

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        st = self.server.state
        with st.lock:
            st.connections += 1

    def log_message(self, fmt, *args):
        pass

    def send_error(self, code, message=None, explain=None):
        # A request the backend could not parse still reached it: count it
        # as received, so "the backend received nothing" tests see it.
        st = self.server.state
        with st.lock:
            st.bad += 1
            st.requests += 1
        body = ("backend rejected: %d %s\n" % (code, message or "")).encode()
        self.close_connection = True
        try:
            self.wfile.write(
                b"HTTP/1.1 %d Bad\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (code, len(body), body))
        except OSError:
            pass

    # -- request body ---------------------------------------------------

    def read_body(self):
        te = self.headers.get_all("Transfer-Encoding") or []
        if any("chunked" in v.lower() for v in te):
            parts = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("eof in chunk size")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                data = self.rfile.read(size)
                if len(data) != size:
                    raise ConnectionError("eof in chunk")
                parts.append(data)
                self.rfile.readline(3)
            return b"".join(parts)
        cl = self.headers.get("Content-Length")
        if cl:
            n = int(cl)
            data = self.rfile.read(n)
            if len(data) != n:
                raise ConnectionError("eof in body")
            return data
        return b""

    # -- dispatch ---------------------------------------------------------

    def do_GET(self):
        self.handle_any()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET

    def handle_control(self, path):
        st = self.server.state
        self.read_body()
        with st.lock:
            if path == "/__requests":
                obj = {"requests": st.requests, "connections": st.connections, "bad": st.bad}
            elif path == "/__log":
                obj = list(st.log)
            elif path == "/__reset":
                obj = {"ok": True}
            else:
                obj = {"error": "unknown control path"}
        if path == "/__reset":
            st.reset()
        body = json.dumps(obj).encode()
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body))

    def handle_any(self):
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        if path.startswith("/__"):
            return self.handle_control(path)
        q = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        try:
            body = self.read_body()
        except (ConnectionError, ValueError):
            with st.lock:
                st.bad += 1
                st.requests += 1
            self.close_connection = True
            return
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = headers[k] + "," + v if k in headers else v
        rec = {
            "service": st.service,
            "version": st.version,
            "method": self.command,
            "path": self.path,
            "http_version": self.request_version,
            "headers": headers,
            "header_list": [[k, v] for k, v in self.headers.items()],
            "body_len": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "time": time.time(),
        }
        st.record(rec)

        if q.get("drop") == "1":
            self.abort_connection()
            return
        delay = int(q.get("delay_ms", self.server.delay_ms))
        slow_key = self.headers.get("x-fail-key")
        if slow_key and "slow_first" in q:
            with st.lock:
                seen = st.fail_counts.get("slow:" + slow_key, 0)
                st.fail_counts["slow:" + slow_key] = seen + 1
            if seen < int(q["slow_first"]):
                delay = int(q.get("slow_ms", "2000"))
        if delay:
            time.sleep(min(delay, 60000) / 1000.0)

        status = int(q.get("status", "200"))
        fail_key = self.headers.get("x-fail-key")
        if fail_key and "fail_first" in q:
            with st.lock:
                seen = st.fail_counts.get(fail_key, 0)
                st.fail_counts[fail_key] = seen + 1
            if seen < int(q["fail_first"]):
                status = int(q.get("fail_status", "503"))

        if "size" in q:
            resp_body = pattern_body(int(q["size"]))
            ctype = b"application/octet-stream"
        else:
            resp_body = json.dumps({k: rec[k] for k in
                                    ("service", "version", "method", "path", "headers",
                                     "body_len", "body_sha256", "http_version")}).encode()
            ctype = b"application/json"
        no_body = self.command == "HEAD" or status in (204, 304) or 100 <= status < 200
        close = q.get("close") == "1"
        chunked = q.get("chunked") == "1" and not no_body

        head = [b"HTTP/1.1 %d %s" % (status, reason(status).encode()),
                b"Content-Type: " + ctype,
                b"X-Backend-Service: " + st.service.encode(),
                b"X-Backend-Version: " + st.version.encode()]
        for k, v in q.items():
            if k.startswith("header."):
                head.append(k[7:].encode() + b": " + v.encode())
        if "bighead" in q:
            head.append(b"X-Big: " + b"b" * int(q["bighead"]))
        if chunked:
            head.append(b"Transfer-Encoding: chunked")
        elif status != 204 and not (100 <= status < 200):
            # HEAD gets the Content-Length a GET would have had.
            head.append(b"Content-Length: %d" % len(resp_body))
        if close:
            head.append(b"Connection: close")
            self.close_connection = True
        out = b"\r\n".join(head) + b"\r\n\r\n"

        if q.get("partial") == "head":
            # The head and then the end, in one segment (the cork holds
            # the head until shutdown sends it with the FIN): a proxy
            # sees both at once.
            self.close_connection = True
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            self.wfile.write(out)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            return
        if "head_first_ms" in q:
            # A stream: the head now, the body much later.
            self.wfile.write(out)
            self.wfile.flush()
            time.sleep(min(int(q["head_first_ms"]), 10000) / 1000.0)
            self.wfile.write(resp_body)
            return
        if q.get("partial") in ("1", "fin"):
            self.wfile.write(out + resp_body[:len(resp_body) // 2])
            if q["partial"] == "fin":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_WR)
            else:
                self.abort_connection()
            return
        if no_body:
            self.wfile.write(out)
        elif chunked:
            pieces = [resp_body[i:i + 7000] for i in range(0, len(resp_body), 7000)] or []
            self.wfile.write(out)
            for p in pieces:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(out + resp_body)

    def abort_connection(self):
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass


def reason(status):
    from http import HTTPStatus
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--service", required=True)
    ap.add_argument("--version", default="v1")
    ap.add_argument("--log", default=None)
    ap.add_argument("--delay-ms", type=int, default=0)
    a = ap.parse_args()
    srv = Server((a.host, a.port), Handler)
    srv.delay_ms = a.delay_ms
    srv.state = State(a.service, a.version, a.log)
    print("LISTENING %d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
