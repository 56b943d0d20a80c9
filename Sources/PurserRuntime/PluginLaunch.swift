import Glibc
public import PurserLedger
public import PurserProtocol
import PurserSandbox

/// How a registered plugin's run starts: its pinned file run by fd; or, for an MCP server's
/// tool (`NAME.TOOL`), the bridge `purser-mcp` run by fd with the server's pinned file passed
/// as its fd 3, the tool's arguments wrapped as the bridge's input. Owns the open files
/// until `close()`.
public struct PluginLaunch: Sendable {
    public let call: PluginCall
    let opened: PluginRegistry.OpenedPlugin
    let bridge: PluginRegistry.OpenedPlugin?

    /// Opens the plugin's pinned file (fetched from the store if this host lacks it) and,
    /// for a tool, the bridge.
    public static func open(_ call: PluginCall, runtime: Runtime) throws(RuntimeError) -> PluginLaunch {
        let bridge = try call.tool.map { _ throws(RuntimeError) in try MCPBridgeFile.open() }
        do {
            let opened = try PluginRegistry.openPinned(call.record, runtime: runtime)
            return PluginLaunch(call: call, opened: opened, bridge: bridge)
        } catch {
            if let bridge { Glibc.close(bridge.fd) }
            throw error
        }
    }

    public var record: PluginRecord { call.record }

    /// Points `request` at the files to run, wraps a tool's input, and applies the plugin's
    /// manifest (sandbox, environment, egress, and whether its worker may join `workers`).
    public func configure(_ request: inout RunRequest) { configure(&request, workers: nil) }

    public func configure(_ request: inout RunRequest, workers: WorkerPool?) {
        call.manifest.apply(to: &request, workers: workers)
        guard let server = call.server, let tool = call.tool, let bridge else {
            request.executable = record.path
            request.executableFD = opened.fd
            request.keepExecutableFD = opened.isScript
            return
        }
        request.executable = MCPBridgeFile.path ?? "purser-mcp"
        request.executableFD = bridge.fd
        request.keepExecutableFD = false
        request.passedFDs = [opened.fd]
        // A script (every Python server) is run again by its interpreter through /proc/self/fd/3.
        let argv0 = server.command.first ?? record.path
        request.arguments = ["--server-fd", "3", "--", argv0] + server.command.dropFirst()
        request.input = MCPServer.callInput(tool: tool.name, arguments: request.input)
        let manifest = call.manifest.mcp ?? MCPManifest()
        request.price = manifest.price(tool.name)
        request.timing.startupMs = manifest.startupMs
    }

    public func close() {
        Glibc.close(opened.fd)
        if let bridge { Glibc.close(bridge.fd) }
    }
}

/// `purser-mcp`, beside `purser` (or `PURSER_MCP_BRIDGE`): Purser's own file, opened to be
/// run by fd, since a sandbox's root need not show where Purser is installed.
enum MCPBridgeFile {
    static let path: String? = siblingExecutable("purser-mcp", override: "PURSER_MCP_BRIDGE")

    static func open() throws(RuntimeError) -> PluginRegistry.OpenedPlugin {
        guard let path else {
            throw RuntimeError(code: .invalidRequest, message: "purser-mcp (the MCP bridge) is not installed beside purser")
        }
        return try PluginRegistry.open(path, label: "the MCP bridge")
    }
}
