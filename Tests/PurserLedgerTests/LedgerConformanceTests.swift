import Foundation
import PurserLedger
import PurserTestSupport
import Synchronization
import Testing

/// Every store driver, behind the one protocol. Each test gets a fresh, empty store.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite
    case postgres

    var testDescription: String { rawValue }

    func make() throws -> any LedgerStore {
        switch self {
        case .sqlite: try SQLiteLedger(path: Fixtures.temporaryHome() + "/purser.db")
        case .postgres: try PostgresLedger(url: PostgresServer.shared.makeDatabase())
        }
    }
}

let credit: Int64 = 1_000_000
let mb: Int64 = 1 << 20

func expectVerified(_ store: any LedgerStore, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let violations = try store.verify()
    #expect(violations.isEmpty, "\(violations)", sourceLocation: sourceLocation)
}

@Suite("Ledger conformance", .storeWork, .timeLimit(.minutes(2)))
struct LedgerConformanceTests {
    @Test("the design's walkthrough, to the credit", arguments: StoreKind.allCases)
    func walkthrough(kind: StoreKind) throws {
        let store = try kind.make()
        let team = try store.createTeam(TeamSpec(
            name: "acme", caps: Resources(credits: 100_000 * credit, timeMs: 86_400_000, memoryBytes: 8192 * mb),
            tools: ["web_search", "data_analysis"]))
        let swarm = try store.reserve(ReserveRequest(
            parent: team.id, kind: .swarm, name: "research",
            amounts: Resources(credits: 15_000 * credit, timeMs: 7_200_000, memoryBytes: 2048 * mb),
            tools: ["web_search", "data_analysis"]))
        #expect(try store.node(team.id).available.credits == 85_000 * credit)
        let routine = try store.reserve(ReserveRequest(
            parent: swarm.id, kind: .routine, name: "gather",
            amounts: Resources(credits: 5_000 * credit, timeMs: 1_800_000, memoryBytes: 1024 * mb), tools: ["web_search"]))
        #expect(try store.node(swarm.id).available.credits == 10_000 * credit)
        let routineDone = try store.settle(
            routine.id, usage: Usage(credits: 4_200 * credit, timeMs: 1_500_000, memoryPeakBytes: 900 * mb), outcome: "ok",
            holder: nil)
        #expect(routineDone.returned.credits == 800 * credit)
        #expect(routineDone.returned.timeMs == 300_000)
        #expect(try store.node(swarm.id).available.credits == 10_800 * credit)
        try expectVerified(store)
        let swarmDone = try store.settle(
            swarm.id, usage: Usage(credits: 12_500 * credit, timeMs: 5_400_000, memoryPeakBytes: 1600 * mb), outcome: "ok",
            holder: nil)
        #expect(swarmDone.used.credits == 12_500 * credit)
        #expect(swarmDone.returned.credits == 2_500 * credit)
        #expect(swarmDone.returned.timeMs == 1_800_000)
        #expect(swarmDone.returned.memoryBytes == 448 * mb)
        let after = try store.node(team.id)
        #expect(after.available.credits == 87_500 * credit)
        #expect(after.consumed.credits == 12_500 * credit, "the routine's 4,200 counted once, inside the swarm's 12,500")
        #expect(after.available.memoryBytes == 8192 * mb, "memory is held, not spent: all of it comes back")
        try expectVerified(store)
    }

