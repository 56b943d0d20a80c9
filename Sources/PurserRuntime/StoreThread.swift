import PurserLedger

/// Where async code makes its store calls: the store's own threads (`StoreThreads`), never
/// Swift's cooperative pool or Dispatch's, which a store call that waits would stall.
enum StoreThread {
    static func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        await StoreThreads.shared.run(work)
    }

    static func run<T: Sendable>(_ work: @escaping @Sendable () throws(LedgerError) -> T) async throws(LedgerError) -> T {
        try await StoreThreads.shared.run(work)
    }
}
