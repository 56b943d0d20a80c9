import Foundation
import PurserConfig
import PurserLedger
import PurserProtocol
import PurserRuntime
import PurserSandbox
import PurserTestSupport
import Synchronization
import Testing

/// The scripted fixture registered trusted in `home`'s registry, for jobs whose runs keep
/// state in files between attempts (an untrusted run's files live in its own tmpfs).
func trustedScripted(home: String) async throws -> String {
    var manifest = PluginManifest()
    manifest.trusted = true
    let registry = try PluginRegistry(runtime: Runtime.withLedger(home: home))
    _ = try await registry.add(path: Fixtures.product("scripted"), name: "scripted-trusted", manifest: manifest)
    return "scripted-trusted"
}

/// Swarms from job files, run by `SwarmRunner` against a fresh SQLite ledger.
@Suite("Swarms", .timeLimit(.minutes(3)))
struct SwarmTests {
    let home = Fixtures.temporaryHome()
    let credit: Int64 = 1_000_000
    var scripted: String { Fixtures.product("scripted") }

    func job(_ yaml: String) throws -> JobFile {
        let path = home + "/job.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return try JobFile.load(path: path)
    }

    /// Runs the job; returns the report and the events in order.
    func run(_ yaml: String) async throws -> (SwarmReport, [SwarmEvent], RuntimeLedger) {
        let runtime = try Runtime.withLedger(home: home)
        let events = Mutex<[SwarmEvent]>([])
        let runner = try SwarmRunner(runtime: runtime, job: job(yaml)) { event in events.withLock { $0.append(event) } }
        let report = try await runner.run()
        return (report, events.withLock { $0 }, runtime.ledger!)
    }

    func order(_ events: [SwarmEvent], _ kind: String) -> [String] {
        events.filter { $0.kind == kind }.compactMap(\.routine)
    }

