import Glibc

/// Budgets and the leases that fence them: teams, the tree of holds below them, the audit
/// trail, and supervisors' leases, written once over any `SQLDriver`. Leases live with the
/// budgets because a hold's fence and its reclaim read and write both in one transaction.
/// Reserve, spend and settle are in SQLBudgetHolds.swift, leases in SQLLeases.swift; the
/// tables in Schema.swift.
public final class SQLBudgetStore<Driver: SQLDriver>: BudgetStore, LeaseStore, SQLStore {
    public let driver: Driver

    public init(existing driver: Driver) {
        self.driver = driver
    }

    public static func tables(_ dialect: SQLDialect) -> [String] { Schema.statements(dialect) }

    // MARK: - Teams and nodes

    public func createTeam(_ spec: TeamSpec) throws(LedgerError) -> Node {
        guard !spec.name.isEmpty, !spec.name.contains(",") else { throw LedgerError(.invalid, "a team needs a name") }
        guard spec.caps.isNonNegative else { throw LedgerError(.invalid, "team \(spec.name): amounts must not be negative") }
        if let workers = spec.workers, workers < 0 { throw LedgerError(.invalid, "team \(spec.name): workers must not be negative") }
        let tools = try Self.toolList(spec.tools)
        return try driver.transaction { (session) throws(LedgerError) in
            if try !session.run("SELECT id FROM nodes WHERE kind = 'team' AND name = $1", spec.name.sql).isEmpty {
                throw LedgerError(.invalid, "team \(spec.name) exists already")
            }
            let caps = spec.caps
            let rows = try session.run(
                """
                INSERT INTO nodes (parent_id, team, kind, name, state, tools,
                    cap_credits, cap_time, cap_memory, avail_credits, avail_time, avail_memory,
                    resv_credits, resv_time, resv_memory, used_credits, used_time, peak_memory,
                    ret_credits, ret_time, ret_memory, workers_cap, workers_in_use, created_ms)
                VALUES (NULL, $1, 'team', $1, 'open', $2, $3, $4, $5, $3, $4, $5, 0, 0, 0, 0, 0, 0, 0, 0, 0, $6, 0, $7)
                RETURNING id
                """, spec.name.sql, tools.sql, caps.credits.sql, caps.timeMs.sql, caps.memoryBytes.sql,
                spec.workers.sql, now().sql)
            let id = rows.first?.first?.int ?? 0
            session.rows.event(id, team: spec.name, kind: "team_created", caps, "")
            return try Self.load(session, id)
        }
    }

    public func team(named name: String) throws(LedgerError) -> Node {
        try driver.transaction { (session) throws(LedgerError) in
            let rows = try session.run(
                "SELECT \(Schema.nodeColumns) FROM nodes WHERE kind = 'team' AND name = $1", name.sql)
            guard let row = rows.first else { throw LedgerError(.unknownTeam, "no team named \(name)") }
            return Schema.node(row)
        }
    }

    public func addTools(team name: String, tools: [String]) throws(LedgerError) -> Node {
        _ = try Self.toolList(tools)
        return try driver.transaction { (session) throws(LedgerError) in
            guard let row = try session.run(
                "SELECT \(Schema.nodeColumns) FROM nodes WHERE kind = 'team' AND name = $1 \(driver.dialect.lockRow)", name.sql
            ).first else { throw LedgerError(.unknownTeam, "no team named \(name)") }
            let team = Schema.node(row)
            let added = Set(tools).subtracting(team.tools)
            guard !added.isEmpty else { return team }
            try session.run("UPDATE nodes SET tools = $2 WHERE id = $1", team.id.sql, try Self.toolList(team.tools + added).sql)
            session.rows.event(team.id, team: name, kind: "tools_added", .zero, added.sorted().joined(separator: ","))
            return try Self.load(session, team.id)
        }
    }

    public func node(_ id: NodeID) throws(LedgerError) -> Node {
        try driver.transaction { (session) throws(LedgerError) in try Self.load(session, id) }
    }

