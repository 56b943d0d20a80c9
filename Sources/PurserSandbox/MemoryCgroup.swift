import Glibc

/// A run's memory group: its limit (swap included), its true peak, and whether the OOM
/// killer acted. The run's own cgroup v2 group where that hierarchy has the memory
/// controller; else a cgroup v1 memory group of its own (this machine kind). A step's group
/// is inside its caller's, so the caller's limit holds its steps' memory too, and its peak
/// and OOM kills count theirs (both hierarchies charge a group's descendants to it).
final class MemoryCgroup: CgroupDirectory {
    let path: String
    /// -1 for v2: the worker joins the run group, which is this group.
    let procsFD: Int32
    let version: Int
    /// The caller's group, for a step's v1 group.
    private let parent: MemoryCgroup?
    /// v2: this run's own open `memory.peak`. A write resets the peak only for reads through
    /// the fd it went through (Linux 6.12), so the run reads its peak through the fd it reset.
    private let peakFD: Int32
    let children = ChildGroups()
    /// The group's OOM-kill count when this run took it.
    private let oomKillsBefore: Int
    var description: String { "memory-cgroup\(version):\(path)" }

    private init(path: String, procsFD: Int32, version: Int = 1, parent: MemoryCgroup? = nil, peakFD: Int32 = -1) {
        self.path = path
        self.procsFD = procsFD
        self.version = version
        self.parent = parent
        self.peakFD = peakFD
        self.oomKillsBefore = Self.oomKills(at: path, version: version)
    }

    /// The memory group for a run whose run group is `runGroup`, inside `parent` for a step;
    /// nil where the host has no usable memory controller, or the limit did not take. (A
    /// step's v2 group is inside its caller's because its run group is.)
    static func take(limitBytes: UInt64?, runGroup: (any RunGroup)?, parent: MemoryCgroup? = nil) -> MemoryCgroup? {
        if let group = runGroup as? CgroupV2Group, CgroupV2Group.controllers.contains("memory") {
            return takeV2(limitBytes: limitBytes, path: group.path)
        }
        return take(limitBytes: limitBytes, parent: parent?.version == 1 ? parent : nil)
    }

    private static func takeV2(limitBytes: UInt64?, path: String) -> MemoryCgroup? {
        guard writeFile(path + "/memory.max", limitBytes.map { "\($0)" } ?? "max") else { return nil }
        writeFile(path + "/memory.swap.max", "0")
        // Read-only before Linux 6.12; absent before 5.19.
        var peakFD = open(path + "/memory.peak", O_RDWR | O_CLOEXEC)
        if peakFD < 0 { peakFD = open(path + "/memory.peak", O_RDONLY | O_CLOEXEC) }
        let group = MemoryCgroup(path: path, procsFD: -1, version: 2, peakFD: peakFD)
        group.resetPeak()
        return group
    }

    static let base: String? = {
        guard let base = CgroupHierarchy.base(controller: "memory") else { return nil }
        return access(base + "/cgroup.procs", W_OK) == 0 ? base : nil
    }()

    private static let pool = GroupPool<MemoryCgroup>(capacity: 64)

    /// What a pooled group may keep charged from its last run (and so add to the next run's peak).
    static let leftoverBytes: UInt64 = 1 << 20

    static func drainPool() { pool.removeIdle() }

    /// An emptied v1 group from the pool or a new one (inside `parent` for a step), with its
    /// limit set and its peak reset.
    private static func take(limitBytes: UInt64?, parent: MemoryCgroup?) -> MemoryCgroup? {
        guard let base else { return nil }
        let reused = parent == nil ? pool.take() : nil
        // A group whose limit did not take would enforce nothing: better none, and the
        // caller falls back to RLIMIT_DATA at the full limit.
        guard let group = PooledGroup.open(base: parent?.path ?? base, reused: reused.map { ($0.path, $0.procsFD) }, configure: { path in
            // Lift the swap limit first: it may never be below the memory limit.
            writeFile(path + "/memory.memsw.limit_in_bytes", "-1")
            let limited = writeFile(path + "/memory.limit_in_bytes", limitBytes.map { "\($0)" } ?? "-1")
            if let limitBytes { writeFile(path + "/memory.memsw.limit_in_bytes", "\(limitBytes)") }
            writeFile(path + "/memory.max_usage_in_bytes", "0")
            return limited
        }) else { return nil }
        parent?.children.add()
        return MemoryCgroup(path: group.path, procsFD: group.procsFD, parent: parent)
    }

    /// The tree's peak since the group was taken or its peak last reset.
    func peakBytes() -> Int64 {
        let text = version == 2 ? readSmallFile(fd: peakFD) : readSmallFile(path + "/memory.max_usage_in_bytes")
        return Int64(text?.trimmingNewline() ?? "") ?? 0
    }

    /// Starts the peak over from what is in use now. Before Linux 6.12, v2's cannot be: a
    /// group is then not pooled (`CgroupV2Group.peakResets`), and a kept worker's peak
    /// counts from the worker's start.
    func resetPeak() {
        if version == 2 {
            _ = "0".withCString { pwrite(peakFD, $0, 1, 0) }
        } else {
            writeFile(path + "/memory.max_usage_in_bytes", "0")
        }
    }

    var outOfMemory: Bool { Self.oomKills(at: path, version: version) > oomKillsBefore }

    private static func oomKills(at path: String, version: Int) -> Int {
        guard let text = readSmallFile(path + (version == 2 ? "/memory.events" : "/memory.oom_control")) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("oom_kill ") {
            return Int(line.dropFirst("oom_kill ".count)) ?? 0
        }
        return 0
    }

    /// Once the steps' groups inside it are gone.
    func release() {
        guard version == 1 else {
            if peakFD >= 0 { close(peakFD) } // the run group's own release handles the rest
            return
        }
        children.release(then: parent?.children) { self.releaseNow() }
    }

    private func releaseNow() {
        // Drop what the last run left charged (page cache), so that the next peak is its own;
        // a little is left as it is: reclaiming it costs more than a short run's own setup.
        PooledGroup.release(path: path, procsFD: procsFD) {
            let left = UInt64(readSmallFile(path + "/memory.usage_in_bytes")?.trimmingNewline() ?? "") ?? .max
            return parent == nil && (left <= Self.leftoverBytes || writeFile(path + "/memory.force_empty", "0")) && Self.pool.give(self)
        }
    }
}
