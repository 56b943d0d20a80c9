import Glibc

/// A cgroup v1 memory group per run: the run's memory limit, its true peak, and whether
/// the OOM killer acted. (cgroup v2's memory controller comes with the full sandbox.)
final class MemoryCgroup: Sendable {
    let path: String
    let procsFD: Int32
    /// The group's OOM-kill count when this run took it.
    private let oomKillsBefore: Int
    var description: String { "memory-cgroup1:\(path)" }

    private init(path: String, procsFD: Int32, oomKillsBefore: Int) {
        self.path = path
        self.procsFD = procsFD
        self.oomKillsBefore = oomKillsBefore
    }

    static let base: String? = {
        guard let base = CgroupHierarchy.base(controller: "memory") else { return nil }
        return access(base + "/cgroup.procs", W_OK) == 0 ? base : nil
    }()

    private static let pool = GroupPool<MemoryCgroup>(capacity: 64)

    /// An emptied group from the pool or a new one, with its limit set and its peak reset.
    static func take(limitBytes: UInt64?) -> MemoryCgroup? {
        guard let base else { return nil }
        let reused = pool.take()
        // A group whose limit did not take would enforce nothing: better none, and the
        // caller falls back to RLIMIT_DATA at the full limit.
        guard let group = PooledGroup.open(base: base, reused: reused.map { ($0.path, $0.procsFD) }, configure: { path in
            // Lift the swap limit first: it may never be below the memory limit.
            writeFile(path + "/memory.memsw.limit_in_bytes", "-1")
            let limited = writeFile(path + "/memory.limit_in_bytes", limitBytes.map { "\($0)" } ?? "-1")
            if let limitBytes { writeFile(path + "/memory.memsw.limit_in_bytes", "\(limitBytes)") }
            writeFile(path + "/memory.max_usage_in_bytes", "0")
            return limited
        }) else { return nil }
        return MemoryCgroup(path: group.path, procsFD: group.procsFD, oomKillsBefore: oomKills(at: group.path))
    }

    func peakBytes() -> Int64 {
        Int64(readSmallFile(path + "/memory.max_usage_in_bytes")?.trimmingNewline() ?? "") ?? 0
    }

    var outOfMemory: Bool { Self.oomKills(at: path) > oomKillsBefore }

    private static func oomKills(at path: String) -> Int {
        guard let text = readSmallFile(path + "/memory.oom_control") else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("oom_kill ") {
            return Int(line.dropFirst("oom_kill ".count)) ?? 0
        }
        return 0
    }

    func release() {
        // Drop what the last run left charged (page cache), so the next peak is its own.
        PooledGroup.release(path: path, procsFD: procsFD) {
            writeFile(path + "/memory.force_empty", "0") && Self.pool.give(self)
        }
    }
}