    @Test("a child's spend is counted once in every ancestor", arguments: StoreKind.allCases)
    func noDoubleCounting(kind: StoreKind) throws {
        let store = try kind.make()
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 100 * credit, timeMs: 1000, memoryBytes: 100)))
        let swarm = try store.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "s", amounts: Resources(credits: 50 * credit)))
        let routine = try store.reserve(ReserveRequest(parent: swarm.id, kind: .routine, name: "r", amounts: Resources(credits: 20 * credit)))
        try store.spend(routine.id, credits: 7 * credit, holder: nil)
        _ = try store.settle(routine.id, usage: Usage(credits: 7 * credit, timeMs: 0, memoryPeakBytes: 0), outcome: "ok", holder: nil)
        _ = try store.settle(swarm.id, usage: Usage(credits: 0, timeMs: 0, memoryPeakBytes: 0), outcome: "ok", holder: nil)
        let after = try store.node(team.id)
        #expect(after.consumed.credits == 7 * credit)
        #expect(after.available.credits == 93 * credit)
        try expectVerified(store)
    }

    @Test("overspending is refused, not just logged", arguments: StoreKind.allCases)
    func overspendRefused(kind: StoreKind) throws {
        let store = try kind.make()
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit)))
        let routine = try store.reserve(ReserveRequest(parent: team.id, kind: .routine, name: "r", amounts: Resources(credits: 5 * credit)))
        try store.spend(routine.id, credits: 4 * credit, holder: nil)
        #expect(throws: LedgerError.self) { try store.spend(routine.id, credits: 2 * credit, holder: nil) }
        #expect(try store.node(routine.id).consumed.credits == 4 * credit)
        #expect(try store.audit(node: routine.id, team: nil).contains { $0.kind == "spend_refused" })
        // A settle that declares more than the hold is charged the hold, never more.
        let done = try store.settle(routine.id, usage: Usage(credits: 9 * credit, timeMs: 0, memoryPeakBytes: 0), outcome: "ok", holder: nil)
        #expect(done.used.credits == 5 * credit)
        #expect(try store.node(team.id).available.credits == 5 * credit)
        try expectVerified(store)
    }

    @Test("a return charges what was actually used", arguments: StoreKind.allCases)
    func returnChargesActualUse(kind: StoreKind) throws {
        let store = try kind.make()
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit)))
        let routine = try store.reserve(ReserveRequest(parent: team.id, kind: .routine, name: "r", amounts: Resources(credits: 5 * credit)))
        try store.spend(routine.id, credits: 3 * credit, holder: nil)
        // The worker crashed and declared nothing: what was recorded stays charged.
        let done = try store.settle(routine.id, usage: Usage(credits: 0, timeMs: 0, memoryPeakBytes: 0), outcome: "crashed", holder: nil)
        #expect(done.used.credits == 3 * credit)
        #expect(done.returned.credits == 2 * credit)
        #expect(try store.node(team.id).available.credits == 7 * credit)
    }

    @Test("a reservation takes every resource or none", arguments: StoreKind.allCases)
    func allOrNothing(kind: StoreKind) throws {
        let store = try kind.make()
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit, timeMs: 1000, memoryBytes: 100 * mb)))
        let before = try store.audit(node: nil, team: "t").count
        #expect(throws: LedgerError.self) {
            try store.reserve(ReserveRequest(parent: team.id, kind: .routine, name: "r",
                amounts: Resources(credits: 5 * credit, timeMs: 500, memoryBytes: 200 * mb)))
        }
        let after = try store.node(team.id)
        #expect(after.available == team.available, "credits and time were not taken when memory fell short")
        #expect(try store.audit(node: nil, team: "t").count == before, "nothing was written")
        #expect(try store.tree(team: "t").count == 1)
        try expectVerified(store)
    }

    @Test("no balance can go negative", arguments: StoreKind.allCases)
    func neverNegative(kind: StoreKind) throws {
        let store = try kind.make()
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit)))
        _ = try store.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "a", amounts: Resources(credits: 10 * credit)))
        do {
            _ = try store.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "b", amounts: Resources(credits: 1)))
            Issue.record("reserved past zero")
        } catch {
            #expect(error.code == .insufficient)
            #expect(error.message.contains("nothing was reserved"))
        }
        #expect(try store.node(team.id).available.credits == 0)
    }

    @Test("bad input gets a clear error and writes nothing", arguments: StoreKind.allCases)
    func badInput(kind: StoreKind) throws {
        let store = try kind.make()
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit), tools: ["http"]))
        let events = try store.audit(node: nil, team: nil).count
        let cases: [(LedgerError.Code, () throws -> Void)] = [
            (.invalid, { _ = try store.reserve(ReserveRequest(parent: team.id, kind: .routine, name: "neg", amounts: Resources(credits: -1))) }),
            (.unknownTeam, { _ = try store.team(named: "nobody") }),
            (.unknownNode, { _ = try store.reserve(ReserveRequest(parent: 9999, kind: .routine, name: "orphan", amounts: .zero)) }),
            (.insufficient, { _ = try store.reserve(ReserveRequest(parent: team.id, kind: .routine, name: "big", amounts: Resources(credits: 11 * credit))) }),
            (.toolNotPermitted, { _ = try store.reserve(ReserveRequest(parent: team.id, kind: .routine, name: "tool", amounts: .zero, tools: ["shell"])) }),
            (.invalid, { _ = try store.createTeam(TeamSpec(name: "t", caps: .zero)) }),
            (.invalid, { try store.spend(team.id, credits: -5, holder: nil) }),
        ]
        for (code, operation) in cases {
            do {
                try operation()
                Issue.record("expected \(code)")
            } catch let error as LedgerError {
                #expect(error.code == code, "\(error)")
                #expect(!error.message.isEmpty)
            }
        }
        #expect(try store.audit(node: nil, team: nil).count == events)
        #expect(try store.tree(team: "t").count == 1)
        try expectVerified(store)
    }

    @Test("settling twice has no effect", arguments: StoreKind.allCases)
    func idempotentSettle(kind: StoreKind) throws {
        let store = try kind.make()
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit)))
        let routine = try store.reserve(ReserveRequest(parent: team.id, kind: .routine, name: "r", amounts: Resources(credits: 5 * credit)))
        let first = try store.settle(routine.id, usage: Usage(credits: 2 * credit, timeMs: 0, memoryPeakBytes: 0), outcome: "ok", holder: nil)
        let second = try store.settle(routine.id, usage: Usage(credits: 4 * credit, timeMs: 0, memoryPeakBytes: 0), outcome: "ok", holder: nil)
        #expect(first == second)
        #expect(try store.node(team.id).available.credits == 8 * credit)
        try expectVerified(store)
    }

    @Test("closing a parent settles its open children first", arguments: StoreKind.allCases)
    func cascade(kind: StoreKind) throws {
        let store = try kind.make()
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit), workers: 2))
        let swarm = try store.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "s", amounts: Resources(credits: 6 * credit)))
        let routine = try store.reserve(ReserveRequest(parent: swarm.id, kind: .routine, name: "r", amounts: Resources(credits: 4 * credit)))
        try store.spend(routine.id, credits: 1 * credit, holder: nil)
        _ = try store.settle(swarm.id, usage: Usage(credits: 0, timeMs: 0, memoryPeakBytes: 0), outcome: "failed", holder: nil)
        #expect(try store.node(routine.id).outcome == "abandoned")
        let after = try store.node(team.id)
        #expect(after.available.credits == 9 * credit)
        #expect(after.workersInUse == 0)
        try expectVerified(store)
    }

    @Test("a team caps its concurrent workers", arguments: StoreKind.allCases)
    func workerLimit(kind: StoreKind) throws {
        let store = try kind.make()
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit), workers: 1))
        let first = try store.reserve(ReserveRequest(parent: team.id, kind: .routine, name: "a", amounts: Resources(credits: 1)))
        #expect(throws: LedgerError.self) {
            try store.reserve(ReserveRequest(parent: team.id, kind: .routine, name: "b", amounts: Resources(credits: 1)))
        }
        #expect(try store.node(team.id).available.credits == 10 * credit - 1, "the refused one took nothing")
        _ = try store.settle(first.id, usage: Usage(credits: 0, timeMs: 0, memoryPeakBytes: 0), outcome: "ok", holder: nil)
        _ = try store.reserve(ReserveRequest(parent: team.id, kind: .routine, name: "c", amounts: Resources(credits: 1)))
        try expectVerified(store)
    }

    @Test("leases: an expired holder's holds are reclaimed, and it cannot settle them late", arguments: StoreKind.allCases)
    func leases(kind: StoreKind) throws {
        let store = try kind.make()
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit)))
        let holder = try store.acquireLease(holder: "supervisor-a", ttlMs: -1)  // already expired
        let routine = try store.reserve(ReserveRequest(
            parent: team.id, kind: .routine, name: "r", amounts: Resources(credits: 5 * credit), holder: holder))
        try store.spend(routine.id, credits: 2 * credit, holder: holder)
        let reclaimed = try store.reclaimExpired()
        #expect(reclaimed.map(\.node) == [routine.id])
        #expect(reclaimed.first?.used.credits == 2 * credit, "what was spent stays charged")
        #expect(try store.node(team.id).available.credits == 8 * credit)
        do {
            _ = try store.settle(routine.id, usage: Usage(credits: 1, timeMs: 0, memoryPeakBytes: 0), outcome: "ok", holder: holder)
            Issue.record("a reclaimed hold was settled late")
        } catch {
            #expect(error.code == .fenced)
        }
        #expect(throws: LedgerError.self) { try store.heartbeat(holder, ttlMs: 1000) }
        try expectVerified(store)
    }

    @Test("a holder known dead is reclaimed at once, before its lease lapses; others are not", arguments: StoreKind.allCases)
    func reclaimingNamedLeases(kind: StoreKind) throws {
        let store = try kind.make()
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit)))
        let dead = try store.acquireLease(holder: "dead", ttlMs: 600_000)
        let live = try store.acquireLease(holder: "live", ttlMs: 600_000)
        let held = try store.reserve(ReserveRequest(
            parent: team.id, kind: .routine, name: "r", amounts: Resources(credits: 5 * credit), holder: dead))
        try store.spend(held.id, credits: 2 * credit, holder: dead)
        let kept = try store.reserve(ReserveRequest(
            parent: team.id, kind: .routine, name: "s", amounts: Resources(credits: 1 * credit), holder: live))
        #expect(try store.liveLeases() == ["dead", "live"])
        #expect(try store.reclaimExpired().isEmpty, "neither lease has lapsed")
        let reclaimed = try store.reclaim(leases: ["dead"])
        #expect(reclaimed.map(\.node) == [held.id])
        #expect(reclaimed.first?.used.credits == 2 * credit, "what was spent stays charged")
        #expect(try store.node(kept.id).isOpen, "a live holder's hold was closed")
        #expect(try store.liveLeases() == ["live"])
        #expect(try store.reclaim(leases: ["dead", "nobody"]).isEmpty, "reclaiming again changes nothing")
        #expect(throws: LedgerError.self) { try store.spend(held.id, credits: 1, holder: dead) }
        #expect(throws: LedgerError.self) { try store.heartbeat(dead, ttlMs: 1000) }
        #expect(try store.node(team.id).available.credits == 7 * credit)
        try expectVerified(store)
    }

    @Test("a restarted holder's earlier epoch is reclaimed", arguments: StoreKind.allCases)
    func epochs(kind: StoreKind) throws {
        let store = try kind.make()
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit)))
        let first = try store.acquireLease(holder: "host-1", ttlMs: 60_000)
        let routine = try store.reserve(ReserveRequest(
            parent: team.id, kind: .routine, name: "r", amounts: Resources(credits: 5 * credit), holder: first))
        let second = try store.acquireLease(holder: "host-1", ttlMs: 60_000)
        #expect(second.epoch == first.epoch + 1)
        #expect(try store.node(routine.id).outcome == "reclaimed")
        #expect(throws: LedgerError.self) { try store.spend(routine.id, credits: 1, holder: first) }
        try expectVerified(store)
    }
}

