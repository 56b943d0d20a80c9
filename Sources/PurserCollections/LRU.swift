/// A map of at most `capacity` entries that, when full, drops the entry used least
/// recently. Looking up, setting and removing are O(1): a dictionary from key to slot, and
/// the slots, in one array, doubly linked in order of use. A value type with no per-entry
/// allocation, so that it can sit inside the lock its user already holds; `SharedLRU` is
/// one behind a lock of its own.
public struct LRU<Key: Hashable, Value> {
    fileprivate struct Slot {
        var key: Key
        var value: Value
        /// The slot used just before this one, and just after (-1: none).
        var older: Int
        var newer: Int
    }

    public let capacity: Int
    private var slots: [Slot] = []
    private var index: [Key: Int] = [:]
    private var oldest = -1
    private var newest = -1

    /// At least one entry is kept, whatever `capacity` says.
    public init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    public var count: Int { slots.count }
    public var isEmpty: Bool { slots.isEmpty }

    /// The value for `key`, which becomes the most recently used.
    public mutating func get(_ key: Key) -> Value? {
        guard let slot = index[key] else { return nil }
        touch(slot)
        return slots[slot].value
    }

    /// The value for `key`, leaving the order of use as it is.
    public func peek(_ key: Key) -> Value? {
        index[key].map { slots[$0].value }
    }

    /// Sets `key` to `value`, as the most recently used; returns the entry dropped to make
    /// room, if one was.
    @discardableResult
    public mutating func set(_ key: Key, _ value: Value) -> (key: Key, value: Value)? {
        if let slot = index[key] {
            slots[slot].value = value
            touch(slot)
            return nil
        }
        var dropped: (key: Key, value: Value)? = nil
        if slots.count == capacity, oldest >= 0 {
            let slot = slots[oldest]
            dropped = (slot.key, slot.value)
            remove(slot.key)
        }
        slots.append(Slot(key: key, value: value, older: newest, newer: -1))
        let slot = slots.count - 1
        index[key] = slot
        link(slot)
        return dropped
    }

    @discardableResult
    public mutating func remove(_ key: Key) -> Value? {
        guard let slot = index.removeValue(forKey: key) else { return nil }
        unlink(slot)
        let last = slots.count - 1
        if slot != last { move(last, to: slot) }
        return slots.removeLast().value
    }

    public mutating func removeAll() {
        slots.removeAll()
        index.removeAll()
        oldest = -1
        newest = -1
    }

    /// The keys from the least recently used to the most.
    public var keys: [Key] {
        var keys: [Key] = []
        keys.reserveCapacity(slots.count)
        var slot = oldest
        while slot >= 0 {
            keys.append(slots[slot].key)
            slot = slots[slot].newer
        }
        return keys
    }

    private mutating func touch(_ slot: Int) {
        guard slot != newest else { return }
        unlink(slot)
        link(slot)
    }

    /// Makes an unlinked slot the newest.
    private mutating func link(_ slot: Int) {
        slots[slot].older = newest
        slots[slot].newer = -1
        if newest >= 0 { slots[newest].newer = slot } else { oldest = slot }
        newest = slot
    }

    private mutating func unlink(_ slot: Int) {
        let older = slots[slot].older
        let newer = slots[slot].newer
        if older >= 0 { slots[older].newer = newer } else { oldest = newer }
        if newer >= 0 { slots[newer].older = older } else { newest = older }
    }

    /// Swaps the linked slot `from` into the free place `to` (the array stays dense, so
    /// nothing removed is held on to), pointing its neighbours and its key at the new place.
    private mutating func move(_ from: Int, to: Int) {
        slots.swapAt(from, to)
        let older = slots[to].older
        let newer = slots[to].newer
        if older >= 0 { slots[older].newer = to } else { oldest = to }
        if newer >= 0 { slots[newer].older = to } else { newest = to }
        index[slots[to].key] = to
    }
}

extension LRU: Sendable where Key: Sendable, Value: Sendable {}
extension LRU.Slot: Sendable where Key: Sendable, Value: Sendable {}
