/// The queue's side of approvals in the fleet: a routine that holds a tool marked `approval`
/// leaves `waiting` for `awaiting_approval`, not `ready` (`FleetSQL.releaseSet`), and holds
/// nothing there. A host's look files its request in the ledger's `approvals` table, and
/// takes in the decision (`purser approve`, `deny`, the API, the dashboard) or the timeout:
/// approved, it is `ready` for any host to claim; otherwise it ends `denied` and its
/// dependents are skipped. Each row is taken by one host (`SKIP LOCKED`; SQLite has one
/// writer), and only while that host is live at its epoch.
extension SQLFleetStore {
    public func tendApprovals(
        host: HostLease, limit: Int, timeoutReason: (Int64) -> String
    ) throws(LedgerError) -> ApprovalTurn {
        try transaction { (session) throws(LedgerError) -> ApprovalTurn in
            var turn = ApprovalTurn()
            for row in try session.run(sql.gated, host.name.sql, host.epoch.sql, Int64(limit).sql) {
                let (id, swarm, name, atMs) = (row[0].int, row[1].string ?? "", row[2].string ?? "", row[8].int)
                guard row[9].string != nil else {
                    let filed = try Schema.fileApproval(
                        session, team: row[5].string ?? "", swarmNode: row[7].int, swarm: row[6].string ?? "", run: swarm,
                        routine: name, tools: row[3].string ?? "", atMs: atMs, timeoutMs: row[4].int)
                    try session.run("UPDATE fleet_routines SET approval = $2 WHERE id = $1", id.sql, filed.id.sql)
                    turn.filed.append(filed)
                    continue
                }
                var approval = Schema.approval(Array(row[9...]))
                if approval.state == .pending {
                    // Past its time by the database's clock: timed out here, once (a decider's
                    // conditional UPDATE, or another host's, may have ended it meanwhile).
                    let reason = timeoutReason(approval.expiresMs - approval.requestedMs)
                    guard let ended = try Schema.endApproval(
                        session, approval.id, as: .timedOut, by: "purser", reason: reason, atMs: atMs, due: true)
                    else { continue }
                    approval = ended
                }
                try move(session, routine: id, swarm: swarm, name: name, approval)
                turn.decided.append(approval)
            }
            if turn.decided.contains(where: \.isApproved) { try wake(session, .ready) }
            return turn
        }
    }

    /// An approved routine is ready for any host; any other end denies it, and what runs
    /// after it is skipped.
    private func move(_ session: any SQLSession, routine id: Int64, swarm: String, name: String, _ approval: Approval) throws(LedgerError) {
        if approval.isApproved {
            try session.run(
                "UPDATE fleet_routines SET state = 'ready', ready_ms = \(sql.now) WHERE id = $1 AND state = 'awaiting_approval'", id.sql)
            return
        }
        try session.run(
            "UPDATE fleet_routines SET state = 'done', verdict = 'denied', message = $2 WHERE id = $1 AND state = 'awaiting_approval'",
            id.sql, approval.denial.sql)
        try skip(session, swarm: swarm, after: name)
    }

    /// The requests of a cancelled swarm's routines that still wait are withdrawn: nobody
    /// is asked to decide what will not run (those decided already stay as they are).
    func withdrawApprovals(_ session: any SQLSession, _ ids: [String]) throws(LedgerError) {
        for id in ids {
            _ = try Schema.endApproval(session, id, as: .withdrawn, by: "purser", reason: "the swarm was cancelled", atMs: now(), due: false)
        }
    }
}
