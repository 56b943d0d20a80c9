import Foundation
import PurserTestSupport
import Testing

@Suite("The harness's commands")
struct CommandCancelTests {
    @Test("a cancelled runCommand kills its command: a test past its time limit fails instead of hanging the run")
    func cancelKills() async throws {
        let running = Task { try await runCommand("/bin/sleep", ["600"]) }
        try await Task.sleep(for: .milliseconds(300))
        running.cancel()
        let result = try await running.value
        #expect(result.status != 0, "sleep 600 was killed, not waited for: \(result.status)")
    }
}
