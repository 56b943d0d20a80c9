public import PurserLedger
public import PurserProtocol

/// A routine's plugin as written (`NAME`, or `NAME.TOOL` for an MCP server's tool), resolved
/// once: the record, its manifest and its MCP tools read from the record's `info` in one
/// parse, and the tool called. Plans, steps, `exec` and `mcp serve` all resolve through it,
/// so a run's spawn path parses nothing.
public struct PluginCall: Sendable {
    public let record: PluginRecord
    public let manifest: PluginManifest
    /// What `purser mcp add` recorded, for an MCP server's plugin.
    public let server: MCPServer?
    /// The tool called; nil for a plain plugin.
    public let tool: MCPServer.MCPTool?

    /// Throws when a plain plugin is called by a tool, an MCP server without one, or a tool
    /// the server did not list.
    public init(_ record: PluginRecord, tool toolName: String?) throws(RuntimeError) {
        let (manifest, server) = Self.parse(record)
        self.init(record: record, manifest: manifest, server: server, tool: try Self.tool(toolName, of: server, record.name))
    }

    /// Every call a registered plugin offers: the plugin itself, or each of an MCP server's tools.
    public static func offered(by record: PluginRecord) -> [PluginCall] {
        let (manifest, server) = parse(record)
        guard let server else { return [PluginCall(record: record, manifest: manifest, server: nil, tool: nil)] }
        return server.tools.map { PluginCall(record: record, manifest: manifest, server: server, tool: $0) }
    }

    private init(record: PluginRecord, manifest: PluginManifest, server: MCPServer?, tool: MCPServer.MCPTool?) {
        self.record = record
        self.manifest = manifest
        self.server = server
        self.tool = tool
    }

    /// The record's `info`, parsed once for both its parts.
    private static func parse(_ record: PluginRecord) -> (PluginManifest, MCPServer?) {
        let info = try? JSONParser.parse(Array(record.info.utf8))
        return (info?["manifest"].map(PluginManifest.init(stored:)) ?? PluginManifest(), info?["mcp"].map(MCPServer.init(stored:)))
    }

    /// The name as written: `NAME` or `NAME.TOOL`.
    public var name: String { tool.map { "\(record.name).\($0.name)" } ?? record.name }

    /// The input against the tool's schema: nil when it fits (or this is no tool), else what
    /// does not, as "does not fit NAME.TOOL's inputSchema: …" for the caller to name its field.
    public func inputProblem(_ input: JSONValue) -> String? {
        guard let problems = tool?.problems(input), !problems.isEmpty else { return nil }
        return "does not fit \(name)'s inputSchema: \(problems.joined(separator: "; "))"
    }

    private static func tool(_ name: String?, of server: MCPServer?, _ plugin: String) throws(RuntimeError) -> MCPServer.MCPTool? {
        func refuse(_ message: String) -> RuntimeError { RuntimeError(code: .invalidRequest, message: message) }
        switch (server, name) {
        case (nil, nil): return nil
        case (nil, .some): throw refuse("plugin \(plugin) is not an MCP server: it has no tools to call by name")
        case (.some(let server), nil):
            throw refuse("plugin \(plugin) is an MCP server: call one of its tools, \(plugin).TOOL (\(server.toolNames))")
        case (.some(let server), .some(let name)):
            guard let found = server.tool(name) else { throw refuse("MCP server \(plugin) has no tool '\(name)' (it has \(server.toolNames))") }
            return found
        }
    }
}
