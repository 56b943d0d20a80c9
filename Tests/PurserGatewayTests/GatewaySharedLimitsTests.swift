import Foundation
import PurserGateway
import PurserLedger
import PurserProtocol
import PurserRuntime
import PurserTestSupport
import Testing

/// Two supervisors' gateways over one store (a SQLite file, or a PostgreSQL database),
/// each with its own connection, as two hosts of a fleet have: an integration's rate
/// limit, a 429's push back and an open breaker hold for both, not for each.
@Suite("Gateway limits shared through the store", .serialized, .timeLimit(.minutes(2)))
struct GatewaySharedLimitsTests {
    enum Kind: String, CaseIterable, Sendable { case sqlite, postgres }

    let server: HTTPTestServer

    init() async throws { server = try await HTTPTestServer.start() }

    /// Two gateways of one config, each over a store of its own on one database.
    func pair(_ kind: Kind, _ extra: String) async throws -> (Gateway, Gateway) {
        let location = switch kind {
        case .sqlite: Fixtures.temporaryHome() + "/purser.db"
        case .postgres: try await PostgresServer.database()
        }
        func gateway() throws -> Gateway {
            try Gateway(config: apiConfig(server, extra), store: LedgerGatewayStore(store: LedgerLocation.open(location)))
        }
        return (try gateway(), try gateway())
    }

