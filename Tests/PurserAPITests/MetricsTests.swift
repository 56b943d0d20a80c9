import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

extension APISuites {
    @Suite("Prometheus metrics")
    struct MetricsTests {
        /// A swarm of three quick routines, one of which fails, and one that sleeps: it holds its budget while scraped.
        static func job(_ name: String, sleeper: Bool) -> String {
            var lines = [
                "team:", "  name: api", "  budget: { credits: 1000, workers: 32, memory: 64GiB }",
                "swarm:", "  name: \(name)", "  reservation: { credits: 100, time: 10h, memory: 32GiB }", "  concurrency: 4",
                "routines:",
            ]
            if sleeper {
                lines.append("  - { name: sleeper, plugin: scripted, input: { sleepMs: 60000 }, estimate: { credits: 2, memory: 64MiB, time: 1m } }")
            } else {
                lines.append("  - { name: a, plugin: scripted, input: { spend: 0.5 }, estimate: { credits: 1, memory: 64MiB, time: 1m } }")
                lines.append("  - { name: b, plugin: scripted, input: {}, estimate: { credits: 1, memory: 64MiB, time: 1m } }")
                lines.append("  - { name: c, plugin: scripted, input: { fail: boom }, estimate: { credits: 1, memory: 64MiB, time: 1m } }")
            }
            return lines.joined(separator: "\n") + "\n"
        }

        @Test("/metrics parses with Prometheus' own parser; budgets match team show, run counters the report; no id as a label")
        func scrape() async throws {
            let (serve, url) = try await APIServe.onTCP()
            let home = serve.home
            let socket = "unix:" + serve.socket

            let quick = try await HTTPAnswer.request("POST", "/v1/swarms?file=quick.yaml", on: socket, body: Self.job("quick", sleeper: false))
            let quickID = try #require(quick.json["swarmId"]?.stringValue, "\(quick.body)")
            let stream = try await HTTPAnswer.request("GET", "/v1/swarms/\(quickID)/events", on: socket)
            let end = try #require(stream.body.components(separatedBy: "\n\n").last { $0.hasPrefix("event: end\n") }, "\(stream.body)")
            let report = try JSONParser.parse(String(end.dropFirst("event: end\ndata: ".count)))

            let slow = try await HTTPAnswer.request("POST", "/v1/swarms?file=slow.yaml", on: socket, body: Self.job("slow", sleeper: true))
            let slowID = try #require(slow.json["swarmId"]?.stringValue, "\(slow.body)")
            try await waitForRunning(slowID, on: socket)

            // On TCP, /metrics is behind the tokens like any read.
            let bare = try await HTTPAnswer.request("GET", "/metrics", on: url)
            #expect(bare.status == 401 && Contract.problems(bare, "GET", "/metrics").isEmpty, "\(bare.body)")
            let scraped = try await HTTPAnswer.request("GET", "/metrics", on: url, token: AccessTests.readToken)
            #expect(scraped.status == 200, "\(scraped.body)")
            let tree = try await runPurser(["team", "show", "api", "--json"], home: home)
            try #require(tree.status == 0, "\(tree.stderr)")
            let samples = try await Prometheus.parse(scraped.body)

            // Budgets: the team's and the running swarm's, as the ledger holds them.
            let nodes = try JSONParser.parse(tree.stdout).arrayValue ?? []
            let team = try #require(nodes.first { $0["kind"]?.stringValue == "team" })
            let running = try #require(nodes.first { $0["kind"]?.stringValue == "swarm" && $0["name"]?.stringValue == "slow" && $0["state"]?.stringValue == "open" })
            for field in ["cap", "available", "reserved", "consumed"] {
                let metric = "purser_team_\(field)_credits"
                #expect(Prometheus.value(samples, metric, ["team": "api"]) == team[field]?["credits"]?.numberValue?.double, "\(metric)")
                let swarmMetric = "purser_swarm_\(field)_credits"
                #expect(
                    Prometheus.value(samples, swarmMetric, ["team": "api", "swarm": "slow"]) == running[field]?["credits"]?.numberValue?.double,
                    "\(swarmMetric): \(scraped.body)")
            }
            #expect(Prometheus.value(samples, "purser_swarm_reserved_credits", ["swarm": "quick"]) == nil, "an ended swarm has no budget gauges")

