/// The fleet's queue: swarms submitted to a store, their routines claimed by hosts
/// (`purser serve`), each attempt fenced by the host's epoch, the work of lost hosts put
/// back in line. The store is the only state the hosts share. `FleetStoreConformanceTests`
/// runs against every driver.
public protocol QueueStore: Sendable {
    /// Puts a swarm and its routines in the queue, waiting for admission.
    func submit(_ swarm: SubmittedSwarm) throws(LedgerError)
    func swarm(id: String) throws(LedgerError) -> QueuedSwarm?
    /// The latest swarms, newest first.
    func swarms(limit: Int) throws(LedgerError) -> [QueuedSwarm]
    func routines(swarm: String) throws(LedgerError) -> [QueuedRoutine]

    /// The first queued swarm of a team that has none being admitted, in the order of the
    /// team's policy (`TeamPolicy`), taken for admission by `host`: no other host sees it
    /// until it is `admitted` or `notAdmitted`, or `host` is lost. Teams in `skipping`
    /// are passed over (their first swarm waits this pass, and nobody overtakes it).
    /// Swarms in `passing` are passed over alone: the team's others may go.
    func nextToAdmit(host: HostLease, skipping: [String], passing: [String]) throws(LedgerError) -> QueuedSwarm?
    /// How a team's swarms compete for its budget (default: `queue`).
    func setTeamPolicy(_ policy: TeamPolicy) throws(LedgerError)
    func teamPolicy(team: String) throws(LedgerError) -> TeamPolicy
    /// The swarm's hold was granted: its routines with nothing to wait for become ready.
    func admitted(swarm id: String, node: NodeID, holder: Holder) throws(LedgerError)
    /// The team could not grant it: back in line (`queue`), or ended with `verdict`.
    func notAdmitted(swarm id: String, verdict: String?, message: String) throws(LedgerError)

    /// Up to `limit` ready routines of admitted swarms, in priority order, whose holds'
    /// memory together fit in `memoryBytes`, now running on `host` as their next attempt.
    /// Rows another host is claiming are skipped, not waited for.
    func claim(host: HostLease, limit: Int, memoryBytes: Int64) throws(LedgerError) -> [Claim]
    /// A claimed routine that did not start (its hold did not fit): back in line, the
    /// attempt not counted. False when the claim is no longer this host's.
    func unclaim(_ claim: Claim, message: String) throws(LedgerError) -> Bool
    /// The attempt's end. Its dependents become ready, or are skipped if it failed for
    /// good; with `retry`, it goes back in line instead. Fenced when the claim is no
    /// longer this host's (it was lost and rescued): nothing changes.
    func finish(_ claim: Claim, _ end: RoutineEnd) throws(LedgerError)
    /// The outputs of these routines of a swarm that ended ok, by name (JSON text), for templates.
    func outputs(swarm id: String, of names: [String]) throws(LedgerError) -> [String: String]
    /// The last run reports (JSON text, with the worker's stderr tail) of these routines of
    /// a swarm, by name, for those that ran (the dashboard's verdicts).
    func routineReports(swarm id: String, of names: [String]) throws(LedgerError) -> [String: String]
    /// The leases of the swarms that hold budget (admitted, not yet done), for their renewal.
    func swarmHolders() throws(LedgerError) -> [Holder]
    /// A swarm's state alone (not its job's text).
    func swarmState(id: String) throws(LedgerError) -> String?
    /// Every attempt of a swarm's routines, oldest first.
    func attempts(swarm id: String) throws(LedgerError) -> [Attempt]

