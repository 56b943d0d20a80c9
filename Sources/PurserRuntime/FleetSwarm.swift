import Glibc
import PurserConfig
public import PurserLedger
public import PurserProtocol
public import PurserSandbox

/// A swarm of the fleet's queue as one host sees it: its job read from the text that was
/// submitted, its plugins resolved on this host, its hold taken from the team, and each
/// routine this host claims run exactly as `purser run` runs it (the same plan, hold,
/// sandbox, gateway, steps and kept workers). The queue's bookkeeping is the caller's.
public final class FleetSwarm: Sendable {
    public let id: String
    public let job: JobFile
    let plan: SwarmPlan
    let runtime: Runtime
    let cache: RoutineCache
    let workers: WorkerPool
    /// This host's chunks of the swarm's hold, once the host allows them.
    public let chunks: SwarmChunks

    public init(id: String, file: String, source: String, runtime: Runtime) throws(RuntimeError) {
        let job: JobFile
        do {
            job = try JobFile.parse(ConfigValue.parse(source, file: file))
        } catch {
            throw RuntimeError(code: .invalidRequest, message: error.description)
        }
        try Self.requireRegistered(job)
        self.id = id
        self.job = job
        plan = try SwarmPlan(job: job, runtime: runtime)
        self.runtime = runtime
        cache = RoutineCache(store: runtime.ledger!.store, logger: runtime.logger)
        workers = WorkerPool(capacity: 2 * job.swarm.concurrency)
        let plan = self.plan
        let strategy = ReservationStrategy(rawValue: job.swarm.strategy) ?? .conservative
        let holds = job.routines.map { routine in
            plan.holdRequest(routine, credits: strategy.amount(for: plan.planned(routine).estimate.credits.micros), from: 0, holder: nil).amounts
        }
        chunks = SwarmChunks(
            swarm: ReserveRequest.swarm(job.swarm, from: 0, holder: nil).amounts,
            largestRoutine: Resources(
                credits: holds.map(\.credits).max() ?? 0, timeMs: holds.map(\.timeMs).max() ?? 0,
                memoryBytes: holds.map(\.memoryBytes).max() ?? 0),
            swarmName: job.swarm.name, tools: job.swarm.tools, logger: runtime.logger)
    }

    /// A job for the fleet names registered plugins: a path means nothing on another host.
    public static func requireRegistered(_ job: JobFile) throws(RuntimeError) {
        for routine in job.routines where routine.plugin.contains("/") {
            throw RuntimeError(
                code: .invalidRequest,
                message: "\(job.field(routine)).plugin: '\(routine.plugin)' is a path; "
                    + "a fleet runs registered plugins (purser plugin add NAME \(routine.plugin), then plugin: NAME)")
        }
    }

    /// The memory a routine's hold takes (the job's estimate, capped by its plugin's manifest).
    public func memoryBytes(_ routine: String) -> Int64 {
        guard let routine = plan.routines[routine] else { return 0 }
        return plan.holdRequest(routine, credits: 0, from: 0, holder: nil).amounts.memoryBytes
    }

    /// The routines whose outputs a routine's input takes (its templates).
    public func inputsFrom(_ routine: String) -> [String] {
        guard let routine = plan.routines[routine] else { return [] }
        return Template.references(in: routine.input).map(\.routine)
    }

    /// The routine's tools that need a person's approval (the job's or its plugin's `approval`).
    public func approvalTools(_ routine: String) -> [String] {
        plan.routines[routine].map(plan.approvalTools) ?? []
    }

    /// How many more tries a routine gets after a failed attempt.
    public func retries(_ routine: String) -> Int { plan.routines[routine]?.retries ?? 0 }

    public enum Admission: Sendable {
        case granted(Node)
        /// The team cannot grant it now; a later try may.
        case waiting(String)
        /// The team is frozen: it waits for the thaw, whatever the team's policy.
        case frozen(String)
        case denied(String)
    }

