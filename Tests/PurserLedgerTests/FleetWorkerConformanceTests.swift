import Foundation
import PurserLedger
import PurserTestSupport
import Testing

/// What a host says of its running workers at its heartbeat (their pids on that host and
/// their memory peaks), against both drivers, on a new database and on one made before.
@Suite("Fleet store conformance: running workers", .storeWork, .timeLimit(.minutes(1)))
struct FleetWorkerConformanceTests {
    typealias Fleet = FleetStoreConformanceTests

    /// `fleet_routines` as it was before approvals (`gate`, `gate_ms`, `approval`) and running workers (`pid`, `memory_peak`).
    static let oldRoutines = """
        CREATE TABLE fleet_routines (id %@, swarm TEXT NOT NULL, name TEXT NOT NULL,
            position BIGINT NOT NULL, priority BIGINT NOT NULL, swarm_priority BIGINT NOT NULL, state TEXT NOT NULL,
            pending BIGINT NOT NULL, attempt BIGINT NOT NULL, memory BIGINT NOT NULL, host TEXT, host_epoch BIGINT, ready_ms BIGINT,
            verdict TEXT, message TEXT, output TEXT, node BIGINT, report TEXT, stop_for TEXT, UNIQUE (swarm, name))
        """

    @Test("a running worker's pid and memory peak, from its host's claim only, gone with a new attempt", arguments: StoreKind.allCases)
    func workers(kind: StoreKind) throws {
        try check(Fleet.open(kind.driver()))
    }

    @Test("a database made before the columns gains them when the store opens, once", arguments: StoreKind.allCases)
    func olderDatabase(kind: StoreKind) throws {
        let driver = try kind.driver()
        let key = kind == .sqlite ? "INTEGER PRIMARY KEY" : "BIGSERIAL PRIMARY KEY"
        _ = try driver.single(String(format: Self.oldRoutines, key), [])
        _ = try driver.single(Self.oldTeams, [])
        _ = try driver.single("INSERT INTO fleet_teams (team, on_conflict, aging_ms) VALUES ('old', 'priority', 1000)", [])
        _ = try Fleet.open(driver)
        let store = try Fleet.open(driver)
        try check(store)
        #expect(try store.teamPolicy(team: "old") == TeamPolicy(team: "old", onConflict: .priority, agingMs: 1000), "its row reads as before")
        try store.setTeamPolicy(TeamPolicy(team: "old", reuseUntrusted: true))
        #expect(try store.teamPolicy(team: "old").reuseUntrusted)
    }

    /// `fleet_teams` as it was before `reuse_untrusted`.
    static let oldTeams = "CREATE TABLE fleet_teams (team TEXT PRIMARY KEY, on_conflict TEXT NOT NULL, aging_ms BIGINT NOT NULL)"

    @Test("a team's word on keeping untrusted workers: no unless set, kept as set", arguments: StoreKind.allCases)
    func reuseUntrusted(kind: StoreKind) throws {
        let store = try Fleet.open(kind.driver())
        #expect(try store.teamPolicy(team: "t").reuseUntrusted == false)
        try store.setTeamPolicy(TeamPolicy(team: "t", reuseUntrusted: true))
        #expect(try store.teamPolicy(team: "t").reuseUntrusted)
        try store.setTeamPolicy(TeamPolicy(team: "t", onConflict: .priority))
        #expect(try store.teamPolicy(team: "t") == TeamPolicy(team: "t", onConflict: .priority))
    }

    private func check(_ store: any FleetStore) throws {
        let a = try store.join(host: "a", slots: 4, version: "1")
        try store.submit(Fleet.swarm("s1", concurrency: 1))
        _ = try Fleet.admit(store, a)
        let claimed = try #require(try store.claim(host: a, limit: 1, memoryBytes: 1 << 40).first)
        #expect(try store.routines(swarm: "s1").first { $0.name == claimed.routine }.map { $0.hostPid == nil && $0.memoryPeakBytes == nil } == true)
        try store.recordWorkers([RunningWorker(claim: claimed, pid: 4242, memoryPeakBytes: 5 << 20)])
        var row = try #require(try store.routines(swarm: "s1").first { $0.name == claimed.routine })
        #expect(row.hostPid == 4242 && row.memoryPeakBytes == 5 << 20, "\(row)")
        // Another epoch's word (a host found lost, joined again) changes nothing.
        var stale = claimed
        stale.host.epoch += 1
        try store.recordWorkers([RunningWorker(claim: stale, pid: 1, memoryPeakBytes: 1)])
        row = try #require(try store.routines(swarm: "s1").first { $0.name == claimed.routine })
        #expect(row.hostPid == 4242 && row.memoryPeakBytes == 5 << 20, "\(row)")
        // The next attempt starts without the last one's.
        try store.finish(claimed, RoutineEnd(verdict: "timeout", retry: true))
        let again = try #require(try store.claim(host: a, limit: 1, memoryBytes: 1 << 40).first)
        #expect(again.routine == claimed.routine && again.attempt == 2)
        row = try #require(try store.routines(swarm: "s1").first { $0.name == claimed.routine })
        #expect(row.hostPid == nil && row.memoryPeakBytes == nil, "\(row)")
        try store.recordWorkers([])
    }
}
