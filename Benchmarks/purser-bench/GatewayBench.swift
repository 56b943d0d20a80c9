import CPurserBenchFloor
import Foundation
import PurserConfig
import PurserGateway
import PurserHarness
import PurserProtocol
import PurserRuntime

/// Brokered calls next to direct ones, against the same local server: one worker next to
/// a libcurl loop with a reused handle; sixteen workers next to the server's ceiling
/// measured with wrk; and the latency the broker adds, median against median. First with
/// benchhttpd (a C epoll server, libc only, about 30 µs a request), the floor to judge the
/// gateway by: the supervisor's own cost stands out against it. Then with the tests' Python
/// server (httpd.py, about 100 µs a request), whose own cost hides most of the broker's.
func gatewayBenchmark() async throws {
    if let index = CommandLine.arguments.firstIndex(of: "--upstream"), index + 1 < CommandLine.arguments.count {
        let given = CommandLine.arguments[index + 1]
        return try await gatewayRound(base: given, label: given)
    }
    let fast = Process()
    fast.executableURL = URL(fileURLWithPath: children + "/benchhttpd")
    let output = Pipe()
    fast.standardOutput = output
    try fast.run()
    defer { fast.terminate() }
    let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
    guard let port = Int(line.trimmingCharacters(in: .whitespacesAndNewlines)) else {
        throw BenchError(code: "benchhttpd", "benchhttpd printed no port")
    }
    try await gatewayRound(base: "http://127.0.0.1:\(port)", label: "benchhttpd (C, epoll, libc only)")
    print("")
    let server = try HTTPTestServer()
    try await gatewayRound(base: server.baseURL, label: "httpd.py (the tests' Python server, not the floor)")
}

func gatewayRound(base: String, label: String) async throws {
    let url = base + "/hello"
    let home = NSTemporaryDirectory() + "purser-gateway-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: home) }
    var runtime = try Runtime.withLedger(home: home)
    let config = try GatewayConfig.parse(
        ConfigValue.parse("integrations:\n  bench:\n    baseURL: \(base)/\n    cost: { perRequest: 0.001 }\n", file: "bench"),
        environment: [:])
    runtime.gateway = try runtime.makeGateway(config: config)
    let frozen = runtime

    // Warm both paths: connections, the engine thread, the ledger file.
    var directMedian = 0.0
    _ = purser_bench_curl_floor(url, 200, &directMedian)
    _ = try await brokered(frozen, calls: 200)

    print("purser-bench gateway: \(iterations) calls, GET /hello from \(label), ledger on SQLite")
    // Direct and brokered take turns, three rounds each, so that a slow moment on these
    // shared cores falls on both sides rather than on one.
    let rounds = 3
    let perRound = max(iterations / rounds, 1)
    var directSeconds = 0.0, brokeredSeconds = 0.0
    var directMedians: [Double] = [], brokeredMedians: [Double] = []
    var directCPU = CPUTimes.zero, brokeredCPU = CPUTimes.zero
    for _ in 0..<rounds {
        let directStart = CPUTimes()
        let seconds = purser_bench_curl_floor(url, Int32(perRound), &directMedian)
        directCPU += (directStart, CPUTimes())
        precondition(seconds > 0, "the direct libcurl loop failed")
        directSeconds += seconds
        directMedians.append(directMedian)
        let brokeredStart = CPUTimes()
        let one = try await brokered(frozen, calls: perRound)
        brokeredCPU += (brokeredStart, CPUTimes())
        brokeredSeconds += Double(perRound) / one.rate
        brokeredMedians.append(one.medianUs)
    }
    let direct = Double(perRound * rounds) / directSeconds
    show("floor: direct libcurl, one reused handle", direct)
    print(directCPU.since(.zero, routines: perRound * rounds, own: "-", per: "call"))
    show("brokered, 1 worker, one call at a time", Double(perRound * rounds) / brokeredSeconds, against: direct, goal: 0.5)
    print(brokeredCPU.since(.zero, routines: perRound * rounds, own: "the worker", per: "call"))
    let directUs = directMedians.sorted()[rounds / 2], brokeredUs = brokeredMedians.sorted()[rounds / 2]
    print(String(format: "median latency (middle round): direct %.0f µs, brokered %.0f µs: %.0f µs added (goal ≤ 150 µs)",
        directUs, brokeredUs, brokeredUs - directUs))

    let ceilingStart = CPUTimes()
    let ceiling = try serverCeiling(url)
    show("floor: server ceiling, \(ceiling.tool), 16 connections", ceiling.rate)
    print(CPUTimes().since(ceilingStart, routines: ceiling.calls, own: ceiling.tool == "wrk" ? "wrk" : "-", per: "call")
        + " (the server's own not counted)")
    // Long enough that starting the sixteen workers (spawn, reservation) is a small part of it.
    let perWorker = max(iterations / 4, 50)
    let sixteenStart = CPUTimes()
    let start = ContinuousClock.now
    let calls = try await withThrowingTaskGroup(of: Int.self) { group in
        for _ in 0..<16 { group.addTask { try await brokered(frozen, calls: perWorker).calls } }
        return try await group.reduce(0, +)
    }
    let seconds = secondsSince(start)
    show("brokered, 16 workers at once", Double(calls) / seconds, against: ceiling.rate, goal: 0.6)
    print(CPUTimes().since(sixteenStart, routines: calls, own: "the workers", per: "call"))
}

/// One gatewayworker run making `calls` calls one after another; its own clock.
func brokered(_ runtime: Runtime, calls: Int) async throws -> (rate: Double, medianUs: Double, calls: Int) {
    var request = RunRequest(
        executable: children + "/gatewayworker", input: ["n": .number(JSONNumber(calls)), "integration": "bench", "path": "/hello"],
        credits: Credits(whole: 100), wallTimeMs: 600_000, memoryBytes: 256 << 20)
    request.tools = ["bench"]
    let report = try await runtime.exec(request)
    guard report.verdict == .ok, let output = report.output,
        let seconds = output["seconds"]?.numberValue?.double, let median = output["medianUs"]?.numberValue?.double,
        output["errors"] == 0
    else {
        throw BenchError(
            code: "gatewayworker",
            "gatewayworker: \(report.verdict) \(report.message ?? "") \(report.output?.serialized() ?? "") \(report.stderrTail)")
    }
    return (Double(calls) / seconds, median, calls)
}

/// The server's own ceiling: wrk with 16 connections for 5 s if it is installed, else
/// libcurl's multi interface with 16 handles; and how many calls that made.
func serverCeiling(_ url: String) throws -> (rate: Double, tool: String, calls: Int) {
    if let wrk = ["/usr/bin/wrk", "/usr/local/bin/wrk"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) {
        let result = try runCommandBlocking(wrk, ["-t2", "-c16", "-d5s", url])
        let lines = result.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        if let line = lines.first(where: { $0.hasPrefix("Requests/sec:") }),
            let rate = Double(line.dropFirst("Requests/sec:".count).trimmingCharacters(in: .whitespaces)),
            let made = lines.first(where: { $0.contains(" requests in ") }), let calls = Int(made.prefix { $0 != " " })
        {
            return (rate, "wrk", calls)
        }
    }
    var median = 0.0
    let seconds = purser_bench_curl_floor_parallel(url, 16, Int32(iterations), &median)
    precondition(seconds > 0, "the parallel libcurl loop failed")
    return (Double(iterations) / seconds, "libcurl multi", iterations)
}
