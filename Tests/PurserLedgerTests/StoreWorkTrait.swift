import Dispatch
import Testing

/// Runs a suite's tests on threads of their own instead of Swift's cooperative pool.
///
/// These tests are store work written synchronously, as the store's callers are: each
/// call waits on an fsync, on PostgreSQL, or on a child process. On the cooperative pool
/// (two threads on two cores) a few such tests at once would stall every async test in
/// the process, and unrelated runs would pass their deadlines. The product keeps its
/// store calls off the pool the same way (`StoreThread` in the runtime); suites that test
/// async code must not use this trait, or it would hide that code blocking the pool.
struct StoreWorkTrait: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        try await withTaskExecutorPreference(StoreWorkExecutor.shared) { try await function() }
    }
}

extension Trait where Self == StoreWorkTrait {
    /// Runs the tests off the cooperative pool (see `StoreWorkTrait`).
    static var storeWork: Self { Self() }
}

/// A task executor on Dispatch's threads, which it adds to as they block.
final class StoreWorkExecutor: TaskExecutor {
    static let shared = StoreWorkExecutor()
    private let queue = DispatchQueue(label: "purser.tests.store-work", attributes: .concurrent)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
