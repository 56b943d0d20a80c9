import Glibc
import PurserMCP
import PurserProtocol

// purser-mcp -- COMMAND [ARGS…]: a worker of Purser's protocol on stdin/stdout that runs the
// MCP stdio server COMMAND as its child and speaks MCP to it (Sources/PurserMCP/MCPBridge.swift).
// It runs inside the run's sandbox, so the server is in the run's process tree and groups.

var arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "--" { arguments.removeFirst() }
guard !arguments.isEmpty else {
    let usage = Array("usage: purser-mcp -- COMMAND [ARGS…]  (an MCP stdio server)\n".utf8)
    _ = write(2, usage, usage.count)
    exit(2)
}
signal(SIGPIPE, SIG_IGN)
var loop = BridgeLoop(command: arguments)
exit(loop.run())
