import Glibc
@_exported public import PurserProtocol
import Synchronization

/// An error a routine answers its run with.
public struct PluginError: Error, Sendable {
    public var code: Int
    public var message: String
    public var data: JSONValue?

    public init(code: Int = ErrorCode.internalError, message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public static func invalidInput(_ message: String) -> PluginError {
        PluginError(code: ErrorCode.invalidParams, message: message)
    }
}

/// What a routine can see and say while it runs.
public final class RunContext: Sendable {
    public let runID: String
    public let budget: Budget
    private let output: ProtocolOutput
    private let calls: OutgoingCalls
    private let cancelled = Atomic<Bool>(false)

    init(runID: String, budget: Budget, output: ProtocolOutput, calls: OutgoingCalls) {
        self.runID = runID
        self.budget = budget
        self.output = output
        self.calls = calls
    }

    /// Runs a registered plugin as a child step, paid from this run's own reservation: the
    /// step gets `call.credits` of it and what it does not use comes back. A step that does
    /// not end ok throws `RPCError` with `data.verdict`.
    public func routine(_ call: RoutineCallParams) async throws -> RoutineCallResult {
        let answer = try await calls.request(Method.routineCall, call.json).get()
        return try RoutineCallResult(json: answer)
    }

    /// Calls an integration through the supervisor's gateway: the only way out to the
    /// network. A refusal throws `RPCError` with `data.reason` (see `GatewayReason`).
    public func gateway(_ call: GatewayCallParams) async throws -> GatewayCallResult {
        let answer = try await calls.request(Method.gatewayCall, call.json).get()
        return try GatewayCallResult(json: answer)
    }

    /// True once the supervisor sent `cancel` for this run.
    public var isCancelled: Bool { cancelled.load(ordering: .relaxed) }
    func markCancelled() { cancelled.store(true, ordering: .relaxed) }

    /// Reports spend as it happens; the supervisor stops a run that spends past its budget.
    public func reportUsage(_ credits: Credits) {
        output.send(.notification(method: Method.usage, params: UsageParams(credits: credits).json))
    }

    public func progress(_ fraction: Double? = nil, _ message: String? = nil) {
        let params = ProgressParams(runID: runID, fraction: fraction, message: message)
        output.send(.notification(method: Method.progress, params: params.json))
    }

    public func log(_ level: String = "info", _ message: String) {
        output.send(.notification(method: Method.log, params: LogParams(level: level, message: message).json))
    }
}

/// Serves protocol v1 on stdin/stdout for a routine written as one async function.
public enum Plugin {
    public typealias Handler = @Sendable (JSONValue, RunContext) async throws -> JSONValue

    /// Never returns: exits when the supervisor says `shutdown` or closes stdin.
    ///
    /// Declares `sequentialRuns`: `handler` is called once per run, so a trusted plugin's
    /// worker may be kept for the swarm's next run. A plugin whose handler keeps state that
    /// must not outlive a run passes `["sequentialRuns": false]` in `capabilities`.
    public static func serve(
        name: String, version: String, capabilities: [String: JSONValue] = [:], handler: @escaping Handler
    ) -> Never {
        let output = ProtocolOutput.takeStdout()
        let server = Server(
            calls: OutgoingCalls(output: output),
            info: InitializeResult(
                pluginName: name, pluginVersion: version,
                capabilities: ["cancel": true, "progress": true, "sequentialRuns": true].merging(capabilities) { $1 }),
            output: output, handler: handler)
        var framer = LineFramer()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { exit(0) }
            buffer.withUnsafeBytes { bytes in
                framer.feed(UnsafeRawBufferPointer(rebasing: bytes[0..<count])) { event in
                    switch event {
                    case .line(let line): server.handle(line)
                    case .oversized:
                        writeStderr("\(name): a line from the supervisor exceeded the line limit")
                        exit(1)
                    }
                }
            }
        }
    }
}

/// The protocol's own copy of stdout. fd 1 itself is pointed at stderr, so a stray
/// print() from the routine cannot corrupt the stream.
final class ProtocolOutput: Sendable {
    private let fd: Int32
    private let lock = Mutex(())

    private init(fd: Int32) { self.fd = fd }

    static func takeStdout() -> ProtocolOutput {
        let fd = fcntl(1, F_DUPFD_CLOEXEC, 3)
        guard fd >= 0 else {
            writeStderr("cannot duplicate stdout: \(String(cString: strerror(errno)))")
            exit(1)
        }
        dup2(2, 1)
        return ProtocolOutput(fd: fd)
    }

    func send(_ message: RPCMessage) {
        let line = message.line()
        lock.withLock { _ in
            var offset = 0
            while offset < line.count {
                let written = line.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { exit(1) }  // the supervisor is gone
                offset += written
            }
        }
    }
}

