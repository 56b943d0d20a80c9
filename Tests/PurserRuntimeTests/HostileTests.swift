import Foundation
import PurserProtocol
import PurserRuntime
import PurserSandbox
import PurserTestSupport
import Synchronization
import Testing

/// Runs a request with a fresh home and checks what every run must leave behind: nothing.
func run(_ request: RunRequest, home: String = Fixtures.temporaryHome()) async throws -> RunReport {
    try await run(request, runtime: Runtime(home: home))
}

/// Runs `request` and checks what every run must leave: no process of it alive (found by
/// its HOSTILE_TAG, whatever namespace or cgroup it was in), and no run directory with
/// anything in it. (Its cgroups and its emptied directory go back to pools, where another
/// test's run may already be using them.)
func run(_ request: RunRequest, runtime: Runtime) async throws -> RunReport {
    let report = try await runtime.exec(request)
    Janitor.finish()
    if let pid = report.pid { #expect(!Fixtures.isAlive(pid), "worker \(pid) outlived its run") }
    if let tag = request.environment["HOSTILE_TAG"] {
        #expect(Fixtures.processes(tagged: tag).isEmpty, "processes of the run outlived it")
    }
    let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: runtime.home + "/work")) ?? []
    for leftover in leftovers {
        let path = runtime.home + "/work/" + leftover
        let contents = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? ["(not a directory)"]
        #expect(contents.isEmpty, "run directory \(leftover) left with \(contents)")
        #expect(Fixtures.mode(path) == 0o700, "run directory \(leftover) left with mode \(String(Fixtures.mode(path), radix: 8))")
    }
    return report
}

@Suite("Well-behaved plugins", .timeLimit(.minutes(1)))
struct PluginTests {
    @Test func echoReturnsItsInput() async throws {
        let report = try await run(Fixtures.run(Fixtures.product("echo"), input: ["a": [1, "b", nil]], credits: 5))
        #expect(report.verdict == .ok)
        #expect(report.output == ["a": [1, "b", nil]])
        #expect(report.usage.credits == .zero)
        #expect(report.returned.credits == Credits(whole: 5))
        #expect(report.plugin?.pluginName == "echo")
        #expect(report.usage.memoryPeakBytes > 0)
        // The peak is the worker's, not the supervisor's high-water mark.
        #expect(report.usage.memoryPeakBytes < 200 << 20)
    }

    @Test func wordcountChargesWhatItReports() async throws {
        let report = try await run(Fixtures.run(Fixtures.product("wordcount"), input: ["text": "one two three\nfour"]))
        #expect(report.verdict == .ok)
        #expect(report.output?["words"] == 4)
        #expect(report.usage.credits == Credits(micros: 4_000))
        #expect(report.returned.credits == Credits(micros: 996_000))
    }

    @Test func pythonPluginSpeaksTheSameProtocol() async throws {
        let report = try await run(Fixtures.run(Fixtures.file("Plugins/shout/shout.py"), input: ["text": "quiet please"]))
        #expect(report.verdict == .ok, "\(report.message ?? "") \(report.stderrTail)")
        #expect(report.output == ["text": "QUIET PLEASE"])
        #expect(report.usage.credits == Credits(micros: 10_000))
    }

    @Test func printFromASwiftPluginGoesToStderrNotTheProtocol() async throws {
        let report = try await run(Fixtures.run(Fixtures.product("noisy"), input: ["k": "v"]))
        #expect(report.verdict == .ok)
        #expect(report.output == ["k": "v"])
        #expect(report.stderrTail.contains("noisy: starting up"))
        #expect(report.stderrTail.contains(#"noisy: got {"k":"v"}"#))
    }

    @Test func usageIsTheLargerOfNotificationsAndTotal() async throws {
        let report = try await run(Fixtures.hostile("usage"))
        #expect(report.verdict == .ok)
        #expect(report.usage.credits == Credits(whole: 1))
    }

    @Test func aWorkerErrorIsVerdictError() async throws {
        let report = try await run(Fixtures.run(Fixtures.product("wordcount"), input: 42))
        #expect(report.verdict == .error)
        #expect(report.error?.code == ErrorCode.invalidParams)
        #expect(report.output == nil)
    }
}

@Suite("Hostile plugins get the right verdict and leave nothing behind", .timeLimit(.minutes(1)))
struct HostileTests {
    @Test func infiniteLoopTimesOut() async throws {
        let report = try await run(Fixtures.hostile("loop", timeMs: 500))
        #expect(report.verdict == .timeout)
        #expect(report.returned.credits == Credits(whole: 10))
    }

