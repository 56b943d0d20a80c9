/// Every statement of the fleet's queue and hosts, in one place (River's and Oban's habit):
/// what a claim locks, what a rescue moves and what fences a late host can be read here
/// alone. Times are the database's clock (`now`), never a host's: hosts' clocks disagree,
/// and a heartbeat is judged against the one clock they share.
struct FleetSQL {
    let dialect: SQLDialect

    /// Milliseconds since the epoch, by the database's clock.
    var now: String {
        dialect.serverFunctions
            ? "(extract(epoch from clock_timestamp()) * 1000)::bigint"
            : "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
    }

    static func tables(_ dialect: SQLDialect) -> [String] {
        [
            Schema.frozenTeams,
            Schema.auditEvents(dialect),
            Schema.approvals,
            """
            CREATE TABLE IF NOT EXISTS fleet_swarms (id TEXT PRIMARY KEY, team TEXT NOT NULL, name TEXT NOT NULL,
                priority BIGINT NOT NULL, concurrency BIGINT NOT NULL, file TEXT NOT NULL, source TEXT NOT NULL,
                state TEXT NOT NULL, verdict TEXT, message TEXT, node BIGINT, holder TEXT, holder_epoch BIGINT,
                taker TEXT, taker_epoch BIGINT, submitted_ms BIGINT NOT NULL, seq BIGINT NOT NULL, ended_ms BIGINT, report TEXT,
                paused BIGINT NOT NULL DEFAULT 0, gave BIGINT NOT NULL DEFAULT 0)
            """,
            "CREATE INDEX IF NOT EXISTS fleet_swarms_state ON fleet_swarms (state, team)",
            """
            CREATE TABLE IF NOT EXISTS fleet_routines (id \(dialect.serialKey), swarm TEXT NOT NULL, name TEXT NOT NULL,
                position BIGINT NOT NULL, priority BIGINT NOT NULL, swarm_priority BIGINT NOT NULL, state TEXT NOT NULL,
                pending BIGINT NOT NULL, attempt BIGINT NOT NULL, memory BIGINT NOT NULL, host TEXT, host_epoch BIGINT, ready_ms BIGINT,
                verdict TEXT, message TEXT, output TEXT, node BIGINT, report TEXT, stop_for TEXT, gate TEXT, gate_ms BIGINT,
                approval TEXT, UNIQUE (swarm, name))
            """,
            """
            CREATE INDEX IF NOT EXISTS fleet_routines_gated ON fleet_routines (id) WHERE state = 'awaiting_approval'
            """,
            """
            CREATE INDEX IF NOT EXISTS fleet_routines_ready ON fleet_routines (swarm_priority DESC, priority DESC, ready_ms, id)
                WHERE state = 'ready'
            """,
            "CREATE INDEX IF NOT EXISTS fleet_routines_running ON fleet_routines (host, host_epoch) WHERE state = 'running'",
            "CREATE INDEX IF NOT EXISTS fleet_routines_swarm_state ON fleet_routines (swarm, state)",
            """
            CREATE TABLE IF NOT EXISTS fleet_edges (swarm TEXT NOT NULL, earlier TEXT NOT NULL, later TEXT NOT NULL,
                PRIMARY KEY (swarm, earlier, later))
            """,
            """
            CREATE TABLE IF NOT EXISTS fleet_attempts (swarm TEXT NOT NULL, routine TEXT NOT NULL, attempt BIGINT NOT NULL,
                host TEXT NOT NULL, started_ms BIGINT NOT NULL, ended_ms BIGINT, verdict TEXT, PRIMARY KEY (swarm, routine, attempt))
            """,
            """
            CREATE TABLE IF NOT EXISTS fleet_events (id \(dialect.serialKey), swarm TEXT NOT NULL, at_ms BIGINT NOT NULL,
                kind TEXT NOT NULL, routine TEXT, fields TEXT NOT NULL)
            """,
            "CREATE INDEX IF NOT EXISTS fleet_events_swarm ON fleet_events (swarm, id)",
            """
            CREATE TABLE IF NOT EXISTS fleet_hosts (name TEXT PRIMARY KEY, epoch BIGINT NOT NULL, slots BIGINT NOT NULL,
                running BIGINT NOT NULL, version TEXT NOT NULL, state TEXT NOT NULL, heartbeat_ms BIGINT NOT NULL,
                started_ms BIGINT NOT NULL, note TEXT NOT NULL)
            """,
            "CREATE TABLE IF NOT EXISTS fleet_leader (id BIGINT PRIMARY KEY, host TEXT NOT NULL, until_ms BIGINT NOT NULL)",
            """
            CREATE TABLE IF NOT EXISTS fleet_teams (team TEXT PRIMARY KEY, on_conflict TEXT NOT NULL, aging_ms BIGINT NOT NULL)
            """,
        ]
    }

