import Glibc
import PurserProtocol
import PurserRuntime
import PurserSandbox

/// An answer to one of the checker's requests, and the message as it came.
struct Answer {
    let result: Result<JSONValue, RPCError>
    let raw: JSONValue
}

/// Who the checker speaks to, and so how it answers the other side's requests.
enum Peer {
    /// As a supervisor without gateway or ledger.
    case worker
    /// As an MCP client that offers nothing but `ping` (no sampling, roots or elicitation).
    case mcpServer
}

/// One worker in the sandbox (or an MCP server), spoken to as the supervisor speaks to it, one exchange at a
/// time: poll(2) on its pipes and its pidfd, on the check's own thread, no Dispatch source.
/// Every wait ends by the check's deadline. The worker's own requests are answered as a
/// supervisor without gateway or ledger answers them; everything else it writes goes to
/// `transcript` for the checks that judge it.
final class WorkerConnection {
    let options: ConformanceOptions
    let peer: Peer
    let runID = Runtime.makeRunID()
    private let worker: LaunchedWorker
    private var process: WorkerProcess { worker.process }
    private let deadline: ContinuousClock.Instant
    private var stdoutLines: LineSplitter
    private var stderrLines = LineSplitter(limit: 64 * 1024)
    /// Messages read but not yet taken, oldest first.
    private var inbox: [(message: RPCMessage, raw: JSONValue)] = []
    private var inboxStart = 0
    /// Answers that came before their check asked for them.
    private var stash: [RPCID: Answer] = [:]
    /// The checker's requests not answered yet.
    private var awaiting: Set<RPCID> = []
    private var nextID: Int64 = 1
    private var stdinOpen = true
    /// A line could not be written in time: the stream is cut mid-line, nothing more goes.
    private var stdinStuck = false
    private(set) var transcript = Transcript()
    private(set) var exitInfo: ExitInfo?

    init(worker: LaunchedWorker, options: ConformanceOptions, timeLimitMs: Int64, peer: Peer = .worker) {
        self.worker = worker
        self.options = options
        self.peer = peer
        self.deadline = .now + .milliseconds(timeLimitMs)
        stdoutLines = LineSplitter(limit: options.maxLineBytes)
    }

    /// The end of a wait of `milliseconds`, never past the check's deadline.
    func within(_ milliseconds: Int64) -> ContinuousClock.Instant {
        min(.now + .milliseconds(milliseconds), deadline)
    }

    // MARK: - Writing

    @discardableResult
    func request(_ method: String, _ params: JSONValue?) throws(CheckFailure) -> RPCID {
        let id = RPCID.number(nextID)
        nextID += 1
        awaiting.insert(id)
        try send(.request(id: id, method: method, params: params))
        return id
    }

    func notify(_ method: String, _ params: JSONValue?) throws(CheckFailure) {
        try send(.notification(method: method, params: params))
    }

