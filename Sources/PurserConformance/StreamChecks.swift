/// §2: no line past the limit; stdout protocol only; stderr free text, never protocol.
/// Each judges a whole life of the worker (initialize, a run, shutdown, its exit).
protocol SessionCheck: WorkerCheck {
    /// What the session broke, judged from what the worker wrote; nil when nothing.
    func problem(_ transcript: Transcript, _ options: ConformanceOptions) -> String?
    /// What a pass says.
    func passed(_ options: ConformanceOptions) -> String
}

extension SessionCheck {
    func timeLimitMs(_ options: ConformanceOptions) -> Int64 { RunCheck().timeLimitMs(options) }

    func run(_ worker: WorkerConnection) throws(CheckFailure) -> CheckResult {
        let cut = worker.wholeSession()
        if let problem = problem(worker.transcript, worker.options) { throw CheckFailure(problem) }
        return .pass(passed(worker.options), cut: cut)
    }
}

struct LineLimitCheck: SessionCheck {
    let name = "line-limit"
    let section = SpecSection.framing
    let summary = "no line on stdout longer than limits.maxLineBytes"

    func passed(_ options: ConformanceOptions) -> String { "every line within \(options.maxLineBytes) bytes" }

    func problem(_ transcript: Transcript, _ options: ConformanceOptions) -> String? {
        guard !transcript.oversized.isEmpty else { return nil }
        return "\(transcript.oversized.count) line(s) longer than \(options.maxLineBytes) bytes: a protocol violation, the run is killed at once (§9)"
    }
}

struct StrayStdoutCheck: SessionCheck {
    let name = "stray-stdout"
    let section = SpecSection.badInput
    let summary = "every line on stdout is a JSON-RPC 2.0 message (no banners, no debug prints)"

    func passed(_ options: ConformanceOptions) -> String { "stdout carried protocol messages only" }

    func problem(_ transcript: Transcript, _ options: ConformanceOptions) -> String? {
        guard transcript.strayCount > 0 else { return nil }
        return "\(transcript.strayCount) stray line(s) on stdout (the 17th kills the run): " + transcript.strays.joined(separator: "; ")
    }
}

struct StderrCheck: SessionCheck {
    let name = "stderr"
    let section = SpecSection.framing
    let summary = "no protocol message on stderr, which is a free-form log nobody parses"

    func passed(_ options: ConformanceOptions) -> String { "stderr held no protocol message" }

    func problem(_ transcript: Transcript, _ options: ConformanceOptions) -> String? {
        guard transcript.stderrMessageCount > 0 else { return nil }
        return "\(transcript.stderrMessageCount) JSON-RPC message(s) on stderr, where they are never read: "
            + transcript.stderrMessages.joined(separator: "; ")
    }
}
