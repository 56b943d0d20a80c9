import Foundation
import PurserLedger
import PurserTestSupport
import Testing

/// A fleet host renews its lease every heartbeat and fences itself when it cannot: a
/// renewal must never wait behind its own reserves, which may wait on a hot or locked row.
@Suite("Lease renewals and waiting reserves", .storeWork, .timeLimit(.minutes(1)))
struct LeaseLockTests {
    /// A reserve under lease h waits on a team row another session holds; meanwhile h's
    /// renewal goes through. The renewal's session gives up any lock wait after a second
    /// (`lock_timeout`): before, it waited on the reserve's share lock of the lease row for as
    /// long as the team row stayed locked, and failed.
    @Test func aRenewalDoesNotWaitBehindAReserveThatWaits() async throws {
        let url = try await PostgresServer.database()
        let store = try PostgresLedger(url: url)
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 100, timeMs: 1_000_000, memoryBytes: 1 << 30)))
        let holder = try store.acquireLease(holder: "h", ttlMs: 60_000)
        // A driver's first transaction takes turns with others making tables (an advisory
        // lock): each driver here makes its first before anything is held.
        let impatientDriver = try PostgresDriver(url: url + " options='-c lock_timeout=1000'")
        _ = try impatientDriver.transaction { (session) throws(LedgerError) in try session.query("SELECT 1", []) }
        let blockingDriver = try PostgresDriver(url: url)
        _ = try blockingDriver.transaction { (session) throws(LedgerError) in try session.query("SELECT 1", []) }
        let release = DispatchSemaphore(value: 0)
        let locked = DispatchSemaphore(value: 0)
        let blocker = Thread {
            _ = try? blockingDriver.transaction { (session) throws(LedgerError) in
                _ = try session.query("SELECT id FROM nodes WHERE id = $1 FOR UPDATE", [.integer(team.id)])
                locked.signal()
                release.wait()
            }
        }
        blocker.start()
        locked.wait()
        let reserving = Thread {
            _ = try? store.reserve(ReserveRequest(
                parent: team.id, kind: .routine, name: "r", amounts: Resources(credits: 1, timeMs: 1, memoryBytes: 1), tools: [],
                holder: holder))
        }
        reserving.start()
        defer { release.signal() }
        let watcher = try PostgresDriver(url: url)
        try await offPool {
            // Until the reserve waits on the team's row (it holds the lease row by then).
            while try !["1", "2"].contains(Self.text(watcher.single(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'", []).first?.first))
            {
                Thread.sleep(forTimeInterval: 0.02)
            }
        }
        let impatient = SQLBudgetStore(existing: impatientDriver)
        #expect(throws: Never.self) { try impatient.heartbeat(holder, ttlMs: 60_000) }
    }

    static func text(_ value: SQLValue?) -> String {
        switch value {
        case .integer(let number): String(number)
        case .text(let text): text
        default: ""
        }
    }
}
