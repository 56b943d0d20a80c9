import Glibc

/// The ledger's operations, written once over any `SQLDriver`.
public final class SQLLedger<Driver: SQLDriver>: LedgerStore {
    public let driver: Driver

    public init(driver: Driver) throws(LedgerError) {
        self.driver = driver
        try driver.transaction { (session) throws(LedgerError) in
            for statement in Schema.statements(driver.dialect) { try session.run(statement) }
        }
    }

    // MARK: - Teams and nodes

    public func createTeam(_ spec: TeamSpec) throws(LedgerError) -> Node {
        guard !spec.name.isEmpty, !spec.name.contains(",") else { throw LedgerError(.invalid, "a team needs a name") }
        guard spec.caps.isNonNegative else { throw LedgerError(.invalid, "team \(spec.name): amounts must not be negative") }
        if let workers = spec.workers, workers < 0 { throw LedgerError(.invalid, "team \(spec.name): workers must not be negative") }
        let tools = try Self.toolList(spec.tools)
        return try driver.transaction { (session) throws(LedgerError) in
            if try !session.run("SELECT id FROM nodes WHERE kind = 'team' AND name = $1", spec.name.sql).isEmpty {
                throw LedgerError(.invalid, "team \(spec.name) exists already")
            }
            let caps = spec.caps
            let rows = try session.run(
                """
                INSERT INTO nodes (parent_id, team, kind, name, state, tools,
                    cap_credits, cap_time, cap_memory, avail_credits, avail_time, avail_memory,
                    resv_credits, resv_time, resv_memory, used_credits, used_time, peak_memory,
                    ret_credits, ret_time, ret_memory, workers_cap, workers_in_use, created_ms)
                VALUES (NULL, $1, 'team', $1, 'open', $2, $3, $4, $5, $3, $4, $5, 0, 0, 0, 0, 0, 0, 0, 0, 0, $6, 0, $7)
                RETURNING id
                """, spec.name.sql, tools.sql, caps.credits.sql, caps.timeMs.sql, caps.memoryBytes.sql,
                spec.workers.sql, now().sql)
            let id = rows.first?.first?.int ?? 0
            session.rows.event(id, team: spec.name, kind: "team_created", caps, "")
            return try Self.load(session, id)
        }
    }

    public func team(named name: String) throws(LedgerError) -> Node {
        try driver.transaction { (session) throws(LedgerError) in
            let rows = try session.run(
                "SELECT \(Schema.nodeColumns) FROM nodes WHERE kind = 'team' AND name = $1", name.sql)
            guard let row = rows.first else { throw LedgerError(.unknownTeam, "no team named \(name)") }
            return Schema.node(row)
        }
    }

    public func addTools(team name: String, tools: [String]) throws(LedgerError) -> Node {
        _ = try Self.toolList(tools)
        return try driver.transaction { (session) throws(LedgerError) in
            guard let row = try session.run(
                "SELECT \(Schema.nodeColumns) FROM nodes WHERE kind = 'team' AND name = $1 \(driver.dialect.lockRow)", name.sql
            ).first else { throw LedgerError(.unknownTeam, "no team named \(name)") }
            let team = Schema.node(row)
            let added = Set(tools).subtracting(team.tools)
            guard !added.isEmpty else { return team }
            try session.run("UPDATE nodes SET tools = $2 WHERE id = $1", team.id.sql, try Self.toolList(team.tools + added).sql)
            session.rows.event(team.id, team: name, kind: "tools_added", .zero, added.sorted().joined(separator: ","))
            return try Self.load(session, team.id)
        }
    }

    public func node(_ id: NodeID) throws(LedgerError) -> Node {
        try driver.transaction { (session) throws(LedgerError) in try Self.load(session, id) }
    }

