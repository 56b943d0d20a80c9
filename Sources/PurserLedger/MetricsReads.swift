/// What `purser serve`'s `/metrics` reads from the store when it is scraped: the gauges
/// the store holds exactly (budgets, the queue), read then rather than tracked by events.
public protocol BudgetGaugeStore: Sendable {
    /// Every team's node, and every open swarm's hold taken from a team (not the chunks
    /// hosts hold of it), parents first.
    func budgetNodes() throws(LedgerError) -> [Node]
}

public protocol QueueGaugeStore: Sendable {
    /// The queue's routines not done, counted by team, swarm name and what they wait for.
    func queueDepths() throws(LedgerError) -> [QueueDepth]
}

/// How many routines of a team's swarms of one name are in one place of the queue.
public struct QueueDepth: Sendable, Hashable {
    public enum Place: String, Sendable, CaseIterable {
        /// Their swarm waits for its budget (queued, being admitted, or paused by a preemption).
        case budget
        /// Their swarm holds its budget; they wait for routines they come after.
        case dependencies
        /// Ready: they wait for a host's slot (or their swarm's concurrency).
        case slot
        case running
    }

    public var team: String
    public var swarm: String
    public var place: Place
    public var routines: Int64
}

extension SQLLedger: BudgetGaugeStore {
    public func budgetNodes() throws(LedgerError) -> [Node] {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run(
                """
                SELECT \(Schema.nodeColumns) FROM nodes WHERE kind = 'team' OR (kind = 'swarm' AND state = 'open'
                AND parent_id IN (SELECT id FROM nodes WHERE kind = 'team')) ORDER BY id
                """
            ).map(Schema.node)
        }
    }
}

extension SQLFleetStore: QueueGaugeStore {
    public func queueDepths() throws(LedgerError) -> [QueueDepth] {
        let rows = try single(
            """
            SELECT s.team, s.name, r.state, CASE WHEN s.state IN ('queued', 'admitting') OR s.paused <> 0 THEN 1 ELSE 0 END, count(*)
            FROM fleet_routines r JOIN fleet_swarms s ON s.id = r.swarm
            WHERE s.state <> 'done' AND r.state IN ('waiting', 'ready', 'running')
            GROUP BY 1, 2, 3, 4
            """)
        var depths: [QueueDepth] = []
        for row in rows {
            let place: QueueDepth.Place
            switch (row[2].string, row[3].int != 0) {
            case ("running", _): place = .running
            case (_, true): place = .budget
            case ("ready", false): place = .slot
            default: place = .dependencies
            }
            let depth = QueueDepth(team: row[0].string ?? "", swarm: row[1].string ?? "", place: place, routines: row[4].int)
            // A paused swarm's ready and waiting routines both wait for budget: one count.
            if let index = depths.firstIndex(where: { $0.team == depth.team && $0.swarm == depth.swarm && $0.place == place }) {
                depths[index].routines += depth.routines
            } else {
                depths.append(depth)
            }
        }
        return depths
    }
}
