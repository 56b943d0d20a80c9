import Glibc
import PurserLedger
import PurserProtocol
import PurserRuntime
import PurserTestSupport
import Testing

/// A trusted plugin whose worker takes several runs is kept between a swarm's runs of it;
/// every run still has its own reservation, charge and measurements, and a run that ends
/// badly takes its worker with it.
@Suite("Kept workers", .timeLimit(.minutes(3)))
struct WorkerReuseTests {
    let home = Fixtures.temporaryHome()

    /// The scripted fixture (PluginKit, so it declares `sequentialRuns`) under a name of its own.
    func register(trusted: Bool, reuse: Bool = true, reuseUntrusted: Bool = false) async throws -> String {
        var manifest = PluginManifest()
        manifest.trusted = trusted
        manifest.reuse = reuse
        manifest.reuseUntrusted = reuseUntrusted
        let registry = try PluginRegistry(runtime: Runtime.withLedger(home: home))
        _ = try await registry.add(path: Fixtures.product("scripted"), name: "kept", manifest: manifest)
        return "kept"
    }

    /// Runs `routines` (YAML flow mappings without the plugin) one at a time, in order:
    /// chained by `after`, or, where a failure must not skip the rest, by concurrency 1 alone.
    /// `pause`: milliseconds a routine of the unregistered fixture spends between each two.
    func run(
        _ routines: [String], plugin: String, chained: Bool = true, pause: Int? = nil
    ) async throws -> (SwarmReport, RuntimeLedger) {
        var yaml = ""
        for (index, routine) in routines.enumerated() {
            let after = index == 0 || !chained ? "" : ", after: [\(pause == nil ? "r" : "p")\(index - 1)]"
            yaml += "  - { name: r\(index), plugin: \(plugin), \(routine)\(after) }\n"
            if let pause, index < routines.count - 1 {
                yaml += "  - { name: p\(index), plugin: \(Fixtures.product("scripted")), input: { sleepMs: \(pause) }, "
                    + "estimate: { credits: 1, time: 20s, memory: 256MiB }, after: [r\(index)] }\n"
            }
        }
        return try await runJob(routines: yaml)
    }

    /// A swarm at concurrency 1 of `routines` (YAML list items, one per line).
    func runJob(routines: String) async throws -> (SwarmReport, RuntimeLedger) {
        let yaml = """
            team: { name: t, budget: { credits: 1000, memory: 8GiB } }
            swarm: { name: s, reservation: { credits: 100, time: 1h, memory: 2GiB }, concurrency: 1 }
            routines:

            """ + routines
        let path = home + "/job.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let runtime = try Runtime.withLedger(home: home)
        let report = try await SwarmRunner(runtime: runtime, job: JobFile.load(path: path)).run()
        return (report, runtime.ledger!)
    }

    static let whoami = "input: { whoami: true }, estimate: { credits: 1, time: 20s, memory: 256MiB }"

    /// pid and run count as the worker itself tells them.
    func seen(_ routine: RoutineOutcome) -> (pid: Int64?, runs: Int64?) {
        (routine.output?["pid"]?.numberValue?.int64, routine.output?["runs"]?.numberValue?.int64)
    }

    @Test func aTrustedWorkerServesTheSwarmsRunsOneAfterAnother() async throws {
        let plugin = try await register(trusted: true)
        let (report, ledger) = try await run(Array(repeating: Self.whoami, count: 5), plugin: plugin)
        #expect(report.allOK)
        let seen = report.routines.map(seen)
        #expect(seen.map(\.runs) == [1, 2, 3, 4, 5], "one process, sent each run in turn")
        #expect(Set(seen.map(\.pid)).count == 1)
        #expect(report.routines.map { $0.report?.workerRun } == [1, 2, 3, 4, 5])
        // The swarm's end shuts the kept worker down before it returns.
        let pid = try #require(seen.first?.pid)
        #expect(kill(pid_t(pid), 0) != 0 && errno == ESRCH, "worker \(pid) outlived its swarm")
        #expect(try ledger.store.verify().isEmpty)
    }

    /// An untrusted plugin's worker is kept, in its sandbox, only where both its manifest
    /// (`reuseUntrusted`) and its team's policy (`purser team create --reuse-untrusted`) allow it.
    @Test(arguments: [(manifest: true, team: true), (manifest: true, team: false), (manifest: false, team: true)])
    func anUntrustedWorkerIsKeptOnlyWhereItsManifestAndItsTeamAllow(manifest: Bool, team: Bool) async throws {
        let plugin = try await register(trusted: false, reuseUntrusted: manifest)
        try Runtime.withLedger(home: home).ledger!.fleetStore().setTeamPolicy(TeamPolicy(team: "t", reuseUntrusted: team))
        let (report, ledger) = try await run(Array(repeating: Self.whoami, count: 3), plugin: plugin)
        #expect(report.allOK)
        let kept = manifest && team
        #expect(report.routines.map { seen($0).runs } == (kept ? [1, 2, 3] : [1, 1, 1]))
        #expect(report.routines.map { $0.report?.workerRun } == (kept ? [1, 2, 3] : [1, 1, 1]))
        #expect(report.routines.allSatisfy { $0.report?.sandbox?.level == .untrusted && $0.report?.sandbox?.notEnforced == [] })
        #expect(try ledger.store.verify().isEmpty)
    }

