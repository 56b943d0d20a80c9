import CoreMetrics

/// What the store counts through swift-metrics' facade (`purser serve` renders it at
/// /metrics; elsewhere it goes nowhere). Labels are fixed sets: the store's kind, an error's code.
enum StoreMetrics {
    static let commit = "purser_store_commit_duration_seconds"
    static let denials = "purser_ledger_reserve_denials_total"
    static let reclaimed = "purser_ledger_reclaimed_holds_total"

    /// A COMMIT that began at `start` returned.
    static func committed(_ store: String, since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        Timer(label: commit, dimensions: [("store", store)]).recordNanoseconds(
            elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }

    /// A reserve refused (insufficient, frozen, …), or one that failed (the store away).
    static func denied(_ error: LedgerError) {
        Counter(label: denials, dimensions: [("reason", error.code.description)]).increment()
    }

    /// Holds closed because their holder's lease ended: returns them.
    static func reclaimed(_ settlements: [Settlement]) -> [Settlement] {
        if !settlements.isEmpty { Counter(label: reclaimed, dimensions: []).increment(by: settlements.count) }
        return settlements
    }
}
