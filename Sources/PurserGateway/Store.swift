import Dispatch
import Synchronization

/// Where the gateway keeps what outlives a call and is shared between supervisors:
/// quota counters per window, cached responses (the L2 tier), and each integration's
/// state for `purser gateway status`. The runtime backs it with the ledger's store.
public protocol GatewayStore: Sendable {
    /// Adds to a window's counters only if every limit still holds; false adds nothing.
    func consumeQuota(key: String, requests: Int64, credits: Int64, maxRequests: Int64?, maxCredits: Int64?) throws -> Bool
    /// Adds to a window's counters unconditionally (a refund or a correction, often negative).
    func adjustQuota(key: String, requests: Int64, credits: Int64) throws
    func quotaUsage(keys: [String]) throws -> [String: QuotaUsage]
    /// A cached response that has not expired.
    func cachedResponse(key: String, nowMs: Int64) throws -> String?
    func storeResponse(key: String, value: String, expiresMs: Int64) throws
    func saveState(integration: String, json: String, nowMs: Int64) throws
    func loadStates() throws -> [String: String]
    /// Runs `work`, which calls this store, where a wait for the store holds up nothing
    /// else: the ledger's store threads, or Dispatch for a store that never waits.
    func perform(_ work: @escaping @Sendable () -> Void)
    /// Where integrations' rate limits and breakers are held for every supervisor sharing
    /// this store; nil for a store of this process alone, where each gateway keeps its own.
    var sharedLimits: (any SharedLimitStore)? { get }
}

extension GatewayStore {
    public func perform(_ work: @escaping @Sendable () -> Void) {
        DispatchQueue.global().async(execute: work)
    }

    public var sharedLimits: (any SharedLimitStore)? { nil }
}

/// An integration's GCRA and breaker in a shared store (`SharedLimits`). Times are
/// microseconds by the store's clock, which every supervisor sharing it shares.
public protocol SharedLimitStore: Sendable {
    /// Admits one call if the breaker is closed and the rate allows it, and counts it.
    func admitCall(integration: String, intervalUs: Int64, toleranceUs: Int64) throws -> SharedAdmission
    /// Nobody is admitted for `delayUs` (an upstream's 429 Retry-After).
    func pushBackCalls(integration: String, delayUs: Int64, toleranceUs: Int64) throws
    /// nil while the breaker is closed; else how long until it cools down (0: a trial may go).
    func breakerOpenFor(integration: String) throws -> Int64?
    func openBreaker(integration: String, coolDownUs: Int64) throws
    /// The one trial call of a cooled-down breaker, with its slot of the rate; false if taken.
    func takeTrial(integration: String, coolDownUs: Int64, intervalUs: Int64, toleranceUs: Int64) throws -> Bool
    func closeBreaker(integration: String) throws
}

public struct SharedAdmission: Sendable, Hashable {
    public var admitted: Bool
    /// Refused by the rate: microseconds until a call would be admitted.
    public var waitUs: Int64
    /// nil while the breaker is closed; else microseconds until it cools down (0: cooled down).
    public var breakerUs: Int64?

    public init(admitted: Bool, waitUs: Int64 = 0, breakerUs: Int64? = nil) {
        self.admitted = admitted
        self.waitUs = waitUs
        self.breakerUs = breakerUs
    }
}

public struct QuotaUsage: Sendable, Hashable {
    public var requests: Int64
    public var credits: Int64

    public init(requests: Int64, credits: Int64) {
        self.requests = requests
        self.credits = credits
    }
}

/// The store of a gateway that has no ledger: this process only.
public final class MemoryGatewayStore: GatewayStore {
    private struct State {
        var quotas: [String: QuotaUsage] = [:]
        var cache: [String: (value: String, expiresMs: Int64)] = [:]
        var states: [String: String] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public func consumeQuota(key: String, requests: Int64, credits: Int64, maxRequests: Int64?, maxCredits: Int64?) -> Bool {
        state.withLock { state in
            let used = state.quotas[key] ?? QuotaUsage(requests: 0, credits: 0)
            if let maxRequests, used.requests + requests > maxRequests { return false }
            if let maxCredits, used.credits + credits > maxCredits { return false }
            state.quotas[key] = QuotaUsage(requests: used.requests + requests, credits: used.credits + credits)
            return true
        }
    }

    public func adjustQuota(key: String, requests: Int64, credits: Int64) {
        state.withLock { state in
            let used = state.quotas[key] ?? QuotaUsage(requests: 0, credits: 0)
            state.quotas[key] = QuotaUsage(requests: used.requests + requests, credits: used.credits + credits)
        }
    }

    public func quotaUsage(keys: [String]) -> [String: QuotaUsage] {
        state.withLock { state in state.quotas.filter { keys.contains($0.key) } }
    }

    public func cachedResponse(key: String, nowMs: Int64) -> String? {
        state.withLock { state in
            guard let entry = state.cache[key], entry.expiresMs > nowMs else { return nil }
            return entry.value
        }
    }

    public func storeResponse(key: String, value: String, expiresMs: Int64) {
        state.withLock { $0.cache[key] = (value, expiresMs) }
    }

    public func saveState(integration: String, json: String, nowMs: Int64) {
        state.withLock { $0.states[integration] = json }
    }

    public func loadStates() -> [String: String] { state.withLock { $0.states } }
}
