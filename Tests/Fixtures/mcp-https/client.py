#!/usr/bin/python3
"""An MCP stdio server whose tools reach HTTPS through the run's egress proxy (HTTPS_PROXY),
as any tool that fetches URLs itself would: standard library only.

  get      {url, ca}: urllib, which tunnels through the proxy with CONNECT, trusting only
           the PEM certificate `ca`; answers {"status", "bytes", "head"} or, when the
           download fails or ends short of its Content-Length, {"error", "bytes"} (the
           bytes read before it did)
  connect  {target}: a CONNECT for `target` (host:port) sent to the proxy by hand; answers
           {"answer"}: what the proxy said, its first 4 KiB
"""
import json
import os
import socket
import ssl
import sys
import urllib.parse
import urllib.request

TOOLS = [
    {"name": "get", "description": "fetches an https URL through the proxy",
     "inputSchema": {"type": "object", "properties": {"url": {"type": "string"}, "ca": {"type": "string"}},
                     "required": ["url", "ca"]}},
    {"name": "connect", "description": "sends a CONNECT to the proxy",
     "inputSchema": {"type": "object", "properties": {"target": {"type": "string"}}, "required": ["target"]}},
]


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


def connect(arguments):
    proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
    with socket.create_connection((proxy.hostname, proxy.port), timeout=30) as connection:
        target = arguments["target"]
        connection.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target)).encode())
        answer = b""
        while len(answer) < 4096:
            chunk = connection.recv(4096)
            if not chunk:
                break
            answer += chunk
        return {"answer": answer[:4096].decode("utf-8", "replace")}


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
        tool = get if params["name"] == "get" else connect
        text = json.dumps(tool(params.get("arguments") or {}))
        send({"jsonrpc": "2.0", "id": request["id"], "result": {"content": [{"type": "text", "text": text}]}})
    elif "id" in request:
        send({"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32601, "message": "Method not found"}})
