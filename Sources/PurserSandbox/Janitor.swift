import Dispatch
import Synchronization

/// Removes what a finished run leaves that holds no process any more (its empty cgroups,
/// its working directory) off the run's critical path; and, at start, what supervisors that
/// died left behind.
public enum Janitor {
    private static let queue = DispatchQueue(label: "purser.janitor")

    static func later(_ work: @escaping @Sendable () -> Void) {
        queue.async(execute: work)
    }

    /// Returns once everything handed over so far is removed (tests, shutdown).
    public static func finish() {
        queue.sync {}
    }

    /// At shutdown: `finish`, then remove the kept run directories and the idle pooled
    /// cgroups and network namespaces, so that nothing of this supervisor is left on the host.
    public static func shutDown() {
        finish()
        RunDirectory.drainPool()
        CgroupV2Group.drainPool()
        MemoryCgroup.drainPool()
        PidsCgroup.drainPool()
        CpuCgroup.drainPool()
        NetworkNamespaces.shared.drain()
    }

    /// At start, before any run and before the ledger reclaims holds: every process of a
    /// dead supervisor's runs that outlived it (a trusted run's escaped descendants) is
    /// killed with its cgroups, in every hierarchy this supervisor uses, and the groups are
    /// removed (once a process); then its run directories under `runDirectories` are removed
    /// (once per parent). Its network namespaces went with its last process, and it pooled
    /// nothing else that outlives it. Returns what could not be cleared.
    public static func clearDeadSupervisors(runDirectories parent: String) -> [String] {
        let groups = deadGroups
        let directories = clearedParents.withLock { cleared in
            if let left = cleared[parent] { return left }
            let left = RunDirectoryOwners.clearDead(under: parent).map { "run directory \($0)" }
            cleared[parent] = left
            return left
        }
        return groups + directories
    }

    /// Before the first run: starts this supervisor's `purser-watchdog`, which kills its
    /// runs' groups the moment it dies. Says, once, why none could be started where one
    /// should (then a trusted run's escaped descendants outlive a killed supervisor until
    /// the next start).
    public static func startWatchdog() -> String? {
        guard let problem = Watchdog.start() else { return nil }
        return watchdogTold.exchange(true, ordering: .relaxed) ? nil : problem
    }

    private static let watchdogTold = Atomic<Bool>(false)

    /// Making each base clears it (`CgroupHierarchy.base`); cgroup v2's `cgroup.kill` first.
    private static let deadGroups: [String] = {
        _ = (CgroupV2Group.base, PidsCgroup.base, MemoryCgroup.base, CpuCgroup.base)
        return AbandonedGroups.remaining().map { "cgroup \($0) (a process would not die)" }
    }()

    /// What could not be removed, by parent.
    private static let clearedParents = Mutex<[String: [String]]>([:])
}
