import Foundation
import PurserConfig
import PurserProtocol
import PurserRuntime
import PurserTestSupport
import Testing

@Suite("purser exec", .timeLimit(.minutes(1)))
struct ExecCommandTests {
    let home = Fixtures.temporaryHome()

    func purser(_ arguments: [String], directory: String? = nil) async throws -> CommandResult {
        try await runPurser(arguments, home: home, directory: directory)
    }

    @Test func aRelativePluginPathIsResolvedBeforeTheWorkerChangesDirectory() async throws {
        let result = try await purser(["exec", "./echo", "--input", "1"], directory: Fixtures.buildDirectory)
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
    }

    @Test func jsonReportHasEveryKey() async throws {
        let result = try await purser(["exec", Fixtures.product("wordcount"), "--input", #"{"text":"a b c"}"#, "--credits", "2", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONParser.parse(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        for key in ["verdict", "output", "usage", "reserved", "returned", "stderrTail"] {
            #expect(report[key] != nil, "missing \(key)")
        }
        #expect(report["verdict"] == "ok")
        #expect(report["usage"]?["credits"] == .number(JSONNumber(text: "0.003")!))
        #expect(report["returned"]?["credits"] == .number(JSONNumber(text: "1.997")!))
        for key in ["credits", "wallMs", "cpuMs", "memoryPeakBytes"] { #expect(report["usage"]?[key] != nil) }
    }

    /// `--credits -3` is the value -3, refused as such, not a missing value and another flag.
    @Test(arguments: ["--credits", "--memory", "--time", "--cpu"])
    func aNegativeValueGetsTheSameAnswerWrittenEitherWay(flag: String) async throws {
        let spaced = try await purser(["exec", Fixtures.product("echo"), flag, "-3", "--input", "1"])
        let joined = try await purser(["exec", Fixtures.product("echo"), "\(flag)=-3", "--input", "1"])
        #expect(spaced.status == 2 && joined.status == 2)
        #expect(spaced.stderr == joined.stderr)
        #expect(spaced.stderr.contains("'-3'") && spaced.stderr.contains(flag), "\(spaced.stderr)")
    }

    @Test func humanReportShowsReservedUsedReturned() async throws {
        let result = try await purser(["exec", Fixtures.product("echo"), "--input", "[1,2]", "--time", "5s", "--memory", "64MiB"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("output: [1,2]"))
        #expect(result.stdout.contains("verdict: ok"))
        #expect(result.stdout.contains("reserved"))
        #expect(result.stdout.contains("5s"))
        #expect(result.stdout.contains("64MiB"))
    }

    @Test(arguments: [
        (["--time", "5parsecs"], "--time"),
        (["--memory", "-1"], "--memory"),
        (["--memory", "lots"], "--memory"),
        (["--credits", "ten"], "--credits"),
        (["--input", "{bad"], "--input"),
        (["--input-file", "/nonexistent/input.json"], "--input-file"),
        (["--env", "PURSER_SURELY_UNSET_VARIABLE"], "--env"),
    ])
    func badInputIsExitCode2AndNamesTheFlag(arguments: [String], flag: String) async throws {
        let result = try await purser(["exec", Fixtures.product("echo")] + arguments)
        #expect(result.status == 2, "\(arguments): \(result.stderr)")
        #expect(result.stderr.contains(flag), "\(result.stderr) should name \(flag)")
        let runs = (try? FileManager.default.contentsOfDirectory(atPath: home + "/work")) ?? []
        #expect(runs.isEmpty, "bad input must not leave a run behind")
    }

    @Test func aMissingPluginIsExitCode2() async throws {
        let result = try await purser(["exec", "/nonexistent/plugin"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("/nonexistent/plugin"))
    }

    /// A layer switched off by configuration: refused with exit code 3 and the layer named,
    /// unless downgrading is allowed, which the report then says.
    @Test func aMissingSandboxLayerIsRefusedUnlessAllowed() async throws {
        let environment = ProcessInfo.processInfo.environment.merging(
            ["PURSER_HOME": Fixtures.temporaryHome(), "PURSER_SANDBOX_DISABLE": "network"]) { $1 }
        let hostile = Fixtures.product("hostile")
        let refused = try await runCommand(Fixtures.product("purser"), ["exec", hostile, "--json"], environment: environment)
        #expect(refused.status == 3)
        #expect(refused.stderr.contains("network: switched off by configuration"))
        #expect(refused.stdout.isEmpty)
        let allowed = try await runCommand(
            Fixtures.product("purser"), ["exec", hostile, "--allow-degraded", "--input", "1"], environment: environment)
        #expect(allowed.status == 0, "\(allowed.stderr)")
        #expect(allowed.stdout.contains("sandbox: untrusted; NOT ENFORCED: network"))
        #expect(allowed.stderr.contains("sandbox downgraded: network not enforced"))
        let trusted = try await runCommand(Fixtures.product("purser"), ["exec", hostile, "--trusted", "--input", "1"], environment: environment)
        #expect(trusted.status == 0, "a trusted plugin wants no network namespace")
    }

    /// `purser run` on a host without a layer: exit 3 and nothing reserved, or, allowed to
    /// downgrade, the routine's line says what was not enforced.
    @Test func aSwarmOnAHostWithoutALayer() async throws {
        let job = home + "/job.yaml"
        try """
            team: { name: tj, budget: { credits: 10 } }
            swarm: { name: s, reservation: { credits: 5 } }
            routines:
              - { name: a, plugin: \(Fixtures.product("hostile")), input: 1 }
            """.write(toFile: job, atomically: true, encoding: .utf8)
        let environment = ProcessInfo.processInfo.environment.merging(["PURSER_HOME": home, "PURSER_SANDBOX_DISABLE": "network"]) { $1 }
        let refused = try await runCommand(Fixtures.product("purser"), ["run", job], environment: environment)
        #expect(refused.status == 3)
        #expect(refused.stderr.contains("network: switched off by configuration"))
        let degraded = try await runCommand(Fixtures.product("purser"), ["run", job, "--allow-degraded"], environment: environment)
        #expect(degraded.status == 0, "\(degraded.stderr)")
        #expect(degraded.stdout.contains("a: sandbox: untrusted; NOT ENFORCED: network"))
    }

    /// Once `purser exec` has exited, none of the cgroups its run used is left on the host
    /// (they are pooled while it runs).
    @Test func noCgroupOutlivesTheCommand() async throws {
        let result = try await purser(["exec", Fixtures.product("hostile"), "--env", "HOSTILE_MODE=grandchild", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let containment = try #require(JSONParser.parse(result.stdout)["containment"]?.stringValue)
        let groups = containment.split(separator: ",").compactMap { $0.split(separator: ":", maxSplits: 1).last.map(String.init) }
            .filter { $0.hasPrefix("/sys/fs/cgroup") }
        #expect(!groups.isEmpty, "\(containment)")
        for group in groups { #expect(!FileManager.default.fileExists(atPath: group), "\(group) was left behind") }
    }

    /// A supervisor that is not root makes the namespaces through purser-sandbox, inside a
    /// user namespace; it has no cgroups and cannot give the worker a uid of its own, so it
    /// refuses an untrusted plugin unless allowed to downgrade, and then says so. The walls
    /// and the filter hold all the same.
    @Test(.enabled(if: geteuid() == 0 && Fixtures.reachableByOthers(Fixtures.product("hostile"))))
    func aSupervisorThatIsNotRootSandboxesThroughAUserNamespace() async throws {
        let home = Fixtures.temporaryHome()
        chown(home, 65534, 65534)
        func purser(_ mode: String, _ extra: [String] = []) async throws -> CommandResult {
            try await runCommand("/usr/bin/setpriv", [
                "--reuid=65534", "--regid=65534", "--clear-groups", "env", "PURSER_HOME=\(home)/h", Fixtures.product("purser"),
                "exec", Fixtures.product("hostile"), "--env", "HOSTILE_MODE=\(mode)", "--env", "HOSTILE_TCP=127.0.0.1:1", "--json",
            ] + extra)
        }
        let refused = try await purser("walls")
        #expect(refused.status == 3, "\(refused.stderr)")
        #expect(refused.stderr.contains("unprivileged-user: Operation not permitted"))
        let walls = try await purser("walls", ["--allow-degraded"])
        #expect(walls.status == 0, "\(walls.stderr)")
        let report = try JSONParser.parse(walls.stdout)
        #expect(report["sandbox"]?["applied"] == ["network", "pid-namespace", "mount-namespace", "seccomp", "user-namespace"])
        #expect(report["sandbox"]?["notEnforced"] == ["memory-cgroup", "pids-cgroup", "cpu-cgroup", "unprivileged-user"])
        #expect(report["output"]?["results"]?["tcp"] == "ENETUNREACH")
        #expect(report["output"]?["processes"] == 1)
        #expect(report["output"]?["uid"] == 65534)
        let syscalls = try JSONParser.parse(try await purser("syscalls", ["--allow-degraded"]).stdout)
        #expect(syscalls["output"]?["keyctl"] == "EPERM")
        #expect(syscalls["sandbox"]?["deniedSyscalls"] == ["bpf", "clone", "io_uring_setup", "keyctl", "mount", "ptrace", "setns", "unshare"])
    }

    @Test(arguments: [("loop", Int32(12)), ("exitrun", 11), ("noinit", 17), ("flood", 16), ("overspend", 15)])
    func verdictsHaveTheirOwnExitCodes(mode: String, code: Int32) async throws {
        // Only the loop is meant to meet its deadline; the others get time enough on a busy host.
        let time = mode == "loop" || mode == "noinit" ? "300ms" : "10s"
        let result = try await purser([
            "exec", Fixtures.product("hostile"), "--env", "HOSTILE_MODE=\(mode)", "--time", time, "--credits", "5",
            "--json",
        ])
        #expect(result.status == code, "\(mode): \(result.stdout) \(result.stderr)")
    }
}

@Suite("Units")
struct UnitTests {
    @Test func durations() {
        #expect(Units.parseDuration("500ms") == 500)
        #expect(Units.parseDuration("2m") == 120_000)
        #expect(Units.parseDuration("1h") == 3_600_000)
        #expect(Units.parseDuration("1.5s") == 1_500)
        #expect(Units.parseDuration("30") == 30_000)
        #expect(Units.parseDuration("5parsecs") == nil)
        #expect(Units.parseDuration("-1s") == nil)
        #expect(Units.formatDuration(9_993) == "9.993s")
        #expect(Units.formatDuration(30_000) == "30s")
        #expect(Units.formatDuration(120_000) == "2m")
        #expect(Units.formatDuration(86_400_000) == "24h")
    }

    @Test func sizes() {
        #expect(Units.parseSize("64MiB") == 64 << 20)
        #expect(Units.parseSize("2GiB") == 2 << 30)
        #expect(Units.parseSize("1GB") == 1_000_000_000)
        #expect(Units.parseSize("512K") == 512 << 10)
        #expect(Units.parseSize("100") == 100)
        #expect(Units.parseSize("lots") == nil)
        #expect(Units.formatSize(64 << 20) == "64MiB")
    }
}

@Suite("purser team and purser ledger", .timeLimit(.minutes(1)))
struct LedgerCommandTests {
    let home = Fixtures.temporaryHome()

    func purser(_ arguments: [String]) async throws -> CommandResult {
        try await runPurser(arguments, home: home)
    }

    func teamJSON(_ name: String) async throws -> [JSONValue] {
        let result = try await purser(["team", "show", name, "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        return try JSONParser.parse(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).arrayValue ?? []
    }

    /// A store that cannot be reached is named in the error, never with its password.
    @Test(arguments: [
        "postgresql://postgres:S3cretPw@127.0.0.1:1/db?connect_timeout=1",
        "host=127.0.0.1 port=1 dbname=db password=S3cretPw connect_timeout=1",
    ])
    func anUnreachableStoresPasswordIsNotPrinted(location: String) async throws {
        for command in [["ledger", "verify"], ["hosts"], ["team", "show", "t"]] {
            let result = try await purser(command + ["--ledger", location])
            #expect(result.status == 1, "\(result.stderr)")
            #expect(!result.stderr.contains("S3cretPw") && !result.stdout.contains("S3cretPw"), "\(result.stderr)")
            #expect(result.stderr.contains("127.0.0.1"), "the store is still named: \(result.stderr)")
        }
    }

    @Test func execDrawsFromTheTeamAndReturnsToIt() async throws {
        #expect(try await purser(["team", "create", "acme", "--credits", "100", "--workers", "4"]).status == 0)
        let run = try await purser(["exec", Fixtures.product("wordcount"), "--team", "acme", "--credits", "5", "--input", #""one two three""#, "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try JSONParser.parse(run.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(report["ledgerNode"] != nil)
        let nodes = try await teamJSON("acme")
        let team = try #require(nodes.first)
        #expect(team["available"]?["credits"] == .number(JSONNumber(text: "99.997")!))
        #expect(team["consumed"]?["credits"] == .number(JSONNumber(text: "0.003")!))
        #expect(nodes.count == 2)
        #expect(nodes[1]["returned"]?["credits"] == .number(JSONNumber(text: "4.997")!))
        #expect(try await purser(["ledger", "verify"]).status == 0)
    }

    @Test func aReservationTheTeamCannotGrantIsDeniedAndTakesNothing() async throws {
        #expect(try await purser(["team", "create", "small", "--credits", "1"]).status == 0)
        let run = try await purser(["exec", Fixtures.product("echo"), "--team", "small", "--credits", "2", "--input", "1"])
        #expect(run.status == 19, "\(run.stdout) \(run.stderr)")
        #expect(run.stdout.contains("denied"))
        let nodes = try await teamJSON("small")
        #expect(nodes.count == 1)
        #expect(nodes.first?["available"]?["credits"] == 1)
    }

    @Test func aKilledRunStillReturnsWhatItDidNotUse() async throws {
        #expect(try await purser(["team", "create", "t", "--credits", "10"]).status == 0)
        let run = try await purser(["exec", Fixtures.product("hostile"), "--team", "t", "--credits", "4", "--time", "300ms",
            "--env", "HOSTILE_MODE=loop"])
        #expect(run.status == 12)
        let team = try #require(try await teamJSON("t").first)
        #expect(team["available"]?["credits"] == 10)
        #expect(team["reserved"]?["credits"] == 0)
    }

    @Test(arguments: [
        ["team", "create", "x", "--credits", "-1"],
        ["team", "create", "x", "--credits", "ten"],
        ["team", "create", "x", "--credits", "1", "--memory", "lots"],
        ["team", "show", "nobody"],
        ["exec", "/bin/true", "--team", "nobody"],
        ["ledger", "audit", "--node", "abc"],
    ])
    func badInputIsExitCode2(arguments: [String]) async throws {
        let result = try await purser(arguments)
        #expect(result.status == 2, "\(arguments): \(result.stdout) \(result.stderr)")
        #expect(!result.stderr.isEmpty)
    }

    @Test func statsAndAuditDescribeTheRuns() async throws {
        #expect(try await purser(["team", "create", "s", "--credits", "10"]).status == 0)
        for _ in 0..<2 { _ = try await purser(["exec", Fixtures.product("wordcount"), "--team", "s", "--credits", "1", "--input", #""a b""#]) }
        let stats = try await purser(["ledger", "stats", "--team", "s", "--json"])
        #expect(stats.status == 0)
        let all = try JSONParser.parse(String(stats.stdout.split(separator: "\n").first ?? ""))
        #expect(all["nodes"] == 2)
        #expect(all["utilizationEfficiency"]?.numberValue.map { abs($0.double - 0.002) < 1e-9 } == true)
        let audit = try await purser(["ledger", "audit", "--team", "s"])
        #expect(audit.stdout.contains("reserve"))
        #expect(audit.stdout.contains("settle"))
        #expect(audit.stdout.contains("return"))
    }
}

@Suite("A supervisor killed mid-run", .timeLimit(.minutes(1)))
struct SupervisorDeathLedgerTests {
    @Test func theNextStartReclaimsItsHold() async throws {
        let home = Fixtures.temporaryHome()
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        environment["PURSER_LEASE_MS"] = "600"
        environment.removeValue(forKey: "PURSER_LEDGER")
        let purser = Fixtures.product("purser")
        #expect(try await runCommand(purser, ["team", "create", "t", "--credits", "10"], environment: environment).status == 0)
        let supervisor = Process()
        supervisor.executableURL = URL(fileURLWithPath: purser)
        supervisor.arguments = ["exec", Fixtures.product("hostile"), "--team", "t", "--credits", "4", "--time", "60s",
            "--env", "HOSTILE_MODE=ignoreterm"]
        supervisor.environment = environment
        supervisor.standardOutput = FileHandle.nullDevice
        supervisor.standardError = FileHandle.nullDevice
        try supervisor.run()
        func team() async throws -> JSONValue? {
            let shown = try await runCommand(purser, ["team", "show", "t", "--json"], environment: environment)
            return try JSONParser.parse(shown.stdout.trimmingCharacters(in: .whitespacesAndNewlines)).arrayValue?.first
        }
        var held = false
        for _ in 0..<200 where !held {
            held = try await team()?["reserved"]?["credits"] == 4
            if !held { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(held, "the run never reserved")
        kill(supervisor.processIdentifier, SIGKILL)
        supervisor.waitUntilExit()
        // Any later start of purser reclaims holds whose lease ran out.
        var available: JSONValue?
        for _ in 0..<100 where available != 10 {
            try await Task.sleep(for: .milliseconds(100))
            available = try await team()?["available"]?["credits"]
        }
        #expect(available == 10, "the dead supervisor's hold was not returned")
        #expect(try await runCommand(purser, ["ledger", "verify"], environment: environment).status == 0)
    }
}

@Suite("purser doctor")
struct DoctorTests {
    /// A supervisor holds several fds a worker, so it raises its own soft open-file limit to
    /// the hard one at start: a service manager's soft 1,024 would be a few hundred workers.
    @Test func theSupervisorRaisesItsOpenFileLimit() async throws {
        let result = try await runCommand("/usr/bin/prlimit", ["--nofile=1024:4096", Fixtures.product("purser"), "doctor"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("this supervisor may hold 4096 open files (raised from 1024 at start); each worker 1024."), "\(result.stdout)")
    }

    @Test func itNamesEveryLayerAndWhatRunsGet() async throws {
        let result = try await runCommand(Fixtures.product("purser"), ["doctor", "--json"])
        #expect(result.status == 0)
        let layers = try JSONParser.parse(result.stdout).arrayValue ?? []
        let names = layers.compactMap { $0["name"]?.stringValue }
        for expected in ["root", "cgroup v2 group per run", "memory controller", "pids controller", "network namespace",
                         "PID namespace", "mount namespace", "user namespace", "no_new_privs", "seccomp filter"] {
            #expect(names.contains(expected), "\(names)")
        }
        for layer in layers {
            #expect(layer["available"]?.boolValue != nil)
            // A layer that is missing says what to do; nothing missing is claimed as applied.
            if layer["available"] == false {
                #expect(layer["advice"]?.stringValue != nil)
                #expect(layer["applied"] == false)
            }
        }
    }
}
