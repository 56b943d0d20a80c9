import Foundation
import PurserGateway
import PurserProtocol
import Testing

/// The gateway's side of an HTTPS tunnel: which `CONNECT` target is an integration's, and
/// the same admission a call gets (tool, rate limit, quota, hold), then the metering.
@Suite("Gateway tunnels", .timeLimit(.minutes(1)))
struct GatewayTunnelTests {
    static let yaml = """
        integrations:
          site:
            baseURL: https://Docs.Example.com/v1/
            tunnel: { perConnection: 0.5, perMiB: 2, maxBytes: 200KiB }
            rateLimit: { rate: 1/h }
          six:
            baseURL: https://[::1]:8443/
            tunnel: {}
          plain:
            baseURL: https://plain.example.com/
          cleartext:
            baseURL: http://docs.example.com:443/
          counted:
            baseURL: https://counted.example.com/
            tunnel: {}
            quotas: [{ per: day, requests: 1 }]
        """

    func admit(
        _ gateway: Gateway, _ host: String, _ port: Int, account: TestAccount = TestAccount(), tools: Set<String>? = nil
    ) -> Result<Tunnel, GatewayFailure> {
        let egress = gateway.config.integrations
        let caller = GatewayCaller(runID: "r-test", tools: tools ?? Set(egress.map(\.name)), deadlineMs: nil, account: account)
        return gateway.admitTunnel(host: host, port: port, egress: egress, caller: caller)
    }

    func message(_ result: Result<Tunnel, GatewayFailure>) -> String {
        if case .failure(let failure) = result { return "\(failure.reason.rawValue): \(failure.message)" }
        return "admitted"
    }

    @Test("a CONNECT reaches only the exact host and port of an https base with tunnel:")
    func targets() throws {
        let gateway = try Gateway(config: gatewayConfig(Self.yaml))
        #expect(message(admit(gateway, "docs.example.com", 443)) == "admitted")
        #expect(message(admit(gateway, "[::1]", 8443)) == "admitted")
        let refused = [
            ("docs.example.com", 80), ("docs.example.com.", 443), ("docs.example.com:443@evil", 443), ("evil.com", 443),
            ("::1", 443), ("[0:0:0:0:0:0:0:1]", 8443), ("127.0.0.1", 443),
        ]
        for (host, port) in refused {
            #expect(message(admit(gateway, host, port)).hasPrefix("permission_denied: no integration of this run's egress"), "\(host):\(port)")
        }
        #expect(message(admit(gateway, "plain.example.com", 443)) == "permission_denied: plain offers no HTTPS tunnels (its gateway config has no tunnel:)")
        #expect(message(admit(gateway, "docs.example.com", 443, tools: ["six"])) == "permission_denied: this run does not hold the tool 'site'")
    }

    @Test("a tunnel takes the rate limit and the quota like a call, and the run's hold pays its connection")
    func admission() throws {
        let gateway = try Gateway(config: gatewayConfig(Self.yaml))
        let account = TestAccount()
        let first = try admit(gateway, "docs.example.com", 443, account: account).get()
        first.finish(.closed)
        #expect(message(admit(gateway, "docs.example.com", 443, account: account)).hasPrefix("rate_limited: site allows 1/h"))
        try admit(gateway, "counted.example.com", 443, account: account).get().finish(.closed)
        #expect(message(admit(gateway, "counted.example.com", 443, account: account)).hasPrefix("quota_exceeded: counted: the day's quota"))
        let poor = TestAccount(credits: 0)
        let fresh = try Gateway(config: gatewayConfig(Self.yaml))
        #expect(message(admit(fresh, "docs.example.com", 443, account: poor)) == "budget_exhausted: the run's reservation cannot cover the tunnel's 0.5 credits")
        #expect(account.records.map(\.method) == ["CONNECT", "CONNECT", "CONNECT", "CONNECT"], "refusals are recorded too")
    }

    @Test("bytes pass within the byte cap and what the hold pays for; the run is charged per connection and per MiB")
    func metering() throws {
        let gateway = try Gateway(config: gatewayConfig(Self.yaml))
        let account = TestAccount(credits: 10)
        var tunnel = try admit(gateway, "docs.example.com", 443, account: account).get()
        var passed = 0
        while true {
            let allowed = tunnel.allowance(Tunnel.step)
            guard allowed > 0 else { break }
            tunnel.count(allowed, up: passed == 0)
            passed += allowed
        }
        #expect(passed == 200 << 10 && tunnel.exhausted == .byteCap)
        tunnel.finish(.byteCap)
        // 0.5 + 2 × 200 KiB / 1 MiB = 0.5 + 0.390625
        #expect(account.charged == Credits(micros: 890_625) && account.held == .zero)
        let record = try #require(account.records.last)
        #expect(record.path == "docs.example.com:443" && record.status == 200 && record.credits == Credits(micros: 890_625))
        #expect(record.tunnel == TunnelTraffic(bytesUp: Int64(Tunnel.step), bytesDown: Int64(200 << 10 - Tunnel.step), ended: .byteCap))
        #expect(record.detail.hasSuffix("up=65536B down=139264B ended=byte_cap"), "\(record.detail)")

        // 0.75 of the run's credits left: 0.5 for the connection, 0.25 for 128 KiB at 2 a MiB,
        // held 64 KiB at a time.
        let short = TestAccount(credits: 1)
        #expect(short.hold(Credits(micros: 250_000)))
        var paid = try admit(try Gateway(config: gatewayConfig(Self.yaml)), "docs.example.com", 443, account: short).get()
        var carried = 0
        while case let allowed = paid.allowance(Tunnel.step), allowed > 0 {
            paid.count(allowed, up: false)
            carried += allowed
        }
        #expect(carried == 128 << 10 && paid.exhausted == .credits)
        paid.finish(.credits)
        #expect(short.charged == Credits(micros: 750_000) && short.held == Credits(micros: 250_000))
    }

    @Test("an upstream that cannot be reached costs nothing, is recorded, and opens the breaker")
    func unreachable() throws {
        // Port 1 on the loopback: nothing listens, the connect is refused at once.
        let gateway = try Gateway(config: gatewayConfig("""
            integrations:
              down:
                baseURL: https://127.0.0.1:1/
                tunnel: { perConnection: 1 }
                breaker: { failures: 1, coolDown: 1h }
            """))
        let account = TestAccount()
        let tunnel = try admit(gateway, "127.0.0.1", 1, account: account).get()
        guard case .failure(let failure) = tunnel.dial() else { Issue.record("a connect to port 1 succeeded"); return }
        #expect(failure.reason == .upstreamUnavailable && failure.message.contains("cannot connect to 127.0.0.1:1"), "\(failure)")
        #expect(account.charged == .zero && account.held == .zero)
        #expect(account.records.last?.tunnel?.ended == .unreachable && account.records.last?.reason == .upstreamUnavailable)
        #expect(message(admit(gateway, "127.0.0.1", 1, account: account)).hasPrefix("upstream_unavailable: down is failing; its circuit breaker is open"))
    }
}
