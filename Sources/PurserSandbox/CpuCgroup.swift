import Glibc

/// Where a run's CPU time is counted over its whole tree, every process it started
/// included, waited for or not: its cgroup v2 run group's `cpu.stat` (which every v2 group
/// has, whatever controllers are enabled), else a cgroup v1 cpuacct group of its own. A
/// step's group is inside its caller's, and both hierarchies count a group's descendants in
/// its total, so a caller's CPU time includes its steps'. RLIMIT_CPU, by contrast, holds
/// each process on its own.
final class CpuCgroup: CgroupDirectory {
    let path: String
    /// -1 for v2: the worker joins the run group, which is this group.
    let procsFD: Int32
    let version: Int
    /// The caller's group, for a step's v1 group.
    private let parent: CpuCgroup?
    let children = ChildGroups()
    /// The group's total when this run took it: a pooled v2 group's count goes on from its
    /// earlier runs.
    private let baseline: Int64
    var description: String { "cpu-cgroup\(version):\(path)" }

    private init(path: String, procsFD: Int32, version: Int, parent: CpuCgroup? = nil) {
        self.path = path
        self.procsFD = procsFD
        self.version = version
        self.parent = parent
        self.baseline = Self.total(path: path, version: version) ?? 0
    }

    /// The CPU group for a run whose run group is `runGroup`, inside `parent` for a step;
    /// nil where this host counts CPU time in no cgroup the supervisor may make.
    static func take(runGroup: any RunGroup, parent: CpuCgroup?) -> CpuCgroup? {
        // A run contained by process group on cgroup v2 still has a v2 group for its limits.
        if let group = CgroupV2Group.limiting(runGroup) {
            return total(path: group.path, version: 2) == nil ? nil : CpuCgroup(path: group.path, procsFD: -1, version: 2)
        }
        // A v2 parent is the caller's run group, which a step's run group is always inside.
        return takeV1(parent: parent.flatMap { $0.version == 1 ? $0 : nil })
    }

    static let base: String? = {
        guard let base = CgroupHierarchy.base(controller: "cpuacct") else { return nil }
        return access(base + "/cgroup.procs", W_OK) == 0 ? base : nil
    }()

    private static let pool = GroupPool<CpuCgroup>(capacity: 64)

    static func drainPool() { pool.removeIdle() }

    /// An emptied v1 group from the pool or a new one (inside `parent` for a step), its count
    /// started over.
    private static func takeV1(parent: CpuCgroup?) -> CpuCgroup? {
        guard let base else { return nil }
        let reused = parent == nil ? pool.take() : nil
        guard let group = PooledGroup.open(base: parent?.path ?? base, reused: reused.map { ($0.path, $0.procsFD) }, configure: { path in
            writeFile(path + "/cpuacct.usage", "0")
            return total(path: path, version: 1) != nil
        }) else { return nil }
        parent?.children.add()
        return CpuCgroup(path: group.path, procsFD: group.procsFD, version: 1, parent: parent)
    }

    /// CPU time the run's tree used since this run took the group, in nanoseconds.
    func usedNanoseconds() -> Int64? {
        Self.total(path: path, version: version).map { max(0, $0 - baseline) }
    }

    /// v2: "usage_usec 1234" in cpu.stat; v1: nanoseconds in cpuacct.usage.
    private static func total(path: String, version: Int) -> Int64? {
        if version == 1 { return readSmallFile(path + "/cpuacct.usage").flatMap { Int64($0.trimmingNewline()) } }
        guard let stat = readSmallFile(path + "/cpu.stat") else { return nil }
        for line in stat.split(separator: "\n") where line.hasPrefix("usage_usec ") {
            return Int64(line.dropFirst("usage_usec ".count)).map { $0 * 1000 }
        }
        return nil
    }

    /// Once the steps' groups inside it are gone.
    func release() {
        guard version == 1 else { return } // the run group's own release handles it
        children.release(then: parent?.children) {
            PooledGroup.release(path: self.path, procsFD: self.procsFD) { self.parent == nil && Self.pool.give(self) }
        }
    }
}
