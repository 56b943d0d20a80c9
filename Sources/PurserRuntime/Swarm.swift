import Dispatch
import Glibc
import PurserLedger
import PurserProtocol
import PurserSandbox

/// Runs a job file's swarm: reserves the swarm from its team, then each routine from the
/// swarm as its dependencies finish and the budget allows, `concurrency` at a time;
/// returns what was not used at every tier.
///
/// The parts: `SwarmPlan` (the job checked, its plugins resolved), `Schedule` (where each
/// routine stands, and the line of ready ones), the `AdmissionPolicy` that `onConflict`
/// names (who goes first, what becomes of a routine that does not fit), `SwarmAdmission`
/// (reserving and starting), this loop (running and taking in ends), `SwarmLedger` (the
/// swarm's own bracket in the ledger) and `SwarmReport`.
///
/// A waiting routine holds nothing, and every reservation is taken whole from its parent or
/// not at all, so no wait can be part of a cycle: the swarm cannot deadlock. A routine that
/// could not fit even with nothing else running is denied.
public final class SwarmRunner: Sendable {
    let runtime: Runtime
    let job: JobFile
    let plan: SwarmPlan
    private let onEvent: @Sendable (SwarmEvent) -> Void
    let cache: RoutineCache

    /// Checks what can be checked before anything is reserved: every plugin exists, and
    /// the host can sandbox it.
    public init(runtime: Runtime, job: JobFile, onEvent: @escaping @Sendable (SwarmEvent) -> Void = { _ in }) throws(RuntimeError) {
        guard runtime.ledger != nil else { throw RuntimeError(code: .ledger, message: "a swarm needs a ledger") }
        plan = try SwarmPlan(job: job, runtime: runtime)
        cache = RoutineCache(store: runtime.ledger!.store, logger: runtime.logger)
        self.runtime = runtime
        self.job = job
        self.onEvent = onEvent
    }

    func emit(_ kind: String, _ routine: String?, _ fields: [String: JSONValue]) {
        onEvent(SwarmEvent(atMs: unixMilliseconds(), kind: kind, routine: routine, fields: fields))
    }

    enum Finished: Sendable {
        /// `error` with a report: the run ended, but could not be settled.
        case run(name: String, node: Node, report: RunReport?, error: RuntimeError?)
        case tick
    }

