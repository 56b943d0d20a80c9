import Dispatch
import Glibc
import Synchronization

/// Threads kept for store calls, which may wait: on SQLite's busy timeout, on a row another
/// client holds, on a PostgreSQL that went away (for the store retry window). Work queues
/// first in, first out, and waits for a thread when all are busy.
///
/// Not Swift's cooperative pool (two threads on a two-core machine: one wait would stall
/// every task), and not Dispatch's: on Linux, Dispatch adds threads slowly when its threads
/// block (over 10 s for 12 blocked in read()), and every worker session's pipes and timers
/// run on Dispatch queues. A wait here holds only these threads.
public final class StoreThreads: Sendable {
    /// Eight: twice the PostgreSQL connections (`PostgresDriver.poolSize`), so that while
    /// each connection is busy, as many calls are ready to take one the moment it is free;
    /// and as many SQLite transactions can share one group commit. More would only wait,
    /// each with a stack.
    public static let shared = StoreThreads(count: 8)

    private struct Queue {
        var items: [@Sendable () -> Void] = []
        var head = 0

        mutating func pop() -> (@Sendable () -> Void)? {
            guard head < items.count else { return nil }
            let item = items[head]
            head += 1
            if head == items.count {
                items.removeAll(keepingCapacity: true)
                head = 0
            }
            return item
        }
    }

    private let queue = Mutex(Queue())
    /// Counts queued items: a thread waits here, in the kernel, for the next one.
    private let ready = DispatchSemaphore(value: 0)

    public init(count: Int) {
        for _ in 0..<max(count, 1) { start() }
    }

    /// Runs `work` on one of the threads, after what was submitted before it.
    public func submit(_ work: @escaping @Sendable () -> Void) {
        queue.withLock { $0.items.append(work) }
        ready.signal()
    }

    /// Runs `work` on one of the threads; the caller's task waits without holding a thread.
    public func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            submit { continuation.resume(returning: work()) }
        }
    }

    public func run<T: Sendable>(_ work: @escaping @Sendable () throws(LedgerError) -> T) async throws(LedgerError) -> T {
        let result = await run { () -> Result<T, LedgerError> in
            do throws(LedgerError) {
                return .success(try work())
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private func serve() -> Never {
        while true {
            ready.wait()
            if let work = queue.withLock({ $0.pop() }) { work() }
        }
    }

    private func start() {
        let box = Unmanaged.passRetained(ThreadStart { [self] in self.serve() })
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, { argument in
            let start = Unmanaged<ThreadStart>.fromOpaque(argument!).takeRetainedValue()
            start.body()
        }, box.toOpaque())
        guard status == 0 else {
            box.release()
            fatalError("store threads: pthread_create: \(String(cString: strerror(status)))")
        }
        pthread_detach(thread)
    }
}

private final class ThreadStart: Sendable {
    let body: @Sendable () -> Never
    init(_ body: @escaping @Sendable () -> Never) { self.body = body }
}
