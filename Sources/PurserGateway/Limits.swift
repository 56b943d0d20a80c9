import Glibc

/// GCRA (the generic cell rate algorithm): the limiter keeps one number, the theoretical
/// arrival time of the next call, and admits a call at `now` if that time is at most
/// `(burst - 1) × interval` ahead. Exact by construction: no window, no bucket refill
/// timer, no rounding.
public struct GCRA: Sendable, Hashable {
    public let intervalNs: Int64
    public let burst: Int64
    /// The theoretical arrival time, in the limiter clock's nanoseconds.
    public private(set) var tat: Int64 = Int64.min

    public init(_ limit: RateLimit) {
        intervalNs = limit.intervalNs
        burst = limit.burst
    }

    /// `burst - 1` intervals, at most a quarter of Int64's range (about 73 years): a day's
    /// rate with the largest burst would overflow it, and tat ± tolerance must not.
    private var tolerance: Int64 {
        let (product, overflow) = (burst - 1).multipliedReportingOverflow(by: intervalNs)
        return overflow ? Int64.max / 4 : min(product, Int64.max / 4)
    }

    /// Admits a call (and counts it) or returns how long until one would be admitted.
    public mutating func admit(now: Int64) -> Result<Void, Wait> {
        let arrival = max(tat, now)
        let allowedAt = arrival - tolerance
        guard allowedAt <= now else { return .failure(Wait(nanoseconds: allowedAt - now)) }
        tat = arrival + intervalNs
        return .success(())
    }

    /// An upstream said to wait (429 Retry-After): nobody is admitted before `until`.
    public mutating func pushBack(until: Int64) {
        tat = max(tat, until + tolerance)
    }

    public struct Wait: Error, Sendable, Hashable {
        public var nanoseconds: Int64
        public var milliseconds: Int64 { (nanoseconds + 999_999) / 1_000_000 }
    }
}

/// Opens after a run of failures; fails calls fast while open; after the cool-down lets
/// one trial call through (half-open), whose outcome closes or re-opens it.
public struct CircuitBreaker: Sendable, Hashable {
    public enum State: String, Sendable { case closed, open, halfOpen = "half-open" }
    public let policy: BreakerPolicy
    public private(set) var state = State.closed
    public private(set) var consecutiveFailures = 0
    private var openedAt: Int64 = 0
    private var trialInFlight = false

    public init(_ policy: BreakerPolicy) { self.policy = policy }

    /// Whether a call may go upstream now (and, half-open, marks it as the trial).
    public mutating func allow(nowMs: Int64) -> Bool {
        switch state {
        case .closed: return true
        case .open:
            guard nowMs - openedAt >= policy.coolDownMs else { return false }
            state = .halfOpen
            trialInFlight = true
            return true
        case .halfOpen:
            guard !trialInFlight else { return false }
            trialInFlight = true
            return true
        }
    }

    public mutating func record(success: Bool, nowMs: Int64) {
        trialInFlight = false
        if success {
            state = .closed
            consecutiveFailures = 0
            return
        }
        consecutiveFailures += 1
        if state == .halfOpen || consecutiveFailures >= policy.failures {
            state = .open
            openedAt = nowMs
        }
    }

    /// A call that was allowed but never went upstream gives its trial back.
    public mutating func release() { trialInFlight = false }

    public func retryAfterMs(nowMs: Int64) -> Int64 { max(0, openedAt + policy.coolDownMs - nowMs) }
}

extension Quota.Window {
    /// The window `nowMs` falls in, as a key ("2026-11-29T07", "2026-11-29", "2026-11")
    /// and the milliseconds until the next one opens. The key names the window, so a new
    /// window starts at zero without anything being reset.
    public func current(nowMs: Int64) -> (key: String, remainingMs: Int64) {
        var seconds = time_t(nowMs / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let year = Int(parts.tm_year) + 1900
        let month = Int(parts.tm_mon) + 1
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let next: Int64
        let key: String
        switch self {
        case .hour:
            key = "\(year)-\(two(month))-\(two(Int(parts.tm_mday)))T\(two(Int(parts.tm_hour)))"
            next = (nowMs / 3_600_000 + 1) * 3_600_000
        case .day:
            key = "\(year)-\(two(month))-\(two(Int(parts.tm_mday)))"
            next = (nowMs / 86_400_000 + 1) * 86_400_000
        case .month:
            key = "\(year)-\(two(month))"
            var first = tm()
            first.tm_year = Int32(month == 12 ? year + 1 - 1900 : year - 1900)
            first.tm_mon = Int32(month == 12 ? 0 : month)
            first.tm_mday = 1
            next = Int64(timegm(&first)) * 1000
        }
        return (key, next - nowMs)
    }
}

/// Monotonic nanoseconds, for the limiter.
func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}
