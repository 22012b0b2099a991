#!/usr/bin/python3
"""Holds N idle keep-alive connections open to HOST:PORT, each having
completed one request (so the proxy has parsed, forwarded and answered on
it, and keeps it as an idle keep-alive connection).

usage: idle_conns.py HOST PORT N PATH HOSTHEADER

Requests go out in waves of 64 connections so that the proxy's upstream
pool stays small: what is measured is the downstream connection's cost.
Prints "ready N" once all N are idle, then waits until stdin closes (or
reads a line), and exits, closing them all. Run by bench/run.py inside the
client network namespace with RLIMIT_NOFILE raised."""

import resource
import selectors
import socket
import sys
import time


def main():
    host, port, n, path, hosthdr = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))
    req = ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, hosthdr)).encode()
    socks = []
    deadline = time.time() + 60
    wave = 64
    sel = selectors.DefaultSelector()
    for start in range(0, n, wave):
        batch = []
        for _ in range(min(wave, n - start)):
            s = socket.create_connection((host, port), timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(req)
            s.setblocking(False)
            batch.append(s)
            sel.register(s, selectors.EVENT_READ, bytearray())
        pending = len(batch)
        while pending:
            if time.time() > deadline:
                print("timeout", flush=True)
                return 1
            for key, _ in sel.select(1.0):
                buf = key.data
                try:
                    d = key.fileobj.recv(65536)
                except BlockingIOError:
                    continue
                if not d:
                    print("closed by peer", flush=True)
                    return 1
                buf += d
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    continue
                clen = 0
                for line in bytes(buf[:i]).split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        clen = int(v)
                if len(buf) >= i + 4 + clen:
                    if not buf.startswith(b"HTTP/1.1 200"):
                        print("bad response %r" % bytes(buf[:40]), flush=True)
                        return 1
                    sel.unregister(key.fileobj)
                    pending -= 1
        socks.extend(batch)
    print("ready %d" % len(socks), flush=True)
    sys.stdin.readline()
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