@Suite("verify finds what is wrong", .storeWork, .timeLimit(.minutes(1)))
struct LedgerVerifyTests {
    /// Corrupts the store behind the ledger's back, in a way each row's CHECK constraint
    /// still allows: verify must name the node.
    @Test("a team's tools grow, and '*' permits any tool below it", arguments: StoreKind.allCases)
    func teamTools(kind: StoreKind) throws {
        let store = try kind.make()
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit), tools: ["a"]))
        #expect(throws: LedgerError.self) {
            try store.reserve(ReserveRequest(parent: team.id, kind: .routine, name: "r", amounts: .zero, tools: ["b"]))
        }
        #expect(try store.addTools(team: "t", tools: ["*"]).tools.sorted() == ["*", "a"])
        let routine = try store.reserve(ReserveRequest(parent: team.id, kind: .routine, name: "r", amounts: .zero, tools: ["b"]))
        #expect(routine.tools == ["b"])
        #expect(try store.audit(node: team.id, team: nil).map(\.kind).contains("tools_added"))
        try expectVerified(store)
    }

    @Test("the shared tables: plugins, runs, quotas and the cache", arguments: StoreKind.allCases)
    func sharedTables(kind: StoreKind) throws {
        let store = try kind.make()
        let plugin = PluginRecord(name: "p", path: "/x/p", sha256: "ab", info: "{}", addedMs: 1)
        try store.savePlugin(plugin)
        try store.savePlugin(PluginRecord(name: "p", path: "/x/p2", sha256: "cd", info: "{}", addedMs: 2))
        #expect(try store.plugin(named: "p")?.sha256 == "cd")
        #expect(try store.plugins().count == 1)
        #expect(try store.removePlugin(named: "p"))
        #expect(try !store.removePlugin(named: "p"))
        try store.saveRun(RunRecord(id: "s-1", swarm: "s", team: "t", ok: false, startedMs: 5, report: "{}"))
        try store.saveRun(RunRecord(id: "s-2", swarm: "s", team: "t", ok: true, startedMs: 6, report: "{\"a\":1}"))
        #expect(try store.runs(limit: 10).map(\.id) == ["s-2", "s-1"])
        #expect(try store.run(id: "s-2")?.report == "{\"a\":1}")
        #expect(try store.consumeQuota(key: "k", requests: 1, credits: 0, maxRequests: 2, maxCredits: nil))
        #expect(try store.consumeQuota(key: "k", requests: 1, credits: 0, maxRequests: 2, maxCredits: nil))
        #expect(try !store.consumeQuota(key: "k", requests: 1, credits: 0, maxRequests: 2, maxCredits: nil))
        try store.adjustQuota(key: "k", requests: -1, credits: 5)
        #expect(try store.quotaUsage(keys: ["k"])["k"]?.requests == 1)
        try store.storeCachedValue(key: "c", value: "v1", expiresMs: Int64.max / 2)
        try store.storeCachedValue(key: "c", value: "v2", expiresMs: Int64.max / 2)
        try store.storeCachedValue(key: "old", value: "x", expiresMs: 1)
        #expect(try store.cachedValue(key: "c", nowMs: 10) == "v2")
        #expect(try store.cachedValue(key: "old", nowMs: 10) == nil)
    }

    /// Each store keeps rows it wrote in memory between transactions; what another
    /// supervisor wrote meanwhile must win over that copy.
    @Test("two supervisors on one store see each other's changes", arguments: StoreKind.allCases)
    func twoSupervisors(kind: StoreKind) throws {
        let (a, b) = try kind.makeTwo()
        let team = try a.createTeam(TeamSpec(name: "shared", caps: Resources(credits: 100 * credit, timeMs: 1000, memoryBytes: 100)))
        let swarm = try a.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "s", amounts: Resources(credits: 40 * credit)))
        let routine = try b.reserve(ReserveRequest(parent: swarm.id, kind: .routine, name: "r", amounts: Resources(credits: 10 * credit)))
        try b.spend(routine.id, credits: 3 * credit, holder: nil)
        _ = try b.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "t", amounts: Resources(credits: 50 * credit)))
        // a must find b's routine under its swarm, and b's spend in it, and b's swarm in the team.
        let done = try a.settle(swarm.id, usage: Usage(credits: 0, timeMs: 0, memoryPeakBytes: 0), outcome: "ok", holder: nil)
        #expect(done.used.credits == 3 * credit)
        #expect(try a.node(routine.id).outcome == "abandoned")
        _ = try a.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "u", amounts: Resources(credits: 47 * credit)))
        #expect(throws: LedgerError.self) {
            try a.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "v", amounts: Resources(credits: 1 * credit)))
        }
        let after = try b.node(team.id)
        #expect(after.available.credits == 0)
        #expect(after.consumed.credits == 3 * credit)
        try expectVerified(a)
    }

    @Test(arguments: StoreKind.allCases)
    func verifyReportsAParentWhoseReservedDoesNotMatchItsChildren(kind: StoreKind) throws {
        let (store, driver) = try kind.makeWithDriver()
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit)))
        _ = try store.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "s", amounts: Resources(credits: 4 * credit)))
        try expectVerified(store)
        try driver { (session) throws(LedgerError) in
            _ = try session.query(
                "UPDATE nodes SET resv_credits = resv_credits + 1, avail_credits = avail_credits - 1 WHERE id = $1",
                [.integer(team.id)])
        }
        let violations = try store.verify()
        #expect(violations.map(\.node) == [team.id])
        #expect(violations.first?.message.contains("reserved") == true)
    }

    @Test(arguments: StoreKind.allCases)
    func theStoreRefusesANegativeBalanceEvenFromRawSQL(kind: StoreKind) throws {
        let (store, driver) = try kind.makeWithDriver()
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit)))
        do {
            try driver { (session) throws(LedgerError) in
                _ = try session.query(
                    "UPDATE nodes SET avail_credits = avail_credits - $2, used_credits = used_credits + $2 WHERE id = $1",
                    [.integer(team.id), .integer(11 * credit)])
            }
            Issue.record("the store took a negative balance")
        } catch {
            #expect(error.code == .constraint, "\(error)")
        }
        #expect(try store.node(team.id).available.credits == 10 * credit)
    }
}