    /// Admitted swarms whose routines have all ended, taken for completion by `host`.
    func nextToComplete(host: HostLease) throws(LedgerError) -> QueuedSwarm?
    func complete(swarm id: String, verdict: String, report: String) throws(LedgerError)
    /// A completion that failed: the swarm goes back to be completed by a later pass.
    func notCompleted(swarm id: String) throws(LedgerError)
    /// Withdraws what waits (ended `cancelled`) and marks the swarm so that hosts stop what
    /// runs. False when the swarm is unknown or ended already.
    func cancel(swarm id: String) throws(LedgerError) -> Bool
    /// This host's running routines whose swarm is being cancelled, or that are told to stop
    /// and go back in line: `stopFor` says why (`preempt`, `freeze`).
    func cancelled(host: HostLease) throws(LedgerError) -> [(claim: Claim, stopFor: String?)]
    /// Tells the hosts to stop every running routine of the team's swarms; they go back in
    /// line (a frozen team's `--cancel-running`). How many were told.
    func stopRunning(team: String) throws(LedgerError) -> Int
    /// How many of the routine's attempts were stopped (`preempted`, `frozen`): they do not
    /// count against its retries.
    func stoppedAttempts(swarm: String, routine: String) throws(LedgerError) -> Int

    /// A team's swarms that wait for budget or hold it (queued, admitting, running), and
    /// how many of their routines a preemption is stopping.
    func teamSwarms(team: String) throws(LedgerError) -> (swarms: [QueuedSwarm], stopping: Int)
    /// The swarm gave back `credits` (µ) of its hold, or will when `routines` (its running
    /// routines, told to stop) have ended: it claims nothing until it grows back.
    func pause(swarm id: String, gave credits: Int64, routines: [String]) throws(LedgerError)
    /// A paused swarm taken by `nextToAdmit` is let go: resumed (its hold grew back), or
    /// still paused with `message`.
    func released(swarm id: String, resumed: Bool, message: String) throws(LedgerError)

    /// Routines that hold a tool marked `approval` wait in `awaiting_approval`, holding
    /// nothing: files the requests (in the ledger's `approvals`, audited) of those that began
    /// to wait, and takes in decisions and timeouts (`timeoutReason` of the approval's
    /// timeout says why it timed out): approved, a routine is ready for any host; otherwise
    /// it ends `denied` and its dependents are skipped. At most `limit` routines; each is
    /// taken by one host, and nothing changes unless `host` is live at its epoch.
    func tendApprovals(host: HostLease, limit: Int, timeoutReason: (Int64) -> String) throws(LedgerError) -> ApprovalTurn

    /// Appends events, in their order, in one transaction.
    func appendEvents(_ events: [FleetEvent]) throws(LedgerError)
    /// A swarm's events after `after` (an event's `id`), oldest first.
    func events(swarm id: String, after: Int64, limit: Int) throws(LedgerError) -> [FleetEvent]

    /// Hosts whose heartbeat is older than `deadAfterMs` are lost: their running attempts
    /// end `host_lost` and their routines go back in line (attempt + 1 at the next claim),
    /// swarms they were admitting go back to the queue. Returns the attempts rescued.
    func rescue(deadAfterMs: Int64) throws(LedgerError) -> [Attempt]
}

/// Hosts of the fleet: who is alive, and who leads the rescue.
public protocol HostStore: Sendable {
    /// Joins (or rejoins) the fleet: a new epoch, so that what the host held before is fenced.
    func join(host name: String, slots: Int, version: String) throws(LedgerError) -> HostLease
    /// Renews the host's row. Fenced when it was found lost (its work was rescued).
    func heartbeat(_ lease: HostLease, running: Int, note: String) throws(LedgerError)
    /// Records its running workers' pids and memory peaks on their routines' rows; a
    /// claim no longer this host's (rescued, or ended) is left as it is.
    func recordWorkers(_ workers: [RunningWorker]) throws(LedgerError)
    /// Leaves the fleet cleanly (a drain ended).
    func leave(_ lease: HostLease) throws(LedgerError)
    func hosts() throws(LedgerError) -> [HostRow]
    /// Takes or keeps the leader's row for `ttlMs`; true when `host` leads.
    func lead(host name: String, ttlMs: Int64) throws(LedgerError) -> Bool
}

public typealias FleetStore = QueueStore & HostStore & QueueGaugeStore