            // Runs, by team and plugin (a swarm's name is free text: no label of counters that live
            // as long as the server): every attempt of the ended swarm started and ended with the
            // report's verdicts; the slow swarm's one attempt started and has not ended.
            let reported = report["attempts"]?.arrayValue ?? []
            let attempts = Double(reported.count)
            #expect(attempts == 3, "\(report.serialized())")
            #expect(Prometheus.sum(samples, "purser_runs_started_total", ["team": "api", "plugin": "scripted"]) == attempts + 1, "\(scraped.body)")
            #expect(!scraped.body.contains("purser_runs_started_total{swarm") && !scraped.body.contains(",swarm=\"quick\""), "\(scraped.body)")
            let verdicts = Dictionary(grouping: reported.compactMap { $0["verdict"]?.stringValue }) { $0 }.mapValues { Double($0.count) }
            #expect(verdicts == ["ok": 2, "error": 1], "\(report.serialized())")
            for (verdict, count) in verdicts {
                #expect(
                    Prometheus.sum(samples, "purser_runs_ended_total", ["team": "api", "verdict": verdict]) == count, "\(verdict): \(scraped.body)")
            }
            #expect(Prometheus.sum(samples, "purser_runs_ended_total", ["team": "api"]) == attempts)
            #expect(Prometheus.sum(samples, "purser_run_duration_seconds_count", ["team": "api"]) == attempts)
            #expect(Prometheus.sum(samples, "purser_run_start_latency_seconds_count", ["team": "api"]) == attempts + 1)
            #expect(Prometheus.value(samples, "purser_workers_running", ["team": "api", "swarm": "slow"]) == 1)
            #expect(Prometheus.value(samples, "purser_hosts", ["state": "live"]) == 1)
            #expect(Prometheus.sum(samples, "purser_store_commit_duration_seconds_count", ["store": "sqlite"]) > 0)

            // Bounded labels: no swarm id, run id or node id is a label's value.
            let nodeIDs = Set(nodes.compactMap { $0["id"]?.numberValue.map { "\($0.int64 ?? -1)" } })
            let ids: Set<String> = [quickID, slowID]
            for sample in samples {
                for (name, value) in sample.labels {
                    #expect(!ids.contains(value) && !nodeIDs.contains(value) && !value.hasPrefix("s-"), "\(sample.name){\(name)=\(value)}")
                }
            }
            _ = try await HTTPAnswer.request("POST", "/v1/swarms/\(slowID)/cancel", on: socket)
        }

        @Test("gateway calls by integration, status class and reason; the breaker and the quota as gauges; no worker-chosen name")
        func gateway() async throws {
            let upstream = try await HTTPTestServer.start()
            defer { upstream.stop() }
            let home = Fixtures.temporaryHome()
            let config = home + "/gateway.yaml"
            try """
                integrations:
                  api:
                    baseURL: \(upstream.baseURL)/
                    rateLimit: { rate: 5/s, burst: 1 }
                    quotas: [{ per: day, requests: 100000 }]
                    retries: { max: 0 }

                """.write(toFile: config, atomically: true, encoding: .utf8)
            let serve = try await APIServe(extra: ["--gateway", config], home: home)
            let socket = "unix:" + serve.socket
            let job = [
                "team:", "  name: api", "  budget: { credits: 1000, workers: 32, memory: 64GiB, tools: [api] }",
                "swarm:", "  name: calls", "  reservation: { credits: 100, time: 10h, memory: 32GiB, tools: [api] }",
                "routines:",
                "  - { name: r0, plugin: scripted, tools: [api], input: { gateway: { integration: api, path: /hello, forMs: 300 } },"
                    + " estimate: { credits: 1, memory: 64MiB, time: 1m } }",
                "  - { name: r1, plugin: scripted, tools: [api], input: { gateway: { integration: chosen-by-worker, path: /, forMs: 100 } },"
                    + " estimate: { credits: 1, memory: 64MiB, time: 1m } }",
            ].joined(separator: "\n") + "\n"
            let submitted = try await HTTPAnswer.request("POST", "/v1/swarms?file=calls.yaml", on: socket, body: job)
            let id = try #require(submitted.json["swarmId"]?.stringValue, "\(submitted.body)")
            let stream = try await HTTPAnswer.request("GET", "/v1/swarms/\(id)/events", on: socket)
            let end = try #require(stream.body.components(separatedBy: "\n\n").last { $0.hasPrefix("event: end\n") }, "\(stream.body)")
            let report = try JSONParser.parse(String(end.dropFirst("event: end\ndata: ".count)))
            #expect(report["verdict"]?.stringValue == "ok", "\(report.serialized())")
            let scraped = try await HTTPAnswer.request("GET", "/metrics", on: socket)
            let samples = try await Prometheus.parse(scraped.body)
            let reached = upstream.requests().filter { $0.path == "/hello" }.count
            // Each call that reached the upstream was answered 200 (no retries): a 2xx, timed.
            #expect(reached > 0)
            #expect(Prometheus.value(samples, "purser_gateway_requests_total", ["integration": "api", "code": "2xx", "reason": "none"]) == Double(reached))
            #expect(Prometheus.sum(samples, "purser_gateway_upstream_duration_seconds_count", ["integration": "api"]) == Double(reached))
            #expect(Prometheus.sum(samples, "purser_gateway_requests_total", ["code": "none", "reason": "rate_limited"]) > 0, "\(scraped.body)")
            #expect(Prometheus.value(samples, "purser_gateway_breaker_state", ["integration": "api", "state": "closed"]) == 1)
            #expect(Prometheus.value(samples, "purser_gateway_breaker_state", ["integration": "api", "state": "open"]) == 0)
            let used = try #require(Prometheus.value(samples, "purser_gateway_quota_used_requests", ["integration": "api", "per": "day"]))
            #expect(used == Double(reached) && Prometheus.value(samples, "purser_gateway_quota_remaining_requests", ["per": "day"]) == 100_000 - used)
            for sample in samples {
                #expect(!sample.labels.values.contains("chosen-by-worker"), "\(sample.name) \(sample.labels)")
            }
        }

        /// Waits (off the pool) until the swarm's routine runs.
        private func waitForRunning(_ id: String, on socket: String) async throws {
            for _ in 0..<600 {
                let shown = try await HTTPAnswer.request("GET", "/v1/swarms/\(id)", on: socket)
                if shown.json["routines"]?.arrayValue?.contains(where: { $0["state"]?.stringValue == "running" }) == true { return }
                await offPool { Thread.sleep(forTimeInterval: 0.1) }
            }
            Issue.record("the swarm's routine did not start")
        }
    }
}

