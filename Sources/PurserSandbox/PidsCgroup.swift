import Glibc

/// A cgroup v1 pids group per run: at most `limit` processes and threads in the run at
/// once, so a fork bomb stops at the limit instead of filling the host's process table.
/// (With a cgroup v2 pids controller the full sandbox will use that instead.)
final class PidsCgroup: Sendable {
    let path: String
    let procsFD: Int32
    var description: String { "pids-cgroup1:\(path)" }

    private init(path: String, procsFD: Int32) {
        self.path = path
        self.procsFD = procsFD
    }

    static let base: String? = {
        guard let base = CgroupHierarchy.base(controller: "pids") else { return nil }
        return access(base + "/cgroup.procs", W_OK) == 0 ? base : nil
    }()

    private static let pool = GroupPool<PidsCgroup>(capacity: 64)

    /// An emptied group from the pool or a new one, with its limit set; nil where the host
    /// has no writable v1 pids hierarchy, or the limit did not take.
    static func take(limit: Int) -> PidsCgroup? {
        guard let base else { return nil }
        let reused = pool.take()
        let path = reused?.path ?? base + "/" + CgroupHierarchy.uniqueName()
        if reused == nil && mkdir(path, 0o755) != 0 { return nil }
        let limited = writeFile(path + "/pids.max", "\(limit)")
        let fd = reused?.procsFD ?? open(path + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
        guard fd >= 0, limited else {
            if fd >= 0 { close(fd) }
            removeDirectory(path)
            return nil
        }
        return PidsCgroup(path: path, procsFD: fd)
    }

    /// Whether a fork or clone in the run was refused at the limit.
    var limitReached: Bool {
        guard let text = readSmallFile(path + "/pids.events") else { return false }
        return text.split(separator: "\n").contains { $0.hasPrefix("max ") && $0 != "max 0" }
    }

    func release() {
        let empty = readSmallFile(path + "/cgroup.procs")?.isEmpty ?? true
        if empty && Self.pool.give(self) { return }
        close(procsFD)
        removeDirectory(path)
    }
}
