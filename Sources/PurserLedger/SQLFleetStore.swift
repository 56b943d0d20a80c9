/// The fleet's queue and hosts over a `SQLDriver`; the statements are in `FleetSQL`.
public struct SQLFleetStore<Driver: SQLDriver>: SQLStore {
    public let driver: Driver
    let sql: FleetSQL

    public init(existing driver: Driver) {
        self.driver = driver
        sql = FleetSQL(dialect: driver.dialect)
    }

    public static func tables(_ dialect: SQLDialect) -> [String] { FleetSQL.tables(dialect) }
    public static var addedColumns: [AddedColumn] { FleetSQL.addedColumns }

    func transaction<T>(_ body: (any SQLSession) throws(LedgerError) -> T) throws(LedgerError) -> T {
        try driver.transaction(body)
    }

    /// One statement in autocommit, where a transaction would add two round trips
    /// (PostgreSQL: BEGIN and COMMIT; the statement kept prepared). Reads, and writes of one
    /// statement, only.
    func single(_ statement: String, _ arguments: SQLValue...) throws(LedgerError) -> [[SQLValue]] {
        try driver.single(statement, arguments)
    }

    /// Wakes listening hosts when the transaction commits (PostgreSQL): at most once a
    /// transaction, and only a hint; nothing on SQLite.
    func wake(_ session: any SQLSession, _ wake: FleetSQL.Wake) throws(LedgerError) {
        if let statement = sql.notify(wake) { try session.run(statement) }
    }

    /// Inserts `rows` (each of the same width) a chunk of rows a statement, not one each:
    /// one round trip where there were `rows.count`.
    func insert(_ session: any SQLSession, _ head: String, _ rows: [[SQLValue]], constants: String = "") throws(LedgerError) {
        guard let width = rows.first?.count else { return }
        var start = 0
        while start < rows.count {
            let chunk = rows[start..<min(start + FleetSQL.rowsAStatement, rows.count)]
            _ = try session.query(sql.insert(head, rows: chunk.count, width: width, constants: constants), chunk.flatMap { $0 })
            start += chunk.count
        }
    }

    static func swarm(_ row: [SQLValue]) -> QueuedSwarm {
        QueuedSwarm(
            id: row[0].string ?? "", team: row[1].string ?? "", name: row[2].string ?? "", priority: row[3].int,
            file: row[4].string ?? "", source: row[5].string ?? "", state: row[6].string ?? "", verdict: row[7].string,
            message: row[8].string, node: row[9].optionalInt,
            holder: row[10].string.map { Holder(id: $0, epoch: row[11].int) }, submittedMs: row[12].int,
            endedMs: row[13].optionalInt, report: row[14].string, paused: row[15].int != 0, gave: row[16].int)
    }
}

extension SQLFleetStore: HostStore {
    public func join(host name: String, slots: Int, version: String) throws(LedgerError) -> HostLease {
        try transaction { (session) throws(LedgerError) in
            let rows = try session.run(sql.join, name.sql, Int64(slots).sql, version.sql)
            return HostLease(name: name, epoch: rows.first?.first?.int ?? 1)
        }
    }

    public func heartbeat(_ lease: HostLease, running: Int, note: String) throws(LedgerError) {
        let rows = try single(sql.heartbeat, lease.name.sql, lease.epoch.sql, Int64(running).sql, note.sql)
        guard !rows.isEmpty else {
            throw LedgerError(.fenced, "host \(lease.name) epoch \(lease.epoch) is no longer live: its work was rescued")
        }
    }

    public func recordWorkers(_ workers: [RunningWorker]) throws(LedgerError) {
        guard !workers.isEmpty else { return }
        try transaction { (session) throws(LedgerError) in
            for worker in workers {
                let claim = worker.claim
                try session.run(
                    sql.recordWorker, claim.id.sql, claim.host.name.sql, claim.host.epoch.sql, Int64(claim.attempt).sql,
                    Int64(worker.pid).sql, worker.memoryPeakBytes.sql)
            }
        }
    }

    public func leave(_ lease: HostLease) throws(LedgerError) {
        try transaction { (session) throws(LedgerError) in
            try session.run(
                "UPDATE fleet_hosts SET state = 'left', running = 0 WHERE name = $1 AND epoch = $2 AND state = 'live'",
                lease.name.sql, lease.epoch.sql)
        }
    }

    public func hosts() throws(LedgerError) -> [HostRow] {
        try transaction { (session) throws(LedgerError) in
            try session.run(
                "SELECT name, epoch, slots, running, version, state, heartbeat_ms, started_ms, note FROM fleet_hosts ORDER BY name"
            ).map {
                HostRow(
                    name: $0[0].string ?? "", epoch: $0[1].int, slots: Int($0[2].int), running: Int($0[3].int),
                    version: $0[4].string ?? "", state: $0[5].string ?? "", heartbeatMs: $0[6].int, startedMs: $0[7].int,
                    note: $0[8].string ?? "")
            }
        }
    }

    public func lead(host name: String, ttlMs: Int64) throws(LedgerError) -> Bool {
        try transaction { (session) throws(LedgerError) in
            try !session.run(sql.lead, name.sql, ttlMs.sql).isEmpty
        }
    }
}
