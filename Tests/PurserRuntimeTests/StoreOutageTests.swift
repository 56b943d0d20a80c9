import Foundation
import PurserLedger
import PurserProtocol
import PurserRuntime
import PurserTestSupport
import Synchronization
import Testing

/// Swarms on a PostgreSQL ledger whose server restarts, or stops for good, while they run.
/// Each test borrows the fault tests' server (the shared one serves every other test
/// meanwhile); the server is stopped or restarted from the swarm's own event stream, and
/// nothing asserts on time.
@Suite("Store outages", .serialized, .timeLimit(.minutes(3)))
struct StoreOutageTests {
    let home = Fixtures.temporaryHome()
    let credit: Int64 = 1_000_000
    var scripted: String { Fixtures.product("scripted") }

    /// `count` routines that each report 8 credits and sleep `sleepMs`.
    func job(count: Int, concurrency: Int, sleepMs: Int) throws -> String {
        let routines = (1...count).map { "  - { name: r\($0), plugin: \(scripted), input: { spend: 8, sleepMs: \(sleepMs) }, estimate: { credits: 10 } }" }
        let yaml = """
            team: { name: t, budget: { credits: 10000 } }
            swarm: { name: s, reservation: { credits: 1000 }, concurrency: \(concurrency), strategy: exact }
            routines:
            \(routines.joined(separator: "\n"))
            """
        let path = home + "/job.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func run(_ path: String, ledger url: String, onEvent: @escaping @Sendable (SwarmEvent) -> Void) async throws -> (SwarmReport, [SwarmEvent], RuntimeLedger) {
        let runtime = try Runtime.withLedger(home: home, location: url)
        let events = Mutex<[SwarmEvent]>([])
        let runner = try SwarmRunner(runtime: runtime, job: JobFile.load(path: path)) { event in
            events.withLock { $0.append(event) }
            onEvent(event)
        }
        return (try await runner.run(), events.withLock { $0 }, runtime.ledger!)
    }

