@preconcurrency import Glibc
import Foundation
import PurserConfig
import PurserProtocol
import PurserRuntime
import PurserSandbox
import Synchronization

// Swarm throughput: routines per second for a swarm of trivial routines (cworker, which
// answers its input back) at several concurrencies, next to a floor measured in the same
// run: `xargs -P N -n 1 argchild`, a C child per routine that prints its argument as one
// line, with no budgets, no ledger and no protocol.

/// `--concurrency 1,8,64`: how many routines run at once, one run each.
func concurrencyLevels(default levels: [Int]) -> [Int] {
    guard let index = CommandLine.arguments.firstIndex(of: "--concurrency"), index + 1 < CommandLine.arguments.count else {
        return levels
    }
    return CommandLine.arguments[index + 1].split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
}

func swarmBenchmark() async throws {
    let count = iterations
    // Warm up: the page cache for both children, the ledger's code paths, Dispatch's threads.
    // `--no-floor`: the swarm alone (for profiling it, e.g. under perf); ratios are then not printed.
    let withFloor = !CommandLine.arguments.contains("--no-floor")
    if withFloor { _ = try xargsRate(concurrency: 8, count: 100) }
    _ = try await swarmRate(concurrency: 8, count: 100)

    print("purser-bench swarm: \(count) routines per run, \(ProcessInfo.processInfo.activeProcessorCount) cores, ledger on SQLite")
    for concurrency in concurrencyLevels(default: [1, 8, 64]) {
        var floor: Double?
        if withFloor {
            let before = CPUTimes()
            floor = try xargsRate(concurrency: concurrency, count: count)
            show("floor: xargs -P \(concurrency), C child per routine", floor!)
            print(CPUTimes().since(before, routines: count, own: "xargs's children"))
        }
        let before = CPUTimes()
        let rate = try await swarmRate(concurrency: concurrency, count: count)
        show("purser swarm, concurrency \(concurrency)", rate, against: floor, goal: floor == nil ? nil : 1.0)
        print(CPUTimes().since(before, routines: count, own: "workers"))
    }
    if let peak = peakResidentKiB() { print("supervisor peak RSS (VmHWM): \(peak / 1024) MiB") }
}

/// Routines per second for `xargs -P concurrency -n 1 argchild`, fed `count` inputs on
/// stdin, one a line; every child's line is counted to check that all ran.
func xargsRate(concurrency: Int, count: Int) throws -> Double {
    let xargs = Process()
    xargs.executableURL = URL(fileURLWithPath: "/usr/bin/xargs")
    xargs.arguments = ["-P", "\(concurrency)", "-n", "1", children + "/argchild"]
    let input = Pipe()
    let output = Pipe()
    xargs.standardInput = input
    xargs.standardOutput = output
    xargs.standardError = FileHandle.nullDevice
    let inputs = Data((0..<count).map { "\($0)\n" }.joined().utf8)
    let writer = input.fileHandleForWriting
    let start = ContinuousClock.now
    try xargs.run()
    // Fed from a thread of its own, so that a long list cannot block on a full pipe.
    Thread {
        writer.write(inputs)
        try? writer.close()
    }.start()
    let printed = output.fileHandleForReading.readDataToEndOfFile()
    xargs.waitUntilExit()
    let seconds = secondsSince(start)
    let lines = printed.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
    precondition(xargs.terminationStatus == 0, "xargs exited with \(xargs.terminationStatus)")
    precondition(lines == count, "xargs: \(lines) lines from \(count) children")
    return Double(count) / seconds
}

/// Routines per second for a swarm of `count` cworker routines, `concurrency` at a time,
/// through the library, in a fresh PURSER_HOME; the wall time of `run()` only.
func swarmRate(concurrency: Int, count: Int) async throws -> Double {
    let home = NSTemporaryDirectory() + "purser-swarm-bench-\(getpid())-\(concurrency)-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: home) }
    let runtime = try Runtime.withLedger(home: home)
    // `--trusted`: cworker registered with a trusted manifest, as a plugin whose author the
    // user trusts: budgets, protocol and cgroups, without namespaces, seccomp or user; its
    // workers are kept between runs (it declares `sequentialRuns`) unless `--no-reuse`.
    var plugin = children + "/cworker"
    if CommandLine.arguments.contains("--trusted") {
        var manifest = PluginManifest()
        manifest.trusted = true
        manifest.reuse = !CommandLine.arguments.contains("--no-reuse")
        _ = try await PluginRegistry(runtime: runtime).add(path: plugin, name: "cworker", manifest: manifest)
        plugin = "cworker"
    }
    let job = try JobFile.parse(
        ConfigValue.parse(swarmJob(concurrency: concurrency, count: count, plugin: plugin), file: home + "/bench.yaml"))
    // `--phases`: when each routine was reserved, granted, started and ended, by the
    // scheduler's own events, to tell where a routine's time goes.
    let phases = CommandLine.arguments.contains("--phases") ? PhaseLog() : nil
    let runner = try SwarmRunner(runtime: runtime, job: job, onEvent: { event in phases?.record(event) })
    let start = ContinuousClock.now
    let report = try await runner.run()
    let seconds = secondsSince(start)
    guard report.allOK else {
        let failed = report.routines.filter { $0.verdict != .ok }
        throw BenchError(
            code: "swarm", "swarm at concurrency \(concurrency): \(report.denied ?? "") \(failed.count) routines failed, first: "
                + "\(failed.first.map { "\($0.name) \($0.verdict) \($0.message ?? "")" } ?? "")")
    }
    for (index, routine) in report.routines.enumerated() where routine.output != .number(JSONNumber(Int64(index))) {
        throw BenchError(code: "swarm", "routine \(routine.name) answered \(routine.output?.serialized() ?? "nothing"), not \(index)")
    }
    let violations = try runtime.ledger!.store.verify()
    precondition(violations.isEmpty, "the ledger does not verify: \(violations)")
    if let phases { print(phases.summary(routines: job.routines.map(\.name), seconds: seconds)) }
    return Double(count) / seconds
}

