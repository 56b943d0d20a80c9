import Dispatch
import Glibc
public import PurserGateway
public import PurserLedger
public import PurserProtocol
import PurserSandbox

/// One line of a swarm's event stream (`purser run --events FILE`, NDJSON).
public struct SwarmEvent: Sendable {
    public var atMs: Int64
    /// reserve, grant, deny, queue, start, usage, gateway_call, progress, log, retry,
    /// verdict, skip, return.
    public var kind: String
    public var routine: String?
    public var fields: [String: JSONValue]

    public var json: JSONValue {
        var object = fields
        object["at"] = .number(JSONNumber(atMs))
        object["event"] = .string(kind)
        if let routine { object["routine"] = .string(routine) }
        return .object(object)
    }
}

/// How one routine of a swarm ended.
public struct RoutineOutcome: Sendable {
    public var name: String
    /// A run verdict, or `skipped` when a dependency did not succeed.
    public var verdict: String
    public var attempts: Int
    public var message: String?
    public var output: JSONValue?
    public var ledgerNode: NodeID?
    public var report: RunReport?
    /// Served from the deterministic routine cache: no reservation, no spawn, no credits.
    public var cached = false
    /// Why the run's settle failed, if it did: its usage is in `report`, not in the ledger.
    public var settleError: String?

    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "name": .string(name), "verdict": .string(verdict), "attempts": .number(JSONNumber(Int64(attempts))),
        ]
        if let message { object["message"] = .string(message) }
        if let output { object["output"] = output }
        if let ledgerNode { object["ledgerNode"] = .number(JSONNumber(ledgerNode)) }
        if cached { object["cached"] = true }
        if let settleError {
            object["settled"] = false
            object["settleError"] = .string(settleError)
        }
        if let report { object["usage"] = report.usage.json }
        // Which process ran it, and its how-manieth run that was (more than 1: a kept worker).
        if let report, let pid = report.pid, report.workerRun > 0 {
            object["worker"] = ["pid": .number(JSONNumber(Int64(pid))), "run": .number(JSONNumber(Int64(report.workerRun)))]
        }
        return .object(object)
    }
}

/// Reserved, used and returned at one tier of the tree.
public struct TierSummary: Sendable {
    public var tier: String
    public var nodes: Int
    public var reserved: Resources
    public var used: Resources
    public var returned: Resources

    init(tier: String, nodes: [Node]) {
        self.tier = tier
        self.nodes = nodes.count
        reserved = nodes.reduce(.zero) { $0 + $1.cap }
        used = nodes.reduce(.zero) { $0 + Resources(credits: $1.consumed.credits, timeMs: $1.consumed.timeMs, memoryBytes: $1.consumed.memoryBytes) }
        returned = nodes.reduce(.zero) { $0 + $1.returned }
    }

    public var json: JSONValue {
        func amounts(_ value: Resources) -> JSONValue {
            [
                "credits": Credits(micros: value.credits).json, "timeMs": .number(JSONNumber(value.timeMs)),
                "memoryBytes": .number(JSONNumber(value.memoryBytes)),
            ]
        }
        return [
            "tier": .string(tier), "nodes": .number(JSONNumber(Int64(nodes))), "reserved": amounts(reserved),
            "used": amounts(used), "returned": amounts(returned),
        ]
    }
}

public struct SwarmReport: Sendable {
    public var runID: String
    public var startedMs: Int64
    public var swarm: String
    public var team: String
    public var swarmNode: NodeID?
    /// Why the swarm itself could not start (its team could not grant its reservation).
    public var denied: String?
    /// The ledger's store stayed away past the store retry window: routines were left
    /// unstarted or unsettled (each says which), and the report holds what is known.
    public var storeError: String?
    public var routines: [RoutineOutcome]
    public var tiers: [TierSummary]
    public var analytics: Analytics?
    public var wallMs: Int64

    public var verdictCounts: [String: Int] {
        routines.reduce(into: [:]) { $0[$1.verdict, default: 0] += 1 }
    }

