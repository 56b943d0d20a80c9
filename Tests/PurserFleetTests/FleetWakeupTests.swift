import Foundation
import PurserLedger
import PurserTestSupport
import Testing

/// Hosts on PostgreSQL hear of new work by LISTEN/NOTIFY, and poll slowly while they do:
/// the wake-up is a hint, and polling (fast while the listener is down) stays the floor.
extension FleetSuites {
@Suite("The fleet: hosts woken by PostgreSQL", .timeLimit(.minutes(3)))
struct FleetWakeupTests {
    /// Two idle hosts for a few seconds: the commits in their database, per host and second.
    /// Polling every 250 ms cost four statements a look (≈ 16 a second a host, on top of the
    /// heartbeat's two and the rescuer's); listening, a look every 2 s costs two a second.
    @Test func idleHostsRunFewStatements() async throws {
        let fleet = try await Fleet(.postgres)
        let hosts = try ["a", "b"].map { try ServeProcess(name: $0, fleet: fleet, heartbeat: "2s", deadAfter: "20s") }
        try await fleet.wait("both hosts to join") { store in try store.hosts().filter { $0.state == "live" }.count == 2 }
        let driver = try LedgerLocation.driver(fleet.location)
        let commits = { @Sendable () throws -> Int64 in
            integer(try driver.single("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()", []).first?.first)
        }
        // Backends report their counts at most once a second: the start is let settle, and
        // the end is read once the hosts' backends have exited (which reports what is left).
        let (before, start) = try await offPool { () throws -> (Int64, Date) in
            Thread.sleep(forTimeInterval: 2)
            return (try commits(), Date())
        }
        await offPool { Thread.sleep(forTimeInterval: 4) }
        for host in hosts { host.kill(SIGTERM) }
        for host in hosts { #expect(await host.exitStatus() == 0, "\(host.output)") }
        let seconds = Date().timeIntervalSince(start)
        let after = try await offPool { () throws -> Int64 in
            Thread.sleep(forTimeInterval: 1.5)
            return try commits()
        }
        let perHost = Double(after - before) / seconds / 2
        #expect(perHost < 10, "commits a second per idle host: \(perHost) (\(after - before) in \(seconds) s)")
    }

    /// Hosts that would look at the queue once an hour run a swarm to its end: the submit,
    /// the admission and each routine's end wake them.
    @Test func aSubmitWakesIdleHosts() async throws {
        let fleet = try await Fleet(.postgres)
        let hosts = try ["a", "b"].map { try ServeProcess(name: $0, fleet: fleet, extra: ["--poll", "1h"]) }
        _ = try await listeners(fleet, count: 2)
        let id = try await fleet.submit(try fleet.job("woken", count: 8, input: "{ spend: 0.5 }"))
        let watched = try await fleet.purser(["watch", id, "--json"])
        #expect(watched.status == 0, "\(watched.stderr)")
        #expect(try fleet.store().routines(swarm: id).allSatisfy { $0.verdict == "ok" })
        for host in hosts { host.kill(SIGTERM) }
        for host in hosts { #expect(await host.exitStatus() == 0, "\(host.output)") }
    }

    /// A routine whose end makes eight others ready wakes the other host, which would look
    /// at the queue once an hour: both hosts run some of them. (Alone, the host that ran
    /// the first would need four rounds of a second: time for the other to hear, however
    /// loaded the machine.)
    @Test func aRoutineThatMakesSeveralReadyWakesTheOtherHosts() async throws {
        let fleet = try await Fleet(.postgres)
        let hosts = try ["a", "b"].map { try ServeProcess(name: $0, fleet: fleet, extra: ["--poll", "1h"]) }
        _ = try await listeners(fleet, count: 2)
        var lines = [
            "team: { name: fleet, budget: { credits: 1000, workers: 32, memory: 64GiB } }",
            "swarm: { name: fan, reservation: { credits: 500, time: 10h, memory: 32GiB }, concurrency: 16 }",
            "routines:",
            "  - { name: first, plugin: scripted, input: { spend: 0.5 }, estimate: { credits: 1, memory: 64MiB, time: 1m } }",
        ]
        for index in 0..<8 {
            lines.append(
                "  - { name: r\(index), plugin: scripted, after: [first], input: { spend: 0.5, sleepMs: 1000 }, "
                    + "estimate: { credits: 1, memory: 64MiB, time: 1m } }")
        }
        let job = fleet.home + "/fan.yaml"
        try (lines.joined(separator: "\n") + "\n").write(toFile: job, atomically: true, encoding: .utf8)
        let id = try await fleet.submit(job)
        let watched = try await fleet.purser(["watch", id, "--json"])
        #expect(watched.status == 0, "\(watched.stderr)")
        let routines = try fleet.store().routines(swarm: id)
        #expect(routines.allSatisfy { $0.verdict == "ok" })
        let ran = Set(routines.filter { $0.name != "first" }.compactMap(\.host))
        let attempts = try fleet.store().attempts(swarm: id).map { "\($0.routine)#\($0.attempt)@\($0.host): \($0.verdict ?? "-")" }
        #expect(ran == ["a", "b"], "each host ran some of the eight: \(ran)\n\(attempts)\n\(hosts.map(\.output).joined())")
        for host in hosts { host.kill(SIGTERM) }
        for host in hosts { #expect(await host.exitStatus() == 0, "\(host.output)") }
    }

    /// The listeners' connections are cut while a swarm runs: the hosts poll meanwhile,
    /// reconnect, say so, and the swarm and the next one end ok.
    @Test func aSwarmEndsWhenTheListenersAreCut() async throws {
        let fleet = try await Fleet(.postgres)
        let hosts = try ["a", "b"].map { try ServeProcess(name: $0, fleet: fleet, extra: ["--poll", "1h"]) }
        let first = try await listeners(fleet, count: 2)
        let id = try await fleet.submit(try fleet.job("cut", count: 16, input: "{ spend: 0.5, sleepMs: 300 }"))
        try await fleet.wait("a routine to end") { store in try store.routines(swarm: id).contains { $0.state == "done" } }
        let driver = try LedgerLocation.driver(fleet.location)
        for pid in first { _ = try driver.single("SELECT pg_terminate_backend($1)", [.integer(pid)]) }
        let watched = try await fleet.purser(["watch", id, "--json"])
        #expect(watched.status == 0, "\(watched.stderr)")
        #expect(try fleet.store().routines(swarm: id).allSatisfy { $0.verdict == "ok" })
        let again = try await listeners(fleet, count: 2)
        #expect(again.isDisjoint(with: first), "new connections: \(first) then \(again)")
        for host in hosts {
            #expect(host.output.contains("the wake-up connection was lost"), "\(host.output)")
            #expect(host.output.components(separatedBy: "listening for wake-ups").count == 3, "\(host.output)")
        }
        let next = try await fleet.submit(try fleet.job("after", count: 4, input: "{ spend: 0.5 }"))
        let finished = try await fleet.purser(["watch", next, "--json"])
        #expect(finished.status == 0, "\(finished.stderr)")
        for host in hosts { host.kill(SIGTERM) }
        for host in hosts { #expect(await host.exitStatus() == 0, "\(host.output)") }
    }

    /// Waits until `count` hosts listen on the fleet's database; their backends' pids.
    private func listeners(_ fleet: Fleet, count: Int) async throws -> Set<Int64> {
        let driver = try LedgerLocation.driver(fleet.location)
        let found = try await offPool { () throws -> Set<Int64> in
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                let pids = try driver.single(
                    """
                    SELECT pid FROM pg_stat_activity WHERE datname = current_database()
                    AND application_name LIKE 'purser-listen %' AND query LIKE 'LISTEN %'
                    """, []
                ).map { integer($0[0]) }
                if pids.count == count { return Set(pids) }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return []
        }
        try #require(found.count == count, "waited 30 s for \(count) hosts to listen")
        return found
    }

    private func integer(_ value: SQLValue?) -> Int64 {
        if case .integer(let number)? = value { return number }
        return 0
    }
}
}