/// A host's place in the fleet: its name and the epoch that fences its claims.
public struct HostLease: Sendable, Hashable {
    public var name: String
    public var epoch: Int64
    public init(name: String, epoch: Int64) {
        self.name = name
        self.epoch = epoch
    }
}

public struct SubmittedSwarm: Sendable, Hashable {
    public var id: String
    public var team: String
    public var name: String
    public var priority: Int64
    /// How many of its routines may run at once, across the fleet.
    public var concurrency: Int
    /// The job file's text and its name, as submitted: every host reads it the same way.
    public var file: String
    public var source: String
    /// Each routine, in the file's order.
    public var routines: [SubmittedRoutine]

    public init(
        id: String, team: String, name: String, priority: Int64, concurrency: Int, file: String, source: String,
        routines: [SubmittedRoutine]
    ) {
        self.concurrency = concurrency
        self.id = id
        self.team = team
        self.name = name
        self.priority = priority
        self.file = file
        self.source = source
        self.routines = routines
    }
}

extension QueueStore {
    public func nextToAdmit(host: HostLease, skipping: [String]) throws(LedgerError) -> QueuedSwarm? {
        try nextToAdmit(host: host, skipping: skipping, passing: [])
    }
}

/// A routine as the queue keeps it: its name, priority, the routines it runs after, and
/// the memory its hold will take (a host claims only what fits in what it offers).
public struct SubmittedRoutine: Sendable, Hashable {
    public var name: String
    public var priority: Int64
    public var after: [String]
    public var memoryBytes: Int64
    /// Its tools that need a person's approval before it runs, and how long it waits for one.
    public var approvalTools: [String]
    public var approvalTimeoutMs: Int64

    public init(
        name: String, priority: Int64 = 0, after: [String] = [], memoryBytes: Int64 = 0, approvalTools: [String] = [],
        approvalTimeoutMs: Int64 = 0
    ) {
        self.name = name
        self.priority = priority
        self.after = after
        self.memoryBytes = memoryBytes
        self.approvalTools = approvalTools
        self.approvalTimeoutMs = approvalTimeoutMs
    }
}

public struct QueuedSwarm: Sendable, Hashable {
    public var id: String
    public var team: String
    public var name: String
    public var priority: Int64
    public var file: String
    public var source: String
    /// queued, admitting, running, cancelling, done.
    public var state: String
    /// ok, failed, denied, cancelled once done.
    public var verdict: String?
    public var message: String?
    public var node: NodeID?
    public var holder: Holder?
    public var submittedMs: Int64
    public var endedMs: Int64?
    public var report: String?
    /// Preempted: it claims nothing until its hold has grown back by `gave` credits.
    public var paused: Bool = false
    /// Credits (µ) its hold gave back to higher swarms since it was paused.
    public var gave: Int64 = 0
}

public struct QueuedRoutine: Sendable, Hashable {
    public var swarm: String
    public var name: String
    /// waiting, awaiting_approval, ready, running, done.
    public var state: String
    public var attempt: Int
    public var host: String?
    public var verdict: String?
    public var message: String?
    public var node: NodeID?
    /// The id of its request for approval, once filed.
    public var approval: String? = nil
    /// While it runs: its worker's pid on its host (that host's view, not this machine's),
    /// and the memory peak of its run so far, as the host last said at its heartbeat. Nil
    /// until then, and again at each new attempt.
    public var hostPid: Int32? = nil
    public var memoryPeakBytes: Int64? = nil
}

/// What a host says of one of its running workers at its heartbeat.
public struct RunningWorker: Sendable, Hashable {
    public var claim: Claim
    /// The worker's pid on that host.
    public var pid: Int32
    /// The run's memory peak so far (its memory cgroup's, else the worker's own high-water mark).
    public var memoryPeakBytes: Int64
    public init(claim: Claim, pid: Int32, memoryPeakBytes: Int64) {
        self.claim = claim
        self.pid = pid
        self.memoryPeakBytes = memoryPeakBytes
    }
}

