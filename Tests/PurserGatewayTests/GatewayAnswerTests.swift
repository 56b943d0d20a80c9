import Foundation
import PurserConfig
import PurserGateway
import PurserProtocol
import PurserTestSupport
import Testing

/// One way a worker may ask the upstream to shape its answer: the calls it makes to /echo
/// (several for a split answer), each with query and headers.
struct AnswerShape: Sendable {
    var name: String
    var calls: [(query: [String: String], headers: [String: String])]

    init(_ name: String, query: [String: String] = [:], headers: [String: String] = [:]) {
        self.name = name
        calls = [(query, headers)]
    }

    init(_ name: String, calls: [(query: [String: String], headers: [String: String])]) {
        self.name = name
        self.calls = calls
    }

    /// Consecutive ranges that cover an echo of the request: each piece alone holds part of
    /// a credential at most; joined, all of it.
    static func ranges(_ extra: [String: String] = [:]) -> [(query: [String: String], headers: [String: String])] {
        stride(from: 0, to: 1600, by: 40).map { start in ([:], extra.merging(["Range": "bytes=\(start)-\(start + 39)"]) { $1 }) }
    }

    static let all: [AnswerShape] = [
        AnswerShape("Accept-Encoding: gzip", headers: ["Accept-Encoding": "gzip"]),
        AnswerShape("Accept-Encoding: deflate", headers: ["Accept-Encoding": "deflate"]),
        AnswerShape("accept-encoding in lower case", headers: ["accept-encoding": "gzip, br"]),
        AnswerShape("gzip although not asked", query: ["ce": "gzip"]),
        AnswerShape("deflate although not asked", query: ["ce": "deflate"]),
        AnswerShape("x-gzip", query: ["ce": "x-gzip"]),
        AnswerShape("gzip twice", query: ["ce": "gzip,gzip"]),
        AnswerShape("deflate then gzip", query: ["ce": "deflate,gzip"]),
        AnswerShape("a coding nobody knows", query: ["ce": "rot13"]),
        AnswerShape("gzip then a coding nobody knows", query: ["ce": "gzip,rot13"]),
        AnswerShape("Transfer-Encoding: gzip", query: ["te": "gzip"]),
        AnswerShape("Accept-Charset: utf-16", headers: ["Accept-Charset": "utf-16"]),
        AnswerShape("Accept with a charset", headers: ["Accept": "application/json; charset=utf-16"]),
        AnswerShape("the server's choice of utf-16", query: ["charset": "utf-16"]),
        AnswerShape("utf-16be", query: ["charset": "utf-16-be"]),
        AnswerShape("utf-16le", query: ["charset": "utf-16-le"]),
        AnswerShape("utf-32", query: ["charset": "utf-32"]),
        AnswerShape("utf-7", query: ["charset": "utf-7"]),
        AnswerShape("EBCDIC", query: ["charset": "cp037"]),
        AnswerShape("JSON with \\/", query: ["escape": "slash"]),
        AnswerShape("an HTML page", query: ["format": "html"]),
        AnswerShape("HTML in utf-16", query: ["format": "html", "charset": "utf-16"]),
        AnswerShape("headers reflected in names and values", query: ["reflect": "1"]),
        AnswerShape("ranges", calls: ranges()),
        AnswerShape("ranges with If-Range", calls: ranges(["If-Range": "\"x\""])),
        AnswerShape("gzip in ranges", calls: ranges(["Accept-Encoding": "gzip"])),
    ]
}

/// Whatever a worker asks of the upstream, what it gets back holds no credential in any
/// form it could undo: compressed, re-encoded, escaped, reflected or split.
@Suite("Gateway answers a worker could unwrap", .serialized, .timeLimit(.minutes(5)))
struct GatewayAnswerTests {
    let server: HTTPTestServer

    init() async throws { server = try await HTTPTestServer.start() }

    /// A key full of what escapes change: '/', '+', '&', '"', '<', '>', '\''.
    static let oddKey = "k3y/with+odd&\"<chars>'=9f2"

