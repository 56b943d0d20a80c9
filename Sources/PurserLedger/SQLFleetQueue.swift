/// The queue's side of `SQLFleetStore`: submitting, admitting, claiming, finishing,
/// completing, cancelling and rescuing.
extension SQLFleetStore: QueueStore {
    public func submit(_ swarm: SubmittedSwarm) throws(LedgerError) {
        let names = Set(swarm.routines.map(\.name))
        for routine in swarm.routines where !routine.after.allSatisfy(names.contains) {
            throw LedgerError(.invalid, "routine \(routine.name) runs after a routine the swarm does not have")
        }
        let gates = try swarm.routines.map { (routine) throws(LedgerError) -> String? in
            guard !routine.approvalTools.isEmpty else { return nil }
            guard routine.approvalTimeoutMs > 0 else { throw LedgerError(.invalid, "an approval's timeout must be positive") }
            return try SQLBudgetStore<Driver>.toolList(routine.approvalTools)
        }
        try transaction { (session) throws(LedgerError) in
            try session.run(
                """
                INSERT INTO fleet_swarms (id, team, name, priority, concurrency, file, source, state, submitted_ms, seq)
                VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', \(sql.now), COALESCE((SELECT max(seq) FROM fleet_swarms), 0) + 1)
                """, swarm.id.sql, swarm.team.sql, swarm.name.sql, swarm.priority.sql, Int64(max(swarm.concurrency, 1)).sql,
                swarm.file.sql, swarm.source.sql)
            try insert(
                session, "fleet_routines (swarm, name, position, priority, swarm_priority, pending, memory, gate, gate_ms, state, attempt)",
                swarm.routines.enumerated().map { position, routine in
                    [swarm.id.sql, routine.name.sql, Int64(position).sql, routine.priority.sql, swarm.priority.sql,
                        Int64(Set(routine.after).count).sql, max(routine.memoryBytes, 0).sql, gates[position].sql,
                        routine.approvalTimeoutMs.sql]
                }, constants: ", 'waiting', 0")
            try insert(
                session, "fleet_edges (swarm, earlier, later)",
                swarm.routines.flatMap { routine in Set(routine.after).map { [swarm.id.sql, $0.sql, routine.name.sql] } })
            try wake(session, .look)
        }
    }

    public func swarm(id: String) throws(LedgerError) -> QueuedSwarm? {
        try single("SELECT \(sql.swarmColumns) FROM fleet_swarms WHERE id = $1", id.sql).first.map(Self.swarm)
    }

    public func swarms(limit: Int) throws(LedgerError) -> [QueuedSwarm] {
        try transaction { (session) throws(LedgerError) in
            try session.run(
                "SELECT \(sql.swarmColumns) FROM fleet_swarms ORDER BY submitted_ms DESC, seq DESC LIMIT $1", Int64(limit).sql
            ).map(Self.swarm)
        }
    }

    public func routines(swarm id: String) throws(LedgerError) -> [QueuedRoutine] {
        try transaction { (session) throws(LedgerError) in
            try session.run(sql.routineRows, id.sql).map {
                QueuedRoutine(
                    swarm: $0[0].string ?? "", name: $0[1].string ?? "", state: $0[2].string ?? "", attempt: Int($0[3].int),
                    host: $0[4].string, verdict: $0[5].string, message: $0[6].string, node: $0[7].optionalInt, approval: $0[10].string,
                    hostPid: $0[8].optionalInt.flatMap { Int32(exactly: $0) }, memoryPeakBytes: $0[9].optionalInt)
            }
        }
    }

    public func nextToAdmit(host: HostLease, skipping: [String], passing: [String]) throws(LedgerError) -> QueuedSwarm? {
        try transaction { (session) throws(LedgerError) in
            try session.query(
                sql.takeToAdmit(skipping: skipping.count, passing: passing.count),
                [host.name.sql, host.epoch.sql] + skipping.map(\.sql) + passing.map(\.sql)
            ).first.map(Self.swarm)
        }
    }

    public func setTeamPolicy(_ policy: TeamPolicy) throws(LedgerError) {
        guard policy.agingMs > 0 else { throw LedgerError(.invalid, "a team's aging must be positive") }
        try transaction { (session) throws(LedgerError) in
            try session.run(
                sql.setTeamPolicy, policy.team.sql, policy.onConflict.rawValue.sql, policy.agingMs.sql, Int64(policy.reuseUntrusted ? 1 : 0).sql)
        }
    }