    @Test("the rate holds across both: the burst, then nothing", arguments: Kind.allCases)
    func rateHoldsInTotal(kind: Kind) async throws {
        defer { server.stop() }
        let (a, b) = try await pair(kind, "rateLimit: { rate: 1/h, burst: 2 }")
        let account = TestAccount()
        #expect(await a.call("/ok", account: account).status == 200)
        #expect(await b.call("/ok", account: account).status == 200)
        #expect(await a.call("/ok", account: account).reason == .rateLimited)
        let refused = await b.call("/ok", account: account)
        #expect(refused.reason == .rateLimited)
        if case .failure(let failure) = refused { #expect((3_000_000...3_600_000).contains(failure.retryAfterMs ?? 0)) }
        #expect(server.requests().count == 2, "two calls reached the upstream, not four")
    }

    @Test("a 429 seen by one holds the other back", arguments: Kind.allCases)
    func a429HoldsBackBoth(kind: Kind) async throws {
        defer { server.stop() }
        let (a, b) = try await pair(kind, "rateLimit: { rate: 100/s, burst: 10 }\nretries: { max: 0 }")
        let account = TestAccount()
        #expect(await a.call("/status/429", query: ["retry": "3600"], account: account).status == 429)
        let next = await b.call("/ok", account: account)
        #expect(next.reason == .rateLimited)
        if case .failure(let failure) = next { #expect((3_000_000...3_600_100).contains(failure.retryAfterMs ?? 0)) }
        #expect(server.requests().count == 1)
    }

    /// Without a rate limit too: the other sees the breaker within a second.
    @Test("a breaker opened by one refuses the other's calls", arguments: Kind.allCases, ["", "rateLimit: { rate: 100/s, burst: 10 }"])
    func anOpenBreakerHoldsForBoth(kind: Kind, rate: String) async throws {
        defer { server.stop() }
        let (a, b) = try await pair(kind, "retries: { max: 0 }\nbreaker: { failures: 2, coolDown: 1h }\n" + rate)
        let account = TestAccount()
        #expect(await b.call("/ok", account: account).status == 200, "b has seen the breaker closed")
        for _ in 0..<2 { #expect(await a.call("/status/503", account: account).status == 503) }
        try await Task.sleep(for: .milliseconds(1_100))
        let refused = await b.call("/ok", account: account)
        #expect(refused.reason == .upstreamUnavailable)
        if case .failure(let failure) = refused { #expect((3_000_000...3_600_000).contains(failure.retryAfterMs ?? 0)) }
        #expect(server.requests().count == 3, "an open breaker sends nothing, from either")
        #expect(b.status().first?.breaker == "open")
    }

    /// Quotas and the cache's persistent tier were in the store before the rate was: they
    /// stay exact with two supervisors calling at once.
    @Test("a quota and the cache's persistent tier stay exact across both", arguments: Kind.allCases)
    func quotaAndCacheStayExact(kind: Kind) async throws {
        defer { server.stop() }
        let (a, b) = try await pair(kind, "quotas: [{ per: day, requests: 7 }]\ncache: { ttl: 1h, scope: shared }")
        let account = TestAccount()
        #expect(try await a.call("/count", account: account).get().cached == false)
        #expect(try await b.call("/count", account: account).get().cached == true, "b is answered from a's call")
        let results = await withTaskGroup(of: Result<GatewayCallResult, GatewayFailure>.self) { group in
            for index in 0..<20 {
                group.addTask { await (index % 2 == 0 ? a : b).call("/ok", method: "POST", account: account) }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter { $0.status == 200 }.count == 6, "the quota's seven requests, one of them the cached GET's")
        #expect(results.filter { $0.reason == .quotaExceeded }.count == 14)
        #expect(server.requests().count == 7)
    }

    /// The store goes away (its files deleted under it): the next call neither crashes nor
    /// hangs; it fails saying why, sends nothing upstream, and the failure is logged.
    @Test func aCallWhoseRateStoreFailsFailsClearly() async throws {
        defer { server.stop() }
        let home = Fixtures.temporaryHome()
        let log = KeptLog()
        let gateway = try Gateway(
            config: apiConfig(server, "rateLimit: { rate: 10/s, burst: 5 }"),
            store: LedgerGatewayStore(store: SQLiteLedger(path: home + "/purser.db")), logger: log.logger)
        let account = TestAccount()
        #expect(await gateway.call("/ok", account: account).status == 200)
        for suffix in ["", "-wal", "-shm"] { unlink(home + "/purser.db" + suffix) }
        let failed = await gateway.call("/ok", account: account)
        #expect(failed.reason == .upstreamUnavailable)
        if case .failure(let failure) = failed { #expect(failure.message.hasPrefix("the rate limit store failed"), "\(failure)") }
        #expect(server.requests().count == 1)
        let logged = try #require(log.all.first { $0.message == "admitting a call failed" }, "\(log.all)")
        #expect(logged.metadata["integration"] == "api")
    }

    /// The largest burst of the slowest rate the config takes: its tolerance, burst - 1
    /// intervals of a day, is past Int64's nanoseconds (it trapped).
    @Test("a day's rate with the largest burst admits calls, alone and shared", arguments: [false, true])
    func theLargestToleranceFits(shared: Bool) async throws {
        defer { server.stop() }
        let config = try apiConfig(server, "rateLimit: { rate: 1/d, burst: 1000000 }")
        let store: any GatewayStore = shared
            ? LedgerGatewayStore(store: try SQLiteLedger(path: Fixtures.temporaryHome() + "/purser.db")) : MemoryGatewayStore()
        let gateway = try Gateway(config: config, store: store)
        for _ in 0..<3 { #expect(await gateway.call("/ok", account: TestAccount()).status == 200) }
    }

    /// Once the cool-down has passed, one supervisor's call is the trial; the other's is
    /// refused while it is in flight, and admitted once the trial has closed the breaker.
    @Test("one supervisor takes the half-open trial, and its success closes the breaker for both", arguments: Kind.allCases)
    func oneTrialForBoth(kind: Kind) async throws {
        defer { server.stop() }
        let (a, b) = try await pair(kind, "retries: { max: 0 }\nbreaker: { failures: 2, coolDown: 1s }")
        let account = TestAccount()
        for _ in 0..<2 { #expect(await a.call("/status/503", account: account).status == 503) }
        try await Task.sleep(for: .milliseconds(1_300))
        let gate = Fixtures.temporaryHome() + "/answer"
        let trial = Task { await a.call("/wait", query: ["file": gate], account: account) }
        let upstream = server
        let arrived = await offPool { () -> Bool in
            for _ in 0..<3_000 {
                if upstream.requests().contains(where: { $0.path.hasPrefix("/wait") }) { return true }
                usleep(5_000)
            }
            return false
        }
        #expect(arrived, "the trial never reached the upstream")
        let refused = await b.call("/ok", account: account)
        #expect(refused.reason == .upstreamUnavailable)
        if case .failure(let failure) = refused { #expect(failure.message.contains("trial"), "\(failure)") }
        close(open(gate, O_CREAT | O_WRONLY, 0o600))
        #expect(await trial.value.status == 200)
        try await Task.sleep(for: .milliseconds(1_100))
        #expect(await b.call("/ok", account: account).status == 200, "the trial closed the breaker for b too")
        #expect(server.requests().count == 4)
    }
}