    public var allOK: Bool {
        denied == nil && storeError == nil && routines.allSatisfy { $0.verdict == Verdict.ok.rawValue && $0.settleError == nil }
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "runId": .string(runID), "startedMs": .number(JSONNumber(startedMs)),
            "swarm": .string(swarm), "team": .string(team), "ok": .bool(allOK),
            "routines": .array(routines.map(\.json)), "tiers": .array(tiers.map(\.json)),
            "verdicts": .object(verdictCounts.mapValues { .number(JSONNumber(Int64($0))) }),
            "wallMs": .number(JSONNumber(wallMs)),
        ]
        if let swarmNode { object["swarmNode"] = .number(JSONNumber(swarmNode)) }
        if let denied { object["denied"] = .string(denied) }
        if let storeError { object["storeError"] = .string(storeError) }
        if let analytics {
            object["analytics"] = [
                "reservationAccuracy": .number(JSONNumber(analytics.reservationAccuracy) ?? JSONNumber(0)),
                "utilizationEfficiency": .number(JSONNumber(analytics.utilizationEfficiency) ?? JSONNumber(0)),
                "returnRate": .number(JSONNumber(analytics.returnRate) ?? JSONNumber(0)),
            ]
        }
        return .object(object)
    }
}

/// Runs a job file's swarm: reserves the swarm from its team, then each routine from the
/// swarm as its dependencies finish and the budget allows, `concurrency` at a time;
/// returns what was not used at every tier.
///
/// When a routine's reservation does not fit, `onConflict` decides. `fail`: it is denied
/// at once. `queue`: it waits, first come first served, until running routines return
/// enough or `queueTimeout` passes. `priority`: the same, in order of priority plus one
/// point for every `agingMs` waited, so low-priority work cannot starve. A waiting routine
/// holds nothing, and every reservation is taken whole from its parent or not at all, so
/// no wait can be part of a cycle: the swarm cannot deadlock. A routine that could not
/// fit even with nothing else running is denied.
public final class SwarmRunner: Sendable {
    let runtime: Runtime
    let job: JobFile
    private let onEvent: @Sendable (SwarmEvent) -> Void
    /// Each routine's executable: a path, or a registered plugin (run through its pinned file).
    private let plugins: [String: PluginSource]
    private let cache: RoutineCache

    enum PluginSource: Sendable {
        case path(String)
        case registered(PluginRecord, PluginManifest)
    }

    /// Checks what can be checked before anything is reserved: every plugin exists.
    public init(runtime: Runtime, job: JobFile, onEvent: @escaping @Sendable (SwarmEvent) -> Void = { _ in }) throws(RuntimeError) {
        guard runtime.ledger != nil else { throw RuntimeError(code: .ledger, message: "a swarm needs a ledger") }
        plugins = try Self.resolve(job, registry: PluginRegistry(runtime: runtime))
        // A host that cannot sandbox a routine refuses the swarm before anything is reserved.
        for source in plugins.values {
            switch source {
            case .registered(let record, let manifest):
                _ = try runtime.sandboxPlan(manifest.sandbox, optOut: manifest.optOut, plugin: record.name)
            case .path(let path):
                _ = try runtime.sandboxPlan(.untrusted, optOut: nil, plugin: String(path.split(separator: "/").last ?? ""))
            }
        }
        cache = RoutineCache(store: runtime.ledger!.store, logger: runtime.logger)
        self.runtime = runtime
        self.job = job
        self.onEvent = onEvent
    }

    private static func resolve(_ job: JobFile, registry: PluginRegistry) throws(RuntimeError) -> [String: PluginSource] {
        var plugins: [String: PluginSource] = [:]
        for routine in job.routines { plugins[routine.name] = try resolve(routine, in: job, registry: registry) }
        return plugins
    }

