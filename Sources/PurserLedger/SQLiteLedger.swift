import Synchronization

/// The embedded default store: one SQLite file in WAL mode, at `$PURSER_HOME/purser.db`.
/// Transactions take the write lock up front (BEGIN IMMEDIATE), so concurrent processes
/// queue on SQLite's busy timeout instead of failing on a lock upgrade.
public final class SQLiteDriver: SQLDriver {
    public let dialect = SQLDialect(serialKey: "INTEGER PRIMARY KEY AUTOINCREMENT", lockSkippingLocked: "")
    private let connection: Mutex<SQLiteBox>

    public init(path: String) throws(LedgerError) {
        let connection = try SQLiteConnection(path: path)
        try connection.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON")
        self.connection = Mutex(SQLiteBox(connection))
    }

    public func transaction<T>(_ body: (any SQLSession) throws(LedgerError) -> T) throws(LedgerError) -> T {
        try connection.withLock { (box) throws(LedgerError) -> T in
            let connection = box.connection
            try connection.execute("BEGIN IMMEDIATE")
            do throws(LedgerError) {
                let result = try body(SQLiteSession(connection: connection))
                try connection.execute("COMMIT")
                return result
            } catch {
                try? connection.execute("ROLLBACK")
                throw error
            }
        }
    }
}

/// The connection moves into the Mutex and is only ever touched under it.
struct SQLiteBox: @unchecked Sendable {
    let connection: SQLiteConnection
    init(_ connection: SQLiteConnection) { self.connection = connection }
}

struct SQLiteSession: SQLSession {
    let connection: SQLiteConnection

    func query(_ sql: String, _ arguments: [SQLValue]) throws(LedgerError) -> [[SQLValue]] {
        try connection.query(sql, arguments)
    }
}

public typealias SQLiteLedger = SQLLedger<SQLiteDriver>

extension SQLLedger where Driver == SQLiteDriver {
    public convenience init(path: String) throws(LedgerError) {
        try self.init(driver: SQLiteDriver(path: path))
    }
}