    /// Columns added since the tables first shipped (`SQLStore.addedColumns`): a routine's
    /// gate for approval and its request (`gated`), and a running routine's worker, as its
    /// host sees it at its heartbeat (`recordWorker`).
    static let addedColumns = [
        AddedColumn(table: "fleet_routines", name: "gate", type: "TEXT"),
        AddedColumn(table: "fleet_routines", name: "gate_ms", type: "BIGINT"),
        AddedColumn(table: "fleet_routines", name: "approval", type: "TEXT"),
        AddedColumn(table: "fleet_routines", name: "pid", type: "BIGINT"),
        AddedColumn(table: "fleet_routines", name: "memory_peak", type: "BIGINT"),
        AddedColumn(table: "fleet_teams", name: "reuse_untrusted", type: "BIGINT"),
    ]

    /// A swarm's routines in the job's order. `$1` swarm.
    let routineRows = """
        SELECT swarm, name, state, attempt, host, verdict, message, node, pid, memory_peak, approval FROM fleet_routines
        WHERE swarm = $1 ORDER BY position
        """

    /// A running worker's pid and memory peak, if the claim is still the host's. `$1` id,
    /// `$2` host, `$3` epoch, `$4` attempt, `$5` pid, `$6` memory peak.
    let recordWorker = """
        UPDATE fleet_routines SET pid = $5, memory_peak = $6
        WHERE id = $1 AND state = 'running' AND host = $2 AND host_epoch = $3 AND attempt = $4
        """

    // MARK: Admission and completion: a swarm row taken by one host at a time.

    /// The first swarm of a team waiting for its hold (queued, or running but paused by a
    /// preemption and waiting to grow back) with none being admitted, and not in `skipping`
    /// (teams whose first swarm waits: nobody overtakes it), in the order of the team's
    /// policy: `queue`, `fail` and `proportional` by age alone; `priority` and `preempt` by
    /// priority plus one for every `aging_ms` waited, then age. `$1` host, `$2` its epoch.
    /// Swarms in `passing` are passed over alone (a share below their minimum lets the
    /// team's others take theirs).
    func takeToAdmit(skipping teams: Int, passing swarms: Int = 0) -> String {
        let list = { (first: Int, count: Int) in (0..<count).map { dialect.placeholder(first + $0) }.joined(separator: ", ") }
        var skip = teams == 0 ? "" : "AND q.team NOT IN (\(list(3, teams)))"
        if swarms > 0 { skip += " AND q.id NOT IN (\(list(3 + teams, swarms)))" }
        return """
            WITH next AS MATERIALIZED (
                SELECT q.id FROM fleet_swarms q LEFT JOIN fleet_teams t ON t.team = q.team
                WHERE (q.state = 'queued' OR (q.state = 'running' AND q.paused = 1 AND q.taker IS NULL)) \(skip)
                AND NOT EXISTS (SELECT 1 FROM frozen_teams f WHERE f.team = q.team)
                AND NOT EXISTS (SELECT 1 FROM fleet_swarms o WHERE o.team = q.team
                    AND (o.state = 'admitting' OR (o.state = 'running' AND o.taker IS NOT NULL)))
                AND EXISTS (SELECT 1 FROM fleet_hosts h WHERE h.name = $1 AND h.epoch = $2 AND h.state = 'live')
                ORDER BY CASE WHEN t.on_conflict IN ('priority', 'preempt')
                    THEN q.priority + (\(now) - q.submitted_ms) / t.aging_ms ELSE 0 END DESC, q.submitted_ms, q.seq, q.id
                LIMIT 1 \(dialect.serverFunctions ? "FOR UPDATE OF q SKIP LOCKED" : ""))
            UPDATE fleet_swarms SET state = CASE WHEN state = 'queued' THEN 'admitting' ELSE state END, taker = $1, taker_epoch = $2
            WHERE id IN (SELECT id FROM next) AND (state = 'queued' OR (state = 'running' AND paused = 1 AND taker IS NULL))
            RETURNING \(swarmColumns)
            """
    }

