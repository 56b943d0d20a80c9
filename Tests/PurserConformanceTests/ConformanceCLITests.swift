import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

@Suite("purser conformance", .timeLimit(.minutes(2)))
struct ConformanceCLITests {
    @Test func aConformingWorkerExitsZeroAndListsEveryCheckInJSON() async throws {
        let result = try await runPurser(["conformance", Fixtures.product("echo"), "--json"], home: Fixtures.temporaryHome())
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let report = try JSONParser.parse(result.stdout)
        #expect(report["failed"] == 0)
        let checks = report["checks"]?.arrayValue ?? []
        #expect(checks.count == 13)
        #expect(checks.allSatisfy { $0["status"] == "pass" })
        #expect(checks.first?["section"] == "5.1")
        #expect(checks.first?["sectionTitle"] == "initialize")
    }

    @Test func aFailedCheckIsPrintedWithItsSectionAndTheExitCodeSaysSo() async throws {
        let result = try await runPurser(
            ["conformance", Fixtures.product("hostile"), "--env", "HOSTILE_MODE=wrongcode", "--only", "unknown-method,ping"],
            home: Fixtures.temporaryHome())
        #expect(result.status == 23, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("FAIL  unknown-method  §14 Versioning"))
        #expect(result.stdout.contains("PASS  ping"))
        #expect(result.stdout.contains("1 passed, 1 failed, 0 skipped"))
    }

    /// The server and its arguments after --, unsandboxed; every check printed with its MCP section.
    @Test func anMCPServerIsCheckedWithItsArgumentsAndItsSections() async throws {
        let server = Fixtures.file("Tests/Fixtures/mcp-conformance/server.py")
        let passing = try await runPurser(
            ["conformance", "--mcp", "/opt/purser-mcp/bin/python3", "--", server], home: Fixtures.temporaryHome())
        #expect(passing.status == 0, "\(passing.stdout)\(passing.stderr)")
        #expect(passing.stdout.contains("PASS  tools-list      MCP server/tools#listing"), "\(passing.stdout)")
        #expect(passing.stdout.contains("10 passed, 0 failed, 0 skipped"), "\(passing.stdout)")
        let failing = try await runPurser(
            ["conformance", "--mcp", "/opt/purser-mcp/bin/python3", "--only", "ping,version", "--json", "--", server, "noping"],
            home: Fixtures.temporaryHome())
        #expect(failing.status == 23, "\(failing.stdout)\(failing.stderr)")
        let report = try JSONParser.parse(failing.stdout)
        #expect(report["failed"] == 1 && report["passed"] == 1)
        let checks = report["checks"]?.arrayValue ?? []
        #expect(checks.map { $0["name"]?.stringValue ?? "" } == ["version", "ping"])
        #expect(checks.last?["section"] == "utilities/ping" && checks.last?["status"] == "fail", "\(report)")
    }

    @Test func anUnknownCheckNameIsBadInput() async throws {
        let result = try await runPurser(
            ["conformance", Fixtures.product("echo"), "--only", "handshake,telepathy"], home: Fixtures.temporaryHome())
        #expect(result.status == 2)
        #expect(result.stderr.contains("no check named telepathy"))
    }
}
