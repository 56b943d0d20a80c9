/// Past swarm runs, for `purser runs list|show`.
public protocol RunStore: Sendable {
    /// Keeps a swarm run's final report (JSON).
    func saveRun(_ run: RunRecord) throws(LedgerError)
    /// The latest runs, newest first; reports are left out.
    func runs(limit: Int) throws(LedgerError) -> [RunRecord]
    func run(id: String) throws(LedgerError) -> RunRecord?
}

/// One past swarm run.
public struct RunRecord: Sendable, Hashable {
    public var id: String
    public var swarm: String
    public var team: String
    public var ok: Bool
    public var startedMs: Int64
    /// The final report as JSON text; empty in listings.
    public var report: String

    public init(id: String, swarm: String, team: String, ok: Bool, startedMs: Int64, report: String) {
        self.id = id
        self.swarm = swarm
        self.team = team
        self.ok = ok
        self.startedMs = startedMs
        self.report = report
    }
}

/// The runs table: each run's final report as JSON.
public struct SQLRunStore<Driver: SQLDriver>: RunStore, SQLStore {
    public let driver: Driver

    public init(existing driver: Driver) { self.driver = driver }

    public static func tables(_ dialect: SQLDialect) -> [String] {
        [
            """
            CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, swarm TEXT NOT NULL, team TEXT NOT NULL,
                ok BIGINT NOT NULL, started_ms BIGINT NOT NULL, report TEXT NOT NULL)
            """
        ]
    }

    public func saveRun(_ run: RunRecord) throws(LedgerError) {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run(
                """
                INSERT INTO runs (id, swarm, team, ok, started_ms, report) VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (id) DO UPDATE SET ok = excluded.ok, report = excluded.report
                """, run.id.sql, run.swarm.sql, run.team.sql, Int64(run.ok ? 1 : 0).sql, run.startedMs.sql, run.report.sql)
        }
    }

    public func runs(limit: Int) throws(LedgerError) -> [RunRecord] {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT id, swarm, team, ok, started_ms FROM runs ORDER BY started_ms DESC, id LIMIT $1", Int64(limit).sql)
                .map { RunRecord(id: $0[0].string ?? "", swarm: $0[1].string ?? "", team: $0[2].string ?? "", ok: $0[3].int != 0,
                    startedMs: $0[4].int, report: "") }
        }
    }

    public func run(id: String) throws(LedgerError) -> RunRecord? {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT id, swarm, team, ok, started_ms, report FROM runs WHERE id = $1", id.sql).first.map {
                RunRecord(id: $0[0].string ?? "", swarm: $0[1].string ?? "", team: $0[2].string ?? "", ok: $0[3].int != 0,
                    startedMs: $0[4].int, report: $0[5].string ?? "")
            }
        }
    }
}
