import PurserLedger
import PurserProtocol
import PurserRuntime

/// A swarm's bracket in the fleet: admitted when its team grants its hold (held by the
/// swarm's own lease, which outlives any host), completed when its routines have all
/// ended (its hold settled, its report kept). Any live host may do either; the queue
/// hands each swarm to one host at a time.
struct SwarmGate {
    let host: FleetHost

    func admitWaiting(_ lease: HostLease) async {
        while let queued = await take({ () throws(LedgerError) in try host.fleet.nextToAdmit(host: lease) }) {
            await admit(queued)
        }
    }

    private func admit(_ queued: QueuedSwarm) async {
        let settings = host.settings
        let result = await StoreThreads.shared.run { () -> Result<(FleetSwarm.Admission, Holder), RuntimeError> in
            Result { () throws(RuntimeError) in
                let swarm = try FleetSwarm(id: queued.id, file: queued.file, source: queued.source, runtime: host.runtime)
                let holder: Holder
                do throws(LedgerError) {
                    holder = try host.ledger.acquireLease(holder: "swarm:" + queued.id, ttlMs: settings.swarmLeaseMs)
                } catch {
                    throw RuntimeError(code: .store, message: "ledger: \(error)")
                }
                return (try swarm.admit(holder: holder), holder)
            }
        }
        let (verdict, message): (String?, String)
        switch result {
        case .success((.granted(let node), let holder)):
            await record { () throws(LedgerError) in try host.fleet.admitted(swarm: queued.id, node: node.id, holder: holder) }
            host.events.add(queued.id, "reserve", nil, ["node": .number(JSONNumber(node.id)), "tier": "swarm", "host": .string(settings.name)])
            return
        case .success((.waiting(let why), _)): (verdict, message) = (nil, why)
        case .success((.denied(let why), _)): (verdict, message) = ("denied", why)
        case .failure(let error) where error.code == .store: (verdict, message) = (nil, error.message)
        case .failure(let error): (verdict, message) = ("denied", error.message)
        }
        await record { () throws(LedgerError) in try host.fleet.notAdmitted(swarm: queued.id, verdict: verdict, message: message) }
        if queued.message != message { host.events.add(queued.id, verdict == nil ? "queue" : "deny", nil, ["message": .string(message)]) }
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
            host.state.withLock { _ = $0.swarms.removeValue(forKey: row.id) }
        case .failure(let error):
            host.logger.error("completing a swarm failed; another pass will try again", metadata: [
                "swarm": "\(row.id)", "error": "\(error.message)",
            ])
            await record { () throws(LedgerError) in try host.fleet.notCompleted(swarm: row.id) }
        }
    }

    private func take(_ body: @escaping @Sendable () throws(LedgerError) -> QueuedSwarm?) async -> QueuedSwarm? {
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
