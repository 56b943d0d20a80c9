import Dispatch
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

    /// The worker's pid and its run's memory peak so far, or nil (also when its run's queue
    /// is busy past `waitMs`). Blocks that long at most: call it off Swift's cooperative pool.
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

    /// How long a sample waits for its run's queue.
    static let waitMs = 50

    /// `read` run on `queue`, waited for `waitMs` at most: a busy run is skipped this time
    /// rather than holding up the host's pass over its runs.
    static func read(on queue: DispatchQueue, _ read: @escaping @Sendable () -> Int64?) -> Int64? {
        let answer = Answer()
        queue.async { answer.give(read()) }
        return answer.wait(ms: waitMs)
    }

    private final class Answer: Sendable {
        private let value = Mutex<Int64?>(nil)
        private let done = DispatchSemaphore(value: 0)

        func give(_ bytes: Int64?) {
            value.withLock { $0 = bytes }
            done.signal()
        }

        func wait(ms: Int) -> Int64? {
            guard done.wait(timeout: .now() + .milliseconds(ms)) == .success else { return nil }
            return value.withLock { $0 }
        }
    }
}