/// The job file, as YAML text: `count` routines running cworker on their index.
func swarmJob(concurrency: Int, count: Int, plugin: String) -> String {
    var text = """
        team:
          name: bench
          budget: { credits: 1000000, time: 100000h, memory: 1024GiB }
        swarm:
          name: bench-\(concurrency)
          reservation: { credits: 100000, time: 10000h, memory: 512GiB }
          concurrency: \(concurrency)
          onConflict: queue
        routines:

        """
    for index in 0..<count {
        text += "  - { name: r\(index), plugin: \(plugin), input: \(index), "
            + "estimate: { credits: 0.001, time: 10s, memory: 64MiB } }\n"
    }
    return text
}

func secondsSince(_ start: ContinuousClock.Instant) -> Double {
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

/// VmHWM from /proc/self/status, in KiB.
func peakResidentKiB() -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
    else { return nil }
    return Int(line.split(separator: " ").dropFirst().first ?? "")
}

/// CPU time of this process and of its reaped children, to tell the supervisor's own cost
/// per routine from the children's.
struct CPUTimes {
    var selfUser = 0.0, selfSystem = 0.0, childUser = 0.0, childSystem = 0.0

    static let zero = CPUTimes(selfUser: 0, selfSystem: 0, childUser: 0, childSystem: 0)

    init(selfUser: Double, selfSystem: Double, childUser: Double, childSystem: Double) {
        (self.selfUser, self.selfSystem, self.childUser, self.childSystem) = (selfUser, selfSystem, childUser, childSystem)
    }

    /// What was used since `start`, added to `total`.
    static func += (total: inout CPUTimes, span: (start: CPUTimes, end: CPUTimes)) {
        total.selfUser += span.end.selfUser - span.start.selfUser
        total.selfSystem += span.end.selfSystem - span.start.selfSystem
        total.childUser += span.end.childUser - span.start.childUser
        total.childSystem += span.end.childSystem - span.start.childSystem
    }

    init() {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        selfUser = Self.seconds(usage.ru_utime)
        selfSystem = Self.seconds(usage.ru_stime)
        getrusage(RUSAGE_CHILDREN.rawValue, &usage)
        childUser = Self.seconds(usage.ru_utime)
        childSystem = Self.seconds(usage.ru_stime)
    }

    static func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }

    /// "  CPU per routine: this process … µs (user/sys), children … µs (user/sys)"; `own`
    /// "-" leaves the children out.
    func since(_ start: CPUTimes, routines: Int, own: String, per: String = "routine") -> String {
        let n = Double(routines) / 1e6
        let mine = String(
            format: "  CPU per \(per): this process %.0f µs (%.0f user, %.0f sys)",
            (selfUser - start.selfUser + selfSystem - start.selfSystem) / n, (selfUser - start.selfUser) / n,
            (selfSystem - start.selfSystem) / n)
        guard own != "-" else { return mine }
        return mine + ", " + own + String(
            format: " %.0f µs (%.0f user, %.0f sys)", (childUser - start.childUser + childSystem - start.childSystem) / n,
            (childUser - start.childUser) / n, (childSystem - start.childSystem) / n)
    }
}

/// The instant of every routine's reserve, grant, start and verdict events.
final class PhaseLog: Sendable {
    private let marks = Mutex<[String: [String: ContinuousClock.Instant]]>([:])

    func record(_ event: SwarmEvent) {
        guard let routine = event.routine, ["reserve", "grant", "start", "verdict"].contains(event.kind) else { return }
        let now = ContinuousClock.now
        marks.withLock { $0[routine, default: [:]][event.kind] = now }
    }

    /// Mean µs per routine: reserve → grant (the ledger), grant → start, start → verdict
    /// (the run, as the scheduler sees it), and verdict → the next routine's reserve (the
    /// scheduler between runs; meaningful at concurrency 1).
    func summary(routines: [String], seconds: Double) -> String {
        let all = marks.withLock { $0 }
        func mean(_ from: String, _ to: String) -> Double {
            let spans = routines.compactMap { name -> Double? in
                guard let a = all[name]?[from], let b = all[name]?[to] else { return nil }
                return microseconds(b - a)
            }
            return spans.isEmpty ? 0 : spans.reduce(0, +) / Double(spans.count)
        }
        var gaps: [Double] = []
        let ordered = routines.compactMap { all[$0] }.sorted { ($0["reserve"] ?? .now) < ($1["reserve"] ?? .now) }
        for (previous, next) in zip(ordered, ordered.dropFirst()) {
            if let end = previous["verdict"], let start = next["reserve"], start > end { gaps.append(microseconds(start - end)) }
        }
        let gap = gaps.isEmpty ? 0 : gaps.reduce(0, +) / Double(gaps.count)
        return String(
            format: "  phases, mean µs per routine: reserve→grant %.0f, grant→start %.0f, start→verdict %.0f, "
                + "verdict→next reserve %.0f (%d gaps); wall per routine %.0f",
            mean("reserve", "grant"), mean("grant", "start"), mean("start", "verdict"), gap, gaps.count,
            seconds * 1e6 / Double(routines.count))
    }

    private func microseconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
    }
}
