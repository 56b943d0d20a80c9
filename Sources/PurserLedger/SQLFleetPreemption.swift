/// The queue's side of a preemption between a team's swarms (`TeamPolicy.OnConflict.preempt`):
/// which swarms there are to take from, pausing one, and letting it go again. The ledger's
/// side is `BudgetStore.resize`.
extension SQLFleetStore {
    public func teamSwarms(team: String) throws(LedgerError) -> (swarms: [QueuedSwarm], stopping: Int) {
        try transaction { (session) throws(LedgerError) in
            let swarms = try session.run(sql.teamSwarms, team.sql).map(Self.swarm)
            let stopping = try session.run(sql.stopsInFlight, team.sql).first?.first?.int ?? 0
            return (swarms, Int(stopping))
        }
    }

    public func pause(swarm id: String, gave credits: Int64, routines: [String]) throws(LedgerError) {
        try transaction { (session) throws(LedgerError) in
            try session.run(sql.pause, id.sql, credits.sql)
            for name in routines { try session.run(sql.markStop, id.sql, name.sql) }
            // Their hosts stop them at their next full look.
            if !routines.isEmpty { try wake(session, .look) }
        }
    }

    public func released(swarm id: String, resumed: Bool, message: String) throws(LedgerError) {
        try transaction { (session) throws(LedgerError) in
            try session.run(sql.resumed, id.sql, message.sql, Int64(resumed ? 1 : 0).sql)
            if resumed { try wake(session, .ready) }
        }
    }
}
