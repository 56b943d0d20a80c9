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
    let launch = try Runtime(home: home).launch(request)
    let outcomes = await Conformance.check(launch, options: options, only: only)
    Janitor.finish()
    #expect(Fixtures.processes(tagged: tag).isEmpty, "processes of a checked worker outlived their check")
    let leftovers = (try? FileManager.default.contentsOfDirectory(atPath: home + "/work")) ?? []
    for leftover in leftovers {
        let contents = (try? FileManager.default.contentsOfDirectory(atPath: home + "/work/" + leftover)) ?? []
        #expect(contents.isEmpty, "run directory \(leftover) left with \(contents)")
    }
    return outcomes
}

/// The names of the checks that failed, with each failure's detail for the message.
func failures(_ outcomes: [CheckOutcome]) -> (names: [String], details: String) {
    let failed = outcomes.filter { $0.result.status == .fail }
    return (failed.map(\.name), failed.map { "\($0.name): \($0.result.detail)" }.joined(separator: "\n"))
}
