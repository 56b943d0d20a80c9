import Foundation
import PurserLedger
import PurserTestSupport
import Testing

/// Approvals in the fleet's queue, against both drivers: a routine that holds a tool marked
/// `approval` waits in `awaiting_approval`, unclaimable, until a decision or its timeout,
/// which one host takes in, once, while it is live.
@Suite("Fleet approvals conformance", .storeWork, .timeLimit(.minutes(1)))
struct FleetApprovalConformanceTests {
    /// The fleet's store first, alone (its tables are all a host's look needs), then the
    /// ledger on the same database, as `purser approve` opens it.
    func stores(_ kind: StoreKind) throws -> (fleet: any FleetStore, ledger: () throws -> any LedgerStore) {
        let location = switch kind {
        case .sqlite: Fixtures.temporaryHome() + "/purser.db"
        case .postgres: try PostgresServer.shared.makeDatabase()
        }
        return (try LedgerLocation.openFleet(location), { try LedgerLocation.open(location) })
    }

    /// `gated` needs approval; `later` runs after it; `free` needs none.
    func swarm(timeoutMs: Int64 = 3_600_000) -> SubmittedSwarm {
        SubmittedSwarm(
            id: "s1", team: "t", name: "s", priority: 0, concurrency: 8, file: "job.yaml", source: "swarm: {}",
            routines: [
                SubmittedRoutine(name: "gated", approvalTools: ["net"], approvalTimeoutMs: timeoutMs),
                SubmittedRoutine(name: "later", after: ["gated"]), SubmittedRoutine(name: "free"),
            ])
    }

    func state(_ store: any FleetStore, _ name: String) throws -> QueuedRoutine? {
        try store.routines(swarm: "s1").first { $0.name == name }
    }

    func tend(_ store: any FleetStore, _ host: HostLease) throws -> ApprovalTurn {
        try store.tendApprovals(host: host, limit: 10) { "approval timed out after \($0) ms" }
    }

    func trail(_ ledger: any LedgerStore) throws -> [AuditEvent] {
        try ledger.audit(node: 7, team: nil).filter { $0.kind.hasPrefix("approval_") }
    }

    @Test("a gated routine waits unclaimable, its request filed once; approved, any host claims it", arguments: StoreKind.allCases)
    func approved(kind: StoreKind) throws {
        let (store, openLedger) = try stores(kind)
        let a = try store.join(host: "a", slots: 4, version: "1")
        let b = try store.join(host: "b", slots: 4, version: "1")
        try store.submit(swarm())
        #expect(try tend(store, a) == ApprovalTurn(), "nothing waits before the swarm is admitted")
        _ = try FleetStoreConformanceTests.admit(store, a)
        #expect(try state(store, "gated")?.state == "awaiting_approval" && state(store, "free")?.state == "ready")
        #expect(try store.claim(host: a, limit: 4, memoryBytes: 1 << 40).map(\.routine) == ["free"], "a gated routine is not claimed")
        let turn = try tend(store, a)
        let filed = try #require(turn.filed.first)
        #expect(turn.filed.count == 1 && turn.decided.isEmpty)
        #expect(filed.routine == "gated" && filed.run == "s1" && filed.team == "t" && filed.swarmNode == 7 && filed.tools == ["net"])
        #expect(filed.state == .pending && filed.expiresMs - filed.requestedMs == 3_600_000)
        #expect(try state(store, "gated")?.approval == filed.id)
        #expect(try tend(store, b) == ApprovalTurn(), "filed once, whichever host looks")
        #expect(try store.claim(host: b, limit: 4, memoryBytes: 1 << 40).isEmpty)
        #expect(try store.nextToComplete(host: a) == nil, "a swarm with a routine that waits for a person is not complete")

        let ledger = try openLedger()
        _ = try ledger.decideApproval(id: filed.id, approve: true, by: "alice", reason: "fine")
        let decided = try tend(store, b)
        #expect(decided.decided.map(\.id) == [filed.id] && decided.decided.first?.state == .approved && decided.filed.isEmpty)
        #expect(try tend(store, a) == ApprovalTurn(), "taken in once")
        let claimed = try store.claim(host: b, limit: 4, memoryBytes: 1 << 40)
        #expect(claimed.map(\.routine) == ["gated"] && claimed.first?.attempt == 1)
        // A retry goes back in line as ready: an approved routine is not asked again.
        try store.finish(claimed[0], RoutineEnd(verdict: "error", retry: true))
        #expect(try state(store, "gated")?.state == "ready")
        #expect(try trail(ledger).map(\.kind) == ["approval_requested", "approval_granted"])
        #expect(try trail(ledger).allSatisfy { $0.team == "t" })
    }

