import Foundation
import PurserLedger
import PurserProtocol
import PurserTestSupport
import Testing

/// Routines that hold a tool marked `approval`, submitted to a fleet of two `purser serve`
/// hosts on PostgreSQL: each waits in the queue holding nothing until a person decides, from
/// another process, with the real `purser approve` / `purser deny` (on the store, or through
/// a host's API).
extension FleetSuites {
@Suite("The fleet: approvals", .timeLimit(.minutes(3)))
struct FleetApprovalTests {
    /// `gated` holds `net`, which needs approval; `later` runs after it; `free` needs none.
    func job(_ fleet: Fleet, _ name: String, timeout: String = "1h") throws -> String {
        let estimate = "estimate: { credits: 1, time: 1m, memory: 64MiB }"
        let path = fleet.home + "/\(name).yaml"
        try """
            team: { name: fleet, budget: { credits: 100, workers: 8, memory: 8GiB } }
            swarm:
              name: \(name)
              reservation: { credits: 20, time: 10h, memory: 4GiB, tools: [net, disk] }
              concurrency: 4
              approval: [net]
              approvalTimeout: \(timeout)
            routines:
              - { name: gated, plugin: scripted, input: { spend: 1 }, tools: [net, disk], retries: 2, \(estimate) }
              - { name: later, plugin: scripted, input: { spend: 1 }, after: [gated], \(estimate) }
              - { name: free, plugin: scripted, input: { spend: 1 }, tools: [disk], \(estimate) }

            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// `purser` as the operator alice, on the fleet's store.
    func asAlice(_ fleet: Fleet, _ arguments: [String]) async throws -> CommandResult {
        try await runPurser(arguments, home: fleet.home, extra: ["PURSER_LEDGER": fleet.location, "USER": "alice"])
    }

    /// The swarm's request for approval, once a host has filed it.
    func awaited(_ fleet: Fleet, swarm id: String) async throws -> Approval {
        let ledger = try fleet.ledger()
        try await fleet.wait("the gated routine's request") { _ in try !ledger.approvals(run: id).isEmpty }
        let approvals = try ledger.approvals(run: id)
        try #require(approvals.count == 1, "one request, however many hosts look: \(approvals)")
        return approvals[0]
    }

    func trail(_ fleet: Fleet, _ approval: Approval) throws -> [AuditEvent] {
        try fleet.ledger().audit(node: approval.swarmNode, team: nil).filter { $0.kind.hasPrefix("approval_") }
    }

    func routine(_ report: JSONValue, _ name: String) -> JSONValue? {
        report["routines"]?.arrayValue?.first { $0["name"]?.stringValue == name }
    }

    func stop(_ hosts: [ServeProcess]) async {
        for host in hosts { host.kill(SIGTERM) }
        for host in hosts { _ = await host.exitStatus() }
    }

    @Test("approved: the routine waits in the queue holding nothing, then runs on some host; audited")
    func approved() async throws {
        let fleet = try await Fleet(.postgres)
        let hosts = try ["a", "b"].map { try ServeProcess(name: $0, fleet: fleet) }
        let id = try await fleet.submit(try job(fleet, "approved"))
        let approval = try await awaited(fleet, swarm: id)
        #expect(approval.routine == "gated" && approval.tools == ["net"] && approval.state == .pending && approval.team == "fleet")
        try await fleet.wait("free to end") { store in try store.routines(swarm: id).first { $0.name == "free" }?.state == "done" }
        // While it waits: in the queue's gated state, never claimed, no hold of its own in the ledger.
        let store = try fleet.store()
        let waiting = try #require(try store.routines(swarm: id).first { $0.name == "gated" })
        #expect(waiting.state == "awaiting_approval" && waiting.host == nil && waiting.attempt == 0, "\(waiting)")
        #expect(try store.attempts(swarm: id).allSatisfy { $0.routine == "free" })
        let ledger = try fleet.ledger()
        #expect(try !ledger.tree(team: "fleet").contains { $0.kind == .routine && $0.name == "gated" }, "it reserved nothing")
        #expect(try store.routines(swarm: id).first { $0.name == "later" }?.state == "waiting")

        let approve = try await asAlice(fleet, ["approve", approval.id, "--reason", "looked fine"])
        #expect(approve.status == 0, "\(approve.stderr)")
        let watched = try await fleet.purser(["watch", id])
        #expect(watched.status == 0, "\(watched.stdout)\(watched.stderr)")
        #expect(watched.stderr.contains("gated: awaiting approval \(approval.id) for net"), "\(watched.stderr)")
        #expect(watched.stderr.contains("gated: approval approved by alice"), "\(watched.stderr)")
        let ran = try store.routines(swarm: id)
        #expect(ran.allSatisfy { $0.verdict == "ok" }, "\(ran)")
        let gated = try #require(ran.first { $0.name == "gated" })
        #expect(gated.attempt == 1 && ["a", "b"].contains(gated.host ?? ""), "it ran once, on a host: \(gated)")
        let audit = try trail(fleet, approval)
        #expect(audit.map(\.kind) == ["approval_requested", "approval_granted"])
        #expect(audit.last?.detail == "\(approval.id) gated: by alice: looked fine")
        let again = try await asAlice(fleet, ["approve", approval.id])
        #expect(again.status == 2 && again.stderr.contains("was approved by alice already"), "\(again.stderr)")
        let verified = try await fleet.purser(["ledger", "verify"])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        await stop(hosts)
    }

    @Test("denied through a host's API: the routine ends denied, never reserved; its dependents are skipped")
    func denied() async throws {
        let fleet = try await Fleet(.postgres)
        let hosts = try ["a", "b"].map { try ServeProcess(name: $0, fleet: fleet) }
        let id = try await fleet.submit(try job(fleet, "denied"))
        let approval = try await awaited(fleet, swarm: id)
        let socket = fleet.home + "/purser.sock"
        try await fleet.wait("a host's API") { _ in FileManager.default.fileExists(atPath: socket) }
        let deny = try await runPurser(
            ["deny", approval.id, "--reason", "not on a Friday", "--server", "unix:" + socket], home: fleet.home)
        #expect(deny.status == 0, "\(deny.stderr)")
        let watched = try await fleet.purser(["watch", id, "--json"])
        #expect(watched.status == 21, "the swarm failed, as on one host: \(watched.stdout)\(watched.stderr)")
        let report = try JSONParser.parse(Array(watched.stdout.utf8))
        #expect(report["verdict"] == "failed")
        let gated = try #require(routine(report, "gated"))
        let by = try #require(try fleet.ledger().approval(id: approval.id)?.decidedBy)
        #expect(by.hasPrefix("api:socket"), "the API names the socket as the decider: \(by)")
        #expect(gated["verdict"] == "denied" && gated["attempts"] == 0, "\(gated)")
        #expect(gated["message"]?.stringValue == "denied by \(by): not on a Friday (\(approval.id))")
        #expect(routine(report, "later")?["verdict"] == "skipped")
        #expect(routine(report, "free")?["verdict"] == "ok")
        #expect(try !fleet.ledger().tree(team: "fleet").contains { $0.kind == .routine && $0.name == "gated" }, "never reserved")
        #expect(try fleet.store().attempts(swarm: id).allSatisfy { $0.routine == "free" })
        let audit = try trail(fleet, approval)
        #expect(audit.map(\.kind) == ["approval_requested", "approval_denied"])
        #expect(audit.last?.detail == "\(approval.id) gated: by \(by): not on a Friday")
        #expect(try await asAlice(fleet, ["deny", approval.id, "--reason", "twice"]).status == 2)
        await stop(hosts)
    }

    @Test("timed out: denied once by a host, with the reason, audited; a late decision is refused")
    func timedOut() async throws {
        let fleet = try await Fleet(.postgres)
        let hosts = try ["a", "b"].map { try ServeProcess(name: $0, fleet: fleet) }
        let id = try await fleet.submit(try job(fleet, "late", timeout: "2s"))
        let approval = try await awaited(fleet, swarm: id)
        let watched = try await fleet.purser(["watch", id, "--json"])
        #expect(watched.status == 21, "\(watched.stdout)\(watched.stderr)")
        let report = try JSONParser.parse(Array(watched.stdout.utf8))
        let gated = try #require(routine(report, "gated"))
        #expect(gated["verdict"] == "denied" && gated["message"]?.stringValue == "approval timed out after 2s (\(approval.id))", "\(gated)")
        #expect(routine(report, "later")?["verdict"] == "skipped")
        let audit = try trail(fleet, approval)
        #expect(audit.map(\.kind) == ["approval_requested", "approval_timed_out"], "timed out once: \(audit.map(\.kind))")
        #expect(audit.last?.detail == "\(approval.id) gated: by purser: approval timed out after 2s")
        let late = try await asAlice(fleet, ["approve", approval.id])
        #expect(late.status == 2 && late.stderr.contains("timed out"), "\(late.stderr)")
        await stop(hosts)
    }
}
}
