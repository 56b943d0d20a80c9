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

    /// A supervisor that is not root makes the run's namespaces through purser-sandbox,
    /// which makes the proxy's listener there too and hands it over.
    @Test(
        "egress under a supervisor that is not root",
        .enabled(if: geteuid() == 0 && Fixtures.reachableByOthers(Fixtures.product("purser")) && Fixtures.reachableByOthers(Self.fetch)))
    func egressWithoutRoot() async throws {
        let server = try await HTTPTestServer.start()
        defer { server.stop() }
        let gateway = try gateway(server)
        try "egress: [site]\nmcp: { startupTimeout: 30s }\n".write(toFile: home + "/fetch.yaml", atomically: true, encoding: .utf8)
        chown(home, 65534, 65534)
        func nobody(_ arguments: [String]) async throws -> CommandResult {
            try await runCommand("/usr/bin/setpriv", [
                "--reuid=65534", "--regid=65534", "--clear-groups", "env", "PURSER_HOME=\(home)/h", Fixtures.product("purser"),
            ] + arguments)
        }
        let added = try await nobody([
            "mcp", "add", "fetch", "--manifest", home + "/fetch.yaml", "--allow-degraded", "--", Self.fetch, "--ignore-robots-txt",
            "--allow-private-ips",
        ])
        try #require(added.status == 0, "\(added.stderr)")
        let page = try report(try await nobody([
            "exec", "fetch.fetch", "--input", #"{"url":"\#(server.baseURL)/ok"}"#, "--gateway", gateway, "--credits", "1", "--json",
            "--allow-degraded",
        ]))
        #expect(page["verdict"] == "ok", "\(page)")
        #expect(page["sandbox"]?["applied"]?.arrayValue?.contains("user-namespace") == true, "\(page["sandbox"] ?? .null)")
        #expect(page["usage"]?["gatewayCredits"] == 0.1, "\(page["usage"] ?? .null)")
        #expect(server.requests().contains { $0.path == "/ok" })
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

    @Test("a job file gives a routine egress (the manifest gives none); a bad egress is refused at its line, nothing reserved")
    func egressInAJobFile() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: Self.fetch), "run .ci/setup")
        let server = try await HTTPTestServer.start()
        defer { server.stop() }
        _ = try gateway(server)
        try "mcp: { startupTimeout: 30s }\n".write(toFile: home + "/fetch.yaml", atomically: true, encoding: .utf8)
        let added = try await purser(["mcp", "add", "fetch", "--manifest", home + "/fetch.yaml", "--", Self.fetch, "--ignore-robots-txt", "--allow-private-ips"])
        try #require(added.status == 0, "\(added.stderr)")
        func job(_ name: String, _ routine: String) throws -> String {
            let path = home + "/\(name).yaml"
            try """
            team: { name: t, budget: { credits: 10, workers: 2, tools: [site] } }
            swarm: { name: \(name), gateway: gateway.yaml, reservation: { credits: 3, tools: [site] } }
            routines:
              - \(routine)
            """.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let page = "{ name: page, plugin: fetch.fetch, input: { url: \"\(server.baseURL)/ok\" }, estimate: { credits: 1, time: 60s }"
        let ran = try await purser(["run", try job("given", page + ", tools: [site], egress: [site] }")])
        #expect(ran.status == 0, "\(ran.stdout) \(ran.stderr)")
        #expect(server.requests().contains { $0.path == "/ok" })
        let team = try JSONParser.parse(Array(try await purser(["team", "show", "t", "--json"]).stdout.utf8))
        #expect(team.arrayValue?.first?["consumed"]?["credits"] == 0.1, "\(team)")

        // Without egress the tool has no way out: its fetch fails, and nothing reaches the server.
        let before = server.requests().count
        let none = try await purser(["run", try job("none", page + ", tools: [site] }")])
        #expect(none.status != 0, "\(none.stdout)")
        #expect(server.requests().count == before)

        let unheld = try await purser(["run", try job("unheld", page + ", egress: [site] }")])
        #expect(unheld.status == 2 && unheld.stderr.contains("unheld.yaml:4") && unheld.stderr.contains("site is not among the routine's tools"), "\(unheld.stderr)")
        let unknown = try await purser(["run", try job("unknown", page + ", tools: [site, nowhere], egress: [nowhere] }")])
        #expect(
            unknown.status == 2 && unknown.stderr.contains("unknown.yaml:4: routines.page.egress: no gateway integration named nowhere"),
            "\(unknown.stderr)")
        let runs = try await purser(["runs"])
        #expect(!runs.stdout.contains("unheld") && !runs.stdout.contains("unknown"), "nothing was reserved: \(runs.stdout)")
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
