/// The node rows a transaction works on, held in memory and written back before COMMIT,
/// with the transaction's audit events.
///
/// On SQLite one set serves a whole group-commit batch: a team row that thirty reserves
/// touch is read once and written once, and a reserve costs no statement of its own until
/// the flush. A batch that callers join while it runs flushes as it goes, leaving the
/// rows still open for the last flush. The rules (`SQLBudgetStore`) check everything before they change a row here, so an
/// operation that is refused leaves the set as it found it.
///
/// Where the store says whether anyone else wrote since (SQLite's `PRAGMA data_version`),
/// the rows outlive their transaction: open nodes stay cached from one batch to the next,
/// and so do the children of nodes created while the cache was valid, which means a settle
/// of a node this process reserved reads nothing. Any other writer, rollback, or work that
/// writes by SQL of its own (`SQLDriver.transaction`) drops the whole cache.
public final class NodeRows {
    /// A cached node and what this set knows of it: one dictionary entry, so that the
    /// hot path looks a node up once, not once per fact.
    private struct Entry {
        var node: Node
        /// When it was created or closed in the current transaction.
        var createdAt: Int64?
        var closedAt: Int64?
        /// Listed in `changed` in the current transaction.
        var changed = false
        /// Created while the cache was valid: every child it has was created here.
        var childrenKnown = false
        /// Its open children created here.
        var createdChildren: Set<NodeID> = []

        init(_ node: Node) {
            self.node = node
        }
    }

    private struct Event {
        var node: NodeID
        var team: String
        var kind: String
        var amounts: Resources
        var detail: String
        var at: Int64
    }

    private let dialect: SQLDialect
    private var entries: [NodeID: Entry] = [:]
    /// Rows read with the dialect's row lock (PostgreSQL): a later locked read must not be
    /// served from an unlocked copy.
    private var locked: Set<NodeID> = []
    private var changed: [NodeID] = []
    private var events: [Event] = []
    private var teams: [String: NodeID] = [:]
    /// The store's change counter when the cache was last known to be valid.
    private var storeVersion: Int64?
    private var liveHolders: Set<Holder> = []
    /// Teams looked up for a freeze (nil inside: not frozen), kept while the cache is.
    private var freezes: [String: TeamFreeze?] = [:]
    private var lastID: NodeID?
    /// Reused from one statement to the next: the values bound to it.
    private var arguments = SQLArguments()
    /// Rows created in this transaction, in the order they were changed.
    private var created: [NodeID] = []
    /// Changed rows a flush left for the next one.
    private var deferred: [NodeID] = []

    init(dialect: SQLDialect) {
        self.dialect = dialect
    }

    // MARK: - Reading

    func node(_ id: NodeID, _ session: any SQLSession, locking: Bool = false) throws(LedgerError) -> Node {
        let lock = locking ? dialect.lockRow : ""
        if let entry = entries[id], lock.isEmpty || locked.contains(id) { return entry.node }
        guard let row = try session.run("SELECT \(Schema.nodeColumns) FROM nodes WHERE id = $1 \(lock)", id.sql).first else {
            throw LedgerError(.unknownNode, "no node \(id)")
        }
        if !lock.isEmpty { locked.insert(id) }
        // A row changed here stays as changed; the store's copy is older. A row only read
        // here is not: the locked read, which waited for any other writer, is the truth (an
        // unlocked copy taken before another host's reclaim committed still says "open").
        if let entry = entries[id], entry.changed || entry.createdAt != nil { return entry.node }
        let node = Schema.node(row)
        if entries[id] != nil {
            entries[id]!.node = node
        } else {
            entries[id] = Entry(node)
        }
        return node
    }

    func team(named name: String, _ session: any SQLSession, locking: Bool = false) throws(LedgerError) -> Node {
        if let id = teams[name] { return try node(id, session, locking: locking) }
        guard let row = try session.run("SELECT id FROM nodes WHERE kind = 'team' AND name = $1", name.sql).first else {
            throw LedgerError(.unknownTeam, "no team named \(name)")
        }
        teams[name] = row[0].int
        return try node(row[0].int, session, locking: locking)
    }

