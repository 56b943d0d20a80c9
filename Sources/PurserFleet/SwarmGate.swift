import PurserLedger
import PurserProtocol
import PurserRuntime

/// A swarm's bracket in the fleet: admitted when its team grants its hold (held by the
/// swarm's own lease, which outlives any host), completed when its routines have all
/// ended (its hold settled, its report kept). Any live host may do either; the queue
/// hands each swarm to one host at a time.
struct SwarmGate {
    let host: FleetHost

    /// Admits what fits, team by team in each team's order; a team whose first swarm must
    /// wait is passed over for the rest of the pass. While one waits, passes come at most
    /// once a second, or at once when a swarm completed on this host.
    func admitWaiting(_ lease: HostLease) async {
        let due = host.state.withLock { state in
            state.admitSoon || monotonicMs() - state.lastAdmitMs >= HostSettings.admissionRetryMs
        }
        guard due else { return }
        var waiting: [String] = []
        var passing: [String] = []
        var madeRoom: Set<String> = []
        while let queued = await take({ [waiting, passing] () throws(LedgerError) in
            try host.fleet.nextToAdmit(host: lease, skipping: waiting, passing: passing)
        }) {
            let outcome = queued.state == "admitting" ? await admit(queued) : await resume(queued)
            switch outcome {
            case .left: break
            case .passes: passing.append(queued.id)
            // Once a pass: what was given back may already let it in.
            case .roomMade where madeRoom.insert(queued.team).inserted: break
            case .roomMade, .waits: waiting.append(queued.team)
            }
        }
        host.state.withLock { state in
            state.admitSoon = waiting.isEmpty || !madeRoom.isEmpty
            state.lastAdmitMs = monotonicMs()
        }
    }

    enum Outcome {
        /// Admitted, resumed or denied: it no longer waits.
        case left
        case waits
        /// It waits, and the team's others may go before it (a share below its minimum).
        case passes
        /// It waits, and a preemption took back credits for it (or is stopping routines).
        case roomMade
    }

    private func admit(_ queued: QueuedSwarm) async -> Outcome {
        let settings = host.settings
        let parsed = host.state.withLock { $0.pending[queued.id] }
        let policy = await take { () throws(LedgerError) in try host.fleet.teamPolicy(team: queued.team) } ?? TeamPolicy(team: queued.team)
        let result = await StoreThreads.shared.run { () -> Result<(FleetSwarm, FleetSwarm.Admission, Holder?, Bool), RuntimeError> in
            Result { () throws(RuntimeError) in
                let swarm: FleetSwarm
                if let parsed { swarm = parsed } else {
                    swarm = try FleetSwarm(id: queued.id, file: queued.file, source: queued.source, runtime: host.runtime)
                }
                swarm.follow(policy)
                var credits: Int64?
                if policy.onConflict == .proportional {
                    switch try TeamShare.of(swarm, queued, host: host) {
                    case .whole: break
                    case .share(let share): credits = share
                    case .pass(let why): return (swarm, .waiting(why), Holder?.none, true)
                    }
                }
                let (admission, holder) = try swarm.admit(credits: credits) { () throws(LedgerError) in
                    try host.ledger.acquireLease(holder: "swarm:" + queued.id, ttlMs: settings.swarmLeaseMs)
                }
                return (swarm, admission, holder, false)
            }
        }
        let (verdict, message): (String?, String)
        var outcome = Outcome.waits
        switch result {
        case .success((let swarm, .granted(let node), let holder?, _)):
            // Read once: the host runs its routines from the same plan.
            host.allowChunks(swarm, policy: policy)
            host.state.withLock { state in
                state.pending[queued.id] = nil
                state.swarms[queued.id] = (swarm, node.id)
            }
            await record { () throws(LedgerError) in try host.fleet.admitted(swarm: queued.id, node: node.id, holder: holder) }
            // What the swarm holds (less than it asked when its policy shrank it): a watcher's view shows it.
            let fields: [String: JSONValue] = [
                "node": .number(JSONNumber(node.id)), "tier": "swarm", "host": .string(settings.name), "credits": Credits(micros: node.cap.credits).json,
            ]
            host.events.add(queued.id, "reserve", nil, fields)
            return .left
        case .success((let swarm, .waiting(let why), let holder, let passes)):
            await keepWaiting(queued, swarm, holder)
            (verdict, message) = (policy.onConflict == .fail ? "denied" : nil, why)
            if passes { outcome = .passes }
            if policy.onConflict == .preempt, await makeRoom(for: queued, asking: swarm.credits.asked, policy: policy) { outcome = .roomMade }
        case .success((let swarm, .frozen(let why), let holder, _)):
            await keepWaiting(queued, swarm, holder)
            (verdict, message) = (nil, why)
        case .success((_, .denied(let why), _, _)): (verdict, message) = ("denied", why)
        case .success((_, .granted, nil, _)): (verdict, message) = (nil, "granted without a lease")
        case .failure(let error) where error.code == .store: (verdict, message) = (nil, error.message)
        case .failure(let error): (verdict, message) = ("denied", error.message)
        }
        if verdict != nil { host.state.withLock { _ = $0.pending.removeValue(forKey: queued.id) } }
        await record { () throws(LedgerError) in try host.fleet.notAdmitted(swarm: queued.id, verdict: verdict, message: message) }
        if queued.message != message || verdict != nil {
            host.events.add(queued.id, verdict == nil ? "queue" : "deny", nil, ["message": .string(message)])
        }
        return verdict != nil ? .left : outcome
    }