    @Test func cpuBurnerHitsTheCPULimit() async throws {
        var request = Fixtures.hostile("cpu", timeMs: 30_000)
        request.cpuSeconds = 1
        let report = try await run(request)
        #expect(report.verdict == .cpuLimit)
        #expect(report.usage.cpuMs >= 500, "the CPU limit is 1 s; rusage ticks may round it down a little")
    }

    /// Time enough to fill 64 MiB on a loaded machine, or under software emulation.
    @Test func memoryBombHitsTheMemoryLimit() async throws {
        let report = try await run(Fixtures.hostile("membomb", timeMs: 60_000, memory: 64 << 20))
        #expect(report.verdict == .memoryLimit)
        #expect(report.usage.memoryPeakBytes <= 64 << 20)
    }

    @Test func sigtermIgnorerIsKilled() async throws {
        let report = try await run(Fixtures.hostile("ignoreterm", timeMs: 300))
        #expect(report.verdict == .timeout)
        #expect(report.exit?.signal == SIGKILL)
    }

    /// The grandchild is seen alive (by its tag) while the run goes on, so the check that
    /// none is left afterwards (in `run`) is one that can fail.
    @Test(arguments: [Containment.automatic, .processGroup], SandboxLevel.allCases)
    func setsidGrandchildDoesNotHoldUpTheRun(containment: Containment, level: SandboxLevel) async throws {
        var request = Fixtures.hostile("grandchild_hang", timeMs: 3_000)
        request.containment = containment
        request.sandbox = level
        let tag = request.environment["HOSTILE_TAG"]!
        let finished = Mutex(false)
        let running = Task {
            defer { finished.withLock { $0 = true } }
            return try await run(request)
        }
        // Watched from a thread of its own: a busy cooperative pool must not make the
        // watch miss the run it is watching.
        let seen = await offPool { () -> Int in
            var seen = 0
            while seen < 2, !finished.withLock({ $0 }) {
                usleep(10_000)
                seen = Fixtures.processes(tagged: tag).count
            }
            return seen
        }
        let report = try await running.value
        #expect(seen == 2, "the worker and its grandchild were never seen together")
        #expect(report.verdict == .timeout)
    }

    @Test(arguments: [Containment.automatic, .processGroup], SandboxLevel.allCases)
    func grandchildOfASuccessfulRunIsKilledToo(containment: Containment, level: SandboxLevel) async throws {
        var request = Fixtures.hostile("grandchild")
        request.containment = containment
        request.sandbox = level
        let report = try await run(request)
        #expect(report.verdict == .ok)
    }

    @Test(arguments: [("garbage", "after-garbage"), ("deepjson", "after-deep"), ("badutf8", "after-utf8")])
    func afewStrayLinesAreTolerated(mode: String, output: String) async throws {
        let report = try await run(Fixtures.hostile(mode))
        #expect(report.verdict == .ok)
        #expect(report.output == .string(output))
    }

    @Test func exitBeforeInitializeIsStartupFailed() async throws {
        let report = try await run(Fixtures.hostile("noinit"))
        #expect(report.verdict == .startupFailed)
        #expect(report.exit?.exitCode == 3)
    }

    @Test func wrongProtocolVersionIsStartupFailed() async throws {
        let report = try await run(Fixtures.hostile("badversion"))
        #expect(report.verdict == .startupFailed)
        #expect(report.message?.contains("99") == true)
    }

    @Test(arguments: ["exitrun", "crashrun"])
    func exitMidRunIsCrashed(mode: String) async throws {
        let report = try await run(Fixtures.hostile(mode))
        #expect(report.verdict == .crashed)
        #expect(report.returned.credits == Credits(whole: 10))
    }

    @Test func overReportingCreditsIsStopped() async throws {
        let report = try await run(Fixtures.hostile("overspend", credits: 5))
        #expect(report.verdict == .creditsExhausted)
        #expect(report.usage.credits == Credits(whole: 5), "never charged past the reservation")
        #expect(report.usage.reportedCredits > Credits(whole: 5))
        #expect(report.returned.credits == .zero)
    }

    @Test func userCancelIsCancelled() async throws {
        let request = Fixtures.hostile("sleep", environment: ["HOSTILE_SLEEP_MS": "60000"])
        let home = Fixtures.temporaryHome()
        let task = Task { try await run(request, home: home) }
        try await Task.sleep(for: .milliseconds(300))
        task.cancel()
        let report = try await task.value
        #expect(report.verdict == .cancelled)
    }

    @Test func theSupervisorIsStillFine() async throws {
        _ = try await run(Fixtures.hostile("flood"))
        let report = try await run(Fixtures.hostile("echo", input: "still here"))
        #expect(report.verdict == .ok)
        #expect(report.output == "still here")
    }
}

