import Logging
import Synchronization

/// One integration's rate limit and breaker held for every supervisor sharing the store
/// (the fleet's hosts, several `purser run` on one ledger), not per process.
///
/// The rate: the GCRA's theoretical arrival time lives in the store, and each call is
/// admitted there by one conditional UPDATE on the database's clock (exact; one round trip
/// a call). Rates above `maxSharedRate` keep each supervisor's own limiter instead
/// (docs/gateway.md has the measured round trips behind the threshold).
///
/// The breaker: opened, cooled down and closed in the store; each supervisor counts its
/// own consecutive failures and opens it for all. A call sees the store's breaker through
/// its rate admission, or through a view read at most `breakerViewNs` before. The trial
/// call of a cooled-down breaker is taken in the store, by one supervisor.
///
/// What the store said last refuses calls without asking it again: its arrival time only
/// grows, and an open breaker closes only after its cool-down, so a refusal read from it
/// holds until the time it named.
final class SharedLimits: Sendable {
    static let maxSharedRate: Int64 = 500
    static let breakerViewNs: Int64 = 1_000_000_000

    private struct View {
        /// Monotonic nanoseconds before which the rate admits nothing.
        var rateFreeAt = Int64.min
        /// nil while closed; else when it cools down (monotonic nanoseconds).
        var breakerCoolsAt: Int64?
        var readAt = Int64.min / 2
        var failures = 0
    }

    let integration: Integration
    /// The GCRA's interval and tolerance in microseconds; nil when the rate stays per supervisor.
    let rate: (intervalUs: Int64, toleranceUs: Int64)?
    private let limits: any SharedLimitStore
    private let store: any GatewayStore
    private let logger: Logger
    private let view = Mutex(View())

    init(_ integration: Integration, limits: any SharedLimitStore, store: any GatewayStore, logger: Logger) {
        self.integration = integration
        self.limits = limits
        self.store = store
        self.logger = logger
        rate = integration.rateLimit.flatMap { limit in
            limit.intervalNs * Self.maxSharedRate < 1_000_000_000
                ? nil : (limit.intervalNs / 1000, (limit.burst - 1) * (limit.intervalNs / 1000))
        }
    }

    private var name: String { integration.name }

    /// Whether admitting a call now asks the store (so must run on the store's threads).
    func needsStore(now: Int64) -> Bool {
        rate != nil || view.withLock { view in
            now - view.readAt >= Self.breakerViewNs || view.breakerCoolsAt.map { now >= $0 } == true
        }
    }

    // MARK: - Admission

    /// Admits a call, or throws why not; true when the call is the breaker's trial.
    func admit(now: Int64) throws(GatewayFailure) -> Bool {
        if rate == nil, view.withLock({ now - $0.readAt >= Self.breakerViewNs }) {
            let open = try ask("reading the breaker") { try limits.breakerOpenFor(integration: name) }
            learn(breakerUs: open, now: now)
        }
        try refuseFromView(now)
        guard let rate else { return try trialIfCooled(now, rate: (0, 0)) }
        let answer = try ask("admitting a call") {
            try limits.admitCall(integration: name, intervalUs: rate.intervalUs, toleranceUs: rate.toleranceUs)
        }
        learn(breakerUs: answer.breakerUs, now: now)
        if answer.admitted { return false }
        guard answer.breakerUs == nil else {
            try refuseFromView(now)
            return try trialIfCooled(now, rate: rate)
        }
        view.withLock { $0.rateFreeAt = max($0.rateFreeAt, now + answer.waitUs * 1000) }
        throw rateLimited(waitNs: answer.waitUs * 1000)
    }

    /// Closed: admitted. Cooled down: the trial, if no other supervisor holds it.
    private func trialIfCooled(_ now: Int64, rate: (intervalUs: Int64, toleranceUs: Int64)) throws(GatewayFailure) -> Bool {
        guard view.withLock({ $0.breakerCoolsAt != nil }) else { return false }
        let coolDownUs = integration.breaker.coolDownMs * 1000
        let taken = try ask("taking the breaker's trial") {
            try limits.takeTrial(integration: name, coolDownUs: coolDownUs, intervalUs: rate.intervalUs, toleranceUs: rate.toleranceUs)
        }
        if taken { return true }
        // Another supervisor's trial (or the rate): look again in a moment, not at every call.
        let retryNs = min(Self.breakerViewNs, coolDownUs * 1000)
        view.withLock { $0.breakerCoolsAt = now + retryNs }
        throw GatewayFailure(
            .upstreamUnavailable, "\(name) is failing; a trial call is in flight", retryAfterMs: retryNs / 1_000_000)
    }

