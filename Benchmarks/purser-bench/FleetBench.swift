@preconcurrency import Glibc
import Foundation
import PurserHarness
import PurserLedger

// The fleet's queue cost: a swarm of trivial routines (cworker, registered as a plugin) run
// by `purser run` in one process, and the same swarm through the queue (`purser submit`,
// K `purser serve` processes with as many slots in all, `purser watch` to its end), on
// SQLite and on PostgreSQL, in the same run. The floor of a queued routine is `purser run`
// of the same swarm: the queue's cost is what it adds to it.

/// `--hosts 1,2,4`: how many `serve` processes, one run each.
func hostCounts() -> [Int] {
    guard let index = CommandLine.arguments.firstIndex(of: "--hosts"), index + 1 < CommandLine.arguments.count else {
        return [1, 2, 4]
    }
    return CommandLine.arguments[index + 1].split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
}

/// Where the release `purser` is: beside this executable (`swift build -c release` builds both).
let purserExecutable = directory + "/purser"

/// One store for the fleet benchmark: how to make a fresh location, and the server's CPU.
struct BenchStore {
    let name: String
    let fresh: (_ home: String) throws -> String
    let serverCPU: () -> Double
}

func fleetBenchmark() async throws {
    guard FileManager.default.isExecutableFile(atPath: purserExecutable) else {
        throw BenchError(code: "noPurser", "\(purserExecutable) is missing: swift build -c release --product purser")
    }
    let concurrency = concurrencyLevels(default: [8]).first ?? 8
    let server = PostgresServer.shared
    let probe = try server.makeDatabase()
    let postmaster = try postmasterPID(location: probe)
    let stores = [
        BenchStore(name: "SQLite", fresh: { $0 + "/purser.db" }, serverCPU: { 0 }),
        BenchStore(name: "PostgreSQL", fresh: { _ in try server.makeDatabase() }, serverCPU: { postgresCPU(postmaster: postmaster) }),
    ]
    var load = [0.0, 0, 0]
    getloadavg(&load, 3)
    print(
        "purser-bench fleet: \(iterations) routines per run, concurrency \(concurrency), "
            + "\(ProcessInfo.processInfo.activeProcessorCount) cores, load average \(String(format: "%.2f", load[0]))"
            + (CommandLine.arguments.contains("--trusted") ? ", cworker trusted" : ", cworker untrusted"))
    _ = try fleetRun(store: stores[0], hosts: 0, concurrency: concurrency, count: 100)  // warm up
    for store in stores {
        let base = try fleetRun(store: store, hosts: 0, concurrency: concurrency, count: iterations)
        base.report("\(store.name): purser run (one process)", against: nil, goal: nil)
        for hosts in hostCounts() {
            let queued = try fleetRun(store: store, hosts: hosts, concurrency: concurrency, count: iterations)
            let goal = store.name == "PostgreSQL" && hosts == 2 ? 0.8 : nil
            queued.report("\(store.name): \(hosts) serve × \(max(concurrency / hosts, 1)) slots", against: base, goal: goal)
        }
    }
    try claimBenchmark(server: server, postmaster: postmaster)
}

/// One run's figures.
struct FleetFigures {
    var count: Int
    var seconds: Double
    /// Supervisors' own CPU (`purser run`, or every `serve`), seconds.
    var supervisors: Double
    /// `submit` and `watch`, or nothing.
    var clients: Double
    /// The PostgreSQL server's processes, or nothing.
    var server: Double

    var rate: Double { Double(count) / seconds }
    var perRoutine: Double { (supervisors + clients + server) / Double(count) * 1e6 }

    func report(_ label: String, against base: FleetFigures?, goal: Double?) {
        show(label, rate, against: base?.rate, goal: goal)
        let n = Double(count) / 1e6
        var line = String(
            format: "  wall %.2f s; CPU per routine: supervisors %.0f µs, submit+watch %.0f µs, store server %.0f µs",
            seconds, supervisors / n, clients / n, server / n)
        if let base { line += String(format: "; the queue's extra CPU per routine %+.0f µs (goal ≤ 1000)", perRoutine - base.perRoutine) }
        print(line)
    }
}

