/// A team's emergency stop: while a row for it is in `frozen_teams`, every reserve below the
/// team is refused, whichever process asks (the check is in the reserve itself, on both
/// stores). Freezing and thawing are audited at the team's node, with who and why.
public struct TeamFreeze: Sendable, Hashable {
    public var team: String
    public var sinceMs: Int64
    public var by: String
    public var reason: String
}

extension SQLBudgetStore {
    public func freeze(team name: String, by: String, reason: String) throws(LedgerError) -> Bool {
        try driver.transaction { (session) throws(LedgerError) -> Bool in
            let team = try session.rows.team(named: name, session)
            let added = try session.query(
                """
                INSERT INTO frozen_teams (team, since_ms, by_whom, reason) VALUES ($1, $2, $3, $4)
                ON CONFLICT (team) DO NOTHING RETURNING team
                """, [name.sql, now().sql, by.sql, reason.sql])
            guard !added.isEmpty else { return false }
            session.rows.event(team.id, team: name, kind: "freeze", .zero, "by \(by): \(reason)")
            return true
        }
    }

    public func thaw(team name: String, by: String) throws(LedgerError) -> Bool {
        try driver.transaction { (session) throws(LedgerError) -> Bool in
            let team = try session.rows.team(named: name, session)
            let removed = try session.query("DELETE FROM frozen_teams WHERE team = $1 RETURNING team", [name.sql])
            guard !removed.isEmpty else { return false }
            session.rows.event(team.id, team: name, kind: "thaw", .zero, "by \(by)")
            return true
        }
    }

    public func freeze(of team: String) throws(LedgerError) -> TeamFreeze? {
        try driver.transaction { (session) throws(LedgerError) in try session.rows.freeze(of: team, session) }
    }
}
