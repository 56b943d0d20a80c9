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
}
