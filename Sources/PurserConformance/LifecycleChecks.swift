import PurserProtocol

/// §5.4: `shutdown` answered {}, then exit 0 within exitGrace.
struct ShutdownCheck: WorkerCheck {
    let name = "shutdown"
    let section = SpecSection.shutdown
    let summary = "shutdown (then stdin closed) answered {}, and the worker exits 0 within exitGrace"

    func run(_ worker: WorkerConnection) throws(CheckFailure) -> CheckResult {
        try worker.initialize()
        let grace = worker.options.exitGraceMs
        let sent = ContinuousClock.now
        let answer = try worker.answer(to: worker.shutdown(), within: grace, "shutdown")
        guard case .success(let value) = answer.result, value.objectValue != nil else {
            throw CheckFailure("shutdown is answered with the result {}")
        }
        let left = grace - Int64((ContinuousClock.now - sent) / .milliseconds(1))
        guard let exit = worker.awaitExit(within: max(0, left)) else {
            throw CheckFailure("still running \(grace) ms (exitGrace) after shutdown")
        }
        guard exit.exitCode == 0 else { throw CheckFailure("the worker \(WorkerConnection.describe(exit)), not 0") }
        return .pass("answered {} and exited 0")
    }
}

/// §13: "On EOF on stdin: exit 0", within exitGrace as after shutdown (§8).
struct EndOfInputCheck: WorkerCheck {
    let name = "stdin-eof"
    let section = SpecSection.writing
    let summary = "end of file on stdin (no shutdown): the worker exits 0 within exitGrace"

    func run(_ worker: WorkerConnection) throws(CheckFailure) -> CheckResult {
        try worker.initialize()
        worker.closeStdin()
        let grace = worker.options.exitGraceMs
        guard let exit = worker.awaitExit(within: grace) else {
            throw CheckFailure("still running \(grace) ms (exitGrace) after its stdin closed")
        }
        guard exit.exitCode == 0 else { throw CheckFailure("the worker \(WorkerConnection.describe(exit)), not 0") }
        return .pass("exited 0 at end of file")
    }
}