    public func teamPolicy(team: String) throws(LedgerError) -> TeamPolicy {
        try transaction { (session) throws(LedgerError) in
            let row = try session.run("SELECT on_conflict, aging_ms, reuse_untrusted FROM fleet_teams WHERE team = $1", team.sql).first
            guard let row else { return TeamPolicy(team: team) }
            return TeamPolicy(
                team: team, onConflict: TeamPolicy.OnConflict(rawValue: row[0].string ?? "") ?? .queue, agingMs: row[1].int,
                reuseUntrusted: row[2].int == 1)
        }
    }

    public func admitted(swarm id: String, node: NodeID, holder: Holder) throws(LedgerError) {
        try transaction { (session) throws(LedgerError) in
            try session.run(
                """
                UPDATE fleet_swarms SET state = 'running', node = $2, holder = $3, holder_epoch = $4, taker = NULL, taker_epoch = NULL
                WHERE id = $1 AND state = 'admitting'
                """, id.sql, node.sql, holder.id.sql, holder.epoch.sql)
            try session.run(
                """
                UPDATE fleet_routines SET state = \(FleetSQL.readyOrGated), ready_ms = \(sql.now)
                WHERE swarm = $1 AND state = 'waiting' AND pending = 0
                """, id.sql)
            try wake(session, .ready)
        }
    }

    public func notAdmitted(swarm id: String, verdict: String?, message: String) throws(LedgerError) {
        try transaction { (session) throws(LedgerError) in
            guard let verdict else {
                try session.run(
                    "UPDATE fleet_swarms SET state = 'queued', message = $2, taker = NULL, taker_epoch = NULL WHERE id = $1 AND state = 'admitting'",
                    id.sql, message.sql)
                return
            }
            try endSwarm(session, id, verdict: verdict, message: message, routines: verdict)
        }
    }

    /// Ends a swarm that never ran (denied, cancelled before admission): its routines end with it.
    private func endSwarm(_ session: any SQLSession, _ id: String, verdict: String, message: String, routines: String) throws(LedgerError) {
        try session.run(
            "UPDATE fleet_swarms SET state = 'done', verdict = $2, message = $3, ended_ms = \(sql.now), taker = NULL WHERE id = $1",
            id.sql, verdict.sql, message.sql)
        try session.run(
            "UPDATE fleet_routines SET state = 'done', verdict = $2, message = $3 WHERE swarm = $1 AND state <> 'done'",
            id.sql, routines.sql, message.sql)
    }

    public func finish(_ claim: Claim, _ end: RoutineEnd) throws(LedgerError) {
        let set = end.retry
            ? "state = 'ready', ready_ms = \(sql.now), host = NULL, host_epoch = NULL, stop_for = NULL, verdict = $5, message = $6, node = $8, report = $9, output = $7"
            : "state = 'done', verdict = $5, message = $6, output = $7, node = $8, report = $9"
        let arguments = [
            claim.id.sql, claim.host.name.sql, claim.host.epoch.sql, Int64(claim.attempt).sql, end.verdict.sql, end.message.sql,
            end.output.sql, end.node.sql, end.report.sql,
        ]
        let fenced = LedgerError(.fenced, "\(claim.swarm)/\(claim.routine) attempt \(claim.attempt) is no longer \(claim.host.name)'s")
        // The common ends (ok, or back in line) in one round trip where the store can
        // (PostgreSQL's data-modifying WITH; SQLite has none); a failure's skips walk the
        // graph, in a transaction.
        if driver.dialect.serverFunctions, end.retry || end.verdict == "ok" {
            let release = Int64(end.retry ? 0 : 1)
            guard try !driver.single(sql.finishInOne(set), arguments + [release.sql]).isEmpty else { throw fenced }
            return
        }
        try transaction { (session) throws(LedgerError) in
            guard try !session.query(sql.endClaim(set), arguments).isEmpty else { throw fenced }
            try session.run(
                "UPDATE fleet_attempts SET ended_ms = \(sql.now), verdict = $4 WHERE swarm = $1 AND routine = $2 AND attempt = $3",
                claim.swarm.sql, claim.routine.sql, Int64(claim.attempt).sql, end.verdict.sql)
            guard !end.retry else { return }
            if end.verdict == "ok" {
                try release(session, swarm: claim.swarm, after: claim.routine)
            } else {
                try skip(session, swarm: claim.swarm, after: claim.routine)
            }
        }
    }

    /// The routines waiting on `name` wait on one fewer; those that wait on none are ready.
    /// Only its dependents are touched: the swarm's other waiting rows are not read.
    private func release(_ session: any SQLSession, swarm: String, after name: String) throws(LedgerError) {
        try session.run(
            """
            UPDATE fleet_routines SET \(sql.releaseSet)
            WHERE swarm = $1 AND state = 'waiting' AND name IN (SELECT later FROM fleet_edges WHERE swarm = $1 AND earlier = $2)
            """, swarm.sql, name.sql)
    }

