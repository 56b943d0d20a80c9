import PurserCollections
import PurserHarness
import Testing

@Suite("LRU", .timeLimit(.minutes(1)))
struct LRUTests {
    @Test func aFullMapDropsTheLeastRecentlyUsedEntry() {
        var lru = LRU<String, Int>(capacity: 3)
        lru.set("a", 1)
        lru.set("b", 2)
        lru.set("c", 3)
        #expect(lru.get("a") == 1)
        let dropped = lru.set("d", 4)
        #expect(dropped?.key == "b" && dropped?.value == 2)
        #expect(lru.keys == ["c", "a", "d"])
        #expect(lru.get("b") == nil)
        #expect(lru.count == 3)
    }

    @Test func settingAKeyAgainReplacesItsValueAndMakesItNewest() {
        var lru = LRU<String, Int>(capacity: 2)
        lru.set("a", 1)
        lru.set("b", 2)
        #expect(lru.set("a", 10) == nil)
        #expect(lru.keys == ["b", "a"])
        lru.set("c", 3)
        #expect(lru.keys == ["a", "c"])
        #expect(lru.peek("a") == 10)
    }

    @Test func peekingLeavesTheOrderAlone() {
        var lru = LRU<Int, Int>(capacity: 2)
        lru.set(1, 1)
        lru.set(2, 2)
        #expect(lru.peek(1) == 1)
        lru.set(3, 3)
        #expect(lru.keys == [2, 3])
    }

    @Test func removingFreesItsPlace() {
        var lru = LRU<Int, String>(capacity: 3)
        for n in 1...3 { lru.set(n, "\(n)") }
        #expect(lru.remove(1) == "1")
        #expect(lru.remove(1) == nil)
        #expect(lru.set(4, "4") == nil)
        #expect(lru.keys == [2, 3, 4])
        #expect(lru.remove(3) == "3")
        #expect(lru.keys == [2, 4])
        lru.removeAll()
        #expect(lru.isEmpty && lru.keys.isEmpty && lru.get(2) == nil)
        lru.set(5, "5")
        #expect(lru.keys == [5])
    }

    @Test func aCapacityBelowOneKeepsOneEntry() {
        var lru = LRU<Int, Int>(capacity: 0)
        lru.set(1, 1)
        #expect(lru.set(2, 2)?.key == 1)
        #expect(lru.keys == [2] && lru.capacity == 1)
    }

    /// Thousands of random operations give the same answers, order and drops as a plain
    /// list kept in order of use. Stops at the first step that differs.
    @Test(arguments: [1, 2, 7, 64])
    func agreesWithAListInOrderOfUse(capacity: Int) {
        var lru = LRU<Int, Int>(capacity: capacity)
        var model: [(key: Int, value: Int)] = []
        var random = SplitMix(seed: UInt64(capacity))
        for step in 0..<3_000 {
            let key = Int(random.next() % UInt64(capacity * 2 + 1))
            let found = model.firstIndex { $0.key == key }
            let agrees: Bool
            switch random.next() % 4 {
            case 0:
                let expected = found.map { model.remove(at: $0) }
                if let expected { model.append(expected) }
                agrees = lru.get(key) == expected?.value
            case 1:
                agrees = lru.remove(key) == found.map { model.remove(at: $0).value }
            default:
                var expectedDrop: Int? = nil
                if let found {
                    model.remove(at: found)
                } else if model.count == capacity {
                    expectedDrop = model.removeFirst().key
                }
                model.append((key, step))
                agrees = lru.set(key, step)?.key == expectedDrop
            }
            guard agrees, lru.keys == model.map(\.key), lru.count == model.count else {
                Issue.record("step \(step): \(lru.keys) against \(model.map(\.key))")
                return
            }
        }
    }

    /// Many tasks at once on one shared map: every call sees a consistent map, and it never
    /// holds more than its capacity.
    @Test func aSharedMapStaysWholeUnderConcurrentUse() async {
        let shared = SharedLRU<Int, Int>(capacity: 50)
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<8 {
                group.addTask {
                    for n in 0..<2_000 {
                        let key = (n * 7 + worker) % 120
                        if let value = shared.get(key) { precondition(value == key * 3) }
                        shared.set(key, key * 3)
                        if n % 11 == 0 { shared.remove((key + 1) % 120) }
                    }
                }
            }
        }
        let keys = shared.keys
        #expect(keys.count == shared.count)
        #expect(Set(keys).count == keys.count)
        #expect(shared.count <= 50)
        for key in keys { #expect(shared.get(key) == key * 3) }
    }
}
