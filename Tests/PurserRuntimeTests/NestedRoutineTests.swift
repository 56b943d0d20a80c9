import Foundation
import PurserLedger
import PurserProtocol
import PurserRuntime
import PurserTestSupport
import Testing

/// `routine/call`: a step runs from its caller's reservation, never the swarm's or the team's.
@Suite("Nested routines", .serialized, .timeLimit(.minutes(3)))
struct NestedRoutineTests {
    let home = Fixtures.temporaryHome()
    let credit: Int64 = 1_000_000

    func runtime() async throws -> Runtime {
        let runtime = try Runtime.withLedger(home: home)
        let registry = try PluginRegistry(runtime: runtime)
        _ = try await registry.add(path: Fixtures.product("scripted"), name: "scripted", manifest: nil)
        _ = try await registry.add(path: Fixtures.product("wordcount"), name: "wordcount", manifest: nil)
        return runtime
    }

    /// The caller has 90 s: these tests count credits, not time, and its step (a store
    /// transaction, a spawn, a handshake) missed the usual 10 s in clean-clone runs whose
    /// first minute started PostgreSQL, Chromium and Python MCP servers at once.
    func run(_ runtime: Runtime, _ input: JSONValue, credits: Int64 = 10) async throws -> RunReport {
        var request = Fixtures.run(Fixtures.product("scripted"), input: input, credits: credits)
        request.wallTimeMs = 90_000
        return try await runtime.exec(request)
    }

    @Test func aStepRunsFromItsCallersReservationAndReturnsWhatItDidNotUse() async throws {
        let runtime = try await runtime()
        let report = try await run(runtime, ["call": ["plugin": "wordcount", "input": ["text": "one two three"], "credits": 2]])
        #expect(report.verdict == .ok, "\(report.message ?? "") \(report.stderrTail)")
        #expect(report.output?["step"]?["words"] == 3)
        #expect(report.usage.stepCredits == Credits(micros: 3_000), "wordcount charges 0.001 a word")
        let store = runtime.ledger!.store
        let caller = try store.node(try #require(report.ledgerNode))
        let step = try #require(try store.tree(team: "local").first { $0.parent == caller.id })
        #expect(step.kind == .step)
        #expect(step.cap.credits == 2 * credit)
        #expect(step.consumed.credits == 3_000)
        #expect(step.returned.credits == 2 * credit - 3_000, "what the step did not use went back to its caller")
        #expect(caller.consumed.credits == 3_000, "the step's use counted once, in the caller")
        #expect(try store.verify().isEmpty)
    }

    @Test func aStepLargerThanWhatTheCallerHoldsIsRefused() async throws {
        let runtime = try await runtime()
        let report = try await run(runtime, ["call": ["plugin": "wordcount", "input": ["text": "x"], "credits": 50]], credits: 10)
        #expect(report.verdict == .ok)
        #expect(report.output?["verdict"] == "denied")
        #expect(report.output?["stepError"]?.stringValue?.contains("cannot cover") == true)
        #expect(try runtime.ledger!.store.verify().isEmpty)
    }

    @Test func onlyRegisteredPluginsRunAsSteps() async throws {
        let runtime = try await runtime()
        let report = try await run(runtime, ["call": ["plugin": "/bin/sh", "credits": 1]])
        #expect(report.output?["stepError"]?.stringValue?.contains("no plugin named") == true)
    }

    /// Each level calls the next with one credit less; the fifth level is refused.
    @Test func stepsNestAtMostFourDeep() async throws {
        let runtime = try await runtime()
        var input: JSONValue = ["output": "bottom"]
        for level in 0..<6 { input = ["call": ["plugin": "scripted", "input": input, "credits": .number(JSONNumber(Int64(3 + level)))]] }
        let report = try await run(runtime, input, credits: 20)
        #expect(report.verdict == .ok)
        var value = report.output
        var depth = 0
        while let next = value?["step"] {
            value = next
            depth += 1
        }
        #expect(depth == 4)
        #expect(value?["stepError"]?.stringValue?.contains("at most 4 deep") == true)
        #expect(try runtime.ledger!.store.verify().isEmpty)
    }
}