    /// Takes the swarm's hold from its team (made from `team.budget` if need be), held by
    /// the lease `holder` makes: the swarm's own, which outlives any one host. The lease is
    /// taken only once the team has room, so that a swarm that waits costs one read a try.
    /// `credits`: what to hold instead of the job's credits (a proportional share).
    public func admit(credits: Int64? = nil, holder: () throws(LedgerError) -> Holder) throws(RuntimeError) -> (Admission, Holder?) {
        let store = runtime.ledger!.store
        let team = try job.openTeam(in: store)
        var request = ReserveRequest.swarm(job.swarm, from: team.id, holder: nil)
        if let credits { request.amounts.credits = credits }
        let asked = request.amounts
        let bigger = asked.credits > team.cap.credits || asked.timeMs > team.cap.timeMs || asked.memoryBytes > team.cap.memoryBytes
        if !bigger, asked.credits > team.available.credits || asked.timeMs > team.available.timeMs
            || asked.memoryBytes > team.available.memoryBytes
        {
            return (.waiting("team \(team.name) has \(Credits(micros: team.available.credits)) credits available, the swarm asks \(Credits(micros: asked.credits))"), nil)
        }
        do throws(LedgerError) {
            let lease = try holder()
            request.holder = lease
            do throws(LedgerError) {
                return (.granted(try store.reserve(request)), lease)
            } catch where error.code == .insufficient {
                return (bigger ? .denied(error.message) : .waiting(error.message), lease)
            } catch where error.code == .frozen {
                return (.frozen(error.message), lease)
            } catch where error.code == .toolNotPermitted {
                return (.denied(error.message), lease)
            }
        } catch {
            throw RuntimeError(error)
        }
    }

    /// The credits (µ) the swarm's reservation asks for, and the least it starts with.
    public var credits: (asked: Int64, minimum: Int64) {
        (job.swarm.credits.micros, job.swarm.minimum?.micros ?? job.swarm.credits.micros)
    }

    /// Closes the swarm's hold: what its routines did not use goes back to the team. Hosts'
    /// chunks still open (their hosts close them a poll later) close first, as returned:
    /// every routine has ended, so nothing runs in them.
    public static func settle(node: NodeID, holder: Holder, allOK: Bool, store: any LedgerStore) throws(RuntimeError) -> Settlement {
        do throws(LedgerError) {
            for chunk in try store.openChildren(of: node) where chunk.kind == .swarm {
                _ = try store.settle(chunk.id, usage: .none, outcome: SwarmChunks.outcome, holder: nil)
            }
            return try store.settle(node, usage: .none, outcome: LedgerOutcome.swarm(allOK: allOK), holder: holder)
        } catch {
            throw RuntimeError(error, context: "ledger: settling swarm \(node)")
        }
    }

    public enum RoutineResult: Sendable {
        /// Its hold did not fit in what the swarm has left now.
        case notFit(String)
        /// Its team is frozen: it waits in line until the team thaws.
        case frozen(String)
        /// It ran (or was answered from the cache, or could not start): its end.
        case ended(RoutineRun)
    }

    /// Runs one claimed routine under a hold from the swarm's node, held by `holder` (the
    /// host's lease). `outputs`: the swarm's finished routines' outputs, as JSON text.
    /// `graceMs`: the longest each step of a stop sequence may wait (cancel, exit, TERM), so
    /// that a host that fences itself has its workers gone in time. `probe`: where the host
    /// sees the worker while it runs.
    public func run(
        _ name: String, outputs: [String: String], swarm: NodeID, holder: Holder, graceMs: Int64, probe: WorkerProbe? = nil,
        onEvent: @escaping @Sendable (String, [String: JSONValue]) -> Void
    ) async -> RoutineResult {
        guard let routine = plan.routines[name] else { return .ended(RoutineRun(verdict: .error, message: "no routine \(name)")) }
        let input: JSONValue
        do {
            input = try Template.fill(routine.input, outputs: outputs.mapValues { (try? JSONParser.parse(Array($0.utf8))) ?? .null })
        } catch {
            return .ended(RoutineRun(verdict: .error, message: error.description))
        }
        if let problem = plan.inputProblem(routine, input) { return .ended(RoutineRun(verdict: .error, message: problem)) }
        let key = plan.cacheKey(routine, input)
        if let key, let output = await StoreThread.run({ self.cache.lookUp(key) }) {
            onEvent("cache_hit", [:])
            return .ended(RoutineRun(verdict: .ok, output: output, cached: true))
        }
        let node: Node
        switch await reserve(routine, swarm: swarm, holder: holder) {
        case .success(let granted): node = granted
        case .failure(let error) where error.code == .insufficient: return .notFit(error.message)
        case .failure(let error) where error.code == .frozen: return .frozen(error.message)
        case .failure(let error): return .ended(RoutineRun(verdict: .denied, message: error.message))
        }
        onEvent("grant", ["node": .number(JSONNumber(node.id)), "credits": Credits(micros: node.cap.credits).json])
        let ran = await exec(routine, input: input, node: node, holder: holder, graceMs: graceMs, probe: probe, onEvent: onEvent)
        if let parent = node.parent, parent != swarm, let done = chunks.release(parent) {
            await StoreThread.run { self.chunks.close(done, store: self.runtime.ledger!.store) }
        }
        if ran.verdict == .ok, let key { await StoreThread.run { self.cache.remember(key, ran.output ?? .null) } }
        return .ended(ran)
    }

