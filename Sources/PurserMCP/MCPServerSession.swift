public import PurserProtocol

/// Purser as an MCP server (`purser mcp serve`), as a state machine: what to send and which
/// calls to start or cancel for each message from the client. The I/O and the runs are the
/// caller's. Speaks the `initialize` revisions (`MCPVersions`); the stateless revision's
/// `server/discover` is answered "method not found", on which clients fall back to
/// `initialize` (the Python SDK's auto mode does).
public struct MCPServerSession: Sendable {
    public enum Action: Sendable {
        case send(RPCMessage)
        /// Run tool `name` with `arguments`; answer `id` with `MCPServerSession.result`.
        case call(id: RPCID, name: String, arguments: JSONValue, progressToken: JSONValue?)
        /// The client gave up on call `id`: stop it, and send no answer (MCP's rule).
        case cancel(RPCID)
    }

    /// The tools offered: `name`, `description`, `inputSchema` each.
    let tools: [JSONValue]
    let serverName: String
    let serverVersion: String
    private(set) var protocolVersion: String?
    static let pageSize = 100

    public init(tools: [JSONValue], serverName: String = "purser", serverVersion: String) {
        self.tools = tools
        self.serverName = serverName
        self.serverVersion = serverVersion
    }

    public mutating func receive(_ message: RPCMessage) -> [Action] {
        switch message {
        case .request(let id, let method, let params): return request(id, method, params)
        case .notification(let method, let params):
            guard method == "notifications/cancelled", let id = params?["requestId"].flatMap(Self.id) else { return [] }
            return [.cancel(id)]
        case .response: return []  // Purser asks the client nothing.
        }
    }

    private mutating func request(_ id: RPCID, _ method: String, _ params: JSONValue?) -> [Action] {
        func answer(_ result: JSONValue) -> [Action] { [.send(.response(id: id, result: .success(result)))] }
        func fail(_ code: Int, _ message: String) -> [Action] {
            [.send(.response(id: id, result: .failure(RPCError(code: code, message: message))))]
        }
        switch method {
        case "initialize":
            let asked = params?["protocolVersion"]?.stringValue ?? ""
            // The client's revision if Purser speaks it, else Purser's newest (the client then decides).
            let version = MCPVersions.supports(asked) ? asked : MCPVersions.latest
            protocolVersion = version
            return answer([
                "protocolVersion": .string(version), "capabilities": ["tools": ["listChanged": false]],
                "serverInfo": ["name": .string(serverName), "version": .string(serverVersion)],
                "instructions": "Each tool runs as a budgeted, sandboxed Purser routine; a verdict other than ok comes back as a tool error.",
            ])
        case "ping": return answer([:])
        case "tools/list":
            guard protocolVersion != nil else { return fail(ErrorCode.invalidRequest, "initialize first") }
            return answer(page(params?["cursor"]?.stringValue))
        case "tools/call":
            guard protocolVersion != nil else { return fail(ErrorCode.invalidRequest, "initialize first") }
            guard let name = params?["name"]?.stringValue else { return fail(ErrorCode.invalidParams, "tools/call needs a name") }
            let arguments = params?["arguments"] ?? [:]
            guard arguments.objectValue != nil else { return fail(ErrorCode.invalidParams, "tools/call: arguments must be an object") }
            guard tools.contains(where: { $0["name"]?.stringValue == name }) else {
                return fail(ErrorCode.invalidParams, "no tool named \(name)")
            }
            return [.call(id: id, name: name, arguments: arguments, progressToken: params?["_meta"]?["progressToken"])]
        default:
            return fail(ErrorCode.methodNotFound, "Method not found: \(method)")
        }
    }

    /// A page of the tool list; the cursor is the index of the page's first tool.
    private func page(_ cursor: String?) -> JSONValue {
        let start = cursor.flatMap(Int.init).map { min(max($0, 0), tools.count) } ?? 0
        let end = min(start + Self.pageSize, tools.count)
        var result: [String: JSONValue] = ["tools": .array(Array(tools[start..<end]))]
        if end < tools.count { result["nextCursor"] = .string(String(end)) }
        return .object(result)
    }

    private static func id(_ value: JSONValue) -> RPCID? {
        if let string = value.stringValue { return .string(string) }
        return value.numberValue?.int64.map(RPCID.number)
    }

    /// A tool's answer: what a tool of an MCP server said, passed on; any other routine's
    /// output as text (its JSON) and, if it is an object, as `structuredContent`.
    public static func result(output: JSONValue?, fromMCPTool: Bool) -> JSONValue {
        if fromMCPTool, let output, output["content"] != nil { return output }
        let text = output?.serialized() ?? "null"
        var result: [String: JSONValue] = ["content": [["type": "text", "text": .string(text)]], "isError": false]
        if let output, output.objectValue != nil { result["structuredContent"] = output }
        return .object(result)
    }

    /// A run that did not end `ok`, as a tool error the model can read (never a protocol error:
    /// the session goes on).
    public static func failure(_ text: String) -> JSONValue {
        ["content": [["type": "text", "text": .string(text)]], "isError": true]
    }

    /// `notifications/progress` for a call's progress token.
    public static func progress(token: JSONValue, done: Double, total: Double?, message: String?) -> RPCMessage {
        var params: [String: JSONValue] = ["progressToken": token, "progress": JSONNumber(done).map(JSONValue.number) ?? 0]
        if let total, let number = JSONNumber(total) { params["total"] = .number(number) }
        if let message { params["message"] = .string(message) }
        return .notification(method: "notifications/progress", params: .object(params))
    }
}
