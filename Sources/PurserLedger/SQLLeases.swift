/// Supervisors' leases: a holder's epoch fences its holds; an expired or dead holder's
/// holds are closed, keeping what they spent charged.
extension SQLBudgetStore {
    public func acquireLease(holder id: String, ttlMs: Int64) throws(LedgerError) -> Holder {
        let holder = try driver.transaction { (session) throws(LedgerError) -> Holder in
            let rows = try session.run(
                """
                INSERT INTO leases (holder, epoch, expires_ms, state) VALUES ($1, 1, $2, 'live')
                ON CONFLICT (holder) DO UPDATE SET epoch = leases.epoch + 1, expires_ms = $2, state = 'live'
                RETURNING epoch
                """, id.sql, (now() + ttlMs).sql)
            return Holder(id: id, epoch: rows.first?.first?.int ?? 1)
        }
        // What this holder held under an earlier epoch belongs to a process that is gone.
        _ = try reclaimOrphans()
        return holder
    }

    public func heartbeat(_ holder: Holder, ttlMs: Int64) throws(LedgerError) {
        try driver.transaction { (session) throws(LedgerError) in
            let rows = try session.run(
                """
                UPDATE leases SET expires_ms = $3 WHERE holder = $1 AND epoch = $2 AND state = 'live'
                RETURNING epoch
                """, holder.id.sql, holder.epoch.sql, (now() + ttlMs).sql)
            guard !rows.isEmpty else {
                throw LedgerError(.fenced, "lease \(holder.id) epoch \(holder.epoch) is no longer live")
            }
        }
    }

    public func reclaimExpired() throws(LedgerError) -> [Settlement] {
        try driver.transaction { (session) throws(LedgerError) in
            // A lease someone holds a share lock on (a reserve or spend in flight) is skipped
            // now and expires again on the next sweep.
            let rows = try session.run(
                """
                SELECT holder FROM leases WHERE state = 'live' AND expires_ms < $1
                \(driver.dialect.lockSkippingLocked)
                """, now().sql)
            for row in rows {
                try session.run("UPDATE leases SET state = 'reclaimed' WHERE holder = $1", (row[0].string ?? "").sql)
            }
        }
        return try reclaimOrphans()
    }

    public func liveLeases() throws(LedgerError) -> [String] {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT holder FROM leases WHERE state = 'live' ORDER BY holder").compactMap { $0[0].string }
        }
    }

    public func reclaim(leases holders: [String]) throws(LedgerError) -> [Settlement] {
        guard !holders.isEmpty else { return [] }
        try driver.transaction { (session) throws(LedgerError) in
            for holder in holders {
                // Waits for the holder's reserves and settles in flight, as the expiry sweep skips them.
                try session.run("SELECT holder FROM leases WHERE holder = $1 AND state = 'live' \(driver.dialect.lockRow)", holder.sql)
                try session.run("UPDATE leases SET state = 'reclaimed' WHERE holder = $1 AND state = 'live'", holder.sql)
            }
        }
        return try reclaimOrphans()
    }

    /// Closes, children first, every open node whose lease was reclaimed or whose epoch is
    /// older than its holder's lease. It looks at all of them, not just those of this
    /// sweep, so a node missed before (a crash between the two steps) is closed now.
    private func reclaimOrphans() throws(LedgerError) -> [Settlement] {
        try driver.transaction { (session) throws(LedgerError) in
            let rows = try session.run(
                """
                SELECT nodes.id FROM leases \(driver.dialect.orderedJoin) nodes ON nodes.holder = leases.holder
                WHERE nodes.state = 'open' AND (leases.state = 'reclaimed' OR nodes.epoch < leases.epoch)
                ORDER BY nodes.id DESC
                """)
            var settlements: [Settlement] = []
            for row in rows where try session.rows.node(row[0].int, session).isOpen {
                settlements.append(try settle(session, row[0].int, usage: .none,
                    outcome: "reclaimed", holder: nil))
            }
            return settlements
        }
    }
}
