import Dispatch
import Glibc
import PurserGateway
import Logging
import PurserProtocol
import PurserSandbox
import Synchronization

/// Speaks protocol v1 with one worker for one run, and enforces the run's limits.
///
/// A reusable session (a trusted plugin whose worker declares `sequentialRuns`) may serve
/// further runs: a run the worker answered cleanly leaves it `idle` instead of shut down,
/// and `runAgain` sends it the next one (see WorkerReuse.swift). Anything else ends the
/// worker as before. What belongs to one run is in `current`, made anew for each.
///
/// The parts: `WorkerTransport` (the pipes), `ProtocolState` (where the conversation
/// stands), `WorkerCalls` (the worker's own requests); this type ties them together, and
/// its extensions handle the worker's messages (WorkerMessages.swift), stop it
/// (WorkerStop.swift) and report the run (WorkerReport.swift).
///
/// Every piece of state is touched only on `queue`, as a channel's state is on its event
/// loop in SwiftNIO: the pipes, the pidfd and the timers are all Dispatch sources on it.
/// The exceptions are the transport's and the calls' to say.
final class WorkerSession: @unchecked Sendable {
    static let supervisorVersion = "0.1.0"

    let workerID: String
    let limits: ResourceLimits
    let profile: SandboxProfile
    let sandbox: SandboxPlan?
    let queue: DispatchQueue
    let gateway: Gateway?
    /// May serve another run once this one is answered (see the type's comment).
    let reusable: Bool
    /// The worker's working directory, removed when the worker is gone.
    let directory: RunDirectory?

    /// The run in progress, or the last one.
    var current: RunState
    /// Runs this worker was sent, this one included.
    var runsServed = 0
    /// Where the conversation stands; its phase changes only through `phase`.
    var conversation = ProtocolState()
    private let idle = Atomic<Bool>(false)

    private(set) var process: WorkerProcess?
    private(set) var transport: WorkerTransport?
    private(set) var calls: WorkerCalls?
    /// The run's egress proxy (`RunRequest.egress`), on the worker's loopback.
    var egress: EgressProxy?
    /// Deny-listed syscalls the worker tried, once it is gone.
    var deniedCalls = DeniedCalls()
    private(set) var exitSource: (any DispatchSourceRead)?
    var watchingExit = false
    /// The worker is known to have exited; it is reaped once its pidfd is no longer watched.
    var exiting = false

    init(
        request: RunRequest, runID: String, budget: Budget, profile: SandboxProfile, sandbox: SandboxPlan? = nil,
        gateway: (Gateway, RunAccount)? = nil, account: RunAccount? = nil, steps: StepLauncher? = nil,
        reusable: Bool = false, directory: RunDirectory? = nil, onEvent: @escaping @Sendable (RunEvent) -> Void
    ) {
        self.reusable = reusable
        self.directory = directory
        self.gateway = gateway?.0
        self.workerID = "w-" + runID.dropFirst(2)
        self.limits = profile.limits
        self.profile = profile
        self.sandbox = sandbox
        let queue = DispatchQueue(label: "purser.worker.\(runID)")
        self.queue = queue
        // Made here rather than in `run()`: a cancel that comes before the run starts counts.
        self.current = RunState(
            request: request, runID: runID, budget: budget, account: account ?? gateway?.1, steps: steps, onEvent: onEvent,
            timers: RunTimers(queue: queue))
    }

    var phase: ProtocolState.Phase {
        get { conversation.phase }
        set {
            conversation.phase = newValue
            updateAcceptsCalls()
            idle.store(newValue == .idle, ordering: .releasing)
        }
    }

    /// Whether the last run left the worker waiting for another.
    var isIdle: Bool { idle.load(ordering: .acquiring) }

    /// Runs the worker to its end; never throws: a spawn failure is a `startup_failed` report.
    func run() async -> RunReport {
        await withCheckedContinuation { continuation in
            queue.async {
                self.current.answerRun = { continuation.resume(returning: $0) }
                self.start()
            }
        }
    }

    /// Asks the run `runID` to stop, as a user would with Ctrl-C; a later run of the same
    /// worker is not touched.
    func cancel(runID: String) {
        queue.async {
            guard self.current.runID == runID else { return }
            self.beginCancel(.cancelled, reason: "cancelled", message: "cancelled by the user")
        }
    }