    /// A name is a registered plugin, checked against its pin now (and again at each run);
    /// a path is relative to the job file.
    static func resolve(_ routine: JobFile.Routine, in job: JobFile, registry: PluginRegistry) throws(RuntimeError) -> PluginSource {
        let field = "\(job.file):\(routine.line ?? 0): routines.\(routine.name).plugin"
        guard routine.plugin.contains("/") else {
            guard let record = try registry.find(routine.plugin) else {
                throw RuntimeError(
                    code: .invalidRequest,
                    message: "\(field): no plugin named '\(routine.plugin)' is registered (purser plugin add), and it is not a path")
            }
            do {
                close(try PluginRegistry.openPinned(record).fd)
            } catch {
                throw RuntimeError(code: .invalidRequest, message: "\(field): \(error.message)")
            }
            let manifest = PluginManifest(record)
            let missing = Set(manifest.tools).subtracting(routine.tools)
            guard missing.isEmpty else {
                throw RuntimeError(
                    code: .invalidRequest,
                    message: "\(job.file):\(routine.line ?? 0): routines.\(routine.name).tools: plugin \(record.name) needs \(missing.sorted().joined(separator: ", "))")
            }
            return .registered(record, manifest)
        }
        var path = routine.plugin
        if !path.hasPrefix("/"), let slash = job.file.lastIndex(of: "/") { path = String(job.file[...slash]) + path }
        guard access(path, X_OK) == 0 else {
            throw RuntimeError(
                code: .invalidRequest,
                message: "\(job.file):\(routine.line ?? 0): routines.\(routine.name).plugin: no executable at \(path)")
        }
        return .path(path)
    }

    // MARK: - Scheduling

    enum Finished: Sendable {
        /// `error` with a report: the run ended, but could not be settled.
        case run(name: String, node: Node, report: RunReport?, error: RuntimeError?)
        case tick
    }

    func runRoutines(_ schedule: Schedule, store: any LedgerStore) async {
        let runtime = self.runtime
        await withTaskGroup(of: Finished.self) { group in
            // Budget is looked at only when a run's end has been taken in (or at the start):
            // a hold returned by a run whose end is not yet seen must not let a waiting
            // routine overtake that run's dependents.
            var mayStart = true
            while true {
                // Scheduling reads and writes the ledger: on the store's threads, not this task's.
                // Cancelled (the supervisor was told to stop): nothing more starts, and what
                // runs is cancelled through its task, settles and is reported.
                let starting = mayStart && !Task.isCancelled ? await StoreThread.run { self.startWhatFits(schedule, store: store) } : []
                for (name, node, request) in starting {
                    // A task of its own, so that a preemption can cancel this one run.
                    let task = Task<Finished, Never> {
                        defer { if let fd = request.executableFD { close(fd) } }
                        do throws(RuntimeError) {
                            let report = try await runtime.exec(request) { event in self.forward(event, routine: name) }
                            return .run(name: name, node: node, report: report, error: nil)
                        } catch {
                            return .run(name: name, node: node, report: error.report, error: error)
                        }
                    }
                    schedule.tasks[name] = task
                    group.addTask { await withTaskCancellationHandler { await task.value } onCancel: { task.cancel() } }
                }
                if schedule.running == 0 {
                    guard schedule.hasReady else { break }
                    if Task.isCancelled {
                        schedule.concludeAllReady(RoutineOutcome(
                            name: "", verdict: Verdict.cancelled.rawValue, attempts: 0, message: "the swarm was cancelled before it started"), self)
                        continue
                    }
                    // Nothing runs, so nothing will return budget: what still waits never fits.
                    schedule.denyAllReady("does not fit in what the swarm has left, even with nothing else running", self)
                    continue
                }
                if schedule.hasReady && !schedule.ticking {
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
                    schedule.expireWaits(job.swarm.queueTimeoutMs, self)
                    mayStart = false
                case .run(let name, let node, let report, let error):
                    schedule.running -= 1
                    schedule.tasks[name] = nil
                    await StoreThread.run { self.finish(schedule, name, node, report, error, store: store) }
                    mayStart = true
                }
            }
        }
    }

