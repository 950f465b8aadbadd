"""A real gRPC server and client for meshlog's end-to-end tests (tests/tests/grpc.rs).

grpcio with generic handlers: messages are raw bytes (no .proto, no generated stubs), so the only
dependency is grpcio itself (scripts/lib.sh `ensure_grpcio` installs it into .venv).

    python probe.py serve                 prints "listening on 127.0.0.1:PORT", serves until killed
    python probe.py ws-serve              a WebSocket echo server (stdlib only): answers an upgrade
                                          with 101, then echoes raw bytes until the peer closes
    python probe.py call ADDR CASE:RID... runs each client CASE through ADDR (Envoy), in order, with
                                          x-request-id RID; prints one JSON line per call with what
                                          the client saw: {"case", "rid", "code", "messages",
                                          "bytes", "details", "trailers" (names, on an error)}

Service meshlog.test.v1.Probe:
    Echo             unary: answers RESPONSE_BYTES bytes
    Deny             unary: PERMISSION_DENIED before any message (a trailers-only answer)
    FailAfterMessage server stream: one message, then INTERNAL in the trailers (with a trailer
                     x-backend-secret)
    Stream           server stream: "N,SIZE,SLEEP_MS" -> N messages of SIZE bytes
    Upload           client stream: answers one message of 8 bytes
    Chat             bidi: echoes each message
    Slow             unary: waits until cancelled (at most 20 s), then answers
"""

import base64
import hashlib
import json
import socket
import sys
import threading
import time
from concurrent import futures

import grpc

SERVICE = "meshlog.test.v1.Probe"
RESPONSE_BYTES = 1000
DENY_MESSAGE = "caller not allowed; ask jo.doe@example.com"
FAIL_MESSAGE = "backend lost its state"


def _ident(b):
    return b


def echo(request, context):
    return b"e" * RESPONSE_BYTES


def deny(request, context):
    context.abort(grpc.StatusCode.PERMISSION_DENIED, DENY_MESSAGE)


def fail_after_message(request, context):
    yield b"m" * 100
    # A trailer no allowlist names: it must never reach the record.
    context.set_trailing_metadata((("x-backend-secret", "s3cr3t-trailer"),))
    context.abort(grpc.StatusCode.INTERNAL, FAIL_MESSAGE)


def stream(request, context):
    n, size, sleep_ms = (int(x) for x in request.decode().split(","))
    for _ in range(n):
        if not context.is_active():
            return
        yield b"s" * size
        time.sleep(sleep_ms / 1000.0)


def upload(request_iterator, context):
    total = sum(len(m) for m in request_iterator)
    return total.to_bytes(8, "big")


def chat(request_iterator, context):
    for m in request_iterator:
        yield m


def slow(request, context):
    end = time.monotonic() + 20
    while context.is_active() and time.monotonic() < end:
        time.sleep(0.02)
    return b"late"


HANDLERS = {
    "Echo": grpc.unary_unary_rpc_method_handler(echo, _ident, _ident),
    "Deny": grpc.unary_unary_rpc_method_handler(deny, _ident, _ident),
    "FailAfterMessage": grpc.unary_stream_rpc_method_handler(fail_after_message, _ident, _ident),
    "Stream": grpc.unary_stream_rpc_method_handler(stream, _ident, _ident),
    "Upload": grpc.stream_unary_rpc_method_handler(upload, _ident, _ident),
    "Chat": grpc.stream_stream_rpc_method_handler(chat, _ident, _ident),
    "Slow": grpc.unary_unary_rpc_method_handler(slow, _ident, _ident),
}


def serve():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, HANDLERS),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B85"


def _ws_conn(conn):
    with conn:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        key = ""
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        conn.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        if rest:
            conn.sendall(rest)
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)


def ws_serve():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    print(f"listening on 127.0.0.1:{srv.getsockname()[1]}", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=_ws_conn, args=(conn,), daemon=True).start()


def _path(method):
    return f"/{SERVICE}/{method}"


def call(addr, case, rid):
    """Runs one client case; returns what the client saw."""
    md = (("x-request-id", rid),)
    seen = {"case": case, "rid": rid, "code": "OK", "messages": 0, "bytes": 0, "details": "",
            "trailers": []}

    def got(msg):
        seen["messages"] += 1
        seen["bytes"] += len(msg)

    with grpc.insecure_channel(addr) as ch:
        uu = lambda m: ch.unary_unary(_path(m), _ident, _ident)
        us = lambda m: ch.unary_stream(_path(m), _ident, _ident)
        try:
            if case == "unary":
                got(uu("Echo")(b"q" * 100, metadata=md, timeout=20))
            elif case == "deny":
                got(uu("Deny")(b"q", metadata=md, timeout=20))
            elif case == "fail_after_message":
                for m in us("FailAfterMessage")(b"q", metadata=md, timeout=20):
                    got(m)
            elif case == "server_stream":
                for m in us("Stream")(b"50,200,5", metadata=md, timeout=20):
                    got(m)
            elif case == "client_stream":
                reqs = iter([b"u" * 100] * 20)
                got(ch.stream_unary(_path("Upload"), _ident, _ident)(reqs, metadata=md, timeout=20))
            elif case == "bidi":
                reqs = iter([b"c" * 50] * 10)
                for m in ch.stream_stream(_path("Chat"), _ident, _ident)(reqs, metadata=md, timeout=20):
                    got(m)
            elif case == "cancel":
                # A long server stream the client abandons after two messages: RST_STREAM.
                it = us("Stream")(b"1000,200,20", metadata=md, timeout=30)
                got(next(it))
                got(next(it))
                it.cancel()
                for m in it:
                    got(m)
            elif case == "deadline":
                # Envoy honours grpc-timeout (minus an offset), so it answers DEADLINE_EXCEEDED
                # before this client's own deadline fires.
                got(uu("Slow")(b"q", metadata=md, timeout=3))
            else:
                raise SystemExit(f"unknown case {case!r}")
        except grpc.RpcError as e:
            seen["code"] = e.code().name
            seen["details"] = e.details() or ""
            seen["trailers"] = sorted(k for k, _ in (e.trailing_metadata() or ()))
    return seen


def main(argv):
    if len(argv) >= 2 and argv[1] == "serve":
        serve()
    elif len(argv) >= 2 and argv[1] == "ws-serve":
        ws_serve()
    elif len(argv) >= 4 and argv[1] == "call":
        for spec in argv[3:]:
            case, _, rid = spec.partition(":")
            print(json.dumps(call(argv[2], case, rid)), flush=True)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
