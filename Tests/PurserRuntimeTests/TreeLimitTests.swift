import Foundation
import PurserLedger
import PurserProtocol
import PurserRuntime
import PurserSandbox
import PurserTestSupport
import Testing

/// A run's CPU and memory limits hold over its whole tree: every process its worker starts,
/// waited for or not, and every step it calls (`routine/call`), which runs inside its groups.
/// Each case runs under both containments where the host allows: here the cgroup v2 run group
/// counts CPU time (`cpu.stat`), and the process-group fallback a cgroup v1 cpuacct group.
@Suite("Limits hold over a run's whole tree", .serialized, .timeLimit(.minutes(3)))
struct TreeLimitTests {
    let home = Fixtures.temporaryHome()

    /// The process-group fallback counts CPU time in a cgroup v1 cpuacct group and limits
    /// memory in a v1 memory group: it is tried where the host mounts both (a host with
    /// cgroup v2 alone has neither, and there the run group counts and limits all).
    static let containments: [Containment] = {
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        let v1 = mounts.split(separator: "\n").filter { $0.contains(" - cgroup ") }
        func mounted(_ controller: String) -> Bool {
            v1.contains { $0.split(separator: " ").last?.split(separator: ",").contains(Substring(controller)) == true }
        }
        return mounted("memory") && mounted("cpuacct") ? [.automatic, .processGroup] : [.automatic]
    }()

    /// A runtime with the scripted fixture registered as "scripted", at `level`.
    func registered(_ level: SandboxLevel = .untrusted) async throws -> Runtime {
        let runtime = try Runtime.withLedger(home: home)
        var manifest = PluginManifest()
        manifest.trusted = level == .trusted
        _ = try await PluginRegistry(runtime: runtime).add(path: Fixtures.product("scripted"), name: "scripted", manifest: manifest)
        return runtime
    }

    func scripted(_ input: JSONValue, memory: Int64, containment: Containment, level: SandboxLevel = .untrusted) -> RunRequest {
        var request = Fixtures.run(Fixtures.product("scripted"), input: input, credits: 10)
        request.memoryBytes = memory
        request.wallTimeMs = 60_000
        request.containment = containment
        request.sandbox = level
        return request
    }

    // MARK: - CPU

    /// Eight processes that each stay under RLIMIT_CPU, together far over the run's limit.
    @Test(arguments: TreeLimitTests.containments, [false, true])
    func forkedProcessesShareTheRunsCPULimit(containment: Containment, detached: Bool) async throws {
        var request = Fixtures.hostile("cpufork", timeMs: 60_000, environment: ["HOSTILE_DETACH": detached ? "1" : "0"])
        request.cpuSeconds = 1
        request.containment = containment
        let report = try await run(request)
        #expect(report.verdict == .cpuLimit, "\(report.verdict): \(report.message ?? "") (\(report.usage.cpuMs) ms of CPU)")
        #expect(report.usage.cpuMs > 1000, "the tree used more than its second")
        #expect(report.sandbox?.applied.contains(.cpuCgroup) == true)
    }

    /// The report's CPU time is the tree's, grandchildren the worker could not wait for
    /// included (an untrusted worker, its PID namespace's init, reaps them as it dies; a
    /// trusted one leaves them to others).
    @Test(arguments: TreeLimitTests.containments, SandboxLevel.allCases)
    func theReportCountsTheCPUOfTheWholeTree(containment: Containment, level: SandboxLevel) async throws {
        var request = Fixtures.hostile(
            "cpufork", timeMs: 60_000, environment: ["HOSTILE_DETACH": "1", "HOSTILE_CHILDREN": "4", "HOSTILE_BURN_MS": "300"])
        request.containment = containment
        request.sandbox = level
        let report = try await run(request)
        #expect(report.verdict == .ok)
        #expect(report.output?["children"] == 4)
        // Each grandchild spun until its own CPU clock said 300 ms.
        #expect(report.usage.cpuMs >= 1200, "four grandchildren used 300 ms each: the report says \(report.usage.cpuMs) ms")
    }