/// Dispatches messages; runs execute as tasks so a `cancel` can reach them.
private final class Server: Sendable {
    let info: InitializeResult
    let output: ProtocolOutput
    let handler: Plugin.Handler
    let calls: OutgoingCalls
    private let runs = Mutex<[String: (task: Task<Void, Never>, context: RunContext)]>([:])

    init(calls: OutgoingCalls, info: InitializeResult, output: ProtocolOutput, handler: @escaping Plugin.Handler) {
        self.calls = calls
        self.info = info
        self.output = output
        self.handler = handler
    }

    func handle(_ line: ArraySlice<UInt8>) {
        let message: RPCMessage
        do {
            message = try RPCMessage(line: line)
        } catch {
            writeStderr("\(info.pluginName): ignored a bad line from the supervisor: \(error)")
            return
        }
        switch message {
        case .request(let id, let method, let params): request(id, method, params)
        case .notification(Method.cancel, let params): cancel(params)
        case .response(let id, let result): calls.answered(id, result)
        case .notification: break
        }
    }

    private func request(_ id: RPCID, _ method: String, _ params: JSONValue?) {
        switch method {
        case Method.initialize:
            let version = params?["protocolVersion"]?.numberValue?.int64
            guard version == protocolVersion else {
                return reply(id, .failure(RPCError(
                    code: ErrorCode.unsupportedProtocolVersion,
                    message: "protocol version \(version.map(String.init) ?? "?") is not supported",
                    data: ["supported": [.number(JSONNumber(protocolVersion))]])))
            }
            reply(id, .success(info.json))
        case Method.run: startRun(id, params)
        case Method.ping: reply(id, .success([:]))
        case Method.shutdown:
            reply(id, .success([:]))
            exit(0)
        default:
            reply(id, .failure(RPCError(code: ErrorCode.methodNotFound, message: "method not found: \(method)")))
        }
    }

    private func startRun(_ id: RPCID, _ params: JSONValue?) {
        let run: RunParams
        do {
            run = try RunParams(json: params)
        } catch {
            return reply(id, .failure(RPCError(code: ErrorCode.invalidParams, message: error.description)))
        }
        let context = RunContext(runID: run.runID, budget: run.budget, output: output, calls: calls)
        // Started under the lock, so that a run ending at once cannot remove its entry
        // before it is there (a worker serves many runs; a stale entry would stay).
        runs.withLock { runs in
            let task = Task.detached { [self] in
                let result: Result<JSONValue, RPCError>
                do {
                    let output = try await self.handler(run.input, context)
                    result = context.isCancelled ? .failure(Self.cancelledError) : .success(["output": output])
                } catch is CancellationError {
                    result = .failure(Self.cancelledError)
                } catch let error as PluginError {
                    result = .failure(RPCError(code: error.code, message: error.message, data: error.data))
                } catch {
                    result = .failure(RPCError(code: ErrorCode.internalError, message: "\(error)"))
                }
                self.runs.withLock { _ = $0.removeValue(forKey: run.runID) }
                self.reply(id, result)
            }
            runs[run.runID] = (task, context)
        }
    }

    private static let cancelledError = RPCError(code: ErrorCode.cancelled, message: "cancelled")

    private func cancel(_ params: JSONValue?) {
        guard let runID = params?["runId"]?.stringValue, let run = runs.withLock({ $0[runID] }) else { return }
        run.context.markCancelled()
        run.task.cancel()
    }

    private func reply(_ id: RPCID, _ result: Result<JSONValue, RPCError>) {
        output.send(.response(id: id, result: result))
    }
}

/// Diagnostics go to fd 2 directly: stdio's `stderr` is shared mutable state to Swift 6.
func writeStderr(_ message: String) {
    let line = Array((message + "\n").utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// Requests from the worker to the supervisor, waiting for their answers by id.
final class OutgoingCalls: Sendable {
    private struct State {
        var nextID: Int64 = 1
        var waiting: [Int64: CheckedContinuation<Result<JSONValue, RPCError>, Never>] = [:]
    }

    private let output: ProtocolOutput
    private let state = Mutex(State())

    init(output: ProtocolOutput) { self.output = output }

    func request(_ method: String, _ params: JSONValue) async -> Result<JSONValue, RPCError> {
        await withCheckedContinuation { continuation in
            let id = state.withLock { state -> Int64 in
                let id = state.nextID
                state.nextID += 1
                state.waiting[id] = continuation
                return id
            }
            output.send(.request(id: .number(id), method: method, params: params))
        }
    }

    func answered(_ id: RPCID, _ result: Result<JSONValue, RPCError>) {
        guard case .number(let number) = id, let continuation = state.withLock({ $0.waiting.removeValue(forKey: number) }) else {
            return
        }
        continuation.resume(returning: result)
    }
}
