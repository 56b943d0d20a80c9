import Dispatch
import PurserLedger

/// Where async code makes its store calls. A store call may wait: on SQLite's busy
/// timeout, on a PostgreSQL that went away (for the store retry window), or on another
/// caller doing either. A wait on Swift's cooperative pool, two threads on a two-core
/// machine, would stall every task; this queue's threads are Dispatch's own, which it
/// adds to as they block.
enum StoreThread {
    private static let queue = DispatchQueue(label: "purser.store", attributes: .concurrent)

    static func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: work()) }
        }
    }

    static func run<T: Sendable>(_ work: @escaping @Sendable () throws(LedgerError) -> T) async throws(LedgerError) -> T {
        let result = await run { () -> Result<T, LedgerError> in
            do throws(LedgerError) {
                return .success(try work())
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}
