/// A section of protocol/SPEC.md, numbered and titled as there; or of the MCP
/// specification, where `number` is its path (`server/tools#listing`).
public struct SpecSection: Sendable, Hashable, CustomStringConvertible {
    public let number: String
    public let title: String
    public let isMCP: Bool

    init(number: String, title: String) {
        self.number = number
        self.title = title
        isMCP = false
    }

    init(mcp path: String, title: String) {
        number = path
        self.title = title
        isMCP = true
    }

    public var description: String { isMCP ? "MCP \(number)" : "§\(number) \(title)" }

    static let framing = SpecSection(number: "2", title: "Transport and framing")
    static let lifecycle = SpecSection(number: "4", title: "Lifecycle")
    static let initialize = SpecSection(number: "5.1", title: "initialize")
    static let run = SpecSection(number: "5.2", title: "run")
    static let shutdown = SpecSection(number: "5.4", title: "shutdown")
    static let ping = SpecSection(number: "5.5", title: "ping")
    static let usage = SpecSection(number: "5.6", title: "usage")
    static let progressAndLog = SpecSection(number: "5.7, 5.8", title: "progress, log")
    static let cancellation = SpecSection(number: "7", title: "Cancellation")
    static let badInput = SpecSection(number: "9", title: "Bad input from the worker")
    static let writing = SpecSection(number: "13", title: "Writing a worker")
    static let versioning = SpecSection(number: "14", title: "Versioning")
}

public enum CheckStatus: String, Sendable, Hashable {
    case pass, fail
    /// The rule does not apply to this worker (it does not declare the capability).
    case skip
}

/// What one check found.
public struct CheckResult: Sendable, Hashable {
    public var status: CheckStatus
    public var detail: String

    static func pass(_ detail: String) -> CheckResult { CheckResult(status: .pass, detail: detail) }
    static func skip(_ detail: String) -> CheckResult { CheckResult(status: .skip, detail: detail) }
}

/// Why a check failed; thrown from anywhere in it.
struct CheckFailure: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// One rule of the SPEC, checked against a worker of its own: `run` gets a fresh worker,
/// started in the sandbox, and says pass or skip, or throws `CheckFailure`. Every wait in
/// it ends by the check's time limit, so a worker that hangs fails the check, not the command.
protocol WorkerCheck: Sendable {
    var name: String { get }
    /// Whose requests the checker answers: a worker's, or an MCP server's.
    var peer: Peer { get }
    var section: SpecSection { get }
    /// What it checks, in one line (`purser conformance --list`).
    var summary: String { get }
    func timeLimitMs(_ options: ConformanceOptions) -> Int64
    func run(_ worker: WorkerConnection) throws(CheckFailure) -> CheckResult
}

extension WorkerCheck {
    var peer: Peer { .worker }

    /// Start-up, then a few exchanges each bounded by its own wait.
    func timeLimitMs(_ options: ConformanceOptions) -> Int64 { options.startupMs + 4 * options.answerMs }
}
