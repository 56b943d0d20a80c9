/// Approvals over any `SQLDriver` (`ApprovalStore`): one row a request, moved out of
/// `pending` once, by a conditional UPDATE, so that two deciders (or a decider and the
/// timeout) cannot both win. The audit events go in with the change, at the swarm's node.
extension Schema {
    static let approvals = """
        CREATE TABLE IF NOT EXISTS approvals (
            id TEXT PRIMARY KEY,
            team TEXT NOT NULL,
            swarm_node BIGINT NOT NULL,
            swarm TEXT NOT NULL,
            run_id TEXT NOT NULL,
            routine TEXT NOT NULL,
            tools TEXT NOT NULL,
            requested_ms BIGINT NOT NULL,
            expires_ms BIGINT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'timed_out', 'withdrawn')),
            decided_by TEXT,
            decided_ms BIGINT,
            reason TEXT
        )
        """

    static let approvalColumns = """
        id, team, swarm_node, swarm, run_id, routine, tools, requested_ms, expires_ms, state, decided_by, decided_ms, reason
        """

    static func approval(_ row: [SQLValue]) -> Approval {
        let tools = row[6].string ?? ""
        return Approval(
            id: row[0].string ?? "", team: row[1].string ?? "", swarmNode: row[2].int, swarm: row[3].string ?? "",
            run: row[4].string ?? "", routine: row[5].string ?? "",
            tools: tools.isEmpty ? [] : tools.split(separator: ",").map(String.init),
            requestedMs: row[7].int, expiresMs: row[8].int, state: Approval.State(rawValue: row[9].string ?? "") ?? .pending,
            decidedBy: row[10].string, decidedMs: row[11].optionalInt, reason: row[12].string)
    }

    /// A pending request and its `approval_requested` event, in the caller's transaction
    /// (the budget store's, or the fleet queue's when a host files one). `tools`: the list
    /// as `toolList` writes it.
    static func fileApproval(
        _ session: any SQLSession, team: String, swarmNode: NodeID, swarm: String, run: String, routine: String, tools: String,
        atMs: Int64, timeoutMs: Int64
    ) throws(LedgerError) -> Approval {
        // A short id a person types; a clash (1 in 4 billion) takes another.
        for _ in 0..<8 {
            let id = "ap-" + shortID()
            let added = try session.query(
                """
                INSERT INTO approvals (\(approvalColumns))
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', NULL, NULL, NULL)
                ON CONFLICT (id) DO NOTHING RETURNING \(approvalColumns)
                """,
                [id.sql, team.sql, swarmNode.sql, swarm.sql, run.sql, routine.sql, tools.sql, atMs.sql, (atMs + timeoutMs).sql])
            guard let row = added.first else { continue }
            session.rows.event(
                swarmNode, team: team, kind: "approval_requested", .zero, "\(id) \(routine): tools \(tools), within \(timeoutMs) ms")
            return approval(row)
        }
        throw LedgerError(.constraint, "no free approval id")
    }

    /// Moves a pending approval to `state` at `atMs` (`due`: only once past its time; else
    /// only before it, except a withdrawal), with its audit event; nil when it was not
    /// pending so.
    static func endApproval(
        _ session: any SQLSession, _ id: String, as state: Approval.State, by: String, reason: String, atMs: Int64, due: Bool
    ) throws(LedgerError) -> Approval? {
        let time = due ? "expires_ms <= $5" : state == .withdrawn ? "1 = 1" : "expires_ms > $5"
        let rows = try session.query(
            """
            UPDATE approvals SET state = $2, decided_by = $3, decided_ms = $5, reason = $4
            WHERE id = $1 AND state = 'pending' AND \(time) RETURNING \(approvalColumns)
            """, [id.sql, state.rawValue.sql, by.sql, reason.sql, atMs.sql])
        guard let row = rows.first else { return nil }
        let ended = approval(row)
        let kind = state == .approved ? "approval_granted" : state == .denied ? "approval_denied" : "approval_\(state.rawValue)"
        session.rows.event(ended.swarmNode, team: ended.team, kind: kind, .zero, "\(id) \(ended.routine): by \(by): \(reason)")
        return ended
    }

    private static func shortID() -> String {
        let text = String(UInt32.random(in: .min ... .max), radix: 16)
        return String(repeating: "0", count: 8 - text.count) + text
    }
}

