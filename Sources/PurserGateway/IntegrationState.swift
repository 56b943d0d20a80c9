import Dispatch
import Logging
public import PurserProtocol
import PurserCollections
import Synchronization

/// One integration's live state in this supervisor: its limiter, breaker, calls in
/// flight, counters and L1 cache, behind one lock so that admission is one atomic step.
/// Over a shared store, the rate and the breaker are the store's (`SharedLimits`).
final class IntegrationState: Sendable {
    struct Counters: Sendable, Hashable {
        var calls = 0
        var upstream = 0
        var cacheHits = 0
        var failures = 0
        var refused: [String: Int] = [:]
        var credits = Credits.zero
    }

    private struct Mutable {
        var limiter: GCRA?
        var breaker: CircuitBreaker
        var inFlight = 0
        var counters = Counters()
        var cache = AnswerCache(capacity: 1)
        var savedAt: Int64 = 0
    }

    let integration: Integration
    let scrubber: Scrubber
    /// Whether a call reads or writes the store on its way (quotas, the cache, a shared rate).
    let touchesStore: Bool
    /// The rate and breaker every supervisor sharing the store holds; nil for this process alone.
    let shared: SharedLimits?
    /// Store failures a call goes on without (a refund, the cache, the status) are logged here.
    let logger: Logger
    private let state: Mutex<Mutable>
    private static let saving = DispatchQueue(label: "purser.gateway.save", qos: .utility)

    init(_ integration: Integration, store: any GatewayStore, logger: Logger) {
        self.integration = integration
        self.logger = logger
        scrubber = Scrubber(integration.credentials)
        shared = store.sharedLimits.map { SharedLimits(integration, limits: $0, store: store, logger: logger) }
        let sharesRate = shared?.rate != nil
        touchesStore = !integration.quotas.isEmpty || integration.cache != nil || sharesRate
        state = Mutex(Mutable(
            limiter: sharesRate ? nil : integration.rateLimit.map(GCRA.init), breaker: CircuitBreaker(integration.breaker),
            cache: AnswerCache(capacity: integration.cache?.maxEntries ?? 1)))
    }

    // MARK: - Admission

    /// Whether admitting a call now needs the store's threads.
    var needsStore: Bool { touchesStore || shared?.needsStore(now: monotonicNanoseconds()) == true }

    /// Breaker, rate limit and concurrency in one step, then the quotas in the store. A
    /// refusal anywhere undoes what was taken before it. The quotas take `maxCredits`
    /// (the call's or the tunnel's most), corrected when it ends.
    func admit(store: any GatewayStore, runID: String, maxCredits: Credits) throws(GatewayFailure) -> Admission {
        guard let shared else { return try admitHere(store: store, runID: runID, maxCredits: maxCredits) }
        try takeSlot()
        var admission = Admission(nowMs: unixMilliseconds())
        do {
            admission.trial = try shared.admit(now: monotonicNanoseconds())
            try admission.takeQuotas(integration, store: store, maxCredits: maxCredits)
        } catch {
            admission.cancel(self, store: store, runID: runID)
            throw error
        }
        return admission
    }

    /// What stays per supervisor over a shared store: the concurrency limit, and the rate
    /// when it is too fast to share (`SharedLimits.maxSharedRate`).
    private func takeSlot() throws(GatewayFailure) {
        try state.withLock { (state) throws(GatewayFailure) in
            _ = try Self.takeRateAndSlot(&state, integration)
        }
    }

    /// The rate, then a slot in flight; a refused slot gives the rate's admission back.
    /// Returns the limiter as it was, for a later refusal to give it back too.
    private static func takeRateAndSlot(_ state: inout Mutable, _ integration: Integration) throws(GatewayFailure) -> GCRA? {
        let limiter = state.limiter
        try takeRate(&state, integration)
        if let maximum = integration.maxConcurrent, state.inFlight >= maximum {
            state.limiter = limiter
            throw GatewayFailure(.rateLimited, "\(integration.name) allows \(maximum) calls in flight", retryAfterMs: 10)
        }
        state.inFlight += 1
        return limiter
    }

    private static func takeRate(_ state: inout Mutable, _ integration: Integration) throws(GatewayFailure) {
        guard var gcra = state.limiter else { return }
        if case .failure(let wait) = gcra.admit(now: monotonicNanoseconds()) {
            throw GatewayFailure(
                .rateLimited, "\(integration.name) allows \(integration.rateLimit?.text ?? "")", retryAfterMs: wait.milliseconds)
        }
        state.limiter = gcra
    }

