import Foundation
import PurserConformance
import PurserProtocol
import PurserRuntime
import PurserSandbox
import PurserTestSupport
import Testing

/// Runs the checks on `executable` as `purser conformance` does, in the untrusted sandbox.
func conformance(
    _ executable: String, input: JSONValue? = nil, environment: [String: String] = [:], only: Set<String>? = nil,
    options: ConformanceOptions = ConformanceOptions()
) async throws -> [CheckOutcome] {
    var options = options
    if let input { options.input = input }
    var request = RunRequest(
        executable: executable, input: options.input, credits: options.credits, wallTimeMs: options.runTimeMs,
        memoryBytes: options.memoryBytes)
    // The tag finds the workers' processes afterwards, whatever namespace they were in.
    let tag = UUID().uuidString
    request.environment = environment.merging(["HOSTILE_TAG": tag]) { $1 }
    let home = Fixtures.temporaryHome()
    // A runtime's start clears what dead supervisors left and starts the watchdog: off the pool.
    let launch = try await offPool { [request] in try Runtime(home: home).launch(request) }
    let outcomes = await Conformance.check(launch, options: options, only: only)
    // Off the pool: the janitor may have many groups to remove, and a blocked pool stalls every test.
    let (survivors, leftovers) = await offPool { () -> ([Int32], [String: [String]]) in
        Janitor.finish()
        let directories = (try? FileManager.default.contentsOfDirectory(atPath: home + "/work")) ?? []
        let contents = directories.map { ($0, (try? FileManager.default.contentsOfDirectory(atPath: home + "/work/" + $0)) ?? []) }
        return (Fixtures.processes(tagged: tag), Dictionary(uniqueKeysWithValues: contents).filter { !$0.value.isEmpty })
    }
    #expect(survivors.isEmpty, "processes of a checked worker outlived their check")
    #expect(leftovers.isEmpty, "run directories left with files: \(leftovers)")
    return outcomes
}

/// The names of the checks that failed, with each failure's detail for the message.
func failures(_ outcomes: [CheckOutcome]) -> (names: [String], details: String) {
    let failed = outcomes.filter { $0.result.status == .fail }
    return (failed.map(\.name), failed.map { "\($0.name): \($0.result.detail)" }.joined(separator: "\n"))
}

/// Runs the MCP checks on `executable ARGUMENTS` as `purser conformance --mcp` does
/// (unsandboxed), and sees that no process of the server outlived them.
func mcpConformance(
    _ executable: String, _ arguments: [String] = [], environment: [String: String] = [:], only: Set<String>? = nil,
    options: ConformanceOptions = .mcp
) async throws -> [CheckOutcome] {
    var request = RunRequest(
        executable: executable, input: options.input, credits: options.credits, wallTimeMs: options.runTimeMs,
        memoryBytes: options.memoryBytes)
    request.arguments = arguments
    request.sandbox = .trusted
    let tag = UUID().uuidString
    request.environment = environment.merging(["HOSTILE_TAG": tag]) { $1 }
    let home = Fixtures.temporaryHome()
    let launch = try await offPool { [request] in try Runtime(home: home).launch(request) }
    let outcomes = await Conformance.checkMCP(launch, options: options, only: only)
    let survivors = await offPool { () -> [Int32] in
        Janitor.finish()
        return Fixtures.processes(tagged: tag)
    }
    #expect(survivors.isEmpty, "processes of a checked MCP server outlived their check")
    return outcomes
}
