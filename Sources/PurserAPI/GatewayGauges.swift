import PurserGateway
import Prometheus

/// The gateway's integrations as `purser gateway status` shows them, as gauges: this
/// host's limiter, breaker and calls in flight, and the quotas' windows (shared through
/// the store when the config says so).
enum GatewayGauges {
    static func add(_ statuses: [IntegrationStatus], into registry: PrometheusCollectorRegistry) {
        for status in statuses {
            let labels = [("integration", status.name)]
            if status.rateLimit != nil {
                registry.gauge("gateway_limiter_delay", unit: "seconds", labels, help: "How long a call would wait for the rate limiter now.")
                    .set(Double(status.limiterAheadMs ?? 0) / 1000)
            }
            registry.gauge("gateway_in_flight", labels, help: "Calls in flight to the integration.").set(Double(status.inFlight))
            for state in ["closed", "open", "half-open"] {
                registry.gauge("gateway_breaker_state", labels + [("state", state)], help: "1 for the breaker's state, 0 for the others.")
                    .set(status.breaker == state ? 1.0 : 0.0)
            }
            for quota in status.quotas { add(quota, labels + [("per", quota.per)], into: registry) }
        }
    }

    /// A quota's use in its current window, and what is left of it.
    private static func add(_ quota: QuotaStatus, _ labels: [(String, String)], into registry: PrometheusCollectorRegistry) {
        registry.gauge("gateway_quota_used", unit: "requests", labels, help: "Requests in the quota's current window.")
            .set(Double(quota.usedRequests))
        registry.gauge("gateway_quota_used", unit: "credits", labels, help: "Credits charged in the quota's current window.")
            .set(Double(quota.usedCredits.micros) / 1_000_000)
        if let max = quota.maxRequests {
            registry.gauge("gateway_quota_remaining", unit: "requests", labels, help: "Requests the quota's window has left.")
                .set(Double(Swift.max(0, max - quota.usedRequests)))
        }
        if let max = quota.maxCredits {
            registry.gauge("gateway_quota_remaining", unit: "credits", labels, help: "Credits the quota's window has left.")
                .set(Double(Swift.max(0, max.micros - quota.usedCredits.micros)) / 1_000_000)
        }
    }
}
