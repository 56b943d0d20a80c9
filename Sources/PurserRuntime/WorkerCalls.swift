import PurserGateway
import PurserProtocol
import PurserSandbox
import Synchronization

/// The worker's own requests: `ping`, `gateway/call` and `routine/call`. A call runs while
/// the session goes on reading and writing other messages; its answer is written to the
/// worker's stdin from whichever thread finishes it. What a call needs is atomic or locked,
/// since a gateway call may be taken on the HTTP engine's thread (see `WorkerTransport`).
final class WorkerCalls: Sendable {
    /// Calls one worker may have in flight; past this they are refused.
    static let maxCallsInFlight = 256

    private let gateway: Gateway?
    /// Writes a line to the worker's stdin, from any thread.
    private let write: @Sendable ([UInt8]) -> Void
    /// Ids of the worker's calls not yet answered.
    private let inFlight = Mutex<Set<RPCID>>([])
    /// Set while the run runs and the stream is still sound: whether gateway calls are
    /// taken, and for which run.
    private let caller = Mutex<GatewayCaller?>(nil)

    init(gateway: Gateway?, write: @escaping @Sendable ([UInt8]) -> Void) {
        self.gateway = gateway
        self.write = write
    }

    func take(for caller: GatewayCaller?) {
        self.caller.withLock { $0 = caller }
    }

    /// Who pays for a call now: set while the run runs (see `take`).
    var currentCaller: GatewayCaller? { caller.withLock { $0 } }

    var noneInFlight: Bool { inFlight.withLock { $0.isEmpty } }

    /// Handles a request from the worker; on the session's queue. Returns the line to
    /// answer at once, if any; a call's answer comes when it ends.
    func handle(
        _ id: RPCID, _ method: String, _ params: JSONValue?, steps: StepLauncher?, running: Bool, groups: RunCgroups?
    ) -> [UInt8]? {
        let result: Result<JSONValue, RPCError>
        switch method {
        case Method.ping: result = .success([:])
        case Method.gatewayCall where gateway != nil:
            callGateway(id, params)
            return nil
        case Method.routineCall where steps != nil:
            callRoutine(id, params, steps: steps, running: running, groups: groups)
            return nil
        case Method.gatewayCall, Method.routineCall:
            result = .failure(RPCError(code: ErrorCode.notAvailable, message: "\(method) is not available in this supervisor"))
        default:
            result = .failure(RPCError(code: ErrorCode.methodNotFound, message: "method not found: \(method)"))
        }
        return RPCMessage.response(id: id, result: result).line()
    }

    /// The answer to a request whose id is still in flight, or nil if it is not.
    func duplicate(_ id: RPCID) -> [UInt8]? {
        guard inFlight.withLock({ $0.contains(id) }) else { return nil }
        return RPCMessage.response(id: id, result: .failure(RPCError(
            code: ErrorCode.invalidRequest, message: "duplicate request id"))).line()
    }

    /// On the HTTP engine's thread, for a line nothing before it waits on: takes it there
    /// and then if it is a gateway call the run may make. False: the session's queue takes it.
    func takeOnEngine(_ line: ArraySlice<UInt8>) -> Bool {
        guard Self.mayBeGatewayCall(line), caller.withLock({ $0 != nil }),
            case .request(let id, Method.gatewayCall, let params)? = try? RPCMessage(line: line),
            inFlight.withLock({ !$0.contains(id) })
        else { return false }
        callGateway(id, params)
        return true
    }

    /// Cheap, before parsing on the engine's thread: large lines and all but calls go to the queue.
    private static func mayBeGatewayCall(_ line: ArraySlice<UInt8>) -> Bool {
        guard line.count <= 64 << 10 else { return false }
        return line.firstRange(of: gatewayCallBytes) != nil
    }

    private static let gatewayCallBytes = Array(Method.gatewayCall.utf8)

    private func callGateway(_ id: RPCID, _ params: JSONValue?) {
        let answer = answerer(id)
        let call: GatewayCallParams
        do {
            call = try GatewayCallParams(json: params)
        } catch {
            return answer(.failure(RPCError(code: ErrorCode.invalidParams, message: "bad gateway/call: \(error)")))
        }
        guard let gateway, let caller = caller.withLock({ $0 }) else {
            return answer(.failure(GatewayFailure(.invalidRequest, "gateway calls are taken only while the run runs").rpcError))
        }
        guard inFlight.withLock({ $0.count < Self.maxCallsInFlight }) else {
            return answer(.failure(GatewayFailure(
                .rateLimited, "more than \(Self.maxCallsInFlight) gateway calls in flight", retryAfterMs: 10).rpcError))
        }
        let done = track(id)
        gateway.call(call, caller: caller) { done($0.map(\.json).mapError(\.rpcError)) }
    }

    /// Runs a child step from this run's reservation; its answer comes when the step ends.
    private func callRoutine(_ id: RPCID, _ params: JSONValue?, steps: StepLauncher?, running: Bool, groups: RunCgroups?) {
        let answer = answerer(id)
        let call: RoutineCallParams
        do {
            call = try RoutineCallParams(json: params)
        } catch {
            return answer(.failure(RPCError(code: ErrorCode.invalidParams, message: "bad routine/call: \(error)")))
        }
        guard let steps, running, inFlight.withLock({ $0.count < Self.maxCallsInFlight }) else {
            return answer(.failure(RPCError(code: ErrorCode.routineFailed, message: "routine calls are taken only while the run runs")))
        }
        steps.call(call, callerGroups: groups, reply: track(id))
    }

    /// Answers the worker's request `id` from any thread.
    private func answerer(_ id: RPCID) -> @Sendable (Result<JSONValue, RPCError>) -> Void {
        { [write] in write(RPCMessage.response(id: id, result: $0).line()) }
    }

    /// Counts `id` in flight until the returned closure answers it.
    private func track(_ id: RPCID) -> @Sendable (Result<JSONValue, RPCError>) -> Void {
        inFlight.withLock { _ = $0.insert(id) }
        let answer = answerer(id)
        return { result in
            // Out of the set before the worker can see the answer and reuse the id.
            self.inFlight.withLock { _ = $0.remove(id) }
            answer(result)
        }
    }
}
