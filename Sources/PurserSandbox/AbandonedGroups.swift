import CPurserSys
import Glibc
import Synchronization

/// What dead supervisors left in one cgroup hierarchy. A group is named `s<owner>-<n>`
/// (`CgroupHierarchy.uniqueName`); one whose owner is certainly dead
/// (`SupervisorIdentity.isDead`) is killed whole (`purser_cgroup_kill_tree`: `cgroup.kill`
/// on v2; `pids.max` 0, then each member through a pidfd, on v1), and once empty removed,
/// deepest first (a step's groups are inside its caller's). A trusted run's escaped
/// descendants (setsid, double fork) are still in its groups, which is where they are found.
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
        // About ten seconds in all for a process stuck in the kernel, whose group the next
        // start tries again.
        let paths = CStringArray(dead)
        _ = purser_cgroup_kill_trees(paths.constPointer, Int32(paths.count), 2000)
        for group in dead { removeTree(group) }
        let remaining = dead.filter { access($0, F_OK) == 0 }
        left.withLock { $0 += remaining }
    }
}

/// The processes in the group at `path` and in every group inside it.
func groupMembers(_ path: String) -> [pid_t] {
    let own = readSmallFile(path + "/cgroup.procs", limit: 1 << 20)?.split(separator: "\n").compactMap { pid_t($0) } ?? []
    let inner = directoryEntries(path).filter { $0.isDirectory && $0.name != "." && $0.name != ".." }
    return own + inner.flatMap { groupMembers(path + "/" + $0.name) }
}
