import Glibc
import PurserConfig
import PurserLedger
import Synchronization

/// What the store says of its faults: each retry while it is away, each reconnect, each
/// give-up. A swarm turns them into `store` events of its stream; with nobody listening
/// they go to stderr as `[purser] ledger: …`, as the CLI's own notices do.
public final class StoreNotices: Sendable {
    private struct Listeners {
        var next = 0
        var handlers: [Int: @Sendable (String) -> Void] = [:]
    }

    private let listeners = Mutex(Listeners())

    /// Returns what `stopListening` takes.
    public func listen(_ handler: @escaping @Sendable (String) -> Void) -> Int {
        listeners.withLock { listeners in
            listeners.next += 1
            listeners.handlers[listeners.next] = handler
            return listeners.next
        }
    }

    public func stopListening(_ id: Int) {
        _ = listeners.withLock { $0.handlers.removeValue(forKey: id) }
    }

    func say(_ message: String) {
        let handlers = listeners.withLock { Array($0.handlers.values) }
        if handlers.isEmpty { StoreRetry.printNotice(message) }
        for handler in handlers { handler(message) }
    }

    /// How long a store that went away is waited for: `$PURSER_STORE_RETRY` ("30s",
    /// "500ms", "2m"; a bare number is seconds), by default 30 seconds.
    static func retryWindowMs() throws(RuntimeError) -> Int64 {
        guard let value = getenv("PURSER_STORE_RETRY"), value.pointee != 0 else { return StoreRetry.defaultWindowMs }
        let text = String(cString: value)
        guard let ms = Units.parseDuration(text) else {
            throw RuntimeError(code: .invalidRequest, message: "PURSER_STORE_RETRY=\(text): not a duration (30s, 500ms, 2m)")
        }
        return ms
    }
}
