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
        case handshaking(Handshake)
        case ready
        case finished
    }

    /// The revision being agreed: `server/discover` first, as the `mcp` package's client does,
    /// then `initialize` if the server speaks no stateless revision of Purser's (or is silent).
    struct Handshake: Sendable, Equatable {
        var supervisorID: RPCID
        var discoverID: Int64?
        var initializeID: Int64?
        var probed: [String] = []
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
    /// The stateless revision spoken, if one is: each request to the server then carries it.
    var stateless: String?
    /// How long a server may leave `server/discover` unanswered (from its start) before it
    /// is asked `initialize`: servers older than the stateless revisions may drop what they
    /// do not know. A late answer still counts.
    public static let discoverTimeoutMs = 5_000
    /// A page cap: a server whose cursors never end is refused, not followed forever; and a
    /// cap on what the pages hold together, which must fit in one line to the supervisor.
    static let maxPages = 100
    static let maxListBytes = 8 << 20
    var pages = 0

    public init() {}

    public mutating func fromSupervisor(_ message: RPCMessage) -> [Action] {
        switch message {
        case .request(let id, "initialize", _) where phase == .waiting:
            var handshake = Handshake(supervisorID: id)
            return [.startServer] + probe(&handshake, MCPVersions.latestStateless)
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
        if case .handshaking(let handshake) = phase, case .response(.number(let id), let result) = message {
            if id == handshake.discoverID { return discovered(handshake, result) }
            if id == handshake.initializeID { return initialized(handshake, result) }
            return []
        }
        switch message {
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
        case .handshaking(let handshake):
            actions.append(.toSupervisor(.response(id: handshake.supervisorID, result: .failure(RPCError(code: ErrorCode.internalError, message: "the MCP server \(why) before its handshake")))))
        case .ready:
            if let call { actions.append(.toSupervisor(.response(id: call.supervisorID, result: .failure(MCPTranslation.failure("the MCP server \(why)"))))) }
        default: break
        }
        phase = .finished
        call = nil
        return actions + [.finish(status: 1)]
    }

    /// Whether the handshake waits on `server/discover` alone (the caller's clock then runs).
    public var awaitingDiscover: Bool {
        guard case .handshaking(let handshake) = phase else { return false }
        return handshake.discoverID != nil && handshake.initializeID == nil
    }

    /// `server/discover` went unanswered for `discoverTimeoutMs`: `initialize` goes too.
    public mutating func discoverTimedOut() -> [Action] {
        guard awaitingDiscover, case .handshaking(var handshake) = phase else { return [] }
        return fallBack(&handshake)
    }

    // MARK: - Steps

    static let clientInfo: JSONValue = ["name": "purser", "version": "0.1.0"]

    static var initializeParams: JSONValue {
        ["protocolVersion": .string(MCPVersions.latestHandshake), "capabilities": [:], "clientInfo": clientInfo]
    }

    private mutating func take() -> Int64 {
        defer { nextServerID += 1 }
        return nextServerID
    }

    /// A request to the server, with the envelope when a stateless revision is spoken.
    private func request(_ id: Int64, _ method: String, _ params: JSONValue?) -> Action {
        let params = stateless.map { MCPEnvelope.stamped(params, version: $0, client: Self.clientInfo) } ?? params
        return .toServer(.request(id: .number(id), method: method, params: params))
    }

    private mutating func probe(_ handshake: inout Handshake, _ version: String) -> [Action] {
        let id = take()
        handshake.discoverID = id
        handshake.probed.append(version)
        phase = .handshaking(handshake)
        let params = MCPEnvelope.stamped(nil, version: version, client: Self.clientInfo)
        return [.toServer(.request(id: .number(id), method: "server/discover", params: params))]
    }

    private mutating func fallBack(_ handshake: inout Handshake) -> [Action] {
        defer { phase = .handshaking(handshake) }
        guard handshake.initializeID == nil else { return [] }
        let id = take()
        handshake.initializeID = id
        return [.toServer(.request(id: .number(id), method: "initialize", params: Self.initializeParams))]
    }

    /// The answer to `server/discover`: a stateless revision both speak is adopted; "not
    /// found", any other error, or no common revision falls back to `initialize`, unless the
    /// server says it speaks only revisions Purser does not.
    private mutating func discovered(_ handshake: Handshake, _ result: Result<JSONValue, RPCError>) -> [Action] {
        var handshake = handshake
        handshake.discoverID = nil
        switch result {
        case .success(let answer):
            let offered = answer["supportedVersions"]?.arrayValue?.compactMap(\.stringValue) ?? []
            guard let version = MCPVersions.stateless.last(where: offered.contains) else { return fallBack(&handshake) }
            return ready(handshake.supervisorID, MCPTranslation.discovered(answer, version: version), stateless: version)
        case .failure(let error):
            guard error.code == MCPVersions.unsupportedCode, let supported = MCPTranslation.supported(error) else { return fallBack(&handshake) }
            if let version = MCPVersions.stateless.last(where: { supported.contains($0) && !handshake.probed.contains($0) }) {
                return probe(&handshake, version)
            }
            guard supported.contains(where: MCPVersions.handshake.contains) || handshake.initializeID != nil else {
                return ready(handshake.supervisorID, .failure(MCPTranslation.unspoken(supported)), stateless: nil)
            }
            return fallBack(&handshake)
        }
    }

    private mutating func initialized(_ handshake: Handshake, _ result: Result<JSONValue, RPCError>) -> [Action] {
        var handshake = handshake
        handshake.initializeID = nil
        if case .failure(let error) = result, error.code == MCPVersions.unsupportedCode, handshake.discoverID != nil {
            // A slow server that took the late discover as its revision: its answer decides.
            phase = .handshaking(handshake)
            return []
        }
        return ready(handshake.supervisorID, MCPTranslation.serverInfo(result), stateless: nil)
    }

    private mutating func ready(
        _ supervisorID: RPCID, _ info: Result<(name: String, version: String, protocolVersion: String), RPCError>, stateless: String?
    ) -> [Action] {
        switch info {
        case .failure(let error):
            phase = .finished
            return [.toSupervisor(.response(id: supervisorID, result: .failure(error))), .finish(status: 1)]
        case .success(let info):
            server = info
            self.stateless = stateless
            phase = .ready
            let answer: JSONValue = [
                "protocolVersion": 1, "plugin": ["name": .string(info.name), "version": .string(info.version)],
                // The revision goes in capabilities too, which the supervisor keeps in its record.
                "capabilities": [
                    "cancel": true, "progress": true, "sequentialRuns": true, "mcpProtocolVersion": .string(info.protocolVersion),
                ],
                "mcp": ["protocolVersion": .string(info.protocolVersion)],
            ]
            // The stateless revisions have no handshake to close.
            let initialized: [Action] = stateless == nil ? [.toServer(.notification(method: "notifications/initialized", params: nil))] : []
            return initialized + [.toSupervisor(.response(id: supervisorID, result: .success(answer)))]
        }
    }

    private mutating func run(_ id: RPCID, _ params: JSONValue?) -> [Action] {
        let runID = params?["runId"]?.stringValue ?? ""
        let input = params?["input"]
        if input?["list"] == true {
            pages = 0
            call = Call(supervisorID: id, serverID: take(), runID: runID, listed: [])
            return [request(call!.serverID, "tools/list", nil)]
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
        return [request(call!.serverID, "tools/call", params)]
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
                return [request(current.serverID, "tools/list", ["cursor": .string(cursor)])]
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
