import CLibPQ
import Glibc
import Logging
import Synchronization

/// The shared store: one PostgreSQL database, reached through libpq. Transactions run at
/// READ COMMITTED: a reserve is one conditional UPDATE, and the read-then-write steps
/// (load a node, then settle it) lock the node's row first (`SQLDialect.lockRow`), so a
/// reclaim and a late settle of one node queue on that lock. When PostgreSQL aborts a
/// transaction anyway (40001, or 40P01 on a deadlock) the driver runs its body again, up
/// to 5 more times. When the connection is lost before COMMIT (a restart, a failover),
/// the driver reconnects, for as long as `retry` allows, and runs the body again.
public final class PostgresDriver: SQLDriver {
    public let dialect = SQLDialect.postgres
    /// Connections per driver: four calls in flight at once, so that a few waiting on a
    /// row lock or a slow COMMIT leave others theirs; few enough that many supervisors can
    /// share a server's `max_connections` (100 by default). Each is opened when first needed.
    public static let poolSize = 4
    private let pool: PostgresPool
    private let retry: StoreRetry

    /// `url` is a libpq connection string (`host=… dbname=…`) or a `postgres://` URL. The
    /// first connection is not waited for: a store never reached is a setting to fix.
    public init(url: String, retry: StoreRetry = StoreRetry()) throws(LedgerError) {
        pool = try PostgresPool(url: url, size: Self.poolSize)
        self.retry = retry
    }

    /// One statement in autocommit: no BEGIN or COMMIT round trips.
    public func single(_ sql: String, _ arguments: [SQLValue]) throws(LedgerError) -> [[SQLValue]] {
        try attempt { (connection) throws(LedgerError) in try connection.query(sql, arguments, prepared: true) }
    }

    public func transaction<T>(_ body: (any SQLSession) throws(LedgerError) -> T) throws(LedgerError) -> T {
        try attempt { (connection) throws(LedgerError) in
            try connection.begin()
            let result = try body(connection)
            try connection.rows.flush(connection)
            try connection.commit()
            return result
        }
    }

    /// Runs `work` on a connection of the pool, again after a deadlock, a serialization
    /// failure or a lost connection, as `PostgresConnection.recover` decides. A call may
    /// wait here, for a connection or for the store: the store's calls run on threads kept
    /// for them (`StoreThreads`), never on Swift's cooperative pool or Dispatch's.
    private func attempt<T>(
        _ work: (PostgresConnection) throws(LedgerError) -> T
    ) throws(LedgerError) -> T {
        try pool.with { (connection) throws(LedgerError) -> T in
            var retries = 0
            var losses = 0
            while true {
                // Its own give-up is final: it waited the whole window already.
                try connection.connect(retry)
                do throws(LedgerError) {
                    return try work(connection)
                } catch {
                    try connection.recover(from: error, retries: &retries, losses: &losses)
                }
            }
        }
    }
}

/// A connection is in the pool's idle list or used by one call: never by two at once.
struct PostgresBox: @unchecked Sendable {
    let connection: PostgresConnection
    init(_ connection: PostgresConnection) { self.connection = connection }
}

extension PostgresConnection: SQLSession {}

public typealias PostgresLedger = SQLLedger<PostgresDriver>

extension SQLLedger where Driver == PostgresDriver {
    public convenience init(url: String, retry: StoreRetry = StoreRetry()) throws(LedgerError) {
        try self.init(driver: PostgresDriver(url: url, retry: retry))
    }
}

/// A thin, typed layer over libpq: one connection, text parameters and text results,
/// errors that carry PostgreSQL's message and SQLSTATE.
final class PostgresConnection {
    /// How often a transaction aborted by a serialization failure or deadlock is run again.
    static let serializationRetries = 5
    /// How often one call runs again after losing the connection: a server that drops it
    /// each time the call is made is not briefly away.
    static let connectionRetries = 5

    let handle: OpaquePointer
    /// The connection string with any password masked, for messages.
    let displayURL: String
    /// Whether the current attempt met a serialization failure or a deadlock (the body
    /// sees only a LedgerError).
    private var sawRetryable = false
    /// Whether the server said the session is over (a shutdown, a lost link), which libpq
    /// may not have noticed yet: the next attempt reconnects.
    var needsReset = false
    /// What the pool's connections know of an outage.
    let outage: PostgresOutage
    /// Whether this handle was ever connected: one the pool opened is still connecting.
    var hasConnected: Bool
    private var isFirstTransaction = true
    /// Statements prepared in this session, by their SQL: their names.
    var prepared: [String: String] = [:]
    /// Names are never reused within a session: one forgotten may still exist on the server.
    private var preparedCount = 0
    let rows = NodeRows(dialect: .postgres)

