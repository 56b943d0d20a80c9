import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

/// HTTPS through the egress proxy: a tool in the sandbox (Tests/Fixtures/mcp-https/client.py,
/// Python's urllib) reaches a real TLS server on 127.0.0.1 through a CONNECT tunnel the
/// gateway admits and meters, trusting only the server's self-signed certificate.
@Suite("HTTPS tunnels through the egress proxy", .timeLimit(.minutes(3)))
struct EgressTunnelTests {
    let home = Fixtures.temporaryHome()
    let client = Fixtures.file("Tests/Fixtures/mcp-https/client.py")

    /// One run of a tool: its answer (the tool's JSON text), its credits, its gateway lines.
    struct Ran {
        var answer: JSONValue
        var credits: String
        var gateway: [String]
        var result: CommandResult

        /// `key=value` of the only gateway line.
        func field(_ key: String) -> String? {
            guard gateway.count == 1 else { return nil }
            let part = gateway[0].split(separator: " ").first { $0.hasPrefix(key + "=") }
            return part.map { String($0.dropFirst(key.count + 1)) }
        }

        /// Bytes up and down the tunnel, from its gateway line.
        var tunnelBytes: Int64? {
            guard let up = field("up").flatMap({ Int64($0.dropLast()) }), let down = field("down").flatMap({ Int64($0.dropLast()) }) else {
                return nil
            }
            return up + down
        }
    }

    func purser(_ arguments: [String]) async throws -> CommandResult { try await runPurser(arguments, home: home) }

    /// Writes the gateway config (`integrations`, YAML lines) and registers the client with `egress`.
    func setUp(_ integrations: String, egress: String) async throws -> String {
        let gateway = home + "/gateway.yaml"
        try "integrations:\n\(integrations)\n".write(toFile: gateway, atomically: true, encoding: .utf8)
        try "egress: [\(egress)]\nmcp: { startupTimeout: 30s }\n".write(toFile: home + "/https.yaml", atomically: true, encoding: .utf8)
        let added = try await purser(["mcp", "add", "https", "--manifest", home + "/https.yaml", "--", client])
        try #require(added.status == 0, "\(added.stderr)")
        return gateway
    }

    func run(_ tool: String, _ arguments: JSONValue, gateway: String, credits: String = "5", time: String = "60s") async throws -> Ran {
        let result = try await purser([
            "exec", "https.\(tool)", "--input", arguments.serialized(), "--gateway", gateway, "--credits", credits, "--time", time,
        ])
        let lines = result.stdout.split(separator: "\n")
        let output = lines.first { $0.hasPrefix("output: ") }.map { String($0.dropFirst(8)) } ?? "null"
        let text = try JSONParser.parse(Array(output.utf8))["content"]?.arrayValue?.first?["text"]?.stringValue ?? "null"
        let usage = lines.first { $0.hasPrefix("usage: credits ") }?.dropFirst(15).prefix { $0 != "," } ?? ""
        let gateway = result.stderr.split(separator: "\n").filter { $0.hasPrefix("[gateway] ") }.map(String.init)
        return Ran(answer: try JSONParser.parse(Array(text.utf8)), credits: String(usage), gateway: gateway, result: result)
    }

    /// `perConnection` + `perMiB` per MiB (micro-credits), rounded up to the micro-credit.
    static func charge(perConnection: Int64, perMiB: Int64, bytes: Int64) -> String {
        "\(Credits(micros: perConnection + (perMiB * bytes + (1 << 20) - 1) / (1 << 20)))"
    }

