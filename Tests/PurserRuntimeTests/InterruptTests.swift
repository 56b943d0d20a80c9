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

    func start(_ arguments: [String]) throws -> (Process, Pipe, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Fixtures.product("purser"))
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        process.environment = environment
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return (process, out, err)
    }

    /// Reads what it printed and waits for its end off the cooperative pool, which blocking
    /// reads would starve.
    func finish(_ process: Process, _ out: Pipe, _ err: Pipe) async -> (status: Int32, stdout: [UInt8], stderr: String) {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                let group = DispatchGroup()
                nonisolated(unsafe) var stderr = Data()
                DispatchQueue.global().async(group: group) { stderr = err.fileHandleForReading.readDataToEndOfFile() }
                let stdout = out.fileHandleForReading.readDataToEndOfFile()
                group.wait()
                process.waitUntilExit()
                continuation.resume(returning: (process.terminationStatus, Array(stdout), String(decoding: stderr, as: UTF8.self)))
            }
        }
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
        let (process, out, err) = try start(["run", job, "--json", "--events", events])
        try await waitFor("\"spend\"", count: 2, in: events)
        kill(process.processIdentifier, signo)
        let (status, stdout, stderr) = await finish(process, out, err)
        #expect(status == ExitCodes.code(for: .cancelled), "\(stderr)")
        let report = try JSONParser.parse(stdout)
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
        let (process, out, err) = try start([
            "exec", Fixtures.product("scripted"), "--input", #"{"spend":2,"sleepMs":60000}"#, "--credits", "5", "--time", "5m", "--json",
        ])
        // Once the worker runs: a thread of purser's (the spawner's) has a child.
        for _ in 0..<1200 where !hasChild(process.processIdentifier) {
            try await Task.sleep(for: .milliseconds(50))
        }
        try await Task.sleep(for: .milliseconds(200))
        kill(process.processIdentifier, SIGTERM)
        let (status, stdout, stderr) = await finish(process, out, err)
        #expect(status == ExitCodes.code(for: .cancelled), "\(stderr)")
        #expect(try JSONParser.parse(stdout)["verdict"] == "cancelled")
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
