import Foundation
import PurserLedger
import PurserRuntime
import PurserTestSupport
import Testing

/// A run's wall time is the worker's: what the supervisor spends getting its reservation
/// (a store that is busy, or away and being reconnected to) is not taken from it.
@Suite("A run's wall time", .timeLimit(.minutes(1)))
struct WallTimeTests {
    @Test func waitingForTheStoreDoesNotSpendTheRunsTime() async throws {
        let home = Fixtures.temporaryHome()
        let runtime = try Runtime.withLedger(home: home)
        // Another supervisor holds the store's write lock for longer than the whole run may take.
        let other = try SQLiteLedger(path: home + "/purser.db")
        let locked = DispatchSemaphore(value: 0)
        let holding = Task {
            try await offPool {
                try other.driver.transaction { _ in
                    locked.signal()
                    usleep(4_000_000)
                }
            }
        }
        await offPool { locked.wait() }
        var request = Fixtures.run(Fixtures.product("echo"), input: "waited")
        // Less than the lock is held: the run passed its deadline before it began, before.
        request.wallTimeMs = 3_000
        request.sandbox = .trusted
        let report = try await run(request, runtime: runtime)
        try await holding.value
        #expect(report.verdict == .ok, "\(report.verdict): \(report.message ?? "")")
        #expect(report.output == "waited")
    }
}
