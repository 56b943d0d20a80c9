import Dispatch
public import Logging
public import PurserProtocol
import Synchronization

/// Why a call was refused or failed, for the worker's error answer.
public struct GatewayFailure: Error, Sendable, CustomStringConvertible {
    public var reason: GatewayReason
    public var message: String
    public var retryAfterMs: Int64?
    /// What the call was charged anyway (a request that reached the upstream).
    public var charged = Credits.zero

    public init(_ reason: GatewayReason, _ message: String, retryAfterMs: Int64? = nil) {
        self.reason = reason
        self.message = message
        self.retryAfterMs = retryAfterMs
    }

    public var description: String { message }

    public var rpcError: RPCError {
        var data: [String: JSONValue] = ["reason": .string(reason.rawValue), "credits": charged.json]
        if let retryAfterMs { data["retryAfterMs"] = .number(JSONNumber(retryAfterMs)) }
        return RPCError(code: ErrorCode.gatewayFailed, message: message, data: .object(data))
    }
}

/// The reservation a call is paid from. The runtime implements it over the worker's hold.
public protocol GatewayAccount: Sendable {
    /// Sets `credits` aside for a call; false when the reservation cannot cover them.
    func hold(_ credits: Credits) -> Bool
    /// Adds `credits` to a hold already made (a tunnel pays as its bytes pass); false when
    /// the reservation cannot cover them. The call's `settle` then releases the sum.
    func extend(_ credits: Credits) -> Bool
    /// Releases the hold and charges `charged` (at most what was held), with the call's
    /// audit record. Called once for every call; `held` is nil for a call refused before
    /// anything was held.
    func settle(held: Credits?, charged: Credits, record: GatewayCallRecord)
}

/// Who is calling: the run's tools, its deadline, what pays, and for which team.
public struct GatewayCaller: Sendable {
    public var runID: String
    public var tools: Set<String>
    /// Wall-clock milliseconds; no call runs past it.
    public var deadlineMs: Int64?
    public var account: any GatewayAccount
    /// The team the run's reservation is drawn from: cached answers stay within it unless
    /// the integration's cache is shared. nil for a run outside any team (no ledger).
    public var team: String?

    public init(runID: String, tools: Set<String>, deadlineMs: Int64?, account: any GatewayAccount, team: String? = nil) {
        self.runID = runID
        self.tools = tools
        self.deadlineMs = deadlineMs
        self.account = account
        self.team = team
    }
}

/// What the audit trail keeps of a call.
public struct GatewayCallRecord: Sendable, Hashable {
    public var integration: String
    public var method: String
    public var path: String
    public var status: Int64?
    public var reason: GatewayReason?
    public var latencyMicros: Int64
    public var credits: Credits
    public var cached: Bool
    public var attempts: Int
    /// What an HTTPS tunnel carried and how it ended; nil for a request.
    public var tunnel: TunnelTraffic? = nil

    public var detail: String {
        var parts = ["integration=\(integration)", "\(method) \(path)"]
        if let status { parts.append("status=\(status)") }
        if let reason { parts.append("reason=\(reason.rawValue)") }
        parts.append("latency=\(latencyMicros / 1000).\(String(latencyMicros % 1000 / 100))ms")
        parts.append("credits=\(credits)")
        parts.append("cached=\(cached)")
        if attempts > 1 { parts.append("attempts=\(attempts)") }
        if let tunnel { parts.append("up=\(tunnel.bytesUp)B down=\(tunnel.bytesDown)B ended=\(tunnel.ended.rawValue)") }
        return parts.joined(separator: " ")
    }
}

/// Brokers workers' calls to external APIs: permission, rate limit, quota,
/// pre-authorisation, the call through libcurl, settlement, and the answer, in that order.
public final class Gateway: Sendable {
    public let config: GatewayConfig
    let states: [String: IntegrationState]
    let store: any GatewayStore
    private let engine: HTTPEngine
    /// Where large answers are scrubbed and retries wait, off the workers' queues and the
    /// engine's thread. (Work that touches the store runs where the store says: `GatewayStore.perform`.)
    private let work = DispatchQueue(label: "purser.gateway", attributes: .concurrent)
    /// Answers up to this size are finished on the engine's thread: scrubbing them costs
    /// less than handing them to another thread.
    static let inlineBodyBytes = 64 << 10

