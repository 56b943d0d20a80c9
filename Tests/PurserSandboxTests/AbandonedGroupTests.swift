import Foundation
@testable import PurserSandbox
import PurserTestSupport
import Testing

/// A dead supervisor's group is killed whole however its processes fork meanwhile, in each
/// kind of hierarchy: cgroup v2 (`cgroup.kill`), v1 pids (`pids.max` 0, then each member),
/// and v1 memory and cpuacct (each member, until none is left); nested groups (a step's,
/// inside its caller's) included. Then the groups are removed. A live supervisor's are not.
@Suite("Groups a dead supervisor left", .serialized, .timeLimit(.minutes(2)))
struct AbandonedGroupTests {
    enum Hierarchy: String, CaseIterable, Sendable {
        case v2, pids, memory, cpuacct

        var purserBase: String? {
            switch self {
            case .v2: CgroupV2Group.base
            case .pids: PidsCgroup.base
            case .memory: MemoryCgroup.base
            case .cpuacct: CpuCgroup.base
            }
        }

        /// A base of this test's own inside purser's, which the sweeps of other supervisors
        /// starting meanwhile (other tests') do not look into; removed when `body` returns.
        func withBase(_ body: (String) throws -> Void) throws {
            guard let purser = purserBase else { return }
            let base = purser + "/test-" + UUID().uuidString
            #expect(mkdir(base, 0o755) == 0)
            defer { rmdir(base) }
            try body(base)
        }
    }

    /// Someone this host knows to be dead: a process that has exited.
    func deadOwner() throws -> String {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        let me = try #require(SupervisorIdentity.current)
        return "\(child.processIdentifier).1.\(me.pidNamespace)"
    }

    /// A shell that forks a sleeper every few milliseconds, one sleeper that left its
    /// session and one that did not, all in `group`. (The two long sleepers make the three
    /// members a test waits for certain: counting on catching a 10 ms sleeper once failed.)
    func forkLoop(in group: String) throws -> Process {
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", "read x; setsid sleep 3600 & sleep 3600 & while :; do sleep 0.01; done"]
        let input = Pipe()
        shell.standardInput = input
        try shell.run()
        #expect(writeFile(group + "/cgroup.procs", "\(shell.processIdentifier)"), "cannot move the shell into \(group)")
        input.fileHandleForWriting.write(Data("go\n".utf8))
        return shell
    }

    @Test(arguments: Hierarchy.allCases)
    func aDeadSupervisorsGroupIsKilledWholeAndRemoved(hierarchy: Hierarchy) throws {
        try hierarchy.withBase { base in try killsWholeAndRemoves(hierarchy, base: base) }
    }

    func killsWholeAndRemoves(_ hierarchy: Hierarchy, base: String) throws {
        let owner = try deadOwner()
        let top = base + "/s\(owner)-1"
        let nested = top + "/s\(owner)-2"
        #expect(mkdir(top, 0o755) == 0 && mkdir(nested, 0o755) == 0)
        if hierarchy == .v2 { #expect(mkdir(nested + "/worker", 0o755) == 0) }
        let shell = try forkLoop(in: hierarchy == .v2 ? nested + "/worker" : nested)
        defer {
            // Whatever the sweep left (nothing, unless it failed).
            for pid in groupMembers(top) + [shell.processIdentifier] { kill(pid, SIGKILL) }
            shell.waitUntilExit()
            usleep(50_000)
            removeTree(top)
        }
        for _ in 0..<1000 where groupMembers(top).count < 3 { usleep(10_000) }
        let members = groupMembers(top)
        #expect(members.count >= 3, "the shell and its sleepers: \(members)")
        AbandonedGroups.clear(in: base)
        #expect(groupMembers(top).isEmpty)
        for pid in members { #expect(!Fixtures.isAlive(pid), "\(pid) of the dead supervisor's group survived") }
        #expect(access(top, F_OK) != 0, "\(top) was not removed")
    }

    @Test(arguments: Hierarchy.allCases)
    func aLiveSupervisorsGroupIsLeftAlone(hierarchy: Hierarchy) throws {
        try hierarchy.withBase { base in try leavesAlone(hierarchy, base: base) }
    }

    func leavesAlone(_ hierarchy: Hierarchy, base: String) throws {
        let me = try #require(SupervisorIdentity.current)
        let group = base + "/s\(me.local)-live\(UInt32.random(in: 0...UInt32.max))"
        #expect(mkdir(group, 0o755) == 0)
        defer { rmdir(group) }
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/bin/sleep")
        sleeper.arguments = ["3600"]
        try sleeper.run()
        defer {
            kill(sleeper.processIdentifier, SIGKILL)
            sleeper.waitUntilExit()
        }
        #expect(writeFile(group + "/cgroup.procs", "\(sleeper.processIdentifier)"))
        AbandonedGroups.clear(in: base)
        #expect(Fixtures.isAlive(sleeper.processIdentifier))
        #expect(access(group, F_OK) == 0)
        // Back to where it was, so that the group can go.
        let own = CgroupHierarchy.ownPath(controller: hierarchy == .v2 ? nil : hierarchy.rawValue) ?? "/"
        let mount = CgroupHierarchy.mountPoint(controller: hierarchy == .v2 ? nil : hierarchy.rawValue) ?? ""
        writeFile(mount + (own == "/" ? "" : own) + "/cgroup.procs", "\(sleeper.processIdentifier)")
    }
}
