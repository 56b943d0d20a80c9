public import PurserSandbox

/// The `purser` command's exit codes, listed once: each verdict's here, the others below,
/// and what `purser exec` and `purser run` can end with, which their `--help` shows.
extension Verdict {
    /// 0 only for ok; one code per verdict otherwise. `preempted` and `skipped` happen only
    /// to a swarm's routines, and a swarm ends `ExitCodes.swarmFailed`.
    public var exitCode: Int32 {
        switch self {
        case .ok: 0
        case .error: 10
        case .crashed: 11
        case .timeout: 12
        case .cpuLimit: 13
        case .memoryLimit: 14
        case .creditsExhausted: 15
        case .protocolViolation: 16
        case .startupFailed: 17
        case .cancelled: 18
        case .denied: 19
        case .preempted: 20
        case .skipped: 22
        }
    }
}

/// One exit code, and what it means for the command that ends with it.
public struct ExitStatus: Sendable, Hashable {
    public var code: Int32
    public var meaning: String
}

public enum ExitCodes {
    /// The supervisor itself failed (its store, its state directory), not its input.
    public static let supervisorFailure: Int32 = 1
    public static let badInput: Int32 = 2
    /// The host lacks a sandbox layer the plugin's level needs (see `purser doctor`); nothing ran.
    public static let sandboxUnavailable: Int32 = 3
    /// `purser run`: the swarm ran, and at least one routine did not end ok.
    public static let swarmFailed: Int32 = 21
    /// `purser run`: the team could not grant the swarm's reservation; nothing ran.
    public static let swarmDenied = Verdict.denied.exitCode

    public static func code(for verdict: Verdict) -> Int32 { verdict.exitCode }

    /// `purser exec`: its run's verdict, or why there was no run.
    public static let exec: [ExitStatus] = Verdict.allCases.filter { $0 != .preempted && $0 != .skipped }.map { verdict in
        let notes: [Verdict: String] = [
            .error: "the worker answered the run with an error", .cancelled: "by SIGINT or SIGTERM",
            .denied: "the team could not grant the reservation",
        ]
        return ExitStatus(code: verdict.exitCode, meaning: verdict.rawValue + (notes[verdict].map { ": " + $0 } ?? ""))
    } + [
        ExitStatus(code: badInput, meaning: "bad command-line input"),
        ExitStatus(
            code: sandboxUnavailable,
            meaning: "the host lacks a sandbox layer the plugin needs (see `purser doctor`; --allow-degraded)"),
        ExitStatus(code: supervisorFailure, meaning: "supervisor failure: its store or state directory"),
    ]

    /// `purser run`.
    public static let run: [ExitStatus] = [
        ExitStatus(code: Verdict.ok.exitCode, meaning: "every routine ok"),
        ExitStatus(code: swarmFailed, meaning: "a routine did not end ok (the report says which)"),
        ExitStatus(code: swarmDenied, meaning: "the team could not grant the swarm's reservation; nothing ran"),
        ExitStatus(code: badInput, meaning: "a bad job file (the message names the line and the field; nothing is reserved)"),
        ExitStatus(
            code: sandboxUnavailable,
            meaning: "the host lacks a sandbox layer a routine's plugin needs (nothing is reserved; see `purser doctor`)"),
        ExitStatus(
            code: Verdict.cancelled.exitCode,
            meaning: "cancelled by SIGINT or SIGTERM (every run ends cancelled, settles and is reported; a second signal stops at once)"),
        ExitStatus(
            code: supervisorFailure,
            meaning: "supervisor failure: the ledger's store failed, or was away past PURSER_STORE_RETRY (the report of what is known comes first)"),
    ]

    /// `purser conformance`: the worker (or MCP server) failed at least one check.
    public static let conformanceFailed: Int32 = 23

    /// `purser conformance`.
    public static let conformance: [ExitStatus] = [
        ExitStatus(code: 0, meaning: "every check passed (or was skipped: a capability the worker does not declare)"),
        ExitStatus(code: conformanceFailed, meaning: "the worker (or MCP server) failed at least one check"),
        ExitStatus(code: badInput, meaning: "bad command-line input"),
        ExitStatus(
            code: sandboxUnavailable,
            meaning: "the host lacks a sandbox layer an untrusted worker needs (see `purser doctor`; --allow-degraded)"),
    ]

    /// The list as `--help` shows it: a code a line, its meaning wrapped under itself.
    public static func help(_ list: [ExitStatus], width: Int = 78) -> String {
        "Exit codes:\n" + list.map { status in
            let code = String(status.code)
            return wrap(status.meaning, width: width - 6).enumerated().map { index, line in
                (index == 0 ? "  " + code + String(repeating: " ", count: 4 - code.count) : String(repeating: " ", count: 6)) + line
            }.joined(separator: "\n")
        }.joined(separator: "\n")
    }

    private static func wrap(_ text: String, width: Int) -> [String] {
        var lines: [String] = []
        var line = ""
        for word in text.split(separator: " ") {
            if !line.isEmpty && line.count + 1 + word.count > width {
                lines.append(line)
                line = ""
            }
            line += (line.isEmpty ? "" : " ") + word
        }
        return lines + [line]
    }
}
