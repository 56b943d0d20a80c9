/// §2: no line past the limit; stdout protocol only; stderr free text, never protocol.
/// Each judges a whole life of the worker (initialize, a run, shutdown, its exit).
struct LineLimitCheck: WorkerCheck {
    let name = "line-limit"
    let section = SpecSection.framing
    let summary = "no line on stdout longer than limits.maxLineBytes"

    func timeLimitMs(_ options: ConformanceOptions) -> Int64 { RunCheck().timeLimitMs(options) }

    func run(_ worker: WorkerConnection) throws(CheckFailure) -> CheckResult {
        let cut = worker.wholeSession()
        let limit = worker.options.maxLineBytes
        guard worker.transcript.oversized.isEmpty else {
            throw CheckFailure(
                "\(worker.transcript.oversized.count) line(s) longer than \(limit) bytes: a protocol violation, the run is killed at once (§9)")
        }
        return .pass("every line within \(limit) bytes", cut: cut)
    }
}

struct StrayStdoutCheck: WorkerCheck {
    let name = "stray-stdout"
    let section = SpecSection.badInput
    let summary = "every line on stdout is a JSON-RPC 2.0 message (no banners, no debug prints)"

    func timeLimitMs(_ options: ConformanceOptions) -> Int64 { RunCheck().timeLimitMs(options) }

    func run(_ worker: WorkerConnection) throws(CheckFailure) -> CheckResult {
        let cut = worker.wholeSession()
        let transcript = worker.transcript
        guard transcript.strayCount == 0 else {
            throw CheckFailure(
                "\(transcript.strayCount) stray line(s) on stdout (the 17th kills the run): "
                    + transcript.strays.joined(separator: "; "))
        }
        return .pass("stdout carried protocol messages only", cut: cut)
    }
}

struct StderrCheck: WorkerCheck {
    let name = "stderr"
    let section = SpecSection.framing
    let summary = "no protocol message on stderr, which is a free-form log nobody parses"

    func timeLimitMs(_ options: ConformanceOptions) -> Int64 { RunCheck().timeLimitMs(options) }

    func run(_ worker: WorkerConnection) throws(CheckFailure) -> CheckResult {
        let cut = worker.wholeSession()
        let transcript = worker.transcript
        guard transcript.stderrMessageCount == 0 else {
            throw CheckFailure(
                "\(transcript.stderrMessageCount) JSON-RPC message(s) on stderr, where they are never read: "
                    + transcript.stderrMessages.joined(separator: "; "))
        }
        return .pass("stderr held no protocol message", cut: cut)
    }
}
