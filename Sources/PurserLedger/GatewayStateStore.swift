/// The gateway's shared state: quota counters by window, cached responses (the cache's
/// persistent tier), and each integration's last status. Supervisors sharing a store share
/// them; PurserGateway's `GatewayStore` reaches them through the runtime.
public protocol GatewayStateStore: Sendable {
    /// Adds to a window's counters only if every limit still holds; false adds nothing.
    func consumeQuota(key: String, requests: Int64, credits: Int64, maxRequests: Int64?, maxCredits: Int64?) throws(LedgerError) -> Bool
    /// Adds to a window's counters unconditionally (a refund or a correction, often negative).
    func adjustQuota(key: String, requests: Int64, credits: Int64) throws(LedgerError)
    func quotaUsage(keys: [String]) throws(LedgerError) -> [String: (requests: Int64, credits: Int64)]
    /// A cached value that has not expired.
    func cachedValue(key: String, nowMs: Int64) throws(LedgerError) -> String?
    /// Keeps a value until `expiresMs`, and drops the entries that have expired.
    func storeCachedValue(key: String, value: String, expiresMs: Int64) throws(LedgerError)
    func saveState(name: String, value: String, nowMs: Int64) throws(LedgerError)
    func states() throws(LedgerError) -> [String: String]

    // An integration's rate limiter (GCRA) and breaker, held for every supervisor sharing
    // the store (GatewayRateSQL.swift). Times are microseconds by the database's clock.

    /// Admits one call if the breaker is closed and the limiter's theoretical arrival time
    /// is at most `toleranceUs` ahead, and counts it.
    func admitCall(name: String, intervalUs: Int64, toleranceUs: Int64) throws(LedgerError) -> RateAdmission
    /// An upstream said to wait `delayUs` (429 Retry-After): nobody is admitted before then.
    func pushBackCalls(name: String, delayUs: Int64, toleranceUs: Int64) throws(LedgerError)
    /// nil while the breaker is closed; else how long until it cools down (0: a trial may go).
    func breakerOpenFor(name: String) throws(LedgerError) -> Int64?
    /// Opens the breaker for `coolDownUs` from now (again, after a failed trial).
    func openBreaker(name: String, coolDownUs: Int64) throws(LedgerError)
    /// Takes the one trial call of a cooled-down breaker, and its slot of the rate; false
    /// when another took it less than `coolDownUs` ago, or the breaker is not cooled down.
    func takeTrial(name: String, coolDownUs: Int64, intervalUs: Int64, toleranceUs: Int64) throws(LedgerError) -> Bool
    func closeBreaker(name: String) throws(LedgerError)
}

/// What the store said to a call asking for its integration's rate.
public struct RateAdmission: Sendable, Hashable {
    public var admitted: Bool
    /// Refused: microseconds until a call would be admitted by the rate.
    public var waitUs: Int64
    /// nil while the breaker is closed; else microseconds until it cools down (0: cooled down).
    public var breakerUs: Int64?

    public init(admitted: Bool, waitUs: Int64 = 0, breakerUs: Int64? = nil) {
        self.admitted = admitted
        self.waitUs = waitUs
        self.breakerUs = breakerUs
    }
}

/// The gateway's tables: gateway_quota, gateway_cache, gateway_state and gateway_rate.
public struct SQLGatewayStateStore<Driver: SQLDriver>: GatewayStateStore, SQLStore {
    public let driver: Driver

    public init(existing driver: Driver) { self.driver = driver }

    public static func tables(_ dialect: SQLDialect) -> [String] {
        [
            "CREATE TABLE IF NOT EXISTS gateway_quota (key TEXT PRIMARY KEY, requests BIGINT NOT NULL, credits BIGINT NOT NULL)",
            cacheTable,
            "CREATE INDEX IF NOT EXISTS gateway_cache_expiry ON gateway_cache(expires_ms)",
            "CREATE TABLE IF NOT EXISTS gateway_state (name TEXT PRIMARY KEY, value TEXT NOT NULL, saved_ms BIGINT NOT NULL)",
            rateTable,
        ]
    }

    static var cacheTable: String {
        "CREATE TABLE IF NOT EXISTS gateway_cache (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_ms BIGINT NOT NULL)"
    }

    public func consumeQuota(
        key: String, requests: Int64, credits: Int64, maxRequests: Int64?, maxCredits: Int64?
    ) throws(LedgerError) -> Bool {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("INSERT INTO gateway_quota (key, requests, credits) VALUES ($1, 0, 0) ON CONFLICT (key) DO NOTHING", key.sql)
            // One conditional UPDATE: two supervisors cannot both take the last slot.
            return try !session.run(
                """
                UPDATE gateway_quota SET requests = requests + $2, credits = credits + $3
                WHERE key = $1 AND (CAST($4 AS BIGINT) < 0 OR requests + $2 <= $4)
                    AND (CAST($5 AS BIGINT) < 0 OR credits + $3 <= $5)
                RETURNING key
                """, key.sql, requests.sql, credits.sql, (maxRequests ?? -1).sql, (maxCredits ?? -1).sql
            ).isEmpty
        }
    }

    public func adjustQuota(key: String, requests: Int64, credits: Int64) throws(LedgerError) {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run(
                """
                INSERT INTO gateway_quota (key, requests, credits) VALUES ($1, $2, $3)
                ON CONFLICT (key) DO UPDATE SET requests = gateway_quota.requests + $2, credits = gateway_quota.credits + $3
                """, key.sql, requests.sql, credits.sql)
        }
    }

    public func quotaUsage(keys: [String]) throws(LedgerError) -> [String: (requests: Int64, credits: Int64)] {
        try driver.transaction { (session) throws(LedgerError) in
            var usage: [String: (requests: Int64, credits: Int64)] = [:]
            for key in keys {
                if let row = try session.run("SELECT requests, credits FROM gateway_quota WHERE key = $1", key.sql).first {
                    usage[key] = (row[0].int, row[1].int)
                }
            }
            return usage
        }
    }

    public func cachedValue(key: String, nowMs: Int64) throws(LedgerError) -> String? {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT value FROM gateway_cache WHERE key = $1 AND expires_ms > $2", key.sql, nowMs.sql)
                .first?.first?.string
        }
    }

    public func storeCachedValue(key: String, value: String, expiresMs: Int64) throws(LedgerError) {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("DELETE FROM gateway_cache WHERE expires_ms <= $1", now().sql)
            try session.run(
                """
                INSERT INTO gateway_cache (key, value, expires_ms) VALUES ($1, $2, $3)
                ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms
                """, key.sql, value.sql, expiresMs.sql)
        }
    }

    public func saveState(name: String, value: String, nowMs: Int64) throws(LedgerError) {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run(
                """
                INSERT INTO gateway_state (name, value, saved_ms) VALUES ($1, $2, $3)
                ON CONFLICT (name) DO UPDATE SET value = excluded.value, saved_ms = excluded.saved_ms
                """, name.sql, value.sql, nowMs.sql)
        }
    }

    public func states() throws(LedgerError) -> [String: String] {
        try driver.transaction { (session) throws(LedgerError) in
            var states: [String: String] = [:]
            for row in try session.run("SELECT name, value FROM gateway_state ORDER BY name") {
                states[row[0].string ?? ""] = row[1].string ?? ""
            }
            return states
        }
    }
}
