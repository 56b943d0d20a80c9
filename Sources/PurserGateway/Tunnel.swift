public import PurserProtocol

/// How an HTTPS tunnel ended, for its `gateway_call` record.
public enum TunnelEnd: String, Sendable, Hashable {
    /// A side closed its connection.
    case closed
    /// The integration's `tunnel.maxBytes` passed.
    case byteCap = "byte_cap"
    /// The run's reservation could not pay for more bytes.
    case credits
    /// No byte either way for `tunnel.idleTimeout`.
    case idle
    /// The run's deadline.
    case deadline
    /// The run ended (the proxy stopped).
    case runEnded = "run_ended"
    /// A socket failed mid-tunnel.
    case failed
    /// The upstream could not be reached: nothing was carried, nothing is charged.
    case unreachable
}

/// What a tunnel carried: bytes from the worker up, from the upstream down.
public struct TunnelTraffic: Sendable, Hashable {
    public var bytesUp: Int64
    public var bytesDown: Int64
    public var ended: TunnelEnd

    public init(bytesUp: Int64, bytesDown: Int64, ended: TunnelEnd) {
        self.bytesUp = bytesUp
        self.bytesDown = bytesDown
        self.ended = ended
    }
}

/// An admitted HTTPS tunnel, metered: it may carry bytes up to the integration's byte cap and
/// as far as the run's hold can pay for them (the hold grows a step at a time as they pass),
/// and `finish` settles it once, as one gateway call. Owned by the one thread that splices it.
public struct Tunnel: Sendable {
    public let integration: Integration
    /// `host:port`, as the integration's base names them.
    public let target: String
    let policy: TunnelPolicy
    let state: IntegrationState
    let admission: Admission
    let caller: GatewayCaller
    let store: any GatewayStore
    let started: Int64
    private var held: Credits
    /// Bytes the hold pays for; at least the bytes counted.
    private var paidBytes: Int64 = 0
    public private(set) var traffic = TunnelTraffic(bytesUp: 0, bytesDown: 0, ended: .closed)
    /// Why no more bytes may pass; nil while they may.
    public private(set) var exhausted: TunnelEnd?

    /// What the hold grows by at a time: the proxy's buffer.
    public static let step = 64 << 10

    init(
        integration: Integration, policy: TunnelPolicy, state: IntegrationState, admission: Admission, caller: GatewayCaller,
        store: any GatewayStore, started: Int64
    ) {
        self.integration = integration
        target = integration.base.authority
        self.policy = policy
        self.state = state
        self.admission = admission
        self.caller = caller
        self.store = store
        self.started = started
        held = policy.perConnection
    }

    public var idleTimeoutMs: Int64 { policy.idleTimeoutMs }
    public var deadlineMs: Int64? { caller.deadlineMs }
    public var connectTimeoutMs: Int64 { integration.connectTimeoutMs }
    var bytes: Int64 { traffic.bytesUp + traffic.bytesDown }

    /// How many of `wanted` bytes may pass now, within the byte cap and what the hold pays
    /// for (grown as needed). 0: none may, and `exhausted` says why.
    public mutating func allowance(_ wanted: Int) -> Int {
        let capped = min(Int64(wanted), policy.maxBytes - bytes)
        guard capped > 0 else {
            exhausted = .byteCap
            return 0
        }
        guard policy.perMiB > .zero else { return Int(capped) }
        while paidBytes - bytes < capped {
            let next = paidBytes + Int64(Self.step)
            let price = policy.charge(bytes: next) - policy.charge(bytes: paidBytes)
            guard caller.account.extend(price) else { break }
            held = held + price
            paidBytes = next
        }
        let allowed = min(capped, paidBytes - bytes)
        guard allowed > 0 else {
            exhausted = .credits
            return 0
        }
        return Int(allowed)
    }

    /// Bytes that passed (they were within an `allowance`).
    public mutating func count(_ count: Int, up: Bool) {
        if up { traffic.bytesUp += Int64(count) } else { traffic.bytesDown += Int64(count) }
    }

    /// Ends the tunnel, once: the slot and quota windows corrected, the charge settled to
    /// the run with the tunnel's record (its `gateway_call` event).
    public func finish(_ ended: TunnelEnd) {
        let reached = ended != .unreachable
        let charge = reached ? policy.perConnection + policy.charge(bytes: bytes) : .zero
        var traffic = traffic
        traffic.ended = ended
        let record = GatewayCallRecord(
            integration: integration.name, method: "CONNECT", path: target, status: reached ? 200 : nil,
            reason: reached ? nil : .upstreamUnavailable, latencyMicros: (monotonicNanoseconds() - started) / 1000,
            credits: charge, cached: false, attempts: 1, tunnel: traffic)
        onStore(state, store) {
            admission.finish(state, store: store, charged: charge, healthy: reached, wentUpstream: true, runID: caller.runID)
        }
        caller.account.settle(held: held, charged: charge, record: record)
        state.count(record)
        state.save(to: store, force: false)
    }
}
