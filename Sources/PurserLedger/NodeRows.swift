/// The node rows a transaction works on, held in memory and written back once, just
/// before COMMIT, with the transaction's audit events.
///
/// On SQLite one set serves a whole group-commit batch: a team row that thirty reserves
/// touch is read once and written once, and a reserve costs no statement of its own until
/// the flush. The rules (`SQLLedger`) check everything before they change a row here, so an
/// operation that is refused leaves the set as it found it.
///
/// Where the store says whether anyone else wrote since (SQLite's `PRAGMA data_version`),
/// the rows outlive their transaction: open nodes stay cached from one batch to the next,
/// and so do the children of nodes created while the cache was valid, which means a settle
/// of a node this process reserved reads nothing. Any other writer, rollback, or work that
/// writes by SQL of its own (`SQLDriver.transaction`) drops the whole cache.
public final class NodeRows {
    private struct Stamps {
        var created: Int64?
        var closed: Int64?
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
    private var cache: [NodeID: Node] = [:]
    /// Rows read with the dialect's row lock (PostgreSQL): a later locked read must not be
    /// served from an unlocked copy.
    private var locked: Set<NodeID> = []
    private var changed: [NodeID] = []
    private var changedSet: Set<NodeID> = []
    private var stamps: [NodeID: Stamps] = [:]
    private var events: [Event] = []
    private var teams: [String: NodeID] = [:]
    /// Open children created here, by parent.
    private var createdChildren: [NodeID: Set<NodeID>] = [:]
    /// Nodes created while the cache was valid: every child they have was created here.
    private var childrenKnown: Set<NodeID> = []
    /// The store's change counter when the cache was last known to be valid.
    private var storeVersion: Int64?
    private var liveHolders: Set<Holder> = []
    private var lastID: NodeID?
    private var insertSQL: [InsertShape: String] = [:]

    init(dialect: SQLDialect) {
        self.dialect = dialect
    }

    // MARK: - Reading

    func node(_ id: NodeID, _ session: any SQLSession, locking: Bool = false) throws(LedgerError) -> Node {
        let lock = locking ? dialect.lockRow : ""
        if let node = cache[id], lock.isEmpty || locked.contains(id) { return node }
        guard let row = try session.run("SELECT \(Schema.nodeColumns) FROM nodes WHERE id = $1 \(lock)", id.sql).first else {
            throw LedgerError(.unknownNode, "no node \(id)")
        }
        if !lock.isEmpty { locked.insert(id) }
        // A row changed here stays as changed; the store's copy is older.
        if let node = cache[id] { return node }
        let node = Schema.node(row)
        cache[id] = node
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
        let fresh = createdChildren[id] ?? []
        if childrenKnown.contains(id) { return fresh.sorted() }
        let stored = try session.run("SELECT id FROM nodes WHERE parent_id = $1 AND state = 'open'", id.sql).map { $0[0].int }
        return fresh.union(stored).filter { cache[$0]?.isOpen ?? true }.sorted()
    }

    /// At the start of a transaction: keeps the cache only if the store's change counter
    /// says nobody else wrote since the last one.
    func begin(storeVersion version: Int64?) {
        if version == nil || version != storeVersion { reset() }
        storeVersion = version
    }

    /// Whether the holder's lease is live (on PostgreSQL, share-locked until the end of
    /// the transaction, so that a sweep cannot reclaim it meanwhile).
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
        guard var node = cache[id] else { preconditionFailure("node \(id) changed before it was read") }
        change(&node)
        cache[id] = node
        touch(id)
        if !node.isOpen && stamps[id]?.closed == nil {
            stamps[id, default: Stamps()].closed = now()
            if let parent = node.parent { createdChildren[parent]?.remove(id) }
        }
    }

    func create(_ node: Node) {
        cache[node.id] = node
        locked.insert(node.id)
        stamps[node.id] = Stamps(created: now())
        if let parent = node.parent { createdChildren[parent, default: []].insert(node.id) }
        if storeVersion != nil { childrenKnown.insert(node.id) }
        touch(node.id)
    }

    func event(_ node: NodeID, team: String, kind: String, _ amounts: Resources, _ detail: String) {
        events.append(Event(node: node, team: team, kind: kind, amounts: amounts, detail: detail, at: now()))
    }

    private func touch(_ id: NodeID) {
        if changedSet.insert(id).inserted { changed.append(id) }
    }

    // MARK: - Writing back

    /// Writes every created and changed row and every event. Closed nodes leave the cache;
    /// open ones stay for a next transaction, if `begin` finds the cache still valid.
    func flush(_ session: any SQLSession) throws(LedgerError) {
        defer { endTransaction() }
        var inserts: [[SQLValue]] = []
        for id in changed {
            guard let node = cache[id] else { continue }
            if let created = stamps[id]?.created {
                inserts.append(Self.insertValues(node, created: created, closed: stamps[id]?.closed))
            } else {
                try write(node, closed: stamps[id]?.closed, session)
            }
        }
        try insert(into: "nodes", Self.nodeInsertColumns, inserts, session)
        try insert(into: "events", "node_id, team, kind, credits, time_ms, memory, detail, at_ms", events.map { event in
            [event.node.sql, event.team.sql, event.kind.sql, event.amounts.credits.sql, event.amounts.timeMs.sql,
             event.amounts.memoryBytes.sql, event.detail.sql, event.at.sql]
        }, session)
    }