    /// This process's own breaker, limiter and concurrency, then the quotas.
    private func admitHere(store: any GatewayStore, runID: String, maxCredits: Credits) throws(GatewayFailure) -> Admission {
        let nowMs = unixMilliseconds()
        try state.withLock { (state) throws(GatewayFailure) in
            guard state.breaker.state != .open || state.breaker.allowsTrial(nowMs: nowMs) else {
                throw GatewayFailure(
                    .upstreamUnavailable, "\(integration.name) is failing; its circuit breaker is open",
                    retryAfterMs: state.breaker.retryAfterMs(nowMs: nowMs))
            }
            let limiter = try Self.takeRateAndSlot(&state, integration)
            guard state.breaker.allow(nowMs: nowMs) else {
                state.limiter = limiter
                state.inFlight -= 1
                throw GatewayFailure(
                    .upstreamUnavailable, "\(integration.name) is failing; a trial call is in flight",
                    retryAfterMs: state.breaker.policy.coolDownMs)
            }
        }
        var admission = Admission(nowMs: nowMs)
        do {
            try admission.takeQuotas(integration, store: store, maxCredits: maxCredits)
        } catch {
            admission.cancel(self, store: store, runID: runID)
            throw error
        }
        return admission
    }

    func release(healthy: Bool?, wentUpstream: Bool, trial: Bool) {
        if let shared {
            state.withLock { $0.inFlight -= 1 }
            return shared.record(healthy: healthy, wentUpstream: wentUpstream, trial: trial, sync: touchesStore)
        }
        state.withLock { state in
            state.inFlight -= 1
            if let healthy, wentUpstream {
                state.breaker.record(success: healthy, nowMs: unixMilliseconds())
            } else {
                state.breaker.release()
            }
        }
    }

    func pushBack(ms: Int64) {
        if let shared, shared.rate != nil { return shared.pushBack(ms: ms, sync: touchesStore) }
        state.withLock { state in state.limiter?.pushBack(until: monotonicNanoseconds() + ms * 1_000_000) }
    }

    // MARK: - Counting and status

    func count(_ record: GatewayCallRecord) {
        GatewayMetrics.count(record, integration: integration.name)
        state.withLock { state in
            state.counters.calls += 1
            state.counters.credits = state.counters.credits + record.credits
            if record.cached { state.counters.cacheHits += 1 }
            if record.attempts > 0 { state.counters.upstream += 1 }
            if let reason = record.reason {
                if record.attempts > 0 { state.counters.failures += 1 } else { state.counters.refused[reason.rawValue, default: 0] += 1 }
            }
        }
    }

    func status(store: any GatewayStore) -> IntegrationStatus {
        let nowMs = unixMilliseconds()
        let snapshot = state.withLock { state in
            (state.limiter, state.breaker, state.inFlight, state.counters)
        }
        var limiterAheadMs: Int64?
        if let limiter = snapshot.0, limiter.tat != Int64.min {
            limiterAheadMs = max(0, (limiter.tat - monotonicNanoseconds()) / 1_000_000)
        }
        let keys = integration.quotas.map { Admission.quotaKey(integration.name, $0, nowMs: nowMs) }
        let used = logged("reading the quotas") { try store.quotaUsage(keys: keys) } ?? [:]
        let quotas = zip(integration.quotas, keys).map { quota, key in
            QuotaStatus(quota: quota, window: String(key.split(separator: "|").last ?? ""), used: used[key] ?? QuotaUsage(requests: 0, credits: 0))
        }
        return IntegrationStatus(
            name: integration.name, base: integration.base.description, rateLimit: integration.rateLimit?.text,
            limiterAheadMs: limiterAheadMs, inFlight: snapshot.2,
            breaker: (shared?.breakerState(now: monotonicNanoseconds()) ?? snapshot.1.state).rawValue,
            consecutiveFailures: snapshot.1.consecutiveFailures, quotas: quotas, calls: snapshot.3.calls,
            upstreamCalls: snapshot.3.upstream, cacheHits: snapshot.3.cacheHits, failures: snapshot.3.failures,
            refused: snapshot.3.refused, credits: snapshot.3.credits, savedAtMs: nowMs)
    }

    /// At most once a second unless forced: status is for people, not for the hot path.
    func save(to store: any GatewayStore, force: Bool) {
        let nowMs = unixMilliseconds()
        let due = state.withLock { state -> Bool in
            guard force || nowMs - state.savedAt >= 1000 else { return false }
            state.savedAt = nowMs
            return true
        }
        guard due else { return }
        let save: @Sendable () -> Void = {
            self.logged("saving the status") {
                try store.saveState(integration: self.integration.name, json: self.status(store: store).json.serialized(), nowMs: nowMs)
            }
        }
        if force { save() } else { Self.saving.async(execute: save) }
    }

    // MARK: - Answers and the cache

    /// The answer a worker gets: headers and body with every secret scrubbed.
    func answer(_ response: UpstreamResponse, charged: Credits) -> GatewayCallResult {
        GatewayCallResult(
            status: response.status, headers: ResponsePolicy.headers(response, scrubber), body: scrubber.scrub(response.body),
            credits: charged, cached: false)
    }