    var setTeamPolicy: String {
        """
        INSERT INTO fleet_teams (team, on_conflict, aging_ms, reuse_untrusted) VALUES ($1, $2, $3, $4)
        ON CONFLICT (team) DO UPDATE SET on_conflict = $2, aging_ms = $3, reuse_untrusted = $4
        """
    }

    /// Admitted swarms with nothing left to run. `$1` host, `$2` its epoch. The states not
    /// done are named: `state <> 'done'` walked the swarm's done rows in the index first.
    var takeToComplete: String {
        """
        WITH next AS MATERIALIZED (
            SELECT id FROM fleet_swarms s WHERE state IN ('running', 'cancelling') AND taker IS NULL
            AND NOT EXISTS (SELECT 1 FROM fleet_routines r WHERE r.swarm = s.id
                AND r.state IN ('waiting', 'awaiting_approval', 'ready', 'running'))
            AND EXISTS (SELECT 1 FROM fleet_hosts h WHERE h.name = $1 AND h.epoch = $2 AND h.state = 'live')
            ORDER BY submitted_ms, seq LIMIT 1 \(dialect.lockSkippingLocked))
        UPDATE fleet_swarms SET state = 'completing', taker = $1, taker_epoch = $2
        WHERE id IN (SELECT id FROM next) AND state IN ('running', 'cancelling')
        RETURNING \(swarmColumns)
        """
    }

    let swarmColumns = """
        id, team, name, priority, file, source, state, verdict, message, node, holder, holder_epoch, submitted_ms, ended_ms, report,
        paused, gave
        """

    // MARK: Claims

    /// Ready routines in priority order, at most a swarm's `concurrency` running at once
    /// (counted when the claim is made: claims racing on two hosts may pass it by their
    /// number, and the team's `workers` cap in the ledger is the hard limit). `$1` host,
    /// `$2` its epoch, `$3` how many, `$4` the memory the host has left. `startingAttempts`
    /// (PostgreSQL's data-modifying WITH; SQLite has none): the same statement inserts the
    /// claimed rows' attempts, a round trip less.
    func claim(startingAttempts: Bool) -> String {
        // The swarms below their concurrency are found once a claim, not once a ready row:
        // counted per row, a claim walked every ready row of a full swarm with a count each.
        let columns = "id, swarm, name, attempt, memory, priority, ready_ms, swarm_priority"
        let next = """
            open_swarms AS (
                SELECT s.id FROM fleet_swarms s WHERE s.state = 'running' AND s.paused = 0
                AND (SELECT count(*) FROM fleet_routines o WHERE o.swarm = s.id AND o.state = 'running') < s.concurrency
                AND NOT EXISTS (SELECT 1 FROM frozen_teams f WHERE f.team = s.team)),
            next AS MATERIALIZED (
                SELECT id FROM fleet_routines r WHERE state = 'ready' AND memory <= $4
                AND swarm IN (SELECT id FROM open_swarms)
                AND EXISTS (SELECT 1 FROM fleet_hosts h WHERE h.name = $1 AND h.epoch = $2 AND h.state = 'live')
                ORDER BY swarm_priority DESC, priority DESC, ready_ms, id LIMIT $3 \(dialect.lockSkippingLocked))
            """
        let update = """
            UPDATE fleet_routines SET state = 'running', attempt = attempt + 1, host = $1, host_epoch = $2,
                pid = NULL, memory_peak = NULL
            WHERE id IN (SELECT id FROM next) AND state = 'ready'
            RETURNING \(columns)
            """
        guard startingAttempts else { return "WITH \(next)\n\(update)" }
        return """
            WITH \(next),
            claimed AS (\(update)),
            started AS (
                INSERT INTO fleet_attempts (swarm, routine, attempt, host, started_ms)
                SELECT swarm, name, attempt, $1, \(now) FROM claimed)
            SELECT \(columns) FROM claimed
            """
    }

