import Glibc

/// Exactly one per run; and one per routine of a swarm, which may also end `skipped`
/// without a run. The raw values are the names in reports, events and the ledger's
/// `outcome` column; the exit codes are in `ExitCodes`.
public enum Verdict: String, Sendable, CaseIterable, Codable, CustomStringConvertible {
    case ok
    case error
    case crashed
    case timeout
    case cpuLimit = "cpu_limit"
    case memoryLimit = "memory_limit"
    case creditsExhausted = "credits_exhausted"
    case protocolViolation = "protocol_violation"
    case startupFailed = "startup_failed"
    case cancelled
    case denied
    case preempted
    /// A routine of a swarm that was not run: a routine it runs after did not end ok, or
    /// the swarm stopped before it started.
    case skipped

    public var description: String { rawValue }
}

/// Why the supervisor ended a run itself, if it did.
public enum StopReason: Sendable, Hashable {
    case timeout, creditsExhausted, protocolViolation, startupFailed, cancelled
    /// The run's whole tree used more CPU time than its limit (see `VerdictClassifier.cpuOverrun`).
    case cpuLimit

    var verdict: Verdict {
        switch self {
        case .timeout: .timeout
        case .cpuLimit: .cpuLimit
        case .creditsExhausted: .creditsExhausted
        case .protocolViolation: .protocolViolation
        case .startupFailed: .startupFailed
        case .cancelled: .cancelled
        }
    }
}

/// What the worker said about its run before it ended.
public enum RunAnswer: Sendable, Hashable {
    case none, result, error
}

public enum VerdictClassifier {
    /// A worker that died holding at least this share of its data limit ran out of memory:
    /// under RLIMIT_DATA an allocation fails, and the runtime then aborts or faults.
    static let memoryShare = 0.75

    /// How often a run's CPU time is checked against its limit while it runs. RLIMIT_CPU
    /// holds each process on its own; this holds the run's whole tree, which may overshoot
    /// by at most this long on each CPU.
    public static let cpuCheckMs = 100

    /// Why the run must stop, once its tree has used more CPU time than its limit; nil
    /// while it has not (or has no limit).
    public static func cpuOverrun(usedNanoseconds: Int64, limits: ResourceLimits) -> String? {
        guard let seconds = limits.cpuSeconds, usedNanoseconds > Int64(seconds) * 1_000_000_000 else { return nil }
        return "the run's processes used \(usedNanoseconds / 1_000_000) ms of CPU time, over its limit of \(seconds) s"
    }

    public static func classify(
        stop: StopReason?, answer: RunAnswer, initialized: Bool, exit: ExitInfo, limits: ResourceLimits
    ) -> Verdict {
        if let stop { return stop.verdict }
        switch answer {
        case .result: return .ok
        // A process of the run was killed for its memory and the worker then gave up (an MCP
        // server under the bridge, a tool under a script): the limit is why.
        case .error: return exit.outOfMemory ? .memoryLimit : .error
        case .none: break
        }
        if !initialized { return .startupFailed }
        if let cpu = limits.cpuSeconds,
            exit.signal == SIGXCPU || (exit.signal == SIGKILL && exit.cpuMs >= Int64(cpu) * 1000)
        {
            return .cpuLimit
        }
        if exit.outOfMemory { return .memoryLimit }
        if let data = limits.memoryBytes ?? limits.dataBytes, Double(exit.peakMemoryBytes) >= Double(data) * memoryShare {
            return .memoryLimit
        }
        return .crashed
    }
}
