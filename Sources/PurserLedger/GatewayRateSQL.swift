/// An integration's rate limiter and breaker in one row of gateway_rate, for every
/// supervisor sharing the store. The GCRA keeps one number, the theoretical arrival time
/// (`tat_us`); the breaker is open while `open_until_us` is set (0: closed), and half-open
/// once that time has passed, when one supervisor at a time may hold the trial
/// (`trial_until_us`). Times are the database's clock in microseconds, never a host's:
/// hosts' clocks disagree, and a rate is judged against the one clock they share.
/// Admitting a call is one conditional UPDATE, one round trip; a refusal reads the row to
/// say how long to wait.
extension SQLGatewayStateStore {
    static var rateTable: String {
        """
        CREATE TABLE IF NOT EXISTS gateway_rate (name TEXT PRIMARY KEY, tat_us BIGINT NOT NULL,
            open_until_us BIGINT NOT NULL, trial_until_us BIGINT NOT NULL)
        """
    }

    /// Microseconds since the epoch, by the database's clock, the same all through one
    /// statement (PostgreSQL's statement_timestamp; SQLite's 'now' is fixed per statement).
    private var now: String {
        driver.dialect.serverFunctions
            ? "(extract(epoch from statement_timestamp()) * 1000000)::bigint"
            : "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)"
    }

    private var greatest: String { driver.dialect.serverFunctions ? "GREATEST" : "max" }

    private var admitStatement: String {
        """
        UPDATE gateway_rate SET tat_us = \(greatest)(tat_us, \(now)) + $2
        WHERE name = $1 AND open_until_us = 0 AND \(greatest)(tat_us, \(now)) - $3 <= \(now)
        RETURNING tat_us
        """
    }

    public func admitCall(name: String, intervalUs: Int64, toleranceUs: Int64) throws(LedgerError) -> RateAdmission {
        let arguments = [name.sql, intervalUs.sql, toleranceUs.sql]
        if try !driver.single(admitStatement, arguments).isEmpty { return RateAdmission(admitted: true) }
        return try driver.transaction { (session) throws(LedgerError) in
            try insertRow(name, session)
            if try !session.query(admitStatement, arguments).isEmpty { return RateAdmission(admitted: true) }
            let row = try session.run(
                """
                SELECT \(greatest)(tat_us, \(now)) - $2 - \(now), open_until_us, open_until_us - \(now)
                FROM gateway_rate WHERE name = $1
                """, name.sql, toleranceUs.sql)[0]
            return RateAdmission(admitted: false, waitUs: max(0, row[0].int), breakerUs: row[1].int == 0 ? nil : max(0, row[2].int))
        }
    }

    public func pushBackCalls(name: String, delayUs: Int64, toleranceUs: Int64) throws(LedgerError) {
        _ = try driver.single(
            """
            INSERT INTO gateway_rate (name, tat_us, open_until_us, trial_until_us) VALUES ($1, \(now) + $2 + $3, 0, 0)
            ON CONFLICT (name) DO UPDATE SET tat_us = \(greatest)(gateway_rate.tat_us, excluded.tat_us)
            """, [name.sql, delayUs.sql, toleranceUs.sql])
    }

    public func breakerOpenFor(name: String) throws(LedgerError) -> Int64? {
        let rows = try driver.single(
            "SELECT open_until_us, open_until_us - \(now) FROM gateway_rate WHERE name = $1", [name.sql])
        guard let row = rows.first, row[0].int != 0 else { return nil }
        return max(0, row[1].int)
    }

    public func openBreaker(name: String, coolDownUs: Int64) throws(LedgerError) {
        _ = try driver.single(
            """
            INSERT INTO gateway_rate (name, tat_us, open_until_us, trial_until_us) VALUES ($1, 0, \(now) + $2, 0)
            ON CONFLICT (name) DO UPDATE
            SET open_until_us = \(greatest)(gateway_rate.open_until_us, excluded.open_until_us), trial_until_us = 0
            """, [name.sql, coolDownUs.sql])
    }

    public func takeTrial(name: String, coolDownUs: Int64, intervalUs: Int64, toleranceUs: Int64) throws(LedgerError) -> Bool {
        // The trial is a call like any other: it takes the rate's slot, and only if there is one.
        try !driver.single(
            """
            UPDATE gateway_rate SET trial_until_us = \(now) + $2, tat_us = \(greatest)(tat_us, \(now)) + $3
            WHERE name = $1 AND open_until_us <> 0 AND open_until_us <= \(now) AND trial_until_us <= \(now)
                AND \(greatest)(tat_us, \(now)) - $4 <= \(now)
            RETURNING name
            """, [name.sql, coolDownUs.sql, intervalUs.sql, toleranceUs.sql]
        ).isEmpty
    }

    public func closeBreaker(name: String) throws(LedgerError) {
        _ = try driver.single("UPDATE gateway_rate SET open_until_us = 0, trial_until_us = 0 WHERE name = $1", [name.sql])
    }

    private func insertRow(_ name: String, _ session: any SQLSession) throws(LedgerError) {
        try session.run(
            """
            INSERT INTO gateway_rate (name, tat_us, open_until_us, trial_until_us) VALUES ($1, 0, 0, 0)
            ON CONFLICT (name) DO NOTHING
            """, name.sql)
    }
}
