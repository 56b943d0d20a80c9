import Foundation
import PurserLedger
import PurserProtocol
import PurserTestSupport
import Testing

/// The team policies between swarms that need more than waiting: shares, preemption, and
/// aging against starvation (issue 18, "Conflicts between swarms of one team").
extension FleetSuites {
@Suite("The fleet: shares, preemption and aging between swarms", .timeLimit(.minutes(3)))
struct FleetTeamConflictTests {
    /// Three swarms each asking 8 of a team's 12 credits, waiting together: each starts
    /// with a third of what is left (4, above its minimum of 3), at once, not one by one.
    @Test func proportionalSharesWhatIsLeft() async throws {
        let fleet = try await Fleet(.sqlite)
        let created = try await fleet.purser(["team", "create", "fleet", "--credits", "12", "--on-conflict", "proportional"])
        try #require(created.status == 0, "\(created.stderr)")
        var ids: [String] = []
        for name in ["one", "two", "three"] {
            ids.append(try await fleet.submit(try fleet.job(name, count: 2, input: "{ spend: 0.5 }", credits: 8, minimum: 3)))
        }
        let host = try ServeProcess(name: "a", fleet: fleet, slots: 6)
        for id in ids { #expect(try await fleet.purser(["watch", id]).status == 0) }
        let ledger = try fleet.ledger()
        let swarms = try ledger.tree(team: "fleet").filter { $0.kind == .swarm }
        #expect(swarms.map(\.cap.credits) == [4_000_000, 4_000_000, 4_000_000], "\(swarms.map(\.cap.credits))")
        let started = try ids.map { id in try #require(try fleet.store().attempts(swarm: id).map(\.startedMs).min()) }
        let ended = try ids.map { id in try #require(try fleet.store().swarm(id: id)?.endedMs) }
        #expect(started.max()! < ended.min()!, "all three ran at once")
        let team = try ledger.team(named: "fleet")
        #expect(team.reserved.credits == 0 && team.consumed.credits == 6 * 500_000)
        #expect(try ledger.verify().isEmpty)
        host.kill(SIGTERM)
        _ = await host.exitStatus()
    }

    /// A swarm whose share would be below its minimum waits for its whole request, and
    /// does not hold back the team's others: the first (12 of 14, minimum 12) would get 10,
    /// so the second (4) starts whole, and the first when the second has returned its hold.
    @Test func aShareBelowTheMinimumWaits() async throws {
        let fleet = try await Fleet(.sqlite)
        let created = try await fleet.purser(["team", "create", "fleet", "--credits", "14", "--on-conflict", "proportional"])
        try #require(created.status == 0, "\(created.stderr)")
        let first = try await fleet.submit(try fleet.job("first", count: 2, input: "{ spend: 0.5 }", credits: 12, minimum: 12))
        let second = try await fleet.submit(try fleet.job("second", count: 2, input: "{ spend: 0.5 }", credits: 4, minimum: 2))
        let host = try ServeProcess(name: "a", fleet: fleet, slots: 6)
        for id in [second, first] { #expect(try await fleet.purser(["watch", id]).status == 0) }
        let store = try fleet.store()
        let firstStarted = try #require(try store.attempts(swarm: first).map(\.startedMs).min())
        let secondEnded = try #require(try store.swarm(id: second)?.endedMs)
        #expect(firstStarted >= secondEnded, "the first waited for its whole 12 while the second ran")
        let caps = try fleet.ledger().tree(team: "fleet").filter { $0.kind == .swarm }.map(\.cap.credits)
        #expect(caps == [4_000_000, 12_000_000], "each started with all it asked, the second first: \(caps)")
        host.kill(SIGTERM)
        _ = await host.exitStatus()
    }

    /// A low swarm holds 8 of the team's 10 credits in four running routines of 2; a high
    /// one asks 6. The fewest routines that cover the 4 it lacks (two) are stopped, end
    /// `preempted`, and their credits go to the high swarm; the low one pauses, grows back
    /// once the high one has finished, and runs them again. Nothing is lost or counted twice.
    @Test(arguments: StoreKind.allCases)
    func aHigherSwarmPreemptsTheFewestRoutines(kind: StoreKind) async throws {
        let fleet = try await Fleet(kind)
        let created = try await fleet.purser(["team", "create", "fleet", "--credits", "10", "--on-conflict", "preempt"])
        try #require(created.status == 0, "\(created.stderr)")
        try await fleet.addGated()
        let host = try ServeProcess(name: "a", fleet: fleet, slots: 8)
        let gate = fleet.home + "/gate"
        let low = try await fleet.submit(try fleet.job(
            "low", count: 4, input: "{ spend: 0.5, gate: '\(gate)' }", plugin: "gated", credits: 8, estimate: 2))
        let store = try fleet.store()
        try await fleet.wait("the low swarm's four routines to run") { store in
            try store.routines(swarm: low).filter { $0.state == "running" }.count == 4
        }
        let high = try await fleet.submit(try fleet.job("high", count: 2, input: "{ spend: 0.5 }", credits: 6, priority: 10))
        let watched = try await fleet.purser(["watch", high])
        #expect(watched.status == 0, "\(watched.stdout)\(watched.stderr)")
        // It grows back once the high one is done (at once: the completion wakes the host),
        // so it is looked at below, by when its routines ran again.
        FileManager.default.createFile(atPath: gate, contents: nil)
        let lowWatched = try await fleet.purser(["watch", low, "--json"])
        #expect(lowWatched.status == 0, "\(lowWatched.stdout)\(lowWatched.stderr)")
        let attempts = try store.attempts(swarm: low)
        #expect(attempts.filter { $0.verdict == "preempted" }.count == 2, "\(attempts)")
        #expect(try store.routines(swarm: low).allSatisfy { $0.verdict == "ok" })
        let highEnded = try #require(try store.swarm(id: high)?.endedMs)
        let reruns = attempts.filter { $0.attempt > 1 }
        #expect(reruns.count == 2 && reruns.allSatisfy { $0.startedMs >= highEnded }, "reran after the high swarm: \(attempts)")
        let kinds = try store.events(swarm: low, after: 0, limit: 1_000).map(\.kind).filter { $0 == "give_back" || $0 == "resume" }
        #expect(
            kinds.first == "give_back" && kinds.last == "resume" && kinds.count { $0 == "resume" } == 1,
            "the low swarm gave back, then grew back once: \(kinds)")
        let ledger = try fleet.ledger()
        let team = try ledger.team(named: "fleet")
        #expect(team.reserved.credits == 0 && team.available.credits + team.consumed.credits == 10_000_000)
        #expect(team.consumed.credits == 6 * 500_000, "four low routines and two high ones spent; the preempted ones spent nothing")
        #expect(try ledger.verify().isEmpty)
        host.kill(SIGTERM)
        _ = await host.exitStatus()
    }

    /// Under `priority`, a swarm that has waited long enough goes before a higher one
    /// submitted later (`--aging 500ms`); with aging slower than the wait (`1h`), the
    /// higher one goes first. So a stream of higher swarms cannot starve a lower one.
    @Test(arguments: ["500ms", "1h"])
    func agingLetsALowSwarmThrough(aging: String) async throws {
        let fleet = try await Fleet(.sqlite)
        // 15 + 15 do not fit in 20, even after the blocker's spend: one at a time.
        let created = try await fleet.purser(["team", "create", "fleet", "--credits", "20", "--on-conflict", "priority", "--aging", aging])
        try #require(created.status == 0, "\(created.stderr)")
        try await fleet.addGated()
        let host = try ServeProcess(name: "a", fleet: fleet, slots: 4)
        let gate = fleet.home + "/gate"
        let blocker = try await fleet.submit(try fleet.job("blocker", count: 1, input: "{ spend: 0.5, gate: '\(gate)' }", plugin: "gated", credits: 20))
        try await fleet.wait("the blocker to run") { _ in FileManager.default.fileExists(atPath: gate + ".started") }
        let low = try await fleet.submit(try fleet.job("low", count: 1, input: "{ spend: 0.5 }", credits: 15))
        try await Task.sleep(for: .seconds(2))
        let high = try await fleet.submit(try fleet.job("high", count: 1, input: "{ spend: 0.5 }", credits: 15, priority: 1))
        FileManager.default.createFile(atPath: gate, contents: nil)
        for id in [blocker, low, high] { #expect(try await fleet.purser(["watch", id]).status == 0) }
        let store = try fleet.store()
        let lowStarted = try #require(try store.attempts(swarm: low).first?.startedMs)
        let highStarted = try #require(try store.attempts(swarm: high).first?.startedMs)
        if aging == "500ms" {
            #expect(lowStarted < highStarted, "waiting 2 s at one point a 500 ms put the low swarm ahead")
        } else {
            #expect(highStarted < lowStarted, "without aging, priority decides")
        }
        host.kill(SIGTERM)
        _ = await host.exitStatus()
    }
}
}
