import Dispatch
import Glibc
import PurserGateway
import PurserProtocol
import PurserSandbox
import Synchronization

/// Speaks protocol v1 with one worker for one run, and enforces the run's limits.
///
/// A reusable session (a trusted plugin whose worker declares `sequentialRuns`) may serve
/// further runs: a run the worker answered cleanly leaves it `idle` instead of shut down,
/// and `runAgain` sends it the next one. Anything else ends the worker as before.
///
/// Every piece of state is touched only on `queue`, as a channel's state is on its event
/// loop in SwiftNIO: the pipes, the pidfd and the timers are all Dispatch sources on it.
/// The exceptions say so: with a gateway, stdout and its framer belong to the HTTP
/// engine's thread until the worker exits (`readOnEngine`), and what a call needs from
/// there (`caller`, `callsInFlight`, `stdin`) is atomic or locked.
final class WorkerSession: @unchecked Sendable {
    static let maxStrayLines = 16
    static let maxUnknownNotifications = 64
    /// Answers waiting for a worker that does not read its stdin; past this it is a violation.
    var maxPendingOutput: Int { request.maxLineBytes + (1 << 20) }
    static let supervisorVersion = "0.1.0"
    /// Gateway calls one worker may have in flight; past this they are refused.
    static let maxCallsInFlight = 256

    private enum Phase { case initializing, running, idle, stopping, finished }
    private enum Pending { case initialize, run, shutdown, ping }

    private var request: RunRequest
    private var runID: String
    private let workerID: String
    private var budget: Budget
    private let limits: ResourceLimits
    private let profile: SandboxProfile
    private let sandbox: SandboxPlan?
    /// Deny-listed syscalls the worker tried, once it is gone.
    private var deniedCalls = DeniedCalls()
    private var onEvent: @Sendable (RunEvent) -> Void
    private let queue: DispatchQueue
    private let gateway: Gateway?
    private var account: RunAccount?
    private var steps: StepLauncher?
    /// May serve another run once this one is answered (see the type's comment).
    private let reusable: Bool
    /// The worker's working directory, removed when the worker is gone.
    private let directory: RunDirectory?
    /// Runs this worker was sent, this one included.
    private var runsServed = 0
    /// The worker's CPU time when the current run began (nanoseconds; 0 for its first run).
    private var cpuAtRunStart: Int64 = 0
    /// Counts runs: a timer set for one run does nothing in a later one.
    private var generation = 0
    /// Ids of the worker's own requests not yet answered (its gateway and routine calls).
    private let callsInFlight = Mutex<Set<RPCID>>([])
    /// Set while `phase == .running` and the stream is still sound: whether calls are taken,
    /// and for which run, readable from the HTTP engine's thread.
    private let caller = Mutex<GatewayCaller?>(nil)
    /// Lines the engine's thread handed to `queue` that `queue` has not finished yet.
    private let linesQueued = Atomic<Int>(0)
    /// The worker's stdout is read on the HTTP engine's thread (see `readOnEngine`).
    private var stdoutOnEngine = false
    /// What the exit waits for: the engine's thread to stop reading stdout.
    private var afterEngineReading: (() -> Void)?
    /// Owned by the engine's thread while it reads: the stream was cut at an oversized line.
    private var engineStopped = false

    private var process: WorkerProcess?
    private var phase = Phase.initializing {
        didSet {
            updateAcceptsCalls()
            idle.store(phase == .idle, ordering: .releasing)
        }
    }
    private let idle = Atomic<Bool>(false)
    private var stop: StopReason? { didSet { updateAcceptsCalls() } }
    private var stopMessage: String?
    private var answer = RunAnswer.none
    private var output: JSONValue?
    private var runError: RPCError?
    private var plugin: InitializeResult?
    private var reportedCredits = Credits.zero
    private var resultCredits: Credits?
    private var strayLines = 0
    private var watchingExit = false
    /// The worker is known to have exited; it is reaped once its pidfd is no longer watched.
    private var exiting = false
    private var unknownNotifications: Set<String> = []
    private var nextID: Int64 = 1
    private var pending: [Int64: Pending] = [:]
    private var framer: LineFramer
    private var stderrTail = StderrTail()
    private var textBudget = WorkerTextBudget()
    /// The worker's stdin: shared, so that gateway answers are written from the HTTP
    /// engine's thread at once rather than after a hop through `queue`.
    private let stdin = Mutex(Outgoing())
    private var stdoutSource: (any DispatchSourceRead)?
    private var stderrSource: (any DispatchSourceRead)?
    private var exitSource: (any DispatchSourceRead)?
    /// Created on the first EAGAIN, suspended while nothing waits; cancelled (and the fd
    /// closed in its cancel handler) only when stdin closes, so no fd is closed while a
    /// source may still be registered for it and its number reused by another worker.
    private var writeSource: (any DispatchSourceWrite)?
    private var writeSuspended = false
    private var timers: [any DispatchSourceTimer] = []
    private var startedAt = ContinuousClock.now
    /// Answers whoever waits for the current run (or for the worker's end).
    private var answerRun: ((RunReport) -> Void)?

