import Synchronization

/// A look at a run's worker from outside the run, while it runs: its pid on this host and
/// its memory peak so far. A fleet host puts one in each `RunRequest` it runs and reads
/// it at its heartbeat; nil before the worker is spawned and after its run ended.
public final class WorkerProbe: Sendable {
    private struct Attached: Sendable {
        var pid: Int32
        /// Reads the peak on the session's queue; nil once the run has ended.
        var peak: @Sendable () -> Int64?
    }

    private let attached = Mutex<Attached?>(nil)

    public init() {}

    /// The worker's pid and its run's memory peak so far, or nil. Blocks briefly on the
    /// run's queue: call it off Swift's cooperative pool.
    public func sample() -> (pid: Int32, memoryPeakBytes: Int64)? {
        // The closure is taken out first: the run's queue may be detaching under the lock.
        guard let current = attached.withLock({ $0 }), let peak = current.peak() else { return nil }
        return (current.pid, peak)
    }

    func attach(pid: Int32, peak: @escaping @Sendable () -> Int64?) {
        attached.withLock { $0 = Attached(pid: pid, peak: peak) }
    }

    func detach() {
        attached.withLock { $0 = nil }
    }
}