/// Prometheus' text format read by its reference client's parser (Debian's python3-prometheus-client).
enum Prometheus {
    struct Sample: Sendable {
        let name: String
        let labels: [String: String]
        let value: Double
    }

    static let script = """
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        out = []
        for family in text_string_to_metric_families(sys.stdin.read()):
            for s in family.samples:
                out.append({"name": s.name, "labels": s.labels, "value": s.value})
        print(json.dumps(out))
        """

    /// The samples of `text`; fails the test when the parser refuses it.
    static func parse(_ text: String) async throws -> [Sample] {
        let input = NSTemporaryDirectory() + "metrics-\(UUID().uuidString)"
        try text.write(toFile: input, atomically: true, encoding: .utf8)
        let result = try await runCommand("/bin/sh", ["-c", "/usr/bin/python3 -c \"$0\" < \"$1\"", script, input])
        try #require(result.status == 0, "the parser refused /metrics: \(result.stderr)\n\(text)")
        let parsed = try JSONParser.parse(result.stdout).arrayValue ?? []
        return parsed.map { sample in
            Sample(
                name: sample["name"]?.stringValue ?? "", labels: (sample["labels"]?.objectValue ?? [:]).compactMapValues(\.stringValue),
                value: sample["value"]?.numberValue?.double ?? .nan)
        }
    }

    static func matching(_ samples: [Sample], _ name: String, _ labels: [String: String]) -> [Sample] {
        samples.filter { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }
    }

    /// The one sample's value; nil when there is none (or several).
    static func value(_ samples: [Sample], _ name: String, _ labels: [String: String]) -> Double? {
        let found = matching(samples, name, labels)
        return found.count == 1 ? found[0].value : nil
    }

    static func sum(_ samples: [Sample], _ name: String, _ labels: [String: String]) -> Double {
        matching(samples, name, labels).reduce(0) { $0 + $1.value }
    }
}
