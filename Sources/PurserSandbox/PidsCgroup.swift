import Glibc

/// A run's pids group: at most `limit` processes and threads in the run at once, so a fork
/// bomb stops at the limit instead of filling the host's process table. The run's own
/// cgroup v2 group where that hierarchy has the pids controller, else a v1 group of its own.
final class PidsCgroup: CgroupDirectory {
    let path: String
    /// -1 for v2: the worker joins the run group, which is this group.
    let procsFD: Int32
    var description: String { "pids-cgroup\(procsFD < 0 ? 2 : 1):\(path)" }

    private init(path: String, procsFD: Int32) {
        self.path = path
        self.procsFD = procsFD
    }

    static func take(limit: Int, runGroup: (any RunGroup)?) -> PidsCgroup? {
        if let group = CgroupV2Group.limiting(runGroup), CgroupV2Group.controllers.contains("pids") {
            return writeFile(group.path + "/pids.max", "\(limit)") ? PidsCgroup(path: group.path, procsFD: -1) : nil
        }
        return take(limit: limit)
    }

    static let base: String? = {
        guard let base = CgroupHierarchy.base(controller: "pids") else { return nil }
        return access(base + "/cgroup.procs", W_OK) == 0 ? base : nil
    }()

    private static let pool = GroupPool<PidsCgroup>(capacity: 64)

    static func drainPool() { pool.removeIdle() }

    /// An emptied group from the pool or a new one, with its limit set; nil where the host
    /// has no writable v1 pids hierarchy, or the limit did not take.
    private static func take(limit: Int) -> PidsCgroup? {
        guard let base else { return nil }
        let reused = pool.take()
        guard let group = PooledGroup.open(base: base, reused: reused.map { ($0.path, $0.procsFD) }, configure: { path in
            writeFile(path + "/pids.max", "\(limit)")
        }) else { return nil }
        return PidsCgroup(path: group.path, procsFD: group.procsFD)
    }

    /// A group still charged for processes (zombies nobody has reaped yet, such as a fork
    /// bomb's orphans without a PID namespace) is not pooled: the next run would start short.
    func release() {
        guard procsFD >= 0 else { return } // the run group's own release handles it
        PooledGroup.release(path: path, procsFD: procsFD) {
            readSmallFile(path + "/pids.current")?.trimmingNewline() == "0" && Self.pool.give(self)
        }
    }
}
