import Foundation
import PurserConfig
import PurserGateway
import PurserProtocol
import PurserTestSupport
import Testing

/// A cached answer is only ever given for the very request that got it: same headers, no
/// body, and, unless the integration says answers may be shared, the same team.
@Suite("Gateway cache keys and scope", .serialized, .timeLimit(.minutes(3)))
struct GatewayCacheTests {
    let server: HTTPTestServer

    init() async throws { server = try await HTTPTestServer.start() }

    func cachedGateway(_ extra: String = "", store: MemoryGatewayStore = MemoryGatewayStore()) throws -> Gateway {
        try Gateway(config: apiConfig(server, "cache: { ttl: 1m\(extra) }"), store: store)
    }

    /// A GET whose headers change the answer does not plant it for a plain GET of the same
    /// URL, nor the other way round; the same headers again hit.
    @Test(arguments: [["Accept-Language": "xx-poison"], ["Accept": "text/x-poison"], ["accept": "text/x-poison"]])
    func workerSetHeadersArePartOfTheKey(headers: [String: String]) async throws {
        let gateway = try cachedGateway()
        let account = TestAccount()
        let planted = await gateway.call("/echo", headers: headers, account: account)
        #expect(planted.bodyText.contains("x-poison"))
        let plain = await gateway.call("/echo", account: account)
        #expect(try plain.get().cached == false, "a plain GET got the answer to another request")
        #expect(!plain.bodyText.contains("x-poison"))
        #expect(try await gateway.call("/echo", headers: headers, account: account).get().cached == true)
        #expect(try await gateway.call("/echo", account: account).get().cached == true)
        #expect(server.requests().count == 2)
    }

    /// Headers differing only in the case of their names are the same request.
    @Test func headerNamesAreKeyedCaseInsensitively() async throws {
        let gateway = try cachedGateway()
        let account = TestAccount()
        _ = await gateway.call("/echo", headers: ["Accept": "text/plain"], account: account)
        #expect(try await gateway.call("/echo", headers: ["ACCEPT": "text/plain"], account: account).get().cached == true)
    }

    /// The query is part of the key however the worker wrote it: in the path or in `query`.
    @Test func theKeyIsTheURLAsSent() async throws {
        let gateway = try cachedGateway()
        let account = TestAccount()
        _ = await gateway.call("/count?a=1", account: account)
        #expect(try await gateway.call("/count", query: ["a": "1"], account: account).get().cached == true)
        #expect(try await gateway.call("/count", query: ["a": "2"], account: account).get().cached == false)
        #expect(try await gateway.call("/count?a=1&b=2", account: account).get().cached == false)
    }

    /// By default each team has its own answers, in memory and in the store: another
    /// team's call goes upstream, here and on a second supervisor sharing the store.
    @Test func cachedAnswersStayWithTheirTeamInBothTiers() async throws {
        let store = MemoryGatewayStore()
        let first = try cachedGateway(store: store)
        let account = TestAccount()
        #expect(try await first.call("/count", account: account, team: "a").get().cached == false)
        #expect(try await first.call("/count", account: account, team: "a").get().cached == true)
        #expect(try await first.call("/count", account: account, team: "b").get().cached == false)
        #expect(try await first.call("/count", account: account).get().cached == false, "no team is a team of its own")
        let second = try cachedGateway(store: store)
        #expect(try await second.call("/count", account: account, team: "a").get().cached == true, "the store's tier")
        #expect(try await second.call("/count", account: account, team: "c").get().cached == false)
        #expect(server.requests().count == 4)
    }

    /// `scope: shared` lets every team's call be answered from the cache.
    @Test func aSharedCacheAnswersEveryTeam() async throws {
        let gateway = try cachedGateway(", scope: shared")
        let account = TestAccount()
        #expect(try await gateway.call("/count", account: account, team: "a").get().cached == false)
        #expect(try await gateway.call("/count", account: account, team: "b").get().cached == true)
        #expect(try await gateway.call("/count", account: account).get().cached == true)
        #expect(server.requests().count == 1)
    }

    /// A team named like another's key cannot reach it: the key's fields are delimited.
    @Test func teamNamesCannotForgeAnotherKey() async throws {
        let gateway = try cachedGateway()
        let account = TestAccount()
        _ = await gateway.call("/count", account: account, team: "a")
        #expect(try await gateway.call("/count", account: account, team: "a 1:x").get().cached == false)
        #expect(try await gateway.call("/count", account: account, team: "").get().cached == false)
    }
}