    @Test("the design's walkthrough as a real job, to the credit")
    func walkthrough() async throws {
        let (report, _, ledger) = try await run("""
            team: { name: acme, budget: { credits: 100000, memory: 8GiB } }
            swarm:
              name: research
              reservation: { credits: 15000, time: 2h, memory: 2GiB }
              strategy: exact
              concurrency: 1
            routines:
              - { name: gather, plugin: \(scripted), input: { spend: 4200 }, estimate: { credits: 5000, memory: 512MiB } }
              - { name: analyze, plugin: \(scripted), input: { spend: 4300 }, estimate: { credits: 5000, memory: 512MiB }, after: [gather] }
              - { name: write, plugin: \(scripted), input: { spend: 4000 }, estimate: { credits: 5000, memory: 512MiB }, after: [analyze] }
            """)
        #expect(report.allOK)
        let store = ledger.store
        let team = try store.team(named: "acme")
        #expect(team.available.credits == 87_500 * credit)
        #expect(team.consumed.credits == 12_500 * credit, "each routine's spend counted once, inside the swarm's")
        let swarm = try store.node(try #require(report.swarmNode))
        #expect(swarm.consumed.credits == 12_500 * credit)
        #expect(swarm.returned.credits == 2_500 * credit)
        let routines = try store.tree(team: "acme").filter { $0.parent == swarm.id }
        #expect(routines.map(\.returned.credits) == [800 * credit, 700 * credit, 1_000 * credit])
        #expect(report.tiers.first { $0.tier == "routine" }?.used.credits == 12_500 * credit)
        #expect(try store.verify().isEmpty)
    }

    @Test func outputsFlowDownTheGraphInOrder() async throws {
        let (report, events, _) = try await run("""
            team: { name: t, budget: { credits: 100 } }
            swarm: { name: s, reservation: { credits: 50 }, concurrency: 4 }
            routines:
              - { name: a, plugin: \(scripted), input: { output: { n: 3, word: alpha } } }
              - { name: b, plugin: \(scripted), input: { output: { items: [1, 2] } } }
              - name: c
                plugin: \(scripted)
                after: [a, b]
                input: { output: { n: "${a.output.n}", items: "${b.output.items}", text: "${a.output.word}-${b.output.items.1}" } }
            """)
        #expect(report.allOK)
        let c = try #require(report.routines.first { $0.name == "c" }?.output)
        #expect(c == ["n": 3, "items": [1, 2], "text": "alpha-2"])
        let verdicts = order(events, "verdict")
        #expect(order(events, "start").last == "c")
        #expect(Array(verdicts.prefix(2)).sorted() == ["a", "b"])
    }

    @Test func failingRoutinesSkipTheirDependentsAndRetriesReserveAnew() async throws {
        let marker = home + "/failed-once"
        let trusted = try await trustedScripted(home: home)
        let (report, events, ledger) = try await run("""
            team: { name: t, budget: { credits: 100 } }
            swarm: { name: s, reservation: { credits: 50 } }
            routines:
              - { name: flaky, plugin: \(trusted), input: { failOnce: "\(marker)" }, retries: 1 }
              - { name: broken, plugin: \(scripted), input: { fail: "no" } }
              - { name: later, plugin: \(scripted), after: [broken] }
            """)
        let verdicts = Dictionary(uniqueKeysWithValues: report.routines.map { ($0.name, $0.verdict) })
        #expect(verdicts == ["flaky": .ok, "broken": .error, "later": .skipped])
        #expect(report.routines.first { $0.name == "flaky" }?.attempts == 2)
        #expect(order(events, "grant").filter { $0 == "flaky" }.count == 2, "each attempt reserves anew")
        #expect(try ledger.store.verify().isEmpty)
    }

    // MARK: - Conflicts

    /// Three routines that each need more than half of the swarm's budget.
    func contended(_ policy: String, extra: String = "") -> String {
        """
        team: { name: t, budget: { credits: 100 } }
        swarm: { name: s, reservation: { credits: 10 }, concurrency: 3, onConflict: \(policy), strategy: exact\(extra) }
        routines:
          - { name: a, plugin: \(scripted), input: { sleepMs: 100 }, estimate: { credits: 6 } }
          - { name: b, plugin: \(scripted), input: { sleepMs: 10 }, estimate: { credits: 6 } }
          - { name: c, plugin: \(scripted), input: { sleepMs: 10 }, estimate: { credits: 6 } }
        """
    }

    @Test func failDeniesWhatDoesNotFitAtOnce() async throws {
        let (report, events, ledger) = try await run(contended("fail"))
        #expect(report.routines.map(\.verdict) == [.ok, .denied, .denied])
        #expect(order(events, "grant") == ["a"])
        #expect(try ledger.store.verify().isEmpty)
    }

    @Test("queue: first come first served, and a swarm of routines each over half its budget finishes")
    func queueServesInOrder() async throws {
        let (report, events, ledger) = try await run(contended("queue"))
        #expect(report.allOK)
        #expect(order(events, "grant") == ["a", "b", "c"])
        let kinds = events.map { "\($0.kind):\($0.routine ?? "")" }
        #expect(kinds.firstIndex(of: "grant:b")! > kinds.firstIndex(of: "verdict:a")!, "\(kinds)")
        // c waits behind b: it is not even tried until b has its grant.
        #expect((kinds.firstIndex(of: "reserve:c") ?? 0) > kinds.firstIndex(of: "grant:b")!)
        #expect(try ledger.store.team(named: "t").available.credits == 100 * credit, "nothing spent, everything back")
    }

    @Test func aQueuedRoutinePastItsTimeoutIsDenied() async throws {
        let (report, _, _) = try await run("""
            team: { name: t, budget: { credits: 100 } }
            swarm: { name: s, reservation: { credits: 10 }, concurrency: 2, onConflict: queue, queueTimeout: 50ms, strategy: exact }
            routines:
              - { name: a, plugin: \(scripted), input: { sleepMs: 1500 }, estimate: { credits: 6 } }
              - { name: b, plugin: \(scripted), estimate: { credits: 6 } }
            """)
        #expect(report.routines.map(\.verdict) == [.ok, .denied])
        #expect(report.routines[1].message?.contains("queueTimeout") == true)
    }

    /// A stream of high-priority routines, each ready as the last ends, and one low-priority
    /// routine ready from the start. With aging it runs second; without, last.
    @Test(arguments: [("10ms", 1), ("1h", 6)])
    func agingKeepsLowPriorityWorkFromStarving(aging: String, expected: Int) async throws {
        var yaml = """
            team: { name: t, budget: { credits: 100 } }
            swarm: { name: s, reservation: { credits: 10 }, concurrency: 2, onConflict: priority, aging: \(aging), strategy: exact }
            routines:
              - { name: low, plugin: \(scripted), priority: 0, estimate: { credits: 6 } }
              - { name: high0, plugin: \(scripted), priority: 5, input: { sleepMs: 100 }, estimate: { credits: 6 } }

            """
        for index in 1..<6 {
            yaml += "  - { name: high\(index), plugin: \(scripted), priority: 5, input: { sleepMs: 100 }, estimate: { credits: 6 }, after: [high\(index - 1)] }\n"
        }
        let (report, events, _) = try await run(yaml)
        #expect(report.allOK)
        #expect(order(events, "grant").firstIndex(of: "low") == expected, "\(order(events, "grant"))")
    }

    @Test func aSwarmLargerThanItsTeamIsDeniedAndNothingRuns() async throws {
        let (report, events, ledger) = try await run("""
            team: { name: t, budget: { credits: 10 } }
            swarm: { name: s, reservation: { credits: 50 } }
            routines:
              - { name: a, plugin: \(scripted) }
            """)
        #expect(report.denied != nil)
        #expect(!events.contains { $0.kind == "start" })
        #expect(try ledger.store.team(named: "t").available.credits == 10 * credit)
    }

    /// A host that cannot sandbox an untrusted routine refuses the swarm before anything is
    /// reserved; a trusted (registered) plugin in the same job would not need the layer.
    @Test func aSwarmItsHostCannotSandboxIsRefusedBeforeAnythingIsReserved() async throws {
        var runtime = try Runtime.withLedger(home: home)
        runtime.host = HostSupport.current.without([.network])
        let yaml = """
            team: { name: t, budget: { credits: 10 } }
            swarm: { name: s, reservation: { credits: 5 } }
            routines:
              - { name: a, plugin: \(scripted) }
            """
        #expect {
            _ = try SwarmRunner(runtime: runtime, job: job(yaml))
        } throws: { error in
            (error as? RuntimeError)?.code == .sandbox && "\(error)".contains("network: switched off by configuration")
        }
        #expect((try? runtime.ledger!.store.team(named: "t")) == nil, "not even the team was made")
        runtime.allowDegradedSandbox = true
        let report = try await SwarmRunner(runtime: runtime, job: job(yaml)).run()
        #expect(report.allOK)
        #expect(report.routines.first?.report?.sandbox?.notEnforced == [.network])
    }