    init(
        request: RunRequest, runID: String, budget: Budget, profile: SandboxProfile, sandbox: SandboxPlan? = nil,
        gateway: (Gateway, RunAccount)? = nil, account: RunAccount? = nil, steps: StepLauncher? = nil,
        reusable: Bool = false, directory: RunDirectory? = nil, onEvent: @escaping @Sendable (RunEvent) -> Void
    ) {
        self.reusable = reusable
        self.directory = directory
        self.gateway = gateway?.0
        self.account = account ?? gateway?.1
        self.steps = steps
        self.request = request
        self.runID = runID
        self.workerID = "w-" + runID.dropFirst(2)
        self.budget = budget
        self.limits = profile.limits
        self.profile = profile
        self.sandbox = sandbox
        self.onEvent = onEvent
        self.framer = LineFramer(maxLineBytes: request.maxLineBytes)
        self.queue = DispatchQueue(label: "purser.worker.\(runID)")
    }

    /// Runs the worker to its end; never throws: a spawn failure is a `startup_failed` report.
    func run() async -> RunReport {
        await withCheckedContinuation { continuation in
            queue.async {
                self.answerRun = { continuation.resume(returning: $0) }
                self.start()
            }
        }
    }

    /// Asks the run `runID` to stop, as a user would with Ctrl-C; a later run of the same
    /// worker is not touched.
    func cancel(runID: String) {
        queue.async {
            guard self.runID == runID else { return }
            self.beginCancel(.cancelled, reason: "cancelled", message: "cancelled by the user")
        }
    }

    /// Sends an idle worker its next run; nil if the worker is no longer idle (it exited or
    /// broke the protocol meanwhile), and the caller starts a new one.
    func runAgain(
        request: RunRequest, runID: String, budget: Budget, account: RunAccount?, steps: StepLauncher?,
        onEvent: @escaping @Sendable (RunEvent) -> Void
    ) async -> RunReport? {
        await withCheckedContinuation { (continuation: CheckedContinuation<RunReport?, Never>) in
            queue.async {
                // Exited but not yet seen to (its pidfd's event may still be on its way).
                guard self.phase == .idle, self.process?.hasExited() == false else {
                    return continuation.resume(returning: nil)
                }
                self.request = request
                self.runID = runID
                self.budget = budget
                self.account = account
                self.steps = steps
                self.onEvent = onEvent
                self.answer = .none
                self.output = nil
                self.runError = nil
                self.reportedCredits = .zero
                self.resultCredits = nil
                self.stderrTail = StderrTail()
                self.textBudget = WorkerTextBudget()
                self.startedAt = .now
                self.process?.resetMemoryPeak()
                self.cpuAtRunStart = self.process?.cpuNanoseconds() ?? 0
                self.answerRun = { continuation.resume(returning: $0) }
                self.phase = .running
                self.sendRun()
            }
        }
    }

