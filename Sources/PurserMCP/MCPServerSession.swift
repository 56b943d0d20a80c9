public import PurserProtocol

/// Purser as an MCP server (`purser mcp serve`), as a state machine: what to send and which
/// calls to start or cancel for each message from the client. The I/O and the runs are the
/// caller's. Speaks every revision of `MCPVersions` on one connection: the handshake ones
/// after `initialize`, and the stateless ones per request (`server/discover` and requests
/// carrying the `_meta` envelope of `MCPEnvelope`, with no handshake).
public struct MCPServerSession: Sendable {
    public enum Action: Sendable {
        case send(RPCMessage)
        /// Run tool `name` with `arguments`; answer with `reply.message(MCPServerSession.result(…))`.
        case call(Reply, name: String, arguments: JSONValue, progressToken: JSONValue?)
        /// The client gave up on call `id`: stop it, and send no answer (MCP's rule).
        case cancel(RPCID)
    }

    /// How a request's answer goes out: stamped (`MCPEnvelope.result`) for a stateless
    /// request; for a handshake-era one without the stateless fields a passed-on result of a
    /// stateless server carries.
    public struct Reply: Sendable {
        public let id: RPCID
        let server: JSONValue?

        public func message(_ result: JSONValue) -> RPCMessage {
            .response(id: id, result: .success(server.map { MCPEnvelope.result(result, server: $0) } ?? MCPEnvelope.unstamped(result)))
        }
    }

    /// The tools offered: `name`, `description`, `inputSchema` each.
    let tools: [JSONValue]
    let serverName: String
    let serverVersion: String
    /// The revision agreed by `initialize`, if one was.
    private(set) var protocolVersion: String?
    static let pageSize = 100
    static let instructions: JSONValue = "Each tool runs as a budgeted, sandboxed Purser routine; a verdict other than ok comes back as a tool error."

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
        if method == "initialize" { return [.send(.response(id: id, result: .success(initialize(params))))] }
        switch MCPEnvelope.revision(of: params) {
        case .failure(let error)?:
            return [.send(.response(id: id, result: .failure(error)))]
        case .success?:
            return serve(id, method, params, stateless: true)
        case nil where method == "server/discover":
            let message = "server/discover needs params._meta.\(MCPEnvelope.protocolVersion), a stateless revision (\(MCPVersions.stateless.joined(separator: ", ")))"
            return [.send(.response(id: id, result: .failure(RPCError(code: ErrorCode.invalidParams, message: message))))]
        case nil:
            return serve(id, method, params, stateless: false)
        }
    }

    private mutating func initialize(_ params: JSONValue?) -> JSONValue {
        let asked = params?["protocolVersion"]?.stringValue ?? ""
        // The client's revision if Purser speaks it, else Purser's newest (the client then decides).
        let version = MCPVersions.handshake.contains(asked) ? asked : MCPVersions.latestHandshake
        protocolVersion = version
        return [
            "protocolVersion": .string(version), "capabilities": Self.capabilities,
            "serverInfo": serverInfo, "instructions": Self.instructions,
        ]
    }

    private func serve(_ id: RPCID, _ method: String, _ params: JSONValue?, stateless: Bool) -> [Action] {
        // Typed, or the `nil` would be JSON's null.
        let server: JSONValue? = stateless ? .some(serverInfo) : .none
        let reply = Reply(id: id, server: server)
        func fail(_ code: Int, _ message: String) -> [Action] {
            [.send(.response(id: id, result: .failure(RPCError(code: code, message: message))))]
        }
        let unready = !stateless && protocolVersion == nil
        let initializeFirst = "initialize first, or name a stateless revision in params._meta.\(MCPEnvelope.protocolVersion)"
        switch method {
        case "server/discover":
            return [.send(reply.message([
                "supportedVersions": .array(MCPVersions.stateless.map(JSONValue.string)), "capabilities": Self.capabilities,
                "instructions": Self.instructions, "ttlMs": 0, "cacheScope": "private",
            ]))]
        case "ping": return [.send(reply.message([:]))]
        case "tools/list":
            guard !unready else { return fail(ErrorCode.invalidRequest, initializeFirst) }
            var page = page(params?["cursor"]?.stringValue)
            // Stateless list results are cacheable: say "not for long, and not shared".
            if stateless {
                page["ttlMs"] = 0
                page["cacheScope"] = "private"
            }
            return [.send(reply.message(.object(page)))]
        case "tools/call":
            guard !unready else { return fail(ErrorCode.invalidRequest, initializeFirst) }
            guard let name = params?["name"]?.stringValue else { return fail(ErrorCode.invalidParams, "tools/call needs a name") }
            let arguments = params?["arguments"] ?? [:]
            guard arguments.objectValue != nil else { return fail(ErrorCode.invalidParams, "tools/call: arguments must be an object") }
            guard tools.contains(where: { $0["name"]?.stringValue == name }) else {
                return fail(ErrorCode.invalidParams, "no tool named \(name)")
            }
            return [.call(reply, name: name, arguments: arguments, progressToken: params?["_meta"]?["progressToken"])]
        default:
            return fail(ErrorCode.methodNotFound, "Method not found: \(method)")
        }
    }

    static let capabilities: JSONValue = ["tools": ["listChanged": false]]
    private var serverInfo: JSONValue { ["name": .string(serverName), "version": .string(serverVersion)] }

    /// A page of the tool list; the cursor is the index of the page's first tool.
    private func page(_ cursor: String?) -> [String: JSONValue] {
        let start = cursor.flatMap(Int.init).map { min(max($0, 0), tools.count) } ?? 0
        let end = min(start + Self.pageSize, tools.count)
        var result: [String: JSONValue] = ["tools": .array(Array(tools[start..<end]))]
        if end < tools.count { result["nextCursor"] = .string(String(end)) }
        return result
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

    /// The `_meta` key of a tools/call result that says how its run went (`purser mcp serve`).
    public static let runMeta = "purser/run"

    /// `result` with `run` at `_meta["purser/run"]`: the result's other `_meta` keys stay,
    /// and whatever a passed-on server put under that key is replaced (a worker may not
    /// speak for its run).
    public static func withRun(_ result: JSONValue, _ run: JSONValue) -> JSONValue {
        var fields = result.objectValue ?? [:]
        var meta = fields["_meta"]?.objectValue ?? [:]
        meta[runMeta] = run
        fields["_meta"] = .object(meta)
        return .object(fields)
    }

    /// `notifications/progress` for a call's progress token.
    public static func progress(token: JSONValue, done: Double, total: Double?, message: String?) -> RPCMessage {
        var params: [String: JSONValue] = ["progressToken": token, "progress": JSONNumber(done).map(JSONValue.number) ?? 0]
        if let total, let number = JSONNumber(total) { params["total"] = .number(number) }
        if let message { params["message"] = .string(message) }
        return .notification(method: "notifications/progress", params: .object(params))
    }
}
