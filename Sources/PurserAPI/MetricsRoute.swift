import Hummingbird
import NIOCore
import PurserGateway
import PurserLedger
import Prometheus
import PurserRuntime

/// `GET /metrics`: Prometheus' text format (docs/api.md, "Metrics"). What the store holds
/// exactly (budgets, the queue, the hosts) and the gateway's state are read at each scrape;
/// what happens in this process (runs, gateway calls, commits) was counted as it happened
/// (`MetricsBackend`).
struct MetricsRoute: Sendable {
    let stores: APIStores

    func scrape() async throws -> Response {
        let (ledger, fleet) = (stores.ledger, stores.fleet)
        let (nodes, depths, hosts) = try await stores.call { () throws(LedgerError) in
            (try ledger.budgetNodes(), try fleet.queueDepths(), try fleet.hosts())
        }
        // A registry of this scrape alone: a swarm that ended since the last one has no gauges left.
        let gauges = PrometheusCollectorRegistry()
        Self.budgets(nodes, into: gauges)
        Self.queue(depths, into: gauges)
        Self.hosts(hosts, into: gauges)
        let gateway = stores.runtime.gateway
        GatewayGauges.add(await StoreThreads.shared.run { gateway?.status() ?? [] }, into: gauges)
        let text = MetricsBackend.counted() + gauges.emitToString()
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    static let balances: [(name: String, help: String, value: @Sendable (Node) -> Int64)] = [
        ("cap", "credits granted to it", { $0.cap.credits }),
        ("available", "credits it may still grant or spend", { $0.available.credits }),
        ("reserved", "credits held by its open holds", { $0.reserved.credits }),
        ("consumed", "credits spent", { $0.consumed.credits }),
    ]

    /// Each team's balances, and each running swarm's (summed over swarms of one name).
    static func budgets(_ nodes: [Node], into registry: PrometheusCollectorRegistry) {
        let teams = Dictionary(nodes.filter { $0.kind == .team }.map { ($0.id, $0.name) }) { first, _ in first }
        for node in nodes {
            let (tier, labels): (String, [(String, String)])
            if node.kind == .team {
                (tier, labels) = ("team", [("team", node.name)])
            } else {
                guard let parent = node.parent, let team = teams[parent] else { continue }
                (tier, labels) = ("swarm", [("team", team), ("swarm", node.name)])
            }
            for balance in balances {
                registry.gauge("\(tier)_\(balance.name)", unit: "credits", labels, help: "The \(tier)'s \(balance.help).")
                    .increment(by: Double(balance.value(node)) / 1_000_000)
            }
        }
    }

    /// The queue's routines by what they wait for, and those running.
    static func queue(_ depths: [QueueDepth], into registry: PrometheusCollectorRegistry) {
        for depth in depths {
            let labels = [("team", depth.team), ("swarm", depth.swarm)]
            let gauge = depth.place == .running
                ? registry.gauge("workers_running", labels, help: "Routines running, on every host.")
                : registry.gauge(
                    "queue_routines", labels + [("reason", depth.place.rawValue)],
                    help: "Routines waiting: for their swarm's budget, for routines they come after, or for a slot.")
            gauge.increment(by: Double(depth.routines))
        }
    }

    /// The fleet's hosts by state; each live host's slots and running workers.
    static func hosts(_ hosts: [HostRow], into registry: PrometheusCollectorRegistry) {
        for state in ["live", "lost", "left"] {
            registry.gauge("hosts", [("state", state)], help: "Hosts of the fleet, by state.")
                .set(Double(hosts.count { $0.state == state }))
        }
        for host in hosts where host.state == "live" {
            registry.gauge("host_slots", [("host", host.name)], help: "A live host's slots.").set(Double(host.slots))
            registry.gauge("host_workers_running", [("host", host.name)], help: "Workers a live host runs.")
                .set(Double(host.running))
        }
    }
}

extension PrometheusCollectorRegistry {
    /// The gauge `purser_NAME[_UNIT]` with these labels (the same one again when asked again).
    func gauge(_ name: String, unit: String = "", _ labels: [(String, String)], help: String) -> Gauge {
        makeGauge(descriptor: MetricNameDescriptor(namespace: "purser", metricName: name, unitName: unit, helpText: help), labels: labels)
    }
}
