import Foundation
import PurserConfig
import PurserGateway
import PurserProtocol
import PurserTestSupport
import Testing

/// What the upstream reads is what the gateway checked: headers that make it read another
/// method, path, host or client are never sent, and no path segment is one a common server
/// would take for "." or "..".
@Suite("Gateway request rules", .serialized, .timeLimit(.minutes(3)))
struct GatewayRequestRulesTests {
    let server: HTTPTestServer

    init() async throws { server = try await HTTPTestServer.start() }

    /// Headers outside the default allow-list, each refused before anything is sent, on
    /// an integration that allows GET only.
    @Test func headersOutsideTheAllowListAreRefusedAndNeverSent() async throws {
        let gateway = try Gateway(config: apiConfig(server, "methods: [GET]"))
        for (name, value) in Self.refusedHeaders {
            let result = await gateway.call("/echo", headers: [name: value], account: TestAccount())
            #expect(result.reason == .invalidRequest, "\(name) was not refused: \(result.status ?? 0)")
        }
        #expect(server.requests().isEmpty, "\(server.requests().map(\.headers))")
    }

    static let refusedHeaders = [
        ("X-HTTP-Method-Override", "DELETE"), ("X-HTTP-Method", "DELETE"), ("X-Method-Override", "DELETE"),
        ("x-http-method-override", "PUT"), ("X-Original-URL", "/admin"), ("X-Rewrite-URL", "/admin"),
        ("X-Original-Method", "DELETE"), ("X-Forwarded-Host", "evil.example"), ("X-Forwarded-For", "127.0.0.1"),
        ("X-Forwarded-Proto", "https"), ("X-Forwarded-Prefix", "/admin"), ("X-Forwarded-Port", "443"),
        ("X-Forwarded-Server", "evil"), ("Forwarded", "host=evil.example"), ("Via", "1.1 evil"), ("X-Real-IP", "127.0.0.1"),
        ("X-Host", "evil.example"), ("X-Original-Host", "evil.example"), ("Accept-Encoding", "gzip"),
        ("Accept-Charset", "utf-16"), ("Range", "bytes=0-10"), ("If-Range", "\"x\""), ("TE", "trailers"),
        ("Cookie", "a=b"), ("Authorization", "Basic eDp5"), ("X-Api-Key", "mine"), ("Host", "evil.example"),
        ("Content-Length", "0"), ("Transfer-Encoding", "chunked"), ("Connection", "close"), ("Upgrade", "h2c"),
        ("Proxy-Authorization", "x"), ("Max-Forwards", "0"), ("X-Anything", "1"), ("Content-Encoding", "gzip"),
    ]

    /// Headers everyday clients send pass by default.
    @Test func theDefaultAllowListPassesEverydayHeaders() async throws {
        let gateway = try Gateway(config: apiConfig(server))
        let headers = [
            "Accept": "application/json", "Accept-Language": "fr", "Content-Type": "application/json",
            "User-Agent": "worker/1", "If-None-Match": "\"e1\"", "If-Match": "\"e2\"",
            "If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT", "If-Unmodified-Since": "Sun, 06 Nov 1994 08:49:37 GMT",
            "Idempotency-Key": "k-1", "X-Request-Id": "r-1",
        ]
        let result = await gateway.call("/echo", headers: headers, account: TestAccount())
        #expect(result.status == 200, "\(result)")
        let seen = try #require(server.requests().last)
        for (name, value) in headers { #expect(seen.header(name) == value, "\(name)") }
    }

    /// An integration's `headers` replaces the default list: what it names passes (in any
    /// case), what it leaves out is refused.
    @Test func anIntegrationsHeadersListReplacesTheDefault() async throws {
        let gateway = try Gateway(config: apiConfig(server, "headers: [X-Trace, accept]"))
        let account = TestAccount()
        let passed = await gateway.call("/echo", headers: ["x-trace": "t1", "Accept": "text/plain"], account: account)
        #expect(passed.status == 200, "\(passed)")
        #expect(server.requests().last?.header("X-Trace") == "t1")
        let refused = await gateway.call("/echo", headers: ["User-Agent": "worker/1"], account: account)
        #expect(refused.reason == .invalidRequest)
        #expect(server.requests().count == 1)
    }

    /// Paths a servlet container, IIS, or a Unicode-normalising server would read as "."
    /// or "..", or with matrix parameters; and paths not valid once decoded.
    @Test func matrixAndDotLikeSegmentsAreRefused() async throws {
        let gateway = try Gateway(config: apiConfig(server, base: server.baseURL + "/api/"))
        for path in Self.refusedPaths {
            let result = await gateway.call(path, account: TestAccount())
            #expect(result.reason == .invalidRequest, "\(path) was not refused")
        }
        #expect(server.requests().isEmpty, "\(server.requests().map(\.path))")
    }

    static let refusedPaths = [
        "/..;/admin", "/%2e%2e;/admin", "/.;/admin", "/a/..;/b", "/..;x=1/admin", "/..%3b/admin", "/..%3B/admin",
        "/%2e%2e%3b/admin", "/a;b/c", "/a;jsessionid=1", "/ok;", "/%3b", "/a/.;/b", "/.%3b/admin",
        "/%c0%ae%c0%ae/admin", "/%c0%2e/admin", "/%e0%80%ae%e0%80%ae/admin", "/%ef%bc%8e%ef%bc%8e/admin",
        "/%ef%bc%8e/admin", "/%e2%80%a4%e2%80%a4/admin", "/%e2%80%a5/admin", "/%ef%b9%92%ef%b9%92/admin", "/%u002e%u002e/admin",
        "/.../admin", "/..%20/admin", "/.%20/admin", "/..%2e/admin", "/%ff/admin", "/%ed%a0%80/admin",
        "/%ef%bc%8f..%ef%bc%8fadmin", "/..%ef%bc%8fadmin", "/%ef%bc%9b/admin",
    ]

    /// Ordinary paths still go through as written.
    @Test func ordinaryPathsStillPass() async throws {
        let gateway = try Gateway(config: apiConfig(server))
        for path in [
            "/a.b/c", "/.well-known/thing", "/v1/items/..a", "/v1/a..", "/%E2%82%AC", "/a%20b", "/a:b@c", "/a=b,c",
            "/search?q=a;b", "/x/", "/caf%C3%A9",
        ] {
            let result = await gateway.call(path, account: TestAccount())
            #expect(result.status == 404, "\(path): \(result)")
            #expect(server.requests().last?.path == path)
        }
    }

    /// A redirect to a path the worker could not have asked for is not followed.
    @Test func redirectsToMatrixOrDotLikePathsAreNotFollowed() async throws {
        let gateway = try Gateway(config: apiConfig(server))
        let targets = [
            "/..;/ok", "/%2e%2e;/ok", "/.;/ok", "/a;b/ok", "/%c0%ae%c0%ae/ok", "/%ef%bc%8e%ef%bc%8e/ok", "/..%3b/ok",
            server.baseURL + "/..;/ok", server.baseURL + "/x/..;/ok",
        ]
        for target in targets {
            let result = await gateway.call("/redirect", query: ["to": target], account: TestAccount())
            #expect(result.reason == .invalidRequest, "\(target) was followed: \(result)")
        }
        #expect(server.requests().allSatisfy { $0.path.hasPrefix("/redirect?") }, "\(server.requests().map(\.path))")
    }
}
