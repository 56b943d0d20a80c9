"""An MCP peer that speaks only revision 2099-01-01, which nobody knows, for both of Purser's sides.

usage: peer.py server                 an MCP stdio server on stdin/stdout (under purser-mcp)
       peer.py client COMMAND [ARGS]  starts COMMAND (`purser mcp serve`), asks it at 2099-01-01,
                                      and prints one JSON object per answer on stdout
Plain Python, no `mcp` package: a peer that package would never be.
"""
import json
import subprocess
import sys

REVISION = "2099-01-01"
VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT = {"name": "unknown-revision", "version": "1"}


def server():
    for line in sys.stdin:
        message = json.loads(line)
        if "id" not in message or "method" not in message:
            continue
        params = message.get("params") or {}
        requested = params.get("protocolVersion") or (params.get("_meta") or {}).get(VERSION_KEY) or ""
        error = {"code": -32022, "message": "Unsupported protocol version",
                 "data": {"supported": [REVISION], "requested": requested}}
        print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "error": error}), flush=True)


def client(command):
    envelope = {"_meta": {VERSION_KEY: REVISION, "io.modelcontextprotocol/clientInfo": CLIENT,
                          "io.modelcontextprotocol/clientCapabilities": {}}}
    requests = [("server/discover", envelope), ("tools/list", envelope),
                ("initialize", {"protocolVersion": REVISION, "capabilities": {}, "clientInfo": CLIENT})]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    for number, (method, params) in enumerate(requests, 1):
        process.stdin.write(json.dumps({"jsonrpc": "2.0", "id": number, "method": method, "params": params}) + "\n")
        process.stdin.flush()
        print(json.dumps({"method": method, "answer": json.loads(process.stdout.readline())}), flush=True)
    process.stdin.close()
    sys.exit(process.wait(timeout=60))


if sys.argv[1] == "server":
    server()
else:
    client(sys.argv[2:])