    @Test(arguments: [(trusted: false, reuse: true), (trusted: true, reuse: false)])
    func otherwiseEveryRunHasAWorkerOfItsOwn(trusted: Bool, reuse: Bool) async throws {
        let plugin = try await register(trusted: trusted, reuse: reuse)
        let (report, _) = try await run(Array(repeating: Self.whoami, count: 3), plugin: plugin)
        #expect(report.allOK)
        #expect(report.routines.map { seen($0).runs } == [1, 1, 1])
        // Untrusted workers are each their PID namespace's init, so compare what the supervisor saw.
        #expect(Set(report.routines.compactMap { $0.report?.pid }).count == 3)
    }

    @Test func aRunThatEndsBadlyTakesItsWorkerWithIt() async throws {
        let plugin = try await register(trusted: true)
        let (report, ledger) = try await run([
            Self.whoami,
            "input: { sleepMs: 20000 }, estimate: { credits: 1, time: 1s, memory: 256MiB }",
            Self.whoami,
            "input: { crash: true }, estimate: { credits: 1, time: 20s, memory: 256MiB }",
            Self.whoami,
            Self.whoami,
        ], plugin: plugin, chained: false)
        #expect(report.routines.map(\.verdict) == [.ok, .timeout, .ok, .crashed, .ok, .ok])
        let seen = report.routines.map(seen)
        #expect(seen[2].runs == 1 && seen[2].pid != seen[0].pid, "the timed-out run's worker was not kept")
        #expect(seen[4].runs == 1 && seen[4].pid != seen[2].pid, "the crashed run's worker was not kept")
        #expect(seen[5].runs == 2 && seen[5].pid == seen[4].pid)
        #expect(try ledger.store.verify().isEmpty)
    }

    /// A kept worker that exits while idle is not sent the next run: a new one is started.
    @Test func aKeptWorkerThatExitsWhileIdleIsReplaced() async throws {
        let plugin = try await register(trusted: true)
        let (report, ledger) = try await run([
            "input: { whoami: true, exitAfterMs: 10 }, estimate: { credits: 1, time: 20s, memory: 256MiB }",
            "input: { whoami: true }, estimate: { credits: 1, time: 20s, memory: 256MiB }",
        ], plugin: plugin, pause: 300)
        #expect(report.allOK, "\(report.routines.map { "\($0.name) \($0.verdict) \($0.message ?? "")" })")
        let seen = report.routines.filter { $0.name.hasPrefix("r") }.map(seen)
        #expect(seen.count == 2 && seen[1].runs == 1 && seen[1].pid != seen[0].pid)
        #expect(try ledger.store.verify().isEmpty)
    }

    /// A step runs inside its caller's groups, which end with the caller's run: so a trusted
    /// step's worker is not kept (a kept one would stand outside the next caller's limits).
    @Test func aTrustedStepsWorkerIsNotKept() async throws {
        let plugin = try await register(trusted: true)
        let call = "input: { call: { plugin: \(plugin), input: { whoami: true } } }, estimate: { credits: 5, time: 20s, memory: 256MiB }"
        let (report, ledger) = try await run([call, call], plugin: plugin)
        #expect(report.allOK, "\(report.routines.map { "\($0.name) \($0.verdict) \($0.message ?? "")" })")
        let steps = report.routines.map { $0.output?["step"] }
        #expect(steps.map { $0?["runs"]?.numberValue?.int64 } == [1, 1], "each step had a worker of its own")
        #expect(report.routines.map { $0.report?.workerRun } == [1, 2], "the routines' worker is still kept")
        #expect(try ledger.store.verify().isEmpty)
    }

    /// The memory a trusted step holds counts against its caller's limit, as any step's does:
    /// the second step, which a kept worker would once have served outside the caller's
    /// group, cannot hold 80 MiB beside its caller's 80 MiB under 128 MiB.
    @Test func aTrustedStepCannotTakeMemoryBeyondItsCaller() async throws {
        let plugin = try await register(trusted: true)
        let step = "{ plugin: \(plugin), input: { holdMiB: 80, output: { heldMiB: 80 } }, memoryBytes: 134217728 }"
        let (report, ledger) = try await run([
            "input: { call: { plugin: \(plugin), input: { whoami: true }, memoryBytes: 134217728 } }, estimate: { credits: 5, time: 20s, memory: 128MiB }",
            "input: { holdMiB: 80, call: \(step) }, estimate: { credits: 5, time: 20s, memory: 128MiB }",
        ], plugin: plugin, chained: false)
        let second = report.routines[1]
        let stepVerdict = second.output?["verdict"]?.stringValue
        #expect(second.verdict == .memoryLimit || stepVerdict == "memory_limit", "\(second.verdict) \(second.output ?? nil)")
        #expect(second.output?["step"]?["heldMiB"] == nil, "caller and step held 80 MiB each at once")
        #expect(try ledger.store.verify().isEmpty)
    }

