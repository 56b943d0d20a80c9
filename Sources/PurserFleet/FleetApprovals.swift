import PurserConfig
import PurserLedger
import PurserProtocol
import PurserRuntime

/// The fleet's routines that wait for a person (`approval` in the job or the plugin's
/// manifest): at each full look a host files the requests of those that began to wait, and
/// takes in decisions and timeouts (`QueueStore.tendApprovals`). What each step says goes to
/// the swarm's events, as `purser run` says it: `await_approval`, `approval`, and `deny`
/// for a routine that will not run.
struct FleetApprovals {
    let host: FleetHost
    /// At most this many gated routines a look; the rest wait for the next.
    static let batch = 100

    func tend(_ lease: HostLease) async {
        let fleet = host.fleet
        let turn: ApprovalTurn
        do throws(LedgerError) {
            turn = try await StoreThreads.shared.run { () throws(LedgerError) in
                try fleet.tendApprovals(host: lease, limit: Self.batch) { "approval timed out after \(Units.formatDuration($0))" }
            }
        } catch {
            host.logger.warning("tending approvals failed", metadata: ["error": "\(error)"])
            return
        }
        for approval in turn.filed {
            host.events.add(approval.run, "await_approval", approval.routine, approval.awaitFields)
        }
        for approval in turn.decided {
            host.events.add(approval.run, "approval", approval.routine, approval.decisionFields)
            if !approval.isApproved { host.events.add(approval.run, "deny", approval.routine, ["message": .string(approval.denial)]) }
        }
        // An approved routine is ready: a claim now, not at the next poll.
        if turn.decided.contains(where: \.isApproved) { host.wakeup.signal() }
    }
}
