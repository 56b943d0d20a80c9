import Foundation
import Glibc
import Logging
import PurserMCP
import PurserProtocol
import PurserRuntime
import Synchronization

/// The I/O of `purser mcp serve`: client lines from stdin (read on a thread of its own), one
/// task per call, and answers written to stdout whole, one line at a time.
final class MCPServeLoop: Sendable {
    let runtime: Runtime
    let offer: MCPOffer
    let team: String?
    let defaults: Amounts
    let allowDegraded: Bool
    /// Workers kept between the session's calls, as a swarm keeps them (`WorkerPool`): a
    /// session serves one team, so none is shared between teams.
    let workers: WorkerPool
    private let calls = Mutex<[RPCID: Task<Void, Never>]>([:])
    private let output = Mutex(())
    private let logger = Logger(label: "purser.mcp.serve")

    init(runtime: Runtime, offer: MCPOffer, team: String?, defaults: Amounts, allowDegraded: Bool, reuseUntrusted: Bool) {
        self.runtime = runtime
        self.offer = offer
        self.team = team
        self.defaults = defaults
        self.allowDegraded = allowDegraded
        workers = WorkerPool(capacity: Self.keptWorkers, reuseUntrusted: reuseUntrusted)
    }

    static let keptWorkers = 8

    func run() async {
        var session = MCPServerSession(tools: offer.descriptors, serverVersion: "0.1.0")
        for await line in StdinLines.stream() {
            guard case .line(let bytes) = line else {
                // Past the limit the stream has no trustworthy line boundary left: the session ends.
                sendUnaddressed(RPCError(code: ErrorCode.invalidRequest, message: "a line longer than \(defaultMaxLineBytes) bytes"))
                break
            }
            let message: RPCMessage
            do {
                message = try RPCMessage(line: bytes)
            } catch {
                sendUnaddressed(RPCError(code: ErrorCode.parseError, message: "\(error)"))
                continue
            }
            for action in session.receive(message) { perform(action) }
        }
        // The client hung up: what still runs is cancelled, and returns what it did not use.
        let running = calls.withLock { Array($0.values) }
        for task in running { task.cancel() }
        for task in running { await task.value }
        await workers.retireAll()
    }

    private func perform(_ action: MCPServerSession.Action) {
        switch action {
        case .send(let message): send(message)
        case .cancel(let id): calls.withLock { $0.removeValue(forKey: id) }?.cancel()
        case .call(let reply, let name, let arguments, let token):
            // Entered under the lock, so that a call that ends at once still finds its entry.
            calls.withLock { calls in
                calls[reply.id] = Task {
                    let result = await self.call(name, arguments: arguments, progressToken: token)
                    // A cancelled call is not answered; its entry is gone already.
                    guard self.calls.withLock({ $0.removeValue(forKey: reply.id) }) != nil else { return }
                    self.send(reply.message(result))
                }
            }
        }
    }

    private func call(_ name: String, arguments: JSONValue, progressToken: JSONValue?) async -> JSONValue {
        guard let entry = offer.entries[name] else { return MCPServerSession.failure("no tool named \(name)") }
        let launch: PluginLaunch
        do throws(RuntimeError) {
            launch = try PluginLaunch.open(entry.call, runtime: runtime)
        } catch {
            return MCPServerSession.failure("refused: \(error.message)")
        }
        defer { launch.close() }
        if let problem = entry.call.inputProblem(arguments) { return MCPServerSession.failure("refused: input \(problem)") }
        let request = runRequest(launch, arguments: arguments)
        do throws(RuntimeError) {
            let report = try await runtime.exec(request) { event in
                guard let progressToken, case .progress(let progress) = event else { return }
                self.send(MCPServerSession.progress(
                    token: progressToken, done: progress.fraction ?? 0, total: progress.fraction == nil ? nil : 1, message: progress.message))
            }
            return Self.answer(report, fromMCPTool: entry.call.tool != nil)
        } catch {
            logger.error("a tool call failed", metadata: ["tool": "\(name)", "error": "\(error.message)"])
            return MCPServerSession.failure("error: \(error.message)")
        }
    }

    private func runRequest(_ launch: PluginLaunch, arguments: JSONValue) -> RunRequest {
        let amounts = launch.call.manifest.defaultReservation ?? defaults
        var request = RunRequest(
            executable: launch.record.path, pluginName: launch.call.name, input: arguments, credits: amounts.credits,
            wallTimeMs: amounts.timeMs, memoryBytes: amounts.memoryBytes)
        launch.configure(&request, workers: workers)
        request.team = team
        request.allowDegraded = allowDegraded
        return request
    }

    /// A run's end as MCP sees it: ok is the tool's result; anything else a tool error naming
    /// the verdict and why, with what it used. Either way with the run's facts in `_meta`.
    static func answer(_ report: RunReport, fromMCPTool: Bool) -> JSONValue {
        MCPServerSession.withRun(outcome(report, fromMCPTool: fromMCPTool), run(report))
    }

    private static func outcome(_ report: RunReport, fromMCPTool: Bool) -> JSONValue {
        if report.verdict == .ok { return MCPServerSession.result(output: report.output, fromMCPTool: fromMCPTool) }
        let why = report.error?.message ?? report.message ?? ""
        let text = "\(report.verdict.rawValue): \(WorkerText.line(why)) (used \(report.usage.credits) of \(report.reserved.credits) credits)"
        return MCPServerSession.failure(text)
    }

    /// `_meta["purser/run"]`: the verdict, the credits, and which worker ran it (absent when
    /// none was started), as `purser run --json` names them.
    static func run(_ report: RunReport) -> JSONValue {
        var run: [String: JSONValue] = [
            "verdict": .string(report.verdict.rawValue),
            "credits": ["used": report.usage.credits.json, "reserved": report.reserved.credits.json],
        ]
        if let worker = report.worker { run["worker"] = worker }
        return .object(run)
    }

    /// An error about a line with no id to answer (JSON-RPC's `"id": null`).
    private func sendUnaddressed(_ error: RPCError) {
        let message: JSONValue = [
            "jsonrpc": "2.0", "id": .null, "error": ["code": .number(JSONNumber(error.code)), "message": .string(error.message)],
        ]
        write(message.serialized().utf8 + [0x0A])
    }

    private func send(_ message: RPCMessage) { write(message.line()) }

    private func write(_ bytes: [UInt8]) {
        output.withLock { _ in
            var written = 0
            while written < bytes.count {
                let count = bytes.withUnsafeBytes { Glibc.write(1, $0.baseAddress! + written, $0.count - written) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { return }
                written += count
            }
        }
    }
}

/// Stdin as lines, read on a thread of its own so that a blocked read holds no task.
enum StdinLines {
    static func stream() -> AsyncStream<LineFramer.Event> {
        AsyncStream { continuation in
            let thread = Thread {
                var framer = LineFramer()
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let count = read(0, &buffer, buffer.count)
                    if count < 0 && errno == EINTR { continue }
                    guard count > 0 else { break }
                    buffer.withUnsafeBytes { bytes in
                        framer.feed(UnsafeRawBufferPointer(rebasing: bytes[..<count])) { continuation.yield($0) }
                    }
                }
                continuation.finish()
            }
            thread.start()
        }
    }
}