    func runRoutines(_ schedule: Schedule, store: any LedgerStore) async {
        await withTaskGroup(of: Finished.self) { group in
            // Budget is looked at only when a run's end has been taken in (or at the start):
            // a hold returned by a run whose end is not yet seen must not let a waiting
            // routine overtake that run's dependents.
            var mayStart = true
            // What the last run's end started, in the same hop to the store's threads.
            var started: [(String, Node, RunRequest)]?
            while true {
                // Scheduling reads and writes the ledger: on the store's threads, not this task's.
                // Cancelled (the supervisor was told to stop): nothing more starts, and what
                // runs is cancelled through its task, settles and is reported.
                let starting: [(String, Node, RunRequest)]
                if let started {
                    starting = started
                } else {
                    starting = mayStart && !Task.isCancelled ? await StoreThread.run { self.startWhatFits(schedule, store: store) } : []
                }
                started = nil
                for (name, node, request) in starting {
                    let task = launch(name, node, request)
                    schedule.tasks[name] = task
                    group.addTask { await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() } }
                }
                if schedule.running == 0 {
                    guard schedule.hasReady || schedule.approvals.isWaiting else { break }
                    if Task.isCancelled {
                        let outcome = RoutineOutcome(
                            name: "", verdict: .cancelled, attempts: 0, message: "the swarm was cancelled before it started")
                        schedule.concludeAllReady(outcome)
                        await StoreThread.run { self.endApprovals(schedule, store: store, outcome) }
                        continue
                    }
                    if schedule.hasReady {
                        // Nothing runs, so nothing will return budget: what still waits never fits.
                        schedule.denyAllReady("does not fit in what the swarm has left, even with nothing else running")
                        continue
                    }
                }
                if (schedule.hasReady || schedule.approvals.isWaiting) && !schedule.ticking {
                    schedule.ticking = true
                    group.addTask {
                        try? await Task.sleep(for: .milliseconds(250))
                        return .tick
                    }
                }
                guard let finished = await group.next() else { break }
                switch finished {
                case .tick:
                    schedule.ticking = false
                    schedule.expireWaits(job.swarm.queueTimeoutMs)
                    // A decision taken in starts the approved routine at once.
                    mayStart = schedule.approvals.isWaiting ? await StoreThread.run { self.tendApprovals(schedule, store: store) } : false
                case .run(let name, let node, let report, let error):
                    schedule.running -= 1
                    schedule.tasks[name] = nil
                    started = await finishAndStart(schedule, name, node, report, error, store: store)
                    mayStart = true
                }
            }
        }
    }

    /// Takes in a run's end and starts what then fits, in one hop to the store's threads
    /// (each hop is two thread wake-ups); nothing starts once the swarm is cancelled.
    private func finishAndStart(
        _ schedule: Schedule, _ name: String, _ node: Node, _ report: RunReport?, _ error: RuntimeError?, store: any LedgerStore
    ) async -> [(String, Node, RunRequest)] {
        let cancelled = Flag()
        return await withTaskCancellationHandler {
            await StoreThread.run {
                self.finish(schedule, name, node, report, error, store: store)
                return cancelled.value.load(ordering: .acquiring) ? [] : self.startWhatFits(schedule, store: store)
            }
        } onCancel: {
            cancelled.value.store(true, ordering: .releasing)
        }
    }

    /// A task of its own for each run, so that a preemption can cancel this one run.
    private func launch(_ name: String, _ node: Node, _ request: RunRequest) -> Task<Finished, Never> {
        let runtime = self.runtime
        return Task<Finished, Never> {
            defer { request.closeFiles() }
            do throws(RuntimeError) {
                let report = try await runtime.exec(request) { event in self.forward(event, routine: name) }
                return .run(name: name, node: node, report: report, error: nil)
            } catch {
                return .run(name: name, node: node, report: error.report, error: error)
            }
        }
    }

    /// Takes in a run's end: its verdict, then a retry, a return to the line after a
    /// preemption, or the routine's outcome.
    func finish(
        _ schedule: Schedule, _ name: String, _ node: Node, _ report: RunReport?, _ error: RuntimeError?, store: any LedgerStore
    ) {
        // A store that failed under a run (its settle, its records) stops the swarm.
        if let error, error.code == .store || error.code == .ledger, schedule.storeFailure == nil {
            schedule.storeFailure = error.message
        }
        var returned = report?.returned.credits ?? Credits(micros: node.cap.credits)
        if error != nil, let report {
            // It ran, and the store did not take its settle: what it used is kept, for
            // another try when the swarm ends, never replaced by nothing used.
            schedule.unsettled[name] = (node, report)
            returned = .zero
        } else if report == nil, !settleNeverStarted(schedule, node, store: store) {
            returned = .zero
        }
        let verdict = report?.verdict ?? .error
        emit("verdict", name, [
            "verdict": .string(verdict.rawValue), "node": .number(JSONNumber(node.id)),
            "used": (report?.usage.credits ?? .zero).json, "returned": returned.json,
        ])
        let routine = plan.routines[name]!
        schedule.holds[name] = nil
        // A run the ledger did not take ends the routine: its usage must stay in view.
        let mayRunAgain = schedule.storeFailure == nil && schedule.unsettled[name] == nil
        if mayRunAgain, schedule.preempting.remove(name) != nil, verdict == .preempted {
            // Back in the queue; the attempt does not count as a retry.
            schedule.attempts[name, default: 1] -= 1
            schedule.retry(name)
            return
        }
        if mayRunAgain, verdict != .ok, schedule.attempt(name) <= routine.retries {
            emit("retry", name, ["attempt": .number(JSONNumber(Int64(schedule.attempt(name) + 1)))])
            schedule.retry(name)
            return
        }
        if verdict == .ok, let report, let input = schedule.inputs[name], let key = plan.cacheKey(routine, input) {
            cache.remember(key, report.output ?? .null)
        }
        var outcome = RoutineOutcome(
            name: name, verdict: verdict, attempts: schedule.attempt(name),
            message: report?.error?.message ?? report?.message ?? (report == nil ? error?.message : nil),
            output: report?.output, ledgerNode: node.id, report: report)
        if report != nil { outcome.settleError = error?.message }
        schedule.conclude(name, outcome)
    }

    /// The run never started (a bad input, a missing file): its hold goes back whole.
    /// False when the store failed (the swarm then stops, and the hold stays open).
    private func settleNeverStarted(_ schedule: Schedule, _ node: Node, store: any LedgerStore) -> Bool {
        do throws(LedgerError) {
            _ = try store.settle(node.id, usage: .none, verdict: .error, holder: schedule.holder)
        } catch where error.code == .storeFailed {
            if schedule.storeFailure == nil { schedule.storeFailure = "ledger: settling node \(node.id): \(error)" }
            return false
        } catch {
            // Closed already, or fenced: nothing to return, but an operator should know.
            runtime.logger.failure("hold not returned", swarmMetadata(node: node), error, level: .warning)
        }
        return true
    }
}

func milliseconds(since start: ContinuousClock.Instant) -> Int64 {
    let elapsed = ContinuousClock.now - start
    return elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
}