    public init(
        config: GatewayConfig, store: (any GatewayStore)? = nil, logger: Logger = Logger(label: "purser.gateway")
    ) throws(GatewayFailure) {
        self.config = config
        self.store = store ?? MemoryGatewayStore()
        engine = try HTTPEngine()
        var states: [String: IntegrationState] = [:]
        for integration in config.integrations {
            states[integration.name] = IntegrationState(integration, store: self.store, logger: logger)
        }
        self.states = states
    }

    /// Runs one call; `reply` gets the answer exactly once, on some other thread.
    public func call(
        _ params: GatewayCallParams, caller: GatewayCaller,
        reply: @escaping @Sendable (Result<GatewayCallResult, GatewayFailure>) -> Void
    ) {
        var call = Call(params: params, caller: caller, started: monotonicNanoseconds(), reply: reply)
        // Work that touches the store (quotas, the cache's persistent tier, a shared rate or
        // breaker) goes to the store's threads; the rest is a few locks, cheaper than a thread hop.
        if states[params.integration]?.needsStore == false {
            start(call)
        } else {
            call.onStoreThread = true
            store.perform { [call] in self.start(call) }
        }
    }

    /// Reads a caller's pipe on the HTTP engine's thread: `onReadable` runs there while
    /// `fd` is readable, so a call it makes reaches the wire with no thread hop. `ended`
    /// runs once when the watch is over (after `unwatch`, or at once if it could not start).
    public func watch(_ fd: Int32, onReadable: @escaping @Sendable () -> Void, ended: @escaping @Sendable () -> Void) {
        engine.watch(fd, onReadable: onReadable, ended: ended)
    }

    public func unwatch(_ fd: Int32) { engine.unwatch(fd) }

    /// Each integration's limiter, breaker, quotas and cache, as `purser gateway status` shows them.
    public func status() -> [IntegrationStatus] {
        config.integrations.compactMap { states[$0.name]?.status(store: store) }
    }

    /// Writes every integration's state to the store, for `purser gateway status`.
    public func saveStates() {
        for state in states.values { state.save(to: store, force: true) }
    }

    // MARK: - The pipeline

    private func start(_ call: Call) {
        guard let state = states[call.params.integration] else {
            return refuse(call, nil, GatewayFailure(.invalidRequest, "no integration named '\(call.params.integration)'"))
        }
        let integration = state.integration
        guard call.caller.tools.contains(integration.name) else {
            return refuse(call, state, GatewayFailure(
                .permissionDenied, "this run does not hold the tool '\(integration.name)'"))
        }
        let request: UpstreamRequest
        do {
            request = try RequestPolicy.prepare(call.params, for: integration, deadlineMs: call.caller.deadlineMs)
        } catch {
            return refuse(call, state, error)
        }
        var call = call
        call.cacheKey = cacheKey(call, state, request)
        if let key = call.cacheKey, let cached = state.recall(key, store: store) { return answerFromCache(call, state, cached) }
        if !call.onStoreThread && state.needsStore {
            // The shared breaker's view went stale, or its cool-down ended, since `call`.
            call.onStoreThread = true
            return store.perform { [call] in self.start(call) }
        }
        let admission: Admission
        do {
            admission = try state.admit(store: store, runID: call.caller.runID, maxCredits: integration.cost.max)
        } catch {
            return refuse(call, state, error)
        }
        let maximum = integration.cost.max
        guard call.caller.account.hold(maximum) else {
            admission.cancel(state, store: store, runID: call.caller.runID)
            return refuse(call, state, GatewayFailure(
                .budgetExhausted, "the run's reservation cannot cover this call's \(maximum) credits"))
        }
        perform(call, state, admission, request, attempt: 1, sent: 0, redirects: 0)
    }

    private func perform(
        _ call: Call, _ state: IntegrationState, _ admission: Admission, _ request: UpstreamRequest, attempt: Int,
        sent: Int, redirects: Int
    ) {
        var timed = request
        timed.totalTimeoutMs = RequestPolicy.remainingMs(call, state.integration)
        let request = timed
        guard request.totalTimeoutMs > 0 else {
            return finish(call, state, admission, .failure(GatewayFailure(.timeout, "the call ran out of time")),
                attempts: attempt - 1, sent: sent)
        }
        engine.submit(request) { response in
            let handle: @Sendable () -> Void = {
                self.handle(call, state, admission, request, response, attempt: attempt, sent: sent, redirects: redirects)
            }
            if state.touchesStore {
                self.store.perform(handle)
            } else if response.body.count > Self.inlineBodyBytes {
                self.work.async(execute: handle)
            } else {
                handle()
            }
        }
    }

