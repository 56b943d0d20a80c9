import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

/// Egress for tools that fetch URLs themselves: mcp-server-fetch (PyPI, installed by
/// .ci/setup), unmodified, reaches a test server only through the supervisor's proxy on its
/// own loopback, and only where an integration of its egress allows.
@Suite("Egress through the gateway's proxy", .timeLimit(.minutes(3)))
struct EgressTests {
    let home = Fixtures.temporaryHome()
    static let fetch = "/opt/purser-mcp-fetch/bin/mcp-server-fetch"

    func purser(_ arguments: [String]) async throws -> CommandResult { try await runPurser(arguments, home: home) }

    func gateway(_ server: HTTPTestServer) throws -> String {
        let path = home + "/gateway.yaml"
        try """
        integrations:
          site:
            baseURL: \(server.baseURL)/
            methods: [GET]
            headers: [Accept, User-Agent]
            cost: { perRequest: 0.1 }
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func report(_ result: CommandResult) throws -> JSONValue { try JSONParser.parse(Array(result.stdout.utf8)) }

    @Test("the page comes back through the gateway, charged and logged; a URL outside the integrations gets the proxy's 403")
    func fetchThroughTheProxy() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.fetch), "run .ci/setup")
        let server = try await HTTPTestServer.start()
        defer { server.stop() }
        let other = try await HTTPTestServer.start()
        defer { other.stop() }
        let gateway = try gateway(server)
        try "egress: [site]\nmcp: { startupTimeout: 30s }\n".write(toFile: home + "/fetch.yaml", atomically: true, encoding: .utf8)
        let added = try await purser(["mcp", "add", "fetch", "--manifest", home + "/fetch.yaml", "--", Self.fetch, "--ignore-robots-txt", "--allow-private-ips"])
        try #require(added.status == 0, "\(added.stderr)")

        let page = try report(try await purser([
            "exec", "fetch.fetch", "--input", #"{"url":"\#(server.baseURL)/ok"}"#, "--gateway", gateway, "--credits", "1", "--json",
        ]))
        #expect(page["verdict"] == "ok", "\(page)")
        #expect(page["output"]?["content"]?.arrayValue?.first?["text"]?.stringValue?.contains(#""ok":true"#) == true, "\(page["output"] ?? .null)")
        #expect(page["usage"]?["gatewayCredits"] == 0.1 && page["usage"]?["credits"] == 0.1, "\(page["usage"] ?? .null)")
        #expect(server.requests().contains { $0.path == "/ok" })

        let outside = try report(try await purser([
            "exec", "fetch.fetch", "--input", #"{"url":"\#(other.baseURL)/ok"}"#, "--gateway", gateway, "--credits", "1", "--json",
        ]))
        #expect(outside["verdict"] == "error" && outside["error"]?["message"]?.stringValue?.contains("403") == true, "\(outside)")
        #expect(outside["usage"]?["gatewayCredits"] == 0)
        #expect(other.requests().isEmpty, "nothing reached the server outside the integrations")
    }

    @Test("a tool that ignores the proxy variables reaches nothing: the host's loopback is not the run's")
    func directConnectionsFail() async throws {
        let server = try await HTTPTestServer.start()
        defer { server.stop() }
        let gateway = try gateway(server)
        let walls = try report(try await purser([
            "exec", Fixtures.product("hostile"), "--env", "HOSTILE_MODE=walls", "--env", "HOSTILE_TCP=127.0.0.1:\(server.port)",
            "--egress", "site", "--gateway", gateway, "--json",
        ]))
        #expect(walls["verdict"] == "ok", "\(walls)")
        #expect(walls["output"]?["results"]?["tcp"] == "ECONNREFUSED", "\(walls["output"] ?? .null)")
        #expect(server.requests().isEmpty)
    }

    @Test("egress names a known integration, for an untrusted run")
    func refusedUpFront() async throws {
        let server = try await HTTPTestServer.start()
        defer { server.stop() }
        let gateway = try gateway(server)
        let unknown = try await purser(["exec", Fixtures.product("hostile"), "--egress", "nowhere", "--gateway", gateway])
        #expect(unknown.status == 2 && unknown.stderr.contains("egress: no gateway integration named nowhere"), "\(unknown.stderr)")
        let trusted = try await purser(["exec", Fixtures.product("hostile"), "--trusted", "--egress", "site", "--gateway", gateway])
        #expect(trusted.status == 2 && trusted.stderr.contains("egress is for untrusted runs"), "\(trusted.stderr)")
    }
}