    /// The node's open children: the store's, as changed here, and those created here.
    func openChildren(of id: NodeID, _ session: any SQLSession) throws(LedgerError) -> [NodeID] {
        let entry = entries[id]
        let fresh = entry?.createdChildren ?? []
        if entry?.childrenKnown == true { return fresh.isEmpty ? [] : fresh.sorted() }
        let stored = try session.run("SELECT id FROM nodes WHERE parent_id = $1 AND state = 'open'", id.sql).map { $0[0].int }
        return fresh.union(stored).filter { entries[$0]?.node.isOpen ?? true }.sorted()
    }

    /// At the start of a transaction: keeps the cache only if the store's change counter
    /// says nobody else wrote since the last one.
    func begin(storeVersion version: Int64?) {
        if version == nil || version != storeVersion { reset() }
        storeVersion = version
    }

    /// The team's freeze, if it is frozen: read once while the cache holds (a freeze or thaw
    /// by another connection changes the store's version, and one by this connection runs as
    /// a transaction of its own, after which the cache is forgotten).
    func freeze(of team: String, _ session: any SQLSession) throws(LedgerError) -> TeamFreeze? {
        if let known = freezes[team] { return known }
        let found = try session.query("SELECT team, since_ms, by_whom, reason FROM frozen_teams WHERE team = $1", [team.sql]).first.map {
            TeamFreeze(team: $0[0].string ?? "", sinceMs: $0[1].int, by: $0[2].string ?? "", reason: $0[3].string ?? "")
        }
        freezes[team] = .some(found)
        return found
    }

    /// Whether the holder's lease is live (on PostgreSQL, key-share-locked until the end of
    /// the transaction, so that a sweep, which locks leases FOR UPDATE, cannot reclaim it
    /// meanwhile, while the holder's renewal still can renew it).
    func isLive(_ holder: Holder, _ session: any SQLSession) throws(LedgerError) -> Bool {
        if liveHolders.contains(holder) { return true }
        let live = try !session.run(
            "SELECT epoch FROM leases WHERE holder = $1 AND epoch = $2 AND state = 'live' \(dialect.lockShared)",
            holder.id.sql, holder.epoch.sql
        ).isEmpty
        if live { liveHolders.insert(holder) }
        return live
    }

    /// An id for a node created here. Under the write lock the largest id cannot move.
    func newID(_ session: any SQLSession) throws(LedgerError) -> NodeID {
        if let sequence = dialect.nodeSequence {
            return try session.run("SELECT nextval('\(sequence)')").first?.first?.int ?? 0
        }
        var last = lastID ?? 0
        if lastID == nil { last = try session.run("SELECT COALESCE(MAX(id), 0) FROM nodes").first?.first?.int ?? 0 }
        lastID = last + 1
        return last + 1
    }

    // MARK: - Changing

    /// Changes a row this set has read or created. Never fails: checks come first.
    func update(_ id: NodeID, _ change: (inout Node) -> Void) {
        guard let index = entries.index(forKey: id) else { preconditionFailure("node \(id) changed before it was read") }
        // In place: a copy of the node would retain and release each of its strings.
        var closedParent: NodeID?
        modify(index) { entry in
            change(&entry.node)
            if !entry.changed {
                entry.changed = true
                changed.append(id)
            }
            if !entry.node.isOpen && entry.closedAt == nil {
                entry.closedAt = now()
                closedParent = entry.node.parent
            }
        }
        if let parent = closedParent, let index = entries.index(forKey: parent) {
            modify(index) { $0.createdChildren.remove(id) }
        }
    }

    func create(_ node: Node) {
        var entry = Entry(node)
        entry.createdAt = now()
        entry.changed = true
        entry.childrenKnown = storeVersion != nil
        entries[node.id] = entry
        changed.append(node.id)
        if !dialect.lockRow.isEmpty { locked.insert(node.id) }
        if let parent = node.parent, let index = entries.index(forKey: parent) {
            modify(index) { $0.createdChildren.insert(node.id) }
        }
    }

