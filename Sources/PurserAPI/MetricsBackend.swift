import CoreMetrics
import Prometheus

/// Where the metrics that modules count through swift-metrics' facade go in `purser serve`:
/// one Prometheus registry for the process, rendered at `/metrics`. The facade's bootstrap
/// is process-wide and once only, so the `purser` executable calls `bootstrap` on serve's
/// path alone; a process that never does (the tests, `purser run`) counts into nothing.
public enum MetricsBackend {
    static let registry = PrometheusCollectorRegistry()

    public static func bootstrap() {
        var factory = PrometheusMetricsFactory(registry: registry)
        // Runs last seconds to hours, and wait from none to the queue's longest: the
        // default buckets (5 ms to 10 s) would put most of them in +Inf.
        let runs: [Duration] = [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600].map { .milliseconds(Int64($0 * 1000)) }
        factory.durationHistogramBuckets["purser_run_duration_seconds"] = runs
        factory.durationHistogramBuckets["purser_run_start_latency_seconds"] = [.milliseconds(10), .milliseconds(100)] + runs.dropFirst()
        MetricsSystem.bootstrap(factory)
    }

    /// What the modules counted since serve started, in Prometheus' text format.
    static func counted() -> String { registry.emitToString() }
}
