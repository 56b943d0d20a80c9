#!/usr/bin/env python3
"""A small, real HTTP/1.1 upstream for the gateway's tests and benchmark.

    python3 httpd.py --port 0 --log FILE [--ready-file FILE] [--tls-cert PEM --tls-key PEM]

Listens on 127.0.0.1 (or --bind ADDRESS, e.g. a test network's bridge; port 0: an ephemeral one). Once listening it writes the port
and a newline to the ready file (FILE.tmp, then renamed, so a reader never sees half a
number) and prints "listening on ADDRESS:PORT". SIGTERM or SIGINT stops it, status 0;
with --parent-pid PID, so does PID ceasing to be its parent (HTTPTestServer passes it).
With --tls-cert and --tls-key it speaks HTTPS (TLS with that certificate), the same routes.

Every request, once its body is read and before it is answered, adds one JSON line to the
log: {"method", "path" (the raw request target, query included), "headers" (names as the
client sent them; repeated headers joined with ", "), "body_length", "client" (the
client's address), "time" (seconds since the epoch)}. That is what a test
checks to see what the gateway really sent upstream.

Routes match the path without its query; every route answers any method (HEAD gets the
headers only), so a test may POST to /usage or /status/500 too. Unknown paths: 404.

    /ok                   200 {"ok":true,"path","query"}
    /echo                 200 {"method","path","target","query","headers","body"}: what
                          arrived, so a test can check the secrets the gateway injects
                          never reach a worker. It answers as a real server may, so tests
                          can see whether a worker could undo what the server did:
                            format=html   the JSON HTML-escaped in a page (text/html)
                            escape=slash  "/" written "\/" (as PHP's json_encode does)
                            charset=C     the text encoded in charset C (any Python codec),
                                          also taken from Accept-Charset or Accept's charset=
                            ce=A,B        Content-Encoding A then B: gzip, x-gzip, deflate,
                                          identity, rot13 (a coding nobody knows); without
                                          it, gzip or deflate if Accept-Encoding asks
                            te=gzip       Transfer-Encoding: gzip, chunked
                            Range         a single bytes=A-B range is honoured: 206
                            reflect=1     each request header comes back as X-Echo-NAME:
                                          VALUE, and each token of its value as a header
                                          named X-Token-TOKEN
    /usage?tokens=N       200 {"usage":{"total_tokens":N}} and X-Cost: N (N: 10)
    /slow?ms=N            sleeps N ms (2000), then 200 {"slow":true}
    /wait?file=PATH       waits until PATH exists (at most 60 s), then 200 {"waited":true}:
                          a test decides when the answer leaves
    /status/CODE          that status, {"status":CODE}; 429 adds Retry-After: ?retry= (1);
                          204 and 304 have no body, as HTTP requires; 1xx is refused (400)
    /flaky?fail=N&key=K   the first N (1) requests with key K ("default") answer 503
                          {"ok":false,"attempt":i}, later ones 200 {"ok":true,"attempt":i}
    /reset                no answer: the connection is reset (SO_LINGER 0, then close)
    /big?mb=N             200, N MiB (100) of "x" in 64 KiB writes; stops quietly if the
                          client goes away
    /redirect?to=URL&code=C   C (302) with Location: URL (/ok)
    /bytes?n=N            200 application/octet-stream, N bytes (16) of 0..255 repeating
    /count                200 {"count":N}: requests received so far, this one included
    /hello                200 text/plain "hello\\n": the cheap route for throughput

Every answer but /reset's carries its Content-Length, so connections stay open.
"""

import argparse
import codecs
import gzip
import html
import json
import re
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import zlib
from urllib.parse import parse_qs, urlsplit

CHUNK = 64 * 1024
HELLO = b"hello\n"