    /// Reserves for every ready routine that may start now; returns the runs to start.
    private func startWhatFits(_ schedule: Schedule, store: any LedgerStore) -> [(String, Node, RunRequest)] {
        if schedule.storeFailure != nil {
            schedule.concludeAllReady(notStarted(), self)
            return []
        }
        schedule.expireWaits(job.swarm.queueTimeoutMs, self)
        if job.swarm.onConflict == .proportional { shareOut(schedule, store: store) }
        var starting: [(String, Node, RunRequest)] = []
        for name in schedule.readyInOrder(policy: job.swarm.onConflict) {
            guard schedule.running < job.swarm.concurrency else { return starting }
            let routine = schedule.routines[name]!
            let input: JSONValue
            do {
                input = try Template.fill(routine.input, outputs: schedule.outputs)
            } catch {
                schedule.conclude(name, RoutineOutcome(
                    name: name, verdict: Verdict.error.rawValue, attempts: schedule.attempt(name), message: error.description), self)
                continue
            }
            if let key = cacheKey(routine, input), let output = cache.lookUp(key) {
                emit("cache_hit", name, [:])
                schedule.conclude(name, RoutineOutcome(
                    name: name, verdict: Verdict.ok.rawValue, attempts: 0, output: output, cached: true), self)
                continue
            }
            switch reserve(routine, schedule, store: store, credits: schedule.shares.removeValue(forKey: name)) {
            case .success(let node):
                schedule.markRunning(name)
                schedule.inputs[name] = input
                schedule.holds[name] = node.cap.credits
                emit("grant", name, ["node": .number(JSONNumber(node.id)), "credits": Credits(micros: node.cap.credits).json])
                do throws(RuntimeError) {
                    var request = try runRequest(
                        routine, input: input, hold: LedgerHold(node: node, holder: schedule.holder), workers: schedule.workers)
                    let flag = PreemptionFlag()
                    request.preemption = flag
                    schedule.preemptFlags[name] = flag
                    starting.append((name, node, request))
                    emit("start", name, [:])
                } catch {
                    // The plugin's file changed since it was pinned: refused, and its hold goes back.
                    schedule.markRunning(name)
                    schedule.running -= 1
                    finish(schedule, name, node, nil, error, store: store)
                }
            case .failure(let error) where error.code == .storeFailed:
                // Not a denial: the team was never asked. Nothing more starts.
                schedule.storeFailure = error.message
                schedule.concludeAllReady(notStarted(), self)
                return starting
            case .failure(let error) where error.code == .insufficient && job.swarm.onConflict != .fail:
                if schedule.markQueued(name) { emit("queue", name, ["message": .string(error.message)]) }
                if job.swarm.onConflict == .preempt { preemptFor(routine, schedule, store: store) }
                return starting  // first come (or highest priority) first: nobody overtakes a waiting routine
            case .failure(let error):
                schedule.conclude(name, RoutineOutcome(
                    name: name, verdict: Verdict.denied.rawValue, attempts: schedule.attempt(name), message: error.message), self)
            }
        }
        return starting
    }

    /// The cache key of a routine whose plugin is registered as deterministic.
    private func cacheKey(_ routine: JobFile.Routine, _ input: JSONValue) -> String? {
        guard case .registered(let record, let manifest) = plugins[routine.name], manifest.deterministic else { return nil }
        return RoutineCache.key(digest: record.sha256, input: input)
    }

    /// What the strategy reserves for a routine.
    private func request(_ routine: JobFile.Routine, store: any LedgerStore) -> Int64 {
        let strategy = ReservationStrategy(rawValue: job.swarm.strategy) ?? .conservative
        let history = strategy == .adaptive
            ? logged("reading the plugin's history", routine: routine.name) { () throws(LedgerError) in
                try store.history(plugin: routine.plugin, team: job.team.name, limit: 50)
            } ?? [] : []
        return strategy.amount(for: planned(routine).estimate.credits.micros, history: history)
    }