extension SQLBudgetStore: ApprovalStore {
    public func requestApproval(_ request: ApprovalRequest) throws(LedgerError) -> Approval {
        let tools = try Self.toolList(request.tools)
        guard request.timeoutMs > 0 else { throw LedgerError(.invalid, "an approval's timeout must be positive") }
        return try driver.transaction { (session) throws(LedgerError) -> Approval in
            let swarm = try session.rows.node(request.swarm, session)
            return try Schema.fileApproval(
                session, team: swarm.team, swarmNode: swarm.id, swarm: swarm.name, run: request.run, routine: request.routine,
                tools: tools, atMs: now(), timeoutMs: request.timeoutMs)
        }
    }

    public func approval(id: String) throws(LedgerError) -> Approval? {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT \(Schema.approvalColumns) FROM approvals WHERE id = $1", id.sql).first.map(Schema.approval)
        }
    }

    public func approvals(pendingOnly: Bool, limit: Int) throws(LedgerError) -> [Approval] {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run(
                """
                SELECT \(Schema.approvalColumns) FROM approvals
                WHERE $1 = 0 OR (state = 'pending' AND expires_ms > $2) ORDER BY requested_ms DESC, id LIMIT $3
                """, Int64(pendingOnly ? 1 : 0).sql, now().sql, Int64(limit).sql
            ).map(Schema.approval)
        }
    }

    public func approvals(run: String) throws(LedgerError) -> [Approval] {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT \(Schema.approvalColumns) FROM approvals WHERE run_id = $1 ORDER BY id", run.sql)
                .map(Schema.approval)
        }
    }

    public func decideApproval(id: String, approve: Bool, by: String, reason: String) throws(LedgerError) -> Approval {
        let state: Approval.State = approve ? .approved : .denied
        let decided = try end(id, as: state, by: by, reason: reason, due: false)
        if let decided { return decided }
        guard let found = try approval(id: id) else { throw LedgerError(.unknownApproval, "no approval \(id)") }
        if found.state == .pending {
            throw LedgerError(.decided, "approval \(id) timed out: it was not decided within its approvalTimeout")
        }
        let who = found.decidedBy.map { " by \($0)" } ?? ""
        throw LedgerError(.decided, "approval \(id) was \(found.state.rawValue.replacingUnderscores)\(who) already")
    }

    public func expireApproval(id: String, reason: String) throws(LedgerError) -> Approval? {
        try end(id, as: .timedOut, by: "purser", reason: reason, due: true)
    }

    public func withdrawApproval(id: String, reason: String) throws(LedgerError) -> Approval? {
        try end(id, as: .withdrawn, by: "purser", reason: reason, due: false)
    }

    private func end(_ id: String, as state: Approval.State, by: String, reason: String, due: Bool) throws(LedgerError) -> Approval? {
        try driver.transaction { (session) throws(LedgerError) -> Approval? in
            let ended = try Schema.endApproval(session, id, as: state, by: by, reason: reason, atMs: now(), due: due)
            // A person decided: the fleet's hosts take it in at once, not at their next poll.
            if ended != nil, state == .approved || state == .denied, let notify = FleetSQL(dialect: driver.dialect).notify(.look) {
                try session.run(notify)
            }
            return ended
        }
    }
}

extension SQLLedger: ApprovalStore {
    public func requestApproval(_ request: ApprovalRequest) throws(LedgerError) -> Approval { try budgets.requestApproval(request) }
    public func approval(id: String) throws(LedgerError) -> Approval? { try budgets.approval(id: id) }

    public func approvals(pendingOnly: Bool, limit: Int) throws(LedgerError) -> [Approval] {
        try budgets.approvals(pendingOnly: pendingOnly, limit: limit)
    }

    public func approvals(run: String) throws(LedgerError) -> [Approval] { try budgets.approvals(run: run) }

    public func decideApproval(id: String, approve: Bool, by: String, reason: String) throws(LedgerError) -> Approval {
        try budgets.decideApproval(id: id, approve: approve, by: by, reason: reason)
    }

    public func expireApproval(id: String, reason: String) throws(LedgerError) -> Approval? {
        try budgets.expireApproval(id: id, reason: reason)
    }

    public func withdrawApproval(id: String, reason: String) throws(LedgerError) -> Approval? {
        try budgets.withdrawApproval(id: id, reason: reason)
    }
}

extension String {
    fileprivate var replacingUnderscores: String { split(separator: "_").joined(separator: " ") }
}