    private func handle(
        _ call: Call, _ state: IntegrationState, _ admission: Admission, _ request: UpstreamRequest,
        _ response: UpstreamResponse, attempt: Int, sent: Int, redirects: Int
    ) {
        let integration = state.integration
        let sentNow = sent + (response.requestSent ? 1 : 0)
        if (300...399).contains(response.status), let location = response.header("location") {
            guard redirects < RequestPolicy.maxRedirects else {
                return finish(call, state, admission, .failure(GatewayFailure(.upstreamUnavailable, "too many redirects")),
                    attempts: attempt, sent: sentNow, last: response)
            }
            do {
                let next = try RequestPolicy.redirect(request, status: response.status, location: location, for: integration)
                return perform(call, state, admission, next, attempt: attempt, sent: sentNow, redirects: redirects + 1)
            } catch {
                return finish(call, state, admission, .failure(error), attempts: attempt, sent: sentNow, last: response)
            }
        }
        if response.status == 429, let after = response.header("retry-after").flatMap(RequestPolicy.retryAfterMs) {
            // Every caller of this integration backs off, not only this one.
            state.pushBack(ms: after)
        }
        if let delay = retryDelay(call, state, request, response, attempt: attempt) {
            work.asyncAfter(deadline: .now() + .milliseconds(Int(delay))) {
                let retry: @Sendable () -> Void = {
                    self.perform(call, state, admission, request, attempt: attempt + 1, sent: sentNow, redirects: redirects)
                }
                if state.touchesStore { self.store.perform(retry) } else { retry() }
            }
            return
        }
        finish(call, state, admission, Self.outcome(response, integration), attempts: attempt, sent: sentNow, last: response)
    }

    /// How long to wait before trying again, or nil not to: idempotent methods only, on
    /// 429, 502, 503, 504 and connection failures, within the retry limit and the time left.
    private func retryDelay(
        _ call: Call, _ state: IntegrationState, _ request: UpstreamRequest, _ response: UpstreamResponse, attempt: Int
    ) -> Int64? {
        let policy = state.integration.retries
        let retryable = [429, 502, 503, 504].contains(response.status) || RequestPolicy.isConnectionFailure(response)
        guard retryable, attempt <= policy.max, RequestPolicy.idempotent.contains(request.method) else { return nil }
        var delay = min(policy.maxBackoffMs, policy.backoffMs << min(attempt - 1, 20))
        delay = delay / 2 + Int64.random(in: 0...max(delay / 2, 1))
        if let after = response.header("retry-after").flatMap(RequestPolicy.retryAfterMs) { delay = max(delay, after) }
        guard delay < RequestPolicy.remainingMs(call, state.integration) else { return nil }
        return delay
    }

    private static func outcome(_ response: UpstreamResponse, _ integration: Integration) -> Result<UpstreamResponse, GatewayFailure> {
        if response.tooLarge {
            return .failure(GatewayFailure(
                .responseTooLarge, "the response is larger than the integration's \(integration.maxResponseBytes) bytes"))
        }
        if response.timedOut { return .failure(GatewayFailure(.timeout, "the upstream did not answer in time")) }
        // Refused like a redirect away from the base: the upstream is up, but what it sent
        // is not passed on, and a worker that asked for it must not open the breaker.
        if let refusal = ResponsePolicy.refusal(response) { return .failure(GatewayFailure(.invalidRequest, refusal)) }
        guard response.curlCode == 0, response.status > 0 else {
            return .failure(GatewayFailure(.upstreamUnavailable, "the upstream failed: \(response.error)"))
        }
        return .success(response)
    }

    // MARK: - Ending a call

