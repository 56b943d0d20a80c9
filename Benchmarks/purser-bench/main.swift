import CPurserBenchFloor
import Foundation
import PurserProtocol
import PurserLedger
import PurserRuntime
import PurserSandbox
import Synchronization

// Cold routine rate: spawn → initialize → run → result → reaped, through the library,
// next to a floor measured in the same run (posix_spawn of a C child, one line round trip).

func argument(_ name: String, default value: Int) -> Int {
    guard let index = CommandLine.arguments.firstIndex(of: name), index + 1 < CommandLine.arguments.count else { return value }
    return Int(CommandLine.arguments[index + 1]) ?? value
}

let iterations = argument("--iterations", default: 2000)
let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
let home = NSTemporaryDirectory() + "purser-bench-\(getpid())"
let runtime = Runtime(home: home)

func floorRate() -> Double {
    let seconds = purser_bench_floor(directory + "/floorchild", Int32(iterations))
    precondition(seconds > 0, "the floor loop failed")
    return Double(iterations) / seconds
}

func libraryRate(
    _ plugin: String, count: Int = iterations, containment: Containment = .automatic
) async throws -> Double {
    let request0 = RunRequest(
        executable: directory + "/" + plugin, input: ["n": 1], credits: Credits(whole: 1), wallTimeMs: 10_000,
        memoryBytes: 256 << 20)
    var request = request0
    request.containment = containment
    let start = ContinuousClock.now
    for _ in 0..<count {
        let report = try await runtime.exec(request)
        precondition(report.verdict == .ok, "\(plugin): \(report.verdict) \(report.message ?? "")")
    }
    let elapsed = ContinuousClock.now - start
    return Double(count) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
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

func spawnBenchmark() async throws {
    // Warm up caches and the spawner thread once.
    _ = try await libraryRate("cworker", count: 50)
    _ = floorRate()

    print("purser-bench spawn: \(iterations) runs each, \(ProcessInfo.processInfo.activeProcessorCount) cores")
    let floor = floorRate()
    show("floor: C posix_spawn + 1-line round trip", floor)
    let small = try await libraryRate("cworker")
    show("purser exec, C worker", small, against: floor, goal: 0.67)
    let swiftEcho = try await libraryRate("echo", count: max(iterations / 4, 50))
    show("purser exec, Swift echo plugin (PluginKit)", swiftEcho, against: floor)
    let processGroup = try await libraryRate("cworker", containment: .processGroup)
    show("purser exec, C worker, process-group fallback", processGroup, against: floor)
    let ballast = growResident()
    let big = try await libraryRate("cworker")
    show("purser exec, C worker, supervisor at 1 GiB", big, against: small, goal: 0.9)
    print(String(format: "resident ballast: %d MiB (first byte %d)", 1024, ballast.load(as: UInt8.self)))
    try? FileManager.default.removeItem(atPath: home)
}

/// Reserve+settle pairs per second through the ledger, next to a raw SQLite loop doing
/// one conditional UPDATE and one INSERT per transaction, at the same durability.
func ledgerBenchmark() throws {
    let directory = NSTemporaryDirectory() + "purser-ledger-bench-\(getpid())"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let floorSeconds = purser_bench_sqlite_floor(directory + "/floor.db", Int32(iterations))
    precondition(floorSeconds > 0, "the SQLite floor loop failed")
    let floor = Double(iterations) / floorSeconds
    print("purser-bench ledger: \(iterations) pairs each, SQLite WAL, synchronous=FULL")
    show("floor: raw SQLite, UPDATE+INSERT per transaction", floor)
    for callers in [1, 8, 32] {
        let store = try SQLiteLedger(path: directory + "/ledger-\(callers).db")
        let team = try store.createTeam(TeamSpec(
            name: "bench", caps: Resources(credits: Int64.max / 4, timeMs: Int64.max / 4, memoryBytes: Int64.max / 4)))
        let perCaller = max(iterations / callers, 1)
        let failures = Mutex(0)
        let group = DispatchGroup()
        let start = ContinuousClock.now
        for caller in 0..<callers {
            group.enter()
            Thread {
                for round in 0..<perCaller {
                    do {
                        let node = try store.reserve(ReserveRequest(
                            parent: team.id, kind: .swarm, name: "c\(caller)-\(round)", amounts: Resources(credits: 10, timeMs: 10)))
                        _ = try store.settle(node.id, usage: Usage(credits: 7, timeMs: 1, memoryPeakBytes: 0), outcome: "ok", holder: nil)
                    } catch {
                        failures.withLock { $0 += 1 }
                    }
                }
                group.leave()
            }.start()
        }
        group.wait()
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        precondition(failures.withLock { $0 } == 0, "ledger operations failed")
        let verified = try store.verify().isEmpty
        precondition(verified, "the ledger does not verify")
        show("ledger reserve+settle pairs, \(callers) caller\(callers == 1 ? "" : "s")", Double(perCaller * callers) / seconds,
            against: floor, goal: callers == 32 ? 3.0 : nil)
    }
}

switch CommandLine.arguments.dropFirst().first {
case "ledger": try ledgerBenchmark()
case "spawn", nil, .some(_): try await spawnBenchmark()
}
