@testable import PurserMCP
import PurserProtocol
import Testing

@Suite("MCPServerSession: Purser's side of an MCP session")
struct MCPServerSessionTests {
    func answer(_ actions: [MCPServerSession.Action]) -> Result<JSONValue, RPCError>? {
        guard actions.count == 1, case .send(.response(_, let result)) = actions[0] else { return nil }
        return result
    }

    /// Params carrying the stateless envelope at `version`.
    static func stateless(_ version: String = "2026-07-28", _ params: [String: JSONValue] = [:], meta: [String: JSONValue] = [:]) -> JSONValue {
        var params = params
        params["_meta"] = .object(meta.merging([
            MCPEnvelope.protocolVersion: .string(version), MCPEnvelope.clientInfo: ["name": "c", "version": "1"],
            MCPEnvelope.clientCapabilities: [:],
        ]) { mine, _ in mine })
        return .object(params)
    }

    @Test("the handshake revisions: the client's if Purser speaks it, else Purser's newest; tools wait for initialize")
    func handshake() throws {
        var session = MCPServerSession(tools: [], serverVersion: "0.1.0")
        #expect(answer(session.receive(.request(id: .number(2), method: "tools/list", params: nil)))?.failureCode == ErrorCode.invalidRequest, "initialize first")
        for (asked, given) in [("2025-03-26", "2025-03-26"), ("2024-11-05", "2024-11-05"), ("1999-01-01", "2025-11-25")] {
            let result = try #require(answer(session.receive(.request(id: .number(3), method: "initialize", params: ["protocolVersion": .string(asked)]))))
            #expect((try? result.get())?["protocolVersion"] == .string(given))
        }
        let listed = try #require(try answer(session.receive(.request(id: .number(4), method: "tools/list", params: nil)))?.get())
        #expect(listed.objectValue?["resultType"] == nil && listed.objectValue?["_meta"] == nil, "a handshake-era result is not stamped: \(listed)")
    }

    @Test("the stateless revision: server/discover names it; requests carrying it are served without initialize, stamped; another revision gets -32022 naming Purser's")
    func statelessRevision() throws {
        var session = MCPServerSession(tools: [["name": "t", "inputSchema": ["type": "object"]]], serverVersion: "0.1.0")
        let discovered = try #require(try answer(session.receive(.request(id: .number(1), method: "server/discover", params: Self.stateless())))?.get())
        #expect(discovered["supportedVersions"] == ["2026-07-28"] && discovered["capabilities"]?["tools"] != nil, "\(discovered)")
        #expect(discovered["resultType"] == "complete" && discovered["_meta"]?[MCPEnvelope.serverInfo]?["name"] == "purser")
        let listed = try #require(try answer(session.receive(.request(id: .number(2), method: "tools/list", params: Self.stateless())))?.get())
        #expect(listed["tools"]?.arrayValue?.count == 1 && listed["resultType"] == "complete" && listed["ttlMs"] == 0, "\(listed)")
        let call = session.receive(.request(id: .number(3), method: "tools/call", params: Self.stateless("2026-07-28", ["name": "t"], meta: ["progressToken": "p"])))
        guard case .call(let reply, "t", _, let token) = call.first, token == "p" else { Issue.record("\(call)"); return }
        // A passed-on result of a stateless server names that server: Purser's name replaces it.
        let passedOn: JSONValue = ["content": [], "resultType": "complete", "_meta": [MCPEnvelope.serverInfo: ["name": "mcp-time"]]]
        guard case .response(.number(3), .success(let stamped)) = reply.message(passedOn) else { Issue.record("\(reply)"); return }
        #expect(stamped["resultType"] == "complete" && stamped["_meta"]?[MCPEnvelope.serverInfo]?["name"] == "purser", "\(stamped)")
        _ = session.receive(.request(id: .number(7), method: "initialize", params: ["protocolVersion": "2025-11-25"]))
        let legacy = session.receive(.request(id: .number(8), method: "tools/call", params: ["name": "t"]))
        guard case .call(let legacyReply, _, _, _) = legacy.first,
              case .response(_, .success(let plain)) = legacyReply.message(passedOn) else { Issue.record("\(legacy)"); return }
        #expect(plain == ["content": []], "a handshake-era answer has no stateless fields: \(plain)")

        for method in ["server/discover", "tools/list"] {
            let refused = answer(session.receive(.request(id: .number(4), method: method, params: Self.stateless("2099-01-01"))))
            guard case .failure(let error)? = refused else { Issue.record("\(String(describing: refused))"); continue }
            #expect(error.code == -32022 && error.data?["requested"] == "2099-01-01", "\(error)")
            #expect(error.data?["supported"] == ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"])
            #expect(error.message.contains("2099-01-01") && error.message.contains("2026-07-28"), "\(error.message)")
        }
        #expect(answer(session.receive(.request(id: .number(5), method: "server/discover", params: nil)))?.failureCode == ErrorCode.invalidParams)
        let noCapabilities: JSONValue = ["_meta": [MCPEnvelope.protocolVersion: "2026-07-28"]]
        #expect(answer(session.receive(.request(id: .number(6), method: "tools/list", params: noCapabilities)))?.failureCode == ErrorCode.invalidParams)
    }