    private func finish(
        _ call: Call, _ state: IntegrationState, _ admission: Admission, _ outcome: Result<UpstreamResponse, GatewayFailure>,
        attempts: Int, sent: Int, last: UpstreamResponse? = nil
    ) {
        let integration = state.integration
        let answered = try? outcome.get()
        let charge = integration.cost.charge(final: answered, sentAttempts: sent)
        let healthy: Bool = switch outcome {
        case .success(let response): response.status < 500
        case .failure(let failure): failure.reason == .responseTooLarge || failure.reason == .invalidRequest
        }
        admission.finish(state, store: store, charged: charge, healthy: healthy, wentUpstream: sent > 0, runID: call.caller.runID)
        let record = record(call, state, status: answered?.status, reason: outcome.failure?.reason, charged: charge,
            cached: false, attempts: attempts)
        call.caller.account.settle(held: integration.cost.max, charged: charge, record: record)
        state.count(record)
        state.save(to: store, force: false)
        switch outcome {
        case .success(let response):
            let result = state.answer(response, charged: charge)
            if let key = call.cacheKey, let cache = integration.cache, (200...299).contains(response.status) {
                state.remember(key, result, ttlMs: cache.ttlMs, store: store)
            }
            call.reply(.success(result))
        case .failure(var failure):
            failure.charged = charge
            failure.message = state.scrubber.scrub(failure.message)
            call.reply(.failure(failure))
        }
    }

    private func refuse(_ call: Call, _ state: IntegrationState?, _ failure: GatewayFailure) {
        let record = GatewayCallRecord(
            integration: call.params.integration, method: call.params.method, path: String(call.params.path.prefix(200)),
            status: nil, reason: failure.reason, latencyMicros: (monotonicNanoseconds() - call.started) / 1000,
            credits: .zero, cached: false, attempts: 0)
        call.caller.account.settle(held: nil, charged: .zero, record: record)
        state?.count(record)
        call.reply(.failure(failure))
    }

    private func record(
        _ call: Call, _ state: IntegrationState, status: Int64?, reason: GatewayReason?, charged: Credits, cached: Bool,
        attempts: Int
    ) -> GatewayCallRecord {
        GatewayCallRecord(
            integration: state.integration.name, method: call.params.method.uppercased(),
            path: state.scrubber.scrub(String(call.params.path.prefix(200))), status: status, reason: reason,
            latencyMicros: (monotonicNanoseconds() - call.started) / 1000, credits: charged, cached: cached,
            attempts: attempts)
    }

    // MARK: - Cache

    /// What a GET's answer is cached under, in memory and in the store: everything that can
    /// change it (the URL as asked and the worker's headers), and whose it is (the caller's
    /// team, unless the integration shares answers). Each field length-prefixed, so that no
    /// two requests share a key. nil for a call that is not cached.
    private func cacheKey(_ call: Call, _ state: IntegrationState, _ request: UpstreamRequest) -> String? {
        guard let cache = state.integration.cache, request.method == "GET" else { return nil }
        let scope = cache.shared ? "shared" : "team:" + (call.caller.team ?? "")
        let fields = ["v2", state.integration.name, scope] + request.variant
        return fields.map { "\($0.utf8.count):\($0)" }.joined(separator: " ")
    }

    /// A cached answer costs no upstream call and no rate-limit or quota slot; it is
    /// charged the integration's `cost.cacheHit`.
    private func answerFromCache(_ call: Call, _ state: IntegrationState, _ cached: GatewayCallResult) {
        let charge = state.integration.cost.cacheHit
        guard call.caller.account.hold(charge) else {
            return refuse(call, state, GatewayFailure(.budgetExhausted, "the run's reservation cannot cover \(charge) credits"))
        }
        var result = cached
        result.credits = charge
        result.cached = true
        let record = record(call, state, status: result.status, reason: nil, charged: charge, cached: true, attempts: 0)
        call.caller.account.settle(held: charge, charged: charge, record: record)
        state.count(record)
        call.reply(.success(result))
    }
}

/// One call on its way through the pipeline.
struct Call: Sendable {
    var params: GatewayCallParams
    var caller: GatewayCaller
    var started: Int64
    var reply: @Sendable (Result<GatewayCallResult, GatewayFailure>) -> Void
    /// Set once the request is checked, for a call whose answer may be cached.
    var cacheKey: String? = nil
    /// Runs on the store's threads, where admission may wait for the store.
    var onStoreThread = false
}

extension Result {
    var failure: Failure? {
        if case .failure(let failure) = self { return failure }
        return nil
    }
}
