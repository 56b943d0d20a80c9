import PurserProtocol

/// The exchanges the checks are made of, each as the supervisor makes it (§4).
extension WorkerConnection {
    func initializeParams(version: Int64 = protocolVersion) -> InitializeParams {
        InitializeParams(
            protocolVersion: version, supervisorVersion: "0.1.0", workerID: "w-" + runID.dropFirst(2),
            plugin: options.pluginName, maxLineBytes: Int64(options.maxLineBytes))
    }

    /// `initialize`, answered with a version 1 result within the startup timeout.
    @discardableResult
    func initialize() throws(CheckFailure) -> InitializeResult {
        try initialized(ask(Method.initialize, initializeParams().json, within: options.startupMs))
    }

    func initialized(_ answer: Answer) throws(CheckFailure) -> InitializeResult {
        let info: InitializeResult
        do {
            info = try InitializeResult(json: answer.result.get())
        } catch let error as RPCError {
            throw CheckFailure("the worker refused initialize: \(Self.text(error))")
        } catch {
            throw CheckFailure("bad initialize result: \(error)")
        }
        guard info.protocolVersion == protocolVersion else {
            throw CheckFailure("the worker answered protocolVersion \(info.protocolVersion); the supervisor speaks \(protocolVersion)")
        }
        return info
    }

    /// A `run` of the options' input under the options' budget.
    func startRun() throws(CheckFailure) -> RPCID {
        let budget = Budget(
            credits: options.credits, deadlineMs: unixMilliseconds() + options.runTimeMs, memoryBytes: options.memoryBytes)
        return try request(Method.run, RunParams(runID: runID, input: options.input, budget: budget).json)
    }

    func runAnswer(_ id: RPCID) throws(CheckFailure) -> Answer {
        try answer(to: id, within: options.runTimeMs, "run")
    }

    /// The stop sequence's first step: `shutdown`, then stdin closed.
    func shutdown() throws(CheckFailure) -> RPCID {
        let id = try request(Method.shutdown, nil)
        closeStdin()
        return id
    }

    /// A whole life: initialize, a run answered, shutdown, the exit; for the checks that
    /// judge everything the worker wrote. Says why, if it was cut short.
    func wholeSession() -> String? {
        wholeLife { () throws(CheckFailure) in
            try initialize()
            _ = try runAnswer(startRun())
            let stop = try shutdown()
            _ = try? answer(to: stop, within: options.exitGraceMs, "shutdown")
        }
    }

    /// `exchanges`, then stdin closed, the exit awaited and all that was written taken.
    /// Says why the exchanges were cut short, if they were.
    func wholeLife(_ exchanges: () throws(CheckFailure) -> Void) -> String? {
        var cut: String?
        do {
            try exchanges()
        } catch {
            cut = error.message
        }
        closeStdin()
        _ = awaitExit(within: options.exitGraceMs)
        takeWritten()
        return cut
    }

    /// A worker's error, its message made safe to print.
    static func text(_ error: RPCError) -> String {
        "\(error.code) \(WorkerText.line(error.message, limit: 200))"
    }

    /// A value the worker chose, serialized, escaped and cut.
    static func preview(_ value: JSONValue) -> String {
        WorkerText.line(value.serialized(), limit: 120)
    }
}

extension CheckResult {
    /// A pass, noting a session the worker cut short (which other checks judge).
    static func pass(_ detail: String, cut: String?) -> CheckResult {
        .pass(detail + (cut.map { " (the session ended early: \($0))" } ?? ""))
    }
}
