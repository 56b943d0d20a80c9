import Foundation
import PurserConfig
import PurserProtocol
import PurserTestSupport
import Testing

/// The report prints what the ledger settled, not a figure of its own. Two steps at once
/// use more time between them than their caller's wall clock: the ledger charges the
/// caller the larger, and the report must say what it returned.
@Suite("The report shows the ledger's settlement", .timeLimit(.minutes(2)))
struct SettlementReportTests {
    let home = Fixtures.temporaryHome()

    func purser(_ arguments: [String]) async throws -> CommandResult {
        try await runPurser(arguments, home: home)
    }

    /// Two steps of `scripted`, each sleeping 1.5 s, at once.
    let input = #"{"calls":[{"plugin":"scripted","input":{"sleepMs":1500},"credits":1,"timeMs":5000},"#
        + #"{"plugin":"scripted","input":{"sleepMs":1500},"credits":1,"timeMs":5000}]}"#

    func setUp() async throws {
        #expect(try await purser(["team", "create", "t", "--credits", "100"]).status == 0)
        let added = try await purser(["plugin", "add", Fixtures.product("scripted"), "--name", "scripted"])
        #expect(added.status == 0, "\(added.stderr)")
    }

    /// What the ledger returned from the run's node.
    func settled(_ node: Int64) async throws -> JSONValue {
        let show = try await purser(["team", "show", "t", "--json"])
        let nodes = try JSONParser.parse(show.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).arrayValue ?? []
        let row = try #require(nodes.first { $0["id"] == .number(JSONNumber(node)) })
        return try #require(row["returned"])
    }

    @Test func jsonReportReturnsWhatTheLedgerReturned() async throws {
        try await setUp()
        let run = try await purser(["exec", "scripted", "--team", "t", "--credits", "5", "--time", "20s", "--input", input, "--json"])
        #expect(run.status == 0, "\(run.stdout) \(run.stderr)")
        let report = try JSONParser.parse(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let node = try #require(report["ledgerNode"]?.numberValue?.int64)
        let ledger = try await settled(node)
        #expect(report["returned"]?["timeMs"] == ledger["timeMs"])
        #expect(report["returned"]?["credits"] == ledger["credits"])
        #expect(report["returned"]?["memoryBytes"] == ledger["memoryBytes"])
    }

    @Test func humanReportReturnsWhatTheLedgerReturned() async throws {
        try await setUp()
        let run = try await purser(["exec", "scripted", "--team", "t", "--credits", "5", "--time", "20s", "--input", input])
        #expect(run.status == 0, "\(run.stdout) \(run.stderr)")
        let show = try await purser(["team", "show", "t", "--json"])
        let nodes = try JSONParser.parse(show.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).arrayValue ?? []
        let routine = try #require(nodes.first { $0["kind"] == "routine" })
        let returnedMs = try #require(routine["returned"]?["timeMs"]?.numberValue?.int64)
        let timeRow = try #require(run.stdout.split(separator: "\n").first { $0.hasPrefix("time") })
        let columns = timeRow.split(separator: " ", omittingEmptySubsequences: true)
        #expect(columns.last.map(String.init) == Units.formatDuration(returnedMs), "\(run.stdout)")
    }
}
