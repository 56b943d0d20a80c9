import Glibc
import PurserLedger
import PurserTestSupport
import Testing

/// Approvals on every driver: requested, decided once, timed out, withdrawn; each audited at
/// the swarm's node with who and why.
@Suite("Approval store conformance", .storeWork, .timeLimit(.minutes(1)))
struct ApprovalStoreConformanceTests {
    func swarm(_ store: any LedgerStore) throws -> Node {
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit), tools: ["net"]))
        return try store.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "s", amounts: Resources(credits: 5 * credit), tools: ["net"]))
    }

    func request(_ swarm: Node, _ routine: String, timeoutMs: Int64 = 3_600_000) -> ApprovalRequest {
        ApprovalRequest(swarm: swarm.id, run: "s-1", routine: routine, tools: ["net"], timeoutMs: timeoutMs)
    }

    @Test("a decision is taken once, and audited with who and why", arguments: StoreKind.allCases)
    func decide(kind: StoreKind) throws {
        let store = try kind.make()
        let swarm = try swarm(store)
        let first = try store.requestApproval(request(swarm, "a"))
        let second = try store.requestApproval(request(swarm, "b"))
        #expect(first.id != second.id && first.id.hasPrefix("ap-"))
        #expect(first.state == .pending && first.team == "t" && first.swarm == "s" && first.tools == ["net"])
        #expect(Set(try store.approvals(pendingOnly: true, limit: 10).map(\.id)) == [first.id, second.id])
        let approved = try store.decideApproval(id: first.id, approve: true, by: "alice", reason: "fine")
        #expect(approved.state == .approved && approved.decidedBy == "alice" && approved.reason == "fine")
        #expect(throws: LedgerError(.decided, "approval \(first.id) was approved by alice already")) {
            try store.decideApproval(id: first.id, approve: false, by: "bob", reason: "no")
        }
        let denied = try store.decideApproval(id: second.id, approve: false, by: "bob", reason: "risky")
        #expect(denied.state == .denied)
        #expect(throws: LedgerError.self) { try store.decideApproval(id: "ap-none", approve: true, by: "alice", reason: "") }
        do {
            _ = try store.decideApproval(id: "ap-none", approve: true, by: "alice", reason: "")
        } catch { #expect(error.code == .unknownApproval) }
        #expect(try store.approvals(pendingOnly: true, limit: 10).isEmpty)
        let byID = Dictionary(uniqueKeysWithValues: try store.approvals(run: "s-1").map { ($0.id, $0.state) })
        #expect(byID == [first.id: .approved, second.id: .denied])
        let trail = try store.audit(node: swarm.id, team: nil).filter { $0.kind.hasPrefix("approval_") }
        #expect(trail.map(\.kind) == ["approval_requested", "approval_requested", "approval_granted", "approval_denied"])
        #expect(trail[2].detail == "\(first.id) a: by alice: fine" && trail[3].detail == "\(second.id) b: by bob: risky")
        #expect(trail.allSatisfy { $0.team == "t" })
        #expect(try store.approval(id: first.id)?.decidedMs != nil)
    }

    @Test("past its time an approval can only time out; a withdrawn one is decided", arguments: StoreKind.allCases)
    func timeout(kind: StoreKind) throws {
        let store = try kind.make()
        let swarm = try swarm(store)
        let due = try store.requestApproval(request(swarm, "a", timeoutMs: 1))
        let other = try store.requestApproval(request(swarm, "b"))
        #expect(try store.expireApproval(id: other.id, reason: "x") == nil, "not yet due")
        while try store.approval(id: due.id).map({ $0.expiresMs >= nowMs() }) ?? false { usleep(2_000) }
        do {
            _ = try store.decideApproval(id: due.id, approve: true, by: "alice", reason: "")
            Issue.record("a decision past the approval's time was taken")
        } catch { #expect(error.code == .decided && error.message.contains("timed out")) }
        #expect(try store.approvals(pendingOnly: true, limit: 10).map(\.id) == [other.id], "past its time, not listed")
        let ended = try #require(try store.expireApproval(id: due.id, reason: "approval timed out after 1ms"))
        #expect(ended.state == .timedOut && ended.decidedBy == "purser")
        #expect(try store.expireApproval(id: due.id, reason: "again") == nil)
        #expect(try store.withdrawApproval(id: other.id, reason: "the swarm was cancelled")?.state == .withdrawn)
        #expect(throws: LedgerError.self) { try store.decideApproval(id: other.id, approve: true, by: "alice", reason: "") }
        let kinds = try store.audit(node: swarm.id, team: nil).map(\.kind).filter { $0.hasPrefix("approval_") }
        #expect(kinds == ["approval_requested", "approval_requested", "approval_timed_out", "approval_withdrawn"])
    }

    func nowMs() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }
}
