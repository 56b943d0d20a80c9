import Foundation
import PurserConfig
import PurserLedger
import PurserProtocol
import PurserRuntime
import PurserSandbox
import PurserTestSupport
import Synchronization
import Testing

/// Routines that hold a tool marked `approval`: the swarm runs in this process, and a person
/// decides from another, with the real `purser approve` / `purser deny` on the same store.
@Suite("Approvals", .timeLimit(.minutes(3)))
struct ApprovalTests {
    let home = Fixtures.temporaryHome()
    let scripted = Fixtures.product("scripted")

    func purser(_ arguments: [String]) async throws -> CommandResult {
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        environment["USER"] = "alice"
        return try await runCommand(Fixtures.product("purser"), arguments, environment: environment)
    }

    func job(timeout: String = "1h", free: Bool = false) -> String {
        """
        team: { name: t, budget: { credits: 100, workers: 4 } }
        swarm: { name: s, reservation: { credits: 10, tools: [net, disk] }, approval: [net], approvalTimeout: \(timeout) }
        routines:
          - { name: gated, plugin: \(scripted), input: { spend: 1 }, tools: [net, disk], retries: 2 }
          - { name: later, plugin: \(scripted), input: { spend: 1 }, after: [gated] }
        """ + (free ? "\n  - { name: free, plugin: \(scripted), input: { spend: 1 }, tools: [disk] }\n" : "\n")
    }

    func start(_ yaml: String) throws -> (task: Task<SwarmReport, any Error>, events: @Sendable () -> [SwarmEvent], ledger: RuntimeLedger) {
        let path = home + "/job.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let runtime = try Runtime.withLedger(home: home)
        let events = Mutex<[SwarmEvent]>([])
        let runner = try SwarmRunner(runtime: runtime, job: JobFile.load(path: path)) { event in events.withLock { $0.append(event) } }
        return (Task { try await runner.run() }, { events.withLock { $0 } }, runtime.ledger!)
    }

