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

    @Test func mcpIsRefusedForNow() async throws {
        let result = try await runPurser(["conformance", Fixtures.product("echo"), "--mcp"], home: Fixtures.temporaryHome())
        #expect(result.status == 2)
        #expect(result.stderr.contains("--mcp: not yet"))
    }

    @Test func anUnknownCheckNameIsBadInput() async throws {
        let result = try await runPurser(
            ["conformance", Fixtures.product("echo"), "--only", "handshake,telepathy"], home: Fixtures.temporaryHome())
        #expect(result.status == 2)
        #expect(result.stderr.contains("no check named telepathy"))
    }
}
