import Logging
public import PurserLedger
public import PurserProtocol
public import PurserRuntime
import Synchronization

/// `purser serve`: one host of the fleet. It joins the hosts table, then runs three small
/// services until it is drained: the heartbeat (`HostHeartbeat`, which also fences the host
/// when it cannot renew), the rescuer (`Rescuer`, which acts only while this host leads),
/// and the work loop here, which admits swarms, claims routines for its free slots, runs
/// them (`ClaimRun`) and completes swarms whose routines have all ended.
public final class FleetHost: Sendable {
    let settings: HostSettings
    let runtime: Runtime
    let fleet: any FleetStore
    let ledger: any LedgerStore
    let logger: Logger
    let events: EventLog
    let wakeup = Wakeup()
    /// Whether PostgreSQL's wake-ups reach the host (`HostListener`): it polls slowly then.
    let listening = Atomic<Bool>(false)
    /// The heartbeat's own thread: renewals must not queue behind the runs' store work.
    let heartbeatThread = StoreThreads(count: 1)
    let state: Mutex<HostState>
    /// When the looks that need not follow every run's end last ran (`pass`).
    private let lastLook = Mutex<ContinuousClock.Instant?>(nil)

    /// Joins the fleet: a new epoch in the hosts table, and a new ledger lease for the holds
    /// of its routines (what an earlier life of this host held is reclaimed with it).
    public init(settings: HostSettings, runtime: Runtime, fleet: any FleetStore) async throws(RuntimeError) {
        guard let ledger = runtime.ledger?.store else { throw RuntimeError(code: .ledger, message: "a host needs a ledger") }
        self.settings = settings
        self.runtime = runtime
        self.fleet = fleet
        self.ledger = ledger
        var logger = Logger(label: "purser.serve")
        logger[metadataKey: "host"] = "\(settings.name)"
        self.logger = logger
        events = EventLog(store: fleet, logger: logger)
        let joined = try await Self.join(settings, fleet: fleet, ledger: ledger)
        state = Mutex(HostState(lease: joined.lease, holder: joined.holder, lastBeatMs: monotonicMs()))
        logger.info("joined the fleet", metadata: ["epoch": "\(joined.lease.epoch)", "slots": "\(settings.slots)"])
    }

    static func join(
        _ settings: HostSettings, fleet: any FleetStore, ledger: any LedgerStore
    ) async throws(RuntimeError) -> (lease: HostLease, holder: Holder) {
        do throws(LedgerError) {
            return try await StoreThreads.shared.run { () throws(LedgerError) in
                let lease = try fleet.join(host: settings.name, slots: settings.slots, version: purserVersion)
                let holder = try ledger.acquireLease(holder: settings.ledgerHolder, ttlMs: settings.deadAfterMs)
                return (lease, holder)
            }
        } catch {
            throw RuntimeError(error, context: "joining the fleet")
        }
    }

    public var lease: HostLease { state.withLock { $0.lease } }

    /// Serves until `drain` has finished: the work loop here, the heartbeat and the rescuer
    /// beside it.
    public func serve() async {
        let heartbeat = Task { await HostHeartbeat(host: self).run() }
        let rescuer = Task { await Rescuer(host: self).run() }
        let plugins = Task { await PluginCheck(host: self).run() }
        let listener = Task { await HostListener(host: self).run() }
        while !drained {
            await pass()
            await wakeup.wait(ms: pollMs)
            // Runs end in bursts: a moment's wait lets one claim fill the slots of several.
            if state.withLock({ !$0.runs.isEmpty }) { try? await Task.sleep(for: .milliseconds(1)) }
        }
        heartbeat.cancel()
        rescuer.cancel()
        plugins.cancel()
        listener.cancel()
        for id in state.withLock({ Array($0.swarms.keys) }) { await forget(id) }
        await events.drain()
        await leave()
    }

    /// Stops claiming; what runs finishes, or after the drain timeout is cancelled and
    /// goes back in line. `serve` then returns.
    public func drain() {
        let started = state.withLock { state -> Bool in
            defer { state.draining = true }
            return !state.draining
        }
        guard started else { return }
        logger.info("draining", metadata: ["running": "\(state.withLock { $0.runs.count })"])
        Task {
            try? await Task.sleep(for: .milliseconds(settings.drainTimeoutMs))
            let late = state.withLock { state in
                state.requeue.formUnion(state.runs.keys)
                return state.runs.values.map(\.task)
            }
            if !late.isEmpty { logger.warning("drain timeout: cancelling runs, to be requeued", metadata: ["runs": "\(late.count)"]) }
            for task in late { task.cancel() }
        }
        wakeup.signal()
    }

