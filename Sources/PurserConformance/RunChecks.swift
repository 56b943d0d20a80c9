import PurserProtocol

/// §5.2: one `run`, answered exactly once with a result holding `output`, or an error.
struct RunCheck: WorkerCheck {
    let name = "run"
    let section = SpecSection.run
    let summary = "a run answered exactly once: a result with output, or an error with a code and a message"

    func timeLimitMs(_ options: ConformanceOptions) -> Int64 { options.startupMs + options.runTimeMs + 2 * options.answerMs }

    func run(_ worker: WorkerConnection) throws(CheckFailure) -> CheckResult {
        try worker.initialize()
        let id = try worker.startRun()
        let answer = try worker.runAnswer(id)
        // An answer written twice comes before the answer to the shutdown that follows.
        _ = try? worker.answer(to: worker.shutdown(), within: worker.options.exitGraceMs, "shutdown")
        worker.takeWritten()
        guard !worker.transcript.unmatched.contains(id) else { throw CheckFailure("the run was answered more than once") }
        switch answer.result {
        case .success(let value):
            guard let output = value["output"] else { throw CheckFailure("the result must hold output (it may be null)") }
            return .pass("answered with output \(WorkerConnection.preview(output))")
        case .failure(let error):
            guard answer.raw["error"]?["message"]?.stringValue != nil else { throw CheckFailure("error.message must be a string") }
            return .pass("answered with error \(WorkerConnection.text(error))")
        }
    }
}

/// §7: a cancelled run answered within cancelGrace; -32800 unless it had ended already.
struct CancelCheck: WorkerCheck {
    let name = "cancel"
    let section = SpecSection.cancellation
    let summary = "a run cancelled at once answered within cancelGrace (-32800), if the worker declares capabilities.cancel"

    func run(_ worker: WorkerConnection) throws(CheckFailure) -> CheckResult {
        let info = try worker.initialize()
        guard info.capabilities["cancel"] == .bool(true) else {
            return .skip("capabilities.cancel is not true: the worker may ignore cancel, and the stop sequence ends it")
        }
        let id = try worker.startRun()
        try worker.notify(Method.cancel, CancelParams(runID: worker.runID, reason: "cancelled").json)
        let grace = worker.options.cancelGraceMs
        let answer = try worker.answer(to: id, within: grace, "the cancelled run (cancelGrace)")
        switch answer.result {
        case .failure(let error) where error.code == ErrorCode.cancelled:
            return .pass("answered -32800 within \(grace) ms")
        case .success:
            return .pass("answered with a result within \(grace) ms: the run ended before the cancel reached it")
        case .failure(let error):
            // A run that failed before the cancel reached it answers its own error.
            return .pass("answered error \(WorkerConnection.text(error)) within \(grace) ms; a run stopped by cancel answers -32800")
        }
    }
}

/// §5.6 and §6: `usage` notifications are increments ≥ 0 sent before the run's answer;
/// `result.usage.credits`, if there, is a total ≥ 0.
struct UsageCheck: WorkerCheck {
    let name = "usage"
    let section = SpecSection.usage
    let summary = "usage notifications well-formed (credits ≥ 0) and sent before the run's answer; result.usage well-formed"

    func timeLimitMs(_ options: ConformanceOptions) -> Int64 { RunCheck().timeLimitMs(options) }

    func run(_ worker: WorkerConnection) throws(CheckFailure) -> CheckResult {
        try worker.initialize()
        let answer = try worker.runAnswer(worker.startRun())
        let beforeAnswer = worker.transcript.notifications.count
        _ = try? worker.answer(to: worker.shutdown(), within: worker.options.exitGraceMs, "shutdown")
        worker.takeWritten()
        var problems: [String] = []
        var total = Credits.zero
        for (index, note) in worker.transcript.notifications.enumerated() where note.method == Method.usage {
            do {
                total = total + (try UsageParams(json: note.params).credits)
            } catch {
                problems.append("usage \(WorkerConnection.preview(note.params ?? .null)): \(error)")
            }
            if index >= beforeAnswer { problems.append("a usage notification came after the run's answer") }
        }
        if case .success(let value) = answer.result, value["usage"] != nil {
            do {
                _ = try RunResult(json: value)
            } catch {
                problems.append("result.usage \(WorkerConnection.preview(value["usage"] ?? .null)): \(error)")
            }
        }
        guard problems.isEmpty else { throw CheckFailure(problems.prefix(3).joined(separator: "; ")) }
        let count = worker.transcript.notifications.count(where: { $0.method == Method.usage })
        return .pass(count == 0 ? "no usage notifications (they are optional)" : "\(count) usage notifications, \(total) credits in all")
    }
}

/// §5.7 and §5.8: `progress` names the run and a fraction in [0, 1]; `log` has a known level.
struct NotificationCheck: WorkerCheck {
    let name = "notifications"
    let section = SpecSection.progressAndLog
    let summary = "progress and log notifications well-formed (runId of the run, fraction in [0, 1], a known level)"

    func timeLimitMs(_ options: ConformanceOptions) -> Int64 { RunCheck().timeLimitMs(options) }

    func run(_ worker: WorkerConnection) throws(CheckFailure) -> CheckResult {
        try worker.initialize()
        _ = try worker.runAnswer(worker.startRun())
        worker.takeWritten()
        var problems: [String] = []
        var seen = 0
        for note in worker.transcript.notifications where note.method == Method.progress || note.method == Method.log {
            seen += 1
            do {
                if note.method == Method.log {
                    _ = try LogParams(json: note.params)
                } else if try ProgressParams(json: note.params).runID != worker.runID {
                    problems.append("progress for a run that is not this one")
                }
            } catch {
                problems.append("\(note.method) \(WorkerConnection.preview(note.params ?? .null)): \(error)")
            }
        }
        guard problems.isEmpty else { throw CheckFailure(problems.prefix(3).joined(separator: "; ")) }
        return .pass(seen == 0 ? "no progress or log notifications (they are optional)" : "\(seen) well-formed")
    }
}
