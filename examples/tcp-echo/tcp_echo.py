#!/usr/bin/python3
"""A TCP echo server for the TCP examples: on port 9000, answers each
connection's first line prefixed with its version (argv[1]), then closes
-- as Istio's tcp-echo sample does."""
import socket
import sys
import threading

PREFIX = (sys.argv[1] if len(sys.argv) > 1 else "one").encode()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000))
s.listen(64)


def one(c):
    with c:
        f = c.makefile("rwb")
        f.write(PREFIX + b" " + f.readline())
        f.flush()


while True:
    conn, _ = s.accept()
    threading.Thread(target=one, args=(conn,), daemon=True).start()