    /// Everything that runs after `name`, directly or not, is skipped.
    func skip(_ session: any SQLSession, swarm: String, after name: String) throws(LedgerError) {
        var failed = [name]
        while let earlier = failed.popLast() {
            let skipped = try session.run(
                """
                UPDATE fleet_routines SET state = 'done', verdict = 'skipped', message = $3
                WHERE swarm = $1 AND state = 'waiting' AND name IN (SELECT later FROM fleet_edges WHERE swarm = $1 AND earlier = $2)
                RETURNING name
                """, swarm.sql, earlier.sql, "\(earlier) did not succeed".sql)
            failed += skipped.compactMap { $0[0].string }
        }
    }

    public func outputs(swarm id: String, of names: [String]) throws(LedgerError) -> [String: String] {
        guard !names.isEmpty else { return [:] }
        return try transaction { (session) throws(LedgerError) in
            var outputs: [String: String] = [:]
            for name in Set(names) {
                let row = try session.run(
                    "SELECT output FROM fleet_routines WHERE swarm = $1 AND name = $2 AND state = 'done' AND verdict = 'ok'",
                    id.sql, name.sql
                ).first
                if let row { outputs[name] = row[0].string ?? "null" }
            }
            return outputs
        }
    }

    public func swarmHolders() throws(LedgerError) -> [Holder] {
        try transaction { (session) throws(LedgerError) in
            try session.run(
                """
                SELECT holder, holder_epoch FROM fleet_swarms
                WHERE state IN ('running', 'cancelling', 'completing') AND holder IS NOT NULL
                """
            ).compactMap { row in row[0].string.map { Holder(id: $0, epoch: row[1].int) } }
        }
    }

    public func swarmState(id: String) throws(LedgerError) -> String? {
        try single("SELECT state FROM fleet_swarms WHERE id = $1", id.sql).first?[0].string
    }

    public func attempts(swarm id: String) throws(LedgerError) -> [Attempt] {
        try transaction { (session) throws(LedgerError) in
            try session.run(
                """
                SELECT swarm, routine, attempt, host, started_ms, ended_ms, verdict FROM fleet_attempts
                WHERE swarm = $1 ORDER BY started_ms, routine, attempt
                """, id.sql
            ).map(Self.attempt)
        }
    }

    static func attempt(_ row: [SQLValue]) -> Attempt {
        Attempt(
            swarm: row[0].string ?? "", routine: row[1].string ?? "", attempt: Int(row[2].int), host: row[3].string ?? "",
            startedMs: row[4].int, endedMs: row[5].optionalInt, verdict: row[6].string)
    }

    public func nextToComplete(host: HostLease) throws(LedgerError) -> QueuedSwarm? {
        try single(sql.takeToComplete, host.name.sql, host.epoch.sql).first.map(Self.swarm)
    }

    public func complete(swarm id: String, verdict: String, report: String) throws(LedgerError) {
        try transaction { (session) throws(LedgerError) in
            try session.run(
                "UPDATE fleet_swarms SET state = 'done', verdict = $2, report = $3, ended_ms = \(sql.now), taker = NULL WHERE id = $1",
                id.sql, verdict.sql, report.sql)
            // Its team's budget is back for swarms that wait; hosts that ran it forget it.
            try wake(session, .look)
        }
    }

    public func notCompleted(swarm id: String) throws(LedgerError) {
        try transaction { (session) throws(LedgerError) in
            try session.run(
                "UPDATE fleet_swarms SET state = 'running', taker = NULL, taker_epoch = NULL WHERE id = $1 AND state = 'completing'",
                id.sql)
        }
    }

    public func cancel(swarm id: String) throws(LedgerError) -> Bool {
        try transaction { (session) throws(LedgerError) in
            let state = try session.run("SELECT state FROM fleet_swarms WHERE id = $1 \(driver.dialect.lockRow)", id.sql).first?[0].string
            switch state {
            case "queued":
                try endSwarm(session, id, verdict: "cancelled", message: "cancelled before it was admitted", routines: "cancelled")
            case "running", "admitting", "completing":
                // What runs is stopped by its host; what waits is withdrawn now.
                if state == "running" { try session.run("UPDATE fleet_swarms SET state = 'cancelling' WHERE id = $1", id.sql) }
                // The rows as they are once locked: a request a host filed meanwhile is withdrawn too.
                let withdrawn = try session.run(
                    """
                    UPDATE fleet_routines SET state = 'done', verdict = 'cancelled', message = 'withdrawn: the swarm was cancelled'
                    WHERE swarm = $1 AND state IN ('waiting', 'awaiting_approval', 'ready') RETURNING approval
                    """, id.sql)
                try withdrawApprovals(session, withdrawn.compactMap { $0[0].string })
            default:
                return false
            }
            try wake(session, .look)
            return true
        }
    }

