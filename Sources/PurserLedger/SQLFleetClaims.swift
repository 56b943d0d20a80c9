/// The queue's claims: a host takes ready routines for its free slots, and gives back what
/// it took beyond its memory or a swarm's concurrency, or could not start.
extension SQLFleetStore {
    public func claim(host: HostLease, limit: Int, memoryBytes: Int64) throws(LedgerError) -> [Claim] {
        guard limit > 0, memoryBytes >= 0 else { return [] }
        let arguments = [host.name.sql, host.epoch.sql, Int64(limit).sql, memoryBytes.sql]
        guard driver.dialect.serverFunctions else {
            return try transaction { (session) throws(LedgerError) in
                let claimed = Self.inLine(try session.query(sql.claim(startingAttempts: false), arguments), host)
                let back = try Self.beyond(claimed, memoryBytes) { (swarm) throws(LedgerError) in
                    try session.run(sql.overConcurrency, swarm.sql).first?.first?.int ?? 0
                }
                if !back.isEmpty { try session.run(sql.putBack(back.map(\.id)), Int64(back.count).sql) }
                let kept = claimed.filter { claim in !back.contains { $0.id == claim.id } }
                try insert(
                    session, "fleet_attempts (swarm, routine, attempt, host, started_ms)",
                    kept.map { [$0.swarm.sql, $0.routine.sql, Int64($0.attempt).sql, host.name.sql] }, constants: ", \(sql.now)")
                return kept
            }
        }
        // PostgreSQL: the claim and its attempts are one statement in autocommit; what it
        // took beyond the host's memory or a swarm's concurrency (only a claim of several
        // rows can) goes back after, as an unclaim does, if the claim is still this host's.
        // Until then a swarm is over its concurrency as racing claims of two hosts can make it.
        let claimed = Self.inLine(try driver.single(sql.claim(startingAttempts: true), arguments), host)
        let back = try Self.beyond(claimed, memoryBytes) { (swarm) throws(LedgerError) in
            try single(sql.overConcurrency, swarm.sql).first?.first?.int ?? 0
        }
        guard !back.isEmpty else { return claimed }
        try transaction { (session) throws(LedgerError) in
            for claim in back { _ = try putBack(session, claim, message: nil) }
        }
        return claimed.filter { claim in !back.contains { $0.id == claim.id } }
    }

    /// In line's order (RETURNING keeps none), so that what goes back is the last in line.
    static func inLine(_ rows: [[SQLValue]], _ host: HostLease) -> [Claim] {
        rows.sorted { ($0[7].int, $0[5].int, -$0[6].int, -$0[0].int) > ($1[7].int, $1[5].int, -$1[6].int, -$1[0].int) }.map {
            Claim(id: $0[0].int, swarm: $0[1].string ?? "", routine: $0[2].string ?? "", attempt: Int($0[3].int), host: host,
                memoryBytes: $0[4].int, readyMs: $0[6].int)
        }
    }

    /// What one claim took beyond what it may keep: each row fitted the host's memory alone,
    /// and passed its swarm's `concurrency` alone; together they may not, and the last in
    /// line go back. `over(swarm)`: how many more of the swarm run than it allows.
    static func beyond(
        _ claimed: [Claim], _ memoryBytes: Int64, over: (String) throws(LedgerError) -> Int64
    ) throws(LedgerError) -> [Claim] {
        guard claimed.count > 1 else { return [] }
        var left = memoryBytes
        var kept: [Claim] = []
        var back: [Claim] = []
        for claim in claimed {
            if claim.memoryBytes <= left {
                left -= claim.memoryBytes
                kept.append(claim)
            } else {
                back.append(claim)
            }
        }
        for swarm in Set(kept.map(\.swarm)) {
            let ofSwarm = kept.filter { $0.swarm == swarm }
            guard ofSwarm.count > 1 else { continue }
            // The store still counts those going back for their memory as running.
            let excess = min(try over(swarm) - Int64(back.count { $0.swarm == swarm }), Int64(ofSwarm.count))
            if excess > 0 { back += ofSwarm.suffix(Int(excess)) }
        }
        return back
    }

    public func unclaim(_ claim: Claim, message: String) throws(LedgerError) -> Bool {
        try transaction { (session) throws(LedgerError) in try putBack(session, claim, message: message) }
    }

    /// Puts a claimed routine back in line, its attempt undone, if the claim is still this
    /// host's; `message`, when given, says why.
    private func putBack(_ session: any SQLSession, _ claim: Claim, message: String?) throws(LedgerError) -> Bool {
        let set = "state = 'ready', attempt = attempt - 1, host = NULL, host_epoch = NULL, stop_for = NULL"
        var arguments = [claim.id.sql, claim.host.name.sql, claim.host.epoch.sql, Int64(claim.attempt).sql]
        if let message { arguments.append(message.sql) }
        let rows = try session.query(sql.endClaim(message == nil ? set : set + ", message = $5"), arguments)
        guard !rows.isEmpty else { return false }
        try session.run(
            "DELETE FROM fleet_attempts WHERE swarm = $1 AND routine = $2 AND attempt = $3",
            claim.swarm.sql, claim.routine.sql, Int64(claim.attempt).sql)
        return true
    }
}
