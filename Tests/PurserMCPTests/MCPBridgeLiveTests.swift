import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

/// `purser-mcp` with a real MCP server (mcp-server-time from PyPI, installed by .ci/setup).
@Suite("purser-mcp with mcp-server-time")
struct MCPBridgeLiveTests {
    static let server = "/opt/purser-mcp/bin/mcp-server-time"

    static func run(_ id: Int, _ runID: String, _ input: JSONValue) -> JSONValue {
        ["jsonrpc": "2.0", "id": .number(JSONNumber(id)), "method": "run", "params": [
            "runId": .string(runID), "input": input,
            "budget": ["credits": 1, "deadlineMs": 4_102_444_800_000, "memoryBytes": 268_435_456, "tools": []],
        ]]
    }

    @Test("Purser's protocol in, MCP out: the handshake, tools/list, a call, a failing call, shutdown")
    func speaksForTheServer() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.server), "run .ci/setup: \(Self.server) is missing")
        let answers = try await offPool { () throws -> [JSONValue] in
            let channel = try LineChannel(executable: Fixtures.product("purser-mcp"), arguments: ["--", Self.server])
            var answers: [JSONValue] = []
            try channel.send(["jsonrpc": "2.0", "id": 1, "method": "initialize", "params": [
                "protocolVersion": 1, "supervisor": ["name": "purser", "version": "0.1.0"], "worker": ["id": "w-1", "plugin": "time"],
                "limits": ["maxLineBytes": 8_388_608],
            ]])
            answers.append(try channel.receive() ?? .null)
            try channel.send(Self.run(2, "r-1", ["list": true]))
            answers.append(try channel.receive() ?? .null)
            try channel.send(Self.run(3, "r-2", ["tool": "get_current_time", "arguments": ["timezone": "Europe/Paris"]]))
            answers.append(try channel.receive() ?? .null)
            try channel.send(Self.run(4, "r-3", ["tool": "get_current_time", "arguments": ["timezone": "Nowhere/Bad"]]))
            answers.append(try channel.receive() ?? .null)
            try channel.send(["jsonrpc": "2.0", "id": 5, "method": "shutdown"])
            answers.append(try channel.receive() ?? .null)
            answers.append(.number(JSONNumber(Int(channel.finish()))))
            return answers
        }
        let (initialized, listed, called, failed, shutdown, status) = (answers[0], answers[1], answers[2], answers[3], answers[4], answers[5])
        #expect(initialized["result"]?["plugin"]?["name"] == "mcp-time" && initialized["result"]?["mcp"]?["protocolVersion"] == "2026-07-28", "\(initialized)")
        #expect(initialized["result"]?["capabilities"]?["mcpProtocolVersion"] == "2026-07-28", "the revision the supervisor records")
        let tools = listed["result"]?["output"]?["tools"]?.arrayValue ?? []
        #expect(Set(tools.compactMap { $0["name"]?.stringValue }) == ["get_current_time", "convert_time"], "\(listed)")
        #expect(tools.allSatisfy { $0["inputSchema"]?["type"] == "object" })
        #expect(called["result"]?["output"]?["structuredContent"]?["timezone"] == "Europe/Paris", "\(called)")
        #expect(failed["error"]?["code"] == -32020 && failed["error"]?["message"]?.stringValue?.contains("Nowhere/Bad") == true, "\(failed)")
        #expect(shutdown["result"] == [:] && status == 0, "\(shutdown) \(status)")
    }

    @Test("a server that never answers server/discover is asked initialize after the discover timeout, and spoken to at its revision")
    func deafToDiscover() async throws {
        let server = Fixtures.file("Tests/Fixtures/mcp-hostile/server.py")
        let (answer, listed, status) = try await offPool { () throws -> (JSONValue, JSONValue, Int32) in
            let channel = try LineChannel(executable: Fixtures.product("purser-mcp"), arguments: ["--", "/usr/bin/python3", server, "deaf"])
            try channel.send(["jsonrpc": "2.0", "id": 1, "method": "initialize", "params": [
                "protocolVersion": 1, "supervisor": ["name": "purser", "version": "0.1.0"], "worker": ["id": "w-1", "plugin": "deaf"],
            ]])
            let answer = try channel.receive() ?? .null
            try channel.send(Self.run(2, "r-1", ["list": true]))
            let listed = try channel.receive() ?? .null
            return (answer, listed, channel.finish())
        }
        #expect(answer["result"]?["capabilities"]?["mcpProtocolVersion"] == "2025-11-25" && answer["result"]?["plugin"]?["name"] == "hostile-deaf", "\(answer)")
        #expect(listed["result"]?["output"]?["tools"]?.arrayValue?.isEmpty == false, "\(listed)")
        #expect(status == 0)
    }

    @Test("a server speaking only an unknown revision is refused at the handshake, both sides' revisions named, and the bridge exits 1")
    func unknownRevision() async throws {
        let peer = Fixtures.file("Tests/Fixtures/mcp-unknown-revision/peer.py")
        let (answer, status) = try await offPool { () throws -> (JSONValue, Int32) in
            let channel = try LineChannel(executable: Fixtures.product("purser-mcp"), arguments: ["--", MCPServeTests.python, peer, "server"])
            try channel.send(["jsonrpc": "2.0", "id": 1, "method": "initialize", "params": [
                "protocolVersion": 1, "supervisor": ["name": "purser", "version": "0.1.0"], "worker": ["id": "w-1", "plugin": "odd"],
            ]])
            let answer = try channel.receive() ?? .null
            return (answer, channel.finish())
        }
        let message = answer["error"]?["message"]?.stringValue ?? ""
        #expect(answer["error"]?["code"] == -32001 && message.contains("speaks revision 2099-01-01"), "\(answer)")
        #expect(message.contains("2025-11-25") && message.contains("2026-07-28"), "\(message)")
        #expect(status == 1)
    }
}
