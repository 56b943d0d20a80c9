import Foundation
import PurserProtocol
import PurserRuntime
import PurserTestSupport
import Testing

/// Failures that used to be dropped (a lease heartbeat, a settle, a swarm's report) reach
/// purser's log with what an operator needs to find them: run, node, team, holder.
@Suite("Failures reach the log", .timeLimit(.minutes(3)))
struct FailureLogTests {
    /// purser with its stderr in a file, so that the test can read the log while it runs.
    func start(home: String, log: String, _ arguments: [String]) throws -> BackgroundCommand {
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        environment.removeValue(forKey: "PURSER_LEDGER")
        // A heartbeat every 100 ms; a store that went away is given up on quickly.
        environment["PURSER_LEASE_MS"] = "300"
        environment["PURSER_STORE_RETRY"] = "200ms"
        environment["PURSER_TEST_LOG"] = log
        return try BackgroundCommand(
            "/bin/sh", ["-c", #"exec "$0" "$@" 2>"$PURSER_TEST_LOG""#, Fixtures.product("purser"), "--log-format", "json"]
                + arguments, environment: environment)
    }

    /// The JSON lines of the log (the rest of stderr is purser's own notices).
    func entries(_ log: String) -> [JSONValue] {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").filter { $0.hasPrefix("{") }.compactMap { try? JSONParser.parse(String($0)) }
    }

    /// Waits (a bounded while, polling) for the log to hold `words`.
    func waitForText(_ log: String, _ words: String) async {
        for _ in 0..<600 where !((try? String(contentsOfFile: log, encoding: .utf8))?.contains(words) ?? false) {
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    func deleteStore(_ home: String) {
        for suffix in ["", "-wal", "-shm"] { unlink(home + "/purser.db" + suffix) }
    }

    @Test func aHeartbeatAndASettleThatFailAreLoggedWithHolderRunAndNode() async throws {
        let home = Fixtures.temporaryHome()
        let log = Fixtures.temporaryHome() + "/log"
        let gate = Fixtures.temporaryHome() + "/gate"
        let command = try start(home: home, log: log, [
            "exec", Fixtures.product("scripted"), "--trusted", "--input", #"{"gate": "\#(gate)", "spend": 1}"#, "--json",
        ])
        let started = await command.waitForFile(gate + ".started")
        deleteStore(home)
        await waitForText(log, "lease heartbeat failed")
        close(open(gate, O_CREAT | O_WRONLY, 0o600))
        let result = await command.finish()
        #expect(started && result.status == 1, "\(result.stdout)")
        let entries = entries(log)
        let heartbeat = try #require(entries.first { $0["msg"]?.stringValue?.contains("heartbeat") == true }, "\(entries)")
        #expect(heartbeat["level"] == "error")
        #expect(heartbeat["holder"]?.stringValue?.hasPrefix("purser-") == true, "\(heartbeat)")
        #expect(heartbeat["error"]?.stringValue?.contains("deleted or replaced") == true, "\(heartbeat)")
        let report = try JSONParser.parse(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let settle = try #require(entries.first { $0["msg"]?.stringValue?.contains("not settled") == true }, "\(entries)")
        #expect(settle["run"] == report["runId"], "\(settle)")
        #expect(settle["node"]?.stringValue == report["ledgerNode"]?.numberValue?.text, "\(settle) \(report)")
        #expect(settle["team"] != nil, "\(settle)")
    }

    @Test func aSwarmsUnsettledRunsAndItsLostReportAreLogged() async throws {
        let home = Fixtures.temporaryHome()
        let plugin = try await trustedScripted(home: home)
        let log = Fixtures.temporaryHome() + "/log"
        let gate = Fixtures.temporaryHome() + "/gate"
        let job = Fixtures.temporaryHome() + "/job.yaml"
        try """
            team: { name: t, budget: { credits: 100, memory: 8GiB } }
            swarm: { name: s, reservation: { credits: 20, time: 5m, memory: 2GiB } }
            routines:
              - { name: first, plugin: \(plugin), input: { gate: "\(gate)", spend: 1 }, estimate: { credits: 2, memory: 128MiB } }
            """.write(toFile: job, atomically: true, encoding: .utf8)
        let command = try start(home: home, log: log, ["run", job, "--json"])
        let started = await command.waitForFile(gate + ".started")
        deleteStore(home)
        close(open(gate, O_CREAT | O_WRONLY, 0o600))
        let result = await command.finish()
        #expect(started && result.status == 1, "\(result.stdout)")
        let report = try JSONParser.parse(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let entries = entries(log)
        let unsettled = try #require(entries.first { $0["msg"] == "routine not settled" }, "\(entries)")
        #expect(unsettled["routine"] == "first" && unsettled["team"] == "t" && unsettled["run"] == report["runId"], "\(unsettled)")
        #expect(unsettled["node"]?.stringValue == report["routines"]?.arrayValue?.first?["ledgerNode"]?.numberValue?.text, "\(unsettled)")
        let lost = try #require(entries.first { $0["msg"] == "swarm report not kept" }, "\(entries)")
        #expect(lost["run"] == report["runId"] && lost["swarm"] == "s", "\(lost)")
    }
}

/// `--log-level` and `PURSER_LOG_LEVEL` choose what reaches stderr; each run's reservation is a debug line.
@Suite("purser's log level", .timeLimit(.minutes(1)))
struct LogLevelCommandTests {
    func exec(_ flags: [String], environment extra: [String: String] = [:]) async throws -> CommandResult {
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = Fixtures.temporaryHome()
        environment.removeValue(forKey: "PURSER_LOG_LEVEL")
        environment.merge(extra) { $1 }
        return try await runCommand(
            Fixtures.product("purser"), ["exec", Fixtures.product("echo"), "--input", "1"] + flags, environment: environment)
    }

    @Test func debugShowsEachRunsReservationInJSON() async throws {
        let result = try await exec(["--log-level", "debug", "--log-format", "json"])
        #expect(result.status == 0, "\(result.stderr)")
        let entries = result.stderr.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }
        let reserved = try #require(entries.first { $0["msg"] == "run reserved" }, "\(result.stderr)")
        #expect(reserved["level"] == "debug")
        #expect(reserved["run"]?.stringValue?.hasPrefix("r-") == true && reserved["node"] != nil && reserved["team"] != nil)
    }

    @Test func theVariableSetsTheLevelAndLogfmtIsTheDefault() async throws {
        let result = try await exec([], environment: ["PURSER_LOG_LEVEL": "debug"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("level=debug") && result.stderr.contains(#"msg="run reserved""#), "\(result.stderr)")
    }

    @Test func theDefaultLevelKeepsDebugLinesOut() async throws {
        let result = try await exec([])
        #expect(result.status == 0 && !result.stderr.contains("level="), "\(result.stderr)")
    }

    @Test func aBadLevelIsExitCode2() async throws {
        let result = try await exec(["--log-level", "loud"])
        #expect(result.status == 2 && result.stderr.contains("--log-level"), "\(result.stderr)")
    }
}
