import Foundation
import PurserLedger
import PurserProtocol
import PurserTestSupport
import Testing

/// `purser serve` hosts, real processes, sharing one store: SQLite on this host, or the
/// tests' PostgreSQL.
extension FleetSuites {
@Suite("The fleet: serve, submit, watch", .timeLimit(.minutes(3)))
struct FleetTests {
    /// 24 routines of half a credit each over two hosts of two slots.
    @Test(arguments: StoreKind.allCases)
    func aSwarmSpreadsOverTheHostsAndEveryRoutineEndsOK(kind: StoreKind) async throws {
        let fleet = try await Fleet(kind)
        let hosts = try ["a", "b"].map { try ServeProcess(name: $0, fleet: fleet) }
        let id = try await fleet.submit(try fleet.job("spread", count: 24, input: "{ spend: 0.5, sleepMs: 200 }"))
        let watched = try await fleet.purser(["watch", id, "--json"])
        #expect(watched.status == 0, "\(watched.stderr)")
        let report = try JSONParser.parse(Array(watched.stdout.utf8))
        let routines = report["routines"]?.arrayValue ?? []
        #expect(routines.count == 24 && routines.allSatisfy { $0["verdict"] == "ok" })
        let ran = Set(routines.compactMap { $0["host"]?.stringValue })
        #expect(ran == ["a", "b"], "each host ran some: \(ran)")
        let team = try fleet.ledger().team(named: "fleet")
        let stopped = try fleet.store().attempts(swarm: id).count - 24
        let extra = team.consumed.credits - 24 * 500_000
        #expect(
            extra >= 0 && extra <= Int64(stopped) * 500_000 && extra % 500_000 == 0,
            "the team's total is every routine's spend, and an attempt stopped on the way at most once: \(team.consumed.credits)")
        #expect(team.reserved.credits == 0 && team.available.credits == team.cap.credits - team.consumed.credits)
        let verified = try await fleet.purser(["ledger", "verify"])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        for host in hosts { host.kill(SIGTERM) }
        for host in hosts { #expect(await host.exitStatus() == 0, "\(host.output)") }
        #expect(try fleet.store().hosts().map(\.state) == ["left", "left"], "a drained host leaves the fleet")
    }

    /// The README's fleet tour, `examples/fleet.sh`, as a user runs it (with this build's products).
    @Test func theFleetTourRuns() async throws {
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_BIN"] = Fixtures.buildDirectory
        let toured = try await runCommand("/bin/bash", [Fixtures.file("examples/fleet.sh")], environment: environment)
        #expect(toured.status == 0, "\(toured.stdout.suffix(2000))\(toured.stderr.suffix(2000))")
        #expect(toured.stdout.contains("verdict ok: 300 routines"), "\(toured.stdout.suffix(2000))")
        #expect(toured.stdout.contains("ledger verified"))
    }

