import Foundation
import PurserProtocol
import PurserRuntime
import PurserSandbox
import PurserTestSupport
import Testing

/// A refused call must not cost the supervisor more than the worker: the one notifier thread
/// that serves every run answers a bounded number of each run's refused calls, and the
/// kernel refuses the rest alone. Counted, not timed.
@Suite("Refused calls cost the supervisor a bounded share", .timeLimit(.minutes(2)))
struct DeniedCallTests {
    func loop(processes: Int, calls: Int) async throws -> (output: JSONValue, sandbox: SandboxReport) {
        let environment = ["HOSTILE_PROCS": "\(processes)", "HOSTILE_CALLS": "\(calls)"]
        let report = try await run(Fixtures.hostile("deniedloop", timeMs: 60_000, environment: environment))
        #expect(report.verdict == .ok, "\(report.message ?? "") \(report.stderrTail)")
        return (try #require(report.output), try #require(report.sandbox))
    }

    /// 4 processes × 5,000 refused calls: every one fails, and the supervisor answers at most
    /// its share of them, the first ones (EPERM), and says that it stopped counting. Then,
    /// with the run's listener let go, the worker cannot put one of its own in its place and
    /// answer its own refused calls "go on".
    @Test func aLoopOfRefusedCallsIsAnsweredAFewTimesByTheSupervisor() async throws {
        let (output, sandbox) = try await loop(processes: 4, calls: 5_000)
        #expect(output["calls"] == 20_000)
        #expect(output["OK"] == 0, "every call refused: \(output)")
        #expect(output["other"] == 0, "\(output)")
        #expect(sandbox.deniedCalls <= Isolation.watchedDeniedCalls, "the supervisor answered \(sandbox.deniedCalls) of 20000 refused calls")
        #expect(sandbox.deniedCalls > 0)
        #expect(sandbox.deniedCallsCapped)
        #expect(sandbox.deniedSyscalls == ["keyctl"])
        #expect(output["EPERM"] == .number(JSONNumber(Int64(sandbox.deniedCalls))), "those the supervisor answered: \(output)")
        #expect(output["own listener"] == "EPERM", "\(output)")
        #expect(output["keyctl through own listener"] != "OK", "\(output)")
    }

    /// Below the cap every refused call is seen, and none is left to the kernel.
    @Test func aFewRefusedCallsAreAllCounted() async throws {
        let (output, sandbox) = try await loop(processes: 2, calls: 10)
        #expect(output["EPERM"] == 20)
        #expect(sandbox.deniedCalls == 20)
        #expect(!sandbox.deniedCallsCapped)
    }
}
