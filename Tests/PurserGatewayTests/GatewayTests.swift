import Foundation
import PurserConfig
import PurserGateway
import PurserProtocol
import PurserTestSupport
import Testing

@Suite("Gateway config")
struct GatewayConfigTests {
    /// Each bad config names the file, the line and the field.
    @Test(arguments: [
        ("integrations:\n  api:\n    methods: [GET]\n", "test.yaml:3: integrations.api.baseURL: missing"),
        ("integrations:\n  api:\n    baseURL: file:///etc/passwd\n", "test.yaml:3: integrations.api.baseURL:"),
        ("integrations:\n  api:\n    baseURL: http://u:p@example.com/\n", "test.yaml:3: integrations.api.baseURL:"),
        ("integrations:\n  api:\n    baseURL: http://example.com/\n    rateLimit: { rate: fast }\n",
         "test.yaml:4: integrations.api.rateLimit.rate: expected a rate"),
        ("integrations:\n  api:\n    baseURL: http://example.com/\n    retry: 3\n",
         "test.yaml:4: integrations.api.retry: unknown field"),
        ("integrations:\n  api:\n    baseURL: http://example.com/\n    cost: { perKiB: 0.1 }\n",
         "integrations.api.cost: max: required"),
        ("integrations:\n  api:\n    baseURL: http://example.com/\n    auth: { header: X-Key, value: \"${env:NOPE}\" }\n",
         "test.yaml:4: integrations.api.auth.value: ${env:NOPE}"),
        ("integrations:\n  api:\n    baseURL: http://example.com/\n    quotas:\n      - per: week\n        requests: 5\n",
         "test.yaml:5: integrations.api.quotas[0].per: 'week' is not one of"),
        ("integrations:\n  api:\n    baseURL: http://example.com/\n    cost: { perRequest: -1 }\n",
         "test.yaml:4: integrations.api.cost.perRequest:"),
        ("integrations:\n  api:\n    baseURL: http://example.com/\n    headers: [Authorization]\n",
         "test.yaml:4: integrations.api.headers[0]: 'Authorization' may never be set by a worker"),
        ("integrations:\n  api:\n    baseURL: http://example.com/\n    headers:\n      - Accept\n      - X-Forwarded-Host\n",
         "test.yaml:6: integrations.api.headers[1]: 'X-Forwarded-Host' may never be set by a worker"),
        ("integrations:\n  api:\n    baseURL: http://example.com/\n    headers: [Accept, range]\n",
         "test.yaml:4: integrations.api.headers[1]: 'range' may never be set by a worker"),
        ("integrations:\n  api:\n    baseURL: http://example.com/\n    headers: [X-HTTP-Method-Override]\n",
         "integrations.api.headers[0]: 'X-HTTP-Method-Override' may never be set by a worker"),
        ("integrations:\n  api:\n    baseURL: http://example.com/\n    headers: [\"Bad Header\"]\n",
         "test.yaml:4: integrations.api.headers[0]: 'Bad Header' is not a header name"),
        ("integrations:\n  api:\n    baseURL: http://example.com/\n    auth: { header: X-Key, value: k }\n    headers: [x-key]\n",
         "test.yaml:5: integrations.api.headers[0]: 'x-key' may never be set by a worker: it carries the integration's credential"),
        ("integrations:\n  api:\n    baseURL: http://example.com/\n    headers: Accept\n",
         "test.yaml:4: integrations.api.headers: expected a list"),
        ("integrations:\n  api:\n    baseURL: http://example.com/\n    cache: { ttl: 1m, scope: everyone }\n",
         "test.yaml:4: integrations.api.cache.scope: 'everyone' is not one of"),
        ("integrations:\n  api:\n    baseURL: http://example.com/\n    tunnel: {}\n",
         "test.yaml:4: integrations.api.tunnel: a tunnel needs an https:// baseURL"),
        ("integrations:\n  api:\n    baseURL: https://example.com/\n    tunnel: { perByte: 1 }\n",
         "test.yaml:4: integrations.api.tunnel.perByte: unknown field"),
        ("integrations:\n  api:\n    baseURL: https://example.com/\n    tunnel:\n      maxBytes: 0\n",
         "test.yaml:5: integrations.api.tunnel.maxBytes: must be between 1 byte and 1TiB"),
        ("integrations: [\n", "test.yaml:"),
    ])
    func badConfigsNameTheirField(yaml: String, expected: String) {
        #expect {
            _ = try gatewayConfig(yaml)
        } throws: { error in
            "\(error)".contains(expected)
        }
    }

    @Test func aGoodConfigReadsAsWritten() throws {
        let config = try gatewayConfig("""
            integrations:
              search:
                baseURL: https://api.example.com/v1/
                auth: { query: key, value: "${env:SECRET}" }
                rateLimit: { rate: 100/m, burst: 10 }
                quotas: [{ per: day, requests: 1000, credits: 50 }]
                cost: { perRequest: 0.01, fromJSON: { field: usage.total_tokens, price: 0.002 }, max: 2 }
                timeouts: { connect: 2s, total: 10s }
                maxResponseSize: 1MiB
                cache: { ttl: 5m }
              crm:
                baseURL: https://crm.example.com/
                headers: [Accept, X-Tenant-Hint]
                cache: { ttl: 1m, scope: shared }
            """)
        let search = try #require(config.integration(named: "search"))
        #expect(search.base.description == "https://api.example.com/v1")
        #expect(search.rateLimit?.intervalNs == 600_000_000)
        #expect(search.rateLimit?.burst == 10)
        #expect(search.quotas.first?.credits == Credits(whole: 50))
        #expect(search.cost.max == Credits(whole: 2))
        #expect(search.cost.perRequest == Credits(micros: 10_000))
        #expect(search.totalTimeoutMs == 10_000)
        #expect(search.maxResponseBytes == 1 << 20)
        #expect(search.cache?.ttlMs == 300_000)
        #expect(search.cache?.shared == false)
        #expect(search.workerHeaders.contains("if-none-match") && !search.workerHeaders.contains("accept-encoding"))
        let crm = try #require(config.integration(named: "crm"))
        #expect(crm.workerHeaders == ["accept", "x-tenant-hint"])
        #expect(crm.cache?.shared == true)
    }
}