    /// Multi-row INSERTs: one statement for up to 32 rows instead of one per row.
    private func insert(
        into table: String, _ columns: String, _ rows: [[SQLValue]], _ session: any SQLSession
    ) throws(LedgerError) {
        var start = 0
        while start < rows.count {
            // Chunks of 32, 16, 8, 4, 2 or 1 rows: a few statement shapes, each prepared once.
            let size = 1 << min(5, Int.bitWidth - 1 - (rows.count - start).leadingZeroBitCount)
            let chunk = rows[start..<start + size]
            let key = InsertShape(table: table, rows: chunk.count)
            let sql = insertSQL[key] ?? {
                let width = chunk[start].count
                let tuples = (0..<chunk.count).map { row in
                    "(" + (1...width).map { "$\(row * width + $0)" }.joined(separator: ", ") + ")"
                }
                let sql = "INSERT INTO \(table) (\(columns)) VALUES \(tuples.joined(separator: ", "))"
                insertSQL[key] = sql
                return sql
            }()
            _ = try session.query(sql, chunk.flatMap { $0 })
            start += chunk.count
        }
    }

    private struct InsertShape: Hashable {
        var table: String
        var rows: Int
    }

    private func endTransaction() {
        for id in changed where cache[id]?.isOpen == false {
            cache[id] = nil
            childrenKnown.remove(id)
            createdChildren[id] = nil
        }
        locked.removeAll(keepingCapacity: true)
        changed.removeAll(keepingCapacity: true)
        changedSet.removeAll(keepingCapacity: true)
        stamps.removeAll(keepingCapacity: true)
        events.removeAll(keepingCapacity: true)
    }

    /// Forgets everything: after a rollback, or around work whose SQL may change rows
    /// behind this set's back.
    func reset() {
        cache.removeAll(keepingCapacity: true)
        locked.removeAll(keepingCapacity: true)
        changed.removeAll(keepingCapacity: true)
        changedSet.removeAll(keepingCapacity: true)
        stamps.removeAll(keepingCapacity: true)
        events.removeAll(keepingCapacity: true)
        teams.removeAll(keepingCapacity: true)
        createdChildren.removeAll(keepingCapacity: true)
        childrenKnown.removeAll(keepingCapacity: true)
        liveHolders.removeAll(keepingCapacity: true)
        lastID = nil
        storeVersion = nil
    }

    private static let nodeInsertColumns = """
        id, parent_id, team, kind, name, state, tools,
        cap_credits, cap_time, cap_memory, avail_credits, avail_time, avail_memory,
        resv_credits, resv_time, resv_memory, used_credits, used_time, peak_memory,
        ret_credits, ret_time, ret_memory, workers_cap, workers_in_use,
        holder, epoch, plugin, estimate, strategy, outcome, created_ms, closed_ms
        """

    private static func insertValues(_ node: Node, created: Int64, closed: Int64?) -> [SQLValue] {
        [
            node.id.sql, node.parent.sql, node.team.sql, node.kind.rawValue.sql, node.name.sql,
            (node.isOpen ? "open" : "closed").sql, node.tools.joined(separator: ",").sql,
            node.cap.credits.sql, node.cap.timeMs.sql, node.cap.memoryBytes.sql,
            node.available.credits.sql, node.available.timeMs.sql, node.available.memoryBytes.sql,
            node.reserved.credits.sql, node.reserved.timeMs.sql, node.reserved.memoryBytes.sql,
            node.consumed.credits.sql, node.consumed.timeMs.sql, node.consumed.memoryBytes.sql,
            node.returned.credits.sql, node.returned.timeMs.sql, node.returned.memoryBytes.sql,
            node.workersCap.sql, node.workersInUse.sql, node.holder?.id.sql ?? .null, node.holder?.epoch.sql ?? .null,
            node.plugin.sql, node.estimate.sql, node.strategy.sql, node.outcome.sql, created.sql, closed.sql,
        ]
    }

    private func write(_ node: Node, closed: Int64?, _ session: any SQLSession) throws(LedgerError) {
        try session.run(
            """
            UPDATE nodes SET state = $2, outcome = $3, closed_ms = COALESCE($4, closed_ms),
                avail_credits = $5, avail_time = $6, avail_memory = $7,
                resv_credits = $8, resv_time = $9, resv_memory = $10,
                used_credits = $11, used_time = $12, peak_memory = $13,
                ret_credits = $14, ret_time = $15, ret_memory = $16, workers_in_use = $17
            WHERE id = $1
            """,
            node.id.sql, (node.isOpen ? "open" : "closed").sql, node.outcome.sql, closed.sql,
            node.available.credits.sql, node.available.timeMs.sql, node.available.memoryBytes.sql,
            node.reserved.credits.sql, node.reserved.timeMs.sql, node.reserved.memoryBytes.sql,
            node.consumed.credits.sql, node.consumed.timeMs.sql, node.consumed.memoryBytes.sql,
            node.returned.credits.sql, node.returned.timeMs.sql, node.returned.memoryBytes.sql, node.workersInUse.sql)
    }
}