    /// How many more of swarm `$1`'s routines run than its `concurrency` allows.
    let overConcurrency = """
        SELECT (SELECT count(*) FROM fleet_routines WHERE swarm = $1 AND state = 'running') - concurrency
        FROM fleet_swarms WHERE id = $1
        """

    /// Puts back the last `$1` in line of `ids` (just claimed, of one swarm).
    func putBack(_ ids: [Int64]) -> String {
        """
        UPDATE fleet_routines SET state = 'ready', attempt = attempt - 1, host = NULL, host_epoch = NULL, stop_for = NULL
        WHERE id IN (SELECT id FROM fleet_routines WHERE id IN (\(ids.map(String.init).joined(separator: ", ")))
            ORDER BY priority, ready_ms DESC, id DESC LIMIT $1)
        RETURNING id
        """
    }

    /// Ends a claimed routine's attempt if the claim is still this host's. `$1` id, `$2`
    /// host, `$3` epoch, `$4` attempt; then the columns to set from `$5` on.
    func endClaim(_ set: String) -> String {
        """
        UPDATE fleet_routines SET \(set)
        WHERE id = $1 AND state = 'running' AND host = $2 AND host_epoch = $3 AND attempt = $4
        RETURNING swarm, name
        """
    }

    /// On PostgreSQL, a routine's end in one statement, one round trip in autocommit: its
    /// row if the claim is still this host's (`endClaim`'s `$1`–`$4`, the columns to set
    /// from `$5` on, `$5` the verdict), its attempt's end, and when `$10` is 1 (it
    /// succeeded) its dependents one step nearer ready. A fenced claim changes nothing:
    /// every part hangs on the routine's row. Its dependents are rows of other routines,
    /// never the one `ended` changes. Other hosts are woken when two or more became ready:
    /// the host that ran it takes one into the slot it freed.
    func finishInOne(_ set: String) -> String {
        """
        WITH ended AS (
            UPDATE fleet_routines SET \(set)
            WHERE id = $1 AND state = 'running' AND host = $2 AND host_epoch = $3 AND attempt = $4
            RETURNING swarm, name, attempt),
        closed AS (
            UPDATE fleet_attempts SET ended_ms = \(now), verdict = $5
            WHERE (swarm, routine, attempt) IN (SELECT swarm, name, attempt FROM ended)),
        released AS (
            UPDATE fleet_routines SET \(releaseSet)
            WHERE CAST($10 AS BIGINT) = 1 AND state = 'waiting' AND (swarm, name) IN (
                SELECT e.swarm, e.later FROM fleet_edges e JOIN ended d ON e.swarm = d.swarm AND e.earlier = d.name)
            RETURNING state)
        SELECT swarm, name, (SELECT pg_notify('\(Self.channel)', '\(Wake.ready.rawValue)')
            FROM (SELECT 1 FROM released WHERE state = 'ready' OFFSET 1 LIMIT 1) more) FROM ended
        """
    }

    /// One step nearer ready; ready at the last step. One statement where there were two:
    /// the right-hand `pending` is the row's value before the update.
    var releaseSet: String {
        """
        pending = pending - 1, state = CASE WHEN pending = 1 THEN \(Self.readyOrGated) ELSE state END,
            ready_ms = CASE WHEN pending = 1 THEN \(now) ELSE ready_ms END
        """
    }

