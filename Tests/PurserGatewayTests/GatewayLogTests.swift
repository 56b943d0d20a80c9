import Foundation
import Logging
import PurserGateway
import PurserLedger
import PurserRuntime
import PurserTestSupport
import Synchronization
import Testing

/// What a gateway logs, kept for the test: message and metadata of each event.
final class KeptLog: Sendable {
    private let events = Mutex<[(message: String, metadata: Logger.Metadata)]>([])
    var all: [(message: String, metadata: Logger.Metadata)] { events.withLock { $0 } }
    func keep(_ message: String, _ metadata: Logger.Metadata) { events.withLock { $0.append((message, metadata)) } }

    var logger: Logger { Logger(label: "test") { _ in KeepingHandler(log: self) } }
}

struct KeepingHandler: LogHandler {
    let log: KeptLog
    var logLevel = Logger.Level.trace
    var metadata: Logger.Metadata = [:]
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) { log.keep(event.message.description, metadata.merging(event.metadata ?? [:]) { $1 }) }
}

/// A quota's correction that the store does not take is logged with its integration and
/// run: it used to be dropped, and the window kept counting the call's maximum cost.
@Suite("Gateway failures reach the log", .timeLimit(.minutes(1)))
struct GatewayLogTests {
    @Test func aQuotaCorrectionTheStoreRefusesIsLogged() async throws {
        let server = try await HTTPTestServer.start()
        defer { server.stop() }
        let home = Fixtures.temporaryHome()
        let store = LedgerGatewayStore(store: try SQLiteLedger(path: home + "/purser.db"))
        let log = KeptLog()
        let gateway = try Gateway(
            config: apiConfig(server, "quotas: [{ per: day, credits: 50 }]\ncost: { perRequest: 1, max: 2 }"), store: store,
            logger: log.logger)
        // The store goes away while the call is upstream, after its quota was taken; only
        // then does the upstream answer (it waits for the gate).
        let gate = home + "/answer"
        let removed = Task {
            await offPool { () -> Bool in
                for _ in 0..<15_000 {
                    if server.requests().contains(where: { $0.path.hasPrefix("/wait") }) {
                        for suffix in ["", "-wal", "-shm"] { unlink(home + "/purser.db" + suffix) }
                        close(open(gate, O_CREAT | O_WRONLY, 0o600))
                        return true
                    }
                    usleep(2_000)
                }
                return false
            }
        }
        let call = await gateway.call("/wait", query: ["file": gate], account: TestAccount())
        #expect(await removed.value, "the call never reached the upstream")
        #expect(call.status == 200)
        let refused = try #require(log.all.first { $0.message.hasPrefix("refunding the quota") }, "\(log.all); the call: \(call)")
        #expect(refused.metadata["integration"] == "api" && refused.metadata["run"] == "r-test", "\(refused)")
        #expect(refused.metadata["error"]?.description.contains("deleted or replaced") == true, "\(refused)")
    }
}
