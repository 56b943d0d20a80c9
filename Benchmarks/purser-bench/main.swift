import CPurserBenchFloor
@preconcurrency import Glibc
import Foundation
import PurserProtocol
import PurserRuntime
import PurserSandbox

// Cold routine rate: spawn → initialize → run → result → reaped, through the library,
// next to a floor measured in the same run (posix_spawn of a C child, one line round trip).

func argument(_ name: String, default value: Int) -> Int {
    guard let index = CommandLine.arguments.firstIndex(of: name), index + 1 < CommandLine.arguments.count else { return value }
    return Int(CommandLine.arguments[index + 1]) ?? value
}

let iterations = argument("--iterations", default: 2000)
// Each figure as soon as it is measured, also into a pipe: a run that fails later keeps them.
setvbuf(stdout, nil, _IOLBF, 0)
let subcommand = CommandLine.arguments.dropFirst().first ?? "spawn"

/// purser-bench's own directory, where SwiftPM put the Swift echo plugin.
let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
/// The C children's directory: built at start with cc against libc only, and checked (see
/// Children); the ledger's benchmarks run none.
let children = subcommand.hasPrefix("ledger") ? "" : buildChildren()
let home = NSTemporaryDirectory() + "purser-bench-\(getpid())"
let runtime = Runtime(home: home)

func buildChildren() -> String {
    do {
        return try Children.build(into: directory + "/bench-children")
    } catch {
        FileHandle.standardError.write(Data("purser-bench: \(error)\n".utf8))
        exit(1)
    }
}

func floorRate() -> Double {
    let seconds = purser_bench_floor(children + "/floorchild", Int32(iterations))
    precondition(seconds > 0, "the floor loop failed")
    return Double(iterations) / seconds
}

func libraryRate(
    _ executable: String, count: Int = iterations, containment: Containment = .automatic,
    sandbox: SandboxLevel = .trusted, host: HostSupport = .current
) async throws -> Double {
    var request = RunRequest(
        executable: executable, input: ["n": 1], credits: Credits(whole: 1), wallTimeMs: 10_000, memoryBytes: 256 << 20)
    request.containment = containment
    request.sandbox = sandbox
    request.allowDegraded = true
    var runtime = runtime
    runtime.host = host
    let start = ContinuousClock.now
    for _ in 0..<count {
        let report = try await runtime.exec(request)
        precondition(report.verdict == .ok, "\(executable): \(report.verdict) \(report.message ?? "")")
    }
    return Double(count) / secondsSince(start)
}

/// Holds about 1 GiB resident, as a long-lived supervisor with caches might.
func growResident() -> UnsafeMutableRawPointer {
    let size = 1 << 30
    let memory = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 4096)
    for offset in stride(from: 0, to: size, by: 4096) { memory.storeBytes(of: 1, toByteOffset: offset, as: UInt8.self) }
    return memory
}

func show(_ label: String, _ rate: Double, against floor: Double? = nil, goal: Double? = nil) {
    var line = label.padding(toLength: 50, withPad: " ", startingAt: 0) + String(format: "%9.0f /s", rate)
    if let floor {
        line += String(format: "   %.2fx", rate / floor)
        if let goal { line += String(format: " (goal ≥ %.2fx)", goal) }
    }
    print(line)
}

/// Runs `work`, which makes `count` runs and returns their rate, and prints the rate's row
/// with, under it, the CPU a run took in this process and in the children it reaped.
func row(
    _ label: String, count: Int = iterations, against floor: Double? = nil, goal: Double? = nil,
    _ work: () async throws -> Double
) async rethrows -> Double {
    let before = CPUTimes()
    let rate = try await work()
    show(label, rate, against: floor, goal: goal)
    print(CPUTimes().since(before, routines: count, own: "children", per: "run"))
    return rate
}

