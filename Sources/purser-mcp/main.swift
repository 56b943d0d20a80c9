import Glibc
import PurserMCP
import PurserProtocol

// purser-mcp -- COMMAND [ARGS…]: a worker of Purser's protocol on stdin/stdout that runs the
// MCP stdio server COMMAND as its child and speaks MCP to it (Sources/PurserMCP/MCPBridge.swift).
// It runs inside the run's sandbox, so the server is in the run's process tree and groups.

// With --server-fd N, COMMAND is only the server's argv[0]: the file run is the one open at
// fd N (its pinned file, passed by the supervisor; see `PluginRegistry`), not a path.
var arguments = Array(CommandLine.arguments.dropFirst())
var serverFD: Int32?
if arguments.count >= 2, arguments[0] == "--server-fd", let fd = Int32(arguments[1]), fd > 2 {
    serverFD = fd
    arguments.removeFirst(2)
}
if arguments.first == "--" { arguments.removeFirst() }
guard !arguments.isEmpty else {
    let usage = Array("usage: purser-mcp [--server-fd N] -- COMMAND [ARGS…]  (an MCP stdio server)\n".utf8)
    _ = write(2, usage, usage.count)
    exit(2)
}
signal(SIGPIPE, SIG_IGN)
var loop = BridgeLoop(command: arguments, serverFD: serverFD)
exit(loop.run())
