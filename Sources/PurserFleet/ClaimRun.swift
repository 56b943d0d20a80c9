import PurserLedger
import PurserProtocol
import PurserRuntime

/// One claimed attempt of a routine on this host: run it as `purser run` would, then tell
/// the queue how it ended. A host that lost the claim meanwhile (it was fenced and its
/// routines rescued) changes nothing: the queue refuses its `finish`.
struct ClaimRun {
    let host: FleetHost
    let claim: Claim

    func run() async {
        defer { host.ended(claim) }
        let (holder, lease) = host.state.withLock { ($0.holder, $0.lease) }
        guard lease == claim.host else { return }
        guard let (swarm, node) = await host.swarm(claim.swarm) else {
            await finish(RoutineEnd(verdict: "error", message: "this host cannot run the swarm's job (see its log)"))
            return
        }
        let needed = swarm.inputsFrom(claim.routine)
        let outputs = needed.isEmpty ? [:] : await read { () throws(LedgerError) in try host.fleet.outputs(swarm: claim.swarm, of: needed) } ?? [:]
        host.events.add(claim.swarm, "claim", claim.routine, ["host": .string(lease.name), "attempt": .number(JSONNumber(Int64(claim.attempt)))])
        let (id, routine, events) = (claim.swarm, claim.routine, host.events)
        let metrics = RunMetrics(
            team: swarm.job.team.name, plugin: swarm.job.routines.first { $0.name == routine }?.plugin ?? "", readyMs: claim.readyMs)
        let probe = WorkerProbe()
        host.state.withLock { $0.probes[claim.id] = probe }
        let result = await swarm.run(
            routine, outputs: outputs, swarm: node, holder: holder, graceMs: host.settings.stopGraceMs, probe: probe
        ) { kind, fields in
            if kind == "start" { metrics.start() }
            events.add(id, kind, routine, fields)
        }
        switch result {
        case .notFit(let message): await notFit(message, swarm: node)
        case .frozen(let message): await backInLine(message)
        case .ended(var ran):
            if ran.unsettled { ran.unsettled = await !settleAgain(ran, swarm: swarm, holder: holder) }
            await ended(ran, retries: swarm.retries(routine), team: swarm.job.team.name, metrics: metrics)
        }
    }

    /// A run the store did not settle is settled again with what it used, while the store
    /// is away; one whose settle is refused for good runs again (its spend, as recorded,
    /// stays charged by the reclaim), never ends ok uncharged.
    private func settleAgain(_ ran: RoutineRun, swarm: FleetSwarm, holder: Holder) async -> Bool {
        while true {
            let settled = await StoreThreads.shared.run { () -> Result<Bool, RuntimeError> in
                Result { () throws(RuntimeError) in try swarm.settleAgain(ran, holder: holder) }
            }
            switch settled {
            case .success(let charged): return charged
            case .failure(let error):
                host.logger.warning("a run's settle waits for the store", metadata: [
                    "swarm": "\(claim.swarm)", "routine": "\(claim.routine)", "error": "\(error.message)",
                ])
            }
            await Task.detached { try? await Task.sleep(for: .seconds(1)) }.value
        }
    }

    /// Its hold does not fit now: back in line while others of its swarm run, or hosts hold
    /// chunks of it (they will return budget); denied when nothing else runs and no chunk
    /// is out, as `purser run` denies it.
    private func notFit(_ message: String, swarm node: NodeID) async {
        let others = await read { () throws(LedgerError) in
            let running = try host.fleet.routines(swarm: claim.swarm).contains { $0.state == "running" && $0.name != claim.routine }
            if running { return true }
            return try host.ledger.openChildren(of: node).contains { $0.kind == .swarm }
        } ?? true
        guard others else {
            await finish(RoutineEnd(
                verdict: "denied", message: "does not fit in what the swarm has left, even with nothing else running: \(message)"))
            host.events.add(claim.swarm, "deny", claim.routine, ["message": .string(message)])
            return
        }
        await backInLine(message)
    }

