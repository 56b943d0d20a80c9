import Foundation
import PurserLedger
import PurserProtocol
import PurserRuntime
import PurserTestSupport
import Testing

/// What the store's files suffer while a supervisor runs, done from outside as an operator
/// (or a full disk) would. Each run's first routine waits at a gate until the fault is done.
enum StoreFault: String, CaseIterable, Sendable {
    case deleted, immutableIndex, truncatedIndex, immutableLog, diskFull

    /// The immutable flag and a tmpfs of the test's own need root and a host that has them.
    var possible: Bool {
        switch self {
        case .deleted, .truncatedIndex: true
        case .immutableIndex, .immutableLog: immutableFilesAvailable
        case .diskFull: Tmpfs.available
        }
    }

    /// What the supervisor must say about it.
    var words: [String] {
        switch self {
        case .deleted: ["deleted or replaced"]
        case .immutableIndex, .truncatedIndex: ["purser.db-shm"]
        case .immutableLog: ["purser.db-wal", "cannot be written"]
        case .diskFull: ["disk full"]
        }
    }

    func apply(store: String, disk: Tmpfs?) {
        switch self {
        case .deleted: for suffix in ["", "-wal", "-shm"] { unlink(store + suffix) }
        case .immutableIndex: setImmutable(store + "-shm", true)
        case .truncatedIndex: truncate(store + "-shm", 0)
        case .immutableLog: setImmutable(store + "-wal", true)
        case .diskFull: disk?.fill()
        }
    }
}