    /// `proportional`: the credits left are shared among the waiting routines (as many as
    /// may run) in proportion to what each asks; each whose share is at least its
    /// `minimum` gets its share, the rest keep waiting for their whole request.
    private func shareOut(_ schedule: Schedule, store: any LedgerStore) {
        schedule.shares = [:]
        guard let available = logged("reading the swarm's node", { () throws(LedgerError) in
            try store.node(schedule.swarm.id).available.credits
        }), available > 0 else { return }
        let slots = job.swarm.concurrency - schedule.running
        let contenders = schedule.readyInOrder(policy: .queue).prefix(max(slots, 0)).compactMap { name in
            schedule.routines[name].map { ($0, request($0, store: store)) }
        }
        let total = contenders.reduce(Int64(0)) { $0 + $1.1 }
        guard total > available else { return }
        for (routine, asked) in contenders {
            let share = Int64((Double(available) * Double(asked) / Double(total)).rounded(.down))
            guard share >= (routine.minimum?.micros ?? asked), share > 0 else { continue }
            schedule.shares[routine.name] = share
            emit("share", routine.name, ["credits": Credits(micros: share).json, "asked": Credits(micros: asked).json])
        }
    }

    /// `preempt`: cancels the fewest running routines of lower priority, lowest first,
    /// whose holds cover what the routine lacks. They end `preempted`, are put back in the
    /// queue, and what they did not use returns to the swarm, where the routine that asked,
    /// first in line by priority, takes it.
    private func preemptFor(_ routine: JobFile.Routine, _ schedule: Schedule, store: any LedgerStore) {
        guard schedule.preempting.isEmpty,
            let swarm = logged("reading the swarm's node", routine: routine.name, { () throws(LedgerError) in try store.node(schedule.swarm.id) })
        else { return }
        let lacking = request(routine, store: store) - swarm.available.credits
        guard lacking > 0 else { return }
        let candidates = schedule.tasks.keys.compactMap { name -> (JobFile.Routine, Int64)? in
            guard let victim = schedule.routines[name], victim.priority < routine.priority,
                let held = schedule.holds[name]
            else { return nil }
            return (victim, held)
        }.sorted { $0.0.priority != $1.0.priority ? $0.0.priority < $1.0.priority : $0.1 > $1.1 }
        var covered: Int64 = 0
        var victims: [String] = []
        for (victim, held) in candidates where covered < lacking {
            victims.append(victim.name)
            covered += held
        }
        guard covered >= lacking else { return }
        for victim in victims {
            schedule.preempting.insert(victim)
            emit("preempt", victim, ["for": .string(routine.name)])
            schedule.preemptFlags[victim]?.set()
            schedule.tasks[victim]?.cancel()
        }
    }

    /// A registered plugin's manifest: its default estimate when the job gives none, and
    /// its maximum as a cap on what is reserved.
    private func planned(_ routine: JobFile.Routine) -> (estimate: Amounts, max: Amounts?) {
        guard case .registered(_, let manifest) = plugins[routine.name] else { return (routine.estimate, nil) }
        let estimate = routine.estimateGiven ? routine.estimate : manifest.defaultReservation ?? routine.estimate
        return (estimate, manifest.maxReservation)
    }

    private func reserve(
        _ routine: JobFile.Routine, _ schedule: Schedule, store: any LedgerStore, credits share: Int64? = nil
    ) -> Result<Node, LedgerError> {
        let strategy = ReservationStrategy(rawValue: job.swarm.strategy) ?? .conservative
        let (estimate, maximum) = planned(routine)
        var credits = share ?? request(routine, store: store)
        var timeMs = estimate.timeMs
        var memory = estimate.memoryBytes
        if let maximum {
            credits = min(credits, maximum.credits.micros)
            timeMs = min(timeMs, maximum.timeMs)
            memory = min(memory, maximum.memoryBytes)
        }
        emit("reserve", routine.name, ["credits": Credits(micros: credits).json, "strategy": .string(strategy.rawValue)])
        do {
            return .success(try store.reserve(ReserveRequest(
                parent: schedule.swarm.id, kind: .routine, name: routine.name,
                amounts: Resources(credits: credits, timeMs: timeMs, memoryBytes: memory),
                tools: routine.tools, holder: schedule.holder, plugin: routine.plugin, estimate: estimate.credits.micros,
                strategy: strategy.rawValue)))
        } catch {
            return .failure(error)
        }
    }

