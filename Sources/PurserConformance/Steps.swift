import PurserProtocol
import PurserRuntime
import PurserSandbox

/// The steps every check is made of, so that a check says only what it sends and what it
/// expects: a request and its answer, the answer judged, the process's end awaited.
extension WorkerConnection {
    /// A request, and its answer within `milliseconds` (`answerMs` unless given); `what`
    /// names it in the failure (the method unless given).
    func ask(_ method: String, _ params: JSONValue? = nil, within milliseconds: Int64? = nil, _ what: String? = nil)
        throws(CheckFailure) -> Answer
    {
        try answer(to: request(method, params), within: milliseconds ?? options.answerMs, what ?? method)
    }

    /// How the process ended by itself within `grace` ms of `since`; `after` says what it
    /// should have ended after.
    @discardableResult
    func exits(within grace: Int64, since: ContinuousClock.Instant = .now, after what: String) throws(CheckFailure) -> ExitInfo {
        let left = grace - Int64((ContinuousClock.now - since) / .milliseconds(1))
        guard let exit = awaitExit(within: max(0, left)) else {
            throw CheckFailure("still running \(grace) ms (exitGrace) after \(what)")
        }
        return exit
    }

    /// As `exits`, with status 0.
    func exitsZero(within grace: Int64, since: ContinuousClock.Instant = .now, after what: String) throws(CheckFailure) {
        let exit = try exits(within: grace, since: since, after: what)
        guard exit.exitCode == 0 else { throw CheckFailure("\(party) \(Self.describe(exit)), not 0") }
    }
}

extension Answer {
    /// The result, which must be an object; else `rule` is the failure.
    @discardableResult
    func object(_ rule: String) throws(CheckFailure) -> [String: JSONValue] {
        switch result {
        case .failure(let error): throw CheckFailure("\(rule); it answered error \(WorkerConnection.text(error))")
        case .success(let value):
            guard let object = value.objectValue else { throw CheckFailure(rule) }
            return object
        }
    }

    /// The error, which must have `code`; `what` names the request, `wants` the rule.
    @discardableResult
    func error(_ code: Int, _ what: String, wants: String) throws(CheckFailure) -> RPCError {
        guard case .failure(let error) = result else { throw CheckFailure("answered \(what) with a result; \(wants)") }
        guard error.code == code else {
            throw CheckFailure("answered \(what) with error \(WorkerConnection.text(error)); \(wants)")
        }
        return error
    }
}