/// PostgreSQL runs reserve and settle as statements prepared once per session.
@Suite("PostgreSQL prepared calls", .storeWork, .timeLimit(.minutes(1)))
struct PostgresPreparedTests {
    /// A session's prepared statements can vanish (`DEALLOCATE ALL`, a pooler): the next
    /// call prepares its statement again instead of failing.
    @Test func callsSurviveTheirStatementsBeingDropped() throws {
        let store = try PostgresLedger(url: PostgresServer.shared.makeDatabase())
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit)))
        let first = try store.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "a", amounts: Resources(credits: credit)))
        _ = try store.settle(first.id, usage: Usage(credits: credit / 2, timeMs: 0, memoryPeakBytes: 0), outcome: "ok", holder: nil)
        try store.driver.transaction { (session) throws(LedgerError) in _ = try session.query("DEALLOCATE ALL", []) }
        let second = try store.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "b", amounts: Resources(credits: credit)))
        let settled = try store.settle(second.id, usage: Usage(credits: credit / 4, timeMs: 0, memoryPeakBytes: 0), outcome: "ok", holder: nil)
        #expect(settled.returned.credits == 3 * credit / 4)
        #expect(try store.node(team.id).consumed.credits == 3 * credit / 4)
        try expectVerified(store)
    }
}

