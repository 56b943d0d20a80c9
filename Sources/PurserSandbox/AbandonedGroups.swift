import CPurserSys
import Glibc
import Synchronization

/// What dead supervisors left in one cgroup hierarchy. A group is named `s<owner>-<n>`
/// (`CgroupHierarchy.uniqueName`); one whose owner is certainly dead
/// (`SupervisorIdentity.isDead`) is killed whole, and once empty removed, deepest first (a
/// step's groups are inside its caller's). A trusted run's escaped descendants (setsid,
/// double fork) are still in its groups, which is where they are found.
enum AbandonedGroups {
    /// The dead supervisors' groups still there after `clear` (a process that would not
    /// die, a group that would not go).
    static func remaining() -> [String] { left.withLock { $0 } }

    private static let left = Mutex<[String]>([])

    static func clear(in base: String) {
        var dead: [String] = []
        for entry in directoryEntries(base) where entry.isDirectory {
            guard entry.name.hasPrefix("s") else { continue }
            let owner = entry.name.dropFirst().prefix(while: { $0 != "-" })
            let path = base + "/" + entry.name
            if let identity = SupervisorIdentity(owner), identity.isDead {
                dead.append(path)
            } else if let pid = pid_t(owner), kill(pid, 0) != 0 && errno == ESRCH {
                // Named by an older purser with its pid alone, which cannot tell a pid of
                // another namespace: removed if empty, never killed.
                removeTree(path)
            }
        }
        guard !dead.isEmpty else { return }
        for group in dead { stopForks(group) }
        killUntilEmpty(dead)
        for group in dead { removeTree(group) }
        let remaining = dead.filter { access($0, F_OK) == 0 }
        left.withLock { $0 += remaining }
    }

    /// cgroup v2: `cgroup.kill` kills the whole tree at once, forks in flight included.
    /// cgroup v1 has no such file, and a run's processes are in no freezer group, but its
    /// pids group can stop them forking: `pids.max` 0 holds for every group inside it too.
    private static func stopForks(_ group: String) {
        if writeFile(group + "/cgroup.kill", "1") { return }
        writeFile(group + "/pids.max", "0")
    }

    /// Kills every member of the groups (and of the groups inside them) until none is left;
    /// gives up after about ten seconds (a process stuck in the kernel), leaving the rest for
    /// the next start.
    private static func killUntilEmpty(_ groups: [String]) {
        for _ in 0..<2000 {
            let pids = groups.flatMap(groupMembers)
            if pids.isEmpty { return }
            killMembers(pids, of: groups)
            usleep(5_000)
        }
    }

    /// Through pidfds, so that a pid reused after it was read is never signalled: a pidfd
    /// names one process, and it is signalled only if the pid is still a member once the
    /// pidfd is open.
    private static func killMembers(_ pids: [pid_t], of groups: [String]) {
        let handles = pids.map { ($0, purser_pidfd_open($0)) }.filter { $0.1 >= 0 }
        let members = Set(groups.flatMap(groupMembers))
        for (pid, pidfd) in handles {
            if members.contains(pid) { _ = purser_pidfd_signal(pidfd, SIGKILL) }
            close(pidfd)
        }
    }
}

/// The processes in the group at `path` and in every group inside it.
func groupMembers(_ path: String) -> [pid_t] {
    let own = readSmallFile(path + "/cgroup.procs", limit: 1 << 20)?.split(separator: "\n").compactMap { pid_t($0) } ?? []
    let inner = directoryEntries(path).filter { $0.isDirectory && $0.name != "." && $0.name != ".." }
    return own + inner.flatMap { groupMembers(path + "/" + $0.name) }
}