@Suite("Rate limiter")
struct RateLimiterTests {
    /// GCRA against the continuous-state leaky bucket of ITU-T I.371, an independent
    /// formulation of the same rule, over random arrivals: the same calls pass. And in
    /// no stretch of time do more pass than the burst plus the rate allow.
    @Test func gcraAdmitsExactlyWhatTheLeakyBucketAdmits() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let interval = Int64.random(in: 1_000...50_000_000, using: &generator)
            let burst = Int64.random(in: 1...20, using: &generator)
            var gcra = GCRA(RateLimit(intervalNs: interval, burst: burst))
            var bucket = LeakyBucket(interval: interval, burst: burst)
            var now = Int64.random(in: 0...1_000_000_000, using: &generator)
            var admitted: [Int64] = []
            for _ in 0..<400 {
                now += Int64.random(in: 0...(interval * 2), using: &generator) / Int64.random(in: 1...8, using: &generator)
                let byGCRA = (try? gcra.admit(now: now).get()) != nil
                #expect(byGCRA == bucket.admit(now), "interval \(interval) burst \(burst) at \(now)")
                if byGCRA { admitted.append(now) }
            }
            for (first, start) in admitted.enumerated() {
                for last in first..<admitted.count {
                    let allowed = burst + (admitted[last] - start) / interval
                    #expect(Int64(last - first + 1) <= allowed)
                }
            }
        }
    }

    @Test func aRefusalSaysHowLongToWait() {
        var gcra = GCRA(RateLimit(intervalNs: 100_000_000, burst: 2))
        #expect((try? gcra.admit(now: 0).get()) != nil)
        #expect((try? gcra.admit(now: 0).get()) != nil)
        guard case .failure(let wait) = gcra.admit(now: 0) else {
            Issue.record("a third call at once passed a burst of 2")
            return
        }
        #expect(wait.nanoseconds == 100_000_000)
        #expect((try? gcra.admit(now: 100_000_000).get()) != nil)
        gcra.pushBack(until: 5_000_000_000)
        #expect((try? gcra.admit(now: 4_999_000_000).get()) == nil)
    }

    /// The continuous-state leaky bucket: content `x` drains at one unit per ns; a call
    /// adds `interval` and passes if the content is at most the tolerance.
    struct LeakyBucket {
        let interval: Int64
        let tolerance: Int64
        var content: Int64 = 0
        var last: Int64 = Int64.min

        init(interval: Int64, burst: Int64) {
            self.interval = interval
            tolerance = (burst - 1) * interval
        }

        mutating func admit(_ now: Int64) -> Bool {
            let drained = last == Int64.min ? 0 : max(0, content - (now - last))
            guard drained <= tolerance else { return false }
            content = drained + interval
            last = now
            return true
        }
    }

    @Test func quotaWindowsAreCalendarWindowsNamedByTheirStart() {
        // 2026-11-29T07:59:59.999Z
        let before: Int64 = 1_795_939_199_999
        #expect(Quota.Window.hour.current(nowMs: before).key == "2026-11-29T07")
        #expect(Quota.Window.hour.current(nowMs: before).remainingMs == 1)
        #expect(Quota.Window.hour.current(nowMs: before + 1).key == "2026-11-29T08")
        #expect(Quota.Window.day.current(nowMs: before).key == "2026-11-29")
        // 2026-12-31T23:59:59Z, then the next second.
        let yearEnd: Int64 = 1_798_761_599_000
        #expect(Quota.Window.month.current(nowMs: yearEnd).key == "2026-12")
        #expect(Quota.Window.month.current(nowMs: yearEnd).remainingMs == 1_000)
        #expect(Quota.Window.month.current(nowMs: yearEnd + 1_000).key == "2027-01")
    }
}

