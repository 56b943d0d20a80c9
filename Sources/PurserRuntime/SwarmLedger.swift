import Logging
import PurserLedger
import PurserProtocol
import PurserSandbox

/// A swarm's bracket in the ledger: its team, lease and reservation first; at the end, the
/// settles the store did not take when their runs ended, then the swarm's own. A store
/// that is briefly away is waited for (the store retry window, in the driver); one that
/// stays away past it is the report's `storeError`, and nothing that is known is dropped.
extension SwarmRunner {
    /// Runs the swarm, and keeps its report in the store for `purser runs`. The store's
    /// notices while it runs are `store` events of its stream.
    public func run() async throws(RuntimeError) -> SwarmReport {
        let ledger = runtime.ledger!
        let listener = ledger.notices.listen { [self] message in emit("store", nil, ["message": .string(message)]) }
        defer { ledger.notices.stopListening(listener) }
        let report = try await runSwarm()
        let record = RunRecord(
            id: report.runID, swarm: report.swarm, team: report.team, ok: report.allOK, startedMs: report.startedMs,
            report: report.json.serialized())
        let store = ledger.store
        let (metadata, logger) = (swarmMetadata(runID: report.runID), runtime.logger)
        await StoreThread.run {
            do {
                try store.saveRun(record)
            } catch {
                // The swarm's caller has the report; `purser runs` will not.
                logger.failure("swarm report not kept", metadata, error)
            }
        }
        return report
    }

    private enum Opening: Sendable {
        case granted(team: Node, holder: Holder, swarm: Node)
        case denied(String)
    }

    private func runSwarm() async throws(RuntimeError) -> SwarmReport {
        let started = ContinuousClock.now
        let runID = "s-" + Runtime.makeRunID().dropFirst(2)
        let startedMs = unixMilliseconds()
        let store = runtime.ledger!.store
        let opening = await StoreThread.run { () -> Result<Opening, RuntimeError> in
            Result { () throws(RuntimeError) in try self.open(store) }
        }
        guard case .granted(let team, let holder, let swarm) = try opening.get() else {
            guard case .denied(let message) = try opening.get() else { fatalError("unreachable") }
            emit("deny", nil, ["message": .string(message)])
            return SwarmReport(
                runID: runID, startedMs: startedMs,
                swarm: job.swarm.name, team: job.team.name, swarmNode: nil, denied: message, routines: [], tiers: [],
                analytics: nil, wallMs: milliseconds(since: started))
        }
        emit("reserve", nil, ["node": .number(JSONNumber(swarm.id)), "credits": job.swarm.credits.json, "tier": "swarm"])
        let schedule = Schedule(plan: plan, swarm: swarm, holder: holder) { [self] in emit($0, $1, $2) }
        if plan.asksUntrustedReuse { schedule.workers.allowUntrusted(await StoreThread.run { self.teamReusesUntrusted() }) }
        schedule.approvals.run = runID
        await runRoutines(schedule, store: store)
        await schedule.workers.retireAll()
        let closing = await StoreThread.run { () -> Result<SwarmReport, RuntimeError> in
            Result { () throws(RuntimeError) in
                try self.close(schedule, store: store, runID: runID)
                return self.report(schedule, store: store, swarm: swarm, team: team, started: started)
            }
        }
        var report = try closing.get()
        report.runID = runID
        report.startedMs = startedMs
        report.storeError = schedule.storeFailure
        return report
    }

    /// The team (made from `team.budget` if need be), this supervisor's lease, and the
    /// swarm's reservation; or why the team did not grant it.
    private func open(_ store: any LedgerStore) throws(RuntimeError) -> Opening {
        let team = try job.openTeam(in: store)
        do throws(LedgerError) {
            let holder = try runtime.ledger!.holder()
            let swarm = try store.reserve(.swarm(job.swarm, from: team.id, holder: holder))
            return .granted(team: team, holder: holder, swarm: swarm)
        } catch where error.code == .insufficient || error.code == .toolNotPermitted || error.code == .frozen {
            return .denied(error.message)
        } catch {
            throw RuntimeError(error)
        }
    }

    /// The team's word on keeping untrusted workers (`TeamPolicy.reuseUntrusted`); no when
    /// it cannot be read, and that logged.
    private func teamReusesUntrusted() -> Bool {
        do {
            return try runtime.ledger!.fleetStore().teamPolicy(team: job.team.name).reuseUntrusted
        } catch {
            runtime.logger.warning(
                "the team's policy could not be read: untrusted workers are not kept", metadata: ["team": "\(job.team.name)", "error": "\(error)"])
            return false
        }
    }

