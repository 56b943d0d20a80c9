import Foundation
import PurserLedger
import PurserProtocol
import PurserTestSupport
import Testing

/// Three hosts, each in a network namespace of its own, joined by veth pairs to the one
/// where PostgreSQL listens on TCP: the fleet as it runs on real machines, links and all.
extension FleetSuites {
@Suite("The fleet over a network", .timeLimit(.minutes(5)), .serialized)
struct FleetNetworkTests {
    /// A test's hosts: PostgreSQL on TCP, and `purser serve` in each host's namespace.
    struct Network: Sendable {
        let network: NetworkHosts
        let fleet: Fleet
        let url: String

        static func start(_ hosts: [String]) async throws -> Network {
            let network = try await NetworkHosts.start(hosts: hosts)
            // A cut host's sessions must not hold their locks for TCP's own long timeouts.
            let server = try await network.startPostgres(settings: ["tcp_user_timeout": "3000"])
            let database = try await offPool { try server.createDatabase() }
            let fleet = try await Fleet(location: try server.socketLocation(database: database))
            return Network(network: network, fleet: fleet, url: try server.tcpURL(database: database, connectTimeout: 10))
        }

        func serve(_ host: String, slots: Int = 4) throws -> HostProcess {
            var environment = fleet.environment
            environment["PURSER_HOME"] = fleet.home + "/" + host
            environment["PURSER_LEDGER"] = url
            try? FileManager.default.createDirectory(atPath: fleet.home + "/" + host, withIntermediateDirectories: true)
            return try network.spawn(
                host, Fixtures.product("purser"),
                ["serve", "--name", host, "--slots", "\(slots)", "--heartbeat", "300ms", "--dead-after", "4s"],
                environment: environment)
        }
    }

    /// 300 routines over three hosts on the network: each host runs some, every routine
    /// ends ok, the team's totals are exact, the ledger verifies.
    @Test func threeHostsShareAThreeHundredRoutineSwarm() async throws {
        let net = try await Network.start(["h1", "h2", "h3"])
        defer { Task { await net.network.tearDown() } }
        let hosts = try ["h1", "h2", "h3"].map { try net.serve($0) }
        let id = try await net.fleet.submit(try net.fleet.job("wide", count: 300, input: "{ spend: 0.01 }"))
        let watched = try await net.fleet.purser(["watch", id, "--json"])
        #expect(watched.status == 0, "\(watched.stderr.suffix(2000))")
        let routines = try net.fleet.store().routines(swarm: id)
        #expect(
            routines.count == 300 && routines.allSatisfy { $0.verdict == "ok" },
            "\(routines.filter { $0.verdict != "ok" }.prefix(3).map { "\($0.name): \($0.verdict ?? "-") \($0.message ?? "")" })")
        let ran = Dictionary(grouping: routines, by: { $0.host ?? "-" }).mapValues(\.count)
        #expect(Set(ran.keys) == ["h1", "h2", "h3"], "each host ran some: \(ran)")
        let team = try net.fleet.ledger().team(named: "fleet")
        // Every ok run's spend, and each attempt stopped on the way (a host that fenced
        // itself on a loaded machine) at most once more, as recorded.
        let stopped = try net.fleet.store().attempts(swarm: id).count - 300
        let extra = team.consumed.credits - 300 * 10_000
        #expect(extra >= 0 && extra <= Int64(stopped) * 10_000 && extra % 10_000 == 0, "consumed \(team.consumed.credits)")
        #expect(team.reserved.credits == 0)
        let verified = try await net.fleet.purser(["ledger", "verify"])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        for host in hosts { host.kill(SIGTERM) }
        for host in hosts { #expect(await host.wait() == 0, "\(host.stderr.suffix(1000))") }
        await net.network.tearDown()
    }

    /// A host whose link to the store is cut for longer than the dead threshold fences
    /// itself: its workers are gone before another host rescues its routines. When the
    /// link is back it joins again, and the swarm ends with every routine ok.
    @Test func aCutHostFencesItselfAndRejoins() async throws {
        let net = try await Network.start(["h1", "h2"])
        defer { Task { await net.network.tearDown() } }
        let cut = try net.serve("h1", slots: 2)
        let id = try await net.fleet.submit(try net.fleet.job("cut", count: 6, input: "{ spend: 0.5, sleepMs: 20000 }"))
        try await net.fleet.wait("h1 to run two routines") { store in
            try store.routines(swarm: id).filter { $0.state == "running" && $0.host == "h1" }.count == 2
        }
        let other = try net.serve("h2", slots: 4)
        // Its runs' processes (not the watchdog, which lives as long as the supervisor), once
        // they are there: a claim comes before its worker's spawn.
        let supervisor = cut.pid
        try await net.fleet.wait("h1's workers to start") { _ in ProcessTree.runs(of: supervisor).count >= 2 }
        let workers = ProcessTree.runs(of: supervisor)
        try await net.network.cut("h1")
        // The rescue: h2 finds h1 lost (4 s) and its attempts end host_lost.
        try await net.fleet.wait("h2 to rescue h1's routines") { store in
            try store.attempts(swarm: id).contains { $0.host == "h1" && $0.verdict == "host_lost" }
        }
        let alive = workers.filter { kill($0, 0) == 0 && !ProcessTree.isZombie($0) }
        #expect(alive.isEmpty, "h1's workers were stopped before the rescue: \(alive.map(ProcessTree.command)) still run")
        try await cut.waitForOutput("fenced", stderr: true, limit: .seconds(5))
        try await net.network.restore("h1")
        try await cut.waitForOutput("joined the fleet again", stderr: true, limit: .seconds(60))
        let watched = try await net.fleet.purser(["watch", id, "--json"])
        #expect(watched.status == 0, "\(watched.stderr.suffix(2000))")
        let store = try net.fleet.store()
        #expect(try store.routines(swarm: id).allSatisfy { $0.verdict == "ok" })
        for (routine, tries) in Dictionary(grouping: try store.attempts(swarm: id), by: \.routine) {
            let ordered = tries.sorted { $0.attempt < $1.attempt }
            for (earlier, later) in zip(ordered, ordered.dropFirst()) {
                #expect((earlier.endedMs ?? .max) <= later.startedMs, "\(routine): attempts overlap")
            }
        }
        let team = try net.fleet.ledger().team(named: "fleet")
        #expect(team.reserved.credits == 0, "nothing is left held")
        let verified = try await net.fleet.purser(["ledger", "verify"])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        for host in [cut, other] { host.kill(SIGTERM) }
        for host in [cut, other] { _ = await host.wait() }
        await net.network.tearDown()
    }
}
}