    init(url: String, outage: PostgresOutage = PostgresOutage()) throws(LedgerError) {
        displayURL = PostgresConnection.redacted(url)
        self.outage = outage
        hasConnected = true
        guard let handle = PQconnectdb(url) else {
            throw LedgerError(.storeFailed, "cannot connect to PostgreSQL at \(displayURL): out of memory")
        }
        guard PQstatus(handle) == CONNECTION_OK else {
            let message = PostgresConnection.trimmed(PQerrorMessage(handle))
            PQfinish(handle)
            throw LedgerError(.storeFailed, "cannot connect to PostgreSQL at \(displayURL): \(message)")
        }
        self.handle = handle
        // CREATE … IF NOT EXISTS reports "already exists, skipping" as a NOTICE; libpq would
        // print it on stderr. Errors still arrive in results.
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
    }

    /// Starts connecting without waiting: `connect` finishes it, or waits for the store as
    /// after losing a connection.
    init(starting url: String, outage: PostgresOutage) throws(LedgerError) {
        displayURL = PostgresConnection.redacted(url)
        self.outage = outage
        hasConnected = false
        // The tables were made on the pool's first connection, before this one was opened:
        // no need to take turns with other processes making them.
        isFirstTransaction = false
        guard let handle = PQconnectStart(url) else {
            throw LedgerError(.storeFailed, "cannot connect to PostgreSQL at \(displayURL): out of memory")
        }
        self.handle = handle
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
    }

    deinit { PQfinish(handle) }

    // MARK: - Transactions

    /// Where the current attempt stands, for `recover`.
    private var committing = false

    /// Starts an attempt on a live connection (see `connect`).
    func startAttempt() {
        sawRetryable = false
        committing = false
    }

    func begin() throws(LedgerError) {
        rows.reset()
        try execute("BEGIN")
        if isFirstTransaction {
            // The first transaction is the ledger creating its tables. Concurrent CREATE
            // TABLE IF NOT EXISTS can collide in PostgreSQL's catalog (a unique violation
            // on pg_type), so processes starting together on an empty database take turns.
            // The lock ends with the transaction.
            try execute("SELECT pg_advisory_xact_lock(7079581240305813504)")
        }
    }

    /// After an attempt failed with `error`: rolls back, then returns if the body is to run
    /// again (after a serialization failure or deadlock, up to `serializationRetries`
    /// times; after losing the connection before COMMIT, up to `connectionRetries` times,
    /// `connect` waiting for the store first), and throws otherwise.
    func recover(from error: LedgerError, retries: inout Int, losses: inout Int) throws(LedgerError) {
        if PQstatus(handle) != CONNECTION_OK || needsReset {
            needsReset = true
            // Before COMMIT nothing was written: run the body again once reconnected.
            // During COMMIT the transaction may or may not have committed: say so.
            if committing {
                throw lost("the connection dropped during COMMIT; whether it committed is unknown (\(error.message))")
            }
            losses += 1
            guard losses <= Self.connectionRetries else { throw error }
            return
        }
        if PQtransactionStatus(handle) != PQTRANS_IDLE {
            do throws(LedgerError) {
                try execute("ROLLBACK")
            } catch let rollback {
                Logger(label: "purser.store").debug("ROLLBACK failed", metadata: ["error": "\(rollback)", "after": "\(error)"])
            }
        }
        guard sawRetryable, retries < Self.serializationRetries else { throw error }
        retries += 1
        // Back off, exponentially and with jitter, so the transactions that collided do not
        // collide again: 1–3 ms, then 2–6, 4–12, 8–24, 16–48.
        let base = UInt32(1_000) << (retries - 1)
        usleep(base + UInt32.random(in: 0..<(2 * base)))
    }

    func commit() throws(LedgerError) {
        committing = true
        let started = ContinuousClock.now
        let result = PQexec(handle, "COMMIT")
        defer { PQclear(result) }
        try check(result, "COMMIT")
        // COMMIT of a transaction that had already failed succeeds, as a ROLLBACK.
        if let tag = PQcmdStatus(result), String(cString: tag) == "ROLLBACK" {
            throw LedgerError(.storeFailed, "postgres: the transaction was rolled back, not committed")
        }
        StoreMetrics.committed("postgresql", since: started)
        isFirstTransaction = false
    }

    func lost(_ detail: String) -> LedgerError {
        let message = PostgresConnection.trimmed(PQerrorMessage(handle))
        return LedgerError(
            .storeFailed, "lost the connection to PostgreSQL at \(displayURL): \(detail)\(message.isEmpty ? "" : ": " + message)")
    }

    // MARK: - Statements

    func execute(_ sql: String) throws(LedgerError) {
        let result = PQexec(handle, sql)
        defer { PQclear(result) }
        try check(result, sql)
    }

    /// Runs `sql` with `arguments` as text parameters `$1`, `$2`, … and returns every row.
    /// `prepared`: parsed and planned once per session, then only executed (the hot calls,
    /// reserve and settle: it spares the server a parse and a plan each time).
    func query(_ sql: String, _ arguments: [SQLValue]) throws(LedgerError) -> [[SQLValue]] {
        try query(sql, arguments, prepared: false)
    }

