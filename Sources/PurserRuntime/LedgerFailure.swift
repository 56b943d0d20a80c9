public import PurserLedger

extension RuntimeError {
    /// A ledger failure as the runtime's: the store failing is `.store` (exit 1, "the store
    /// is away"); the ledger refusing is `.ledger`. `context` leads the message.
    public init(_ error: LedgerError, context: String = "ledger") {
        self.init(code: error.code == .storeFailed ? .store : .ledger, message: "\(context): \(error)")
    }

    /// Runs a ledger call whose failure is the runtime's.
    public static func fromLedger<T>(_ body: () throws(LedgerError) -> T) throws(RuntimeError) -> T {
        do throws(LedgerError) {
            return try body()
        } catch {
            throw RuntimeError(error)
        }
    }
}
