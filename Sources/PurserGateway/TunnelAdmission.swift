import Dispatch
public import PurserProtocol
import Synchronization

extension Gateway {
    /// Admits an HTTPS tunnel (`CONNECT host:port`) for a run's egress, or says why not: the
    /// target must be exactly the host and port of an `https://` base among `egress`, whose
    /// integration has `tunnel:`; then, as for a call, the run's tool, the breaker, the rate
    /// limit and `maxConcurrent`, the quota windows (one request and the tunnel's most), and
    /// the run's hold for `tunnel.perConnection`. Blocks (on the store, for quotas): call it
    /// from a thread of its own. A refusal of a known integration is recorded as a call.
    public func admitTunnel(host: String, port: Int, egress: [Integration], caller: GatewayCaller) -> Result<Tunnel, GatewayFailure> {
        let started = monotonicNanoseconds()
        let integration: Integration
        switch Self.tunnelTarget(host: host, port: port, among: egress) {
        case .success(let found): integration = found
        case .failure(let failure): return .failure(failure)
        }
        guard let state = states[integration.name] else {
            return .failure(GatewayFailure(.invalidRequest, "no integration named '\(integration.name)'"))
        }
        let admitted = admit(integration, state, caller: caller, started: started)
        if case .failure(let failure) = admitted {
            refuseTunnel(integration, state, caller: caller, started: started, failure)
        }
        return admitted
    }

    /// The integration a `CONNECT` reaches: its base's scheme `https`, host (lower-cased, an
    /// IPv6 literal in brackets) and port equal, as text; nothing is resolved or normalised
    /// on the worker's side, so `127.1` or `2130706433` never stand for `127.0.0.1`.
    static func tunnelTarget(host: String, port: Int, among egress: [Integration]) -> Result<Integration, GatewayFailure> {
        var wanted = host.lowercased()
        if wanted.hasPrefix("["), wanted.hasSuffix("]") { wanted = String(wanted.dropFirst().dropLast()) }
        let matching = egress.filter { $0.base.scheme == "https" && $0.base.host.lowercased() == wanted && $0.base.port == port }
        guard let first = matching.first else {
            let names = egress.map(\.name).joined(separator: ", ")
            return .failure(GatewayFailure(
                .permissionDenied,
                "no integration of this run's egress (\(names.isEmpty ? "none" : names)) has the base https://\(String(host.prefix(200))):\(port)"))
        }
        guard let open = matching.first(where: { $0.tunnel != nil }) else {
            return .failure(GatewayFailure(
                .permissionDenied, "\(first.name) offers no HTTPS tunnels (its gateway config has no tunnel:)"))
        }
        return .success(open)
    }

    private func admit(
        _ integration: Integration, _ state: IntegrationState, caller: GatewayCaller, started: Int64
    ) -> Result<Tunnel, GatewayFailure> {
        guard let policy = integration.tunnel else {
            return .failure(GatewayFailure(.permissionDenied, "\(integration.name) offers no HTTPS tunnels"))
        }
        guard caller.tools.contains(integration.name) else {
            return .failure(GatewayFailure(.permissionDenied, "this run does not hold the tool '\(integration.name)'"))
        }
        if let deadline = caller.deadlineMs, deadline <= unixMilliseconds() {
            return .failure(GatewayFailure(.timeout, "the run's deadline has passed"))
        }
        let admission = onStore(state, store, needed: state.needsStore) { () -> Result<Admission, GatewayFailure> in
            Result { () throws(GatewayFailure) in try state.admit(store: self.store, runID: caller.runID, maxCredits: policy.max) }
        }
        return admission.flatMap { admission in
            guard caller.account.hold(policy.perConnection) else {
                onStore(state, store) { admission.cancel(state, store: self.store, runID: caller.runID) }
                return .failure(GatewayFailure(
                    .budgetExhausted, "the run's reservation cannot cover the tunnel's \(policy.perConnection) credits"))
            }
            return .success(Tunnel(
                integration: integration, policy: policy, state: state, admission: admission, caller: caller, store: store,
                started: started))
        }
    }

    private func refuseTunnel(
        _ integration: Integration, _ state: IntegrationState, caller: GatewayCaller, started: Int64, _ failure: GatewayFailure
    ) {
        let record = GatewayCallRecord(
            integration: integration.name, method: "CONNECT", path: integration.base.authority, status: nil,
            reason: failure.reason, latencyMicros: (monotonicNanoseconds() - started) / 1000, credits: .zero, cached: false,
            attempts: 0)
        caller.account.settle(held: nil, charged: .zero, record: record)
        state.count(record)
    }
}

/// Runs `body` where the store says, when the integration's state touches it (quotas, a
/// shared rate or breaker), and waits for it; otherwise here.
func onStore<T: Sendable>(
    _ state: IntegrationState, _ store: any GatewayStore, needed: Bool? = nil, _ body: @escaping @Sendable () -> T
) -> T {
    guard needed ?? state.touchesStore else { return body() }
    let result = Mutex<T?>(nil)
    let done = DispatchSemaphore(value: 0)
    store.perform {
        result.withLock { $0 = body() }
        done.signal()
    }
    done.wait()
    return result.withLock { $0! }
}