@Suite("Gateway calls", .serialized, .timeLimit(.minutes(3)))
struct GatewayCallTests {
    let server: HTTPTestServer

    init() async throws { server = try await HTTPTestServer.start() }

    @Test func callsGoUpstreamWithTheCredentialAndComeBackWithout() async throws {
        let gateway = try Gateway(config: apiConfig(server, "cost: { perRequest: 1 }"))
        let account = TestAccount()
        let result = await gateway.call("/echo", query: ["q": "a b"], headers: ["X-Request-Id": "t1"], account: account)
        #expect(result.status == 200)
        #expect(result.bodyText.contains("[redacted]"))
        #expect(!result.bodyText.contains(secretToken))
        let seen = try #require(server.requests().last)
        #expect(seen.header("Authorization") == "Bearer \(secretToken)")
        #expect(seen.header("X-Request-Id") == "t1")
        #expect(seen.path == "/echo?q=a%20b")
        #expect(account.charged == Credits(whole: 1))
        #expect(account.records.last?.status == 200)
    }

    @Test func basicAuthFromASecretsFileIsScrubbedInEveryForm() async throws {
        let directory = Fixtures.temporaryHome()
        try "upstream_password: \(secretToken)\n".write(toFile: directory + "/secrets.yaml", atomically: true, encoding: .utf8)
        try """
            secretsFile: secrets.yaml
            integrations:
              api:
                baseURL: \(server.baseURL)/
                auth: { basic: { user: robot, password: "${secret:upstream_password}" } }
            """.write(toFile: directory + "/gateway.yaml", atomically: true, encoding: .utf8)
        let gateway = try Gateway(config: GatewayConfig.load(path: directory + "/gateway.yaml", environment: [:]))
        let result = await gateway.call("/echo", account: TestAccount())
        let sent = try #require(server.requests().last?.header("Authorization"))
        let encoded = Base64Text.encode(Array("robot:\(secretToken)".utf8))
        #expect(sent == "Basic " + encoded)
        #expect(!result.bodyText.contains(encoded))
        #expect(result.bodyText.contains("Basic [redacted]"))
    }

    @Test func aRunWithoutTheToolIsRefusedBeforeAnythingIsSent() async throws {
        let gateway = try Gateway(config: apiConfig(server))
        let account = TestAccount()
        let result = await gateway.call("/ok", tools: ["other"], account: account)
        #expect(result.reason == .permissionDenied)
        #expect(server.requests().isEmpty)
        #expect(account.records.count == 1, "a refused call is audited too")
    }

    /// Every way a worker might aim the gateway elsewhere is refused, and none of them
    /// reaches any server.
    @Test func nothingLeavesTheBaseURL() async throws {
        let other = try await HTTPTestServer.start()
        let gateway = try Gateway(config: apiConfig(server, base: server.baseURL + "/api/"))
        let account = TestAccount()
        let attempts = [
            "http://169.254.169.254/latest/meta-data/", "//169.254.169.254/", "/../ok", "/%2e%2e/ok", "/%2E%2E/ok",
            "/a/%2e%2e/%2e%2e/ok", "/%252e%252e/ok", "/a%2fb", "/a\\..\\ok", "@127.0.0.1:\(other.port)/ok",
            ":\(other.port)/ok", "/ok#frag", "/ok\r\nHost: evil", "file:///etc/passwd", "/./ok", "//ok", "/a//b",
            "http://127.0.0.1:\(other.port)/ok", "/%00", "/ok%",
        ]
        for path in attempts {
            let result = await gateway.call(path, account: account)
            #expect(result.reason == .invalidRequest, "\(path) was not refused: \(result)")
        }
        #expect(server.requests().isEmpty, "\(server.requests().map(\.path))")
        #expect(other.requests().isEmpty)
        #expect(account.charged == .zero)
    }