/// A swarm of `count` cworker routines, `concurrency` at a time, in a fresh home and store:
/// by `purser run` (`hosts` 0), or through the queue with `hosts` serve processes.
func fleetRun(store: BenchStore, hosts: Int, concurrency: Int, count: Int) throws -> FleetFigures {
    let home = NSTemporaryDirectory() + "purser-fleet-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: home) }
    var environment = ProcessInfo.processInfo.environment
    environment["PURSER_HOME"] = home
    environment["PURSER_LEDGER"] = try store.fresh(home)
    let purser = { (arguments: [String], log: String) throws -> BenchChild in
        try BenchChild.start(purserExecutable, arguments, environment: environment, log: home + "/" + log)
    }
    try registerCworker(home: home, purser: purser)
    let job = home + "/bench.yaml"
    try swarmJob(concurrency: concurrency, count: count, plugin: "cworker").write(toFile: job, atomically: true, encoding: .utf8)
    if hosts == 0 {
        let serverBefore = store.serverCPU()
        let start = ContinuousClock.now
        let run = try purser(["run", job], "run.log")
        let (status, cpu) = try run.wait()
        let seconds = secondsSince(start)
        guard status == 0 else { throw BenchError(code: "run", "purser run exited \(status): \(run.output.suffix(2000))") }
        return FleetFigures(count: count, seconds: seconds, supervisors: cpu.own, clients: 0, server: store.serverCPU() - serverBefore)
    }
    let serves = try (0..<hosts).map { index in
        try purser(["serve", "--name", "h\(index)", "--slots", "\(max(concurrency / hosts, 1))"], "serve-\(index).log")
    }
    // On a failure, the hosts go with it; once drained and reaped, their pids are not ours.
    var drained = false
    defer { if !drained { for serve in serves { kill(serve.pid, SIGKILL); _ = try? serve.wait() } } }
    try waitForHosts(hosts, location: environment["PURSER_LEDGER"]!)
    let serversBefore = serves.map { $0.cpu?.own ?? 0 }
    let serverBefore = store.serverCPU()
    let clientsBefore = CPUTimes()
    let start = ContinuousClock.now
    let submit = try purser(["submit", job], "submit.log")
    guard try submit.wait().status == 0 else { throw BenchError(code: "submit", "purser submit: \(submit.output)") }
    let id = submit.output.trimmingCharacters(in: .whitespacesAndNewlines)
    let watch = try purser(["watch", id], "watch.log")
    guard try watch.wait().status == 0 else { throw BenchError(code: "watch", "purser watch \(id): \(watch.output)") }
    let seconds = secondsSince(start)
    let clients = CPUTimes()
    let supervisors = zip(serves, serversBefore).reduce(0.0) { $0 + ($1.0.cpu?.own ?? 0) - $1.1 }
    let server = store.serverCPU() - serverBefore
    for serve in serves { kill(serve.pid, SIGTERM) }
    let statuses = try serves.map { try $0.wait().status }
    drained = true
    if let failed = zip(serves, statuses).first(where: { $0.1 != 0 }) {
        throw BenchError(code: "serve", "purser serve did not drain cleanly (\(failed.1)): \(failed.0.output.suffix(2000))")
    }
    let clientCPU = clients.childUser + clients.childSystem - clientsBefore.childUser - clientsBefore.childSystem
    return FleetFigures(count: count, seconds: seconds, supervisors: supervisors, clients: clientCPU, server: server)
}

/// `purser plugin add cworker`: trusted with `--trusted` (kept workers unless `--no-reuse`),
/// as `purser-bench swarm --trusted` registers it.
func registerCworker(home: String, purser: ([String], String) throws -> BenchChild) throws {
    var arguments = ["plugin", "add", children + "/cworker", "--name", "cworker"]
    if CommandLine.arguments.contains("--trusted") {
        let manifest = home + "/cworker.yaml"
        try "trusted: true\nreuse: \(!CommandLine.arguments.contains("--no-reuse"))\n"
            .write(toFile: manifest, atomically: true, encoding: .utf8)
        arguments += ["--manifest", manifest]
    }
    let add = try purser(arguments, "plugin-add.log")
    guard try add.wait().status == 0 else { throw BenchError(code: "plugin", "purser plugin add: \(add.output)") }
}

/// Waits until `count` hosts are live in the store at `location`.
func waitForHosts(_ count: Int, location: String) throws {
    let fleet = try LedgerLocation.openFleet(location)
    let deadline = ContinuousClock.now + .seconds(60)
    while ContinuousClock.now < deadline {
        if try fleet.hosts().filter({ $0.state == "live" }).count >= count { return }
        usleep(20_000)
    }
    throw BenchError(code: "hosts", "\(count) serve processes did not join within 60 s")
}

/// The postmaster's pid, from postmaster.pid in the server's data directory.
func postmasterPID(location: String) throws -> pid_t {
    let driver = try PostgresLedger(url: location).driver
    let rows = try driver.transaction { (session) throws(LedgerError) in try session.query("SHOW data_directory", []) }
    guard let data = benchText(rows.first?.first),
        let text = try? String(contentsOfFile: data + "/postmaster.pid", encoding: .utf8),
        let pid = pid_t(text.prefix(while: { $0 != "\n" }))
    else { throw BenchError(code: "postmaster", "cannot read the postmaster's pid") }
    return pid
}
