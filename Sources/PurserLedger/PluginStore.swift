/// Registered plugins, pinned by SHA-256 (`purser plugin add`).
public protocol PluginStore: Sendable {
    /// Registers or re-pins a plugin (by name).
    func savePlugin(_ plugin: PluginRecord) throws(LedgerError)
    func plugin(named name: String) throws(LedgerError) -> PluginRecord?
    func plugins() throws(LedgerError) -> [PluginRecord]
    /// Returns whether there was one.
    func removePlugin(named name: String) throws(LedgerError) -> Bool
}

/// A registered plugin: where it is, the SHA-256 it was pinned at, and what it said and
/// declared (handshake and manifest, as JSON text).
public struct PluginRecord: Sendable, Hashable {
    public var name: String
    public var path: String
    /// Lower-case hex.
    public var sha256: String
    public var info: String
    public var addedMs: Int64

    public init(name: String, path: String, sha256: String, info: String, addedMs: Int64) {
        self.name = name
        self.path = path
        self.sha256 = sha256
        self.info = info
        self.addedMs = addedMs
    }
}

/// The plugins table.
public struct SQLPluginStore<Driver: SQLDriver>: PluginStore, SQLStore {
    public let driver: Driver

    public init(existing driver: Driver) { self.driver = driver }

    public static func tables(_ dialect: SQLDialect) -> [String] {
        [
            """
            CREATE TABLE IF NOT EXISTS plugins (name TEXT PRIMARY KEY, path TEXT NOT NULL, sha256 TEXT NOT NULL,
                info TEXT NOT NULL, added_ms BIGINT NOT NULL)
            """
        ]
    }

    public func savePlugin(_ plugin: PluginRecord) throws(LedgerError) {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run(
                """
                INSERT INTO plugins (name, path, sha256, info, added_ms) VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (name) DO UPDATE SET path = excluded.path, sha256 = excluded.sha256, info = excluded.info,
                    added_ms = excluded.added_ms
                """, plugin.name.sql, plugin.path.sql, plugin.sha256.sql, plugin.info.sql, plugin.addedMs.sql)
        }
    }

    public func plugin(named name: String) throws(LedgerError) -> PluginRecord? {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT name, path, sha256, info, added_ms FROM plugins WHERE name = $1", name.sql).first.map(Self.record)
        }
    }

    public func plugins() throws(LedgerError) -> [PluginRecord] {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT name, path, sha256, info, added_ms FROM plugins ORDER BY name").map(Self.record)
        }
    }

    public func removePlugin(named name: String) throws(LedgerError) -> Bool {
        try driver.transaction { (session) throws(LedgerError) in
            try !session.run("DELETE FROM plugins WHERE name = $1 RETURNING name", name.sql).isEmpty
        }
    }

    private static func record(_ row: [SQLValue]) -> PluginRecord {
        PluginRecord(
            name: row[0].string ?? "", path: row[1].string ?? "", sha256: row[2].string ?? "", info: row[3].string ?? "",
            addedMs: row[4].int)
    }
}