/// A routine claimed by a host for one attempt.
public struct Claim: Sendable, Hashable {
    public var id: Int64
    public var swarm: String
    public var routine: String
    public var attempt: Int
    public var host: HostLease
    /// The memory its hold will take.
    public var memoryBytes: Int64
    /// When it became ready (the store's clock, ms since the epoch): its wait for a slot began.
    public var readyMs: Int64
    public init(id: Int64, swarm: String, routine: String, attempt: Int, host: HostLease, memoryBytes: Int64 = 0, readyMs: Int64 = 0) {
        self.id = id
        self.swarm = swarm
        self.routine = routine
        self.attempt = attempt
        self.host = host
        self.memoryBytes = memoryBytes
        self.readyMs = readyMs
    }
}

public struct RoutineEnd: Sendable, Hashable {
    public var verdict: String
    public var message: String?
    /// The output as JSON text, when it ended ok.
    public var output: String?
    public var node: NodeID?
    /// The run's report as JSON text.
    public var report: String?
    public var retry: Bool
    public init(verdict: String, message: String? = nil, output: String? = nil, node: NodeID? = nil, report: String? = nil, retry: Bool = false) {
        self.verdict = verdict
        self.message = message
        self.output = output
        self.node = node
        self.report = report
        self.retry = retry
    }
}

public struct Attempt: Sendable, Hashable {
    public var swarm: String
    public var routine: String
    public var attempt: Int
    public var host: String
    public var startedMs: Int64
    public var endedMs: Int64?
    public var verdict: String?
}

public struct FleetEvent: Sendable, Hashable {
    public var id: Int64
    public var swarm: String
    public var atMs: Int64
    public var kind: String
    public var routine: String?
    /// The event's other fields, as a JSON object's text.
    public var fields: String
    public init(id: Int64 = 0, swarm: String, atMs: Int64, kind: String, routine: String?, fields: String) {
        self.id = id
        self.swarm = swarm
        self.atMs = atMs
        self.kind = kind
        self.routine = routine
        self.fields = fields
    }
}

public struct HostRow: Sendable, Hashable {
    public var name: String
    public var epoch: Int64
    public var slots: Int
    public var running: Int
    public var version: String
    /// live, lost or left.
    public var state: String
    public var heartbeatMs: Int64
    public var startedMs: Int64
    /// What the host says of itself: plugins it cannot run, and why.
    public var note: String
}

/// How a team's swarms compete for its budget when one does not fit.
public struct TeamPolicy: Sendable, Hashable {
    public enum OnConflict: String, Sendable, CaseIterable {
        /// First come, first served: a swarm that does not fit waits, and nobody overtakes it.
        case queue
        /// A swarm that does not fit is denied at once.
        case fail
        /// By priority, plus one for every `agingMs` waited, so that a stream of higher
        /// ones cannot starve a lower one.
        case priority
        /// First come; when the first waiting swarms ask for more than the team has left,
        /// each gets the credits left × its request ÷ all their requests, if that is at
        /// least its `minimum`.
        case proportional
        /// As `priority`; a swarm that does not fit takes back credits from swarms of lower
        /// rank: first what they hold unused, then the fewest of their running routines,
        /// which end `preempted` and go back in line. Those swarms pause until their holds
        /// grow back.
        case preempt
    }

    public var team: String
    public var onConflict: OnConflict
    public var agingMs: Int64
    /// Whether an untrusted plugin's worker whose manifest asks for it (`reuseUntrusted`)
    /// may be kept for later runs of the same swarm or `mcp serve` session: off unless the
    /// team's creator says so, since a kept worker carries one run's state into the next.
    public var reuseUntrusted: Bool

    public init(team: String, onConflict: OnConflict = .queue, agingMs: Int64 = 60_000, reuseUntrusted: Bool = false) {
        self.team = team
        self.onConflict = onConflict
        self.agingMs = agingMs
        self.reuseUntrusted = reuseUntrusted
    }
}
