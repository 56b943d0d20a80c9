/// Reserve, spend and settle: the holds' arithmetic, all of it checked before any row changes.
extension SQLBudgetStore {
    @_specialize(where Driver == SQLiteDriver)
    public func reserve(_ request: ReserveRequest) throws(LedgerError) -> Node {
        guard request.kind != .team else { throw LedgerError(.invalid, "a team is created, not reserved") }
        guard request.amounts.isNonNegative else {
            throw LedgerError(.invalid, "\(request.name): amounts must not be negative")
        }
        if let seats = request.seats, seats < 1 || request.kind.runsWorker {
            throw LedgerError(.invalid, "\(request.name): only a hold that runs no worker has seats, at least one")
        }
        let tools = try Self.toolList(request.tools)
        if driver.dialect.serverFunctions {
            let rows = try driver.single(ServerFunctions.reserveCall, [
                request.parent.sql, request.kind.rawValue.sql, request.name.sql, tools.sql, request.amounts.credits.sql,
                request.amounts.timeMs.sql, request.amounts.memoryBytes.sql, request.holder?.id.sql ?? .null,
                request.holder?.epoch.sql ?? .null, request.plugin.sql, request.estimate.sql, request.strategy.sql, now().sql,
                request.seats.sql,
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
        if let freeze = try rows.freeze(of: parent.team, session) {
            throw LedgerError(.frozen, "\(request.name): team \(parent.team) is frozen (by \(freeze.by): \(freeze.reason)); nothing was reserved")
        }
        try fence(session, parent, request.holder, checkNode: false)
        let missing = parent.missingTools(request.tools)
        guard missing.isEmpty else {
            throw LedgerError(
                .toolNotPermitted,
                "\(request.name): \(missing.sorted().joined(separator: ", ")) not among \(parent.kind.rawValue) \(parent.name)'s tools")
        }
        let amounts = request.amounts
        guard amounts.fits(in: parent.available) else { throw Self.shortfall(request, parent) }
        let seated = request.kind.runsWorker && parent.hasSeats
        if seated, parent.workersInUse >= parent.workersCap! {
            throw LedgerError(.insufficient, "\(request.name): \(parent.kind.rawValue) \(parent.name) has no free worker seat")
        }
        let seats = request.seats ?? (request.kind.runsWorker && !seated ? 1 : 0)
        let team = seats > 0 ? try rows.team(named: parent.team, session, locking: true) : nil
        if let team, let cap = team.workersCap, team.workersInUse + seats > cap {
            throw LedgerError(
                .insufficient,
                seats == 1 ? "\(request.name): team \(parent.team) has no free worker slot"
                    : "\(request.name): team \(parent.team) has \(cap - team.workersInUse) free worker slots, \(seats) asked")
        }
        let id = try rows.newID(session)
        rows.update(parent.id) { parent in
            parent.available = parent.available - amounts
            parent.reserved = parent.reserved + amounts
            if seated { parent.workersInUse += 1 }
        }
        if let team { rows.update(team.id) { $0.workersInUse += seats } }
        let node = Node(
            id: id, parent: parent.id, team: parent.team, kind: request.kind, name: request.name, isOpen: true,
            tools: tools.isEmpty ? [] : tools.split(separator: ",").map(String.init), cap: amounts, available: amounts,
            reserved: .zero, consumed: .zero, returned: .zero, workersCap: request.seats, workersInUse: 0, holder: request.holder,
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

    public func resize(_ id: NodeID, credits: Int64, holder: Holder?) throws(LedgerError) -> Node {
        try driver.batch { (session) throws(LedgerError) -> Node in
            let rows = session.rows
            let node = try rows.node(id, session, locking: true)
            guard node.isOpen else { throw LedgerError(.closed, "node \(id) is closed") }
            guard let parentID = node.parent else { throw LedgerError(.invalid, "a team is not resized by resize") }
            try fence(session, node, holder, checkNode: true)
            if credits > 0, let freeze = try rows.freeze(of: node.team, session) {
                throw LedgerError(.frozen, "\(node.name): team \(node.team) is frozen (by \(freeze.by): \(freeze.reason)); it cannot grow")
            }
            let parent = try rows.node(parentID, session, locking: true)
            if credits > parent.available.credits {
                throw LedgerError(
                    .insufficient,
                    "\(node.name): growing by \(credits) µcredits refused, \(parent.kind.rawValue) \(parent.name) has \(parent.available.credits) available")
            }
            if -credits > node.available.credits {
                throw LedgerError(.invalid, "\(node.name): giving back \(-credits) µcredits, it has \(node.available.credits) available")
            }
            guard credits != 0 else { return node }
            rows.update(id) { node in
                node.cap.credits += credits
                node.available.credits += credits
            }
            rows.update(parentID) { parent in
                parent.available.credits -= credits
                parent.reserved.credits += credits
            }
            let kind = credits > 0 ? "grow" : "give_back"
            rows.event(id, team: node.team, kind: kind, Resources(credits: abs(credits)), "\(credits > 0 ? "from" : "to") node \(parentID)")
            return try rows.node(id, session)
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
    func settle(
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
        let parentNode = try node.parent.map { (id) throws(LedgerError) in try rows.node(id, session, locking: true) }
        let seated = node.kind.runsWorker && parentNode?.hasSeats == true
        let seats = node.hasSeats ? node.workersCap! : (node.kind.runsWorker && !seated ? 1 : 0)
        let team = seats > 0 ? try rows.team(named: node.team, session, locking: true) : nil
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
                if seated { parent.workersInUse -= 1 }
            }
        }
        if let team { rows.update(team.id) { $0.workersInUse -= seats } }
        rows.event(id, team: node.team, kind: "settle", used, "outcome \(outcome)")
        rows.event(id, team: node.team, kind: "return", returned, "to node \(node.parent.map(String.init) ?? "-")")
        return Settlement(node: id, used: used, returned: returned, outcome: outcome)
    }
}
