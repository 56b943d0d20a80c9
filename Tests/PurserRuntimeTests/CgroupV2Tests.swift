import Foundation
import PurserProtocol
import PurserRuntime
import PurserTestSupport
import Testing

/// Where the memory and pids controllers are on cgroup v2 (most hosts: Debian 12, Ubuntu
/// 22.04+, Fedora; on this project's machines only inside `.ci/cgroup-v2`), a supervisor
/// gets them for its runs wherever it starts, also in a group that holds other processes,
/// as a systemd service's, a login session's or a container's group does.
@Suite("cgroup v2 delegation", .serialized, .timeLimit(.minutes(3)))
struct CgroupV2DelegationTests {
    /// The cgroup2 hierarchy's root, where it hands memory and pids to its children and
    /// this process may make groups (root).
    static let root: String? = {
        guard geteuid() == 0, let mountinfo = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return nil }
        for line in mountinfo.split(separator: "\n") where line.contains(" - cgroup2 ") {
            let mount = String(line.split(separator: " ")[4])
            let enabled = (try? String(contentsOfFile: mount + "/cgroup.subtree_control", encoding: .utf8)) ?? ""
            let words = enabled.split(whereSeparator: \.isWhitespace)
            return words.contains("memory") && words.contains("pids") ? mount : nil
        }
        return nil
    }()

    /// A `purser exec` of a memory bomb started in a group with a bystander process in it
    /// (the shell it was typed in, say) gets both controllers: the bystander moves to the
    /// group's leaf, alive. A second supervisor started from that leaf uses the same
    /// delegation instead of moving everyone one level deeper.
    @Test(.enabled(if: root != nil))
    func aSupervisorSharingItsGroupStillGetsMemoryAndPids() async throws {
        let group = try #require(Self.root) + "/purser-test-\(UUID().uuidString.prefix(8))"
        #expect(mkdir(group, 0o755) == 0)
        let bystander = Process()
        bystander.executableURL = URL(fileURLWithPath: "/bin/sleep")
        bystander.arguments = ["300"]
        try bystander.run()
        defer {
            // SIGKILL: the test process may hold SIGTERM blocked, and its children inherit that.
            kill(bystander.processIdentifier, SIGKILL)
            bystander.waitUntilExit()
            removeGroupTree(group)
        }
        let procs = try #require(FileHandle(forWritingAtPath: group + "/cgroup.procs"))
        try procs.write(contentsOf: Data("\(bystander.processIdentifier)".utf8))
        try procs.close()

        let first = try await membomb(startingIn: group)
        #expect(first.status == 14, "\(first.stdout) \(first.stderr)")
        let containment = try JSONParser.parse(first.stdout)["containment"]?.stringValue ?? ""
        #expect(containment.contains("memory-cgroup2:\(group)/purser/"), "\(containment)")
        #expect(containment.contains("pids-cgroup2:\(group)/purser/"), "\(containment)")
        #expect(Fixtures.isAlive(bystander.processIdentifier))
        let moved = try String(contentsOfFile: "/proc/\(bystander.processIdentifier)/cgroup", encoding: .utf8)
        #expect(moved.hasSuffix("/purser-supervisor\n"), "\(moved)")

        let second = try await membomb(startingIn: group + "/purser-supervisor")
        #expect(second.status == 14, "\(second.stdout) \(second.stderr)")
        #expect(try JSONParser.parse(second.stdout)["containment"]?.stringValue?.contains("memory-cgroup2:\(group)/purser/") == true)
        #expect(!FileManager.default.fileExists(atPath: group + "/purser-supervisor/purser-supervisor"))
    }

    private func membomb(startingIn group: String) async throws -> CommandResult {
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = Fixtures.temporaryHome()
        return try await runCommand("/bin/sh", [
            "-c", #"echo $$ > "$0/cgroup.procs" && exec "$@""#, group, Fixtures.product("purser"), "exec",
            Fixtures.product("hostile"), "--env", "HOSTILE_MODE=membomb", "--memory", "64MiB", "--json",
        ], environment: environment)
    }

    /// Child groups first; a group is busy until its last process is reaped.
    private func removeGroupTree(_ path: String) {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        for entry in entries {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path + "/" + entry, isDirectory: &isDirectory), isDirectory.boolValue {
                removeGroupTree(path + "/" + entry)
            }
        }
        for _ in 0..<200 where rmdir(path) != 0 && errno == EBUSY { usleep(10_000) }
    }
}

/// Run groups are pooled (where their peak can start over: cgroup v1, and v2 from Linux
/// 6.12, where a write to memory.peak resets it only for reads through the same fd).
@Suite("Pooled groups", .serialized, .timeLimit(.minutes(2)))
struct PooledGroupTests {
    /// A small run right after a big one, likely in the big one's group, reports its own peak.
    @Test func aRunsPeakIsItsOwnInAReusedGroup() async throws {
        let home = Fixtures.temporaryHome()
        // Time enough under software emulation (.ci/cgroup-v2).
        func scripted(_ input: JSONValue) -> RunRequest {
            var request = Fixtures.run(Fixtures.product("scripted"), input: input)
            request.wallTimeMs = 60_000
            return request
        }
        let big = try await run(scripted(["touchMiB": 96]), home: home)
        #expect(big.verdict == .ok)
        #expect(big.usage.memoryPeakBytes >= 96 << 20)
        for _ in 0..<3 {
            let small = try await run(scripted(["spend": 0]), home: home)
            #expect(small.verdict == .ok)
            #expect(small.usage.memoryPeakBytes < 48 << 20, "\(small.containment): \(small.usage.memoryPeakBytes)")
        }
    }
}
