import Foundation
import PurserLedger
import PurserProtocol
import PurserRuntime
import PurserTestSupport
import Testing

/// `kill -9` of a supervisor in the middle of its runs, at a point the test chooses (once
/// every worker's escaped grandchild is up). Nothing of the dead supervisor may be left once
/// the next purser on the host has started: no process of its runs, none of its cgroups, run
/// directories or network namespaces, and none of its holds (reclaimed at once, not when its
/// lease lapses: the lease here lasts the default ten minutes).
@Suite("A killed supervisor", .serialized, .timeLimit(.minutes(3)))
struct SupervisorDeathTests {
    let home = Fixtures.temporaryHome()
    let tag = UUID().uuidString

    var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        environment["HOSTILE_MODE"] = "grandchild_hang"
        environment["HOSTILE_TAG"] = tag
        environment["HOSTILE_PIDFILE"] = home + "/grandchild.pid"
        return environment
    }

    /// Runs purser to its end off the cooperative pool, which a blocking wait would starve.
    func purser(_ arguments: [String]) async throws -> CommandResult {
        try await runCommand(Fixtures.product("purser"), arguments, environment: environment)
    }

    /// Starts purser with its output in files of the home (a killed process leaves its pipes).
    func start(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Fixtures.product("purser"))
        process.arguments = arguments
        process.environment = environment
        FileManager.default.createFile(atPath: home + "/killed.out", contents: nil)
        FileManager.default.createFile(atPath: home + "/killed.err", contents: nil)
        let out = FileHandle(forWritingAtPath: home + "/killed.out")
        let err = FileHandle(forWritingAtPath: home + "/killed.err")
        defer { try? out?.close(); try? err?.close() }
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Waits, bounded, for `condition`; records an issue if it never holds.
    func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        for _ in 0..<1200 {
            if condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        let stderr = (try? String(contentsOfFile: home + "/killed.err", encoding: .utf8)) ?? ""
        Issue.record("never: \(what) (the killed purser said: \(stderr))")
    }

    /// What the dead supervisor's runs had on the host, seen from their processes.
    struct Leftovers {
        var groups: Set<String> = []
        var directories: Set<String> = []
        var networks: Set<String> = []
    }

    func leftovers(of pids: [Int32]) -> Leftovers {
        var found = Leftovers()
        for pid in pids {
            found.groups.formUnion(Cgroups.purserGroups(of: pid))
            if let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd"), cwd.hasPrefix(home) {
                found.directories.insert(cwd)
            }
            if let net = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net") { found.networks.insert(net) }
        }
        return found
    }

    /// The runs' processes: those tagged, but purser itself (which passes the tag on).
    func runProcesses() -> [Int32] {
        let purser = (Fixtures.product("purser") as NSString).resolvingSymlinksInPath
        return Fixtures.processes(tagged: tag).filter {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\($0)/exe")) != purser
        }
    }

    /// The purser-watchdog processes watching `pid`.
    func watchdogs(of pid: Int32) -> [Int32] {
        let watchdog = (Fixtures.product("purser-watchdog") as NSString).resolvingSymlinksInPath
        let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init)
        return pids.filter { candidate in
            guard (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(candidate)/exe")) == watchdog,
                let stat = try? String(contentsOfFile: "/proc/\(candidate)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            return stat[stat.index(after: close)...].split(separator: " ").dropFirst().first == Substring("\(pid)")
        }
    }

    /// Kills the supervisor's watchdog first, as a trusted worker of the same uid or the OOM
    /// killer might: what it would have killed is then left for the next start.
    func killWatchdog(of process: Process) {
        let found = watchdogs(of: process.processIdentifier)
        #expect(found.count == 1, "one purser-watchdog watches purser \(process.processIdentifier): \(found)")
        for pid in found { kill(pid, SIGKILL) }
    }

    func kill9(_ process: Process) async throws {
        kill(process.processIdentifier, SIGKILL)
        nonisolated(unsafe) let process = process
        try await offPool { process.waitUntilExit() }
    }

    /// Checks the host and the ledger after the next start; the store is opened directly, so
    /// that this test process clears nothing itself.
    func expectNothingLeft(_ left: Leftovers, teams: [String]) throws {
        let hostNetwork = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
        #expect(runProcesses().isEmpty, "processes of the dead supervisor's runs survived the next start")
        #expect(!left.groups.isEmpty, "the runs were in no cgroup of purser's")
        for group in left.groups.sorted() {
            #expect(!FileManager.default.fileExists(atPath: group), "the dead supervisor's group \(group) is still there")
        }
        for directory in left.directories.sorted() {
            #expect(!FileManager.default.fileExists(atPath: directory), "its run directory \(directory) is still there")
        }
        let work = (try? FileManager.default.contentsOfDirectory(atPath: home + "/work")) ?? []
        #expect(work.isEmpty, "left in \(home)/work: \(work)")
        for network in left.networks where network != hostNetwork {
            #expect(Namespaces.holders(of: network).isEmpty, "its network namespace \(network) is still held")
        }
        let store = try SQLiteLedger(path: home + "/purser.db")
        #expect(try store.verify().isEmpty)
        for team in teams {
            #expect(try store.team(named: team).reserved.credits == 0, "a hold of the dead supervisor is still open in team \(team)")
        }
    }

    /// Trusted routines' grandchildren (setsid, double fork) escape the worker's process
    /// group; a step's escapee is in groups nested inside its caller's; a finished
    /// trusted routine left its emptied directory and groups in the pools.
    @Test func aKilledSwarmLeavesNothingOnceTheNextPurserStarts() async throws {
        let manifest = home + "/hostile.yaml"
        try "trusted: true\nenvironment: [HOSTILE_MODE, HOSTILE_TAG, HOSTILE_PIDFILE]\n".write(
            toFile: manifest, atomically: true, encoding: .utf8)
        let added = try await purser(["plugin", "add", Fixtures.product("hostile"), "--name", "hostile", "--manifest", manifest])
        #expect(added.status == 0, "\(added.stderr)")
        try "trusted: true\nreuse: false\n".write(toFile: home + "/quick.yaml", atomically: true, encoding: .utf8)
        let quick = try await purser(["plugin", "add", Fixtures.product("scripted"), "--name", "quick", "--manifest", home + "/quick.yaml"])
        #expect(quick.status == 0, "\(quick.stderr)")
        let job = home + "/job.yaml"
        try """
            team: { name: death, budget: { credits: 1000 } }
            swarm: { name: s, reservation: { credits: 100 }, concurrency: 4 }
            routines:
              - { name: a, plugin: hostile, input: x, estimate: { credits: 10 } }
              - { name: b, plugin: hostile, input: y, estimate: { credits: 10 } }
              - { name: c, plugin: \(Fixtures.product("scripted")), input: { call: { plugin: quick, input: { escape: \(tag), sleepMs: 600000 }, credits: 5 } }, estimate: { credits: 10 } }
              - { name: d, plugin: quick, input: { output: done }, estimate: { credits: 10 } }
            """.write(toFile: job, atomically: true, encoding: .utf8)
        let events = home + "/events.ndjson"
        let process = try start(["run", job, "--json", "--events", events, "--allow-degraded"])
        // Two hostile workers and their grandchildren, and what c's step left.
        try await waitUntil("five processes of the runs") { runProcesses().count >= 5 }
        try await waitUntil("routine d's verdict") {
            ((try? String(contentsOfFile: events, encoding: .utf8)) ?? "").split(separator: "\n").contains {
                $0.contains(#""routine":"d""#) && $0.contains(#""event":"verdict""#)
            }
        }
        let left = leftovers(of: runProcesses())
        killWatchdog(of: process)
        try await kill9(process)
        // The workers die by their parent-death signal, a moment after purser.
        try await waitUntil("the workers' end") { runProcesses().count <= 3 }
        #expect(runProcesses().count == 3, "without its watchdog, the trusted runs' escapees outlive the supervisor")
        let next = try await purser(["exec", Fixtures.product("echo"), "--input", "1", "--credits", "1"])
        #expect(next.status == 0, "\(next.stderr)")
        try expectNothingLeft(left, teams: ["death", "local"])
        // Its idle pooled groups too (d's), which no process showed.
        for base in Set(left.groups.map { ($0 as NSString).deletingLastPathComponent }) {
            let owned = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).filter {
                $0.hasPrefix("s\(process.processIdentifier).") || $0.hasPrefix("s\(process.processIdentifier)-")
            }
            #expect(owned.isEmpty, "the dead supervisor's groups \(owned) are still in \(base)")
        }
    }

    /// An untrusted run: its own PID namespace dies with its worker, and its network namespace
    /// with its last process; the hold still must not wait for the lease.
    @Test func aKilledUntrustedExecLeavesNothing() async throws {
        let process = try start([
            "exec", Fixtures.product("hostile"), "--credits", "5", "--time", "5m", "--allow-degraded",
            "--env", "HOSTILE_MODE", "--env", "HOSTILE_TAG",
        ])
        try await waitUntil("the worker and its grandchild") { runProcesses().count >= 2 }
        let left = leftovers(of: runProcesses())
        try await kill9(process)
        let next = try await purser(["exec", Fixtures.product("echo"), "--input", "1", "--credits", "1"])
        #expect(next.status == 0, "\(next.stderr)")
        try expectNothingLeft(left, teams: ["local"])
    }

    /// Another purser starting while a trusted run lives leaves that run be: its escaped
    /// grandchild, its groups, its directory and its hold. Once its supervisor is killed, the
    /// next start clears them.
    @Test func aLiveSupervisorsRunIsLeftAloneUntilItDies() async throws {
        let process = try start([
            "exec", Fixtures.product("hostile"), "--trusted", "--credits", "5", "--time", "5m",
            "--env", "HOSTILE_MODE", "--env", "HOSTILE_TAG", "--env", "HOSTILE_PIDFILE",
        ])
        try await waitUntil("the grandchild's pid file") { FileManager.default.fileExists(atPath: home + "/grandchild.pid") }
        let left = leftovers(of: runProcesses())
        #expect(left.directories.count == 1)
        let meanwhile = try await purser(["exec", Fixtures.product("echo"), "--input", "1", "--credits", "1"])
        #expect(meanwhile.status == 0, "\(meanwhile.stderr)")
        #expect(runProcesses().count == 2, "a live supervisor's run was killed by another's start")
        for path in left.groups.union(left.directories).sorted() {
            #expect(FileManager.default.fileExists(atPath: path), "a live supervisor's \(path) was removed")
        }
        #expect(try SQLiteLedger(path: home + "/purser.db").team(named: "local").reserved.credits == 5_000_000)
        killWatchdog(of: process)
        try await kill9(process)
        try await waitUntil("the worker's end") { runProcesses().count <= 1 }
        #expect(runProcesses().count == 1, "without its watchdog, the trusted run's grandchild outlives the supervisor")
        let next = try await purser(["exec", Fixtures.product("echo"), "--input", "1", "--credits", "1"])
        #expect(next.status == 0, "\(next.stderr)")
        try expectNothingLeft(left, teams: ["local"])
    }

    /// With its watchdog, a supervisor's death kills every process of its runs at once, a
    /// trusted run's escaped grandchild included: no later start is needed for that (only to
    /// remove what is left and reclaim the holds).
    @Test func aKilledSupervisorsWatchdogKillsItsRunsAtOnce() async throws {
        let process = try start([
            "exec", Fixtures.product("hostile"), "--trusted", "--credits", "5", "--time", "5m",
            "--env", "HOSTILE_MODE", "--env", "HOSTILE_TAG", "--env", "HOSTILE_PIDFILE",
        ])
        try await waitUntil("the grandchild's pid file") { FileManager.default.fileExists(atPath: home + "/grandchild.pid") }
        let watchdog = watchdogs(of: process.processIdentifier)
        #expect(watchdog.count == 1, "no purser-watchdog watches purser \(process.processIdentifier)")
        let left = leftovers(of: runProcesses())
        try await kill9(process)
        try await waitUntil("the watchdog's end") { watchdog.allSatisfy { !Fixtures.isAlive($0) } }
        #expect(runProcesses().isEmpty, "processes of the dead supervisor's runs outlived it")
        let next = try await purser(["exec", Fixtures.product("echo"), "--input", "1", "--credits", "1"])
        #expect(next.status == 0, "\(next.stderr)")
        try expectNothingLeft(left, teams: ["local"])
    }

    /// Where the watchdog is missing, purser says so, in the run and in `purser doctor`.
    @Test func aMissingWatchdogIsSaid() async throws {
        var changed = self.environment
        changed["PURSER_WATCHDOG"] = home + "/nonexistent"
        let environment = changed
        let result = try await offPool {
            try runCommandBlocking(Fixtures.product("purser"), ["exec", Fixtures.product("echo"), "--input", "1", "--credits", "1"], environment: environment)
        }
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("no watchdog"), "\(result.stderr)")
        let doctor = try await offPool { try runCommandBlocking(Fixtures.product("purser"), ["doctor", "--json"], environment: environment) }
        let row = try JSONParser.parse(doctor.stdout).arrayValue?.first { $0["name"] == "supervisor death" }
        #expect(row?["available"] == false)
        #expect(row?["advice"]?.stringValue?.contains("purser-watchdog") == true)
    }
}

