import Glibc

/// A run's pids group: at most `limit` processes and threads in the run at once, so a fork
/// bomb stops at the limit instead of filling the host's process table. The run's own
/// cgroup v2 group where that hierarchy has the pids controller, else a v1 group of its own.
/// A step's group is inside its caller's: the caller's limit counts its steps' processes.
final class PidsCgroup: CgroupDirectory {
    let path: String
    /// -1 for v2: the worker joins the run group, which is this group.
    let procsFD: Int32
    /// The caller's group, for a step's v1 group.
    private let parent: PidsCgroup?
    let children = ChildGroups()
    var description: String { "pids-cgroup\(procsFD < 0 ? 2 : 1):\(path)" }

    private init(path: String, procsFD: Int32, parent: PidsCgroup? = nil) {
        self.path = path
        self.procsFD = procsFD
        self.parent = parent
    }

    static func take(limit: Int, runGroup: (any RunGroup)?, parent: PidsCgroup? = nil) -> PidsCgroup? {
        if let group = runGroup as? CgroupV2Group, CgroupV2Group.controllers.contains("pids") {
            return writeFile(group.path + "/pids.max", "\(limit)") ? PidsCgroup(path: group.path, procsFD: -1) : nil
        }
        // A v2 parent is the caller's run group: this run's is already inside it.
        return take(limit: limit, parent: parent.flatMap { $0.procsFD >= 0 ? $0 : nil })
    }

    static let base: String? = {
        guard let base = CgroupHierarchy.base(controller: "pids") else { return nil }
        return access(base + "/cgroup.procs", W_OK) == 0 ? base : nil
    }()

    private static let pool = GroupPool<PidsCgroup>(capacity: 64)

    static func drainPool() { pool.removeIdle() }

    /// An emptied group from the pool or a new one, with its limit set; nil where the host
    /// has no writable v1 pids hierarchy, or the limit did not take.
    private static func take(limit: Int, parent: PidsCgroup?) -> PidsCgroup? {
        guard let base else { return nil }
        let reused = parent == nil ? pool.take() : nil
        guard let group = PooledGroup.open(base: parent?.path ?? base, reused: reused.map { ($0.path, $0.procsFD) }, configure: { path in
            writeFile(path + "/pids.max", "\(limit)")
        }) else { return nil }
        parent?.children.add()
        return PidsCgroup(path: group.path, procsFD: group.procsFD, parent: parent)
    }

    /// Once the steps' groups inside it are gone. A group still charged for processes
    /// (zombies nobody has reaped yet, such as a fork bomb's orphans without a PID
    /// namespace) is not pooled: the next run would start short.
    func release() {
        guard procsFD >= 0 else { return } // the run group's own release handles it
        children.release(then: parent?.children) {
            PooledGroup.release(path: self.path, procsFD: self.procsFD) {
                self.parent == nil && readSmallFile(self.path + "/pids.current")?.trimmingNewline() == "0" && Self.pool.give(self)
            }
        }
    }
}