    /// The swarm's first request for approval, once it is filed; fails if the swarm ends
    /// without one.
    func awaited(_ events: @Sendable () -> [SwarmEvent]) async throws -> String {
        while true {
            let seen = events()
            if let id = seen.first(where: { $0.kind == "await_approval" })?.fields["approval"]?.stringValue { return id }
            try #require(!seen.contains { $0.kind == "return" && $0.fields["tier"] == "swarm" }, "the swarm ended without asking")
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    func trail(_ store: any LedgerStore, swarm: NodeID) throws -> [AuditEvent] {
        try store.audit(node: swarm, team: nil).filter { $0.kind.hasPrefix("approval_") }
    }

    @Test("approved: the routine waits holding nothing, then reserves and runs; the decision is audited")
    func approved() async throws {
        let (task, events, ledger) = try start(job())
        let id = try await awaited(events)
        let listed = try JSONParser.parse(try await purser(["approvals", "--json"]).stdout)
        let pending = try #require(listed.arrayValue?.first)
        #expect(pending["id"]?.stringValue == id && pending["routine"] == "gated" && pending["tools"] == ["net"])
        #expect(pending["state"] == "pending" && pending["team"] == "t")
        // While it waits: nothing reserved below the swarm, no worker seat taken.
        let store = ledger.store
        let swarm = try store.node(try #require(pending["swarmNode"]?.numberValue?.int64))
        #expect(swarm.reserved.credits == 0 && swarm.available.credits == swarm.cap.credits)
        #expect(try store.openChildren(of: swarm.id).isEmpty)
        #expect(try store.team(named: "t").workersInUse == 0)
        let shown = try JSONParser.parse(try await purser(["team", "show", "t", "--json"]).stdout)
        #expect(shown.arrayValue?.count == 2, "the team and the swarm, no routine: \(shown)")

        let approve = try await purser(["approve", id, "--reason", "looked fine"])
        #expect(approve.status == 0, "\(approve.stderr)")
        let report = try await task.value
        #expect(report.allOK)
        #expect(report.routines.first { $0.name == "gated" }?.attempts == 1)
        let decision = try #require(events().first { $0.kind == "approval" })
        #expect(decision.fields["decision"] == "approved" && decision.fields["by"] == "alice")
        let audit = try trail(store, swarm: swarm.id)
        #expect(audit.map(\.kind) == ["approval_requested", "approval_granted"])
        #expect(audit.last?.detail == "\(id) gated: by alice: looked fine")

        let again = try await purser(["approve", id])
        #expect(again.status == 2 && again.stderr.contains("was approved by alice already"), "\(again.stderr)")
        #expect(try JSONParser.parse(try await purser(["approvals", "--json"]).stdout) == [])
        #expect(try store.verify().isEmpty)
    }

    @Test("denied: the routine ends denied without a reservation or a retry, its dependents skipped, others run")
    func denied() async throws {
        let (task, events, ledger) = try start(job(free: true))
        let id = try await awaited(events)
        let deny = try await purser(["deny", id, "--reason", "not on a Friday"])
        #expect(deny.status == 0, "\(deny.stderr)")
        let report = try await task.value
        let gated = try #require(report.routines.first { $0.name == "gated" })
        #expect(gated.verdict == .denied && gated.attempts == 0)
        #expect(gated.message == "denied by alice: not on a Friday (\(id))")
        #expect(report.routines.first { $0.name == "later" }?.verdict == .skipped)
        #expect(report.routines.first { $0.name == "free" }?.verdict == .ok)
        let store = ledger.store
        #expect(try !store.tree(team: "t").contains { $0.name == "gated" }, "never reserved")
        let audit = try trail(store, swarm: try #require(report.swarmNode))
        #expect(audit.map(\.kind) == ["approval_requested", "approval_denied"])
        #expect(audit.last?.detail == "\(id) gated: by alice: not on a Friday")
        #expect(try await purser(["deny", id, "--reason", "twice"]).status == 2)
    }

    @Test("timed out: denied with the reason, audited; a late decision is refused")
    func timedOut() async throws {
        let (task, events, ledger) = try start(job(timeout: "300ms"))
        let report = try await task.value
        let id = try await awaited(events)
        let gated = try #require(report.routines.first { $0.name == "gated" })
        #expect(gated.verdict == .denied && gated.message == "approval timed out after 300ms (\(id))")
        let audit = try trail(ledger.store, swarm: try #require(report.swarmNode))
        #expect(audit.map(\.kind) == ["approval_requested", "approval_timed_out"])
        #expect(audit.last?.detail == "\(id) gated: by purser: approval timed out after 300ms")
        let late = try await purser(["approve", id])
        #expect(late.status == 2 && late.stderr.contains("timed out"), "\(late.stderr)")
    }

    @Test("an unknown approval is a clear error and exit 2")
    func unknown() async throws {
        for arguments in [["approve", "ap-nope"], ["deny", "ap-nope", "--reason", "x"]] {
            let result = try await purser(arguments)
            #expect(result.status == 2 && result.stderr.contains("no approval ap-nope"), "\(result.stderr)")
        }
    }

    @Test("a plugin's manifest marks its tools for approval in every job that runs it")
    func manifest() async throws {
        var manifest = PluginManifest()
        manifest.tools = ["net"]
        manifest.approval = ["net"]
        let registry = try PluginRegistry(runtime: Runtime.withLedger(home: home))
        _ = try await registry.add(path: scripted, name: "gated-plugin", manifest: manifest)
        let (task, events, _) = try start("""
            team: { name: t, budget: { credits: 100 } }
            swarm: { name: s, reservation: { credits: 10, tools: [net] } }
            routines:
              - { name: fetch, plugin: gated-plugin, input: { spend: 1 }, tools: [net] }
            """)
        let id = try await awaited(events)
        #expect(try await purser(["approve", id]).status == 0)
        #expect(try await task.value.allOK)
    }
}

@Suite("Approval fields")
struct ApprovalFieldTests {
    @Test(arguments: [
        ("swarm: { name: s, reservation: { credits: 5 }, approval: [net] }", "job.yaml:2: swarm.approval: 'net' is not among swarm.reservation.tools"),
        ("swarm: { name: s, reservation: { credits: 5, tools: [net] }, approval: [net], approvalTimeout: soon }",
         "job.yaml:2: swarm.approvalTimeout: expected a duration"),
        ("swarm: { name: s, reservation: { credits: 5, tools: [net] }, approval: [net], approvalTimeout: 0s }",
         "job.yaml:2: swarm.approvalTimeout: must be more than 0"),
        ("swarm: { name: s, reservation: { credits: 5, tools: [net] }, approval: { net: yes } }", "job.yaml:2: swarm.approval: expected"),
    ])
    func badJobFields(swarm: String, expected: String) async throws {
        let home = Fixtures.temporaryHome()
        try "team: { name: t }\n\(swarm)\nroutines:\n  - { name: a, plugin: /bin/true }\n"
            .write(toFile: home + "/job.yaml", atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        let result = try await runCommand(Fixtures.product("purser"), ["run", home + "/job.yaml"], environment: environment)
        #expect(result.status == 2)
        #expect(result.stderr.contains(expected), "\(result.stderr)")
    }

    @Test func aManifestMayMarkOnlyItsOwnTools() throws {
        let home = Fixtures.temporaryHome()
        try "name: p\ntools: [net]\napproval: [net, disk]\n".write(toFile: home + "/plugin.yaml", atomically: true, encoding: .utf8)
        #expect {
            _ = try PluginManifest.load(path: home + "/plugin.yaml")
        } throws: { error in
            "\(error)".contains("plugin.yaml:3: approval: 'disk' is not among the plugin's tools")
        }
        try "name: p\ntools: [net]\napproval: [net]\n".write(toFile: home + "/plugin.yaml", atomically: true, encoding: .utf8)
        let manifest = try PluginManifest.load(path: home + "/plugin.yaml")
        #expect(manifest.approval == ["net"] && PluginManifest(stored: manifest.json).approval == ["net"])
    }
}

extension ApprovalTests {
    @Test("a swarm cancelled while a routine waits withdraws its request")
    func cancelledWithdraws() async throws {
        let (task, events, ledger) = try start(job())
        let id = try await awaited(events)
        task.cancel()
        let report = try await task.value
        let gated = try #require(report.routines.first { $0.name == "gated" })
        #expect(gated.verdict == .cancelled)
        #expect(try ledger.store.approval(id: id)?.state == .withdrawn)
        #expect(try await purser(["approve", id]).status == 2)
        #expect(try JSONParser.parse(try await purser(["approvals", "--json"]).stdout) == [])
    }
}

extension ApprovalTests {
    /// The fleet gates routines as `purser run` does (PurserFleetTests' FleetApprovalTests):
    /// it no longer refuses the job.
    @Test("purser submit takes a job that needs approval")
    func fleetTakes() async throws {
        let added = try await purser(["plugin", "add", scripted, "--name", "scripted"])
        try #require(added.status == 0, "\(added.stderr)")
        try job().replacingOccurrences(of: "plugin: \(scripted)", with: "plugin: scripted")
            .write(toFile: home + "/job.yaml", atomically: true, encoding: .utf8)
        let submitted = try await purser(["submit", home + "/job.yaml"])
        #expect(submitted.status == 0, "\(submitted.stderr)")
        #expect(submitted.stdout.hasPrefix("s-"), "\(submitted.stdout)")
    }
}
