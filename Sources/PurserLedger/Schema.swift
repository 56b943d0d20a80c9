/// The budget store's tables (nodes, events, leases), in SQL both SQLite and PostgreSQL
/// accept; the other stores keep theirs with their queries (`SQLStore`). The CHECK constraints
/// are the second line of defence: whatever the code does, the store refuses a balance
/// below zero, an open node whose parts do not add up to its cap, or a closed node that
/// still holds anything.
enum Schema {
    static func statements(_ dialect: SQLDialect) -> [String] {
        tables(dialect) + (dialect.serverFunctions ? ServerFunctions.statements : [])
    }

    private static func tables(_ dialect: SQLDialect) -> [String] {
        [
            // The kind check spells out its list: for "kind IN (...)" SQLite builds a
            // temporary index at every row inserted, which doubled the cost of writing a node.
            """
            CREATE TABLE IF NOT EXISTS nodes (
                id \(dialect.serialKey),
                parent_id BIGINT REFERENCES nodes(id),
                team TEXT NOT NULL,
                kind TEXT NOT NULL CHECK (kind = 'team' OR kind = 'swarm' OR kind = 'routine' OR kind = 'step'),
                name TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('open', 'closed')),
                tools TEXT NOT NULL,
                cap_credits BIGINT NOT NULL, cap_time BIGINT NOT NULL, cap_memory BIGINT NOT NULL,
                avail_credits BIGINT NOT NULL, avail_time BIGINT NOT NULL, avail_memory BIGINT NOT NULL,
                resv_credits BIGINT NOT NULL, resv_time BIGINT NOT NULL, resv_memory BIGINT NOT NULL,
                used_credits BIGINT NOT NULL, used_time BIGINT NOT NULL, peak_memory BIGINT NOT NULL,
                ret_credits BIGINT NOT NULL, ret_time BIGINT NOT NULL, ret_memory BIGINT NOT NULL,
                workers_cap BIGINT,
                workers_in_use BIGINT NOT NULL,
                holder TEXT,
                epoch BIGINT,
                plugin TEXT,
                estimate BIGINT,
                strategy TEXT,
                outcome TEXT,
                created_ms BIGINT NOT NULL,
                closed_ms BIGINT,
                CHECK (avail_credits >= 0 AND avail_time >= 0 AND avail_memory >= 0),
                CHECK (resv_credits >= 0 AND resv_time >= 0 AND resv_memory >= 0),
                CHECK (used_credits >= 0 AND used_time >= 0 AND peak_memory >= 0),
                CHECK (ret_credits >= 0 AND ret_time >= 0 AND ret_memory >= 0),
                CHECK (workers_in_use >= 0 AND (workers_cap IS NULL OR workers_in_use <= workers_cap)),
                CHECK (
                    (state = 'open'
                        AND cap_credits = avail_credits + resv_credits + used_credits
                        AND cap_time = avail_time + resv_time + used_time
                        AND cap_memory = avail_memory + resv_memory)
                    OR (state = 'closed'
                        AND avail_credits = 0 AND avail_time = 0 AND avail_memory = 0
                        AND resv_credits = 0 AND resv_time = 0 AND resv_memory = 0
                        AND cap_credits = used_credits + ret_credits
                        AND cap_time = used_time + ret_time))
            )
            """,
            "CREATE UNIQUE INDEX IF NOT EXISTS team_names ON nodes(name) WHERE kind = 'team'",
            "CREATE INDEX IF NOT EXISTS nodes_parent ON nodes(parent_id)",
            // The reclaim sweep's way to a lease's open holds (see `SQLDialect.orderedJoin`).
            // A hold without a holder is never swept, and so not indexed: an entry is written
            // at every reserve and removed at every settle.
            "DROP INDEX IF EXISTS nodes_holder",
            "CREATE INDEX IF NOT EXISTS nodes_open_holds ON nodes(holder) WHERE state = 'open' AND holder IS NOT NULL",
            // The history query's optional filters ("$1 = '' OR plugin = $1") keep any index on
            // plugin out of its plan, which reads the newest closed nodes backwards by id; the
            // index only cost every settle a B-tree insert. Dropped, existing databases too.
            "DROP INDEX IF EXISTS nodes_plugin",
            auditEvents(dialect),
            // No query reads events by node through an index (the audit filters in one
            // scan), and keeping one cost every event written a second B-tree insert.
            "DROP INDEX IF EXISTS events_node",
            frozenTeams,
            approvals,
            """
            CREATE TABLE IF NOT EXISTS leases (
                holder TEXT PRIMARY KEY,
                epoch BIGINT NOT NULL,
                expires_ms BIGINT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('live', 'reclaimed'))
            )
            """,
        ]
    }

    /// The audit trail. The fleet's queue writes to it too (approvals it files and times
    /// out), so its tables make it as well.
    static func auditEvents(_ dialect: SQLDialect) -> String {
        """
        CREATE TABLE IF NOT EXISTS events (
            id \(dialect.serialKey),
            node_id BIGINT NOT NULL,
            team TEXT NOT NULL,
            kind TEXT NOT NULL,
            credits BIGINT NOT NULL,
            time_ms BIGINT NOT NULL,
            memory BIGINT NOT NULL,
            detail TEXT NOT NULL,
            at_ms BIGINT NOT NULL
        )
        """
    }

    /// A frozen team's holds grant nothing new (`purser team freeze`): one row a team. The
    /// fleet's queue reads it too (a frozen team's swarms are neither admitted nor claimed),
    /// so its tables make it as well.
    static let frozenTeams = """
        CREATE TABLE IF NOT EXISTS frozen_teams (
            team TEXT PRIMARY KEY,
            since_ms BIGINT NOT NULL,
            by_whom TEXT NOT NULL,
            reason TEXT NOT NULL
        )
        """

    static let nodeColumns = """
        id, parent_id, team, kind, name, state, tools,
        cap_credits, cap_time, cap_memory, avail_credits, avail_time, avail_memory,
        resv_credits, resv_time, resv_memory, used_credits, used_time, peak_memory,
        ret_credits, ret_time, ret_memory, workers_cap, workers_in_use, holder, epoch,
        plugin, estimate, strategy, outcome
        """

    static func node(_ row: [SQLValue]) -> Node {
        func resources(_ start: Int) -> Resources {
            Resources(credits: row[start].int, timeMs: row[start + 1].int, memoryBytes: row[start + 2].int)
        }
        let tools = row[6].string ?? ""
        return Node(
            id: row[0].int, parent: row[1].optionalInt, team: row[2].string ?? "",
            kind: NodeKind(rawValue: row[3].string ?? "") ?? .step, name: row[4].string ?? "",
            isOpen: row[5].string == "open", tools: tools.isEmpty ? [] : tools.split(separator: ",").map(String.init),
            cap: resources(7), available: resources(10), reserved: resources(13), consumed: resources(16),
            returned: resources(19), workersCap: row[22].optionalInt, workersInUse: row[23].int,
            holder: row[24].string.map { Holder(id: $0, epoch: row[25].int) },
            plugin: row[26].string, estimate: row[27].optionalInt, strategy: row[28].string, outcome: row[29].string)
    }
}
