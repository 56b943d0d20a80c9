import Foundation
import PurserProtocol
import PurserRuntime
import PurserTestSupport
import Testing

/// SIGTERM or SIGINT to `purser run` or `exec`: the runs are cancelled, settle what they
/// used, return the rest, are reported, and purser exits with the cancelled code.
@Suite("Interrupted supervisors", .timeLimit(.minutes(2)))
struct InterruptTests {
    let home = Fixtures.temporaryHome()

    func start(_ arguments: [String]) throws -> BackgroundCommand {
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        return try BackgroundCommand(Fixtures.product("purser"), arguments, environment: environment)
    }

    /// Waits (bounded) until `file` holds `count` lines containing `needle`.
    func waitFor(_ needle: String, count: Int, in file: String) async throws {
        for _ in 0..<1200 {
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            if text.components(separatedBy: needle).count - 1 >= count { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("\(needle) did not appear \(count) times in \(file)")
    }

    @Test(arguments: [SIGTERM, SIGINT])
    func aSignalledSwarmCancelsSettlesAndReports(signal signo: Int32) async throws {
        let job = home + "/job.yaml"
        let events = home + "/events.ndjson"
        let scripted = Fixtures.product("scripted")
        try """
            team: { name: sig, budget: { credits: 1000 } }
            swarm: { name: s, reservation: { credits: 100 }, concurrency: 2 }
            routines:
              - { name: a, plugin: \(scripted), input: { spend: 3, sleepMs: 60000 }, estimate: { credits: 10 } }
              - { name: b, plugin: \(scripted), input: { spend: 3, sleepMs: 60000 }, estimate: { credits: 10 } }
              - { name: c, plugin: \(scripted), input: { spend: 3, sleepMs: 60000 }, estimate: { credits: 10 } }
              - { name: d, plugin: \(scripted), input: { spend: 1 }, estimate: { credits: 10 }, after: [a] }
            """.write(toFile: job, atomically: true, encoding: .utf8)
        let command = try start(["run", job, "--json", "--events", events])
        try await waitFor("\"spend\"", count: 2, in: events)
        kill(command.pid, signo)
        let result = await command.finish()
        #expect(result.status == ExitCodes.code(for: .cancelled), "\(result.stderr)")
        let report = try JSONParser.parse(result.stdout)
        let verdicts = report["routines"]?.arrayValue?.compactMap { routine in
            routine["name"]?.stringValue.map { ($0, routine["verdict"]?.stringValue ?? "") }
        } ?? []
        #expect(Dictionary(uniqueKeysWithValues: verdicts) == ["a": "cancelled", "b": "cancelled", "c": "cancelled", "d": "skipped"])
        let store = try Runtime.withLedger(home: home).ledger!.store
        #expect(try store.verify().isEmpty)
        let team = try store.team(named: "sig")
        #expect(team.reserved.credits == 0, "a hold was left open")
        #expect(team.consumed.credits == Credits(whole: 6).micros, "the two runs' reported spend is charged")
    }

    @Test func aSignalledExecCancelsAndReports() async throws {
        let command = try start([
            "exec", Fixtures.product("scripted"), "--input", #"{"spend":2,"sleepMs":60000}"#, "--credits", "5", "--time", "5m", "--json",
        ])
        // Once the worker runs: a thread of purser's (the spawner's) has a child.
        for _ in 0..<1200 where !hasChild(command.pid) {
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .milliseconds(200))
        kill(command.pid, SIGTERM)
        let result = await command.finish()
        #expect(result.status == ExitCodes.code(for: .cancelled), "\(result.stderr)")
        #expect(try JSONParser.parse(result.stdout)["verdict"] == "cancelled")
        let store = try Runtime.withLedger(home: home).ledger!.store
        #expect(try store.verify().isEmpty)
        #expect(try store.team(named: "local").reserved.credits == 0, "a hold was left open")
    }

    func hasChild(_ pid: Int32) -> Bool {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
        return tasks.contains { task in
            !((try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8)) ?? "").isEmpty
        }
    }
}
