/// Everything a supervisor keeps in its store, one protocol per concern. Code that needs
/// one concern can take that protocol alone.
public typealias LedgerStore = BudgetStore & LeaseStore & PluginStore & PluginFileStore & RunStore & GatewayStateStore
    & RoutineCacheStore & ApprovalStore & BudgetGaugeStore

/// The stores over one driver, opened together (their tables made in one transaction):
/// each call goes to the store that keeps that concern.
public final class SQLLedger<Driver: SQLDriver>: Sendable {
    public let driver: Driver
    public let budgets: SQLBudgetStore<Driver>
    public let pluginStore: SQLPluginStore<Driver>
    public let pluginFiles: SQLPluginFileStore<Driver>
    public let runStore: SQLRunStore<Driver>
    public let gatewayState: SQLGatewayStateStore<Driver>
    public let routineCache: SQLRoutineCacheStore<Driver>

    public init(driver: Driver) throws(LedgerError) {
        try createTables([
            SQLBudgetStore<Driver>.tables(driver.dialect), SQLPluginStore<Driver>.tables(driver.dialect),
            SQLPluginFileStore<Driver>.tables(driver.dialect),
            SQLRunStore<Driver>.tables(driver.dialect), SQLGatewayStateStore<Driver>.tables(driver.dialect),
            SQLRoutineCacheStore<Driver>.tables(driver.dialect),
        ], in: driver)
        self.driver = driver
        budgets = SQLBudgetStore(existing: driver)
        pluginStore = SQLPluginStore(existing: driver)
        pluginFiles = SQLPluginFileStore(existing: driver)
        runStore = SQLRunStore(existing: driver)
        gatewayState = SQLGatewayStateStore(existing: driver)
        routineCache = SQLRoutineCacheStore(existing: driver)
    }
}

extension SQLLedger: BudgetStore {
    public func createTeam(_ spec: TeamSpec) throws(LedgerError) -> Node { try budgets.createTeam(spec) }
    public func team(named name: String) throws(LedgerError) -> Node { try budgets.team(named: name) }
    public func addTools(team name: String, tools: [String]) throws(LedgerError) -> Node { try budgets.addTools(team: name, tools: tools) }
    public func node(_ id: NodeID) throws(LedgerError) -> Node { try budgets.node(id) }
    public func tree(team: String) throws(LedgerError) -> [Node] { try budgets.tree(team: team) }
    @_specialize(where Driver == SQLiteDriver)
    public func reserve(_ request: ReserveRequest) throws(LedgerError) -> Node {
        do throws(LedgerError) { return try budgets.reserve(request) } catch {
            StoreMetrics.denied(error)
            throw error
        }
    }

    public func spend(_ node: NodeID, credits: Int64, holder: Holder?) throws(LedgerError) {
        try budgets.spend(node, credits: credits, holder: holder)
    }

    public func charge(_ node: NodeID, credits: Int64, holder: Holder?, event: String, detail: String) throws(LedgerError) {
        try budgets.charge(node, credits: credits, holder: holder, event: event, detail: detail)
    }

    @_specialize(where Driver == SQLiteDriver)
    public func charges(
        _ node: NodeID, _ items: [(credits: Int64, detail: String)], holder: Holder?, event: String
    ) throws(LedgerError) -> [LedgerError] {
        try budgets.charges(node, items, holder: holder, event: event)
    }

    @_specialize(where Driver == SQLiteDriver)
    public func openChildren(of node: NodeID) throws(LedgerError) -> [Node] { try budgets.openChildren(of: node) }
    public func subtree(of node: NodeID) throws(LedgerError) -> [Node] { try budgets.subtree(of: node) }
    public func freeze(team: String, by: String, reason: String) throws(LedgerError) -> Bool {
        try budgets.freeze(team: team, by: by, reason: reason)
    }
    public func thaw(team: String, by: String) throws(LedgerError) -> Bool { try budgets.thaw(team: team, by: by) }
    public func freeze(of team: String) throws(LedgerError) -> TeamFreeze? { try budgets.freeze(of: team) }

    public func resize(_ node: NodeID, credits: Int64, holder: Holder?) throws(LedgerError) -> Node {
        try budgets.resize(node, credits: credits, holder: holder)
    }

    public func settle(_ node: NodeID, usage: Usage, outcome: String, holder: Holder?) throws(LedgerError) -> Settlement {
        try budgets.settle(node, usage: usage, outcome: outcome, holder: holder)
    }

    public func audit(node: NodeID?, team: String?) throws(LedgerError) -> [AuditEvent] { try budgets.audit(node: node, team: team) }
    public func verify() throws(LedgerError) -> [Violation] { try budgets.verify() }

    public func history(plugin: String?, team: String?, limit: Int) throws(LedgerError) -> [Node] {
        try budgets.history(plugin: plugin, team: team, limit: limit)
    }
}

extension SQLLedger: LeaseStore {
    public func acquireLease(holder id: String, ttlMs: Int64) throws(LedgerError) -> Holder {
        try budgets.acquireLease(holder: id, ttlMs: ttlMs)
    }