class State:
    """What the handler threads share: the log, the request count, the flaky counters."""

    def __init__(self, log_path):
        self.lock = threading.Lock()
        # Unbuffered: each line leaves in one write, at once, as the test reads the log while
        # the server still runs.
        self.log = open(log_path, "ab", buffering=0) if log_path else None
        self.count = 0
        self.flaky = {}

    def record(self, method, target, headers, body_length, client):
        line = json.dumps(
            {"method": method, "path": target, "headers": headers, "body_length": body_length, "client": client,
             "time": time.time()},
            separators=(",", ":"),
        )
        with self.lock:
            self.count += 1
            if self.log:
                self.log.write(line.encode() + b"\n")

    def attempt(self, key):
        with self.lock:
            self.flaky[key] = self.flaky.get(key, 0) + 1
            return self.flaky[key]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "purser-httpd/1"
    # Buffered writes, so headers and a small body leave in one send; handle_one_request
    # flushes after each answer.
    wbufsize = -1

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    # MARK: - Reading and answering

    def dispatch(self):
        body = self.read_body()
        headers = {}
        for name, value in self.headers.items():
            headers[name] = headers[name] + ", " + value if name in headers else value
        self.server.state.record(self.command, self.path, headers, len(body or b""), self.client_address[0])
        if body is None:
            # The rest of the stream cannot be framed: answer, then close.
            self.close_connection = True
            return self.send_json(400, {"error": "bad body framing"})
        path, _, query = self.path.partition("?")
        if path == "/hello":
            # The throughput route: nothing else to do.
            return self.answer(200, HELLO, "text/plain")
        self.query = {name: values[0] for name, values in parse_qs(query, keep_blank_values=True).items()}
        route = ROUTES.get(path)
        if route is None and path.startswith("/status/"):
            route = Handler.status
        if route is None:
            return self.send_json(404, {"error": "not found"})
        route(self, path, headers, body)

    def read_body(self):
        """The request body (Content-Length or chunked), or None if it cannot be read."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            length = int(length)
        except ValueError:
            return None
        return self.rfile.read(length) if length >= 0 else None

    def read_chunked(self):
        body = bytearray()
        while True:
            try:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            except ValueError:
                return None
            if size == 0:
                # Trailers, up to the empty line.
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(body)
            body += self.rfile.read(size)
            self.rfile.readline()

    def answer(self, code, body=b"", content_type="application/json", headers=()):
        self.send_response(code)
        # HTTP forbids a body (and so a length) on 204; 304's length would describe another.
        bodyless = code in (204, 304)
        if not bodyless:
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if not bodyless and self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, code, value, headers=()):
        self.answer(code, json.dumps(value, separators=(",", ":")).encode(), headers=headers)

    def number(self, name, default):
        try:
            return int(self.query.get(name, default))
        except ValueError:
            return default

    def drop_connection(self):
        """Closes the handler's files on the socket and stops answering on it. Both hold
        references that keep the socket open; and the library flushes and closes wfile
        after the route, which must not fail (or, for data a closed peer never took, try
        again)."""
        self.close_connection = True
        for file in (self.wfile, self.rfile):
            try:
                file.close()
            except OSError:
                pass
        self.wfile = DISCARD

    # MARK: - Routes

    def ok(self, path, headers, body):
        self.send_json(200, {"ok": True, "path": path, "query": self.query})

    def echo(self, path, headers, body):
        value = {
            "method": self.command,
            "path": path,
            "target": self.path,
            "query": self.query,
            "headers": headers,
            "body": body.decode("utf-8", errors="replace"),
        }
        text = json.dumps(value, separators=(",", ":"))
        content_type = "application/json"
        if self.query.get("escape") == "slash":
            text = text.replace("/", "\\/")
        if self.query.get("format") == "html":
            text = "<html><body><pre>" + html.escape(text) + "</pre></body></html>"
            content_type = "text/html"
        charset = self.requested_charset(headers)
        data = text.encode(charset or "utf-8")
        if charset:
            content_type += "; charset=" + charset
        extra = [("Content-Type", content_type)]
        if self.query.get("reflect") == "1":
            extra += self.reflected(headers)
        codings = self.content_codings(headers)
        for coding in codings:
            data = CODINGS[coding](data)
        if codings:
            extra.append(("Content-Encoding", ", ".join(codings)))
        status, data = self.ranged(headers, data, extra)
        if self.query.get("te") == "gzip":
            return self.send_transfer_coded(status, gzip.compress(data), extra)
        self.send_response(status)
        for name, header in extra:
            self.send_header(name, header)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def requested_charset(self, headers):
        if "charset" in self.query:
            return self.query["charset"]
        lower = {name.lower(): header for name, header in headers.items()}
        if "accept-charset" in lower:
            return lower["accept-charset"].split(",")[0].split(";")[0].strip() or None
        found = re.search(r"charset=([^;,\s]+)", lower.get("accept", ""))
        return found.group(1) if found else None

    def content_codings(self, headers):
        if "ce" in self.query:
            return [coding.strip() for coding in self.query["ce"].split(",") if coding.strip()]
        accepted = {name.lower(): header for name, header in headers.items()}.get("accept-encoding", "").lower()
        for coding in ("gzip", "deflate"):
            if coding in accepted:
                return [coding]
        return []

    def ranged(self, headers, data, extra):
        """A single bytes=A-B (or A-, or -N) range, as most servers answer it."""
        lower = {name.lower(): header for name, header in headers.items()}
        found = re.fullmatch(r"bytes=(\d*)-(\d*)", lower.get("range", "").strip())
        if not found or not data or (not found.group(1) and not found.group(2)):
            return 200, data
        if found.group(1):
            first = int(found.group(1))
            last = min(int(found.group(2)) if found.group(2) else len(data) - 1, len(data) - 1)
        else:
            first, last = max(0, len(data) - int(found.group(2))), len(data) - 1
        if first > last:
            return 200, data
        extra.append(("Content-Range", f"bytes {first}-{last}/{len(data)}"))
        return 206, data[first : last + 1]

    def reflected(self, headers):
        reflected = []
        for name, header in headers.items():
            reflected.append(("X-Echo-" + name, header))
            for token in re.split(r"[\s,]+", header):
                if token and re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", token):
                    reflected.append(("X-Token-" + token, "1"))
        return reflected

    def send_transfer_coded(self, status, data, extra):
        self.send_response(status)
        for name, header in extra:
            self.send_header(name, header)
        self.send_header("Transfer-Encoding", "gzip, chunked")
        self.end_headers()
        if self.command != "HEAD":
            for start in range(0, len(data), 512):
                chunk = data[start : start + 512]
                self.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")

    def usage(self, path, headers, body):
        tokens = self.number("tokens", 10)
        self.send_json(200, {"usage": {"total_tokens": tokens}}, headers=[("X-Cost", str(tokens))])

    def wait(self, path, headers, body):
        gate = self.query.get("file", "")
        deadline = time.monotonic() + 60
        while gate and not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.005)
        self.send_json(200, {"waited": True})

    def slow(self, path, headers, body):
        time.sleep(max(0, self.number("ms", 2000)) / 1000)
        self.send_json(200, {"slow": True})

    def status(self, path, headers, body):
        try:
            code = int(path[len("/status/"):])
        except ValueError:
            code = 0
        if not 200 <= code <= 599:
            # A 1xx is not a final answer: the client would wait for another.
            return self.send_json(400, {"error": "status must be 200-599"})
        extra = [("Retry-After", self.query.get("retry", "1"))] if code == 429 else []
        self.send_json(code, {"status": code}, headers=extra)

    def flaky(self, path, headers, body):
        attempt = self.server.state.attempt(self.query.get("key", "default"))
        if attempt <= self.number("fail", 1):
            return self.send_json(503, {"ok": False, "attempt": attempt})
        self.send_json(200, {"ok": True, "attempt": attempt})

    def reset(self, path, headers, body):
        # Linger 0 makes close send RST instead of FIN. The socket only really closes once
        # the handler's buffered files, which hold references to it, are closed too.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.drop_connection()
        self.connection.close()

    def big(self, path, headers, body):
        total = max(0, self.number("mb", 100)) * 1024 * 1024
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(total))
        self.end_headers()
        if self.command == "HEAD":
            return
        chunk = b"x" * CHUNK
        try:
            while total > 0:
                self.wfile.write(chunk[: min(CHUNK, total)])
                total -= CHUNK
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.drop_connection()

    def redirect(self, path, headers, body):
        to = self.query.get("to", "/ok")
        self.send_json(self.number("code", 302), {"location": to}, headers=[("Location", to)])

    def raw_bytes(self, path, headers, body):
        n = max(0, self.number("n", 16))
        self.answer(200, bytes(i % 256 for i in range(n)), "application/octet-stream")

    def count(self, path, headers, body):
        with self.server.state.lock:
            count = self.server.state.count
        self.send_json(200, {"count": count})


class Discard:
    """Stands in for the handler's output file once the connection is gone, so the
    library's flush and close after the route has nothing left to fail on."""

    closed = False

    def write(self, data):
        return len(data)

    def flush(self):
        pass

    def close(self):
        pass