    @Test func redirectsAreFollowedOnlyUnderTheBase() async throws {
        let other = try await HTTPTestServer.start()
        let gateway = try Gateway(config: apiConfig(server, "cost: { perRequest: 1 }"))
        let account = TestAccount()
        let away = await gateway.call("/redirect", query: ["to": other.baseURL + "/ok"], account: account)
        #expect(away.reason == .invalidRequest)
        let home = await gateway.call("/redirect", query: ["to": "/ok?x=1"], account: account)
        #expect(home.status == 200)
        #expect(home.bodyText.contains("\"ok\":true"))
        #expect(other.requests().isEmpty)
        #expect(server.requests().map(\.path).contains("/ok?x=1"))
    }

    @Test func theBudgetRunsOutAtTheThirdCall() async throws {
        let gateway = try Gateway(config: apiConfig(server, "cost: { perRequest: 3 }"))
        let account = TestAccount(credits: 10)
        var reasons: [GatewayReason?] = []
        for _ in 0..<4 { reasons.append(await gateway.call("/ok", account: account).reason) }
        #expect(reasons == [nil, nil, nil, .budgetExhausted])
        #expect(account.charged == Credits(whole: 9))
        #expect(server.requests().count == 3)
    }

    @Test func aQuotaRefusesTheCallAfterIt() async throws {
        let gateway = try Gateway(config: apiConfig(server, """
            cost: { perRequest: 2 }
            quotas: [{ per: hour, requests: 3 }, { per: day, credits: 100 }]
            """))
        let account = TestAccount()
        var results: [Result<GatewayCallResult, GatewayFailure>] = []
        for _ in 0..<4 { results.append(await gateway.call("/ok", account: account)) }
        #expect(results.map(\.reason) == [nil, nil, nil, .quotaExceeded])
        guard case .failure(let refusal) = results[3] else { return }
        #expect((1...3_600_000).contains(refusal.retryAfterMs ?? 0), "retry when the next hour opens")
        #expect(server.requests().count == 3)
        let status = try #require(gateway.status().first)
        #expect(status.quotas.map(\.usedRequests) == [3, 0])
        #expect(status.quotas[1].usedCredits == Credits(whole: 6), "the credit quota holds what was charged")
    }

