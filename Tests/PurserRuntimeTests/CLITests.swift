import Foundation
import PurserProtocol
import PurserRuntime
import PurserTestSupport
import Testing

@Suite("purser exec", .timeLimit(.minutes(1)))
struct ExecCommandTests {
    let home = Fixtures.temporaryHome()

    func purser(_ arguments: [String], directory: String? = nil) throws -> CommandResult {
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        return try runCommand(Fixtures.product("purser"), arguments, environment: environment, directory: directory)
    }

    @Test func aRelativePluginPathIsResolvedBeforeTheWorkerChangesDirectory() throws {
        let result = try purser(["exec", "./echo", "--input", "1"], directory: Fixtures.buildDirectory)
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
    }

    @Test func jsonReportHasEveryKey() throws {
        let result = try purser(["exec", Fixtures.product("wordcount"), "--input", #"{"text":"a b c"}"#, "--credits", "2", "--json"])
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

    @Test func humanReportShowsReservedUsedReturned() throws {
        let result = try purser(["exec", Fixtures.product("echo"), "--input", "[1,2]", "--time", "5s", "--memory", "64MiB"])
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
    func badInputIsExitCode2AndNamesTheFlag(arguments: [String], flag: String) throws {
        let result = try purser(["exec", Fixtures.product("echo")] + arguments)
        #expect(result.status == 2, "\(arguments): \(result.stderr)")
        #expect(result.stderr.contains(flag), "\(result.stderr) should name \(flag)")
        let runs = (try? FileManager.default.contentsOfDirectory(atPath: home + "/work")) ?? []
        #expect(runs.isEmpty, "bad input must not leave a run behind")
    }

    @Test func aMissingPluginIsExitCode2() throws {
        let result = try purser(["exec", "/nonexistent/plugin"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("/nonexistent/plugin"))
    }

    @Test(arguments: [("loop", Int32(12)), ("exitrun", 11), ("noinit", 17), ("flood", 16), ("overspend", 15)])
    func verdictsHaveTheirOwnExitCodes(mode: String, code: Int32) throws {
        let result = try purser([
            "exec", Fixtures.product("hostile"), "--env", "HOSTILE_MODE=\(mode)", "--time", "300ms", "--credits", "5",
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