    public func tree(team: String) throws(LedgerError) -> [Node] {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT \(Schema.nodeColumns) FROM nodes WHERE team = $1 ORDER BY id", team.sql)
                .map(Schema.node)
        }
    }

    /// Walked down by `nodes_parent`: a swarm's hold and what is under it, not its team's
    /// whole history. Ids grow, so ordered by id, parents come first.
    public func subtree(of id: NodeID) throws(LedgerError) -> [Node] {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run(
                """
                WITH RECURSIVE below (id) AS (
                    SELECT id FROM nodes WHERE id = $1
                    UNION ALL SELECT n.id FROM nodes n JOIN below b ON n.parent_id = b.id)
                SELECT \(Schema.nodeColumns) FROM nodes WHERE id IN (SELECT id FROM below) ORDER BY id
                """, id.sql
            ).map(Schema.node)
        }
    }

    public func openChildren(of id: NodeID) throws(LedgerError) -> [Node] {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT \(Schema.nodeColumns) FROM nodes WHERE parent_id = $1 AND state = 'open' ORDER BY id", id.sql)
                .map(Schema.node)
        }
    }

    // MARK: - Reading

    public func audit(node: NodeID?, team: String?) throws(LedgerError) -> [AuditEvent] {
        try driver.transaction { (session) throws(LedgerError) in
            let rows = try session.run(
                """
                SELECT id, node_id, team, kind, credits, time_ms, memory, detail, at_ms FROM events
                WHERE (CAST($1 AS BIGINT) = -1 OR node_id = $1) AND ($2 = '' OR team = $2) ORDER BY id
                """, (node ?? -1).sql, (team ?? "").sql)
            return rows.map { row in
                AuditEvent(
                    id: row[0].int, node: row[1].int, team: row[2].string ?? "", kind: row[3].string ?? "",
                    amounts: Resources(credits: row[4].int, timeMs: row[5].int, memoryBytes: row[6].int),
                    detail: row[7].string ?? "", atMs: row[8].int)
            }
        }
    }

    public func verify() throws(LedgerError) -> [Violation] {
        let nodes = try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT \(Schema.nodeColumns) FROM nodes ORDER BY id").map(Schema.node)
        }
        return LedgerInvariant.check(nodes)
    }

    public func history(plugin: String?, team: String?, limit: Int) throws(LedgerError) -> [Node] {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run(
                """
                SELECT \(Schema.nodeColumns) FROM nodes
                WHERE state = 'closed' AND kind <> 'team' AND ($1 = '' OR plugin = $1) AND ($2 = '' OR team = $2)
                ORDER BY id DESC LIMIT $3
                """, (plugin ?? "").sql, (team ?? "").sql, Int64(limit).sql
            ).map(Schema.node)
        }
    }
    // MARK: - Helpers

    static func load(_ session: any SQLSession, _ id: NodeID) throws(LedgerError) -> Node {
        guard let row = try session.run("SELECT \(Schema.nodeColumns) FROM nodes WHERE id = $1", id.sql).first else {
            throw LedgerError(.unknownNode, "no node \(id)")
        }
        return Schema.node(row)
    }

    /// A holder may act only on its own nodes, and only while its lease is live.
    func fence(_ session: any SQLSession, _ node: Node, _ holder: Holder?, checkNode: Bool) throws(LedgerError) {
        guard let holder else { return }
        if checkNode, let owner = node.holder, owner != holder {
            throw LedgerError(.fenced, "node \(node.id) is held by \(owner.id) epoch \(owner.epoch), not \(holder.id) epoch \(holder.epoch)")
        }
        guard try session.rows.isLive(holder, session) else {
            throw LedgerError(.fenced, "lease \(holder.id) epoch \(holder.epoch) is no longer live")
        }
    }

    static func shortfall(_ request: ReserveRequest, _ parent: Node) -> LedgerError {
        var short: [String] = []
        let want = request.amounts
        let have = parent.available
        if want.credits > have.credits { short.append("credits: asked \(want.credits) µcredits, \(have.credits) available") }
        if want.timeMs > have.timeMs { short.append("time: asked \(want.timeMs) ms, \(have.timeMs) available") }
        if want.memoryBytes > have.memoryBytes {
            short.append("memory: asked \(want.memoryBytes) bytes, \(have.memoryBytes) available")
        }
        return LedgerError(
            .insufficient,
            "\(request.name): \(parent.kind.rawValue) \(parent.name) cannot grant it (\(short.joined(separator: "; "))); nothing was reserved")
    }

    static func settlement(_ node: Node) -> Settlement {
        Settlement(
            node: node.id, used: node.consumed,
            returned: node.returned, outcome: node.outcome ?? "")
    }

    static func toolList(_ tools: [String]) throws(LedgerError) -> String {
        for tool in tools where tool.isEmpty || tool.contains(",") {
            throw LedgerError(.invalid, "bad tool name '\(tool)'")
        }
        return Set(tools).sorted().joined(separator: ",")
    }
}

func now() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_REALTIME, &time)
    return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
}