    /// The state of a routine that has nothing more to wait for: `ready`, unless it holds a
    /// tool marked `approval` (`gate`, its list): then it waits for a person first, holding
    /// nothing. It leaves `waiting` once, so a retry or a preemption does not ask again.
    static let readyOrGated = "CASE WHEN gate IS NULL THEN 'ready' ELSE 'awaiting_approval' END"

    // MARK: Approvals

    /// Gated routines of running swarms with something to do (`SQLFleetApprovals`): a
    /// request to file, or one decided or past its time by the database's clock. `$1` host,
    /// `$2` its epoch, `$3` how many. Columns: the routine's id, swarm, name, gate and its
    /// timeout, the swarm's team, name and node, the clock, then the approval's (all NULL
    /// before it is filed).
    var gated: String {
        let approval = Schema.approvalColumns.split(separator: ",").map { "a." + $0.filter { !$0.isWhitespace } }
        return """
            SELECT r.id, r.swarm, r.name, r.gate, r.gate_ms, s.team, s.name, s.node, \(now), \(approval.joined(separator: ", "))
            FROM fleet_routines r JOIN fleet_swarms s ON s.id = r.swarm LEFT JOIN approvals a ON a.id = r.approval
            WHERE r.state = 'awaiting_approval' AND s.state = 'running'
            AND (r.approval IS NULL OR a.state <> 'pending' OR a.expires_ms <= \(now))
            AND EXISTS (SELECT 1 FROM fleet_hosts h WHERE h.name = $1 AND h.epoch = $2 AND h.state = 'live')
            ORDER BY r.id LIMIT $3 \(dialect.serverFunctions ? "FOR UPDATE OF r SKIP LOCKED" : "")
            """
    }

    /// Rows a statement for multi-row INSERTs: bounded, so that the drivers keep few shapes.
    static let rowsAStatement = 50

    /// `INSERT INTO head VALUES (…), (…)`: `count` rows of `width` placeholders numbered in
    /// order from `$1`, each followed by `constants` (SQL, the same for every row).
    func insert(_ head: String, rows count: Int, width: Int, constants: String = "") -> String {
        let rows = (0..<count).map { row in
            "(" + (1...width).map { dialect.placeholder(row * width + $0) }.joined(separator: ", ") + constants + ")"
        }
        return "INSERT INTO \(head) VALUES " + rows.joined(separator: ", ")
    }

    // MARK: Rescue

    /// Hosts whose heartbeat is older than `$1` ms are lost.
    var loseHosts: String {
        "UPDATE fleet_hosts SET state = 'lost', running = 0 WHERE state = 'live' AND heartbeat_ms < \(now) - $1 RETURNING name"
    }

    /// Running routines whose host is not live at the epoch that claimed them.
    let orphaned = """
        state = 'running' AND NOT EXISTS (SELECT 1 FROM fleet_hosts h
            WHERE h.name = fleet_routines.host AND h.epoch = fleet_routines.host_epoch AND h.state = 'live')
        """

    /// Swarms being admitted or completed by a host that is not live at its epoch.
    func orphanedSwarms(_ state: String, back: String) -> String {
        """
        UPDATE fleet_swarms SET state = '\(back)', taker = NULL, taker_epoch = NULL
        WHERE state = '\(state)' AND NOT EXISTS (SELECT 1 FROM fleet_hosts h
            WHERE h.name = fleet_swarms.taker AND h.epoch = fleet_swarms.taker_epoch AND h.state = 'live')
        """
    }

    /// Swarms paused for a top-up by a host that is not live at its epoch: no longer taken.
    let orphanedTopUps = """
        UPDATE fleet_swarms SET taker = NULL, taker_epoch = NULL
        WHERE state IN ('running', 'cancelling') AND taker IS NOT NULL AND NOT EXISTS (SELECT 1 FROM fleet_hosts h
            WHERE h.name = fleet_swarms.taker AND h.epoch = fleet_swarms.taker_epoch AND h.state = 'live')
        """

