import PurserLedger
import PurserSandbox

/// The ledger's `outcome` column as the runtime writes it: the one place a verdict becomes
/// the text on disk. A run's node closes with its verdict's name; a swarm's with `ok` or
/// `failed`. (The store writes `abandoned` and `reclaimed` itself.)
enum LedgerOutcome {
    static func of(_ verdict: Verdict) -> String { verdict.rawValue }

    static func swarm(allOK: Bool) -> String { allOK ? of(.ok) : "failed" }
}

extension BudgetStore {
    /// Closes a run's node with its verdict as the outcome.
    func settle(_ id: NodeID, usage: Usage, verdict: Verdict, holder: Holder?) throws(LedgerError) -> Settlement {
        try settle(id, usage: usage, outcome: LedgerOutcome.of(verdict), holder: holder)
    }
}