    func recall(_ key: String, store: any GatewayStore) -> GatewayCallResult? {
        let nowMs = unixMilliseconds()
        if let hit = state.withLock({ $0.cache.get(key, nowMs: nowMs) }) { return hit }
        guard let text = logged("reading the cache", { try store.cachedResponse(key: key, nowMs: nowMs) }) ?? nil else { return nil }
        do {
            return try GatewayCallResult(json: JSONParser.parse(Array(text.utf8)))
        } catch {
            logger.warning("a cached answer cannot be read", metadata: ["integration": "\(integration.name)", "error": "\(error)"])
            return nil
        }
    }

    func remember(_ key: String, _ result: GatewayCallResult, ttlMs: Int64, store: any GatewayStore) {
        let expires = unixMilliseconds() + ttlMs
        state.withLock { $0.cache.put(key, result, expiresMs: expires) }
        logged("caching the answer") { try store.storeResponse(key: key, value: result.json.serialized(), expiresMs: expires) }
    }

    /// A store call the gateway goes on without: nil when it fails, and the failure logged
    /// with the integration (and the run, when there is one).
    @discardableResult
    func logged<T>(_ what: String, run: String? = nil, _ body: () throws -> T) -> T? {
        do {
            return try body()
        } catch {
            var metadata: Logger.Metadata = ["integration": "\(integration.name)", "error": "\(error)"]
            if let run { metadata["run"] = "\(run)" }
            logger.warning("\(what) failed", metadata: metadata)
            return nil
        }
    }
}

/// What one admitted call took: a slot in flight, and its quota windows.
struct Admission: Sendable {
    private var nowMs: Int64
    /// The call is the shared breaker's half-open trial.
    var trial = false
    private var taken: [(key: String, requests: Int64, credits: Int64)] = []

    init(nowMs: Int64) { self.nowMs = nowMs }

    static func quotaKey(_ name: String, _ quota: Quota, nowMs: Int64) -> String {
        "\(name)|\(quota.window.rawValue)|\(quota.window.current(nowMs: nowMs).key)"
    }

    /// One request, and the call's maximum cost, from every quota window; corrected to
    /// the actual cost when the call ends.
    mutating func takeQuotas(_ integration: Integration, store: any GatewayStore, maxCredits: Credits) throws(GatewayFailure) {
        for quota in integration.quotas {
            let key = Self.quotaKey(integration.name, quota, nowMs: nowMs)
            let requests: Int64 = quota.requests == nil ? 0 : 1
            let credits = quota.credits == nil ? 0 : maxCredits.micros
            let granted: Bool
            do {
                granted = try store.consumeQuota(
                    key: key, requests: requests, credits: credits, maxRequests: quota.requests, maxCredits: quota.credits?.micros)
            } catch {
                throw GatewayFailure(.upstreamUnavailable, "the quota store failed: \(error)")
            }
            guard granted else {
                throw GatewayFailure(
                    .quotaExceeded, "\(integration.name): the \(quota.window.rawValue)'s quota is used up",
                    retryAfterMs: quota.window.current(nowMs: nowMs).remainingMs)
            }
            taken.append((key, requests, credits))
        }
    }

    /// A refused call gives back what it took.
    func cancel(_ state: IntegrationState, store: any GatewayStore, runID: String) {
        for entry in taken {
            state.logged("refunding the quota \(entry.key)", run: runID) {
                try store.adjustQuota(key: entry.key, requests: -entry.requests, credits: -entry.credits)
            }
        }
        state.release(healthy: nil, wentUpstream: false, trial: trial)
    }

    func finish(
        _ state: IntegrationState, store: any GatewayStore, charged: Credits, healthy: Bool, wentUpstream: Bool, runID: String
    ) {
        for entry in taken where entry.credits > 0 {
            state.logged("refunding the quota \(entry.key)", run: runID) {
                try store.adjustQuota(key: entry.key, requests: 0, credits: charged.micros - entry.credits)
            }
        }
        state.release(healthy: healthy, wentUpstream: wentUpstream, trial: trial)
    }
}

/// Cached answers in memory, the least recently used dropped first, each until it expires.
struct AnswerCache: Sendable {
    private var entries: LRU<String, (result: GatewayCallResult, expiresMs: Int64)>

    init(capacity: Int) { entries = LRU(capacity: capacity) }

    mutating func get(_ key: String, nowMs: Int64) -> GatewayCallResult? {
        guard let entry = entries.get(key) else { return nil }
        guard entry.expiresMs > nowMs else {
            entries.remove(key)
            return nil
        }
        return entry.result
    }

    mutating func put(_ key: String, _ result: GatewayCallResult, expiresMs: Int64) {
        entries.set(key, (result, expiresMs))
    }
}

extension CircuitBreaker {
    func allowsTrial(nowMs: Int64) -> Bool { retryAfterMs(nowMs: nowMs) == 0 }
}