    /// Settles, with what each used, the runs whose settle the store did not take; then
    /// the swarm, unless one is still unsettled: closing the swarm would close it as
    /// abandoned, with nothing used. What stays open is the reclaim's once this
    /// supervisor's lease runs out; the report says what it used.
    private func close(_ schedule: Schedule, store: any LedgerStore, runID: String) throws(RuntimeError) {
        let ledger = runtime.ledger!
        for (name, entry) in schedule.unsettled.sorted(by: { $0.key < $1.key }) {
            do throws(RuntimeError) {
                try ledger.settleNow(entry.node, holder: schedule.holder, report: entry.report)
                schedule.unsettled[name] = nil
                schedule.outcomes[name]?.settleError = nil
                emit("settle", name, ["node": .number(JSONNumber(entry.node.id)), "used": entry.report.usage.credits.json])
                continue
            } catch where error.code == .store {
                schedule.outcomes[name]?.settleError = error.message
            } catch {
                // Closed already, or fenced: another try cannot change it.
                schedule.unsettled[name] = nil
                schedule.outcomes[name]?.settleError = error.message
            }
            var metadata = swarmMetadata(runID: runID, node: entry.node)
            metadata["routine"] = "\(name)"
            metadata["error"] = "\(schedule.outcomes[name]?.settleError ?? "")"
            runtime.logger.warning("routine not settled", metadata: metadata)
        }
        if let first = schedule.unsettled.values.first, schedule.storeFailure == nil {
            schedule.storeFailure = schedule.outcomes.values.first { $0.ledgerNode == first.node.id }?.settleError
        }
        guard schedule.unsettled.isEmpty else { return }
        let allOK = schedule.outcomes.allSatisfy { $0.value.verdict == .ok }
        do throws(LedgerError) {
            _ = try store.settle(schedule.swarm.id, usage: .none, outcome: LedgerOutcome.swarm(allOK: allOK), holder: schedule.holder)
        } catch where error.code == .storeFailed {
            schedule.storeFailure = schedule.storeFailure ?? "ledger: settling swarm \(schedule.swarm.id): \(error)"
            return
        } catch {
            throw RuntimeError(code: .ledger, message: "ledger: settling swarm \(schedule.swarm.id): \(error)")
        }
        emit("return", nil, ["tier": "swarm", "node": .number(JSONNumber(schedule.swarm.id))])
    }

    /// What a log line says of this swarm: its run, name and team, and the node concerned.
    func swarmMetadata(runID: String? = nil, node: Node? = nil) -> Logger.Metadata {
        var metadata = node.map { LogMetadata.run(runID, node: $0) } ?? (runID.map { ["run": "\($0)"] } ?? [:])
        metadata["swarm"] = "\(job.swarm.name)"
        metadata["team"] = "\(job.team.name)"
        return metadata
    }

    /// A store read the swarm can go on without (it schedules or reports with less): nil
    /// when it fails, and the failure logged.
    func logged<T>(_ what: String, routine: String? = nil, _ read: () throws(LedgerError) -> T) -> T? {
        do {
            return try read()
        } catch {
            var metadata = swarmMetadata()
            if let routine { metadata["routine"] = "\(routine)" }
            runtime.logger.failure("\(what) failed", metadata, error, level: .warning)
            return nil
        }
    }

    /// How a routine ends that the swarm did not start because the store is away.
    func notStarted() -> RoutineOutcome {
        RoutineOutcome(name: "", verdict: .skipped, attempts: 0, message: "not started: the ledger's store is away (storeError)")
    }
}

extension JobFile {
    /// The job's team; made from `team.budget` when it does not exist yet.
    func openTeam(in store: any LedgerStore) throws(RuntimeError) -> Node {
        do throws(LedgerError) {
            return try store.team(named: team.name)
        } catch where error.code != .unknownTeam {
            // A store that fails is not a team that is missing.
            throw RuntimeError(error)
        } catch {}
        guard let budget = team.budget else {
            throw RuntimeError(
                code: .invalidRequest,
                message: "\(file): team.name: there is no team named \(team.name), and team.budget is not given")
        }
        do throws(LedgerError) {
            return try store.createTeam(TeamSpec(
                name: team.name,
                caps: Resources(credits: budget.credits.micros, timeMs: budget.timeMs, memoryBytes: budget.memoryBytes),
                workers: budget.workers, tools: budget.tools))
        } catch where error.code == .constraint || error.code == .invalid {
            // Another supervisor made it first.
            do throws(LedgerError) { return try store.team(named: team.name) } catch {
                throw RuntimeError(error)
            }
        } catch {
            throw RuntimeError(error)
        }
    }
}
