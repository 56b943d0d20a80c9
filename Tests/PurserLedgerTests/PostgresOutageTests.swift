import Foundation
import PurserLedger
import PurserTestSupport
import Synchronization
import Testing

/// A PostgreSQL that goes away and comes back, on the fault tests' own server (the shared
/// one serves every other test meanwhile). Nothing here measures time: the server
/// is stopped before the call that must wait, and started again from another thread. What
/// blocks (the server's programs, calls that wait for it) runs `offPool`.
@Suite("PostgreSQL outages", .storeWork, .serialized, .timeLimit(.minutes(3)))
struct PostgresOutageTests {
    /// Stops `server`, runs `body`, which meets a server that is down, and starts the server
    /// again from another thread once `delay` has passed; returns once it is back.
    static func whileDown<T: Sendable>(
        _ server: PostgresServer, mode: String = "fast", after delay: Double = 0.8, _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        try await offPool {
            try server.stopServer(mode: mode)
            let restart = Mutex<Result<Void, any Error>>(.success(()))
            let back = DispatchSemaphore(value: 0)
            Thread {
                Thread.sleep(forTimeInterval: delay)
                restart.withLock { $0 = Result { try server.startServer() } }
                back.signal()
            }.start()
            let result = Result { try body() }
            back.wait()
            try restart.withLock { $0 }.get()
            return try result.get()
        }
    }

    /// The fault tests' server (`giveBack()` it when done), a database of the test's own on
    /// it, and a store on that.
    static func privateStore(retry: StoreRetry = StoreRetry()) async throws -> (PostgresServer, PostgresLedger, String) {
        let server = try await PostgresServer.borrowForFaults()
        do {
            return try await offPool {
                let url = try server.makeDatabase()
                return (server, try PostgresLedger(url: url, retry: retry), url)
            }
        } catch {
            server.giveBack()
            throw error
        }
    }

    /// A settle and a reserve made while the server is down wait for it and succeed once it
    /// is back; the settle, made again, changes nothing (a retry after an answer lost in
    /// flight cannot charge twice).
    @Test func callsWaitForTheServerToComeBack() async throws {
        let (server, store, _) = try await Self.privateStore()
        defer { server.giveBack() }
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 100 * credit)))
        let first = try store.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "a", amounts: Resources(credits: 10 * credit)))

        let usage = Usage(credits: 8 * credit, timeMs: 5, memoryPeakBytes: 1024)
        let settled = try await Self.whileDown(server) { try store.settle(first.id, usage: usage, outcome: "ok", holder: nil) }
        #expect(settled.used.credits == 8 * credit)

        let second = try await Self.whileDown(server, mode: "immediate") {
            try store.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "b", amounts: Resources(credits: 10 * credit)))
        }
        #expect(second.cap.credits == 10 * credit)

        let again = try store.settle(first.id, usage: usage, outcome: "ok", holder: nil)
        #expect(again == settled)
        #expect(try store.node(team.id).consumed.credits == 8 * credit, "charged once")
        try expectVerified(store)
    }

    /// A hold reclaimed while its supervisor was cut off stays reclaimed: the settle the
    /// supervisor makes once it is back is fenced, not taken for an earlier attempt of its own.
    @Test func aReclaimedHoldStaysFencedAcrossAReconnect() async throws {
        let (server, supervisor, url) = try await Self.privateStore()
        defer { server.giveBack() }
        let team = try supervisor.createTeam(TeamSpec(name: "t", caps: Resources(credits: 100 * credit)))
        let holder = try supervisor.acquireLease(holder: "away", ttlMs: 1)
        let node = try supervisor.reserve(ReserveRequest(
            parent: team.id, kind: .swarm, name: "s", amounts: Resources(credits: 10 * credit), holder: holder))
        try await Task.sleep(for: .milliseconds(10))
        let other = try PostgresLedger(url: url)
        #expect(try other.reclaimExpired().map(\.node) == [node.id])

        let late = try await Self.whileDown(server) { () -> Result<Settlement, LedgerError> in
            Result { () throws(LedgerError) in
                try supervisor.settle(node.id, usage: Usage(credits: credit, timeMs: 0, memoryPeakBytes: 0), outcome: "ok", holder: holder)
            }
        }
        #expect(throws: LedgerError.self) { try late.get() }
        if case .failure(let error) = late { #expect(error.code == .fenced, "\(error)") }
        #expect(try supervisor.node(team.id).available.credits == 100 * credit)
        try expectVerified(supervisor)
    }

    /// Past its window the call gives up with a store error (not a refusal), saying so; the
    /// next call fails at once; once the server is back, calls work again, on what the
    /// store kept.
    @Test func aServerAwayPastTheWindowIsAStoreError() async throws {
        let notices = Mutex<[String]>([])
        let (server, store, _) = try await Self.privateStore(
            retry: StoreRetry(windowMs: 300) { message in notices.withLock { $0.append(message) } })
        defer { server.giveBack() }
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 100 * credit)))
        let node = try store.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "a", amounts: Resources(credits: 10 * credit)))

        try await offPool { try server.stopServer() }
        for _ in 0..<2 {
            let refused = try await offPool { () -> Result<Settlement, LedgerError> in
                Result { () throws(LedgerError) in
                    try store.settle(node.id, usage: Usage(credits: credit, timeMs: 0, memoryPeakBytes: 0), outcome: "ok", holder: nil)
                }
            }
            guard case .failure(let error) = refused else {
                Issue.record("settled on a server that is down")
                continue
            }
            #expect(error.code == .storeFailed)
            #expect(error.message.contains("gave up"), "\(error)")
        }
        let said = notices.withLock { $0 }
        #expect(said.contains { $0.contains("retry 1 in") }, "\(said)")
        #expect(said.filter { $0.contains("gave up") }.count == 1, "\(said)")
        #expect(said.last?.contains("still unreachable") == true, "the second call failed at once: \(said)")

        try await offPool { try server.startServer() }
        let settled = try store.settle(node.id, usage: Usage(credits: credit, timeMs: 0, memoryPeakBytes: 0), outcome: "ok", holder: nil)
        #expect(settled.used.credits == credit)
        #expect(notices.withLock { $0 }.last?.contains("reconnected") == true)
        try expectVerified(store)
    }
}
