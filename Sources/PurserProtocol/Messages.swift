/// Protocol v1's methods and their parameters and results (see protocol/SPEC.md).
public enum Method {
    public static let initialize = "initialize"
    public static let run = "run"
    public static let cancel = "cancel"
    public static let shutdown = "shutdown"
    public static let ping = "ping"
    public static let usage = "usage"
    public static let progress = "progress"
    public static let log = "log"
    public static let gatewayCall = "gateway/call"
    public static let routineCall = "routine/call"
}

public let protocolVersion: Int64 = 1
public let defaultMaxLineBytes = 8 * 1024 * 1024

public struct InitializeParams: Sendable, Hashable {
    public var protocolVersion: Int64
    public var supervisorName: String
    public var supervisorVersion: String
    public var workerID: String
    public var plugin: String
    public var maxLineBytes: Int64

    public init(
        protocolVersion: Int64 = PurserProtocol.protocolVersion, supervisorName: String = "purser",
        supervisorVersion: String, workerID: String, plugin: String, maxLineBytes: Int64
    ) {
        self.protocolVersion = protocolVersion
        self.supervisorName = supervisorName
        self.supervisorVersion = supervisorVersion
        self.workerID = workerID
        self.plugin = plugin
        self.maxLineBytes = maxLineBytes
    }

    public init(json: JSONValue?) throws(ProtocolError) {
        let fields = try Fields(json, path: "params")
        let supervisor = try fields.nested("supervisor")
        let worker = try fields.nested("worker")
        protocolVersion = try fields.int("protocolVersion")
        supervisorName = try supervisor.string("name")
        supervisorVersion = try supervisor.string("version")
        workerID = try worker.string("id")
        plugin = try worker.string("plugin")
        maxLineBytes = try fields.optionalNested("limits").map { limits throws(ProtocolError) in
            try limits.nonNegativeInt("maxLineBytes")
        } ?? Int64(defaultMaxLineBytes)
    }

    public var json: JSONValue {
        [
            "protocolVersion": .number(JSONNumber(protocolVersion)),
            "supervisor": ["name": .string(supervisorName), "version": .string(supervisorVersion)],
            "worker": ["id": .string(workerID), "plugin": .string(plugin)],
            "limits": ["maxLineBytes": .number(JSONNumber(maxLineBytes))],
        ]
    }
}

public struct InitializeResult: Sendable, Hashable {
    public var protocolVersion: Int64
    public var pluginName: String
    public var pluginVersion: String
    public var capabilities: [String: JSONValue]

    public init(protocolVersion: Int64 = PurserProtocol.protocolVersion, pluginName: String, pluginVersion: String,
                capabilities: [String: JSONValue]) {
        self.protocolVersion = protocolVersion
        self.pluginName = pluginName
        self.pluginVersion = pluginVersion
        self.capabilities = capabilities
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let fields = try Fields(json, path: "result")
        protocolVersion = try fields.int("protocolVersion")
        let plugin = try fields.nested("plugin")
        pluginName = try plugin.string("name")
        pluginVersion = try plugin.string("version")
        capabilities = try fields.optionalNested("capabilities")?.object ?? [:]
    }

    public var json: JSONValue {
        [
            "protocolVersion": .number(JSONNumber(protocolVersion)),
            "plugin": ["name": .string(pluginName), "version": .string(pluginVersion)],
            "capabilities": .object(capabilities),
        ]
    }
}

public struct Budget: Sendable, Hashable {
    public var credits: Credits
    /// Absolute Unix time in milliseconds.
    public var deadlineMs: Int64
    public var memoryBytes: Int64
    public var tools: [String]

    public init(credits: Credits, deadlineMs: Int64, memoryBytes: Int64, tools: [String] = []) {
        self.credits = credits
        self.deadlineMs = deadlineMs
        self.memoryBytes = memoryBytes
        self.tools = tools
    }

    public init(fields: Fields) throws(ProtocolError) {
        credits = try fields.credits("credits")
        deadlineMs = try fields.nonNegativeInt("deadlineMs")
        memoryBytes = try fields.nonNegativeInt("memoryBytes")
        tools = try fields.object["tools"] == nil ? [] : fields.strings("tools")
    }

