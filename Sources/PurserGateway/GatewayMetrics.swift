import CoreMetrics
import PurserProtocol

/// Each brokered call, counted through swift-metrics' facade (`purser serve` renders them
/// at /metrics). The integration's name is the config's, never the one a worker asked for;
/// an upstream's status goes in by class (2xx, 4xx), so a server cannot grow the series.
enum GatewayMetrics {
    static let requests = "purser_gateway_requests_total"
    static let upstreamDuration = "purser_gateway_upstream_duration_seconds"
    static let cacheHits = "purser_gateway_cache_hits_total"

    static func count(_ record: GatewayCallRecord, integration: String) {
        let code = record.status.map { (100...599).contains($0) ? "\($0 / 100)xx" : "other" } ?? "none"
        Counter(label: requests, dimensions: [
            ("integration", integration), ("code", code), ("reason", record.reason?.rawValue ?? "none"),
        ]).increment()
        if record.cached {
            Counter(label: cacheHits, dimensions: [("integration", integration)]).increment()
        } else if record.attempts > 0 {
            Timer(label: upstreamDuration, dimensions: [("integration", integration)]).recordMicroseconds(record.latencyMicros)
        }
    }
}
