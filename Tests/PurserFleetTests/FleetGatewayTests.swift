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
}
}