    @Test("denied: the routine ends denied with who and why, its dependents skipped", arguments: StoreKind.allCases)
    func denied(kind: StoreKind) throws {
        let (store, openLedger) = try stores(kind)
        let a = try store.join(host: "a", slots: 4, version: "1")
        try store.submit(swarm())
        _ = try FleetStoreConformanceTests.admit(store, a)
        let filed = try #require(try tend(store, a).filed.first)
        let ledger = try openLedger()
        _ = try ledger.decideApproval(id: filed.id, approve: false, by: "bob", reason: "risky")
        let turn = try tend(store, a)
        #expect(turn.decided.map(\.state) == [.denied])
        let gated = try #require(try state(store, "gated"))
        #expect(gated.state == "done" && gated.verdict == "denied" && gated.attempt == 0)
        #expect(gated.message == "denied by bob: risky (\(filed.id))")
        #expect(try state(store, "later")?.verdict == "skipped")
        #expect(try state(store, "free")?.state == "ready")
        #expect(try store.attempts(swarm: "s1").isEmpty)
        #expect(try trail(ledger).map(\.kind) == ["approval_requested", "approval_denied"])
    }

    @Test("past its time, one live host times it out, once; a fenced host changes nothing", arguments: StoreKind.allCases)
    func timedOut(kind: StoreKind) throws {
        let (store, openLedger) = try stores(kind)
        let a = try store.join(host: "a", slots: 4, version: "1")
        try store.submit(swarm(timeoutMs: 1))
        _ = try FleetStoreConformanceTests.admit(store, a)
        let filed = try #require(try tend(store, a).filed.first)
        let ledger = try openLedger()
        while try ledger.approvals(pendingOnly: true, limit: 10).contains(where: { $0.id == filed.id }) { usleep(2_000) }
        usleep(20_000)
        let old = a
        let rejoined = try store.join(host: "a", slots: 4, version: "1")
        #expect(try tend(store, old) == ApprovalTurn(), "an old epoch is fenced")
        #expect(try state(store, "gated")?.state == "awaiting_approval")
        let turn = try tend(store, rejoined)
        let ended = try #require(turn.decided.first)
        #expect(ended.state == .timedOut && ended.decidedBy == "purser" && ended.reason == "approval timed out after 1 ms")
        #expect(try state(store, "gated")?.message == "approval timed out after 1 ms (\(filed.id))")
        #expect(try state(store, "later")?.verdict == "skipped")
        #expect(try tend(store, rejoined) == ApprovalTurn())
        #expect(try trail(ledger).map(\.kind) == ["approval_requested", "approval_timed_out"])
        #expect(try trail(ledger).last?.detail == "\(filed.id) gated: by purser: approval timed out after 1 ms")
    }

    @Test("a cancel withdraws the request of a routine that waits", arguments: StoreKind.allCases)
    func cancelled(kind: StoreKind) throws {
        let (store, openLedger) = try stores(kind)
        let a = try store.join(host: "a", slots: 4, version: "1")
        try store.submit(swarm())
        _ = try FleetStoreConformanceTests.admit(store, a)
        let filed = try #require(try tend(store, a).filed.first)
        #expect(try store.cancel(swarm: "s1"))
        #expect(try state(store, "gated")?.verdict == "cancelled")
        let ledger = try openLedger()
        #expect(try ledger.approval(id: filed.id)?.state == .withdrawn)
        #expect(throws: LedgerError.self) { try ledger.decideApproval(id: filed.id, approve: true, by: "alice", reason: "") }
        #expect(try trail(ledger).map(\.kind) == ["approval_requested", "approval_withdrawn"])
    }
}
