@testable import PurserMCP
import PurserProtocol
import Testing

@Suite("The MCP bridge's state machine")
struct MCPBridgeTests {
    static let initialize = RPCMessage.request(id: .number(1), method: "initialize", params: ["protocolVersion": 1])

    static func run(_ id: Int64, _ input: JSONValue, runID: String = "r-1") -> RPCMessage {
        .request(id: .number(id), method: "run", params: ["runId": .string(runID), "input": input])
    }

    static func serverAnswer(_ id: Int64, _ result: JSONValue) -> RPCMessage { .response(id: .number(id), result: .success(result)) }

    static func serverError(_ id: Int64, _ code: Int, data: JSONValue? = nil) -> RPCMessage {
        .response(id: .number(id), result: .failure(RPCError(code: code, message: "no", data: data)))
    }

    /// A bridge past its handshake with a server of handshake revision `version` (which
    /// does not know `server/discover`).
    static func ready(version: String = "2025-11-25") -> (MCPBridge, [MCPBridge.Action]) {
        var bridge = MCPBridge()
        _ = bridge.fromSupervisor(initialize)
        _ = bridge.fromServer(serverError(1, ErrorCode.methodNotFound))
        let actions = bridge.fromServer(serverAnswer(2, [
            "protocolVersion": .string(version), "capabilities": ["tools": [:]], "serverInfo": ["name": "t", "version": "9"],
        ]))
        return (bridge, actions)
    }

    static func supervisorError(_ actions: [MCPBridge.Action]) -> RPCError? {
        for case .toSupervisor(.response(_, .failure(let error))) in actions { return error }
        return nil
    }

    @Test("server/discover first, at the stateless revision; \"not found\" falls back to initialize at the newest handshake revision, then notifications/initialized")
    func handshake() {
        var bridge = MCPBridge()
        let first = bridge.fromSupervisor(Self.initialize)
        #expect(first.first == .startServer)
        guard case .toServer(.request(.number(1), "server/discover", let probe))? = first.last else { Issue.record("\(first)"); return }
        #expect(probe?["_meta"]?[MCPEnvelope.protocolVersion] == "2026-07-28" && probe?["_meta"]?[MCPEnvelope.clientInfo]?["name"] == "purser")
        #expect(bridge.awaitingDiscover)
        let fallBack = bridge.fromServer(Self.serverError(1, ErrorCode.methodNotFound))
        guard case .toServer(.request(.number(2), "initialize", let params))? = fallBack.first else { Issue.record("\(fallBack)"); return }
        #expect(params?["protocolVersion"] == "2025-11-25" && !bridge.awaitingDiscover)
        let (_, actions) = Self.ready()
        #expect(actions.first == .toServer(.notification(method: "notifications/initialized", params: nil)))
        guard case .toSupervisor(.response(.number(1), .success(let result)))? = actions.last else { Issue.record("\(actions)"); return }
        #expect(result["protocolVersion"] == 1 && result["plugin"]?["name"] == "t" && result["capabilities"]?["cancel"] == true)
    }

    @Test("a server speaking a revision purser does not is refused with both named, and the bridge exits 1")
    func unknownRevision() {
        let (_, actions) = Self.ready(version: "2099-01-01")
        let error = Self.supervisorError(actions)
        #expect(error?.code == ErrorCode.unsupportedProtocolVersion && error?.message.contains("2099-01-01") == true && error?.message.contains("2025-11-25") == true)
        #expect(actions.last == .finish(status: 1))

        // It says so to discover: no initialize is tried.
        var bridge = MCPBridge()
        _ = bridge.fromSupervisor(Self.initialize)
        let refused = bridge.fromServer(Self.serverError(1, -32022, data: ["supported": ["2099-01-01"], "requested": "2026-07-28"]))
        let message = Self.supervisorError(refused)?.message ?? ""
        #expect(message.contains("speaks revision 2099-01-01") && message.contains("2026-07-28") && message.contains("2025-11-25"), "\(refused)")
        #expect(refused.last == .finish(status: 1))
    }