    @Test("the page comes back through a tunnel, charged per connection and per byte; other targets get the proxy's 403 with the reason")
    func pageThroughATunnel() async throws {
        let certificate = try await TestCertificate.make()
        let server = try await HTTPTestServer.start(tls: certificate)
        defer { server.stop() }
        let other = try await HTTPTestServer.start(tls: certificate)
        defer { other.stop() }
        let gateway = try await setUp("""
              site:
                baseURL: \(server.baseURL)/
                tunnel: { perConnection: 0.5, perMiB: 2 }
              plain:
                baseURL: https://localhost:\(other.port)/
            """, egress: "site, plain")

        let page = try await run("get", ["url": .string(server.baseURL + "/ok"), "ca": .string(certificate.pem)], gateway: gateway)
        #expect(page.answer["status"] == 200 && page.answer["head"]?.stringValue?.contains(#""ok":true"#) == true, "\(page.result)")
        #expect(server.requests().contains { $0.path == "/ok" })
        #expect(page.gateway.count == 1 && page.gateway.first?.contains("CONNECT 127.0.0.1:\(server.port) status=200") == true, "\(page.gateway)")
        #expect(page.field("ended") == "closed", "\(page.gateway)")
        let bytes = try #require(page.tunnelBytes, "\(page.gateway)")
        #expect(bytes > 1000, "a TLS handshake and a page went through")
        #expect(page.field("credits") == Self.charge(perConnection: 500_000, perMiB: 2_000_000, bytes: bytes), "\(page.gateway)")
        #expect(page.credits == page.field("credits"), "the run is charged what the tunnel cost: \(page.result.stdout)")

        let refusals = [
            ("127.0.0.1:\(other.port)", "no integration of this run's egress (site, plain) has the base https://127.0.0.1:\(other.port)"),
            ("localhost:\(other.port)", "plain offers no HTTPS tunnels (its gateway config has no tunnel:)"),
            ("127.1:\(server.port)", "no integration of this run's egress (site, plain) has the base https://127.1:\(server.port)"),
        ]
        for (target, reason) in refusals {
            let refused = try await run("connect", ["target": .string(target)], gateway: gateway)
            let answer = refused.answer["answer"]?.stringValue ?? ""
            #expect(answer.hasPrefix("HTTP/1.1 403 ") && answer.contains("permission_denied: " + reason), "\(target): \(refused.result)")
            #expect(refused.credits == "0", "\(target): \(refused.result.stdout)")
        }
        #expect(other.requests().isEmpty, "nothing reached the server outside the tunnels")
    }

    @Test("the byte cap cuts a large download, and so does the run's reservation")
    func capsEndTheTunnel() async throws {
        let certificate = try await TestCertificate.make()
        let server = try await HTTPTestServer.start(tls: certificate)
        defer { server.stop() }
        let big: JSONValue = ["url": .string(server.baseURL + "/big?mb=4"), "ca": .string(certificate.pem)]
        let capped = try await setUp("""
              site:
                baseURL: \(server.baseURL)
                tunnel: { maxBytes: 256KiB }
            """, egress: "site")
        let cut = try await run("get", big, gateway: capped)
        #expect(cut.answer["error"] != nil && (cut.answer["bytes"]?.numberValue?.int64 ?? .max) < 256 << 10, "\(cut.result)")
        #expect(cut.field("ended") == "byte_cap" && cut.tunnelBytes == 256 << 10, "\(cut.gateway)")
        #expect(cut.credits == "0")

        // 8 credits a MiB: the run's 1 credit pays for 128 KiB, held 64 KiB at a time.
        try """
        integrations:
          site:
            baseURL: \(server.baseURL)
            tunnel: { perMiB: 8 }
        """.write(toFile: capped, atomically: true, encoding: .utf8)
        let poor = try await run("get", big, gateway: capped, credits: "1")
        #expect(poor.answer["error"] != nil, "\(poor.result)")
        #expect(poor.field("ended") == "credits" && poor.tunnelBytes == 128 << 10, "\(poor.gateway)")
        #expect(poor.credits == "1" && poor.field("credits") == "1", "\(poor.result.stdout)")
    }

    @Test("a tunnel waiting on a slow answer ends with its run, not at its idle timeout")
    func endsWithTheRun() async throws {
        let certificate = try await TestCertificate.make()
        let server = try await HTTPTestServer.start(tls: certificate)
        defer { server.stop() }
        let gateway = try await setUp("""
              site:
                baseURL: \(server.baseURL)
                tunnel: { idleTimeout: 1h }
            """, egress: "site")
        // Were it not ended, the run would wait 150 s for the answer, and the tunnel end `closed`.
        let slow = try await run(
            "get", ["url": .string(server.baseURL + "/slow?ms=150000"), "ca": .string(certificate.pem)], gateway: gateway, time: "3s")
        #expect(slow.result.stdout.contains("verdict: timeout"), "\(slow.result)")
        #expect(slow.field("ended") == "deadline" || slow.field("ended") == "run_ended", "\(slow.gateway)")
    }

