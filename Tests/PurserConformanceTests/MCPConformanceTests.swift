import Foundation
import PurserConformance
import PurserProtocol
import PurserTestSupport
import Testing

/// `purser conformance --mcp`: real MCP servers (installed by .ci/setup) pass every check,
/// and each mode of a small broken server (Tests/Fixtures/mcp-conformance/server.py) fails
/// exactly the check for the rule it breaks. One server at a time: a Python server's start
/// costs a second of CPU on a two-core host.
@Suite("Conformance of MCP servers", .serialized, .timeLimit(.minutes(5)))
struct MCPConformanceTests {
    static let python = "/opt/purser-mcp/bin/python3"
    static let server = Fixtures.file("Tests/Fixtures/mcp-conformance/server.py")

    /// Generous waits for servers built on the Python SDK, which start in seconds and take a
    /// second or two to exit on a busy host: the test judges the protocol, not the speed.
    static var patient: ConformanceOptions {
        var options = ConformanceOptions.mcp
        options.startupMs = 60_000
        options.exitGraceMs = 30_000
        return options
    }

    static let breakers: [(mode: String, check: String)] = [
        ("echoversion", "version"),
        ("preinitcrash", "before-initialize"),
        ("noping", "ping"),
        ("badtool", "tools-list"),
        ("unknowntoolok", "unknown-tool"),
        ("resultforunknown", "unknown-method"),
        ("cancelcrash", "cancellation"),
        ("straystdout", "stray-stdout"),
        ("noeofexit", "stdin-eof"),
    ]

    @Test func everyCheckHasABreakerAndTheCorrectModePassesThemAll() async throws {
        #expect(Set(Self.breakers.map(\.check)).union(["initialize"]) == Set(Conformance.mcpChecks.map(\.name)))
        let outcomes = try await mcpConformance(Self.python, [Self.server])
        #expect(outcomes.count == Conformance.mcpChecks.count)
        let failed = failures(outcomes)
        #expect(failed.names.isEmpty, "\(failed.details)")
        // Both pages of tools were followed.
        #expect(outcomes.first { $0.name == "tools-list" }?.result.detail.contains("2 tool(s) on 2 page(s)") == true)
    }

    @Test(arguments: breakers.map(\.mode))
    func aBrokenServerFailsExactlyTheCheckItBreaks(_ mode: String) async throws {
        let expected = try #require(Self.breakers.first { $0.mode == mode }?.check)
        let failed = failures(try await mcpConformance(Self.python, [Self.server, mode]))
        #expect(failed.names == [expected], "\(failed.details)")
    }

    /// A server that exits at once fails every check that needs an exchange; stray-stdout
    /// passes, saying the session ended early.
    @Test func aServerThatCannotStartFailsEveryCheck() async throws {
        let outcomes = try await mcpConformance(Self.python, ["-c", "import sys; sys.exit(3)"])
        #expect(failures(outcomes).names == Conformance.mcpChecks.map(\.name).filter { $0 != "stray-stdout" })
    }

    @Test func mcpServerTimePassesEveryCheck() async throws {
        let server = "/opt/purser-mcp/bin/mcp-server-time"
        try #require(FileManager.default.isExecutableFile(atPath: server), "run .ci/setup")
        let failed = failures(try await mcpConformance(server, options: Self.patient))
        #expect(failed.names.isEmpty, "\(failed.details)")
    }

    @Test func mcpServerGitPassesEveryCheck() async throws {
        let server = "/opt/purser-mcp/bin/mcp-server-git"
        try #require(FileManager.default.isExecutableFile(atPath: server), "run .ci/setup")
        let repository = FileManager.default.temporaryDirectory.appendingPathComponent("purser-git-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: repository, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: repository) }
        let made = try await runCommand("/usr/bin/git", ["init", "-q", repository])
        try #require(made.status == 0, "\(made.stderr)")
        let failed = failures(try await mcpConformance(server, ["--repository", repository], options: Self.patient))
        #expect(failed.names.isEmpty, "\(failed.details)")
    }

    /// Purser's own MCP server, with a home of its own and no plugins (so no tools).
    @Test func purserMCPServePassesEveryCheck() async throws {
        let failed = failures(try await mcpConformance(
            Fixtures.product("purser"), ["mcp", "serve"], environment: ["PURSER_HOME": Fixtures.temporaryHome()]))
        #expect(failed.names.isEmpty, "\(failed.details)")
    }
}
