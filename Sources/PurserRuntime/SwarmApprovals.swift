import PurserConfig
import PurserLedger
import PurserProtocol
import PurserSandbox

/// The routines of a swarm that wait for a person (`approval` in the job or the plugin's
/// manifest). A waiting routine is not in the line: it reserves nothing and takes no worker
/// seat until it is approved. The requests live in the ledger, so that `purser approve`
/// decides from another process; the scheduling loop reads them at each tick.
struct ApprovalBook {
    /// The swarm's run id, under which its requests are filed.
    var run = ""
    /// Routines to file a request for, at the next hop to the store.
    private(set) var unfiled: [String] = []
    /// Filed requests, by routine.
    var pending: [String: Approval] = [:]
    /// Approved routines: a retry or a preemption does not ask again.
    private var granted: Set<String> = []

    var isWaiting: Bool { !unfiled.isEmpty || !pending.isEmpty }

    /// Whether the routine must wait for a person first; if so it is noted to be filed.
    mutating func mustAsk(_ name: String, tools: [String]) -> Bool {
        guard !tools.isEmpty, !granted.contains(name) else { return false }
        if pending[name] == nil, !unfiled.contains(name) { unfiled.append(name) }
        return true
    }

    mutating func approved(_ name: String) {
        granted.insert(name)
        pending[name] = nil
    }

    mutating func forget(_ name: String) {
        unfiled.removeAll { $0 == name }
        pending[name] = nil
    }

    mutating func takeUnfiled() -> [String] {
        defer { unfiled = [] }
        return unfiled
    }
}

extension SwarmPlan {
    /// The routine's tools that need a person's approval: those the job's swarm or its
    /// plugin's manifest names ("*" there: every tool).
    func approvalTools(_ routine: JobFile.Routine) -> [String] {
        var gated = Set(job.swarm.approval)
        if case .registered(let call) = plugins[routine.name] { gated.formUnion(call.manifest.approval) }
        if gated.contains("*") { return Set(routine.tools).sorted() }
        return Set(routine.tools).intersection(gated).sorted()
    }

}

extension SwarmRunner {
    /// Files the requests of routines that began to wait, and takes in decisions: an
    /// approved routine joins the line, a denied or timed-out one is denied. True when a
    /// routine joined the line. Runs on the store's threads.
    func tendApprovals(_ schedule: Schedule, store: any LedgerStore) -> Bool {
        if schedule.storeFailure != nil {
            endApprovals(schedule, store: store, notStarted())
            return false
        }
        file(schedule, store: store)
        guard !schedule.approvals.pending.isEmpty,
            let current = logged("reading approvals", { () throws(LedgerError) in try store.approvals(run: schedule.approvals.run) })
        else { return false }
        var joined = false
        for var approval in current where schedule.approvals.pending[approval.routine]?.id == approval.id {
            if approval.state == .pending {
                guard unixMilliseconds() >= approval.expiresMs else { continue }
                let reason = "approval timed out after \(Units.formatDuration(job.swarm.approvalTimeoutMs))"
                // Nil: decided meanwhile; the next tick reads the decision.
                guard let ended = logged("ending an approval", { () throws(LedgerError) in
                    try store.expireApproval(id: approval.id, reason: reason)
                }) ?? nil else { continue }
                approval = ended
            }
            emit("approval", approval.routine, approval.decisionFields)
            if approval.isApproved {
                schedule.approved(approval.routine)
                joined = true
            } else {
                schedule.conclude(approval.routine, RoutineOutcome(
                    name: approval.routine, verdict: .denied, attempts: schedule.attempt(approval.routine),
                    message: approval.denial))
            }
        }
        return joined
    }

    private func file(_ schedule: Schedule, store: any LedgerStore) {
        for name in schedule.approvals.takeUnfiled() {
            let tools = plan.approvalTools(plan.routines[name]!)
            let request = ApprovalRequest(
                swarm: schedule.swarm.id, run: schedule.approvals.run, routine: name, tools: tools,
                timeoutMs: job.swarm.approvalTimeoutMs)
            do throws(LedgerError) {
                let approval = try store.requestApproval(request)
                schedule.approvals.pending[name] = approval
                emit("await_approval", name, approval.awaitFields)
            } catch where error.code == .storeFailed {
                if schedule.storeFailure == nil { schedule.storeFailure = error.message }
                schedule.conclude(name, Self.named(notStarted(), name))
            } catch {
                schedule.conclude(name, RoutineOutcome(
                    name: name, verdict: .error, attempts: schedule.attempt(name), message: "requesting approval: \(error)"))
            }
        }
    }

    /// Ends every routine still waiting for a person with `outcome`, and withdraws its
    /// request so that nobody is asked to decide what no longer runs.
    func endApprovals(_ schedule: Schedule, store: any LedgerStore, _ outcome: RoutineOutcome) {
        for name in schedule.approvals.takeUnfiled() { schedule.conclude(name, Self.named(outcome, name)) }
        for (name, approval) in schedule.approvals.pending.sorted(by: { $0.key < $1.key }) {
            _ = logged("withdrawing an approval", routine: name) { () throws(LedgerError) in
                try store.withdrawApproval(id: approval.id, reason: outcome.message ?? "the swarm stopped")
            }
            schedule.conclude(name, Self.named(outcome, name))
        }
    }

    private static func named(_ outcome: RoutineOutcome, _ name: String) -> RoutineOutcome {
        var mine = outcome
        mine.name = name
        return mine
    }
}
