import PurserMCP
import PurserProtocol
import Testing

@Suite("MCPServerSession: Purser's side of an MCP session")
struct MCPServerSessionTests {
    func answer(_ actions: [MCPServerSession.Action]) -> Result<JSONValue, RPCError>? {
        guard actions.count == 1, case .send(.response(_, let result)) = actions[0] else { return nil }
        return result
    }

    @Test("the revision: the client's if Purser speaks it, else Purser's newest; server/discover is not found, so clients fall back")
    func versions() throws {
        var session = MCPServerSession(tools: [], serverVersion: "0.1.0")
        let discover = answer(session.receive(.request(id: .number(1), method: "server/discover", params: ["protocolVersion": "2026-07-28"])))
        #expect(try #require(discover).failureCode == ErrorCode.methodNotFound)
        #expect(answer(session.receive(.request(id: .number(2), method: "tools/list", params: nil)))?.failureCode == ErrorCode.invalidRequest, "initialize first")
        for (asked, given) in [("2025-03-26", "2025-03-26"), ("2024-11-05", "2024-11-05"), ("1999-01-01", MCPVersions.latest)] {
            let result = try #require(answer(session.receive(.request(id: .number(3), method: "initialize", params: ["protocolVersion": .string(asked)]))))
            #expect((try? result.get())?["protocolVersion"] == .string(given))
        }
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
        guard case .call(let id, let name, let arguments, let token) = call.first else { Issue.record("\(call)"); return }
        #expect(id == .number(4) && name == "t7" && arguments == ["a": 1] && token == "p")
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
