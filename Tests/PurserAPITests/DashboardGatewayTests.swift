@testable import PurserAPI
import PurserProtocol
import Testing

@Suite("The dashboard's gateway integrations")
struct DashboardGatewayTests {
    @Test("an integration's saved status: breaker, limiter, cache hit rate, quota windows, every value escaped")
    func section() throws {
        let status = try JSONParser.parse("""
            {"name":"<script>x()</script>","base":"http://127.0.0.1:1","rateLimit":"10/s","limiterAheadMs":0,"inFlight":2,
             "breaker":"open","consecutiveFailures":5,"calls":40,"upstreamCalls":30,"cacheHits":10,"cacheHitRate":0.25,
             "failures":5,"refused":{"rate":3,"<b>":1},"credits":1.5,"savedAtMs":1000,
             "quotas":[{"per":"integration","window":"day|2026-12-06","maxRequests":100,"maxCredits":null,"usedRequests":40,"usedCredits":1.5}]}
            """)
        let html = GatewaySection(integrations: [(name: "<script>x()</script>", status: status)], nowMs: 3000).html
        #expect(html.contains("data-integration=\"&lt;script&gt;x()&lt;/script&gt;\""), "\(html)")
        #expect(!html.contains("<script>") && !html.contains("<b>"), "\(html)")
        #expect(html.contains("<td class=\"state\">open</td>"), "the breaker: \(html)")
        #expect(html.contains("0.25") && html.contains("10/s") && html.contains("2s ago"), "\(html)")
        #expect(html.contains("integration day|2026-12-06: 40/100 requests, 1.5 credits"), "\(html)")
        #expect(html.contains("&lt;b&gt; 1, rate 3"), "\(html)")
        let none = GatewaySection(integrations: [], nowMs: 0).html
        #expect(none.contains("No integration has been used."))
    }
}
