import Dispatch
import Logging
public import PurserProtocol
import PurserCollections
import Synchronization

/// One integration's live state in this supervisor: its limiter, breaker, calls in
/// flight, counters and L1 cache, behind one lock so that admission is one atomic step.
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
    /// Whether a call reads or writes the store on its way (quotas, the cache).
    let touchesStore: Bool
    /// Store failures a call goes on without (a refund, the cache, the status) are logged here.
    let logger: Logger
    private let state: Mutex<Mutable>
    private static let saving = DispatchQueue(label: "purser.gateway.save", qos: .utility)

    init(_ integration: Integration, logger: Logger) {
        self.integration = integration
        self.logger = logger
        scrubber = Scrubber(integration.credentials)
        touchesStore = !integration.quotas.isEmpty || integration.cache != nil
        state = Mutex(Mutable(
            limiter: integration.rateLimit.map(GCRA.init), breaker: CircuitBreaker(integration.breaker),
            cache: AnswerCache(capacity: integration.cache?.maxEntries ?? 1)))
    }

    // MARK: - Admission

    /// Breaker, rate limit and concurrency in one step, then the quotas in the store. A
    /// refusal anywhere undoes what was taken before it.
    func admit(store: any GatewayStore, runID: String) throws(GatewayFailure) -> Admission {
        let nowMs = unixMilliseconds()
        try state.withLock { (state) throws(GatewayFailure) in
            guard state.breaker.state != .open || state.breaker.allowsTrial(nowMs: nowMs) else {
                throw GatewayFailure(
                    .upstreamUnavailable, "\(integration.name) is failing; its circuit breaker is open",
                    retryAfterMs: state.breaker.retryAfterMs(nowMs: nowMs))
            }
            let limiter = state.limiter
            if var gcra = state.limiter {
                if case .failure(let wait) = gcra.admit(now: monotonicNanoseconds()) {
                    throw GatewayFailure(
                        .rateLimited, "\(integration.name) allows \(integration.rateLimit?.text ?? "")",
                        retryAfterMs: wait.milliseconds)
                }
                state.limiter = gcra
            }
            if let maximum = integration.maxConcurrent, state.inFlight >= maximum {
                state.limiter = limiter
                throw GatewayFailure(
                    .rateLimited, "\(integration.name) allows \(maximum) calls in flight", retryAfterMs: 10)
            }
            guard state.breaker.allow(nowMs: nowMs) else {
                state.limiter = limiter
                throw GatewayFailure(
                    .upstreamUnavailable, "\(integration.name) is failing; a trial call is in flight",
                    retryAfterMs: state.breaker.policy.coolDownMs)
            }
            state.inFlight += 1
        }
        var admission = Admission(nowMs: nowMs)
        do {
            try admission.takeQuotas(integration, store: store)
        } catch {
            admission.cancel(self, store: store, runID: runID)
            throw error
        }
        return admission
    }

    func release(healthy: Bool?, wentUpstream: Bool) {
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
        state.withLock { state in state.limiter?.pushBack(until: monotonicNanoseconds() + ms * 1_000_000) }
    }

    // MARK: - Counting and status

    func count(_ record: GatewayCallRecord) {
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
            limiterAheadMs: limiterAheadMs, inFlight: snapshot.2, breaker: snapshot.1.state.rawValue,
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
    private var taken: [(key: String, requests: Int64, credits: Int64)] = []

    init(nowMs: Int64) { self.nowMs = nowMs }

    static func quotaKey(_ name: String, _ quota: Quota, nowMs: Int64) -> String {
        "\(name)|\(quota.window.rawValue)|\(quota.window.current(nowMs: nowMs).key)"
    }

    /// One request, and the call's maximum cost, from every quota window; corrected to
    /// the actual cost when the call ends.
    mutating func takeQuotas(_ integration: Integration, store: any GatewayStore) throws(GatewayFailure) {
        for quota in integration.quotas {
            let key = Self.quotaKey(integration.name, quota, nowMs: nowMs)
            let requests: Int64 = quota.requests == nil ? 0 : 1
            let credits = quota.credits == nil ? 0 : integration.cost.max.micros
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
        state.release(healthy: nil, wentUpstream: false)
    }

    func finish(
        _ state: IntegrationState, store: any GatewayStore, charged: Credits, healthy: Bool, wentUpstream: Bool, runID: String
    ) {
        for entry in taken where entry.credits > 0 {
            state.logged("refunding the quota \(entry.key)", run: runID) {
                try store.adjustQuota(key: entry.key, requests: 0, credits: charged.micros - entry.credits)
            }
        }
        state.release(healthy: healthy, wentUpstream: wentUpstream)
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

/// One integration as `purser gateway status` shows it.
public struct IntegrationStatus: Sendable, Hashable {
    public var name: String
    public var base: String
    public var rateLimit: String?
    /// How far the limiter's next free slot is ahead of now: 0 when a call would pass.
    public var limiterAheadMs: Int64?
    public var inFlight: Int
    public var breaker: String
    public var consecutiveFailures: Int
    public var quotas: [QuotaStatus]
    public var calls: Int
    public var upstreamCalls: Int
    public var cacheHits: Int
    public var failures: Int
    public var refused: [String: Int]
    public var credits: Credits
    public var savedAtMs: Int64

    public var cacheHitRate: Double? { calls - refused.values.reduce(0, +) > 0 ? Double(cacheHits) / Double(cacheHits + upstreamCalls) : nil }

    public var json: JSONValue {
        [
            "name": .string(name), "base": .string(base), "rateLimit": rateLimit.map(JSONValue.string) ?? .null,
            "limiterAheadMs": limiterAheadMs.map { .number(JSONNumber($0)) } ?? .null,
            "inFlight": .number(JSONNumber(Int64(inFlight))), "breaker": .string(breaker),
            "consecutiveFailures": .number(JSONNumber(Int64(consecutiveFailures))),
            "quotas": .array(quotas.map(\.json)), "calls": .number(JSONNumber(Int64(calls))),
            "upstreamCalls": .number(JSONNumber(Int64(upstreamCalls))), "cacheHits": .number(JSONNumber(Int64(cacheHits))),
            "cacheHitRate": cacheHitRate.map { .number(JSONNumber(text: String(($0 * 1000).rounded() / 1000)) ?? JSONNumber(0)) } ?? .null,
            "failures": .number(JSONNumber(Int64(failures))),
            "refused": .object(refused.mapValues { .number(JSONNumber(Int64($0))) }), "credits": credits.json,
            "savedAtMs": .number(JSONNumber(savedAtMs)),
        ]
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let fields = try Fields(json, path: "status")
        name = try fields.string("name")
        base = try fields.string("base")
        rateLimit = try fields.optionalString("rateLimit")
        limiterAheadMs = try fields.optionalNumber("limiterAheadMs")?.int64
        inFlight = Int(try fields.int("inFlight"))
        breaker = try fields.string("breaker")
        consecutiveFailures = Int(try fields.int("consecutiveFailures"))
        var quotas: [QuotaStatus] = []
        if case .array(let items)? = fields.object["quotas"] {
            for item in items { quotas.append(try QuotaStatus(json: item)) }
        }
        self.quotas = quotas
        calls = Int(try fields.int("calls"))
        upstreamCalls = Int(try fields.int("upstreamCalls"))
        cacheHits = Int(try fields.int("cacheHits"))
        failures = Int(try fields.int("failures"))
        var refused: [String: Int] = [:]
        for (reason, count) in try fields.nested("refused").object { refused[reason] = Int(count.numberValue?.int64 ?? 0) }
        self.refused = refused
        credits = try fields.credits("credits")
        savedAtMs = try fields.int("savedAtMs")
    }

    init(
        name: String, base: String, rateLimit: String?, limiterAheadMs: Int64?, inFlight: Int, breaker: String,
        consecutiveFailures: Int, quotas: [QuotaStatus], calls: Int, upstreamCalls: Int, cacheHits: Int, failures: Int,
        refused: [String: Int], credits: Credits, savedAtMs: Int64
    ) {
        self.name = name
        self.base = base
        self.rateLimit = rateLimit
        self.limiterAheadMs = limiterAheadMs
        self.inFlight = inFlight
        self.breaker = breaker
        self.consecutiveFailures = consecutiveFailures
        self.quotas = quotas
        self.calls = calls
        self.upstreamCalls = upstreamCalls
        self.cacheHits = cacheHits
        self.failures = failures
        self.refused = refused
        self.credits = credits
        self.savedAtMs = savedAtMs
    }
}

public struct QuotaStatus: Sendable, Hashable {
    public var per: String
    public var window: String
    public var maxRequests: Int64?
    public var maxCredits: Credits?
    public var usedRequests: Int64
    public var usedCredits: Credits

    init(quota: Quota, window: String, used: QuotaUsage) {
        per = quota.window.rawValue
        self.window = window
        maxRequests = quota.requests
        maxCredits = quota.credits
        usedRequests = used.requests
        usedCredits = Credits(micros: used.credits)
    }

    init(json: JSONValue) throws(ProtocolError) {
        let fields = try Fields(json, path: "quota")
        per = try fields.string("per")
        window = try fields.string("window")
        maxRequests = try fields.optionalNumber("maxRequests")?.int64
        maxCredits = try fields.optionalNumber("maxCredits").map { (number) throws(ProtocolError) in try Credits(number, field: "maxCredits") }
        usedRequests = try fields.int("usedRequests")
        usedCredits = try fields.credits("usedCredits")
    }

    var json: JSONValue {
        [
            "per": .string(per), "window": .string(window),
            "maxRequests": maxRequests.map { .number(JSONNumber($0)) } ?? .null, "maxCredits": maxCredits?.json ?? .null,
            "usedRequests": .number(JSONNumber(usedRequests)), "usedCredits": usedCredits.json,
        ]
    }
}
