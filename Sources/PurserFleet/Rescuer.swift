import PurserLedger

/// While this host leads (a row with a time to live, renewed every heartbeat), it finds
/// hosts whose heartbeat is older than the dead threshold: their running attempts end
/// `host_lost` and go back in line, and their ledger leases are reclaimed, so that the
/// holds they took return (a host that comes back late can settle none of them). It also
/// renews the leases of the swarms in the fleet, which belong to no host.
struct Rescuer {
    let host: FleetHost

    func run() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(host.settings.heartbeatMs))
            guard !Task.isCancelled, !host.state.withLock({ $0.fenced }) else { continue }
            await sweep()
        }
    }

    private func sweep() async {
        let settings = host.settings
        let fleet = host.fleet
        let ledger = host.ledger
        do throws(LedgerError) {
            let lost = try await StoreThreads.shared.run { () throws(LedgerError) -> [Attempt] in
                guard try fleet.lead(host: settings.name, ttlMs: settings.deadAfterMs) else { return [] }
                let lost = try fleet.rescue(deadAfterMs: settings.deadAfterMs)
                let gone = try fleet.hosts().filter { $0.state == "lost" }.map { "host:" + $0.name }
                _ = try ledger.reclaim(leases: gone)
                _ = try ledger.reclaimExpired()
                // The holders alone: a swarm's row carries its job's text.
                for holder in try fleet.swarmHolders() {
                    try? ledger.heartbeat(holder, ttlMs: settings.swarmLeaseMs)
                }
                return lost
            }
            for attempt in lost {
                host.logger.warning("rescued a lost host's routine", metadata: [
                    "lostHost": "\(attempt.host)", "swarm": "\(attempt.swarm)", "routine": "\(attempt.routine)",
                    "attempt": "\(attempt.attempt)",
                ])
                host.events.add(attempt.swarm, "host_lost", attempt.routine, ["host": .string(attempt.host)])
            }
            if !lost.isEmpty { host.wakeup.signal() }
        } catch {
            host.logger.warning("rescue sweep failed", metadata: ["error": "\(error)"])
        }
    }
}
