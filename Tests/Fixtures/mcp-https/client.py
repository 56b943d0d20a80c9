#!/usr/bin/python3
"""An MCP stdio server whose tools reach HTTPS through the run's egress proxy (HTTPS_PROXY),
as any tool that fetches URLs itself would: standard library only.

  get      {url, ca}: urllib, which tunnels through the proxy with CONNECT, trusting only
           the PEM certificate `ca`; answers {"status", "bytes", "head"} or, when the
           download fails or ends short of its Content-Length, {"error", "bytes"} (the
           bytes read before it did)
  connect  {target}: a CONNECT for `target` (host:port) sent to the proxy by hand; answers
           {"answer"}: what the proxy said, its first 4 KiB
  hold     {target, waitMs, path}: a CONNECT as `connect`, but the tunnel is kept open, in
           this process, after the call is answered (a hostile kept worker's); answers
           {"answer"}; with `waitMs`, it first waits that long, saying nothing, then probes
           `path` through it and answers {"answer", "probe"}: the probe's answer
  probe    {path}: sends a plain `GET path` through the tunnel `hold` kept (to a plain HTTP
           upstream); answers {"answer"}: what came back, or {"error"}
  raw      {requests, idle}: each string's bytes (code points below 256) sent to the proxy as
           they are, on a connection of its own, while `idle` (0) other connections to it are
           held open, saying nothing; answers {"answers"}: what the proxy said to each
"""
import json
import os
import socket
import ssl
import sys
import time
import urllib.parse
import urllib.request

TOOLS = [
    {"name": "get", "description": "fetches an https URL through the proxy",
     "inputSchema": {"type": "object", "properties": {"url": {"type": "string"}, "ca": {"type": "string"}},
                     "required": ["url", "ca"]}},
    {"name": "connect", "description": "sends a CONNECT to the proxy",
     "inputSchema": {"type": "object", "properties": {"target": {"type": "string"}}, "required": ["target"]}},
    {"name": "hold", "description": "opens a tunnel and keeps it past the call",
     "inputSchema": {"type": "object", "properties": {"target": {"type": "string"}, "waitMs": {"type": "integer"},
                                                      "path": {"type": "string"}}, "required": ["target"]}},
    {"name": "probe", "description": "sends a GET through the kept tunnel",
     "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}},
    {"name": "raw", "description": "sends requests to the proxy byte for byte",
     "inputSchema": {"type": "object", "properties": {"requests": {"type": "array", "items": {"type": "string"}},
                                                    "idle": {"type": "integer"}},
                     "required": ["requests"]}},
]
HELD = []


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def get(arguments):
    context = ssl.create_default_context(cadata=arguments["ca"])
    read = 0
    try:
        with urllib.request.urlopen(arguments["url"], context=context, timeout=60) as answer:
            head = b""
            while True:
                chunk = answer.read(65536)
                if not chunk:
                    break
                head = head or chunk[:200]
                read += len(chunk)
            length = int(answer.headers.get("Content-Length", read))
            if read < length:
                # urllib ends a cut-off body quietly: the length says it was cut off.
                return {"error": "the body ended at %d of its %d bytes" % (read, length), "bytes": read}
            return {"status": answer.status, "bytes": read, "head": head.decode("utf-8", "replace")}
    except Exception as error:
        return {"error": "%s: %s" % (type(error).__name__, error), "bytes": read}


def open_tunnel(target):
    proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
    connection = socket.create_connection((proxy.hostname, proxy.port), timeout=30)
    connection.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
    return connection


def read_all(connection, until=None):
    answer = b""
    while len(answer) < 4096 and not (until and until in answer):
        chunk = connection.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer[:4096].decode("utf-8", "replace")


def connect(arguments):
    with open_tunnel(arguments["target"]) as connection:
        return {"answer": read_all(connection)}


def hold(arguments):
    connection = open_tunnel(arguments["target"])
    HELD.append(connection)
    answer = read_all(connection, until=b"\r\n\r\n")
    if "waitMs" not in arguments:
        return {"answer": answer}
    time.sleep(arguments["waitMs"] / 1000)
    return {"answer": answer, "probe": probe(arguments)}


def raw(arguments):
    proxy = urllib.parse.urlsplit(os.environ["HTTP_PROXY"])
    idle = [socket.create_connection((proxy.hostname, proxy.port), timeout=30) for _ in range(arguments.get("idle", 0))]
    answers = []
    for request in arguments["requests"]:
        with socket.create_connection((proxy.hostname, proxy.port), timeout=30) as connection:
            try:
                connection.sendall(request.encode("latin-1"))
                answers.append(read_all(connection))
            except OSError as error:
                answers.append("%s: %s" % (type(error).__name__, error))
    for connection in idle:
        connection.close()
    return {"answers": answers}


def probe(arguments):
    try:
        connection = HELD[-1]
        connection.sendall(("GET %s HTTP/1.1\r\nHost: upstream\r\nConnection: close\r\n\r\n" % arguments["path"]).encode())
        return {"answer": read_all(connection)}
    except Exception as error:
        return {"error": "%s: %s" % (type(error).__name__, error)}


for line in sys.stdin:
    request = json.loads(line)
    method = request.get("method")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": request["id"], "result": {
            "protocolVersion": request["params"]["protocolVersion"], "capabilities": {"tools": {}},
            "serverInfo": {"name": "mcp-https", "version": "0"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": request["id"], "result": {"tools": TOOLS}})
    elif method == "tools/call":
        params = request["params"]
        tool = {"get": get, "connect": connect, "hold": hold, "probe": probe, "raw": raw}[params["name"]]
        text = json.dumps(tool(params.get("arguments") or {}))
        send({"jsonrpc": "2.0", "id": request["id"], "result": {"content": [{"type": "text", "text": text}]}})
    elif "id" in request:
        send({"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32601, "message": "Method not found"}})