    private var drained: Bool { state.withLock { $0.draining && $0.runs.isEmpty } }

    /// One look at the queue: routines to claim, swarms to complete, and at most once a
    /// poll interval runs to stop, routines waiting for approval and swarms to admit. A
    /// run's end wakes the host to fill its slot; what else changes with it is only whether
    /// a swarm has ended, and that only once nothing is left to claim.
    func pass() async {
        let (fenced, draining, lease) = state.withLock { ($0.fenced, $0.draining, $0.lease) }
        guard !fenced else { return }
        let due = lookDue()
        if due {
            await stopCancelled(lease)
            await forgetEnded()
            await FleetApprovals(host: self).tend(lease)
            if !draining { await SwarmGate(host: self).admitWaiting(lease) }
        }
        let more = draining ? false : await claim(lease)
        if due || !more { await SwarmGate(host: self).completeEnded(lease) }
    }

    /// How long the host waits when nothing wakes it: long while wake-ups reach it.
    private var pollMs: Int64 { listening.load(ordering: .relaxed) ? settings.idlePollMs : settings.pollMs }

    /// The listener came up or went down; down, the host polls fast from now, not after
    /// the slow wait it is in.
    func listen(_ live: Bool) {
        listening.store(live, ordering: .relaxed)
        if !live { wakeup.signal() }
    }

    /// A wake-up from another host or a submit: new ready routines, which the next pass
    /// claims; or, with `look`, more (a cancel, a swarm to admit), for a full look now.
    func heard(look: Bool) {
        if look {
            lastLook.withLock { $0 = nil }
            state.withLock { $0.admitSoon = true }
        }
        wakeup.signal()
    }

    /// Whether a poll interval has passed since the last full look (and if so, this is one).
    private func lookDue() -> Bool {
        let now = ContinuousClock.now
        return lastLook.withLock { last in
            if let last, now - last < .milliseconds(pollMs) { return false }
            last = now
            return true
        }
    }

    /// Claims for its free slots what fits in the memory it has left; nothing while the
    /// host's memory is under pressure. True when it got all it asked for: more may be
    /// ready, so the look for ended swarms can wait for the next full look.
    private func claim(_ lease: HostLease) async -> Bool {
        let (free, memory) = state.withLock { state in
            (settings.slots - state.runs.count, settings.memoryBytes - state.runs.values.reduce(0) { $0 + $1.claim.memoryBytes })
        }
        // No free slot: a wake-up the last pass served already; nothing to conclude.
        guard free > 0 else { return true }
        guard memory > 0, !underPressure() else { return false }
        let claims: [Claim]
        do throws(LedgerError) {
            claims = try await StoreThreads.shared.run { () throws(LedgerError) in
                try self.fleet.claim(host: lease, limit: free, memoryBytes: memory)
            }
        } catch {
            logger.warning("claiming failed", metadata: ["error": "\(error)"])
            return false
        }
        for claim in claims {
            state.withLock { state in
                let task = Task { await ClaimRun(host: self, claim: claim).run() }
                state.runs[claim.id] = (claim, task)
            }
        }
        return claims.count == free
    }

    private func underPressure() -> Bool {
        guard let pressure = HostMemory.pressure(), pressure > settings.pressureLimit else { return false }
        logger.notice("memory pressure: claiming nothing", metadata: ["someAvg10": "\(pressure)"])
        return true
    }

    /// Swarms this host has read and that run nothing here: their chunks go back to the swarm;
    /// and if they have ended (on any host), their kept workers end, and the host forgets them.
    private func forgetEnded() async {
        let idle = state.withLock { state in
            state.swarms.filter { id, _ in !state.runs.values.contains { $0.claim.swarm == id } }
        }
        let chunked = idle.values.map(\.swarm).filter { !$0.chunks.isEmpty }
        if !chunked.isEmpty {
            await StoreThreads.shared.run { for swarm in chunked { swarm.chunks.closeIdle(store: self.ledger) } }
        }
        for id in idle.keys {
            let swarmState: String?
            do throws(LedgerError) {
                swarmState = try await StoreThreads.shared.run { () throws(LedgerError) in try self.fleet.swarmState(id: id) }
            } catch {
                logger.warning("reading a swarm's state failed", metadata: ["swarm": "\(id)", "error": "\(error)"])
                continue
            }
            if swarmState == nil || swarmState == "done" { await forget(id) }
        }
    }

    /// Ends a swarm's kept workers on this host, returns its chunks, and forgets the swarm.
    func forget(_ id: String) async {
        let known = state.withLock { $0.swarms.removeValue(forKey: id) }
        guard let swarm = known?.swarm else { return }
        await StoreThreads.shared.run { swarm.chunks.closeIdle(store: self.ledger) }
        await swarm.retireWorkers()
    }

