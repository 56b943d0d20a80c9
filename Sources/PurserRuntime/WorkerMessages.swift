import PurserProtocol
import PurserSandbox

/// What the session does with each message from the worker: initialize's answer, the run's
/// answer, notifications, and the worker's own requests.
extension WorkerSession {
    func handleLine(_ line: ArraySlice<UInt8>) {
        guard current.stop != .protocolViolation else { return }
        switch conversation.read(line) {
        case .response(.initialize, let result): initialized(result)
        case .response(.run, let result): runAnswered(result)
        case .response(.shutdown, _), .response(.ping, _): break
        case .notification(let method, let params): handleNotification(method, params, line)
        case .request(let id, let method, let params): handleWorkerRequest(id, method, params)
        case .stray(let reason): stray(line, because: reason)
        }
    }

    func stray(_ line: ArraySlice<UInt8>, because reason: String) {
        let tooMany = conversation.strayed()
        current.onEvent(.notice(
            "stray line \(conversation.strayLines) (\(WorkerText.line(reason, limit: 400))): \(escapedPrefix(line))"))
        if tooMany {
            kill(
                .protocolViolation,
                "the worker wrote more than \(ProtocolState.maxStrayLines) lines that are not protocol messages")
        }
    }

    private func initialized(_ result: Result<JSONValue, RPCError>) {
        guard phase == .initializing else { return }
        let info: InitializeResult
        do {
            info = try InitializeResult(json: result.get())
        } catch let error as RPCError {
            return kill(.startupFailed, "the worker refused initialize: \(error)")
        } catch {
            return kill(.startupFailed, "bad initialize result: \(error)")
        }
        guard info.protocolVersion == protocolVersion else {
            return kill(
                .startupFailed,
                "the worker speaks protocol version \(info.protocolVersion); this supervisor speaks \(protocolVersion)")
        }
        conversation.plugin = info
        phase = .running
        if current.request.handshakeOnly {
            current.answer = .result
            current.output = .null
            return beginStop()
        }
        sendRun()
    }

    func sendRun() {
        runsServed += 1
        send(.run, method: Method.run, params: RunParams(runID: current.runID, input: current.request.input, budget: current.budget).json)
        let remaining = current.budget.deadlineMs - unixMilliseconds()
        after(max(0, remaining)) {
            self.beginCancel(.timeout, reason: "deadline", message: "the run passed its deadline")
        }
    }

    private func runAnswered(_ result: Result<JSONValue, RPCError>) {
        guard current.answer == .none else { return }
        switch result {
        case .success(let value):
            do {
                let parsed = try RunResult(json: value)
                current.answer = .result
                current.output = parsed.output
                current.resultCredits = parsed.credits
                if let total = parsed.credits, total > current.budget.credits, current.stop == nil {
                    stopRun(.creditsExhausted, "the worker reported \(total) credits against a budget of \(current.budget.credits)")
                }
            } catch {
                current.answer = .error
                current.runError = RPCError(code: ErrorCode.invalidParams, message: "bad run result: \(error)")
            }
        case .failure(var error):
            current.answer = .error
            error.message = WorkerText.line(error.message)
            current.runError = error
        }
        if mayServeAgain { return becomeIdle() }
        beginStop()
    }

    private func handleNotification(_ method: String, _ params: JSONValue?, _ line: ArraySlice<UInt8>) {
        do {
            switch method {
            case Method.usage: reportUsage(try UsageParams(json: params).credits)
            case Method.progress: showProgress(try ProgressParams(json: params))
            case Method.log: showLog(try LogParams(json: params))
            default:
                switch conversation.unknown(method) {
                case .tooMany:
                    stray(line, because: "more than \(ProtocolState.maxUnknownNotifications) unknown notification names")
                case .first: current.onEvent(.notice("ignored unknown notification \(escapedPrefix(Array(method.utf8)[...]))"))
                case .again: break
                }
            }
        } catch {
            stray(line, because: "malformed \(method) notification: \(error)")
        }
    }

    private func reportUsage(_ credits: Credits) {
        current.reportedCredits = current.reportedCredits + credits
        let (reported, budget, account) = (current.reportedCredits, current.budget, current.account)
        account?.setReported(reported)
        current.onEvent(.usage(credits))
        let gatewayCredits = (account?.charged ?? .zero) + (account?.stepCredits ?? .zero)
        if reported + gatewayCredits > budget.credits {
            let calls = gatewayCredits > .zero ? " and \(gatewayCredits) for gateway calls" : ""
            beginCancel(
                .creditsExhausted, reason: "credits_exhausted",
                message: "the worker reported \(reported) credits\(calls) against a budget of \(budget.credits)")
        }
    }

    private func showProgress(_ progress: ProgressParams) {
        var shown = progress
        shown.message = progress.message.flatMap { current.textBudget.admit(text: $0) }
        if shown.message == nil && progress.message != nil { noteDropping() }
        current.onEvent(.progress(shown))
    }

    private func showLog(_ log: LogParams) {
        guard let message = current.textBudget.admit(text: log.message) else { return noteDropping() }
        current.onEvent(.log(LogParams(level: log.level, message: message)))
    }

    private func noteDropping() {
        guard current.textBudget.justStartedDropping else { return }
        current.onEvent(.notice(
            "the worker's log and progress text passed \(WorkerText.maxRunBytes / 1024) KiB in this run; "
                + "later messages are dropped and counted in the report"))
    }

    private func handleWorkerRequest(_ id: RPCID, _ method: String, _ params: JSONValue?) {
        guard let calls else { return }
        if let refusal = calls.duplicate(id) {
            write(refusal)
            return stray(Array("request id \(id)".utf8)[...], because: "reused the id of a request still in flight")
        }
        let reply = calls.handle(
            id, method, params, steps: current.steps, running: phase == .running, groups: process?.cgroups)
        if let reply { write(reply) }
    }
}