extension StoreKind {
    /// Two stores on one database, as two supervisors sharing a team would have.
    func makeTwo() throws -> (any LedgerStore, any LedgerStore) {
        switch self {
        case .sqlite:
            let path = Fixtures.temporaryHome() + "/purser.db"
            return (try SQLiteLedger(path: path), try SQLiteLedger(path: path))
        case .postgres:
            let url = try PostgresServer.shared.makeDatabase()
            return (try PostgresLedger(url: url), try PostgresLedger(url: url))
        }
    }

    /// The store, and a way to run raw SQL on it in one transaction.
    func makeWithDriver() throws -> (any LedgerStore, ((any SQLSession) throws(LedgerError) -> Void) throws(LedgerError) -> Void) {
        switch self {
        case .sqlite:
            let store = try SQLiteLedger(path: Fixtures.temporaryHome() + "/purser.db")
            return (store, { (body) throws(LedgerError) in try store.driver.transaction(body) })
        case .postgres:
            let store = try PostgresLedger(url: PostgresServer.shared.makeDatabase())
            return (store, { (body) throws(LedgerError) in try store.driver.transaction(body) })
        }
    }
}

/// Two hosts that both reclaim a dead holder's holds at once (the fleet's rescuer, and the
/// holder restarting): each hold is settled once, and its parent gets its return once.
@Suite("Reclaims that race", .storeWork, .timeLimit(.minutes(2)))
struct ReclaimRaceTests {
    @Test("two stores reclaim the same dead lease at once: every hold is settled once, and the ledger balances", arguments: StoreKind.allCases)
    func racingReclaims(kind: StoreKind) throws {
        let (first, second): (any LedgerStore, any LedgerStore)
        switch kind {
        case .sqlite:
            let path = Fixtures.temporaryHome() + "/purser.db"
            (first, second) = (try SQLiteLedger(path: path), try SQLiteLedger(path: path))
        case .postgres:
            let url = try PostgresServer.shared.makeDatabase()
            (first, second) = (try PostgresLedger(url: url), try PostgresLedger(url: url))
        }
        let team = try first.createTeam(TeamSpec(name: "t", caps: Resources(credits: 1000 * credit)))
        for round in 0..<4 {
            let dead = try first.acquireLease(holder: "dead-\(round)", ttlMs: 600_000)
            let swarm = try first.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "s\(round)", amounts: Resources(credits: 100 * credit)))
            var holds: [NodeID] = []
            for index in 0..<30 {
                let hold = try first.reserve(ReserveRequest(
                    parent: swarm.id, kind: .routine, name: "r\(index)", amounts: Resources(credits: 2 * credit), holder: dead))
                try first.spend(hold.id, credits: credit, holder: dead)
                holds.append(hold.id)
            }
            let stores = [first, second]
            let errors = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 2) { index in
                do {
                    _ = try stores[index].reclaim(leases: ["dead-\(round)"])
                } catch {
                    errors.withLock { $0.append("\(error)") }
                }
            }
            #expect(errors.withLock { $0 }.isEmpty, "\(errors.withLock { $0 })")
            try expectVerified(first)
            let settles = try first.audit(node: nil, team: "t").filter { $0.kind == "settle" && holds.contains($0.node) }
            #expect(settles.count == holds.count, "round \(round): \(settles.count) settles of \(holds.count) holds")
            #expect(try first.node(swarm.id).available.credits == 70 * credit, "round \(round): the swarm got its returns once")
        }
    }
}
