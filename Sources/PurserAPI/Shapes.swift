public import PurserLedger
public import PurserProtocol
import PurserRuntime

// The JSON the CLI's --json and the HTTP API both print: one shape, so that a program
// reading one reads the other.

extension Resources {
    public var json: JSONValue {
        ["credits": Credits(micros: credits).json, "timeMs": .number(JSONNumber(timeMs)), "memoryBytes": .number(JSONNumber(memoryBytes))]
    }
}

extension Node {
    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "id": .number(JSONNumber(id)), "team": .string(team), "kind": .string(kind.rawValue), "name": .string(name),
            "state": .string(isOpen ? "open" : "closed"), "tools": .array(tools.map { .string($0) }),
            "cap": cap.json, "available": available.json, "reserved": reserved.json, "consumed": consumed.json,
            "returned": returned.json, "workersInUse": .number(JSONNumber(workersInUse)),
        ]
        if let parent { object["parent"] = .number(JSONNumber(parent)) }
        if let outcome { object["outcome"] = .string(outcome) }
        if let workersCap { object["workersCap"] = .number(JSONNumber(workersCap)) }
        return .object(object)
    }
}

extension HostRow {
    public var json: JSONValue {
        .object([
            "name": .string(name), "state": .string(state), "epoch": .number(JSONNumber(epoch)),
            "slots": .number(JSONNumber(Int64(slots))), "running": .number(JSONNumber(Int64(running))),
            "heartbeatMs": .number(JSONNumber(heartbeatMs)), "version": .string(version), "note": .string(note),
        ])
    }
}

extension PluginRecord {
    /// The record and what its manifest and handshake said.
    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "name": .string(name), "path": .string(path), "sha256": .string(sha256), "addedMs": .number(JSONNumber(addedMs)),
        ]
        if let info = try? JSONParser.parse(info), case .object(let details) = info {
            object.merge(details) { current, _ in current }
        }
        return .object(object)
    }
}

extension QueuedSwarm {
    /// The queue's row, without the job's text.
    public var json: JSONValue {
        .object([
            "id": .string(id), "team": .string(team), "name": .string(name), "priority": .number(JSONNumber(priority)),
            "state": .string(state), "verdict": verdict.map(JSONValue.string) ?? .null,
            "message": message.map(JSONValue.string) ?? .null, "submittedMs": .number(JSONNumber(submittedMs)),
            "endedMs": endedMs.map { .number(JSONNumber($0)) } ?? .null, "paused": .bool(paused),
        ])
    }
}

extension QueuedRoutine {
    public var json: JSONValue {
        var object: [String: JSONValue] = [
            "name": .string(name), "state": .string(state), "attempt": .number(JSONNumber(Int64(attempt))),
            "host": host.map(JSONValue.string) ?? .null, "verdict": verdict.map(JSONValue.string) ?? .null,
            "message": message.map(JSONValue.string) ?? .null,
        ]
        // While it runs, once its host has said: its worker's pid on that host, and its peak.
        if state == "running", let hostPid, let memoryPeakBytes {
            object["hostPid"] = .number(JSONNumber(Int64(hostPid)))
            object["memoryPeakBytes"] = .number(JSONNumber(memoryPeakBytes))
        }
        return .object(object)
    }
}
