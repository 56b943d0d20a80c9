import PurserLedger
import PurserTestSupport
import Testing

/// Each focused store alone, over a database that holds only its own tables: what it
/// keeps must not lean on another store's. Every suite runs against both drivers.
extension StoreKind {
    func driver() throws -> any SQLDriver {
        switch self {
        case .sqlite: try SQLiteDriver(path: Fixtures.temporaryHome() + "/purser.db")
        case .postgres: try PostgresDriver(url: PostgresServer.shared.makeDatabase())
        }
    }
}

@Suite("Plugin store conformance", .storeWork, .timeLimit(.minutes(1)))
struct PluginStoreConformanceTests {
    static func open<Driver: SQLDriver>(_ driver: Driver) throws -> any PluginStore { try SQLPluginStore<Driver>.open(driver) }

    @Test("a plugin is saved, re-pinned by name, listed and removed", arguments: StoreKind.allCases)
    func plugins(kind: StoreKind) throws {
        let store = try Self.open(kind.driver())
        #expect(try store.plugin(named: "p") == nil)
        try store.savePlugin(PluginRecord(name: "p", path: "/x/p", sha256: "ab", info: "{}", addedMs: 1))
        try store.savePlugin(PluginRecord(name: "a", path: "/x/a", sha256: "ef", info: "{\"x\":1}", addedMs: 3))
        try store.savePlugin(PluginRecord(name: "p", path: "/x/p2", sha256: "cd", info: "{}", addedMs: 2))
        #expect(try store.plugin(named: "p") == PluginRecord(name: "p", path: "/x/p2", sha256: "cd", info: "{}", addedMs: 2))
        #expect(try store.plugins().map(\.name) == ["a", "p"])
        #expect(try store.removePlugin(named: "p"))
        #expect(try !store.removePlugin(named: "p"))
        #expect(try store.plugins().map(\.name) == ["a"])
    }
}

@Suite("Run store conformance", .storeWork, .timeLimit(.minutes(1)))
struct RunStoreConformanceTests {
    static func open<Driver: SQLDriver>(_ driver: Driver) throws -> any RunStore { try SQLRunStore<Driver>.open(driver) }

    @Test("runs are listed newest first without their reports, and shown with them", arguments: StoreKind.allCases)
    func runs(kind: StoreKind) throws {
        let store = try Self.open(kind.driver())
        try store.saveRun(RunRecord(id: "s-1", swarm: "s", team: "t", ok: false, startedMs: 5, report: "{}"))
        try store.saveRun(RunRecord(id: "s-2", swarm: "s", team: "t", ok: true, startedMs: 6, report: "{\"a\":1}"))
        try store.saveRun(RunRecord(id: "s-1", swarm: "s", team: "t", ok: true, startedMs: 5, report: "{\"b\":2}"))
        #expect(try store.runs(limit: 10).map(\.id) == ["s-2", "s-1"])
        #expect(try store.runs(limit: 1).map(\.id) == ["s-2"])
        #expect(try store.runs(limit: 10).allSatisfy { $0.report.isEmpty && $0.ok })
        #expect(try store.run(id: "s-1") == RunRecord(id: "s-1", swarm: "s", team: "t", ok: true, startedMs: 5, report: "{\"b\":2}"))
        #expect(try store.run(id: "nope") == nil)
    }
}

@Suite("Gateway state store conformance", .storeWork, .timeLimit(.minutes(1)))
struct GatewayStateStoreConformanceTests {
    static func open<Driver: SQLDriver>(_ driver: Driver) throws -> any GatewayStateStore { try SQLGatewayStateStore<Driver>.open(driver) }

    @Test("a quota is taken only while every limit holds", arguments: StoreKind.allCases)
    func quotas(kind: StoreKind) throws {
        let store = try Self.open(kind.driver())
        #expect(try store.consumeQuota(key: "k", requests: 1, credits: 3, maxRequests: 2, maxCredits: 10))
        #expect(try store.consumeQuota(key: "k", requests: 1, credits: 3, maxRequests: 2, maxCredits: 10))
        #expect(try !store.consumeQuota(key: "k", requests: 1, credits: 0, maxRequests: 2, maxCredits: nil))
        #expect(try !store.consumeQuota(key: "k", requests: 0, credits: 5, maxRequests: nil, maxCredits: 10))
        try store.adjustQuota(key: "k", requests: -1, credits: -1)
        try store.adjustQuota(key: "fresh", requests: 2, credits: 0)
        let usage = try store.quotaUsage(keys: ["k", "fresh", "none"])
        #expect(usage["k"]?.requests == 1 && usage["k"]?.credits == 5)
        #expect(usage["fresh"]?.requests == 2)
        #expect(usage["none"] == nil)
    }

    @Test("cached values are served until they expire; states are kept by name", arguments: StoreKind.allCases)
    func cacheAndStates(kind: StoreKind) throws {
        let store = try Self.open(kind.driver())
        try store.storeCachedValue(key: "c", value: "v1", expiresMs: Int64.max / 2)
        try store.storeCachedValue(key: "c", value: "v2", expiresMs: Int64.max / 2)
        try store.storeCachedValue(key: "old", value: "x", expiresMs: 1)
        #expect(try store.cachedValue(key: "c", nowMs: 10) == "v2")
        #expect(try store.cachedValue(key: "old", nowMs: 10) == nil)
        #expect(try store.cachedValue(key: "c", nowMs: Int64.max / 2) == nil)
        try store.saveState(name: "gateway:a", value: "{}", nowMs: 1)
        try store.saveState(name: "gateway:a", value: "{\"n\":1}", nowMs: 2)
        try store.saveState(name: "gateway:b", value: "{}", nowMs: 2)
        #expect(try store.states() == ["gateway:a": "{\"n\":1}", "gateway:b": "{}"])
    }
}

@Suite("Routine cache store conformance", .storeWork, .timeLimit(.minutes(1)))
struct RoutineCacheStoreConformanceTests {
    static func open<Driver: SQLDriver>(_ driver: Driver) throws -> any RoutineCacheStore { try SQLRoutineCacheStore<Driver>.open(driver) }

    @Test("a result is kept by key and replaced by a later one", arguments: StoreKind.allCases)
    func results(kind: StoreKind) throws {
        let store = try Self.open(kind.driver())
        #expect(try store.cachedResult(key: "k") == nil)
        try store.storeResult(key: "k", value: "1")
        try store.storeResult(key: "k", value: "2")
        try store.storeResult(key: "j", value: "3")
        #expect(try store.cachedResult(key: "k") == "2")
        #expect(try store.cachedResult(key: "j") == "3")
    }

    /// Existing databases hold their results in the gateway's cache table; the gateway's
    /// entries and the routine cache's must not meet there.
    @Test("results and the gateway's cached responses keep apart in one database", arguments: StoreKind.allCases)
    func besideTheGateway(kind: StoreKind) throws {
        let store = try kind.make()
        try store.storeResult(key: "k", value: "routine")
        try store.storeCachedValue(key: "k", value: "gateway", expiresMs: Int64.max / 2)
        #expect(try store.cachedResult(key: "k") == "routine")
        #expect(try store.cachedValue(key: "k", nowMs: 10) == "gateway")
    }
}
