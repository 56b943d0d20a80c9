import Synchronization

/// An `LRU` that threads share, behind a lock of its own. Every call takes the lock once,
/// for O(1) work.
public final class SharedLRU<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let entries: Mutex<LRU<Key, Value>>

    public init(capacity: Int) {
        entries = Mutex(LRU(capacity: capacity))
    }

    public var capacity: Int { entries.withLock { $0.capacity } }
    public var count: Int { entries.withLock { $0.count } }

    /// The value for `key`, which becomes the most recently used.
    public func get(_ key: Key) -> Value? {
        entries.withLock { $0.get(key) }
    }

    /// Sets `key` to `value`, as the most recently used; returns the entry dropped to make
    /// room, if one was.
    @discardableResult
    public func set(_ key: Key, _ value: Value) -> (key: Key, value: Value)? {
        entries.withLock { $0.set(key, value) }
    }

    @discardableResult
    public func remove(_ key: Key) -> Value? {
        entries.withLock { $0.remove(key) }
    }

    /// The keys from the least recently used to the most.
    public var keys: [Key] { entries.withLock { $0.keys } }
}