    public var json: JSONValue {
        [
            "credits": credits.json,
            "deadlineMs": .number(JSONNumber(deadlineMs)),
            "memoryBytes": .number(JSONNumber(memoryBytes)),
            "tools": .array(tools.map { .string($0) }),
        ]
    }
}

public struct RunParams: Sendable, Hashable {
    public var runID: String
    public var input: JSONValue
    public var budget: Budget

    public init(runID: String, input: JSONValue, budget: Budget) {
        self.runID = runID
        self.input = input
        self.budget = budget
    }

    public init(json: JSONValue?) throws(ProtocolError) {
        let fields = try Fields(json, path: "params")
        runID = try fields.string("runId")
        input = fields.object["input"] ?? .null
        budget = try Budget(fields: fields.nested("budget"))
    }

    public var json: JSONValue {
        ["runId": .string(runID), "input": input, "budget": budget.json]
    }
}

public struct RunResult: Sendable, Hashable {
    public var output: JSONValue
    /// The run's total spend, when the worker states it.
    public var credits: Credits?

    public init(output: JSONValue, credits: Credits? = nil) {
        self.output = output
        self.credits = credits
    }

    public init(json: JSONValue) throws(ProtocolError) {
        let fields = try Fields(json, path: "result")
        output = fields.object["output"] ?? .null
        credits = try fields.optionalNested("usage").map { usage throws(ProtocolError) in try usage.credits("credits") }
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = ["output": output]
        if let credits { object["usage"] = ["credits": credits.json] }
        return .object(object)
    }
}

public struct CancelParams: Sendable, Hashable {
    public var runID: String
    public var reason: String

    public init(runID: String, reason: String) {
        self.runID = runID
        self.reason = reason
    }

    public init(json: JSONValue?) throws(ProtocolError) {
        let fields = try Fields(json, path: "params")
        runID = try fields.string("runId")
        reason = try fields.optionalString("reason") ?? "cancelled"
    }

    public var json: JSONValue { ["runId": .string(runID), "reason": .string(reason)] }
}

public struct UsageParams: Sendable, Hashable {
    public var credits: Credits

    public init(credits: Credits) { self.credits = credits }

    public init(json: JSONValue?) throws(ProtocolError) {
        credits = try Fields(json, path: "params").credits("credits")
    }

    public var json: JSONValue { ["credits": credits.json] }
}

public struct ProgressParams: Sendable, Hashable {
    public var runID: String
    public var fraction: Double?
    public var message: String?

    public init(runID: String, fraction: Double? = nil, message: String? = nil) {
        self.runID = runID
        self.fraction = fraction
        self.message = message
    }

    public init(json: JSONValue?) throws(ProtocolError) {
        let fields = try Fields(json, path: "params")
        runID = try fields.string("runId")
        fraction = try fields.optionalNumber("fraction")?.double
        if let fraction, !(0...1).contains(fraction) {
            throw ProtocolError.invalid("params.fraction", "must be between 0 and 1")
        }
        message = try fields.optionalString("message")
    }

    public var json: JSONValue {
        var object: [String: JSONValue] = ["runId": .string(runID)]
        if let fraction, let number = JSONNumber(fraction) { object["fraction"] = .number(number) }
        if let message { object["message"] = .string(message) }
        return .object(object)
    }
}

public struct LogParams: Sendable, Hashable {
    public static let levels: Set<String> = ["debug", "info", "warning", "error"]
    public var level: String
    public var message: String

    public init(level: String, message: String) {
        self.level = level
        self.message = message
    }

    public init(json: JSONValue?) throws(ProtocolError) {
        let fields = try Fields(json, path: "params")
        level = try fields.string("level")
        guard Self.levels.contains(level) else {
            throw ProtocolError.invalid("params.level", "must be one of debug, info, warning, error")
        }
        message = try fields.string("message")
    }

    public var json: JSONValue { ["level": .string(level), "message": .string(message)] }
}