DISCARD = Discard()

# Content codings /echo applies on request; rot13 stands for a coding no client knows.
CODINGS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "identity": lambda data: data,
    "rot13": lambda data: codecs.encode(data.decode("latin-1"), "rot13").encode("latin-1"),
}

ROUTES = {
    "/ok": Handler.ok,
    "/echo": Handler.echo,
    "/usage": Handler.usage,
    "/slow": Handler.slow,
    "/wait": Handler.wait,
    "/flaky": Handler.flaky,
    "/reset": Handler.reset,
    "/big": Handler.big,
    "/redirect": Handler.redirect,
    "/bytes": Handler.raw_bytes,
    "/count": Handler.count,
}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # A client going away mid-answer is normal here (timeouts, /big); anything else
        # is a bug in this file and goes to stderr.
        error = sys.exc_info()[1]
        if isinstance(error, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, ssl.SSLError)):
            return
        super().handle_error(request, client_address)


def exit_with_parent(pid):
    """Exits when the parent dies (we are then someone else's child): a test process that
    is killed leaves no server behind."""
    while os.getppid() == pid:
        time.sleep(0.5)
    os._exit(0)


def main():
    parser = argparse.ArgumentParser(description="HTTP/1.1 test upstream for the Purser gateway")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bind", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--log", help="append one JSON line per request here")
    parser.add_argument("--ready-file", help="write the port here once listening")
    parser.add_argument("--parent-pid", type=int, help="exit once this process is no longer the parent")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    arguments = parser.parse_args()
    if arguments.parent_pid:
        threading.Thread(target=exit_with_parent, args=(arguments.parent_pid,), daemon=True).start()

    server = Server((arguments.bind, arguments.port), Handler)
    server.state = State(arguments.log)
    if arguments.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(arguments.tls_cert, arguments.tls_key)
        # The handshake in the handler's thread, not in accept: a client that never
        # finishes one holds up nobody else.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    port = server.server_address[1]

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # A child inherits its parent thread's blocked signals, and libdispatch's worker
    # threads (where Swift tasks run) block SIGTERM: started from one, we would never see it.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})

    if arguments.ready_file:
        with open(arguments.ready_file + ".tmp", "w") as ready:
            ready.write(f"{port}\n")
        os.replace(arguments.ready_file + ".tmp", arguments.ready_file)
    print(f"listening on {arguments.bind}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        # Handler threads are daemons: a /slow still sleeping does not hold up the exit.
        server.server_close()


if __name__ == "__main__":
    main()