    /// Writes one line, waiting for room in the pipe until the check's deadline, or
    /// `milliseconds` if given. Once a line could not be written, nothing more is.
    func send(_ message: RPCMessage, within milliseconds: Int64? = nil) throws(CheckFailure) {
        let line = message.line()
        let end = milliseconds.map { within($0) } ?? deadline
        var offset = 0
        while offset < line.count {
            guard stdinOpen else { throw CheckFailure("stdin is closed") }
            guard !stdinStuck else { throw CheckFailure("\(party) does not read its stdin") }
            let written = line.withUnsafeBytes { write(process.stdinFD, $0.baseAddress! + offset, $0.count - offset) }
            if written > 0 {
                offset += written
                continue
            }
            switch errno {
            case EINTR: continue
            case EAGAIN:
                // The pipe is full: read meanwhile, or a worker blocked on its stdout never drains it.
                guard ContinuousClock.now < end else {
                    stdinStuck = true
                    throw CheckFailure("\(party) does not read its stdin")
                }
                pump(until: min(within(10), end))
            case EPIPE:
                // Usually it is gone: say how it ended.
                _ = awaitExit(within: options.exitGraceMs)
                throw CheckFailure("\(party) closed its stdin\(exitNote)")
            default: throw CheckFailure("writing to \(party): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// As the supervisor does after `shutdown`: the worker then sees end of file.
    func closeStdin() {
        guard stdinOpen else { return }
        stdinOpen = false
        close(process.stdinFD)
    }

    // MARK: - Waiting

    /// The answer to `id`, or a failure naming `what` was not answered in time.
    func answer(to id: RPCID, within milliseconds: Int64, _ what: String) throws(CheckFailure) -> Answer {
        let end = within(milliseconds)
        while true {
            if let answer = stash.removeValue(forKey: id) { return answer }
            guard step(until: end) else {
                throw CheckFailure(exitInfo != nil
                    ? "\(party) ended without answering \(what)\(exitNote)\(stderrNote)"
                    : "no answer to \(what) within \(milliseconds) ms")
            }
        }
    }

    /// How the worker ended, once it did within `milliseconds`; what it wrote meanwhile is taken.
    func awaitExit(within milliseconds: Int64) -> ExitInfo? {
        let end = within(milliseconds)
        while exitInfo == nil, step(until: end) {}
        return exitInfo
    }

    /// Takes whatever the worker wrote so far, without waiting.
    func takeWritten() {
        while step(until: .now) {}
    }

    /// ", which exited with status 0", or "" while it runs.
    var exitNote: String {
        guard let exitInfo else { return "" }
        return ", which " + Self.describe(exitInfo)
    }

    /// "the worker", or "the server" for an MCP server, in what a check says.
    var party: String { peer == .worker ? "the worker" : "the server" }

    /// An MCP server that ended says why on stderr, its only channel for it (a worker's
    /// stderr is its own business): the last line, for the failure's detail.
    private var stderrNote: String {
        guard peer == .mcpServer, let last = transcript.lastStderrLine else { return "" }
        return "; its stderr ended: \(last)"
    }

    static func describe(_ exit: ExitInfo) -> String {
        if let code = exit.exitCode { return "exited with status \(code)" }
        return "was killed by signal \(exit.signal ?? 0)"
    }

    /// Takes one message, reading until `end` for one; false when none came.
    private func step(until end: ContinuousClock.Instant) -> Bool {
        while inboxStart == inbox.count {
            if exitInfo != nil || ContinuousClock.now >= end { return false }
            pump(until: end)
        }
        let (message, raw) = inbox[inboxStart]
        inboxStart += 1
        if inboxStart == inbox.count {
            inbox.removeAll(keepingCapacity: true)
            inboxStart = 0
        }
        route(message, raw)
        return true
    }

    private func route(_ message: RPCMessage, _ raw: JSONValue) {
        switch message {
        case .response(let id, let result):
            if awaiting.remove(id) != nil {
                stash[id] = Answer(result: result, raw: raw)
            } else {
                transcript.unmatched.append(id)
            }
        case .notification(let method, let params):
            transcript.notification(method, params)
        case .request(let id, let method, _):
            transcript.requests.append(method)
            answerWorker(id, method)
        }
    }

    /// A supervisor with no gateway and no ledger: `ping` {}, `gateway/call` and
    /// `routine/call` -32002, anything else -32601 (§9). An MCP client: `ping` {}, anything
    /// else -32601.
    private func answerWorker(_ id: RPCID, _ method: String) {
        let result: Result<JSONValue, RPCError>
        switch (method, peer) {
        case (Method.ping, _): result = .success([:])
        case (Method.gatewayCall, .worker), (Method.routineCall, .worker):
            result = .failure(RPCError(code: ErrorCode.notAvailable, message: "not available"))
        default: result = .failure(RPCError(code: ErrorCode.methodNotFound, message: "method not found"))
        }
        do {
            try send(.response(id: id, result: result), within: options.answerMs)
        } catch {
            transcript.note("could not answer \(party)'s \(method): \(error.message)")
        }
    }

    // MARK: - Reading

    /// One poll of stdout, stderr and the pidfd, waiting until `end` at most.
    private func pump(until end: ContinuousClock.Instant) {
        guard exitInfo == nil else { return }
        var fds = [process.stdoutFD, process.stderrFD, process.pidFD].map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let left = min(60_000, max(0, ((end - .now) / .milliseconds(1)).rounded(.up)))
        let ready = poll(&fds, nfds_t(fds.count), Int32(left))
        guard ready > 0 else { return }
        if fds[0].revents != 0 { drain(process.stdoutFD, stdout: true) }
        if fds[1].revents != 0 { drain(process.stderrFD, stdout: false) }
        if fds[2].revents != 0 {
            // Gone: what it wrote before is still in the pipes (whose write ends we hold).
            drain(process.stdoutFD, stdout: true, all: true)
            drain(process.stderrFD, stdout: false, all: true)
            exitInfo = process.reap()
        }
    }

    /// Reads what is there: a few buffers, so that a flooding worker cannot hold the checker
    /// here; once the worker is gone, what it left (up to 64 MiB: a process it left behind
    /// may still be writing).
    private func drain(_ fd: Int32, stdout: Bool, all: Bool = false) {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var reads = 0
        while reads < (all ? 1024 : 16) {
            reads += 1
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return }
            if stdout {
                stdoutLines.feed(buffer[..<count]) { take($0) }
            } else {
                stderrLines.feed(buffer[..<count]) { piece in
                    if case .line(let line) = piece { transcript.stderrLine(line) }
                }
            }
        }
    }

    private func take(_ piece: LineSplitter.Piece) {
        switch piece {
        case .oversized(let bytes): transcript.oversized.append(bytes)
        case .line(let line):
            let raw: JSONValue
            let message: RPCMessage
            do {
                raw = try JSONParser.parse(line)
                message = try RPCMessage(json: raw)
            } catch {
                return transcript.stray(line, "\(error)")
            }
            guard inbox.count - inboxStart < Transcript.keptNotifications else { return transcript.droppedMessages += 1 }
            inbox.append((message, raw))
        }
    }

    // MARK: - End

    /// Kills what is left of the worker, reaps it and releases all it held.
    func finish() {
        closeStdin()
        if exitInfo == nil {
            process.killAll()
            kill(process.pid, SIGKILL)
            exitInfo = process.reap()
        }
        // Its seccomp listener's record goes once taken (the denied calls themselves are
        // the sandbox's business, not the protocol's).
        _ = process.deniedCalls()
        worker.end()
        for fd in [process.stdoutFD, process.stderrFD, process.stdoutHoldFD, process.stderrHoldFD, process.pidFD] {
            close(fd)
        }
    }
}