    @Test func burstsAreCutToTheRateAndRefusalsNeverReachTheUpstream() async throws {
        let gateway = try Gateway(config: apiConfig(server, "rateLimit: { rate: 10/s, burst: 5 }"))
        let account = TestAccount()
        let start = ContinuousClock.now
        let results = await withTaskGroup(of: Result<GatewayCallResult, GatewayFailure>.self) { group in
            for _ in 0..<40 { group.addTask { await gateway.call("/ok", account: account) } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        let elapsed = milliseconds(since: start)
        let admitted = results.filter { $0.reason == nil }.count
        #expect(admitted >= 5)
        #expect(Int64(admitted) <= 5 + elapsed / 100 + 1, "\(admitted) admitted in \(elapsed) ms")
        #expect(results.allSatisfy { $0.reason == nil || $0.reason == .rateLimited })
        #expect(server.requests().count == admitted)
    }

    @Test func aSlowUpstreamTimesOutAndIsChargedItsMinimum() async throws {
        let gateway = try Gateway(config: apiConfig(server, """
            timeouts: { total: 300ms }
            retries: { max: 0 }
            cost: { perRequest: 1, perKiB: 0.5, max: 5 }
            """))
        let account = TestAccount()
        let result = await gateway.call("/slow", query: ["ms": "3000"], account: account)
        #expect(result.reason == .timeout)
        #expect(account.charged == Credits(whole: 1), "the request was sent: the minimum cost")
        #expect(account.held == .zero)
    }

    @Test func aResetIsRetriedThenReported() async throws {
        let gateway = try Gateway(config: apiConfig(server, """
            retries: { max: 2, backoff: 10ms }
            cost: { perRequest: 1, max: 3 }
            """))
        let account = TestAccount()
        let result = await gateway.call("/reset", account: account)
        #expect(result.reason == .upstreamUnavailable)
        #expect(server.requests().count == 3)
        #expect(account.records.last?.attempts == 3)
        #expect(account.charged == Credits(whole: 3), "three requests reached the upstream")
    }

    @Test func aFlakyUpstreamSucceedsOnRetry() async throws {
        let gateway = try Gateway(config: apiConfig(server, """
            retries: { max: 2, backoff: 10ms }
            cost: { perRequest: 1, max: 3 }
            """))
        let account = TestAccount()
        let result = await gateway.call("/flaky", query: ["fail": "1", "key": UUID().uuidString], account: account)
        #expect(result.status == 200)
        #expect(account.records.last?.attempts == 2)
        #expect(account.charged == Credits(whole: 2))
    }

    @Test func aStormOf5xxOpensTheBreakerWhichThenHalfOpens() async throws {
        let gateway = try Gateway(config: apiConfig(server, """
            retries: { max: 0 }
            breaker: { failures: 3, coolDown: 300ms }
            """))
        let account = TestAccount()
        for _ in 0..<3 { #expect(await gateway.call("/status/503", account: account).status == 503) }
        let fast = await gateway.call("/ok", account: account)
        #expect(fast.reason == .upstreamUnavailable)
        #expect(server.requests().count == 3, "an open breaker sends nothing")
        #expect(gateway.status().first?.breaker == "open")
        try await Task.sleep(for: .milliseconds(400))
        #expect(await gateway.call("/ok", account: account).status == 200, "the half-open trial")
        #expect(gateway.status().first?.breaker == "closed")
    }

    @Test func a429PushesEveryCallerBack() async throws {
        let gateway = try Gateway(config: apiConfig(server, """
            rateLimit: { rate: 100/s, burst: 10 }
            retries: { max: 0 }
            """))
        let account = TestAccount()
        #expect(await gateway.call("/status/429", query: ["retry": "2"], account: account).status == 429)
        let next = await gateway.call("/ok", account: account)
        #expect(next.reason == .rateLimited)
        if case .failure(let failure) = next { #expect((1_000...2_000).contains(failure.retryAfterMs ?? 0)) }
    }

    @Test func aHugeResponseIsRefusedWithoutBufferingIt() async throws {
        let gateway = try Gateway(config: apiConfig(server, """
            maxResponseSize: 1MiB
            cost: { perRequest: 1 }
            """))
        let account = TestAccount()
        let before = Self.peakResidentKiB()
        let result = await gateway.call("/big", query: ["mb": "100"], account: account)
        #expect(result.reason == .responseTooLarge)
        #expect(Self.peakResidentKiB() - before < 32 << 10, "the peak grew past 32 MiB for a 1 MiB limit")
        #expect(account.charged == Credits(whole: 1))
    }

    @Test func cachedAnswersCostNoUpstreamCallAndOutliveTheGateway() async throws {
        let store = MemoryGatewayStore()
        let yaml = "cost: { perRequest: 1, cacheHit: 0.25 }\ncache: { ttl: 1m }"
        let first = try Gateway(config: apiConfig(server, yaml), store: store)
        let account = TestAccount()
        let miss = await first.call("/count", account: account)
        let hit = await first.call("/count", account: account)
        #expect(try miss.get().cached == false)
        #expect(try hit.get().cached == true)
        #expect(try hit.get().credits == Credits(micros: 250_000))
        #expect(hit.bodyText == miss.bodyText)
        // A second supervisor on the same store: the persistent tier answers.
        let second = try Gateway(config: apiConfig(server, yaml), store: store)
        #expect(try await second.call("/count", account: account).get().cached == true)
        #expect(server.requests().count == 1)
        #expect(account.charged == Credits(micros: 1_500_000))
    }

    @Test func bodiesThatAreNotUTF8ComeBackAsBase64() async throws {
        let gateway = try Gateway(config: apiConfig(server))
        let result = try await gateway.call("/bytes", query: ["n": "300"], account: TestAccount()).get()
        #expect(result.body == (0..<300).map { UInt8($0 % 256) })
        #expect(result.json["bodyEncoding"] == "base64")
        #expect(try GatewayCallResult(json: result.json) == result)
    }

    @Test func costsComeFromTheResponse() async throws {
        let gateway = try Gateway(config: apiConfig(server, """
            cost: { perRequest: 0.5, fromJSON: { field: usage.total_tokens, price: 0.01 }, max: 2 }
            """))
        let account = TestAccount()
        #expect(try await gateway.call("/usage", query: ["tokens": "120"], account: account).get().credits == Credits(micros: 1_700_000))
        #expect(try await gateway.call("/usage", query: ["tokens": "900"], account: account).get().credits == Credits(whole: 2),
            "capped at max")
    }

    private static func peakResidentKiB() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }
}
