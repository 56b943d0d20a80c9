import Foundation
import PurserProtocol
import PurserRuntime
import PurserSandbox
import PurserTestSupport
import Synchronization
import Testing

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
        return try await run(request, runtime: runtime)
    }

    @Test func noNetworkNoSocketsNoSupervisorFilesNoOtherProcesses() async throws {
        let server = try HTTPTestServer()
        defer { server.stop() }
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: outside) }
        try "integrations: {}\n".write(toFile: outside + "/gateway.yaml", atomically: true, encoding: .utf8)
        try "anyone may read this\n".write(toFile: outside + "/public.txt", atomically: true, encoding: .utf8)
        let tmpSocket = try UnixListener(path: Fixtures.temporaryHome() + "/s.sock")
        let runSocket = try UnixListener(path: "/run/purser-test-\(getpid())-\(UUID().uuidString.prefix(8)).sock")
        let store = outside + "/home/purser.db"
        let environment = [
            "HOSTILE_TCP": "127.0.0.1:\(server.port)", "HOSTILE_UNIX": tmpSocket.path + ":" + runSocket.path,
            "HOSTILE_READ": [outside + "/public.txt", store, outside + "/gateway.yaml"].joined(separator: ":"),
        ]
        let untrusted = try await walls(.untrusted, environment: environment)
        let trusted = try await walls(.trusted, environment: environment)
        let closed = try #require(untrusted.output?["results"])
        let open = try #require(trusted.output?["results"])
        for wall in ["tcp", tmpSocket.path, runSocket.path, store, outside + "/gateway.yaml"] {
            #expect(open[wall] == "OK", "trusted, \(wall) is reachable: the check below can fail")
            #expect(closed[wall] != "OK" && closed[wall] != nil, "untrusted reached \(wall): \(closed[wall] ?? nil)")
        }
        #expect(closed["tcp"] == "ENETUNREACH")
        #expect(closed[outside + "/public.txt"] == "OK", "files nobody hides stay readable")
        #expect(closed["write /etc"] == "EROFS")
        #expect(untrusted.output?["uid"] == .number(JSONNumber(Int64(Isolation.sandboxUser.uid))))
        #expect(untrusted.output?["processes"] == 1, "it sees itself only")
        #expect((trusted.output?["processes"]?.numberValue?.int64 ?? 0) > 1)
        #expect(untrusted.sandbox?.applied == SandboxLayer.allCases)
    }

    @Test func deniedSyscallsFailWithEPERMAndAreNamed() async throws {
        let report = try await run(Fixtures.hostile("syscalls"))
        let denied = ["keyctl", "bpf", "ptrace", "io_uring_setup", "mount"]
        for name in denied { #expect(report.output?[name] == "EPERM", "\(name): \(report.output?[name] ?? nil)") }
        #expect(report.output?["getpid"] == "OK")
        #expect(report.verdict == .ok, "a denied call fails; the worker goes on")
        #expect(report.sandbox?.deniedSyscalls == denied.sorted())

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
        #expect(report.output?["error"] == "EMFILE")
        #expect(report.output?["opened"] == 1021, "1024 less stdio")
    }

    /// A setuid-root copy of id(1) prints the worker's own uid: exec gains nothing.
    @Test func aSetuidBinaryGainsNothing() async throws {
        let directory = outside + "-setuid"
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

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            _ = path.utf8CString.withUnsafeBytes { raw.copyMemory(from: $0) }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 8) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        chmod(path, 0o777)
    }

    deinit {
        close(fd)
        unlink(path)
    }
}
