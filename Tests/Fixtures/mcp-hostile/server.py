#!/usr/bin/python3
"""A hostile MCP stdio server, by mode (argv[1]); the handshake is honest unless the mode says.

  silent    never answers initialize
  deaf      never answers server/discover (as servers may that drop a method they do not know)
  bomb      tools/call allocates memory until something stops it
  flood     tools/call sends 200,000 log notifications, then answers
  longline  tools/call answers with a line of 9 MiB
  liar      tools/list names a tool 'bad name!' (not a tool name)
  vanish    tools/list names 'ghost'; calling it answers 'unknown tool' as a JSON-RPC error
  fork      tools/call leaves a grandchild (sleep 3597) in a session of its own, then answers
"""
import json
import os
import sys

MODE = sys.argv[1] if len(sys.argv) > 1 else ""


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def tools():
    if MODE == "liar":
        return [{"name": "bad name!", "inputSchema": {"type": "object"}}]
    if MODE == "vanish":
        return [{"name": "ghost", "inputSchema": {"type": "object"}}]
    return [{"name": "go", "description": "misbehaves", "inputSchema": {"type": "object"}}]


def call(request):
    ident = request["id"]
    if MODE == "bomb":
        hoard = []
        while True:
            hoard.append(bytearray(16 << 20))
    if MODE == "flood":
        for index in range(200_000):
            send({"jsonrpc": "2.0", "method": "notifications/message",
                  "params": {"level": "info", "data": "flood %d" % index}})
    if MODE == "longline":
        send({"jsonrpc": "2.0", "id": ident, "result": {"content": [{"type": "text", "text": "x" * (9 << 20)}]}})
        return
    if MODE == "vanish":
        send({"jsonrpc": "2.0", "id": ident, "error": {"code": -32602, "message": "unknown tool: ghost"}})
        return
    if MODE == "fork":
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv("/bin/sleep", ["sleep", "3597"])
            os._exit(0)
        os.wait()
    send({"jsonrpc": "2.0", "id": ident, "result": {"content": [{"type": "text", "text": "done"}]}})


for line in sys.stdin:
    request = json.loads(line)
    method = request.get("method")
    if method == "initialize":
        if MODE == "silent":
            continue
        send({"jsonrpc": "2.0", "id": request["id"], "result": {
            "protocolVersion": request["params"]["protocolVersion"], "capabilities": {"tools": {}},
            "serverInfo": {"name": "hostile-" + MODE, "version": "0"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": request["id"], "result": {"tools": tools()}})
    elif method == "tools/call":
        call(request)
    elif method == "server/discover" and MODE == "deaf":
        continue
    elif "id" in request:
        send({"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32601, "message": "Method not found"}})