    @Test func aThousandSmallRoutinesAtConcurrency32() async throws {
        var yaml = """
            team: { name: big, budget: { credits: 10000 } }
            swarm: { name: s, reservation: { credits: 5000 }, concurrency: 32 }
            routines:

            """
        let cworker = try await offPool { try Fixtures.cworker() }
        for index in 0..<1000 {
            yaml += "  - { name: r\(index), plugin: \(cworker), input: \(index), estimate: { credits: 1, memory: 64MiB } }\n"
        }
        let (report, _, ledger) = try await run(yaml)
        #expect(report.routines.count == 1000)
        #expect(report.allOK)
        #expect(try ledger.store.verify().isEmpty)
        #expect(try ledger.store.team(named: "big").available.credits == 10_000 * credit)
    }
}

/// Bad job files: each named by file, line and field; exit 2; nothing reserved.
@Suite("Job files")
struct JobFileTests {
    @Test(arguments: [
        ("team: { name: t }\nswarm: { name: s, reservation: { credits: 5 } }\nroutines:\n  - { name: a, plugin: /bin/true, colour: red }\n",
         "job.yaml:4: routines[0].colour: unknown field"),
        ("team: { name: t }\nswarm: { name: s, reservation: { credits: five } }\nroutines:\n  - { name: a, plugin: /bin/true }\n",
         "job.yaml:2: swarm.reservation.credits: expected an amount of credits"),
        ("team: { name: t }\nswarm: { name: s, reservation: { credits: 5 } }\nroutines:\n  - { name: a, plugin: /bin/true, estimate: { time: soon } }\n",
         "job.yaml:4: routines[0].estimate.time: expected a duration"),
        ("team: { name: t }\nswarm: { name: s, reservation: { credits: 5 } }\nroutines:\n  - { name: a, plugin: /bin/true, after: [b] }\n  - { name: b, plugin: /bin/true, after: [a] }\n",
         "the dependencies form a cycle"),
        ("team: { name: t }\nswarm: { name: s, reservation: { credits: 5 } }\nroutines:\n  - { name: a, plugin: /bin/true }\n  - { name: b, plugin: /bin/true, input: \"${a.output.x}\" }\n",
         "job.yaml:5: routines[1].input: ${a.output.x}: 'b' does not run after 'a'"),
        ("team: { name: t }\nswarm: { name: s, reservation: { credits: 5 } }\nroutines:\n  - { name: a, plugin: /bin/true, input: \"${ghost.output}\", after: [] }\n",
         "there is no routine named 'ghost'"),
        ("team: { name: t }\nswarm: { name: s, reservation: { credits: 5 }, onConflict: shout }\nroutines:\n  - { name: a, plugin: /bin/true }\n",
         "job.yaml:2: swarm.onConflict: 'shout' is not one of"),
        ("team: { name: t }\nswarm: { name: s, reservation: { credits: 5 } }\nroutines:\n  - { plugin: /bin/true }\n",
         "job.yaml:4: routines[0].name: missing"),
    ])
    func badJobFilesNameTheirLineAndField(yaml: String, expected: String) async throws {
        let home = Fixtures.temporaryHome()
        try yaml.write(toFile: home + "/job.yaml", atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        let result = try await runCommand(Fixtures.product("purser"), ["run", home + "/job.yaml"], environment: environment)
        #expect(result.status == 2)
        #expect(result.stderr.contains(expected), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: home + "/purser.db"), "nothing was reserved, not even a store")
    }

    @Test func runsAreKeptAndShownWithTheirEvents() async throws {
        let home = Fixtures.temporaryHome()
        try """
            team: { name: t, budget: { credits: 100 } }
            swarm: { name: s, reservation: { credits: 10 } }
            routines:
              - { name: a, plugin: \(Fixtures.product("wordcount")), input: { text: "one two three" } }
              - { name: b, plugin: \(Fixtures.product("echo")), input: { words: "${a.output.words}" }, after: [a] }
              - { name: c, plugin: \(Fixtures.product("scripted")), input: { fail: "on purpose" } }
            """.write(toFile: home + "/job.yaml", atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        func purser(_ arguments: [String]) async throws -> CommandResult {
            try await runCommand(Fixtures.product("purser"), arguments, environment: environment)
        }
        let run = try await purser(["run", home + "/job.yaml", "--events", home + "/events.ndjson", "--json"])
        #expect(run.status == 21, "a routine failed: \(run.stderr)")
        let report = try JSONParser.parse(run.stdout)
        #expect(report["verdicts"] == ["ok": 2, "error": 1])
        let events = try String(contentsOfFile: home + "/events.ndjson", encoding: .utf8).split(separator: "\n")
            .map { try JSONParser.parse(String($0)) }
        let kinds = Set(events.compactMap { $0["event"]?.stringValue })
        #expect(kinds.isSuperset(of: ["reserve", "grant", "start", "spend", "verdict", "return", "fail"]), "\(kinds)")
        let listed = try JSONParser.parse(try await purser(["runs", "list", "--json"]).stdout)
        let id = try #require(listed.arrayValue?.first?["id"]?.stringValue)
        #expect(listed.arrayValue?.first?["ok"] == false)
        let shown = try JSONParser.parse(try await purser(["runs", "show", id, "--json"]).stdout)
        #expect(shown["routines"]?.arrayValue?.count == 3)
        #expect(try await purser(["runs", "show", "s-nope"]).status == 2)
        #expect(try await purser(["ledger", "verify"]).status == 0)
    }

    @Test func aMissingPluginIsRefusedBeforeAnythingIsReserved() async throws {
        let home = Fixtures.temporaryHome()
        try "team: { name: t, budget: { credits: 5 } }\nswarm: { name: s, reservation: { credits: 5 } }\nroutines:\n  - { name: a, plugin: ./nope }\n"
            .write(toFile: home + "/job.yaml", atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        let result = try await runCommand(Fixtures.product("purser"), ["run", home + "/job.yaml"], environment: environment)
        #expect(result.status == 2)
        #expect(result.stderr.contains("job.yaml:4: routines.a.plugin: no executable at"), "\(result.stderr)")
        let store = try SQLiteLedger(path: home + "/purser.db")
        #expect(throws: LedgerError.self) { try store.team(named: "t") }
    }
}

@Suite("Proportional shares and preemption", .timeLimit(.minutes(2)))
struct ShareAndPreemptTests {
    let home = Fixtures.temporaryHome()
    let credit: Int64 = 1_000_000
    var scripted: String { Fixtures.product("scripted") }

    func run(_ yaml: String) async throws -> (SwarmReport, [SwarmEvent], RuntimeLedger) {
        let path = home + "/job.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let runtime = try Runtime.withLedger(home: home)
        let events = Mutex<[SwarmEvent]>([])
        let runner = try SwarmRunner(runtime: runtime, job: JobFile.load(path: path)) { event in events.withLock { $0.append(event) } }
        return (try await runner.run(), events.withLock { $0 }, runtime.ledger!)
    }

    /// 20 asked of 12: each gets 12 × its request ÷ 20 if that is at least its minimum;
    /// the fourth's minimum of 4 is above its share, so it waits for its whole request.
    @Test func contendersGetSharesAboveTheirMinimum() async throws {
        let (report, events, ledger) = try await run("""
            team: { name: t, budget: { credits: 100 } }
            swarm: { name: s, reservation: { credits: 12 }, concurrency: 4, onConflict: proportional, strategy: exact }
            routines:
              - { name: a, plugin: \(scripted), input: { sleepMs: 100 }, estimate: { credits: 6 }, minimum: 3 }
              - { name: b, plugin: \(scripted), input: { sleepMs: 100 }, estimate: { credits: 6 }, minimum: 3 }
              - { name: c, plugin: \(scripted), input: { sleepMs: 100 }, estimate: { credits: 4 }, minimum: 2 }
              - { name: d, plugin: \(scripted), estimate: { credits: 4 }, minimum: 4 }
            """)
        #expect(report.allOK)
        let grants = events.filter { $0.kind == "grant" }
        func granted(_ name: String) -> [JSONValue?] { grants.filter { $0.routine == name }.map { $0.fields["credits"] } }
        // 12 shared by 6:6:4:4 of 20 → 3.6, 3.6, 2.4, 2.4.
        #expect(granted("a") == [.number(JSONNumber(text: "3.6")!)])
        #expect(granted("b") == [.number(JSONNumber(text: "3.6")!)])
        #expect(granted("c") == [.number(JSONNumber(text: "2.4")!)])
        #expect(granted("d") == [4], "its share was below its minimum: it waited and got all it asked")
        #expect(try ledger.store.verify().isEmpty)
    }

    /// `low`'s first run would sleep a minute: only a preemption ends it in time; its second
    /// run ends at once. `high` comes after `starter`, which waits for `low`'s first run to
    /// have begun: under load, a preemption before the worker took the run left no marker, and
    /// the second run slept the minute.
    @Test func aHighPriorityRoutineTakesTheBudgetOfALowerOneWhichIsRequeued() async throws {
        let trusted = try await trustedScripted(home: home)
        let (report, events, ledger) = try await run("""
            team: { name: t, budget: { credits: 100 } }
            swarm: { name: s, reservation: { credits: 10 }, concurrency: 3, onConflict: preempt, strategy: exact }
            routines:
              - { name: low, plugin: \(trusted), priority: 0, input: { firstRunMarker: "\(home)/low-ran" }, estimate: { credits: 6 } }
              - { name: starter, plugin: \(trusted), priority: 9, input: { gate: "\(home)/low-ran" }, estimate: { credits: 1 } }
              - { name: high, plugin: \(scripted), priority: 5, input: { sleepMs: 10 }, estimate: { credits: 6 }, after: [starter] }
            """)
        #expect(report.allOK)
        let kinds = events.map { "\($0.kind):\($0.routine ?? ""):\($0.fields["verdict"]?.stringValue ?? "")" }
        #expect(kinds.contains("preempt:low:"))
        let lowVerdicts = events.filter { $0.kind == "verdict" && $0.routine == "low" }.compactMap { $0.fields["verdict"]?.stringValue }
        #expect(lowVerdicts == ["preempted", "ok"])
        #expect(kinds.firstIndex(of: "grant:high:")! < kinds.lastIndex(of: "grant:low:")!, "high ran before low came back")
        #expect(report.routines.first { $0.name == "low" }?.attempts == 1, "a preemption is not a failed attempt")
        let nodes = try ledger.store.tree(team: "t")
        #expect(nodes.contains { $0.name == "low" && $0.outcome == "preempted" })
        #expect(try ledger.store.team(named: "t").available.credits == 100 * credit)
        #expect(try ledger.store.verify().isEmpty)
    }
}
