#!/usr/bin/python3
"""A tiny gRPC service for the example, with python3-grpcio and no
protobuf (messages are raw bytes):

    echo.py serve PORT NAME     answers /sinew.example.Echo/Hello with
                                "hello <request> from NAME"
    echo.py call TARGET AUTHORITY N
                                makes N calls on one channel, prints which
                                server answered each, and one failing call
"""
import sys
from concurrent import futures

import grpc

METHOD = "/sinew.example.Echo/Hello"


def ident(b):
    return b


def serve(port, name):
    def hello(req, ctx):
        if req == b"fail":
            ctx.abort(grpc.StatusCode.FAILED_PRECONDITION, "asked to fail")
        return b"hello %s from %s" % (req, name.encode())
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    handler = grpc.unary_unary_rpc_method_handler(hello, ident, ident)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "sinew.example.Echo", {"Hello": handler}),))
    server.add_insecure_port("127.0.0.1:%d" % port)
    server.start()
    server.wait_for_termination()


def call(target, authority, n):
    ch = grpc.insecure_channel(target, options=[("grpc.default_authority", authority)])
    hello = ch.unary_unary(METHOD)
    seen = {}
    for i in range(n):
        who = hello(b"call-%d" % i, timeout=5).decode().rsplit(" ", 1)[-1]
        seen[who] = seen.get(who, 0) + 1
    print("calls answered by:", ", ".join("%s %d" % kv for kv in sorted(seen.items())))
    try:
        hello(b"fail", timeout=5)
    except grpc.RpcError as e:
        print("a failing call:", e.code().name, "-", e.details())
    try:
        ch.unary_unary("/sinew.example.Missing/Call")(b"x", timeout=5)
    except grpc.RpcError as e:
        print("an unknown method:", e.code().name)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        call(sys.argv[2], sys.argv[3], int(sys.argv[4]))