    // MARK: Preemption: a team's swarms give back credits to a higher one.

    /// A team's swarms waiting for or holding budget: the contenders for a share, and the
    /// swarms a preemption may take from. `$1` team.
    var teamSwarms: String {
        "SELECT \(swarmColumns) FROM fleet_swarms WHERE team = $1 AND state IN ('queued', 'admitting', 'running') ORDER BY submitted_ms, seq"
    }

    /// Running routines of a team's swarms already told to stop for a preemption. `$1` team.
    let stopsInFlight = """
        SELECT count(*) FROM fleet_routines WHERE state = 'running' AND stop_for IS NOT NULL
        AND swarm IN (SELECT id FROM fleet_swarms WHERE team = $1)
        """

    /// The swarm claims nothing more until it has grown back by what it gave. `$1` swarm,
    /// `$2` credits given back now.
    let pause = "UPDATE fleet_swarms SET paused = 1, gave = gave + $2 WHERE id = $1 AND state = 'running'"

    /// The swarm's hold grew back (`$3` 1) or could not yet (`$3` 0): no longer taken. `$1`
    /// swarm, `$2` message.
    let resumed = """
        UPDATE fleet_swarms SET taker = NULL, taker_epoch = NULL, message = $2,
            paused = CASE WHEN $3 = 1 THEN 0 ELSE paused END, gave = CASE WHEN $3 = 1 THEN 0 ELSE gave END
        WHERE id = $1 AND state IN ('running', 'cancelling')
        """

    /// Marks a running routine of swarm `$1` named `$2` to be stopped by its host.
    let markStop = "UPDATE fleet_routines SET stop_for = 'preempt' WHERE swarm = $1 AND name = $2 AND state = 'running' RETURNING id"

    /// Tells the hosts to stop every running routine of team `$1`'s swarms (a freeze).
    let stopTeam = """
        UPDATE fleet_routines SET stop_for = 'freeze'
        WHERE state = 'running' AND swarm IN (SELECT id FROM fleet_swarms WHERE team = $1) RETURNING id
        """

    // MARK: Wake-ups: a hint to listening hosts (PostgreSQL), never relied on.

    /// The channel hosts LISTEN on (`PostgresListener`).
    static let channel = "purser_fleet"

    /// What a wake-up says: new ready routines (a claim will do), or more (a cancel, a
    /// swarm to admit or one ended: a host looks at everything).
    enum Wake: String {
        case ready
        case look
    }

    /// Sent in the transaction that made the work, so it is heard at COMMIT, or never.
    /// PostgreSQL folds a transaction's equal notifications into one. Nil on SQLite: its
    /// hosts share one machine and poll.
    func notify(_ wake: Wake) -> String? {
        dialect.serverFunctions ? "NOTIFY \(Self.channel), '\(wake.rawValue)'" : nil
    }

    // MARK: Hosts

    var join: String {
        """
        INSERT INTO fleet_hosts (name, epoch, slots, running, version, state, heartbeat_ms, started_ms, note)
        VALUES ($1, 1, $2, 0, $3, 'live', \(now), \(now), '')
        ON CONFLICT (name) DO UPDATE SET epoch = fleet_hosts.epoch + 1, slots = $2, running = 0, version = $3,
            state = 'live', heartbeat_ms = \(now), started_ms = \(now), note = ''
        RETURNING epoch
        """
    }

    var heartbeat: String {
        """
        UPDATE fleet_hosts SET heartbeat_ms = \(now), running = $3, note = $4
        WHERE name = $1 AND epoch = $2 AND state = 'live' RETURNING name
        """
    }

    var lead: String {
        """
        INSERT INTO fleet_leader (id, host, until_ms) VALUES (1, $1, \(now) + $2)
        ON CONFLICT (id) DO UPDATE SET host = $1, until_ms = \(now) + $2
        WHERE fleet_leader.host = $1 OR fleet_leader.until_ms < \(now)
        RETURNING host
        """
    }
}
