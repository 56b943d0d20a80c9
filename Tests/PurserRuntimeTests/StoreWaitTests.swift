import Foundation
import PurserLedger
import PurserProtocol
import PurserRuntime
import PurserSandbox
import PurserTestSupport
import Synchronization
import Testing

/// Store calls that wait (on a server that went away, on a row another client holds) hold
/// up only the work that needs what they wait for: other runs' workers, timers and store
/// calls keep flowing. Nothing here asserts on time: each run has a deadline many times
/// what it needs, and a stall long enough to matter ends it.
@Suite("Store waits", .serialized, .timeLimit(.minutes(3)))
struct StoreWaitTests {
    let home = Fixtures.temporaryHome()
    let credit: Int64 = 1_000_000

    /// PostgreSQL stops while 64 runs are reserving: each waits for it, up to the store
    /// retry window (30 s), then is told its team grants nothing. Meanwhile runs that need nothing from the store start, make
    /// their round trips with their workers and answer within their 3 s; the test then
    /// starts the server again, and every waiting run, seconds into its 30 s, is answered.
    /// (Before store calls had threads of their own, their waits held Dispatch's threads,
    /// on which Swift's tasks and timers also run on Linux: everything stalled until the
    /// waits gave up, 30 s later.)
    @Test func runsFlowWhileTheStoreIsAway() async throws {
        let server = try await PostgresServer.borrowForFaults()
        defer { server.giveBack() }
        let url = try await offPool { try server.makeDatabase() }
        let runtime = try Runtime.withLedger(home: home, location: url)
        // A team that grants nothing: its runs wait for the store, then are denied, and
        // start no worker.
        _ = try runtime.ledger?.store.createTeam(TeamSpec(name: "poor", caps: Resources()))
        let away = DispatchSemaphore(value: 0)
        _ = runtime.ledger?.notices.listen { _ in away.signal() }
        try await offPool { try server.stopServer() }
        let reserving = (0..<64).map { _ in
            Task { () -> Result<RunReport, RuntimeError> in
                do throws(RuntimeError) {
                    var request = Fixtures.run(Fixtures.product("echo"), input: "waited")
                    request.team = "poor"
                    return .success(try await runtime.exec(request))
                } catch {
                    return .failure(error)
                }
            }
        }
        await offPool { away.wait() }
        let other = Runtime(home: Fixtures.temporaryHome())
        var verdicts: [Verdict] = []
        for _ in 0..<3 {
            var request = Fixtures.run(Fixtures.product("scripted"), input: ["sleepMs": 100])
            request.wallTimeMs = 3_000
            verdicts.append(try await other.exec(request).verdict)
        }
        try await offPool { try server.startServer() }
        let waited = await reserving.asyncMap { await $0.value }
        #expect(verdicts == [.ok, .ok, .ok], "runs needing nothing from the store were held up by its wait")
        let failures = waited.compactMap { if case .failure(let error) = $0 { error.message } else { nil } }
        #expect(failures.isEmpty, "\(failures.count) runs failed: \(failures.first ?? "")")
        #expect(waited.compactMap { try? $0.get().verdict }.allSatisfy { $0 == .denied })
    }

    /// A run of team `free` holds its reservation and waits on a gate. Then another client
    /// takes the row of team `busy`, and two runs of `busy` reserve: they wait on that row.
    /// The gate opens: the `free` run ends and settles meanwhile, on a connection of its
    /// own. The row is let go only after that, or after 30 s.
    ///
    /// (New reserves of this supervisor still wait behind `busy`: each renews the
    /// supervisor's lease, whose row the waiting reserves hold shared.)
    @Test func aLockedTeamHoldsUpOnlyItsOwnRuns() async throws {
        let url = try await PostgresServer.database()
        let runtime = try Runtime.withLedger(home: home, location: url)
        let store = try #require(runtime.ledger?.store)
        for name in ["busy", "free"] {
            _ = try store.createTeam(TeamSpec(name: name, caps: Resources(credits: 100 * credit, timeMs: 10_000_000, memoryBytes: 1 << 40)))
        }
        let gate = home + "/gate"
        var request = Fixtures.run(Fixtures.product("scripted"), input: ["gate": .string(gate), "spend": 2], credits: 5)
        request.team = "free"
        request.wallTimeMs = 60_000
        // The gate is in the test's directory, which only a trusted worker sees.
        request.sandbox = .trusted
        let free = Task { [request] in try await runtime.exec(request) }
        for _ in 0..<1500 where access(gate + ".started", F_OK) != 0 { try await Task.sleep(for: .milliseconds(20)) }
        try #require(access(gate + ".started", F_OK) == 0, "the free run's worker never reached its gate")

        let other = try PostgresLedger(url: url)
        let locked = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let released = Atomic<Bool>(false)
        let holding = Task {
            try await offPool {
                try other.driver.transaction { (session) throws(LedgerError) in
                    _ = try session.query("SELECT id FROM nodes WHERE kind = 'team' AND name = 'busy' FOR UPDATE", [])
                    locked.signal()
                    _ = release.wait(timeout: .now() + 30)
                    released.store(true, ordering: .releasing)
                }
            }
        }
        await offPool { locked.wait() }
        let busy = (0..<2).map { _ in
            Task {
                var request = Fixtures.run(Fixtures.product("echo"), input: "busy")
                request.team = "busy"
                return try await runtime.exec(request)
            }
        }
        try await Task.sleep(for: .milliseconds(500))
        close(open(gate, O_CREAT | O_WRONLY, 0o600))
        let report = try await free.value
        let finishedFirst = !released.load(ordering: .acquiring)
        release.signal()
        try await holding.value
        for run in busy { #expect(try await run.value.verdict == .ok) }
        #expect(report.verdict == .ok, "\(report.verdict): \(report.message ?? "")")
        #expect(finishedFirst, "the free team's run waited for the busy team's row")
        #expect(try store.tree(team: "free").contains { $0.outcome == "ok" && $0.consumed.credits == 2 * credit }, "and was settled")
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async -> T) async -> [T] {
        var results: [T] = []
        for element in self { results.append(await transform(element)) }
        return results
    }
}
