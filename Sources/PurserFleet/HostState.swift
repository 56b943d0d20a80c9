import PurserLedger
import PurserRuntime
import Synchronization

/// What one host knows while it serves: its place in the fleet, its runs, the swarms it
/// has read. Everything here can be rebuilt from the store; losing it loses nothing.
struct HostState: ~Copyable {
    var lease: HostLease
    /// The ledger lease that holds its routines' holds.
    var holder: Holder
    /// It could not heartbeat for too long, or was found lost: it claims nothing, and
    /// its runs were stopped.
    var fenced = false
    var draining = false
    /// When it last renewed its row (monotonic milliseconds).
    var lastBeatMs: Int64
    var runs: [Int64: (claim: Claim, task: Task<Void, Never>)] = [:]
    /// Where the heartbeat sees each run's worker (its pid and memory peak), by claim.
    var probes: [Int64: WorkerProbe] = [:]
    /// The heartbeat's record of the running workers is under way (one at a time).
    var recordingWorkers = false
    /// Claims whose runs a drain cancelled: they go back in line, not to a verdict.
    var requeue: Set<Int64> = []
    /// Claims whose runs were told to stop, and why: a preemption's end `preempted`, a
    /// frozen team's `cancelled`; both go back in line without using a retry.
    var stopped: [Int64: String] = [:]
    var swarms: [String: (swarm: FleetSwarm, node: NodeID)] = [:]
    /// Swarms being read for their first routines here: the others wait for the same read.
    var reading: [String: Task<(swarm: FleetSwarm, node: NodeID)?, Never>] = [:]
    /// Swarms read for admission that wait for their team: read once.
    var pending: [String: FleetSwarm] = [:]
    /// When it last looked for swarms to admit, and whether it should look again at once.
    var lastAdmitMs: Int64 = 0
    /// The registered plugins it cannot run, and why (`PluginCheck`), sent with each heartbeat.
    var pluginNote = ""
    var admitSoon = true
}

/// Milliseconds on a clock that only goes forward.
func monotonicMs() -> Int64 {
    let elapsed = ContinuousClock.now - HostClock.origin
    return elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
}

enum HostClock {
    static let origin = ContinuousClock.now
}
