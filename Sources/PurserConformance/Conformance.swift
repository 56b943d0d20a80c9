public import PurserProtocol
public import PurserRuntime

/// What one check found about a worker, with the SPEC section it comes from.
public struct CheckOutcome: Sendable {
    public let name: String
    public let section: SpecSection
    public let summary: String
    public let result: CheckResult
    public let elapsedMs: Int64

    public var json: JSONValue {
        [
            "name": .string(name), "section": .string(section.number), "sectionTitle": .string(section.title),
            "status": .string(result.status.rawValue), "detail": .string(result.detail),
            "elapsedMs": .number(JSONNumber(elapsedMs)),
        ]
    }
}

/// `purser conformance`: a worker checked against protocol/SPEC.md, one rule at a time,
/// each with a worker of its own started in the sandbox as a run's would be.
public enum Conformance {
    static let workerChecks: [any WorkerCheck] = [
        HandshakeCheck(), VersionCheck(), RunCheck(), PingCheck(), CancelCheck(), UsageCheck(), NotificationCheck(),
        ShutdownCheck(), EndOfInputCheck(), UnknownMethodCheck(), LineLimitCheck(), StrayStdoutCheck(), StderrCheck(),
    ]

    static let serverChecks: [any WorkerCheck] = [
        MCPInitializeCheck(), MCPVersionCheck(), MCPBeforeInitializeCheck(), MCPPingCheck(), MCPToolListCheck(),
        MCPUnknownToolCheck(), MCPUnknownMethodCheck(), MCPCancelCheck(), MCPStrayStdoutCheck(), MCPEndOfInputCheck(),
    ]

    /// Every check: its name, section and what it checks.
    public static var checks: [(name: String, section: SpecSection, summary: String)] {
        workerChecks.map { ($0.name, $0.section, $0.summary) }
    }

    /// Every check of `--mcp`, likewise.
    public static var mcpChecks: [(name: String, section: SpecSection, summary: String)] {
        serverChecks.map { ($0.name, $0.section, $0.summary) }
    }

    /// Runs the checks named in `only` (all when nil), in order, on a thread of their own
    /// (they wait on pipes); `onOutcome` hears each as it ends.
    public static func check(
        _ launch: WorkerLaunch, options: ConformanceOptions, only: Set<String>? = nil,
        onOutcome: @escaping @Sendable (CheckOutcome) -> Void = { _ in }
    ) async -> [CheckOutcome] {
        await run(workerChecks, launch, options, only, onOutcome)
    }

    /// The same for an MCP stdio server started from `launch` (`purser conformance --mcp`).
    public static func checkMCP(
        _ launch: WorkerLaunch, options: ConformanceOptions = .mcp, only: Set<String>? = nil,
        onOutcome: @escaping @Sendable (CheckOutcome) -> Void = { _ in }
    ) async -> [CheckOutcome] {
        await run(serverChecks, launch, options, only, onOutcome)
    }

    static func run(
        _ checks: [any WorkerCheck], _ launch: WorkerLaunch, _ options: ConformanceOptions, _ only: Set<String>?,
        _ onOutcome: @escaping @Sendable (CheckOutcome) -> Void
    ) async -> [CheckOutcome] {
        let chosen = checks.filter { only?.contains($0.name) ?? true }
        return await onThreadOfItsOwn {
            chosen.map { check in
                let outcome = run(check, launch, options)
                onOutcome(outcome)
                return outcome
            }
        }
    }

    /// One check's life: a fresh process, spoken to within the check's time limit, judged;
    /// one that cannot start fails the check.
    private static func run(_ check: any WorkerCheck, _ launch: WorkerLaunch, _ options: ConformanceOptions) -> CheckOutcome {
        let started = ContinuousClock.now
        var result: CheckResult
        do {
            let worker = WorkerConnection(worker: try launch.spawn(), options: options, timeLimitMs: check.timeLimitMs(options), peer: check.peer)
            defer { worker.finish() }
            do {
                result = try check.run(worker)
            } catch {
                result = CheckResult(status: .fail, detail: error.message)
            }
            if let problems = worker.transcript.checkerProblems { result.detail += " [checker: \(problems)]" }
        } catch {
            result = CheckResult(status: .fail, detail: "cannot start \(check.peer == .worker ? "the worker" : "the server"): \(error.message)")
        }
        return CheckOutcome(
            name: check.name, section: check.section, summary: check.summary, result: result,
            elapsedMs: Int64((ContinuousClock.now - started) / .milliseconds(1)))
    }
}