    private func refuseFromView(_ now: Int64) throws(GatewayFailure) {
        let (rateFreeAt, coolsAt) = view.withLock { ($0.rateFreeAt, $0.breakerCoolsAt) }
        if let coolsAt, now < coolsAt {
            throw GatewayFailure(
                .upstreamUnavailable, "\(name) is failing; its circuit breaker is open",
                retryAfterMs: (coolsAt - now + 999_999) / 1_000_000)
        }
        if rate != nil, now < rateFreeAt { throw rateLimited(waitNs: rateFreeAt - now) }
    }

    private func rateLimited(waitNs: Int64) -> GatewayFailure {
        GatewayFailure(
            .rateLimited, "\(name) allows \(integration.rateLimit?.text ?? "")", retryAfterMs: (waitNs + 999_999) / 1_000_000)
    }

    private func learn(breakerUs: Int64?, now: Int64) {
        view.withLock { view in
            view.readAt = now
            view.breakerCoolsAt = breakerUs.map { now + $0 * 1000 }
        }
    }

    // MARK: - Outcomes

    /// A call's end: a trial closes or re-opens the breaker; a run of this supervisor's
    /// failures opens it for all. `sync`: on the store's threads, so write now.
    func record(healthy: Bool?, wentUpstream: Bool, trial: Bool, sync: Bool) {
        guard let healthy, wentUpstream else { return }
        let now = monotonicNanoseconds()
        let opens = view.withLock { view -> Bool in
            view.failures = healthy ? 0 : view.failures + 1
            guard trial || view.failures >= integration.breaker.failures else { return false }
            view.failures = 0
            view.readAt = now
            view.breakerCoolsAt = healthy ? nil : now + integration.breaker.coolDownMs * 1_000_000
            return !healthy
        }
        let coolDownUs = integration.breaker.coolDownMs * 1000
        if opens {
            logger.warning("the circuit breaker opened", metadata: ["integration": "\(name)"])
            write("opening the breaker", sync: sync) { try self.limits.openBreaker(integration: self.name, coolDownUs: coolDownUs) }
        } else if trial {
            write("closing the breaker", sync: sync) { try self.limits.closeBreaker(integration: self.name) }
        }
    }

    /// An upstream's 429 Retry-After: every supervisor waits.
    func pushBack(ms: Int64, sync: Bool) {
        guard let rate else { return }
        let now = monotonicNanoseconds()
        view.withLock { $0.rateFreeAt = max($0.rateFreeAt, now + ms * 1_000_000) }
        write("pushing the rate back", sync: sync) {
            try self.limits.pushBackCalls(integration: self.name, delayUs: ms * 1000, toleranceUs: rate.toleranceUs)
        }
    }

    /// The breaker as this supervisor last saw it, for `purser gateway status`.
    func breakerState(now: Int64) -> CircuitBreaker.State {
        guard let coolsAt = view.withLock({ $0.breakerCoolsAt }) else { return .closed }
        return now < coolsAt ? .open : .halfOpen
    }

    // MARK: - The store

    /// A store call a call cannot go without: the store's own retries have run (its retry
    /// window); the call fails, saying why, and the failure is logged.
    private func ask<T>(_ what: String, _ body: () throws -> T) throws(GatewayFailure) -> T {
        do {
            return try body()
        } catch {
            logger.error("\(what) failed", metadata: ["integration": "\(name)", "error": "\(error)"])
            throw GatewayFailure(.upstreamUnavailable, "the rate limit store failed: \(error)")
        }
    }

    /// A write the call goes on without: logged if it fails. Off the caller's thread unless
    /// it is one of the store's.
    private func write(_ what: String, sync: Bool, _ body: @escaping @Sendable () throws -> Void) {
        let logger = logger
        let name = name
        let work: @Sendable () -> Void = {
            do {
                try body()
            } catch {
                logger.error("\(what) failed", metadata: ["integration": "\(name)", "error": "\(error)"])
            }
        }
        if sync { work() } else { store.perform(work) }
    }
}
