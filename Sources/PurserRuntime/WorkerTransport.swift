import Dispatch
import Glibc
import PurserGateway
import PurserProtocol
import PurserSandbox
import Synchronization

/// A worker's pipes: its stdout framed into lines, its stderr, and its stdin with the
/// answers the pipe has not taken yet.
///
/// Everything happens on the session's queue, with two exceptions. With a gateway, stdout
/// and its framer belong to the HTTP engine's thread until the worker exits (see
/// `readOnEngine`). And stdin is shared, so that a call's answer is written from the thread
/// that finished the call at once rather than after a hop through the queue.
final class WorkerTransport: @unchecked Sendable {
    /// What the session hears from the pipes, on its queue.
    struct Handlers {
        /// A line from stdout.
        var line: (ArraySlice<UInt8>) -> Void
        /// stdout grew a line past the limit: the stream cannot be trusted after this.
        var oversized: () -> Void
        var stderr: (UnsafeRawBufferPointer) -> Void
        /// stdin has more waiting than the worker may leave unread; how much.
        var overflow: (Int) -> Void
    }

    private let process: WorkerProcess
    private let queue: DispatchQueue
    private let gateway: Gateway?
    /// Answers waiting for a worker that does not read its stdin; past this it is a violation.
    private let maxPendingOutput: Int
    /// Dropped when the pipes are closed, and with them the session they point back to.
    private var handlers: Handlers?
    private var framer: LineFramer
    private let stdin: Mutex<Outgoing>
    private var stdoutSource: (any DispatchSourceRead)?
    private var stderrSource: (any DispatchSourceRead)?
    /// Created on the first EAGAIN, suspended while nothing waits; cancelled (and the fd
    /// closed in its cancel handler) only when stdin closes, so no fd is closed while a
    /// source may still be registered for it and its number reused by another worker.
    private var writeSource: (any DispatchSourceWrite)?
    private var writeSuspended = false
    /// stdin closes once what waits for it is written (the worker is being stopped).
    private var closeWhenWritten = false
    /// stdout is no longer read into lines: the stream broke, or the worker is done.
    private var muted = false
    /// Lines the engine's thread handed to the queue that the queue has not finished yet.
    private let linesQueued = Atomic<Int>(0)
    /// The worker's stdout is read on the HTTP engine's thread (see `readOnEngine`).
    private var stdoutOnEngine = false
    /// What the worker's exit waits for: the engine's thread to stop reading stdout.
    private var afterEngineReading: (() -> Void)?
    /// Owned by the engine's thread while it reads: the stream was cut at an oversized line.
    private var engineStopped = false

    init(process: WorkerProcess, queue: DispatchQueue, gateway: Gateway?, maxLineBytes: Int, handlers: Handlers) {
        self.process = process
        self.queue = queue
        self.gateway = gateway
        self.maxPendingOutput = maxLineBytes + (1 << 20)
        self.handlers = handlers
        self.framer = LineFramer(maxLineBytes: maxLineBytes)
        self.stdin = Mutex(Outgoing(fd: process.stdinFD))
    }

    /// Starts reading. `onEngine`: on the HTTP engine's thread, for a line nothing before it
    /// waits on; true if it was taken there.
    func start(onEngine: @escaping @Sendable (ArraySlice<UInt8>) -> Bool) {
        if let gateway {
            readOnEngine(gateway, onEngine)
        } else {
            watchStdout()
        }
        stderrSource = watchReads(process.stderrFD, holding: process.stderrHoldFD) { self.handlers?.stderr($0) }
    }

