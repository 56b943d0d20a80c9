import PurserLedger
import PurserProtocol
import PurserSandbox

/// Where each routine of a swarm stands; touched only by the scheduling loop, one step at a
/// time (steps that read or write the ledger run on `StoreThread`, awaited by the loop).
final class Schedule: @unchecked Sendable {
    enum State {
        case waiting
        /// In `ready`, and in line.
        case ready
        case running
        case done
        /// Held back until a person approves it (`ApprovalBook`): holds nothing meanwhile.
        case awaitingApproval
    }

    let plan: SwarmPlan
    let policy: any AdmissionPolicy
    let swarm: Node
    let holder: Holder
    private let emit: (String, String?, [String: JSONValue]) -> Void
    var states: [String: State] = [:]
    var attempts: [String: Int] = [:]
    var outputs: [String: JSONValue] = [:]
    /// Each started routine's input, templates filled (the cache's key).
    var inputs: [String: JSONValue] = [:]
    var outcomes: [String: RoutineOutcome] = [:]
    /// Runs that ended but whose settle the store did not take, with what each used.
    var unsettled: [String: (node: Node, report: RunReport)] = [:]
    /// Why the store could not be used: nothing more starts once it is set.
    var storeFailure: String?
    var running = 0
    /// Runs in flight, so that a preemption can cancel one, and what each holds.
    var tasks: [String: Task<SwarmRunner.Finished, Never>] = [:]
    var holds: [String: Int64] = [:]
    /// Routines being preempted, and the flags that make their runs end `preempted`.
    var preempting: Set<String> = []
    var preemptFlags: [String: PreemptionFlag] = [:]
    /// Shares granted under `proportional`, taken at the next reservation.
    var shares: [String: Int64] = [:]
    /// Whether a wake-up is pending, to look at waiting routines' timeouts and aging.
    var ticking = false
    /// Trusted plugins' workers kept between runs, until the swarm ends; no more idle ones
    /// than the swarm runs at once, routines and one level of steps.
    let workers: WorkerPool
    /// Routines that wait for a person's approval before they may be ready.
    var approvals = ApprovalBook()

    /// Ready routines as the policy sees them, since when they wait for budget (nil: not
    /// yet), and which time they became ready (an entry in `line` of an earlier time is stale).
    private var ready: [String: (candidate: AdmissionCandidate, queuedAt: Int64?, generation: Int)] = [:]
    private var line = ReadyLine()
    private var generation = 0
    /// Ready routines that wait for budget (`queuedAt` set): the only ones a queue timeout
    /// can end, so that looking for expired waits costs nothing while nobody waits.
    private var queued: Set<String> = []

    init(plan: SwarmPlan, swarm: Node, holder: Holder, emit: @escaping (String, String?, [String: JSONValue]) -> Void) {
        self.plan = plan
        policy = plan.job.swarm.onConflict.admission(agingMs: plan.job.swarm.agingMs)
        self.swarm = swarm
        self.holder = holder
        self.emit = emit
        workers = WorkerPool(capacity: 2 * plan.job.swarm.concurrency)
        let now = unixMilliseconds()
        for routine in plan.job.routines {
            if routine.after.isEmpty { makeReady(routine.name, now: now) } else { states[routine.name] = .waiting }
        }
    }

    var hasReady: Bool { !ready.isEmpty }

    func attempt(_ name: String) -> Int { attempts[name, default: 0] }

    /// The first ready routine in the order the policy serves them.
    func firstReady() -> String? {
        line.first { [ready] name, generation in ready[name]?.generation == generation }
    }

    /// The first `count` ready routines, in order, as the policy sees them.
    func firstReady(_ count: Int) -> [AdmissionCandidate] {
        line.prefix(count) { [ready] name, generation in ready[name]?.generation == generation }.compactMap { ready[$0]?.candidate }
    }

    func candidate(_ name: String) -> AdmissionCandidate? { ready[name]?.candidate }

    private func makeReady(_ name: String, now: Int64) {
        if approvals.mustAsk(name, tools: plan.approvalTools(plan.routines[name]!)) {
            states[name] = .awaitingApproval
            return
        }
        generation += 1
        let routine = plan.routines[name]!
        let candidate = AdmissionCandidate(
            name: name, priority: routine.priority, minimum: routine.minimum?.micros, readyMs: now, arrival: generation,
            position: plan.positions[name] ?? 0)
        states[name] = .ready
        ready[name] = (candidate, nil, generation)
        queued.remove(name)
        line.insert(name, rank: policy.rank(candidate), generation: generation)
    }

    private func leaveReady(_ name: String) {
        ready[name] = nil
        queued.remove(name)
    }

    func markRunning(_ name: String) {
        states[name] = .running
        leaveReady(name)
        attempts[name, default: 0] += 1
        running += 1
    }

    /// Returns true the first time a routine starts waiting for budget.
    func markQueued(_ name: String) -> Bool {
        guard let entry = ready[name], entry.queuedAt == nil else { return false }
        ready[name] = (entry.candidate, unixMilliseconds(), entry.generation)
        queued.insert(name)
        return true
    }

    /// A person approved the routine: it joins the line, and is not asked about again.
    func approved(_ name: String) {
        approvals.approved(name)
        makeReady(name, now: unixMilliseconds())
    }

    func retry(_ name: String) {
        makeReady(name, now: unixMilliseconds())
    }

    func expireWaits(_ timeoutMs: Int64) {
        let now = unixMilliseconds()
        for name in queued {
            guard let queuedAt = ready[name]?.queuedAt, now - queuedAt > timeoutMs else { continue }
            conclude(name, RoutineOutcome(
                name: name, verdict: .denied, attempts: attempt(name), message: "waited \(timeoutMs) ms for budget (queueTimeout)"))
        }
    }

    func denyAllReady(_ message: String) {
        concludeAllReady(RoutineOutcome(name: "", verdict: .denied, attempts: 0, message: message))
    }

    /// Ends every ready routine with `outcome` (its name and attempts filled in).
    func concludeAllReady(_ outcome: RoutineOutcome) {
        for name in ready.keys {
            var mine = outcome
            mine.name = name
            mine.attempts = attempt(name)
            conclude(name, mine)
        }
    }

    /// Records the routine's end; its dependents become ready, or are skipped if it failed.
    func conclude(_ name: String, _ outcome: RoutineOutcome) {
        states[name] = .done
        leaveReady(name)
        approvals.forget(name)
        outcomes[name] = outcome
        if outcome.verdict == .ok {
            outputs[name] = outcome.output ?? .null
        } else {
            emit(outcome.verdict == .denied ? "deny" : "fail", name, ["message": .string(outcome.message ?? "")])
        }
        for dependent in plan.dependents[name] ?? [] {
            guard case .waiting = states[dependent], let routine = plan.routines[dependent] else { continue }
            if outcome.verdict != .ok {
                emit("skip", dependent, ["because": .string(name)])
                conclude(dependent, RoutineOutcome(name: dependent, verdict: .skipped, attempts: 0, message: "\(name) did not succeed"))
            } else if routine.after.allSatisfy({ outcomes[$0]?.verdict == .ok }) {
                makeReady(dependent, now: unixMilliseconds())
            }
        }
    }
}
