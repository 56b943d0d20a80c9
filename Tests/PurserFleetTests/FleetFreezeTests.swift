import Foundation
import PurserLedger
import PurserTestSupport
import Testing

/// `purser team freeze`: the emergency stop, across every host of the fleet.
extension FleetSuites {
@Suite("The fleet: a frozen team", .timeLimit(.minutes(3)))
struct FleetFreezeTests {
    /// A frozen team's swarm waits in line on every host, granted nothing; thawed, it runs.
    @Test(arguments: StoreKind.allCases)
    func aFrozenTeamsSwarmWaitsUntilItThaws(kind: StoreKind) async throws {
        let fleet = try await Fleet(kind)
        let created = try await fleet.purser(["team", "create", "fleet", "--credits", "100"])
        try #require(created.status == 0, "\(created.stderr)")
        let frozen = try await fleet.purser(["team", "freeze", "fleet", "--reason", "runaway spend"])
        try #require(frozen.status == 0, "\(frozen.stderr)")
        let hosts = try ["a", "b"].map { try ServeProcess(name: $0, fleet: fleet) }
        let id = try await fleet.submit(try fleet.job("held", count: 6, input: "{ spend: 0.5 }", credits: 50))
        // The hosts look every 250 ms: a few seconds of looks, none of which may admit or claim.
        try await Task.sleep(for: .seconds(2))
        let store = try fleet.store()
        #expect(try store.swarm(id: id)?.state == "queued", "a frozen team's swarm is not admitted")
        #expect(try store.attempts(swarm: id).isEmpty, "nothing of it ran")
        let thawed = try await fleet.purser(["team", "thaw", "fleet"])
        #expect(thawed.status == 0, "\(thawed.stderr)")
        let watched = try await fleet.purser(["watch", id])
        #expect(watched.status == 0, "\(watched.stdout)\(watched.stderr)")
        let trail = try fleet.ledger().audit(node: nil, team: "fleet").filter { $0.kind == "freeze" || $0.kind == "thaw" }
        #expect(trail.map(\.kind) == ["freeze", "thaw"] && trail[0].detail.hasSuffix(": runaway spend"))
        for host in hosts { host.kill(SIGTERM) }
        for host in hosts { _ = await host.exitStatus() }
    }

    /// `--cancel-running`: the team's running routines stop and go back in line without
    /// using a retry; nothing runs while frozen; thawed, every routine ends ok, and the
    /// books are exact.
    @Test(arguments: StoreKind.allCases)
    func freezingWithCancelStopsWhatRunsAndItRunsAgainAfterThaw(kind: StoreKind) async throws {
        let fleet = try await Fleet(kind)
        try await fleet.addGated()
        let gate = fleet.home + "/gate"
        let hosts = try ["a", "b"].map { try ServeProcess(name: $0, fleet: fleet) }
        let id = try await fleet.submit(try fleet.job("stopped", count: 4, input: "{ spend: 0.5, gate: '\(gate)' }", plugin: "gated"))
        try await fleet.wait("four routines to run") { store in
            try store.routines(swarm: id).filter { $0.state == "running" }.count == 4
        }
        let frozen = try await fleet.purser(["team", "freeze", "fleet", "--cancel-running"])
        #expect(frozen.status == 0 && frozen.stdout.contains("4 running routines told to stop"), "\(frozen.stdout)\(frozen.stderr)")
        try await fleet.wait("the four to stop and wait in line") { store in
            try store.routines(swarm: id).allSatisfy { $0.state == "ready" }
        }
        FileManager.default.createFile(atPath: gate, contents: nil)
        try await Task.sleep(for: .seconds(1))
        let store = try fleet.store()
        #expect(try store.routines(swarm: id).allSatisfy { $0.state == "ready" }, "nothing is claimed while frozen")
        let thawed = try await fleet.purser(["team", "thaw", "fleet"])
        #expect(thawed.status == 0, "\(thawed.stderr)")
        let watched = try await fleet.purser(["watch", id])
        #expect(watched.status == 0, "\(watched.stdout)\(watched.stderr)")
        let attempts = try store.attempts(swarm: id)
        #expect(attempts.filter { $0.verdict == "frozen" }.count == 4 && attempts.count == 8, "\(attempts)")
        #expect(try store.routines(swarm: id).allSatisfy { $0.verdict == "ok" && $0.attempt == 2 })
        let team = try fleet.ledger().team(named: "fleet")
        #expect(team.reserved.credits == 0 && team.workersInUse == 0)
        #expect(team.consumed.credits == 4 * 500_000, "the stopped attempts spent nothing; each rerun spent once")
        let verified = try await fleet.purser(["ledger", "verify"])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        for host in hosts { host.kill(SIGTERM) }
        for host in hosts { _ = await host.exitStatus() }
    }

    /// A stopped attempt does not count against the routine's retries: stopped by a freeze,
    /// then failing once, a routine with one retry still gets it.
    @Test func aStoppedAttemptUsesNoRetry() async throws {
        let fleet = try await Fleet(.sqlite)
        try await fleet.addGated()
        let (gate, marker) = (fleet.home + "/gate", fleet.home + "/failed-once")
        let job = fleet.home + "/retry.yaml"
        try """
            team: { name: fleet, budget: { credits: 100, workers: 8, memory: 8GiB } }
            swarm: { name: retry, reservation: { credits: 50, time: 10h, memory: 4GiB }, concurrency: 4 }
            routines:
              - { name: r, plugin: gated, retries: 1, input: { gate: '\(gate)', failOnce: '\(marker)', spend: 0.5 },
                  estimate: { credits: 1, time: 1m, memory: 64MiB } }

            """.write(toFile: job, atomically: true, encoding: .utf8)
        let host = try ServeProcess(name: "a", fleet: fleet)
        let id = try await fleet.submit(job)
        try await fleet.wait("the routine to run") { store in try store.routines(swarm: id).first?.state == "running" }
        let frozen = try await fleet.purser(["team", "freeze", "fleet", "--cancel-running"])
        #expect(frozen.status == 0, "\(frozen.stderr)")
        try await fleet.wait("it to stop") { store in try store.routines(swarm: id).first?.state == "ready" }
        FileManager.default.createFile(atPath: gate, contents: nil)
        let thawed = try await fleet.purser(["team", "thaw", "fleet"])
        #expect(thawed.status == 0, "\(thawed.stderr)")
        let watched = try await fleet.purser(["watch", id])
        #expect(watched.status == 0, "\(watched.stdout)\(watched.stderr)")
        let attempts = try fleet.store().attempts(swarm: id).sorted { $0.attempt < $1.attempt }
        #expect(attempts.map { $0.verdict ?? "-" } == ["frozen", "error", "ok"], "\(attempts)")
        host.kill(SIGTERM)
        _ = await host.exitStatus()
    }
}
}
