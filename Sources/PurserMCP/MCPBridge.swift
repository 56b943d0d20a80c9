public import PurserProtocol

/// Purser's worker protocol on one side, an MCP stdio server on the other: what `purser-mcp`
/// does, as a state machine without I/O (the executable feeds it lines and carries out what
/// it answers). It runs inside the run's sandbox, next to the server it speaks for, so
/// nothing it says is believed more than a worker's word.
///
/// A run's input is `{"tool": NAME, "arguments": {…}}` (a `tools/call`), or `{"list": true}`
/// (every page of `tools/list`, for registration).
public struct MCPBridge: Sendable {
    public enum Action: Sendable, Equatable {
        case toSupervisor(RPCMessage)
        case toServer(RPCMessage)
        /// Start the server (at Purser's `initialize`).
        case startServer
        /// Close the server's stdin and let it exit, then exit with this status.
        case finish(status: Int32)
    }

    enum Phase: Sendable, Equatable {
        case waiting
        case handshaking(supervisorID: RPCID)
        case ready
        case finished
    }

    /// The run in flight: the supervisor's request, and the server's request made for it.
    struct Call: Sendable, Equatable {
        var supervisorID: RPCID
        var serverID: Int64
        var runID: String
        /// Tools gathered so far when listing (pages follow `nextCursor`), and their size.
        var listed: [JSONValue]?
        var listedBytes = 0
    }

    var phase = Phase.waiting
    var call: Call?
    var nextServerID: Int64 = 1
    var server: (name: String, version: String, protocolVersion: String)?
    /// A page cap: a server whose cursors never end is refused, not followed forever; and a
    /// cap on what the pages hold together, which must fit in one line to the supervisor.
    static let maxPages = 100
    static let maxListBytes = 8 << 20
    var pages = 0

    public init() {}

    public mutating func fromSupervisor(_ message: RPCMessage) -> [Action] {
        switch message {
        case .request(let id, "initialize", _) where phase == .waiting:
            phase = .handshaking(supervisorID: id)
            return [.startServer, .toServer(.request(id: .number(take()), method: "initialize", params: Self.initializeParams))]
        case .request(let id, "run", let params) where phase == .ready && call == nil:
            return run(id, params)
        case .request(let id, "ping", _):
            return [.toSupervisor(.response(id: id, result: .success([:])))]
        case .request(let id, "shutdown", _):
            phase = .finished
            return [.toSupervisor(.response(id: id, result: .success([:]))), .finish(status: 0)]
        case .request(let id, let method, _):
            return [.toSupervisor(.response(id: id, result: .failure(RPCError(code: ErrorCode.methodNotFound, message: "not now or not known: \(method)"))))]
        case .notification("cancel", let params):
            return cancel(params)
        default:
            return []
        }
    }

    /// The supervisor closed stdin: as `shutdown`, unanswered.
    public mutating func supervisorClosed() -> [Action] {
        phase = .finished
        return [.finish(status: 0)]
    }

    public mutating func fromServer(_ message: RPCMessage) -> [Action] {
        switch message {
        case .response(.number(1), let result):
            guard case .handshaking(let supervisorID) = phase else { return [] }
            return handshake(supervisorID, result)
        case .response(.number(let id), let result) where id == call?.serverID:
            return answered(result)
        case .response:
            // A late answer to a cancelled call: nobody waits for it.
            return []
        case .request(let id, "ping", _):
            return [.toServer(.response(id: id, result: .success([:])))]
        case .request(let id, let method, _):
            // Purser's client offers no sampling, roots or elicitation.
            return [.toServer(.response(id: id, result: .failure(RPCError(code: ErrorCode.methodNotFound, message: "the client offers no \(method)"))))]
        case .notification("notifications/progress", let params?):
            return progress(params).map { [.toSupervisor($0)] } ?? []
        case .notification("notifications/message", let params?):
            return [.toSupervisor(MCPTranslation.log(params))]
        case .notification:
            return []
        }
    }

    /// The server exited, or wrote what is not JSON-RPC or a line past the limit: the worker
    /// is done for; the run in flight (or the handshake) gets an error saying why.
    public mutating func serverFailed(_ why: String) -> [Action] {
        var actions: [Action] = []
        switch phase {
        case .handshaking(let supervisorID):
            actions.append(.toSupervisor(.response(id: supervisorID, result: .failure(RPCError(code: ErrorCode.internalError, message: "the MCP server \(why) before its handshake")))))
        case .ready:
            if let call { actions.append(.toSupervisor(.response(id: call.supervisorID, result: .failure(MCPTranslation.failure("the MCP server \(why)"))))) }
        default: break
        }
        phase = .finished
        call = nil
        return actions + [.finish(status: 1)]
    }

    // MARK: - Steps

    static var initializeParams: JSONValue {
        ["protocolVersion": .string(MCPVersions.latest), "capabilities": [:], "clientInfo": ["name": "purser", "version": "0.1.0"]]
    }