    public func heartbeat(_ holder: Holder, ttlMs: Int64) throws(LedgerError) { try budgets.heartbeat(holder, ttlMs: ttlMs) }
    public func reclaimExpired() throws(LedgerError) -> [Settlement] { StoreMetrics.reclaimed(try budgets.reclaimExpired()) }
    public func liveLeases() throws(LedgerError) -> [String] { try budgets.liveLeases() }
    public func reclaim(leases holders: [String]) throws(LedgerError) -> [Settlement] { StoreMetrics.reclaimed(try budgets.reclaim(leases: holders)) }
}

extension SQLLedger: PluginStore {
    public func savePlugin(_ plugin: PluginRecord) throws(LedgerError) { try pluginStore.savePlugin(plugin) }
    public func plugin(named name: String) throws(LedgerError) -> PluginRecord? { try pluginStore.plugin(named: name) }
    public func plugins() throws(LedgerError) -> [PluginRecord] { try pluginStore.plugins() }
    public func removePlugin(named name: String) throws(LedgerError) -> Bool { try pluginStore.removePlugin(named: name) }
}

extension SQLLedger: PluginFileStore {
    public func putPluginFile(sha256: String, bytes: [UInt8]) throws(LedgerError) { try pluginFiles.putPluginFile(sha256: sha256, bytes: bytes) }
    public func pluginFile(sha256: String) throws(LedgerError) -> [UInt8]? { try pluginFiles.pluginFile(sha256: sha256) }
    public func hasPluginFile(sha256: String) throws(LedgerError) -> Bool { try pluginFiles.hasPluginFile(sha256: sha256) }
}

extension SQLLedger: RunStore {
    public func saveRun(_ run: RunRecord) throws(LedgerError) { try runStore.saveRun(run) }
    public func runs(limit: Int) throws(LedgerError) -> [RunRecord] { try runStore.runs(limit: limit) }
    public func run(id: String) throws(LedgerError) -> RunRecord? { try runStore.run(id: id) }
}

extension SQLLedger: GatewayStateStore {
    public func consumeQuota(
        key: String, requests: Int64, credits: Int64, maxRequests: Int64?, maxCredits: Int64?
    ) throws(LedgerError) -> Bool {
        try gatewayState.consumeQuota(key: key, requests: requests, credits: credits, maxRequests: maxRequests, maxCredits: maxCredits)
    }

    public func adjustQuota(key: String, requests: Int64, credits: Int64) throws(LedgerError) {
        try gatewayState.adjustQuota(key: key, requests: requests, credits: credits)
    }

    public func quotaUsage(keys: [String]) throws(LedgerError) -> [String: (requests: Int64, credits: Int64)] {
        try gatewayState.quotaUsage(keys: keys)
    }

    public func cachedValue(key: String, nowMs: Int64) throws(LedgerError) -> String? {
        try gatewayState.cachedValue(key: key, nowMs: nowMs)
    }

    public func storeCachedValue(key: String, value: String, expiresMs: Int64) throws(LedgerError) {
        try gatewayState.storeCachedValue(key: key, value: value, expiresMs: expiresMs)
    }

    public func saveState(name: String, value: String, nowMs: Int64) throws(LedgerError) {
        try gatewayState.saveState(name: name, value: value, nowMs: nowMs)
    }

    public func states() throws(LedgerError) -> [String: String] { try gatewayState.states() }

    public func admitCall(name: String, intervalUs: Int64, toleranceUs: Int64) throws(LedgerError) -> RateAdmission {
        try gatewayState.admitCall(name: name, intervalUs: intervalUs, toleranceUs: toleranceUs)
    }

    public func pushBackCalls(name: String, delayUs: Int64, toleranceUs: Int64) throws(LedgerError) {
        try gatewayState.pushBackCalls(name: name, delayUs: delayUs, toleranceUs: toleranceUs)
    }

    public func breakerOpenFor(name: String) throws(LedgerError) -> Int64? { try gatewayState.breakerOpenFor(name: name) }

    public func openBreaker(name: String, coolDownUs: Int64) throws(LedgerError) {
        try gatewayState.openBreaker(name: name, coolDownUs: coolDownUs)
    }

    public func takeTrial(name: String, coolDownUs: Int64, intervalUs: Int64, toleranceUs: Int64) throws(LedgerError) -> Bool {
        try gatewayState.takeTrial(name: name, coolDownUs: coolDownUs, intervalUs: intervalUs, toleranceUs: toleranceUs)
    }

    public func closeBreaker(name: String) throws(LedgerError) { try gatewayState.closeBreaker(name: name) }
}

extension SQLLedger: RoutineCacheStore {
    public func cachedResult(key: String) throws(LedgerError) -> String? { try routineCache.cachedResult(key: key) }
    public func storeResult(key: String, value: String) throws(LedgerError) { try routineCache.storeResult(key: key, value: value) }
}