    private func backInLine(_ message: String) async {
        _ = await read { () throws(LedgerError) in try host.fleet.unclaim(claim, message: message) }
        host.events.add(claim.swarm, "queue", claim.routine, ["message": .string(message)])
    }

    private func ended(_ ran: RoutineRun, retries: Int, team: String, metrics: RunMetrics) async {
        let (requeue, told) = host.state.withLock { ($0.requeue.contains(claim.id), $0.stopped[claim.id]) }
        var stopFor = told
        // A run that failed while its team is frozen failed for the freeze (a step refused
        // its hold): it waits in line for the thaw, as one told to stop does.
        if stopFor == nil, ran.verdict != .ok {
            let freeze = await read { () throws(LedgerError) in try host.ledger.freeze(of: team) }
            if case .some(.some) = freeze { stopFor = "freeze" }
        }
        var verdict = ran.verdict.rawValue
        if let stopFor, ran.verdict != .ok { verdict = stopFor == "preempt" ? "preempted" : Self.frozen }
        var cancelling = false
        var stops = 0
        if ran.verdict != .ok && stopFor == nil {
            cancelling = await read { () throws(LedgerError) in try host.fleet.swarmState(id: claim.swarm) } == "cancelling"
            stops = await read { () throws(LedgerError) in try host.fleet.stoppedAttempts(swarm: claim.swarm, routine: claim.routine) } ?? 0
        }
        // A run the ledger would not charge goes back in line, whatever it answered; a
        // routine told to stop too (a preemption, a frozen team), and its stopped attempts
        // do not count against its retries.
        let retry = requeue || ran.unsettled || (stopFor != nil && ran.verdict != .ok)
            || (ran.verdict != .ok && claim.attempt - stops <= retries && !cancelling)
        host.events.add(claim.swarm, "verdict", claim.routine, [
            "verdict": .string(verdict), "attempt": .number(JSONNumber(Int64(claim.attempt))),
            "used": (ran.report?.usage.credits ?? .zero).json, "returned": (ran.report?.returned.credits ?? .zero).json,
            "cached": .bool(ran.cached),
        ])
        metrics.end(verdict: verdict, credits: ran.report?.usage.credits.micros ?? 0)
        if retry { host.events.add(claim.swarm, requeue ? "requeue" : "retry", claim.routine, [:]) }
        await finish(RoutineEnd(
            verdict: verdict, message: ran.message, output: ran.verdict == .ok ? (ran.output ?? .null).serialized() : nil,
            node: ran.node, report: ran.report?.json.serialized(), retry: retry))
    }

    /// An attempt stopped because its team froze.
    static let frozen = "frozen"

    /// Records the end, trying again while the store is away: a routine left `running` on
    /// a live host would wait forever. A host fenced meanwhile stops trying: the rescue
    /// requeues the routine.
    private func finish(_ end: RoutineEnd) async {
        while true {
            do throws(LedgerError) {
                try await StoreThreads.shared.run { () throws(LedgerError) in try host.fleet.finish(claim, end) }
                return
            } catch where error.code == .fenced {
                host.logger.warning("a run ended after its claim was rescued: nothing recorded", metadata: [
                    "swarm": "\(claim.swarm)", "routine": "\(claim.routine)", "attempt": "\(claim.attempt)",
                ])
                return
            } catch {
                host.logger.error("a run's end was not recorded; trying again", metadata: [
                    "swarm": "\(claim.swarm)", "routine": "\(claim.routine)", "error": "\(error)",
                ])
            }
            guard !host.state.withLock({ $0.fenced }) else { return }
            // This task may be cancelled (a drain, a swarm's cancel): its sleep must still wait.
            await Task.detached { try? await Task.sleep(for: .seconds(1)) }.value
        }
    }

    /// A store read the run can go on without: nil, and logged, when it fails.
    private func read<T: Sendable>(_ body: @escaping @Sendable () throws(LedgerError) -> T) async -> T? {
        do throws(LedgerError) {
            return try await StoreThreads.shared.run(body)
        } catch {
            host.logger.warning("a store read failed", metadata: ["swarm": "\(claim.swarm)", "error": "\(error)"])
            return nil
        }
    }
}
