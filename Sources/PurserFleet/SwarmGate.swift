import PurserLedger
import PurserProtocol
import PurserRuntime

/// A swarm's bracket in the fleet: admitted when its team grants its hold (held by the
/// swarm's own lease, which outlives any host), completed when its routines have all
/// ended (its hold settled, its report kept). Any live host may do either; the queue
/// hands each swarm to one host at a time.
struct SwarmGate {
    let host: FleetHost

    /// Admits what fits, team by team in each team's order; a team whose first swarm must
    /// wait is passed over for the rest of the pass. While one waits, passes come at most
    /// once a second, or at once when a swarm completed on this host.
    func admitWaiting(_ lease: HostLease) async {
        let due = host.state.withLock { state in
            state.admitSoon || monotonicMs() - state.lastAdmitMs >= HostSettings.admissionRetryMs
        }
        guard due else { return }
        var waiting: [String] = []
        while let queued = await take({ [waiting] () throws(LedgerError) in try host.fleet.nextToAdmit(host: lease, skipping: waiting) }) {
            if await !admit(queued) { waiting.append(queued.team) }
        }
        host.state.withLock { state in
            state.admitSoon = waiting.isEmpty
            state.lastAdmitMs = monotonicMs()
        }
    }

    /// Whether the swarm left the queue (admitted or denied).
    private func admit(_ queued: QueuedSwarm) async -> Bool {
        let settings = host.settings
        let parsed = host.state.withLock { $0.pending[queued.id] }
        let result = await StoreThreads.shared.run { () -> Result<(FleetSwarm, FleetSwarm.Admission, Holder?), RuntimeError> in
            Result { () throws(RuntimeError) in
                let swarm: FleetSwarm
                if let parsed { swarm = parsed } else {
                    swarm = try FleetSwarm(id: queued.id, file: queued.file, source: queued.source, runtime: host.runtime)
                }
                let (admission, holder) = try swarm.admit { () throws(LedgerError) in
                    try host.ledger.acquireLease(holder: "swarm:" + queued.id, ttlMs: settings.swarmLeaseMs)
                }
                return (swarm, admission, holder)
            }
        }
        let (verdict, message): (String?, String)
        switch result {
        case .success((let swarm, .granted(let node), let holder?)):
            // Read once: the host runs its routines from the same plan.
            host.state.withLock { state in
                state.pending[queued.id] = nil
                state.swarms[queued.id] = (swarm, node.id)
            }
            await record { () throws(LedgerError) in try host.fleet.admitted(swarm: queued.id, node: node.id, holder: holder) }
            host.events.add(queued.id, "reserve", nil, ["node": .number(JSONNumber(node.id)), "tier": "swarm", "host": .string(settings.name)])
            return true
        case .success((let swarm, .waiting(let why), let holder)):
            host.state.withLock { $0.pending[queued.id] = swarm }
            let policy = await take { () throws(LedgerError) in try host.fleet.teamPolicy(team: queued.team) }
            (verdict, message) = (policy?.onConflict == .fail ? "denied" : nil, why)
            // The swarm's lease ends with this try; the next try takes it anew.
            if let holder { _ = await take { () throws(LedgerError) in try host.ledger.reclaim(leases: [holder.id]) } }
        case .success((_, .denied(let why), _)): (verdict, message) = ("denied", why)
        case .success((_, .granted, nil)): (verdict, message) = (nil, "granted without a lease")
        case .failure(let error) where error.code == .store: (verdict, message) = (nil, error.message)
        case .failure(let error): (verdict, message) = ("denied", error.message)
        }
        if verdict != nil { host.state.withLock { _ = $0.pending.removeValue(forKey: queued.id) } }
        await record { () throws(LedgerError) in try host.fleet.notAdmitted(swarm: queued.id, verdict: verdict, message: message) }
        if queued.message != message || verdict != nil {
            host.events.add(queued.id, verdict == nil ? "queue" : "deny", nil, ["message": .string(message)])
        }
        return verdict != nil
    }

    func completeEnded(_ lease: HostLease) async {
        while let swarm = await take({ () throws(LedgerError) in try host.fleet.nextToComplete(host: lease) }) {
            await complete(swarm)
        }
    }

    /// Settles the swarm's hold, ends its lease, and keeps its report.
    private func complete(_ row: QueuedSwarm) async {
        let result = await StoreThreads.shared.run { () -> Result<FleetReport, RuntimeError> in
            Result { () throws(RuntimeError) in try FleetReport.settle(row, host: host) }
        }
        switch result {
        case .success(let report):
            await record { () throws(LedgerError) in
                try host.fleet.complete(swarm: row.id, verdict: report.verdict, report: report.json.serialized())
                try host.ledger.saveRun(report.record)
            }
            host.events.add(row.id, "done", nil, ["verdict": .string(report.verdict)])
            host.state.withLock { $0.admitSoon = true }
            await host.forget(row.id)
        case .failure(let error):
            host.logger.error("completing a swarm failed; another pass will try again", metadata: [
                "swarm": "\(row.id)", "error": "\(error.message)",
            ])
            await record { () throws(LedgerError) in try host.fleet.notCompleted(swarm: row.id) }
        }
    }

    private func take<T: Sendable>(_ body: @escaping @Sendable () throws(LedgerError) -> T?) async -> T? {
        do throws(LedgerError) {
            return try await StoreThreads.shared.run(body)
        } catch {
            host.logger.warning("reading the queue failed", metadata: ["error": "\(error)"])
            return nil
        }
    }

    private func record(_ body: @escaping @Sendable () throws(LedgerError) -> Void) async {
        do throws(LedgerError) {
            try await StoreThreads.shared.run(body)
        } catch {
            host.logger.error("writing the queue failed; the rescue puts the swarm back", metadata: ["error": "\(error)"])
        }
    }
}
