#!/usr/bin/env python3
"""Loopback peers for the net.* tests, built on Python's standard library and
python3-websockets (Debian). Each mode binds 127.0.0.1 on a free port, prints
"PORT <n>" and serves until killed.

  http [--tls CERT KEY]   http.server: /data (JSON), /big?bytes=N, /echo (any
                          method: JSON of method, headers, body length and
                          body), /slow (never answers), /reset (promises 1 MiB,
                          sends 64 KiB, then resets the connection)
  ws [--tls CERT KEY]     websockets echo server (text and binary); on /bye it
                          says "bye" and closes cleanly (1000)
  ws-reset                completes the WebSocket upgrade, sends half a frame, resets
  silent                  accepts TCP connections and never says a word
  tcp-echo                echoes every byte back
  tcp-reset               sends "partial", then resets the connection
  tcp-flood BYTES         sends BYTES bytes to each client, then waits
  tcp-client PORT         connects to PORT, prints "GOT <line>" for each line,
                          sends "hi from python\\n" after the first one
  tcp-sink PORT           connects to PORT, reads to EOF, prints "BYTES <n> SHA256 <hex>"
"""
import asyncio
import base64
import hashlib
import json
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def announce(port):
    print(f"PORT {port}", flush=True)


def reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def tls_context(argv):
    if "--tls" not in argv:
        return None
    i = argv.index("--tls")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(argv[i + 1], argv[i + 2])
    return ctx


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="application/json", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Peer", "python-http.server")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if url.path == "/data":
            self.reply(200, json.dumps({"name": "nshost", "n": 42, "tags": ["a", "b"]}).encode())
        elif url.path == "/big":
            n = int(parse_qs(url.query)["bytes"][0])
            pattern = bytes(range(256))
            self.reply(200, (pattern * (n // 256 + 1))[:n], "application/octet-stream")
        elif url.path == "/echo":
            out = {"method": self.command, "headers": {k.lower(): v for k, v in self.headers.items()},
                   "length": len(body), "body": body.decode("latin-1") if len(body) < 4096 else "",
                   "sha256": hashlib.sha256(body).hexdigest()}
            self.reply(200, json.dumps(out).encode(), extra={"Allow": "GET, POST, PUT, PATCH, DELETE, OPTIONS"})
        elif url.path == "/redirect":
            self.reply(302, b"", extra={"Location": parse_qs(url.query)["to"][0]})
        elif url.path == "/slow":
            time.sleep(3600)
        elif url.path == "/reset":
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            self.wfile.write(b"x" * 65536)
            self.wfile.flush()
            reset(self.connection)
            self.close_connection = True
        else:
            self.reply(404, b'{"error":"not found"}')

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def serve_http(argv):
    server = Server(("127.0.0.1", 0), Handler)
    ctx = tls_context(argv)
    if ctx:
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    announce(server.server_address[1])
    server.serve_forever()


def serve_ws(argv):
    import websockets

    async def echo(ws, path=None):
        try:
            if ws.path == "/bye":
                await ws.send("bye")
                await ws.close(1000, "done")
                return
            async for message in ws:
                await ws.send(message)
        except websockets.ConnectionClosed:
            pass

    async def main():
        async with websockets.serve(echo, "127.0.0.1", 0, ssl=tls_context(argv), max_size=None) as server:
            announce(server.sockets[0].getsockname()[1])
            await asyncio.Future()

    asyncio.run(main())


def tcp_server(handle):
    class H(socketserver.BaseRequestHandler):
        def handle(self):
            handle(self.request)

    class S(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True
        request_queue_size = 256

    server = S(("127.0.0.1", 0), H)
    announce(server.server_address[1])
    server.serve_forever()


def ws_reset(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return
        data += chunk
    key = [l.split(b":", 1)[1].strip() for l in data.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key")][0]
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    # A text frame announcing 100 bytes, of which only 10 arrive.
    sock.sendall(bytes([0x81, 100]) + b"0123456789")
    time.sleep(0.2)
    reset(sock)


def echo(sock):
    while True:
        data = sock.recv(65536)
        if not data:
            return
        sock.sendall(data)


def tcp_reset(sock):
    sock.sendall(b"partial")
    time.sleep(0.2)
    reset(sock)


def silent(sock):
    while sock.recv(65536):
        pass


def flood(n):
    def handle(sock):
        chunk = b"f" * 65536
        sent = 0
        try:
            while sent < n:
                sock.sendall(chunk[: min(len(chunk), n - sent)])
                sent += min(len(chunk), n - sent)
            silent(sock)
        except OSError:
            pass
    return handle


def tcp_client(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = sock.makefile("rb")
    first = True
    for line in f:
        print("GOT " + line.decode().rstrip("\n"), flush=True)
        if first:
            sock.sendall(b"hi from python\n")
            first = False


def tcp_sink(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    digest, total = hashlib.sha256(), 0
    while True:
        data = sock.recv(65536)
        if not data:
            break
        digest.update(data)
        total += len(data)
    print(f"BYTES {total} SHA256 {digest.hexdigest()}", flush=True)


def main():
    mode = sys.argv[1]
    if mode == "http":
        serve_http(sys.argv)
    elif mode == "ws":
        serve_ws(sys.argv)
    elif mode == "ws-reset":
        tcp_server(ws_reset)
    elif mode == "silent":
        tcp_server(silent)
    elif mode == "tcp-echo":
        tcp_server(echo)
    elif mode == "tcp-reset":
        tcp_server(tcp_reset)
    elif mode == "tcp-flood":
        tcp_server(flood(int(sys.argv[2])))
    elif mode == "tcp-client":
        tcp_client(int(sys.argv[2]))
    elif mode == "tcp-sink":
        tcp_sink(int(sys.argv[2]))
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
