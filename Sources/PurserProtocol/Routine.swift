/// `routine/call`: a worker asks the supervisor to run another plugin as a child step,
/// paid from the caller's own reservation.
public struct RoutineCallParams: Sendable, Hashable {
    /// A registered plugin's name (a worker cannot name a file).
    public var plugin: String
    public var input: JSONValue
    /// Credits for the step, taken from the caller's reservation.
    public var credits: Credits
    /// Wall time and memory for the step; nil: what the caller has left, and 256 MiB.
    public var timeMs: Int64?
    public var memoryBytes: Int64?

    public init(plugin: String, input: JSONValue, credits: Credits, timeMs: Int64? = nil, memoryBytes: Int64? = nil) {
        self.plugin = plugin
        self.input = input
        self.credits = credits
        self.timeMs = timeMs
        self.memoryBytes = memoryBytes
    }

    public init(json: JSONValue?) throws(ProtocolError) {
        let fields = try Fields(json, path: "params")
        plugin = try fields.string("plugin")
        input = fields.object["input"] ?? .null
        let budget = try fields.nested("budget")
        credits = try budget.credits("credits")
        timeMs = try budget.optionalNumber("timeMs").map { (number) throws(ProtocolError) in
            guard let value = number.int64, value > 0 else { throw ProtocolError.invalid("params.budget.timeMs", "expected a positive integer") }
            return value
        }
        memoryBytes = try budget.optionalNumber("memoryBytes").map { (number) throws(ProtocolError) in
            guard let value = number.int64, value > 0 else {
                throw ProtocolError.invalid("params.budget.memoryBytes", "expected a positive integer")
            }
            return value
        }
    }

    public var json: JSONValue {
        var budget: [String: JSONValue] = ["credits": credits.json]
        if let timeMs { budget["timeMs"] = .number(JSONNumber(timeMs)) }
        if let memoryBytes { budget["memoryBytes"] = .number(JSONNumber(memoryBytes)) }
        return ["plugin": .string(plugin), "input": input, "budget": .object(budget)]
    }
}

/// The answer to a `routine/call` whose step ended ok. A step that did not is answered
/// with error `ErrorCode.routineFailed`, `data: {"verdict", "credits"}`.
public struct RoutineCallResult: Sendable, Hashable {
    public var output: JSONValue
    /// What the step used, now consumed in the caller's reservation.
    public var credits: Credits

    public init(output: JSONValue, credits: Credits) {
        self.output = output
        self.credits = credits
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let fields = try Fields(json, path: "result")
        output = fields.object["output"] ?? .null
        credits = try fields.credits("credits")
    }

    public var json: JSONValue { ["output": output, "credits": credits.json] }
}
