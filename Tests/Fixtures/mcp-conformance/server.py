#!/usr/bin/python3
"""A small MCP stdio server, standard library only, for `purser conformance --mcp`: correct
(two pages of tools, so that pagination is followed) unless argv[1] names the one rule it
breaks:

  echoversion     answers initialize with the client's protocolVersion, whatever it is
  noping          answers ping with -32601
  straystdout     writes a banner line on stdout before anything else
  noeofexit       ignores end of file on stdin and keeps running
  resultforunknown  answers an unknown method with a result
  badtool         lists a tool named 'bad name!' on its second page
  preinitcrash    exits on a request other than ping before initialize
  unknowntoolok   answers tools/call of an unknown tool with a plain result
  cancelcrash     exits on notifications/cancelled
"""
import json
import sys
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else ""
SUPPORTED = ["2025-06-18", "2025-11-25"]
PAGES = [
    [{"name": "echo", "description": "says its text again",
      "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}}],
    [{"name": "bad name!" if MODE == "badtool" else "clock.now", "description": "the time",
      "inputSchema": {"type": "object"}}],
]


def send(message):
    message["jsonrpc"] = "2.0"
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer(ident, result):
    send({"id": ident, "result": result})


def fail(ident, code, text):
    send({"id": ident, "error": {"code": code, "message": text}})


def initialize(ident, params):
    asked = params.get("protocolVersion", "")
    version = asked if asked in SUPPORTED or MODE == "echoversion" else SUPPORTED[-1]
    answer(ident, {"protocolVersion": version, "capabilities": {"tools": {"listChanged": False}},
                   "serverInfo": {"name": "conformance-" + (MODE or "correct"), "version": "1.0"}})


def tools_list(ident, params):
    page = int(params.get("cursor") or 0) if isinstance(params, dict) else 0
    result = {"tools": PAGES[page]}
    if page + 1 < len(PAGES):
        result["nextCursor"] = str(page + 1)
    answer(ident, result)


def tools_call(ident, params):
    name = params.get("name")
    if name == "echo":
        answer(ident, {"content": [{"type": "text", "text": str(params.get("arguments", {}).get("text", ""))}]})
    elif name == "clock.now":
        answer(ident, {"content": [{"type": "text", "text": time.strftime("%H:%M:%S")}]})
    elif MODE == "unknowntoolok":
        answer(ident, {"content": [{"type": "text", "text": "done"}]})
    else:
        answer(ident, {"content": [{"type": "text", "text": "unknown tool: %s" % name}], "isError": True})


def main():
    if MODE == "straystdout":
        print("conformance server ready", flush=True)
    initialized = False
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        method, ident, params = message.get("method"), message.get("id"), message.get("params") or {}
        if method is None:
            continue  # an answer: this server asks nothing
        if ident is None:
            if method == "notifications/cancelled" and MODE == "cancelcrash":
                sys.exit(4)
            continue
        if method == "initialize":
            initialized = True
            initialize(ident, params)
        elif method == "ping":
            if MODE == "noping":
                fail(ident, -32601, "Method not found")
            else:
                answer(ident, {})
        elif not initialized and MODE == "preinitcrash":
            sys.exit(5)
        elif method == "tools/list":
            tools_list(ident, params)
        elif method == "tools/call":
            tools_call(ident, params)
        elif MODE == "resultforunknown":
            answer(ident, {})
        else:
            fail(ident, -32601, "Method not found: %s" % method)
    if MODE == "noeofexit":
        while True:
            time.sleep(60)


main()
