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
        try worker.answer(to: worker.shutdown(), within: grace, "shutdown").object("shutdown is answered with the result {}")
        try worker.exitsZero(within: grace, since: sent, after: "shutdown")
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
        try worker.exitsZero(within: worker.options.exitGraceMs, after: "its stdin closed")
        return .pass("exited 0 at end of file")
    }
}
