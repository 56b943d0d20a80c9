import Dispatch

/// Removes what a finished run leaves that holds no process any more (its empty cgroups,
/// its working directory) off the run's critical path.
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
}