func spawnBenchmark() async throws {
    // Warm up caches and the spawner thread once.
    _ = try await libraryRate(children + "/cworker", count: 50)
    _ = floorRate()

    print("purser-bench spawn: \(iterations) runs each, \(ProcessInfo.processInfo.activeProcessorCount) cores")
    let floor = await row("floor: C posix_spawn + 1-line round trip") { floorRate() }
    let small = try await row("purser exec, C worker", against: floor, goal: 0.67) {
        try await libraryRate(children + "/cworker")
    }
    let echoRuns = max(iterations / 4, 50)
    _ = try await row("purser exec, Swift echo plugin (PluginKit)", count: echoRuns, against: floor) {
        try await libraryRate(directory + "/echo", count: echoRuns)
    }
    _ = try await row("purser exec, C worker, process-group fallback", against: floor) {
        try await libraryRate(children + "/cworker", containment: .processGroup)
    }
    let ballast = growResident()
    _ = try await row("purser exec, C worker, supervisor at 1 GiB", against: small, goal: 0.9) {
        try await libraryRate(children + "/cworker")
    }
    print(String(format: "resident ballast: %d MiB (first byte %d)", 1024, ballast.load(as: UInt8.self)))
    try? FileManager.default.removeItem(atPath: home)
}

/// Cold routine rate under the untrusted profile, next to the trusted one (cgroups and
/// rlimits) and a C floor that forks, unshares a network namespace, sets a limit and execs.
/// Each layer's cost: the untrusted rate with that layer switched off. The configurations
/// take turns in ten rounds, so that a noisy neighbour on this shared machine weighs on all
/// of them alike.
func sandboxBenchmark() async throws {
    let worker = children + "/cworker"
    _ = try await libraryRate(worker, count: 50, sandbox: .untrusted)
    print("purser-bench sandbox: \(iterations) runs each, in 10 rounds, \(ProcessInfo.processInfo.activeProcessorCount) cores")
    let layers: [SandboxLayer] = [.network, .pidNamespace, .mountNamespace, .seccomp, .unprivilegedUser]
    let configurations: [(String, SandboxLevel, HostSupport)] =
        [("untrusted (every layer)", .untrusted, .current), ("trusted (cgroups + rlimits)", .trusted, .current)]
        + layers.map { ("untrusted without \($0.rawValue)", .untrusted, HostSupport.current.without([$0])) }
    var floorSeconds = 0.0, floorCPU = CPUTimes.zero
    var seconds = [Double](repeating: 0, count: configurations.count)
    var cpu = [CPUTimes](repeating: .zero, count: configurations.count)
    let round = max(iterations / 10, 1)
    for _ in 0..<10 {
        let floorStart = CPUTimes()
        let floorRound = purser_bench_floor_sandbox(children + "/floorchild", Int32(round))
        floorCPU += (floorStart, CPUTimes())
        precondition(floorRound > 0, "the sandbox floor loop failed")
        floorSeconds += floorRound
        for (index, configuration) in configurations.enumerated() {
            let start = CPUTimes()
            let rate = try await libraryRate(worker, count: round, sandbox: configuration.1, host: configuration.2)
            cpu[index] += (start, CPUTimes())
            seconds[index] += Double(round) / rate
        }
    }
    let runs = round * 10
    let floor = Double(runs) / floorSeconds
    show("floor: C fork + unshare(NEWNET) + setrlimit + exec + 1 line", floor)
    print(floorCPU.since(.zero, routines: runs, own: "children", per: "run"))
    for (index, configuration) in configurations.enumerated() {
        let rate = Double(runs) / seconds[index]
        if index < 2 {
            show("purser exec, C worker, " + configuration.0, rate, against: floor, goal: index == 0 ? 0.67 : nil)
        } else {
            let cost = (seconds[0] - seconds[index]) / Double(runs) * 1e6
            print("  " + configuration.0.padding(toLength: 48, withPad: " ", startingAt: 0)
                + String(format: "%9.0f /s   the layer costs %+.0f µs a run", rate, cost))
        }
        print(cpu[index].since(.zero, routines: runs, own: "children", per: "run"))
    }
    try? FileManager.default.removeItem(atPath: home)
}

switch subcommand {
case "ledger":
    try ledgerBenchmark()
    try postgresBenchmark()
case "ledger-sqlite": try ledgerBenchmark()
case "ledger-postgres": try postgresBenchmark()
case "gateway": try await gatewayBenchmark()
case "gateway-rate": try await gatewayRateBenchmark()
case "swarm": try await swarmBenchmark()
case "fleet": try await fleetBenchmark()
case "sandbox": try await sandboxBenchmark()
case "sha256": try digestBenchmark()
default: try await spawnBenchmark()
}