    @Test("a server that discovers at 2026-07-28 is spoken to statelessly: no notifications/initialized, every request carries the revision")
    func stateless() {
        var bridge = MCPBridge()
        _ = bridge.fromSupervisor(Self.initialize)
        let actions = bridge.fromServer(Self.serverAnswer(1, [
            "supportedVersions": ["2026-07-28"], "capabilities": ["tools": [:]], "_meta": [MCPEnvelope.serverInfo: ["name": "t", "version": "9"]],
        ]))
        guard actions.count == 1, case .toSupervisor(.response(.number(1), .success(let result))) = actions[0] else { Issue.record("\(actions)"); return }
        #expect(result["plugin"]?["name"] == "t" && result["capabilities"]?["mcpProtocolVersion"] == "2026-07-28" && result["mcp"]?["protocolVersion"] == "2026-07-28")
        let call = bridge.fromSupervisor(Self.run(2, ["tool": "now", "arguments": [:]]))
        guard case .toServer(.request(_, "tools/call", let params))? = call.first else { Issue.record("\(call)"); return }
        #expect(params?["_meta"]?["progressToken"] == "r-1" && params?["_meta"]?[MCPEnvelope.protocolVersion] == "2026-07-28", "\(String(describing: params))")
        #expect(params?["_meta"]?[MCPEnvelope.clientCapabilities] == [:])
        // The output is the tool's result, the same as an initialize-era server's: without the envelope.
        guard case .toServer(.request(.number(let callID), _, _))? = call.first else { return }
        let answered = bridge.fromServer(Self.serverAnswer(callID, [
            "content": [], "resultType": "complete", "_meta": [MCPEnvelope.serverInfo: ["name": "t"], "other": 1],
        ]))
        #expect(answered == [.toSupervisor(.response(id: .number(2), result: .success(["output": ["content": [], "_meta": ["other": 1]]])))])
    }

    @Test("discover naming no revision purser speaks statelessly falls back to initialize; a silent discover does after the timeout, and its late answer still counts")
    func fallBacks() {
        var bridge = MCPBridge()
        _ = bridge.fromSupervisor(Self.initialize)
        let handshakeOnly = bridge.fromServer(Self.serverAnswer(1, ["supportedVersions": ["2099-01-01"], "capabilities": ["tools": [:]]]))
        guard case .toServer(.request(.number(2), "initialize", _))? = handshakeOnly.first else { Issue.record("\(handshakeOnly)"); return }

        var silent = MCPBridge()
        _ = silent.fromSupervisor(Self.initialize)
        let timedOut = silent.discoverTimedOut()
        guard case .toServer(.request(.number(2), "initialize", _))? = timedOut.first else { Issue.record("\(timedOut)"); return }
        #expect(silent.discoverTimedOut().isEmpty, "initialize goes once")
        // A slow server of the stateless revision: discover answered late, initialize refused.
        let late = silent.fromServer(Self.serverAnswer(1, ["supportedVersions": ["2026-07-28"], "capabilities": ["tools": [:]]]))
        guard case .toSupervisor(.response(_, .success(let result)))? = late.last else { Issue.record("\(late)"); return }
        #expect(result["mcp"]?["protocolVersion"] == "2026-07-28" && result["plugin"]?["name"] == "mcp-server")
        #expect(silent.fromServer(Self.serverError(2, -32022, data: ["supported": ["2026-07-28"], "requested": "2025-11-25"])).isEmpty)
    }

