import PurserLedger
import PurserRuntime

/// Renews the host's row and its ledger lease every heartbeat. A host that cannot renew
/// for half the dead threshold fences itself: it stops claiming and stops its runs, so
/// that its workers are gone before any other host can find it lost and run its routines
/// again. No routine runs on two hosts at once. Once its runs have ended and the store
/// answers, it joins again under a new epoch (what it held before is reclaimed).
///
/// The fence is watched apart from the renewals: a renewal may wait on a store that went
/// away (reconnecting, for the store retry window), and the fence must not wait with it.
struct HostHeartbeat {
    let host: FleetHost

    func run() async {
        let watcher = Task { await watchForFence() }
        defer { watcher.cancel() }
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(host.settings.heartbeatMs))
            guard !Task.isCancelled else { return }
            if host.state.withLock({ $0.fenced }) { await rejoin() } else { await beat() }
        }
    }

    private func watchForFence() async {
        let settings = host.settings
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(settings.fenceCheckMs))
            let (fenced, last) = host.state.withLock { ($0.fenced, $0.lastBeatMs) }
            let silentMs = monotonicMs() - last
            if !fenced, silentMs >= settings.fenceAfterMs {
                host.stopAllRuns(because: "no heartbeat for \(silentMs) ms (fence after \(settings.fenceAfterMs) ms)")
            }
        }
    }

    private func beat() async {
        let (lease, holder, running, note) = host.state.withLock { ($0.lease, $0.holder, $0.runs.count, $0.pluginNote) }
        let settings = host.settings
        // Counted from the send: the row's time is later, so the fence comes early, never late.
        let sent = monotonicMs()
        do throws(LedgerError) {
            try await host.heartbeatThread.run { () throws(LedgerError) in
                try host.fleet.heartbeat(lease, running: running, note: note)
                try host.ledger.heartbeat(holder, ttlMs: settings.deadAfterMs)
            }
            host.state.withLock { state in
                if state.lease == lease { state.lastBeatMs = max(state.lastBeatMs, sent) }
            }
            recordWorkers()
        } catch where error.code == .fenced {
            host.stopAllRuns(because: "found lost: \(error.message)")
        } catch {
            host.logger.warning("heartbeat failed", metadata: ["error": "\(error)", "silentMs": "\(monotonicMs() - sent)"])
        }
    }

    /// Each running worker's pid and memory peak onto its routine's row, for the dashboard
    /// and the API: in a task of its own, on the store's threads, one at a time, so that a
    /// slow store or a busy run never holds up the next renewal. Its failure is logged.
    private func recordWorkers() {
        let runs = host.state.withLock { state -> [(Claim, WorkerProbe)]? in
            guard !state.recordingWorkers else { return nil }
            let runs = state.runs.values.compactMap { run in state.probes[run.claim.id].map { (run.claim, $0) } }
            state.recordingWorkers = !runs.isEmpty
            return runs.isEmpty ? nil : runs
        }
        guard let runs else { return }
        let host = self.host
        Task {
            defer { host.state.withLock { $0.recordingWorkers = false } }
            do throws(LedgerError) {
                try await StoreThreads.shared.run { () throws(LedgerError) in
                    // Sampled here, off the cooperative pool: a sample may wait on its run's queue.
                    let workers = runs.compactMap { claim, probe in
                        probe.sample().map { RunningWorker(claim: claim, pid: $0.pid, memoryPeakBytes: $0.memoryPeakBytes) }
                    }
                    try host.fleet.recordWorkers(workers)
                }
            } catch {
                host.logger.warning("recording the running workers failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Joins again once the runs stopped at the fence have ended.
    private func rejoin() async {
        guard host.state.withLock({ $0.runs.isEmpty }) else { return }
        do throws(RuntimeError) {
            let joined = try await FleetHost.join(host.settings, fleet: host.fleet, ledger: host.ledger)
            // Read again under the new epoch; their kept workers end first.
            for id in host.state.withLock({ Array($0.swarms.keys) }) { await host.forget(id) }
            host.state.withLock { state in
                state.lease = joined.lease
                state.holder = joined.holder
                state.fenced = false
                state.lastBeatMs = monotonicMs()
            }
            host.logger.notice("joined the fleet again", metadata: ["epoch": "\(joined.lease.epoch)"])
            host.wakeup.signal()
        } catch {
            host.logger.warning("rejoining the fleet failed", metadata: ["error": "\(error.message)"])
        }
    }
}