    /// A step runs in its caller's groups: its CPU time counts against the caller's limit.
    @Test(arguments: TreeLimitTests.containments)
    func aStepsCPUTimeCountsAgainstItsCaller(containment: Containment) async throws {
        let runtime = try await registered()
        var request = scripted(
            ["call": ["plugin": "scripted", "input": ["burnMs": 5000], "credits": 1]], memory: 256 << 20, containment: containment)
        request.cpuSeconds = 1
        let report = try await runtime.exec(request)
        #expect(report.verdict == .cpuLimit, "\(report.verdict): \(report.message ?? "") (\(report.usage.cpuMs) ms of CPU) \(report.output ?? nil)")
        #expect(report.usage.cpuMs > 1000)
        #expect(try runtime.ledger!.store.verify().isEmpty)
    }

    /// The caller's reported CPU time includes its step's, counted after the step's group
    /// is gone.
    @Test(arguments: TreeLimitTests.containments)
    func aCallersCPUTimeIncludesItsSteps(containment: Containment) async throws {
        let runtime = try await registered()
        let input: JSONValue = ["call": ["plugin": "scripted", "input": ["burnMs": 600], "credits": 1]]
        let report = try await runtime.exec(scripted(input, memory: 256 << 20, containment: containment))
        #expect(report.verdict == .ok)
        #expect(report.output?["step"] != nil)
        #expect(report.usage.cpuMs >= 600, "the step spun until its own CPU clock said 600 ms: the caller says \(report.usage.cpuMs) ms")
    }

    // MARK: - Memory

    /// Each level holds 80 MiB and calls the next with its whole memory hold, four deep:
    /// under --memory 128MiB the tree never holds two of those at once, and it says why.
    @Test(arguments: TreeLimitTests.containments, SandboxLevel.allCases)
    func nestedStepsShareTheCallersMemory(containment: Containment, level: SandboxLevel) async throws {
        let runtime = try await registered(level)
        let memory: Int64 = 128 << 20
        var input: JSONValue = ["holdMiB": 80, "output": ["heldMiB": 80]]
        for _ in 0..<4 {
            input = ["holdMiB": 80, "call": ["plugin": "scripted", "input": input, "credits": 1, "memoryBytes": .number(JSONNumber(memory))]]
        }
        let report = try await runtime.exec(scripted(input, memory: memory, containment: containment, level: level))
        // Every level that answered held its 80 MiB until its step answered.
        var holding = 0
        var deepest = report.output
        while let value = deepest, value["heldMiB"] == 80 {
            holding += 1
            guard let step = value["step"] else { break }
            deepest = step
        }
        #expect(holding <= 1, "\(holding) levels held 80 MiB each at once under --memory 128MiB: \(report.output ?? nil)")
        let stepVerdict = deepest?["verdict"]?.stringValue
        #expect(report.verdict == .memoryLimit || stepVerdict == "memory_limit", "\(report.verdict), the step: \(stepVerdict ?? "none")")
        #expect(report.usage.memoryPeakBytes >= 80 << 20)
        #expect(report.usage.memoryPeakBytes <= memory + (1 << 20), "the tree's peak is within its limit")
        #expect(try runtime.ledger!.store.verify().isEmpty)
    }

    /// The caller's reported peak is its tree's: its own memory and its step's, held at once.
    @Test(arguments: TreeLimitTests.containments)
    func aCallersPeakIncludesItsSteps(containment: Containment) async throws {
        let runtime = try await registered()
        let step: JSONValue = ["holdMiB": 40, "output": ["heldMiB": 40]]
        let input: JSONValue = ["holdMiB": 40, "call": ["plugin": "scripted", "input": step, "credits": 1, "memoryBytes": .number(JSONNumber(128 << 20))]]
        let report = try await runtime.exec(scripted(input, memory: 256 << 20, containment: containment))
        #expect(report.verdict == .ok)
        #expect(report.output?["step"]?["heldMiB"] == 40)
        #expect(report.usage.memoryPeakBytes >= 80 << 20, "caller and step held 40 MiB each at once; peak \(report.usage.memoryPeakBytes)")
        #expect(report.usage.memoryPeakBytes <= 256 << 20)
        #expect(try runtime.ledger!.store.verify().isEmpty)
    }
}