/// The cgroups purser made for a process: the directories under a `purser` base of each
/// hierarchy it is in, topmost first.
enum Cgroups {
    static func purserGroups(of pid: Int32) -> [String] {
        guard let lines = try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8) else { return [] }
        var groups: [String] = []
        for line in lines.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, let mount = mountPoint(controllers: parts[0] == "0" ? nil : String(parts[1])) else { continue }
            let path = String(parts[2])
            guard let range = path.range(of: "/purser/") else { continue }
            // The run's own group (its top), not only the leaf or step group it is in.
            let top = path[range.upperBound...].split(separator: "/").first.map(String.init) ?? ""
            groups.append(mount + path[..<range.upperBound] + top)
        }
        return groups
    }

    /// Where the hierarchy with these controllers (nil: cgroup2) is mounted.
    static func mountPoint(controllers: String?) -> String? {
        guard let mountinfo = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return nil }
        for line in mountinfo.split(separator: "\n") {
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { continue }
            let source = halves[1].split(separator: " ")
            let fields = halves[0].split(separator: " ")
            guard fields.count > 4 else { continue }
            if let controllers {
                let options = Set(source.last?.split(separator: ",").map(String.init) ?? [])
                if source.first == "cgroup" && options.isSuperset(of: controllers.split(separator: ",").map(String.init)) {
                    return String(fields[4])
                }
            } else if source.first == "cgroup2" {
                return String(fields[4])
            }
        }
        return nil
    }
}

/// Who holds a namespace: a process in it, or an open fd to it.
enum Namespaces {
    static func holders(of namespace: String) -> [Int32] {
        let pids = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init)
        return pids.filter { pid in
            if (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net")) == namespace {
                return Fixtures.isAlive(pid)
            }
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
            return fds.contains { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\($0)")) == namespace }
        }
    }
}
