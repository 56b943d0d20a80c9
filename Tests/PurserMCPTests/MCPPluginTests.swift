import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

/// `purser mcp add` and `NAME.TOOL` with a real server (mcp-server-time, installed by .ci/setup).
@Suite("MCP servers as plugins", .timeLimit(.minutes(3)))
struct MCPPluginTests {
    let home = Fixtures.temporaryHome()

    func purser(_ arguments: [String]) async throws -> CommandResult { try await runPurser(arguments, home: home) }

    /// Registers mcp-server-time with prices: 0.5 a call of get_current_time; the others
    /// 0.25 a call and 0.01 a KiB of result.
    func addTime() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: MCPBridgeLiveTests.server), "run .ci/setup")
        try """
        mcp:
          startupTimeout: 30s
          tools: { get_current_time: { credits: 0.5 } }
          default: { credits: 0.25, perKiB: 0.01 }
        """.write(toFile: home + "/time.yaml", atomically: true, encoding: .utf8)
        let added = try await purser(["mcp", "add", "time", "--manifest", home + "/time.yaml", "--", MCPBridgeLiveTests.server])
        try #require(added.status == 0, "\(added.stderr)")
        #expect(added.stdout.contains("time.get_current_time") && added.stdout.contains("time.convert_time"), "\(added.stdout)")
    }

    func runCount() async throws -> Int {
        let runs = try await purser(["runs", "--json"])
        return (try? JSONParser.parse(Array(runs.stdout.utf8)))?.arrayValue?.count ?? -1
    }

    @Test("registered, its tools listed with schemas, and one called through exec in the untrusted sandbox")
    func aToolRunsAsARoutine() async throws {
        try await addTime()
        let tools = try await purser(["mcp", "tools", "time", "--json"])
        let listed = (try? JSONParser.parse(Array(tools.stdout.utf8)))?.arrayValue ?? []
        #expect(listed.count == 2 && listed.allSatisfy { $0["inputSchema"]?["type"] == "object" }, "\(tools.stdout)")
        let ran = try await purser(["exec", "time.get_current_time", "--input", #"{"timezone":"Europe/Paris"}"#, "--json"])
        let report = try JSONParser.parse(Array(ran.stdout.utf8))
        #expect(ran.status == 0 && report["verdict"] == "ok", "\(ran.stdout) \(ran.stderr)")
        #expect(report["output"]?["structuredContent"]?["timezone"] == "Europe/Paris", "\(report)")
        #expect(report["sandbox"]?["level"] == "untrusted", "\(report["sandbox"] ?? .null)")
        // The supervisor charges the manifest's price, not the bridge.
        #expect(report["usage"]?["credits"] == 0.5 && report["usage"]?["toolCredits"] == 0.5, "\(report["usage"] ?? .null)")
        let poor = try await purser(["exec", "time.get_current_time", "--input", #"{"timezone":"UTC"}"#, "--credits", "0.1"])
        #expect(poor.status == 2 && poor.stderr.contains("costs 0.5 credits a call"), "\(poor.stderr)")
        // Adding it again changes nothing.
        let again = try await purser(["mcp", "add", "time", "--manifest", home + "/time.yaml", "--", MCPBridgeLiveTests.server])
        #expect(again.status == 0 && again.stdout.hasPrefix("unchanged"), "\(again.stdout) \(again.stderr)")
    }

    @Test("an input that does not fit the tool's schema is refused before anything is reserved; so is a tool it lacks")
    func badInputsAreRefusedFirst() async throws {
        try await addTime()
        let before = try await runCount()
        let bad = try await purser(["exec", "time.get_current_time", "--input", #"{"timezone":3}"#])
        #expect(bad.status == 2 && bad.stderr.contains("$.timezone: expected string"), "\(bad.stderr)")
        let missing = try await purser(["exec", "time.get_current_time", "--input", "{}"])
        #expect(missing.status == 2 && missing.stderr.contains("$.timezone: required"), "\(missing.stderr)")
        let noTool = try await purser(["exec", "time.nope", "--input", "{}"])
        #expect(noTool.status == 2 && noTool.stderr.contains("has no tool 'nope'"), "\(noTool.stderr)")
        let bare = try await purser(["exec", "time", "--input", "{}"])
        #expect(bare.status == 2 && bare.stderr.contains("time.TOOL"), "\(bare.stderr)")
        #expect(try await runCount() == before, "nothing ran, nothing was reserved")
    }

    @Test("in a job file: NAME.TOOL routines run; a static input that does not fit is refused at its line")
    func inAJobFile() async throws {
        try await addTime()
        let good = home + "/good.yaml"
        try """
        team: { name: t, budget: { credits: 10, workers: 2 } }
        swarm: { name: times, reservation: { credits: 2 } }
        routines:
          - { name: paris, plugin: time.get_current_time, input: { timezone: Europe/Paris }, estimate: { credits: 1, time: 60s } }
          - name: tokyo
            plugin: time.convert_time
            input: { source_timezone: Europe/Paris, time: "12:00", target_timezone: Asia/Tokyo }
            estimate: { credits: 1, time: 60s }
        """.write(toFile: good, atomically: true, encoding: .utf8)
        let ran = try await purser(["run", good])
        #expect(ran.status == 0, "\(ran.stdout) \(ran.stderr)")
        #expect(ran.stdout.contains("paris") && ran.stdout.contains("tokyo"), "\(ran.stdout)")
        // 0.5 for get_current_time; 0.25 and one started KiB (0.01) for convert_time.
        let team = try JSONParser.parse(Array(try await purser(["team", "show", "t", "--json"]).stdout.utf8))
        #expect(team.arrayValue?.first?["consumed"]?["credits"] == 0.76, "\(team)")

        let bad = home + "/bad.yaml"
        try """
        team: { name: t, budget: { credits: 10, workers: 2 } }
        swarm: { name: bad, reservation: { credits: 2 } }
        routines:
          - { name: paris, plugin: time.get_current_time, input: { zone: Europe/Paris } }
        """.write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try await purser(["run", bad])
        #expect(refused.status == 2, "\(refused.stdout) \(refused.stderr)")
        #expect(refused.stderr.contains("bad.yaml:4: routines.paris.input does not fit time.get_current_time's inputSchema"), "\(refused.stderr)")
    }

    @Test("an untrusted server is kept warm for its swarm, in its sandbox, where its manifest and its team allow it")
    func keptWarm() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: MCPBridgeLiveTests.server), "run .ci/setup")
        try "reuseUntrusted: true\nmcp: { startupTimeout: 30s }\n".write(toFile: home + "/time.yaml", atomically: true, encoding: .utf8)
        let added = try await purser(["mcp", "add", "time", "--manifest", home + "/time.yaml", "--", MCPBridgeLiveTests.server])
        try #require(added.status == 0, "\(added.stderr)")
        func runs(_ team: String) async throws -> [JSONValue?] {
            let call = "plugin: time.get_current_time, input: { timezone: UTC }, estimate: { credits: 1, time: 60s }"
            try """
            team: { name: \(team), budget: { credits: 10 } }
            swarm: { name: warm, reservation: { credits: 3 } }
            routines:
              - { name: a, \(call) }
              - { name: b, \(call), after: [a] }
              - { name: c, \(call), after: [b] }
            """.write(toFile: home + "/\(team).yaml", atomically: true, encoding: .utf8)
            let ran = try await purser(["run", home + "/\(team).yaml", "--json"])
            #expect(ran.status == 0, "\(ran.stderr)")
            let routines = try JSONParser.parse(Array(ran.stdout.utf8))["routines"]?.arrayValue ?? []
            return routines.map { $0["worker"]?["run"] }
        }
        #expect(try await purser(["team", "create", "open", "--credits", "10", "--reuse-untrusted"]).status == 0)
        #expect(try await runs("open") == [1, 2, 3], "one server process, its calls in turn")
        #expect(try await purser(["team", "create", "closed", "--credits", "10"]).status == 0)
        #expect(try await runs("closed") == [1, 1, 1], "a team that does not allow it: a process a call")
    }

    @Test("a command that is no MCP server is refused with the reason, and nothing is recorded")
    func notAServer() async throws {
        let refused = try await purser(["mcp", "add", "nothing", "--", "/bin/true"])
        #expect(refused.status != 0 && refused.stderr.contains("failed as an MCP server"), "\(refused.stderr)")
        let dotted = try await purser(["mcp", "add", "a.b", "--", "/bin/true"])
        #expect(dotted.status == 2 && dotted.stderr.contains("no '/' or '.'"), "\(dotted.stderr)")
        let listed = try await purser(["plugin", "list"])
        #expect(listed.stdout.contains("no plugins registered"), "\(listed.stdout)")
    }
}
