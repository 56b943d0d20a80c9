import Foundation
import PurserProtocol
import PurserRuntime
import PurserSandbox
import PurserTestSupport
import Synchronization
import Testing
import Glibc

/// The untrusted profile against hostile workers. Each case also runs what the wall keeps
/// out, where it can, under the trusted profile (or from the test itself), to show that the
/// check can fail.
@Suite("The untrusted sandbox holds", .timeLimit(.minutes(2)))
struct SandboxTests {
    /// Outside /tmp and /run (which the sandbox replaces wholesale), so that what hides the
    /// store and the gateway config is the hiding itself.
    let outside = "/var/tmp/purser-sandbox-test-" + UUID().uuidString

    func walls(_ level: SandboxLevel, environment: [String: String]) async throws -> RunReport {
        var runtime = try Runtime.withLedger(home: outside + "/home")
        runtime.hiddenPaths = [outside + "/gateway.yaml"]
        var request = Fixtures.hostile("walls", environment: environment)
        request.sandbox = level
        let report = try await run(request, runtime: runtime)
        #expect(try runtime.ledger!.store.verify().isEmpty)
        return report
    }

    @Test func noNetworkNoSocketsNoSupervisorFilesNoOtherProcesses() async throws {
        let server = try await HTTPTestServer.start()
        defer { server.stop() }
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: outside) }
        try "integrations: {}\n".write(toFile: outside + "/gateway.yaml", atomically: true, encoding: .utf8)
        try "anyone may read this\n".write(toFile: outside + "/public.txt", atomically: true, encoding: .utf8)
        let tmpSocket = try UnixListener(path: Fixtures.temporaryHome() + "/s.sock")
        let runSocket = try UnixListener(path: "/run/purser-test-\(getpid())-\(UUID().uuidString.prefix(8)).sock")
        let abstract = try UnixListener(path: "@purser-test-\(UUID().uuidString)")
        let store = outside + "/home/purser.db"
        let environment = [
            "HOSTILE_TCP": "127.0.0.1:\(server.port)", "HOSTILE_UNIX": [tmpSocket.path, runSocket.path, abstract.path].joined(separator: ":"),
            "HOSTILE_READ": ["/etc/hostname", outside + "/public.txt", store, outside + "/gateway.yaml"].joined(separator: ":"),
        ]
        // Outside addresses only from inside the sandbox: from the host they could hang.
        let outward = environment.merging(["HOSTILE_TCP_OUTSIDE": "1.1.1.1:80", "HOSTILE_UDP": "8.8.8.8:53"]) { $1 }
        let untrusted = try await walls(.untrusted, environment: outward)
        let trusted = try await walls(.trusted, environment: environment)
        let closed = try #require(untrusted.output?["results"])
        let open = try #require(trusted.output?["results"])
        #expect(closed["tcp outside"] == "ENETUNREACH")
        #expect(closed["udp"] == "ENETUNREACH")
        for wall in ["tcp", tmpSocket.path, runSocket.path, abstract.path, store, outside + "/gateway.yaml", outside + "/public.txt"] {
            #expect(open[wall] == "OK", "trusted, \(wall) is reachable: the check below can fail")
            #expect(closed[wall] != "OK" && closed[wall] != nil, "untrusted reached \(wall): \(closed[wall] ?? nil)")
        }
        #expect(closed["tcp"] == "ENETUNREACH")
        #expect(closed["/etc/hostname"] == "OK", "the allowed directories are there, read-only")
        #expect(closed["write /etc"] == "EROFS")
        #expect(untrusted.output?["uid"] == .number(JSONNumber(Int64(Isolation.sandboxUser.uid))))
        #expect(untrusted.output?["processes"] == 1, "it sees itself only")
        #expect((trusted.output?["processes"]?.numberValue?.int64 ?? 0) > 1)
        #expect(untrusted.sandbox?.applied == SandboxLevel.untrusted.wanted.sorted())
    }

    /// The secret is in the supervisor's environment; the worker looks for it everywhere it
    /// could be read from, and tries to trace the supervisor.
    @Test(arguments: SandboxLevel.allCases)
    func theSupervisorsSecretIsNeverFound(level: SandboxLevel) async throws {
        let name = "PURSER_TEST_STEAL_\(UUID().uuidString.prefix(8))"
        setenv(name, "hunter2", 1)
        defer { unsetenv(name) }
        var request = Fixtures.hostile("steal", environment: ["HOSTILE_SECRET_NAME": name, "HOSTILE_SUPERVISOR": "\(getpid())"])
        request.sandbox = level
        let report = try await run(request)
        let output = try #require(report.output)
        #expect(output["found"] == false, "\(output)")
        #expect(output["/proc/\(getpid())/environ"] != "OK")
        #expect(output["/proc/\(getpid())/mem"] != "OK")
        #expect(output["ptrace"] != "OK")
        if level == .untrusted {
            #expect(output["/proc/1/environ"] == "OK", "its own: it is its namespace's init")
            #expect(output["/proc/\(getpid())/environ"] == "ENOENT", "the supervisor is not in its /proc")
        }
    }

    /// 16 GiB reserved PROT_NONE and 2 GiB mapped writable, a few MiB used, under 256 MiB.
    @Test func aLargeReservationWithSmallUseRuns() async throws {
        let report = try await run(Fixtures.hostile("reserve", memory: 256 << 20))
        #expect(report.verdict == .ok)
        #expect(report.output == "OK")
        #expect(report.usage.memoryPeakBytes < 128 << 20)
    }

    /// A real JVM (a Java worker run from source) reserves gigabytes of address space for
    /// its heap, class space and code cache, and uses a little: under a 256 MiB reservation
    /// it runs, untrusted, because the memory cgroup limits use, not address space.
    @Test func aJavaWorkerRunsUnderASmallReservation() async throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/java/echo-java").path
        var request = RunRequest(
            executable: script, input: ["a": [1, 2]], credits: Credits(whole: 1), wallTimeMs: 60_000, memoryBytes: 256 << 20)
        request.timing.startupMs = 60_000
        let report = try await run(request)
        #expect(report.verdict == .ok, "\(report.message ?? "") \(report.stderrTail)")
        #expect(report.output == ["a": [1, 2]])
        #expect(report.usage.memoryPeakBytes < 256 << 20)
    }

    /// Stopped processes are still killed on time.
    @Test func aStopLoopIsKilledOnTime() async throws {
        let report = try await run(Fixtures.hostile("stoploop", timeMs: 500))
        #expect(report.verdict == .timeout)
    }

    /// A directory shared read-only is there at its own path, and only then; the root's own
    /// directories and the worker's /tmp cannot be shared.
    @Test func aSharedDirectoryIsReadableAndOnlyThen() async throws {
        try FileManager.default.createDirectory(atPath: outside + "/data", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: outside) }
        chmod(outside, 0o755)
        chmod(outside + "/data", 0o755)
        try "input\n".write(toFile: outside + "/data/in.txt", atomically: true, encoding: .utf8)
        var request = Fixtures.hostile("walls", environment: ["HOSTILE_READ": outside + "/data/in.txt"])
        let hidden = try await run(request)
        request.readOnlyPaths = [outside + "/data"]
        let shared = try await run(request)
        #expect(hidden.output?["results"]?[outside + "/data/in.txt"] == "ENOENT")
        #expect(shared.output?["results"]?[outside + "/data/in.txt"] == "OK")
        for path in ["/opt/x", "/tmp", "relative", outside + "/data/in.txt"] {
            request.readOnlyPaths = [path]
            await #expect(throws: RuntimeError.self) { try await Runtime(home: Fixtures.temporaryHome()).exec(request) }
        }
    }

    @Test func deniedSyscallsFailWithEPERMAndAreNamed() async throws {
        let report = try await run(Fixtures.hostile("syscalls"))
        let denied = ["keyctl", "bpf", "ptrace", "io_uring_setup", "mount", "unshare", "setns", "clone"]
        for name in denied { #expect(report.output?[name] == "EPERM", "\(name): \(report.output?[name] ?? nil)") }
        #expect(report.output?["clone3"] == "ENOSYS", "its flags cannot be read: glibc falls back to clone")
        #expect(report.output?["getpid"] == "OK")
        #expect(report.output?["/dev/null"] == "OK")
        #expect(report.output?["/dev/ptmx"] != "OK", "every mount is nodev but a few devices")
        #expect(report.verdict == .ok, "a denied call fails; the worker goes on")
        #expect(report.sandbox?.deniedSyscalls == denied.sorted())
        #expect(report.sandbox?.deniedCalls == denied.count, "clone3 is refused by the kernel alone")
        #expect(report.sandbox?.deniedCallsCapped == false)

        var trusted = Fixtures.hostile("syscalls")
        trusted.sandbox = .trusted
        let unfiltered = try await run(trusted)
        #expect(unfiltered.output?["keyctl"] != "EPERM", "without the filter keyctl answers for itself")
        #expect(unfiltered.sandbox?.deniedSyscalls == [])
    }

    @Test func aSparseFileIsRefusedAndFillingTheDirectoryStopsAtItsCap() async throws {
        let sparse = try await run(Fixtures.hostile("sparse"))
        #expect(sparse.output == "EFBIG")
        let fill = try await run(Fixtures.hostile("fill", memory: 512 << 20))
        let bytes = try #require(fill.output?["bytes"]?.numberValue?.int64)
        #expect(bytes <= Int64(Isolation.defaultWorkingDirectoryBytes))
        #expect(bytes >= Int64(Isolation.defaultWorkingDirectoryBytes) - (2 << 20))
        #expect(fill.output?["error"] == "ENOSPC" || fill.output?["error"] == "EFBIG")
    }

    @Test func leakedFDsStopAtTheLimit() async throws {
        let report = try await run(Fixtures.hostile("fdleak"))
        #expect(report.output?["error"] == "EMFILE", "\(report.verdict): \(report.message ?? "") \(report.stderrTail)")
        #expect(report.output?["opened"] == 1021, "1024 less stdio")
    }

    /// A setuid-root copy of id(1) prints the worker's own uid: exec gains nothing. The copy
    /// goes under /opt, one of the directories the worker's root is made of.
    @Test func aSetuidBinaryGainsNothing() async throws {
        let directory = "/opt/purser-setuid-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let id = directory + "/id"
        try FileManager.default.copyItem(atPath: "/usr/bin/id", toPath: id)
        chmod(directory, 0o755)
        #expect(chmod(id, 0o4755) == 0)
        let report = try await run(Fixtures.hostile("setuid", environment: ["HOSTILE_EXEC": id]))
        #expect(report.output == .string("\(Isolation.sandboxUser.uid)"))
    }

    /// Every process forks forever: the pids limit stops it, the wall time ends it, nothing
    /// of it survives (checked by `run`), and the supervisor runs the next worker as usual.
    @Test func aForkBombEndsAtItsLimitsAndLeavesNothing() async throws {
        var request = Fixtures.hostile("forkbomb", timeMs: 1_500)
        request.maxProcesses = 64
        let report = try await run(request)
        #expect(report.verdict == .timeout)
        let after = try await run(Fixtures.hostile("echo", input: "still here"))
        #expect(after.output == "still here")
    }

    @Test func aHostWithoutALayerRefusesUnlessADowngradeIsAllowed() async throws {
        var runtime = Runtime(home: Fixtures.temporaryHome())
        runtime.host = HostSupport.current.without([.network, .seccomp])
        let request = Fixtures.hostile("syscalls")
        do {
            _ = try await runtime.exec(request)
            Issue.record("a run without its network namespace and filter was not refused")
        } catch {
            #expect(error.code == .sandbox)
            #expect(error.message.contains("network: switched off by configuration"))
            #expect(error.message.contains("seccomp: switched off by configuration"))
            #expect(error.message.contains("--allow-degraded"))
        }
        var degraded = request
        degraded.allowDegraded = true
        let notices = Mutex<[String]>([])
        let report = try await runtime.exec(degraded) { event in
            if case .notice(let text) = event { notices.withLock { $0.append(text) } }
        }
        #expect(report.verdict == .ok)
        #expect(report.sandbox?.notEnforced == [.network, .seccomp])
        #expect(report.sandbox?.applied.contains(.network) == false)
        #expect(report.output?["keyctl"] != "EPERM", "the filter really was off")
        #expect(report.sandbox?.deniedSyscalls == [])
        #expect(notices.withLock { $0 }.contains("sandbox downgraded: network, seccomp not enforced"))
    }

    /// The hostile cases again on a host with every optional layer switched off: the same
    /// verdicts, nothing left behind, and each report naming what was not enforced.
    /// Runs that end by themselves get time enough not to be cut short on a loaded machine.
    @Test(arguments: [
        ("loop", Verdict.timeout), ("membomb", .memoryLimit), ("ignoreterm", .timeout), ("grandchild_hang", .timeout),
        ("flood", .protocolViolation), ("forkbomb", .timeout), ("stoploop", .timeout), ("crashrun", .crashed),
    ])
    func verdictsHoldOnADegradedHost(mode: String, verdict: Verdict) async throws {
        let timeMs: Int64 = verdict == .timeout ? 700 : 20_000
        let off: Set<SandboxLayer> = [.network, .pidNamespace, .mountNamespace, .seccomp, .unprivilegedUser]
        var runtime = Runtime(home: Fixtures.temporaryHome())
        runtime.host = HostSupport.current.without(off)
        var request = Fixtures.hostile(mode, timeMs: timeMs, memory: 64 << 20)
        request.maxProcesses = 64
        request.allowDegraded = true
        let report = try await run(request, runtime: runtime)
        #expect(report.verdict == verdict)
        #expect(report.sandbox?.notEnforced == off.sorted())
        #expect(report.sandbox?.applied == [.memoryCgroup, .pidsCgroup, .cpuCgroup])
    }

    @Test func trustedPluginsOptOutVisibly() async throws {
        var request = Fixtures.hostile("echo")
        request.sandbox = .trusted
        let report = try await run(request)
        let sandbox = try #require(report.sandbox)
        #expect(sandbox.level == .trusted)
        #expect(sandbox.optedOut == [.network, .pidNamespace, .mountNamespace, .seccomp, .unprivilegedUser])
        #expect(sandbox.notEnforced == [])
    }
}

/// A listening Unix socket at `path`, removed when the value goes.
final class UnixListener: Sendable {
    let path: String
    private let fd: Int32

    /// "@name" is an abstract socket (in this network namespace, not the filesystem).
    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            _ = path.utf8CString.withUnsafeBytes { raw.copyMemory(from: $0) }
            if path.hasPrefix("@") { raw[0] = 0 }
        }
        let length = path.hasPrefix("@") ? MemoryLayout<sa_family_t>.size + path.utf8.count : MemoryLayout<sockaddr_un>.size
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(length)) }
        }
        guard bound == 0, listen(fd, 8) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        if !path.hasPrefix("@") { chmod(path, 0o777) }
    }

    deinit {
        close(fd)
        if !path.hasPrefix("@") { unlink(path) }
    }
}