    @Test("a call's result carries its run in _meta[\"purser/run\"], beside the other _meta keys, for every revision; a server's own purser/run is replaced")
    func runInMeta() throws {
        var session = MCPServerSession(tools: [["name": "t", "inputSchema": ["type": "object"]]], serverVersion: "0.1.0")
        let passedOn: JSONValue = ["content": [], "_meta": ["server/key": 1, "purser/run": "spoofed"]]
        let run: JSONValue = ["verdict": "ok", "credits": ["used": 0, "reserved": 1], "worker": ["pid": 7, "run": 2]]
        let result = MCPServerSession.withRun(passedOn, run)
        #expect(result["_meta"] == ["server/key": 1, "purser/run": run], "\(result)")
        #expect(MCPServerSession.withRun(MCPServerSession.failure("x"), run)["_meta"] == ["purser/run": run])

        let call = session.receive(.request(id: .number(1), method: "tools/call", params: Self.stateless("2026-07-28", ["name": "t"])))
        guard case .call(let reply, _, _, _) = call.first, case .response(_, .success(let stamped)) = reply.message(result) else {
            Issue.record("\(call)")
            return
        }
        #expect(stamped["_meta"]?["purser/run"] == run && stamped["_meta"]?["server/key"] == 1, "\(stamped)")
        #expect(stamped["_meta"]?[MCPEnvelope.serverInfo]?["name"] == "purser", "\(stamped)")
        _ = session.receive(.request(id: .number(2), method: "initialize", params: ["protocolVersion": "2025-11-25"]))
        let legacy = session.receive(.request(id: .number(3), method: "tools/call", params: ["name": "t"]))
        guard case .call(let legacyReply, _, _, _) = legacy.first, case .response(_, .success(let plain)) = legacyReply.message(result) else {
            Issue.record("\(legacy)")
            return
        }
        #expect(plain["_meta"] == ["server/key": 1, "purser/run": run], "\(plain)")
    }

    @Test("tools/list pages by 100; a call names a known tool with object arguments; a cancel names its request")
    func toolsAndCalls() throws {
        let tools: [JSONValue] = (0..<150).map { ["name": .string("t\($0)"), "inputSchema": ["type": "object"]] }
        var session = MCPServerSession(tools: tools, serverVersion: "0.1.0")
        _ = session.receive(.request(id: .number(1), method: "initialize", params: ["protocolVersion": "2025-11-25"]))
        let first = try #require(try answer(session.receive(.request(id: .number(2), method: "tools/list", params: nil)))?.get())
        #expect(first["tools"]?.arrayValue?.count == 100 && first["nextCursor"] == "100")
        let second = try #require(try answer(session.receive(.request(id: .number(3), method: "tools/list", params: ["cursor": "100"])))?.get())
        #expect(second["tools"]?.arrayValue?.count == 50 && second["nextCursor"] == nil)
        let call = session.receive(.request(id: .number(4), method: "tools/call", params: ["name": "t7", "arguments": ["a": 1], "_meta": ["progressToken": "p"]]))
        guard case .call(let reply, let name, let arguments, let token) = call.first else { Issue.record("\(call)"); return }
        #expect(reply.id == .number(4) && name == "t7" && arguments == ["a": 1] && token == "p")
        #expect(answer(session.receive(.request(id: .number(5), method: "tools/call", params: ["name": "nope"])))?.failureCode == ErrorCode.invalidParams)
        #expect(answer(session.receive(.request(id: .number(6), method: "tools/call", params: ["name": "t1", "arguments": [1]])))?.failureCode == ErrorCode.invalidParams)
        let cancel = session.receive(.notification(method: "notifications/cancelled", params: ["requestId": 4, "reason": "user"]))
        guard case .cancel(let cancelled) = cancel.first else { Issue.record("\(cancel)"); return }
        #expect(cancelled == .number(4))
    }
}

extension Result where Success == JSONValue, Failure == RPCError {
    var failureCode: Int? {
        if case .failure(let error) = self { return error.code }
        return nil
    }
}
