
/// The embedded default store: one SQLite file in WAL mode, at `$PURSER_HOME/purser.db`,
/// fsynced at every commit (synchronous = FULL). Transactions take the write lock up front
/// (BEGIN IMMEDIATE), so concurrent processes queue on SQLite's busy timeout instead of
/// failing on a lock upgrade; within a process, concurrent transactions share commits
/// (`GroupCommit`).
public final class SQLiteDriver: SQLDriver {
    public let dialect = SQLDialect.sqlite
    private let group: GroupCommit<SQLiteConnection>

    /// SQLite's process-wide settings (no memory statistics: they cost every allocation a
    /// global mutex) take effect only before anything in the process opens a database.
    /// Opening a ledger applies them; call this first where other code opens SQLite earlier.
    public static func configureProcess() {
        _ = SQLiteConnection.configured
    }

    public init(path: String) throws(LedgerError) {
        let connection = try SQLiteConnection(path: path)
        // No memory map of the database file: one truncated under it would be a SIGBUS.
        try connection.execute(
            "PRAGMA mmap_size = 0; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON")
        try connection.files?.opened()
        group = GroupCommit(
            connection: connection,
            // Prepared once and reused: these run around every operation of every batch.
            begin: { (connection) throws(LedgerError) in
                try connection.refuseIfFailed()
                try connection.query("BEGIN IMMEDIATE")
                // Changes when another connection commits: the cached rows are stale then.
                connection.rows.begin(storeVersion: try connection.query("PRAGMA data_version").first?.first?.int)
            },
            execute: { (connection, sql) throws(LedgerError) in try connection.query(sql) },
            commit: { (connection) throws(LedgerError) in
                try connection.checkFiles()
                try connection.query("COMMIT")
            })
    }

    public func transaction<T>(_ body: (any SQLSession) throws(LedgerError) -> T) throws(LedgerError) -> T {
        try group.run(batched: false) { (connection) throws(LedgerError) in try body(connection) }
    }

    public func batch<T>(_ body: (any SQLSession) throws(LedgerError) -> T) throws(LedgerError) -> T {
        try group.run(batched: true) { (connection) throws(LedgerError) in try body(connection) }
    }
}

extension SQLiteConnection: SQLSession {}

public typealias SQLiteLedger = SQLLedger<SQLiteDriver>

extension SQLLedger where Driver == SQLiteDriver {
    public convenience init(path: String) throws(LedgerError) {
        try self.init(driver: SQLiteDriver(path: path))
    }
}
