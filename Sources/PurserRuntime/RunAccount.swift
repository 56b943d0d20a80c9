import Dispatch
public import PurserGateway
public import PurserLedger
import PurserProtocol
import Synchronization

/// What a run has spent and set aside, for the gateway's pre-authorisation and the run's
/// report: its own reported credits, what gateway calls were charged, and what calls in
/// flight hold. Their sum never exceeds the run's budget.
final class RunAccount: GatewayAccount {
    private struct State {
        var reported = Credits.zero
        var charged = Credits.zero
        var held = Credits.zero
    }

    let budget: Credits
    private let state = Mutex(State())
    /// Calls holding credits, and audit records not yet written.
    private let pending = DispatchGroup()
    private let recorder: (@Sendable (GatewayCallRecord, Credits) -> Void)?

    /// `recorder` writes each call's charge and audit event (to the ledger); it runs on a
    /// serial queue, after the worker has its answer.
    init(budget: Credits, recorder: (@Sendable (GatewayCallRecord, Credits) -> Void)?) {
        self.budget = budget
        self.recorder = recorder
    }

    private let records = DispatchQueue(label: "purser.run.records")

    func hold(_ credits: Credits) -> Bool {
        let granted = state.withLock { state -> Bool in
            guard state.reported + state.charged + state.held + credits <= budget else { return false }
            state.held = state.held + credits
            return true
        }
        if granted { pending.enter() }
        return granted
    }

    func settle(held: Credits?, charged: Credits, record: GatewayCallRecord) {
        state.withLock { state in
            if let held { state.held = state.held - held }
            state.charged = state.charged + charged
        }
        if let recorder {
            pending.enter()
            records.async {
                recorder(record, charged)
                self.pending.leave()
            }
        }
        if held != nil { pending.leave() }
    }

    /// The worker's own running total, from its usage notifications.
    func setReported(_ credits: Credits) {
        state.withLock { $0.reported = credits }
    }

    var charged: Credits { state.withLock { $0.charged } }

    /// Waits until no call holds credits and every record is written.
    func drain() async {
        await withCheckedContinuation { continuation in
            pending.notify(queue: .global()) { continuation.resume() }
        }
    }
}

/// The gateway's shared state in the ledger's store, so supervisors sharing a store share
/// quotas, the cache's persistent tier, and `purser gateway status`.
public struct LedgerGatewayStore: GatewayStore {
    public let store: any LedgerStore

    public init(store: any LedgerStore) { self.store = store }

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

    public func loadStates() throws -> [String: String] {
        var states: [String: String] = [:]
        for (name, value) in try store.states() where name.hasPrefix("gateway:") { states[String(name.dropFirst(8))] = value }
        return states
    }
}
