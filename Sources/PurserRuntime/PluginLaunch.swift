import Glibc
public import PurserLedger
public import PurserProtocol
import PurserSandbox

/// How a registered plugin's run starts: its pinned file run by fd; or, for an MCP server's
/// tool (`NAME.TOOL`), the bridge `purser-mcp` run by fd with the server's pinned file passed
/// as its fd 3, the tool's arguments wrapped as the bridge's input. Owns the open files
/// until `close()`.
public struct PluginLaunch: Sendable {
    public let record: PluginRecord
    /// The MCP tool called, for an MCP server's plugin.
    public let tool: MCPServer.MCPTool?
    let server: MCPServer?
    let opened: PluginRegistry.OpenedPlugin
    let bridge: PluginRegistry.OpenedPlugin?

    /// Opens the plugin's pinned file (fetched from the store if this host lacks it) and,
    /// for a tool, the bridge. `tool`: the part after `NAME.`, nil for a plain plugin.
    public static func open(_ record: PluginRecord, tool toolName: String?, runtime: Runtime) throws(RuntimeError) -> PluginLaunch {
        let server = MCPServer(record)
        var tool: MCPServer.MCPTool?
        switch (server, toolName) {
        case (nil, nil): break
        case (nil, .some):
            throw RuntimeError(code: .invalidRequest, message: "plugin \(record.name) is not an MCP server: it has no tools to call by name")
        case (.some, nil):
            throw RuntimeError(
                code: .invalidRequest,
                message: "plugin \(record.name) is an MCP server: call one of its tools, \(record.name).TOOL (\(server!.tools.map(\.name).joined(separator: ", ")))")
        case (.some(let server), .some(let name)):
            guard let found = server.tool(name) else {
                throw RuntimeError(
                    code: .invalidRequest,
                    message: "MCP server \(record.name) has no tool '\(name)' (it has \(server.tools.map(\.name).joined(separator: ", ")))")
            }
            tool = found
        }
        let bridge = try server.map { _ throws(RuntimeError) in try MCPBridgeFile.open() }
        do {
            let opened = try PluginRegistry.openPinned(record, runtime: runtime)
            return PluginLaunch(record: record, tool: tool, server: server, opened: opened, bridge: bridge)
        } catch {
            if let bridge { Glibc.close(bridge.fd) }
            throw error
        }
    }

    /// The routine's name as written: `NAME` or `NAME.TOOL`.
    public var name: String { tool.map { "\(record.name).\($0.name)" } ?? record.name }

    /// The input checked against the tool's schema, before anything is reserved: nil when
    /// fine (or not a tool), else what is wrong.
    public func inputProblem(_ input: JSONValue) -> String? {
        guard let tool else { return nil }
        return (try? MCPToolInput.problem(record, tool: tool.name, input: input)) ?? nil
    }

    /// Points `request` at the files to run and wraps a tool's input.
    public func configure(_ request: inout RunRequest) {
        guard let server, let tool, let bridge else {
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
        let manifest = PluginManifest(record).mcp ?? MCPManifest()
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
