/// Registered plugins' files, kept by their SHA-256, so that a host that lacks a plugin's
/// file (another host, or one where it was deleted) can fetch the pinned bytes by digest.
/// The store does not hash: whoever reads the bytes checks them against the pin.
public protocol PluginFileStore: Sendable {
    /// Keeps `bytes` under `sha256` (lower-case hex); bytes already kept under it stay as they are.
    func putPluginFile(sha256: String, bytes: [UInt8]) throws(LedgerError)
    func pluginFile(sha256: String) throws(LedgerError) -> [UInt8]?
    func hasPluginFile(sha256: String) throws(LedgerError) -> Bool
}

/// The plugin_files table: one row a file, its bytes in one BLOB (SQLite) or BYTEA
/// (PostgreSQL). Files are small enough for that (the registry stores at most 64 MiB), and
/// a file is read whole, once a host, before it is written to the host's cache.
public struct SQLPluginFileStore<Driver: SQLDriver>: PluginFileStore, SQLStore {
    public let driver: Driver

    public init(existing driver: Driver) { self.driver = driver }

    public static func tables(_ dialect: SQLDialect) -> [String] {
        [
            """
            CREATE TABLE IF NOT EXISTS plugin_files (sha256 TEXT PRIMARY KEY, size BIGINT NOT NULL,
                bytes \(dialect.blobType) NOT NULL)
            """
        ]
    }

    public func putPluginFile(sha256: String, bytes: [UInt8]) throws(LedgerError) {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run(
                """
                INSERT INTO plugin_files (sha256, size, bytes) VALUES ($1, $2, $3)
                ON CONFLICT (sha256) DO NOTHING
                """, sha256.sql, Int64(bytes.count).sql, bytes.sql)
        }
    }

    public func pluginFile(sha256: String) throws(LedgerError) -> [UInt8]? {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT bytes FROM plugin_files WHERE sha256 = $1", sha256.sql).first?.first?.bytes
        }
    }

    public func hasPluginFile(sha256: String) throws(LedgerError) -> Bool {
        try driver.transaction { (session) throws(LedgerError) in
            try !session.run("SELECT 1 FROM plugin_files WHERE sha256 = $1", sha256.sql).isEmpty
        }
    }
}