@Suite("The worker's world: environment, fds, limits, directory", .timeLimit(.minutes(1)))
struct IsolationTests {
    @Test func secretsInTheSupervisorsEnvironmentDoNotReachTheWorker() async throws {
        setenv("PURSER_TEST_SECRET", "hunter2-do-not-leak", 1)
        defer { unsetenv("PURSER_TEST_SECRET") }
        let report = try await run(Fixtures.hostile("env", environment: ["ALLOWED": "yes"]))
        #expect(report.verdict == .ok)
        let entries = report.output?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(entries.contains("ALLOWED=yes"))
        #expect(entries.contains { $0.hasPrefix("PATH=") })
        #expect(!entries.contains { $0.contains("hunter2") })
        #expect(!entries.contains { $0.hasPrefix("PURSER_TEST_SECRET") })
    }

    /// The run's pids cgroup stops forks at its limit (the worker counts as one); with a
    /// higher limit the same worker gets all 100 it asks for.
    @Test(arguments: [(40, 39), (512, 100)])
    func forksStopAtThePidsLimit(limit: Int, expected: Int) async throws {
        var request = Fixtures.hostile("forkmany")
        request.maxProcesses = limit
        let report = try await run(request)
        #expect(report.verdict == .ok, "\(report.message ?? "")")
        #expect(report.output == .number(JSONNumber(Int64(expected))), "\(report.containment)")
    }

    /// A worker of a root supervisor runs with no capabilities, and cannot read the
    /// supervisor's environment (where its secrets are) through /proc.
    @Test(arguments: SandboxLevel.allCases)
    func workersCannotReadTheSupervisorsEnvironment(level: SandboxLevel) async throws {
        var request = Fixtures.hostile("peek")
        request.sandbox = level
        let report = try await run(request)
        #expect(report.output?["environ"] == "denied")
        if geteuid() == 0 { #expect(report.output?["capEff"] == "0000000000000000") }
        // Without capabilities a root worker is already refused (the supervisor holds
        // capabilities it lacks); non-dumpable also covers a worker with the same uid and
        // the same (no) capabilities, as under a non-root supervisor.
        #expect(!Sandbox.supervisorIsDumpable)
    }

    /// A worker can never gain privileges by exec (a setuid binary runs as the worker).
    @Test func workersRunWithNoNewPrivs() async throws {
        let report = try await run(Fixtures.hostile("nnp"))
        #expect(report.output == "1")
    }

    @Test func onlyStdioIsOpen() async throws {
        let report = try await run(Fixtures.hostile("fds"))
        #expect(report.output == [0, 1, 2])
    }

    /// Untrusted files are capped at the private /tmp's size; trusted ones at 1 GiB.
    @Test(arguments: [(SandboxLevel.trusted, Int64(1) << 30), (.untrusted, Int64(Isolation.defaultWorkingDirectoryBytes))])
    func rlimitsAreSet(level: SandboxLevel, fileSize: Int64) async throws {
        var request = Fixtures.hostile("rlimits", memory: 128 << 20)
        request.cpuSeconds = 7
        request.sandbox = level
        let report = try await run(request)
        let limits = try #require(report.output)
        #expect(limits["cpu"] == 7)
        #expect(limits["core"] == 0)
        #expect(limits["nofile"] == 1024)
        #expect(limits["fsize"] == .number(JSONNumber(fileSize)))
        #expect((limits["data"]?.numberValue?.int64 ?? 0) >= 128 << 20)
    }

    /// A busy supervisor holds more files than a worker may open: the worker's limit is set
    /// once its fds are closed. (Before, a supervisor holding 1,100 fds could not start an
    /// untrusted worker: its seccomp listener's fd failed with EMFILE under the worker's
    /// 1,024, as a clean-clone run of the whole suite once did.)
    @Test func aSupervisorHoldingManyFilesStillStartsWorkers() async throws {
        // Where the process may not hold more than a worker may open (a soft limit of 1,024,
        // as in the cgroup-v2 VM), it is raised first; a hard limit that low cannot show it.
        var limit = rlimit()
        getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        guard limit.rlim_max >= 2_048 else { return }
        if limit.rlim_cur < 2_048 {
            var raised = limit
            raised.rlim_cur = 2_048
            try #require(setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0)
        }
        let held = (0..<1_100).map { _ in open("/dev/null", O_RDONLY | O_CLOEXEC) }
        defer { for fd in held where fd >= 0 { close(fd) } }
        try #require(held.allSatisfy { $0 >= 0 })
        let report = try await run(Fixtures.hostile("rlimits", memory: 128 << 20))
        #expect(report.verdict == .ok, "\(report.message ?? "")")
        #expect(report.output?["nofile"] == 1024, "the worker's own limit is as before")
    }

    /// Untrusted workers work in their own tmpfs at /tmp (see the sandbox suite). A trusted
    /// run's directory is emptied after it and kept for the next run, which must find it
    /// empty and 0700 whatever the last one left (a file, a directory, a symlink, mode 0777);
    /// shutdown removes it.
    @Test func theWorkingDirectoryIsPrivateAndEmptiedForTheNextRun() async throws {
        let runtime = try Runtime(home: Fixtures.temporaryHome())
        var request = Fixtures.hostile("cwd")
        request.sandbox = .trusted
        var directories: [String] = []
        for _ in 0..<3 {
            let report = try await run(request, runtime: runtime)
            let cwd = try #require(report.output?["cwd"]?.stringValue)
            #expect(cwd.hasPrefix(runtime.home + "/work/run-"))
            #expect(report.output?["home"]?.stringValue == cwd)
            #expect(report.output?["tmpdir"]?.stringValue == cwd)
            #expect(report.output?["found"] == [], "the run found its directory holding \(report.output?["found"] ?? nil)")
            #expect(report.output?["mode"] == 0o700)
            directories.append(cwd)
        }
        // Emptied directories are reused, not made anew (the pool is by parent directory,
        // so no other test's run takes this one).
        #expect(Set(directories).count == 1, "\(directories)")
        Janitor.shutDown()
        let left = (try? FileManager.default.contentsOfDirectory(atPath: runtime.home + "/work")) ?? []
        #expect(left.isEmpty, "\(left)")
    }

    @Test func anInputTooLargeForOneLineIsRefusedBeforeSpawning() async throws {
        var request = Fixtures.hostile("echo", input: .string(String(repeating: "x", count: 2000)))
        request.maxLineBytes = 1000
        await #expect(throws: RuntimeError.self) { try await Runtime(home: Fixtures.temporaryHome()).exec(request) }
    }
}

@Suite("Startup and supervisor death", .timeLimit(.minutes(1)))
struct LifecycleTests {
    @Test func aWorkerThatNeverAnswersInitializeIsStartupFailed() async throws {
        var request = RunRequest(
            executable: "/bin/sleep", input: nil, credits: Credits(whole: 1), wallTimeMs: 10_000, memoryBytes: 64 << 20)
        request.arguments = ["30"]
        request.timing = Fixtures.quickTiming
        request.timing.startupMs = 300
        let report = try await run(request)
        #expect(report.verdict == .startupFailed)
        #expect(report.message?.contains("did not answer initialize within 300 ms") == true, "\(report.message ?? "")")
        #expect(report.exit?.signal == SIGKILL)
    }

