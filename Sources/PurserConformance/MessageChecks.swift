import PurserProtocol

/// §5.5: `ping` answered {} at once, idle and while a run is in progress.
struct PingCheck: WorkerCheck {
    let name = "ping"
    let section = SpecSection.ping
    let summary = "ping answered {} at once, idle and during a run"

    func run(_ worker: WorkerConnection) throws(CheckFailure) -> CheckResult {
        try worker.initialize()
        try ping(worker, "ping")
        _ = try worker.startRun()
        try ping(worker, "ping sent during a run")
        return .pass("answered {} within \(worker.options.answerMs) ms, idle and during a run")
    }

    private func ping(_ worker: WorkerConnection, _ what: String) throws(CheckFailure) {
        try worker.ask(Method.ping, nil, what).object("\(what) is answered with the result {}")
    }
}

/// §14: an unknown request answered -32601, an unknown notification ignored.
struct UnknownMethodCheck: WorkerCheck {
    static let method = "conformance/no-such-method"
    static let notification = "conformance/no-such-notification"

    let name = "unknown-method"
    let section = SpecSection.versioning
    let summary = "a request for an unknown method answered -32601; an unknown notification ignored"

    func run(_ worker: WorkerConnection) throws(CheckFailure) -> CheckResult {
        try worker.initialize()
        try worker.notify(Self.notification, [:])
        try worker.ask(Self.method, [:]).error(ErrorCode.methodNotFound, Self.method, wants: "the SPEC wants error -32601")
        worker.takeWritten()
        guard worker.transcript.unmatched.isEmpty, worker.transcript.strayCount == 0 else {
            throw CheckFailure("answered the notification \(Self.notification), which nobody may answer")
        }
        return .pass("answered -32601 and ignored the unknown notification")
    }
}