    /// An idle worker holds no reservation: a swarm keeps no more of them than it runs at
    /// once (twice its concurrency: routines and their steps), and shuts down the one idle
    /// longest. At concurrency 1, three plugins taking turns: the first's worker made way.
    @Test func aSwarmKeepsNoMoreIdleWorkersThanItRunsAtOnce() async throws {
        let scripted = try await register(trusted: true)
        var manifest = PluginManifest()
        manifest.trusted = true
        let registry = try PluginRegistry(runtime: Runtime.withLedger(home: home))
        _ = try await registry.add(path: Fixtures.product("echo"), name: "echo-kept", manifest: manifest)
        _ = try await registry.add(path: Fixtures.product("wordcount"), name: "wordcount-kept", manifest: manifest)
        let estimate = "estimate: { credits: 1, time: 20s, memory: 256MiB }"
        let (report, _) = try await runJob(routines: """
              - { name: a1, plugin: \(scripted), input: { whoami: true }, \(estimate) }
              - { name: b1, plugin: echo-kept, input: 1, \(estimate), after: [a1] }
              - { name: c1, plugin: wordcount-kept, input: { text: "a b" }, \(estimate), after: [b1] }
              - { name: b2, plugin: echo-kept, input: 2, \(estimate), after: [c1] }
              - { name: a2, plugin: \(scripted), input: { whoami: true }, \(estimate), after: [b2] }

            """)
        #expect(report.allOK, "\(report.routines.map { "\($0.name) \($0.verdict) \($0.message ?? "")" })")
        #expect(report.routines.map { $0.report?.workerRun } == [1, 1, 1, 2, 1], "b's worker stayed; a's made way for c's")
        #expect(seen(report.routines[4]).pid != seen(report.routines[0]).pid)
    }

    @Test func eachRunIsChargedAndMeasuredOnItsOwn() async throws {
        let plugin = try await register(trusted: true)
        let (report, ledger) = try await run([
            "input: { spend: 3, touchMiB: 96 }, estimate: { credits: 5, time: 20s, memory: 512MiB }",
            "input: { spend: 0 }, estimate: { credits: 5, time: 20s, memory: 512MiB }",
        ], plugin: plugin)
        #expect(report.allOK)
        let first = try #require(report.routines[0].report)
        let second = try #require(report.routines[1].report)
        #expect(second.workerRun == 2)
        #expect(first.usage.credits == Credits(whole: 3))
        #expect(second.usage.credits == .zero, "the first run's spend is not the second's")
        #expect(first.usage.memoryPeakBytes >= 96 << 20)
        #expect(second.usage.memoryPeakBytes < 48 << 20, "the peak starts over with each run: \(second.usage.memoryPeakBytes)")
        let nodes = try ledger.store.tree(team: "t").filter { $0.kind == .routine }
        #expect(nodes.map(\.consumed.credits) == [3_000_000, 0])
        #expect(try ledger.store.verify().isEmpty)
    }

    /// Nothing of a kept worker's run is the next run's: not its dropped log text, its
    /// stderr, its credits, nor its CPU time.
    @Test func aKeptWorkersNextRunInheritsNothing() async throws {
        let plugin = try await register(trusted: true)
        let (report, ledger) = try await run([
            "input: { spend: 3, logKiB: 400, stderr: first-run, burnMs: 600 }, estimate: { credits: 5, time: 20s, memory: 256MiB }",
            Self.whoami,
        ], plugin: plugin)
        #expect(report.allOK, "\(report.routines.map { "\($0.name) \($0.verdict) \($0.message ?? "")" })")
        let first = try #require(report.routines[0].report)
        let second = try #require(report.routines[1].report)
        #expect(second.workerRun == 2, "the worker was kept")
        #expect(first.droppedMessages > 0 && first.stderrTail.contains("first-run") && first.usage.cpuMs >= 600)
        #expect(second.droppedMessages == 0, "the first run's dropped messages")
        #expect(!second.stderrTail.contains("first-run"), "the first run's stderr")
        #expect(second.usage.credits == .zero && second.usage.reportedCredits == .zero, "the first run's credits")
        #expect(second.usage.cpuMs < 300, "the first run's CPU time: \(second.usage.cpuMs) ms")
        #expect(second.message == nil && second.output?["runs"] == 2)
        #expect(try ledger.store.verify().isEmpty)
    }
}