    /// Under the untrusted profile, the worker (its PID namespace's init) and its setsid
    /// grandchild both die with the supervisor. The worker never reads stdin after its run
    /// starts, so only the parent-death signal can end it.
    @Test func workersDieWithTheirSupervisor() async throws {
        let home = Fixtures.temporaryHome()
        let tag = UUID().uuidString
        let supervisor = Process()
        supervisor.executableURL = URL(fileURLWithPath: Fixtures.product("purser"))
        supervisor.arguments = [
            "exec", Fixtures.product("hostile"), "--env", "HOSTILE_MODE=grandchild_hang", "--env", "HOSTILE_TAG=\(tag)",
            "--time", "60s",
        ]
        supervisor.environment = ["PURSER_HOME": home, "PATH": "/usr/bin:/bin"]
        supervisor.standardOutput = FileHandle.nullDevice
        supervisor.standardError = FileHandle.nullDevice
        try supervisor.run()
        var seen: [Int32] = []
        for _ in 0..<500 where seen.count < 2 {
            seen = Fixtures.processes(tagged: tag)
            if seen.count < 2 { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(seen.count == 2, "the worker and its grandchild never ran")
        kill(supervisor.processIdentifier, SIGKILL)
        supervisor.waitUntilExit()
        var left = seen
        for _ in 0..<500 where !left.isEmpty {
            left = Fixtures.processes(tagged: tag)
            if !left.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(left.isEmpty, "\(left) outlived their supervisor")
    }
}

/// Floods take as long as the supervisor needs to parse megabytes of them: on a busy
/// machine (CI's two cores, with the fleet's hosts running beside) longer than a minute,
/// though 4 s alone. The run's own deadline is 2 minutes; the test's limit is above it.
@Suite("Floods from a worker", .timeLimit(.minutes(3)))
struct FloodTests {
    @Test(arguments: ["flood", "bigline", "pingflood"])
    func floodsAreProtocolViolations(mode: String) async throws {
        let report = try await run(Fixtures.hostile(mode, timeMs: 120_000))
        #expect(report.verdict == .protocolViolation)
        #expect(report.exit?.signal == SIGKILL)
    }
}