    /// Requests a hostile tool crafts byte by byte: each is answered as the proxy's allow-lists
    /// say, and nothing but the allowed requests reaches a server.
    @Test("smuggling, header tricks and target tricks get the proxy's refusal; only allowed requests go out")
    func hostileRequests() async throws {
        let server = try await HTTPTestServer.start()
        defer { server.stop() }
        let upstream = try await HTTPTestServer.start()
        defer { upstream.stop() }
        let other = try await HTTPTestServer.start()
        defer { other.stop() }
        let (p, u, o) = (server.port, upstream.port, other.port)
        let gateway = try await setUp("""
              site:
                baseURL: http://127.0.0.1:\(p)/api
                methods: [GET, POST]
              secure:
                baseURL: https://127.0.0.1:\(u)/
                tunnel: {}
              v6:
                baseURL: http://[::1]:9/
            """, egress: "site, secure, v6")
        let get = "GET http://127.0.0.1:\(p)/api/ok HTTP/1.1\r\n"
        let attacks: [(String, String)] = [
            (get + "Host: 127.0.0.1:\(o)\r\n\r\n", "404"),  // the URL decides, not Host: upstream's 404 for /api/ok
            ("GET http://127.0.0.1:\(o)/ok HTTP/1.1\r\n\r\n", "403"),
            ("GET http://127.0.0.1:\(p)@127.0.0.1:\(o)/ok HTTP/1.1\r\n\r\n", "400"),
            ("GET http://127.0.0.1:\(p)/api/../secret HTTP/1.1\r\n\r\n", "400"),
            ("GET http://127.0.0.1:\(p)/api/%2e%2e/secret HTTP/1.1\r\n\r\n", "400"),
            ("GET http://127.0.0.1:\(p)/apisecret HTTP/1.1\r\n\r\n", "403"),
            ("GET /api/ok HTTP/1.1\r\nHost: 127.0.0.1:\(p)\r\n\r\n", "400"),
            ("GET http://127.0.0.1.:\(p)/api/ok HTTP/1.1\r\n\r\n", "403"),
            ("GET http://127.1:\(p)/api/ok HTTP/1.1\r\n\r\n", "403"),
            ("GET http://[::ffff:127.0.0.1]:\(p)/api/ok HTTP/1.1\r\n\r\n", "403"),
            // An IPv6 literal base is reached (nothing listens on its port 9: the gateway's 502).
            ("GET http://[::1]:9/x HTTP/1.1\r\n\r\n", "502"),
            ("GET http://[::1]:80/x HTTP/1.1\r\n\r\n", "403"),
            ("get http://127.0.0.1:\(p)/api/ok HTTP/1.1\r\n\r\n", "400"),
            ("GET http://127.0.0.1:\(u)/ok HTTP/1.1\r\n\r\n", "403"),  // the https integration, not as plain http
            ("POST http://127.0.0.1:\(p)/api/big HTTP/1.1\r\nContent-Length: \((8 << 20) + 1)\r\n\r\n", "413"),
            ("POST http://127.0.0.1:\(p)/api/neg HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "400"),
            // Refused with its body still coming: the refusal must reach the client, not a reset.
            ("POST http://127.0.0.1:\(p)/api/big HTTP/1.1\r\nContent-Length: \((8 << 20) + 1)\r\n\r\n" + String(repeating: "x", count: 32 << 10), "413"),
            ("POST http://127.0.0.1:\(p)/api/te HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", "411"),
            (get + "X-A: a\r\n b\r\n\r\n", "400"),
            (get + "X-A: a\nHost: evil\r\n\r\n", "400"),
            (get + "X-A: a\rb\r\n\r\n", "400"),
            (get + "X-A: a\u{0}b\r\n\r\n", "400"),
            // Exactly the head limit, all read, never ended.
            (get + "X-A: " + String(repeating: "a", count: (64 << 10) - get.utf8.count - 5), "431"),
            ("GET http://127.0.0.1:\(p)/api/one HTTP/1.1\r\n\r\nGET http://127.0.0.1:\(p)/api/two HTTP/1.1\r\n\r\n", "404"),
            ("CONNECT 127.0.0.1:\(u)  HTTP/1.1\r\n\r\n", "400"),
            ("CONNECT 127.0.0.1:\(u)/x HTTP/1.1\r\n\r\n", "400"),
            ("CONNECT 127.0.0.1.:\(u) HTTP/1.1\r\n\r\n", "403"),
            ("CONNECT 0x7f.1:\(u) HTTP/1.1\r\n\r\n", "403"),
            ("CONNECT [::ffff:127.0.0.1]:\(u) HTTP/1.1\r\n\r\n", "403"),
            ("CONNECT 127.0.0.1:\(p) HTTP/1.1\r\n\r\n", "403"),
            // Bytes pipelined with the CONNECT head are the tunnel's first, sent to the integration's host.
            ("CONNECT 127.0.0.1:\(u) HTTP/1.1\r\n\r\nGET /piped HTTP/1.1\r\nHost: u\r\nConnection: close\r\n\r\n", "200"),
        ]
        let ran = try await run("raw", ["requests": .array(attacks.map { .string($0.0) })], gateway: gateway)
        let answers = ran.answer["answers"]?.arrayValue?.map { $0.stringValue ?? "" } ?? []
        try #require(answers.count == attacks.count, "\(ran.result)")
        for ((request, status), answer) in zip(attacks, answers) {
            #expect(answer.hasPrefix("HTTP/1.1 \(status) "), "\(request.prefix(120).debugDescription): \(answer.prefix(300))")
        }
        #expect(answers.last?.contains("404 Not Found") == true, "the upstream's own answer came back: \(answers.last ?? "")")
        #expect(upstream.requests().map(\.path) == ["/piped"])
        #expect(server.requests().map(\.path).sorted() == ["/api/ok", "/api/one"], "\(server.requests().map(\.path))")
        #expect(other.requests().isEmpty)
        // The worker is told why; the supervisor's log gets no line per refusal a worker can repeat at will.
        #expect(!ran.result.stderr.contains("was refused"), "\(ran.result.stderr)")

        // Sixteen connections saying nothing fill the proxy: the seventeenth is turned away at once.
        let full = try await run("raw", ["requests": [.string(get + "\r\n")], "idle": 16], gateway: gateway)
        let turnedAway = full.answer["answers"]?.arrayValue?.first?.stringValue ?? ""
        #expect(turnedAway.hasPrefix("HTTP/1.1 503 ") && turnedAway.contains("more than 16 connections at once"), "\(full.result)")
    }

    @Test("a tunnel left idle ends at its idle timeout, charged its connection: bytes after that go nowhere")
    func anIdleTunnelEnds() async throws {
        let server = try await HTTPTestServer.start()
        defer { server.stop() }
        let gateway = try await setUp("""
              site:
                baseURL: https://127.0.0.1:\(server.port)/
                tunnel: { perConnection: 0.25, idleTimeout: 1s }
            """, egress: "site")
        let idle = try await run("hold", ["target": .string("127.0.0.1:\(server.port)"), "waitMs": 3000, "path": "/late"], gateway: gateway)
        #expect(idle.answer["answer"]?.stringValue?.hasPrefix("HTTP/1.1 200 Connection established") == true, "\(idle.result)")
        #expect(idle.field("ended") == "idle" && idle.tunnelBytes == 0, "\(idle.gateway)")
        #expect(idle.credits == "0.25", "\(idle.result.stdout)")
        #expect(!server.requests().contains { $0.path == "/late" })
    }

    /// A kept untrusted worker answers a run with a tunnel still open: the tunnel ends with
    /// that run, so the next run on the same worker (or the worker idle between runs) cannot
    /// pass bytes through it on the first run's account. A run with other egress gets a
    /// worker of its own: a kept worker's proxy serves the egress it was started with.
    @Test("a kept worker's tunnel ends with the run that opened it, not in the next run on that worker")
    func aKeptWorkersTunnelEndsWithItsRun() async throws {
        // A plain HTTP upstream behind an https:// base: what passes through the tunnel shows in its log.
        let server = try await HTTPTestServer.start()
        defer { server.stop() }
        let gateway = home + "/gateway.yaml"
        try "integrations:\n  site:\n    baseURL: https://127.0.0.1:\(server.port)/\n    tunnel: { idleTimeout: 1h }\n"
            .write(toFile: gateway, atomically: true, encoding: .utf8)
        try "egress: [site]\nreuseUntrusted: true\nmcp: { startupTimeout: 30s }\n".write(toFile: home + "/https.yaml", atomically: true, encoding: .utf8)
        let added = try await purser(["mcp", "add", "https", "--manifest", home + "/https.yaml", "--", client])
        try #require(added.status == 0, "\(added.stderr)")
        #expect(try await purser(["team", "create", "open", "--credits", "10", "--tools", "site", "--reuse-untrusted"]).status == 0)
        // `a` opens a tunnel and answers; `b`, started once `pause` ends, runs on a's kept worker.
        let tool = "estimate: { credits: 1, time: 40s }, tools: [site]"
        try """
        team: { name: open, budget: { credits: 10, tools: [site] } }
        swarm: { name: kept, reservation: { credits: 5, tools: [site] }, concurrency: 2, gateway: \(gateway) }
        routines:
          - { name: a, plugin: https.hold, input: { target: "127.0.0.1:\(server.port)" }, \(tool) }
          - { name: pause, plugin: \(Fixtures.product("scripted")), input: { sleepMs: 12000 }, estimate: { credits: 1, time: 40s, memory: 256MiB } }
          - { name: b, plugin: https.probe, input: { path: /from-b }, \(tool), after: [pause] }
          - { name: c, plugin: https.probe, input: { path: /from-c }, \(tool), egress: [], after: [b] }
        """.write(toFile: home + "/kept.yaml", atomically: true, encoding: .utf8)
        let ran = try await purser(["run", home + "/kept.yaml", "--json", "--events", home + "/events.ndjson"])
        #expect(ran.status == 0, "\(ran.stderr)")
        let routines = try JSONParser.parse(Array(ran.stdout.utf8))["routines"]?.arrayValue ?? []
        let named = Dictionary(routines.compactMap { routine in routine["name"]?.stringValue.map { ($0, routine) } }) { first, _ in first }
        #expect(named["a"]?["output"]?.serialized().contains("200 Connection established") == true, "\(ran.stdout)")
        try #require(named["b"]?["worker"]?["run"] == 2, "b ran on a's kept worker: \(ran.stdout)")
        #expect(named["c"]?["worker"]?["run"] == 1, "c, without egress, is not sent to a worker whose proxy has it: \(ran.stdout)")
        #expect(!server.requests().contains { $0.path == "/from-b" }, "run b passed bytes through run a's tunnel")
        let events = try String(contentsOfFile: home + "/events.ndjson", encoding: .utf8)
        let tunnel = events.split(separator: "\n").first { $0.contains(#""ended""#) } ?? ""
        #expect(tunnel.contains(#""ended":"run_ended""#), "\(events)")
    }

    @Test("mcp-server-fetch, unmodified, fetches an https page through a tunnel, trusting the certificate SSL_CERT_FILE names")
    func fetchServerOverHTTPS() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: EgressTests.fetch), "run .ci/setup")
        let certificate = try await TestCertificate.make(under: "/var/tmp")
        let server = try await HTTPTestServer.start(tls: certificate)
        defer { server.stop() }
        let gateway = home + "/gateway.yaml"
        try "integrations:\n  site:\n    baseURL: \(server.baseURL)/\n    tunnel: { perConnection: 0.25 }\n"
            .write(toFile: gateway, atomically: true, encoding: .utf8)
        try "egress: [site]\nmcp: { startupTimeout: 30s }\n".write(toFile: home + "/fetch.yaml", atomically: true, encoding: .utf8)
        let added = try await purser(["mcp", "add", "fetch", "--manifest", home + "/fetch.yaml", "--", EgressTests.fetch, "--ignore-robots-txt", "--allow-private-ips"])
        try #require(added.status == 0, "\(added.stderr)")
        let page = try await purser([
            "exec", "fetch.fetch", "--input", #"{"url":"\#(server.baseURL)/ok"}"#, "--gateway", gateway, "--credits", "1",
            "--env", "SSL_CERT_FILE=" + certificate.certificatePath, "--read-only", certificate.directory,
        ])
        #expect(page.stdout.contains("verdict: ok") && page.stdout.contains(#"{\"ok\":true"#), "\(page)")
        #expect(page.stdout.contains("usage: credits 0.25,"), "\(page.stdout)")
        #expect(page.stderr.contains("[gateway] integration=site CONNECT 127.0.0.1:\(server.port) status=200"), "\(page.stderr)")
        #expect(server.requests().contains { $0.path == "/ok" })
    }
}