    private func modify(_ index: Dictionary<NodeID, Entry>.Index, _ change: (inout Entry) -> Void) {
        change(&entries.values[index])
    }

    func event(_ node: NodeID, team: String, kind: String, _ amounts: Resources, _ detail: String) {
        events.append(Event(node: node, team: team, kind: kind, amounts: amounts, detail: detail, at: now()))
    }

    // MARK: - Writing back

    /// Writes every created and changed row and every event. Closed nodes leave the cache;
    /// open ones stay for a next transaction, if `begin` finds the cache still valid.
    ///
    /// `deferringOpenRows` leaves changed rows that are still open, such as the parent every
    /// reserve and settle changes, for a later flush in the same transaction: they are likely
    /// to change again before it commits, and each write of one costs a statement.
    func flush(_ session: any SQLSession, deferringOpenRows: Bool = false) throws(LedgerError) {
        defer { endTransaction() }
        created.removeAll(keepingCapacity: true)
        for id in changed {
            // By index, field by field: reading the entry out would copy it.
            guard let index = entries.index(forKey: id) else { continue }
            if entries.values[index].createdAt != nil {
                created.append(id)
            } else if deferringOpenRows, entries.values[index].node.isOpen {
                deferred.append(id)
            } else {
                try write(index, session)
            }
        }
        try insert(Statement.nodeInserts, rows: created.count, columns: Self.nodeInsertColumns, session) { row, values in
            let index = entries.index(forKey: created[row])!
            Self.appendInsertValues(
                entries.values[index].node, created: entries.values[index].createdAt!, closed: entries.values[index].closedAt,
                to: &values)
        }
        try insert(Statement.eventInserts, rows: events.count, columns: Self.eventColumns, session) { row, values in
            let event = events[row]
            values.append(event.node)
            values.append(event.team)
            values.append(event.kind)
            values.append(event.amounts)
            values.append(event.detail)
            values.append(event.at)
        }
    }

    /// Keys of `SQLSession.write`: an INSERT of 2^k rows is `first + k`.
    private enum Statement {
        static let maxRows = 32
        static let nodeInserts = (table: "nodes", first: 0)
        static let eventInserts = (table: "events", first: maxRows)
        static let nodeUpdate = 2 * maxRows
    }

    /// Multi-row INSERTs: one statement for up to 32 rows, not one per row.
    private func insert(
        _ statement: (table: String, first: Int), rows: Int, columns: [String], _ session: any SQLSession,
        _ values: (Int, inout SQLArguments) -> Void
    ) throws(LedgerError) {
        var start = 0
        while start < rows {
            // 32, 16, 8, 4, 2 or 1 rows: few shapes, since preparing a large one costs a
            // thousand times what running it does.
            let size = 1 << min(5, Int.bitWidth - 1 - (rows - start).leadingZeroBitCount)
            arguments.removeAll()
            for row in start..<start + size { values(row, &arguments) }
            let key = statement.first + size.trailingZeroBitCount
            try session.write(key, { insertSQL(statement.table, columns, rows: size) }, arguments)
            start += size
        }
    }

    private func insertSQL(_ table: String, _ columns: [String], rows: Int) -> String {
        var number = 0
        let tuples = (0..<rows).map { _ in
            "(" + columns.map { _ in number += 1; return dialect.placeholder(number) }.joined(separator: ", ") + ")"
        }
        return "INSERT INTO \(table) (\(columns.joined(separator: ", "))) VALUES \(tuples.joined(separator: ", "))"
    }

    private func endTransaction() {
        for id in changed {
            guard let index = entries.index(forKey: id) else { continue }
            if entries.values[index].node.isOpen {
                modify(index) { entry in
                    entry.changed = false
                    entry.createdAt = nil
                    entry.closedAt = nil
                }
            } else {
                entries.remove(at: index)
            }
        }
        locked.removeAll(keepingCapacity: true)
        changed.removeAll(keepingCapacity: true)
        events.removeAll(keepingCapacity: true)
        for id in deferred {
            guard let index = entries.index(forKey: id) else { continue }
            modify(index) { $0.changed = true }
            changed.append(id)
        }
        deferred.removeAll(keepingCapacity: true)
    }

