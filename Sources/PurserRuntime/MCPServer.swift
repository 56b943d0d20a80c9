import PurserMCP
public import PurserProtocol

/// What `purser mcp add` recorded of an MCP server, in its plugin record's `info.mcp`: the
/// command (argv; the file run is the record's pinned `path`), the server's name and MCP
/// revision, and its tools with their input schemas.
public struct MCPServer: Sendable, Hashable {
    public var command: [String]
    public var serverName: String
    public var protocolVersion: String
    public var tools: [MCPTool]

    public struct MCPTool: Sendable, Hashable {
        public var name: String
        public var description: String
        public var inputSchema: JSONValue

        public var json: JSONValue {
            ["name": .string(name), "description": .string(description), "inputSchema": inputSchema]
        }

        /// The tool's `arguments` against its schema (tolerantly: see `SchemaCheck`); empty when fine.
        public func problems(_ arguments: JSONValue) -> [String] {
            SchemaCheck(inputSchema, mode: .tolerant).problems(arguments)
        }
    }

    init(stored mcp: JSONValue) {
        command = mcp["command"]?.arrayValue?.compactMap(\.stringValue) ?? []
        serverName = mcp["server"]?.stringValue ?? ""
        protocolVersion = mcp["protocolVersion"]?.stringValue ?? ""
        tools = (mcp["tools"]?.arrayValue ?? []).compactMap { tool in
            guard let name = tool["name"]?.stringValue else { return nil }
            return MCPTool(name: name, description: tool["description"]?.stringValue ?? "", inputSchema: tool["inputSchema"] ?? [:])
        }
    }

    init(command: [String], serverName: String, protocolVersion: String, tools: [MCPTool]) {
        self.command = command
        self.serverName = serverName
        self.protocolVersion = protocolVersion
        self.tools = tools
    }

    public var json: JSONValue {
        [
            "command": .array(command.map(JSONValue.string)), "server": .string(serverName),
            "protocolVersion": .string(protocolVersion), "tools": .array(tools.map(\.json)),
        ]
    }

    public func tool(_ name: String) -> MCPTool? { tools.first { $0.name == name } }

    /// The tools' names, for messages.
    var toolNames: String { tools.map(\.name).joined(separator: ", ") }

    /// A routine's input for the bridge: the tool and its arguments (`purser-mcp`'s `run`).
    static func callInput(tool: String, arguments: JSONValue) -> JSONValue {
        ["tool": .string(tool), "arguments": arguments]
    }

    /// The tools a server listed, checked: each named as MCP allows, with an object schema
    /// of bounded size. A server is believed no more than a worker. (`purser conformance
    /// --mcp` checks a server's tools with it too.)
    public static func checkedTools(listed output: JSONValue?) throws(RuntimeError) -> [MCPTool] {
        func refuse(_ why: String) -> RuntimeError { RuntimeError(code: .invalidRequest, message: "tools/list: \(why)") }
        guard let listed = output?["tools"]?.arrayValue else { throw refuse("no tools array in the answer") }
        guard !listed.isEmpty else { throw refuse("the server has no tools") }
        var seen: Set<String> = []
        return try listed.map { (tool) throws(RuntimeError) -> MCPTool in
            guard let name = tool["name"]?.stringValue, isToolName(name) else {
                throw refuse("a tool's name is not 1-128 of A-Z a-z 0-9 _ - . (\(WorkerText.line((tool["name"] ?? .null).serialized())))")
            }
            guard seen.insert(name).inserted else { throw refuse("tool \(name) is listed twice") }
            let schema = tool["inputSchema"] ?? .null
            guard schema["type"]?.stringValue == "object" else { throw refuse("tool \(name): inputSchema is not of type object") }
            guard schema.serialized().utf8.count <= maxSchemaBytes else {
                throw refuse("tool \(name): inputSchema is over \(maxSchemaBytes >> 10) KiB")
            }
            let description = String((tool["description"]?.stringValue ?? "").prefix(maxDescription))
            return MCPTool(name: name, description: description, inputSchema: schema)
        }
    }

    static let maxSchemaBytes = 64 << 10
    static let maxDescription = 2_000

    /// MCP's rule for tool names (2025-11-25): 1 to 128 of ASCII letters, digits, `_`, `-` and `.`.
    public static func isToolName(_ name: String) -> Bool {
        (1...128).contains(name.utf8.count)
            && name.utf8.allSatisfy { byte in
                (0x30...0x39).contains(byte) || (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte)
                    || byte == 0x5f || byte == 0x2d || byte == 0x2e
            }
    }
}
