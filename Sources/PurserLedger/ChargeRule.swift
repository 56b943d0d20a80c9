/// What closing a hold charges and gives back, in one place: the larger of what the
/// ledger recorded against the hold and what its user declares, never past the hold; the
/// rest goes back. Memory is held, not spent: `used` keeps its peak, and `returned` what
/// of the hold the peak left. (The PostgreSQL store runs the same rule in its server
/// function, `purser_settle` in `ServerFunctions`.)
public enum ChargeRule {
    public static func settle(cap: Resources, recorded: Resources = .zero, declared: Usage) -> (used: Resources, returned: Resources) {
        let used = Resources(
            credits: min(cap.credits, max(recorded.credits, declared.credits)),
            timeMs: min(cap.timeMs, max(recorded.timeMs, declared.timeMs)),
            memoryBytes: max(recorded.memoryBytes, declared.memoryPeakBytes))
        let returned = Resources(
            credits: cap.credits - used.credits, timeMs: cap.timeMs - used.timeMs,
            memoryBytes: max(0, cap.memoryBytes - used.memoryBytes))
        return (used, returned)
    }
}