    /// Shuts an idle worker down and waits until it is gone; its directory and groups are
    /// released as after any run.
    func retire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                guard self.phase != .finished else { return continuation.resume() }
                self.answerRun = { _ in continuation.resume() }
                self.beginStop()
            }
        }
    }

    /// Whether the last run left the worker waiting for another.
    var isIdle: Bool { idle.load(ordering: .acquiring) }

    // MARK: - Start

    private func start() {
        startedAt = .now
        guard stop == nil else { return finish(exit: nil) }
        let process: WorkerProcess
        do {
            process = try Spawner.spawn(profile)
        } catch {
            stop = .startupFailed
            stopMessage = error.description
            finish(exit: nil)
            return
        }
        self.process = process
        stdin.withLock { $0.fd = process.stdinFD }
        if let gateway {
            readOnEngine(gateway, process)
        } else {
            watchStdout(process)
        }
        stderrSource = watchReads(process.stderrFD, holding: process.stderrHoldFD) { self.stderrTail.append($0) }
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
        watchCPU()

        let params = InitializeParams(
            supervisorVersion: Self.supervisorVersion, workerID: workerID, plugin: request.pluginName,
            maxLineBytes: Int64(request.maxLineBytes))
        send(request: .initialize, method: Method.initialize, params: params.json)
        after(request.timing.startupMs) {
            guard self.phase == .initializing else { return }
            self.kill(.startupFailed, "the worker did not answer initialize within \(self.request.timing.startupMs) ms")
        }
    }

    // MARK: - Reading

    /// Watches a pipe until it is cancelled (or, should a read fail, until then). The fd is
    /// closed only by the source's cancel handler, so no read can ever hit a closed (or
    /// reused) fd number; so is `hold`, the pipe's write end kept open by the supervisor
    /// so that the pipe never hangs up while the source is registered (see
    /// `WorkerProcess.stdoutHoldFD`): the worker's exit is told by its pidfd instead.
    private func watchReads(
        _ fd: Int32, holding hold: Int32, _ handle: @escaping (UnsafeRawBufferPointer) -> Void
    ) -> any DispatchSourceRead {
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        source.setEventHandler {
            guard !Self.drain(fd, handle) else { return }
            if fd == self.process?.stdoutFD { self.stdoutSource?.cancel() } else { self.stderrSource?.cancel() }
        }
        source.setCancelHandler {
            close(fd)
            close(hold)
        }
        source.activate()
        return source
    }

    private static let readBuffer = 64 * 1024

    /// Reads what the pipe holds now, at most 1 MiB so one worker cannot starve the rest.
    /// Returns false at end of file.
    @discardableResult
    private static func drain(_ fd: Int32, _ handle: (UnsafeRawBufferPointer) -> Void) -> Bool {
        withUnsafeTemporaryAllocation(byteCount: readBuffer, alignment: 16) { buffer in
            for _ in 0..<16 {
                let count = read(fd, buffer.baseAddress, buffer.count)
                if count > 0 {
                    handle(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
                    continue
                }
                if count < 0 && (errno == EINTR) { continue }
                return count < 0  // EAGAIN: open; 0 or another error: done
            }
            return true
        }
    }

    /// With a gateway, the worker's stdout is read on the HTTP engine's thread: a
    /// `gateway/call` goes to the wire from there, with no hop through `queue` (on two
    /// cores each hop is a wake-up that costs about as much as the call itself). Every other
    /// line, and a call that must wait its turn behind one, is handed to `queue` in order.
    private func readOnEngine(_ gateway: Gateway, _ process: WorkerProcess) {
        stdoutOnEngine = true
        let fd = process.stdoutFD
        gateway.watch(fd) {
            guard !Self.drain(fd, { self.engineData($0) }) else { return }
            gateway.unwatch(fd)
        } ended: {
            self.queue.async { self.engineReadingEnded() }
        }
    }

    /// On the engine's thread, which owns `framer` while it reads.
    private func engineData(_ chunk: UnsafeRawBufferPointer) {
        guard !engineStopped else { return }
        framer.feed(chunk) { event in
            switch event {
            case .line(let line): self.engineLine(line)
            case .oversized:
                self.engineStopped = true
                self.handOff { self.lineTooLong() }
            }
        }
    }

    private func engineLine(_ line: ArraySlice<UInt8>) {
        // Taken here only when nothing before it waits on `queue`, so that it sees the
        // session exactly as it would there.
        if linesQueued.load(ordering: .acquiring) == 0, Self.mayBeGatewayCall(line), caller.withLock({ $0 != nil }),
            case .request(let id, Method.gatewayCall, let params)? = try? RPCMessage(line: line),
            callsInFlight.withLock({ !$0.contains(id) })
        {
            return callGateway(id, params)
        }
        handOff { self.handleLine(line) }
    }

    private func handOff(_ body: @escaping @Sendable () -> Void) {
        linesQueued.add(1, ordering: .relaxed)
        queue.async {
            body()
            self.linesQueued.subtract(1, ordering: .releasing)
        }
    }

    /// Cheap, before parsing on the engine's thread: large lines and all but calls go to `queue`.
    private static func mayBeGatewayCall(_ line: ArraySlice<UInt8>) -> Bool {
        guard line.count <= 64 << 10 else { return false }
        return line.firstRange(of: gatewayCallBytes) != nil
    }

    private static let gatewayCallBytes = Array(Method.gatewayCall.utf8)

    /// The engine's thread no longer reads stdout: the exit asked for it, or the watch ended
    /// by itself (end of file), and `queue` reads it from now on.
    private func engineReadingEnded() {
        stdoutOnEngine = false
        if let next = afterEngineReading {
            afterEngineReading = nil
            return next()
        }
        guard phase != .finished, let process else { return }
        watchStdout(process)
    }

    private func watchStdout(_ process: WorkerProcess) {
        stdoutSource = watchReads(process.stdoutFD, holding: process.stdoutHoldFD) { self.stdoutData($0) }
    }

    private func updateAcceptsCalls() {
        let accepting = phase == .running && stop != .protocolViolation
        let current = accepting
            ? account.map {
                GatewayCaller(runID: runID, tools: Set(budget.tools), deadlineMs: budget.deadlineMs, account: $0, team: $0.team)
            }
            : nil
        caller.withLock { $0 = current }
    }

    private func stdoutData(_ chunk: UnsafeRawBufferPointer) {
        guard phase != .finished, stop != .protocolViolation else { return }
        framer.feed(chunk) { event in
            switch event {
            case .line(let line): self.handleLine(line)
            case .oversized: self.lineTooLong()
            }
        }
    }

    private func lineTooLong() {
        kill(.protocolViolation, "the worker wrote a line longer than \(request.maxLineBytes) bytes")
    }

    private func handleLine(_ line: ArraySlice<UInt8>) {
        guard stop != .protocolViolation else { return }
        guard phase != .idle else { return stray(line, because: "no run in progress") }
        let message: RPCMessage
        do {
            message = try RPCMessage(line: line)
        } catch {
            return stray(line, because: error.description)
        }
        switch message {
        case .response(let id, let result): handleResponse(id, result, line)
        case .notification(let method, let params): handleNotification(method, params, line)
        case .request(let id, let method, let params): handleWorkerRequest(id, method, params)
        }
    }

    private func stray(_ line: ArraySlice<UInt8>, because reason: String) {
        strayLines += 1
        onEvent(.notice("stray line \(strayLines) (\(WorkerText.line(reason, limit: 400))): \(escapedPrefix(line))"))
        if strayLines > Self.maxStrayLines {
            kill(.protocolViolation, "the worker wrote more than \(Self.maxStrayLines) lines that are not protocol messages")
        }
    }

    // MARK: - Messages

    private func handleResponse(_ id: RPCID, _ result: Result<JSONValue, RPCError>, _ line: ArraySlice<UInt8>) {
        guard case .number(let number) = id, let purpose = pending.removeValue(forKey: number) else {
            return stray(line, because: "response to unknown id \(id)")
        }
        switch purpose {
        case .initialize: initialized(result)
        case .run: runAnswered(result)
        case .shutdown, .ping: break
        }
    }

    private func initialized(_ result: Result<JSONValue, RPCError>) {
        guard phase == .initializing else { return }
        let info: InitializeResult
        do {
            info = try InitializeResult(json: result.get())
        } catch let error as RPCError {
            return kill(.startupFailed, "the worker refused initialize: \(error)")
        } catch {
            return kill(.startupFailed, "bad initialize result: \(error)")
        }
        guard info.protocolVersion == protocolVersion else {
            return kill(
                .startupFailed,
                "the worker speaks protocol version \(info.protocolVersion); this supervisor speaks \(protocolVersion)")
        }
        plugin = info
        phase = .running
        if request.handshakeOnly {
            answer = .result
            output = .null
            return beginStop()
        }
        sendRun()
    }

    private func sendRun() {
        runsServed += 1
        send(request: .run, method: Method.run, params: RunParams(runID: runID, input: request.input, budget: budget).json)
        let remaining = budget.deadlineMs - unixMilliseconds()
        after(max(0, remaining)) {
            self.beginCancel(.timeout, reason: "deadline", message: "the run passed its deadline")
        }
    }

    private func runAnswered(_ result: Result<JSONValue, RPCError>) {
        guard answer == .none else { return }
        switch result {
        case .success(let value):
            do {
                let parsed = try RunResult(json: value)
                answer = .result
                output = parsed.output
                resultCredits = parsed.credits
                if let total = parsed.credits, total > budget.credits, stop == nil {
                    stop = .creditsExhausted
                    stopMessage = "the worker reported \(total) credits against a budget of \(budget.credits)"
                }
            } catch {
                answer = .error
                runError = RPCError(code: ErrorCode.invalidParams, message: "bad run result: \(error)")
            }
        case .failure(var error):
            answer = .error
            error.message = WorkerText.line(error.message)
            runError = error
        }
        if mayServeAgain { return becomeIdle() }
        beginStop()
    }

    /// Answered cleanly, by a worker that takes further runs, with none of its calls left
    /// in flight (their charges belong to this run, which is settled once it returns).
    private var mayServeAgain: Bool {
        reusable && stop == nil && plugin?.capabilities["sequentialRuns"]?.boolValue == true
            && callsInFlight.withLock { $0.isEmpty } && stdin.withLock { $0.pending == 0 }
    }

    /// Reports the run and keeps the worker for the next one; its timers end with the run.
    private func becomeIdle() {
        generation += 1
        for timer in timers { timer.cancel() }
        timers = []
        phase = .idle
        let cpu = (process?.cpuNanoseconds() ?? 0) / 1_000_000
        let usage = ExitInfo(exitCode: nil, signal: nil, cpuMs: cpu, peakMemoryBytes: process?.memoryPeakBytes() ?? 0)
        var report = report(exit: usage)
        report.exit = nil
        answerRun?(report)
        answerRun = nil
    }

    private func handleNotification(_ method: String, _ params: JSONValue?, _ line: ArraySlice<UInt8>) {
        do {
            switch method {
            case Method.usage:
                let credits = try UsageParams(json: params).credits
                reportedCredits = reportedCredits + credits
                account?.setReported(reportedCredits)
                onEvent(.usage(credits))
                let gatewayCredits = (account?.charged ?? .zero) + (account?.stepCredits ?? .zero)
                if reportedCredits + gatewayCredits > budget.credits {
                    let calls = gatewayCredits > .zero ? " and \(gatewayCredits) for gateway calls" : ""
                    beginCancel(
                        .creditsExhausted, reason: "credits_exhausted",
                        message: "the worker reported \(reportedCredits) credits\(calls) against a budget of \(budget.credits)")
                }
            case Method.progress: showProgress(try ProgressParams(json: params))
            case Method.log: showLog(try LogParams(json: params))
            default:
                guard unknownNotifications.count < Self.maxUnknownNotifications else {
                    return stray(line, because: "more than \(Self.maxUnknownNotifications) unknown notification names")
                }
                if unknownNotifications.insert(method).inserted {
                    onEvent(.notice("ignored unknown notification \(escapedPrefix(Array(method.utf8)[...]))"))
                }
            }
        } catch {
            stray(line, because: "malformed \(method) notification: \(error)")
        }
    }

    private func showProgress(_ progress: ProgressParams) {
        var shown = progress
        shown.message = progress.message.flatMap { textBudget.admit(text: $0) }
        if shown.message == nil && progress.message != nil { noteDropping() }
        onEvent(.progress(shown))
    }

    private func showLog(_ log: LogParams) {
        guard let message = textBudget.admit(text: log.message) else { return noteDropping() }
        onEvent(.log(LogParams(level: log.level, message: message)))
    }

    private func noteDropping() {
        guard textBudget.justStartedDropping else { return }
        onEvent(.notice(
            "the worker's log and progress text passed \(WorkerText.maxRunBytes / 1024) KiB in this run; "
                + "later messages are dropped and counted in the report"))
    }

    private func handleWorkerRequest(_ id: RPCID, _ method: String, _ params: JSONValue?) {
        if callsInFlight.withLock({ $0.contains(id) }) {
            write(RPCMessage.response(id: id, result: .failure(RPCError(
                code: ErrorCode.invalidRequest, message: "duplicate request id"))).line())
            return stray(Array("request id \(id)".utf8)[...], because: "reused the id of a request still in flight")
        }
        let result: Result<JSONValue, RPCError>
        switch method {
        case Method.ping: result = .success([:])
        case Method.gatewayCall where gateway != nil:
            return callGateway(id, params)
        case Method.routineCall where steps != nil:
            return callRoutine(id, params)
        case Method.gatewayCall, Method.routineCall:
            result = .failure(RPCError(code: ErrorCode.notAvailable, message: "\(method) is not available in this supervisor"))
        default:
            result = .failure(RPCError(code: ErrorCode.methodNotFound, message: "method not found: \(method)"))
        }
        write(RPCMessage.response(id: id, result: result).line())
    }

    /// Hands the call to the gateway, on `queue` or on the HTTP engine's thread (see
    /// `readOnEngine`); the answer is written to the worker's stdin from whichever thread
    /// finishes the call, while the session goes on reading and writing other messages.
    private func callGateway(_ id: RPCID, _ params: JSONValue?) {
        let answer = answerer(id)
        let call: GatewayCallParams
        do {
            call = try GatewayCallParams(json: params)
        } catch {
            return answer(.failure(RPCError(code: ErrorCode.invalidParams, message: "bad gateway/call: \(error)")))
        }
        guard let gateway, let caller = caller.withLock({ $0 }) else {
            return answer(.failure(GatewayFailure(.invalidRequest, "gateway calls are taken only while the run runs").rpcError))
        }
        guard callsInFlight.withLock({ $0.count < Self.maxCallsInFlight }) else {
            return answer(.failure(GatewayFailure(
                .rateLimited, "more than \(Self.maxCallsInFlight) gateway calls in flight", retryAfterMs: 10).rpcError))
        }
        let done = track(id)
        gateway.call(call, caller: caller) { done($0.map(\.json).mapError(\.rpcError)) }
    }

    /// Runs a child step from this run's reservation; its answer comes when the step ends.
    private func callRoutine(_ id: RPCID, _ params: JSONValue?) {
        let answer = answerer(id)
        let call: RoutineCallParams
        do {
            call = try RoutineCallParams(json: params)
        } catch {
            return answer(.failure(RPCError(code: ErrorCode.invalidParams, message: "bad routine/call: \(error)")))
        }
        guard let steps, phase == .running, callsInFlight.withLock({ $0.count < Self.maxCallsInFlight }) else {
            return answer(.failure(RPCError(code: ErrorCode.routineFailed, message: "routine calls are taken only while the run runs")))
        }
        steps.call(call, callerGroups: process?.cgroups, reply: track(id))
    }

    /// Answers the worker's request `id` from any thread.
    private func answerer(_ id: RPCID) -> @Sendable (Result<JSONValue, RPCError>) -> Void {
        { self.write(RPCMessage.response(id: id, result: $0).line(), onQueue: false) }
    }

    /// Counts `id` in flight until the returned closure answers it.
    private func track(_ id: RPCID) -> @Sendable (Result<JSONValue, RPCError>) -> Void {
        callsInFlight.withLock { _ = $0.insert(id) }
        let answer = answerer(id)
        return { result in
            // Out of the set before the worker can see the answer and reuse the id.
            self.callsInFlight.withLock { _ = $0.remove(id) }
            answer(result)
        }
    }

    // MARK: - Writing

    private func send(request purpose: Pending, method: String, params: JSONValue?) {
        let id = nextID
        nextID += 1
        pending[id] = purpose
        write(RPCMessage.request(id: .number(id), method: method, params: params).line())
    }

    /// Writes a line, or queues what the pipe does not take now. On `queue`, or, for gateway
    /// and routine answers, from any thread (`onQueue: false`): the write happens at once
    /// and only the reaction to a full pipe hops to `queue`.
    private func write(_ bytes: [UInt8], onQueue: Bool = true) {
        let outcome = stdin.withLock { $0.append(bytes, limit: maxPendingOutput) }
        guard outcome == .overflow || outcome == .blocked else { return }
        let react: @Sendable () -> Void = {
            guard outcome == .overflow else { return self.waitUntilWritable() }
            self.kill(.protocolViolation, "the worker does not read its stdin (\(self.stdin.withLock { $0.pending }) bytes waiting)")
        }
        if onQueue { react() } else { queue.async(execute: react) }
    }

    /// The pipe can take more; on `queue`.
    private func flush() {
        guard stdin.withLock({ $0.drain() }) == .written else { return }
        if let writeSource, !writeSuspended {
            writeSource.suspend()
            writeSuspended = true
        }
        if phase == .stopping { closeStdin() }
    }

    private func waitUntilWritable() {
        // A wait asked for from another thread may arrive after stdin was closed, when its
        // fd number may already belong to someone else.
        guard let fd = process?.stdinFD, stdin.withLock({ $0.open }) else { return }
        if let writeSource {
            if writeSuspended {
                writeSuspended = false
                writeSource.resume()
            }
            return
        }
        let source = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: queue)
        source.setEventHandler { self.flush() }
        source.activate()
        writeSource = source
    }

    private func closeStdin() {
        guard let process, stdin.withLock({ $0.close() }) else { return }
        guard let writeSource else {
            close(process.stdinFD)
            return
        }
        let fd = process.stdinFD
        writeSource.setCancelHandler { close(fd) }
        if writeSuspended {
            writeSuspended = false
            writeSource.resume()
        }
        writeSource.cancel()
    }

    // MARK: - Stopping

    /// Deadline, credits or user: tell the worker, give it `cancelGrace` to answer.
    private func beginCancel(_ reason: StopReason, reason wireReason: String, message: String) {
        // Once the run has answered, a deadline or a cancel arriving late changes nothing.
        guard phase != .finished, phase != .idle, stop == nil, answer == .none else { return }
        stop = reason
        stopMessage = message
        guard phase == .running, answer == .none else { return beginStop() }
        write(RPCMessage.notification(method: Method.cancel, params: CancelParams(runID: runID, reason: wireReason).json).line())
        after(request.timing.cancelGraceMs) { self.beginStop() }
    }

    /// shutdown → close stdin → exitGrace → SIGTERM → termGrace → SIGKILL to the whole run.
    private func beginStop() {
        guard phase == .running || phase == .initializing || phase == .idle else { return }
        phase = .stopping
        process?.snapshotTree()
        send(request: .shutdown, method: Method.shutdown, params: nil)
        if stdin.withLock({ $0.pending == 0 }) { closeStdin() }
        after(request.timing.exitGraceMs) {
            self.process?.terminate()
            self.after(self.request.timing.termGraceMs) { self.killAndWatch() }
        }
    }

    /// Ends the worker at once: the stream is unusable or the worker never started.
    private func kill(_ reason: StopReason, _ message: String) {
        guard phase != .finished else { return }
        if stop == nil || reason == .protocolViolation {
            stop = reason
            stopMessage = message
        }
        phase = .stopping
        closeStdin()
        killAndWatch()
    }

    /// SIGKILL to the run. The pidfd says when the worker is gone; polling as well costs
    /// nothing here and means a lost wakeup can never hang the supervisor.
    private func killAndWatch() {
        process?.killAll()
        guard !watchingExit else { return }
        watchingExit = true
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + .milliseconds(200), repeating: .milliseconds(200))
        timer.setEventHandler {
            guard self.phase != .finished, let process = self.process else { return }
            if process.hasExited() { self.workerExited() } else { process.killAll() }
        }
        timer.activate()
        timers.append(timer)
    }

    /// Holds the run's whole tree to its CPU limit, where a cgroup counts its CPU time:
    /// RLIMIT_CPU holds each process only on its own. Checked while the worker lives, and
    /// once more when it is gone (`reap`).
    private func watchCPU() {
        guard limits.cpuSeconds != nil, process?.countsTreeCPU == true else { return }
        after(Int64(VerdictClassifier.cpuCheckMs), repeating: true) {
            guard self.stop == nil, let used = self.process?.cpuNanoseconds() else { return }
            self.stopIfOverCPU(used) { self.kill(.cpuLimit, $0) }
        }
    }

    /// Calls `stop` with why, once the tree has used more CPU time than its limit this run.
    private func stopIfOverCPU(_ usedNanoseconds: Int64, _ stop: (String) -> Void) {
        let message = VerdictClassifier.cpuOverrun(usedNanoseconds: usedNanoseconds - cpuAtRunStart, limits: limits)
        if let message { stop(message) }
    }

    private func after(_ milliseconds: Int64, repeating: Bool = false, _ body: @escaping () -> Void) {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        let interval = DispatchTimeInterval.milliseconds(Int(clamping: milliseconds))
        timer.schedule(deadline: .now() + interval, repeating: repeating ? interval : .never)
        let generation = self.generation
        timer.setEventHandler {
            guard self.phase != .finished, self.generation == generation else { return }
            body()
        }
        timer.activate()
        timers.append(timer)
    }

    // MARK: - End

    private func workerExited() {
        guard phase != .finished, !exiting, let process else { return }
        exiting = true
        guard stdoutOnEngine, let gateway else { return drainAndReap(process) }
        afterEngineReading = { self.drainAndReap(process, closingStdout: true) }
        gateway.unwatch(process.stdoutFD)
    }

    private func drainAndReap(_ process: WorkerProcess, closingStdout: Bool = false) {
        // The worker may have written its answer just before exiting: read what is there,
        // before reaping, so its pid cannot be reused while we may still signal it.
        if closingStdout {
            Self.drain(process.stdoutFD) { stdoutData($0) }
            close(process.stdoutFD)
            close(process.stdoutHoldFD)
        } else if let stdoutSource, !stdoutSource.isCancelled {
            Self.drain(process.stdoutFD) { stdoutData($0) }
        }
        if let stderrSource, !stderrSource.isCancelled { Self.drain(process.stderrFD) { stderrTail.append($0) } }
        // Reaping makes the pidfd hang up (Linux 6.9+), and libdispatch must never see a
        // hangup on a source it still watches (see `WorkerProcess.stdoutHoldFD`); its
        // EPOLLONESHOT re-arm still reports EPOLLHUP. So cancel first: the cancel handler,
        // which runs after the pidfd is unregistered, reaps.
        guard let exitSource else { return reap(process) }
        exitSource.cancel()
    }

    private func reap(_ process: WorkerProcess) {
        guard phase != .finished else { return }
        var exit = process.reap()
        if let tree = process.cleanUp() {
            exit.cpuMs = tree / 1_000_000
            // However the worker ended, a tree that used more than its limit gets `cpu_limit`.
            if stop == nil {
                stopIfOverCPU(tree) { message in
                    stop = .cpuLimit
                    stopMessage = message
                }
            }
        }
        deniedCalls = process.deniedCalls()
        finish(exit: exit)
    }

    private func finish(exit: ExitInfo?) {
        phase = .finished
        for timer in timers { timer.cancel() }
        timers = []
        steps?.endCalls()
        closeStdin()
        stdoutSource?.cancel()
        stderrSource?.cancel()
        exitSource?.cancel()
        directory?.removeLater()
        answerRun?(report(exit: exit))
        answerRun = nil
    }

    private func report(exit: ExitInfo?) -> RunReport {
        let wall = ContinuousClock.now - startedAt
        let wallMs = wall.components.seconds * 1000 + wall.components.attoseconds / 1_000_000_000_000_000
        let exitInfo = exit ?? ExitInfo(exitCode: nil, signal: nil, cpuMs: 0, peakMemoryBytes: 0)
        let verdict = VerdictClassifier.classify(
            stop: stop, answer: answer, initialized: plugin != nil, exit: exitInfo, limits: limits)
        let reported = max(reportedCredits, resultCredits ?? .zero)
        let gatewayCredits = account?.charged ?? .zero
        return RunReport(
            runID: runID,
            pid: process?.pid,
            verdict: verdict,
            message: verdict == .ok ? nil : WorkerText.line(stopMessage ?? describe(verdict, exit)),
            output: verdict == .ok ? output : nil,
            error: verdict == .error ? runError : nil,
            usage: RunUsage(
                // What it declares; `Runtime.exec` has the ledger's rule charge it.
                credits: reported + gatewayCredits, reportedCredits: reported,
                // The worker's CPU since this run began: a kept worker's earlier runs are not this one's.
                gatewayCredits: gatewayCredits, wallMs: wallMs, cpuMs: max(0, exitInfo.cpuMs - cpuAtRunStart / 1_000_000),
                memoryPeakBytes: exitInfo.peakMemoryBytes),
            reserved: Amounts(credits: budget.credits, timeMs: request.wallTimeMs, memoryBytes: request.memoryBytes),
            stderrTail: WorkerText.lines(stderrTail.text),
            exit: exit,
            plugin: plugin,
            containment: process?.containment ?? "none",
            ledgerNode: nil,
            sandbox: sandboxReport(),
            workerRun: runsServed,
            droppedMessages: textBudget.dropped)
    }

    private func sandboxReport() -> SandboxReport? {
        guard let sandbox else { return nil }
        var report = SandboxReport(sandbox)
        report.deniedSyscalls = deniedCalls.names
        report.deniedCalls = deniedCalls.calls
        report.deniedCallsCapped = deniedCalls.capped
        // What the spawn really set up, not only what the host offered.
        if let process {
            let missing = Set(report.applied).intersection(SandboxLayer.cgroups).subtracting(process.attachedCgroups)
            report.applied.removeAll { missing.contains($0) }
            report.notEnforced = (report.notEnforced + missing).sorted()
        }
        return report
    }

    private func describe(_ verdict: Verdict, _ exit: ExitInfo?) -> String {
        let how = exit.map { exit in
            if let signal = exit.signal { return "was killed by signal \(signal)" }
            return "exited with status \(exit.exitCode ?? -1)"
        } ?? "ended"
        switch verdict {
        case .error: return "the worker answered the run with an error"
        case .cpuLimit: return "the worker used its CPU limit of \(limits.cpuSeconds ?? 0) s and \(how)"
        case .memoryLimit: return "the worker ran out of its \(limits.dataBytes ?? 0) bytes of memory and \(how)"
        case .startupFailed: return "the worker \(how) before answering initialize"
        default: return "the worker \(how) without answering the run"
        }
    }
}

func unixMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}

/// Printable, bounded view of a line for logs.
func escapedPrefix(_ line: ArraySlice<UInt8>, limit: Int = 200) -> String {
    var text = ""
    for byte in line.prefix(limit) {
        switch byte {
        case 0x20..<0x7F where byte != 0x5C: text.unicodeScalars.append(Unicode.Scalar(byte))
        default: text += "\\x" + String(byte, radix: 16).leftPadded(to: 2)
        }
    }
    return line.count > limit ? text + "…" : text
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// The last 64 KiB of a worker's stderr, with lines cut at 64 KiB.
struct StderrTail {
    static let limit = 64 * 1024
    private var bytes: [UInt8] = []
    private var lineLength = 0

    mutating func append(_ chunk: UnsafeRawBufferPointer) {
        for byte in chunk {
            if byte == 0x0A {
                lineLength = 0
                bytes.append(byte)
            } else if lineLength < Self.limit {
                lineLength += 1
                bytes.append(byte)
                if lineLength == Self.limit { bytes.append(contentsOf: Array("…[cut]".utf8)) }
            }
        }
        if bytes.count > 2 * Self.limit { bytes.removeFirst(bytes.count - Self.limit) }
    }

    var text: String {
        String(decoding: bytes.suffix(Self.limit), as: UTF8.self)
    }
}

/// Bytes waiting for a worker's stdin, and whether it is still open.
private struct Outgoing {
    enum Outcome { case written, blocked, overflow, closed }

    var fd: Int32 = -1
    var open = true
    private var bytes: [UInt8] = []
    /// How much of `bytes` is written; compacted when all of it is.
    private var sent = 0

    var pending: Int { bytes.count - sent }

    mutating func append(_ line: [UInt8], limit: Int) -> Outcome {
        guard open, fd >= 0 else { return .closed }
        guard pending + line.count <= limit else { return .overflow }
        bytes += line
        return drain()
    }

    /// Writes what the pipe takes now.
    mutating func drain() -> Outcome {
        guard open, fd >= 0 else { return .closed }
        while sent < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + sent, $0.count - sent) }
            if written > 0 {
                sent += written
                continue
            }
            if written < 0 && errno == EINTR { continue }
            if written < 0 && errno == EAGAIN { return .blocked }
            // EPIPE: the worker closed its stdin; its exit will tell the rest.
            break
        }
        bytes.removeAll(keepingCapacity: bytes.count <= 65536)
        sent = 0
        return .written
    }

    /// Returns whether it was open: whoever closes it closes the fd.
    mutating func close() -> Bool {
        defer { open = false }
        return open
    }
}
