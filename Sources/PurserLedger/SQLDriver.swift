/// What the ledger needs of a SQL database. Both drivers take the same SQL, with `$1`,
/// `$2`, … placeholders; the dialect covers the rest.
public protocol SQLDriver: Sendable {
    var dialect: SQLDialect { get }
    /// Runs `body` in one transaction that takes the write lock up front; rolls back if it throws.
    func transaction<T>(_ body: (any SQLSession) throws(LedgerError) -> T) throws(LedgerError) -> T
    /// Runs one statement as a transaction of its own (one round trip where that matters).
    func single(_ sql: String, _ arguments: [SQLValue]) throws(LedgerError) -> [[SQLValue]]
    /// Like `transaction`, for a body that changes nodes and events only through
    /// `session.rows` and throws only before it changes anything there: such bodies may
    /// share one transaction (SQLite's group commit) without savepoints.
    func batch<T>(_ body: (any SQLSession) throws(LedgerError) -> T) throws(LedgerError) -> T
}

extension SQLDriver {
    public func single(_ sql: String, _ arguments: [SQLValue]) throws(LedgerError) -> [[SQLValue]] {
        try transaction { (session) throws(LedgerError) in try session.query(sql, arguments) }
    }

    public func batch<T>(_ body: (any SQLSession) throws(LedgerError) -> T) throws(LedgerError) -> T {
        try transaction(body)
    }
}

public protocol SQLSession {
    func query(_ sql: String, _ arguments: [SQLValue]) throws(LedgerError) -> [[SQLValue]]
    /// Runs a write that repeats many times in a transaction. `key` names the statement's
    /// shape, so the driver can keep it prepared without hashing its text; `sql` is built
    /// only the first time. Placeholders must be numbered in the order they appear.
    func write(_ key: Int, _ sql: () -> String, _ arguments: [SQLValue]) throws(LedgerError)
    /// The node rows of the current transaction; the driver flushes them before COMMIT.
    var rows: NodeRows { get }
}

extension SQLSession {
    public func write(_ key: Int, _ sql: () -> String, _ arguments: [SQLValue]) throws(LedgerError) {
        _ = try query(sql(), arguments)
    }

    @discardableResult
    func run(_ sql: String, _ arguments: SQLValue...) throws(LedgerError) -> [[SQLValue]] {
        try query(sql, arguments)
    }
}

public struct SQLDialect: Sendable {
    /// The type of an auto-numbered primary key.
    var serialKey: String
    /// What a row lock for a sweep adds to SELECT ("FOR UPDATE SKIP LOCKED", or nothing).
    var lockSkippingLocked: String
    /// What locks a row read for update ("FOR UPDATE", or nothing where a transaction
    /// already holds the whole database, as SQLite's BEGIN IMMEDIATE does).
    var lockRow: String
    /// What takes a shared row lock ("FOR SHARE", or nothing).
    var lockShared: String
    /// Reserve and settle run as functions in the database (`ServerFunctions`).
    var serverFunctions = false
    /// Where new node ids come from: this sequence, or else one past the largest id
    /// (safe where a transaction holds the whole database's write lock).
    var nodeSequence: String? = nil
    /// What numbers a placeholder: SQLite's "?NNN" costs nothing to parse where a name
    /// ("$NNN") is looked up among all the statement's names so far.
    var placeholderPrefix = "$"

    func placeholder(_ number: Int) -> String { placeholderPrefix + String(number) }

    static let sqlite = SQLDialect(
        serialKey: "INTEGER PRIMARY KEY AUTOINCREMENT", lockSkippingLocked: "", lockRow: "", lockShared: "",
        placeholderPrefix: "?")
    static let postgres = SQLDialect(
        serialKey: "BIGSERIAL PRIMARY KEY", lockSkippingLocked: "FOR UPDATE SKIP LOCKED", lockRow: "FOR UPDATE",
        lockShared: "FOR SHARE", serverFunctions: true, nodeSequence: "nodes_id_seq")
}

public enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case text(String)

    var int: Int64 {
        switch self {
        case .integer(let value): value
        case .text(let value): Int64(value) ?? 0
        case .null: 0
        }
    }

    var optionalInt: Int64? {
        if case .null = self { return nil }
        return int
    }

    var string: String? {
        switch self {
        case .text(let value): value
        case .integer(let value): String(value)
        case .null: nil
        }
    }
}

extension Int64 {
    var sql: SQLValue { .integer(self) }
}

extension String {
    var sql: SQLValue { .text(self) }
}

extension Optional where Wrapped == Int64 {
    var sql: SQLValue { map { .integer($0) } ?? .null }
}

extension Optional where Wrapped == String {
    var sql: SQLValue { map { .text($0) } ?? .null }
}
