import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

/// `purser mcp serve` driven by the MCP client of the `mcp` package (PyPI, installed by
/// .ci/setup): Tests/Fixtures/mcp-client/client.py.
@Suite("Purser as an MCP server, for a real MCP client", .timeLimit(.minutes(3)))
struct MCPServeTests {
    let home = Fixtures.temporaryHome()
    static let python = "/opt/purser-mcp/bin/python3"

    func purser(_ arguments: [String]) async throws -> CommandResult { try await runPurser(arguments, home: home) }

    /// Runs Tests/Fixtures/mcp-client/client.py with `arguments`: its steps, by name.
    func client(_ arguments: [String]) async throws -> [String: JSONValue] {
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        let client = try await runCommand(Self.python, [Fixtures.file("Tests/Fixtures/mcp-client/client.py")] + arguments, environment: environment)
        try #require(client.status == 0, "\(client.stderr)")
        var steps: [String: JSONValue] = [:]
        for line in client.stdout.split(separator: "\n") {
            let step = try JSONParser.parse(Array(line.utf8))
            steps[step["step"]?.stringValue ?? ""] = step
        }
        return steps
    }

    @Test("lists the tools, calls them under the team's budget, refuses a bad input, cancels a slow call, and says when credits run out")
    func aClientUsesPurser() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.python), "run .ci/setup")
        try "mcp:\n  tools: { get_current_time: { credits: 0.5 } }\n".write(toFile: home + "/time.yaml", atomically: true, encoding: .utf8)
        for setup in [
            ["mcp", "add", "time", "--manifest", home + "/time.yaml", "--", MCPBridgeLiveTests.server],
            ["plugin", "add", Fixtures.product("scripted"), "--name", "scripted"], ["team", "create", "t", "--credits", "2.5"],
        ] {
            let done = try await purser(setup)
            try #require(done.status == 0, "\(setup): \(done.stderr)")
        }
        let steps = try await client([Fixtures.product("purser"), "mcp", "serve", "--team", "t"])
        // The package's default client speaks the stateless revision with Purser; an older one initialize.
        #expect(steps["revision"] == ["step": "revision", "version": "2026-07-28", "server": "purser"], "\(steps["revision"] ?? .null)")
        #expect(steps["legacy"]?["version"] == "2025-03-26" && steps["legacy"]?["tools"] == 3, "\(steps["legacy"] ?? .null)")
        #expect(steps["legacy"]?["text"]?.stringValue?.contains("$.timezone: expected string") == true, "\(steps["legacy"] ?? .null)")
        #expect(steps["list"]?["tools"] == ["scripted", "time.convert_time", "time.get_current_time"], "\(steps["list"] ?? .null)")
        #expect(steps["list"]?["schemas"]?["time.get_current_time"]?["required"] == ["timezone"])
        #expect(steps["call"]?["isError"] == false && steps["call"]?["structured"]?["timezone"] == "Europe/Paris", "\(steps["call"] ?? .null)")
        #expect(steps["bad-input"]?["isError"] == true, "\(steps["bad-input"] ?? .null)")
        #expect(steps["bad-input"]?["text"]?.stringValue?.contains("$.timezone: expected string") == true)
        #expect(steps["plugin"]?["structured"] == ["done": true], "\(steps["plugin"] ?? .null)")
        #expect(steps["cancelled"]?["cancelled"] == true)
        // 2.5 credits: Paris took 0.5; three more calls take 0.5 each (each reserving 1); the last finds 0.5.
        let answers = steps["exhausted"]?["answers"]?.arrayValue ?? []
        #expect(answers.map { $0["isError"] } == [false, false, false, true], "\(answers)")
        #expect(answers.last?["text"]?.stringValue?.hasPrefix("denied: ") == true, "\(answers.last ?? .null)")

        let team = try JSONParser.parse(Array(try await purser(["team", "show", "t", "--json"]).stdout.utf8))
        let nodes = team.arrayValue ?? []
        #expect(nodes.first?["consumed"]?["credits"] == 2 && nodes.first?["reserved"]?["credits"] == 0, "\(nodes.first ?? .null)")
        #expect(nodes.contains { $0["name"] == "scripted" && $0["outcome"] == "cancelled" && $0["returned"]?["credits"] == 1 }, "the slow call was cancelled")
    }

    /// Each call's `_meta["purser/run"]` (verdict, credits, worker), from a client step's `calls`.
    static func runs(_ step: JSONValue?) -> [JSONValue] {
        (step?["calls"]?.arrayValue ?? []).map { $0["meta"]?["purser/run"] ?? .null }
    }

    @Test("a session keeps workers: a trusted plugin's, and an untrusted server's where its manifest and team allow; a cancel ends the kept one; each result's _meta says which ran it")
    func aSessionKeepsWorkers() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.python), "run .ci/setup")
        try "trusted: true\n".write(toFile: home + "/scripted.yaml", atomically: true, encoding: .utf8)
        try "reuseUntrusted: true\nmcp: { startupTimeout: 30s }\n".write(toFile: home + "/time.yaml", atomically: true, encoding: .utf8)
        for setup in [
            ["mcp", "add", "time", "--manifest", home + "/time.yaml", "--", MCPBridgeLiveTests.server],
            ["plugin", "add", Fixtures.product("scripted"), "--name", "scripted", "--manifest", home + "/scripted.yaml"],
            ["team", "create", "keeping", "--credits", "100", "--reuse-untrusted"], ["team", "create", "other", "--credits", "100"],
        ] {
            let done = try await purser(setup)
            try #require(done.status == 0, "\(setup): \(done.stderr)")
        }
        let steps = try await client(["--kept", Fixtures.product("purser"), "keeping", "other", home + "/gate"])

        let trusted = Self.runs(steps["trusted"])
        #expect(trusted.map { $0["worker"]?["run"] } == [1, 2, 3], "\(trusted)")
        #expect(Set(trusted.map { $0["worker"]?["pid"] }).count == 1, "\(trusted)")
        #expect(trusted.allSatisfy { $0["verdict"] == "ok" && $0["credits"] == ["used": 0, "reserved": 1] }, "\(trusted)")
        // The stateless revision's own _meta stays beside Purser's.
        let first = steps["trusted"]?["calls"]?.arrayValue?.first
        #expect(first?["meta"]?["io.modelcontextprotocol/serverInfo"]?["name"] == "purser", "\(first ?? .null)")
        #expect(first?["structured"]?["runs"] == 1, "\(first ?? .null)")

        #expect(steps["cancelled"]?["gone"] == true, "the cancelled call's kept worker outlived it: \(steps["cancelled"] ?? .null)")
        let after = Self.runs(steps["after-cancel"])
        #expect(after.map { $0["worker"]?["run"] } == [1, 2], "\(after)")
        #expect(after.first?["worker"]?["pid"] != trusted.first?["worker"]?["pid"], "\(after)")
        // A verdict other than ok is a tool error, with the same account.
        #expect(steps["after-cancel"]?["calls"]?.arrayValue?.last?["isError"] == true && after.last?["verdict"] == "error", "\(steps["after-cancel"] ?? .null)")

        let keptServer = Self.runs(steps["untrusted-kept"])
        #expect(keptServer.map { $0["worker"]?["run"] } == [1, 2], "\(keptServer)")
        #expect(Set(keptServer.map { $0["worker"]?["pid"] }).count == 1, "\(keptServer)")
        let freshServer = Self.runs(steps["untrusted-fresh"])
        #expect(freshServer.map { $0["worker"]?["run"] } == [1, 1], "\(freshServer)")
        #expect((keptServer + freshServer).allSatisfy { $0["verdict"] == "ok" }, "\(keptServer + freshServer)")
    }

    @Test("a client speaking only an unknown revision gets -32022 naming the revisions Purser speaks; its initialize gets Purser's newest")
    func unknownRevision() async throws {
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        let peer = try await runCommand(
            Self.python, [Fixtures.file("Tests/Fixtures/mcp-unknown-revision/peer.py"), "client", Fixtures.product("purser"), "mcp", "serve"],
            environment: environment)
        try #require(peer.status == 0, "\(peer.stderr)")
        var answers: [String: JSONValue] = [:]
        for line in peer.stdout.split(separator: "\n") {
            let step = try JSONParser.parse(Array(line.utf8))
            answers[step["method"]?.stringValue ?? ""] = step["answer"]
        }
        let all: JSONValue = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"]
        for method in ["server/discover", "tools/list"] {
            let error = answers[method]?["error"]
            #expect(error?["code"] == -32022 && error?["data"] == ["supported": all, "requested": "2099-01-01"], "\(method): \(error ?? .null)")
            #expect(error?["message"]?.stringValue?.contains("2099-01-01") == true, "\(error ?? .null)")
        }
        #expect(answers["initialize"]?["result"]?["protocolVersion"] == "2025-11-25", "\(answers["initialize"] ?? .null)")
    }
}
