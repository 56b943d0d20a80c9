/// A JSON-RPC 2.0 id: the supervisor uses integers, a worker may use strings.
public enum RPCID: Sendable, Hashable, CustomStringConvertible {
    case number(Int64)
    case string(String)

    public var json: JSONValue {
        switch self {
        case .number(let value): .number(JSONNumber(value))
        case .string(let value): .string(value)
        }
    }

    public var description: String {
        switch self {
        case .number(let value): "\(value)"
        case .string(let value): "\"\(value)\""
        }
    }
}

public struct RPCError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: Int
    public var message: String
    public var data: JSONValue?

    public init(code: Int, message: String, data: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.data = data
    }

    public var description: String { "\(message) (code \(code))" }

    public var json: JSONValue {
        var object: [String: JSONValue] = ["code": .number(JSONNumber(code)), "message": .string(message)]
        if let data { object["data"] = data }
        return .object(object)
    }
}

/// The error codes of protocol v1 (see protocol/SPEC.md).
public enum ErrorCode {
    public static let parseError = -32700
    public static let invalidRequest = -32600
    public static let methodNotFound = -32601
    public static let invalidParams = -32602
    public static let internalError = -32603
    public static let cancelled = -32800
    public static let unsupportedProtocolVersion = -32001
    public static let notAvailable = -32002
    public static let creditsExhausted = -32003
    /// A `gateway/call` was refused or failed; `data.reason` says why (`GatewayReason`).
    public static let gatewayFailed = -32010
    /// A `routine/call` was refused or its step did not end ok; `data.verdict` says how.
    public static let routineFailed = -32011
}

/// One line of the protocol.
public enum RPCMessage: Sendable, Hashable {
    case request(id: RPCID, method: String, params: JSONValue?)
    case notification(method: String, params: JSONValue?)
    case response(id: RPCID, result: Result<JSONValue, RPCError>)

    public var json: JSONValue {
        var object: [String: JSONValue] = ["jsonrpc": "2.0"]
        switch self {
        case .request(let id, let method, let params):
            object["id"] = id.json
            object["method"] = .string(method)
            if let params { object["params"] = params }
        case .notification(let method, let params):
            object["method"] = .string(method)
            if let params { object["params"] = params }
        case .response(let id, .success(let result)):
            object["id"] = id.json
            object["result"] = result
        case .response(let id, .failure(let error)):
            object["id"] = id.json
            object["error"] = error.json
        }
        return .object(object)
    }

    /// The message as one line, newline included.
    public func line() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(128)
        json.serialize(into: &bytes)
        bytes.append(0x0A)
        return bytes
    }

    public init(json: JSONValue) throws(ProtocolError) {
        guard case .object(let object) = json else { throw ProtocolError.invalid("message", "expected an object") }
        guard object["jsonrpc"] == "2.0" else { throw ProtocolError.invalid("jsonrpc", "must be \"2.0\"") }
        let id = try object["id"].map { value throws(ProtocolError) in try Self.id(value) }
        if let methodValue = object["method"] {
            guard case .string(let method) = methodValue else { throw ProtocolError.invalid("method", "expected a string") }
            let params = object["params"]
            if let params, params.objectValue == nil, params.arrayValue == nil {
                throw ProtocolError.invalid("params", "expected an object or array")
            }
            self = id.map { .request(id: $0, method: method, params: params) } ?? .notification(method: method, params: params)
            return
        }
        guard let id else { throw ProtocolError.invalid("message", "neither a request, a notification nor a response") }
        switch (object["result"], object["error"]) {
        case (let result?, nil):
            self = .response(id: id, result: .success(result))
        case (nil, let error?):
            self = .response(id: id, result: .failure(try Self.error(error)))
        default:
            throw ProtocolError.invalid("response", "must hold exactly one of result and error")
        }
    }

    public init(line: some Collection<UInt8>, maxDepth: Int = JSONParser.defaultMaxDepth) throws(ProtocolError) {
        let value: JSONValue
        do {
            value = try JSONParser.parse(Array(line), maxDepth: maxDepth)
        } catch {
            throw ProtocolError(code: .notJSON, message: error.description)
        }
        try self.init(json: value)
    }

    private static func id(_ value: JSONValue) throws(ProtocolError) -> RPCID {
        switch value {
        case .string(let string): return .string(string)
        case .number(let number):
            guard let int = number.int64 else { throw ProtocolError.invalid("id", "must be an integer or a string") }
            return .number(int)
        default: throw ProtocolError.invalid("id", "must be an integer or a string")
        }
    }

    private static func error(_ value: JSONValue) throws(ProtocolError) -> RPCError {
        let fields = try Fields(value, path: "error")
        let code = try fields.int("code")
        return RPCError(
            code: Int(code), message: try fields.optionalString("message") ?? "", data: fields.object["data"])
    }
}

/// A message that does not follow the protocol; `path` names the field.
public struct ProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public static let notJSON = Code("not JSON")
        public static let invalidMessage = Code("invalid message")
        public var description: String { name }
    }

    public let code: Code
    public let message: String

    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    static func invalid(_ path: String, _ problem: String) -> ProtocolError {
        ProtocolError(code: .invalidMessage, message: "\(path): \(problem)")
    }

    public var description: String { message }
}
