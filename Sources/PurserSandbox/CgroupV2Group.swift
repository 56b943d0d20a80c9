import Glibc

/// A cgroup v2 group per run; `cgroup.kill` ends the whole tree in one write. The worker's
/// processes live in a leaf, `worker`, so that the group may hand its controllers down to
/// the groups its steps get inside it (a v2 group that does so may hold no process of its
/// own): the group's limits, peak, CPU time and kill then cover the run's whole tree.
final class CgroupV2Group: RunGroup, CgroupDirectory {
    let path: String
    /// The leaf's `cgroup.procs`.
    let procsFD: Int32
    /// The caller's group, for a step's.
    private let parent: CgroupV2Group?
    let children = ChildGroups()
    var description: String { "cgroup2:\(path)" }

    static let leaf = "worker"

    private init(path: String, procsFD: Int32, parent: CgroupV2Group?) {
        self.path = path
        self.procsFD = procsFD
        self.parent = parent
    }

    /// Where this supervisor may create run groups, or nil when cgroup v2 is not usable here.
    static let base: String? = {
        guard let base = CgroupHierarchy.base(controller: nil) else { return nil }
        // Probe: can we make a group here, and does it have cgroup.kill (Linux 5.14)?
        let probe = base + "/" + CgroupHierarchy.uniqueName()
        guard mkdir(probe, 0o755) == 0 else { return nil }
        let usable = access(probe + "/cgroup.kill", W_OK) == 0
        rmdir(probe)
        return usable ? base : nil
    }()

    /// The controllers run groups get here: memory and pids where this hierarchy has them
    /// (a host whose controllers all live in cgroup v2); on hosts that mount them as v1,
    /// the v1 groups serve instead (see `MemoryCgroup`, `PidsCgroup`).
    static let controllers: Set<String> = {
        guard let base else { return [] }
        let delegated = CgroupDelegation.enable(["memory", "pids"], in: String(base.dropLast("/purser".count)))
        for controller in delegated { writeFile(base + "/cgroup.subtree_control", "+" + controller) }
        let enabled = readSmallFile(base + "/cgroup.subtree_control")?.split(whereSeparator: { $0 == " " || $0 == "\n" }) ?? []
        return Set(enabled.map(String.init)).intersection(["memory", "pids"])
    }()

    /// Whether memory.peak can be reset (Linux 6.12): without that, a reused group would
    /// report an earlier run's peak, so such groups are not reused.
    static let peakResets: Bool = {
        guard let base, controllers.contains("memory") else { return true }
        let probe = base + "/" + CgroupHierarchy.uniqueName()
        guard mkdir(probe, 0o755) == 0 else { return false }
        defer { rmdir(probe) }
        return writeFile(probe + "/memory.peak", "0")
    }()

    /// The v2 group that holds a run's limits: its run group, or the one a run contained
    /// by process group joins for them.
    static func limiting(_ runGroup: (any RunGroup)?) -> CgroupV2Group? {
        runGroup as? CgroupV2Group ?? (runGroup as? ProcessGroupRunGroup)?.limits
    }

    private static let pool = GroupPool<CgroupV2Group>(capacity: 64)

    static func drainPool() { pool.removeIdle() }

    /// An empty group from the pool or a new one; nil where cgroup v2 is not usable. A
    /// step's group is made inside its caller's, `parent`, and never pooled.
    static func take(parent: CgroupV2Group? = nil) throws(SandboxError) -> CgroupV2Group? {
        guard let base else { return nil }
        if parent == nil, let group = pool.take() { return group }
        let path = (parent?.path ?? base) + "/" + CgroupHierarchy.uniqueName()
        do {
            try syscall("mkdir \(path)") { mkdir(path, 0o755) }
            try delegate(path)
            try syscall("mkdir \(path)/\(leaf)") { mkdir(path + "/" + leaf, 0o755) }
            let fd = try syscall("open \(path)/\(leaf)/cgroup.procs") { open(path + "/" + leaf + "/cgroup.procs", O_WRONLY | O_CLOEXEC) }
            parent?.children.add()
            return CgroupV2Group(path: path, procsFD: fd, parent: parent)
        } catch {
            // Undoing a half-made group: what cannot be removed is logged by `removeTree`.
            removeTree(path)
            throw SandboxError(code: .cgroupFailed, errno: error.errno, message: error.message)
        }
    }

    /// Enables the run groups' controllers for the groups inside `path` (its leaf and its
    /// steps'), so that a step's group has limits of its own within the run's.
    private static func delegate(_ path: String) throws(SandboxError) {
        guard !controllers.isEmpty else { return }
        let wanted = controllers.sorted()
        writeFile(path + "/cgroup.subtree_control", wanted.map { "+" + $0 }.joined(separator: " "))
        let enabled = readSmallFile(path + "/cgroup.subtree_control")?.split(whereSeparator: { $0 == " " || $0 == "\n" }) ?? []
        guard Set(enabled.map(String.init)).isSuperset(of: wanted) else {
            throw SandboxError(code: .cgroupFailed, message: "cannot enable \(wanted.joined(separator: " and ")) in \(path)")
        }
    }

    func killAll(leader: pid_t) {
        if !writeFile(path + "/cgroup.kill", "1") {
            // Without cgroup.kill: kill each member, repeatedly, since one may fork meanwhile.
            for _ in 0..<100 {
                let pids = groupMembers(path)
                if pids.isEmpty { break }
                for pid in pids { kill(pid, SIGKILL) }
            }
        }
    }

    /// Whether no process is left in the group or in any group inside it.
    func isEmpty(leader: pid_t) -> Bool {
        guard let events = readSmallFile(path + "/cgroup.events") else { return true }
        return events.contains("populated 0")
    }

    /// Once the steps' groups inside it are gone, a group goes back to the pool only when it
    /// is a run's own (not a step's), is empty, holds no charge for unreaped processes, and
    /// its memory peak can start over.
    func release() {
        children.release(then: parent?.children) { self.releaseNow() }
    }

    private func releaseNow() {
        let controllers = Self.controllers
        if controllers.contains("memory") { writeFile(path + "/memory.reclaim", "\(1 << 40)") }
        let reusable = parent == nil && isEmpty(leader: 0) && Self.peakResets
            && (!controllers.contains("pids") || readSmallFile(path + "/pids.current")?.trimmingNewline() == "0")
        if reusable && Self.pool.give(self) { return }
        close(procsFD)
        removeDirectory(path + "/" + Self.leaf) { killAll(leader: 0) }
        removeDirectory(path) { killAll(leader: 0) }
    }
}