    private func runRequest(
        _ routine: JobFile.Routine, input: JSONValue, hold: LedgerHold, workers: WorkerPool
    ) throws(RuntimeError) -> RunRequest {
        var executable: String
        var opened: PluginRegistry.OpenedPlugin?
        switch plugins[routine.name]! {
        case .path(let path): executable = path
        case .registered(let record, _):
            executable = record.path
            opened = try PluginRegistry.openPinned(record)
        }
        var request = RunRequest(
            executable: executable, pluginName: routine.name, input: input,
            credits: Credits(micros: hold.node.cap.credits), wallTimeMs: hold.node.cap.timeMs, memoryBytes: hold.node.cap.memoryBytes)
        request.tools = routine.tools
        request.hold = hold
        request.executableFD = opened?.fd
        request.keepExecutableFD = opened?.isScript ?? false
        if case .registered(_, let manifest) = plugins[routine.name] {
            manifest.apply(to: &request, workers: workers)
            // Only the variables its manifest names, with the supervisor's values.
            for name in manifest.environment {
                if let value = getenv(name) { request.environment[name] = String(cString: value) }
            }
        }
        return request
    }

    private func finish(
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
        let verdict = report?.verdict.rawValue ?? Verdict.error.rawValue
        emit("verdict", name, [
            "verdict": .string(verdict), "node": .number(JSONNumber(node.id)),
            "used": (report?.usage.credits ?? .zero).json, "returned": returned.json,
        ])
        let routine = schedule.routines[name]!
        schedule.holds[name] = nil
        // A run the ledger did not take ends the routine: its usage must stay in view.
        let mayRunAgain = schedule.storeFailure == nil && schedule.unsettled[name] == nil
        if mayRunAgain, schedule.preempting.remove(name) != nil, verdict == Verdict.preempted.rawValue {
            // Back in the queue; the attempt does not count as a retry.
            schedule.attempts[name, default: 1] -= 1
            schedule.retry(name)
            return
        }
        if mayRunAgain, verdict != Verdict.ok.rawValue, schedule.attempt(name) <= routine.retries {
            emit("retry", name, ["attempt": .number(JSONNumber(Int64(schedule.attempt(name) + 1)))])
            schedule.retry(name)
            return
        }
        if verdict == Verdict.ok.rawValue, let report, let input = schedule.inputs[name],
            let key = cacheKey(routine, input)
        {
            cache.remember(key, report.output ?? .null)
        }
        var outcome = RoutineOutcome(
            name: name, verdict: verdict, attempts: schedule.attempt(name),
            message: report?.error?.message ?? report?.message ?? (report == nil ? error?.message : nil),
            output: report?.output, ledgerNode: node.id, report: report)
        if report != nil { outcome.settleError = error?.message }
        schedule.conclude(name, outcome, self)
    }

    /// The run never started (a bad input, a missing file): its hold goes back whole.
    /// False when the store failed (the swarm then stops, and the hold stays open).
    private func settleNeverStarted(_ schedule: Schedule, _ node: Node, store: any LedgerStore) -> Bool {
        do throws(LedgerError) {
            _ = try store.settle(node.id, usage: .none, outcome: "error", holder: schedule.holder)
        } catch where error.code == .storeFailed {
            if schedule.storeFailure == nil { schedule.storeFailure = "ledger: settling node \(node.id): \(error)" }
            return false
        } catch {
            // Closed already, or fenced: nothing to return, but an operator should know.
            runtime.logger.failure("hold not returned", swarmMetadata(node: node), error, level: .warning)
        }
        return true
    }

    // MARK: - Reporting

    /// A routine's own events, into the swarm's stream.
    private func forward(_ event: RunEvent, routine: String) {
        switch event {
        case .usage(let credits): emit("spend", routine, ["credits": credits.json])
        case .gatewayCall(let record):
            var fields: [String: JSONValue] = [
                "integration": .string(record.integration), "credits": record.credits.json, "cached": .bool(record.cached),
                "latencyMicros": .number(JSONNumber(record.latencyMicros)),
            ]
            if let status = record.status { fields["status"] = .number(JSONNumber(status)) }
            if let reason = record.reason { fields["reason"] = .string(reason.rawValue) }
            emit("gateway_call", routine, fields)
        case .progress(let progress):
            emit("progress", routine, ["fraction": progress.fraction.flatMap { JSONNumber($0) }.map(JSONValue.number) ?? .null,
                "message": progress.message.map(JSONValue.string) ?? .null])
        case .log(let log): emit("log", routine, ["level": .string(log.level), "message": .string(log.message)])
        case .notice(let notice): emit("notice", routine, ["message": .string(notice)])
        }
    }

