import Glibc
import PurserPluginKit
import Synchronization

// A routine that does what its input says, for swarm tests:
//   {"spend": 4200, "sleepMs": 50, "fail": "message", "output": <any>, "crash": true,
//    "failOnce": "/path",   (fails if the file is missing, creating it: a retry then passes)
//    "call": {"plugin": "name", "input": <any>, "credits": 2, "memoryBytes": 1048576},   (a nested routine/call)
//    "calls": [{"plugin": …, "input": …, "credits": 1, "timeMs": 5000}, …],   (steps at once; answers {"steps": [outputs]})
//    "firstRunMarker": "/path", "firstSleepMs": 60000,   (only the first run sleeps)
//    "whoami": true,   (answers {"pid", "runs"}: this process and how many runs it was sent)
//    "touchMiB": 64,   (writes to that much fresh memory, and frees it, before answering)
//    "holdMiB": 64,   (writes to that much fresh memory and holds it until it answers; the
//                      answer to a "call" then says "heldMiB")
//    "burnMs": 500,   (burns that much of its own CPU time first)
//    "logKiB": 300,   (logs that much text, in 4 KiB messages, before answering)
//    "stderr": "text",   (writes text to its stderr, first)
//    "exitAfterMs": 10,   (answers, then exits that much later: a kept worker gone while idle)
//    "gate": "/path",   (creates /path.started, then waits until /path exists: a test's cue)
//    "gateway": {"integration": "api", "path": "/hello", "query": {}, "forMs": 10000},   (calls the gateway
//                        again and again for that long, waiting out each refusal's retryAfterMs,
//                        at most 200 ms; answers {"ok": n, "refused": {reason: n}, "failed": n})
//    "escape": "TAG"}   (first starts `sleep 3600` in a session of its own, orphaned, with
//                        HOSTILE_TAG=TAG in its environment, so that tests can find it)
// It reports `spend` credits as usage, sleeps, then answers `output` (default: its input
// with "spent"), an error with `fail`, or dies with `crash`.
let runsSent = Atomic<Int>(0)

Plugin.serve(name: "scripted", version: "1.0.0") { input, context in
    let runs = runsSent.add(1, ordering: .relaxed).newValue
    if let text = input["stderr"]?.stringValue { _ = write(2, text, text.utf8.count) }
    if let mebibytes = input["touchMiB"]?.numberValue?.int64, mebibytes > 0, let block = malloc(Int(mebibytes) << 20) {
        memset(block, 1, Int(mebibytes) << 20)
        free(block)
    }
    let held = hold(mebibytes: input["holdMiB"]?.numberValue?.int64 ?? 0)
    if let tag = input["escape"]?.stringValue { escape(tag: tag) }
    defer { free(held.block) }
    if let milliseconds = input["burnMs"]?.numberValue?.int64 { burnCPU(milliseconds: milliseconds) }
    if let kibibytes = input["logKiB"]?.numberValue?.int64 {
        for _ in 0..<(kibibytes + 3) / 4 { context.log("info", String(repeating: "x", count: 4000)) }
    }
    if let delay = input["exitAfterMs"]?.numberValue?.int64 {
        Task.detached {
            try? await Task.sleep(for: .milliseconds(delay))
            exit(0)
        }
    }
    if let gate = input["gate"]?.stringValue {
        close(open(gate + ".started", O_CREAT | O_WRONLY, 0o600))
        while access(gate, F_OK) != 0 { try await Task.sleep(for: .milliseconds(10)) }
    }
    if input["whoami"]?.boolValue == true { return ["pid": .number(JSONNumber(Int64(getpid()))), "runs": .number(JSONNumber(Int64(runs)))] }
    if let spend = input["spend"]?.numberValue, let credits = try? Credits(spend, field: "spend") {
        context.reportUsage(credits)
    }
    if let sleep = input["sleepMs"]?.numberValue?.int64, sleep > 0 {
        try await Task.sleep(for: .milliseconds(sleep))
    }
    // The first run (no marker yet) sleeps long; later ones do not.
    if let path = input["firstRunMarker"]?.stringValue, access(path, F_OK) != 0 {
        close(open(path, O_CREAT | O_WRONLY, 0o600))
        try await Task.sleep(for: .milliseconds(input["firstSleepMs"]?.numberValue?.int64 ?? 60_000))
    }
    if input["crash"]?.boolValue == true { abort() }
    if let calls = input["gateway"] { return try await callGateway(calls, context) }
    if let call = input["call"], let plugin = call["plugin"]?.stringValue,
        let credits = try? Credits(call["credits"]?.numberValue ?? JSONNumber(1), field: "credits")
    {
        do {
            let result = try await context.routine(RoutineCallParams(
                plugin: plugin, input: call["input"] ?? .null, credits: credits, memoryBytes: call["memoryBytes"]?.numberValue?.int64))
            return ["step": result.output, "stepCredits": result.credits.json, "heldMiB": held.json]
        } catch let error as RPCError {
            return ["stepError": .string(error.message), "verdict": error.data?["verdict"] ?? .null, "heldMiB": held.json]
        }
    }
    if let calls = input["calls"]?.arrayValue { return try await concurrently(calls, context) }
    if let path = input["failOnce"]?.stringValue, access(path, F_OK) != 0 {
        close(open(path, O_CREAT | O_WRONLY, 0o600))
        throw PluginError(message: "failing once")
    }
    if let message = input["fail"]?.stringValue { throw PluginError(message: message) }
    return input["output"] ?? ["spent": input["spend"] ?? 0, "input": input]
}

