import PurserLedger
import PurserTestSupport
import Testing

/// What `/metrics` reads from the store at a scrape, against both drivers.
@Suite("What /metrics reads", .storeWork, .timeLimit(.minutes(1)))
struct MetricsReadsTests {
    static func ledger<Driver: SQLDriver>(_ driver: Driver) throws -> any LedgerStore { try SQLLedger(driver: driver) }

    @Test("budget nodes: every team and its open swarms, not a swarm's chunks, routines or closed swarms", arguments: StoreKind.allCases)
    func budgetNodes(kind: StoreKind) throws {
        let store = try Self.ledger(kind.driver())
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit)))
        _ = try store.createTeam(TeamSpec(name: "idle", caps: Resources(credits: credit)))
        let swarm = try store.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "s", amounts: Resources(credits: 4 * credit)))
        let chunk = try store.reserve(ReserveRequest(parent: swarm.id, kind: .swarm, name: "s chunk of h", amounts: Resources(credits: credit)))
        _ = try store.reserve(ReserveRequest(parent: chunk.id, kind: .routine, name: "r", amounts: Resources(credits: credit)))
        let old = try store.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "old", amounts: Resources(credits: credit)))
        _ = try store.settle(old.id, usage: .none, outcome: "ok", holder: nil)
        let nodes = try store.budgetNodes()
        #expect(nodes.map(\.name) == ["t", "idle", "s"])
        #expect(nodes.last?.reserved.credits == credit && nodes.last?.available.credits == 3 * credit)
    }

    @Test("queue depths: waiting for budget, for dependencies, for a slot, and running", arguments: StoreKind.allCases)
    func queueDepths(kind: StoreKind) throws {
        let store = try FleetStoreConformanceTests.open(kind.driver())
        let host = try store.join(host: "a", slots: 4, version: "1")
        try store.submit(FleetStoreConformanceTests.swarm("s1"))
        try store.submit(FleetStoreConformanceTests.swarm("s2", team: "u"))
        func depths() throws -> [String: Int64] {
            Dictionary(uniqueKeysWithValues: try store.queueDepths().map { ("\($0.team)/\($0.swarm)/\($0.place.rawValue)", $0.routines) })
        }
        #expect(try depths() == ["t/s/budget": 4, "u/s/budget": 4], "nothing admitted: all wait for budget")
        _ = try FleetStoreConformanceTests.admit(store, host)
        let claimed = try store.claim(host: host, limit: 1, memoryBytes: 1 << 40)
        #expect(claimed.map(\.routine) == ["d"] && claimed[0].readyMs > 0, "a claim says when it became ready")
        #expect(try depths() == ["t/s/running": 1, "t/s/slot": 1, "t/s/dependencies": 2, "u/s/budget": 4])
        try store.finish(claimed[0], RoutineEnd(verdict: "ok"))
        #expect(try depths() == ["t/s/slot": 1, "t/s/dependencies": 2, "u/s/budget": 4], "a done routine is in none")
    }
}