    public func tree(team: String) throws(LedgerError) -> [Node] {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT \(Schema.nodeColumns) FROM nodes WHERE team = $1 ORDER BY id", team.sql)
                .map(Schema.node)
        }
    }

    // MARK: - Reserve, spend, settle

    @_specialize(where Driver == SQLiteDriver)
    public func reserve(_ request: ReserveRequest) throws(LedgerError) -> Node {
        guard request.kind != .team else { throw LedgerError(.invalid, "a team is created, not reserved") }
        guard request.amounts.isNonNegative else {
            throw LedgerError(.invalid, "\(request.name): amounts must not be negative")
        }
        let tools = try Self.toolList(request.tools)
        if driver.dialect.serverFunctions {
            let rows = try driver.single(ServerFunctions.reserveCall, [
                request.parent.sql, request.kind.rawValue.sql, request.name.sql, tools.sql, request.amounts.credits.sql,
                request.amounts.timeMs.sql, request.amounts.memoryBytes.sql, request.holder?.id.sql ?? .null,
                request.holder?.epoch.sql ?? .null, request.plugin.sql, request.estimate.sql, request.strategy.sql, now().sql,
            ])
            guard let row = rows.first else { throw LedgerError(.storeFailed, "\(request.name): reserve returned no row") }
            return Schema.node(row)
        }
        return try driver.batch { (session) throws(LedgerError) in try reserve(session, request, tools: tools) }
    }

    /// Checks everything first, then takes the amounts from the parent, seats a worker at
    /// the team if the node runs one, and creates the node: all of it or nothing.
    private func reserve(_ session: any SQLSession, _ request: ReserveRequest, tools: String) throws(LedgerError) -> Node {
        let rows = session.rows
        let parent = try rows.node(request.parent, session, locking: true)
        guard parent.isOpen else { throw LedgerError(.closed, "node \(parent.id) is closed") }
        try fence(session, parent, request.holder, checkNode: false)
        let missing = parent.missingTools(request.tools)
        guard missing.isEmpty else {
            throw LedgerError(
                .toolNotPermitted,
                "\(request.name): \(missing.sorted().joined(separator: ", ")) not among \(parent.kind.rawValue) \(parent.name)'s tools")
        }
        let amounts = request.amounts
        guard amounts.fits(in: parent.available) else { throw Self.shortfall(request, parent) }
        let team = request.kind.runsWorker ? try rows.team(named: parent.team, session, locking: true) : nil
        if let team, let cap = team.workersCap, team.workersInUse >= cap {
            throw LedgerError(.insufficient, "\(request.name): team \(parent.team) has no free worker slot")
        }
        let id = try rows.newID(session)
        rows.update(parent.id) { parent in
            parent.available = parent.available - amounts
            parent.reserved = parent.reserved + amounts
        }
        if let team { rows.update(team.id) { $0.workersInUse += 1 } }
        let node = Node(
            id: id, parent: parent.id, team: parent.team, kind: request.kind, name: request.name, isOpen: true,
            tools: tools.isEmpty ? [] : tools.split(separator: ",").map(String.init), cap: amounts, available: amounts,
            reserved: .zero, consumed: .zero, returned: .zero, workersCap: nil, workersInUse: 0, holder: request.holder,
            plugin: request.plugin, estimate: request.estimate, strategy: request.strategy, outcome: nil)
        rows.create(node)
        rows.event(id, team: parent.team, kind: "reserve", amounts, "from node \(parent.id)")
        return node
    }

    public func spend(_ id: NodeID, credits: Int64, holder: Holder?) throws(LedgerError) {
        try charge(id, credits: credits, holder: holder, event: "spend", detail: "")
    }

    public func charge(_ id: NodeID, credits: Int64, holder: Holder?, event: String, detail: String) throws(LedgerError) {
        if let refusal = try charges(id, [(credits, detail)], holder: holder, event: event).first { throw refusal }
    }

    /// Several spends at one node in one transaction. Each is refused on its own (and the
    /// refusal audited) when it exceeds what is left; the refusals come back.
    @_specialize(where Driver == SQLiteDriver)
    public func charges(
        _ id: NodeID, _ items: [(credits: Int64, detail: String)], holder: Holder?, event: String
    ) throws(LedgerError) -> [LedgerError] {
        guard items.allSatisfy({ $0.credits >= 0 }) else { throw LedgerError(.invalid, "node \(id): a spend must not be negative") }
        return try driver.batch { (session) throws(LedgerError) -> [LedgerError] in
            let rows = session.rows
            let node = try rows.node(id, session, locking: true)
            guard node.isOpen else { throw LedgerError(.closed, "node \(id) is closed") }
            try fence(session, node, holder, checkNode: true)
            // Nothing below throws: every item is applied or refused.
            var refusals: [LedgerError] = []
            for (credits, detail) in items {
                let available = (try? rows.node(id, session))?.available.credits ?? 0
                guard credits <= available else {
                    rows.event(id, team: node.team, kind: event + "_refused", Resources(credits: credits),
                        "available \(available)" + (detail.isEmpty ? "" : "; " + detail))
                    refusals.append(LedgerError(.insufficient, "node \(id): spending \(credits) µcredits refused, \(available) available"))
                    continue
                }
                rows.update(id) { node in
                    node.available.credits -= credits
                    node.consumed.credits += credits
                }
                rows.event(id, team: node.team, kind: event, Resources(credits: credits), detail)
            }
            return refusals
        }
    }

    @_specialize(where Driver == SQLiteDriver)
    public func settle(_ id: NodeID, usage: Usage, outcome: String, holder: Holder?) throws(LedgerError) -> Settlement {
        if driver.dialect.serverFunctions {
            let rows = try driver.single(ServerFunctions.settleCall, [
                id.sql, usage.credits.sql, usage.timeMs.sql, usage.memoryPeakBytes.sql, outcome.sql, holder?.id.sql ?? .null,
                holder?.epoch.sql ?? .null, now().sql,
            ])
            guard let row = rows.first else { throw LedgerError(.storeFailed, "node \(id): settle returned no row") }
            return Settlement(
                node: id, used: Resources(credits: row[0].int, timeMs: row[1].int, memoryBytes: row[2].int),
                returned: Resources(credits: row[3].int, timeMs: row[4].int, memoryBytes: row[5].int),
                outcome: row[6].string ?? "")
        }
        return try driver.batch { (session) throws(LedgerError) in
            try settle(session, id, usage: usage, outcome: outcome, holder: holder)
        }
    }

    /// Closes the node, its open descendants first; charges what was used, once, in the
    /// parent, and gives back the rest. Checks come before any change.
    private func settle(
        _ session: any SQLSession, _ id: NodeID, usage: Usage, outcome: String, holder: Holder?
    ) throws(LedgerError) -> Settlement {
        let rows = session.rows
        let node = try rows.node(id, session, locking: true)
        guard node.isOpen else {
            // Settling twice has no effect, but a hold taken away by a reclaim stays taken.
            if holder != nil && node.outcome == "reclaimed" {
                throw LedgerError(.fenced, "node \(id) was reclaimed from its holder; its settlement is final")
            }
            return Self.settlement(node)
        }
        try fence(session, node, holder, checkNode: true)
        guard usage.credits >= 0, usage.timeMs >= 0, usage.memoryPeakBytes >= 0 else {
            throw LedgerError(.invalid, "node \(id): usage must not be negative")
        }
        if let parent = node.parent { _ = try rows.node(parent, session, locking: true) }
        let team = node.kind.runsWorker ? try rows.team(named: node.team, session, locking: true) : nil
        for child in try rows.openChildren(of: id, session) {
            _ = try settle(session, child, usage: .none, outcome: "abandoned", holder: nil)
        }
        let after = try rows.node(id, session)
        let (used, returned) = ChargeRule.settle(cap: after.cap, recorded: after.consumed, declared: usage)
        if usage.credits > after.cap.credits {
            rows.event(id, team: node.team, kind: "overspend_refused", Resources(credits: usage.credits - after.cap.credits),
                "declared \(usage.credits) µcredits, cap \(after.cap.credits)")
        }
        rows.update(id) { node in
            node.isOpen = false
            node.outcome = outcome
            node.available = .zero
            node.consumed = used
            node.returned = returned
        }
        if let parent = node.parent {
            // The used part stays consumed in the parent, once; the rest, and all of the
            // memory, which is held rather than spent, becomes available again.
            rows.update(parent) { parent in
                parent.reserved = parent.reserved - after.cap
                parent.consumed.credits += used.credits
                parent.consumed.timeMs += used.timeMs
                parent.available.credits += returned.credits
                parent.available.timeMs += returned.timeMs
                parent.available.memoryBytes += after.cap.memoryBytes
            }
        }
        if let team { rows.update(team.id) { $0.workersInUse -= 1 } }
        rows.event(id, team: node.team, kind: "settle", used, "outcome \(outcome)")
        rows.event(id, team: node.team, kind: "return", returned, "to node \(node.parent.map(String.init) ?? "-")")
        return Settlement(node: id, used: used, returned: returned, outcome: outcome)
    }

    // MARK: - Leases

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

    // MARK: - Reading

    public func audit(node: NodeID?, team: String?) throws(LedgerError) -> [AuditEvent] {
        try driver.transaction { (session) throws(LedgerError) in
            let rows = try session.run(
                """
                SELECT id, node_id, team, kind, credits, time_ms, memory, detail, at_ms FROM events
                WHERE (CAST($1 AS BIGINT) = -1 OR node_id = $1) AND ($2 = '' OR team = $2) ORDER BY id
                """, (node ?? -1).sql, (team ?? "").sql)
            return rows.map { row in
                AuditEvent(
                    id: row[0].int, node: row[1].int, team: row[2].string ?? "", kind: row[3].string ?? "",
                    amounts: Resources(credits: row[4].int, timeMs: row[5].int, memoryBytes: row[6].int),
                    detail: row[7].string ?? "", atMs: row[8].int)
            }
        }
    }

    public func verify() throws(LedgerError) -> [Violation] {
        let nodes = try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT \(Schema.nodeColumns) FROM nodes ORDER BY id").map(Schema.node)
        }
        return LedgerInvariant.check(nodes)
    }

    public func history(plugin: String?, team: String?, limit: Int) throws(LedgerError) -> [Node] {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run(
                """
                SELECT \(Schema.nodeColumns) FROM nodes
                WHERE state = 'closed' AND kind <> 'team' AND ($1 = '' OR plugin = $1) AND ($2 = '' OR team = $2)
                ORDER BY id DESC LIMIT $3
                """, (plugin ?? "").sql, (team ?? "").sql, Int64(limit).sql
            ).map(Schema.node)
        }
    }

    // MARK: - Plugins

    public func savePlugin(_ plugin: PluginRecord) throws(LedgerError) {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run(
                """
                INSERT INTO plugins (name, path, sha256, info, added_ms) VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (name) DO UPDATE SET path = excluded.path, sha256 = excluded.sha256, info = excluded.info,
                    added_ms = excluded.added_ms
                """, plugin.name.sql, plugin.path.sql, plugin.sha256.sql, plugin.info.sql, plugin.addedMs.sql)
        }
    }

    public func plugin(named name: String) throws(LedgerError) -> PluginRecord? {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT name, path, sha256, info, added_ms FROM plugins WHERE name = $1", name.sql).first.map(Self.plugin)
        }
    }

    public func plugins() throws(LedgerError) -> [PluginRecord] {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT name, path, sha256, info, added_ms FROM plugins ORDER BY name").map(Self.plugin)
        }
    }

    public func removePlugin(named name: String) throws(LedgerError) -> Bool {
        try driver.transaction { (session) throws(LedgerError) in
            try !session.run("DELETE FROM plugins WHERE name = $1 RETURNING name", name.sql).isEmpty
        }
    }

    private static func plugin(_ row: [SQLValue]) -> PluginRecord {
        PluginRecord(
            name: row[0].string ?? "", path: row[1].string ?? "", sha256: row[2].string ?? "", info: row[3].string ?? "",
            addedMs: row[4].int)
    }

    // MARK: - Runs

    public func saveRun(_ run: RunRecord) throws(LedgerError) {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run(
                """
                INSERT INTO runs (id, swarm, team, ok, started_ms, report) VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (id) DO UPDATE SET ok = excluded.ok, report = excluded.report
                """, run.id.sql, run.swarm.sql, run.team.sql, Int64(run.ok ? 1 : 0).sql, run.startedMs.sql, run.report.sql)
        }
    }

    public func runs(limit: Int) throws(LedgerError) -> [RunRecord] {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT id, swarm, team, ok, started_ms FROM runs ORDER BY started_ms DESC, id LIMIT $1", Int64(limit).sql)
                .map { RunRecord(id: $0[0].string ?? "", swarm: $0[1].string ?? "", team: $0[2].string ?? "", ok: $0[3].int != 0,
                    startedMs: $0[4].int, report: "") }
        }
    }

    public func run(id: String) throws(LedgerError) -> RunRecord? {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT id, swarm, team, ok, started_ms, report FROM runs WHERE id = $1", id.sql).first.map {
                RunRecord(id: $0[0].string ?? "", swarm: $0[1].string ?? "", team: $0[2].string ?? "", ok: $0[3].int != 0,
                    startedMs: $0[4].int, report: $0[5].string ?? "")
            }
        }
    }

    // MARK: - The gateway's shared state

    public func consumeQuota(
        key: String, requests: Int64, credits: Int64, maxRequests: Int64?, maxCredits: Int64?
    ) throws(LedgerError) -> Bool {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("INSERT INTO gateway_quota (key, requests, credits) VALUES ($1, 0, 0) ON CONFLICT (key) DO NOTHING", key.sql)
            // One conditional UPDATE: two supervisors cannot both take the last slot.
            return try !session.run(
                """
                UPDATE gateway_quota SET requests = requests + $2, credits = credits + $3
                WHERE key = $1 AND (CAST($4 AS BIGINT) < 0 OR requests + $2 <= $4)
                    AND (CAST($5 AS BIGINT) < 0 OR credits + $3 <= $5)
                RETURNING key
                """, key.sql, requests.sql, credits.sql, (maxRequests ?? -1).sql, (maxCredits ?? -1).sql
            ).isEmpty
        }
    }

    public func adjustQuota(key: String, requests: Int64, credits: Int64) throws(LedgerError) {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run(
                """
                INSERT INTO gateway_quota (key, requests, credits) VALUES ($1, $2, $3)
                ON CONFLICT (key) DO UPDATE SET requests = gateway_quota.requests + $2, credits = gateway_quota.credits + $3
                """, key.sql, requests.sql, credits.sql)
        }
    }

    public func quotaUsage(keys: [String]) throws(LedgerError) -> [String: (requests: Int64, credits: Int64)] {
        try driver.transaction { (session) throws(LedgerError) in
            var usage: [String: (requests: Int64, credits: Int64)] = [:]
            for key in keys {
                if let row = try session.run("SELECT requests, credits FROM gateway_quota WHERE key = $1", key.sql).first {
                    usage[key] = (row[0].int, row[1].int)
                }
            }
            return usage
        }
    }

    public func cachedValue(key: String, nowMs: Int64) throws(LedgerError) -> String? {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("SELECT value FROM gateway_cache WHERE key = $1 AND expires_ms > $2", key.sql, nowMs.sql)
                .first?.first?.string
        }
    }

    public func storeCachedValue(key: String, value: String, expiresMs: Int64) throws(LedgerError) {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run("DELETE FROM gateway_cache WHERE expires_ms <= $1", now().sql)
            try session.run(
                """
                INSERT INTO gateway_cache (key, value, expires_ms) VALUES ($1, $2, $3)
                ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_ms = excluded.expires_ms
                """, key.sql, value.sql, expiresMs.sql)
        }
    }

    public func saveState(name: String, value: String, nowMs: Int64) throws(LedgerError) {
        try driver.transaction { (session) throws(LedgerError) in
            try session.run(
                """
                INSERT INTO gateway_state (name, value, saved_ms) VALUES ($1, $2, $3)
                ON CONFLICT (name) DO UPDATE SET value = excluded.value, saved_ms = excluded.saved_ms
                """, name.sql, value.sql, nowMs.sql)
        }
    }

    public func states() throws(LedgerError) -> [String: String] {
        try driver.transaction { (session) throws(LedgerError) in
            var states: [String: String] = [:]
            for row in try session.run("SELECT name, value FROM gateway_state ORDER BY name") {
                states[row[0].string ?? ""] = row[1].string ?? ""
            }
            return states
        }
    }

    // MARK: - Helpers

    static func load(_ session: any SQLSession, _ id: NodeID) throws(LedgerError) -> Node {
        guard let row = try session.run("SELECT \(Schema.nodeColumns) FROM nodes WHERE id = $1", id.sql).first else {
            throw LedgerError(.unknownNode, "no node \(id)")
        }
        return Schema.node(row)
    }

    /// A holder may act only on its own nodes, and only while its lease is live.
    private func fence(_ session: any SQLSession, _ node: Node, _ holder: Holder?, checkNode: Bool) throws(LedgerError) {
        guard let holder else { return }
        if checkNode, let owner = node.holder, owner != holder {
            throw LedgerError(.fenced, "node \(node.id) is held by \(owner.id) epoch \(owner.epoch), not \(holder.id) epoch \(holder.epoch)")
        }
        guard try session.rows.isLive(holder, session) else {
            throw LedgerError(.fenced, "lease \(holder.id) epoch \(holder.epoch) is no longer live")
        }
    }

    static func shortfall(_ request: ReserveRequest, _ parent: Node) -> LedgerError {
        var short: [String] = []
        let want = request.amounts
        let have = parent.available
        if want.credits > have.credits { short.append("credits: asked \(want.credits) µcredits, \(have.credits) available") }
        if want.timeMs > have.timeMs { short.append("time: asked \(want.timeMs) ms, \(have.timeMs) available") }
        if want.memoryBytes > have.memoryBytes {
            short.append("memory: asked \(want.memoryBytes) bytes, \(have.memoryBytes) available")
        }
        return LedgerError(
            .insufficient,
            "\(request.name): \(parent.kind.rawValue) \(parent.name) cannot grant it (\(short.joined(separator: "; "))); nothing was reserved")
    }

    static func settlement(_ node: Node) -> Settlement {
        Settlement(
            node: node.id, used: node.consumed,
            returned: node.returned, outcome: node.outcome ?? "")
    }

    static func toolList(_ tools: [String]) throws(LedgerError) -> String {
        for tool in tools where tool.isEmpty || tool.contains(",") {
            throw LedgerError(.invalid, "bad tool name '\(tool)'")
        }
        return Set(tools).sorted().joined(separator: ",")
    }
}

func now() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_REALTIME, &time)
    return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
}