    func emit(_ kind: String, _ routine: String?, _ fields: [String: JSONValue]) {
        onEvent(SwarmEvent(atMs: unixMilliseconds(), kind: kind, routine: routine, fields: fields))
    }

    func report(_ schedule: Schedule, store: any LedgerStore, swarm: Node, team: Node, started: ContinuousClock.Instant) -> SwarmReport {
        let routines = job.routines.map { schedule.outcomes[$0.name] ?? RoutineOutcome(name: $0.name, verdict: "skipped", attempts: 0) }
        let tree = logged("reading the team's tree for the report") { () throws(LedgerError) in try store.tree(team: job.team.name) } ?? []
        let swarmNodes = tree.filter { $0.id == swarm.id }
        let routineNodes = tree.filter { $0.parent == swarm.id }
        var below = Set(routineNodes.map(\.id))
        var stepNodes: [Node] = []
        // The tree comes parents first, so one pass collects steps of steps too.
        for node in tree where node.parent.map(below.contains) == true && node.kind == .step {
            stepNodes.append(node)
            below.insert(node.id)
        }
        return SwarmReport(
            runID: "", startedMs: 0,
            swarm: job.swarm.name, team: job.team.name, swarmNode: swarm.id, denied: nil, routines: routines,
            tiers: [TierSummary(tier: "swarm", nodes: swarmNodes), TierSummary(tier: "routine", nodes: routineNodes)]
                + (stepNodes.isEmpty ? [] : [TierSummary(tier: "step", nodes: stepNodes)]),
            analytics: routineNodes.isEmpty ? nil : Analytics(routineNodes), wallMs: milliseconds(since: started))
    }
}

/// Where each routine stands; touched only by the scheduling loop, one step at a time
/// (steps that read or write the ledger run on `StoreThread`, awaited by the loop).
final class Schedule: @unchecked Sendable {
    enum State {
        case waiting
        /// Its times are in `ready`.
        case ready
        case running
        case done
    }

    let job: JobFile
    let swarm: Node
    let holder: Holder
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

    /// Routines by name, their place in the file, and who runs after each.
    let routines: [String: JobFile.Routine]
    private let order: [String: Int]
    private let dependents: [String: [String]]
    /// Ready routines: since when, and since when they wait for budget (nil: not yet).
    private var ready: [String: (since: Int64, queuedAt: Int64?, generation: Int)] = [:]
    /// Ready routines in the order they became ready, for the first-come policies; entries
    /// of routines no longer ready (or ready again later) are skipped.
    private var arrivals: [(name: String, generation: Int)] = []
    private var arrivalsHead = 0
    private var generation = 0
    /// Ready routines that wait for budget (`queuedAt` set): the only ones a queue timeout
    /// can end, so that looking for expired waits costs nothing while nobody waits.
    private var queued: Set<String> = []

    init(job: JobFile, swarm: Node, holder: Holder) {
        self.job = job
        self.swarm = swarm
        self.holder = holder
        workers = WorkerPool(capacity: 2 * job.swarm.concurrency)
        routines = Dictionary(uniqueKeysWithValues: job.routines.map { ($0.name, $0) })
        order = Dictionary(uniqueKeysWithValues: job.routines.enumerated().map { ($1.name, $0) })
        var dependents: [String: [String]] = [:]
        for routine in job.routines { for before in routine.after { dependents[before, default: []].append(routine.name) } }
        self.dependents = dependents
        let now = unixMilliseconds()
        for routine in job.routines {
            if routine.after.isEmpty { makeReady(routine.name, now: now) } else { states[routine.name] = .waiting }
        }
    }

    var hasReady: Bool { !ready.isEmpty }

    func attempt(_ name: String) -> Int { attempts[name, default: 0] }