    func query(_ sql: String, _ arguments: [SQLValue], prepared: Bool) throws(LedgerError) -> [[SQLValue]] {
        for case .text(let value) in arguments where value.utf8.contains(0) {
            throw LedgerError(.invalid, "PostgreSQL text cannot hold a NUL character")
        }
        // libpq copies the parameters before it returns; they live until then.
        let owned: [UnsafeMutablePointer<CChar>?] = arguments.map { argument in
            switch argument {
            case .null: nil
            case .integer(let value): strdup(String(value))
            case .text(let value): strdup(value)
            case .blob(let value): mallocCopy(value)
            }
        }
        defer { for pointer in owned { free(pointer) } }
        let values = PostgresParameters(values: owned.map { $0.map { UnsafePointer($0) } }, arguments: arguments)
        var result = try send(sql, values, prepared: prepared)
        if prepared, let state = Self.sqlState(result), state == "26000" || state == "0A000" {
            // Gone (a DEALLOCATE, a pooler), or planned for a function since replaced: it
            // never ran, so it is prepared again and run once more.
            PQclear(result)
            if let name = self.prepared.removeValue(forKey: sql), state == "0A000" {
                PQclear(PQexec(handle, "DEALLOCATE \(name)"))
            }
            result = try send(sql, values, prepared: true)
        }
        defer { PQclear(result) }
        try check(result, sql)
        guard let result else { return [] }
        return Self.rows(result)
    }

    private func send(_ sql: String, _ parameters: PostgresParameters, prepared: Bool) throws(LedgerError) -> OpaquePointer? {
        let count = Int32(parameters.values.count)
        guard prepared else {
            return PQexecParams(handle, sql, count, nil, parameters.values, parameters.lengths, parameters.formats, 0)
        }
        let name = try preparedName(sql, parameters: parameters.values.count)
        return PQexecPrepared(handle, name, count, parameters.values, parameters.lengths, parameters.formats, 0)
    }

    /// The name `sql` is prepared under in this session, preparing it first if need be.
    private func preparedName(_ sql: String, parameters: Int) throws(LedgerError) -> String {
        if let name = prepared[sql] { return name }
        preparedCount += 1
        let name = "purser_\(preparedCount)"
        let result = PQprepare(handle, name, sql, Int32(parameters), nil)
        defer { PQclear(result) }
        try check(result, sql)
        prepared[sql] = name
        return name
    }

    private static func sqlState(_ result: OpaquePointer?) -> String? {
        guard let result, PQresultStatus(result) == PGRES_FATAL_ERROR else { return nil }
        return PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
    }

    private static func rows(_ result: OpaquePointer) -> [[SQLValue]] {
        let columns = PQnfields(result)
        let integral = (0..<columns).map { column -> Bool in
            switch PQftype(result, column) {
            case 20, 21, 23: true  // int8, int2, int4
            default: false
            }
        }
        let bytea = (0..<columns).map { PQftype(result, $0) == 17 }
        return (0..<PQntuples(result)).map { row in
            (0..<columns).map { column -> SQLValue in
                if PQgetisnull(result, row, column) != 0 { return .null }
                if bytea[Int(column)] { return .blob(byteaBytes(PQgetvalue(result, row, column))) }
                let text = String(cString: PQgetvalue(result, row, column))
                if integral[Int(column)], let value = Int64(text) { return .integer(value) }
                return .text(text)
            }
        }
    }

    /// Throws unless `result` is a success; notes whether the failure is one to retry.
    private func check(_ result: OpaquePointer?, _ sql: String) throws(LedgerError) {
        guard let result else {
            // Nothing came back: the statement could not be sent, and libpq may not have
            // marked the connection bad yet (a write to a socket the server closed).
            needsReset = true
            throw LedgerError(.storeFailed, "postgres: \(PostgresConnection.trimmed(PQerrorMessage(handle)))")
        }
        let status = PQresultStatus(result)
        if status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK { return }
        let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
        var message = PostgresConnection.trimmed(PQresultErrorMessage(result))
        if message.isEmpty { message = PostgresConnection.trimmed(PQerrorMessage(handle)) }
        if message.isEmpty { message = String(cString: PQresStatus(status)) }
        if state == "40001" || state == "40P01" { sawRetryable = true }
        // The server gives every error it sends a SQLSTATE; one without came from libpq,
        // about the link (which PQstatus may still call good).
        if state.isEmpty || Self.endsSession(state) { needsReset = true }
        if let code = LedgerError.Code(sqlState: state) {
            let primary = PQresultErrorField(result, Int32(UInt8(ascii: "M"))).map { String(cString: $0) } ?? message
            throw LedgerError(code, primary)
        }
        if state.hasPrefix("23") {
            throw LedgerError(.constraint, "the store refused the change: \(message) (SQLSTATE \(state))")
        }
        let statement = sql.split(whereSeparator: \.isNewline).first.map(String.init) ?? sql
        throw LedgerError(
            .storeFailed, "postgres: \(message)\(state.isEmpty ? "" : " (SQLSTATE \(state))"), in: \(statement)")
    }

    static func trimmed(_ message: UnsafePointer<CChar>?) -> String {
        guard let message else { return "" }
        var text = String(cString: message)
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return text
    }
}