    /// This host reserves its routines of the swarm from chunks with a seat for each slot it
    /// gives the swarm; not for a team that preempts (`SwarmChunks.allow`).
    func allowChunks(_ swarm: FleetSwarm, policy: TeamPolicy) {
        guard policy.onConflict != .preempt else { return }
        swarm.chunks.allow(seats: min(settings.slots, swarm.job.swarm.concurrency))
    }

    /// Routines of swarms being cancelled, and routines told to stop (a preemption, a frozen
    /// team), that run here get their cancel.
    private func stopCancelled(_ lease: HostLease) async {
        guard let stops = try? await StoreThreads.shared.run({ () throws(LedgerError) in try self.fleet.cancelled(host: lease) }),
            !stops.isEmpty
        else { return }
        let tasks = state.withLock { state in
            stops.compactMap { stop -> Task<Void, Never>? in
                guard let run = state.runs[stop.claim.id] else { return nil }
                if let why = stop.stopFor { state.stopped[stop.claim.id] = why }
                return run.task
            }
        }
        for task in tasks { task.cancel() }
    }

    /// Stops every run now (the host is fenced): their workers get the cancel and the stop
    /// sequence, and are gone before anyone finds the host lost.
    func stopAllRuns(because reason: String) {
        let tasks = state.withLock { state -> [Task<Void, Never>] in
            guard !state.fenced else { return [] }
            state.fenced = true
            // Stopped by the host, not by what they did: they go back in line.
            state.requeue.formUnion(state.runs.keys)
            return state.runs.values.map(\.task)
        }
        logger.error("fenced: stopping every run", metadata: ["reason": "\(reason)", "runs": "\(tasks.count)"])
        for task in tasks { task.cancel() }
    }

    func ended(_ claim: Claim) {
        state.withLock { state in
            state.runs[claim.id] = nil
            state.probes[claim.id] = nil
            state.requeue.remove(claim.id)
            state.stopped[claim.id] = nil
        }
        wakeup.signal()
    }

    private func leave() async {
        let lease = state.withLock { $0.lease }
        do throws(LedgerError) {
            try await StoreThreads.shared.run { () throws(LedgerError) in try self.fleet.leave(lease) }
            logger.info("left the fleet")
        } catch {
            logger.warning("leaving the fleet failed: the host will be found lost", metadata: ["error": "\(error)"])
        }
    }

    /// The swarm as this host runs it, read once, however many of its routines start at
    /// once (reading a job of thousands of routines costs milliseconds); nil (and logged)
    /// when it cannot be read.
    func swarm(_ id: String) async -> (swarm: FleetSwarm, node: NodeID)? {
        let reading = state.withLock { state -> Task<(swarm: FleetSwarm, node: NodeID)?, Never>? in
            if state.swarms[id] != nil { return nil }
            if let reading = state.reading[id] { return reading }
            let reading = Task { await self.read(id) }
            state.reading[id] = reading
            return reading
        }
        guard let reading else { return state.withLock { $0.swarms[id] } }
        let read = await reading.value
        state.withLock { $0.reading[id] = nil }
        return read
    }

    private func read(_ id: String) async -> (swarm: FleetSwarm, node: NodeID)? {
        let row: QueuedSwarm?
        do throws(LedgerError) {
            row = try await StoreThreads.shared.run { () throws(LedgerError) in try self.fleet.swarm(id: id) }
        } catch {
            logger.warning("reading a swarm failed", metadata: ["swarm": "\(id)", "error": "\(error)"])
            return nil
        }
        guard let row, let node = row.node else { return nil }
        do throws(RuntimeError) {
            let swarm = try await StoreThreads.shared.run { () -> Result<FleetSwarm, RuntimeError> in
                Result { () throws(RuntimeError) in try FleetSwarm(id: id, file: row.file, source: row.source, runtime: self.runtime) }
            }.get()
            let policy = try? await StoreThreads.shared.run { () throws(LedgerError) in try self.fleet.teamPolicy(team: row.team) }
            // Unknown policy: no chunks (a preempting team's routines must be under its swarm).
            if let policy {
                allowChunks(swarm, policy: policy)
                swarm.follow(policy)
            }
            state.withLock { $0.swarms[id] = (swarm, node) }
            return (swarm, node)
        } catch {
            logger.warning("this host cannot run a swarm", metadata: ["swarm": "\(id)", "error": "\(error.message)"])
            return nil
        }
    }
}

/// What `purser hosts` shows as a host's version.
public let purserVersion = "0.1.0"