    /// Reads no more lines from stdout: what the worker writes from now on is not heard.
    func mute() {
        muted = true
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
            if fd == self.process.stdoutFD { self.stdoutSource?.cancel() } else { self.stderrSource?.cancel() }
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
    /// `gateway/call` goes to the wire from there, with no hop through the queue (on two
    /// cores each hop is a wake-up that costs about as much as the call itself). Every other
    /// line, and a call that must wait its turn behind one, is handed to the queue in order.
    private func readOnEngine(_ gateway: Gateway, _ onEngine: @escaping @Sendable (ArraySlice<UInt8>) -> Bool) {
        stdoutOnEngine = true
        let fd = process.stdoutFD
        gateway.watch(fd) {
            guard !Self.drain(fd, { self.engineData($0, onEngine) }) else { return }
            gateway.unwatch(fd)
        } ended: {
            self.queue.async { self.engineReadingEnded() }
        }
    }

    /// On the engine's thread, which owns `framer` while it reads.
    private func engineData(_ chunk: UnsafeRawBufferPointer, _ onEngine: (ArraySlice<UInt8>) -> Bool) {
        guard !engineStopped else { return }
        framer.feed(chunk) { event in
            switch event {
            case .line(let line):
                // Taken there only when nothing before it waits on the queue, so that the
                // session is seen exactly as it would be there.
                if linesQueued.load(ordering: .acquiring) == 0, onEngine(line) { return }
                handOff { self.handlers?.line(line) }
            case .oversized:
                engineStopped = true
                handOff { self.handlers?.oversized() }
            }
        }
    }

    private func handOff(_ body: @escaping @Sendable () -> Void) {
        linesQueued.add(1, ordering: .relaxed)
        queue.async {
            body()
            self.linesQueued.subtract(1, ordering: .releasing)
        }
    }

    /// The engine's thread no longer reads stdout: the exit asked for it, or the watch ended
    /// by itself (end of file), and the queue reads it from now on.
    private func engineReadingEnded() {
        stdoutOnEngine = false
        if let next = afterEngineReading {
            afterEngineReading = nil
            return next()
        }
        guard handlers != nil else { return }
        watchStdout()
    }

    private func watchStdout() {
        stdoutSource = watchReads(process.stdoutFD, holding: process.stdoutHoldFD) { self.stdoutData($0) }
    }

    private func stdoutData(_ chunk: UnsafeRawBufferPointer) {
        guard !muted, let handlers else { return }
        framer.feed(chunk) { event in
            switch event {
            case .line(let line): handlers.line(line)
            case .oversized: handlers.oversized()
            }
        }
    }

    /// The worker has exited: reads what it left in the pipes (it may have written its
    /// answer just before exiting), once the engine's thread no longer reads, then `then`.
    func workerExited(then: @escaping () -> Void) {
        guard stdoutOnEngine, let gateway else {
            drainLeftovers(closingStdout: false)
            return then()
        }
        afterEngineReading = {
            self.drainLeftovers(closingStdout: true)
            then()
        }
        gateway.unwatch(process.stdoutFD)
    }

    private func drainLeftovers(closingStdout: Bool) {
        if closingStdout {
            Self.drain(process.stdoutFD) { stdoutData($0) }
            close(process.stdoutFD)
            close(process.stdoutHoldFD)
        } else if let stdoutSource, !stdoutSource.isCancelled {
            Self.drain(process.stdoutFD) { stdoutData($0) }
        }
        if let stderrSource, !stderrSource.isCancelled { Self.drain(process.stderrFD) { handlers?.stderr($0) } }
    }

    /// Ends all reading and closes stdin; the session is let go.
    func end() {
        muted = true
        closeStdin()
        stdoutSource?.cancel()
        stderrSource?.cancel()
        handlers = nil
    }

    // MARK: - Writing

    /// Bytes written to stdin but not yet taken by the pipe.
    var pendingOutput: Int { stdin.withLock { $0.pending } }

    /// Writes a line, or queues what the pipe does not take now. On the queue, or, for
    /// call answers, from any thread (`onQueue: false`): the write happens at once and
    /// only the reaction to a full pipe hops to the queue.
    func write(_ bytes: [UInt8], onQueue: Bool = true) {
        let outcome = stdin.withLock { $0.append(bytes, limit: maxPendingOutput) }
        guard outcome == .overflow || outcome == .blocked else { return }
        let react: @Sendable () -> Void = {
            guard outcome == .overflow else { return self.waitUntilWritable() }
            self.handlers?.overflow(self.pendingOutput)
        }
        if onQueue { react() } else { queue.async(execute: react) }
    }

    /// Closes stdin at once if nothing waits to be written to it, else once all of it is.
    func closeStdinWhenWritten() {
        if pendingOutput == 0 { return closeStdin() }
        closeWhenWritten = true
    }

    /// The pipe can take more; on the queue.
    private func flush() {
        guard stdin.withLock({ $0.drain() }) == .written else { return }
        if let writeSource, !writeSuspended {
            writeSource.suspend()
            writeSuspended = true
        }
        if closeWhenWritten { closeStdin() }
    }

    private func waitUntilWritable() {
        // A wait asked for from another thread may arrive after stdin was closed, when its
        // fd number may already belong to someone else.
        guard stdin.withLock({ $0.open }) else { return }
        if let writeSource {
            if writeSuspended {
                writeSuspended = false
                writeSource.resume()
            }
            return
        }
        let source = DispatchSource.makeWriteSource(fileDescriptor: process.stdinFD, queue: queue)
        source.setEventHandler { self.flush() }
        source.activate()
        writeSource = source
    }

    func closeStdin() {
        guard stdin.withLock({ $0.close() }) else { return }
        let fd = process.stdinFD
        guard let writeSource else {
            close(fd)
            return
        }
        writeSource.setCancelHandler { close(fd) }
        if writeSuspended {
            writeSuspended = false
            writeSource.resume()
        }
        writeSource.cancel()
    }
}

/// Bytes waiting for a worker's stdin, and whether it is still open.
private struct Outgoing {
    enum Outcome { case written, blocked, overflow, closed }

    let fd: Int32
    var open = true
    private var bytes: [UInt8] = []
    /// How much of `bytes` is written; compacted when all of it is.
    private var sent = 0

    init(fd: Int32) {
        self.fd = fd
    }

    var pending: Int { bytes.count - sent }

    mutating func append(_ line: [UInt8], limit: Int) -> Outcome {
        guard open else { return .closed }
        guard pending + line.count <= limit else { return .overflow }
        bytes += line
        return drain()
    }

    /// Writes what the pipe takes now.
    mutating func drain() -> Outcome {
        guard open else { return .closed }
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
