import PurserLedger
import PurserTestSupport
import Testing

/// Budgets and leases alone (`SQLBudgetStore`), over a database with only their tables.
/// `LedgerConformanceTests` holds the rules in depth, through the composed `LedgerStore`.
@Suite("Budget and lease store conformance", .storeWork, .timeLimit(.minutes(1)))
struct BudgetStoreConformanceTests {
    static func open<Driver: SQLDriver>(_ driver: Driver) throws -> any BudgetStore & LeaseStore {
        try SQLBudgetStore<Driver>.open(driver)
    }

    @Test("settle charges by the charge rule and says what it charged and returned", arguments: StoreKind.allCases)
    func settlement(kind: StoreKind) throws {
        let store = try Self.open(kind.driver())
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit, timeMs: 60_000, memoryBytes: 64 * mb)))
        let cap = Resources(credits: 4 * credit, timeMs: 10_000, memoryBytes: 8 * mb)
        let node = try store.reserve(ReserveRequest(parent: team.id, kind: .routine, name: "r", amounts: cap))
        try store.spend(node.id, credits: 3 * credit, holder: nil)
        // Declares less credit than was recorded, more time than it held.
        let declared = Usage(credits: 1 * credit, timeMs: 20_000, memoryPeakBytes: 2 * mb)
        let settled = try store.settle(node.id, usage: declared, outcome: "ok", holder: nil)
        let rule = ChargeRule.settle(cap: cap, recorded: Resources(credits: 3 * credit), declared: declared)
        #expect(settled.used == rule.used)
        #expect(settled.returned == rule.returned)
        #expect(settled.used == Resources(credits: 3 * credit, timeMs: 10_000, memoryBytes: 2 * mb))
        #expect(settled.returned == Resources(credits: 1 * credit, timeMs: 0, memoryBytes: 6 * mb))
        let closed = try store.node(node.id)
        #expect(closed.returned == settled.returned)
        #expect(try store.settle(node.id, usage: .none, outcome: "ok", holder: nil) == settled, "settling twice changes nothing")
        #expect(try store.node(team.id).available == Resources(credits: 7 * credit, timeMs: 50_000, memoryBytes: 64 * mb))
        #expect(try store.verify().isEmpty)
        #expect(try store.audit(node: node.id, team: nil).map(\.kind) == ["reserve", "spend", "settle", "return"])
    }

    @Test("a subtree is the node and all under it, open and closed, parents first, and nothing beside it", arguments: StoreKind.allCases)
    func subtree(kind: StoreKind) throws {
        let store = try Self.open(kind.driver())
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit, timeMs: 60_000, memoryBytes: 64 * mb)))
        let amounts = Resources(credits: 1 * credit, timeMs: 1_000, memoryBytes: 1 * mb)
        let swarm = try store.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "s", amounts: Resources(credits: 4 * credit, timeMs: 4_000, memoryBytes: 4 * mb)))
        let other = try store.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "other", amounts: amounts))
        let chunk = try store.reserve(ReserveRequest(parent: swarm.id, kind: .swarm, name: "chunk", amounts: Resources(credits: 2 * credit, timeMs: 2_000, memoryBytes: 2 * mb)))
        let routine = try store.reserve(ReserveRequest(parent: chunk.id, kind: .routine, name: "r", amounts: amounts))
        let step = try store.reserve(ReserveRequest(parent: routine.id, kind: .step, name: "st", amounts: Resources(credits: credit / 2, timeMs: 500, memoryBytes: mb / 2)))
        _ = try store.reserve(ReserveRequest(parent: other.id, kind: .routine, name: "elsewhere", amounts: amounts))
        _ = try store.settle(step.id, usage: .none, outcome: "ok", holder: nil)
        #expect(try store.subtree(of: swarm.id).map(\.id) == [swarm.id, chunk.id, routine.id, step.id])
        #expect(try store.subtree(of: step.id).map(\.id) == [step.id])
        #expect(try store.subtree(of: 999_999).isEmpty)
    }

    @Test("a lease's epochs fence its holds, and a reclaim closes them", arguments: StoreKind.allCases)
    func leases(kind: StoreKind) throws {
        let store = try Self.open(kind.driver())
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit)))
        let first = try store.acquireLease(holder: "a", ttlMs: 60_000)
        try store.heartbeat(first, ttlMs: 60_000)
        let held = try store.reserve(ReserveRequest(
            parent: team.id, kind: .routine, name: "r", amounts: Resources(credits: 5 * credit), holder: first))
        let second = try store.acquireLease(holder: "a", ttlMs: 60_000)
        #expect(second.epoch == first.epoch + 1)
        #expect(throws: LedgerError.self) { try store.heartbeat(first, ttlMs: 60_000) }
        #expect(try store.node(held.id).outcome == "reclaimed", "the earlier epoch's hold was reclaimed")
        let other = try store.acquireLease(holder: "b", ttlMs: 60_000)
        let kept = try store.reserve(ReserveRequest(
            parent: team.id, kind: .routine, name: "s", amounts: Resources(credits: 1 * credit), holder: other))
        #expect(try store.liveLeases() == ["a", "b"])
        #expect(try store.reclaim(leases: ["b"]).map(\.node) == [kept.id])
        #expect(try store.liveLeases() == ["a"])
        #expect(try store.node(team.id).available.credits == 10 * credit)
        #expect(try store.verify().isEmpty)
    }

    @Test("resize gives back what a hold has not used, grows it all or nothing, and the books still add up", arguments: StoreKind.allCases)
    func resize(kind: StoreKind) throws {
        let store = try Self.open(kind.driver())
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit, timeMs: 60_000, memoryBytes: 64 * mb)))
        let lease = try store.acquireLease(holder: "swarm:s", ttlMs: 60_000)
        let swarm = try store.reserve(ReserveRequest(
            parent: team.id, kind: .swarm, name: "s", amounts: Resources(credits: 6 * credit, timeMs: 10_000, memoryBytes: 8 * mb), holder: lease))
        let routine = try store.reserve(ReserveRequest(parent: swarm.id, kind: .routine, name: "r", amounts: Resources(credits: 2 * credit)))
        try store.spend(swarm.id, credits: 1 * credit, holder: lease)
        #expect(throws: LedgerError.self, "only what it has available goes back") {
            try store.resize(swarm.id, credits: -4 * credit, holder: lease)
        }
        let smaller = try store.resize(swarm.id, credits: -3 * credit, holder: lease)
        #expect(smaller.cap.credits == 3 * credit && smaller.available.credits == 0)
        #expect(try store.node(team.id).available.credits == 7 * credit)
        #expect(try store.verify().isEmpty)
        let other = try store.acquireLease(holder: "swarm:x", ttlMs: 60_000)
        #expect(throws: LedgerError.self, "another holder cannot resize it") { try store.resize(swarm.id, credits: 1 * credit, holder: other) }
        do {
            _ = try store.resize(swarm.id, credits: 8 * credit, holder: lease)
            Issue.record("grew by more than the team has")
        } catch { #expect(error.code == .insufficient) }
        let grown = try store.resize(swarm.id, credits: 7 * credit, holder: lease)
        #expect(grown.cap.credits == 10 * credit && grown.available.credits == 7 * credit)
        #expect(try store.node(team.id).available.credits == 0)
        #expect(try store.verify().isEmpty)
        _ = try store.settle(routine.id, usage: .none, outcome: "ok", holder: nil)
        let settled = try store.settle(swarm.id, usage: .none, outcome: "ok", holder: lease)
        #expect(settled.used.credits == 1 * credit && settled.returned.credits == 9 * credit)
        #expect(try store.node(team.id).available.credits == 9 * credit)
        #expect(try store.verify().isEmpty)
        #expect(try store.audit(node: swarm.id, team: nil).map(\.kind).filter { $0 == "grow" || $0 == "give_back" } == ["give_back", "grow"])
    }

    @Test("a hold with seats takes them from the team at once, and the runs under it sit in them", arguments: StoreKind.allCases)
    func seatedHold(kind: StoreKind) throws {
        let store = try Self.open(kind.driver())
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit, timeMs: 60_000, memoryBytes: 64 * mb), workers: 3))
        let lease = try store.acquireLease(holder: "host:a", ttlMs: 60_000)
        let swarm = try store.reserve(ReserveRequest(
            parent: team.id, kind: .swarm, name: "s", amounts: Resources(credits: 8 * credit, timeMs: 10_000, memoryBytes: 32 * mb)))
        var ask = ReserveRequest(
            parent: swarm.id, kind: .swarm, name: "s chunk a", amounts: Resources(credits: 4 * credit, timeMs: 4_000, memoryBytes: 16 * mb),
            holder: lease)
        ask.seats = 2
        let chunk = try store.reserve(ask)
        #expect(chunk.workersCap == 2 && chunk.workersInUse == 0)
        #expect(try store.node(team.id).workersInUse == 2, "the seats are taken from the team when the hold is")
        let run = { (parent: NodeID, name: String) throws(LedgerError) -> Node in
            try store.reserve(ReserveRequest(
                parent: parent, kind: .routine, name: name, amounts: Resources(credits: 1 * credit, timeMs: 1_000, memoryBytes: 8 * mb),
                holder: lease))
        }
        let first = try run(chunk.id, "r1")
        _ = try run(chunk.id, "r2")
        #expect(try store.node(chunk.id).workersInUse == 2)
        #expect(try store.node(team.id).workersInUse == 2, "a run in a seat of the chunk takes none of the team's")
        #expect(try store.verify().isEmpty)
        do {
            _ = try run(chunk.id, "r3")
            Issue.record("a third run sat in a hold of two seats")
        } catch { #expect(error.code == .insufficient) }
        let direct = try run(swarm.id, "r4")
        #expect(try store.node(team.id).workersInUse == 3)
        do {
            var more = ask
            more.seats = 1
            _ = try store.reserve(more)
            Issue.record("seats were taken from a team with none free")
        } catch { #expect(error.code == .insufficient) }
        _ = try store.settle(first.id, usage: Usage(credits: 1 * credit / 2, timeMs: 100, memoryPeakBytes: mb), outcome: "ok", holder: lease)
        #expect(try store.node(chunk.id).workersInUse == 1)
        #expect(try store.verify().isEmpty)
        let closed = try store.settle(chunk.id, usage: .none, outcome: "returned", holder: lease)
        #expect(closed.used.credits == 1 * credit / 2, "the chunk charges what its runs used, no more")
        #expect(try store.node(team.id).workersInUse == 1, "its seats go back to the team with it")
        _ = try store.settle(direct.id, usage: .none, outcome: "ok", holder: lease)
        _ = try store.settle(swarm.id, usage: .none, outcome: "ok", holder: nil)
        let books = try store.node(team.id)
        #expect(books.workersInUse == 0 && books.available.credits == 10 * credit - credit / 2)
        #expect(try store.verify().isEmpty)
    }

    @Test("a frozen team grants nothing at any depth until it thaws; holds already granted go on", arguments: StoreKind.allCases)
    func freeze(kind: StoreKind) throws {
        let store = try Self.open(kind.driver())
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit, timeMs: 60_000, memoryBytes: 64 * mb)))
        let swarm = try store.reserve(ReserveRequest(
            parent: team.id, kind: .swarm, name: "s", amounts: Resources(credits: 6 * credit, timeMs: 10_000, memoryBytes: 8 * mb)))
        let running = try store.reserve(ReserveRequest(parent: swarm.id, kind: .routine, name: "r", amounts: Resources(credits: 1 * credit)))
        #expect(try store.freeze(team: "t", by: "ops", reason: "runaway spend"))
        #expect(try !store.freeze(team: "t", by: "ops", reason: "again"), "frozen already")
        #expect(try store.freeze(of: "t")?.reason == "runaway spend")
        for parent in [team.id, swarm.id, running.id] {
            do {
                _ = try store.reserve(ReserveRequest(parent: parent, kind: .step, name: "x", amounts: Resources(credits: 1)))
                Issue.record("a frozen team granted a hold under node \(parent)")
            } catch {
                #expect(error.code == .frozen && error.message.contains("frozen (by ops: runaway spend)"), "\(error)")
            }
        }
        do {
            _ = try store.resize(swarm.id, credits: 1 * credit, holder: nil)
            Issue.record("a frozen team's hold grew")
        } catch { #expect(error.code == .frozen) }
        _ = try store.resize(swarm.id, credits: -1 * credit, holder: nil)
        try store.spend(running.id, credits: credit / 2, holder: nil)
        _ = try store.settle(running.id, usage: .none, outcome: "ok", holder: nil)
        #expect(try store.thaw(team: "t", by: "ops"))
        #expect(try !store.thaw(team: "t", by: "ops"), "not frozen any more")
        _ = try store.reserve(ReserveRequest(parent: swarm.id, kind: .routine, name: "after", amounts: Resources(credits: 1)))
        #expect(throws: LedgerError.self) { try store.freeze(team: "nobody", by: "ops", reason: "") }
        let trail = try store.audit(node: team.id, team: nil).filter { $0.kind == "freeze" || $0.kind == "thaw" }
        #expect(trail.map(\.kind) == ["freeze", "thaw"] && trail[0].detail == "by ops: runaway spend")
        #expect(try store.verify().isEmpty)
    }
}