    private mutating func take() -> Int64 {
        defer { nextServerID += 1 }
        return nextServerID
    }

    private mutating func handshake(_ supervisorID: RPCID, _ result: Result<JSONValue, RPCError>) -> [Action] {
        switch MCPTranslation.serverInfo(result) {
        case .failure(let error):
            phase = .finished
            return [.toSupervisor(.response(id: supervisorID, result: .failure(error))), .finish(status: 1)]
        case .success(let info):
            server = info
            phase = .ready
            let answer: JSONValue = [
                "protocolVersion": 1, "plugin": ["name": .string(info.name), "version": .string(info.version)],
                // The revision goes in capabilities too, which the supervisor keeps in its record.
                "capabilities": [
                    "cancel": true, "progress": true, "sequentialRuns": true, "mcpProtocolVersion": .string(info.protocolVersion),
                ],
                "mcp": ["protocolVersion": .string(info.protocolVersion)],
            ]
            return [.toServer(.notification(method: "notifications/initialized", params: nil)), .toSupervisor(.response(id: supervisorID, result: .success(answer)))]
        }
    }

    private mutating func run(_ id: RPCID, _ params: JSONValue?) -> [Action] {
        let runID = params?["runId"]?.stringValue ?? ""
        let input = params?["input"]
        if input?["list"] == true {
            pages = 0
            call = Call(supervisorID: id, serverID: take(), runID: runID, listed: [])
            return [.toServer(.request(id: .number(call!.serverID), method: "tools/list", params: nil))]
        }
        guard let tool = input?["tool"]?.stringValue, !tool.isEmpty else {
            return [.toSupervisor(.response(id: id, result: .failure(RPCError(code: ErrorCode.invalidParams, message: "input.tool: the MCP tool to call"))))]
        }
        let arguments = input?["arguments"] ?? [:]
        guard arguments.objectValue != nil else {
            return [.toSupervisor(.response(id: id, result: .failure(RPCError(code: ErrorCode.invalidParams, message: "input.arguments: expected an object"))))]
        }
        call = Call(supervisorID: id, serverID: take(), runID: runID)
        let params: JSONValue = ["name": .string(tool), "arguments": arguments, "_meta": ["progressToken": .string(runID)]]
        return [.toServer(.request(id: .number(call!.serverID), method: "tools/call", params: params))]
    }

    private mutating func answered(_ result: Result<JSONValue, RPCError>) -> [Action] {
        guard var current = call else { return [] }
        if current.listed != nil, case .success(let page) = result {
            let tools = page["tools"]?.arrayValue ?? []
            current.listed! += tools
            current.listedBytes += JSONValue.array(tools).serialized().utf8.count
            pages += 1
            guard current.listedBytes <= Self.maxListBytes else {
                call = nil
                return [.toSupervisor(.response(id: current.supervisorID, result: .failure(MCPTranslation.failure("tools/list holds over \(Self.maxListBytes) bytes"))))]
            }
            if let cursor = page["nextCursor"]?.stringValue, pages < Self.maxPages {
                current.serverID = take()
                call = current
                return [.toServer(.request(id: .number(current.serverID), method: "tools/list", params: ["cursor": .string(cursor)]))]
            }
            call = nil
            guard pages < Self.maxPages || page["nextCursor"] == nil else {
                return [.toSupervisor(.response(id: current.supervisorID, result: .failure(MCPTranslation.failure("tools/list went on past \(Self.maxPages) pages"))))]
            }
            let output: JSONValue = ["tools": .array(current.listed!), "server": serverJSON]
            return [.toSupervisor(.response(id: current.supervisorID, result: .success(["output": output])))]
        }
        call = nil
        return [.toSupervisor(.response(id: current.supervisorID, result: MCPTranslation.runResult(result)))]
    }

    private var serverJSON: JSONValue {
        guard let server else { return .null }
        return ["name": .string(server.name), "version": .string(server.version), "protocolVersion": .string(server.protocolVersion)]
    }

    private mutating func cancel(_ params: JSONValue?) -> [Action] {
        guard let current = call, params?["runId"]?.stringValue == current.runID else { return [] }
        call = nil
        let reason = params?["reason"]?.stringValue ?? "cancelled"
        return [
            .toServer(.notification(method: "notifications/cancelled", params: ["requestId": .number(JSONNumber(current.serverID)), "reason": .string(reason)])),
            .toSupervisor(.response(id: current.supervisorID, result: .failure(RPCError(code: ErrorCode.cancelled, message: "cancelled: \(reason)")))),
        ]
    }

    private func progress(_ params: JSONValue) -> RPCMessage? {
        guard let current = call, params["progressToken"]?.stringValue == current.runID else { return nil }
        return MCPTranslation.progress(params, runID: current.runID)
    }
}