@Suite("The store fails under a running supervisor", .timeLimit(.minutes(3)))
struct StoreFaultCommandTests {
    func environment(_ home: String) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        environment.removeValue(forKey: "PURSER_LEDGER")
        return environment
    }

    /// Runs `arguments` (whose routine waits at `gate`), does the fault once it and the
    /// routines waiting at `others` have started, opens those gates, and returns what purser printed.
    func runThroughFault(
        _ fault: StoreFault, home: String, disk: Tmpfs?, gate: String, others: [String] = [], _ arguments: [String]
    ) async throws -> CommandResult {
        let command = try BackgroundCommand(Fixtures.product("purser"), arguments, environment: environment(home))
        var started = true
        for path in [gate] + others where started { started = await command.waitForFile(path + ".started") }
        if started { fault.apply(store: home + "/purser.db", disk: disk) }
        for opened in [gate] + others { close(open(opened, O_CREAT | O_WRONLY, 0o600)) }
        let result = await command.finish()
        for suffix in ["-shm", "-wal"] { setImmutable(home + "/purser.db" + suffix, false) }
        #expect(started, "the routine never started: \(result.stderr)")
        return result
    }

    func home(for fault: StoreFault) throws -> (String, Tmpfs?) {
        guard fault == .diskFull else { return (Fixtures.temporaryHome(), nil) }
        // Room for the registered plugin's bytes, which the store keeps (twice, with the WAL).
        let disk = try #require(Tmpfs(megabytes: 8))
        return (disk.path, disk)
    }

    /// The swarm stops: exit 1, the fault named, none started after, and the report of what
    /// is known: the routines running then finish, unsettled (`settled: false`, their usage).
    @Test(arguments: StoreFault.allCases.filter(\.possible))
    func aSwarmStopsWithExitCode1AndItsReport(fault: StoreFault) async throws {
        let (home, disk) = try home(for: fault)
        let plugin = try await trustedScripted(home: home)
        let gate = Fixtures.temporaryHome() + "/gate"
        let other = Fixtures.temporaryHome() + "/other"
        let job = Fixtures.temporaryHome() + "/job.yaml"
        try """
            team: { name: t, budget: { credits: 100, memory: 8GiB } }
            swarm: { name: s, reservation: { credits: 20, time: 5m, memory: 2GiB }, concurrency: 2 }
            routines:
              - { name: first, plugin: \(plugin), input: { gate: "\(gate)", spend: 1 }, estimate: { credits: 2, memory: 128MiB } }
              - { name: long, plugin: \(plugin), input: { gate: "\(other)", spend: 1 }, estimate: { credits: 2, memory: 128MiB } }
              - { name: second, plugin: \(plugin), input: { spend: 1 }, estimate: { credits: 2, memory: 128MiB }, after: [first] }
            """.write(toFile: job, atomically: true, encoding: .utf8)
        let result = try await runThroughFault(fault, home: home, disk: disk, gate: gate, others: [other], ["run", job, "--json"])
        #expect(result.status == 1, "\(result.stdout)\n\(result.stderr)")
        for word in fault.words { #expect(result.stderr.contains(word), "\(result.stderr)") }
        let report = try JSONParser.parse(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(report["ok"] == false)
        let failure = try #require(report["storeError"]?.stringValue, "\(result.stdout)")
        for word in fault.words { #expect(failure.contains(word)) }
        let verdicts = Dictionary(uniqueKeysWithValues: (report["routines"]?.arrayValue ?? []).compactMap { routine in
            routine["name"]?.stringValue.map { ($0, routine["verdict"]?.stringValue ?? "") }
        })
        #expect(verdicts == ["first": "ok", "long": "ok", "second": "skipped"], "\(result.stdout)")
        for routine in report["routines"]?.arrayValue ?? [] where routine["name"] != "second" {
            // Ran through the fault: what each used is shown, its settle not taken.
            #expect(routine["settled"] == false, "\(routine)")
            #expect(routine["settleError"]?.stringValue != nil, "\(routine)")
        }
        if fault == .diskFull { #expect(result.stderr.contains("lease"), "it says when the holds return: \(result.stderr)") }
        if fault == .deleted {
            // The next start refuses to make an empty store where the ledger was.
            let next = try await runCommand(Fixtures.product("purser"), ["team", "show", "t"], environment: environment(home))
            #expect(next.status == 1, "\(next.stderr)")
            #expect(next.stderr.contains(home + "/.purser.db.marker"), "\(next.stderr)")
            #expect(access(home + "/purser.db", F_OK) != 0)
        }
    }

    /// `purser exec` the same: its report, then exit 1 and the fault named.
    @Test(arguments: [StoreFault.deleted, .diskFull].filter(\.possible))
    func anExecStopsWithExitCode1AndItsReport(fault: StoreFault) async throws {
        let (home, disk) = try home(for: fault)
        let gate = Fixtures.temporaryHome() + "/gate"
        let result = try await runThroughFault(fault, home: home, disk: disk, gate: gate, [
            "exec", Fixtures.product("scripted"), "--trusted", "--input", #"{"gate": "\#(gate)", "spend": 1}"#, "--json",
        ])
        #expect(result.status == 1, "\(result.stdout)\n\(result.stderr)")
        for word in fault.words { #expect(result.stderr.contains(word), "\(result.stderr)") }
        let report = try JSONParser.parse(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(report["verdict"] == "ok")
        let unsettled = try #require(report["unsettled"]?.stringValue, "\(result.stdout)")
        for word in fault.words { #expect(unsettled.contains(word), "\(unsettled)") }
    }

    /// A new command on a full disk says the disk is full, not "disk I/O error" or that a
    /// team is missing.
    @Test(.enabled(if: Tmpfs.available))
    func aNewCommandOnAFullDiskSaysSo() async throws {
        let disk = try #require(Tmpfs(megabytes: 2))
        #expect(try await runCommand(Fixtures.product("purser"), ["team", "create", "t", "--credits", "5"], environment: environment(disk.path)).status == 0)
        disk.fill()
        for arguments in [["exec", Fixtures.product("echo"), "--input", "1"], ["exec", Fixtures.product("echo"), "--input", "1", "--team", "t"]] {
            let result = try await runCommand(Fixtures.product("purser"), arguments, environment: environment(disk.path))
            #expect(result.status == 1, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("disk full"), "\(arguments): \(result.stderr)")
        }
    }
}

/// A store file that cannot be written is refused when a command starts, named: not
/// "attempt to write a readonly database" (exit 2), nor a SIGBUS later.
@Suite("Unwritable store files", .timeLimit(.minutes(1)), .enabled(if: immutableFilesAvailable))
struct UnwritableStoreTests {
    @Test(arguments: ["", "-wal", "-shm"])
    func aStoreFileThatCannotBeWrittenIsRefusedNamed(suffix: String) async throws {
        let home = Fixtures.temporaryHome()
        let path = home + "/purser.db"
        // Another supervisor holds the store open: its WAL and index files are there.
        let other = try SQLiteLedger(path: path)
        _ = try other.createTeam(TeamSpec(name: "t", caps: Resources(credits: 1_000_000)))
        #expect(setImmutable(path + suffix, true))
        defer { setImmutable(path + suffix, false) }
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        environment.removeValue(forKey: "PURSER_LEDGER")
        let result = try await runCommand(Fixtures.product("purser"), ["team", "show", "t"], environment: environment)
        withExtendedLifetime(other) {}
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("cannot write \(path + suffix): Operation not permitted"), "\(result.stderr)")
    }
}

/// A store that fails is the supervisor's failure (exit 1), whatever the command; a bad
/// location or an unknown team stays bad input (exit 2).
@Suite("Store failures are exit code 1", .timeLimit(.minutes(2)))
struct StoreFailureExitCodeTests {
    static let job = """
        team: { name: t, budget: { credits: 10 } }
        swarm: { name: s, reservation: { credits: 5 } }
        routines:
          - { name: one, plugin: /bin/true }
        """

    @Test(arguments: [
        ["team", "show", "t"], ["team", "create", "x", "--credits", "1"], ["ledger", "audit"], ["ledger", "verify"],
        ["ledger", "stats"], ["runs", "list"], ["plugin", "list"], ["gateway", "status"], ["exec", "ECHO", "--input", "1"],
        ["run", "JOB"],
    ])
    func aStoreThatCannotBeReadIsExitCode1(arguments: [String]) async throws {
        let home = Fixtures.temporaryHome()
        try String(repeating: "not a database ", count: 400).write(toFile: home + "/purser.db", atomically: true, encoding: .utf8)
        try Self.job.write(toFile: home + "/job.yaml", atomically: true, encoding: .utf8)
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        environment.removeValue(forKey: "PURSER_LEDGER")
        let resolved = arguments.map { $0 == "ECHO" ? Fixtures.product("echo") : $0 == "JOB" ? home + "/job.yaml" : $0 }
        let result = try await runCommand(Fixtures.product("purser"), resolved, environment: environment)
        #expect(result.status == 1, "\(arguments): \(result.stderr)")
        #expect(result.stderr.contains(home + "/purser.db"), "\(arguments): \(result.stderr)")
    }

    @Test(arguments: ["postgres://user@[::1/db", "/nonexistent-directory/purser.db"])
    func aBadLocationIsExitCode2(location: String) async throws {
        let result = try await runCommand(Fixtures.product("purser"), ["team", "show", "t", "--ledger", location])
        #expect(result.status == 2, "\(location): \(result.stderr)")
        #expect(result.stderr.contains("--ledger"), "\(result.stderr)")
    }
}

/// A swarm whose store fails before it starts is told that, not that its team is missing.
@Suite("A failing store is not a missing team", .timeLimit(.minutes(1)))
struct StoreFailureIsNotAMissingTeamTests {
    @Test func aSwarmOnAStoreThatVanishedFailsAsTheStore() async throws {
        let home = Fixtures.temporaryHome()
        try "team: { name: nobody }\nswarm: { name: s, reservation: { credits: 5 } }\nroutines:\n  - { name: one, plugin: /bin/true }\n"
            .write(toFile: home + "/job.yaml", atomically: true, encoding: .utf8)
        let runtime = try Runtime.withLedger(home: home)
        for suffix in ["", "-wal", "-shm"] { unlink(home + "/purser.db" + suffix) }
        let runner = try SwarmRunner(runtime: runtime, job: JobFile.load(path: home + "/job.yaml"))
        await #expect { try await runner.run() } throws: { error in
            guard let error = error as? RuntimeError else { return false }
            return error.code == .store && error.message.contains("deleted or replaced")
        }
    }
}