    /// Each host reserves its routines from chunks of the swarm's hold, so the swarm's node
    /// (and the team's seat count) change a few times a host, not at every routine; the
    /// chunks return what they did not use, and the books are exact.
    @Test(arguments: StoreKind.allCases)
    func hostsReserveFromChunksOfTheSwarm(kind: StoreKind) async throws {
        let fleet = try await Fleet(kind)
        let hosts = try ["a", "b"].map { try ServeProcess(name: $0, fleet: fleet) }
        let id = try await fleet.submit(try fleet.job("chunked", count: 40, input: "{ spend: 0.5 }"))
        let watched = try await fleet.purser(["watch", id, "--json"])
        #expect(watched.status == 0, "\(watched.stderr)")
        let ledger = try fleet.ledger()
        let tree = try ledger.tree(team: "fleet")
        let swarm = try #require(try fleet.store().swarm(id: id)?.node)
        let chunks = tree.filter { $0.parent == swarm && $0.kind == .swarm }
        let routines = tree.filter { $0.kind == .routine }
        #expect(routines.count >= 40)
        // A routine that reserves while its host is taking a chunk takes its hold from the swarm.
        let direct = tree.filter { $0.parent == swarm }
        #expect(!chunks.isEmpty && direct.count <= 12, "a few holds from the swarm, not one a routine: \(direct.count)")
        #expect(routines.filter { routine in chunks.contains { $0.id == routine.parent } }.count >= 28)
        #expect(chunks.allSatisfy { !$0.isOpen && $0.consumed.credits == $0.cap.credits - $0.returned.credits })
        let team = try ledger.team(named: "fleet")
        #expect(team.workersInUse == 0 && team.reserved.credits == 0)
        #expect(team.consumed.credits == 40 * 500_000, "the team's total is every routine's spend: \(team.consumed.credits)")
        let verified = try await fleet.purser(["ledger", "verify"])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        for host in hosts { host.kill(SIGTERM) }
        for host in hosts { #expect(await host.exitStatus() == 0, "\(host.output)") }
    }

    /// A host killed with routines running: they end `host_lost` and run again elsewhere,
    /// never on two hosts at once; its holds are reclaimed; the ledger verifies.
    /// Killed at the start (its first two routines running), or later (six done, two running).
    @Test(arguments: StoreKind.allCases, [0, 6])
    func aKilledHostsRoutinesFinishElsewhere(kind: StoreKind, done: Int) async throws {
        let fleet = try await Fleet(kind)
        try await fleet.addGated()
        // The first `done` end at once; the rest wait on a gate the test opens once the
        // victim's two are rescued, so that they are running when it dies, however slow the machine.
        let gate = fleet.home + "/gate"
        let routines = (0..<12).map { index in
            index < done ? (plugin: "scripted", input: "{ spend: 0.5 }") : (plugin: "gated", input: "{ spend: 0.5, gate: '\(gate)' }")
        }
        let victim = try ServeProcess(name: "victim", fleet: fleet)
        let id = try await fleet.submit(try fleet.job("rescue", routines: routines))
        try await fleet.wait("the victim to run two routines with \(done) done") { store in
            let routines = try store.routines(swarm: id)
            return routines.filter { $0.state == "done" }.count >= done
                && routines.filter { $0.state == "running" && $0.host == "victim" }.count == 2
        }
        let others = try ["a", "b"].map { try ServeProcess(name: $0, fleet: fleet) }
        victim.kill(SIGKILL)
        _ = await victim.exitStatus()
        try await fleet.wait("the victim's routines to be rescued") { store in
            try store.attempts(swarm: id).filter { $0.verdict == "host_lost" }.count == 2
        }
        FileManager.default.createFile(atPath: gate, contents: nil)
        let watched = try await fleet.purser(["watch", id, "--json"])
        #expect(watched.status == 0, "\(watched.stderr)")
        let store = try fleet.store()
        let attempts = try store.attempts(swarm: id)
        let lost = attempts.filter { $0.verdict == "host_lost" }
        #expect(lost.count == 2 && lost.allSatisfy { $0.host == "victim" })
        let dead = try #require(try store.hosts().first { $0.name == "victim" })
        #expect(dead.state == "lost" && dead.running == 0, "a lost host runs nothing: its routines were rescued (\(dead))")
        #expect(try store.routines(swarm: id).allSatisfy { $0.verdict == "ok" })
        for (routine, tries) in Dictionary(grouping: attempts, by: \.routine) {
            let ordered = tries.sorted { $0.attempt < $1.attempt }
            for (earlier, later) in zip(ordered, ordered.dropFirst()) {
                #expect((earlier.endedMs ?? .max) <= later.startedMs, "\(routine): attempts overlap")
            }
        }
        let team = try fleet.ledger().team(named: "fleet")
        let extra = team.consumed.credits - 12 * 500_000
        #expect(extra >= 0 && extra <= 2 * 500_000 && extra % 500_000 == 0, "a lost attempt's recorded spend stays charged, once")
        #expect(team.reserved.credits == 0, "nothing is left held: \(team.reserved.credits)")
        let verified = try await fleet.purser(["ledger", "verify"])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        for host in others { host.kill(SIGTERM) }
        for host in others { _ = await host.exitStatus() }
    }

    /// A trusted plugin's kept workers end with their swarm on the host that kept them,
    /// not when the host ends.
    @Test func aSwarmsKeptWorkersEndWithIt() async throws {
        let fleet = try await Fleet(.sqlite)
        try await fleet.addGated()
        let host = try ServeProcess(name: "a", fleet: fleet, slots: 2)
        let id = try await fleet.submit(try fleet.job("kept", count: 6, input: "{ spend: 0.5 }", plugin: "gated"))
        let watched = try await fleet.purser(["watch", id])
        #expect(watched.status == 0, "\(watched.stderr)")
        let supervisor = host.pid
        try await fleet.wait(seconds: 20, "the swarm's kept workers to end") { _ in ProcessTree.runs(of: supervisor).isEmpty }
        host.kill(SIGTERM)
        _ = await host.exitStatus()
    }

    /// A host offering 200 MiB runs at most three 64 MiB routines at once, whatever its slots.
    @Test func aHostClaimsOnlyWhatFitsInTheMemoryItOffers() async throws {
        let fleet = try await Fleet(.sqlite)
        let host = try ServeProcess(name: "a", fleet: fleet, slots: 8, extra: ["--memory", "200MiB"])
        let id = try await fleet.submit(try fleet.job("memory", count: 8, input: "{ sleepMs: 600 }"))
        let watched = try await fleet.purser(["watch", id])
        #expect(watched.status == 0, "\(watched.stderr)")
        let attempts = try fleet.store().attempts(swarm: id)
        let most = attempts.map { attempt in
            attempts.filter { $0.startedMs <= attempt.startedMs && ($0.endedMs ?? .max) > attempt.startedMs }.count
        }.max() ?? 0
        #expect(most <= 3 && most >= 2, "at most three at once: \(most)")
        host.kill(SIGTERM)
        _ = await host.exitStatus()
    }

    @Test func aBadJobFileIsRefusedAndNothingIsQueued() async throws {
        let fleet = try await Fleet(.sqlite)
        let pathJob = fleet.home + "/path.yaml"
        try """
            team: { name: t, budget: { credits: 10 } }
            swarm: { name: s, reservation: { credits: 5, time: 1m, memory: 1GiB } }
            routines:
              - { name: a, plugin: ./scripted }
            """.write(toFile: pathJob, atomically: true, encoding: .utf8)
        let byPath = try await fleet.purser(["submit", pathJob])
        #expect(byPath.status == 2)
        #expect(byPath.stderr.contains("path.yaml:4: routines.a.plugin") && byPath.stderr.contains("registered"), "\(byPath.stderr)")
        let broken = fleet.home + "/broken.yaml"
        try "team: { name: t\nswarm: [".write(toFile: broken, atomically: true, encoding: .utf8)
        let unreadable = try await fleet.purser(["submit", broken])
        #expect(unreadable.status == 2 && unreadable.stderr.contains("broken.yaml"), "\(unreadable.stderr)")
        let unknown = try await fleet.purser(["watch", "s-nope"])
        #expect(unknown.status == 2 && unknown.stderr.contains("no swarm s-nope"), "\(unknown.stderr)")
        #expect(try fleet.store().swarms(limit: 10).isEmpty)
    }

    /// A cancel stops what runs (it ends `cancelled`), withdraws what waits, and returns
    /// everything unused to the team.
    @Test func aCancelledSwarmStopsItsRunsAndReturnsTheRest() async throws {
        let fleet = try await Fleet(.sqlite)
        let host = try ServeProcess(name: "a", fleet: fleet)
        let id = try await fleet.submit(try fleet.job("cancel", count: 4, input: "{ sleepMs: 60000 }", concurrency: 1))
        try await fleet.wait("a routine to run") { store in try store.routines(swarm: id).contains { $0.state == "running" } }
        let cancelled = try await fleet.purser(["cancel", id])
        #expect(cancelled.status == 0, "\(cancelled.stderr)")
        let watched = try await fleet.purser(["watch", id, "--json"])
        #expect(watched.status == 18, "the exit code of a cancelled run: \(watched.stderr)")
        let routines = try fleet.store().routines(swarm: id)
        #expect(routines.allSatisfy { $0.verdict == "cancelled" }, "\(routines.map { $0.verdict ?? "-" })")
        #expect(routines.filter { $0.attempt == 1 }.count == 1, "one ran; three were withdrawn")
        let team = try fleet.ledger().team(named: "fleet")
        #expect(team.reserved.credits == 0 && team.consumed.credits == 0)
        host.kill(SIGTERM)
        #expect(await host.exitStatus() == 0)
    }

    /// SIGTERM: nothing more is claimed, the running routine finishes, the host leaves.
    @Test func sigtermDrainsTheHost() async throws {
        let fleet = try await Fleet(.sqlite)
        try await fleet.addGated()
        let host = try ServeProcess(name: "a", fleet: fleet, slots: 1)
        let gate = fleet.home + "/gate"
        let id = try await fleet.submit(try fleet.job("drain", count: 2, input: "{ gate: '\(gate)' }", plugin: "gated"))
        try await fleet.wait("the first routine to start") { _ in FileManager.default.fileExists(atPath: gate + ".started") }
        host.kill(SIGTERM)
        try await fleet.wait("the host to drain") { _ in host.output.contains("draining") }
        FileManager.default.createFile(atPath: gate, contents: nil)
        #expect(await host.exitStatus() == 0, "\(host.output)")
        let routines = try fleet.store().routines(swarm: id)
        #expect(routines.map(\.state).sorted() == ["done", "ready"], "the running one finished; the other was not claimed")
        #expect(try fleet.store().hosts().map(\.state) == ["left"])
    }

    /// A routine still running at the drain timeout is cancelled and goes back in line.
    @Test func aDrainTimeoutRequeuesWhatStillRuns() async throws {
        let fleet = try await Fleet(.sqlite)
        let host = try ServeProcess(name: "a", fleet: fleet, slots: 1, extra: ["--drain-timeout", "1s"])
        let id = try await fleet.submit(try fleet.job("late", count: 1, input: "{ spend: 0.5, sleepMs: 60000 }"))
        try await fleet.wait("the routine to run") { store in try store.routines(swarm: id).first?.state == "running" }
        host.kill(SIGTERM)
        #expect(await host.exitStatus() == 0, "\(host.output)")
        let store = try fleet.store()
        #expect(try store.routines(swarm: id).map(\.state) == ["ready"], "back in line for another host")
        #expect(try store.attempts(swarm: id).map(\.verdict) == ["cancelled"])
        #expect(try fleet.ledger().team(named: "fleet").reserved.credits > 0, "the swarm still holds its budget for the routine")
        let later = try ServeProcess(name: "b", fleet: fleet, slots: 1)
        // The routine sleeps a minute: that it is claimed again is enough.
        try await fleet.wait("another host to claim it") { store in try store.routines(swarm: id).first?.attempt == 2 }
        later.kill(SIGKILL)
    }
}
}

/// The store goes away under the fleet, longer than a host may go without a heartbeat.
extension FleetSuites {
@Suite("The fleet when PostgreSQL restarts", .timeLimit(.minutes(3)))
struct FleetStoreOutageTests {
    /// Hosts that cannot heartbeat fence themselves and stop their runs, which go back in
    /// line; when the store is back they join again, and the swarm completes with every
    /// routine ok, nothing lost and nothing held.
    @Test func aSwarmOutlivesAPostgresRestart() async throws {
        let server = try await PostgresServer.borrowForFaults()
        defer { server.giveBack() }
        let fleet = try await Fleet(location: try await offPool { try server.makeDatabase() })
        let hosts = try ["a", "b"].map { try ServeProcess(name: $0, fleet: fleet) }
        let id = try await fleet.submit(try fleet.job("outage", count: 16, input: "{ spend: 0.5, sleepMs: 700 }"))
        try await fleet.wait("a routine to end") { store in try store.routines(swarm: id).contains { $0.state == "done" } }
        try await offPool {
            try server.stopServer()
            Thread.sleep(forTimeInterval: 4)
            try server.startServer()
        }
        let watched = try await fleet.purser(["watch", id, "--json"])
        #expect(watched.status == 0, "\(watched.stderr)")
        #expect(try fleet.store().routines(swarm: id).allSatisfy { $0.verdict == "ok" })
        let team = try fleet.ledger().team(named: "fleet")
        let extra = team.consumed.credits - 16 * 500_000
        let attempts = try fleet.store().attempts(swarm: id).map { "\($0.routine)#\($0.attempt)@\($0.host): \($0.verdict ?? "-")" }
        let settles = hosts.flatMap { $0.output.split(separator: "\n").filter { $0.contains("settle") || $0.contains("fenced") } }
        #expect(
            extra >= 0 && extra % 500_000 == 0,
            "every routine's spend, and stopped attempts' recorded spend once: \(extra)\n\(attempts)\n\(settles.joined(separator: "\n"))")
        #expect(team.reserved.credits == 0, "nothing is left held")
        let verified = try await fleet.purser(["ledger", "verify"])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        #expect(hosts.contains { $0.output.contains("fenced") }, "a host that cannot heartbeat fences itself")
        for host in hosts { host.kill(SIGTERM) }
        for host in hosts { _ = await host.exitStatus() }
    }
}
}

