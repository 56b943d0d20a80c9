import PurserLedger
import PurserTestSupport
import Testing

/// An integration's rate limiter and breaker in the store, as two supervisors sharing one
/// database see them: each test opens the database twice. Intervals and cool-downs are
/// long (seconds to a minute), so that a slow machine cannot change an answer.
@Suite("Gateway rate store conformance", .storeWork, .timeLimit(.minutes(1)))
struct GatewayRateConformanceTests {
    static let second: Int64 = 1_000_000

    /// Two stores over one fresh database, as two supervisors have.
    static func pair(_ kind: StoreKind) throws -> (any GatewayStateStore, any GatewayStateStore) {
        switch kind {
        case .sqlite:
            let path = Fixtures.temporaryHome() + "/purser.db"
            return (try open(SQLiteDriver(path: path)), try open(SQLiteDriver(path: path)))
        case .postgres:
            let url = try PostgresServer.shared.makeDatabase()
            return (try open(PostgresDriver(url: url)), try open(PostgresDriver(url: url)))
        }
    }

    static func open<Driver: SQLDriver>(_ driver: Driver) throws -> any GatewayStateStore {
        try SQLGatewayStateStore<Driver>.open(driver)
    }

    @Test("the burst, then nothing until the interval passes, whichever supervisor asks", arguments: StoreKind.allCases)
    func burstThenInterval(kind: StoreKind) throws {
        let (a, b) = try Self.pair(kind)
        let interval = 60 * Self.second
        let tolerance = 2 * interval
        #expect(try a.admitCall(name: "api", intervalUs: interval, toleranceUs: tolerance).admitted)
        #expect(try b.admitCall(name: "api", intervalUs: interval, toleranceUs: tolerance).admitted)
        #expect(try a.admitCall(name: "api", intervalUs: interval, toleranceUs: tolerance).admitted)
        let refused = try b.admitCall(name: "api", intervalUs: interval, toleranceUs: tolerance)
        #expect(!refused.admitted && refused.breakerUs == nil)
        #expect(refused.waitUs > 50 * Self.second && refused.waitUs <= interval, "\(refused)")
        #expect(try !a.admitCall(name: "api", intervalUs: interval, toleranceUs: tolerance).admitted)
        #expect(try b.admitCall(name: "other", intervalUs: interval, toleranceUs: 0).admitted, "each integration has its own row")
    }

    @Test("a push back holds every supervisor back until it ends", arguments: StoreKind.allCases)
    func pushBack(kind: StoreKind) throws {
        let (a, b) = try Self.pair(kind)
        try a.pushBackCalls(name: "api", delayUs: 60 * Self.second, toleranceUs: Self.second)
        let refused = try b.admitCall(name: "api", intervalUs: Self.second / 10, toleranceUs: Self.second)
        #expect(!refused.admitted && refused.waitUs > 50 * Self.second && refused.waitUs <= 60 * Self.second, "\(refused)")
    }

    @Test("a breaker opened by one supervisor refuses the other's calls until it is closed", arguments: StoreKind.allCases)
    func breakerOpensForAll(kind: StoreKind) throws {
        let (a, b) = try Self.pair(kind)
        #expect(try b.breakerOpenFor(name: "api") == nil)
        try a.openBreaker(name: "api", coolDownUs: 60 * Self.second)
        let open = try #require(try b.breakerOpenFor(name: "api"))
        #expect(open > 50 * Self.second && open <= 60 * Self.second)
        let refused = try b.admitCall(name: "api", intervalUs: Self.second, toleranceUs: 0)
        #expect(!refused.admitted && (refused.breakerUs ?? 0) > 50 * Self.second, "\(refused)")
        #expect(try !b.takeTrial(name: "api", coolDownUs: 60 * Self.second, intervalUs: 60 * Self.second, toleranceUs: 0),
            "no trial before the cool-down ends")
        try b.closeBreaker(name: "api")
        #expect(try a.breakerOpenFor(name: "api") == nil)
        #expect(try a.admitCall(name: "api", intervalUs: Self.second, toleranceUs: 0).admitted)
    }

    @Test("once the cool-down ends, exactly one supervisor takes the trial", arguments: StoreKind.allCases)
    func oneTrial(kind: StoreKind) throws {
        let (a, b) = try Self.pair(kind)
        try a.openBreaker(name: "api", coolDownUs: 0)
        #expect(try a.breakerOpenFor(name: "api") == 0, "cooled down: open, but a trial may go")
        let taken = [
            try a.takeTrial(name: "api", coolDownUs: 60 * Self.second, intervalUs: 60 * Self.second, toleranceUs: 0),
            try b.takeTrial(name: "api", coolDownUs: 60 * Self.second, intervalUs: 60 * Self.second, toleranceUs: 0),
            try a.takeTrial(name: "api", coolDownUs: 60 * Self.second, intervalUs: 60 * Self.second, toleranceUs: 0),
        ]
        #expect(taken == [true, false, false])
        #expect(try !b.admitCall(name: "api", intervalUs: Self.second, toleranceUs: 0).admitted, "half-open: only the trial")
        // The trial failed: open again for a full cool-down, and no trial until it ends.
        try a.openBreaker(name: "api", coolDownUs: 60 * Self.second)
        #expect(try b.breakerOpenFor(name: "api").map { $0 > 50 * Self.second } == true)
        try a.closeBreaker(name: "api")
        // The trial took the rate's slot: the next call waits its interval.
        #expect(try !b.admitCall(name: "api", intervalUs: Self.second, toleranceUs: 0).admitted)
    }
}