    private func reserve(_ routine: JobFile.Routine, swarm: NodeID, holder: Holder) async -> Result<Node, LedgerError> {
        await StoreThread.run { () -> Result<Node, LedgerError> in
            let strategy = ReservationStrategy(rawValue: self.job.swarm.strategy) ?? .conservative
            let history = strategy == .adaptive
                ? (try? self.runtime.ledger!.store.history(plugin: routine.plugin, team: self.job.team.name, limit: 50)) ?? [] : []
            let credits = strategy.amount(for: self.plan.planned(routine).estimate.credits.micros, history: history)
            let request = self.plan.holdRequest(routine, credits: credits, from: swarm, holder: holder)
            return Result { () throws(LedgerError) in
                try self.chunks.reserve(request, swarm: swarm, holder: holder, store: self.runtime.ledger!.store)
            }
        }
    }

    private func exec(
        _ routine: JobFile.Routine, input: JSONValue, node: Node, holder: Holder, graceMs: Int64, probe: WorkerProbe?,
        onEvent: @escaping @Sendable (String, [String: JSONValue]) -> Void
    ) async -> RoutineRun {
        var request: RunRequest
        do throws(RuntimeError) {
            request = try plan.runRequest(routine, input: input, hold: LedgerHold(node: node, holder: holder), workers: workers)
            request.timing.cancelGraceMs = min(request.timing.cancelGraceMs, graceMs)
            request.timing.exitGraceMs = min(request.timing.exitGraceMs, graceMs)
            request.timing.termGraceMs = min(request.timing.termGraceMs, graceMs)
            request.probe = probe
        } catch {
            // It never started: its hold goes back whole.
            _ = await StoreThread.run { try? self.runtime.ledger!.store.settle(node.id, usage: .none, verdict: .error, holder: holder) }
            return RoutineRun(verdict: .error, message: error.message, node: node.id)
        }
        defer { request.closeFiles() }
        onEvent("start", [:])
        do throws(RuntimeError) {
            let report = try await runtime.exec(request) { event in
                let (kind, fields) = event.swarmEvent
                onEvent(kind, fields)
            }
            return RoutineRun(report: report, node: node.id)
        } catch {
            var ran = error.report.map { RoutineRun(report: $0, node: node.id) } ?? RoutineRun(verdict: .error, node: node.id)
            ran.message = error.message
            ran.unsettled = error.report != nil
            return ran
        }
    }

    /// Settles again a run whose settle the store did not take, with what it used (never
    /// with nothing). True once the ledger charged it; false when the ledger refuses it for
    /// good (its hold was reclaimed: the host was fenced or found lost). Throws while the
    /// store is away, for the caller to try again.
    public func settleAgain(_ ran: RoutineRun, holder: Holder) throws(RuntimeError) -> Bool {
        guard let report = ran.report, let id = ran.node, let ledger = runtime.ledger else { return false }
        do throws(RuntimeError) {
            let node = try RuntimeError.fromLedger { () throws(LedgerError) in try ledger.store.node(id) }
            _ = try ledger.settleNow(node, holder: holder, report: report)
            return true
        } catch where error.code == .store {
            throw error
        } catch {
            runtime.logger.warning("a run's settle was refused: it will run again", metadata: ["node": "\(id)", "error": "\(error.message)"])
            return false
        }
    }

    /// Ends the kept workers of this swarm on this host.
    public func retireWorkers() async { await workers.retireAll() }

    /// Takes the team's policy on keeping untrusted workers (`TeamPolicy.reuseUntrusted`).
    public func follow(_ policy: TeamPolicy) { workers.allowUntrusted(policy.reuseUntrusted) }
}

/// How one routine's attempt ended on this host.
public struct RoutineRun: Sendable {
    public var verdict: Verdict
    public var message: String?
    public var output: JSONValue?
    public var node: NodeID?
    public var cached = false
    /// The run ended, but the store did not take its settle.
    public var unsettled = false
    public var report: RunReport?

    init(verdict: Verdict, message: String? = nil, output: JSONValue? = nil, node: NodeID? = nil, cached: Bool = false) {
        self.verdict = verdict
        self.message = message
        self.output = output
        self.node = node
        self.cached = cached
    }

    init(report: RunReport, node: NodeID) {
        self.init(
            verdict: report.verdict, message: report.error?.message ?? report.message, output: report.output, node: node)
        self.report = report
    }
}
