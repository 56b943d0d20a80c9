import Glibc
import PurserLedger
import PurserProtocol
import PurserSandbox

/// Taking routines from the line into runs: each reserves from the swarm by the job's
/// strategy, and the swarm's `AdmissionPolicy` says what becomes of one that does not fit.
extension SwarmRunner {
    /// Reserves for every ready routine that may start now; returns the runs to start.
    func startWhatFits(_ schedule: Schedule, store: any LedgerStore) -> [(String, Node, RunRequest)] {
        if schedule.approvals.isWaiting { _ = tendApprovals(schedule, store: store) }
        if schedule.storeFailure != nil {
            schedule.concludeAllReady(notStarted())
            return []
        }
        schedule.expireWaits(job.swarm.queueTimeoutMs)
        let budget = SwarmBudget(runner: self, swarm: schedule.swarm.id, store: store)
        shareOut(schedule, budget: budget)
        var starting: [(String, Node, RunRequest)] = []
        while let name = schedule.firstReady(), let candidate = schedule.candidate(name) {
            guard schedule.running < job.swarm.concurrency else { return starting }
            let routine = plan.routines[name]!
            let input: JSONValue
            do {
                input = try Template.fill(routine.input, outputs: schedule.outputs)
            } catch {
                schedule.conclude(name, RoutineOutcome(
                    name: name, verdict: .error, attempts: schedule.attempt(name), message: error.description))
                continue
            }
            if let problem = plan.inputProblem(routine, input) {
                schedule.conclude(name, RoutineOutcome(name: name, verdict: .error, attempts: schedule.attempt(name), message: problem))
                continue
            }
            if let key = plan.cacheKey(routine, input), let output = cache.lookUp(key) {
                emit("cache_hit", name, [:])
                schedule.conclude(name, RoutineOutcome(name: name, verdict: .ok, attempts: 0, output: output, cached: true))
                continue
            }
            switch reserve(routine, schedule, store: store, credits: schedule.shares.removeValue(forKey: name)) {
            case .success(let node):
                if let run = start(routine, input: input, node: node, schedule, store: store) { starting.append(run) }
            case .failure(let error) where error.code == .storeFailed:
                // Not a denial: the team was never asked. Nothing more starts.
                schedule.storeFailure = error.message
                schedule.concludeAllReady(notStarted())
                return starting
            case .failure(let error) where error.code == .insufficient && schedule.policy.misfit(candidate) == .wait:
                if schedule.markQueued(name) { emit("queue", name, ["message": .string(error.message)]) }
                preemptFor(candidate, schedule, budget: budget)
                return starting  // first in line first: nobody overtakes a waiting routine
            case .failure(let error):
                schedule.conclude(name, RoutineOutcome(
                    name: name, verdict: .denied, attempts: schedule.attempt(name), message: error.message))
            }
        }
        return starting
    }

    /// A routine granted its hold, as a run to start; nil when its plugin's file changed
    /// since it was pinned: refused, and its hold goes back.
    private func start(
        _ routine: JobFile.Routine, input: JSONValue, node: Node, _ schedule: Schedule, store: any LedgerStore
    ) -> (String, Node, RunRequest)? {
        let name = routine.name
        schedule.markRunning(name)
        schedule.inputs[name] = input
        schedule.holds[name] = node.cap.credits
        emit("grant", name, ["node": .number(JSONNumber(node.id)), "credits": Credits(micros: node.cap.credits).json])
        do throws(RuntimeError) {
            var request = try plan.runRequest(
                routine, input: input, hold: LedgerHold(node: node, holder: schedule.holder), workers: schedule.workers)
            let flag = PreemptionFlag()
            request.preemption = flag
            schedule.preemptFlags[name] = flag
            emit("start", name, [:])
            return (name, node, request)
        } catch {
            schedule.running -= 1
            finish(schedule, name, node, nil, error, store: store)
            return nil
        }
    }

    /// What the strategy reserves for a routine.
    func request(_ routine: JobFile.Routine, store: any LedgerStore) -> Int64 {
        let strategy = ReservationStrategy(rawValue: job.swarm.strategy) ?? .conservative
        let history = strategy == .adaptive
            ? logged("reading the plugin's history", routine: routine.name) { () throws(LedgerError) in
                try store.history(plugin: routine.plugin, team: job.team.name, limit: 50)
            } ?? [] : []
        return strategy.amount(for: plan.planned(routine).estimate.credits.micros, history: history)
    }

    /// Shares for the routines first in line, as many as may start, if the policy shares.
    private func shareOut(_ schedule: Schedule, budget: SwarmBudget) {
        schedule.shares = [:]
        let slots = max(job.swarm.concurrency - schedule.running, 0)
        for share in schedule.policy.shares(schedule.firstReady(slots), budget: budget) {
            schedule.shares[share.name] = share.credits
            emit("share", share.name, ["credits": Credits(micros: share.credits).json, "asked": Credits(micros: share.asked).json])
        }
    }

    /// Stops the runs the policy names to make room for `candidate`. They end `preempted`,
    /// go back in line, and what they did not use returns to the swarm.
    private func preemptFor(_ candidate: AdmissionCandidate, _ schedule: Schedule, budget: SwarmBudget) {
        guard schedule.preempting.isEmpty else { return }
        let running = schedule.tasks.keys.compactMap { name -> AdmissionHolding? in
            guard let routine = plan.routines[name], let held = schedule.holds[name] else { return nil }
            return AdmissionHolding(name: name, priority: routine.priority, credits: held)
        }
        for victim in schedule.policy.victims(for: candidate, running: running, budget: budget) {
            schedule.preempting.insert(victim)
            emit("preempt", victim, ["for": .string(candidate.name)])
            schedule.preemptFlags[victim]?.set()
            schedule.tasks[victim]?.cancel()
        }
    }

    private func reserve(
        _ routine: JobFile.Routine, _ schedule: Schedule, store: any LedgerStore, credits share: Int64? = nil
    ) -> Result<Node, LedgerError> {
        let request = plan.holdRequest(
            routine, credits: share ?? request(routine, store: store), from: schedule.swarm.id, holder: schedule.holder)
        emit("reserve", routine.name, ["credits": Credits(micros: request.amounts.credits).json, "strategy": .string(request.strategy ?? "")])
        do {
            return .success(try store.reserve(request))
        } catch {
            return .failure(error)
        }
    }
}

/// The swarm's budget as a policy asks about it; each answer reads the ledger.
struct SwarmBudget: AdmissionBudget {
    let runner: SwarmRunner
    let swarm: NodeID
    let store: any LedgerStore

    func available() -> Int64? {
        runner.logged("reading the swarm's node") { () throws(LedgerError) in try store.node(swarm).available.credits }
    }

    func asked(_ candidate: AdmissionCandidate) -> Int64 {
        guard let routine = runner.plan.routines[candidate.name] else { return 0 }
        return runner.request(routine, store: store)
    }
}