/// Runs every step at once, and answers their outputs in order.
func concurrently(_ calls: [JSONValue], _ context: RunContext) async throws -> JSONValue {
    try await withThrowingTaskGroup(of: (Int, JSONValue).self) { group in
        for (index, call) in calls.enumerated() {
            let params = RoutineCallParams(
                plugin: call["plugin"]?.stringValue ?? "", input: call["input"] ?? .null,
                credits: (try? Credits(call["credits"]?.numberValue ?? JSONNumber(1), field: "credits")) ?? .zero,
                timeMs: call["timeMs"]?.numberValue?.int64)
            group.addTask { (index, try await context.routine(params).output) }
        }
        var outputs = [JSONValue](repeating: .null, count: calls.count)
        for try await (index, output) in group { outputs[index] = output }
        return ["steps": .array(outputs)]
    }
}

/// Fresh memory, written to so that it is resident, kept until the run answers.
func hold(mebibytes: Int64) -> (block: UnsafeMutableRawPointer?, json: JSONValue) {
    guard mebibytes > 0, let block = malloc(Int(mebibytes) << 20) else { return (nil, 0) }
    memset(block, 1, Int(mebibytes) << 20)
    return (block, .number(JSONNumber(mebibytes)))
}

/// Spins until this process has used `milliseconds` more of CPU time.
func burnCPU(milliseconds: Int64) {
    func used() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
    let end = used() + milliseconds
    var spin = 0
    while used() < end {
        for _ in 0..<10_000 { spin &+= 1 }
    }
    withExtendedLifetime(spin) {}
}

/// A shell that starts `setsid sleep 3600` in the background and exits: the sleeper leaves
/// this process's session and is orphaned. Returns once the shell is gone.
func escape(tag: String) {
    func cStrings(_ strings: [String]) -> [UnsafeMutablePointer<CChar>?] {
        strings.map { string in string.withCString { strdup($0) } } + [nil]
    }
    let argv = cStrings(["/bin/sh", "-c", "setsid sleep 3600 </dev/null >/dev/null 2>&1 &"])
    let envp = cStrings(["HOSTILE_TAG=\(tag)", "PATH=/usr/bin:/bin"])
    var pid: pid_t = 0
    if posix_spawn(&pid, "/bin/sh", nil, nil, argv, envp) == 0 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
    for pointer in argv + envp { free(pointer) }
}

/// Gateway calls for `forMs`, one at a time: what came back, counted.
func callGateway(_ input: JSONValue, _ context: RunContext) async throws -> JSONValue {
    var call = GatewayCallParams(
        integration: input["integration"]?.stringValue ?? "", method: input["method"]?.stringValue ?? "GET",
        path: input["path"]?.stringValue ?? "/")
    call.query = input["query"]?.objectValue?.compactMapValues(\.stringValue) ?? [:]
    let end = ContinuousClock.now + .milliseconds(input["forMs"]?.numberValue?.int64 ?? 1000)
    var ok: Int64 = 0
    var failed: Int64 = 0
    var refused: [String: Int64] = [:]
    while ContinuousClock.now < end {
        do {
            let result = try await context.gateway(call)
            if result.status == 200 { ok += 1 } else { failed += 1 }
        } catch let error as RPCError {
            refused[error.data?["reason"]?.stringValue ?? "?", default: 0] += 1
            let wait = min(200, max(1, error.data?["retryAfterMs"]?.numberValue?.int64 ?? 10))
            try await Task.sleep(for: .milliseconds(wait))
        }
    }
    return [
        "ok": .number(JSONNumber(ok)), "failed": .number(JSONNumber(failed)),
        "refused": .object(refused.mapValues { .number(JSONNumber($0)) }),
    ]
}