    /// Forgets everything: after a rollback, or around work whose SQL may change rows
    /// behind this set's back.
    func reset() {
        deferred.removeAll(keepingCapacity: true)
        entries.removeAll(keepingCapacity: true)
        locked.removeAll(keepingCapacity: true)
        changed.removeAll(keepingCapacity: true)
        events.removeAll(keepingCapacity: true)
        teams.removeAll(keepingCapacity: true)
        liveHolders.removeAll(keepingCapacity: true)
        freezes.removeAll(keepingCapacity: true)
        lastID = nil
        storeVersion = nil
    }

    private static let nodeInsertColumns = [
        "id", "parent_id", "team", "kind", "name", "state", "tools",
        "cap_credits", "cap_time", "cap_memory", "avail_credits", "avail_time", "avail_memory",
        "resv_credits", "resv_time", "resv_memory", "used_credits", "used_time", "peak_memory",
        "ret_credits", "ret_time", "ret_memory", "workers_cap", "workers_in_use",
        "holder", "epoch", "plugin", "estimate", "strategy", "outcome", "created_ms", "closed_ms",
    ]

    private static let eventColumns = ["node_id", "team", "kind", "credits", "time_ms", "memory", "detail", "at_ms"]

    private static func appendInsertValues(_ node: borrowing Node, created: Int64, closed: Int64?, to values: inout SQLArguments) {
        values.append(node.id)
        values.append(node.parent)
        values.append(node.team)
        values.append(node.kind.rawValue)
        values.append(node.name)
        values.append(node.isOpen ? "open" : "closed")
        values.append(node.tools.joined(separator: ","))
        values.append(node.cap)
        values.append(node.available)
        values.append(node.reserved)
        values.append(node.consumed)
        values.append(node.returned)
        values.append(node.workersCap)
        values.append(node.workersInUse)
        values.append(node.holder?.id)
        values.append(node.holder?.epoch)
        values.append(node.plugin)
        values.append(node.estimate)
        values.append(node.strategy)
        values.append(node.outcome)
        values.append(created)
        values.append(closed)
    }

    private func write(_ index: Dictionary<NodeID, Entry>.Index, _ session: any SQLSession) throws(LedgerError) {
        arguments.removeAll()
        Self.appendUpdateValues(entries.values[index].node, closed: entries.values[index].closedAt, to: &arguments)
        try session.write(Statement.nodeUpdate, { updateSQL }, arguments)
    }

    private static func appendUpdateValues(_ node: borrowing Node, closed: Int64?, to values: inout SQLArguments) {
        values.append(node.isOpen ? "open" : "closed")
        values.append(node.outcome)
        values.append(closed)
        values.append(node.available)
        values.append(node.reserved)
        values.append(node.consumed)
        values.append(node.returned)
        values.append(node.workersInUse)
        // A resize moves a hold's cap of credits; nothing else changes a cap after create.
        values.append(node.cap.credits)
        values.append(node.id)
    }

    private var updateSQL: String {
        let p = dialect.placeholder
        return """
            UPDATE nodes SET state = \(p(1)), outcome = \(p(2)), closed_ms = COALESCE(\(p(3)), closed_ms),
                avail_credits = \(p(4)), avail_time = \(p(5)), avail_memory = \(p(6)),
                resv_credits = \(p(7)), resv_time = \(p(8)), resv_memory = \(p(9)),
                used_credits = \(p(10)), used_time = \(p(11)), peak_memory = \(p(12)),
                ret_credits = \(p(13)), ret_time = \(p(14)), ret_memory = \(p(15)), workers_in_use = \(p(16)),
                cap_credits = \(p(17))
            WHERE id = \(p(18))
            """
    }
}

extension SQLArguments {
    /// Credits, time and memory, in that order.
    mutating func append(_ amounts: Resources) {
        append(amounts.credits)
        append(amounts.timeMs)
        append(amounts.memoryBytes)
    }
}
