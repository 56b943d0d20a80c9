import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

@Suite("purser exec", .timeLimit(.minutes(1)))
struct ExecCommandTests {
    let home = Fixtures.temporaryHome()

    func purser(_ arguments: [String]) throws -> CommandResult {
        var environment = ProcessInfo.processInfo.environment
        environment["PURSER_HOME"] = home
        return try runCommand(Fixtures.product("purser"), arguments, environment: environment)
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