    @Test("a call's result is the output; isError and JSON-RPC errors are the run's error, never with the server's own code")
    func results() {
        var (bridge, _) = Self.ready()
        let sent = bridge.fromSupervisor(Self.run(2, ["tool": "now", "arguments": ["tz": "UTC"]]))
        guard case .toServer(.request(.number(let callID), "tools/call", let params))? = sent.first else { Issue.record("\(sent)"); return }
        #expect(params?["name"] == "now" && params?["_meta"]?["progressToken"] == "r-1")
        let ok = bridge.fromServer(Self.serverAnswer(callID, ["content": [["type": "text", "text": "noon"]]]))
        #expect(ok == [.toSupervisor(.response(id: .number(2), result: .success(["output": ["content": [["type": "text", "text": "noon"]]]])))])

        _ = bridge.fromSupervisor(Self.run(3, ["tool": "now"], runID: "r-2"))
        let failed = bridge.fromServer(Self.serverAnswer(callID + 1, ["isError": true, "content": [["type": "text", "text": "bad zone"]]]))
        #expect(Self.supervisorError(failed) == RPCError(code: MCPTranslation.toolFailed, message: "bad zone"))

        _ = bridge.fromSupervisor(Self.run(4, ["tool": "now"], runID: "r-3"))
        let lying = bridge.fromServer(.response(id: .number(callID + 2), result: .failure(RPCError(code: ErrorCode.cancelled, message: "cancelled"))))
        #expect(Self.supervisorError(lying)?.code == MCPTranslation.toolFailed, "a server's -32800 is not a cancel")
    }

    @Test("cancel: notifications/cancelled to the server, -32800 to the supervisor at once, the late answer dropped")
    func cancel() {
        var (bridge, _) = Self.ready()
        let sent = bridge.fromSupervisor(Self.run(2, ["tool": "slow"]))
        guard case .toServer(.request(.number(let callID), _, _))? = sent.first else { return }
        let cancelled = bridge.fromSupervisor(.notification(method: "cancel", params: ["runId": "r-1", "reason": "deadline"]))
        #expect(cancelled.first == .toServer(.notification(method: "notifications/cancelled", params: ["requestId": .number(JSONNumber(callID)), "reason": "deadline"])))
        #expect(Self.supervisorError(cancelled)?.code == ErrorCode.cancelled)
        #expect(bridge.fromServer(Self.serverAnswer(callID, ["content": []])).isEmpty)
    }

    @Test("tools/list follows nextCursor and gathers every page; a server's requests for sampling are refused; progress becomes a fraction")
    func listingAndNotifications() {
        var (bridge, _) = Self.ready()
        let first = bridge.fromSupervisor(Self.run(2, ["list": true]))
        guard case .toServer(.request(.number(let page1), "tools/list", _))? = first.first else { Issue.record("\(first)"); return }
        let next = bridge.fromServer(Self.serverAnswer(page1, ["tools": [["name": "a"]], "nextCursor": "p2"]))
        guard case .toServer(.request(.number(let page2), "tools/list", let params))? = next.first else { Issue.record("\(next)"); return }
        #expect(params?["cursor"] == "p2")
        let done = bridge.fromServer(Self.serverAnswer(page2, ["tools": [["name": "b"]]]))
        guard case .toSupervisor(.response(_, .success(let result)))? = done.first else { Issue.record("\(done)"); return }
        #expect(result["output"]?["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["a", "b"])

        let sampling = bridge.fromServer(.request(id: .string("s1"), method: "sampling/createMessage", params: [:]))
        guard case .toServer(.response(.string("s1"), .failure(let error)))? = sampling.first else { Issue.record("\(sampling)"); return }
        #expect(error.code == ErrorCode.methodNotFound)

        _ = bridge.fromSupervisor(Self.run(3, ["tool": "slow"], runID: "r-9"))
        let progress = bridge.fromServer(.notification(method: "notifications/progress", params: ["progressToken": "r-9", "progress": 3, "total": 4]))
        #expect(progress == [.toSupervisor(.notification(method: "progress", params: ["runId": "r-9", "fraction": .number(JSONNumber(0.75)!)]))])
        let foreign = bridge.fromServer(.notification(method: "notifications/progress", params: ["progressToken": "r-other", "progress": 1, "total": 4]))
        #expect(foreign.isEmpty, "progress for another token is not this run's")
    }

    @Test("the server dying mid-call fails the call with how it ended, and the bridge exits 1")
    func serverDies() {
        var (bridge, _) = Self.ready()
        _ = bridge.fromSupervisor(Self.run(2, ["tool": "x"]))
        let actions = bridge.serverFailed("exited (signal 9)")
        #expect(Self.supervisorError(actions)?.message == "the MCP server exited (signal 9)")
        #expect(actions.last == .finish(status: 1))
    }
}
