import CSQLite
import Glibc

/// A thin, typed layer over the SQLite C API: one connection, prepared statements kept
/// for reuse, and errors that carry SQLite's own message.
final class SQLiteConnection {
    private let db: OpaquePointer
    private var statements: [String: (statement: OpaquePointer, positions: [Int32])] = [:]
    /// Statements of `write`, by key: no text to hash on the hot path.
    private var keyed: [OpaquePointer?] = []
    let rows = NodeRows(dialect: .sqlite)

    /// The store's files on disk; nil for a database that has none (":memory:").
    let files: StoreFiles?
    private let path: String

    init(path: String) throws(LedgerError) {
        _ = Self.configured
        self.path = path
        // Checked and guarded before SQLite opens (and perhaps creates) anything.
        files = path.isEmpty || path == ":memory:" || path.hasPrefix("file:") ? nil : try StoreFiles(path: path)
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let status = sqlite3_open_v2(path, &handle, flags, nil)
        guard status == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            let files = self.files
            let cause = handle.map { Self.cause(status, sqlite3_system_errno($0), files) } ?? ""
            sqlite3_close(handle)
            throw LedgerError(.storeFailed, "cannot open \(path): \(cause)\(message)")
        }
        db = handle
        // "disk I/O error (code 778)", a failed write, rather than "(code 10)".
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, 30_000)
    }

    /// Before each commit: the files are still the store's (see `StoreFiles`). A store whose
    /// files failed is not checkpointed on close either.
    func checkFiles() throws(LedgerError) {
        do {
            try files?.check()
        } catch {
            _ = purser_sqlite3_no_checkpoint_on_close(db)
            throw error
        }
    }

    /// A failure found earlier: the store is not touched again.
    func refuseIfFailed() throws(LedgerError) {
        if let failure = files?.failure { throw failure }
    }

    /// Process-wide settings, made once before the first connection opens.
    static let configured: Bool = {
        _ = purser_sqlite3_disable_memstatus()
        return true
    }()

    deinit {
        for prepared in statements.values { sqlite3_finalize(prepared.statement) }
        for statement in keyed { sqlite3_finalize(statement) }
        sqlite3_close(db)
    }

    func execute(_ sql: String) throws(LedgerError) {
        let status = sqlite3_exec(db, sql, nil, nil, nil)
        guard status == SQLITE_OK else { throw failure(status) }
    }

    /// Runs `sql` with `arguments` and returns every row.
    @discardableResult
    func query(_ sql: String, _ arguments: [SQLValue] = []) throws(LedgerError) -> [[SQLValue]] {
        let (statement, positions) = try prepared(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (index, argument) in arguments.enumerated() where index < positions.count && positions[index] > 0 {
            Self.bind(statement, positions[index], argument)
        }
        var rows: [[SQLValue]] = []
        while true {
            let status = sqlite3_step(statement)
            if status == SQLITE_DONE { return rows }
            guard status == SQLITE_ROW else { throw failure(status) }
            rows.append((0..<sqlite3_column_count(statement)).map { column in
                switch sqlite3_column_type(statement, column) {
                case SQLITE_NULL: .null
                case SQLITE_INTEGER: .integer(sqlite3_column_int64(statement, column))
                case SQLITE_BLOB: .blob(Self.blob(statement, column))
                default: .text(String(cString: sqlite3_column_text(statement, column)))
                }
            })
        }
    }

    /// Every placeholder is bound on each run, so no binding outlives it and none needs
    /// clearing. Text is bound in place, without a copy: SQLite reads it only while the
    /// statement steps, within the borrow of `arguments`.
    func write(_ key: Int, _ sql: () -> String, _ arguments: borrowing SQLArguments) throws(LedgerError) {
        let statement = try keyedStatement(key, sql)
        defer { sqlite3_reset(statement) }
        guard sqlite3_bind_parameter_count(statement) == arguments.count else {
            throw LedgerError(.storeFailed, "statement \(key) takes \(sqlite3_bind_parameter_count(statement)) values, not \(arguments.count)")
        }
        let status = arguments.bytes.withUnsafeBufferPointer { bytes in
            // Never nil (see `SQLArguments.bytes`): empty text must still be text, not NULL.
            let base = UnsafeRawPointer(bytes.baseAddress!).assumingMemoryBound(to: CChar.self)
            for index in 0..<arguments.count {
                let position = Int32(index + 1)
                switch arguments.kinds[index] {
                case .null: sqlite3_bind_null(statement, position)
                case .integer: sqlite3_bind_int64(statement, position, arguments.numbers[index])
                case .text:
                    let range = arguments.textRange(index)
                    sqlite3_bind_text(statement, position, base + range.lowerBound, Int32(range.count), nil)
                }
            }
            return sqlite3_step(statement)
        }
        guard status == SQLITE_DONE || status == SQLITE_ROW else { throw failure(status) }
    }

    private func keyedStatement(_ key: Int, _ sql: () -> String) throws(LedgerError) -> OpaquePointer {
        if key < keyed.count, let statement = keyed[key] { return statement }
        var statement: OpaquePointer?
        let status = sqlite3_prepare_v3(db, sql(), -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard status == SQLITE_OK, let statement else { throw failure(status) }
        if key >= keyed.count { keyed += [OpaquePointer?](repeating: nil, count: key + 1 - keyed.count) }
        keyed[key] = statement
        return statement
    }

    private static func bind(_ statement: OpaquePointer, _ position: Int32, _ argument: SQLValue) {
        switch argument {
        case .null: sqlite3_bind_null(statement, position)
        case .integer(let value): sqlite3_bind_int64(statement, position, value)
        case .text(var value):
            // The UTF-8 in place, with its length: no C string built first. SQLite copies it.
            value.withUTF8 { text in
                guard let base = text.baseAddress, !text.isEmpty else {
                    _ = purser_sqlite3_bind_text(statement, position, "")
                    return
                }
                let bytes = UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self)
                _ = purser_sqlite3_bind_text_n(statement, position, bytes, Int32(cStringLength(text)))
            }
        case .blob(let value):
            // Copied by SQLite.
            value.withUnsafeBytes { bytes in
                _ = purser_sqlite3_bind_blob_n(statement, position, bytes.baseAddress, sqlite3_uint64(bytes.count))
            }
        }
    }

    private static func blob(_ statement: OpaquePointer, _ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(statement, column))
        guard count > 0, let base = sqlite3_column_blob(statement, column) else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: base, count: count))
    }

    /// The statement, and where each of `$1`, `$2`, … binds: SQLite numbers named
    /// parameters by first appearance, not by their number.
    private func prepared(_ sql: String) throws(LedgerError) -> (statement: OpaquePointer, positions: [Int32]) {
        if let prepared = statements[sql] { return prepared }
        var statement: OpaquePointer?
        let status = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard status == SQLITE_OK, let statement else { throw failure(status) }
        // Read each parameter's name once: asking for "$n" by name scans them all, which for
        // a multi-row INSERT of a thousand parameters costs milliseconds.
        let count = sqlite3_bind_parameter_count(statement)
        var positions = [Int32](repeating: 0, count: Int(count) + 8)
        for position in 1...max(count, 1) where count > 0 {
            guard let name = sqlite3_bind_parameter_name(statement, position),
                let number = Int(String(cString: name).dropFirst()), number >= 1
            else { continue }
            if number > positions.count { positions += [Int32](repeating: 0, count: number - positions.count) }
            positions[number - 1] = position
        }
        statements[sql] = (statement, positions)
        return (statement, positions)
    }

    private func failure(_ status: Int32) -> LedgerError {
        let message = String(cString: sqlite3_errmsg(db))
        if status == SQLITE_CONSTRAINT || status & 0xff == SQLITE_CONSTRAINT {
            return LedgerError(.constraint, "the store refused the change: \(message)")
        }
        let cause = Self.cause(status, sqlite3_system_errno(db), files)
        return LedgerError(.storeFailed, "\(path): \(cause)sqlite: \(message) (code \(status))")
    }

    /// The truth SQLite's words blur, where the files show it: a full disk is "disk I/O
    /// error" when the WAL index cannot grow, and "database or disk is full" when the
    /// database cannot; a file that cannot be written is "disk I/O error" or "readonly".
    private static func cause(_ status: Int32, _ systemError: Int32, _ files: StoreFiles?) -> String {
        let primary = status & 0xff
        guard [SQLITE_FULL, SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_READONLY].contains(primary) else { return "" }
        if let found = files?.diagnosis() { return found + "; " }
        if primary == SQLITE_FULL && systemError != EDQUOT { return describe(ENOSPC) + "; " }
        return systemError == 0 ? "" : describe(systemError) + "; "
    }
}
