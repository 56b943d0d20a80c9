import Glibc
import PurserLedger
import PurserProtocol
import PurserSandbox
import Synchronization

/// Runs one run's `routine/call`s: each a child step of a registered plugin, reserved
/// from the caller's own reservation (never from the swarm or the team), whose unused
/// part goes back to the caller when it ends. Steps nest at most `maxDepth` deep.
///
/// A step runs inside its caller's groups (`RunRequest.parentGroups`): its memory,
/// processes and CPU time count against the caller's limits as well as its own, the
/// caller's peak and CPU time include its steps', and no step outlives its caller's run
/// (`endCalls`).
final class StepLauncher: Sendable {
    static let maxDepth = 4
    static let defaultMemory: Int64 = 256 << 20

    private let runtime: Runtime
    private let parent: Node
    private let holder: Holder?
    private let account: RunAccount
    private let depth: Int
    private let tools: [String]
    private let deadlineMs: Int64
    /// The swarm's kept workers, which a trusted step plugin's worker may join (see `WorkerPool`).
    private let workers: WorkerPool?
    /// Steps running, by call; cancelled when the caller's worker is gone.
    private let running = Mutex(Running())

    private struct Running {
        var next = 0
        var tasks: [Int: Task<Void, Never>] = [:]
    }

    init(
        runtime: Runtime, parent: Node, holder: Holder?, account: RunAccount, depth: Int, tools: [String], deadlineMs: Int64,
        workers: WorkerPool? = nil
    ) {
        self.workers = workers
        self.runtime = runtime
        self.parent = parent
        self.holder = holder
        self.account = account
        self.depth = depth
        self.tools = tools
        self.deadlineMs = deadlineMs
    }

    /// Runs a step inside the caller's groups, and answers when it ends.
    func call(_ params: RoutineCallParams, callerGroups: RunCgroups?, reply: @escaping @Sendable (Result<JSONValue, RPCError>) -> Void) {
        // Called while the caller's worker lives: its groups are there to hold until the step ends.
        callerGroups?.hold()
        running.withLock { running in
            let id = running.next
            running.next += 1
            // Registered before it can end (which takes the lock to leave).
            running.tasks[id] = Task {
                await self.run(params, callerGroups: callerGroups, reply: reply)
                callerGroups?.unhold()
                self.running.withLock { _ = $0.tasks.removeValue(forKey: id) }
            }
        }
    }

    /// Cancels the steps still running: the caller's worker is gone, and its run with it.
    func endCalls() {
        for task in running.withLock({ Array($0.tasks.values) }) { task.cancel() }
    }

    private func run(
        _ params: RoutineCallParams, callerGroups: RunCgroups?, reply: @escaping @Sendable (Result<JSONValue, RPCError>) -> Void
    ) async {
        // The registry and the reservation are store calls: on the store's threads, not
        // the worker session's queue, whose timers must keep running meanwhile.
        let preparing = await StoreThread.run { () -> Result<Prepared, RuntimeError> in
            Result { () throws(RuntimeError) in try self.prepare(params, callerGroups: callerGroups) }
        }
        let prepared: Prepared
        switch preparing {
        case .success(let value): prepared = value
        case .failure(let error):
            // A store that is away is not a refusal of the budget.
            let verdict = (error.code == .store ? Verdict.error : .denied).rawValue
            return reply(.failure(RPCError(
                code: ErrorCode.routineFailed, message: error.message, data: ["verdict": .string(verdict), "credits": 0])))
        }
        defer { prepared.launch.close() }
        let report: RunReport?
        do throws(RuntimeError) {
            report = try await runtime.exec(prepared.request)
        } catch {
            // Ended but not settled: settled again with what it used, else (never
            // started) with nothing. The caller's own settle covers it either way.
            report = error.report
            let usage = error.report?.declaredUsage
            let store = runtime.ledger?.store
            let (node, holder, logger) = (prepared.node, prepared.request.hold?.holder, runtime.logger)
            let metadata = LogMetadata.run(report?.runID, node: node, plugin: params.plugin)
            await StoreThread.run {
                do {
                    _ = try store?.settle(node.id, usage: usage ?? .none, verdict: report?.verdict ?? .error, holder: holder)
                } catch {
                    logger.failure("step not settled", metadata, error)
                }
            }
        }
        let used = report?.usage.credits ?? .zero
        account.settleStep(held: params.credits, used: used)
        guard let report, report.verdict == .ok else {
            let verdict = (report?.verdict ?? .error).rawValue
            return reply(.failure(RPCError(
                code: ErrorCode.routineFailed, message: "\(params.plugin): \(report?.message ?? verdict)",
                data: ["verdict": .string(verdict), "credits": used.json])))
        }
        reply(.success(RoutineCallResult(output: report.output ?? .null, credits: used).json))
    }

    private struct Prepared: Sendable {
        var request: RunRequest
        var node: Node
        var launch: PluginLaunch
    }

    /// The checks, the hold in the caller's account, the step's node in the ledger, and the
    /// plugin's pinned file: each undone if a later one fails.
    private func prepare(_ params: RoutineCallParams, callerGroups: RunCgroups?) throws(RuntimeError) -> Prepared {
        func refuse(_ message: String) -> RuntimeError { RuntimeError(code: .invalidRequest, message: message) }
        guard depth < Self.maxDepth else { throw refuse("steps nest at most \(Self.maxDepth) deep") }
        guard let call = try PluginRegistry(runtime: runtime).resolve(params.plugin) else {
            throw refuse("no plugin named '\(params.plugin)' is registered")
        }
        if let problem = call.inputProblem(params.input) { throw refuse("input \(problem)") }
        let left = deadlineMs - unixMilliseconds()
        let time = min(params.timeMs ?? left, left)
        guard time > 0 else { throw refuse("the caller has no time left for a step") }
        guard account.hold(params.credits) else {
            throw refuse("the caller's reservation cannot cover \(params.credits) credits for \(params.plugin)")
        }
        // By default half of the caller's memory hold, at most 256 MiB: the caller's own
        // process keeps the rest.
        let memory = params.memoryBytes ?? min(Self.defaultMemory, parent.cap.memoryBytes / 2)
        let node: Node
        do {
            node = try runtime.ledger!.store.reserve(.run(
                .step, name: params.plugin, plugin: params.plugin,
                amounts: Amounts(credits: params.credits, timeMs: time, memoryBytes: memory), from: parent.id, tools: tools,
                holder: holder))
        } catch {
            account.settleStep(held: params.credits, used: .zero)
            guard error.code != .storeFailed else {
                throw RuntimeError(code: .store, message: "\(params.plugin): ledger: \(error.message)")
            }
            throw refuse("\(params.plugin): \(error.message)")
        }
        let launch: PluginLaunch
        do {
            launch = try PluginLaunch.open(call, runtime: runtime)
        } catch {
            do {
                _ = try runtime.ledger!.store.settle(node.id, usage: .none, verdict: .error, holder: holder)
            } catch let settling {
                runtime.logger.failure("step not settled", LogMetadata.run(nil, node: node, plugin: params.plugin), settling)
            }
            account.settleStep(held: params.credits, used: .zero)
            throw error
        }
        var request = RunRequest(
            executable: call.record.path, pluginName: call.record.name, input: params.input, credits: params.credits, wallTimeMs: time,
            memoryBytes: memory)
        request.hold = LedgerHold(node: node, holder: holder)
        launch.configure(&request, workers: workers)
        request.depth = depth + 1
        request.tools = tools
        request.parentGroups = callerGroups
        return Prepared(request: request, node: node, launch: launch)
    }
}
