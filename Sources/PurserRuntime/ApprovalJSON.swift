import PurserConfig
public import PurserLedger
public import PurserProtocol

extension Approval {
    /// The shape `purser approvals --json` prints (and the API serves).
    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "id": .string(id), "team": .string(team), "swarm": .string(swarm), "swarmNode": .number(JSONNumber(swarmNode)),
            "run": .string(run), "routine": .string(routine), "tools": .array(tools.map(JSONValue.string)),
            "state": .string(state.rawValue), "requestedMs": .number(JSONNumber(requestedMs)),
            "expiresMs": .number(JSONNumber(expiresMs)),
        ]
        if let decidedBy { object["decidedBy"] = .string(decidedBy) }
        if let decidedMs { object["decidedMs"] = .number(JSONNumber(decidedMs)) }
        if let reason { object["reason"] = .string(reason) }
        return .object(object)
    }

    /// The `await_approval` event's fields: what a person is asked, and by when.
    public var awaitFields: [String: JSONValue] {
        [
            "approval": .string(id), "tools": .array(tools.map(JSONValue.string)),
            "timeout": .string(Units.formatDuration(expiresMs - requestedMs)),
        ]
    }

    /// The `approval` event's fields: the decision (or the timeout), by whom, and why.
    public var decisionFields: [String: JSONValue] {
        ["approval": .string(id), "decision": .string(state.rawValue), "by": .string(decidedBy ?? ""), "reason": .string(reason ?? "")]
    }
}
