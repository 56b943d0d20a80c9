import CoreMetrics
import PurserProtocol
import Synchronization

/// One attempt's metrics, counted through swift-metrics' facade (`purser serve` renders
/// them at /metrics; elsewhere they go nowhere). Labels are the team, the plugin and the
/// verdicts' fixed set: these series live as long as the server, and each label value is
/// one, so never an id, nor a swarm's name (free text: `ci-pr-1234` would grow them
/// without bound; the per-swarm gauges are read afresh at each scrape instead).
final class RunMetrics: Sendable {
    static let started = "purser_runs_started_total"
    static let ended = "purser_runs_ended_total"
    static let duration = "purser_run_duration_seconds"
    static let startLatency = "purser_run_start_latency_seconds"
    static let spent = "purser_credits_spent_total"

    private let labels: [(String, String)]
    private let readyMs: Int64
    private let startedAt = Mutex<ContinuousClock.Instant?>(nil)

    init(team: String, plugin: String, readyMs: Int64) {
        labels = [("team", team), ("plugin", plugin)]
        self.readyMs = readyMs
    }

    /// Its worker starts: the wait since it became ready (the store's clock against this
    /// host's: a skew between them is clamped at zero).
    func start() {
        startedAt.withLock { $0 = .now }
        Counter(label: Self.started, dimensions: labels).increment()
        let waitedMs = max(0, unixMilliseconds() - readyMs)
        Timer(label: Self.startLatency, dimensions: labels).recordMilliseconds(readyMs > 0 ? waitedMs : 0)
    }

    /// The attempt ended with `verdict`, having spent `credits` (µ). One that never
    /// started a worker (served from the cache, say) has no duration.
    func end(verdict: String, credits: Int64) {
        Counter(label: Self.ended, dimensions: labels + [("verdict", verdict)]).increment()
        if credits > 0 { FloatingPointCounter(label: Self.spent, dimensions: labels).increment(by: Double(credits) / 1_000_000) }
        guard let start = startedAt.withLock({ $0 }) else { return }
        let elapsed = ContinuousClock.now - start
        Timer(label: Self.duration, dimensions: labels).recordNanoseconds(
            elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }
}