    private func makeReady(_ name: String, now: Int64) {
        generation += 1
        states[name] = .ready
        ready[name] = (now, nil, generation)
        queued.remove(name)
        arrivals.append((name, generation))
    }

    private func leaveReady(_ name: String) {
        ready[name] = nil
        queued.remove(name)
        while arrivalsHead < arrivals.count, ready[arrivals[arrivalsHead].name]?.generation != arrivals[arrivalsHead].generation {
            arrivalsHead += 1
        }
        if arrivalsHead > 4096 && arrivalsHead * 2 > arrivals.count {
            arrivals.removeFirst(arrivalsHead)
            arrivalsHead = 0
        }
    }

    /// Ready routines in the order the policy serves them: first come first served, or by
    /// priority plus aging. First come is lazy: a caller takes as many as there are free
    /// slots, often one, out of thousands ready, and it is asked at every routine's end.
    func readyInOrder(policy: JobFile.ConflictPolicy) -> AnySequence<String> {
        guard policy == .priority || policy == .preempt else {
            return AnySequence(arrivals[arrivalsHead...].lazy.compactMap { [self] arrival in
                ready[arrival.name]?.generation == arrival.generation ? arrival.name : nil
            })
        }
        let now = unixMilliseconds()
        return AnySequence(ready.map { name, entry in
            (name, entry.since, (routines[name]?.priority ?? 0) + (now - entry.since) / job.swarm.agingMs, order[name] ?? 0)
        }.sorted { a, b in
            if a.2 != b.2 { return a.2 > b.2 }
            return a.1 != b.1 ? a.1 < b.1 : a.3 < b.3
        }.map(\.0))
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
        let now = unixMilliseconds()
        ready[name] = (entry.since, now, entry.generation)
        queued.insert(name)
        return true
    }

    func retry(_ name: String) {
        makeReady(name, now: unixMilliseconds())
    }

    func expireWaits(_ timeoutMs: Int64, _ runner: SwarmRunner) {
        let now = unixMilliseconds()
        for name in queued {
            guard let queuedAt = ready[name]?.queuedAt, now - queuedAt > timeoutMs else { continue }
            conclude(name, RoutineOutcome(
                name: name, verdict: Verdict.denied.rawValue, attempts: attempt(name),
                message: "waited \(timeoutMs) ms for budget (queueTimeout)"), runner)
        }
    }

    func denyAllReady(_ message: String, _ runner: SwarmRunner) {
        concludeAllReady(RoutineOutcome(name: "", verdict: Verdict.denied.rawValue, attempts: 0, message: message), runner)
    }

    /// Ends every ready routine with `outcome` (its name and attempts filled in).
    func concludeAllReady(_ outcome: RoutineOutcome, _ runner: SwarmRunner) {
        for name in ready.keys {
            var mine = outcome
            mine.name = name
            mine.attempts = attempt(name)
            conclude(name, mine, runner)
        }
    }

    /// Records the routine's end; its dependents become ready, or are skipped if it failed.
    func conclude(_ name: String, _ outcome: RoutineOutcome, _ runner: SwarmRunner) {
        states[name] = .done
        leaveReady(name)
        outcomes[name] = outcome
        if outcome.verdict == Verdict.ok.rawValue {
            outputs[name] = outcome.output ?? .null
        } else {
            runner.emit(outcome.verdict == Verdict.denied.rawValue ? "deny" : "fail", name, ["message": .string(outcome.message ?? "")])
        }
        for dependent in dependents[name] ?? [] {
            guard case .waiting = states[dependent], let routine = routines[dependent] else { continue }
            if outcome.verdict != Verdict.ok.rawValue {
                runner.emit("skip", dependent, ["because": .string(name)])
                conclude(dependent, RoutineOutcome(
                    name: dependent, verdict: "skipped", attempts: 0, message: "\(name) did not succeed"), runner)
            } else if routine.after.allSatisfy({ outcomes[$0]?.verdict == Verdict.ok.rawValue }) {
                makeReady(dependent, now: unixMilliseconds())
            }
        }
    }
}

func milliseconds(since start: ContinuousClock.Instant) -> Int64 {
    let elapsed = ContinuousClock.now - start
    return elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
}