    /// A swarm paused by a preemption grows back by what it gave, and claims again.
    private func resume(_ row: QueuedSwarm) async -> Outcome {
        guard let node = row.node, let holder = row.holder else {
            await record { () throws(LedgerError) in try host.fleet.released(swarm: row.id, resumed: true, message: "resumed") }
            return .left
        }
        do throws(LedgerError) {
            try await StoreThreads.shared.run { () throws(LedgerError) in
                _ = try host.ledger.resize(node, credits: row.gave, holder: holder)
                try host.fleet.released(swarm: row.id, resumed: true, message: "resumed")
            }
            host.events.add(row.id, "resume", nil, ["credits": Credits(micros: row.gave).json])
            return .left
        } catch {
            let message = error.code == .insufficient ? error.message : "growing back failed: \(error.message)"
            if error.code != .insufficient { host.logger.warning("a paused swarm could not grow back", metadata: ["swarm": "\(row.id)", "error": "\(error)"]) }
            let policy = await take { () throws(LedgerError) in try host.fleet.teamPolicy(team: row.team) } ?? TeamPolicy(team: row.team)
            let madeRoom = policy.onConflict == .preempt && error.code == .insufficient
                ? await makeRoom(for: row, asking: row.gave, policy: policy) : false
            await record { () throws(LedgerError) in try host.fleet.released(swarm: row.id, resumed: false, message: message) }
            return madeRoom ? .roomMade : .waits
        }
    }

    /// Whether a preemption took back credits for `row` or is stopping routines for it.
    private func makeRoom(for row: QueuedSwarm, asking: Int64, policy: TeamPolicy) async -> Bool {
        let taken = await take { () throws(LedgerError) in
            try Preemption(host: host).makeRoom(for: row, asking: asking, agingMs: policy.agingMs)
        }
        guard let taken, !taken.isEmpty else { return false }
        for (swarm, credits) in taken.gave {
            host.events.add(swarm, "give_back", nil, ["credits": Credits(micros: credits).json, "for": .string(row.id)])
        }
        for (swarm, routine) in taken.stopped {
            host.events.add(swarm, "preempt", routine, ["for": .string(row.id)])
        }
        host.logger.info("preempted for a higher swarm", metadata: [
            "swarm": "\(row.id)", "gave": "\(taken.gave.map { "\($0.swarm):\($0.credits)" })",
            "stopping": "\(taken.stopped.map { "\($0.swarm)/\($0.routine)" })",
        ])
        return true
    }

    /// Completes the swarms whose routines all ended. After a failure it stops until the
    /// host's next pass: the failed swarm is back in line at once, and taking it again at
    /// once would spin (a store that refuses the settle refuses it a millisecond later too).
    func completeEnded(_ lease: HostLease) async {
        while let swarm = await take({ () throws(LedgerError) in try host.fleet.nextToComplete(host: lease) }) {
            guard await complete(swarm) else { return }
        }
    }

    /// Settles the swarm's hold, ends its lease, and keeps its report; false when it failed.
    private func complete(_ row: QueuedSwarm) async -> Bool {
        let result = await StoreThreads.shared.run { () -> Result<FleetReport, RuntimeError> in
            Result { () throws(RuntimeError) in try FleetReport.settle(row, host: host) }
        }
        switch result {
        case .success(let report):
            await record { () throws(LedgerError) in
                try host.fleet.complete(swarm: row.id, verdict: report.verdict, report: report.json.serialized())
                try host.ledger.saveRun(report.record)
            }
            host.events.add(row.id, "done", nil, ["verdict": .string(report.verdict)])
            host.state.withLock { $0.admitSoon = true }
            await host.forget(row.id)
            return true
        case .failure(let error):
            host.logger.error("completing a swarm failed; another pass will try again", metadata: [
                "swarm": "\(row.id)", "error": "\(error.message)",
            ])
            await record { () throws(LedgerError) in try host.fleet.notCompleted(swarm: row.id) }
            return false
        }
    }

    /// The swarm stays read for its next try; its lease ends with this try (the next try
    /// takes it anew).
    private func keepWaiting(_ queued: QueuedSwarm, _ swarm: FleetSwarm, _ holder: Holder?) async {
        host.state.withLock { $0.pending[queued.id] = swarm }
        if let holder { _ = await take { () throws(LedgerError) in try host.ledger.reclaim(leases: [holder.id]) } }
    }

    private func take<T: Sendable>(_ body: @escaping @Sendable () throws(LedgerError) -> T?) async -> T? {
        do throws(LedgerError) {
            return try await StoreThreads.shared.run(body)
        } catch {
            host.logger.warning("reading the queue failed", metadata: ["error": "\(error)"])
            return nil
        }
    }

    private func record(_ body: @escaping @Sendable () throws(LedgerError) -> Void) async {
        do throws(LedgerError) {
            try await StoreThreads.shared.run(body)
        } catch {
            host.logger.error("writing the queue failed; the rescue puts the swarm back", metadata: ["error": "\(error)"])
        }
    }
}
