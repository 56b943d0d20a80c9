/// Results of deterministic plugins, by key (the runtime's `RoutineCache` makes the keys
/// from the plugin file's digest and the input). Results do not go stale.
public protocol RoutineCacheStore: Sendable {
    func cachedResult(key: String) throws(LedgerError) -> String?
    func storeResult(key: String, value: String) throws(LedgerError)
}

/// Kept in the gateway's cache table, where existing databases hold their results: the
/// keys' "routine:" prefix keeps them apart from the gateway's, and their expiry, ten
/// years out, keeps the gateway's sweep of expired entries off them.
public struct SQLRoutineCacheStore<Driver: SQLDriver>: RoutineCacheStore, SQLStore {
    static var keepMs: Int64 { 10 * 365 * 86_400_000 }
    static var prefix: String { "routine:" }

    public let driver: Driver

    public init(existing driver: Driver) { self.driver = driver }

    public static func tables(_ dialect: SQLDialect) -> [String] {
        [SQLGatewayStateStore<Driver>.cacheTable]
    }

    public func cachedResult(key: String) throws(LedgerError) -> String? {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT value FROM gateway_cache WHERE key = $1 AND expires_ms > $2", (Self.prefix + key).sql, now().sql)
                .first?.first?.string
        }
    }

    public func storeResult(key: String, value: String) throws(LedgerError) {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run(
                """
                INSERT INTO gateway_cache (key, value, expires_ms) VALUES ($1, $2, $3)
                ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms
                """, (Self.prefix + key).sql, value.sql, (now() + Self.keepMs).sql)
        }
    }
}
