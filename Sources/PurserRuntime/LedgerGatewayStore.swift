public import PurserGateway
public import PurserLedger

/// The gateway's shared state in the ledger's store, so supervisors sharing a store share
/// quotas, the cache's persistent tier, integrations' rate limits and breakers, and
/// `purser gateway status`.
public struct LedgerGatewayStore: GatewayStore, SharedLimitStore {
    public let store: any GatewayStateStore

    public init(store: any GatewayStateStore) { self.store = store }

    public func consumeQuota(key: String, requests: Int64, credits: Int64, maxRequests: Int64?, maxCredits: Int64?) throws -> Bool {
        try store.consumeQuota(key: key, requests: requests, credits: credits, maxRequests: maxRequests, maxCredits: maxCredits)
    }

    public func adjustQuota(key: String, requests: Int64, credits: Int64) throws {
        try store.adjustQuota(key: key, requests: requests, credits: credits)
    }

    public func quotaUsage(keys: [String]) throws -> [String: QuotaUsage] {
        try store.quotaUsage(keys: keys).mapValues { QuotaUsage(requests: $0.requests, credits: $0.credits) }
    }

    public func cachedResponse(key: String, nowMs: Int64) throws -> String? {
        try store.cachedValue(key: key, nowMs: nowMs)
    }

    public func storeResponse(key: String, value: String, expiresMs: Int64) throws {
        try store.storeCachedValue(key: key, value: value, expiresMs: expiresMs)
    }

    public func saveState(integration: String, json: String, nowMs: Int64) throws {
        try store.saveState(name: "gateway:" + integration, value: json, nowMs: nowMs)
    }

    public func perform(_ work: @escaping @Sendable () -> Void) {
        StoreThreads.shared.submit(work)
    }

    public func loadStates() throws -> [String: String] {
        var states: [String: String] = [:]
        for (name, value) in try store.states() where name.hasPrefix("gateway:") { states[String(name.dropFirst(8))] = value }
        return states
    }

    // MARK: - Rate limits and breakers

    public var sharedLimits: (any SharedLimitStore)? { self }

    public func admitCall(integration: String, intervalUs: Int64, toleranceUs: Int64) throws -> SharedAdmission {
        let answer = try store.admitCall(name: integration, intervalUs: intervalUs, toleranceUs: toleranceUs)
        return SharedAdmission(admitted: answer.admitted, waitUs: answer.waitUs, breakerUs: answer.breakerUs)
    }

    public func pushBackCalls(integration: String, delayUs: Int64, toleranceUs: Int64) throws {
        try store.pushBackCalls(name: integration, delayUs: delayUs, toleranceUs: toleranceUs)
    }

    public func breakerOpenFor(integration: String) throws -> Int64? { try store.breakerOpenFor(name: integration) }

    public func openBreaker(integration: String, coolDownUs: Int64) throws {
        try store.openBreaker(name: integration, coolDownUs: coolDownUs)
    }

    public func takeTrial(integration: String, coolDownUs: Int64, intervalUs: Int64, toleranceUs: Int64) throws -> Bool {
        try store.takeTrial(name: integration, coolDownUs: coolDownUs, intervalUs: intervalUs, toleranceUs: toleranceUs)
    }

    public func closeBreaker(integration: String) throws { try store.closeBreaker(name: integration) }
}
