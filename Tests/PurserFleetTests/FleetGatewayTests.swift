import Foundation
import PurserLedger
import PurserProtocol
import PurserTestSupport
import Testing

/// An integration's rate limit held by the whole fleet: hosts in network namespaces of
/// their own call one upstream, which listens on the bridge and counts what reaches it.
extension FleetSuites {
@Suite("The fleet's integrations", .timeLimit(.minutes(5)), .serialized)
struct FleetGatewayTests {
    typealias Network = FleetNetworkTests.Network

    /// `purser serve` in `host`'s namespace, with the gateway config at `gateway`.
    func serve(_ net: Network, _ host: String, gateway: String, slots: Int) throws -> HostProcess {
        var environment = net.fleet.environment
        environment["PURSER_HOME"] = net.fleet.home + "/" + host
        environment["PURSER_LEDGER"] = net.url
        try FileManager.default.createDirectory(atPath: net.fleet.home + "/" + host, withIntermediateDirectories: true)
        return try net.network.spawn(
            host, Fixtures.product("purser"),
            ["serve", "--name", host, "--slots", "\(slots)", "--heartbeat", "300ms", "--dead-after", "4s", "--gateway", gateway],
            environment: environment)
    }

    /// `count` routines of `scripted`, each calling `api` for `forMs`.
    func job(_ net: Network, count: Int, forMs: Int) throws -> String {
        var lines = [
            "team:", "  name: fleet", "  budget: { credits: 1000, workers: 32, memory: 64GiB, tools: [api] }",
            "swarm:", "  name: calls", "  reservation: { credits: 500, time: 10m, memory: 32GiB, tools: [api] }",
            "  concurrency: 16", "routines:",
        ]
        for index in 0..<count {
            lines.append(
                "  - { name: r\(index), plugin: scripted, tools: [api], "
                    + "input: { gateway: { integration: api, path: /hello, forMs: \(forMs) } }, "
                    + "estimate: { credits: 1, memory: 64MiB, time: 2m } }")
        }
        let path = net.fleet.home + "/calls.yaml"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Three hosts, two routines each, calling one integration limited to 20/s (burst 5)
    /// as fast as it lets them for 10 s: what reaches the upstream, counted there, is at
    /// most 20/s over the time between its first and last request, plus the burst (and
    /// half a second of slack for the requests' own way there). Each host made some.
    @Test func threeHostsHoldOneIntegrationsRateTogether() async throws {
        let net = try await Network.start(["h1", "h2", "h3"])
        defer { Task { await net.network.tearDown() } }
        let upstream = try await HTTPTestServer.start(
            listening: NetworkHosts.serverAddress, networkNamespace: net.network.serverNamespacePath)
        defer { upstream.stop() }
        let config = net.fleet.home + "/gateway.yaml"
        try """
            integrations:
              api:
                baseURL: \(upstream.baseURL)/
                rateLimit: { rate: 20/s, burst: 5 }
                retries: { max: 0 }

            """.write(toFile: config, atomically: true, encoding: .utf8)
        let hosts = try ["h1", "h2", "h3"].map { try serve(net, $0, gateway: config, slots: 2) }
        let id = try await net.fleet.submit(try job(net, count: 6, forMs: 10_000))
        let watched = try await net.fleet.purser(["watch", id, "--json"])
        #expect(watched.status == 0, "\(watched.stderr.suffix(2000))")
        let routines = try net.fleet.store().routines(swarm: id)
        #expect(routines.count == 6 && routines.allSatisfy { $0.verdict == "ok" }, "\(routines.map(\.message))")
        let calls = upstream.requests().filter { $0.path == "/hello" }
        let times = calls.compactMap(\.time)
        let window = (times.max() ?? 0) - (times.min() ?? 0)
        let allowed = Int(20 * (window + 0.5)) + 5
        #expect(calls.count <= allowed, "\(calls.count) calls reached the upstream in \(window) s; 20/s allows \(allowed)")
        #expect(calls.count > 25, "the hosts called past the burst: \(calls.count)")
        let clients = Dictionary(grouping: calls, by: { $0.client ?? "-" }).mapValues(\.count)
        #expect(Set(clients.keys) == Set(["h1", "h2", "h3"].map(net.network.address)), "each host made some: \(clients)")
        for host in hosts { host.kill(SIGTERM) }
        for host in hosts { #expect(await host.wait() == 0, "\(host.stderr.suffix(1000))") }
        await net.network.tearDown()
    }

    /// What the upstream said to one host.
    enum Heard: String, CaseIterable, Sendable {
        /// A 429 with Retry-After: an hour.
        case tooManyRequests
        /// Two 503s: the breaker opens (for an hour).
        case failures

        var call: String {
            switch self {
            case .tooManyRequests: "path: /status/429, query: { retry: '3600' }"
            case .failures: "path: /status/503"
            }
        }

        var path: String { self == .tooManyRequests ? "/status/429?retry=3600" : "/status/503" }
        var reached: Int { self == .tooManyRequests ? 1 : 2 }
    }

    /// Two hosts of one slot each on SQLite: r0 hears the upstream's 429 or its failures on
    /// one host, then r1…r4 (after it, so on both hosts) call /hello for a second each.
    /// None of their calls reaches the upstream: the push back and the open breaker are
    /// the store's, not r0's host's.
    @Test(arguments: Heard.allCases)
    func whatOneHostHearsHoldsTheOtherBack(heard: Heard) async throws {
        let fleet = try await Fleet(.sqlite)
        let upstream = try await HTTPTestServer.start()
        defer { upstream.stop() }
        let config = fleet.home + "/gateway.yaml"
        try """
            integrations:
              api:
                baseURL: \(upstream.baseURL)/
                rateLimit: { rate: 100/s, burst: 10 }
                retries: { max: 0 }
                breaker: { failures: 2, coolDown: 1h }

            """.write(toFile: config, atomically: true, encoding: .utf8)
        let hosts = try ["a", "b"].map { try ServeProcess(name: $0, fleet: fleet, slots: 1, extra: ["--gateway", config]) }
        try await fleet.wait("both hosts to join") { try $0.hosts().count == 2 }
        var lines = [
            "team: { name: fleet, budget: { credits: 1000, workers: 32, memory: 64GiB, tools: [api] } }",
            "swarm: { name: heard, reservation: { credits: 500, time: 10m, memory: 32GiB, tools: [api] }, concurrency: 16 }",
            "routines:",
            "  - { name: r0, plugin: scripted, tools: [api], input: { gateway: { integration: api, \(heard.call), forMs: 1000 } }, "
                + "estimate: { credits: 1, memory: 64MiB, time: 1m } }",
        ]
        for index in 1...4 {
            lines.append(
                "  - { name: r\(index), plugin: scripted, tools: [api], after: [r0], "
                    + "input: { gateway: { integration: api, path: /hello, forMs: 1000 } }, estimate: { credits: 1, memory: 64MiB, time: 1m } }")
        }
        let job = fleet.home + "/heard.yaml"
        try (lines.joined(separator: "\n") + "\n").write(toFile: job, atomically: true, encoding: .utf8)
        let id = try await fleet.submit(job)
        let watched = try await fleet.purser(["watch", id, "--json"])
        #expect(watched.status == 0, "\(watched.stderr.suffix(2000))")
        let routines = try fleet.store().routines(swarm: id)
        #expect(routines.count == 5 && routines.allSatisfy { $0.verdict == "ok" })
        let after = Set(routines.filter { $0.name != "r0" }.compactMap(\.host))
        #expect(after == ["a", "b"], "r1…r4 ran on both hosts: \(after)")
        let requests = upstream.requests()
        #expect(requests.filter { $0.path == heard.path }.count == heard.reached, "\(requests.map(\.path))")
        #expect(!requests.contains { $0.path == "/hello" }, "no host's call went past what r0's host heard")
        for host in hosts { host.kill(SIGTERM) }
        for host in hosts { #expect(await host.exitStatus() == 0, "\(host.output.suffix(1000))") }
    }
}
}
