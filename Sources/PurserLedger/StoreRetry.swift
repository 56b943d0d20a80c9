import Glibc

/// How long a call waits for a store that went away (a PostgreSQL restart, a failover),
/// and who hears about each retry. A store that is briefly away is normal operations: the
/// call reconnects, backing off, until `windowMs` has passed since the store was first
/// found away, and only then fails (`storeFailed`). Once it has failed, later calls try
/// once each and fail at once, until a reconnect succeeds.
public struct StoreRetry: Sendable {
    public static let defaultWindowMs: Int64 = 30_000

    public var windowMs: Int64
    /// Each retry, each reconnect and each give-up, in a line for an operator.
    public var onNotice: @Sendable (String) -> Void

    public init(windowMs: Int64 = defaultWindowMs, onNotice: @escaping @Sendable (String) -> Void = StoreRetry.printNotice) {
        self.windowMs = windowMs
        self.onNotice = onNotice
    }

    /// Where notices go when nobody asked for them: stderr, as the CLI prints its own.
    public static let printNotice: @Sendable (String) -> Void = { message in
        let line = "[purser] ledger: \(message)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }

    /// The pause before retry `attempt` (1, 2, …): 50 ms doubling to `capMs`, with jitter so
    /// that supervisors sharing a store do not knock on it together.
    static func pauseMs(attempt: Int, capMs: Int64 = 1_000) -> Int64 {
        let base = min(Int64(50) << min(attempt - 1, 10), capMs)
        return base / 2 + Int64.random(in: 0...(base / 2))
    }

    /// "1.5s", "250ms": for notices.
    static func format(ms: Int64) -> String {
        ms < 1000 ? "\(ms)ms" : "\(ms / 1000).\(ms % 1000 / 100)s"
    }
}
