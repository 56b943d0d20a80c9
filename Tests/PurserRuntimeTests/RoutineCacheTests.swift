import Foundation
import PurserLedger
import PurserProtocol
@testable import PurserRuntime
import PurserTestSupport
import Testing

/// The routine cache's memory tier keeps the results used most recently.
@Suite("Routine cache", .timeLimit(.minutes(1)))
struct RoutineCacheTests {
    /// A full cache that takes one more result drops the one used least recently: here the
    /// second one remembered, since the first was looked up since. Not an arbitrary one.
    @Test func aFullCacheDropsTheLeastRecentlyUsedResult() throws {
        let home = Fixtures.temporaryHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let cache = RoutineCache(store: try SQLiteLedger(path: home + "/purser.db"))
        for n in 0..<RoutineCache.capacity { cache.remember("k\(n)", .number(JSONNumber(n)), persist: false) }
        #expect(cache.lookUp("k0") != nil)
        cache.remember("new", "value", persist: false)
        #expect(cache.lookUp("k1") == nil, "the least recently used result is still there")
        #expect(cache.lookUp("k0") == .number(JSONNumber(0)))
        #expect(cache.lookUp("k2") == .number(JSONNumber(2)))
        #expect(cache.lookUp("new") == "value")
    }
}
