import Foundation
import PurserConfig
import PurserGateway
import PurserLedger
import PurserProtocol
import PurserRuntime
import PurserTestSupport
import Testing

/// The gateway as workers meet it: the `fetch` plugin calling through `purser exec`
/// and the runtime, with the ledger keeping score.
@Suite("Gateway through runs", .serialized, .timeLimit(.minutes(3)))
struct GatewayRunTests {
    let server: HTTPTestServer
    let home: String

    init() async throws {
        server = try await HTTPTestServer.start()
        home = Fixtures.temporaryHome()
    }

    /// A config file for `purser exec --gateway`, with the secret taken from the environment.
    func configFile(_ extra: String = "") throws -> String {
        let path = home + "/gateway.yaml"
        try """
            integrations:
              api:
                baseURL: \(server.baseURL)/
                auth: { header: Authorization, value: "Bearer ${env:API_TOKEN}" }
            \(extra)
              keyed:
                baseURL: \(server.baseURL)/
                auth: { query: api_key, value: "${env:API_TOKEN}" }
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func purser(_ arguments: [String]) async throws -> CommandResult {
        try await runPurser(arguments, home: home, extra: ["API_TOKEN": secretToken])
    }

    func fetch(_ input: String, credits: String = "100", tools: String = "api,keyed", config: String) async throws -> CommandResult {
        try await purser([
            "exec", Fixtures.product("fetch"), "--gateway", config, "--tools", tools, "--credits", credits, "--json",
            "--input", input,
        ])
    }

    @Test func aWorkerWithTenCreditsGetsThreeCallsAtThreeEach() async throws {
        let config = try configFile("    cost: { perRequest: 3 }")
        let run = try await fetch(#"{"integration":"api","path":"/ok","repeat":4}"#, credits: "10", config: config)
        #expect(run.status == 0, "\(run.stderr)")
        let report = try JSONParser.parse(run.stdout)
        let calls = report["output"]?["calls"]?.arrayValue ?? []
        #expect(calls.map { $0["reason"]?.stringValue } == [nil, nil, nil, "budget_exhausted"])
        #expect(report["usage"]?["credits"] == 9)
        #expect(report["returned"]?["credits"] == 1)
        let node = try #require(report["ledgerNode"]?.numberValue?.int64)
        let store = try SQLiteLedger(path: home + "/purser.db")
        let audit = try store.audit(node: node, team: nil)
        #expect(audit.filter { $0.kind == "gateway_call" }.count == 4, "every call is audited, the refused one too")
        #expect(audit.filter { $0.kind == "gateway_call" }.map(\.amounts.credits).reduce(0, +) == 9_000_000)
        #expect(try store.node(node).consumed.credits == 9_000_000)
        #expect(try store.verify().isEmpty)
    }

    /// A worker that echoes everything the gateway gives it, against routes that echo the
    /// request back, sees no secret; neither do the report, stderr, the audit trail or the
    /// status the gateway saves.
    @Test func theCredentialNeverReachesTheWorkerOrTheRecords() async throws {
        let config = try configFile()
        var seen: [String] = []
        for input in [
            #"{"integration":"api","path":"/echo","headers":{"X-Request-Id":"1"}}"#,
            #"{"integration":"keyed","path":"/echo"}"#,
            #"{"integration":"keyed","path":"/redirect","query":{"to":"/echo"}}"#,
            #"{"integration":"api","path":"/status/500"}"#,
            #"{"integration":"api","path":"/echo","headers":{"Authorization":"mine"}}"#,
        ] {
            let run = try await fetch(input, config: config)
            #expect(run.status == 0, "\(run.stderr)")
            seen += [run.stdout, run.stderr]
        }
        let logged = server.requests()
        #expect(logged.contains { $0.header("Authorization") == "Bearer \(secretToken)" }, "the upstream got the credential")
        #expect(logged.contains { $0.path.contains("api_key=\(secretToken)") })
        #expect(seen.joined().contains("[redacted]"))
        seen.append(try await purser(["ledger", "audit", "--json"]).stdout)
        seen.append(try await purser(["gateway", "status", "--json"]).stdout)
        for text in seen { #expect(!text.contains(secretToken)) }
        let database = try Data(contentsOf: URL(fileURLWithPath: home + "/purser.db"))
        #expect(database.range(of: Data(secretToken.utf8)) == nil, "the store holds the secret")
    }

    @Test func sixteenWorkersAtOnceLoseNoCall() async throws {
        let config = try gatewayConfig("""
            integrations:
              api:
                baseURL: \(server.baseURL)/
                cost: { perRequest: 0.5 }
            """)
        var runtime = try Runtime.withLedger(home: home)
        runtime.gateway = try runtime.makeGateway(config: config)
        let frozen = runtime
        let reports = try await withThrowingTaskGroup(of: RunReport.self) { group in
            for _ in 0..<16 {
                group.addTask {
                    var request = Fixtures.run(Fixtures.product("fetch"), input: ["integration": "api", "path": "/hello", "repeat": 20], credits: 100)
                    request.tools = ["api"]
                    return try await frozen.exec(request)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(reports.allSatisfy { $0.verdict == .ok })
        let statuses = reports.flatMap { $0.output?["calls"]?.arrayValue ?? [] }.map { $0["status"]?.numberValue?.int64 }
        #expect(statuses.count == 320 && statuses.allSatisfy { $0 == 200 })
        #expect(server.requests().count == 320)
        let store = try #require(runtime.ledger?.store)
        let events = try store.audit(node: nil, team: nil).filter { $0.kind == "gateway_call" }
        #expect(events.count == 320)
        #expect(events.map(\.amounts.credits).reduce(0, +) == 160_000_000)
        #expect(reports.map(\.usage.credits.micros).reduce(0, +) == 160_000_000)
        #expect(try store.verify().isEmpty)
    }

    /// A runtime with a gateway: its workers' stdout is read on the HTTP engine's thread.
    func gatewayRuntime() throws -> Runtime {
        var runtime = try Runtime.withLedger(home: home)
        runtime.gateway = try runtime.makeGateway(config: try apiConfig(server))
        return runtime
    }

    /// The reading moved to the engine's thread must cut a flood as the session's own did.
    @Test(arguments: ["flood", "bigline"])
    func floodsFromAWorkerThatMayCallAreProtocolViolations(mode: String) async throws {
        let report = try await gatewayRuntime().exec(Fixtures.hostile(mode, timeMs: 120_000))
        #expect(report.verdict == .protocolViolation)
        #expect(report.exit?.signal == SIGKILL)
    }

    /// A run of a shell worker that answers `initialize`, reads its `run`, then does what
    /// `afterRun` says; it may use the tool `api`.
    func shellWorkerRun(_ name: String, afterRun: String) throws -> RunRequest {
        let script = home + "/\(name).sh"
        try """
            #!/bin/sh
            read -r init
            echo '{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1,"plugin":{"name":"\(name)","version":"1"},"capabilities":{}}}'
            read -r run
            \(afterRun)
            """.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        var request = Fixtures.run(script, input: .null)
        request.tools = ["api"]
        return request
    }

    /// A call written after the run's answer, in the same write, is refused as the run has
    /// answered: the engine's thread takes a call only when no earlier line still waits.
    @Test func aCallWrittenAfterTheAnswerIsRefused() async throws {
        let request = try shellWorkerRun("late", afterRun: """
            printf '%s\\n%s\\n' '{"jsonrpc":"2.0","id":2,"result":{"output":"done"}}' \\
                '{"jsonrpc":"2.0","id":"late","method":"gateway/call","params":{"integration":"api","path":"/late"}}'
            while read -r line; do
                case "$line" in *'"late"'*) echo "$line" >&2 ;; *shutdown*) exit 0 ;; esac
            done
            """)
        let runtime = try gatewayRuntime()
        // A race lost would show only sometimes: eight tries.
        for _ in 0..<8 {
            let report = try await runtime.exec(request)
            #expect(report.verdict == .ok, "\(report.message ?? "") \(report.stderrTail)")
            #expect(report.output == "done")
        }
        #expect(!server.requests().contains { $0.path.hasPrefix("/late") }, "a late call reached the upstream")
    }

    /// A worker that writes a call and exits at once: the supervisor takes the pipe back
    /// from the engine's thread, reads what is left, and reports the run, every time.
    @Test func aWorkerThatCallsAndExitsAtOnceIsReported() async throws {
        let request = try shellWorkerRun("gone", afterRun: """
            echo '{"jsonrpc":"2.0","id":"c1","method":"gateway/call","params":{"integration":"api","path":"/hello"}}'
            """)
        let runtime = try gatewayRuntime()
        for _ in 0..<8 {
            let report = try await runtime.exec(request)
            #expect(report.verdict == .crashed, "\(report.verdict) \(report.message ?? "")")
            #expect(report.message?.contains("without answering the run") == true, "\(report.message ?? "")")
        }
        #expect(try runtime.ledger?.store.verify().isEmpty == true)
    }

    /// A trusted worker kept between a swarm's runs is charged for each call by the run that
    /// made it, not by the run that started the worker.
    @Test func aKeptWorkersCallsAreChargedToTheRunThatMadeThem() async throws {
        var runtime = try Runtime.withLedger(home: home)
        runtime.gateway = try runtime.makeGateway(config: try apiConfig(server, "cost: { perRequest: 3 }"))
        var manifest = PluginManifest()
        manifest.trusted = true
        _ = try await PluginRegistry(runtime: runtime).add(path: Fixtures.product("fetch"), name: "fetch-kept", manifest: manifest)
        var yaml = """
            team: { name: t, budget: { credits: 1000, memory: 8GiB, tools: [api] } }
            swarm: { name: s, reservation: { credits: 100, time: 1h, memory: 2GiB, tools: [api] }, concurrency: 1 }
            routines:

            """
        for calls in 1...3 {
            yaml += "  - { name: r\(calls), plugin: fetch-kept, tools: [api], input: { integration: api, path: /ok, repeat: \(calls) }, "
                + "estimate: { credits: 20, time: 20s, memory: 256MiB }\(calls == 1 ? "" : ", after: [r\(calls - 1)]") }\n"
        }
        let path = home + "/job.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let report = try await SwarmRunner(runtime: runtime, job: JobFile.load(path: path)).run()
        #expect(report.allOK, "\(report.routines.map { "\($0.name) \($0.verdict) \($0.message ?? "")" })")
        #expect(report.routines.map { $0.report?.workerRun } == [1, 2, 3])
        #expect(report.routines.map { $0.report?.usage.gatewayCredits } == [3, 6, 9].map { Credits(whole: $0) })
        let store = runtime.ledger!.store
        #expect(try store.tree(team: "t").filter { $0.kind == .routine }.map(\.consumed.credits) == [3_000_000, 6_000_000, 9_000_000])
        #expect(try store.verify().isEmpty)
    }

    /// A sandboxed worker asks for every shape of answer that could carry the credential
    /// past the scrubber: compressed, partial, in another charset, escaped, reflected. What
    /// it got, undone every way it could, holds no credential.
    @Test func aWorkerThatAsksForCompressedPartialOrReEncodedAnswersGetsNoCredential() async throws {
        var calls = [
            #"{"integration":"api","path":"/echo","headers":{"Accept-Encoding":"gzip"}}"#,
            #"{"integration":"api","path":"/echo","query":{"ce":"gzip,gzip"}}"#,
            #"{"integration":"api","path":"/echo","query":{"ce":"rot13"}}"#,
            #"{"integration":"api","path":"/echo","headers":{"Accept-Charset":"utf-16"}}"#,
            #"{"integration":"api","path":"/echo","query":{"charset":"utf-16-be"}}"#,
            #"{"integration":"api","path":"/echo","query":{"reflect":"1"}}"#,
        ]
        calls += stride(from: 0, to: 800, by: 50).map {
            #"{"integration":"api","path":"/echo","headers":{"Range":"bytes=\#($0)-\#($0 + 49)"}}"#
        }
        let report = try await gatewayRuntime().exec(
            Fixtures.hostile("gatewaysteal", environment: ["HOSTILE_CALLS": calls.joined(separator: "\n")]).withTools(["api"]))
        #expect(report.verdict == .ok, "\(report.message ?? "") \(report.stderrTail)")
        let answers = try #require(report.output?.arrayValue)
        #expect(answers.count == calls.count)
        var pieces: [[UInt8]] = []
        for answer in answers {
            if let body = answer["body"]?.stringValue {
                pieces.append(answer["bodyEncoding"] == "base64" ? Base64Text.decode(body) ?? [] : Array(body.utf8))
            }
            for (name, value) in answer["headers"]?.objectValue ?? [:] { pieces.append(Array("\(name): \(value.stringValue ?? "")".utf8)) }
            if let message = answer["message"]?.stringValue { pieces.append(Array(message.utf8)) }
        }
        let found = try await revealed([secretToken], in: pieces)
        #expect(found.isEmpty, "the worker recovers the credential: \(found)")
        #expect(server.requests().contains { $0.header("Authorization") == "Bearer \(secretToken)" })
    }

    /// Runs of two teams share a supervisor and its cache: the second team's call goes
    /// upstream, its own second call is a hit.
    @Test func aTeamsCachedAnswersAreNotAnotherTeams() async throws {
        var runtime = try Runtime.withLedger(home: home)
        runtime.gateway = try runtime.makeGateway(config: try apiConfig(server, "cache: { ttl: 1m }"))
        let store = try #require(runtime.ledger?.store)
        for team in ["a", "b"] {
            let caps = Resources(credits: 1_000_000_000, timeMs: 3_600_000, memoryBytes: 8 << 30)
            _ = try store.createTeam(TeamSpec(name: team, caps: caps, tools: ["api"]))
        }
        var cached: [String: [Bool]] = [:]
        for team in ["a", "b", "b"] {
            var request = Fixtures.run(Fixtures.product("fetch"), input: ["integration": "api", "path": "/count"], credits: 10)
            request.tools = ["api"]
            request.team = team
            let report = try await runtime.exec(request)
            #expect(report.verdict == .ok, "\(report.message ?? "")")
            cached[team, default: []].append(report.output?["cached"]?.boolValue ?? true)
        }
        #expect(cached == ["a": [false], "b": [false, true]])
        #expect(server.requests().count == 2)
    }

    @Test func checkNamesTheBadFieldAndStatusShowsTheIntegrations() async throws {
        let bad = home + "/bad.yaml"
        try "integrations:\n  api:\n    baseURL: http://example.com/\n    rateLimit: { rate: 10/s, burst: 0 }\n"
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let checked = try await purser(["gateway", "check", bad])
        #expect(checked.status == 2)
        #expect(checked.stderr.contains("bad.yaml:4: integrations.api.rateLimit.burst:"), "\(checked.stderr)")
        let good = try configFile("    rateLimit: { rate: 5/s, burst: 2 }\n    quotas: [{ per: day, requests: 100 }]")
        #expect(try await purser(["gateway", "check", good]).status == 0)
        let run = try await fetch(#"{"integration":"api","path":"/ok","repeat":3}"#, config: good)
        #expect(run.status == 0)
        let status = try JSONParser.parse(try await purser(["gateway", "status", "--json"]).stdout)
        let api = try #require(status.arrayValue?.first { $0["name"] == "api" })
        #expect(api["calls"] == 3)
        #expect(api["refused"]?["rate_limited"] == 1, "a burst of 2 at 5/s admits 2 of 3 at once")
        #expect(api["quotas"]?[0]?["usedRequests"] == 2)
        #expect(api["breaker"] == "closed")
    }
}

extension RunRequest {
    fileprivate func withTools(_ tools: [String]) -> RunRequest {
        var request = self
        request.tools = tools
        return request
    }
}

extension JSONValue {
    fileprivate subscript(index: Int) -> JSONValue? {
        guard let items = arrayValue, items.indices.contains(index) else { return nil }
        return items[index]
    }
}