    public func stopRunning(team: String) throws(LedgerError) -> Int {
        try transaction { (session) throws(LedgerError) -> Int in
            let told = try session.run(sql.stopTeam, team.sql).count
            if told > 0 { try wake(session, .look) }
            return told
        }
    }

    public func stoppedAttempts(swarm: String, routine: String) throws(LedgerError) -> Int {
        Int(try single(
            "SELECT count(*) FROM fleet_attempts WHERE swarm = $1 AND routine = $2 AND verdict IN ('preempted', 'frozen')",
            swarm.sql, routine.sql).first?.first?.int ?? 0)
    }

    public func cancelled(host: HostLease) throws(LedgerError) -> [(claim: Claim, stopFor: String?)] {
        try single(
            """
            SELECT id, swarm, name, attempt, memory, stop_for, ready_ms FROM fleet_routines
            WHERE state = 'running' AND host = $1 AND host_epoch = $2
            AND (stop_for IS NOT NULL OR swarm IN (SELECT id FROM fleet_swarms WHERE state = 'cancelling'))
            """, host.name.sql, host.epoch.sql
        ).map {
            (Claim(id: $0[0].int, swarm: $0[1].string ?? "", routine: $0[2].string ?? "", attempt: Int($0[3].int), host: host,
                memoryBytes: $0[4].int, readyMs: $0[6].int), $0[5].string)
        }
    }

    /// In order, all or none, a chunk of rows a statement: ids follow the order. A batch
    /// of one chunk is one statement in autocommit.
    public func appendEvents(_ events: [FleetEvent]) throws(LedgerError) {
        let head = "fleet_events (swarm, at_ms, kind, routine, fields)"
        let rows = events.map { [$0.swarm.sql, $0.atMs.sql, $0.kind.sql, $0.routine.sql, $0.fields.sql] }
        guard rows.count > FleetSQL.rowsAStatement else {
            guard !rows.isEmpty else { return }
            _ = try driver.single(sql.insert(head, rows: rows.count, width: 5), rows.flatMap { $0 })
            return
        }
        try transaction { (session) throws(LedgerError) in try insert(session, head, rows) }
    }

    public func events(swarm id: String, after: Int64, limit: Int) throws(LedgerError) -> [FleetEvent] {
        try transaction { (session) throws(LedgerError) in
            try session.run(
                "SELECT id, swarm, at_ms, kind, routine, fields FROM fleet_events WHERE swarm = $1 AND id > $2 ORDER BY id LIMIT $3",
                id.sql, after.sql, Int64(limit).sql
            ).map {
                FleetEvent(id: $0[0].int, swarm: $0[1].string ?? "", atMs: $0[2].int, kind: $0[3].string ?? "", routine: $0[4].string,
                    fields: $0[5].string ?? "{}")
            }
        }
    }

    public func rescue(deadAfterMs: Int64) throws(LedgerError) -> [Attempt] {
        try transaction { (session) throws(LedgerError) in
            let lostHosts = try session.run(sql.loseHosts, deadAfterMs.sql)
            let lost = try session.run(
                """
                UPDATE fleet_attempts SET ended_ms = \(sql.now), verdict = 'host_lost'
                WHERE ended_ms IS NULL AND (swarm, routine, attempt) IN (SELECT swarm, name, attempt FROM fleet_routines WHERE \(sql.orphaned))
                RETURNING swarm, routine, attempt, host, started_ms, ended_ms, verdict
                """
            ).map(Self.attempt)
            try session.run(
                """
                UPDATE fleet_routines SET state = 'ready', ready_ms = \(sql.now), host = NULL, host_epoch = NULL, stop_for = NULL,
                    verdict = 'host_lost', message = 'its host was lost'
                WHERE \(sql.orphaned)
                """)
            try session.run(
                """
                UPDATE fleet_routines SET state = 'done', verdict = 'cancelled', message = 'withdrawn: the swarm was cancelled'
                WHERE state = 'ready' AND swarm IN (SELECT id FROM fleet_swarms WHERE state = 'cancelling')
                """)
            try session.run(sql.orphanedSwarms("admitting", back: "queued"))
            try session.run(sql.orphanedSwarms("completing", back: "running"))
            try session.run(sql.orphanedTopUps)
            if !lost.isEmpty || !lostHosts.isEmpty { try wake(session, .look) }
            return lost
        }
    }
}
