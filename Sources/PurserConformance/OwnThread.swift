import Glibc

/// Runs `work` on a thread of its own, which ends with it; the caller's task waits without
/// holding a thread. The checks wait on pipes for seconds: not on Swift's cooperative pool,
/// and not on Dispatch's, which on Linux adds threads slowly when its threads block, while
/// every worker session of a runtime in the same process runs its pipes and timers there
/// (see `StoreThreads`).
func onThreadOfItsOwn<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let start = Unmanaged.passRetained(ThreadBody { continuation.resume(returning: work()) })
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, { argument in
            Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue().body()
            return nil
        }, start.toOpaque())
        guard status == 0 else {
            // No thread to be had: the work is still done, here, holding this one.
            start.takeRetainedValue().body()
            return
        }
        pthread_detach(thread)
    }
}

private final class ThreadBody: Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}