    /// `api` with two credentials: the bearer token and the odd key.
    func gateway(_ extra: String = "") throws -> Gateway {
        let yaml = """
            integrations:
              api:
                baseURL: \(server.baseURL)/
                auth: [{ header: Authorization, value: "Bearer ${env:SECRET}" }, { header: X-Api-Key, value: "${env:ODD}" }]
            """ + extra
        return try Gateway(config: GatewayConfig.parse(
            ConfigValue.parse(yaml, file: "test.yaml"), environment: ["SECRET": secretToken, "ODD": Self.oddKey]))
    }

    @Test func noAnswerRevealsTheCredential() async throws {
        let gateway = try gateway()
        for shape in AnswerShape.all {
            var pieces: [[UInt8]] = []
            for call in shape.calls {
                pieces += await gateway.call("/echo", query: call.query, headers: call.headers, account: TestAccount()).workerView
            }
            let found = try await revealed([secretToken, Self.oddKey], in: pieces)
            #expect(found.isEmpty, "\(shape.name): a worker recovers a credential: \(found)")
        }
    }

    /// An upstream that compresses unasked is decoded before the scrubber reads it: the
    /// worker gets the plain, scrubbed body, and no header saying it is still encoded.
    @Test func compressedAnswersComeBackDecodedAndScrubbed() async throws {
        let gateway = try gateway()
        for coding in ["gzip", "deflate", "x-gzip", "gzip,gzip", "deflate,gzip", "identity"] {
            let result = try await gateway.call("/echo", query: ["ce": coding], account: TestAccount()).get()
            #expect(result.status == 200, "\(coding)")
            let body = String(decoding: result.body, as: UTF8.self)
            #expect(body.hasPrefix("{\"method\":\"GET\""), "\(coding): \(body.prefix(80))")
            #expect(body.contains("\"Authorization\":\"[redacted]\""), "\(coding): \(body.prefix(300))")
            #expect(result.headers["content-encoding"] == nil, "\(coding)")
            #expect(server.requests().last?.header("Accept-Encoding") == "identity", "the gateway asks for an uncoded answer")
        }
    }

    /// A coding the gateway cannot decode is not passed on, and does not count against the
    /// upstream's health: a worker must not be able to open the breaker with it.
    @Test func anAnswerInACodingTheGatewayCannotDecodeIsRefused() async throws {
        let gateway = try gateway("\n    breaker: { failures: 2 }")
        let account = TestAccount()
        for _ in 0..<3 {
            let result = await gateway.call("/echo", query: ["ce": "rot13"], account: account)
            #expect(result.reason == .invalidRequest, "\(result)")
        }
        #expect(await gateway.call("/ok", account: account).status == 200, "the breaker stayed closed")
    }

    /// utf-16 answers are scrubbed as such; charsets the scrubber cannot read are refused.
    @Test func answersInOtherCharsetsAreScrubbedOrRefused() async throws {
        let gateway = try gateway()
        let utf16 = try await gateway.call("/echo", query: ["charset": "utf-16"], account: TestAccount()).get()
        let text = try #require(String(bytes: utf16.body, encoding: .utf16))
        #expect(text.contains("\"Authorization\":\"[redacted]\""), "\(text.prefix(300))")
        for charset in ["utf-32", "utf-7", "cp037"] {
            let result = await gateway.call("/echo", query: ["charset": charset], account: TestAccount())
            #expect(result.reason == .invalidRequest, "\(charset): \(result)")
        }
    }

    /// Header names come back lower-cased: a credential reflected in a name is found anyway.
    @Test func aCredentialInAResponseHeaderNameIsScrubbed() async throws {
        let result = try await gateway().call("/echo", query: ["reflect": "1"], account: TestAccount()).get()
        let names = result.headers.keys.filter { $0.hasPrefix("x-token-") }
        #expect(!names.isEmpty, "the upstream reflected no token: \(result.headers.keys.sorted())")
        #expect(!names.contains { $0.contains(secretToken.lowercased()) }, "\(names)")
    }
}
