import Glibc

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
    func write(_ key: Int, _ sql: () -> String, _ arguments: borrowing SQLArguments) throws(LedgerError)
    /// The node rows of the current transaction; the driver flushes them before COMMIT.
    var rows: NodeRows { get }
}

extension SQLSession {
    public func write(_ key: Int, _ sql: () -> String, _ arguments: borrowing SQLArguments) throws(LedgerError) {
        _ = try query(sql(), arguments.values)
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
    /// What takes a shared row lock that holds off a sweep's FOR UPDATE but not a renewal's
    /// UPDATE of other columns ("FOR KEY SHARE", or nothing): a host's lease renewal must
    /// not wait behind its own reserves, which may wait on a hot or locked row.
    var lockShared: String
    /// Reserve and settle run as functions in the database (`ServerFunctions`).
    var serverFunctions = false
    /// Where new node ids come from: this sequence, or else one past the largest id
    /// (safe where a transaction holds the whole database's write lock).
    var nodeSequence: String? = nil
    /// What numbers a placeholder: SQLite's "?NNN" costs nothing to parse where a name
    /// ("$NNN") is looked up among all the statement's names so far.
    var placeholderPrefix = "$"
    /// A join that walks its left table first: SQLite's planner, left to itself, scans every
    /// node for the reclaim sweep rather than the open holds of the few leases in question.
    /// PostgreSQL plans by its statistics (and has no CROSS JOIN … ON).
    var orderedJoin = "JOIN"
    /// The type of a column of bytes.
    var blobType = "BLOB"

    func placeholder(_ number: Int) -> String { placeholderPrefix + String(number) }

    /// Without AUTOINCREMENT: rows are never deleted, so the next rowid (one past the
    /// largest) is never a reused one, and AUTOINCREMENT's bookkeeping row in
    /// sqlite_sequence cost every INSERT a third B-tree write. Databases made before keep it.
    static let sqlite = SQLDialect(
        serialKey: "INTEGER PRIMARY KEY", lockSkippingLocked: "", lockRow: "", lockShared: "",
        placeholderPrefix: "?", orderedJoin: "CROSS JOIN")
    static let postgres = SQLDialect(
        serialKey: "BIGSERIAL PRIMARY KEY", lockSkippingLocked: "FOR UPDATE SKIP LOCKED", lockRow: "FOR UPDATE",
        lockShared: "FOR KEY SHARE", serverFunctions: true, nodeSequence: "nodes_id_seq", blobType: "BYTEA")
}

/// The values of a repeated write, in placeholder order. Text is kept as UTF-8 in one
/// buffer and numbers in another, so that filling it again allocates nothing and holds no
/// strings: the hot path of a batch flush writes thousands of values.
public struct SQLArguments {
    enum Kind: UInt8 {
        case null, integer, text
    }

    private(set) var kinds: [Kind] = []
    /// An integer's value; for text, where it starts in `bytes` and, in the low 32 bits, its length.
    private(set) var numbers: [Int64] = []
    /// Starts with a byte no text uses, so that it is never empty: a text of no bytes still
    /// has an address to be bound from.
    private(set) var bytes: [UInt8] = [0]

    var count: Int { kinds.count }

    mutating func removeAll() {
        kinds.removeAll(keepingCapacity: true)
        numbers.removeAll(keepingCapacity: true)
        bytes.removeSubrange(1...)
    }

    mutating func append(_ value: Int64) {
        kinds.append(.integer)
        numbers.append(value)
    }

    mutating func append(_ value: Int64?) {
        guard let value else { return appendNull() }
        append(value)
    }

    /// Text is stored as a C string would read it: up to its first NUL.
    mutating func append(_ value: String) {
        let start = bytes.count
        var value = value
        value.withUTF8 { text in
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: text[..<cStringLength(text)]))
        }
        kinds.append(.text)
        numbers.append(Int64(start) << 32 | Int64(bytes.count - start))
    }

    mutating func append(_ value: String?) {
        guard let value else { return appendNull() }
        append(value)
    }

    mutating func appendNull() {
        kinds.append(.null)
        numbers.append(0)
    }

    /// Where text `index` lies in `bytes`.
    func textRange(_ index: Int) -> Range<Int> {
        let start = Int(numbers[index] >> 32)
        return start..<start + Int(numbers[index] & 0xffff_ffff)
    }

    /// The same values for a driver that takes `SQLValue`s.
    var values: [SQLValue] {
        kinds.indices.map { index in
            switch kinds[index] {
            case .null: .null
            case .integer: .integer(numbers[index])
            case .text: .text(String(decoding: bytes[textRange(index)], as: UTF8.self))
            }
        }
    }
}

/// Text is bound as a C string always was: up to its first NUL.
func cStringLength(_ text: UnsafeBufferPointer<UInt8>) -> Int {
    guard let base = text.baseAddress else { return 0 }
    return memchr(base, 0, text.count).map { UnsafeRawPointer(base).distance(to: $0) } ?? text.count
}

public enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case text(String)
    /// Bytes as they are: SQLite's BLOB, PostgreSQL's BYTEA (sent in binary, not as text).
    case blob([UInt8])

    var int: Int64 {
        switch self {
        case .integer(let value): value
        case .text(let value): Int64(value) ?? 0
        case .null, .blob: 0
        }
    }

    var bytes: [UInt8]? {
        switch self {
        case .blob(let value): value
        case .text(let value): Array(value.utf8)
        case .integer, .null: nil
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
        case .null, .blob: nil
        }
    }
}

extension Int64 {
    var sql: SQLValue { .integer(self) }
}

extension String {
    var sql: SQLValue { .text(self) }
}

extension Array where Element == UInt8 {
    var sql: SQLValue { .blob(self) }
}

extension Optional where Wrapped == Int64 {
    var sql: SQLValue { map { .integer($0) } ?? .null }
}

extension Optional where Wrapped == String {
    var sql: SQLValue { map { .text($0) } ?? .null }
}