/// Swarms of one team competing for its budget across the fleet, under the team's policy.
extension FleetSuites {
@Suite("The fleet: swarms of one team", .timeLimit(.minutes(3)))
struct FleetTeamPolicyTests {
    /// Two swarms that each need the whole team: under `queue` the second waits and starts
    /// only once the first has returned its hold; under `fail` it is denied at once.
    @Test(arguments: ["queue", "fail"])
    func aSwarmThatDoesNotFitWaitsOrIsDenied(policy: String) async throws {
        let fleet = try await Fleet(.sqlite)
        let created = try await fleet.purser(["team", "create", "fleet", "--credits", "15", "--on-conflict", policy])
        try #require(created.status == 0, "\(created.stderr)")
        try await fleet.addGated()
        let host = try ServeProcess(name: "a", fleet: fleet, slots: 4)
        let gate = fleet.home + "/gate"
        let first = try await fleet.submit(try fleet.job("first", count: 2, input: "{ spend: 0.5, gate: '\(gate)' }", plugin: "gated", credits: 10))
        try await fleet.wait("the first swarm to run") { _ in FileManager.default.fileExists(atPath: gate + ".started") }
        let second = try await fleet.submit(try fleet.job("second", count: 2, input: "{ spend: 0.5 }", credits: 10))
        let store = try fleet.store()
        if policy == "fail" {
            let watched = try await fleet.purser(["watch", second, "--json"])
            #expect(watched.status == 19, "denied: \(watched.stdout)\(watched.stderr)")
            #expect(try store.swarm(id: second)?.verdict == "denied")
            FileManager.default.createFile(atPath: gate, contents: nil)
        } else {
            try await fleet.wait("the second swarm to wait") { store in try store.swarm(id: second)?.message != nil }
            #expect(try store.swarm(id: second)?.state == "queued")
            FileManager.default.createFile(atPath: gate, contents: nil)
            let watched = try await fleet.purser(["watch", second, "--json"])
            #expect(watched.status == 0, "\(watched.stderr)")
            let firstEnded = try #require(try store.swarm(id: first)?.endedMs)
            let secondStarted = try #require(try store.attempts(swarm: second).map(\.startedMs).min())
            #expect(secondStarted >= firstEnded, "the second ran only once the first had returned its hold")
        }
        #expect(try await fleet.purser(["watch", first]).status == 0)
        let team = try fleet.ledger().team(named: "fleet")
        #expect(team.reserved.credits == 0 && team.consumed.credits == (policy == "fail" ? 2 : 4) * 500_000)
        host.kill(SIGTERM)
        _ = await host.exitStatus()
    }
}
}