    // MARK: - Start

    private func start() {
        current.startedAt = .now
        guard current.stop == nil else { return finish(exit: nil) }
        let process: WorkerProcess
        do {
            process = try Spawner.spawn(profile)
        } catch {
            stopRun(.startupFailed, error.description)
            finish(exit: nil)
            return
        }
        self.process = process
        attachProbe(process)
        let transport = WorkerTransport(
            process: process, queue: queue, gateway: gateway, maxLineBytes: current.request.maxLineBytes, handlers: handlers())
        let calls = WorkerCalls(gateway: gateway) { transport.write($0, onQueue: false) }
        self.transport = transport
        self.calls = calls
        transport.start(onEngine: calls.takeOnEngine)
        if process.egressListener >= 0, let gateway {
            let proxy = EgressProxy(
                listener: process.egressListener, gateway: gateway, egress: current.request.egress,
                logger: Logger(label: "purser.egress")) { [weak calls] in calls?.currentCaller }
            proxy.start()
            egress = proxy
        }
        watchExit(process)
        watchCPU()

        let params = InitializeParams(
            supervisorVersion: Self.supervisorVersion, workerID: workerID, plugin: current.request.pluginName,
            maxLineBytes: Int64(current.request.maxLineBytes))
        send(.initialize, method: Method.initialize, params: params.json)
        after(current.request.timing.startupMs) {
            guard self.phase == .initializing else { return }
            self.kill(.startupFailed, "the worker did not answer initialize within \(self.current.request.timing.startupMs) ms")
        }
    }

    /// Shows the worker to the run's probe: its pid, and its peak read on this queue, so
    /// never once its groups were released (that happens with the run's end, here too).
    func attachProbe(_ process: WorkerProcess) {
        current.request.probe?.attach(pid: process.pid) { [weak self] in
            guard let self else { return nil }
            return WorkerProbe.read(on: self.queue) { [.running, .initializing, .stopping].contains(self.phase) ? process.memoryPeakBytes() : nil }
        }
    }

    private func handlers() -> WorkerTransport.Handlers {
        WorkerTransport.Handlers(
            line: { self.handleLine($0) },
            oversized: { self.kill(.protocolViolation, "the worker wrote a line longer than \(self.current.request.maxLineBytes) bytes") },
            stderr: { self.current.stderrTail.append($0) },
            overflow: { self.kill(.protocolViolation, "the worker does not read its stdin (\($0) bytes waiting)") })
    }

    private func watchExit(_ process: WorkerProcess) {
        let exitSource = DispatchSource.makeReadSource(fileDescriptor: process.pidFD, queue: queue)
        exitSource.setEventHandler { self.workerExited() }
        // Runs once libdispatch no longer watches the pidfd: only then may the worker be
        // reaped (see `workerExited`).
        exitSource.setCancelHandler {
            if self.exiting { self.reap(process) }
            close(process.pidFD)
        }
        exitSource.activate()
        self.exitSource = exitSource
    }

    // MARK: - Run state

    /// Records why the run stops; a broken stream is no longer read, nor are its calls taken.
    func stopRun(_ reason: StopReason, _ message: String) {
        current.stop = reason
        current.stopMessage = message
        if reason == .protocolViolation { transport?.mute() }
        updateAcceptsCalls()
    }

    func updateAcceptsCalls() {
        guard let calls else { return }
        let accepting = phase == .running && current.stop != .protocolViolation
        let (runID, budget) = (current.runID, current.budget)
        calls.take(for: accepting
            ? current.account.map {
                GatewayCaller(runID: runID, tools: Set(budget.tools), deadlineMs: budget.deadlineMs, account: $0, team: $0.team)
            }
            : nil)
    }

    /// A timer of the current run: it does nothing once the run is answered or the worker is gone.
    func after(_ milliseconds: Int64, repeating: Bool = false, _ body: @escaping () -> Void) {
        current.timers.after(milliseconds, repeating: repeating) {
            guard self.phase != .finished else { return }
            body()
        }
    }

    // MARK: - Writing

    func send(_ purpose: ProtocolState.Pending, method: String, params: JSONValue?) {
        write(conversation.request(purpose, method: method, params: params))
    }

    func write(_ bytes: [UInt8]) {
        transport?.write(bytes)
    }
}
