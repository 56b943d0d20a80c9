import PurserFleet
public import PurserLedger
import PurserProtocol
public import PurserRuntime

/// What the handlers read and write: the same stores the CLI's commands use, every call
/// on the store's threads (a store call may wait, and the cooperative pool must not).
public struct APIStores: Sendable {
    let runtime: Runtime
    let fleet: any FleetStore
    let ledger: any LedgerStore

    public init(runtime: Runtime, fleet: any FleetStore) throws(APIStartError) {
        guard let ledger = runtime.ledger else { throw APIStartError("the API needs a ledger") }
        self.runtime = runtime
        self.fleet = fleet
        self.ledger = ledger.store
    }

    /// Runs a ledger call off the pool; its error as the API answers it.
    func call<T: Sendable>(_ work: @escaping @Sendable () throws(LedgerError) -> T) async throws(APIError) -> T {
        do throws(LedgerError) {
            return try await StoreThreads.shared.run(work)
        } catch {
            throw APIError(error)
        }
    }

    /// Runs a runtime call off the pool (a submission reads plugins and the job's checks).
    func call<T: Sendable>(file: String, _ work: @escaping @Sendable () throws(RuntimeError) -> T) async throws(APIError) -> T {
        let result = await StoreThreads.shared.run { () -> Result<T, RuntimeError> in
            do throws(RuntimeError) {
                return .success(try work())
            } catch {
                return .failure(error)
            }
        }
        do {
            return try result.get()
        } catch {
            throw APIError(error, file: file)
        }
    }
}