    /// Every routine ok and none denied; every credit a worker reported charged, once, at
    /// the swarm and at the team; the ledger balances.
    func expectNothingLost(_ report: SwarmReport, _ ledger: RuntimeLedger, routines: Int) throws {
        #expect(report.verdictCounts == ["ok": routines], "\(report.routines.map { "\($0.name) \($0.verdict) \($0.message ?? "")" })")
        let reported = report.routines.compactMap(\.report).reduce(Int64(0)) { $0 + $1.usage.credits.micros }
        #expect(reported == Int64(routines) * 8 * credit)
        let swarm = try ledger.store.node(try #require(report.swarmNode))
        #expect(swarm.consumed.credits == reported, "every reported credit charged at the swarm")
        #expect(try ledger.store.team(named: "t").consumed.credits == reported, "and once at the team")
        let routineNodes = try ledger.store.tree(team: "t").filter { $0.parent == swarm.id }
        #expect(routineNodes.count == routines, "one hold per routine: none reserved twice")
        #expect(routineNodes.allSatisfy { $0.outcome == "ok" && $0.consumed.credits == 8 * credit })
        #expect(try ledger.store.verify().isEmpty)
    }

    /// The fault tests' server (`giveBack()` it when done) and a database of the test's own on it.
    func privateServer() async throws -> (PostgresServer, String) {
        let server = try await PostgresServer.borrowForFaults()
        do {
            return (server, try await offPool { try server.makeDatabase() })
        } catch {
            server.giveBack()
            throw error
        }
    }

    /// `pg_ctl restart -m fast` once the first routine has started, as an operator would.
    @Test func aRestartMidSwarmLosesNothing() async throws {
        let (server, url) = try await privateServer()
        defer { server.giveBack() }
        let restart = ServerChange()
        let (report, _, ledger) = try await run(try job(count: 20, concurrency: 4, sleepMs: 100), ledger: url) { event in
            guard event.kind == "start" else { return }
            restart.once { try server.restartServer() }
        }
        try await restart.finished()
        try expectNothingLost(report, ledger, routines: 20)
    }

    /// The server stops as the first four routines start and stays down until each has
    /// reported its usage: the next reserve and those four settles all meet a server that
    /// is down, and wait for it.
    @Test func reservesAndSettlesWaitForTheServer() async throws {
        let (server, url) = try await privateServer()
        defer { server.giveBack() }
        let reported = DispatchSemaphore(value: 0)
        let started = Atomic<Int>(0)
        let stop = Mutex<Result<Void, any Error>>(.success(()))
        let start = ServerChange()
        let (report, events, ledger) = try await run(try job(count: 12, concurrency: 4, sleepMs: 50), ledger: url) { event in
            if event.kind == "spend" { reported.signal() }
            guard event.kind == "start", started.add(1, ordering: .relaxed).newValue == 4 else { return }
            // On the scheduling pass's own thread: nothing more is reserved until the server is down.
            stop.withLock { $0 = Result { try server.stopServer() } }
            start.once {
                for _ in 0..<4 { _ = reported.wait(timeout: .now() + 60) }
                Thread.sleep(forTimeInterval: 0.3)
                try server.startServer()
            }
        }
        try stop.withLock { $0 }.get()
        try await start.finished()
        try expectNothingLost(report, ledger, routines: 12)
        #expect(events.contains { $0.kind == "store" }, "the wait was told in the event stream")
    }

    /// The server stops once the swarm runs and stays down past `PURSER_STORE_RETRY`:
    /// `purser run` says so (exit 1, the store's error, not a verdict) and prints what it
    /// knows, the usage of the routines that ran among it; nothing is `denied`.
    @Test func aServerGoneForGoodIsAStoreErrorWithTheReport() async throws {
        let (server, url) = try await privateServer()
        defer { server.giveBack() }
        let path = try job(count: 6, concurrency: 2, sleepMs: 300)
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        environment["PURSER_STORE_RETRY"] = "2s"
        let eventsFile = home + "/events.ndjson"
        let runEnvironment = environment
        let ended = Atomic<Bool>(false)
        let command = Task {
            defer { ended.store(true, ordering: .releasing) }
            return try await offPool {
                try runCommandBlocking(
                    Fixtures.product("purser"), ["run", path, "--ledger", url, "--json", "--events", eventsFile],
                    environment: runEnvironment)
            }
        }
        // Stopped once a routine has started, whenever that is.
        while !((try? String(contentsOfFile: eventsFile, encoding: .utf8)) ?? "").contains(#""event":"start""#) {
            guard !ended.load(ordering: .acquiring) else {
                Issue.record("the swarm ended before any routine started: \(try await command.value)")
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        try await offPool { try server.stopServer() }
        let run = try await command.value
        #expect(run.status == 1, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stderr.contains("gave up"), "\(run.stderr)")
        let report = try JSONParser.parse(run.stdout)
        #expect(report["storeError"]?.stringValue?.isEmpty == false, "\(run.stdout)")
        let routines = report["routines"]?.arrayValue ?? []
        #expect(routines.count == 6)
        #expect(!routines.contains { $0["verdict"] == "denied" }, "\(run.stdout)")
        let ran = routines.filter { $0["usage"] != nil }
        #expect(!ran.isEmpty, "the routines that ran are in the report")
        #expect(ran.allSatisfy { $0["usage"]?["credits"] == 8 }, "\(ran)")
        // The store back: what was written balances; a routine that ran is settled with
        // what it used, or still held, or, since the supervisor that held it is gone from
        // this host, reclaimed by the next start (its use is then in the report alone),
        // never settled as having used nothing.
        try await offPool { try server.startServer() }
        environment["PURSER_STORE_RETRY"] = nil
        let verifyEnvironment = environment
        let verify = try await offPool {
            try runCommandBlocking(Fixtures.product("purser"), ["ledger", "verify", "--ledger", url], environment: verifyEnvironment)
        }
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        let store = try PostgresLedger(url: url)
        for routine in ran {
            let node = try store.node(try #require(routine["ledgerNode"]?.numberValue?.int64))
            let reclaimed = !node.isOpen && node.outcome == "reclaimed"
            #expect(node.isOpen || reclaimed || node.consumed.credits == 8 * credit, "\(node)")
            #expect(node.isOpen || reclaimed ? routine["settled"] == false : routine["settled"] != false, "\(routine)")
        }
    }
}

/// A change to the server (a restart, a start) made once, on a thread of its own, from a
/// swarm's event stream; the test awaits it and sees its error.
final class ServerChange: Sendable {
    private let state = Mutex<(asked: Bool, result: Result<Void, any Error>?)>((false, nil))
    private let done = DispatchSemaphore(value: 0)

    func once(_ change: @escaping @Sendable () throws -> Void) {
        guard state.withLock({ state in
            defer { state.asked = true }
            return !state.asked
        }) else { return }
        Thread {
            let result = Result { try change() }
            self.state.withLock { $0.result = result }
            self.done.signal()
        }.start()
    }

    /// Waits for the change if one was asked for, and throws its error.
    func finished() async throws {
        guard state.withLock({ $0.asked }) else { return }
        let done = self.done
        try await offPool { done.wait() }
        try state.withLock { $0.result }?.get()
    }
}
